/*
 * run.h - runs a scenario through the topology and judges it: what
 * happened (sessions and every component's counters) against what the
 * scenario expects.
 */
#ifndef RUN_H
#define RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/scenario.h"
#include "sim/topology.h"

struct sim_outcome {
  struct sim_sessions sessions;
  struct backend_stats backend;
  struct proxy_stats proxy; /* summed over the members */
  struct proxy_stats members[SIM_MAX_MEMBERS];
  size_t nmembers;
  uint64_t ews_posts; /* EWS POSTs the clients made */
};

/* The scenario's user store, from [users] (release with kb_users_free).
 * Returns 0, or -1 with a one-line reason in err and *out NULL. */
int sim_scenario_users(const struct scenario *sc, struct kb_users **out,
                       char *err, size_t errlen);

/* What sim_topology_start takes from sc: simulated, seeded with sc->seed,
 * its listener, array and members' policies, users (borrowed) and trace.
 * Never fails. */
void sim_scenario_topology(const struct scenario *sc, struct kb_users *users,
                           struct kb_trace trace,
                           struct sim_topology_config *cfg);

/* Who a scenario's clients sign in as: [clients] user, or every user in
 * turn, with the password override applied. plan->logins points here. */
struct sim_logins {
  const char *specs[SCENARIO_MAX_USERS];
  char owned[SCENARIO_MAX_USERS][SCENARIO_TEXT * 2];
  size_t user[SCENARIO_MAX_USERS]; /* each login's index in [users] */
  size_t n;
  /* Each login's Kerberos credential cache (the runner's, for an
   * internal user) or NULL; what plan->krb5_ccaches points to. */
  const char *ccaches[SCENARIO_MAX_USERS];
};

/* Fills *plan with sc's clients (count, posts, kind, think times, their
 * keep-alive limits) and *logins with who they sign in as. Returns 0, or
 * -1 with a one-line reason in err when nobody can sign in. */
int sim_scenario_plan(const struct scenario *sc, struct sim_logins *logins,
                      struct sim_clients *plan, char *err, size_t errlen);

/* Starts the scenario's topology (simulated clock, seeded with sc->seed),
 * runs its clients, stops the topology and fills *out (release with
 * sim_outcome_free). trace receives every component's events. Returns 0,
 * or -1 with a one-line reason in err. */
int sim_scenario_run(const struct scenario *sc, struct kb_trace trace,
                     struct sim_outcome *out, char *err, size_t errlen);

/* Runs scenarios one after another on one topology, kept alive while the
 * scenarios share its shape: the users, the listener's authentication,
 * keep-alive limits, DNS domain and balancer, the array's member names
 * and the trace. What differs between runs of one shape - the seed and
 * each member's policy (patch level and script) - is reset or set by
 * sim_topology_reset, so each run's outcome and trace are those of a
 * fresh start. Zeroed, it holds nothing; one thread uses it at a time. */
struct sim_runner {
  struct sim_topology *topo; /* owned; NULL until a run starts one */
  struct kb_users *users;    /* owned; the topology's */
  /* owned: the KDC of a scenario with [kerberos] (sim/kdc.h), and each
   * internal user's credential cache, by index in [users] ("" for the
   * others) */
  struct sim_kdc *kdc;
  char ccache[SCENARIO_MAX_USERS][400];
  struct scenario shape; /* the scenario topo was started for */
  struct kb_trace trace; /* what topo's components were handed */
  bool fresh;            /* stop the topology after every run */
  unsigned long starts;  /* topologies started (for tests, benches) */
  unsigned long runs;    /* runs made; each kept-topology run leaves
                            from its own loopback source
                            (sim_topology_run_source) */
};

/* As sim_scenario_run, on runner's topology when its shape fits sc (reset
 * for sc's seed), else on a new one that stays for the next run (unless
 * runner->fresh). Before returning it waits until the topology is quiet,
 * so every close is in the trace. Returns 0, or -1 with a one-line reason
 * in err (the topology is then stopped). */
int sim_runner_run(struct sim_runner *runner, const struct scenario *sc,
                   struct kb_trace trace, struct sim_outcome *out, char *err,
                   size_t errlen);

/* Stops the runner's topology and frees what it holds; the runner can be
 * used again. Accepts NULL. */
void sim_runner_stop(struct sim_runner *runner);

/* Frees what sim_scenario_run filled in. Accepts an all-zero struct. */
void sim_outcome_free(struct sim_outcome *o);

/* The run's class (client/verdict.h): its highest-ranking session's. */
enum client_class sim_outcome_class(const struct sim_outcome *o);

/* Returns 1 when every expectation of sc holds (trivially with none), else
 * 0 with "expected ..., got ..." parts joined by "; " in why. */
int sim_scenario_check(const struct scenario *sc, const struct sim_outcome *o,
                       char *why, size_t len);

/* The deciding evidence in one line: users who saw the notification,
 * empty POSTs at Exchange and which members forwarded them, requests that
 * reached Exchange, refused logins. */
void sim_outcome_summary(const struct scenario *sc, const struct sim_outcome *o,
                         char *out, size_t len);

#endif /* RUN_H */
