/*
 * test_client_session.c - Communicator's session against the real listener
 * and Exchange (test_client.h): KB 942638's bug and its fix, the policy
 * switched mid-session, a wrong password, the bytes of each leg as the
 * support case has them, the bodies with the configured clock and random
 * source, each kind of NTLM response, failures before any server answers,
 * bad configurations, eight sessions at once on threads, and sixteen on
 * the fibers of one worker, each on connections of its own.
 */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "client/client.h"
#include "common/kb_fiber.h"
#include "kbt.h"
#include "kbt_env.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "test_client.h"

/* The first leg of an EWS POST, byte for byte as in the support case, with
 * the canonical encoding of its type 1 token. */
static const char case_leg1[] =
    "POST /EWS/Exchange.asmx HTTP/1.1\r\n"
    "Accept: text/xml\r\n"
    "Content-Type: text/xml; charset=utf-8\r\n"
    "User-Agent: Microsoft+Office+Communicator/2.0\r\n"
    "Host: autodiscover.fabrikam.com\r\n"
    "Content-Length: 0\r\n"
    "Connection: Keep-Alive\r\n"
    "Cache-Control: no-cache\r\n"
    "Authorization: NTLM "
    "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==\r\n"
    "\r\n";

/* ---- the bug and the fix ------------------------------------------------ */

