/*
 * test_repro.c - the same command with the same seed writes the same
 * bytes: the transcript, the pcap, the HTML report and, with
 * SOURCE_DATE_EPOCH, the JSON report, over repeated runs of 16 clients run
 * side by side (so that the clients' connections are accepted in a
 * different order each time); and two reports made differently compare
 * without their stamps as README.md shows.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"

#define REPRO_MAX_RUNS 20
#define REPRO_EPOCH "1700000000"

/* The four artefacts each run writes into its own directory, with the
 * same relative names, so that the command line (in the JSON's stamp) is
 * the same too. */
static const char *const repro_files[] = {"run.txt", "run.pcap", "run.html",
                                          "run.json"};
#define REPRO_NFILES (sizeof(repro_files) / sizeof(repro_files[0]))

/* Starts kbsim in dir with 16 clients of the per-connection listener (the
 * bug: ISA's notes name the connection that kept its authentication) and
 * every artefact. Returns the pid; output goes to dir/out. */
static pid_t repro_start(const char *dir)
{
  pid_t pid = fork();

  ck_assert_int_ge(pid, 0);
  if(pid == 0) {
    char out[512];
    snprintf(out, sizeof(out), "%s/out", dir);
    if(chdir(dir) || !freopen(out, "w", stdout) || !freopen(out, "a", stderr))
      _exit(126);
    execl(KBSIM_BIN, KBSIM_BIN, "run", "--policy", "per-connection",
          "--clients", "16", "--posts", "2", "--seed", "7", "--transcript",
          "run.txt", "--pcap", "run.pcap", "--json", "run.json", "--html",
          "run.html", (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* Runs n runs, at most width at a time, each in a directory of its own
 * under top, and asserts that every artefact of every run has the bytes
 * of the first run's. */
static void repro_runs(unsigned n, unsigned width)
{
  char top[256], dirs[REPRO_MAX_RUNS][300];
  pid_t pids[REPRO_MAX_RUNS];
  unsigned i, j, started = 0, done = 0;
  size_t f;

  ck_assert_uint_le(n, REPRO_MAX_RUNS);
  ck_assert_int_eq(setenv("SOURCE_DATE_EPOCH", REPRO_EPOCH, 1), 0);
  proc_tmpdir("kbsim-repro", top, sizeof(top));
  for(i = 0; i < n; i++) {
    snprintf(dirs[i], sizeof(dirs[i]), "%s/%u", top, i);
    ck_assert_int_eq(mkdir(dirs[i], 0700), 0);
  }
  while(done < n) {
    int status;
    while(started < n && started - done < width) {
      pids[started] = repro_start(dirs[started]);
      started++;
    }
    ck_assert_int_eq(waitpid(pids[done], &status, 0), pids[done]);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "run %u ended with status %d", done, status);
    done++;
  }
  unsetenv("SOURCE_DATE_EPOCH");
  for(f = 0; f < REPRO_NFILES; f++) {
    char path[400];
    size_t first_len, len;
    char *first;

    snprintf(path, sizeof(path), "%s/%s", dirs[0], repro_files[f]);
    first = proc_slurp(path, &first_len);
    ck_assert_uint_gt(first_len, 0);
    for(j = 1; j < n; j++) {
      char *other;
      snprintf(path, sizeof(path), "%s/%s", dirs[j], repro_files[f]);
      other = proc_slurp(path, &len);
      ck_assert_msg(len == first_len && !memcmp(first, other, len),
                    "run %u's %s differs from run 0's (%zu and %zu bytes)", j,
                    repro_files[f], len, first_len);
      free(other);
    }
    free(first);
  }
  proc_rmdir(top);
}

/* make check: four runs, two at a time. */
START_TEST(same_seed_same_bytes)
{
  repro_runs(4, 2);
}
END_TEST

/* The measure (CI's slow stage): twenty runs, four at a time on
 * two cores. Before ISA's notes named connections by their seeded name,
 * eight runs two at a time gave eight different HTML reports. */
START_TEST(twenty_runs_under_load)
{
  repro_runs(20, 4);
}
END_TEST

/* Runs `bash -c script` in dir; returns its output. */
static void repro_sh(const char *dir, const char *script, struct proc_out *p)
{
  char cmd[2048];
  char *argv[] = {"/bin/bash", "-c", cmd, NULL};

  snprintf(cmd, sizeof(cmd), "cd '%s' && %s", dir, script);
  proc_run(argv, p);
}

/* SOURCE_DATE_EPOCH fixes the stamp's time; a value that is no number of
 * seconds is refused in one line, exit 2, before anything runs. */
START_TEST(source_date_epoch_fixes_written)
{
  char dir[256], path[300];
  struct proc_out p;
  char *json;

  proc_tmpdir("kbsim-epoch", dir, sizeof(dir));
  repro_sh(dir,
           "SOURCE_DATE_EPOCH=" REPRO_EPOCH " '" KBSIM_BIN
           "' run bug --seed 7 --json bug.json",
           &p);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  snprintf(path, sizeof(path), "%s/bug.json", dir);
  json = proc_slurp(path, NULL);
  ck_assert_ptr_nonnull(
      strstr(json, "\"written\": \"2023-11-14T22:13:20.000Z\""));
  free(json);
  repro_sh(dir,
           "SOURCE_DATE_EPOCH=17e8 '" KBSIM_BIN "' run bug --json bad.json",
           &p);
  ck_assert_int_eq(p.status, 2);
  ck_assert_str_eq(p.err.data,
                   "kbsim: SOURCE_DATE_EPOCH is '17e8', not whole seconds "
                   "since 1970 (digits only, at most 253402300799); set it to "
                   "such a number, or unset it for the real clock\n");
  snprintf(path, sizeof(path), "%s/bad.json", dir);
  ck_assert_int_eq(access(path, F_OK), -1);
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* README's recipe: two runs of one seed whose command lines differ (other
 * file names) and that ran at other times differ in their stamps only, and
 * jq without the stamp finds no difference; a run of another seed does
 * differ. */
START_TEST(reports_compare_without_stamps)
{
  static const char diff[] =
      "diff <(jq -S 'del(.stamp)' A.json) <(jq -S 'del(.stamp)' B.json)";
  char dir[256], script[1024];
  struct proc_out p;

  if(!proc_have("/usr/bin/jq"))
    return;
  proc_tmpdir("kbsim-diff", dir, sizeof(dir));
  snprintf(script, sizeof(script),
           "'%s' run bug --seed 7 --json A.json >/dev/null && "
           "'%s' run bug --seed 7 --json ./B.json >/dev/null && "
           "! cmp -s A.json B.json && %s",
           KBSIM_BIN, KBSIM_BIN, diff);
  repro_sh(dir, script, &p);
  ck_assert_msg(p.status == 0, "status %d: %s%s", p.status, p.out.data,
                p.err.data);
  ck_assert_str_eq(p.out.data, "");
  proc_free(&p);
  snprintf(script, sizeof(script),
           "'%s' run bug --seed 8 --json B.json >/dev/null && %s", KBSIM_BIN,
           diff);
  repro_sh(dir, script, &p);
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "\"seed\": 7"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("repro");
  TCase *tc = tcase_create("repro");
  TCase *slow = tcase_create("under load");
  bool skipped = proc_skip_unless(
      "/usr/bin/jq", "reports_compare_without_stamps", "Debian's jq");
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, same_seed_same_bytes);
  tcase_add_test(tc, source_date_epoch_fixes_written);
  tcase_add_test(tc, reports_compare_without_stamps);
  suite_add_tcase(s, tc);
  tcase_set_timeout(slow, 120);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, twenty_runs_under_load);
  suite_add_tcase(s, slow);
  failed = kbt_run(s);
  return proc_suite_exit(failed, skipped);
}
