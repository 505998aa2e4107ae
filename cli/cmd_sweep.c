/*
 * cmd_sweep.c - `kbsim sweep`: one scenario over many seeds, the rate of
 * sessions that saw the error with its 95% Wilson interval, gated by
 * --expect-rate or the scenario's [expect] rate, in text, JSON, CSV, JUnit,
 * TAP and a page; once per grid point with --vary.
 *
 * This file reads the command line and reports each grid point; the seeds
 * run in sweep_run.c, add up in sweep_result.c, and the grid comes from
 * sweep_grid.c (sweep.h). SIGINT stops the workers after their current
 * seed; what ran is reported, marked partial (exit 130).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "client/client.h"
#include "common/kb_range.h"
#include "evidence/ci.h"
#include "render/plot.h"
#include "sweep.h"

/* What the command line asked for. */
struct kbsim_sweep_args {
  const char *scenario;  /* the operand: a file or a catalogue name */
  uint64_t first, count; /* --seeds; count 0 until given */
  uint64_t jobs;
  const char *json, *junit, *csv, *html;
  double rate_lo, rate_hi; /* --expect-rate; -1 when none */
  bool have_rate, tap, fresh;
  uint64_t shard_k, shard_n; /* --shard K/N; 0 without */
  struct kbsim_grid grid;    /* --vary */
  bool exit_now;             /* --help printed: exit with the code returned */
};

/* One sweep as it runs. Owned by kbsim_cmd_sweep, on the heap: it holds
 * every grid point's verdict and the page's point. */
struct kbsim_sweep_run {
  struct kbsim_sweep_args a;
  struct scenario base;           /* the scenario as loaded */
  struct kbsim_sweep_stamp stamp; /* for the JSON */
  FILE *human;                    /* stdout, or stderr when it is taken */
  FILE *csvf;                     /* --csv, open; NULL without */
  json_t *grid;                   /* the JSON's points */
  json_t *seconds;                /* each point's time, for the JSON */
  struct sim_runner *runners;     /* one per job */
  size_t npoints;                 /* grid points reported */
  struct ci_case verdicts[KBSIM_MAX_POINTS];
  struct sim_plot_point plot[KBSIM_MAX_POINTS];
  char plot_text[KBSIM_MAX_POINTS][3][256];
};

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
    "sessions showed what the scenario's client shows its user on a "
    "failure (the Outlook Integration Error for Communicator, Outlook "
    "asking for the password again for Outlook Anywhere) as a rate with a 95% "
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

/* ---- the command line ------------------------------------------------ */

/* Parses "A..B" (or a single seed "A") into first and count: whole
 * numbers, A <= B, at most KBSIM_MAX_SEEDS seeds. Returns 0 or -1. */
static int kbsim_parse_seeds(const char *text, uint64_t *first, uint64_t *count)
{
  struct kb_range r;
  uint64_t a, b;

  if(kb_range_split(text, KB_RANGE_SINGLE, &r, NULL, 0) ||
     kbsim_parse_u64(r.lo, 0, UINT64_MAX, &a) ||
     kbsim_parse_u64(r.hi, 0, UINT64_MAX, &b) || b < a ||
     b - a >= KBSIM_MAX_SEEDS)
    return -1;
  *first = a;
  *count = b - a + 1;
  return 0;
}

/* Parses --shard "K/N" with 1 <= K <= N <= 100000. Returns 0 or -1. */
static int kbsim_parse_shard(const char *text, uint64_t *k, uint64_t *n)
{
  char *end;
  unsigned long long kk = strtoull(text, &end, 10), nn;

  if(end == text || *end != '/' || !kk)
    return -1;
  nn = strtoull(end + 1, &end, 10);
  if(*end || kk > nn || nn > 100000)
    return -1;
  *k = kk;
  *n = nn;
  return 0;
}

/* Takes one option c with its value arg into *o. Returns 0, or 2 after
 * printing what was wrong. */
