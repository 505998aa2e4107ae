/*
 * test_client.c - Communicator's Outlook integration (client.h) against the
 * real listener and Exchange (proxy.h, backend.h) on 127.0.0.1, plus a
 * scripted peer for answers our own servers never give (a bare 401, a 404,
 * a broken challenge, connections closed after every response).
 *
 * Every test asserts exact outcomes, statuses, counts and bytes. Nothing
 * sleeps: servers bind port 0, threads are joined, and the scripted peer
 * waits on poll() with a stop pipe.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/backend.h"
#include "client/client.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"

/* 2009-03-17 16:26:24 GMT, the Date of the support case's 500. */
#define TEST_NOW_MS KBT_CASE_MS
#define TEST_PASSWORD "Passw0rd!"

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

/* ---- the trace, as tests/kbt.h records it ----------------------------- */

/* Counts events of kind from origin (any origin when NULL). */
static size_t rec_count(struct kbt_trace *r, enum kb_trace_kind kind,
                        const char *origin)
{
  size_t i, n = 0;
  for(i = 0; i < r->n; i++)
    if(r->ev[i].kind == kind && (!origin || !strcmp(r->ev[i].origin, origin)))
      n++;
  return n;
}

/* Returns the index of the first SEND from origin whose bytes start with
 * prefix, at or after from; r->n when none. */
static size_t rec_find_send(struct kbt_trace *r, const char *origin,
                            const char *prefix, size_t from)
{
  size_t i;
  for(i = from; i < r->n; i++)
    if(r->ev[i].kind == KB_TRACE_SEND && !strcmp(r->ev[i].origin, origin) &&
       r->ev[i].len >= strlen(prefix) &&
       !memcmp(r->ev[i].text, prefix, strlen(prefix)))
      return i;
  return r->n;
}

/* ---- fixed clock and random source ------------------------------------- */

static int64_t fixed_now(void *ctx, const char *who)
{
  (void)ctx;
  (void)who;
  return TEST_NOW_MS;
}

struct labels {
  pthread_mutex_t lock;
  char seen[16][64];
  size_t n;
};

static void fixed_fill(void *ctx, const char *label, uint8_t *buf, size_t len)
{
  struct labels *l = ctx;
  if(l) {
    pthread_mutex_lock(&l->lock);
    if(l->n < 16)
      snprintf(l->seen[l->n++], sizeof(l->seen[0]), "%s", label);
    pthread_mutex_unlock(&l->lock);
  }
  memset(buf, 0xaa, len);
}

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
  k->now = TEST_NOW_MS;
}

static struct kb_clock sim_kb_clock(struct sim_clock *k)
{
  struct kb_clock clock = {sim_now, sim_advance, k};
  return clock;
}

/* Bytes that depend on the seed (*ctx) and the label only: FNV-1a of the
 * label, then splitmix64. */
static void seeded_fill(void *ctx, const char *label, uint8_t *buf, size_t len)
{
  const uint64_t *seed = ctx;
  uint64_t h = UINT64_C(14695981039346656037) ^ *seed;
  uint64_t z = 0;
  size_t i;
  for(i = 0; label[i]; i++) {
    h ^= (uint8_t)label[i];
    h *= UINT64_C(1099511628211);
  }
  for(i = 0; i < len; i++) {
    if(i % 8 == 0) {
      h += UINT64_C(0x9e3779b97f4a7c15);
      z = h;
      z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
      z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
      z ^= z >> 31;
    }
    buf[i] = (uint8_t)(z >> (8 * (i % 8)));
  }
}

/* ---- the real topology ------------------------------------------------- */

struct env {
  struct kb_users *users;
  struct backend *backend;
  struct proxy *proxy;
  char url[64];
  char backend_url[64];
};

/* How the listener is set up; zero is ISA as the existing tests know it. */
struct env_opts {
  enum proxy_policy policy;
  enum proxy_auth auth;
  int64_t idle_timeout_ms;
  struct kb_clock clock;
};

/* Starts one more listener in front of e's backend. */
static struct proxy *env_proxy(struct env *e, const struct env_opts *o)
{
  char err[256] = "";
  struct proxy_config pc;
  struct proxy *proxy = NULL;
  memset(&pc, 0, sizeof(pc));
  pc.bind_host = "127.0.0.1";
  pc.backend_url = e->backend_url;
  pc.policy = o->policy;
  pc.users = e->users;
  pc.auth = o->auth;
  pc.idle_timeout_ms = o->idle_timeout_ms;
  pc.clock = o->clock;
  ck_assert_msg(proxy_start(&pc, &proxy, err, sizeof(err)) == 0,
                "proxy_start: %s", err);
  return proxy;
}

static void env_start_opts(struct env *e, const struct env_opts *o)
{
  char err[256] = "";
  struct backend_config bc;
  unsigned i;
  memset(e, 0, sizeof(*e));
  e->users = kb_users_new();
  ck_assert_ptr_nonnull(e->users);
  ck_assert_int_eq(kb_users_add(e->users, "FABRIKAM", "alice", TEST_PASSWORD,
                                err, sizeof(err)),
                   0);
  for(i = 0; i < 8; i++) {
    char user[16];
    snprintf(user, sizeof(user), "user%u", i);
    ck_assert_int_eq(kb_users_add(e->users, "FABRIKAM", user, TEST_PASSWORD,
                                  err, sizeof(err)),
                     0);
  }
  memset(&bc, 0, sizeof(bc));
  bc.bind_host = "127.0.0.1";
  ck_assert_msg(backend_start(&bc, &e->backend, err, sizeof(err)) == 0,
                "backend_start: %s", err);
  snprintf(e->backend_url, sizeof(e->backend_url), "http://127.0.0.1:%u",
           (unsigned)backend_port(e->backend));
  e->proxy = env_proxy(e, o);
  snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%u",
           (unsigned)proxy_port(e->proxy));
}

static void env_start(struct env *e, enum proxy_policy policy)
{
  struct env_opts o;
  memset(&o, 0, sizeof(o));
  o.policy = policy;
  env_start_opts(e, &o);
}

static void env_stop(struct env *e)
{
  proxy_stop(e->proxy);
  backend_stop(e->backend);
  kb_users_free(e->users);
}

static struct client_config config_for(const char *url, unsigned id,
                                       const char *user, const char *password)
{
  struct client_config cc;
  memset(&cc, 0, sizeof(cc));
  cc.id = id;
  cc.base_url = url;
  cc.domain = "FABRIKAM";
  cc.user = user;
  cc.password = password;
  cc.clock.now_ms = fixed_now;
  cc.rng.fill = fixed_fill;
  return cc;
}

static struct client *client_new(const struct client_config *cc)
{
  struct client *c = NULL;
  char err[256] = "";
  ck_assert_msg(client_create(cc, &c, err, sizeof(err)) == 0,
                "client_create: %s", err);
  ck_assert_ptr_nonnull(c);
  return c;
}

/* ---- the bug and the fix ------------------------------------------------ */

