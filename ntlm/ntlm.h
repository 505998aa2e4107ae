/*
 * ntlm.h - NTLM (MS-NLMP) messages and proofs, shared by client and proxy.
 *
 * Three layers, each usable alone:
 *  - the codec: decode any of the three messages from bytes with every
 *    length and offset bounds-checked, and encode them back;
 *  - the client side: Communicator's NEGOTIATE and an AUTHENTICATE answering
 *    a CHALLENGE with an NTLMv2, NTLMv1 or NTLMv1-with-client-challenge
 *    response;
 *  - the server side: a CHALLENGE with target info, and verification of an
 *    AUTHENTICATE (all three response kinds) against a password lookup.
 * Plus the HTTP glue: "NTLM <base64>" / "Negotiate <base64>" header values.
 *
 * Crypto and base64 come from nettle. Nothing here touches the clock or a
 * random source: callers pass challenges, timestamps and nonces in, which is
 * what makes runs reproducible and the MS-NLMP 4.2 vectors testable.
 *
 * Every function that can fail returns enum ntlm_result and, where it takes
 * err/errlen, writes one line saying what was wrong (err may be NULL).
 * Functions never crash on hostile input; they return NTLM_ERR_*.
 */
#ifndef NTLM_H
#define NTLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ntlm_result {
  NTLM_OK = 0,
  NTLM_ERR_ARG,       /* a caller error: NULL or out-of-range argument */
  NTLM_ERR_NOMEM,     /* allocation failed */
  NTLM_ERR_BASE64,    /* token is not valid base64 */
  NTLM_ERR_TRUNCATED, /* shorter than its fixed header */
  NTLM_ERR_SIGNATURE, /* does not start with "NTLMSSP\0" */
  NTLM_ERR_TYPE,      /* message type is not the one expected */
  NTLM_ERR_BOUNDS,    /* a field's offset/length points outside the message */
  NTLM_ERR_TOO_BIG,   /* message or field larger than NTLM_MAX_MESSAGE */
  NTLM_ERR_ENCODING,  /* a string field is not valid UTF-16LE / OEM */
  NTLM_ERR_HEADER,    /* header value is not "NTLM|Negotiate <token>" */
  NTLM_ERR_UNKNOWN_USER, /* the user store has no such user */
  NTLM_ERR_BAD_PROOF     /* the response does not prove the password */
};

/* Returns a short English description of r ("message truncated"). */
const char *ntlm_strerror(enum ntlm_result r);

/* Upper bound on a decoded message; larger tokens are refused. */
#define NTLM_MAX_MESSAGE 4096

enum ntlm_type {
  NTLM_TYPE_NONE = 0,
  NTLM_TYPE_NEGOTIATE = 1,
  NTLM_TYPE_CHALLENGE = 2,
  NTLM_TYPE_AUTHENTICATE = 3
};

/* NEGOTIATE_* flags (MS-NLMP 2.2.2.5), the ones this code uses by name. */
#define NTLM_NEGOTIATE_UNICODE 0x00000001u
#define NTLM_NEGOTIATE_OEM 0x00000002u
#define NTLM_REQUEST_TARGET 0x00000004u
#define NTLM_NEGOTIATE_SIGN 0x00000010u
#define NTLM_NEGOTIATE_SEAL 0x00000020u
#define NTLM_NEGOTIATE_LM_KEY 0x00000080u
#define NTLM_NEGOTIATE_NTLM 0x00000200u
#define NTLM_NEGOTIATE_ANONYMOUS 0x00000800u
#define NTLM_NEGOTIATE_DOMAIN_SUPPLIED 0x00001000u
#define NTLM_NEGOTIATE_WORKSTATION_SUPPLIED 0x00002000u
#define NTLM_NEGOTIATE_ALWAYS_SIGN 0x00008000u
#define NTLM_TARGET_TYPE_DOMAIN 0x00010000u
#define NTLM_TARGET_TYPE_SERVER 0x00020000u
#define NTLM_NEGOTIATE_EXTENDED_SESSIONSECURITY 0x00080000u
#define NTLM_NEGOTIATE_TARGET_INFO 0x00800000u
#define NTLM_NEGOTIATE_VERSION 0x02000000u
#define NTLM_NEGOTIATE_128 0x20000000u
#define NTLM_NEGOTIATE_KEY_EXCH 0x40000000u
#define NTLM_NEGOTIATE_56 0x80000000u

