/*
 * test_scenarios.c - scenario files and sweeps as a user runs them: the
 * whole catalogue passes with its documented outcomes, bad files are
 * refused with file, line and reason, a wrong expectation fails the run,
 * and a sweep gives the same rate for the same seeds.
 */
#include <check.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbt.h"
#include "proc.h"

#define MAX_FILES 64

static int count_prefix(const char *s, const char *prefix)
{
  int n = 0;
  size_t plen = strlen(prefix);

  while(*s) {
    if(!strncmp(s, prefix, plen))
      n++;
    s += strcspn(s, "\n");
    if(*s)
      s++;
  }
  return n;
}

START_TEST(catalogue_passes)
{
  char *argv[MAX_FILES + 4] = {KBSIM_BIN, "run"};
  char summary[128];
  struct proc_out p;
  glob_t g;
  size_t i, n = 0;

  ck_assert_int_eq(glob(SCENARIOS_DIR "/*.ini", 0, NULL, &g), 0);
  ck_assert_uint_ge(g.gl_pathc, 12);
  ck_assert_uint_le(g.gl_pathc, MAX_FILES);
  for(i = 0; i < g.gl_pathc; i++)
    if(proc_scenario_runs(g.gl_pathv[i])) /* [kerberos]: main says so */
      argv[2 + n++] = g.gl_pathv[i];
  argv[2 + n] = NULL;
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "catalogue exited %d:\n%s%s", p.status,
                p.out.data, p.err.data);
  ck_assert_int_eq(count_prefix(p.out.data, "PASS "), (int)n);
  ck_assert_int_eq(count_prefix(p.out.data, "FAIL "), 0);
  snprintf(summary, sizeof(summary), "%zu scenarios: %zu passed, 0 failed", n,
           n);
  ck_assert_ptr_nonnull(strstr(p.out.data, summary));
  /* The deciding evidence is on each line. */
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS bug ("));
  ck_assert_ptr_nonnull(strstr(p.out.data,
                               "expected error, got error: 4 of 4 "
                               "users saw the Outlook Integration "
                               "Error; Exchange received 8 of 8 EWS "
                               "POSTs empty (ISA01 rtm "
                               "per-connection: 8)"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS half-patched-array ("));
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA01 rtm+hotfix+script "
                                           "per-request: 0, ISA02 rtm "
                                           "per-connection: 4"));
  proc_free(&p);
  globfree(&g);
}
END_TEST

START_TEST(bad_files_name_file_line_and_reason)
{
  glob_t g;
  size_t i;

  ck_assert_int_eq(glob(TESTS_DIR "/data/bad-scenarios/*.ini", 0, NULL, &g), 0);
  ck_assert_uint_ge(g.gl_pathc, 10);
  for(i = 0; i < g.gl_pathc; i++) {
    char *argv[] = {KBSIM_BIN, "run", g.gl_pathv[i], NULL};
    char want[512], prefix[600];
    struct proc_out p;
    FILE *f = fopen(g.gl_pathv[i], "r");

    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(want, sizeof(want), f));
    fclose(f);
    want[strcspn(want, "\n")] = '\0';
    ck_assert_msg(!strncmp(want, "# error: ", 9), "%s has no '# error:' line",
                  g.gl_pathv[i]);
    proc_run(argv, &p);
    ck_assert_msg(p.status == 2, "%s exited %d", g.gl_pathv[i], p.status);
    snprintf(prefix, sizeof(prefix), "kbsim: %s:", g.gl_pathv[i]);
    ck_assert_msg(!strncmp(p.err.data, prefix, strlen(prefix)),
                  "%s: error does not start with the file: %s", g.gl_pathv[i],
                  p.err.data);
    ck_assert_msg(strstr(p.err.data, want + 9) != NULL,
                  "%s: wanted '%s' in: %s", g.gl_pathv[i], want + 9,
                  p.err.data);
    /* One line, and nothing was run. */
    ck_assert_int_eq(count_prefix(p.err.data, "kbsim: "), 1);
    ck_assert_str_eq(p.out.data, "");
    proc_free(&p);
  }
  globfree(&g);
}
END_TEST

START_TEST(wrong_expectation_fails)
{
  char *argv[] = {KBSIM_BIN, "run", TESTS_DIR "/data/wrong-expectation.ini",
                  NULL};
  struct proc_out p;

  proc_run(argv, &p);
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "FAIL wrong-expectation ("));
  ck_assert_ptr_nonnull(strstr(p.out.data, "expected clean, got error"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "expected empty_posts 0, got 4"));
  proc_free(&p);
}
END_TEST

START_TEST(flags_and_files_do_not_mix)
{
  char *argv[] = {
      KBSIM_BIN, "run", "--policy", "per-request", SCENARIOS_DIR "/bug.ini",
      NULL};
  struct proc_out p;

  proc_run(argv, &p);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "--policy cannot be combined with "
                                           "scenario files"));
  proc_free(&p);
}
END_TEST

/* Pulls "K of N = P%" out of the line starting with label. */
static void read_rate(const char *out, const char *label, unsigned long *k,
                      unsigned long *n, double *pct)
{
  const char *line = strstr(out, label);

  ck_assert_msg(line != NULL, "no '%s' in:\n%s", label, out);
  ck_assert_int_eq(
      sscanf(line + strlen(label), " %lu of %lu = %lf%%", k, n, pct), 3);
}

/* A sweep's rate names what the scenario's users see, not Communicator's
 * error for every kind. */