START_TEST(test_per_connection_bug)
{
  struct env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  const struct client_post_result *r;
  unsigned i;

  env_start(&e, PROXY_POLICY_PER_CONNECTION);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 1, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
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
  ck_assert_int_eq(r->at_ms, TEST_NOW_MS);
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

  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 2);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.autodiscover_ok, 1);
  ck_assert_uint_eq(bs.oof_ok, 0);
  ck_assert_uint_eq(bs.availability_ok, 0);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.connections, 1);
  ck_assert_uint_eq(ps.reauth_skipped, 2);
  ck_assert_uint_eq(ps.challenges, 1);

  client_destroy(c);
  /* One connection, opened once and closed by client_destroy; one EXCHANGE
   * per leg; the notification once and the log line per failed POST. */
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_OPEN, "client 1"), 1);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_CLOSE, "client 1"), 1);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_EXCHANGE, "client 1"), 5);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_NOTE, "client 1"), 3);
  for(i = 0; i < rec.n; i++) {
    ck_assert_int_eq(rec.ev[i].hop, KB_HOP_CLIENT_PROXY);
    ck_assert_int_eq(rec.ev[i].side, KB_SIDE_CLIENT);
    ck_assert_uint_eq(rec.ev[i].conn, 1);
  }
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

START_TEST(test_per_request_fix)
{
  struct env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  unsigned i;
  size_t n = 0;

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 2, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
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

  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  ck_assert_uint_eq(bs.autodiscover_ok, 1);
  proxy_stats(e.proxy, &ps);
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
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_NOTE, NULL), 0);
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

/* The policy switched between two steps of one session takes effect on the
 * same connection: the fix needs no reconnect. */
START_TEST(test_policy_switch_midsession)
{
  struct env e;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  struct backend_stats bs;

  env_start(&e, PROXY_POLICY_PER_CONNECTION);
  cc = config_for(e.url, 3, "alice", TEST_PASSWORD);
  cc.ews_posts = 4;
  c = client_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_SERVER_ERROR);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_SERVER_ERROR);
  client_view(c, &v);
  ck_assert(!v.presence_available && !v.scheduling_available);
  proxy_set_policy(e.proxy, PROXY_POLICY_PER_REQUEST);
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
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 2);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  client_destroy(c);
  env_stop(&e);
}
END_TEST

START_TEST(test_wrong_password)
{
  struct env e;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  cc = config_for(e.url, 4, "alice", "wrong");
  c = client_new(&cc);
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
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.requests, 0);
  ck_assert_uint_eq(bs.connections, 0);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.auth_failed, 1);
  ck_assert_uint_eq(ps.forwarded, 0);
  client_destroy(c);
  env_stop(&e);
}
END_TEST

/* ---- the bytes on the wire ---------------------------------------------- */

START_TEST(test_leg_bytes)
{
  struct env e;
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

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 5, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_destroy(c);

  /* Autodiscover leg 1, WinINet's first request: the case's headers in
   * the case's order, the real length, no Authorization; the body follows
   * as its own SEND. */
  i = rec_find_send(&rec, "client 5", "POST /autodiscover/", 0);
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
  i = rec_find_send(&rec, "client 5", "POST /autodiscover/", i + 1);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_str_eq(rec.ev[i].text, expect);

  /* The first EWS leg 1 is the support case's request, exactly. */
  i = rec_find_send(&rec, "client 5", "POST /EWS/", 0);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_uint_eq(rec.ev[i].len, strlen(case_leg1));
  ck_assert_str_eq(rec.ev[i].text, case_leg1);
  ck_assert_uint_eq(rec.ev[i].conn, 1);

  /* Its leg 2: same headers in the same order, the real length, the type 3
   * last, then exactly that many bytes of body. */
  j = rec_find_send(&rec, "client 5", "POST /EWS/", i + 1);
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
  env_stop(&e);
}
END_TEST

/* Bodies: the autodiscover request schema, the contacts, the time window
 * from the configured clock, and client challenges drawn under stable
 * labels from the configured random source. */
START_TEST(test_bodies_clock_rng)
{
  static const char *const contacts[] = {"dave@fabrikam.com",
                                         "erin&co@fabrikam.com", NULL};
  struct env e;
  struct kbt_trace rec;
  struct labels labels;
  struct client_config cc;
  struct client *c;
  size_t i;
  const char *ad;
  const char *av;

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  memset(&labels, 0, sizeof(labels));
  pthread_mutex_init(&labels.lock, NULL);
  cc = config_for(e.url, 7, "user3", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.rng.ctx = &labels;
  cc.contacts = contacts;
  cc.email = "user3@contoso.com";
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_destroy(c);

  ck_assert_uint_eq(labels.n, 3);
  ck_assert_str_eq(labels.seen[0], "client/7/post/0/client-challenge");
  ck_assert_str_eq(labels.seen[1], "client/7/post/1/client-challenge");
  ck_assert_str_eq(labels.seen[2], "client/7/post/2/client-challenge");

  /* The autodiscover body is the second SEND of the autodiscover leg 3
   * (the type 3). */
  i = rec_find_send(&rec, "client 7", "POST /autodiscover/", 0);
  i = rec_find_send(&rec, "client 7", "POST /autodiscover/", i + 1);
  i = rec_find_send(&rec, "client 7", "POST /autodiscover/", i + 1);
  i = rec_find_send(&rec, "client 7", "<?xml", i + 1);
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

  i = rec_find_send(&rec, "client 7", "<?xml", i + 1); /* OOF */
  i = rec_find_send(&rec, "client 7", "<?xml", i + 1); /* availability */
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

  pthread_mutex_destroy(&labels.lock);
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

static const enum ntlm_response_kind kinds[] = {
    NTLM_RESPONSE_V2, NTLM_RESPONSE_V1, NTLM_RESPONSE_V1_ESS};

START_TEST(test_ntlm_kinds)
{
  struct env e;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  cc = config_for(e.url, 8, "user1", TEST_PASSWORD);
  cc.ntlm_kind = kinds[_i];
  c = client_new(&cc);
  ck_assert_msg(client_run_session(c) == 0, "%s: %s",
                ntlm_response_kind_name(kinds[_i]),
                client_result(c, 0)->detail);
  client_view(c, &v);
  ck_assert(v.presence_available && v.scheduling_available);
  ck_assert_uint_eq(v.posts_ok, 3);
  client_destroy(c);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.auth_ok, 3);
  ck_assert_uint_eq(ps.auth_failed, 0);
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  env_stop(&e);
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
  cc = config_for(url, 9, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
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
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_OPEN, NULL), 0);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_CLOSE, NULL), 0);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_EXCHANGE, NULL), 1);
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

  cc = config_for(NULL, 1, "alice", TEST_PASSWORD);
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_ptr_null(c);
  ck_assert_str_eq(err, "client: no listener URL; set base_url, e.g. "
                        "http://127.0.0.1:8080");
  cc = config_for("ftp://127.0.0.1/", 1, "alice", TEST_PASSWORD);
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "'ftp://127.0.0.1/' is not an http(s) "
                                    "URL"));
  cc = config_for("http://127.0.0.1:1", 1, "alice", NULL);
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: no credentials; set domain, user and "
                        "password");
  cc = config_for("http://127.0.0.1:1", 1, "alice", TEST_PASSWORD);
  cc.host = "evil\r\nX-Injected: 1";
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: host must be a non-empty name without "
                        "control characters");
  cc = config_for("http://127.0.0.1:1", 1, "alice", TEST_PASSWORD);
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
  cc = config_for(w->url, w->id, user, TEST_PASSWORD);
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
  struct env e;
  struct kbt_trace rec;
  struct worker w[TEST_THREADS];
  struct backend_stats bs;
  struct proxy_stats ps;
  unsigned i, j;

  env_start(&e, policy);
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
    ck_assert_uint_eq(rec_count(&rec, KB_TRACE_OPEN, origin), 1);
    ck_assert_uint_eq(rec_count(&rec, KB_TRACE_CLOSE, origin), 1);
    ck_assert_uint_eq(rec_count(&rec, KB_TRACE_EXCHANGE, origin),
                      policy == PROXY_POLICY_PER_REQUEST
                          ? 1 + 2 * (1 + TEST_THREAD_EWS)
                          : 3 + TEST_THREAD_EWS);
  }
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.connections, TEST_THREADS);
  backend_stats(e.backend, &bs);
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
  env_stop(&e);
}
END_TEST

