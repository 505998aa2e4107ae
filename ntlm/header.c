/*
 * header.c - the one grammar of Authorization / WWW-Authenticate values
 * that every component uses: "NTLM <base64>" or "Negotiate <base64>"
 * (ntlm_header_peek, ntlm_header_parse, ntlm_header_describe,
 * ntlm_header_format). Base64 is nettle's.
 */
#include "ntlm_int.h"

#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool ntlm__blank(char c)
{
  return c == ' ' || c == '\t';
}

/* Checks the shape of n characters of base64: padded with '=' to a
 * multiple of 4, at most two '=', nothing but A-Z a-z 0-9 + / before
 * them. Returns NTLM_OK or NTLM_ERR_BASE64 with a line in err. Any length
 * is accepted here; the size limit is the decoder's. */
static enum ntlm_result ntlm__b64_check(const char *tok, size_t n, char *err,
                                        size_t errlen)
{
  size_t pad = 0;
  size_t i;

  if(n % 4) {
    ntlm__seterr(err, errlen,
                 "NTLM header: base64 token of %zu characters is not padded "
                 "to a multiple of 4",
                 n);
    return NTLM_ERR_BASE64;
  }
  while(pad < n && tok[n - 1 - pad] == '=')
    pad++;
  if(pad > 2) {
    ntlm__seterr(err, errlen,
                 "NTLM header: base64 token ends in %zu '=' (at most 2 are "
                 "allowed)",
                 pad);
    return NTLM_ERR_BASE64;
  }
  for(i = 0; i < n - pad; i++) {
    /* nettle's decoder skips white space (space, tab, CR, LF, VT, FF)
     * inside base64; a header token has none, so anything outside the
     * alphabet is refused here, before nettle can ignore it. */
    unsigned char ch = (unsigned char)tok[i];
    if(!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
         (ch >= '0' && ch <= '9') || ch == '+' || ch == '/')) {
      ntlm__seterr(err, errlen,
                   "NTLM header: base64 token has byte 0x%02x at character "
                   "%zu, which is not base64",
                   ch, i);
      return NTLM_ERR_BASE64;
    }
  }
  return NTLM_OK;
}

/* Decodes the first n characters of a token whose shape ntlm__b64_check
 * accepted into buf, which holds BASE64_DECODE_LENGTH(n) bytes; n is a
 * multiple of 4 or the whole token. Returns the bytes decoded, or 0 when
 * nettle refused. The padding is not fed to nettle and base64_decode_final
 * is not called: both would insist that the leftover bits be zero, and
 * Windows does not zero them (the support case's own token ends "D0=="
 * where canonical base64 has "Dw=="). The shape check already bounds the
 * leftover to the 2 or 4 bits a padded group has. */
static size_t ntlm__b64_prefix(const char *tok, size_t n, uint8_t *buf)
{
  struct base64_decode_ctx ctx;
  size_t dlen = BASE64_DECODE_LENGTH(n);

  while(n && tok[n - 1] == '=')
    n--;
  base64_decode_init(&ctx);
  if(!base64_decode_update(&ctx, &dlen, buf, n, tok))
    return 0;
  return dlen;
}

/* Decodes n characters of base64 into *out (caller frees): the shape as
 * ntlm__b64_check wants it, and at most NTLM_MAX_MESSAGE bytes. */
static enum ntlm_result ntlm__b64_decode(const char *tok, size_t n,
                                         struct ntlm_bytes *out, char *err,
                                         size_t errlen)
{
  enum ntlm_result r;
  size_t dlen;
  uint8_t *buf;

  if(n > BASE64_ENCODE_RAW_LENGTH(NTLM_MAX_MESSAGE)) {
    ntlm__seterr(err, errlen,
                 "NTLM header: token of %zu characters decodes to more than "
                 "the %d-byte message limit",
                 n, NTLM_MAX_MESSAGE);
    return NTLM_ERR_TOO_BIG;
  }
  r = ntlm__b64_check(tok, n, err, errlen);
  if(r)
    return r;
  buf = malloc(BASE64_DECODE_LENGTH(n) + 1);
  if(!buf) {
    ntlm__seterr(err, errlen, "NTLM header: out of memory decoding a token");
    return NTLM_ERR_NOMEM;
  }
  dlen = ntlm__b64_prefix(tok, n, buf);
  if(!dlen && n) {
    free(buf);
    ntlm__seterr(err, errlen,
                 "NTLM header: token is not valid base64 (a character "
                 "outside A-Z a-z 0-9 + / or a misplaced '=')");
    return NTLM_ERR_BASE64;
  }
  if(dlen > NTLM_MAX_MESSAGE) {
    free(buf);
    ntlm__seterr(err, errlen,
                 "NTLM header: token decodes to %zu bytes, more than the "
                 "%d-byte message limit",
                 dlen, NTLM_MAX_MESSAGE);
    return NTLM_ERR_TOO_BIG;
  }
  out->data = buf;
  out->len = dlen;
  return NTLM_OK;
}

