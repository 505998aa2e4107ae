/*
 * proxy.c - the ISA Server 2006 web listener's life: proxy_start (the
 * configuration checked and copied, the guard, one libmicrohttpd daemon
 * and event loop per proxy_config.loops), proxy_stop, the policy switch
 * and the other settings read from any thread, and the counters and trace
 * events every part of the listener reports to.
 */
#include "proxy_int.h"

#define PROXY_DEFAULT_NAME "ISA01"
#define PROXY_DEFAULT_DOMAIN "FABRIKAM"
#define PROXY_DEFAULT_HOST "127.0.0.1"
#define PROXY_DEFAULT_MAX_BODY ((size_t)1024 * 1024)
#define PROXY_DEFAULT_TIMEOUT_MS 30000L
/* Real seconds a silent connection is kept when connection_timeout_s is
 * 0. */
#define PROXY_DEFAULT_CONNECTION_TIMEOUT_S 30u

/* ---- small helpers ---------------------------------------------------- */

/* Returns a malloc'd copy of s, or of fallback when s is NULL or empty;
 * NULL when out of memory. */
static char *proxy_strdup_or(const char *s, const char *fallback)
{
  return strdup((s && *s) ? s : fallback);
}

/* Returns a, b and c joined in a new string the caller frees, or NULL when
 * b is NULL or memory ran out. */
static char *proxy_join(const char *a, const char *b, const char *c)
{
  size_t la = strlen(a), lb, lc = strlen(c);
  char *s;

  if(!b)
    return NULL;
  lb = strlen(b);
  s = malloc(la + lb + lc + 1);
  if(s) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
  }
  return s;
}

/* Lower-cases s up to the first stop character ('\0': all of it) and
 * returns it; NULL stays NULL. */
static char *proxy_lower(char *s, char stop)
{
  char *p;

  for(p = s; p && *p && *p != stop; p++)
    *p = (char)tolower((unsigned char)*p);
  return s;
}

