/*
 * admin.c - see admin.h.
 *
 * libmicrohttpd serves the endpoint on one internal thread; jansson builds
 * every answer. Member state (patch level, script) lives here under a lock;
 * the policy it implies is pushed to the member's proxy at each change,
 * and /status reports the policy the proxy actually has in force.
 */
#include "live/admin.h"
#include "common/kb_buf.h"
#include "common/kb_guard.h"
#include "common/kb_net.h"
#include "live/live.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADMIN_DEFAULT_HOST "127.0.0.1"
#define ADMIN_CONN_LIMIT 64u
#define ADMIN_CONN_TIMEOUT_S 30u
#define ADMIN_MEMBERS_PREFIX "/members/"
#define ADMIN_TOKEN_BYTES 24 /* 48 hex digits, as Jupyter's */
/* A console's stream: a comment line this often keeps it open. */
#define ADMIN_KEEPALIVE_MS 10000
/* What one stream holds back at most while its browser reads. */
#define ADMIN_STREAM_MAX ((size_t)32 << 20)
#define ADMIN_CSP                                                              \
  "default-src 'none'; style-src 'unsafe-inline'; script-src "                 \
  "'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "      \
  "form-action 'none'; frame-ancestors 'none'"

/* The console page (sim/console.html), made into a C string at build
 * time (sim/embed.cmake). */
extern const char admin_console_html[];

struct admin__member {
  char *name;
  char *url;
  enum scenario_patch patch;
  bool script;
  struct proxy *proxy;
};

struct admin {
  struct MHD_Daemon *daemon;
  struct kb_guard *guard; /* caps and head deadlines (kb_guard.h) */
  uint16_t port;
  char *scenario;
  struct admin__member members[ADMIN_MAX_MEMBERS];
  size_t nmembers;
  struct backend *backend;
  char *backend_url;
  struct balancer *balancer;
  char *balancer_url;
  enum balancer_mode balancer_mode;
  /* Guards members[].patch and members[].script, and orders the policy
   * changes pushed to the proxies. */
  pthread_mutex_t lock;
  bool lock_ready;
  char token[ADMIN_TOKEN_MAX + 1];
  char cookie[48]; /* the cookie's name, with the port: one per endpoint */
  char bind_host[64];
  char hosts[ADMIN_MAX_HOSTS][256];
  size_t nhosts;
  struct live *live;
  atomic_bool stopping;
};

/* A non-NULL marker for libmicrohttpd's per-request pointer: the first
 * call of a request only sets it. */
static int admin__request_started;

static const char *const admin__action_names[] = {"apply-fix", "revert",
                                                  "hotfix", "sp1"};

const char *admin_action_name(enum admin_action action)
{
  if((size_t)action <
     sizeof(admin__action_names) / sizeof(admin__action_names[0]))
    return admin__action_names[action];
  return "?";
}

int admin_action_parse(const char *name, enum admin_action *out)
{
  size_t i;

  for(i = 0; i < sizeof(admin__action_names) / sizeof(admin__action_names[0]);
      i++) {
    if(!strcmp(name, admin__action_names[i])) {
      *out = (enum admin_action)i;
      return 0;
    }
  }
  return -1;
}

const char *admin_policy_reason(enum scenario_patch patch, bool script)
{
  switch(patch) {
  case SCENARIO_PATCH_RTM:
    return script ? "script run, no effect without the hotfix"
                  : "as shipped: keeps the connection's authentication";
  case SCENARIO_PATCH_RTM_HOTFIX:
    return script ? "hotfix and script: KB 942638 applied"
                  : "hotfix installed, no effect until the script is run";
  case SCENARIO_PATCH_SP1:
    return script ? "SP1 and script: KB 942638 applied"
                  : "SP1 includes the hotfix, no effect until the script "
                    "is run";
  }
  return "unknown patch level";
}

/* Queues text (len bytes, copied) with status and the given Content-Type,
 * plus the header pairs in extra (NULL-terminated name, value list; may
 * be NULL). Every answer says no-store and nosniff. Returns
 * libmicrohttpd's verdict. */
