/*
 * test_ntlm_nlmp.c - what MS-NLMP 3.1.5 and 3.2.5 ask of negotiation
 * (test_ntlm.h): the flags each side ends with, NTLMv1 not asking for
 * extended session security, the key exchange vector, and the MIC.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kbt.h"
#include "ntlm/ntlm.h"
#include "ntlm/ntlm_core.h"
#include "test_ntlm.h"

/* ---- negotiation, key exchange, MIC (MS-NLMP 3.1.5, 3.2.5) ------------- */

/* What the CHALLENGE grants for the NEGOTIATE flags real clients send. */
struct negotiated_row {
  const char *client;
  uint32_t negotiate;
  uint32_t challenge;
};

static const struct negotiated_row negotiated[] = {
    {"Communicator 2007", 0xa2088207u, 0xa2898205u},
    /* SIGN and KEY_EXCH asked: granted (gss-ntlmssp refuses otherwise) */
    {"gss-ntlmssp", 0xe2088217u, 0xe2898215u},
    {"Samba ntlm_auth", 0x62088205u, 0x62898205u},
    /* OEM only: OEM answered */
    {"OEM-only", 0x00000202u, 0x02810202u},
    /* everything: never LM_KEY, DATAGRAM, ANONYMOUS, IDENTIFY or OEM */
    {"every bit", 0xffffffffu, 0xe2898235u},
};

START_TEST(test_flags_negotiated)
{
  struct ntlm_bytes out = {0};
  struct ntlm_message m;
  char err[256] = "";
  int i = _i;

  ck_assert_msg(
      ntlm_server_flags(negotiated[i].negotiate) == negotiated[i].challenge,
      "%s: 0x%08x -> 0x%08x, want 0x%08x", negotiated[i].client,
      negotiated[i].negotiate, ntlm_server_flags(negotiated[i].negotiate),
      negotiated[i].challenge);
  /* The encoded CHALLENGE carries them, with both DNS names. */
  ck_assert_int_eq(ntlm_server_challenge(&nt_isa, negotiated[i].negotiate,
                                         nt_server_chal, 0, &out),
                   NTLM_OK);
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &m, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_uint_eq(m.flags, negotiated[i].challenge);
  /* MsvAvDnsDomainName (4) and MsvAvDnsComputerName (3), UTF-16LE. */
  {
    static const uint8_t dns_domain[] = {4,   0, 24,  0, 'f', 0, 'a', 0, 'b', 0,
                                         'r', 0, 'i', 0, 'k', 0, 'a', 0, 'm', 0,
                                         '.', 0, 'c', 0, 'o', 0, 'm', 0};
    static const uint8_t dns_computer[] = {3,   0, 36,  0, 'i', 0, 's', 0,
                                           'a', 0, '0', 0, '1', 0, '.', 0};
    ck_assert_ptr_nonnull(memmem(m.target_info, m.target_info_len, dns_domain,
                                 sizeof(dns_domain)));
    ck_assert_ptr_nonnull(memmem(m.target_info, m.target_info_len, dns_computer,
                                 sizeof(dns_computer)));
  }
  ntlm_message_free(&m);
  ntlm_bytes_free(&out);
}
END_TEST

/* Answers a challenge to negotiate flags with kind and options; returns
 * the encoded AUTHENTICATE in out and the CHALLENGE's bytes in chal. */
static void nlmp_answer(uint32_t negotiate, enum ntlm_response_kind kind,
                        const struct ntlm_client_options *opt,
                        struct ntlm_bytes *chal, struct ntlm_bytes *out)
{
  struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", "WS", kind};
  struct ntlm_message m;
  char err[256] = "";

