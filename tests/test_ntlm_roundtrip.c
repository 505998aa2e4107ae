/*
 * test_ntlm_roundtrip.c - the NTLM library's client against its server
 * (test_ntlm.h): a handshake for every response kind with the right and
 * wrong passwords, OEM strings, the server's challenge and timestamp,
 * codec round trips, verification refusals, names; and concurrent
 * handshakes on threads.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kbt.h"
#include "ntlm/ntlm.h"
#include "ntlm/ntlm_core.h"
#include "test_ntlm.h"

/* ---- client <-> server -------------------------------------------------- */

/* Runs Communicator's handshake through header text both ways: NEGOTIATE,
 * the server's CHALLENGE for it, the client's AUTHENTICATE. On success
 * *auth is the decoded AUTHENTICATE and *chal the decoded CHALLENGE. */
static void handshake(const struct ntlm_client_creds *c, uint32_t neg_flags,
                      const uint8_t sc[8], uint64_t ts,
                      struct ntlm_message *chal, struct ntlm_message *auth)
{
  struct ntlm_bytes b = {0}, tok = {0};
  struct ntlm_message neg;
  char err[256] = "";
  char *h;

  ck_assert_int_eq(ntlm_client_negotiate(neg_flags, &b), NTLM_OK);
  h = ntlm_header_format(NTLM_SCHEME_NTLM, b.data, b.len);
  ntlm_bytes_free(&b);
  ck_assert_int_eq(ntlm_header_parse(h, NULL, &tok, err, sizeof(err)), NTLM_OK);
  free(h);
  ck_assert_int_eq(ntlm_decode(tok.data, tok.len, &neg, err, sizeof(err)),
                   NTLM_OK);
  ntlm_bytes_free(&tok);

  ck_assert_int_eq(ntlm_server_challenge(&nt_isa, neg.flags, sc, ts, &b),
                   NTLM_OK);
  ntlm_message_free(&neg);
  h = ntlm_header_format(NTLM_SCHEME_NTLM, b.data, b.len);
  ntlm_bytes_free(&b);
  ck_assert_int_eq(ntlm_header_parse(h, NULL, &tok, err, sizeof(err)), NTLM_OK);
  free(h);
  ck_assert_msg(ntlm_decode(tok.data, tok.len, chal, err, sizeof(err)) ==
                    NTLM_OK,
                "%s", err);
  ntlm_bytes_free(&tok);

  ck_assert_msg(ntlm_client_authenticate(c, chal, nt_client_chal, 0, &b, err,
                                         sizeof(err)) == NTLM_OK,
                "%s", err);
  h = ntlm_header_format(NTLM_SCHEME_NTLM, b.data, b.len);
  ntlm_bytes_free(&b);
  ck_assert_int_eq(ntlm_header_parse(h, NULL, &tok, err, sizeof(err)), NTLM_OK);
  free(h);
  ck_assert_msg(ntlm_decode(tok.data, tok.len, auth, err, sizeof(err)) ==
                    NTLM_OK,
                "%s", err);
  ntlm_bytes_free(&tok);
}

static const enum ntlm_response_kind kinds[] = {
    NTLM_RESPONSE_V2, NTLM_RESPONSE_V1, NTLM_RESPONSE_V1_ESS};

/* Loop test over kinds[]: the right password verifies, a wrong one, an
 * unknown user and another connection's challenge do not. */
