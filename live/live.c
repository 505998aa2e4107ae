/*
 * live.c - see live.h.
 *
 * A member traces a request as: its decision notes, then (when it
 * forwards) the bytes libcurl sent to Exchange and received, then the
 * exchange on the client hop, all with the client connection's id and
 * from that connection's loop thread. So a leg is gathered per (member,
 * connection) and is complete at the client-hop exchange; connections of
 * different members interleave freely. Each complete leg becomes one JSON
 * object (jansson) kept in a ring, and one terminal line; its session's
 * user and score are score.c's.
 */
#include "client/client.h"
#include "common/kb_buf.h"
#include "common/kb_wire.h"
#include "live_int.h"
#include "ntlm/ntlm.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int live_new(const struct live_config *config, struct live **out, char *err,
             size_t errlen)
{
  struct live *l = calloc(1, sizeof(*l));

  *out = NULL;
  if(!l)
    goto nomem;
  l->out = config->out;
  snprintf(l->since, sizeof(l->since), "the start");
  live__clock(l->since_at, sizeof(l->since_at), false);
  l->max_legs = config->max_legs ? config->max_legs : LIVE_DEFAULT_MAX_LEGS;
  l->ring = calloc(l->max_legs, sizeof(*l->ring));
  if(!l->ring)
    goto nomem;
  if(pthread_mutex_init(&l->lock, NULL))
    goto nomem;
  if(pthread_cond_init(&l->changed, NULL)) {
    pthread_mutex_destroy(&l->lock);
    goto nomem;
  }
  *out = l;
  return 0;

nomem:
  if(l)
    free(l->ring);
  free(l);
  snprintf(err, errlen, "live view: out of memory");
  return -1;
}

/* The pending leg of (member, conn), made when create is set and none is
 * there (the least recently used one goes when all are taken). NULL when
 * there is none. Called with the lock held. */
static struct live__pending *live__find(struct live *l, const char *member,
                                        uint64_t conn, bool create)
{
  struct live__pending *oldest = NULL, *p;
  size_t i;

  for(i = 0; i < LIVE_MAX_PENDING; i++) {
    p = &l->pending[i];
    if(p->used && p->conn == conn && !strcmp(p->member, member)) {
      p->stamp = ++l->stamp;
      return p;
    }
    /* A free slot first, else the one touched longest ago. */
    if(!oldest || (oldest->used && (!p->used || p->stamp < oldest->stamp)))
      oldest = p;
  }
  if(!create)
    return NULL;
  p = oldest;
  kb_buf_free(&p->up_req);
  kb_buf_free(&p->up_resp);
  memset(p, 0, sizeof(*p));
  p->used = true;
  snprintf(p->member, sizeof(p->member), "%s", member);
  p->conn = conn;
  p->stamp = ++l->stamp;
  kb_buf_init(&p->up_req, LIVE_HEAD_MAX);
  kb_buf_init(&p->up_resp, LIVE_HEAD_MAX);
  return p;
}

static void live__drop(struct live__pending *p)
{
  kb_buf_free(&p->up_req);
  kb_buf_free(&p->up_resp);
  memset(p, 0, sizeof(*p));
}

/* Adds bytes of one direction of the forwarded exchange: the head (up to
 * its blank line) is kept, the body only counted. */
static void live__up_bytes(struct kb_buf *head, bool *head_done, size_t *body,
                           const uint8_t *data, size_t len)
{
  size_t i;

  for(i = 0; i < len; i++) {
    if(*head_done) {
      *body += len - i;
      return;
    }
    if(kb_buf_add(head, &data[i], 1) != KB_BUF_OK) {
      *head_done = true; /* too long a head: keep what fits */
      continue;
    }
    if(head->len >= 4 && !memcmp(head->data + head->len - 4, "\r\n\r\n", 4))
      *head_done = true;
  }
}

/* The status code of a response head ("HTTP/1.1 500 ..."), or 0. */
static int live__status_of(const struct kb_buf *head)
{
  const char *sp;

  if(!head->data || head->len < 12 || strncmp(head->data, "HTTP/", 5))
    return 0;
  sp = memchr(head->data, ' ', head->len);
  if(!sp || sp + 4 > head->data + head->len)
    return 0;
  return atoi(sp + 1);
}

/* Sets key to ntlm_header_describe of header name in lines, when it has a
 * token. */
static void live__token(json_t *leg, const char *key, const char *lines,
                        const char *name)
{
  const char *value;
  char what[512];
  size_t vlen;

  if(lines &&
     (value = kb_wire_field_first(lines, strlen(lines), name, &vlen)) &&
     ntlm_header_describe(value, vlen, what, sizeof(what)))
    json_object_set_new(leg, key, json_string(what));
}

