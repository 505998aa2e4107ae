/*
 * tls_tap.c - records a TLS server session's records as they cross its
 * socket, which part of them is the handshake, its key log lines and what
 * it negotiated, through GnuTLS's transport, handshake hook and key log
 * callbacks, for the evidence of a TLS run.
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "sim/sim_env.h"
#include "sim/tls_tap.h"

/* Appends len bytes read (from_client) or written by the server to c: to
 * its last chunk when that went the same way in the same phase (GnuTLS
 * reads a record's header and its body apart), else as a new one. Call
 * with the recorder's lock held. Returns 0, or -1 out of memory. */
static int sim__tls_chunk(struct sim_tls_conn *c, bool from_client,
                          const void *data, size_t len)
{
  struct sim_tls_chunk *k = c->count ? &c->chunks[c->count - 1] : NULL;

  if(k && k->from_client == from_client && k->handshake == !c->app) {
    uint8_t *grown = realloc(k->data, k->len + len);
    if(!grown)
      return -1;
    memcpy(grown + k->len, data, len);
    k->data = grown;
    k->len += len;
    return 0;
  }
  if(c->count == c->alloc) {
    size_t alloc = c->alloc ? c->alloc * 2 : 16;
    struct sim_tls_chunk *grown = realloc(c->chunks, alloc * sizeof(*grown));
    if(!grown)
      return -1;
    c->chunks = grown;
    c->alloc = alloc;
  }
  k = &c->chunks[c->count];
  k->data = malloc(len);
  if(!k->data)
    return -1;
  memcpy(k->data, data, len);
  k->len = len;
  k->from_client = from_client;
  k->handshake = !c->app;
  c->count++;
  return 0;
}

/* Records what the server read or wrote, under the recorder's lock. */
static void sim__tls_record(struct sim_tls_conn *c, bool from_client,
                            const void *data, size_t len)
{
  pthread_mutex_lock(&c->rec->lock);
  if(sim__tls_chunk(c, from_client, data, len))
    c->rec->failed = true;
  pthread_mutex_unlock(&c->rec->lock);
}

/* Writes the hex of len bytes of p, with sep between bytes when it is
 * not '\0', into out (3 * len + 1 bytes suffice). */
static void sim__tls_hex(const uint8_t *p, size_t len, char sep, char *out)
{
  size_t i;

  for(i = 0; i < len; i++) {
    if(sep && i)
      *out++ = sep;
    out += sprintf(out, "%02x", p[i]);
  }
  *out = '\0';
}

/* The first application data arrived: the handshake is over and the peer
 * has claimed its name (it does before sending a request), so both are
 * read now. */
static void sim__tls_app(struct sim_tls_conn *c, gnutls_session_t session)
{
  const gnutls_datum_t *cert = gnutls_certificate_get_ours(session);
  const char *version =
      gnutls_protocol_get_name(gnutls_protocol_get_version(session));
  const char *suite = gnutls_ciphersuite_get(session);
  char name[KB_CONN_NAME_LEN];
  uint8_t hash[32];

  kb_names_resolve(&c->names, c->peer_port, c->local_port, name, sizeof(name));
  if(!cert || gnutls_hash_fast(GNUTLS_DIG_SHA256, cert->data, cert->size, hash))
    memset(hash, 0, sizeof(hash));
  pthread_mutex_lock(&c->rec->lock);
  c->app = true;
  memcpy(c->name, name, sizeof(c->name));
  snprintf(c->version, sizeof(c->version), "%s", version ? version : "?");
  snprintf(c->suite, sizeof(c->suite), "%s", suite ? suite : "?");
  sim__tls_hex(hash, sizeof(hash), ':', c->cert_sha256);
  pthread_mutex_unlock(&c->rec->lock);
}

/* The session's pull function: the socket read as GnuTLS reads it, with
 * what came recorded. */
static ssize_t sim__tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
  struct sim_tls_conn *c = ptr;
  ssize_t n = recv(c->fd, buf, len, 0);

  if(n > 0) {
    if(c->finished_in && !c->app)
      sim__tls_app(c, c->session);
    sim__tls_record(c, true, buf, (size_t)n);
  }
  return n;
}

/* The session's push function: the socket written as GnuTLS writes it
 * (never raising SIGPIPE), with what went recorded. */
static ssize_t sim__tls_push(gnutls_transport_ptr_t ptr, const void *buf,
                             size_t len)
{
  struct sim_tls_conn *c = ptr;
  ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);

  if(n > 0)
    sim__tls_record(c, false, buf, (size_t)n);
  return n;
}

/* The session's pull timeout function: whether the socket has something
 * to read within ms. */
