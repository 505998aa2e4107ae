/*
 * serve_report.c - `kbsim serve`'s JSON report (version 2, kind "serve",
 * docs/report.schema.json): every connection of both hops with why it
 * closed, every exchange with the observer's note codes, the members
 * with their counters and policies, and the summary's tallies.
 */
#include <stdlib.h>
#include <string.h>

#include "evidence_int.h"

/* The code of the reason c closed (transcript.c's evidence__write_close
 * says it for people), or NULL when it did not close. */
static const char *evidence__close_code(const struct evidence_conn *c)
{
  if(!c->closed)
    return NULL;
  if(c->why)
    return c->why->code;
  if(c->hop == KB_HOP_PROXY_BACKEND)
    return c->parent_closed ? EVIDENCE_CLOSE_WITH_CLIENT : EVIDENCE_CLOSE_ISA;
  return EVIDENCE_CLOSE_CLIENT;
}

static json_t *evidence__iso_json(bool known, int64_t us)
{
  char when[64];

  if(!known)
    return json_null();
  evidence__iso(us, when);
  return json_string(when);
}

/* Every connection with recorded bytes, as the transcript and the capture
 * name and order them. */
static json_t *evidence__serve_conns_json(const struct evidence_conns *conns)
{
  json_t *all = json_array();
  size_t i;

  for(i = 0; i < conns->count; i++) {
    const struct evidence_conn *c = &conns->items[i];
    const char *code = evidence__close_code(c);

    json_array_append_new(
        all, json_pack("{s:s, s:s, s:o, s:o, s:o, s:I}", "name", c->name, "hop",
                       c->hop == KB_HOP_CLIENT_PROXY ? "client-proxy"
                                                     : "proxy-backend",
                       "opened", evidence__iso_json(c->opened, c->open_us),
                       "closed", evidence__iso_json(c->closed, c->close_us),
                       "close", code ? json_string(code) : json_null(),
                       "messages", (json_int_t)c->nmsgs));
  }
  return all;
}

/* The codes of the notes observer (origin, conn) wrote about the request
 * that exchange at index at answered: those since its previous exchange. */
static json_t *evidence__serve_notes_json(const struct sim_recorder *rec,
                                          size_t at)
{
  const struct sim_event *x = &rec->events[at];
  json_t *codes = json_array();
  size_t k, first = at;

  for(k = at; k-- > 0;) {
    const struct sim_event *o = &rec->events[k];
    if(o->conn != x->conn || o->hop != x->hop || o->side != x->side ||
       strcmp(o->origin, x->origin))
      continue;
    if(o->kind == KB_TRACE_EXCHANGE || o->kind == KB_TRACE_OPEN)
      break;
    if(o->kind == KB_TRACE_NOTE && o->note != KB_NOTE_NONE)
      first = k;
  }
  for(k = first; k < at; k++) {
    const struct sim_event *o = &rec->events[k];
    if(o->kind == KB_TRACE_NOTE && o->note != KB_NOTE_NONE &&
       o->conn == x->conn && o->hop == x->hop && o->side == x->side &&
       !strcmp(o->origin, x->origin))
      json_array_append_new(codes, json_string(kb_note_name(o->note)));
  }
  return codes;
}

/* What the members answered on the client hop and Exchange on the
 * upstream one, in the order they were recorded (the real clock's), each
 * with the observer's notes about it; counts into the summary's tallies. */
static json_t *evidence__serve_exchanges_json(const struct sim_recorder *rec,
                                              json_int_t *requests,
                                              json_int_t *forwarded,
                                              json_int_t *server_errors)
{
  json_t *all = json_array();
  size_t i;

  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    const struct kb_exchange *x = &ev->exchange;
    char name[128];

    if(ev->kind != KB_TRACE_EXCHANGE || ev->side != KB_SIDE_SERVER)
      continue;
    if(ev->conn_name[0])
      snprintf(name, sizeof(name), "%s", ev->conn_name);
    else
      snprintf(name, sizeof(name), "%s conn %llu", ev->origin,
               (unsigned long long)ev->conn);
    if(ev->hop == KB_HOP_CLIENT_PROXY) {
      (*requests)++;
      if(x->status >= 500)
        (*server_errors)++;
    }
    else
      (*forwarded)++;
    json_array_append_new(
        all,
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:s, s:I, s:I, "
                  "s:o}",
                  "hop",
                  ev->hop == KB_HOP_CLIENT_PROXY ? "client-proxy"
                                                 : "proxy-backend",
                  "observer", ev->origin, "connection", name, "at",
                  evidence__iso_json(true, ev->at_us), "method", ev->method,
                  "path", ev->path, "status", x->status, "request_ntlm",
                  kb_auth_name(x->req_auth), "response_ntlm",
                  kb_auth_name(x->resp_auth), "request_body_length",
                  (json_int_t)x->req_body_len, "response_body_length",
                  (json_int_t)x->resp_body_len, "notes",
                  evidence__serve_notes_json(rec, i)));
  }
  return all;
}

