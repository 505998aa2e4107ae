/*
 * test_ntlm.c - the NTLM library: MS-NLMP 4.2 vectors, the support case's
 * own token, client <-> server handshakes for every response kind, codec
 * round trips, a table of malformed messages and headers, a mutation loop
 * and concurrent handshakes.
 *
 * Every expected value is an exact byte string or count. The vectors are
 * MS-NLMP section 4.2's (common inputs in 4.2.1: user "User", domain
 * "Domain", password "Password", workstation "COMPUTER", server challenge
 * 0123456789abcdef, client challenge aa * 8, time 0).
 */
#define _GNU_SOURCE /* memmem */
#include "kbt.h"
#include "ntlm/ntlm.h"
#include "ntlm/ntlm_core.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- helpers ------------------------------------------------------------ */

/* Decodes hex (blanks allowed) into a malloc'd buffer; *len gets its size.
 * Aborts the test on a malformed literal, which is a bug in the test. */
static uint8_t *hex(const char *h, size_t *len)
{
  size_t n = strlen(h);
  uint8_t *out = malloc(n / 2 + 1);
  size_t o = 0;
  int hi = -1;

  ck_assert_ptr_nonnull(out);
  for(; *h; h++) {
    int v;
    if(*h == ' ' || *h == '\n')
      continue;
    if(*h >= '0' && *h <= '9')
      v = *h - '0';
    else if(*h >= 'a' && *h <= 'f')
      v = *h - 'a' + 10;
    else if(*h >= 'A' && *h <= 'F')
      v = *h - 'A' + 10;
    else
      ck_abort_msg("bad hex digit '%c' in a test literal", *h);
    if(hi < 0)
      hi = v;
    else {
      out[o++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  ck_assert_int_eq(hi, -1);
  *len = o;
  return out;
}

/* Asserts that got[0..glen) equals the hex literal want. */
static void assert_hex(const uint8_t *got, size_t glen, const char *want)
{
  size_t wlen;
  uint8_t *w = hex(want, &wlen);

  ck_assert_uint_eq(glen, wlen);
  ck_assert_mem_eq(got, w, wlen);
  free(w);
}

static const uint8_t server_chal[8] = {0x01, 0x23, 0x45, 0x67,
                                       0x89, 0xab, 0xcd, 0xef};
static const uint8_t client_chal[8] = {0xaa, 0xaa, 0xaa, 0xaa,
                                       0xaa, 0xaa, 0xaa, 0xaa};

/* MS-NLMP 4.2.4.3: the CHALLENGE_MESSAGE of the NTLMv2 example. */
#define SPEC_CHALLENGE_V2                                                      \
  "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef"           \
  "00000000000000002400240044000000060070170000000f5300650072007600"           \
  "6500720002000c0044006f006d00610069006e0001000c005300650072007600"           \
  "6500720000000000"

/* MS-NLMP 4.2.4.3: the AUTHENTICATE_MESSAGE of the NTLMv2 example. */
#define SPEC_AUTHENTICATE_V2                                                   \
  "4e544c4d5353500003000000180018006c00000054005400840000000c000c00"           \
  "480000000800080054000000100010005c00000010001000d8000000358288e2"           \
  "0501280a0000000f44006f006d00610069006e00550073006500720043004f00"           \
  "4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa"           \
  "aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c010100000000000000000000"           \
  "00000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00"           \
  "01000c005300650072007600650072000000000000000000c5dad2544fc97990"           \
  "94ce1ce90bc9d03e"

/* MS-NLMP 4.2.3.3: the CHALLENGE_MESSAGE of the NTLMv1-with-client-
 * challenge example (no target info). */
#define SPEC_CHALLENGE_V1                                                      \
  "4e544c4d53535000020000000c000c003800000033820a820123456789abcdef"           \
  "00000000000000000000000000000000060070170000000f5300650072007600"           \
  "65007200"

/* MS-NLMP 4.2.4.1.3's target info: NbDomainName "Domain", NbComputerName
 * "Server", EOL. */
#define SPEC_TARGET_INFO                                                       \
  "02000c0044006f006d00610069006e0001000c00530065007200760065007200"           \
  "00000000"

/* The support case's Authorization token (non-canonical final base64
 * character) and the same 40 bytes canonically encoded. */
#define SEED_TOKEN "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0=="
#define SEED_CANONICAL                                                         \
  "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw=="
#define SEED_HEX                                                               \
  "4e544c4d53535000010000000782 08a2 0000000000000000 0000000000000000"        \
  "0501280a0000000f"

/* Decodes a hex literal as a message, asserting success. */
static void decode_hex(const char *h, struct ntlm_message *m)
{
  size_t len;
  uint8_t *b = hex(h, &len);
  char err[256] = "";

  ck_assert_msg(ntlm_decode(b, len, m, err, sizeof(err)) == NTLM_OK, "%s", err);
  free(b);
}

/* The user store of the round-trip tests: case-insensitive like
 * kb_users. Counts lookups so tests can see verification consulted it. */
struct store {
  int lookups;
};

static const char *lookup(void *ctx, const char *domain, const char *user)
{
  struct store *s = ctx;

  if(s)
    s->lookups++;
  if(!strcasecmp(domain, "FABRIKAM") && !strcasecmp(user, "alice"))
    return "Secr3t!";
  if(!strcasecmp(domain, "FABRIKAM") && !strcasecmp(user, "\xc3\xa9mile"))
    return "p\xc3\xa4ss";
  if(!strcasecmp(domain, "Domain") && !strcasecmp(user, "User"))
    return "Password";
  return NULL;
}

static const struct ntlm_server_info isa = {"FABRIKAM", "ISA01", "fabrikam.com",
                                            "isa01.fabrikam.com"};

/* ---- MS-NLMP 4.2 vectors ------------------------------------------------ */

START_TEST(test_vectors_v1_keys)
{
  uint8_t nt[16], lm[16], key[16];

  /* 4.2.2.1.2 NTOWFv1, 4.2.2.1.1 LMOWFv1, 4.2.2.1.3 session base key. */
  ck_assert_int_eq(ntlm_nt_hash("Password", nt), NTLM_OK);
  assert_hex(nt, 16, "a4f49c406510bdcab6824ee7c30fd852");
  ck_assert_int_eq(ntlm_lm_hash("Password", lm), NTLM_OK);
  assert_hex(lm, 16, "e52cac67419a9a224a3b108f3fa6cb6d");
  ntlm_v1_session_base_key(nt, key);
  assert_hex(key, 16, "d87262b0cde4b1cb7499becccdf10784");
}
END_TEST

START_TEST(test_vectors_v1_responses)
{
  uint8_t nt[16], lm[16], resp[24];

  /* 4.2.2.2.1 NTLMv1 response and 4.2.2.2.2 LMv1 response. */
  ck_assert_int_eq(ntlm_nt_hash("Password", nt), NTLM_OK);
  ntlm_desl(nt, server_chal, resp);
  assert_hex(resp, 24, "67c43011f30298a2ad35ece64f16331c44bdbed927841f94");
  ck_assert_int_eq(ntlm_lm_hash("Password", lm), NTLM_OK);
  ntlm_desl(lm, server_chal, resp);
  assert_hex(resp, 24, "98def7b87f88aa5dafe2df779688a172def11c7d5ccdef13");
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

  decode_hex(SPEC_CHALLENGE_V1, &chal);
  ck_assert_int_eq(
      ntlm_client_authenticate(&c, &chal, NULL, 0, &out, err, sizeof(err)),
      NTLM_OK);
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &auth, err, sizeof(err)),
                   NTLM_OK);
  assert_hex(auth.nt_response, auth.nt_response_len,
             "67c43011f30298a2ad35ece64f16331c44bdbed927841f94");
  assert_hex(auth.lm_response, auth.lm_response_len,
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

  decode_hex(SPEC_CHALLENGE_V1, &chal);
  ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, client_chal, 0, &out,
                                            err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &auth, err, sizeof(err)),
                   NTLM_OK);
  assert_hex(auth.lm_response, auth.lm_response_len,
             "aaaaaaaaaaaaaaaa00000000000000000000000000000000");
  assert_hex(auth.nt_response, auth.nt_response_len,
             "7537f803ae367128ca458204bde7caf81e97ed2683267232");
  ck_assert_uint_eq(auth.flags, 0x82088231u);
  ck_assert_int_eq(ntlm_server_verify(&auth, server_chal, lookup, NULL, &who,
                                      err, sizeof(err)),
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
  uint8_t *ti = hex(SPEC_TARGET_INFO, &tilen);

  ck_assert_int_eq(ntlm_ntowf_v2("Password", "User", "Domain", key), NTLM_OK);
  assert_hex(key, 16, "0c868a403bfd7a93a3001ef22ef02e3f");
  ck_assert_int_eq(ntlm_v2_responses(key, server_chal, client_chal, 0, ti,
                                     tilen, &nt, lm, sbk),
                   NTLM_OK);
  assert_hex(lm, 24, "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa");
  assert_hex(nt.data, nt.len,
             "68cd0ab851e51c96aabc927bebef6a1c"
             "0101000000000000"
             "0000000000000000"
             "aaaaaaaaaaaaaaaa"
             "00000000" SPEC_TARGET_INFO "00000000");
  assert_hex(sbk, 16, "8de40ccadbc14a82f15cb0ad0de95ca3");
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
  uint8_t *b = hex(SPEC_CHALLENGE_V2, &len);
  char err[256] = "";

  ck_assert_int_eq(ntlm_decode(b, len, &m, err, sizeof(err)), NTLM_OK);
  ck_assert_int_eq(m.type, NTLM_TYPE_CHALLENGE);
  ck_assert_uint_eq(m.flags, 0xe28a8233u);
  ck_assert_str_eq(m.target_name, "Server");
  ck_assert_mem_eq(m.server_challenge, server_chal, 8);
  assert_hex(m.target_info, m.target_info_len, SPEC_TARGET_INFO);
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
  struct store st = {0};
  size_t len;
  uint8_t *b = hex(SPEC_AUTHENTICATE_V2, &len);
  char err[256] = "";

  ck_assert_int_eq(ntlm_decode(b, len, &m, err, sizeof(err)), NTLM_OK);
  ck_assert_int_eq(m.type, NTLM_TYPE_AUTHENTICATE);
  ck_assert_uint_eq(m.flags, 0xe2888235u);
  ck_assert_str_eq(m.domain, "Domain");
  ck_assert_str_eq(m.user, "User");
  ck_assert_str_eq(m.workstation, "COMPUTER");
  ck_assert_uint_eq(m.lm_response_len, 24);
  ck_assert_uint_eq(m.nt_response_len, 84);
  assert_hex(m.session_key, m.session_key_len,
             "c5dad2544fc9799094ce1ce90bc9d03e");
  ck_assert(m.has_version);
  ck_assert_uint_eq(m.version.build, 2600);
  ck_assert(!m.has_mic);
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, &who, err, sizeof(err)),
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

  decode_hex(SPEC_CHALLENGE_V2, &chal);
  ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, client_chal, 0, &out,
                                            err, sizeof(err)),
                   NTLM_OK);
  assert_hex(out.data, out.len,
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
  assert_hex(h, 16, "aad3b435b51404eeaad3b435b51404ee");
  ck_assert_int_eq(ntlm_nt_hash("", h), NTLM_OK);
  assert_hex(h, 16, "31d6cfe0d16ae931b73c59d7e0c089c0");
  /* LM upper-cases and keeps 14 characters. */
  {
    uint8_t a[16], b[16];
    ck_assert_int_eq(ntlm_lm_hash("password", a), NTLM_OK);
    ck_assert_int_eq(ntlm_lm_hash("PASSWORD", b), NTLM_OK);
    ck_assert_mem_eq(a, b, 16);
    assert_hex(a, 16, "e52cac67419a9a224a3b108f3fa6cb6d");
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
  assert_hex(a, 16, "0c868a403bfd7a93a3001ef22ef02e3f");
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
  assert_hex(tok.data, tok.len, SEED_HEX);
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
  assert_hex(tok.data, tok.len, SEED_HEX);
  ntlm_bytes_free(&tok);

  ck_assert_int_eq(ntlm_header_parse("ntlm", &scheme, &tok, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(scheme, NTLM_SCHEME_NTLM);
  ck_assert_uint_eq(tok.len, 0);
  ck_assert_ptr_null(tok.data);

  /* One and two padding characters, non-canonical bits in each. */
  ck_assert_int_eq(ntlm_header_parse("NTLM QUJ=", NULL, &tok, err, sizeof(err)),
                   NTLM_OK);
  assert_hex(tok.data, tok.len, "4142");
  ntlm_bytes_free(&tok);
  ck_assert_int_eq(ntlm_header_parse("NTLM QR==", NULL, &tok, err, sizeof(err)),
                   NTLM_OK);
  assert_hex(tok.data, tok.len, "41");
  ntlm_bytes_free(&tok);
  ck_assert_int_eq(ntlm_header_parse(NULL, NULL, &tok, err, sizeof(err)),
                   NTLM_ERR_ARG);
}
END_TEST

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

  ck_assert_int_eq(ntlm_server_challenge(&isa, neg.flags, sc, ts, &b), NTLM_OK);
  ntlm_message_free(&neg);
  h = ntlm_header_format(NTLM_SCHEME_NTLM, b.data, b.len);
  ntlm_bytes_free(&b);
  ck_assert_int_eq(ntlm_header_parse(h, NULL, &tok, err, sizeof(err)), NTLM_OK);
  free(h);
  ck_assert_msg(ntlm_decode(tok.data, tok.len, chal, err, sizeof(err)) ==
                    NTLM_OK,
                "%s", err);
  ntlm_bytes_free(&tok);

  ck_assert_msg(ntlm_client_authenticate(c, chal, client_chal, 0, &b, err,
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
  struct store st = {0};
  uint8_t other[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xee};
  char err[256] = "";
  char text[256];

  handshake(&c, NTLM_COMMUNICATOR_FLAGS, server_chal, 0, &chal, &auth);
  ck_assert_int_eq(ntlm_server_verify(&auth, server_chal, lookup, &st, &who,
                                      err, sizeof(err)),
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
      ntlm_server_verify(&auth, other, lookup, &st, &who, err, sizeof(err)),
      NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, "FABRIKAM\\alice"));
  ck_assert_ptr_null(strstr(err, "Secr3t!"));
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);

  /* Wrong password. */
  c.password = "secr3t!";
  handshake(&c, NTLM_COMMUNICATOR_FLAGS, server_chal, 0, &chal, &auth);
  err[0] = '\0';
  ck_assert_int_eq(ntlm_server_verify(&auth, server_chal, lookup, &st, &who,
                                      err, sizeof(err)),
                   NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, ntlm_response_kind_name(kind)));
  ck_assert_ptr_null(strstr(err, "Secr3t!"));
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);

  /* Unknown user. */
  c.user = "mallory";
  handshake(&c, NTLM_COMMUNICATOR_FLAGS, server_chal, 0, &chal, &auth);
  err[0] = '\0';
  ck_assert_int_eq(ntlm_server_verify(&auth, server_chal, lookup, &st, &who,
                                      err, sizeof(err)),
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
  handshake(&c, NTLM_COMMUNICATOR_FLAGS, server_chal, 0, &chal, &auth);
  ck_assert_int_eq(ntlm_server_verify(&auth, server_chal, lookup, &st, &who,
                                      err, sizeof(err)),
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

  handshake(&c, flags, server_chal, 0, &chal, &auth);
  ck_assert_uint_eq(chal.flags & (NTLM_NEGOTIATE_UNICODE | NTLM_NEGOTIATE_OEM),
                    NTLM_NEGOTIATE_OEM);
  ck_assert_str_eq(chal.target_name, "FABRIKAM");
  ck_assert_uint_eq(auth.flags & (NTLM_NEGOTIATE_UNICODE | NTLM_NEGOTIATE_OEM),
                    NTLM_NEGOTIATE_OEM);
  ck_assert_str_eq(auth.user, "\xc3\xa9mile");
  ck_assert_int_eq(ntlm_server_verify(&auth, server_chal, lookup, NULL, &who,
                                      err, sizeof(err)),
                   NTLM_OK);
  ck_assert_str_eq(who.user, "\xc3\xa9mile");
  ntlm_message_free(&auth);
  ntlm_message_free(&chal);

  /* A name OEM cannot carry is refused, not mangled. */
  c.user = "\xd0\xb8";
  decode_hex(SPEC_CHALLENGE_V1, &chal);
  chal.flags &= ~NTLM_NEGOTIATE_UNICODE;
  {
    struct ntlm_bytes out = {0};
    ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, client_chal, 0, &out,
                                              err, sizeof(err)),
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

  ck_assert_int_eq(ntlm_server_challenge(&isa, NTLM_COMMUNICATOR_FLAGS,
                                         server_chal, 0x01c9a71b5e4e3c00ull,
                                         &b),
                   NTLM_OK);
  assert_hex(b.data, b.len,
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
                         server_chal, 0, &b),
                     NTLM_OK);
    ck_assert_int_eq(ntlm_decode(b.data, b.len, &m, err, sizeof(err)), NTLM_OK);
    ck_assert_uint_eq(m.flags, 0x02810201u);
    assert_hex(m.target_info, m.target_info_len,
               "020002004400"
               "010002005300"
               "00000000");
    ntlm_message_free(&m);
    ntlm_bytes_free(&b);
  }
  ck_assert_int_eq(ntlm_server_challenge(NULL, 0, server_chal, 0, &b),
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

  handshake(&c, NTLM_COMMUNICATOR_FLAGS, server_chal, ts, &chal, &auth);
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
  ck_assert_int_eq(ntlm_server_verify(&auth, server_chal, lookup, NULL, &who,
                                      err, sizeof(err)),
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
  assert_hex(a.data, a.len,
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
  ti = hex("02000c0044006f006d00610069006e00"
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
  struct store st = {0};
  uint8_t lm1[1] = {0};
  uint8_t nt30[30] = {0};
  char err[256] = "";
  struct ntlm_client_creds c = {"D", "u", "p", NULL, NTLM_RESPONSE_V2};

  memset(&m, 0, sizeof(m));
  m.type = NTLM_TYPE_AUTHENTICATE;
  m.lm_response = lm1;
  m.lm_response_len = 1;
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, NULL, err, sizeof(err)),
      NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, "anonymous"));

  m.user = "alice";
  m.domain = "FABRIKAM";
  m.nt_response = nt30;
  m.nt_response_len = sizeof(nt30);
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, NULL, err, sizeof(err)),
      NTLM_ERR_BAD_PROOF);
  ck_assert_ptr_nonnull(strstr(err, "30-byte"));

  m.nt_response_len = 24;
  m.flags = NTLM_NEGOTIATE_ANONYMOUS;
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, NULL, err, sizeof(err)),
      NTLM_ERR_BAD_PROOF);
  m.flags = 0;
  m.user = NULL;
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, NULL, err, sizeof(err)),
      NTLM_ERR_BAD_PROOF);
  ck_assert_int_eq(st.lookups, 1); /* only the 30-byte case looked up */

  m.type = NTLM_TYPE_CHALLENGE;
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, NULL, err, sizeof(err)),
      NTLM_ERR_TYPE);
  ck_assert_int_eq(
      ntlm_client_authenticate(&c, &m, client_chal, 0, &out, err, sizeof(err)),
      NTLM_OK);
  ntlm_bytes_free(&out);
  m.type = NTLM_TYPE_NEGOTIATE;
  ck_assert_int_eq(
      ntlm_client_authenticate(&c, &m, client_chal, 0, &out, err, sizeof(err)),
      NTLM_ERR_TYPE);
  m.type = NTLM_TYPE_CHALLENGE;
  ck_assert_int_eq(
      ntlm_client_authenticate(&c, &m, NULL, 0, &out, err, sizeof(err)),
      NTLM_ERR_ARG);
  ck_assert_int_eq(ntlm_server_verify(NULL, server_chal, lookup, &st, NULL, err,
                                      sizeof(err)),
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

/* ---- malformed input ---------------------------------------------------- */

struct malformed {
  const char *name;
  const char *base;  /* hex */
  size_t cut;        /* keep this many bytes; 0 = all */
  size_t patch_at;   /* overwrite bytes here ... */
  const char *patch; /* ... with this hex; NULL = none */
  enum ntlm_result expect;
};

#define NEG_32                                                                 \
  "4e544c4d53535000010000000732 0000 0000000000000000 0000000000000000"

static const struct malformed malformed[] = {
    {"empty", "", 0, 0, NULL, NTLM_ERR_TRUNCATED},
    {"signature prefix", "4e544c4d5353", 0, 0, NULL, NTLM_ERR_TRUNCATED},
    {"no type", "4e544c4d5353500001", 0, 0, NULL, NTLM_ERR_TRUNCATED},
    {"wrong signature", SEED_HEX, 0, 6, "58", NTLM_ERR_SIGNATURE},
    {"lower-case signature", SEED_HEX, 0, 0, "6e746c6d", NTLM_ERR_SIGNATURE},
    {"Basic credentials", "426173696320787978797a", 0, 0, NULL,
     NTLM_ERR_SIGNATURE},
    {"short garbage", "00", 0, 0, NULL, NTLM_ERR_SIGNATURE},
    {"type 0", SEED_HEX, 0, 8, "00", NTLM_ERR_TYPE},
    {"type 4", SEED_HEX, 0, 8, "04", NTLM_ERR_TYPE},
    {"type 0x103", SEED_HEX, 0, 8, "03010000", NTLM_ERR_TYPE},
    {"type 1 cut at 15", SEED_HEX, 15, 0, NULL, NTLM_ERR_TRUNCATED},
    {"type 1 domain past end", NEG_32, 0, 16, "0600060028000000",
     NTLM_ERR_BOUNDS},
    {"type 1 domain huge", NEG_32, 0, 16, "ffffffffffffffff", NTLM_ERR_BOUNDS},
    {"type 1 workstation in header", NEG_32, 0, 24, "0400040008000000",
     NTLM_ERR_BOUNDS},
    {"type 2 cut at 31", SPEC_CHALLENGE_V2, 31, 0, NULL, NTLM_ERR_TRUNCATED},
    {"type 2 target info past end", SPEC_CHALLENGE_V2, 80, 0, NULL,
     NTLM_ERR_BOUNDS},
    {"type 2 target name offset 4000", SPEC_CHALLENGE_V2, 0, 16, "a00f0000",
     NTLM_ERR_BOUNDS},
    {"type 2 AV pair overruns", SPEC_CHALLENGE_V2, 0, 70, "3000",
     NTLM_ERR_BOUNDS},
    {"type 2 AV list ends mid-header", SPEC_CHALLENGE_V2, 0, 40, "2200",
     NTLM_ERR_BOUNDS},
    {"type 2 odd UTF-16 target name", SPEC_CHALLENGE_V2, 0, 12, "0b00",
     NTLM_ERR_ENCODING},
    {"type 3 cut at 63", SPEC_AUTHENTICATE_V2, 63, 0, NULL, NTLM_ERR_TRUNCATED},
    {"type 3 NT offset 4000", SPEC_AUTHENTICATE_V2, 0, 24, "a00f0000",
     NTLM_ERR_BOUNDS},
    {"type 3 NT length 0xffff", SPEC_AUTHENTICATE_V2, 0, 20, "ffff",
     NTLM_ERR_BOUNDS},
    {"type 3 LM offset 0xffffffff", SPEC_AUTHENTICATE_V2, 0, 16, "ffffffff",
     NTLM_ERR_BOUNDS},
    {"type 3 session key past end", SPEC_AUTHENTICATE_V2, 0, 52, "1100",
     NTLM_ERR_BOUNDS},
    {"type 3 domain in header", SPEC_AUTHENTICATE_V2, 0, 32, "10000000",
     NTLM_ERR_BOUNDS},
    {"type 3 odd UTF-16 user", SPEC_AUTHENTICATE_V2, 0, 36, "0700",
     NTLM_ERR_ENCODING},
    {"type 3 NUL in user", SPEC_AUTHENTICATE_V2, 0, 84, "0000",
     NTLM_ERR_ENCODING},
    {"type 3 lone high surrogate", SPEC_AUTHENTICATE_V2, 0, 84, "00d8",
     NTLM_ERR_ENCODING},
    {"type 3 lone low surrogate", SPEC_AUTHENTICATE_V2, 0, 84, "00dc",
     NTLM_ERR_ENCODING},
    {"type 3 high surrogate last", SPEC_AUTHENTICATE_V2, 0, 90, "00d8",
     NTLM_ERR_ENCODING},
};

/* Loop test over malformed[]: the exact error, a one-line message, and
 * nothing left to free. */
START_TEST(test_malformed)
{
  const struct malformed *t = &malformed[_i];
  struct ntlm_message m;
  size_t len;
  uint8_t *b = hex(t->base, &len);
  char err[256] = "";

  if(t->cut)
    len = t->cut;
  if(t->patch) {
    size_t plen;
    uint8_t *p = hex(t->patch, &plen);
    ck_assert_uint_le(t->patch_at + plen, len);
    memcpy(b + t->patch_at, p, plen);
    free(p);
  }
  memset(&m, 0x55, sizeof(m));
  ck_assert_msg(ntlm_decode(len ? b : NULL, len, &m, err, sizeof(err)) ==
                    t->expect,
                "%s: got %s (%s), want %s", t->name,
                ntlm_strerror(ntlm_decode(b, len, &m, NULL, 0)), err,
                ntlm_strerror(t->expect));
  ck_assert_msg(err[0] != '\0', "%s: no message", t->name);
  ck_assert_msg(!strchr(err, '\n'), "%s: message has a newline", t->name);
  ck_assert_int_eq(m.type, NTLM_TYPE_NONE);
  ck_assert_ptr_null(m.user);
  ck_assert_ptr_null(m.nt_response);
  ck_assert_ptr_null(m.target_info);
  free(b);
}
END_TEST

/* The messages name the field and the numbers. */
START_TEST(test_malformed_messages)
{
  struct ntlm_message m;
  size_t len;
  uint8_t *b = hex(SPEC_AUTHENTICATE_V2, &len);
  char err[256] = "";

  b[24] = 0xa0;
  b[25] = 0x0f;
  ck_assert_int_eq(ntlm_decode(b, len, &m, err, sizeof(err)), NTLM_ERR_BOUNDS);
  ck_assert_str_eq(err, "NTLM type 3: NtChallengeResponse offset 4000 + "
                        "length 84 is past the end of the 232-byte message");
  ck_assert_int_eq(ntlm_decode(b, 40, &m, err, sizeof(err)),
                   NTLM_ERR_TRUNCATED);
  ck_assert_str_eq(err, "NTLM type 3: message of 40 bytes is shorter than the "
                        "64-byte header");
  b[36] = 7;
  b[24] = 0x84;
  b[25] = 0x00;
  ck_assert_int_eq(ntlm_decode(b, len, &m, err, sizeof(err)),
                   NTLM_ERR_ENCODING);
  ck_assert_str_eq(err, "NTLM type 3: UserName (7 bytes) has an odd number "
                        "of bytes for UTF-16");
  /* err may be NULL or tiny. */
  ck_assert_int_eq(ntlm_decode(b, len, &m, NULL, 0), NTLM_ERR_ENCODING);
  ck_assert_int_eq(ntlm_decode(b, len, &m, err, 5), NTLM_ERR_ENCODING);
  ck_assert_str_eq(err, "NTLM");
  ck_assert_int_eq(ntlm_decode(b, len, NULL, err, sizeof(err)), NTLM_ERR_ARG);
  free(b);
}
END_TEST

/* Every proper prefix of a valid AUTHENTICATE (ours, V2, with VERSION) is
 * refused: shorter than the header is TRUNCATED, longer cuts a field. */
START_TEST(test_truncations)
{
  struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", "COMMUNICATOR",
                                NTLM_RESPONSE_V2};
  struct ntlm_message chal, m;
  struct ntlm_bytes out = {0};
  char err[256] = "";
  size_t cut;
  size_t refused = 0;

  decode_hex(SPEC_CHALLENGE_V2, &chal);
  ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, client_chal, 0, &out,
                                            err, sizeof(err)),
                   NTLM_OK);
  ck_assert_uint_gt(out.len, 72);
  for(cut = 0; cut < out.len; cut++) {
    enum ntlm_result want = cut < 64 ? NTLM_ERR_TRUNCATED : NTLM_ERR_BOUNDS;
    enum ntlm_result got = ntlm_decode(out.data, cut, &m, err, sizeof(err));
    ck_assert_msg(got == want, "cut at %zu: got %s, want %s", cut,
                  ntlm_strerror(got), ntlm_strerror(want));
    refused++;
  }
  ck_assert_uint_eq(refused, out.len);
  ck_assert_int_eq(ntlm_decode(out.data, out.len, &m, err, sizeof(err)),
                   NTLM_OK);
  ntlm_message_free(&m);
  ntlm_message_free(&chal);
  ntlm_bytes_free(&out);
}
END_TEST

