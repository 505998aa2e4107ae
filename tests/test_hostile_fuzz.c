/*
 * test_hostile_fuzz.c - every saved fuzz input (tests/data/fuzz/ and the
 * seed corpus) replayed through the fuzz targets' entry points
 * (fuzz/targets.h, built here without libFuzzer), each in a child process;
 * and the scenario defect one of them found, fixed.
 */
#include <check.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "common/kb_users.h"
#include "fuzz/targets.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "sim/scenario.h"
#include "test_hostile.h"

/* ---- tests: fuzz inputs replayed ---------------------------------------- */

/* Runs one saved input through run in a child process, so that a crash or
 * a sanitizer report fails this input alone (and not the whole suite when
 * it runs with CK_FORK=no). Returns true when the child came back clean;
 * otherwise says why on stderr. */
static bool hx_replay_one(const char *path, int (*run)(const uint8_t *, size_t))
{
  pid_t pid;
  int status = 0;

  fflush(NULL);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if(pid == 0) {
    FILE *f = fopen(path, "rb");
    struct kb_buf b;
    char chunk[4096];
    size_t got;

    if(!f)
      _exit(3);
    kb_buf_init(&b, (size_t)1 << 20);
    while((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
      if(kb_buf_add(&b, chunk, got) != KB_BUF_OK)
        _exit(4);
    fclose(f);
    run((const uint8_t *)(b.data ? b.data : ""), b.len);
    kb_buf_free(&b);
    _exit(0);
  }
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  if(WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return true;
  if(WIFSIGNALED(status))
    fprintf(stderr, "hostile: %s: killed by signal %d\n", path,
            WTERMSIG(status));
  else
    fprintf(stderr, "hostile: %s: exit status %d\n", path, WEXITSTATUS(status));
  return false;
}

/* Feeds every file under dir to run; adds the count to *n and the names
 * of the inputs that failed to failed (a capped list). */
static void hx_replay_dir(const char *dir, int (*run)(const uint8_t *, size_t),
                          unsigned *n, struct kb_buf *failed)
{
  DIR *d = opendir(dir);
  struct dirent *de;

  if(!d)
    return;
  while((de = readdir(d))) {
    char path[512];

    if(de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    if(!hx_replay_one(path, run))
      kb_buf_printf(failed, " %s", path + strlen(SOURCE_DIR) + 1);
    (*n)++;
  }
  closedir(d);
}

/* Replays the committed seed corpus and every saved crash of target i
 * through the target's own entry point. */
START_TEST(test_fuzz_replay)
{
  const struct fuzz_target *t = &fuzz_targets[_i];
  char dir[512];
  char names[1024];
  unsigned seeds = 0, saved = 0;
  struct kb_buf failed;

  fuzz_init();
  kb_buf_init(&failed, 4096);
  kb_buf_add(&failed, "", 0);
  snprintf(dir, sizeof(dir), "%s/fuzz/corpus/%s", SOURCE_DIR, t->name);
  hx_replay_dir(dir, t->run, &seeds, &failed);
  snprintf(dir, sizeof(dir), "%s/tests/data/fuzz/%s", SOURCE_DIR, t->name);
  hx_replay_dir(dir, t->run, &saved, &failed);
  snprintf(names, sizeof(names), "%s", failed.data);
  kb_buf_free(&failed);
  ck_assert_msg(!names[0],
                "fuzz target %s fails on:%s (run build-fuzz/fuzz/fuzz_%s "
                "on the file to see why)",
                t->name, names, t->name);
  ck_assert_msg(seeds > 0, "no seed corpus in fuzz/corpus/%s", t->name);
}
END_TEST

/* The count of fuzz targets, for the loop test. */
static int hx_ntargets(void)
{
  int n = 0;
  while(fuzz_targets[n].name)
    n++;
  return n;
}

/* ---- tests: defects found by this suite, fixed ------------------------- */

/* A section header that is not closed is refused in one line, at its own
 * line. (Found by fuzz_scenario,
 * tests/data/fuzz/scenario/unclosed-section-header.) */
START_TEST(test_unclosed_section_header_one_line)
{
  static const char text[] = "[scenario]\nname = x\n[expec\noutcome = clean\n";
  struct scenario *sc = malloc(sizeof(*sc));
  char err[512];
  FILE *f = fmemopen((void *)(uintptr_t)text, sizeof(text) - 1, "r");

  ck_assert_ptr_nonnull(sc);
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(scenario_load_stream(f, "x.ini", sc, err, sizeof(err)), -1);
  ck_assert_msg(!strncmp(err, "x.ini:3: ", 9), "%s", err);
  ck_assert_msg(!strchr(err, '\n'), "a two-line error: %s", err);
  fclose(f);
  free(sc);
}
END_TEST

Suite *hostile_fuzz_suite(void)
{
  Suite *s = suite_create("fuzz");
  TCase *tc = tcase_create("fuzz");

  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, hx_teardown);
  tcase_add_loop_test(tc, test_fuzz_replay, 0, hx_ntargets());
  tcase_add_test(tc, test_unclosed_section_header_one_line);
  suite_add_tcase(s, tc);
  return s;
}
