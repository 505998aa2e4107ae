/*
 * sim_env.c - simulated clock, seeded random source, trace recorder.
 */
#include "sim/sim_env.h"
#include "sim/tls_tap.h"

#include <assert.h>
#include <nettle/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- clock ------------------------------------------------------------ */

void sim_clock_init(struct sim_clock *clock, int64_t start_ms)
{
  clock->start_ms = start_ms;
  atomic_init(&clock->shared_ms, 0);
  pthread_mutex_init(&clock->lock, NULL);
  clock->offsets = NULL;
  clock->noffsets = 0;
}

void sim_clock_free(struct sim_clock *clock)
{
  free(clock->offsets);
  clock->offsets = NULL;
  clock->noffsets = 0;
  pthread_mutex_destroy(&clock->lock);
}

void sim_clock_reset(struct sim_clock *clock)
{
  pthread_mutex_lock(&clock->lock);
  atomic_store(&clock->shared_ms, 0);
  if(clock->noffsets)
    memset(clock->offsets, 0, clock->noffsets * sizeof(*clock->offsets));
  pthread_mutex_unlock(&clock->lock);
}

void sim_clock_advance(struct sim_clock *clock, int64_t ms)
{
  atomic_fetch_add(&clock->shared_ms, ms);
}

/* Returns the client id who names ("client 3", "client 3 conn 1 ..."), or
 * 0 for the shared timeline. */
static unsigned long sim__clock_owner(const char *who)
{
  char *end;
  unsigned long id;

  if(!who || strncmp(who, "client ", 7))
    return 0;
  id = strtoul(who + 7, &end, 10);
  if(end == who + 7 || (*end && *end != ' ') || id > 1000000)
    return 0;
  return id;
}

static int64_t sim__clock_now(void *ctx, const char *who)
{
  struct sim_clock *clock = ctx;
  unsigned long id = sim__clock_owner(who);
  int64_t now = clock->start_ms + atomic_load(&clock->shared_ms);

  if(id) {
    pthread_mutex_lock(&clock->lock);
    if(id < clock->noffsets)
      now += clock->offsets[id];
    pthread_mutex_unlock(&clock->lock);
  }
  return now;
}

static void sim__clock_advance(void *ctx, const char *who, int64_t ms)
{
  struct sim_clock *clock = ctx;
  unsigned long id = sim__clock_owner(who);

  if(!id) {
    atomic_fetch_add(&clock->shared_ms, ms);
    return;
  }
  pthread_mutex_lock(&clock->lock);
  if(id >= clock->noffsets) {
    size_t n = id + 1 > clock->noffsets * 2 ? id + 1 : clock->noffsets * 2;
    int64_t *grown = realloc(clock->offsets, n * sizeof(*grown));
    if(grown) {
      memset(grown + clock->noffsets, 0,
             (n - clock->noffsets) * sizeof(*grown));
      clock->offsets = grown;
      clock->noffsets = n;
    }
  }
  /* Out of memory leaves the timeline where it was: time stands still for
   * that client, which is visible in its Date headers, not a crash. */
  if(id < clock->noffsets)
    clock->offsets[id] += ms;
  pthread_mutex_unlock(&clock->lock);
}

struct kb_clock sim_clock_as_kb(struct sim_clock *clock)
{
  struct kb_clock kb = {sim__clock_now, sim__clock_advance, clock};

  return kb;
}

/* ---- random source ---------------------------------------------------- */

void sim_rng_init(struct sim_rng *rng, uint64_t seed)
{
  int i;

  for(i = 0; i < 8; i++)
    rng->key[i] = (uint8_t)(seed >> (8 * i));
}

static void sim__rng_fill(void *ctx, const char *label, uint8_t *buf,
                          size_t len)
{
  struct sim_rng *rng = ctx;
  uint8_t block[SHA256_DIGEST_SIZE];
  uint32_t counter = 0;

  /* Counter mode over HMAC-SHA256: as many 32-byte blocks as asked for,
   * each keyed by the seed and named by the label. The context is local,
   * so concurrent draws share nothing. */
  while(len) {
    struct hmac_sha256_ctx hmac;
    uint8_t cbytes[4] = {(uint8_t)counter, (uint8_t)(counter >> 8),
                         (uint8_t)(counter >> 16), (uint8_t)(counter >> 24)};
    size_t n = len < sizeof(block) ? len : sizeof(block);

    hmac_sha256_set_key(&hmac, sizeof(rng->key), rng->key);
    hmac_sha256_update(&hmac, strlen(label), (const uint8_t *)label);
    hmac_sha256_update(&hmac, sizeof(cbytes), cbytes);
    hmac_sha256_digest(&hmac, sizeof(block), block);
    memcpy(buf, block, n);
    buf += n;
    len -= n;
    counter++;
  }
}

