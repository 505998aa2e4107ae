/*
 * proxy.c - the ISA Server 2006 web listener: Integrated (NTLM), Basic or
 * no authentication in front (libmicrohttpd), a reverse proxy to the
 * published server behind (libcurl, one easy and one multi handle per
 * client connection, so each has its own upstream connection).
 *
 * Event loop threads (proxy_config.loops, at most PROXY_MAX_LOOPS) run both
 * sides: each has a libmicrohttpd daemon in external epoll mode on the
 * shared listening socket, and every connection it accepted has a libcurl
 * multi handle driven through the socket interface, all on the loop's one
 * epoll set. A request to forward suspends its client
 * connection (MHD_suspend_connection) while its upstream transfer runs, and
 * the transfer's end resumes it; no thread ever blocks on the backend.
 *
 * The decision table is in proxy.h and proxy/README.md. Everything a client
 * connection owns lives in struct proxy_conn, which libmicrohttpd keeps as
 * the connection's socket context: created on MHD_CONNECTION_NOTIFY_STARTED,
 * freed on MHD_CONNECTION_NOTIFY_CLOSED. Only the loop thread touches it in
 * between (and proxy_stop once the loop has ended), so it needs no lock.
 * What other threads read (the policy, the stop flag, the counters) is
 * atomic or under proxy->lock.
 */
#include "proxy.h"
#include "auth.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>
#include <nettle/base64.h>
#include <nettle/memops.h>

#include "kb_auth.h"
#include "kb_buf.h"
#include "ntlm.h"

#define PROXY_DEFAULT_NAME "ISA01"
#define PROXY_DEFAULT_DOMAIN "FABRIKAM"
#define PROXY_DEFAULT_HOST "127.0.0.1"
#define PROXY_DEFAULT_MAX_BODY ((size_t)1024 * 1024)
#define PROXY_DEFAULT_TIMEOUT_MS 30000L
/* Simultaneous client connections. A connection costs no thread, only its
 * descriptors (client socket, upstream socket, the multi handle's wakeup
 * pair) and memory, so this covers kbsim's 1000 clients. */
#define PROXY_CONNECTION_LIMIT 1024u
/* Per-connection memory for the request line and headers. A type 3 token
 * from a long domain\user is a few KiB of base64; the largest header the
 * listener must still read to refuse it itself (401, not libmicrohttpd's
 * 431) is a 16 KB token, the size of a maximal Kerberos ticket
 * (test_garbage_tokens), so 20 KiB leaves room for the other headers.
 * libmicrohttpd zeroes the whole pool several times a request, so each KiB
 * more costs time on every request (memset: 4 % of the loop thread at 32
 * KiB). */
#define PROXY_CONNECTION_MEMORY ((size_t)20 * 1024)
/* Events taken from epoll per wait. */
#define PROXY_LOOP_EVENTS 64
/* Longest sleep of the loop even with nothing to wait for. */
#define PROXY_LOOP_MAX_WAIT_MS 1000
/* Event loops at most (proxy_config.loops): like nginx's workers, more
 * loops let the listener use more cores. */
#define PROXY_MAX_LOOPS 4u
/* Real seconds a silent connection is kept when connection_timeout_s is
 * 0. */
#define PROXY_DEFAULT_CONNECTION_TIMEOUT_S 30u
/* Longest "Basic <token>" token accepted, in base64 characters; the
 * credentials it decodes to fit PROXY_BASIC_MAX bytes. */
#define PROXY_BASIC_MAX_TOKEN 4096u
#define PROXY_BASIC_MAX (PROXY_BASIC_MAX_TOKEN / 4u * 3u)
/* Cap on the response header block relayed from the backend. */
#define PROXY_MAX_RESPONSE_HEADERS ((size_t)64 * 1024)

/* ---- types ------------------------------------------------------------ */

/* Where a client connection's upstream transfer stands. */
enum proxy_fwd_state {
  PROXY_FWD_IDLE = 0, /* none: the request is decided on the spot */
  PROXY_FWD_RUNNING,  /* in flight; the client connection is suspended */
  PROXY_FWD_DONE      /* ended; conn->pending holds the answer to queue */
};

/* What an epoll registration of the loop stands for. */
enum proxy_watch_kind {
  PROXY_WATCH_MHD,      /* libmicrohttpd's own epoll set */
  PROXY_WATCH_WAKE,     /* the eventfd proxy_stop writes */
  PROXY_WATCH_UPSTREAM, /* a libcurl socket of one connection's transfer */
  PROXY_WATCH_PEER      /* a client socket, watched for the client leaving */
};

struct proxy_conn;

/* The epoll data of one registration. Upstream ones are created when
 * libcurl first reports a socket and retired when it removes it; retired
 * ones are freed only after the current batch of events, which may still
 * name them. */
struct proxy_watch {
  enum proxy_watch_kind kind;
  struct proxy_conn *conn; /* UPSTREAM and PEER; NULL once retired */
  curl_socket_t fd;        /* CURL_SOCKET_BAD: none (embedded watch) */
  bool embedded;           /* conn->up, which lives as long as conn */
  bool registered;         /* in the epoll set */
  bool active;             /* libcurl wants events (not removed) */
  uint32_t events;         /* what the registration asks for */
  struct proxy_watch *next_dead;
};

/* One event loop: a libmicrohttpd daemon accepting from the shared
 * listening socket, its thread, and one epoll set holding the daemon's
 * epoll descriptor, the wakeup eventfd and the upstream and client
 * sockets of the daemon's connections. A connection lives on the loop
 * that accepted it. Everything here is the loop thread's alone while it
 * runs, and proxy_stop's after it has joined it. */
struct proxy_loop {
  struct proxy *proxy;
  unsigned index; /* in proxy->loops */
  struct MHD_Daemon *daemon;
  pthread_t thread;
  bool started;
  int epfd;   /* epoll set of the loop */
  int wakefd; /* eventfd: proxy_stop wakes the loop */
  struct proxy_watch mhd_watch;
  struct proxy_watch wake_watch;
  /* Connections whose client has gone, to be shut down once
   * libmicrohttpd has read what the client sent. */
  struct proxy_conn *gone;
  struct proxy_conn *busy;  /* connections with a transfer in flight */
  struct proxy_watch *dead; /* retired watches, freed after each batch */
};

struct proxy {
  uint16_t port;
  char *bind_host;
  char *backend_url; /* without a trailing '/' */
  size_t backend_url_len;
  char *name;
  char *domain;
  char *dns_domain;   /* "fabrikam.com" */
  char *dns_computer; /* "isa01.fabrikam.com" */
  const struct kb_users *users;
  enum proxy_auth auth;
  char *basic_offer;       /* "Basic realm=\"<name>\"" */
  char *via;               /* "1.1 <name>", the Via value both ways */
  int64_t idle_timeout_ms; /* 0 = none */
  unsigned max_requests;   /* 0 = none */
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

  /* The event loops, up to PROXY_MAX_LOOPS; loops[0]'s daemon
   * owns the listening socket, the others accept from a duplicate. */
  struct proxy_loop loops[PROXY_MAX_LOOPS];
  unsigned nloops;
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
  bool refused_early; /* Content-Length said too big: 413 before reading */
  bool nomem;         /* the body could not be stored */
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

/* One client TCP connection. */
struct proxy_conn {
  struct proxy *proxy;
  struct proxy_loop *loop; /* the loop that accepted it and runs it */
  uint64_t id;
  char name[64];      /* the name the peer claimed (kb_names), or "" */
  bool named;         /* name resolved and OPEN traced (first request) */
  char up_name[96];   /* the current upstream connection's name, or "" */
  uint16_t up_port;   /* the backend port it connects to */
  bool up_claimed;    /* up_name claimed for its port (once connected) */
  unsigned upstreams; /* upstream connections opened for this one */
  enum proxy_auth_state state;
  enum ntlm_scheme scheme;  /* the scheme of the current handshake */
  uint8_t challenge[8];     /* pending server challenge (CHALLENGED) */
  uint32_t negotiate_flags; /* from the type 1 of the handshake */
  /* The handshake's type 1 and type 2 as sent (CHALLENGED): what the
   * type 3's MIC covers. */
  struct ntlm_bytes hs_negotiate;
  struct ntlm_bytes hs_challenge;
  struct ntlm_identity who; /* valid when AUTHENTICATED */
  unsigned handshakes;      /* type 2s sent on this connection */
  unsigned answers;         /* responses queued on this connection */
  int64_t last_answer_ms;   /* its timeline when the last one was queued */
  CURL *curl;               /* upstream handle, created lazily */
  CURLM *multi;             /* its own, so its own connection cache */
  /* The watch of its upstream socket. It stays registered between
   * requests (libcurl removes and re-adds the socket of a kept connection
   * around every transfer), which saves three epoll_ctl calls a request;
   * proxy_curl_close forgets it when the socket closes. */
  struct proxy_watch up;
  /* The client socket, watched for EPOLLRDHUP only. libmicrohttpd's
   * epoll mode is edge-triggered and stops reading a socket once a read
   * comes back short, so a FIN that arrives together with the last bytes
   * of a request never wakes it: the connection would sit in CLOSE-WAIT
   * until the connection timeout. When the client has gone, the loop
   * shuts down our side too (at once if the connection waits for request
   * bytes, after the answer if one is being produced); the EPOLLHUP that
   * follows makes libmicrohttpd close it. */
  struct proxy_watch peer;
  bool peer_gone; /* EPOLLRDHUP seen */
  bool answering; /* a response is queued and not yet completed */
  bool peer_shut; /* our side was shut down */
  struct proxy_conn *gone_prev, *gone_next; /* in loop->gone */
  struct proxy_req req;
  /* The forward in flight (fwd_state RUNNING) or just ended (DONE). */
  enum proxy_fwd_state fwd_state;
  struct MHD_Connection *mc; /* the suspended client connection */
  struct proxy_fwd fwd;      /* what the transfer collects */
  /* The upstream header list and URL of the last forward, kept while the
   * client's next request repeats them (see proxy_upstream_headers). */
  struct curl_slist *fwd_headers;
  struct kb_buf fwd_url;
  CURLU *fwd_uh; /* fwd_url parsed, handed to libcurl (CURLOPT_CURLU) */
  /* The request target as sent; req.uri points into it. */
  struct kb_buf uri_buf;
  char fwd_err[CURL_ERROR_SIZE];
  struct proxy_answer pending; /* the answer being built */
  int64_t timer_at;            /* monotonic ms the multi wants a timeout
                                  call at, or -1 */
  struct proxy_conn *busy_prev, *busy_next; /* in loop->busy */
};

/* Set by the loop thread when it refuses a request on an idle connection
 * with MHD_NO. libmicrohttpd then logs "Application reported internal
 * error" at once, from that same thread (inside MHD_run); the close is
 * deliberate and already noted, so that one line is dropped. */
static _Thread_local bool proxy_closing_idle;

/* The loop the calling thread runs (NULL on any other thread): requests
 * are decided and answered only on their connection's loop, which is what
 * lets struct proxy_conn go without a lock. Checked by assert(). */
static _Thread_local const struct proxy_loop *proxy_current_loop;

static void proxy_peer_watch(struct proxy_conn *conn,
                             struct MHD_Connection *mc);
static void proxy_peer_unwatch(struct proxy_conn *conn);
static void proxy_peer_finish(struct proxy_conn *conn);
static void proxy_gone_unlink(struct proxy_conn *conn);

#define PROXY_MHD_APP_ERROR "Application reported internal error"

/* ---- small helpers ---------------------------------------------------- */

/* Returns a malloc'd copy of s, or of fallback when s is NULL or empty;
 * NULL when out of memory. */
static char *proxy_strdup_or(const char *s, const char *fallback)
{
  return strdup((s && *s) ? s : fallback);
}

/* Returns a, b and c joined in a new string the caller frees, or NULL when
 * b is NULL or memory ran out. */
static char *proxy_join(const char *a, const char *b, const char *c)
{
  size_t la = strlen(a), lb, lc = strlen(c);
  char *s;

  if(!b)
    return NULL;
  lb = strlen(b);
  s = malloc(la + lb + lc + 1);
  if(s) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
  }
  return s;
}

/* Sets proxy->dns_computer and returns the DNS domain: dns when given,
 * else lowercase(domain) + ".com"; the computer is lowercase(name) + "."
 * + that domain. NULL (nothing set) when out of memory or without a name
 * and domain. */
