/*
 * kbt.c - see kbt.h.
 */
#include "kbt.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const kbt_oof_body =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
    "xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\" "
    "xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\">"
    "<soap:Body><m:GetUserOofSettingsRequest><t:Mailbox>"
    "<t:Address>alice@fabrikam.com</t:Address></t:Mailbox>"
    "</m:GetUserOofSettingsRequest></soap:Body></soap:Envelope>";

int64_t kbt_now(void *ctx, const char *who)
{
  (void)ctx;
  (void)who;
  return KBT_CASE_MS;
}

void kbt_rng_init(struct kbt_rng *r, uint64_t seed)
{
  memset(r, 0, sizeof(*r));
  pthread_mutex_init(&r->lock, NULL);
  r->seed = seed;
}

void kbt_rng_free(struct kbt_rng *r)
{
  pthread_mutex_destroy(&r->lock);
}

struct kb_rng kbt_rng(struct kbt_rng *r)
{
  struct kb_rng rng = {kbt_fill, r};
  return rng;
}

void kbt_fill(void *ctx, const char *label, uint8_t *buf, size_t len)
{
  struct kbt_rng *r = ctx;
  uint64_t h = UINT64_C(1469598103934665603);
  size_t i;

  if(r) {
    h ^= r->seed;
    pthread_mutex_lock(&r->lock);
    if(r->nlabels < KBT_LABELS)
      snprintf(r->labels[r->nlabels++], sizeof(r->labels[0]), "%s", label);
    pthread_mutex_unlock(&r->lock);
  }
  for(i = 0; label[i]; i++) {
    h ^= (uint8_t)label[i];
    h *= UINT64_C(1099511628211);
  }
  for(i = 0; i < len; i++) {
    uint64_t z = (h += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    buf[i] = (uint8_t)(z ^ (z >> 31));
  }
}

/* ---- trace recorder --------------------------------------------------- */

void kbt_trace_init(struct kbt_trace *t, bool keep_bytes, const char *debug)
{
  memset(t, 0, sizeof(*t));
  pthread_mutex_init(&t->lock, NULL);
  pthread_cond_init(&t->cond, NULL);
  t->keep_bytes = keep_bytes;
  t->debug = debug;
}

struct kb_trace kbt_trace_sink(struct kbt_trace *t)
{
  struct kb_trace sink = {kbt_emit, t};
  return sink;
}

void kbt_trace_free(struct kbt_trace *t)
{
  size_t i;

  for(i = 0; i < t->n; i++)
    free(t->ev[i].text);
  free(t->ev);
  pthread_cond_destroy(&t->cond);
  pthread_mutex_destroy(&t->lock);
  memset(t, 0, sizeof(*t));
}

/* Prints e when the trace's debug variable is set. */
static void kbt_debug(const struct kbt_trace *t, const struct kbt_event *x,
                      const struct kb_trace_event *e)
{
  if(!t->debug || !getenv(t->debug))
    return;
  if(e->kind == KB_TRACE_NOTE)
    fprintf(stderr, "[%s %" PRIu64 " hop %d] %s\n", x->origin, x->conn,
            (int)x->hop, x->text);
  else if(e->kind == KB_TRACE_EXCHANGE)
    fprintf(stderr, "[%s %" PRIu64 " hop %d] %s %s %s -> %d %s\n", x->origin,
            x->conn, (int)x->hop, e->exchange->method, e->exchange->path,
            kb_auth_name(x->ex.req_auth), x->ex.status,
            kb_auth_name(x->ex.resp_auth));
}

void kbt_emit(void *ctx, const struct kb_trace_event *e)
{
  struct kbt_trace *t = ctx;
  struct kbt_event *x;

  if(!t->keep_bytes && (e->kind == KB_TRACE_SEND || e->kind == KB_TRACE_RECV))
    return;
  pthread_mutex_lock(&t->lock);
  if(t->n == t->size) {
    t->size = t->size ? t->size * 2 : 256;
    t->ev = realloc(t->ev, t->size * sizeof(*t->ev));
    ck_assert_ptr_nonnull(t->ev);
  }
  x = &t->ev[t->n++];
  memset(x, 0, sizeof(*x));
  x->kind = e->kind;
  x->hop = e->hop;
  x->side = e->side;
  x->conn = e->conn;
  snprintf(x->origin, sizeof(x->origin), "%s", e->origin ? e->origin : "");
  snprintf(x->conn_name, sizeof(x->conn_name), "%s",
           e->conn_name ? e->conn_name : "");
  if(e->kind == KB_TRACE_NOTE) {
    x->note = e->note;
    x->text = strdup(e->text ? e->text : "");
    x->len = strlen(x->text);
  }
  else if(e->data) {
    x->text = malloc(e->len + 1);
    ck_assert_ptr_nonnull(x->text);
    memcpy(x->text, e->data, e->len);
    x->text[e->len] = '\0';
    x->len = e->len;
  }
  if(e->kind == KB_TRACE_EXCHANGE && e->exchange) {
    x->ex = *e->exchange;
    snprintf(x->method, sizeof(x->method), "%s",
             e->exchange->method ? e->exchange->method : "");
    snprintf(x->path, sizeof(x->path), "%s",
             e->exchange->path ? e->exchange->path : "");
    x->ex.method = NULL; /* not valid after the call */
    x->ex.path = NULL;
  }
  kbt_debug(t, x, e);
  pthread_cond_broadcast(&t->cond);
  pthread_mutex_unlock(&t->lock);
}

size_t kbt_count(struct kbt_trace *t, enum kb_trace_kind kind, enum kb_hop hop,
                 uint64_t conn)
{
  size_t i, n = 0;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n; i++)
    if(t->ev[i].kind == kind && t->ev[i].hop == hop &&
       (!conn || t->ev[i].conn == conn))
      n++;
  pthread_mutex_unlock(&t->lock);
  return n;
}

