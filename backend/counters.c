/*
 * counters.c - what the backend counts: the totals, the records of the
 * last BACKEND_MAX_RECORDS connections and the connections still open, all
 * under b->lock, and the public calls that read or reset them.
 */
#include "backend_int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/kb_guard.h"

/* The record of connection id, or NULL when it was overwritten. Called
 * under the lock. */
static struct backend_conn_info *backend_record(struct backend *b, uint64_t id)
{
  struct backend_conn_info *rec;

  if(!id || !b->records)
    return NULL;
  rec = &b->records[(id - 1) % BACKEND_MAX_RECORDS];
  return rec->id == id ? rec : NULL;
}

/* Whether req came with a body and no identity: refused by the gate, or
 * served anonymously. */
static bool backend_unauthenticated_body(const struct backend_req *req)
{
  return req->received > 0 &&
         (req->gate.gate != BACKEND_GATE_PASS || !req->identity[0]);
}

/* Adds value to the WWW-Authenticate values rec's connection sent, unless
 * it is there already. Called under the lock. */
static void backend_count_offer(struct backend_conn_info *rec,
                                const char *value)
{
  unsigned i;

  for(i = 0; i < rec->www_authenticate_count; i++)
    if(!strcmp(rec->www_authenticate[i], value))
      return;
  if(rec->www_authenticate_count < BACKEND_MAX_WWW_AUTH)
    snprintf(rec->www_authenticate[rec->www_authenticate_count++],
             sizeof(rec->www_authenticate[0]), "%s", value);
  else
    rec->www_authenticate_dropped++;
}

/* Adds to rec what the gate's answer to req says: the challenges, the
 * type 3 without one, and the WWW-Authenticate values its 401 carries
 * (mhd.c's backend_offer sends the same). Called under the lock. */
static void backend_count_gate(struct backend_conn_info *rec,
                               const struct backend_req *req)
{
  switch(req->gate.gate) {
  case BACKEND_GATE_PASS:
    break;
  case BACKEND_GATE_CHALLENGE:
    rec->challenges++;
    backend_count_offer(rec, req->gate.www_authenticate);
    break;
  case BACKEND_GATE_REFUSE:
    backend_count_offer(rec, "Negotiate");
    backend_count_offer(rec, "NTLM");
    break;
  }
  rec->type3_without_challenge += req->gate.type3_without_challenge;
  rec->unauthenticated_bodies += backend_unauthenticated_body(req);
}

/* Adds req to its connection's record: the request, the identity it was
 * served as, and whether that identity owns the mailbox it got. Called
 * under the lock. */
static void backend_count_conn(struct backend *b, const struct backend_req *req,
                               const struct soap_reply *reply)
{
  struct backend_conn_info *rec = backend_record(b, req->conn);
  bool mixed = req->gate.gate == BACKEND_GATE_PASS && reply->mailbox[0] &&
               req->identity[0] &&
               !backend_auth_owns(req->identity, reply->mailbox);
  unsigned i;

  if(mixed)
    b->stats.mismatches++;
  if(!rec)
    return;
  rec->requests++;
  if(req->ews_post && req->received == 0 &&
     req->body_state == BACKEND_BODY_BUFFERING)
    rec->empty_posts++;
  backend_count_gate(rec, req);
  if(mixed) {
    rec->mismatches++;
    snprintf(rec->last_mismatch, sizeof(rec->last_mismatch), "%s served as %s",
             reply->mailbox, req->identity);
    snprintf(rec->last_mismatch_mailbox, sizeof(rec->last_mismatch_mailbox),
             "%s", reply->mailbox);
    snprintf(rec->last_mismatch_identity, sizeof(rec->last_mismatch_identity),
             "%s", req->identity);
    rec->last_mismatch_request = rec->requests;
  }
  if(req->gate.gate != BACKEND_GATE_PASS)
    return;
  for(i = 0; i < rec->identities_count; i++)
    if(!strcmp(rec->identities[i], req->identity))
      return;
  if(rec->identities_count < BACKEND_MAX_IDENTITIES)
    snprintf(rec->identities[rec->identities_count++],
             sizeof(rec->identities[0]), "%s", req->identity);
  else
    rec->identities_dropped++;
}

/* Adds to the counters what reply says about req, under the lock. */
void backend__count(struct backend *b, const struct backend_req *req,
                    const struct soap_reply *reply)
{
  struct backend_stats *s = &b->stats;

  pthread_mutex_lock(&b->lock);
  s->requests++;
  if(req->ews_post) {
    s->ews_posts++;
    if(req->received == 0 && req->body_state == BACKEND_BODY_BUFFERING) {
      s->empty_posts++;
    }
  }
  switch(reply->outcome) {
  case SOAP_OUT_SOAP_FAULT:
    s->soap_faults++;
    break;
  case SOAP_OUT_OOF:
    s->oof_ok++;
    break;
  case SOAP_OUT_AVAILABILITY:
    s->availability_ok++;
    break;
  case SOAP_OUT_AUTODISCOVER:
    s->autodiscover_ok++;
    break;
  case SOAP_OUT_AUTODISCOVER_ERROR:
  case SOAP_OUT_WSDL:
  case SOAP_OUT_RPC:
    break;
  case SOAP_OUT_NOT_FOUND:
    s->not_found++;
    break;
  case SOAP_OUT_BAD_METHOD:
    s->bad_method++;
    break;
  case SOAP_OUT_TOO_LARGE:
    s->too_large++;
    break;
  case SOAP_OUT_UNAUTHORIZED:
    if(req->gate.gate == BACKEND_GATE_CHALLENGE)
      s->challenges++;
    else
      s->refused++;
    if(req->gate.channel_binding_refused && !s->channel_binding_refused++)
      snprintf(s->channel_binding_why, sizeof(s->channel_binding_why), "%s",
               req->gate.why);
    break;
  }
  s->type3_without_challenge += req->gate.type3_without_challenge;
  s->unauthenticated_bodies += backend_unauthenticated_body(req);
  backend_count_conn(b, req, reply);
  pthread_mutex_unlock(&b->lock);
}

