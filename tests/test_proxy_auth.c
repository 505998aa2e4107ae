/*
 * test_proxy_auth.c - the listener's decisions (test_proxy.h) against the
 * real Exchange: policy and auth names, start errors, the NTLM handshake
 * and KB 942638's decision table (per-connection: the bug; per-request:
 * the fix; switched on an open connection), bad credentials, a type 3
 * without its type 2, garbage tokens, Negotiate-wrapped NTLM, Kerberos
 * refused, and Basic and anonymous listeners.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "test_proxy.h"

/* ---- tests: decision table against the real backend --------------------- */

START_TEST(test_policy_names)
{
  enum proxy_policy p = PROXY_POLICY_PER_REQUEST;
  ck_assert_str_eq(proxy_policy_name(PROXY_POLICY_PER_CONNECTION),
                   "per-connection");
  ck_assert_str_eq(proxy_policy_name(PROXY_POLICY_PER_REQUEST), "per-request");
  ck_assert_int_eq(proxy_policy_parse("per-connection", &p), 0);
  ck_assert_int_eq(p, PROXY_POLICY_PER_CONNECTION);
  ck_assert_int_eq(proxy_policy_parse("per-request", &p), 0);
  ck_assert_int_eq(p, PROXY_POLICY_PER_REQUEST);
  ck_assert_int_eq(proxy_policy_parse("Per-Request", &p), -1);
  ck_assert_int_eq(proxy_policy_parse("", &p), -1);
  ck_assert_int_eq(proxy_policy_parse(NULL, &p), -1);
}
END_TEST

