/*
 * status.c - GET /status (and the console's "status" event): every member
 * with its state, why its policy is what it is, its counters and its
 * score since the last change of its policy (the live view's); the
 * balancer's and Exchange's counters (with the logins Extended Protection
 * refused, and why); what a trainer can pick: the users a session runs as
 * and the scenarios serve can switch to.
 */
#include "admin_int.h"
#include "live/live.h"

#include <stdlib.h>
#include <string.h>

/* A member's score as JSON: {"since": ..., "at": ..., "sessions": N,
 * "errors": N, "strip": [{"conn": N, "user": ..., "error": B}]}. */
static json_t *admin__score_json(struct live *live, const char *member)
{
  struct live_score *sc = malloc(sizeof(*sc));
  json_t *strip = json_array(), *j;
  size_t i;

  if(!sc) {
    json_decref(strip);
    return json_null();
  }
  live_score(live, member, sc);
  for(i = 0; i < sc->nmarks; i++)
    json_array_append_new(
        strip,
        json_pack("{s:I, s:s?, s:b}", "conn", (json_int_t)sc->marks[i].conn,
                  "user", sc->marks[i].user[0] ? sc->marks[i].user : NULL,
                  "error", sc->marks[i].error));
  j = json_pack("{s:s, s:s, s:I, s:I, s:o}", "since", sc->since, "at", sc->at,
                "sessions", (json_int_t)sc->sessions, "errors",
                (json_int_t)sc->errors, "strip", strip);
  free(sc);
  return j ? j : json_null();
}

/* One member as /status shows it; called with the lock held. */
static json_t *admin__member_json(struct admin *a, size_t i,
                                  const struct balancer_stats *bs)
{
  const struct admin__member *m = &a->members[i];
  struct proxy_stats ps;
  json_t *j;

  proxy_stats(m->proxy, &ps);
  j = json_pack(
      "{s:I, s:s, s:s, s:s, s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
      "s:I, s:I}",
      "index", (json_int_t)(i + 1), "name", m->name, "url", m->url, "patch",
      scenario_patch_name(m->patch), "script", m->script, "policy",
      proxy_policy_name(proxy_get_policy(m->proxy)), "why",
      admin_policy_reason(m->patch, m->script), "connections",
      (json_int_t)ps.connections, "requests", (json_int_t)ps.requests,
      "challenges", (json_int_t)ps.challenges, "auth_ok",
      (json_int_t)ps.auth_ok, "auth_failed",
      (json_int_t)(ps.auth_failed + ps.basic_failed), "reauth_skipped",
      (json_int_t)ps.reauth_skipped, "forwarded", (json_int_t)ps.forwarded,
      "forwarded_empty_posts", (json_int_t)ps.forwarded_empty_posts);
  if(j && a->balancer) {
    json_object_set_new(j, "balanced_connections",
                        json_integer((json_int_t)bs->member_connections[i]));
    json_object_set_new(j, "open_connections",
                        json_integer((json_int_t)bs->member_open[i]));
  }
  if(j && a->live)
    json_object_set_new(j, "score", admin__score_json(a->live, m->name));
  return j;
}

/* What a trainer can pick: the users' names (never their passwords), the
 * client kinds a session can be run as and the catalogue, into j. Called
 * with the lock held. */
static void admin__choices_json(struct admin *a, json_t *j)
{
  json_t *users = json_array(), *catalogue = json_array();
  json_t *kinds = json_array();
  const struct client_kind_info *k;
  size_t i;

  for(i = 0; i < a->nusers; i++) {
    size_t n = strcspn(a->users[i], ":");
    json_array_append_new(users, json_stringn(a->users[i], n));
  }
  for(i = 0; i < a->ncatalogue; i++)
    json_array_append_new(catalogue, json_string(a->catalogue[i]));
  for(i = 0; (k = client_kind_info((enum client_kind)i)) != NULL; i++)
    json_array_append_new(kinds,
                          json_pack("{s:s, s:s, s:s, s:b}", "name", k->name,
                                    "label", k->label, "symptom", k->symptom,
                                    "notifies", k->notifies));
  json_object_set_new(j, "users", users);
  json_object_set_new(j, "kinds", kinds);
  json_object_set_new(j, "catalogue", catalogue);
  json_object_set_new(j, "restartable", json_boolean(a->restart.fn != NULL));
  json_object_set_new(
      j, "generation",
      json_integer(a->live ? (json_int_t)live_generation(a->live) : 0));
}

/* Builds GET /status: every member with its state, why its policy is what
 * it is, its counters and score; the balancer's and Exchange's counters;
 * the users and scenarios a trainer can pick. Returns a new JSON object,
 * or NULL when out of memory. */
json_t *admin__status(struct admin *a)
{
  struct balancer_stats bs;
  struct backend_stats es;
  json_t *members = json_array();
  json_t *balancer = json_null();
  json_t *exchange = json_null();
  json_t *j;
  size_t i;

  memset(&bs, 0, sizeof(bs));
  /* A restart replaces what the array points to: read it all under the
   * lock. */
  pthread_mutex_lock(&a->lock);
  if(a->balancer) {
    balancer_stats(a->balancer, &bs);
    json_decref(balancer);
    balancer =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "url", a->balancer_url,
                  "mode", balancer_mode_name(a->balancer_mode), "connections",
                  (json_int_t)bs.accepted, "open", (json_int_t)bs.open,
                  "connect_failed", (json_int_t)bs.connect_failed,
                  "bytes_to_members", (json_int_t)bs.bytes_to_members,
                  "bytes_to_clients", (json_int_t)bs.bytes_to_clients);
  }
  for(i = 0; i < a->nmembers; i++)
    json_array_append_new(members, admin__member_json(a, i, &bs));
  if(a->backend) {
    backend_stats(a->backend, &es);
    exchange = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "url", a->backend_url,
        "connections", (json_int_t)es.connections, "requests",
        (json_int_t)es.requests, "ews_posts", (json_int_t)es.ews_posts,
        "empty_posts", (json_int_t)es.empty_posts, "soap_faults",
        (json_int_t)es.soap_faults, "oof_ok", (json_int_t)es.oof_ok,
        "availability_ok", (json_int_t)es.availability_ok, "autodiscover_ok",
        (json_int_t)es.autodiscover_ok);
    if(exchange && es.channel_binding_refused) {
      /* Extended Protection: how many logins it refused, and why the
       * first was (the binding the client computed against Exchange's). */
      json_object_set_new(exchange, "channel_binding_refused",
                          json_integer((json_int_t)es.channel_binding_refused));
      json_object_set_new(exchange, "channel_binding_why",
                          json_string(es.channel_binding_why));
    }
  }
  j = json_pack("{s:s, s:s?, s:o, s:o, s:o}", "kbsim", "1", "scenario",
                a->scenario, "balancer", balancer, "members", members,
                "exchange", exchange);
  if(j)
    admin__choices_json(a, j);
  pthread_mutex_unlock(&a->lock);
  return j;
}