static enum MHD_Result admin__send(struct MHD_Connection *conn, unsigned status,
                                   const char *type, const char *text,
                                   size_t len, const char *const *extra)
{
  struct MHD_Response *resp;
  enum MHD_Result ret = MHD_NO;
  bool ok;

  resp =
      MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
  if(!resp)
    return MHD_NO;
  ok = MHD_add_response_header(resp, "Content-Type", type) == MHD_YES &&
       MHD_add_response_header(resp, "Cache-Control", "no-store") == MHD_YES &&
       MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") ==
           MHD_YES;
  for(; ok && extra && extra[0]; extra += 2)
    ok = MHD_add_response_header(resp, extra[0], extra[1]) == MHD_YES;
  if(ok)
    ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Sends body (taken over, may be NULL for out of memory) as JSON with
 * status, plus the header pairs in extra. Returns libmicrohttpd's
 * verdict. */
static enum MHD_Result admin__reply_with(struct MHD_Connection *conn,
                                         unsigned status, json_t *body,
                                         const char *const *extra)
{
  enum MHD_Result ret = MHD_NO;
  char *dumped =
      body ? json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  char *text = NULL;
  size_t len;

  json_decref(body);
  if(!dumped) {
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    dumped = strdup("{\"error\": \"out of memory in the admin endpoint\"}");
    if(!dumped)
      return MHD_NO;
  }
  /* A trailing newline, so `curl` output ends its line. */
  len = strlen(dumped);
  text = malloc(len + 2);
  if(!text)
    goto done;
  memcpy(text, dumped, len);
  text[len++] = '\n';
  text[len] = '\0';
  ret = admin__send(conn, status, "application/json", text, len, extra);

done:
  free(text);
  free(dumped);
  return ret;
}

/* Sends body as JSON with status, plus an Allow header when allow is
 * set. */
static enum MHD_Result admin__reply(struct MHD_Connection *conn,
                                    unsigned status, json_t *body,
                                    const char *allow)
{
  const char *extra[] = {"Allow", allow, NULL};

  return admin__reply_with(conn, status, body, allow ? extra : NULL);
}

/* Answers {"error": "<message>"} with status (and Allow when set). */
static enum MHD_Result admin__error(struct MHD_Connection *conn,
                                    unsigned status, const char *allow,
                                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result admin__error(struct MHD_Connection *conn,
                                    unsigned status, const char *allow,
                                    const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return admin__reply(conn, status, json_pack("{s:s}", "error", msg), allow);
}

/* Lists the members as "1 ISA01, 2 ISA02" into out, for error messages. */
static void admin__member_list(const struct admin *a, char *out, size_t len)
{
  size_t i, pos = 0;

  out[0] = '\0';
  for(i = 0; i < a->nmembers && pos < len; i++) {
    int n = snprintf(out + pos, len - pos, "%s%zu %s", i ? ", " : "", i + 1,
                     a->members[i].name);
    if(n < 0)
      break;
    pos += (size_t)n;
  }
}

/* Finds a member by position (from 1) or name (any case). Returns its
 * index, or -1. */
static long admin__find_member(const struct admin *a, const char *id)
{
  size_t i;

  if(*id && strspn(id, "0123456789") == strlen(id) && strlen(id) < 6) {
    long n = strtol(id, NULL, 10);
    return n >= 1 && (size_t)n <= a->nmembers ? n - 1 : -1;
  }
  for(i = 0; i < a->nmembers; i++)
    if(!strcasecmp(id, a->members[i].name))
      return (long)i;
  return -1;
}

/* Applies action to member i under the lock and pushes the new policy to
 * its proxy. Returns what changed as a new JSON object (owned by the
 * caller), or NULL when out of memory (the change is made regardless). */
static json_t *admin__apply(struct admin *a, size_t i, enum admin_action act)
{
  struct admin__member *m = &a->members[i];
  enum proxy_policy before, after;
  const char *what = "";
  bool changed = false;
  json_t *j;

  pthread_mutex_lock(&a->lock);
  before = scenario_effective_policy(m->patch, m->script);
  switch(act) {
  case ADMIN_APPLY_FIX:
    changed = !m->script;
    what = changed ? "script run" : "script already run";
    m->script = true;
    break;
  case ADMIN_REVERT:
    changed = m->script;
    what = changed ? "script undone" : "script was not run, nothing to undo";
    m->script = false;
    break;
  case ADMIN_HOTFIX:
    changed = m->patch == SCENARIO_PATCH_RTM;
    what = changed                          ? "hotfix installed"
           : m->patch == SCENARIO_PATCH_SP1 ? "SP1 already includes the hotfix"
                                            : "hotfix already installed";
    if(changed)
      m->patch = SCENARIO_PATCH_RTM_HOTFIX;
    break;
  case ADMIN_SP1:
    changed = m->patch != SCENARIO_PATCH_SP1;
    what = changed ? "SP1 installed" : "SP1 already installed";
    m->patch = SCENARIO_PATCH_SP1;
    break;
  }
  after = scenario_effective_policy(m->patch, m->script);
  /* Effective from the next request on every connection; none dropped. */
  proxy_set_policy(m->proxy, after);
  j = json_pack("{s:I, s:s, s:s, s:b, s:s, s:s, s:b, s:s, s:s, s:s}", "member",
                (json_int_t)(i + 1), "name", m->name, "action",
                admin_action_name(act), "changed", changed, "what", what,
                "patch", scenario_patch_name(m->patch), "script", m->script,
                "policy_before", proxy_policy_name(before), "policy",
                proxy_policy_name(after), "why",
                admin_policy_reason(m->patch, m->script));
  pthread_mutex_unlock(&a->lock);
  return j;
}

/* Applies action to member `only` (or every member when only < 0) and
 * answers {"action": ..., "changes": [...]}. */
static enum MHD_Result admin__act(struct admin *a, struct MHD_Connection *conn,
                                  enum admin_action act, long only)
{
  json_t *changes = json_array();
  json_t *body;
  size_t i;

  for(i = 0; i < a->nmembers; i++) {
    if(only >= 0 && (size_t)only != i)
      continue;
    if(json_array_append_new(changes, admin__apply(a, i, act)))
      break;
  }
  if(a->live)
    live_bump(a->live); /* consoles show the new policy at once */
  body = json_pack("{s:s, s:o}", "action", admin_action_name(act), "changes",
                   changes);
  return admin__reply(conn, MHD_HTTP_OK, body, NULL);
}

/* Builds GET /status: every member with its state, why its policy is what
 * it is and its counters; the balancer's and Exchange's counters. Returns
 * a new JSON object, or NULL when out of memory. */
static json_t *admin__status(struct admin *a)
{
  struct balancer_stats bs;
  struct backend_stats es;
  json_t *members = json_array();
  json_t *balancer = json_null();
  json_t *exchange;
  size_t i;

  memset(&bs, 0, sizeof(bs));
  if(a->balancer) {
    balancer_stats(a->balancer, &bs);
    json_decref(balancer);
    balancer =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "url", a->balancer_url,
                  "mode", balancer_mode_name(a->balancer_mode), "connections",
                  (json_int_t)bs.accepted, "open", (json_int_t)bs.open,
                  "connect_failed", (json_int_t)bs.connect_failed,
                  "bytes_to_members", (json_int_t)bs.bytes_to_members,
                  "bytes_to_clients", (json_int_t)bs.bytes_to_clients);
  }
  pthread_mutex_lock(&a->lock);
  for(i = 0; i < a->nmembers; i++) {
    const struct admin__member *m = &a->members[i];
    struct proxy_stats ps;
    json_t *j;

    proxy_stats(m->proxy, &ps);
    j = json_pack(
        "{s:I, s:s, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I}",
        "index", (json_int_t)(i + 1), "name", m->name, "url", m->url, "patch",
        scenario_patch_name(m->patch), "script", m->script, "policy",
        proxy_policy_name(proxy_get_policy(m->proxy)), "why",
        admin_policy_reason(m->patch, m->script), "connections",
        (json_int_t)ps.connections, "requests", (json_int_t)ps.requests,
        "challenges", (json_int_t)ps.challenges, "auth_ok",
        (json_int_t)ps.auth_ok, "auth_failed",
        (json_int_t)(ps.auth_failed + ps.basic_failed), "reauth_skipped",
        (json_int_t)ps.reauth_skipped, "forwarded", (json_int_t)ps.forwarded,
        "forwarded_empty_posts", (json_int_t)ps.forwarded_empty_posts);
    if(j && a->balancer) {
      json_object_set_new(j, "balanced_connections",
                          json_integer((json_int_t)bs.member_connections[i]));
      json_object_set_new(j, "open_connections",
                          json_integer((json_int_t)bs.member_open[i]));
    }
    json_array_append_new(members, j);
  }
  pthread_mutex_unlock(&a->lock);
  backend_stats(a->backend, &es);
  exchange = json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "url", a->backend_url,
      "connections", (json_int_t)es.connections, "requests",
      (json_int_t)es.requests, "ews_posts", (json_int_t)es.ews_posts,
      "empty_posts", (json_int_t)es.empty_posts, "soap_faults",
      (json_int_t)es.soap_faults, "oof_ok", (json_int_t)es.oof_ok,
      "availability_ok", (json_int_t)es.availability_ok, "autodiscover_ok",
      (json_int_t)es.autodiscover_ok);
  return json_pack("{s:s, s:s?, s:o, s:o, s:o}", "kbsim", "1", "scenario",
                   a->scenario, "balancer", balancer, "members", members,
                   "exchange", exchange);
}