/* The one grammar of an Authorization / WWW-Authenticate value (RFC 9110
 * 11.6.2 and 11.4, as Windows writes it): optional blanks (SP, HTAB), the
 * scheme, then optionally one or more blanks and a token, then optional
 * blanks. Splits the len bytes of value into the scheme word and the token
 * (tok NULL and toklen 0 when there is none). Returns false when the value
 * is empty or blank. */
static bool ntlm__header_split(const char *value, size_t len, const char **word,
                               size_t *wlen, const char **tok, size_t *toklen)
{
  const char *p = value;
  const char *end = value + len;

  while(p < end && ntlm__blank(*p))
    p++;
  while(end > p && ntlm__blank(end[-1]))
    end--;
  if(p == end)
    return false;
  *word = p;
  while(p < end && !ntlm__blank(*p))
    p++;
  *wlen = (size_t)(p - *word);
  while(p < end && ntlm__blank(*p))
    p++;
  *tok = p < end ? p : NULL;
  *toklen = (size_t)(end - p);
  return true;
}

/* Which of NTLM and Negotiate a scheme word names, case-insensitively.
 * Returns false for any other word. */
static bool ntlm__scheme_of(const char *word, size_t wlen,
                            enum ntlm_scheme *out)
{
  if(wlen == 4 && !strncasecmp(word, "NTLM", 4))
    *out = NTLM_SCHEME_NTLM;
  else if(wlen == 9 && !strncasecmp(word, "Negotiate", 9))
    *out = NTLM_SCHEME_NEGOTIATE;
  else
    return false;
  return true;
}

void ntlm_header_peek(const char *value, size_t len,
                      struct ntlm_header_info *out)
{
  const char *word, *tok;
  size_t wlen, toklen, n, got;
  uint8_t head[BASE64_DECODE_LENGTH(16)];

  memset(out, 0, sizeof(*out));
  if(!value) {
    out->kind = NTLM_TOKEN_ABSENT;
    return;
  }
  if(!ntlm__header_split(value, len, &word, &wlen, &tok, &toklen) ||
     !ntlm__scheme_of(word, wlen, &out->scheme)) {
    out->kind = NTLM_TOKEN_OTHER_SCHEME;
    return;
  }
  if(!tok) {
    out->kind = NTLM_TOKEN_NONE;
    return;
  }
  if(ntlm__b64_check(tok, toklen, NULL, 0)) {
    out->kind = NTLM_TOKEN_BAD_BASE64;
    return;
  }
  out->decoded_len = BASE64_DECODE_LENGTH(toklen);
  while(toklen && tok[toklen - 1] == '=') {
    toklen--;
    out->decoded_len--;
  }
  out->too_big = out->decoded_len > NTLM_MAX_MESSAGE;
  /* Only the first 16 characters (12 bytes: signature and type) are
   * decoded, so a 16 KB Kerberos ticket is named without decoding it. */
  n = toklen < 16 ? toklen : 16;
  got = ntlm__b64_prefix(tok, n, head);
  out->first_byte = got ? head[0] : 0;
  if(got >= 8 && !memcmp(head, ntlm__signature, sizeof(ntlm__signature))) {
    out->kind = NTLM_TOKEN_NTLMSSP;
    if(got >= 12) {
      out->type_number = ntlm__get32(head + 8);
      if(out->type_number >= 1 && out->type_number <= 3)
        out->type = (enum ntlm_type)out->type_number;
    }
  }
  else if(got && out->scheme == NTLM_SCHEME_NEGOTIATE &&
          (head[0] == 0x60 || head[0] == 0xa1))
    out->kind = NTLM_TOKEN_SPNEGO;
  else
    out->kind = NTLM_TOKEN_FOREIGN;
}