/* ---- kinds, think time, keep-alive limits ------------------------------- */

/* Counts SEND events from origin whose bytes contain needle. */
static size_t rec_count_sends_with(struct kbt_trace *r, const char *origin,
                                   const char *needle)
{
  size_t i, n = 0;
  for(i = 0; i < r->n; i++)
    if(r->ev[i].kind == KB_TRACE_SEND && !strcmp(r->ev[i].origin, origin) &&
       strstr(r->ev[i].text, needle))
      n++;
  return n;
}

/* Returns the first NOTE from origin containing needle, or NULL. */
static const char *rec_find_note(struct kbt_trace *r, const char *origin,
                                 const char *needle)
{
  size_t i;
  for(i = 0; i < r->n; i++)
    if(r->ev[i].kind == KB_TRACE_NOTE && !strcmp(r->ev[i].origin, origin) &&
       strstr(r->ev[i].text, needle))
      return r->ev[i].text;
  return NULL;
}

/* Asserts that origin's OPEN and CLOSE events number connections 1..n in
 * order, each closed before the next opens, all n closed. */
static void rec_assert_serial_conns(struct kbt_trace *r, const char *origin,
                                    uint64_t n)
{
  uint64_t open = 0, closed = 0;
  size_t i;
  for(i = 0; i < r->n; i++) {
    if(strcmp(r->ev[i].origin, origin))
      continue;
    if(r->ev[i].kind == KB_TRACE_OPEN) {
      ck_assert_uint_eq(closed, open);
      ck_assert_uint_eq(r->ev[i].conn, ++open);
    }
    else if(r->ev[i].kind == KB_TRACE_CLOSE) {
      ck_assert_uint_eq(r->ev[i].conn, open);
      closed++;
    }
  }
  ck_assert_uint_eq(open, n);
  ck_assert_uint_eq(closed, n);
}

START_TEST(test_kind_names)
{
  static const char *const names[] = {"communicator", "outlook", "one-shot"};
  struct client_config cc;
  struct client *c = NULL;
  enum client_kind k;
  char err[256];
  int i;

  for(i = 0; i < 3; i++) {
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

  cc = config_for("http://127.0.0.1:1", 1, "alice", TEST_PASSWORD);
  cc.kind = (enum client_kind)7;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: unknown client kind; use communicator, "
                        "outlook or one-shot");
  cc = config_for("http://127.0.0.1:1", 1, "alice", TEST_PASSWORD);
  cc.think_min_ms = 10;
  cc.think_max_ms = 5;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: think time must satisfy 0 <= think_min_ms "
                        "<= think_max_ms");
  cc.think_min_ms = -1;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  cc = config_for("http://127.0.0.1:1", 1, "alice", TEST_PASSWORD);
  cc.idle_timeout_ms = -5;
  ck_assert_int_eq(client_create(&cc, &c, err, sizeof(err)), -1);
  ck_assert_str_eq(err, "client: idle_timeout_ms must be 0 (no limit) or "
                        "positive");
  ck_assert_ptr_null(c);
}
END_TEST

/* Outlook authenticates its connection once with libcurl's NTLM and sends
 * every later POST on it without Authorization: no body-less POST ever
 * reaches Exchange, whatever the policy. */
START_TEST(test_outlook)
{
  enum proxy_policy policy =
      _i ? PROXY_POLICY_PER_REQUEST : PROXY_POLICY_PER_CONNECTION;
  struct env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i, n = 0, first_ews;

  env_start(&e, policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 15, "alice", TEST_PASSWORD);
  cc.kind = CLIENT_KIND_OUTLOOK;
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
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

  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  ck_assert_uint_eq(bs.autodiscover_ok, 1);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.connections, 1);
  ck_assert_uint_eq(ps.challenges, 1);
  ck_assert_uint_eq(ps.auth_ok, 1);
  ck_assert_uint_eq(ps.reauth_skipped, 0);

  /* Outlook's User-Agent on every request; Authorization only in the
   * autodiscover handshake, none from the first EWS POST on. */
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_OPEN, "client 15"), 1);
  ck_assert_uint_eq(rec_count_sends_with(&rec, "client 15",
                                         "\r\nUser-Agent: Microsoft Office/"
                                         "12.0 (Windows NT 5.1; Microsoft "
                                         "Office Outlook 12.0.4518; Pro)\r\n"),
                    4);
  ck_assert_uint_eq(
      rec_count_sends_with(&rec, "client 15", "\r\nAuthorization: NTLM "), 2);
  first_ews = rec_find_send(&rec, "client 15", "POST /EWS/", 0);
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
  env_stop(&e);
}
END_TEST

/* One-shot does Communicator's handshake on a new connection for every
 * POST and closes it afterwards: never a type 1 on an authenticated
 * connection, so clean under both policies. */
START_TEST(test_one_shot)
{
  enum proxy_policy policy =
      _i ? PROXY_POLICY_PER_REQUEST : PROXY_POLICY_PER_CONNECTION;
  struct env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  env_start(&e, policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 16, "alice", TEST_PASSWORD);
  cc.kind = CLIENT_KIND_ONE_SHOT;
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
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
  rec_assert_serial_conns(&rec, "client 16", 3);
  client_destroy(c);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_CLOSE, "client 16"), 3);

  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.connections, 3);
  ck_assert_uint_eq(ps.challenges, 3);
  ck_assert_uint_eq(ps.auth_ok, 3);
  ck_assert_uint_eq(ps.reauth_skipped, 0);
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

#define THINK_POSTS 4

/* Runs a session of client id with the given seed and think range on a
 * simulated clock, copying the results into r (1 + THINK_POSTS). */
static void think_session(const char *url, unsigned id, uint64_t seed,
                          int64_t min, int64_t max,
                          struct client_post_result *r, struct labels *labels)
{
  struct sim_clock clock;
  struct client_config cc;
  struct client *c;
  size_t i;
  char origin[32];

  sim_clock_init(&clock);
  cc = config_for(url, id, "alice", TEST_PASSWORD);
  cc.ews_posts = THINK_POSTS;
  cc.think_min_ms = min;
  cc.think_max_ms = max;
  cc.clock = sim_kb_clock(&clock);
  cc.rng.fill = seeded_fill;
  cc.rng.ctx = &seed;
  if(labels) {
    /* Record the labels, but draw the seeded bytes. */
    cc.rng.fill = fixed_fill;
    cc.rng.ctx = labels;
  }
  c = client_new(&cc);
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
}

/* Think time: drawn under "client/<id>/post/<n>/think" before each EWS
 * POST (never before autodiscover), uniform in [min, max] as the 8 bytes
 * big-endian modulo the width plus min, spent on the client's timeline:
 * the same seed gives the same times, another seed others. */
