/*
 * proxy.h - the ISA Server 2006 web listener publishing Exchange: HTTP
 * authentication with Integrated (NTLM), Basic or no credentials in front
 * (libmicrohttpd), a reverse proxy to the backend behind (libcurl).
 *
 * Authentication state belongs to the client's TCP connection and dies with
 * it. Each client connection gets its own upstream connection to the
 * backend, so identities never mix (unless a defect is asked for: see
 * proxy_config.defects).
 *
 * How a request is handled on an integrated listener (the default), by the
 * connection's state and its header:
 *  - not authenticated, no Authorization  -> 401 offering
 *      "WWW-Authenticate: Negotiate" and "WWW-Authenticate: NTLM"
 *  - Authorization: NTLM <type 1> (or Negotiate with a raw NTLMSSP token)
 *      -> 401 with a fresh type 2 in the client's scheme ...
 *      ... unless the connection is already authenticated and the policy is
 *      PROXY_POLICY_PER_CONNECTION (ISA 2006 as shipped): then the request
 *      is forwarded as it is, on the existing context - body-less, since the
 *      client held the body back for the handshake. This is KB 942638's bug.
 *  - Authorization: NTLM <type 3> after a type 2 on this connection
 *      -> verified against the user store; valid: the connection is
 *      authenticated and this request (with its body) is forwarded; invalid
 *      or unknown user: 401 and nothing reaches the backend.
 *  - authenticated connection, no Authorization -> forwarded.
 *  - Negotiate with a SPNEGO/Kerberos token -> without a keytab, 401 with
 *      the offer (no Kerberos here; the client falls back to NTLM),
 *      nothing forwarded; with one (krb5_keytab), the ticket verified in
 *      one leg by MIT's GSS-API and the request forwarded with its body.
 * A Basic listener wants "Authorization: Basic" on every request (no
 * connection state, so no bug); a listener with no authentication forwards
 * everything - in front of an Exchange that authenticates NTLM itself, it
 * is the pass-through listener, each client connection pinned to an
 * upstream connection of its own. Forwarded requests keep method, path,
 * headers (Authorization included) and body; a Via header is added both
 * ways. Backend unreachable -> 502. proxy/README.md has the full table.
 */
#ifndef PROXY_H
#define PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "common/kb_defect.h"
#include "common/kb_env.h"
#include "common/kb_users.h"

enum proxy_policy {
  PROXY_POLICY_PER_CONNECTION = 0, /* ISA 2006 as shipped: the bug */
  PROXY_POLICY_PER_REQUEST = 1     /* KB 942638 applied: the fix */
};

/* "per-connection" / "per-request". */
const char *proxy_policy_name(enum proxy_policy policy);

/* Parses a policy name; returns 0, or -1 when name is neither. */
int proxy_policy_parse(const char *name, enum proxy_policy *out);

/* How the web listener authenticates clients. */
enum proxy_auth {
  PROXY_AUTH_INTEGRATED = 0, /* NTLM, offered as "Negotiate" and "NTLM";
                                raw NTLMSSP accepted inside Negotiate */
  PROXY_AUTH_BASIC,          /* credentials on every request: no bug */
  PROXY_AUTH_NONE            /* anonymous: everything is forwarded */
};

/* "integrated", "basic", "none". */
const char *proxy_auth_name(enum proxy_auth auth);

/* Parses an auth name; returns 0, or -1 when name is none of them. */
int proxy_auth_parse(const char *name, enum proxy_auth *out);

/* The bit of defect d in proxy_config.defects. */
#define PROXY_DEFECT(d) (1u << (unsigned)(d))

/* Why the listener cannot have defect d yet - one line saying what it
 * needs ("needs HTTP/2 over TLS ...") - or NULL when it can. Can't fail; safe
 * from any thread. */
const char *proxy_defect_unavailable(enum kb_defect d);

