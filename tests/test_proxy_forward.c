/*
 * test_proxy_forward.c - what the listener forwards (test_proxy.h): a
 * request byte for byte to a recording upstream, responses and requests
 * over the size limit, a client that half-closes, an upstream nobody
 * serves or that answers too late, and the trace of a whole exchange.
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

/* ---- tests: forwarding against the recording upstream ------------------- */

START_TEST(test_forward_exact)
{
  struct kbt_env e;
  struct tc c;
  char www[4096], v[256], want[8192];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {"Accept: text/xml",
                      "Content-Type: text/xml; charset=utf-8",
                      "User-Agent: Microsoft+Office+Communicator/2.0",
                      "Host: autodiscover.fabrikam.com",
                      "Connection: Keep-Alive, X-Hop",
                      "X-Hop: secret",
                      "Cache-Control: no-cache",
                      "Proxy-Authorization: Basic Zm9vOmJhcg==",
                      "TE: trailers",
                      NULL,
                      "X-Empty;",
                      "X-Last: z",
                      NULL};
  const char *no_accept[] = {"Accept:", NULL}; /* libcurl's default off */

  t_env_start(&e, KBT_UP_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[9] = t3;
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx?a=1&b=%20x", h3, "hello", 5),
      CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_str_eq(c.body.data, "recorded\n");
  ck_assert_str_eq(tc_header(&c, "X-Upstream", v, sizeof(v)), "recorder");
  ck_assert_str_eq(tc_header(&c, "Via", v, sizeof(v)), "1.1 ISA01");
  ck_assert_str_eq(tc_header(&c, "Date", v, sizeof(v)),
                   "Wed, 18 Mar 2009 08:00:00 GMT");
  ck_assert_ptr_null(tc_header(&c, "Keep-Alive", v, sizeof(v)));

  pthread_mutex_lock(&e.rec.lock);
  ck_assert_uint_eq(e.rec.requests, 1);
  ck_assert_str_eq(e.rec.method, "POST");
  ck_assert_str_eq(e.rec.uri, "/EWS/Exchange.asmx?a=1&b=%20x");
  ck_assert_uint_eq(e.rec.body_len, 5);
  ck_assert_mem_eq(e.rec.body, "hello", 5);
  /* The test client (libcurl) sends Host first whatever its place in the
   * list, so that is the order the proxy received and must keep. */
  snprintf(want, sizeof(want),
           "Host: autodiscover.fabrikam.com\n"
           "Accept: text/xml\n"
           "Content-Type: text/xml; charset=utf-8\n"
           "User-Agent: Microsoft+Office+Communicator/2.0\n"
           "Cache-Control: no-cache\n"
           "%s\n"
           "X-Empty: \n"
           "X-Last: z\n"
           "Via: 1.1 ISA01\n"
           "Content-Length: 5\n",
           t3);
  ck_assert_str_eq(e.rec.headers, want);
  pthread_mutex_unlock(&e.rec.lock);

  /* GET keeps its query; no Accept from the client means none upstream. */
  ck_assert_int_eq(tc_do(&c, "GET", "/autodiscover/x?wsdl", no_accept, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_str_eq(e.rec.method, "GET");
  ck_assert_str_eq(e.rec.uri, "/autodiscover/x?wsdl");
  snprintf(want, sizeof(want), "Host: 127.0.0.1:%u\nVia: 1.1 ISA01\n",
           (unsigned)proxy_port(e.px));
  ck_assert_str_eq(e.rec.headers, want);
  ck_assert_uint_eq(e.rec.body_len, 0);
  pthread_mutex_unlock(&e.rec.lock);

  /* HEAD and a custom method go out as such. */
  ck_assert_int_eq(tc_do(&c, "HEAD", "/h", NULL, NULL, 0), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_str_eq(e.rec.method, "HEAD");
  pthread_mutex_unlock(&e.rec.lock);
  ck_assert_int_eq(tc_do(&c, "DELETE", "/d", NULL, NULL, 0), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_str_eq(e.rec.method, "DELETE");
  ck_assert_uint_eq(e.rec.requests, 4);
  /* One upstream connection served the whole client connection. */
  ck_assert_uint_eq(e.rec.connections, 1);
  pthread_mutex_unlock(&e.rec.lock);
  ck_assert_int_eq(c.connects, 0);

  assert_stats(e.px, .connections = 1, .requests = 5, .challenges = 1,
               .auth_ok = 1, .forwarded = 4);
  tc_free(&c);
  free(t1);
  free(t3);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_response_too_big)
{
  struct kbt_env e;
  struct tc c;
  char want[256];

  t_env_start(&e, KBT_UP_RECORDER, NULL, 1024, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/x", NTLM_SCHEME_NTLM, "alice",
                                    T_PASSWORD, "small"),
                   200);
  ck_assert_int_eq(tc_do(&c, "GET", "/big", NULL, NULL, 0), CURLE_OK);
  ck_assert_int_eq(c.status, 502);
  snprintf(want, sizeof(want),
           "ISA ISA01: the response of the published server "
           "http://127.0.0.1:%u is larger than the 1024-byte limit; raise "
           "max_body\n",
           (unsigned)e.rec.port);
  ck_assert_str_eq(c.body.data, want);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2, .upstream_errors = 1);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

/* Opens a raw connection to the proxy, sends text, half-closes (SHUT_WR)
 * and reads until the proxy closes. Fails when the proxy has not closed
 * within 5 s (its connection timeout is 30 s: only noticing the client's
 * FIN closes it sooner). Returns what came back (caller frees). */
static char *t_half_close(uint16_t port, const char *text)
{
  struct sockaddr_in sin;
  struct timeval tv = {5, 0};
  struct kb_buf got;
  char buf[4096];
  ssize_t n;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  ck_assert_int_eq(send(fd, text, strlen(text), 0), (ssize_t)strlen(text));
  ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
  kb_buf_init(&got, 1 << 20);
  kb_buf_add(&got, "", 0);
  while((n = recv(fd, buf, sizeof(buf), 0)) > 0)
    kb_buf_add(&got, buf, (size_t)n);
  ck_assert_msg(n == 0,
                "the proxy did not close the connection within 5 s "
                "(recv: %s)",
                strerror(errno));
  close(fd);
  return kb_buf_steal(&got, NULL);
}

/* A client that sends a whole request and half-closes still gets its
 * answer (the proxy shuts down a connection whose client has gone only
 * once nothing is left to send it); one that half-closes in the middle of
 * its body gets nothing, and the connection is closed at once, not at
 * the 30 s connection timeout. */
START_TEST(test_half_closed_client)
{
  struct kbt_env e;
  char *got;

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  got = t_half_close(proxy_port(e.px), "POST /EWS/Exchange.asmx HTTP/1.1\r\n"
                                       "Host: x\r\nContent-Length: 0\r\n\r\n");
  ck_assert_msg(!strncmp(got, "HTTP/1.1 401 ", 13), "got: %.60s", got);
  free(got);
  got = t_half_close(proxy_port(e.px), "POST /EWS/Exchange.asmx HTTP/1.1\r\n"
                                       "Host: x\r\nContent-Length: 100\r\n\r\n"
                                       "only part of the body");
  ck_assert_str_eq(got, "");
  free(got);
  ck_assert_uint_eq(be_stats(&e).requests, 0);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_request_too_big)
{
  struct kbt_env e;
  struct tc c;
  char *big = malloc(5000);
  const char *h[] = {"Content-Type: application/octet-stream", NULL};

  memset(big, 'b', 5000);
  t_env_start(&e, KBT_UP_RECORDER, NULL, 1024, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/x", NTLM_SCHEME_NTLM, "alice",
                                    T_PASSWORD, "small"),
                   200);
  ck_assert_int_eq(tc_do(&c, "POST", "/x", h, big, 5000), CURLE_OK);
  ck_assert_int_eq(c.status, 413);
  ck_assert_str_eq(c.body.data, "ISA ISA01: the request body is larger than "
                                "the 1024-byte limit; send a smaller body\n");
  /* Refused on its Content-Length, before the body was read: the unread
   * body makes the connection unusable, so it closed ("Connection:
   * close"), and the next request starts a new, unauthenticated one. */
  ck_assert_int_eq(t_handshake_post(&c, "/x", NTLM_SCHEME_NTLM, "alice",
                                    T_PASSWORD, "small again"),
                   200);
  ck_assert_uint_eq(kbt_recorder_requests(&e.rec), 2);
  assert_stats(e.px, .connections = 2, .requests = 5, .challenges = 2,
               .auth_ok = 2, .forwarded = 2);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_BODY_TOO_LARGE, 0,
                         "5000 bytes is over the 1024-byte limit"));
  tc_free(&c);
  free(big);
  kbt_env_stop(&e);
}
END_TEST

/* ---- tests: upstream failures ------------------------------------------- */

START_TEST(test_backend_unreachable)
{
  struct kbt_env e;
  struct tc c;
  uint16_t port;
  int fd = rc_loopback(false, &port);
  char url[64], want[128];

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  t_env_start(&e, KBT_UP_URL, url, 0, 0, PROXY_POLICY_PER_CONNECTION, NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   502);
  snprintf(want, sizeof(want),
           "ISA ISA01: the published server %s could not be reached: ", url);
  ck_assert_int_eq(strncmp(c.body.data, want, strlen(want)), 0);
  ck_assert_uint_gt(strlen(c.body.data), strlen(want) + 5);
  ck_assert_ptr_eq(strchr(c.body.data, '\n'), c.body.data + c.body.len - 1);
  assert_stats(e.px, .connections = 1, .requests = 2, .challenges = 1,
               .auth_ok = 1, .forwarded = 1, .upstream_errors = 1);
  tc_free(&c);
  kbt_env_stop(&e);
  close(fd);
}
END_TEST

START_TEST(test_backend_timeout)
{
  struct kbt_env e;
  struct tc c;
  uint16_t port;
  int fd = rc_loopback(true, &port);
  char url[64], want[160];

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  t_env_start(&e, KBT_UP_URL, url, 0, 150, PROXY_POLICY_PER_CONNECTION, NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   504);
  snprintf(want, sizeof(want),
           "ISA ISA01: the published server %s did not answer within 150 "
           "ms: ",
           url);
  ck_assert_int_eq(strncmp(c.body.data, want, strlen(want)), 0);
  assert_stats(e.px, .connections = 1, .requests = 2, .challenges = 1,
               .auth_ok = 1, .forwarded = 1, .upstream_errors = 1);
  tc_free(&c);
  kbt_env_stop(&e);
  close(fd);
}
END_TEST

/* ---- tests: trace, concurrency, stop ------------------------------------ */

START_TEST(test_trace)
{
  struct kbt_env e;
  struct tc c;
  size_t i;
  const char *h1[] = {"Authorization: " T_CASE_TYPE1, NULL};
  int exchanges[4] = {0};

  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 500);
  tc_free(&c);
  kbt_env_stop_servers(&e); /* closes everything: the trace is complete */

  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, 1),
                    1);
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, 1),
                    1);
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, 1), 3);
  /* Two forwarded requests, one upstream connection. */
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_OPEN, KB_HOP_PROXY_BACKEND, 1),
                    1);
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_PROXY_BACKEND, 1), 1);
  ck_assert_uint_ge(kbt_count(&e.trace, KB_TRACE_SEND, KB_HOP_PROXY_BACKEND, 1),
                    2);
  ck_assert_uint_ge(kbt_count(&e.trace, KB_TRACE_RECV, KB_HOP_PROXY_BACKEND, 1),
                    2);
  for(i = 0; i < e.trace.n; i++) {
    struct kbt_event *x = &e.trace.ev[i];
    if(x->hop == KB_HOP_PROXY_BACKEND && x->kind != KB_TRACE_NOTE) {
      ck_assert_int_eq(x->side, KB_SIDE_CLIENT);
    }
    if(x->hop == KB_HOP_CLIENT_PROXY && x->kind != KB_TRACE_NOTE) {
      ck_assert_int_eq(x->side, KB_SIDE_SERVER);
    }
    if(x->origin[0]) {
      /* The backend traces nothing here (no sink): all events are ours. */
      ck_assert_str_eq(x->origin, "ISA01"); /* the member's name */
    }
    if(x->kind == KB_TRACE_EXCHANGE) {
      ck_assert_int_lt(exchanges[3], 3);
      switch(exchanges[3]++) {
      case 0:
        ck_assert_int_eq(x->ex.req_auth, KB_AUTH_NTLM_NEGOTIATE);
        ck_assert_int_eq(x->ex.status, 401);
        ck_assert_int_eq(x->ex.resp_auth, KB_AUTH_NTLM_CHALLENGE);
        ck_assert_uint_eq(x->ex.req_body_len, 0);
        break;
      case 1:
        ck_assert_int_eq(x->ex.req_auth, KB_AUTH_NTLM_AUTHENTICATE);
        ck_assert_int_eq(x->ex.status, 200);
        ck_assert_int_eq(x->ex.resp_auth, KB_AUTH_NONE);
        ck_assert_uint_eq(x->ex.req_body_len, strlen(kbt_oof_body));
        ck_assert_uint_gt(x->ex.resp_body_len, 0);
        break;
      default:
        ck_assert_int_eq(x->ex.req_auth, KB_AUTH_NTLM_NEGOTIATE);
        ck_assert_int_eq(x->ex.status, 500);
        ck_assert_uint_eq(x->ex.req_body_len, 0);
        break;
      }
    }
  }
  /* What went upstream includes the body-less POST, byte for byte. */
  ck_assert(kbt_anywhere(&e.trace, "POST /EWS/Exchange.asmx HTTP/1.1\r\n"));
  ck_assert(kbt_anywhere(&e.trace, "Content-Length: 0\r\n"));
  ck_assert(kbt_anywhere(&e.trace, "Via: 1.1 ISA01\r\n"));
  ck_assert(!kbt_anywhere(&e.trace, T_PASSWORD));
  kbt_env_stop(&e);
}
END_TEST

Suite *proxy_forwarding_suite(void)
{
  Suite *s = suite_create("forwarding");
  TCase *tc = tcase_create("forwarding");

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_forward_exact);
  tcase_add_test(tc, test_response_too_big);
  tcase_add_test(tc, test_request_too_big);
  tcase_add_test(tc, test_half_closed_client);
  tcase_add_test(tc, test_backend_unreachable);
  tcase_add_test(tc, test_backend_timeout);
  tcase_add_test(tc, test_trace);
  suite_add_tcase(s, tc);
  return s;
}
