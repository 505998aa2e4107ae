/*
 * admin.c - the admin endpoint (admin.h): start and stop, libmicrohttpd's
 * callbacks (a request's body gathered up to ADMIN_MAX_BODY), the array
 * it manages taken over, and routing each request the guard let through
 * to its action, /status or the console.
 *
 * libmicrohttpd serves the endpoint with a thread per connection, so a
 * console's stream can wait for the next leg without holding up anyone
 * else's request; jansson builds every answer. Member state (patch level,
 * script) lives in struct admin under a lock (admin_int.h); the policy it
 * implies is pushed to the member's proxy at each change, and /status
 * reports the policy the proxy actually has in force.
 */
#include "admin_int.h"
#include "common/kb_guard.h"
#include "common/kb_net.h"
#include "live/live.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_DEFAULT_HOST "127.0.0.1"
#define ADMIN_CONN_LIMIT 64u
#define ADMIN_CONN_TIMEOUT_S 30u
#define ADMIN_MEMBERS_PREFIX "/members/"

json_t *admin__body(const struct admin__request *req, char *why, size_t whylen)
{
  json_error_t jerr;
  json_t *j;

  if(!req->len)
    return json_object();
  j = json_loadb(req->body, req->len, 0, &jerr);
  if(!json_is_object(j)) {
    if(j)
      snprintf(why, whylen, "the body must be a JSON object");
    else
      snprintf(why, whylen, "the body is not JSON: %s (line %d)", jerr.text,
               jerr.line);
    json_decref(j);
    return NULL;
  }
  return j;
}

/* Routes a POST of the trainer's (/reset, /scenario, /sessions); answers
 * *handled false for any other path. */
static enum MHD_Result admin__route_trainer(struct admin *a,
                                            struct MHD_Connection *conn,
                                            const char *url, const char *method,
                                            const struct admin__request *req,
                                            bool *handled)
{
  *handled = !strcmp(url, "/reset") || !strcmp(url, "/scenario") ||
             !strcmp(url, "/sessions");
  if(!*handled)
    return MHD_YES;
  if(strcmp(method, "POST"))
    return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
                        "%s %s: use POST", method, url);
  if(!strcmp(url, "/sessions"))
    return admin__sessions(a, conn, req);
  return admin__restart(a, conn, req, !strcmp(url, "/reset"));
}

/* Routes one complete request; see admin.h for the endpoints. */
static enum MHD_Result admin__route(struct admin *a,
                                    struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const struct admin__request *req,
                                    bool from_query)
{
  bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  bool post = !strcmp(method, "POST");
  bool handled;
  enum admin_action act;
  enum MHD_Result ret;
  char names[256];

  pthread_mutex_lock(&a->lock);
  admin__member_list(a, names, sizeof(names));
  pthread_mutex_unlock(&a->lock);
  ret = admin__route_trainer(a, conn, url, method, req, &handled);
  if(handled)
    return ret;
  if(!strcmp(url, "/status") || !strcmp(url, "/") || !strcmp(url, "/events")) {
    if(!get)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD",
                          "%s %s: use GET", method, url);
    if(!strcmp(url, "/"))
      return admin__page(a, conn, from_query);
    if(!strcmp(url, "/events"))
      return admin__events(a, conn);
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
    return admin__act(a, conn, act, NULL);
  }
  if(!strncmp(url, ADMIN_MEMBERS_PREFIX, strlen(ADMIN_MEMBERS_PREFIX))) {
    const char *id = url + strlen(ADMIN_MEMBERS_PREFIX);
    const char *slash = strchr(id, '/');
    char idbuf[64], name[64] = "";
    long m;

    if(!slash || (size_t)(slash - id) >= sizeof(idbuf) || slash == id)
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "no such endpoint '%.100s'; use POST "
                          "/members/N/ACTION (ACTION: apply-fix, revert, "
                          "hotfix, sp1)",
                          url);
    memcpy(idbuf, id, (size_t)(slash - id));
    idbuf[slash - id] = '\0';
    pthread_mutex_lock(&a->lock);
    m = admin__find_member(a, idbuf);
    if(m >= 0)
      snprintf(name, sizeof(name), "%s", a->members[m].name);
    pthread_mutex_unlock(&a->lock);
    if(m < 0)
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "no member '%s' in this array; members: %s", idbuf,
                          names);
    if(admin_action_parse(slash + 1, &act))
      return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                          "unknown action '%.60s' for %s; use apply-fix, "
                          "revert, hotfix or sp1",
                          slash + 1, name);
    if(!post)
      return admin__error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST",
                          "%s %s: use POST", method, url);
    return admin__act(a, conn, act, idbuf);
  }
  return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                      "no such endpoint '%.100s'; use GET /status, POST "
                      "/apply-fix, POST /revert, POST /members/N/ACTION, "
                      "POST /reset, POST /scenario or POST /sessions",
                      url);
}

