/*
 * test_ntlm_vectors.c - the NTLM library against MS-NLMP 4.2's vectors
 * (NTLMv1, NTLMv1 with extended session security, NTLMv2: keys, responses,
 * whole messages), the support case's own type 1 token and the header
 * spellings around it (test_ntlm.h).
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

/* ---- MS-NLMP 4.2 vectors ------------------------------------------------ */

START_TEST(test_vectors_v1_keys)
{
  uint8_t nt[16], lm[16], key[16];

  /* 4.2.2.1.2 NTOWFv1, 4.2.2.1.1 LMOWFv1, 4.2.2.1.3 session base key. */
  ck_assert_int_eq(ntlm_nt_hash("Password", nt), NTLM_OK);
  nt_assert_hex(nt, 16, "a4f49c406510bdcab6824ee7c30fd852");
  ck_assert_int_eq(ntlm_lm_hash("Password", lm), NTLM_OK);
  nt_assert_hex(lm, 16, "e52cac67419a9a224a3b108f3fa6cb6d");
  ntlm_v1_session_base_key(nt, key);
  nt_assert_hex(key, 16, "d87262b0cde4b1cb7499becccdf10784");
}
END_TEST

START_TEST(test_vectors_v1_responses)
{
  uint8_t nt[16], lm[16], resp[24];

  /* 4.2.2.2.1 NTLMv1 response and 4.2.2.2.2 LMv1 response. */
  ck_assert_int_eq(ntlm_nt_hash("Password", nt), NTLM_OK);
  ntlm_desl(nt, nt_server_chal, resp);
  nt_assert_hex(resp, 24, "67c43011f30298a2ad35ece64f16331c44bdbed927841f94");
  ck_assert_int_eq(ntlm_lm_hash("Password", lm), NTLM_OK);
  ntlm_desl(lm, nt_server_chal, resp);
  nt_assert_hex(resp, 24, "98def7b87f88aa5dafe2df779688a172def11c7d5ccdef13");
}
END_TEST

/* The same two responses, as the client puts them in an AUTHENTICATE. */
START_TEST(test_vectors_v1_client)
{
  struct ntlm_client_creds c = {"Domain", "User", "Password", "COMPUTER",
                                NTLM_RESPONSE_V1};
  struct ntlm_message chal, auth;
  struct ntlm_bytes out = {0};
  char err[256] = "";

  nt_decode_hex(SPEC_CHALLENGE_V1, &chal);
  ck_assert_int_eq(
      ntlm_client_authenticate(&c, &chal, NULL, 0, &out, err, sizeof(err)),
      NTLM_OK);
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &auth, err, sizeof(err)),
                   NTLM_OK);
  nt_assert_hex(auth.nt_response, auth.nt_response_len,
                "67c43011f30298a2ad35ece64f16331c44bdbed927841f94");
  nt_assert_hex(auth.lm_response, auth.lm_response_len,
                "98def7b87f88aa5dafe2df779688a172def11c7d5ccdef13");
  /* ESS cleared so the server can tell plain v1; target type and OEM
   * dropped, UNICODE kept. */
  ck_assert_uint_eq(auth.flags, 0x82008231u);
  ck_assert_str_eq(auth.user, "User");
  ck_assert_str_eq(auth.domain, "Domain");
  ck_assert_str_eq(auth.workstation, "COMPUTER");
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);
  ntlm_bytes_free(&out);
}
END_TEST

/* 4.2.3.2.1 LM and 4.2.3.2.2 NTLMv1 responses with client challenge. */
START_TEST(test_vectors_v1_ess)
{
  struct ntlm_client_creds c = {"Domain", "User", "Password", "COMPUTER",
                                NTLM_RESPONSE_V1_ESS};
  struct ntlm_message chal, auth;
  struct ntlm_bytes out = {0};
  struct ntlm_identity who;
  char err[256] = "";

  nt_decode_hex(SPEC_CHALLENGE_V1, &chal);
  ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, nt_client_chal, 0, &out,
                                            err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &auth, err, sizeof(err)),
                   NTLM_OK);
  nt_assert_hex(auth.lm_response, auth.lm_response_len,
                "aaaaaaaaaaaaaaaa00000000000000000000000000000000");
  nt_assert_hex(auth.nt_response, auth.nt_response_len,
                "7537f803ae367128ca458204bde7caf81e97ed2683267232");
  ck_assert_uint_eq(auth.flags, 0x82088231u);
  ck_assert_int_eq(ntlm_server_verify(&auth, nt_server_chal, nt_lookup, NULL,
                                      &who, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(who.kind, NTLM_RESPONSE_V1_ESS);
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);
  ntlm_bytes_free(&out);
}
END_TEST

