/*
 * test_abuse.c - the servers under the abuse real clients bring (issue 13):
 * request framing RFC 9112 forbids, field syntax RFC 9110 forbids, clients
 * that half-close after their request, clients that trickle their head
 * (slowloris), connection floods, and Expect: 100-continue on a request
 * the listener refuses.
 *
 * The real listener (proxy.h) in front of the real Exchange (backend.h),
 * spoken to over raw sockets (rc.h) so that the bytes are exactly the
 * wrong ones. Each case asserts the status, whether the connection
 * closed, and what reached Exchange (its counters and the listener's).
 * Waits are on responses and closes, never on sleeps.
 */
#define _GNU_SOURCE
#include <check.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "live/admin.h"
#include "proxy/proxy.h"
#include "rc.h"

#define T_EWS "/EWS/Exchange.asmx"

/* ---- the topology -------------------------------------------------------- */

struct ab {
  struct kbt_env env;
};

struct ab_opts {
  enum proxy_auth auth;
  unsigned head_timeout_ms; /* 0: the default */
  unsigned max_connections; /* 0: the default */
  unsigned max_per_address; /* 0: the default */
};

/* Starts the listener (per-request) in front of Exchange as o says; a
 * test that fails half-way leaves it to kbt_env_teardown. */
static void ab_start(struct ab *e, const struct ab_opts *o)
{
  struct backend_config bc;
  struct proxy_config pc;
  struct kbt_env_opts eo;

  memset(&bc, 0, sizeof(bc));
  bc.head_timeout_ms = o->head_timeout_ms;
  bc.max_connections = o->max_connections;
  memset(&pc, 0, sizeof(pc));
  pc.policy = PROXY_POLICY_PER_REQUEST;
  pc.auth = o->auth;
  pc.head_timeout_ms = o->head_timeout_ms;
  pc.max_connections = o->max_connections;
  pc.max_per_address = o->max_per_address;
  memset(&eo, 0, sizeof(eo));
  eo.exchange = &bc;
  eo.listener = &pc;
  eo.debug = "AB_TRACE";
  kbt_env_start(&e->env, &eo);
}

static void ab_stop(struct ab *e)
{
  kbt_env_stop(&e->env);
}

static uint64_t ab_exchange_requests(struct ab *e)
{
  struct backend_stats s;
  backend_stats(e->env.be, &s);
  return s.requests;
}

static uint64_t ab_forwarded(struct ab *e)
{
  struct proxy_stats s;
  proxy_stats(e->env.px, &s);
  return s.forwarded;
}

/* A well-formed EWS POST of len body bytes (the listener forwards it when
 * it does not authenticate). */
static int ab_post(char *out, size_t outlen, const char *body)
{
  return snprintf(out, outlen,
                  "POST " T_EWS " HTTP/1.1\r\nHost: mail.fabrikam.com\r\n"
                  "Content-Type: text/xml; charset=utf-8\r\n"
                  "Content-Length: %zu\r\n\r\n%s",
                  strlen(body), body);
}

/* ---- framing and field syntax ------------------------------------------- */

struct ab_framing {
  const char *what;
  const char *bytes; /* sent as-is; a smuggled request follows some */
  size_t len;        /* 0: strlen(bytes) */
  int status;        /* what the listener must answer */
  /* libmicrohttpd answers it itself, before the application sees the
   * request; 0.9.75 writes that answer's head twice, so only its status
   * line and the close are checked. */
  bool library;
};

#define AB_SMUGGLED "GET /smuggled HTTP/1.1\r\nHost: mail.fabrikam.com\r\n\r\n"
#define AB_HEAD "POST " T_EWS " HTTP/1.1\r\nHost: mail.fabrikam.com\r\n"

