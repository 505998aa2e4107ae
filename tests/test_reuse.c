/*
 * test_reuse.c - a topology reused across seeds (sim_runner, what `kbsim
 * sweep` runs on) gives what a fresh start gives: every session's every
 * POST, every counter of the listeners and of Exchange, the trace byte for
 * byte, connection ids from 1; and a sweep's JSON equals its --fresh
 * twin's, stamp aside. KBSIM_REUSE_SEEDS sets how many seeds the first
 * test compares (default 10 here; CI's reuse stage runs 200).
 */
#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"
#include "sim/run.h"
#include "sim/scenario.h"
#include "sim/sim_env.h"

#define ARRAY SCENARIOS_DIR "/intermittent-array.ini"

static void load(const char *path, struct scenario *sc)
{
  char err[512];

  ck_assert_msg(!scenario_load(path, sc, err, sizeof(err)), "%s", err);
}

static void override(struct scenario *sc, const char *key, const char *value)
{
  char err[512];

  ck_assert_msg(!scenario_override(sc, key, value, err, sizeof(err)), "%s",
                err);
}

/* Every field of two outcomes, named in the message when one differs. */
static void assert_same_outcome(const struct sim_outcome *a,
                                const struct sim_outcome *b, uint64_t seed)
{
  size_t i, j;

#define SAME(field)                                                            \
  ck_assert_msg(a->field == b->field, "seed %llu: " #field " %llu != %llu",    \
                (unsigned long long)seed, (unsigned long long)a->field,        \
                (unsigned long long)b->field)
  SAME(sessions.count);
  SAME(sessions.users_with_error);
  SAME(sessions.infrastructure);
  SAME(sessions.not_started);
  SAME(sessions.posts);
  SAME(sessions.posts_ok);
  SAME(sessions.posts_failed);
  SAME(ews_posts);
  SAME(nmembers);
  SAME(backend.connections);
  SAME(backend.requests);
  SAME(backend.ews_posts);
  SAME(backend.empty_posts);
  SAME(backend.oof_ok);
  SAME(backend.availability_ok);
  SAME(backend.soap_faults);
  SAME(backend.autodiscover_ok);
  SAME(backend.not_found);
  SAME(backend.bad_method);
  SAME(backend.too_large);
  SAME(backend.challenges);
  SAME(backend.refused);
  SAME(backend.mismatches);
  for(i = 0; i < a->nmembers; i++) {
    SAME(members[i].connections);
    SAME(members[i].requests);
    SAME(members[i].challenges);
    SAME(members[i].auth_ok);
    SAME(members[i].auth_failed);
    SAME(members[i].reauth_skipped);
    SAME(members[i].forwarded);
    SAME(members[i].forwarded_empty_posts);
    SAME(members[i].upstream_errors);
    SAME(members[i].basic_ok);
    SAME(members[i].basic_failed);
    SAME(members[i].idle_closed);
    SAME(members[i].max_requests_closed);
    SAME(members[i].head_timeouts);
    SAME(members[i].evicted);
    SAME(members[i].refused);
  }
  for(i = 0; i < a->sessions.count; i++) {
    SAME(sessions.sessions[i].id);
    SAME(sessions.sessions[i].klass);
    SAME(sessions.sessions[i].nresults);
    SAME(sessions.sessions[i].view.integration_error);
    SAME(sessions.sessions[i].view.autodiscovery_failed_logged);
    SAME(sessions.sessions[i].view.presence_available);
    SAME(sessions.sessions[i].view.scheduling_available);
    SAME(sessions.sessions[i].view.autodiscover_ok);
    SAME(sessions.sessions[i].view.posts_done);
    SAME(sessions.sessions[i].view.posts_ok);
    SAME(sessions.sessions[i].view.posts_failed);
    SAME(sessions.sessions[i].view.connections);
    ck_assert_str_eq(a->sessions.sessions[i].view.ews_url,
                     b->sessions.sessions[i].view.ews_url);
    ck_assert_str_eq(a->sessions.sessions[i].error,
                     b->sessions.sessions[i].error);
    for(j = 0; j < a->sessions.sessions[i].nresults; j++) {
      SAME(sessions.sessions[i].results[j].index);
      SAME(sessions.sessions[i].results[j].kind);
      SAME(sessions.sessions[i].results[j].outcome);
      SAME(sessions.sessions[i].results[j].leg1_status);
      SAME(sessions.sessions[i].results[j].final_status);
      SAME(sessions.sessions[i].results[j].legs);
      SAME(sessions.sessions[i].results[j].connection);
      SAME(sessions.sessions[i].results[j].think_ms);
      SAME(sessions.sessions[i].results[j].at_ms);
      SAME(sessions.sessions[i].results[j].new_connection);
      SAME(sessions.sessions[i].results[j].harness_failed);
      SAME(sessions.sessions[i].views[j].integration_error);
      SAME(sessions.sessions[i].views[j].posts_failed);
      ck_assert_str_eq(a->sessions.sessions[i].results[j].detail,
                       b->sessions.sessions[i].results[j].detail);
    }
  }
#undef SAME
}