/* ---- who may ask -------------------------------------------------------- */

int admin_token_check(const char *token, char *err, size_t errlen)
{
  size_t len = strlen(token);

  if(len < ADMIN_TOKEN_MIN || len > ADMIN_TOKEN_MAX ||
     strspn(token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_-") != len) {
    snprintf(err, errlen,
             "the admin token must be %d to %d characters of letters, "
             "digits, '_' and '-'",
             ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX);
    return -1;
  }
  return 0;
}

/* Compares a token a client gave with ours in time that depends on
 * neither's content: both are copied into zeroed buffers of the largest
 * size, every byte and the lengths are compared, the copies wiped. */
static bool admin__token_eq(const struct admin *a, const char *given)
{
  unsigned char x[ADMIN_TOKEN_MAX + 1], y[ADMIN_TOKEN_MAX + 1];
  size_t glen = strnlen(given, sizeof(x));
  size_t tlen = strlen(a->token);
  volatile unsigned char diff = 0;
  size_t i;

  memset(x, 0, sizeof(x));
  memset(y, 0, sizeof(y));
  memcpy(x, given, glen < sizeof(x) ? glen : sizeof(x));
  memcpy(y, a->token, tlen);
  for(i = 0; i < sizeof(x); i++)
    diff |= (unsigned char)(x[i] ^ y[i]);
  diff |= (unsigned char)(glen != tlen);
  explicit_bzero(x, sizeof(x));
  explicit_bzero(y, sizeof(y));
  return !diff;
}

/* Whether name (a Host or Origin host, brackets stripped, len bytes) is
 * one this endpoint answers to. */
static bool admin__host_known(const struct admin *a, const char *name,
                              size_t len)
{
  size_t i;

  if((len == strlen(a->bind_host) && !strncasecmp(name, a->bind_host, len)) ||
     (len == 9 && !strncasecmp(name, "localhost", 9)))
    return true;
  for(i = 0; i < a->nhosts; i++)
    if(len == strlen(a->hosts[i]) && !strncasecmp(name, a->hosts[i], len))
      return true;
  return false;
}

/* Whether hostport ("127.0.0.1:8099", "[::1]:8099", "localhost") names
 * this endpoint: a known host and, when a port is given, ours. */
static bool admin__hostport_ok(const struct admin *a, const char *hostport)
{
  const char *host = hostport, *end, *colon;
  size_t len;

  if(*host == '[') {
    host++;
    end = strchr(host, ']');
    if(!end)
      return false;
    colon = end[1] == ':' ? end + 1 : NULL;
    if(end[1] && !colon)
      return false;
  }
  else {
    colon = strchr(host, ':');
    if(colon && strchr(colon + 1, ':'))
      return false;
    end = colon ? colon : host + strlen(host);
  }
  len = (size_t)(end - host);
  if(!len || !admin__host_known(a, host, len))
    return false;
  if(colon) {
    char *stop;
    unsigned long port;

    if(!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
      return false;
    port = strtoul(colon + 1, &stop, 10);
    if(port != a->port)
      return false;
  }
  return true;
}

/* What the guard found wrong, or ADMIN__OK. */
enum admin__verdict {
  ADMIN__OK = 0,
  ADMIN__NO_TOKEN,   /* 401 */
  ADMIN__BAD_TOKEN,  /* 401 */
  ADMIN__BAD_HOST,   /* 403 */
  ADMIN__BAD_ORIGIN, /* 403 */
  ADMIN__BAD_TYPE    /* 403 */
};

/* Checks one request before anything is done for it: Host, Origin, the
 * token (from Authorization: Bearer, the cookie, or on GET / the query),
 * and a POST's content type. Returns ADMIN__OK, or what was wrong with a
 * one-line reason in why; *from_query says the token came in the URL. */
static enum admin__verdict
admin__guard(struct admin *a, struct MHD_Connection *conn, const char *url,
             const char *method, bool *from_query, char *why, size_t whylen)
{
  const char *host =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
  const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_ORIGIN);
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_AUTHORIZATION);
  const char *cookie =
      MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, a->cookie);
  const char *query =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
  const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
  const char *token = NULL;

  *from_query = false;
  if(!host || !admin__hostport_ok(a, host)) {
    snprintf(why, whylen,
             "Host '%.100s' is not this endpoint's; use "
             "http://%s%s%s:%u/, or start serve with --admin-host NAME",
             host ? host : "(none)", strchr(a->bind_host, ':') ? "[" : "",
             a->bind_host, strchr(a->bind_host, ':') ? "]" : "",
             (unsigned)a->port);
    return ADMIN__BAD_HOST;
  }
  if(origin &&
     (strncmp(origin, "http://", 7) || strcasecmp(origin + 7, host))) {
    snprintf(why, whylen,
             "Origin '%.100s' is not this endpoint's (http://%.100s): other "
             "web pages may not use the admin endpoint",
             origin, host);
    return ADMIN__BAD_ORIGIN;
  }
  if(auth && !strncasecmp(auth, "Bearer ", 7))
    token = auth + 7;
  else if(cookie)
    token = cookie;
  else if(query && !strcmp(url, "/") && !strcmp(method, "GET")) {
    token = query;
    *from_query = true;
  }
  if(!token) {
    snprintf(why, whylen,
             "no token: open the console URL `kbsim serve` printed, or send "
             "Authorization: Bearer TOKEN (kbsim ctl --token)");
    return ADMIN__NO_TOKEN;
  }
  if(!admin__token_eq(a, token)) {
    snprintf(why, whylen,
             "wrong token: use the one `kbsim serve` printed or wrote to "
             "its token file");
    return ADMIN__BAD_TOKEN;
  }
  if(!strcmp(method, "POST")) {
    size_t n = type ? strcspn(type, "; \t") : 0;

    if(!type || n != 16 || strncasecmp(type, "application/json", 16)) {
      snprintf(why, whylen,
               "a change needs Content-Type: application/json, not "
               "'%.60s'",
               type ? type : "(none)");
      return ADMIN__BAD_TYPE;
    }
  }
  return ADMIN__OK;
}

