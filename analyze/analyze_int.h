/*
 * analyze_int.h - what the files of analyze/ share: one HTTP message or TCP
 * event as a source hands it over (struct an_msg), the sources (tshark.c,
 * har.c) and their merge (source.c), the connection model (conns.c), the
 * hops told apart (roles.c), the pairing of the two hops (pair.c), the
 * failure rules (rules.c), the findings (findings.c) and the legs kept for
 * the page (legs.c).
 */
#ifndef ANALYZE_INT_H
#define ANALYZE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "analyze/analyze.h"
#include "common/kb_auth.h"
#include "common/kb_env.h"
#include "ntlm/ntlm.h"

#define AN_ENDPOINT 64      /* "127.0.0.1:8080", "[::1]:443" */
#define AN_PATH 256         /* a request's target, cut there */
#define AN_MAX_CHALLENGES 6 /* WWW-Authenticate values kept per answer */
#define AN_CHALLENGE                                                           \
  1024                  /* one of them, cut there: a type 2 with its           \
                          target info takes a few hundred characters */
#define AN_AUTH 4096    /* an Authorization value, cut there */
#define AN_IDENTITY 128 /* "FABRIKAM\alice" */
#define AN_MAILBOX 128  /* "bob@fabrikam.com" */
#define AN_MAX_OPEN 32  /* unanswered requests kept per connection */

/* ---- messages (source.c) ---------------------------------------------- */

enum an_kind {
  AN_REQUEST,  /* an HTTP/1.x request, whole */
  AN_RESPONSE, /* an HTTP/1.x response, whole */
  AN_H2,       /* an HTTP/2 HEADERS frame (requests or answers in it) */
  AN_CLOSE,    /* FIN or RST: the sender is done */
  AN_TLS       /* a TLS ClientHello: the connection is encrypted */
};

/* One event of the input. Strings are NUL-terminated and cut to their
 * arrays; auth is owned (an_msg_clear frees it). */
struct an_msg {
  enum an_kind kind;
  unsigned file;   /* the config's file it came from */
  uint64_t frame;  /* its frame (or HAR entry) */
  double t;        /* seconds since the epoch */
  uint64_t stream; /* the connection within the file (tcp.stream) */
  char src[AN_ENDPOINT], dst[AN_ENDPOINT]; /* who sent it, to whom */
  bool reset;                              /* AN_CLOSE: an RST */
  char method[16];
  char path[AN_PATH];
  char version[16];
  int status;
  char *auth; /* Authorization, NULL when absent; owned */
  char challenges[AN_MAX_CHALLENGES][AN_CHALLENGE]; /* WWW-Authenticate */
  size_t nchallenges;
  uint64_t body_len;
  uint64_t body_hash;       /* FNV-1a of the body; 0 when not read */
  char mailbox[AN_MAILBOX]; /* the first e-mail address of the body */
};

/* Frees what m owns and zeroes it. Accepts a zeroed message. */
void an__msg_clear(struct an_msg *m);

/* Fills m's body fields from the len bytes of body (need not be
 * NUL-terminated): its hash and the first mailbox it names. */
void an__msg_body(struct an_msg *m, const char *body, size_t len);

/* ---- sources: tshark.c, har.c, merged by source.c ---------------------- */

/* A stream of events from one file, in its own time order. */
struct an_source {
  /* Reads the next event into *m (cleared first). Returns 1, 0 at the end,
   * or -1 with one line in err. */
  int (*next)(struct an_source *s, struct an_msg *m, char *err, size_t errlen);
  /* Ends the source; after next returned 0, checks how it ended: returns
   * 0, or -1 with one line in err (tshark's complaint). Frees s. */
  int (*close)(struct an_source *s, char *err, size_t errlen);
  unsigned file;
  const char *path;
  uint64_t frames; /* frames (entries) read so far */
  uint64_t http;   /* HTTP messages handed over */
};

/* Starts tshark on the capture at path (file index file). Returns 0 with
 * *out set, or -1 with one line in err (tshark missing: exit 3). */
int an__tshark_open(const struct analyze_config *cfg, unsigned file,
                    const char *path, struct an_source **out, char *err,
                    size_t errlen);

/* Reads the HAR 1.2 file at path whole (a HAR is one JSON document) into
 * a source of its entries' requests and answers in time order. Returns 0
 * with *out set, or -1 with one line in err. */
int an__har_open(unsigned file, const char *path, struct an_source **out,
                 char *err, size_t errlen);

/* What the file at path holds, from its first bytes. */
enum an_format {
  AN_FORMAT_UNKNOWN,
  AN_FORMAT_PCAP,
  AN_FORMAT_PCAPNG,
  AN_FORMAT_HAR
};

