/*
 * proxy_int.h - internal to proxy/: the structs every file of the listener
 * shares and the calls between its files (proxy/README.md lists the files
 * and their jobs). Names declared here take the double prefix proxy__, as
 * libuv's uv__; the public API is proxy.h and the decision table auth.h.
 *
 * Everything a client connection owns lives in its struct proxy__conn,
 * libmicrohttpd's socket context for it: created on
 * MHD_CONNECTION_NOTIFY_STARTED and freed on MHD_CONNECTION_NOTIFY_CLOSED
 * (connection.c). Only the loop thread that accepted it touches it in
 * between (and proxy_stop once the loop has ended), so it needs no lock;
 * what other threads read (the policy, the stop flag, the counters) is
 * atomic or under proxy->lock.
 */
#ifndef PROXY_INT_H
#define PROXY_INT_H

#include "proxy/auth.h"
#include "proxy/proxy.h"

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

#include "common/kb_auth.h"
#include "common/kb_buf.h"
#include "common/kb_guard.h"
#include "common/kb_http.h"
#include "common/kb_net.h"
#include "ntlm/ntlm.h"

/* Event loops at most (proxy_config.loops): like nginx's workers, more
 * loops let the listener use more cores. */
#define PROXY__MAX_LOOPS 4u

/* ---- types ------------------------------------------------------------ */

/* Where a client connection's upstream transfer stands. */
enum proxy__fwd_state {
  PROXY__FWD_IDLE = 0, /* none: the request is decided on the spot */
  PROXY__FWD_RUNNING,  /* in flight; the client connection is suspended
                          (from the second final call of the access
                          handler: see proxy_request_answer) */
  PROXY__FWD_DONE      /* ended; conn->pending holds the answer to queue */
};

/* What an epoll registration of the loop stands for. */
enum proxy__watch_kind {
  PROXY__WATCH_MHD,      /* libmicrohttpd's own epoll set */
  PROXY__WATCH_WAKE,     /* the eventfd proxy_stop writes */
  PROXY__WATCH_UPSTREAM, /* a libcurl socket of one connection's transfer */
  PROXY__WATCH_PEER      /* a client socket, watched for the client leaving */
};

struct proxy__conn;

/* What libcurl's close-socket callback is handed (upstream.c). libcurl
 * copies it into each upstream connection when it opens it and keeps it
 * for the connection's life, which may outlast the client connection:
 * under the defect mixes-identities a share handle, and the connection in
 * its cache, passes from a client connection that closed to the next one
 * (defects.c). So it is allocated beside the client connection's share
 * handle, names its current owner, and keeps what the trace needs while
 * it has none. */
struct proxy__upstream {
  struct proxy *proxy;
  struct proxy__conn *conn; /* the owner; NULL while in the pool */
  /* While in the pool (loop->pool): the share handle, the last owner's id
   * and label, and the name, port and requests of the upstream
   * connection it caches. */
  CURLSH *share;
  uint64_t conn_id;
  char owner[64];
  char name[96];
  uint16_t port;
  unsigned requests;
  struct proxy__upstream *next;
};

/* The epoll data of one registration. Upstream ones are created when
 * libcurl first reports a socket and retired when it removes it; retired
 * ones are freed only after the current batch of events, which may still
 * name them. */
struct proxy__watch {
  enum proxy__watch_kind kind;
  struct proxy__conn *conn; /* UPSTREAM and PEER; NULL once retired */
  curl_socket_t fd;         /* CURL_SOCKET_BAD: none (embedded watch) */
  bool embedded;            /* conn->up, which lives as long as conn */
  bool registered;          /* in the epoll set */
  bool active;              /* libcurl wants events (not removed) */
  uint32_t events;          /* what the registration asks for */
  struct proxy__watch *next_dead;
};

/* One event loop: a libmicrohttpd daemon accepting from the shared
 * listening socket, its thread, and one epoll set holding the daemon's
 * epoll descriptor, the wakeup eventfd and the upstream and client
 * sockets of the daemon's connections. A connection lives on the loop
 * that accepted it. Everything here is the loop thread's alone while it
 * runs, and proxy_stop's after it has joined it. */
