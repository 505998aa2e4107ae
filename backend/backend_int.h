/*
 * backend_int.h - internal to backend/: the server's state (struct backend)
 * and the per-request context, shared by backend.c (start and stop),
 * mhd.c (the libmicrohttpd glue), rpc.c (the RPC proxy) and counters.c
 * (what is counted).
 */
#ifndef BACKEND_INT_H
#define BACKEND_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/kb_auth.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "gate.h"
#include "soap.h"

#define BACKEND_ORIGIN "backend"

/* libmicrohttpd tuning. The memory limit bounds what one connection may
 * spend on its request line and headers (NTLM type 3 headers are a few KiB);
 * the timeout is IIS 7's default connectionTimeout. libmicrohttpd zeroes
 * the whole pool between requests, and each connection holds one for its
 * life, so it is kept small: 24 KiB, the listener's 20 KiB (which must read
 * a 16 KB token: proxy/loop.c) and room for the headers it adds when it
 * forwards; 32 KiB cost 8 KiB more per concurrent session (bench_memory). */
#define BACKEND_THREADS 2u
#define BACKEND_CONN_MEMORY ((size_t)24 * 1024)
#define BACKEND_CONN_TIMEOUT_S 120u

/* Where a request goes, decided from its method and path alone. */
enum backend_route {
  BACKEND_ROUTE_EWS,
  BACKEND_ROUTE_AUTODISCOVER,
  BACKEND_ROUTE_WSDL, /* GET /EWS/Services.wsdl: a page (client kind ie) */
  BACKEND_ROUTE_NOT_FOUND,
  BACKEND_ROUTE_BAD_METHOD,
  BACKEND_ROUTE_STATUS, /* GET /kbsim/status from loopback, when enabled */
  BACKEND_ROUTE_RPC     /* RPC_IN_DATA / RPC_OUT_DATA /rpc/rpcproxy.dll */
};

/* How a request body is held while it arrives. */
enum backend_body_state {
  BACKEND_BODY_BUFFERING, /* kept in req->body */
  BACKEND_BODY_DISCARD,   /* counted, not kept (404/405 routes) */
  BACKEND_BODY_TOO_LARGE, /* over max_body: counted, not kept */
  BACKEND_BODY_NOMEM,     /* an append failed: counted, not kept */
  BACKEND_BODY_STREAM     /* RPC_IN_DATA: read PDU by PDU (rpc.c) */
};

struct MHD_Connection;
struct MHD_Daemon;
struct kb_guard;
struct backend_rpc_vc;
struct backend_rpc_req;

struct backend {
  struct MHD_Daemon *daemon;
  struct kb_guard *guard; /* caps and deadlines (kb_guard.h) */
  uint16_t port;
  char *ews_url;   /* owned copy */
  size_t max_body; /* effective cap, never above INT_MAX (libxml2 takes int) */
  struct kb_clock clock;
  struct kb_trace trace;
  struct kb_names names;
  struct soap_server soap; /* what soap.h needs: ews_url, clock */
  pthread_mutex_t lock;    /* guards stats, next_conn and open */
  struct backend_stats stats;
  uint64_t next_conn;
  unsigned open;                   /* connections between STARTED and CLOSED */
  pthread_cond_t idle;             /* signalled when open drops to 0 */
  struct backend_auth_server auth; /* the gate's view of the server */
  char *domain, *dns_domain;       /* owned copies behind auth */
  char *krb5_keytab;               /* owned copy behind auth, or NULL */
  bool status;                     /* answer GET /kbsim/status */
  /* HTTPS: the config's PEM text (borrowed); NULL for plain HTTP. */
  const char *tls_cert_pem, *tls_key_pem;
  /* The config's tls_tap and its context (backend.h). */
  void (*tls_tap)(void *ctx, void *session, const struct sockaddr *peer,
                  uint16_t local_port);
  void *tls_tap_ctx;
  /* The last BACKEND_MAX_RECORDS connections, connection id at
   * (id - 1) % BACKEND_MAX_RECORDS; guarded by lock. */
  struct backend_conn_info *records;
  /* The RPC proxy's virtual connections (rpc.c); guarded by lock. */
  struct backend_rpc_vc *rpc_vcs;
};

