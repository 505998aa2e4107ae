/*
 * test_client_kinds.c - the other clients and limits against the real
 * listener and Exchange (test_client.h): Outlook (libcurl's own NTLM) and
 * one-shot clients, think time on a simulated clock, the client's idle
 * timeout and keep-alive limit, a balancer over two listeners, Basic and
 * anonymous listeners, and the listener's own idle timeout.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "backend/backend.h"
#include "client/client.h"
#include "kbt.h"
#include "kbt_env.h"
#include "proxy/proxy.h"
#include "test_client.h"

/* ---- a simulated clock --------------------------------------------------- */

/* A simulated clock with one timeline: it moves only when a session
 * thinks, and remembers who moved it. */
struct sim_clock {
  pthread_mutex_t lock;
  int64_t now;
  unsigned advances;
  char last_who[32];
};

static int64_t sim_now(void *ctx, const char *who)
{
  struct sim_clock *k = ctx;
  int64_t now;
  (void)who;
  pthread_mutex_lock(&k->lock);
  now = k->now;
  pthread_mutex_unlock(&k->lock);
  return now;
}

static void sim_advance(void *ctx, const char *who, int64_t ms)
{
  struct sim_clock *k = ctx;
  pthread_mutex_lock(&k->lock);
  k->now += ms;
  k->advances++;
  snprintf(k->last_who, sizeof(k->last_who), "%s", who ? who : "");
  pthread_mutex_unlock(&k->lock);
}

static void sim_clock_init(struct sim_clock *k)
{
  memset(k, 0, sizeof(*k));
  pthread_mutex_init(&k->lock, NULL);
  k->now = KBT_CASE_MS;
}

static struct kb_clock sim_kb_clock(struct sim_clock *k)
{
  struct kb_clock clock = {sim_now, sim_advance, k};
  return clock;
}

/* Outlook authenticates its connection once with libcurl's NTLM and sends
 * every later POST on it without Authorization: no body-less POST ever
 * reaches Exchange, whatever the policy. */
START_TEST(test_outlook)
{
  enum proxy_policy policy =
      _i ? PROXY_POLICY_PER_REQUEST : PROXY_POLICY_PER_CONNECTION;
  struct kbt_env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i, n = 0, first_ews;

  cl_env_start(&e, policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 15, "alice", KBT_ALICE_PASSWORD);
  cc.kind = CLIENT_KIND_OUTLOOK;
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  ck_assert_uint_eq(client_results_count(c), 3);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_msg(r->outcome == CLIENT_OK, "POST %zu: %s", i, r->detail);
    ck_assert_uint_eq(r->legs, i == 0 ? 2 : 1);
    ck_assert_int_eq(r->leg1_status, i == 0 ? 401 : 200);
    ck_assert_int_eq(r->final_status, 200);
    ck_assert_uint_eq(r->connection, 1);
    ck_assert(r->new_connection == (i == 0));
  }
  client_view(c, &v);
  ck_assert(!v.integration_error);
  ck_assert(v.presence_available && v.scheduling_available);
  ck_assert_uint_eq(v.connections, 1);
  client_destroy(c);

  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  ck_assert_uint_eq(bs.autodiscover_ok, 1);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, 1);
  ck_assert_uint_eq(ps.challenges, 1);
  ck_assert_uint_eq(ps.auth_ok, 1);
  ck_assert_uint_eq(ps.reauth_skipped, 0);

  /* Outlook's User-Agent on every request; Authorization only in the
   * autodiscover handshake, none from the first EWS POST on. */
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_OPEN, "client 15"), 1);
  ck_assert_uint_eq(kbt_count_sends_with(&rec, "client 15",
                                         "\r\nUser-Agent: Microsoft Office/"
                                         "12.0 (Windows NT 5.1; Microsoft "
                                         "Office Outlook 12.0.4518; Pro)\r\n"),
                    4);
  ck_assert_uint_eq(
      kbt_count_sends_with(&rec, "client 15", "\r\nAuthorization: NTLM "), 2);
  first_ews = kbt_find_send(&rec, "client 15", "POST /EWS/", 0);
  ck_assert_uint_lt(first_ews, rec.n);
  for(i = first_ews; i < rec.n; i++)
    if(rec.ev[i].kind == KB_TRACE_SEND)
      ck_assert_ptr_null(strstr(rec.ev[i].text, "Authorization:"));
  /* One EXCHANGE per HTTP request: type 1 -> 401 + type 2, type 3 -> 200,
   * then two POSTs without Authorization -> 200, all with their bodies. */
  for(i = 0; i < rec.n; i++) {
    const struct kbt_event *ev = &rec.ev[i];
    static const enum kb_auth req[] = {KB_AUTH_NTLM_NEGOTIATE,
                                       KB_AUTH_NTLM_AUTHENTICATE, KB_AUTH_NONE,
                                       KB_AUTH_NONE};
    if(ev->kind != KB_TRACE_EXCHANGE)
      continue;
    ck_assert_uint_lt(n, 4);
    ck_assert_int_eq(ev->ex.req_auth, req[n]);
    ck_assert_int_eq(ev->ex.status, n == 0 ? 401 : 200);
    ck_assert_int_eq(ev->ex.resp_auth,
                     n == 0 ? KB_AUTH_NTLM_CHALLENGE : KB_AUTH_NONE);
    if(n == 0)
      ck_assert_uint_eq(ev->ex.req_body_len, 0);
    else
      ck_assert_uint_gt(ev->ex.req_body_len, 0);
    ck_assert_str_eq(ev->path, n < 2 ? "/autodiscover/autodiscover.xml"
                                     : "/EWS/Exchange.asmx");
    ck_assert_uint_eq(ev->conn, 1);
    n++;
  }
  ck_assert_uint_eq(n, 4);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* One-shot does Communicator's handshake on a new connection for every
 * POST and closes it afterwards: never a type 1 on an authenticated
 * connection, so clean under both policies. */
