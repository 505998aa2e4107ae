/*
 * strings.c - the strings of a message. Callers pass UTF-8. The wire
 * carries UTF-16LE, or "OEM" bytes when UNICODE was not negotiated; this
 * code takes the OEM code page to be Latin-1, which is exact for ASCII (all
 * the simulation uses) and never fails to decode.
 */
#include "ntlm_int.h"

#include <stdlib.h>
#include <string.h>
#include <unicase.h>

/* Decodes the next code point of s[*i..n) and advances *i. Returns the code
 * point, or -1 for anything that is not well-formed UTF-8 (overlong forms,
 * surrogates and values past U+10FFFF included). */
static int32_t ntlm__utf8_next(const uint8_t *s, size_t n, size_t *i)
{
  uint32_t c = s[*i];
  uint32_t cp;
  size_t need;
  size_t k;

  if(c < 0x80) {
    (*i)++;
    return (int32_t)c;
  }
  if(c >= 0xc2 && c <= 0xdf) {
    need = 1;
    cp = c & 0x1f;
  }
  else if(c >= 0xe0 && c <= 0xef) {
    need = 2;
    cp = c & 0x0f;
  }
  else if(c >= 0xf0 && c <= 0xf4) {
    need = 3;
    cp = c & 0x07;
  }
  else
    return -1;
  if(n - *i <= need)
    return -1;
  for(k = 1; k <= need; k++) {
    uint8_t cc = s[*i + k];
    if((cc & 0xc0) != 0x80)
      return -1;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
     cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return -1;
  *i += need + 1;
  return (int32_t)cp;
}

/* Returns the upper case of a code point as Windows' upcase table does: the
 * simple (one to one) Unicode mapping, which libunistring's uc_toupper
 * gives for every script (so 'ß' stays 'ß' and 'ÿ' becomes 'Ÿ'). */
static uint32_t ntlm__upper(uint32_t cp)
{
  return uc_toupper(cp);
}

/* Converts the UTF-8 string s to UTF-16LE, upper-cased when upper is set.
 * On NTLM_OK out->data is malloc'd (never NULL, even for "") and the caller
 * frees it; NTLM_ERR_ENCODING for invalid UTF-8, NTLM_ERR_TOO_BIG for a
 * string longer than any message could carry. */
enum ntlm_result ntlm__to_utf16(const char *s, bool upper,
                                struct ntlm_bytes *out)
{
  const uint8_t *u = (const uint8_t *)s;
  size_t n = strlen(s);
  size_t i = 0;
  size_t o = 0;
  uint8_t *buf;

  out->data = NULL;
  out->len = 0;
  if(n > NTLM_MAX_MESSAGE)
    return NTLM_ERR_TOO_BIG;
  /* Every UTF-8 sequence yields at most as many UTF-16 bytes as twice its
   * own length, so 2n bytes always suffice. */
  buf = malloc(2 * n + 2);
  if(!buf)
    return NTLM_ERR_NOMEM;
  while(i < n) {
    int32_t cp = ntlm__utf8_next(u, n, &i);
    if(cp < 0) {
      free(buf);
      return NTLM_ERR_ENCODING;
    }
    if(upper)
      cp = (int32_t)ntlm__upper((uint32_t)cp);
    if(cp >= 0x10000) {
      uint32_t v = (uint32_t)cp - 0x10000;
      ntlm__put16(buf + o, (uint16_t)(0xd800 | (v >> 10)));
      ntlm__put16(buf + o + 2, (uint16_t)(0xdc00 | (v & 0x3ff)));
      o += 4;
    }
    else {
      ntlm__put16(buf + o, (uint16_t)cp);
      o += 2;
    }
  }
  out->data = buf;
  out->len = o;
  return NTLM_OK;
}

/* Converts the UTF-8 string s to OEM (Latin-1) bytes, upper-cased when
 * upper is set. A character Latin-1 cannot carry is NTLM_ERR_ENCODING, or
 * '?' when lossy is set (Windows' best-fit does no better for LM hashes).
 * On NTLM_OK out->data is malloc'd (never NULL) and the caller frees it. */
enum ntlm_result ntlm__to_oem(const char *s, bool upper, bool lossy,
                              struct ntlm_bytes *out)
{
  const uint8_t *u = (const uint8_t *)s;
  size_t n = strlen(s);
  size_t i = 0;
  size_t o = 0;
  uint8_t *buf;

  out->data = NULL;
  out->len = 0;
  if(n > NTLM_MAX_MESSAGE)
    return NTLM_ERR_TOO_BIG;
  buf = malloc(n + 1);
  if(!buf)
    return NTLM_ERR_NOMEM;
  while(i < n) {
    int32_t cp = ntlm__utf8_next(u, n, &i);
    if(cp >= 0 && upper)
      cp = (int32_t)ntlm__upper((uint32_t)cp);
    if(cp < 0 || (cp > 0xff && !lossy)) {
      free(buf);
      return NTLM_ERR_ENCODING;
    }
    buf[o++] = (uint8_t)(cp > 0xff ? '?' : cp);
  }
  out->data = buf;
  out->len = o;
  return NTLM_OK;
}

/* Converts len bytes of UTF-16LE from a message to a malloc'd UTF-8 string
 * in *out (caller frees). Returns NTLM_ERR_ENCODING for an odd length, an
 * unpaired surrogate or an embedded NUL (which would silently shorten the
 * name everyone else sees), with the reason in why. */
enum ntlm_result ntlm__from_utf16(const uint8_t *p, size_t len, char **out,
                                  const char **why)
{
  size_t i;
  size_t o = 0;
  char *s;

  *out = NULL;
  if(len % 2) {
    *why = "has an odd number of bytes for UTF-16";
    return NTLM_ERR_ENCODING;
  }
  /* A UTF-16 unit becomes at most 3 UTF-8 bytes; a surrogate pair (two
   * units) becomes 4. */
  s = malloc(len / 2 * 3 + 1);
  if(!s)
    return NTLM_ERR_NOMEM;
  for(i = 0; i < len; i += 2) {
    uint32_t cp = ntlm__get16(p + i);
    if(cp == 0) {
      *why = "contains a NUL character";
      goto bad;
    }
    if(cp >= 0xdc00 && cp <= 0xdfff) {
      *why = "contains an unpaired UTF-16 surrogate";
      goto bad;
    }
    if(cp >= 0xd800 && cp <= 0xdbff) {
      uint32_t lo;
      if(len - i < 4) {
        *why = "contains an unpaired UTF-16 surrogate";
        goto bad;
      }
      lo = ntlm__get16(p + i + 2);
      if(lo < 0xdc00 || lo > 0xdfff) {
        *why = "contains an unpaired UTF-16 surrogate";
        goto bad;
      }
      cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      i += 2;
    }
    if(cp < 0x80)
      s[o++] = (char)cp;
    else if(cp < 0x800) {
      s[o++] = (char)(0xc0 | (cp >> 6));
      s[o++] = (char)(0x80 | (cp & 0x3f));
    }
    else if(cp < 0x10000) {
      s[o++] = (char)(0xe0 | (cp >> 12));
      s[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      s[o++] = (char)(0x80 | (cp & 0x3f));
    }
    else {
      s[o++] = (char)(0xf0 | (cp >> 18));
      s[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
      s[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
      s[o++] = (char)(0x80 | (cp & 0x3f));
    }
  }
  s[o] = '\0';
  *out = s;
  return NTLM_OK;
bad:
  free(s);
  return NTLM_ERR_ENCODING;
}

/* Converts len OEM (Latin-1) bytes to a malloc'd UTF-8 string in *out
 * (caller frees). Only an embedded NUL is refused, as NTLM_ERR_ENCODING. */
enum ntlm_result ntlm__from_oem(const uint8_t *p, size_t len, char **out,
                                const char **why)
{
  size_t i;
  size_t o = 0;
  char *s;

  *out = NULL;
  s = malloc(2 * len + 1);
  if(!s)
    return NTLM_ERR_NOMEM;
  for(i = 0; i < len; i++) {
    if(!p[i]) {
      free(s);
      *why = "contains a NUL character";
      return NTLM_ERR_ENCODING;
    }
    if(p[i] < 0x80)
      s[o++] = (char)p[i];
    else {
      s[o++] = (char)(0xc0 | (p[i] >> 6));
      s[o++] = (char)(0x80 | (p[i] & 0x3f));
    }
  }
  s[o] = '\0';
  *out = s;
  return NTLM_OK;
}
