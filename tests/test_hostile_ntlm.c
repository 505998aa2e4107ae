/*
 * test_hostile_ntlm.c - broken NTLM against the real listener over raw
 * sockets (test_hostile.h): malformed base64, truncated, oversized and
 * out-of-bounds messages, wrong signatures and types, type 3s without
 * their type 2, replayed or answering another user's challenge; every row
 * of the integrated decision table (decide_rows.h) on the wire; and the
 * NTLM defects this suite found, fixed.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "common/kb_users.h"
#include "decide_rows.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "ntlm/ntlm.h"
#include "ntlm/ntlm_core.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "test_hostile.h"

/* ---- tests: the decision table on the wire ----------------------------- */

/* A token that claims to be a type 3 but is cut inside its header. */
static const uint8_t hx_cut_type3[12] = {'N', 'T', 'L', 'M', 'S', 'S',
                                         'P', 0,   3,   0,   0,   0};

/* Brings c's connection to state: nothing (UNAUTHENTICATED), a type 1 leg
 * (CHALLENGED: its type 2 in *chal) or a whole handshake as alice. */
static void hx_reach(struct rc *c, int state, struct ntlm_message *chal)
{
  if(state == C)
    kbt_ntlm_leg1(c, chal);
  else if(state == A)
    ck_assert_int_eq(kbt_ntlm_handshake(c, "alice", T_ALICE_PASSWORD), 200);
}

/* The Authorization value of a row's token, or NULL for none (caller
 * frees). A type 3 answers chal when the connection has one, else other,
 * a challenge sent on another connection. */
static char *hx_row_token(const struct row *r, const struct ntlm_message *chal,
                          const struct ntlm_message *other)
{
  const struct ntlm_message *for_it = r->state == C ? chal : other;

  switch(r->token) {
  case PROXY_TOKEN_NONE:
    return NULL;
  case PROXY_TOKEN_BAD:
    return strdup("NTLM !!!!");
  case PROXY_TOKEN_BAD_TYPE3:
    return kbt_ntlm_header(NTLM_SCHEME_NTLM, hx_cut_type3,
                           sizeof(hx_cut_type3));
  case PROXY_TOKEN_KERBEROS:
    return strdup("Negotiate YIIBBgYGKwYBBQUCoIH7MIH4");
  case PROXY_TOKEN_NEGOTIATE:
    return kbt_ntlm_type1(NTLM_SCHEME_NTLM);
  case PROXY_TOKEN_AUTHENTICATE:
    return kbt_ntlm_type3(for_it, NTLM_SCHEME_NTLM, "alice",
                          r->verified ? T_ALICE_PASSWORD : "Wr0ng-Pa55");
  default:
    ck_abort_msg("no token for %d", (int)r->token);
  }
  return NULL;
}

/* Every row of the table (decide_rows.h, the one test_decide runs through
 * proxy_auth_decide) through sockets: the connection brought to the row's
 * state, the row's token on a POST with its body, then what the listener
 * did - forwarded (Exchange got it), offered (401 with no type 2) or
 * challenged (401 with a type 2) - and the state it left, read back: a
 * bare POST forwards only from AUTHENTICATED, and only CHALLENGED takes
 * the type 3 for the type 2 just sent. */
