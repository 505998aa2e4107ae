/*
 * test_secrets.c - what kbsim keeps from other eyes: a password or token
 * given on the command line leaves the process's command line once it is
 * parsed (what ps and /proc/PID/cmdline show every user of the machine),
 * and --redact writes a transcript and a pcap from which an offline
 * dictionary attack (impacket's NTLM, tests/interop/crack_ntlmv2.py)
 * recovers nothing, where the same run without it gives the password away.
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"

#define ALICE "FABRIKAM\\alice:Passw0rd!"
#define TOKEN "0123456789abcdef0123456789abcdef"
#define CRACK TESTS_DIR "/interop/crack_ntlmv2.py"

/* How many times needle occurs in text. */
static size_t secrets_count(const char *text, const char *needle)
{
  size_t n = 0;

  while((text = strstr(text, needle)) != NULL) {
    n++;
    text += strlen(needle);
  }
  return n;
}

/* Reads /proc/pid/cmdline with its NULs as spaces into out. */
static void cmdline_of(pid_t pid, char *out, size_t len)
{
  char path[64];
  ssize_t n;
  int fd;

  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
  fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  n = read(fd, out, len - 1);
  close(fd);
  ck_assert_int_gt(n, 0);
  out[n] = '\0';
  while(n--)
    if(!out[n])
      out[n] = ' ';
}

/* A listening socket on 127.0.0.1 that accepts and never answers: a peer
 * that holds a client still, after it parsed its arguments. */
