/*
 * test_junit_shape.c - issue 34's CI behaviour: one JUnit shape for run,
 * sweep, merge and probe (a testsuites root, the scenario's name as
 * classname, every case and suite timed: tests/ci/junit_shape.py), an
 * error case for a scenario file that cannot be read (exit 2), the
 * too-few-seeds failure as its own type, and merge's grid point names,
 * NO GATE lines and --junit, --csv and --html. junitparser reads the
 * files (tests/ci/).
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbt.h"
#include "proc.h"

#define JUNITPARSER "/usr/lib/python3/dist-packages/junitparser"

/* Runs a tests/ci script on file into *p (proc_judge); it must succeed. */
static void ci_script(const char *script, const char *file, struct proc_out *p)
{
  char path[512];
  char *argv[] = {path, (char *)file, NULL};

  snprintf(path, sizeof(path), "%s/ci/%s", TESTS_DIR, script);
  proc_judge(argv, p);
  ck_assert_msg(p->status == 0, "%s: %s", script, p->err.data);
}

/* Asserts that the JUnit file at path has the one shape, no case left
 * untimed, and the text want in its shape (junit_shape.py's lines). */
static void shape_has(const char *path, const char *want)
{
  struct proc_out p;

  ci_script("junit_shape.py", path, &p);
  ck_assert_msg(!strncmp(p.out.data, "root testsuites\n", 16), "%s",
                p.out.data);
  ck_assert_msg(!strstr(p.out.data, "untimed"), "%s", p.out.data);
  ck_assert_msg(strstr(p.out.data, want), "no '%s' in:\n%s", want, p.out.data);
  proc_free(&p);
}

/* Runs the shell script and returns its exit status; its output in *p. */
static int sh(const char *script, struct proc_out *p)
{
  char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};

  proc_run(argv, p);
  return p->status;
}

/* `kbsim run bad.ini bug --junit`: exit 2, nothing runs, and the JUnit
 * says why: an error case for bad (type bad-scenario, the one-line parse
 * error), bug skipped. */
START_TEST(bad_scenario_is_a_junit_error)
{
  char dir[256], script[1024], junit[300];
  struct proc_out p;

  if(!proc_have(JUNITPARSER))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-shape", dir, sizeof(dir));
  snprintf(junit, sizeof(junit), "%s/results.xml", dir);
  snprintf(script, sizeof(script),
           "cd '%s' && printf '[scenario]\\nname = bad\\n[listener]\\n"
           "idle_timeout = soon\\n' > bad.ini && '%s' run bad.ini bug "
           "--junit results.xml",
           dir, KBSIM_BIN);
  ck_assert_int_eq(sh(script, &p), 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "bad.ini:4: [listener] "
                                           "idle_timeout = soon"));
  ck_assert_ptr_null(strstr(p.out.data, "PASS"));
  proc_free(&p);
  ci_script("junit_counts.py", junit, &p);
  ck_assert_msg(strstr(p.out.data, "tests 2\nfailures 0\nerrors 1\n"), "%s",
                p.out.data);
  ck_assert_msg(strstr(p.out.data, "case bad error bad-scenario bad.ini:4: "
                                   "[listener] idle_timeout = soon: not a "
                                   "duration"),
                "%s", p.out.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "case bug pass"));
  proc_free(&p);
  shape_has(junit, "case bug classname=bug timed");
  /* sweep too: one error case, exit 2. */
  snprintf(script, sizeof(script),
           "cd '%s' && '%s' sweep bad.ini --seeds 1..2 --junit results.xml",
           dir, KBSIM_BIN);
  ck_assert_int_eq(sh(script, &p), 2);
  proc_free(&p);
  ci_script("junit_counts.py", junit, &p);
  ck_assert_msg(strstr(p.out.data, "tests 1\nfailures 0\nerrors 1\ncase bad "
                                   "error bad-scenario bad.ini:4: "),
                "%s", p.out.data);
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* run, sweep and probe: one shape; the classname is the scenario's name,
 * not its path (a file given by path too). */
START_TEST(one_shape_for_every_command)
{
  char dir[256], script[2048], path[300];
  struct proc_out p;

  if(!proc_have(JUNITPARSER))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-shape", dir, sizeof(dir));
  snprintf(script, sizeof(script),
           "cd '%s' && k='%s'\n"
           "$k run bug fix --junit run.xml >/dev/null\n"
           "$k run --policy per-request --expect clean --junit flags.xml "
           ">/dev/null\n"
           "$k sweep intermittent-array --seeds 1..2 --vary "
           "listener.idle_timeout=10s,30s --junit sweep.xml >/dev/null\n"
           "$k probe http://127.0.0.1:1/ --user 'FABRIKAM\\alice:Passw0rd!' "
           "--junit probe.xml >/dev/null 2>&1; test $? = 3",
           dir, KBSIM_BIN);
  ck_assert_msg(sh(script, &p) == 0, "%s%s", p.out.data, p.err.data);
  proc_free(&p);
  snprintf(path, sizeof(path), "%s/run.xml", dir);
  shape_has(path, "suite kbsim run timed\ncase bug classname=bug timed\n"
                  "case fix classname=fix timed\n");
  snprintf(path, sizeof(path), "%s/flags.xml", dir);
  shape_has(path, "case run classname=run timed\n");
  snprintf(path, sizeof(path), "%s/sweep.xml", dir);
  shape_has(path, "case intermittent-array [listener.idle_timeout=30s] rate "
                  "classname=intermittent-array timed\n");
  snprintf(path, sizeof(path), "%s/probe.xml", dir);
  shape_has(path, "suite kbsim probe timed\ncase offer classname=probe "
                  "timed\n");
  proc_rmdir(dir);
}
END_TEST