struct proxy__loop {
  struct proxy *proxy;
  unsigned index; /* in proxy->loops */
  struct MHD_Daemon *daemon;
  pthread_t thread;
  bool started;
  int epfd;   /* epoll set of the loop */
  int wakefd; /* eventfd: proxy_stop wakes the loop */
  struct proxy__watch mhd_watch;
  struct proxy__watch wake_watch;
  /* Connections whose client has gone, to be shut down once
   * libmicrohttpd has read what the client sent. */
  struct proxy__conn *gone;
  struct proxy__conn *busy; /* connections with a transfer in flight */
  /* The libcurl multi handle every upstream transfer of the loop runs
   * in (created as the loop starts: proxy__multi_init), and the monotonic
   * ms it wants a timeout call at, or -1. */
  CURLM *multi;
  int64_t timer_at;
  struct proxy__watch *dead; /* retired watches, freed after each batch */
  /* The defects' state (defects.c): connections held by expect-hang, and
   * the upstream connections left by clients that closed
   * (mixes-identities), most recent first, npool of them. */
  struct proxy__conn *held;
  struct proxy__upstream *pool;
  unsigned npool;
};

struct proxy {
  uint16_t port;
  struct kb_guard *guard; /* caps and deadlines of client connections */
  char *bind_host;
  char *backend_url; /* without a trailing '/' */
  size_t backend_url_len;
  char *name;
  char *domain;
  char *dns_domain;   /* "fabrikam.com" */
  char *dns_computer; /* "isa01.fabrikam.com" */
  const struct kb_users *users;
  enum proxy_auth auth;
  unsigned defects;  /* PROXY_DEFECT bits (defects.c) */
  char *krb5_keytab; /* NULL: no Kerberos */
  /* The config's TLS PEM texts (borrowed), NULL when not used. */
  const char *tls_cert_pem, *tls_key_pem, *upstream_ca_pem;
  /* The config's tls_tap and its context (proxy.h). */
  void (*tls_tap)(void *ctx, void *session, const struct sockaddr *peer,
                  uint16_t local_port);
  void *tls_tap_ctx;
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
  atomic_uint_fast32_t source;  /* upstream connections' IPv4 source, 0:
                                   the kernel's (proxy_set_source) */
  atomic_bool stopping;         /* aborts upstream transfers in flight */
  atomic_uint_fast64_t next_id; /* front connection ids, from 1 */

  pthread_mutex_t lock; /* guards stats and open */
  struct proxy_stats stats;
  unsigned open;       /* client connections between STARTED and CLOSED */
  pthread_cond_t idle; /* signalled when open drops to 0 */

  /* The event loops, up to PROXY__MAX_LOOPS; loops[0]'s daemon
   * owns the listening socket, the others accept from a duplicate. */
  struct proxy__loop loops[PROXY__MAX_LOOPS];
  unsigned nloops;
};

/* The request being read on a connection. libmicrohttpd handles one
 * request at a time per connection, so it is embedded in the connection
 * and reset at the start and end of each request. */
struct proxy__req {
  const char *uri;    /* the target's path, query included: into uri_buf */
  struct kb_buf body; /* capped at max_body */
  size_t body_seen;   /* bytes of body received, kept or not */
  bool started;       /* the access handler has seen the headers */
  bool too_big;       /* body_seen exceeded max_body; body was dropped */
  bool refused_early; /* Content-Length said too big: 413 before reading */
  bool nomem;         /* the body could not be stored */
  enum kb_http_verdict framing; /* what kb_http.h found in the head */
  /* An RPC channel (stream.c): decided from its head, its body streamed
   * upstream as it comes (body then holds what libcurl has not taken),
   * declared its Content-Length. */
  bool stream;
  uint64_t declared;
};