START_TEST(test_roundtrip_kind)
{
  enum ntlm_response_kind kind = kinds[_i];
  struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", "COMMUNICATOR",
                                kind};
  struct ntlm_message chal, auth;
  struct ntlm_identity who;
  struct nt_store st = {0};
  uint8_t other[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xee};
  char err[256] = "";
  char text[256];

  handshake(&c, NTLM_COMMUNICATOR_FLAGS, nt_server_chal, 0, &chal, &auth);
  ck_assert_int_eq(ntlm_server_verify(&auth, nt_server_chal, nt_lookup, &st,
                                      &who, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(st.lookups, 1);
  ck_assert_str_eq(who.domain, "FABRIKAM");
  ck_assert_str_eq(who.user, "alice");
  ck_assert_str_eq(who.workstation, "COMMUNICATOR");
  ck_assert_int_eq(who.kind, kind);
  ntlm_describe(&auth, text, sizeof(text));
  snprintf(err, sizeof(err),
           "NTLM type 3 AUTHENTICATE FABRIKAM\\alice from COMMUNICATOR, %s "
           "response",
           ntlm_response_kind_name(kind));
  ck_assert_str_eq(text, err);

  /* The same AUTHENTICATE against another connection's challenge. */
  err[0] = '\0';
  ck_assert_int_eq(
      ntlm_server_verify(&auth, other, nt_lookup, &st, &who, err, sizeof(err)),
      NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, "FABRIKAM\\alice"));
  ck_assert_ptr_null(strstr(err, "Secr3t!"));
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);

  /* Wrong password. */
  c.password = "secr3t!";
  handshake(&c, NTLM_COMMUNICATOR_FLAGS, nt_server_chal, 0, &chal, &auth);
  err[0] = '\0';
  ck_assert_int_eq(ntlm_server_verify(&auth, nt_server_chal, nt_lookup, &st,
                                      &who, err, sizeof(err)),
                   NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, ntlm_response_kind_name(kind)));
  ck_assert_ptr_null(strstr(err, "Secr3t!"));
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);

  /* Unknown user. */
  c.user = "mallory";
  handshake(&c, NTLM_COMMUNICATOR_FLAGS, nt_server_chal, 0, &chal, &auth);
  err[0] = '\0';
  ck_assert_int_eq(ntlm_server_verify(&auth, nt_server_chal, nt_lookup, &st,
                                      &who, err, sizeof(err)),
                   NTLM_ERR_UNKNOWN_USER);
  ck_assert_str_eq(err, "NTLM server: unknown user FABRIKAM\\mallory");
  ck_assert_int_eq(st.lookups, 4);
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);

  /* Another spelling of the user: the lookup ignores case and NTOWFv2
   * upper-cases, so it verifies, and the identity is as the client sent
   * it. */
  c.user = "ALICE";
  c.password = "Secr3t!";
  handshake(&c, NTLM_COMMUNICATOR_FLAGS, nt_server_chal, 0, &chal, &auth);
  ck_assert_int_eq(ntlm_server_verify(&auth, nt_server_chal, nt_lookup, &st,
                                      &who, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_str_eq(who.user, "ALICE");
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);
}
END_TEST

/* A client that offers only OEM gets OEM strings throughout, and a
 * non-ASCII Latin-1 user still verifies. */
START_TEST(test_roundtrip_oem)
{
  struct ntlm_client_creds c = {"FABRIKAM", "\xc3\xa9mile", "p\xc3\xa4ss", "WS",
                                NTLM_RESPONSE_V2};
  struct ntlm_message chal, auth;
  struct ntlm_identity who;
  char err[256] = "";
  uint32_t flags =
      NTLM_NEGOTIATE_OEM | NTLM_REQUEST_TARGET | NTLM_NEGOTIATE_NTLM;

  handshake(&c, flags, nt_server_chal, 0, &chal, &auth);
  ck_assert_uint_eq(chal.flags & (NTLM_NEGOTIATE_UNICODE | NTLM_NEGOTIATE_OEM),
                    NTLM_NEGOTIATE_OEM);
  ck_assert_str_eq(chal.target_name, "FABRIKAM");
  ck_assert_uint_eq(auth.flags & (NTLM_NEGOTIATE_UNICODE | NTLM_NEGOTIATE_OEM),
                    NTLM_NEGOTIATE_OEM);
  ck_assert_str_eq(auth.user, "\xc3\xa9mile");
  ck_assert_int_eq(ntlm_server_verify(&auth, nt_server_chal, nt_lookup, NULL,
                                      &who, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_str_eq(who.user, "\xc3\xa9mile");
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);

  /* A name OEM cannot carry is refused, not mangled. */
  c.user = "\xd0\xb8";
  nt_decode_hex(SPEC_CHALLENGE_V1, &chal);
  chal.flags &= ~NTLM_NEGOTIATE_UNICODE;
  {
    struct ntlm_bytes out = {0};
    ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, nt_client_chal, 0,
                                              &out, err, sizeof(err)),
                     NTLM_ERR_ENCODING);
    ck_assert_ptr_nonnull(strstr(err, "UserName"));
    ck_assert_ptr_null(out.data);
  }
  ntlm_message_free(&chal);
}
END_TEST

