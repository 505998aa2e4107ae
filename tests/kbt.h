/*
 * kbt.h - what the test suites share (on the model of libuv's task.h and
 * curl's libtest): the support case's constants, one deterministic random
 * fill and fixed clock for the components' kb_rng / kb_clock, one trace
 * recorder with waits and note-code matching, and the request body the
 * listener tests POST.
 */
#ifndef TESTS_KBT_H
#define TESTS_KBT_H

#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kb_env.h"

/* Every suite's main: runs s (CK_VERBOSITY picks how much Check prints)
 * and returns how many of its tests failed. Inline, so a suite that needs
 * nothing else from here links nothing. */
static inline int kbt_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  int failed;

  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed;
}

/* Every suite's main when a program is built from several files, one
 * feature and one Suite each (libuv's one list): runs the suites list
 * makes, in its order, up to the NULL ending it. CK_RUN_SUITE=name runs
 * one of them alone, which is how `make check` runs them side by side
 * (tests/CMakeLists.txt). Returns how many tests failed. */
static inline int kbt_run_list(Suite *(*const *list)(void))
{
  SRunner *sr = srunner_create((*list)());
  int failed;

  while(*++list)
    srunner_add_suite(sr, (*list)());
  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed;
}

/* The Check tag of the test cases whose cost is a third-party program's
 * (headless Chromium, a third-party proxy server, tshark) or sheer scale
 * (tests/README.md):
 * `make check` leaves them out (CK_EXCLUDE_TAGS) to stay fast, `make
 * check-slow` runs only them (CK_INCLUDE_TAGS); CI runs both. */
#define KBT_SLOW "slow"

/* 2009-03-17 16:26:24 UTC: the Date of the support case's 500. */
#define KBT_CASE_MS INT64_C(1237307184000)

/* GetUserOofSettings for alice, as Communicator POSTs it. */
extern const char *const kbt_oof_body;

/* kb_clock.now_ms: always KBT_CASE_MS. */
int64_t kbt_now(void *ctx, const char *who);

/* What kbt_fill draws from, as its ctx: a seed, and the labels drawn
 * under, in order, for a test that checks them. A NULL ctx is seed 0
 * recording nothing. */
#define KBT_LABELS 16
struct kbt_rng {
  uint64_t seed;
  pthread_mutex_t lock;        /* guards labels and nlabels */
  char labels[KBT_LABELS][64]; /* the first KBT_LABELS labels */
  size_t nlabels;
};

/* Ready to draw under seed, recording no label yet. */
void kbt_rng_init(struct kbt_rng *r, uint64_t seed);
void kbt_rng_free(struct kbt_rng *r);

/* The kb_rng that draws from r (NULL: seed 0, nothing recorded). */
struct kb_rng kbt_rng(struct kbt_rng *r);

/* kb_rng.fill: deterministic bytes from the seed and the label alone
 * (FNV-1a of the label with the seed mixed in, then splitmix64), so a
 * test can recompute what a component drew under a label (the proxy's
 * challenge, say) and so check the label. ctx is a struct kbt_rng or
 * NULL. Safe from any thread. */
void kbt_fill(void *ctx, const char *label, uint8_t *buf, size_t len);

/* ---- trace recorder --------------------------------------------------- */

/* One recorded event, copied out of the kb_trace_event. */
struct kbt_event {
  enum kb_trace_kind kind;
  enum kb_hop hop;
  enum kb_side side;
  uint64_t conn;
  char origin[32];       /* "ISA01", "backend", "client 3" */
  char conn_name[96];    /* "" when the connection has none */
  enum kb_note note;     /* NOTE */
  char method[16];       /* EXCHANGE: the request's method */
  size_t len;            /* of text */
  char *text;            /* NOTE text, or SEND/RECV bytes (NUL-terminated) */
  struct kb_exchange ex; /* EXCHANGE; method and path are in path */
  char path[64];         /* EXCHANGE: the request's path */
};

/* Every event the components emit, in order, under a lock; waits wake on
 * each new event. */
struct kbt_trace {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct kbt_event *ev;
  size_t n, size;
  bool keep_bytes;   /* record SEND/RECV (else they are dropped) */
  const char *debug; /* environment variable that prints events, or NULL */
};

/* Ready to record; debug names an environment variable (T_PROXY_TRACE,
 * say) that, when set, prints notes and exchanges for reading a failure. */
void kbt_trace_init(struct kbt_trace *t, bool keep_bytes, const char *debug);

/* The kb_trace that records into t. */
struct kb_trace kbt_trace_sink(struct kbt_trace *t);

void kbt_trace_free(struct kbt_trace *t);

/* kb_trace.emit of kbt_trace_sink. */
void kbt_emit(void *ctx, const struct kb_trace_event *e);

/* Events of kind on hop (conn 0: any connection). */
size_t kbt_count(struct kbt_trace *t, enum kb_trace_kind kind, enum kb_hop hop,
                 uint64_t conn);

/* Events of kind observed by origin ("client 3"; NULL: anyone), on any
 * hop. */
size_t kbt_count_from(struct kbt_trace *t, enum kb_trace_kind kind,
                      const char *origin);

/* Copies the index-th (from 0) event of kind into *out; returns false when
 * there are not that many. out->text stays the trace's. */
bool kbt_get(struct kbt_trace *t, enum kb_trace_kind kind, size_t index,
             struct kbt_event *out);

/* Whether a NOTE with code was recorded on conn (0: any connection) whose
 * text names fact (NULL: any text). Decisions are matched by their code;
 * fact checks what the text tells people, such as the identity. */
bool kbt_has_note(struct kbt_trace *t, enum kb_note code, uint64_t conn,
                  const char *fact);

/* How many NOTEs carry code. */
size_t kbt_count_code(struct kbt_trace *t, enum kb_note code);

/* The index of the first SEND by origin at or after from whose bytes start
 * with prefix; t->n when there is none. Read once the components are
 * done (it takes no lock). */
size_t kbt_find_send(struct kbt_trace *t, const char *origin,
                     const char *prefix, size_t from);

/* How many SENDs by origin contain needle. */
size_t kbt_count_sends_with(struct kbt_trace *t, const char *origin,
                            const char *needle);

/* The text of the first NOTE by origin that contains needle, or NULL. For
 * what a note tells people (a client's notes carry no decision code). */
const char *kbt_find_note(struct kbt_trace *t, const char *origin,
                          const char *needle);

/* Asserts that origin's OPEN and CLOSE events number connections 1..n in
 * order, each closed before the next opens, all n closed. */
void kbt_assert_serial_conns(struct kbt_trace *t, const char *origin,
                             uint64_t n);

/* Whether any recorded text or bytes contain needle. */
bool kbt_anywhere(struct kbt_trace *t, const char *needle);

/* Blocks until an event of kind on hop is recorded (Check's timeout
 * bounds a wait that never ends). */
void kbt_wait_for(struct kbt_trace *t, enum kb_trace_kind kind,
                  enum kb_hop hop);

#endif /* TESTS_KBT_H */
