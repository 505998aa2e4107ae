/*
 * report.c - the JSON report of a run (version 2, kind "run",
 * docs/report.schema.json) with jansson: the scenario, what each user
 * saw POST by POST, every recorded exchange of both hops and the
 * verdict; and the one writer of a JSON report to its file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/verdict.h"
#include "evidence_int.h"
#include "ntlm/ntlm.h"

static json_t *evidence__view_json(const struct client_view *v)
{
  json_t *notes = json_array();
  json_t *log = json_array();

  if(v->integration_error)
    json_array_append_new(notes, json_string(CLIENT_NOTIFICATION_TEXT));
  if(v->autodiscovery_failed_logged)
    json_array_append_new(log, json_string(CLIENT_LOG_TEXT));
  return json_pack("{s:o, s:o, s:b, s:b, s:b, s:s}", "notifications", notes,
                   "log", log, "presence_available", v->presence_available,
                   "scheduling_available", v->scheduling_available,
                   "autodiscover_ok", v->autodiscover_ok, "ews_url",
                   v->ews_url);
}

/* Returns the ISA member that served ev's connection: the observer of the
 * listener's side of that connection (ISA's accepting side of the client
 * hop, its connecting side of the upstream hop), as its own events name
 * it; NULL when no member recorded it (a live listener kbsim does not
 * run). Call with rec->lock held. */
static const char *evidence__member(const struct sim_recorder *rec,
                                    const struct sim_event *ev)
{
  enum kb_side isa =
      ev->hop == KB_HOP_CLIENT_PROXY ? KB_SIDE_SERVER : KB_SIDE_CLIENT;
  size_t i;

  for(i = 0; i < rec->count; i++) {
    const struct sim_event *o = &rec->events[i];
    if(o->hop == ev->hop && o->side == isa && o->origin[0] &&
       strcmp(o->origin, "balancer") && !strcmp(o->conn_name, ev->conn_name))
      return o->origin;
  }
  return NULL;
}

/* The recorded exchanges: Communicator's view of the first hop and
 * Exchange's view of the second, ordered by connection name then order. */
static json_t *evidence__exchanges_json(const struct sim_recorder *rec)
{
  json_t *all = json_array();
  size_t *idx = calloc(rec->count + 1, sizeof(*idx));
  size_t n = 0, i, k;

  if(!idx)
    return all;
  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    if(ev->kind != KB_TRACE_EXCHANGE || !ev->conn_name[0])
      continue;
    if((ev->hop == KB_HOP_CLIENT_PROXY && ev->side == KB_SIDE_CLIENT) ||
       (ev->hop == KB_HOP_PROXY_BACKEND && ev->side == KB_SIDE_SERVER))
      idx[n++] = i;
  }
  /* Insertion sort by name keeps arrival order within one connection
   * (stable); n is the number of legs in a run. */
  for(i = 1; i < n; i++) {
    size_t v = idx[i];
    for(k = i; k > 0 && evidence_name_cmp(rec->events[idx[k - 1]].conn_name,
                                          rec->events[v].conn_name) > 0;
        k--)
      idx[k] = idx[k - 1];
    idx[k] = v;
  }
  for(i = 0; i < n; i++) {
    const struct sim_event *ev = &rec->events[idx[i]];
    const struct kb_exchange *x = &ev->exchange;
    const char *member = evidence__member(rec, ev);
    json_array_append_new(
        all,
        json_pack(
            "{s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:s, s:I, s:I}", "hop",
            ev->hop == KB_HOP_CLIENT_PROXY ? "client-proxy" : "proxy-backend",
            "observer", ev->origin, "connection", ev->conn_name, "member",
            member ? json_string(member) : json_null(), "method", ev->method,
            "path", ev->path, "status", x->status, "request_ntlm",
            kb_auth_name(x->req_auth), "response_ntlm",
            kb_auth_name(x->resp_auth), "request_body_length",
            (json_int_t)x->req_body_len, "response_body_length",
            (json_int_t)x->resp_body_len));
  }
  free(idx);
  return all;
}

static const char *evidence__expect_name(int expect)
{
  return expect < 0 ? "none" : expect ? "error" : "clean";
}

/* The run's members as the scenario gives them, each with the policy it
 * ends up with; null for a live session (the listener is not kbsim's). */
static json_t *evidence__members_json(const struct scenario *sc)
{
  json_t *all;
  size_t i;

  if(!sc)
    return json_null();
  all = json_array();
  for(i = 0; i < sc->nmembers; i++) {
    const struct scenario_member *m = &sc->members[i];
    json_array_append_new(
        all,
        json_pack(
            "{s:s, s:s, s:b, s:s}", "name", m->name, "patch",
            scenario_patch_name(m->patch), "script", m->script, "policy",
            proxy_policy_name(scenario_effective_policy(m->patch, m->script))));
  }
  return all;
}

/* The users' sessions: each one's POSTs, with what the user saw after
 * each, and what the user saw at the end. */
