/*
 * sessions.c - POST /sessions: Communicator sessions run inside serve, so
 * a trainer needs no terminal. Each is client/'s, as `kbsim client` runs
 * it, on the real clock and the kernel's randomness, against the balancer
 * (the next member, as any client gets) or one member's own port, signed
 * in as one of the scenario's users (the password never crosses HTTP).
 *
 * The sessions run one after another on the request's own thread
 * (libmicrohttpd runs one per connection), outside the lock; their legs
 * reach every console through the members' own traces, as any client's
 * do. A restart waits until they have ended (restart.c).
 */
#include "admin_int.h"
#include "client/client.h"
#include "client/verdict.h"
#include "common/kb_users.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Each request of a session gives up after this long. */
#define ADMIN_SESSION_TIMEOUT_MS 10000L

/* What one POST /sessions runs: read from the body, then copied out of
 * the array under the lock. */
struct admin__run {
  unsigned count;
  enum client_kind kind; /* communicator unless asked */
  char user[256];        /* "DOMAIN\\user" as asked, or "" for the first user */
  char member[64];       /* as asked, or "" for the balancer */
  /* Copied under the lock. */
  char spec[512]; /* the user's "DOMAIN\\user:password"; wiped */
  char name[256]; /* the user's "DOMAIN\\user" */
  char url[128];
  /* The array's CA (PEM) or NULL: borrowed, valid while a->running counts
   * this run (a restart waits for it). */
  const char *ca_pem;
  char target[64]; /* "balancer", or the member's name */
  unsigned first_id;
};

/* Reads the body of a POST /sessions into *r: "user" (a string), "member"
 * (a number from 1 or a name; null or absent: the balancer), "count"
 * (1 to ADMIN_MAX_SESSIONS; absent: 1) and "kind" (a client kind's name;
 * absent: communicator), each optional. Returns 0, or -1 with a one-line
 * reason in why. */
static int admin__run_parse(const struct admin__request *req,
                            struct admin__run *r, char *why, size_t whylen)
{
  json_t *body = admin__body(req, why, whylen);
  json_t *user, *member, *count, *kind;
  int result = -1;

  if(!body)
    return -1;
  user = json_object_get(body, "user");
  member = json_object_get(body, "member");
  count = json_object_get(body, "count");
  kind = json_object_get(body, "kind");
  r->count = 1;
  r->kind = CLIENT_KIND_COMMUNICATOR;
  if(user && !json_is_null(user) &&
     (!json_is_string(user) || json_string_length(user) >= sizeof(r->user)))
    snprintf(why, whylen,
             "\"user\" must be a user's name, as "
             "\"FABRIKAM\\\\alice\"");
  else if(member && !json_is_null(member) && !json_is_string(member) &&
          !json_is_integer(member))
    snprintf(why, whylen,
             "\"member\" must be a member's number (from 1) or "
             "name, or null for the balancer");
  else if(count && (!json_is_integer(count) || json_integer_value(count) < 1 ||
                    json_integer_value(count) > ADMIN_MAX_SESSIONS))
    snprintf(why, whylen, "\"count\" must be a number from 1 to %d",
             ADMIN_MAX_SESSIONS);
  else if(kind && !json_is_null(kind) &&
          client_kind_parse(json_string_value(kind), &r->kind))
    snprintf(why, whylen, "\"kind\" must be a client kind: %s",
             CLIENT_KIND_NAMES);
  else {
    if(json_is_string(user))
      snprintf(r->user, sizeof(r->user), "%s", json_string_value(user));
    if(json_is_string(member))
      snprintf(r->member, sizeof(r->member), "%.63s",
               json_string_value(member));
    else if(json_is_integer(member))
      snprintf(r->member, sizeof(r->member), "%lld",
               (long long)json_integer_value(member));
    if(count)
      r->count = (unsigned)json_integer_value(count);
    result = 0;
  }
  json_decref(body);
  return result;
}

/* The index of the user named name ("DOMAIN\\user", any case), or of the
 * first user when name is empty; -1 when there is none. Called with the
 * lock held. */
static long admin__find_user(const struct admin *a, const char *name)
{
  size_t i;

  if(!name[0])
    return a->nusers ? 0 : -1;
  for(i = 0; i < a->nusers; i++)
    if(strcspn(a->users[i], ":") == strlen(name) &&
       !strncasecmp(a->users[i], name, strlen(name)))
      return (long)i;
  return -1;
}

/* Copies out of the array, under the lock, who the sessions sign in as
 * and where they go, and counts them as running. Returns 0, or the HTTP
 * status of a refusal with a one-line reason in why. */