/* Sets key to the text of buf (a JSON string; invalid UTF-8 becomes '?'),
 * or null. */
static void live__text(json_t *leg, const char *key, const char *text,
                       size_t len)
{
  char *copy;
  size_t i;

  if(!text) {
    json_object_set_new(leg, key, json_null());
    return;
  }
  copy = malloc(len + 1);
  if(!copy)
    return;
  for(i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    copy[i] = (c >= 0x20 && c < 0x7f) || c == '\r' || c == '\n' ? (char)c : '?';
  }
  copy[len] = '\0';
  json_object_set_new(leg, key, json_string(copy));
  free(copy);
}

/* The user an Authorization value in lines names: "DOMAIN\\user" of an
 * NTLM type 3, written into out; false when it carries none. */
static bool live__user_of(const char *lines, char *out, size_t len)
{
  struct ntlm_message msg;
  struct ntlm_bytes token = {NULL, 0};
  enum ntlm_scheme scheme;
  const char *value;
  char copy[8192], err[160];
  size_t vlen;
  bool found = false;

  if(!lines ||
     !(value =
           kb_wire_field_first(lines, strlen(lines), "Authorization", &vlen)) ||
     vlen >= sizeof(copy))
    return false;
  memcpy(copy, value, vlen);
  copy[vlen] = '\0';
  if(ntlm_header_parse(copy, &scheme, &token, err, sizeof(err)) != NTLM_OK)
    return false;
  if(ntlm_peek_type(token.data, token.len) == NTLM_TYPE_AUTHENTICATE &&
     ntlm_decode(token.data, token.len, &msg, err, sizeof(err)) == NTLM_OK) {
    if(msg.user && msg.user[0]) {
      snprintf(out, len, "%s%s%s", msg.domain ? msg.domain : "",
               msg.domain && msg.domain[0] ? "\\" : "", msg.user);
      found = true;
    }
    ntlm_message_free(&msg);
  }
  ntlm_bytes_free(&token);
  return found;
}

/* Whether the answer of ex is an error for the user: any 4xx or 5xx but a
 * 401 that is a step of the handshake, that is, one answering a request
 * without credentials or with a type 1 (a refused type 3 or Basic
 * credentials count). */
static bool live__failed(const struct kb_exchange *ex)
{
  if(ex->status < 400)
    return false;
  return ex->status != 401 || ex->req_auth == KB_AUTH_NTLM_AUTHENTICATE ||
         ex->req_auth == KB_AUTH_OTHER;
}

/* Who sent a request, by its User-Agent: the label of the client kind that
 * sends it ("Internet Explorer"), or null for any other program. */
static json_t *live__client_of(const char *lines)
{
  const struct client_kind_info *k = NULL;
  const char *ua;
  size_t len;

  if(lines &&
     (ua = kb_wire_field_first(lines, strlen(lines), "User-Agent", &len)))
    k = client_kind_by_user_agent(ua, len);
  return k ? json_string(k->label) : json_null();
}

/* Builds the leg of p and ex as JSON; NULL when out of memory. */
static json_t *live__leg_json(const struct live__pending *p,
                              const struct kb_exchange *ex, uint64_t seq,
                              const char *when, const char *user, bool failed,
                              const char **decision)
{
  json_t *leg, *notes = json_array();
  size_t i;

  *decision = "";
  for(i = 0; i < p->nnotes; i++) {
    json_array_append_new(notes, json_pack("{s:s, s:s}", "code",
                                           kb_note_name(p->notes[i].code),
                                           "text", p->notes[i].text));
    if(!**decision)
      *decision = kb_note_name(p->notes[i].code);
  }
  leg = json_pack(
      "{s:I, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:i, s:s, s:I, s:o, s:b}",
      "seq", (json_int_t)seq, "time", when, "member", p->member, "conn",
      (json_int_t)p->conn, "method", ex->method ? ex->method : "?", "path",
      ex->path ? ex->path : "?", "req_auth", kb_auth_name(ex->req_auth),
      "req_body", (json_int_t)ex->req_body_len, "status", ex->status,
      "resp_auth", kb_auth_name(ex->resp_auth), "resp_body",
      (json_int_t)ex->resp_body_len, "decisions", notes, "forwarded",
      p->forwarded);
  if(!leg)
    return NULL;
  json_object_set_new(leg, "user", user[0] ? json_string(user) : json_null());
  json_object_set_new(leg, "client", live__client_of(ex->req_headers));
  json_object_set_new(leg, "failed", json_boolean(failed));
  live__text(leg, "req_headers", ex->req_headers,
             ex->req_headers ? strlen(ex->req_headers) : 0);
  live__text(leg, "resp_headers", ex->resp_headers,
             ex->resp_headers ? strlen(ex->resp_headers) : 0);
  live__token(leg, "req_token", ex->req_headers, "Authorization");
  live__token(leg, "resp_token", ex->resp_headers, "WWW-Authenticate");
  if(p->forwarded) {
    json_t *up = json_pack(
        "{s:I, s:i, s:I}", "req_body", (json_int_t)p->up_req_body, "status",
        live__status_of(&p->up_resp), "resp_body", (json_int_t)p->up_resp_body);
    if(up) {
      live__text(up, "req_head", p->up_req.data, p->up_req.len);
      live__text(up, "resp_head", p->up_resp.data, p->up_resp.len);
      if(p->up_req.data)
        live__token(up, "req_token", p->up_req.data, "Authorization");
      json_object_set_new(leg, "exchange", up);
    }
  }
  return leg;
}

