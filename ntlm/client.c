/*
 * client.c - the client side: Communicator's NEGOTIATE and the AUTHENTICATE
 * answering a CHALLENGE (NTLMv2, NTLMv1 or NTLMv1-ESS), with the random
 * session key and the MIC when asked.
 */
#include "ntlm_core.h"
#include "ntlm_int.h"

#include <stdlib.h>
#include <string.h>

/* What the simulated Communicator puts in its VERSION fields: it ran on
 * XP SP3 (the support case's token says 5.1.2600). */
static const struct ntlm_version ntlm__client_version = {5, 1, 2600, 15};

enum ntlm_result ntlm_client_negotiate(uint32_t flags, struct ntlm_bytes *out)
{
  struct ntlm_message m;

  if(!out)
    return NTLM_ERR_ARG;
  memset(&m, 0, sizeof(m));
  m.type = NTLM_TYPE_NEGOTIATE;
  m.flags = flags;
  if(flags & NTLM_NEGOTIATE_VERSION) {
    m.has_version = true;
    m.version = ntlm__client_version;
  }
  return ntlm_encode(&m, out, NULL, 0);
}

/* Returns the flags an AUTHENTICATE answering a CHALLENGE with chal_flags
 * carries: what the server offered, minus what only a server says (target
 * type) and key exchange unless this client does it (key_exch), with one
 * character set, and ESS set exactly when the response kind uses it so
 * that the server can tell NTLMv1 from NTLMv1-ESS. */
static uint32_t ntlm__auth_flags(uint32_t chal_flags,
                                 enum ntlm_response_kind kind, bool key_exch)
{
  uint32_t flags = chal_flags;

  /* A client answering with credentials is never anonymous, whatever a
   * challenge echoed; the rest are server-side flags. */
  flags &= ~(NTLM_TARGET_TYPE_DOMAIN | NTLM_TARGET_TYPE_SERVER |
             NTLM__TARGET_TYPE_SHARE | NTLM_NEGOTIATE_ANONYMOUS);
  if(!key_exch)
    flags &= ~NTLM_NEGOTIATE_KEY_EXCH;
  if(flags & NTLM_NEGOTIATE_UNICODE)
    flags &= ~NTLM_NEGOTIATE_OEM;
  else
    flags |= NTLM_NEGOTIATE_OEM;
  flags |= NTLM_NEGOTIATE_NTLM;
  if(kind == NTLM_RESPONSE_V1)
    flags &= ~NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY;
  else if(kind == NTLM_RESPONSE_V1_ESS)
    flags |= NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY;
  return flags;
}

uint32_t ntlm_client_flags(enum ntlm_response_kind kind)
{
  if(kind == NTLM_RESPONSE_V1)
    return NTLM_COMMUNICATOR_FLAGS & ~NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY;
  return NTLM_COMMUNICATOR_FLAGS;
}

enum ntlm_result ntlm_client_authenticate(const struct ntlm_client_creds *creds,
                                          const struct ntlm_message *challenge,
                                          const uint8_t client_challenge[8],
                                          uint64_t timestamp,
                                          struct ntlm_bytes *out, char *err,
                                          size_t errlen)
{
  struct ntlm_client_options opt;

  memset(&opt, 0, sizeof(opt));
  opt.client_challenge = client_challenge;
  opt.timestamp = timestamp;
  return ntlm_client_authenticate_ex(creds, challenge, &opt, out, NULL, err,
                                     errlen);
}

/* What an AUTHENTICATE is computed from and what it carries, handed
 * between the steps of ntlm_client_authenticate_ex. It holds key material
 * and is wiped at the end. */
struct ntlm__answer {
  const struct ntlm_client_creds *creds;
  const struct ntlm_message *challenge;
  const uint8_t *client_challenge;
  uint64_t timestamp;
  bool key_exch;
  bool mic;
  const uint8_t *cbt;     /* MsvAvChannelBindings, 16 bytes, or NULL */
  struct ntlm__avbuf *ti; /* target info with the MIC bit or the channel
                             bindings, when either is sent */
  struct ntlm_bytes nt;   /* NTLMv2 response */
  uint8_t nt1[24];        /* NTLMv1 or NTLMv1-ESS response */
  uint8_t lm[24];
  uint8_t key[16];    /* NTOWFv1, LMOWFv1 or NTOWFv2 */
  uint8_t base[16];   /* SessionBaseKey */
  uint8_t kx[16];     /* KeyExchangeKey */
  uint8_t export[16]; /* ExportedSessionKey */
  uint8_t enc[16];    /* EncryptedRandomSessionKey */
};

/* Checks that creds, challenge and opt can make an AUTHENTICATE: a user
 * and a password, a CHALLENGE, a known response kind, a client challenge
 * for the kinds that need one, and for a MIC an NTLMv2 response and the
 * messages it covers. Returns NTLM_OK, or NTLM_ERR_ARG / NTLM_ERR_TYPE
 * with a line in err. */