/* A rate inside the bounds whose interval is not: a failure of its own
 * type, too-few-seeds, with a message that says to run more. */
START_TEST(too_few_seeds_is_its_own_type)
{
  char dir[256], script[1024], junit[300];
  struct proc_out p;

  if(!proc_have(JUNITPARSER))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-shape", dir, sizeof(dir));
  snprintf(junit, sizeof(junit), "%s/sweep.xml", dir);
  snprintf(script, sizeof(script),
           "'%s' sweep intermittent-array --seeds 1..2 --expect-rate "
           "45%%..65%% --junit '%s'",
           KBSIM_BIN, junit);
  ck_assert_int_eq(sh(script, &p), 1);
  ck_assert_ptr_nonnull(strstr(p.out.data,
                               "FAIL intermittent-array rate: too few seeds: "
                               "the rate 50.00% is inside 45.00%..65.00%, but "
                               "its 95% CI 28.00%..72.00% is not; run more "
                               "seeds to narrow it\n"));
  proc_free(&p);
  ci_script("junit_counts.py", junit, &p);
  ck_assert_msg(strstr(p.out.data, "case intermittent-array rate failure "
                                   "too-few-seeds too few seeds: "),
                "%s", p.out.data);
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* merge: each grid point named in its line, NO GATE (never PASS) without
 * an expected rate, and the sweep's --csv, --html and --junit. */
START_TEST(merge_names_points_and_writes_files)
{
  char dir[256], script[2048], path[300];
  struct proc_out p;
  char *text;

  proc_tmpdir("kbsim-shape", dir, sizeof(dir));
  snprintf(script, sizeof(script),
           "cd '%s' && k='%s' && a='sweep intermittent-array --seeds 1..4 "
           "--vary listener.idle_timeout=10s,30s'\n"
           "$k $a --shard 1/2 --json p1.json >/dev/null\n"
           "$k $a --shard 2/2 --json p2.json >/dev/null\n"
           "$k merge p1.json p2.json --json m.json --csv m.csv --html m.html "
           "--junit m.xml",
           dir, KBSIM_BIN);
  ck_assert_msg(sh(script, &p) == 0, "%s%s", p.out.data, p.err.data);
  {
    static const char first[] = "NO GATE intermittent-array "
                                "[listener.idle_timeout=10s]: ";
    ck_assert_msg(!strncmp(p.out.data, first, sizeof(first) - 1), "%s",
                  p.out.data);
  }
  ck_assert_ptr_nonnull(strstr(p.out.data, "\nNO GATE intermittent-array "
                                           "[listener.idle_timeout=30s]: "));
  ck_assert_ptr_null(strstr(p.out.data, "PASS"));
  proc_free(&p);
  snprintf(path, sizeof(path), "%s/m.csv", dir);
  text = proc_slurp(path, NULL);
  ck_assert_msg(!strncmp(text, "listener.idle_timeout,seeds,sessions,", 37),
                "%s", text);
  ck_assert_ptr_nonnull(strstr(text, "\n10s,4,"));
  ck_assert_ptr_nonnull(strstr(text, "\n30s,4,"));
  free(text);
  snprintf(path, sizeof(path), "%s/m.html", dir);
  text = proc_slurp(path, NULL);
  ck_assert_ptr_nonnull(strstr(text, "<svg"));
  ck_assert_ptr_nonnull(strstr(text, "merged from 2 parts"));
  free(text);
  if(proc_have(JUNITPARSER)) {
    snprintf(path, sizeof(path), "%s/m.xml", dir);
    shape_has(path, "suite kbsim merge timed\ncase intermittent-array "
                    "[listener.idle_timeout=10s] rate "
                    "classname=intermittent-array timed\n");
  }
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("junit_shape");
  TCase *tc = tcase_create("one JUnit shape, merge's files");
  bool skipped;
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, bad_scenario_is_a_junit_error);
  tcase_add_test(tc, one_shape_for_every_command);
  tcase_add_test(tc, too_few_seeds_is_its_own_type);
  tcase_add_test(tc, merge_names_points_and_writes_files);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  skipped = proc_skip_unless(JUNITPARSER, "bad_scenario_is_a_junit_error",
                             "apt-get install python3-junitparser");
  return proc_suite_exit(failed, skipped);
}
