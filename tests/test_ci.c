/*
 * test_ci.c - what CI pipelines gate on (issue 14): exit codes that tell
 * "as expected" (0), "differed" (1) and "the harness could not run" (3)
 * apart, and the CI formats read by readers nobody on the team wrote:
 * JUnit by junitparser (tests/ci/junit_counts.py), TAP 14 by node-tap's
 * tap-parser (tests/ci/tap_counts.js).
 */
#include <check.h>
#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "kbt.h"
#include "proc.h"

#define JUNITPARSER "/usr/lib/python3/dist-packages/junitparser"
#define TAP_PARSER NODE_MODULES "/tap-parser"

/* A scenario that expects the wrong outcome: bug.ini's array, expecting
 * clean. Written into dir; path gets its name. */
static void write_wrong(const char *dir, char *path, size_t len)
{
  FILE *f;

  snprintf(path, len, "%s/wrong.ini", dir);
  f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs("[scenario]\nname = wrong\ndescription = expects clean from RTM\n"
        "[member ISA01]\npatch = rtm\nscript = no\n"
        "[users]\nFABRIKAM\\alice = Passw0rd!\n"
        "[clients]\ncount = 2\nposts = 2\n"
        "[expect]\noutcome = clean\n",
        f);
  ck_assert_int_eq(fclose(f), 0);
}

/* bug and fix pass, wrong fails: exit 1, and junitparser reads 3 tests,
 * 1 failure, 0 errors, with the deciding evidence as the message. */
