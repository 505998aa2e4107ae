/*
 * kb_gss.c - Kerberos inside Negotiate through MIT's GSS-API; see
 * kb_gss.h. Base64 is nettle's, as everywhere else in kbsim.
 */
#include "common/kb_gss.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_ext.h>
#include <gssapi/gssapi_krb5.h>
#include <nettle/base64.h>

/* The longest Negotiate token read, in base64 characters: a 48 KB ticket,
 * three times the 16 KB a listener's head holds. */
#define KB_GSS_MAX_B64 65536u

/* SPNEGO's mechanism, 1.3.6.1.5.5.2 (RFC 4178). */
static gss_OID_desc kb_gss_spnego = {6, (void *)"\x2b\x06\x01\x05\x05\x02"};

/* Appends MIT's words for (major, minor) to err after its first n bytes. */
static void kb_gss_status(OM_uint32 major, OM_uint32 minor, char *err,
                          size_t errlen, size_t n)
{
  OM_uint32 code[2] = {major, minor};
  int type[2] = {GSS_C_GSS_CODE, GSS_C_MECH_CODE};
  int i;

  for(i = 0; i < 2; i++) {
    OM_uint32 ctx = 0;
    OM_uint32 m;
    gss_buffer_desc msg = GSS_C_EMPTY_BUFFER;

    if(!code[i] ||
       (i == 0 && minor && GSS_ROUTINE_ERROR(major) == GSS_S_FAILURE))
      continue; /* "Unspecified GSS failure" says nothing beside minor */
    if(GSS_ERROR(
           gss_display_status(&m, code[i], type[i], GSS_C_NO_OID, &ctx, &msg)))
      continue;
    if(n < errlen)
      n += (size_t)snprintf(err + n, errlen - n, "%s%.*s",
                            n && err[n - 1] != ' ' ? ": " : "", (int)msg.length,
                            (const char *)msg.value);
    gss_release_buffer(&m, &msg);
  }
}

/* Skips "Negotiate" and blanks in value; returns the token's start, or
 * NULL when value is not Negotiate with a token. */
static const char *kb_gss_token_start(const char *value)
{
  const char *p = value;

  if(!p)
    return NULL;
  while(*p == ' ' || *p == '\t')
    p++;
  if(strncasecmp(p, "Negotiate", 9) || (p[9] != ' ' && p[9] != '\t'))
    return NULL;
  p += 9;
  while(*p == ' ' || *p == '\t')
    p++;
  return *p ? p : NULL;
}

bool kb_gss_is_negotiate(const char *value, unsigned char *first)
{
  static const uint8_t signature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
  struct base64_decode_ctx ctx;
  /* 12 base64 characters decode to 9 bytes: the whole signature. */
  uint8_t buf[BASE64_DECODE_LENGTH(12)];
  size_t dlen = sizeof(buf);
  const char *p = kb_gss_token_start(value);
  size_t n;

  if(!p)
    return false;
  n = strcspn(p, "= \t");
  if(n > 12)
    n = 12;
  base64_decode_init(&ctx);
  /* A token that does not even start as base64 is left to the NTLM parser,
   * which names the problem. */
  if(!n || !base64_decode_update(&ctx, &dlen, buf, n, p) || !dlen)
    return false;
  *first = buf[0];
  return memcmp(buf, signature, dlen < 8 ? dlen : 8) != 0;
}

/* Decodes the base64 token of value into *out (malloc'd; the caller
 * frees it). Returns 0, or -1 with why in err. */
static int kb_gss_decode(const char *value, gss_buffer_desc *out, char *err,
                         size_t errlen)
{
  struct base64_decode_ctx ctx;
  const char *p = kb_gss_token_start(value);
  size_t n = p ? strcspn(p, " \t") : 0;
  size_t dlen;
  uint8_t *buf;

  if(!n) {
    snprintf(err, errlen,
             "the Authorization header carries no Negotiate "
             "token");
    return -1;
  }
  if(n > KB_GSS_MAX_B64) {
    snprintf(err, errlen, "the Negotiate token is %zu characters, over %u", n,
             KB_GSS_MAX_B64);
    return -1;
  }
  dlen = BASE64_DECODE_LENGTH(n);
  buf = malloc(dlen ? dlen : 1);
  if(!buf) {
    snprintf(err, errlen, "out of memory decoding the Negotiate token");
    return -1;
  }
  base64_decode_init(&ctx);
  if(!base64_decode_update(&ctx, &dlen, buf, n, p) ||
     !base64_decode_final(&ctx) || !dlen) {
    free(buf);
    snprintf(err, errlen, "the Negotiate token is not base64");
    return -1;
  }
  out->value = buf;
  out->length = dlen;
  return 0;
}