/* MHD's per-request context: created on the first call of the access
 * handler, freed in the request-completed notification. */
struct backend_req {
  enum backend_route route;
  enum backend_body_state body_state;
  enum kb_auth auth;
  uint64_t conn;
  const char *conn_name; /* the connection's, which outlives the request */
  size_t received;       /* body bytes seen, kept or not */
  bool answered;         /* a response has been queued */
  bool ews_post;         /* counts towards stats.ews_posts */
  struct backend_gate_answer gate; /* PASS unless the gate said 401 */
  char identity[260];              /* who it is served as; "" anonymous */
  struct kb_buf body;
  struct backend_rpc_req *rpc; /* an RPC channel's state (rpc.c), or NULL */
};

/* ---- mhd.c: the libmicrohttpd glue --------------------------------------- */

/* Starts b's libmicrohttpd daemon on the listening socket fd (bound to
 * host:port, for the error line). Takes fd: the daemon owns it once it
 * runs, and it is closed here when the daemon cannot start. Returns 0, or
 * -1 with a line in err. */
int backend__daemon_start(struct backend *b, int fd, const char *host,
                          uint16_t port, char *err, size_t errlen);

/* Stops b's daemon, if it runs: every connection is closed and every
 * notification has run when it returns. */
void backend__daemon_stop(struct backend *b);

/* ---- rpc.c: the RPC proxy (/rpc/rpcproxy.dll) -----------------------------
 */

/* Gives req, an RPC channel's request (method RPC_IN_DATA or
 * RPC_OUT_DATA) that the gate passed, its channel state. Returns 0, or -1
 * out of memory. */
int backend__rpc_begin(struct backend *b, struct backend_req *req,
                       const char *method);

/* Takes len bytes of an RPC_IN_DATA body as they come, PDU by PDU:
 * CONN/B1 opens its virtual connection, request PDUs are echoed on OUT. */
void backend__rpc_in_data(struct backend_req *req, const char *data,
                          size_t len);

/* Answers a complete RPC_OUT_DATA (its body CONN/A1): a 200 announcing
 * 1 GB whose body streams what the virtual connection sends, counted now
 * and traced by backend__rpc_end, once it is known what it sent. Returns what
 * libmicrohttpd returns, or MHD_NO (the connection closes) when the body
 * is not a CONN/A1. */
enum MHD_Result backend__rpc_out_answer(struct backend *b,
                                        struct MHD_Connection *connection,
                                        struct backend_req *req);

/* Ends req's channel, if it has one (the request completed, its
 * connection closing): counts and traces it, with what it carried; an IN
 * channel ends its virtual connection and cuts OUT's answer. Frees the
 * channel state. */
void backend__rpc_end(struct backend_req *req);

/* Ends every virtual connection and resumes every suspended OUT answer,
 * so that the daemon can stop (libmicrohttpd must not stop with a
 * connection suspended). */
void backend__rpc_stop(struct backend *b);

/* ---- counters.c: what is counted, under b->lock -------------------------- */

/* Counts a new connection and opens its record. Returns its id (from 1). */
uint64_t backend__conn_opened(struct backend *b);

/* Writes the name the peer of connection id claimed into its record. */
void backend__conn_named(struct backend *b, uint64_t id, const char *name);

/* Connection id's first request reads the status: counts it as a status
 * reader instead of a connection, forgets its record and, when no later
 * connection took an id yet, gives its id back, so that the counters,
 * per_connection and the ids say only what the topology sent. */
void backend__conn_status_reader(struct backend *b, uint64_t id);

/* Marks the record of connection id closed, under its final name. */
void backend__conn_closed(struct backend *b, uint64_t id, const char *name);

/* The connection's last step: it no longer counts as open, and
 * backend_wait_idle wakes when none does. */
void backend__conn_done(struct backend *b);

/* Traces, on req's connection, its exchange when exchange is given, else a
 * NOTE (note, text). */
void backend__trace_req(const struct backend *b, const struct backend_req *req,
                        const struct kb_exchange *exchange, enum kb_note note,
                        const char *text);

/* Adds to the totals and the connection's record what reply says about
 * req. */
void backend__count(struct backend *b, const struct backend_req *req,
                    const struct soap_reply *reply);

#endif /* BACKEND_INT_H */