/* Writes a formatted line into err when there is room for one. */
static void proxy_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void proxy_set_error(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if(!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- policy and authentication method --------------------------------- */

const char *proxy_policy_name(enum proxy_policy policy)
{
  return policy == PROXY_POLICY_PER_REQUEST ? "per-request" : "per-connection";
}

int proxy_policy_parse(const char *name, enum proxy_policy *out)
{
  if(!name || !out)
    return -1;
  if(!strcmp(name, "per-connection"))
    *out = PROXY_POLICY_PER_CONNECTION;
  else if(!strcmp(name, "per-request"))
    *out = PROXY_POLICY_PER_REQUEST;
  else
    return -1;
  return 0;
}

const char *proxy_auth_name(enum proxy_auth auth)
{
  switch(auth) {
  case PROXY_AUTH_BASIC:
    return "basic";
  case PROXY_AUTH_NONE:
    return "none";
  case PROXY_AUTH_INTEGRATED:
    break;
  }
  return "integrated";
}

int proxy_auth_parse(const char *name, enum proxy_auth *out)
{
  if(!name || !out)
    return -1;
  if(!strcmp(name, "integrated"))
    *out = PROXY_AUTH_INTEGRATED;
  else if(!strcmp(name, "basic"))
    *out = PROXY_AUTH_BASIC;
  else if(!strcmp(name, "none"))
    *out = PROXY_AUTH_NONE;
  else
    return -1;
  return 0;
}

void proxy_set_policy(struct proxy *proxy, enum proxy_policy policy)
{
  atomic_store(&proxy->policy, (int)policy);
}

void proxy_set_source(struct proxy *proxy, uint32_t source)
{
  atomic_store(&proxy->source, source);
}

enum proxy_policy proxy_get_policy(const struct proxy *proxy)
{
  return (enum proxy_policy)atomic_load(&proxy->policy);
}

unsigned proxy_capacity(const struct proxy *proxy)
{
  return proxy ? kb_guard_capacity(proxy->guard) : 0;
}

uint16_t proxy_port(const struct proxy *proxy)
{
  return proxy->port;
}

int proxy_wait_idle(struct proxy *proxy, unsigned timeout_ms)
{
  struct timespec until;
  int rc = 0;

  kb_deadline(&until, timeout_ms);
  pthread_mutex_lock(&proxy->lock);
  while(proxy->open && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&proxy->idle, &proxy->lock, &until);
  rc = proxy->open ? -1 : 0;
  pthread_mutex_unlock(&proxy->lock);
  return rc;
}

void proxy_reset(struct proxy *proxy)
{
  pthread_mutex_lock(&proxy->lock);
  assert(!proxy->open);
  memset(&proxy->stats, 0, sizeof(proxy->stats));
  atomic_store(&proxy->next_id, 1);
  pthread_mutex_unlock(&proxy->lock);
  kb_guard_reset_stats(proxy->guard);
}

void proxy_stats(const struct proxy *proxy, struct proxy_stats *stats)
{
  struct proxy *p = (struct proxy *)proxy; /* locking is not a change */
  struct kb_guard_stats g;
  pthread_mutex_lock(&p->lock);
  *stats = p->stats;
  pthread_mutex_unlock(&p->lock);
  kb_guard_stats(p->guard, &g);
  stats->head_timeouts = g.timed_out;
  stats->evicted = g.evicted;
  stats->refused = g.refused;
}

/* ---- counters and trace ----------------------------------------------- */

/* Adds every counter of delta to the proxy's, in one locked step so that a
 * reader never sees half of one request. */
void proxy__stats_add(struct proxy *proxy, const struct proxy_stats *delta)
{
  pthread_mutex_lock(&proxy->lock);
  proxy->stats.connections += delta->connections;
  proxy->stats.requests += delta->requests;
  proxy->stats.challenges += delta->challenges;
  proxy->stats.auth_ok += delta->auth_ok;
  proxy->stats.kerberos_ok += delta->kerberos_ok;
  proxy->stats.auth_failed += delta->auth_failed;
  proxy->stats.reauth_skipped += delta->reauth_skipped;
  proxy->stats.forwarded += delta->forwarded;
  proxy->stats.forwarded_empty_posts += delta->forwarded_empty_posts;
  proxy->stats.upstream_errors += delta->upstream_errors;
  proxy->stats.basic_ok += delta->basic_ok;
  proxy->stats.basic_failed += delta->basic_failed;
  proxy->stats.idle_closed += delta->idle_closed;
  proxy->stats.max_requests_closed += delta->max_requests_closed;
  pthread_mutex_unlock(&proxy->lock);
}

/* Emits a byte or connection event on either hop, as the proxy saw it. */
void proxy__emit(const struct proxy *proxy, enum kb_trace_kind kind,
                 enum kb_hop hop, uint64_t conn, const char *conn_name,
                 const void *data, size_t len,
                 const struct kb_exchange *exchange)
{
  struct kb_trace_event ev;
  if(!proxy->trace.emit)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.kind = kind;
  ev.hop = hop;
  /* The proxy is the server on the client hop and the client upstream. */
  ev.side = hop == KB_HOP_CLIENT_PROXY ? KB_SIDE_SERVER : KB_SIDE_CLIENT;
  ev.origin = proxy->name; /* the array member: "ISA01" */
  ev.conn = conn;
  ev.conn_name = conn_name && *conn_name ? conn_name : NULL;
  ev.data = data;
  ev.len = len;
  ev.exchange = exchange;
  kb_trace_emit(&proxy->trace, &ev);
}

/* ---- start / stop ----------------------------------------------------- */

/* Checks what a configuration must give and must not get wrong. Returns
 * 0, or -1 with a one-line reason in err. */
static int proxy_check_config(const struct proxy_config *config, char *err,
                              size_t errlen)
{
  if(!config->backend_url || strncmp(config->backend_url, "http", 4) != 0) {
    proxy_set_error(err, errlen,
                    "proxy: no published server URL; set backend_url, e.g. "
                    "http://127.0.0.1:8081");
    return -1;
  }
  if(!config->users) {
    proxy_set_error(err, errlen,
                    "proxy: no user store; give the proxy the "
                    "users it verifies NTLM against");
    return -1;
  }
  if(config->auth != PROXY_AUTH_INTEGRATED &&
     config->auth != PROXY_AUTH_BASIC && config->auth != PROXY_AUTH_NONE) {
    proxy_set_error(err, errlen,
                    "proxy: unknown listener authentication %d; use "
                    "integrated, basic or none",
                    (int)config->auth);
    return -1;
  }
  if(proxy__defects_check(config->defects, config->auth, err, errlen))
    return -1;
  if(config->idle_timeout_ms < 0) {
    proxy_set_error(err, errlen,
                    "proxy: idle_timeout_ms is negative (%" PRId64 "); use 0 "
                    "for no limit",
                    config->idle_timeout_ms);
    return -1;
  }
  return 0;
}

/* Frees the strings of proxy and proxy itself. */
static void proxy_free(struct proxy *proxy)
{
  free(proxy->bind_host);
  free(proxy->backend_url);
  free(proxy->name);
  free(proxy->domain);
  free(proxy->dns_domain);
  free(proxy->dns_computer);
  free(proxy->basic_offer);
  free(proxy->via);
  free(proxy->krb5_keytab);
  free(proxy);
}

/* Allocates a listener with config's settings (defaults filled in, the
 * names it derives made), its lock and condition variable ready, and no
 * guard, daemon or loop yet. Returns it (proxy_stop frees it), or NULL
 * with a one-line reason in err. */
static struct proxy *proxy_create(const struct proxy_config *config, char *err,
                                  size_t errlen)
{
  struct proxy *proxy;
  size_t len;
  unsigned i;

  proxy = calloc(1, sizeof(*proxy));
  if(!proxy) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    return NULL;
  }
  for(i = 0; i < PROXY__MAX_LOOPS; i++) {
    proxy->loops[i].proxy = proxy;
    proxy->loops[i].index = i;
    proxy->loops[i].epfd = proxy->loops[i].wakefd = -1;
  }
  proxy->bind_host = proxy_strdup_or(config->bind_host, PROXY_DEFAULT_HOST);
  proxy->backend_url = strdup(config->backend_url);
  proxy->tls_cert_pem = config->tls_cert_pem;
  proxy->tls_tap = config->tls_tap;
  proxy->tls_tap_ctx = config->tls_tap_ctx;
  proxy->tls_key_pem = config->tls_key_pem;
  proxy->upstream_ca_pem = config->upstream_ca_pem;
  proxy->name = proxy_strdup_or(config->name, PROXY_DEFAULT_NAME);
  proxy->domain = proxy_strdup_or(config->domain, PROXY_DEFAULT_DOMAIN);
  /* The DNS names: the configured domain, else lowercase(domain).com;
   * the computer lowercase(name).<dns domain>. */
  if(config->dns_domain && *config->dns_domain)
    proxy->dns_domain = strdup(config->dns_domain);
  else if(proxy->domain)
    proxy->dns_domain = proxy_lower(proxy_join(proxy->domain, ".com", ""), 0);
  if(proxy->name && proxy->dns_domain)
    proxy->dns_computer =
        proxy_lower(proxy_join(proxy->name, ".", proxy->dns_domain), '.');
  proxy->basic_offer = proxy_join("Basic realm=\"", proxy->name, "\"");
  proxy->via = proxy_join("1.1 ", proxy->name, "");
  if(config->krb5_keytab && *config->krb5_keytab &&
     !(proxy->krb5_keytab = strdup(config->krb5_keytab))) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    goto fail;
  }
  if(!proxy->bind_host || !proxy->backend_url || !proxy->name ||
     !proxy->domain || !proxy->dns_domain || !proxy->dns_computer ||
     !proxy->basic_offer || !proxy->via) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    goto fail;
  }
  len = strlen(proxy->backend_url);
  while(len && proxy->backend_url[len - 1] == '/')
    proxy->backend_url[--len] = '\0';
  proxy->backend_url_len = len;
  proxy->users = config->users;
  proxy->auth = config->auth;
  proxy->defects = config->defects;
  proxy->idle_timeout_ms = config->idle_timeout_ms;
  proxy->max_requests = config->max_requests;
  proxy->max_body =
      config->max_body ? config->max_body : PROXY_DEFAULT_MAX_BODY;
  proxy->upstream_timeout_ms = config->upstream_timeout_ms > 0
                                   ? config->upstream_timeout_ms
                                   : PROXY_DEFAULT_TIMEOUT_MS;
  proxy->clock = config->clock;
  proxy->rng = config->rng;
  proxy->trace = config->trace;
  proxy->names = config->names;
  atomic_init(&proxy->policy, (int)config->policy);
  atomic_init(&proxy->source, 0);
  atomic_init(&proxy->stopping, false);
  atomic_init(&proxy->next_id, 1);
  if(pthread_mutex_init(&proxy->lock, NULL)) {
    proxy_set_error(err, errlen, "proxy: cannot create a mutex");
    goto fail;
  }
  if(pthread_cond_init(&proxy->idle, NULL)) {
    pthread_mutex_destroy(&proxy->lock);
    proxy_set_error(err, errlen, "proxy: cannot create a condition variable");
    goto fail;
  }
  return proxy;

