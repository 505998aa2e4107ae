/*
 * test_proxy.c - the ISA listener through proxy.h: the decision table of
 * KB 942638 against the real backend, exact forwarding against a small
 * recording upstream, errors, trace and counters.
 *
 * The test client is libcurl with hand-set headers on one easy handle, so
 * that every leg of a handshake reuses one TCP connection, as Communicator
 * does; NTLM messages come from ntlm.h. Servers bind 127.0.0.1:0.
 */
#include <check.h>
#include <dirent.h>

#include <arpa/inet.h>
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
#include <microhttpd.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"

/* 2009-03-17 16:26:24 UTC, the Date of the support case's 500. */
#define T_NOW_MS KBT_CASE_MS
#define T_DATE "Tue, 17 Mar 2009 16:26:24 GMT"
#define T_PASSWORD "Passw0rd!"
/* The body of every failed NTLM login, whatever the reason. */
#define T_LOGIN_FAILED                                                         \
  "ISA ISA01: authentication failed; check the user name and password\n"
#define T_BOB_PASSWORD "Hunter2?"
/* The support case's own type 1, non-canonical padding included. */
#define T_CASE_TYPE1                                                           \
  "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0=="
/* The WWW-Authenticate headers of an integrated listener's fresh offer,
 * in order, as tc_headers joins them. */
#define T_OFFER "Negotiate|NTLM"

#define oof_body kbt_oof_body

/* ---- a recording upstream ------------------------------------------------ */

/* A small libmicrohttpd server that records the last request exactly as it
 * arrived and answers 200 with a few headers, or 4096 bytes on /big. */
struct rec {
  struct MHD_Daemon *d;
  uint16_t port;
  pthread_mutex_t lock;
  unsigned connections;
  unsigned requests;
  char method[16];
  char uri[512];
  char headers[8192];
  char body[8192];
  size_t body_len;
};

struct rec_req {
  char uri[512];
  struct kb_buf body;
  bool started;
};

static void *rec_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
  struct rec_req *r = calloc(1, sizeof(*r));
  (void)cls;
  (void)c;
  snprintf(r->uri, sizeof(r->uri), "%s", uri);
  kb_buf_init(&r->body, 65536);
  return r;
}

static void rec_done(void *cls, struct MHD_Connection *c, void **con_cls,
                     enum MHD_RequestTerminationCode toe)
{
  struct rec_req *r = *con_cls;
  (void)cls;
  (void)c;
  (void)toe;
  if(r) {
    kb_buf_free(&r->body);
    free(r);
  }
  *con_cls = NULL;
}

static void rec_conn(void *cls, struct MHD_Connection *c, void **sc,
                     enum MHD_ConnectionNotificationCode toe)
{
  struct rec *rec = cls;
  (void)c;
  (void)sc;
  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    pthread_mutex_lock(&rec->lock);
    rec->connections++;
    pthread_mutex_unlock(&rec->lock);
  }
}

static enum MHD_Result rec_header(void *cls, enum MHD_ValueKind kind,
                                  const char *key, const char *value)
{
  char *out = cls;
  size_t len = strlen(out);
  (void)kind;
  snprintf(out + len, 8192 - len, "%s: %s\n", key, value ? value : "");
  return MHD_YES;
}

static enum MHD_Result rec_handler(void *cls, struct MHD_Connection *c,
                                   const char *url, const char *method,
                                   const char *version, const char *data,
                                   size_t *size, void **con_cls)
{
  struct rec *rec = cls;
  struct rec_req *r = *con_cls;
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
  MHD_get_connection_values(c, MHD_HEADER_KIND, rec_header, rec->headers);
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

static void rec_start(struct rec *rec)
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
      0, NULL, NULL, rec_handler, rec, MHD_OPTION_SOCK_ADDR, &sa,
      MHD_OPTION_URI_LOG_CALLBACK, rec_uri, rec, MHD_OPTION_NOTIFY_COMPLETED,
      rec_done, rec, MHD_OPTION_NOTIFY_CONNECTION, rec_conn, rec,
      MHD_OPTION_END);
  ck_assert_ptr_nonnull(rec->d);
  rec->port = MHD_get_daemon_info(rec->d, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void rec_stop(struct rec *rec)
{
  MHD_stop_daemon(rec->d);
  pthread_mutex_destroy(&rec->lock);
}

static unsigned rec_requests(struct rec *rec)
{
  unsigned n;
  pthread_mutex_lock(&rec->lock);
  n = rec->requests;
  pthread_mutex_unlock(&rec->lock);
  return n;
}

/* ---- the test client ---------------------------------------------------- */

struct tc {
  CURL *h;
  uint16_t port;
  long status;
  long connects; /* new TCP connections the last request needed */
  struct kb_buf headers;
  struct kb_buf body;
};

static size_t tc_header_cb(char *d, size_t s, size_t n, void *u)
{
  struct tc *c = u;
  if(s * n >= 5 && !memcmp(d, "HTTP/", 5))
    kb_buf_reset(&c->headers);
  kb_buf_add(&c->headers, d, s * n);
  return s * n;
}

static size_t tc_body_cb(char *d, size_t s, size_t n, void *u)
{
  struct tc *c = u;
  kb_buf_add(&c->body, d, s * n);
  return s * n;
}

static void tc_init(struct tc *c, uint16_t port)
{
  memset(c, 0, sizeof(*c));
  c->h = curl_easy_init();
  ck_assert_ptr_nonnull(c->h);
  c->port = port;
  kb_buf_init(&c->headers, 65536);
  kb_buf_init(&c->body, 1 << 20);
}

static void tc_free(struct tc *c)
{
  curl_easy_cleanup(c->h);
  kb_buf_free(&c->headers);
  kb_buf_free(&c->body);
}

/* Sends one request on the client's connection. hdrs is a NULL-terminated
 * list of "Name: value" lines; body NULL means none. Returns the curl
 * result; status, headers and body are in c. */
static CURLcode tc_do(struct tc *c, const char *method, const char *path,
                      const char *const *hdrs, const char *body,
                      size_t body_len)
{
  char url[600];
  struct curl_slist *list = NULL;
  CURLcode res;
  size_t i;

  curl_easy_reset(c->h);
  kb_buf_reset(&c->headers);
  kb_buf_reset(&c->body);
  c->status = 0;
  c->connects = -1;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)c->port, path);
  list = curl_slist_append(list, "Expect:");
  for(i = 0; hdrs && hdrs[i]; i++)
    list = curl_slist_append(list, hdrs[i]);
  curl_easy_setopt(c->h, CURLOPT_URL, url);
  curl_easy_setopt(c->h, CURLOPT_PROXY, "");
  curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, tc_header_cb);
  curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, tc_body_cb);
  curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
  if(!strcmp(method, "POST") || body) {
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(body ? body_len : 0));
    if(strcmp(method, "POST") != 0)
      curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
  }
  else if(!strcmp(method, "HEAD"))
    curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
  else if(strcmp(method, "GET") != 0)
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
  res = curl_easy_perform(c->h);
  curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
  curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &c->connects);
  curl_slist_free_all(list);
  return res;
}