struct proxy_config {
  const char *bind_host; /* numeric address, "127.0.0.1" when NULL */
  uint16_t port;         /* 0 picks a free port; read it with proxy_port */
  /* Base URL of the published server, e.g. "http://127.0.0.1:8081". */
  const char *backend_url;
  enum proxy_policy policy;     /* initial policy; see proxy_set_policy */
  const struct kb_users *users; /* borrowed; must outlive the proxy */
  enum proxy_auth auth;         /* listener authentication; integrated */
  /* Keep-alive limits of the listener. idle_timeout_ms is measured on the
   * connection's simulated timeline (kb_clock with the connection's name):
   * a request arriving after the connection has been idle longer finds it
   * closed, as the listener would have closed it in the meantime - the
   * proxy closes it without answering and forwards nothing, and the client
   * reconnects. max_requests: after that many answers on one connection
   * the answer carries "Connection: close". 0 = no limit for both. */
  int64_t idle_timeout_ms;
  unsigned max_requests;
  /* Seconds of real time a connection may stay silent before
   * libmicrohttpd drops it (slow clients); 0 = 30. */
  unsigned connection_timeout_s;
  /* The door (kb_guard.h): a request's head must arrive within
   * head_timeout_ms of its first chance (0 = 10 s), its body within 30 s;
   * at most max_connections client connections (0 = 1024), at most
   * max_per_address from one address (0 = no cap below
   * max_connections). Exchange must be able to take max_connections
   * upstream connections (sim/ derives both from one setting). */
  unsigned head_timeout_ms;
  unsigned max_connections;
  unsigned max_per_address;
  const char *name;   /* for Via and logs; "ISA01" when NULL */
  const char *domain; /* NetBIOS domain in type 2; "FABRIKAM" when NULL */
  /* DNS domain in type 2's target info and the suffix of the UPNs that
   * name a user of domain; lowercase(domain) + ".com" when NULL. The
   * listener's DNS name is lowercase(name) + "." + dns_domain. */
  const char *dns_domain;
  size_t max_body;          /* request/response bodies above this: 413/502;
                               0 = 1 MiB */
  long upstream_timeout_ms; /* per forwarded request; 0 = 30000 */
  /* Event loop threads, each accepting from the listening socket: 0 = 1;
   * at most 4 (more is taken as 4). More loops let the listener use more
   * cores when they are idle; on 2 cores shared with the clients and the
   * backend one loop costs less CPU per request and has the lower p99
   * (bench/README.md). */
  unsigned loops;
  struct kb_clock clock; /* NTLM timestamps */
  struct kb_rng rng;     /* server challenges */
  struct kb_trace trace; /* both hops: PROXY_BACKEND bytes, decisions */
  /* When set, a client connection takes the name its peer claimed (at
   * its first request), and each upstream connection is claimed as
   * "<client connection name> upstream <n>" once connected. Challenges are then
   * drawn under that name, so they do not depend on accept order. */
  struct kb_names names;
  /* What the listener gets wrong on purpose (serve --defect), a bit set of
   * PROXY_DEFECT(KB_DEFECT_...); 0, the default, is none. The defects of a
   * listener that passes NTLM through (handshake-split, mixes-identities,
   * pinned-recycled, mixes-after-single-leg, challenge-rewritten) need auth
   * PROXY_AUTH_NONE, those of an authenticating one (body-less-forward,
   * expect-hang, body-on-type1) PROXY_AUTH_INTEGRATED; body-less-forward holds
   * whatever the policy. proxy/README.md, "Defects", says what each changes;
   * proxy_start refuses a defect the listener cannot have. */
  unsigned defects;
  /* HTTPS toward the clients (ISA's web listener with a certificate):
   * the certificate the listener presents and its private key, as PEM
   * text (borrowed; must outlive the proxy). NULL (the default): plain
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
  /* An https:// backend_url (TLS bridging) is verified against this CA,
   * PEM text (borrowed; must outlive the proxy); NULL: the system's
   * store. Unused for http://. */
  const char *upstream_ca_pem;
  /* integrated: the keytab (a path) of HTTP/<published name>, for
   * Negotiate with Kerberos through MIT's GSS-API (common/kb_gss.h): a
   * ticket is accepted in one leg, with the request's body. NULL, the
   * default: no Kerberos, a Kerberos token is answered with the offer (the
   * client falls back to NTLM). Copied. */
  const char *krb5_keytab;
};

/* Counters since start, consistent with each other at the moment of the
 * call. */
struct proxy_stats {
  uint64_t connections;           /* client TCP connections accepted */
  uint64_t requests;              /* client requests answered */
  uint64_t challenges;            /* 401 with a type 2 sent */
  uint64_t auth_ok;               /* type 3 verified */
  uint64_t auth_failed;           /* type 3 refused (wrong password, ...) */
  uint64_t reauth_skipped;        /* type 1 on an authenticated connection
                                     forwarded without challenge (the bug) */
  uint64_t forwarded;             /* requests sent to the backend */
  uint64_t forwarded_empty_posts; /* ... POSTs among them with no body */
  uint64_t upstream_errors;       /* 502/504 answered */
  uint64_t basic_ok;              /* requests with valid Basic credentials */
  uint64_t basic_failed;          /* ... with invalid ones (401); a request
                                     without credentials is not counted */
  uint64_t idle_closed;           /* connections found idle past the limit */
  uint64_t max_requests_closed;   /* connections closed at max_requests */
  uint64_t head_timeouts;         /* 408: head or body too slow */
  uint64_t evicted;               /* closed to make room at a cap */
  uint64_t refused;               /* refused at a cap */
  uint64_t kerberos_ok;           /* Kerberos tickets accepted (refused
                                     ones count in auth_failed) */
};

struct proxy;

/* Starts the listener on its own threads. On success *out owns it; release
 * with proxy_stop. Returns 0, or -1 with a one-line reason in err. */
int proxy_start(const struct proxy_config *config, struct proxy **out,
                char *err, size_t errlen);

/* How many client connections the listener holds at most. */
unsigned proxy_capacity(const struct proxy *proxy);

/* The port actually listened on. */
uint16_t proxy_port(const struct proxy *proxy);

/* Switches the policy; takes effect for the next request on every
 * connection, without dropping any. Safe from any thread. */
void proxy_set_policy(struct proxy *proxy, enum proxy_policy policy);

/* Makes the listener's next connections to Exchange leave from the IPv4
 * loopback address source (host order; 0: the kernel's choice), as
 * kb_net_bind_source does. Safe from any thread. */
void proxy_set_source(struct proxy *proxy, uint32_t source);

/* The policy now in force. Safe from any thread. */
enum proxy_policy proxy_get_policy(const struct proxy *proxy);

/* Copies the counters into *stats. Safe from any thread. */
void proxy_stats(const struct proxy *proxy, struct proxy_stats *stats);

/* Waits until the listener holds no client connection - each closed, its
 * upstream connection with it, and its CLOSE traced - or timeout_ms of real
 * time have passed. Returns 0 when idle, -1 when connections are still
 * open. Safe from any thread. */
int proxy_wait_idle(struct proxy *proxy, unsigned timeout_ms);

/* Sets the counters back to 0 and the connection ids (trace events) back to
 * 1, as after proxy_start, for a listener reused for a new run; the policy
 * and everything configured stay. Call it only while the listener is idle
 * (proxy_wait_idle returned 0, no client connecting). Safe from any
 * thread. */
void proxy_reset(struct proxy *proxy);

/* Stops the listener, closing its connections, and frees it. Accepts
 * NULL. */
void proxy_stop(struct proxy *proxy);

#endif /* PROXY_H */