START_TEST(test_decision_rows_on_the_wire)
{
  static struct hx e; /* static: see hx_teardown */
  const struct row *r = &rows[_i];
  struct hx_opts o = {(enum proxy_policy)r->policy, 0, 0, 0, NULL};
  struct ntlm_message chal, other, next;
  struct rc c, b;
  struct rc_resp resp;
  uint64_t before;
  size_t notes;
  char *token, *t3;
  int status;

  memset(&chal, 0, sizeof(chal));
  hx_start(&e, &o);
  hx_open(&b, &e);
  kbt_ntlm_leg1(&b, &other);
  hx_open(&c, &e);
  hx_reach(&c, r->state, &chal);
  token = hx_row_token(r, &chal, &other);
  before = hx_backend_requests(&e);
  notes = kbt_count_code(&e.env.trace, r->note);
  status = rc_post(&c, T_EWS, token, oof_body, strlen(oof_body), &resp);
  switch(r->act) {
  case FWD:
    ck_assert_msg(status == 200, "row %d: %d", _i, status);
    ck_assert_uint_eq(hx_backend_requests(&e), before + 1);
    break;
  case OFFER:
    ck_assert_msg(status == 401, "row %d: %d", _i, status);
    ck_assert_uint_eq(rc_header_count(&resp, "WWW-Authenticate", "NTLM"), 1);
    ck_assert(!strstr(resp.head, "TlRMTVNTUAAC"));
    ck_assert_uint_eq(hx_backend_requests(&e), before);
    break;
  default: /* CHAL */
    ck_assert_uint_eq(hx_backend_requests(&e), before);
    kbt_ntlm_challenge_of(&resp, &next);
    ntlm_message_free(&chal);
    chal = next;
    break;
  }
  /* The note is written before the answer is sent. */
  ck_assert_uint_eq(kbt_count_code(&e.env.trace, r->note), notes + 1);
  rc_resp_free(&resp);
  /* The state it left. */
  before = hx_backend_requests(&e);
  if(r->next == C) {
    t3 = kbt_ntlm_type3(&chal, NTLM_SCHEME_NTLM, "alice", T_ALICE_PASSWORD);
    ck_assert_int_eq(rc_post(&c, T_EWS, t3, oof_body, strlen(oof_body), &resp),
                     200);
    free(t3);
  }
  else
    ck_assert_int_eq(
        rc_post(&c, T_EWS, NULL, oof_body, strlen(oof_body), &resp),
        r->next == A ? 200 : 401);
  ck_assert_uint_eq(hx_backend_requests(&e), before + (r->next != U));
  rc_resp_free(&resp);
  free(token);
  ntlm_message_free(&chal);
  ntlm_message_free(&other);
  rc_close(&c);
  rc_close(&b);
  hx_stop(&e);
}
END_TEST

/* ---- tests: broken NTLM -------------------------------------------------- */

#define T_UNUSABLE "ISA ISA01: unusable Authorization header: "

START_TEST(test_malformed_base64)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc c;
  static const char *const bad[] = {
      "NTLM !!!!",
      "NTLM TlRMTVNTUAABAAAAB4IIog",   /* not a multiple of 4 */
      "NTLM TlRMTVNTUAABAAA===",       /* three '=' */
      "NTLM TlRM=VNTUAABAAAAB4IIogAA", /* '=' inside */
      "NTLM TlRMTVNT\tUAABAAAAB4IIogA",
      "NTLM ====",
      "NTLM \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
      NULL};
  size_t i;

  hx_start(&e, &o);
  hx_open(&c, &e);
  for(i = 0; bad[i]; i++)
    hx_assert_refused(&c, bad[i], T_UNUSABLE "NTLM header: ");
  rc_close(&c);
  ck_assert_uint_eq(hx_backend_requests(&e), 0);
  hx_assert_serves(&e);
  ck_assert_uint_eq(hx_backend_requests(&e), 1);
  hx_stop(&e);
}
END_TEST