/* The flags of Communicator's NEGOTIATE in the support case: 0xa2088207. */
#define NTLM_COMMUNICATOR_FLAGS 0xa2088207u

/* A VERSION structure (MS-NLMP 2.2.2.10), 8 bytes on the wire. */
struct ntlm_version {
  uint8_t major, minor;
  uint16_t build;
  uint8_t revision; /* NTLMSSP revision, 15 */
};

/* A decoded message. Strings are converted to UTF-8 and NUL-terminated;
 * absent strings are NULL. Byte fields point into memory owned by the
 * message. Release with ntlm_message_free. */
struct ntlm_message {
  enum ntlm_type type;
  uint32_t flags;
  bool has_version;
  struct ntlm_version version;

  /* NEGOTIATE: domain, workstation. AUTHENTICATE: domain, user,
   * workstation. CHALLENGE: target_name. */
  char *domain;
  char *user;
  char *workstation;
  char *target_name;

  /* CHALLENGE only. */
  uint8_t server_challenge[8];
  uint8_t *target_info; /* raw AV_PAIR list */
  size_t target_info_len;

  /* AUTHENTICATE only. */
  uint8_t *lm_response;
  size_t lm_response_len;
  uint8_t *nt_response;
  size_t nt_response_len;
  uint8_t *session_key; /* EncryptedRandomSessionKey */
  size_t session_key_len;
  bool has_mic;
  uint8_t mic[16];
};

/* Decodes len bytes of any NTLM message into *out (zeroed first).
 * Returns NTLM_OK or the first problem found, with a line in err such as
 * "NTLM type 3: NtChallengeResponse offset 4000 + length 24 is past the end
 * of the 88-byte message". On failure *out holds nothing to free. */
enum ntlm_result ntlm_decode(const uint8_t *msg, size_t len,
                             struct ntlm_message *out, char *err,
                             size_t errlen);

/* The character set an AUTHENTICATE's strings are read in. */
enum ntlm_charset {
  NTLM_CHARSET_FLAGGED = 0, /* as its own NegotiateFlags say */
  NTLM_CHARSET_UNICODE,     /* UTF-16LE, whatever its flags say */
  NTLM_CHARSET_OEM          /* the OEM code page, whatever its flags say */
};

/* The character set the CHALLENGE of len bytes at msg agreed: UNICODE when
 * its NegotiateFlags have NEGOTIATE_UNICODE, else OEM; NTLM_CHARSET_FLAGGED
 * when msg is no CHALLENGE. What a server reads the handshake's
 * AUTHENTICATE in, as Samba does (auth/ntlmssp: the charset is the
 * negotiation's): some clients send an AUTHENTICATE whose fixed flags word
 * says UNICODE over OEM strings. */
enum ntlm_charset ntlm_challenge_charset(const uint8_t *msg, size_t len);

/* ntlm_decode, reading an AUTHENTICATE's strings in charset (other
 * messages are read as ntlm_decode reads them). */
enum ntlm_result ntlm_decode_as(const uint8_t *msg, size_t len,
                                enum ntlm_charset charset,
                                struct ntlm_message *out, char *err,
                                size_t errlen);

/* Frees what ntlm_decode allocated inside msg (not msg itself) and zeroes
 * it. Accepts NULL and an already freed message. */
void ntlm_message_free(struct ntlm_message *msg);

/* Returns the message type at the start of msg without a full decode:
 * NTLM_TYPE_NONE when msg is too short or lacks the signature. */
enum ntlm_type ntlm_peek_type(const uint8_t *msg, size_t len);

/* Writes a one-line human decode of msg into out, e.g.
 * "NTLM type 1 NEGOTIATE flags 0xa2088207 (UNICODE OEM REQUEST_TARGET NTLM
 * ALWAYS_SIGN EXTENDED_SESSIONSECURITY VERSION 128 56) version 5.1.2600/15"
 * or "NTLM type 3 AUTHENTICATE FABRIKAM\\alice from COMMUNICATOR, NTLMv2
 * response". Never fails; truncates to outlen. */
