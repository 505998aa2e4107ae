/*
 * admin.c - see admin.h.
 *
 * libmicrohttpd serves the endpoint on one internal thread; jansson builds
 * every answer. Member state (patch level, script) lives here under a lock;
 * the policy it implies is pushed to the member's proxy at each change,
 * and /status reports the policy the proxy actually has in force.
 */
#include "admin.h"
#include "kb_net.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_DEFAULT_HOST "127.0.0.1"
#define ADMIN_CONN_LIMIT 64u
#define ADMIN_CONN_TIMEOUT_S 30u
#define ADMIN_MEMBERS_PREFIX "/members/"

struct admin__member {
  char *name;
  char *url;
  enum scenario_patch patch;
  bool script;
  struct proxy *proxy;
};

struct admin {
  struct MHD_Daemon *daemon;
  uint16_t port;
  char *scenario;
  struct admin__member members[ADMIN_MAX_MEMBERS];
  size_t nmembers;
  struct backend *backend;
  char *backend_url;
  struct balancer *balancer;
  char *balancer_url;
  enum balancer_mode balancer_mode;
  /* Guards members[].patch and members[].script, and orders the policy
   * changes pushed to the proxies. */
  pthread_mutex_t lock;
  bool lock_ready;
};

/* A non-NULL marker for libmicrohttpd's per-request pointer: the first
 * call of a request only sets it. */
static int admin__request_started;

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

/* Sends body (taken over, may be NULL for out of memory) as JSON with
 * status, plus an Allow header when allow is set. Returns libmicrohttpd's
 * verdict. */
static enum MHD_Result admin__reply(struct MHD_Connection *conn,
                                    unsigned status, json_t *body,
                                    const char *allow)
{
  struct MHD_Response *resp;
  enum MHD_Result ret = MHD_NO;
  char *dumped =
      body ? json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  char *text = NULL;
  size_t len;

  json_decref(body);
  if(!dumped) {
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    dumped = strdup("{\"error\": \"out of memory in the admin endpoint\"}");
    if(!dumped)
      return MHD_NO;
  }
  /* A trailing newline, so `curl` output ends its line. */
  len = strlen(dumped);
  text = malloc(len + 2);
  if(!text)
    goto done;
  memcpy(text, dumped, len);
  text[len++] = '\n';
  text[len] = '\0';
  resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if(!resp) {
    free(text);
    goto done;
  }
  if(MHD_add_response_header(resp, "Content-Type", "application/json") ==
         MHD_YES &&
     MHD_add_response_header(resp, "Cache-Control", "no-store") == MHD_YES &&
     (!allow || MHD_add_response_header(resp, "Allow", allow) == MHD_YES))
    ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);

done:
  free(dumped);
  return ret;
}