/* 4.2.4.1.1 NTOWFv2, 4.2.4.1.2 session base key, 4.2.4.1.3 temp,
 * 4.2.4.2.1 LMv2 and 4.2.4.2.2 NTProofStr / NTLMv2 response. */
START_TEST(test_vectors_v2)
{
  uint8_t key[16], lm[24], sbk[16];
  struct ntlm_bytes nt = {0};
  size_t tilen;
  uint8_t *ti = nt_hex(SPEC_TARGET_INFO, &tilen);

  ck_assert_int_eq(ntlm_ntowf_v2("Password", "User", "Domain", key), NTLM_OK);
  nt_assert_hex(key, 16, "0c868a403bfd7a93a3001ef22ef02e3f");
  ck_assert_int_eq(ntlm_v2_responses(key, nt_server_chal, nt_client_chal, 0, ti,
                                     tilen, &nt, lm, sbk),
                   NTLM_OK);
  nt_assert_hex(lm, 24, "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa");
  nt_assert_hex(nt.data, nt.len,
                "68cd0ab851e51c96aabc927bebef6a1c"
                "0101000000000000"
                "0000000000000000"
                "aaaaaaaaaaaaaaaa"
                "00000000" SPEC_TARGET_INFO "00000000");
  nt_assert_hex(sbk, 16, "8de40ccadbc14a82f15cb0ad0de95ca3");
  ntlm_bytes_free(&nt);
  free(ti);
}
END_TEST

/* The 4.2.4.3 CHALLENGE decodes field by field and encodes back to the
 * same bytes. */
START_TEST(test_spec_challenge_codec)
{
  struct ntlm_message m;
  struct ntlm_bytes out = {0};
  size_t len;
  uint8_t *b = nt_hex(SPEC_CHALLENGE_V2, &len);
  char err[256] = "";

  ck_assert_int_eq(ntlm_decode(b, len, &m, err, sizeof(err)), NTLM_OK);
  ck_assert_int_eq(m.type, NTLM_TYPE_CHALLENGE);
  ck_assert_uint_eq(m.flags, 0xe28a8233u);
  ck_assert_str_eq(m.target_name, "Server");
  ck_assert_mem_eq(m.server_challenge, nt_server_chal, 8);
  nt_assert_hex(m.target_info, m.target_info_len, SPEC_TARGET_INFO);
  ck_assert(m.has_version);
  ck_assert_uint_eq(m.version.major, 6);
  ck_assert_uint_eq(m.version.minor, 0);
  ck_assert_uint_eq(m.version.build, 6000);
  ck_assert_uint_eq(m.version.revision, 15);
  ck_assert_ptr_null(m.user);
  ck_assert_int_eq(ntlm_encode(&m, &out, err, sizeof(err)), NTLM_OK);
  ck_assert_uint_eq(out.len, len);
  ck_assert_mem_eq(out.data, b, len);
  ntlm_bytes_free(&out);
  ntlm_message_free(&m);
  free(b);
}
END_TEST

/* The 4.2.4.3 AUTHENTICATE decodes, verifies against "Password" and the
 * example's server challenge, and encodes back to the same bytes. */
