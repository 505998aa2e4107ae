/*
 * probe_int.h - what the probe's files share (probe.c runs the battery;
 * status.c reads Exchange's status; session.c runs client sessions;
 * request.c sends single requests; pinning.c judges the upstream
 * connections; http2.c offers HTTP/2): the structs and the calls between
 * them, all named probe__ (libuv's uv__).
 */
#ifndef PROBE_INT_H
#define PROBE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "client/client.h"
#include "probe/probe.h"

#define PROBE_DEFAULT_POSTS 3u
/* The client's mail domain (client.c's default): the mailbox the
 * autodiscover request asks for is the first user's there. */
#define PROBE_MAIL_DOMAIN "fabrikam.com"
#define PROBE_DEFAULT_TIMEOUT_MS 10000L

/* WWW-Authenticate values kept per answer and per Exchange connection (as
 * Exchange's BACKEND_MAX_WWW_AUTH). */
#define PROBE_MAX_OFFERS 4u

/* ---- Exchange's status (status.c) --------------------------------------- */

/* One connection of Exchange's status. */
struct probe_conn {
  uint64_t id;
  uint64_t requests;
  uint64_t mismatches;
  uint64_t challenges;              /* 401s with a type 2 */
  uint64_t type3_without_challenge; /* type 3s with no challenge pending */
  uint64_t unauthenticated_bodies;  /* bodies that came with no identity */
  unsigned nids;
  char ids[2][260];
  bool more_ids;            /* more than two identities */
  char mixed_mailbox[320];  /* its last mismatch: the mailbox */
  char mixed_identity[260]; /* and the identity it went to */
  /* The distinct WWW-Authenticate values it sent, in order (cut at 255
   * bytes: a type 2 is recognised by its start). */
  unsigned noffers;
  char offers[PROBE_MAX_OFFERS][256];
};

/* Exchange's counters at one moment. */
struct probe_status {
  bool ok;
  char why[160]; /* when not ok: what the URL answered instead */
  uint64_t requests, empty_posts, mismatches;
  size_t nconns;
  struct probe_conn *conns; /* owned */
};

/* What one Exchange connection did between two readings of the status. */
struct probe_moved {
  const struct probe_conn *conn; /* as it is after; borrowed */
  bool is_new;                   /* not in the first reading */
  uint64_t requests, challenges, type3_without_challenge,
      unauthenticated_bodies, mismatches;
};

/* Reads url's status document into *st (ok false, with why, when it could
 * not; url NULL is "not given"). Release with probe__status_free. */
void probe__status_read(const char *url, long timeout_ms,
                        struct probe_status *st);

/* Releases what st holds. Accepts a zeroed st. */
void probe__status_free(struct probe_status *st);

/* Connection id in st, NULL when it was not there. */
const struct probe_conn *probe__conn_find(const struct probe_status *st,
                                          uint64_t id);

/* Whether connection id served requests between before and after as
 * identity ("DOMAIN\user", compared without case). */
bool probe__conn_served(const struct probe_status *before,
                        const struct probe_status *after, uint64_t id,
                        const char *identity);

/* Whether the second user's session (Exchange between st[1] and st[2])
 * was mixed on the upstream connection the first user's session had been
 * served on (between st[0] and st[1]), as that first user. */
bool probe__mixed_on_first(const struct probe_status st[3],
                           const struct probe_exchange *x, const char *first);

/* Whether mismatches moved on connection id between before and after. */
bool probe__conn_mixed(const struct probe_status *before,
                       const struct probe_status *after, uint64_t id);

/* Fills *ex with what moved between before and after (ex->known false
 * when either reading failed). */
void probe__status_delta(const struct probe_status *before,
                         const struct probe_status *after,
                         struct probe_exchange *ex);

/* The connections that served requests between before and after, in
 * Exchange's order, into out (at most max). Returns how many. */
size_t probe__moved(const struct probe_status *before,
                    const struct probe_status *after, struct probe_moved *out,
                    size_t max);

/* ---- client sessions (session.c) ---------------------------------------- */

/* One session to run, and what it saw. */
struct probe_session {
  struct client_config cfg;
  struct client_view view;
  unsigned max_posts;        /* stop after this many POSTs; 0: the session */
  enum client_outcome worst; /* the first failed POST's outcome */
  char detail[200];          /* its detail */
  char err[256];             /* client_create's error */
  bool created;
  bool challenged; /* some POST's first leg was answered 401 */
};

/* Prepares a session of kind for user, numbered id. */
void probe__session_init(struct probe_session *s,
                         const struct probe_config *cfg, unsigned id,
                         const struct probe_user *user, enum client_kind kind,
                         unsigned posts, long timeout_ms);

/* Runs one session to its end, or to its max_posts-th POST (a thread body
 * too). Returns NULL. */
void *probe__session_run(void *cls);

/* The session checks: communicator, outlook and one-shot (kind), each
 * judged into r. */
void probe__single(const struct probe_config *cfg, unsigned posts,
                   long timeout_ms, enum client_kind kind,
                   struct probe_result *r, const char *what);

