/*
 * backend.c - Exchange 2007 (IIS 7) EWS and Outlook Autodiscover: starting
 * and stopping the server. See backend.h for the routes and README.md for
 * the folder.
 *
 * backend_start copies the config into a struct backend (backend_int.h),
 * opens the listening socket and the guard, and hands both to the
 * libmicrohttpd daemon (mhd.c); backend_stop undoes it in reverse.
 */
#include "backend_int.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "common/kb_cert.h"
#include "common/kb_guard.h"
#include "common/kb_net.h"

#define BACKEND_DEFAULT_HOST "127.0.0.1"
#define BACKEND_DEFAULT_EWS_URL                                                \
  "https://autodiscover.fabrikam.com/EWS/Exchange.asmx"
#define BACKEND_DEFAULT_MAX_BODY ((size_t)1024 * 1024)
#define BACKEND_DEFAULT_DOMAIN "FABRIKAM"
#define BACKEND_COMPUTER "EXCH01"

/* Connections when the config gives none: the listener's default cap and
 * room for clients that reach Exchange's port directly. */
#define BACKEND_DEFAULT_CONNECTIONS (KB_GUARD_MAX_CONNECTIONS + 64u)

/* libxml2 2.9 must be initialised once before any thread uses it: the
 * "already done" check inside xmlInitParser is not synchronised, so a
 * topology started while another one's threads parse (kbsim's sweep does
 * that) reads libxml2's globals half set up. A constructor runs while the
 * program is still single-threaded, so every program that links the
 * backend has it done before its first thread. */
__attribute__((constructor)) static void backend_xml_init(void)
{
  xmlInitParser();
}

/* Returns the port the socket fd is bound to, or 0 (errno set). */
static uint16_t backend_bound_port(int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  uint16_t port;

  if(getsockname(fd, (struct sockaddr *)&ss, &len))
    return 0;
  port = kb_sockaddr_port((struct sockaddr *)&ss);
  if(!port)
    errno = EAFNOSUPPORT;
  return port;
}

/* Returns a new backend holding what config says, defaults filled in,
 * not yet listening; or NULL with a line in err (out of memory, or
 * integrated authentication without users). The caller releases it with
 * backend_stop. */
static struct backend *backend_new(const struct backend_config *config,
                                   char *err, size_t errlen)
{
  struct backend *b = calloc(1, sizeof(*b));

  if(b && pthread_cond_init(&b->idle, NULL)) {
    free(b);
    b = NULL;
  }
  if(!b || pthread_mutex_init(&b->lock, NULL)) {
    if(b)
      pthread_cond_destroy(&b->idle);
    free(b);
    snprintf(err, errlen, "cannot start the backend: out of memory");
    return NULL;
  }
  b->ews_url =
      strdup(config->ews_url ? config->ews_url : BACKEND_DEFAULT_EWS_URL);
  if(!b->ews_url) {
    snprintf(err, errlen, "cannot start the backend: out of memory");
    goto fail;
  }
  b->max_body = config->max_body ? config->max_body : BACKEND_DEFAULT_MAX_BODY;
  if(b->max_body > INT_MAX) {
    b->max_body = INT_MAX;
  }
  b->clock = config->clock;
  b->soap.ews_url = b->ews_url;
  b->soap.clock = b->clock;
  b->trace = config->trace;
  b->names = config->names;
  b->status = config->status;
  b->records = calloc(BACKEND_MAX_RECORDS, sizeof(*b->records));
  b->domain = strdup(config->domain ? config->domain : BACKEND_DEFAULT_DOMAIN);
  if(b->domain && config->dns_domain)
    b->dns_domain = strdup(config->dns_domain);
  else if(b->domain && (b->dns_domain = malloc(strlen(b->domain) + 5))) {
    size_t i;
    for(i = 0; b->domain[i]; i++)
      b->dns_domain[i] = (char)tolower((unsigned char)b->domain[i]);
    memcpy(b->dns_domain + i, ".com", 5);
  }
  if(config->krb5_keytab)
    b->krb5_keytab = strdup(config->krb5_keytab);
  if(!b->records || !b->domain || !b->dns_domain ||
     (config->krb5_keytab && !b->krb5_keytab)) {
    snprintf(err, errlen, "cannot start the backend: out of memory");
    goto fail;
  }
  if(config->auth == BACKEND_AUTH_INTEGRATED && !config->users) {
    snprintf(err, errlen,
             "backend: integrated authentication needs users; give at "
             "least one --user");
    goto fail;
  }
  b->auth.auth = config->auth;
  b->auth.users = config->users;
  b->auth.domain = b->domain;
  b->auth.dns_domain = b->dns_domain;
  b->auth.computer = BACKEND_COMPUTER;
  b->auth.rng = config->rng;
  b->auth.clock = config->clock;
  b->auth.epa = config->extended_protection;
  if(config->tls_cert_pem && !config->tls_key_pem) {
    snprintf(err, errlen,
             "backend: a TLS certificate needs its private key; give both");
    goto fail;
  }
  if(config->tls_cert_pem) {
    struct kb_end_point ep;

    if(kb_end_point_pem(config->tls_cert_pem, &ep)) {
      snprintf(err, errlen,
               "backend: the TLS certificate is not a PEM X.509 "
               "certificate; give the one kb_pki_create made");
      goto fail;
    }
    b->auth.tls = true;
    ntlm_tls_end_point_bindings(ep.hash, ep.len, b->auth.bindings);
    snprintf(b->auth.hash_name, sizeof(b->auth.hash_name), "%s", ep.hash_name);
    kb_hex_colon(ep.hash, ep.len, b->auth.end_point, sizeof(b->auth.end_point));
  }
  b->auth.krb5_keytab = b->krb5_keytab;
  return b;
fail:
  backend_stop(b);
  return NULL;
}

