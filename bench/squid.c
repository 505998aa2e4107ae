/*
 * squid.c - complete Communicator sessions per second through kbsim's
 * listener (integrated, per-request, in this process) against the same
 * sessions through Squid with Samba's ntlm_auth helper (examples/squid),
 * both publishing the same `kbsim exchange`, alternating in one run; and
 * the CPU each listener spent per session.
 *
 * Usage: bench_squid --exchange URL --squid URL --squid-pid PID
 *                    [--kind one-shot|communicator] [--seconds S]
 *                    [--rounds R] C...
 * A session is autodiscover + 2 EWS POSTs by the client library. With
 * --kind one-shot (the default) every POST is a full NTLM handshake on a
 * new connection, which both listeners answer correctly. With
 * communicator every POST re-authenticates on the kept-alive connection:
 * kbsim's listener challenges each one, Squid forwards the body-less POST
 * (its KB 942638 behaviour, examples/squid/README.md), so its POSTs fail
 * and are counted as failed. For each concurrency C, R rounds alternate
 * "kbsim" then "squid", each running batches of C concurrent sessions (C
 * threads, fresh clients) for at least S seconds. Prints per mode and C:
 *   squid-sessions <mode> <kind> <C> <sessions> <seconds> <sessions/s>
 *                  <failed POSTs> <listener CPU ms per session>
 * The listener's CPU: kbsim's is its kb-proxy threads (/proc/self/task);
 * Squid's is the Squid process and its children (the ntlm_auth helpers),
 * from /proc/PID/stat and /proc/PID/task/PID/children.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "client/client.h"
#include "common/kb_users.h"
#include "proxy/proxy.h"

#define SQUID_MAX_CLIENTS 256

static double squid_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime ticks of the stat file at path; 0 when unreadable. */
static unsigned long long squid_stat_ticks(const char *path)
{
  char stat[1024];
  unsigned long long ut = 0, st = 0;
  const char *p;
  FILE *f = fopen(path, "r");

  if(!f)
    return 0;
  if(!fgets(stat, sizeof(stat), f) || !(p = strrchr(stat, ')')) ||
     sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
            &st) != 2)
    ut = st = 0;
  fclose(f);
  return ut + st;
}