START_TEST(test_per_connection_bug)
{
  struct kbt_env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  const struct client_post_result *r;
  unsigned i;

  cl_env_start(&e, PROXY_POLICY_PER_CONNECTION);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 1, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 2);
  ck_assert_uint_eq(client_results_count(c), 3);

  /* Autodiscover: the plain first request learns NTLM from the 401, then
   * the type 1 and the type 3 authenticate the connection. */
  r = client_result(c, 0);
  ck_assert_int_eq(r->kind, CLIENT_POST_AUTODISCOVER);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->legs, 3);
  ck_assert_int_eq(r->leg1_status, 401);
  ck_assert_int_eq(r->final_status, 200);
  ck_assert(r->new_connection);
  ck_assert_int_eq(r->think_ms, 0);
  ck_assert_int_eq(r->at_ms, KBT_CASE_MS);
  ck_assert_str_eq(r->detail, "");
  for(i = 1; i <= 2; i++) {
    r = client_result(c, i);
    ck_assert_uint_eq(r->index, i);
    ck_assert_int_eq(r->kind,
                     i == 1 ? CLIENT_POST_OOF : CLIENT_POST_AVAILABILITY);
    ck_assert_int_eq(r->outcome, CLIENT_SERVER_ERROR);
    ck_assert_int_eq(r->leg1_status, 500);
    ck_assert_int_eq(r->final_status, 500);
    ck_assert_uint_eq(r->legs, 1);
    ck_assert_uint_eq(r->connection, 1);
    ck_assert(!r->new_connection);
    ck_assert_ptr_nonnull(strstr(r->detail, "KB 942638"));
  }
  ck_assert_ptr_null(client_result(c, 3));
  ck_assert_int_eq(client_step(c, NULL), 0);

  client_view(c, &v);
  ck_assert(v.autodiscover_ok);
  ck_assert(v.integration_error);
  ck_assert(v.autodiscovery_failed_logged);
  ck_assert(!v.presence_available);
  ck_assert(!v.scheduling_available);
  ck_assert_str_eq(v.ews_url,
                   "https://autodiscover.fabrikam.com/EWS/Exchange.asmx");
  ck_assert_uint_eq(v.posts_done, 3);
  ck_assert_uint_eq(v.posts_ok, 1);
  ck_assert_uint_eq(v.posts_failed, 2);
  ck_assert_uint_eq(v.connections, 1);

  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 2);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.autodiscover_ok, 1);
  ck_assert_uint_eq(bs.oof_ok, 0);
  ck_assert_uint_eq(bs.availability_ok, 0);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, 1);
  ck_assert_uint_eq(ps.reauth_skipped, 2);
  ck_assert_uint_eq(ps.challenges, 1);

  client_destroy(c);
  /* One connection, opened once and closed by client_destroy; one EXCHANGE
   * per leg; the notification once and the log line per failed POST. */
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_OPEN, "client 1"), 1);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, "client 1"), 1);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_EXCHANGE, "client 1"), 5);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_NOTE, "client 1"), 3);
  for(i = 0; i < rec.n; i++) {
    ck_assert_int_eq(rec.ev[i].hop, KB_HOP_CLIENT_PROXY);
    ck_assert_int_eq(rec.ev[i].side, KB_SIDE_CLIENT);
    ck_assert_uint_eq(rec.ev[i].conn, 1);
  }
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_per_request_fix)
{
  struct kbt_env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  unsigned i;
  size_t n = 0;

  cl_env_start(&e, PROXY_POLICY_PER_REQUEST);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 2, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  ck_assert_uint_eq(client_results_count(c), 3);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, i == 0 ? 3 : 2);
    ck_assert_int_eq(r->leg1_status, 401);
    ck_assert_int_eq(r->final_status, 200);
    ck_assert_uint_eq(r->connection, 1);
    ck_assert_str_eq(r->detail, "");
  }
  client_view(c, &v);
  ck_assert(v.autodiscover_ok);
  ck_assert(!v.integration_error);
  ck_assert(!v.autodiscovery_failed_logged);
  ck_assert(v.presence_available);
  ck_assert(v.scheduling_available);
  ck_assert_uint_eq(v.posts_done, 3);
  ck_assert_uint_eq(v.posts_ok, 3);
  ck_assert_uint_eq(v.posts_failed, 0);
  ck_assert_uint_eq(v.connections, 1);

  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  ck_assert_uint_eq(bs.autodiscover_ok, 1);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, 1);
  ck_assert_uint_eq(ps.challenges, 3);
  ck_assert_uint_eq(ps.auth_ok, 3);
  ck_assert_uint_eq(ps.reauth_skipped, 0);
  client_destroy(c);

  /* Seven legs: the plain first request with its body -> 401 naming NTLM,
   * then alternating type 1 -> 401 + type 2 and type 3 -> 200. */
  for(i = 0; i < rec.n; i++) {
    const struct kbt_event *ev = &rec.ev[i];
    if(ev->kind != KB_TRACE_EXCHANGE)
      continue;
    ck_assert_str_eq(ev->path, n < 3 ? "/autodiscover/autodiscover.xml"
                                     : "/EWS/Exchange.asmx");
    ck_assert_uint_eq(ev->conn, 1);
    if(n == 0) {
      ck_assert_int_eq(ev->ex.req_auth, KB_AUTH_NONE);
      ck_assert_uint_gt(ev->ex.req_body_len, 0);
      ck_assert_int_eq(ev->ex.status, 401);
      ck_assert_int_eq(ev->ex.resp_auth, KB_AUTH_NTLM_BARE);
    }
    else if(n % 2 == 1) {
      ck_assert_int_eq(ev->ex.req_auth, KB_AUTH_NTLM_NEGOTIATE);
      ck_assert_uint_eq(ev->ex.req_body_len, 0);
      ck_assert_int_eq(ev->ex.status, 401);
      ck_assert_int_eq(ev->ex.resp_auth, KB_AUTH_NTLM_CHALLENGE);
    }
    else {
      ck_assert_int_eq(ev->ex.req_auth, KB_AUTH_NTLM_AUTHENTICATE);
      ck_assert_uint_gt(ev->ex.req_body_len, 0);
      ck_assert_int_eq(ev->ex.status, 200);
      ck_assert_int_eq(ev->ex.resp_auth, KB_AUTH_NONE);
      ck_assert_uint_gt(ev->ex.resp_body_len, 0);
    }
    n++;
  }
  ck_assert_uint_eq(n, 7);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_NOTE, NULL), 0);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* The policy switched between two steps of one session takes effect on the
 * same connection: the fix needs no reconnect. */