START_TEST(test_spec_authenticate_codec)
{
  struct ntlm_message m;
  struct ntlm_bytes out = {0};
  struct ntlm_identity who;
  struct nt_store st = {0};
  size_t len;
  uint8_t *b = nt_hex(SPEC_AUTHENTICATE_V2, &len);
  char err[256] = "";

  ck_assert_int_eq(ntlm_decode(b, len, &m, err, sizeof(err)), NTLM_OK);
  ck_assert_int_eq(m.type, NTLM_TYPE_AUTHENTICATE);
  ck_assert_uint_eq(m.flags, 0xe2888235u);
  ck_assert_str_eq(m.domain, "Domain");
  ck_assert_str_eq(m.user, "User");
  ck_assert_str_eq(m.workstation, "COMPUTER");
  ck_assert_uint_eq(m.lm_response_len, 24);
  ck_assert_uint_eq(m.nt_response_len, 84);
  nt_assert_hex(m.session_key, m.session_key_len,
                "c5dad2544fc9799094ce1ce90bc9d03e");
  ck_assert(m.has_version);
  ck_assert_uint_eq(m.version.build, 2600);
  ck_assert(!m.has_mic);
  ck_assert_int_eq(ntlm_server_verify(&m, nt_server_chal, nt_lookup, &st, &who,
                                      err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(st.lookups, 1);
  ck_assert_str_eq(who.domain, "Domain");
  ck_assert_str_eq(who.user, "User");
  ck_assert_str_eq(who.workstation, "COMPUTER");
  ck_assert_int_eq(who.kind, NTLM_RESPONSE_V2);
  ck_assert_int_eq(ntlm_encode(&m, &out, err, sizeof(err)), NTLM_OK);
  ck_assert_uint_eq(out.len, len);
  ck_assert_mem_eq(out.data, b, len);
  ntlm_bytes_free(&out);
  ntlm_message_free(&m);
  free(b);
}
END_TEST

/* Our client answering the 4.2.4.3 CHALLENGE with the 4.2.1 inputs writes
 * the spec's AUTHENTICATE exactly, minus key exchange: flags 0xa2888231
 * (the challenge's, without KEY_EXCH, TARGET_TYPE_SERVER and OEM) and an
 * empty session key at the end. */
START_TEST(test_client_v2_golden)
{
  struct ntlm_client_creds c = {"Domain", "User", "Password", "COMPUTER",
                                NTLM_RESPONSE_V2};
  struct ntlm_message chal;
  struct ntlm_bytes out = {0};
  char err[256] = "";

  nt_decode_hex(SPEC_CHALLENGE_V2, &chal);
  ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, nt_client_chal, 0, &out,
                                            err, sizeof(err)),
                   NTLM_OK);
  nt_assert_hex(
      out.data, out.len,
      "4e544c4d5353500003000000180018006c00000054005400840000000c000c00"
      "480000000800080054000000100010005c00000000000000d8000000318288a2"
      "0501280a0000000f44006f006d00610069006e00550073006500720043004f00"
      "4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa"
      "aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c010100000000000000000000"
      "00000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00"
      "01000c005300650072007600650072000000000000000000");
  ntlm_message_free(&chal);
  ntlm_bytes_free(&out);
}
END_TEST

/* Empty passwords hit DES weak keys (LM) and an empty MD4 input. */
START_TEST(test_empty_password)
{
  uint8_t h[16];

  ck_assert_int_eq(ntlm_lm_hash("", h), NTLM_OK);
  nt_assert_hex(h, 16, "aad3b435b51404eeaad3b435b51404ee");
  ck_assert_int_eq(ntlm_nt_hash("", h), NTLM_OK);
  nt_assert_hex(h, 16, "31d6cfe0d16ae931b73c59d7e0c089c0");
  /* LM upper-cases and keeps 14 characters. */
  {
    uint8_t a[16], b[16];
    ck_assert_int_eq(ntlm_lm_hash("password", a), NTLM_OK);
    ck_assert_int_eq(ntlm_lm_hash("PASSWORD", b), NTLM_OK);
    ck_assert_mem_eq(a, b, 16);
    nt_assert_hex(a, 16, "e52cac67419a9a224a3b108f3fa6cb6d");
    ck_assert_int_eq(ntlm_lm_hash("abcdefghijklmn", a), NTLM_OK);
    ck_assert_int_eq(ntlm_lm_hash("abcdefghijklmnXYZ", b), NTLM_OK);
    ck_assert_mem_eq(a, b, 16);
  }
  ck_assert_int_eq(ntlm_nt_hash("\xff", h), NTLM_ERR_ENCODING);
  ck_assert_int_eq(ntlm_nt_hash(NULL, h), NTLM_ERR_ARG);
}
END_TEST

/* NTOWFv2 upper-cases the user (exactly for ASCII, and for Latin-1) but
 * takes the domain as given. */
