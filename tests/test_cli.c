/*
 * test_cli.c - the kbsim program as a user runs it: demo, run with
 * --expect, bad arguments, and `kbsim serve` answering a real
 * `curl --ntlm`.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/kb_buf.h"
#include "kbt.h"
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

START_TEST(serve_with_curl_ntlm)
{
  char *serve[] = {KBSIM_BIN,   "serve",
                   "--proxy",   "127.0.0.1:0",
                   "--backend", "127.0.0.1:0",
                   "--policy",  "per-request",
                   "--user",    "FABRIKAM\\alice:Passw0rd!",
                   NULL};
  char url[128];
  struct proc_out s;
  int outfd, errfd;
  unsigned port;
  pid_t pid;

  pid = proc_spawn(serve, &outfd, &errfd);
  port = proc_read_port(outfd, "ISA listener: http://127.0.0.1:");
  ck_assert_uint_gt(port, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx", port);

  proc_curl_ntlm(url, "FABRIKAM\\alice:Passw0rd!", PROC_OOF_REQUEST, true);
  proc_curl_ntlm(url, "FABRIKAM\\alice:wrong", PROC_OOF_REQUEST, false);

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
  port = proc_read_port(outfd, "ISA listener: http://127.0.0.1:");
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
  ck_assert_int_eq(p.status, 3); /* the harness could not run */
  ck_assert_msg(strstr(p.err.data, "100 clients need about 464 file "
                                   "descriptors; the limit is 300"),
                "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.err.data, "ulimit -n 464"));
  ck_assert_ptr_null(strstr(p.out.data, "Outlook Integration Error"));
  proc_free(&p);
}
END_TEST

/* ---- the conventions of a mature CLI --------------------------------- */

/* Runs a program and returns its first line of output (static buffer). */
static const char *first_line(char *const argv[])
{
  static char line[512];
  struct proc_out p;

  proc_run(argv, &p);
  snprintf(line, sizeof(line), "%.*s", (int)strcspn(p.out.data, "\n"),
           p.out.data);
  proc_free(&p);
  return line;
}

/* --version names kbsim's version, the commit it was built from and each
 * library at the version pkg-config (not kbsim) reports. */
START_TEST(version_names_libraries)
{
  static const char *const libs[][2] = {{"libmicrohttpd", "libmicrohttpd"},
                                        {"libcurl", "libcurl"},
                                        {"nettle", "nettle"},
                                        {"libxml2", "libxml-2.0"},
                                        {"jansson", "jansson"},
                                        {"libpcap", "libpcap"}};
  struct proc_out p, q;
  char want[300];
  size_t i;

  PROC_KBSIM(&p, "--version");
  ck_assert_int_eq(p.status, 0);
  ck_assert_str_eq(p.err.data, "");
  snprintf(want, sizeof(want), "kbsim %s (commit ", KBSIM_VERSION);
  ck_assert_msg(!strncmp(p.out.data, want, strlen(want)), "%s", p.out.data);
  if(access(SOURCE_DIR "/.git", F_OK) == 0 &&
     access("/usr/bin/git", X_OK) == 0) {
    char *git[] = {"/usr/bin/git", "-C",   SOURCE_DIR, "rev-parse",
                   "--short=12",   "HEAD", NULL};
    const char *head = first_line(git);
    ck_assert_msg(strlen(head) == 12 && strstr(p.out.data, head),
                  "commit %s not in %s", head, p.out.data);
  }
  {
    /* pkg-config prints one version a line, in the order asked. */
    char *pc[] = {"/usr/bin/pkg-config", "--modversion",     (char *)libs[0][1],
                  (char *)libs[1][1],    (char *)libs[2][1], (char *)libs[3][1],
                  (char *)libs[4][1],    (char *)libs[5][1], NULL};
    struct proc_out v;
    const char *at;

    proc_run(pc, &v);
    ck_assert_msg(v.status == 0, "pkg-config: %s", v.err.data);
    at = v.out.data;
    for(i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
      char ver[128];
      const char *line2 = strchr(p.out.data, '\n');

      snprintf(ver, sizeof(ver), "%.*s", (int)strcspn(at, "\n"), at);
      at += strcspn(at, "\n");
      at += *at == '\n';
      /* nettle reports major.minor only: 3.8 of 3.8.1. */
      if(!strcmp(libs[i][0], "nettle"))
        ver[strcspn(ver, ".") + 2] = '\0';
      snprintf(want, sizeof(want), " %s %s", libs[i][0], ver);
      ck_assert_msg(line2 && strstr(line2, want), "%s not in %s", want,
                    p.out.data);
    }
    proc_free(&v);
  }
  ck_assert_ptr_nonnull(strstr(p.out.data, ", libunistring "));
  PROC_KBSIM(&q, "-V");
  ck_assert_str_eq(q.out.data, p.out.data);
  proc_free(&q);
  proc_free(&p);
}
END_TEST

