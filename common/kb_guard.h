/*
 * kb_guard.h - the door policy of a kbsim server (listener, Exchange,
 * admin endpoint): how many connections it holds, how many from one
 * address, and how long a client may take to send a request's head and
 * body, however slowly its bytes trickle (slowloris).
 *
 * libmicrohttpd 0.9.75 counts idle time only (a byte every few seconds
 * keeps a connection forever) and, at its connection limit, stops
 * accepting, so new clients hang in the kernel's backlog. The guard
 * fixes both from libmicrohttpd's callbacks: MHD_OPTION_ACCEPT_POLICY
 * asks kb_guard_admit, NOTIFY_CONNECTION opens and closes a slot, the
 * access handler marks the head and body done, NOTIFY_COMPLETED starts
 * the next request's clock. A thread of the guard's own answers 408 to a
 * connection past its deadline and shuts it down; libmicrohttpd then
 * closes it.
 *
 * At the caps a new connection takes the place of the connection that has
 * waited longest for a head (closed without an answer, as a server
 * closes an idle keep-alive connection); when none waits it is refused at
 * once (closed, never left in the backlog).
 *
 * Thread-safe: every call may come from any thread.
 */
#ifndef KB_GUARD_H
#define KB_GUARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define KB_GUARD_HEAD_TIMEOUT_MS 10000u
#define KB_GUARD_BODY_TIMEOUT_MS 30000u
#define KB_GUARD_MAX_CONNECTIONS 1024u

struct kb_guard_config {
  const char *who;          /* names the server in the 408 body */
  unsigned head_timeout_ms; /* 0: KB_GUARD_HEAD_TIMEOUT_MS */
  unsigned body_timeout_ms; /* 0: KB_GUARD_BODY_TIMEOUT_MS */
  /* On a kept-alive connection the next head may start this long after
   * the last answer (the server's idle timeout) before its own bound. */
  unsigned idle_ms;
  unsigned max_connections; /* 0: KB_GUARD_MAX_CONNECTIONS */
  unsigned max_per_address; /* 0: max_connections */
};

struct kb_guard_stats {
  uint64_t timed_out; /* 408: head or body not complete in time */
  uint64_t evicted;   /* closed to make room at a cap */
  uint64_t refused;   /* refused at a cap, nothing to evict */
  uint64_t scans;     /* times the thread looked for deadlines passed */
};

struct kb_guard;
struct kb_guard_slot;

/* Starts the guard and its thread. Returns 0, or -1 with a line in err. */
int kb_guard_start(const struct kb_guard_config *config, struct kb_guard **out,
                   char *err, size_t errlen);
/* Stops the thread and frees the guard. Every slot must be closed. */
void kb_guard_stop(struct kb_guard *g);

/* The largest number of connections the guard lets in. */
unsigned kb_guard_capacity(const struct kb_guard *g);

/* Whether a connection from addr may come in (MHD_OPTION_ACCEPT_POLICY).
 * At a cap it may make room by evicting a waiting connection. */
bool kb_guard_admit(struct kb_guard *g, const struct sockaddr *addr,
                    socklen_t len);

/* A connection came in on fd (NOTIFY_CONNECTION STARTED): its first head
 * is due within the head timeout. NULL when out of memory (the
 * connection then has no deadline). */
struct kb_guard_slot *kb_guard_open(struct kb_guard *g, int fd,
                                    const struct sockaddr *addr);
/* The head is complete (the handler's first call). false: the deadline
 * passed first and the 408 is on its way: give up the request. */
bool kb_guard_head_done(struct kb_guard_slot *s);
/* The body is complete (the handler's last call before answering);
 * false as for kb_guard_head_done. */
bool kb_guard_body_done(struct kb_guard_slot *s);
/* The answer is sent (NOTIFY_COMPLETED): the next head's clock starts. */
void kb_guard_next(struct kb_guard_slot *s);
/* The connection closed (NOTIFY_CONNECTION CLOSED), before its socket is:
 * the guard forgets it. s may be NULL. */
void kb_guard_close(struct kb_guard_slot *s);

void kb_guard_stats(struct kb_guard *g, struct kb_guard_stats *out);
/* Sets the counters of kb_guard_stats back to 0 (a server reused for a new
 * run). Accepts NULL. */
void kb_guard_reset_stats(struct kb_guard *g);

#endif /* KB_GUARD_H */