/* Copies the value of the last response's header name into out; returns
 * out, or NULL when the header is absent. Fails the test when it occurs
 * more than once. */
static const char *tc_header(struct tc *c, const char *name, char *out,
                             size_t outlen)
{
  const char *p = c->headers.data;
  size_t n = strlen(name);
  const char *found = NULL;
  unsigned count = 0;

  if(!p)
    return NULL;
  while(*p) {
    size_t len = strcspn(p, "\r\n");
    if(len > n && p[n] == ':' && !strncasecmp(p, name, n)) {
      const char *v = p + n + 1;
      while(*v == ' ')
        v++;
      snprintf(out, outlen, "%.*s", (int)(len - (size_t)(v - p)), v);
      found = out;
      count++;
    }
    p += len;
    while(*p == '\r' || *p == '\n')
      p++;
  }
  ck_assert_uint_le(count, 1);
  return found;
}

/* Copies the values of every header name of the last response into out,
 * in their order, joined by '|'; returns out, or NULL when there is none. */
static const char *tc_headers(struct tc *c, const char *name, char *out,
                              size_t outlen)
{
  const char *p = c->headers.data;
  size_t n = strlen(name);
  size_t used = 0;

  out[0] = '\0';
  if(!p)
    return NULL;
  while(*p) {
    size_t len = strcspn(p, "\r\n");
    if(len > n && p[n] == ':' && !strncasecmp(p, name, n)) {
      const char *v = p + n + 1;
      while(*v == ' ')
        v++;
      used +=
          (size_t)snprintf(out + used, outlen - used, "%s%.*s", used ? "|" : "",
                           (int)(len - (size_t)(v - p)), v);
      ck_assert_uint_lt(used, outlen);
    }
    p += len;
    while(*p == '\r' || *p == '\n')
      p++;
  }
  return used ? out : NULL;
}

/* ---- NTLM legs ---------------------------------------------------------- */

/* Returns "Authorization: <scheme> <type 1>" (caller frees). */
static char *t_type1(enum ntlm_scheme scheme)
{
  struct ntlm_bytes b = {NULL, 0};
  char *value, *line;
  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &b), NTLM_OK);
  value = ntlm_header_format(scheme, b.data, b.len);
  ck_assert_ptr_nonnull(value);
  line = malloc(strlen(value) + 32);
  sprintf(line, "Authorization: %s", value);
  free(value);
  ntlm_bytes_free(&b);
  return line;
}

/* Decodes the type 2 in a WWW-Authenticate value into *msg. */
static void t_decode_type2(const char *www_auth, enum ntlm_scheme want,
                           struct ntlm_message *msg)
{
  struct ntlm_bytes b = {NULL, 0};
  enum ntlm_scheme scheme;
  ck_assert_ptr_nonnull(www_auth);
  ck_assert_int_eq(ntlm_header_parse(www_auth, &scheme, &b, NULL, 0), NTLM_OK);
  ck_assert_int_eq(scheme, want);
  ck_assert_int_eq(ntlm_decode(b.data, b.len, msg, NULL, 0), NTLM_OK);
  ck_assert_int_eq(msg->type, NTLM_TYPE_CHALLENGE);
  ntlm_bytes_free(&b);
}

/* Returns "Authorization: <scheme> <type 3>" answering the type 2 in
 * www_auth for domain\user with password (caller frees). */
static char *t_type3(const char *www_auth, enum ntlm_scheme scheme,
                     const char *user, const char *password)
{
  struct ntlm_message msg;
  struct ntlm_client_creds creds = {"FABRIKAM", user, password, "COMMUNICATOR",
                                    NTLM_RESPONSE_V2};
  static const uint8_t cc[8] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
  struct ntlm_bytes b = {NULL, 0};
  char *value, *line;

  t_decode_type2(www_auth, scheme, &msg);
  ck_assert_int_eq(ntlm_client_authenticate(&creds, &msg, cc, 0, &b, NULL, 0),
                   NTLM_OK);
  value = ntlm_header_format(scheme, b.data, b.len);
  ck_assert_ptr_nonnull(value);
  line = malloc(strlen(value) + 32);
  sprintf(line, "Authorization: %s", value);
  free(value);
  ntlm_bytes_free(&b);
  ntlm_message_free(&msg);
  return line;
}

/* The challenge the proxy must have drawn for handshake n on conn. */
static void t_expected_challenge(uint64_t conn, unsigned n, uint8_t out[8])
{
  char label[128];
  snprintf(label, sizeof(label),
           "proxy/ISA01/conn/%" PRIu64 "/handshake/%u/challenge", conn, n);
  kbt_fill(NULL, label, out, 8);
}

/* ---- fixture ------------------------------------------------------------ */

enum t_upstream { T_BACKEND, T_RECORDER, T_URL };

struct tenv {
  struct kb_users *users;
  struct backend *be;
  struct rec rec;
  bool has_rec;
  struct proxy *px;
  struct kbt_trace trace;
};

/* What a test sets beyond env_start's arguments: the listener's
 * authentication and keep-alive limits, and optionally its clock (the
 * fixed T_NOW_MS when now_ms is NULL) and connection names. */
struct t_opts {
  enum proxy_auth auth;
  int64_t idle_timeout_ms;
  unsigned max_requests;
  unsigned connection_timeout_s;
  unsigned loops;
  struct kb_clock clock;
  struct kb_names names;
};

static void env_start_opts(struct tenv *e, enum t_upstream up, const char *url,
                           size_t max_body, long timeout_ms,
                           enum proxy_policy policy, const struct t_opts *o)
{
  struct proxy_config pc;
  char err[256];
  char backend_url[64];