static int silent_listener(unsigned *port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ck_assert_int_eq(listen(fd, 4), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

/* Starts argv, waits until it connects to the silent listener lfd (so it
 * has parsed its arguments), and returns its command line as ps shows it;
 * then stops it. */
static void cmdline_while_connected(char *const argv[], int lfd, char *out,
                                    size_t len)
{
  struct pollfd p = {lfd, POLLIN, 0};
  struct proc_out o;
  int outfd, errfd, conn;
  pid_t pid = proc_spawn(argv, &outfd, &errfd);

  ck_assert_msg(poll(&p, 1, 20000) == 1, "%s never connected", argv[1]);
  conn = accept(lfd, NULL, NULL);
  ck_assert_int_ge(conn, 0);
  cmdline_of(pid, out, len);
  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  proc_collect(pid, outfd, errfd, &o);
  proc_free(&o);
  close(conn);
}

/* The password of --user and the admin token leave the command line of
 * serve, client, probe and ctl once parsed (curl does the same with -u);
 * the user's name stays, so ps still says who. */
START_TEST(secrets_leave_the_command_line)
{
  char line[4096], url[64];
  unsigned port;
  int lfd = silent_listener(&port);

  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  {
    char *const argv[] = {KBSIM_BIN, "client", "--url", url,
                          "--user",  ALICE,    NULL};
    cmdline_while_connected(argv, lfd, line, sizeof(line));
    ck_assert_msg(!strstr(line, "Passw0rd!"), "client: %s", line);
    ck_assert_ptr_nonnull(strstr(line, "--user FABRIKAM\\alice:*********"));
  }
  {
    char *const argv[] = {KBSIM_BIN, "probe", url, "--user=" ALICE, NULL};
    cmdline_while_connected(argv, lfd, line, sizeof(line));
    ck_assert_msg(!strstr(line, "Passw0rd!"), "probe: %s", line);
    ck_assert_ptr_nonnull(strstr(line, "--user=FABRIKAM\\alice:*********"));
  }
  {
    char admin[32];
    snprintf(admin, sizeof(admin), "127.0.0.1:%u", port);
    char *const argv[] = {KBSIM_BIN, "ctl", "--admin", admin,
                          "--token", TOKEN, "status",  NULL};
    cmdline_while_connected(argv, lfd, line, sizeof(line));
    ck_assert_msg(!strstr(line, TOKEN), "ctl: %s", line);
    ck_assert_ptr_nonnull(
        strstr(line, "--token ********************************"));
  }
  close(lfd);
  {
    char *const argv[] = {KBSIM_BIN,   "serve",       "--proxy",  "127.0.0.1:0",
                          "--backend", "127.0.0.1:0", "--policy", "per-request",
                          "--user",    ALICE,         "-q",       NULL};
    struct proc_out o;
    int outfd, errfd;
    pid_t pid = proc_spawn(argv, &outfd, &errfd);

    /* The banner comes after the arguments were parsed. */
    ck_assert_uint_gt(proc_read_port(outfd, "ISA listener: http://127.0.0.1:"),
                      0);
    cmdline_of(pid, line, sizeof(line));
    ck_assert_msg(!strstr(line, "Passw0rd!"), "serve: %s", line);
    ck_assert_ptr_nonnull(strstr(line, "--user FABRIKAM\\alice:*********"));
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    proc_collect(pid, outfd, errfd, &o);
    ck_assert_int_eq(o.status, 0);
    proc_free(&o);
  }
}
END_TEST

/* Runs crack_ntlmv2.py on transcript with a small word list holding the
 * password; returns its exit code (0 cracked, 1 not) and its output. */
static int crack(const char *transcript, struct proc_out *p)
{
  char *const argv[] = {
      "/usr/bin/python3", CRACK, (char *)transcript, "letmein", "Passw0rd!",
      "Winter2009!",      NULL};
  proc_run(argv, p);
  return p->status;
}

/* The same run with and without --redact: without, impacket recovers the
 * password from the transcript alone (what README warns of); with, it
 * recovers nothing, tshark reads NTProofStr as "REDACTED" repeated from
 * the pcap, and every file keeps its length (each proof keeps its own). */
START_TEST(redact_defeats_a_dictionary)
{
  char dir[256], plain[300], red[300], cmd[1200];
  char *const sh[] = {"/bin/sh", "-c", cmd, NULL};
  struct proc_out p;
  size_t len[4], n3;
  char *text;

  if(!proc_have("/usr/bin/tshark"))
    return;
  proc_tmpdir("kbsim-redact", dir, sizeof(dir));
  snprintf(cmd, sizeof(cmd),
           "cd '%s' && '%s' run bug --seed 7 --transcript plain.txt "
           "--pcap plain.pcap >/dev/null && '%s' run bug --seed 7 --redact "
           "--transcript red.txt --pcap red.pcap >/dev/null",
           dir, KBSIM_BIN, KBSIM_BIN);
  proc_run(sh, &p);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);

  snprintf(plain, sizeof(plain), "%s/plain.txt", dir);
  snprintf(red, sizeof(red), "%s/red.txt", dir);
  ck_assert_int_eq(crack(plain, &p), 0);
  ck_assert_ptr_nonnull(
      strstr(p.out.data, "cracked FABRIKAM\\alice Passw0rd!"));
  proc_free(&p);
  ck_assert_msg(crack(red, &p) == 1, "%s", p.out.data);
  ck_assert_str_eq(p.out.data, "");
  proc_free(&p);

  /* Only the proofs changed: the same bytes but for them, the two lines
   * saying so, and each type 3's decode saying so. */
  text = proc_slurp(plain, &len[0]);
  n3 = secrets_count(text, ";   Authorization: NTLM type 3 AUTHENTICATE");
  ck_assert_uint_gt(n3, 0);
  free(text);
  text = proc_slurp(red, &len[1]);
  ck_assert_uint_eq(secrets_count(text, "(proofs redacted)\n"), n3);
  ck_assert_ptr_null(strstr(text, "Passw0rd!"));
  free(text);
  ck_assert_uint_eq(len[1] - len[0],
                    strlen("; --redact: each NTLM type 3's LM and NT proofs, "
                           "MIC and session key are\n"
                           "; \"REDACTED\" repeated, with their lengths "
                           "kept.\n") +
                        n3 * strlen(" (proofs redacted)"));
  snprintf(plain, sizeof(plain), "%s/plain.pcap", dir);
  snprintf(red, sizeof(red), "%s/red.pcap", dir);
  free(proc_slurp(plain, &len[2]));
  free(proc_slurp(red, &len[3]));
  ck_assert_uint_eq(len[2], len[3]);

  /* tshark, Wireshark's NTLMSSP dissector, reads the marker in every
   * type 3 of the capture. */
  snprintf(cmd, sizeof(cmd),
           "/usr/bin/tshark -r '%s' -Y ntlmssp.messagetype==3 -T fields "
           "-e ntlmssp.auth.username -e ntlmssp.ntlmv2_response.ntproofstr",
           red);
  proc_run(sh, &p);
  ck_assert_int_eq(p.status, 0);
  ck_assert_uint_gt(secrets_count(p.out.data, "\n"), 0);
  ck_assert_uint_eq(
      secrets_count(p.out.data, "alice\t52454441435445445245444143544544\n"),
      secrets_count(p.out.data, "\n"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("secrets");
  TCase *tc = tcase_create("secrets");
  TCase *slow;
  bool skipped = proc_skip_unless(
      "/usr/bin/tshark", "redact_defeats_a_dictionary", "Debian's tshark");
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, secrets_leave_the_command_line);
  suite_add_tcase(s, tc);
  /* impacket's dictionary attack on two runs' evidence. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, redact_defeats_a_dictionary);
  suite_add_tcase(s, slow);
  failed = kbt_run(s);
  return proc_suite_exit(failed, skipped);
}
