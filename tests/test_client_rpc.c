/*
 * test_client_rpc.c - Outlook Anywhere (client kind outlook-anywhere)
 * against the real listener and Exchange's RPC proxy (test_client.h):
 * both RPC channels open and carry their calls under both policies (the
 * listener streams RPC_IN_DATA's 1 GB body, which it would refuse whole),
 * the session ends with the client closing IN and Exchange closing OUT;
 * through a pass-through listener that splits the handshake or recycles
 * the pinned connection the channels die with a 401.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "client/client.h"
#include "kbt.h"
#include "kbt_env.h"
#include "proxy/proxy.h"
#include "test_client.h"

#define IN_LEN 1073741824u
#define A1_LEN 76u
#define B1_LEN 104u
#define CALL_LEN 34u /* a request PDU: 24 bytes of header, "kbsim echo" */

/* Runs one outlook-anywhere session with calls RPC calls against e's
 * listener and returns the client (the caller destroys it). */
static struct client *rpc_session(struct kbt_env *e, unsigned calls)
{
  struct client_config cc = cl_config(e->url, 1, "alice", KBT_ALICE_PASSWORD);
  struct client *c;

  cc.kind = CLIENT_KIND_OUTLOOK_ANYWHERE;
  cc.ews_posts = calls;
  cc.trace = kbt_trace_sink(&e->trace);
  c = cl_new(&cc);
  client_run_session(c);
  return c;
}

/* The EXCHANGE the server side origin traced for its index-th request of
 * method (from 0), copied into *out; false when there is none. */
static bool rpc_exchange(struct kbt_env *e, const char *origin,
                         const char *method, size_t index,
                         struct kbt_event *out)
{
  size_t i, seen = 0;

  for(i = 0; kbt_get(&e->trace, KB_TRACE_EXCHANGE, i, out); i++)
    if(!strcmp(out->origin, origin) && !strcmp(out->method, method) &&
       seen++ == index)
      return true;
  return false;
}

/* Both channels open and both calls come back, under RTM and the fix:
 * the listener answers each channel's plain request and type 1 itself,
 * forwards the type 3s, RPC_OUT_DATA's answer streams and RPC_IN_DATA's
 * body goes up as it comes. */
static void rpc_clean(enum proxy_policy policy)
{
  struct kbt_env e;
  struct client *c;
  const struct client_post_result *r;
  struct client_view v;
  struct proxy_stats ps;
  struct backend_stats bs;
  struct kbt_event ev;
  unsigned i;

  cl_env_start(&e, policy);
  c = rpc_session(&e, 2);
  ck_assert_uint_eq(client_results_count(c), 3);
  r = client_result(c, 0);
  ck_assert_int_eq(r->kind, CLIENT_POST_RPC_CHANNELS);
  ck_assert_msg(r->outcome == CLIENT_OK, "%s", r->detail);
  ck_assert_uint_eq(r->legs, 6);
  ck_assert_int_eq(r->leg1_status, 401);
  ck_assert_int_eq(r->final_status, 200);
  ck_assert_uint_eq(r->connection, 1); /* OUT: the answers come on it */
  for(i = 1; i < 3; i++) {
    r = client_result(c, i);
    ck_assert_int_eq(r->kind, CLIENT_POST_RPC_CALL);
    ck_assert_msg(r->outcome == CLIENT_OK, "%s", r->detail);
    ck_assert_uint_eq(r->connection, 2); /* IN: the calls go on it */
  }
  client_view(c, &v);
  ck_assert(!v.integration_error);
  ck_assert_uint_eq(v.posts_ok, 3);
  ck_assert_uint_eq(v.connections, 2);
  client_destroy(c);

  /* The client closed IN, Exchange closed OUT in turn: nothing is left
   * open on either server. */
  ck_assert_int_eq(proxy_wait_idle(e.px, 5000), 0);
  ck_assert_int_eq(backend_wait_idle(e.be, 5000), 0);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, 2);
  ck_assert_uint_eq(ps.challenges, 2);
  ck_assert_uint_eq(ps.auth_ok, 2);
  ck_assert_uint_eq(ps.auth_failed, 0);
  ck_assert_uint_eq(ps.reauth_skipped, 0);
  ck_assert_uint_eq(ps.forwarded, 2);
  ck_assert_uint_eq(ps.upstream_errors, 0);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.requests, 2);
  ck_assert_uint_eq(bs.too_large, 0);
  kbt_env_stop_servers(&e); /* nothing traces while the trace is read */

  /* What Exchange received: CONN/A1 on OUT, answered 200; CONN/B1 and
   * both calls on IN, never answered. */
  ck_assert(rpc_exchange(&e, "backend", "RPC_OUT_DATA", 0, &ev));
  ck_assert_int_eq(ev.ex.req_auth, KB_AUTH_NTLM_AUTHENTICATE);
  ck_assert_uint_eq(ev.ex.req_body_len, A1_LEN);
  ck_assert_int_eq(ev.ex.status, 200);
  /* What it sent, not the 1 GB it announced: CONN/A3, CONN/C2 and the two
   * echoes. */
  ck_assert_uint_eq(ev.ex.resp_body_len, 28 + 44 + 2 * CALL_LEN);
  ck_assert(rpc_exchange(&e, "backend", "RPC_IN_DATA", 0, &ev));
  ck_assert_int_eq(ev.ex.status, 0);
  ck_assert_uint_eq(ev.ex.req_body_len, B1_LEN + 2 * CALL_LEN);
  /* The client's view of its IN channel: what it sent of the 1 GB it
   * announced, no answer. */
  ck_assert(rpc_exchange(&e, "client 1", "RPC_IN_DATA", 2, &ev));
  ck_assert_int_eq(ev.ex.status, 0);
  ck_assert_uint_eq(ev.ex.req_body_len, B1_LEN + 2 * CALL_LEN);
  /* The listener answered the IN channel's type 3 with nothing either. */
  ck_assert(!rpc_exchange(&e, "ISA01", "RPC_IN_DATA", 2, &ev));
  ck_assert(rpc_exchange(&e, "ISA01", "RPC_OUT_DATA", 2, &ev));
  ck_assert_int_eq(ev.ex.status, 200);
  kbt_env_stop(&e);
}

