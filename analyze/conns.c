/*
 * conns.c - the connection model: every open connection with its
 * unanswered requests, looked up by (file, stream) and by serial, each
 * request answered in order (HTTP/1.1) and handed to the rules, and each
 * connection forgotten when both sides closed, one reset it, or it stayed
 * idle for AN_IDLE seconds of capture time. Only open connections and
 * their unanswered requests are held.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_int.h"

#define AN_IDLE                                                                \
  900.0                     /* seconds without a frame before a connection is  \
                               taken as gone (a capture that missed its FIN) */
#define AN_SWEEP_EVERY 4096 /* events between two looks for idle ones */

/* ---- a map from uint64 to pointer --------------------------------------- */

struct an_entry {
  uint64_t key;
  void *value;
  struct an_entry *next;
};

struct an_map {
  struct an_entry **buckets;
  size_t nbuckets, count;
};

static struct an_map *an_map_new(void)
{
  struct an_map *map = calloc(1, sizeof(*map));

  if(map && !(map->buckets = calloc(64, sizeof(*map->buckets)))) {
    free(map);
    return NULL;
  }
  if(map)
    map->nbuckets = 64;
  return map;
}

static size_t an_map_slot(const struct an_map *map, uint64_t key)
{
  key ^= key >> 33;
  key *= 0xff51afd7ed558ccdull;
  key ^= key >> 33;
  return (size_t)(key & (map->nbuckets - 1));
}

static void *an_map_get(const struct an_map *map, uint64_t key)
{
  const struct an_entry *e;

  for(e = map->buckets[an_map_slot(map, key)]; e; e = e->next)
    if(e->key == key)
      return e->value;
  return NULL;
}

/* Doubles the buckets when the map is full; keeps the old ones when out
 * of memory (the map only gets slower). */
static void an_map_grow(struct an_map *map)
{
  struct an_entry **old = map->buckets;
  size_t n = map->nbuckets, i;

  map->buckets = calloc(n * 2, sizeof(*map->buckets));
  if(!map->buckets) {
    map->buckets = old;
    return;
  }
  map->nbuckets = n * 2;
  for(i = 0; i < n; i++)
    while(old[i]) {
      struct an_entry *e = old[i];
      size_t slot = an_map_slot(map, e->key);
      old[i] = e->next;
      e->next = map->buckets[slot];
      map->buckets[slot] = e;
    }
  free(old);
}

static int an_map_put(struct an_map *map, uint64_t key, void *value)
{
  struct an_entry *e = malloc(sizeof(*e));
  size_t slot;

  if(!e)
    return -1;
  if(map->count >= map->nbuckets)
    an_map_grow(map);
  slot = an_map_slot(map, key);
  e->key = key;
  e->value = value;
  e->next = map->buckets[slot];
  map->buckets[slot] = e;
  map->count++;
  return 0;
}

static void an_map_del(struct an_map *map, uint64_t key)
{
  struct an_entry **at = &map->buckets[an_map_slot(map, key)];

  for(; *at; at = &(*at)->next)
    if((*at)->key == key) {
      struct an_entry *e = *at;
      *at = e->next;
      free(e);
      map->count--;
      return;
    }
}

static void an_map_free(struct an_map *map)
{
  size_t i;

  if(!map)
    return;
  for(i = 0; i < map->nbuckets; i++)
    while(map->buckets[i]) {
      struct an_entry *e = map->buckets[i];
      map->buckets[i] = e->next;
      free(e);
    }
  free(map->buckets);
  free(map);
}

/* ---- requests ------------------------------------------------------------ */

void an__req_auth(struct an_req *req, const char *auth)
{
  char text[512];

  req->auth = kb_auth_classify(auth, auth ? strlen(auth) : 0);
  req->auth_hash = auth ? an__hash(auth, strlen(auth)) : 0;
  req->identity[0] = '\0';
  if(auth && ntlm_header_describe(auth, strlen(auth), text, sizeof(text)))
    req->auth_text = strdup(text);
  if(req->auth == KB_AUTH_NTLM_AUTHENTICATE) {
    enum ntlm_scheme scheme;
    struct ntlm_bytes token = {0};
    struct ntlm_message msg;

    if(ntlm_header_parse(auth, &scheme, &token, NULL, 0) == NTLM_OK &&
       ntlm_decode(token.data, token.len, &msg, NULL, 0) == NTLM_OK) {
      snprintf(req->identity, sizeof(req->identity), "%s%s%s",
               msg.domain ? msg.domain : "", msg.domain ? "\\" : "",
               msg.user ? msg.user : "");
      ntlm_message_free(&msg);
    }
    ntlm_bytes_free(&token);
  }
}

