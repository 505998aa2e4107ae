/*
 * cmd_sweep.c - `kbsim sweep`: one scenario over many seeds, the rate of
 * sessions that saw the error with its 95% Wilson interval, gated by
 * --expect-rate or the scenario's [expect] rate, in text, JSON and JUnit.
 *
 * Workers take seeds from a shared counter; each result has its own slot,
 * so the numbers do not depend on --jobs. Each worker keeps one topology
 * (sim_runner) and resets it between seeds instead of starting a new one;
 * --fresh starts one per seed, for comparing. SIGINT stops the workers after
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
#include "evidence/ci.h"
#include "evidence/version.h"
#include "render/plot.h"

#define KBSIM_MAX_SEEDS 1000000u
#define KBSIM_MAX_JOBS 64

/* Set by SIGINT, read by the workers (take no new seed): a lock-free
 * atomic, safe in a signal handler and between threads. */
static atomic_int kbsim_sweep_interrupted;

static void kbsim_sweep_on_sigint(int sig)
{
  (void)sig;
  atomic_store(&kbsim_sweep_interrupted, 1);
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
  /* One per worker (NULL in merge): its topology, reset between seeds and
   * kept from one grid point to the next while the shape fits. */
  struct sim_runner *runners;
  atomic_uint next_runner;
  uint64_t first;
  uint64_t count;
  struct kbsim_seed_result *results;
  atomic_uint_fast64_t next;
  atomic_uint_fast64_t done;
  bool progress;              /* stderr is a terminal */
  pthread_mutex_t print_lock; /* progress line */
  int64_t last_print_ms;
  int64_t start_ms; /* when the point's seeds began: rate and ETA */
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
  struct sim_runner *runner =
      &sw->runners[atomic_fetch_add(&sw->next_runner, 1)];
  uint64_t i;

  while(!kbsim_sweep_interrupted &&
        (i = atomic_fetch_add(&sw->next, 1)) < sw->count) {
    struct kbsim_seed_result *r = &sw->results[i];
    struct sim_outcome o;
    struct kb_trace none = {0};
    uint64_t done;

    sc.seed = sw->first + i;
    if(sim_runner_run(runner, &sc, none, &o, r->error, sizeof(r->error)) == 0) {
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
        double secs = (double)(now - sw->start_ms) / 1000;
        double rate = secs > 0 ? (double)done / secs : 0;
        fprintf(stderr,
                "\rsweep: %" PRIu64 "/%" PRIu64 " seeds (%3u%%), %.0f/s, "
                "ETA %.0f s   ",
                done, sw->count, (unsigned)(done * 100 / sw->count), rate,
                rate > 0 ? (double)(sw->count - done) / rate : 0.0);
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
                                double hi, struct ci_case *v)
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
  v->type = client_class_name(t->with_error ? CLIENT_CLASS_SERVER_ERROR
                                            : CLIENT_CLASS_CLEAN);
  if(t->failed_runs || t->infrastructure || t->partial) {
    v->result = CI_ERROR;
    v->type = client_class_name(CLIENT_CLASS_INFRASTRUCTURE);
    snprintf(v->message, sizeof(v->message),
             "%s%" PRIu64 " seed%s could not run, %" PRIu64
             " session%s failed by the harness: no verdict",
             t->partial ? "interrupted (partial); " : "", t->failed_runs,
             t->failed_runs == 1 ? "" : "s", t->infrastructure,
             t->infrastructure == 1 ? "" : "s");
    return;
  }
  if(lo < 0) {
    v->result = CI_PASS;
    snprintf(v->message, sizeof(v->message), "no rate expected: %.700s",
             v->output);
    return;
  }
  if(t->sessions && t->lo >= lo && t->hi <= hi) {
    v->result = CI_PASS;
    snprintf(v->message, sizeof(v->message),
             "95%% CI %.2f%%..%.2f%% inside %.2f%%..%.2f%%", 100 * t->lo,
             100 * t->hi, 100 * lo, 100 * hi);
    return;
  }
  v->result = CI_FAIL;
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
                                      const struct ci_case *v)
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
      v->result == CI_PASS   ? "pass"
      : v->result == CI_FAIL ? "fail"
                             : "error",
      "message", v->message, "partial", t->partial, "per_seed", seeds);
}

