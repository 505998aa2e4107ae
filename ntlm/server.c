/*
 * server.c - the server side: the CHALLENGE answering a NEGOTIATE, and the
 * verification of an AUTHENTICATE (its proof, key exchange and MIC)
 * against a password lookup.
 */
#include "ntlm_core.h"
#include "ntlm_int.h"

#include <nettle/memops.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the simulated servers put in their VERSION field: ISA 2006 ran on
 * Server 2003 (5.2.3790). */
static const struct ntlm_version ntlm__server_version = {5, 2, 3790, 15};

uint32_t ntlm_server_flags(uint32_t negotiate_flags)
{
  /* What the client may ask for and this server grants when asked
   * (MS-NLMP 3.2.5.1.1): signing and sealing are the application's to use
   * later, so granting them costs nothing over HTTP and a client that
   * requires them (gss-ntlmssp, Samba) refuses a challenge without them. */
  static const uint32_t echoed =
      NTLM_REQUEST_TARGET | NTLM_NEGOTIATE_SIGN | NTLM_NEGOTIATE_SEAL |
      NTLM_NEGOTIATE_ALWAYS_SIGN | NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY |
      NTLM_NEGOTIATE_128 | NTLM_NEGOTIATE_56 | NTLM_NEGOTIATE_KEY_EXCH;
  uint32_t flags;

  /* What Windows always answers: NTLM, target info, a domain target and a
   * VERSION; one character set, Unicode when offered. */
  flags = NTLM_NEGOTIATE_NTLM | NTLM_NEGOTIATE_TARGET_INFO |
          NTLM_TARGET_TYPE_DOMAIN | NTLM_NEGOTIATE_VERSION;
  flags |= (negotiate_flags & NTLM_NEGOTIATE_UNICODE) ? NTLM_NEGOTIATE_UNICODE
                                                      : NTLM_NEGOTIATE_OEM;
  flags |= negotiate_flags & echoed;
  return flags;
}

enum ntlm_result ntlm_server_challenge(const struct ntlm_server_info *info,
                                       uint32_t negotiate_flags,
                                       const uint8_t server_challenge[8],
                                       uint64_t timestamp,
                                       struct ntlm_bytes *out)
{
  struct ntlm__avbuf *av;
  struct ntlm_message m;
  enum ntlm_result result;

  if(out) {
    out->data = NULL;
    out->len = 0;
  }
  if(!info || !info->netbios_domain || !info->netbios_computer ||
     !server_challenge || !out)
    return NTLM_ERR_ARG;
  av = malloc(sizeof(*av));
  if(!av)
    return NTLM_ERR_NOMEM;
  av->len = 0;

  /* Windows' order: NetBIOS domain, NetBIOS computer, DNS domain, DNS
   * computer, timestamp, EOL. */
  result = ntlm__av_put_str(av, NTLM__AV_NB_DOMAIN, info->netbios_domain);
  if(!result)
    result = ntlm__av_put_str(av, NTLM__AV_NB_COMPUTER, info->netbios_computer);
  if(!result)
    result = ntlm__av_put_str(av, NTLM__AV_DNS_DOMAIN, info->dns_domain);
  if(!result)
    result = ntlm__av_put_str(av, NTLM__AV_DNS_COMPUTER, info->dns_computer);
  if(!result && timestamp) {
    uint8_t ts[8];
    ntlm__put64(ts, timestamp);
    result = ntlm__av_put(av, NTLM__AV_TIMESTAMP, ts, sizeof(ts));
  }
  if(!result)
    result = ntlm__av_put(av, NTLM__AV_EOL, NULL, 0);

  if(!result) {
    memset(&m, 0, sizeof(m));
    m.type = NTLM_TYPE_CHALLENGE;
    m.flags = ntlm_server_flags(negotiate_flags);
    m.has_version = true;
    m.version = ntlm__server_version;
    m.target_name = (char *)info->netbios_domain;
    memcpy(m.server_challenge, server_challenge, 8);
    m.target_info = av->data;
    m.target_info_len = av->len;
    result = ntlm_encode(&m, out, NULL, 0);
  }
  free(av);
  return result;
}

enum ntlm_result ntlm_server_verify(const struct ntlm_message *auth,
                                    const uint8_t server_challenge[8],
                                    ntlm_password_fn lookup, void *lookup_ctx,
                                    struct ntlm_identity *who, char *err,
                                    size_t errlen)
{
  return ntlm_server_verify_ex(auth, NULL, server_challenge, lookup, lookup_ctx,
                               who, err, errlen);
}

/* Derives the ExportedSessionKey of a verified AUTHENTICATE (MS-NLMP
 * 3.2.5.1.2) from its SessionBaseKey and checks its MIC against the
 * exchange when the response announces one. NTLM_ERR_BAD_PROOF with a line
 * in err when the key exchange is malformed or the MIC does not match. */