static const struct ab_framing ab_framings[] = {
    {"Content-Length with Transfer-Encoding",
     AB_HEAD "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
             "0\r\n\r\n" AB_SMUGGLED,
     0, 400, false},
    {"two different Content-Length",
     AB_HEAD "Content-Length: 4\r\nContent-Length: 30\r\n\r\nabcd" AB_SMUGGLED,
     0, 400, false},
    {"a blank before the colon",
     AB_HEAD "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 0, 400, false},
    {"xchunked", AB_HEAD "Transfer-Encoding: xchunked\r\n\r\n", 0, 400, false},
    {"chunked, identity",
     AB_HEAD "Transfer-Encoding: chunked, identity\r\n\r\n", 0, 400, false},
    {"gzip, chunked: an unknown coding",
     AB_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 0, 501,
     false},
    {"chunked twice",
     AB_HEAD "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
             "0\r\n\r\n",
     0, 400, false},
    {"Transfer-Encoding in HTTP/1.0",
     "POST " T_EWS " HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     0, 400, false},
    {"HTTP/1.1 without Host", "GET " T_EWS " HTTP/1.1\r\n\r\n", 0, 400, false},
    {"two Host", AB_HEAD "Host: evil.example\r\nContent-Length: 0\r\n\r\n", 0,
     400, false},
    {"a Host that is not host[:port]",
     "GET " T_EWS " HTTP/1.1\r\nHost: a b@c\r\n\r\n", 0, 400, false},
    {"a bare CR in a value",
     AB_HEAD "X-Bare: a\rX-Injected: yes\r\nContent-Length: 0\r\n\r\n", 0, 400,
     false},
    {"a control character in a value",
     AB_HEAD "X-Bell: a\ab\r\nContent-Length: 0\r\n\r\n", 0, 400, false},
    {"a space in a field name", AB_HEAD "X Bad: 1\r\nContent-Length: 0\r\n\r\n",
     0, 400, false},
    {"a Content-Length that is not a number",
     AB_HEAD "Content-Length: 0x10\r\n\r\n", 0, 400, true},
    {"a Content-Length list", AB_HEAD "Content-Length: 4, 4\r\n\r\nabcd", 0,
     400, true},
    {"a request target that is not a path",
     "GET EWS HTTP/1.1\r\nHost: h\r\n\r\n", 0, 400, false},
};

/* Reads the refusal of f on c: its status, Connection: close, then the
 * close itself (nothing after the answer: a smuggled request is never
 * answered). Closes c. */
static void ab_expect_refusal(struct rc *c, const struct ab_framing *f)
{
  struct rc_resp r;
  char v[64];

  ck_assert_msg(rc_read(c, &r), "%s: no answer", f->what);
  ck_assert_msg(r.status == f->status, "%s: %d, want %d", f->what, r.status,
                f->status);
  ck_assert_str_eq(rc_header(&r, "Connection", v, sizeof(v)), "close");
  rc_resp_free(&r);
  if(f->library) {
    while(rc_fill(c) > 0)
      c->have = 0;
    c->have = 0;
  }
  ck_assert_msg(rc_closed_by_peer(c), "%s: still open", f->what);
  rc_close(c);
}

/* Every framing fault gets its RFC answer, the connection closes (a
 * smuggled request behind it is never answered) and nothing reaches
 * Exchange. */
START_TEST(test_framing_refused)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE};
  const struct ab_framing *f = &ab_framings[_i];
  struct rc c;

  ab_start(&e, &o);
  rc_connect(&c, NULL, proxy_port(e.env.px), NULL, f->what);
  ck_assert(rc_send(&c, f->bytes, f->len ? f->len : strlen(f->bytes)));
  ab_expect_refusal(&c, f);
  ck_assert_uint_eq(ab_forwarded(&e), 0);
  ck_assert_uint_eq(ab_exchange_requests(&e), 0);
  ck_assert_uint_eq(kbt_count_code(&e.env.trace, KB_NOTE_BAD_FRAMING) +
                        kbt_count_code(&e.env.trace, KB_NOTE_BAD_TARGET),
                    f->library ? 0 : 1);
  ab_stop(&e);
}
END_TEST

/* Exchange's own port is reachable without the listener: it refuses the
 * same heads the same way. */