static int kbsim_sweep_option(struct kbsim_sweep_args *o, int c,
                              const char *arg)
{
  char err[512];

  switch(c) {
  case 's':
    if(kbsim_parse_seeds(arg, &o->first, &o->count))
      return kbsim_bad_args("--seeds: '%s' is not A..B with A <= B (at most "
                            "%u seeds), nor one seed",
                            arg, KBSIM_MAX_SEEDS);
    break;
  case 'j':
    if(kbsim_parse_u64(arg, 1, KBSIM_MAX_JOBS, &o->jobs))
      return kbsim_bad_args("--jobs: '%s' is not a number from 1 to %d", arg,
                            KBSIM_MAX_JOBS);
    break;
  case 'e':
    if(scenario_parse_rate(arg, &o->rate_lo, &o->rate_hi))
      return kbsim_bad_args("--expect-rate: '%s' is not LOW..HIGH with LOW "
                            "<= HIGH (e.g. 40%%..70%%)",
                            arg);
    o->have_rate = true;
    break;
  case 'J':
    o->json = arg;
    break;
  case 'U':
    o->junit = arg;
    break;
  case 'C':
    o->csv = arg;
    break;
  case 'H':
    o->html = arg;
    break;
  case 'T':
    o->tap = true;
    break;
  case 'F':
    o->fresh = true;
    break;
  case 'S':
    if(kbsim_parse_shard(arg, &o->shard_k, &o->shard_n))
      return kbsim_bad_args("--shard: '%s' is not K/N with 1 <= K <= N", arg);
    break;
  case 'V':
    if(kbsim_grid_add(&o->grid, arg, err, sizeof(err)))
      return kbsim_bad_args("--vary: %s", err);
    break;
  }
  return 0;
}

/* Returns true when path is "-", standard output. */
static bool kbsim_is_stdout(const char *path)
{
  return path && !strcmp(path, "-");
}

/* Parses the command line into *o. Returns 0, or the exit code (with
 * o->exit_now after --help) after printing what was wrong. */
