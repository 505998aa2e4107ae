/*
 * encode.c - writing the three messages (MS-NLMP 2.2.1) from struct
 * ntlm_message, laid out as Windows lays them out.
 */
#include "ntlm_int.h"

#include <stdlib.h>
#include <string.h>

/* Writes v as the 8-byte VERSION at p. */
static void ntlm__put_version(uint8_t *p, const struct ntlm_version *v)
{
  p[0] = v->major;
  p[1] = v->minor;
  ntlm__put16(p + 2, v->build);
  p[4] = p[5] = p[6] = 0;
  p[7] = v->revision;
}

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

/* Encodes a NEGOTIATE (MS-NLMP 2.2.1.1) into *out. Its strings are OEM
 * whatever the flags say. */
static enum ntlm_result ntlm__encode_negotiate(const struct ntlm_message *msg,
                                               struct ntlm_bytes *out,
                                               char *err, size_t errlen)
{
  struct ntlm_bytes s1 = {0}, s2 = {0};
  struct ntlm__out_field f[2];
  size_t header;
  enum ntlm_result result;

  result =
      ntlm__wire_string(1, "DomainName", msg->domain, false, &s1, err, errlen);
  if(!result)
    result = ntlm__wire_string(1, "WorkstationName", msg->workstation, false,
                               &s2, err, errlen);
  if(!result) {
    header = NTLM__NEG_HEADER + (msg->has_version ? NTLM__VERSION_LEN : 0);
    f[0] = (struct ntlm__out_field){16, s1.data, s1.len, "DomainName"};
    f[1] = (struct ntlm__out_field){24, s2.data, s2.len, "WorkstationName"};
    /* Windows leaves the offsets of empty NEGOTIATE fields at 0; the support
     * case's token shows it. */
    result =
        ntlm__layout(NTLM_TYPE_NEGOTIATE, header, f, 2, true, out, err, errlen);
  }
  if(!result) {
    ntlm__put32(out->data + 12, msg->flags);
    if(msg->has_version)
      ntlm__put_version(out->data + NTLM__NEG_HEADER, &msg->version);
  }
  ntlm_bytes_free(&s1);
  ntlm_bytes_free(&s2);
  return result;
}

/* Encodes a CHALLENGE (MS-NLMP 2.2.1.2) into *out. */
static enum ntlm_result ntlm__encode_challenge(const struct ntlm_message *msg,
                                               struct ntlm_bytes *out,
                                               char *err, size_t errlen)
{
  struct ntlm_bytes s1 = {0};
  struct ntlm__out_field f[2];
  bool unicode = (msg->flags & NTLM_NEGOTIATE_UNICODE) != 0;
  size_t header;
  enum ntlm_result result;

  result = ntlm__wire_string(2, "TargetName", msg->target_name, unicode, &s1,
                             err, errlen);
  if(!result) {
    header = NTLM__CHAL_HEADER + (msg->has_version ? NTLM__VERSION_LEN : 0);
    f[0] = (struct ntlm__out_field){12, s1.data, s1.len, "TargetName"};
    f[1] = (struct ntlm__out_field){40, msg->target_info, msg->target_info_len,
                                    "TargetInfo"};
    result = ntlm__layout(NTLM_TYPE_CHALLENGE, header, f, 2, false, out, err,
                          errlen);
  }
  if(!result) {
    ntlm__put32(out->data + 20, msg->flags);
    memcpy(out->data + 24, msg->server_challenge, 8);
    if(msg->has_version)
      ntlm__put_version(out->data + NTLM__CHAL_HEADER, &msg->version);
  }
  ntlm_bytes_free(&s1);
  return result;
}

/* Encodes an AUTHENTICATE (MS-NLMP 2.2.1.3) into *out, with the MIC when
 * msg has one. */
static enum ntlm_result
ntlm__encode_authenticate(const struct ntlm_message *msg,
                          struct ntlm_bytes *out, char *err, size_t errlen)
{
  struct ntlm_bytes s1 = {0}, s2 = {0}, s3 = {0};
  struct ntlm__out_field f[6];
  bool unicode = (msg->flags & NTLM_NEGOTIATE_UNICODE) != 0;
  size_t header;
  enum ntlm_result result;

  result = ntlm__wire_string(3, "DomainName", msg->domain, unicode, &s1, err,
                             errlen);
  if(!result)
    result =
        ntlm__wire_string(3, "UserName", msg->user, unicode, &s2, err, errlen);
  if(!result)
    result = ntlm__wire_string(3, "Workstation", msg->workstation, unicode, &s3,
                               err, errlen);
  if(!result) {
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
  }
  if(!result) {
    ntlm__put32(out->data + 60, msg->flags);
    if(msg->has_version)
      ntlm__put_version(out->data + NTLM__AUTH_HEADER, &msg->version);
    if(msg->has_mic)
      memcpy(out->data + NTLM__AUTH_HEADER + NTLM__VERSION_LEN, msg->mic,
             NTLM__MIC_LEN);
  }
  ntlm_bytes_free(&s1);
  ntlm_bytes_free(&s2);
  ntlm_bytes_free(&s3);
  return result;
}

enum ntlm_result ntlm_encode(const struct ntlm_message *msg,
                             struct ntlm_bytes *out, char *err, size_t errlen)
{
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
  switch(msg->type) {
  case NTLM_TYPE_NEGOTIATE:
    return ntlm__encode_negotiate(msg, out, err, errlen);
  case NTLM_TYPE_CHALLENGE:
    return ntlm__encode_challenge(msg, out, err, errlen);
  case NTLM_TYPE_AUTHENTICATE:
    return ntlm__encode_authenticate(msg, out, err, errlen);
  case NTLM_TYPE_NONE:
  default:
    break;
  }
  ntlm__seterr(err, errlen, "NTLM: cannot encode message type %d",
               (int)msg->type);
  return NTLM_ERR_TYPE;
}
