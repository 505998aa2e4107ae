/*
 * html.h - a run told leg by leg (the "story" the narrated demo prints),
 * and the self-contained HTML report drawn from it: a sequence diagram in
 * SVG per run, the failing legs highlighted, NTLM tokens decoded on
 * demand, what each user saw after each POST, several runs side by side.
 *
 * Both are built from the trace recorder after a run (nothing may record
 * into it any more), ordered by client and time, never by arrival across
 * clients, so one seed gives the same story and the same page every time.
 */
#ifndef HTML_H
#define HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "run.h"
#include "scenario.h"
#include "sim_env.h"

/* Clients drawn per run; the page says when a run had more. */
#define HTML_MAX_CLIENTS 8
/* Legs drawn per run, so a 100-POST run stays a page, not a poster. */
#define HTML_MAX_LEGS 400

/* One request and its response, as one end of a hop saw them. The token
 * decodes come from the recorded bytes (recorder with keep_bytes); NULL
 * when there was no NTLM token or no bytes were kept. */
struct html_hop {
  char method[16];
  char path[128];
  enum kb_auth req_auth;
  size_t req_body;
  int status; /* 0: no response */
  enum kb_auth resp_auth;
  size_t resp_body;
  char *req_token;  /* ntlm_describe of the Authorization token, owned */
  char *resp_token; /* of the WWW-Authenticate token, owned */
};

/* A note on a leg: its code (what consumers read) and its text (what
 * people read). */
struct html_note {
  enum kb_note code;
  char *text; /* owned */
};

/* One leg: a request Communicator sent to ISA, what ISA decided, what (if
 * anything) ISA forwarded to Exchange, and the answer Communicator got. */
struct html_leg {
  unsigned client;             /* client id */
  char conn[64];               /* "client 1 conn 1" */
  bool new_conn;               /* the first leg on its connection */
  char member[32];             /* the ISA member that answered, "" if unknown */
  struct html_hop front;       /* as Communicator saw it */
  struct html_hop *back;       /* as Exchange saw what ISA forwarded; owned */
  size_t nback;                /* 0: ISA answered on its own */
  struct html_note *isa_notes; /* ISA's decisions on this leg, owned */
  size_t nisa;
  struct html_note *client_notes; /* what Communicator noted after it */
  size_t nclient;
  int post;      /* index into the session's results, -1 unknown */
  bool post_end; /* the last leg of that POST */
  size_t order;  /* when it was sent: its place in the recorder */
};

struct html_story {
  struct html_leg *legs; /* by client id, then time; owned */
  size_t nlegs;
  size_t legs_total;      /* legs recorded, drawn or not */
  size_t back_total;      /* forwarded requests recorded */
  unsigned clients_shown; /* clients whose legs are in legs */
  unsigned clients_total;
  char members[SIM_MAX_MEMBERS][32]; /* members that answered, by name */
  size_t nmembers;
};

/* Builds the story of a finished run from rec: the first max_clients
 * clients (0 = all) and at most max_legs legs (0 = no limit). sessions
 * gives each leg its POST (may be NULL). Call only after the run, when
 * nothing records into rec any more. Returns 0 with *out filled (release
 * with html_story_free), or -1 when out of memory. */
int html_story_build(struct sim_recorder *rec,
                     const struct sim_sessions *sessions, unsigned max_clients,
                     size_t max_legs, struct html_story *out);

/* Frees what html_story_build filled in. Accepts an all-zero story. */
void html_story_free(struct html_story *story);

/* One run as the report shows it: the scenario gives its name,
 * description, members and expectations (the verdict is judged here with
 * sim_scenario_check), the outcome its sessions and counters, the recorder
 * its legs. Everything is borrowed for the call. */
struct html_run {
  const char *title; /* NULL: the scenario's name */
  const struct scenario *sc;
  const struct sim_outcome *outcome;
  struct sim_recorder *rec; /* keep_bytes, for the NTLM token decodes */
};

struct html_report;

/* Returns a new, empty report titled title (copied), or NULL when out of
 * memory. Release with html_report_free. */
struct html_report *html_report_new(const char *title);

/* Renders run into the report now, so its recorder and outcome can be
 * freed afterwards. Returns 0, or -1 with a one-line reason in err. */
int html_report_add(struct html_report *report, const struct html_run *run,
                    char *err, size_t errlen);

/* Writes the page (every run added so far, side by side) to path. Returns
 * 0, or -1 with a one-line reason in err. */
int html_report_write(const struct html_report *report, const char *path,
                      char *err, size_t errlen);

/* Frees the report. Accepts NULL. */
void html_report_free(struct html_report *report);

/* Writes len bytes of text to out escaped for HTML text and attribute
 * values: markup characters as entities, control bytes and invalid UTF-8
 * as visible \xNN, so nothing recorded can become markup. */
void html_escape(FILE *out, const char *text, size_t len);

#endif /* HTML_H */
