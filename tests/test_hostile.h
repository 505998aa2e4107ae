/*
 * test_hostile.h - what the files of test_hostile share: the real listener
 * in front of the real Exchange (kbt_env.h) with connection names from
 * sim/'s table, raw connections named in the trace, waits on trace events,
 * and the checks that the listener still serves a normal client.
 */
#ifndef TESTS_TEST_HOSTILE_H
#define TESTS_TEST_HOSTILE_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>

#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "sim/sim_env.h"

#define T_NOW_MS KBT_CASE_MS
#define T_ALICE_PASSWORD KBT_ALICE_PASSWORD
#define T_BOB_PASSWORD KBT_BOB_PASSWORD
#define T_EWS KBT_EWS
/* The 401 body of every failed NTLM login, whatever the reason. */
#define T_LOGIN_FAILED                                                         \
  "ISA ISA01: authentication failed; check the user name and password"
/* Bounds a wait for a trace event (a close noticed, say): milliseconds
 * normally, well under a second under the sanitizers. */
#define T_EVENT_WAIT_S 10

#define oof_body kbt_oof_body

struct hx_opts {
  enum proxy_policy policy;
  size_t max_body;          /* proxy; 0 = default */
  long upstream_timeout_ms; /* 0 = default */
  unsigned connection_timeout_s;
  const char *backend_url; /* NULL: start the real backend */
};

/* The topology: names come from sim/'s table, as in a run: the test's
 * sockets claim "hostile N" once connected, the proxy claims "<that>
 * upstream K" for its upstream connections, and the backend resolves
 * them, so both hops name connections alike and the backend's trace says
 * which client connection it served. */
struct hx {
  struct kbt_env env;
  struct sim_names names;
  struct kb_names kb_names;
  uint16_t backend_port;
  unsigned next_conn; /* names "hostile <n>" */
};

/* Starts the listener as o says in front of Exchange (or of
 * o->backend_url). Tests keep e in static storage (see hx_teardown). */
void hx_start(struct hx *e, const struct hx_opts *o);
void hx_stop(struct hx *e);

/* A checked fixture's teardown: stops the topology a failed test left
 * running. With CK_FORK=no (the sanitizer runs) a failed assertion leaves
 * the test at once, and the servers' threads would go on writing into a
 * dead test's trace. */
void hx_teardown(void);

/* Requests Exchange answered; requests the listener forwarded. */
uint64_t hx_backend_requests(struct hx *e);
uint64_t hx_forwarded(struct hx *e);

/* Who observed an event, by where it was seen rather than by name (the
 * proxy names itself after its array member, "ISA01"): "backend" for the
 * server of the proxy-backend hop, "proxy" for everything else. */
const char *hx_role(const struct kbt_event *ev);

/* Returns true when an event of kind on hop, by origin ("proxy",
 * "backend"), for the connection named name has been recorded; waits for
 * it up to T_EVENT_WAIT_S. */
bool hx_wait_event(struct kbt_trace *t, enum kb_trace_kind kind,
                   enum kb_hop hop, const char *origin, const char *name);

/* Returns the proxy's id for the client connection named name (from its
 * OPEN event), or 0. */
uint64_t hx_proxy_conn_id(struct kbt_trace *t, const char *name);

/* Connects c to port (e NULL: unnamed), claiming "hostile <n>" in e's
 * names; hx_open connects to the listener. */
void hx_open_port(struct rc *c, struct hx *e, uint16_t port);
void hx_open(struct rc *c, struct hx *e);

/* A normal client, on a new connection, still gets its answer. */
void hx_assert_serves(struct hx *e);

/* Sends auth on a fresh POST and asserts the proxy's 401: a bare
 * "WWW-Authenticate: NTLM" and a one-line body starting with prefix. */
void hx_assert_refused(struct rc *c, const char *auth, const char *prefix);

/* The suites, one per file. */
Suite *hostile_ntlm_suite(void);
Suite *hostile_http_suite(void);
Suite *hostile_upstream_suite(void);
Suite *hostile_invariants_suite(void);
Suite *hostile_fuzz_suite(void);

#endif /* TESTS_TEST_HOSTILE_H */
