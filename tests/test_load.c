/*
 * test_load.c - load and leaks: `kbsim run` with 500 concurrent
 * Communicator sessions comes out clean (tagged slow: its cost is its
 * scale; 100 in a sanitizer build), and starting a topology, running
 * 20 sessions and stopping it, five times in one process, leaves no file
 * descriptors, threads or heap behind; sessions need the descriptors
 * sim/fdlimit.h counts, no more and no fewer (outlook-anywhere's tagged
 * slow).
 */
#include <check.h>

#include <dirent.h>
#include <malloc.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/kb_fiber.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "proc.h"
#include "sim/fdlimit.h"
#include "sim/topology.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LOAD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LOAD_SANITIZED 1
#endif
#endif
#ifndef LOAD_SANITIZED
#define LOAD_SANITIZED 0
#endif

/* Sessions at once in the scale test: 500, or 100 in a sanitizer build,
 * where every request costs several times as much and the suites beside
 * it load the same two cores: there, 55 of 500 sessions once timed out on
 * the 10 s request timeout (the harness said so, exit 3). The scale is the
 * plain build's to prove (CI's slow stage); the sanitizers look for
 * errors. */
#define LOAD_CLIENTS (LOAD_SANITIZED ? 100 : 500)

#define LOAD_ROUNDS 5
#define LOAD_SESSIONS 20
#define LOAD_POSTS 2

/* The listener must take every session at once (test_hostile's
 * test_500_concurrent_connections checks that alone). */
START_TEST(test_500_clients_clean)
{
  char clients[16], want[160];
  char *argv[] = {KBSIM_BIN, "run",      "--policy", "per-request", "--clients",
                  clients,   "--expect", "clean",    NULL};
  struct proc_out p;
  char tail[700];
  int status;
  bool summary;

  snprintf(clients, sizeof(clients), "%d", LOAD_CLIENTS);
  snprintf(want, sizeof(want),
           "%d clients, %d POSTs, %d ok, 0 failed; 0 of %d users saw the "
           "Outlook Integration Error",
           LOAD_CLIENTS, 3 * LOAD_CLIENTS, 3 * LOAD_CLIENTS, LOAD_CLIENTS);
  proc_run(argv, &p);
  status = p.status;
  summary = strstr(p.out.data, want) != NULL;
  snprintf(tail, sizeof(tail), "%s%s", p.err.data,
           p.out.len > 600 ? p.out.data + p.out.len - 600 : p.out.data);
  proc_free(&p);
  ck_assert_msg(status == 0 && summary, "kbsim exited %d: %s", status, tail);
}
END_TEST