uint64_t backend__conn_opened(struct backend *b)
{
  uint64_t id;

  pthread_mutex_lock(&b->lock);
  b->stats.connections++;
  b->open++;
  id = ++b->next_conn;
  if(b->records) {
    struct backend_conn_info *rec = &b->records[(id - 1) % BACKEND_MAX_RECORDS];
    memset(rec, 0, sizeof(*rec));
    rec->id = id;
    rec->open = true;
  }
  pthread_mutex_unlock(&b->lock);
  return id;
}

void backend__conn_named(struct backend *b, uint64_t id, const char *name)
{
  struct backend_conn_info *rec;

  pthread_mutex_lock(&b->lock);
  rec = backend_record(b, id);
  if(rec)
    snprintf(rec->name, sizeof(rec->name), "%s", name);
  pthread_mutex_unlock(&b->lock);
}

void backend__conn_status_reader(struct backend *b, uint64_t id)
{
  struct backend_conn_info *rec;

  pthread_mutex_lock(&b->lock);
  assert(b->stats.connections > 0);
  b->stats.connections--;
  b->stats.status_readers++;
  rec = backend_record(b, id);
  if(rec)
    rec->id = 0; /* no longer found, nor listed */
  /* Its id goes to the next connection unless one took a later id in the
   * meantime, so that ids count the topology's connections from 1. */
  if(id == b->next_conn)
    b->next_conn--;
  pthread_mutex_unlock(&b->lock);
}

void backend__conn_closed(struct backend *b, uint64_t id, const char *name)
{
  struct backend_conn_info *rec;

  pthread_mutex_lock(&b->lock);
  rec = backend_record(b, id);
  if(rec) {
    rec->open = false;
    snprintf(rec->name, sizeof(rec->name), "%s", name);
  }
  pthread_mutex_unlock(&b->lock);
}

void backend__conn_done(struct backend *b)
{
  pthread_mutex_lock(&b->lock);
  assert(b->open > 0);
  if(!--b->open)
    pthread_cond_broadcast(&b->idle);
  pthread_mutex_unlock(&b->lock);
}

void backend_stats(const struct backend *backend, struct backend_stats *stats)
{
  /* The lock is not part of the backend's observable state, so taking it
   * through a const pointer is fine. */
  pthread_mutex_t *lock = (pthread_mutex_t *)&backend->lock;

  pthread_mutex_lock(lock);
  *stats = backend->stats;
  pthread_mutex_unlock(lock);
}

int backend_wait_idle(struct backend *backend, unsigned timeout_ms)
{
  struct timespec until;
  int rc = 0;

  kb_deadline(&until, timeout_ms);
  pthread_mutex_lock(&backend->lock);
  while(backend->open && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&backend->idle, &backend->lock, &until);
  rc = backend->open ? -1 : 0;
  pthread_mutex_unlock(&backend->lock);
  return rc;
}

void backend_reset(struct backend *backend)
{
  pthread_mutex_lock(&backend->lock);
  assert(!backend->open);
  memset(&backend->stats, 0, sizeof(backend->stats));
  /* Only the slots this run filled (2.5 MB for all of them, per seed of a
   * sweep): the others are still zero from the last reset or the start. */
  if(backend->records)
    memset(backend->records, 0,
           (size_t)(backend->next_conn < BACKEND_MAX_RECORDS
                        ? backend->next_conn
                        : BACKEND_MAX_RECORDS) *
               sizeof(*backend->records));
  backend->next_conn = 0;
  pthread_mutex_unlock(&backend->lock);
  kb_guard_reset_stats(backend->guard);
}

size_t backend_connections(const struct backend *backend,
                           struct backend_conn_info *out, size_t max)
{
  pthread_mutex_t *lock = (pthread_mutex_t *)&backend->lock;
  uint64_t first, id;
  size_t n = 0;

  pthread_mutex_lock(lock);
  first = backend->next_conn > BACKEND_MAX_RECORDS
              ? backend->next_conn - BACKEND_MAX_RECORDS + 1
              : 1;
  for(id = first; id <= backend->next_conn && n < max && backend->records;
      id++) {
    const struct backend_conn_info *rec =
        &backend->records[(id - 1) % BACKEND_MAX_RECORDS];
    if(rec->id == id)
      out[n++] = *rec;
  }
  pthread_mutex_unlock(lock);
  return n;
}