  ck_assert_int_eq(ntlm_server_challenge(&nt_isa, negotiate, nt_server_chal,
                                         UINT64_C(130000000000000000), chal),
                   NTLM_OK);
  ck_assert_int_eq(ntlm_decode(chal->data, chal->len, &m, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_msg(ntlm_client_authenticate_ex(&c, &m, opt, out, NULL, err,
                                            sizeof(err)) == NTLM_OK,
                "%s", err);
  ntlm_message_free(&m);
}

/* Plain NTLMv1 does not ask for ESS, so what it sends agrees with what it
 * asked: the type 1 lacks ESS, the type 3 too, and the server sees v1.
 * NTLMv2 and v1-ESS ask for Communicator's flags. */
START_TEST(test_v1_asks_no_ess)
{
  struct ntlm_client_options opt = {nt_client_chal, 0, NULL, false, NULL, NULL};
  struct ntlm_bytes chal = {0}, out = {0};
  struct ntlm_message m;
  struct ntlm_identity who;
  char err[256] = "";

  ck_assert_uint_eq(ntlm_client_flags(NTLM_RESPONSE_V2), 0xa2088207u);
  ck_assert_uint_eq(ntlm_client_flags(NTLM_RESPONSE_V1_ESS), 0xa2088207u);
  ck_assert_uint_eq(ntlm_client_flags(NTLM_RESPONSE_V1), 0xa2008207u);
  nlmp_answer(ntlm_client_flags(NTLM_RESPONSE_V1), NTLM_RESPONSE_V1, &opt,
              &chal, &out);
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &m, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_uint_eq(m.flags & NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY, 0);
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, NULL, &who,
                                      err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(who.kind, NTLM_RESPONSE_V1);
  ntlm_message_free(&m);
  ntlm_bytes_free(&chal);
  ntlm_bytes_free(&out);
}
END_TEST

/* MS-NLMP 4.2.4.3 with key exchange: the random session key 55 * 16 under
 * the example's KeyExchangeKey is the spec's EncryptedRandomSessionKey,
 * and the whole AUTHENTICATE is the spec's but for REQUEST_TARGET (the
 * spec's client had asked for it; the CHALLENGE does not carry it). */
START_TEST(test_key_exch_vector)
{
  static const uint8_t random_key[16] = {0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
                                         0x55, 0x55, 0x55, 0x55, 0x55, 0x55,
                                         0x55, 0x55, 0x55, 0x55};
  struct ntlm_client_creds c = {"Domain", "User", "Password", "COMPUTER",
                                NTLM_RESPONSE_V2};
  struct ntlm_client_options opt = {nt_client_chal, 0,    random_key,
                                    false,          NULL, NULL};
  struct ntlm_message chal, m;
  struct ntlm_bytes out = {0};
  struct ntlm_identity who;
  struct nt_store st = {0};
  uint8_t exported[16];
  size_t len;
  uint8_t *want = nt_hex(SPEC_AUTHENTICATE_V2, &len);
  char err[256] = "";

  nt_decode_hex(SPEC_CHALLENGE_V2, &chal);
  ck_assert_int_eq(ntlm_client_authenticate_ex(&c, &chal, &opt, &out, exported,
                                               err, sizeof(err)),
                   NTLM_OK);
  ck_assert_uint_eq(want[60], 0x35);
  want[60] = 0x31;
  ck_assert_uint_eq(out.len, len);
  ck_assert_mem_eq(out.data, want, len);
  ck_assert_mem_eq(exported, random_key, 16);
  /* The server decrypts it back. */
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &m, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, &who,
                                      err, sizeof(err)),
                   NTLM_OK);
  ck_assert(who.key_exchanged);
  ck_assert(!who.mic_checked);
  /* KEY_EXCH with a session key that is not 16 bytes is refused. */
  m.session_key_len = 15;
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, &who,
                                      err, sizeof(err)),
                   NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, "EncryptedRandomSessionKey has 15 bytes"));
  m.session_key_len = 16;
  ntlm_message_free(&m);
  ntlm_message_free(&chal);
  ntlm_bytes_free(&out);
  free(want);
}
END_TEST

/* Verifies out (an AUTHENTICATE) against the exchange neg/chal/out. */
static enum ntlm_result nlmp_verify_mic(const struct ntlm_bytes *neg,
                                        const struct ntlm_bytes *chal,
                                        const struct ntlm_bytes *out,
                                        struct ntlm_identity *who, char *err,
                                        size_t errlen)
{
  struct ntlm_exchange ex = {neg->data, neg->len,  chal->data,
                             chal->len, out->data, out->len};
  struct ntlm_message m;
  enum ntlm_result r;

  ck_assert_int_eq(ntlm_decode(out->data, out->len, &m, err, errlen), NTLM_OK);
  ck_assert(m.has_mic);
  r = ntlm_server_verify_ex(&m, &ex, nt_server_chal, nt_lookup, NULL, who, err,
                            errlen);
  ntlm_message_free(&m);
  return r;
}

/* A MIC over the three messages, with and without key exchange: verified
 * when the exchange is at hand, refused when any of the three messages or
 * the MIC itself changed, not checked without the exchange. */