/* CPU seconds of this process's threads named kb-proxy*. */
static double squid_kbsim_cpu(void)
{
  DIR *dir = opendir("/proc/self/task");
  struct dirent *de;
  unsigned long long ticks = 0;

  if(!dir)
    return 0;
  while((de = readdir(dir))) {
    char path[300], comm[32] = "";
    FILE *f;
    if(de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
    if(!(f = fopen(path, "r")))
      continue;
    if(!fgets(comm, sizeof(comm), f))
      comm[0] = '\0';
    fclose(f);
    if(strncmp(comm, "kb-proxy", 8))
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/stat", de->d_name);
    ticks += squid_stat_ticks(path);
  }
  closedir(dir);
  return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of Squid (pid) and its live children (the helpers). */
static double squid_squid_cpu(long pid)
{
  char path[128];
  unsigned long long ticks;
  long child;
  FILE *f;

  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  ticks = squid_stat_ticks(path);
  snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", pid, pid);
  if((f = fopen(path, "r"))) {
    while(fscanf(f, "%ld", &child) == 1) {
      snprintf(path, sizeof(path), "/proc/%ld/stat", child);
      ticks += squid_stat_ticks(path);
    }
    fclose(f);
  }
  return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

struct squid_session {
  struct client_config cfg;
  unsigned failed;
  bool ok;
};

static void *squid_session_run(void *cls)
{
  struct squid_session *s = cls;
  struct client *c = NULL;
  char err[256];

  s->failed = 0;
  s->ok = !client_create(&s->cfg, &c, err, sizeof(err));
  if(s->ok)
    s->failed = client_run_session(c);
  else
    fprintf(stderr, "bench_squid: %s\n", err);
  client_destroy(c);
  return NULL;
}

struct squid_tally {
  unsigned long sessions, failed;
  double seconds, cpu;
};

/* Runs batches of n sessions against url for at least seconds. */
static int squid_measure(const char *url, enum client_kind kind, unsigned n,
                         double seconds, double (*cpu)(long), long pid,
                         struct squid_tally *t)
{
  static struct squid_session s[SQUID_MAX_CLIENTS];
  pthread_t th[SQUID_MAX_CLIENTS];
  double start = squid_now(), cpu0 = cpu(pid);
  unsigned i;

  do {
    for(i = 0; i < n; i++) {
      memset(&s[i], 0, sizeof(s[i]));
      s[i].cfg.id = i + 1;
      s[i].cfg.base_url = url;
      s[i].cfg.domain = "FABRIKAM";
      s[i].cfg.user = i % 2 ? "bob" : "alice";
      s[i].cfg.password = "Passw0rd!";
      s[i].cfg.ews_posts = 2;
      s[i].cfg.kind = kind;
      if(pthread_create(&th[i], NULL, squid_session_run, &s[i]))
        return -1;
    }
    for(i = 0; i < n; i++) {
      pthread_join(th[i], NULL);
      if(!s[i].ok)
        return -1;
      t->sessions++;
      t->failed += s[i].failed;
    }
  } while(squid_now() - start < seconds);
  t->seconds += squid_now() - start;
  t->cpu += cpu(pid) - cpu0;
  return 0;
}

static double squid_kbsim_cpu_any(long pid)
{
  (void)pid;
  return squid_kbsim_cpu();
}

int main(int argc, char **argv)
{
  const char *exchange = NULL, *squid = NULL, *kind_name = "one-shot";
  double seconds = 2;
  unsigned rounds = 3, r;
  long pid = 0;
  enum client_kind kind;
  struct kb_users *users = kb_users_new();
  struct proxy_config pc;
  struct proxy *px = NULL;
  char err[512], kurl[64];
  int i, result = 1;

  for(i = 1; i < argc && argv[i][0] == '-'; i += 2) {
    if(i + 1 >= argc)
      break;
    if(!strcmp(argv[i], "--exchange"))
      exchange = argv[i + 1];
    else if(!strcmp(argv[i], "--squid"))
      squid = argv[i + 1];
    else if(!strcmp(argv[i], "--squid-pid"))
      pid = atol(argv[i + 1]);
    else if(!strcmp(argv[i], "--kind"))
      kind_name = argv[i + 1];
    else if(!strcmp(argv[i], "--seconds"))
      seconds = atof(argv[i + 1]);
    else if(!strcmp(argv[i], "--rounds"))
      rounds = (unsigned)atoi(argv[i + 1]);
    else
      break;
  }
  if(!exchange || !squid || pid <= 0 || i >= argc ||
     client_kind_parse(kind_name, &kind) || !users) {
    fprintf(stderr, "usage: bench_squid --exchange URL --squid URL "
                    "--squid-pid PID [--kind one-shot|communicator] "
                    "[--seconds S] [--rounds R] C...\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if(kb_users_add_spec(users, "FABRIKAM\\alice:Passw0rd!", err, sizeof(err)) ||
     kb_users_add_spec(users, "FABRIKAM\\bob:Passw0rd!", err, sizeof(err))) {
    fprintf(stderr, "bench_squid: %s\n", err);
    goto out;
  }
  memset(&pc, 0, sizeof(pc));
  pc.backend_url = exchange;
  pc.policy = PROXY_POLICY_PER_REQUEST;
  pc.users = users;
  if(proxy_start(&pc, &px, err, sizeof(err))) {
    fprintf(stderr, "bench_squid: %s\n", err);
    goto out;
  }
  snprintf(kurl, sizeof(kurl), "http://127.0.0.1:%u", (unsigned)proxy_port(px));
  for(; i < argc; i++) {
    unsigned n = (unsigned)atoi(argv[i]);
    struct squid_tally tk = {0, 0, 0, 0}, ts = {0, 0, 0, 0};
    if(!n || n > SQUID_MAX_CLIENTS) {
      fprintf(stderr, "bench_squid: clients from 1 to %u, not '%s'\n",
              SQUID_MAX_CLIENTS, argv[i]);
      goto out;
    }
    /* Warm-up of each, then alternating rounds. */
    {
      struct squid_tally w = {0, 0, 0, 0};
      if(squid_measure(kurl, kind, n, 0.5, squid_kbsim_cpu_any, 0, &w) ||
         squid_measure(squid, kind, n, 0.5, squid_squid_cpu, pid, &w))
        goto out;
    }
    for(r = 0; r < rounds; r++) {
      if(squid_measure(kurl, kind, n, seconds, squid_kbsim_cpu_any, 0, &tk) ||
         squid_measure(squid, kind, n, seconds, squid_squid_cpu, pid, &ts))
        goto out;
    }
    printf("squid-sessions\tkbsim\t%s\t%u\t%lu\t%.3f\t%.1f\t%lu\t%.3f\n",
           kind_name, n, tk.sessions, tk.seconds, tk.sessions / tk.seconds,
           tk.failed, 1000.0 * tk.cpu / (double)tk.sessions);
    printf("squid-sessions\tsquid\t%s\t%u\t%lu\t%.3f\t%.1f\t%lu\t%.3f\n",
           kind_name, n, ts.sessions, ts.seconds, ts.sessions / ts.seconds,
           ts.failed, 1000.0 * ts.cpu / (double)ts.sessions);
    fflush(stdout);
  }
  result = 0;
out:
  proxy_stop(px);
  kb_users_free(users);
  curl_global_cleanup();
  return result;
}