/* Anything past NTLM_MAX_MESSAGE is refused before it is looked at. */
START_TEST(test_oversized)
{
  struct ntlm_message m;
  struct ntlm_bytes tok = {0};
  uint8_t *b = calloc(1, NTLM_MAX_MESSAGE + 1);
  char err[256] = "";
  char *h;

  ck_assert_ptr_nonnull(b);
  memcpy(b, "NTLMSSP\0\3\0\0\0", 12);
  ck_assert_int_eq(ntlm_decode(b, NTLM_MAX_MESSAGE + 1, &m, err, sizeof(err)),
                   NTLM_ERR_TOO_BIG);
  ck_assert_str_eq(err, "NTLM: message of 4097 bytes is larger than the "
                        "4096-byte limit");
  /* A token that decodes to one byte more than the limit. */
  h = ntlm_header_format(NTLM_SCHEME_NTLM, b, NTLM_MAX_MESSAGE + 1);
  ck_assert_ptr_nonnull(h);
  ck_assert_int_eq(ntlm_header_parse(h, NULL, &tok, err, sizeof(err)),
                   NTLM_ERR_TOO_BIG);
  ck_assert_ptr_null(tok.data);
  free(h);
  /* Exactly the limit decodes (as a message it is then truncated). */
  h = ntlm_header_format(NTLM_SCHEME_NTLM, b, NTLM_MAX_MESSAGE);
  ck_assert_int_eq(ntlm_header_parse(h, NULL, &tok, err, sizeof(err)), NTLM_OK);
  ck_assert_uint_eq(tok.len, NTLM_MAX_MESSAGE);
  ntlm_bytes_free(&tok);
  free(h);
  free(b);
}
END_TEST

