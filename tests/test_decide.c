/*
 * test_decide.c - the integrated listener's decision table (proxy/auth.h,
 * proxy/README.md "Integrated") as data: every connection state, policy
 * and Authorization kind through proxy_auth_decide, each row's action,
 * next state, note code and counters; then seeded random sequences in
 * which a small model of the connection tracks what the table promises.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "client/reauth.h"
#include "kbt.h"
#include "proxy/auth.h"

#include "decide_rows.h"

START_TEST(test_table_row)
{
  const struct row *r = &rows[_i];
  struct proxy_auth_input in = {.state = (enum proxy_auth_state)r->state,
                                .policy = (enum proxy_policy)r->policy,
                                .token = r->token,
                                .verified = r->verified};
  struct proxy_auth_decision d;

  proxy_auth_decide(&in, &d);
  ck_assert_msg((int)d.act == r->act && (int)d.next == r->next &&
                    d.note == r->note && d.forget == r->forget,
                "%s %s %s%s: %s -> %s, %s, forget %d",
                proxy_auth_state_name(in.state), proxy_policy_name(in.policy),
                proxy_token_name(in.token), r->verified ? " (verified)" : "",
                proxy_act_name(d.act), proxy_auth_state_name(d.next),
                kb_note_name(d.note), d.forget);
  ck_assert_int_eq(d.auth_ok, (r->counters & OK) != 0);
  ck_assert_int_eq(d.auth_failed, (r->counters & FAIL) != 0);
  ck_assert_int_eq(d.reauth_skipped, (r->counters & SKIP) != 0);
  /* Only a type 3 on a CHALLENGED connection is verified at all. */
  ck_assert_int_eq(proxy_auth_verifies(in.state, in.token, in.kerberos),
                   r->state == C && r->token == PROXY_TOKEN_AUTHENTICATE);
}
END_TEST

/* Every decision's texts: a note naming the connection, and a 401 body
 * exactly when the decision refuses with an offer, which never tells why
 * a type 3 was refused (a client must not learn which accounts exist). */
static void decide_check_texts(const struct proxy_auth_input *in,
                               const struct proxy_auth_decision *d)
{
  const struct proxy_auth_facts f = {.conn = "connection 7",
                                     .listener = "ISA01",
                                     .who = "FABRIKAM\\alice",
                                     .how = "NTLMv2",
                                     .what = "POST forwarded",
                                     .why = "bad base64",
                                     .err = "wrong password",
                                     .first_byte = 0x60,
                                     .handshake = 2};
  /* When nothing records the note (proxy__decide_integrated): only what
   * the body reads is there. */
  const struct proxy_auth_facts unnoted = {
      .listener = f.listener, .why = f.why, .err = f.err};
  char note[1024], body[512], body_alone[512];

  proxy_auth_texts(in, d, &f, note, sizeof(note), body, sizeof(body));
  proxy_auth_texts(in, d, &unnoted, NULL, 0, body_alone, sizeof(body_alone));
  ck_assert_str_eq(body_alone, body);
  ck_assert_msg(strncmp(note, "connection 7", 12) == 0, "%s: \"%s\"",
                kb_note_name(d->note), note);
  ck_assert_int_eq(d->act == PROXY_ACT_OFFER, body[0] != '\0');
  if(body[0] != '\0')
    ck_assert_msg(strncmp(body, "ISA ISA01: ", 11) == 0, "%s", body);
  ck_assert_ptr_null(strstr(body, "wrong password"));
  if(d->note == KB_NOTE_AUTH_REFUSED)
    ck_assert_ptr_nonnull(strstr(note, "wrong password"));
  if(d->act == PROXY_ACT_FORWARD)
    ck_assert_ptr_nonnull(strstr(note, "POST forwarded"));
  if(d->note == KB_NOTE_REAUTH_SKIPPED)
    ck_assert_ptr_nonnull(strstr(note, "not challenged"));
}

/* The table covers every (state, policy, token) triple at least once for
 * type 1 and none, and the decision is total: no input is left without a
 * known action and note. */