  memset(e, 0, sizeof(*e));
  kbt_trace_init(&e->trace, true, "T_PROXY_TRACE");
  e->users = kb_users_new();
  ck_assert_ptr_nonnull(e->users);
  ck_assert_int_eq(
      kb_users_add(e->users, "FABRIKAM", "alice", T_PASSWORD, err, sizeof(err)),
      0);
  ck_assert_int_eq(kb_users_add(e->users, "FABRIKAM", "bob", T_BOB_PASSWORD,
                                err, sizeof(err)),
                   0);
  if(up == T_BACKEND) {
    struct backend_config bc;
    memset(&bc, 0, sizeof(bc));
    bc.clock.now_ms = kbt_now;
    ck_assert_msg(backend_start(&bc, &e->be, err, sizeof(err)) == 0, "%s", err);
    snprintf(backend_url, sizeof(backend_url), "http://127.0.0.1:%u",
             (unsigned)backend_port(e->be));
    url = backend_url;
  }
  else if(up == T_RECORDER) {
    rec_start(&e->rec);
    e->has_rec = true;
    snprintf(backend_url, sizeof(backend_url), "http://127.0.0.1:%u/",
             (unsigned)e->rec.port);
    url = backend_url;
  }
  memset(&pc, 0, sizeof(pc));
  pc.backend_url = url;
  pc.policy = policy;
  pc.users = e->users;
  pc.max_body = max_body;
  pc.upstream_timeout_ms = timeout_ms;
  pc.clock.now_ms = kbt_now;
  pc.rng.fill = kbt_fill;
  pc.trace = kbt_trace_sink(&e->trace);
  if(o) {
    pc.auth = o->auth;
    pc.idle_timeout_ms = o->idle_timeout_ms;
    pc.max_requests = o->max_requests;
    pc.connection_timeout_s = o->connection_timeout_s;
    pc.loops = o->loops;
    if(o->clock.now_ms)
      pc.clock = o->clock;
    pc.names = o->names;
  }
  ck_assert_msg(proxy_start(&pc, &e->px, err, sizeof(err)) == 0, "%s", err);
  ck_assert_uint_ne(proxy_port(e->px), 0);
}

static void env_start(struct tenv *e, enum t_upstream up, const char *url,
                      size_t max_body, long timeout_ms,
                      enum proxy_policy policy)
{
  env_start_opts(e, up, url, max_body, timeout_ms, policy, NULL);
}

/* Stops every server; the trace stays readable until env_free. */
static void env_stop_servers(struct tenv *e)
{
  proxy_stop(e->px);
  e->px = NULL;
  backend_stop(e->be);
  e->be = NULL;
  if(e->has_rec)
    rec_stop(&e->rec);
  e->has_rec = false;
}

static void env_free(struct tenv *e)
{
  kb_users_free(e->users);
  kbt_trace_free(&e->trace);
}

static void env_stop(struct tenv *e)
{
  env_stop_servers(e);
  env_free(e);
}

static struct backend_stats be_stats(struct tenv *e)
{
  struct backend_stats s;
  backend_stats(e->be, &s);
  return s;
}

#define assert_stats(px, ...)                                                  \
  do {                                                                         \
    struct proxy_stats got_, want_ = {__VA_ARGS__};                            \
    proxy_stats((px), &got_);                                                  \
    ck_assert_uint_eq(got_.connections, want_.connections);                    \
    ck_assert_uint_eq(got_.requests, want_.requests);                          \
    ck_assert_uint_eq(got_.challenges, want_.challenges);                      \
    ck_assert_uint_eq(got_.auth_ok, want_.auth_ok);                            \
    ck_assert_uint_eq(got_.auth_failed, want_.auth_failed);                    \
    ck_assert_uint_eq(got_.reauth_skipped, want_.reauth_skipped);              \
    ck_assert_uint_eq(got_.forwarded, want_.forwarded);                        \
    ck_assert_uint_eq(got_.forwarded_empty_posts,                              \
                      want_.forwarded_empty_posts);                            \
    ck_assert_uint_eq(got_.upstream_errors, want_.upstream_errors);            \
    ck_assert_uint_eq(got_.basic_ok, want_.basic_ok);                          \
    ck_assert_uint_eq(got_.basic_failed, want_.basic_failed);                  \
    ck_assert_uint_eq(got_.idle_closed, want_.idle_closed);                    \
    ck_assert_uint_eq(got_.max_requests_closed, want_.max_requests_closed);    \
  } while(0)

/* Runs the two legs of a Communicator POST on c: type 1 with
 * Content-Length 0 (expects 401 + type 2), then type 3 with the body.
 * Returns the final status. */
static long t_handshake_post(struct tc *c, const char *path,
                             enum ntlm_scheme scheme, const char *user,
                             const char *password, const char *body)
{
  char www[4096];
  char *t1 = t_type1(scheme);
  char *t3;
  const char *h1[] = {"Content-Type: text/xml; charset=utf-8", t1, NULL};
  const char *h3[] = {"Content-Type: text/xml; charset=utf-8", NULL, NULL};

  ck_assert_int_eq(tc_do(c, "POST", path, h1, "", 0), CURLE_OK);
  ck_assert_int_eq(c->status, 401);
  ck_assert_ptr_nonnull(tc_header(c, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, scheme, user, password);
  h3[1] = t3;
  ck_assert_int_eq(tc_do(c, "POST", path, h3, body, strlen(body)), CURLE_OK);
  ck_assert_int_eq(c->connects, 0); /* same TCP connection as the type 1 */
  free(t1);
  free(t3);
  return c->status;
}

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
  struct tenv e;
  struct tc c;
  char v[256];

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "GET", "/EWS/Exchange.asmx", NULL, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(tc_header(&c, "Date", v, sizeof(v)), T_DATE);
  ck_assert_str_eq(c.body.data, "ISA ISA01: authentication required; send NTLM "
                                "credentials\n");
  /* A second try stays on the same connection: 401s are keep-alive. */
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_uint_eq(be_stats(&e).requests, 0);
  ck_assert_uint_eq(be_stats(&e).connections, 0);
  assert_stats(e.px, .connections = 1, .requests = 2);
  tc_free(&c);
  env_stop(&e);
}
END_TEST

START_TEST(test_full_handshake)
{
  struct tenv e;
  struct tc c;
  char www[4096], v[256];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {"Content-Type: text/xml; charset=utf-8", NULL, NULL};
  struct ntlm_message msg;
  uint8_t want[8];
  struct backend_stats bs;

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  ck_assert_int_eq(strncmp(www, "NTLM ", 5), 0);
  t_decode_type2(www, NTLM_SCHEME_NTLM, &msg);
  t_expected_challenge(1, 1, want);
  ck_assert_mem_eq(msg.server_challenge, want, 8);
  ck_assert_str_eq(msg.target_name, "FABRIKAM");
  ntlm_message_free(&msg);
  ck_assert_uint_eq(be_stats(&e).requests, 0);

  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[1] = t3;
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
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
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_uint_eq(be_stats(&e).requests, 1);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .auth_failed = 1, .forwarded = 1);
  tc_free(&c);
  free(t1);
  free(t3);
  env_stop(&e);
}
END_TEST

