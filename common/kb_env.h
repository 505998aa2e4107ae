/*
 * kb_env.h - what sim/ hands every component: a clock, a random source and a
 * trace sink.
 *
 * Components never read the wall clock, never draw randomness and never
 * print on their own; they ask these three objects, which sim/ implements
 * (seeded and simulated, or real). Each is a small vtable: a function
 * pointer and its context. A zeroed struct is valid and means "real clock",
 * "the kernel's randomness" (getrandom(): secure, not reproducible) and
 * "trace nothing".
 */
#ifndef KB_ENV_H
#define KB_ENV_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- clock ------------------------------------------------------------ */

/* Time is kept per session: each simulated Communicator session has its
 * own timeline, which moves when that session thinks, so that concurrent
 * sessions never shift each other's clocks and a run does not depend on
 * thread order. Callers say whose time they want: a client ("client 3") or
 * a connection named by kb_names ("client 3 conn 1", "client 3 conn 1
 * upstream 1"), which lives on its client's timeline; NULL or an unknown
 * name means the shared timeline. */
struct kb_clock {
  /* Milliseconds since the Unix epoch on who's timeline. Must be safe to
   * call from any thread. NULL means the real wall clock. */
  int64_t (*now_ms)(void *ctx, const char *who);
  /* Moves who's timeline forward by ms. NULL means really sleep. */
  void (*advance)(void *ctx, const char *who, int64_t ms);
  void *ctx;
};

/* Returns who's current time in ms since the epoch; never fails. */
int64_t kb_clock_now(const struct kb_clock *clock, const char *who);

/* The real time (CLOCK_REALTIME) ms milliseconds from now, as
 * pthread_cond_timedwait takes it: bounded waits on the real clock, which
 * no simulated clock drives. */
void kb_deadline(struct timespec *until, unsigned ms);

/* Lets ms pass for who: moves a simulated timeline, or sleeps for real
 * with the real clock. Never fails; ms <= 0 does nothing. */
void kb_clock_advance(const struct kb_clock *clock, const char *who,
                      int64_t ms);

/* Formats ms-since-epoch as an IMF-fixdate ("Tue, 17 Mar 2009 16:26:24 GMT")
 * into out, which must hold KB_HTTP_DATE_LEN bytes. Never fails. */
#define KB_HTTP_DATE_LEN 30
void kb_http_date(int64_t ms, char out[KB_HTTP_DATE_LEN]);

/* ---- random source ---------------------------------------------------- */

struct kb_rng {
  /* Fills buf with len bytes for the draw named by label. A deterministic
   * implementation derives the bytes from (seed, label), so callers make
   * labels unique and stable: "proxy/challenge/<conn>/<n>", not a pointer.
   * Must be safe to call from any thread. NULL fill: see kb_rng_fill. */
  void (*fill)(void *ctx, const char *label, uint8_t *buf, size_t len);
  void *ctx;
};

/* Draws len bytes for label. With no fill function set it falls back to
 * the kernel's getrandom(), so an unconfigured component is still secure,
 * just not reproducible. Returns only with len bytes drawn: when the kernel
 * cannot give randomness at all (no getrandom() and no /dev/urandom), it
 * says so on stderr and aborts, since carrying on would hand out
 * predictable challenges. */
void kb_rng_fill(const struct kb_rng *rng, const char *label, uint8_t *buf,
                 size_t len);

/* ---- trace sink ------------------------------------------------------- */

/* Which network hop an event belongs to. */
enum kb_hop {
  KB_HOP_CLIENT_PROXY = 0, /* Communicator <-> ISA listener */
  KB_HOP_PROXY_BACKEND = 1 /* ISA <-> Exchange */
};

/* Which end of the hop observed the event. */
enum kb_side { KB_SIDE_CLIENT = 0, KB_SIDE_SERVER = 1 };

enum kb_trace_kind {
  KB_TRACE_OPEN,     /* a TCP connection opened (no data) */
  KB_TRACE_CLOSE,    /* a TCP connection closed (no data) */
  KB_TRACE_SEND,     /* bytes written to the connection, exactly */
  KB_TRACE_RECV,     /* bytes read from the connection, exactly */
  KB_TRACE_EXCHANGE, /* one request/response completed (see kb_exchange) */
  KB_TRACE_NOTE      /* a one-line decision or remark, in text */
};

/* What an Authorization / WWW-Authenticate header carries, as the trace
 * names it. kb_auth_classify (kb_auth.h) is the one function that decides,
 * on ntlm_header_peek's grammar. */
