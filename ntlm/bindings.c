/*
 * bindings.c - channel bindings for Extended Protection: the
 * MsvAvChannelBindings value a client on TLS puts in its NTLMv2 blob
 * (MS-NLMP 2.2.2.1, the MD5 of RFC 2744's gss_channel_bindings_struct over
 * RFC 5929's tls-server-end-point data), and reading it back from a
 * response.
 */
#include "ntlm_int.h"

#include <nettle/md5.h>
#include <string.h>

void ntlm_channel_bindings(const uint8_t *app_data, size_t len, uint8_t out[16])
{
  /* initiator_addrtype, initiator_address.length, acceptor_addrtype,
   * acceptor_address.length (all zero: no addresses), then
   * application_data.length, little-endian as SSPI hashes it. */
  uint8_t head[20];
  struct md5_ctx md5;

  memset(head, 0, sizeof(head));
  ntlm__put32(head + 16, (uint32_t)len);
  md5_init(&md5);
  md5_update(&md5, sizeof(head), head);
  if(len)
    md5_update(&md5, len, app_data);
  md5_digest(&md5, 16, out);
}

void ntlm_tls_end_point_bindings(const uint8_t *hash, size_t hash_len,
                                 uint8_t out[16])
{
  static const char prefix[] = NTLM_TLS_SERVER_END_POINT;
  uint8_t data[sizeof(prefix) - 1 + 64];

  if(hash_len > 64)
    hash_len = 64;
  memcpy(data, prefix, sizeof(prefix) - 1);
  if(hash_len)
    memcpy(data + sizeof(prefix) - 1, hash, hash_len);
  ntlm_channel_bindings(data, sizeof(prefix) - 1 + hash_len, out);
}

bool ntlm_response_channel_bindings(const struct ntlm_message *auth,
                                    uint8_t out[16])
{
  const uint8_t *av;
  size_t avlen;
  size_t skip = 16 + NTLM__V2_BLOB_HEADER; /* NTProofStr, blob header */

  if(!auth || auth->type != NTLM_TYPE_AUTHENTICATE || !auth->nt_response ||
     auth->nt_response_len <= 24 || auth->nt_response_len < skip)
    return false;
  if(!ntlm__av_find(auth->nt_response + skip, auth->nt_response_len - skip,
                    NTLM__AV_CHANNEL_BINDINGS, &av, &avlen) ||
     avlen != 16)
    return false;
  memcpy(out, av, 16);
  return true;
}
