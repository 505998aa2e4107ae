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

struct proc_out {
  struct kb_buf out;
  struct kb_buf err;
  int status; /* exit code, or 128 + signal */
};

/* Starts argv with stdout and stderr on pipes; returns the pid. */
static pid_t spawn(char *const argv[], int *outfd, int *errfd)
{
  int o[2], e[2];
  pid_t pid;

  ck_assert_int_eq(pipe(o), 0);
  ck_assert_int_eq(pipe(e), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if(pid == 0) {
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]);
    close(o[1]);
    close(e[0]);
    close(e[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  close(o[1]);
  close(e[1]);
  *outfd = o[0];
  *errfd = e[0];
  return pid;
}

/* Reads both pipes to their end, then reaps the process. */
static void collect(pid_t pid, int outfd, int errfd, struct proc_out *p)
{
  struct pollfd fds[2] = {{outfd, POLLIN, 0}, {errfd, POLLIN, 0}};
  int open_fds = 2, ws = 0;
  char buf[4096];

  while(open_fds) {
    int i;
    if(poll(fds, 2, -1) < 0 && errno != EINTR)
      break;
    for(i = 0; i < 2; i++) {
      if(fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP))) {
        ssize_t n = read(fds[i].fd, buf, sizeof(buf));
        if(n > 0)
          kb_buf_add(i ? &p->err : &p->out, buf, (size_t)n);
        else {
          close(fds[i].fd);
          fds[i].fd = -1;
          open_fds--;
        }
      }
    }
  }
  ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
  p->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void run(char *const argv[], struct proc_out *p)
{
  int outfd, errfd;
  pid_t pid;

  kb_buf_init(&p->out, 1 << 22);
  kb_buf_init(&p->err, 1 << 20);
  kb_buf_add(&p->out, "", 0);
  kb_buf_add(&p->err, "", 0);
  pid = spawn(argv, &outfd, &errfd);
  collect(pid, outfd, errfd, p);
}

static void proc_free(struct proc_out *p)
{
  kb_buf_free(&p->out);
  kb_buf_free(&p->err);
}

START_TEST(demo_shows_bug_and_fix)
{
  char *argv[] = {KBSIM_BIN, NULL};
  struct proc_out p;

  run(argv, &p);
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
  char *bug_error[] = {KBSIM_BIN, "run", "--policy", "per-connection",
                       "--clients", "3", "--posts", "2", "--seed", "9",
                       "--expect", "error", NULL};
  char *bug_clean[] = {KBSIM_BIN, "run", "--policy", "per-connection",
                       "--expect", "clean", NULL};
  char *fix_clean[] = {KBSIM_BIN, "run", "--policy", "per-request",
                       "--clients", "3", "--expect", "clean", NULL};
  struct proc_out p;

  run(bug_error, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "3 of 3 users saw the Outlook "
                                           "Integration Error"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Exchange received 6 empty POSTs"));
  proc_free(&p);

  run(bug_clean, &p);
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "expected clean, got error"));
  proc_free(&p);

  run(fix_clean, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "0 of 3 users"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Exchange received 0 empty POSTs"));
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
    run(argv, &p);
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
  char *serve[] = {KBSIM_BIN, "serve", "--proxy", "127.0.0.1:0", "--backend",
                   "127.0.0.1:0", "--policy", "per-request", "--user",
                   "FABRIKAM\\alice:Passw0rd!", NULL};
  char url[128];
  char *curl_ok[] = {"/usr/bin/curl", "-sS", "--ntlm", "-u",
                     "FABRIKAM\\alice:Passw0rd!", "-H",
                     "Content-Type: text/xml; charset=utf-8", "-d",
                     "@" TESTS_DIR "/data/oof-request.xml", "-w",
                     "\nstatus=%{http_code}", url, NULL};
  char *curl_bad[] = {"/usr/bin/curl", "-sS", "--ntlm", "-u",
                      "FABRIKAM\\alice:wrong", "-d",
                      "@" TESTS_DIR "/data/oof-request.xml", "-w",
                      "\nstatus=%{http_code}", url, NULL};
  struct proc_out c, s;
  int outfd, errfd;
  unsigned port;
  pid_t pid;

  pid = spawn(serve, &outfd, &errfd);
  port = read_listener_port(outfd);
  ck_assert_uint_gt(port, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx", port);

  run(curl_ok, &c);
  ck_assert_msg(c.status == 0, "curl: %s", c.err.data);
  ck_assert_ptr_nonnull(strstr(c.out.data, "GetUserOofSettingsResponse"));
  ck_assert_ptr_nonnull(strstr(c.out.data, "status=200"));
  proc_free(&c);

  run(curl_bad, &c);
  ck_assert_ptr_nonnull(strstr(c.out.data, "status=401"));
  ck_assert_ptr_null(strstr(c.out.data, "GetUserOofSettingsResponse"));
  proc_free(&c);

  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  kb_buf_init(&s.out, 1 << 20);
  kb_buf_init(&s.err, 1 << 20);
  kb_buf_add(&s.out, "", 0);
  kb_buf_add(&s.err, "", 0);
  collect(pid, outfd, errfd, &s);
  ck_assert_msg(s.status == 0, "serve exited %d: %s", s.status, s.err.data);
  ck_assert_ptr_nonnull(strstr(s.out.data, "stopping on SIGTERM"));
  proc_free(&s);
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
  suite_add_tcase(s, tc);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