START_TEST(test_policy_switch_midsession)
{
  struct kbt_env e;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  struct backend_stats bs;

  cl_env_start(&e, PROXY_POLICY_PER_CONNECTION);
  cc = cl_config(e.url, 3, "alice", KBT_ALICE_PASSWORD);
  cc.ews_posts = 4;
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_SERVER_ERROR);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_SERVER_ERROR);
  client_view(c, &v);
  ck_assert(!v.presence_available && !v.scheduling_available);
  proxy_set_policy(e.px, PROXY_POLICY_PER_REQUEST);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.kind, CLIENT_POST_OOF);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert_uint_eq(r.legs, 2);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.kind, CLIENT_POST_AVAILABILITY);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert_int_eq(client_step(c, &r), 0);
  client_view(c, &v);
  /* The notification stays; presence and scheduling came back. */
  ck_assert(v.integration_error);
  ck_assert(v.presence_available && v.scheduling_available);
  ck_assert_uint_eq(v.posts_done, 5);
  ck_assert_uint_eq(v.posts_failed, 2);
  ck_assert_uint_eq(v.connections, 1);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 2);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  client_destroy(c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_wrong_password)
{
  struct kbt_env e;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;

  cl_env_start(&e, PROXY_POLICY_PER_REQUEST);
  cc = cl_config(e.url, 4, "alice", "wrong");
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.kind, CLIENT_POST_AUTODISCOVER);
  ck_assert_int_eq(r.outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r.legs, 3);
  ck_assert_int_eq(r.leg1_status, 401);
  ck_assert_int_eq(r.final_status, 401);
  ck_assert_ptr_nonnull(strstr(r.detail, "FABRIKAM\\alice"));
  ck_assert_ptr_null(strstr(r.detail, "wrong"));
  /* No EWS URL: the session is over. */
  ck_assert_int_eq(client_step(c, &r), 0);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_view(c, &v);
  ck_assert(!v.autodiscover_ok);
  ck_assert(v.integration_error);
  ck_assert(v.autodiscovery_failed_logged);
  ck_assert(!v.presence_available && !v.scheduling_available);
  ck_assert_str_eq(v.ews_url, "");
  ck_assert_uint_eq(v.posts_done, 1);
  ck_assert_uint_eq(v.posts_failed, 1);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.requests, 0);
  ck_assert_uint_eq(bs.connections, 0);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.auth_failed, 1);
  ck_assert_uint_eq(ps.forwarded, 0);
  client_destroy(c);
  kbt_env_stop(&e);
}
END_TEST

/* ---- the bytes on the wire ---------------------------------------------- */

