/*
 * kbt_ntlm.h - NTLM as a test client speaks it (ntlm.h): Communicator's
 * type 1, the type 2 read back from a 401, a type 3 answering it, and the
 * legs of a handshake over a raw connection (rc.h), for any suite that
 * authenticates by hand.
 */
#ifndef TESTS_KBT_NTLM_H
#define TESTS_KBT_NTLM_H

#include "ntlm/ntlm.h"
#include "rc.h"

/* The EWS path Communicator POSTs to. */
#define KBT_EWS "/EWS/Exchange.asmx"

/* Returns "<scheme> <type 1>" with Communicator's flags, an Authorization
 * value (caller frees). */
char *kbt_ntlm_type1(enum ntlm_scheme scheme);

/* Decodes the type 2 in the WWW-Authenticate value www_auth, which must
 * carry scheme, into *msg (caller frees it with ntlm_message_free). */
void kbt_ntlm_challenge(const char *www_auth, enum ntlm_scheme scheme,
                        struct ntlm_message *msg);

/* Asserts that r is a 401 carrying an NTLM type 2 and decodes it into
 * *msg (caller frees it). */
void kbt_ntlm_challenge_of(const struct rc_resp *r, struct ntlm_message *msg);

/* Returns the raw NTLMv2 type 3 answering challenge as FABRIKAM\user from
 * workstation COMMUNICATOR, client challenge 0xaa... (caller frees with
 * ntlm_bytes_free). */
struct ntlm_bytes kbt_ntlm_type3_raw(const struct ntlm_message *challenge,
                                     const char *user, const char *password);

/* Returns "<scheme> <base64 of the len bytes at raw>" (caller frees). */
char *kbt_ntlm_header(enum ntlm_scheme scheme, const uint8_t *raw, size_t len);

/* Returns "<scheme> <type 3>" answering challenge (caller frees). */
char *kbt_ntlm_type3(const struct ntlm_message *challenge,
                     enum ntlm_scheme scheme, const char *user,
                     const char *password);

/* Sends Communicator's type 1 leg (a body-less POST to KBT_EWS) on c and
 * decodes the type 2 of its 401 into *chal (caller frees it). */
void kbt_ntlm_leg1(struct rc *c, struct ntlm_message *chal);

/* Runs a whole Communicator POST on c as FABRIKAM\user: the type 1 leg,
 * then the type 3 with the GetUserOofSettings body (kbt_oof_body), whose
 * answer, when 200, must be Exchange's. Returns the final status. */
int kbt_ntlm_handshake(struct rc *c, const char *user, const char *password);

#endif /* TESTS_KBT_NTLM_H */
