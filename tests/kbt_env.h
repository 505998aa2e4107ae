/*
 * kbt_env.h - one environment starter for the suites that drive the real
 * listener in front of the real Exchange stand-in on loopback
 * (test_hostile, test_abuse): the case's users, the fixed clock and random
 * source of kbt.h, and one trace recorder both components write into.
 */
#ifndef TESTS_KBT_ENV_H
#define TESTS_KBT_ENV_H

#include "backend/backend.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "proxy/proxy.h"

/* The case's two accounts, in every environment. */
#define KBT_ALICE_PASSWORD "Passw0rd!"
#define KBT_BOB_PASSWORD "Hunter2?"

struct kbt_env {
  struct kb_users *users; /* FABRIKAM\alice and FABRIKAM\bob */
  struct backend *be;     /* NULL when the listener forwards elsewhere */
  struct proxy *px;
  struct kbt_trace trace;
  char backend_url[64];
};

/* Starts Exchange from bc (unless bc is NULL: then pc->backend_url must
 * name the upstream) and the listener from pc in front of it. The caller
 * zeroes both configurations and sets what its tests vary; this sets the
 * clock, the random source, the trace, the users and the backend URL.
 * debug names an environment variable that prints the trace (kbt.h).
 * Fails the running test when anything does not start. */
void kbt_env_start(struct kbt_env *e, struct backend_config *bc,
                   struct proxy_config *pc, const char *debug);

/* Stops and frees what kbt_env_start started. */
void kbt_env_stop(struct kbt_env *e);

#endif /* TESTS_KBT_ENV_H */
