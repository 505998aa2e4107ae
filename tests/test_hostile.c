/*
 * test_hostile.c - hostile and broken input against the real ISA listener
 * (proxy.h) in front of the real Exchange (backend.h): the one list of the
 * suites, one per file, and what they share (test_hostile.h).
 *
 *   test_hostile_ntlm.c        broken NTLM over raw sockets, and every row
 *                              of the decision table (decide_rows.h) on
 *                              the wire
 *   test_hostile_http.c        broken HTTP: oversized lines, headers and
 *                              bodies, slow and half-closed clients,
 *                              pipelining, 500 connections, clients that
 *                              leave mid-request
 *   test_hostile_upstream.c    a failing or misbehaving upstream
 *   test_hostile_invariants.c  the NTLM-per-connection invariants over
 *                              seeded random request sequences; no
 *                              password in the evidence files
 *   test_hostile_fuzz.c        the fuzz targets' saved inputs replayed
 *                              through the same entry points
 *                              (fuzz/targets.h)
 *
 * Every case ends by checking that the proxy still serves a normal client
 * (a full Communicator handshake answered 200) and, where it matters, that
 * nothing reached the backend. Tests wait on events (a response, a trace
 * event, a socket closing), never on sleeps; a receive timeout on every
 * socket only bounds a failure.
 */
#include "test_hostile.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the trace ---------------------------------------------------------- */

const char *hx_role(const struct kbt_event *ev)
{
  return ev->hop == KB_HOP_PROXY_BACKEND && ev->side == KB_SIDE_SERVER
             ? "backend"
             : "proxy";
}

bool hx_wait_event(struct kbt_trace *t, enum kb_trace_kind kind,
                   enum kb_hop hop, const char *origin, const char *name)
{
  struct timespec until;
  size_t i = 0;
  bool found = false;

  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += T_EVENT_WAIT_S;
  pthread_mutex_lock(&t->lock);
  while(!found) {
    for(; i < t->n && !found; i++)
      found = t->ev[i].kind == kind && t->ev[i].hop == hop &&
              !strcmp(hx_role(&t->ev[i]), origin) &&
              !strcmp(t->ev[i].conn_name, name);
    if(!found && pthread_cond_timedwait(&t->cond, &t->lock, &until))
      break;
  }
  pthread_mutex_unlock(&t->lock);
  return found;
}

uint64_t hx_proxy_conn_id(struct kbt_trace *t, const char *name)
{
  size_t i;
  uint64_t id = 0;
  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n && !id; i++)
    if(t->ev[i].kind == KB_TRACE_OPEN && t->ev[i].hop == KB_HOP_CLIENT_PROXY &&
       !strcmp(hx_role(&t->ev[i]), "proxy") &&
       !strcmp(t->ev[i].conn_name, name))
      id = t->ev[i].conn;
  pthread_mutex_unlock(&t->lock);
  return id;
}

/* ---- the topology ------------------------------------------------------- */

/* The topology a test is running, for hx_teardown. */
static struct hx *hx_live;

void hx_start(struct hx *e, const struct hx_opts *o)
{
  struct backend_config bc;
  struct proxy_config pc;
  struct kbt_env_opts eo;

  memset(e, 0, sizeof(*e));
  ck_assert_int_eq(sim_names_init(&e->names), 0);
  e->kb_names = sim_names_as_kb(&e->names);
  memset(&bc, 0, sizeof(bc));
  bc.names = e->kb_names;
  memset(&pc, 0, sizeof(pc));
  pc.policy = o->policy;
  pc.max_body = o->max_body;
  pc.upstream_timeout_ms = o->upstream_timeout_ms;
  pc.connection_timeout_s = o->connection_timeout_s;
  pc.names = e->kb_names;
  memset(&eo, 0, sizeof(eo));
  eo.upstream = o->backend_url ? KBT_UP_URL : KBT_UP_EXCHANGE;
  eo.url = o->backend_url;
  eo.exchange = &bc;
  eo.listener = &pc;
  eo.debug = "HX_TRACE";
  kbt_env_start(&e->env, &eo);
  if(e->env.be)
    e->backend_port = backend_port(e->env.be);
  hx_live = e;
}

void hx_stop(struct hx *e)
{
  hx_live = NULL;
  kbt_env_stop(&e->env);
  sim_names_free(&e->names);
}

uint64_t hx_backend_requests(struct hx *e)
{
  struct backend_stats s;
  backend_stats(e->env.be, &s);
  return s.requests;
}

uint64_t hx_forwarded(struct hx *e)
{
  struct proxy_stats s;
  proxy_stats(e->env.px, &s);
  return s.forwarded;
}

void hx_teardown(void)
{
  if(hx_live)
    hx_stop(hx_live);
}

/* ---- a raw HTTP client (rc.h), named in the trace ---------------------- */

void hx_open_port(struct rc *c, struct hx *e, uint16_t port)
{
  char name[32];
  if(!e) {
    rc_connect(c, NULL, port, NULL, NULL);
    return;
  }
  snprintf(name, sizeof(name), "hostile %u", ++e->next_conn);
  rc_connect(c, NULL, port, &e->kb_names, name);
}

void hx_open(struct rc *c, struct hx *e)
{
  hx_open_port(c, e, proxy_port(e->env.px));
}

/* ---- what every test checks last ---------------------------------------- */

void hx_assert_serves(struct hx *e)
{
  struct rc c;
  hx_open(&c, e);
  ck_assert_int_eq(kbt_ntlm_handshake(&c, "alice", T_ALICE_PASSWORD), 200);
  rc_close(&c);
}

void hx_assert_refused(struct rc *c, const char *auth, const char *prefix)
{
  struct rc_resp r;
  ck_assert_int_eq(rc_post(c, T_EWS, auth, oof_body, strlen(oof_body), &r),
                   401);
  /* A fresh start: the schemes offered, no type 2. */
  ck_assert_uint_eq(rc_header_count(&r, "WWW-Authenticate", "NTLM"), 1);
  ck_assert(!strstr(r.head, "TlRMTVNTUAAC"));
  ck_assert_msg(!strncmp(r.body, prefix, strlen(prefix)),
                "for %.60s: body \"%s\" does not start with \"%s\"",
                auth ? auth : "(no Authorization)", r.body, prefix);
  /* One line, ending the body. */
  ck_assert_ptr_eq(strchr(r.body, '\n'), r.body + r.body_len - 1);
  rc_resp_free(&r);
}

int main(void)
{
  static Suite *(*const suites[])(void) = {
      hostile_ntlm_suite,       hostile_http_suite, hostile_upstream_suite,
      hostile_invariants_suite, hostile_fuzz_suite, NULL};

  return kbt_run_list(suites) ? EXIT_FAILURE : EXIT_SUCCESS;
}