/* Opens b's listening socket on host and config's port, learns the port
 * it got, and starts b's guard. Returns the socket, or -1 with a line in
 * err (nothing left open). */
static int backend_listen(struct backend *b,
                          const struct backend_config *config, const char *host,
                          char *err, size_t errlen)
{
  struct kb_guard_config gc;
  char gerr[128];
  int fd;

  fd = kb_net_listen("Exchange", host, config->port, 0, err, errlen);
  if(fd < 0) {
    return -1;
  }
  /* Known before the workers start: they read it to resolve names. */
  b->port = backend_bound_port(fd);
  if(!b->port) {
    snprintf(err, errlen,
             "cannot start the backend on %s: the listening socket has no "
             "port (%s)",
             host, strerror(errno));
    close(fd);
    return -1;
  }
  memset(&gc, 0, sizeof(gc));
  gc.who = "Exchange";
  gc.head_timeout_ms = config->head_timeout_ms;
  gc.idle_ms = BACKEND_CONN_TIMEOUT_S * 1000u;
  gc.max_connections = config->max_connections ? config->max_connections
                                               : BACKEND_DEFAULT_CONNECTIONS;
  if(kb_guard_start(&gc, &b->guard, gerr, sizeof(gerr))) {
    snprintf(err, errlen, "backend: %s", gerr);
    close(fd);
    return -1;
  }
  return fd;
}

int backend_start(const struct backend_config *config, struct backend **out,
                  char *err, size_t errlen)
{
  struct backend *b;
  const char *host;
  int fd;

  *out = NULL;
  if(!config) {
    snprintf(err, errlen,
             "backend_start needs a config; pass a zeroed "
             "struct backend_config for the defaults");
    return -1;
  }
  host = config->bind_host ? config->bind_host : BACKEND_DEFAULT_HOST;
  b = backend_new(config, err, errlen);
  if(!b)
    return -1;
  fd = backend_listen(b, config, host, err, errlen);
  b->tls_cert_pem = config->tls_cert_pem;
  b->tls_tap = config->tls_tap;
  b->tls_tap_ctx = config->tls_tap_ctx;
  b->tls_key_pem = config->tls_key_pem;
  if(fd < 0 || backend__daemon_start(b, fd, host, config->port, err, errlen)) {
    backend_stop(b);
    return -1;
  }
  *out = b;
  return 0;
}

unsigned backend_capacity(const struct backend *backend)
{
  return backend ? kb_guard_capacity(backend->guard) : 0;
}

uint16_t backend_port(const struct backend *backend)
{
  return backend ? backend->port : 0;
}

const char *backend_auth_name(enum backend_auth auth)
{
  return auth == BACKEND_AUTH_INTEGRATED ? "integrated" : "none";
}

const char *backend_epa_name(enum backend_epa epa)
{
  return epa == BACKEND_EPA_REQUIRE ? "require"
         : epa == BACKEND_EPA_ALLOW ? "allow"
                                    : "none";
}

int backend_epa_parse(const char *name, enum backend_epa *out)
{
  if(!strcmp(name, "none"))
    *out = BACKEND_EPA_NONE;
  else if(!strcmp(name, "allow"))
    *out = BACKEND_EPA_ALLOW;
  else if(!strcmp(name, "require"))
    *out = BACKEND_EPA_REQUIRE;
  else
    return -1;
  return 0;
}

int backend_auth_parse(const char *name, enum backend_auth *out)
{
  if(!strcmp(name, "none"))
    *out = BACKEND_AUTH_NONE;
  else if(!strcmp(name, "integrated"))
    *out = BACKEND_AUTH_INTEGRATED;
  else
    return -1;
  return 0;
}

void backend_stop(struct backend *backend)
{
  if(!backend) {
    return;
  }
  /* MHD_stop_daemon joins its threads after closing every connection, so
   * all completed/closed notifications have run when it returns. */
  backend__daemon_stop(backend);
  kb_guard_stop(backend->guard);
  pthread_cond_destroy(&backend->idle);
  pthread_mutex_destroy(&backend->lock);
  free(backend->records);
  free(backend->domain);
  free(backend->dns_domain);
  free(backend->krb5_keytab);
  free(backend->ews_url);
  free(backend);
}