/* The guard slot of conn (its socket context), or NULL. */
static struct kb_guard_slot *admin__slot(struct MHD_Connection *conn)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return info ? info->socket_context : NULL;
}

/* libmicrohttpd's accept policy: the guard's caps. */
static enum MHD_Result admin__on_accept(void *cls, const struct sockaddr *addr,
                                        socklen_t addrlen)
{
  struct admin *a = cls;
  return kb_guard_admit(a->guard, addr, addrlen) ? MHD_YES : MHD_NO;
}

/* libmicrohttpd's connection notification: a guard slot per connection,
 * in its socket context. */
static void admin__on_connection(void *cls, struct MHD_Connection *conn,
                                 void **socket_context,
                                 enum MHD_ConnectionNotificationCode toe)
{
  struct admin *a = cls;
  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *addr =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *socket_context = fd ? kb_guard_open(a->guard, fd->connect_fd,
                                         addr ? addr->client_addr : NULL)
                         : NULL;
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    kb_guard_close(*socket_context);
    *socket_context = NULL;
  }
}

/* libmicrohttpd's completion notification: the request's body goes, and
 * the next head's clock starts. */
static void admin__on_completed(void *cls, struct MHD_Connection *conn,
                                void **req_cls,
                                enum MHD_RequestTerminationCode toe)
{
  (void)cls;
  (void)toe;
  free(*req_cls);
  *req_cls = NULL;
  kb_guard_next(admin__slot(conn));
}

/* libmicrohttpd's access handler: the first call makes the request's
 * record, body bytes are kept up to ADMIN_MAX_BODY (the rest is read and
 * dropped), the last call answers. */
