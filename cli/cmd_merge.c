/*
 * cmd_merge.c - `kbsim merge`: the parts of a sharded sweep (`kbsim sweep
 * --shard K/N --json PART`) back into one sweep's JSON, the same byte for
 * byte as one unsharded run would write (sweep_result.c), with each part's
 * command line in the stamp; prints each grid point's rate, named, and
 * applies the gate; writes the sweep's --csv, --html and --junit with the
 * sweep's own writers.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "evidence/ci.h"
#include "render/plot.h"
#include "sweep.h"

#define KBSIM_MAX_PARTS 256

/* One merge. Owned by kbsim_cmd_merge, on the heap: it holds every grid
 * point's verdict. */
struct kbsim_merge {
  json_t *parts[KBSIM_MAX_PARTS]; /* each part's JSON, owned */
  size_t nparts;
  struct scenario sc;   /* the name and file the parts share */
  uint64_t first, last; /* the whole sweep's seeds */
  size_t npoints;
  json_t *grid;    /* the merged points, owned */
  json_t *shards;  /* each part's command line, owned */
  json_t *seconds; /* each point's time, the parts' added up; owned */
  const char *keys[KBSIM_MAX_VARY]; /* the varied keys, borrowed */
  size_t nvary;
  const char *csv, *html, *junit; /* the files asked for, or NULL */
  FILE *csvf;                     /* --csv, open; NULL without */
  struct ci_case verdicts[KBSIM_MAX_POINTS];
  struct sim_plot_point plot[KBSIM_MAX_POINTS];
  char plot_text[KBSIM_MAX_POINTS][3][256];
};

static int kbsim_cmd_merge(int argc, char **argv);