enum kb_auth {
  KB_AUTH_NONE = 0,              /* no such header */
  KB_AUTH_NTLM_NEGOTIATE = 1,    /* an NTLMSSP type 1, in NTLM or Negotiate */
  KB_AUTH_NTLM_CHALLENGE = 2,    /* ... type 2 */
  KB_AUTH_NTLM_AUTHENTICATE = 3, /* ... type 3 */
  KB_AUTH_NTLM_BARE = 4,         /* "NTLM" with no token (the offer) */
  KB_AUTH_OTHER = 5,             /* any other scheme, or a token that is not
                                    NTLMSSP (bad base64, unknown type) */
  KB_AUTH_NEGOTIATE_BARE = 6,    /* "Negotiate" with no token (the offer) */
  KB_AUTH_SPNEGO = 7             /* Negotiate with a SPNEGO/Kerberos token */
};

/* Returns "none", "NTLM type 1", ..., "Negotiate", "SPNEGO" for printing.
 * Never NULL. */
const char *kb_auth_name(enum kb_auth auth);

/* One request and its response as one end of a hop saw them. */
struct kb_exchange {
  const char *method;     /* "POST" */
  const char *path;       /* "/EWS/Exchange.asmx" */
  enum kb_auth req_auth;  /* Authorization header of the request */
  size_t req_body_len;    /* bytes of request body */
  int status;             /* response status, 0 when none was received */
  enum kb_auth resp_auth; /* WWW-Authenticate header of the response */
  size_t resp_body_len;   /* bytes of response body */
  /* The request's and the response's header lines as the observer parsed
   * them ("Name: value\r\n" each), not the bytes on the wire; NULL when
   * the observer does not give them. */
  const char *req_headers;
  const char *resp_headers;
};

/* What a NOTE is about: every decision a component takes and every change
 * the user can see carries one of these beside its human text, so that
 * the demo, the report, the evidence and the tests read the code and never
 * the prose (which may be reworded at any time). kb_note_name gives each a
 * stable name for JSON and logs. Add new codes at the end of a group. */
enum kb_note {
  KB_NOTE_NONE = 0, /* a remark without a code */

  /* The listener's authentication decisions (one per request). */
  KB_NOTE_OFFER, /* no credentials, not authenticated: 401 offer */
  KB_NOTE_FORWARD_AUTHENTICATED, /* authenticated connection, no
                                    Authorization: forwarded */
  KB_NOTE_CHALLENGE,             /* type 1: 401 with a type 2 */
  KB_NOTE_REAUTH_SKIPPED,        /* type 1 on an authenticated connection,
                                    per-connection: forwarded as is, body-less
                                    (KB 942638's bug) */
  KB_NOTE_REAUTH_CHALLENGED,     /* type 1 on an authenticated connection,
                                    per-request: 401 with a new type 2 (the fix) */
  KB_NOTE_AUTH_OK,               /* type 3 verified: forwarded with its body */
  KB_NOTE_AUTH_REFUSED,          /* type 3 refused: 401, nothing forwarded */
  KB_NOTE_AUTH_UNEXPECTED,       /* type 3 with no challenge pending: 401 */
  KB_NOTE_AUTH_UNUSABLE,         /* an Authorization the listener cannot use */
  KB_NOTE_KERBEROS,              /* Negotiate with a SPNEGO/Kerberos token */
  KB_NOTE_BASIC_OK,              /* Basic credentials verified: forwarded */
  KB_NOTE_BASIC_REFUSED,         /* Basic credentials missing or wrong: 401 */
  KB_NOTE_ANONYMOUS,             /* the listener does not authenticate */
  KB_NOTE_TYPE1_BODY_FORWARDED,  /* type 1 carrying a body forwarded with it,
                                    unauthenticated (defect body-on-type1) */