static char *proxy_dns_names(struct proxy *proxy, const char *dns)
{
  char *domain;
  char *p;

  if(!proxy->name || !proxy->domain)
    return NULL;
  domain = dns && *dns ? strdup(dns) : proxy_join(proxy->domain, ".com", "");
  if(!domain)
    return NULL;
  if(!dns || !*dns)
    for(p = domain; *p; p++)
      *p = (char)tolower((unsigned char)*p);
  proxy->dns_computer = proxy_join(proxy->name, ".", domain);
  if(!proxy->dns_computer) {
    free(domain);
    return NULL;
  }
  for(p = proxy->dns_computer; *p && *p != '.'; p++)
    *p = (char)tolower((unsigned char)*p);
  return domain;
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
  ev.origin = proxy->name; /* the array member: "ISA01" */
  ev.conn = conn;
  ev.conn_name = conn_name && *conn_name ? conn_name : NULL;
  ev.data = data;
  ev.len = len;
  ev.exchange = exchange;
  kb_trace_emit(&proxy->trace, &ev);
}

#define proxy_note(conn, code, ...)                                            \
  kb_trace_note(&(conn)->proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER,    \
                (conn)->proxy->name, (conn)->id, code, __VA_ARGS__)

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
  proxy->stats.basic_ok += delta->basic_ok;
  proxy->stats.basic_failed += delta->basic_failed;
  proxy->stats.idle_closed += delta->idle_closed;
  proxy->stats.max_requests_closed += delta->max_requests_closed;
  pthread_mutex_unlock(&proxy->lock);
}

/* Returns true when name is a hop-by-hop header, or one a relay must not
 * copy because the next hop computes it (Content-Length), or one named by
 * the message's Connection header (connection_tokens, may be NULL). */
static bool proxy_is_hop_header(const char *name, const char *connection_tokens)
{
#define PROXY_HOP(name)                                                        \
  {                                                                            \
    name, sizeof(name) - 1                                                     \
  }
  /* With their lengths: most names are told apart by length alone, and
   * this runs for every header in both directions. */
  static const struct {
    const char *name;
    size_t len;
  } hop[] = {PROXY_HOP("Connection"),
             PROXY_HOP("Keep-Alive"),
             PROXY_HOP("Proxy-Connection"),
             PROXY_HOP("Proxy-Authorization"),
             PROXY_HOP("Proxy-Authenticate"),
             PROXY_HOP("TE"),
             PROXY_HOP("Trailer"),
             PROXY_HOP("Transfer-Encoding"),
             PROXY_HOP("Upgrade"),
             PROXY_HOP("Content-Length")};
#undef PROXY_HOP
  size_t i;
  size_t n = strlen(name);
  const char *p = connection_tokens;

  for(i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if(n == hop[i].len && !strcasecmp(name, hop[i].name))
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
/* Classifies a NUL-terminated header value (NULL: absent) for the trace. */
static enum kb_auth proxy_classify_auth(const char *value)
{
  return kb_auth_classify(value, value ? strlen(value) : 0);
}

/* Formats "DOMAIN\user" of an identity into out. */
static const char *proxy_who(const struct ntlm_identity *who, char *out,
                             size_t outlen)
{
  snprintf(out, outlen, "%s\\%s", who->domain, who->user);
  return out;
}

/* Returns the connection's name for a note: the name its peer claimed,
 * or its id when it has none. Writes into out, which it returns. */
static const char *proxy_conn_label(const struct proxy_conn *conn, char *out,
                                    size_t outlen)
{
  if(conn->name[0])
    snprintf(out, outlen, "%s", conn->name);
  else
    snprintf(out, outlen, "%" PRIu64, conn->id);
  return out;
}

/* The timeline a connection lives on: its name, or the shared one. */
static int64_t proxy_conn_now(const struct proxy_conn *conn)
{
  return kb_clock_now(&conn->proxy->clock, conn->name[0] ? conn->name : NULL);
}

/* Writes a duration for a note: "45 s" when it is whole seconds, else
 * "45500 ms". */
static const char *proxy_format_ms(int64_t ms, char *out, size_t outlen)
{
  if(ms % 1000 == 0)
    snprintf(out, outlen, "%" PRId64 " s", ms / 1000);
  else
    snprintf(out, outlen, "%" PRId64 " ms", ms);
  return out;
}

/* Copies len bytes a peer sent into out (outlen > 0) as printable text for
 * a note, each byte outside printable ASCII as '?', so that a hostile user
 * name cannot break a trace line. Truncates to outlen - 1. */
static const char *proxy_printable(const char *in, size_t len, char *out,
                                   size_t outlen)
{
  size_t i;
  for(i = 0; i < len && i + 1 < outlen; i++)
    out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
  out[i] = '\0';
  return out;
}

/* ---- policy and authentication method ---------------------------------- */

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

const char *proxy_auth_name(enum proxy_auth auth)
{
  switch(auth) {
  case PROXY_AUTH_BASIC:
    return "basic";
  case PROXY_AUTH_NONE:
    return "none";
  case PROXY_AUTH_INTEGRATED:
    break;
  }
  return "integrated";
}

int proxy_auth_parse(const char *name, enum proxy_auth *out)
{
  if(!name || !out)
    return -1;
  if(!strcmp(name, "integrated"))
    *out = PROXY_AUTH_INTEGRATED;
  else if(!strcmp(name, "basic"))
    *out = PROXY_AUTH_BASIC;
  else if(!strcmp(name, "none"))
    *out = PROXY_AUTH_NONE;
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
static void proxy_add_date(const struct proxy_conn *conn,
                           struct MHD_Response *r)
{
  char date[KB_HTTP_DATE_LEN];
  kb_http_date(proxy_conn_now(conn), date);
  MHD_add_response_header(r, MHD_HTTP_HEADER_DATE, date);
}

/* The offer of an integrated listener, in IIS's order: one
 * WWW-Authenticate header per scheme, Negotiate first. */
static const char *const proxy_offer_integrated[] = {"Negotiate", "NTLM", NULL};

/* Fills ans with a response the proxy writes itself: status, a one-line
 * text/plain body from fmt, and one WWW-Authenticate header per value of
 * the NULL-terminated list www_auth, in its order, when www_auth is not
 * NULL (resp_auth classifies them for the trace). On allocation failure
 * ans->response stays NULL and the caller drops the connection. */
static void proxy_answer_text(const struct proxy_conn *conn,
                              struct proxy_answer *ans, unsigned status,
                              const char *const *www_auth,
                              enum kb_auth resp_auth, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void proxy_answer_text(const struct proxy_conn *conn,
                              struct proxy_answer *ans, unsigned status,
                              const char *const *www_auth,
                              enum kb_auth resp_auth, const char *fmt, ...)
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
    size_t i;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    for(i = 0; www_auth && www_auth[i]; i++)
      MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth[i]);
    proxy_add_date(conn, r);
  }
  ans->status = status;
  ans->response = r;
  ans->resp_auth = www_auth ? resp_auth : KB_AUTH_NONE;
  ans->resp_body_len = len;
}

/* A 401 asking an integrated client to start again: "WWW-Authenticate:
 * Negotiate" and "WWW-Authenticate: NTLM". */
#define proxy_answer_401(conn, ans, ...)                                       \
  proxy_answer_text((conn), (ans), MHD_HTTP_UNAUTHORIZED,                      \
                    proxy_offer_integrated, KB_AUTH_NTLM_BARE, __VA_ARGS__)

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

/* Names a new upstream socket "<client connection> upstream <n>", so the
 * backend can tell which client connection it serves; proxy_curl_prereq
 * claims the name once libcurl has connected it (see kb_names). */
static void proxy_name_upstream(struct proxy_conn *conn)
{
  struct kb_conn_id id;

  conn->upstreams++;
  if(!kb_conn_name_parse(conn->name, &id) && id.conn) {
    id.upstream = conn->upstreams;
    kb_conn_name_format(&id, conn->up_name, sizeof(conn->up_name));
  }
  else /* a name from outside the simulation: kept as it came */
    snprintf(conn->up_name, sizeof(conn->up_name), "%s upstream %u", conn->name,
             conn->upstreams);
  conn->up_claimed = false;
}

/* CURLOPT_PREREQFUNCTION: called once the upstream connection is
 * established or picked for reuse, before the request goes. Claims a new
 * connection's name for the port the kernel gave it. */
static int proxy_curl_prereq(void *clientp, char *conn_primary_ip,
                             char *conn_local_ip, int conn_primary_port,
                             int conn_local_port)
{
  struct proxy_conn *conn = clientp;
  (void)conn_primary_ip;
  (void)conn_local_ip;
  (void)conn_primary_port;

  if(!conn->up_claimed && conn->up_name[0] && conn_local_port > 0 &&
     conn_local_port <= 65535) {
    kb_names_claim(&conn->proxy->names, (uint16_t)conn_local_port,
                   conn->up_port, conn->up_name);
    conn->up_claimed = true;
  }
  return CURL_PREREQFUNC_OK;
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
    proxy_name_upstream(conn);
  else
    conn->up_name[0] = '\0';
  conn->up_port = kb_sockaddr_port(&addr->addr);
  if(fd != CURL_SOCKET_BAD)
    proxy_emit(conn->proxy, KB_TRACE_OPEN, KB_HOP_PROXY_BACKEND, conn->id,
               conn->up_name, NULL, 0, NULL);
  return fd;
}

/* Closes the socket of an upstream connection and traces it. Closing
 * takes it out of the epoll set, so the embedded watch forgets it. */
static int proxy_curl_close(void *clientp, curl_socket_t fd)
{
  struct proxy_conn *conn = clientp;
  if(conn->up.fd == fd) {
    conn->up.fd = CURL_SOCKET_BAD;
    conn->up.registered = conn->up.active = false;
  }
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
             data, size, NULL);
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

/* Monotonic milliseconds, for the loop's timers (libcurl's timeouts are
 * real time, like libmicrohttpd's). */
static int64_t proxy_mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Points the embedded watch of conn at fd with the events libcurl asks
 * for, with as few epoll_ctl calls as possible. Returns 0 or -1. */
static int proxy_watch_up(struct proxy_conn *conn, curl_socket_t fd,
                          uint32_t events)
{
  struct proxy_watch *w = &conn->up;
  struct epoll_event ev;

  if(w->fd != fd) {
    w->fd = fd;
    w->registered = false;
  }
  w->active = true;
  if(w->registered && w->events == events)
    return 0;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = w;
  if(epoll_ctl(conn->loop->epfd, w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
               fd, &ev)) {
    w->registered = false;
    return -1;
  }
  w->registered = true;
  w->events = events;
  return 0;
}

/* libcurl's socket callback for a connection's multi handle: registers,
 * changes or retires the socket in the loop's epoll set. The upstream
 * socket uses conn->up, left registered when libcurl removes it; any
 * other socket gets a watch of its own, which on removal goes on
 * loop->dead, freed once the current batch of events is done. Returns 0,
 * or -1 when the socket cannot be watched (the transfer then fails and the
 * client gets a 502). */
static int proxy_curl_socket(CURL *easy, curl_socket_t fd, int what,
                             void *userp, void *socketp)
{
  struct proxy_conn *conn = userp;
  struct proxy_loop *loop = conn->loop;
  struct proxy_watch *w = socketp;
  struct epoll_event ev;
  uint32_t events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                    ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  int op = EPOLL_CTL_MOD;
  (void)easy;

  if(!w && (conn->up.fd == fd || conn->up.fd == CURL_SOCKET_BAD)) {
    if(what == CURL_POLL_REMOVE) {
      conn->up.active = false;
      return 0;
    }
    return proxy_watch_up(conn, fd, events);
  }
  if(what == CURL_POLL_REMOVE) {
    if(w) {
      /* The socket may already be closed: then epoll dropped it. */
      epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
      w->conn = NULL;
      w->next_dead = loop->dead;
      loop->dead = w;
    }
    return 0;
  }
  if(!w) {
    w = calloc(1, sizeof(*w));
    if(!w)
      return -1;
    w->kind = PROXY_WATCH_UPSTREAM;
    w->conn = conn;
    w->fd = fd;
    if(curl_multi_assign(conn->multi, fd, w) != CURLM_OK) {
      free(w);
      return -1;
    }
    op = EPOLL_CTL_ADD;
  }
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = w;
  if(epoll_ctl(loop->epfd, op, fd, &ev) && op == EPOLL_CTL_ADD) {
    curl_multi_assign(conn->multi, fd, NULL);
    free(w);
    return -1;
  }
  return 0;
}

/* libcurl's timer callback for a connection's multi handle: remembers when
 * the loop must call it back (timeout_ms 0: at once; -1: never). */
static int proxy_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
  struct proxy_conn *conn = userp;
  (void)multi;
  conn->timer_at = timeout_ms < 0 ? -1 : proxy_mono_ms() + timeout_ms;
  return 0;
}

/* What proxy_upstream_headers builds, or checks against the list the
 * connection's previous request built. */