START_TEST(junit_counts_and_exit_1)
{
  char dir[256], wrong[300], junit[300];
  char *run[] = {KBSIM_BIN, "run", "bug", "fix", wrong, "--junit", junit, NULL};
  char *read[] = {TESTS_DIR "/ci/junit_counts.py", junit, NULL};
  struct proc_out p;

  if(!proc_have(JUNITPARSER))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-ci", dir, sizeof(dir));
  write_wrong(dir, wrong, sizeof(wrong));
  snprintf(junit, sizeof(junit), "%s/results.xml", dir);
  proc_run(run, &p);
  ck_assert_msg(p.status == 1, "exit %d: %s%s", p.status, p.out.data,
                p.err.data);
  proc_free(&p);
  proc_judge(read, &p);
  ck_assert_msg(p.status == 0, "junitparser: %s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "tests 3\nfailures 1\nerrors 0\n"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "case bug pass"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "case fix pass"));
  ck_assert_msg(strstr(p.out.data, "case wrong failure server-error expected "
                                   "clean, got error"),
                "%s", p.out.data);
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* Runs script with /bin/sh: it must exit 0 and print exactly want. */
static void sh_prints(const char *script, const char *want)
{
  char *run[] = {"/bin/sh", "-c", (char *)script, NULL};
  struct proc_out p;

  proc_run(run, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_str_eq(p.out.data, want);
  proc_free(&p);
}

/* --tap: only TAP on standard output, and tap-parser counts 3, 1 failed. */
START_TEST(tap_counts)
{
  char dir[256], wrong[300], script[512];
  char *run[] = {"/bin/sh", "-c", script, NULL};
  struct proc_out p;

  if(!proc_have(TAP_PARSER))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-ci", dir, sizeof(dir));
  write_wrong(dir, wrong, sizeof(wrong));
  snprintf(script, sizeof(script),
           "'%s' run bug fix '%s' --tap | node '%s/ci/tap_counts.js' '%s'",
           KBSIM_BIN, wrong, TESTS_DIR, NODE_MODULES);
  proc_run(run, &p);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data,
                   "{\"ok\":false,\"count\":3,\"pass\":2,\"fail\":1,"
                   "\"failures\":[\"wrong\"]}\n");
  proc_free(&p);
  /* sweep --tap: one test per grid point, the failing one named. */
  snprintf(script, sizeof(script),
           "'%s' sweep intermittent-array --seeds 1..6 --vary "
           "member.ISA02.script=yes --vary member.ISA02.patch=rtm,sp1 "
           "--expect-rate 0%%..10%% --tap 2>/dev/null | node "
           "'%s/ci/tap_counts.js' '%s'",
           KBSIM_BIN, TESTS_DIR, NODE_MODULES);
  proc_run(run, &p);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_msg(strstr(p.out.data, "\"count\":2,\"pass\":1,\"fail\":1,"), "%s",
                p.out.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "member.ISA02.patch=rtm] rate"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* The harness could not run (descriptors): exit 3, and the JUnit says
 * error, class infrastructure; never a pass of --expect error. */
START_TEST(infrastructure_is_exit_3)
{
  char dir[256], junit[300];
  char *run[] = {"/usr/bin/prlimit",
                 "--nofile=200:200",
                 KBSIM_BIN,
                 "run",
                 "bug",
                 "--junit",
                 junit,
                 NULL};
  char *demo[] = {"/usr/bin/prlimit", "--nofile=30:30", KBSIM_BIN, "demo",
                  NULL};
  char *read[] = {TESTS_DIR "/ci/junit_counts.py", junit, NULL};
  struct proc_out p;

  /* run's up-front refusal is test_cli's descriptor_limit_refused_up_front.
   * The demo too: no verdict on KB 942638 from a harness that failed. */
  proc_run(demo, &p);
  ck_assert_msg(p.status == 3, "exit %d: %s", p.status, p.err.data);
  ck_assert_ptr_null(strstr(p.out.data, "as KB 942638 describes"));
  proc_free(&p);
  proc_tmpdir("kbsim-ci", dir, sizeof(dir));
  snprintf(junit, sizeof(junit), "%s/results.xml", dir);
  /* bug's 4 clients fit in 200 descriptors: shrink further with 40. */
  run[1] = "--nofile=40:40";
  proc_run(run, &p);
  ck_assert_msg(p.status == 3, "exit %d: %s%s", p.status, p.out.data,
                p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "ERROR bug"));
  ck_assert_ptr_null(strstr(p.out.data, "PASS"));
  proc_free(&p);
  if(proc_have(JUNITPARSER)) {
    proc_judge(read, &p);
    ck_assert_msg(strstr(p.out.data, "tests 1\nfailures 0\nerrors 1\n"), "%s",
                  p.out.data);
    ck_assert_ptr_nonnull(strstr(p.out.data, "case bug error infrastructure"));
    proc_free(&p);
  }
  proc_rmdir(dir);
}
END_TEST

/* A sweep gates on its rate: the whole 95% interval inside the bounds
 * passes (exit 0), a narrow wrong range fails (exit 1) with a JUnit
 * failure; the scenario's [expect] rate is the default bound. */
START_TEST(sweep_gates_on_its_rate)
{
  char dir[256], file[300], junit[300], json[300];
  char *pass[] = {KBSIM_BIN, "sweep",         "intermittent-array", "--seeds",
                  "1..8",    "--expect-rate", "20%..95%",           NULL};
  /* Passing needs the narrower interval of 8 seeds; failing does not. */
  char *fail[] = {KBSIM_BIN,   "sweep",   "intermittent-array",
                  "--seeds",   "1..4",    "--expect-rate",
                  "90%..100%", "--junit", junit,
                  "--json",    json,      NULL};
  char *own[] = {KBSIM_BIN, "sweep", file, "--seeds", "1..4", NULL};
  char *read[] = {TESTS_DIR "/ci/junit_counts.py", junit, NULL};
  struct proc_out p;
  FILE *f;

  proc_tmpdir("kbsim-ci", dir, sizeof(dir));
  snprintf(junit, sizeof(junit), "%s/sweep.xml", dir);
  snprintf(json, sizeof(json), "%s/sweep.json", dir);
  snprintf(file, sizeof(file), "%s/rate.ini", dir);
  proc_run(pass, &p);
  ck_assert_msg(p.status == 0, "exit %d: %s%s", p.status, p.out.data,
                p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS intermittent-array rate"));
  proc_free(&p);
  proc_run(fail, &p);
  ck_assert_msg(p.status == 1, "exit %d: %s", p.status, p.out.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "FAIL intermittent-array rate"));
  proc_free(&p);
  if(proc_have(JUNITPARSER)) {
    proc_judge(read, &p);
    ck_assert_msg(strstr(p.out.data, "tests 1\nfailures 1\nerrors 0\n"), "%s",
                  p.out.data);
    proc_free(&p);
  }
  {
    char *text = proc_slurp(json, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\"verdict\": \"fail\""));
    ck_assert_ptr_nonnull(strstr(text, "\"partial\": false"));
    free(text);
  }
  /* The scenario's own [expect] rate, narrow and wrong: exit 1. */
  f = fopen(file, "w");
  ck_assert_ptr_nonnull(f);
  fputs("[scenario]\nname = rate\n[member ISA01]\npatch = rtm\n"
        "script = no\n[users]\nFABRIKAM\\alice = Passw0rd!\n"
        "[clients]\ncount = 2\n[expect]\nrate = 0%..1%\n",
        f);
  ck_assert_int_eq(fclose(f), 0);
  proc_run(own, &p);
  ck_assert_msg(p.status == 1, "exit %d: %s", p.status, p.out.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "not inside 0.00%..1.00%"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* --vary makes a grid: one result per point, in the CSV read back by
 * Python's csv module; the fully patched member (sp1 + script) shows no
 * error, the unpatched one does; a key the scenario lacks is refused
 * before anything runs (exit 2). */
START_TEST(sweep_grid_csv)
{
  char script[1024];
  char *bad[] = {KBSIM_BIN, "sweep",  "intermittent-array",     "--seeds",
                 "1..3",    "--vary", "member.ISA09.patch=sp1", NULL};
  struct proc_out p;

  snprintf(script, sizeof(script),
           "'%s' sweep intermittent-array --seeds 1..6 "
           "--vary member.ISA02.patch=rtm,sp1 --vary member.ISA02.script=yes "
           "--csv - 2>/dev/null | /usr/bin/python3 -c '"
           "import csv,sys\n"
           "rows=list(csv.DictReader(sys.stdin))\n"
           "print(len(rows))\n"
           "for r in rows: print(r[\"member.ISA02.patch\"], "
           "int(r[\"with_error\"])>0, r[\"sessions\"], r[\"verdict\"])'",
           KBSIM_BIN);
  sh_prints(script, "2\nrtm True 48 pass\nsp1 False 48 pass\n");
  proc_run(bad, &p);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "the scenario has no member ISA09"));
  ck_assert_str_eq(p.out.data, "");
  proc_free(&p);

  /* LOW..HIGH/STEP: each value from LOW, with its unit, HIGH included. */
  snprintf(script, sizeof(script),
           "'%s' sweep intermittent-array --seeds 1..1 "
           "--vary listener.idle_timeout=10s..60s/25s "
           "--vary clients.think=0s..30s,0s..60s --csv - 2>/dev/null | "
           "/usr/bin/python3 -c '"
           "import csv,sys\n"
           "for r in csv.DictReader(sys.stdin): "
           "print(r[\"listener.idle_timeout\"], r[\"clients.think\"])'",
           KBSIM_BIN);
  sh_prints(script, "10s 0s..30s\n35s 0s..30s\n60s 0s..30s\n"
                    "10s 0s..60s\n35s 0s..60s\n60s 0s..60s\n");
  /* Whole numbers stay whole (not 1e+06). */
  snprintf(script, sizeof(script),
           "'%s' sweep intermittent-array --seeds 1..1 "
           "--vary listener.max_requests=999998..1000000/1 --csv - "
           "2>/dev/null | cut -d, -f1",
           KBSIM_BIN);
  sh_prints(script, "listener.max_requests\n999998\n999999\n1000000\n");

  /* A bad --vary says what is wrong with it, before anything runs. */
  {
    static const char *const wrong[][2] = {
        {"clients.think=0..60s/30s", "must be numbers with the same unit"},
        {"listener.idle_timeout=60s..10s/10s", "HIGH is below LOW"},
        {"listener.idle_timeout=10s..60s/0s", "STEP must be above 0"},
        {"listener.idle_timeout=1s..1000s/1s", "makes more than 64 values"},
        {"listener.idle_timeout=10s,,30s", "an empty value between commas"},
        {"listener.idle_timeout=x..60s/10s", "LOW 'x' is not a number"},
        {"idle", "is not KEY=V1,V2,... or KEY=LOW..HIGH/STEP"},
    };
    size_t i;

    for(i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
      bad[6] = (char *)wrong[i][0];
      proc_run(bad, &p);
      ck_assert_int_eq(p.status, 2);
      ck_assert_msg(strstr(p.err.data, wrong[i][1]), "%s: %s", wrong[i][0],
                    p.err.data);
      ck_assert_str_eq(p.out.data, "");
      proc_free(&p);
    }
  }
}
END_TEST

/* Four shards, run as separate processes, merge into the results of one
 * unsharded run (compared as JSON values, only the stamp differing, which
 * lists each part's command line); a missing part is refused. */
START_TEST(shards_merge_to_one_run)
{
  char dir[256], script[4096];

  proc_tmpdir("kbsim-ci", dir, sizeof(dir));
  snprintf(
      script, sizeof(script),
      "set -e; cd '%s'; k='%s'; a='sweep intermittent-array --seeds "
      "1..4 --vary listener.idle_timeout=10s,30s --expect-rate "
      "5%%..95%%'\n"
      "$k $a --json full.json >/dev/null\n"
      "for i in 1 2 3 4; do $k $a --shard $i/4 --json part$i.json "
      ">/dev/null & done; wait\n"
      "$k merge part4.json part2.json part1.json part3.json --json "
      "merged.json >/dev/null\n"
      "if $k merge part1.json part2.json part3.json >/dev/null "
      "2>err.txt; then echo merged-with-a-part-missing; fi\n"
      "grep -c 'is in no part' err.txt\n"
      "/usr/bin/python3 -c '"
      "import json\n"
      "a=json.load(open(\"full.json\")); b=json.load(open(\"merged.json\"))\n"
      "s=b.pop(\"kbsim\"); a.pop(\"kbsim\")\n"
      "print(a==b, len(s[\"shards\"]), len(b[\"points\"]))'",
      dir, KBSIM_BIN);
  sh_prints(script, "1\nTrue 4 2\n");
  proc_rmdir(dir);
}
END_TEST

/* Whether pid has a thread named name (/proc/PID/task/T/comm). */
static bool has_thread(pid_t pid, const char *name)
{
  char path[384], comm[64];
  DIR *d;
  struct dirent *e;
  bool found = false;

  snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
  d = opendir(path);
  if(!d)
    return false;
  while(!found && (e = readdir(d))) {
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
    f = fopen(path, "r");
    if(!f)
      continue;
    found = fgets(comm, sizeof(comm), f) && !strncmp(comm, name, strlen(name));
    fclose(f);
  }
  closedir(d);
  return found;
}

/* Ctrl-C stops a sweep cleanly: what ran is reported, marked partial,
 * exit 130, and the JSON says partial. */
START_TEST(sweep_interrupted_reports_partial)
{
  char dir[256], json[300];
  char *sweep[] = {KBSIM_BIN, "sweep",   "intermittent-array",
                   "--seeds", "1..1000", "--json",
                   json,      NULL};
  struct proc_out p;
  int outfd, errfd;
  pid_t pid;
  char *text;
  long spins = 0;

  proc_tmpdir("kbsim-ci", dir, sizeof(dir));
  snprintf(json, sizeof(json), "%s/partial.json", dir);
  pid = proc_spawn(sweep, &outfd, &errfd);
  /* The workers' threads exist once SIGINT is handled. */
  while(!has_thread(pid, "kb-sweep")) {
    ck_assert_int_lt(++spins, 100000000);
    sched_yield();
  }
  ck_assert_int_eq(kill(pid, SIGINT), 0);
  proc_collect(pid, outfd, errfd, &p);
  ck_assert_msg(p.status == 130, "exit %d: %s%s", p.status, p.out.data,
                p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "(partial: interrupted)"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "ERROR intermittent-array rate: "
                                           "interrupted (partial)"));
  proc_free(&p);
  text = proc_slurp(json, NULL);
  ck_assert_ptr_nonnull(strstr(text, "\"partial\": true"));
  free(text);
  proc_rmdir(dir);
}
END_TEST

/* What run hands to CI: exit codes, JUnit, TAP. */
static Suite *ci_formats_suite(void)
{
  Suite *s = suite_create("formats");
  TCase *tc = tcase_create("exit codes and CI formats");
  TCase *slow;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, junit_counts_and_exit_1);
  tcase_add_test(tc, infrastructure_is_exit_3);
  suite_add_tcase(s, tc);
  /* node-tap's parser. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, tap_counts);
  suite_add_tcase(s, slow);
  return s;
}

/* Sweeps as CI gates on them: rates, grids, shards, Ctrl-C. */
static Suite *ci_sweeps_suite(void)
{
  Suite *s = suite_create("sweeps");
  TCase *tc = tcase_create("sweeps");
  TCase *slow;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, sweep_gates_on_its_rate);
  tcase_add_test(tc, sweep_interrupted_reports_partial);
  suite_add_tcase(s, tc);
  /* A 3 x 3 grid, and four shards merged: some forty sweep processes. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, sweep_grid_csv);
  tcase_add_test(slow, shards_merge_to_one_run);
  suite_add_tcase(s, slow);
  return s;
}

/* Two suites, so that make check runs them side by side. */
int main(void)
{
  static Suite *(*const suites[])(void) = {ci_formats_suite, ci_sweeps_suite,
                                           NULL};
  bool skipped = false;
  int failed;

  failed = kbt_run_list(suites);
  skipped |= proc_skip_unless(JUNITPARSER, "junit_counts_and_exit_1",
                              "apt-get install python3-junitparser");
  skipped |= proc_skip_unless(TAP_PARSER, "tap_counts", "run scripts/setup");
  return proc_suite_exit(failed, skipped);
}