  /* The listener's other answers and closes. */
  KB_NOTE_BODY_TOO_LARGE,       /* request body over the limit: 413 */
  KB_NOTE_BAD_TARGET,           /* request target not a path: 400 */
  KB_NOTE_BAD_FRAMING,          /* a head RFC 9112/9110 forbid: 400/501,
                                   closed, nothing forwarded (kb_http.h) */
  KB_NOTE_HEAD_TIMEOUT,         /* the head did not arrive in time: 408 */
  KB_NOTE_IDLE_CLOSED,          /* idle past the listener's limit: closed */
  KB_NOTE_MAX_REQUESTS,         /* the listener's max requests: Connection:
                                   close */
  KB_NOTE_CLIENT_LEFT,          /* the client closed mid-request */
  KB_NOTE_UPSTREAM_STOPPING,    /* listener stopping: transfer abandoned, 503 */
  KB_NOTE_UPSTREAM_TOO_BIG,     /* backend answer over the limit: 502 */
  KB_NOTE_UPSTREAM_TIMEOUT,     /* backend too slow: 504 */
  KB_NOTE_UPSTREAM_UNREACHABLE, /* backend unreachable: 502 */
  KB_NOTE_LIBRARY,              /* a library's own log line */
  /* The listener's defects (serve --defect, common/kb_defect.h). */
  KB_NOTE_EXPECT_HELD,         /* Expect: 100-continue held: neither a 100
                                  nor an answer (expect-hang) */
  KB_NOTE_UPSTREAM_UNPINNED,   /* a request on an upstream connection of
                                  its own, closed after it (handshake-split) */
  KB_NOTE_UPSTREAM_POOLED,     /* an upstream connection put in or taken
                                  from the shared pool (mixes-identities) */
  KB_NOTE_UPSTREAM_RECYCLED,   /* the pinned upstream connection closed
                                  after its 2nd request (pinned-recycled) */
  KB_NOTE_CHALLENGE_REWRITTEN, /* WWW-Authenticate folded into one, NTLM
                                  dropped (challenge-rewritten) */

  /* The client: its connections, and what the user sees. */
  KB_NOTE_RESENT,              /* closed without an answer; libcurl resent */
  KB_NOTE_CLIENT_MAX_REQUESTS, /* closed at the client's max requests */
  KB_NOTE_CLIENT_IDLE,         /* closed: idle past the client's limit */
  KB_NOTE_NOTIFICATION,        /* the "Outlook Integration Error" appeared */
  KB_NOTE_LOG,                 /* the autodiscovery failure log line */

  /* The balancer in front of a live array. */
  KB_NOTE_SERVER_CLOSED_FIRST, /* the member sent FIN before the client */
  KB_NOTE_CLIENT_RESET,        /* the client reset the connection (RST) */
  KB_NOTE_MEMBER_RESET,        /* the member reset the connection (RST) */
  KB_NOTE_BALANCER_STOPPED,    /* still open when serve stopped: closed */
  KB_NOTE_MEMBER_UNREACHABLE,  /* the member could not be connected to:
                                  the balancer closed the client's side */
  /* Extended Protection (TLS channel binding) */
  KB_NOTE_CHANNEL_BINDING, /* Exchange: a type 3's channel binding refused
                              (401); client: the binding it computed */

  /* Kerberos on a listener with a keytab (proxy_config.krb5_keytab). */
  KB_NOTE_KERBEROS_OK,      /* a Kerberos ticket accepted in one leg:
                               forwarded with its body */
  KB_NOTE_KERBEROS_REFUSED, /* a Kerberos ticket refused (replayed, not
                               for this service, ...): 401 */

  KB_NOTE_COUNT /* not a code: the number of codes */
};

/* A stable lower-case name for code ("reauth-skipped"), for JSON, logs and
 * tests; "?" for a value that is not a code. Never NULL. */
const char *kb_note_name(enum kb_note code);

/* Parses a name kb_note_name returns. Returns 0, or -1 when unknown. */
int kb_note_parse(const char *name, enum kb_note *out);

struct kb_trace_event {
  enum kb_trace_kind kind;
  enum kb_hop hop;
  enum kb_side side; /* who observed it */
  const char
      *origin;   /* observer: "client 3", an ISA member ("ISA01"), "backend" */
  uint64_t conn; /* observer-local connection id */
  /* The connection's name as both ends know it (see kb_names), e.g.
   * "client 3 conn 1" or "client 3 conn 1 upstream 1"; NULL when the
   * connection has none (a peer outside the simulation). */
  const char *conn_name;
  const uint8_t *data; /* SEND / RECV bytes; NULL otherwise */
  size_t len;
  const struct kb_exchange *exchange; /* EXCHANGE only */
  enum kb_note note;                  /* NOTE only: what it is about */
  const char *text; /* NOTE only: the same for people, one line */
  /* When it happened, ms since the epoch on the session's timeline; 0 (what
   * components leave) lets the sink stamp it with its own clock. */
  int64_t at_ms;
};

struct kb_trace {
  /* Receives every event. Called from component threads, concurrently:
   * the sink locks what it shares. The event and everything it points to
   * are only valid during the call. NULL emit: events are dropped. */
  void (*emit)(void *ctx, const struct kb_trace_event *ev);
  void *ctx;
};