struct proxy_hdr_ctx {
  struct curl_slist *list;  /* building: the list so far */
  struct curl_slist *check; /* checking: the next entry to match */
  bool checking;
  const char *connection_tokens;
  bool has_accept;
  bool has_content_type;
  bool failed; /* building: out of memory; checking: an entry differs */
};

/* Lines up to this long are put together on the stack before libcurl
 * copies them; longer ones (a type 3 token) take a malloc. */
#define PROXY_HDR_LINE_STACK 512

/* Adds the entry a b c (concatenated; b and c may be "") to the list
 * being built, or, when checking, compares it with the next entry of the
 * previous list. Returns false once ctx->failed is set. */
static bool proxy_hdr_push(struct proxy_hdr_ctx *ctx, const char *a,
                           const char *b, const char *c)
{
  size_t la = strlen(a);
  size_t lb = strlen(b);
  size_t lc = strlen(c);
  char stack[PROXY_HDR_LINE_STACK];
  char *line = stack;
  struct curl_slist *next;

  if(ctx->checking) {
    const char *have = ctx->check ? ctx->check->data : NULL;
    if(!have || strncmp(have, a, la) || strncmp(have + la, b, lb) ||
       strcmp(have + la + lb, c)) {
      ctx->failed = true;
      return false;
    }
    ctx->check = ctx->check->next;
    return true;
  }
  if(la + lb + lc >= sizeof(stack)) {
    line = malloc(la + lb + lc + 1);
    if(!line) {
      ctx->failed = true;
      return false;
    }
  }
  memcpy(line, a, la);
  memcpy(line + la, b, lb);
  memcpy(line + la + lb, c, lc);
  line[la + lb + lc] = '\0';
  next = curl_slist_append(ctx->list, line);
  if(line != stack)
    free(line);
  if(!next) {
    ctx->failed = true;
    return false;
  }
  ctx->list = next;
  return true;
}

/* Appends (or checks) one client request header unless it is hop-by-hop;
 * libcurl drops a header given as "Name:" so an empty value is written
 * "Name;". */
static enum MHD_Result proxy_collect_header(void *cls, enum MHD_ValueKind kind,
                                            const char *key, const char *value)
{
  struct proxy_hdr_ctx *ctx = cls;
  bool ok;
  (void)kind;

  if(!key || proxy_is_hop_header(key, ctx->connection_tokens))
    return MHD_YES;
  if(!strcasecmp(key, "Accept"))
    ctx->has_accept = true;
  if(!strcasecmp(key, "Content-Type"))
    ctx->has_content_type = true;
  if(value && *value)
    ok = proxy_hdr_push(ctx, key, ": ", value);
  else
    ok = proxy_hdr_push(ctx, key, ";", "");
  return ok ? MHD_YES : MHD_NO;
}

/* Walks the request's headers into ctx: the client's headers in their
 * order minus hop-by-hop ones, blanks suppressing what libcurl would add
 * on its own (so the backend sees what the client sent), then our Via.
 * Returns false when ctx->failed. */
static bool proxy_hdr_walk(struct proxy_conn *conn, struct MHD_Connection *mc,
                           bool has_body, struct proxy_hdr_ctx *ctx)
{
  ctx->connection_tokens =
      MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Connection");
  /* libcurl writes a custom Host right after the request line, unless the
   * first Host entry is blank: then it drops its own and sends the
   * client's where the client put it, so the backend sees the client's
   * header order (the support case sends Host fourth). */
  if(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Host") &&
     !proxy_hdr_push(ctx, "Host:", "", ""))
    return false;
  MHD_get_connection_values(mc, MHD_HEADER_KIND, proxy_collect_header, ctx);
  if(ctx->failed)
    return false;
  /* Blank entries ("Name:") only remove libcurl's defaults; they are not
   * sent. */
  if(!proxy_hdr_push(ctx, "Expect:", "", ""))
    return false;
  if(!ctx->has_accept && !proxy_hdr_push(ctx, "Accept:", "", ""))
    return false;
  if(has_body && !ctx->has_content_type &&
     !proxy_hdr_push(ctx, "Content-Type:", "", ""))
    return false;
  if(!proxy_hdr_push(ctx, "Via: ", conn->proxy->via, ""))
    return false;
  /* Checking: the previous list must end here too. */
  if(ctx->checking && ctx->check) {
    ctx->failed = true;
    return false;
  }
  return true;
}

/* Makes conn->fwd_headers the upstream header list of the current request.
 * A client on a kept connection mostly sends the same headers request
 * after request, so the previous list is first checked entry by entry and
 * kept when it matches: building one costs two allocations per header.
 * conn owns the list (freed with the connection). Returns 0, or -1 when
 * out of memory (conn->fwd_headers is then NULL). */
static int proxy_upstream_headers(struct proxy_conn *conn,
                                  struct MHD_Connection *mc, bool has_body)
{
  struct proxy_hdr_ctx ctx;

  if(conn->fwd_headers) {
    memset(&ctx, 0, sizeof(ctx));
    ctx.checking = true;
    ctx.check = conn->fwd_headers;
    if(proxy_hdr_walk(conn, mc, has_body, &ctx))
      return 0;
    curl_slist_free_all(conn->fwd_headers);
    conn->fwd_headers = NULL;
  }
  memset(&ctx, 0, sizeof(ctx));
  if(!proxy_hdr_walk(conn, mc, has_body, &ctx)) {
    curl_slist_free_all(ctx.list);
    return -1;
  }
  conn->fwd_headers = ctx.list;
  return 0;
}

/* One header line of a relayed response, split in place. */
struct proxy_header {
  char *name;
  char *value;
};

/* Responses with up to this many header lines are split into the
 * caller's array; more take a calloc. */
#define PROXY_SPLIT_STACK 32

/* Splits fwd->headers ("Name: value\n" lines) in place into *out: stack
 * (PROXY_SPLIT_STACK entries) when the lines fit, else an array to free
 * (*out != stack). Returns the count, or (size_t)-1 when out of memory.
 * Lines without a name are dropped. */
static size_t proxy_split_headers(struct proxy_fwd *fwd,
                                  struct proxy_header *stack,
                                  struct proxy_header **out)
{
  struct proxy_header *h;
  size_t lines = 0;
  size_t n = 0;
  char *p;
  char *save = NULL;
  char *line;

  *out = stack;
  if(!fwd->headers.data || !fwd->headers.len)
    return 0;
  for(p = fwd->headers.data; *p; p++)
    lines += *p == '\n';
  if(lines + 1 <= PROXY_SPLIT_STACK)
    h = stack;
  else {
    h = calloc(lines + 1, sizeof(*h));
    if(!h)
      return (size_t)-1;
  }
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
 * headers minus hop-by-hop ones, body, plus our Via. The response points
 * into fwd->body, which must stay as it is until the request completes.
 * Fills ans; ans->response stays NULL when out of memory. */
static void proxy_relay(struct proxy_conn *conn, struct proxy_fwd *fwd,
                        unsigned status, struct proxy_answer *ans)
{
  struct MHD_Response *r = NULL;
  struct proxy_header stack[PROXY_SPLIT_STACK];
  struct proxy_header *h = NULL;
  size_t count;
  size_t i;
  size_t body_len = 0;
  const char *connection_tokens = NULL;
  bool has_date = false;

  count = proxy_split_headers(fwd, stack, &h);
  if(count == (size_t)-1)
    return;
  /* The body stays in fwd->body, which the connection keeps untouched
   * until this request completes (proxy_on_completed): no copy, and the
   * buffer's memory serves the next request. */
  if(kb_buf_add(&fwd->body, "", 0) != KB_BUF_OK) /* allocates if empty */
    goto out;
  body_len = fwd->body.len;
  r = MHD_create_response_from_buffer(body_len, fwd->body.data,
                                      MHD_RESPMEM_PERSISTENT);
  if(!r)
    goto out;
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
  MHD_add_response_header(r, MHD_HTTP_HEADER_VIA, conn->proxy->via);
out:
  if(h != stack)
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
    proxy_note(conn, KB_NOTE_UPSTREAM_STOPPING,
               "the listener is stopping: transfer to the published "
               "server abandoned, 503");
    proxy_answer_text(
        conn, ans, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, KB_AUTH_NONE,
        "ISA %s: the listener is shutting down; retry later", proxy->name);
    return;
  }
  ans->delta.upstream_errors = 1;
  if(fwd->too_big) {
    proxy_note(conn, KB_NOTE_UPSTREAM_TOO_BIG,
               "the response of the published server is larger than "
               "the %zu-byte limit: 502",
               proxy->max_body);
    proxy_answer_text(conn, ans, MHD_HTTP_BAD_GATEWAY, NULL, KB_AUTH_NONE,
                      "ISA %s: the response of the published server %s is "
                      "larger than the %zu-byte limit; raise max_body",
                      proxy->name, proxy->backend_url, proxy->max_body);
  }
  else if(res == CURLE_OPERATION_TIMEDOUT) {
    proxy_note(conn, KB_NOTE_UPSTREAM_TIMEOUT,
               "the published server did not answer within %ld ms: 504",
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
    proxy_note(conn, KB_NOTE_UPSTREAM_UNREACHABLE,
               "the published server could not be reached (%s): 502", why);
    proxy_answer_text(conn, ans, MHD_HTTP_BAD_GATEWAY, NULL, KB_AUTH_NONE,
                      "ISA %s: the published server %s could not be reached: "
                      "%s",
                      proxy->name, proxy->backend_url, why);
  }
}

/* Buffers of a connection that grew past this are freed when the request
 * that grew them completes; smaller ones keep their memory for the next
 * request, which saves their growth (a few reallocs each) every time. */
#define PROXY_KEEP_BUF ((size_t)64 * 1024)

/* Empties buf for the next request, freeing its memory when it grew past
 * PROXY_KEEP_BUF. */
static void proxy_buf_recycle(struct kb_buf *buf)
{
  if(buf->size > PROXY_KEEP_BUF)
    kb_buf_free(buf);
  else
    kb_buf_reset(buf);
}

/* Frees what the forward of conn held for its transfer and cannot keep:
 * the handle, the header list, the URL and the buffers stay for the next
 * request (the handle keeps nothing else of this one: see proxy_forward),
 * and fwd.body stays untouched, since the relayed answer points into it
 * until the request completes (proxy_on_completed recycles it). */
static void proxy_fwd_release(struct proxy_conn *conn)
{
  kb_buf_reset(&conn->fwd.headers);
}

/* Puts conn on its loop's list of transfers in flight. */
static void proxy_busy_link(struct proxy_conn *conn)
{
  struct proxy_loop *loop = conn->loop;
  conn->busy_prev = NULL;
  conn->busy_next = loop->busy;
  if(loop->busy)
    loop->busy->busy_prev = conn;
  loop->busy = conn;
}

/* Takes conn off its loop's list of transfers in flight. */
static void proxy_busy_unlink(struct proxy_conn *conn)
{
  struct proxy_loop *loop = conn->loop;
  if(conn->busy_prev)
    conn->busy_prev->busy_next = conn->busy_next;
  else if(loop->busy == conn)
    loop->busy = conn->busy_next;
  if(conn->busy_next)
    conn->busy_next->busy_prev = conn->busy_prev;
  conn->busy_prev = conn->busy_next = NULL;
}

/* Creates conn's upstream handles on first use: an easy handle with the
 * options every forward shares (set once: resetting and setting them
 * again cost a visible share of each request in the profile), and a
 * multi handle of its own so that its connection cache (hence the upstream
 * connection) is this client connection's alone. Returns 0 or -1. */
static int proxy_upstream_init(struct proxy_conn *conn)
{
  struct proxy *proxy = conn->proxy;
  CURL *curl = conn->curl;

  if(!curl) {
    curl = conn->curl = curl_easy_init();
    if(!curl)
      return -1;
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_PROXY, ""); /* ignore *_proxy env */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, proxy->upstream_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     proxy->upstream_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, conn->fwd_err);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, proxy_curl_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &conn->fwd);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, proxy_curl_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &conn->fwd);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, proxy_curl_open);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, conn);
    curl_easy_setopt(curl, CURLOPT_CLOSESOCKETFUNCTION, proxy_curl_close);
    curl_easy_setopt(curl, CURLOPT_CLOSESOCKETDATA, conn);
    curl_easy_setopt(curl, CURLOPT_PREREQFUNCTION, proxy_curl_prereq);
    curl_easy_setopt(curl, CURLOPT_PREREQDATA, conn);
    if(proxy->trace.emit) {
      curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);
      curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, proxy_curl_debug);
      curl_easy_setopt(curl, CURLOPT_DEBUGDATA, conn);
    }
  }
  if(conn->multi)
    return 0;
  conn->multi = curl_multi_init();
  if(!conn->multi)
    return -1;
  curl_multi_setopt(conn->multi, CURLMOPT_SOCKETFUNCTION, proxy_curl_socket);
  curl_multi_setopt(conn->multi, CURLMOPT_SOCKETDATA, conn);
  curl_multi_setopt(conn->multi, CURLMOPT_TIMERFUNCTION, proxy_curl_timer);
  curl_multi_setopt(conn->multi, CURLMOPT_TIMERDATA, conn);
  return 0;
}

