/*
 * kb_users.c - the user store. A short array searched linearly: stores hold
 * a handful of users, and lookups happen once per handshake.
 */
#include "common/kb_users.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unistr.h>

#define KB_USERS_FIELD_MAX 256

struct kb_user {
  char *domain;
  char *user;
  char *password;
};

struct kb_users {
  struct kb_user *items;
  size_t count;
  size_t alloc;
};

struct kb_users *kb_users_new(void)
{
  return calloc(1, sizeof(struct kb_users));
}

/* Overwrites a secret before its memory goes back to the allocator; the
 * volatile pointer keeps the compiler from dropping the stores. */
static void kb__wipe(char *s)
{
  volatile char *p = s;

  while(p && *p)
    *p++ = '\0';
}

void kb_users_free(struct kb_users *users)
{
  size_t i;

  if(!users)
    return;
  for(i = 0; i < users->count; i++) {
    kb__wipe(users->items[i].password);
    free(users->items[i].domain);
    free(users->items[i].user);
    free(users->items[i].password);
  }
  free(users->items);
  free(users);
}

/* Whether a and b (UTF-8) are equal under full Unicode case folding, as
 * a domain controller compares account names. Invalid UTF-8 equals
 * nothing. */
static bool kb__name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
  int cmp = 1;

  if(u8_casecmp((const uint8_t *)a, alen, (const uint8_t *)b, blen, NULL, NULL,
                &cmp) < 0)
    return false;
  return cmp == 0;
}

static bool kb__str_eq(const char *a, const char *b)
{
  return kb__name_eq(a, strlen(a), b, strlen(b));
}

static struct kb_user *kb__find_n(const struct kb_users *users,
                                  const char *domain, const char *user,
                                  size_t ulen)
{
  size_t i;

  for(i = 0; users && i < users->count; i++) {
    if(kb__str_eq(users->items[i].domain, domain) &&
       kb__name_eq(users->items[i].user, strlen(users->items[i].user), user,
                   ulen))
      return &users->items[i];
  }
  return NULL;
}

static struct kb_user *kb__find(const struct kb_users *users,
                                const char *domain, const char *user)
{
  return kb__find_n(users, domain, user, strlen(user));
}

/* Whether any user of the store is in domain. */
static bool kb__has_domain(const struct kb_users *users, const char *domain)
{
  size_t i;

  for(i = 0; users && i < users->count; i++)
    if(kb__str_eq(users->items[i].domain, domain))
      return true;
  return false;
}

int kb_users_add(struct kb_users *users, const char *domain, const char *user,
                 const char *password, char *err, size_t errlen)
{
  struct kb_user entry = {0};

  if(!users || !domain || !user || !password) {
    snprintf(err, errlen, "internal error: kb_users_add given NULL");
    return -1;
  }
  if(!*domain || !*user) {
    snprintf(err, errlen,
             "user '%s\\%s': domain and user must not be empty; write "
             "DOMAIN\\user:password",
             domain, user);
    return -1;
  }
  if(strlen(domain) >= KB_USERS_FIELD_MAX ||
     strlen(user) >= KB_USERS_FIELD_MAX ||
     strlen(password) >= KB_USERS_FIELD_MAX) {
    snprintf(err, errlen,
             "user '%.40s...': domain, user and password are "
             "limited to %d bytes each",
             user, KB_USERS_FIELD_MAX - 1);
    return -1;
  }
  if(kb__find(users, domain, user)) {
    snprintf(err, errlen, "user %s\\%s is given twice; give each user once",
             domain, user);
    return -1;
  }
  if(users->count == users->alloc) {
    size_t alloc = users->alloc ? users->alloc * 2 : 8;
    struct kb_user *items = realloc(users->items, alloc * sizeof(*items));
    if(!items)
      goto nomem;
    users->items = items;
    users->alloc = alloc;
  }
  entry.domain = strdup(domain);
  entry.user = strdup(user);
  entry.password = strdup(password);
  if(!entry.domain || !entry.user || !entry.password)
    goto nomem;
  users->items[users->count++] = entry;
  return 0;

nomem:
  free(entry.domain);
  free(entry.user);
  free(entry.password);
  snprintf(err, errlen, "out of memory adding user %s\\%s", domain, user);
  return -1;
}