/* The server's CHALLENGE for Communicator's NEGOTIATE, byte for byte. */
START_TEST(test_server_challenge_golden)
{
  struct ntlm_bytes b = {0};
  struct ntlm_message m;
  char text[512];
  char err[256] = "";

  ck_assert_int_eq(ntlm_server_challenge(&nt_isa, NTLM_COMMUNICATOR_FLAGS,
                                         nt_server_chal, 0x01c9a71b5e4e3c00ull,
                                         &b),
                   NTLM_OK);
  nt_assert_hex(
      b.data, b.len,
      "4e544c4d53535000020000001000100038000000058289a20123456789abcdef"
      "000000000000000076007600480000000502ce0e0000000f4600410042005200"
      "49004b0041004d0002001000460041004200520049004b0041004d0001000a00"
      "4900530041003000310004001800660061006200720069006b0061006d002e00"
      "63006f006d0003002400690073006100300031002e0066006100620072006900"
      "6b0061006d002e0063006f006d0007000800003c4e5e1ba7c90100000000");
  ck_assert_int_eq(ntlm_decode(b.data, b.len, &m, err, sizeof(err)), NTLM_OK);
  ntlm_describe(&m, text, sizeof(text));
  ck_assert_str_eq(text, "NTLM type 2 CHALLENGE flags 0xa2898205 (UNICODE "
                         "REQUEST_TARGET NTLM ALWAYS_SIGN TARGET_TYPE_DOMAIN "
                         "EXTENDED_SESSIONSECURITY TARGET_INFO VERSION 128 56) "
                         "target FABRIKAM challenge 0123456789abcdef target "
                         "info 118 bytes version 5.2.3790/15");
  ntlm_message_free(&m);
  ntlm_bytes_free(&b);

  /* Without a timestamp or DNS names: NetBIOS names and EOL only; no ESS
   * unless asked. */
  {
    struct ntlm_server_info small = {"D", "S", NULL, ""};
    ck_assert_int_eq(ntlm_server_challenge(
                         &small, NTLM_NEGOTIATE_UNICODE | NTLM_NEGOTIATE_NTLM,
                         nt_server_chal, 0, &b),
                     NTLM_OK);
    ck_assert_int_eq(ntlm_decode(b.data, b.len, &m, err, sizeof(err)), NTLM_OK);
    ck_assert_uint_eq(m.flags, 0x02810201u);
    nt_assert_hex(m.target_info, m.target_info_len,
                  "020002004400"
                  "010002005300"
                  "00000000");
    ntlm_message_free(&m);
    ntlm_bytes_free(&b);
  }
  ck_assert_int_eq(ntlm_server_challenge(NULL, 0, nt_server_chal, 0, &b),
                   NTLM_ERR_ARG);
}
END_TEST

/* When the CHALLENGE carries MsvAvTimestamp, an NTLMv2 client uses it in
 * its blob and sends Z(24) for the LM response (MS-NLMP 3.1.5.1.2). */
START_TEST(test_v2_server_timestamp)
{
  struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", NULL,
                                NTLM_RESPONSE_V2};
  struct ntlm_message chal, auth;
  struct ntlm_identity who;
  static const uint8_t zero24[24] = {0};
  char err[256] = "";
  uint64_t ts = ntlm_filetime_from_unix_ms(1237307184000ll);

  handshake(&c, NTLM_COMMUNICATOR_FLAGS, nt_server_chal, ts, &chal, &auth);
  ck_assert_uint_eq(auth.lm_response_len, 24);
  ck_assert_mem_eq(auth.lm_response, zero24, 24);
  ck_assert_uint_ge(auth.nt_response_len, 44);
  /* The blob's timestamp sits at bytes 8..15 after the 16-byte proof. */
  {
    uint64_t got = 0;
    int i;
    for(i = 7; i >= 0; i--)
      got = got << 8 | auth.nt_response[16 + 8 + i];
    ck_assert_uint_eq(got, ts);
  }
  ck_assert_ptr_null(auth.workstation);
  ck_assert_int_eq(ntlm_server_verify(&auth, nt_server_chal, nt_lookup, NULL,
                                      &who, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_str_eq(who.workstation, "");
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);
}
END_TEST