static unsigned reuse_seeds(void)
{
  const char *env = getenv("KBSIM_REUSE_SEEDS");
  long n = env ? strtol(env, NULL, 10) : 10;

  return n > 0 && n <= 100000 ? (unsigned)n : 10;
}

/* The comparison: seeds 1..N on one kept topology against a fresh
 * topology per seed, everything the sweep counts and more. */
START_TEST(reuse_equals_fresh_over_seeds)
{
  struct sim_runner runner;
  struct scenario sc;
  struct kb_trace none = {0};
  unsigned n = reuse_seeds(), seed, with_error = 0, sessions = 0;
  char err[512];

  load(ARRAY, &sc);
  memset(&runner, 0, sizeof(runner));
  for(seed = 1; seed <= n; seed++) {
    struct sim_outcome fresh, reused;

    sc.seed = seed;
    ck_assert_msg(!sim_scenario_run(&sc, none, &fresh, err, sizeof(err)),
                  "seed %u fresh: %s", seed, err);
    ck_assert_msg(
        !sim_runner_run(&runner, &sc, none, &reused, err, sizeof(err)),
        "seed %u reused: %s", seed, err);
    assert_same_outcome(&fresh, &reused, seed);
    with_error += reused.sessions.users_with_error;
    sessions += (unsigned)reused.sessions.count;
    sim_outcome_free(&fresh);
    sim_outcome_free(&reused);
  }
  /* One topology for every seed, and the seeds were not all alike. */
  ck_assert_uint_eq(runner.starts, 1);
  ck_assert_uint_eq(sessions, n * 8);
  ck_assert_uint_gt(with_error, 0);
  ck_assert_uint_lt(with_error, sessions);
  sim_runner_stop(&runner);
}
END_TEST

/* One recorded event as a line, with what a seed decides: the bytes on
 * each named connection and their simulated stamps, each exchange, each
 * decision's code. Left out is what the threads decide: connection ids
 * (accept order, which notes' texts quote too) and when a close is seen
 * (stamped with the timeline of its session as it stands then). */
static char *event_line(const struct sim_event *e)
{
  bool when = e->kind != KB_TRACE_OPEN && e->kind != KB_TRACE_CLOSE;
  size_t cap = 512 + 2 * e->len, n, i;
  char *s = malloc(cap);

  ck_assert_ptr_nonnull(s);
  n = (size_t)snprintf(s, cap, "%d %d %d %s|%s|%s|%s|%d|%lld|%d|", e->kind,
                       e->hop, e->side, e->origin, e->conn_name, e->method,
                       e->path, (int)e->note, when ? (long long)e->at_us : 0LL,
                       e->exchange.status);
  for(i = 0; i < e->len && n + 3 < cap; i++)
    n += (size_t)snprintf(s + n, cap - n, "%02x", e->data[i]);
  return s;
}

static int line_cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The recorder's events as sorted lines (arrival order is the
 * threads'). */
static char **event_lines(struct sim_recorder *rec, size_t *n)
{
  char **lines = calloc(rec->count ? rec->count : 1, sizeof(*lines));
  size_t i;

  ck_assert_ptr_nonnull(lines);
  for(i = 0; i < rec->count; i++)
    lines[i] = event_line(&rec->events[i]);
  qsort(lines, rec->count, sizeof(*lines), line_cmp);
  *n = rec->count;
  return lines;
}

static void free_lines(char **lines, size_t n)
{
  size_t i;

  for(i = 0; i < n; i++)
    free(lines[i]);
  free(lines);
}

/* The ids the listeners and Exchange gave their connections: 1..count
 * each, as after a start. */