START_TEST(test_leg_bytes)
{
  struct kbt_env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  char expect[sizeof(case_leg1) + 64];
  const char *ad_path = "POST /autodiscover/autodiscover.xml HTTP/1.1\r\n";
  const char *leg2_prefix = "POST /EWS/Exchange.asmx HTTP/1.1\r\n"
                            "Accept: text/xml\r\n"
                            "Content-Type: text/xml; charset=utf-8\r\n"
                            "User-Agent: Microsoft+Office+Communicator/2.0\r\n"
                            "Host: autodiscover.fabrikam.com\r\n"
                            "Content-Length: ";
  size_t i, j, k, body_len;
  char *end;

  cl_env_start(&e, PROXY_POLICY_PER_REQUEST);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 5, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_destroy(c);

  /* Autodiscover leg 1, WinINet's first request: the case's headers in
   * the case's order, the real length, no Authorization; the body follows
   * as its own SEND. */
  i = kbt_find_send(&rec, "client 5", "POST /autodiscover/", 0);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_int_eq(strncmp(rec.ev[i].text, ad_path, strlen(ad_path)), 0);
  ck_assert_int_eq(strncmp(rec.ev[i].text + strlen(ad_path),
                           leg2_prefix + strlen("POST /EWS/Exchange.asmx "
                                                "HTTP/1.1\r\n"),
                           strlen(leg2_prefix) -
                               strlen("POST /EWS/Exchange.asmx HTTP/1.1\r\n")),
                   0);
  body_len = strtoul(rec.ev[i].text + strlen(ad_path) + strlen(leg2_prefix) -
                         strlen("POST /EWS/Exchange.asmx HTTP/1.1\r\n"),
                     &end, 10);
  ck_assert_uint_gt(body_len, 0);
  ck_assert_str_eq(end, "\r\nConnection: Keep-Alive\r\n"
                        "Cache-Control: no-cache\r\n\r\n");
  for(k = i + 1; k < rec.n && rec.ev[k].kind != KB_TRACE_SEND; k++)
    ;
  ck_assert_uint_lt(k, rec.n);
  ck_assert_uint_eq(rec.ev[k].len, body_len);
  ck_assert_ptr_nonnull(strstr(rec.ev[k].text, "<EMailAddress>"));

  /* Autodiscover leg 2: the case's block with the autodiscover path. */
  snprintf(expect, sizeof(expect), "%s%s", ad_path,
           case_leg1 + strlen("POST /EWS/Exchange.asmx HTTP/1.1\r\n"));
  i = kbt_find_send(&rec, "client 5", "POST /autodiscover/", i + 1);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_str_eq(rec.ev[i].text, expect);

  /* The first EWS leg 1 is the support case's request, exactly. */
  i = kbt_find_send(&rec, "client 5", "POST /EWS/", 0);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_uint_eq(rec.ev[i].len, strlen(case_leg1));
  ck_assert_str_eq(rec.ev[i].text, case_leg1);
  ck_assert_uint_eq(rec.ev[i].conn, 1);

  /* Its leg 2: same headers in the same order, the real length, the type 3
   * last, then exactly that many bytes of body. */
  j = kbt_find_send(&rec, "client 5", "POST /EWS/", i + 1);
  ck_assert_uint_lt(j, rec.n);
  ck_assert_int_eq(strncmp(rec.ev[j].text, leg2_prefix, strlen(leg2_prefix)),
                   0);
  body_len = strtoul(rec.ev[j].text + strlen(leg2_prefix), &end, 10);
  ck_assert_uint_gt(body_len, 0);
  ck_assert_int_eq(strncmp(end,
                           "\r\nConnection: Keep-Alive\r\n"
                           "Cache-Control: no-cache\r\n"
                           "Authorization: NTLM TlRMTVNTUAADAAAA",
                           strlen("\r\nConnection: Keep-Alive\r\n"
                                  "Cache-Control: no-cache\r\n"
                                  "Authorization: NTLM TlRMTVNTUAADAAAA")),
                   0);
  end = strstr(end, "\r\n\r\n");
  ck_assert_ptr_nonnull(end);
  ck_assert_uint_eq((size_t)(end + 4 - rec.ev[j].text), rec.ev[j].len);
  ck_assert_ptr_null(strstr(rec.ev[j].text, "Expect"));
  /* The body follows as its own SEND. */
  for(k = j + 1; k < rec.n && rec.ev[k].kind != KB_TRACE_SEND; k++)
    ;
  ck_assert_uint_lt(k, rec.n);
  ck_assert_uint_eq(rec.ev[k].len, body_len);
  ck_assert_ptr_nonnull(strstr(rec.ev[k].text, "GetUserOofSettingsRequest"));
  ck_assert_ptr_nonnull(strstr(rec.ev[k].text,
                               "xmlns=\"http://schemas.microsoft.com/exchange/"
                               "services/2006/messages\""));
  ck_assert_ptr_nonnull(
      strstr(rec.ev[k].text, "<t:Address>alice@fabrikam.com</t:Address>"));
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* Bodies: the autodiscover request schema, the contacts, the time window
 * from the configured clock, and client challenges drawn under stable
 * labels from the configured random source. */
START_TEST(test_bodies_clock_rng)
{
  static const char *const contacts[] = {"dave@fabrikam.com",
                                         "erin&co@fabrikam.com", NULL};
  struct kbt_env e;
  struct kbt_trace rec;
  struct kbt_rng labels;
  struct client_config cc;
  struct client *c;
  size_t i;
  const char *ad;
  const char *av;

  cl_env_start(&e, PROXY_POLICY_PER_REQUEST);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  kbt_rng_init(&labels, 0);
  cc = cl_config(e.url, 7, "user3", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.rng = kbt_rng(&labels);
  cc.contacts = contacts;
  cc.email = "user3@contoso.com";
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_destroy(c);

  ck_assert_uint_eq(labels.nlabels, 3);
  ck_assert_str_eq(labels.labels[0], "client/7/post/0/client-challenge");
  ck_assert_str_eq(labels.labels[1], "client/7/post/1/client-challenge");
  ck_assert_str_eq(labels.labels[2], "client/7/post/2/client-challenge");

  /* The autodiscover body is the second SEND of the autodiscover leg 3
   * (the type 3). */
  i = kbt_find_send(&rec, "client 7", "POST /autodiscover/", 0);
  i = kbt_find_send(&rec, "client 7", "POST /autodiscover/", i + 1);
  i = kbt_find_send(&rec, "client 7", "POST /autodiscover/", i + 1);
  i = kbt_find_send(&rec, "client 7", "<?xml", i + 1);
  ck_assert_uint_lt(i, rec.n);
  ad = rec.ev[i].text;
  ck_assert_ptr_nonnull(strstr(ad, "<Autodiscover xmlns=\"http://schemas."
                                   "microsoft.com/exchange/autodiscover/"
                                   "outlook/requestschema/2006\">"));
  ck_assert_ptr_nonnull(strstr(ad, "<EMailAddress>user3@contoso.com"
                                   "</EMailAddress>"));
  ck_assert_ptr_nonnull(
      strstr(ad, "<AcceptableResponseSchema>http://schemas.microsoft.com/"
                 "exchange/autodiscover/outlook/responseschema/2006a"
                 "</AcceptableResponseSchema>"));

  i = kbt_find_send(&rec, "client 7", "<?xml", i + 1); /* OOF */
  i = kbt_find_send(&rec, "client 7", "<?xml", i + 1); /* availability */
  ck_assert_uint_lt(i, rec.n);
  av = rec.ev[i].text;
  ck_assert_ptr_nonnull(strstr(av, "GetUserAvailabilityRequest"));
  ck_assert_ptr_nonnull(strstr(av, "<t:Address>dave@fabrikam.com"));
  /* The contact is escaped by libxml2, not pasted. */
  ck_assert_ptr_nonnull(strstr(av, "<t:Address>erin&amp;co@fabrikam.com"));
  ck_assert_ptr_nonnull(
      strstr(av, "<t:StartTime>2009-03-17T00:00:00</t:StartTime>"));
  ck_assert_ptr_nonnull(
      strstr(av, "<t:EndTime>2009-03-18T00:00:00</t:EndTime>"));
  ck_assert_ptr_nonnull(strstr(av, "<MailboxDataArray>"));

  kbt_rng_free(&labels);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

static const enum ntlm_response_kind kinds[] = {
    NTLM_RESPONSE_V2, NTLM_RESPONSE_V1, NTLM_RESPONSE_V1_ESS};

START_TEST(test_ntlm_kinds)
{
  struct kbt_env e;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;

  cl_env_start(&e, PROXY_POLICY_PER_REQUEST);
  cc = cl_config(e.url, 8, "user1", KBT_ALICE_PASSWORD);
  cc.ntlm_kind = kinds[_i];
  c = cl_new(&cc);
  ck_assert_msg(client_run_session(c) == 0, "%s: %s",
                ntlm_response_kind_name(kinds[_i]),
                client_result(c, 0)->detail);
  client_view(c, &v);
  ck_assert(v.presence_available && v.scheduling_available);
  ck_assert_uint_eq(v.posts_ok, 3);
  client_destroy(c);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.auth_ok, 3);
  ck_assert_uint_eq(ps.auth_failed, 0);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  kbt_env_stop(&e);
}
END_TEST

/* ---- failures before any server answers -------------------------------- */

START_TEST(test_not_listening)
{
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  char url[64], where[32];
  uint16_t port;
  /* Connecting to its port is refused, and no other test can take the
   * port meanwhile. */
  int fd = rc_loopback(false, &port);

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
  snprintf(where, sizeof(where), "port %u", port);

  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(url, 9, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_TRANSPORT_ERROR);
  ck_assert_uint_eq(r.legs, 1);
  ck_assert_int_eq(r.leg1_status, 0);
  ck_assert_int_eq(r.final_status, 0);
  ck_assert_uint_eq(r.connection, 0);
  ck_assert_msg(strstr(r.detail, "127.0.0.1") && strstr(r.detail, where) &&
                    strstr(r.detail, "check that the listener is running"),
                "detail: %s", r.detail);
  ck_assert_int_eq(client_step(c, &r), 0);
  client_view(c, &v);
  ck_assert(v.integration_error && v.autodiscovery_failed_logged);
  ck_assert(!v.autodiscover_ok);
  ck_assert_uint_eq(v.connections, 0);
  client_destroy(c);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_OPEN, NULL), 0);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, NULL), 0);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_EXCHANGE, NULL), 1);
  ck_assert_int_eq(rec.ev[0].kind, KB_TRACE_EXCHANGE);
  ck_assert_int_eq(rec.ev[0].ex.status, 0);
  kbt_trace_free(&rec);
  close(fd);
}
END_TEST