START_TEST(test_think_time)
{
  struct env e;
  struct client_post_result a[1 + THINK_POSTS], b[1 + THINK_POSTS],
      d[1 + THINK_POSTS], f[1 + THINK_POSTS];
  struct labels labels;
  const int64_t min = 1000, max = 9000;
  uint64_t seed = 7;
  size_t i;
  bool differs = false;

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  think_session(e.url, 31, 7, min, max, a, NULL);
  think_session(e.url, 31, 7, min, max, b, NULL);
  think_session(e.url, 31, 8, min, max, d, NULL);
  ck_assert_int_eq(a[0].think_ms, 0);
  ck_assert_int_eq(a[0].at_ms, TEST_NOW_MS);
  for(i = 1; i <= THINK_POSTS; i++) {
    char label[64];
    uint8_t raw[8];
    uint64_t v = 0;
    size_t j;
    snprintf(label, sizeof(label), "client/31/post/%zu/think", i);
    seeded_fill(&seed, label, raw, sizeof(raw));
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
  memset(&labels, 0, sizeof(labels));
  pthread_mutex_init(&labels.lock, NULL);
  think_session(e.url, 32, 1, 250, 250, f, &labels);
  for(i = 1; i <= THINK_POSTS; i++) {
    ck_assert_int_eq(f[i].think_ms, 250);
    ck_assert_int_eq(f[i].at_ms, TEST_NOW_MS + 250 * (int64_t)i);
  }
  ck_assert_uint_eq(labels.n, 1 + 2 * THINK_POSTS);
  ck_assert_str_eq(labels.seen[0], "client/32/post/0/client-challenge");
  ck_assert_str_eq(labels.seen[1], "client/32/post/1/think");
  ck_assert_str_eq(labels.seen[2], "client/32/post/1/client-challenge");
  ck_assert_str_eq(labels.seen[7], "client/32/post/4/think");
  pthread_mutex_destroy(&labels.lock);

  /* No think time: no draw, no advance. */
  think_session(e.url, 33, 1, 0, 0, f, NULL);
  for(i = 0; i <= THINK_POSTS; i++) {
    ck_assert_int_eq(f[i].think_ms, 0);
    ck_assert_int_eq(f[i].at_ms, TEST_NOW_MS);
  }
  env_stop(&e);
}
END_TEST

/* The client's own idle timeout: a connection idle (on the client's
 * timeline) longer than idle_timeout_ms is closed before the next POST,
 * which then starts unauthenticated on a new one - so even ISA as shipped
 * challenges it. A timeout longer than the think time changes nothing. */
START_TEST(test_client_idle_timeout)
{
  bool expires = _i == 0;
  struct env e;
  struct kbt_trace rec;
  struct sim_clock clock;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  const char *note;
  size_t i;

  env_start(&e, PROXY_POLICY_PER_CONNECTION);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  sim_clock_init(&clock);
  cc = config_for(e.url, 17, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.clock = sim_kb_clock(&clock);
  cc.think_min_ms = cc.think_max_ms = 2000;
  cc.idle_timeout_ms = expires ? 1999 : 2000;
  c = client_new(&cc);
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
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_CLOSE, "client 17"),
                    expires ? 2 : 0);
  client_destroy(c);
  rec_assert_serial_conns(&rec, "client 17", expires ? 3 : 1);
  note = rec_find_note(&rec, "client 17", "closing connection 1: idle");
  if(expires)
    ck_assert_str_eq(note, "closing connection 1: idle for 2000 ms, longer "
                           "than the client's idle timeout of 1999 ms");
  else
    ck_assert_ptr_null(note);
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, expires ? 0 : 2);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.connections, expires ? 3 : 1);
  ck_assert_uint_eq(ps.reauth_skipped, expires ? 0 : 2);
  pthread_mutex_destroy(&clock.lock);
  kbt_trace_free(&rec);
  env_stop(&e);
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
  struct env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  env_start(&e, mc->policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 18, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.max_requests = mc->max_requests;
  c = client_new(&cc);
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
  rec_assert_serial_conns(&rec, "client 18", mc->connections);
  ck_assert_ptr_nonnull(rec_find_note(&rec, "client 18",
                                      "closing connection "
                                      "1 after "));
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.connections, mc->connections);
  ck_assert_uint_eq(ps.auth_failed, 0);
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, mc->failed);
  kbt_trace_free(&rec);
  env_stop(&e);
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
  struct env e;
  struct env_opts o;
  struct proxy *second;
  struct pick_ctx pick;
  struct client_config cc;
  struct client *c;
  struct proxy_stats ps1, ps2;
  struct backend_stats bs;
  size_t i;

  env_start(&e, PROXY_POLICY_PER_CONNECTION);
  memset(&o, 0, sizeof(o));
  o.policy = PROXY_POLICY_PER_CONNECTION;
  second = env_proxy(&e, &o);
  memset(&pick, 0, sizeof(pick));
  pick.ports[0] = proxy_port(e.proxy);
  pick.ports[1] = proxy_port(second);
  cc = config_for(e.url, 41, "alice", TEST_PASSWORD);
  cc.kind = CLIENT_KIND_ONE_SHOT;
  cc.ews_posts = 3;
  cc.balancer.pick = pick_alternate;
  cc.balancer.ctx = &pick;
  c = client_new(&cc);
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
  proxy_stats(e.proxy, &ps1);
  proxy_stats(second, &ps2);
  ck_assert_uint_eq(ps1.connections, 2);
  ck_assert_uint_eq(ps2.connections, 2);
  ck_assert_uint_eq(ps1.auth_ok, 2);
  ck_assert_uint_eq(ps2.auth_ok, 2);
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok + bs.availability_ok, 3);
  proxy_stop(second);
  env_stop(&e);
}
END_TEST

/* Communicator behind a balancer keeps its connection: one pick, one
 * member, the bug as usual. */
START_TEST(test_balancer_keepalive)
{
  struct env e;
  struct env_opts o;
  struct proxy *second;
  struct pick_ctx pick;
  struct client_config cc;
  struct client *c;
  struct proxy_stats ps1, ps2;

  env_start(&e, PROXY_POLICY_PER_CONNECTION);
  memset(&o, 0, sizeof(o));
  second = env_proxy(&e, &o);
  memset(&pick, 0, sizeof(pick));
  pick.ports[0] = proxy_port(e.proxy);
  pick.ports[1] = proxy_port(second);
  pick.calls = 1; /* the first pick goes to member 2 */
  cc = config_for(e.url, 42, "alice", TEST_PASSWORD);
  cc.balancer.pick = pick_alternate;
  cc.balancer.ctx = &pick;
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 2);
  client_destroy(c);
  ck_assert_uint_eq(pick.calls, 2);
  ck_assert_str_eq(pick.names[1], "client 42 conn 1");
  proxy_stats(e.proxy, &ps1);
  proxy_stats(second, &ps2);
  ck_assert_uint_eq(ps1.connections, 0);
  ck_assert_uint_eq(ps2.connections, 1);
  ck_assert_uint_eq(ps2.reauth_skipped, 2);
  proxy_stop(second);
  env_stop(&e);
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
  struct env e;
  struct env_opts o;
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
  env_start_opts(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 22, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
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
  ck_assert_uint_eq(rec_count_sends_with(&rec, "client 22", "POST /"), 4);
  ck_assert_uint_eq(rec_count_sends_with(&rec, "client 22",
                                         "\r\n" TEST_BASIC_ALICE "\r\n\r\n"),
                    3);
  ck_assert_uint_eq(rec_count_sends_with(&rec, "client 22", "NTLM"), 0);
  for(i = 0; i < rec.n; i++)
    if(rec.ev[i].kind == KB_TRACE_EXCHANGE)
      ck_assert_uint_gt(rec.ev[i].ex.req_body_len, 0);
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.ews_posts, 2);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.basic_ok, 3);
  ck_assert_uint_eq(ps.basic_failed, 0);
  ck_assert_uint_eq(ps.challenges, 0);

  /* A wrong password: refused at the Basic leg, nothing forwarded. */
  cc = config_for(e.url, 27, "alice", "wrong");
  c = client_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r.legs, 2);
  ck_assert_int_eq(r.final_status, 401);
  ck_assert_str_eq(r.detail, "HTTP 401 to Basic credentials: the listener "
                             "refused FABRIKAM\\alice; check the user name "
                             "and password");
  ck_assert_int_eq(client_step(c, &r), 0);
  client_destroy(c);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.basic_failed, 1);
  ck_assert_uint_eq(ps.forwarded, 3);

  cc = config_for(e.url, 23, "alice", TEST_PASSWORD);
  cc.kind = CLIENT_KIND_OUTLOOK;
  c = client_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r.legs, 1);
  ck_assert_ptr_nonnull(strstr(r.detail, "must accept Integrated"));
  client_destroy(c);
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