START_TEST(test_authenticated_without_header)
{
  struct tenv e;
  struct tc c;
  const char *h[] = {"Content-Type: text/xml; charset=utf-8", NULL};

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
                   200);
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 2);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_FORWARD_AUTHENTICATED, 1,
                         "FABRIKAM\\alice; POST forwarded with its"));
  tc_free(&c);
  env_stop(&e);
}
END_TEST

START_TEST(test_bad_credentials)
{
  struct tenv e;
  struct tc c;
  char v[256];

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", "Wr0ng-Pa55", oof_body),
                   401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  /* A wrong password and an unknown account get the very same 401: the
   * client learns nothing about which accounts exist. */
  ck_assert_str_eq(c.body.data, T_LOGIN_FAILED);
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "mallory", "x", oof_body),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_per_connection_bug)
{
  struct tenv e;
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

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_per_request_fix)
{
  struct tenv e;
  struct tc c;
  struct ntlm_message msg;
  uint8_t want[8];
  char www[4096];
  char *t3;
  const char *h1[] = {"Content-Type: text/xml; charset=utf-8",
                      "Authorization: " T_CASE_TYPE1, NULL};
  const char *h3[] = {"Content-Type: text/xml; charset=utf-8", NULL, NULL};
  struct backend_stats bs;

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_REQUEST);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_int_eq(c.status, 401);
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  t_decode_type2(www, NTLM_SCHEME_NTLM, &msg);
  t_expected_challenge(1, 2, want); /* a fresh challenge: handshake 2 */
  ck_assert_mem_eq(msg.server_challenge, want, 8);
  ntlm_message_free(&msg);
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[1] = t3;
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_policy_switch_on_open_connection)
{
  struct tenv e;
  struct tc c;
  const char *h1[] = {"Content-Type: text/xml; charset=utf-8",
                      "Authorization: " T_CASE_TYPE1, NULL};
  char www[4096];
  char *t3;
  const char *h3[] = {NULL, NULL};

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
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
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_auth_dies_with_connection)
{
  struct tenv e;
  struct tc c1, c2;
  char www[4096];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {NULL, NULL};

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c1, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c1, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_ptr_nonnull(tc_header(&c1, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[0] = t3;
  ck_assert_int_eq(
      tc_do(&c1, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c1.status, 200);
  tc_free(&c1); /* closes connection 1 */

  /* A new connection starts unauthenticated, and the old type 3 means
   * nothing on it: no challenge was sent there. */
  tc_init(&c2, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c2, "GET", "/EWS/Exchange.asmx", NULL, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c2.status, 401);
  ck_assert_int_eq(
      tc_do(&c2, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_type3_without_type2)
{
  struct tenv e;
  struct tc c, other;
  char www[4096], v[256];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {NULL, NULL};

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  /* A type 3 answering a challenge sent on another connection. */
  tc_init(&other, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&other, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_ptr_nonnull(
      tc_header(&other, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[0] = t3;
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_garbage_tokens)
{
  struct tenv e;
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

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  for(i = 0; garbage[i]; i++) {
    h[0] = garbage[i];
    ck_assert_int_eq(
        tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
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
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  /* The challenge is gone with the garbled type 3: the good one fails. */
  h[0] = t3;
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_garbage_deauthenticates)
{
  struct tenv e;
  struct tc c;
  const char *h[] = {"Authorization: NTLM %%%", NULL};

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "GET", "/EWS/Exchange.asmx", h, NULL, 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_uint_eq(be_stats(&e).requests, 1);
  assert_stats(e.px, .connections = 1, .requests = 4, .challenges = 1,
               .auth_ok = 1, .forwarded = 1);
  tc_free(&c);
  env_stop(&e);
}
END_TEST

START_TEST(test_negotiate_wrapped)
{
  struct tenv e;
  struct tc c;

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx",
                                    NTLM_SCHEME_NEGOTIATE, "bob",
                                    T_BOB_PASSWORD, oof_body),
                   200);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 1);
  ck_assert(
      kbt_has_note(&e.trace, KB_NOTE_AUTH_OK, 1, "FABRIKAM\\bob (NTLMv2)"));
  /* The scheme follows the client: a Negotiate type 1 got a Negotiate
   * type 2 (t_type3 insists on it through t_decode_type2). */
  assert_stats(e.px, .connections = 1, .requests = 2, .challenges = 1,
               .auth_ok = 1, .forwarded = 1);
  tc_free(&c);
  env_stop(&e);
}
END_TEST

/* ---- tests: forwarding against the recording upstream ------------------- */

START_TEST(test_forward_exact)
{
  struct tenv e;
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

  env_start(&e, T_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
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
  env_stop(&e);
}
END_TEST

START_TEST(test_response_too_big)
{
  struct tenv e;
  struct tc c;
  char want[256];

  env_start(&e, T_RECORDER, NULL, 1024, 0, PROXY_POLICY_PER_CONNECTION);
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
  env_stop(&e);
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
  struct tenv e;
  char *got;

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
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
  env_stop(&e);
}
END_TEST

START_TEST(test_request_too_big)
{
  struct tenv e;
  struct tc c;
  char *big = malloc(5000);
  const char *h[] = {"Content-Type: application/octet-stream", NULL};

  memset(big, 'b', 5000);
  env_start(&e, T_RECORDER, NULL, 1024, 0, PROXY_POLICY_PER_CONNECTION);
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
  ck_assert_uint_eq(rec_requests(&e.rec), 2);
  assert_stats(e.px, .connections = 2, .requests = 5, .challenges = 2,
               .auth_ok = 2, .forwarded = 2);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_BODY_TOO_LARGE, 0,
                         "5000 bytes is over the 1024-byte limit"));
  tc_free(&c);
  free(big);
  env_stop(&e);
}
END_TEST

/* ---- tests: upstream failures ------------------------------------------- */

START_TEST(test_backend_unreachable)
{
  struct tenv e;
  struct tc c;
  uint16_t port;
  int fd = rc_loopback(false, &port);
  char url[64], want[128];

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  env_start(&e, T_URL, url, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
                   502);
  snprintf(want, sizeof(want),
           "ISA ISA01: the published server %s could not be reached: ", url);
  ck_assert_int_eq(strncmp(c.body.data, want, strlen(want)), 0);
  ck_assert_uint_gt(strlen(c.body.data), strlen(want) + 5);
  ck_assert_ptr_eq(strchr(c.body.data, '\n'), c.body.data + c.body.len - 1);
  assert_stats(e.px, .connections = 1, .requests = 2, .challenges = 1,
               .auth_ok = 1, .forwarded = 1, .upstream_errors = 1);
  tc_free(&c);
  env_stop(&e);
  close(fd);
}
END_TEST

START_TEST(test_backend_timeout)
{
  struct tenv e;
  struct tc c;
  uint16_t port;
  int fd = rc_loopback(true, &port);
  char url[64], want[160];

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  env_start(&e, T_URL, url, 0, 150, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
                   504);
  snprintf(want, sizeof(want),
           "ISA ISA01: the published server %s did not answer within 150 "
           "ms: ",
           url);
  ck_assert_int_eq(strncmp(c.body.data, want, strlen(want)), 0);
  assert_stats(e.px, .connections = 1, .requests = 2, .challenges = 1,
               .auth_ok = 1, .forwarded = 1, .upstream_errors = 1);
  tc_free(&c);
  env_stop(&e);
  close(fd);
}
END_TEST

/* ---- tests: trace, concurrency, stop ------------------------------------ */

START_TEST(test_trace)
{
  struct tenv e;
  struct tc c;
  size_t i;
  const char *h1[] = {"Authorization: " T_CASE_TYPE1, NULL};
  int exchanges[4] = {0};

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
                   200);
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 500);
  tc_free(&c);
  env_stop_servers(&e); /* closes everything: the trace is complete */

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
        ck_assert_uint_eq(x->ex.req_body_len, strlen(oof_body));
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
  env_free(&e);
}
END_TEST

struct t_worker {
  uint16_t port;
  const char *user;
  const char *password;
  int ok;
};

static void *t_worker_main(void *arg)
{
  struct t_worker *w = arg;
  struct tc c;
  int i;

  tc_init(&c, w->port);
  if(t_handshake_post(&c, "/w", NTLM_SCHEME_NTLM, w->user, w->password,
                      "first") == 200)
    w->ok++;
  for(i = 0; i < 3; i++)
    if(tc_do(&c, "POST", "/w", NULL, "more", 4) == CURLE_OK &&
       c.status == 200 && c.connects == 0)
      w->ok++;
  tc_free(&c);
  return NULL;
}

/* Runs n (at most 8) workers at once on port, alice and bob in turn, and
 * asserts that each got its 4 answers. */
static void t_run_workers(uint16_t port, int n)
{
  struct t_worker w[8];
  pthread_t th[8];
  int i;

  ck_assert_int_le(n, 8);
  for(i = 0; i < n; i++) {
    w[i].port = port;
    w[i].user = i % 2 ? "bob" : "alice";
    w[i].password = i % 2 ? T_BOB_PASSWORD : T_PASSWORD;
    w[i].ok = 0;
    ck_assert_int_eq(pthread_create(&th[i], NULL, t_worker_main, &w[i]), 0);
  }
  for(i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    ck_assert_int_eq(w[i].ok, 4);
  }
}

START_TEST(test_concurrent_connections)
{
  struct tenv e;

  env_start(&e, T_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  t_run_workers(proxy_port(e.px), 4);
  /* Each client connection had its own upstream connection. */
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_uint_eq(e.rec.connections, 4);
  ck_assert_uint_eq(e.rec.requests, 16);
  pthread_mutex_unlock(&e.rec.lock);
  assert_stats(e.px, .connections = 4, .requests = 20, .challenges = 4,
               .auth_ok = 4, .forwarded = 16);
  env_stop(&e);
}
END_TEST

/* Counts this process's threads whose name starts with prefix. */
static unsigned t_threads_named(const char *prefix)
{
  DIR *dir = opendir("/proc/self/task");
  struct dirent *de;
  unsigned n = 0;

  ck_assert_ptr_nonnull(dir);
  while((de = readdir(dir))) {
    char path[300], comm[32] = "";
    FILE *f;
    if(de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
    f = fopen(path, "r");
    if(!f)
      continue;
    if(fgets(comm, sizeof(comm), f) && !strncmp(comm, prefix, strlen(prefix)))
      n++;
    fclose(f);
  }
  closedir(dir);
  return n;
}

/* Three event loops on one listening socket: eight clients at once, each
 * authenticated on its own connection with its own upstream one, whichever
 * loop accepted it; counters add up across loops; a policy switch reaches
 * every loop; stopping ends all three threads with connections open. */
START_TEST(test_several_loops)
{
  struct tenv e;
  struct t_opts o;
  struct tc c;
  unsigned before = t_threads_named("kb-proxy");

  memset(&o, 0, sizeof(o));
  o.loops = 3;
  env_start_opts(&e, T_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  ck_assert_uint_eq(t_threads_named("kb-proxy"), before + 3);
  t_run_workers(proxy_port(e.px), 8);
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_uint_eq(e.rec.connections, 8);
  ck_assert_uint_eq(e.rec.requests, 32);
  pthread_mutex_unlock(&e.rec.lock);
  assert_stats(e.px, .connections = 8, .requests = 40, .challenges = 8,
               .auth_ok = 8, .forwarded = 32);
  /* The fix applies to the next request, whichever loop serves it. */
  proxy_set_policy(e.px, PROXY_POLICY_PER_REQUEST);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(
      t_handshake_post(&c, "/x", NTLM_SCHEME_NTLM, "alice", T_PASSWORD, "a"),
      200);
  ck_assert_int_eq(
      t_handshake_post(&c, "/x", NTLM_SCHEME_NTLM, "alice", T_PASSWORD, "b"),
      200);
  assert_stats(e.px, .connections = 9, .requests = 44, .challenges = 10,
               .auth_ok = 10, .forwarded = 34);
  env_stop_servers(&e);
  ck_assert_uint_eq(t_threads_named("kb-proxy"), before);
  ck_assert_int_ne(tc_do(&c, "GET", "/x", NULL, NULL, 0), CURLE_OK);
  tc_free(&c);
  env_free(&e);
}
END_TEST

START_TEST(test_stop_with_open_connections)
{
  struct tenv e;
  struct tc a, b;
  uint16_t port;

  env_start(&e, T_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  port = proxy_port(e.px);
  tc_init(&a, port);
  tc_init(&b, port);
  ck_assert_int_eq(
      t_handshake_post(&a, "/x", NTLM_SCHEME_NTLM, "alice", T_PASSWORD, "a"),
      200);
  ck_assert_int_eq(tc_do(&b, "GET", "/x", NULL, NULL, 0), CURLE_OK);
  ck_assert_int_eq(b.status, 401);
  /* Both client connections (and one upstream) are open and idle. */
  env_stop_servers(&e);
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, 0),
                    2);
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_PROXY_BACKEND, 0), 1);
  ck_assert_int_ne(tc_do(&a, "GET", "/x", NULL, NULL, 0), CURLE_OK);
  tc_free(&a);
  tc_free(&b);
  env_free(&e);
}
END_TEST

struct t_inflight {
  uint16_t port;
  char *type1;  /* prepared by the test thread: ntlm.h calls that fail */
  long status1; /* would assert, and asserts belong to the test thread */
  char www[4096];
  char *type3;
  CURLcode res2;
  long status2;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int step; /* 1: type 2 received; 2: type 3 made */
};

/* Sends the two legs; the second hangs upstream until the proxy stops. */
static void *t_inflight_main(void *arg)
{
  struct t_inflight *f = arg;
  struct tc c;
  const char *h1[] = {f->type1, NULL};
  const char *h3[] = {NULL, NULL};

  tc_init(&c, f->port);
  tc_do(&c, "POST", "/slow", h1, "", 0);
  f->status1 = c.status;
  if(!tc_header(&c, "WWW-Authenticate", f->www, sizeof(f->www)))
    f->www[0] = '\0';
  pthread_mutex_lock(&f->lock);
  f->step = 1;
  pthread_cond_broadcast(&f->cond);
  while(f->step != 2)
    pthread_cond_wait(&f->cond, &f->lock);
  pthread_mutex_unlock(&f->lock);
  h3[0] = f->type3;
  f->res2 = tc_do(&c, "POST", "/slow", h3, "x", 1);
  f->status2 = c.status;
  tc_free(&c);
  return NULL;
}

START_TEST(test_stop_with_request_in_flight)
{
  struct tenv e;
  uint16_t port;
  int fd = rc_loopback(true, &port);
  char url[64];
  pthread_t th;
  struct t_inflight f;
  struct timespec t0, t1;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  env_start(&e, T_URL, url, 0, 30000, PROXY_POLICY_PER_CONNECTION);
  memset(&f, 0, sizeof(f));
  pthread_mutex_init(&f.lock, NULL);
  pthread_cond_init(&f.cond, NULL);
  f.port = proxy_port(e.px);
  f.type1 = t_type1(NTLM_SCHEME_NTLM);
  ck_assert_int_eq(pthread_create(&th, NULL, t_inflight_main, &f), 0);
  pthread_mutex_lock(&f.lock);
  while(f.step != 1)
    pthread_cond_wait(&f.cond, &f.lock);
  pthread_mutex_unlock(&f.lock);
  ck_assert_int_eq(f.status1, 401);
  f.type3 = t_type3(f.www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  pthread_mutex_lock(&f.lock);
  f.step = 2;
  pthread_cond_broadcast(&f.cond);
  pthread_mutex_unlock(&f.lock);
  /* The request is on its way to a server that never answers. */
  kbt_wait_for(&e.trace, KB_TRACE_SEND, KB_HOP_PROXY_BACKEND);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  proxy_stop(e.px);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  e.px = NULL;
  /* Not the 30 s upstream timeout: the transfer was aborted. */
  ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 10);
  pthread_join(th, NULL);
  /* The client got no answer from the backend: the connection closed, or
   * a 503 made it out before it did. */
  ck_assert(f.res2 != CURLE_OK || f.status2 == 503);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_UPSTREAM_STOPPING, 0, NULL));
  free(f.type1);
  free(f.type3);
  pthread_cond_destroy(&f.cond);
  pthread_mutex_destroy(&f.lock);
  env_stop(&e);
  close(fd);
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
  struct tenv e;
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

  env_start(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION);
  tc_init(&c, proxy_port(e.px));
  /* On a fresh connection. */
  h[0] = small;
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(c.body.data, body);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_KERBEROS, 1, "first byte 0x60"));

  /* On an authenticated connection, even under per-connection: the
   * connection is de-authenticated and nothing is forwarded. */
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, oof_body),
                   200);
  h[0] = big;
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_str_eq(tc_headers(&c, "WWW-Authenticate", v, sizeof(v)), T_OFFER);
  ck_assert_str_eq(c.body.data, body);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_KERBEROS, 0,
                         "nothing forwarded, connection de-authenticated"));
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);

  /* The client falls back to NTLM inside Negotiate, on the same
   * connection, and gets its type 2 as Negotiate. */
  ck_assert_int_eq(t_handshake_post(&c, "/EWS/Exchange.asmx",
                                    NTLM_SCHEME_NEGOTIATE, "alice", T_PASSWORD,
                                    oof_body),
                   200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_uint_eq(be_stats(&e).requests, 2);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 2);
  assert_stats(e.px, .connections = 1, .requests = 7, .challenges = 2,
               .auth_ok = 2, .forwarded = 2);
  tc_free(&c);
  env_stop(&e);
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
  struct tenv e;
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
  env_start_opts(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  for(i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    char *line = t_basic(ok[i].creds, strlen(ok[i].creds));
    h[1] = line;
    ck_assert_int_eq(
        tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
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
             ok[i].shown, strlen(oof_body));
    ck_assert_msg(kbt_has_note(&e.trace, KB_NOTE_BASIC_OK, 1, note),
                  "no note: %s", note);
    free(line);
  }
  /* Basic is per request: the same connection, without credentials, is
   * refused. */
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, oof_body, strlen(oof_body)),
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
  env_stop(&e);
}
END_TEST