START_TEST(test_framing_refused_by_exchange)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE};
  const struct ab_framing *f = &ab_framings[_i];
  struct rc c;

  ab_start(&e, &o);
  rc_connect(&c, NULL, backend_port(e.env.be), NULL, f->what);
  ck_assert(rc_send(&c, f->bytes, f->len ? f->len : strlen(f->bytes)));
  ab_expect_refusal(&c, f);
  ck_assert_uint_eq(ab_exchange_requests(&e), 0);
  ab_stop(&e);
}
END_TEST

/* The absolute form is accepted (RFC 9112 3.2.2) and forwarded as its
 * path. */
START_TEST(test_absolute_form_accepted)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE};
  struct rc c;
  struct rc_resp r;
  char req[4096];
  int n;

  ab_start(&e, &o);
  n = snprintf(req, sizeof(req),
               "POST http://mail.fabrikam.com" T_EWS " HTTP/1.1\r\n"
               "Host: mail.fabrikam.com\r\nContent-Type: text/xml\r\n"
               "Content-Length: %zu\r\n\r\n%s",
               strlen(kbt_oof_body), kbt_oof_body);
  rc_connect(&c, NULL, proxy_port(e.env.px), NULL, "absolute");
  ck_assert(rc_send(&c, req, (size_t)n));
  ck_assert(rc_read(&c, &r));
  ck_assert_int_ne(r.status, 400);
  ck_assert_int_ne(r.status, 404);
  rc_resp_free(&r);
  rc_close(&c);
  ck_assert_uint_eq(ab_forwarded(&e), 1);
  ck_assert_uint_eq(ab_exchange_requests(&e), 1);
  ab_stop(&e);
}
END_TEST

/* ---- half-close ---------------------------------------------------------- */

#define AB_HALF_CLOSED 40

/* A client that sends its whole request and half-closes gets its answer
 * every time, and the counters say what happened: 40 forwarded, 40
 * received by Exchange, 40 answered. */
START_TEST(test_half_closed_clients_answered)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE};
  char req[4096];
  unsigned answered = 0;
  unsigned i;
  int n;

  ab_start(&e, &o);
  n = ab_post(req, sizeof(req), kbt_oof_body);
  for(i = 0; i < AB_HALF_CLOSED; i++) {
    struct rc c;
    struct rc_resp r;
    rc_connect(&c, NULL, proxy_port(e.env.px), NULL, "half-closed");
    ck_assert(rc_send(&c, req, (size_t)n));
    ck_assert_int_eq(shutdown(c.fd, SHUT_WR), 0);
    if(rc_read(&c, &r) && r.status > 0)
      answered++;
    rc_resp_free(&r);
    rc_close(&c);
  }
  ck_assert_uint_eq(answered, AB_HALF_CLOSED);
  ck_assert_uint_eq(ab_exchange_requests(&e), AB_HALF_CLOSED);
  ck_assert_uint_eq(ab_forwarded(&e), AB_HALF_CLOSED);
  ab_stop(&e);
}
END_TEST

/* Issue 28's pattern: AB_HALF_CLOSED connections opened and authenticated
 * first and held open (NTLM's handshake, or a Basic request), then on each
 * in turn a POST with its body and shutdown(SHUT_WR). Every client gets
 * Exchange's 200 to what it sent, and the listener's forwarded counter
 * agrees with what Exchange received. Integrated (_i 0) and Basic (1). */