START_TEST(test_mic)
{
  static const uint8_t random_key[16] = "0123456789abcdef";
  struct ntlm_bytes neg = {0}, chal = {0}, out = {0};
  struct ntlm_exchange ex;
  struct ntlm_client_options opt;
  struct ntlm_identity who;
  struct ntlm_message m;
  char err[256] = "";
  int keyed;

  for(keyed = 0; keyed < 2; keyed++) {
    ck_assert_int_eq(ntlm_client_negotiate(0xe2088217u, &neg), NTLM_OK);
    memset(&ex, 0, sizeof(ex));
    ex.negotiate = neg.data;
    ex.negotiate_len = neg.len;
    ck_assert_int_eq(ntlm_server_challenge(&nt_isa, 0xe2088217u, nt_server_chal,
                                           UINT64_C(130000000000000000), &chal),
                     NTLM_OK);
    ex.challenge = chal.data;
    ex.challenge_len = chal.len;
    memset(&opt, 0, sizeof(opt));
    opt.client_challenge = nt_client_chal;
    opt.random_session_key = keyed ? random_key : NULL;
    opt.mic = true;
    opt.exchange = &ex;
    {
      struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", "WS",
                                    NTLM_RESPONSE_V2};
      struct ntlm_message cm;
      ck_assert_int_eq(ntlm_decode(chal.data, chal.len, &cm, err, sizeof(err)),
                       NTLM_OK);
      ck_assert_msg(ntlm_client_authenticate_ex(&c, &cm, &opt, &out, NULL, err,
                                                sizeof(err)) == NTLM_OK,
                    "%s", err);
      ntlm_message_free(&cm);
    }
    ck_assert_msg(nlmp_verify_mic(&neg, &chal, &out, &who, err, sizeof(err)) ==
                      NTLM_OK,
                  "%s", err);
    ck_assert(who.mic_checked);
    ck_assert(who.key_exchanged == (keyed != 0));

    /* Without the exchange the proof still holds, the MIC is not checked. */
    ck_assert_int_eq(ntlm_decode(out.data, out.len, &m, err, sizeof(err)),
                     NTLM_OK);
    ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, NULL,
                                        &who, err, sizeof(err)),
                     NTLM_OK);
    ck_assert(!who.mic_checked);
    ntlm_message_free(&m);

    /* One bit changed in the NEGOTIATE (SIGN dropped by a middlebox),
     * in the CHALLENGE's target info, in the MIC: refused. */
    neg.data[12] ^= 0x10;
    ck_assert_int_eq(nlmp_verify_mic(&neg, &chal, &out, &who, err, sizeof(err)),
                     NTLM_ERR_BAD_PROOF);
    ck_assert_ptr_nonnull(strstr(err, "MIC of FABRIKAM\\alice does not match"));
    neg.data[12] ^= 0x10;
    chal.data[chal.len - 5] ^= 0x01;
    ck_assert_int_eq(nlmp_verify_mic(&neg, &chal, &out, &who, err, sizeof(err)),
                     NTLM_ERR_BAD_PROOF);
    chal.data[chal.len - 5] ^= 0x01;
    out.data[72] ^= 0x80;
    ck_assert_int_eq(nlmp_verify_mic(&neg, &chal, &out, &who, err, sizeof(err)),
                     NTLM_ERR_BAD_PROOF);
    out.data[72] ^= 0x80;
    ck_assert_int_eq(nlmp_verify_mic(&neg, &chal, &out, &who, err, sizeof(err)),
                     NTLM_OK);
    ntlm_bytes_free(&neg);
    ntlm_bytes_free(&chal);
    ntlm_bytes_free(&out);
  }
  /* A MIC needs NTLMv2 and the messages it covers. */
  memset(&opt, 0, sizeof(opt));
  opt.client_challenge = nt_client_chal;
  opt.mic = true;
  {
    struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", "WS",
                                  NTLM_RESPONSE_V2};
    struct ntlm_message cm;
    ck_assert_int_eq(
        ntlm_server_challenge(&nt_isa, 0xe2088217u, nt_server_chal, 0, &chal),
        NTLM_OK);
    ck_assert_int_eq(ntlm_decode(chal.data, chal.len, &cm, err, sizeof(err)),
                     NTLM_OK);
    ck_assert_int_eq(ntlm_client_authenticate_ex(&c, &cm, &opt, &out, NULL, err,
                                                 sizeof(err)),
                     NTLM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err, "a MIC needs an NTLMv2 response"));
    ntlm_message_free(&cm);
    ntlm_bytes_free(&chal);
  }
}
END_TEST

Suite *ntlm_nlmp_suite(void)
{
  Suite *s = suite_create("nlmp");
  TCase *tc = tcase_create("nlmp");

  tcase_add_loop_test(tc, test_flags_negotiated, 0,
                      (int)(sizeof(negotiated) / sizeof(negotiated[0])));
  tcase_add_test(tc, test_v1_asks_no_ess);
  tcase_add_test(tc, test_key_exch_vector);
  tcase_add_test(tc, test_mic);
  suite_add_tcase(s, tc);
  return s;
}
