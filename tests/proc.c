/*
 * proc.c - see proc.h.
 */
#define _GNU_SOURCE /* pipe2, nftw's FTW_ACTIONRETVAL */
#include "proc.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* posix_spawn, not fork: suites spawn programs while a topology's threads
 * run, and a forked child of a threaded process must not touch malloc
 * (Check's assertions do) before exec, or it can hang on a lock another
 * thread held at the fork. */
pid_t proc_spawn(char *const argv[], int *outfd, int *errfd)
{
  posix_spawn_file_actions_t fa;
  int o[2], e[2];
  pid_t pid = -1;
  int rc;

  ck_assert_int_eq(pipe2(o, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(e, O_CLOEXEC), 0);
  ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
  ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, o[1], 1), 0);
  ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, e[1], 2), 0);
  rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(o[1]);
  close(e[1]);
  ck_assert_msg(rc == 0, "cannot start %s: %s", argv[0], strerror(rc));
  *outfd = o[0];
  *errfd = e[0];
  return pid;
}

void proc_collect(pid_t pid, int outfd, int errfd, struct proc_out *p)
{
  struct pollfd fds[2] = {{outfd, POLLIN, 0}, {errfd, POLLIN, 0}};
  int open_fds = 2, ws = 0;
  char buf[4096];

  kb_buf_init(&p->out, (size_t)64 << 20);
  kb_buf_init(&p->err, (size_t)1 << 20);
  kb_buf_add(&p->out, "", 0);
  kb_buf_add(&p->err, "", 0);
  while(open_fds) {
    int i;
    if(poll(fds, 2, -1) < 0) {
      if(errno == EINTR)
        continue;
      break;
    }
    for(i = 0; i < 2; i++) {
      if(fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
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

void proc_run(char *const argv[], struct proc_out *p)
{
  int outfd, errfd;
  pid_t pid = proc_spawn(argv, &outfd, &errfd);

  proc_collect(pid, outfd, errfd, p);
}

#ifdef KBSIM_BIN
void proc_kbsim(struct proc_out *p, const char *const *args)
{
  char *argv[96] = {KBSIM_BIN};
  size_t i;

  for(i = 0; args[i]; i++) {
    ck_assert_uint_lt(i + 2, sizeof(argv) / sizeof(argv[0]));
    argv[1 + i] = (char *)args[i];
  }
  proc_run(argv, p);
}

void proc_kbsim_exits(struct proc_out *p, const char *const *args, int want)
{
  proc_kbsim(p, args);
  ck_assert_msg(p->status == want, "kbsim %s exited %d, not %d:\n%s%s",
                args[0] ? args[0] : "", p->status, want, p->out.data,
                p->err.data);
}
#endif

void proc_free(struct proc_out *p)
{
  kb_buf_free(&p->out);
  kb_buf_free(&p->err);
}

void proc_tmpdir(const char *prefix, char *dir, size_t len)
{
  snprintf(dir, len, "/tmp/%s-XXXXXX", prefix);
  ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* nftw's callback for proc_rmdir: removes what it visits, contents
 * first (FTW_DEPTH). */
static int proc_rm_one(const char *path, const struct stat *st, int type,
                       struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  if(type == FTW_DP ? rmdir(path) : unlink(path))
    ck_abort_msg("cannot remove %s: %s", path, strerror(errno));
  return 0;
}

void proc_rmdir(const char *dir)
{
  ck_assert_int_eq(nftw(dir, proc_rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

char *proc_slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  struct kb_buf b;
  char chunk[8192];
  size_t n;

  ck_assert_msg(f != NULL, "cannot open %s", path);
  kb_buf_init(&b, (size_t)256 << 20);
  kb_buf_add(&b, "", 0);
  while((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    ck_assert_int_eq(kb_buf_add(&b, chunk, n), KB_BUF_OK);
  fclose(f);
  return kb_buf_steal(&b, len);
}

const char *proc_usage_error(const struct proc_out *p)
{
  const char *err = p->err.data ? p->err.data : "";
  const char *nl = strchr(err, '\n');

  if(p->status != 2)
    return "the exit code is not 2";
  if(p->out.len)
    return "something was printed on stdout";
  if(strncmp(err, "kbsim", 5) || !nl)
    return "stderr does not start with a kbsim line";
  if(strncmp(nl + 1, "kbsim: try '", 12))
    return "the second line is not \"kbsim: try '...'\"";
  nl = strchr(nl + 1, '\n');
  if(!nl || nl[1] || strncmp(nl - 8, " --help'", 8))
    return "stderr is not exactly two lines ending in \" --help'\"";
  return NULL;
}

bool proc_have(const char *path)
{
  return access(path, F_OK) == 0;
}

bool proc_scenario_runs(const char *path)
{
  char *text;
  bool kerberos;

  if(proc_have(PROC_KRB5KDC))
    return true;
  text = proc_slurp(path, NULL);
  kerberos = text &&
             (!strncmp(text, "[kerberos]", 10) || strstr(text, "\n[kerberos]"));
  free(text);
  return !kerberos;
}

bool proc_skip_unless(const char *path, const char *test, const char *how)
{
  if(proc_have(path))
    return false;
  fprintf(stderr, "skip: %s: needs %s, which is missing (%s)\n", test, path,
          how);
  return true;
}

int proc_suite_exit(int failed, bool skipped)
{
  if(failed)
    return EXIT_FAILURE;
  return skipped ? PROC_SKIPPED : EXIT_SUCCESS;
}

int proc_count_lines(const char *s, const char *line)
{
  size_t n = strlen(line);
  int count = 0;

  while(*s) {
    size_t l = strcspn(s, "\n");
    if(l == n && !strncmp(s, line, n))
      count++;
    s += l + (s[l] == '\n');
  }
  return count;
}

unsigned proc_read_port(int fd, const char *prefix)
{
  const size_t plen = strlen(prefix);
  char line[512];
  size_t n = 0;

  while(n < sizeof(line) - 1) {
    char c;
    ssize_t r = read(fd, &c, 1);
    if(r < 0 && errno == EINTR)
      continue;
    if(r <= 0)
      break;
    if(c != '\n') {
      line[n++] = c;
      continue;
    }
    line[n] = '\0';
    if(!strncmp(line, prefix, plen)) {
      unsigned long port = strtoul(line + plen, NULL, 10);
      if(port > 0 && port < 65536)
        return (unsigned)port;
    }
    n = 0;
  }
  return 0;
}

int proc_count(const char *s, const char *needle)
{
  int n = 0;

  while((s = strstr(s, needle)) != NULL) {
    n++;
    s += strlen(needle);
  }
  return n;
}

bool proc_which(const char *name, char *out, size_t len)
{
  const char *path = getenv("PATH");
  char dirs[4096], file[4200], *save = NULL, *dir;

  snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
  for(dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    snprintf(file, sizeof(file), "%s/%s", dir, name);
    if(access(file, X_OK) == 0) {
      if(out)
        snprintf(out, len, "%s", file);
      return true;
    }
  }
  return false;
}

#ifdef TESTS_DIR
/* The judge: one python3 process per test program for tests/ci's Python
 * judges (starting python3 and importing jsonschema or junitparser costs
 * 0.1 to 0.2 s of CPU a time), started at its first use and ended when
 * the program exits, which closes its standard input
 * (tests/ci/judge.py). */
static struct {
  pid_t pid;
  FILE *to, *from;
} judge;

/* At exit: the judge's input ends, and it is reaped, so that its time is
 * counted with the program's. */
static void proc_judge_end(void)
{
  fclose(judge.to);
  fclose(judge.from);
  waitpid(judge.pid, NULL, 0);
}

static void proc_judge_start(void)
{
  char *argv[] = {"/usr/bin/python3", TESTS_DIR "/ci/judge.py", NULL};
  posix_spawn_file_actions_t fa;
  int in[2], out[2], rc;

  ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
  ck_assert_int_eq(posix_spawn_file_actions_init(&fa), 0);
  ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, in[0], 0), 0);
  ck_assert_int_eq(posix_spawn_file_actions_adddup2(&fa, out[1], 1), 0);
  rc = posix_spawn(&judge.pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  ck_assert_msg(rc == 0, "cannot start %s: %s", argv[1], strerror(rc));
  judge.to = fdopen(in[1], "w");
  judge.from = fdopen(out[0], "r");
  ck_assert(judge.to && judge.from);
  atexit(proc_judge_end);
}

/* Reads n bytes of the judge's answer into b. */
static void proc_judge_read(struct kb_buf *b, size_t n)
{
  char chunk[4096];

  kb_buf_init(b, (size_t)64 << 20);
  kb_buf_add(b, "", 0);
  while(n) {
    size_t want = n < sizeof(chunk) ? n : sizeof(chunk);
    size_t got = fread(chunk, 1, want, judge.from);
    ck_assert_msg(got == want, "tests/ci/judge.py ended mid-answer");
    kb_buf_add(b, chunk, got);
    n -= got;
  }
}

void proc_judge(char *const argv[], struct proc_out *p)
{
  size_t nout, nerr;
  int status;

  if(!judge.to)
    proc_judge_start();
  fputs(argv[0], judge.to);
  for(argv++; *argv; argv++) {
    ck_assert_msg(!strpbrk(*argv, "\t\n"), "a tab or newline in '%s'", *argv);
    fprintf(judge.to, "\t%s", *argv);
  }
  fputc('\n', judge.to);
  ck_assert_msg(fflush(judge.to) == 0, "tests/ci/judge.py went away");
  ck_assert_msg(fscanf(judge.from, "%zu %zu %d", &nout, &nerr, &status) == 3 &&
                    fgetc(judge.from) == '\n',
                "tests/ci/judge.py gave no answer");
  proc_judge_read(&p->out, nout);
  proc_judge_read(&p->err, nerr);
  p->status = status;
}

int proc_schema_each(const char *schema, const char *const *paths,
                     struct proc_out *p)
{
  char *argv[128] = {TESTS_DIR "/ci/schema_each.py", (char *)schema};
  int argc = 2;

  ck_assert_msg(proc_have(PROC_JSONSCHEMA),
                "python3-jsonschema is missing: run scripts/setup");
  for(; *paths; paths++) {
    ck_assert_int_lt(argc, 127);
    argv[argc++] = (char *)*paths;
  }
  argv[argc] = NULL;
  proc_judge(argv, p);
  ck_assert_msg(p->status == 0, "schema_each: %s%s", p->out.data, p->err.data);
  return proc_count(p->out.data, "invalid ");
}

void proc_assert_schema(const char *schema, const char *const *paths)
{
  struct proc_out p;

  ck_assert_msg(proc_schema_each(schema, paths, &p) == 0, "%s", p.out.data);
  proc_free(&p);
}
#endif

void proc_whole_lines(void)
{
  setenv("COLUMNS", "10000", 1);
}

void proc_curl_ntlm(const char *url, const char *credentials, const char *body,
                    bool ok)
{
  char data[512];
  char *argv[] = {"/usr/bin/curl",
                  "-sS",
                  "--ntlm",
                  "-u",
                  (char *)credentials,
                  "-H",
                  "Content-Type: text/xml; charset=utf-8",
                  "-d",
                  data,
                  "-w",
                  "\nstatus=%{http_code}",
                  (char *)url,
                  NULL};
  struct proc_out p;

  snprintf(data, sizeof(data), "@%s", body);
  proc_run(argv, &p);
  if(ok) {
    ck_assert_msg(p.status == 0, "curl: %s", p.err.data);
    ck_assert_ptr_nonnull(strstr(p.out.data, "GetUserOofSettingsResponse"));
    ck_assert_ptr_nonnull(strstr(p.out.data, "status=200"));
  }
  else {
    ck_assert_msg(strstr(p.out.data, "status=401"), "curl: %s%s", p.out.data,
                  p.err.data);
    ck_assert_ptr_null(strstr(p.out.data, "GetUserOofSettingsResponse"));
  }
  proc_free(&p);
}

void proc_tshark(const char *pcap, const char *filter, const char *field,
                 const char *field2, struct proc_out *p)
{
  char *argv[] = {"/usr/bin/tshark",
                  "-n",
                  "-r",
                  (char *)pcap,
                  "-Y",
                  (char *)filter,
                  "-T",
                  "fields",
                  "-e",
                  (char *)field,
                  field2 ? "-e" : NULL,
                  (char *)field2,
                  NULL};

  proc_run(argv, p);
  ck_assert_msg(p->status == 0, "tshark: %s", p->err.data);
}