START_TEST(test_basic_forwarded_as_is)
{
  struct tenv e;
  struct t_opts o;
  struct tc c;
  char *line = t_basic("FABRIKAM\\alice:" T_PASSWORD,
                       strlen("FABRIKAM\\alice:" T_PASSWORD));
  const char *h[] = {line, "X-Last: z", NULL};
  char want[512];

  memset(&o, 0, sizeof(o));
  o.auth = PROXY_AUTH_BASIC;
  env_start_opts(&e, T_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
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
  env_stop(&e);
  free(line);
}
END_TEST

START_TEST(test_basic_refused)
{
  struct tenv e;
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
  env_start_opts(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  for(i = 0; i < n; i++) {
    char note[512], body[512];
    h[0] = bad[i].header;
    ck_assert_int_eq(
        tc_do(&c, "POST", "/EWS/Exchange.asmx", h, oof_body, strlen(oof_body)),
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
  env_stop(&e);
  for(i = 0; i < n; i++)
    free(bad[i].header);
}
END_TEST

START_TEST(test_auth_none)
{
  struct tenv e;
  struct t_opts o;
  struct tc c;
  char v[256];
  const char *plain[] = {"Content-Type: text/xml; charset=utf-8", NULL};
  const char *h[] = {"Content-Type: text/xml; charset=utf-8",
                     "Authorization: " T_CASE_TYPE1, NULL};
  struct backend_stats bs;

  memset(&o, 0, sizeof(o));
  o.auth = PROXY_AUTH_NONE;
  env_start_opts(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_REQUEST, &o);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", plain, oof_body,
                         strlen(oof_body)),
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
  env_stop(&e);
}
END_TEST

/* ---- tests: keep-alive limits ------------------------------------------- */

/* A clock whose time the test sets. "client 7" and its connections have a
 * timeline of their own, everyone else shares one; calls without a name
 * are counted, so a test can tell whose time the proxy asked for. */
struct t_clock {
  _Atomic int64_t shared;
  _Atomic int64_t client7;
  atomic_uint unnamed_calls;
};

static int64_t t_clock_now(void *ctx, const char *who)
{
  struct t_clock *k = ctx;
  if(who && (!strcmp(who, "client 7") || !strncmp(who, "client 7 ", 9)))
    return atomic_load(&k->client7);
  if(!who)
    atomic_fetch_add(&k->unnamed_calls, 1);
  return atomic_load(&k->shared);
}

/* Connection names (kb_names): the latest claim per port wins. */
struct t_names {
  pthread_mutex_t lock;
  uint16_t port[64];
  uint16_t remote[64];
  char name[64][96];
  size_t n;
  unsigned client_conns; /* "client 7 conn <n>" claimed so far */
};

static void t_names_claim(void *ctx, uint16_t port, uint16_t remote,
                          const char *name)
{
  struct t_names *nm = ctx;
  pthread_mutex_lock(&nm->lock);
  if(nm->n < 64) {
    nm->port[nm->n] = port;
    nm->remote[nm->n] = remote;
    snprintf(nm->name[nm->n], sizeof(nm->name[0]), "%s", name);
    nm->n++;
  }
  pthread_mutex_unlock(&nm->lock);
}

static int t_names_resolve(void *ctx, uint16_t port, uint16_t local, char *name,
                           size_t len)
{
  struct t_names *nm = ctx;
  size_t i;
  int result = -1;
  pthread_mutex_lock(&nm->lock);
  for(i = nm->n; i-- > 0;)
    if(nm->port[i] == port && nm->remote[i] == local) {
      snprintf(name, len, "%s", nm->name[i]);
      result = 0;
      break;
    }
  pthread_mutex_unlock(&nm->lock);
  return result;
}

/* The test client's side of kb_names: binds each new connection's socket
 * and claims "client 7 conn <n>" for its port before libcurl connects. */
static curl_socket_t t_open_named(void *clientp, curlsocktype purpose,
                                  struct curl_sockaddr *addr)
{
  struct t_names *nm = clientp;
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  char name[64];
  unsigned n;
  curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
  (void)purpose;

  if(fd == CURL_SOCKET_BAD)
    return fd;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
     getsockname(fd, (struct sockaddr *)&sa, &len)) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  pthread_mutex_lock(&nm->lock);
  n = ++nm->client_conns;
  pthread_mutex_unlock(&nm->lock);
  snprintf(name, sizeof(name), "client 7 conn %u", n);
  t_names_claim(nm, ntohs(sa.sin_port),
                ntohs(((const struct sockaddr_in *)&addr->addr)->sin_port),
                name);
  return fd;
}

/* POSTs oof_body on c with libcurl's own NTLM as FABRIKAM\alice: libcurl
 * runs the handshake on a new connection and sends nothing more on an
 * authenticated one. names, when set, names new connections. Returns the
 * curl result; status and connects are in c. */
static CURLcode t_curl_ntlm_post(struct tc *c, struct t_names *names)
{
  char url[128];
  struct curl_slist *list = NULL;
  CURLcode res;

  kb_buf_reset(&c->headers);
  kb_buf_reset(&c->body);
  c->status = 0;
  c->connects = -1;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx",
           (unsigned)c->port);
  list = curl_slist_append(list, "Expect:");
  list = curl_slist_append(list, "Content-Type: text/xml; charset=utf-8");
  curl_easy_setopt(c->h, CURLOPT_URL, url);
  curl_easy_setopt(c->h, CURLOPT_PROXY, "");
  curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, tc_header_cb);
  curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, tc_body_cb);
  curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(c->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_NTLM);
  curl_easy_setopt(c->h, CURLOPT_USERPWD, "FABRIKAM\\alice:" T_PASSWORD);
  curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, oof_body);
  curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE,
                   (curl_off_t)strlen(oof_body));
  if(names) {
    curl_easy_setopt(c->h, CURLOPT_OPENSOCKETFUNCTION, t_open_named);
    curl_easy_setopt(c->h, CURLOPT_OPENSOCKETDATA, names);
  }
  res = curl_easy_perform(c->h);
  curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
  curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &c->connects);
  curl_slist_free_all(list);
  return res;
}

