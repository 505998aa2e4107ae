/*
 * backend.h - Exchange 2007 (IIS 7) as the published web server: EWS at
 * /EWS/Exchange.asmx and Outlook Autodiscover at
 * /autodiscover/autodiscover.xml, served by libmicrohttpd.
 *
 *  POST /EWS/Exchange.asmx, empty body      -> 500 SOAP fault (the symptom)
 *  POST /EWS/Exchange.asmx, GetUserOofSettings or GetUserAvailability
 *                                           -> 200 SOAP response
 *  POST /EWS/Exchange.asmx, malformed XML or an operation it does not know
 *                                           -> 500 SOAP fault naming why
 *  POST /autodiscover/autodiscover.xml      -> 200 Outlook autodiscover
 *                                              response carrying the EWS URL
 *  unknown path -> 404; a known path with another method -> 405 + Allow.
 *
 * Every response carries the IIS headers of the support case (Server,
 * Cache-Control: private, X-AspNet-Version, X-Powered-By) and a Date taken
 * from the configured clock. By default (BACKEND_AUTH_NONE) the backend
 * trusts what reaches it, as Exchange does behind ISA, and takes the user
 * named by a forwarded type 3 or Basic header as the connection's identity;
 * with BACKEND_AUTH_INTEGRATED it authenticates NTLM itself per connection,
 * as IIS with Windows authentication does behind a pass-through proxy.
 * Either way it counts what reached it, per connection too, and with
 * status set it answers GET /kbsim/status (loopback peers only) with those
 * counters as JSON.
 */
#ifndef BACKEND_H
#define BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "common/kb_env.h"
#include "common/kb_users.h"

/* Who Exchange takes a request to come from. */
enum backend_auth {
  BACKEND_AUTH_NONE = 0,  /* trusts what reaches it (behind ISA) */
  BACKEND_AUTH_INTEGRATED /* NTLM per connection (IIS, Windows auth) */
};

/* "none" / "integrated". */
const char *backend_auth_name(enum backend_auth auth);

/* Extended Protection for Authentication (IIS's "extendedProtection
 * tokenChecking", Exchange's EPA): whether an NTLMv2 AUTHENTICATE must
 * carry the channel binding (MsvAvChannelBindings) of the TLS connection
 * it arrived on, the tls-server-end-point of Exchange's own certificate
 * (RFC 5929). Integrated authentication only. */
enum backend_epa {
  BACKEND_EPA_NONE = 0, /* not checked ("None", the default) */
  BACKEND_EPA_ALLOW,    /* a binding sent must match; none sent is
                           accepted ("Accept"/"Allow") */
  BACKEND_EPA_REQUIRE   /* a binding must be sent and match ("Require") */
};

/* "none" / "allow" / "require". */
const char *backend_epa_name(enum backend_epa epa);

/* Parses an EPA name; returns 0, or -1 when name is none of them. */
int backend_epa_parse(const char *name, enum backend_epa *out);

/* Parses an auth name; returns 0, or -1 when name is neither. */
int backend_auth_parse(const char *name, enum backend_auth *out);

