/*
 * story.c - the story of a run, leg by leg, from the trace recorder; see
 * story.h.
 *
 * How events become legs: every request Communicator sent is one EXCHANGE
 * event on its side, named by its connection ("client 1 conn 1"). On the
 * listener's side, the decisions (NOTE events, named by the member's own
 * connection id), the requests Exchange received on the upstream
 * connection ISA opened for it ("client 1 conn 1 upstream 1") and the
 * listener's own EXCHANGE event for the request arrive in that order for
 * each request, because a connection carries one request at a time and
 * each of them happens before the answer goes out. So, per connection,
 * the k-th group of listener-side events closed by a listener EXCHANGE
 * belongs to the k-th request Communicator sent on it.
 */
#include "render/story.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kb_buf.h"
#include "common/kb_wire.h"
#include "evidence/evidence.h"
#include "ntlm/ntlm.h"

/* Recorded bytes kept per connection for decoding tokens. */
#define STORY_STREAM_CAP ((size_t)64 << 20)

/* ---- story: building blocks ------------------------------------------- */

/* The listener's events for one request on one connection. */
struct story_group {
  struct story_note *notes;
  size_t nnotes;
  size_t *backs; /* recorder indices of Exchange's EXCHANGE events */
  size_t nbacks;
  size_t back_at; /* where its backs start in its leg's back array */
  char member[32];
  bool closed; /* the listener's EXCHANGE arrived */
};

/* A Communicator connection within the clients drawn. */
struct story_conn {
  const char *name; /* points into the recorder */
  size_t *legs;     /* indices into the story's legs, in order */
  size_t nlegs;
  struct story_group *groups;
  size_t ngroups;
  struct kb_buf send, recv; /* the client's bytes on it */
};

/* An upstream connection ISA opened for one of them. */
struct story_up {
  const char *name;
  size_t *events;          /* Exchange's EXCHANGE events on it, in order */
  struct story_hop **hops; /* the story's hop for each, once matched */
  size_t *notes;           /* per event: Exchange's note on that request, as its
                              recorder index + 1; 0 = none */
  size_t nevents;
  size_t nnotes;
  size_t note_at;     /* Exchange's latest note on it that no EXCHANGE event
                         has closed yet, as its recorder index + 1 */
  struct kb_buf send; /* ISA's bytes on it */
};

/* A listener connection id and the name its client gave it. */
struct story_pconn {
  const char *origin;
  uint64_t id;
  const char *name;
};

struct story_builder {
  struct story_conn *conns;
  size_t nconns;
  struct story_up *ups;
  size_t nups;
  struct story_pconn *pconns;
  size_t npconns;
  size_t *last_leg; /* per client id: its latest leg + 1, 0 = none */
  size_t nlast;
};

/* Appends value to an array of indexes. Returns 0, or -1 when out of
 * memory (the array is left as it was). */
static int story__push_index(size_t **items, size_t *count, size_t value)
{
  size_t *grown = kb_array_grow(*items, sizeof(**items), *count, 1);

  if(!grown)
    return -1;
  *items = grown;
  grown[(*count)++] = value;
  return 0;
}

static int story__push_note(struct story_note **items, size_t *count,
                            enum kb_note code, const char *text)
{
  char *copy = strdup(text ? text : "");
  struct story_note *bigger;

  if(!copy)
    return -1;
  bigger = kb_array_grow(*items, sizeof(**items), *count, 1);
  if(!bigger) {
    free(copy);
    return -1;
  }
  *items = bigger;
  (*items)[*count].code = code;
  (*items)[(*count)++].text = copy;
  return 0;
}

/* Returns the client id that a name like "client 3" or "client 3 conn 1
 * upstream 2" starts with, or 0 when it names no client. */
static unsigned story__client_of(const char *name)
{
  struct kb_conn_id id;

  return kb_conn_name_parse(name, &id) ? 0 : id.client;
}

/* Copies the front connection's name out of an upstream name ("client 1
 * conn 1 upstream 2" -> "client 1 conn 1"). Returns 0, or -1 when name is
 * not an upstream name. */