START_TEST(test_create_errors)
{
  struct client_config cc;
  struct client *c = (struct client *)&cc; /* must be reset to NULL */
  char err[256];

  cc = cl_config(NULL, 1, "alice", KBT_ALICE_PASSWORD);
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_ptr_null(c);
  ck_assert_str_eq(err, "client: no listener URL; set base_url, e.g. "
                        "http://127.0.0.1:8080");
  cc = cl_config("ftp://127.0.0.1/", 1, "alice", KBT_ALICE_PASSWORD);
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "'ftp://127.0.0.1/' is not an http(s) "
                                    "URL"));
  cc = cl_config("http://127.0.0.1:1", 1, "alice", NULL);
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: no credentials; set domain, user and "
                        "password");
  cc = cl_config("http://127.0.0.1:1", 1, "alice", KBT_ALICE_PASSWORD);
  cc.host = "evil\r\nX-Injected: 1";
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: host must be a non-empty name without "
                        "control characters");
  cc = cl_config("http://127.0.0.1:1", 1, "alice", KBT_ALICE_PASSWORD);
  cc.ews_posts = 100001;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "ews_posts 100001 is above the limit"));
  client_destroy(NULL);
}
END_TEST

/* ---- many clients at once ----------------------------------------------- */

#define TEST_THREADS 8
#define TEST_THREAD_EWS 4

