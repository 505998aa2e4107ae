/*
 * client.h - Office Communicator 2007's Outlook integration, over libcurl.
 *
 * A session runs on one keep-alive connection (one curl easy handle) while
 * the listener and the client's own keep-alive limits allow: the
 * autodiscover POST, then EWS POSTs alternating GetUserOofSettings (out of
 * office: part of presence) and GetUserAvailability (free/busy for the
 * contacts: scheduling information). Like Communicator (WinINet), the first
 * request goes without credentials and the 401 names the scheme; with NTLM
 * every POST then re-authenticates: a leg carries "Authorization: NTLM
 * <type 1>" and "Content-Length: 0", the body held back; on 401 + type 2
 * the next leg carries the type 3 and the body. Headers and their order
 * follow the support case. client_kind selects other clients.
 *
 * The client keeps what the user sees: the "Outlook Integration Error"
 * notification, the log line "Communicator has failed to retrieve
 * autodiscovery information", and whether presence and scheduling
 * information are available.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/kb_env.h"
#include "ntlm/ntlm.h"

/* How the client authenticates and uses connections. */
enum client_kind {
  /* Office Communicator 2007 (WinINet): the first request goes without
   * credentials; the 401 names the scheme; from then on it re-authenticates
   * every POST - NTLM: type 1 with Content-Length 0, the body held back for
   * the type 3; Basic: credentials and body together. Triggers the bug. */
  CLIENT_KIND_COMMUNICATOR = 0,
  /* Outlook: libcurl's own CURLAUTH_NTLM, which authenticates a connection
   * once and sends later requests on it without Authorization. Never
   * triggers the bug. Its NTLM nonces are libcurl's, not seeded. */
  CLIENT_KIND_OUTLOOK,
  /* Communicator's handshake on a new connection for every POST (both legs
   * share it), closed afterwards: never on an authenticated connection. */
  CLIENT_KIND_ONE_SHOT,
  /* Internet Explorer (WinINet), the client KB 942638 was written for: a
   * browser session in the EWS folder, GET /EWS/Services.wsdl twice, then
   * the EWS POSTs. WinINet sends a POST with Content-Length 0 and a type 1
   * whenever it expects a challenge in that protection space, the body only
   * after the handshake (IEInternals, "Challenge-Response Authentication
   * and Zero-Length Posts", 2010); GETs on the authenticated connection
   * carry no Authorization. Triggers the bug on its POSTs. */
  CLIENT_KIND_IE,
  /* .NET's HttpWebRequest with Windows credentials: every request starts
   * without credentials, with Expect: 100-continue on POSTs
   * (ServicePointManager.Expect100Continue, true by default) and its body,
   * which a listener refuses at once (401, Connection: close); on a new
   * connection the type 1 goes with Content-Length 0 and Expect, the type
   * 3 with Expect and the body. After an authenticated request the
   * connection is closed unless connection_sharing
   * (UnsafeAuthenticatedConnectionSharing) is set; with it, later POSTs
   * use the authenticated connection without re-authenticating
   * (learn.microsoft.com, HttpWebRequest.
   * UnsafeAuthenticatedConnectionSharing). Never triggers the bug. */
  CLIENT_KIND_DOTNET,
  /* Java (Apache HttpClient 4 / HttpURLConnection): the first POST without
   * credentials, with Expect: 100-continue and its body; the 401 closes
   * it, and the handshake runs on a new connection, each leg with Expect
   * and the body (its entities are repeatable); later POSTs on the
   * authenticated connection without Authorization, as HttpClient's
   * connection-based NTLM scheme keeps it. Assumed from HttpClient's
   * documented NTLM support and Expect handling, not from a capture. Never
   * triggers the bug. */
  CLIENT_KIND_JAVA,
  /* Outlook Anywhere (Outlook 2007's RPC over HTTP v2, MS-RPCH): two
   * long-lived channels to /rpc/rpcproxy.dll?<server>:6004, each on a
   * connection of its own and each authenticated with NTLM (a plain
   * request, the type 1 with Content-Length 0, the type 3 with the
   * channel's announced length): RPC_OUT_DATA carrying CONN/A1 (76 bytes,
   * MS-RPCH 2.2.4.2), then RPC_IN_DATA announcing 1 GB (MS-RPCH 2.1.2.1.1:
   * the IN channel's Content-Length is its lifetime, not its body) and
   * sending CONN/B1 (2.2.4.5), its body written gradually through
   * libcurl's read callback. Exchange answers CONN/A3 and CONN/C2 on the
   * OUT channel (2.2.4.4, 2.2.4.9); each later step sends an RPC request
   * PDU on IN and waits for its echo on OUT; the session ends by closing
   * IN, after which Exchange closes OUT. Never re-authenticates a
   * connection: does not trigger KB 942638. Assumed, not from a capture:
   * the plain first request of each channel (WinHTTP learns the scheme
   * anew per connection), the header order and the request PDUs (opnum
   * 0 with a fixed stub, no bind: the RPC server is a minimal echo). */
  CLIENT_KIND_OUTLOOK_ANYWHERE
};