/* NEGOTIATE with OEM domain and workstation, and AUTHENTICATE with a MIC:
 * encode, decode, encode again gives the same fields and bytes. */
START_TEST(test_codec_roundtrips)
{
  struct ntlm_message m, d;
  struct ntlm_bytes a = {0}, b = {0};
  char err[256] = "";
  size_t tilen;
  uint8_t *nt;
  uint8_t lm[24] = {1, 2, 3};
  uint8_t *ti;

  memset(&m, 0, sizeof(m));
  m.type = NTLM_TYPE_NEGOTIATE;
  m.flags = 0xa208b207u; /* Communicator's + DOMAIN/WORKSTATION_SUPPLIED */
  m.domain = "FABRIKAM";
  m.workstation = "COMMUNICATOR";
  m.has_version = true;
  m.version = (struct ntlm_version){6, 1, 7601, 15};
  ck_assert_int_eq(ntlm_encode(&m, &a, err, sizeof(err)), NTLM_OK);
  nt_assert_hex(a.data, a.len,
                "4e544c4d53535000"
                "01000000"
                "07b208a2"
                "0800080028000000"
                "0c000c0030000000"
                "0601b11d0000000f"
                "46414252494b414d"
                "434f4d4d554e494341544f52");
  ck_assert_int_eq(ntlm_decode(a.data, a.len, &d, err, sizeof(err)), NTLM_OK);
  ck_assert_str_eq(d.domain, "FABRIKAM");
  ck_assert_str_eq(d.workstation, "COMMUNICATOR");
  ck_assert_uint_eq(d.version.build, 7601);
  ck_assert_int_eq(ntlm_encode(&d, &b, err, sizeof(err)), NTLM_OK);
  ck_assert_uint_eq(a.len, b.len);
  ck_assert_mem_eq(a.data, b.data, a.len);
  ntlm_message_free(&d);
  ntlm_bytes_free(&a);
  ntlm_bytes_free(&b);

  /* An NTLMv2 response whose AV pairs announce a MIC (MsvAvFlags = 2). */
  ti = nt_hex("02000c0044006f006d00610069006e00"
              "060004000200000000000000",
              &tilen);
  nt = calloc(1, 16 + 28 + tilen + 4);
  ck_assert_ptr_nonnull(nt);
  nt[16] = 1;
  nt[17] = 1;
  memcpy(nt + 16 + 28, ti, tilen);
  memset(&m, 0, sizeof(m));
  m.type = NTLM_TYPE_AUTHENTICATE;
  m.flags = NTLM_NEGOTIATE_UNICODE | NTLM_NEGOTIATE_NTLM;
  m.user = "\xe2\x82\xac\xf0\x9f\x98\x80"; /* U+20AC, U+1F600 (a pair) */
  m.lm_response = lm;
  m.lm_response_len = sizeof(lm);
  m.nt_response = nt;
  m.nt_response_len = 16 + 28 + tilen + 4;
  m.has_mic = true;
  memset(m.mic, 0x5a, sizeof(m.mic));
  ck_assert_int_eq(ntlm_encode(&m, &a, err, sizeof(err)), NTLM_OK);
  ck_assert_int_eq(ntlm_decode(a.data, a.len, &d, err, sizeof(err)), NTLM_OK);
  ck_assert(d.has_mic);
  ck_assert(!d.has_version);
  ck_assert_mem_eq(d.mic, m.mic, 16);
  ck_assert_str_eq(d.user, m.user);
  ck_assert_ptr_null(d.domain);
  ck_assert_uint_eq(d.nt_response_len, m.nt_response_len);
  ck_assert_mem_eq(d.nt_response, nt, m.nt_response_len);
  /* Payload starts after the zeroed VERSION slot and the MIC. */
  ck_assert_uint_eq(a.data[36 + 4], 88);
  ck_assert_int_eq(ntlm_encode(&d, &b, err, sizeof(err)), NTLM_OK);
  ck_assert_uint_eq(a.len, b.len);
  ck_assert_mem_eq(a.data, b.data, a.len);
  ntlm_message_free(&d);
  ntlm_bytes_free(&a);
  ntlm_bytes_free(&b);

  /* Without the MsvAvFlags announcement the same bytes are no MIC. */
  nt[16 + 28 + 16 + 4] = 0; /* MsvAvFlags value 2 -> 0 */
  m.has_mic = false;
  ck_assert_int_eq(ntlm_encode(&m, &a, err, sizeof(err)), NTLM_OK);
  ck_assert_int_eq(ntlm_decode(a.data, a.len, &d, err, sizeof(err)), NTLM_OK);
  ck_assert(!d.has_mic);
  ntlm_message_free(&d);
  ntlm_bytes_free(&a);

  /* Invalid UTF-8 and NONE type are refused by the encoder. */
  m.user = "\xc0\xaf";
  ck_assert_int_eq(ntlm_encode(&m, &a, err, sizeof(err)), NTLM_ERR_ENCODING);
  m.type = NTLM_TYPE_NONE;
  ck_assert_int_eq(ntlm_encode(&m, &a, err, sizeof(err)), NTLM_ERR_TYPE);
  m.type = NTLM_TYPE_AUTHENTICATE;
  m.user = "x";
  m.nt_response = NULL;
  ck_assert_int_eq(ntlm_encode(&m, &a, err, sizeof(err)), NTLM_ERR_ARG);
  /* A message that would pass NTLM_MAX_MESSAGE. */
  {
    uint8_t *big = calloc(1, NTLM_MAX_MESSAGE);
    ck_assert_ptr_nonnull(big);
    m.nt_response = big;
    m.nt_response_len = NTLM_MAX_MESSAGE - 64;
    ck_assert_int_eq(ntlm_encode(&m, &a, err, sizeof(err)), NTLM_ERR_TOO_BIG);
    ck_assert_ptr_null(a.data);
    free(big);
  }
  free(nt);
  free(ti);
}
END_TEST