struct worker {
  pthread_t thread;
  const char *url;
  struct kb_trace trace;
  unsigned id;
  unsigned failed;
  struct client_view view;
  struct client_post_result results[1 + TEST_THREAD_EWS];
  size_t nresults;
};

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  char user[16];
  char err[256];
  struct client *c = NULL;
  struct client_config cc;
  size_t i;
  snprintf(user, sizeof(user), "user%u", w->id);
  cc = cl_config(w->url, w->id, user, KBT_ALICE_PASSWORD);
  cc.ews_posts = TEST_THREAD_EWS;
  cc.trace = w->trace;
  if(client_create(&cc, &c, err, sizeof(err)))
    return NULL;
  w->failed = client_run_session(c);
  client_view(c, &w->view);
  w->nresults = client_results_count(c);
  for(i = 0; i < w->nresults && i < 1 + TEST_THREAD_EWS; i++)
    w->results[i] = *client_result(c, i);
  client_destroy(c);
  return NULL;
}

START_TEST(test_concurrent_clients)
{
  enum proxy_policy policy =
      _i ? PROXY_POLICY_PER_REQUEST : PROXY_POLICY_PER_CONNECTION;
  struct kbt_env e;
  struct kbt_trace rec;
  struct worker w[TEST_THREADS];
  struct backend_stats bs;
  struct proxy_stats ps;
  unsigned i, j;

  cl_env_start(&e, policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  memset(w, 0, sizeof(w));
  for(i = 0; i < TEST_THREADS; i++) {
    w[i].url = e.url;
    w[i].id = i;
    w[i].trace = kbt_trace_sink(&rec);
    ck_assert_int_eq(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
  }
  for(i = 0; i < TEST_THREADS; i++)
    ck_assert_int_eq(pthread_join(w[i].thread, NULL), 0);

  for(i = 0; i < TEST_THREADS; i++) {
    char origin[32];
    ck_assert_uint_eq(w[i].nresults, 1 + TEST_THREAD_EWS);
    ck_assert_uint_eq(w[i].view.connections, 1);
    ck_assert_uint_eq(w[i].view.posts_done, 1 + TEST_THREAD_EWS);
    ck_assert_int_eq(w[i].results[0].outcome, CLIENT_OK);
    for(j = 1; j <= TEST_THREAD_EWS; j++) {
      const struct client_post_result *r = &w[i].results[j];
      ck_assert_uint_eq(r->connection, 1);
      if(policy == PROXY_POLICY_PER_REQUEST) {
        ck_assert_int_eq(r->outcome, CLIENT_OK);
        ck_assert_uint_eq(r->legs, 2);
      }
      else {
        ck_assert_int_eq(r->outcome, CLIENT_SERVER_ERROR);
        ck_assert_uint_eq(r->legs, 1);
      }
    }
    ck_assert_uint_eq(w[i].failed,
                      policy == PROXY_POLICY_PER_REQUEST ? 0 : TEST_THREAD_EWS);
    ck_assert(w[i].view.presence_available ==
              (policy == PROXY_POLICY_PER_REQUEST));
    snprintf(origin, sizeof(origin), "client %u", i);
    ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_OPEN, origin), 1);
    ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, origin), 1);
    ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_EXCHANGE, origin),
                      policy == PROXY_POLICY_PER_REQUEST
                          ? 1 + 2 * (1 + TEST_THREAD_EWS)
                          : 3 + TEST_THREAD_EWS);
  }
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, TEST_THREADS);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.autodiscover_ok, TEST_THREADS);
  if(policy == PROXY_POLICY_PER_REQUEST) {
    ck_assert_uint_eq(bs.empty_posts, 0);
    ck_assert_uint_eq(bs.oof_ok, TEST_THREADS * TEST_THREAD_EWS / 2);
    ck_assert_uint_eq(bs.availability_ok, TEST_THREADS * TEST_THREAD_EWS / 2);
  }
  else {
    ck_assert_uint_eq(bs.empty_posts, TEST_THREADS * TEST_THREAD_EWS);
    ck_assert_uint_eq(bs.oof_ok, 0);
    ck_assert_uint_eq(ps.reauth_skipped, TEST_THREADS * TEST_THREAD_EWS);
  }
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* Sessions on fibers of one worker share its libcurl multi handle
 * (client/perform.c); each must keep its connections to itself all the
 * same. Every session logs on as the same user, so that libcurl's own
 * check (an NTLM connection goes only to the same credentials) would not
 * keep them apart: with one connection cache for all, a session whose
 * transfer starts while another's connection sits idle takes that one,
 * and the listener counts fewer connections than sessions. */
