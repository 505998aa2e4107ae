/*
 * conns.c - the recorder's byte-stream events grouped into connections,
 * sorted by name, and cut into HTTP messages (kb_wire_message), with when
 * each connection opened and closed and why: what the transcript, the
 * pcap and serve's report are written from.
 *
 * Only the connecting side of each hop records HTTP bytes (libcurl's debug
 * callback in the client and in the proxy's upstream handle), so every
 * connection has exactly one byte stream; both hops are named by
 * kb_names, so connections sort by who was talking.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/kb_buf.h"
#include "common/kb_wire.h"
#include "evidence_int.h"
#include "ntlm/ntlm.h"

static const struct evidence_close_row evidence__close_rows[] = {
    {KB_NOTE_IDLE_CLOSED, true, false, "idle",
     "closed by ISA: idle past the listener's limit"},
    {KB_NOTE_MAX_REQUESTS, true, false, "max-requests",
     "closed by ISA after its answer: the listener's max requests"},
    {KB_NOTE_CLIENT_IDLE, false, false, "client-idle",
     "closed by the client: idle past the client's own limit"},
    {KB_NOTE_CLIENT_MAX_REQUESTS, false, false, "client-max-requests",
     "closed by the client: the client's max requests"},
    {KB_NOTE_CLIENT_LEFT, false, false, "client-left",
     "closed by the client in the middle of a request"},
    {KB_NOTE_SERVER_CLOSED_FIRST, true, false, "server-closed",
     "closed by ISA: its FIN reached the balancer first"},
    {KB_NOTE_CLIENT_RESET, false, true, "reset", "reset by the client (RST)"},
    {KB_NOTE_MEMBER_RESET, true, true, "reset", "reset by ISA (RST)"},
    {KB_NOTE_BALANCER_STOPPED, true, false, "stopped",
     "closed by serve: still open when it stopped"},
    {KB_NOTE_MEMBER_UNREACHABLE, true, false, "member-unreachable",
     "closed by the balancer: it could not connect to the member"},
};

int evidence_name_cmp(const char *a, const char *b)
{
  int by_case = strcmp(a, b);

  while(*a && *b) {
    int x, y;
    if(isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
      unsigned long long m = strtoull(a, (char **)&a, 10);
      unsigned long long n = strtoull(b, (char **)&b, 10);
      if(m != n)
        return m < n ? -1 : 1;
      continue;
    }
    x = tolower((unsigned char)*a);
    y = tolower((unsigned char)*b);
    if(x != y)
      return x < y ? -1 : 1;
    a++;
    b++;
  }
  if(*a || *b)
    return *a ? 1 : -1;
  return by_case < 0 ? -1 : by_case > 0;
}

static int evidence__conn_cmp(const void *pa, const void *pb)
{
  const struct evidence_conn *a = pa, *b = pb;

  return evidence_name_cmp(a->name, b->name);
}

static bool evidence__is_stream_event(const struct sim_event *ev)
{
  return ev->side == KB_SIDE_CLIENT && (ev->conn_name[0] || ev->conn) &&
         (ev->kind == KB_TRACE_OPEN || ev->kind == KB_TRACE_CLOSE ||
          ev->kind == KB_TRACE_SEND || ev->kind == KB_TRACE_RECV);
}

/* The name evidence files ev's connection under: its own, or for a
 * connection nobody named (a live client ISA does not know), the
 * observer's: "ISA01 conn 7 upstream". */
static void evidence__stream_name(const struct sim_event *ev, char *out,
                                  size_t len)
{
  if(ev->conn_name[0])
    snprintf(out, len, "%s", ev->conn_name);
  else
    snprintf(out, len, "%s conn %llu%s", ev->origin,
             (unsigned long long)ev->conn,
             ev->hop == KB_HOP_PROXY_BACKEND ? " upstream" : "");
}

void evidence__conns_free(struct evidence_conns *c)
{
  size_t i, j;

  for(i = 0; i < c->count; i++) {
    for(j = 0; j < c->items[i].nmsgs; j++)
      free(c->items[i].msgs[j].data);
    free(c->items[i].msgs);
    free(c->items[i].events);
    free(c->items[i].name);
  }
  free(c->items);
  memset(c, 0, sizeof(*c));
}

/* evidence_set_redact: NTLM proofs replaced in every message written. */
bool evidence__redacting;

void evidence_set_redact(bool on)
{
  evidence__redacting = on;
}

/* Replaces the NTLM proofs of every Authorization in m's head by a marker
 * of the same length (ntlm_header_redact), so that the transcript and the
 * pcap, which are written from these messages, keep every length and
 * offset. */