START_TEST(test_truncated_and_oversized_ntlm)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc c;
  struct ntlm_message chal;
  struct ntlm_bytes t3;
  struct ntlm_bytes t1 = {NULL, 0};
  uint8_t *big;
  char *v;
  size_t cut;

  hx_start(&e, &o);
  hx_open(&c, &e);
  /* A type 1 cut inside its flags (16 bytes is the oldest, shortest
   * NEGOTIATE there is). */
  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &t1),
                   NTLM_OK);
  v = kbt_ntlm_header(NTLM_SCHEME_NTLM, t1.data, 14);
  hx_assert_refused(&c, v, T_UNUSABLE "NTLM type 1: ");
  free(v);
  /* A type 3 cut at every length from its fixed header to its end: each
   * refused, none forwarded. */
  kbt_ntlm_leg1(&c, &chal);
  t3 = kbt_ntlm_type3_raw(&chal, "alice", T_ALICE_PASSWORD);
  for(cut = 8; cut < t3.len; cut += 13) {
    v = kbt_ntlm_header(NTLM_SCHEME_NTLM, t3.data, cut);
    hx_assert_refused(&c, v, T_UNUSABLE);
    free(v);
  }
  /* Past NTLM_MAX_MESSAGE: a valid type 3 padded to 5000 bytes. */
  big = calloc(1, 5000);
  ck_assert_ptr_nonnull(big);
  memcpy(big, t3.data, t3.len);
  v = kbt_ntlm_header(NTLM_SCHEME_NTLM, big, 5000);
  hx_assert_refused(&c, v, T_UNUSABLE "NTLM header: token of ");
  free(v);
  rc_close(&c);
  ck_assert_uint_eq(hx_backend_requests(&e), 0);
  hx_assert_serves(&e);
  free(big);
  ntlm_bytes_free(&t3);
  ntlm_bytes_free(&t1);
  ntlm_message_free(&chal);
  hx_stop(&e);
}
END_TEST

/* Writes v little-endian at p. */
static void hx_put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

START_TEST(test_offsets_past_the_end)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc c;
  struct ntlm_message chal;
  struct ntlm_bytes t3;
  /* Security buffers of a type 3: LM 12, NT 20, domain 28, user 36,
   * workstation 44, session key 52 (length at +0, offset at +4). */
  static const size_t fields[] = {12, 20, 28, 36, 44, 52};
  static const uint32_t offsets[] = {0xfffffff0u, 0x7fffffffu, 4000u};
  size_t f, k;

  hx_start(&e, &o);
  hx_open(&c, &e);
  for(f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
    for(k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
      uint8_t raw[4096];
      char *v;
      kbt_ntlm_leg1(&c, &chal);
      t3 = kbt_ntlm_type3_raw(&chal, "alice", T_ALICE_PASSWORD);
      ck_assert_uint_le(t3.len, sizeof(raw));
      memcpy(raw, t3.data, t3.len);
      raw[fields[f]] = 0x10; /* a non-zero length, so the offset counts */
      raw[fields[f] + 1] = 0;
      hx_put32(raw + fields[f] + 4, offsets[k]);
      v = kbt_ntlm_header(NTLM_SCHEME_NTLM, raw, t3.len);
      hx_assert_refused(&c, v, T_UNUSABLE "NTLM type 3: ");
      free(v);
      ntlm_bytes_free(&t3);
      ntlm_message_free(&chal);
    }
  /* A length that runs past the end from a valid offset. */
  {
    uint8_t raw[4096];
    char *v;
    kbt_ntlm_leg1(&c, &chal);
    t3 = kbt_ntlm_type3_raw(&chal, "alice", T_ALICE_PASSWORD);
    memcpy(raw, t3.data, t3.len);
    raw[20] = 0xff; /* NtChallengeResponse length 0xffff */
    raw[21] = 0xff;
    v = kbt_ntlm_header(NTLM_SCHEME_NTLM, raw, t3.len);
    hx_assert_refused(&c, v, T_UNUSABLE "NTLM type 3: ");
    free(v);
    ntlm_bytes_free(&t3);
    ntlm_message_free(&chal);
  }
  rc_close(&c);
  ck_assert_uint_eq(hx_backend_requests(&e), 0);
  hx_assert_serves(&e);
  hx_stop(&e);
}
END_TEST

