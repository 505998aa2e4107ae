/*
 * kb_auth.c - enum kb_auth from ntlm/'s header grammar.
 */
#include "common/kb_auth.h"

#include "ntlm/ntlm.h"

enum kb_auth kb_auth_classify(const char *value, size_t len)
{
  struct ntlm_header_info info;

  ntlm_header_peek(value, len, &info);
  switch(info.kind) {
  case NTLM_TOKEN_ABSENT:
    return KB_AUTH_NONE;
  case NTLM_TOKEN_NONE:
    return info.scheme == NTLM_SCHEME_NTLM ? KB_AUTH_NTLM_BARE
                                           : KB_AUTH_NEGOTIATE_BARE;
  case NTLM_TOKEN_NTLMSSP:
    switch(info.type) {
    case NTLM_TYPE_NEGOTIATE:
      return KB_AUTH_NTLM_NEGOTIATE;
    case NTLM_TYPE_CHALLENGE:
      return KB_AUTH_NTLM_CHALLENGE;
    case NTLM_TYPE_AUTHENTICATE:
      return KB_AUTH_NTLM_AUTHENTICATE;
    case NTLM_TYPE_NONE:
      break;
    }
    return KB_AUTH_OTHER;
  case NTLM_TOKEN_SPNEGO:
    return KB_AUTH_SPNEGO;
  case NTLM_TOKEN_FOREIGN:
  case NTLM_TOKEN_BAD_BASE64:
  case NTLM_TOKEN_OTHER_SCHEME:
    break;
  }
  return KB_AUTH_OTHER;
}