void ntlm_describe(const struct ntlm_message *msg, char *out, size_t outlen);

/* ---- bytes ------------------------------------------------------------ */

/* An owned byte string. Release with ntlm_bytes_free. */
struct ntlm_bytes {
  uint8_t *data;
  size_t len;
};

/* Frees b->data and zeroes b. Accepts NULL. */
void ntlm_bytes_free(struct ntlm_bytes *b);

/* Encodes msg (any of the three types) into *out, which the caller frees
 * with ntlm_bytes_free. The fixed header comes first (with the VERSION
 * when has_version, and for AUTHENTICATE the MIC when has_mic), then the
 * payload fields in MS-NLMP's own order: NEGOTIATE domain, workstation
 * (OEM; empty fields get offset 0 as Windows writes them); CHALLENGE
 * target name, target info; AUTHENTICATE domain, user, workstation, LM,
 * NT, session key. Strings are UTF-16LE when flags has UNICODE, else OEM
 * (NEGOTIATE strings are always OEM). Flags are written as given. So
 * ntlm_decode then ntlm_encode gives back a message Windows or the spec
 * laid out the same way byte for byte. NTLM_ERR_TOO_BIG past
 * NTLM_MAX_MESSAGE, NTLM_ERR_ENCODING for invalid UTF-8 or a character OEM
 * cannot carry. */
enum ntlm_result ntlm_encode(const struct ntlm_message *msg,
                             struct ntlm_bytes *out, char *err, size_t errlen);

/* ---- HTTP glue -------------------------------------------------------- */

enum ntlm_scheme { NTLM_SCHEME_NTLM, NTLM_SCHEME_NEGOTIATE };

/* Parses an Authorization or WWW-Authenticate value: "NTLM <b64>" or
 * "Negotiate <b64>" (scheme case-insensitive, surrounding blanks allowed).
 * On NTLM_OK *out holds the decoded token (possibly empty when the value is
 * just "NTLM"); caller frees it. Non-canonical base64 padding bits are
 * accepted, as Windows does (the support case's own token has them).
 * NTLM_ERR_HEADER when the scheme is neither, NTLM_ERR_BASE64 when the
 * token does not decode, NTLM_ERR_TOO_BIG past NTLM_MAX_MESSAGE. */
enum ntlm_result ntlm_header_parse(const char *value, enum ntlm_scheme *scheme,
                                   struct ntlm_bytes *out, char *err,
                                   size_t errlen);

/* Overwrites, in place, what an offline dictionary attack on the password
 * needs in an AUTHENTICATE message of len bytes with the bytes "REDACTED"
 * repeated, each field keeping its length: the LmChallengeResponse, the
 * NTLMv2 NTProofStr (the whole NTLMv1 response), the MIC and the
 * EncryptedRandomSessionKey. The message still decodes (ntlm_decode,
 * ntlm_describe). Sets *changed when msg was an AUTHENTICATE; other
 * messages are left as they are. Returns NTLM_OK, or the decoder's error
 * for a malformed AUTHENTICATE (then nothing is changed). */
enum ntlm_result ntlm_redact(uint8_t *msg, size_t len, bool *changed);

/* The same for an Authorization value (len bytes, need not be
 * NUL-terminated: "NTLM <base64>" or "Negotiate <base64>"), in place: the
 * token is decoded, redacted and encoded again, with the same length.
 * Returns true when it changed the value; false for any value that carries
 * no AUTHENTICATE that decodes. */
bool ntlm_header_redact(char *value, size_t len);

/* What an Authorization or WWW-Authenticate value carries, by the one
 * grammar every component uses (ntlm_header_parse's): optional blanks
 * (SP, HTAB) around the value, the scheme (case-insensitive), then
 * optionally one or more blanks and one base64 token. */