/* `kbsim CMD --help`, `kbsim CMD -h` and `kbsim help CMD` print the same
 * usage on stdout, exit 0; `kbsim --help` lists every command. */
START_TEST(help_for_every_command)
{
  static const char *const cmds[] = {"demo", "run",    "sweep", "serve",
                                     "ctl",  "client", "list",  "help"};
  struct proc_out all, a, b, c;
  char want[64];
  size_t i;

  PROC_KBSIM(&all, "--help");
  ck_assert_int_eq(all.status, 0);
  for(i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    snprintf(want, sizeof(want), "\n  %s ", cmds[i]);
    ck_assert_msg(strstr(all.out.data, want), "%s not listed", cmds[i]);
    PROC_KBSIM(&a, cmds[i], "--help");
    PROC_KBSIM(&b, cmds[i], "-h");
    PROC_KBSIM(&c, "help", cmds[i]);
    ck_assert_msg(a.status == 0 && b.status == 0 && c.status == 0,
                  "%s: %d %d %d", cmds[i], a.status, b.status, c.status);
    snprintf(want, sizeof(want), "usage: kbsim %s ", cmds[i]);
    ck_assert_msg(!strncmp(a.out.data, want, strlen(want)), "%s", a.out.data);
    ck_assert_ptr_nonnull(strstr(a.out.data, "  -h, --help"));
    ck_assert_str_eq(a.out.data, b.out.data);
    ck_assert_str_eq(a.out.data, c.out.data);
    ck_assert_str_eq(a.err.data, "");
    proc_free(&a);
    proc_free(&b);
    proc_free(&c);
  }
  PROC_KBSIM(&a, "help");
  ck_assert_int_eq(a.status, 0);
  ck_assert_str_eq(a.out.data, all.out.data);
  proc_free(&a);
  proc_free(&all);
}
END_TEST