/* The names client_kind_parse reads, for messages: "communicator, outlook,
 * one-shot, ie, dotnet, java or outlook-anywhere". */
#define CLIENT_KIND_NAMES                                                      \
  "communicator, outlook, one-shot, ie, dotnet, java or outlook-anywhere"

/* "communicator", "outlook", "one-shot", "ie", "dotnet", "java",
 * "outlook-anywhere". */
const char *client_kind_name(enum client_kind kind);

/* What people call the program a kind plays, for evidence: "Communicator"
 * (communicator and one-shot), "Outlook", "Internet Explorer", ".NET
 * client", "Java client", "Outlook Anywhere". */
const char *client_kind_label(enum client_kind kind);

/* Parses a kind name; returns 0, or -1 when name is none of them. */
int client_kind_parse(const char *name, enum client_kind *out);

/* A kind's names and what it does to a listener, for people. */
struct client_kind_info {
  enum client_kind kind;
  const char *name;       /* client_kind_name's */
  const char *label;      /* client_kind_label's */
  const char *product;    /* what it plays: "Office Communicator 2007" */
  const char *pattern;    /* how it authenticates its POSTs, in sentences */
  const char *lead;       /* what a session sends before its EWS POSTs */
  const char *call;       /* what --posts counts: "EWS POST", "RPC call" */
  bool holds_body;        /* re-authenticates a POST on an authenticated
                             connection with a body-less type 1: an ISA as
                             shipped forwards it (KB 942638) */
  const char *symptom;    /* what its user sees when an EWS POST fails: "the
                             Outlook Integration Error" */
  bool notifies;          /* Communicator's window: the notification, the
                             log line, presence and scheduling (client_view)
                             are what its user sees */
  const char *user_agent; /* its User-Agent (assumed: client/README.md) */
};

/* The row of kind, or NULL for a value outside the enum. */
const struct client_kind_info *client_kind_info(enum client_kind kind);

/* The first kind that sends User-Agent ua (len bytes), or NULL: who a
 * live connection came from, when it was one of ours. */
const struct client_kind_info *client_kind_by_user_agent(const char *ua,
                                                         size_t len);

/* Picks where a new TCP connection goes, like a load balancer in front of
 * an ISA array (Windows NLB: per connection, no extra hop). Called before
 * each connect with the connection's name ("client 3 conn 2"); writes the
 * member's address (same family as given) into *addr and returns 0, or
 * returns -1 to keep the address from base_url. */
struct client_balancer {
  int (*pick)(void *ctx, const char *conn_name, struct sockaddr *addr,
              unsigned addrlen);
  void *ctx;
};