/* An anonymous listener: the plain first request gets its answer, and no
 * Authorization is ever sent. */
START_TEST(test_listener_none)
{
  struct env e;
  struct env_opts o;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  memset(&o, 0, sizeof(o));
  o.policy = PROXY_POLICY_PER_CONNECTION;
  o.auth = PROXY_AUTH_NONE;
  env_start_opts(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 24, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *res = client_result(c, i);
    ck_assert_msg(res->outcome == CLIENT_OK, "POST %zu: %s", i, res->detail);
    ck_assert_uint_eq(res->legs, 1);
    ck_assert_int_eq(res->leg1_status, 200);
    ck_assert_uint_eq(res->connection, 1);
  }
  client_destroy(c);
  ck_assert_uint_eq(rec_count_sends_with(&rec, "client 24", "POST /"), 3);
  ck_assert_uint_eq(rec_count_sends_with(&rec, "client 24", "Authorization"),
                    0);
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.challenges, 0);
  ck_assert_uint_eq(ps.forwarded, 3);
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

/* The listener's idle timeout on the simulated clock: after the think
 * time, ISA as shipped has closed the authenticated connection, so the
 * type 1 finds it gone; libcurl resends it on a new connection, which ISA
 * challenges - the bug does not happen. The result names the new
 * connection and the trace shows the unanswered request on the old one. */