/* Reads the first bytes of path. Returns its format, or AN_FORMAT_UNKNOWN
 * with one line in err (unreadable, empty, neither). */
enum an_format an__sniff(const char *path, char *err, size_t errlen);

/* ---- the connections (conns.c) ----------------------------------------- */

/* Which hop a connection is. */
enum an_hop {
  AN_HOP_UNKNOWN = 0, /* not decided yet */
  AN_HOP_CLIENT,      /* a client to the listener */
  AN_HOP_UPSTREAM,    /* the listener to the server */
  AN_HOP_OTHER        /* neither: not analyzed */
};

/* One request while its answer is awaited, and what is known of it. */
struct an_req {
  struct an_req *next;                  /* in its connection's queue */
  struct an_req *open_prev, *open_next; /* in the model's open client list */
  uint64_t conn;                        /* its connection's serial */
  struct analyze_ref ref;
  double t;
  char method[16];
  char path[AN_PATH];
  enum kb_auth auth;          /* what its Authorization carries */
  uint64_t auth_hash;         /* FNV-1a of the Authorization value, 0: none */
  char identity[AN_IDENTITY]; /* of a type 3 */
  char *auth_text;            /* ntlm_header_describe, for the page; owned */
  uint64_t body_len, body_hash;
  char mailbox[AN_MAILBOX];
  /* A client request: what the listener sent upstream for it. */
  uint64_t up_conn; /* the upstream connection's serial, 0: none */
  char up_label[ANALYZE_LABEL];
  bool up_fresh; /* the first request on that upstream connection */
  struct analyze_ref up_ref, up_answer;
  int up_status;
  enum kb_auth up_resp_auth;
  uint64_t up_body, up_resp_body;
  enum kb_auth up_auth;
  char up_challenges[AN_MAX_CHALLENGES][AN_CHALLENGE];
  size_t up_nchallenges;
  bool up_answered;
  size_t nup; /* upstream requests paired with it */
  /* An upstream request: the client request it forwards. */
  uint64_t client_conn; /* 0: not paired */
  uint64_t client_serial;
  /* Marks for the page: the defects it took part in. */
  char marks[96];
  bool up_marked;
};

/* One TCP connection (or HAR connection) while it is open. */
struct an_conn {
  uint64_t key;     /* file and stream */
  uint64_t serial;  /* 1, 2, ... in the order first seen */
  unsigned ordinal; /* among its hop's connections, from 1 */
  enum an_hop hop;
  unsigned file;
  char client[AN_ENDPOINT], server[AN_ENDPOINT];
  char label[ANALYZE_LABEL]; /* "client -> server" */
  double last_t;
  struct an_req *head, *tail; /* unanswered requests, oldest first */
  size_t nopen;
  uint64_t nreqs; /* requests seen on it */
  bool client_done, server_done;
  /* NTLM on this connection (either hop). */
  bool authenticated;
  bool single_leg; /* authenticated by one request, without a 401 first */
  bool challenged; /* a type 2 was sent on it */
  bool saw_401;
  bool hidden_handshakes; /* from a HAR: the browser hid its handshakes */
  char identity[AN_IDENTITY];
  struct analyze_ref auth_ref; /* the request that authenticated it */
  /* A client connection. */
  uint64_t type1_up; /* upstream connection of its pending type 1 */
  char type1_up_label[ANALYZE_LABEL];
  struct analyze_ref type1_ref, type1_up_ref;
  uint64_t pinned_up; /* upstream connection of its authentication */
  bool h2_reported;
  unsigned legs; /* legs kept for the page */
  /* An upstream connection. */
  uint64_t auth_client; /* the client connection that authenticated it */
  char auth_client_label[ANALYZE_LABEL];
  uint64_t mixed[4];       /* client connections reported as mixed in */
  size_t mixed_finding[4]; /* their finding (index + 1; 0: not kept) */
  size_t nmixed;
  uint64_t last_client; /* the client connection of its last request */
};

struct an_map; /* uint64 -> pointer (conns.c) */

/* The whole state of one analysis. */
struct an_model {
  const struct analyze_config *cfg;
  struct analyze_result *res;
  struct an_map *by_key;     /* (file, stream) -> conn */
  struct an_map *by_serial;  /* serial -> conn */
  struct an_map *tls;        /* (file, stream) of TLS connections that have
                                shown no HTTP yet */
  uint64_t tls_opaque;       /* TLS connections that never showed HTTP */
  char tls_dst[AN_ENDPOINT]; /* the first one's server */
  uint64_t next_serial;
  uint64_t next_req;
  struct an_req *open_head, *open_tail; /* client requests awaiting answers */
  size_t nopen_client;
  bool roles_known;
  double now;
  unsigned long fed; /* events fed, for the idle sweep */
  bool failed;       /* out of memory */
};

