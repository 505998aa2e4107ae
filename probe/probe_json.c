/*
 * probe_json.c - the probe's report as JSON, written with jansson:
 * {"listener", "class", "class_text", "exit_code", "checks": [{"name",
 * "verdict", "line", "exchange": {..., "mixed": {"connection", "mailbox",
 * "identity", "reused"} or null}}]}.
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
      "{s:I,s:I,s:I,s:I,s:[s,s],s:o}", "requests", (json_int_t)ex->requests,
      "empty_posts", (json_int_t)ex->empty_posts, "mismatches",
      (json_int_t)ex->mismatches, "shared_connections", (json_int_t)ex->shared,
      "identities", ex->identities[0], ex->identities[1], "mixed", mixed);
}

int probe_write_json(const struct probe_config *config,
                     const struct probe_report *report, const char *path,
                     char *err, size_t errlen)
{
  json_t *doc, *checks = json_array();
  int i, result = -1;

  doc = json_pack("{s:s,s:s?,s:s,s:s,s:i}", "listener", config->url,
                  "exchange_status", config->status_url, "class",
                  probe_class_name(report->cls), "class_text",
                  probe_class_text(report->cls), "exit_code",
                  probe_class_exit(report->cls));
  if(!doc || !checks)
    goto out;
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    const struct probe_result *r = &report->checks[i];
    json_t *c =
        json_pack("{s:s,s:s,s:s,s:i,s:i,s:b,s:o}", "name",
                  probe_check_name((enum probe_check)i), "verdict",
                  probe_verdict_name(r->verdict), "line", r->line, "posts_ok",
                  (int)r->posts_ok, "posts_failed", (int)r->posts_failed,
                  "integration_error", r->integration_error, "exchange",
                  probe_json_exchange(&r->exchange));
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