struct kb_rng sim_rng_as_kb(struct sim_rng *rng)
{
  struct kb_rng kb = {sim__rng_fill, rng};

  return kb;
}

/* ---- connection names ------------------------------------------------- */

#define SIM_PORTS 65536

/* One claim: the name of the connection from its slot's port to remote. */
struct sim_name {
  struct sim_name *next;
  uint16_t remote;
  char name[];
};

int sim_names_init(struct sim_names *names)
{
  pthread_mutex_init(&names->lock, NULL);
  names->count = 0;
  names->by_port = calloc(SIM_PORTS, sizeof(*names->by_port));
  return names->by_port ? 0 : -1;
}

/* Frees every claim; the caller holds the lock or is the only user. */
static void sim__names_drop(struct sim_names *names)
{
  size_t i;

  for(i = 0; names->count && names->by_port && i < SIM_PORTS; i++) {
    struct sim_name *n = names->by_port[i];
    names->by_port[i] = NULL;
    while(n) {
      struct sim_name *next = n->next;
      free(n);
      names->count--;
      n = next;
    }
  }
  assert(!names->by_port || !names->count);
}

void sim_names_clear(struct sim_names *names)
{
  pthread_mutex_lock(&names->lock);
  sim__names_drop(names);
  pthread_mutex_unlock(&names->lock);
}

void sim_names_free(struct sim_names *names)
{
  sim__names_drop(names);
  free(names->by_port);
  names->by_port = NULL;
  pthread_mutex_destroy(&names->lock);
}

/* Replaces the claim for (port, remote); out of memory, the pair is left
 * unnamed rather than with an older connection's name. */
static void sim__names_claim(void *ctx, uint16_t port, uint16_t remote,
                             const char *name)
{
  struct sim_names *names = ctx;
  size_t len = strlen(name) + 1;
  struct sim_name *fresh = malloc(sizeof(*fresh) + len);
  struct sim_name **at;
  struct sim_name *old = NULL;

  if(fresh) {
    fresh->remote = remote;
    memcpy(fresh->name, name, len);
  }
  pthread_mutex_lock(&names->lock);
  for(at = &names->by_port[port]; *at; at = &(*at)->next)
    if((*at)->remote == remote) {
      old = *at;
      *at = old->next;
      break;
    }
  if(old)
    names->count--;
  if(fresh) {
    fresh->next = names->by_port[port];
    names->by_port[port] = fresh;
    names->count++;
  }
  pthread_mutex_unlock(&names->lock);
  free(old);
}

static int sim__names_resolve(void *ctx, uint16_t peer_port,
                              uint16_t local_port, char *name, size_t len)
{
  struct sim_names *names = ctx;
  const struct sim_name *n;
  int result = -1;

  pthread_mutex_lock(&names->lock);
  for(n = names->by_port[peer_port]; n; n = n->next)
    if(n->remote == local_port) {
      if(len)
        snprintf(name, len, "%s", n->name);
      result = 0;
      break;
    }
  pthread_mutex_unlock(&names->lock);
  return result;
}

struct kb_names sim_names_as_kb(struct sim_names *names)
{
  struct kb_names kb = {sim__names_claim, sim__names_resolve, names};

  return kb;
}

/* ---- trace recorder --------------------------------------------------- */

void sim_recorder_init(struct sim_recorder *rec, bool keep_bytes)
{
  memset(rec, 0, sizeof(*rec));
  pthread_mutex_init(&rec->lock, NULL);
  rec->keep_bytes = keep_bytes;
}

static void sim__event_free(struct sim_event *ev)
{
  free(ev->text);
  free(ev->data);
}

void sim_recorder_clear(struct sim_recorder *rec)
{
  size_t i;

  pthread_mutex_lock(&rec->lock);
  for(i = 0; i < rec->count; i++)
    sim__event_free(&rec->events[i]);
  rec->count = 0;
  sim_tls_conns_free(rec);
  pthread_mutex_unlock(&rec->lock);
}

void sim_recorder_free(struct sim_recorder *rec)
{
  sim_recorder_clear(rec);
  free(rec->events);
  rec->events = NULL;
  rec->alloc = 0;
  pthread_mutex_destroy(&rec->lock);
}