enum ntlm_token_kind {
  NTLM_TOKEN_ABSENT = 0,  /* no header at all (value NULL) */
  NTLM_TOKEN_NONE,        /* the scheme alone: "NTLM", "Negotiate" */
  NTLM_TOKEN_NTLMSSP,     /* an NTLMSSP message (see type) */
  NTLM_TOKEN_SPNEGO,      /* Negotiate with a GSS-API/SPNEGO token (first
                             byte 0x60 or 0xa1): Kerberos, not NTLM */
  NTLM_TOKEN_FOREIGN,     /* base64, but neither NTLMSSP nor SPNEGO */
  NTLM_TOKEN_BAD_BASE64,  /* not a base64 token */
  NTLM_TOKEN_OTHER_SCHEME /* neither NTLM nor Negotiate (Basic, Digest,
                             an empty value, garbage) */
};

struct ntlm_header_info {
  enum ntlm_token_kind kind;
  enum ntlm_scheme scheme; /* unless ABSENT or OTHER_SCHEME */
  /* NTLMSSP: the message type, NTLM_TYPE_NONE when the token is too short
   * to carry one or its number (type_number) is not 1, 2 or 3. */
  enum ntlm_type type;
  uint32_t type_number;
  uint8_t first_byte; /* of the decoded token, 0 when none */
  size_t decoded_len; /* bytes the token decodes to */
  bool too_big;       /* decoded_len > NTLM_MAX_MESSAGE */
};

/* Peeks at the len bytes of value (need not be NUL-terminated; NULL means
 * the header is absent) and fills *out. Only the first 16 characters of
 * the token are decoded, so a ticket of any size is named cheaply; the
 * token's whole shape is checked, so a token peek calls NTLMSSP also
 * passes ntlm_header_parse unless too_big. Never fails. */
void ntlm_header_peek(const char *value, size_t len,
                      struct ntlm_header_info *out);

/* Describes the token of an Authorization / WWW-Authenticate value in one
 * line for people: ntlm_describe's decode ("NTLM type 3 AUTHENTICATE
 * FABRIKAM\\alice from COMMUNICATOR, NTLMv2 response"), "not decodable:
 * <why>", a SPNEGO token's size, or "not NTLM: another scheme". Returns
 * false (out untouched) when there is no token to describe: the header is
 * absent or the scheme stands alone. Truncates to outlen. */
bool ntlm_header_describe(const char *value, size_t len, char *out,
                          size_t outlen);

/* Builds "NTLM <base64 of msg>" (or "Negotiate ..."). Returns a malloc'd
 * string the caller frees, or NULL when out of memory. */
char *ntlm_header_format(enum ntlm_scheme scheme, const uint8_t *msg,
                         size_t len);

/* ---- client side ------------------------------------------------------ */

enum ntlm_response_kind {
  NTLM_RESPONSE_V2 = 0, /* NTLMv2 + LMv2 (default) */
  NTLM_RESPONSE_V1,     /* NTLMv1 + LMv1 (DES) */
  NTLM_RESPONSE_V1_ESS  /* NTLMv1 with client challenge (NTLM2 session) */
};

/* Returns "NTLMv2", "NTLMv1" or "NTLMv1-ESS". */
const char *ntlm_response_kind_name(enum ntlm_response_kind kind);

/* The NEGOTIATE flags a client answering with kind asks for: Communicator's
 * (NTLM_COMMUNICATOR_FLAGS) for NTLMv2 and NTLMv1-ESS; the same less
 * EXTENDED_SESSIONSECURITY for plain NTLMv1, which a client must not ask
 * for when it will not answer with it (MS-NLMP 3.1.5.1.2). */
uint32_t ntlm_client_flags(enum ntlm_response_kind kind);

/* Builds a NEGOTIATE with the given flags, no domain or workstation, and a
 * VERSION of 5.1.2600/15 when NTLM_NEGOTIATE_VERSION is set. With
 * NTLM_COMMUNICATOR_FLAGS the 40 bytes equal the support case's token. */
enum ntlm_result ntlm_client_negotiate(uint32_t flags, struct ntlm_bytes *out);

struct ntlm_client_creds {
  const char *domain;      /* "FABRIKAM" */
  const char *user;        /* "alice" */
  const char *password;    /* UTF-8 */
  const char *workstation; /* "COMMUNICATOR"; may be NULL */
  enum ntlm_response_kind kind;
};

/* The three messages of one handshake exactly as they went over the wire:
 * what a MIC covers (MS-NLMP 3.1.5.1.2). The client fills negotiate and
 * challenge; the server also authenticate (the raw AUTHENTICATE). */