/* Sets conn->fwd_url on the upstream handle, parsed once here: given as
 * a string alone, libcurl parses it again and rebuilds it for every
 * transfer (a tenth of its work per request in the profile). The parse
 * uses the flags libcurl itself would (path kept as is); a URL it
 * refuses is given as a string only, so that the transfer fails with
 * libcurl's own error. Returns 0, or -1 when out of memory. */
static int proxy_upstream_url(struct proxy_conn *conn)
{
  CURLcode rc;

  if(!conn->fwd_uh)
    conn->fwd_uh = curl_url();
  if(conn->fwd_uh &&
     curl_url_set(conn->fwd_uh, CURLUPART_URL, conn->fwd_url.data,
                  CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME |
                      CURLU_PATH_AS_IS) == CURLUE_OK)
    rc = curl_easy_setopt(conn->curl, CURLOPT_CURLU, conn->fwd_uh);
  else
    rc = curl_easy_setopt(conn->curl, CURLOPT_CURLU, NULL);
  /* The string too: libcurl reports it (errors, effective URL). */
  if(!rc)
    rc = curl_easy_setopt(conn->curl, CURLOPT_URL, conn->fwd_url.data);
  return rc ? -1 : 0;
}

/* Starts forwarding the current request to the backend on the
 * connection's own upstream handles. On success the transfer is in
 * flight (fwd_state RUNNING, conn on the busy list) and the access handler
 * suspends the client connection; proxy_fwd_finish later fills
 * conn->pending with the relayed response. When the transfer cannot even
 * start, ans is filled at once with the 502 of proxy_upstream_failed. The
 * request body stays owned by conn->req and must stay put until the
 * transfer ends (libcurl reads it from there). */
static void proxy_forward(struct proxy_conn *conn, struct MHD_Connection *mc,
                          const char *method, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  CURL *curl;
  size_t uri_len;
  const char *body = conn->req.body.data ? conn->req.body.data : "";
  size_t body_len = conn->req.body.len;
  bool is_post = !strcmp(method, "POST");
  bool is_head = !strcmp(method, "HEAD");
  bool send_body = !is_head && (is_post || body_len > 0);

  /* The buffers keep their memory from one request to the next; the
   * previous answer, which may have pointed into fwd.body, is complete. */
  conn->fwd.conn = conn;
  conn->fwd.too_big = false;
  kb_buf_reset(&conn->fwd.headers);
  kb_buf_reset(&conn->fwd.body);
  conn->fwd_err[0] = '\0';

  /* Once proxy_stop has begun, the loop's last turn (which lets abandoned
   * connections queue their 503) may still read a new request: starting a
   * transfer would leave its connection suspended, and libmicrohttpd
   * aborts the process when stopped with a suspended connection. */
  if(atomic_load(&proxy->stopping)) {
    proxy_upstream_failed(conn, &conn->fwd, CURLE_ABORTED_BY_CALLBACK,
                          conn->fwd_err, ans);
    return;
  }
  ans->delta.forwarded = 1;
  if(is_post && !body_len)
    ans->delta.forwarded_empty_posts = 1;

  if(proxy_upstream_init(conn))
    goto fail;
  curl = conn->curl;

  /* The handle keeps its URL between transfers (libcurl starts each from
   * the one last set), so a target that repeats is not set again. */
  uri_len = strlen(conn->req.uri);
  if(conn->fwd_url.len != proxy->backend_url_len + uri_len ||
     memcmp(conn->fwd_url.data + proxy->backend_url_len, conn->req.uri,
            uri_len)) {
    kb_buf_reset(&conn->fwd_url);
    if(kb_buf_add(&conn->fwd_url, proxy->backend_url, proxy->backend_url_len) !=
           KB_BUF_OK ||
       kb_buf_add(&conn->fwd_url, conn->req.uri, uri_len) != KB_BUF_OK ||
       proxy_upstream_url(conn)) {
      kb_buf_free(&conn->fwd_url);
      goto fail;
    }
  }
  if(proxy_upstream_headers(conn, mc, send_body))
    goto fail;
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, conn->fwd_headers);
  /* Only the method options change from one request to the next; each
   * branch below sets the method whole, so nothing of the previous request
   * (NOBODY after a HEAD, a custom verb, ...) carries over. */
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
  if(send_body) {
    /* POSTFIELDS even when empty, so an empty POST goes out with
     * "Content-Length: 0" exactly as the client sent it. */
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    if(!is_post)
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  }
  else if(is_head)
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  else {
    /* HTTPGET clears NOBODY and POST. */
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    if(strcmp(method, "GET"))
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  }

  /* The loop drives it from here: adding it sets a timer that fires at
   * once. */
  conn->timer_at = -1;
  if(curl_multi_add_handle(conn->multi, curl) != CURLM_OK)
    goto fail;
  conn->mc = mc;
  conn->fwd_state = PROXY_FWD_RUNNING;
  proxy_busy_link(conn);
  return;

fail:
  proxy_upstream_failed(conn, &conn->fwd, CURLE_OUT_OF_MEMORY, conn->fwd_err,
                        ans);
  proxy_fwd_release(conn);
}

/* Ends conn's transfer with libcurl's result res (CURLE_ABORTED_BY_CALLBACK
 * when proxy_stop abandons it): fills conn->pending with the relayed
 * response or the 502/503/504, releases the transfer and resumes the
 * client connection, whose access handler then queues the answer. */
static void proxy_fwd_finish(struct proxy_conn *conn, CURLcode res)
{
  long code = 0;

  if(res == CURLE_OK)
    curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &code);
  /* Done with the handle: the upstream connection stays in the multi
   * handle's cache (or closes now when the transfer was cut short). */
  curl_multi_remove_handle(conn->multi, conn->curl);
  conn->timer_at = -1;
  proxy_busy_unlink(conn);
  if(res == CURLE_OK && code >= 100 && code <= 999)
    proxy_relay(conn, &conn->fwd, (unsigned)code, &conn->pending);
  else
    proxy_upstream_failed(conn, &conn->fwd, res, conn->fwd_err, &conn->pending);
  proxy_fwd_release(conn);
  conn->fwd_state = PROXY_FWD_DONE;
  MHD_resume_connection(conn->mc);
  conn->mc = NULL;
}

/* Hands a finished transfer of conn, if any, to proxy_fwd_finish. */
static void proxy_fwd_check(struct proxy_conn *conn)
{
  CURLMsg *msg;
  int left = 0;

  while(conn->fwd_state == PROXY_FWD_RUNNING &&
        (msg = curl_multi_info_read(conn->multi, &left))) {
    if(msg->msg == CURLMSG_DONE && msg->easy_handle == conn->curl) {
      CURLcode res = msg->data.result;
      proxy_fwd_finish(conn, res);
    }
  }
}

/* ---- the decision table ----------------------------------------------- */

/* Reads the request's Authorization header. Returns what it carries; for
 * PROXY_TOKEN_BAD writes why into why; for NEGOTIATE and AUTHENTICATE
 * fills *msg (caller frees with ntlm_message_free), *scheme and *raw, the
 * message's bytes as sent (caller frees with ntlm_bytes_free). *peeked is
 * the NTLM type the token claims, even when it does not decode. */
static enum proxy_token
proxy_read_token(const char *value, enum ntlm_scheme *scheme,
                 struct ntlm_message *msg, struct ntlm_bytes *raw,
                 enum ntlm_type *peeked, char *why, size_t whylen)
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
    /* Too short, no signature, or a type NTLM does not have: the codec
     * says which, with the numbers. */
    struct ntlm_message probe;
    err[0] = '\0';
    if(ntlm_decode(token.data, token.len, &probe, err, sizeof(err)) == NTLM_OK)
      ntlm_message_free(&probe);
    snprintf(why, whylen, "the Authorization token is not an NTLM message: %s",
             err[0] ? err : "no NTLMSSP signature");
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
  *raw = token;
  token.data = NULL;
out:
  ntlm_bytes_free(&token);
  return result;
}

/* One account lookup: the listener's realm in, the resolution out. */
struct proxy_lookup {
  const struct proxy *proxy;
  enum kb_resolve resolved;
  struct kb_account account;
};

/* Resolves a name as the listener's domain controller would (kb_users). */
static enum kb_resolve proxy_resolve(struct proxy_lookup *l, const char *domain,
                                     const char *user)
{
  const struct kb_realm realm = {l->proxy->domain, l->proxy->dns_domain};

  l->resolved =
      kb_users_resolve(l->proxy->users, &realm, domain, user, &l->account);
  return l->resolved;
}

/* Adapts the resolver to ntlm_server_verify's lookup. */
static const char *proxy_lookup(void *ctx, const char *domain, const char *user)
{
  struct proxy_lookup *l = ctx;

  return proxy_resolve(l, domain, user) == KB_RESOLVE_OK ? l->account.password
                                                         : NULL;
}

/* Starts (or restarts) a handshake: draws a server challenge, answers 401
 * with a type 2 in the client's scheme and leaves the connection
 * CHALLENGED. */
static void proxy_challenge(struct proxy_conn *conn,
                            const struct ntlm_message *negotiate,
                            struct ntlm_bytes *raw, enum ntlm_scheme scheme,
                            struct proxy_answer *ans)
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
  info.dns_domain = proxy->dns_domain;
  info.dns_computer = proxy->dns_computer;
  ntlm_bytes_free(&conn->hs_negotiate);
  ntlm_bytes_free(&conn->hs_challenge);
  conn->hs_negotiate = *raw;
  raw->data = NULL;
  raw->len = 0;
  if(ntlm_server_challenge(&info, conn->negotiate_flags, conn->challenge,
                           ntlm_filetime_from_unix_ms(proxy_conn_now(conn)),
                           &type2) != NTLM_OK ||
     !(header = ntlm_header_format(scheme, type2.data, type2.len))) {
    proxy_answer_text(
        conn, ans, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, KB_AUTH_NONE,
        "ISA %s: could not build an NTLM challenge; retry", proxy->name);
    goto out;
  }
  conn->state = PROXY_AUTH_CHALLENGED;
  conn->hs_challenge = type2;
  type2.data = NULL;
  type2.len = 0;
  ans->delta.challenges = 1;
  {
    /* The type 2 alone, in the scheme the client used. */
    const char *const offer[] = {header, NULL};
    proxy_answer_text(
        conn, ans, MHD_HTTP_UNAUTHORIZED, offer, KB_AUTH_NTLM_CHALLENGE,
        "ISA %s: NTLM challenge sent; answer it with a type 3", proxy->name);
  }
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

/* Returns true when value is "Negotiate <token>" and the token is not raw
 * NTLMSSP: a SPNEGO or Kerberos token (a GSS-API token starts 0x60), which
 * this listener cannot accept. *first gets the token's first byte. Only
 * the start of the token is decoded, so a Kerberos ticket of any size is
 * recognised, even one past NTLM_MAX_MESSAGE. */
static bool proxy_foreign_negotiate(const char *value, uint8_t *first)
{
  static const uint8_t signature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
  struct base64_decode_ctx ctx;
  /* 12 base64 characters decode to 9 bytes: the whole signature. */
  uint8_t buf[BASE64_DECODE_LENGTH(12)];
  size_t dlen = sizeof(buf);
  size_t n;
  const char *p = value;

  if(!p)
    return false;
  while(*p == ' ' || *p == '\t')
    p++;
  if(strncasecmp(p, "Negotiate", 9) || (p[9] != ' ' && p[9] != '\t'))
    return false;
  p += 9;
  while(*p == ' ' || *p == '\t')
    p++;
  n = strcspn(p, "= \t");
  if(n > 12)
    n = 12;
  base64_decode_init(&ctx);
  /* A token that does not even start as base64 is left to the NTLM parser,
   * which names the problem. */
  if(!n || !base64_decode_update(&ctx, &dlen, buf, n, p) || !dlen)
    return false;
  *first = buf[0];
  return memcmp(buf, signature, dlen < 8 ? dlen : 8) != 0;
}

/* Verifies the type 3 msg (raw: its bytes as sent) against the handshake
 * pending on conn: the proof, the account (resolved as a domain
 * controller would) and the MIC when one is announced. Fills conn->who
 * with the account as the store spells it and returns true, or writes why
 * not into err. */