static enum MHD_Result admin__on_request(void *cls, struct MHD_Connection *conn,
                                         const char *url, const char *method,
                                         const char *version,
                                         const char *upload_data,
                                         size_t *upload_data_size,
                                         void **req_cls)
{
  struct admin *a = cls;
  struct admin__request *req = *req_cls;
  enum admin__verdict verdict;
  bool from_query;
  char why[512];
  (void)version;
  if(!req) {
    req = calloc(1, sizeof(*req));
    if(!req)
      return MHD_NO;
    *req_cls = req;
    /* Too late: the guard answered 408 and is closing the connection. */
    return kb_guard_head_done(admin__slot(conn)) ? MHD_YES : MHD_NO;
  }
  if(*upload_data_size) {
    if(req->len + *upload_data_size > ADMIN_MAX_BODY)
      req->too_big = true;
    else {
      memcpy(req->body + req->len, upload_data, *upload_data_size);
      req->len += *upload_data_size;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if(!kb_guard_body_done(admin__slot(conn)))
    return MHD_NO; /* the body came too late: answered 408 */
  verdict = admin__guard(a, conn, url, method, &from_query, why, sizeof(why));
  if(verdict == ADMIN__NO_TOKEN || verdict == ADMIN__BAD_TOKEN) {
    const char *extra[] = {"WWW-Authenticate", "Bearer realm=\"kbsim\"", NULL};
    return admin__reply_with(conn, MHD_HTTP_UNAUTHORIZED,
                             json_pack("{s:s}", "error", why), extra);
  }
  if(verdict != ADMIN__OK)
    return admin__error(conn, MHD_HTTP_FORBIDDEN, NULL, "%s", why);
  if(req->too_big)
    return admin__error(conn, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                        "the body is over %d bytes; no request here needs "
                        "that much",
                        ADMIN_MAX_BODY);
  return admin__route(a, conn, url, method, req, from_query);
}

void admin__free_array(struct admin *a)
{
  size_t i;

  for(i = 0; i < a->nmembers; i++) {
    free(a->members[i].name);
    free(a->members[i].url);
  }
  memset(a->members, 0, sizeof(a->members));
  a->nmembers = 0;
  for(i = 0; i < a->nusers; i++) {
    explicit_bzero(a->users[i], strlen(a->users[i]));
    free(a->users[i]);
  }
  free(a->users);
  a->users = NULL;
  a->nusers = 0;
  free(a->scenario);
  free(a->backend_url);
  free(a->balancer_url);
  free(a->ca_pem);
  a->scenario = a->backend_url = a->balancer_url = a->ca_pem = NULL;
  a->backend = NULL;
  a->balancer = NULL;
}

/* Takes over arr (freeing the array a had) and sets every member's proxy
 * to the policy its patch level and script imply. Called with the lock
 * held, or before the daemon starts. Returns 0, or -1 when out of memory
 * (admin_stop frees what was copied). */
int admin__adopt_array(struct admin *a, const struct admin_array *arr)
{
  size_t i;

  admin__free_array(a);
  a->backend = arr->backend;
  a->balancer = arr->balancer;
  a->balancer_mode = arr->balancer_mode;
  a->backend_url = strdup(arr->backend_url ? arr->backend_url : "");
  a->balancer_url = strdup(arr->balancer_url ? arr->balancer_url : "");
  a->scenario = arr->scenario ? strdup(arr->scenario) : NULL;
  a->ca_pem = arr->ca_pem ? strdup(arr->ca_pem) : NULL;
  if(!a->backend_url || !a->balancer_url || (arr->scenario && !a->scenario) ||
     (arr->ca_pem && !a->ca_pem))
    return -1;
  a->users = arr->nusers ? calloc(arr->nusers, sizeof(*a->users)) : NULL;
  if(arr->nusers && !a->users)
    return -1;
  for(; a->nusers < arr->nusers; a->nusers++)
    if(!(a->users[a->nusers] = strdup(arr->users[a->nusers])))
      return -1;
  for(i = 0; i < arr->nmembers; i++) {
    const struct admin_member *src = &arr->members[i];
    struct admin__member *m = &a->members[i];

    m->name = strdup(src->name ? src->name : "ISA01");
    m->url = strdup(src->url ? src->url : "");
    a->nmembers = i + 1;
    if(!m->name || !m->url)
      return -1;
    m->patch = src->patch;
    m->script = src->script;
    m->proxy = src->proxy;
    /* What the admin shows and what the proxy does must agree from the
     * start. */
    proxy_set_policy(m->proxy, scenario_effective_policy(m->patch, m->script));
  }
  return 0;
}

/* Copies what the endpoint keeps of config into a. Returns 0, or -1 when
 * out of memory (admin_stop frees what was copied). */
static int admin__adopt(struct admin *a, const struct admin_config *config)
{
  struct admin_array arr;
  size_t i;

  a->live = config->live;
  atomic_init(&a->stopping, false);
  a->restart = config->restart;
  for(i = 0; i < config->ncatalogue && i < ADMIN_MAX_CATALOGUE; i++) {
    a->catalogue[i] = strdup(config->catalogue[i]);
    if(!a->catalogue[i])
      return -1;
    a->ncatalogue = i + 1;
  }
  memset(&arr, 0, sizeof(arr));
  arr.scenario = config->scenario;
  arr.members = config->members;
  arr.nmembers = config->nmembers;
  arr.backend = config->backend;
  arr.backend_url = config->backend_url;
  arr.balancer = config->balancer;
  arr.balancer_url = config->balancer_url;
  arr.balancer_mode = config->balancer_mode;
  arr.ca_pem = config->ca_pem;
  arr.users = config->users;
  arr.nusers = config->nusers;
  return admin__adopt_array(a, &arr);
}

/* Listens on host and port, and names the cookie after the port actually
 * listened on. Returns the listening socket, or -1 with a one-line reason
 * in err. */
static int admin__listen(struct admin *a, const char *host, uint16_t port,
                         char *err, size_t errlen)
{
  /* The port, and the cookie named after it, are known before the
   * daemon's threads start: they read them without a lock. */
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof(ss);
  int fd = kb_net_listen("admin endpoint", host, port, 0, err, errlen);

  if(fd < 0)
    return -1;
  if(getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0)
    a->port = kb_sockaddr_port((struct sockaddr *)&ss);
  if(!a->port) {
    snprintf(err, errlen,
             "admin endpoint: cannot read the port it "
             "listens on");
    close(fd);
    return -1;
  }
  snprintf(a->cookie, sizeof(a->cookie), "kbsim_admin_%u", (unsigned)a->port);
  return fd;
}

/* Starts the guard and libmicrohttpd's daemon on the listening socket fd,
 * which the daemon takes over (closed here on failure). Returns 0, or -1
 * with a one-line reason in err. */
static int admin__serve(struct admin *a, int fd, unsigned head_timeout_ms,
                        char *err, size_t errlen)
{
  struct kb_guard_config gc;
  char gerr[128];

  /* No MHD_USE_ERROR_LOG: a trainer's terminal shows kbsim's lines only. */
  /* A thread per connection: a console's stream waits for the next leg
   * on its own thread without holding up anyone else's request. */
  memset(&gc, 0, sizeof(gc));
  gc.who = "admin endpoint";
  gc.idle_ms = ADMIN_CONN_TIMEOUT_S * 1000u;
  gc.head_timeout_ms = head_timeout_ms;
  gc.max_connections = ADMIN_CONN_LIMIT;
  if(kb_guard_start(&gc, &a->guard, gerr, sizeof(gerr))) {
    snprintf(err, errlen, "admin endpoint: %s", gerr);
    close(fd);
    return -1;
  }
  /* The guard refuses at its cap, at once, and ends slow heads with 408;
   * libmicrohttpd's own limit leaves room for what it shut down. */
  a->daemon = MHD_start_daemon(
      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO_INTERNAL_THREAD |
          MHD_USE_ITC,
      0, admin__on_accept, a, admin__on_request, a, MHD_OPTION_LISTEN_SOCKET,
      fd, MHD_OPTION_CONNECTION_LIMIT, 2 * ADMIN_CONN_LIMIT,
      MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_CONN_TIMEOUT_S,
      MHD_OPTION_NOTIFY_CONNECTION, admin__on_connection, a,
      MHD_OPTION_NOTIFY_COMPLETED, admin__on_completed, a, MHD_OPTION_END);
  if(!a->daemon) {
    snprintf(err, errlen,
             "admin endpoint: libmicrohttpd refused to start "
             "(%s); check thread and file-descriptor limits",
             strerror(errno));
    close(fd);
    return -1;
  }
  return 0;
}

int admin_start(const struct admin_config *config, struct admin **out,
                char *err, size_t errlen)
{
  struct admin *a = NULL;
  const char *host = config->bind_host ? config->bind_host : ADMIN_DEFAULT_HOST;
  int fd;

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
  if(pthread_cond_init(&a->idle, NULL))
    goto nomem;
  a->idle_ready = true;
  if(admin__guard_init(a, config, host, err, errlen))
    goto error;
  if(admin__adopt(a, config))
    goto nomem;
  fd = admin__listen(a, host, config->port, err, errlen);
  if(fd < 0 || admin__serve(a, fd, config->head_timeout_ms, err, errlen))
    goto error;
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

const char *admin_token(const struct admin *admin)
{
  return admin->token;
}

void admin_hold(struct admin *admin)
{
  if(admin)
    pthread_mutex_lock(&admin->lock);
}

void admin_release(struct admin *admin)
{
  if(admin)
    pthread_mutex_unlock(&admin->lock);
}

void admin_stop(struct admin *admin)
{
  size_t i;

  if(!admin)
    return;
  /* Streams end first: each waits on the live view on its own thread. */
  atomic_store(&admin->stopping, true);
  if(admin->live)
    live_wake_all(admin->live);
  if(admin->daemon)
    MHD_stop_daemon(admin->daemon);
  kb_guard_stop(admin->guard);
  explicit_bzero(admin->token, sizeof(admin->token));
  admin__free_array(admin);
  for(i = 0; i < admin->ncatalogue; i++)
    free(admin->catalogue[i]);
  if(admin->idle_ready)
    pthread_cond_destroy(&admin->idle);
  if(admin->lock_ready)
    pthread_mutex_destroy(&admin->lock);
  free(admin);
}