/* ---- the console and its stream ---------------------------------------- */

/* Serves the console page; when the token came in the URL, sets it as a
 * cookie that only this endpoint's own pages send (SameSite=Strict). */
static enum MHD_Result admin__page(struct admin *a, struct MHD_Connection *conn,
                                   bool from_query)
{
  char cookie[256];
  const char *extra[] = {"Content-Security-Policy",
                         ADMIN_CSP,
                         "X-Frame-Options",
                         "DENY",
                         "Referrer-Policy",
                         "no-referrer",
                         NULL,
                         NULL,
                         NULL};

  if(from_query) {
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict",
             a->cookie, a->token);
    extra[6] = "Set-Cookie";
    extra[7] = cookie;
  }
  return admin__send(conn, MHD_HTTP_OK, "text/html; charset=utf-8",
                     admin_console_html, strlen(admin_console_html), extra);
}

/* One console's stream of Server-Sent Events. */
struct admin__stream {
  struct admin *a;
  struct kb_buf out; /* written, not yet read by libmicrohttpd */
  size_t off;
  uint64_t last_leg;
  uint64_t version;
  bool started;
};

/* Appends the status event to st->out. */
static void admin__stream_status(struct admin__stream *st)
{
  json_t *j = admin__status(st->a);
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

  json_decref(j);
  if(text)
    kb_buf_printf(&st->out, "event: status\ndata: %s\n\n", text);
  free(text);
}

