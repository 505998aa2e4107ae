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

#include "backend.h"
#include "client.h"
#include "kb_users.h"
#include "ntlm.h"
#include "proxy.h"

/* 2009-03-17 16:26:24 GMT, the Date of the support case's 500. */
#define TEST_NOW_MS INT64_C(1237307184000)
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

/* ---- a recording trace sink -------------------------------------------- */

struct rec_event {
  enum kb_trace_kind kind;
  enum kb_hop hop;
  enum kb_side side;
  char origin[32];
  uint64_t conn;
  char *data; /* SEND/RECV bytes (NUL-terminated copy) or NOTE text */
  size_t len;
  struct kb_exchange ex;
  char path[64];
};

struct recorder {
  pthread_mutex_t lock;
  struct rec_event *ev;
  size_t n, cap;
};

static void rec_emit(void *ctx, const struct kb_trace_event *ev)
{
  struct recorder *r = ctx;
  struct rec_event *e;
  pthread_mutex_lock(&r->lock);
  if(r->n == r->cap) {
    size_t cap = r->cap ? 2 * r->cap : 256;
    struct rec_event *grown = realloc(r->ev, cap * sizeof(*grown));
    ck_assert_ptr_nonnull(grown);
    r->ev = grown;
    r->cap = cap;
  }
  e = &r->ev[r->n++];
  memset(e, 0, sizeof(*e));
  e->kind = ev->kind;
  e->hop = ev->hop;
  e->side = ev->side;
  snprintf(e->origin, sizeof(e->origin), "%s", ev->origin);
  e->conn = ev->conn;
  if(ev->kind == KB_TRACE_NOTE && ev->text) {
    e->data = strdup(ev->text);
    e->len = strlen(ev->text);
  }
  else if(ev->data) {
    e->data = malloc(ev->len + 1);
    ck_assert_ptr_nonnull(e->data);
    memcpy(e->data, ev->data, ev->len);
    e->data[ev->len] = '\0';
    e->len = ev->len;
  }
  if(ev->exchange) {
    e->ex = *ev->exchange;
    snprintf(e->path, sizeof(e->path), "%s", ev->exchange->path);
    e->ex.path = NULL;
    e->ex.method = NULL;
  }
  pthread_mutex_unlock(&r->lock);
}

static void rec_init(struct recorder *r)
{
  memset(r, 0, sizeof(*r));
  pthread_mutex_init(&r->lock, NULL);
}

static void rec_free(struct recorder *r)
{
  size_t i;
  for(i = 0; i < r->n; i++)
    free(r->ev[i].data);
  free(r->ev);
  pthread_mutex_destroy(&r->lock);
}

static struct kb_trace rec_trace(struct recorder *r)
{
  struct kb_trace t = {rec_emit, r};
  return t;
}

