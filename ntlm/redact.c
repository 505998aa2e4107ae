/*
 * redact.c - an AUTHENTICATE message with what an offline dictionary
 * attack on the password needs overwritten by a marker of the same length:
 * the LmChallengeResponse, the NTLMv2 NTProofStr (the whole response for
 * NTLMv1), the MIC and the EncryptedRandomSessionKey. The NTLMv2 blob
 * (client challenge, timestamp, target info), the names and the flags stay,
 * so the message still decodes and says who signed in, from where and how.
 */
#include "ntlm/ntlm.h"

#include <string.h>

#include "ntlm_int.h"

/* The bytes a redacted field holds instead of its own. */
#define NTLM_REDACTED "REDACTED"

/* Overwrites len bytes at p with the marker, repeated. */
static void ntlm__mark(uint8_t *p, size_t len)
{
  size_t i;

  for(i = 0; i < len; i++)
    p[i] = (uint8_t)NTLM_REDACTED[i % (sizeof(NTLM_REDACTED) - 1)];
}

/* Overwrites the first keep bytes (all when keep is 0) of the field whose
 * descriptor (Len, MaxLen, BufferOffset) is at byte at; ntlm_decode has
 * checked that the field lies inside the message. */
static void ntlm__mark_field(uint8_t *msg, size_t at, size_t keep)
{
  size_t len = ntlm__get16(msg + at);
  size_t off = ntlm__get32(msg + at + 4);

  ntlm__mark(msg + off, keep && keep < len ? keep : len);
}

enum ntlm_result ntlm_redact(uint8_t *msg, size_t len, bool *changed)
{
  struct ntlm_message m;
  enum ntlm_result r;

  *changed = false;
  if(ntlm_peek_type(msg, len) != NTLM_TYPE_AUTHENTICATE)
    return NTLM_OK;
  r = ntlm_decode(msg, len, &m, NULL, 0);
  if(r)
    return r;
  ntlm__mark_field(msg, 12, 0); /* LmChallengeResponse */
  /* NtChallengeResponse: an NTLMv2 one is NTProofStr + the blob. */
  ntlm__mark_field(msg, 20, m.nt_response_len > 24 ? 16 : 0);
  ntlm__mark_field(msg, 52, 0); /* EncryptedRandomSessionKey */
  if(m.has_mic)
    ntlm__mark(msg + 72, 16);
  *changed = true;
  ntlm_message_free(&m);
  return NTLM_OK;
}