fail:
  proxy_free(proxy);
  return NULL;
}

/* Fills *addr with the listener's bind_host (numeric IPv4 or IPv6) and
 * port, adding MHD_USE_IPv6 to *flags for IPv6. Returns 0, or -1 with a
 * one-line reason in err. */
static int proxy_bind_address(const struct proxy *proxy, uint16_t port,
                              struct sockaddr_storage *addr,
                              unsigned int *flags, char *err, size_t errlen)
{
  struct sockaddr_in *v4 = (struct sockaddr_in *)addr;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)addr;

  memset(addr, 0, sizeof(*addr));
  if(inet_pton(AF_INET, proxy->bind_host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
  }
  else if(inet_pton(AF_INET6, proxy->bind_host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    *flags |= MHD_USE_IPv6;
  }
  else {
    proxy_set_error(err, errlen,
                    "proxy: bind_host '%s' is not a numeric IPv4 or IPv6 "
                    "address; use e.g. 127.0.0.1",
                    proxy->bind_host);
    return -1;
  }
  return 0;
}

/* Starts the guard of proxy's client connections (kb_guard.h) with
 * config's caps and deadlines. Returns 0, or -1 with a one-line reason in
 * err. */
static int proxy_guard_start(struct proxy *proxy,
                             const struct proxy_config *config,
                             unsigned connection_timeout_s, char *err,
                             size_t errlen)
{
  struct kb_guard_config gc;
  char gerr[128];

  memset(&gc, 0, sizeof(gc));
  gc.who = proxy->name;
  gc.head_timeout_ms = config->head_timeout_ms;
  gc.idle_ms = connection_timeout_s * 1000u;
  gc.max_connections = config->max_connections;
  gc.max_per_address = config->max_per_address;
  if(kb_guard_start(&gc, &proxy->guard, gerr, sizeof(gerr))) {
    proxy_set_error(err, errlen, "proxy: %s", gerr);
    return -1;
  }
  return 0;
}

/* Starts the libmicrohttpd daemon of each of proxy->nloops loops: the
 * first listens on addr and port and reads back the port it got, the
 * others accept from a duplicate of its listening socket. Returns 0, or
 * -1 with a one-line reason in err. */
static int proxy_daemons_start(struct proxy *proxy, unsigned int flags,
                               uint16_t port, const struct sockaddr *addr,
                               unsigned connection_timeout_s, char *err,
                               size_t errlen)
{
  const union MHD_DaemonInfo *info;
  unsigned connection_limit;
  int saved_errno;
  unsigned i;

  /* The guard refuses at its caps, at once; libmicrohttpd's own limit,
   * shared out among the loops, leaves room for connections the guard
   * has shut down and libmicrohttpd has not closed yet, so that it never
   * stops accepting (new clients would then hang in the backlog). */
  connection_limit = 2 * kb_guard_capacity(proxy->guard) / proxy->nloops;
  errno = 0;
  proxy->loops[0].daemon =
      proxy__daemon_start(&proxy->loops[0], flags, port, addr, -1,
                          connection_limit, connection_timeout_s);
  saved_errno = errno;
  if(!proxy->loops[0].daemon) {
    proxy_set_error(err, errlen,
                    "proxy: cannot listen on %s:%u: %s; pick another port or 0",
                    proxy->bind_host, (unsigned)port,
                    saved_errno ? strerror(saved_errno)
                                : "libmicrohttpd "
                                  "refused to start");
    return -1;
  }
  info = MHD_get_daemon_info(proxy->loops[0].daemon, MHD_DAEMON_INFO_BIND_PORT);
  proxy->port = info ? info->port : port;
  /* The other loops accept from a duplicate of the listening socket, each
   * daemon closing its own descriptor when it stops. */
  info = MHD_get_daemon_info(proxy->loops[0].daemon, MHD_DAEMON_INFO_LISTEN_FD);
  for(i = 1; i < proxy->nloops; i++) {
    int fd = info ? fcntl(info->listen_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if(fd >= 0) {
      errno = 0;
      proxy->loops[i].daemon =
          proxy__daemon_start(&proxy->loops[i], flags, 0, NULL, fd,
                              connection_limit, connection_timeout_s);
    }
    if(fd < 0 || !proxy->loops[i].daemon) {
      /* (A descriptor libmicrohttpd refused may leak: whether it closed
       * it is not known, and closing it twice could hit a new one.) */
      saved_errno = errno;
      proxy_set_error(err, errlen,
                      "proxy: cannot start event loop %u of %u: %s; check "
                      "the process's limit on descriptors",
                      i + 1, proxy->nloops,
                      saved_errno ? strerror(saved_errno)
                                  : "libmicrohttpd refused to start");
      return -1;
    }
  }
  return 0;
}

int proxy_start(const struct proxy_config *config, struct proxy **out,
                char *err, size_t errlen)
{
  struct proxy *proxy;
  struct sockaddr_storage addr;
  /* External epoll mode: each loop thread drives its libmicrohttpd
   * daemon and its connections' libcurl handles. */
  unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                       MHD_USE_SUPPRESS_DATE_NO_CLOCK | MHD_USE_ERROR_LOG;
  unsigned connection_timeout_s;
  int saved_errno;
  unsigned i;
  CURLcode curl_rc;

  if(!config || !out) {
    proxy_set_error(err, errlen, "proxy_start: config and out must be given");
    return -1;
  }
  *out = NULL;
  if(proxy_check_config(config, err, errlen))
    return -1;
  curl_rc = proxy__curl_init();
  if(curl_rc != CURLE_OK) {
    proxy_set_error(err, errlen, "proxy: libcurl could not be initialised: %s",
                    curl_easy_strerror(curl_rc));
    return -1;
  }
  proxy = proxy_create(config, err, errlen);
  if(!proxy)
    return -1;
  if(config->tls_cert_pem)
    flags |= MHD_USE_TLS; /* libmicrohttpd's GnuTLS */
  connection_timeout_s = config->connection_timeout_s
                             ? config->connection_timeout_s
                             : PROXY_DEFAULT_CONNECTION_TIMEOUT_S;
  if(proxy_bind_address(proxy, config->port, &addr, &flags, err, errlen) ||
     proxy_guard_start(proxy, config, connection_timeout_s, err, errlen))
    goto fail;
  proxy->nloops = proxy__loop_count(config->loops);
  if(proxy_daemons_start(proxy, flags, config->port,
                         (const struct sockaddr *)&addr, connection_timeout_s,
                         err, errlen))
    goto fail;
  for(i = 0; i < proxy->nloops; i++)
    if(proxy__loop_start(&proxy->loops[i])) {
      saved_errno = errno;
      proxy_set_error(err, errlen,
                      "proxy: cannot start the event loop: %s; check the "
                      "process's limits on threads and descriptors",
                      strerror(saved_errno));
      goto fail;
    }
  *out = proxy;
  return 0;

fail:
  proxy_stop(proxy);
  return -1;
}

/* Also what a failed proxy_start runs: each step accepts what was not
 * started (no guard, loops without a daemon or a thread). */
void proxy_stop(struct proxy *proxy)
{
  if(!proxy)
    return;
  /* The loops abandon transfers in flight (503) instead of waiting for
   * the upstream timeout, then end. */
  proxy__loops_stop(proxy);
  /* Closes every connection; their CLOSED notifications free their state
   * (and close their upstream connections) before this returns. */
  proxy__loops_close(proxy);
  kb_guard_stop(proxy->guard);
  pthread_cond_destroy(&proxy->idle);
  pthread_mutex_destroy(&proxy->lock);
  proxy_free(proxy);
}
