/*
 * client_int.h - internal to client/: the structs every part of the client
 * shares, and the calls between its files.
 *
 *   client.c     names, process-wide initialisation, create and destroy
 *   session.c    the session: autodiscover, then the EWS POSTs; what makes
 *                an answer usable; what the user sees
 *   post.c       one POST and its strategies: Communicator's plain first
 *                request, NTLM re-authentication and Basic, Outlook's
 *   leg.c        one leg: a request's headers, one transfer and its answer
 *                booked into the POST's result
 *   perform.c    how a transfer waits: curl_easy_perform on a thread of
 *                its own, the fiber's epoll loop on a worker (kb_fiber.h)
 *   transport.c  libcurl: the easy handle, its callbacks, the sockets and
 *                the client's own keep-alive limits
 *   trace.c      what the client reports to its kb_trace: events, and each
 *                request recorded from what libcurl sent as an EXCHANGE
 *
 * A client runs on one thread (or one fiber, which never leaves its worker
 * thread); nothing here is shared between clients.
 */
#ifndef CLIENT_INT_H
#define CLIENT_INT_H

#include "client/client.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kb_buf.h"
#include "common/kb_env.h"

struct client__wmulti; /* perform.c */
struct kb_fiber;

#define CLIENT_AUTODISCOVER_PATH "/autodiscover/autodiscover.xml"
/* ie's URLs: the page it GETs and the EWS URL it POSTs to, in one
 * protection space (/EWS/). */
#define CLIENT_PAGE_PATH "/EWS/Services.wsdl"
#define CLIENT_EWS_PATH "/EWS/Exchange.asmx"
/* ie GETs the page this many times before its first POST, as client.c's
 * kind table tells people ("2 GETs of /EWS/Services.wsdl"). */
#define CLIENT_IE_PAGES 2u

/* Limits on what a peer can make us hold. */
#define CLIENT_MAX_BODY (1024u * 1024u)
#define CLIENT_MAX_AUTH_VALUE 8192u
#define CLIENT_MAX_SOCKETS 8u

/* Where the session is. */
enum client_phase {
  CLIENT_PHASE_AUTODISCOVER = 0, /* POST 0 not sent yet */
  CLIENT_PHASE_EWS,              /* autodiscover succeeded: EWS POSTs */
  CLIENT_PHASE_DONE              /* nothing more to send */
};

/* The authentication scheme Communicator learned from the listener's first
 * answer; kept for the whole session, across reconnects, as WinINet does. */
enum client_scheme {
  CLIENT_SCHEME_UNKNOWN = 0, /* nothing answered yet: send without */
  CLIENT_SCHEME_NONE,        /* the listener answered without asking */
  CLIENT_SCHEME_NTLM,        /* type 1 + Content-Length 0, then type 3 */
  CLIENT_SCHEME_BASIC,       /* credentials and body together */
  CLIENT_SCHEME_KERBEROS     /* Negotiate with a Kerberos ticket and the
                                body, one leg (kerberos.c) */
};

/* What a leg carries, for details and trace events. */
enum client_leg_kind {
  CLIENT_LEG_PLAIN = 0,     /* no Authorization, with the body */
  CLIENT_LEG_NEGOTIATE,     /* NTLM type 1, body held back */
  CLIENT_LEG_AUTHENTICATE,  /* NTLM type 3 with the body */
  CLIENT_LEG_BASIC,         /* Basic credentials with the body */
  CLIENT_LEG_OUTLOOK,       /* libcurl's own NTLM, as many requests as needed */
  CLIENT_LEG_AUTHENTICATED, /* no Authorization, on an authenticated
                              connection (ie's GETs, dotnet, java) */
  CLIENT_LEG_KERBEROS       /* Negotiate with a Kerberos ticket, with the
                               body */
};

/* A socket opened through client_open_socket. conn stays 0 until a request
 * is about to use it, i.e. until the TCP connection is established. */
