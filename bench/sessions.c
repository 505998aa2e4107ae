/*
 * sessions.c - complete Communicator sessions per second through the
 * in-process topology (client -> ISA listener, integrated, per-request ->
 * Exchange), against the same sessions sent straight to the backend as the
 * ceiling.
 *
 * A session is what `kbsim run` runs per client: autodiscover, then
 * ews_posts EWS POSTs, each POST a full NTLM handshake (type 1 -> 401 +
 * type 2 -> type 3 with the body) under per-request. Straight to the
 * backend, the client's first leg goes without credentials and Exchange
 * (which does not authenticate) answers 200, so a POST is one request.
 *
 * Usage: bench_sessions [--seconds S] [--rounds R] [--posts P]
 *                       [--only proxy|direct] [--scenario FILE] C...
 * For each concurrency C, R rounds alternating "proxy" then "direct" (or
 * only one of them, for profiling one path with perf), each
 * repeating sim_run_plan with C clients for at least S seconds. Every
 * sim_run_plan is one batch of C fresh clients (new threads, new
 * connections, from their own loopback source address as a sweep's
 * runs), so both modes pay the same client-side cost. Prints one
 * tab-separated line per concurrency and mode:
 *   sessions <mode> <C> <sessions> <seconds> <sessions/s> <failed POSTs>
 * The CPU time the whole process and the listener's event loop (threads
 * named kb-proxy) spent is measured too, so the report can say how much of
 * a session's cost is the listener's and how much is the protocol's (the
 * client's extra legs, the extra hop). Then
 *   cpu <mode> <C> <process CPU ms per session> <listener CPU ms per session>
 * and exits 1 when any POST failed (a benchmark of broken sessions
 * measures nothing). glibc's trim threshold is the one kbsim's main sets
 * (cli/kbsim.c), as in `kbsim run`.
 *
 * With --scenario FILE the sessions are the scenario's own, on the
 * topology `kbsim run` starts for it (its array, balancer, idle timeout,
 * members' policies, users), with its clients' posts, kind and think
 * times; only the concurrency is C's. This is the in-process rate that a
 * sweep of the same scenario is measured against (bench/sweep-run): the
 * same sessions, C at a time on one topology that is never reset. The
 * scenario's POSTs may fail by design (the bug), so what counts as failed
 * there is a session the harness failed or could not start; the mode is
 * "scenario", and one more line says how many sessions saw the error:
 *   errors scenario <C> <sessions with the error> <sessions>
 * and, through the listener, what a session made on average:
 *   work <mode> <C> <requests> <client connections> <Exchange connections>
 */
#include <dirent.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common/kb_users.h"
#include "sim/run.h"
#include "sim/scenario.h"
#include "sim/topology.h"

#define SESSIONS_LOGIN "FABRIKAM\\alice:Passw0rd!"

/* What one mode accumulated at one concurrency. */
struct sessions_tally {
  unsigned long sessions;
  unsigned long failed;
  unsigned long with_error; /* sessions that saw the notification */
  double seconds;
  double cpu;      /* process CPU seconds */
  double listener; /* of which the listener's loop threads */
  /* What the sessions made: requests and connections the listeners
   * accepted (the client hop) and connections Exchange accepted. */
  uint64_t requests, connections, upstream;
};

/* Requests and connections the members and Exchange have counted. */
static void sessions_work(struct sim_topology *topo, uint64_t out[3])
{
  struct backend_stats b;
  size_t i;

  out[0] = out[1] = 0;
  for(i = 0; i < topo->nproxies; i++) {
    struct proxy_stats p;
    proxy_stats(topo->proxies[i], &p);
    out[0] += p.requests;
    out[1] += p.connections;
  }
  backend_stats(topo->backend, &b);
  out[2] = b.connections;
}

/* Monotonic seconds. */
static double sessions_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) this process has used, exited threads
 * included. */