static void assert_ids_from_one(struct sim_recorder *rec)
{
  static const char *const origins[] = {"ISA01", "ISA02", "Exchange"};
  size_t i, k;

  for(k = 0; k < 3; k++) {
    uint64_t max = 0, opens = 0;
    for(i = 0; i < rec->count; i++) {
      const struct sim_event *e = &rec->events[i];
      if(strcmp(e->origin, origins[k]) || e->kind != KB_TRACE_OPEN ||
         e->side != KB_SIDE_SERVER)
        continue;
      opens++;
      if(e->conn > max)
        max = e->conn;
    }
    ck_assert_msg(max == opens, "%s: %llu connections, ids up to %llu",
                  origins[k], (unsigned long long)opens,
                  (unsigned long long)max);
  }
}

static void assert_same_lines(struct sim_recorder *x, struct sim_recorder *y)
{
  char **a, **b;
  size_t na, nb, i;

  a = event_lines(x, &na);
  b = event_lines(y, &nb);
  ck_assert_uint_gt(na, 100);
  ck_assert_uint_eq(na, nb);
  for(i = 0; i < na; i++)
    ck_assert_msg(!strcmp(a[i], b[i]), "event %zu differs:\n%.300s\n%.300s", i,
                  a[i], b[i]);
  free_lines(a, na);
  free_lines(b, nb);
}

/* Every byte on both hops, every decision and every stamp of a seed run on
 * a topology that ran other seeds (and another policy) first equal a fresh
 * start's: the clock, the random source, the names, the counters and the
 * connection ids were all put back. */
START_TEST(reset_gives_the_fresh_trace)
{
  struct sim_recorder fresh_rec, reused_rec;
  struct sim_runner runner;
  struct sim_outcome o;
  struct scenario sc, fixed;
  char err[512];

  load(ARRAY, &sc);
  sc.seed = 7;
  fixed = sc;
  fixed.seed = 3;
  override(&fixed, "member.ISA02.patch", "sp1");
  override(&fixed, "member.ISA02.script", "yes");
  sim_recorder_init(&fresh_rec, true);
  sim_recorder_init(&reused_rec, true);

  ck_assert_msg(!sim_scenario_run(&sc, sim_recorder_as_kb(&fresh_rec), &o, err,
                                  sizeof(err)),
                "%s", err);
  ck_assert_uint_gt(o.backend.empty_posts, 0);
  sim_outcome_free(&o);
  /* The control: two fresh starts agree on every line. */
  ck_assert(!sim_scenario_run(&sc, sim_recorder_as_kb(&reused_rec), &o, err,
                              sizeof(err)));
  sim_outcome_free(&o);
  assert_same_lines(&fresh_rec, &reused_rec);
  sim_recorder_clear(&reused_rec);

  memset(&runner, 0, sizeof(runner));
  ck_assert(!sim_runner_run(&runner, &fixed, sim_recorder_as_kb(&reused_rec),
                            &o, err, sizeof(err)));
  /* Both members patched: nothing reaches Exchange empty. */
  ck_assert_uint_eq(o.backend.empty_posts, 0);
  sim_outcome_free(&o);
  sim_recorder_clear(&reused_rec);
  ck_assert_msg(!sim_runner_run(&runner, &sc, sim_recorder_as_kb(&reused_rec),
                                &o, err, sizeof(err)),
                "%s", err);
  ck_assert_uint_eq(runner.starts, 1);
  /* Exchange's records start again too. */
  {
    struct backend_conn_info rec[4];
    ck_assert_uint_ge(backend_connections(runner.topo->backend, rec, 4), 1);
    ck_assert_uint_eq(rec[0].id, 1);
  }
  sim_outcome_free(&o);

  ck_assert(!fresh_rec.failed && !reused_rec.failed);
  assert_ids_from_one(&fresh_rec);
  assert_ids_from_one(&reused_rec);
  assert_same_lines(&fresh_rec, &reused_rec);
  sim_runner_stop(&runner);
  sim_recorder_free(&fresh_rec);
  sim_recorder_free(&reused_rec);
}
END_TEST

/* A scenario of another shape gets a topology of its own; the same shape
 * again keeps it. */