struct client_socket {
  curl_socket_t fd;
  uint64_t conn;
  unsigned requests;           /* requests sent on it, for max_requests */
  char name[KB_CONN_NAME_LEN]; /* "client <id> conn <n>" when names are in use,
                                  else "" */
  uint16_t remote_port; /* where it connects, after the balancer's pick */
  uint16_t local_port;  /* its own port once connected; 0: not read yet */
  char local_ip[46];    /* its own address then (INET6_ADDRSTRLEN) */
};

/* One request and what came back for it. */
struct client_leg {
  int status;                     /* 0 until a status line arrived */
  struct kb_buf body;             /* response body, capped at CLIENT_MAX_BODY */
  enum kb_buf_result body_result; /* why the write callback stopped */
  char *ntlm_value;        /* first "NTLM <token>" WWW-Authenticate value */
  bool ntlm_value_too_big; /* an NTLM value above CLIENT_MAX_AUTH_VALUE */
  bool ntlm_bare;          /* "WWW-Authenticate: NTLM" without a token */
  bool basic_offered;      /* "WWW-Authenticate: Basic ..." */
  bool other_scheme;       /* a WWW-Authenticate of another scheme */
  char via[64]; /* the received-by of the answer's last Via entry, or "" */
};

/* One HTTP request libcurl sent, recorded from the debug and header
 * callbacks until it is complete, then emitted as an EXCHANGE. */
struct client_req {
  bool sent;     /* its header block went out */
  uint64_t conn; /* the connection it went out on */
  char conn_name[48];
  char method[16];
  char path[256]; /* truncated when longer */
  enum kb_auth req_auth;
  size_t req_body_len; /* its Content-Length */
  int status;          /* final status, 0 while none arrived */
  enum kb_auth resp_auth;
  size_t resp_written; /* body bytes handed to the write callback */
  size_t resp_data_in; /* body bytes received, ignored ones included */
};

struct client_rpc;

struct client {
  /* Copied configuration. */
  unsigned id;
  enum client_kind kind;
  bool connection_sharing; /* dotnet: see client_config */
  unsigned lead;           /* requests before the EWS POSTs: autodiscover,
                              or ie's GETs of the page */
  char *host;
  char *domain;
  char *user;
  char *password;
  char *krb5_ccache; /* NULL: no Kerberos (client_config) */
  char *workstation;
  char *email;
  char **contacts;  /* NULL-terminated */
  char *basic_auth; /* "Basic base64(DOMAIN\user:password)" */
  char *curl_user;  /* "DOMAIN\user", for Outlook's libcurl NTLM */
  unsigned ews_posts;
  enum ntlm_response_kind ntlm_kind;
  bool ntlm_mic;
  int64_t think_min_ms;
  int64_t think_max_ms;
  int64_t idle_timeout_ms;
  unsigned max_requests;
  struct client_balancer balancer;
  long timeout_ms;
  struct kb_clock clock;
  struct kb_rng rng;
  struct kb_trace trace;
  struct kb_names names;
  uint32_t source;         /* see client_config */
  uint64_t sockets_opened; /* sockets opened so far; names the next one */
  char origin[32];         /* "client <id>" */
  char *ca_pem;            /* HTTPS: the CA to verify against; NULL */
  /* HTTPS: the channel binding of the last certificate the listener
   * presented (client__tls_seen), and that certificate for people. */
  bool cbt_known;
  uint8_t cbt[16];
  char cbt_subject[160];
  char cbt_hash[120]; /* "SHA256 ab:cd:..." */

  /* Transport. */
  CURLU *base; /* config->base_url, parsed */
  char *autodiscover_url;
  char *page_url; /* ie: CLIENT_PAGE_PATH on base_url */
  char *ews_url;  /* ASUrl's path on base_url, once known */
  char *ews_path;
  CURL *easy; /* NULL only when re-creating it ran out of memory */
  /* On a fiber (perform.c): the worker's multi handle easy runs in, the
   * share handle that holds easy's connection cache, so that easy's
   * connections stay its own as in curl_easy_perform's, and the fiber to
   * wake when another finished c's transfer. NULL until the first
   * transfer, and off a fiber. */
  struct client__wmulti *wm;
  CURLSH *share;
  struct kb_fiber *fiber;
  struct client *wm_next; /* the next client with a transfer in wm */
  CURLcode wm_result;     /* of the transfer in wm, once wm_done */
  bool wm_done;
  char errbuf[CURL_ERROR_SIZE];
  bool out_of_fds; /* a socket could not be opened: EMFILE, ENFILE */
  /* An interim (1xx) answer's status line was traced and the empty line
   * that ends it not yet (client_debug). */
  bool interim_open;
  struct client_socket sockets[CLIENT_MAX_SOCKETS];
  size_t nsockets;
  uint64_t conn_count;      /* connections established so far */
  uint64_t current_conn;    /* the one the running request uses, 0 if none */
  char current_name[48];    /* its name; kept after the socket closes */
  struct client_leg *leg;   /* the leg being received, for the callbacks */
  int64_t last_response_ms; /* client time of the latest answer */

