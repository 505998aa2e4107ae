/*
 * status.c - GET /status (and the console's "status" event): every member
 * with its state, why its policy is what it is and its counters; the
 * balancer's and Exchange's counters.
 */
#include "admin_int.h"

#include <string.h>

/* Builds GET /status: every member with its state, why its policy is what
 * it is and its counters; the balancer's and Exchange's counters. Returns
 * a new JSON object, or NULL when out of memory. */
json_t *admin__status(struct admin *a)
{
  struct balancer_stats bs;
  struct backend_stats es;
  json_t *members = json_array();
  json_t *balancer = json_null();
  json_t *exchange;
  size_t i;

  memset(&bs, 0, sizeof(bs));
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
  pthread_mutex_lock(&a->lock);
  for(i = 0; i < a->nmembers; i++) {
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
                          json_integer((json_int_t)bs.member_connections[i]));
      json_object_set_new(j, "open_connections",
                          json_integer((json_int_t)bs.member_open[i]));
    }
    json_array_append_new(members, j);
  }
  pthread_mutex_unlock(&a->lock);
  backend_stats(a->backend, &es);
  exchange = json_pack(
      "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "url", a->backend_url,
      "connections", (json_int_t)es.connections, "requests",
      (json_int_t)es.requests, "ews_posts", (json_int_t)es.ews_posts,
      "empty_posts", (json_int_t)es.empty_posts, "soap_faults",
      (json_int_t)es.soap_faults, "oof_ok", (json_int_t)es.oof_ok,
      "availability_ok", (json_int_t)es.availability_ok, "autodiscover_ok",
      (json_int_t)es.autodiscover_ok);
  return json_pack("{s:s, s:s?, s:o, s:o, s:o}", "kbsim", "1", "scenario",
                   a->scenario, "balancer", balancer, "members", members,
                   "exchange", exchange);
}