START_TEST(test_start_errors)
{
  struct proxy_config pc;
  struct proxy *px = (struct proxy *)1;
  struct kb_users *users = kb_users_new();
  char err[256];

  memset(&pc, 0, sizeof(pc));
  pc.users = users;
  err[0] = '\0';
  ck_assert_int_eq(proxy_start(&pc, &px, err, sizeof(err)), -1);
  ck_assert_ptr_null(px);
  ck_assert_str_eq(err, "proxy: no published server URL; set backend_url, "
                        "e.g. http://127.0.0.1:8081");
  pc.backend_url = "http://127.0.0.1:1";
  pc.bind_host = "localhost";
  ck_assert_int_eq(proxy_start(&pc, &px, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "proxy: bind_host 'localhost' is not a numeric IPv4 "
                        "or IPv6 address; use e.g. 127.0.0.1");
  pc.bind_host = NULL;
  pc.users = NULL;
  ck_assert_int_eq(proxy_start(&pc, &px, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "no user store"));
  proxy_stop(NULL);
  kb_users_free(users);
}
END_TEST

START_TEST(test_unauthenticated_401)
{
  struct kbt_env e;
  struct tc c;
  char v[256];

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "GET", "/EWS/Exchange.asmx", NULL, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(tc_header(&c, "Date", v, sizeof(v)), T_DATE);
  ck_assert_str_eq(c.body.data, "ISA ISA01: authentication required; send NTLM "
                                "credentials\n");
  /* A second try stays on the same connection: 401s are keep-alive. */
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_uint_eq(be_stats(&e).requests, 0);
  ck_assert_uint_eq(be_stats(&e).connections, 0);
  assert_stats(e.px, .connections = 1, .requests = 2);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_full_handshake)
{
  struct kbt_env e;
  struct tc c;
  char www[4096], v[256];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {"Content-Type: text/xml; charset=utf-8", NULL, NULL};
  struct ntlm_message msg;
  uint8_t want[8];
  struct backend_stats bs;

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  ck_assert_int_eq(strncmp(www, "NTLM ", 5), 0);
  kbt_ntlm_challenge(www, NTLM_SCHEME_NTLM, &msg);
  t_expected_challenge(1, 1, want);
  ck_assert_mem_eq(msg.server_challenge, want, 8);
  ck_assert_str_eq(msg.target_name, "FABRIKAM");
  ntlm_message_free(&msg);
  ck_assert_uint_eq(be_stats(&e).requests, 0);

  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[1] = t3;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_str_eq(tc_header(&c, "Via", v, sizeof(v)), "1.1 ISA01");
  ck_assert_str_eq(tc_header(&c, "Server", v, sizeof(v)), "Microsoft-IIS/7.0");
  ck_assert_ptr_nonnull(strstr(c.body.data, "GetUserOofSettingsResponse"));
  bs = be_stats(&e);
  ck_assert_uint_eq(bs.requests, 1);
  ck_assert_uint_eq(bs.ews_posts, 1);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);

  /* Replaying the type 3 on the now authenticated connection: no
   * challenge is pending, so it is refused and de-authenticates. */
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_uint_eq(be_stats(&e).requests, 1);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .auth_failed = 1, .forwarded = 1);
  tc_free(&c);
  free(t1);
  free(t3);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_authenticated_without_header)
{
  struct kbt_env e;
  struct tc c;
  const char *h[] = {"Content-Type: text/xml; charset=utf-8", NULL};

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 2);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_FORWARD_AUTHENTICATED, 1,
                         "FABRIKAM\\alice; POST forwarded with its"));
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_bad_credentials)
{
  struct kbt_env e;
  struct tc c;
  char v[256];

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", "Wr0ng-Pa55", kbt_oof_body),
                   401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  /* A wrong password and an unknown account get the very same 401: the
   * client learns nothing about which accounts exist. */
  ck_assert_str_eq(c.body.data, T_LOGIN_FAILED);
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "mallory", "x", kbt_oof_body),
                   401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(c.body.data, T_LOGIN_FAILED);
  /* Still not authenticated: a bare request is refused. */
  ck_assert_int_eq(tc_do(&c, "GET", "/EWS/Exchange.asmx", NULL, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_uint_eq(be_stats(&e).requests, 0);
  assert_stats(e.px, .connections = 1, .requests = 5, .challenges = 2,
               .auth_failed = 2);
  ck_assert(!kbt_anywhere(&e.trace, "Wr0ng-Pa55"));
  ck_assert(!kbt_anywhere(&e.trace, T_PASSWORD));
  /* The reasons are in the trace. */
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_AUTH_REFUSED, 1,
                         "NTLMv2 response of FABRIKAM\\alice does not prove "
                         "its password"));
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_AUTH_REFUSED, 1,
                         "unknown user FABRIKAM\\mallory; account: unknown "
                         "user"));
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_per_connection_bug)
{
  struct kbt_env e;
  struct tc c;
  const char *h[] = {"Accept: text/xml",
                     "Content-Type: text/xml; charset=utf-8",
                     "User-Agent: Microsoft+Office+Communicator/2.0",
                     "Host: autodiscover.fabrikam.com",
                     "Connection: Keep-Alive",
                     "Cache-Control: no-cache",
                     "Authorization: " T_CASE_TYPE1,
                     NULL};
  char v[256];
  struct backend_stats bs;

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  /* Communicator re-authenticates the next POST: type 1, no body. */
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, "", 0), CURLE_OK);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_int_eq(c.status, 500);
  ck_assert_str_eq(tc_header(&c, "Content-Type", v, sizeof(v)),
                   "application/soap+xml; charset=utf-8");
  ck_assert_str_eq(tc_header(&c, "Via", v, sizeof(v)), "1.1 ISA01");
  ck_assert_ptr_null(tc_header(&c, "WWW-Authenticate", v, sizeof(v)));
  bs = be_stats(&e);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.empty_posts, 1);
  ck_assert_uint_eq(bs.soap_faults, 1);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .reauth_skipped = 1, .forwarded = 2,
               .forwarded_empty_posts = 1);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_REAUTH_SKIPPED, 1,
                         "FABRIKAM\\alice; policy per-connection keeps that "
                         "context: NTLM type 1 not challenged, POST forwarded "
                         "without its body"));
  /* The decision is told by its code, once; no challenge on re-auth. */
  ck_assert_uint_eq(kbt_count_code(&e.trace, KB_NOTE_REAUTH_SKIPPED), 1);
  ck_assert_uint_eq(kbt_count_code(&e.trace, KB_NOTE_REAUTH_CHALLENGED), 0);
  /* The type 1 reached Exchange as the client sent it. */
  ck_assert(kbt_anywhere(&e.trace, T_CASE_TYPE1));
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_per_request_fix)
{
  struct kbt_env e;
  struct tc c;
  struct ntlm_message msg;
  uint8_t want[8];
  char www[4096];
  char *t3;
  const char *h1[] = {"Content-Type: text/xml; charset=utf-8",
                      "Authorization: " T_CASE_TYPE1, NULL};
  const char *h3[] = {"Content-Type: text/xml; charset=utf-8", NULL, NULL};
  struct backend_stats bs;

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_REQUEST, NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_int_eq(c.status, 401);
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  kbt_ntlm_challenge(www, NTLM_SCHEME_NTLM, &msg);
  t_expected_challenge(1, 2, want); /* a fresh challenge: handshake 2 */
  ck_assert_mem_eq(msg.server_challenge, want, 8);
  ntlm_message_free(&msg);
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[1] = t3;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  bs = be_stats(&e);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 2);
  assert_stats(e.px, .connections = 1, .requests = 4, .challenges = 2,
               .auth_ok = 2, .forwarded = 2);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_REAUTH_CHALLENGED, 1,
                         "authenticated as FABRIKAM\\alice"));
  ck_assert_uint_eq(kbt_count_code(&e.trace, KB_NOTE_REAUTH_CHALLENGED), 1);
  ck_assert_uint_eq(kbt_count_code(&e.trace, KB_NOTE_REAUTH_SKIPPED), 0);
  ck_assert_uint_eq(kbt_count_code(&e.trace, KB_NOTE_AUTH_OK), 2);
  free(t3);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_policy_switch_on_open_connection)
{
  struct kbt_env e;
  struct tc c;
  const char *h1[] = {"Content-Type: text/xml; charset=utf-8",
                      "Authorization: " T_CASE_TYPE1, NULL};
  char www[4096];
  char *t3;
  const char *h3[] = {NULL, NULL};

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 500);

  proxy_set_policy(e.px, PROXY_POLICY_PER_REQUEST);
  ck_assert_int_eq(proxy_get_policy(e.px), PROXY_POLICY_PER_REQUEST);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[0] = t3;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);

  proxy_set_policy(e.px, PROXY_POLICY_PER_CONNECTION);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 500);
  ck_assert_int_eq(c.connects, 0); /* all on one connection */
  ck_assert_uint_eq(be_stats(&e).empty_posts, 2);
  assert_stats(e.px, .connections = 1, .requests = 6, .challenges = 2,
               .auth_ok = 2, .reauth_skipped = 2, .forwarded = 4,
               .forwarded_empty_posts = 2);
  free(t3);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_auth_dies_with_connection)
{
  struct kbt_env e;
  struct tc c1, c2;
  char www[4096];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {NULL, NULL};

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c1, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c1, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_ptr_nonnull(tc_header(&c1, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[0] = t3;
  ck_assert_int_eq(tc_do(&c1, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c1.status, 200);
  tc_free(&c1); /* closes connection 1 */

  /* A new connection starts unauthenticated, and the old type 3 means
   * nothing on it: no challenge was sent there. */
  tc_init(&c2, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c2, "GET", "/EWS/Exchange.asmx", NULL, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c2.status, 401);
  ck_assert_int_eq(tc_do(&c2, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c2.status, 401);
  ck_assert_int_eq(c2.connects, 0);
  ck_assert_uint_eq(be_stats(&e).requests, 1);
  assert_stats(e.px, .connections = 2, .requests = 4, .challenges = 1,
               .auth_ok = 1, .auth_failed = 1, .forwarded = 1);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_AUTH_UNEXPECTED, 2, NULL));
  tc_free(&c2);
  free(t1);
  free(t3);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_type3_without_type2)
{
  struct kbt_env e;
  struct tc c, other;
  char www[4096], v[256];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {NULL, NULL};

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  /* A type 3 answering a challenge sent on another connection. */
  tc_init(&other, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&other, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_ptr_nonnull(
      tc_header(&other, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[0] = t3;
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(c.body.data,
                   "ISA ISA01: NTLM type 3 without a challenge on this "
                   "connection; start again with a type 1\n");
  ck_assert_uint_eq(be_stats(&e).requests, 0);
  assert_stats(e.px, .connections = 2, .requests = 2, .challenges = 1,
               .auth_failed = 1);
  tc_free(&c);
  tc_free(&other);
  free(t1);
  free(t3);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_garbage_tokens)
{
  struct kbt_env e;
  struct tc c;
  char www[4096], v[256];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  char *bad3;
  char *long_token;
  const char *h[] = {NULL, NULL};
  size_t i;
  /* A valid type 1 whose first byte of the signature is wrong, a type 2
   * sent by a client, a type 3 cut short, random bytes, bad base64. */
  static const char *const garbage[] = {
      "Authorization: NTLM !!!not-base64!!!",
      "Authorization: NTLM",
      "Authorization: Negotiate",
      "Authorization: Basic YWxpY2U6UGFzc3cwcmQh",
      "Authorization: NTLM AAAA",
      "Authorization: NTLM TlRMTVNTUAADAAAA",
      "Authorization: NTLM TlRMTVNTUAACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "Authorization: NTLM VGhpcyBpcyBub3QgTlRMTQ==",
      "Authorization: NTLM TlRMTVNTUAABAAAA",
      "Authorization:  ntlm   =",
      NULL};
  static const char bad_prefix[] = "ISA ISA01: unusable Authorization header: ";

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  for(i = 0; garbage[i]; i++) {
    h[0] = garbage[i];
    ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                           strlen(kbt_oof_body)),
                     CURLE_OK);
    ck_assert_msg(c.status == 401, "%s -> %ld", garbage[i], c.status);
    ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
    ck_assert_int_eq(strncmp(c.body.data, bad_prefix, strlen(bad_prefix)), 0);
    if(i)
      ck_assert_int_eq(c.connects, 0);
  }

  /* A type 3 with its offsets pointing far outside the message, after a
   * real challenge: refused, and it de-authenticates nothing twice. */
  h[0] = t1;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, "", 0), CURLE_OK);
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  {
    struct ntlm_bytes raw = {NULL, 0};
    enum ntlm_scheme s;
    char *value;
    ck_assert_int_eq(ntlm_header_parse(t3 + 15, &s, &raw, NULL, 0), NTLM_OK);
    raw.data[24] = 0xff; /* LmChallengeResponse length */
    raw.data[28] = 0xf0; /* ... and offset */
    raw.data[29] = 0xff;
    value = ntlm_header_format(NTLM_SCHEME_NTLM, raw.data, raw.len);
    bad3 = malloc(strlen(value) + 32);
    sprintf(bad3, "Authorization: %s", value);
    free(value);
    ntlm_bytes_free(&raw);
  }
  h[0] = bad3;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  /* The challenge is gone with the garbled type 3: the good one fails. */
  h[0] = t3;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);

  /* A token far over NTLM_MAX_MESSAGE. */
  long_token = malloc(20000);
  strcpy(long_token, "Authorization: NTLM ");
  memset(long_token + 20, 'A', 16000);
  long_token[16020] = '\0';
  h[0] = long_token;
  ck_assert_int_eq(tc_do(&c, "GET", "/EWS/Exchange.asmx", h, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(c.connects, 0);

  ck_assert_uint_eq(be_stats(&e).requests, 0);
  /* Garbled type 3s count as refused: "TlRMTVNTUAADAAAA", bad3, t3. */
  assert_stats(e.px, .connections = 1, .requests = 14, .challenges = 1,
               .auth_failed = 3);
  tc_free(&c);
  free(t1);
  free(t3);
  free(bad3);
  free(long_token);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_garbage_deauthenticates)
{
  struct kbt_env e;
  struct tc c;
  const char *h[] = {"Authorization: NTLM %%%", NULL};

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "GET", "/EWS/Exchange.asmx", h, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_uint_eq(be_stats(&e).requests, 1);
  assert_stats(e.px, .connections = 1, .requests = 4, .challenges = 1,
               .auth_ok = 1, .forwarded = 1);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_negotiate_wrapped)
{
  struct kbt_env e;
  struct tc c;

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx",
                                    NTLM_SCHEME_NEGOTIATE, "bob",
                                    T_BOB_PASSWORD, kbt_oof_body),
                   200);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 1);
  ck_assert(
      kbt_has_note(&e.trace, KB_NOTE_AUTH_OK, 1, "FABRIKAM\\bob (NTLMv2)"));
  /* The scheme follows the client: a Negotiate type 1 got a Negotiate
   * type 2 (t_type3 insists on it through kbt_ntlm_challenge). */
  assert_stats(e.px, .connections = 1, .requests = 2, .challenges = 1,
               .auth_ok = 1, .forwarded = 1);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST
/* ---- tests: listener authentication methods ----------------------------- */

START_TEST(test_auth_names)
{
  enum proxy_auth a = PROXY_AUTH_NONE;
  struct proxy_config pc;
  struct proxy *px = (struct proxy *)1;
  struct kb_users *users = kb_users_new();
  char err[256];

  ck_assert_str_eq(proxy_auth_name(PROXY_AUTH_INTEGRATED), "integrated");
  ck_assert_str_eq(proxy_auth_name(PROXY_AUTH_BASIC), "basic");
  ck_assert_str_eq(proxy_auth_name(PROXY_AUTH_NONE), "none");
  ck_assert_int_eq(proxy_auth_parse("integrated", &a), 0);
  ck_assert_int_eq(a, PROXY_AUTH_INTEGRATED);
  ck_assert_int_eq(proxy_auth_parse("basic", &a), 0);
  ck_assert_int_eq(a, PROXY_AUTH_BASIC);
  ck_assert_int_eq(proxy_auth_parse("none", &a), 0);
  ck_assert_int_eq(a, PROXY_AUTH_NONE);
  ck_assert_int_eq(proxy_auth_parse("ntlm", &a), -1);
  ck_assert_int_eq(proxy_auth_parse("Basic", &a), -1);
  ck_assert_int_eq(proxy_auth_parse("", &a), -1);
  ck_assert_int_eq(proxy_auth_parse(NULL, &a), -1);
  ck_assert_int_eq(a, PROXY_AUTH_NONE);

  memset(&pc, 0, sizeof(pc));
  pc.users = users;
  pc.backend_url = "http://127.0.0.1:1";
  pc.auth = (enum proxy_auth)7;
  ck_assert_int_eq(proxy_start(&pc, &px, err, sizeof(err)), -1);
  ck_assert_ptr_null(px);
  ck_assert_str_eq(err, "proxy: unknown listener authentication 7; use "
                        "integrated, basic or none");
  pc.auth = PROXY_AUTH_BASIC;
  pc.idle_timeout_ms = -1;
  ck_assert_int_eq(proxy_start(&pc, &px, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "proxy: idle_timeout_ms is negative (-1); use 0 for "
                        "no limit");
  kb_users_free(users);
}
END_TEST

/* Returns "Authorization: Negotiate <base64 of len bytes>" (caller frees);
 * ntlm_header_format is only the base64 glue here. */
static char *t_negotiate_raw(const uint8_t *bytes, size_t len)
{
  char *value = ntlm_header_format(NTLM_SCHEME_NEGOTIATE, bytes, len);
  char *line;
  ck_assert_ptr_nonnull(value);
  line = malloc(strlen(value) + 32);
  sprintf(line, "Authorization: %s", value);
  free(value);
  return line;
}

START_TEST(test_negotiate_kerberos)
{
  struct kbt_env e;
  struct tc c;
  char v[256];
  /* The start of a SPNEGO NegTokenInit offering Kerberos (GSS-API
   * application tag 0x60, SPNEGO OID 1.3.6.1.5.5.2), then filler. */
  static const uint8_t spnego[] = {0x60, 0x82, 0x01, 0x87, 0x06, 0x06, 0x2b,
                                   0x06, 0x01, 0x05, 0x05, 0x02, 0xa0, 0x82,
                                   0x01, 0x7b, 0x30, 0x82, 0x01, 0x77, 0xa0,
                                   0x30, 0x30, 0x2e, 0x06, 0x09, 0x2a, 0x86};
  uint8_t *ticket = malloc(6000);
  char *small, *big;
  const char *h[] = {NULL, NULL};
  static const char body[] =
      "ISA ISA01: Kerberos is not available on this listener; authenticate "
      "with NTLM (Negotiate with an NTLMSSP token, or NTLM)\n";

  /* A ticket larger than any NTLM message: still recognised. */
  memcpy(ticket, spnego, sizeof(spnego));
  memset(ticket + sizeof(spnego), 0x5a, 6000 - sizeof(spnego));
  small = t_negotiate_raw(spnego, sizeof(spnego));
  big = t_negotiate_raw(ticket, 6000);

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  /* On a fresh connection. */
  h[0] = small;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(c.body.data, body);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_KERBEROS, 1, "first byte 0x60"));

  /* On an authenticated connection, even under per-connection: the
   * connection is de-authenticated and nothing is forwarded. */
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  h[0] = big;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(c.body.data, body);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_KERBEROS, 0,
                         "nothing forwarded, connection de-authenticated"));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);

  /* The client falls back to NTLM inside Negotiate, on the same
   * connection, and gets its type 2 as Negotiate. */
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx",
                                    NTLM_SCHEME_NEGOTIATE, "alice", T_PASSWORD,
                                    kbt_oof_body),
                   200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_uint_eq(be_stats(&e).requests, 2);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 2);
  assert_stats(e.px, .connections = 1, .requests = 7, .challenges = 2,
               .auth_ok = 2, .forwarded = 2);
  tc_free(&c);
  kbt_env_stop(&e);
  free(small);
  free(big);
  free(ticket);
}
END_TEST