/* A streamed request's state on its connection (stream.c). */
struct proxy__stream {
  size_t up_off;  /* bytes of req.body libcurl has taken */
  bool up_paused; /* the read callback paused: nothing left to take */
  bool body_done; /* the client's body is complete */
  bool live;      /* a 2xx queued while its transfer runs on */
  bool up_done;   /* ... and the transfer has ended */
  bool gone;      /* ... and the client has gone */
  bool waiting;   /* its reader suspended the connection (mc) */
  struct MHD_Connection *mc;
  size_t down_off; /* bytes of fwd.body the reader has written */
};

/* The answer to one client request, before it is queued. */
struct proxy__answer {
  unsigned status;
  struct MHD_Response *response; /* owned until queued */
  enum kb_auth resp_auth;
  size_t resp_body_len;
  struct proxy_stats delta; /* added to the counters in one step */
};

/* What an upstream transfer collects. */
struct proxy__fwd {
  struct proxy__conn *conn;
  struct kb_buf headers; /* "Name: value\n" lines of the final response */
  struct kb_buf body;
  bool too_big; /* the body or headers went past their cap */
};

/* One client TCP connection. */
struct proxy__conn {
  struct proxy *proxy;
  struct proxy__loop *loop; /* the loop that accepted it and runs it */
  uint64_t id;
  char name[64];        /* the name the peer claimed (kb_names), or "" */
  bool named;           /* name resolved and OPEN traced (first request) */
  char up_name[96];     /* the current upstream connection's name, or "" */
  uint16_t up_port;     /* the backend port it connects to */
  bool up_claimed;      /* up_name claimed for its port (once connected) */
  unsigned upstreams;   /* upstream connections opened for this one */
  unsigned up_requests; /* requests sent on the current one; 0: none open */
  bool up_private;      /* mixes-after-single-leg: a 401 with NTLM or
                           Negotiate came back; never pooled (defects.c) */
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
  /* Its connection cache, so its upstream connections are its own:
   * the transfers of every connection of the loop run in loop->multi. */
  CURLSH *share;
  struct proxy__upstream *upstream; /* created with share */
  /* The watch of its upstream socket. It stays registered between
   * requests (libcurl removes and re-adds the socket of a kept connection
   * around every transfer), which saves three epoll_ctl calls a request;
   * proxy_curl_close forgets it when the socket closes. */
  struct proxy__watch up;
  /* The client socket, watched for EPOLLRDHUP only. libmicrohttpd's
   * epoll mode is edge-triggered and stops reading a socket once a read
   * comes back short, so a FIN that arrives together with the last bytes
   * of a request never wakes it: the connection would sit in CLOSE-WAIT
   * until the connection timeout. When the client has gone, the loop
   * shuts down our side too (at once if the connection waits for request
   * bytes, after the answer if one is being produced); the EPOLLHUP that
   * follows makes libmicrohttpd close it. */
  struct proxy__watch peer;
  bool peer_gone; /* EPOLLRDHUP seen */
  bool answering; /* a response is queued and not yet completed */
  bool peer_shut; /* our side was shut down */
  struct proxy__conn *gone_prev, *gone_next; /* in loop->gone */
  /* The defect expect-hang: the connection suspended with its request
   * unanswered (held, in loop->held), then let go to close (dropped). */
  struct MHD_Connection *held;
  bool dropped;
  struct proxy__conn *held_prev, *held_next;
  struct proxy__req req;
  struct proxy__stream stream; /* the streamed request's, if req.stream */
  struct kb_guard_slot *slot;  /* its deadlines (NULL: none) */
  /* The forward in flight (fwd_state RUNNING) or just ended (DONE). */
  enum proxy__fwd_state fwd_state;
  struct MHD_Connection *mc; /* the client connection of the forward */
  bool suspended;            /* mc is suspended until the forward ends */
  struct proxy__fwd fwd;     /* what the transfer collects */
  /* The upstream header list and URL of the last forward, kept while the
   * client's next request repeats them (see proxy_upstream_headers). */
  struct curl_slist *fwd_headers;
  struct kb_buf fwd_url;
  CURLU *fwd_uh; /* fwd_url parsed, handed to libcurl (CURLOPT_CURLU) */
  /* The request target as sent; req.uri points into it. */
  struct kb_buf uri_buf;
  char fwd_err[CURL_ERROR_SIZE];
  struct proxy__answer pending;              /* the answer being built */
  struct proxy__conn *busy_prev, *busy_next; /* in loop->busy */
};