/* Verification refuses what is not a proof: anonymous, a response of no
 * known length, no user, the wrong message type. */
START_TEST(test_verify_refusals)
{
  struct ntlm_message m;
  struct ntlm_bytes out = {0};
  struct nt_store st = {0};
  uint8_t lm1[1] = {0};
  uint8_t nt30[30] = {0};
  char err[256] = "";
  struct ntlm_client_creds c = {"D", "u", "p", NULL, NTLM_RESPONSE_V2};

  memset(&m, 0, sizeof(m));
  m.type = NTLM_TYPE_AUTHENTICATE;
  m.lm_response = lm1;
  m.lm_response_len = 1;
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, NULL,
                                      err, sizeof(err)),
                   NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, "anonymous"));

  m.user = "alice";
  m.domain = "FABRIKAM";
  m.nt_response = nt30;
  m.nt_response_len = sizeof(nt30);
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, NULL,
                                      err, sizeof(err)),
                   NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, "30-byte"));

  m.nt_response_len = 24;
  m.flags = NTLM_NEGOTIATE_ANONYMOUS;
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, NULL,
                                      err, sizeof(err)),
                   NTLM_ERR_BAD_PROOF);
  m.flags = 0;
  m.user = NULL;
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, NULL,
                                      err, sizeof(err)),
                   NTLM_ERR_BAD_PROOF);
  ck_assert_int_eq(st.lookups, 1); /* only the 30-byte case looked up */

  m.type = NTLM_TYPE_CHALLENGE;
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, NULL,
                                      err, sizeof(err)),
                   NTLM_ERR_TYPE);
  ck_assert_int_eq(ntlm_client_authenticate(&c, &m, nt_client_chal, 0, &out,
                                            err, sizeof(err)),
                   NTLM_OK);
  ntlm_bytes_free(&out);
  m.type = NTLM_TYPE_NEGOTIATE;
  ck_assert_int_eq(ntlm_client_authenticate(&c, &m, nt_client_chal, 0, &out,
                                            err, sizeof(err)),
                   NTLM_ERR_TYPE);
  m.type = NTLM_TYPE_CHALLENGE;
  ck_assert_int_eq(
      ntlm_client_authenticate(&c, &m, NULL, 0, &out, err, sizeof(err)),
      NTLM_ERR_ARG);
  ck_assert_int_eq(ntlm_server_verify(NULL, nt_server_chal, nt_lookup, &st,
                                      NULL, err, sizeof(err)),
                   NTLM_ERR_ARG);
}
END_TEST