static bool proxy_verify_type3(struct proxy_conn *conn,
                               const struct ntlm_message *msg,
                               const struct ntlm_bytes *raw, char *err,
                               size_t errlen)
{
  struct ntlm_exchange exchange;
  struct proxy_lookup lookup;
  size_t n;

  exchange.negotiate = conn->hs_negotiate.data;
  exchange.negotiate_len = conn->hs_negotiate.len;
  exchange.challenge = conn->hs_challenge.data;
  exchange.challenge_len = conn->hs_challenge.len;
  exchange.authenticate = raw->data;
  exchange.authenticate_len = raw->len;
  memset(&lookup, 0, sizeof(lookup));
  lookup.proxy = conn->proxy;
  lookup.resolved = KB_RESOLVE_BAD_NAME;
  err[0] = '\0';
  if(ntlm_server_verify_ex(msg, &exchange, conn->challenge, proxy_lookup,
                           &lookup, &conn->who, err, errlen) != NTLM_OK) {
    n = strlen(err);
    if(lookup.resolved != KB_RESOLVE_OK && n < errlen)
      snprintf(err + n, errlen - n, "; account: %s",
               kb_resolve_name(lookup.resolved));
    return false;
  }
  /* The account as the store spells it, whatever spelling resolved. */
  snprintf(conn->who.domain, sizeof(conn->who.domain), "%s",
           lookup.account.domain);
  snprintf(conn->who.user, sizeof(conn->who.user), "%s", lookup.account.user);
  return true;
}

/* What the request's Authorization header carries, for the decision
 * table; fills msg, raw and scheme for a type 1 or 3 and why for an
 * unusable header; first is a foreign Negotiate token's first byte. */
static enum proxy_token
proxy_integrated_token(const char *value, enum ntlm_scheme *scheme,
                       struct ntlm_message *msg, struct ntlm_bytes *raw,
                       uint8_t *first, char *why, size_t whylen)
{
  enum ntlm_type peeked;
  enum proxy_token token;

  memset(msg, 0, sizeof(*msg));
  if(proxy_foreign_negotiate(value, first))
    return PROXY_TOKEN_KERBEROS;
  token = proxy_read_token(value, scheme, msg, raw, &peeked, why, whylen);
  if(token == PROXY_TOKEN_BAD && peeked == NTLM_TYPE_AUTHENTICATE)
    token = PROXY_TOKEN_BAD_TYPE3;
  return token;
}

/* The integrated rows of the decision table (proxy.h): NTLM, raw or inside
 * Negotiate, with the connection's handshake state and the policy. value
 * is the request's Authorization header or NULL. The decision is
 * proxy_auth_decide's (auth.c); this reads the header, verifies a type 3
 * when the table asks, tells the decision in a note and carries it out.
 * Fills ans, forwarding when the table says so. Never fails. */
static void proxy_decide_integrated(struct proxy_conn *conn,
                                    struct MHD_Connection *mc,
                                    const char *method, const char *value,
                                    struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_auth_input in;
  struct proxy_auth_decision d;
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  struct ntlm_message msg;
  struct ntlm_bytes raw = {NULL, 0};
  uint8_t first = 0;
  char why[320];
  char who[260];
  char what[128];
  char err[320];

  /* One read per request: a concurrent proxy_set_policy applies from the
   * next request on. */
  in.policy = (enum proxy_policy)atomic_load(&proxy->policy);
  in.state = conn->state;
  why[0] = err[0] = '\0';
  in.token = proxy_integrated_token(value, &scheme, &msg, &raw, &first, why,
                                    sizeof(why));
  if(conn->state == PROXY_AUTH_AUTHENTICATED)
    proxy_who(&conn->who, who, sizeof(who));
  else
    who[0] = '\0';
  in.verified = proxy_auth_verifies(in.state, in.token) &&
                proxy_verify_type3(conn, &msg, &raw, err, sizeof(err));
  proxy_auth_decide(&in, &d);

  ans->delta.auth_failed = d.auth_failed;
  ans->delta.auth_ok = d.auth_ok;
  ans->delta.reauth_skipped = d.reauth_skipped;
  if(d.forget)
    memset(&conn->who, 0, sizeof(conn->who));
  if(d.act != PROXY_ACT_CHALLENGE)
    conn->state = d.next; /* proxy_challenge sets CHALLENGED once sent */
  if(d.act == PROXY_ACT_FORWARD)
    proxy_describe_forward(conn, method, what, sizeof(what));

  switch(d.note) {
  case KB_NOTE_FORWARD_AUTHENTICATED:
    proxy_note(conn, d.note,
               "connection %" PRIu64 " is authenticated as %s; %s", conn->id,
               who, what);
    break;
  case KB_NOTE_OFFER:
    proxy_note(conn, d.note,
               "connection %" PRIu64 " is not authenticated%s and sent no "
               "Authorization: 401 asking for NTLM",
               conn->id,
               in.state == PROXY_AUTH_CHALLENGED
                   ? " (it left its handshake after the type 2)"
                   : "");
    proxy_answer_401(conn, ans,
                     "ISA %s: authentication required; send NTLM "
                     "credentials",
                     proxy->name);
    break;
  case KB_NOTE_KERBEROS:
    proxy_note(conn, d.note,
               "connection %" PRIu64 " sent a Negotiate token that is not "
               "NTLMSSP (first byte 0x%02x: SPNEGO/Kerberos); Kerberos is "
               "not available here, the client should fall back to NTLM: "
               "401 offering Negotiate and NTLM, nothing forwarded%s",
               conn->id, (unsigned)first,
               in.state == PROXY_AUTH_UNAUTHENTICATED
                   ? ""
                   : ", connection de-authenticated");
    proxy_answer_401(conn, ans,
                     "ISA %s: Kerberos is not available on this listener; "
                     "authenticate with NTLM (Negotiate with an NTLMSSP "
                     "token, or NTLM)",
                     proxy->name);
    break;
  case KB_NOTE_AUTH_UNUSABLE:
    proxy_note(conn, d.note,
               "connection %" PRIu64 " sent an unusable Authorization "
               "header (%s): 401 asking for NTLM, connection "
               "de-authenticated",
               conn->id, why);
    proxy_answer_401(conn, ans,
                     "ISA %s: unusable Authorization header: %s; start "
                     "again with an NTLM type 1",
                     proxy->name, why);
    break;
  case KB_NOTE_REAUTH_SKIPPED:
    proxy_note(conn, d.note,
               "connection %" PRIu64 " is already authenticated as %s; "
               "policy per-connection keeps that context: NTLM type 1 not "
               "challenged, %s",
               conn->id, who, what);
    break;
  case KB_NOTE_REAUTH_CHALLENGED:
    proxy_note(conn, d.note,
               "connection %" PRIu64 " is authenticated as %s, but policy "
               "per-request: NTLM type 1 on an authenticated connection "
               "restarts the handshake: 401 with a new type 2",
               conn->id, who);
    break;
  case KB_NOTE_CHALLENGE:
    proxy_note(conn, d.note,
               "connection %" PRIu64 ": NTLM type 1: 401 with a type 2 "
               "(handshake %u on this connection)",
               conn->id, conn->handshakes + 1);
    break;
  case KB_NOTE_AUTH_UNEXPECTED:
    proxy_note(conn, d.note,
               "connection %" PRIu64 " sent an NTLM type 3 with no "
               "challenge pending: 401 asking for NTLM, connection "
               "de-authenticated",
               conn->id);
    proxy_answer_401(conn, ans,
                     "ISA %s: NTLM type 3 without a challenge on this "
                     "connection; start again with a type 1",
                     proxy->name);
    break;
  case KB_NOTE_AUTH_REFUSED:
    proxy_note(conn, d.note,
               "connection %" PRIu64 ": NTLM type 3 refused (%s): 401 "
               "asking for NTLM, nothing forwarded",
               conn->id, err);
    /* The same answer whatever the reason: a client must not learn
     * which accounts exist (the reason is in the note above). */
    proxy_answer_401(conn, ans,
                     "ISA %s: authentication failed; check the user name "
                     "and password",
                     proxy->name);
    break;
  case KB_NOTE_AUTH_OK:
    memset(conn->challenge, 0, sizeof(conn->challenge));
    ntlm_bytes_free(&conn->hs_negotiate);
    ntlm_bytes_free(&conn->hs_challenge);
    proxy_note(conn, d.note,
               "connection %" PRIu64 " authenticated as %s (%s%s%s); %s",
               conn->id, proxy_who(&conn->who, who, sizeof(who)),
               ntlm_response_kind_name(conn->who.kind),
               conn->who.mic_checked ? ", MIC verified" : "",
               conn->who.key_exchanged ? ", session key exchanged" : "", what);
    break;
  default:
    break;
  }

  if(d.act == PROXY_ACT_FORWARD)
    proxy_forward(conn, mc, method, ans);
  else if(d.act == PROXY_ACT_CHALLENGE)
    proxy_challenge(conn, &msg, &raw, scheme, ans);
  ntlm_message_free(&msg);
  ntlm_bytes_free(&raw);
}

/* How a request's Basic credentials fared. */
enum proxy_basic {
  PROXY_BASIC_OK = 0,
  PROXY_BASIC_MISSING,   /* no Authorization header */
  PROXY_BASIC_SCHEME,    /* another scheme (NTLM, Negotiate, ...) */
  PROXY_BASIC_MALFORMED, /* not "Basic base64(user:password)" */
  PROXY_BASIC_UNKNOWN,   /* no such user */
  PROXY_BASIC_REFUSED    /* wrong password */
};

/* Compares a stored password with the one a client sent, in time that
 * depends on neither the bytes nor the lengths: both are copied into
 * zero-padded buffers of PROXY_BASIC_MAX bytes compared whole with nettle's
 * memeql_sec, and the lengths are compared without a branch. A stored
 * password longer than that cap never matches (no token can carry it).
 * Returns true on a match; the copies are wiped. */
static bool proxy_secret_eq(const char *want, size_t want_len, const char *got,
                            size_t got_len)
{
  uint8_t a[PROXY_BASIC_MAX];
  uint8_t b[PROXY_BASIC_MAX];
  int same;

  if(want_len > sizeof(a) || got_len > sizeof(b))
    return false;
  memset(a, 0, sizeof(a));
  memset(b, 0, sizeof(b));
  memcpy(a, want, want_len);
  memcpy(b, got, got_len);
  same = memeql_sec(a, b, sizeof(a)) & (want_len == got_len);
  explicit_bzero(a, sizeof(a));
  explicit_bzero(b, sizeof(b));
  return same != 0;
}

/* Checks "Authorization: Basic base64(user:password)" (value may be NULL)
 * against the user store. The user is "DOMAIN\user", "user@domain" (a DNS
 * domain whose first label is the listener's domain also names it) or a
 * bare "user" in the listener's domain. Writes "DOMAIN\user" (printable,
 * for notes) into who when a user name was found, and what was wrong into
 * why otherwise. The password is compared in constant time, also for an
 * unknown user, and never copied anywhere but wiped buffers. */
