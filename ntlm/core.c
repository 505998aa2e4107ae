/*
 * core.c - the MS-NLMP primitives under the messages (ntlm_core.h): the
 * one-way functions, DESL, the NTLMv1-ESS and NTLMv2 responses, and the
 * session security keys: KeyExchangeKey, RC4K of the random session key
 * and the MIC. Hashes, HMAC, DES and RC4 are nettle's; this file only
 * lays out bytes and expands DES keys from 7 to 8 bytes.
 */
#include "ntlm_core.h"
#include "ntlm_int.h"

#include <nettle/arcfour.h>
#include <nettle/des.h>
#include <nettle/hmac.h>
#include <nettle/md4.h>
#include <nettle/md5.h>
#include <stdlib.h>
#include <string.h>

/* Encrypts one 8-byte block with DES under a 56-bit key given as 7 bytes,
 * spread over DES's 8 key bytes 7 bits at a time (MS-NLMP 6, "DES"). The
 * low bit of each key byte is parity, which nettle ignores. This function
 * can't fail. */
static void ntlm__des7(const uint8_t key7[7], const uint8_t in[8],
                       uint8_t out[8])
{
  uint8_t key[DES_KEY_SIZE];
  struct des_ctx ctx;

  key[0] = key7[0];
  key[1] = (uint8_t)((key7[0] << 7) | (key7[1] >> 1));
  key[2] = (uint8_t)((key7[1] << 6) | (key7[2] >> 2));
  key[3] = (uint8_t)((key7[2] << 5) | (key7[3] >> 3));
  key[4] = (uint8_t)((key7[3] << 4) | (key7[4] >> 4));
  key[5] = (uint8_t)((key7[4] << 3) | (key7[5] >> 5));
  key[6] = (uint8_t)((key7[5] << 2) | (key7[6] >> 6));
  key[7] = (uint8_t)(key7[6] << 1);
  /* des_set_key returns 0 for DES's weak keys but schedules them anyway.
   * NTLM must encrypt under whatever the password gives (the LM key of an
   * empty password is weak), so the verdict is deliberately ignored. */
  (void)des_set_key(&ctx, key);
  des_encrypt(&ctx, DES_BLOCK_SIZE, out, in);
  explicit_bzero(&ctx, sizeof(ctx));
  explicit_bzero(key, sizeof(key));
}

void ntlm_desl(const uint8_t key[16], const uint8_t data[8], uint8_t out[24])
{
  uint8_t k3[7] = {0};

  if(!key || !data || !out)
    return;
  k3[0] = key[14];
  k3[1] = key[15];
  ntlm__des7(key, data, out);
  ntlm__des7(key + 7, data, out + 8);
  ntlm__des7(k3, data, out + 16);
  explicit_bzero(k3, sizeof(k3));
}

enum ntlm_result ntlm_nt_hash(const char *password, uint8_t out[16])
{
  struct ntlm_bytes u = {0};
  struct md4_ctx md4;
  enum ntlm_result result;

  if(!password || !out)
    return NTLM_ERR_ARG;
  result = ntlm__to_utf16(password, false, &u);
  if(!result) {
    md4_init(&md4);
    md4_update(&md4, u.len, u.data);
    md4_digest(&md4, MD4_DIGEST_SIZE, out);
    explicit_bzero(&md4, sizeof(md4));
  }
  ntlm__wipe_free(&u);
  return result;
}

enum ntlm_result ntlm_lm_hash(const char *password, uint8_t out[16])
{
  static const uint8_t magic[8] = {'K', 'G', 'S', '!', '@', '#', '$', '%'};
  struct ntlm_bytes oem = {0};
  uint8_t key[14] = {0};
  enum ntlm_result result;

  if(!password || !out)
    return NTLM_ERR_ARG;
  result = ntlm__to_oem(password, true, true, &oem);
  if(!result) {
    /* LM keeps only the first 14 characters, zero-padded. */
    memcpy(key, oem.data, oem.len < sizeof(key) ? oem.len : sizeof(key));
    ntlm__des7(key, magic, out);
    ntlm__des7(key + 7, magic, out + 8);
  }
  explicit_bzero(key, sizeof(key));
  ntlm__wipe_free(&oem);
  return result;
}

