/*
 * run.h - runs a scenario through the topology and judges it: what
 * happened (sessions and every component's counters) against what the
 * scenario expects.
 */
#ifndef RUN_H
#define RUN_H

#include <stddef.h>
#include <stdint.h>

#include "scenario.h"
#include "topology.h"

struct sim_outcome {
  struct sim_sessions sessions;
  struct backend_stats backend;
  struct proxy_stats proxy; /* summed over the members */
  struct proxy_stats members[SIM_MAX_MEMBERS];
  size_t nmembers;
  uint64_t ews_posts; /* EWS POSTs the clients made */
};

/* Starts the scenario's topology (simulated clock, seeded with sc->seed),
 * runs its clients, stops the topology and fills *out (release with
 * sim_outcome_free). trace receives every component's events. Returns 0,
 * or -1 with a one-line reason in err. */
int sim_scenario_run(const struct scenario *sc, struct kb_trace trace,
                     struct sim_outcome *out, char *err, size_t errlen);

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