static void sim__copy(char *dst, size_t dstlen, const char *src)
{
  size_t n = src ? strlen(src) : 0;

  if(n >= dstlen)
    n = dstlen - 1;
  if(n)
    memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Overwrites the credentials of every "Authorization: Basic <b64>" or
 * "Proxy-Authorization: Basic <b64>" line in data with 'x', keeping the
 * length so byte counts (and the pcap's TCP lengths) stay right. Basic
 * credentials are the password in base64; evidence must never carry it. */
static void sim__redact_basic(uint8_t *data, size_t len)
{
  static const char *names[] = {"authorization:", "proxy-authorization:"};
  size_t i, k;

  for(i = 0; i < len; i++) {
    if(i && data[i - 1] != '\n')
      continue;
    for(k = 0; k < 2; k++) {
      size_t n = strlen(names[k]);
      size_t j = i + n;

      if(len - i < n || strncasecmp((const char *)data + i, names[k], n))
        continue;
      while(j < len && data[j] == ' ')
        j++;
      if(j + 6 > len || strncasecmp((const char *)data + j, "basic ", 6))
        continue;
      j += 6;
      while(j < len && data[j] == ' ')
        j++;
      while(j < len && data[j] != '\r' && data[j] != '\n' && data[j] != ' ')
        data[j++] = 'x';
    }
  }
}

/* Copies ev into the recorder. Runs on component threads: everything it
 * needs is copied before the lock is taken, so the lock is held only for
 * the append. */
static void sim__recorder_emit(void *ctx, const struct kb_trace_event *ev)
{
  struct sim_recorder *rec = ctx;
  struct sim_event copy;
  bool ok = true;

  if((ev->kind == KB_TRACE_SEND || ev->kind == KB_TRACE_RECV) &&
     !rec->keep_bytes)
    return;
  memset(&copy, 0, sizeof(copy));
  copy.kind = ev->kind;
  copy.hop = ev->hop;
  copy.side = ev->side;
  copy.conn = ev->conn;
  copy.note = ev->note;
  copy.at_us = ev->at_ms * 1000;
  sim__copy(copy.origin, sizeof(copy.origin), ev->origin);
  sim__copy(copy.conn_name, sizeof(copy.conn_name), ev->conn_name);
  if(ev->exchange) {
    copy.exchange = *ev->exchange;
    copy.exchange.method = NULL; /* the array moves: see method, path */
    copy.exchange.path = NULL;
    copy.exchange.req_headers = NULL; /* not kept: the bytes are */
    copy.exchange.resp_headers = NULL;
    sim__copy(copy.method, sizeof(copy.method), ev->exchange->method);
    sim__copy(copy.path, sizeof(copy.path), ev->exchange->path);
  }
  if(ev->text) {
    copy.text = strdup(ev->text);
    ok = copy.text != NULL;
  }
  if(ok && ev->data && ev->len) {
    copy.data = malloc(ev->len);
    ok = copy.data != NULL;
    if(ok) {
      memcpy(copy.data, ev->data, ev->len);
      copy.len = ev->len;
      sim__redact_basic(copy.data, copy.len);
    }
  }

  pthread_mutex_lock(&rec->lock);
  if(ok && rec->count == rec->alloc) {
    size_t alloc = rec->alloc ? rec->alloc * 2 : 256;
    struct sim_event *events = realloc(rec->events, alloc * sizeof(*events));
    if(events) {
      rec->events = events;
      rec->alloc = alloc;
    }
    else
      ok = false;
  }
  if(ok) {
    /* Unstamped (the real clock): read under the lock, so times never go
     * backwards in arrival order. */
    if(!copy.at_us) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      copy.at_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
      if(rec->count && copy.at_us < rec->events[rec->count - 1].at_us)
        copy.at_us = rec->events[rec->count - 1].at_us;
    }
    rec->events[rec->count++] = copy;
  }
  else
    rec->failed = true;
  pthread_mutex_unlock(&rec->lock);
  if(!ok)
    sim__event_free(&copy);
}

struct kb_trace sim_recorder_as_kb(struct sim_recorder *rec)
{
  struct kb_trace kb = {sim__recorder_emit, rec};

  return kb;
}

struct sim_recorder *sim_recorder_of(struct kb_trace trace)
{
  return trace.emit == sim__recorder_emit ? trace.ctx : NULL;
}