/* Set by the loop thread when it closes a connection on purpose with
 * MHD_NO (a request on an idle connection, a held one whose client left).
 * libmicrohttpd then logs "Application reported internal error" at once,
 * from that same thread (inside MHD_run); the close is deliberate and
 * already noted, so that one line is dropped. */
extern _Thread_local bool proxy__closing_quietly;

/* The loop the calling thread runs (NULL on any other thread): requests
 * are decided and answered only on their connection's loop, which is what
 * lets struct proxy__conn go without a lock. Checked by assert(). */
extern _Thread_local const struct proxy__loop *proxy__current_loop;

/* A decision or remark of the listener about conn, with its note code. */
#define proxy__note(conn, code, ...)                                           \
  kb_trace_note(&(conn)->proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER,    \
                (conn)->proxy->name, (conn)->id, code, __VA_ARGS__)

/* ---- calls between the files ------------------------------------------ */
/* Each is documented where it is defined. */

/* proxy.c: the listener's counters and trace. */
void proxy__stats_add(struct proxy *proxy, const struct proxy_stats *delta);
void proxy__emit(const struct proxy *proxy, enum kb_trace_kind kind,
                 enum kb_hop hop, uint64_t conn, const char *conn_name,
                 const void *data, size_t len,
                 const struct kb_exchange *exchange);

/* connection.c: a client connection and libmicrohttpd's connection-level
 * callbacks. */
const char *proxy__conn_label(const struct proxy__conn *conn, char *out,
                              size_t outlen);
int64_t proxy__conn_now(const struct proxy__conn *conn);
enum MHD_Result proxy__on_accept(void *cls, const struct sockaddr *addr,
                                 socklen_t addrlen);
void proxy__on_connection(void *cls, struct MHD_Connection *mc,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe);
__attribute__((format(printf, 2, 0))) void
proxy__on_mhd_log(void *cls, const char *fmt, va_list ap);

/* request.c: one request, from libmicrohttpd's per-request callbacks to
 * the answer queued. */
void *proxy__on_uri(void *cls, const char *uri, struct MHD_Connection *mc);
enum MHD_Result proxy__on_request(void *cls, struct MHD_Connection *mc,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls);
void proxy__on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe);
void proxy__describe_forward(const struct proxy__conn *conn, const char *method,
                             char *out, size_t outlen);

/* integrated.c: the integrated (NTLM) rows, decided by auth.c. */
void proxy__decide_integrated(struct proxy__conn *conn,
                              struct MHD_Connection *mc, const char *method,
                              const char *value, struct proxy__answer *ans);
bool proxy__integrated_refuses(const struct proxy__conn *conn,
                               const char *value);

/* basic.c: the Basic rows. */
void proxy__decide_basic(struct proxy__conn *conn, struct MHD_Connection *mc,
                         const char *method, const char *value,
                         struct proxy__answer *ans);

/* response.c: the answers the listener writes itself. */
void proxy__add_date(const struct proxy__conn *conn, struct MHD_Response *r);
__attribute__((format(printf, 6, 7))) void
proxy__answer_text(const struct proxy__conn *conn, struct proxy__answer *ans,
                   unsigned status, const char *const *www_auth,
                   enum kb_auth resp_auth, const char *fmt, ...);
enum kb_auth proxy__classify_auth(const char *value);

/* defects.c: the defects a listener can be given. */
int proxy__defects_check(unsigned defects, enum proxy_auth auth, char *err,
                         size_t errlen);