struct backend_config {
  const char *bind_host; /* numeric address, "127.0.0.1" when NULL */
  uint16_t port;         /* 0 picks a free port; read it with backend_port */
  /* Public URL written into autodiscover responses as ASUrl/OOFUrl; NULL
   * means "https://autodiscover.fabrikam.com/EWS/Exchange.asmx". */
  const char *ews_url;
  size_t max_body; /* request bodies above this get 413; 0 = 1 MiB */
  /* The door (kb_guard.h): heads within head_timeout_ms (0 = 10 s), at
   * most max_connections connections (0 = 1088: the listener's default
   * and room for direct clients). */
  unsigned head_timeout_ms;
  unsigned max_connections;
  struct kb_clock clock; /* for Date headers and response timestamps */
  struct kb_trace trace; /* EXCHANGE/OPEN/CLOSE events, hop PROXY_BACKEND */
  /* When set, each connection takes the name its peer claimed (the
   * proxy's "<client connection> upstream <n>") for its trace events. */
  struct kb_names names;
  enum backend_auth auth;       /* none by default */
  const struct kb_users *users; /* integrated: borrowed; must outlive it */
  const char *domain;     /* NetBIOS domain of type 2s; "FABRIKAM" if NULL */
  const char *dns_domain; /* lowercase(domain) + ".com" when NULL */
  struct kb_rng rng;      /* integrated: server challenges */
  /* Answer GET /kbsim/status with backend_status_json to loopback peers
   * (others get 404); such requests are not counted. */
  bool status;
  /* HTTPS: Exchange's certificate and its private key as PEM text
   * (borrowed; must outlive the backend). NULL (the default): plain
   * HTTP. */
  const char *tls_cert_pem;
  const char *tls_key_pem;
  /* HTTPS: called with each accepted connection's GnuTLS session
   * (gnutls_session_t) before its handshake, the peer's address and the
   * listening port, so that the caller can record the TLS records that
   * cross the socket (sim/tls_tap.h, for evidence); NULL: nothing. */
  void (*tls_tap)(void *ctx, void *session, const struct sockaddr *peer,
                  uint16_t local_port);
  void *tls_tap_ctx;
  /* Integrated only: Extended Protection, checked against tls_cert_pem's
   * tls-server-end-point (no certificate: no channel, so any binding a
   * client sends is one Exchange cannot match). Default none. */
  enum backend_epa extended_protection;
  /* integrated: the keytab (a path) of HTTP/<published name>, so that IIS
   * accepts Negotiate with a Kerberos ticket (MIT's GSS-API,
   * common/kb_gss.h) and keeps the connection authenticated as its
   * principal, as IIS 7 does by default (authPersistNonNTLM). NULL: NTLM
   * only. Copied. */
  const char *krb5_keytab;
};

/* What the backend has received since it started. All counts are
 * consistent with each other at the moment of the call. */
struct backend_stats {
  uint64_t connections;     /* TCP connections accepted, status readers
                               aside */
  uint64_t status_readers;  /* connections whose first request read GET
                               /kbsim/status: the observers, not the
                               topology; not in connections, not recorded
                               per connection */
  uint64_t requests;        /* requests answered, all paths */
  uint64_t ews_posts;       /* POSTs to /EWS/Exchange.asmx */
  uint64_t empty_posts;     /* ... of which had an empty body: the bug */
  uint64_t oof_ok;          /* GetUserOofSettings answered 200 */
  uint64_t availability_ok; /* GetUserAvailability answered 200 */
  uint64_t soap_faults;     /* 500 SOAP faults, empty bodies included */
  uint64_t autodiscover_ok; /* autodiscover answered 200 */
  uint64_t not_found;       /* 404 */
  uint64_t bad_method;      /* 405 */
  uint64_t too_large;       /* 413 */
  uint64_t challenges;      /* integrated: 401 with a type 2 */
  uint64_t refused;         /* integrated: 401 offering NTLM */
  /* integrated: type 3s with the right password refused by Extended
   * Protection (a channel binding missing or not this channel's). */
  uint64_t channel_binding_refused;
  /* ... and the first one's reason for people (the binding the client
   * sent against the one Exchange expected); "" when none. */
  char channel_binding_why[512];
  /* integrated: type 3s that found no challenge pending on their
   * connection (their type 1 went on another one: a split handshake). */
  uint64_t type3_without_challenge;
  /* Requests that came with a body and no identity: refused by the gate
   * (integrated), or served anonymously (none). A type 1 forwarded with
   * its body, or a body sent before the handshake's end, shows here. */
  uint64_t unauthenticated_bodies;
  /* Answers holding a mailbox's data (OOF, autodiscover) given to an
   * identity that is not the mailbox's owner: identities mixed. */
  uint64_t mismatches;
};

/* One connection as Exchange saw it; the last BACKEND_MAX_RECORDS are
 * kept, closed ones included. */
