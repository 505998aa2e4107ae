/*
 * ntlm_core.h - the MS-NLMP primitives under the messages (core.c): one-way
 * functions, DESL, the NTLMv1-ESS and NTLMv2 responses and the session
 * security keys. Internal to ntlm/ (curl's curl_ntlm_core.h pattern):
 * callers outside ntlm/ use ntlm.h; the tests include this header for the
 * MS-NLMP 4.2 vectors.
 */
#ifndef NTLM_CORE_H
#define NTLM_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "ntlm/ntlm.h"

/* NTOWFv1 = MD4(UTF-16LE(password)). */
enum ntlm_result ntlm_nt_hash(const char *password, uint8_t out[16]);
/* LMOWFv1 = DES("KGS!@#$%") under the uppercased, 14-byte padded OEM
 * password. */
enum ntlm_result ntlm_lm_hash(const char *password, uint8_t out[16]);
/* NTOWFv2 = HMAC_MD5(NTOWFv1, UTF-16LE(UPPER(user) + domain)). */
enum ntlm_result ntlm_ntowf_v2(const char *password, const char *user,
                               const char *domain, uint8_t out[16]);
/* NTLMv1 SessionBaseKey = MD4(NTOWFv1) (MS-NLMP 3.3.1). */
void ntlm_v1_session_base_key(const uint8_t nt_hash[16], uint8_t out[16]);
/* DESL(key16, 8-byte data) -> 24 bytes (MS-NLMP 6). */
void ntlm_desl(const uint8_t key[16], const uint8_t data[8], uint8_t out[24]);

/* NTLMv2 responses (MS-NLMP 3.3.2). temp is the blob after the proof:
 * 0x01 0x01 0(6) timestamp(8) client_challenge(8) 0(4) target_info 0(4).
 * nt_out receives NTProofStr(16) + temp and is caller-freed; lm_out 24
 * bytes; session_base_key 16 bytes (may be NULL). */
enum ntlm_result
ntlm_v2_responses(const uint8_t ntowf_v2[16], const uint8_t server_challenge[8],
                  const uint8_t client_challenge[8], uint64_t timestamp,
                  const uint8_t *target_info, size_t target_info_len,
                  struct ntlm_bytes *nt_out, uint8_t lm_out[24],
                  uint8_t session_base_key[16]);

/* ---- core.c's helpers for the other files of ntlm/ ----------------------- */

/* HMAC_MD5(key, a || b) into out[16]. */
void ntlm__hmac2(const uint8_t key[16], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen, uint8_t out[16]);
/* The NTLMv1-ESS NT response: DESL(NTOWFv1, MD5(server || client)[0..7]). */
void ntlm__v1_ess_response(const uint8_t nt_hash[16],
                           const uint8_t server_challenge[8],
                           const uint8_t client_challenge[8], uint8_t out[24]);
/* KeyExchangeKey (MS-NLMP 3.4.5.1) from the SessionBaseKey. */
void ntlm__kxkey(enum ntlm_response_kind kind,
                 const uint8_t session_base_key[16],
                 const uint8_t server_challenge[8], const uint8_t *lm_response,
                 uint8_t out[16]);
/* RC4K(key, data[16]) into out[16]: the random session key's cipher. */
void ntlm__rc4_16(const uint8_t key[16], const uint8_t data[16],
                  uint8_t out[16]);
/* The MIC over ex's NEGOTIATE and CHALLENGE and the AUTHENTICATE auth. */
void ntlm__mic(const uint8_t key[16], const struct ntlm_exchange *ex,
               const uint8_t *auth, size_t auth_len, uint8_t out[16]);

#endif /* NTLM_CORE_H */