enum kb_gss_result kb_gss_accept(const char *keytab, const char *value,
                                 char *principal, size_t plen, char *err,
                                 size_t errlen)
{
  enum kb_gss_result result = KB_GSS_ERROR;
  gss_key_value_element_desc kv = {"keytab", keytab};
  gss_key_value_set_desc store = {1, &kv};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_name_t client = GSS_C_NO_NAME;
  gss_buffer_desc in = GSS_C_EMPTY_BUFFER;
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  gss_buffer_desc name = GSS_C_EMPTY_BUFFER;
  OM_uint32 major, minor;
  size_t n;

  principal[0] = '\0';
  err[0] = '\0';
  major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE,
                                GSS_C_NO_OID_SET, GSS_C_ACCEPT, &store, &cred,
                                NULL, NULL);
  if(GSS_ERROR(major)) {
    n = (size_t)snprintf(err, errlen, "keytab %s: ", keytab);
    kb_gss_status(major, minor, err, errlen, n);
    goto out;
  }
  result = KB_GSS_REFUSED;
  if(kb_gss_decode(value, &in, err, errlen))
    goto out;
  major =
      gss_accept_sec_context(&minor, &ctx, cred, &in, GSS_C_NO_CHANNEL_BINDINGS,
                             &client, NULL, &out, NULL, NULL, NULL);
  if(major == GSS_S_CONTINUE_NEEDED) {
    snprintf(err, errlen,
             "the Negotiate token needs another leg (no "
             "Kerberos ticket in it); send the AP-REQ with "
             "the request");
    goto out;
  }
  if(GSS_ERROR(major)) {
    n = (size_t)snprintf(err, errlen, "Kerberos refused the ticket: ");
    kb_gss_status(major, minor, err, errlen, n);
    goto out;
  }
  major = gss_display_name(&minor, client, &name, NULL);
  if(GSS_ERROR(major) || name.length >= plen) {
    snprintf(err, errlen, "the client's principal name could not be read");
    goto out;
  }
  memcpy(principal, name.value, name.length);
  principal[name.length] = '\0';
  result = KB_GSS_OK;
out:
  gss_release_buffer(&minor, &name);
  gss_release_buffer(&minor, &out);
  gss_release_name(&minor, &client);
  if(ctx != GSS_C_NO_CONTEXT)
    gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
  gss_release_cred(&minor, &cred);
  free(in.value);
  return result;
}

char *kb_gss_initiate(const char *ccache, const char *host, char *err,
                      size_t errlen)
{
  gss_key_value_element_desc kv = {"ccache", ccache};
  gss_key_value_set_desc store = {1, &kv};
  gss_OID_set_desc mechs = {1, &kb_gss_spnego};
  gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
  gss_ctx_id_t ctx = GSS_C_NO_CONTEXT;
  gss_name_t target = GSS_C_NO_NAME;
  gss_buffer_desc out = GSS_C_EMPTY_BUFFER;
  gss_buffer_desc service;
  OM_uint32 major, minor;
  char spn[300];
  char *header = NULL;
  size_t n;

  err[0] = '\0';
  n = (size_t)snprintf(spn, sizeof(spn), "HTTP@%s", host);
  if(n >= sizeof(spn)) {
    snprintf(err, errlen, "the host name %.40s... is too long", host);
    return NULL;
  }
  service.value = spn;
  service.length = n;
  major = gss_acquire_cred_from(&minor, GSS_C_NO_NAME, GSS_C_INDEFINITE, &mechs,
                                GSS_C_INITIATE, &store, &cred, NULL, NULL);
  if(GSS_ERROR(major)) {
    n = (size_t)snprintf(err, errlen, "credential cache %s: ", ccache);
    kb_gss_status(major, minor, err, errlen, n);
    goto out;
  }
  major =
      gss_import_name(&minor, &service, GSS_C_NT_HOSTBASED_SERVICE, &target);
  if(GSS_ERROR(major)) {
    n = (size_t)snprintf(err, errlen, "service %s: ", spn);
    kb_gss_status(major, minor, err, errlen, n);
    goto out;
  }
  /* No mutual authentication asked: the request goes in one leg and its
   * answer is not needed to finish anything. */
  major = gss_init_sec_context(&minor, cred, &ctx, target, &kb_gss_spnego, 0,
                               GSS_C_INDEFINITE, GSS_C_NO_CHANNEL_BINDINGS,
                               GSS_C_NO_BUFFER, NULL, &out, NULL, NULL);
  if(GSS_ERROR(major) || !out.length) {
    n = (size_t)snprintf(err, errlen, "no Kerberos ticket for %s: ", spn);
    kb_gss_status(major, minor, err, errlen, n);
    goto out;
  }
  header = malloc(sizeof("Negotiate ") + BASE64_ENCODE_RAW_LENGTH(out.length));
  if(!header) {
    snprintf(err, errlen, "out of memory encoding the Negotiate token");
    goto out;
  }
  memcpy(header, "Negotiate ", 10);
  base64_encode_raw((char *)header + 10, out.length, out.value);
  header[10 + BASE64_ENCODE_RAW_LENGTH(out.length)] = '\0';
out:
  gss_release_buffer(&minor, &out);
  gss_release_name(&minor, &target);
  if(ctx != GSS_C_NO_CONTEXT)
    gss_delete_sec_context(&minor, &ctx, GSS_C_NO_BUFFER);
  gss_release_cred(&minor, &cred);
  return header;
}

int kb_gss_principal_split(const char *principal, char *domain, size_t dlen,
                           char *user, size_t ulen)
{
  const char *at = strrchr(principal, '@');
  size_t nu, nd;

  if(!at || at == principal || !at[1])
    return -1;
  nu = (size_t)(at - principal);
  nd = strcspn(at + 1, ".");
  if(nu >= ulen || nd >= dlen || !nd)
    return -1;
  memcpy(user, principal, nu);
  user[nu] = '\0';
  memcpy(domain, at + 1, nd);
  domain[nd] = '\0';
  return 0;
}