static int story__front_of(const char *name, char *out, size_t len)
{
  struct kb_conn_id id;

  if(kb_conn_name_parse(name, &id) || !id.upstream)
    return -1;
  id.upstream = 0;
  kb_conn_name_format(&id, out, len);
  return 0;
}

static int story__conn_cmp(const void *a, const void *b)
{
  return evidence_name_cmp(((const struct story_conn *)a)->name,
                           ((const struct story_conn *)b)->name);
}

static int story__up_cmp(const void *a, const void *b)
{
  return evidence_name_cmp(((const struct story_up *)a)->name,
                           ((const struct story_up *)b)->name);
}

static int story__pconn_cmp(const void *pa, const void *pb)
{
  const struct story_pconn *a = pa, *b = pb;
  int c = strcmp(a->origin, b->origin);

  if(c)
    return c;
  return a->id < b->id ? -1 : a->id > b->id;
}

static struct story_conn *story__find_conn(struct story_builder *b,
                                           const char *name)
{
  struct story_conn key;

  memset(&key, 0, sizeof(key));
  key.name = name;
  return b->nconns
             ? bsearch(&key, b->conns, b->nconns, sizeof(key), story__conn_cmp)
             : NULL;
}

static struct story_up *story__find_up(struct story_builder *b,
                                       const char *name)
{
  struct story_up key;

  memset(&key, 0, sizeof(key));
  key.name = name;
  return b->nups ? bsearch(&key, b->ups, b->nups, sizeof(key), story__up_cmp)
                 : NULL;
}

/* Returns the connection a listener event with (origin, id) belongs to,
 * or NULL when it is not one of the connections drawn. */
static struct story_conn *story__find_pconn(struct story_builder *b,
                                            const char *origin, uint64_t id)
{
  struct story_pconn key = {origin, id, NULL};
  const struct story_pconn *p;

  if(!b->npconns)
    return NULL;
  p = bsearch(&key, b->pconns, b->npconns, sizeof(key), story__pconn_cmp);
  return p ? story__find_conn(b, p->name) : NULL;
}

static bool story__is_client_exchange(const struct sim_event *ev)
{
  return ev->kind == KB_TRACE_EXCHANGE && ev->hop == KB_HOP_CLIENT_PROXY &&
         ev->side == KB_SIDE_CLIENT && ev->conn_name[0];
}

static bool story__is_backend_exchange(const struct sim_event *ev)
{
  return ev->kind == KB_TRACE_EXCHANGE && ev->hop == KB_HOP_PROXY_BACKEND &&
         ev->side == KB_SIDE_SERVER && ev->conn_name[0];
}

static bool story__is_listener_event(const struct sim_event *ev)
{
  return ev->hop == KB_HOP_CLIENT_PROXY && ev->side == KB_SIDE_SERVER;
}

static void story__hop_from(struct story_hop *hop, const struct sim_event *ev)
{
  const struct kb_exchange *x = &ev->exchange;

  memset(hop, 0, sizeof(*hop));
  snprintf(hop->method, sizeof(hop->method), "%s", ev->method);
  snprintf(hop->path, sizeof(hop->path), "%s", ev->path);
  hop->req_auth = x->req_auth;
  hop->req_body = x->req_body_len;
  hop->status = x->status;
  hop->resp_auth = x->resp_auth;
  hop->resp_body = x->resp_body_len;
}

static void story__hop_free(struct story_hop *hop)
{
  free(hop->req_token);
  free(hop->resp_token);
  free(hop->why);
  hop->req_token = hop->resp_token = hop->why = NULL;
}

static void story__leg_free(struct story_leg *leg)
{
  size_t i;

  story__hop_free(&leg->front);
  for(i = 0; i < leg->nback; i++)
    story__hop_free(&leg->back[i]);
  free(leg->back);
  for(i = 0; i < leg->nisa; i++)
    free(leg->isa_notes[i].text);
  free(leg->isa_notes);
  for(i = 0; i < leg->nclient; i++)
    free(leg->client_notes[i].text);
  free(leg->client_notes);
  memset(leg, 0, sizeof(*leg));
}

