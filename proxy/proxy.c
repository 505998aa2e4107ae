/*
 * proxy.c - the ISA Server 2006 web listener: NTLM in front (libmicrohttpd,
 * one thread per client connection), a reverse proxy to the published
 * server behind (libcurl, one easy handle per client connection).
 *
 * The decision table is in proxy.h and proxy/README.md. Everything a client
 * connection owns lives in struct proxy_conn, which libmicrohttpd keeps as
 * the connection's socket context: created on MHD_CONNECTION_NOTIFY_STARTED,
 * freed on MHD_CONNECTION_NOTIFY_CLOSED. Only that connection's thread
 * touches it in between, so it needs no lock. What the threads share (the
 * policy, the stop flag, the counters) is atomic or under proxy->lock.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include "kb_buf.h"
#include "ntlm.h"

#define PROXY_DEFAULT_NAME "ISA01"
#define PROXY_DEFAULT_DOMAIN "FABRIKAM"
#define PROXY_DEFAULT_HOST "127.0.0.1"
#define PROXY_DEFAULT_MAX_BODY ((size_t)1024 * 1024)
#define PROXY_DEFAULT_TIMEOUT_MS 30000L
#define PROXY_ORIGIN "proxy"
/* Simultaneous client connections; each costs a thread. */
#define PROXY_CONNECTION_LIMIT 256u
/* Per-connection memory for the request line and headers; a type 3 token
 * from a long domain\user is a few KiB of base64, well inside this. */
#define PROXY_CONNECTION_MEMORY ((size_t)128 * 1024)
/* Idle keep-alive connections are closed after this many seconds. */
#define PROXY_IDLE_TIMEOUT_S 120u
/* Cap on the response header block relayed from the backend. */
#define PROXY_MAX_RESPONSE_HEADERS ((size_t)64 * 1024)

/* ---- types ------------------------------------------------------------ */

/* Where a client connection stands in its NTLM handshake. */
enum proxy_auth_state {
  PROXY_AUTH_UNAUTHENTICATED = 0,
  PROXY_AUTH_CHALLENGED,   /* a type 2 was sent; a type 3 may follow */
  PROXY_AUTH_AUTHENTICATED /* a type 3 was verified on this connection */
};

/* What the Authorization header of a request carries. */
enum proxy_token {
  PROXY_TOKEN_NONE = 0,    /* no Authorization header */
  PROXY_TOKEN_BAD,         /* present but unusable; see why */
  PROXY_TOKEN_NEGOTIATE,   /* an NTLM type 1 */
  PROXY_TOKEN_AUTHENTICATE /* an NTLM type 3 */
};

struct proxy {
  struct MHD_Daemon *daemon;
  uint16_t port;
  char *bind_host;
  char *backend_url; /* without a trailing '/' */
  char *name;
  char *domain;
  const struct kb_users *users;
  size_t max_body;
  long upstream_timeout_ms;
  struct kb_clock clock;
  struct kb_rng rng;
  struct kb_trace trace;
  struct kb_names names;

  atomic_int policy;            /* enum proxy_policy, read once per request */
  atomic_bool stopping;         /* aborts upstream transfers in flight */
  atomic_uint_fast64_t next_id; /* front connection ids, from 1 */

  pthread_mutex_t lock; /* guards stats */
  struct proxy_stats stats;
};

/* The request being read on a connection. libmicrohttpd handles one
 * request at a time per connection, so it is embedded in the connection
 * and reset at the start and end of each request. */
struct proxy_req {
  char *uri;          /* raw request target, query included; owned */
  struct kb_buf body; /* capped at max_body */
  size_t body_seen;   /* bytes of body received, kept or not */
  bool started;       /* the access handler has seen the headers */
  bool too_big;       /* body_seen exceeded max_body; body was dropped */
  bool nomem;         /* the body could not be stored */
};

/* One client TCP connection. */
struct proxy_conn {
  struct proxy *proxy;
  uint64_t id;
  char name[64];     /* the name the peer claimed (kb_names), or "" */
  char up_name[96];  /* the current upstream connection's name, or "" */
  unsigned upstreams; /* upstream connections opened for this one */
  enum proxy_auth_state state;
  enum ntlm_scheme scheme;  /* the scheme of the current handshake */
  uint8_t challenge[8];     /* pending server challenge (CHALLENGED) */
  uint32_t negotiate_flags; /* from the type 1 of the handshake */
  struct ntlm_identity who; /* valid when AUTHENTICATED */
  unsigned handshakes;      /* type 2s sent on this connection */
  CURL *curl;               /* upstream handle, created lazily */
  struct proxy_req req;
};

/* The answer to one client request, before it is queued. */
struct proxy_answer {
  unsigned status;
  struct MHD_Response *response; /* owned until queued */
  enum kb_auth resp_auth;
  size_t resp_body_len;
  struct proxy_stats delta; /* added to the counters in one step */
};

/* What an upstream transfer collects. */
struct proxy_fwd {
  struct proxy_conn *conn;
  struct kb_buf headers; /* "Name: value\n" lines of the final response */
  struct kb_buf body;
  bool too_big; /* the body or headers went past their cap */
};

/* ---- small helpers ---------------------------------------------------- */

/* Returns a malloc'd copy of s, or of fallback when s is NULL or empty;
 * NULL when out of memory. */
static char *proxy_strdup_or(const char *s, const char *fallback)
{
  return strdup((s && *s) ? s : fallback);
}