struct client_config {
  unsigned id;          /* names the client in traces: "client <id>" */
  const char *base_url; /* listener, e.g. "http://127.0.0.1:8080" */
  const char *host;     /* Host header; "autodiscover.fabrikam.com" if NULL */
  const char *domain;   /* credentials */
  const char *user;
  const char *password;
  const char *workstation;     /* "COMMUNICATOR" when NULL */
  const char *email;           /* "<user>@fabrikam.com" when NULL */
  const char *const *contacts; /* free/busy targets; NULL-terminated; two
                                  defaults when NULL */
  unsigned ews_posts;          /* EWS POSTs after autodiscover; 0 = 2 */
  enum ntlm_response_kind ntlm_kind;
  /* NTLMv2 only: send a MIC over the three messages (MsvAvFlags 0x2), as
   * Windows Vista and later do; Communicator 2007 on XP sends none. */
  bool ntlm_mic;
  enum client_kind kind; /* communicator by default */
  /* dotnet only: UnsafeAuthenticatedConnectionSharing - keep the
   * authenticated connection for the next POSTs instead of closing it
   * after each (the default, false). */
  bool connection_sharing;
  /* Think time before each EWS POST, drawn uniformly from [min, max] ms
   * with kb_rng_fill(rng, "client/<id>/post/<n>/think") and spent on the
   * client's simulated timeline (kb_clock_advance with "client <id>"). */
  int64_t think_min_ms;
  int64_t think_max_ms;
  /* The client's own keep-alive limits: a connection idle longer than
   * idle_timeout_ms on the client's timeline is closed before the next
   * POST; one that carried max_requests requests is closed after the
   * last. 0 = no limit. */
  int64_t idle_timeout_ms;
  unsigned max_requests;
  struct client_balancer balancer; /* optional; see above */
  /* communicator and one-shot: a user inside the network, signed in to the
   * domain. The credential cache (a path, or "FILE:path") holding the
   * user's Kerberos tickets (kinit's); every POST then goes in one leg
   * with "Authorization: Negotiate <AP-REQ>" and its body, from the first
   * request of every connection on (pre-authenticated, as Windows does for
   * an intranet site it knows wants Negotiate), the ticket made by MIT's
   * gss_init_sec_context for HTTP@<host> (client/kerberos.c). NULL, the
   * default: an external user, NTLM. Copied. */
  const char *krb5_ccache;
  long timeout_ms;       /* per request; 0 = 10000 */
  struct kb_clock clock; /* NTLMv2 timestamps */
  struct kb_rng rng;     /* client challenges */
  struct kb_trace trace; /* hop CLIENT_PROXY, side CLIENT */
  /* When set, each new connection is claimed as "client <id> conn <n>"
   * once connected (kb_names), so the listener knows who it is. */
  struct kb_names names;
  /* IPv4 loopback address (host order) its connections leave from, bound
   * before connect() with the port left to it (kb_net_bind_source); 0:
   * the kernel's choice. */
  uint32_t source;
  /* HTTPS (an https:// base_url): the listener's certificate is verified
   * against this CA, PEM text (copied); NULL: the system's store. On
   * HTTPS, Communicator's NTLMv2 type 3 carries the channel binding
   * (MsvAvChannelBindings) of the certificate it saw, RFC 5929's
   * tls-server-end-point, as Windows 7 and later write it for Extended
   * Protection, and a NOTE (KB_NOTE_CHANNEL_BINDING) says which. Outlook's
   * libcurl NTLM sends none. */
  const char *ca_pem;
};

enum client_post_kind {
  CLIENT_POST_AUTODISCOVER = 0,
  CLIENT_POST_OOF,          /* GetUserOofSettings */
  CLIENT_POST_AVAILABILITY, /* GetUserAvailability */
  CLIENT_POST_PAGE,         /* ie: GET /EWS/Services.wsdl, a page */
  /* outlook-anywhere: both RPC channels opened (each a plain request, the
   * type 1 and the type 3 with its CONN PDU) up to CONN/C2 */
  CLIENT_POST_RPC_CHANNELS,
  CLIENT_POST_RPC_CALL /* outlook-anywhere: a request PDU on IN, its echo
                          on OUT */
};

/* "autodiscover", "GetUserOofSettings", "GetUserAvailability",
 * "Services.wsdl", "RPC channels", "RPC call". */
const char *client_post_kind_name(enum client_post_kind kind);