START_TEST(test_half_closed_after_authenticating)
{
  /* FABRIKAM's alice in Basic: base64("alice:Passw0rd!"). */
  static const char basic[] = "Basic YWxpY2U6UGFzc3cwcmQh";
  static struct ab e;
  struct ab_opts o = {.auth = _i ? PROXY_AUTH_BASIC : PROXY_AUTH_INTEGRATED};
  struct rc c[AB_HALF_CLOSED];
  struct kb_buf post;
  uint64_t exchange_before, forwarded_before;
  unsigned answered = 0, i;

  ab_start(&e, &o);
  for(i = 0; i < AB_HALF_CLOSED; i++) {
    rc_connect(&c[i], NULL, proxy_port(e.env.px), NULL, "held");
    if(_i) {
      struct rc_resp r;
      ck_assert_int_eq(
          rc_post(&c[i], T_EWS, basic, kbt_oof_body, strlen(kbt_oof_body), &r),
          200);
      rc_resp_free(&r);
    }
    else
      ck_assert_int_eq(kbt_ntlm_handshake(&c[i], "alice", KBT_ALICE_PASSWORD),
                       200);
  }
  exchange_before = ab_exchange_requests(&e);
  forwarded_before = ab_forwarded(&e);
  kb_buf_init(&post, 1 << 16);
  rc_build(&post, "POST", T_EWS, _i ? basic : NULL, kbt_oof_body,
           strlen(kbt_oof_body));
  for(i = 0; i < AB_HALF_CLOSED; i++) {
    struct rc_resp r;
    ck_assert(rc_send(&c[i], post.data, post.len));
    ck_assert_int_eq(shutdown(c[i].fd, SHUT_WR), 0);
    if(rc_read(&c[i], &r) && r.status == 200)
      answered++;
    rc_resp_free(&r);
    rc_close(&c[i]);
  }
  kb_buf_free(&post);
  ck_assert_uint_eq(answered, AB_HALF_CLOSED);
  ck_assert_uint_eq(ab_exchange_requests(&e) - exchange_before, AB_HALF_CLOSED);
  ck_assert_uint_eq(ab_forwarded(&e) - forwarded_before, AB_HALF_CLOSED);
  ab_stop(&e);
}
END_TEST

/* ---- slow clients and floods -------------------------------------------- */

#define AB_PARTIAL                                                             \
  "POST " T_EWS " HTTP/1.1\r\nHost: mail.fabrikam.com\r\nX-Slow: "

/* Trickles one byte of a header value at a time on c until the server
 * answers (or closes); the pace is the attacker's, not a wait: the test
 * waits on the answer. Returns the bytes trickled. */
static unsigned ab_trickle(struct rc *c)
{
  struct pollfd p = {c->fd, POLLIN, 0};
  unsigned sent = 0;

  ck_assert(rc_send(c, AB_PARTIAL, strlen(AB_PARTIAL)));
  while(poll(&p, 1, 50) == 0 && sent < 100000) {
    if(!rc_send(c, "a", 1))
      break;
    sent++;
  }
  return sent;
}

/* A head that trickles in gets 408 at the head deadline and the
 * connection closes, however often a byte arrives (libmicrohttpd's own
 * timeout counts silence only); nothing is forwarded. Both servers. */
START_TEST(test_slow_head_gets_408)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE, .head_timeout_ms = 400};
  uint16_t port;
  struct rc c;
  struct rc_resp r;
  struct proxy_stats ps;

  ab_start(&e, &o);
  port = _i ? backend_port(e.env.be) : proxy_port(e.env.px);
  rc_connect(&c, NULL, port, NULL, "slowloris");
  ck_assert_uint_gt(ab_trickle(&c), 1);
  ck_assert(rc_read(&c, &r));
  ck_assert_int_eq(r.status, 408);
  rc_resp_free(&r);
  ck_assert(rc_closed_by_peer(&c));
  rc_close(&c);
  ck_assert_uint_eq(ab_exchange_requests(&e), 0);
  proxy_stats(e.env.px, &ps);
  ck_assert_uint_eq(ps.forwarded, 0);
  ck_assert_uint_eq(ps.head_timeouts, _i ? 0 : 1);
  ab_stop(&e);
}
END_TEST

#define AB_SLOW 60

/* AB_SLOW connections that never finish their head, all from 127.0.0.1,
 * against a cap of 40 per address and 50 in all: new clients from the
 * same address and from another are still served, at once. */