START_TEST(another_shape_starts_anew)
{
  struct sim_runner runner;
  struct sim_outcome o;
  struct scenario sc, other;
  struct kb_trace none = {0};
  char err[512];

  load(ARRAY, &sc);
  other = sc;
  override(&other, "listener.idle_timeout", "10s");
  memset(&runner, 0, sizeof(runner));
  ck_assert(!sim_runner_run(&runner, &sc, none, &o, err, sizeof(err)));
  sim_outcome_free(&o);
  ck_assert(!sim_runner_run(&runner, &other, none, &o, err, sizeof(err)));
  sim_outcome_free(&o);
  ck_assert_uint_eq(runner.starts, 2);
  other.seed = 9;
  override(&other, "member.ISA01.patch", "rtm");
  ck_assert(!sim_runner_run(&runner, &other, none, &o, err, sizeof(err)));
  sim_outcome_free(&o);
  ck_assert_uint_eq(runner.starts, 2);
  /* The names the run's connections claimed are forgotten by a reset
   * (ports are the kernel's: the next seed's could match them). */
  ck_assert_uint_gt(runner.topo->names.count, 0);
  ck_assert_int_eq(sim_topology_reset(runner.topo, 1, NULL, err, sizeof(err)),
                   0);
  ck_assert_uint_eq(runner.topo->names.count, 0);
  sim_runner_stop(&runner);
  /* A fresh runner stops after each run. */
  memset(&runner, 0, sizeof(runner));
  runner.fresh = true;
  ck_assert(!sim_runner_run(&runner, &sc, none, &o, err, sizeof(err)));
  sim_outcome_free(&o);
  ck_assert_ptr_null(runner.topo);
  ck_assert_uint_eq(runner.starts, 1);
}
END_TEST

/* Outlook Anywhere's runs leave a kept topology quiet: when the IN
 * channel goes, Exchange cuts the OUT channel's answer, and the closed
 * connection is cleaned up at once. With libmicrohttpd's epoll loop it
 * could linger (backend/mhd.c), the quiesce at the run's end gave up
 * after SIM_QUIESCE_TIMEOUT_MS and the next seed started a new topology:
 * about one run in four, so 16 runs meet it 99 times in 100. */
START_TEST(outlook_anywhere_leaves_the_topology_quiet)
{
  struct sim_runner runner;
  struct sim_outcome o;
  struct scenario sc;
  struct kb_trace none = {0};
  char err[512];
  unsigned k;

  load(SCENARIOS_DIR "/outlook-anywhere.ini", &sc);
  memset(&runner, 0, sizeof(runner));
  for(k = 0; k < 16; k++) {
    sc.seed = 1 + k;
    ck_assert_msg(!sim_runner_run(&runner, &sc, none, &o, err, sizeof(err)),
                  "%s", err);
    ck_assert_uint_eq(o.sessions.infrastructure, 0);
    sim_outcome_free(&o);
    ck_assert_msg(runner.topo != NULL, "seed %u: the topology did not go quiet",
                  1 + k);
  }
  ck_assert_uint_eq(runner.starts, 1);
  sim_runner_stop(&runner);
}
END_TEST

/* Connections /proc/net/tcp lists with one end at the IPv4 address src
 * (host order) and the other end's port in ports (n of them), whatever
 * their state: the kernel's own account of who connected from where. */
static unsigned tcp_from(uint32_t src, const uint16_t *ports, size_t n)
{
  FILE *f = fopen("/proc/net/tcp", "r");
  char line[512];
  unsigned count = 0;

  ck_assert_ptr_nonnull(f);
  while(fgets(line, sizeof(line), f)) {
    unsigned la, lp, ra, rp;
    size_t i;
    if(sscanf(line, " %*u: %8X:%4X %8X:%4X", &la, &lp, &ra, &rp) != 4)
      continue;
    /* The file prints the address as the 32-bit word in memory. */
    for(i = 0; i < n; i++)
      count += (ntohl(la) == src && rp == ports[i]) ||
               (ntohl(ra) == src && lp == ports[i]);
  }
  fclose(f);
  return count;
}

/* Each run on a kept topology leaves from its own loopback source, both
 * hops: 127.0.0.1 to the same listener ports for thousands of runs a
 * minute wore out the ephemeral ports (TIME_WAIT) and made a reused
 * topology slower than a new one per seed. */
START_TEST(kept_topology_runs_from_their_own_source)
{
  struct sim_runner runner;
  struct sim_outcome o;
  struct scenario sc;
  struct kb_trace none = {0};
  uint16_t members[SIM_MAX_MEMBERS], exchange;
  char err[512];
  unsigned long k;
  size_t n;

  ck_assert_uint_eq(sim_topology_run_source(0), 0x7f000002u);
  ck_assert_uint_eq(sim_topology_run_source(249), 0x7f0000fbu);
  ck_assert_uint_eq(sim_topology_run_source(250), 0x7f000002u);
  load(ARRAY, &sc);
  memset(&runner, 0, sizeof(runner));
  for(k = 0; k < 2; k++) {
    sc.seed = 1 + k;
    ck_assert(!sim_runner_run(&runner, &sc, none, &o, err, sizeof(err)));
    sim_outcome_free(&o);
    for(n = 0; n < runner.topo->nproxies; n++)
      members[n] = runner.topo->proxy_ports[n];
    exchange = backend_port(runner.topo->backend);
    /* Every session connected at least once; every member that forwarded
     * did so from the run's source too. */
    ck_assert_uint_ge(tcp_from(sim_topology_run_source(k), members, n),
                      sc.clients);
    ck_assert_uint_ge(tcp_from(sim_topology_run_source(k), &exchange, 1), 1);
  }
  ck_assert_uint_eq(runner.starts, 1);
  sim_runner_stop(&runner);
}
END_TEST

