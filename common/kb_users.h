/*
 * kb_users.h - the user store: "DOMAIN\user" + password.
 *
 * sim/ builds one store and hands it, read-only, to the proxy (which
 * verifies NTLM and Basic credentials against it) and uses it to configure
 * clients. Names are matched as a domain controller matches them: domain
 * and user compared with full Unicode case folding, the listener's DNS
 * domain standing for its NetBIOS domain, an empty domain meaning the
 * listener's, and a UPN (user@dnsdomain) with an empty domain.
 * A store is filled before it is shared and never changed after, so
 * concurrent lookups need no lock.
 */
#ifndef KB_USERS_H
#define KB_USERS_H

#include <stdbool.h>
#include <stddef.h>

struct kb_users;

/* Returns a new empty store, or NULL when out of memory. */
struct kb_users *kb_users_new(void);

/* Frees the store and its passwords (zeroed first). Accepts NULL. */
void kb_users_free(struct kb_users *users);

/* Splits a "DOMAIN\user:password" spec (the --user syntax) into the
 * caller's buffers; with allow_no_password, "DOMAIN\user" alone is taken
 * too and *password is left empty. Returns 0, or -1 with one line in err.
 * The line never quotes the spec: a malformed one may hold a password
 * (a blank typed for the colon). */
int kb_users_split_spec(const char *spec, bool allow_no_password, char *domain,
                        size_t dlen, char *user, size_t ulen, char *password,
                        size_t plen, char *err, size_t errlen);

/* Adds a user from a "DOMAIN\user:password" spec (the --user syntax).
 * Returns 0, or -1 with a one-line reason in err (what was wrong and what
 * to do) when the spec is malformed or the user is already present. */
int kb_users_add_spec(struct kb_users *users, const char *spec, char *err,
                      size_t errlen);

/* Adds a user from parts. Same result contract as kb_users_add_spec. */
int kb_users_add(struct kb_users *users, const char *domain, const char *user,
                 const char *password, char *err, size_t errlen);

/* Looks up domain\user by NetBIOS domain only (no realm, no UPN), case
 * folded as kb_users_resolve does. Returns the stored password (owned by the
 * store, valid until kb_users_free) or NULL when unknown. */
const char *kb_users_password(const struct kb_users *users, const char *domain,
                              const char *user);

/* The domain a listener belongs to: what an empty domain means and which
 * DNS name stands for it. */
struct kb_realm {
  const char *netbios; /* "FABRIKAM" */
  const char *dns;     /* "fabrikam.com"; may be NULL */
};

/* Why a name did or did not resolve: for the trace, never for the client
 * (a failed login looks the same whatever the reason). */
enum kb_resolve {
  KB_RESOLVE_OK,
  KB_RESOLVE_NO_DOMAIN, /* no user of the store is in that domain */
  KB_RESOLVE_NO_USER,   /* the domain is known, the user is not */
  KB_RESOLVE_BAD_NAME   /* not UTF-8, or an empty user */
};

/* The account a name resolved to, in the store's spelling. */
struct kb_account {
  const char *domain;   /* NetBIOS domain as stored */
  const char *user;     /* as stored */
  const char *password; /* owned by the store */
};

/* Resolves the domain and user a client sent (NTLM's fields, or Basic's
 * name once split at '\') for a listener of realm, as a domain controller
 * does:
 *
 *   domain sent          user sent            resolves to
 *   FABRIKAM (any case)  alice (any case)     FABRIKAM\alice
 *   fabrikam.com         alice                FABRIKAM\alice (realm DNS)
 *   (empty)              alice                FABRIKAM\alice (realm)
 *   (empty)              alice@fabrikam.com   FABRIKAM\alice (UPN)
 *   (empty)              alice@FABRIKAM       refused: a UPN suffix is DNS
 *   FABRIKAM             alice@fabrikam.com   refused: no such user
 *   CONTOSO              alice                CONTOSO\alice if stored
 *
 * Case is folded in full (Unicode CaseFolding, "JÜRGEN" = "jürgen",
 * "STRASSE" = "straße"); nothing is normalised. Fills *out (when not NULL)
 * on KB_RESOLVE_OK. */
enum kb_resolve kb_users_resolve(const struct kb_users *users,
                                 const struct kb_realm *realm,
                                 const char *domain, const char *user,
                                 struct kb_account *out);

/* "ok", "unknown domain", "unknown user", "malformed name". */
const char *kb_resolve_name(enum kb_resolve r);

/* Number of users in the store. */
size_t kb_users_count(const struct kb_users *users);

#endif /* KB_USERS_H */