static unsigned admin__run_claim(struct admin *a, struct admin__run *r,
                                 char *why, size_t whylen)
{
  char names[256];
  long u, m;
  size_t i, pos = 0;

  if(a->restarting) {
    snprintf(why, whylen,
             "a reset or a switch is under way; run the "
             "sessions when it is done");
    return MHD_HTTP_CONFLICT;
  }
  if(!a->nmembers) {
    snprintf(why, whylen, "no array runs: the last restart failed");
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  }
  if(!a->nusers) {
    snprintf(why, whylen, "this serve has no users to sign in as");
    return MHD_HTTP_CONFLICT;
  }
  if((u = admin__find_user(a, r->user)) < 0) {
    for(i = 0; i < a->nusers && pos < sizeof(names); i++) {
      int n =
          snprintf(names + pos, sizeof(names) - pos, "%s%.*s", i ? ", " : "",
                   (int)strcspn(a->users[i], ":"), a->users[i]);
      if(n < 0)
        break;
      pos += (size_t)n;
    }
    snprintf(why, whylen, "no user '%.100s' in this scenario; users: %s",
             r->user, names);
    return MHD_HTTP_NOT_FOUND;
  }
  m = r->member[0] ? admin__find_member(a, r->member) : -1;
  if(r->member[0] && m < 0) {
    admin__member_list(a, names, sizeof(names));
    snprintf(why, whylen, "no member '%s' in this array; members: %s",
             r->member, names);
    return MHD_HTTP_NOT_FOUND;
  }
  snprintf(r->spec, sizeof(r->spec), "%s", a->users[u]);
  snprintf(r->name, sizeof(r->name), "%.*s", (int)strcspn(r->spec, ":"),
           r->spec);
  if(m < 0 && a->balancer_url[0]) {
    snprintf(r->url, sizeof(r->url), "%s", a->balancer_url);
    snprintf(r->target, sizeof(r->target), "balancer");
  }
  else {
    /* Without a balancer, the one listener. */
    m = m < 0 ? 0 : m;
    snprintf(r->url, sizeof(r->url), "%s", a->members[m].url);
    snprintf(r->target, sizeof(r->target), "%s", a->members[m].name);
  }
  r->ca_pem = a->ca_pem;
  r->first_id = a->session_ids + 1;
  a->session_ids += r->count;
  a->running++;
  return 0;
}

/* Runs one session as r's user with client id, and describes it: {"n": N,
 * "served_by": NAME | null, "outcome_class": ..., "error": bool, "posts":
 * N, "posts_failed": N}. *error says the user saw the error. Returns NULL
 * when out of memory. */
static json_t *admin__run_one(const struct admin__run *r, unsigned id,
                              unsigned n, bool *error)
{
  struct client_config cfg;
  struct client *c = NULL;
  struct client_post_result res;
  struct client_view view;
  enum client_class klass = CLIENT_CLASS_CLEAN;
  char domain[128], user[128], password[256], err[512], served[64] = "";
  unsigned posts = 0, failed = 0;
  json_t *j;

  *error = false;
  memset(&cfg, 0, sizeof(cfg));
  if(kb_users_split_spec(r->spec, false, domain, sizeof(domain), user,
                         sizeof(user), password, sizeof(password), err,
                         sizeof(err)))
    return json_pack("{s:I, s:n, s:s, s:b, s:s}", "n", (json_int_t)n,
                     "served_by", "outcome_class", "infrastructure", "error",
                     false, "detail", err);
  /* Real clock and the kernel's randomness (zeroed), as `kbsim client`. */
  cfg.id = id;
  cfg.base_url = r->url;
  cfg.ca_pem = r->ca_pem;
  cfg.domain = domain;
  cfg.user = user;
  cfg.password = password;
  cfg.ews_posts = 2;
  cfg.kind = r->kind;
  cfg.timeout_ms = ADMIN_SESSION_TIMEOUT_MS;
  if(client_create(&cfg, &c, err, sizeof(err))) {
    explicit_bzero(password, sizeof(password));
    return json_pack("{s:I, s:n, s:s, s:b, s:s}", "n", (json_int_t)n,
                     "served_by", "outcome_class", "infrastructure", "error",
                     false, "detail", err);
  }
  explicit_bzero(password, sizeof(password));
  while(client_step(c, &res) == 1) {
    enum client_class k = client_result_class(&res);

    posts++;
    failed += res.outcome != CLIENT_OK;
    if(k > klass)
      klass = k;
    if(res.served_by[0])
      snprintf(served, sizeof(served), "%s", res.served_by);
  }
  client_view(c, &view);
  client_destroy(c);
  *error = view.integration_error && klass != CLIENT_CLASS_INFRASTRUCTURE;
  j = json_pack("{s:I, s:s?, s:s, s:b, s:I, s:I}", "n", (json_int_t)n,
                "served_by", served[0] ? served : NULL, "outcome_class",
                client_class_name(klass), "error", *error, "posts",
                (json_int_t)posts, "posts_failed", (json_int_t)failed);
  return j;
}

/* POST /sessions: runs the sessions, then answers {"action": "sessions",
 * "user": ..., "kind": NAME, "target": "balancer" | NAME, "count": N,
 * "errors": N, "sessions": [...]}. */
enum MHD_Result admin__sessions(struct admin *a, struct MHD_Connection *conn,
                                const struct admin__request *req)
{
  struct admin__run r;
  char why[600];
  unsigned status, i, errors = 0;
  json_t *list, *body;

  memset(&r, 0, sizeof(r));
  if(admin__run_parse(req, &r, why, sizeof(why)))
    return admin__error(conn, MHD_HTTP_BAD_REQUEST, NULL, "%s", why);
  pthread_mutex_lock(&a->lock);
  status = admin__run_claim(a, &r, why, sizeof(why));
  pthread_mutex_unlock(&a->lock);
  if(status) {
    explicit_bzero(r.spec, sizeof(r.spec));
    return admin__error(conn, status, NULL, "%s", why);
  }
  list = json_array();
  for(i = 0; i < r.count && !atomic_load(&a->stopping); i++) {
    bool error;

    json_array_append_new(list,
                          admin__run_one(&r, r.first_id + i, i + 1, &error));
    errors += error;
  }
  explicit_bzero(r.spec, sizeof(r.spec));
  pthread_mutex_lock(&a->lock);
  if(!--a->running)
    pthread_cond_broadcast(&a->idle);
  pthread_mutex_unlock(&a->lock);
  body = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "action", "sessions",
                   "user", r.name, "kind", client_kind_name(r.kind), "target",
                   r.target, "count", (json_int_t)r.count, "errors",
                   (json_int_t)errors, "sessions", list);
  return admin__reply(conn, MHD_HTTP_OK, body, NULL);
}
