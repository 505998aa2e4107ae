/*
 * test_defects.c - the listener's defects (proxy/defects.c, serve
 * --defect) and the pass-through listener, each shown by Exchange's own
 * counters: every defect makes its symptom appear, and the correct
 * listener - pass-through alone, policy per-request - shows none. The
 * rows the defects add to the decision table, as data; the listener
 * in-process over raw sockets; `kbsim serve` as users run it, its
 * Exchange's status read as JSON; and the contradictions serve refuses.
 */
#include <check.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_defect.h"
#include "kbt.h"
#include "ntlm/ntlm.h"
#include "proc.h"
#include "proxy/auth.h"
#include "proxy/proxy.h"
#include "rc.h"

#define EWS "/EWS/Exchange.asmx"
#define ALICE_PASSWORD "Passw0rd!"
#define BOB_PASSWORD "Hunter2?"
#define ALICE "FABRIKAM\\alice:" ALICE_PASSWORD
#define BOB "FABRIKAM\\bob:" BOB_PASSWORD

/* ---- the decision table's defect rows, as data -------------------------- */

enum { U = PROXY_AUTH_UNAUTHENTICATED, C = PROXY_AUTH_CHALLENGED };
enum { A = PROXY_AUTH_AUTHENTICATED };
enum { PC = PROXY_POLICY_PER_CONNECTION, PR = PROXY_POLICY_PER_REQUEST };
#define BLF PROXY_DEFECT(KB_DEFECT_BODY_LESS_FORWARD)
#define BOT PROXY_DEFECT(KB_DEFECT_BODY_ON_TYPE1)

/* A type 1 (the rows the defects change) by state, policy, body and
 * defects: the action, the next state and the note. */
struct defect_row {
  int state, policy;
  bool body;
  unsigned defects;
  enum proxy_act act;
  int next;
  enum kb_note note;
};

static const struct defect_row defect_rows[] = {
    /* body-less-forward: the bug whatever the policy */
    {A, PR, false, BLF, PROXY_ACT_FORWARD, A, KB_NOTE_REAUTH_SKIPPED},
    {A, PR, true, BLF, PROXY_ACT_FORWARD, A, KB_NOTE_REAUTH_SKIPPED},
    {A, PC, false, BLF, PROXY_ACT_FORWARD, A, KB_NOTE_REAUTH_SKIPPED},
    {U, PR, false, BLF, PROXY_ACT_CHALLENGE, C, KB_NOTE_CHALLENGE},
    {C, PR, false, BLF, PROXY_ACT_CHALLENGE, C, KB_NOTE_CHALLENGE},
    /* without it, per-request challenges (the fix) */
    {A, PR, false, 0, PROXY_ACT_CHALLENGE, C, KB_NOTE_REAUTH_CHALLENGED},
    /* body-on-type1: a type 1 with a body forwarded, the state kept */
    {U, PR, true, BOT, PROXY_ACT_FORWARD, U, KB_NOTE_TYPE1_BODY_FORWARDED},
    {C, PR, true, BOT, PROXY_ACT_FORWARD, C, KB_NOTE_TYPE1_BODY_FORWARDED},
    {A, PR, true, BOT, PROXY_ACT_FORWARD, A, KB_NOTE_TYPE1_BODY_FORWARDED},
    {U, PC, true, BOT, PROXY_ACT_FORWARD, U, KB_NOTE_TYPE1_BODY_FORWARDED},
    /* ... only with a body, and per-connection's row first */
    {U, PR, false, BOT, PROXY_ACT_CHALLENGE, C, KB_NOTE_CHALLENGE},
    {A, PC, true, BOT, PROXY_ACT_FORWARD, A, KB_NOTE_REAUTH_SKIPPED},
    /* without it, a body changes nothing */
    {U, PR, true, 0, PROXY_ACT_CHALLENGE, C, KB_NOTE_CHALLENGE},
    {U, PC, true, 0, PROXY_ACT_CHALLENGE, C, KB_NOTE_CHALLENGE},
};

START_TEST(defect_row_decides)
{
  const struct defect_row *r = &defect_rows[_i];
  struct proxy_auth_input in = {.state = (enum proxy_auth_state)r->state,
                                .policy = (enum proxy_policy)r->policy,
                                .token = PROXY_TOKEN_NEGOTIATE,
                                .defects = r->defects,
                                .has_body = r->body};
  struct proxy_auth_decision d;

  proxy_auth_decide(&in, &d);
  ck_assert_msg(d.act == r->act && (int)d.next == r->next && d.note == r->note,
                "row %d: %s, %s -> %s", _i, proxy_auth_state_name(in.state),
                proxy_policy_name(in.policy), kb_note_name(d.note));
  ck_assert_int_eq(d.reauth_skipped, r->note == KB_NOTE_REAUTH_SKIPPED);
  ck_assert(!d.forget && !d.auth_ok && !d.auth_failed);
}
END_TEST