static void evidence__redact_head(struct evidence_msg *m)
{
  static const char *const names[] = {"Authorization", "Proxy-Authorization"};
  const char *fields;
  size_t i;

  fields = memchr(m->data, '\n', m->head);
  if(!fields)
    return;
  fields++;
  for(i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    size_t flen = m->head - (size_t)(fields - (const char *)m->data);
    size_t at = 0, vlen;
    const char *v;

    while((v = kb_wire_field(fields, flen, names[i], &at, &vlen)) != NULL)
      ntlm_header_redact((char *)v, vlen);
  }
}

/* Appends the messages of one direction's run of bytes to c. offs[k] is
 * where event idx[k]'s bytes start in b. Returns 0, or -1 out of memory. */
static int evidence__add_messages(const struct sim_recorder *rec,
                                  struct evidence_conn *c,
                                  enum kb_trace_kind dir,
                                  const struct kb_buf *b, const size_t *offs,
                                  const size_t *idx, size_t n)
{
  size_t at = 0, k = 0;

  while(at < b->len) {
    struct kb_wire_msg wm;
    size_t len = kb_wire_message(
        (const uint8_t *)b->data + at, b->len - at,
        dir == KB_TRACE_RECV ? KB_WIRE_RESPONSE : KB_WIRE_REQUEST, &wm);
    struct evidence_msg *m;
    struct evidence_msg *grown =
        realloc(c->msgs, (c->nmsgs + 1) * sizeof(*c->msgs));

    if(!grown)
      return -1;
    c->msgs = grown;
    while(k + 1 < n && offs[k + 1] <= at)
      k++;
    m = &c->msgs[c->nmsgs];
    m->dir = dir;
    m->len = len;
    m->head = wm.head;
    m->at_us = rec->events[idx[k]].at_us;
    m->rank = idx[k];
    m->data = malloc(len);
    if(!m->data)
      return -1;
    memcpy(m->data, b->data + at, len);
    if(evidence__redacting && wm.whole_head)
      evidence__redact_head(m);
    c->nmsgs++;
    at += len;
  }
  return 0;
}

/* Builds c's messages, open and close from its events. Returns 0 or -1
 * out of memory. */
static int evidence__conn_build(const struct sim_recorder *rec,
                                struct evidence_conn *c)
{
  struct kb_buf run;
  size_t *offs = calloc(c->count + 1, sizeof(*offs));
  size_t *idx = calloc(c->count + 1, sizeof(*idx));
  enum kb_trace_kind dir = KB_TRACE_OPEN;
  size_t j, n = 0;
  int result = 0;

  kb_buf_init(&run, (size_t)64 << 20);
  if(!offs || !idx)
    result = -1;
  for(j = 0; !result && j <= c->count; j++) {
    const struct sim_event *ev =
        j < c->count ? &rec->events[c->events[j]] : NULL;

    if(n && (!ev || ev->kind != dir)) {
      result = evidence__add_messages(rec, c, dir, &run, offs, idx, n);
      kb_buf_reset(&run);
      n = 0;
    }
    if(!ev)
      break;
    if(ev->kind == KB_TRACE_OPEN && !c->opened) {
      c->opened = true;
      c->open_us = ev->at_us;
      c->open_rank = c->events[j];
    }
    else if(ev->kind == KB_TRACE_CLOSE) {
      c->closed = true;
      c->close_us = ev->at_us;
      c->close_rank = c->events[j];
    }
    else if(ev->kind == KB_TRACE_SEND || ev->kind == KB_TRACE_RECV) {
      dir = ev->kind;
      offs[n] = run.len;
      idx[n++] = c->events[j];
      if(kb_buf_add(&run, ev->data, ev->len))
        result = -1;
    }
  }
  kb_buf_free(&run);
  free(offs);
  free(idx);
  return result;
}

/* Gives each client-hop connection its reason to close from the notes: a
 * note with a close code about the connection its observer opened under
 * that name (the latest OPEN before the note). conns must be sorted. */
static void evidence__close_reasons(const struct sim_recorder *rec,
                                    struct evidence_conns *conns)
{
  size_t i, r, k;
  const size_t nrows =
      sizeof(evidence__close_rows) / sizeof(*evidence__close_rows);

  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    struct evidence_conn key, *c;