void story_free(struct story *story)
{
  size_t i;

  if(!story)
    return;
  for(i = 0; i < story->nlegs; i++)
    story__leg_free(&story->legs[i]);
  free(story->legs);
  memset(story, 0, sizeof(*story));
}

static void story__build_free(struct story_builder *b)
{
  size_t i, j;

  for(i = 0; i < b->nconns; i++) {
    struct story_conn *c = &b->conns[i];
    for(j = 0; j < c->ngroups; j++) {
      size_t k;
      for(k = 0; k < c->groups[j].nnotes; k++)
        free(c->groups[j].notes[k].text);
      free(c->groups[j].notes);
      free(c->groups[j].backs);
    }
    free(c->groups);
    free(c->legs);
    kb_buf_free(&c->send);
    kb_buf_free(&c->recv);
  }
  free(b->conns);
  for(i = 0; i < b->nups; i++) {
    free(b->ups[i].events);
    free(b->ups[i].notes);
    free(b->ups[i].hops);
    kb_buf_free(&b->ups[i].send);
  }
  free(b->ups);
  free(b->pconns);
  free(b->last_leg);
  memset(b, 0, sizeof(*b));
}

/* ---- story: recorded bytes -------------------------------------------- */

/* One HTTP message parsed out of a recorded byte stream; pointers into it. */
struct story_msg {
  const char *method, *path; /* request */
  size_t method_len, path_len;
  int status;       /* response */
  const char *auth; /* the NTLM-bearing auth header's value */
  size_t auth_len;
  size_t body;
};

/* True when an Authorization / WWW-Authenticate value carries an NTLM or
 * Negotiate token (not the scheme alone). */
static bool story__bears_token(const char *value, size_t vlen)
{
  return (vlen > 5 && !strncasecmp(value, "NTLM ", 5)) ||
         (vlen > 10 && !strncasecmp(value, "Negotiate ", 10));
}

/* Parses the next message at *pos in data[len] (kb_wire_message): a
 * request when request is set, else a response (interim 1xx responses are
 * skipped). Only the first token-bearing Authorization / WWW-Authenticate
 * value is kept. Returns 0 and moves *pos past the message and its body,
 * or -1 when the stream ends or holds no whole message with a start line
 * (then the caller stops decoding that stream: a misaligned decode would
 * be worse than none). */
static int story__next_msg(const char *data, size_t len, size_t *pos,
                           bool request, struct story_msg *m)
{
  const char *name = request ? "Authorization" : "WWW-Authenticate";

  for(;;) {
    struct kb_wire_msg w;
    const char *fields, *value;
    size_t at = 0, vlen, flen;

    memset(m, 0, sizeof(*m));
    if(*pos >= len)
      return -1;
    kb_wire_message((const uint8_t *)data + *pos, len - *pos,
                    request ? KB_WIRE_REQUEST : KB_WIRE_RESPONSE, &w);
    if(!w.complete || (request ? !w.method : !w.status))
      return -1;
    m->method = w.method;
    m->method_len = w.method_len;
    m->path = w.target;
    m->path_len = w.target_len;
    m->status = w.status;
    m->body = w.body;
    fields = data + *pos + w.fields;
    flen = w.head - w.fields;
    while((value = kb_wire_field(fields, flen, name, &at, &vlen)) != NULL)
      if(story__bears_token(value, vlen)) {
        m->auth = value;
        m->auth_len = vlen;
        break;
      }
    *pos += w.len;
    if(request || m->status >= 200)
      return 0;
  }
}

/* Returns the one-line description of an Authorization / WWW-Authenticate
 * value's token (ntlm_header_describe: the decode, or "not decodable:
 * ..."), a new string the caller frees; NULL when it carries no token or
 * memory ran out. */