int kb_users_split_spec(const char *spec, bool allow_no_password, char *domain,
                        size_t dlen, char *user, size_t ulen, char *password,
                        size_t plen, char *err, size_t errlen)
{
  const char *slash = spec ? strchr(spec, '\\') : NULL;
  const char *colon = slash ? strchr(slash, ':') : NULL;
  const char *end = colon ? colon : (slash ? slash + strlen(slash) : NULL);

  if(!slash || slash == spec || end == slash + 1 ||
     (!colon && !allow_no_password) || (!colon && strpbrk(slash, " \t"))) {
    snprintf(err, errlen,
             "a user is not DOMAIN\\user:password (not shown: it may hold a "
             "password); write it like 'FABRIKAM\\alice:Secret1', quoted for "
             "the shell");
    return -1;
  }
  if((size_t)(slash - spec) >= dlen || (size_t)(end - slash - 1) >= ulen ||
     (colon && strlen(colon + 1) >= plen)) {
    snprintf(err, errlen,
             "user spec: domain, user and password are limited to %zu, %zu "
             "and %zu bytes",
             dlen - 1, ulen - 1, plen - 1);
    return -1;
  }
  snprintf(domain, dlen, "%.*s", (int)(slash - spec), spec);
  snprintf(user, ulen, "%.*s", (int)(end - slash - 1), slash + 1);
  snprintf(password, plen, "%s", colon ? colon + 1 : "");
  return 0;
}

int kb_users_add_spec(struct kb_users *users, const char *spec, char *err,
                      size_t errlen)
{
  char domain[KB_USERS_FIELD_MAX];
  char user[KB_USERS_FIELD_MAX];
  char password[KB_USERS_FIELD_MAX * 2];
  int rc;

  if(kb_users_split_spec(spec, false, domain, sizeof(domain), user,
                         sizeof(user), password, sizeof(password), err, errlen))
    return -1;
  rc = kb_users_add(users, domain, user, password, err, errlen);
  memset(password, 0, sizeof(password));
  return rc;
}

const char *kb_users_password(const struct kb_users *users, const char *domain,
                              const char *user)
{
  const struct kb_user *found;

  if(!domain || !user)
    return NULL;
  found = kb__find(users, domain, user);
  return found ? found->password : NULL;
}

/* Ends the resolution: the account found, or why not. */
static enum kb_resolve kb__resolved(const struct kb_users *users,
                                    const char *domain, const char *user,
                                    size_t ulen, struct kb_account *out)
{
  const struct kb_user *found;

  if(!ulen)
    return KB_RESOLVE_BAD_NAME;
  found = kb__find_n(users, domain, user, ulen);
  if(!found)
    return kb__has_domain(users, domain) ? KB_RESOLVE_NO_USER
                                         : KB_RESOLVE_NO_DOMAIN;
  if(out) {
    out->domain = found->domain;
    out->user = found->user;
    out->password = found->password;
  }
  return KB_RESOLVE_OK;
}

enum kb_resolve kb_users_resolve(const struct kb_users *users,
                                 const struct kb_realm *realm,
                                 const char *domain, const char *user,
                                 struct kb_account *out)
{
  const char *home = realm && realm->netbios ? realm->netbios : "";
  const char *dns = realm && realm->dns ? realm->dns : NULL;
  const char *at;

  if(!domain || !user || u8_check((const uint8_t *)domain, strlen(domain)) ||
     u8_check((const uint8_t *)user, strlen(user)))
    return KB_RESOLVE_BAD_NAME;
  if(!*domain) {
    /* A UPN: the suffix must be the realm's DNS domain. Otherwise the
     * whole name is a user of the listener's own domain. */
    at = strrchr(user, '@');
    if(at && dns && kb__str_eq(at + 1, dns))
      return kb__resolved(users, home, user, (size_t)(at - user), out);
    return kb__resolved(users, home, user, strlen(user), out);
  }
  if(dns && kb__str_eq(domain, dns))
    domain = home;
  return kb__resolved(users, domain, user, strlen(user), out);
}

const char *kb_resolve_name(enum kb_resolve r)
{
  switch(r) {
  case KB_RESOLVE_OK:
    return "ok";
  case KB_RESOLVE_NO_DOMAIN:
    return "unknown domain";
  case KB_RESOLVE_NO_USER:
    return "unknown user";
  case KB_RESOLVE_BAD_NAME:
    return "malformed name";
  }
  return "?";
}

size_t kb_users_count(const struct kb_users *users)
{
  return users ? users->count : 0;
}