/* Only type 1s change: every other token decides as without defects. */
START_TEST(defects_change_only_type1)
{
  int state, policy, token, verified, body;

  for(state = U; state <= A; state++)
    for(policy = PC; policy <= PR; policy++)
      for(token = 0; token < PROXY_TOKEN_COUNT; token++)
        for(verified = 0; verified < 2; verified++)
          for(body = 0; body < 2; body++) {
            struct proxy_auth_input in = {.state = (enum proxy_auth_state)state,
                                          .policy = (enum proxy_policy)policy,
                                          .token = (enum proxy_token)token,
                                          .verified = verified != 0,
                                          .has_body = body != 0};
            struct proxy_auth_decision plain, broken;

            if(token == PROXY_TOKEN_NEGOTIATE)
              continue;
            proxy_auth_decide(&in, &plain);
            in.defects = BLF | BOT;
            proxy_auth_decide(&in, &broken);
            ck_assert(!memcmp(&plain, &broken, sizeof(plain)));
          }
}
END_TEST

/* ---- one listener in front of Exchange, in-process ---------------------- */

struct df {
  struct kb_users *users;
  struct backend *be;
  struct proxy *px;
  struct kbt_trace trace;
  char backend_url[64];
};

/* The two listeners the defects break. */
enum df_kind {
  DF_PASS_THROUGH, /* anonymous listener, Exchange authenticates (IIS) */
  DF_ISA           /* integrated listener per-request, Exchange trusts it */
};

/* Started in static storage, so a failed test that leaves early (no fork
 * under the sanitizers) still has it stopped by df_teardown. */
static struct df df_live;

static void df_start(enum df_kind kind, unsigned defects)
{
  struct df *e = &df_live;
  struct backend_config bc;
  struct proxy_config pc;
  char err[256];

  memset(e, 0, sizeof(*e));
  kbt_trace_init(&e->trace, false, "T_DEFECTS_TRACE");
  e->users = kb_users_new();
  ck_assert_ptr_nonnull(e->users);
  ck_assert_int_eq(kb_users_add_spec(e->users, ALICE, err, sizeof(err)), 0);
  ck_assert_int_eq(kb_users_add_spec(e->users, BOB, err, sizeof(err)), 0);
  memset(&bc, 0, sizeof(bc));
  bc.clock.now_ms = kbt_now;
  bc.rng.fill = kbt_fill;
  bc.trace = kbt_trace_sink(&e->trace);
  bc.users = e->users;
  bc.auth =
      kind == DF_PASS_THROUGH ? BACKEND_AUTH_INTEGRATED : BACKEND_AUTH_NONE;
  ck_assert_msg(backend_start(&bc, &e->be, err, sizeof(err)) == 0, "%s", err);
  snprintf(e->backend_url, sizeof(e->backend_url), "http://127.0.0.1:%u",
           (unsigned)backend_port(e->be));
  memset(&pc, 0, sizeof(pc));
  pc.backend_url = e->backend_url;
  pc.users = e->users;
  pc.auth = kind == DF_PASS_THROUGH ? PROXY_AUTH_NONE : PROXY_AUTH_INTEGRATED;
  pc.policy = PROXY_POLICY_PER_REQUEST;
  pc.defects = defects;
  pc.clock.now_ms = kbt_now;
  pc.rng.fill = kbt_fill;
  pc.trace = kbt_trace_sink(&e->trace);
  ck_assert_msg(proxy_start(&pc, &e->px, err, sizeof(err)) == 0, "%s", err);
}

static void df_stop(void)
{
  struct df *e = &df_live;

  proxy_stop(e->px);
  backend_stop(e->be);
  kb_users_free(e->users);
  kbt_trace_free(&e->trace);
  memset(e, 0, sizeof(*e));
}

static void df_teardown(void)
{
  if(df_live.users)
    df_stop();
}

/* Waits until the listener holds no client connection (each closed, its
 * upstream connection closed or pooled). */
static void df_idle(void)
{
  ck_assert_int_eq(proxy_wait_idle(df_live.px, 10000), 0);
}

/* Exchange's record of its connection id (from 1). */
static struct backend_conn_info df_record(uint64_t id)
{
  static struct backend_conn_info recs[16];
  size_t n = backend_connections(df_live.be, recs, 16), i;

  for(i = 0; i < n; i++)
    if(recs[i].id == id)
      return recs[i];
  ck_abort_msg("Exchange has no connection %llu", (unsigned long long)id);
  return recs[0];
}

static struct backend_stats df_exchange(void)
{
  struct backend_stats s;

  backend_stats(df_live.be, &s);
  return s;
}

/* ---- a raw client's requests and NTLM legs ------------------------------ */
/* (The same legs as test_hostile's, until tests/ shares them.) */

static void df_open(struct rc *c)
{
  rc_connect(c, NULL, proxy_port(df_live.px), NULL, NULL);
}

/* Sends a POST to EWS as Communicator lays it out, with Authorization
 * auth (NULL: none) and extra header lines (NULL: none), and its body
 * unless hold_body; reads the answer into r unless r is NULL. Returns its
 * status (0 when not read). */
