/*
 * test_client.h - what the files of test_client share: Communicator's
 * configuration as the tests start it, and the real listener in front of
 * the real Exchange (kbt_env.h) with the accounts the sessions use.
 */
#ifndef TESTS_TEST_CLIENT_H
#define TESTS_TEST_CLIENT_H

#include <check.h>

#include "client/client.h"
#include "kbt.h"
#include "kbt_env.h"

/* A client configuration for session id as FABRIKAM\user against url,
 * on the fixed clock and kbt.h's random source (seed 0). */
struct client_config cl_config(const char *url, unsigned id, const char *user,
                               const char *password);

/* client_create, failing the test when it fails. */
struct client *cl_new(const struct client_config *cc);

/* The listener with policy in front of Exchange; besides alice and bob,
 * FABRIKAM\user0 to user7 with alice's password (the concurrent sessions'
 * accounts). */
void cl_env_start(struct kbt_env *e, enum proxy_policy policy);

/* The same with the listener configured from pc (zeroed but for what the
 * test varies). */
void cl_env_start_with(struct kbt_env *e, struct proxy_config *pc);

/* The suites, one per file. */
Suite *client_session_suite(void);
Suite *client_kinds_suite(void);
Suite *client_field_suite(void);
Suite *client_peer_suite(void);
Suite *client_rpc_suite(void);

#endif /* TESTS_TEST_CLIENT_H */