/* A listener with a keytab (proxy_config.krb5_keytab): a Kerberos ticket
 * is verified in every state and policy; accepted, it is forwarded with
 * its body and leaves the connection authenticated (kerberos-ok); refused,
 * it is a failed login answered with the offer (kerberos-refused). Without
 * a keytab the rows above hold: the offer, unread. */
START_TEST(test_kerberos_rows)
{
  static const int states[] = {U, C, A};
  static const int policies[] = {PC, PR};
  size_t s, p;

  for(s = 0; s < 3; s++)
    for(p = 0; p < 2; p++) {
      struct proxy_auth_input in = {.state = (enum proxy_auth_state)states[s],
                                    .policy = (enum proxy_policy)policies[p],
                                    .token = PROXY_TOKEN_KERBEROS,
                                    .kerberos = true,
                                    .verified = true,
                                    .has_body = true};
      struct proxy_auth_decision d;

      ck_assert(proxy_auth_verifies(in.state, in.token, true));
      ck_assert(!proxy_auth_verifies(in.state, in.token, false));
      proxy_auth_decide(&in, &d);
      ck_assert_int_eq(d.act, FWD);
      ck_assert_int_eq(d.next, A);
      ck_assert_int_eq(d.note, KB_NOTE_KERBEROS_OK);
      ck_assert(d.kerberos_ok && !d.auth_ok && !d.auth_failed &&
                !d.reauth_skipped && !d.forget);
      in.verified = false;
      proxy_auth_decide(&in, &d);
      ck_assert_int_eq(d.act, OFFER);
      ck_assert_int_eq(d.next, U);
      ck_assert_int_eq(d.note, KB_NOTE_KERBEROS_REFUSED);
      ck_assert(!d.kerberos_ok && d.auth_failed && d.forget);
      in.kerberos = false;
      proxy_auth_decide(&in, &d);
      ck_assert_int_eq(d.note, KB_NOTE_KERBEROS);
      ck_assert(!d.kerberos_ok && !d.auth_failed);
    }
}
END_TEST

START_TEST(test_table_total)
{
  int state, policy, token, verified;

  for(state = U; state <= A; state++)
    for(policy = PC; policy <= PR; policy++)
      for(token = 0; token <= PROXY_TOKEN_COUNT; token++)
        for(verified = 0; verified < 2; verified++) {
          struct proxy_auth_input in = {.state = (enum proxy_auth_state)state,
                                        .policy = (enum proxy_policy)policy,
                                        .token = (enum proxy_token)token,
                                        .verified = verified != 0};
          struct proxy_auth_decision d;
          proxy_auth_decide(&in, &d);
          ck_assert_int_le(d.act, PROXY_ACT_CHALLENGE);
          ck_assert_int_le(d.next, PROXY_AUTH_AUTHENTICATED);
          ck_assert_int_ne(d.note, KB_NOTE_NONE);
          /* Forwarding only from an authenticated connection, or as the
           * verified type 3 that authenticates it. */
          if(d.act == PROXY_ACT_FORWARD)
            ck_assert_int_eq(d.next, PROXY_AUTH_AUTHENTICATED);
          decide_check_texts(&in, &d);
        }
}
END_TEST