enum ntlm_result ntlm_ntowf_v2(const char *password, const char *user,
                               const char *domain, uint8_t out[16])
{
  struct ntlm_bytes u = {0};
  struct ntlm_bytes d = {0};
  struct hmac_md5_ctx hmac;
  uint8_t nt[16];
  enum ntlm_result result;

  if(!password || !user || !out)
    return NTLM_ERR_ARG;
  result = ntlm_nt_hash(password, nt);
  if(!result)
    result = ntlm__to_utf16(user, true, &u);
  if(!result)
    result = ntlm__to_utf16(domain ? domain : "", false, &d);
  if(!result) {
    hmac_md5_set_key(&hmac, sizeof(nt), nt);
    hmac_md5_update(&hmac, u.len, u.data);
    hmac_md5_update(&hmac, d.len, d.data);
    hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, out);
    explicit_bzero(&hmac, sizeof(hmac));
  }
  explicit_bzero(nt, sizeof(nt));
  ntlm__wipe_free(&u);
  ntlm__wipe_free(&d);
  return result;
}

void ntlm_v1_session_base_key(const uint8_t nt_hash[16], uint8_t out[16])
{
  struct md4_ctx md4;

  if(!nt_hash || !out)
    return;
  md4_init(&md4);
  md4_update(&md4, 16, nt_hash);
  md4_digest(&md4, MD4_DIGEST_SIZE, out);
  explicit_bzero(&md4, sizeof(md4));
}

/* Returns HMAC_MD5(key, a || b) in out[16]. This function can't fail. */
void ntlm__hmac2(const uint8_t key[16], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen, uint8_t out[16])
{
  struct hmac_md5_ctx hmac;

  hmac_md5_set_key(&hmac, 16, key);
  hmac_md5_update(&hmac, alen, a);
  hmac_md5_update(&hmac, blen, b);
  hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, out);
  explicit_bzero(&hmac, sizeof(hmac));
}

enum ntlm_result
ntlm_v2_responses(const uint8_t ntowf_v2[16], const uint8_t server_challenge[8],
                  const uint8_t client_challenge[8], uint64_t timestamp,
                  const uint8_t *target_info, size_t target_info_len,
                  struct ntlm_bytes *nt_out, uint8_t lm_out[24],
                  uint8_t session_base_key[16])
{
  uint8_t *nt;
  uint8_t *temp;
  size_t temp_len;

  if(!ntowf_v2 || !server_challenge || !client_challenge || !nt_out ||
     !lm_out || (!target_info && target_info_len))
    return NTLM_ERR_ARG;
  nt_out->data = NULL;
  nt_out->len = 0;
  if(target_info_len > NTLM_MAX_MESSAGE)
    return NTLM_ERR_TOO_BIG;

  temp_len = NTLM__V2_BLOB_HEADER + target_info_len + 4;
  nt = calloc(1, 16 + temp_len);
  if(!nt)
    return NTLM_ERR_NOMEM;
  temp = nt + 16;
  temp[0] = 1; /* RespType */
  temp[1] = 1; /* HiRespType */
  ntlm__put64(temp + 8, timestamp);
  memcpy(temp + 16, client_challenge, 8);
  if(target_info_len)
    memcpy(temp + NTLM__V2_BLOB_HEADER, target_info, target_info_len);

  /* NTProofStr = HMAC_MD5(NTOWFv2, ServerChallenge || temp). */
  ntlm__hmac2(ntowf_v2, server_challenge, 8, temp, temp_len, nt);
  /* LMv2 = HMAC_MD5(NTOWFv2, ServerChallenge || ClientChallenge) ||
   * ClientChallenge. */
  ntlm__hmac2(ntowf_v2, server_challenge, 8, client_challenge, 8, lm_out);
  memcpy(lm_out + 16, client_challenge, 8);
  if(session_base_key) {
    struct hmac_md5_ctx hmac;
    hmac_md5_set_key(&hmac, 16, ntowf_v2);
    hmac_md5_update(&hmac, 16, nt);
    hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, session_base_key);
    explicit_bzero(&hmac, sizeof(hmac));
  }
  nt_out->data = nt;
  nt_out->len = 16 + temp_len;
  return NTLM_OK;
}

