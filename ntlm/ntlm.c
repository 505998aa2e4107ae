/*
 * ntlm.c - NTLM (MS-NLMP) codec, client and server proofs, HTTP glue.
 *
 * Everything here is a pure function of its arguments: no clock, no random
 * source, no global mutable state, so any number of threads may call it at
 * once. Hashes, HMAC, DES and base64 are nettle's; this file only lays out
 * bytes, converts strings and expands DES keys from 7 to 8 bytes.
 *
 * Decoding reads a message only through ntlm__field(), which checks every
 * offset and length against the message before a byte is touched, so no
 * input can make it read outside the buffer it was given.
 */
#include "ntlm/ntlm.h"
#include "ntlm_core.h"

#include <nettle/arcfour.h>
#include <nettle/base64.h>
#include <nettle/des.h>
#include <nettle/hmac.h>
#include <nettle/md4.h>
#include <nettle/md5.h>
#include <nettle/memops.h>
#include <unicase.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Fixed header sizes (MS-NLMP 2.2.1), without the optional VERSION. */
#define NTLM__NEG_MIN 16     /* signature, type, flags: all a NEGOTIATE needs */
#define NTLM__NEG_HEADER 32  /* ... + DomainName + WorkstationName fields */
#define NTLM__CHAL_MIN 32    /* ... + TargetName, flags, ServerChallenge */
#define NTLM__CHAL_HEADER 48 /* ... + Reserved + TargetInfo fields */
#define NTLM__AUTH_HEADER 64
#define NTLM__VERSION_LEN 8
#define NTLM__MIC_LEN 16

/* AV_PAIR ids (MS-NLMP 2.2.2.1). */
enum ntlm__av_id {
  NTLM__AV_EOL = 0,
  NTLM__AV_NB_COMPUTER = 1,
  NTLM__AV_NB_DOMAIN = 2,
  NTLM__AV_DNS_COMPUTER = 3,
  NTLM__AV_DNS_DOMAIN = 4,
  NTLM__AV_FLAGS = 6,
  NTLM__AV_TIMESTAMP = 7
};

#define NTLM__AV_FLAG_MIC 0x00000002u
#define NTLM__TARGET_TYPE_SHARE 0x00040000u

/* The NTLMv2 blob ahead of the AV pairs: RespType, HiRespType, Reserved1,
 * Reserved2, TimeStamp, ChallengeFromClient, Reserved3. */
#define NTLM__V2_BLOB_HEADER 28
#define NTLM__V2_MIN_RESPONSE (16 + NTLM__V2_BLOB_HEADER)

static const uint8_t ntlm__signature[8] = {'N', 'T', 'L', 'M',
                                           'S', 'S', 'P', 0};

/* What the simulated Windows ends put in their VERSION fields: Communicator
 * ran on XP SP3 (the support case's token says 5.1.2600), ISA 2006 on
 * Server 2003 (5.2.3790). */
static const struct ntlm_version ntlm__client_version = {5, 1, 2600, 15};
static const struct ntlm_version ntlm__server_version = {5, 2, 3790, 15};

/* ---- small helpers ------------------------------------------------------ */