/* Writes a formatted line into err when there is room for one. */
static void proxy_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void proxy_set_error(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if(!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Emits a byte or connection event on either hop, as the proxy saw it. */
static void proxy_emit(const struct proxy *proxy, enum kb_trace_kind kind,
                       enum kb_hop hop, uint64_t conn, const char *conn_name,
                       const void *data, size_t len,
                       const struct kb_exchange *exchange)
{
  struct kb_trace_event ev;
  if(!proxy->trace.emit)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.kind = kind;
  ev.hop = hop;
  /* The proxy is the server on the client hop and the client upstream. */
  ev.side = hop == KB_HOP_CLIENT_PROXY ? KB_SIDE_SERVER : KB_SIDE_CLIENT;
  ev.origin = PROXY_ORIGIN;
  ev.conn = conn;
  ev.conn_name = conn_name && *conn_name ? conn_name : NULL;
  ev.data = data;
  ev.len = len;
  ev.exchange = exchange;
  kb_trace_emit(&proxy->trace, &ev);
}

#define proxy_note(conn, ...)                                                  \
  kb_trace_note(&(conn)->proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER,    \
                PROXY_ORIGIN, (conn)->id, __VA_ARGS__)

/* Adds every counter of delta to the proxy's, in one locked step so that a
 * reader never sees half of one request. */
static void proxy_stats_add(struct proxy *proxy,
                            const struct proxy_stats *delta)
{
  pthread_mutex_lock(&proxy->lock);
  proxy->stats.connections += delta->connections;
  proxy->stats.requests += delta->requests;
  proxy->stats.challenges += delta->challenges;
  proxy->stats.auth_ok += delta->auth_ok;
  proxy->stats.auth_failed += delta->auth_failed;
  proxy->stats.reauth_skipped += delta->reauth_skipped;
  proxy->stats.forwarded += delta->forwarded;
  proxy->stats.forwarded_empty_posts += delta->forwarded_empty_posts;
  proxy->stats.upstream_errors += delta->upstream_errors;
  pthread_mutex_unlock(&proxy->lock);
}

/* Returns true when name is a hop-by-hop header, or one a relay must not
 * copy because the next hop computes it (Content-Length), or one named by
 * the message's Connection header (connection_tokens, may be NULL). */
static bool proxy_is_hop_header(const char *name, const char *connection_tokens)
{
  static const char *const hop[] = {"Connection",
                                    "Keep-Alive",
                                    "Proxy-Connection",
                                    "Proxy-Authorization",
                                    "Proxy-Authenticate",
                                    "TE",
                                    "Trailer",
                                    "Transfer-Encoding",
                                    "Upgrade",
                                    "Content-Length"};
  size_t i;
  size_t n = strlen(name);
  const char *p = connection_tokens;

  for(i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if(!strcasecmp(name, hop[i]))
      return true;
  /* "Connection: Keep-Alive, X-Foo" also makes X-Foo hop-by-hop. */
  while(p && *p) {
    size_t len;
    while(*p == ' ' || *p == '\t' || *p == ',')
      p++;
    len = strcspn(p, ", \t");
    if(len == n && len && !strncasecmp(p, name, n))
      return true;
    p += len;
  }
  return false;
}

/* Classifies an Authorization or WWW-Authenticate value for the trace.
 * Never fails: unparseable values are KB_AUTH_OTHER. */
static enum kb_auth proxy_classify_auth(const char *value)
{
  enum ntlm_scheme scheme;
  struct ntlm_bytes token = {NULL, 0};
  enum kb_auth auth = KB_AUTH_OTHER;

  if(!value)
    return KB_AUTH_NONE;
  if(ntlm_header_parse(value, &scheme, &token, NULL, 0) == NTLM_OK) {
    if(!token.len)
      auth = KB_AUTH_NTLM_BARE;
    else
      switch(ntlm_peek_type(token.data, token.len)) {
      case NTLM_TYPE_NEGOTIATE:
        auth = KB_AUTH_NTLM_NEGOTIATE;
        break;
      case NTLM_TYPE_CHALLENGE:
        auth = KB_AUTH_NTLM_CHALLENGE;
        break;
      case NTLM_TYPE_AUTHENTICATE:
        auth = KB_AUTH_NTLM_AUTHENTICATE;
        break;
      case NTLM_TYPE_NONE:
        auth = KB_AUTH_OTHER;
        break;
      }
  }
  ntlm_bytes_free(&token);
  return auth;
}

/* Formats "DOMAIN\user" of an identity into out. */
static const char *proxy_who(const struct ntlm_identity *who, char *out,
                             size_t outlen)
{
  snprintf(out, outlen, "%s\\%s", who->domain, who->user);
  return out;
}

/* ---- policy ----------------------------------------------------------- */

const char *proxy_policy_name(enum proxy_policy policy)
{
  return policy == PROXY_POLICY_PER_REQUEST ? "per-request" : "per-connection";
}

int proxy_policy_parse(const char *name, enum proxy_policy *out)
{
  if(!name || !out)
    return -1;
  if(!strcmp(name, "per-connection"))
    *out = PROXY_POLICY_PER_CONNECTION;
  else if(!strcmp(name, "per-request"))
    *out = PROXY_POLICY_PER_REQUEST;
  else
    return -1;
  return 0;
}

void proxy_set_policy(struct proxy *proxy, enum proxy_policy policy)
{
  atomic_store(&proxy->policy, (int)policy);
}

enum proxy_policy proxy_get_policy(const struct proxy *proxy)
{
  return (enum proxy_policy)atomic_load(&proxy->policy);
}

uint16_t proxy_port(const struct proxy *proxy)
{
  return proxy->port;
}

void proxy_stats(const struct proxy *proxy, struct proxy_stats *stats)
{
  struct proxy *p = (struct proxy *)proxy; /* locking is not a change */
  pthread_mutex_lock(&p->lock);
  *stats = p->stats;
  pthread_mutex_unlock(&p->lock);
}

/* ---- responses -------------------------------------------------------- */

/* Adds a Date header from the configured clock: the daemon runs with
 * MHD_USE_SUPPRESS_DATE_NO_CLOCK so that a simulated clock shows. */
static void proxy_add_date(const struct proxy_conn *conn, struct MHD_Response *r)
{
  char date[KB_HTTP_DATE_LEN];
  kb_http_date(kb_clock_now(&conn->proxy->clock,
                            conn->name[0] ? conn->name : NULL), date);
  MHD_add_response_header(r, MHD_HTTP_HEADER_DATE, date);
}

/* Fills ans with a response the proxy writes itself: status, a one-line
 * text/plain body from fmt, and a WWW-Authenticate value when www_auth is
 * not NULL (resp_auth classifies it for the trace). On allocation failure
 * ans->response stays NULL and the caller drops the connection. */
static void proxy_answer_text(const struct proxy_conn *conn,
                              struct proxy_answer *ans, unsigned status,
                              const char *www_auth, enum kb_auth resp_auth,
                              const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void proxy_answer_text(const struct proxy_conn *conn,
                              struct proxy_answer *ans, unsigned status,
                              const char *www_auth, enum kb_auth resp_auth,
                              const char *fmt, ...)
{
  char body[1024];
  va_list ap;
  int n;
  size_t len;
  struct MHD_Response *r;

  va_start(ap, fmt);
  n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
  va_end(ap);
  len = n < 0 ? 0 : (size_t)n;
  if(len > sizeof(body) - 2)
    len = sizeof(body) - 2;
  body[len++] = '\n';
  body[len] = '\0';

  r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
  if(r) {
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    if(www_auth)
      MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth);
    proxy_add_date(conn, r);
  }
  ans->status = status;
  ans->response = r;
  ans->resp_auth = www_auth ? resp_auth : KB_AUTH_NONE;
  ans->resp_body_len = len;
}

/* A 401 asking for NTLM from the start ("WWW-Authenticate: NTLM"). */
#define proxy_answer_401(conn, ans, ...)                                       \
  proxy_answer_text((conn), (ans), MHD_HTTP_UNAUTHORIZED, "NTLM",              \
                    KB_AUTH_NTLM_BARE, __VA_ARGS__)

/* ---- upstream (libcurl) ----------------------------------------------- */

static pthread_once_t proxy_curl_once = PTHREAD_ONCE_INIT;
static CURLcode proxy_curl_init_result = CURLE_FAILED_INIT;

/* libcurl wants curl_global_init before any other call and it must not
 * race with itself, so the first proxy_start runs it exactly once. It is
 * never undone: other components may use libcurl in the same process, and
 * curl_global_cleanup at exit is optional. */
static void proxy_curl_global_init(void)
{
  proxy_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Binds an upstream socket to an ephemeral port before libcurl connects it
 * and claims "<client connection> upstream <n>" for that port, so the
 * backend can tell which client connection it serves. An unbindable socket
 * stays unnamed. */
static void proxy_name_upstream(struct proxy_conn *conn, curl_socket_t fd,
                                int family)
{
  struct sockaddr_storage ss;
  socklen_t len;
  uint16_t port;

  memset(&ss, 0, sizeof(ss));
  ss.ss_family = (sa_family_t)family;
  len = family == AF_INET6 ? sizeof(struct sockaddr_in6)
                           : sizeof(struct sockaddr_in);
  if((family != AF_INET && family != AF_INET6) ||
     bind(fd, (struct sockaddr *)&ss, len) ||
     getsockname(fd, (struct sockaddr *)&ss, &len)) {
    conn->up_name[0] = '\0';
    return;
  }
  port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                           : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  snprintf(conn->up_name, sizeof(conn->up_name), "%s upstream %u", conn->name,
           ++conn->upstreams);
  kb_names_claim(&conn->proxy->names, port, conn->up_name);
}

/* Opens the socket of an upstream connection and traces it. */
static curl_socket_t proxy_curl_open(void *clientp, curlsocktype purpose,
                                     struct curl_sockaddr *addr)
{
  struct proxy_conn *conn = clientp;
  curl_socket_t fd;

  if(purpose != CURLSOCKTYPE_IPCXN)
    return CURL_SOCKET_BAD;
  fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
  if(fd != CURL_SOCKET_BAD && conn->name[0] && conn->proxy->names.claim)
    proxy_name_upstream(conn, fd, addr->family);
  if(fd != CURL_SOCKET_BAD)
    proxy_emit(conn->proxy, KB_TRACE_OPEN, KB_HOP_PROXY_BACKEND, conn->id,
               conn->up_name, NULL, 0, NULL);
  return fd;
}

/* Closes the socket of an upstream connection and traces it. */
static int proxy_curl_close(void *clientp, curl_socket_t fd)
{
  struct proxy_conn *conn = clientp;
  proxy_emit(conn->proxy, KB_TRACE_CLOSE, KB_HOP_PROXY_BACKEND, conn->id,
             conn->up_name, NULL, 0, NULL);
  return close(fd);
}

/* Traces the exact bytes libcurl writes to and reads from the backend. */
static int proxy_curl_debug(CURL *handle, curl_infotype type, char *data,
                            size_t size, void *clientp)
{
  struct proxy_conn *conn = clientp;
  enum kb_trace_kind kind;
  (void)handle;

  switch(type) {
  case CURLINFO_HEADER_OUT:
  case CURLINFO_DATA_OUT:
    kind = KB_TRACE_SEND;
    break;
  case CURLINFO_HEADER_IN:
  case CURLINFO_DATA_IN:
    kind = KB_TRACE_RECV;
    break;
  default:
    return 0;
  }
  proxy_emit(conn->proxy, kind, KB_HOP_PROXY_BACKEND, conn->id, conn->up_name,
             data, size,
             NULL);
  return 0;
}

/* Collects the header lines of the final response; a status line starts a
 * new block, so only the last response's headers remain. */
static size_t proxy_curl_header(char *data, size_t size, size_t nmemb,
                                void *userp)
{
  struct proxy_fwd *fwd = userp;
  size_t total = size * nmemb;
  size_t len = total;

  if(len >= 5 && !memcmp(data, "HTTP/", 5)) {
    kb_buf_reset(&fwd->headers);
    return total;
  }
  while(len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
    len--;
  /* Skip the blank end line and obsolete folded continuations. */
  if(!len || data[0] == ' ' || data[0] == '\t')
    return total;
  if(kb_buf_add(&fwd->headers, data, len) != KB_BUF_OK ||
     kb_buf_add(&fwd->headers, "\n", 1) != KB_BUF_OK) {
    fwd->too_big = true;
    return 0;
  }
  return total;
}

/* Collects the response body up to max_body; past it the transfer is
 * aborted and the client gets a 502. */
static size_t proxy_curl_write(char *data, size_t size, size_t nmemb,
                               void *userp)
{
  struct proxy_fwd *fwd = userp;
  size_t total = size * nmemb;

  if(kb_buf_add(&fwd->body, data, total) != KB_BUF_OK) {
    fwd->too_big = true;
    return 0;
  }
  return total;
}

/* Aborts a transfer in flight when the proxy is stopping, so that
 * proxy_stop does not wait for the upstream timeout. */
static int proxy_curl_progress(void *clientp, curl_off_t dltotal,
                               curl_off_t dlnow, curl_off_t ultotal,
                               curl_off_t ulnow)
{
  struct proxy_conn *conn = clientp;
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  return atomic_load(&conn->proxy->stopping) ? 1 : 0;
}

/* What proxy_collect_headers builds. */
struct proxy_hdr_ctx {
  struct curl_slist *list;
  const char *connection_tokens;
  bool has_accept;
  bool has_content_type;
  bool failed;
};

/* Appends one client request header to the upstream list unless it is
 * hop-by-hop; libcurl drops a header given as "Name:" so an empty value is
 * written "Name;". */
static enum MHD_Result proxy_collect_header(void *cls, enum MHD_ValueKind kind,
                                            const char *key, const char *value)
{
  struct proxy_hdr_ctx *ctx = cls;
  struct curl_slist *next;
  char *line;
  size_t len;
  (void)kind;

  if(!key || proxy_is_hop_header(key, ctx->connection_tokens))
    return MHD_YES;
  if(!strcasecmp(key, "Accept"))
    ctx->has_accept = true;
  if(!strcasecmp(key, "Content-Type"))
    ctx->has_content_type = true;
  if(!value)
    value = "";
  len = strlen(key) + strlen(value) + 3;
  line = malloc(len);
  if(!line) {
    ctx->failed = true;
    return MHD_NO;
  }
  if(*value)
    snprintf(line, len, "%s: %s", key, value);
  else
    snprintf(line, len, "%s;", key);
  next = curl_slist_append(ctx->list, line);
  free(line);
  if(!next) {
    ctx->failed = true;
    return MHD_NO;
  }
  ctx->list = next;
  return MHD_YES;
}

/* Builds the upstream header list: the client's headers in their order
 * minus hop-by-hop ones, blanks suppressing what libcurl would add on its
 * own (so the backend sees what the client sent), then our Via. Returns
 * the list (caller frees with curl_slist_free_all) or NULL when out of
 * memory. */
static struct curl_slist *proxy_upstream_headers(struct proxy_conn *conn,
                                                 struct MHD_Connection *mc,
                                                 bool has_body)
{
  struct proxy_hdr_ctx ctx;
  char via[256];
  struct curl_slist *next;

  memset(&ctx, 0, sizeof(ctx));
  ctx.connection_tokens =
      MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Connection");
  /* libcurl writes a custom Host right after the request line, unless the
   * first Host entry is blank: then it drops its own and sends the
   * client's where the client put it, so the backend sees the client's
   * header order (the support case sends Host fourth). */
  if(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Host")) {
    ctx.list = curl_slist_append(NULL, "Host:");
    if(!ctx.list)
      goto error;
  }
  MHD_get_connection_values(mc, MHD_HEADER_KIND, proxy_collect_header, &ctx);
  if(ctx.failed)
    goto error;
  /* Blank entries ("Name:") only remove libcurl's defaults; they are not
   * sent. */
  next = curl_slist_append(ctx.list, "Expect:");
  if(!next)
    goto error;
  ctx.list = next;
  if(!ctx.has_accept) {
    next = curl_slist_append(ctx.list, "Accept:");
    if(!next)
      goto error;
    ctx.list = next;
  }
  if(has_body && !ctx.has_content_type) {
    next = curl_slist_append(ctx.list, "Content-Type:");
    if(!next)
      goto error;
    ctx.list = next;
  }
  snprintf(via, sizeof(via), "Via: 1.1 %s", conn->proxy->name);
  next = curl_slist_append(ctx.list, via);
  if(!next)
    goto error;
  return next;

error:
  curl_slist_free_all(ctx.list);
  return NULL;
}

/* One header line of a relayed response, split in place. */
struct proxy_header {
  char *name;
  char *value;
};

/* Splits fwd->headers ("Name: value\n" lines) in place into *out, an
 * array the caller frees; returns the count, or (size_t)-1 when out of
 * memory. Lines without a name are dropped. */
static size_t proxy_split_headers(struct proxy_fwd *fwd,
                                  struct proxy_header **out)
{
  struct proxy_header *h;
  size_t lines = 0;
  size_t n = 0;
  char *p;
  char *save = NULL;
  char *line;

  *out = NULL;
  if(!fwd->headers.data || !fwd->headers.len)
    return 0;
  for(p = fwd->headers.data; *p; p++)
    lines += *p == '\n';
  h = calloc(lines + 1, sizeof(*h));
  if(!h)
    return (size_t)-1;
  for(line = strtok_r(fwd->headers.data, "\n", &save); line;
      line = strtok_r(NULL, "\n", &save)) {
    char *colon = strchr(line, ':');
    char *value;
    char *end;
    if(!colon || colon == line)
      continue;
    *colon = '\0';
    value = colon + 1;
    while(*value == ' ' || *value == '\t')
      value++;
    end = value + strlen(value);
    while(end > value && (end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    h[n].name = line;
    h[n].value = value;
    n++;
  }
  *out = h;
  return n;
}

/* Builds the client's response from what the backend sent: its status,
 * headers minus hop-by-hop ones, body, plus our Via. Takes the body out of
 * fwd. Fills ans; ans->response stays NULL when out of memory. */
static void proxy_relay(struct proxy_conn *conn, struct proxy_fwd *fwd,
                        unsigned status, struct proxy_answer *ans)
{
  struct MHD_Response *r = NULL;
  struct proxy_header *h = NULL;
  size_t count;
  size_t i;
  char *body;
  size_t body_len = 0;
  const char *connection_tokens = NULL;
  bool has_date = false;
  char via[256];

  count = proxy_split_headers(fwd, &h);
  if(count == (size_t)-1)
    return;
  body = kb_buf_steal(&fwd->body, &body_len);
  if(!body)
    goto out;
  r = MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_MUST_FREE);
  if(!r) {
    free(body);
    goto out;
  }
  ans->status = status;
  ans->response = r;
  ans->resp_auth = KB_AUTH_NONE;
  ans->resp_body_len = body_len;

  /* The response's own Connection header names more hop-by-hop fields. */
  for(i = 0; i < count; i++)
    if(!strcasecmp(h[i].name, "Connection"))
      connection_tokens = h[i].value;
  for(i = 0; i < count; i++) {
    if(proxy_is_hop_header(h[i].name, connection_tokens))
      continue;
    if(!strcasecmp(h[i].name, MHD_HTTP_HEADER_DATE))
      has_date = true;
    if(!strcasecmp(h[i].name, MHD_HTTP_HEADER_WWW_AUTHENTICATE) &&
       ans->resp_auth == KB_AUTH_NONE)
      ans->resp_auth = proxy_classify_auth(h[i].value);
    /* libmicrohttpd refuses values it considers unsafe; such a header is
     * dropped rather than failing the whole response. */
    MHD_add_response_header(r, h[i].name, h[i].value);
  }
  if(!has_date)
    proxy_add_date(conn, r);
  snprintf(via, sizeof(via), "1.1 %s", conn->proxy->name);
  MHD_add_response_header(r, MHD_HTTP_HEADER_VIA, via);
out:
  free(h);
}

/* Fills ans with the answer to a forward that produced no relayable
 * response: 503 when proxy_stop aborted it, 502 when the response was too
 * big or the backend could not be reached (or memory ran out), 504 on the
 * upstream timeout. errbuf is libcurl's detail line, possibly empty. */
static void proxy_upstream_failed(struct proxy_conn *conn,
                                  const struct proxy_fwd *fwd, CURLcode res,
                                  const char *errbuf, struct proxy_answer *ans)
{
  const struct proxy *proxy = conn->proxy;

  if(res == CURLE_ABORTED_BY_CALLBACK) {
    /* Only proxy_stop aborts a transfer: not the backend's fault. */
    proxy_note(conn, "the listener is stopping: transfer to the published "
                     "server abandoned, 503");
    proxy_answer_text(
        conn, ans, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, KB_AUTH_NONE,
        "ISA %s: the listener is shutting down; retry later", proxy->name);
    return;
  }
  ans->delta.upstream_errors = 1;
  if(fwd->too_big) {
    proxy_note(conn,
               "the response of the published server is larger than "
               "the %zu-byte limit: 502",
               proxy->max_body);
    proxy_answer_text(conn, ans, MHD_HTTP_BAD_GATEWAY, NULL, KB_AUTH_NONE,
                      "ISA %s: the response of the published server %s is "
                      "larger than the %zu-byte limit; raise max_body",
                      proxy->name, proxy->backend_url, proxy->max_body);
  }
  else if(res == CURLE_OPERATION_TIMEDOUT) {
    proxy_note(conn, "the published server did not answer within %ld ms: 504",
               proxy->upstream_timeout_ms);
    proxy_answer_text(conn, ans, MHD_HTTP_GATEWAY_TIMEOUT, NULL, KB_AUTH_NONE,
                      "ISA %s: the published server %s did not answer within "
                      "%ld ms: %s",
                      proxy->name, proxy->backend_url,
                      proxy->upstream_timeout_ms,
                      errbuf[0] ? errbuf : curl_easy_strerror(res));
  }
  else {
    const char *why = res == CURLE_OK ? "no HTTP status in its answer"
                      : errbuf[0]     ? errbuf
                                      : curl_easy_strerror(res);
    proxy_note(conn, "the published server could not be reached (%s): 502",
               why);
    proxy_answer_text(conn, ans, MHD_HTTP_BAD_GATEWAY, NULL, KB_AUTH_NONE,
                      "ISA %s: the published server %s could not be reached: "
                      "%s",
                      proxy->name, proxy->backend_url, why);
  }
}

/* Forwards the current request to the backend on the connection's own
 * upstream handle and fills ans with the relayed response, or with the
 * 502/503/504 of proxy_upstream_failed. The request body stays owned by
 * conn->req. */
static void proxy_forward(struct proxy_conn *conn, struct MHD_Connection *mc,
                          const char *method, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_fwd fwd;
  struct curl_slist *headers = NULL;
  char *url = NULL;
  size_t url_len;
  char errbuf[CURL_ERROR_SIZE];
  const char *body = conn->req.body.data ? conn->req.body.data : "";
  size_t body_len = conn->req.body.len;
  bool is_post = !strcmp(method, "POST");
  bool is_head = !strcmp(method, "HEAD");
  bool send_body = !is_head && (is_post || body_len > 0);
  CURLcode res = CURLE_OUT_OF_MEMORY; /* until the transfer runs */
  long code = 0;

  memset(&fwd, 0, sizeof(fwd));
  fwd.conn = conn;
  kb_buf_init(&fwd.headers, PROXY_MAX_RESPONSE_HEADERS);
  kb_buf_init(&fwd.body, proxy->max_body);
  errbuf[0] = '\0';

  ans->delta.forwarded = 1;
  if(is_post && !body_len)
    ans->delta.forwarded_empty_posts = 1;

  if(!conn->curl)
    conn->curl = curl_easy_init();
  if(!conn->curl)
    goto out;
  /* A reset keeps the handle's connection cache, so the upstream
   * connection is reused, while no option of the previous request
   * (NOBODY after a HEAD, ...) leaks into this one. */
  curl_easy_reset(conn->curl);

  url_len = strlen(proxy->backend_url) + strlen(conn->req.uri) + 1;
  url = malloc(url_len);
  if(!url)
    goto out;
  snprintf(url, url_len, "%s%s", proxy->backend_url, conn->req.uri);
  headers = proxy_upstream_headers(conn, mc, send_body);
  if(!headers)
    goto out;

  curl_easy_setopt(conn->curl, CURLOPT_URL, url);
  curl_easy_setopt(conn->curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(conn->curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(conn->curl, CURLOPT_PROXY, ""); /* ignore *_proxy env */
  curl_easy_setopt(conn->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(conn->curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(conn->curl, CURLOPT_TIMEOUT_MS, proxy->upstream_timeout_ms);
  curl_easy_setopt(conn->curl, CURLOPT_CONNECTTIMEOUT_MS,
                   proxy->upstream_timeout_ms);
  curl_easy_setopt(conn->curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(conn->curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(conn->curl, CURLOPT_HEADERFUNCTION, proxy_curl_header);
  curl_easy_setopt(conn->curl, CURLOPT_HEADERDATA, &fwd);
  curl_easy_setopt(conn->curl, CURLOPT_WRITEFUNCTION, proxy_curl_write);
  curl_easy_setopt(conn->curl, CURLOPT_WRITEDATA, &fwd);
  curl_easy_setopt(conn->curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(conn->curl, CURLOPT_XFERINFOFUNCTION, proxy_curl_progress);
  curl_easy_setopt(conn->curl, CURLOPT_XFERINFODATA, conn);
  curl_easy_setopt(conn->curl, CURLOPT_OPENSOCKETFUNCTION, proxy_curl_open);
  curl_easy_setopt(conn->curl, CURLOPT_OPENSOCKETDATA, conn);
  curl_easy_setopt(conn->curl, CURLOPT_CLOSESOCKETFUNCTION, proxy_curl_close);
  curl_easy_setopt(conn->curl, CURLOPT_CLOSESOCKETDATA, conn);
  if(proxy->trace.emit) {
    curl_easy_setopt(conn->curl, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(conn->curl, CURLOPT_DEBUGFUNCTION, proxy_curl_debug);
    curl_easy_setopt(conn->curl, CURLOPT_DEBUGDATA, conn);
  }
  if(send_body) {
    /* POSTFIELDS even when empty, so an empty POST goes out with
     * "Content-Length: 0" exactly as the client sent it. */
    curl_easy_setopt(conn->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(conn->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(conn->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)body_len);
    if(!is_post)
      curl_easy_setopt(conn->curl, CURLOPT_CUSTOMREQUEST, method);
  }
  else if(is_head)
    curl_easy_setopt(conn->curl, CURLOPT_NOBODY, 1L);
  else if(!strcmp(method, "GET"))
    curl_easy_setopt(conn->curl, CURLOPT_HTTPGET, 1L);
  else
    curl_easy_setopt(conn->curl, CURLOPT_CUSTOMREQUEST, method);

  res = curl_easy_perform(conn->curl);
  if(res == CURLE_OK)
    curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &code);
  /* The handle must not keep pointers to this frame between requests. */
  curl_easy_setopt(conn->curl, CURLOPT_ERRORBUFFER, NULL);

out:
  if(res == CURLE_OK && code >= 100 && code <= 999)
    proxy_relay(conn, &fwd, (unsigned)code, ans);
  else
    proxy_upstream_failed(conn, &fwd, res, errbuf, ans);
  curl_slist_free_all(headers);
  free(url);
  kb_buf_free(&fwd.headers);
  kb_buf_free(&fwd.body);
}

/* ---- the decision table ----------------------------------------------- */

/* Reads the request's Authorization header. Returns what it carries; for
 * PROXY_TOKEN_BAD writes why into why; for NEGOTIATE and AUTHENTICATE
 * fills *msg (caller frees with ntlm_message_free) and *scheme. *peeked is
 * the NTLM type the token claims, even when it does not decode. */
static enum proxy_token proxy_read_token(const char *value,
                                         enum ntlm_scheme *scheme,
                                         struct ntlm_message *msg,
                                         enum ntlm_type *peeked, char *why,
                                         size_t whylen)
{
  struct ntlm_bytes token = {NULL, 0};
  enum proxy_token result = PROXY_TOKEN_BAD;
  char err[256];
  enum ntlm_result r;

  *peeked = NTLM_TYPE_NONE;
  memset(msg, 0, sizeof(*msg));
  if(!value)
    return PROXY_TOKEN_NONE;

  err[0] = '\0';
  r = ntlm_header_parse(value, scheme, &token, err, sizeof(err));
  if(r != NTLM_OK) {
    snprintf(why, whylen, "%s", err[0] ? err : ntlm_strerror(r));
    goto out;
  }
  if(!token.len) {
    snprintf(why, whylen, "the Authorization header carries no NTLM token");
    goto out;
  }
  *peeked = ntlm_peek_type(token.data, token.len);
  if(*peeked == NTLM_TYPE_NONE) {
    snprintf(why, whylen,
             "the Authorization token is not an NTLM message (no NTLMSSP "
             "signature)");
    goto out;
  }
  if(*peeked == NTLM_TYPE_CHALLENGE) {
    snprintf(why, whylen,
             "the client sent an NTLM type 2 (CHALLENGE), "
             "which only servers send");
    goto out;
  }
  r = ntlm_decode(token.data, token.len, msg, err, sizeof(err));
  if(r != NTLM_OK) {
    snprintf(why, whylen, "%s", err[0] ? err : ntlm_strerror(r));
    goto out;
  }
  result = msg->type == NTLM_TYPE_NEGOTIATE ? PROXY_TOKEN_NEGOTIATE
                                            : PROXY_TOKEN_AUTHENTICATE;
out:
  ntlm_bytes_free(&token);
  return result;
}

/* Adapts the user store to ntlm_server_verify's lookup. */
static const char *proxy_lookup(void *ctx, const char *domain, const char *user)
{
  const struct proxy *proxy = ctx;
  return kb_users_password(proxy->users, domain, user);
}

/* Starts (or restarts) a handshake: draws a server challenge, answers 401
 * with a type 2 in the client's scheme and leaves the connection
 * CHALLENGED. */
static void proxy_challenge(struct proxy_conn *conn,
                            const struct ntlm_message *negotiate,
                            enum ntlm_scheme scheme, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  struct ntlm_server_info info;
  struct ntlm_bytes type2 = {NULL, 0};
  char label[256];
  char *header = NULL;

  memset(&conn->who, 0, sizeof(conn->who));
  conn->state = PROXY_AUTH_UNAUTHENTICATED;
  conn->handshakes++;
  if(conn->name[0])
    snprintf(label, sizeof(label), "proxy/%s/%s/handshake/%u/challenge",
             proxy->name, conn->name, conn->handshakes);
  else
    snprintf(label, sizeof(label),
             "proxy/%s/conn/%" PRIu64 "/handshake/%u/challenge", proxy->name,
             conn->id, conn->handshakes);
  kb_rng_fill(&proxy->rng, label, conn->challenge, sizeof(conn->challenge));
  conn->negotiate_flags = negotiate->flags;
  conn->scheme = scheme;

  memset(&info, 0, sizeof(info));
  info.netbios_domain = proxy->domain;
  info.netbios_computer = proxy->name;
  if(ntlm_server_challenge(
         &info, conn->negotiate_flags, conn->challenge,
         ntlm_filetime_from_unix_ms(
             kb_clock_now(&proxy->clock, conn->name[0] ? conn->name : NULL)),
         &type2) != NTLM_OK ||
     !(header = ntlm_header_format(scheme, type2.data, type2.len))) {
    proxy_answer_text(
        conn, ans, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, KB_AUTH_NONE,
        "ISA %s: could not build an NTLM challenge; retry", proxy->name);
    goto out;
  }
  conn->state = PROXY_AUTH_CHALLENGED;
  ans->delta.challenges = 1;
  proxy_answer_text(
      conn, ans, MHD_HTTP_UNAUTHORIZED, header, KB_AUTH_NTLM_CHALLENGE,
      "ISA %s: NTLM challenge sent; answer it with a type 3", proxy->name);
out:
  free(header);
  ntlm_bytes_free(&type2);
}

/* Describes, for a decision note, what forwarding this request sends. */
static void proxy_describe_forward(const struct proxy_conn *conn,
                                   const char *method, char *out, size_t outlen)
{
  if(!strcmp(method, "POST") && !conn->req.body.len)
    snprintf(out, outlen, "POST forwarded without its body");
  else if(conn->req.body.len)
    snprintf(out, outlen, "%s forwarded with its %zu-byte body", method,
             conn->req.body.len);
  else
    snprintf(out, outlen, "%s forwarded", method);
}

/* Applies the decision table of proxy.h to the request now complete on
 * conn and fills ans with the answer (forwarding when the table says so).
 * Never fails: what a client sends can only earn it a 4xx. */
static void proxy_decide(struct proxy_conn *conn, struct MHD_Connection *mc,
                         const char *method, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  const char *value;
  enum proxy_policy policy;
  enum proxy_token token;
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  enum ntlm_type peeked;
  struct ntlm_message msg;
  char why[320];
  char who[260];
  char what[128];
  char err[320];

  memset(&msg, 0, sizeof(msg));
  if(conn->req.too_big) {
    proxy_note(conn,
               "request body of %zu bytes is over the %zu-byte limit: "
               "413, nothing forwarded",
               conn->req.body_seen, proxy->max_body);
    proxy_answer_text(conn, ans, MHD_HTTP_CONTENT_TOO_LARGE, NULL, KB_AUTH_NONE,
                      "ISA %s: the request body is larger than the %zu-byte "
                      "limit; send a smaller body",
                      proxy->name, proxy->max_body);
    return;
  }
  if(conn->req.nomem || !conn->req.uri) {
    proxy_answer_text(conn, ans, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
                      KB_AUTH_NONE,
                      "ISA %s: out of memory while reading the request; "
                      "retry later",
                      proxy->name);
    return;
  }
  if(conn->req.uri[0] != '/') {
    proxy_note(conn, "request target is not a path: 400");
    proxy_answer_text(conn, ans, MHD_HTTP_BAD_REQUEST, NULL, KB_AUTH_NONE,
                      "ISA %s: the request target must be a path such as "
                      "/EWS/Exchange.asmx",
                      proxy->name);
    return;
  }

  /* One read per request: a concurrent proxy_set_policy applies from the
   * next request on. */
  policy = (enum proxy_policy)atomic_load(&proxy->policy);
  value = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_AUTHORIZATION);
  why[0] = '\0';
  token = proxy_read_token(value, &scheme, &msg, &peeked, why, sizeof(why));
  if(conn->state == PROXY_AUTH_AUTHENTICATED)
    proxy_who(&conn->who, who, sizeof(who));
  else
    who[0] = '\0';

  switch(token) {
  case PROXY_TOKEN_NONE:
    if(conn->state == PROXY_AUTH_AUTHENTICATED) {
      proxy_describe_forward(conn, method, what, sizeof(what));
      proxy_note(conn, "connection %" PRIu64 " is authenticated as %s; %s",
                 conn->id, who, what);
      proxy_forward(conn, mc, method, ans);
    }
    else {
      proxy_note(conn,
                 "connection %" PRIu64 " is not authenticated%s and sent no "
                 "Authorization: 401 asking for NTLM",
                 conn->id,
                 conn->state == PROXY_AUTH_CHALLENGED
                     ? " (it left its handshake after the type 2)"
                     : "");
      conn->state = PROXY_AUTH_UNAUTHENTICATED;
      proxy_answer_401(conn, ans,
                       "ISA %s: authentication required; send NTLM "
                       "credentials",
                       proxy->name);
    }
    break;

  case PROXY_TOKEN_BAD:
    if(peeked == NTLM_TYPE_AUTHENTICATE)
      ans->delta.auth_failed = 1;
    proxy_note(conn,
               "connection %" PRIu64 " sent an unusable Authorization "
               "header (%s): 401 asking for NTLM, connection "
               "de-authenticated",
               conn->id, why);
    memset(&conn->who, 0, sizeof(conn->who));
    conn->state = PROXY_AUTH_UNAUTHENTICATED;
    proxy_answer_401(conn, ans,
                     "ISA %s: unusable Authorization header: %s; start "
                     "again with an NTLM type 1",
                     proxy->name, why);
    break;

  case PROXY_TOKEN_NEGOTIATE:
    if(conn->state == PROXY_AUTH_AUTHENTICATED &&
       policy == PROXY_POLICY_PER_CONNECTION) {
      ans->delta.reauth_skipped = 1;
      proxy_describe_forward(conn, method, what, sizeof(what));
      proxy_note(conn,
                 "connection %" PRIu64 " is already authenticated as %s; "
                 "policy per-connection keeps that context: NTLM type 1 not "
                 "challenged, %s",
                 conn->id, who, what);
      proxy_forward(conn, mc, method, ans);
    }
    else if(conn->state == PROXY_AUTH_AUTHENTICATED) {
      proxy_note(conn,
                 "connection %" PRIu64 " is authenticated as %s, but policy "
                 "per-request: NTLM type 1 on an authenticated connection "
                 "restarts the handshake: 401 with a new type 2",
                 conn->id, who);
      proxy_challenge(conn, &msg, scheme, ans);
    }
    else {
      proxy_note(conn,
                 "connection %" PRIu64 ": NTLM type 1: 401 with a type 2 "
                 "(handshake %u on this connection)",
                 conn->id, conn->handshakes + 1);
      proxy_challenge(conn, &msg, scheme, ans);
    }
    break;

  case PROXY_TOKEN_AUTHENTICATE:
    if(conn->state != PROXY_AUTH_CHALLENGED) {
      ans->delta.auth_failed = 1;
      proxy_note(conn,
                 "connection %" PRIu64 " sent an NTLM type 3 with no "
                 "challenge pending: 401 asking for NTLM, connection "
                 "de-authenticated",
                 conn->id);
      memset(&conn->who, 0, sizeof(conn->who));
      conn->state = PROXY_AUTH_UNAUTHENTICATED;
      proxy_answer_401(conn, ans,
                       "ISA %s: NTLM type 3 without a challenge on this "
                       "connection; start again with a type 1",
                       proxy->name);
      break;
    }
    err[0] = '\0';
    if(ntlm_server_verify(&msg, conn->challenge, proxy_lookup, proxy,
                          &conn->who, err, sizeof(err)) != NTLM_OK) {
      ans->delta.auth_failed = 1;
      memset(&conn->who, 0, sizeof(conn->who));
      conn->state = PROXY_AUTH_UNAUTHENTICATED;
      proxy_note(conn,
                 "connection %" PRIu64 ": NTLM type 3 refused (%s): 401 "
                 "asking for NTLM, nothing forwarded",
                 conn->id, err);
      proxy_answer_401(conn, ans,
                       "ISA %s: NTLM authentication failed: %s; check the "
                       "user name and password",
                       proxy->name, err);
      break;
    }
    ans->delta.auth_ok = 1;
    conn->state = PROXY_AUTH_AUTHENTICATED;
    memset(conn->challenge, 0, sizeof(conn->challenge));
    proxy_describe_forward(conn, method, what, sizeof(what));
    proxy_note(conn, "connection %" PRIu64 " authenticated as %s (%s); %s",
               conn->id, proxy_who(&conn->who, who, sizeof(who)),
               ntlm_response_kind_name(conn->who.kind), what);
    proxy_forward(conn, mc, method, ans);
    break;
  }
  ntlm_message_free(&msg);
}

/* ---- libmicrohttpd callbacks ------------------------------------------ */

/* Empties the request state, keeping the connection's. */
static void proxy_req_reset(struct proxy_conn *conn)
{
  free(conn->req.uri);
  kb_buf_free(&conn->req.body);
  memset(&conn->req, 0, sizeof(conn->req));
  kb_buf_init(&conn->req.body, conn->proxy->max_body);
}

/* Frees a connection and everything it owns, upstream handle first (its
 * close callback still reads conn). Accepts NULL. */
static void proxy_conn_free(struct proxy_conn *conn)
{
  if(!conn)
    return;
  if(conn->curl)
    curl_easy_cleanup(conn->curl);
  free(conn->req.uri);
  kb_buf_free(&conn->req.body);
  free(conn);
}

/* Creates the per-connection state on STARTED and frees it on CLOSED.
 * When it cannot be allocated, socket_context stays NULL and every
 * request on that connection is refused by closing it. */
/* Looks up the name the peer of mc claimed for its port (kb_names); leaves
 * name empty when there is none. */
static void proxy_resolve_peer(const struct proxy *proxy,
                               struct MHD_Connection *mc, char *name,
                               size_t len)
{
  const union MHD_ConnectionInfo *info;
  const struct sockaddr *sa;
  uint16_t port;

  name[0] = '\0';
  if(!proxy->names.resolve)
    return;
  info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if(!info || !info->client_addr)
    return;
  sa = info->client_addr;
  if(sa->sa_family == AF_INET)
    port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
  else if(sa->sa_family == AF_INET6)
    port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  else
    return;
  kb_names_resolve(&proxy->names, port, name, len);
}

static void proxy_on_connection(void *cls, struct MHD_Connection *mc,
                                void **socket_context,
                                enum MHD_ConnectionNotificationCode toe)
{
  struct proxy *proxy = cls;
  struct proxy_conn *conn = *socket_context;
  struct proxy_stats delta;

  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn = calloc(1, sizeof(*conn));
    if(!conn)
      return;
    conn->proxy = proxy;
    conn->id = atomic_fetch_add(&proxy->next_id, 1);
    proxy_resolve_peer(proxy, mc, conn->name, sizeof(conn->name));
    conn->state = PROXY_AUTH_UNAUTHENTICATED;
    kb_buf_init(&conn->req.body, proxy->max_body);
    *socket_context = conn;
    memset(&delta, 0, sizeof(delta));
    delta.connections = 1;
    proxy_stats_add(proxy, &delta);
    proxy_emit(proxy, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, conn->id, conn->name,
               NULL, 0,
               NULL);
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED && conn) {
    uint64_t id = conn->id;
    char name[sizeof(conn->name)];

    memcpy(name, conn->name, sizeof(name));
    /* Upstream first, so its CLOSE is traced before the client's. */
    proxy_conn_free(conn);
    *socket_context = NULL;
    proxy_emit(proxy, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, id, name, NULL, 0,
               NULL);
  }
}

/* Called once per request with the raw request target, before
 * libmicrohttpd splits off the query: the only place the query string is
 * seen as sent. Returns the connection, which becomes the request's
 * con_cls; the request state is embedded in it, so there is nothing to
 * leak when a request ends before the access handler sees it. */
static void *proxy_on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
  const union MHD_ConnectionInfo *info;
  struct proxy_conn *conn;
  (void)cls;

  info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn = info ? info->socket_context : NULL;
  if(!conn)
    return NULL;
  proxy_req_reset(conn);
  conn->req.uri = strdup(uri ? uri : "");
  return conn;
}

/* Ends a request: frees its body and target. */
static void proxy_on_completed(void *cls, struct MHD_Connection *mc,
                               void **con_cls,
                               enum MHD_RequestTerminationCode toe)
{
  struct proxy_conn *conn = *con_cls;
  (void)cls;
  (void)mc;
  (void)toe;
  if(conn)
    proxy_req_reset(conn);
  *con_cls = NULL;
}

/* Routes libmicrohttpd's own error messages to the trace as notes. */
static void proxy_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  struct proxy *proxy = cls;
  char line[512];
  size_t len;

  if(!proxy->trace.emit)
    return;
  vsnprintf(line, sizeof(line), fmt, ap);
  len = strlen(line);
  while(len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  kb_trace_note(&proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER,
                PROXY_ORIGIN, 0, "libmicrohttpd: %s", line);
}

/* The access handler: gathers the body (capped, but always read to its
 * end so the connection stays keep-alive), then decides and answers. */
static enum MHD_Result proxy_on_request(void *cls, struct MHD_Connection *mc,
                                        const char *url, const char *method,
                                        const char *version,
                                        const char *upload_data,
                                        size_t *upload_data_size,
                                        void **con_cls)
{
  struct proxy *proxy = cls;
  struct proxy_conn *conn = *con_cls;
  struct proxy_answer ans;
  struct kb_exchange ex;
  const char *auth;
  enum MHD_Result result;
  (void)version;

  if(!conn)
    return MHD_NO;
  if(!conn->req.started) {
    conn->req.started = true;
    return MHD_YES;
  }
  if(*upload_data_size) {
    conn->req.body_seen += *upload_data_size;
    if(!conn->req.too_big && !conn->req.nomem) {
      enum kb_buf_result r =
          kb_buf_add(&conn->req.body, upload_data, *upload_data_size);
      if(r != KB_BUF_OK) {
        /* Keep reading to the end, but hold nothing more. */
        conn->req.too_big = r == KB_BUF_TOO_BIG;
        conn->req.nomem = r == KB_BUF_NOMEM;
        kb_buf_free(&conn->req.body);
      }
    }
    *upload_data_size = 0;
    return MHD_YES;
  }

  memset(&ans, 0, sizeof(ans));
  proxy_decide(conn, mc, method, &ans);
  if(!ans.response)
    return MHD_NO;

  ans.delta.requests = 1;
  /* Counters and trace before queueing: once the response is on the wire
   * a client may read the stats, and must see this request in them. */
  proxy_stats_add(proxy, &ans.delta);
  auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_AUTHORIZATION);
  memset(&ex, 0, sizeof(ex));
  ex.method = method;
  ex.path = url;
  ex.req_auth = proxy_classify_auth(auth);
  ex.req_body_len = conn->req.body_seen;
  ex.status = (int)ans.status;
  ex.resp_auth = ans.resp_auth;
  ex.resp_body_len = ans.resp_body_len;
  proxy_emit(proxy, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, conn->id, conn->name,
             NULL, 0,
             &ex);

  result = MHD_queue_response(mc, ans.status, ans.response);
  MHD_destroy_response(ans.response);
  return result;
}

/* ---- start / stop ----------------------------------------------------- */

int proxy_start(const struct proxy_config *config, struct proxy **out,
                char *err, size_t errlen)
{
  struct proxy *proxy = NULL;
  struct sockaddr_storage addr;
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
                       MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                       MHD_USE_SUPPRESS_DATE_NO_CLOCK | MHD_USE_ERROR_LOG;
  const union MHD_DaemonInfo *info;
  bool lock_ready = false;
  size_t len;
  int saved_errno;

  if(!config || !out) {
    proxy_set_error(err, errlen, "proxy_start: config and out must be given");
    return -1;
  }
  *out = NULL;
  if(!config->backend_url || strncmp(config->backend_url, "http", 4) != 0) {
    proxy_set_error(err, errlen,
                    "proxy: no published server URL; set backend_url, e.g. "
                    "http://127.0.0.1:8081");
    return -1;
  }
  if(!config->users) {
    proxy_set_error(err, errlen,
                    "proxy: no user store; give the proxy the "
                    "users it verifies NTLM against");
    return -1;
  }
  pthread_once(&proxy_curl_once, proxy_curl_global_init);
  if(proxy_curl_init_result != CURLE_OK) {
    proxy_set_error(err, errlen, "proxy: libcurl could not be initialised: %s",
                    curl_easy_strerror(proxy_curl_init_result));
    return -1;
  }

  proxy = calloc(1, sizeof(*proxy));
  if(!proxy) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    goto fail;
  }
  proxy->bind_host = proxy_strdup_or(config->bind_host, PROXY_DEFAULT_HOST);
  proxy->backend_url = strdup(config->backend_url);
  proxy->name = proxy_strdup_or(config->name, PROXY_DEFAULT_NAME);
  proxy->domain = proxy_strdup_or(config->domain, PROXY_DEFAULT_DOMAIN);
  if(!proxy->bind_host || !proxy->backend_url || !proxy->name ||
     !proxy->domain) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    goto fail;
  }
  len = strlen(proxy->backend_url);
  while(len && proxy->backend_url[len - 1] == '/')
    proxy->backend_url[--len] = '\0';
  proxy->users = config->users;
  proxy->max_body =
      config->max_body ? config->max_body : PROXY_DEFAULT_MAX_BODY;
  proxy->upstream_timeout_ms = config->upstream_timeout_ms > 0
                                   ? config->upstream_timeout_ms
                                   : PROXY_DEFAULT_TIMEOUT_MS;
  proxy->clock = config->clock;
  proxy->rng = config->rng;
  proxy->trace = config->trace;
  proxy->names = config->names;
  atomic_init(&proxy->policy, (int)config->policy);
  atomic_init(&proxy->stopping, false);
  atomic_init(&proxy->next_id, 1);
  if(pthread_mutex_init(&proxy->lock, NULL)) {
    proxy_set_error(err, errlen, "proxy: cannot create a mutex");
    goto fail;
  }
  lock_ready = true;

  memset(&addr, 0, sizeof(addr));
  {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if(inet_pton(AF_INET, proxy->bind_host, &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(config->port);
    }
    else if(inet_pton(AF_INET6, proxy->bind_host, &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(config->port);
      flags |= MHD_USE_IPv6;
    }
    else {
      proxy_set_error(err, errlen,
                      "proxy: bind_host '%s' is not a numeric IPv4 or IPv6 "
                      "address; use e.g. 127.0.0.1",
                      proxy->bind_host);
      goto fail;
    }
  }

  errno = 0;
  proxy->daemon = MHD_start_daemon(
      flags, config->port, NULL, NULL, proxy_on_request, proxy,
      /* First, so that libmicrohttpd's option parsing logs through it. */
      MHD_OPTION_EXTERNAL_LOGGER, proxy_on_mhd_log, proxy, MHD_OPTION_SOCK_ADDR,
      (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
      PROXY_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
      PROXY_CONNECTION_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
      PROXY_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_CONNECTION, proxy_on_connection,
      proxy, MHD_OPTION_URI_LOG_CALLBACK, proxy_on_uri, proxy,
      MHD_OPTION_NOTIFY_COMPLETED, proxy_on_completed, proxy, MHD_OPTION_END);
  saved_errno = errno;
  if(!proxy->daemon) {
    proxy_set_error(err, errlen,
                    "proxy: cannot listen on %s:%u: %s; pick another port or 0",
                    proxy->bind_host, (unsigned)config->port,
                    saved_errno ? strerror(saved_errno)
                                : "libmicrohttpd "
                                  "refused to start");
    goto fail;
  }
  info = MHD_get_daemon_info(proxy->daemon, MHD_DAEMON_INFO_BIND_PORT);
  proxy->port = info ? info->port : config->port;
  *out = proxy;
  return 0;

fail:
  if(proxy) {
    if(lock_ready)
      pthread_mutex_destroy(&proxy->lock);
    free(proxy->bind_host);
    free(proxy->backend_url);
    free(proxy->name);
    free(proxy->domain);
    free(proxy);
  }
  return -1;
}

void proxy_stop(struct proxy *proxy)
{
  if(!proxy)
    return;
  /* Transfers in flight give up at their next progress check instead of
   * holding a connection thread until the upstream timeout. */
  atomic_store(&proxy->stopping, true);
  /* Closes every connection; their CLOSED notifications free their state
   * before this returns. */
  MHD_stop_daemon(proxy->daemon);
  pthread_mutex_destroy(&proxy->lock);
  free(proxy->bind_host);
  free(proxy->backend_url);
  free(proxy->name);
  free(proxy->domain);
  free(proxy);
}