#define TEST_FIBERS 16

struct fiber_session {
  const char *url;
  struct kb_trace trace;
  struct client_view view;
  struct client_post_result results[1 + TEST_THREAD_EWS];
  size_t nresults;
  unsigned failed;
};

/* kb_fiber_fn: session i of the array arg, on a fiber. */
static void fiber_session_main(void *arg, size_t i)
{
  struct fiber_session *fs = (struct fiber_session *)arg + i;
  struct client *c = NULL;
  struct client_config cc;
  char err[256];
  size_t j;

  cc = cl_config(fs->url, (unsigned)i, "user0", KBT_ALICE_PASSWORD);
  cc.ews_posts = TEST_THREAD_EWS;
  cc.trace = fs->trace;
  if(client_create(&cc, &c, err, sizeof(err)))
    return;
  fs->failed = client_run_session(c);
  client_view(c, &fs->view);
  fs->nresults = client_results_count(c);
  for(j = 0; j < fs->nresults && j < 1 + TEST_THREAD_EWS; j++)
    fs->results[j] = *client_result(c, j);
  client_destroy(c);
}

START_TEST(test_fiber_clients_own_connections)
{
  struct kbt_env e;
  struct kbt_trace rec;
  struct fiber_session fs[TEST_FIBERS];
  struct kb_fiber_stats stats;
  struct proxy_stats ps;
  char err[256];
  unsigned i, j;

  cl_env_start(&e, PROXY_POLICY_PER_REQUEST);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  memset(fs, 0, sizeof(fs));
  for(i = 0; i < TEST_FIBERS; i++) {
    fs[i].url = e.url;
    fs[i].trace = kbt_trace_sink(&rec);
  }
  /* One worker: every session in the same multi handle. */
  ck_assert_msg(kb_fiber_run(TEST_FIBERS, fiber_session_main, fs, 1, &stats,
                             err, sizeof(err)) == 0,
                "%s", err);
  ck_assert_uint_eq(stats.threads, 1);
  for(i = 0; i < TEST_FIBERS; i++) {
    char origin[32];
    ck_assert_uint_eq(fs[i].nresults, 1 + TEST_THREAD_EWS);
    ck_assert_uint_eq(fs[i].failed, 0);
    ck_assert_uint_eq(fs[i].view.connections, 1);
    for(j = 0; j <= TEST_THREAD_EWS; j++) {
      ck_assert_int_eq(fs[i].results[j].outcome, CLIENT_OK);
      ck_assert_uint_eq(fs[i].results[j].connection, 1);
    }
    snprintf(origin, sizeof(origin), "client %u", i);
    ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_OPEN, origin), 1);
    ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, origin), 1);
    ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_EXCHANGE, origin),
                      1 + 2 * (1 + TEST_THREAD_EWS));
  }
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, TEST_FIBERS);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* ---- kinds by name ---------------------------------------------------------
 */