static char *story__describe_auth(const char *value, size_t len)
{
  char line[512];

  if(!ntlm_header_describe(value, len, line, sizeof(line)))
    return NULL;
  return strdup(line);
}

/* True when the parsed request is the one hop describes. */
static bool story__msg_matches(const struct story_msg *m,
                               const struct story_hop *hop)
{
  return m->method_len == strlen(hop->method) &&
         !memcmp(m->method, hop->method, m->method_len) &&
         m->path_len == strlen(hop->path) &&
         !memcmp(m->path, hop->path, m->path_len) && m->body == hop->req_body;
}

/* Decodes the tokens of connection c's legs from its recorded bytes. */
static void story__decode_conn(struct story_conn *c, struct story *story)
{
  size_t spos = 0, rpos = 0, k;
  bool sends = c->send.len > 0, recvs = c->recv.len > 0;

  for(k = 0; k < c->nlegs; k++) {
    struct story_hop *hop = &story->legs[c->legs[k]].front;
    struct story_msg m;

    if(sends) {
      if(story__next_msg(c->send.data, c->send.len, &spos, true, &m) ||
         !story__msg_matches(&m, hop))
        sends = false;
      else if(m.auth)
        hop->req_token = story__describe_auth(m.auth, m.auth_len);
    }
    if(recvs && hop->status) {
      if(story__next_msg(c->recv.data, c->recv.len, &rpos, false, &m) ||
         m.status != hop->status)
        recvs = false;
      else if(m.auth)
        hop->resp_token = story__describe_auth(m.auth, m.auth_len);
    }
  }
}

/* Decodes the tokens ISA forwarded on upstream connection u. */
static void story__decode_up(struct story_up *u)
{
  size_t pos = 0, k;

  for(k = 0; k < u->nevents && u->send.len; k++) {
    struct story_msg m;

    if(story__next_msg(u->send.data, u->send.len, &pos, true, &m))
      return;
    if(!u->hops[k])
      continue; /* drawn nowhere, but its bytes are passed over */
    if(!story__msg_matches(&m, u->hops[k]))
      return;
    if(m.auth)
      u->hops[k]->req_token = story__describe_auth(m.auth, m.auth_len);
  }
}

/* ---- story: assembly -------------------------------------------------- */

/* Pass 1: finds the connections drawn (those of clients 1..max_clients),
 * their upstream connections and every listener connection's name. */
static int story__collect(const struct sim_recorder *rec, unsigned max_clients,
                          struct story_builder *b, struct story *story)
{
  size_t i, n;
  unsigned max_id = 0;

  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    void *grown;
    unsigned id;