struct ntlm_exchange {
  const uint8_t *negotiate;
  size_t negotiate_len;
  const uint8_t *challenge;
  size_t challenge_len;
  const uint8_t *authenticate;
  size_t authenticate_len;
};

/* How ntlm_client_authenticate_ex answers. Zeroed means what
 * ntlm_client_authenticate does: no key exchange, no MIC. */
struct ntlm_client_options {
  /* 8 bytes (NTLMv2 and V1_ESS; ignored by V1) */
  const uint8_t *client_challenge;
  /* Windows FILETIME for the NTLMv2 blob; when 0 the challenge's
   * MsvAvTimestamp is used if present, else 0. */
  uint64_t timestamp;
  /* 16 bytes: when non-NULL and the challenge grants KEY_EXCH, sent RC4-
   * encrypted under the KeyExchangeKey and used as ExportedSessionKey. */
  const uint8_t *random_session_key;
  /* Send a MIC (NTLMv2 only) over exchange's NEGOTIATE and CHALLENGE, with
   * MsvAvFlags bit 0x2 set in the blob, as Windows Vista and later do. */
  bool mic;
  const struct ntlm_exchange *exchange;
  /* 16 bytes (NTLMv2 only; ignored by the v1 kinds, which carry no AV
   * pairs): the MsvAvChannelBindings the blob carries, the MD5 of the
   * channel's bindings (ntlm_channel_bindings), as a client on TLS sends
   * them for Extended Protection. NULL: no such pair, as before EPA. */
  const uint8_t *channel_bindings;
};

/* Builds the AUTHENTICATE answering the decoded challenge with opt.
 * Strings are encoded UTF-16LE when the challenge negotiated UNICODE; its
 * flags are the challenge's, less ESS for NTLMv1 (a v1 response under ESS
 * would be v1-ESS). exported_session_key, when non-NULL, receives the key
 * signing and sealing would use. NTLM_ERR_ARG with a line in err when opt
 * asks for what the kind can't do (a MIC without NTLMv2 or the exchange). */
enum ntlm_result ntlm_client_authenticate_ex(
    const struct ntlm_client_creds *creds, const struct ntlm_message *challenge,
    const struct ntlm_client_options *opt, struct ntlm_bytes *out,
    uint8_t exported_session_key[16], char *err, size_t errlen);

/* ntlm_client_authenticate_ex with only a client challenge and timestamp:
 * no session key exchange and no MIC. */
enum ntlm_result ntlm_client_authenticate(const struct ntlm_client_creds *creds,
                                          const struct ntlm_message *challenge,
                                          const uint8_t client_challenge[8],
                                          uint64_t timestamp,
                                          struct ntlm_bytes *out, char *err,
                                          size_t errlen);

/* Converts ms since the Unix epoch to a Windows FILETIME. */
uint64_t ntlm_filetime_from_unix_ms(int64_t ms);

/* ---- channel bindings (Extended Protection) --------------------------- */

/* RFC 5929's prefix of the application data of a TLS server certificate's
 * bindings: "tls-server-end-point:" then the certificate's hash. */
#define NTLM_TLS_SERVER_END_POINT "tls-server-end-point:"

/* Writes into out the MD5 of the gss_channel_bindings_struct (RFC 2744
 * 3.11: initiator and acceptor address types and addresses zero, as HTTP
 * clients send them) holding len bytes of application data: the value of
 * MsvAvChannelBindings (MS-NLMP 2.2.2.1) for those bindings. Can't fail. */
void ntlm_channel_bindings(const uint8_t *app_data, size_t len,
                           uint8_t out[16]);

/* The same for a TLS server certificate whose RFC 5929 hash (the
 * certificate's signature hash, SHA-256 when that is MD5 or SHA-1) is
 * hash[0..hash_len): application data NTLM_TLS_SERVER_END_POINT + hash.
 * Can't fail for hash_len <= 64 (more is cut to 64). */
void ntlm_tls_end_point_bindings(const uint8_t *hash, size_t hash_len,
                                 uint8_t out[16]);