static enum proxy_basic proxy_check_basic(const struct proxy *proxy,
                                          const char *value, char *who,
                                          size_t wholen, char *why,
                                          size_t whylen)
{
  struct base64_decode_ctx ctx;
  char *buf = NULL;
  size_t dlen = 0;
  const char *p = value;
  const char *colon;
  const char *pass;
  const char *stored = NULL;
  size_t n;
  size_t pass_len;
  char user[256];
  char domain[256];
  char shown[520];
  char *sep;
  bool match;
  struct proxy_lookup lookup = {NULL, KB_RESOLVE_BAD_NAME, {NULL, NULL, NULL}};
  enum proxy_basic result = PROXY_BASIC_MALFORMED;

  who[0] = '\0';
  if(!p) {
    snprintf(why, whylen, "no Authorization header");
    return PROXY_BASIC_MISSING;
  }
  while(*p == ' ' || *p == '\t')
    p++;
  n = strcspn(p, " \t");
  if(n != 5 || strncasecmp(p, "Basic", 5)) {
    snprintf(why, whylen, "the Authorization header uses the %s scheme",
             proxy_printable(p, n < 32 ? n : 32, shown, sizeof(shown)));
    return PROXY_BASIC_SCHEME;
  }
  p += 5;
  while(*p == ' ' || *p == '\t')
    p++;
  n = strlen(p);
  while(n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  if(!n) {
    snprintf(why, whylen, "the Basic header carries no credentials");
    goto out;
  }
  if(n > PROXY_BASIC_MAX_TOKEN) {
    snprintf(why, whylen,
             "the Basic token is %zu characters long, over the %u-character "
             "limit",
             n, PROXY_BASIC_MAX_TOKEN);
    goto out;
  }
  if(n != strcspn(p, " \t\r\n")) {
    snprintf(why, whylen, "the Basic token has a blank inside");
    goto out;
  }
  buf = malloc(BASE64_DECODE_LENGTH(n) + 1);
  if(!buf) {
    snprintf(why, whylen, "out of memory decoding the Basic token");
    goto out;
  }
  dlen = BASE64_DECODE_LENGTH(n) + 1;
  base64_decode_init(&ctx);
  if(!base64_decode_update(&ctx, &dlen, (uint8_t *)buf, n, p) ||
     !base64_decode_final(&ctx)) {
    snprintf(why, whylen, "the Basic token is not valid base64");
    goto out;
  }
  colon = memchr(buf, ':', dlen);
  if(!colon) {
    snprintf(why, whylen,
             "the Basic credentials have no ':' between user and password");
    goto out;
  }
  n = (size_t)(colon - buf);
  if(!n || n >= sizeof(user) || memchr(buf, '\0', n)) {
    snprintf(why, whylen,
             "the Basic credentials carry an empty, overlong or binary user "
             "name");
    goto out;
  }
  memcpy(user, buf, n);
  user[n] = '\0';
  pass = colon + 1;
  pass_len = dlen - n - 1;

  /* "DOMAIN\user" names the domain; "user" and the UPN "user@dnsdomain"
   * leave it to the resolver, as NTLM's empty domain does. */
  domain[0] = '\0';
  if((sep = strchr(user, '\\'))) {
    *sep = '\0';
    snprintf(domain, sizeof(domain), "%s", user);
    memmove(user, sep + 1, strlen(sep + 1) + 1);
    if(!user[0] || !domain[0]) {
      snprintf(why, whylen,
               "the Basic user name has an empty user or domain part");
      goto out;
    }
  }
  lookup.proxy = proxy;
  if(proxy_resolve(&lookup, domain, user) == KB_RESOLVE_OK) {
    stored = lookup.account.password;
    snprintf(domain, sizeof(domain), "%s", lookup.account.domain);
    snprintf(user, sizeof(user), "%s", lookup.account.user);
  }
  else if(!domain[0])
    snprintf(domain, sizeof(domain), "%s", proxy->domain);
  snprintf(shown, sizeof(shown), "%s\\%s", domain, user);
  proxy_printable(shown, strlen(shown), who, wholen);
  /* An unknown user costs the same comparison as a known one. */
  match = proxy_secret_eq(stored ? stored : "", stored ? strlen(stored) : 0,
                          pass, pass_len);
  if(!stored) {
    snprintf(why, whylen, "no user %s in the user store (%s)", who,
             kb_resolve_name(lookup.resolved));
    result = PROXY_BASIC_UNKNOWN;
  }
  else if(!match) {
    snprintf(why, whylen, "wrong password for %s", who);
    result = PROXY_BASIC_REFUSED;
  }
  else
    result = PROXY_BASIC_OK;
out:
  if(buf) {
    explicit_bzero(buf, dlen);
    free(buf);
  }
  return result;
}

/* The Basic rows of the decision table: every request carries its own
 * credentials, and the connection remembers nothing. value is the
 * request's Authorization header or NULL. Valid: forwarded, Authorization
 * included; anything else: 401 "WWW-Authenticate: Basic realm=..." and
 * nothing forwarded. Fills ans. Never fails. */
static void proxy_decide_basic(struct proxy_conn *conn,
                               struct MHD_Connection *mc, const char *method,
                               const char *value, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  const char *const offer[] = {proxy->basic_offer, NULL};
  enum proxy_basic verdict;
  char who[300];
  char why[400];

  why[0] = '\0';
  verdict = proxy_check_basic(proxy, value, who, sizeof(who), why, sizeof(why));
  if(verdict == PROXY_BASIC_OK) {
    char what[128];
    ans->delta.basic_ok = 1;
    proxy_describe_forward(conn, method, what, sizeof(what));
    proxy_note(conn, KB_NOTE_BASIC_OK,
               "connection %" PRIu64 ": Basic credentials of %s verified; %s",
               conn->id, who, what);
    proxy_forward(conn, mc, method, ans);
    return;
  }
  /* A request without credentials is asked for them, like NTLM's first
   * 401; only credentials that were presented and refused count as a
   * failed login. */
  if(value)
    ans->delta.basic_failed = 1;
  proxy_note(conn, KB_NOTE_BASIC_REFUSED,
             "connection %" PRIu64 ": Basic authentication failed (%s): 401 "
             "asking for Basic, nothing forwarded",
             conn->id, why);
  proxy_answer_text(conn, ans, MHD_HTTP_UNAUTHORIZED, offer, KB_AUTH_OTHER,
                    "ISA %s: %s; send Authorization: Basic with "
                    "base64(DOMAIN\\user:password)",
                    proxy->name,
                    verdict == PROXY_BASIC_MISSING ? "authentication required"
                    : verdict == PROXY_BASIC_UNKNOWN ||
                            verdict == PROXY_BASIC_REFUSED
                        ? "Basic authentication failed: check the user name "
                          "and password"
                        : why);
}

/* Applies the decision table of proxy.h to the request now complete on
 * conn and fills ans with the answer (forwarding when the table says so):
 * the checks every listener makes, then the rows of its authentication
 * method. Never fails: what a client sends can only earn it a 4xx. */
static void proxy_decide(struct proxy_conn *conn, struct MHD_Connection *mc,
                         const char *method, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  const char *value;
  char what[128];

  assert(proxy_current_loop == conn->loop);

  if(conn->req.too_big) {
    proxy_note(conn, KB_NOTE_BODY_TOO_LARGE,
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
    proxy_note(conn, KB_NOTE_BAD_TARGET, "request target is not a path: 400");
    proxy_answer_text(conn, ans, MHD_HTTP_BAD_REQUEST, NULL, KB_AUTH_NONE,
                      "ISA %s: the request target must be a path such as "
                      "/EWS/Exchange.asmx",
                      proxy->name);
    return;
  }

  value = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_AUTHORIZATION);
  switch(proxy->auth) {
  case PROXY_AUTH_NONE:
    if(proxy->trace.emit) {
      proxy_describe_forward(conn, method, what, sizeof(what));
      proxy_note(conn, KB_NOTE_ANONYMOUS,
                 "connection %" PRIu64 ": the listener does not "
                 "authenticate; %s",
                 conn->id, what);
    }
    proxy_forward(conn, mc, method, ans);
    break;
  case PROXY_AUTH_BASIC:
    proxy_decide_basic(conn, mc, method, value, ans);
    break;
  case PROXY_AUTH_INTEGRATED:
    proxy_decide_integrated(conn, mc, method, value, ans);
    break;
  }
}

/* ---- libmicrohttpd callbacks ------------------------------------------ */

/* Empties the request state, keeping the connection's. The buffers keep
 * their memory for the next request unless they grew large; the relayed
 * body goes too, so this must not run while an answer pointing into it
 * is queued (it runs as a request starts and once it has completed). */
static void proxy_req_reset(struct proxy_conn *conn)
{
  struct kb_buf body = conn->req.body;

  proxy_buf_recycle(&body);
  memset(&conn->req, 0, sizeof(conn->req));
  conn->req.body = body;
  proxy_buf_recycle(&conn->uri_buf);
  proxy_buf_recycle(&conn->fwd.body);
  proxy_buf_recycle(&conn->fwd.headers);
}

/* Frees a connection and everything it owns, upstream handles first (their
 * close and socket callbacks still read conn). A transfer in flight (only
 * possible while the proxy stops) is abandoned. Accepts NULL. */
static void proxy_conn_free(struct proxy_conn *conn)
{
  if(!conn)
    return;
  if(conn->fwd_state == PROXY_FWD_RUNNING) {
    curl_multi_remove_handle(conn->multi, conn->curl);
    proxy_busy_unlink(conn);
  }
  if(conn->fwd_state == PROXY_FWD_DONE && conn->pending.response)
    MHD_destroy_response(conn->pending.response);
  proxy_fwd_release(conn);
  if(conn->curl)
    curl_easy_cleanup(conn->curl);
  /* Closes the cached upstream connection, traced by proxy_curl_close. */
  if(conn->multi)
    curl_multi_cleanup(conn->multi);
  curl_slist_free_all(conn->fwd_headers);
  curl_url_cleanup(conn->fwd_uh);
  kb_buf_free(&conn->fwd_url);
  kb_buf_free(&conn->fwd.headers);
  kb_buf_free(&conn->fwd.body);
  kb_buf_free(&conn->uri_buf);
  kb_buf_free(&conn->req.body);
  ntlm_bytes_free(&conn->hs_negotiate);
  ntlm_bytes_free(&conn->hs_challenge);
  free(conn);
}

/* Looks up the name the peer of mc claimed for its connection to the
 * listener (kb_names); leaves name empty when there is none. */
static void proxy_resolve_peer(const struct proxy *proxy,
                               struct MHD_Connection *mc, char *name,
                               size_t len)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

  kb_names_resolve_addr(&proxy->names, info ? info->client_addr : NULL,
                        proxy->port, name, len);
}

/* Creates the per-connection state on STARTED and frees it on CLOSED.
 * When it cannot be allocated, socket_context stays NULL and every
 * request on that connection is refused by closing it. */
static void proxy_on_connection(void *cls, struct MHD_Connection *mc,
                                void **socket_context,
                                enum MHD_ConnectionNotificationCode toe)
{
  struct proxy_loop *loop = cls;
  struct proxy *proxy = loop->proxy;
  struct proxy_conn *conn = *socket_context;
  struct proxy_stats delta;

  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn = calloc(1, sizeof(*conn));
    if(!conn)
      return;
    conn->proxy = proxy;
    conn->loop = loop;
    conn->up.kind = PROXY_WATCH_UPSTREAM;
    conn->up.conn = conn;
    conn->up.fd = CURL_SOCKET_BAD;
    conn->up.embedded = true;
    conn->id = atomic_fetch_add(&proxy->next_id, 1);
    conn->state = PROXY_AUTH_UNAUTHENTICATED;
    kb_buf_init(&conn->req.body, proxy->max_body);
    kb_buf_init(&conn->uri_buf, SIZE_MAX / 2);
    kb_buf_init(&conn->fwd_url, SIZE_MAX / 2);
    kb_buf_init(&conn->fwd.headers, PROXY_MAX_RESPONSE_HEADERS);
    kb_buf_init(&conn->fwd.body, proxy->max_body);
    *socket_context = conn;
    proxy_peer_watch(conn, mc);
    memset(&delta, 0, sizeof(delta));
    delta.connections = 1;
    proxy_stats_add(proxy, &delta);
    /* OPEN is traced with the connection's name at its first request. */
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED && conn) {
    uint64_t id = conn->id;
    char name[sizeof(conn->name)];

    /* A connection that never sent a request stays unnamed. */
    if(!conn->named)
      proxy_emit(proxy, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, id, "", NULL, 0,
                 NULL);
    /* In case libmicrohttpd logged nothing after an idle close. */
    proxy_closing_idle = false;
    memcpy(name, conn->name, sizeof(name));
    proxy_peer_unwatch(conn);
    proxy_gone_unlink(conn);
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
  if(!conn->named) {
    /* The peer claimed its name before sending this request (kb_names). */
    proxy_resolve_peer(conn->proxy, mc, conn->name, sizeof(conn->name));
    conn->named = true;
    proxy_emit(conn->proxy, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, conn->id,
               conn->name, NULL, 0, NULL);
  }
  proxy_req_reset(conn);
  if(!uri)
    uri = "";
  /* On failure req.uri stays NULL: the request gets a 503. */
  if(kb_buf_add(&conn->uri_buf, uri, strlen(uri)) == KB_BUF_OK)
    conn->req.uri = conn->uri_buf.data;
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
  if(conn) {
    proxy_req_reset(conn);
    conn->answering = false;
    proxy_peer_finish(conn);
  }
  *con_cls = NULL;
}

/* Routes libmicrohttpd's own error messages to the trace as notes. */
static void proxy_on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void proxy_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  struct proxy *proxy = cls;
  char line[512];
  size_t len;

  vsnprintf(line, sizeof(line), fmt, ap);
  if(proxy_closing_idle &&
     !strncmp(line, PROXY_MHD_APP_ERROR, sizeof(PROXY_MHD_APP_ERROR) - 1)) {
    proxy_closing_idle = false;
    return;
  }
  if(!proxy->trace.emit)
    return;
  len = strlen(line);
  while(len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  kb_trace_note(&proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER, proxy->name,
                0, KB_NOTE_LIBRARY, "libmicrohttpd: %s", line);
}

/* Decides, as a request starts on conn, whether the listener would have
 * closed the connection in the meantime: it has answered on it before and
 * the connection's timeline moved more than idle_timeout_ms since. Counts
 * and notes it. Returns true when the request must get no answer and the
 * connection must close. */