    if(story__is_client_exchange(ev)) {
      id = story__client_of(ev->conn_name);
      story->legs_total++;
      if(id > max_id)
        max_id = id;
      if(!id || (max_clients && id > max_clients))
        continue;
      if(b->nconns && !strcmp(b->conns[b->nconns - 1].name, ev->conn_name))
        continue; /* the common case: the same connection again */
      grown = kb_array_grow(b->conns, sizeof(*b->conns), b->nconns, 1);
      if(!grown)
        return -1;
      b->conns = grown;
      memset(&b->conns[b->nconns], 0, sizeof(*b->conns));
      b->conns[b->nconns++].name = ev->conn_name;
    }
    else if(story__is_backend_exchange(ev)) {
      char front[64];
      story->back_total++;
      if(story__front_of(ev->conn_name, front, sizeof(front)))
        continue;
      id = story__client_of(front);
      if(!id || (max_clients && id > max_clients))
        continue;
      if(b->nups && !strcmp(b->ups[b->nups - 1].name, ev->conn_name))
        continue;
      grown = kb_array_grow(b->ups, sizeof(*b->ups), b->nups, 1);
      if(!grown)
        return -1;
      b->ups = grown;
      memset(&b->ups[b->nups], 0, sizeof(*b->ups));
      b->ups[b->nups++].name = ev->conn_name;
    }
    else if(story__is_listener_event(ev) && ev->conn_name[0] &&
            (ev->kind == KB_TRACE_OPEN || ev->kind == KB_TRACE_EXCHANGE)) {
      grown = kb_array_grow(b->pconns, sizeof(*b->pconns), b->npconns, 1);
      if(!grown)
        return -1;
      b->pconns = grown;
      b->pconns[b->npconns].origin = ev->origin;
      b->pconns[b->npconns].id = ev->conn;
      b->pconns[b->npconns++].name = ev->conn_name;
    }
  }
  story->clients_total = max_id;

  /* Sort and drop repeats; the streams start empty, capped. */
  if(b->nconns)
    qsort(b->conns, b->nconns, sizeof(*b->conns), story__conn_cmp);
  for(i = n = 0; i < b->nconns; i++)
    if(!n || story__conn_cmp(&b->conns[n - 1], &b->conns[i]))
      b->conns[n++] = b->conns[i];
  b->nconns = n;
  for(i = 0; i < b->nconns; i++) {
    kb_buf_init(&b->conns[i].send, STORY_STREAM_CAP);
    kb_buf_init(&b->conns[i].recv, STORY_STREAM_CAP);
  }
  if(b->nups)
    qsort(b->ups, b->nups, sizeof(*b->ups), story__up_cmp);
  for(i = n = 0; i < b->nups; i++)
    if(!n || story__up_cmp(&b->ups[n - 1], &b->ups[i]))
      b->ups[n++] = b->ups[i];
  b->nups = n;
  for(i = 0; i < b->nups; i++)
    kb_buf_init(&b->ups[i].send, STORY_STREAM_CAP);
  if(b->npconns)
    qsort(b->pconns, b->npconns, sizeof(*b->pconns), story__pconn_cmp);
  return 0;
}

/* Returns the connection's open listener-side group, starting one when the
 * last is closed; NULL when out of memory. */
static struct story_group *story__open_group(struct story_conn *c)
{
  struct story_group *g;

  if(c->ngroups && !c->groups[c->ngroups - 1].closed)
    return &c->groups[c->ngroups - 1];
  g = kb_array_grow(c->groups, sizeof(*g), c->ngroups, 1);
  if(!g)
    return NULL;
  c->groups = g;
  g = &c->groups[c->ngroups++];
  memset(g, 0, sizeof(*g));
  return g;
}

/* Notes what Communicator wrote after its latest leg (retries, idle
 * closes, the notification) on that leg. */
static int story__client_note(struct story_builder *b, struct story *story,
                              const struct sim_event *ev, unsigned max_clients)
{
  unsigned id = story__client_of(ev->origin);
  struct story_leg *leg;

  if(!id || (max_clients && id > max_clients) || id >= b->nlast ||
     !b->last_leg[id] || !ev->text)
    return 0;
  leg = &story->legs[b->last_leg[id] - 1];
  return story__push_note(&leg->client_notes, &leg->nclient, ev->note,
                          ev->text);
}

/* Starts a leg for a request Communicator sent. */
static int story__client_leg(struct story_builder *b, struct story *story,
                             size_t index, const struct sim_event *ev)
{
  struct story_conn *c = story__find_conn(b, ev->conn_name);
  unsigned id = story__client_of(ev->conn_name);
  struct story_leg *leg;
  void *grown;

  if(!c)
    return 0;
  grown = kb_array_grow(story->legs, sizeof(*story->legs), story->nlegs, 1);
  if(!grown)
    return -1;
  story->legs = grown;
  if(id >= b->nlast) {
    size_t n = (size_t)id + 1;
    size_t *bigger =
        kb_array_grow(b->last_leg, sizeof(*bigger), b->nlast, n - b->nlast);
    if(!bigger)
      return -1;
    memset(bigger + b->nlast, 0, (n - b->nlast) * sizeof(*bigger));
    b->last_leg = bigger;
    b->nlast = n;
  }
  if(story__push_index(&c->legs, &c->nlegs, story->nlegs))
    return -1;
  leg = &story->legs[story->nlegs];
  memset(leg, 0, sizeof(*leg));
  leg->client = id;
  snprintf(leg->conn, sizeof(leg->conn), "%s", ev->conn_name);
  leg->new_conn = c->nlegs == 1;
  leg->post = -1;
  story__hop_from(&leg->front, ev);
  leg->order = index;
  b->last_leg[id] = ++story->nlegs;
  return 0;
}

