/*
 * live.h - what `kbsim serve` shows while it runs: a kb_trace sink that
 * turns the ISA members' events into legs as they happen, prints one line
 * per request on a terminal, and keeps the newest legs for the admin
 * endpoint's console (admin.h), which streams them to a browser.
 *
 * A leg is one request a member answered: its decision notes (typed
 * codes, KB_NOTE_*), the request and answer as the member saw them (the
 * headers as libmicrohttpd parsed them, NTLM tokens decoded) and what it
 * forwarded to Exchange (the exact bytes libcurl sent and received), the
 * session's user (from the connection's NTLM type 3) and whether its
 * answer was an error for the user. Only the members' own events are
 * read; nothing is parsed out of note text.
 *
 * A session is one member's client connection. Each member keeps a score
 * since the last change of its policy (live_mark): its sessions, those
 * that saw an error, and one mark per session for the console's strip.
 *
 * Thread safety: the sink is called from every member's loop threads at
 * once and locks; every other function is safe from any thread.
 */
#ifndef LIVE_H
#define LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/kb_env.h"

/* Legs kept for the console when live_config.max_legs is 0. */
#define LIVE_DEFAULT_MAX_LEGS 1000

struct live_config {
  FILE *out;       /* one line per request; NULL prints nothing (-q) */
  size_t max_legs; /* newest legs kept; 0 means LIVE_DEFAULT_MAX_LEGS */
};

struct live;

/* Creates the sink. Returns 0 with *out owning it (release with
 * live_free), or -1 with a one-line reason in err. */
int live_new(const struct live_config *config, struct live **out, char *err,
             size_t errlen);

/* The sink to hand to the topology; valid until live_free. */
struct kb_trace live_as_trace(struct live *live);

/* The number of changes so far: every leg and every live_bump adds one. */
uint64_t live_version(struct live *live);

/* Says that something the console shows changed (a member's policy). */
void live_bump(struct live *live);

/* Wakes every live_wait at once, for shutdown. */
void live_wake_all(struct live *live);

/* Blocks until the version differs from seen, live_wake_all is called or
 * timeout_ms pass. Returns the version then. */
uint64_t live_wait(struct live *live, uint64_t seen, int timeout_ms);

/* Appends the kept legs whose number is above after, oldest first, as
 * Server-Sent Events ("id: N\nevent: leg\ndata: {json}\n\n") to out (a
 * kb_buf), and returns the number of the newest leg written: after when
 * there is none, or when out is full before the first one. Legs already
 * dropped from the ring are skipped. */
struct kb_buf;
uint64_t live_events_since(struct live *live, uint64_t after,
                           struct kb_buf *out);

/* ---- sessions and scores --------------------------------------------- */

#define LIVE_USER_MAX 128  /* "FABRIKAM\alice" and its NUL */
#define LIVE_SINCE_MAX 160 /* "the script ran on ISA02" and its NUL */
#define LIVE_STRIP_MAX 48  /* marks kept per member: the newest */

/* One session on a member's strip. */
struct live_mark {
  uint64_t conn;            /* the member's connection id */
  bool error;               /* an answer of it was an error for the user */
  char user[LIVE_USER_MAX]; /* "" until its type 3 names the user */
};

/* A member's sessions since the last change of its policy. */
struct live_score {
  char since[LIVE_SINCE_MAX]; /* what changed: "the script ran on ISA02" */
  char at[16];                /* when, local time: "12:03:04" */
  uint64_t sessions, errors;  /* sessions that started since; with an error */
  size_t nmarks;              /* the newest LIVE_STRIP_MAX, oldest first */
  struct live_mark marks[LIVE_STRIP_MAX];
};

/* Starts member's score again: what changed, in words that follow "since"
 * ("the script ran on ISA02"), now. Sessions that started before stay out
 * of it, even when they go on. Wakes every live_wait. */
void live_mark(struct live *live, const char *member, const char *since);

/* Copies member's score into *out. A member not marked yet (nor seen)
 * counts from the start or the last live_reset. */
void live_score(struct live *live, const char *member, struct live_score *out);

/* Forgets every leg kept and being gathered, every session and score (each
 * member counts again from since: "the reset"), and adds one to the
 * generation, so consoles know to clear what they show. Leg numbers go on
 * from where they were. Wakes every live_wait. */
void live_reset(struct live *live, const char *since);

/* The number of live_reset calls so far. */
uint64_t live_generation(struct live *live);

/* Frees the sink; nothing may emit into it any more. Accepts NULL. */
void live_free(struct live *live);

#endif /* LIVE_H */
