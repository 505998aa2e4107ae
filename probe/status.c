/*
 * status.c - Exchange's status as the probe reads it (GET /kbsim/status,
 * backend.h; libcurl and jansson): the totals and each connection's
 * counters, and what moved between two readings.
 */
#include "probe_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/kb_buf.h"

#define PROBE_MAX_STATUS ((size_t)4 * 1024 * 1024)
#define PROBE_MAX_CONNS 1024u

static size_t probe_write_cb(char *data, size_t size, size_t n, void *cls)
{
  return kb_buf_add(cls, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* The unsigned integer member key of o, 0 when absent (an Exchange older
 * than the member). */
static uint64_t probe_u64(const json_t *o, const char *key)
{
  json_int_t v = json_integer_value(json_object_get(o, key));
  return v > 0 ? (uint64_t)v : 0;
}

/* The string member key of o into out, "" when absent. */
static void probe_str(const json_t *o, const char *key, char *out, size_t len)
{
  const char *v = json_string_value(json_object_get(o, key));
  snprintf(out, len, "%s", v ? v : "");
}

/* Reads one connection c of the status into *pc. */
static void probe_conn_read(const json_t *c, struct probe_conn *pc)
{
  const json_t *ids = json_object_get(c, "identities");
  const json_t *offers = json_object_get(c, "www_authenticate");
  size_t j;

  pc->id = probe_u64(c, "id");
  pc->requests = probe_u64(c, "requests");
  pc->mismatches = probe_u64(c, "mismatches");
  pc->challenges = probe_u64(c, "challenges");
  pc->type3_without_challenge = probe_u64(c, "type3_without_challenge");
  pc->unauthenticated_bodies = probe_u64(c, "unauthenticated_bodies");
  probe_str(c, "last_mismatch_mailbox", pc->mixed_mailbox,
            sizeof(pc->mixed_mailbox));
  probe_str(c, "last_mismatch_identity", pc->mixed_identity,
            sizeof(pc->mixed_identity));
  for(j = 0; j < json_array_size(ids); j++) {
    const char *id = json_string_value(json_array_get(ids, j));
    if(!id || !*id)
      continue;
    if(pc->nids < 2)
      snprintf(pc->ids[pc->nids++], sizeof(pc->ids[0]), "%s", id);
    else
      pc->more_ids = true;
  }
  for(j = 0; j < json_array_size(offers) && pc->noffers < PROBE_MAX_OFFERS;
      j++) {
    const char *v = json_string_value(json_array_get(offers, j));
    if(v)
      snprintf(pc->offers[pc->noffers++], sizeof(pc->offers[0]), "%s", v);
  }
}

void probe__status_read(const char *url, long timeout_ms,
                        struct probe_status *st)
{
  struct kb_buf body;
  CURL *curl = curl_easy_init();
  json_t *doc = NULL, *list;
  json_error_t jerr;
  CURLcode res;
  long code = 0;
  size_t i;

  memset(st, 0, sizeof(*st));
  snprintf(st->why, sizeof(st->why),
           url ? "out of memory" : "no --exchange-status URL given");
  kb_buf_init(&body, PROBE_MAX_STATUS);
  if(!curl || !url)
    goto out;
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, probe_write_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  res = curl_easy_perform(curl);
  if(res != CURLE_OK) {
    snprintf(st->why, sizeof(st->why), "%s", curl_easy_strerror(res));
    goto out;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  if(code != 200) {
    snprintf(st->why, sizeof(st->why), "it answered HTTP %ld, not 200", code);
    goto out;
  }
  doc = json_loadb(body.data, body.len, 0, &jerr);
  if(!doc) {
    snprintf(st->why, sizeof(st->why), "its answer is not JSON (%.100s)",
             body.len ? jerr.text : "an empty body");
    goto out;
  }
  list = json_object_get(doc, "per_connection");
  if(!json_is_object(doc) || !json_is_array(list)) {
    snprintf(st->why, sizeof(st->why),
             "its JSON has no per_connection list: not Exchange's status");
    goto out;
  }
  st->requests = probe_u64(doc, "requests");
  st->empty_posts = probe_u64(doc, "empty_posts");
  st->mismatches = probe_u64(doc, "mismatches");
  st->nconns = json_array_size(list);
  if(st->nconns > PROBE_MAX_CONNS)
    st->nconns = PROBE_MAX_CONNS;
  st->conns = calloc(st->nconns ? st->nconns : 1, sizeof(*st->conns));
  if(!st->conns)
    goto out;
  for(i = 0; i < st->nconns; i++)
    probe_conn_read(json_array_get(list, i), &st->conns[i]);
  st->ok = true;
out:
  json_decref(doc);
  kb_buf_free(&body);
  curl_easy_cleanup(curl);
}

void probe__status_free(struct probe_status *st)
{
  free(st->conns);
  memset(st, 0, sizeof(*st));
}

const struct probe_conn *probe__conn_find(const struct probe_status *st,
                                          uint64_t id)
{
  size_t i;

  for(i = 0; i < st->nconns; i++)
    if(st->conns[i].id == id)
      return &st->conns[i];
  return NULL;
}

/* The requests connection id had in st, 0 when it was not there. */
static uint64_t probe_conn_requests(const struct probe_status *st, uint64_t id)
{
  const struct probe_conn *c = probe__conn_find(st, id);
  return c ? c->requests : 0;
}

bool probe__conn_served(const struct probe_status *before,
                        const struct probe_status *after, uint64_t id,
                        const char *identity)
{
  const struct probe_conn *c = probe__conn_find(after, id);
  unsigned k;

  if(!c || c->requests == probe_conn_requests(before, id))
    return false;
  for(k = 0; k < c->nids; k++)
    if(!strcasecmp(c->ids[k], identity))
      return true;
  return false;
}

bool probe__conn_mixed(const struct probe_status *before,
                       const struct probe_status *after, uint64_t id)
{
  const struct probe_conn *b = probe__conn_find(before, id);
  const struct probe_conn *a = probe__conn_find(after, id);
  return a && a->mismatches > (b ? b->mismatches : 0);
}

/* What connection c (as after has it) did since before, into *m. Returns
 * whether it served requests meanwhile. */
static bool probe_moved_one(const struct probe_status *before,
                            const struct probe_conn *c, struct probe_moved *m)
{
  const struct probe_conn *was = probe__conn_find(before, c->id);

  if(c->requests == (was ? was->requests : 0))
    return false;
  m->conn = c;
  m->is_new = !was;
  m->requests = c->requests - (was ? was->requests : 0);
  m->challenges = c->challenges - (was ? was->challenges : 0);
  m->type3_without_challenge =
      c->type3_without_challenge - (was ? was->type3_without_challenge : 0);
  m->unauthenticated_bodies =
      c->unauthenticated_bodies - (was ? was->unauthenticated_bodies : 0);
  m->mismatches = c->mismatches - (was ? was->mismatches : 0);
  return true;
}

size_t probe__moved(const struct probe_status *before,
                    const struct probe_status *after, struct probe_moved *out,
                    size_t max)
{
  size_t i, n = 0;

  if(!before->ok || !after->ok)
    return 0;
  for(i = 0; i < after->nconns && n < max; i++)
    if(probe_moved_one(before, &after->conns[i], &out[n]))
      n++;
  return n;
}

void probe__status_delta(const struct probe_status *before,
                         const struct probe_status *after,
                         struct probe_exchange *ex)
{
  struct probe_moved m;
  size_t i;
  unsigned n = 0, k;

  memset(ex, 0, sizeof(*ex));
  if(!before->ok || !after->ok)
    return;
  ex->known = true;
  ex->requests = after->requests - before->requests;
  ex->empty_posts = after->empty_posts - before->empty_posts;
  ex->mismatches = after->mismatches - before->mismatches;
  for(i = 0; i < after->nconns; i++) {
    const struct probe_conn *c = &after->conns[i];

    if(!probe_moved_one(before, c, &m))
      continue;
    ex->connections++;
    ex->challenges += m.challenges;
    ex->type3_without_challenge += m.type3_without_challenge;
    ex->unauthenticated_bodies += m.unauthenticated_bodies;
    if(c->nids > 1)
      ex->shared++;
    if(!ex->mixed_conn && m.mismatches) {
      ex->mixed_conn = c->id;
      snprintf(ex->mixed_mailbox, sizeof(ex->mixed_mailbox), "%s",
               c->mixed_mailbox);
      snprintf(ex->mixed_identity, sizeof(ex->mixed_identity), "%s",
               c->mixed_identity);
    }
    for(k = 0; k < c->nids && n < 2; k++) {
      if(n && !strcmp(ex->identities[0], c->ids[k]))
        continue;
      snprintf(ex->identities[n++], sizeof(ex->identities[0]), "%s", c->ids[k]);
    }
  }
}