/* ---- connection names ------------------------------------------------- */

/* Both ends of a loopback TCP connection learn one name for it, so seeded
 * draws and evidence are keyed by who is talking ("client 3 conn 1"), not
 * by accept order or ephemeral port. The connecting side claims its local
 * port's name once connected and before it sends its first byte; the
 * accepting side resolves the peer's port when the first request arrives,
 * never at accept (the claim may not be made yet). The bytes on the wire
 * order the two, so the latest claim for a pair of ports is the right one.
 * A name is claimed for the pair (local port, remote port), not the local
 * port alone: ports picked by connect() are shared by connections to
 * different destinations. Everything named this way runs on one loopback
 * address, so the pair identifies a live connection.
 *
 * Claiming after connect() lets the kernel pick the port in connect(),
 * which reuses ports in TIME_WAIT; binding to port 0 first (the way to
 * learn the port before connecting) makes every bind scan the port range
 * for conflicts, which took 90% of the CPU of a run of many short
 * sessions and failed once the range filled up. */
struct kb_names {
  /* Called by the connecting side: local_port is its own, remote_port the
   * acceptor's. */
  void (*claim)(void *ctx, uint16_t local_port, uint16_t remote_port,
                const char *name);
  /* Called by the accepting side: copies the name claimed for the
   * connection from peer_port to its own local_port into name; returns 0,
   * or -1 when nobody claimed it. */
  int (*resolve)(void *ctx, uint16_t peer_port, uint16_t local_port, char *name,
                 size_t len);
  void *ctx;
};

/* The parts of a connection's name, the one format every component
 * builds and every consumer parses (never sscanf a name elsewhere):
 * {3, 0, 0} is "client 3" (the client itself, its timeline), {3, 1, 0}
 * "client 3 conn 1" (its first connection to the listener), {3, 1, 2}
 * "client 3 conn 1 upstream 2" (the second upstream connection the
 * listener opened for it). Numbers count from 1. */
struct kb_conn_id {
  unsigned client;
  unsigned conn;     /* 0: the client, not a connection */
  unsigned upstream; /* 0: the client's own connection */
};

/* Enough for any name kb_conn_name_format writes, NUL included. */
#define KB_CONN_NAME_LEN 64

/* Writes id's name into out (KB_CONN_NAME_LEN bytes always suffice) and
 * returns out. An upstream without a conn is written as the client. */
char *kb_conn_name_format(const struct kb_conn_id *id, char *out, size_t len);

/* Parses a name kb_conn_name_format writes. Returns 0, or -1 with *id
 * zeroed when name is anything else (NULL, "", "backend", "ISA01", a zero,
 * a sign, leading zeros or trailing text). */
int kb_conn_name_parse(const char *name, struct kb_conn_id *id);

/* The connecting side: claims name for its connection from local_port
 * to remote_port, once connected and before anything is sent on it; does
 * nothing without a claim function. */
void kb_names_claim(const struct kb_names *names, uint16_t local_port,
                    uint16_t remote_port, const char *name);

/* Resolves the connection from peer_port to local_port; returns -1 (name
 * set to "") when unknown or when there is no resolve function. */
int kb_names_resolve(const struct kb_names *names, uint16_t peer_port,
                     uint16_t local_port, char *name, size_t len);

struct sockaddr;

/* The port of an AF_INET or AF_INET6 address, in host order; 0 for any
 * other family or NULL. */
uint16_t kb_sockaddr_port(const struct sockaddr *addr);

/* The accepting side: resolves the name the peer at addr claimed for its
 * connection to local_port (the listening port). Returns 0, or -1 (name
 * set to "") when addr is not IPv4/IPv6 or nobody claimed it. */
int kb_names_resolve_addr(const struct kb_names *names,
                          const struct sockaddr *addr, uint16_t local_port,
                          char *name, size_t len);

/* Names thread (at most 15 characters) for top -H, perf and debuggers:
 * "kb-proxy", "kb-client", ... The creator names it right after
 * pthread_create, so the name is there before anyone looks. */
void kb_thread_name(pthread_t thread, const char *name);

/* Emits ev if the sink has an emit function. */
void kb_trace_emit(const struct kb_trace *trace,
                   const struct kb_trace_event *ev);

/* Convenience: emits a KB_TRACE_NOTE with its code and printf-style text. */
void kb_trace_note(const struct kb_trace *trace, enum kb_hop hop,
                   enum kb_side side, const char *origin, uint64_t conn,
                   enum kb_note code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

#endif /* KB_ENV_H */