static enum ntlm_result
ntlm__client_check(const struct ntlm_client_creds *creds,
                   const struct ntlm_message *challenge,
                   const struct ntlm_client_options *opt,
                   const struct ntlm_bytes *out, char *err, size_t errlen)
{
  if(!creds || !challenge || !opt || !out || !creds->user || !creds->password) {
    ntlm__seterr(err, errlen,
                 "NTLM client: a user name and a password are "
                 "needed to answer a challenge");
    return NTLM_ERR_ARG;
  }
  if(challenge->type != NTLM_TYPE_CHALLENGE) {
    ntlm__seterr(err, errlen,
                 "NTLM client: expected a type 2 CHALLENGE to answer, got "
                 "type %d",
                 (int)challenge->type);
    return NTLM_ERR_TYPE;
  }
  if(creds->kind != NTLM_RESPONSE_V2 && creds->kind != NTLM_RESPONSE_V1 &&
     creds->kind != NTLM_RESPONSE_V1_ESS) {
    ntlm__seterr(err, errlen, "NTLM client: unknown response kind %d",
                 (int)creds->kind);
    return NTLM_ERR_ARG;
  }
  if(creds->kind != NTLM_RESPONSE_V1 && !opt->client_challenge) {
    ntlm__seterr(err, errlen,
                 "NTLM client: %s needs an 8-byte client "
                 "challenge",
                 ntlm_response_kind_name(creds->kind));
    return NTLM_ERR_ARG;
  }
  if(opt->mic && (creds->kind != NTLM_RESPONSE_V2 || !opt->exchange ||
                  !opt->exchange->negotiate || !opt->exchange->challenge)) {
    ntlm__seterr(err, errlen,
                 "NTLM client: a MIC needs an NTLMv2 response and the "
                 "NEGOTIATE and CHALLENGE as sent");
    return NTLM_ERR_ARG;
  }
  return NTLM_OK;
}

/* Computes the NTLMv2 and LMv2 responses and the SessionBaseKey into a
 * (MS-NLMP 3.3.2). The blob's timestamp is the caller's, else the
 * challenge's MsvAvTimestamp; its target info is the challenge's, with the
 * MIC bit in MsvAvFlags when a MIC is to be sent and MsvAvChannelBindings
 * when the caller gave them. Returns NTLM_OK or the first failure. */
static enum ntlm_result ntlm__client_v2(struct ntlm__answer *a)
{
  const struct ntlm_message *chal = a->challenge;
  const uint8_t *tinfo = chal->target_info;
  size_t tinfo_len = chal->target_info_len;
  const uint8_t *av;
  size_t avlen;
  enum ntlm_result result = NTLM_OK;

  if(!a->timestamp &&
     ntlm__av_find(tinfo, tinfo_len, NTLM__AV_TIMESTAMP, &av, &avlen) &&
     avlen == 8)
    a->timestamp = ntlm__get64(av);
  if(a->mic || a->cbt) {
    a->ti = malloc(sizeof(*a->ti));
    result = a->ti
                 ? ntlm__av_for_client(tinfo, tinfo_len, a->mic, a->cbt, a->ti)
                 : NTLM_ERR_NOMEM;
    if(!result) {
      tinfo = a->ti->data;
      tinfo_len = a->ti->len;
    }
  }
  if(!result)
    result = ntlm_ntowf_v2(a->creds->password, a->creds->user, a->creds->domain,
                           a->key);
  if(!result)
    result = ntlm_v2_responses(a->key, chal->server_challenge,
                               a->client_challenge, a->timestamp, tinfo,
                               tinfo_len, &a->nt, a->lm, a->base);
  /* MS-NLMP 3.1.5.1.2: when the server sent MsvAvTimestamp the client
   * sends Z(24) instead of the LMv2 response. */
  if(!result && ntlm__av_find(chal->target_info, chal->target_info_len,
                              NTLM__AV_TIMESTAMP, &av, &avlen))
    memset(a->lm, 0, sizeof(a->lm));
  return result;
}

/* Computes the NT and LM responses of the credentials' kind and the
 * SessionBaseKey into a. Returns NTLM_OK, or the failure with a line in
 * err. */