static enum ntlm_result ntlm__server_keys(
    const struct ntlm_message *auth, enum ntlm_response_kind rkind,
    const uint8_t base[16], const uint8_t server_challenge[8],
    const struct ntlm_exchange *ex, bool *mic_checked, char *err, size_t errlen)
{
  uint8_t kx[16];
  uint8_t export[16];
  uint8_t mic[16];
  enum ntlm_result result = NTLM_OK;

  *mic_checked = false;
  ntlm__kxkey(rkind, base, server_challenge, auth->lm_response, kx);
  if(auth->flags & NTLM_NEGOTIATE_KEY_EXCH) {
    if(auth->session_key_len != 16) {
      ntlm__seterr(err, errlen,
                   "NTLM server: KEY_EXCH is set but the "
                   "EncryptedRandomSessionKey has %zu bytes, not 16",
                   auth->session_key_len);
      result = NTLM_ERR_BAD_PROOF;
      goto out;
    }
    ntlm__rc4_16(kx, auth->session_key, export);
  }
  else
    memcpy(export, kx, 16);
  if(auth->has_mic && ex) {
    if(!ex->negotiate || !ex->challenge || !ex->authenticate ||
       ex->authenticate_len <
           NTLM__AUTH_HEADER + NTLM__VERSION_LEN + NTLM__MIC_LEN) {
      ntlm__seterr(err, errlen,
                   "NTLM server: the AUTHENTICATE carries a MIC but the "
                   "NEGOTIATE and CHALLENGE it covers are not at hand");
      result = NTLM_ERR_ARG;
      goto out;
    }
    ntlm__mic(export, ex, ex->authenticate, ex->authenticate_len, mic);
    if(!memeql_sec(mic, auth->mic, sizeof(mic))) {
      ntlm__seterr(err, errlen,
                   "NTLM server: the MIC of %.100s\\%.100s does not match "
                   "the three messages (altered in transit, or computed "
                   "with another key)",
                   auth->domain ? auth->domain : "", auth->user);
      result = NTLM_ERR_BAD_PROOF;
    }
    *mic_checked = !result;
  }
out:
  explicit_bzero(kx, sizeof(kx));
  explicit_bzero(export, sizeof(export));
  return result;
}

/* Checks that auth can be verified at all and looks up the password of
 * its user: an AUTHENTICATE, not anonymous, naming a user the lookup
 * knows. Returns NTLM_OK with *password set (owned by the lookup's store),
 * or the refusal with a line in err. */
static enum ntlm_result ntlm__server_lookup(const struct ntlm_message *auth,
                                            const uint8_t server_challenge[8],
                                            ntlm_password_fn lookup,
                                            void *lookup_ctx,
                                            const char **password, char *err,
                                            size_t errlen)
{
  const char *domain;

  if(!auth || !server_challenge || !lookup) {
    ntlm__seterr(err, errlen,
                 "NTLM server: ntlm_server_verify needs a "
                 "message, a challenge and a password lookup");
    return NTLM_ERR_ARG;
  }
  if(auth->type != NTLM_TYPE_AUTHENTICATE) {
    ntlm__seterr(err, errlen,
                 "NTLM server: expected a type 3 AUTHENTICATE, got type %d",
                 (int)auth->type);
    return NTLM_ERR_TYPE;
  }
  domain = auth->domain ? auth->domain : "";
  if(ntlm__kind_of(auth) == NTLM__KIND_ANONYMOUS ||
     (auth->flags & NTLM_NEGOTIATE_ANONYMOUS)) {
    ntlm__seterr(err, errlen,
                 "NTLM server: anonymous authentication is "
                 "refused; the client must send a user name and password");
    return NTLM_ERR_BAD_PROOF;
  }
  if(!auth->user) {
    ntlm__seterr(err, errlen,
                 "NTLM server: the AUTHENTICATE message has no "
                 "user name");
    return NTLM_ERR_BAD_PROOF;
  }
  *password = lookup(lookup_ctx, domain, auth->user);
  if(!*password) {
    ntlm__seterr(err, errlen, "NTLM server: unknown user %.100s\\%.100s",
                 domain, auth->user);
    return NTLM_ERR_UNKNOWN_USER;
  }
  return NTLM_OK;
}

/* Recomputes the proof of auth's response with password and compares it
 * with the response in constant time. Returns NTLM_OK with *rkind and
 * *match set and the SessionBaseKey in base; NTLM_ERR_BAD_PROOF when the
 * NT response is of no known kind, or the failure to convert the stored
 * password, each with a line in err. */
