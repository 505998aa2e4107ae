/*
 * ntlm_int.h - internal to ntlm/: the wire constants and the helpers the
 * library's files share (byte order, error lines, strings, AV pairs, the
 * response kind of an AUTHENTICATE). The primitives are in ntlm_core.h;
 * callers outside ntlm/ use ntlm.h.
 */
#ifndef NTLM_INT_H
#define NTLM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ntlm/ntlm.h"

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
  NTLM__AV_TIMESTAMP = 7,
  NTLM__AV_CHANNEL_BINDINGS = 10
};

#define NTLM__AV_FLAG_MIC 0x00000002u
#define NTLM__TARGET_TYPE_SHARE 0x00040000u

/* The NTLMv2 blob ahead of the AV pairs: RespType, HiRespType, Reserved1,
 * Reserved2, TimeStamp, ChallengeFromClient, Reserved3. */
#define NTLM__V2_BLOB_HEADER 28
#define NTLM__V2_MIN_RESPONSE (16 + NTLM__V2_BLOB_HEADER)

/* "NTLMSSP\0", the first 8 bytes of every message (ntlm.c). */
extern const uint8_t ntlm__signature[8];

/* ---- ntlm.c: shared small pieces ----------------------------------------- */

/* Writes one formatted line into err when the caller gave a buffer. */
void ntlm__seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Zeroes and frees a byte string that may have held key material. */
void ntlm__wipe_free(struct ntlm_bytes *b);

/* Little-endian reads and writes of the wire's 16-, 32- and 64-bit
 * fields. None of them can fail. */
static inline uint16_t ntlm__get16(const uint8_t *p)
{
  return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t ntlm__get32(const uint8_t *p)
{
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

static inline uint64_t ntlm__get64(const uint8_t *p)
{
  return (uint64_t)ntlm__get32(p) | ((uint64_t)ntlm__get32(p + 4) << 32);
}

static inline void ntlm__put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static inline void ntlm__put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static inline void ntlm__put64(uint8_t *p, uint64_t v)
{
  ntlm__put32(p, (uint32_t)v);
  ntlm__put32(p + 4, (uint32_t)(v >> 32));
}

/* ---- strings.c: UTF-8 to and from the wire ------------------------------- */

/* UTF-8 s as UTF-16LE (upper-cased when upper) in a malloc'd out. */
enum ntlm_result ntlm__to_utf16(const char *s, bool upper,
                                struct ntlm_bytes *out);
/* UTF-8 s as OEM (Latin-1) bytes, '?' for what Latin-1 lacks when lossy. */
enum ntlm_result ntlm__to_oem(const char *s, bool upper, bool lossy,
                              struct ntlm_bytes *out);
/* len bytes of a message's UTF-16LE as a malloc'd UTF-8 string. */
enum ntlm_result ntlm__from_utf16(const uint8_t *p, size_t len, char **out,
                                  const char **why);
/* len bytes of a message's OEM (Latin-1) as a malloc'd UTF-8 string. */
enum ntlm_result ntlm__from_oem(const uint8_t *p, size_t len, char **out,
                                const char **why);

/* ---- avpairs.c: the AV_PAIR lists of target info ------------------------- */

/* An AV list being built, bounded like everything else by the largest
 * message. */
struct ntlm__avbuf {
  uint8_t data[NTLM_MAX_MESSAGE];
  size_t len;
};

/* Finds AV pair id in ti[0..len) before MsvAvEOL. */
bool ntlm__av_find(const uint8_t *ti, size_t len, uint16_t id,
                   const uint8_t **val, size_t *vlen);
/* The offset of the first pair that does not fit in ti[0..len), or len. */
size_t ntlm__av_bad_at(const uint8_t *ti, size_t len);
/* Appends one AV pair to b. */
enum ntlm_result ntlm__av_put(struct ntlm__avbuf *b, uint16_t id,
                              const uint8_t *val, size_t vlen);
/* Appends an AV pair holding the UTF-8 s as UTF-16LE; skips NULL and "". */
enum ntlm_result ntlm__av_put_str(struct ntlm__avbuf *b, uint16_t id,
                                  const char *s);
/* Copies ti into b with MsvAvFlags carrying the MIC bit when mic and
 * MsvAvChannelBindings = cbt when cbt is non-NULL. */
enum ntlm_result ntlm__av_for_client(const uint8_t *ti, size_t len, bool mic,
                                     const uint8_t *cbt, struct ntlm__avbuf *b);

/* ---- decode.c: what a decoded AUTHENTICATE carries ----------------------- */

/* What an AUTHENTICATE's responses are. */
enum ntlm__kind {
  NTLM__KIND_ANONYMOUS,
  NTLM__KIND_V1,
  NTLM__KIND_V1_ESS,
  NTLM__KIND_V2,
  NTLM__KIND_MALFORMED
};

/* Classifies an AUTHENTICATE by the lengths of its responses. */
enum ntlm__kind ntlm__kind_of(const struct ntlm_message *m);
/* The same with the NegotiateFlags that decide it given: a server passes
 * what its CHALLENGE agreed, which decides NTLMv1 against NTLMv1-ESS
 * (MS-NLMP 3.2.5.1.2: the server computes with its own NegFlg). */
enum ntlm__kind ntlm__kind_with(const struct ntlm_message *m, uint32_t flags);

#endif /* NTLM_INT_H */
