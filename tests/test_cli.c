/*
 * test_cli.c - the kbsim program as a user runs it: demo, run with
 * --expect, bad arguments, and `kbsim serve` answering a real
 * `curl --ntlm`.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kb_buf.h"
#include "proc.h"

START_TEST(demo_shows_bug_and_fix)
{
  char *argv[] = {KBSIM_BIN, NULL};
  struct proc_out p;

  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "demo exited %d:\n%s%s", p.status, p.out.data,
                p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: as KB 942638 describes"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "policy per-connection"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "policy per-request"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Outlook Integration Error"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Exchange received:"));
  proc_free(&p);
}
END_TEST

START_TEST(run_expect_matches_outcome)
{
  char *bug_error[] = {KBSIM_BIN,   "run", "--policy", "per-connection",
                       "--clients", "3",   "--posts",  "2",
                       "--seed",    "9",   "--expect", "error",
                       NULL};
  char *bug_clean[] = {KBSIM_BIN,  "run",   "--policy", "per-connection",
                       "--expect", "clean", NULL};
  char *fix_clean[] = {KBSIM_BIN,     "run",       "--policy",
                       "per-request", "--clients", "3",
                       "--expect",    "clean",     NULL};
  struct proc_out p;

  proc_run(bug_error, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "3 of 3 users saw the Outlook "
                                           "Integration Error"));
  ck_assert_ptr_nonnull(
      strstr(p.out.data, "Exchange received 6 of 6 EWS POSTs empty"));
  proc_free(&p);

  proc_run(bug_clean, &p);
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "expected clean, got error"));
  proc_free(&p);

  proc_run(fix_clean, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "0 of 3 users"));
  ck_assert_ptr_nonnull(
      strstr(p.out.data, "Exchange received 0 of 6 EWS POSTs empty"));
  proc_free(&p);
}
END_TEST

/* Every bad invocation: exit 2, one "kbsim...: ..." line and the hint
 * "kbsim: try 'kbsim CMD --help'", nothing on stdout. */
START_TEST(bad_arguments)
{
  static const char *cases[][6] = {
      {"frobnicate", NULL},
      {"runn", NULL},
      {"run", NULL},
      {"run", "--policy", "bogus", NULL},
      {"run", "--policy", "per-request", "--clients", "0", NULL},
      {"run", "--policy", "per-request", "--clients", "12x", NULL},
      {"run", "--policy", "per-request", "--expect", "maybe", NULL},
      {"run", "--policy", "per-request", "--user", "alice", NULL},
      {"run", "--policy", NULL},
      {"run", "--nope", NULL},
      {"run", "--polcy", "per-request", NULL},
      {"run", "--p", "3", NULL},
      {"run", "-x", NULL},
      {"sweep", "bug", NULL},
      {"serve", "--proxy", "127.0.0.1", NULL},
      {"serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0", NULL},
      {"demo", "--seed", "-1", NULL},
      {"demo", "--color", "sometimes", NULL},
      {"demo", "extra", NULL},
      {"help", "runn", NULL},
      {"list", "extra", NULL},
      {"ctl", "--admin", "ftp://127.0.0.1:9/", "status", NULL},
  };
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *argv[8] = {KBSIM_BIN};
    struct proc_out p;
    const char *why;
    int j;

    for(j = 0; cases[i][j]; j++)
      argv[j + 1] = (char *)cases[i][j];
    proc_run(argv, &p);
    why = proc_usage_error(&p);
    ck_assert_msg(!why, "case %zu (%s %s): %s:\n%s", i, cases[i][0],
                  cases[i][1] ? cases[i][1] : "", why, p.err.data);
    proc_free(&p);
  }
}
END_TEST

/* Reads stdout of the server line by line until the listener line. */
static unsigned read_listener_port(int fd)
{
  char line[512];
  size_t n = 0;
  unsigned port = 0;

  while(n < sizeof(line) - 1) {
    char c;
    ssize_t r = read(fd, &c, 1);
    if(r <= 0)
      break;
    if(c != '\n') {
      line[n++] = c;
      continue;
    }
    line[n] = '\0';
    if(sscanf(line, "ISA listener: http://127.0.0.1:%u/", &port) == 1)
      return port;
    n = 0;
  }
  return 0;
}

START_TEST(serve_with_curl_ntlm)
{
  char *serve[] = {KBSIM_BIN,   "serve",
                   "--proxy",   "127.0.0.1:0",
                   "--backend", "127.0.0.1:0",
                   "--policy",  "per-request",
                   "--user",    "FABRIKAM\\alice:Passw0rd!",
                   NULL};
  char url[128];
  char *curl_ok[] = {"/usr/bin/curl",
                     "-sS",
                     "--ntlm",
                     "-u",
                     "FABRIKAM\\alice:Passw0rd!",
                     "-H",
                     "Content-Type: text/xml; charset=utf-8",
                     "-d",
                     "@" TESTS_DIR "/data/oof-request.xml",
                     "-w",
                     "\nstatus=%{http_code}",
                     url,
                     NULL};
  char *curl_bad[] = {"/usr/bin/curl",
                      "-sS",
                      "--ntlm",
                      "-u",
                      "FABRIKAM\\alice:wrong",
                      "-d",
                      "@" TESTS_DIR "/data/oof-request.xml",
                      "-w",
                      "\nstatus=%{http_code}",
                      url,
                      NULL};
  struct proc_out c, s;
  int outfd, errfd;
  unsigned port;
  pid_t pid;

  pid = proc_spawn(serve, &outfd, &errfd);
  port = read_listener_port(outfd);
  ck_assert_uint_gt(port, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx", port);

  proc_run(curl_ok, &c);
  ck_assert_msg(c.status == 0, "curl: %s", c.err.data);
  ck_assert_ptr_nonnull(strstr(c.out.data, "GetUserOofSettingsResponse"));
  ck_assert_ptr_nonnull(strstr(c.out.data, "status=200"));
  proc_free(&c);

  proc_run(curl_bad, &c);
  ck_assert_ptr_nonnull(strstr(c.out.data, "status=401"));
  ck_assert_ptr_null(strstr(c.out.data, "GetUserOofSettingsResponse"));
  proc_free(&c);

  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  proc_collect(pid, outfd, errfd, &s);
  ck_assert_msg(s.status == 0, "serve exited %d: %s", s.status, s.err.data);
  ck_assert_ptr_nonnull(strstr(s.out.data, "stopping on SIGTERM"));
  proc_free(&s);
}
END_TEST

int main(void)
{
  /* Whole lines: these checks read what a line says; wrapping has its
   * own tests (test_cli). */
  setenv("COLUMNS", "10000", 1);
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("kbsim");
  SRunner *sr;
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, demo_shows_bug_and_fix);
  tcase_add_test(tc, run_expect_matches_outcome);
  tcase_add_test(tc, bad_arguments);
  tcase_add_test(tc, serve_with_curl_ntlm);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