static int kbsim_sweep_parse(int argc, char **argv, struct kbsim_sweep_args *o)
{
  struct kbsim_args a;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int c, bad;

  o->jobs = cpus > 0 ? (uint64_t)cpus : 1;
  o->rate_lo = o->rate_hi = -1;
  kbsim_grid_init(&o->grid);
  kbsim_args_init(&a, &kbsim_sweep_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    if((bad = kbsim_sweep_option(o, c, optarg)) != 0)
      return bad;
  if(c < 0) {
    o->exit_now = true;
    return a.status;
  }
  if(argc - optind != 1)
    return kbsim_bad_args("give exactly one scenario (a file or a name)");
  if(!o->count)
    return kbsim_bad_args("--seeds A..B is required");
  if(o->tap && (kbsim_is_stdout(o->json) || kbsim_is_stdout(o->junit) ||
                kbsim_is_stdout(o->csv)))
    return kbsim_bad_args("--tap takes standard output; write the other "
                          "files to a path, not -");
  if(o->grid.npoints > KBSIM_MAX_POINTS)
    return kbsim_bad_args("--vary: %zu grid points; at most %d",
                          o->grid.npoints, KBSIM_MAX_POINTS);
  o->scenario = argv[optind];
  return 0;
}

/* Reads the scenario into r->base. One that cannot be read is refused
 * with its one-line reason, and with --junit or --tap an error case says
 * why too, for CI. Returns 0, 2, or 3 when the JUnit file could not be
 * written. */
static int kbsim_sweep_read(struct kbsim_sweep_run *r)
{
  const struct kbsim_sweep_args *o = &r->a;
  struct timespec start;
  struct ci_case v;
  char err[1024];

  clock_gettime(CLOCK_MONOTONIC, &start);
  if(!kbsim_read_scenario(o->scenario, &r->base, err, sizeof(err)))
    return 0;
  fprintf(stderr, "kbsim: %s\n", err);
  kbsim_bad_scenario_case(o->scenario, err, kbsim_seconds_since(&start), &v);
  if(o->tap)
    ci_tap_write(stdout, &v, 1);
  if(o->junit &&
     ci_junit_write(o->junit,
                    &(const struct ci_suite){
                        .name = "kbsim sweep", .cases = &v, .ncases = 1},
                    err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 3;
  }
  return 2;
}

/* Loads the scenario and checks every grid point before any runs (a typo
 * costs no minutes); takes the expected rate from the scenario unless
 * --expect-rate gave one, and this part's seeds with --shard. Returns 0,
 * or the exit code after printing what was wrong. */
static int kbsim_sweep_prepare(struct kbsim_sweep_run *r)
{
  struct kbsim_sweep_args *o = &r->a;
  struct scenario sc;
  char err[512];
  size_t pt;
  int rc;

  if((rc = kbsim_sweep_read(r)) != 0)
    return rc;
  for(pt = 0; pt < o->grid.npoints; pt++)
    if(kbsim_grid_point(&o->grid, pt, &r->base, &sc, NULL, err, sizeof(err)))
      return kbsim_bad_args("--vary: %s", err);
  if(!o->have_rate) {
    o->rate_lo = r->base.expect.rate_lo;
    o->rate_hi = r->base.expect.rate_hi;
  }
  r->stamp.all_first = o->first;
  r->stamp.all_count = o->count;
  r->stamp.shard_k = o->shard_k;
  r->stamp.shard_n = o->shard_n;
  if(o->shard_n) {
    /* Contiguous blocks: shard K of N takes [(K-1)*count/N, K*count/N). */
    uint64_t lo = (o->shard_k - 1) * o->count / o->shard_n,
             hi = o->shard_k * o->count / o->shard_n;
    if(hi == lo)
      return kbsim_bad_args("--shard %" PRIu64 "/%" PRIu64 ": no seed left "
                            "for it; use fewer shards than seeds",
                            o->shard_k, o->shard_n);
    if(!o->json)
      return kbsim_bad_args("--shard needs --json: the part is for 'kbsim "
                            "merge'");
    o->first += lo;
    o->count = hi - lo;
  }
  if(o->jobs > o->count)
    o->jobs = o->count;
  return 0;
}

/* Opens --csv and writes its header, decides where the human lines go,
 * and makes the runners and the JSON's points. Returns 0, or 3 after
 * printing what failed. */
static int kbsim_sweep_open(struct kbsim_sweep_run *r)
{
  const struct kbsim_sweep_args *o = &r->a;
  size_t k;

  r->human = stdout;
  if(o->csv) {
    r->csvf = strcmp(o->csv, "-") ? fopen(o->csv, "w") : stdout;
    if(!r->csvf) {
      fprintf(stderr, "kbsim: --csv %s: cannot write it: %s\n", o->csv,
              strerror(errno));
      return 3;
    }
    const char *keys[KBSIM_MAX_VARY];
    for(k = 0; k < o->grid.nvary; k++)
      keys[k] = o->grid.vary[k].key;
    kbsim_sweep_csv_header(r->csvf, keys, o->grid.nvary);
  }
  /* Standard output belongs to a file written to "-". */
  if(kbsim_is_stdout(o->json) || kbsim_is_stdout(o->junit) ||
     kbsim_is_stdout(o->csv) || o->tap)
    r->human = stderr;
  r->runners = calloc(o->jobs, sizeof(*r->runners));
  if(!r->runners) {
    fprintf(stderr, "kbsim: out of memory for %" PRIu64 " jobs\n", o->jobs);
    if(r->csvf && r->csvf != stdout)
      fclose(r->csvf);
    r->csvf = NULL;
    return 3;
  }
  for(k = 0; k < o->jobs; k++)
    r->runners[k].fresh = o->fresh;
  r->grid = json_array();
  r->seconds = json_array();
  r->stamp.seconds = r->seconds;
  return 0;
}

/* ---- one grid point --------------------------------------------------- */

/* Prints a grid point's lines: what ran, the rate, the empty POSTs, and
 * the verdict when there is a gate or it did not pass. */
static void kbsim_sweep_print(const struct kbsim_sweep_run *r,
                              const struct scenario *sc, const char *name,
                              const struct kbsim_sweep_sum *t,
                              const struct ci_case *v)
{
  const struct kbsim_sweep_args *o = &r->a;
  FILE *human = r->human;

  fprintf(human,
          "sweep %s (%s), seeds %" PRIu64 "..%" PRIu64 ": %" PRIu64
          " run%s%s, %" PRIu64 " session%s, %" PRIu64 " job%s\n",
          name, sc->path, o->first, o->first + o->count - 1, t->runs,
          t->runs == 1 ? "" : "s", t->partial ? " (partial: interrupted)" : "",
          t->sessions, t->sessions == 1 ? "" : "s", o->jobs,
          o->jobs == 1 ? "" : "s");
  /* What the scenario's users see: "the Outlook Integration Error" for
   * Communicator, "Outlook asking for the password again", ... */
  fprintf(human,
          "sessions with %s: %" PRIu64 " of %" PRIu64
          " = %.2f%% (95%% CI %.2f%%..%.2f%%)\n",
          client_kind_info(sc->kind)->symptom, t->with_error, t->sessions,
          100 * t->rate, 100 * t->lo, 100 * t->hi);
  fprintf(human,
          "EWS POSTs that reached Exchange empty: %" PRIu64 " of %" PRIu64
          " = %.2f%%\n",
          t->empty, t->ews,
          t->ews ? 100.0 * (double)t->empty / (double)t->ews : 0.0);
  if(t->failed_runs)
    fprintf(human, "%" PRIu64 " run%s could not run (first error above)\n",
            t->failed_runs, t->failed_runs == 1 ? "" : "s");
  if(o->rate_lo >= 0 || v->result != CI_PASS)
    fprintf(human, "%s %s: %s\n", kbsim_sweep_verdict_word(v, o->rate_lo),
            v->name, v->message);
}

/* Keeps grid point pt for the page and writes its --csv line; at holds
 * each key's value index, name the point's name. */
static void kbsim_sweep_record(struct kbsim_sweep_run *r, size_t pt,
                               const size_t *at, const char *base,
                               const char *name,
                               const struct kbsim_sweep_sum *t,
                               const struct ci_case *v)
{
  const struct kbsim_grid *g = &r->a.grid;
  struct kbsim_point_label l = {.nvary = g->nvary, .base = base, .name = name};
  size_t k;

  for(k = 0; k < g->nvary; k++)
    l.values[k] = g->vary[k].values[at[k]];
  kbsim_sweep_plot_point(&r->plot[pt], r->plot_text[pt], &l, t, v);
  if(r->csvf)
    kbsim_sweep_csv_line(r->csvf, &l, t, v);
}

/* Runs grid point pt and reports it: the human lines, the page's point,
 * the CSV line, the JSON. Sets *partial when SIGINT cut it short. Returns
 * 0, or 3 when out of memory. */
static int kbsim_sweep_one(struct kbsim_sweep_run *r, size_t pt, bool *partial)
{
  const struct kbsim_sweep_args *o = &r->a;
  const struct kbsim_grid *g = &o->grid;
  struct ci_case *v = &r->verdicts[pt];
  size_t at[KBSIM_MAX_VARY], k;
  struct scenario sc;
  struct kbsim_sweep sw;
  struct kbsim_sweep_sum t;
  json_t *point = json_object();
  struct timespec start;
  char name[256], err[512];

  /* Checked in kbsim_sweep_prepare: it cannot fail here. */
  (void)kbsim_grid_point(g, pt, &r->base, &sc, at, err, sizeof(err));
  for(k = 0; k < g->nvary; k++)
    json_object_set_new(point, g->vary[k].key,
                        json_string(g->vary[k].values[at[k]]));
  clock_gettime(CLOCK_MONOTONIC, &start);
  if(kbsim_sweep_point(&sc, o->first, o->count, o->jobs, r->runners, &sw)) {
    fprintf(stderr, "kbsim: out of memory for %" PRIu64 " seeds\n", o->count);
    json_decref(point);
    return 3;
  }
  kbsim_sweep_sum(&sw, &t);
  kbsim_sweep_verdict(&sc, &t, o->rate_lo, o->rate_hi, v);
  v->seconds = kbsim_seconds_since(&start);
  json_array_append_new(r->seconds, json_real(v->seconds));
  kbsim_grid_name(g, sc.name, at, name, sizeof(name));
  snprintf(v->name, sizeof(v->name), "%.240s rate", name);
  kbsim_sweep_print(r, &sc, name, &t, v);
  kbsim_sweep_record(r, pt, at, sc.name, name, &t, v);
  if(o->json) {
    json_t *one = kbsim_sweep_json_point(&sw, &t, o->rate_lo, o->rate_hi, v);
    if(one) {
      json_object_set_new(one, "point", point);
      json_array_append_new(r->grid, one);
    }
    else
      json_decref(point);
  }
  else
    json_decref(point);
  free(sw.results);
  *partial = t.partial;
  return 0;
}

/* ---- the sweep -------------------------------------------------------- */

/* Runs every grid point until the last or SIGINT, then stops the runners.
 * Returns 0, or 3 when out of memory. */
static int kbsim_sweep_points(struct kbsim_sweep_run *r)
{
  struct sigaction old;
  size_t pt, k;
  int rc = 0;

  kbsim_sweep_catch_sigint(&old);
  for(pt = 0; pt < r->npoints && !kbsim_sweep_interrupted(); pt++) {
    bool partial = false;

    rc = kbsim_sweep_one(r, pt, &partial);
    if(rc || partial)
      break;
  }
  kbsim_sweep_release_sigint(&old);
  for(k = 0; k < r->a.jobs; k++)
    sim_runner_stop(&r->runners[k]);
  free(r->runners);
  r->runners = NULL;
  if(kbsim_sweep_interrupted()) {
    /* Points never started are not reported; the last one is partial. */
    r->npoints = pt ? pt : 1;
    if(!pt)
      memset(&r->verdicts[0], 0, sizeof(r->verdicts[0]));
  }
  return rc;
}

/* Decides the exit code from rc (what the points returned) and the
 * verdicts, and writes the files that hold every point: --csv's end, the
 * page, the JSON, TAP, JUnit. Returns the exit code. */
static int kbsim_sweep_finish(struct kbsim_sweep_run *r, int rc)
{
  const struct kbsim_sweep_args *o = &r->a;
  const struct kbsim_grid *g = &o->grid;
  bool stopped = kbsim_sweep_interrupted();
  char err[512];
  size_t pt;

  if(!rc && o->shard_n) {
    /* A part gates nothing: only the harness's own failures count. */
    rc = stopped ? 130 : 0;
    for(pt = 0; pt < r->npoints; pt++)
      if(r->verdicts[pt].result == CI_ERROR)
        rc = 3;
  }
  if(!rc)
    rc = stopped ? 130 : ci_exit(r->verdicts, r->npoints);
  if(r->csvf && r->csvf != stdout && fclose(r->csvf)) {
    fprintf(stderr, "kbsim: --csv %s: writing failed\n", o->csv);
    rc = rc == 130 ? rc : 3;
  }
  r->csvf = NULL;
  if(o->html) {
    char title[256];
    snprintf(title, sizeof(title),
             "kbsim sweep %s, seeds %" PRIu64 "..%" PRIu64, r->base.name,
             o->first, o->first + o->count - 1);
    if(sim_plot_write(o->html, title, g->nvary ? g->vary[0].key : "scenario",
                      g->nvary > 1 ? g->vary[1].key : NULL, r->plot, r->npoints,
                      err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      rc = rc == 130 ? rc : 3;
    }
  }
  if(o->json &&
     kbsim_sweep_json(o->json, &r->base, r->grid, g->nvary, &r->stamp))
    rc = rc == 130 ? rc : 3;
  if(o->tap)
    ci_tap_write(stdout, r->verdicts, r->npoints);
  if(o->junit && ci_junit_write(o->junit,
                                &(const struct ci_suite){.name = "kbsim sweep",
                                                         .cases = r->verdicts,
                                                         .ncases = r->npoints},
                                err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    rc = rc == 130 ? rc : 3;
  }
  return rc;
}

/* The sweep in r, its command line as given in r->stamp.cmd. Returns the
 * exit code. */
static int kbsim_sweep_main(int argc, char **argv, struct kbsim_sweep_run *r)
{
  int rc = kbsim_sweep_parse(argc, argv, &r->a);

  if(rc || r->a.exit_now)
    return rc;
  rc = kbsim_sweep_prepare(r);
  if(!rc)
    rc = kbsim_sweep_open(r);
  if(rc)
    return rc;
  r->npoints = r->a.grid.npoints;
  return kbsim_sweep_finish(r, kbsim_sweep_points(r));
}

static int kbsim_cmd_sweep(int argc, char **argv)
{
  struct kbsim_sweep_run *r = calloc(1, sizeof(*r));
  int i, rc;

  if(!r) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 3;
  }
  /* The command line as given, before getopt reorders argv. */
  r->stamp.cmd = json_pack("[s]", "kbsim");
  for(i = 0; r->stamp.cmd && i < argc; i++)
    json_array_append_new(r->stamp.cmd, json_string(argv[i]));
  rc = kbsim_sweep_main(argc, argv, r);
  json_decref(r->grid);
  json_decref(r->seconds);
  json_decref(r->stamp.cmd);
  free(r);
  return rc;
}