static json_t *evidence__sessions_json(const struct sim_sessions *ss)
{
  json_t *clients = json_array();
  size_t i, j;

  for(i = 0; i < ss->count; i++) {
    const struct sim_session *s = &ss->sessions[i];
    json_t *posts = json_array();

    for(j = 0; j < s->nresults; j++) {
      const struct client_post_result *r = &s->results[j];
      json_array_append_new(
          posts,
          json_pack(
              "{s:i, s:s, s:s, s:i, s:i, s:i, s:I, s:o, s:s, s:o}", "index",
              (int)r->index, "kind", client_post_kind_name(r->kind), "outcome",
              client_outcome_name(r->outcome), "legs", (int)r->legs,
              "leg1_status", r->leg1_status, "final_status", r->final_status,
              "connection", (json_int_t)r->connection, "served_by",
              r->served_by[0] ? json_string(r->served_by) : json_null(),
              "detail", r->detail, "view_after",
              s->views ? evidence__view_json(&s->views[j]) : json_null()));
    }
    json_array_append_new(
        clients,
        json_pack("{s:i, s:s, s:s, s:o, s:o}", "id", (int)s->id, "error",
                  s->error, "outcome_class", client_class_name(s->klass),
                  "posts", posts, "view", evidence__view_json(&s->view)));
  }
  return clients;
}

/* Builds the run's report around clients (evidence__sessions_json, whose
 * reference it takes), the n secrets removed. Call with rec->lock held.
 * Returns it, or NULL when out of memory. */
/* What the run's client kind plays ("Office Communicator 2007"). */
static const char *evidence__client_product(const struct evidence_run *run)
{
  const struct client_kind_info *k =
      client_kind_info(run->sc ? run->sc->kind : run->kind);
  return k ? k->product : "client";
}

static json_t *evidence__run_json(const struct sim_recorder *rec,
                                  const struct evidence_run *run,
                                  json_t *clients, char (*secrets)[256],
                                  size_t nsecrets)
{
  const struct scenario *sc = run->sc;
  unsigned with_error = run->sessions->users_with_error;
  const char *cls = run->outcome_class ? run->outcome_class
                    : with_error       ? "server-error"
                                       : "clean";
  int expect = sc ? sc->expect.outcome : run->expect;

  return json_pack(
      "{s:i, s:s, s:o, s:o, s:{s:s, s:s, s:s, s:s}, s:o, s:o, s:i, s:i, s:s, "
      "s:s, s:s, s:s, s:s, s:o, s:o, "
      "s:{s:i, s:i, s:i, s:i, s:o, s:o}}",
      "version", 2, "kind", "run", "stamp",
      evidence__stamp_json(secrets, nsecrets), "scenario",
      evidence__scenario_json(run, secrets, nsecrets), "topology", "client",
      evidence__client_product(run), "proxy",
      "ISA Server 2006 web listener (Integrated)", "backend",
      "Exchange 2007 EWS", "hops", "client-proxy, proxy-backend", "members",
      evidence__members_json(sc), "seed",
      run->live ? json_null()
                : json_integer((json_int_t)(sc ? sc->seed : run->seed)),
      "clients", (int)(sc ? sc->clients : run->clients), "ews_posts",
      (int)(sc ? sc->posts : run->ews_posts), "ntlm",
      sc ? ntlm_response_kind_name(sc->ntlm) : run->ntlm, "expected",
      evidence__expect_name(expect), "got",
      !strcmp(cls, "infrastructure") ? "unknown"
      : with_error                   ? "error"
                                     : "clean",
      "verdict",
      !strcmp(cls, "infrastructure") ? "error"
      : run->passed                  ? "pass"
                                     : "fail",
      "outcome_class", cls, "exchanges", evidence__exchanges_json(rec),
      "sessions", clients, "summary", "posts", (int)run->sessions->posts,
      "posts_ok", (int)run->sessions->posts_ok, "posts_failed",
      (int)run->sessions->posts_failed, "users_with_error", (int)with_error,
      "backend_empty_posts",
      run->backend ? json_integer((json_int_t)run->backend->empty_posts)
                   : json_null(),
      "proxy_reauth_skipped",
      run->proxy ? json_integer((json_int_t)run->proxy->reauth_skipped)
                 : json_null());
}

int evidence_write_json(struct sim_recorder *rec,
                        const struct evidence_run *run, const char *path,
                        char *err, size_t errlen)
{
  char(*secrets)[256] = calloc(EVIDENCE_MAX_SECRETS, sizeof(*secrets));
  json_t *root, *clients;
  size_t nsecrets;
  int result;

  if(!secrets) {
    snprintf(err, errlen, "--json: could not build the report (out of memory)");
    return -1;
  }
  nsecrets = evidence__secrets(run->sc, secrets);
  clients = evidence__sessions_json(run->sessions);
  pthread_mutex_lock(&rec->lock);
  root = evidence__run_json(rec, run, clients, secrets, nsecrets);
  pthread_mutex_unlock(&rec->lock);
  explicit_bzero(secrets, EVIDENCE_MAX_SECRETS * sizeof(*secrets));
  free(secrets);
  if(!root) {
    snprintf(err, errlen, "--json: could not build the report (out of memory)");
    return -1;
  }
  result = evidence__json_write(root, path, err, errlen);
  json_decref(root);
  return result;
}

int evidence__json_write(const json_t *root, const char *path, char *err,
                         size_t errlen)
{
  FILE *out = evidence_open("--json", path, err, errlen);
  int result = 0;

  if(!out)
    return -1;
  if(json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
     fputc('\n', out) == EOF) {
    snprintf(err, errlen, "--json %s: cannot write: %s", path, strerror(errno));
    result = -1;
  }
  if(evidence_close(out, "--json", path, result ? NULL : err, errlen))
    result = -1;
  return result;
}