/* libmicrohttpd's content reader, on the connection's own thread: hands
 * out what is written, else waits for the next change (or writes a
 * keep-alive comment after ADMIN_KEEPALIVE_MS). */
static ssize_t admin__stream_read(void *cls, uint64_t pos, char *buf,
                                  size_t max)
{
  struct admin__stream *st = cls;
  size_t n;
  (void)pos;

  if(st->off >= st->out.len) {
    kb_buf_reset(&st->out);
    st->off = 0;
    if(atomic_load(&st->a->stopping))
      return MHD_CONTENT_READER_END_OF_STREAM;
    if(!st->started) {
      /* The array first: the legs are drawn on its members' lanes. */
      st->started = true;
      kb_buf_printf(&st->out, "retry: 2000\n\n");
      st->version = live_version(st->a->live);
      admin__stream_status(st);
      st->last_leg = live_events_since(st->a->live, st->last_leg, &st->out);
      goto hand_out;
    }
    else {
      uint64_t v = live_wait(st->a->live, st->version, ADMIN_KEEPALIVE_MS);

      if(atomic_load(&st->a->stopping))
        return MHD_CONTENT_READER_END_OF_STREAM;
      if(v == st->version) {
        kb_buf_printf(&st->out, ": keep-alive\n\n");
        goto hand_out;
      }
      st->version = v;
    }
    st->last_leg = live_events_since(st->a->live, st->last_leg, &st->out);
    admin__stream_status(st);
  }
hand_out:
  n = st->out.len - st->off;
  if(n > max)
    n = max;
  memcpy(buf, st->out.data + st->off, n);
  st->off += n;
  return (ssize_t)n;
}

static void admin__stream_free(void *cls)
{
  struct admin__stream *st = cls;

  kb_buf_free(&st->out);
  free(st);
}

/* Starts a console's stream, resuming after Last-Event-ID when the
 * browser reconnects. */
static enum MHD_Result admin__events(struct admin *a,
                                     struct MHD_Connection *conn)
{
  const char *last =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
  struct admin__stream *st;
  struct MHD_Response *resp;
  enum MHD_Result ret;