/* Counts events of kind from origin (any origin when NULL). */
static size_t rec_count(const struct recorder *r, enum kb_trace_kind kind,
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
static size_t rec_find_send(const struct recorder *r, const char *origin,
                            const char *prefix, size_t from)
{
  size_t i;
  for(i = from; i < r->n; i++)
    if(r->ev[i].kind == KB_TRACE_SEND && !strcmp(r->ev[i].origin, origin) &&
       r->ev[i].len >= strlen(prefix) &&
       !memcmp(r->ev[i].data, prefix, strlen(prefix)))
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

/* ---- the real topology ------------------------------------------------- */

struct env {
  struct kb_users *users;
  struct backend *backend;
  struct proxy *proxy;
  char url[64];
};

static void env_start(struct env *e, enum proxy_policy policy)
{
  char err[256] = "";
  char backend_url[64];
  struct backend_config bc;
  struct proxy_config pc;
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
  snprintf(backend_url, sizeof(backend_url), "http://127.0.0.1:%u",
           (unsigned)backend_port(e->backend));
  memset(&pc, 0, sizeof(pc));
  pc.bind_host = "127.0.0.1";
  pc.backend_url = backend_url;
  pc.policy = policy;
  pc.users = e->users;
  ck_assert_msg(proxy_start(&pc, &e->proxy, err, sizeof(err)) == 0,
                "proxy_start: %s", err);
  snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%u",
           (unsigned)proxy_port(e->proxy));
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
  struct recorder rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  const struct client_post_result *r;
  unsigned i;

  env_start(&e, PROXY_POLICY_PER_CONNECTION);
  rec_init(&rec);
  cc = config_for(e.url, 1, "alice", TEST_PASSWORD);
  cc.trace = rec_trace(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 2);
  ck_assert_uint_eq(client_results_count(c), 3);

  r = client_result(c, 0);
  ck_assert_int_eq(r->kind, CLIENT_POST_AUTODISCOVER);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->legs, 2);
  ck_assert_int_eq(r->leg1_status, 401);
  ck_assert_int_eq(r->final_status, 200);
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
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_EXCHANGE, "client 1"), 4);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_NOTE, "client 1"), 3);
  for(i = 0; i < rec.n; i++) {
    ck_assert_int_eq(rec.ev[i].hop, KB_HOP_CLIENT_PROXY);
    ck_assert_int_eq(rec.ev[i].side, KB_SIDE_CLIENT);
    ck_assert_uint_eq(rec.ev[i].conn, 1);
  }
  rec_free(&rec);
  env_stop(&e);
}
END_TEST

