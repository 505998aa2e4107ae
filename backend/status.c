/*
 * status.c - the backend's counters as the JSON document GET /kbsim/status
 * answers (backend.h), written with jansson.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "backend/backend.h"

/* s as a JSON string. What a client named may not be UTF-8 (a trusted
 * Basic user name is raw bytes), and jansson refuses such a string: then
 * every byte from 0x80 up is written as the text \xNN, so the document
 * still says exactly which bytes came. NULL only when out of memory. */
static json_t *backend_status_text(const char *s)
{
  json_t *j = json_string(s);
  char *copy, *w;

  if(j)
    return j;
  copy = malloc(strlen(s) * 4 + 1);
  if(!copy)
    return NULL;
  for(w = copy; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if(c < 0x80)
      *w++ = (char)c;
    else
      w += sprintf(w, "\\x%02x", c);
  }
  *w = '\0';
  j = json_string(copy);
  free(copy);
  return j;
}

/* Adds one connection record to conns. Returns 0 or -1 (out of memory). */
static int backend_status_conn(json_t *conns,
                               const struct backend_conn_info *rec)
{
  json_t *c = json_object();
  json_t *ids = json_array();
  json_t *offers = json_array();
  unsigned i;
  int result = -1;

  if(!c || !ids || !offers)
    goto out;
  for(i = 0; i < rec->identities_count; i++)
    if(json_array_append_new(ids, backend_status_text(rec->identities[i])))
      goto out;
  for(i = 0; i < rec->www_authenticate_count; i++)
    if(json_array_append_new(offers,
                             backend_status_text(rec->www_authenticate[i])))
      goto out;
  if(json_object_set_new(c, "id", json_integer((json_int_t)rec->id)) ||
     json_object_set_new(c, "name", backend_status_text(rec->name)) ||
     json_object_set_new(c, "open", json_boolean(rec->open)) ||
     json_object_set_new(c, "requests",
                         json_integer((json_int_t)rec->requests)) ||
     json_object_set_new(c, "empty_posts",
                         json_integer((json_int_t)rec->empty_posts)) ||
     json_object_set_new(c, "mismatches",
                         json_integer((json_int_t)rec->mismatches)) ||
     json_object_set_new(c, "challenges",
                         json_integer((json_int_t)rec->challenges)) ||
     json_object_set_new(
         c, "type3_without_challenge",
         json_integer((json_int_t)rec->type3_without_challenge)) ||
     json_object_set_new(
         c, "unauthenticated_bodies",
         json_integer((json_int_t)rec->unauthenticated_bodies)) ||
     json_object_set_new(c, "last_mismatch",
                         backend_status_text(rec->last_mismatch)) ||
     json_object_set_new(c, "last_mismatch_mailbox",
                         backend_status_text(rec->last_mismatch_mailbox)) ||
     json_object_set_new(c, "last_mismatch_identity",
                         backend_status_text(rec->last_mismatch_identity)) ||
     json_object_set_new(
         c, "last_mismatch_request",
         json_integer((json_int_t)rec->last_mismatch_request)) ||
     json_object_set_new(c, "identities_dropped",
                         json_integer(rec->identities_dropped)) ||
     json_object_set(c, "identities", ids) ||
     json_object_set(c, "www_authenticate", offers) ||
     json_object_set_new(c, "www_authenticate_dropped",
                         json_integer(rec->www_authenticate_dropped)) ||
     json_array_append(conns, c))
    goto out;
  result = 0;
out:
  json_decref(offers);
  json_decref(ids);
  json_decref(c);
  return result;
}

char *backend_status_json(const struct backend *backend)
{
  struct backend_conn_info *recs = malloc(BACKEND_MAX_RECORDS * sizeof(*recs));
  struct backend_stats s;
  json_t *doc = json_object();
  json_t *conns = json_array();
  char *text = NULL;
  size_t n = 0, i;

  if(!recs || !doc || !conns)
    goto out;
  /* Records first: a request counted in a record is then also in the
   * totals read after it. */
  n = backend_connections(backend, recs, BACKEND_MAX_RECORDS);
  backend_stats(backend, &s);
  for(i = 0; i < n; i++)
    if(backend_status_conn(conns, &recs[i]))
      goto out;
#define KB_SET(field)                                                          \
  json_object_set_new(doc, #field, json_integer((json_int_t)s.field))
  if(KB_SET(connections) || KB_SET(status_readers) || KB_SET(requests) ||
     KB_SET(ews_posts) || KB_SET(empty_posts) || KB_SET(oof_ok) ||
     KB_SET(availability_ok) || KB_SET(soap_faults) ||
     KB_SET(autodiscover_ok) || KB_SET(not_found) || KB_SET(bad_method) ||
     KB_SET(too_large) || KB_SET(challenges) || KB_SET(refused) ||
     KB_SET(mismatches) || KB_SET(type3_without_challenge) ||
     KB_SET(unauthenticated_bodies) || KB_SET(channel_binding_refused) ||
     json_object_set_new(doc, "channel_binding_why",
                         backend_status_text(s.channel_binding_why)) ||
     json_object_set(doc, "per_connection", conns))
    goto out;
#undef KB_SET
  text = json_dumps(doc, JSON_COMPACT);
out:
  json_decref(conns);
  json_decref(doc);
  free(recs);
  return text;
}