START_TEST(sweep_names_the_kinds_symptom)
{
  char *oa[] = {KBSIM_BIN, "sweep", SCENARIOS_DIR "/outlook-anywhere-split.ini",
                "--seeds", "1..2",  NULL};
  struct proc_out a;
  unsigned long k, n;
  double pct;

  proc_run(oa, &a);
  ck_assert_msg(a.status == 0, "%d: %s%s", a.status, a.out.data, a.err.data);
  read_rate(a.out.data,
            "sessions with Outlook asking for the password again:", &k, &n,
            &pct);
  ck_assert_uint_gt(n, 0);
  ck_assert_uint_eq(k, n); /* a split handshake kills every channel */
  ck_assert_ptr_null(strstr(a.out.data, "Outlook Integration Error"));
  proc_free(&a);
}
END_TEST

START_TEST(sweep_is_repeatable_and_intermittent)
{
  char *two[] = {KBSIM_BIN, "sweep", SCENARIOS_DIR "/intermittent-array.ini",
                 "--seeds", "1..6",  "--jobs",
                 "2",       NULL};
  char *one[] = {KBSIM_BIN, "sweep", SCENARIOS_DIR "/intermittent-array.ini",
                 "--seeds", "1..6",  "--jobs",
                 "1",       NULL};
  struct proc_out a, b, c;
  unsigned long k, n, ek, en;
  double pct, epct;
  const char *la, *lc;

  proc_run(two, &a);
  proc_run(two, &b);
  proc_run(one, &c);
  ck_assert_msg(a.status == 0, "%s%s", a.out.data, a.err.data);
  ck_assert_str_eq(a.out.data, b.out.data);
  /* The rate does not depend on how many workers ran the seeds. */
  la = strstr(a.out.data, "sessions with");
  lc = strstr(c.out.data, "sessions with");
  ck_assert_ptr_nonnull(la);
  ck_assert_ptr_nonnull(lc);
  ck_assert_str_eq(la, lc);

  read_rate(a.out.data, "sessions with the Outlook Integration Error:", &k, &n,
            &pct);
  ck_assert_uint_eq(n, 6 * 8);
  /* Intermittent: some sessions fail, some do not. */
  ck_assert_uint_gt(k, 0);
  ck_assert_uint_lt(k, n);
  ck_assert_ptr_nonnull(strstr(a.out.data, "(95% CI "));
  read_rate(a.out.data, "EWS POSTs that reached Exchange empty:", &ek, &en,
            &epct);
  ck_assert_uint_eq(en, 6 * 8 * 4);
  ck_assert_uint_gt(ek, 0);
  ck_assert_uint_lt(ek, en);
  proc_free(&a);
  proc_free(&b);
  proc_free(&c);
}
END_TEST

START_TEST(sweep_bad_arguments)
{
  static const char *cases[][6] = {
      {"sweep", SCENARIOS_DIR "/bug.ini", NULL},
      {"sweep", SCENARIOS_DIR "/bug.ini", "--seeds", "9..1", NULL},
      {"sweep", SCENARIOS_DIR "/bug.ini", "--seeds", "1..x", NULL},
      {"sweep", "--seeds", "1..3", NULL},
      {"sweep", SCENARIOS_DIR "/bug.ini", "--seeds", "1..3", "--jobs", NULL},
  };
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *argv[8] = {KBSIM_BIN};
    struct proc_out p;
    int j;

    for(j = 0; cases[i][j]; j++)
      argv[j + 1] = (char *)cases[i][j];
    proc_run(argv, &p);
    ck_assert_msg(p.status == 2, "case %zu exited %d", i, p.status);
    ck_assert_msg(!strncmp(p.err.data, "kbsim sweep: ", 13), "case %zu: %s", i,
                  p.err.data);
    proc_free(&p);
  }
}
END_TEST

START_TEST(evidence_per_scenario)
{
  char dir[256];
  char json[300], bug[300], fix[300];
  char *argv[] = {KBSIM_BIN,
                  "run",
                  SCENARIOS_DIR "/bug.ini",
                  SCENARIOS_DIR "/fix.ini",
                  "--json",
                  json,
                  NULL};
  struct proc_out p;
  FILE *f;

  proc_tmpdir("kbsim-scen", dir, sizeof(dir));
  snprintf(json, sizeof(json), "%s/report.json", dir);
  snprintf(bug, sizeof(bug), "%s/report-bug.json", dir);
  snprintf(fix, sizeof(fix), "%s/report-fix.json", dir);
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  proc_free(&p);
  /* Several scenarios: each gets its own file, named after it. */
  f = fopen(bug, "r");
  ck_assert_msg(f != NULL, "no %s", bug);
  fclose(f);
  f = fopen(fix, "r");
  ck_assert_msg(f != NULL, "no %s", fix);
  fclose(f);
  ck_assert_ptr_null(fopen(json, "r"));
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  proc_whole_lines();
  Suite *s = suite_create("scenarios");
  TCase *tc = tcase_create("scenarios");
  TCase *slow;
  int failed;

  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, catalogue_passes);
  tcase_add_test(tc, wrong_expectation_fails);
  tcase_add_test(tc, flags_and_files_do_not_mix);
  tcase_add_test(tc, sweep_bad_arguments);
  tcase_add_test(tc, evidence_per_scenario);
  tcase_add_test(tc, sweep_names_the_kinds_symptom);
  suite_add_tcase(s, tc);
  /* A sweep of 40 seeds, twice; every broken file of data/bad-scenarios/ (25),
   * a kbsim started for each. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 90);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, bad_files_name_file_line_and_reason);
  tcase_add_test(slow, sweep_is_repeatable_and_intermittent);
  suite_add_tcase(s, slow);
  failed = kbt_run(s);
  return proc_suite_exit(failed,
                         proc_skip_unless(PROC_KRB5KDC,
                                          "catalogue_passes: kerberos-inside",
                                          "apt-get install krb5-kdc"));
}
