/*
 * test_install.c - kbsim as it is installed: `cmake --install` into a
 * scratch DESTDIR, then the installed program run from / with only the
 * installed files; the man page judged by man-db, the completions by bash
 * (with bash-completion) and zsh, the JSON report by python3-jsonschema,
 * and tests/run-suites' handling of skipped suites. A test whose judge is
 * missing is skipped, and the suite exits 77 saying why.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"

#define BASH_COMPLETION "/usr/share/bash-completion/bash_completion"

static char stage[256];

/* Installs the build into a new scratch DESTDIR, once per test. */
static void install_into_stage(void)
{
  char *argv[] = {"/usr/bin/cmake", "--install", BUILD_DIR, NULL};
  struct proc_out p;

  proc_tmpdir("kbsim-install", stage, sizeof(stage));
  setenv("DESTDIR", stage, 1);
  proc_run(argv, &p);
  unsetenv("DESTDIR");
  ck_assert_msg(p.status == 0, "cmake --install: %s%s", p.out.data, p.err.data);
  proc_free(&p);
}

/* Returns stage + prefix + rel in a static buffer. */
static const char *staged(const char *rel)
{
  static char path[2][512];
  static int which;

  which = !which;
  snprintf(path[which], sizeof(path[which]), "%s%s/%s", stage, INSTALL_PREFIX,
           rel);
  return path[which];
}

/* Every file the issue names lands where Debian and the shells look. */
START_TEST(install_puts_every_file)
{
  static const char *const files[] = {
      "bin/kbsim",
      "share/kbsim/scenarios/bug.ini",
      "share/kbsim/scenarios/fix.ini",
      "share/kbsim/scenarios/half-patched-array.ini",
      "share/man/man1/kbsim.1.gz",
      "share/bash-completion/completions/kbsim",
      "share/zsh/vendor-completions/_kbsim",
      "share/doc/kbsim/README.md",
      "share/doc/kbsim/scenarios.md",
      "share/doc/kbsim/report.schema.json",
      "share/doc/kbsim/changelog.gz",
      "share/doc/kbsim/copyright"};
  struct stat st;
  size_t i;

  install_into_stage();
  for(i = 0; i < sizeof(files) / sizeof(files[0]); i++)
    ck_assert_msg(stat(staged(files[i]), &st) == 0 && st.st_size > 0,
                  "%s is not installed", staged(files[i]));
  ck_assert_int_eq(access(staged("bin/kbsim"), X_OK), 0);
  proc_rmdir(stage);
}
END_TEST

/* The installed program, run from /, finds its own catalogue and works. */
START_TEST(installed_runs_from_root)
{
  char bin[512], cwd[4096], want[600];
  struct proc_out p;

  install_into_stage();
  snprintf(bin, sizeof(bin), "%s", staged("bin/kbsim"));
  ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
  ck_assert_int_eq(chdir("/"), 0);
  unsetenv("KBSIM_SCENARIOS");
  {
    char *run[] = {bin, "run", "bug", "fix", NULL};
    char *demo[] = {bin, "demo", NULL};
    char *version[] = {bin, "--version", NULL};

    proc_run(run, &p);
    ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
    snprintf(want, sizeof(want), "PASS bug (%s)",
             staged("share/kbsim/scenarios/bug.ini"));
    ck_assert_msg(strstr(p.out.data, want), "%s not in %s", want, p.out.data);
    ck_assert_ptr_nonnull(
        strstr(p.out.data, "2 scenarios: 2 passed, 0 failed"));
    proc_free(&p);
    proc_run(demo, &p);
    ck_assert_int_eq(p.status, 0);
    ck_assert_ptr_nonnull(
        strstr(p.out.data, "Verdict: as KB 942638 describes"));
    proc_free(&p);
    proc_run(version, &p);
    ck_assert_int_eq(p.status, 0);
    ck_assert_ptr_nonnull(strstr(p.out.data, "libmicrohttpd"));
    proc_free(&p);
  }
  ck_assert_int_eq(chdir(cwd), 0);
  proc_rmdir(stage);
}
END_TEST

/* man-db reads the page without a warning; it names every option of every
 * command's --help, the exit codes, the environment and the files. */