/* Returns the number of entries in a /proc/self directory. */
static unsigned load_count_dir(const char *path)
{
  DIR *d = opendir(path);
  struct dirent *de;
  unsigned n = 0;

  ck_assert_msg(d != NULL, "cannot open %s", path);
  while((de = readdir(d)))
    if(de->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

/* What the process holds at one moment. */
struct load_usage {
  unsigned fds;     /* open descriptors, opendir's own excluded */
  unsigned threads; /* tasks */
  size_t heap;      /* bytes malloc has handed out and not got back */
  size_t rss;       /* resident bytes */
};

static void load_usage(struct load_usage *u)
{
  struct mallinfo2 mi = mallinfo2();
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;

  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &resident), 2);
  fclose(f);
  u->fds = load_count_dir("/proc/self/fd") - 1;
  u->threads = load_count_dir("/proc/self/task");
  u->heap = mi.uordblks + mi.hblkhd;
  u->rss = resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* The tasks of this process once the threads already joined are gone:
 * pthread_join returns when the kernel clears the thread's tid, a moment
 * before it drops the task from /proc/self/task, and nothing signals that
 * moment. So a count above want is read again, yielding in between, a
 * bounded number of times; a thread really left running keeps it high. */
static unsigned load_threads_settled(unsigned want)
{
  unsigned n = load_count_dir("/proc/self/task");
  int tries;

  for(tries = 0; n > want && tries < 10000; tries++) {
    sched_yield();
    n = load_count_dir("/proc/self/task");
  }
  return n;
}

/* Starts a seeded topology, runs LOAD_SESSIONS sessions through it and
 * stops it; every POST must succeed. */
static void load_round(void)
{
  static const char *const specs[] = {"FABRIKAM\\alice:Passw0rd!"};
  struct kb_users *users = kb_users_new();
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  struct sim_sessions s;
  char err[256];

  ck_assert_ptr_nonnull(users);
  ck_assert_int_eq(kb_users_add_spec(users, specs[0], err, sizeof(err)), 0);
  memset(&cfg, 0, sizeof(cfg));
  cfg.policy = PROXY_POLICY_PER_REQUEST;
  cfg.users = users;
  cfg.simulated = true;
  cfg.seed = 7;
  ck_assert_msg(sim_topology_start(&cfg, &topo, err, sizeof(err)) == 0, "%s",
                err);
  memset(&s, 0, sizeof(s));
  ck_assert_msg(sim_run_sessions(topo, LOAD_SESSIONS, LOAD_POSTS,
                                 NTLM_RESPONSE_V2, specs, 1, &s, err,
                                 sizeof(err)) == 0,
                "%s", err);
  ck_assert_uint_eq(s.posts, LOAD_SESSIONS * (LOAD_POSTS + 1));
  ck_assert_uint_eq(s.posts_ok, s.posts);
  ck_assert_uint_eq(s.users_with_error, 0);
  sim_sessions_free(&s);
  sim_topology_stop(topo);
  kb_users_free(users);
}

/* Sessions at once in the descriptor test, and their POSTs: enough that
 * every session still holds its connections when the last one opens
 * its own. */
#define LOAD_FD_SESSIONS 64
#define LOAD_FD_POSTS 6

/* Runs LOAD_FD_SESSIONS sessions of clients of kind through a topology
 * under a descriptor limit of what the process holds once started, what
 * the workers open (an epoll instance and the clients' multi handle's
 * wake-up pair each) and per_session for each session; returns the POSTs
 * that failed and the sessions that never started. */
static unsigned load_under_limit(enum client_kind kind, unsigned per_session)
{
  static const char *const specs[] = {"FABRIKAM\\alice:Passw0rd!"};
  struct kb_users *users = kb_users_new();
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  struct sim_clients plan;
  struct sim_sessions s;
  struct rlimit saved, r;
  unsigned held, failed;
  char err[256];

  ck_assert_ptr_nonnull(users);
  ck_assert_int_eq(kb_users_add_spec(users, specs[0], err, sizeof(err)), 0);
  memset(&cfg, 0, sizeof(cfg));
  cfg.policy = PROXY_POLICY_PER_REQUEST;
  cfg.users = users;
  cfg.simulated = true;
  cfg.seed = 7;
  cfg.max_connections = 3 * LOAD_FD_SESSIONS;
  ck_assert_msg(sim_topology_start(&cfg, &topo, err, sizeof(err)) == 0, "%s",
                err);
  memset(&plan, 0, sizeof(plan));
  plan.count = LOAD_FD_SESSIONS;
  plan.ews_posts = LOAD_FD_POSTS;
  plan.ntlm = NTLM_RESPONSE_V2;
  plan.kind = kind;
  plan.logins = specs;
  plan.nlogins = 1;
  held = load_count_dir("/proc/self/fd") - 1;
  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
  r = saved;
  r.rlim_cur = held + 3 * kb_fiber_threads(LOAD_FD_SESSIONS) +
               LOAD_FD_SESSIONS * per_session;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &r), 0);
  memset(&s, 0, sizeof(s));
  ck_assert_msg(sim_run_plan(topo, &plan, &s, err, sizeof(err)) == 0, "%s",
                err);
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
  failed = s.posts_failed + s.not_started;
  sim_sessions_free(&s);
  sim_topology_stop(topo);
  kb_users_free(users);
  return failed;
}

