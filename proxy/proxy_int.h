/*
 * proxy_int.h - internal to proxy/: the structs every part of the listener
 * shares, and the calls between its files.
 *
 *   proxy.c     start/stop, the libmicrohttpd callbacks, reading requests,
 *               Basic, carrying out proxy_auth_decide's decisions, answers
 *   auth.c      the integrated decision table (auth.h), a pure function
 *   upstream.c  the relay to the published server: libcurl handles,
 *               header filtering, upstream connection names, results
 *   loop.c      the event loops: epoll, libcurl's socket and timer
 *               callbacks, the client sockets' EPOLLRDHUP watch
 *
 * Only the loop thread of a connection touches its struct proxy_conn.
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

#define PROXY_DEFAULT_NAME "ISA01"
#define PROXY_DEFAULT_DOMAIN "FABRIKAM"
#define PROXY_DEFAULT_HOST "127.0.0.1"
#define PROXY_DEFAULT_MAX_BODY ((size_t)1024 * 1024)
#define PROXY_DEFAULT_TIMEOUT_MS 30000L
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

  /* The event loops, up to PROXY_MAX_LOOPS; loops[0]'s daemon
   * owns the listening socket, the others accept from a duplicate. */
  struct proxy_loop loops[PROXY_MAX_LOOPS];
  unsigned nloops;
};

/* The request being read on a connection. libmicrohttpd handles one
 * request at a time per connection, so it is embedded in the connection
 * and reset at the start and end of each request. */
struct proxy_req {
  const char *uri;    /* the target's path, query included: into uri_buf */
  struct kb_buf body; /* capped at max_body */
  size_t body_seen;   /* bytes of body received, kept or not */
  bool started;       /* the access handler has seen the headers */
  bool too_big;       /* body_seen exceeded max_body; body was dropped */
  bool refused_early; /* Content-Length said too big: 413 before reading */
  bool nomem;         /* the body could not be stored */
  enum kb_http_verdict framing; /* what kb_http_check found in the head */
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
  struct kb_guard_slot *slot; /* its deadlines (NULL: none) */
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
extern _Thread_local bool proxy_closing_idle;

/* The loop the calling thread runs (NULL on any other thread): requests
 * are decided and answered only on their connection's loop, which is what
 * lets struct proxy_conn go without a lock. Checked by assert(). */
extern _Thread_local const struct proxy_loop *proxy_current_loop;

#define PROXY_MHD_APP_ERROR "Application reported internal error"

/* A decision or remark of the listener about conn, with its note code. */
#define proxy_note(conn, code, ...)                                            \
  kb_trace_note(&(conn)->proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER,    \
                (conn)->proxy->name, (conn)->id, code, __VA_ARGS__)

/* ---- calls between the files ------------------------------------------ */
/* Each is documented where it is defined. */

/* upstream.c: libcurl initialised once per process; CURLE_OK or why not. */
CURLcode proxy_curl_init(void);

/* proxy.c */
void proxy_add_date(const struct proxy_conn *conn, struct MHD_Response *r);
__attribute__((format(printf, 6, 7))) void
proxy_answer_text(const struct proxy_conn *conn, struct proxy_answer *ans,
                  unsigned status, const char *const *www_auth,
                  enum kb_auth resp_auth, const char *fmt, ...);
enum kb_auth proxy_classify_auth(const char *value);
const char *proxy_conn_label(const struct proxy_conn *conn, char *out,
                             size_t outlen);
void proxy_emit(const struct proxy *proxy, enum kb_trace_kind kind,
                enum kb_hop hop, uint64_t conn, const char *conn_name,
                const void *data, size_t len,
                const struct kb_exchange *exchange);
bool proxy_is_hop_header(const char *name, const char *connection_tokens);
void proxy_on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                        enum MHD_RequestTerminationCode toe);
void proxy_on_connection(void *cls, struct MHD_Connection *mc,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode toe);
__attribute__((format(printf, 2, 0))) void
proxy_on_mhd_log(void *cls, const char *fmt, va_list ap);
enum MHD_Result proxy_on_accept(void *cls, const struct sockaddr *addr,
                                socklen_t addrlen);
enum MHD_Result proxy_on_request(void *cls, struct MHD_Connection *mc,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls);
void *proxy_on_uri(void *cls, const char *uri, struct MHD_Connection *mc);

/* upstream.c */
void proxy_buf_recycle(struct kb_buf *buf);
void proxy_busy_unlink(struct proxy_conn *conn);
int proxy_curl_close(void *clientp, curl_socket_t fd);
void proxy_forward(struct proxy_conn *conn, struct MHD_Connection *mc,
                   const char *method, struct proxy_answer *ans);
void proxy_fwd_check(struct proxy_conn *conn);
void proxy_fwd_finish(struct proxy_conn *conn, CURLcode res);
void proxy_fwd_release(struct proxy_conn *conn);
int64_t proxy_mono_ms(void);

/* loop.c */
struct MHD_Daemon *proxy_daemon_start(struct proxy_loop *loop,
                                      unsigned int flags, uint16_t port,
                                      const struct sockaddr *addr,
                                      int listen_fd, unsigned connection_limit,
                                      unsigned connection_timeout_s);
void proxy_gone_unlink(struct proxy_conn *conn);
unsigned proxy_loop_count(unsigned wanted);
int proxy_loop_start(struct proxy_loop *loop);
void proxy_loops_close(struct proxy *proxy);
void proxy_loops_stop(struct proxy *proxy);
void proxy_peer_finish(struct proxy_conn *conn);
void proxy_peer_unwatch(struct proxy_conn *conn);
void proxy_peer_watch(struct proxy_conn *conn, struct MHD_Connection *mc);

#endif /* PROXY_INT_H */