/* A small xorshift for the sequences: seeded, the same on every run. */
static uint64_t decide_rand(uint64_t *s)
{
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

/* Thousands of random request sequences on one connection, policy
 * switched at random between requests as the admin endpoint does: the
 * state the decisions thread through keeps the table's promises. A
 * connection is authenticated exactly after a verified type 3 and until
 * anything but a bare request or (per-connection) a type 1; only a type
 * 1 on an authenticated per-connection listener is forwarded body-less. */
START_TEST(test_random_sequences)
{
  static const enum proxy_token tokens[] = {
      PROXY_TOKEN_NONE,     PROXY_TOKEN_BAD,       PROXY_TOKEN_BAD_TYPE3,
      PROXY_TOKEN_KERBEROS, PROXY_TOKEN_NEGOTIATE, PROXY_TOKEN_AUTHENTICATE};
  uint64_t seed = 0x9e3779b97f4a7c15u;
  unsigned skipped = 0, authenticated = 0;
  int run, step;

  for(run = 0; run < 2000; run++) {
    enum proxy_auth_state state = PROXY_AUTH_UNAUTHENTICATED;
    bool model_auth = false; /* the model: an identity is held */
    bool model_chal = false; /* a type 2 is pending */
    for(step = 0; step < 20; step++) {
      struct proxy_auth_input in;
      struct proxy_auth_decision d;
      uint64_t r = decide_rand(&seed);
      memset(&in, 0, sizeof(in)); /* no defects, no body */
      in.state = state;
      in.policy =
          (r & 1) ? PROXY_POLICY_PER_REQUEST : PROXY_POLICY_PER_CONNECTION;
      in.token = tokens[(r >> 1) % (sizeof(tokens) / sizeof(tokens[0]))];
      in.verified = (r >> 8) & 1;
      proxy_auth_decide(&in, &d);

      if(d.reauth_skipped) {
        ck_assert(model_auth && in.policy == PROXY_POLICY_PER_CONNECTION &&
                  in.token == PROXY_TOKEN_NEGOTIATE);
        skipped++;
      }
      if(d.act == PROXY_ACT_FORWARD)
        ck_assert(model_auth || (model_chal && in.verified &&
                                 in.token == PROXY_TOKEN_AUTHENTICATE));
      /* the model's own step */
      if(in.token == PROXY_TOKEN_NEGOTIATE) {
        if(!(model_auth && in.policy == PROXY_POLICY_PER_CONNECTION)) {
          model_auth = false;
          model_chal = true;
        }
      }
      else if(in.token == PROXY_TOKEN_AUTHENTICATE) {
        model_auth = model_chal && in.verified;
        model_chal = false;
        authenticated += model_auth;
      }
      else if(in.token != PROXY_TOKEN_NONE || !model_auth) {
        model_auth = false;
        model_chal = false;
      }
      state = d.next;
      ck_assert_int_eq(state == PROXY_AUTH_AUTHENTICATED, model_auth);
      ck_assert_int_eq(state == PROXY_AUTH_CHALLENGED, model_chal);
    }
  }
  /* Both interesting paths were taken many times. */
  ck_assert_uint_gt(skipped, 100);
  ck_assert_uint_gt(authenticated, 100);
}
END_TEST

/* Communicator after the answer to its body-less type 1. */
START_TEST(test_client_reauth_steps)
{
  static const struct {
    int status;
    bool type2;
    enum client_reauth_step step;
  } steps[] = {
      {401, true, CLIENT_REAUTH_TYPE3},
      {401, false, CLIENT_REAUTH_NO_CHALLENGE},
      {200, false, CLIENT_REAUTH_ANSWERED},
      {204, true, CLIENT_REAUTH_ANSWERED},
      {500, false, CLIENT_REAUTH_BODY_LOST}, /* the support case's 500 */
      {503, false, CLIENT_REAUTH_BODY_LOST},
      {302, false, CLIENT_REAUTH_UNEXPECTED},
      {403, true, CLIENT_REAUTH_UNEXPECTED},
      {100, false, CLIENT_REAUTH_UNEXPECTED},
      {600, false, CLIENT_REAUTH_UNEXPECTED},
  };
  size_t i;

  for(i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
    ck_assert_msg(
        client_reauth_next(steps[i].status, steps[i].type2) == steps[i].step,
        "HTTP %d%s", steps[i].status, steps[i].type2 ? " with a type 2" : "");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("decide");
  TCase *tc = tcase_create("table");
  int failed;

  tcase_add_loop_test(tc, test_table_row, 0,
                      (int)(sizeof(rows) / sizeof(rows[0])));
  tcase_add_test(tc, test_table_total);
  tcase_add_test(tc, test_kerberos_rows);
  suite_add_tcase(s, tc);
  tc = tcase_create("sequences");
  tcase_add_test(tc, test_random_sequences);
  suite_add_tcase(s, tc);
  tc = tcase_create("client");
  tcase_add_test(tc, test_client_reauth_steps);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  return failed ? 1 : 0;
}