static int df_post(struct rc *c, const char *auth, const char *body,
                   const char *extra, bool hold_body, struct rc_resp *r)
{
  struct kb_buf req;
  size_t len = body ? strlen(body) : 0;

  kb_buf_init(&req, (size_t)1 << 20);
  ck_assert_int_eq(kb_buf_printf(&req,
                                 "POST " EWS " HTTP/1.1\r\n"
                                 "Accept: text/xml\r\n"
                                 "Content-Type: text/xml; charset=utf-8\r\n"
                                 "Host: autodiscover.fabrikam.com\r\n"
                                 "Content-Length: %zu\r\n%s%s%s%s\r\n",
                                 len, auth ? "Authorization: " : "",
                                 auth ? auth : "", auth ? "\r\n" : "",
                                 extra ? extra : ""),
                   KB_BUF_OK);
  if(len && !hold_body)
    ck_assert_int_eq(kb_buf_add(&req, body, len), KB_BUF_OK);
  ck_assert(rc_send(c, req.data, req.len));
  kb_buf_free(&req);
  if(!r)
    return 0;
  rc_read(c, r);
  return r->status;
}

/* "NTLM <type 1>" with Communicator's flags (caller frees). */
static char *df_type1(void)
{
  struct ntlm_bytes b = {NULL, 0};
  char *v;

  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &b), NTLM_OK);
  v = ntlm_header_format(NTLM_SCHEME_NTLM, b.data, b.len);
  ck_assert_ptr_nonnull(v);
  ntlm_bytes_free(&b);
  return v;
}

/* "NTLM <type 3>" answering the type 2 of the 401 r as FABRIKAM\user
 * (caller frees). */
static char *df_type3(const struct rc_resp *r, const char *user,
                      const char *password)
{
  struct ntlm_client_creds creds = {"FABRIKAM", user, password, "COMMUNICATOR",
                                    NTLM_RESPONSE_V2};
  static const uint8_t cc[8] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
  struct ntlm_bytes t2 = {NULL, 0}, t3 = {NULL, 0};
  struct ntlm_message chal;
  char www[4096];
  char *v;

  ck_assert_int_eq(r->status, 401);
  ck_assert_ptr_nonnull(rc_header(r, "WWW-Authenticate", www, sizeof(www)));
  ck_assert_int_eq(ntlm_header_parse(www, NULL, &t2, NULL, 0), NTLM_OK);
  ck_assert_int_eq(ntlm_decode(t2.data, t2.len, &chal, NULL, 0), NTLM_OK);
  ck_assert_int_eq(chal.type, NTLM_TYPE_CHALLENGE);
  ck_assert_int_eq(ntlm_client_authenticate(&creds, &chal, cc, 0, &t3, NULL, 0),
                   NTLM_OK);
  v = ntlm_header_format(NTLM_SCHEME_NTLM, t3.data, t3.len);
  ck_assert_ptr_nonnull(v);
  ntlm_message_free(&chal);
  ntlm_bytes_free(&t2);
  ntlm_bytes_free(&t3);
  return v;
}

/* GetUserOofSettings for user's own mailbox (caller frees). */
static char *df_oof(const char *user)
{
  const char *at = strstr(kbt_oof_body, "alice@");
  char *body = malloc(strlen(kbt_oof_body) + 16);

  ck_assert_ptr_nonnull(at);
  ck_assert_ptr_nonnull(body);
  sprintf(body, "%.*s%s%s", (int)(at - kbt_oof_body), kbt_oof_body, user,
          at + strlen("alice"));
  return body;
}

/* Communicator's POST on c as FABRIKAM\user: the type 1 leg without a
 * body, then the type 3 with user's GetUserOofSettings. Returns the
 * final status (401 when the first leg got no type 2). */
static int df_handshake(struct rc *c, const char *user, const char *password)
{
  struct rc_resp r;
  char *t1 = df_type1(), *t3, *body = df_oof(user);
  int status;

  status = df_post(c, t1, NULL, NULL, false, &r);
  free(t1);
  if(status != 401 || !strstr(r.head, "WWW-Authenticate: NTLM T")) {
    rc_resp_free(&r);
    free(body);
    return status;
  }
  t3 = df_type3(&r, user, password);
  rc_resp_free(&r);
  status = df_post(c, t3, body, NULL, false, &r);
  if(status == 200)
    ck_assert_ptr_nonnull(strstr(r.body, "GetUserOofSettingsResponse"));
  rc_resp_free(&r);
  free(t3);
  free(body);
  return status;
}

/* ---- the pass-through listener's defects -------------------------------- */

/* How many times line occurs in head. */
static unsigned df_count_lines(const char *head, const char *line)
{
  unsigned n = 0;

  for(head = strstr(head, line); head; head = strstr(head + 1, line))
    n++;
  return n;
}

/* handshake-split: the type 3 goes on a new upstream connection, where
 * Exchange has no challenge pending; pinned, the handshake completes on
 * one. */