/* Runs the idle-timeout scenario: a real libcurl client authenticates,
 * comes back within the limit, then after 45 s on a 30 s limit. named:
 * connections carry kb_names names and only client 7's timeline moves. */
static void t_idle_scenario(bool named)
{
  struct tenv e;
  struct t_opts o;
  struct t_clock clk;
  struct t_names nm;
  struct tc c;
  struct backend_stats bs;
  _Atomic int64_t *timeline;
  const char *label = named ? "client 7 conn 1" : "1";
  char note[256];

  atomic_init(&clk.shared, T_NOW_MS);
  atomic_init(&clk.client7, T_NOW_MS);
  timeline = named ? &clk.client7 : &clk.shared;
  atomic_init(&clk.unnamed_calls, 0);
  memset(&nm, 0, sizeof(nm));
  pthread_mutex_init(&nm.lock, NULL);
  memset(&o, 0, sizeof(o));
  o.idle_timeout_ms = 30000;
  o.clock.now_ms = t_clock_now;
  o.clock.ctx = &clk;
  if(named) {
    o.names.claim = t_names_claim;
    o.names.resolve = t_names_resolve;
    o.names.ctx = &nm;
  }
  env_start_opts(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));

  ck_assert_int_eq(t_curl_ntlm_post(&c, named ? &nm : NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 1);
  /* Exactly at the limit is not past it. */
  atomic_fetch_add(timeline, 30000);
  ck_assert_int_eq(t_curl_ntlm_post(&c, named ? &nm : NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2);

  /* 45 s later the listener "had closed" the connection: libcurl's
   * request on it gets nothing back, and libcurl retries on a new
   * connection, where it authenticates again. */
  atomic_fetch_add(timeline, 45000);
  ck_assert_int_eq(t_curl_ntlm_post(&c, named ? &nm : NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 1);
  ck_assert_ptr_nonnull(strstr(c.body.data, "GetUserOofSettingsResponse"));
  assert_stats(e.px, .connections = 2, .requests = 5, .challenges = 2,
               .auth_ok = 2, .forwarded = 3, .idle_closed = 1);
  /* The backend saw the three bodies and nothing of the dead request. */
  bs = be_stats(&e);
  ck_assert_uint_eq(bs.requests, 3);
  ck_assert_uint_eq(bs.oof_ok, 3);
  ck_assert_uint_eq(bs.empty_posts, 0);
  snprintf(note, sizeof(note), "%s idle 45 s > 30 s", label);
  ck_assert_msg(kbt_has_note(&e.trace, KB_NOTE_IDLE_CLOSED, 0, note),
                "no note: %s", note);
  ck_assert_uint_eq(kbt_count_code(&e.trace, KB_NOTE_LIBRARY), 0);
  if(named)
    ck_assert_uint_eq(atomic_load(&clk.unnamed_calls), 0);
  else
    ck_assert_uint_gt(atomic_load(&clk.unnamed_calls), 0);
  tc_free(&c);
  env_stop_servers(&e);
  /* Connection 1 answered three requests and was closed with nothing
   * upstream for the fourth: two upstream sends went out for it. */
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, 1), 3);
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, 2), 2);
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, 0),
                    2);
  env_free(&e);
  pthread_mutex_destroy(&nm.lock);
}