START_TEST(test_wrong_signature_or_type)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc c;
  struct ntlm_bytes t1 = {NULL, 0};
  uint8_t raw[64];
  char *v;

  hx_start(&e, &o);
  hx_open(&c, &e);
  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &t1),
                   NTLM_OK);
  memcpy(raw, t1.data, t1.len);
  raw[6] = 'Q'; /* "NTLMSSQ\0" */
  v = kbt_ntlm_header(NTLM_SCHEME_NTLM, raw, t1.len);
  hx_assert_refused(&c, v,
                    T_UNUSABLE "the Authorization token is not an "
                               "NTLM message");
  free(v);
  memcpy(raw, t1.data, t1.len);
  raw[8] = 2; /* a CHALLENGE, which only servers send */
  v = kbt_ntlm_header(NTLM_SCHEME_NTLM, raw, t1.len);
  hx_assert_refused(&c, v, T_UNUSABLE "the client sent an NTLM type 2");
  free(v);
  /* Type 0 and type 4: no such NTLM messages. */
  raw[8] = 0;
  v = kbt_ntlm_header(NTLM_SCHEME_NTLM, raw, t1.len);
  hx_assert_refused(&c, v, T_UNUSABLE);
  free(v);
  raw[8] = 4;
  v = kbt_ntlm_header(NTLM_SCHEME_NTLM, raw, t1.len);
  hx_assert_refused(&c, v, T_UNUSABLE);
  free(v);
  /* Another scheme altogether. */
  hx_assert_refused(&c, "Basic YWxpY2U6UGFzc3cwcmQh",
                    T_UNUSABLE "NTLM header: scheme \"Basic\"");
  rc_close(&c);
  ck_assert_uint_eq(hx_backend_requests(&e), 0);
  hx_assert_serves(&e);
  ntlm_bytes_free(&t1);
  hx_stop(&e);
}
END_TEST

START_TEST(test_type3_without_type2)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_REQUEST, 0, 0, 0, NULL};
  struct rc a, b;
  struct ntlm_message chal;
  char *t3;

  hx_start(&e, &o);
  /* A type 3 for a challenge sent on another connection, on a fresh one. */
  hx_open(&a, &e);
  kbt_ntlm_leg1(&a, &chal);
  t3 = kbt_ntlm_type3(&chal, NTLM_SCHEME_NTLM, "alice", T_ALICE_PASSWORD);
  hx_open(&b, &e);
  hx_assert_refused(&b, t3,
                    "ISA ISA01: NTLM type 3 without a challenge on "
                    "this connection; start again with a type 1");
  /* On an authenticated connection, a type 3 without a new type 2 is no
   * shortcut either: refused, and the connection de-authenticated. */
  ck_assert_int_eq(kbt_ntlm_handshake(&b, "bob", T_BOB_PASSWORD), 200);
  hx_assert_refused(&b, t3, "ISA ISA01: NTLM type 3 without a challenge");
  hx_assert_refused(&b, NULL, "ISA ISA01: authentication required");
  ck_assert_uint_eq(hx_backend_requests(&e), 1);
  rc_close(&a);
  rc_close(&b);
  hx_assert_serves(&e);
  free(t3);
  ntlm_message_free(&chal);
  hx_stop(&e);
}
END_TEST

START_TEST(test_type3_replayed_on_another_connection)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_REQUEST, 0, 0, 0, NULL};
  struct rc a, b;
  struct ntlm_message chal_a, chal_b, chal_a2;
  struct rc_resp r;
  char *t3;

  hx_start(&e, &o);
  hx_open(&a, &e);
  kbt_ntlm_leg1(&a, &chal_a);
  t3 = kbt_ntlm_type3(&chal_a, NTLM_SCHEME_NTLM, "alice", T_ALICE_PASSWORD);
  ck_assert_int_eq(rc_post(&a, T_EWS, t3, oof_body, strlen(oof_body), &r), 200);
  rc_resp_free(&r);
  /* Captured and replayed on another connection, after its own type 2. */
  hx_open(&b, &e);
  kbt_ntlm_leg1(&b, &chal_b);
  ck_assert(memcmp(chal_a.server_challenge, chal_b.server_challenge, 8));
  hx_assert_refused(&b, t3, T_LOGIN_FAILED);
  /* ... and replayed on its own connection after a new type 2. */
  kbt_ntlm_leg1(&a, &chal_a2);
  hx_assert_refused(&a, t3, T_LOGIN_FAILED);
  ck_assert_uint_eq(hx_backend_requests(&e), 1);
  /* Both connections can still authenticate properly. */
  ck_assert_int_eq(kbt_ntlm_handshake(&b, "bob", T_BOB_PASSWORD), 200);
  ck_assert_int_eq(kbt_ntlm_handshake(&a, "alice", T_ALICE_PASSWORD), 200);
  ck_assert_uint_eq(hx_backend_requests(&e), 3);
  rc_close(&a);
  rc_close(&b);
  free(t3);
  ntlm_message_free(&chal_a);
  ntlm_message_free(&chal_a2);
  ntlm_message_free(&chal_b);
  hx_stop(&e);
}
END_TEST