/* Pass 2, in arrival order: legs, the listener's groups, the bytes. */
static int story__walk(const struct sim_recorder *rec, unsigned max_clients,
                       struct story_builder *b, struct story *story)
{
  size_t i;

  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    struct story_conn *c = NULL;
    struct story_group *g;
    int bad = 0;

    if(story__is_client_exchange(ev))
      bad = story__client_leg(b, story, i, ev);
    else if(ev->kind == KB_TRACE_NOTE && ev->side == KB_SIDE_CLIENT)
      bad = story__client_note(b, story, ev, max_clients);
    else if(ev->kind == KB_TRACE_NOTE && story__is_listener_event(ev)) {
      c = story__find_pconn(b, ev->origin, ev->conn);
      if(c && ev->text) {
        g = story__open_group(c);
        bad = !g || story__push_note(&g->notes, &g->nnotes, ev->note, ev->text);
        if(g)
          snprintf(g->member, sizeof(g->member), "%s", ev->origin);
      }
    }
    else if(story__is_backend_exchange(ev)) {
      char front[64];
      struct story_up *u = story__find_up(b, ev->conn_name);
      if(u && !story__front_of(ev->conn_name, front, sizeof(front)) &&
         (c = story__find_conn(b, front)) != NULL) {
        g = story__open_group(c);
        bad = !g || story__push_index(&g->backs, &g->nbacks, i) ||
              story__push_index(&u->events, &u->nevents, i) ||
              story__push_index(&u->notes, &u->nnotes, u->note_at);
        u->note_at = 0;
      }
    }
    else if(ev->kind == KB_TRACE_NOTE && ev->hop == KB_HOP_PROXY_BACKEND &&
            ev->side == KB_SIDE_SERVER && ev->text && ev->note) {
      /* Exchange's note on the request its EXCHANGE event closes next. */
      struct story_up *u = story__find_up(b, ev->conn_name);
      if(u)
        u->note_at = i + 1;
    }
    else if(ev->kind == KB_TRACE_EXCHANGE && story__is_listener_event(ev) &&
            ev->conn_name[0]) {
      c = story__find_conn(b, ev->conn_name);
      if(c) {
        g = story__open_group(c);
        bad = !g;
        if(g) {
          g->closed = true;
          snprintf(g->member, sizeof(g->member), "%s", ev->origin);
        }
      }
    }
    else if((ev->kind == KB_TRACE_SEND || ev->kind == KB_TRACE_RECV) &&
            ev->side == KB_SIDE_CLIENT && ev->conn_name[0] && ev->len) {
      /* A stream past its cap just stops decoding; it is not an error. */
      if(ev->hop == KB_HOP_CLIENT_PROXY &&
         (c = story__find_conn(b, ev->conn_name)) != NULL)
        kb_buf_add(ev->kind == KB_TRACE_SEND ? &c->send : &c->recv, ev->data,
                   ev->len);
      else if(ev->hop == KB_HOP_PROXY_BACKEND && ev->kind == KB_TRACE_SEND) {
        struct story_up *u = story__find_up(b, ev->conn_name);
        if(u)
          kb_buf_add(&u->send, ev->data, ev->len);
      }
    }
    if(bad)
      return -1;
  }
  return 0;
}

/* Hands group g's notes and forwarded requests to leg. */
static int story__attach(const struct sim_recorder *rec, struct story_group *g,
                         struct story_leg *leg)
{
  struct story_hop *back;
  size_t j;

