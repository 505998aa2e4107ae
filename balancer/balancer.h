/*
 * balancer.h - the TCP load balancer `kbsim serve` puts in front of the ISA
 * array, so that any client (curl, Outlook, `kbsim client`) reaches every
 * member through one address.
 *
 * Like Windows NLB in front of a real ISA array it picks a member per new
 * TCP connection and then only moves bytes, both ways, until both sides
 * are done: no HTTP parsing, so NTLM's connection-bound authentication
 * passes through untouched. One thread polls every connection; a half-close
 * (FIN) is passed on as a half-close, and a connection ends on both sides
 * at once. A connection above the cap is answered 503 and closed at once,
 * never left waiting in the kernel's accept queue.
 */
#ifndef BALANCER_H
#define BALANCER_H

#include <stddef.h>
#include <stdint.h>

#include "common/kb_env.h"

#define BALANCER_MAX_MEMBERS 16

/* How a new connection's member is chosen: the one balancer mode of
 * scenarios ([listener] balancer), the simulated topology and this
 * balancer. */
enum balancer_mode {
  /* In turn: here, the k-th accepted connection goes to member
   * (k - 1) mod N (connection order); in the simulated topology, which
   * knows each connection's name, client c's k-th connection goes to
   * member (c + k - 2) mod N, whatever the order they connect in. */
  BALANCER_ROUND_ROBIN = 0,
  /* A draw from the seed: here per connection number, in the topology
   * per connection name; the same seed gives the same sequence. */
  BALANCER_SEEDED
};

/* "round-robin" / "seeded". */
const char *balancer_mode_name(enum balancer_mode mode);

struct balancer_target {
  const char *host; /* numeric address; "127.0.0.1" when NULL */
  uint16_t port;
};

struct balancer_config {
  const char *bind_host; /* numeric address; "127.0.0.1" when NULL */
  uint16_t port;         /* 0 picks a free port; read it with balancer_port */
  struct balancer_target members[BALANCER_MAX_MEMBERS];
  size_t nmembers; /* 1..BALANCER_MAX_MEMBERS */
  enum balancer_mode mode;
  /* BALANCER_SEEDED only: where the draws come from (kb_env.h); what it
   * points to must outlive the balancer. */
  struct kb_rng rng;
  /* Spliced pairs open at once; 0 = 128, at most 4096. */
  unsigned max_connections;
  size_t buffer_size; /* bytes buffered per direction; 0 = 64 KiB */
  /* Where the bytes each client sent and got go, as SEND / RECV events of
   * the client hop named "balancer conn <k>" (k-th accepted), with OPEN
   * and CLOSE: evidence of what passed, on the real clock. Zeroed: none.
   * Called from the balancer's thread. */
  struct kb_trace trace;
};

/* Counters since start, consistent with each other at the moment of the
 * call. */
struct balancer_stats {
  uint64_t accepted;         /* client connections accepted */
  uint64_t open;             /* pairs open now */
  uint64_t connect_failed;   /* the member refused: client closed at once */
  uint64_t refused;          /* at the cap: answered 503 and closed */
  uint64_t bytes_to_members; /* client -> member bytes delivered */
  uint64_t bytes_to_clients; /* member -> client bytes delivered */
  size_t nmembers;
  uint64_t member_connections[BALANCER_MAX_MEMBERS]; /* sent to each */
  uint64_t member_open[BALANCER_MAX_MEMBERS];        /* open on each now */
};

struct balancer;

/* Listens and starts the balancer's thread. On success *out owns the
 * balancer (release with balancer_stop). Returns 0, or -1 with a one-line
 * reason in err (what was wrong, what to do). */
int balancer_start(const struct balancer_config *config, struct balancer **out,
                   char *err, size_t errlen);

/* The port actually listened on. */
uint16_t balancer_port(const struct balancer *b);

/* Copies the counters into *stats. Safe from any thread. */
void balancer_stats(const struct balancer *b, struct balancer_stats *stats);

/* Closes every connection, stops the thread and frees the balancer.
 * Accepts NULL. */
void balancer_stop(struct balancer *b);

#endif /* BALANCER_H */