START_TEST(test_one_shot)
{
  enum proxy_policy policy =
      _i ? PROXY_POLICY_PER_REQUEST : PROXY_POLICY_PER_CONNECTION;
  struct kbt_env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  cl_env_start(&e, policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 16, "alice", KBT_ALICE_PASSWORD);
  cc.kind = CLIENT_KIND_ONE_SHOT;
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, i == 0 ? 3 : 2);
    ck_assert_int_eq(r->leg1_status, 401);
    ck_assert_uint_eq(r->connection, i + 1);
    ck_assert(r->new_connection);
  }
  client_view(c, &v);
  ck_assert(!v.integration_error);
  ck_assert(v.presence_available && v.scheduling_available);
  ck_assert_uint_eq(v.connections, 3);
  /* Each connection is closed right after its POST, before the next one
   * opens: all three are closed before client_destroy. */
  kbt_assert_serial_conns(&rec, "client 16", 3);
  client_destroy(c);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, "client 16"), 3);

  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, 3);
  ck_assert_uint_eq(ps.challenges, 3);
  ck_assert_uint_eq(ps.auth_ok, 3);
  ck_assert_uint_eq(ps.reauth_skipped, 0);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

#define THINK_POSTS 4

/* Runs a session of client id with the given seed and think range on a
 * simulated clock, copying the results into r (1 + THINK_POSTS). */
static void think_session(const char *url, unsigned id, uint64_t seed,
                          int64_t min, int64_t max,
                          struct client_post_result *r, struct kbt_rng *labels)
{
  struct sim_clock clock;
  struct client_config cc;
  struct client *c;
  struct kbt_rng rng;
  size_t i;
  char origin[32];

  sim_clock_init(&clock);
  kbt_rng_init(&rng, seed);
  cc = cl_config(url, id, "alice", KBT_ALICE_PASSWORD);
  cc.ews_posts = THINK_POSTS;
  cc.think_min_ms = min;
  cc.think_max_ms = max;
  cc.clock = sim_kb_clock(&clock);
  /* The seeded bytes, and the labels drawn under when labels is set. */
  cc.rng = kbt_rng(labels ? labels : &rng);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  ck_assert_uint_eq(client_results_count(c), 1 + THINK_POSTS);
  for(i = 0; i <= THINK_POSTS; i++)
    r[i] = *client_result(c, i);
  client_destroy(c);
  snprintf(origin, sizeof(origin), "client %u", id);
  ck_assert_uint_eq(clock.advances, max > 0 ? THINK_POSTS : 0);
  if(max > 0)
    ck_assert_str_eq(clock.last_who, origin);
  ck_assert_int_eq(clock.now, r[THINK_POSTS].at_ms);
  pthread_mutex_destroy(&clock.lock);
  kbt_rng_free(&rng);
}

