/*
 * restart.c - POST /reset and POST /scenario: serve restarts its array in
 * place (admin_restart), the scenario's own starting state or another
 * scenario of the catalogue, and the endpoint takes the new array over.
 *
 * The restart runs under the lock, so no other request reads the array
 * while it is replaced, once the sessions the endpoint runs (sessions.c)
 * have ended: none is cut in the middle. Serve resets the live view
 * between stopping the old array and starting the new one, so every
 * console clears what it shows.
 */
#include "admin_int.h"
#include "live/live.h"

#include <stdio.h>
#include <string.h>

/* Whether name is one of the scenarios a trainer may switch to. */
static bool admin__in_catalogue(const struct admin *a, const char *name)
{
  size_t i;

  for(i = 0; i < a->ncatalogue; i++)
    if(!strcmp(a->catalogue[i], name))
      return true;
  return false;
}

/* Lists the catalogue as "a, b, c" into out, for error messages. */
static void admin__catalogue_list(const struct admin *a, char *out, size_t len)
{
  size_t i, pos = 0;

  out[0] = '\0';
  for(i = 0; i < a->ncatalogue && pos < len; i++) {
    int n =
        snprintf(out + pos, len - pos, "%s%s", i ? ", " : "", a->catalogue[i]);
    if(n < 0)
      break;
    pos += (size_t)n;
  }
}

/* Reads the scenario a POST /scenario names into name. Returns 0, or the
 * HTTP status of a refusal with a one-line reason in why. */
static unsigned admin__scenario_of(struct admin *a,
                                   const struct admin__request *req, char *name,
                                   size_t len, char *why, size_t whylen)
{
  json_t *body = admin__body(req, why, whylen);
  json_t *v = body ? json_object_get(body, "scenario") : NULL;
  char names[1024];

  if(!body)
    return MHD_HTTP_BAD_REQUEST;
  if(!json_is_string(v) || !json_string_length(v) ||
     json_string_length(v) >= len) {
    json_decref(body);
    snprintf(why, whylen,
             "say which scenario: {\"scenario\": \"NAME\"}, NAME one of "
             "the catalogue's (GET /status lists them)");
    return MHD_HTTP_BAD_REQUEST;
  }
  snprintf(name, len, "%s", json_string_value(v));
  json_decref(body);
  if(!admin__in_catalogue(a, name)) {
    admin__catalogue_list(a, names, sizeof(names));
    snprintf(why, whylen, "no scenario '%.64s' in the catalogue; use one of %s",
             name, names[0] ? names : "(none)");
    return MHD_HTTP_NOT_FOUND;
  }
  return 0;
}

/* Has serve restart its array (scenario NULL: the one running) under the
 * lock, once no session runs, and takes the new one over. Returns 0, or
 * the HTTP status of a failure with a one-line reason in why. */
static unsigned admin__restart_locked(struct admin *a, const char *scenario,
                                      char *why, size_t whylen)
{
  struct admin_array arr;
  char err[512];
  int rc;

  while(a->running)
    pthread_cond_wait(&a->idle, &a->lock);
  memset(&arr, 0, sizeof(arr));
  rc = a->restart.fn(a->restart.ctx, scenario, &arr, err, sizeof(err));
  if(rc && !arr.nmembers) {
    admin__free_array(a);
    snprintf(why, whylen, "%s", err);
    return MHD_HTTP_SERVICE_UNAVAILABLE;
  }
  if(admin__adopt_array(a, &arr)) {
    snprintf(why, whylen, "out of memory in the admin endpoint");
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
  }
  if(rc) {
    snprintf(why, whylen, "%s", err);
    return MHD_HTTP_CONFLICT;
  }
  return 0;
}

/* POST /reset (reset) or POST /scenario: answers {"action": "reset" |
 * "scenario", "scenario": NAME, "generation": N, "members": [names]}. */
enum MHD_Result admin__restart(struct admin *a, struct MHD_Connection *conn,
                               const struct admin__request *req, bool reset)
{
  char name[64] = "", why[1200];
  unsigned status = 0;
  json_t *members, *body;
  size_t i;

  if(!a->restart.fn)
    return admin__error(conn, MHD_HTTP_CONFLICT, NULL,
                        "this serve cannot restart its array (serve "
                        "without a SCENARIO has one listener on --proxy); "
                        "stop it and start it again");
  if(!reset && !a->ncatalogue)
    return admin__error(conn, MHD_HTTP_CONFLICT, NULL,
                        "this serve has no scenarios to switch to (serve "
                        "without a SCENARIO keeps its listener); use POST "
                        "/reset");
  if(!reset) {
    status = admin__scenario_of(a, req, name, sizeof(name), why, sizeof(why));
    if(status)
      return admin__error(conn, status, NULL, "%s", why);
  }
  pthread_mutex_lock(&a->lock);
  if(a->restarting) {
    pthread_mutex_unlock(&a->lock);
    return admin__error(conn, MHD_HTTP_CONFLICT, NULL,
                        "a reset or a switch is under way; try again when "
                        "it is done");
  }
  a->restarting = true;
  status = admin__restart_locked(a, reset ? NULL : name, why, sizeof(why));
  a->restarting = false;
  members = json_array();
  for(i = 0; i < a->nmembers; i++)
    json_array_append_new(members, json_string(a->members[i].name));
  body = json_pack(
      "{s:s, s:s?, s:I, s:o}", "action", reset ? "reset" : "scenario",
      "scenario", a->scenario, "generation",
      a->live ? (json_int_t)live_generation(a->live) : 0, "members", members);
  pthread_mutex_unlock(&a->lock);
  if(a->live)
    live_bump(a->live); /* every console shows the new array at once */
  if(status) {
    json_decref(body);
    return admin__error(conn, status, NULL, "%s", why);
  }
  return admin__reply(conn, MHD_HTTP_OK, body, NULL);
}