START_TEST(test_listener_idle_timeout)
{
  struct env e;
  struct env_opts o;
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
  env_start_opts(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 25, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  cc.clock = sim_kb_clock(&clock);
  cc.think_min_ms = cc.think_max_ms = 2000;
  c = client_new(&cc);
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
  rec_assert_serial_conns(&rec, "client 25", 3);
  for(i = 0; i < rec.n; i++)
    if(rec.ev[i].kind == KB_TRACE_EXCHANGE &&
       !strcmp(rec.ev[i].origin, "client 25") && rec.ev[i].ex.status == 0) {
      ck_assert_uint_eq(rec.ev[i].conn, unanswered + 1);
      ck_assert_int_eq(rec.ev[i].ex.req_auth, KB_AUTH_NTLM_NEGOTIATE);
      unanswered++;
    }
  ck_assert_uint_eq(unanswered, 2);
  ck_assert_ptr_nonnull(rec_find_note(&rec, "client 25",
                                      "connection 2 was closed without an "
                                      "answer; libcurl sent the request "
                                      "again on connection 3"));
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  ck_assert_uint_eq(bs.oof_ok, 1);
  ck_assert_uint_eq(bs.availability_ok, 1);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.idle_closed, 2);
  ck_assert_uint_eq(ps.connections, 3);
  ck_assert_uint_eq(ps.reauth_skipped, 0);
  ck_assert_uint_eq(ps.challenges, 3);
  pthread_mutex_destroy(&clock.lock);
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

/* Outlook meets the listener's idle timeout: libcurl resends on a new
 * connection and its NTLM authenticates that one by itself. */
START_TEST(test_outlook_listener_idle_timeout)
{
  struct env e;
  struct env_opts o;
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
  env_start_opts(&e, &o);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(e.url, 26, "alice", TEST_PASSWORD);
  cc.kind = CLIENT_KIND_OUTLOOK;
  cc.trace = kbt_trace_sink(&rec);
  cc.clock = sim_kb_clock(&clock);
  cc.think_min_ms = cc.think_max_ms = 2000;
  c = client_new(&cc);
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
  rec_assert_serial_conns(&rec, "client 26", 3);
  backend_stats(e.backend, &bs);
  ck_assert_uint_eq(bs.empty_posts, 0);
  proxy_stats(e.proxy, &ps);
  ck_assert_uint_eq(ps.idle_closed, 2);
  ck_assert_uint_eq(ps.auth_ok, 3);
  pthread_mutex_destroy(&clock.lock);
  kbt_trace_free(&rec);
  env_stop(&e);
}
END_TEST

/* ---- a scripted peer ---------------------------------------------------- */

/* Answers each request it reads with the next canned response; closes the
 * connection after a response whose close flag is set, and instead of
 * answering when the step has no response (a listener that found the
 * connection idle too long). Serves one connection at a time, which is all
 * one client uses. */
#define PEER_STEPS 12
struct peer_step {
  char *response; /* malloc'd; NULL: close without answering */
  bool close_after;
};

struct peer {
  int lfd;
  int stop[2];
  uint16_t port;
  struct peer_step steps[PEER_STEPS];
  size_t nsteps;
  pthread_t thread;
  /* Read after join. */
  unsigned accepts;
  unsigned requests;
  size_t body_len[PEER_STEPS];
  bool has_auth[PEER_STEPS]; /* the request carried Authorization */
  char buf[65536];
};

/* Waits for fd to be readable or the stop pipe to fire. Returns true when
 * fd is readable. */
static bool peer_wait(struct peer *p, int fd)
{
  struct pollfd pfd[2] = {{fd, POLLIN, 0}, {p->stop[0], POLLIN, 0}};
  if(poll(pfd, 2, 20000) <= 0 || (pfd[1].revents & POLLIN))
    return false;
  return true;
}

/* Reads one request into buf. Returns its body length, or -1 when the
 * client closed the connection (or stop fired) first. */
static long peer_read_request(struct peer *p, int fd, char *buf, size_t cap)
{
  size_t have = 0;
  for(;;) {
    char *end;
    ssize_t n;
    buf[have] = '\0';
    end = strstr(buf, "\r\n\r\n");
    if(end) {
      const char *cl = strstr(buf, "\r\nContent-Length: ");
      size_t hdr = (size_t)(end + 4 - buf);
      size_t body = cl ? strtoul(cl + 18, NULL, 10) : 0;
      if(have >= hdr + body)
        return (long)body;
    }
    if(have + 1 >= cap || !peer_wait(p, fd))
      return -1;
    n = read(fd, buf + have, cap - 1 - have);
    if(n <= 0)
      return -1;
    have += (size_t)n;
  }
}

/* Sends all of s; false when the client went away (no SIGPIPE). */
static bool peer_send(int fd, const char *s)
{
  size_t len = strlen(s), off = 0;
  while(off < len) {
    ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
    if(n <= 0)
      return false;
    off += (size_t)n;
  }
  return true;
}

static void *peer_main(void *arg)
{
  struct peer *p = arg;
  char *buf = p->buf;
  int conn = -1;
  size_t i = 0;
  while(i < p->nsteps) {
    long body;
    if(conn < 0) {
      if(!peer_wait(p, p->lfd))
        break;
      conn = accept(p->lfd, NULL, NULL);
      if(conn < 0)
        break;
      p->accepts++;
    }
    body = peer_read_request(p, conn, buf, sizeof(p->buf));
    if(body < 0) {
      close(conn);
      conn = -1;
      continue;
    }
    p->body_len[i] = (size_t)body;
    p->has_auth[i] = strstr(buf, "\r\nAuthorization: ") != NULL;
    p->requests++;
    if(p->steps[i].response && !peer_send(conn, p->steps[i].response))
      break;
    if(p->steps[i].close_after || !p->steps[i].response) {
      close(conn);
      conn = -1;
    }
    i++;
  }
  /* Hold the last connection until the client closes it. */
  if(conn >= 0) {
    while(peer_wait(p, conn) && read(conn, buf, sizeof(p->buf)) > 0)
      ;
    close(conn);
  }
  return NULL;
}

static void peer_add(struct peer *p, bool close_after, const char *status,
                     const char *headers, const char *body)
{
  size_t n = strlen(status) + strlen(headers) + strlen(body) + 128;
  char *s = malloc(n);
  ck_assert_ptr_nonnull(s);
  snprintf(s, n, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n%s", status,
           headers, strlen(body), body);
  ck_assert_uint_lt(p->nsteps, PEER_STEPS);
  p->steps[p->nsteps].response = s;
  p->steps[p->nsteps].close_after = close_after;
  p->nsteps++;
}

/* Adds a step that reads the request and closes the connection without
 * answering. */
static void peer_add_drop(struct peer *p)
{
  ck_assert_uint_lt(p->nsteps, PEER_STEPS);
  p->steps[p->nsteps].response = NULL;
  p->steps[p->nsteps].close_after = true;
  p->nsteps++;
}

/* The 401 of a listener accepting Integrated credentials, to a request
 * without Authorization. */
#define PEER_NTLM_OFFER "WWW-Authenticate: NTLM\r\n"

static void peer_start(struct peer *p)
{
  struct sockaddr_in sin;
  socklen_t slen = sizeof(sin);
  p->lfd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(p->lfd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(p->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  ck_assert_int_eq(listen(p->lfd, 8), 0);
  ck_assert_int_eq(getsockname(p->lfd, (struct sockaddr *)&sin, &slen), 0);
  p->port = ntohs(sin.sin_port);
  ck_assert_int_eq(pipe(p->stop), 0);
  ck_assert_int_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

/* Stops the peer (after the client is destroyed) and frees the script. */
static void peer_stop(struct peer *p)
{
  size_t i;
  ck_assert_int_eq(write(p->stop[1], "x", 1), 1);
  pthread_join(p->thread, NULL);
  close(p->stop[0]);
  close(p->stop[1]);
  close(p->lfd);
  for(i = 0; i < p->nsteps; i++)
    free(p->steps[i].response);
}

static const char autodiscover_ok_body[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
    "autodiscover/responseschema/2006\">"
    "<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
    "outlook/responseschema/2006a\"><Account><AccountType>email"
    "</AccountType><Action>settings</Action>"
    "<Protocol><Type>EXPR</Type><ASUrl>https://x/wrong</ASUrl></Protocol>"
    "<Protocol><Type> EXCH </Type>"
    "<ASUrl> https://mail.contoso.com/EWS/Other.asmx </ASUrl></Protocol>"
    "</Account></Response></Autodiscover>";

static const char oof_ok_body[] =
    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<s:Body><GetUserOofSettingsResponse xmlns=\"http://schemas.microsoft."
    "com/exchange/services/2006/messages\"><ResponseMessage "
    "ResponseClass=\"Success\"><ResponseCode>NoError</ResponseCode>"
    "</ResponseMessage></GetUserOofSettingsResponse></s:Body></s:Envelope>";

static const char availability_ok_body[] =
    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<s:Body><GetUserAvailabilityResponse xmlns=\"http://schemas.microsoft."
    "com/exchange/services/2006/messages\"><FreeBusyResponseArray>"
    "<FreeBusyResponse/></FreeBusyResponseArray>"
    "</GetUserAvailabilityResponse></s:Body></s:Envelope>";

/* A listener without authentication that closes the connection after each
 * response, with or without saying so: libcurl reconnects, the client
 * counts a connection per POST, and the EWS POSTs go to the ASUrl's path
 * on the listener. */
START_TEST(test_peer_reconnects)
{
  const char *hdr = _i ? "Connection: close\r\n" : "";
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  char url[64];
  size_t i;
  unsigned conn = 0;

  memset(&p, 0, sizeof(p));
  peer_add(&p, true, "200 OK", hdr, autodiscover_ok_body);
  peer_add(&p, true, "200 OK", hdr, oof_ok_body);
  peer_add(&p, true, "200 OK", hdr, availability_ok_body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(url, 11, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, 1);
    ck_assert_int_eq(r->leg1_status, 200);
    ck_assert_uint_eq(r->connection, i + 1);
    ck_assert(r->new_connection);
  }
  client_view(c, &v);
  ck_assert_str_eq(v.ews_url, "https://mail.contoso.com/EWS/Other.asmx");
  ck_assert(v.presence_available && v.scheduling_available);
  ck_assert(!v.integration_error);
  ck_assert_uint_eq(v.connections, 3);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.accepts, 3);
  ck_assert_uint_eq(p.requests, 3);
  /* The listener never asked: every POST went once, with its body and no
   * Authorization, each on its own new connection. */
  for(i = 0; i < 3; i++) {
    ck_assert_uint_gt(p.body_len[i], 0);
    ck_assert(!p.has_auth[i]);
  }
  ck_assert_uint_lt(
      rec_find_send(&rec, "client 11", "POST /EWS/Other.asmx ", 0), rec.n);
  /* OPEN n, CLOSE n, in order, for n = 1..3. */
  for(i = 0; i < rec.n; i++) {
    if(rec.ev[i].kind == KB_TRACE_OPEN) {
      ck_assert_uint_eq(rec.ev[i].conn, conn + 1);
      conn++;
    }
    else if(rec.ev[i].kind == KB_TRACE_CLOSE)
      ck_assert_uint_eq(rec.ev[i].conn, conn);
  }
  ck_assert_uint_eq(conn, 3);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_CLOSE, NULL), 3);
  kbt_trace_free(&rec);
}
END_TEST

/* Answers our servers never give, each ending the session at
 * autodiscover with the outcome the case promises. With after_offer the
 * peer first answers the plain request with a 401 offering NTLM, so the
 * odd answer meets the type 1 (leg 2); otherwise it meets the plain
 * request. */
struct odd_case {
  bool after_offer;
  const char *status;
  const char *headers;
  const char *body;
  enum client_outcome outcome;
  int final_status;
  const char *detail; /* a substring */
};

static const struct odd_case odd_cases[] = {
    {true, "401 Unauthorized", "WWW-Authenticate: NTLM\r\n", "",
     CLIENT_AUTH_FAILED, 401, "without an NTLM challenge"},
    {true, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"x\"\r\n", "",
     CLIENT_AUTH_FAILED, 401, "without an NTLM challenge"},
    {true, "401 Unauthorized", "WWW-Authenticate: NTLM !!!notbase64\r\n", "",
     CLIENT_PROTOCOL_ERROR, 401, "bad NTLM challenge"},
    {true, "401 Unauthorized",
     "WWW-Authenticate: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgK"
     "AAAADw==\r\n",
     "", CLIENT_PROTOCOL_ERROR, 401, "not type 2"},
    {true, "404 Not Found", "", "nope", CLIENT_PROTOCOL_ERROR, 404,
     "unexpected HTTP 404 to the type 1"},
    {true, "503 Service Unavailable", "", "", CLIENT_SERVER_ERROR, 503,
     "HTTP 503 to the body-less type 1"},
    {false, "401 Unauthorized", "WWW-Authenticate: Negotiate\r\n", "",
     CLIENT_AUTH_FAILED, 401, "offering neither NTLM nor Basic"},
    {false, "401 Unauthorized", "", "", CLIENT_AUTH_FAILED, 401,
     "offering neither NTLM nor Basic"},
    {false, "404 Not Found", "", "nope", CLIENT_PROTOCOL_ERROR, 404,
     "unexpected HTTP 404 to the POST"},
    {false, "503 Service Unavailable", "", "", CLIENT_SERVER_ERROR, 503,
     "HTTP 503 to the POST"},
    {false, "200 OK", "", "<not xml", CLIENT_PROTOCOL_ERROR, 200, "no EWS URL"},
    {false, "200 OK", "",
     "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
     "autodiscover/responseschema/2006\"><Response><Error/></Response>"
     "</Autodiscover>",
     CLIENT_PROTOCOL_ERROR, 200, "no EWS URL"},
    {false, "204 No Content", "", "", CLIENT_PROTOCOL_ERROR, 204, "HTTP 204"},
};

START_TEST(test_peer_odd_answers)
{
  const struct odd_case *oc = &odd_cases[_i];
  struct peer p;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  char url[64];

  memset(&p, 0, sizeof(p));
  if(oc->after_offer)
    peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
  peer_add(&p, false, oc->status, oc->headers, oc->body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  cc = config_for(url, 12, "alice", TEST_PASSWORD);
  c = client_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_msg(r.outcome == oc->outcome, "case %d: %s (%s)", _i,
                client_outcome_name(r.outcome), r.detail);
  ck_assert_uint_eq(r.legs, oc->after_offer ? 2 : 1);
  ck_assert_int_eq(r.leg1_status, oc->after_offer ? 401 : oc->final_status);
  ck_assert_int_eq(r.final_status, oc->final_status);
  ck_assert_msg(strstr(r.detail, oc->detail), "case %d: detail '%s'", _i,
                r.detail);
  ck_assert_ptr_null(strchr(r.detail, '\n'));
  ck_assert_int_eq(client_step(c, &r), 0);
  client_view(c, &v);
  ck_assert(v.integration_error && !v.autodiscover_ok);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.requests, oc->after_offer ? 2 : 1);
  /* The plain request carries the body; a type 1 never does. */
  ck_assert_uint_gt(p.body_len[0], 0);
  ck_assert(!p.has_auth[0]);
  if(oc->after_offer) {
    ck_assert_uint_eq(p.body_len[1], 0);
    ck_assert(p.has_auth[1]);
  }
}
END_TEST

/* What a peer can make the client hold is capped: a body past 1 MiB and an
 * NTLM challenge past 8 KiB are refused as protocol errors. */
START_TEST(test_peer_oversized)
{
  struct peer p;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  char url[64];
  size_t n = _i ? 9000 : 1024 * 1024 + 1;
  char *big = malloc(n + 64);
  ck_assert_ptr_nonnull(big);
  memset(&p, 0, sizeof(p));
  if(_i) {
    memcpy(big, "WWW-Authenticate: NTLM ", 23);
    memset(big + 23, 'A', n);
    memcpy(big + 23 + n, "\r\n", 3);
    peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
    peer_add(&p, false, "401 Unauthorized", big, "");
  }
  else {
    memset(big, 'x', n);
    big[n] = '\0';
    peer_add(&p, false, "200 OK", "", big);
  }
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  cc = config_for(url, 14, "alice", TEST_PASSWORD);
  c = client_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_PROTOCOL_ERROR);
  ck_assert_uint_eq(r.legs, _i ? 2 : 1);
  ck_assert_str_eq(r.detail,
                   _i ? "the NTLM challenge is longer than 8192 bytes"
                      : "leg 1: the response body is larger than 1048576 "
                        "bytes");
  ck_assert_int_eq(client_step(c, &r), 0);
  client_destroy(c);
  peer_stop(&p);
  free(big);
}
END_TEST

/* EWS answers a 200 the client cannot use: a protocol error, and the
 * information stays unavailable. The type 3 goes out with the body after a
 * challenge built by ntlm.h, on the same connection. */
START_TEST(test_peer_unusable_ews)
{
  static const uint8_t server_challenge[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  struct ntlm_server_info info = {"FABRIKAM", "ISA01", NULL, NULL};
  struct ntlm_bytes type2 = {NULL, 0};
  struct peer p;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  char url[64], www[1024];
  char *value;
  const struct client_post_result *r;

  ck_assert_int_eq(ntlm_server_challenge(&info, NTLM_COMMUNICATOR_FLAGS,
                                         server_challenge, 0, &type2),
                   NTLM_OK);
  value = ntlm_header_format(NTLM_SCHEME_NTLM, type2.data, type2.len);
  ck_assert_ptr_nonnull(value);
  snprintf(www, sizeof(www), "WWW-Authenticate: %s\r\n", value);
  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", autodiscover_ok_body);
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", availability_ok_body); /* wrong op */
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", oof_ok_body); /* wrong op */
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  cc = config_for(url, 13, "alice", TEST_PASSWORD);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 2);
  r = client_result(c, 0);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->legs, 3);
  r = client_result(c, 1);
  ck_assert_int_eq(r->outcome, CLIENT_PROTOCOL_ERROR);
  ck_assert_uint_eq(r->legs, 2);
  ck_assert_int_eq(r->final_status, 200);
  ck_assert_ptr_nonnull(strstr(r->detail, "ResponseClass=\"Success\""));
  r = client_result(c, 2);
  ck_assert_int_eq(r->outcome, CLIENT_PROTOCOL_ERROR);
  ck_assert_ptr_nonnull(strstr(r->detail, "FreeBusyResponse"));
  client_view(c, &v);
  ck_assert(v.autodiscover_ok && v.integration_error);
  ck_assert(!v.presence_available && !v.scheduling_available);
  ck_assert_uint_eq(v.connections, 1);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.accepts, 1);
  ck_assert_uint_eq(p.requests, 7);
  ck_assert_uint_gt(p.body_len[0], 0);
  ck_assert(!p.has_auth[0]);
  ck_assert_uint_eq(p.body_len[1], 0);
  ck_assert_uint_gt(p.body_len[2], 0);
  ck_assert_uint_eq(p.body_len[3], 0);
  ck_assert_uint_gt(p.body_len[4], 0);
  free(value);
  ntlm_bytes_free(&type2);
}
END_TEST