static bool proxy_idle_expired(struct proxy_conn *conn)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_stats delta;
  int64_t idle;
  char label[80];
  char idle_s[32];
  char limit_s[32];

  if(proxy->idle_timeout_ms <= 0 || !conn->answers)
    return false;
  idle = proxy_conn_now(conn) - conn->last_answer_ms;
  if(idle <= proxy->idle_timeout_ms)
    return false;
  memset(&delta, 0, sizeof(delta));
  delta.idle_closed = 1;
  proxy_stats_add(proxy, &delta);
  proxy_note(conn, KB_NOTE_IDLE_CLOSED,
             "connection %s idle %s > %s: the listener had closed it; closed "
             "without an answer, nothing forwarded",
             proxy_conn_label(conn, label, sizeof(label)),
             proxy_format_ms(idle, idle_s, sizeof(idle_s)),
             proxy_format_ms(proxy->idle_timeout_ms, limit_s, sizeof(limit_s)));
  return true;
}

/* Counts an answer about to be queued on conn and stamps its time on the
 * connection's timeline; at max_requests answers it adds "Connection:
 * close", so libmicrohttpd closes the connection once the answer is out. */
static void proxy_count_answer(struct proxy_conn *conn,
                               struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  char label[80];

  conn->answers++;
  conn->last_answer_ms = proxy_conn_now(conn);
  if(!proxy->max_requests || conn->answers < proxy->max_requests)
    return;
  if(MHD_add_response_header(ans->response, MHD_HTTP_HEADER_CONNECTION,
                             "close") != MHD_YES)
    return;
  ans->delta.max_requests_closed = 1;
  proxy_note(conn, KB_NOTE_MAX_REQUESTS,
             "connection %s reached the listener's limit of %u requests: "
             "Connection: close, the connection closes after this answer",
             proxy_conn_label(conn, label, sizeof(label)), proxy->max_requests);
}

/* Returns true when the request's Content-Length announces more than max
 * bytes, storing the announced length in *declared. */
static bool proxy_declared_too_big(struct MHD_Connection *mc, size_t max,
                                   size_t *declared)
{
  const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long n;
  char *end = NULL;

  if(!v || *v < '0' || *v > '9')
    return false;
  errno = 0;
  n = strtoull(v, &end, 10);
  if(errno == ERANGE)
    n = ULLONG_MAX;
  else if(errno || *end)
    return false; /* libmicrohttpd itself refuses a malformed length */
  if(n <= max)
    return false;
  *declared = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
  return true;
}

/* The access handler: on the first call (headers only) closes a
 * connection that sat idle past the limit; then gathers the body (capped,
 * but always read to its end so the connection stays keep-alive), decides
 * and answers. A request to forward suspends the connection until its
 * transfer ends; libmicrohttpd then calls again, and the answer that
 * proxy_fwd_finish left in conn->pending is queued. */
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
    /* MHD_NO before any response closes the socket with nothing sent,
     * which is what a client finds on a connection the server had
     * closed: libcurl then retries on a new one. */
    if(proxy_idle_expired(conn)) {
      proxy_closing_idle = true;
      return MHD_NO;
    }
    /* A body announced as too big is refused before it is read: reading
     * megabytes only to refuse them is what a slow-drip attack wants. */
    if(proxy_declared_too_big(mc, proxy->max_body, &conn->req.body_seen)) {
      conn->req.too_big = true;
      conn->req.refused_early = true;
      goto decide;
    }
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

decide:
  if(conn->fwd_state == PROXY_FWD_RUNNING)
    return MHD_YES; /* not expected while suspended; nothing to do yet */
  if(conn->fwd_state == PROXY_FWD_DONE) {
    ans = conn->pending;
    memset(&conn->pending, 0, sizeof(conn->pending));
    conn->fwd_state = PROXY_FWD_IDLE;
  }
  else {
    memset(&ans, 0, sizeof(ans));
    proxy_decide(conn, mc, method, &ans);
    if(conn->fwd_state == PROXY_FWD_RUNNING) {
      conn->pending = ans;
      MHD_suspend_connection(mc);
      return MHD_YES;
    }
  }
  if(!ans.response)
    return MHD_NO;
  /* The unread body makes the connection unusable: say it closes. */
  if(conn->req.refused_early)
    MHD_add_response_header(ans.response, MHD_HTTP_HEADER_CONNECTION, "close");

  ans.delta.requests = 1;
  proxy_count_answer(conn, &ans);
  /* Counters and trace before queueing: once the response is on the wire
   * a client may read the stats, and must see this request in them. */
  proxy_stats_add(proxy, &ans.delta);
  if(proxy->trace.emit) {
    /* Classifying the request's token decodes it: only for a trace. */
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
    proxy_emit(proxy, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, conn->id,
               conn->name, NULL, 0, &ex);
  }

  result = MHD_queue_response(mc, ans.status, ans.response);
  MHD_destroy_response(ans.response);
  /* Until the completion notice, a client that has gone must still be
   * able to take the answer (a half-closed client waits for it). */
  conn->answering = result == MHD_YES;
  return result;
}

/* ---- the event loop ---------------------------------------------------- */

/* Watches conn's client socket for the client leaving (see struct
 * proxy_conn). Without it the connection still works; only a client that
 * leaves mid-request is then noticed by the connection timeout instead. */
static void proxy_peer_watch(struct proxy_conn *conn, struct MHD_Connection *mc)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct epoll_event ev;

  if(!info || conn->loop->epfd < 0)
    return;
  conn->peer.kind = PROXY_WATCH_PEER;
  conn->peer.conn = conn;
  conn->peer.fd = info->connect_fd;
  conn->peer.embedded = true;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLRDHUP;
  ev.data.ptr = &conn->peer;
  conn->peer.registered =
      epoll_ctl(conn->loop->epfd, EPOLL_CTL_ADD, conn->peer.fd, &ev) == 0;
}

/* Stops watching conn's client socket. */
static void proxy_peer_unwatch(struct proxy_conn *conn)
{
  if(!conn->peer.registered)
    return;
  epoll_ctl(conn->loop->epfd, EPOLL_CTL_DEL, conn->peer.fd, NULL);
  conn->peer.registered = false;
}

/* Takes conn off the list of connections whose client has gone. */
static void proxy_gone_unlink(struct proxy_conn *conn)
{
  struct proxy_loop *loop = conn->loop;

  if(conn->gone_prev)
    conn->gone_prev->gone_next = conn->gone_next;
  else if(loop->gone == conn)
    loop->gone = conn->gone_next;
  if(conn->gone_next)
    conn->gone_next->gone_prev = conn->gone_prev;
  conn->gone_prev = conn->gone_next = NULL;
}

/* Shuts down our sending side of a connection whose client has gone, once
 * nothing is left to send it (no answer being produced or sent), so that
 * libmicrohttpd sees EPOLLHUP and closes it. Called after libmicrohttpd
 * has read what arrived, and when an answer completes. */
static void proxy_peer_finish(struct proxy_conn *conn)
{
  char label[80];

  if(!conn->peer_gone || conn->peer_shut || conn->answering ||
     conn->fwd_state != PROXY_FWD_IDLE)
    return;
  if(conn->req.started || conn->req.uri)
    proxy_note(conn, KB_NOTE_CLIENT_LEFT,
               "connection %s: the client closed it in the middle of "
               "a request; closing it, nothing forwarded",
               proxy_conn_label(conn, label, sizeof(label)));
  shutdown(conn->peer.fd, SHUT_WR);
  conn->peer_shut = true;
  proxy_gone_unlink(conn);
}

/* The loop saw EPOLLRDHUP (or HUP, ERR) on conn's client socket. The
 * bytes that came before the FIN may not be read yet - a client may send
 * a whole request and half-close - so the decision waits for
 * proxy_loop_gone, after libmicrohttpd's turn. */
static void proxy_peer_gone(struct proxy_conn *conn)
{
  struct proxy_loop *loop = conn->loop;

  proxy_peer_unwatch(conn);
  if(conn->peer_gone)
    return;
  conn->peer_gone = true;
  conn->gone_prev = NULL;
  conn->gone_next = loop->gone;
  if(loop->gone)
    loop->gone->gone_prev = conn;
  loop->gone = conn;
}

/* After MHD_run: finishes the connections of loop whose client has gone,
 * unless libmicrohttpd still has bytes to process (it then asks for a
 * zero timeout, and the next turn decides). */
static void proxy_loop_gone(struct proxy_loop *loop)
{
  MHD_UNSIGNED_LONG_LONG ms;
  struct proxy_conn *c = loop->gone;

  if(!c || (MHD_get_timeout(loop->daemon, &ms) == MHD_YES && ms == 0))
    return;
  while(c) {
    struct proxy_conn *next = c->gone_next; /* finish may unlink c */
    proxy_peer_finish(c);
    c = next;
  }
}

/* Milliseconds the loop may sleep: until the earliest libcurl timer of a
 * transfer in flight or libmicrohttpd's next timeout, whichever is first,
 * at most PROXY_LOOP_MAX_WAIT_MS. */
static int proxy_loop_wait_ms(struct proxy_loop *loop)
{
  MHD_UNSIGNED_LONG_LONG mhd_ms;
  int64_t wait = PROXY_LOOP_MAX_WAIT_MS;
  int64_t now = proxy_mono_ms();
  struct proxy_conn *c;

  if(MHD_get_timeout(loop->daemon, &mhd_ms) == MHD_YES &&
     mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait)
    wait = (int64_t)mhd_ms;
  for(c = loop->busy; c && wait > 0; c = c->busy_next)
    if(c->timer_at >= 0 && c->timer_at - now < wait)
      wait = c->timer_at - now;
  return wait < 0 ? 0 : (int)wait;
}

/* Calls libcurl back for every transfer whose timer is due (the first
 * call after curl_multi_add_handle starts the transfer) and finishes those
 * that ended. */
static void proxy_loop_timers(struct proxy_loop *loop)
{
  int64_t now = proxy_mono_ms();
  struct proxy_conn *c = loop->busy;

  while(c) {
    /* proxy_fwd_check may take c off the list. */
    struct proxy_conn *next = c->busy_next;
    if(c->timer_at >= 0 && c->timer_at <= now) {
      int running = 0;
      c->timer_at = -1;
      curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
      proxy_fwd_check(c);
    }
    c = next;
  }
}

/* Abandons every transfer in flight on loop because the proxy is
 * stopping: each client gets a 503 if its connection can still take
 * one. */
static void proxy_loop_abandon(struct proxy_loop *loop)
{
  while(loop->busy)
    proxy_fwd_finish(loop->busy, CURLE_ABORTED_BY_CALLBACK);
}

/* Frees the watches retired during the last batch of events. */
static void proxy_loop_bury(struct proxy_loop *loop)
{
  while(loop->dead) {
    struct proxy_watch *w = loop->dead;
    loop->dead = w->next_dead;
    free(w);
  }
}

/* A loop thread: waits on its epoll set holding its libmicrohttpd
 * daemon's epoll descriptor, the wakeup eventfd and its connections'
 * upstream and client sockets; drives libcurl on upstream events and
 * timers, then lets libmicrohttpd accept, read, call the handlers
 * (including those of connections just resumed) and write. Runs until
 * proxy_stop sets the stop flag; returns NULL. */
static void *proxy_loop_main(void *arg)
{
  struct proxy_loop *loop = arg;
  struct proxy *proxy = loop->proxy;
  struct epoll_event events[PROXY_LOOP_EVENTS];

  proxy_current_loop = loop;

  for(;;) {
    int n = epoll_wait(loop->epfd, events, PROXY_LOOP_EVENTS,
                       proxy_loop_wait_ms(loop));
    int i;

    for(i = 0; i < n; i++) {
      struct proxy_watch *w = events[i].data.ptr;
      struct proxy_conn *conn;
      uint64_t count;
      int flags = 0;
      int running = 0;

      switch(w->kind) {
      case PROXY_WATCH_MHD:
        break; /* MHD_run below */
      case PROXY_WATCH_WAKE:
        if(read(loop->wakefd, &count, sizeof(count)) < 0)
          count = 0; /* already drained */
        break;
      case PROXY_WATCH_PEER:
        if(w->conn)
          proxy_peer_gone(w->conn);
        break;
      case PROXY_WATCH_UPSTREAM:
        if(!w->conn)
          break; /* retired earlier in this batch */
        if(w->embedded && !w->active) {
          /* A kept connection between requests: the backend closed it or
           * sent something unasked. Stop watching (level-triggered, it
           * would fire on every wait); libcurl finds it dead before
           * reusing it. */
          epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
          w->registered = false;
          break;
        }
        if(events[i].events & (EPOLLIN | EPOLLHUP))
          flags |= CURL_CSELECT_IN;
        if(events[i].events & EPOLLOUT)
          flags |= CURL_CSELECT_OUT;
        if(events[i].events & EPOLLERR)
          flags |= CURL_CSELECT_ERR;
        /* The call may retire w (libcurl closes the socket), not conn. */
        conn = w->conn;
        curl_multi_socket_action(conn->multi, w->fd, flags, &running);
        proxy_fwd_check(conn);
        break;
      }
    }
    if(atomic_load(&proxy->stopping)) {
      proxy_loop_abandon(loop);
      /* Let the resumed connections queue their 503 and try to send it. */
      MHD_run(loop->daemon);
      proxy_loop_bury(loop);
      break;
    }
    proxy_loop_timers(loop);
    MHD_run(loop->daemon);
    proxy_loop_gone(loop);
    proxy_loop_bury(loop);
  }
  return NULL;
}

