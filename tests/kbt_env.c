/*
 * kbt_env.c - the listener and its upstream for a test (Exchange, a
 * recording server or a given URL); see kbt_env.h.
 */
#include "kbt_env.h"

#include <arpa/inet.h>
#include <check.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kb_buf.h"

/* The environment kbt_env_teardown stops. */
static struct kbt_env *kbt_env_running;

/* ---- the recording upstream ------------------------------------------- */

struct kbt_rec_req {
  char uri[512];
  struct kb_buf body;
  bool started;
};

static void *kbt_rec_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
  struct kbt_rec_req *r = calloc(1, sizeof(*r));
  (void)cls;
  (void)c;
  if(!r)
    return NULL;
  snprintf(r->uri, sizeof(r->uri), "%s", uri);
  kb_buf_init(&r->body, 65536);
  return r;
}

static void kbt_rec_done(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct kbt_rec_req *r = *con_cls;
  (void)cls;
  (void)c;
  (void)toe;
  if(r) {
    kb_buf_free(&r->body);
    free(r);
  }
  *con_cls = NULL;
}

static void kbt_rec_conn(void *cls, struct MHD_Connection *c, void **sc,
                         enum MHD_ConnectionNotificationCode toe)
{
  struct kbt_recorder *rec = cls;
  (void)c;
  (void)sc;
  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    pthread_mutex_lock(&rec->lock);
    rec->connections++;
    pthread_mutex_unlock(&rec->lock);
  }
}

static enum MHD_Result kbt_rec_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value)
{
  char *out = cls;
  size_t len = strlen(out);
  (void)kind;
  snprintf(out + len, 8192 - len, "%s: %s\n", key, value ? value : "");
  return MHD_YES;
}

/* Records the request whole, then answers 200 with a few headers, or 4096
 * bytes of 'x' on /big. */