/* Think time: drawn under "client/<id>/post/<n>/think" before each EWS
 * POST (never before autodiscover), uniform in [min, max] as the 8 bytes
 * big-endian modulo the width plus min, spent on the client's timeline:
 * the same seed gives the same times, another seed others. */
START_TEST(test_think_time)
{
  struct kbt_env e;
  struct client_post_result a[1 + THINK_POSTS], b[1 + THINK_POSTS],
      d[1 + THINK_POSTS], f[1 + THINK_POSTS];
  struct kbt_rng labels, seeded;
  const int64_t min = 1000, max = 9000;
  size_t i;
  bool differs = false;

  cl_env_start(&e, PROXY_POLICY_PER_REQUEST);
  think_session(e.url, 31, 7, min, max, a, NULL);
  think_session(e.url, 31, 7, min, max, b, NULL);
  think_session(e.url, 31, 8, min, max, d, NULL);
  ck_assert_int_eq(a[0].think_ms, 0);
  ck_assert_int_eq(a[0].at_ms, KBT_CASE_MS);
  for(i = 1; i <= THINK_POSTS; i++) {
    char label[64];
    uint8_t raw[8];
    uint64_t v = 0;
    size_t j;
    snprintf(label, sizeof(label), "client/31/post/%zu/think", i);
    kbt_rng_init(&seeded, 7);
    kbt_fill(&seeded, label, raw, sizeof(raw));
    kbt_rng_free(&seeded);
    for(j = 0; j < 8; j++)
      v = (v << 8) | raw[j];
    ck_assert_int_eq(a[i].think_ms, min + (int64_t)(v % (max - min + 1)));
    ck_assert_int_ge(a[i].think_ms, min);
    ck_assert_int_le(a[i].think_ms, max);
    ck_assert_int_eq(a[i].at_ms, a[i - 1].at_ms + a[i].think_ms);
    ck_assert_int_eq(b[i].think_ms, a[i].think_ms);
    ck_assert_int_eq(b[i].at_ms, a[i].at_ms);
    ck_assert_int_ge(d[i].think_ms, min);
    ck_assert_int_le(d[i].think_ms, max);
    if(d[i].think_ms != a[i].think_ms)
      differs = true;
  }
  ck_assert(differs);

  /* A fixed think time, and the labels in order (the client challenges
   * are drawn after each POST's think time). */
  kbt_rng_init(&labels, 1);
  think_session(e.url, 32, 1, 250, 250, f, &labels);
  for(i = 1; i <= THINK_POSTS; i++) {
    ck_assert_int_eq(f[i].think_ms, 250);
    ck_assert_int_eq(f[i].at_ms, KBT_CASE_MS + 250 * (int64_t)i);
  }
  ck_assert_uint_eq(labels.nlabels, 1 + 2 * THINK_POSTS);
  ck_assert_str_eq(labels.labels[0], "client/32/post/0/client-challenge");
  ck_assert_str_eq(labels.labels[1], "client/32/post/1/think");
  ck_assert_str_eq(labels.labels[2], "client/32/post/1/client-challenge");
  ck_assert_str_eq(labels.labels[7], "client/32/post/4/think");
  kbt_rng_free(&labels);

  /* No think time: no draw, no advance. */
  think_session(e.url, 33, 1, 0, 0, f, NULL);
  for(i = 0; i <= THINK_POSTS; i++) {
    ck_assert_int_eq(f[i].think_ms, 0);
    ck_assert_int_eq(f[i].at_ms, KBT_CASE_MS);
  }
  kbt_env_stop(&e);
}
END_TEST

/* The client's own idle timeout: a connection idle (on the client's
 * timeline) longer than idle_timeout_ms is closed before the next POST,
 * which then starts unauthenticated on a new one - so even ISA as shipped
 * challenges it. A timeout longer than the think time changes nothing. */
