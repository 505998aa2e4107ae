/*
 * kb_cert.h - the certificates of a TLS run (GnuTLS): a throwaway CA made
 * for the run, Exchange's certificate and the ISA listener's own, each
 * with its private key in memory, never on disk and never checked in; and
 * RFC 5929's tls-server-end-point hash of a certificate, the one both the
 * client (of the certificate it saw) and Exchange (of its own) compute for
 * Extended Protection.
 *
 * Thread-safe: the functions share nothing; a struct kb_pki is read-only
 * once made and may be read from any thread.
 */
#ifndef KB_CERT_H
#define KB_CERT_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5929 section 4.1: the hash of the certificate under its signature's
 * hash function, SHA-256 when that is MD5 or SHA-1. */
struct kb_end_point {
  uint8_t hash[64];
  size_t len;         /* 0: not known */
  char hash_name[16]; /* "SHA256" */
};

/* One certificate with its key, as PEM text (both owned). */
struct kb_cert {
  char *cert_pem;
  char *key_pem;     /* NULL for a certificate given without its key */
  char subject[160]; /* its subject DN, for people */
  struct kb_end_point end_point;
};

/* A run's public key infrastructure: the CA and the two servers'
 * certificates it signed. Both servers' certificates name
 * mail.fabrikam.com (the published name), localhost, 127.0.0.1 and ::1,
 * so a client that verifies against the CA accepts either on loopback;
 * their subjects tell them apart (OU=Exchange, OU=ISA listener). */
struct kb_pki {
  struct kb_cert ca;
  struct kb_cert exchange;
  struct kb_cert isa;
};

/* Makes a new CA and the two certificates (ECDSA P-256 keys, signed with
 * SHA-256, valid from a day ago for 30 days of the real clock). Returns 0,
 * or -1 with a one-line reason in err (*pki then holds nothing to free).
 * Release with kb_pki_free. */
int kb_pki_create(struct kb_pki *pki, char *err, size_t errlen);

/* Frees what kb_pki_create made and zeroes *pki (the keys wiped first).
 * Accepts NULL and a zeroed struct. */
void kb_pki_free(struct kb_pki *pki);

/* Computes RFC 5929's tls-server-end-point hash of the DER certificate
 * der[0..len) into *out. Returns 0, or -1 when the bytes are no
 * certificate (*out then has len 0). */
int kb_end_point_der(const uint8_t *der, size_t len, struct kb_end_point *out);

/* The same for a PEM certificate (the first in pem). */
int kb_end_point_pem(const char *pem, struct kb_end_point *out);

/* Writes hash as lower-case hex pairs separated by ':' ("ab:cd:..."),
 * truncated to outlen. Returns out. */
char *kb_hex_colon(const uint8_t *hash, size_t len, char *out, size_t outlen);

#endif /* KB_CERT_H */