/* Makes m ready for res. Returns 0, or -1 out of memory. */
int an__model_init(struct an_model *m, const struct analyze_config *cfg,
                   struct analyze_result *res);

/* Feeds one event (roles known). Can't fail but out of memory (m->failed). */
void an__model_feed(struct an_model *m, const struct an_msg *msg);

/* Ends every connection still open (their requests unanswered). */
void an__model_finish(struct an_model *m);

/* Frees the model's state (not the result). */
void an__model_free(struct an_model *m);

/* The connection of serial, or NULL once it ended. */
struct an_conn *an__conn_by_serial(struct an_model *m, uint64_t serial);

/* Decodes an Authorization value into req's NTLM fields. */
void an__req_auth(struct an_req *req, const char *auth);

/* ---- the hops told apart (roles.c) ------------------------------------- */

/* Holds events until the roles are known, then feeds them to the model. */
struct an_roles;

/* Returns a new role finder for m, or NULL out of memory. */
struct an_roles *an__roles_new(struct an_model *m);

/* Takes one event: held while the roles are unknown (up to a bound), fed
 * to the model after. Returns 0, or -1 out of memory. */
int an__roles_take(struct an_roles *r, struct an_msg *msg);

/* The input ended: decides with what was held, feeds it. Returns 0, or -1
 * out of memory. */
int an__roles_end(struct an_roles *r);

/* Frees r and whatever it still holds. Accepts NULL. */
void an__roles_free(struct an_roles *r);

/* Which hop a connection to server (its accepting endpoint) is, by the
 * roles in m->res. */
enum an_hop an__roles_hop(const struct an_model *m, const char *server);

/* ---- the two hops paired (pair.c) -------------------------------------- */

/* Finds the open client request the upstream request up forwards, links
 * both and returns it, or NULL when none matches. */
struct an_req *an__pair(struct an_model *m, struct an_conn *upc,
                        struct an_req *up);

/* ---- the rules (rules.c) ----------------------------------------------- */

/* An upstream request was answered (status 0: never). */
void an__rules_upstream(struct an_model *m, struct an_conn *c,
                        struct an_req *req, const struct an_msg *answer);

/* A client request was answered (answer NULL: never). */
void an__rules_client(struct an_model *m, struct an_conn *c, struct an_req *req,
                      const struct an_msg *answer);

/* An HTTP/2 HEADERS frame. */
void an__rules_h2(struct an_model *m, struct an_conn *c,
                  const struct an_msg *msg);

/* ---- findings (findings.c) --------------------------------------------- */

/* Starts a finding of defect d (counted even when not kept). Returns it
 * to fill, or NULL when the result keeps no more (or out of memory). */
struct analyze_finding *an__finding(struct an_model *m, enum kb_defect d,
                                    bool one_hop);

/* Writes f's line, printf-style, cut to its size. */
void an__text(struct analyze_finding *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Adds a connection's label (once) and a place to f; both accept NULL f. */
void an__finding_conn(struct analyze_finding *f, const char *label);
void an__finding_ref(struct analyze_finding *f, const struct analyze_ref *ref,
                     const char *what);

/* Adds one line to the result's notes (once: a line already there is not
 * added again). */
void an__note(struct an_model *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Adds defect's name to a request's marks for the page. */
void an__mark(struct an_req *req, enum kb_defect d);

/* ---- the legs for the page (legs.c) ------------------------------------ */

/* Keeps a client request and its answer (NULL: none) as a leg of the
 * story, when the page's bounds allow. */
void an__leg_client(struct an_model *m, struct an_conn *c,
                    const struct an_req *req, const struct an_msg *answer);

/* Keeps an upstream request as a leg of its own (one hop: the server's),
 * when the page's bounds allow. */
void an__leg_upstream(struct an_model *m, struct an_conn *c,
                      const struct an_req *req, const struct an_msg *answer);

/* Orders the legs kept and fills the story's totals. Returns 0, or -1
 * out of memory. */
int an__legs_finish(struct an_model *m);

/* ---- small helpers (source.c) ------------------------------------------ */

/* FNV-1a over len bytes, never 0. */
uint64_t an__hash(const void *data, size_t len);

/* The host part of an endpoint ("127.0.0.1" of "127.0.0.1:80"). */
void an__host(const char *endpoint, char *out, size_t len);

#endif /* ANALYZE_INT_H */
