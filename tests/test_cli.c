/*
 * test_cli.c - the kbsim program as a user runs it: demo, run with
 * --expect, bad arguments, and `kbsim serve` answering a real
 * `curl --ntlm`.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
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

/* Every bad invocation: exit 2, one "kbsim: ..." line, then the usage. */
START_TEST(bad_arguments)
{
  static const char *cases[][6] = {
      {"frobnicate", NULL},
      {"run", NULL},
      {"run", "--policy", "bogus", NULL},
      {"run", "--policy", "per-request", "--clients", "0", NULL},
      {"run", "--policy", "per-request", "--clients", "12x", NULL},
      {"run", "--policy", "per-request", "--expect", "maybe", NULL},
      {"run", "--policy", "per-request", "--user", "alice", NULL},
      {"run", "--policy", NULL},
      {"run", "--nope", NULL},
      {"serve", "--proxy", "127.0.0.1", NULL},
      {"serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0", NULL},
      {"demo", "--seed", "-1", NULL},
  };
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *argv[8] = {KBSIM_BIN};
    struct proc_out p;
    char *nl;
    int j;

    for(j = 0; cases[i][j]; j++)
      argv[j + 1] = (char *)cases[i][j];
    proc_run(argv, &p);
    ck_assert_msg(p.status == 2, "case %zu (%s) exited %d", i, cases[i][0],
                  p.status);
    ck_assert_msg(!strncmp(p.err.data, "kbsim: ", 7), "case %zu: %s", i,
                  p.err.data);
    nl = strchr(p.err.data, '\n');
    ck_assert_ptr_nonnull(nl);
    ck_assert_msg(!strncmp(nl, "\n\nusage: kbsim", 14), "case %zu: %s", i,
                  p.err.data);
    ck_assert_str_eq(p.out.data, "");
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

#define T_SECRET "Zq8-file-Secret"

/* Credentials outside the process list: serve reads a user file, client
 * takes DOMAIN\user alone and the password from KBSIM_PASSWORD; a
 * malformed spec is refused without quoting it (it may hold a password:
 * a blank typed for the colon). */
START_TEST(credentials_never_on_the_command_line)
{
  char dir[256], file[300], url[128], cmdline[4096];
  char *serve[] = {KBSIM_BIN,     "serve",       "--proxy",  "127.0.0.1:0",
                   "--backend",   "127.0.0.1:0", "--policy", "per-request",
                   "--user-file", file,          NULL};
  char *client[] = {KBSIM_BIN,         "client",  "--url", url, "--user",
                    "FABRIKAM\\alice", "--posts", "1",     NULL};
  char *bad[][9] = {
      {KBSIM_BIN, "client", "--url", "http://127.0.0.1:1/", "--user",
       "FABRIKAM\\alice " T_SECRET, NULL},
      {KBSIM_BIN, "run", "--policy", "per-request", "--user",
       "FABRIKAM\\alice " T_SECRET, NULL},
      {KBSIM_BIN, "serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
       "--policy", "per-request", NULL},
  };
  struct proc_out c, s;
  int outfd, errfd, fd;
  unsigned port;
  size_t i;
  ssize_t n;
  pid_t pid;
  FILE *f;

  proc_tmpdir("kbsim-cred", dir, sizeof(dir));
  snprintf(file, sizeof(file), "%s/users.ini", dir);
  f = fopen(file, "w");
  ck_assert_ptr_nonnull(f);
  fputs("# the lines of a scenario's [users]\n[users]\n"
        "FABRIKAM\\alice = " T_SECRET "\n",
        f);
  fclose(f);

  pid = proc_spawn(serve, &outfd, &errfd);
  port = read_listener_port(outfd);
  ck_assert_uint_gt(port, 0);
  snprintf(url, sizeof(url), "/proc/%d/cmdline", (int)pid);
  fd = open(url, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  n = read(fd, cmdline, sizeof(cmdline) - 1);
  close(fd);
  ck_assert_int_gt(n, 0);
  ck_assert_ptr_null(memmem(cmdline, (size_t)n, T_SECRET, strlen(T_SECRET)));
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);

  ck_assert_int_eq(setenv("KBSIM_PASSWORD", T_SECRET, 1), 0);
  proc_run(client, &c);
  unsetenv("KBSIM_PASSWORD");
  ck_assert_msg(c.status == 0, "client exited %d: %s%s", c.status, c.out.data,
                c.err.data);
  ck_assert_ptr_nonnull(strstr(c.out.data, "no error"));
  ck_assert_ptr_null(strstr(c.out.data, T_SECRET));
  proc_free(&c);

  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  proc_collect(pid, outfd, errfd, &s);
  ck_assert_int_eq(s.status, 0);
  ck_assert_ptr_null(strstr(s.out.data, T_SECRET));
  ck_assert_ptr_null(strstr(s.err.data, T_SECRET));
  proc_free(&s);

  /* The third: serve with no users at all. */
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    proc_run(bad[i], &c);
    ck_assert_msg(c.status == 2, "case %zu exited %d", i, c.status);
    ck_assert_msg(!strstr(c.err.data, T_SECRET) &&
                      !strstr(c.out.data, T_SECRET),
                  "case %zu echoed the password: %s", i, c.err.data);
    proc_free(&c);
  }
  proc_rmdir(dir);
}
END_TEST

/* Under a descriptor limit the run cannot fit, kbsim says so before it
 * starts, and never passes --expect error on transport failures (issue
 * 13: exit 0 with 520 transport errors counted as the bug). */
START_TEST(descriptor_limit_refused_up_front)
{
  char *run[] = {"/usr/bin/prlimit",
                 "--nofile=300:300",
                 KBSIM_BIN,
                 "run",
                 "--policy",
                 "per-connection",
                 "--clients",
                 "100",
                 "--expect",
                 "error",
                 NULL};
  struct proc_out p;

  proc_run(run, &p);
  ck_assert_int_ne(p.status, 0);
  ck_assert_msg(strstr(p.err.data, "100 clients need about 1064 file "
                                   "descriptors; the limit is 300"),
                "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.err.data, "ulimit -n 1064"));
  ck_assert_ptr_null(strstr(p.out.data, "Outlook Integration Error"));
  proc_free(&p);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("cli");
  TCase *tc = tcase_create("kbsim");
  SRunner *sr;
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, demo_shows_bug_and_fix);
  tcase_add_test(tc, run_expect_matches_outcome);
  tcase_add_test(tc, bad_arguments);
  tcase_add_test(tc, serve_with_curl_ntlm);
  tcase_add_test(tc, credentials_never_on_the_command_line);
  tcase_add_test(tc, descriptor_limit_refused_up_front);
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
