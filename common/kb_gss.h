/*
 * kb_gss.h - Kerberos inside Negotiate through MIT's GSS-API (libgssapi_krb5,
 * pkg-config krb5-gssapi): the real Kerberos stack, never hand-written, on
 * both sides - a listener accepts a client's token with the keys of a keytab
 * (gss_accept_sec_context), a client makes one from the tickets of a
 * credential cache (gss_init_sec_context). One leg each: the AP-REQ goes
 * with the request it authenticates, so nothing is held back.
 *
 * MIT finds the KDC through its krb5.conf (KRB5_CONFIG); the keytab and the
 * cache are named here, per call (gss_acquire_cred_from's credential
 * store), so one process can hold a listener's keys and several users'
 * tickets. Every call is safe from any thread (MIT's library is
 * thread-safe; each call has contexts of its own).
 */
#ifndef KB_GSS_H
#define KB_GSS_H

#include <stdbool.h>
#include <stddef.h>

enum kb_gss_result {
  KB_GSS_OK = 0,
  KB_GSS_REFUSED, /* the token did not authenticate anybody */
  KB_GSS_ERROR    /* the keytab or the cache could not be used */
};

/* Whether value, an Authorization header's value, is "Negotiate <token>"
 * whose token is not raw NTLMSSP: a SPNEGO or Kerberos token (a GSS-API
 * token, first byte 0x60, or a SPNEGO answer, 0xa1). Only the token's
 * first bytes are decoded, so a ticket of any size is recognised. Writes
 * the first byte into *first. Can't fail. */
bool kb_gss_is_negotiate(const char *value, unsigned char *first);

/* Accepts the Negotiate token of value ("Negotiate <base64>") with the
 * keys of keytab (a path). One leg only: a token that would need an answer
 * before it authenticates (an SPNEGO offer without an optimistic Kerberos
 * token) is refused. On KB_GSS_OK writes the client's principal
 * ("alice@FABRIKAM.COM") into principal; otherwise writes why into err in
 * one line, MIT's words included. */
enum kb_gss_result kb_gss_accept(const char *keytab, const char *value,
                                 char *principal, size_t plen, char *err,
                                 size_t errlen);

/* Makes the Authorization value "Negotiate <base64 SPNEGO token>" (an
 * AP-REQ for HTTP@host, inside SPNEGO's NegTokenInit, as Windows sends it)
 * from the tickets in ccache (a path or "FILE:path"; the service ticket
 * MIT gets from the KDC is stored there, so klist shows it). Returns it
 * malloc'd (the caller frees it), or NULL with why in err. */
char *kb_gss_initiate(const char *ccache, const char *host, char *err,
                      size_t errlen);

/* Splits "alice@FABRIKAM.COM" into the user ("alice") and the NetBIOS
 * domain a Windows domain gives the realm (its first label, "FABRIKAM").
 * Returns 0, or -1 when principal has no realm or a part does not fit. */
int kb_gss_principal_split(const char *principal, char *domain, size_t dlen,
                           char *user, size_t ulen);

#endif /* KB_GSS_H */
