/*
 * probe_json.c - the probe's report as JSON, written with jansson:
 * {"listener", "class", "class_text", "exit_code", "defects": [names],
 * "checks": [{"name", "verdict", "line", "defect", "exchange": {...,
 * "mixed": {"connection", "mailbox", "identity", "reused"} or null}}]}.
 */
#include <stdio.h>

#include <jansson.h>

#include "probe/probe.h"

/* Exchange's deltas of one check, or null when unknown. */
static json_t *probe_json_exchange(const struct probe_exchange *ex)
{
  json_t *mixed;

  if(!ex->known)
    return json_null();
  mixed = ex->mixed_conn
              ? json_pack("{s:I,s:s,s:s,s:b}", "connection",
                          (json_int_t)ex->mixed_conn, "mailbox",
                          ex->mixed_mailbox, "identity", ex->mixed_identity,
                          "reused", ex->mixed_conn_reused)
              : json_null();
  return json_pack(
      "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:[s,s],s:o}", "requests",
      (json_int_t)ex->requests, "empty_posts", (json_int_t)ex->empty_posts,
      "mismatches", (json_int_t)ex->mismatches, "shared_connections",
      (json_int_t)ex->shared, "connections", (json_int_t)ex->connections,
      "challenges", (json_int_t)ex->challenges, "type3_without_challenge",
      (json_int_t)ex->type3_without_challenge, "unauthenticated_bodies",
      (json_int_t)ex->unauthenticated_bodies, "identities", ex->identities[0],
      ex->identities[1], "mixed", mixed);
}

/* The names of the defects report found, in kb_defect.h's order (a new
 * array; NULL when out of memory). */
static json_t *probe_json_defects(const struct probe_report *report)
{
  json_t *list = json_array();
  int d;

  for(d = 0; list && d < KB_DEFECT_COUNT; d++)
    if(report->defects[d] &&
       json_array_append_new(list,
                             json_string(kb_defect_name((enum kb_defect)d)))) {
      json_decref(list);
      return NULL;
    }
  return list;
}

int probe_write_json(const struct probe_config *config,
                     const struct probe_report *report, const char *path,
                     char *err, size_t errlen)
{
  json_t *doc, *checks = json_array();
  int i, result = -1;

  doc = json_pack(
      "{s:s,s:s?,s:s,s:s,s:i,s:o?}", "listener", config->url, "exchange_status",
      config->status_url, "class", probe_class_name(report->cls), "class_text",
      probe_class_text(report->cls), "exit_code", probe_class_exit(report->cls),
      "defects", probe_json_defects(report));
  if(!doc || !checks)
    goto out;
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    const struct probe_result *r = &report->checks[i];
    enum kb_defect d = probe_check_defect((enum probe_check)i);
    json_t *c =
        json_pack("{s:s,s:s,s:s,s:s?,s:i,s:i,s:b,s:f,s:o}", "name",
                  probe_check_name((enum probe_check)i), "verdict",
                  probe_verdict_name(r->verdict), "line", r->line, "defect",
                  d == KB_DEFECT_COUNT ? NULL : kb_defect_name(d), "posts_ok",
                  (int)r->posts_ok, "posts_failed", (int)r->posts_failed,
                  "integration_error", r->integration_error, "seconds",
                  r->seconds, "exchange", probe_json_exchange(&r->exchange));
    if(!c || json_array_append_new(checks, c))
      goto out;
  }
  if(json_object_set(doc, "checks", checks))
    goto out;
  if(json_dump_file(doc, path, JSON_INDENT(2) | JSON_SORT_KEYS)) {
    snprintf(err, errlen, "cannot write the JSON report to %s; check the path",
             path);
    goto out;
  }
  result = 0;
out:
  if(result && !err[0])
    snprintf(err, errlen, "cannot build the JSON report: out of memory");
  json_decref(checks);
  json_decref(doc);
  return result;
}