size_t kbt_count_from(struct kbt_trace *t, enum kb_trace_kind kind,
                      const char *origin)
{
  size_t i, n = 0;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n; i++)
    n += t->ev[i].kind == kind && (!origin || !strcmp(t->ev[i].origin, origin));
  pthread_mutex_unlock(&t->lock);
  return n;
}

bool kbt_get(struct kbt_trace *t, enum kb_trace_kind kind, size_t index,
             struct kbt_event *out)
{
  size_t i;
  bool found = false;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n && !found; i++)
    if(t->ev[i].kind == kind && index-- == 0) {
      *out = t->ev[i];
      found = true;
    }
  pthread_mutex_unlock(&t->lock);
  return found;
}

bool kbt_has_note(struct kbt_trace *t, enum kb_note code, uint64_t conn,
                  const char *fact)
{
  size_t i;
  bool found = false;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n && !found; i++)
    found = t->ev[i].kind == KB_TRACE_NOTE && t->ev[i].note == code &&
            (!conn || t->ev[i].conn == conn) &&
            (!fact || strstr(t->ev[i].text, fact));
  pthread_mutex_unlock(&t->lock);
  return found;
}

size_t kbt_count_code(struct kbt_trace *t, enum kb_note code)
{
  size_t i, n = 0;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n; i++)
    n += t->ev[i].kind == KB_TRACE_NOTE && t->ev[i].note == code;
  pthread_mutex_unlock(&t->lock);
  return n;
}

size_t kbt_find_send(struct kbt_trace *t, const char *origin,
                     const char *prefix, size_t from)
{
  size_t i;

  for(i = from; i < t->n; i++)
    if(t->ev[i].kind == KB_TRACE_SEND && !strcmp(t->ev[i].origin, origin) &&
       t->ev[i].len >= strlen(prefix) &&
       !memcmp(t->ev[i].text, prefix, strlen(prefix)))
      return i;
  return t->n;
}

size_t kbt_count_sends_with(struct kbt_trace *t, const char *origin,
                            const char *needle)
{
  size_t i, n = 0;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n; i++)
    if(t->ev[i].kind == KB_TRACE_SEND && !strcmp(t->ev[i].origin, origin) &&
       strstr(t->ev[i].text, needle))
      n++;
  pthread_mutex_unlock(&t->lock);
  return n;
}

const char *kbt_find_note(struct kbt_trace *t, const char *origin,
                          const char *needle)
{
  const char *found = NULL;
  size_t i;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n && !found; i++)
    if(t->ev[i].kind == KB_TRACE_NOTE && !strcmp(t->ev[i].origin, origin) &&
       strstr(t->ev[i].text, needle))
      found = t->ev[i].text;
  pthread_mutex_unlock(&t->lock);
  return found;
}

void kbt_assert_serial_conns(struct kbt_trace *t, const char *origin,
                             uint64_t n)
{
  uint64_t open = 0, closed = 0;
  size_t i;

  for(i = 0; i < t->n; i++) {
    if(strcmp(t->ev[i].origin, origin))
      continue;
    if(t->ev[i].kind == KB_TRACE_OPEN) {
      ck_assert_uint_eq(closed, open);
      ck_assert_uint_eq(t->ev[i].conn, ++open);
    }
    else if(t->ev[i].kind == KB_TRACE_CLOSE) {
      ck_assert_uint_eq(t->ev[i].conn, open);
      closed++;
    }
  }
  ck_assert_uint_eq(open, n);
  ck_assert_uint_eq(closed, n);
}

bool kbt_anywhere(struct kbt_trace *t, const char *needle)
{
  size_t i;
  bool found = false;

  pthread_mutex_lock(&t->lock);
  for(i = 0; i < t->n && !found; i++)
    found = t->ev[i].text && strstr(t->ev[i].text, needle);
  pthread_mutex_unlock(&t->lock);
  return found;
}

void kbt_wait_for(struct kbt_trace *t, enum kb_trace_kind kind, enum kb_hop hop)
{
  size_t i = 0;

  pthread_mutex_lock(&t->lock);
  for(;;) {
    for(; i < t->n; i++)
      if(t->ev[i].kind == kind && t->ev[i].hop == hop)
        goto done;
    pthread_cond_wait(&t->cond, &t->lock);
  }
done:
  pthread_mutex_unlock(&t->lock);
}