/* The listener closes a kept-alive connection without answering (it found
 * it idle too long); libcurl sends the type 1 again on a new connection by
 * itself. The result names the new connection, which counts as opened by
 * the POST; the trace shows the unanswered request on the old one, its
 * close, the new one's open, and a note. */
START_TEST(test_peer_drops_idle)
{
  static const uint8_t server_challenge[8] = {8, 7, 6, 5, 4, 3, 2, 1};
  struct ntlm_server_info info = {"FABRIKAM", "ISA01", NULL, NULL};
  struct ntlm_bytes type2 = {NULL, 0};
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  char url[64], www[1024];
  char *value;
  const struct client_post_result *r;
  size_t i, n = 0;
  static const struct {
    uint64_t conn;
    enum kb_auth req;
    int status;
  } want[] = {{1, KB_AUTH_NONE, 401},
              {1, KB_AUTH_NTLM_NEGOTIATE, 401},
              {1, KB_AUTH_NTLM_AUTHENTICATE, 200},
              {1, KB_AUTH_NTLM_NEGOTIATE, 0},
              {2, KB_AUTH_NTLM_NEGOTIATE, 401},
              {2, KB_AUTH_NTLM_AUTHENTICATE, 200},
              {2, KB_AUTH_NTLM_NEGOTIATE, 401},
              {2, KB_AUTH_NTLM_AUTHENTICATE, 200}};

  ck_assert_int_eq(ntlm_server_challenge(&info, NTLM_COMMUNICATOR_FLAGS,
                                         server_challenge, 0, &type2),
                   NTLM_OK);
  value = ntlm_header_format(NTLM_SCHEME_NTLM, type2.data, type2.len);
  ck_assert_ptr_nonnull(value);
  snprintf(www, sizeof(www), "WWW-Authenticate: %s\r\n", value);
  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", autodiscover_ok_body);
  peer_add_drop(&p);
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", oof_ok_body);
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", availability_ok_body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(url, 19, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  r = client_result(c, 1);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->legs, 2);
  ck_assert_int_eq(r->leg1_status, 401);
  ck_assert_uint_eq(r->connection, 2);
  ck_assert(r->new_connection);
  r = client_result(c, 2);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->connection, 2);
  ck_assert(!r->new_connection);
  client_view(c, &v);
  ck_assert_uint_eq(v.connections, 2);
  ck_assert(!v.integration_error);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.accepts, 2);
  ck_assert_uint_eq(p.requests, 8);

  rec_assert_serial_conns(&rec, "client 19", 2);
  for(i = 0; i < rec.n; i++) {
    const struct kbt_event *ev = &rec.ev[i];
    if(ev->kind != KB_TRACE_EXCHANGE)
      continue;
    ck_assert_uint_lt(n, 8);
    ck_assert_uint_eq(ev->conn, want[n].conn);
    ck_assert_int_eq(ev->ex.req_auth, want[n].req);
    ck_assert_int_eq(ev->ex.status, want[n].status);
    n++;
  }
  ck_assert_uint_eq(n, 8);
  ck_assert_ptr_nonnull(rec_find_note(&rec, "client 19",
                                      "connection 1 was closed without an "
                                      "answer; libcurl sent the request "
                                      "again on connection 2"));
  kbt_trace_free(&rec);
  free(value);
  ntlm_bytes_free(&type2);
}
END_TEST