  if(!a->live)
    return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                        "this endpoint has no live view");
  st = calloc(1, sizeof(*st));
  if(!st)
    return MHD_NO;
  st->a = a;
  kb_buf_init(&st->out, ADMIN_STREAM_MAX);
  if(last && *last && strspn(last, "0123456789") == strlen(last) &&
     strlen(last) < 20)
    st->last_leg = strtoull(last, NULL, 10);
  resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 16384, admin__stream_read, st, admin__stream_free);
  if(!resp) {
    admin__stream_free(st);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Routes one complete request; see admin.h for the endpoints. */
static enum MHD_Result admin__route(struct admin *a,
                                    struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    bool from_query)
{
  bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  bool post = !strcmp(method, "POST");
  enum admin_action act;
  char names[256];

  admin__member_list(a, names, sizeof(names));
  if(!strcmp(url, "/status") || !strcmp(url, "/") || !strcmp(url, "/events")) {
    if(!get)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD",
                          "%s %s: use GET", method, url);
    if(!strcmp(url, "/"))
      return admin__page(a, conn, from_query);
    if(!strcmp(url, "/events"))
      return admin__events(a, conn);
    return admin__reply(conn, MHD_HTTP_OK, admin__status(a), NULL);
  }
  if(url[0] == '/' && !admin_action_parse(url + 1, &act)) {
    if(!post)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
                          "%s %s: use POST", method, url);
    if(act == ADMIN_HOTFIX || act == ADMIN_SP1)
      return admin__error(conn, MHD_HTTP_BAD_REQUEST, NULL,
                          "%s is installed on one member at a time: POST "
                          "/members/N/%s with N one of %s",
                          admin_action_name(act), admin_action_name(act),
                          names);
    return admin__act(a, conn, act, -1);
  }
  if(!strncmp(url, ADMIN_MEMBERS_PREFIX, strlen(ADMIN_MEMBERS_PREFIX))) {
    const char *id = url + strlen(ADMIN_MEMBERS_PREFIX);
    const char *slash = strchr(id, '/');
    char idbuf[64];
    long m;

    if(!slash || (size_t)(slash - id) >= sizeof(idbuf) || slash == id)
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "no such endpoint '%.100s'; use POST "
                          "/members/N/ACTION (ACTION: apply-fix, revert, "
                          "hotfix, sp1)",
                          url);
    memcpy(idbuf, id, (size_t)(slash - id));
    idbuf[slash - id] = '\0';
    m = admin__find_member(a, idbuf);
    if(m < 0)
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "no member '%s' in this array; members: %s", idbuf,
                          names);
    if(admin_action_parse(slash + 1, &act))
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "unknown action '%.60s' for %s; use apply-fix, "
                          "revert, hotfix or sp1",
                          slash + 1, a->members[m].name);
    if(!post)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
                          "%s %s: use POST", method, url);
    return admin__act(a, conn, act, m);
  }
  return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                      "no such endpoint '%.100s'; use GET /status, POST "
                      "/apply-fix, POST /revert or POST /members/N/ACTION",
                      url);
}

/* The guard slot of conn (its socket context), or NULL. */
static struct kb_guard_slot *admin__slot(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? info->socket_context : NULL;
}

/* libmicrohttpd's accept policy: the guard's caps. */
static enum MHD_Result admin__on_accept(void *cls, const struct sockaddr *addr,
                                        socklen_t addrlen)
{
  struct admin *a = cls;
  return kb_guard_admit(a->guard, addr, addrlen) ? MHD_YES : MHD_NO;
}

/* libmicrohttpd's connection notification: a guard slot per connection,
 * in its socket context. */
static void admin__on_connection(void *cls, struct MHD_Connection *conn,
                                 void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe)
{
  struct admin *a = cls;
  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *socket_context = fd ? kb_guard_open(a->guard, fd->connect_fd,
                                         addr ? addr->client_addr : NULL)
                         : NULL;
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    kb_guard_close(*socket_context);
    *socket_context = NULL;
  }
}

/* libmicrohttpd's completion notification: the next head's clock. */
static void admin__on_completed(void *cls, struct MHD_Connection *conn,
                                void **req_cls,
                                enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)req_cls;
  (void)toe;
  kb_guard_next(admin__slot(conn));
}

/* libmicrohttpd's access handler: the first call marks the request, body
 * bytes (which no endpoint needs) are dropped, the last call answers. */
static enum MHD_Result admin__on_request(void *cls, struct MHD_Connection *conn,
                                         const char *url, const char *method,
                                         const char *version,
                                         const char *upload_data,
                                         size_t *upload_data_size,
                                         void **req_cls)
{
  struct admin *a = cls;
  enum admin__verdict verdict;
  bool from_query;
  char why[512];
  (void)version;
  (void)upload_data;
  if(!*req_cls) {
    *req_cls = &admin__request_started;
    /* Too late: the guard answered 408 and is closing the connection. */
    return kb_guard_head_done(admin__slot(conn)) ? MHD_YES : MHD_NO;
  }
  if(*upload_data_size) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  if(!kb_guard_body_done(admin__slot(conn)))
    return MHD_NO; /* the body came too late: answered 408 */
  verdict = admin__guard(a, conn, url, method, &from_query, why, sizeof(why));
  if(verdict == ADMIN__NO_TOKEN || verdict == ADMIN__BAD_TOKEN) {
    const char *extra[] = {"WWW-Authenticate", "Bearer realm=\"kbsim\"", NULL};
    return admin__reply_with(conn, MHD_HTTP_UNAUTHORIZED,
                             json_pack("{s:s}", "error", why), extra);
  }
  if(verdict != ADMIN__OK)
    return admin__error(conn, MHD_HTTP_FORBIDDEN, NULL, "%s", why);
  return admin__route(a, conn, url, method, from_query);
}