/* Returns "Authorization: Basic <base64 of len bytes of userpass>" (caller
 * frees). */
static char *t_basic(const char *userpass, size_t len)
{
  char *value =
      ntlm_header_format(NTLM_SCHEME_NTLM, (const uint8_t *)userpass, len);
  char *line;
  ck_assert_ptr_nonnull(value);
  ck_assert_int_eq(strncmp(value, "NTLM ", 5), 0);
  line = malloc(strlen(value) + 32);
  sprintf(line, "Authorization: Basic %s", value + 5);
  free(value);
  return line;
}

#define T_BASIC_OFFER "Basic realm=\"ISA01\""

START_TEST(test_basic_ok)
{
  struct kbt_env e;
  struct t_opts o;
  struct tc c;
  char v[256], note[256];
  size_t i;
  /* Each form of user name; the store is case-insensitive. */
  static const struct {
    const char *creds;
    const char *shown;
  } ok[] = {
      {"FABRIKAM\\alice:" T_PASSWORD, "FABRIKAM\\alice"},
      {"fabrikam\\ALICE:" T_PASSWORD, "FABRIKAM\\alice"},
      {"alice:" T_PASSWORD, "FABRIKAM\\alice"},
      {"alice@fabrikam.com:" T_PASSWORD, "FABRIKAM\\alice"},
      {"ALICE@FABRIKAM.COM:" T_PASSWORD, "FABRIKAM\\alice"},
      {"fabrikam.com\\alice:" T_PASSWORD, "FABRIKAM\\alice"},
      {"bob:" T_BOB_PASSWORD, "FABRIKAM\\bob"},
  };
  const char *h[] = {"Content-Type: text/xml; charset=utf-8", NULL, NULL};

  memset(&o, 0, sizeof(o));
  o.auth = PROXY_AUTH_BASIC;
  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  for(i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    char *line = t_basic(ok[i].creds, strlen(ok[i].creds));
    h[1] = line;
    ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                           strlen(kbt_oof_body)),
                     CURLE_OK);
    ck_assert_msg(c.status == 200, "%s -> %ld", ok[i].creds, c.status);
    ck_assert_ptr_null(tc_header(&c, "WWW-Authenticate", v, sizeof(v)));
    ck_assert_str_eq(tc_header(&c, "Via", v, sizeof(v)), "1.1 ISA01");
    ck_assert_ptr_nonnull(strstr(c.body.data, "GetUserOofSettingsResponse"));
    if(i)
      ck_assert_int_eq(c.connects, 0);
    snprintf(note, sizeof(note),
             "Basic credentials of %s verified; POST forwarded with its "
             "%zu-byte body",
             ok[i].shown, strlen(kbt_oof_body));
    ck_assert_msg(kbt_has_note(&e.trace, KB_NOTE_BASIC_OK, 1, note),
                  "no note: %s", note);
    free(line);
  }
  /* Basic is per request: the same connection, without credentials, is
   * refused. */
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)),
                   T_BASIC_OFFER);
  ck_assert_str_eq(c.body.data,
                   "ISA ISA01: authentication required; send Authorization: "
                   "Basic with base64(DOMAIN\\user:password)\n");
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_BASIC_REFUSED, 1,
                         "(no Authorization header)"));
  ck_assert_uint_eq(be_stats(&e).requests, 7);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 7);
  /* The request without credentials was asked for them, not refused. */
  assert_stats(e.px, .connections = 1, .requests = 8, .forwarded = 7,
               .basic_ok = 7, .basic_failed = 0);
  ck_assert(!kbt_anywhere(&e.trace, T_PASSWORD));
  ck_assert(!kbt_anywhere(&e.trace, T_BOB_PASSWORD));
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_basic_forwarded_as_is)
{
  struct kbt_env e;
  struct t_opts o;
  struct tc c;
  char *line = t_basic("FABRIKAM\\alice:" T_PASSWORD,
                       strlen("FABRIKAM\\alice:" T_PASSWORD));
  const char *h[] = {line, "X-Last: z", NULL};
  char want[512];

  memset(&o, 0, sizeof(o));
  o.auth = PROXY_AUTH_BASIC;
  t_env_start(&e, KBT_UP_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/x?y=1", h, "hello", 5), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_str_eq(c.body.data, "recorded\n");
  snprintf(want, sizeof(want),
           "Host: 127.0.0.1:%u\nAccept: */*\n%s\nX-Last: z\n"
           "Content-Type: application/x-www-form-urlencoded\n"
           "Via: 1.1 ISA01\nContent-Length: 5\n",
           (unsigned)proxy_port(e.px), line);
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_str_eq(e.rec.method, "POST");
  ck_assert_str_eq(e.rec.uri, "/x?y=1");
  ck_assert_str_eq(e.rec.headers, want);
  ck_assert_uint_eq(e.rec.body_len, 5);
  ck_assert_int_eq(memcmp(e.rec.body, "hello", 5), 0);
  pthread_mutex_unlock(&e.rec.lock);
  assert_stats(e.px, .connections = 1, .requests = 1, .forwarded = 1,
               .basic_ok = 1);
  tc_free(&c);
  kbt_env_stop(&e);
  free(line);
}
END_TEST

START_TEST(test_basic_refused)
{
  struct kbt_env e;
  struct t_opts o;
  struct tc c;
  char v[256];
  size_t i;
  char *type1 = t_type1(NTLM_SCHEME_NTLM);
  char *type1n = t_type1(NTLM_SCHEME_NEGOTIATE);
  char *long_token = malloc(6000);
  static const char nul_pass[] = "FABRIKAM\\alice:" T_PASSWORD "\0";
  static const char nul_user[] = "ali\0ce:" T_PASSWORD;
  struct {
    char *header; /* NULL: no Authorization at all */
    const char *why;
    const char *body; /* the text after "ISA ISA01: " */
  } bad[] = {
      {NULL, "no Authorization header", "authentication required"},
      {t_basic("FABRIKAM\\alice:Passw0rd", 23),
       "wrong password for FABRIKAM\\alice", NULL},
      {t_basic("FABRIKAM\\alice:Passw0rd!!", 25),
       "wrong password for FABRIKAM\\alice", NULL},
      {t_basic("FABRIKAM\\alice:passw0rd!", 24),
       "wrong password for FABRIKAM\\alice", NULL},
      {t_basic(nul_pass, sizeof(nul_pass) - 1),
       "wrong password for FABRIKAM\\alice", NULL},
      {t_basic("FABRIKAM\\alice:", 15), "wrong password for FABRIKAM\\alice",
       NULL},
      {t_basic("FABRIKAM\\mallory:x", 18),
       "no user FABRIKAM\\mallory in the user store (unknown user)", NULL},
      {t_basic("CONTOSO\\alice:" T_PASSWORD, 23),
       "no user CONTOSO\\alice in the user store (unknown domain)", NULL},
      {t_basic("alice@contoso.com:" T_PASSWORD, 27),
       "no user FABRIKAM\\alice@contoso.com in the user store (unknown "
       "user)",
       NULL},
      /* A UPN's suffix is the DNS domain, never the NetBIOS one. */
      {t_basic("alice@FABRIKAM:" T_PASSWORD, 24),
       "no user FABRIKAM\\alice@FABRIKAM in the user store (unknown user)",
       NULL},
      {t_basic("alice" T_PASSWORD, 14),
       "the Basic credentials have no ':' between user and password", ""},
      {t_basic(":" T_PASSWORD, 10),
       "the Basic credentials carry an empty, overlong or binary user name",
       ""},
      {t_basic(nul_user, sizeof(nul_user) - 1),
       "the Basic credentials carry an empty, overlong or binary user name",
       ""},
      {t_basic("FABRIKAM\\:x", 11),
       "the Basic user name has an empty user or domain part", ""},
      {t_basic("\\alice:x", 8),
       "the Basic user name has an empty user or domain part", ""},
      {strdup("Authorization: Basic !!!!"),
       "the Basic token is not valid base64", ""},
      {strdup("Authorization: Basic YWxpY2U"),
       "the Basic token is not valid base64", ""},
      {strdup("Authorization: Basic"),
       "the Basic header carries no credentials", ""},
      {strdup("Authorization: basic   "),
       "the Basic header carries no credentials", ""},
      {strdup("Authorization: Basic YWxp Y2U6"),
       "the Basic token has a blank inside", ""},
      {long_token,
       "the Basic token is 5000 characters long, over the "
       "4096-character limit",
       ""},
      {type1, "the Authorization header uses the NTLM scheme", ""},
      {type1n, "the Authorization header uses the Negotiate scheme", ""},
      {strdup("Authorization: Digest username=\"alice\""),
       "the Authorization header uses the Digest scheme", ""},
  };
  const size_t n = sizeof(bad) / sizeof(bad[0]);
  const char *h[] = {NULL, NULL};

  strcpy(long_token, "Authorization: Basic ");
  memset(long_token + 21, 'A', 5000);
  long_token[5021] = '\0';
  memset(&o, 0, sizeof(o));
  o.auth = PROXY_AUTH_BASIC;
  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  for(i = 0; i < n; i++) {
    char note[512], body[512];
    h[0] = bad[i].header;
    ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                           strlen(kbt_oof_body)),
                     CURLE_OK);
    ck_assert_msg(c.status == 401, "case %zu -> %ld", i, c.status);
    if(i)
      ck_assert_int_eq(c.connects, 0);
    ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)),
                     T_BASIC_OFFER);
    snprintf(note, sizeof(note), "(%s)", bad[i].why);
    ck_assert_msg(kbt_has_note(&e.trace, KB_NOTE_BASIC_REFUSED, 1, note),
                  "no note: %s", note);
    snprintf(body, sizeof(body),
             "ISA ISA01: %s; send Authorization: Basic with "
             "base64(DOMAIN\\user:password)\n",
             !bad[i].body   ? "Basic authentication failed: check the user "
                              "name and password"
             : *bad[i].body ? bad[i].body
                            : bad[i].why);
    ck_assert_str_eq(c.body.data, body);
  }
  ck_assert_uint_eq(be_stats(&e).requests, 0);
  /* Every case but the first presented credentials that were refused; the
   * first presented none and was only asked for them. */
  assert_stats(e.px, .connections = 1, .requests = n, .basic_failed = n - 1);
  ck_assert(!kbt_anywhere(&e.trace, "Passw0rd"));
  ck_assert(!kbt_anywhere(&e.trace, "passw0rd"));
  tc_free(&c);
  kbt_env_stop(&e);
  for(i = 0; i < n; i++)
    free(bad[i].header);
}
END_TEST