static double sessions_process_cpu(void)
{
  struct rusage ru;

  if(getrusage(RUSAGE_SELF, &ru))
    return 0;
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds the listener's event loop threads (named "kb-proxy...") have
 * used, read from /proc/self/task; 0 when /proc cannot be read. */
static double sessions_listener_cpu(void)
{
  DIR *dir = opendir("/proc/self/task");
  struct dirent *de;
  long hz = sysconf(_SC_CLK_TCK);
  unsigned long long ticks = 0;

  if(!dir)
    return 0;
  while((de = readdir(dir))) {
    char path[300], comm[32] = "", stat[1024];
    unsigned long long ut = 0, st = 0;
    const char *p;
    FILE *f;

    if(de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
    if(!(f = fopen(path, "r")))
      continue;
    if(!fgets(comm, sizeof(comm), f))
      comm[0] = '\0';
    fclose(f);
    if(strncmp(comm, "kb-proxy", 8)) /* kb-proxy, kb-proxy-2, ... */
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/stat", de->d_name);
    if(!(f = fopen(path, "r")))
      continue;
    /* Fields 14 and 15 (utime, stime) follow the parenthesised name. */
    if(fgets(stat, sizeof(stat), f) && (p = strrchr(stat, ')')) &&
       sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
              &ut, &st) == 2)
      ticks += ut + st;
    fclose(f);
  }
  closedir(dir);
  return hz > 0 ? (double)ticks / (double)hz : 0;
}

/* Runs batches of plan->count sessions against url for at least seconds
 * and adds them to *t. A failed POST counts as failed unless by_design
 * (a scenario's, where POSTs fail for the listener's doing): then only
 * the sessions the harness failed or could not start do. Returns 0, or
 * -1 with err set when a batch could not start. The topology's client URL
 * is pointed at url for the time of the call: sim_topology_client_config
 * aims every client at proxy_url. */
static int sessions_measure(struct sim_topology *topo, const char *url,
                            const struct sim_clients *plan, bool by_design,
                            double seconds, struct sessions_tally *t, char *err,
                            size_t errlen)
{
  char saved[sizeof(topo->proxy_url)];
  char target[sizeof(topo->proxy_url)];
  double start = sessions_now();
  double now = start;
  double cpu0 = sessions_process_cpu();
  double listener0 = sessions_listener_cpu();
  uint64_t work0[3], work1[3];
  int result = 0;

  /* url may be topo->proxy_url itself. */
  snprintf(target, sizeof(target), "%s", url);
  memcpy(saved, topo->proxy_url, sizeof(saved));
  memcpy(topo->proxy_url, target, sizeof(target));
  sessions_work(topo, work0);
  while(now - start < seconds) {
    static unsigned long batches;
    struct sim_sessions s;

    /* Each batch from its own loopback source, as a sweep's runs: the
     * same listener ports a minute long from one source wear the
     * ephemeral ports out (sim_topology_set_source). */
    sim_topology_set_source(topo, sim_topology_run_source(batches++));
    if(sim_run_plan(topo, plan, &s, err, errlen)) {
      result = -1;
      break;
    }
    t->sessions += s.count - s.not_started;
    t->failed +=
        (by_design ? s.infrastructure : s.posts_failed) + s.not_started;
    t->with_error += s.users_with_error;
    sim_sessions_free(&s);
    now = sessions_now();
  }
  t->seconds += now - start;
  t->cpu += sessions_process_cpu() - cpu0;
  t->listener += sessions_listener_cpu() - listener0;
  sessions_work(topo, work1);
  t->requests += work1[0] - work0[0];
  t->connections += work1[1] - work0[1];
  t->upstream += work1[2] - work0[2];
  memcpy(topo->proxy_url, saved, sizeof(saved));
  return result;
}

/* Parses a positive number argument; returns 0 on success. */
static int sessions_num(const char *text, double *out)
{
  char *end = NULL;
  double v = strtod(text, &end);
  if(!*text || *end || !(v > 0))
    return -1;
  *out = v;
  return 0;
}

/* Prints one mode's lines at concurrency c (see the header). */
static void sessions_print(const char *mode, unsigned c,
                           const struct sessions_tally *t, bool errors)
{
  printf("sessions\t%s\t%u\t%lu\t%.3f\t%.1f\t%lu\n", mode, c, t->sessions,
         t->seconds, (double)t->sessions / t->seconds, t->failed);
  if(t->sessions)
    printf("cpu\t%s\t%u\t%.4f\t%.4f\n", mode, c,
           t->cpu * 1e3 / (double)t->sessions,
           t->listener * 1e3 / (double)t->sessions);
  if(t->sessions && strcmp(mode, "direct"))
    printf("work\t%s\t%u\t%.2f\t%.2f\t%.2f\n", mode, c,
           (double)t->requests / (double)t->sessions,
           (double)t->connections / (double)t->sessions,
           (double)t->upstream / (double)t->sessions);
  if(errors)
    printf("errors\t%s\t%u\t%lu\t%lu\n", mode, c, t->with_error, t->sessions);
}

int main(int argc, char **argv)
{
  static const char *const logins[] = {SESSIONS_LOGIN};
  struct kb_users *users = NULL;
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  struct scenario sc;
  struct sim_logins sc_logins;
  const char *scenario_path = NULL;
  double seconds = 2, rounds = 3, posts = 2;
  bool run_proxy = true, run_direct = true;
  char err[512];
  int result = 1;
  int i;
  bool any_failed = false;

#ifdef M_TRIM_THRESHOLD
  /* The process-wide setting kbsim's main makes (cli/kbsim.c). */
  mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
#endif
  for(i = 1; i < argc && argv[i][0] == '-'; i += 2) {
    double *slot;
    if(!strcmp(argv[i], "--only") && i + 1 < argc &&
       (!strcmp(argv[i + 1], "proxy") || !strcmp(argv[i + 1], "direct"))) {
      run_proxy = !strcmp(argv[i + 1], "proxy");
      run_direct = !run_proxy;
      continue;
    }
    if(!strcmp(argv[i], "--scenario") && i + 1 < argc) {
      scenario_path = argv[i + 1];
      continue;
    }
    slot = !strcmp(argv[i], "--seconds")  ? &seconds
           : !strcmp(argv[i], "--rounds") ? &rounds
           : !strcmp(argv[i], "--posts")  ? &posts
                                          : NULL;
    if(!slot || i + 1 >= argc || sessions_num(argv[i + 1], slot)) {
      fprintf(stderr, "usage: bench_sessions [--seconds S] [--rounds R] "
                      "[--posts P] [--only proxy|direct] [--scenario FILE] "
                      "CONCURRENCY...\n");
      return 2;
    }
  }
  if(i >= argc) {
    fprintf(stderr, "bench_sessions: give at least one concurrency, e.g. 1 "
                    "8 64\n");
    return 2;
  }

  if(scenario_path) {
    /* The scenario's sessions only go through its listener. */
    run_proxy = true;
    run_direct = false;
    if(scenario_load(scenario_path, &sc, err, sizeof(err)) ||
       sim_scenario_users(&sc, &users, err, sizeof(err))) {
      fprintf(stderr, "bench_sessions: %s\n", err);
      goto out;
    }
    sim_scenario_topology(&sc, users, (struct kb_trace){0}, &cfg);
  }
  else {
    users = kb_users_new();
    if(!users || kb_users_add_spec(users, SESSIONS_LOGIN, err, sizeof(err))) {
      fprintf(stderr, "bench_sessions: cannot set up the user store\n");
      goto out;
    }
    /* What `kbsim run --policy per-request` starts, minus the trace: a
     * seeded, simulated topology. */
    memset(&cfg, 0, sizeof(cfg));
    cfg.policy = PROXY_POLICY_PER_REQUEST;
    cfg.auth = PROXY_AUTH_INTEGRATED;
    cfg.users = users;
    cfg.simulated = true;
    cfg.seed = 1;
  }
  if(sim_topology_start(&cfg, &topo, err, sizeof(err))) {
    fprintf(stderr, "bench_sessions: %s\n", err);
    goto out;
  }

  for(; i < argc; i++) {
    struct sim_clients plan;
    struct sessions_tally via, direct, warm;
    const bool by_design = scenario_path != NULL;
    double c;
    int r;

    if(sessions_num(argv[i], &c) || c > 1000) {
      fprintf(stderr,
              "bench_sessions: '%s' is not a concurrency of 1 to "
              "1000\n",
              argv[i]);
      goto out;
    }
    memset(&via, 0, sizeof(via));
    memset(&direct, 0, sizeof(direct));
    memset(&warm, 0, sizeof(warm));
    if(scenario_path) {
      if(sim_scenario_plan(&sc, &sc_logins, &plan, err, sizeof(err)))
        goto fail;
    }
    else {
      memset(&plan, 0, sizeof(plan));
      plan.ews_posts = (unsigned)posts;
      plan.ntlm = NTLM_RESPONSE_V2;
      plan.kind = CLIENT_KIND_COMMUNICATOR;
      plan.logins = logins;
      plan.nlogins = 1;
    }
    plan.count = (unsigned)c;
    /* Warm-up for each, not counted. */
    if((run_proxy && sessions_measure(topo, topo->proxy_url, &plan, by_design,
                                      0.2, &warm, err, sizeof(err))) ||
       (run_direct && sessions_measure(topo, topo->backend_url, &plan, false,
                                       0.2, &warm, err, sizeof(err))))
      goto fail;
    for(r = 0; r < (int)rounds; r++)
      if((run_proxy && sessions_measure(topo, topo->proxy_url, &plan, by_design,
                                        seconds, &via, err, sizeof(err))) ||
         (run_direct && sessions_measure(topo, topo->backend_url, &plan, false,
                                         seconds, &direct, err, sizeof(err))))
        goto fail;
    if(run_proxy)
      sessions_print(by_design ? "scenario" : "proxy", plan.count, &via,
                     by_design);
    if(run_direct)
      sessions_print("direct", plan.count, &direct, false);
    fflush(stdout);
    any_failed |= via.failed || direct.failed || warm.failed;
  }
  result = any_failed ? 1 : 0;
  if(any_failed)
    fprintf(stderr, "bench_sessions: %s\n",
            scenario_path ? "the harness failed some sessions; the "
                            "figures above count only what completed"
                          : "some POSTs failed; the figures above "
                            "count only what completed");
  goto out;

fail:
  fprintf(stderr, "bench_sessions: %s\n", err);
out:
  sim_topology_stop(topo);
  kb_users_free(users);
  return result;
}