/* Answers {"error": "<message>"} with status (and Allow when set). */
static enum MHD_Result admin__error(struct MHD_Connection *conn,
                                    unsigned status, const char *allow,
                                    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result admin__error(struct MHD_Connection *conn,
                                    unsigned status, const char *allow,
                                    const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return admin__reply(conn, status, json_pack("{s:s}", "error", msg), allow);
}

/* Lists the members as "1 ISA01, 2 ISA02" into out, for error messages. */
static void admin__member_list(const struct admin *a, char *out, size_t len)
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
 * index, or -1. */
static long admin__find_member(const struct admin *a, const char *id)
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

/* Applies action to member i under the lock and pushes the new policy to
 * its proxy. Returns what changed as a new JSON object (owned by the
 * caller), or NULL when out of memory (the change is made regardless). */
static json_t *admin__apply(struct admin *a, size_t i, enum admin_action act)
{
  struct admin__member *m = &a->members[i];
  enum proxy_policy before, after;
  const char *what = "";
  bool changed = false;
  json_t *j;

  pthread_mutex_lock(&a->lock);
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
  j = json_pack("{s:I, s:s, s:s, s:b, s:s, s:s, s:b, s:s, s:s, s:s}", "member",
                (json_int_t)(i + 1), "name", m->name, "action",
                admin_action_name(act), "changed", changed, "what", what,
                "patch", scenario_patch_name(m->patch), "script", m->script,
                "policy_before", proxy_policy_name(before), "policy",
                proxy_policy_name(after), "why",
                admin_policy_reason(m->patch, m->script));
  pthread_mutex_unlock(&a->lock);
  return j;
}

/* Applies action to member `only` (or every member when only < 0) and
 * answers {"action": ..., "changes": [...]}. */
static enum MHD_Result admin__act(struct admin *a, struct MHD_Connection *conn,
                                  enum admin_action act, long only)
{
  json_t *changes = json_array();
  json_t *body;
  size_t i;

  for(i = 0; i < a->nmembers; i++) {
    if(only >= 0 && (size_t)only != i)
      continue;
    if(json_array_append_new(changes, admin__apply(a, i, act)))
      break;
  }
  body = json_pack("{s:s, s:o}", "action", admin_action_name(act), "changes",
                   changes);
  return admin__reply(conn, MHD_HTTP_OK, body, NULL);
}

/* Builds GET /status: every member with its state, why its policy is what
 * it is and its counters; the balancer's and Exchange's counters. Returns
 * a new JSON object, or NULL when out of memory. */
static json_t *admin__status(struct admin *a)
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

/* Routes one complete request; see admin.h for the endpoints. */
static enum MHD_Result admin__route(struct admin *a,
                                    struct MHD_Connection *conn,
                                    const char *url, const char *method)
{
  bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  bool post = !strcmp(method, "POST");
  enum admin_action act;
  char names[256];

  admin__member_list(a, names, sizeof(names));
  if(!strcmp(url, "/status") || !strcmp(url, "/")) {
    if(!get)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD",
                          "%s %s: use GET", method, url);
    if(!strcmp(url, "/"))
      return admin__reply(
          conn, MHD_HTTP_OK,
          json_pack("{s:[s,s,s,s,s,s], s:s}", "endpoints", "GET /status",
                    "POST /apply-fix", "POST /revert",
                    "POST /members/N/apply-fix", "POST /members/N/revert",
                    "POST /members/N/{hotfix,sp1}", "note",
                    "no authentication: keep this endpoint on loopback"),
          NULL);
    return admin__reply(conn, MHD_HTTP_OK, admin__status(a), NULL);
  }
  if(url[0] == '/' && !admin_action_parse(url + 1, &act)) {
    if(!post)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
                          "%s %s: use POST", method, url);
    if(act == ADMIN_HOTFIX || act == ADMIN_SP1)
      return admin__error(conn, MHD_HTTP_BAD_REQUEST, NULL,
                          "%s is installed on one member at a time: POST "
                          "/members/N/%s with N one of %s",
                          admin_action_name(act), admin_action_name(act),
                          names);
    return admin__act(a, conn, act, -1);
  }
  if(!strncmp(url, ADMIN_MEMBERS_PREFIX, strlen(ADMIN_MEMBERS_PREFIX))) {
    const char *id = url + strlen(ADMIN_MEMBERS_PREFIX);
    const char *slash = strchr(id, '/');
    char idbuf[64];
    long m;

    if(!slash || (size_t)(slash - id) >= sizeof(idbuf) || slash == id)
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "no such endpoint '%.100s'; use POST "
                          "/members/N/ACTION (ACTION: apply-fix, revert, "
                          "hotfix, sp1)",
                          url);
    memcpy(idbuf, id, (size_t)(slash - id));
    idbuf[slash - id] = '\0';
    m = admin__find_member(a, idbuf);
    if(m < 0)
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "no member '%s' in this array; members: %s", idbuf,
                          names);
    if(admin_action_parse(slash + 1, &act))
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "unknown action '%.60s' for %s; use apply-fix, "
                          "revert, hotfix or sp1",
                          slash + 1, a->members[m].name);
    if(!post)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
                          "%s %s: use POST", method, url);
    return admin__act(a, conn, act, m);
  }
  return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                      "no such endpoint '%.100s'; use GET /status, POST "
                      "/apply-fix, POST /revert or POST /members/N/ACTION",
                      url);
}

/* libmicrohttpd's access handler: the first call marks the request, body
 * bytes (which no endpoint needs) are dropped, the last call answers. */