START_TEST(test_type3_for_another_users_challenge)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc a, b;
  struct ntlm_message chal_a, chal_b;
  struct rc_resp r;
  char *alice_for_b, *bob_for_b;

  hx_start(&e, &o);
  hx_open(&a, &e);
  hx_open(&b, &e);
  kbt_ntlm_leg1(&a, &chal_a);
  kbt_ntlm_leg1(&b, &chal_b);
  /* alice answers bob's challenge with her own password, on her own
   * connection; then bob's own valid answer is tried on alice's. */
  alice_for_b =
      kbt_ntlm_type3(&chal_b, NTLM_SCHEME_NTLM, "alice", T_ALICE_PASSWORD);
  bob_for_b = kbt_ntlm_type3(&chal_b, NTLM_SCHEME_NTLM, "bob", T_BOB_PASSWORD);
  hx_assert_refused(&a, alice_for_b, T_LOGIN_FAILED);
  ntlm_message_free(&chal_a);
  kbt_ntlm_leg1(&a, &chal_a);
  hx_assert_refused(&a, bob_for_b, T_LOGIN_FAILED);
  ck_assert_uint_eq(hx_backend_requests(&e), 0);
  /* bob's connection is untouched by what happened on alice's. */
  ck_assert_int_eq(
      rc_post(&b, T_EWS, bob_for_b, oof_body, strlen(oof_body), &r), 200);
  rc_resp_free(&r);
  ck_assert(kbt_has_note(&e.env.trace, KB_NOTE_AUTH_OK, 0, "FABRIKAM\\bob"));
  ck_assert(!kbt_has_note(&e.env.trace, KB_NOTE_AUTH_OK, 0, "FABRIKAM\\alice"));
  ck_assert(
      !kbt_has_note(&e.env.trace, KB_NOTE_FORWARD_AUTHENTICATED, 0, "alice"));
  ck_assert_uint_eq(hx_backend_requests(&e), 1);
  rc_close(&a);
  rc_close(&b);
  hx_assert_serves(&e);
  free(alice_for_b);
  free(bob_for_b);
  ntlm_message_free(&chal_a);
  ntlm_message_free(&chal_b);
  hx_stop(&e);
}
END_TEST

/* ---- tests: defects found by this suite, fixed ------------------------- */

/* The user store as ntlm_server_verify sees it. */
static const char *hx_lookup(void *ctx, const char *domain, const char *user)
{
  (void)ctx;
  (void)domain;
  return !strcmp(user, "alice") ? T_ALICE_PASSWORD : NULL;
}

/* A challenge carrying NEGOTIATE_ANONYMOUS (what a hostile or broken
 * server may send) does not make Communicator's answer claim to be
 * anonymous: alice's type 3 is still alice's and verifies. (Found by
 * fuzz_ntlm, tests/data/fuzz/ntlm/type2-anonymous-flag-echoed.) */