/* Creates loop's epoll set with its daemon's epoll descriptor and the
 * wakeup eventfd in it and starts the loop thread. Returns 0, or -1 with
 * errno set; what was created is released by proxy_loop_close. */
static int proxy_loop_start(struct proxy_loop *loop)
{
  const union MHD_DaemonInfo *info;
  struct epoll_event ev;
  char name[16];
  int rc;

  info = MHD_get_daemon_info(loop->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  if(!info) {
    errno = ENOTSUP;
    return -1;
  }
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if(loop->epfd < 0)
    return -1;
  loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if(loop->wakefd < 0)
    return -1;
  loop->mhd_watch.kind = PROXY_WATCH_MHD;
  loop->mhd_watch.fd = info->epoll_fd;
  loop->wake_watch.kind = PROXY_WATCH_WAKE;
  loop->wake_watch.fd = loop->wakefd;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = &loop->mhd_watch;
  if(epoll_ctl(loop->epfd, EPOLL_CTL_ADD, info->epoll_fd, &ev))
    return -1;
  ev.data.ptr = &loop->wake_watch;
  if(epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev))
    return -1;
  rc = pthread_create(&loop->thread, NULL, proxy_loop_main, loop);
  if(rc) {
    errno = rc;
    return -1;
  }
  if(loop->index)
    snprintf(name, sizeof(name), "kb-proxy-%u", loop->index + 1);
  else
    snprintf(name, sizeof(name), "kb-proxy");
  kb_thread_name(loop->thread, name);
  loop->started = true;
  return 0;
}

/* Stops every loop thread that runs (each abandons its transfers in
 * flight) and waits for them. The epoll sets and eventfds stay open:
 * closing connections still retires upstream sockets from them. */
static void proxy_loops_stop(struct proxy *proxy)
{
  uint64_t one = 1;
  unsigned i;

  atomic_store(&proxy->stopping, true);
  for(i = 0; i < proxy->nloops; i++)
    if(proxy->loops[i].started &&
       write(proxy->loops[i].wakefd, &one, sizeof(one)) < 0) {
      /* The counter is already non-zero: the loop is awake anyway. */
    }
  for(i = 0; i < proxy->nloops; i++)
    if(proxy->loops[i].started) {
      pthread_join(proxy->loops[i].thread, NULL);
      proxy->loops[i].started = false;
    }
}

/* Stops every daemon, closing its connections (their CLOSED notifications
 * free their state and close their upstream connections), then closes
 * the loops' descriptors and frees retired watches. After
 * proxy_loops_stop. */
static void proxy_loops_close(struct proxy *proxy)
{
  unsigned i;

  for(i = 0; i < proxy->nloops; i++)
    if(proxy->loops[i].daemon) {
      MHD_stop_daemon(proxy->loops[i].daemon);
      proxy->loops[i].daemon = NULL;
    }
  for(i = 0; i < proxy->nloops; i++) {
    struct proxy_loop *loop = &proxy->loops[i];
    proxy_loop_bury(loop);
    if(loop->wakefd >= 0)
      close(loop->wakefd);
    if(loop->epfd >= 0)
      close(loop->epfd);
    loop->wakefd = loop->epfd = -1;
  }
}

/* How many loops to run: wanted, 1 when 0, at most PROXY_MAX_LOOPS. */
static unsigned proxy_loop_count(unsigned wanted)
{
  if(wanted < 1)
    return 1;
  return wanted > PROXY_MAX_LOOPS ? PROXY_MAX_LOOPS : wanted;
}

/* Starts loop's libmicrohttpd daemon in external epoll mode: on addr
 * (port 0 picks one) when listen_fd is -1, else accepting from listen_fd,
 * which it then owns. Returns the daemon or NULL (errno set when the
 * system refused). */
static struct MHD_Daemon *
proxy_daemon_start(struct proxy_loop *loop, unsigned int flags, uint16_t port,
                   const struct sockaddr *addr, int listen_fd,
                   unsigned connection_limit, unsigned connection_timeout_s)
{
  struct proxy *proxy = loop->proxy;
  struct MHD_OptionItem where[2] = {{MHD_OPTION_END, 0, NULL},
                                    {MHD_OPTION_END, 0, NULL}};

  if(listen_fd < 0) {
    where[0].option = MHD_OPTION_SOCK_ADDR;
    where[0].ptr_value = (void *)addr;
  }
  else {
    where[0].option = MHD_OPTION_LISTEN_SOCKET;
    where[0].value = listen_fd;
  }
  return MHD_start_daemon(
      flags, port, NULL, NULL, proxy_on_request, proxy,
      /* First, so that libmicrohttpd's option parsing logs through it. */
      MHD_OPTION_EXTERNAL_LOGGER, proxy_on_mhd_log, proxy, MHD_OPTION_ARRAY,
      where, MHD_OPTION_CONNECTION_LIMIT, connection_limit,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, PROXY_CONNECTION_MEMORY,
      MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_s,
      MHD_OPTION_NOTIFY_CONNECTION, proxy_on_connection, loop,
      MHD_OPTION_URI_LOG_CALLBACK, proxy_on_uri, proxy,
      MHD_OPTION_NOTIFY_COMPLETED, proxy_on_completed, proxy, MHD_OPTION_END);
}

/* ---- start / stop ----------------------------------------------------- */

int proxy_start(const struct proxy_config *config, struct proxy **out,
                char *err, size_t errlen)
{
  struct proxy *proxy = NULL;
  struct sockaddr_storage addr;
  /* External epoll mode: each loop thread drives its libmicrohttpd
   * daemon and its connections' libcurl handles. */
  unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                       MHD_USE_SUPPRESS_DATE_NO_CLOCK | MHD_USE_ERROR_LOG;
  const union MHD_DaemonInfo *info;
  bool lock_ready = false;
  size_t len;
  int saved_errno;
  unsigned connection_timeout_s;
  unsigned connection_limit;
  unsigned i;

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
  if(config->auth != PROXY_AUTH_INTEGRATED &&
     config->auth != PROXY_AUTH_BASIC && config->auth != PROXY_AUTH_NONE) {
    proxy_set_error(err, errlen,
                    "proxy: unknown listener authentication %d; use "
                    "integrated, basic or none",
                    (int)config->auth);
    return -1;
  }
  if(config->idle_timeout_ms < 0) {
    proxy_set_error(err, errlen,
                    "proxy: idle_timeout_ms is negative (%" PRId64 "); use 0 "
                    "for no limit",
                    config->idle_timeout_ms);
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
  for(i = 0; i < PROXY_MAX_LOOPS; i++) {
    proxy->loops[i].proxy = proxy;
    proxy->loops[i].index = i;
    proxy->loops[i].epfd = proxy->loops[i].wakefd = -1;
  }
  proxy->bind_host = proxy_strdup_or(config->bind_host, PROXY_DEFAULT_HOST);
  proxy->backend_url = strdup(config->backend_url);
  proxy->name = proxy_strdup_or(config->name, PROXY_DEFAULT_NAME);
  proxy->domain = proxy_strdup_or(config->domain, PROXY_DEFAULT_DOMAIN);
  proxy->dns_domain = proxy_dns_names(proxy, config->dns_domain);
  proxy->basic_offer = proxy_join("Basic realm=\"", proxy->name, "\"");
  proxy->via = proxy_join("1.1 ", proxy->name, "");
  if(!proxy->bind_host || !proxy->backend_url || !proxy->name ||
     !proxy->domain || !proxy->dns_domain || !proxy->dns_computer ||
     !proxy->basic_offer || !proxy->via) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    goto fail;
  }
  len = strlen(proxy->backend_url);
  while(len && proxy->backend_url[len - 1] == '/')
    proxy->backend_url[--len] = '\0';
  proxy->backend_url_len = len;
  proxy->users = config->users;
  proxy->auth = config->auth;
  proxy->idle_timeout_ms = config->idle_timeout_ms;
  proxy->max_requests = config->max_requests;
  connection_timeout_s = config->connection_timeout_s
                             ? config->connection_timeout_s
                             : PROXY_DEFAULT_CONNECTION_TIMEOUT_S;
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

  /* The connection limit is shared out among the loops: a daemon at its
   * share stops accepting, and the others take the new connections from
   * the shared listening socket. */
  proxy->nloops = proxy_loop_count(config->loops);
  connection_limit = PROXY_CONNECTION_LIMIT / proxy->nloops;
  errno = 0;
  proxy->loops[0].daemon = proxy_daemon_start(
      &proxy->loops[0], flags, config->port, (const struct sockaddr *)&addr, -1,
      connection_limit, connection_timeout_s);
  saved_errno = errno;
  if(!proxy->loops[0].daemon) {
    proxy_set_error(err, errlen,
                    "proxy: cannot listen on %s:%u: %s; pick another port or 0",
                    proxy->bind_host, (unsigned)config->port,
                    saved_errno ? strerror(saved_errno)
                                : "libmicrohttpd "
                                  "refused to start");
    goto fail;
  }
  info = MHD_get_daemon_info(proxy->loops[0].daemon, MHD_DAEMON_INFO_BIND_PORT);
  proxy->port = info ? info->port : config->port;
  /* The other loops accept from a duplicate of the listening socket, each
   * daemon closing its own descriptor when it stops. */
  info = MHD_get_daemon_info(proxy->loops[0].daemon, MHD_DAEMON_INFO_LISTEN_FD);
  for(i = 1; i < proxy->nloops; i++) {
    int fd = info ? fcntl(info->listen_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if(fd >= 0) {
      errno = 0;
      proxy->loops[i].daemon =
          proxy_daemon_start(&proxy->loops[i], flags, 0, NULL, fd,
                             connection_limit, connection_timeout_s);
    }
    if(fd < 0 || !proxy->loops[i].daemon) {
      /* (A descriptor libmicrohttpd refused may leak: whether it closed
       * it is not known, and closing it twice could hit a new one.) */
      saved_errno = errno;
      proxy_set_error(err, errlen,
                      "proxy: cannot start event loop %u of %u: %s; check "
                      "the process's limit on descriptors",
                      i + 1, proxy->nloops,
                      saved_errno ? strerror(saved_errno)
                                  : "libmicrohttpd refused to start");
      goto fail;
    }
  }
  for(i = 0; i < proxy->nloops; i++)
    if(proxy_loop_start(&proxy->loops[i])) {
      saved_errno = errno;
      proxy_set_error(err, errlen,
                      "proxy: cannot start the event loop: %s; check the "
                      "process's limits on threads and descriptors",
                      strerror(saved_errno));
      goto fail;
    }
  *out = proxy;
  return 0;

fail:
  if(proxy) {
    proxy_loops_stop(proxy);
    proxy_loops_close(proxy);
    if(lock_ready)
      pthread_mutex_destroy(&proxy->lock);
    free(proxy->bind_host);
    free(proxy->backend_url);
    free(proxy->name);
    free(proxy->domain);
    free(proxy->dns_domain);
    free(proxy->dns_computer);
    free(proxy->basic_offer);
    free(proxy->via);
    free(proxy);
  }
  return -1;
}

void proxy_stop(struct proxy *proxy)
{
  if(!proxy)
    return;
  /* The loops abandon transfers in flight (503) instead of waiting for
   * the upstream timeout, then end. */
  proxy_loops_stop(proxy);
  /* Closes every connection; their CLOSED notifications free their state
   * (and close their upstream connections) before this returns. */
  proxy_loops_close(proxy);
  pthread_mutex_destroy(&proxy->lock);
  free(proxy->bind_host);
  free(proxy->backend_url);
  free(proxy->name);
  free(proxy->domain);
  free(proxy->dns_domain);
  free(proxy->dns_computer);
  free(proxy->basic_offer);
  free(proxy->via);
  free(proxy);
}
