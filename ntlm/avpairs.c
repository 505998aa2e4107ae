/*
 * avpairs.c - AV_PAIR lists (MS-NLMP 2.2.2.1), the target info of a
 * CHALLENGE and of an NTLMv2 response: finding a pair, checking a list,
 * and building one.
 */
#include "ntlm_int.h"

#include <string.h>

/* Finds AV pair id in the list ti[0..len). Returns true with *val and *vlen set
 * when found before MsvAvEOL; false when absent or when the list is
 * malformed (a pair running past the end). */
bool ntlm__av_find(const uint8_t *ti, size_t len, uint16_t id,
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
size_t ntlm__av_bad_at(const uint8_t *ti, size_t len)
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

/* Appends one AV pair. NTLM_ERR_TOO_BIG when it does not fit. */
enum ntlm_result ntlm__av_put(struct ntlm__avbuf *b, uint16_t id,
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
enum ntlm_result ntlm__av_put_str(struct ntlm__avbuf *b, uint16_t id,
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

/* Copies the AV list ti into b for a client's NTLMv2 blob (MS-NLMP
 * 3.1.5.1.2): with mic, MsvAvFlags carries the MIC bit (added, or OR-ed
 * into one already there); with cbt (16 bytes), MsvAvChannelBindings
 * holds it (after MsvAvFlags, as Windows writes it; one the server sent is
 * replaced); then MsvAvEOL. */
enum ntlm_result ntlm__av_for_client(const uint8_t *ti, size_t len, bool mic,
                                     const uint8_t *cbt, struct ntlm__avbuf *b)
{
  uint32_t flags = mic ? NTLM__AV_FLAG_MIC : 0;
  bool has_flags = mic;
  size_t pos = 0;
  uint8_t v[4];
  enum ntlm_result result = NTLM_OK;

  b->len = 0;
  while(ti && !result && len - pos >= 4) {
    uint16_t aid = ntlm__get16(ti + pos);
    size_t alen = ntlm__get16(ti + pos + 2);
    if(aid == NTLM__AV_EOL || len - pos - 4 < alen)
      break;
    if(aid == NTLM__AV_FLAGS && alen == 4) {
      flags |= ntlm__get32(ti + pos + 4);
      has_flags = true;
    }
    else if(aid != NTLM__AV_CHANNEL_BINDINGS || !cbt)
      result = ntlm__av_put(b, aid, ti + pos + 4, alen);
    pos += 4 + alen;
  }
  ntlm__put32(v, flags);
  if(!result && has_flags)
    result = ntlm__av_put(b, NTLM__AV_FLAGS, v, sizeof(v));
  if(!result && cbt)
    result = ntlm__av_put(b, NTLM__AV_CHANNEL_BINDINGS, cbt, 16);
  if(!result)
    result = ntlm__av_put(b, NTLM__AV_EOL, NULL, 0);
  return result;
}
