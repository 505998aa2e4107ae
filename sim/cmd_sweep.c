/*
 * cmd_sweep.c - `kbsim sweep`: one scenario over many seeds, the rate of
 * sessions that saw the error with its 95% Wilson interval, gated by
 * --expect-rate or the scenario's [expect] rate, in text, JSON and JUnit.
 *
 * Workers take seeds from a shared counter; each result has its own slot,
 * so the numbers do not depend on --jobs. SIGINT stops the workers after
 * their current seed; what ran is reported, marked partial.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "verdicts.h"
#include "version.h"

#define KBSIM_MAX_SEEDS 1000000u
#define KBSIM_MAX_JOBS 64

/* Set by SIGINT: workers take no new seed. */
static volatile sig_atomic_t kbsim_sweep_interrupted;

static void kbsim_sweep_on_sigint(int sig)
{
  (void)sig;
  kbsim_sweep_interrupted = 1;
}

/* One seed's result. */
struct kbsim_seed_result {
  bool ran;
  unsigned sessions;
  unsigned with_error;
  unsigned infrastructure; /* sessions the harness failed */
  uint64_t empty_posts;
  uint64_t ews_posts;
  char error[256];
};

struct kbsim_sweep {
  const struct scenario *sc;
  uint64_t first;
  uint64_t count;
  struct kbsim_seed_result *results;
  atomic_uint_fast64_t next;
  atomic_uint_fast64_t done;
  bool progress;              /* stderr is a terminal */
  pthread_mutex_t print_lock; /* progress line */
  int64_t last_print_ms;
};

static int64_t kbsim_monotonic_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Worker: takes the next seed until none is left. Each result goes to its
 * own slot, so the totals do not depend on which worker ran what. */
static void *kbsim_sweep_worker(void *arg)
{
  struct kbsim_sweep *sw = arg;
  struct scenario sc = *sw->sc;
  uint64_t i;

  while(!kbsim_sweep_interrupted &&
        (i = atomic_fetch_add(&sw->next, 1)) < sw->count) {
    struct kbsim_seed_result *r = &sw->results[i];
    struct sim_outcome o;
    struct kb_trace none = {0};
    uint64_t done;

    sc.seed = sw->first + i;
    if(sim_scenario_run(&sc, none, &o, r->error, sizeof(r->error)) == 0) {
      r->ran = true;
      r->sessions = (unsigned)o.sessions.count;
      r->with_error = o.sessions.users_with_error;
      r->infrastructure = o.sessions.infrastructure;
      r->empty_posts = o.backend.empty_posts;
      r->ews_posts = o.ews_posts;
      sim_outcome_free(&o);
    }
    done = atomic_fetch_add(&sw->done, 1) + 1;
    if(sw->progress) {
      int64_t now = kbsim_monotonic_ms();
      pthread_mutex_lock(&sw->print_lock);
      if(now - sw->last_print_ms >= 100 || done == sw->count) {
        fprintf(stderr, "\rsweep: %" PRIu64 "/%" PRIu64 " seeds (%3u%%)", done,
                sw->count, (unsigned)(done * 100 / sw->count));
        if(done == sw->count)
          fputs("\n", stderr);
        fflush(stderr);
        sw->last_print_ms = now;
      }
      pthread_mutex_unlock(&sw->print_lock);
    }
  }
  return NULL;
}

/* Wilson score interval for k successes in n trials, 95%. */
static void kbsim_wilson(uint64_t k, uint64_t n, double *lo, double *hi)
{
  const double z = 1.959963984540054;
  double p, denom, centre, half;

  if(!n) {
    *lo = 0;
    *hi = 1;
    return;
  }
  p = (double)k / (double)n;
  denom = 1 + z * z / (double)n;
  centre = (p + z * z / (2 * (double)n)) / denom;
  half = z *
         sqrt(p * (1 - p) / (double)n + z * z / (4.0 * (double)n * (double)n)) /
         denom;
  *lo = centre - half < 0 ? 0 : centre - half;
  *hi = centre + half > 1 ? 1 : centre + half;
}