static void df_handshake_split(bool broken)
{
  struct backend_stats s;
  struct rc c;

  df_start(DF_PASS_THROUGH,
           broken ? PROXY_DEFECT(KB_DEFECT_HANDSHAKE_SPLIT) : 0);
  df_open(&c);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD),
                   broken ? 401 : 200);
  rc_close(&c);
  df_idle();
  s = df_exchange();
  ck_assert_uint_eq(s.type3_without_challenge, broken);
  ck_assert_uint_eq(s.connections, broken ? 2 : 1);
  ck_assert_uint_eq(s.challenges, 1);
  ck_assert_uint_eq(df_record(broken ? 2 : 1).type3_without_challenge, broken);
  ck_assert_uint_eq(kbt_count_code(&df_live.trace, KB_NOTE_UPSTREAM_UNPINNED),
                    broken ? 2 : 0);
  df_stop();
}

START_TEST(handshake_split)
{
  df_handshake_split(false);
  df_handshake_split(true);
}
END_TEST

/* mixes-identities: alice's upstream connection, authenticated, serves
 * bob's first request, which carries no credentials: Exchange answers
 * bob's mailbox to alice. Pinned, bob is asked for credentials. */
static void df_mixes_identities(bool broken)
{
  struct backend_stats s;
  struct rc_resp r;
  struct rc c;
  char *bob_oof = df_oof("bob");

  df_start(DF_PASS_THROUGH,
           broken ? PROXY_DEFECT(KB_DEFECT_MIXES_IDENTITIES) : 0);
  df_open(&c);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 200);
  rc_close(&c);
  df_idle(); /* alice's client connection closed: its upstream pooled */
  df_open(&c);
  ck_assert_int_eq(df_post(&c, NULL, bob_oof, NULL, false, &r),
                   broken ? 200 : 401);
  rc_resp_free(&r);
  rc_close(&c);
  df_idle();
  s = df_exchange();
  ck_assert_uint_eq(s.mismatches, broken);
  ck_assert_uint_eq(s.connections, broken ? 1 : 2);
  if(broken) {
    struct backend_conn_info rec = df_record(1);
    ck_assert_str_eq(rec.last_mismatch_mailbox, "bob@fabrikam.com");
    ck_assert_str_eq(rec.last_mismatch_identity, "FABRIKAM\\alice");
  }
  /* alice's upstream pooled, taken for bob, pooled again */
  ck_assert_uint_eq(kbt_count_code(&df_live.trace, KB_NOTE_UPSTREAM_POOLED),
                    broken ? 3 : 0);
  df_stop();
  free(bob_oof);
}

START_TEST(mixes_identities)
{
  df_mixes_identities(false);
  df_mixes_identities(true);
}
END_TEST

/* pinned-recycled: after the handshake's 2 requests the upstream
 * connection is replaced; the client's next request, on its
 * authenticated connection, reaches Exchange on a new one, which asks
 * for credentials. Pinned, it is served. */
static void df_pinned_recycled(bool broken)
{
  struct backend_stats s;
  struct rc_resp r;
  struct rc c;

  df_start(DF_PASS_THROUGH,
           broken ? PROXY_DEFECT(KB_DEFECT_PINNED_RECYCLED) : 0);
  df_open(&c);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 200);
  ck_assert_int_eq(df_post(&c, NULL, kbt_oof_body, NULL, false, &r),
                   broken ? 401 : 200);
  rc_resp_free(&r);
  rc_close(&c);
  df_idle();
  s = df_exchange();
  ck_assert_uint_eq(s.connections, broken ? 2 : 1);
  ck_assert_uint_eq(s.refused, broken);
  ck_assert_uint_eq(s.unauthenticated_bodies, broken);
  ck_assert_uint_eq(df_record(1).requests, 2u + !broken);
  ck_assert_uint_eq(kbt_count_code(&df_live.trace, KB_NOTE_UPSTREAM_RECYCLED),
                    broken);
  df_stop();
}

START_TEST(pinned_recycled)
{
  df_pinned_recycled(false);
  df_pinned_recycled(true);
}
END_TEST

/* challenge-rewritten: Exchange offers Negotiate and NTLM in two headers;
 * the client gets one header, "Negotiate". A type 2 still passes, so a
 * client that chose NTLM signs in. Pinned and untouched, both offers. */
static void df_challenge_rewritten(bool broken)
{
  struct backend_conn_info rec;
  struct rc_resp r;
  struct rc c;

  df_start(DF_PASS_THROUGH,
           broken ? PROXY_DEFECT(KB_DEFECT_CHALLENGE_REWRITTEN) : 0);
  df_open(&c);
  ck_assert_int_eq(df_post(&c, NULL, NULL, NULL, false, &r), 401);
  ck_assert_uint_eq(rc_header_count(&r, "WWW-Authenticate", "Negotiate"), 1);
  ck_assert_uint_eq(rc_header_count(&r, "WWW-Authenticate", "NTLM"), !broken);
  ck_assert_uint_eq(df_count_lines(r.head, "\r\nWWW-Authenticate:"),
                    broken ? 1 : 2);
  rc_resp_free(&r);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 200);
  rc_close(&c);
  df_idle();
  /* What Exchange sent, whatever the client got. */
  rec = df_record(1);
  ck_assert_uint_ge(rec.www_authenticate_count, 3);
  ck_assert_str_eq(rec.www_authenticate[0], "Negotiate");
  ck_assert_str_eq(rec.www_authenticate[1], "NTLM");
  ck_assert_int_eq(strncmp(rec.www_authenticate[2], "NTLM TlRMTVNTUAAC", 17),
                   0);
  ck_assert_uint_eq(rec.challenges, 1);
  ck_assert_uint_eq(kbt_count_code(&df_live.trace, KB_NOTE_CHALLENGE_REWRITTEN),
                    broken ? 2 : 0);
  df_stop();
}

