/*
 * sweep.h - what `kbsim sweep` (cmd_sweep.c) and `kbsim merge`
 * (cmd_merge.c) share: the seeds' results of one grid point, run by
 * workers (sweep_run.c) or read back from the parts of a sharded sweep,
 * summed and judged and written as JSON the same way (sweep_result.c);
 * and the grid of --vary values (sweep_grid.c).
 */
#ifndef SWEEP_H
#define SWEEP_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "evidence/ci.h"
#include "render/plot.h"
#include "sim/run.h"
#include "sim/scenario.h"

#define KBSIM_MAX_SEEDS 1000000u
#define KBSIM_MAX_JOBS 64

/* --vary: a scenario key and the values it takes. */
#define KBSIM_MAX_VARY 3
#define KBSIM_MAX_VALUES 64
#define KBSIM_MAX_POINTS 512

/* ---- sweep_run.c: one grid point's seeds -------------------------------- */

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

/* Makes SIGINT stop the workers after their current seed (the previous
 * action saved into *old) and clears the flag. Main thread only. */
void kbsim_sweep_catch_sigint(struct sigaction *old);

/* Puts back the action kbsim_sweep_catch_sigint saved. */
void kbsim_sweep_release_sigint(const struct sigaction *old);

/* Returns true once SIGINT arrived. Safe from any thread. */
bool kbsim_sweep_interrupted(void);

/* Runs seeds first..first+count-1 of sc on jobs workers, each with its
 * own runner of runners, into *sw (its results owned by the caller, freed
 * with free()). Returns 0, or -1 when out of memory. */
int kbsim_sweep_point(const struct scenario *sc, uint64_t first, uint64_t count,
                      uint64_t jobs, struct sim_runner *runners,
                      struct kbsim_sweep *sw);

/* ---- sweep_result.c: what the seeds add up to ---------------------------- */

/* What a sweep found, summed over the seeds that ran. */
struct kbsim_sweep_sum {
  uint64_t runs, failed_runs, sessions, with_error, infrastructure;
  uint64_t empty, ews;
  double rate, lo, hi;
  bool partial;
};

/* Sums sw's results into *t, the rate with its 95% Wilson interval;
 * prints the first seed that could not run. */
void kbsim_sweep_sum(const struct kbsim_sweep *sw, struct kbsim_sweep_sum *t);

/* The verdict: error when the harness failed anywhere or the sweep was
 * cut short, else fail when the 95% interval is not inside the expected
 * rate (lo < 0: none expected, pass). A fail whose rate is inside but
 * whose interval is too wide has the type "too-few-seeds" (the others
 * the class of what users saw, "server-error" or "clean"). */
void kbsim_sweep_verdict(const struct scenario *sc,
                         const struct kbsim_sweep_sum *t, double lo, double hi,
                         struct ci_case *v);

/* "pass", "fail" or "error", as JSON, CSV and the plot spell v. */
const char *kbsim_sweep_result_name(enum ci_result result);

/* The word that starts a grid point's verdict line: "PASS", "FAIL",
 * "ERROR", or "NO GATE" for a point that passed with no expected rate
 * (lo < 0), which was not judged and so never says PASS. */
const char *kbsim_sweep_verdict_word(const struct ci_case *v, double lo);

/* One grid point as its --csv line and its point on the --html page show
 * it: the value of each varied key, in the grid's order, and its name
 * ("intermittent-array [listener.idle_timeout=10s]"). */
struct kbsim_point_label {
  const char *values[KBSIM_MAX_VARY];
  size_t nvary;
  const char *base; /* the scenario's name: the x of a grid without keys */
  const char *name;
};

/* Writes --csv's header: the varied keys, then the counts' columns. */
void kbsim_sweep_csv_header(FILE *csv, const char *const *keys, size_t nkeys);

/* Writes grid point l's --csv line: its values, counts, rate, interval,
 * empty POSTs and verdict. */
void kbsim_sweep_csv_line(FILE *csv, const struct kbsim_point_label *l,
                          const struct kbsim_sweep_sum *t,
                          const struct ci_case *v);

/* Fills *pp, grid point l's point on the --html page (sim_plot_write),
 * with its strings copied into text, which must live as long as *pp. */
void kbsim_sweep_plot_point(struct sim_plot_point *pp, char (*text)[256],
                            const struct kbsim_point_label *l,
                            const struct kbsim_sweep_sum *t,
                            const struct ci_case *v);

/* One point's result as JSON: counts, rate, interval, verdict, seeds.
 * Returns it (the caller's), or NULL when out of memory. */
json_t *kbsim_sweep_json_point(const struct kbsim_sweep *sw,
                               const struct kbsim_sweep_sum *t, double lo,
                               double hi, const struct ci_case *v);

/* Where a sweep's JSON came from: the command line, the shard it was and
 * the seeds of the whole sweep, the parts' command lines (merge). */
struct kbsim_sweep_stamp {
  json_t *cmd;            /* borrowed */
  uint64_t shard_k;       /* 0: not a part */
  uint64_t shard_n;       /* 0: not a part */
  uint64_t all_first;     /* the whole sweep's seeds, with shard_n */
  uint64_t all_count;     /* the whole sweep's seeds, with shard_n */
  json_t *shard_commands; /* borrowed; NULL unless merged */
  json_t *seconds;        /* borrowed: each grid point's time; NULL: none */
};

/* Writes the sweep's JSON document to path ("-": standard output): the
 * stamp, the scenario, the varied keys and one result per grid point
 * (docs/report.schema.json, $defs sweep). Returns 0, or -1 after printing
 * why. */
int kbsim_sweep_json(const char *path, const struct scenario *sc, json_t *grid,
                     size_t nvary, const struct kbsim_sweep_stamp *stamp);

/* ---- sweep_grid.c: --vary ------------------------------------------------ */

struct kbsim_vary {
  char key[96];
  char values[KBSIM_MAX_VALUES][32];
  size_t n;
};

/* The grid: every combination of the --vary values, the first key's
 * changing fastest. */
struct kbsim_grid {
  struct kbsim_vary vary[KBSIM_MAX_VARY];
  size_t nvary;
  size_t npoints; /* the product of the values' counts; 1 without --vary */
};

/* The scenario keys a grid varies, as --vary's completion offers them
 * (manpage.c), NULL-terminated: "listener.idle_timeout", ...,
 * "member.NAME.patch" (NAME: one of the scenario's members). Every
 * scenario_override key but the scenario's name, seed, users and
 * expectations, which a sweep does not vary. */
extern const char *const kbsim_vary_keys[];

/* Empties g: one point, the scenario as it is. Can't fail. */
void kbsim_grid_init(struct kbsim_grid *g);

/* Adds one --vary, "KEY=V1,V2,..." or "KEY=LOW..HIGH/STEP", to g. Returns
 * 0, or -1 with what is wrong in err. */
int kbsim_grid_add(struct kbsim_grid *g, const char *text, char *err,
                   size_t errlen);

/* Sets *sc to base with grid point pt's values, and at[k] (when at is not
 * NULL) to the index of key k's value. Returns 0, or -1 with the
 * scenario's complaint in err. */
int kbsim_grid_point(const struct kbsim_grid *g, size_t pt,
                     const struct scenario *base, struct scenario *sc,
                     size_t *at, char *err, size_t errlen);

/* The grid point's name: "intermittent-array" or "intermittent-array
 * [listener.idle_timeout=10s member.ISA02.patch=sp1]". */
void kbsim_grid_name(const struct kbsim_grid *g, const char *base,
                     const size_t *at, char *out, size_t len);

#endif /* SWEEP_H */