START_TEST(test_slowloris_does_not_lock_out_clients)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE,
                      .head_timeout_ms = 60000,
                      .max_connections = 50,
                      .max_per_address = 40};
  static struct rc slow[AB_SLOW];
  const char *from[2] = {"127.0.0.1", "127.0.0.2"};
  char req[4096];
  struct proxy_stats ps;
  unsigned i;
  int n;

  ab_start(&e, &o);
  for(i = 0; i < AB_SLOW; i++) {
    rc_connect(&slow[i], NULL, proxy_port(e.env.px), NULL, "slowloris");
    ck_assert(rc_send(&slow[i], AB_PARTIAL, strlen(AB_PARTIAL)));
  }
  n = ab_post(req, sizeof(req), kbt_oof_body);
  for(i = 0; i < 2; i++) {
    struct rc c;
    struct rc_resp r;
    rc_connect(&c, from[i], proxy_port(e.env.px), NULL, from[i]);
    ck_assert(rc_send(&c, req, (size_t)n));
    ck_assert_msg(rc_read(&c, &r), "a client from %s was not served", from[i]);
    ck_assert_int_eq(r.status, 200);
    rc_resp_free(&r);
    rc_close(&c);
  }
  proxy_stats(e.env.px, &ps);
  /* The oldest 20 slow ones made room for the last 20 (the per-address
   * cap), one more for the client from 127.0.0.1; the one from 127.0.0.2
   * found room under the total cap. */
  ck_assert_uint_eq(ps.evicted, AB_SLOW - 40 + 1);
  ck_assert_uint_eq(ps.refused, 0);
  ck_assert_uint_eq(ps.forwarded, 2);
  for(i = 0; i < AB_SLOW; i++)
    rc_close(&slow[i]);
  ab_stop(&e);
}
END_TEST

/* At the cap, with every connection busy (its head read, its body
 * awaited), a new connection is refused at once: closed, never left in
 * the backlog. */
START_TEST(test_cap_refuses_at_once)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE, .max_connections = 3};
  struct rc busy[3], c;
  struct proxy_stats ps;
  const char *head = "POST " T_EWS " HTTP/1.1\r\nHost: mail.fabrikam.com\r\n"
                     "Content-Length: 10\r\n\r\n";
  unsigned i;

  ab_start(&e, &o);
  for(i = 0; i < 3; i++) {
    rc_connect(&busy[i], NULL, proxy_port(e.env.px), NULL, "busy");
    ck_assert(rc_send(&busy[i], head, strlen(head)));
  }
  /* The heads are read once the trace has the three connections open. */
  while(kbt_count(&e.env.trace, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, 0) < 3)
    kbt_wait_for(&e.env.trace, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY);
  rc_connect(&c, NULL, proxy_port(e.env.px), NULL, "one too many");
  ck_assert(rc_closed_by_peer(&c));
  rc_close(&c);
  proxy_stats(e.env.px, &ps);
  ck_assert_uint_eq(ps.refused, 1);
  for(i = 0; i < 3; i++)
    rc_close(&busy[i]);
  ab_stop(&e);
}
END_TEST

/* The admin endpoint (ctl, the console) under the same abuse: a trickled
 * head gets 408, and 70 connections that never finish their head (its cap
 * is 64) do not lock out a real request (issue 13: 70 blocked ctl). */
START_TEST(test_admin_under_slowloris)
{
  static struct ab e;
  struct ab_opts o = {.auth = PROXY_AUTH_NONE};
  static struct rc slow[70];
  struct admin_member m;
  struct admin_config ac;
  struct admin *adm = NULL;
  struct rc c;
  struct rc_resp r;
  char err[256], req[256];
  unsigned i;
  int n;

  ab_start(&e, &o);
  memset(&m, 0, sizeof(m));
  m.name = "ISA01";
  m.url = "http://127.0.0.1:1/";
  m.proxy = e.env.px;
  memset(&ac, 0, sizeof(ac));
  ac.members = &m;
  ac.nmembers = 1;
  ac.backend = e.env.be;
  ac.backend_url = e.env.backend_url;
  ac.token = "abcdefghijklmnop0123456789";
  ac.head_timeout_ms = _i ? 60000 : 400;
  ck_assert_msg(admin_start(&ac, &adm, err, sizeof(err)) == 0, "%s", err);
  if(!_i) {
    rc_connect(&c, NULL, admin_port(adm), NULL, "slowloris");
    ck_assert_uint_gt(ab_trickle(&c), 1);
    ck_assert(rc_read(&c, &r));
    ck_assert_int_eq(r.status, 408);
    rc_resp_free(&r);
    rc_close(&c);
  }
  else {
    for(i = 0; i < 70; i++) {
      rc_connect(&slow[i], NULL, admin_port(adm), NULL, "slowloris");
      ck_assert(rc_send(&slow[i], AB_PARTIAL, strlen(AB_PARTIAL)));
    }
    n = snprintf(req, sizeof(req),
                 "GET /status HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                 "Authorization: Bearer %s\r\n\r\n",
                 (unsigned)admin_port(adm), ac.token);
    rc_connect(&c, NULL, admin_port(adm), NULL, "ctl");
    ck_assert(rc_send(&c, req, (size_t)n));
    ck_assert_msg(rc_read(&c, &r), "the admin endpoint did not answer");
    ck_assert_int_eq(r.status, 200);
    rc_resp_free(&r);
    rc_close(&c);
    for(i = 0; i < 70; i++)
      rc_close(&slow[i]);
  }
  admin_stop(adm);
  ab_stop(&e);
}
END_TEST