static struct an_req *an_req_new(struct an_model *m, struct an_conn *c,
                                 const struct an_msg *msg)
{
  struct an_req *req = calloc(1, sizeof(*req));

  if(!req) {
    m->failed = true;
    return NULL;
  }
  req->conn = c->serial;
  req->client_serial = ++m->next_req;
  req->ref.file = msg->file;
  req->ref.frame = msg->frame;
  req->t = msg->t;
  snprintf(req->method, sizeof(req->method), "%s", msg->method);
  snprintf(req->path, sizeof(req->path), "%s", msg->path);
  an__req_auth(req, msg->auth);
  req->body_len = msg->body_len;
  req->body_hash = msg->body_hash;
  snprintf(req->mailbox, sizeof(req->mailbox), "%s", msg->mailbox);
  return req;
}

static void an_req_free(struct an_req *req)
{
  if(req)
    free(req->auth_text);
  free(req);
}

/* Takes req out of the model's list of open client requests. */
static void an_open_unlink(struct an_model *m, struct an_req *req)
{
  if(req->open_prev)
    req->open_prev->open_next = req->open_next;
  else if(m->open_head == req)
    m->open_head = req->open_next;
  else
    return;
  if(req->open_next)
    req->open_next->open_prev = req->open_prev;
  else
    m->open_tail = req->open_prev;
  req->open_prev = req->open_next = NULL;
  m->nopen_client--;
}

/* Hands req and its answer (NULL: none came) to the rules of c's hop and
 * frees it; req is already off c's queue. */
static void an_req_done(struct an_model *m, struct an_conn *c,
                        struct an_req *req, const struct an_msg *answer)
{
  if(c->hop == AN_HOP_CLIENT) {
    an_open_unlink(m, req);
    an__rules_client(m, c, req, answer);
    an__leg_client(m, c, req, answer);
  }
  else if(c->hop == AN_HOP_UPSTREAM) {
    an__rules_upstream(m, c, req, answer);
    if(m->res->hops == ANALYZE_HOPS_SERVER)
      an__leg_upstream(m, c, req, answer);
  }
  an_req_free(req);
}

/* ---- connections --------------------------------------------------------- */

static uint64_t an_conn_key(const struct an_msg *msg)
{
  return (uint64_t)msg->file << 48 ^ msg->stream;
}

struct an_conn *an__conn_by_serial(struct an_model *m, uint64_t serial)
{
  return serial ? an_map_get(m->by_serial, serial) : NULL;
}

/* The connection of msg, made (client: from, server: to) when it is new
 * and make is set. NULL when unknown, or out of memory. */
static struct an_conn *an_conn_get(struct an_model *m, const struct an_msg *msg,
                                   const char *from, const char *to, bool make)
{
  uint64_t key = an_conn_key(msg);
  struct an_conn *c = an_map_get(m->by_key, key);

  if(c || !make)
    return c;
  c = calloc(1, sizeof(*c));
  if(!c) {
    m->failed = true;
    return NULL;
  }
  c->key = key;
  c->serial = ++m->next_serial;
  c->file = msg->file;
  snprintf(c->client, sizeof(c->client), "%s", from);
  snprintf(c->server, sizeof(c->server), "%s", to);
  snprintf(c->label, sizeof(c->label), "%s -> %s", from, to);
  c->hop = an__roles_hop(m, to);
  c->hidden_handshakes =
      msg->file < m->res->ninputs && m->res->inputs[msg->file].har;
  c->last_t = msg->t;
  if(c->hop == AN_HOP_CLIENT)
    c->ordinal = (unsigned)++m->res->client_conns;
  else if(c->hop == AN_HOP_UPSTREAM)
    c->ordinal = (unsigned)++m->res->upstream_conns;
  else
    c->ordinal = (unsigned)++m->res->other_conns;
  if(an_map_put(m->by_key, key, c) || an_map_put(m->by_serial, c->serial, c)) {
    an_map_del(m->by_key, key);
    free(c);
    m->failed = true;
    return NULL;
  }
  return c;
}

/* Answers every request still open on c with nothing, and forgets c. */
static void an_conn_end(struct an_model *m, struct an_conn *c)
{
  while(c->head) {
    struct an_req *req = c->head;
    c->head = req->next;
    c->nopen--;
    an_req_done(m, c, req, NULL);
  }
  an_map_del(m->by_key, c->key);
  an_map_del(m->by_serial, c->serial);
  free(c);
}

/* Ends the connections that have been idle for AN_IDLE seconds. */
static void an_conns_sweep(struct an_model *m)
{
  size_t i;

  for(i = 0; i < m->by_key->nbuckets; i++) {
    struct an_entry *e = m->by_key->buckets[i];
    while(e) {
      struct an_conn *c = e->value;
      e = e->next;
      if(c->last_t + AN_IDLE < m->now)
        an_conn_end(m, c);
    }
  }
}

/* ---- events -------------------------------------------------------------- */