#define BACKEND_MAX_RECORDS 1024u
#define BACKEND_MAX_IDENTITIES 4u
#define BACKEND_MAX_WWW_AUTH 4u
struct backend_conn_info {
  uint64_t id;       /* from 1, in accept order */
  char name[96];     /* the name its peer claimed (kb_names), or "" */
  bool open;         /* not closed yet */
  uint64_t requests; /* answered, 401s included */
  uint64_t empty_posts;
  uint64_t mismatches;
  /* As the totals of struct backend_stats, on this connection. */
  uint64_t challenges;
  uint64_t type3_without_challenge;
  uint64_t unauthenticated_bodies;
  /* The distinct WWW-Authenticate values it sent, in order: "Negotiate",
   * "NTLM", "NTLM <type 2>". At most BACKEND_MAX_WWW_AUTH, then
   * www_authenticate_dropped. */
  unsigned www_authenticate_count;
  unsigned www_authenticate_dropped;
  char www_authenticate[BACKEND_MAX_WWW_AUTH][1024];
  /* Distinct identities requests were served as, in order; "" is
   * anonymous. At most BACKEND_MAX_IDENTITIES, then identities_dropped. */
  unsigned identities_count;
  unsigned identities_dropped;
  char identities[BACKEND_MAX_IDENTITIES][260];
  char last_mismatch[640]; /* "bob@fabrikam.com served as FABRIKAM\alice" */
  /* The same, typed: the mailbox answered ("bob@fabrikam.com"), the
   * identity it was answered to ("FABRIKAM\alice") and which request on
   * the connection it was (from 1); "", "", 0 before any. */
  char last_mismatch_mailbox[320];
  char last_mismatch_identity[260];
  uint64_t last_mismatch_request;
};

struct backend;

/* Starts the server on its own threads. On success *out owns it; release
 * with backend_stop. Returns 0, or -1 with a one-line reason in err (e.g.
 * "cannot listen on 127.0.0.1:80: Permission denied; pick another port or
 * 0"). */
int backend_start(const struct backend_config *config, struct backend **out,
                  char *err, size_t errlen);

/* The port actually listened on. */
uint16_t backend_port(const struct backend *backend);

/* How many connections Exchange holds at most. */
unsigned backend_capacity(const struct backend *backend);

/* Copies the counters into *stats. Safe from any thread. */
void backend_stats(const struct backend *backend, struct backend_stats *stats);

/* Copies the records of at most max connections, oldest first, into out
 * and returns how many it copied. Safe from any thread. */
size_t backend_connections(const struct backend *backend,
                           struct backend_conn_info *out, size_t max);

/* The status document: the counters of struct backend_stats by their
 * names ("requests", "empty_posts", ..., "type3_without_challenge",
 * "unauthenticated_bodies") and "per_connection", an array of {"id",
 * "name", "open", "requests", "empty_posts", "mismatches", "challenges",
 * "type3_without_challenge", "unauthenticated_bodies", "last_mismatch",
 * "last_mismatch_mailbox", "last_mismatch_identity",
 * "last_mismatch_request", "identities": [...], "identities_dropped",
 * "www_authenticate": [...], "www_authenticate_dropped"}, as a malloc'd
 * NUL-terminated JSON text the caller frees; NULL when out of memory. Safe
 * from any thread. */
char *backend_status_json(const struct backend *backend);

/* Waits until Exchange holds no connection (each closed and its CLOSE
 * traced) or timeout_ms of real time have passed. Returns 0 when idle, -1
 * when connections are still open. Safe from any thread. */
int backend_wait_idle(struct backend *backend, unsigned timeout_ms);

/* Sets the counters back to 0, the connection ids back to 1 and forgets
 * the connection records, as after backend_start, for an Exchange reused
 * for a new run. Call it only while idle (backend_wait_idle returned 0, no
 * client connecting). Safe from any thread. */
void backend_reset(struct backend *backend);

/* Stops the server, closing its connections, and frees it. Accepts NULL. */
void backend_stop(struct backend *backend);

#endif /* BACKEND_H */