static void ntlm__seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes one formatted line into err when the caller gave a buffer. */
static void ntlm__seterr(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if(!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

static uint16_t ntlm__get16(const uint8_t *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t ntlm__get32(const uint8_t *p)
{
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

static uint64_t ntlm__get64(const uint8_t *p)
{
  return (uint64_t)ntlm__get32(p) | ((uint64_t)ntlm__get32(p + 4) << 32);
}

static void ntlm__put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void ntlm__put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void ntlm__put64(uint8_t *p, uint64_t v)
{
  ntlm__put32(p, (uint32_t)v);
  ntlm__put32(p + 4, (uint32_t)(v >> 32));
}

/* Zeroes and frees a byte string that may have held key material. */
static void ntlm__wipe_free(struct ntlm_bytes *b)
{
  if(b->data) {
    explicit_bzero(b->data, b->len);
    free(b->data);
  }
  b->data = NULL;
  b->len = 0;
}

void ntlm_bytes_free(struct ntlm_bytes *b)
{
  if(!b)
    return;
  free(b->data);
  b->data = NULL;
  b->len = 0;
}

const char *ntlm_strerror(enum ntlm_result r)
{
  switch(r) {
  case NTLM_OK:
    return "no error";
  case NTLM_ERR_ARG:
    return "invalid argument";
  case NTLM_ERR_NOMEM:
    return "out of memory";
  case NTLM_ERR_BASE64:
    return "token is not valid base64";
  case NTLM_ERR_TRUNCATED:
    return "message truncated";
  case NTLM_ERR_SIGNATURE:
    return "not an NTLMSSP message";
  case NTLM_ERR_TYPE:
    return "unexpected message type";
  case NTLM_ERR_BOUNDS:
    return "field outside the message";
  case NTLM_ERR_TOO_BIG:
    return "message too big";
  case NTLM_ERR_ENCODING:
    return "bad string encoding";
  case NTLM_ERR_HEADER:
    return "not an NTLM or Negotiate header";
  case NTLM_ERR_UNKNOWN_USER:
    return "unknown user";
  case NTLM_ERR_BAD_PROOF:
    return "response does not prove the password";
  }
  return "unknown error";
}

const char *ntlm_response_kind_name(enum ntlm_response_kind kind)
{
  switch(kind) {
  case NTLM_RESPONSE_V2:
    return "NTLMv2";
  case NTLM_RESPONSE_V1:
    return "NTLMv1";
  case NTLM_RESPONSE_V1_ESS:
    return "NTLMv1-ESS";
  }
  return "unknown";
}

uint64_t ntlm_filetime_from_unix_ms(int64_t ms)
{
  /* 11644473600 s separate 1601-01-01 from 1970-01-01; FILETIME counts
   * 100 ns ticks. Times before 1601 clamp to 0 rather than wrap. */
  const int64_t epoch_ms = INT64_C(11644473600000);

  if(ms <= -epoch_ms)
    return 0;
  return ((uint64_t)ms + (uint64_t)epoch_ms) * 10000u;
}

/* ---- strings -------------------------------------------------------------
 *
 * Callers pass UTF-8. The wire carries UTF-16LE, or "OEM" bytes when
 * UNICODE was not negotiated; this code takes the OEM code page to be
 * Latin-1, which is exact for ASCII (all the simulation uses) and never
 * fails to decode.
 */

/* Decodes the next code point of s[*i..n) and advances *i. Returns the code
 * point, or -1 for anything that is not well-formed UTF-8 (overlong forms,
 * surrogates and values past U+10FFFF included). */
static int32_t ntlm__utf8_next(const uint8_t *s, size_t n, size_t *i)
{
  uint32_t c = s[*i];
  uint32_t cp;
  size_t need;
  size_t k;

  if(c < 0x80) {
    (*i)++;
    return (int32_t)c;
  }
  if(c >= 0xc2 && c <= 0xdf) {
    need = 1;
    cp = c & 0x1f;
  }
  else if(c >= 0xe0 && c <= 0xef) {
    need = 2;
    cp = c & 0x0f;
  }
  else if(c >= 0xf0 && c <= 0xf4) {
    need = 3;
    cp = c & 0x07;
  }
  else
    return -1;
  if(n - *i <= need)
    return -1;
  for(k = 1; k <= need; k++) {
    uint8_t cc = s[*i + k];
    if((cc & 0xc0) != 0x80)
      return -1;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
     cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return -1;
  *i += need + 1;
  return (int32_t)cp;
}

/* Returns the upper case of a code point as Windows' upcase table does: the
 * simple (one to one) Unicode mapping, which libunistring's uc_toupper
 * gives for every script (so 'ß' stays 'ß' and 'ÿ' becomes 'Ÿ'). */
static uint32_t ntlm__upper(uint32_t cp)
{
  return uc_toupper(cp);
}

/* Converts the UTF-8 string s to UTF-16LE, upper-cased when upper is set.
 * On NTLM_OK out->data is malloc'd (never NULL, even for "") and the caller
 * frees it; NTLM_ERR_ENCODING for invalid UTF-8, NTLM_ERR_TOO_BIG for a
 * string longer than any message could carry. */
static enum ntlm_result ntlm__to_utf16(const char *s, bool upper,
                                       struct ntlm_bytes *out)
{
  const uint8_t *u = (const uint8_t *)s;
  size_t n = strlen(s);
  size_t i = 0;
  size_t o = 0;
  uint8_t *buf;

  out->data = NULL;
  out->len = 0;
  if(n > NTLM_MAX_MESSAGE)
    return NTLM_ERR_TOO_BIG;
  /* Every UTF-8 sequence yields at most as many UTF-16 bytes as twice its
   * own length, so 2n bytes always suffice. */
  buf = malloc(2 * n + 2);
  if(!buf)
    return NTLM_ERR_NOMEM;
  while(i < n) {
    int32_t cp = ntlm__utf8_next(u, n, &i);
    if(cp < 0) {
      free(buf);
      return NTLM_ERR_ENCODING;
    }
    if(upper)
      cp = (int32_t)ntlm__upper((uint32_t)cp);
    if(cp >= 0x10000) {
      uint32_t v = (uint32_t)cp - 0x10000;
      ntlm__put16(buf + o, (uint16_t)(0xd800 | (v >> 10)));
      ntlm__put16(buf + o + 2, (uint16_t)(0xdc00 | (v & 0x3ff)));
      o += 4;
    }
    else {
      ntlm__put16(buf + o, (uint16_t)cp);
      o += 2;
    }
  }
  out->data = buf;
  out->len = o;
  return NTLM_OK;
}

/* Converts the UTF-8 string s to OEM (Latin-1) bytes, upper-cased when
 * upper is set. A character Latin-1 cannot carry is NTLM_ERR_ENCODING, or
 * '?' when lossy is set (Windows' best-fit does no better for LM hashes).
 * On NTLM_OK out->data is malloc'd (never NULL) and the caller frees it. */
static enum ntlm_result ntlm__to_oem(const char *s, bool upper, bool lossy,
                                     struct ntlm_bytes *out)
{
  const uint8_t *u = (const uint8_t *)s;
  size_t n = strlen(s);
  size_t i = 0;
  size_t o = 0;
  uint8_t *buf;

  out->data = NULL;
  out->len = 0;
  if(n > NTLM_MAX_MESSAGE)
    return NTLM_ERR_TOO_BIG;
  buf = malloc(n + 1);
  if(!buf)
    return NTLM_ERR_NOMEM;
  while(i < n) {
    int32_t cp = ntlm__utf8_next(u, n, &i);
    if(cp >= 0 && upper)
      cp = (int32_t)ntlm__upper((uint32_t)cp);
    if(cp < 0 || (cp > 0xff && !lossy)) {
      free(buf);
      return NTLM_ERR_ENCODING;
    }
    buf[o++] = (uint8_t)(cp > 0xff ? '?' : cp);
  }
  out->data = buf;
  out->len = o;
  return NTLM_OK;
}

/* Converts len bytes of UTF-16LE from a message to a malloc'd UTF-8 string
 * in *out (caller frees). Returns NTLM_ERR_ENCODING for an odd length, an
 * unpaired surrogate or an embedded NUL (which would silently shorten the
 * name everyone else sees), with the reason in why. */
static enum ntlm_result ntlm__from_utf16(const uint8_t *p, size_t len,
                                         char **out, const char **why)
{
  size_t i;
  size_t o = 0;
  char *s;

  *out = NULL;
  if(len % 2) {
    *why = "has an odd number of bytes for UTF-16";
    return NTLM_ERR_ENCODING;
  }
  /* A UTF-16 unit becomes at most 3 UTF-8 bytes; a surrogate pair (two
   * units) becomes 4. */
  s = malloc(len / 2 * 3 + 1);
  if(!s)
    return NTLM_ERR_NOMEM;
  for(i = 0; i < len; i += 2) {
    uint32_t cp = ntlm__get16(p + i);
    if(cp == 0) {
      *why = "contains a NUL character";
      goto bad;
    }
    if(cp >= 0xdc00 && cp <= 0xdfff) {
      *why = "contains an unpaired UTF-16 surrogate";
      goto bad;
    }
    if(cp >= 0xd800 && cp <= 0xdbff) {
      uint32_t lo;
      if(len - i < 4) {
        *why = "contains an unpaired UTF-16 surrogate";
        goto bad;
      }
      lo = ntlm__get16(p + i + 2);
      if(lo < 0xdc00 || lo > 0xdfff) {
        *why = "contains an unpaired UTF-16 surrogate";
        goto bad;
      }
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      i += 2;
    }
    if(cp < 0x80)
      s[o++] = (char)cp;
    else if(cp < 0x800) {
      s[o++] = (char)(0xc0 | (cp >> 6));
      s[o++] = (char)(0x80 | (cp & 0x3f));
    }
    else if(cp < 0x10000) {
      s[o++] = (char)(0xe0 | (cp >> 12));
      s[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      s[o++] = (char)(0x80 | (cp & 0x3f));
    }
    else {
      s[o++] = (char)(0xf0 | (cp >> 18));
      s[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
      s[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      s[o++] = (char)(0x80 | (cp & 0x3f));
    }
  }
  s[o] = '\0';
  *out = s;
  return NTLM_OK;
bad:
  free(s);
  return NTLM_ERR_ENCODING;
}

/* Converts len OEM (Latin-1) bytes to a malloc'd UTF-8 string in *out
 * (caller frees). Only an embedded NUL is refused, as NTLM_ERR_ENCODING. */
static enum ntlm_result ntlm__from_oem(const uint8_t *p, size_t len, char **out,
                                       const char **why)
{
  size_t i;
  size_t o = 0;
  char *s;

  *out = NULL;
  s = malloc(2 * len + 1);
  if(!s)
    return NTLM_ERR_NOMEM;
  for(i = 0; i < len; i++) {
    if(!p[i]) {
      free(s);
      *why = "contains a NUL character";
      return NTLM_ERR_ENCODING;
    }
    if(p[i] < 0x80)
      s[o++] = (char)p[i];
    else {
      s[o++] = (char)(0xc0 | (p[i] >> 6));
      s[o++] = (char)(0x80 | (p[i] & 0x3f));
    }
  }
  s[o] = '\0';
  *out = s;
  return NTLM_OK;
}

/* ---- crypto primitives (nettle) ----------------------------------------- */

/* Encrypts one 8-byte block with DES under a 56-bit key given as 7 bytes,
 * spread over DES's 8 key bytes 7 bits at a time (MS-NLMP 6, "DES"). The
 * low bit of each key byte is parity, which nettle ignores. This function
 * can't fail. */
static void ntlm__des7(const uint8_t key7[7], const uint8_t in[8],
                       uint8_t out[8])
{
  uint8_t key[DES_KEY_SIZE];
  struct des_ctx ctx;

  key[0] = key7[0];
  key[1] = (uint8_t)((key7[0] << 7) | (key7[1] >> 1));
  key[2] = (uint8_t)((key7[1] << 6) | (key7[2] >> 2));
  key[3] = (uint8_t)((key7[2] << 5) | (key7[3] >> 3));
  key[4] = (uint8_t)((key7[3] << 4) | (key7[4] >> 4));
  key[5] = (uint8_t)((key7[4] << 3) | (key7[5] >> 5));
  key[6] = (uint8_t)((key7[5] << 2) | (key7[6] >> 6));
  key[7] = (uint8_t)(key7[6] << 1);
  /* des_set_key returns 0 for DES's weak keys but schedules them anyway.
   * NTLM must encrypt under whatever the password gives (the LM key of an
   * empty password is weak), so the verdict is deliberately ignored. */
  (void)des_set_key(&ctx, key);
  des_encrypt(&ctx, DES_BLOCK_SIZE, out, in);
  explicit_bzero(&ctx, sizeof(ctx));
  explicit_bzero(key, sizeof(key));
}

void ntlm_desl(const uint8_t key[16], const uint8_t data[8], uint8_t out[24])
{
  uint8_t k3[7] = {0};

  if(!key || !data || !out)
    return;
  k3[0] = key[14];
  k3[1] = key[15];
  ntlm__des7(key, data, out);
  ntlm__des7(key + 7, data, out + 8);
  ntlm__des7(k3, data, out + 16);
  explicit_bzero(k3, sizeof(k3));
}

enum ntlm_result ntlm_nt_hash(const char *password, uint8_t out[16])
{
  struct ntlm_bytes u = {0};
  struct md4_ctx md4;
  enum ntlm_result result;

  if(!password || !out)
    return NTLM_ERR_ARG;
  result = ntlm__to_utf16(password, false, &u);
  if(!result) {
    md4_init(&md4);
    md4_update(&md4, u.len, u.data);
    md4_digest(&md4, MD4_DIGEST_SIZE, out);
    explicit_bzero(&md4, sizeof(md4));
  }
  ntlm__wipe_free(&u);
  return result;
}

enum ntlm_result ntlm_lm_hash(const char *password, uint8_t out[16])
{
  static const uint8_t magic[8] = {'K', 'G', 'S', '!', '@', '#', '$', '%'};
  struct ntlm_bytes oem = {0};
  uint8_t key[14] = {0};
  enum ntlm_result result;

  if(!password || !out)
    return NTLM_ERR_ARG;
  result = ntlm__to_oem(password, true, true, &oem);
  if(!result) {
    /* LM keeps only the first 14 characters, zero-padded. */
    memcpy(key, oem.data, oem.len < sizeof(key) ? oem.len : sizeof(key));
    ntlm__des7(key, magic, out);
    ntlm__des7(key + 7, magic, out + 8);
  }
  explicit_bzero(key, sizeof(key));
  ntlm__wipe_free(&oem);
  return result;
}

enum ntlm_result ntlm_ntowf_v2(const char *password, const char *user,
                               const char *domain, uint8_t out[16])
{
  struct ntlm_bytes u = {0};
  struct ntlm_bytes d = {0};
  struct hmac_md5_ctx hmac;
  uint8_t nt[16];
  enum ntlm_result result;

  if(!password || !user || !out)
    return NTLM_ERR_ARG;
  result = ntlm_nt_hash(password, nt);
  if(!result)
    result = ntlm__to_utf16(user, true, &u);
  if(!result)
    result = ntlm__to_utf16(domain ? domain : "", false, &d);
  if(!result) {
    hmac_md5_set_key(&hmac, sizeof(nt), nt);
    hmac_md5_update(&hmac, u.len, u.data);
    hmac_md5_update(&hmac, d.len, d.data);
    hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, out);
    explicit_bzero(&hmac, sizeof(hmac));
  }
  explicit_bzero(nt, sizeof(nt));
  ntlm__wipe_free(&u);
  ntlm__wipe_free(&d);
  return result;
}

void ntlm_v1_session_base_key(const uint8_t nt_hash[16], uint8_t out[16])
{
  struct md4_ctx md4;

  if(!nt_hash || !out)
    return;
  md4_init(&md4);
  md4_update(&md4, 16, nt_hash);
  md4_digest(&md4, MD4_DIGEST_SIZE, out);
  explicit_bzero(&md4, sizeof(md4));
}

/* Returns HMAC_MD5(key, a || b) in out[16]. This function can't fail. */
static void ntlm__hmac2(const uint8_t key[16], const uint8_t *a, size_t alen,
                        const uint8_t *b, size_t blen, uint8_t out[16])
{
  struct hmac_md5_ctx hmac;

  hmac_md5_set_key(&hmac, 16, key);
  hmac_md5_update(&hmac, alen, a);
  hmac_md5_update(&hmac, blen, b);
  hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, out);
  explicit_bzero(&hmac, sizeof(hmac));
}

enum ntlm_result
ntlm_v2_responses(const uint8_t ntowf_v2[16], const uint8_t server_challenge[8],
                  const uint8_t client_challenge[8], uint64_t timestamp,
                  const uint8_t *target_info, size_t target_info_len,
                  struct ntlm_bytes *nt_out, uint8_t lm_out[24],
                  uint8_t session_base_key[16])
{
  uint8_t *nt;
  uint8_t *temp;
  size_t temp_len;

  if(!ntowf_v2 || !server_challenge || !client_challenge || !nt_out ||
     !lm_out || (!target_info && target_info_len))
    return NTLM_ERR_ARG;
  nt_out->data = NULL;
  nt_out->len = 0;
  if(target_info_len > NTLM_MAX_MESSAGE)
    return NTLM_ERR_TOO_BIG;

  temp_len = NTLM__V2_BLOB_HEADER + target_info_len + 4;
  nt = calloc(1, 16 + temp_len);
  if(!nt)
    return NTLM_ERR_NOMEM;
  temp = nt + 16;
  temp[0] = 1; /* RespType */
  temp[1] = 1; /* HiRespType */
  ntlm__put64(temp + 8, timestamp);
  memcpy(temp + 16, client_challenge, 8);
  if(target_info_len)
    memcpy(temp + NTLM__V2_BLOB_HEADER, target_info, target_info_len);

  /* NTProofStr = HMAC_MD5(NTOWFv2, ServerChallenge || temp). */
  ntlm__hmac2(ntowf_v2, server_challenge, 8, temp, temp_len, nt);
  /* LMv2 = HMAC_MD5(NTOWFv2, ServerChallenge || ClientChallenge) ||
   * ClientChallenge. */
  ntlm__hmac2(ntowf_v2, server_challenge, 8, client_challenge, 8, lm_out);
  memcpy(lm_out + 16, client_challenge, 8);
  if(session_base_key) {
    struct hmac_md5_ctx hmac;
    hmac_md5_set_key(&hmac, 16, ntowf_v2);
    hmac_md5_update(&hmac, 16, nt);
    hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, session_base_key);
    explicit_bzero(&hmac, sizeof(hmac));
  }
  nt_out->data = nt;
  nt_out->len = 16 + temp_len;
  return NTLM_OK;
}

/* Computes the NTLMv1-with-client-challenge NT response (MS-NLMP 3.3.1):
 * DESL(NTOWFv1, MD5(ServerChallenge || ClientChallenge)[0..7]). This
 * function can't fail. */
static void ntlm__v1_ess_response(const uint8_t nt_hash[16],
                                  const uint8_t server_challenge[8],
                                  const uint8_t client_challenge[8],
                                  uint8_t out[24])
{
  struct md5_ctx md5;
  uint8_t digest[MD5_DIGEST_SIZE];

  md5_init(&md5);
  md5_update(&md5, 8, server_challenge);
  md5_update(&md5, 8, client_challenge);
  md5_digest(&md5, sizeof(digest), digest);
  ntlm_desl(nt_hash, digest, out);
}

/* ---- AV pairs ------------------------------------------------------------ */

/* Finds AV pair id in the list ti[0..len). Returns true with *val and *vlen set
 * when found before MsvAvEOL; false when absent or when the list is
 * malformed (a pair running past the end). */
static bool ntlm__av_find(const uint8_t *ti, size_t len, uint16_t id,
                          const uint8_t **val, size_t *vlen)
{
  size_t pos = 0;

  while(ti && len - pos >= 4) {
    uint16_t aid = ntlm__get16(ti + pos);
    size_t alen = ntlm__get16(ti + pos + 2);
    if(aid == NTLM__AV_EOL || len - pos - 4 < alen)
      return false;
    if(aid == id) {
      *val = ti + pos + 4;
      *vlen = alen;
      return true;
    }
    pos += 4 + alen;
  }
  return false;
}

/* Checks that ti[0..len) is a well-formed AV pair list: every pair fits
 * inside it. Returns the offset of a pair that does not fit, or len when
 * all do (a missing MsvAvEOL is tolerated, as Windows does). */
static size_t ntlm__av_bad_at(const uint8_t *ti, size_t len)
{
  size_t pos = 0;

  while(len - pos >= 4) {
    uint16_t aid = ntlm__get16(ti + pos);
    size_t alen = ntlm__get16(ti + pos + 2);
    if(len - pos - 4 < alen)
      return pos;
    if(aid == NTLM__AV_EOL)
      return len;
    pos += 4 + alen;
  }
  return pos == len ? len : pos;
}

/* An AV list being built, bounded like everything else by the largest
 * message. */
struct ntlm__avbuf {
  uint8_t data[NTLM_MAX_MESSAGE];
  size_t len;
};

/* Appends one AV pair. NTLM_ERR_TOO_BIG when it does not fit. */
static enum ntlm_result ntlm__av_put(struct ntlm__avbuf *b, uint16_t id,
                                     const uint8_t *val, size_t vlen)
{
  if(vlen > 0xffff || sizeof(b->data) - b->len < 4 + vlen)
    return NTLM_ERR_TOO_BIG;
  ntlm__put16(b->data + b->len, id);
  ntlm__put16(b->data + b->len + 2, (uint16_t)vlen);
  if(vlen)
    memcpy(b->data + b->len + 4, val, vlen);
  b->len += 4 + vlen;
  return NTLM_OK;
}

/* Appends an AV pair holding the UTF-8 string s as UTF-16LE (AV values are
 * always Unicode, whatever was negotiated). Skips NULL and "". */
static enum ntlm_result ntlm__av_put_str(struct ntlm__avbuf *b, uint16_t id,
                                         const char *s)
{
  struct ntlm_bytes u = {0};
  enum ntlm_result result;

  if(!s || !*s)
    return NTLM_OK;
  result = ntlm__to_utf16(s, false, &u);
  if(!result)
    result = ntlm__av_put(b, id, u.data, u.len);
  ntlm_bytes_free(&u);
  return result;
}

/* ---- decoding ------------------------------------------------------------ */

/* A message being decoded. */
struct ntlm__reader {
  const uint8_t *msg;
  size_t len;
  unsigned type;
  size_t header; /* fixed header size: payload may not start before it */
  size_t lowest; /* lowest offset of a non-empty payload field so far */
  char *err;
  size_t errlen;
};

/* Reads the security buffer (Len, MaxLen, Offset) at header position pos
 * and checks it: a non-empty field must lie inside the message and after
 * the fixed header. Returns NTLM_OK with *off and *flen set (both 0 for an
 * empty field, whose offset is ignored), else NTLM_ERR_BOUNDS naming the
 * field. The caller has checked that pos + 8 is inside the message. */
static enum ntlm_result ntlm__field(struct ntlm__reader *r, size_t pos,
                                    const char *name, size_t *off, size_t *flen)
{
  uint16_t l = ntlm__get16(r->msg + pos);
  uint32_t o = ntlm__get32(r->msg + pos + 4);

  *off = 0;
  *flen = 0;
  if(!l)
    return NTLM_OK;
  if((uint64_t)o + l > r->len) {
    ntlm__seterr(r->err, r->errlen,
                 "NTLM type %u: %s offset %lu + length %u is past the end "
                 "of the %zu-byte message",
                 r->type, name, (unsigned long)o, (unsigned)l, r->len);
    return NTLM_ERR_BOUNDS;
  }
  if(o < r->header) {
    ntlm__seterr(r->err, r->errlen,
                 "NTLM type %u: %s offset %lu points into the %zu-byte "
                 "header",
                 r->type, name, (unsigned long)o, r->header);
    return NTLM_ERR_BOUNDS;
  }
  if(o < r->lowest)
    r->lowest = o;
  *off = o;
  *flen = l;
  return NTLM_OK;
}

/* Copies a checked field into a malloc'd buffer (*out NULL for an empty
 * field). The message owns the copy. */
static enum ntlm_result ntlm__copy_field(const struct ntlm__reader *r,
                                         size_t off, size_t flen, uint8_t **out,
                                         size_t *outlen)
{
  *out = NULL;
  *outlen = 0;
  if(!flen)
    return NTLM_OK;
  *out = malloc(flen);
  if(!*out)
    return NTLM_ERR_NOMEM;
  memcpy(*out, r->msg + off, flen);
  *outlen = flen;
  return NTLM_OK;
}

/* Converts a checked string field to UTF-8 (*out NULL for an empty field).
 * NTLM_ERR_ENCODING names the field. */
static enum ntlm_result ntlm__string_field(const struct ntlm__reader *r,
                                           const char *name, size_t off,
                                           size_t flen, bool unicode,
                                           char **out)
{
  const char *why = "";
  enum ntlm_result result;

  *out = NULL;
  if(!flen)
    return NTLM_OK;
  if(unicode)
    result = ntlm__from_utf16(r->msg + off, flen, out, &why);
  else
    result = ntlm__from_oem(r->msg + off, flen, out, &why);
  if(result == NTLM_ERR_ENCODING)
    ntlm__seterr(r->err, r->errlen, "NTLM type %u: %s (%zu bytes) %s", r->type,
                 name, flen, why);
  return result;
}

/* Reads the 8-byte VERSION at pos. */
static void ntlm__get_version(const uint8_t *p, struct ntlm_version *v)
{
  v->major = p[0];
  v->minor = p[1];
  v->build = ntlm__get16(p + 2);
  v->revision = p[7];
}

static void ntlm__put_version(uint8_t *p, const struct ntlm_version *v)
{
  p[0] = v->major;
  p[1] = v->minor;
  ntlm__put16(p + 2, v->build);
  p[4] = p[5] = p[6] = 0;
  p[7] = v->revision;
}

/* Says whether the optional VERSION (and after it, in an AUTHENTICATE, the
 * MIC) fits between the fixed header and the first payload byte. */
static bool ntlm__room_for(const struct ntlm__reader *r, size_t end)
{
  return r->len >= end && r->lowest >= end;
}

/* Decodes a NEGOTIATE (MS-NLMP 2.2.1.1) into m. */
static enum ntlm_result ntlm__decode_negotiate(struct ntlm__reader *r,
                                               struct ntlm_message *m)
{
  size_t doff = 0, dlen = 0, woff = 0, wlen = 0;
  enum ntlm_result result = NTLM_OK;

  if(r->len < NTLM__NEG_MIN) {
    ntlm__seterr(r->err, r->errlen,
                 "NTLM type 1: message of %zu bytes is shorter than the "
                 "%d-byte header",
                 r->len, NTLM__NEG_MIN);
    return NTLM_ERR_TRUNCATED;
  }
  m->flags = ntlm__get32(r->msg + 12);
  /* The oldest clients sent only signature, type and flags; the domain and
   * workstation fields exist when the message is long enough to hold
   * them. */
  if(r->len >= NTLM__NEG_HEADER) {
    r->header = NTLM__NEG_HEADER;
    result = ntlm__field(r, 16, "DomainName", &doff, &dlen);
    if(!result)
      result = ntlm__field(r, 24, "WorkstationName", &woff, &wlen);
    if(!result)
      result =
          ntlm__string_field(r, "DomainName", doff, dlen, false, &m->domain);
    if(!result)
      result = ntlm__string_field(r, "WorkstationName", woff, wlen, false,
                                  &m->workstation);
    if(!result && (m->flags & NTLM_NEGOTIATE_VERSION) &&
       ntlm__room_for(r, NTLM__NEG_HEADER + NTLM__VERSION_LEN)) {
      m->has_version = true;
      ntlm__get_version(r->msg + NTLM__NEG_HEADER, &m->version);
    }
  }
  return result;
}

/* Decodes a CHALLENGE (MS-NLMP 2.2.1.2) into m. */
static enum ntlm_result ntlm__decode_challenge(struct ntlm__reader *r,
                                               struct ntlm_message *m)
{
  size_t toff = 0, tlen = 0, ioff = 0, ilen = 0;
  enum ntlm_result result;

  if(r->len < NTLM__CHAL_MIN) {
    ntlm__seterr(r->err, r->errlen,
                 "NTLM type 2: message of %zu bytes is shorter than the "
                 "%d-byte header",
                 r->len, NTLM__CHAL_MIN);
    return NTLM_ERR_TRUNCATED;
  }
  m->flags = ntlm__get32(r->msg + 20);
  memcpy(m->server_challenge, r->msg + 24, 8);
  /* Servers before Windows 2000 stopped after the challenge (or after the
   * 8 reserved bytes); TargetInfo exists when there is room for it. */
  r->header = r->len >= NTLM__CHAL_HEADER ? NTLM__CHAL_HEADER : NTLM__CHAL_MIN;
  result = ntlm__field(r, 12, "TargetName", &toff, &tlen);
  if(!result && r->len >= NTLM__CHAL_HEADER)
    result = ntlm__field(r, 40, "TargetInfo", &ioff, &ilen);
  if(!result)
    result =
        ntlm__string_field(r, "TargetName", toff, tlen,
                           m->flags & NTLM_NEGOTIATE_UNICODE, &m->target_name);
  if(!result && ilen) {
    size_t bad = ntlm__av_bad_at(r->msg + ioff, ilen);
    if(bad != ilen) {
      ntlm__seterr(r->err, r->errlen,
                   "NTLM type 2: TargetInfo AV pair at byte %zu runs past "
                   "the end of the %zu-byte field",
                   bad, ilen);
      result = NTLM_ERR_BOUNDS;
    }
  }
  if(!result)
    result =
        ntlm__copy_field(r, ioff, ilen, &m->target_info, &m->target_info_len);
  if(!result && r->len >= NTLM__CHAL_HEADER &&
     (m->flags & NTLM_NEGOTIATE_VERSION) &&
     ntlm__room_for(r, NTLM__CHAL_HEADER + NTLM__VERSION_LEN)) {
    m->has_version = true;
    ntlm__get_version(r->msg + NTLM__CHAL_HEADER, &m->version);
  }
  return result;
}

/* Says whether an NTLMv2 response announces a MIC: its AV pairs carry
 * MsvAvFlags with bit 0x2 (MS-NLMP 2.2.2.1). */
static bool ntlm__v2_announces_mic(const uint8_t *nt, size_t len)
{
  const uint8_t *val;
  size_t vlen;

  if(len < NTLM__V2_MIN_RESPONSE)
    return false;
  if(!ntlm__av_find(nt + NTLM__V2_MIN_RESPONSE, len - NTLM__V2_MIN_RESPONSE,
                    NTLM__AV_FLAGS, &val, &vlen) ||
     vlen != 4)
    return false;
  return (ntlm__get32(val) & NTLM__AV_FLAG_MIC) != 0;
}

/* Decodes an AUTHENTICATE (MS-NLMP 2.2.1.3) into m. */
static enum ntlm_result ntlm__decode_authenticate(struct ntlm__reader *r,
                                                  struct ntlm_message *m)
{
  size_t loff = 0, llen = 0, noff = 0, nlen = 0, doff = 0, dlen = 0;
  size_t uoff = 0, ulen = 0, woff = 0, wlen = 0, koff = 0, klen = 0;
  bool unicode;
  enum ntlm_result result;

  if(r->len < NTLM__AUTH_HEADER) {
    ntlm__seterr(r->err, r->errlen,
                 "NTLM type 3: message of %zu bytes is shorter than the "
                 "%d-byte header",
                 r->len, NTLM__AUTH_HEADER);
    return NTLM_ERR_TRUNCATED;
  }
  r->header = NTLM__AUTH_HEADER;
  m->flags = ntlm__get32(r->msg + 60);
  unicode = (m->flags & NTLM_NEGOTIATE_UNICODE) != 0;
  result = ntlm__field(r, 12, "LmChallengeResponse", &loff, &llen);
  if(!result)
    result = ntlm__field(r, 20, "NtChallengeResponse", &noff, &nlen);
  if(!result)
    result = ntlm__field(r, 28, "DomainName", &doff, &dlen);
  if(!result)
    result = ntlm__field(r, 36, "UserName", &uoff, &ulen);
  if(!result)
    result = ntlm__field(r, 44, "Workstation", &woff, &wlen);
  if(!result)
    result = ntlm__field(r, 52, "EncryptedRandomSessionKey", &koff, &klen);
  if(!result)
    result =
        ntlm__string_field(r, "DomainName", doff, dlen, unicode, &m->domain);
  if(!result)
    result = ntlm__string_field(r, "UserName", uoff, ulen, unicode, &m->user);
  if(!result)
    result = ntlm__string_field(r, "Workstation", woff, wlen, unicode,
                                &m->workstation);
  if(!result)
    result =
        ntlm__copy_field(r, loff, llen, &m->lm_response, &m->lm_response_len);
  if(!result)
    result =
        ntlm__copy_field(r, noff, nlen, &m->nt_response, &m->nt_response_len);
  if(!result)
    result =
        ntlm__copy_field(r, koff, klen, &m->session_key, &m->session_key_len);
  if(result)
    return result;

  if((m->flags & NTLM_NEGOTIATE_VERSION) &&
     ntlm__room_for(r, NTLM__AUTH_HEADER + NTLM__VERSION_LEN)) {
    m->has_version = true;
    ntlm__get_version(r->msg + NTLM__AUTH_HEADER, &m->version);
  }
  /* Only the NTLMv2 response says whether the 16 bytes after the VERSION
   * are a MIC or already payload; clients send the VERSION slot (zeroed
   * or not) whenever they send a MIC. */
  if(ntlm__v2_announces_mic(m->nt_response, m->nt_response_len) &&
     ntlm__room_for(r, NTLM__AUTH_HEADER + NTLM__VERSION_LEN + NTLM__MIC_LEN)) {
    m->has_mic = true;
    memcpy(m->mic, r->msg + NTLM__AUTH_HEADER + NTLM__VERSION_LEN,
           NTLM__MIC_LEN);
  }
  return NTLM_OK;
}

enum ntlm_result ntlm_decode(const uint8_t *msg, size_t len,
                             struct ntlm_message *out, char *err, size_t errlen)
{
  struct ntlm__reader r;
  enum ntlm_result result;
  size_t cmp;

  if(!out) {
    ntlm__seterr(err, errlen, "NTLM: ntlm_decode needs a message to fill");
    return NTLM_ERR_ARG;
  }
  memset(out, 0, sizeof(*out));
  if(!msg && len) {
    ntlm__seterr(err, errlen, "NTLM: ntlm_decode got NULL for %zu bytes", len);
    return NTLM_ERR_ARG;
  }
  if(len > NTLM_MAX_MESSAGE) {
    ntlm__seterr(err, errlen,
                 "NTLM: message of %zu bytes is larger than the %d-byte "
                 "limit",
                 len, NTLM_MAX_MESSAGE);
    return NTLM_ERR_TOO_BIG;
  }
  /* A prefix of the signature is a truncated message; anything else that
   * does not start with it is not NTLMSSP at all. */
  cmp = len < sizeof(ntlm__signature) ? len : sizeof(ntlm__signature);
  if(memcmp(msg ? msg : ntlm__signature, ntlm__signature, cmp)) {
    ntlm__seterr(err, errlen,
                 "NTLM: message does not start with the \"NTLMSSP\" "
                 "signature");
    return NTLM_ERR_SIGNATURE;
  }
  if(len < 12) {
    ntlm__seterr(err, errlen,
                 "NTLM: message of %zu bytes is shorter than the 12-byte "
                 "signature and type",
                 len);
    return NTLM_ERR_TRUNCATED;
  }

  memset(&r, 0, sizeof(r));
  r.msg = msg;
  r.len = len;
  r.type = ntlm__get32(msg + 8);
  r.lowest = len;
  r.err = err;
  r.errlen = errlen;
  switch(r.type) {
  case NTLM_TYPE_NEGOTIATE:
    out->type = NTLM_TYPE_NEGOTIATE;
    result = ntlm__decode_negotiate(&r, out);
    break;
  case NTLM_TYPE_CHALLENGE:
    out->type = NTLM_TYPE_CHALLENGE;
    result = ntlm__decode_challenge(&r, out);
    break;
  case NTLM_TYPE_AUTHENTICATE:
    out->type = NTLM_TYPE_AUTHENTICATE;
    result = ntlm__decode_authenticate(&r, out);
    break;
  default:
    ntlm__seterr(err, errlen,
                 "NTLM: message type %u is not 1 (NEGOTIATE), 2 (CHALLENGE) "
                 "or 3 (AUTHENTICATE)",
                 r.type);
    result = NTLM_ERR_TYPE;
    break;
  }
  if(result == NTLM_ERR_NOMEM)
    ntlm__seterr(err, errlen,
                 "NTLM: out of memory decoding a %zu-byte "
                 "message",
                 len);
  if(result)
    ntlm_message_free(out);
  return result;
}

void ntlm_message_free(struct ntlm_message *msg)
{
  if(!msg)
    return;
  free(msg->domain);
  free(msg->user);
  free(msg->workstation);
  free(msg->target_name);
  free(msg->target_info);
  free(msg->lm_response);
  free(msg->nt_response);
  free(msg->session_key);
  memset(msg, 0, sizeof(*msg));
}

enum ntlm_type ntlm_peek_type(const uint8_t *msg, size_t len)
{
  uint32_t type;

  if(!msg || len < 12 || memcmp(msg, ntlm__signature, 8))
    return NTLM_TYPE_NONE;
  type = ntlm__get32(msg + 8);
  if(type == NTLM_TYPE_NEGOTIATE || type == NTLM_TYPE_CHALLENGE ||
     type == NTLM_TYPE_AUTHENTICATE)
    return (enum ntlm_type)type;
  return NTLM_TYPE_NONE;
}

/* ---- encoding ------------------------------------------------------------ */

/* One payload field to lay out: where its security buffer sits in the
 * header, and its bytes. */
struct ntlm__out_field {
  size_t pos;
  const uint8_t *data;
  size_t len;
  const char *name;
};

/* Allocates a message of header bytes plus the fields' payloads, writes the
 * signature, type and each field's security buffer, and copies the
 * payloads in the order given. Empty fields get offset 0 when
 * zero_empty_offsets is set, else the offset where they would have been.
 * On NTLM_OK *out is the caller's; the caller fills in the rest of the
 * header. */
static enum ntlm_result ntlm__layout(enum ntlm_type type, size_t header,
                                     const struct ntlm__out_field *f, size_t n,
                                     bool zero_empty_offsets,
                                     struct ntlm_bytes *out, char *err,
                                     size_t errlen)
{
  size_t total = header;
  size_t cur = header;
  size_t i;
  uint8_t *buf;

  for(i = 0; i < n; i++) {
    if(f[i].len > 0xffff || f[i].len > NTLM_MAX_MESSAGE) {
      ntlm__seterr(err, errlen,
                   "NTLM type %d: %s of %zu bytes is larger than the "
                   "%d-byte message limit",
                   (int)type, f[i].name, f[i].len, NTLM_MAX_MESSAGE);
      return NTLM_ERR_TOO_BIG;
    }
    total += f[i].len;
  }
  if(total > NTLM_MAX_MESSAGE) {
    ntlm__seterr(err, errlen,
                 "NTLM type %d: message of %zu bytes is larger than the "
                 "%d-byte limit",
                 (int)type, total, NTLM_MAX_MESSAGE);
    return NTLM_ERR_TOO_BIG;
  }
  buf = calloc(1, total);
  if(!buf) {
    ntlm__seterr(err, errlen, "NTLM: out of memory encoding a message");
    return NTLM_ERR_NOMEM;
  }
  memcpy(buf, ntlm__signature, sizeof(ntlm__signature));
  ntlm__put32(buf + 8, (uint32_t)type);
  for(i = 0; i < n; i++) {
    ntlm__put16(buf + f[i].pos, (uint16_t)f[i].len);
    ntlm__put16(buf + f[i].pos + 2, (uint16_t)f[i].len);
    ntlm__put32(buf + f[i].pos + 4,
                (f[i].len || !zero_empty_offsets) ? (uint32_t)cur : 0);
    if(f[i].len)
      memcpy(buf + cur, f[i].data, f[i].len);
    cur += f[i].len;
  }
  out->data = buf;
  out->len = total;
  return NTLM_OK;
}

/* Converts a message string (NULL meaning empty) to its wire form. */
static enum ntlm_result ntlm__wire_string(int type, const char *name,
                                          const char *s, bool unicode,
                                          struct ntlm_bytes *out, char *err,
                                          size_t errlen)
{
  enum ntlm_result result;

  if(!s)
    s = "";
  result = unicode ? ntlm__to_utf16(s, false, out)
                   : ntlm__to_oem(s, false, false, out);
  if(result == NTLM_ERR_ENCODING)
    ntlm__seterr(err, errlen,
                 unicode ? "NTLM type %d: %s is not valid UTF-8"
                         : "NTLM type %d: %s is not valid UTF-8 or has a "
                           "character the OEM (Latin-1) encoding lacks",
                 type, name);
  else if(result == NTLM_ERR_TOO_BIG)
    ntlm__seterr(err, errlen,
                 "NTLM type %d: %s is longer than a message can carry", type,
                 name);
  else if(result == NTLM_ERR_NOMEM)
    ntlm__seterr(err, errlen, "NTLM: out of memory encoding %s", name);
  return result;
}

/* Checks that a byte field the caller set is consistent. */
static bool ntlm__bytes_ok(const uint8_t *p, size_t len)
{
  return p || !len;
}

enum ntlm_result ntlm_encode(const struct ntlm_message *msg,
                             struct ntlm_bytes *out, char *err, size_t errlen)
{
  struct ntlm_bytes s1 = {0}, s2 = {0}, s3 = {0};
  struct ntlm__out_field f[6];
  enum ntlm_result result = NTLM_OK;
  bool unicode;
  size_t header;

  if(!msg || !out) {
    ntlm__seterr(err, errlen,
                 "NTLM: ntlm_encode needs a message and an "
                 "output");
    return NTLM_ERR_ARG;
  }
  out->data = NULL;
  out->len = 0;
  if(!ntlm__bytes_ok(msg->target_info, msg->target_info_len) ||
     !ntlm__bytes_ok(msg->lm_response, msg->lm_response_len) ||
     !ntlm__bytes_ok(msg->nt_response, msg->nt_response_len) ||
     !ntlm__bytes_ok(msg->session_key, msg->session_key_len)) {
    ntlm__seterr(err, errlen, "NTLM: a byte field is NULL but has a length");
    return NTLM_ERR_ARG;
  }
  unicode = (msg->flags & NTLM_NEGOTIATE_UNICODE) != 0;

  switch(msg->type) {
  case NTLM_TYPE_NEGOTIATE:
    /* NEGOTIATE strings are OEM whatever the flags say (MS-NLMP
     * 2.2.1.1). */
    result = ntlm__wire_string(1, "DomainName", msg->domain, false, &s1, err,
                               errlen);
    if(!result)
      result = ntlm__wire_string(1, "WorkstationName", msg->workstation, false,
                                 &s2, err, errlen);
    if(result)
      break;
    header = NTLM__NEG_HEADER + (msg->has_version ? NTLM__VERSION_LEN : 0);
    f[0] = (struct ntlm__out_field){16, s1.data, s1.len, "DomainName"};
    f[1] = (struct ntlm__out_field){24, s2.data, s2.len, "WorkstationName"};
    /* Windows leaves the offsets of empty NEGOTIATE fields at 0; the support
     * case's token shows it. */
    result =
        ntlm__layout(NTLM_TYPE_NEGOTIATE, header, f, 2, true, out, err, errlen);
    if(result)
      break;
    ntlm__put32(out->data + 12, msg->flags);
    if(msg->has_version)
      ntlm__put_version(out->data + NTLM__NEG_HEADER, &msg->version);
    break;

  case NTLM_TYPE_CHALLENGE:
    result = ntlm__wire_string(2, "TargetName", msg->target_name, unicode, &s1,
                               err, errlen);
    if(result)
      break;
    header = NTLM__CHAL_HEADER + (msg->has_version ? NTLM__VERSION_LEN : 0);
    f[0] = (struct ntlm__out_field){12, s1.data, s1.len, "TargetName"};
    f[1] = (struct ntlm__out_field){40, msg->target_info, msg->target_info_len,
                                    "TargetInfo"};
    result = ntlm__layout(NTLM_TYPE_CHALLENGE, header, f, 2, false, out, err,
                          errlen);
    if(result)
      break;
    ntlm__put32(out->data + 20, msg->flags);
    memcpy(out->data + 24, msg->server_challenge, 8);
    if(msg->has_version)
      ntlm__put_version(out->data + NTLM__CHAL_HEADER, &msg->version);
    break;

  case NTLM_TYPE_AUTHENTICATE:
    result = ntlm__wire_string(3, "DomainName", msg->domain, unicode, &s1, err,
                               errlen);
    if(!result)
      result = ntlm__wire_string(3, "UserName", msg->user, unicode, &s2, err,
                                 errlen);
    if(!result)
      result = ntlm__wire_string(3, "Workstation", msg->workstation, unicode,
                                 &s3, err, errlen);
    if(result)
      break;
    /* A MIC sits after the VERSION slot, so a MIC brings the slot along
     * even when no VERSION was negotiated (it is then zero). */
    header = NTLM__AUTH_HEADER +
             ((msg->has_version || msg->has_mic) ? NTLM__VERSION_LEN : 0) +
             (msg->has_mic ? NTLM__MIC_LEN : 0);
    f[0] = (struct ntlm__out_field){28, s1.data, s1.len, "DomainName"};
    f[1] = (struct ntlm__out_field){36, s2.data, s2.len, "UserName"};
    f[2] = (struct ntlm__out_field){44, s3.data, s3.len, "Workstation"};
    f[3] = (struct ntlm__out_field){12, msg->lm_response, msg->lm_response_len,
                                    "LmChallengeResponse"};
    f[4] = (struct ntlm__out_field){20, msg->nt_response, msg->nt_response_len,
                                    "NtChallengeResponse"};
    f[5] = (struct ntlm__out_field){52, msg->session_key, msg->session_key_len,
                                    "EncryptedRandomSessionKey"};
    result = ntlm__layout(NTLM_TYPE_AUTHENTICATE, header, f, 6, false, out, err,
                          errlen);
    if(result)
      break;
    ntlm__put32(out->data + 60, msg->flags);
    if(msg->has_version)
      ntlm__put_version(out->data + NTLM__AUTH_HEADER, &msg->version);
    if(msg->has_mic)
      memcpy(out->data + NTLM__AUTH_HEADER + NTLM__VERSION_LEN, msg->mic,
             NTLM__MIC_LEN);
    break;

  case NTLM_TYPE_NONE:
  default:
    ntlm__seterr(err, errlen, "NTLM: cannot encode message type %d",
                 (int)msg->type);
    result = NTLM_ERR_TYPE;
    break;
  }
  ntlm_bytes_free(&s1);
  ntlm_bytes_free(&s2);
  ntlm_bytes_free(&s3);
  return result;
}

/* ---- describing ---------------------------------------------------------- */

/* A bounded string being appended to; writes stop silently at the end. */
struct ntlm__text {
  char *buf;
  size_t cap;
  size_t len;
};

static void ntlm__text_add(struct ntlm__text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ntlm__text_add(struct ntlm__text *t, const char *fmt, ...)
{
  va_list ap;
  int n;

  if(t->len + 1 >= t->cap)
    return;
  va_start(ap, fmt);
  n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  if(n < 0)
    return;
  t->len += (size_t)n;
  if(t->len >= t->cap)
    t->len = t->cap - 1;
}

/* Appends a peer-supplied string with control characters replaced by '?',
 * so a hostile name can't break the one-line form of a log. */
static void ntlm__text_name(struct ntlm__text *t, const char *s)
{
  for(; s && *s && t->len + 1 < t->cap; s++) {
    unsigned char c = (unsigned char)*s;
    t->buf[t->len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  t->buf[t->len] = '\0';
}

static const struct {
  uint32_t bit;
  const char *name;
} ntlm__flag_names[] = {
    {0x00000001u, "UNICODE"},
    {0x00000002u, "OEM"},
    {0x00000004u, "REQUEST_TARGET"},
    {0x00000010u, "SIGN"},
    {0x00000020u, "SEAL"},
    {0x00000040u, "DATAGRAM"},
    {0x00000080u, "LM_KEY"},
    {0x00000200u, "NTLM"},
    {0x00000800u, "ANONYMOUS"},
    {0x00001000u, "DOMAIN_SUPPLIED"},
    {0x00002000u, "WORKSTATION_SUPPLIED"},
    {0x00008000u, "ALWAYS_SIGN"},
    {0x00010000u, "TARGET_TYPE_DOMAIN"},
    {0x00020000u, "TARGET_TYPE_SERVER"},
    {0x00080000u, "EXTENDED_SESSIONSECURITY"},
    {0x00100000u, "IDENTIFY"},
    {0x00400000u, "NON_NT_SESSION_KEY"},
    {0x00800000u, "TARGET_INFO"},
    {0x02000000u, "VERSION"},
    {0x20000000u, "128"},
    {0x40000000u, "KEY_EXCH"},
    {0x80000000u, "56"},
};

/* Appends "flags 0x... (NAME NAME ...)"; unnamed bits appear in hex. */
static void ntlm__text_flags(struct ntlm__text *t, uint32_t flags)
{
  uint32_t rest = flags;
  const char *sep = "";
  size_t i;

  ntlm__text_add(t, "flags 0x%08x (", (unsigned)flags);
  for(i = 0; i < sizeof(ntlm__flag_names) / sizeof(ntlm__flag_names[0]); i++) {
    if(flags & ntlm__flag_names[i].bit) {
      ntlm__text_add(t, "%s%s", sep, ntlm__flag_names[i].name);
      sep = " ";
      rest &= ~ntlm__flag_names[i].bit;
    }
  }
  if(rest)
    ntlm__text_add(t, "%s0x%08x", sep, (unsigned)rest);
  ntlm__text_add(t, ")");
}

static void ntlm__text_version(struct ntlm__text *t,
                               const struct ntlm_message *m)
{
  if(m->has_version)
    ntlm__text_add(t, " version %u.%u.%u/%u", m->version.major,
                   m->version.minor, m->version.build, m->version.revision);
}

/* What an AUTHENTICATE's responses are. */
enum ntlm__kind {
  NTLM__KIND_ANONYMOUS,
  NTLM__KIND_V1,
  NTLM__KIND_V1_ESS,
  NTLM__KIND_V2,
  NTLM__KIND_MALFORMED
};

/* Classifies an AUTHENTICATE by its responses (MS-NLMP 3.2.5.1.2, 3.3):
 * an empty NT response and an LM response of at most one byte is
 * anonymous; 24 bytes is NTLMv1, with a client challenge when ESS was
 * negotiated; 44 bytes or more is NTLMv2; anything else is malformed. */
static enum ntlm__kind ntlm__kind_of(const struct ntlm_message *m)
{
  if(!m->nt_response_len && m->lm_response_len <= 1)
    return NTLM__KIND_ANONYMOUS;
  if(m->nt_response_len == 24) {
    if((m->flags & NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY) &&
       m->lm_response_len >= 8)
      return NTLM__KIND_V1_ESS;
    return NTLM__KIND_V1;
  }
  if(m->nt_response_len >= NTLM__V2_MIN_RESPONSE)
    return NTLM__KIND_V2;
  return NTLM__KIND_MALFORMED;
}

void ntlm_describe(const struct ntlm_message *msg, char *out, size_t outlen)
{
  struct ntlm__text t;
  enum ntlm__kind kind;
  size_t i;

  if(!out || !outlen)
    return;
  t.buf = out;
  t.cap = outlen;
  t.len = 0;
  out[0] = '\0';
  if(!msg) {
    ntlm__text_add(&t, "no NTLM message");
    return;
  }
  switch(msg->type) {
  case NTLM_TYPE_NEGOTIATE:
    ntlm__text_add(&t, "NTLM type 1 NEGOTIATE ");
    ntlm__text_flags(&t, msg->flags);
    if(msg->domain) {
      ntlm__text_add(&t, " domain ");
      ntlm__text_name(&t, msg->domain);
    }
    if(msg->workstation) {
      ntlm__text_add(&t, " workstation ");
      ntlm__text_name(&t, msg->workstation);
    }
    ntlm__text_version(&t, msg);
    break;
  case NTLM_TYPE_CHALLENGE:
    ntlm__text_add(&t, "NTLM type 2 CHALLENGE ");
    ntlm__text_flags(&t, msg->flags);
    if(msg->target_name) {
      ntlm__text_add(&t, " target ");
      ntlm__text_name(&t, msg->target_name);
    }
    ntlm__text_add(&t, " challenge ");
    for(i = 0; i < 8; i++)
      ntlm__text_add(&t, "%02x", msg->server_challenge[i]);
    if(msg->target_info_len)
      ntlm__text_add(&t, " target info %zu bytes", msg->target_info_len);
    ntlm__text_version(&t, msg);
    break;
  case NTLM_TYPE_AUTHENTICATE:
    ntlm__text_add(&t, "NTLM type 3 AUTHENTICATE ");
    kind = ntlm__kind_of(msg);
    if(kind == NTLM__KIND_ANONYMOUS) {
      ntlm__text_add(&t, "anonymous");
      break;
    }
    if(msg->domain) {
      ntlm__text_name(&t, msg->domain);
      ntlm__text_add(&t, "\\");
    }
    ntlm__text_name(&t, msg->user ? msg->user : "(no user)");
    if(msg->workstation) {
      ntlm__text_add(&t, " from ");
      ntlm__text_name(&t, msg->workstation);
    }
    if(kind == NTLM__KIND_V1)
      ntlm__text_add(&t, ", NTLMv1 response");
    else if(kind == NTLM__KIND_V1_ESS)
      ntlm__text_add(&t, ", NTLMv1-ESS response");
    else if(kind == NTLM__KIND_V2)
      ntlm__text_add(&t, ", NTLMv2 response");
    else
      ntlm__text_add(&t, ", malformed %zu-byte NT response",
                     msg->nt_response_len);
    break;
  case NTLM_TYPE_NONE:
  default:
    ntlm__text_add(&t, "no NTLM message");
    break;
  }
}

/* ---- HTTP glue ----------------------------------------------------------- */

static bool ntlm__blank(char c)
{
  return c == ' ' || c == '\t';
}

/* Decodes n characters of base64 into *out (caller frees). Windows pads
 * with '=' to a multiple of 4, and so must the token; but the bits left
 * over in the last character before the padding are ignored rather than
 * required to be zero, because Windows does not zero them (the support
 * case's own token ends "D0==" where canonical base64 has "Dw=="). */
/* Checks the shape of n characters of base64: padded with '=' to a
 * multiple of 4, at most two '=', nothing but A-Z a-z 0-9 + / before
 * them. Returns NTLM_OK or NTLM_ERR_BASE64 with a line in err. Any length
 * is accepted here; the size limit is the decoder's. */
static enum ntlm_result ntlm__b64_check(const char *tok, size_t n, char *err,
                                        size_t errlen)
{
  size_t pad = 0;
  size_t i;

  if(n % 4) {
    ntlm__seterr(err, errlen,
                 "NTLM header: base64 token of %zu characters is not padded "
                 "to a multiple of 4",
                 n);
    return NTLM_ERR_BASE64;
  }
  while(pad < n && tok[n - 1 - pad] == '=')
    pad++;
  if(pad > 2) {
    ntlm__seterr(err, errlen,
                 "NTLM header: base64 token ends in %zu '=' (at most 2 are "
                 "allowed)",
                 pad);
    return NTLM_ERR_BASE64;
  }
  for(i = 0; i < n - pad; i++) {
    /* nettle's decoder skips white space (space, tab, CR, LF, VT, FF)
     * inside base64; a header token has none, so anything outside the
     * alphabet is refused here, before nettle can ignore it. */
    unsigned char ch = (unsigned char)tok[i];
    if(!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
         (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')) {
      ntlm__seterr(err, errlen,
                   "NTLM header: base64 token has byte 0x%02x at character "
                   "%zu, which is not base64",
                   ch, i);
      return NTLM_ERR_BASE64;
    }
  }
  return NTLM_OK;
}

/* Decodes the first n characters of a token whose shape ntlm__b64_check
 * accepted into buf, which holds BASE64_DECODE_LENGTH(n) bytes; n is a
 * multiple of 4 or the whole token. Returns the bytes decoded, or 0 when
 * nettle refused. The padding is not fed to nettle and base64_decode_final
 * is not called: both would insist that the leftover bits be zero, and
 * Windows does not zero them (the support case's own token ends "D0=="
 * where canonical base64 has "Dw=="). The shape check already bounds the
 * leftover to the 2 or 4 bits a padded group has. */
static size_t ntlm__b64_prefix(const char *tok, size_t n, uint8_t *buf)
{
  struct base64_decode_ctx ctx;
  size_t dlen = BASE64_DECODE_LENGTH(n);

  while(n && tok[n - 1] == '=')
    n--;
  base64_decode_init(&ctx);
  if(!base64_decode_update(&ctx, &dlen, buf, n, tok))
    return 0;
  return dlen;
}

/* Decodes n characters of base64 into *out (caller frees): the shape as
 * ntlm__b64_check wants it, and at most NTLM_MAX_MESSAGE bytes. */
static enum ntlm_result ntlm__b64_decode(const char *tok, size_t n,
                                         struct ntlm_bytes *out, char *err,
                                         size_t errlen)
{
  enum ntlm_result r;
  size_t dlen;
  uint8_t *buf;

  if(n > BASE64_ENCODE_RAW_LENGTH(NTLM_MAX_MESSAGE)) {
    ntlm__seterr(err, errlen,
                 "NTLM header: token of %zu characters decodes to more than "
                 "the %d-byte message limit",
                 n, NTLM_MAX_MESSAGE);
    return NTLM_ERR_TOO_BIG;
  }
  r = ntlm__b64_check(tok, n, err, errlen);
  if(r)
    return r;
  buf = malloc(BASE64_DECODE_LENGTH(n) + 1);
  if(!buf) {
    ntlm__seterr(err, errlen, "NTLM header: out of memory decoding a token");
    return NTLM_ERR_NOMEM;
  }
  dlen = ntlm__b64_prefix(tok, n, buf);
  if(!dlen && n) {
    free(buf);
    ntlm__seterr(err, errlen,
                 "NTLM header: token is not valid base64 (a character "
                 "outside A-Z a-z 0-9 + / or a misplaced '=')");
    return NTLM_ERR_BASE64;
  }
  if(dlen > NTLM_MAX_MESSAGE) {
    free(buf);
    ntlm__seterr(err, errlen,
                 "NTLM header: token decodes to %zu bytes, more than the "
                 "%d-byte message limit",
                 dlen, NTLM_MAX_MESSAGE);
    return NTLM_ERR_TOO_BIG;
  }
  out->data = buf;
  out->len = dlen;
  return NTLM_OK;
}

/* The one grammar of an Authorization / WWW-Authenticate value (RFC 9110
 * 11.6.2 and 11.4, as Windows writes it): optional blanks (SP, HTAB), the
 * scheme, then optionally one or more blanks and a token, then optional
 * blanks. Splits the len bytes of value into the scheme word and the token
 * (tok NULL and toklen 0 when there is none). Returns false when the value
 * is empty or blank. */
static bool ntlm__header_split(const char *value, size_t len, const char **word,
                               size_t *wlen, const char **tok, size_t *toklen)
{
  const char *p = value;
  const char *end = value + len;

  while(p < end && ntlm__blank(*p))
    p++;
  while(end > p && ntlm__blank(end[-1]))
    end--;
  if(p == end)
    return false;
  *word = p;
  while(p < end && !ntlm__blank(*p))
    p++;
  *wlen = (size_t)(p - *word);
  while(p < end && ntlm__blank(*p))
    p++;
  *tok = p < end ? p : NULL;
  *toklen = (size_t)(end - p);
  return true;
}

/* Which of NTLM and Negotiate a scheme word names, case-insensitively.
 * Returns false for any other word. */
static bool ntlm__scheme_of(const char *word, size_t wlen,
                            enum ntlm_scheme *out)
{
  if(wlen == 4 && !strncasecmp(word, "NTLM", 4))
    *out = NTLM_SCHEME_NTLM;
  else if(wlen == 9 && !strncasecmp(word, "Negotiate", 9))
    *out = NTLM_SCHEME_NEGOTIATE;
  else
    return false;
  return true;
}

void ntlm_header_peek(const char *value, size_t len,
                      struct ntlm_header_info *out)
{
  static const uint8_t signature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
  const char *word, *tok;
  size_t wlen, toklen, n, got;
  uint8_t head[BASE64_DECODE_LENGTH(16)];

  memset(out, 0, sizeof(*out));
  if(!value) {
    out->kind = NTLM_TOKEN_ABSENT;
    return;
  }
  if(!ntlm__header_split(value, len, &word, &wlen, &tok, &toklen) ||
     !ntlm__scheme_of(word, wlen, &out->scheme)) {
    out->kind = NTLM_TOKEN_OTHER_SCHEME;
    return;
  }
  if(!tok) {
    out->kind = NTLM_TOKEN_NONE;
    return;
  }
  if(ntlm__b64_check(tok, toklen, NULL, 0)) {
    out->kind = NTLM_TOKEN_BAD_BASE64;
    return;
  }
  out->decoded_len = BASE64_DECODE_LENGTH(toklen);
  while(toklen && tok[toklen - 1] == '=') {
    toklen--;
    out->decoded_len--;
  }
  out->too_big = out->decoded_len > NTLM_MAX_MESSAGE;
  /* Only the first 16 characters (12 bytes: signature and type) are
   * decoded, so a 16 KB Kerberos ticket is named without decoding it. */
  n = toklen < 16 ? toklen : 16;
  got = ntlm__b64_prefix(tok, n, head);
  out->first_byte = got ? head[0] : 0;
  if(got >= 8 && !memcmp(head, signature, sizeof(signature))) {
    out->kind = NTLM_TOKEN_NTLMSSP;
    if(got >= 12) {
      out->type_number = ntlm__get32(head + 8);
      if(out->type_number >= 1 && out->type_number <= 3)
        out->type = (enum ntlm_type)out->type_number;
    }
  }
  else if(got && out->scheme == NTLM_SCHEME_NEGOTIATE &&
          (head[0] == 0x60 || head[0] == 0xa1))
    out->kind = NTLM_TOKEN_SPNEGO;
  else
    out->kind = NTLM_TOKEN_FOREIGN;
}

bool ntlm_header_describe(const char *value, size_t len, char *out,
                          size_t outlen)
{
  struct ntlm_header_info info;
  struct ntlm_bytes token = {NULL, 0};
  struct ntlm_message msg;
  enum ntlm_scheme scheme;
  char err[256];
  char *copy;

  ntlm_header_peek(value, len, &info);
  switch(info.kind) {
  case NTLM_TOKEN_ABSENT:
  case NTLM_TOKEN_NONE:
    return false;
  case NTLM_TOKEN_OTHER_SCHEME:
    snprintf(out, outlen, "not NTLM: another scheme");
    return true;
  case NTLM_TOKEN_SPNEGO:
    snprintf(out, outlen,
             "SPNEGO/Kerberos token of %zu bytes (first byte 0x%02x), "
             "not NTLMSSP",
             info.decoded_len, info.first_byte);
    return true;
  default:
    break;
  }
  copy = malloc(len + 1);
  if(!copy) {
    snprintf(out, outlen, "not decodable: out of memory");
    return true;
  }
  memcpy(copy, value, len);
  copy[len] = '\0';
  if(ntlm_header_parse(copy, &scheme, &token, err, sizeof(err)) != NTLM_OK)
    snprintf(out, outlen, "not decodable: %s", err);
  else if(ntlm_decode(token.data, token.len, &msg, err, sizeof(err)) ==
          NTLM_OK) {
    ntlm_describe(&msg, out, outlen);
    ntlm_message_free(&msg);
  }
  else
    snprintf(out, outlen, "not decodable: %s", err);
  ntlm_bytes_free(&token);
  free(copy);
  return true;
}

enum ntlm_result ntlm_header_parse(const char *value, enum ntlm_scheme *scheme,
                                   struct ntlm_bytes *out, char *err,
                                   size_t errlen)
{
  const char *word, *tok;
  size_t wlen, toklen;
  enum ntlm_scheme which;
  enum ntlm_result result;

  if(!value || !out) {
    ntlm__seterr(err, errlen,
                 "NTLM header: ntlm_header_parse needs a value "
                 "and an output");
    return NTLM_ERR_ARG;
  }
  out->data = NULL;
  out->len = 0;
  if(!ntlm__header_split(value, strlen(value), &word, &wlen, &tok, &toklen)) {
    ntlm__seterr(err, errlen,
                 "NTLM header: the value is empty; expected "
                 "\"NTLM <base64 token>\"");
    return NTLM_ERR_HEADER;
  }
  if(!ntlm__scheme_of(word, wlen, &which)) {
    ntlm__seterr(err, errlen,
                 "NTLM header: scheme \"%.*s\" is neither NTLM nor Negotiate",
                 (int)(wlen > 32 ? 32 : wlen), word);
    return NTLM_ERR_HEADER;
  }
  if(!tok)
    result = NTLM_OK; /* bare "NTLM": the server offers the scheme */
  else
    result = ntlm__b64_decode(tok, toklen, out, err, errlen);
  if(!result && scheme)
    *scheme = which;
  return result;
}

char *ntlm_header_format(enum ntlm_scheme scheme, const uint8_t *msg,
                         size_t len)
{
  const char *name = scheme == NTLM_SCHEME_NEGOTIATE ? "Negotiate" : "NTLM";
  size_t nlen = strlen(name);
  size_t blen;
  char *s;

  if(!msg && len)
    return NULL;
  if(len > NTLM_MAX_MESSAGE * 16u)
    return NULL; /* nobody sends this; keeps the size arithmetic trivial */
  blen = BASE64_ENCODE_RAW_LENGTH(len);
  s = malloc(nlen + 1 + blen + 1);
  if(!s)
    return NULL;
  memcpy(s, name, nlen);
  if(!len) {
    s[nlen] = '\0';
    return s;
  }
  s[nlen] = ' ';
  base64_encode_raw(s + nlen + 1, len, msg);
  s[nlen + 1 + blen] = '\0';
  return s;
}

/* ---- client side --------------------------------------------------------- */

enum ntlm_result ntlm_client_negotiate(uint32_t flags, struct ntlm_bytes *out)
{
  struct ntlm_message m;

  if(!out)
    return NTLM_ERR_ARG;
  memset(&m, 0, sizeof(m));
  m.type = NTLM_TYPE_NEGOTIATE;
  m.flags = flags;
  if(flags & NTLM_NEGOTIATE_VERSION) {
    m.has_version = true;
    m.version = ntlm__client_version;
  }
  return ntlm_encode(&m, out, NULL, 0);
}

/* Returns the flags an AUTHENTICATE answering a CHALLENGE with chal_flags
 * carries: what the server offered, minus what only a server says (target
 * type) and key exchange unless this client does it (key_exch), with one
 * character set, and ESS set exactly when the response kind uses it so
 * that the server can tell NTLMv1 from NTLMv1-ESS. */
static uint32_t ntlm__auth_flags(uint32_t chal_flags,
                                 enum ntlm_response_kind kind, bool key_exch)
{
  uint32_t flags = chal_flags;

  /* A client answering with credentials is never anonymous, whatever a
   * challenge echoed; the rest are server-side flags. */
  flags &= ~(NTLM_TARGET_TYPE_DOMAIN | NTLM_TARGET_TYPE_SERVER |
             NTLM__TARGET_TYPE_SHARE | NTLM_NEGOTIATE_ANONYMOUS);
  if(!key_exch)
    flags &= ~NTLM_NEGOTIATE_KEY_EXCH;
  if(flags & NTLM_NEGOTIATE_UNICODE)
    flags &= ~NTLM_NEGOTIATE_OEM;
  else
    flags |= NTLM_NEGOTIATE_OEM;
  flags |= NTLM_NEGOTIATE_NTLM;
  if(kind == NTLM_RESPONSE_V1)
    flags &= ~NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY;
  else if(kind == NTLM_RESPONSE_V1_ESS)
    flags |= NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY;
  return flags;
}

/* KeyExchangeKey (MS-NLMP 3.4.5.1) from the SessionBaseKey: for NTLMv1
 * with ESS, HMAC_MD5(SessionBaseKey, ServerChallenge || LmResponse[0..7]);
 * otherwise (NTLMv2, and NTLMv1 since LM_KEY and NON_NT_SESSION_KEY are
 * never granted here) the SessionBaseKey itself. Can't fail. */
static void ntlm__kxkey(enum ntlm_response_kind kind,
                        const uint8_t session_base_key[16],
                        const uint8_t server_challenge[8],
                        const uint8_t *lm_response, uint8_t out[16])
{
  if(kind == NTLM_RESPONSE_V1_ESS)
    ntlm__hmac2(session_base_key, server_challenge, 8, lm_response, 8, out);
  else
    memcpy(out, session_base_key, 16);
}

/* RC4K(key, data[16]) into out[16] (MS-NLMP 6): encrypts and decrypts the
 * random session key under the KeyExchangeKey. Can't fail. */
static void ntlm__rc4_16(const uint8_t key[16], const uint8_t data[16],
                         uint8_t out[16])
{
  struct arcfour_ctx rc4;

  arcfour_set_key(&rc4, 16, key);
  arcfour_crypt(&rc4, 16, out, data);
  explicit_bzero(&rc4, sizeof(rc4));
}

/* MIC = HMAC_MD5(ExportedSessionKey, NEGOTIATE || CHALLENGE ||
 * AUTHENTICATE) with the AUTHENTICATE's MIC field taken as zero (MS-NLMP
 * 3.1.5.1.2). auth is the encoded AUTHENTICATE with a MIC slot at offset
 * 72 (auth_len covers it); out may be that slot. Can't fail. */
static void ntlm__mic(const uint8_t key[16], const struct ntlm_exchange *ex,
                      const uint8_t *auth, size_t auth_len, uint8_t out[16])
{
  static const uint8_t zero[NTLM__MIC_LEN];
  const size_t at = NTLM__AUTH_HEADER + NTLM__VERSION_LEN;
  struct hmac_md5_ctx hmac;

  hmac_md5_set_key(&hmac, 16, key);
  hmac_md5_update(&hmac, ex->negotiate_len, ex->negotiate);
  hmac_md5_update(&hmac, ex->challenge_len, ex->challenge);
  hmac_md5_update(&hmac, at, auth);
  hmac_md5_update(&hmac, NTLM__MIC_LEN, zero);
  hmac_md5_update(&hmac, auth_len - at - NTLM__MIC_LEN,
                  auth + at + NTLM__MIC_LEN);
  hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, out);
  explicit_bzero(&hmac, sizeof(hmac));
}

/* Copies the AV list ti into b with MsvAvFlags carrying the MIC bit (added
 * before MsvAvEOL, or OR-ed into one already there): what a client that
 * sends a MIC puts in its NTLMv2 blob (MS-NLMP 3.1.5.1.2). */
static enum ntlm_result ntlm__av_with_mic(const uint8_t *ti, size_t len,
                                          struct ntlm__avbuf *b)
{
  uint32_t flags = NTLM__AV_FLAG_MIC;
  size_t pos = 0;
  uint8_t v[4];
  enum ntlm_result result = NTLM_OK;

  b->len = 0;
  while(ti && !result && len - pos >= 4) {
    uint16_t aid = ntlm__get16(ti + pos);
    size_t alen = ntlm__get16(ti + pos + 2);
    if(aid == NTLM__AV_EOL || len - pos - 4 < alen)
      break;
    if(aid == NTLM__AV_FLAGS && alen == 4)
      flags |= ntlm__get32(ti + pos + 4);
    else
      result = ntlm__av_put(b, aid, ti + pos + 4, alen);
    pos += 4 + alen;
  }
  ntlm__put32(v, flags);
  if(!result)
    result = ntlm__av_put(b, NTLM__AV_FLAGS, v, sizeof(v));
  if(!result)
    result = ntlm__av_put(b, NTLM__AV_EOL, NULL, 0);
  return result;
}

uint32_t ntlm_client_flags(enum ntlm_response_kind kind)
{
  if(kind == NTLM_RESPONSE_V1)
    return NTLM_COMMUNICATOR_FLAGS & ~NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY;
  return NTLM_COMMUNICATOR_FLAGS;
}

enum ntlm_result ntlm_client_authenticate(const struct ntlm_client_creds *creds,
                                          const struct ntlm_message *challenge,
                                          const uint8_t client_challenge[8],
                                          uint64_t timestamp,
                                          struct ntlm_bytes *out, char *err,
                                          size_t errlen)
{
  struct ntlm_client_options opt;

  memset(&opt, 0, sizeof(opt));
  opt.client_challenge = client_challenge;
  opt.timestamp = timestamp;
  return ntlm_client_authenticate_ex(creds, challenge, &opt, out, NULL, err,
                                     errlen);
}

enum ntlm_result ntlm_client_authenticate_ex(
    const struct ntlm_client_creds *creds, const struct ntlm_message *challenge,
    const struct ntlm_client_options *opt, struct ntlm_bytes *out,
    uint8_t exported_session_key[16], char *err, size_t errlen)
{
  struct ntlm_message m;
  struct ntlm_bytes nt = {0};
  struct ntlm__avbuf *ti = NULL;
  const uint8_t *client_challenge = opt ? opt->client_challenge : NULL;
  const uint8_t *tinfo;
  size_t tinfo_len;
  uint64_t timestamp = opt ? opt->timestamp : 0;
  uint8_t key[16];
  uint8_t base[16];   /* SessionBaseKey */
  uint8_t kx[16];     /* KeyExchangeKey */
  uint8_t export[16]; /* ExportedSessionKey */
  uint8_t enc[16];    /* EncryptedRandomSessionKey */
  uint8_t lm[24];
  uint8_t nt1[24];
  const uint8_t *av;
  size_t avlen;
  bool key_exch = false;
  bool mic = false;
  enum ntlm_result result = NTLM_OK;

  if(out) {
    out->data = NULL;
    out->len = 0;
  }
  if(!creds || !challenge || !opt || !out || !creds->user || !creds->password) {
    ntlm__seterr(err, errlen,
                 "NTLM client: a user name and a password are "
                 "needed to answer a challenge");
    return NTLM_ERR_ARG;
  }
  if(challenge->type != NTLM_TYPE_CHALLENGE) {
    ntlm__seterr(err, errlen,
                 "NTLM client: expected a type 2 CHALLENGE to answer, got "
                 "type %d",
                 (int)challenge->type);
    return NTLM_ERR_TYPE;
  }
  if(creds->kind != NTLM_RESPONSE_V2 && creds->kind != NTLM_RESPONSE_V1 &&
     creds->kind != NTLM_RESPONSE_V1_ESS) {
    ntlm__seterr(err, errlen, "NTLM client: unknown response kind %d",
                 (int)creds->kind);
    return NTLM_ERR_ARG;
  }
  if(creds->kind != NTLM_RESPONSE_V1 && !client_challenge) {
    ntlm__seterr(err, errlen,
                 "NTLM client: %s needs an 8-byte client "
                 "challenge",
                 ntlm_response_kind_name(creds->kind));
    return NTLM_ERR_ARG;
  }
  if(opt->mic && (creds->kind != NTLM_RESPONSE_V2 || !opt->exchange ||
                  !opt->exchange->negotiate || !opt->exchange->challenge)) {
    ntlm__seterr(err, errlen,
                 "NTLM client: a MIC needs an NTLMv2 response and the "
                 "NEGOTIATE and CHALLENGE as sent");
    return NTLM_ERR_ARG;
  }
  mic = opt->mic;
  key_exch =
      opt->random_session_key && (challenge->flags & NTLM_NEGOTIATE_KEY_EXCH);

  memset(&m, 0, sizeof(m));
  tinfo = challenge->target_info;
  tinfo_len = challenge->target_info_len;
  switch(creds->kind) {
  case NTLM_RESPONSE_V2:
    if(!timestamp &&
       ntlm__av_find(tinfo, tinfo_len, NTLM__AV_TIMESTAMP, &av, &avlen) &&
       avlen == 8)
      timestamp = ntlm__get64(av);
    if(mic) {
      ti = malloc(sizeof(*ti));
      result = ti ? ntlm__av_with_mic(tinfo, tinfo_len, ti) : NTLM_ERR_NOMEM;
      if(!result) {
        tinfo = ti->data;
        tinfo_len = ti->len;
      }
    }
    if(!result)
      result = ntlm_ntowf_v2(creds->password, creds->user, creds->domain, key);
    if(!result)
      result =
          ntlm_v2_responses(key, challenge->server_challenge, client_challenge,
                            timestamp, tinfo, tinfo_len, &nt, lm, base);
    /* MS-NLMP 3.1.5.1.2: when the server sent MsvAvTimestamp the client
     * sends Z(24) instead of the LMv2 response. */
    if(!result &&
       ntlm__av_find(challenge->target_info, challenge->target_info_len,
                     NTLM__AV_TIMESTAMP, &av, &avlen))
      memset(lm, 0, sizeof(lm));
    break;
  case NTLM_RESPONSE_V1:
    result = ntlm_nt_hash(creds->password, key);
    if(!result) {
      ntlm_desl(key, challenge->server_challenge, nt1);
      ntlm_v1_session_base_key(key, base);
      result = ntlm_lm_hash(creds->password, key);
    }
    if(!result)
      ntlm_desl(key, challenge->server_challenge, lm);
    break;
  case NTLM_RESPONSE_V1_ESS:
    result = ntlm_nt_hash(creds->password, key);
    if(!result) {
      ntlm__v1_ess_response(key, challenge->server_challenge, client_challenge,
                            nt1);
      ntlm_v1_session_base_key(key, base);
      memset(lm, 0, sizeof(lm));
      memcpy(lm, client_challenge, 8);
    }
    break;
  }
  if(result == NTLM_ERR_ENCODING)
    ntlm__seterr(err, errlen,
                 "NTLM client: the user name, domain or "
                 "password is not valid UTF-8");
  else if(result)
    ntlm__seterr(err, errlen,
                 "NTLM client: computing the %s response "
                 "failed: %s",
                 ntlm_response_kind_name(creds->kind), ntlm_strerror(result));

  if(!result) {
    ntlm__kxkey(creds->kind, base, challenge->server_challenge, lm, kx);
    if(key_exch) {
      memcpy(export, opt->random_session_key, 16);
      ntlm__rc4_16(kx, export, enc);
    }
    else
      memcpy(export, kx, 16);
    m.type = NTLM_TYPE_AUTHENTICATE;
    m.flags = ntlm__auth_flags(challenge->flags, creds->kind, key_exch);
    if(m.flags & NTLM_NEGOTIATE_VERSION) {
      m.has_version = true;
      m.version = ntlm__client_version;
    }
    /* The message only reads these strings; the casts do not let anything
     * write through them. */
    m.domain = (char *)creds->domain;
    m.user = (char *)creds->user;
    m.workstation = (char *)creds->workstation;
    m.lm_response = lm;
    m.lm_response_len = sizeof(lm);
    if(creds->kind == NTLM_RESPONSE_V2) {
      m.nt_response = nt.data;
      m.nt_response_len = nt.len;
    }
    else {
      m.nt_response = nt1;
      m.nt_response_len = sizeof(nt1);
    }
    if(key_exch) {
      m.session_key = enc;
      m.session_key_len = sizeof(enc);
    }
    m.has_mic = mic; /* zero until computed over the encoded message */
    result = ntlm_encode(&m, out, err, errlen);
  }
  if(!result && mic)
    ntlm__mic(export, opt->exchange, out->data, out->len,
              out->data + NTLM__AUTH_HEADER + NTLM__VERSION_LEN);
  if(!result && exported_session_key)
    memcpy(exported_session_key, export, 16);
  explicit_bzero(key, sizeof(key));
  explicit_bzero(base, sizeof(base));
  explicit_bzero(kx, sizeof(kx));
  explicit_bzero(export, sizeof(export));
  free(ti);
  ntlm__wipe_free(&nt);
  return result;
}

/* ---- server side --------------------------------------------------------- */

uint32_t ntlm_server_flags(uint32_t negotiate_flags)
{
  /* What the client may ask for and this server grants when asked
   * (MS-NLMP 3.2.5.1.1): signing and sealing are the application's to use
   * later, so granting them costs nothing over HTTP and a client that
   * requires them (gss-ntlmssp, Samba) refuses a challenge without them. */
  static const uint32_t echoed =
      NTLM_REQUEST_TARGET | NTLM_NEGOTIATE_SIGN | NTLM_NEGOTIATE_SEAL |
      NTLM_NEGOTIATE_ALWAYS_SIGN | NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY |
      NTLM_NEGOTIATE_128 | NTLM_NEGOTIATE_56 | NTLM_NEGOTIATE_KEY_EXCH;
  uint32_t flags;

  /* What Windows always answers: NTLM, target info, a domain target and a
   * VERSION; one character set, Unicode when offered. */
  flags = NTLM_NEGOTIATE_NTLM | NTLM_NEGOTIATE_TARGET_INFO |
          NTLM_TARGET_TYPE_DOMAIN | NTLM_NEGOTIATE_VERSION;
  flags |= (negotiate_flags & NTLM_NEGOTIATE_UNICODE) ? NTLM_NEGOTIATE_UNICODE
                                                      : NTLM_NEGOTIATE_OEM;
  flags |= negotiate_flags & echoed;
  return flags;
}

enum ntlm_result ntlm_server_challenge(const struct ntlm_server_info *info,
                                       uint32_t negotiate_flags,
                                       const uint8_t server_challenge[8],
                                       uint64_t timestamp,
                                       struct ntlm_bytes *out)
{
  struct ntlm__avbuf *av;
  struct ntlm_message m;
  enum ntlm_result result;

  if(out) {
    out->data = NULL;
    out->len = 0;
  }
  if(!info || !info->netbios_domain || !info->netbios_computer ||
     !server_challenge || !out)
    return NTLM_ERR_ARG;
  av = malloc(sizeof(*av));
  if(!av)
    return NTLM_ERR_NOMEM;
  av->len = 0;

  /* Windows' order: NetBIOS domain, NetBIOS computer, DNS domain, DNS
   * computer, timestamp, EOL. */
  result = ntlm__av_put_str(av, NTLM__AV_NB_DOMAIN, info->netbios_domain);
  if(!result)
    result = ntlm__av_put_str(av, NTLM__AV_NB_COMPUTER, info->netbios_computer);
  if(!result)
    result = ntlm__av_put_str(av, NTLM__AV_DNS_DOMAIN, info->dns_domain);
  if(!result)
    result = ntlm__av_put_str(av, NTLM__AV_DNS_COMPUTER, info->dns_computer);
  if(!result && timestamp) {
    uint8_t ts[8];
    ntlm__put64(ts, timestamp);
    result = ntlm__av_put(av, NTLM__AV_TIMESTAMP, ts, sizeof(ts));
  }
  if(!result)
    result = ntlm__av_put(av, NTLM__AV_EOL, NULL, 0);

  if(!result) {
    memset(&m, 0, sizeof(m));
    m.type = NTLM_TYPE_CHALLENGE;
    m.flags = ntlm_server_flags(negotiate_flags);
    m.has_version = true;
    m.version = ntlm__server_version;
    m.target_name = (char *)info->netbios_domain;
    memcpy(m.server_challenge, server_challenge, 8);
    m.target_info = av->data;
    m.target_info_len = av->len;
    result = ntlm_encode(&m, out, NULL, 0);
  }
  free(av);
  return result;
}

enum ntlm_result ntlm_server_verify(const struct ntlm_message *auth,
                                    const uint8_t server_challenge[8],
                                    ntlm_password_fn lookup, void *lookup_ctx,
                                    struct ntlm_identity *who, char *err,
                                    size_t errlen)
{
  return ntlm_server_verify_ex(auth, NULL, server_challenge, lookup, lookup_ctx,
                               who, err, errlen);
}

/* Derives the ExportedSessionKey of a verified AUTHENTICATE (MS-NLMP
 * 3.2.5.1.2) from its SessionBaseKey and checks its MIC against the
 * exchange when the response announces one. NTLM_ERR_BAD_PROOF with a line
 * in err when the key exchange is malformed or the MIC does not match. */
static enum ntlm_result ntlm__server_keys(
    const struct ntlm_message *auth, enum ntlm_response_kind rkind,
    const uint8_t base[16], const uint8_t server_challenge[8],
    const struct ntlm_exchange *ex, bool *mic_checked, char *err, size_t errlen)
{
  uint8_t kx[16];
  uint8_t export[16];
  uint8_t mic[16];
  enum ntlm_result result = NTLM_OK;

  *mic_checked = false;
  ntlm__kxkey(rkind, base, server_challenge, auth->lm_response, kx);
  if(auth->flags & NTLM_NEGOTIATE_KEY_EXCH) {
    if(auth->session_key_len != 16) {
      ntlm__seterr(err, errlen,
                   "NTLM server: KEY_EXCH is set but the "
                   "EncryptedRandomSessionKey has %zu bytes, not 16",
                   auth->session_key_len);
      result = NTLM_ERR_BAD_PROOF;
      goto out;
    }
    ntlm__rc4_16(kx, auth->session_key, export);
  }
  else
    memcpy(export, kx, 16);
  if(auth->has_mic && ex) {
    if(!ex->negotiate || !ex->challenge || !ex->authenticate ||
       ex->authenticate_len <
           NTLM__AUTH_HEADER + NTLM__VERSION_LEN + NTLM__MIC_LEN) {
      ntlm__seterr(err, errlen,
                   "NTLM server: the AUTHENTICATE carries a MIC but the "
                   "NEGOTIATE and CHALLENGE it covers are not at hand");
      result = NTLM_ERR_ARG;
      goto out;
    }
    ntlm__mic(export, ex, ex->authenticate, ex->authenticate_len, mic);
    if(!memeql_sec(mic, auth->mic, sizeof(mic))) {
      ntlm__seterr(err, errlen,
                   "NTLM server: the MIC of %.100s\\%.100s does not match "
                   "the three messages (altered in transit, or computed "
                   "with another key)",
                   auth->domain ? auth->domain : "", auth->user);
      result = NTLM_ERR_BAD_PROOF;
    }
    *mic_checked = !result;
  }
out:
  explicit_bzero(kx, sizeof(kx));
  explicit_bzero(export, sizeof(export));
  return result;
}

enum ntlm_result ntlm_server_verify_ex(
    const struct ntlm_message *auth, const struct ntlm_exchange *exchange,
    const uint8_t server_challenge[8], ntlm_password_fn lookup,
    void *lookup_ctx, struct ntlm_identity *who, char *err, size_t errlen)
{
  const char *domain;
  const char *password;
  enum ntlm__kind kind;
  enum ntlm_response_kind rkind = NTLM_RESPONSE_V2;
  uint8_t key[16];
  uint8_t v2key[16];
  uint8_t expect[24];
  uint8_t base[16]; /* SessionBaseKey */
  bool match = false;
  bool mic_checked = false;
  enum ntlm_result result;

  if(!auth || !server_challenge || !lookup) {
    ntlm__seterr(err, errlen,
                 "NTLM server: ntlm_server_verify needs a "
                 "message, a challenge and a password lookup");
    return NTLM_ERR_ARG;
  }
  if(auth->type != NTLM_TYPE_AUTHENTICATE) {
    ntlm__seterr(err, errlen,
                 "NTLM server: expected a type 3 AUTHENTICATE, got type %d",
                 (int)auth->type);
    return NTLM_ERR_TYPE;
  }
  kind = ntlm__kind_of(auth);
  domain = auth->domain ? auth->domain : "";
  if(kind == NTLM__KIND_ANONYMOUS || (auth->flags & NTLM_NEGOTIATE_ANONYMOUS)) {
    ntlm__seterr(err, errlen,
                 "NTLM server: anonymous authentication is "
                 "refused; the client must send a user name and password");
    return NTLM_ERR_BAD_PROOF;
  }
  if(!auth->user) {
    ntlm__seterr(err, errlen,
                 "NTLM server: the AUTHENTICATE message has no "
                 "user name");
    return NTLM_ERR_BAD_PROOF;
  }
  password = lookup(lookup_ctx, domain, auth->user);
  if(!password) {
    ntlm__seterr(err, errlen, "NTLM server: unknown user %.100s\\%.100s",
                 domain, auth->user);
    return NTLM_ERR_UNKNOWN_USER;
  }

  switch(kind) {
  case NTLM__KIND_V2:
    rkind = NTLM_RESPONSE_V2;
    /* NTOWFv2 takes the domain as the client typed it: the proof is over
     * the client's spelling, even though the lookup ignored case. */
    result = ntlm_ntowf_v2(password, auth->user, domain, v2key);
    if(!result) {
      ntlm__hmac2(v2key, server_challenge, 8, auth->nt_response + 16,
                  auth->nt_response_len - 16, expect);
      match = memeql_sec(expect, auth->nt_response, 16) != 0;
      ntlm__hmac2(v2key, auth->nt_response, 16, NULL, 0, base);
    }
    break;
  case NTLM__KIND_V1:
    rkind = NTLM_RESPONSE_V1;
    result = ntlm_nt_hash(password, key);
    if(!result) {
      ntlm_desl(key, server_challenge, expect);
      match = memeql_sec(expect, auth->nt_response, 24) != 0;
      ntlm_v1_session_base_key(key, base);
    }
    break;
  case NTLM__KIND_V1_ESS:
    rkind = NTLM_RESPONSE_V1_ESS;
    result = ntlm_nt_hash(password, key);
    if(!result) {
      ntlm__v1_ess_response(key, server_challenge, auth->lm_response, expect);
      match = memeql_sec(expect, auth->nt_response, 24) != 0;
      ntlm_v1_session_base_key(key, base);
    }
    break;
  case NTLM__KIND_ANONYMOUS:
  case NTLM__KIND_MALFORMED:
  default:
    ntlm__seterr(err, errlen,
                 "NTLM server: the %zu-byte NT response of %.100s\\%.100s is "
                 "neither NTLMv1 (24 bytes) nor NTLMv2 (%d or more)",
                 auth->nt_response_len, domain, auth->user,
                 NTLM__V2_MIN_RESPONSE);
    return NTLM_ERR_BAD_PROOF;
  }
  explicit_bzero(key, sizeof(key));
  explicit_bzero(v2key, sizeof(v2key));
  explicit_bzero(expect, sizeof(expect));

  if(result) {
    /* The stored password itself would not convert: say so without
     * showing it. */
    ntlm__seterr(err, errlen,
                 "NTLM server: the stored password of %.100s\\%.100s cannot "
                 "be used (%s); fix it in the user store",
                 domain, auth->user, ntlm_strerror(result));
    return result;
  }
  if(!match) {
    ntlm__seterr(err, errlen,
                 "NTLM server: the %s response of %.100s\\%.100s does not "
                 "prove its password (wrong password, or an answer to "
                 "another challenge)",
                 ntlm_response_kind_name(rkind), domain, auth->user);
    explicit_bzero(base, sizeof(base));
    return NTLM_ERR_BAD_PROOF;
  }
  result = ntlm__server_keys(auth, rkind, base, server_challenge, exchange,
                             &mic_checked, err, errlen);
  explicit_bzero(base, sizeof(base));
  if(result)
    return result;
  if(who) {
    memset(who, 0, sizeof(*who));
    snprintf(who->domain, sizeof(who->domain), "%s", domain);
    snprintf(who->user, sizeof(who->user), "%s", auth->user);
    snprintf(who->workstation, sizeof(who->workstation), "%s",
             auth->workstation ? auth->workstation : "");
    who->kind = rkind;
    who->mic_checked = mic_checked;
    who->key_exchanged = (auth->flags & NTLM_NEGOTIATE_KEY_EXCH) != 0;
  }
  return NTLM_OK;
}
