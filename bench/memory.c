/*
 * memory.c - peak resident memory of one `kbsim run`-like run of N
 * concurrent Communicator sessions through the in-process topology
 * (integrated listener, per-request), in a fresh process so that the peak
 * belongs to that N alone.
 *
 * Usage: bench_memory N [POSTS]   (N from 1 to 10000, or `max`: as many
 *                                  as the descriptor limit allows, at
 *                                  most 10000)
 * Prints one tab-separated line:
 *   memory <N> <KiB resident after start> <KiB peak resident> <failed>
 *          <worker threads> <KiB of stack the deepest session touched>
 * bench/run runs it for several N and reports the slope per session.
 * Exits 1 when a session failed, 2 when N does not fit under the
 * descriptor limit (the same up-front check as `kbsim run`).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/kb_guard.h"
#include "common/kb_users.h"
#include "sim/fdlimit.h"
#include "sim/topology.h"

#define MEMORY_LOGIN "FABRIKAM\\alice:Passw0rd!"

/* Resident set now, in KiB, from /proc/self/statm; 0 when unreadable. */
static unsigned long memory_rss_kib(void)
{
  unsigned long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if(!f)
    return 0;
  if(fscanf(f, "%lu %lu", &size, &resident) != 2)
    resident = 0;
  fclose(f);
  return resident * 4u;
}

int main(int argc, char **argv)
{
  static const char *const logins[] = {MEMORY_LOGIN};
  struct kb_users *users = NULL;
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  struct sim_clients plan;
  struct sim_sessions s;
  struct rusage ru;
  unsigned long n = 0, posts = 2, before;
  char err[256];
  int result = 1;

  if(argc > 1 && !strcmp(argv[1], "max")) {
    n = sim_fd_sessions(SIM_FDS_PER_SESSION);
    if(n > 10000)
      n = 10000;
  }
  else if(argc > 1)
    n = strtoul(argv[1], NULL, 10);
  if(argc < 2 || n < 1 || n > 10000 ||
     (argc > 2 && (posts = strtoul(argv[2], NULL, 10)) < 1)) {
    fprintf(stderr, "usage: bench_memory SESSIONS(1-10000 or max) [POSTS]\n");
    return 2;
  }
  if(sim_fd_check(n, SIM_FDS_PER_SESSION, err, sizeof(err))) {
    fprintf(stderr, "bench_memory: %s\n", err);
    return 2;
  }
  memset(&s, 0, sizeof(s));
  users = kb_users_new();
  if(!users || kb_users_add_spec(users, MEMORY_LOGIN, err, sizeof(err))) {
    fprintf(stderr, "bench_memory: cannot set up the user store\n");
    goto out;
  }
  memset(&cfg, 0, sizeof(cfg));
  cfg.policy = PROXY_POLICY_PER_REQUEST;
  cfg.users = users;
  cfg.simulated = true;
  cfg.seed = 1;
  /* All N are connected at once: the listener must hold them all. */
  if(n > KB_GUARD_MAX_CONNECTIONS)
    cfg.max_connections = (unsigned)n;
  if(sim_topology_start(&cfg, &topo, err, sizeof(err))) {
    fprintf(stderr, "bench_memory: %s\n", err);
    goto out;
  }
  before = memory_rss_kib();
  memset(&plan, 0, sizeof(plan));
  plan.count = (unsigned)n;
  plan.ews_posts = (unsigned)posts;
  plan.ntlm = NTLM_RESPONSE_V2;
  plan.kind = CLIENT_KIND_COMMUNICATOR;
  plan.logins = logins;
  plan.nlogins = 1;
  if(sim_run_plan(topo, &plan, &s, err, sizeof(err))) {
    fprintf(stderr, "bench_memory: %s\n", err);
    goto out;
  }
  getrusage(RUSAGE_SELF, &ru);
  printf("memory\t%lu\t%lu\t%ld\t%u\t%u\t%zu\n", n, before, ru.ru_maxrss,
         s.posts_failed + s.not_started, s.threads, s.stack_peak / 1024);
  result = s.posts_failed || s.not_started ? 1 : 0;
out:
  sim_sessions_free(&s);
  sim_topology_stop(topo);
  kb_users_free(users);
  return result;
}