/* Completes the pending leg of ev's connection with ev's exchange: keeps
 * it in the ring, wakes the waiters and formats the terminal line into
 * line (empty when there is nothing to print). Called with the lock
 * held. */
static void live__complete(struct live *l, const struct kb_trace_event *ev,
                           char *line, size_t linelen)
{
  const struct kb_exchange *ex = ev->exchange;
  struct live__pending *p = live__find(l, ev->origin, ev->conn, true);
  struct live__leg *slot;
  const char *decision;
  char when[32], *dumped, named[LIVE_USER_MAX], user[LIVE_USER_MAX];
  bool failed = live__failed(ex);
  json_t *leg;
  uint64_t seq = l->seq + 1;

  live__clock(when, sizeof(when), true);
  live__score_leg(l, p->member, p->conn,
                  live__user_of(ex->req_headers, named, sizeof(named)) ? named
                                                                       : NULL,
                  failed, user, sizeof(user));
  leg = live__leg_json(p, ex, seq, when, user, failed, &decision);
  dumped = leg ? json_dumps(leg, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(leg);
  line[0] = '\0';
  if(l->out)
    snprintf(line, linelen,
             "%s %s conn %" PRIu64 " %s %s %s%s: %s -> %d%s%s%s\n", when,
             p->member, p->conn, ex->method ? ex->method : "?",
             ex->path ? ex->path : "?",
             ex->req_auth == KB_AUTH_NONE ? "no Authorization"
                                          : kb_auth_name(ex->req_auth),
             ex->req_body_len ? "" : ", no body", *decision ? decision : "-",
             ex->status, ex->resp_auth != KB_AUTH_NONE ? " " : "",
             ex->resp_auth != KB_AUTH_NONE ? kb_auth_name(ex->resp_auth) : "",
             p->forwarded ? " (Exchange's answer)" : "");
  live__drop(p);
  if(!dumped)
    return;
  l->seq = seq;
  slot = &l->ring[(seq - 1) % l->max_legs];
  free(slot->json);
  slot->seq = seq;
  slot->json = dumped;
  l->version++;
  pthread_cond_broadcast(&l->changed);
}

/* The sink: members' events only (the backend's and clients' are seen
 * through them). */
static void live__emit(void *ctx, const struct kb_trace_event *ev)
{
  struct live *l = ctx;
  struct live__pending *p;
  char line[1024] = "";

  if(!ev->origin || !ev->origin[0] ||
     ev->side !=
         (ev->hop == KB_HOP_CLIENT_PROXY ? KB_SIDE_SERVER : KB_SIDE_CLIENT))
    return;
  pthread_mutex_lock(&l->lock);
  switch(ev->kind) {
  case KB_TRACE_NOTE:
    if(ev->hop != KB_HOP_CLIENT_PROXY || !ev->conn ||
       ev->note == KB_NOTE_LIBRARY)
      break;
    p = live__find(l, ev->origin, ev->conn, true);
    if(p->nnotes < LIVE_MAX_NOTES) {
      p->notes[p->nnotes].code = ev->note;
      snprintf(p->notes[p->nnotes].text, sizeof(p->notes[0].text), "%s",
               ev->text ? ev->text : "");
      p->nnotes++;
    }
    break;
  case KB_TRACE_SEND:
  case KB_TRACE_RECV:
    if(ev->hop != KB_HOP_PROXY_BACKEND)
      break;
    p = live__find(l, ev->origin, ev->conn, true);
    if(ev->kind == KB_TRACE_SEND && p->up_resp.len)
      p->up_done = true; /* a second request on this leg: keep the first */
    if(p->up_done)
      break;
    p->forwarded = true;
    if(ev->kind == KB_TRACE_SEND)
      live__up_bytes(&p->up_req, &p->up_req_head_done, &p->up_req_body,
                     ev->data, ev->len);
    else
      live__up_bytes(&p->up_resp, &p->up_resp_head_done, &p->up_resp_body,
                     ev->data, ev->len);
    break;
  case KB_TRACE_EXCHANGE:
    if(ev->hop == KB_HOP_CLIENT_PROXY && ev->exchange)
      live__complete(l, ev, line, sizeof(line));
    break;
  case KB_TRACE_CLOSE:
    if(ev->hop == KB_HOP_CLIENT_PROXY) {
      p = live__find(l, ev->origin, ev->conn, false);
      if(p)
        live__drop(p);
      live__score_close(l, ev->origin, ev->conn);
    }
    break;
  case KB_TRACE_OPEN:
    break;
  }
  pthread_mutex_unlock(&l->lock);
  /* Printed outside the lock: a slow terminal holds up only this member. */
  if(line[0] && l->out) {
    fputs(line, l->out);
    fflush(l->out);
  }
}

struct kb_trace live_as_trace(struct live *live)
{
  struct kb_trace t;

  t.emit = live__emit;
  t.ctx = live;
  return t;
}

uint64_t live_version(struct live *live)
{
  uint64_t v;

  pthread_mutex_lock(&live->lock);
  v = live->version;
  pthread_mutex_unlock(&live->lock);
  return v;
}

void live_bump(struct live *live)
{
  pthread_mutex_lock(&live->lock);
  live->version++;
  pthread_cond_broadcast(&live->changed);
  pthread_mutex_unlock(&live->lock);
}

void live_wake_all(struct live *live)
{
  pthread_mutex_lock(&live->lock);
  live->woken = true;
  pthread_cond_broadcast(&live->changed);
  pthread_mutex_unlock(&live->lock);
}

uint64_t live_wait(struct live *live, uint64_t seen, int timeout_ms)
{
  struct timespec until;
  uint64_t v;

  kb_deadline(&until, timeout_ms > 0 ? (unsigned)timeout_ms : 0);
  pthread_mutex_lock(&live->lock);
  while(live->version == seen && !live->woken)
    if(pthread_cond_timedwait(&live->changed, &live->lock, &until))
      break;
  v = live->version;
  pthread_mutex_unlock(&live->lock);
  return v;
}

uint64_t live_events_since(struct live *live, uint64_t after,
                           struct kb_buf *out)
{
  uint64_t first, s, last = after;

  pthread_mutex_lock(&live->lock);
  first = live->seq > live->max_legs ? live->seq - live->max_legs + 1 : 1;
  for(s = after + 1 > first ? after + 1 : first; s <= live->seq; s++) {
    const struct live__leg *leg = &live->ring[(s - 1) % live->max_legs];

    if(leg->seq != s || !leg->json)
      continue;
    if(kb_buf_printf(out, "id: %" PRIu64 "\nevent: leg\ndata: %s\n\n", s,
                     leg->json))
      break;
    last = s;
  }
  pthread_mutex_unlock(&live->lock);
  return last;
}

void live__clock(char *out, size_t len, bool ms)
{
  struct timespec ts;
  struct tm tm;

  clock_gettime(CLOCK_REALTIME, &ts);
  localtime_r(&ts.tv_sec, &tm);
  if(ms)
    snprintf(out, len, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000L);
  else
    snprintf(out, len, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void live_reset(struct live *live, const char *since)
{
  size_t i;

  pthread_mutex_lock(&live->lock);
  for(i = 0; i < LIVE_MAX_PENDING; i++)
    live__drop(&live->pending[i]);
  for(i = 0; i < live->max_legs; i++) {
    free(live->ring[i].json);
    live->ring[i].json = NULL;
    live->ring[i].seq = 0;
  }
  live__score_clear(live, since);
  live->generation++;
  live->version++;
  pthread_cond_broadcast(&live->changed);
  pthread_mutex_unlock(&live->lock);
}

uint64_t live_generation(struct live *live)
{
  uint64_t g;

  pthread_mutex_lock(&live->lock);
  g = live->generation;
  pthread_mutex_unlock(&live->lock);
  return g;
}

void live_free(struct live *live)
{
  size_t i;

  if(!live)
    return;
  for(i = 0; i < LIVE_MAX_PENDING; i++)
    live__drop(&live->pending[i]);
  for(i = 0; i < live->max_legs; i++)
    free(live->ring[i].json);
  free(live->ring);
  pthread_cond_destroy(&live->changed);
  pthread_mutex_destroy(&live->lock);
  free(live);
}