START_TEST(test_auth_none)
{
  struct kbt_env e;
  struct t_opts o;
  struct tc c;
  char v[256];
  const char *plain[] = {"Content-Type: text/xml; charset=utf-8", NULL};
  const char *h[] = {"Content-Type: text/xml; charset=utf-8",
                     "Authorization: " T_CASE_TYPE1, NULL};
  struct backend_stats bs;

  memset(&o, 0, sizeof(o));
  o.auth = PROXY_AUTH_NONE;
  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_REQUEST, &o);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", plain, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_ptr_nonnull(strstr(c.body.data, "GetUserOofSettingsResponse"));
  /* A type 1 is not answered but forwarded as is, body-less: whatever a
   * client sends reaches the published server. */
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h, "", 0), CURLE_OK);
  ck_assert_int_eq(c.status, 500);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_ptr_null(tc_header(&c, "WWW-Authenticate", v, sizeof(v)));
  ck_assert_str_eq(tc_header(&c, "Via", v, sizeof(v)), "1.1 ISA01");
  bs = be_stats(&e);
  ck_assert_uint_eq(bs.requests, 2);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.empty_posts, 1);
  assert_stats(e.px, .connections = 1, .requests = 2, .forwarded = 2,
               .forwarded_empty_posts = 1);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_ANONYMOUS, 1,
                         "POST forwarded without its body"));
  ck_assert(kbt_anywhere(&e.trace, T_CASE_TYPE1));
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