bool proxy__defect_hold(struct proxy__conn *conn, struct MHD_Connection *mc);
bool proxy__defect_release(struct proxy__conn *conn);
void proxy__defect_release_all(struct proxy__loop *loop);
void proxy__defect_transfer(struct proxy__conn *conn);
bool proxy__defect_park(struct proxy__conn *conn);
void proxy__defect_private(struct proxy__conn *conn, int status,
                           const char *name, const char *value);
bool proxy__defect_adopt(struct proxy__conn *conn);
void proxy__defect_pool_drain(struct proxy__loop *loop);
bool proxy__defect_fold(const struct proxy__conn *conn, const char *name,
                        const char *value, struct kb_buf *fold);
void proxy__defect_folded(struct proxy__conn *conn, struct MHD_Response *r,
                          const struct kb_buf *fold, struct proxy__answer *ans);

/* stream.c: RPC over HTTP's channels, streamed both ways. */
bool proxy__stream_method(const char *method);
bool proxy__stream_wanted(struct MHD_Connection *mc, const char *method,
                          uint64_t *declared);
void proxy__stream_setup(struct proxy__conn *conn);
int proxy__stream_body(struct proxy__conn *conn, const char *data, size_t len);
void proxy__stream_more(struct proxy__conn *conn);
struct MHD_Response *proxy__stream_response(struct proxy__conn *conn,
                                            uint64_t size);
void proxy__stream_wake(struct proxy__conn *conn);
void proxy__stream_head(struct proxy__conn *conn);
bool proxy__stream_finish(struct proxy__conn *conn, CURLcode res);
void proxy__stream_end(struct proxy__conn *conn);
void proxy__stream_client_left(struct proxy__conn *conn);

/* Whether proxy has defect d (proxy_config.defects). */
static inline bool proxy__defect(const struct proxy *proxy, enum kb_defect d)
{
  return (proxy->defects & PROXY_DEFECT(d)) != 0;
}

/* headers.c: the request headers sent upstream. */
bool proxy__is_hop_header(const char *name, const char *connection_tokens);
int proxy__upstream_headers(struct proxy__conn *conn, struct MHD_Connection *mc,
                            bool has_body);

/* upstream.c: the relay to the published server. */
CURLcode proxy__curl_init(void);
void proxy__buf_recycle(struct kb_buf *buf);
void proxy__busy_unlink(struct proxy__conn *conn);
void proxy__forward(struct proxy__conn *conn, struct MHD_Connection *mc,
                    const char *method, struct proxy__answer *ans);
void proxy__fwd_check(struct proxy__loop *loop);
void proxy__fwd_finish(struct proxy__conn *conn, CURLcode res);
void proxy__fwd_release(struct proxy__conn *conn);
void proxy__relay(struct proxy__conn *conn, struct proxy__fwd *fwd,
                  unsigned status, struct proxy__answer *ans, bool live);
int64_t proxy__mono_ms(void);
void proxy__upstream_attach(struct proxy__conn *conn,
                            struct proxy__upstream *u);
struct proxy__upstream *proxy__upstream_detach(struct proxy__conn *conn);
void proxy__upstream_close(struct proxy__conn *conn);
void proxy__upstream_free(struct proxy__upstream *u);
int proxy__multi_init(struct proxy__loop *loop);
void proxy__multi_close(struct proxy__loop *loop);

/* loop.c: the event loops. */
struct MHD_Daemon *proxy__daemon_start(struct proxy__loop *loop,
                                       unsigned int flags, uint16_t port,
                                       const struct sockaddr *addr,
                                       int listen_fd, unsigned connection_limit,
                                       unsigned connection_timeout_s);
void proxy__gone_unlink(struct proxy__conn *conn);
unsigned proxy__loop_count(unsigned wanted);
int proxy__loop_start(struct proxy__loop *loop);
void proxy__loops_close(struct proxy *proxy);
void proxy__loops_stop(struct proxy *proxy);
void proxy__peer_finish(struct proxy__conn *conn);
void proxy__peer_unwatch(struct proxy__conn *conn);
void proxy__peer_watch(struct proxy__conn *conn, struct MHD_Connection *mc);

#endif /* PROXY_INT_H */