int admin_start(const struct admin_config *config, struct admin **out,
                char *err, size_t errlen)
{
  struct admin *a = NULL;
  const char *host = config->bind_host ? config->bind_host : ADMIN_DEFAULT_HOST;
  size_t i;
  int fd = -1;

  *out = NULL;
  if(!config->nmembers || config->nmembers > ADMIN_MAX_MEMBERS ||
     !config->backend) {
    snprintf(err, errlen,
             "admin endpoint: needs Exchange and 1 to %d "
             "members",
             ADMIN_MAX_MEMBERS);
    return -1;
  }
  a = calloc(1, sizeof(*a));
  if(!a || pthread_mutex_init(&a->lock, NULL)) {
    free(a);
    snprintf(err, errlen, "admin endpoint: out of memory");
    return -1;
  }
  a->lock_ready = true;
  if(config->token) {
    if(admin_token_check(config->token, err, errlen))
      goto error;
    snprintf(a->token, sizeof(a->token), "%s", config->token);
  }
  else {
    struct kb_rng kernel; /* zeroed: the kernel's randomness */
    uint8_t raw[ADMIN_TOKEN_BYTES];

    memset(&kernel, 0, sizeof(kernel));
    kb_rng_fill(&kernel, "admin/token", raw, sizeof(raw));
    for(i = 0; i < sizeof(raw); i++)
      snprintf(a->token + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof(raw));
  }
  if(config->nhosts > ADMIN_MAX_HOSTS) {
    snprintf(err, errlen, "admin endpoint: at most %d --admin-host names",
             ADMIN_MAX_HOSTS);
    goto error;
  }
  for(i = 0; i < config->nhosts; i++)
    snprintf(a->hosts[i], sizeof(a->hosts[i]), "%s", config->hosts[i]);
  a->nhosts = config->nhosts;
  snprintf(a->bind_host, sizeof(a->bind_host), "%s", host);
  a->live = config->live;
  atomic_init(&a->stopping, false);
  a->nmembers = config->nmembers;
  a->backend = config->backend;
  a->balancer = config->balancer;
  a->balancer_mode = config->balancer_mode;
  a->backend_url = strdup(config->backend_url ? config->backend_url : "");
  a->balancer_url = strdup(config->balancer_url ? config->balancer_url : "");
  a->scenario = config->scenario ? strdup(config->scenario) : NULL;
  if(!a->backend_url || !a->balancer_url || (config->scenario && !a->scenario))
    goto nomem;
  for(i = 0; i < a->nmembers; i++) {
    const struct admin_member *src = &config->members[i];
    struct admin__member *m = &a->members[i];

    m->name = strdup(src->name ? src->name : "ISA01");
    m->url = strdup(src->url ? src->url : "");
    if(!m->name || !m->url)
      goto nomem;
    m->patch = src->patch;
    m->script = src->script;
    m->proxy = src->proxy;
    /* What the admin shows and what the proxy does must agree from the
     * start. */
    proxy_set_policy(m->proxy, scenario_effective_policy(m->patch, m->script));
  }

  fd = kb_net_listen("admin endpoint", host, config->port, 0, err, errlen);
  if(fd < 0)
    goto error;
  {
    /* The port, and the cookie named after it, are known before the
     * daemon's threads start: they read them without a lock. */
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);

    if(getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
      a->port = kb_sockaddr_port((struct sockaddr *)&ss);
    if(!a->port) {
      snprintf(err, errlen,
               "admin endpoint: cannot read the port it "
               "listens on");
      close(fd);
      goto error;
    }
    snprintf(a->cookie, sizeof(a->cookie), "kbsim_admin_%u", (unsigned)a->port);
  }
  /* No MHD_USE_ERROR_LOG: a trainer's terminal shows kbsim's lines only. */
  /* A thread per connection: a console's stream waits for the next leg
   * on its own thread without holding up anyone else's request. */
  {
    struct kb_guard_config gc;
    char gerr[128];
    memset(&gc, 0, sizeof(gc));
    gc.who = "admin endpoint";
    gc.idle_ms = ADMIN_CONN_TIMEOUT_S * 1000u;
    gc.head_timeout_ms = config->head_timeout_ms;
    gc.max_connections = ADMIN_CONN_LIMIT;
    if(kb_guard_start(&gc, &a->guard, gerr, sizeof(gerr))) {
      snprintf(err, errlen, "admin endpoint: %s", gerr);
      close(fd);
      goto error;
    }
  }
  /* The guard refuses at its cap, at once, and ends slow heads with 408;
   * libmicrohttpd's own limit leaves room for what it shut down. */
  a->daemon = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO_INTERNAL_THREAD |
          MHD_USE_ITC,
      0, admin__on_accept, a, admin__on_request, a, MHD_OPTION_LISTEN_SOCKET,
      fd, MHD_OPTION_CONNECTION_LIMIT, 2 * ADMIN_CONN_LIMIT,
      MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_CONN_TIMEOUT_S,
      MHD_OPTION_NOTIFY_CONNECTION, admin__on_connection, a,
      MHD_OPTION_NOTIFY_COMPLETED, admin__on_completed, a, MHD_OPTION_END);
  if(!a->daemon) {
    snprintf(err, errlen,
             "admin endpoint: libmicrohttpd refused to start "
             "(%s); check thread and file-descriptor limits",
             strerror(errno));
    close(fd);
    goto error;
  }
  *out = a;
  return 0;