Suite *proxy_auth_suite(void)
{
  Suite *s = suite_create("auth");
  TCase *tc;

  tc = tcase_create("api");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_policy_names);
  tcase_add_test(tc, test_start_errors);
  tcase_add_test(tc, test_auth_names);
  suite_add_tcase(s, tc);

  tc = tcase_create("integrated");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_unauthenticated_401);
  tcase_add_test(tc, test_full_handshake);
  tcase_add_test(tc, test_authenticated_without_header);
  tcase_add_test(tc, test_bad_credentials);
  tcase_add_test(tc, test_per_connection_bug);
  tcase_add_test(tc, test_per_request_fix);
  tcase_add_test(tc, test_policy_switch_on_open_connection);
  tcase_add_test(tc, test_auth_dies_with_connection);
  tcase_add_test(tc, test_type3_without_type2);
  tcase_add_test(tc, test_garbage_tokens);
  tcase_add_test(tc, test_garbage_deauthenticates);
  tcase_add_test(tc, test_negotiate_wrapped);
  tcase_add_test(tc, test_negotiate_kerberos);
  suite_add_tcase(s, tc);

  tc = tcase_create("basic and none");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_basic_ok);
  tcase_add_test(tc, test_basic_forwarded_as_is);
  tcase_add_test(tc, test_basic_refused);
  tcase_add_test(tc, test_auth_none);
  suite_add_tcase(s, tc);
  return s;
}