  if(g->member[0])
    snprintf(leg->member, sizeof(leg->member), "%s", g->member);
  g->back_at = leg->nback;
  for(j = 0; j < g->nnotes; j++)
    if(story__push_note(&leg->isa_notes, &leg->nisa, g->notes[j].code,
                        g->notes[j].text))
      return -1;
  if(!g->nbacks)
    return 0;
  back = kb_array_grow(leg->back, sizeof(*back), leg->nback, g->nbacks);
  if(!back)
    return -1;
  leg->back = back;
  for(j = 0; j < g->nbacks; j++)
    story__hop_from(&leg->back[leg->nback + j], &rec->events[g->backs[j]]);
  leg->nback += g->nbacks;
  return 0;
}

/* Matches the k-th listener group of each connection with its k-th leg;
 * groups past the last leg (which should not happen) go to the last one,
 * so no forwarded request is lost from the picture. */
static int story__match(const struct sim_recorder *rec, struct story_builder *b,
                        struct story *story)
{
  size_t i, k, j;

  for(i = 0; i < b->nconns; i++) {
    struct story_conn *c = &b->conns[i];
    for(k = 0; k < c->ngroups && c->nlegs; k++) {
      size_t at = c->legs[k < c->nlegs ? k : c->nlegs - 1];
      if(story__attach(rec, &c->groups[k], &story->legs[at]))
        return -1;
    }
  }
  /* Each upstream request's hop, in the order Exchange saw them. */
  for(i = 0; i < b->nups; i++) {
    b->ups[i].hops = calloc(b->ups[i].nevents + 1, sizeof(*b->ups[i].hops));
    if(!b->ups[i].hops)
      return -1;
  }
  for(i = 0; i < b->nconns; i++) {
    struct story_conn *c = &b->conns[i];
    for(k = 0; k < c->ngroups && c->nlegs; k++) {
      struct story_leg *leg =
          &story->legs[c->legs[k < c->nlegs ? k : c->nlegs - 1]];
      struct story_group *g = &c->groups[k];
      for(j = 0; j < g->nbacks; j++) {
        const struct sim_event *ev = &rec->events[g->backs[j]];
        struct story_up *u = story__find_up(b, ev->conn_name);
        size_t at, n;
        if(!u)
          continue;
        for(at = 0; at < u->nevents && u->events[at] != g->backs[j]; at++)
          ;
        n = g->back_at + j;
        if(at >= u->nevents || n >= leg->nback)
          continue;
        u->hops[at] = &leg->back[n];
        if(at < u->nnotes && u->notes[at]) {
          const struct sim_event *note = &rec->events[u->notes[at] - 1];
          leg->back[n].why_code = note->note;
          leg->back[n].why = strdup(note->text);
          if(!leg->back[n].why)
            return -1;
        }
      }
    }
  }
  return 0;
}

