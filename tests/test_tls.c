/*
 * test_tls.c - TLS and Extended Protection (issue 31): the channel
 * bindings of ntlm/bindings.c against values computed independently
 * (Python's hashlib over RFC 2744's structure), a type 3 carrying them and
 * the server reading them back.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbt.h"
#include "ntlm/ntlm.h"

/* hashlib.md5(b'\0'*16 + struct.pack('<I', len(d)) + d) with d =
 * b'tls-server-end-point:' + bytes(range(1, 33)), and with d = b''. */
static const char cbt_1_32[] = "911836bc229595a81fdaef8f1ce9077e";
static const char cbt_empty[] = "441018525208457705bf09a8ee3c1093";

static void hex(const uint8_t *p, size_t n, char *out)
{
  size_t i;
  for(i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", p[i]);
}

START_TEST(bindings_known_values)
{
  uint8_t hash[32], out[16];
  char text[33];
  size_t i;

  for(i = 0; i < sizeof(hash); i++)
    hash[i] = (uint8_t)(i + 1);
  ntlm_tls_end_point_bindings(hash, sizeof(hash), out);
  hex(out, 16, text);
  ck_assert_str_eq(text, cbt_1_32);
  ntlm_channel_bindings(NULL, 0, out);
  hex(out, 16, text);
  ck_assert_str_eq(text, cbt_empty);
}
END_TEST

static const char *pw(void *ctx, const char *domain, const char *user)
{
  (void)ctx;
  (void)domain;
  (void)user;
  return "Passw0rd!";
}

/* A type 3 built with channel bindings (with and without a MIC) verifies,
 * and the server reads the same 16 bytes back; without them it reads
 * none. */
START_TEST(bindings_round_trip)
{
  static const uint8_t schal[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  static const uint8_t cchal[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  struct ntlm_server_info info = {"FABRIKAM", "EXCH01", "fabrikam.com",
                                  "exch01.fabrikam.com"};
  struct ntlm_client_creds creds = {"FABRIKAM", "alice", "Passw0rd!",
                                    "COMMUNICATOR", NTLM_RESPONSE_V2};
  struct ntlm_bytes t1 = {0}, t2 = {0}, t3 = {0};
  struct ntlm_message chal, auth;
  struct ntlm_client_options opt;
  struct ntlm_exchange ex;
  struct ntlm_identity who;
  uint8_t cbt[16], got[16];
  int round;

  ntlm_tls_end_point_bindings(
      (const uint8_t *)"0123456789abcdef0123456789abcdef", 32, cbt);
  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &t1),
                   NTLM_OK);
  ck_assert_int_eq(
      ntlm_server_challenge(&info, NTLM_COMMUNICATOR_FLAGS, schal,
                            ntlm_filetime_from_unix_ms(KBT_CASE_MS), &t2),
      NTLM_OK);
  ck_assert_int_eq(ntlm_decode(t2.data, t2.len, &chal, NULL, 0), NTLM_OK);
  for(round = 0; round < 3; round++) {
    memset(&opt, 0, sizeof(opt));
    memset(&ex, 0, sizeof(ex));
    opt.client_challenge = cchal;
    opt.channel_bindings = round < 2 ? cbt : NULL;
    if(round == 1) {
      ex.negotiate = t1.data;
      ex.negotiate_len = t1.len;
      ex.challenge = t2.data;
      ex.challenge_len = t2.len;
      opt.mic = true;
      opt.exchange = &ex;
    }
    ck_assert_int_eq(
        ntlm_client_authenticate_ex(&creds, &chal, &opt, &t3, NULL, NULL, 0),
        NTLM_OK);
    ck_assert_int_eq(ntlm_decode(t3.data, t3.len, &auth, NULL, 0), NTLM_OK);
    ex.authenticate = t3.data;
    ex.authenticate_len = t3.len;
    ck_assert_int_eq(ntlm_server_verify_ex(&auth, round == 1 ? &ex : NULL,
                                           schal, pw, NULL, &who, NULL, 0),
                     NTLM_OK);
    ck_assert_int_eq(who.mic_checked, round == 1);
    ck_assert_int_eq(who.has_channel_bindings, round < 2);
    ck_assert_int_eq(ntlm_response_channel_bindings(&auth, got), round < 2);
    if(round < 2) {
      ck_assert_mem_eq(got, cbt, 16);
      ck_assert_mem_eq(who.channel_bindings, cbt, 16);
    }
    ntlm_message_free(&auth);
    ntlm_bytes_free(&t3);
  }
  ntlm_message_free(&chal);
  ntlm_bytes_free(&t1);
  ntlm_bytes_free(&t2);
}
END_TEST

static Suite *tls_suite(void)
{
  Suite *s = suite_create("tls");
  TCase *tc = tcase_create("bindings");

  tcase_add_test(tc, bindings_known_values);
  tcase_add_test(tc, bindings_round_trip);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kbt_run(tls_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