static enum MHD_Result kbt_rec_handler(void *cls, struct MHD_Connection *c,
                                       const char *url, const char *method,
                                       const char *version, const char *data,
                                       size_t *size, void **con_cls)
{
  struct kbt_recorder *rec = cls;
  struct kbt_rec_req *r = *con_cls;
  struct MHD_Response *resp;
  enum MHD_Result ret;
  (void)version;

  if(!r->started) {
    r->started = true;
    return MHD_YES;
  }
  if(*size) {
    kb_buf_add(&r->body, data, *size);
    *size = 0;
    return MHD_YES;
  }
  pthread_mutex_lock(&rec->lock);
  rec->requests++;
  snprintf(rec->method, sizeof(rec->method), "%s", method);
  snprintf(rec->uri, sizeof(rec->uri), "%s", r->uri);
  rec->headers[0] = '\0';
  MHD_get_connection_values(c, MHD_HEADER_KIND, kbt_rec_header, rec->headers);
  rec->body_len = r->body.len < sizeof(rec->body) ? r->body.len : 0;
  if(rec->body_len)
    memcpy(rec->body, r->body.data, rec->body_len);
  pthread_mutex_unlock(&rec->lock);

  if(!strcmp(url, "/big")) {
    static char big[4096];
    memset(big, 'x', sizeof(big));
    resp = MHD_create_response_from_buffer(sizeof(big), big,
                                           MHD_RESPMEM_MUST_COPY);
  }
  else {
    resp = MHD_create_response_from_buffer(9, (void *)"recorded\n",
                                           MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "X-Upstream", "recorder");
    MHD_add_response_header(resp, "Keep-Alive", "timeout=5");
    MHD_add_response_header(resp, "Content-Type", "text/plain");
    MHD_add_response_header(resp, "Date", "Wed, 18 Mar 2009 08:00:00 GMT");
  }
  ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void kbt_recorder_start(struct kbt_recorder *rec)
{
  struct sockaddr_in sa;

  memset(rec, 0, sizeof(*rec));
  pthread_mutex_init(&rec->lock, NULL);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  rec->d = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
          MHD_USE_POLL,
      0, NULL, NULL, kbt_rec_handler, rec, MHD_OPTION_SOCK_ADDR, &sa,
      MHD_OPTION_URI_LOG_CALLBACK, kbt_rec_uri, rec,
      MHD_OPTION_NOTIFY_COMPLETED, kbt_rec_done, rec,
      MHD_OPTION_NOTIFY_CONNECTION, kbt_rec_conn, rec, MHD_OPTION_END);
  ck_assert_ptr_nonnull(rec->d);
  rec->port = MHD_get_daemon_info(rec->d, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void kbt_recorder_stop(struct kbt_recorder *rec)
{
  MHD_stop_daemon(rec->d);
  pthread_mutex_destroy(&rec->lock);
}

unsigned kbt_recorder_requests(struct kbt_recorder *rec)
{
  unsigned n;

  pthread_mutex_lock(&rec->lock);
  n = rec->requests;
  pthread_mutex_unlock(&rec->lock);
  return n;
}

/* ---- the environment -------------------------------------------------- */

/* alice, bob and the specs, into a new store. */
static struct kb_users *kbt_env_users(const char *const *specs)
{
  struct kb_users *users = kb_users_new();
  char err[256];

  ck_assert_ptr_nonnull(users);
  ck_assert_msg(kb_users_add(users, "FABRIKAM", "alice", KBT_ALICE_PASSWORD,
                             err, sizeof(err)) == 0,
                "%s", err);
  ck_assert_msg(kb_users_add(users, "FABRIKAM", "bob", KBT_BOB_PASSWORD, err,
                             sizeof(err)) == 0,
                "%s", err);
  for(; specs && *specs; specs++)
    ck_assert_msg(kb_users_add_spec(users, *specs, err, sizeof(err)) == 0,
                  "%s: %s", *specs, err);
  return users;
}

/* Starts Exchange from bc (NULL: the defaults) with what the caller left
 * unset filled in. */
static void kbt_env_exchange(struct kbt_env *e, struct backend_config *bc,
                             bool untraced)
{
  struct backend_config defaults;
  char err[256];

  if(!bc) {
    memset(&defaults, 0, sizeof(defaults));
    bc = &defaults;
  }
  if(!bc->clock.now_ms)
    bc->clock.now_ms = kbt_now;
  if(!bc->rng.fill)
    bc->rng.fill = kbt_fill;
  if(!bc->trace.emit && !untraced)
    bc->trace = kbt_trace_sink(&e->trace);
  if(!bc->users)
    bc->users = e->users;
  ck_assert_msg(backend_start(bc, &e->be, err, sizeof(err)) == 0,
                "backend_start: %s", err);
  snprintf(e->backend_url, sizeof(e->backend_url), "http://127.0.0.1:%u",
           (unsigned)backend_port(e->be));
}

struct proxy *kbt_env_listener(struct kbt_env *e, struct proxy_config *pc)
{
  struct proxy *px = NULL;
  char err[256];

  if(!pc->backend_url)
    pc->backend_url = e->backend_url;
  if(!pc->users)
    pc->users = e->users;
  if(!pc->clock.now_ms)
    pc->clock.now_ms = kbt_now;
  if(!pc->rng.fill)
    pc->rng.fill = kbt_fill;
  if(!pc->trace.emit)
    pc->trace = kbt_trace_sink(&e->trace);
  ck_assert_msg(proxy_start(pc, &px, err, sizeof(err)) == 0, "proxy_start: %s",
                err);
  ck_assert_uint_ne(proxy_port(px), 0);
  return px;
}

void kbt_env_start(struct kbt_env *e, const struct kbt_env_opts *o)
{
  static const struct kbt_env_opts none;
  struct proxy_config defaults;
  struct proxy_config *pc;

  if(!o)
    o = &none;
  memset(e, 0, sizeof(*e));
  kbt_trace_init(&e->trace, o->keep_bytes, o->debug);
  e->users = kbt_env_users(o->users);
  switch(o->upstream) {
  case KBT_UP_EXCHANGE:
    kbt_env_exchange(e, o->exchange, o->exchange_untraced);
    break;
  case KBT_UP_RECORDER:
    kbt_recorder_start(&e->rec);
    e->has_rec = true;
    snprintf(e->backend_url, sizeof(e->backend_url), "http://127.0.0.1:%u/",
             (unsigned)e->rec.port);
    break;
  case KBT_UP_URL:
    ck_assert_ptr_nonnull(o->url);
    snprintf(e->backend_url, sizeof(e->backend_url), "%s", o->url);
    break;
  }
  kbt_env_running = e;
  if(o->no_listener) {
    snprintf(e->url, sizeof(e->url), "%s", e->backend_url);
    return;
  }
  pc = o->listener;
  if(!pc) {
    memset(&defaults, 0, sizeof(defaults));
    pc = &defaults;
  }
  e->px = kbt_env_listener(e, pc);
  snprintf(e->url, sizeof(e->url), "http://127.0.0.1:%u",
           (unsigned)proxy_port(e->px));
}

void kbt_env_stop_servers(struct kbt_env *e)
{
  proxy_stop(e->px);
  e->px = NULL;
  backend_stop(e->be);
  e->be = NULL;
  if(e->has_rec)
    kbt_recorder_stop(&e->rec);
  e->has_rec = false;
}

void kbt_env_stop(struct kbt_env *e)
{
  if(kbt_env_running == e)
    kbt_env_running = NULL;
  kbt_env_stop_servers(e);
  kb_users_free(e->users);
  kbt_trace_free(&e->trace);
  memset(e, 0, sizeof(*e));
}

void kbt_env_teardown(void)
{
  if(kbt_env_running)
    kbt_env_stop(kbt_env_running);
}