static enum ntlm_result ntlm__client_responses(struct ntlm__answer *a,
                                               char *err, size_t errlen)
{
  const struct ntlm_client_creds *creds = a->creds;
  const uint8_t *server_challenge = a->challenge->server_challenge;
  enum ntlm_result result = NTLM_OK;

  switch(creds->kind) {
  case NTLM_RESPONSE_V2:
    result = ntlm__client_v2(a);
    break;
  case NTLM_RESPONSE_V1:
    result = ntlm_nt_hash(creds->password, a->key);
    if(!result) {
      ntlm_desl(a->key, server_challenge, a->nt1);
      ntlm_v1_session_base_key(a->key, a->base);
      result = ntlm_lm_hash(creds->password, a->key);
    }
    if(!result)
      ntlm_desl(a->key, server_challenge, a->lm);
    break;
  case NTLM_RESPONSE_V1_ESS:
    result = ntlm_nt_hash(creds->password, a->key);
    if(!result) {
      ntlm__v1_ess_response(a->key, server_challenge, a->client_challenge,
                            a->nt1);
      ntlm_v1_session_base_key(a->key, a->base);
      memset(a->lm, 0, sizeof(a->lm));
      memcpy(a->lm, a->client_challenge, 8);
    }
    break;
  }
  if(result == NTLM_ERR_ENCODING)
    ntlm__seterr(err, errlen,
                 "NTLM client: the user name, domain or "
                 "password is not valid UTF-8");
  else if(result)
    ntlm__seterr(err, errlen,
                 "NTLM client: computing the %s response "
                 "failed: %s",
                 ntlm_response_kind_name(creds->kind), ntlm_strerror(result));
  return result;
}

/* Derives the KeyExchangeKey and the ExportedSessionKey from a's
 * SessionBaseKey (the ExportedSessionKey is random_session_key, sent
 * RC4-encrypted, when a->key_exch) and encodes the AUTHENTICATE into out,
 * with a zero MIC slot when a->mic. Returns what ntlm_encode returns. */
static enum ntlm_result ntlm__client_message(struct ntlm__answer *a,
                                             const uint8_t *random_session_key,
                                             struct ntlm_bytes *out, char *err,
                                             size_t errlen)
{
  const struct ntlm_client_creds *creds = a->creds;
  struct ntlm_message m;

  ntlm__kxkey(creds->kind, a->base, a->challenge->server_challenge, a->lm,
              a->kx);
  if(a->key_exch) {
    memcpy(a->export, random_session_key, 16);
    ntlm__rc4_16(a->kx, a->export, a->enc);
  }
  else
    memcpy(a->export, a->kx, 16);
  memset(&m, 0, sizeof(m));
  m.type = NTLM_TYPE_AUTHENTICATE;
  m.flags = ntlm__auth_flags(a->challenge->flags, creds->kind, a->key_exch);
  if(m.flags & NTLM_NEGOTIATE_VERSION) {
    m.has_version = true;
    m.version = ntlm__client_version;
  }
  /* The message only reads these strings; the casts do not let anything
   * write through them. */
  m.domain = (char *)creds->domain;
  m.user = (char *)creds->user;
  m.workstation = (char *)creds->workstation;
  m.lm_response = a->lm;
  m.lm_response_len = sizeof(a->lm);
  if(creds->kind == NTLM_RESPONSE_V2) {
    m.nt_response = a->nt.data;
    m.nt_response_len = a->nt.len;
  }
  else {
    m.nt_response = a->nt1;
    m.nt_response_len = sizeof(a->nt1);
  }
  if(a->key_exch) {
    m.session_key = a->enc;
    m.session_key_len = sizeof(a->enc);
  }
  m.has_mic = a->mic; /* zero until computed over the encoded message */
  return ntlm_encode(&m, out, err, errlen);
}

enum ntlm_result ntlm_client_authenticate_ex(
    const struct ntlm_client_creds *creds, const struct ntlm_message *challenge,
    const struct ntlm_client_options *opt, struct ntlm_bytes *out,
    uint8_t exported_session_key[16], char *err, size_t errlen)
{
  struct ntlm__answer a;
  enum ntlm_result result;

  if(out) {
    out->data = NULL;
    out->len = 0;
  }
  result = ntlm__client_check(creds, challenge, opt, out, err, errlen);
  if(result)
    return result;
  memset(&a, 0, sizeof(a));
  a.creds = creds;
  a.challenge = challenge;
  a.client_challenge = opt->client_challenge;
  a.timestamp = opt->timestamp;
  a.mic = opt->mic;
  a.cbt = opt->channel_bindings;
  a.key_exch =
      opt->random_session_key && (challenge->flags & NTLM_NEGOTIATE_KEY_EXCH);

  result = ntlm__client_responses(&a, err, errlen);
  if(!result)
    result =
        ntlm__client_message(&a, opt->random_session_key, out, err, errlen);
  if(!result && a.mic)
    ntlm__mic(a.export, opt->exchange, out->data, out->len,
              out->data + NTLM__AUTH_HEADER + NTLM__VERSION_LEN);
  if(!result && exported_session_key)
    memcpy(exported_session_key, a.export, 16);
  free(a.ti);
  ntlm__wipe_free(&a.nt);
  explicit_bzero(&a, sizeof(a));
  return result;
}