START_TEST(test_client_idle_timeout)
{
  bool expires = _i == 0;
  struct kbt_env e;
  struct kbt_trace rec;
  struct sim_clock clock;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  const char *note;
  size_t i;

  cl_env_start(&e, PROXY_POLICY_PER_CONNECTION);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  sim_clock_init(&clock);
  cc = cl_config(e.url, 17, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.clock = sim_kb_clock(&clock);
  cc.think_min_ms = cc.think_max_ms = 2000;
  cc.idle_timeout_ms = expires ? 1999 : 2000;
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), expires ? 0 : 2);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->think_ms, i ? 2000 : 0);
    if(expires) {
      ck_assert_int_eq(r->outcome, CLIENT_OK);
      ck_assert_uint_eq(r->legs, i ? 2 : 3);
      ck_assert_uint_eq(r->connection, i + 1);
      ck_assert(r->new_connection);
    }
    else {
      ck_assert_int_eq(r->outcome, i ? CLIENT_SERVER_ERROR : CLIENT_OK);
      ck_assert_uint_eq(r->connection, 1);
      ck_assert(r->new_connection == (i == 0));
    }
  }
  client_view(c, &v);
  ck_assert_uint_eq(v.connections, expires ? 3 : 1);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, "client 17"),
                    expires ? 2 : 0);
  client_destroy(c);
  kbt_assert_serial_conns(&rec, "client 17", expires ? 3 : 1);
  note = kbt_find_note(&rec, "client 17", "closing connection 1: idle");
  if(expires)
    ck_assert_str_eq(note, "closing connection 1: idle for 2000 ms, longer "
                           "than the client's idle timeout of 1999 ms");
  else
    ck_assert_ptr_null(note);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, expires ? 0 : 2);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, expires ? 3 : 1);
  ck_assert_uint_eq(ps.reauth_skipped, expires ? 0 : 2);
  pthread_mutex_destroy(&clock.lock);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* The client's max_requests: the connection is closed once it carried
 * that many requests, but never between an NTLM type 1's challenge and
 * the type 3 (NTLM authenticates the connection), so the limit there
 * applies after the type 3. */
struct max_case {
  enum proxy_policy policy;
  unsigned max_requests;
  unsigned failed;
  enum client_outcome outcome[3];
  unsigned legs[3];
  uint64_t conn[3];
  bool fresh[3];
  unsigned connections;
};

static const struct max_case max_cases[] = {
    /* 3 legs on conn 1 (closed at 4 only after the next POST's type 1,
     * which ISA as shipped forwards body-less), then a new connection. */
    {PROXY_POLICY_PER_CONNECTION,
     4,
     1,
     {CLIENT_OK, CLIENT_SERVER_ERROR, CLIENT_OK},
     {3, 1, 2},
     {1, 1, 2},
     {true, false, true},
     2},
    /* 2: the autodiscover handshake holds conn 1 for its type 3; each EWS
     * POST then fills its own connection. */
    {PROXY_POLICY_PER_REQUEST,
     2,
     0,
     {CLIENT_OK, CLIENT_OK, CLIENT_OK},
     {3, 2, 2},
     {1, 2, 3},
     {true, true, true},
     3},
    /* 1: the plain first request alone on conn 1, the handshake on conn 2. */
    {PROXY_POLICY_PER_CONNECTION,
     1,
     0,
     {CLIENT_OK, CLIENT_OK, CLIENT_OK},
     {3, 2, 2},
     {2, 3, 4},
     {true, true, true},
     4},
};

START_TEST(test_client_max_requests)
{
  const struct max_case *mc = &max_cases[_i];
  struct kbt_env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  cl_env_start(&e, mc->policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 18, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.max_requests = mc->max_requests;
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), mc->failed);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_msg(r->outcome == mc->outcome[i], "case %d POST %zu: %s", _i, i,
                  r->detail);
    ck_assert_uint_eq(r->legs, mc->legs[i]);
    ck_assert_uint_eq(r->connection, mc->conn[i]);
    ck_assert(r->new_connection == mc->fresh[i]);
  }
  client_view(c, &v);
  ck_assert_uint_eq(v.connections, mc->connections);
  client_destroy(c);
  kbt_assert_serial_conns(&rec, "client 18", mc->connections);
  ck_assert_ptr_nonnull(kbt_find_note(&rec, "client 18",
                                      "closing connection "
                                      "1 after "));
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, mc->connections);
  ck_assert_uint_eq(ps.auth_failed, 0);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, mc->failed);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* ---- the balancer -------------------------------------------------------- */