/* array.patched, the grid's "how many members are patched": the first N
 * run SP1 with the script, the rest RTM without it; a count past the
 * array is refused in one line. */
START_TEST(array_patched_sets_the_members)
{
  static const char *const bad[] = {"3", "-1", "x", ""};
  struct scenario sc;
  char err[512];
  size_t i;

  load(ARRAY, &sc);
  override(&sc, "array.patched", "1");
  ck_assert_int_eq(sc.members[0].patch, SCENARIO_PATCH_SP1);
  ck_assert(sc.members[0].script);
  ck_assert_int_eq(sc.members[1].patch, SCENARIO_PATCH_RTM);
  ck_assert(!sc.members[1].script);
  override(&sc, "array.patched", "2");
  ck_assert_int_eq(sc.members[1].patch, SCENARIO_PATCH_SP1);
  ck_assert(sc.members[1].script);
  override(&sc, "array.patched", "0");
  ck_assert_int_eq(sc.members[0].patch, SCENARIO_PATCH_RTM);
  ck_assert(!sc.members[0].script);
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    ck_assert_int_eq(
        scenario_override(&sc, "array.patched", bad[i], err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "0 to 2") && !strchr(err, '\n'), "%s", err);
  }
}
END_TEST

/* The JSON a sweep writes, without its stamp, as jansson writes it. */
static char *json_without_stamp(const char *path)
{
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  char *text;

  ck_assert_msg(root != NULL, "%s: %s", path, je.text);
  ck_assert_int_eq(json_object_del(root, "kbsim"), 0);
  text = json_dumps(root, JSON_INDENT(2));
  json_decref(root);
  return text;
}

/* The sweep itself: a grid whose points change a member's patch (the
 * topology is kept) and the idle timeout (a new one), on two workers,
 * against --fresh. */
START_TEST(sweep_json_equals_fresh)
{
  char dir[256], reused[300], fresh[300];
  char *base[] = {KBSIM_BIN,
                  "sweep",
                  ARRAY,
                  "--seeds",
                  "1..4",
                  "--jobs",
                  "2",
                  "--vary",
                  "member.ISA02.patch=rtm,sp1",
                  "--vary",
                  "listener.idle_timeout=30s,10s",
                  "--json",
                  reused,
                  NULL,
                  NULL};
  struct proc_out p, q;
  char *a, *b;

  proc_tmpdir("kbsim-reuse", dir, sizeof(dir));
  snprintf(reused, sizeof(reused), "%s/reused.json", dir);
  snprintf(fresh, sizeof(fresh), "%s/fresh.json", dir);
  proc_run(base, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  base[12] = fresh;
  base[13] = "--fresh";
  proc_run(base, &q);
  ck_assert_msg(q.status == 0, "%s%s", q.out.data, q.err.data);
  ck_assert_str_eq(p.out.data, q.out.data);
  a = json_without_stamp(reused);
  b = json_without_stamp(fresh);
  ck_assert_ptr_nonnull(strstr(a, "\"per_seed\""));
  ck_assert_str_eq(a, b);
  free(a);
  free(b);
  proc_free(&p);
  proc_free(&q);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("reuse");
  TCase *tc = tcase_create("reuse");
  TCase *slow;

  tcase_set_timeout(tc, 600);
  tcase_add_test(tc, reuse_equals_fresh_over_seeds);
  tcase_add_test(tc, reset_gives_the_fresh_trace);
  tcase_add_test(tc, another_shape_starts_anew);
  tcase_add_test(tc, array_patched_sets_the_members);
  tcase_add_test(tc, kept_topology_runs_from_their_own_source);
  tcase_add_test(tc, outlook_anywhere_leaves_the_topology_quiet);
  suite_add_tcase(s, tc);
  /* A sweep grid run twice, reused and fresh. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 600);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, sweep_json_equals_fresh);
  suite_add_tcase(s, slow);
  return kbt_run(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