/* Parses "A..B" (or a single seed "A") into first and count. */
static int kbsim_parse_seeds(const char *text, uint64_t *first, uint64_t *count)
{
  char lo[32];
  const char *dots = strstr(text, "..");
  uint64_t a, b;

  if(!dots) {
    if(kbsim_parse_u64(text, 0, UINT64_MAX, &a))
      return -1;
    *first = a;
    *count = 1;
    return 0;
  }
  if((size_t)(dots - text) >= sizeof(lo))
    return -1;
  snprintf(lo, sizeof(lo), "%.*s", (int)(dots - text), text);
  if(kbsim_parse_u64(lo, 0, UINT64_MAX, &a) ||
     kbsim_parse_u64(dots + 2, 0, UINT64_MAX, &b) || b < a ||
     b - a >= KBSIM_MAX_SEEDS)
    return -1;
  *first = a;
  *count = b - a + 1;
  return 0;
}

/* What a sweep found, summed over the seeds that ran. */
struct kbsim_sweep_sum {
  uint64_t runs, failed_runs, sessions, with_error, infrastructure;
  uint64_t empty, ews;
  double rate, lo, hi;
  bool partial;
};

static void kbsim_sweep_sum(const struct kbsim_sweep *sw,
                            struct kbsim_sweep_sum *t)
{
  uint64_t i;

  memset(t, 0, sizeof(*t));
  for(i = 0; i < sw->count; i++) {
    const struct kbsim_seed_result *r = &sw->results[i];
    if(!r->ran) {
      if(r->error[0]) {
        if(!t->failed_runs)
          fprintf(stderr, "kbsim: seed %" PRIu64 ": %s\n", sw->first + i,
                  r->error);
        t->failed_runs++;
      }
      else
        t->partial = true; /* never started: interrupted */
      continue;
    }
    t->runs++;
    /* Sessions the harness failed are no evidence either way. */
    t->sessions += r->sessions - r->infrastructure;
    t->infrastructure += r->infrastructure;
    t->with_error += r->with_error;
    t->empty += r->empty_posts;
    t->ews += r->ews_posts;
  }
  t->rate = t->sessions ? (double)t->with_error / (double)t->sessions : 0;
  kbsim_wilson(t->with_error, t->sessions, &t->lo, &t->hi);
}

/* The verdict: error when the harness failed anywhere or the sweep was
 * cut short, else fail when the 95% interval is not inside the expected
 * rate (lo < 0: none expected, pass). */
static void kbsim_sweep_verdict(const struct scenario *sc,
                                const struct kbsim_sweep_sum *t, double lo,
                                double hi, struct sim_verdict *v)
{
  memset(v, 0, sizeof(*v));
  snprintf(v->name, sizeof(v->name), "%s rate", sc->name);
  snprintf(v->classname, sizeof(v->classname), "%s",
           sc->path[0] ? sc->path : "kbsim.sweep");
  snprintf(v->output, sizeof(v->output),
           "%" PRIu64 " of %" PRIu64 " sessions = %.2f%% (95%% CI "
           "%.2f%%..%.2f%%) over %" PRIu64 " seeds",
           t->with_error, t->sessions, 100 * t->rate, 100 * t->lo, 100 * t->hi,
           t->runs);
  v->got = t->with_error ? CLIENT_CLASS_SERVER_ERROR : CLIENT_CLASS_CLEAN;
  if(t->failed_runs || t->infrastructure || t->partial) {
    v->result = SIM_RESULT_ERROR;
    v->got = CLIENT_CLASS_INFRASTRUCTURE;
    snprintf(v->message, sizeof(v->message),
             "%s%" PRIu64 " seed%s could not run, %" PRIu64
             " session%s failed by the harness: no verdict",
             t->partial ? "interrupted (partial); " : "", t->failed_runs,
             t->failed_runs == 1 ? "" : "s", t->infrastructure,
             t->infrastructure == 1 ? "" : "s");
    return;
  }
  if(lo < 0) {
    v->result = SIM_RESULT_PASS;
    snprintf(v->message, sizeof(v->message), "no rate expected: %.700s",
             v->output);
    return;
  }
  if(t->sessions && t->lo >= lo && t->hi <= hi) {
    v->result = SIM_RESULT_PASS;
    snprintf(v->message, sizeof(v->message),
             "95%% CI %.2f%%..%.2f%% inside %.2f%%..%.2f%%", 100 * t->lo,
             100 * t->hi, 100 * lo, 100 * hi);
    return;
  }
  v->result = SIM_RESULT_FAIL;
  snprintf(v->message, sizeof(v->message),
           "rate %.2f%% (95%% CI %.2f%%..%.2f%%) not inside "
           "%.2f%%..%.2f%%%s",
           100 * t->rate, 100 * t->lo, 100 * t->hi, 100 * lo, 100 * hi,
           t->rate >= lo && t->rate <= hi
               ? ": the estimate is, the interval is too wide; run more seeds"
               : "");
}