/* Computes the NTLMv1-with-client-challenge NT response (MS-NLMP 3.3.1):
 * DESL(NTOWFv1, MD5(ServerChallenge || ClientChallenge)[0..7]). This
 * function can't fail. */
void ntlm__v1_ess_response(const uint8_t nt_hash[16],
                           const uint8_t server_challenge[8],
                           const uint8_t client_challenge[8], uint8_t out[24])
{
  struct md5_ctx md5;
  uint8_t digest[MD5_DIGEST_SIZE];

  md5_init(&md5);
  md5_update(&md5, 8, server_challenge);
  md5_update(&md5, 8, client_challenge);
  md5_digest(&md5, sizeof(digest), digest);
  ntlm_desl(nt_hash, digest, out);
}

/* KeyExchangeKey (MS-NLMP 3.4.5.1) from the SessionBaseKey: for NTLMv1
 * with ESS, HMAC_MD5(SessionBaseKey, ServerChallenge || LmResponse[0..7]);
 * otherwise (NTLMv2, and NTLMv1 since LM_KEY and NON_NT_SESSION_KEY are
 * never granted here) the SessionBaseKey itself. Can't fail. */
void ntlm__kxkey(enum ntlm_response_kind kind,
                 const uint8_t session_base_key[16],
                 const uint8_t server_challenge[8], const uint8_t *lm_response,
                 uint8_t out[16])
{
  if(kind == NTLM_RESPONSE_V1_ESS)
    ntlm__hmac2(session_base_key, server_challenge, 8, lm_response, 8, out);
  else
    memcpy(out, session_base_key, 16);
}

/* RC4K(key, data[16]) into out[16] (MS-NLMP 6): encrypts and decrypts the
 * random session key under the KeyExchangeKey. Can't fail. */
void ntlm__rc4_16(const uint8_t key[16], const uint8_t data[16],
                  uint8_t out[16])
{
  struct arcfour_ctx rc4;

  arcfour_set_key(&rc4, 16, key);
  arcfour_crypt(&rc4, 16, out, data);
  explicit_bzero(&rc4, sizeof(rc4));
}

/* MIC = HMAC_MD5(ExportedSessionKey, NEGOTIATE || CHALLENGE ||
 * AUTHENTICATE) with the AUTHENTICATE's MIC field taken as zero (MS-NLMP
 * 3.1.5.1.2). auth is the encoded AUTHENTICATE with a MIC slot at offset
 * 72 (auth_len covers it); out may be that slot. Can't fail. */
void ntlm__mic(const uint8_t key[16], const struct ntlm_exchange *ex,
               const uint8_t *auth, size_t auth_len, uint8_t out[16])
{
  static const uint8_t zero[NTLM__MIC_LEN];
  const size_t at = NTLM__AUTH_HEADER + NTLM__VERSION_LEN;
  struct hmac_md5_ctx hmac;

  hmac_md5_set_key(&hmac, 16, key);
  hmac_md5_update(&hmac, ex->negotiate_len, ex->negotiate);
  hmac_md5_update(&hmac, ex->challenge_len, ex->challenge);
  hmac_md5_update(&hmac, at, auth);
  hmac_md5_update(&hmac, NTLM__MIC_LEN, zero);
  hmac_md5_update(&hmac, auth_len - at - NTLM__MIC_LEN,
                  auth + at + NTLM__MIC_LEN);
  hmac_md5_digest(&hmac, MD5_DIGEST_SIZE, out);
  explicit_bzero(&hmac, sizeof(hmac));
}