struct pick_ctx {
  uint16_t ports[2]; /* the two members */
  unsigned calls;
  char names[8][48];
};

/* Sends odd-numbered picks to member 2 and declines the others, which then
 * go to base_url (member 1). */
static int pick_alternate(void *ctx, const char *conn_name,
                          struct sockaddr *addr, unsigned addrlen)
{
  struct pick_ctx *p = ctx;
  struct sockaddr_in *sin = (struct sockaddr_in *)addr;
  unsigned n = p->calls++;
  if(n < 8)
    snprintf(p->names[n], sizeof(p->names[n]), "%s", conn_name);
  if(addr->sa_family != AF_INET || addrlen < sizeof(*sin) || n % 2 == 0)
    return -1;
  sin->sin_port = htons(p->ports[1]);
  return 0;
}

/* Two ISA members in front of one Exchange, a balancer per connection:
 * each new connection goes where the pick sent it. */
START_TEST(test_balancer)
{
  struct kbt_env e;
  struct proxy_config o;
  struct proxy *second;
  struct pick_ctx pick;
  struct client_config cc;
  struct client *c;
  struct proxy_stats ps1, ps2;
  struct backend_stats bs;
  size_t i;

  cl_env_start(&e, PROXY_POLICY_PER_CONNECTION);
  memset(&o, 0, sizeof(o));
  o.policy = PROXY_POLICY_PER_CONNECTION;
  second = kbt_env_listener(&e, &o);
  memset(&pick, 0, sizeof(pick));
  pick.ports[0] = proxy_port(e.px);
  pick.ports[1] = proxy_port(second);
  cc = cl_config(e.url, 41, "alice", KBT_ALICE_PASSWORD);
  cc.kind = CLIENT_KIND_ONE_SHOT;
  cc.ews_posts = 3;
  cc.balancer.pick = pick_alternate;
  cc.balancer.ctx = &pick;
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 4; i++) {
    ck_assert_uint_eq(client_result(c, i)->connection, i + 1);
    ck_assert_int_eq(client_result(c, i)->outcome, CLIENT_OK);
  }
  client_destroy(c);
  ck_assert_uint_eq(pick.calls, 4);
  for(i = 0; i < 4; i++) {
    char want[48];
    snprintf(want, sizeof(want), "client 41 conn %zu", i + 1);
    ck_assert_str_eq(pick.names[i], want);
  }
  proxy_stats(e.px, &ps1);
  proxy_stats(second, &ps2);
  ck_assert_uint_eq(ps1.connections, 2);
  ck_assert_uint_eq(ps2.connections, 2);
  ck_assert_uint_eq(ps1.auth_ok, 2);
  ck_assert_uint_eq(ps2.auth_ok, 2);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok + bs.availability_ok, 3);
  proxy_stop(second);
  kbt_env_stop(&e);
}
END_TEST

/* Communicator behind a balancer keeps its connection: one pick, one
 * member, the bug as usual. */
START_TEST(test_balancer_keepalive)
{
  struct kbt_env e;
  struct proxy_config o;
  struct proxy *second;
  struct pick_ctx pick;
  struct client_config cc;
  struct client *c;
  struct proxy_stats ps1, ps2;

  cl_env_start(&e, PROXY_POLICY_PER_CONNECTION);
  memset(&o, 0, sizeof(o));
  second = kbt_env_listener(&e, &o);
  memset(&pick, 0, sizeof(pick));
  pick.ports[0] = proxy_port(e.px);
  pick.ports[1] = proxy_port(second);
  pick.calls = 1; /* the first pick goes to member 2 */
  cc = cl_config(e.url, 42, "alice", KBT_ALICE_PASSWORD);
  cc.balancer.pick = pick_alternate;
  cc.balancer.ctx = &pick;
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 2);
  client_destroy(c);
  ck_assert_uint_eq(pick.calls, 2);
  ck_assert_str_eq(pick.names[1], "client 42 conn 1");
  proxy_stats(e.px, &ps1);
  proxy_stats(second, &ps2);
  ck_assert_uint_eq(ps1.connections, 0);
  ck_assert_uint_eq(ps2.connections, 1);
  ck_assert_uint_eq(ps2.reauth_skipped, 2);
  proxy_stop(second);
  kbt_env_stop(&e);
}
END_TEST

/* ---- other listeners ----------------------------------------------------- */

