/*
 * served.c - a `kbsim serve` a test runs: started with its banner read and
 * its ports taken from it, stopped with SIGTERM and its exit checked
 * (test_live and test_console).
 */
#include "served.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "proc.h"

unsigned served_port(const struct served *s, const char *label)
{
  const char *at = strstr(s->banner.data, label);
  const char *url = at ? strstr(at, "://127.0.0.1:") : NULL;
  unsigned port = 0;

  /* http:// or https://, on the label's own line. */
  if(url && !memchr(at, '\n', (size_t)(url - at)))
    sscanf(url, "://127.0.0.1:%u/", &port);
  return port;
}

/* Starts kbsim serve with args (NULL-terminated, after "serve") and reads
 * its banner up to "serving until". The server dies with the test
 * (PR_SET_PDEATHSIG), whatever the test's fate. */
void served_start(struct served *s, const char *const *args)
{
  served_start_command(s, "serve", args);
}

void served_start_command(struct served *s, const char *command,
                          const char *const *args)
{
  char *argv[24] = {KBSIM_BIN, (char *)command};
  int o[2], e[2];
  size_t i;

  for(i = 0; args[i]; i++)
    argv[2 + i] = (char *)args[i];
  memset(s, 0, sizeof(*s));
  kb_buf_init(&s->banner, 16384);
  ck_assert_int_eq(pipe(o), 0);
  ck_assert_int_eq(pipe(e), 0);
  s->pid = fork();
  /* The child only makes async-signal-safe calls before exec (no
   * assertion: Check's would allocate, and a lock another thread held at
   * the fork would hang it). */
  if(!s->pid) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]);
    close(o[1]);
    close(e[0]);
    close(e[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  ck_assert_int_ge(s->pid, 0);
  close(o[1]);
  close(e[1]);
  s->outfd = o[0];
  s->errfd = e[0];
  for(;;) {
    char c;
    ssize_t n = read(s->outfd, &c, 1);

    if(n <= 0)
      break;
    ck_assert_int_eq(kb_buf_add(&s->banner, &c, 1), KB_BUF_OK);
    if(c == '\n' && strstr(s->banner.data, "serving until"))
      break;
  }
  ck_assert_msg(s->banner.data && strstr(s->banner.data, "serving until"),
                "serve did not start:\n%s",
                s->banner.data ? s->banner.data : "");
  s->balancer = served_port(s, "Balancer:");
  s->admin = served_port(s, "Admin:");
  s->listener = served_port(s, "ISA listener:");
  s->exchange = served_port(s, "Exchange:");
  s->members[0] = served_port(s, "Member ISA01:");
  s->members[1] = served_port(s, "Member ISA02:");
  if(strstr(s->banner.data, "Console:"))
    sscanf(strstr(s->banner.data, "Console:"),
           "Console: http://127.0.0.1:%*u/?token=%159[0-9a-zA-Z_-]", s->token);
  if(strstr(s->banner.data, "Token file:"))
    sscanf(strstr(s->banner.data, "Token file:"), "Token file: %511s",
           s->token_path);
}

/* Stops the server with SIGTERM; it must exit 0 having said so, and
 * nothing on stderr. */
void served_stop(struct served *s)
{
  struct proc_out p;

  ck_assert_int_eq(kill(s->pid, SIGTERM), 0);
  proc_collect(s->pid, s->outfd, s->errfd, &p);
  ck_assert_msg(p.status == 0, "serve exited %d: %s", p.status, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "stopping on SIGTERM"));
  ck_assert_str_eq(p.err.data, "");
  s->rest = p.out;
  kb_buf_init(&p.out, 1);
  proc_free(&p);
  kb_buf_free(&s->banner);
}
