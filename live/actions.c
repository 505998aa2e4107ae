/*
 * actions.c - what a trainer can do to the array's members: the actions
 * by name, finding a member, and applying an action under the lock, which
 * pushes the policy it implies to the member's proxy at once and, when the
 * policy changed, starts the member's score in the live view again.
 */
#include "admin_int.h"
#include "live/live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const admin__action_names[] = {"apply-fix", "revert",
                                                  "hotfix", "sp1"};

const char *admin_action_name(enum admin_action action)
{
  if((size_t)action <
     sizeof(admin__action_names) / sizeof(admin__action_names[0]))
    return admin__action_names[action];
  return "?";
}

int admin_action_parse(const char *name, enum admin_action *out)
{
  size_t i;

  for(i = 0; i < sizeof(admin__action_names) / sizeof(admin__action_names[0]);
      i++) {
    if(!strcmp(name, admin__action_names[i])) {
      *out = (enum admin_action)i;
      return 0;
    }
  }
  return -1;
}

const char *admin_policy_reason(enum scenario_patch patch, bool script)
{
  switch(patch) {
  case SCENARIO_PATCH_RTM:
    return script ? "script run, no effect without the hotfix"
                  : "as shipped: keeps the connection's authentication";
  case SCENARIO_PATCH_RTM_HOTFIX:
    return script ? "hotfix and script: KB 942638 applied"
                  : "hotfix installed, no effect until the script is run";
  case SCENARIO_PATCH_SP1:
    return script ? "SP1 and script: KB 942638 applied"
                  : "SP1 includes the hotfix, no effect until the script "
                    "is run";
  }
  return "unknown patch level";
}

/* Lists the members as "1 ISA01, 2 ISA02" into out, for error messages.
 * Called with the lock held. */
void admin__member_list(const struct admin *a, char *out, size_t len)
{
  size_t i, pos = 0;

  out[0] = '\0';
  for(i = 0; i < a->nmembers && pos < len; i++) {
    int n = snprintf(out + pos, len - pos, "%s%zu %s", i ? ", " : "", i + 1,
                     a->members[i].name);
    if(n < 0)
      break;
    pos += (size_t)n;
  }
}

/* Finds a member by position (from 1) or name (any case). Returns its
 * index, or -1. Called with the lock held. */
long admin__find_member(const struct admin *a, const char *id)
{
  size_t i;

  if(*id && strspn(id, "0123456789") == strlen(id) && strlen(id) < 6) {
    long n = strtol(id, NULL, 10);
    return n >= 1 && (size_t)n <= a->nmembers ? n - 1 : -1;
  }
  for(i = 0; i < a->nmembers; i++)
    if(!strcasecmp(id, a->members[i].name))
      return (long)i;
  return -1;
}

/* What a change of act on member name did, in words that follow "since"
 * in the live view's score ("the script ran on ISA02"), into out. */
static void admin__since(enum admin_action act, const char *name, char *out,
                         size_t len)
{
  static const char *const done[] = {"the script ran", "the script was undone",
                                     "the hotfix was installed",
                                     "SP1 was installed"};

  snprintf(out, len, "%s on %s",
           (size_t)act < sizeof(done) / sizeof(done[0]) ? done[act] : "?",
           name);
}

/* Applies action to member i and pushes the new policy to its proxy; when
 * the policy changes, the member's score in the live view starts again.
 * Called with the lock held. Returns what changed as a new JSON object
 * (owned by the caller), or NULL when out of memory (the change is made
 * regardless). */
static json_t *admin__apply(struct admin *a, size_t i, enum admin_action act)
{
  struct admin__member *m = &a->members[i];
  enum proxy_policy before, after;
  const char *what = "";
  bool changed = false;
  char since[LIVE_SINCE_MAX];

  before = scenario_effective_policy(m->patch, m->script);
  switch(act) {
  case ADMIN_APPLY_FIX:
    changed = !m->script;
    what = changed ? "script run" : "script already run";
    m->script = true;
    break;
  case ADMIN_REVERT:
    changed = m->script;
    what = changed ? "script undone" : "script was not run, nothing to undo";
    m->script = false;
    break;
  case ADMIN_HOTFIX:
    changed = m->patch == SCENARIO_PATCH_RTM;
    what = changed                          ? "hotfix installed"
           : m->patch == SCENARIO_PATCH_SP1 ? "SP1 already includes the hotfix"
                                            : "hotfix already installed";
    if(changed)
      m->patch = SCENARIO_PATCH_RTM_HOTFIX;
    break;
  case ADMIN_SP1:
    changed = m->patch != SCENARIO_PATCH_SP1;
    what = changed ? "SP1 installed" : "SP1 already installed";
    m->patch = SCENARIO_PATCH_SP1;
    break;
  }
  after = scenario_effective_policy(m->patch, m->script);
  /* Effective from the next request on every connection; none dropped. */
  proxy_set_policy(m->proxy, after);
  if(after != before && a->live) {
    admin__since(act, m->name, since, sizeof(since));
    live_mark(a->live, m->name, since);
  }
  return json_pack("{s:I, s:s, s:s, s:b, s:s, s:s, s:b, s:s, s:s, s:s}",
                   "member", (json_int_t)(i + 1), "name", m->name, "action",
                   admin_action_name(act), "changed", changed, "what", what,
                   "patch", scenario_patch_name(m->patch), "script", m->script,
                   "policy_before", proxy_policy_name(before), "policy",
                   proxy_policy_name(after), "why",
                   admin_policy_reason(m->patch, m->script));
}

/* Applies action to the member id names (or every member when id is
 * NULL) and answers {"action": ..., "changes": [...]}. */
enum MHD_Result admin__act(struct admin *a, struct MHD_Connection *conn,
                           enum admin_action act, const char *id)
{
  json_t *changes = json_array();
  json_t *body;
  long only = -1;
  size_t i;

  pthread_mutex_lock(&a->lock);
  if(id && (only = admin__find_member(a, id)) < 0) {
    /* Gone with a restart since the route found it. */
    pthread_mutex_unlock(&a->lock);
    json_decref(changes);
    return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                        "no member '%s' in this array any more", id);
  }
  for(i = 0; i < a->nmembers; i++) {
    if(only >= 0 && (size_t)only != i)
      continue;
    if(json_array_append_new(changes, admin__apply(a, i, act)))
      break;
  }
  pthread_mutex_unlock(&a->lock);
  if(a->live)
    live_bump(a->live); /* consoles show the new policy at once */
  body = json_pack("{s:s, s:o}", "action", admin_action_name(act), "changes",
                   changes);
  return admin__reply(conn, MHD_HTTP_OK, body, NULL);
}