START_TEST(test_ntowfv2_case)
{
  uint8_t a[16], b[16];

  ck_assert_int_eq(ntlm_ntowf_v2("Password", "user", "Domain", a), NTLM_OK);
  nt_assert_hex(a, 16, "0c868a403bfd7a93a3001ef22ef02e3f");
  ck_assert_int_eq(ntlm_ntowf_v2("Password", "uSeR", "Domain", b), NTLM_OK);
  ck_assert_mem_eq(a, b, 16);
  ck_assert_int_eq(ntlm_ntowf_v2("Password", "User", "DOMAIN", b), NTLM_OK);
  ck_assert_mem_ne(a, b, 16);
  /* "émile" and "ÉMILE" (U+00E9 / U+00C9). */
  ck_assert_int_eq(ntlm_ntowf_v2("x", "\xc3\xa9mile", "D", a), NTLM_OK);
  ck_assert_int_eq(ntlm_ntowf_v2("x", "\xc3\x89MILE", "D", b), NTLM_OK);
  ck_assert_mem_eq(a, b, 16);
  /* "ÿ" upper-cases outside Latin-1, to U+0178. */
  ck_assert_int_eq(ntlm_ntowf_v2("x", "\xc3\xbf", "D", a), NTLM_OK);
  ck_assert_int_eq(ntlm_ntowf_v2("x", "\xc5\xb8", "D", b), NTLM_OK);
  ck_assert_mem_eq(a, b, 16);
  /* "÷" is not a letter and stays itself, distinct from "×". */
  ck_assert_int_eq(ntlm_ntowf_v2("x", "\xc3\xb7", "D", a), NTLM_OK);
  ck_assert_int_eq(ntlm_ntowf_v2("x", "\xc3\x97", "D", b), NTLM_OK);
  ck_assert_mem_ne(a, b, 16);
  ck_assert_int_eq(ntlm_ntowf_v2("x", "\xc3", "D", a), NTLM_ERR_ENCODING);
}
END_TEST

START_TEST(test_filetime)
{
  ck_assert_uint_eq(ntlm_filetime_from_unix_ms(0), 116444736000000000ull);
  /* Tue, 23 May 2017 20:13:07 GMT. */
  ck_assert_uint_eq(ntlm_filetime_from_unix_ms(1495570387000ll),
                    131400439870000000ull);
  ck_assert_uint_eq(ntlm_filetime_from_unix_ms(-11644473600000ll), 0);
  ck_assert_uint_eq(ntlm_filetime_from_unix_ms(INT64_MIN), 0);
}
END_TEST

/* ---- the support case's token ------------------------------------------- */

