/*
 * kb_auth.h - names what an Authorization / WWW-Authenticate header
 * carries, for traces and evidence: the one mapping from ntlm/'s header
 * grammar (ntlm_header_peek) to enum kb_auth, used by the listener, the
 * client and Exchange alike so that all three name a header the same way.
 */
#ifndef KB_AUTH_H
#define KB_AUTH_H

#include <stddef.h>

#include "common/kb_env.h"

/* Classifies the len bytes of value (need not be NUL-terminated; NULL:
 * the header is absent). Never fails: whatever is not an NTLMSSP message,
 * a scheme alone or a SPNEGO token is KB_AUTH_OTHER. */
enum kb_auth kb_auth_classify(const char *value, size_t len);

#endif /* KB_AUTH_H */