/* A typo gets the closest name, in one line and the hint. */
START_TEST(did_you_mean)
{
  struct proc_out p;

  PROC_KBSIM(&p, "runn");
  ck_assert_str_eq(p.err.data, "kbsim: unknown command 'runn'; did you mean "
                               "'run'?\nkbsim: try '" KBSIM_BIN " --help'\n");
  proc_free(&p);
  PROC_KBSIM(&p, "run", "--polcy", "per-request");
  ck_assert_str_eq(p.err.data,
                   "kbsim run: unknown option '--polcy'; did you mean "
                   "'--policy'?\nkbsim: try '" KBSIM_BIN " run --help'\n");
  proc_free(&p);
  PROC_KBSIM(&p, "run", "--polcy=per-request");
  ck_assert_ptr_nonnull(strstr(p.err.data, "did you mean '--policy'?"));
  proc_free(&p);
  PROC_KBSIM(&p, "run", "--p", "1");
  ck_assert_ptr_nonnull(strstr(p.err.data, "'--p' is ambiguous: --policy, "
                                           "--posts, --pcap\n"));
  proc_free(&p);
  PROC_KBSIM(&p, "run", "bug", "--verbose=1");
  ck_assert_ptr_nonnull(
      strstr(p.err.data, "kbsim run: option '--verbose' takes no value"));
  ck_assert_ptr_null(proc_usage_error(&p));
  proc_free(&p);
  PROC_KBSIM(&p, "run", "--html");
  ck_assert_ptr_nonnull(strstr(p.err.data, "--html needs a value (FILE)\n"));
  ck_assert_ptr_null(proc_usage_error(&p));
  proc_free(&p);
  PROC_KBSIM(&p, "help", "sweeep");
  ck_assert_ptr_nonnull(strstr(p.err.data, "did you mean 'sweep'?"));
  proc_free(&p);
  PROC_KBSIM(&p, "ctl", "--admin", "127.0.0.1:9", "aply-fix");
  ck_assert_ptr_nonnull(strstr(p.err.data, "did you mean 'apply-fix'?"));
  ck_assert_int_eq(p.status, 2);
  proc_free(&p);
  PROC_KBSIM(&p, "run", "bugg");
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "scenario 'bugg' not found"));
  ck_assert_ptr_nonnull(strstr(p.err.data, "did you mean 'bug'?"));
  ck_assert_int_eq(proc_count(p.err.data, "\n"), 1);
  proc_free(&p);
}
END_TEST

/* --opt value and --opt=value are one thing, optional values included. */
START_TEST(both_spellings)
{
  struct proc_out a, b;

  PROC_KBSIM(&a, "run", "--policy", "per-request", "--clients", "2", "--seed",
             "4", "--expect", "clean");
  PROC_KBSIM(&b, "run", "--policy=per-request", "--clients=2", "--seed=4",
             "--expect=clean");
  ck_assert_int_eq(a.status, 0);
  ck_assert_int_eq(b.status, 0);
  ck_assert_str_eq(a.out.data, b.out.data);
  proc_free(&a);
  proc_free(&b);
  PROC_KBSIM(&a, "demo", "--color", "always");
  PROC_KBSIM(&b, "demo", "--color=always");
  ck_assert_int_eq(a.status, 0);
  ck_assert_ptr_nonnull(strchr(a.out.data, '\033'));
  ck_assert_str_eq(a.out.data, b.out.data);
  proc_free(&a);
  proc_free(&b);
  PROC_KBSIM(&a, "demo", "--color"); /* alone: always */
  PROC_KBSIM(&b, "demo", "--color", "never");
  ck_assert_ptr_nonnull(strchr(a.out.data, '\033'));
  ck_assert_ptr_null(strchr(b.out.data, '\033'));
  ck_assert_int_eq(b.status, 0);
  proc_free(&a);
  proc_free(&b);
}
END_TEST

/* Returns the widest line of text in columns (ASCII output). */
static size_t widest(const char *text)
{
  size_t most = 0;

  while(*text) {
    size_t n = strcspn(text, "\n");
    if(n > most)
      most = n;
    text += n;
    if(*text)
      text++;
  }
  return most;
}

/* text with every run of spaces and newlines as one space (malloc'd). */
static char *collapse(const char *text)
{
  char *out = malloc(strlen(text) + 1), *o = out;

  ck_assert_ptr_nonnull(out);
  while(*text) {
    if(*text == ' ' || *text == '\n') {
      while(*text == ' ' || *text == '\n')
        text++;
      *o++ = ' ';
      continue;
    }
    *o++ = *text++;
  }
  *o = '\0';
  return out;
}

/* Piped, demo and run wrap at 100 columns (or $COLUMNS), at spaces only:
 * the words are exactly those of the unwrapped output. */