START_TEST(test_names)
{
  ck_assert_str_eq(ntlm_strerror(NTLM_ERR_TRUNCATED), "message truncated");
  ck_assert_str_eq(ntlm_strerror((enum ntlm_result)99), "unknown error");
  ck_assert_str_eq(ntlm_response_kind_name(NTLM_RESPONSE_V1_ESS), "NTLMv1-ESS");
  ck_assert_int_eq(ntlm_peek_type((const uint8_t *)"NTLMSSP\0\4\0\0\0", 12),
                   NTLM_TYPE_NONE);
  ck_assert_int_eq(ntlm_peek_type((const uint8_t *)"NTLMSSP\0\3\0\0", 11),
                   NTLM_TYPE_NONE);
  ck_assert_int_eq(ntlm_peek_type(NULL, 40), NTLM_TYPE_NONE);
}
END_TEST

/* ---- threads ------------------------------------------------------------ */

struct worker {
  int id;
  int ok;
  int refused;
};

/* Runs handshakes for the kinds in turn; counts verifications that
 * succeeded with the right password and failures with a wrong one. No
 * Check assertions here: they are not for other threads. */
static void *work(void *arg)
{
  struct worker *w = arg;
  int n;

  for(n = 0; n < 60; n++) {
    struct ntlm_client_creds c = {"FABRIKAM", "alice",
                                  (n % 2) ? "Secr3t!" : "wrong", "COMMUNICATOR",
                                  kinds[n % 3]};
    uint8_t sc[8] = {(uint8_t)w->id, (uint8_t)n, 1, 2, 3, 4, 5, 6};
    struct ntlm_bytes neg = {0}, chal = {0}, auth = {0};
    struct ntlm_message cm, am;
    enum ntlm_result r = ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &neg);

    if(!r)
      r = ntlm_server_challenge(&nt_isa, NTLM_COMMUNICATOR_FLAGS, sc,
                                ntlm_filetime_from_unix_ms(n), &chal);
    if(!r && !(r = ntlm_decode(chal.data, chal.len, &cm, NULL, 0))) {
      r = ntlm_client_authenticate(&c, &cm, nt_client_chal, 0, &auth, NULL, 0);
      ntlm_message_free(&cm);
    }
    if(!r && !(r = ntlm_decode(auth.data, auth.len, &am, NULL, 0))) {
      r = ntlm_server_verify(&am, sc, nt_lookup, NULL, NULL, NULL, 0);
      ntlm_message_free(&am);
    }
    if(r == NTLM_OK && (n % 2))
      w->ok++;
    else if(r == NTLM_ERR_BAD_PROOF && !(n % 2))
      w->refused++;
    ntlm_bytes_free(&neg);
    ntlm_bytes_free(&chal);
    ntlm_bytes_free(&auth);
  }
  return NULL;
}

START_TEST(test_threads)
{
  enum { NTHREADS = 8 };
  pthread_t t[NTHREADS];
  struct worker w[NTHREADS];
  int i;

  for(i = 0; i < NTHREADS; i++) {
    w[i] = (struct worker){i, 0, 0};
    ck_assert_int_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
  }
  for(i = 0; i < NTHREADS; i++) {
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(w[i].ok, 30);
    ck_assert_int_eq(w[i].refused, 30);
  }
}
END_TEST

/* True when the len bytes at p are "REDACTED" repeated. */
static bool nt_redacted(const uint8_t *p, size_t len)
{
  size_t i;

  for(i = 0; i < len; i++)
    if(p[i] != (uint8_t) "REDACTED"[i % 8])
      return false;
  return len > 0;
}

/* ntlm_redact on MS-NLMP 4.2.4.3's AUTHENTICATE: what an offline attack
 * needs is the marker (the LM response, the NTProofStr, the session key),
 * what says who signed in is as it was (names, flags, the NTLMv2 blob);
 * the message keeps its length and still decodes. Other messages and a
 * malformed AUTHENTICATE are left as they are; the header form redacts in
 * place, keeping its length. */