static enum ntlm_result ntlm__server_proof(const struct ntlm_message *auth,
                                           uint32_t agreed, const char *domain,
                                           const char *password,
                                           const uint8_t server_challenge[8],
                                           enum ntlm_response_kind *rkind,
                                           bool *match, uint8_t base[16],
                                           char *err, size_t errlen)
{
  uint8_t key[16];
  uint8_t v2key[16];
  uint8_t expect[24];
  enum ntlm_result result;

  switch(ntlm__kind_with(auth, agreed)) {
  case NTLM__KIND_V2:
    *rkind = NTLM_RESPONSE_V2;
    /* NTOWFv2 takes the domain as the client typed it: the proof is over
     * the client's spelling, even though the lookup ignored case. */
    result = ntlm_ntowf_v2(password, auth->user, domain, v2key);
    if(!result) {
      ntlm__hmac2(v2key, server_challenge, 8, auth->nt_response + 16,
                  auth->nt_response_len - 16, expect);
      *match = memeql_sec(expect, auth->nt_response, 16) != 0;
      ntlm__hmac2(v2key, auth->nt_response, 16, NULL, 0, base);
    }
    break;
  case NTLM__KIND_V1:
    *rkind = NTLM_RESPONSE_V1;
    result = ntlm_nt_hash(password, key);
    if(!result) {
      ntlm_desl(key, server_challenge, expect);
      *match = memeql_sec(expect, auth->nt_response, 24) != 0;
      ntlm_v1_session_base_key(key, base);
    }
    break;
  case NTLM__KIND_V1_ESS:
    *rkind = NTLM_RESPONSE_V1_ESS;
    result = ntlm_nt_hash(password, key);
    if(!result) {
      ntlm__v1_ess_response(key, server_challenge, auth->lm_response, expect);
      *match = memeql_sec(expect, auth->nt_response, 24) != 0;
      ntlm_v1_session_base_key(key, base);
    }
    break;
  case NTLM__KIND_ANONYMOUS:
  case NTLM__KIND_MALFORMED:
  default:
    ntlm__seterr(err, errlen,
                 "NTLM server: the %zu-byte NT response of %.100s\\%.100s is "
                 "neither NTLMv1 (24 bytes) nor NTLMv2 (%d or more)",
                 auth->nt_response_len, domain, auth->user,
                 NTLM__V2_MIN_RESPONSE);
    return NTLM_ERR_BAD_PROOF;
  }
  explicit_bzero(key, sizeof(key));
  explicit_bzero(v2key, sizeof(v2key));
  explicit_bzero(expect, sizeof(expect));
  if(result) {
    /* The stored password itself would not convert: say so without
     * showing it. */
    ntlm__seterr(err, errlen,
                 "NTLM server: the stored password of %.100s\\%.100s cannot "
                 "be used (%s); fix it in the user store",
                 domain, auth->user, ntlm_strerror(result));
  }
  return result;
}

/* The NegotiateFlags that decide how auth's response was computed: those
 * of the CHALLENGE this server sent, when exchange holds it (MS-NLMP
 * 3.2.5.1.2: the server computes with its own NegFlg; some clients send a
 * fixed flags word in the AUTHENTICATE that claims ESS over a plain
 * NTLMv1 response), else auth's own. */
static uint32_t ntlm__server_agreed(const struct ntlm_message *auth,
                                    const struct ntlm_exchange *exchange)
{
  if(exchange && exchange->challenge &&
     ntlm_peek_type(exchange->challenge, exchange->challenge_len) ==
         NTLM_TYPE_CHALLENGE &&
     exchange->challenge_len >= 24)
    return ntlm__get32(exchange->challenge + 20);
  return auth->flags;
}

enum ntlm_result ntlm_server_verify_ex(
    const struct ntlm_message *auth, const struct ntlm_exchange *exchange,
    const uint8_t server_challenge[8], ntlm_password_fn lookup,
    void *lookup_ctx, struct ntlm_identity *who, char *err, size_t errlen)
{
  const char *domain;
  const char *password = NULL;
  enum ntlm_response_kind rkind = NTLM_RESPONSE_V2;
  uint8_t base[16]; /* SessionBaseKey */
  bool match = false;
  bool mic_checked = false;
  enum ntlm_result result;

  result = ntlm__server_lookup(auth, server_challenge, lookup, lookup_ctx,
                               &password, err, errlen);
  if(result)
    return result;
  domain = auth->domain ? auth->domain : "";
  result = ntlm__server_proof(auth, ntlm__server_agreed(auth, exchange), domain,
                              password, server_challenge, &rkind, &match, base,
                              err, errlen);
  if(!result && !match) {
    ntlm__seterr(err, errlen,
                 "NTLM server: the %s response of %.100s\\%.100s does not "
                 "prove its password (wrong password, or an answer to "
                 "another challenge)",
                 ntlm_response_kind_name(rkind), domain, auth->user);
    result = NTLM_ERR_BAD_PROOF;
  }
  if(!result)
    result = ntlm__server_keys(auth, rkind, base, server_challenge, exchange,
                               &mic_checked, err, errlen);
  explicit_bzero(base, sizeof(base));
  if(result)
    return result;
  if(who) {
    memset(who, 0, sizeof(*who));
    snprintf(who->domain, sizeof(who->domain), "%s", domain);
    snprintf(who->user, sizeof(who->user), "%s", auth->user);
    snprintf(who->workstation, sizeof(who->workstation), "%s",
             auth->workstation ? auth->workstation : "");
    who->kind = rkind;
    who->mic_checked = mic_checked;
    who->key_exchanged = (auth->flags & NTLM_NEGOTIATE_KEY_EXCH) != 0;
    if(rkind == NTLM_RESPONSE_V2)
      who->has_channel_bindings =
          ntlm_response_channel_bindings(auth, who->channel_bindings);
  }
  return NTLM_OK;
}
