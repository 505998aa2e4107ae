/*
 * verdicts.h - the results of a run or sweep as CI systems read them:
 * JUnit XML (Jenkins', GitLab's readers) and TAP version 14.
 *
 * One struct sim_verdict per test case (a scenario, or one expectation of
 * a sweep); the writers know nothing of kbsim beyond it.
 */
#ifndef SIM_VERDICTS_H
#define SIM_VERDICTS_H

#include <stddef.h>
#include <stdio.h>

#include "client/verdict.h"

enum sim_result {
  SIM_RESULT_PASS = 0,
  SIM_RESULT_FAIL, /* ran, and the outcome differed from what was expected */
  SIM_RESULT_ERROR /* the harness could not run it (infrastructure) */
};

struct sim_verdict {
  char name[256];      /* the testcase: scenario name */
  char classname[256]; /* its file, or "kbsim.run" */
  enum sim_result result;
  enum client_class got; /* the run's class */
  char message[768];     /* the deciding evidence, one line */
  char output[1024];     /* the summary, for system-out */
  double seconds;
};

/* Exit status for verdicts: 3 when any could not run, else 1 when any
 * failed, else 0. */
int sim_verdicts_exit(const struct sim_verdict *v, size_t n);

/* Writes a JUnit XML file (one testsuite named suite) to path ("-" for
 * standard output). Returns 0, or -1 with one line in err. */
int sim_junit_write(const char *path, const char *suite,
                    const struct sim_verdict *v, size_t n, char *err,
                    size_t errlen);

/* Writes TAP version 14 to out: a plan, one line per verdict, and a YAML
 * block with the class and message for those not passing. */
void sim_tap_write(FILE *out, const struct sim_verdict *v, size_t n);

#endif /* SIM_VERDICTS_H */
