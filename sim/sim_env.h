/*
 * sim_env.h - the simulation's own clock, seeded random source and trace
 * recorder: the implementations of common/kb_env.h that sim/ hands to the
 * components.
 */
#ifndef SIM_ENV_H
#define SIM_ENV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "common/kb_env.h"

/* The support case's own timestamp: Tue, 17 Mar 2009 16:26:24 GMT. */
#define SIM_CASE_EPOCH_MS INT64_C(1237307184000)

/* A simulated clock: every timeline starts at a fixed instant and moves
 * only when told, so that Date headers and NTLMv2 timestamps repeat from
 * run to run. Client N's sessions and connections ("client N ...") share
 * timeline N; anything else reads the shared timeline. */
struct sim_clock {
  int64_t start_ms;
  _Atomic int64_t shared_ms; /* offset of the shared timeline */
  pthread_mutex_t lock;      /* guards offsets */
  int64_t *offsets;          /* per client id, grown on demand */
  size_t noffsets;
};

void sim_clock_init(struct sim_clock *clock, int64_t start_ms);
/* Frees the per-client timelines. */
void sim_clock_free(struct sim_clock *clock);
/* Puts every timeline back at the start, as sim_clock_init did (a
 * topology reused for the next seed). */
void sim_clock_reset(struct sim_clock *clock);
/* Moves the shared timeline and every client's forward by ms. */
void sim_clock_advance(struct sim_clock *clock, int64_t ms);
/* Returns the kb_clock view of clock (which must outlive its users). */
struct kb_clock sim_clock_as_kb(struct sim_clock *clock);

/* A seeded random source: the bytes of a draw are HMAC-SHA256(seed,
 * label || block counter), so they depend on the seed and the draw's label
 * only - not on which thread asked first. */
struct sim_rng {
  uint8_t key[8];
};

void sim_rng_init(struct sim_rng *rng, uint64_t seed);
struct kb_rng sim_rng_as_kb(struct sim_rng *rng);

/* Connection names (kb_names): a table from (connecting side's port,
 * accepting side's port) to the name the connecting side claimed. */
struct sim_name;
struct sim_names {
  pthread_mutex_t lock;
  struct sim_name **by_port; /* 65536 lists by connecting port, on init */
  size_t count;              /* claims held */
};

/* Returns 0, or -1 when out of memory. */
int sim_names_init(struct sim_names *names);
/* Forgets every claim, keeping the table usable (a topology reused for the
 * next seed). */
void sim_names_clear(struct sim_names *names);
/* Frees every name. Accepts a names table whose init failed. */
void sim_names_free(struct sim_names *names);
struct kb_names sim_names_as_kb(struct sim_names *names);

/* A trace recorder: keeps a copy of every event, in arrival order, under a
 * lock. Byte events (SEND/RECV) are kept only when keep_bytes is set, with
 * Basic credentials overwritten (same length), so no evidence written from
 * a recorder carries a password. */
struct sim_event {
  enum kb_trace_kind kind;
  enum kb_hop hop;
  enum kb_side side;
  char origin[32];
  uint64_t conn;
  char conn_name[64];          /* "" when the event had none */
  struct kb_exchange exchange; /* method, path NULL: use the fields below */
  char method[16];
  char path[128];
  enum kb_note note; /* NOTE code */
  char *text;        /* NOTE text, owned */
  uint8_t *data;     /* SEND/RECV bytes, owned */
  size_t len;
  /* When: microseconds since the epoch, from the event's own stamp (the
   * simulated timeline of its session) or, unstamped, the real clock at
   * recording. */
  int64_t at_us;
};

struct sim_recorder {
  pthread_mutex_t lock;
  struct sim_event *events;
  size_t count;
  size_t alloc;
  bool keep_bytes;
  bool failed; /* an event was dropped for lack of memory */
  /* Which client kind the client hop's connections came from, for people
   * (its label "Internet Explorer", its product); NULL, as
   * sim_recorder_init leaves it, when anything may have connected (serve):
   * "client". */
  const struct client_kind_info *client;
  /* The TLS connections the run's servers accepted, as their records
   * crossed the socket (sim/tls_tap.h): kept with the bytes, on a TLS
   * run. */
  struct sim_tls_conn **tls;
  size_t ntls, tls_alloc;
};

void sim_recorder_init(struct sim_recorder *rec, bool keep_bytes);
/* Frees every recorded event; the recorder can be used again after
 * sim_recorder_init. */
void sim_recorder_free(struct sim_recorder *rec);
/* Drops the events recorded so far, keeping the recorder usable. */
void sim_recorder_clear(struct sim_recorder *rec);
struct kb_trace sim_recorder_as_kb(struct sim_recorder *rec);
/* The recorder behind trace, when sim_recorder_as_kb made it; else NULL. */
struct sim_recorder *sim_recorder_of(struct kb_trace trace);

#endif /* SIM_ENV_H */