static int story__leg_cmp(const void *pa, const void *pb)
{
  const struct story_leg *a = pa, *b = pb;

  if(a->client != b->client)
    return a->client < b->client ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

/* True when leg b is libcurl sending leg a's request again after a's
 * connection closed under it. */
static bool story__is_retry(const struct story_leg *a,
                            const struct story_leg *b)
{
  return a->client == b->client && !a->front.status &&
         !strcmp(a->front.method, b->front.method) &&
         !strcmp(a->front.path, b->front.path) &&
         a->front.req_auth == b->front.req_auth &&
         a->front.req_body == b->front.req_body;
}

/* Gives each leg of one client (legs[0..n), in time order) the POST it
 * belongs to: every answered leg is one of the POST's legs, an unanswered
 * one too unless libcurl sent it again. */
static void story__assign_posts(struct story_leg *legs, size_t n,
                                const struct sim_session *s)
{
  size_t i, j = 0;
  unsigned used = 0;

  for(i = 0; i < n; i++) {
    while(j < s->nresults && !s->results[j].legs)
      j++;
    if(j >= s->nresults)
      return;
    legs[i].post = (int)j;
    if(legs[i].front.status || i + 1 == n ||
       !story__is_retry(&legs[i], &legs[i + 1]))
      used++;
    if(used == s->results[j].legs) {
      legs[i].post_end = true;
      j++;
      used = 0;
    }
  }
}

bool story_tls_hops(const struct scenario *sc, char *client_hop,
                    size_t client_len, char *server_hop, size_t server_len)
{
  switch(sc->tls) {
  case SCENARIO_TLS_OFFLOAD:
    snprintf(client_hop, client_len, "HTTPS (ISA's own certificate)");
    snprintf(server_hop, server_len, "HTTP: TLS offloaded, it ends at ISA");
    return true;
  case SCENARIO_TLS_BRIDGE:
    if(sc->bridge_same_certificate)
      snprintf(client_hop, client_len,
               "HTTPS (Exchange's certificate, presented by ISA)");
    else
      snprintf(client_hop, client_len, "HTTPS (ISA's own certificate)");
    snprintf(server_hop, server_len,
             "HTTPS (Exchange's certificate): TLS bridged");
    return true;
  case SCENARIO_TLS_NONE:
    break;
  }
  snprintf(client_hop, client_len, "HTTP");
  snprintf(server_hop, server_len, "HTTP");
  return false;
}

const struct sim_session *story_session(const struct sim_sessions *ss,
                                        unsigned id)
{
  size_t i;

  for(i = 0; ss && i < ss->count; i++)
    if(ss->sessions[i].id == id)
      return &ss->sessions[i];
  return NULL;
}

int story_build(struct sim_recorder *rec, const struct sim_sessions *sessions,
                unsigned max_clients, size_t max_legs, struct story *out)
{
  struct story_builder b;
  size_t i, start;
  int result = -1;

  memset(out, 0, sizeof(*out));
  memset(&b, 0, sizeof(b));
  out->kind = rec->client;
  pthread_mutex_lock(&rec->lock);
  if(story__collect(rec, max_clients, &b, out) ||
     story__walk(rec, max_clients, &b, out) || story__match(rec, &b, out))
    goto done;
  for(i = 0; i < b.nconns; i++)
    story__decode_conn(&b.conns[i], out);
  for(i = 0; i < b.nups; i++)
    story__decode_up(&b.ups[i]);
  if(sessions && sessions->count > out->clients_total)
    out->clients_total = (unsigned)sessions->count;
  result = 0;

done:
  pthread_mutex_unlock(&rec->lock);
  story__build_free(&b);
  if(result) {
    story_free(out);
    return -1;
  }

  if(out->nlegs)
    qsort(out->legs, out->nlegs, sizeof(*out->legs), story__leg_cmp);
  for(start = 0; start < out->nlegs;) {
    size_t end = start;
    const struct sim_session *s;

    while(end < out->nlegs && out->legs[end].client == out->legs[start].client)
      end++;
    s = story_session(sessions, out->legs[start].client);
    if(s)
      story__assign_posts(out->legs + start, end - start, s);
    out->clients_shown++;
    start = end;
  }
  if(max_legs && out->nlegs > max_legs) {
    for(i = max_legs; i < out->nlegs; i++)
      story__leg_free(&out->legs[i]);
    out->nlegs = max_legs;
    out->clients_shown = 0;
    for(i = 0; i < out->nlegs; i++)
      if(!i || out->legs[i].client != out->legs[i - 1].client)
        out->clients_shown++;
  }
  /* The members that answered, in name order. */
  for(i = 0; i < out->nlegs; i++) {
    const char *m = out->legs[i].member;
    size_t k, at;

    if(!m[0])
      continue;
    for(k = 0; k < out->nmembers && strcmp(out->members[k], m); k++)
      ;
    if(k < out->nmembers || out->nmembers == SIM_MAX_MEMBERS)
      continue;
    for(at = out->nmembers;
        at > 0 && evidence_name_cmp(out->members[at - 1], m) > 0; at--)
      memcpy(out->members[at], out->members[at - 1], sizeof(out->members[0]));
    snprintf(out->members[at], sizeof(out->members[0]), "%s", m);
    out->nmembers++;
  }
  return 0;
}