static const struct kbsim_opt merge_opts[] = {
    {"json", 'J', "FILE",
     "Write the merged sweep there (default: standard output)."},
    {"junit", 'U', "FILE",
     "Write JUnit XML: one testcase per grid point for its rate, as sweep "
     "writes it; - for standard output."},
    {"csv", 'C', "FILE",
     "Write one line per grid point (values, sessions, errors, rate, "
     "interval, empty POSTs, verdict), as sweep writes it; - for standard "
     "output."},
    {"html", 'H', "FILE",
     "Write the grid as a self-contained page, as sweep writes it: the rate "
     "against the first --vary key with its 95% band, a line per value of "
     "the second, and the table."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_merge_command = {
    "merge",
    "PART.json... [--json FILE] [--junit FILE] [--csv FILE] [--html FILE]",
    "combine the parts of a sharded sweep into one result",
    "Reads the --json files of 'kbsim sweep ... --shard K/N', checks they "
    "are the N parts of one sweep (same scenario, grid, seeds, expected "
    "rate; every seed once), and writes the sweep's JSON as one unsharded "
    "run would: the same results byte for byte, with each part's command "
    "line in the stamp. Prints each grid point's rate, named by its "
    "values, and applies the gate: exit 1 when a rate misses its "
    "expectation, 3 when a seed could not run; a point with no expected "
    "rate says NO GATE. --junit, --csv and --html are the sweep's.",
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

/* Reads the varied keys, in the grid's order, from the first point of
 * the first part (name, for errors): a point's "point" object holds them
 * in the order of the sweep's --vary. Returns 0, or 2 after printing what
 * was wrong. */
static int kbsim_merge_keys(struct kbsim_merge *m, const char *name)
{
  const json_t *point = json_object_get(
      json_array_get(json_object_get(m->parts[0], "points"), 0), "point");
  const char *key;
  const json_t *value;

  json_object_foreach((json_t *)point, key, value)
  {
    if(m->nvary == KBSIM_MAX_VARY || !json_is_string(value)) {
      fprintf(stderr, "kbsim: %s: its grid points are not a sweep's\n", name);
      return 2;
    }
    m->keys[m->nvary++] = key;
  }
  return 0;
}

/* Loads the parts named by names[0..n) into m, each checked against the
 * first. Returns 0, or 2 after printing what was wrong. */
static int kbsim_merge_load(struct kbsim_merge *m, char **names, size_t n)
{
  char err[512];
  size_t i;

  for(i = 0; i < n; i++) {
    json_error_t je;
    const char *name = names[i];
    json_t *part = json_load_file(name, 0, &je);

    if(!part) {
      if(je.line > 0)
        fprintf(stderr, "kbsim: %s:%d: not JSON: %s\n", name, je.line, je.text);
      else
        fprintf(stderr, "kbsim: %s: %s\n", name, je.text);
      return 2;
    }
    m->parts[m->nparts++] = part;
    if(!json_object_get(part, "shard") ||
       kbsim_merge_same(m->parts[0], part, name, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n",
              json_object_get(part, "shard")
                  ? err
                  : "a part has no \"shard\": give the --json of "
                    "sweep --shard K/N");
      return 2;
    }
  }
  memset(&m->sc, 0, sizeof(m->sc));
  snprintf(m->sc.name, sizeof(m->sc.name), "%s",
           json_string_value(json_object_get(m->parts[0], "scenario")));
  snprintf(m->sc.path, sizeof(m->sc.path), "%s",
           json_string_value(json_object_get(m->parts[0], "file")));
  m->first = (uint64_t)json_integer_value(
      json_object_get(json_object_get(m->parts[0], "shard"), "first"));
  m->last = (uint64_t)json_integer_value(
      json_object_get(json_object_get(m->parts[0], "shard"), "last"));
  m->npoints = json_array_size(json_object_get(m->parts[0], "points"));
  if(m->last < m->first || m->last - m->first >= KBSIM_MAX_SEEDS ||
     m->npoints > KBSIM_MAX_POINTS) {
    fprintf(stderr, "kbsim: %s: its seeds or grid are out of range\n",
            names[0]);
    return 2;
  }
  return kbsim_merge_keys(m, names[0]);
}

/* Adds up grid point i's time over the parts' stamps ("seconds", one per
 * point). Returns it, 0 when no part timed it. */
static double kbsim_merge_seconds(const struct kbsim_merge *m, size_t i)
{
  double total = 0;
  size_t p;

  for(p = 0; p < m->nparts; p++) {
    const json_t *s = json_array_get(
        json_object_get(json_object_get(m->parts[p], "kbsim"), "seconds"), i);
    if(json_is_number(s) && json_number_value(s) > 0)
      total += json_number_value(s);
  }
  return total;
}

/* Names grid point p0 as sweep does ("intermittent-array
 * [listener.idle_timeout=10s]") into name, and its values into *l. */
static void kbsim_merge_label(const struct kbsim_merge *m, const json_t *p0,
                              struct kbsim_point_label *l, char *name,
                              size_t len)
{
  const json_t *point = json_object_get(p0, "point");
  size_t k, pos;

  memset(l, 0, sizeof(*l));
  l->base = m->sc.name;
  l->name = name;
  l->nvary = m->nvary;
  pos = (size_t)snprintf(name, len, "%s", m->sc.name);
  for(k = 0; k < m->nvary; k++) {
    l->values[k] = json_string_value(json_object_get(point, m->keys[k]));
    if(!l->values[k])
      l->values[k] = "";
    if(pos < len)
      pos += (size_t)snprintf(name + pos, len - pos, "%s%s=%s", k ? " " : " [",
                              m->keys[k], l->values[k]);
  }
  if(m->nvary && pos < len)
    snprintf(name + pos, len - pos, "]");
}

/* Merges grid point i of every part into m's grid, prints its rate (to
 * out) under its name, and keeps it for --csv, --html and --junit.
 * Returns 0, or the exit code after printing what was wrong: 2 for a seed
 * missing or given twice, 3 when out of memory. */
static int kbsim_merge_one(struct kbsim_merge *m, size_t i, FILE *out)
{
  const json_t *p0 = json_array_get(json_object_get(m->parts[0], "points"), i);
  const json_t *er = json_object_get(p0, "expect_rate");
  double lo = er ? json_real_value(json_array_get(er, 0)) : -1;
  double hi = er ? json_real_value(json_array_get(er, 1)) : -1;
  struct ci_case *v = &m->verdicts[i];
  struct kbsim_point_label l;
  struct kbsim_sweep sw;
  struct kbsim_sweep_sum t;
  char err[512], name[256];
  json_t *one;

  if(!json_is_array(er))
    lo = hi = -1;
  memset(&sw, 0, sizeof(sw));
  sw.sc = &m->sc;
  sw.first = m->first;
  sw.count = m->last - m->first + 1;
  sw.results = calloc(sw.count, sizeof(*sw.results));
  if(!sw.results ||
     kbsim_merge_point(m->parts, m->nparts, i, &sw, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", sw.results ? err : "out of memory");
    free(sw.results);
    return sw.results ? 2 : 3;
  }
  kbsim_sweep_sum(&sw, &t);
  kbsim_sweep_verdict(&m->sc, &t, lo, hi, v);
  v->seconds = kbsim_merge_seconds(m, i);
  json_array_append_new(m->seconds, json_real(v->seconds));
  kbsim_merge_label(m, p0, &l, name, sizeof(name));
  snprintf(v->name, sizeof(v->name), "%.240s rate", name);
  kbsim_sweep_plot_point(&m->plot[i], m->plot_text[i], &l, &t, v);
  if(m->csvf)
    kbsim_sweep_csv_line(m->csvf, &l, &t, v);
  one = kbsim_sweep_json_point(&sw, &t, lo, hi, v);
  free(sw.results);
  if(!one)
    return 3;
  json_object_set(one, "point", json_object_get(p0, "point"));
  json_array_append_new(m->grid, one);
  fprintf(out,
          "%s %s: %" PRIu64 " of %" PRIu64
          " sessions = %.2f%% (95%% CI %.2f%%..%.2f%%): %s\n",
          kbsim_sweep_verdict_word(v, lo), name, t.with_error, t.sessions,
          100 * t.rate, 100 * t.lo, 100 * t.hi,
          v->result == CI_PASS && lo < 0
              ? "no expected rate in the parts, so no gate"
              : v->message);
  return 0;
}

/* Opens --csv (m->csv) and writes its header. Returns 0, or 3 after
 * printing why it cannot be written. */
static int kbsim_merge_csv_open(struct kbsim_merge *m)
{
  if(!m->csv)
    return 0;
  m->csvf = strcmp(m->csv, "-") ? fopen(m->csv, "w") : stdout;
  if(!m->csvf) {
    fprintf(stderr, "kbsim: --csv %s: cannot write it: %s\n", m->csv,
            strerror(errno));
    return 3;
  }
  kbsim_sweep_csv_header(m->csvf, m->keys, m->nvary);
  return 0;
}

/* Writes what holds every point once all are merged: the end of --csv,
 * --html and --junit. Returns 0, or 3 after printing what failed. */
static int kbsim_merge_files(struct kbsim_merge *m)
{
  char err[512], title[300];
  int rc = 0;

  if(m->csvf && m->csvf != stdout && fclose(m->csvf)) {
    fprintf(stderr, "kbsim: --csv %s: writing failed\n", m->csv);
    rc = 3;
  }
  m->csvf = NULL;
  snprintf(title, sizeof(title),
           "kbsim sweep %s, seeds %" PRIu64 "..%" PRIu64 ", merged from %zu "
           "parts",
           m->sc.name, m->first, m->last, m->nparts);
  if(m->html &&
     sim_plot_write(m->html, title, m->nvary ? m->keys[0] : "scenario",
                    m->nvary > 1 ? m->keys[1] : NULL, m->plot, m->npoints, err,
                    sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    rc = 3;
  }
  if(m->junit && ci_junit_write(m->junit,
                                &(const struct ci_suite){.name = "kbsim merge",
                                                         .cases = m->verdicts,
                                                         .ncases = m->npoints},
                                err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    rc = 3;
  }
  return rc;
}

/* The merge into m, its command line as given in cmd. Returns the exit
 * code. */
static int kbsim_merge_main(int argc, char **argv, json_t *cmd,
                            struct kbsim_merge *m)
{
  struct kbsim_sweep_stamp stamp;
  struct kbsim_args a;
  const char *out = NULL;
  FILE *human;
  size_t i;
  int c, rc, stdouts;

  kbsim_args_init(&a, &kbsim_merge_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    if(c == 'J')
      out = optarg;
    else if(c == 'U')
      m->junit = optarg;
    else if(c == 'C')
      m->csv = optarg;
    else if(c == 'H')
      m->html = optarg;
  if(c < 0)
    return a.status;
  if(optind >= argc)
    return kbsim_bad_args("give the parts' JSON files");
  if(argc - optind > KBSIM_MAX_PARTS)
    return kbsim_bad_args("at most %d parts", KBSIM_MAX_PARTS);
  /* Standard output holds one file: the JSON's unless it has a path. */
  stdouts = (!out || !strcmp(out, "-")) + (m->junit && !strcmp(m->junit, "-")) +
            (m->csv && !strcmp(m->csv, "-"));
  if(stdouts > 1)
    return kbsim_bad_args("only one file can go to standard output; give "
                          "--json a path when --junit or --csv is -");
  human = out && strcmp(out, "-") && !(m->junit && !strcmp(m->junit, "-")) &&
                  !(m->csv && !strcmp(m->csv, "-"))
              ? stdout
              : stderr;
  rc = kbsim_merge_load(m, argv + optind, (size_t)(argc - optind));
  if(!rc)
    rc = kbsim_merge_csv_open(m);
  if(rc)
    return rc;
  m->grid = json_array();
  m->seconds = json_array();
  for(i = 0; i < m->npoints; i++)
    if((rc = kbsim_merge_one(m, i, human)) != 0)
      return rc;
  /* The stamp: this command, and each part's. */
  m->shards = json_array();
  for(i = 0; i < m->nparts; i++)
    json_array_append(
        m->shards,
        json_object_get(json_object_get(m->parts[i], "kbsim"), "command"));
  memset(&stamp, 0, sizeof(stamp));
  stamp.cmd = cmd;
  stamp.shard_commands = m->shards;
  stamp.seconds = m->seconds;
  if(kbsim_sweep_json(
         out ? out : "-", &m->sc, m->grid,
         json_is_true(json_object_get(m->parts[0], "grid")) ? 1 : 0, &stamp))
    return 3;
  if(kbsim_merge_files(m))
    return 3;
  return ci_exit(m->verdicts, m->npoints);
}

static int kbsim_cmd_merge(int argc, char **argv)
{
  struct kbsim_merge *m = calloc(1, sizeof(*m));
  json_t *cmd;
  size_t i;
  int c, rc;

  if(!m) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 3;
  }
  /* The command line as given, before getopt reorders argv. */
  cmd = json_pack("[s]", "kbsim");
  for(c = 0; c < argc; c++)
    json_array_append_new(cmd, json_string(argv[c]));
  rc = kbsim_merge_main(argc, argv, cmd, m);
  json_decref(cmd);
  for(i = 0; i < m->nparts; i++)
    json_decref(m->parts[i]);
  json_decref(m->grid);
  json_decref(m->shards);
  json_decref(m->seconds);
  if(m->csvf && m->csvf != stdout)
    fclose(m->csvf);
  free(m);
  return rc;
}