START_TEST(test_client_never_echoes_anonymous_flag)
{
  struct ntlm_server_info info = {"FABRIKAM", "ISA01", NULL, NULL};
  static const uint8_t sc[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  struct ntlm_bytes t2 = {NULL, 0};
  struct ntlm_bytes t3;
  struct ntlm_message chal, auth;
  char err[256];

  ck_assert_int_eq(
      ntlm_server_challenge(&info, NTLM_COMMUNICATOR_FLAGS, sc, 0, &t2),
      NTLM_OK);
  ck_assert_int_eq(ntlm_decode(t2.data, t2.len, &chal, NULL, 0), NTLM_OK);
  chal.flags |= NTLM_NEGOTIATE_ANONYMOUS; /* what a hostile server sends */
  t3 = kbt_ntlm_type3_raw(&chal, "alice", T_ALICE_PASSWORD);
  ck_assert_int_eq(ntlm_decode(t3.data, t3.len, &auth, NULL, 0), NTLM_OK);
  ck_assert_msg(!(auth.flags & NTLM_NEGOTIATE_ANONYMOUS),
                "alice's type 3 claims to be anonymous (flags 0x%08x)",
                (unsigned)auth.flags);
  err[0] = '\0';
  ck_assert_msg(ntlm_server_verify(&auth, sc, hx_lookup, NULL, NULL, err,
                                   sizeof(err)) == NTLM_OK,
                "%s", err);
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);
  ntlm_bytes_free(&t3);
  ntlm_bytes_free(&t2);
}
END_TEST

/* A token with a vertical tab or form feed inside (which nettle would
 * skip) is not base64. (Found by fuzz_ntlm_header,
 * tests/data/fuzz/ntlm_header/vertical-tab-inside-token.) */
START_TEST(test_header_token_only_base64)
{
  static const char *const values[] = {
      /* Four of them, so the length stays a multiple of 4. */
      "NTLM TlRMTVNT\v\v\v\vUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0==",
      "NTLM TlRMTVNT\f\f\f\fUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0==",
      NULL};
  struct ntlm_bytes b = {NULL, 0};
  size_t i;

  for(i = 0; values[i]; i++) {
    ck_assert_msg(ntlm_header_parse(values[i], NULL, &b, NULL, 0) ==
                      NTLM_ERR_BASE64,
                  "a token with a \\%c inside was accepted",
                  values[i][13] == '\v' ? 'v' : 'f');
    ntlm_bytes_free(&b);
  }
}
END_TEST

/* A token with the NTLMSSP signature but a type NTLM does not have is
 * refused saying so, not as "no NTLMSSP signature". */
START_TEST(test_unknown_type_named)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc c;
  struct rc_resp r;
  struct ntlm_bytes t1 = {NULL, 0};
  char *v;

  hx_start(&e, &o);
  hx_open(&c, &e);
  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &t1),
                   NTLM_OK);
  t1.data[8] = 4;
  v = kbt_ntlm_header(NTLM_SCHEME_NTLM, t1.data, t1.len);
  ck_assert_int_eq(rc_post(&c, T_EWS, v, oof_body, strlen(oof_body), &r), 401);
  ck_assert_msg(!strstr(r.body, "no NTLMSSP signature") &&
                    strstr(r.body, "type 4"),
                "%s", r.body);
  rc_resp_free(&r);
  rc_close(&c);
  free(v);
  ntlm_bytes_free(&t1);
  hx_stop(&e);
}
END_TEST

Suite *hostile_ntlm_suite(void)
{
  Suite *s = suite_create("ntlm");
  TCase *tc;

  tc = tcase_create("ntlm");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, hx_teardown);
  tcase_add_test(tc, test_malformed_base64);
  tcase_add_test(tc, test_truncated_and_oversized_ntlm);
  tcase_add_test(tc, test_offsets_past_the_end);
  tcase_add_test(tc, test_wrong_signature_or_type);
  tcase_add_test(tc, test_type3_without_type2);
  tcase_add_test(tc, test_type3_replayed_on_another_connection);
  tcase_add_test(tc, test_type3_for_another_users_challenge);
  tcase_add_test(tc, test_client_never_echoes_anonymous_flag);
  tcase_add_test(tc, test_header_token_only_base64);
  tcase_add_test(tc, test_unknown_type_named);
  suite_add_tcase(s, tc);

  tc = tcase_create("decision table");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, hx_teardown);
  tcase_add_loop_test(tc, test_decision_rows_on_the_wire, 0, (int)DECIDE_NROWS);
  suite_add_tcase(s, tc);
  return s;
}
