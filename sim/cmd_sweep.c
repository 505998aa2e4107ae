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

/* One point's result as JSON: counts, rate, interval, verdict, seeds. */
static json_t *kbsim_sweep_json_point(const struct scenario *sc,
                                      const struct kbsim_sweep *sw,
                                      const struct kbsim_sweep_sum *t,
                                      double lo, double hi,
                                      const struct sim_verdict *v)
{
  json_t *seeds = json_array();
  uint64_t i;

  (void)sc;
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
  return json_pack(
      "{s:{s:I,s:I},s:I,s:I,s:I,s:I,s:f,s:[f,f],s:I,s:I,s:o,s:s,s:s,s:b,"
      "s:o}",
      "seeds", "first", (json_int_t)sw->first, "last",
      (json_int_t)(sw->first + sw->count - 1), "runs", (json_int_t)t->runs,
      "sessions", (json_int_t)t->sessions, "with_error",
      (json_int_t)t->with_error, "infrastructure",
      (json_int_t)t->infrastructure, "rate", t->rate, "interval", t->lo, t->hi,
      "empty_posts", (json_int_t)t->empty, "ews_posts", (json_int_t)t->ews,
      "expect_rate", lo < 0 ? json_null() : json_pack("[f,f]", lo, hi),
      "verdict",
      v->result == SIM_RESULT_PASS   ? "pass"
      : v->result == SIM_RESULT_FAIL ? "fail"
                                     : "error",
      "message", v->message, "partial", t->partial, "per_seed", seeds);
}

/* Writes the sweep's JSON document to path ("-": standard output): the
 * stamp, the scenario, the varied keys and one result per grid point
 * (docs/report.schema.json, $defs sweep). Returns 0, or -1 after printing
 * why. */