START_TEST(test_seed_token)
{
  struct ntlm_bytes tok = {0}, mine = {0}, again = {0};
  enum ntlm_scheme scheme = NTLM_SCHEME_NEGOTIATE;
  struct ntlm_message m;
  char err[256] = "";
  char text[256];
  char *hdr;

  ck_assert_int_eq(
      ntlm_header_parse("NTLM " SEED_TOKEN, &scheme, &tok, err, sizeof(err)),
      NTLM_OK);
  ck_assert_int_eq(scheme, NTLM_SCHEME_NTLM);
  nt_assert_hex(tok.data, tok.len, SEED_HEX);
  ck_assert_int_eq(ntlm_peek_type(tok.data, tok.len), NTLM_TYPE_NEGOTIATE);

  /* Communicator's NEGOTIATE, rebuilt, is exactly those 40 bytes. */
  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &mine),
                   NTLM_OK);
  ck_assert_uint_eq(mine.len, 40);
  ck_assert_mem_eq(mine.data, tok.data, 40);

  ck_assert_int_eq(ntlm_decode(tok.data, tok.len, &m, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(m.type, NTLM_TYPE_NEGOTIATE);
  ck_assert_uint_eq(m.flags, 0xa2088207u);
  ck_assert(m.has_version);
  ck_assert_uint_eq(m.version.major, 5);
  ck_assert_uint_eq(m.version.minor, 1);
  ck_assert_uint_eq(m.version.build, 2600);
  ck_assert_uint_eq(m.version.revision, 15);
  ck_assert_ptr_null(m.domain);
  ck_assert_ptr_null(m.workstation);
  ntlm_describe(&m, text, sizeof(text));
  ck_assert_str_eq(text, "NTLM type 1 NEGOTIATE flags 0xa2088207 (UNICODE OEM "
                         "REQUEST_TARGET NTLM ALWAYS_SIGN "
                         "EXTENDED_SESSIONSECURITY VERSION 128 56) version "
                         "5.1.2600/15");
  /* Truncation keeps a terminated prefix. */
  ntlm_describe(&m, text, 12);
  ck_assert_str_eq(text, "NTLM type 1");
  ck_assert_int_eq(ntlm_encode(&m, &again, err, sizeof(err)), NTLM_OK);
  ck_assert_uint_eq(again.len, 40);
  ck_assert_mem_eq(again.data, tok.data, 40);

  /* Formatting writes the canonical encoding. */
  hdr = ntlm_header_format(NTLM_SCHEME_NTLM, tok.data, tok.len);
  ck_assert_str_eq(hdr, "NTLM " SEED_CANONICAL);
  free(hdr);
  hdr = ntlm_header_format(NTLM_SCHEME_NEGOTIATE, tok.data, tok.len);
  ck_assert_str_eq(hdr, "Negotiate " SEED_CANONICAL);
  free(hdr);
  hdr = ntlm_header_format(NTLM_SCHEME_NTLM, NULL, 0);
  ck_assert_str_eq(hdr, "NTLM");
  free(hdr);

  ntlm_message_free(&m);
  ntlm_message_free(&m); /* a freed message may be freed again */
  ntlm_bytes_free(&tok);
  ntlm_bytes_free(&mine);
  ntlm_bytes_free(&again);
}
END_TEST

/* Scheme case, blanks and the bare "NTLM" of a 401. */
START_TEST(test_header_variants)
{
  struct ntlm_bytes tok = {0};
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  char err[256] = "";

  ck_assert_int_eq(ntlm_header_parse(" \tnegotiate  " SEED_CANONICAL "\t ",
                                     &scheme, &tok, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(scheme, NTLM_SCHEME_NEGOTIATE);
  nt_assert_hex(tok.data, tok.len, SEED_HEX);
  ntlm_bytes_free(&tok);

  ck_assert_int_eq(ntlm_header_parse("ntlm", &scheme, &tok, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(scheme, NTLM_SCHEME_NTLM);
  ck_assert_uint_eq(tok.len, 0);
  ck_assert_ptr_null(tok.data);

  /* One and two padding characters, non-canonical bits in each. */
  ck_assert_int_eq(ntlm_header_parse("NTLM QUJ=", NULL, &tok, err, sizeof(err)),
                   NTLM_OK);
  nt_assert_hex(tok.data, tok.len, "4142");
  ntlm_bytes_free(&tok);
  ck_assert_int_eq(ntlm_header_parse("NTLM QR==", NULL, &tok, err, sizeof(err)),
                   NTLM_OK);
  nt_assert_hex(tok.data, tok.len, "41");
  ntlm_bytes_free(&tok);
  ck_assert_int_eq(ntlm_header_parse(NULL, NULL, &tok, err, sizeof(err)),
                   NTLM_ERR_ARG);
}
END_TEST

Suite *ntlm_vectors_suite(void)
{
  Suite *s = suite_create("vectors");
  TCase *tc;

  tc = tcase_create("vectors");
  tcase_add_test(tc, test_vectors_v1_keys);
  tcase_add_test(tc, test_vectors_v1_responses);
  tcase_add_test(tc, test_vectors_v1_client);
  tcase_add_test(tc, test_vectors_v1_ess);
  tcase_add_test(tc, test_vectors_v2);
  tcase_add_test(tc, test_spec_challenge_codec);
  tcase_add_test(tc, test_spec_authenticate_codec);
  tcase_add_test(tc, test_client_v2_golden);
  tcase_add_test(tc, test_empty_password);
  tcase_add_test(tc, test_ntowfv2_case);
  tcase_add_test(tc, test_filetime);
  suite_add_tcase(s, tc);

  tc = tcase_create("seed");
  tcase_add_test(tc, test_seed_token);
  tcase_add_test(tc, test_header_variants);
  suite_add_tcase(s, tc);
  return s;
}
