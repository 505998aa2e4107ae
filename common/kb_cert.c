/*
 * kb_cert.c - a run's throwaway CA and server certificates, made with
 * GnuTLS in memory, and RFC 5929's tls-server-end-point hash of a
 * certificate.
 */
#include "common/kb_cert.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One certificate being made: its key and the certificate itself. */
struct kb_cert_make {
  gnutls_x509_privkey_t key;
  gnutls_x509_crt_t crt;
};

static void kb_cert_make_free(struct kb_cert_make *m)
{
  if(m->crt)
    gnutls_x509_crt_deinit(m->crt);
  if(m->key)
    gnutls_x509_privkey_deinit(m->key);
  memset(m, 0, sizeof(*m));
}

/* Copies a GnuTLS datum into a NUL-terminated malloc'd string. */
static char *kb_cert_text(const gnutls_datum_t *d)
{
  char *s = malloc(d->size + 1);
  if(s) {
    memcpy(s, d->data, d->size);
    s[d->size] = '\0';
  }
  return s;
}

char *kb_hex_colon(const uint8_t *hash, size_t len, char *out, size_t outlen)
{
  size_t i, at = 0;

  if(outlen)
    out[0] = '\0';
  for(i = 0; i < len && at + 4 <= outlen; i++)
    at +=
        (size_t)snprintf(out + at, outlen - at, i ? ":%02x" : "%02x", hash[i]);
  return out;
}

/* Fills *out from a parsed certificate. Returns 0 or -1. */
static int kb_end_point_crt(gnutls_x509_crt_t crt, struct kb_end_point *out)
{
  gnutls_datum_t der = {NULL, 0};
  gnutls_digest_algorithm_t dig;
  int sign = gnutls_x509_crt_get_signature_algorithm(crt);
  int result = -1;

  memset(out, 0, sizeof(*out));
  dig = sign < 0
            ? GNUTLS_DIG_UNKNOWN
            : gnutls_sign_get_hash_algorithm((gnutls_sign_algorithm_t)sign);
  /* RFC 5929 4.1: MD5 and SHA-1 are replaced by SHA-256; a signature
   * without a hash of its own (Ed25519) has no defined binding, and
   * SHA-256 is what Windows uses then. */
  if(dig == GNUTLS_DIG_MD5 || dig == GNUTLS_DIG_SHA1 ||
     dig == GNUTLS_DIG_UNKNOWN || dig == GNUTLS_DIG_NULL)
    dig = GNUTLS_DIG_SHA256;
  if(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0)
    return -1;
  if(gnutls_hash_get_len(dig) <= sizeof(out->hash) &&
     gnutls_hash_fast(dig, der.data, der.size, out->hash) == 0) {
    out->len = gnutls_hash_get_len(dig);
    snprintf(out->hash_name, sizeof(out->hash_name), "%s",
             gnutls_digest_get_name(dig));
    result = 0;
  }
  gnutls_free(der.data);
  return result;
}

int kb_end_point_der(const uint8_t *der, size_t len, struct kb_end_point *out)
{
  gnutls_x509_crt_t crt;
  gnutls_datum_t d;
  int result = -1;

  memset(out, 0, sizeof(*out));
  if(!der || !len || len > 0xffffffu || gnutls_x509_crt_init(&crt) < 0)
    return -1;
  d.data = (unsigned char *)der; /* read only */
  d.size = (unsigned)len;
  if(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) >= 0)
    result = kb_end_point_crt(crt, out);
  gnutls_x509_crt_deinit(crt);
  return result;
}

int kb_end_point_pem(const char *pem, struct kb_end_point *out)
{
  gnutls_x509_crt_t crt;
  gnutls_datum_t d;
  int result = -1;

  memset(out, 0, sizeof(*out));
  if(!pem || gnutls_x509_crt_init(&crt) < 0)
    return -1;
  d.data = (unsigned char *)pem; /* read only */
  d.size = (unsigned)strlen(pem);
  if(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0)
    result = kb_end_point_crt(crt, out);
  gnutls_x509_crt_deinit(crt);
  return result;
}