START_TEST(test_per_request_fix)
{
  struct env e;
  struct recorder rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  unsigned i;
  size_t n = 0;

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  rec_init(&rec);
  cc = config_for(e.url, 2, "alice", TEST_PASSWORD);
  cc.trace = rec_trace(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  ck_assert_uint_eq(client_results_count(c), 3);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, 2);
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

  /* Six legs, alternating type 1 -> 401 + type 2 and type 3 -> 200. */
  for(i = 0; i < rec.n; i++) {
    const struct rec_event *ev = &rec.ev[i];
    if(ev->kind != KB_TRACE_EXCHANGE)
      continue;
    ck_assert_str_eq(ev->path, n < 2 ? "/autodiscover/autodiscover.xml"
                                     : "/EWS/Exchange.asmx");
    ck_assert_uint_eq(ev->conn, 1);
    if(n % 2 == 0) {
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
  ck_assert_uint_eq(n, 6);
  ck_assert_uint_eq(rec_count(&rec, KB_TRACE_NOTE, NULL), 0);
  rec_free(&rec);
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
  ck_assert_uint_eq(r.legs, 2);
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
  struct recorder rec;
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
  rec_init(&rec);
  cc = config_for(e.url, 5, "alice", TEST_PASSWORD);
  cc.trace = rec_trace(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_destroy(c);

  /* Autodiscover leg 1: the case's block with the autodiscover path. */
  snprintf(expect, sizeof(expect), "%s%s", ad_path,
           case_leg1 + strlen("POST /EWS/Exchange.asmx HTTP/1.1\r\n"));
  i = rec_find_send(&rec, "client 5", "POST /autodiscover/", 0);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_str_eq(rec.ev[i].data, expect);

  /* The first EWS leg 1 is the support case's request, exactly. */
  i = rec_find_send(&rec, "client 5", "POST /EWS/", 0);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_uint_eq(rec.ev[i].len, strlen(case_leg1));
  ck_assert_str_eq(rec.ev[i].data, case_leg1);
  ck_assert_uint_eq(rec.ev[i].conn, 1);

  /* Its leg 2: same headers in the same order, the real length, the type 3
   * last, then exactly that many bytes of body. */
  j = rec_find_send(&rec, "client 5", "POST /EWS/", i + 1);
  ck_assert_uint_lt(j, rec.n);
  ck_assert_int_eq(strncmp(rec.ev[j].data, leg2_prefix, strlen(leg2_prefix)),
                   0);
  body_len = strtoul(rec.ev[j].data + strlen(leg2_prefix), &end, 10);
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
  ck_assert_uint_eq((size_t)(end + 4 - rec.ev[j].data), rec.ev[j].len);
  ck_assert_ptr_null(strstr(rec.ev[j].data, "Expect"));
  /* The body follows as its own SEND. */
  for(k = j + 1; k < rec.n && rec.ev[k].kind != KB_TRACE_SEND; k++)
    ;
  ck_assert_uint_lt(k, rec.n);
  ck_assert_uint_eq(rec.ev[k].len, body_len);
  ck_assert_ptr_nonnull(strstr(rec.ev[k].data, "GetUserOofSettingsRequest"));
  ck_assert_ptr_nonnull(
      strstr(rec.ev[k].data, "xmlns=\"http://schemas.microsoft.com/exchange/"
                             "services/2006/messages\""));
  ck_assert_ptr_nonnull(
      strstr(rec.ev[k].data, "<t:Address>alice@fabrikam.com</t:Address>"));
  rec_free(&rec);
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
  struct recorder rec;
  struct labels labels;
  struct client_config cc;
  struct client *c;
  size_t i;
  const char *ad;
  const char *av;

  env_start(&e, PROXY_POLICY_PER_REQUEST);
  rec_init(&rec);
  memset(&labels, 0, sizeof(labels));
  pthread_mutex_init(&labels.lock, NULL);
  cc = config_for(e.url, 7, "user3", TEST_PASSWORD);
  cc.trace = rec_trace(&rec);
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

  /* The autodiscover body is the second SEND of the autodiscover leg 2. */
  i = rec_find_send(&rec, "client 7", "POST /autodiscover/", 0);
  i = rec_find_send(&rec, "client 7", "POST /autodiscover/", i + 1);
  i = rec_find_send(&rec, "client 7", "<?xml", i + 1);
  ck_assert_uint_lt(i, rec.n);
  ad = rec.ev[i].data;
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
  av = rec.ev[i].data;
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
  rec_free(&rec);
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
  struct sockaddr_in sin;
  socklen_t slen = sizeof(sin);
  struct recorder rec;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  char url[64], where[32];
  /* A bound socket that never listens: connecting to its port is refused,
   * and no other test can take the port meanwhile. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sin.sin_port));
  snprintf(where, sizeof(where), "port %u", ntohs(sin.sin_port));

  rec_init(&rec);
  cc = config_for(url, 9, "alice", TEST_PASSWORD);
  cc.trace = rec_trace(&rec);
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
  rec_free(&rec);
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
  struct recorder rec;
  struct worker w[TEST_THREADS];
  struct backend_stats bs;
  struct proxy_stats ps;
  unsigned i, j;

  env_start(&e, policy);
  rec_init(&rec);
  memset(w, 0, sizeof(w));
  for(i = 0; i < TEST_THREADS; i++) {
    w[i].url = e.url;
    w[i].id = i;
    w[i].trace = rec_trace(&rec);
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
                          ? 2 * (1 + TEST_THREAD_EWS)
                          : 2 + TEST_THREAD_EWS);
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
  rec_free(&rec);
  env_stop(&e);
}
END_TEST

/* ---- a scripted peer ---------------------------------------------------- */

/* Answers each request it reads with the next canned response; closes the
 * connection after a response whose close flag is set. Serves one
 * connection at a time, which is all one client uses. */
struct peer_step {
  char *response; /* malloc'd */
  bool close_after;
};

struct peer {
  int lfd;
  int stop[2];
  uint16_t port;
  struct peer_step steps[8];
  size_t nsteps;
  pthread_t thread;
  /* Read after join. */
  unsigned accepts;
  unsigned requests;
  size_t body_len[8];
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
    p->requests++;
    if(!peer_send(conn, p->steps[i].response))
      break;
    if(p->steps[i].close_after) {
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
  ck_assert_uint_lt(p->nsteps, 8);
  p->steps[p->nsteps].response = s;
  p->steps[p->nsteps].close_after = close_after;
  p->nsteps++;
}

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
  struct recorder rec;
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
  rec_init(&rec);
  cc = config_for(url, 11, "alice", TEST_PASSWORD);
  cc.trace = rec_trace(&rec);
  c = client_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, 1);
    ck_assert_int_eq(r->leg1_status, 200);
    ck_assert_uint_eq(r->connection, i + 1);
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
  ck_assert_uint_eq(p.body_len[1], 0);
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
  rec_free(&rec);
}
END_TEST

/* Answers our servers never give, each ending the session at
 * autodiscover with the outcome the header promises. */
struct odd_case {
  const char *status;
  const char *headers;
  const char *body;
  enum client_outcome outcome;
  int leg1_status;
  const char *detail; /* a substring */
};

static const struct odd_case odd_cases[] = {
    {"401 Unauthorized", "WWW-Authenticate: NTLM\r\n", "", CLIENT_AUTH_FAILED,
     401, "without an NTLM challenge"},
    {"401 Unauthorized", "WWW-Authenticate: Basic realm=\"x\"\r\n", "",
     CLIENT_AUTH_FAILED, 401, "without an NTLM challenge"},
    {"401 Unauthorized", "WWW-Authenticate: NTLM !!!notbase64\r\n", "",
     CLIENT_PROTOCOL_ERROR, 401, "bad NTLM challenge"},
    {"401 Unauthorized",
     "WWW-Authenticate: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgK"
     "AAAADw==\r\n",
     "", CLIENT_PROTOCOL_ERROR, 401, "not type 2"},
    {"404 Not Found", "", "nope", CLIENT_PROTOCOL_ERROR, 404,
     "unexpected HTTP 404"},
    {"503 Service Unavailable", "", "", CLIENT_SERVER_ERROR, 503, "HTTP 503"},
    {"200 OK", "", "<not xml", CLIENT_PROTOCOL_ERROR, 200, "no EWS URL"},
    {"200 OK", "",
     "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
     "autodiscover/responseschema/2006\"><Response><Error/></Response>"
     "</Autodiscover>",
     CLIENT_PROTOCOL_ERROR, 200, "no EWS URL"},
    {"204 No Content", "", "", CLIENT_PROTOCOL_ERROR, 204, "HTTP 204"},
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
  peer_add(&p, false, oc->status, oc->headers, oc->body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  cc = config_for(url, 12, "alice", TEST_PASSWORD);
  c = client_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_msg(r.outcome == oc->outcome, "case %d: %s (%s)", _i,
                client_outcome_name(r.outcome), r.detail);
  ck_assert_uint_eq(r.legs, 1);
  ck_assert_int_eq(r.leg1_status, oc->leg1_status);
  ck_assert_msg(strstr(r.detail, oc->detail), "case %d: detail '%s'", _i,
                r.detail);
  ck_assert_ptr_null(strchr(r.detail, '\n'));
  ck_assert_int_eq(client_step(c, &r), 0);
  client_view(c, &v);
  ck_assert(v.integration_error && !v.autodiscover_ok);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.requests, 1);
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
  ck_assert_uint_eq(r.legs, 1);
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
  ck_assert_uint_eq(r->legs, 2);
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
  ck_assert_uint_eq(p.requests, 6);
  ck_assert_uint_eq(p.body_len[0], 0);
  ck_assert_uint_gt(p.body_len[1], 0);
  ck_assert_uint_eq(p.body_len[2], 0);
  ck_assert_uint_gt(p.body_len[3], 0);
  free(value);
  ntlm_bytes_free(&type2);
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
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  SRunner *sr = srunner_create(client_suite());
  int failed;
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