struct bad_header {
  const char *value;
  enum ntlm_result expect;
};

static const struct bad_header bad_headers[] = {
    {"", NTLM_ERR_HEADER},
    {" \t ", NTLM_ERR_HEADER},
    {"Basic xyz", NTLM_ERR_HEADER},
    {"Basic dXNlcjpwYXNz", NTLM_ERR_HEADER},
    {"NTLMv2 " SEED_TOKEN, NTLM_ERR_HEADER},
    {"NTL " SEED_TOKEN, NTLM_ERR_HEADER},
    {"Digest realm=\"x\"", NTLM_ERR_HEADER},
    {"NTLM !!!!", NTLM_ERR_BASE64},
    {"NTLM QQ=", NTLM_ERR_BASE64},
    {"NTLM Q===", NTLM_ERR_BASE64},
    {"NTLM ====", NTLM_ERR_BASE64},
    {"NTLM QQ==QQ==", NTLM_ERR_BASE64},
    {"NTLM Q=Q=", NTLM_ERR_BASE64},
    {"NTLM QU JRA==", NTLM_ERR_BASE64},
    {"NTLM QUJ\tRA==", NTLM_ERR_BASE64},
    {"NTLM TlRM_VNT", NTLM_ERR_BASE64},
    {"NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0",
     NTLM_ERR_BASE64},
    {"Negotiate a\xc3\xa9"
     "b=",
     NTLM_ERR_BASE64},
};

