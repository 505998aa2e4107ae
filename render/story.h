/*
 * story.h - a run told leg by leg: what each client sent, what the ISA
 * member that answered decided (typed notes), what reached Exchange, and
 * what the client got and noted. The narrated demo prints it, the HTML
 * report (html.h) draws it.
 *
 * It is built from the trace recorder after a run (nothing may record
 * into it any more), ordered by client and time, never by arrival across
 * clients, so one seed gives the same legs every time (the notes' text
 * quotes the member's own connection numbers, which follow the order it
 * accepted concurrent clients' connections).
 */
#ifndef STORY_H
#define STORY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/kb_env.h"
#include "sim/run.h"
#include "sim/sim_env.h"

/* One request and its response, as one end of a hop saw them. The token
 * decodes come from the recorded bytes (recorder with keep_bytes); NULL
 * when there was no NTLM token or no bytes were kept. */
struct story_hop {
  char method[16];
  char path[128];
  enum kb_auth req_auth;
  size_t req_body;
  int status; /* 0: no response */
  enum kb_auth resp_auth;
  size_t resp_body;
  char *req_token;  /* ntlm_describe of the Authorization token, owned */
  char *resp_token; /* of the WWW-Authenticate token, owned */
  /* Exchange's own note on this request (why it refused a login it would
   * otherwise take: KB_NOTE_CHANNEL_BINDING, the binding the client
   * computed against the one Exchange expected); a forwarded hop's only.
   * why_code is KB_NOTE_NONE and why NULL when it wrote none. */
  enum kb_note why_code;
  char *why;   /* owned */
  bool marked; /* a capture's leg (captured): drawn red, part of a
                  finding */
};

/* A note on a leg: its code (what consumers read) and its text (what
 * people read). */
struct story_note {
  enum kb_note code;
  char *text; /* owned */
};

/* One leg: a request Communicator sent to ISA, what ISA decided, what (if
 * anything) ISA forwarded to Exchange, and the answer Communicator got. */
struct story_leg {
  unsigned client;        /* client id */
  char conn[64];          /* "client 1 conn 1" */
  bool new_conn;          /* the first leg on its connection */
  char member[32];        /* the ISA member that answered, "" if unknown */
  struct story_hop front; /* as Communicator saw it */
  struct story_hop *back; /* as Exchange saw what ISA forwarded; owned */
  size_t nback;           /* 0: ISA answered on its own */
  struct story_note *isa_notes; /* ISA's decisions on this leg, owned */
  size_t nisa;
  struct story_note *client_notes; /* what Communicator noted after it */
  size_t nclient;
  int post;      /* index into the session's results, -1 unknown */
  bool post_end; /* the last leg of that POST */
  size_t order;  /* when it was sent: its place in the recorder (a
                    capture's: its frame) */
  /* Read back from a capture (kbsim analyze) rather than from a run: red
   * marks only the legs and hops of a finding, named in marks ("" none),
   * not every POST forwarded without its body. */
  bool captured;
  char marks[96];
};

struct story {
  struct story_leg *legs; /* by client id, then time; owned */
  size_t nlegs;
  size_t legs_total;      /* legs recorded, drawn or not */
  size_t back_total;      /* forwarded requests recorded */
  unsigned clients_shown; /* clients whose legs are in legs */
  unsigned clients_total;
  char members[SIM_MAX_MEMBERS][32]; /* members that answered, by name */
  size_t nmembers;
  /* Who sent a run's requests: the recorder's client kind; NULL when it
   * names none (anything may have connected) or for a capture. */
  const struct client_kind_info *kind;
  /* The lanes' names, client, listener and server, and a line under each;
   * "" for Communicator, ISA Server 2006 and Exchange (a run's). */
  char lanes[3][64];
  char lane_subs[3][64];
};

/* Builds the story of a finished run from rec: the first max_clients
 * clients (0 = all) and at most max_legs legs (0 = no limit). sessions
 * gives each leg its POST (may be NULL). Call only after the run, when
 * nothing records into rec any more. Returns 0 with *out filled (release
 * with story_free), or -1 when out of memory. */
int story_build(struct sim_recorder *rec, const struct sim_sessions *sessions,
                unsigned max_clients, size_t max_legs, struct story *out);

/* Frees what story_build filled in. Accepts an all-zero story. */
void story_free(struct story *story);

/* What each hop of sc's topology is, in words, for the demo and the
 * report: into client_hop the client's side ("HTTPS (ISA's own
 * certificate)") and into server_hop the listener's ("HTTP: TLS ends at
 * ISA"). Returns false, writing "HTTP" into both, when sc has no TLS
 * ([listener] tls = none). Can't fail. */
bool story_tls_hops(const struct scenario *sc, char *client_hop,
                    size_t client_len, char *server_hop, size_t server_len);

/* The session of client id in ss, or NULL (ss may be NULL). */
const struct sim_session *story_session(const struct sim_sessions *ss,
                                        unsigned id);

#endif /* STORY_H */