    if(ev->kind != KB_TRACE_NOTE || !ev->conn)
      continue;
    for(r = 0; r < nrows; r++)
      if(evidence__close_rows[r].note == ev->note)
        break;
    if(r == nrows)
      continue;
    /* The observer named the connection when it opened it. */
    for(k = i; k-- > 0;) {
      const struct sim_event *o = &rec->events[k];
      if(o->kind == KB_TRACE_OPEN && o->conn == ev->conn &&
         o->side == ev->side && o->hop == ev->hop &&
         !strcmp(o->origin, ev->origin))
        break;
    }
    if(k == (size_t)-1 || !rec->events[k].conn_name[0])
      continue;
    memset(&key, 0, sizeof(key));
    key.name = (char *)rec->events[k].conn_name;
    c = bsearch(&key, conns->items, conns->count, sizeof(*conns->items),
                evidence__conn_cmp);
    /* A connection ISA or the client had already begun to close when
     * serve stopped keeps that reason: the stop only finished it. */
    if(c && c->hop == KB_HOP_CLIENT_PROXY &&
       !(c->why && ev->note == KB_NOTE_BALANCER_STOPPED)) {
      c->why = &evidence__close_rows[r];
      c->why_text = ev->text;
    }
  }
}

/* Gives each connection its server end's TLS records, by name and hop:
 * the server end learnt the name its peer claimed (kb_names). */
static void evidence__tls_attach(const struct sim_recorder *rec,
                                 struct evidence_conns *conns)
{
  size_t i;

  for(i = 0; i < rec->ntls; i++) {
    const struct sim_tls_conn *t = rec->tls[i];
    struct evidence_conn key, *c;

    if(!t->name[0])
      continue;
    memset(&key, 0, sizeof(key));
    key.name = (char *)t->name;
    c = bsearch(&key, conns->items, conns->count, sizeof(*conns->items),
                evidence__conn_cmp);
    if(c && c->hop == t->hop)
      c->tls = t;
  }
}

int evidence__group(const struct sim_recorder *rec, struct evidence_conns *out)
{
  size_t i, j;

  memset(out, 0, sizeof(*out));
  out->items = calloc(rec->count + 1, sizeof(*out->items));
  if(!out->items)
    return -1;
  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    struct evidence_conn *c = NULL;
    char name[128];

    if(!evidence__is_stream_event(ev))
      continue;
    evidence__stream_name(ev, name, sizeof(name));
    /* Connections are few next to events; a linear search from the most
     * recent keeps this simple and fast enough. */
    for(j = out->count; j-- > 0;) {
      if(out->items[j].hop == ev->hop && !strcmp(out->items[j].name, name)) {
        c = &out->items[j];
        break;
      }
    }
    if(!c) {
      c = &out->items[out->count];
      c->name = strdup(name);
      if(!c->name) {
        evidence__conns_free(out);
        return -1;
      }
      out->count++;
      c->hop = ev->hop;
    }
    if(c->count == c->alloc) {
      size_t alloc = c->alloc ? c->alloc * 2 : 16;
      size_t *events = realloc(c->events, alloc * sizeof(*events));
      if(!events) {
        evidence__conns_free(out);
        return -1;
      }
      c->events = events;
      c->alloc = alloc;
    }
    c->events[c->count++] = i;
  }
  qsort(out->items, out->count, sizeof(*out->items), evidence__conn_cmp);
  for(i = 0; i < out->count; i++) {
    if(evidence__conn_build(rec, &out->items[i])) {
      evidence__conns_free(out);
      return -1;
    }
  }
  evidence__close_reasons(rec, out);
  evidence__tls_attach(rec, out);
  /* ISA closes an upstream connection when its client's connection goes,
   * on its own thread: stamped and ordered by the client's close, so the
   * same seed gives the same file whichever thread ran first. */
  for(i = 0; i < out->count; i++) {
    struct evidence_conn *up = &out->items[i];
    struct kb_conn_id id;
    char parent[KB_CONN_NAME_LEN];

    if(up->hop != KB_HOP_PROXY_BACKEND || !up->closed ||
       kb_conn_name_parse(up->name, &id) || !id.upstream)
      continue;
    id.upstream = 0;
    kb_conn_name_format(&id, parent, sizeof(parent));
    for(j = 0; j < out->count; j++) {
      const struct evidence_conn *p = &out->items[j];
      if(p->hop == KB_HOP_CLIENT_PROXY && p->closed &&
         !strcmp(p->name, parent) && p->close_us <= up->close_us) {
        up->close_us = p->close_us;
        up->close_rank = p->close_rank;
        up->parent_closed = true;
        break;
      }
    }
  }
  return 0;
}