/* The two-users check into r. */
void probe__two_users(const struct probe_config *cfg, unsigned posts,
                      long timeout_ms, struct probe_result *r);

/* kerberos.c: the single-leg check into rep's; run last (it leaves a
 * pooling listener's pool holding the Kerberos user's connection). */
void probe__single_leg(const struct probe_config *cfg, unsigned posts,
                       long timeout_ms, struct probe_report *rep);

/* The wrong-password check into rep's; run last of the session checks:
 * it reads whether any session with the right password signed in. */
void probe__wrong_password(const struct probe_config *cfg, long timeout_ms,
                           struct probe_report *rep);

/* ---- single requests (request.c) ---------------------------------------- */

/* One request to the listener's autodiscover URL, made by libcurl. */
struct probe_request {
  const char *authorization; /* the header's value, or NULL: none */
  bool expect;               /* send Expect: 100-continue with the body */
};

/* What came back. */
struct probe_answer {
  CURLcode rc;      /* the transfer's result */
  long status;      /* the final answer's status, 0 when none came */
  bool continued;   /* a 100 Continue came first */
  bool ntlm;        /* the final answer offered NTLM or Negotiate */
  bool basic;       /* ... or Basic */
  bool type2;       /* ... carried an NTLM challenge (a type 2) */
  unsigned noffers; /* its WWW-Authenticate headers, in order */
  char offers[PROBE_MAX_OFFERS][256];
  double seconds; /* from sending to the answer or the timeout */
};

/* What every single request sends: the listener's autodiscover URL, the
 * Host header line and the first user's autodiscover request. */
struct probe_target {
  char url[1024];
  char host[300];
  char body[1024];
};

/* Fills *t for cfg. Can't fail (a long URL is cut). */
void probe__target(const struct probe_config *cfg, struct probe_target *t);

/* Sets on curl what every request to the listener shares: timeout_ms, no
 * signals, no proxy, http and https only, and on HTTPS cfg's CA (libcurl
 * verifies the certificate and its name, as by default). Returns CURLE_OK
 * or the first option's error. */
CURLcode probe__curl_listener(CURL *curl, const struct probe_config *cfg,
                              long timeout_ms);

/* libcurl's header callback filling the struct probe_answer cls: each
 * status line ("HTTP/1.1 401", "HTTP/2 401") starts a new answer (a 100
 * Continue is noted), each WWW-Authenticate of the last one is kept. */
size_t probe__header_cb(char *data, size_t size, size_t n, void *cls);

/* Whether the header line data (len bytes, as libcurl hands it over) is a
 * WWW-Authenticate; if so, *value and *vlen give its value without the
 * blanks around it. */
bool probe__www_authenticate(const char *data, size_t len, const char **value,
                             size_t *vlen);

/* libcurl's write callback that drops the body. */
size_t probe__discard_cb(char *data, size_t size, size_t n, void *cls);

/* "NTLM <type 1>" with Communicator's flags into out. Returns 0, or -1
 * when out of memory. */
int probe__type1(char *out, size_t len);

/* POSTs autodiscover's request for the first user to the listener on a
 * new connection, as req says, and fills *ans. Blocking; never fails
 * (ans->rc says what the transfer did). */
void probe__request(const struct probe_config *cfg, long timeout_ms,
                    const struct probe_request *req, struct probe_answer *ans);

/* The offer check into rep's, and rep->offer. */
void probe__offer(const struct probe_config *cfg, long timeout_ms,
                  struct probe_report *rep);

/* The challenge-rewritten, expect-hang and body-on-type1 checks into
 * rep's. */
void probe__challenge_rewritten(const struct probe_config *cfg, long timeout_ms,
                                struct probe_report *rep);
void probe__expect_hang(const struct probe_config *cfg, long timeout_ms,
                        struct probe_report *rep);
void probe__body_on_type1(const struct probe_config *cfg, long timeout_ms,
                          struct probe_report *rep);

/* ---- the upstream connection pinned to a client's (pinning.c) ----------- */

/* The handshake-split and pinned-recycled checks into rep's. */
void probe__handshake_split(const struct probe_config *cfg, long timeout_ms,
                            struct probe_report *rep);
void probe__pinned_recycled(const struct probe_config *cfg, unsigned posts,
                            long timeout_ms, struct probe_report *rep);

/* ---- HTTP/2 (http2.c) -------------------------------------------------- */

/* The http2 check into rep's: skipped on http:// and when the listener
 * offers Basic only. */
void probe__http2(const struct probe_config *cfg, long timeout_ms,
                  struct probe_report *rep);

/* What a check says when Exchange's status is known and counted no request
 * while the client was answered: nothing reached Exchange. */
#define PROBE_NOTHING_REACHED                                                  \
  "nothing reached Exchange (its status counted no request): the listener "    \
  "answered by itself"

/* Whether r's Exchange counted no request during the check (its status
 * known). */
bool probe__reached_nothing(const struct probe_result *r);

#endif /* PROBE_INT_H */
