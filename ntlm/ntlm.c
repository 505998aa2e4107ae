/*
 * ntlm.c - what every part of the library shares: the names of results and
 * response kinds, owned byte strings, FILETIME, the NTLMSSP signature and
 * the writer of one-line errors.
 */
#include "ntlm/ntlm.h"
#include "ntlm_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const uint8_t ntlm__signature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};

/* Writes one formatted line into err when the caller gave a buffer. */
void ntlm__seterr(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if(!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Zeroes and frees a byte string that may have held key material. */
void ntlm__wipe_free(struct ntlm_bytes *b)
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