/* ---- 100 Continue ---------------------------------------------------------
 */

/* A client that waits for 100 Continue and has no credentials gets the 401
 * at once: the first bytes it reads are the 401, never a 100 that would
 * make it upload a body the listener refuses (issue 13). */
START_TEST(test_no_continue_before_a_refusal)
{
  static struct ab e;
  struct ab_opts o = {.auth = _i ? PROXY_AUTH_BASIC : PROXY_AUTH_INTEGRATED};
  const char *req = "POST " T_EWS " HTTP/1.1\r\nHost: mail.fabrikam.com\r\n"
                    "Content-Type: text/xml\r\nContent-Length: 400\r\n"
                    "Expect: 100-continue\r\n\r\n";
  struct rc c;
  struct rc_resp r;
  char v[64];

  ab_start(&e, &o);
  rc_connect(&c, NULL, proxy_port(e.env.px), NULL, "expects 100");
  ck_assert(rc_send(&c, req, strlen(req)));
  ck_assert(rc_read(&c, &r));
  ck_assert_int_eq(r.status, 401);
  ck_assert_str_eq(rc_header(&r, "Connection", v, sizeof(v)), "close");
  rc_resp_free(&r);
  ck_assert(rc_closed_by_peer(&c));
  rc_close(&c);
  ck_assert_uint_eq(ab_forwarded(&e), 0);
  ab_stop(&e);
}
END_TEST

/* ---- the suite ----------------------------------------------------------- */

static Suite *abuse_suite(void)
{
  Suite *s = suite_create("abuse");
  TCase *framing = tcase_create("framing");
  TCase *half = tcase_create("half-close and 100-continue");
  TCase *slow = tcase_create("slow clients and floods");
  int nframings = (int)(sizeof(ab_framings) / sizeof(ab_framings[0]));

  tcase_add_checked_fixture(framing, NULL, kbt_env_teardown);
  tcase_add_loop_test(framing, test_framing_refused, 0, nframings);
  tcase_add_loop_test(framing, test_framing_refused_by_exchange, 0, nframings);
  tcase_add_test(framing, test_absolute_form_accepted);
  suite_add_tcase(s, framing);

  tcase_add_checked_fixture(slow, NULL, kbt_env_teardown);
  tcase_add_loop_test(slow, test_slow_head_gets_408, 0, 2);
  tcase_add_test(slow, test_slowloris_does_not_lock_out_clients);
  tcase_add_test(slow, test_cap_refuses_at_once);
  tcase_add_loop_test(slow, test_admin_under_slowloris, 0, 2);
  suite_add_tcase(s, slow);

  tcase_add_loop_test(half, test_no_continue_before_a_refusal, 0, 2);
  tcase_add_checked_fixture(half, NULL, kbt_env_teardown);
  tcase_add_test(half, test_half_closed_clients_answered);
  tcase_add_loop_test(half, test_half_closed_after_authenticating, 0, 2);
  suite_add_tcase(s, half);
  return s;
}

int main(void)
{
  return kbt_run(abuse_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