START_TEST(rpc_channels_rtm)
{
  rpc_clean(PROXY_POLICY_PER_CONNECTION);
}
END_TEST

START_TEST(rpc_channels_fix)
{
  rpc_clean(PROXY_POLICY_PER_REQUEST);
}
END_TEST

/* Through a pass-through listener with defect, in front of an Exchange
 * that authenticates: the OUT channel's type 3 finds no challenge on its
 * upstream connection, Exchange answers 401 and the session ends there,
 * the user asked for the password again. */
static void rpc_dies(enum kb_defect defect)
{
  struct kbt_env e;
  struct kbt_env_opts o;
  struct backend_config bc;
  struct proxy_config pc;
  struct client *c;
  const struct client_post_result *r;
  struct backend_stats bs;

  memset(&o, 0, sizeof(o));
  memset(&bc, 0, sizeof(bc));
  memset(&pc, 0, sizeof(pc));
  bc.auth = BACKEND_AUTH_INTEGRATED;
  pc.auth = PROXY_AUTH_NONE;
  pc.defects = PROXY_DEFECT(defect);
  o.exchange = &bc;
  o.listener = &pc;
  o.debug = "T_CLIENT_TRACE";
  kbt_env_start(&e, &o);
  c = rpc_session(&e, 2);
  ck_assert_uint_eq(client_results_count(c), 1);
  r = client_result(c, 0);
  ck_assert_int_eq(r->kind, CLIENT_POST_RPC_CHANNELS);
  ck_assert_int_eq(r->outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r->legs, 3);
  ck_assert_int_eq(r->final_status, 401);
  ck_assert_msg(strstr(r->detail, "asks for the password again"), "%s",
                r->detail);
  client_destroy(c);
  ck_assert_int_eq(backend_wait_idle(e.be, 5000), 0);
  backend_stats(e.be, &bs);
  /* The plain request, the type 1 and the type 3 of RPC_OUT_DATA; the
   * type 3 on another connection than its type 1. */
  ck_assert_uint_eq(bs.requests, 3);
  ck_assert_uint_eq(bs.challenges, 1);
  ck_assert_uint_eq(bs.type3_without_challenge, 1);
  kbt_env_stop(&e);
}

START_TEST(rpc_channels_die_split)
{
  rpc_dies(KB_DEFECT_HANDSHAKE_SPLIT);
}
END_TEST

START_TEST(rpc_channels_die_recycled)
{
  rpc_dies(KB_DEFECT_PINNED_RECYCLED);
}
END_TEST

Suite *client_rpc_suite(void)
{
  Suite *s = suite_create("client_rpc");
  TCase *tc = tcase_create("rpc");

  tcase_set_timeout(tc, 30);
  tcase_add_checked_fixture(tc, NULL, kbt_env_teardown);
  tcase_add_test(tc, rpc_channels_rtm);
  tcase_add_test(tc, rpc_channels_fix);
  tcase_add_test(tc, rpc_channels_die_split);
  tcase_add_test(tc, rpc_channels_die_recycled);
  suite_add_tcase(s, tc);
  return s;
}
