/*
 * probe.h - Communicator's pattern against any listener: a fixed battery
 * of real client sessions (client/) and single requests through a
 * listener publishing kbsim's Exchange, judged by what the clients saw
 * and, when given, by Exchange's own counters (GET /kbsim/status,
 * backend.h): one check per failure mode of the reverse-proxy family, the
 * defects found by name (common/kb_defect.h), and one class for the
 * listener.
 *
 * The checks, in the report's order (probe_run runs offer, then
 * challenge-rewritten, handshake-split, pinned-recycled, expect-hang and
 * body-on-type1 while no client has authenticated an upstream connection
 * that a pooling listener could hand on, then the others):
 *  offer         a POST without credentials: which schemes the 401 offers
 *                (NTLM/Negotiate, Basic) or whether it is served (anonymous)
 *  communicator  a Communicator session re-authenticating every POST
 *                (type 1 with Content-Length 0, body held back) on one
 *                keep-alive connection: does a body-less POST reach
 *                Exchange (its SOAP 500, empty_posts)?
 *  outlook       an Outlook session that authenticates its connection once
 *  one-shot      Communicator's handshake on a new connection per POST
 *  two-users     two users' Communicator sessions, first one after the
 *                other (the second user's on a new connection once the
 *                first user's has finished: a listener that pools upstream
 *                connections hands it the one the first user
 *                authenticated), then, if nothing mixed, both at once: is
 *                any mailbox's data given to the other user's identity?
 *                (Exchange's mismatches; needs two users and the status)
 *  wrong-password  the first user with a wrong password: refused?
 *                (inconclusive when the right password never signed in)
 *  handshake-split  one NTLM handshake (libcurl's, the type 1 first) on a
 *                new connection: did its type 3 reach Exchange on another
 *                connection than its type 1? (needs the status)
 *  pinned-recycled  an Outlook session (one handshake, then requests
 *                without credentials): did a request after the handshake
 *                reach Exchange on a new, unauthenticated connection while
 *                the client's stayed up? (needs the status)
 *  challenge-rewritten  a POST without credentials: did the client get
 *                Exchange's WWW-Authenticate offers as Exchange sent them?
 *                (needs the status)
 *  expect-hang   a POST with Expect: 100-continue and a body: does a 100
 *                or an answer come?
 *  body-on-type1  a type 1 that carries the request's body on a new
 *                connection: challenged, or served unauthenticated?
 *  single-leg    the first user's Communicator with Kerberos (the ticket
 *                and the body with the first request of every
 *                connection, so no 401 ever), then the second user's
 *                NTLM session on a new connection: is the second user
 *                served as the first? (needs krb5_ccache, two users and
 *                the status; run after every other but http2)
 *  http2         on https:// only: Communicator's handshake (a request
 *                without credentials, a type 1 without its body, a type 3
 *                with it) offering HTTP/2 in ALPN (libcurl's nghttp2): does
 *                the listener refuse h2, downgrade the NTLM request with
 *                HTTP_1_1_REQUIRED (the client then retries on HTTP/1.1),
 *                or let NTLM through on HTTP/2 streams? (run last)
 *
 * Nothing here prints; cli/cmd_probe.c writes the lines and the JUnit
 * report (evidence/ci.h, one testcase per check), probe_json.c the JSON
 * report.
 */
#ifndef PROBE_H
#define PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kb_defect.h"

enum probe_check {
  PROBE_CHECK_OFFER = 0,
  PROBE_CHECK_COMMUNICATOR,
  PROBE_CHECK_OUTLOOK,
  PROBE_CHECK_ONE_SHOT,
  PROBE_CHECK_TWO_USERS,
  PROBE_CHECK_WRONG_PASSWORD,
  PROBE_CHECK_HANDSHAKE_SPLIT,
  PROBE_CHECK_PINNED_RECYCLED,
  PROBE_CHECK_CHALLENGE_REWRITTEN,
  PROBE_CHECK_EXPECT_HANG,
  PROBE_CHECK_BODY_ON_TYPE1,
  PROBE_CHECK_SINGLE_LEG,
  PROBE_CHECK_HTTP2,
  PROBE_CHECK_COUNT
};

/* "offer", "communicator", "outlook", "one-shot", "two-users",
 * "wrong-password", "handshake-split", "pinned-recycled",
 * "challenge-rewritten", "expect-hang", "body-on-type1", "single-leg",
 * "http2". */
const char *probe_check_name(enum probe_check check);

/* The defect a failed check found: body-less-forward for communicator and
 * one-shot, mixes-identities for two-users, mixes-after-single-leg for
 * single-leg, ntlm-over-http2 for http2, the check's namesake for the
 * other five; KB_DEFECT_COUNT for
 * offer, outlook and wrong-password, which name none. */
enum kb_defect probe_check_defect(enum probe_check check);

/* How one check came out. */
enum probe_verdict {
  PROBE_PASS = 0, /* the listener behaved as a correct one does */
  PROBE_FAIL,     /* it did not: the line says how */
  PROBE_SKIP,     /* not run: the line says what it needs */
  PROBE_ERROR     /* could not be judged (transport, unexpected answer) */
};

/* "pass", "fail", "skip", "error". */
const char *probe_verdict_name(enum probe_verdict verdict);