/* Loop test over bad_headers[]. */
START_TEST(test_bad_header)
{
  const struct bad_header *t = &bad_headers[_i];
  struct ntlm_bytes tok = {0};
  char err[256] = "";

  ck_assert_msg(ntlm_header_parse(t->value, NULL, &tok, err, sizeof(err)) ==
                    t->expect,
                "\"%s\": %s", t->value, err);
  ck_assert_msg(err[0] != '\0', "\"%s\": no message", t->value);
  ck_assert_ptr_null(tok.data);
  ck_assert_uint_eq(tok.len, 0);
}
END_TEST

/* A deterministic mutation loop: damaged versions of valid messages never
 * crash the decoder (ASan/UBSan builds check the "never reads out of
 * bounds"), and whatever decodes can be described, re-encoded, answered
 * and verified without crashing. */
START_TEST(test_mutations)
{
  static const char *bases[] = {SEED_HEX, SPEC_CHALLENGE_V2, SPEC_CHALLENGE_V1,
                                SPEC_AUTHENTICATE_V2};
  struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", "WS",
                                NTLM_RESPONSE_V2};
  uint64_t x = 0x9e3779b97f4a7c15ull;
  size_t counts[4] = {0};
  int iter;

  for(iter = 0; iter < 40000; iter++) {
    size_t len;
    uint8_t *b = hex(bases[iter % 4], &len);
    struct ntlm_message m;
    struct ntlm_bytes out = {0};
    int k, nmut;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    nmut = 1 + (int)(x % 4);
    for(k = 0; k < nmut; k++) {
      size_t at, span;
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      /* Aim half the damage at the header, where lengths and offsets
       * live. */
      span = (x & 1) ? 64 : len;
      if(!span)
        break;
      at = (x >> 8) % span;
      if(at < len)
        b[at] = (uint8_t)(x >> 32);
      if((x & 0x700) == 0x100)
        len = (x >> 40) % (len + 1);
    }
    if(ntlm_decode(b, len, &m, NULL, 0) == NTLM_OK) {
      char text[256];
      counts[m.type]++;
      ntlm_describe(&m, text, sizeof(text));
      if(ntlm_encode(&m, &out, NULL, 0) == NTLM_OK)
        ntlm_bytes_free(&out);
      if(m.type == NTLM_TYPE_CHALLENGE &&
         ntlm_client_authenticate(&c, &m, client_chal, 0, &out, NULL, 0) ==
             NTLM_OK)
        ntlm_bytes_free(&out);
      if(m.type == NTLM_TYPE_AUTHENTICATE)
        (void)ntlm_server_verify(&m, server_chal, lookup, NULL, NULL, NULL, 0);
      ntlm_message_free(&m);
    }
    free(b);
  }
  /* The loop did exercise all three decoders past their checks. */
  ck_assert_uint_gt(counts[1], 100);
  ck_assert_uint_gt(counts[2], 100);
  ck_assert_uint_gt(counts[3], 100);
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
      r = ntlm_server_challenge(&isa, NTLM_COMMUNICATOR_FLAGS, sc,
                                ntlm_filetime_from_unix_ms(n), &chal);
    if(!r && !(r = ntlm_decode(chal.data, chal.len, &cm, NULL, 0))) {
      r = ntlm_client_authenticate(&c, &cm, client_chal, 0, &auth, NULL, 0);
      ntlm_message_free(&cm);
    }
    if(!r && !(r = ntlm_decode(auth.data, auth.len, &am, NULL, 0))) {
      r = ntlm_server_verify(&am, sc, lookup, NULL, NULL, NULL, 0);
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
  ck_assert_int_eq(ntlm_server_challenge(&isa, negotiated[i].negotiate,
                                         server_chal, 0, &out),
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

  ck_assert_int_eq(ntlm_server_challenge(&isa, negotiate, server_chal,
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
  struct ntlm_client_options opt = {client_chal, 0, NULL, false, NULL};
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
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, NULL, &who, err, sizeof(err)),
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
  struct ntlm_client_options opt = {client_chal, 0, random_key, false, NULL};
  struct ntlm_message chal, m;
  struct ntlm_bytes out = {0};
  struct ntlm_identity who;
  struct store st = {0};
  uint8_t exported[16];
  size_t len;
  uint8_t *want = hex(SPEC_AUTHENTICATE_V2, &len);
  char err[256] = "";

  decode_hex(SPEC_CHALLENGE_V2, &chal);
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
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, &who, err, sizeof(err)),
      NTLM_OK);
  ck_assert(who.key_exchanged);
  ck_assert(!who.mic_checked);
  /* KEY_EXCH with a session key that is not 16 bytes is refused. */
  m.session_key_len = 15;
  ck_assert_int_eq(
      ntlm_server_verify(&m, server_chal, lookup, &st, &who, err, sizeof(err)),
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
  r = ntlm_server_verify_ex(&m, &ex, server_chal, lookup, NULL, who, err,
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
    ck_assert_int_eq(ntlm_server_challenge(&isa, 0xe2088217u, server_chal,
                                           UINT64_C(130000000000000000), &chal),
                     NTLM_OK);
    ex.challenge = chal.data;
    ex.challenge_len = chal.len;
    memset(&opt, 0, sizeof(opt));
    opt.client_challenge = client_chal;
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
    ck_assert_int_eq(ntlm_server_verify(&m, server_chal, lookup, NULL, &who,
                                        err, sizeof(err)),
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
  opt.client_challenge = client_chal;
  opt.mic = true;
  {
    struct ntlm_client_creds c = {"FABRIKAM", "alice", "Secr3t!", "WS",
                                  NTLM_RESPONSE_V2};
    struct ntlm_message cm;
    ck_assert_int_eq(
        ntlm_server_challenge(&isa, 0xe2088217u, server_chal, 0, &chal),
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

static Suite *ntlm_suite(void)
{
  Suite *s = suite_create("ntlm");
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

  tc = tcase_create("roundtrip");
  tcase_add_loop_test(tc, test_roundtrip_kind, 0,
                      (int)(sizeof(kinds) / sizeof(kinds[0])));
  tcase_add_test(tc, test_roundtrip_oem);
  tcase_add_test(tc, test_server_challenge_golden);
  tcase_add_test(tc, test_v2_server_timestamp);
  tcase_add_test(tc, test_codec_roundtrips);
  tcase_add_test(tc, test_verify_refusals);
  tcase_add_test(tc, test_names);
  suite_add_tcase(s, tc);

  tc = tcase_create("nlmp");
  tcase_add_loop_test(tc, test_flags_negotiated, 0,
                      (int)(sizeof(negotiated) / sizeof(negotiated[0])));
  tcase_add_test(tc, test_v1_asks_no_ess);
  tcase_add_test(tc, test_key_exch_vector);
  tcase_add_test(tc, test_mic);
  suite_add_tcase(s, tc);

  tc = tcase_create("malformed");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_malformed, 0,
                      (int)(sizeof(malformed) / sizeof(malformed[0])));
  tcase_add_test(tc, test_malformed_messages);
  tcase_add_test(tc, test_truncations);
  tcase_add_test(tc, test_oversized);
  tcase_add_loop_test(tc, test_bad_header, 0,
                      (int)(sizeof(bad_headers) / sizeof(bad_headers[0])));
  tcase_add_test(tc, test_mutations);
  suite_add_tcase(s, tc);

  tc = tcase_create("threads");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_threads);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return kbt_run(ntlm_suite()) ? EXIT_FAILURE : EXIT_SUCCESS;
}