START_TEST(challenge_rewritten)
{
  df_challenge_rewritten(false);
  df_challenge_rewritten(true);
}
END_TEST

/* ---- the authenticating listener's defects ------------------------------ */

/* body-less-forward: a type 1 without its body on an authenticated
 * connection reaches Exchange, which answers the empty POST with its
 * fault; per-request, the listener challenges it. */
static void df_body_less_forward(bool broken)
{
  struct backend_stats s;
  struct proxy_stats p;
  struct rc_resp r;
  struct rc c;
  char *t1 = df_type1();

  df_start(DF_ISA, broken ? PROXY_DEFECT(KB_DEFECT_BODY_LESS_FORWARD) : 0);
  df_open(&c);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 200);
  ck_assert_int_eq(df_post(&c, t1, NULL, NULL, false, &r), broken ? 500 : 401);
  rc_resp_free(&r);
  rc_close(&c);
  df_idle();
  s = df_exchange();
  proxy_stats(df_live.px, &p);
  ck_assert_uint_eq(s.empty_posts, broken);
  ck_assert_uint_eq(p.reauth_skipped, broken);
  ck_assert_uint_eq(p.challenges, broken ? 1 : 2);
  df_stop();
  free(t1);
}

START_TEST(body_less_forward)
{
  df_body_less_forward(false);
  df_body_less_forward(true);
}
END_TEST

/* body-on-type1: a type 1 that carries the request's body reaches
 * Exchange with it, from nobody; per-request, it is challenged and
 * nothing reaches Exchange. */
static void df_body_on_type1(bool broken)
{
  struct backend_stats s;
  struct rc_resp r;
  struct rc c;
  char *t1 = df_type1();

  df_start(DF_ISA, broken ? PROXY_DEFECT(KB_DEFECT_BODY_ON_TYPE1) : 0);
  df_open(&c);
  ck_assert_int_eq(df_post(&c, t1, kbt_oof_body, NULL, false, &r),
                   broken ? 200 : 401);
  rc_resp_free(&r);
  rc_close(&c);
  df_idle();
  s = df_exchange();
  ck_assert_uint_eq(s.requests, broken);
  ck_assert_uint_eq(s.unauthenticated_bodies, broken);
  if(broken)
    ck_assert_uint_eq(df_record(1).unauthenticated_bodies, 1);
  ck_assert_int_eq(kbt_has_note(&df_live.trace, KB_NOTE_TYPE1_BODY_FORWARDED, 0,
                                "unauthenticated"),
                   broken);
  df_stop();
  free(t1);
}

START_TEST(body_on_type1)
{
  df_body_on_type1(false);
  df_body_on_type1(true);
}
END_TEST

/* Whether bytes arrive on c within ms. */
static bool df_readable(struct rc *c, int ms)
{
  struct pollfd p = {c->fd, POLLIN, 0};

  return c->have > 0 || poll(&p, 1, ms) > 0;
}

/* expect-hang: a client that waits for 100 Continue gets nothing, not
 * even once it sends its body anyway (as curl and .NET do after a
 * second); the listener lets the connection go when the client leaves.
 * Without the defect the 100 comes, then the challenge. */
static void df_expect_hang(bool broken)
{
  const char *expect = "Expect: 100-continue\r\n";
  struct backend_stats s;
  struct rc_resp r;
  struct rc c;
  char *t1 = df_type1();

  df_start(DF_ISA, broken ? PROXY_DEFECT(KB_DEFECT_EXPECT_HANG) : 0);
  df_open(&c);
  df_post(&c, t1, kbt_oof_body, expect, true, NULL);
  if(broken) {
    /* The listener says it holds it; then nothing comes. */
    kbt_wait_for(&df_live.trace, KB_TRACE_NOTE, KB_HOP_CLIENT_PROXY);
    ck_assert(kbt_has_note(&df_live.trace, KB_NOTE_EXPECT_HELD, 0, NULL));
    ck_assert(!df_readable(&c, 300));
    ck_assert(rc_send(&c, kbt_oof_body, strlen(kbt_oof_body)));
    ck_assert(!df_readable(&c, 300));
    rc_close(&c); /* the client gives up */
    df_idle();    /* and the listener lets the connection go */
    ck_assert(kbt_has_note(&df_live.trace, KB_NOTE_CLIENT_LEFT, 0, NULL));
  }
  else {
    ck_assert(rc_fill(&c) > 0);
    ck_assert_int_eq(strncmp(c.buf, "HTTP/1.1 100 Continue\r\n\r\n", 25), 0);
    memmove(c.buf, c.buf + 25, c.have - 25);
    c.have -= 25;
    ck_assert(rc_send(&c, kbt_oof_body, strlen(kbt_oof_body)));
    rc_read(&c, &r);
    ck_assert_int_eq(r.status, 401);
    ck_assert_ptr_nonnull(strstr(r.head, "WWW-Authenticate: NTLM T"));
    rc_resp_free(&r);
    rc_close(&c);
    df_idle();
  }
  s = df_exchange();
  ck_assert_uint_eq(s.requests, 0);
  df_stop();
  free(t1);
}

