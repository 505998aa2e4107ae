/*
 * sweep_result.c - what a sweep's seeds add up to: the rate of sessions
 * that saw the error with its 95% Wilson interval, the verdict against the
 * expected rate, and the JSON document (docs/report.schema.json, $defs
 * sweep), the --csv lines and the --html page's points. `kbsim sweep`
 * writes them from the seeds it ran, `kbsim merge` from the parts' seeds,
 * so the two are the same byte for byte.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "evidence/version.h"
#include "sweep.h"

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

void kbsim_sweep_sum(const struct kbsim_sweep *sw, struct kbsim_sweep_sum *t)
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

void kbsim_sweep_verdict(const struct scenario *sc,
                         const struct kbsim_sweep_sum *t, double lo, double hi,
                         struct ci_case *v)
{
  memset(v, 0, sizeof(*v));
  snprintf(v->name, sizeof(v->name), "%s rate", sc->name);
  /* The scenario's name, not its path: Jenkins splits a classname at its
   * dots. */
  snprintf(v->classname, sizeof(v->classname), "%s", sc->name);
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
  if(t->sessions && t->rate >= lo && t->rate <= hi) {
    /* Not the listener's doing: the seeds were too few to decide. */
    v->type = "too-few-seeds";
    snprintf(v->message, sizeof(v->message),
             "too few seeds: the rate %.2f%% is inside %.2f%%..%.2f%%, but "
             "its 95%% CI %.2f%%..%.2f%% is not; run more seeds to narrow it",
             100 * t->rate, 100 * lo, 100 * hi, 100 * t->lo, 100 * t->hi);
    return;
  }
  snprintf(v->message, sizeof(v->message),
           "rate %.2f%% (95%% CI %.2f%%..%.2f%%) not inside %.2f%%..%.2f%%",
           100 * t->rate, 100 * t->lo, 100 * t->hi, 100 * lo, 100 * hi);
}

const char *kbsim_sweep_result_name(enum ci_result result)
{
  return result == CI_PASS ? "pass" : result == CI_FAIL ? "fail" : "error";
}

const char *kbsim_sweep_verdict_word(const struct ci_case *v, double lo)
{
  if(v->result == CI_PASS)
    return lo < 0 ? "NO GATE" : "PASS";
  return v->result == CI_FAIL ? "FAIL" : "ERROR";
}

void kbsim_sweep_csv_header(FILE *csv, const char *const *keys, size_t nkeys)
{
  size_t k;

  for(k = 0; k < nkeys; k++)
    fprintf(csv, "%s,", keys[k]);
  fputs("seeds,sessions,with_error,rate,ci_low,ci_high,empty_posts,"
        "ews_posts,verdict\n",
        csv);
}

void kbsim_sweep_csv_line(FILE *csv, const struct kbsim_point_label *l,
                          const struct kbsim_sweep_sum *t,
                          const struct ci_case *v)
{
  size_t k;

  for(k = 0; k < l->nvary; k++)
    fprintf(csv, "%s,", l->values[k]);
  fprintf(csv,
          "%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.6f,%.6f,%.6f,%" PRIu64
          ",%" PRIu64 ",%s\n",
          t->runs, t->sessions, t->with_error, t->rate, t->lo, t->hi, t->empty,
          t->ews, kbsim_sweep_result_name(v->result));
}

void kbsim_sweep_plot_point(struct sim_plot_point *pp, char (*text)[256],
                            const struct kbsim_point_label *l,
                            const struct kbsim_sweep_sum *t,
                            const struct ci_case *v)
{
  snprintf(text[0], sizeof(text[0]), "%s", l->nvary ? l->values[0] : l->base);
  snprintf(text[1], sizeof(text[1]), "%s", l->nvary > 1 ? l->values[1] : "");
  snprintf(text[2], sizeof(text[2]), "%s", l->name);
  pp->x = text[0];
  pp->series = l->nvary > 1 ? text[1] : NULL;
  pp->label = text[2];
  pp->rate = t->rate;
  pp->lo = t->lo;
  pp->hi = t->hi;
  pp->sessions = t->sessions;
  pp->with_error = t->with_error;
  pp->verdict = kbsim_sweep_result_name(v->result);
}

json_t *kbsim_sweep_json_point(const struct kbsim_sweep *sw,
                               const struct kbsim_sweep_sum *t, double lo,
                               double hi, const struct ci_case *v)
{
  json_t *seeds = json_array();
  uint64_t i;

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
      "verdict", kbsim_sweep_result_name(v->result), "message", v->message,
      "partial", t->partial, "per_seed", seeds);
}

int kbsim_sweep_json(const char *path, const struct scenario *sc, json_t *grid,
                     size_t nvary, const struct kbsim_sweep_stamp *stamp)
{
  json_t *root;
  int rc;

  root =
      json_pack("{s:i,s:s,s:{s:s,s:s,s:O},s:s,s:s,s:b,s:O}", "version", 2,
                "kind", "sweep", "kbsim", "version", version_kbsim(), "commit",
                version_commit(), "command", stamp->cmd, "scenario", sc->name,
                "file", sc->path, "grid", nvary > 0, "points", grid);
  if(root && stamp->shard_commands)
    json_object_set(json_object_get(root, "kbsim"), "shards",
                    stamp->shard_commands);
  if(root && stamp->seconds)
    json_object_set(json_object_get(root, "kbsim"), "seconds", stamp->seconds);
  if(root && stamp->shard_n)
    json_object_set_new(
        root, "shard",
        json_pack("{s:I,s:I,s:I,s:I}", "k", (json_int_t)stamp->shard_k, "n",
                  (json_int_t)stamp->shard_n, "first",
                  (json_int_t)stamp->all_first, "last",
                  (json_int_t)(stamp->all_first + stamp->all_count - 1)));
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
