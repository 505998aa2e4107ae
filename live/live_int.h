/*
 * live_int.h - internal to the live view (live.h): its state, which
 * live.c (legs, ring, waits) and score.c (sessions, their users, each
 * member's score since its last change) share.
 *
 * Everything in struct live after the lock is read and written under it.
 */
#ifndef LIVE_INT_H
#define LIVE_INT_H

#include "live/live.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kb_buf.h"

/* Legs being gathered at once; a connection that never completes one (a
 * client that left mid-request) is dropped when its connection closes. */
#define LIVE_MAX_PENDING 256u
/* Sessions (member connections) whose user and verdict are remembered at
 * once; the least recently used goes first. */
#define LIVE_MAX_SESSIONS 256u
/* Bytes of a forwarded request or response head kept for the console. */
#define LIVE_HEAD_MAX 16384u
#define LIVE_MAX_NOTES 8u
/* Members scored at once (admin.h's ADMIN_MAX_MEMBERS). */
#define LIVE_MAX_MEMBERS 16u

struct live__note {
  enum kb_note code;
  char text[256];
};

/* One leg being gathered. */
struct live__pending {
  bool used;
  char member[32];
  uint64_t conn;
  uint64_t stamp; /* least recently used goes first when full */
  struct live__note notes[LIVE_MAX_NOTES];
  size_t nnotes;
  /* The first forwarded request: head bytes, body bytes; its answer. */
  bool forwarded;
  struct kb_buf up_req, up_resp;
  bool up_req_head_done, up_resp_head_done;
  size_t up_req_body, up_resp_body;
  bool up_done; /* a second request would start a new one: not kept */
};

struct live__leg {
  uint64_t seq;
  char *json; /* owned */
};

/* One session: a member's client connection, from its first leg to its
 * close. */
struct live__session {
  bool used;
  char member[32];
  uint64_t conn;
  uint64_t stamp;           /* least recently used goes first when full */
  uint64_t id;              /* its mark's, in its member's strip */
  uint64_t epoch;           /* its member's epoch at its first leg */
  char user[LIVE_USER_MAX]; /* "" until a type 3 names it */
  bool failed;              /* one of its answers was an error for the user */
};

/* A member's score since its last change (live_mark). */
struct live__member {
  char name[32];
  uint64_t epoch; /* one more at each live_mark */
  char since[LIVE_SINCE_MAX];
  char at[16];
  uint64_t sessions, errors;
  struct live_mark marks[LIVE_STRIP_MAX]; /* a ring: the newest kept */
  uint64_t ids[LIVE_STRIP_MAX];           /* the session of each mark */
  size_t nmarks;                          /* marks ever added this epoch */
};

struct live {
  FILE *out;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  uint64_t version;
  uint64_t generation; /* one more at each live_reset */
  uint64_t seq;        /* legs so far; never goes back */
  uint64_t stamp;
  struct live__leg *ring;
  size_t max_legs;
  struct live__pending pending[LIVE_MAX_PENDING];
  bool woken; /* live_wake_all was called: waits return at once */
  /* score.c */
  struct live__session sessions[LIVE_MAX_SESSIONS];
  uint64_t session_ids;
  struct live__member members[LIVE_MAX_MEMBERS];
  size_t nmembers;
  char since[LIVE_SINCE_MAX]; /* where a member not yet marked starts */
  char since_at[16];
};

/* Writes the real clock's local time, "12:02:02.173" (with ms) or
 * "12:02:02", into out. */
void live__clock(char *out, size_t len, bool ms);

/* Books a completed leg of member's connection conn into its session
 * (made at its first leg, counted in its member's score): user, when not
 * NULL, names the session's user from now on; failed says the leg's
 * answer was an error for the user. Writes the session's user ("" when
 * not known) into user_out. Called with the lock held. */
void live__score_leg(struct live *l, const char *member, uint64_t conn,
                     const char *user, bool failed, char *user_out, size_t len);

/* Forgets the session of member's connection conn (it closed). Called
 * with the lock held. */
void live__score_close(struct live *l, const char *member, uint64_t conn);

/* Forgets every session and score; members start again from since.
 * Called with the lock held. */
void live__score_clear(struct live *l, const char *since);

#endif /* LIVE_INT_H */