nomem:
  snprintf(err, errlen, "admin endpoint: out of memory");
error:
  admin_stop(a);
  return -1;
}

uint16_t admin_port(const struct admin *admin)
{
  return admin->port;
}

const char *admin_token(const struct admin *admin)
{
  return admin->token;
}

void admin_token_path(uint16_t port, char *out, size_t len)
{
  const char *base = getenv("XDG_RUNTIME_DIR");

  if(!base || base[0] != '/')
    base = "/tmp";
  snprintf(out, len, "%s/kbsim-%u/admin-%u.token", base, (unsigned)getuid(),
           (unsigned)port);
}

int admin_token_write(const char *path, const char *token, char *err,
                      size_t errlen)
{
  char dir[512];
  char *slash;
  struct stat st;
  size_t len = strlen(token);
  int fd;

  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  if(!slash || slash == dir) {
    snprintf(err, errlen, "token file %s: not in a directory", path);
    return -1;
  }
  *slash = '\0';
  if(mkdir(dir, 0700) && errno != EEXIST) {
    snprintf(err, errlen, "cannot make %s for the token file: %s", dir,
             strerror(errno));
    return -1;
  }
  if(lstat(dir, &st) || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
     (st.st_mode & 077)) {
    snprintf(err, errlen,
             "%s is not a directory of yours alone (mode 0700); remove it "
             "and start again",
             dir);
    return -1;
  }
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if(fd < 0 || fchmod(fd, 0600) || write(fd, token, len) != (ssize_t)len ||
     write(fd, "\n", 1) != 1) {
    snprintf(err, errlen, "cannot write the token file %s: %s", path,
             strerror(errno));
    if(fd >= 0)
      close(fd);
    return -1;
  }
  if(close(fd)) {
    snprintf(err, errlen, "cannot write the token file %s: %s", path,
             strerror(errno));
    return -1;
  }
  return 0;
}

int admin_token_read(const char *path, char *out, size_t len, char *err,
                     size_t errlen)
{
  char buf[ADMIN_TOKEN_MAX + 4];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if(fd < 0) {
    snprintf(err, errlen, "cannot read the token file %s (%s)", path,
             strerror(errno));
    return -1;
  }
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if(n < 0)
    n = 0;
  buf[n] = '\0';
  buf[strcspn(buf, "\r\n")] = '\0';
  if(admin_token_check(buf, err, errlen) || strlen(buf) >= len) {
    char why[160];

    snprintf(why, sizeof(why), "%s", err);
    snprintf(err, errlen, "%s: %s", path, why);
    return -1;
  }
  snprintf(out, len, "%s", buf);
  explicit_bzero(buf, sizeof(buf));
  return 0;
}

void admin_stop(struct admin *admin)
{
  size_t i;

  if(!admin)
    return;
  /* Streams end first: each waits on the live view on its own thread. */
  atomic_store(&admin->stopping, true);
  if(admin->live)
    live_wake_all(admin->live);
  if(admin->daemon)
    MHD_stop_daemon(admin->daemon);
  kb_guard_stop(admin->guard);
  explicit_bzero(admin->token, sizeof(admin->token));
  for(i = 0; i < admin->nmembers; i++) {
    free(admin->members[i].name);
    free(admin->members[i].url);
  }
  free(admin->scenario);
  free(admin->backend_url);
  free(admin->balancer_url);
  if(admin->lock_ready)
    pthread_mutex_destroy(&admin->lock);
  free(admin);
}
