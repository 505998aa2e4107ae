/*
 * kb_users.h - the user store: "DOMAIN\user" + password.
 *
 * sim/ builds one store and hands it, read-only, to the proxy (which
 * verifies NTLM proofs against it) and uses it to configure clients.
 * Lookups are case-insensitive on domain and user, as on Windows.
 * A store is filled before it is shared and never changed after, so
 * concurrent lookups need no lock.
 */
#ifndef KB_USERS_H
#define KB_USERS_H

#include <stddef.h>

struct kb_users;

/* Returns a new empty store, or NULL when out of memory. */
struct kb_users *kb_users_new(void);

/* Frees the store and its passwords (zeroed first). Accepts NULL. */
void kb_users_free(struct kb_users *users);

/* Adds a user from a "DOMAIN\user:password" spec (the --user syntax).
 * Returns 0, or -1 with a one-line reason in err (what was wrong and what
 * to do) when the spec is malformed or the user is already present. */
int kb_users_add_spec(struct kb_users *users, const char *spec, char *err,
                      size_t errlen);

/* Adds a user from parts. Same result contract as kb_users_add_spec. */
int kb_users_add(struct kb_users *users, const char *domain, const char *user,
                 const char *password, char *err, size_t errlen);

/* Looks up domain\user. Returns the stored password (owned by the store,
 * valid until kb_users_free) or NULL when unknown. */
const char *kb_users_password(const struct kb_users *users, const char *domain,
                              const char *user);

/* Number of users in the store. */
size_t kb_users_count(const struct kb_users *users);

#endif /* KB_USERS_H */