/* sim/fdlimit.h's counts are exact: sessions, all connected at once, fit
 * in sim_fd_per_session descriptors each, and not in one fewer. The
 * second half is the plain build's to prove: under a sanitizer sessions
 * run several times slower, and the first may end before the last
 * opened its upstream connection (seen with ASan: outlook-anywhere's
 * sessions fitted in 13 each). */
static void load_assert_exact(enum client_kind kind)
{
  unsigned per_session = sim_fd_per_session(kind);

  ck_assert_uint_eq(load_under_limit(kind, per_session), 0);
  if(!LOAD_SANITIZED)
    ck_assert_uint_gt(load_under_limit(kind, per_session - 1), 0);
}

START_TEST(test_descriptors_per_session)
{
  load_assert_exact(CLIENT_KIND_COMMUNICATOR);
}
END_TEST

/* The same for outlook-anywhere's two RPC channels (slow: with one
 * descriptor short, some channels wait out the client's 10 s timeout). */
START_TEST(test_descriptors_per_rpc_session)
{
  load_assert_exact(CLIENT_KIND_OUTLOOK_ANYWHERE);
}
END_TEST

START_TEST(test_no_growth_over_runs)
{
  struct load_usage before, first, second, last;
  int i;

  load_usage(&before);
  load_round();
  load_usage(&first);
  first.threads = load_threads_settled(before.threads);
  load_round();
  load_usage(&second);
  for(i = 2; i < LOAD_ROUNDS; i++)
    load_round();
  load_usage(&last);
  last.threads = load_threads_settled(first.threads);

  /* Everything a round opens it closes: descriptors and threads come back
   * to what they were before the first round (libcurl and libxml2 keep
   * no descriptor or thread of their own; ThreadSanitizer starts a
   * thread of its own with the first one the program creates). */
  ck_assert_uint_eq(first.fds, before.fds);
  ck_assert_uint_eq(last.fds, before.fds);
  if(!LOAD_SANITIZED)
    ck_assert_uint_eq(first.threads, before.threads);
  ck_assert_uint_eq(last.threads, first.threads);
  /* Memory: the first round pays for one-time initialisation (libcurl,
   * libxml2, malloc's arenas); from the second on nothing may pile up.
   * Sanitizers keep freed memory in quarantine, so they are left to
   * LeakSanitizer. */
  if(!LOAD_SANITIZED) {
    ck_assert_msg(last.heap <= second.heap + 64 * 1024,
                  "heap in use grew from %zu to %zu bytes over %d rounds",
                  second.heap, last.heap, LOAD_ROUNDS - 2);
    /* Resident memory is reported, not asserted: with hundreds of
     * threads glibc spreads blocks over many arenas, and RSS moves by
     * megabytes from round to round with nothing leaked (seen: +4.6 MB
     * once in six runs while heap in use stayed flat). Heap in use above,
     * descriptors, threads, LeakSanitizer and valgrind (CI) catch leaks. */
    printf("load: resident memory after round 2: %zu KiB, after round %d: "
           "%zu KiB\n",
           second.rss / 1024, LOAD_ROUNDS, last.rss / 1024);
  }
}
END_TEST

static Suite *load_suite(void)
{
  Suite *s = suite_create("load");
  TCase *tc = tcase_create("load");
  TCase *scale = tcase_create("scale");

  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_no_growth_over_runs);
  tcase_add_test(tc, test_descriptors_per_session);
  suite_add_tcase(s, tc);
  /* Its cost is its scale: 500 sessions at once. */
  tcase_set_timeout(scale, 120);
  tcase_set_tags(scale, KBT_SLOW);
  tcase_add_test(scale, test_500_clients_clean);
  tcase_add_test(scale, test_descriptors_per_rpc_session);
  suite_add_tcase(s, scale);
  return s;
}

int main(void)
{
  proc_whole_lines();
  return kbt_run(load_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