/* How a step of kind is named in one-line listings: "GET" (ie's page),
 * "RPC" (outlook-anywhere's steps, RPC_OUT_DATA and RPC_IN_DATA), else
 * "POST". */
const char *client_post_kind_verb(enum client_post_kind kind);

enum client_outcome {
  CLIENT_OK = 0,         /* 200 and a response it could use */
  CLIENT_SERVER_ERROR,   /* 5xx from Exchange (a SOAP fault) */
  CLIENT_AUTH_FAILED,    /* 401 after the type 3 */
  CLIENT_PROTOCOL_ERROR, /* unexpected status, bad challenge or body */
  CLIENT_TRANSPORT_ERROR /* connect/send/receive failed */
};

/* "ok", "server-error", "auth-failed", "protocol-error", "transport-error". */
const char *client_outcome_name(enum client_outcome outcome);

/* One POST of the session, all its legs. */
struct client_post_result {
  unsigned index; /* 0 = autodiscover */
  enum client_post_kind kind;
  enum client_outcome outcome;
  int leg1_status;     /* status answering the first leg */
  int final_status;    /* status of the last leg sent */
  unsigned legs;       /* legs sent: 1 to 3 (Outlook: HTTP requests
                          libcurl made; outlook-anywhere's channels: 6) */
  uint64_t connection; /* client-local connection number, from 1 */
  int64_t think_ms;    /* think time spent before this POST */
  int64_t at_ms;       /* simulated time the POST started */
  bool new_connection; /* its first leg opened a new connection */
  /* The harness failed, not the listener: nothing listening, our own
   * timeout, no descriptor left (verdict.h: infrastructure). */
  bool harness_failed;
  char detail[160]; /* one line: why it failed, or "" */
  /* Which listener answered: the received-by name of the last Via entry
   * of the POST's last answer that carried one ("Via: 1.1 ISA02" gives
   * "ISA02": the member of an array that served it, behind a balancer).
   * "" when no answer did (answers the listener wrote itself, a 401, carry
   * none; nor do listeners that add no Via). */
  char served_by[64];
};

/* What the user sees. */
struct client_view {
  bool integration_error; /* "Outlook Integration Error" notification */
  bool autodiscovery_failed_logged; /* the log line was written */
  bool presence_available;          /* OOF information retrieved */
  bool scheduling_available;        /* free/busy information retrieved */
  bool autodiscover_ok;
  char ews_url[256]; /* from autodiscover, "" until known (ie: always "",
                        it does no autodiscover) */
  unsigned posts_done, posts_ok, posts_failed;
  unsigned connections; /* TCP connections the session opened */
};

/* The notification and log texts, for printing and for tests. */
#define CLIENT_NOTIFICATION_TEXT "Outlook Integration Error"
#define CLIENT_LOG_TEXT                                                        \
  "Communicator has failed to retrieve autodiscovery information"

struct client;

/* Creates a client; nothing is sent yet. Strings in config are copied.
 * Returns 0 with *out owning the client (release with client_destroy), or
 * -1 with a one-line reason in err. */
int client_create(const struct client_config *config, struct client **out,
                  char *err, size_t errlen);

/* Sends the next POST of the session (autodiscover first; ie: the two
 * GETs of the page first) and fills *res.
 * Returns 1 when a POST was made, 0 when the session is complete (res
 * untouched). Blocking. Not thread-safe per client; clients are
 * independent of each other. */
int client_step(struct client *client, struct client_post_result *res);

/* Runs every remaining POST. Returns the number of POSTs that failed. */
unsigned client_run_session(struct client *client);

/* Copies the user-visible state into *view. */
void client_view(const struct client *client, struct client_view *view);

/* Number of POSTs done so far and the result of the i-th (0-based); NULL
 * when i is out of range. The pointer is valid until the next step. */
size_t client_results_count(const struct client *client);
const struct client_post_result *client_result(const struct client *client,
                                               size_t i);

/* Closes the connection and frees the client. Accepts NULL. */
void client_destroy(struct client *client);

#endif /* CLIENT_H */