START_TEST(expect_hang)
{
  df_expect_hang(false);
  df_expect_hang(true);
}
END_TEST

/* A listener that holds a request stops all the same. */
START_TEST(expect_hang_stops)
{
  struct rc c;
  char *t1 = df_type1();

  df_start(DF_ISA, PROXY_DEFECT(KB_DEFECT_EXPECT_HANG));
  df_open(&c);
  df_post(&c, t1, kbt_oof_body, "Expect: 100-continue\r\n", true, NULL);
  kbt_wait_for(&df_live.trace, KB_TRACE_NOTE, KB_HOP_CLIENT_PROXY);
  df_stop();
  ck_assert(rc_closed_by_peer(&c));
  rc_close(&c);
  free(t1);
}
END_TEST

/* A listener that holds an upstream connection in its pool stops all the
 * same, and closes it. */
START_TEST(pool_closes_at_stop)
{
  struct rc c;

  df_start(DF_PASS_THROUGH, PROXY_DEFECT(KB_DEFECT_MIXES_IDENTITIES));
  df_open(&c);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 200);
  rc_close(&c);
  df_idle();
  ck_assert_uint_eq(kbt_count_code(&df_live.trace, KB_NOTE_UPSTREAM_POOLED), 1);
  ck_assert_uint_eq(
      kbt_count(&df_live.trace, KB_TRACE_CLOSE, KB_HOP_PROXY_BACKEND, 0), 0);
  proxy_stop(df_live.px);
  df_live.px = NULL;
  /* Closed at the stop: the listener's CLOSE, then Exchange's. */
  ck_assert_int_eq(backend_wait_idle(df_live.be, 10000), 0);
  ck_assert_uint_eq(
      kbt_count(&df_live.trace, KB_TRACE_CLOSE, KB_HOP_PROXY_BACKEND, 0), 2);
  df_stop();
}
END_TEST

/* proxy_start refuses a defect its listener cannot have, in one line. */
START_TEST(start_refuses)
{
  static const struct {
    enum proxy_auth auth;
    unsigned defects;
    const char *says;
  } cases[] = {
      {PROXY_AUTH_INTEGRATED, PROXY_DEFECT(KB_DEFECT_HANDSHAKE_SPLIT),
       "defect handshake-split is one of a listener that passes NTLM "
       "through; give it auth none"},
      {PROXY_AUTH_NONE, PROXY_DEFECT(KB_DEFECT_EXPECT_HANG),
       "defect expect-hang is one of a listener that authenticates; give it "
       "auth integrated"},
      {PROXY_AUTH_BASIC, PROXY_DEFECT(KB_DEFECT_BODY_ON_TYPE1), "integrated"},
      {PROXY_AUTH_INTEGRATED, PROXY_DEFECT(KB_DEFECT_MIXES_AFTER_SINGLE_LEG),
       "defect mixes-after-single-leg is one of a listener that passes NTLM "
       "through; give it auth none"},
      {PROXY_AUTH_NONE, PROXY_DEFECT(KB_DEFECT_NTLM_OVER_HTTP2),
       "needs HTTP/2"},
      {PROXY_AUTH_NONE, PROXY_DEFECT(KB_DEFECT_COUNT), "name no defect"},
  };
  struct kb_users *users = kb_users_new();
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct proxy_config pc;
    struct proxy *px = NULL;
    char err[256] = "";

    memset(&pc, 0, sizeof(pc));
    pc.backend_url = "http://127.0.0.1:1";
    pc.users = users;
    pc.auth = cases[i].auth;
    pc.defects = cases[i].defects;
    ck_assert_int_eq(proxy_start(&pc, &px, err, sizeof(err)), -1);
    ck_assert_ptr_null(px);
    ck_assert_msg(strstr(err, cases[i].says) && !strchr(err, '\n'), "%s", err);
  }
  ck_assert_ptr_nonnull(proxy_defect_unavailable(KB_DEFECT_NTLM_OVER_HTTP2));
  ck_assert_ptr_null(proxy_defect_unavailable(KB_DEFECT_EXPECT_HANG));
  kb_users_free(users);
}
END_TEST

/* ---- kbsim serve, as users run it --------------------------------------- */

struct df_serve {
  pid_t pid;
  int outfd, errfd;
  uint16_t port;   /* the listener */
  uint16_t status; /* Exchange, whose status serve prints */
};

/* Starts `kbsim serve --pass-through` or with --defect defect (NULL:
 * neither, the policy per-request), alice and bob its users. */