static enum MHD_Result admin__on_request(void *cls, struct MHD_Connection *conn,
                                         const char *url, const char *method,
                                         const char *version,
                                         const char *upload_data,
                                         size_t *upload_data_size,
                                         void **req_cls)
{
  (void)version;
  (void)upload_data;
  if(!*req_cls) {
    *req_cls = &admin__request_started;
    return MHD_YES;
  }
  if(*upload_data_size) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  return admin__route(cls, conn, url, method);
}

int admin_start(const struct admin_config *config, struct admin **out,
                char *err, size_t errlen)
{
  struct admin *a = NULL;
  const union MHD_DaemonInfo *info;
  const char *host = config->bind_host ? config->bind_host : ADMIN_DEFAULT_HOST;
  size_t i;
  int fd = -1;

  *out = NULL;
  if(!config->nmembers || config->nmembers > ADMIN_MAX_MEMBERS ||
     !config->backend) {
    snprintf(err, errlen,
             "admin endpoint: needs Exchange and 1 to %d "
             "members",
             ADMIN_MAX_MEMBERS);
    return -1;
  }
  a = calloc(1, sizeof(*a));
  if(!a || pthread_mutex_init(&a->lock, NULL)) {
    free(a);
    snprintf(err, errlen, "admin endpoint: out of memory");
    return -1;
  }
  a->lock_ready = true;
  a->nmembers = config->nmembers;
  a->backend = config->backend;
  a->balancer = config->balancer;
  a->balancer_mode = config->balancer_mode;
  a->backend_url = strdup(config->backend_url ? config->backend_url : "");
  a->balancer_url = strdup(config->balancer_url ? config->balancer_url : "");
  a->scenario = config->scenario ? strdup(config->scenario) : NULL;
  if(!a->backend_url || !a->balancer_url || (config->scenario && !a->scenario))
    goto nomem;
  for(i = 0; i < a->nmembers; i++) {
    const struct admin_member *src = &config->members[i];
    struct admin__member *m = &a->members[i];

    m->name = strdup(src->name ? src->name : "ISA01");
    m->url = strdup(src->url ? src->url : "");
    if(!m->name || !m->url)
      goto nomem;
    m->patch = src->patch;
    m->script = src->script;
    m->proxy = src->proxy;
    /* What the admin shows and what the proxy does must agree from the
     * start. */
    proxy_set_policy(m->proxy, scenario_effective_policy(m->patch, m->script));
  }

  fd = kb_net_listen("admin endpoint", host, config->port, 0, err, errlen);
  if(fd < 0)
    goto error;
  /* No MHD_USE_ERROR_LOG: a trainer's terminal shows kbsim's lines only. */
  a->daemon = MHD_start_daemon(
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC, 0, NULL, NULL,
      admin__on_request, a, MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_CONNECTION_LIMIT, ADMIN_CONN_LIMIT,
      MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_CONN_TIMEOUT_S, MHD_OPTION_END);
  if(!a->daemon) {
    snprintf(err, errlen,
             "admin endpoint: libmicrohttpd refused to start "
             "(%s); check thread and file-descriptor limits",
             strerror(errno));
    close(fd);
    goto error;
  }
  info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
  a->port = info ? info->port : 0;
  if(!a->port) {
    snprintf(err, errlen,
             "admin endpoint: libmicrohttpd did not report its "
             "port");
    goto error;
  }
  *out = a;
  return 0;

nomem:
  snprintf(err, errlen, "admin endpoint: out of memory");
error:
  admin_stop(a);
  return -1;
}

uint16_t admin_port(const struct admin *admin)
{
  return admin->port;
}

void admin_stop(struct admin *admin)
{
  size_t i;

  if(!admin)
    return;
  if(admin->daemon)
    MHD_stop_daemon(admin->daemon);
  for(i = 0; i < admin->nmembers; i++) {
    free(admin->members[i].name);
    free(admin->members[i].url);
  }
  free(admin->scenario);
  free(admin->backend_url);
  free(admin->balancer_url);
  if(admin->lock_ready)
    pthread_mutex_destroy(&admin->lock);
  free(admin);
}
