/*
 * test_ntlm_malformed.c - the NTLM library against what it must refuse
 * (test_ntlm.h): a table of malformed messages, truncations, oversized
 * messages, bad Authorization headers, and a mutation loop over valid
 * messages, each refusal naming what is wrong.
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
  uint8_t *b = nt_hex(t->base, &len);
  char err[256] = "";

  if(t->cut)
    len = t->cut;
  if(t->patch) {
    size_t plen;
    uint8_t *p = nt_hex(t->patch, &plen);
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
  uint8_t *b = nt_hex(SPEC_AUTHENTICATE_V2, &len);
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

  nt_decode_hex(SPEC_CHALLENGE_V2, &chal);
  ck_assert_int_eq(ntlm_client_authenticate(&c, &chal, nt_client_chal, 0, &out,
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
    uint8_t *b = nt_hex(bases[iter % 4], &len);
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
         ntlm_client_authenticate(&c, &m, nt_client_chal, 0, &out, NULL, 0) ==
             NTLM_OK)
        ntlm_bytes_free(&out);
      if(m.type == NTLM_TYPE_AUTHENTICATE)
        (void)ntlm_server_verify(&m, nt_server_chal, nt_lookup, NULL, NULL,
                                 NULL, 0);
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

Suite *ntlm_malformed_suite(void)
{
  Suite *s = suite_create("malformed");
  TCase *tc = tcase_create("malformed");

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
  return s;
}