bool ntlm_header_describe(const char *value, size_t len, char *out,
                          size_t outlen)
{
  struct ntlm_header_info info;
  struct ntlm_bytes token = {NULL, 0};
  struct ntlm_message msg;
  enum ntlm_scheme scheme;
  char err[256];
  char *copy;

  ntlm_header_peek(value, len, &info);
  switch(info.kind) {
  case NTLM_TOKEN_ABSENT:
  case NTLM_TOKEN_NONE:
    return false;
  case NTLM_TOKEN_OTHER_SCHEME:
    snprintf(out, outlen, "not NTLM: another scheme");
    return true;
  case NTLM_TOKEN_SPNEGO:
    snprintf(out, outlen,
             "SPNEGO/Kerberos token of %zu bytes (first byte 0x%02x), "
             "not NTLMSSP",
             info.decoded_len, info.first_byte);
    return true;
  default:
    break;
  }
  copy = malloc(len + 1);
  if(!copy) {
    snprintf(out, outlen, "not decodable: out of memory");
    return true;
  }
  memcpy(copy, value, len);
  copy[len] = '\0';
  if(ntlm_header_parse(copy, &scheme, &token, err, sizeof(err)) != NTLM_OK)
    snprintf(out, outlen, "not decodable: %s", err);
  else if(ntlm_decode(token.data, token.len, &msg, err, sizeof(err)) ==
          NTLM_OK) {
    ntlm_describe(&msg, out, outlen);
    ntlm_message_free(&msg);
  }
  /* Without the handshake this value belongs to, an AUTHENTICATE whose
   * flags say UNICODE over OEM strings (what some clients send after an
   * OEM-only negotiation) still reads as OEM; say so. */
  else if(ntlm_peek_type(token.data, token.len) == NTLM_TYPE_AUTHENTICATE &&
          ntlm_decode_as(token.data, token.len, NTLM_CHARSET_OEM, &msg, NULL,
                         0) == NTLM_OK) {
    size_t at;
    ntlm_describe(&msg, out, outlen);
    at = strlen(out);
    snprintf(out + at, outlen - at,
             " (OEM strings, though its flags say "
             "UNICODE)");
    ntlm_message_free(&msg);
  }
  else
    snprintf(out, outlen, "not decodable: %s", err);
  ntlm_bytes_free(&token);
  free(copy);
  return true;
}

enum ntlm_result ntlm_header_parse(const char *value, enum ntlm_scheme *scheme,
                                   struct ntlm_bytes *out, char *err,
                                   size_t errlen)
{
  const char *word, *tok;
  size_t wlen, toklen;
  enum ntlm_scheme which;
  enum ntlm_result result;

  if(!value || !out) {
    ntlm__seterr(err, errlen,
                 "NTLM header: ntlm_header_parse needs a value "
                 "and an output");
    return NTLM_ERR_ARG;
  }
  out->data = NULL;
  out->len = 0;
  if(!ntlm__header_split(value, strlen(value), &word, &wlen, &tok, &toklen)) {
    ntlm__seterr(err, errlen,
                 "NTLM header: the value is empty; expected "
                 "\"NTLM <base64 token>\"");
    return NTLM_ERR_HEADER;
  }
  if(!ntlm__scheme_of(word, wlen, &which)) {
    ntlm__seterr(err, errlen,
                 "NTLM header: scheme \"%.*s\" is neither NTLM nor Negotiate",
                 (int)(wlen > 32 ? 32 : wlen), word);
    return NTLM_ERR_HEADER;
  }
  if(!tok)
    result = NTLM_OK; /* bare "NTLM": the server offers the scheme */
  else
    result = ntlm__b64_decode(tok, toklen, out, err, errlen);
  if(!result && scheme)
    *scheme = which;
  return result;
}

char *ntlm_header_format(enum ntlm_scheme scheme, const uint8_t *msg,
                         size_t len)
{
  const char *name = scheme == NTLM_SCHEME_NEGOTIATE ? "Negotiate" : "NTLM";
  size_t nlen = strlen(name);
  size_t blen;
  char *s;

  if(!msg && len)
    return NULL;
  if(len > NTLM_MAX_MESSAGE * 16u)
    return NULL; /* nobody sends this; keeps the size arithmetic trivial */
  blen = BASE64_ENCODE_RAW_LENGTH(len);
  s = malloc(nlen + 1 + blen + 1);
  if(!s)
    return NULL;
  memcpy(s, name, nlen);
  if(!len) {
    s[nlen] = '\0';
    return s;
  }
  s[nlen] = ' ';
  base64_encode_raw(s + nlen + 1, len, msg);
  s[nlen + 1 + blen] = '\0';
  return s;
}

bool ntlm_header_redact(char *value, size_t len)
{
  const char *word, *tok;
  size_t wlen, toklen;
  enum ntlm_scheme which;
  struct ntlm_bytes raw = {NULL, 0};
  bool changed = false;
  char *out;

  if(!ntlm__header_split(value, len, &word, &wlen, &tok, &toklen) || !tok ||
     !ntlm__scheme_of(word, wlen, &which) ||
     ntlm__b64_decode(tok, toklen, &raw, NULL, 0))
    return false;
  out = malloc(BASE64_ENCODE_RAW_LENGTH(raw.len) + 1);
  if(out && !ntlm_redact(raw.data, raw.len, &changed) && changed &&
     BASE64_ENCODE_RAW_LENGTH(raw.len) == toklen) {
    base64_encode_raw(out, raw.len, raw.data);
    memcpy((char *)tok, out, toklen); /* tok points into value */
  }
  else
    changed = false;
  free(out);
  ntlm_bytes_free(&raw);
  return changed;
}