/* A listener that asks for Basic: the plain first request learns it, then
 * every POST carries the credentials and its body in one leg. */
START_TEST(test_peer_basic)
{
  static const char ews_basic[] =
      "POST /EWS/Other.asmx HTTP/1.1\r\n"
      "Accept: text/xml\r\n"
      "Content-Type: text/xml; charset=utf-8\r\n"
      "User-Agent: Microsoft+Office+Communicator/2.0\r\n"
      "Host: autodiscover.fabrikam.com\r\n"
      "Content-Length: %zu\r\n"
      "Connection: Keep-Alive\r\n"
      "Cache-Control: no-cache\r\n"
      "Authorization: Basic RkFCUklLQU1cYWxpY2U6UGFzc3cwcmQh\r\n"
      "\r\n";
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  char url[64], expect[512];
  size_t i, n = 0;

  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized",
           "WWW-Authenticate: Basic realm=\"autodiscover.fabrikam.com\"\r\n",
           "");
  peer_add(&p, false, "200 OK", "", autodiscover_ok_body);
  peer_add(&p, false, "200 OK", "", oof_ok_body);
  peer_add(&p, false, "200 OK", "", availability_ok_body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(url, 20, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, i ? 1 : 2);
    ck_assert_int_eq(r->leg1_status, i ? 200 : 401);
    ck_assert_uint_eq(r->connection, 1);
  }
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.requests, 4);
  for(i = 0; i < 4; i++) {
    ck_assert_uint_gt(p.body_len[i], 0);
    ck_assert(p.has_auth[i] == (i > 0));
  }
  /* The first EWS POST, byte for byte. */
  snprintf(expect, sizeof(expect), ews_basic, p.body_len[2]);
  i = rec_find_send(&rec, "client 20", "POST /EWS/", 0);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_str_eq(rec.ev[i].text, expect);
  for(i = 0; i < rec.n; i++) {
    if(rec.ev[i].kind != KB_TRACE_EXCHANGE)
      continue;
    ck_assert_int_eq(rec.ev[i].ex.req_auth, n ? KB_AUTH_OTHER : KB_AUTH_NONE);
    ck_assert_int_eq(rec.ev[i].ex.resp_auth, n ? KB_AUTH_NONE : KB_AUTH_OTHER);
    ck_assert_uint_eq(rec.ev[i].ex.req_body_len, p.body_len[n]);
    n++;
  }
  ck_assert_uint_eq(n, 4);
  kbt_trace_free(&rec);
}
END_TEST

/* Which scheme the plain request's 401 teaches when it offers several:
 * NTLM whenever it is there, Basic otherwise. */
struct offer_case {
  const char *headers;
  const char *auth_prefix; /* of the second request's Authorization */
  const char *detail;      /* the peer then refuses: a substring */
};

static const struct offer_case offer_cases[] = {
    {"WWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\n",
     "Authorization: NTLM TlRMTVNTUAAB", "without an NTLM challenge"},
    {"WWW-Authenticate: Basic realm=\"x\"\r\nWWW-Authenticate: NTLM\r\n",
     "Authorization: NTLM TlRMTVNTUAAB", "without an NTLM challenge"},
    {"WWW-Authenticate: Negotiate\r\nWWW-Authenticate: Basic realm=\"x\"\r\n",
     "Authorization: Basic ", "HTTP 401 to Basic credentials"},
};

START_TEST(test_peer_offers)
{
  const struct offer_case *oc = &offer_cases[_i];
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  char url[64];
  size_t i;

  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized", oc->headers, "");
  peer_add(&p, false, "401 Unauthorized", "WWW-Authenticate: NTLM\r\n", "");
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = config_for(url, 21, "alice", TEST_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = client_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r.legs, 2);
  ck_assert_msg(strstr(r.detail, oc->detail), "case %d: %s", _i, r.detail);
  client_destroy(c);
  peer_stop(&p);
  i = rec_find_send(&rec, "client 21", "POST /autodiscover/", 0);
  i = rec_find_send(&rec, "client 21", "POST /autodiscover/", i + 1);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_ptr_nonnull(strstr(rec.ev[i].text, oc->auth_prefix));
  kbt_trace_free(&rec);
}
END_TEST

static Suite *client_suite(void)
{
  Suite *s = suite_create("client");
  TCase *tc = tcase_create("session");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_per_connection_bug);
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
  tcase_add_loop_test(tc, test_peer_reconnects, 0, 2);
  tcase_add_loop_test(tc, test_peer_odd_answers, 0,
                      (int)(sizeof(odd_cases) / sizeof(odd_cases[0])));
  tcase_add_test(tc, test_peer_unusable_ews);
  tcase_add_loop_test(tc, test_peer_oversized, 0, 2);
  tcase_add_test(tc, test_kind_names);
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
  tcase_add_test(tc, test_peer_drops_idle);
  tcase_add_test(tc, test_peer_basic);
  tcase_add_loop_test(tc, test_peer_offers, 0,
                      (int)(sizeof(offer_cases) / sizeof(offer_cases[0])));
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kbt_run(client_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