START_TEST(test_kind_names)
{
  static const char *const names[] = {
      "communicator", "outlook", "one-shot",        "ie",
      "dotnet",       "java",    "outlook-anywhere"};
  struct client_config cc;
  struct client *c = NULL;
  enum client_kind k;
  char err[256];
  int i;

  for(i = 0; i < 7; i++) {
    ck_assert_str_eq(client_kind_name((enum client_kind)i), names[i]);
    k = (enum client_kind)99;
    ck_assert_int_eq(client_kind_parse(names[i], &k), 0);
    ck_assert_int_eq(k, i);
  }
  ck_assert_str_eq(client_kind_name((enum client_kind)7), "unknown");
  k = CLIENT_KIND_OUTLOOK;
  ck_assert_int_eq(client_kind_parse("Outlook", &k), -1);
  ck_assert_int_eq(client_kind_parse("", &k), -1);
  ck_assert_int_eq(client_kind_parse(NULL, &k), -1);
  ck_assert_int_eq(k, CLIENT_KIND_OUTLOOK);

  cc = cl_config("http://127.0.0.1:1", 1, "alice", KBT_ALICE_PASSWORD);
  cc.kind = (enum client_kind)7;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: unknown client kind; use communicator, "
                        "outlook, one-shot, ie, dotnet, java or "
                        "outlook-anywhere");
  /* connection_sharing is dotnet's alone. */
  cc = cl_config("http://127.0.0.1:1", 1, "alice", KBT_ALICE_PASSWORD);
  cc.kind = CLIENT_KIND_JAVA;
  cc.connection_sharing = true;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: connection_sharing is .NET's "
                        "UnsafeAuthenticatedConnectionSharing; use it with "
                        "the dotnet kind");
  ck_assert_ptr_null(c);
  cc = cl_config("http://127.0.0.1:1", 1, "alice", KBT_ALICE_PASSWORD);
  cc.think_min_ms = 10;
  cc.think_max_ms = 5;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: think time must satisfy 0 <= think_min_ms "
                        "<= think_max_ms");
  cc.think_min_ms = -1;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  cc = cl_config("http://127.0.0.1:1", 1, "alice", KBT_ALICE_PASSWORD);
  cc.idle_timeout_ms = -5;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: idle_timeout_ms must be 0 (no limit) or "
                        "positive");
  ck_assert_ptr_null(c);
}
END_TEST

Suite *client_session_suite(void)
{
  Suite *s = suite_create("session");
  TCase *tc = tcase_create("session");

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_per_connection_bug);
  tcase_add_test(tc, test_fiber_clients_own_connections);
  tcase_add_test(tc, test_per_request_fix);
  tcase_add_test(tc, test_policy_switch_midsession);
  tcase_add_test(tc, test_wrong_password);
  tcase_add_test(tc, test_leg_bytes);
  tcase_add_test(tc, test_bodies_clock_rng);
  tcase_add_loop_test(tc, test_ntlm_kinds, 0,
                      (int)(sizeof(kinds) / sizeof(kinds[0])));
  tcase_add_test(tc, test_not_listening);
  tcase_add_test(tc, test_create_errors);
  tcase_add_loop_test(tc, test_concurrent_clients, 0, 2);
  tcase_add_test(tc, test_kind_names);
  suite_add_tcase(s, tc);
  return s;
}