START_TEST(test_idle_timeout)
{
  t_idle_scenario(false);
}
END_TEST

START_TEST(test_idle_timeout_named)
{
  t_idle_scenario(true);
}
END_TEST

START_TEST(test_idle_timeout_off)
{
  struct tenv e;
  struct t_opts o;
  struct t_clock clk;
  struct tc c;

  /* With no limit an hour of idleness changes nothing. */
  atomic_init(&clk.shared, T_NOW_MS);
  atomic_init(&clk.client7, T_NOW_MS);
  atomic_init(&clk.unnamed_calls, 0);
  memset(&o, 0, sizeof(o));
  o.clock.now_ms = t_clock_now;
  o.clock.ctx = &clk;
  env_start_opts(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_curl_ntlm_post(&c, NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  atomic_fetch_add(&clk.shared, 3600 * 1000);
  ck_assert_int_eq(t_curl_ntlm_post(&c, NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2);
  tc_free(&c);
  env_stop(&e);
}
END_TEST

START_TEST(test_max_requests)
{
  struct tenv e;
  struct t_opts o;
  struct tc c;
  char v[256];
  char www[4096];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {NULL, NULL};

  memset(&o, 0, sizeof(o));
  o.max_requests = 3;
  env_start_opts(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_ptr_null(tc_header(&c, "Connection", v, sizeof(v)));
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[0] = t3;
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_ptr_null(tc_header(&c, "Connection", v, sizeof(v)));
  /* The third answer is the last on this connection. */
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_str_eq(tc_header(&c, "Connection", v, sizeof(v)), "close");
  ck_assert_ptr_nonnull(strstr(c.body.data, "GetUserOofSettingsResponse"));
  kbt_wait_for(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY);
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, 1),
                    1);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2, .max_requests_closed = 1);
  ck_assert(
      kbt_has_note(&e.trace, KB_NOTE_MAX_REQUESTS, 1, "limit of 3 requests"));
  /* The next request needs a new connection, which starts
   * unauthenticated. */
  ck_assert_int_eq(
      tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, oof_body, strlen(oof_body)),
      CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(c.connects, 1);
  ck_assert_ptr_null(tc_header(&c, "Connection", v, sizeof(v)));
  ck_assert_uint_eq(be_stats(&e).requests, 2);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 2);
  assert_stats(e.px, .connections = 2, .requests = 4, .challenges = 1,
               .auth_ok = 1, .forwarded = 2, .max_requests_closed = 1);
  tc_free(&c);
  free(t1);
  free(t3);
  env_stop(&e);
}
END_TEST