/* Reads the MsvAvChannelBindings of a decoded AUTHENTICATE's NTLMv2
 * response into out. Returns true when there is one of 16 bytes; false
 * for a v1 response or a blob without one. Never fails. */
bool ntlm_response_channel_bindings(const struct ntlm_message *auth,
                                    uint8_t out[16]);

/* ---- server side ------------------------------------------------------ */

struct ntlm_server_info {
  const char *netbios_domain;   /* "FABRIKAM" - also the target name */
  const char *netbios_computer; /* "ISA01" */
  const char *dns_domain;       /* "fabrikam.com"; may be NULL */
  const char *dns_computer;     /* "isa01.fabrikam.com"; may be NULL */
};

/* Returns the flags a CHALLENGE answering a NEGOTIATE with negotiate_flags
 * carries (MS-NLMP 3.2.5.1.1): always NTLM, TARGET_INFO, TARGET_TYPE_DOMAIN
 * and VERSION; UNICODE when offered, else OEM; and, exactly when the client
 * asked, REQUEST_TARGET, SIGN, SEAL, ALWAYS_SIGN, EXTENDED_SESSIONSECURITY,
 * 128, 56 and KEY_EXCH. Never LM_KEY, DATAGRAM or ANONYMOUS. */
uint32_t ntlm_server_flags(uint32_t negotiate_flags);

/* Builds a CHALLENGE answering a NEGOTIATE with negotiate_flags: the
 * flags of ntlm_server_flags, the given 8-byte server challenge, the
 * NetBIOS domain as target name, and target info holding the NetBIOS and
 * DNS names plus MsvAvTimestamp = timestamp (FILETIME) when non-zero. */
enum ntlm_result ntlm_server_challenge(const struct ntlm_server_info *info,
                                       uint32_t negotiate_flags,
                                       const uint8_t server_challenge[8],
                                       uint64_t timestamp,
                                       struct ntlm_bytes *out);

/* Looks up the password of domain\user (UTF-8). Returns it (owned by the
 * lookup's store) or NULL when the user is unknown. */
typedef const char *(*ntlm_password_fn)(void *ctx, const char *domain,
                                        const char *user);

/* What a successful verification established. */
struct ntlm_identity {
  char domain[128];
  char user[128];
  char workstation[128];
  enum ntlm_response_kind kind;
  bool mic_checked;   /* the AUTHENTICATE had a MIC and it matched */
  bool key_exchanged; /* KEY_EXCH: a random session key was sent */
  /* The NTLMv2 response's MsvAvChannelBindings, when it carried one
   * (ntlm_response_channel_bindings); checking it is the caller's. */
  bool has_channel_bindings;
  uint8_t channel_bindings[16];
};

/* Verifies a decoded AUTHENTICATE against the server challenge that was
 * sent on this connection. Detects the response kind from the NT response
 * length (24 = v1 or v1-ESS by the ESS flag and LM response; more = v2),
 * recomputes the proof with the password from lookup and compares in
 * constant time, then derives the session key (decrypting the random
 * session key under KEY_EXCH, which must then be 16 bytes) and, when the
 * response announces a MIC and exchange is non-NULL, checks the MIC over
 * exchange's three messages. NTLM_ERR_UNKNOWN_USER / NTLM_ERR_BAD_PROOF
 * with a line in err naming the user (never the password). Anonymous
 * AUTHENTICATE is refused as NTLM_ERR_BAD_PROOF. On NTLM_OK fills *who
 * when non-NULL. */
enum ntlm_result ntlm_server_verify_ex(
    const struct ntlm_message *auth, const struct ntlm_exchange *exchange,
    const uint8_t server_challenge[8], ntlm_password_fn lookup,
    void *lookup_ctx, struct ntlm_identity *who, char *err, size_t errlen);

/* ntlm_server_verify_ex without the exchange: a MIC is not checked. For
 * callers that did not keep the NEGOTIATE and CHALLENGE. */
enum ntlm_result ntlm_server_verify(const struct ntlm_message *auth,
                                    const uint8_t server_challenge[8],
                                    ntlm_password_fn lookup, void *lookup_ctx,
                                    struct ntlm_identity *who, char *err,
                                    size_t errlen);

#endif /* NTLM_H */