static void df_serve_start(struct df_serve *s, const char *mode,
                           const char *defect)
{
  char *argv[16];
  int n = 0;

  argv[n++] = KBSIM_BIN;
  argv[n++] = "serve";
  argv[n++] = "--proxy";
  argv[n++] = "127.0.0.1:0";
  argv[n++] = "--backend";
  argv[n++] = "127.0.0.1:0";
  argv[n++] = (char *)mode;
  if(defect)
    argv[n++] = (char *)defect;
  argv[n++] = "--user";
  argv[n++] = (char *)ALICE;
  argv[n++] = "--user";
  argv[n++] = (char *)BOB;
  argv[n++] = "-q";
  argv[n] = NULL;
  s->pid = proc_spawn(argv, &s->outfd, &s->errfd);
  s->port =
      (uint16_t)proc_read_port(s->outfd, "ISA listener: http://127.0.0.1:");
  s->status =
      (uint16_t)proc_read_port(s->outfd, "Status:       http://127.0.0.1:");
  ck_assert_uint_gt(s->port, 0);
  ck_assert_uint_gt(s->status, 0);
}

static void df_serve_stop(struct df_serve *s)
{
  struct proc_out o;

  ck_assert_int_eq(kill(s->pid, SIGTERM), 0);
  proc_collect(s->pid, s->outfd, s->errfd, &o);
  ck_assert_msg(o.status == 0, "serve exited %d: %s", o.status, o.err.data);
  proc_free(&o);
}

/* Exchange's status document, as the probe reads it (caller decrefs). */
static json_t *df_serve_status(const struct df_serve *s)
{
  static const char get[] = "GET /kbsim/status HTTP/1.1\r\n"
                            "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
  struct rc_resp r;
  struct rc c;
  json_t *doc;

  rc_connect(&c, NULL, s->status, NULL, NULL);
  ck_assert(rc_send(&c, get, sizeof(get) - 1));
  rc_read(&c, &r);
  ck_assert_int_eq(r.status, 200);
  doc = json_loads(r.body, 0, NULL);
  ck_assert_ptr_nonnull(doc);
  rc_resp_free(&r);
  rc_close(&c);
  return doc;
}

static long long df_int(const json_t *o, const char *key)
{
  const json_t *v = json_object_get(o, key);

  ck_assert_msg(json_is_integer(v), "no integer \"%s\"", key);
  return (long long)json_integer_value(v);
}

/* Waits until Exchange has answered n requests (the listener's answer may
 * reach the client a moment before Exchange's counters show the close of
 * an upstream connection; requests are counted before answering). */
static json_t *df_serve_status_after(const struct df_serve *s, long long n)
{
  json_t *doc = df_serve_status(s);

  ck_assert_int_eq(df_int(doc, "requests"), n);
  return doc;
}

/* `serve --pass-through`: Communicator signs in on one pinned upstream
 * connection; the status says so with the members the probe reads. */
START_TEST(serve_pass_through)
{
  struct df_serve s;
  json_t *doc, *conns, *conn, *offers;
  struct rc c;

  df_serve_start(&s, "--pass-through", NULL);
  rc_connect(&c, NULL, s.port, NULL, NULL);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 200);
  rc_close(&c);
  doc = df_serve_status_after(&s, 2);
  ck_assert_int_eq(df_int(doc, "connections"), 1);
  ck_assert_int_eq(df_int(doc, "challenges"), 1);
  ck_assert_int_eq(df_int(doc, "type3_without_challenge"), 0);
  ck_assert_int_eq(df_int(doc, "unauthenticated_bodies"), 0);
  ck_assert_int_eq(df_int(doc, "mismatches"), 0);
  conns = json_object_get(doc, "per_connection");
  ck_assert_uint_eq(json_array_size(conns), 1);
  conn = json_array_get(conns, 0);
  ck_assert_int_eq(df_int(conn, "challenges"), 1);
  ck_assert_int_eq(df_int(conn, "type3_without_challenge"), 0);
  ck_assert_int_eq(df_int(conn, "unauthenticated_bodies"), 0);
  ck_assert_int_eq(df_int(conn, "www_authenticate_dropped"), 0);
  offers = json_object_get(conn, "www_authenticate");
  ck_assert_uint_eq(json_array_size(offers), 1);
  ck_assert_int_eq(strncmp(json_string_value(json_array_get(offers, 0)),
                           "NTLM TlRMTVNTUAAC", 17),
                   0);
  ck_assert_str_eq(
      json_string_value(json_array_get(json_object_get(conn, "identities"), 0)),
      "FABRIKAM\\alice");
  json_decref(doc);
  df_serve_stop(&s);
}
END_TEST

/* `serve --defect handshake-split`: the same session fails, and the status
 * shows the type 3 that found no challenge on its connection. */