START_TEST(man_page_is_clean_and_complete)
{
  static const char *const cmds[] = {"demo", "run",    "sweep", "serve",
                                     "ctl",  "client", "list",  "help"};
  char *man[] = {"/usr/bin/man", "--warnings", "-l", BUILD_DIR "/kbsim.1",
                 NULL};
  char *gen[] = {KBSIM_BIN, "--man", NULL};
  struct proc_out m, g, h;
  char *page;
  size_t i;

  if(!proc_have("/usr/bin/man"))
    return; /* skipped; main says so */
  setenv("MANWIDTH", "400", 1);
  proc_run(man, &m);
  ck_assert_msg(m.status == 0, "man exited %d: %s", m.status, m.err.data);
  ck_assert_msg(m.err.data[0] == '\0', "man --warnings: %s", m.err.data);
  /* The built page is what the program writes now. */
  page = proc_slurp(BUILD_DIR "/kbsim.1", NULL);
  proc_run(gen, &g);
  ck_assert_str_eq(page, g.out.data);
  free(page);
  proc_free(&g);
  ck_assert_ptr_nonnull(strstr(m.out.data, "EXIT STATUS"));
  ck_assert_ptr_nonnull(strstr(m.out.data, "KBSIM_SCENARIOS"));
  ck_assert_ptr_nonnull(strstr(m.out.data, "NO_COLOR"));
  ck_assert_ptr_nonnull(strstr(m.out.data, "FILES"));
  for(i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    char *help[] = {KBSIM_BIN, (char *)cmds[i], "--help", NULL};
    const char *line;
    char title[64];

    snprintf(title, sizeof(title), "kbsim %s", cmds[i]);
    ck_assert_msg(strstr(m.out.data, title), "%s not in the page", title);
    proc_run(help, &h);
    ck_assert_int_eq(h.status, 0);
    for(line = strstr(h.out.data, "\n  --"); line;
        line = strstr(line + 1, "\n  --")) {
      char opt[64];
      snprintf(opt, sizeof(opt), "%.*s", (int)strcspn(line + 3, " [\n"),
               line + 3);
      ck_assert_msg(strstr(m.out.data, opt), "%s %s not in the man page",
                    cmds[i], opt);
    }
    proc_free(&h);
  }
  proc_free(&m);
}
END_TEST

/* What bash completes for each of the n command lines, with the completion
 * kbsim installs and bash-completion's helpers, all in one bash (sourcing
 * bash-completion costs more than completing): *p holds each line's
 * candidates, one a line, each line's ended by a line "--". */
static void bash_complete(const char *const *lines, size_t n,
                          struct proc_out *p)
{
  char script[8192];
  char *argv[] = {"/usr/bin/bash", "--norc", "-c", script, NULL};
  size_t i, used;

  used = (size_t)snprintf(script, sizeof(script),
                          "source " BASH_COMPLETION "; source " BUILD_DIR
                          "/kbsim.bash; bin=" KBSIM_BIN "; "
                          "PATH=${bin%%/*}:$PATH; ");
  for(i = 0; i < n; i++) {
    used += (size_t)snprintf(
        script + used, sizeof(script) - used,
        "COMP_LINE='%s'; COMP_POINT=${#COMP_LINE}; "
        "read -ra COMP_WORDS <<< \"$COMP_LINE\"; "
        "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=(''); "
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); _kbsim; "
        "printf '%%s\\n' \"${COMPREPLY[@]}\" --; ",
        lines[i]);
    ck_assert_uint_lt(used, sizeof(script));
  }
  proc_run(argv, p);
  ck_assert_msg(p->status == 0, "bash: %s", p->err.data);
}

START_TEST(bash_completion)
{
  static const char *const lines[] = {"kbsim ru",
                                      "kbsim run --pol",
                                      "kbsim run --policy ",
                                      "kbsim ctl --admin 127.0.0.1:1 app",
                                      "kbsim run half",
                                      "kbsim sweep bug --vary listener.idle",
                                      "kbsim sweep bug --vary "};
  struct proc_out p;
  char *out[7], *at;
  size_t i;

  if(!proc_have(BASH_COMPLETION))
    return; /* skipped; main says so */
  bash_complete(lines, 7, &p);
  /* Each line's candidates, cut at its "--" line. */
  for(at = p.out.data, i = 0; i < 7; i++) {
    char *end = strstr(at, "--\n");
    ck_assert_msg(end && (end == at || end[-1] == '\n'), "%s", p.out.data);
    *end = '\0';
    out[i] = at;
    at = end + 3;
  }
  ck_assert_str_eq(out[0], "run\n");
  ck_assert_str_eq(out[1], "--policy\n");
  ck_assert_str_eq(out[2], "per-connection\nper-request\n");
  ck_assert_str_eq(out[3], "apply-fix\n");
  ck_assert_ptr_nonnull(strstr(out[4], "half-patched-array\n"));
  /* --vary offers the scenario keys, each with its "=", not KEY=... */
  ck_assert_str_eq(out[5], "listener.idle_timeout=\n");
  ck_assert_ptr_nonnull(strstr(out[6], "member.NAME.patch=\n"));
  ck_assert_ptr_null(strstr(out[6], "KEY"));
  proc_free(&p);
}
END_TEST

/* zsh reads the completion file without a syntax error. */
START_TEST(zsh_completion_parses)
{
  char *argv[] = {"/usr/bin/zsh", "-n", BUILD_DIR "/_kbsim", NULL};
  struct proc_out p;

  if(!proc_have("/usr/bin/zsh"))
    return; /* skipped; main says so */
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0 && !p.err.data[0], "zsh -n: %s", p.err.data);
  proc_free(&p);
}
END_TEST