START_TEST(output_wraps_at_spaces)
{
  static const char *const widths[] = {NULL, "60", "10000"};
  char *text[3];
  struct proc_out p;
  size_t i, j;

  for(j = 0; j < 2; j++) {
    for(i = 0; i < 3; i++) {
      if(widths[i])
        setenv("COLUMNS", widths[i], 1);
      else
        unsetenv("COLUMNS");
      if(j == 0)
        PROC_KBSIM(&p, "demo");
      else
        PROC_KBSIM(&p, "run", SCENARIOS_DIR "/bug.ini",
                   SCENARIOS_DIR "/fix.ini", "--verbose");
      ck_assert_int_eq(p.status, 0);
      text[i] = collapse(p.out.data);
      if(i == 0)
        ck_assert_uint_le(widest(p.out.data), 100);
      if(i == 1)
        ck_assert_uint_le(widest(p.out.data), 60);
      if(i == 2)
        ck_assert_uint_gt(widest(p.out.data), 100); /* there was work */
      proc_free(&p);
    }
    ck_assert_str_eq(text[0], text[2]);
    ck_assert_str_eq(text[1], text[2]);
    for(i = 0; i < 3; i++)
      free(text[i]);
  }
  proc_whole_lines();
}
END_TEST

/* Writes a scenario file: bug.ini's topology, one client, and expect. */
static void write_scenario(const char *path, const char *name,
                           const char *expect)
{
  FILE *f = fopen(path, "w");

  ck_assert_ptr_nonnull(f);
  fprintf(f,
          "[scenario]\nname = %s\ndescription = test\n[member ISA01]\n"
          "patch = rtm\n[clients]\ncount = 1\nposts = 1\n[expect]\n%s\n",
          name, expect);
  ck_assert_int_eq(fclose(f), 0);
}