static int kbsim_sweep_json(const char *path, const struct scenario *sc,
                            json_t *grid, size_t nvary, json_t *cmd)
{
  json_t *root;
  int rc;

  root =
      json_pack("{s:i,s:s,s:{s:s,s:s,s:O},s:s,s:s,s:b,s:O}", "version", 2,
                "kind", "sweep", "kbsim", "version", version_kbsim(), "commit",
                version_commit(), "command", cmd, "scenario", sc->name, "file",
                sc->path, "grid", nvary > 0, "points", grid);
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
     "Write JUnit XML: one testcase per grid point for its rate; - for "
     "standard output."},
    {"vary", 'V', "KEY=V1,V2,...|KEY=LOW..HIGH/STEP",
     "Run the sweep once per value of a scenario key (listener.idle_timeout, "
     "clients.think, member.ISA02.patch, listener.balancer); repeat for a "
     "grid (at most 3 keys, 512 points)."},
    {"csv", 'C', "FILE",
     "Write one line per grid point (values, sessions, errors, rate, "
     "interval, empty POSTs, verdict) for spreadsheets; - for standard "
     "output."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_sweep_command = {
    "sweep",
    "SCENARIO --seeds A..B [--jobs N] [--vary KEY=VALUES]... "
    "[--expect-rate LOW..HIGH] [--json FILE] [--junit FILE] [--csv FILE]",
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

/* --vary: a scenario key and the values it takes. */
#define KBSIM_MAX_VARY 3
#define KBSIM_MAX_VALUES 64
#define KBSIM_MAX_POINTS 512

struct kbsim_vary {
  char key[96];
  char values[KBSIM_MAX_VALUES][32];
  size_t n;
};

/* Parses "KEY=V1,V2,..." or "KEY=LOW..HIGH/STEP" (numbers with one unit
 * suffix, e.g. 10s..60s/10s). Returns 0 or -1. */
static int kbsim_parse_vary(const char *text, struct kbsim_vary *v)
{
  const char *eq = strchr(text, '=');
  const char *list;
  const char *dots, *slash;

  memset(v, 0, sizeof(*v));
  if(!eq || eq == text || (size_t)(eq - text) >= sizeof(v->key) || !eq[1])
    return -1;
  snprintf(v->key, sizeof(v->key), "%.*s", (int)(eq - text), text);
  list = eq + 1;
  dots = strstr(list, "..");
  slash = dots ? strchr(dots, '/') : NULL;
  if(dots && slash) {
    char low[32], *end;
    double lo, hi, step, x;
    const char *unit;
    size_t ulen;
    /* LOW alone: strtod would take "10." of "10..30". */
    if((size_t)(dots - list) >= sizeof(low))
      return -1;
    snprintf(low, sizeof(low), "%.*s", (int)(dots - list), list);
    lo = strtod(low, &end);
    unit = list + (end - low);
    ulen = (size_t)(dots - unit);
    if(end == low || ulen >= 8)
      return -1;
    hi = strtod(dots + 2, &end);
    if(end == dots + 2 || (size_t)(slash - end) != ulen ||
       strncmp(end, unit, ulen))
      return -1;
    step = strtod(slash + 1, &end);
    if(end == slash + 1 || strncmp(end, unit, ulen) || end[ulen] ||
       !(step > 0) || hi < lo)
      return -1;
    for(x = lo; x <= hi + step / 1e6; x += step) {
      if(v->n == KBSIM_MAX_VALUES)
        return -1;
      snprintf(v->values[v->n++], sizeof(v->values[0]), "%g%.*s", x, (int)ulen,
               unit);
    }
    return v->n ? 0 : -1;
  }
  while(*list) {
    size_t n = strcspn(list, ",");
    if(!n || n >= sizeof(v->values[0]) || v->n == KBSIM_MAX_VALUES)
      return -1;
    snprintf(v->values[v->n++], sizeof(v->values[0]), "%.*s", (int)n, list);
    list += n + (list[n] == ',');
  }
  return v->n ? 0 : -1;
}

/* Runs seeds first..first+count-1 of sc on jobs workers into *sw (its
 * results owned by the caller). Returns 0, or -1 when out of memory. */
static int kbsim_sweep_point(const struct scenario *sc, uint64_t first,
                             uint64_t count, uint64_t jobs,
                             struct kbsim_sweep *sw)
{
  pthread_t threads[KBSIM_MAX_JOBS];
  unsigned started = 0;
  uint64_t i;

  memset(sw, 0, sizeof(*sw));
  sw->sc = sc;
  sw->first = first;
  sw->count = count;
  sw->results = calloc(count, sizeof(*sw->results));
  if(!sw->results)
    return -1;
  atomic_init(&sw->next, 0);
  atomic_init(&sw->done, 0);
  sw->progress = isatty(2);
  pthread_mutex_init(&sw->print_lock, NULL);
  for(i = 0; i < jobs; i++) {
    if(pthread_create(&threads[i], NULL, kbsim_sweep_worker, sw))
      break;
    kb_thread_name(threads[i], "kb-sweep");
    started++;
  }
  if(!started)
    kbsim_sweep_worker(sw);
  for(i = 0; i < started; i++)
    pthread_join(threads[i], NULL);
  pthread_mutex_destroy(&sw->print_lock);
  if(sw->progress && kbsim_sweep_interrupted)
    fputs("\n", stderr);
  return 0;
}

/* The grid point's name: "intermittent-array" or "intermittent-array
 * [listener.idle_timeout=10s member.ISA02.patch=sp1]". */
static void kbsim_point_name(const char *base, const struct kbsim_vary *vary,
                             size_t nvary, const size_t *at, char *out,
                             size_t len)
{
  size_t k, pos;

  pos = (size_t)snprintf(out, len, "%s", base);
  for(k = 0; k < nvary && pos < len; k++)
    pos += (size_t)snprintf(out + pos, len - pos, "%s%s=%s", k ? " " : " [",
                            vary[k].key, vary[k].values[at[k]]);
  if(nvary && pos < len)
    snprintf(out + pos, len - pos, "]");
}

/* The sweep, its command line as given in cmd (for the JSON). */
static int kbsim_sweep_main(int argc, char **argv, json_t *cmd)
{
  static struct sim_verdict verdicts[KBSIM_MAX_POINTS];
  static struct kbsim_vary vary[KBSIM_MAX_VARY];
  struct scenario base, sc;
  struct kbsim_sweep sw;
  struct kbsim_sweep_sum t;
  struct kbsim_args a;
  struct sigaction act, old;
  uint64_t first = 0, count = 0, jobs;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const char *json = NULL, *junit = NULL, *csv = NULL;
  double rate_lo = -1, rate_hi = -1;
  bool have_rate = false;
  FILE *human = stdout, *csvf = NULL;
  json_t *grid = json_array();
  size_t nvary = 0, npoints = 1, pt, k;
  char err[512];
  int c, rc = 0;

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
    case 'C':
      csv = optarg;
      break;
    case 'V':
      if(nvary == KBSIM_MAX_VARY)
        return kbsim_bad_args("--vary: at most %d keys", KBSIM_MAX_VARY);
      if(kbsim_parse_vary(optarg, &vary[nvary]))
        return kbsim_bad_args("--vary: '%s' is not KEY=V1,V2,... or "
                              "KEY=LOW..HIGH/STEP (at most %d values)",
                              optarg, KBSIM_MAX_VALUES);
      npoints *= vary[nvary++].n;
      break;
    }
  }
  if(c < 0)
    return a.status;
  if(argc - optind != 1)
    return kbsim_bad_args("give exactly one scenario (a file or a name)");
  if(!count)
    return kbsim_bad_args("--seeds A..B is required");
  if(npoints > KBSIM_MAX_POINTS)
    return kbsim_bad_args("--vary: %zu grid points; at most %d", npoints,
                          KBSIM_MAX_POINTS);
  if(kbsim_load_scenario(argv[optind], &base))
    return 2;
  /* Every point is checked before any runs: a typo costs no minutes. */
  for(pt = 0; pt < npoints; pt++) {
    size_t rest = pt;
    sc = base;
    for(k = 0; k < nvary; k++) {
      const char *v = vary[k].values[rest % vary[k].n];
      rest /= vary[k].n;
      if(scenario_override(&sc, vary[k].key, v, err, sizeof(err)))
        return kbsim_bad_args("--vary: %s", err);
    }
  }
  if(!have_rate) {
    rate_lo = base.expect.rate_lo;
    rate_hi = base.expect.rate_hi;
  }
  if(jobs > count)
    jobs = count;
  if(csv) {
    csvf = strcmp(csv, "-") ? fopen(csv, "w") : stdout;
    if(!csvf) {
      fprintf(stderr, "kbsim: --csv %s: cannot write it: %s\n", csv,
              strerror(errno));
      return 3;
    }
    for(k = 0; k < nvary; k++)
      fprintf(csvf, "%s,", vary[k].key);
    fputs("seeds,sessions,with_error,rate,ci_low,ci_high,empty_posts,"
          "ews_posts,verdict\n",
          csvf);
  }
  /* Standard output belongs to a file written to "-". */
  if((json && !strcmp(json, "-")) || (junit && !strcmp(junit, "-")) ||
     (csv && !strcmp(csv, "-")))
    human = stderr;

  kbsim_sweep_interrupted = 0;
  memset(&act, 0, sizeof(act));
  act.sa_handler = kbsim_sweep_on_sigint;
  sigemptyset(&act.sa_mask);
  sigaction(SIGINT, &act, &old);
  for(pt = 0; pt < npoints && !kbsim_sweep_interrupted; pt++) {
    size_t at[KBSIM_MAX_VARY], rest = pt;
    struct sim_verdict *v = &verdicts[pt];
    json_t *point = json_object();
    char name[256];

    sc = base;
    for(k = 0; k < nvary; k++) {
      at[k] = rest % vary[k].n;
      rest /= vary[k].n;
      scenario_override(&sc, vary[k].key, vary[k].values[at[k]], err,
                        sizeof(err)); /* checked above */
      json_object_set_new(point, vary[k].key,
                          json_string(vary[k].values[at[k]]));
    }
    if(kbsim_sweep_point(&sc, first, count, jobs, &sw)) {
      fprintf(stderr, "kbsim: out of memory for %" PRIu64 " seeds\n", count);
      json_decref(point);
      rc = 3;
      break;
    }
    kbsim_sweep_sum(&sw, &t);
    kbsim_sweep_verdict(&sc, &t, rate_lo, rate_hi, v);
    kbsim_point_name(sc.name, vary, nvary, at, name, sizeof(name));
    snprintf(v->name, sizeof(v->name), "%.240s rate", name);
    fprintf(human,
            "sweep %s (%s), seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64
            " run%s%s, %" PRIu64 " session%s, %" PRIu64 " job%s\n",
            name, sc.path, first, first + count - 1, t.runs,
            t.runs == 1 ? "" : "s", t.partial ? " (partial: interrupted)" : "",
            t.sessions, t.sessions == 1 ? "" : "s", jobs, jobs == 1 ? "" : "s");
    fprintf(human,
            "sessions with the Outlook Integration Error: %" PRIu64
            " of %" PRIu64 " = %.2f%% (95%% CI %.2f%%..%.2f%%)\n",
            t.with_error, t.sessions, 100 * t.rate, 100 * t.lo, 100 * t.hi);
    fprintf(human,
            "EWS POSTs that reached Exchange empty: %" PRIu64 " of %" PRIu64
            " = %.2f%%\n",
            t.empty, t.ews,
            t.ews ? 100.0 * (double)t.empty / (double)t.ews : 0.0);
    if(t.failed_runs)
      fprintf(human, "%" PRIu64 " run%s could not run (first error above)\n",
              t.failed_runs, t.failed_runs == 1 ? "" : "s");
    if(rate_lo >= 0 || v->result != SIM_RESULT_PASS)
      fprintf(human, "%s %s: %s\n",
              v->result == SIM_RESULT_PASS   ? "PASS"
              : v->result == SIM_RESULT_FAIL ? "FAIL"
                                             : "ERROR",
              v->name, v->message);
    if(csvf) {
      for(k = 0; k < nvary; k++)
        fprintf(csvf, "%s,", vary[k].values[at[k]]);
      fprintf(csvf,
              "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.6f,%.6f,%.6f,%" PRIu64
              ",%" PRIu64 ",%s\n",
              t.runs, t.sessions, t.with_error, t.rate, t.lo, t.hi, t.empty,
              t.ews,
              v->result == SIM_RESULT_PASS   ? "pass"
              : v->result == SIM_RESULT_FAIL ? "fail"
                                             : "error");
    }
    if(json) {
      json_t *one = kbsim_sweep_json_point(&sc, &sw, &t, rate_lo, rate_hi, v);
      if(one) {
        json_object_set_new(one, "point", point);
        json_array_append_new(grid, one);
      }
      else
        json_decref(point);
    }
    else
      json_decref(point);
    free(sw.results);
    if(t.partial)
      break;
  }
  sigaction(SIGINT, &old, NULL);
  if(kbsim_sweep_interrupted) {
    /* Points never started are not reported; the last one is partial. */
    npoints = pt ? pt : 1;
    if(!pt)
      memset(&verdicts[0], 0, sizeof(verdicts[0]));
  }
  if(!rc)
    rc = kbsim_sweep_interrupted ? 130 : sim_verdicts_exit(verdicts, npoints);
  if(csvf && csvf != stdout && fclose(csvf)) {
    fprintf(stderr, "kbsim: --csv %s: writing failed\n", csv);
    rc = rc == 130 ? rc : 3;
  }
  if(json && kbsim_sweep_json(json, &base, grid, nvary, cmd))
    rc = rc == 130 ? rc : 3;
  if(junit && sim_junit_write(junit, "kbsim sweep", verdicts, npoints, err,
                              sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    rc = rc == 130 ? rc : 3;
  }
  json_decref(grid);
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