START_TEST(serve_handshake_split)
{
  struct df_serve s;
  json_t *doc, *conns;
  struct rc c;

  df_serve_start(&s, "--defect", "handshake-split");
  rc_connect(&c, NULL, s.port, NULL, NULL);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 401);
  rc_close(&c);
  doc = df_serve_status_after(&s, 2);
  ck_assert_int_eq(df_int(doc, "connections"), 2);
  ck_assert_int_eq(df_int(doc, "type3_without_challenge"), 1);
  ck_assert_int_eq(df_int(doc, "unauthenticated_bodies"), 1);
  conns = json_object_get(doc, "per_connection");
  ck_assert_uint_eq(json_array_size(conns), 2);
  ck_assert_int_eq(df_int(json_array_get(conns, 0), "challenges"), 1);
  ck_assert_int_eq(df_int(json_array_get(conns, 1), "type3_without_challenge"),
                   1);
  json_decref(doc);
  df_serve_stop(&s);
}
END_TEST

/* `serve --defect body-less-forward`, no --policy: KB 942638's empty POST
 * at Exchange. */
START_TEST(serve_body_less_forward)
{
  struct df_serve s;
  struct rc_resp r;
  json_t *doc;
  struct rc c;
  char *t1 = df_type1();

  df_serve_start(&s, "--defect", "body-less-forward");
  rc_connect(&c, NULL, s.port, NULL, NULL);
  ck_assert_int_eq(df_handshake(&c, "alice", ALICE_PASSWORD), 200);
  ck_assert_int_eq(df_post(&c, t1, NULL, NULL, false, &r), 500);
  rc_resp_free(&r);
  rc_close(&c);
  doc = df_serve_status_after(&s, 2);
  ck_assert_int_eq(df_int(doc, "empty_posts"), 1);
  json_decref(doc);
  df_serve_stop(&s);
  free(t1);
}
END_TEST

/* What contradicts itself is a usage error naming the conflict. */
START_TEST(serve_refuses_contradictions)
{
  static const struct {
    const char *args[4];
    const char *says;
  } cases[] = {
      {{"--pass-through", "--policy", "per-request", NULL}, "--policy"},
      {{"--defect", "mixes-identities", "--policy", "per-connection"},
       "--defect mixes-identities"},
      {{"--defect", "body-less-forward", "--policy", "per-request"},
       "--defect body-less-forward"},
      {{"--defect", "expect-hang", "--auth", "basic"}, "--defect expect-hang"},
      {{"--defect", "body-on-type1", "--auth", "none"}, "--auth none"},
      {{"--pass-through", "--auth", "integrated", NULL}, "--pass-through"},
      {{"--defect", "challenge-rewritten", "--defect", "body-on-type1"},
       "--defect challenge-rewritten"},
      {{"--defect", "mixes-after-single-leg", "--policy", "per-request"},
       "--defect mixes-after-single-leg"},
      {{"--defect", "ntlm-over-http2", NULL, NULL}, "HTTP/2"},
      {{"--defect", "keeps-context", NULL, NULL}, "handshake-split"},
  };
  size_t i, j;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *argv[16];
    struct proc_out p;
    const char *bad;
    int n = 0;

    argv[n++] = KBSIM_BIN;
    argv[n++] = "serve";
    argv[n++] = "--proxy";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--backend";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--user";
    argv[n++] = (char *)ALICE;
    for(j = 0; j < 4 && cases[i].args[j]; j++)
      argv[n++] = (char *)cases[i].args[j];
    argv[n] = NULL;
    proc_run(argv, &p);
    bad = proc_usage_error(&p);
    ck_assert_msg(!bad, "case %zu: %s (exit %d): %.500s", i, bad, p.status,
                  p.err.data);
    ck_assert_msg(strstr(p.err.data, cases[i].says), "case %zu: %s", i,
                  p.err.data);
    proc_free(&p);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("defects");
  TCase *rows = tcase_create("rows");
  TCase *through = tcase_create("pass-through");
  TCase *isa = tcase_create("authenticating");
  TCase *serve = tcase_create("serve");
  int failed;

  proc_whole_lines();
  tcase_add_loop_test(rows, defect_row_decides, 0,
                      (int)(sizeof(defect_rows) / sizeof(defect_rows[0])));
  tcase_add_test(rows, defects_change_only_type1);
  tcase_add_test(rows, start_refuses);
  suite_add_tcase(s, rows);
  tcase_add_checked_fixture(through, NULL, df_teardown);
  tcase_set_timeout(through, 60);
  tcase_add_test(through, handshake_split);
  tcase_add_test(through, mixes_identities);
  tcase_add_test(through, pinned_recycled);
  tcase_add_test(through, challenge_rewritten);
  tcase_add_test(through, pool_closes_at_stop);
  suite_add_tcase(s, through);
  tcase_add_checked_fixture(isa, NULL, df_teardown);
  tcase_set_timeout(isa, 60);
  tcase_add_test(isa, body_less_forward);
  tcase_add_test(isa, body_on_type1);
  tcase_add_test(isa, expect_hang);
  tcase_add_test(isa, expect_hang_stops);
  suite_add_tcase(s, isa);
  tcase_set_timeout(serve, 60);
  tcase_add_test(serve, serve_pass_through);
  tcase_add_test(serve, serve_handshake_split);
  tcase_add_test(serve, serve_body_less_forward);
  tcase_add_test(serve, serve_refuses_contradictions);
  suite_add_tcase(s, serve);
  failed = kbt_run(s);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