static int sim__tls_wait(gnutls_transport_ptr_t ptr, unsigned ms)
{
  struct sim_tls_conn *c = ptr;
  struct pollfd pfd = {c->fd, POLLIN, 0};

  return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

/* The handshake hook: the client's Finished was read, so what the client
 * sends next is application data. */
static int sim__tls_finished(gnutls_session_t session, unsigned htype,
                             unsigned when, unsigned incoming,
                             const gnutls_datum_t *msg)
{
  struct sim_tls_conn *c = gnutls_transport_get_ptr(session);

  (void)msg;
  if(htype == GNUTLS_HANDSHAKE_FINISHED && when == GNUTLS_HOOK_POST && incoming)
    c->finished_in = true;
  return 0;
}

/* The key log function: keeps each secret as an NSS key log line, then
 * hands it to the function it replaced (GnuTLS's SSLKEYLOGFILE writer). */
static int sim__tls_keylog(gnutls_session_t session, const char *label,
                           const gnutls_datum_t *secret)
{
  struct sim_tls_conn *c = gnutls_transport_get_ptr(session);
  gnutls_keylog_func next = (gnutls_keylog_func)c->next_keylog;
  gnutls_datum_t client, server;
  char line[64 + 2 * 32 + 2 * 64 + 4], *grown;
  size_t len;

  gnutls_session_get_random(session, &client, &server);
  if(strlen(label) < 40 && client.size == 32 && secret->size <= 64) {
    len = (size_t)sprintf(line, "%s ", label);
    sim__tls_hex(client.data, client.size, '\0', line + len);
    len += 64;
    line[len++] = ' ';
    sim__tls_hex(secret->data, secret->size, '\0', line + len);
    len += 2 * secret->size;
    line[len++] = '\n';
    pthread_mutex_lock(&c->rec->lock);
    grown = realloc(c->keylog, c->keylog_len + len);
    if(grown) {
      memcpy(grown + c->keylog_len, line, len);
      c->keylog = grown;
      c->keylog_len += len;
    }
    else
      c->rec->failed = true;
    pthread_mutex_unlock(&c->rec->lock);
  }
  return next ? next(session, label, secret) : 0;
}

/* Adds c to the recorder's connections. Returns 0, or -1 out of memory. */
static int sim__tls_add(struct sim_recorder *rec, struct sim_tls_conn *c)
{
  int result = 0;

  pthread_mutex_lock(&rec->lock);
  if(rec->ntls == rec->tls_alloc) {
    size_t alloc = rec->tls_alloc ? rec->tls_alloc * 2 : 16;
    struct sim_tls_conn **grown = realloc(rec->tls, alloc * sizeof(*grown));
    if(grown) {
      rec->tls = grown;
      rec->tls_alloc = alloc;
    }
  }
  if(rec->ntls < rec->tls_alloc)
    rec->tls[rec->ntls++] = c;
  else {
    rec->failed = true;
    result = -1;
  }
  pthread_mutex_unlock(&rec->lock);
  return result;
}

void sim_tls_tap_session(void *ctx, void *session, const struct sockaddr *peer,
                         uint16_t local_port)
{
  const struct sim_tls_tap *tap = ctx;
  gnutls_session_t s = session;
  struct sim_tls_conn *c = calloc(1, sizeof(*c));

  if(!c || sim__tls_add(tap->rec, c)) {
    free(c);
    pthread_mutex_lock(&tap->rec->lock);
    tap->rec->failed = true;
    pthread_mutex_unlock(&tap->rec->lock);
    return;
  }
  /* The recorder owns c from here; this thread alone writes its fields
   * until the session's first read. */
  c->hop = tap->hop;
  c->rec = tap->rec;
  c->names = tap->names;
  c->session = s;
  c->fd = gnutls_transport_get_int(s);
  c->peer_port = kb_sockaddr_port(peer);
  c->local_port = local_port;
  c->next_keylog = (void (*)(void))gnutls_session_get_keylog_function(s);
  gnutls_transport_set_ptr(s, c);
  gnutls_transport_set_pull_function(s, sim__tls_pull);
  gnutls_transport_set_pull_timeout_function(s, sim__tls_wait);
  gnutls_transport_set_push_function(s, sim__tls_push);
  gnutls_handshake_set_hook_function(s, GNUTLS_HANDSHAKE_FINISHED,
                                     GNUTLS_HOOK_POST, sim__tls_finished);
  gnutls_session_set_keylog_function(s, sim__tls_keylog);
}

void sim_tls_conns_free(struct sim_recorder *rec)
{
  size_t i, j;

  for(i = 0; i < rec->ntls; i++) {
    for(j = 0; j < rec->tls[i]->count; j++)
      free(rec->tls[i]->chunks[j].data);
    free(rec->tls[i]->chunks);
    free(rec->tls[i]->keylog);
    free(rec->tls[i]);
  }
  free(rec->tls);
  rec->tls = NULL;
  rec->ntls = rec->tls_alloc = 0;
}