#define TEST_BASIC_ALICE "Authorization: Basic RkFCUklLQU1cYWxpY2U6UGFzc3cwcmQh"

/* A listener with Basic authentication: Communicator learns Basic from the
 * 401 to its plain first request, then sends the credentials with the body
 * on every POST - nothing body-less ever reaches Exchange. Outlook, which
 * only speaks NTLM, is refused. */
START_TEST(test_listener_basic)
{
  struct kbt_env e;
  struct proxy_config o;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  memset(&o, 0, sizeof(o));
  o.policy = PROXY_POLICY_PER_CONNECTION;
  o.auth = PROXY_AUTH_BASIC;
  cl_env_start_with(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 22, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *res = client_result(c, i);
    ck_assert_msg(res->outcome == CLIENT_OK, "POST %zu: %s", i, res->detail);
    ck_assert_uint_eq(res->legs, i ? 1 : 2);
    ck_assert_int_eq(res->leg1_status, i ? 200 : 401);
    ck_assert_int_eq(res->final_status, 200);
    ck_assert_uint_eq(res->connection, 1);
  }
  client_destroy(c);
  /* Four requests: the plain one, then three with Basic and a body. */
  ck_assert_uint_eq(kbt_count_sends_with(&rec, "client 22", "POST /"), 4);
  ck_assert_uint_eq(kbt_count_sends_with(&rec, "client 22",
                                         "\r\n" TEST_BASIC_ALICE "\r\n\r\n"),
                    3);
  ck_assert_uint_eq(kbt_count_sends_with(&rec, "client 22", "NTLM"), 0);
  for(i = 0; i < rec.n; i++)
    if(rec.ev[i].kind == KB_TRACE_EXCHANGE)
      ck_assert_uint_gt(rec.ev[i].ex.req_body_len, 0);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.basic_ok, 3);
  ck_assert_uint_eq(ps.basic_failed, 0);
  ck_assert_uint_eq(ps.challenges, 0);

  /* A wrong password: refused at the Basic leg, nothing forwarded. */
  cc = cl_config(e.url, 27, "alice", "wrong");
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r.legs, 2);
  ck_assert_int_eq(r.final_status, 401);
  ck_assert_str_eq(r.detail, "HTTP 401 to Basic credentials: the listener "
                             "refused FABRIKAM\\alice; check the user name "
                             "and password");
  ck_assert_int_eq(client_step(c, &r), 0);
  client_destroy(c);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.basic_failed, 1);
  ck_assert_uint_eq(ps.forwarded, 3);

  cc = cl_config(e.url, 23, "alice", KBT_ALICE_PASSWORD);
  cc.kind = CLIENT_KIND_OUTLOOK;
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r.legs, 1);
  ck_assert_ptr_nonnull(strstr(r.detail, "must accept Integrated"));
  client_destroy(c);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* An anonymous listener: the plain first request gets its answer, and no
 * Authorization is ever sent. */
START_TEST(test_listener_none)
{
  struct kbt_env e;
  struct proxy_config o;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  memset(&o, 0, sizeof(o));
  o.policy = PROXY_POLICY_PER_CONNECTION;
  o.auth = PROXY_AUTH_NONE;
  cl_env_start_with(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 24, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *res = client_result(c, i);
    ck_assert_msg(res->outcome == CLIENT_OK, "POST %zu: %s", i, res->detail);
    ck_assert_uint_eq(res->legs, 1);
    ck_assert_int_eq(res->leg1_status, 200);
    ck_assert_uint_eq(res->connection, 1);
  }
  client_destroy(c);
  ck_assert_uint_eq(kbt_count_sends_with(&rec, "client 24", "POST /"), 3);
  ck_assert_uint_eq(kbt_count_sends_with(&rec, "client 24", "Authorization"),
                    0);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.challenges, 0);
  ck_assert_uint_eq(ps.forwarded, 3);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* The listener's idle timeout on the simulated clock: after the think
 * time, ISA as shipped has closed the authenticated connection, so the
 * type 1 finds it gone; libcurl resends it on a new connection, which ISA
 * challenges - the bug does not happen. The result names the new
 * connection and the trace shows the unanswered request on the old one. */