/* python3-jsonschema accepts real reports against the schema kbsim
 * installs, and refuses one that breaks it. */
START_TEST(json_report_matches_schema)
{
  char dir[256], json[300], bad[300], arrays[300], arrays_fix[320];
  char arrays_half[330];
  struct proc_out p;
  char *body, *at;
  FILE *f;

  if(!proc_have(PROC_JSONSCHEMA))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-schema", dir, sizeof(dir));
  snprintf(json, sizeof(json), "%s/run.json", dir);
  snprintf(arrays, sizeof(arrays), "%s/a.json", dir);
  snprintf(arrays_fix, sizeof(arrays_fix), "%s/a-fix.json", dir);
  snprintf(arrays_half, sizeof(arrays_half), "%s/a-half-patched-array.json",
           dir);
  snprintf(bad, sizeof(bad), "%s/bad.json", dir);
  {
    char *run[] = {KBSIM_BIN,        "run",       "--policy",
                   "per-connection", "--clients", "3",
                   "--json",         json,        NULL};
    char *files[] = {KBSIM_BIN,
                     "run",
                     SCENARIOS_DIR "/half-patched-array.ini",
                     SCENARIOS_DIR "/fix.ini",
                     "--json",
                     arrays,
                     NULL};
    proc_run(run, &p);
    ck_assert_int_eq(p.status, 0);
    proc_free(&p);
    proc_run(files, &p);
    ck_assert_int_eq(p.status, 0);
    proc_free(&p);
  }
  /* An outcome the schema does not know must be refused. */
  body = proc_slurp(json, NULL);
  at = strstr(body, "\"server-error\"");
  ck_assert_ptr_nonnull(at);
  memcpy(at, "\"server-erorr\"", 14);
  f = fopen(bad, "w");
  ck_assert_ptr_nonnull(f);
  fputs(body, f);
  ck_assert_int_eq(fclose(f), 0);
  free(body);
  {
    /* Judged in one python3-jsonschema process, file by file. */
    const char *docs[] = {json, arrays_fix, arrays_half, bad, NULL};
    char line[400];
    size_t i;

    ck_assert_int_eq(
        proc_schema_each(SOURCE_DIR "/docs/report.schema.json", docs, &p), 1);
    for(i = 0; i < 3; i++) {
      snprintf(line, sizeof(line), "valid %s", docs[i]);
      ck_assert_msg(proc_count_lines(p.out.data, line) == 1, "%s: %s", docs[i],
                    p.out.data);
    }
    snprintf(line, sizeof(line), "invalid %s: ", bad);
    ck_assert_msg(strstr(p.out.data, line) != NULL, "%s", p.out.data);
    proc_free(&p);
  }
  proc_rmdir(dir);
}
END_TEST

/* run-suites: a suite that exits 77 is reported as skipped and passes,
 * unless KBSIM_NO_SKIP=1 (CI), where it fails the run. */
START_TEST(run_suites_reports_skips)
{
  char dir[256], path[300];
  char *argv[] = {TESTS_DIR "/run-suites", dir, "1", "fake", NULL};
  struct proc_out p;
  FILE *f;

  proc_tmpdir("kbsim-skip", dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/fake", dir);
  f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  fputs("#!/bin/sh\necho 'skip: t: needs /x, which is missing (y)' >&2\n"
        "exit 77\n",
        f);
  ck_assert_int_eq(fclose(f), 0);
  ck_assert_int_eq(chmod(path, 0700), 0);
  unsetenv("KBSIM_NO_SKIP");
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "skip: t: needs /x"));
  ck_assert_ptr_nonnull(strstr(p.err.data, "skipped tests"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "some tests skipped"));
  proc_free(&p);
  setenv("KBSIM_NO_SKIP", "1", 1);
  proc_run(argv, &p);
  unsetenv("KBSIM_NO_SKIP");
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.err.data, "failing suites: fake"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("install");
  TCase *tc = tcase_create("install");
  bool skipped = false;
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, install_puts_every_file);
  tcase_add_test(tc, installed_runs_from_root);
  tcase_add_test(tc, man_page_is_clean_and_complete);
  tcase_add_test(tc, bash_completion);
  tcase_add_test(tc, zsh_completion_parses);
  tcase_add_test(tc, json_report_matches_schema);
  tcase_add_test(tc, run_suites_reports_skips);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  skipped |= proc_skip_unless("/usr/bin/man", "man_page_is_clean_and_complete",
                              "apt-get install man-db");
  skipped |= proc_skip_unless(BASH_COMPLETION, "bash_completion",
                              "apt-get install bash-completion");
  skipped |= proc_skip_unless("/usr/bin/zsh", "zsh_completion_parses",
                              "apt-get install zsh");
  skipped |= proc_skip_unless(PROC_JSONSCHEMA, "json_report_matches_schema",
                              "apt-get install python3-jsonschema");
  return proc_suite_exit(failed, skipped);
}