/* Makes a key and a certificate for dn, signed by issuer (self-signed when
 * issuer is NULL: the CA). serial numbers the certificate. Returns 0, or
 * -1 with GnuTLS's reason in err. */
static int kb_cert_make(struct kb_cert_make *m, const char *dn,
                        const struct kb_cert_make *issuer, unsigned serial,
                        char *err, size_t errlen)
{
  static const char *const names[] = {"mail.fabrikam.com", "localhost"};
  time_t now = time(NULL);
  uint8_t serial_be[4], ip4[4], ip6[16];
  uint8_t id[64];
  size_t idlen = sizeof(id);
  const char *step = "generate the key";
  int rc;
  size_t i;

  memset(m, 0, sizeof(*m));
  serial_be[0] = 0x01;
  serial_be[1] = (uint8_t)(serial >> 16);
  serial_be[2] = (uint8_t)(serial >> 8);
  serial_be[3] = (uint8_t)serial;
  rc = gnutls_x509_privkey_init(&m->key);
  if(rc >= 0)
    rc = gnutls_x509_privkey_generate(
        m->key, GNUTLS_PK_ECDSA,
        GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  if(rc >= 0) {
    step = "build the certificate";
    rc = gnutls_x509_crt_init(&m->crt);
  }
  if(rc >= 0)
    rc = gnutls_x509_crt_set_version(m->crt, 3);
  if(rc >= 0)
    rc = gnutls_x509_crt_set_serial(m->crt, serial_be, sizeof(serial_be));
  if(rc >= 0)
    rc = gnutls_x509_crt_set_activation_time(m->crt, now - 24 * 3600);
  if(rc >= 0)
    rc = gnutls_x509_crt_set_expiration_time(m->crt, now + 30 * 24 * 3600);
  if(rc >= 0)
    rc = gnutls_x509_crt_set_dn(m->crt, dn, NULL);
  if(rc >= 0)
    rc = gnutls_x509_crt_set_key(m->crt, m->key);
  if(rc >= 0)
    rc = gnutls_x509_crt_get_key_id(m->crt, 0, id, &idlen);
  if(rc >= 0)
    rc = gnutls_x509_crt_set_subject_key_id(m->crt, id, idlen);
  if(rc >= 0)
    rc = gnutls_x509_crt_set_basic_constraints(m->crt, issuer ? 0 : 1, -1);
  if(rc >= 0)
    rc = gnutls_x509_crt_set_key_usage(
        m->crt, issuer ? GNUTLS_KEY_DIGITAL_SIGNATURE
                       : GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN);
  if(issuer) {
    for(i = 0; rc >= 0 && i < sizeof(names) / sizeof(names[0]); i++)
      rc = gnutls_x509_crt_set_subject_alt_name(
          m->crt, GNUTLS_SAN_DNSNAME, names[i], (unsigned)strlen(names[i]),
          GNUTLS_FSAN_APPEND);
    inet_pton(AF_INET, "127.0.0.1", ip4);
    inet_pton(AF_INET6, "::1", ip6);
    if(rc >= 0)
      rc = gnutls_x509_crt_set_subject_alt_name(
          m->crt, GNUTLS_SAN_IPADDRESS, ip4, sizeof(ip4), GNUTLS_FSAN_APPEND);
    if(rc >= 0)
      rc = gnutls_x509_crt_set_subject_alt_name(
          m->crt, GNUTLS_SAN_IPADDRESS, ip6, sizeof(ip6), GNUTLS_FSAN_APPEND);
    if(rc >= 0)
      rc = gnutls_x509_crt_set_key_purpose_oid(m->crt, GNUTLS_KP_TLS_WWW_SERVER,
                                               0);
    idlen = sizeof(id);
    if(rc >= 0)
      rc = gnutls_x509_crt_get_subject_key_id(issuer->crt, id, &idlen, NULL);
    if(rc >= 0)
      rc = gnutls_x509_crt_set_authority_key_id(m->crt, id, idlen);
  }
  if(rc >= 0) {
    step = "sign the certificate";
    rc = gnutls_x509_crt_sign2(m->crt, issuer ? issuer->crt : m->crt,
                               issuer ? issuer->key : m->key, GNUTLS_DIG_SHA256,
                               0);
  }
  if(rc < 0) {
    snprintf(err, errlen, "TLS: cannot %s for %s: %s", step, dn,
             gnutls_strerror(rc));
    kb_cert_make_free(m);
    return -1;
  }
  return 0;
}

/* Exports m into *out as PEM, with its subject and end-point hash.
 * Returns 0, or -1 out of memory (err says so). */
static int kb_cert_export(const struct kb_cert_make *m, struct kb_cert *out,
                          char *err, size_t errlen)
{
  gnutls_datum_t crt = {NULL, 0}, key = {NULL, 0}, dn = {NULL, 0};
  int result = -1;

  memset(out, 0, sizeof(*out));
  if(gnutls_x509_crt_export2(m->crt, GNUTLS_X509_FMT_PEM, &crt) >= 0 &&
     gnutls_x509_privkey_export2(m->key, GNUTLS_X509_FMT_PEM, &key) >= 0 &&
     gnutls_x509_crt_get_dn2(m->crt, &dn) >= 0) {
    out->cert_pem = kb_cert_text(&crt);
    out->key_pem = kb_cert_text(&key);
    snprintf(out->subject, sizeof(out->subject), "%.*s", (int)dn.size,
             (const char *)dn.data);
    if(out->cert_pem && out->key_pem &&
       !kb_end_point_crt(m->crt, &out->end_point))
      result = 0;
  }
  if(key.data) {
    gnutls_memset(key.data, 0, key.size);
    gnutls_free(key.data);
  }
  gnutls_free(crt.data);
  gnutls_free(dn.data);
  if(result)
    snprintf(err, errlen, "TLS: out of memory exporting a certificate");
  return result;
}

static void kb_cert_free(struct kb_cert *c)
{
  if(c->key_pem) {
    memset(c->key_pem, 0, strlen(c->key_pem));
    free(c->key_pem);
  }
  free(c->cert_pem);
  memset(c, 0, sizeof(*c));
}

int kb_pki_create(struct kb_pki *pki, char *err, size_t errlen)
{
  struct kb_cert_make ca, exch, isa;
  unsigned serial = (unsigned)time(NULL) & 0xffffu;
  int result = -1;

  memset(pki, 0, sizeof(*pki));
  memset(&exch, 0, sizeof(exch));
  memset(&isa, 0, sizeof(isa));
  if(kb_cert_make(&ca, "CN=kbsim throwaway CA,O=Fabrikam (test)", NULL, serial,
                  err, errlen))
    return -1;
  if(!kb_cert_make(&exch, "CN=mail.fabrikam.com,OU=Exchange,O=Fabrikam", &ca,
                   serial + 1, err, errlen) &&
     !kb_cert_make(&isa, "CN=mail.fabrikam.com,OU=ISA listener,O=Fabrikam", &ca,
                   serial + 2, err, errlen) &&
     !kb_cert_export(&ca, &pki->ca, err, errlen) &&
     !kb_cert_export(&exch, &pki->exchange, err, errlen) &&
     !kb_cert_export(&isa, &pki->isa, err, errlen))
    result = 0;
  kb_cert_make_free(&ca);
  kb_cert_make_free(&exch);
  kb_cert_make_free(&isa);
  if(result)
    kb_pki_free(pki);
  else {
    /* Nobody needs the CA's key once it has signed. */
    memset(pki->ca.key_pem, 0, strlen(pki->ca.key_pem));
    free(pki->ca.key_pem);
    pki->ca.key_pem = NULL;
  }
  return result;
}

void kb_pki_free(struct kb_pki *pki)
{
  if(!pki)
    return;
  kb_cert_free(&pki->ca);
  kb_cert_free(&pki->exchange);
  kb_cert_free(&pki->isa);
}