static void an_feed_request(struct an_model *m, const struct an_msg *msg)
{
  struct an_conn *c = an_conn_get(m, msg, msg->src, msg->dst, true);
  struct an_req *req;

  an_map_del(m->tls, an_conn_key(msg)); /* decrypted: HTTP after all */

  if(!c)
    return;
  c->last_t = msg->t;
  if(c->hop == AN_HOP_OTHER)
    return;
  req = an_req_new(m, c, msg);
  if(!req)
    return;
  c->nreqs++;
  m->res->requests++;
  if(req->auth >= KB_AUTH_NTLM_NEGOTIATE && req->auth <= KB_AUTH_NTLM_BARE)
    m->res->ntlm++;
  /* A connection that never answers: its oldest request gives up. */
  if(c->nopen == AN_MAX_OPEN) {
    struct an_req *old = c->head;
    c->head = old->next;
    if(!c->head)
      c->tail = NULL;
    c->nopen--;
    an_req_done(m, c, old, NULL);
  }
  if(c->tail)
    c->tail->next = req;
  else
    c->head = req;
  c->tail = req;
  c->nopen++;
  if(c->hop == AN_HOP_CLIENT) {
    req->open_prev = m->open_tail;
    if(m->open_tail)
      m->open_tail->open_next = req;
    else
      m->open_head = req;
    m->open_tail = req;
    m->nopen_client++;
  }
  else
    an__pair(m, c, req);
}

static void an_feed_response(struct an_model *m, const struct an_msg *msg)
{
  struct an_conn *c = an_conn_get(m, msg, msg->dst, msg->src, false);
  struct an_req *req;
  size_t i;

  if(!c)
    return;
  c->last_t = msg->t;
  /* An interim answer (100 Continue) is not the answer. */
  if(msg->status >= 100 && msg->status < 200 && msg->status != 101)
    return;
  req = c->head;
  if(!req)
    return;
  c->head = req->next;
  if(!c->head)
    c->tail = NULL;
  c->nopen--;
  m->res->answers++;
  for(i = 0; i < msg->nchallenges; i++) {
    enum kb_auth offer =
        kb_auth_classify(msg->challenges[i], strlen(msg->challenges[i]));
    if(offer == KB_AUTH_NTLM_CHALLENGE || offer == KB_AUTH_NTLM_BARE) {
      m->res->ntlm++;
      break;
    }
  }
  an_req_done(m, c, req, msg);
}

void an__model_feed(struct an_model *m, const struct an_msg *msg)
{
  struct an_conn *c;

  m->now = msg->t;
  switch(msg->kind) {
  case AN_REQUEST:
    an_feed_request(m, msg);
    break;
  case AN_RESPONSE:
    an_feed_response(m, msg);
    break;
  case AN_H2:
    an_map_del(m->tls, an_conn_key(msg)); /* decrypted: HTTP/2 */
    /* The client is whoever sent the request's headers. */
    c = msg->method[0] ? an_conn_get(m, msg, msg->src, msg->dst, true)
                       : an_conn_get(m, msg, msg->dst, msg->src, true);
    if(c) {
      c->last_t = msg->t;
      an__rules_h2(m, c, msg);
    }
    break;
  case AN_TLS:
    if(!an_conn_get(m, msg, NULL, NULL, false) &&
       !an_map_get(m->tls, an_conn_key(msg)) &&
       an_map_put(m->tls, an_conn_key(msg), (void *)m)) /* any non-NULL */
      m->failed = true;
    else if(!m->tls_dst[0])
      snprintf(m->tls_dst, sizeof(m->tls_dst), "%s", msg->dst);
    break;
  case AN_CLOSE:
    c = an_conn_get(m, msg, NULL, NULL, false);
    if(!c && an_map_get(m->tls, an_conn_key(msg))) {
      /* A TLS connection ended without showing any HTTP. */
      an_map_del(m->tls, an_conn_key(msg));
      m->tls_opaque++;
    }
    if(!c)
      break;
    c->last_t = msg->t;
    if(!strcmp(msg->src, c->client))
      c->client_done = true;
    else
      c->server_done = true;
    if(msg->reset || (c->client_done && c->server_done))
      an_conn_end(m, c);
    break;
  }
  if(++m->fed % AN_SWEEP_EVERY == 0)
    an_conns_sweep(m);
}

int an__model_init(struct an_model *m, const struct analyze_config *cfg,
                   struct analyze_result *res)
{
  memset(m, 0, sizeof(*m));
  m->cfg = cfg;
  m->res = res;
  m->by_key = an_map_new();
  m->by_serial = an_map_new();
  m->tls = an_map_new();
  return m->by_key && m->by_serial && m->tls ? 0 : -1;
}

void an__model_finish(struct an_model *m)
{
  size_t i;

  for(i = 0; i < m->by_key->nbuckets; i++)
    while(m->by_key->buckets[i])
      an_conn_end(m, m->by_key->buckets[i]->value);
  m->tls_opaque += m->tls->count;
  for(i = 0; i < m->tls->nbuckets; i++)
    while(m->tls->buckets[i])
      an_map_del(m->tls, m->tls->buckets[i]->key);
}

void an__model_free(struct an_model *m)
{
  if(m->by_key && m->by_serial && m->tls)
    an__model_finish(m);
  an_map_free(m->by_key);
  an_map_free(m->by_serial);
  an_map_free(m->tls);
  m->by_key = m->by_serial = m->tls = NULL;
}