/* Writes the sweep's JSON (docs/report.schema.json, $defs sweep) to path
 * ("-": standard output). Returns 0, or -1 after printing why. */
static int kbsim_sweep_json(const char *path, const struct scenario *sc,
                            const struct kbsim_sweep *sw,
                            const struct kbsim_sweep_sum *t, double lo,
                            double hi, const struct sim_verdict *v, json_t *cmd)
{
  json_t *root, *seeds = json_array(), *expect;
  uint64_t i;
  int rc;

  for(i = 0; i < sw->count; i++) {
    const struct kbsim_seed_result *r = &sw->results[i];
    if(!r->ran && !r->error[0])
      continue; /* interrupted before it started */
    json_array_append_new(
        seeds,
        r->ran ? json_pack("{s:I,s:i,s:i,s:i,s:I,s:I}", "seed",
                           (json_int_t)(sw->first + i), "sessions",
                           (int)r->sessions, "with_error", (int)r->with_error,
                           "infrastructure", (int)r->infrastructure,
                           "empty_posts", (json_int_t)r->empty_posts,
                           "ews_posts", (json_int_t)r->ews_posts)
               : json_pack("{s:I,s:s}", "seed", (json_int_t)(sw->first + i),
                           "error", r->error));
  }
  expect = lo < 0 ? json_null() : json_pack("[f,f]", lo, hi);
  root = json_pack(
      "{s:i,s:s,s:{s:s,s:s,s:o},s:s,s:s,s:{s:I,s:I},s:I,s:I,s:I,s:I,s:f,"
      "s:[f,f],s:I,s:I,s:o,s:s,s:s,s:b,s:o}",
      "version", 2, "kind", "sweep", "kbsim", "version", version_kbsim(),
      "commit", version_commit(), "command", json_incref(cmd), "scenario",
      sc->name, "file", sc->path, "seeds", "first", (json_int_t)sw->first,
      "last", (json_int_t)(sw->first + sw->count - 1), "runs",
      (json_int_t)t->runs, "sessions", (json_int_t)t->sessions, "with_error",
      (json_int_t)t->with_error, "infrastructure",
      (json_int_t)t->infrastructure, "rate", t->rate, "interval", t->lo, t->hi,
      "empty_posts", (json_int_t)t->empty, "ews_posts", (json_int_t)t->ews,
      "expect_rate", expect, "verdict",
      v->result == SIM_RESULT_PASS   ? "pass"
      : v->result == SIM_RESULT_FAIL ? "fail"
                                     : "error",
      "message", v->message, "partial", t->partial, "per_seed", seeds);
  if(!root) {
    fprintf(stderr, "kbsim: --json %s: out of memory\n", path);
    return -1;
  }
  rc = strcmp(path, "-") ? json_dump_file(root, path, JSON_INDENT(2))
                         : json_dumpf(root, stdout, JSON_INDENT(2));
  if(!strcmp(path, "-"))
    fputc('\n', stdout);
  json_decref(root);
  if(rc) {
    fprintf(stderr, "kbsim: --json %s: cannot write it: %s\n", path,
            strerror(errno));
    return -1;
  }
  return 0;
}

static int kbsim_cmd_sweep(int argc, char **argv);

