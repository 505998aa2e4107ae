/*
 * test_client.c - Communicator's Outlook integration (client.h): the one
 * list of the suites, one per file, and what they share (test_client.h).
 *
 *   test_client_session.c  the bug and the fix against the real listener
 *                          and Exchange: outcomes, bytes, bodies, kinds of
 *                          NTLM response, failures before any answer,
 *                          concurrent sessions
 *   test_client_kinds.c    Outlook and one-shot clients, think time,
 *                          keep-alive limits, the balancer, Basic and
 *                          anonymous listeners, the listener's idle timeout
 *   test_client_field.c    Internet Explorer, .NET and Java under both
 *                          policies, byte for byte on both hops
 *   test_client_peer.c     a scripted peer for the answers our own servers
 *                          never give
 *
 * Every test asserts exact outcomes, statuses, counts and bytes. Nothing
 * sleeps: servers bind port 0, threads are joined, and the scripted peer
 * waits on poll() with a stop pipe.
 */
#include "test_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct client_config cl_config(const char *url, unsigned id, const char *user,
                               const char *password)
{
  struct client_config cc;

  memset(&cc, 0, sizeof(cc));
  cc.id = id;
  cc.base_url = url;
  cc.domain = "FABRIKAM";
  cc.user = user;
  cc.password = password;
  cc.clock.now_ms = kbt_now;
  cc.rng.fill = kbt_fill;
  return cc;
}

struct client *cl_new(const struct client_config *cc)
{
  struct client *c = NULL;
  char err[256] = "";

  ck_assert_msg(client_create(cc, &c, err, sizeof(err)) == 0,
                "client_create: %s", err);
  ck_assert_ptr_nonnull(c);
  return c;
}

void cl_env_start_with(struct kbt_env *e, struct proxy_config *pc)
{
  static const char *const users[] = {"FABRIKAM\\user0:" KBT_ALICE_PASSWORD,
                                      "FABRIKAM\\user1:" KBT_ALICE_PASSWORD,
                                      "FABRIKAM\\user2:" KBT_ALICE_PASSWORD,
                                      "FABRIKAM\\user3:" KBT_ALICE_PASSWORD,
                                      "FABRIKAM\\user4:" KBT_ALICE_PASSWORD,
                                      "FABRIKAM\\user5:" KBT_ALICE_PASSWORD,
                                      "FABRIKAM\\user6:" KBT_ALICE_PASSWORD,
                                      "FABRIKAM\\user7:" KBT_ALICE_PASSWORD,
                                      NULL};
  struct kbt_env_opts o;

  memset(&o, 0, sizeof(o));
  o.listener = pc;
  o.users = users;
  o.debug = "T_CLIENT_TRACE";
  kbt_env_start(e, &o);
}

void cl_env_start(struct kbt_env *e, enum proxy_policy policy)
{
  struct proxy_config pc;

  memset(&pc, 0, sizeof(pc));
  pc.policy = policy;
  cl_env_start_with(e, &pc);
}

int main(void)
{
  static Suite *(*const suites[])(void) = {
      client_session_suite, client_kinds_suite, client_field_suite,
      client_peer_suite,    client_rpc_suite,   NULL};

  return kbt_run_list(suites) ? EXIT_FAILURE : EXIT_SUCCESS;
}
