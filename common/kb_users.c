/*
 * kb_users.c - the user store. A short array searched linearly: stores hold
 * a handful of users, and lookups happen once per handshake.
 */
#include "kb_users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static struct kb_user *kb__find(const struct kb_users *users,
                                const char *domain, const char *user)
{
  size_t i;

  for(i = 0; users && i < users->count; i++) {
    if(!strcasecmp(users->items[i].domain, domain) &&
       !strcasecmp(users->items[i].user, user))
      return &users->items[i];
  }
  return NULL;
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

int kb_users_add_spec(struct kb_users *users, const char *spec, char *err,
                      size_t errlen)
{
  char domain[KB_USERS_FIELD_MAX];
  char user[KB_USERS_FIELD_MAX];
  const char *slash;
  const char *colon;
  size_t dlen;
  size_t ulen;

  if(!spec) {
    snprintf(err, errlen, "internal error: kb_users_add_spec given NULL");
    return -1;
  }
  slash = strchr(spec, '\\');
  colon = slash ? strchr(slash, ':') : NULL;
  if(!slash || !colon) {
    /* Show only what comes before any ':' - the rest may be a password. */
    snprintf(err, errlen,
             "user '%.*s' is not DOMAIN\\user:password; write it like "
             "'FABRIKAM\\alice:Secret1' (quote it for the shell)",
             (int)(strcspn(spec, ":") < 60 ? strcspn(spec, ":") : 60), spec);
    return -1;
  }
  dlen = (size_t)(slash - spec);
  ulen = (size_t)(colon - slash - 1);
  if(dlen >= sizeof(domain) || ulen >= sizeof(user)) {
    snprintf(err, errlen,
             "user spec: domain and user are limited to %d "
             "bytes each",
             KB_USERS_FIELD_MAX - 1);
    return -1;
  }
  memcpy(domain, spec, dlen);
  domain[dlen] = '\0';
  memcpy(user, slash + 1, ulen);
  user[ulen] = '\0';
  return kb_users_add(users, domain, user, colon + 1, err, errlen);
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

size_t kb_users_count(const struct kb_users *users)
{
  return users ? users->count : 0;
}