/* What the listener's 401 to an anonymous request offered. */
enum probe_offer {
  PROBE_OFFER_UNKNOWN = 0, /* not probed, or no answer */
  PROBE_OFFER_NTLM,        /* NTLM or Negotiate offered */
  PROBE_OFFER_BASIC,       /* Basic only */
  PROBE_OFFER_ANONYMOUS,   /* served without credentials */
  PROBE_OFFER_OTHER        /* another status or scheme */
};

/* The listener's class, from the verdicts. */
enum probe_class {
  PROBE_CLASS_NOT_AFFECTED = 0, /* re-authenticates every POST */
  PROBE_CLASS_KB942638,         /* forwards the body-less POST */
  PROBE_CLASS_BASIC_ANONYMOUS,  /* no connection-bound authentication */
  PROBE_CLASS_MIXES,            /* mixes identities across clients */
  PROBE_CLASS_UNPROBED,         /* could not be probed */
  PROBE_CLASS_DEFECTIVE         /* other defects of the family */
};

/* "not-affected", "kb942638", "basic-or-anonymous", "mixes-identities",
 * "unprobed", "defective". */
const char *probe_class_name(enum probe_class cls);

/* The class in words: "re-authenticates every POST (not affected)", ... */
const char *probe_class_text(enum probe_class cls);

/* The exit code of a class: 0 no defect found (not affected, Basic /
 * anonymous), 1 a defect found (kb942638, mixes-identities, defective), 3
 * could not be probed. */
int probe_class_exit(enum probe_class cls);

struct probe_user {
  const char *domain;
  const char *user;
  const char *password;
};

struct probe_config {
  const char *url;  /* the listener, "http://127.0.0.1:8080" */
  const char *host; /* Host header; the client's default when NULL */
  const struct probe_user *users; /* borrowed; nusers >= 1 */
  size_t nusers;
  /* Exchange's status ("http://127.0.0.1:8081/kbsim/status"), or NULL:
   * then only what the clients saw is judged. */
  const char *status_url;
  unsigned posts; /* EWS POSTs per session; 0 = 3 */
  /* The first user's Kerberos credential cache (kinit's; a path or
   * "FILE:path"), for the single-leg check; NULL skips it. MIT finds the
   * realm's KDC through KRB5_CONFIG or /etc/krb5.conf. */
  const char *krb5_ccache;
  long timeout_ms; /* per request; 0 = 10000 */
  /* HTTPS (an https:// url): the CA the listener's certificate is verified
   * against, PEM text (borrowed); NULL: the system's store. Every check
   * verifies it. */
  const char *ca_pem;
};

/* What Exchange's counters moved by during one check. */
struct probe_exchange {
  bool known;        /* the status was read before and after */
  uint64_t requests; /* requests Exchange answered */
  uint64_t empty_posts;
  uint64_t mismatches;
  uint64_t shared;      /* connections that served both users */
  uint64_t connections; /* Exchange connections that served requests */
  uint64_t challenges;  /* 401s carrying a type 2 */
  /* Type 3s that found no challenge pending on their connection. */
  uint64_t type3_without_challenge;
  /* Requests that came with a body and no identity. */
  uint64_t unauthenticated_bodies;
  char identities[2][260]; /* first identities seen on new connections */
  /* When mismatches moved: the Exchange connection they moved on (its id
   * in Exchange's status, from 1), the last mailbox answered there to
   * another identity and that identity (Exchange's last_mismatch_*
   * fields); 0, "", "" otherwise. */
  uint64_t mixed_conn;
  char mixed_mailbox[320];
  char mixed_identity[260];
  /* two-users: mixed_conn had served the first user's session, as that
   * user, before the second user's session began on its own connection:
   * the listener reused an authenticated upstream connection for another
   * client. */
  bool mixed_conn_reused;
};

struct probe_result {
  enum probe_verdict verdict;
  char line[480]; /* one line for people */
  struct probe_exchange exchange;
  unsigned posts_ok, posts_failed;
  bool integration_error; /* a client saw the Outlook Integration Error */
  double seconds;         /* how long the check took (wall clock); 0: not run */
};

struct probe_report {
  enum probe_offer offer;
  struct probe_result checks[PROBE_CHECK_COUNT];
  /* The defects found: defects[d] when a check that names d failed
   * (probe_check_defect). */
  bool defects[KB_DEFECT_COUNT];
  enum probe_class cls;
};

/* What probe_run could do. */
enum probe_run_result {
  PROBE_RUN_OK = 0,     /* the report is filled */
  PROBE_RUN_BAD_CONFIG, /* no URL, no user: a usage error */
  PROBE_RUN_NO_STATUS   /* status_url was given but answers no status
                           document (not reachable, not 200, not kbsim's
                           JSON): nothing was probed */
};

/* Runs the battery and fills *report. Returns PROBE_RUN_OK, or another
 * result with one line in err saying what was wrong and what to do. A
 * listener that cannot be reached is a report of class
 * PROBE_CLASS_UNPROBED, not an error. Blocking; not thread-safe per
 * report. */
enum probe_run_result probe_run(const struct probe_config *config,
                                struct probe_report *report, char *err,
                                size_t errlen);

/* Writes report as JSON (jansson) to path. Returns 0, or -1 with one line
 * in err. */
int probe_write_json(const struct probe_config *config,
                     const struct probe_report *report, const char *path,
                     char *err, size_t errlen);

#endif /* PROBE_H */
