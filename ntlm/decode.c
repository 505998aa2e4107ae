/*
 * decode.c - reading the three messages (MS-NLMP 2.2.1) into struct
 * ntlm_message, and what kind of response an AUTHENTICATE carries.
 *
 * Decoding reads a message only through ntlm__field(), which checks every
 * offset and length against the message before a byte is touched, so no
 * input can make it read outside the buffer it was given.
 */
#include "ntlm_int.h"

#include <stdlib.h>
#include <string.h>

/* A message being decoded. */
struct ntlm__reader {
  const uint8_t *msg;
  size_t len;
  unsigned type;
  size_t header; /* fixed header size: payload may not start before it */
  size_t lowest; /* lowest offset of a non-empty payload field so far */
  char *err;
  size_t errlen;
  enum ntlm_charset charset; /* an AUTHENTICATE's strings */
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
  /* A server reads the strings in the character set its CHALLENGE agreed
   * (r->charset): some clients write a fixed NegotiateFlags word here that
   * says UNICODE whatever they negotiated (ntlm_decode_as). */
  unicode = r->charset == NTLM_CHARSET_FLAGGED
                ? (m->flags & NTLM_NEGOTIATE_UNICODE) != 0
                : r->charset == NTLM_CHARSET_UNICODE;
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
  return ntlm_decode_as(msg, len, NTLM_CHARSET_FLAGGED, out, err, errlen);
}

enum ntlm_charset ntlm_challenge_charset(const uint8_t *msg, size_t len)
{
  if(ntlm_peek_type(msg, len) != NTLM_TYPE_CHALLENGE || len < 24)
    return NTLM_CHARSET_FLAGGED;
  return (ntlm__get32(msg + 20) & NTLM_NEGOTIATE_UNICODE) ? NTLM_CHARSET_UNICODE
                                                          : NTLM_CHARSET_OEM;
}

enum ntlm_result ntlm_decode_as(const uint8_t *msg, size_t len,
                                enum ntlm_charset charset,
                                struct ntlm_message *out, char *err,
                                size_t errlen)
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
  r.charset = charset;
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

/* Classifies an AUTHENTICATE by its responses (MS-NLMP 3.2.5.1.2, 3.3):
 * an empty NT response and an LM response of at most one byte is
 * anonymous; 24 bytes is NTLMv1, with a client challenge when ESS was
 * negotiated; 44 bytes or more is NTLMv2; anything else is malformed. */
enum ntlm__kind ntlm__kind_of(const struct ntlm_message *m)
{
  return ntlm__kind_with(m, m->flags);
}

enum ntlm__kind ntlm__kind_with(const struct ntlm_message *m, uint32_t flags)
{
  if(!m->nt_response_len && m->lm_response_len <= 1)
    return NTLM__KIND_ANONYMOUS;
  if(m->nt_response_len == 24) {
    if((flags & NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY) &&
       m->lm_response_len >= 8)
      return NTLM__KIND_V1_ESS;
    return NTLM__KIND_V1;
  }
  if(m->nt_response_len >= NTLM__V2_MIN_RESPONSE)
    return NTLM__KIND_V2;
  return NTLM__KIND_MALFORMED;
}