/* One of a thing is singular; a FAIL line says the mismatch once. */
START_TEST(plurals_and_fail_once)
{
  char dir[256], path[300];
  struct proc_out p;

  PROC_KBSIM(&p, "run", "--policy", "per-request", "--posts", "1");
  ck_assert_int_eq(p.status, 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, ": 1 client, 2 POSTs, 2 ok"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "0 of 1 user saw"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "received 0 of 1 EWS POST empty"));
  proc_free(&p);
  PROC_KBSIM(&p, "demo", "--posts", "1");
  ck_assert_int_eq(p.status, 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, "autodiscover + 1 EWS POST,"));
  proc_free(&p);

  proc_tmpdir("kbsim-cli", dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/one.ini", dir);
  write_scenario(path, "one", "outcome = clean");
  PROC_KBSIM(&p, "sweep", path, "--seeds", "5", "--jobs", "1");
  ck_assert_int_eq(p.status, 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, ": 1 run, 1 session, 1 job\n"));
  proc_free(&p);
  PROC_KBSIM(&p, "run", path);
  ck_assert_int_eq(p.status, 1);
  ck_assert_msg(!strncmp(p.out.data, "FAIL one (", 10), "%s", p.out.data);
  ck_assert_int_eq(proc_count(p.out.data, "expected clean, got error"), 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "1 of 1 user saw"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* A name is ./NAME.ini, then $KBSIM_SCENARIOS, then the catalogue; list
 * shows the catalogue, one line each. */
START_TEST(scenario_search_path)
{
  char dir[256], sub[300], path[400], cwd[4096], listed[8192];
  char longdir[PATH_MAX];
  struct proc_out p;
  DIR *d;
  struct dirent *e;
  int files = 0;

  ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
  proc_tmpdir("kbsim-cli", dir, sizeof(dir));
  ck_assert_int_eq(chdir(dir), 0);
  unsetenv("KBSIM_SCENARIOS");

  PROC_KBSIM(&p, "run", "bug", "fix"); /* the catalogue */
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS bug ("));
  ck_assert_ptr_nonnull(strstr(p.out.data, "/share/kbsim/scenarios/bug.ini)"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS fix ("));
  proc_free(&p);

  write_scenario("bug.ini", "local", "outcome = error"); /* ./bug.ini wins */
  PROC_KBSIM(&p, "run", "bug");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS local (./bug.ini)"));
  proc_free(&p);

  snprintf(sub, sizeof(sub), "%s/more", dir);
  ck_assert_int_eq(mkdir(sub, 0700), 0);
  snprintf(path, sizeof(path), "%s/mine.ini", sub);
  write_scenario(path, "mine", "outcome = error");
  PROC_KBSIM(&p, "run", "mine");
  ck_assert_int_eq(p.status, 2);
  proc_free(&p);
  snprintf(path, sizeof(path), "/nonexistent:%s", sub);
  setenv("KBSIM_SCENARIOS", path, 1);
  PROC_KBSIM(&p, "run", "mine");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS mine ("));
  proc_free(&p);

  /* A $KBSIM_SCENARIOS folder so long that DIR/bug.ini passes PATH_MAX:
   * cut short, it would name DIR/fi, another file. It is not tried. */
  snprintf(path, sizeof(path), "%s/fi", sub);
  write_scenario(path, "cut", "outcome = error");
  snprintf(longdir, sizeof(longdir), "%s", sub);
  while(strlen(longdir) < PATH_MAX - 5)
    strcat(longdir, "/.");
  if(strlen(longdir) < PATH_MAX - 4)
    strcat(longdir, "/");
  ck_assert_uint_eq(strlen(longdir) + strlen("/fi"), PATH_MAX - 1);
  setenv("KBSIM_SCENARIOS", longdir, 1);
  PROC_KBSIM(&p, "run", "fix");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_msg(strstr(p.out.data, "PASS fix ("), "%s", p.out.data);
  ck_assert_ptr_null(strstr(p.out.data, "cut"));
  proc_free(&p);
  unsetenv("KBSIM_SCENARIOS");
  ck_assert_int_eq(chdir(cwd), 0);
  proc_rmdir(dir);

  d = opendir(SCENARIOS_DIR);
  ck_assert_ptr_nonnull(d);
  PROC_KBSIM(&p, "list");
  ck_assert_int_eq(p.status, 0);
  snprintf(listed, sizeof(listed), "\n%s", p.out.data);
  while((e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    char want[300];
    if(n < 5 || strcmp(e->d_name + n - 4, ".ini"))
      continue;
    files++;
    snprintf(want, sizeof(want), "\n%.*s ", (int)n - 4, e->d_name);
    ck_assert_msg(strstr(listed, want), "%s not listed", e->d_name);
  }
  closedir(d);
  ck_assert_int_eq(proc_count(p.out.data, " error "), 14);
  ck_assert_int_eq(proc_count(p.out.data, " clean "), 15);
  proc_free(&p);
  PROC_KBSIM(&p, "list", "--names");
  ck_assert_int_eq(proc_count(p.out.data, "\n"), files);
  ck_assert_ptr_nonnull(strstr(p.out.data, "\nbug\n"));
  proc_free(&p);
}
END_TEST

/* Reads lines from fd until one starts with prefix; returns it in line. */
static int read_until(int fd, const char *prefix, char *line, size_t len)
{
  size_t n = 0;

  while(n < len - 1) {
    char c;
    if(read(fd, &c, 1) <= 0)
      return -1;
    if(c != '\n') {
      line[n++] = c;
      continue;
    }
    line[n] = '\0';
    if(!strncmp(line, prefix, strlen(prefix)))
      return 0;
    n = 0;
  }
  return -1;
}

/* ctl takes the URL serve prints, localhost too; serve's hints, copied as
 * printed, work. */
START_TEST(serve_urls_and_hints)
{
  char *serve[] = {KBSIM_BIN, "serve",       "half-patched-array",
                   "--proxy", "127.0.0.1:0", NULL};
  char line[512], url[256], hp[128], ctl[512], *words[16];
  const char *forms[] = {url, hp, NULL, NULL};
  char lhost[128], lurl[160];
  struct proc_out p, s;
  unsigned port = 0;
  int outfd, errfd, n = 0;
  pid_t pid;
  size_t i;
  char *tok, *save = NULL;

  pid = proc_spawn(serve, &outfd, &errfd);
  ck_assert_int_eq(read_until(outfd, "Admin:", line, sizeof(line)), 0);
  ck_assert_int_eq(sscanf(line, "Admin: http://127.0.0.1:%u/", &port), 1);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  snprintf(hp, sizeof(hp), "127.0.0.1:%u", port);
  snprintf(lhost, sizeof(lhost), "localhost:%u", port);
  snprintf(lurl, sizeof(lurl), "http://localhost:%u", port);
  forms[2] = lhost;
  forms[3] = lurl;
  for(i = 0; i < 4; i++) {
    PROC_KBSIM(&p, "ctl", "--admin", forms[i], "status");
    ck_assert_msg(p.status == 0, "--admin %s: %s", forms[i], p.err.data);
    ck_assert_ptr_nonnull(strstr(p.out.data, "ISA02"));
    proc_free(&p);
  }
  /* The Try lines name this program as it was run, so they work. */
  ck_assert_int_eq(read_until(outfd, "Try:", line, sizeof(line)), 0);
  ck_assert_msg(!strncmp(line, "Try:          " KBSIM_BIN " client --url ",
                         14 + strlen(KBSIM_BIN) + 14),
                "%s", line);
  ck_assert_int_eq(read_until(outfd, "  ", ctl, sizeof(ctl)), 0);
  /* "kbsim ctl --admin H:P status|apply-fix|revert", run with status. */
  for(tok = strtok_r(ctl, " ", &save); tok && n < 15;
      tok = strtok_r(NULL, " ", &save))
    words[n++] = strncmp(tok, "status|", 7) ? tok : "status";
  words[n] = NULL;
  ck_assert_int_eq(n, 5);
  ck_assert_str_eq(words[0], KBSIM_BIN);
  proc_run(words, &p);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA01"));
  proc_free(&p);

  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  proc_collect(pid, outfd, errfd, &s);
  ck_assert_int_eq(s.status, 0);
  proc_free(&s);
}
END_TEST

/* The program's own runs and errors. */
static Suite *cli_kbsim_suite(void)
{
  Suite *s = suite_create("kbsim");
  TCase *tc = tcase_create("kbsim"), *slow;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, demo_shows_bug_and_fix);
  tcase_add_test(tc, run_expect_matches_outcome);
  tcase_add_test(tc, serve_with_curl_ntlm);
  tcase_add_test(tc, credentials_never_on_the_command_line);
  tcase_add_test(tc, descriptor_limit_refused_up_front);
  suite_add_tcase(s, tc);
  /* A table of 22 bad invocations, a kbsim started for each. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, bad_arguments);
  suite_add_tcase(s, slow);
  return s;
}

/* The conventions of a mature CLI: its version and help. */
static Suite *cli_help_suite(void)
{
  Suite *s = suite_create("help");
  TCase *tc = tcase_create("help"), *slow;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, version_names_libraries);
  suite_add_tcase(s, tc);
  /* Three spellings of help for every command: 25 kbsims started. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, help_for_every_command);
  suite_add_tcase(s, slow);
  return s;
}

/* The conventions of a mature CLI: what it does with what it is given. */
static Suite *cli_conventions_suite(void)
{
  Suite *s = suite_create("conventions");
  TCase *tc = tcase_create("conventions");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, did_you_mean);
  tcase_add_test(tc, both_spellings);
  tcase_add_test(tc, output_wraps_at_spaces);
  tcase_add_test(tc, plurals_and_fail_once);
  tcase_add_test(tc, scenario_search_path);
  tcase_add_test(tc, serve_urls_and_hints);
  suite_add_tcase(s, tc);
  return s;
}

/* Three suites, so that make check runs them side by side. */
int main(void)
{
  static Suite *(*const suites[])(void) = {cli_kbsim_suite, cli_help_suite,
                                           cli_conventions_suite, NULL};

  proc_whole_lines();
  return kbt_run_list(suites) ? EXIT_FAILURE : EXIT_SUCCESS;
}