/* Writes the sweep's JSON document to path ("-": standard output): the
 * stamp, the scenario, the varied keys and one result per grid point
 * (docs/report.schema.json, $defs sweep). Returns 0, or -1 after printing
 * why. */
static int kbsim_sweep_json(const char *path, const struct scenario *sc,
                            json_t *grid, size_t nvary, json_t *cmd,
                            uint64_t shard_k, uint64_t shard_n,
                            uint64_t all_first, uint64_t all_count,
                            json_t *shard_commands)
{
  json_t *root;
  int rc;

  root =
      json_pack("{s:i,s:s,s:{s:s,s:s,s:O},s:s,s:s,s:b,s:O}", "version", 2,
                "kind", "sweep", "kbsim", "version", version_kbsim(), "commit",
                version_commit(), "command", cmd, "scenario", sc->name, "file",
                sc->path, "grid", nvary > 0, "points", grid);
  if(root && shard_commands)
    json_object_set(json_object_get(root, "kbsim"), "shards", shard_commands);
  if(root && shard_n)
    json_object_set_new(root, "shard",
                        json_pack("{s:I,s:I,s:I,s:I}", "k", (json_int_t)shard_k,
                                  "n", (json_int_t)shard_n, "first",
                                  (json_int_t)all_first, "last",
                                  (json_int_t)(all_first + all_count - 1)));
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
    {"tap", 'T', NULL,
     "Print TAP version 14 on standard output (one test per grid point); "
     "the human lines go to standard error."},
    {"vary", 'V', "KEY=V1,V2,...|KEY=LOW..HIGH/STEP",
     "Run the sweep once per value of a scenario key (listener.idle_timeout, "
     "clients.think, member.ISA02.patch, listener.balancer, or "
     "array.patched: how many members, first to last, run SP1 with the "
     "script); LOW..HIGH/STEP in one unit (10s..60s/10s), a list's values "
     "as written (clients.think=0s..30s,0s..60s); repeat for a grid (at "
     "most 3 keys, 512 points)."},
    {"shard", 'S', "K/N",
     "Run only the K-th of N disjoint parts of the seeds (K from 1) and write "
     "its --json, for 'kbsim merge'; no gate is applied to a part."},
    {"html", 'H', "FILE",
     "Write the grid as a self-contained page: the rate against the first "
     "--vary key with its 95% band, a line per value of the second, and "
     "the table."},
    {"fresh", 'F', NULL,
     "Start a new topology for every seed, as 'kbsim run' does, instead of "
     "one per job reset between seeds: the same numbers, for comparing "
     "the two."},
    {"csv", 'C', "FILE",
     "Write one line per grid point (values, sessions, errors, rate, "
     "interval, empty POSTs, verdict) for spreadsheets; - for standard "
     "output."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_sweep_command = {
    "sweep",
    "SCENARIO --seeds A..B [--jobs N] [--vary KEY=VALUES]... "
    "[--expect-rate LOW..HIGH] [--json FILE] [--junit FILE] [--csv FILE] "
    "[--html FILE] [--tap] [--shard K/N] [--fresh]",
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

/* Reads a finite number and the unit after it from s[0..len) ("10s",
 * "0.5"): the number into *x, the unit's length into *ulen (the unit ends
 * s[0..len)). Returns 0, or -1 when it does not start with a number. */
static int kbsim_vary_quantity(const char *s, size_t len, double *x,
                               size_t *ulen)
{
  char buf[32], *end;

  /* Copied alone: strtod would take "10." of "10..30". */
  if(len >= sizeof(buf))
    return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  *x = strtod(buf, &end);
  if(end == buf || !isfinite(*x))
    return -1;
  *ulen = len - (size_t)(end - buf);
  return 0;
}

/* Parses "KEY=V1,V2,..." or "KEY=LOW..HIGH/STEP" (numbers with one unit
 * suffix, e.g. 10s..60s/10s: LOW, LOW + STEP, ... up to HIGH). A list's
 * values are kept as written, so a value may itself be a range
 * (clients.think=0s..30s,0s..60s). Returns 0, or -1 with what is wrong in
 * err. */
static int kbsim_parse_vary(const char *text, struct kbsim_vary *v, char *err,
                            size_t errlen)
{
  const char *eq = strchr(text, '=');
  const char *list;
  const char *dots, *slash;

  memset(v, 0, sizeof(*v));
  if(!eq || eq == text || !eq[1]) {
    snprintf(err, errlen, "'%s' is not KEY=V1,V2,... or KEY=LOW..HIGH/STEP",
             text);
    return -1;
  }
  if((size_t)(eq - text) >= sizeof(v->key)) {
    snprintf(err, errlen, "'%.*s' is not a scenario key (too long)",
             (int)(eq - text), text);
    return -1;
  }
  snprintf(v->key, sizeof(v->key), "%.*s", (int)(eq - text), text);
  list = eq + 1;
  dots = strstr(list, "..");
  slash = dots ? strchr(dots, '/') : NULL;
  if(dots && slash) {
    const char *high = dots + 2, *stepat = slash + 1;
    double lo, hi, step, count;
    size_t lu, hu, su, i, n;

    if(kbsim_vary_quantity(list, (size_t)(dots - list), &lo, &lu)) {
      snprintf(err, errlen, "%s: LOW '%.*s' is not a number", text,
               (int)(dots - list), list);
      return -1;
    }
    if(kbsim_vary_quantity(high, (size_t)(slash - high), &hi, &hu)) {
      snprintf(err, errlen, "%s: HIGH '%.*s' is not a number", text,
               (int)(slash - high), high);
      return -1;
    }
    if(kbsim_vary_quantity(stepat, strlen(stepat), &step, &su)) {
      snprintf(err, errlen, "%s: STEP '%s' is not a number", text, stepat);
      return -1;
    }
    /* The units end LOW, HIGH and STEP. */
    if(lu != hu || lu != su || memcmp(dots - lu, slash - hu, lu) ||
       memcmp(dots - lu, stepat + strlen(stepat) - su, lu)) {
      snprintf(err, errlen,
               "%s: LOW, HIGH and STEP must be numbers with the same unit, "
               "as in 10s..60s/10s",
               text);
      return -1;
    }
    if(!(step > 0) || hi < lo) {
      snprintf(err, errlen, "%s: %s", text,
               step > 0 ? "HIGH is below LOW" : "STEP must be above 0");
      return -1;
    }
    /* Counted first (a huge count is no size_t), each value then from
     * LOW, not summed: 0.1 steps stay 0.1, 0.2, 0.3. */
    count = (hi - lo) / step * (1 + 1e-9);
    if(!(count < KBSIM_MAX_VALUES)) {
      snprintf(err, errlen, "%s makes more than %d values", text,
               KBSIM_MAX_VALUES);
      return -1;
    }
    n = (size_t)count + 1;
    for(i = 0; i < n; i++) {
      int w = snprintf(v->values[v->n++], sizeof(v->values[0]), "%.15g%.*s",
                       lo + (double)i * step, (int)lu, dots - lu);
      if(w < 0 || (size_t)w >= sizeof(v->values[0])) {
        snprintf(err, errlen, "%s: a value is longer than %zu characters", text,
                 sizeof(v->values[0]) - 1);
        return -1;
      }
    }
    return 0;
  }
  while(*list) {
    size_t n = strcspn(list, ",");

    if(!n) {
      snprintf(err, errlen, "%s: an empty value between commas", text);
      return -1;
    }
    if(n >= sizeof(v->values[0])) {
      snprintf(err, errlen, "%s: '%.*s' is longer than %zu characters", text,
               (int)n, list, sizeof(v->values[0]) - 1);
      return -1;
    }
    if(v->n == KBSIM_MAX_VALUES) {
      snprintf(err, errlen, "%s has more than %d values", text,
               KBSIM_MAX_VALUES);
      return -1;
    }
    snprintf(v->values[v->n++], sizeof(v->values[0]), "%.*s", (int)n, list);
    list += n + (list[n] == ',');
  }
  return 0;
}

/* Runs seeds first..first+count-1 of sc on jobs workers into *sw (its
 * results owned by the caller). Returns 0, or -1 when out of memory. */
static int kbsim_sweep_point(const struct scenario *sc, uint64_t first,
                             uint64_t count, uint64_t jobs,
                             struct sim_runner *runners, struct kbsim_sweep *sw)
{
  pthread_t threads[KBSIM_MAX_JOBS];
  unsigned started = 0;
  uint64_t i;

  memset(sw, 0, sizeof(*sw));
  sw->sc = sc;
  sw->runners = runners;
  sw->first = first;
  sw->count = count;
  sw->results = calloc(count, sizeof(*sw->results));
  if(!sw->results)
    return -1;
  atomic_init(&sw->next_runner, 0);
  atomic_init(&sw->next, 0);
  atomic_init(&sw->done, 0);
  sw->progress = isatty(2);
  sw->start_ms = kbsim_monotonic_ms();
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
  static struct ci_case verdicts[KBSIM_MAX_POINTS];
  static struct kbsim_vary vary[KBSIM_MAX_VARY];
  struct scenario base, sc;
  struct kbsim_sweep sw;
  struct kbsim_sweep_sum t;
  struct kbsim_args a;
  struct sigaction act, old;
  uint64_t first = 0, count = 0, jobs;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  const char *json = NULL, *junit = NULL, *csv = NULL, *html = NULL;
  static struct sim_plot_point plot[KBSIM_MAX_POINTS];
  static char plot_text[KBSIM_MAX_POINTS][3][256];
  double rate_lo = -1, rate_hi = -1;
  bool have_rate = false, tap = false, fresh = false;
  struct sim_runner *runners = NULL;
  FILE *human = stdout, *csvf = NULL;
  json_t *grid = NULL; /* made once the arguments are good */
  size_t nvary = 0, npoints = 1, pt, k;
  uint64_t shard_k = 0, shard_n = 0, all_first = 0, all_count = 0;
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
    case 'H':
      html = optarg;
      break;
    case 'T':
      tap = true;
      break;
    case 'F':
      fresh = true;
      break;
    case 'S': {
      char *end;
      unsigned long long kk = strtoull(optarg, &end, 10), nn;
      if(end == optarg || *end != '/' || !kk)
        return kbsim_bad_args("--shard: '%s' is not K/N with 1 <= K <= N",
                              optarg);
      nn = strtoull(end + 1, &end, 10);
      if(*end || kk > nn || nn > 100000)
        return kbsim_bad_args("--shard: '%s' is not K/N with 1 <= K <= N",
                              optarg);
      shard_k = kk;
      shard_n = nn;
      break;
    }
    case 'V':
      if(nvary == KBSIM_MAX_VARY)
        return kbsim_bad_args("--vary: at most %d keys", KBSIM_MAX_VARY);
      if(kbsim_parse_vary(optarg, &vary[nvary], err, sizeof(err)))
        return kbsim_bad_args("--vary: %s", err);
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
  if(tap && ((json && !strcmp(json, "-")) || (junit && !strcmp(junit, "-")) ||
             (csv && !strcmp(csv, "-"))))
    return kbsim_bad_args("--tap takes standard output; write the other "
                          "files to a path, not -");
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
  all_first = first;
  all_count = count;
  if(shard_n) {
    /* Contiguous blocks: shard K of N takes [(K-1)*count/N, K*count/N). */
    uint64_t lo = (shard_k - 1) * count / shard_n,
             hi = shard_k * count / shard_n;
    if(hi == lo)
      return kbsim_bad_args("--shard %" PRIu64 "/%" PRIu64 ": no seed left "
                            "for it; use fewer shards than seeds",
                            shard_k, shard_n);
    if(!json)
      return kbsim_bad_args("--shard needs --json: the part is for 'kbsim "
                            "merge'");
    first += lo;
    count = hi - lo;
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
     (csv && !strcmp(csv, "-")) || tap)
    human = stderr;

  runners = calloc(jobs, sizeof(*runners));
  if(!runners) {
    fprintf(stderr, "kbsim: out of memory for %" PRIu64 " jobs\n", jobs);
    if(csvf && csvf != stdout)
      fclose(csvf);
    return 3;
  }
  for(k = 0; k < jobs; k++)
    runners[k].fresh = fresh;
  grid = json_array();
  atomic_store(&kbsim_sweep_interrupted, 0);
  memset(&act, 0, sizeof(act));
  act.sa_handler = kbsim_sweep_on_sigint;
  sigemptyset(&act.sa_mask);
  sigaction(SIGINT, &act, &old);
  for(pt = 0; pt < npoints && !kbsim_sweep_interrupted; pt++) {
    size_t at[KBSIM_MAX_VARY], rest = pt;
    struct ci_case *v = &verdicts[pt];
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
    if(kbsim_sweep_point(&sc, first, count, jobs, runners, &sw)) {
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
    if(rate_lo >= 0 || v->result != CI_PASS)
      fprintf(human, "%s %s: %s\n",
              v->result == CI_PASS   ? "PASS"
              : v->result == CI_FAIL ? "FAIL"
                                     : "ERROR",
              v->name, v->message);
    {
      struct sim_plot_point *pp = &plot[pt];
      snprintf(plot_text[pt][0], sizeof(plot_text[0][0]), "%s",
               nvary ? vary[0].values[at[0]] : sc.name);
      snprintf(plot_text[pt][1], sizeof(plot_text[0][0]), "%s",
               nvary > 1 ? vary[1].values[at[1]] : "");
      snprintf(plot_text[pt][2], sizeof(plot_text[0][0]), "%s", name);
      pp->x = plot_text[pt][0];
      pp->series = nvary > 1 ? plot_text[pt][1] : NULL;
      pp->label = plot_text[pt][2];
      pp->rate = t.rate;
      pp->lo = t.lo;
      pp->hi = t.hi;
      pp->sessions = t.sessions;
      pp->with_error = t.with_error;
      pp->verdict = v->result == CI_PASS   ? "pass"
                    : v->result == CI_FAIL ? "fail"
                                           : "error";
    }
    if(csvf) {
      for(k = 0; k < nvary; k++)
        fprintf(csvf, "%s,", vary[k].values[at[k]]);
      fprintf(csvf,
              "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.6f,%.6f,%.6f,%" PRIu64
              ",%" PRIu64 ",%s\n",
              t.runs, t.sessions, t.with_error, t.rate, t.lo, t.hi, t.empty,
              t.ews,
              v->result == CI_PASS   ? "pass"
              : v->result == CI_FAIL ? "fail"
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
  for(k = 0; k < jobs; k++)
    sim_runner_stop(&runners[k]);
  free(runners);
  if(kbsim_sweep_interrupted) {
    /* Points never started are not reported; the last one is partial. */
    npoints = pt ? pt : 1;
    if(!pt)
      memset(&verdicts[0], 0, sizeof(verdicts[0]));
  }
  if(!rc && shard_n) {
    /* A part gates nothing: only the harness's own failures count. */
    rc = kbsim_sweep_interrupted ? 130 : 0;
    for(pt = 0; pt < npoints; pt++)
      if(verdicts[pt].result == CI_ERROR)
        rc = 3;
  }
  if(!rc)
    rc = kbsim_sweep_interrupted ? 130 : ci_exit(verdicts, npoints);
  if(csvf && csvf != stdout && fclose(csvf)) {
    fprintf(stderr, "kbsim: --csv %s: writing failed\n", csv);
    rc = rc == 130 ? rc : 3;
  }
  if(html) {
    char title[256];
    snprintf(title, sizeof(title),
             "kbsim sweep %s, seeds %" PRIu64 "..%" PRIu64, base.name, first,
             first + count - 1);
    if(sim_plot_write(html, title, nvary ? vary[0].key : "scenario",
                      nvary > 1 ? vary[1].key : NULL, plot, npoints, err,
                      sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      rc = rc == 130 ? rc : 3;
    }
  }
  if(json && kbsim_sweep_json(json, &base, grid, nvary, cmd, shard_k, shard_n,
                              all_first, all_count, NULL))
    rc = rc == 130 ? rc : 3;
  if(tap)
    ci_tap_write(stdout, verdicts, npoints);
  if(junit && ci_junit_write(junit,
                             &(const struct ci_suite){.name = "kbsim sweep",
                                                      .cases = verdicts,
                                                      .ncases = npoints},
                             err, sizeof(err))) {
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

/* ---- merge: shards back into one sweep ----------------------------------- */

static int kbsim_cmd_merge(int argc, char **argv);

static const struct kbsim_opt merge_opts[] = {
    {"json", 'J', "FILE",
     "Write the merged sweep there (default: standard output)."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_merge_command = {
    "merge",
    "PART.json... [--json FILE]",
    "combine the parts of a sharded sweep into one result",
    "Reads the --json files of 'kbsim sweep ... --shard K/N', checks they "
    "are the N parts of one sweep (same scenario, grid, seeds, expected "
    "rate; every seed once), and writes the sweep's JSON as one unsharded "
    "run would: the same results byte for byte, with each part's command "
    "line in the stamp. Prints each grid point's rate and applies the "
    "gate: exit 1 when a rate misses its expectation, 3 when a seed could "
    "not run.",
    merge_opts,
    NULL,
    kbsim_cmd_merge};

/* Checks that b is a part of the same sweep as a. Returns 0, or -1 with
 * why in err. */
static int kbsim_merge_same(const json_t *a, const json_t *b, const char *name,
                            char *err, size_t errlen)
{
  static const char *const keys[] = {"kind", "scenario", "file", "grid", NULL};
  const json_t *pa = json_object_get(a, "points");
  const json_t *pb = json_object_get(b, "points");
  const json_t *sa = json_object_get(a, "shard");
  const json_t *sb = json_object_get(b, "shard");
  size_t i;

  for(i = 0; keys[i]; i++)
    if(!json_equal(json_object_get(a, keys[i]), json_object_get(b, keys[i]))) {
      snprintf(err, errlen, "%s: its %s differs from the first part's", name,
               keys[i]);
      return -1;
    }
  if(!sb || !json_equal(json_object_get(sa, "n"), json_object_get(sb, "n")) ||
     !json_equal(json_object_get(sa, "first"), json_object_get(sb, "first")) ||
     !json_equal(json_object_get(sa, "last"), json_object_get(sb, "last"))) {
    snprintf(err, errlen, "%s: not a part of the same sharded sweep", name);
    return -1;
  }
  if(json_array_size(pa) != json_array_size(pb)) {
    snprintf(err, errlen, "%s: another grid (%zu points, not %zu)", name,
             json_array_size(pb), json_array_size(pa));
    return -1;
  }
  for(i = 0; i < json_array_size(pa); i++) {
    const json_t *x = json_array_get(pa, i), *y = json_array_get(pb, i);
    if(!json_equal(json_object_get(x, "point"), json_object_get(y, "point")) ||
       !json_equal(json_object_get(x, "expect_rate"),
                   json_object_get(y, "expect_rate"))) {
      snprintf(err, errlen, "%s: grid point %zu differs", name, i + 1);
      return -1;
    }
  }
  return 0;
}

/* Fills sw's results for grid point i from every part's per_seed. Returns
 * 0, or -1 with why in err (a seed missing or given twice). */
static int kbsim_merge_point(json_t *const *parts, size_t nparts, size_t i,
                             struct kbsim_sweep *sw, char *err, size_t errlen)
{
  size_t p, j;

  for(p = 0; p < nparts; p++) {
    const json_t *seeds = json_object_get(
        json_array_get(json_object_get(parts[p], "points"), i), "per_seed");
    for(j = 0; j < json_array_size(seeds); j++) {
      const json_t *e = json_array_get(seeds, j);
      json_int_t seed = json_integer_value(json_object_get(e, "seed"));
      struct kbsim_seed_result *r;
      const char *error = json_string_value(json_object_get(e, "error"));

      if(seed < (json_int_t)sw->first ||
         seed >= (json_int_t)(sw->first + sw->count)) {
        snprintf(err, errlen, "seed %lld is outside the sweep",
                 (long long)seed);
        return -1;
      }
      r = &sw->results[seed - (json_int_t)sw->first];
      if(r->ran || r->error[0]) {
        snprintf(err, errlen, "seed %lld is in two parts", (long long)seed);
        return -1;
      }
      if(error) {
        snprintf(r->error, sizeof(r->error), "%s", error);
        continue;
      }
      r->ran = true;
      r->sessions =
          (unsigned)json_integer_value(json_object_get(e, "sessions"));
      r->with_error =
          (unsigned)json_integer_value(json_object_get(e, "with_error"));
      r->infrastructure =
          (unsigned)json_integer_value(json_object_get(e, "infrastructure"));
      r->empty_posts =
          (uint64_t)json_integer_value(json_object_get(e, "empty_posts"));
      r->ews_posts =
          (uint64_t)json_integer_value(json_object_get(e, "ews_posts"));
    }
  }
  for(j = 0; j < sw->count; j++)
    if(!sw->results[j].ran && !sw->results[j].error[0]) {
      snprintf(err, errlen,
               "seed %" PRIu64 " is in no part: give every shard's file",
               sw->first + j);
      return -1;
    }
  return 0;
}

static int kbsim_merge_main(int argc, char **argv, json_t *cmd);

static int kbsim_cmd_merge(int argc, char **argv)
{
  json_t *cmd;
  int c, rc;

  /* The command line as given, before getopt reorders argv. */
  cmd = json_pack("[s]", "kbsim");
  for(c = 0; c < argc; c++)
    json_array_append_new(cmd, json_string(argv[c]));
  rc = kbsim_merge_main(argc, argv, cmd);
  json_decref(cmd);
  return rc;
}

/* The merge, its command line as given in cmd. */
static int kbsim_merge_main(int argc, char **argv, json_t *cmd)
{
  static struct ci_case verdicts[KBSIM_MAX_POINTS];
  json_t *parts[256], *grid = NULL, *shards = NULL;
  struct kbsim_args a;
  struct scenario sc;
  const char *out = NULL;
  size_t nparts = 0, npoints, i;
  uint64_t first, last;
  char err[512];
  int c, rc = 0;

  kbsim_args_init(&a, &kbsim_merge_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    if(c == 'J')
      out = optarg;
  if(c < 0)
    return a.status;
  if(optind >= argc)
    return kbsim_bad_args("give the parts' JSON files");
  if(argc - optind > 256)
    return kbsim_bad_args("at most 256 parts");
  for(i = 0; (int)i < argc - optind; i++) {
    json_error_t je;
    const char *name = argv[optind + (int)i];
    parts[nparts] = json_load_file(name, 0, &je);
    if(!parts[nparts]) {
      if(je.line > 0)
        fprintf(stderr, "kbsim: %s:%d: not JSON: %s\n", name, je.line, je.text);
      else
        fprintf(stderr, "kbsim: %s: %s\n", name, je.text);
      rc = 2;
      goto done;
    }
    nparts++;
    if(!json_object_get(parts[nparts - 1], "shard") ||
       kbsim_merge_same(parts[0], parts[nparts - 1], name, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n",
              json_object_get(parts[nparts - 1], "shard")
                  ? err
                  : "a part has no \"shard\": give the --json of "
                    "sweep --shard K/N");
      rc = 2;
      goto done;
    }
  }
  memset(&sc, 0, sizeof(sc));
  snprintf(sc.name, sizeof(sc.name), "%s",
           json_string_value(json_object_get(parts[0], "scenario")));
  snprintf(sc.path, sizeof(sc.path), "%s",
           json_string_value(json_object_get(parts[0], "file")));
  first = (uint64_t)json_integer_value(
      json_object_get(json_object_get(parts[0], "shard"), "first"));
  last = (uint64_t)json_integer_value(
      json_object_get(json_object_get(parts[0], "shard"), "last"));
  npoints = json_array_size(json_object_get(parts[0], "points"));
  if(last < first || last - first >= KBSIM_MAX_SEEDS ||
     npoints > KBSIM_MAX_POINTS) {
    fprintf(stderr, "kbsim: %s: its seeds or grid are out of range\n",
            argv[optind]);
    rc = 2;
    goto done;
  }
  grid = json_array();
  for(i = 0; i < npoints; i++) {
    const json_t *p0 = json_array_get(json_object_get(parts[0], "points"), i);
    const json_t *er = json_object_get(p0, "expect_rate");
    double lo = er ? json_real_value(json_array_get(er, 0)) : -1;
    double hi = er ? json_real_value(json_array_get(er, 1)) : -1;
    struct kbsim_sweep sw;
    struct kbsim_sweep_sum t;
    json_t *one;

    if(!json_is_array(er))
      lo = hi = -1;
    memset(&sw, 0, sizeof(sw));
    sw.sc = &sc;
    sw.first = first;
    sw.count = last - first + 1;
    sw.results = calloc(sw.count, sizeof(*sw.results));
    if(!sw.results ||
       kbsim_merge_point(parts, nparts, i, &sw, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", sw.results ? err : "out of memory");
      free(sw.results);
      rc = sw.results ? 2 : 3;
      goto done;
    }
    kbsim_sweep_sum(&sw, &t);
    kbsim_sweep_verdict(&sc, &t, lo, hi, &verdicts[i]);
    one = kbsim_sweep_json_point(&sc, &sw, &t, lo, hi, &verdicts[i]);
    free(sw.results);
    if(!one) {
      rc = 3;
      goto done;
    }
    json_object_set(one, "point", json_object_get(p0, "point"));
    json_array_append_new(grid, one);
    fprintf(out ? stdout : stderr,
            "%s %s%s: %" PRIu64 " of %" PRIu64
            " sessions = %.2f%% (95%% CI %.2f%%..%.2f%%): %s\n",
            verdicts[i].result == CI_PASS   ? "PASS"
            : verdicts[i].result == CI_FAIL ? "FAIL"
                                            : "ERROR",
            sc.name, npoints > 1 ? " (grid point)" : "", t.with_error,
            t.sessions, 100 * t.rate, 100 * t.lo, 100 * t.hi,
            verdicts[i].message);
  }
  /* The stamp: this command, and each part's. */
  shards = json_array();
  for(i = 0; i < nparts; i++)
    json_array_append(
        shards, json_object_get(json_object_get(parts[i], "kbsim"), "command"));
  if(kbsim_sweep_json(out ? out : "-", &sc, grid,
                      json_is_true(json_object_get(parts[0], "grid")) ? 1 : 0,
                      cmd, 0, 0, 0, 0, shards)) {
    rc = 3;
    goto done;
  }
  rc = ci_exit(verdicts, npoints);

done:
  for(i = 0; i < nparts; i++)
    json_decref(parts[i]);
  json_decref(grid);
  json_decref(shards);
  return rc;
}