/* The members as started, each with the policy in force at the stop and
 * its counters. */
static json_t *evidence__serve_members_json(const struct evidence_serve *srv)
{
  json_t *all = json_array();
  size_t i;

  for(i = 0; i < srv->nmembers; i++) {
    const struct scenario_member *m = &srv->sc->members[i];
    const struct proxy_stats *st = &srv->members[i];

    json_array_append_new(
        all,
        json_pack(
            "{s:s, s:s, s:b, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
            "s:I}}",
            "name", m->name, "patch", scenario_patch_name(m->patch), "script",
            m->script, "policy",
            proxy_policy_name(scenario_effective_policy(m->patch, m->script)),
            "policy_at_stop", proxy_policy_name(srv->policies[i]), "stats",
            "connections", (json_int_t)st->connections, "requests",
            (json_int_t)st->requests, "challenges", (json_int_t)st->challenges,
            "auth_ok", (json_int_t)st->auth_ok, "auth_failed",
            (json_int_t)st->auth_failed, "reauth_skipped",
            (json_int_t)st->reauth_skipped, "forwarded",
            (json_int_t)st->forwarded, "forwarded_empty_posts",
            (json_int_t)st->forwarded_empty_posts));
  }
  return all;
}

struct json_t *evidence_serve_report(struct sim_recorder *rec,
                                     const struct evidence_serve *srv)
{
  struct evidence_run run = {.sc = srv->sc,
                             .scenario_text = srv->scenario_text};
  struct evidence_conns conns;
  json_t *root = NULL, *balancer = json_null(), *conns_json, *exchanges;
  json_int_t requests = 0, forwarded = 0, server_errors = 0, resets = 0;
  json_int_t skipped = 0, empty_posts_forwarded = 0;
  char(*secrets)[256] = calloc(EVIDENCE_MAX_SECRETS, sizeof(*secrets));
  size_t i, nsecrets;

  if(!secrets)
    return NULL;
  nsecrets = evidence__secrets(srv->sc, secrets);
  for(i = 0; i < srv->nmembers; i++) {
    skipped += (json_int_t)srv->members[i].reauth_skipped;
    empty_posts_forwarded += (json_int_t)srv->members[i].forwarded_empty_posts;
  }
  if(srv->balanced)
    balancer = json_pack("{s:s, s:I, s:I, s:I}", "mode",
                         balancer_mode_name(srv->sc->balancer), "accepted",
                         (json_int_t)srv->balancer.accepted, "refused",
                         (json_int_t)srv->balancer.refused, "connect_failed",
                         (json_int_t)srv->balancer.connect_failed);
  pthread_mutex_lock(&rec->lock);
  if(evidence__group(rec, &conns)) {
    pthread_mutex_unlock(&rec->lock);
    json_decref(balancer);
    free(secrets);
    return NULL;
  }
  for(i = 0; i < conns.count; i++)
    if(conns.items[i].why && conns.items[i].why->reset)
      resets++;
  conns_json = evidence__serve_conns_json(&conns);
  exchanges = evidence__serve_exchanges_json(rec, &requests, &forwarded,
                                             &server_errors);
  root = json_pack(
      "{s:i, s:s, s:o, s:o, s:{s:s, s:s, s:s}, s:o, s:o, s:o, s:o, s:s, s:o, "
      "s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
      "version", 2, "kind", "serve", "stamp",
      evidence__stamp_json(secrets, nsecrets), "scenario",
      evidence__scenario_json(&run, secrets, nsecrets), "topology", "proxy",
      "ISA Server 2006 web listener", "backend", "Exchange 2007 EWS", "hops",
      "client-proxy, proxy-backend", "members",
      evidence__serve_members_json(srv), "balancer", balancer, "started",
      evidence__iso_json(true, srv->started_us), "stopped",
      evidence__iso_json(true, srv->stopped_us), "signal", srv->signal,
      "connections", conns_json, "exchanges", exchanges, "summary",
      "connections", (json_int_t)conns.count, "resets", resets, "requests",
      requests, "server_errors", server_errors, "forwarded", forwarded,
      "proxy_reauth_skipped", skipped, "proxy_empty_posts_forwarded",
      empty_posts_forwarded, "backend_empty_posts",
      (json_int_t)srv->backend.empty_posts);
  pthread_mutex_unlock(&rec->lock);
  evidence__conns_free(&conns);
  explicit_bzero(secrets, EVIDENCE_MAX_SECRETS * sizeof(*secrets));
  free(secrets);
  return root;
}

int evidence_write_serve_json(const struct json_t *report, const char *path,
                              char *err, size_t errlen)
{
  return evidence__json_write(report, path, err, errlen);
}