  /* The leg being sent (one curl_easy_perform). */
  struct client_req req;   /* the request in flight */
  unsigned leg_requests;   /* HTTP requests sent in this leg */
  unsigned leg_unanswered; /* ... of which got no answer */
  uint64_t leg_dead_conn;  /* the connection of the last of those */
  uint64_t leg_new_conn;   /* connection numbered in this leg, or 0 */
  int leg_first_status;    /* status of the first answered request */

  /* Session. */
  enum client_phase phase;
  enum client_scheme scheme;
  /* The connection a type 3 was answered 2xx on (ie, dotnet, java): it is
   * authenticated while it stays open. 0: none. */
  uint64_t authed_conn;
  struct client_rpc *rpc; /* outlook-anywhere's channels (rpc.c), or NULL */
  unsigned next_index;
  struct client_post_result *results; /* lead + ews_posts slots */
  size_t nresults;
  struct client_view view;
};

/* What every leg of one POST shares. */
struct client_post_ctx {
  enum client_post_kind kind;
  bool get; /* a GET (ie's page): no body, no Content-Length */
  const char *url;
  const char *path;
  const char *body; /* the POST body, held back on an NTLM type 1 */
  size_t len;
  struct client_post_result *res;
};

/* ---- session.c ------------------------------------------------------------
 */

/* Decides whether a 200 answering the POST of kind carries what the user
 * needs. Returns CLIENT_OK or CLIENT_PROTOCOL_ERROR with res->detail. */
enum client_outcome client__check_body(struct client *c,
                                       enum client_post_kind kind,
                                       const struct kb_buf *body,
                                       struct client_post_result *res);

/* ---- post.c ---------------------------------------------------------------
 */

