/*
 * ci.h - the results of a run, a sweep or a probe as CI systems read
 * them: JUnit XML (Jenkins' junit step, GitLab's artifacts:reports:junit)
 * and TAP version 14.
 *
 * One struct ci_case per test case (a scenario, one expectation of a
 * sweep, one check of a probe); the writers know nothing of kbsim beyond
 * it.
 */
#ifndef CI_H
#define CI_H

#include <stddef.h>
#include <stdio.h>

enum ci_result {
  CI_PASS = 0,
  CI_FAIL,  /* ran, and the outcome differed from what was expected */
  CI_ERROR, /* could not be run or judged (infrastructure) */
  CI_SKIP   /* not run: the message says what it needs */
};

struct ci_case {
  char name[256];      /* the testcase: scenario name, check name */
  char classname[256]; /* the scenario's name ("run" for run's flags,
                          "probe"): never a path, whose dots Jenkins
                          would split into packages */
  enum ci_result result;
  /* What kind of failure or error it is (the run's class, "server-error"):
   * static storage; NULL: no kind. */
  const char *type;
  char message[768]; /* the deciding evidence, one line */
  char output[1024]; /* for system-out; "": none */
  double seconds;    /* how long it took (wall clock); every case is timed */
};

/* A name and value about the whole suite (the probe's listener). */
struct ci_property {
  const char *name;
  const char *value;
};

/* One JUnit testsuite. Everything is borrowed for the call. */
struct ci_suite {
  const char *name; /* "kbsim run" */
  const struct ci_case *cases;
  size_t ncases;
  const struct ci_property *properties; /* NULL when nproperties is 0 */
  size_t nproperties;
  const char *output; /* the suite's own system-out, or NULL */
};

/* Exit status for cases: 3 when any could not run, else 1 when any
 * failed, else 0 (skipped cases count as passed). */
int ci_exit(const struct ci_case *c, size_t n);

/* Writes suite as a JUnit XML file to path ("-" for standard output): a
 * testsuites element with the suite's counts (tests, failures, errors,
 * skipped, time) holding the one testsuite with the same counts, its
 * properties, one testcase per case (name, classname, time)
 * (a failure or error element carrying the message and the type, or a
 * skipped element, then the case's system-out) and the suite's
 * system-out. Returns 0, or -1 with one line in err. */
int ci_junit_write(const char *path, const struct ci_suite *suite, char *err,
                   size_t errlen);

/* Writes TAP version 14 to out: a plan, one line per case (a skipped one
 * as ok with a SKIP directive), and a YAML block with the type and message
 * for those failing or in error. */
void ci_tap_write(FILE *out, const struct ci_case *c, size_t n);

#endif /* CI_H */