START_TEST(test_redact)
{
  size_t len, tlen;
  uint8_t *msg = nt_hex(SPEC_AUTHENTICATE_V2, &len);
  uint8_t *orig = nt_hex(SPEC_AUTHENTICATE_V2, &len);
  uint8_t *type1 = nt_hex(SEED_HEX, &tlen);
  struct ntlm_message before, after;
  char err[256], *header;
  bool changed = false;

  nt_decode_hex(SPEC_AUTHENTICATE_V2, &before);
  ck_assert_int_eq(ntlm_redact(msg, len, &changed), NTLM_OK);
  ck_assert(changed);
  ck_assert_int_eq(ntlm_decode(msg, len, &after, err, sizeof(err)), NTLM_OK);
  ck_assert_str_eq(after.user, before.user);
  ck_assert_str_eq(after.domain, before.domain);
  ck_assert_str_eq(after.workstation, before.workstation);
  ck_assert_uint_eq(after.flags, before.flags);
  ck_assert(nt_redacted(after.lm_response, after.lm_response_len));
  ck_assert_uint_eq(after.nt_response_len, before.nt_response_len);
  ck_assert(nt_redacted(after.nt_response, 16));
  ck_assert_mem_eq(after.nt_response + 16, before.nt_response + 16,
                   before.nt_response_len - 16);
  ck_assert_uint_eq(after.session_key_len, 16);
  ck_assert(nt_redacted(after.session_key, after.session_key_len));
  /* Only those fields changed: the header and the strings did not. */
  ck_assert_mem_eq(msg, orig, 0x6c);
  ntlm_message_free(&after);
  ntlm_message_free(&before);

  /* A NEGOTIATE is not touched. */
  {
    uint8_t *copy = nt_hex(SEED_HEX, &tlen);
    changed = true;
    ck_assert_int_eq(ntlm_redact(copy, tlen, &changed), NTLM_OK);
    ck_assert(!changed);
    ck_assert_mem_eq(copy, type1, tlen);
    free(copy);
  }
  /* A malformed AUTHENTICATE: the decoder's error, nothing changed. */
  memcpy(msg, orig, len);
  ck_assert_int_ne(ntlm_redact(msg, 0x50, &changed), NTLM_OK);
  ck_assert_mem_eq(msg, orig, len);

  /* The header form, in place, with its length. */
  header = ntlm_header_format(NTLM_SCHEME_NTLM, orig, len);
  ck_assert_ptr_nonnull(header);
  {
    size_t hlen = strlen(header);
    struct ntlm_bytes raw = {NULL, 0};
    enum ntlm_scheme scheme;

    ck_assert(ntlm_header_redact(header, hlen));
    ck_assert_uint_eq(strlen(header), hlen);
    ck_assert_int_eq(ntlm_header_parse(header, &scheme, &raw, err, sizeof(err)),
                     NTLM_OK);
    ck_assert_int_eq(ntlm_decode(raw.data, raw.len, &after, err, sizeof(err)),
                     NTLM_OK);
    ck_assert(nt_redacted(after.nt_response, 16));
    ntlm_message_free(&after);
    ntlm_bytes_free(&raw);
  }
  free(header);
  header = ntlm_header_format(NTLM_SCHEME_NTLM, type1, tlen);
  ck_assert(!ntlm_header_redact(header, strlen(header)));
  free(header);
  free(type1);
  free(orig);
  free(msg);
}
END_TEST

Suite *ntlm_roundtrip_suite(void)
{
  Suite *s = suite_create("roundtrip");
  TCase *tc;

  tc = tcase_create("roundtrip");
  tcase_add_loop_test(tc, test_roundtrip_kind, 0,
                      (int)(sizeof(kinds) / sizeof(kinds[0])));
  tcase_add_test(tc, test_roundtrip_oem);
  tcase_add_test(tc, test_server_challenge_golden);
  tcase_add_test(tc, test_v2_server_timestamp);
  tcase_add_test(tc, test_codec_roundtrips);
  tcase_add_test(tc, test_verify_refusals);
  tcase_add_test(tc, test_names);
  tcase_add_test(tc, test_redact);
  suite_add_tcase(s, tc);

  tc = tcase_create("threads");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_threads);
  suite_add_tcase(s, tc);
  return s;
}