START_TEST(test_connection_timeout)
{
  struct tenv e;
  struct t_opts o;
  struct sockaddr_in sa;
  struct timespec t0, t1;
  char buf[64];
  ssize_t got;
  double elapsed;
  int fd;

  memset(&o, 0, sizeof(o));
  o.connection_timeout_s = 1;
  env_start_opts(&e, T_BACKEND, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(proxy_port(e.px));
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  /* A client that says nothing: the listener drops it after 1 s of real
   * time, which recv sees as the end of the stream. */
  got = recv(fd, buf, sizeof(buf), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  ck_assert_int_le(got, 0);
  elapsed =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  ck_assert_msg(elapsed >= 0.9 && elapsed < 10.0, "closed after %.2f s",
                elapsed);
  close(fd);
  kbt_wait_for(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY);
  assert_stats(e.px, .connections = 1);
  env_stop(&e);
}
END_TEST

static Suite *proxy_suite(void)
{
  Suite *s = suite_create("proxy");
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

  tc = tcase_create("forwarding");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_forward_exact);
  tcase_add_test(tc, test_response_too_big);
  tcase_add_test(tc, test_request_too_big);
  tcase_add_test(tc, test_half_closed_client);
  tcase_add_test(tc, test_backend_unreachable);
  tcase_add_test(tc, test_backend_timeout);
  tcase_add_test(tc, test_trace);
  suite_add_tcase(s, tc);

  tc = tcase_create("keep-alive");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_idle_timeout);
  tcase_add_test(tc, test_idle_timeout_named);
  tcase_add_test(tc, test_idle_timeout_off);
  tcase_add_test(tc, test_max_requests);
  tcase_add_test(tc, test_connection_timeout);
  suite_add_tcase(s, tc);

  tc = tcase_create("threads");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_concurrent_connections);
  tcase_add_test(tc, test_several_loops);
  tcase_add_test(tc, test_stop_with_open_connections);
  tcase_add_test(tc, test_stop_with_request_in_flight);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  int failed;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  failed = kbt_run(proxy_suite());
  curl_global_cleanup();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