static const struct kbsim_opt sweep_opts[] = {
    {"seeds", 's', "A..B",
     "The seeds to run, A to B (at most 1000000), or "
     "one seed; required."},
    {"jobs", 'j', "N",
     "Seeds run in parallel, 1 to 64 (default: one per "
     "core); the numbers do not depend on it."},
    {"expect-rate", 'e', "LOW..HIGH",
     "Exit 1 unless the whole 95% interval of the rate lies within LOW..HIGH "
     "(40%..70% or 0.4..0.7); overrides the scenario's [expect] rate."},
    {"json", 'J', "FILE",
     "Write the result as JSON: counts, rate, interval, verdict, every "
     "seed's numbers; - for standard output."},
    {"junit", 'U', "FILE",
     "Write JUnit XML: one testcase for the rate expectation; - for standard "
     "output."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_sweep_command = {
    "sweep",
    "SCENARIO --seeds A..B [--jobs N] [--expect-rate LOW..HIGH] [--json FILE] "
    "[--junit FILE]",
    "a scenario over many seeds: how often users see the error",
    "Runs a scenario once per seed, in parallel, and reports how many "
    "sessions showed the Outlook Integration Error as a rate with a 95% "
    "(Wilson) confidence interval, and the share of EWS POSTs that reached "
    "Exchange empty. The same seeds give the same numbers, whatever --jobs. "
    "A progress line on a terminal.\n\n"
    "With an expected rate (--expect-rate, or rate = LOW..HIGH in the "
    "scenario's [expect]) the sweep passes when the whole interval lies "
    "within it: a gate that does not pass on noise; too few seeds give an "
    "interval too wide to pass. Sessions the harness failed count for "
    "nothing and make the exit 3. Ctrl-C stops after the seeds in flight "
    "and reports what ran, marked partial (exit 130).",
    sweep_opts,
    "@scenario",
    kbsim_cmd_sweep};

/* The sweep, its command line as given in cmd (for the JSON). */
static int kbsim_sweep_main(int argc, char **argv, json_t *cmd)
{
  struct scenario sc;
  struct kbsim_sweep sw;
  struct kbsim_sweep_sum t;
  struct sim_verdict verdict;
  struct kbsim_args a;
  struct sigaction act, old;
  pthread_t threads[KBSIM_MAX_JOBS];
  uint64_t first = 0, count = 0, jobs, i;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const char *json = NULL, *junit = NULL;
  double rate_lo = -1, rate_hi = -1;
  bool have_rate = false;
  FILE *human = stdout;
  char err[512];
  unsigned started = 0;
  int c, rc;

  jobs = cpus > 0 ? (uint64_t)cpus : 1;
  kbsim_args_init(&a, &kbsim_sweep_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 's':
      if(kbsim_parse_seeds(optarg, &first, &count))
        return kbsim_bad_args("--seeds: '%s' is not A..B with A <= B (at most "
                              "%u seeds), nor one seed",
                              optarg, KBSIM_MAX_SEEDS);
      break;
    case 'j':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_JOBS, &jobs))
        return kbsim_bad_args("--jobs: '%s' is not a number from 1 to %d",
                              optarg, KBSIM_MAX_JOBS);
      break;
    case 'e':
      if(scenario_parse_rate(optarg, &rate_lo, &rate_hi))
        return kbsim_bad_args("--expect-rate: '%s' is not LOW..HIGH with LOW "
                              "<= HIGH (e.g. 40%%..70%%)",
                              optarg);
      have_rate = true;
      break;
    case 'J':
      json = optarg;
      break;
    case 'U':
      junit = optarg;
      break;
    }
  }
  if(c < 0)
    return a.status;
  if(argc - optind != 1)
    return kbsim_bad_args("give exactly one scenario (a file or a name)");
  if(!count)
    return kbsim_bad_args("--seeds A..B is required");
  if(kbsim_load_scenario(argv[optind], &sc))
    return 2;
  if(!have_rate) {
    rate_lo = sc.expect.rate_lo;
    rate_hi = sc.expect.rate_hi;
  }
  if(jobs > count)
    jobs = count;

  memset(&sw, 0, sizeof(sw));
  sw.sc = &sc;
  sw.first = first;
  sw.count = count;
  sw.results = calloc(count, sizeof(*sw.results));
  if(!sw.results) {
    fprintf(stderr, "kbsim: out of memory for %" PRIu64 " seeds\n", count);
    return 3;
  }
  atomic_init(&sw.next, 0);
  atomic_init(&sw.done, 0);
  sw.progress = isatty(2);
  pthread_mutex_init(&sw.print_lock, NULL);
  kbsim_sweep_interrupted = 0;
  memset(&act, 0, sizeof(act));
  act.sa_handler = kbsim_sweep_on_sigint;
  sigemptyset(&act.sa_mask);
  sigaction(SIGINT, &act, &old);
  for(i = 0; i < jobs; i++) {
    if(pthread_create(&threads[i], NULL, kbsim_sweep_worker, &sw))
      break;
    kb_thread_name(threads[i], "kb-sweep");
    started++;
  }
  if(!started)
    kbsim_sweep_worker(&sw);
  for(i = 0; i < started; i++)
    pthread_join(threads[i], NULL);
  sigaction(SIGINT, &old, NULL);
  pthread_mutex_destroy(&sw.print_lock);
  if(sw.progress && kbsim_sweep_interrupted)
    fputs("\n", stderr);

  /* Standard output is the JSON's or the JUnit's when they go there. */
  if((json && !strcmp(json, "-")) || (junit && !strcmp(junit, "-")))
    human = stderr;
  kbsim_sweep_sum(&sw, &t);
  kbsim_sweep_verdict(&sc, &t, rate_lo, rate_hi, &verdict);
  fprintf(human,
          "sweep %s (%s), seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64
          " run%s%s, %" PRIu64 " session%s, %" PRIu64 " job%s\n",
          sc.name, sc.path, first, first + count - 1, t.runs,
          t.runs == 1 ? "" : "s", t.partial ? " (partial: interrupted)" : "",
          t.sessions, t.sessions == 1 ? "" : "s", jobs, jobs == 1 ? "" : "s");
  fprintf(human,
          "sessions with the Outlook Integration Error: %" PRIu64 " of %" PRIu64
          " = %.2f%% (95%% CI %.2f%%..%.2f%%)\n",
          t.with_error, t.sessions, 100 * t.rate, 100 * t.lo, 100 * t.hi);
  fprintf(human,
          "EWS POSTs that reached Exchange empty: %" PRIu64 " of %" PRIu64
          " = %.2f%%\n",
          t.empty, t.ews,
          t.ews ? 100.0 * (double)t.empty / (double)t.ews : 0.0);
  if(t.failed_runs)
    fprintf(human, "%" PRIu64 " run%s could not run (first error above)\n",
            t.failed_runs, t.failed_runs == 1 ? "" : "s");
  if(rate_lo >= 0 || verdict.result != SIM_RESULT_PASS)
    fprintf(human, "%s %s: %s\n",
            verdict.result == SIM_RESULT_PASS   ? "PASS"
            : verdict.result == SIM_RESULT_FAIL ? "FAIL"
                                                : "ERROR",
            verdict.name, verdict.message);

  rc = t.partial ? 130 : sim_verdicts_exit(&verdict, 1);
  if(json &&
     kbsim_sweep_json(json, &sc, &sw, &t, rate_lo, rate_hi, &verdict, cmd))
    rc = rc == 130 ? rc : 3;
  if(junit &&
     sim_junit_write(junit, "kbsim sweep", &verdict, 1, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    rc = rc == 130 ? rc : 3;
  }
  free(sw.results);
  return rc;
}

static int kbsim_cmd_sweep(int argc, char **argv)
{
  /* The command line as given, before getopt reorders argv. */
  json_t *cmd = json_pack("[s]", "kbsim");
  int i, rc;

  for(i = 0; cmd && i < argc; i++)
    json_array_append_new(cmd, json_string(argv[i]));
  rc = kbsim_sweep_main(argc, argv, cmd);
  json_decref(cmd);
  return rc;
}