START_TEST(test_listener_idle_timeout)
{
  struct kbt_env e;
  struct proxy_config o;
  struct sim_clock clock;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i, unanswered = 0;

  sim_clock_init(&clock);
  memset(&o, 0, sizeof(o));
  o.policy = PROXY_POLICY_PER_CONNECTION;
  o.idle_timeout_ms = 1000;
  o.clock = sim_kb_clock(&clock);
  cl_env_start_with(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 25, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.clock = sim_kb_clock(&clock);
  cc.think_min_ms = cc.think_max_ms = 2000;
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *res = client_result(c, i);
    ck_assert_msg(res->outcome == CLIENT_OK, "POST %zu: %s", i, res->detail);
    ck_assert_uint_eq(res->legs, i ? 2 : 3);
    ck_assert_int_eq(res->leg1_status, 401);
    ck_assert_uint_eq(res->connection, i + 1);
    ck_assert(res->new_connection);
  }
  client_destroy(c);
  kbt_assert_serial_conns(&rec, "client 25", 3);
  for(i = 0; i < rec.n; i++)
    if(rec.ev[i].kind == KB_TRACE_EXCHANGE &&
       !strcmp(rec.ev[i].origin, "client 25") && rec.ev[i].ex.status == 0) {
      ck_assert_uint_eq(rec.ev[i].conn, unanswered + 1);
      ck_assert_int_eq(rec.ev[i].ex.req_auth, KB_AUTH_NTLM_NEGOTIATE);
      unanswered++;
    }
  ck_assert_uint_eq(unanswered, 2);
  ck_assert_ptr_nonnull(kbt_find_note(&rec, "client 25",
                                      "connection 2 was closed without an "
                                      "answer; libcurl sent the request "
                                      "again on connection 3"));
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.idle_closed, 2);
  ck_assert_uint_eq(ps.connections, 3);
  ck_assert_uint_eq(ps.reauth_skipped, 0);
  ck_assert_uint_eq(ps.challenges, 3);
  pthread_mutex_destroy(&clock.lock);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* Outlook meets the listener's idle timeout: libcurl resends on a new
 * connection and its NTLM authenticates that one by itself. */
START_TEST(test_outlook_listener_idle_timeout)
{
  struct kbt_env e;
  struct proxy_config o;
  struct sim_clock clock;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  sim_clock_init(&clock);
  memset(&o, 0, sizeof(o));
  o.idle_timeout_ms = 1000;
  o.clock = sim_kb_clock(&clock);
  cl_env_start_with(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 26, "alice", KBT_ALICE_PASSWORD);
  cc.kind = CLIENT_KIND_OUTLOOK;
  cc.trace = kbt_trace_sink(&rec);
  cc.clock = sim_kb_clock(&clock);
  cc.think_min_ms = cc.think_max_ms = 2000;
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *res = client_result(c, i);
    ck_assert_msg(res->outcome == CLIENT_OK, "POST %zu: %s", i, res->detail);
    ck_assert_msg(res->legs == (i ? 3u : 2u), "POST %zu: %u legs", i,
                  res->legs);
    ck_assert_int_eq(res->leg1_status, 401);
    ck_assert_uint_eq(res->connection, i + 1);
    ck_assert(res->new_connection);
  }
  client_destroy(c);
  kbt_assert_serial_conns(&rec, "client 26", 3);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.idle_closed, 2);
  ck_assert_uint_eq(ps.auth_ok, 3);
  pthread_mutex_destroy(&clock.lock);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

Suite *client_kinds_suite(void)
{
  Suite *s = suite_create("kinds");
  TCase *tc = tcase_create("kinds");

  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_outlook, 0, 2);
  tcase_add_loop_test(tc, test_one_shot, 0, 2);
  tcase_add_test(tc, test_think_time);
  tcase_add_loop_test(tc, test_client_idle_timeout, 0, 2);
  tcase_add_loop_test(tc, test_client_max_requests, 0,
                      (int)(sizeof(max_cases) / sizeof(max_cases[0])));
  tcase_add_test(tc, test_balancer);
  tcase_add_test(tc, test_balancer_keepalive);
  tcase_add_test(tc, test_listener_basic);
  tcase_add_test(tc, test_listener_none);
  tcase_add_test(tc, test_listener_idle_timeout);
  tcase_add_test(tc, test_outlook_listener_idle_timeout);
  suite_add_tcase(s, tc);
  return s;
}