/* Writes a one-line detail into res->detail. */
void client__detail(struct client_post_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Answers the type 2 in leg1's 401 (the handshake began with type1): the
 * client challenge is drawn as "client/<id>/post/<n>/client-challenge"
 * (n = res->index), the NTLMv2 timestamp read from the clock, and a MIC
 * added when ntlm_mic is set. Returns CLIENT_OK with *auth set to the
 * Authorization value "NTLM <type 3>" (malloc'd; the caller wipes and
 * frees it), or the outcome with res->detail and *auth NULL. */
enum client_outcome client__ntlm_answer(struct client *c,
                                        struct client_post_result *res,
                                        const struct ntlm_bytes *type1,
                                        const struct client_leg *leg1,
                                        char **auth);

/* Makes the POST of kind, all its legs as the client's kind and the
 * learned scheme require, and fills *res (index and kind already set). */
void client__post(struct client *c, enum client_post_kind kind,
                  struct client_post_result *res);

/* ---- leg.c ----------------------------------------------------------------
 */

/* Prepares an empty leg. */
void client__leg_init(struct client_leg *leg);

/* Frees what a leg holds. */
void client__leg_free(struct client_leg *leg);

/* Forgets what an earlier response in the same transfer left (an interim
 * 1xx, or a 401 libcurl answered by itself), so that the leg describes the
 * last response only. */
void client__leg_reset_response(struct client_leg *leg);

/* Sends one leg of the POST p and books it in p->res: the leg count, the
 * first leg's status and whether it opened a new connection, the last
 * status and connection. For Outlook one leg is all the requests libcurl's
 * NTLM made, and each counts. Returns curl's result; the caller owns leg. */
CURLcode client__run_leg(struct client *c, const struct client_post_ctx *p,
                         enum client_leg_kind which, const char *auth,
                         const char *body, size_t len, struct client_leg *leg);

/* Builds the request headers of a leg of c's kind into a libcurl list (the
 * caller frees it with curl_slist_free_all), in that client's order, with
 * auth (when not NULL) as the Authorization and len as the
 * Content-Length. get: a GET, without Content-Length. Returns NULL when
 * out of memory. */
struct curl_slist *client__headers(const struct client *c, bool get,
                                   const char *auth, uint64_t len);

/* Describes a transfer that failed in res->detail: a body past the cap is
 * the peer's fault (CLIENT_PROTOCOL_ERROR); anything else is curl's own
 * message (CLIENT_TRANSPORT_ERROR) with what to check. Returns the
 * outcome. */
enum client_outcome client__transfer_failed(const struct client *c, CURLcode rc,
                                            const struct client_leg *leg,
                                            struct client_post_result *res);

/* ---- transport.c ----------------------------------------------------------
 */

/* Sets the options that stay the same for the whole session, on a new
 * easy handle: the one of client_create and each one that replaces it.
 * Outlook gets libcurl's NTLM with the user's credentials; Communicator
 * gets no libcurl authentication at all. Returns 0, or -1 when libcurl
 * refuses one. */
int client__setup_easy(struct client *c);

/* Closes the session's connection for good by replacing the easy handle:
 * libcurl has no call that closes one cached connection, and a fresh handle
 * guarantees the old connection is never reused. The close goes through
 * client_close_socket, so CLOSE is traced. Returns 0, or -1 when a new
 * handle cannot be made (c->easy is then NULL and the next leg fails with a
 * transport error). */
int client__drop_connection(struct client *c);

/* Traces the empty line that ended an interim (1xx) answer's head when
 * libcurl did not hand it over (transport.c); nothing otherwise. */
void client__end_interim(struct client *c);

/* ---- perform.c --------------------------------------------------------------
 */

/* Runs c->easy's transfer to its end: curl_easy_perform when the caller is
 * not on a fiber, else in the multi handle of the fiber's worker, which
 * every client of that worker shares (each with a connection cache of its
 * own), yielding while it waits. Returns curl's result for the transfer. */
CURLcode client__perform(struct client *c);

/* A new multi handle whose sockets and timer, on a fiber, are the fiber's
 * (kb_fiber_watch, kb_fiber_timer); a plain one off a fiber. Returns NULL
 * when out of memory. The caller cleans it up with curl_multi_cleanup. */
CURLM *client__multi_new(void);

/* One round of multi's transfers without waiting: curl_multi_perform off
 * a fiber, curl_multi_socket_action for what the fiber found ready on it. */
CURLMcode client__multi_perform(CURLM *multi);

/* Waits up to ms milliseconds for multi: curl_multi_poll off a fiber, a
 * yield to the worker's loop on one. */
CURLMcode client__multi_poll(CURLM *multi, int ms);

/* Cleans up c->easy and, on a fiber, its connection cache, which closes
 * c->easy's connections (client_close_socket traces them), and lets go of
 * the worker's multi handle. c->easy is NULL after. */
void client__easy_cleanup(struct client *c);

/* After a transfer on HTTPS: reads the certificate the listener presented
 * (libcurl's certificate info; kept from the last handshake while a
 * connection is reused) into c's channel binding. Can't fail: without a
 * certificate the binding stays as it was. */
void client__tls_seen(struct client *c);

/* Closes the open connection before a POST when it has been idle, on the
 * client's timeline, longer than the client's idle_timeout_ms. */
void client__apply_idle_timeout(struct client *c, int64_t now);

/* Closes the connection the last request used once it carried
 * max_requests requests, unless hold: the leg was an NTLM type 1 answered
 * by a challenge, and NTLM authenticates the connection, so closing before
 * the type 3 would make the handshake impossible; the limit then applies
 * after the type 3. */
void client__apply_max_requests(struct client *c, bool hold);

/* Reads one response header line (len bytes, CRLF included) into leg when
 * it is a WWW-Authenticate: the first NTLM challenge (or one too big to
 * keep), a bare NTLM, Basic or another scheme offered, one challenge per
 * line as IIS and ISA send them. Returns true with *seen set to what the
 * value is, or false when the line is another header. */
bool client__leg_www_authenticate(struct client_leg *leg, const char *buffer,
                                  size_t len, enum kb_auth *seen);

/* Keeps in out (outlen bytes) the received-by of the last entry of a Via
 * value (len bytes): "1.1 ISA01, 1.1 ISA02 (comment)" gives "ISA02", the
 * listener nearest the client. An entry without one leaves out as it
 * was. */
void client__via(const char *v, size_t len, char *out, size_t outlen);

/* Numbers the socket whose local address is ip:port once a request is
 * about to go on it (the pre-request callback): a new connection claims
 * its name and is traced OPEN. Makes it the current connection and
 * returns its number, or 0 when it is none of the client's. */
uint64_t client__conn_ready(struct client *c, const char *ip, int port);

/* Returns the socket carrying connection conn, or NULL when it is closed
 * (or conn is 0). */
struct client_socket *client__socket_of(struct client *c, uint64_t conn);

/* Returns the number of the connection libcurl keeps open for the next
 * request (the newest established one), or 0 when there is none. */
uint64_t client__open_conn(const struct client *c);

/* Returns a URL string for base with its path replaced by path and no query
 * or fragment, malloc'd (caller frees), or NULL when out of memory or when
 * curl refuses the path. */
char *client__url_with_path(CURLU *base, const char *path);

/* ---- rpc.c: outlook-anywhere ---------------------------------------------
 */

/* Makes outlook-anywhere's next step, res->kind: the RPC channels (both
 * opened and authenticated, up to CONN/C2) or one RPC call (a request PDU
 * on IN, its echo awaited on OUT), and fills *res. After the last step, or
 * a step that failed, the channels are closed: IN by the client, then OUT
 * by Exchange in turn. */
void client__rpc_step(struct client *c, struct client_post_result *res);

/* Closes whatever outlook-anywhere still has open and frees it. Accepts a
 * client of any kind. */
void client__rpc_free(struct client *c);

/* ---- trace.c --------------------------------------------------------------
 */

/* Emits one event of kind with optional bytes on the client's hop and side. */
void client__trace(const struct client *c, enum kb_trace_kind kind,
                   uint64_t conn, const void *data, size_t len);

/* Emits one EXCHANGE event for ex, observed on conn (named name, may be
 * ""). */
void client__trace_exchange(const struct client *c, uint64_t conn,
                            const char *name, const struct kb_exchange *ex);

/* Emits the request in flight as an EXCHANGE once its header block went
 * out, and forgets it. A request that got no answer (its connection died
 * under it) is counted in leg_unanswered, since libcurl may send it again. */
void client__req_flush(struct client *c);

/* Starts recording a request from the header block libcurl is sending (len
 * bytes): its method, path, Authorization and Content-Length, and counts
 * it on its connection for max_requests. */
void client__req_start(struct client *c, const char *data, size_t len);

/* Starts the record of a new response to the request in flight (a status
 * line arrived, status 0 when it had none): what an earlier response in the
 * same transfer left is forgotten. */
void client__req_response(struct client *c, int status);

/* Records a WWW-Authenticate of the response, classified as seen: of
 * several, the EXCHANGE names the one that matters most to NTLM. */
void client__req_resp_auth(struct client *c, enum kb_auth seen);

/* post.c: a POST's outcome from its final status when no credentials are
 * at stake (what names the request in the detail), and Communicator's NTLM
 * re-authentication of one POST. */
enum client_outcome client__final_status(struct client *c,
                                         const struct client_post_ctx *p,
                                         struct client_leg *leg,
                                         const char *what);
enum client_outcome client__post_ntlm(struct client *c,
                                      const struct client_post_ctx *p);

/* kerberos.c: the POST p in one leg with the user's Kerberos ticket and
 * its body. Returns the POST's outcome. */
enum client_outcome client__post_kerberos(struct client *c,
                                          const struct client_post_ctx *p);

#endif /* CLIENT_INT_H */
