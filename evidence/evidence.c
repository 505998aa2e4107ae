/*
 * evidence.c - transcript, pcap and JSON report from the trace recorder.
 *
 * Only the connecting side of each hop records bytes (libcurl's debug
 * callback in the client and in the proxy's upstream handle), so every
 * connection has exactly one byte stream; both hops are named by
 * kb_names, so connections sort by who was talking.
 */
#include "evidence/evidence.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "client/verdict.h"
#include "common/kb_buf.h"
#include "common/kb_users.h"
#include "common/kb_wire.h"
#include "evidence/version.h"
#include "ntlm/ntlm.h"

/* What ended a connection, as the recorded notes say: decisions as data.
 * server_first: the accepting side (ISA on the client hop) closed first;
 * reset: that side sent RST, not FIN. code names the reason in the JSON
 * report. */
struct evidence_close_row {
  enum kb_note note;
  bool server_first;
  bool reset;
  const char *code;
  const char *reason;
};

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

/* The codes of the closes no note explains. */
#define EVIDENCE_CLOSE_CLIENT "client-closed"
#define EVIDENCE_CLOSE_ISA "isa-closed"
#define EVIDENCE_CLOSE_WITH_CLIENT "with-client"

/* One HTTP message (or, unparsable, the rest of a direction's bytes) as
 * its sender wrote it: the header block, then the body. */
struct evidence_msg {
  enum kb_trace_kind dir; /* SEND: from the connecting side; RECV: to it */
  uint8_t *data;          /* owned */
  size_t len;
  size_t head; /* header block length, blank line included */
  int64_t at_us;
  size_t rank; /* recorder index of the event that carried its first byte */
};

/* One connection's recorded events, as indices into the recorder, and what
 * evidence makes of them. */
struct evidence_conn {
  enum kb_hop hop;
  char *name; /* owned */
  size_t *events;
  size_t count;
  size_t alloc;
  struct evidence_msg *msgs;
  size_t nmsgs;
  bool opened, closed;
  int64_t open_us, close_us;
  size_t open_rank, close_rank;
  const struct evidence_close_row *why; /* NULL: the connecting side's */
  const char *why_text;                 /* the note's own words, or NULL */
  bool parent_closed; /* upstream: closed with its client connection */
};

struct evidence_conns {
  struct evidence_conn *items;
  size_t count;
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

static void evidence__conns_free(struct evidence_conns *c)
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

/* Groups the recorder's byte-stream events by connection, sorted by name,
 * and builds each one's messages. Call with rec->lock held; names point
 * into the recorder. Returns 0 or -1 when out of memory. */
static int evidence__group(const struct sim_recorder *rec,
                           struct evidence_conns *out)
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

/* Formats us (microseconds since the epoch) as ISO 8601 UTC with
 * milliseconds: "2009-03-17T16:26:24.000Z". */
static void evidence__iso(int64_t us, char out[64])
{
  time_t sec = (time_t)(us / 1000000);
  struct tm tm;

  gmtime_r(&sec, &tm);
  snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(us / 1000 % 1000));
}

/* ---- transcript ------------------------------------------------------- */

static const char *evidence__direction(enum kb_hop hop, enum kb_trace_kind kind)
{
  if(hop == KB_HOP_CLIENT_PROXY)
    return kind == KB_TRACE_SEND ? ">>> Communicator -> ISA"
                                 : "<<< ISA -> Communicator";
  return kind == KB_TRACE_SEND ? ">>> ISA -> Exchange" : "<<< Exchange -> ISA";
}

/* Writes the decode of an Authorization / WWW-Authenticate line, if it is
 * one carrying an NTLM token, as an annotation line. */
static void evidence__decode_line(FILE *out, const char *line, size_t len)
{
  static const char *names[] = {"Authorization", "WWW-Authenticate"};
  char desc[512];
  const char *value = NULL;
  size_t i, vlen = 0;

  for(i = 0; i < 2 && !value; i++)
    value = kb_wire_field_first(line, len, names[i], &vlen);
  if(!value || vlen >= NTLM_MAX_MESSAGE * 2)
    return;
  i--;
  if(vlen >= 5 && !strncasecmp(value, "Basic", 5)) {
    if(i == 0)
      fprintf(out,
              ";   %s: Basic credentials, replaced with x by kbsim: "
              "evidence never carries passwords\n",
              names[i]);
    return;
  }
  if(ntlm_header_describe(value, vlen, desc, sizeof(desc)))
    fprintf(out, ";   %s: %s\n", names[i], desc);
}

/* Writes one message: its annotation line, its exact bytes, then the NTLM
 * decodes of its header block. */
static void evidence__write_msg(FILE *out, enum kb_hop hop,
                                const struct evidence_msg *m)
{
  char when[64];
  size_t i = 0;

  evidence__iso(m->at_us, when);
  fprintf(out, "; %s %s: %zu bytes\n", when, evidence__direction(hop, m->dir),
          m->len);
  fwrite(m->data, 1, m->len, out);
  if(m->len && m->data[m->len - 1] != '\n')
    fputs("\n; \\ no line end: the line feed above is not the message's\n",
          out);
  while(i < m->head) {
    size_t start = i, end;

    while(i < m->head && m->data[i] != '\n')
      i++;
    end = i;
    if(end > start && m->data[end - 1] == '\r')
      end--;
    evidence__decode_line(out, (const char *)m->data + start, end - start);
    i++;
  }
}

/* Writes why c closed, on its annotation line. */
static void evidence__write_close(FILE *out, const struct evidence_conn *c)
{
  char when[64];

  evidence__iso(c->close_us, when);
  if(c->why)
    fprintf(out, "; %s connection %s (%s)\n", when, c->why->reason,
            c->why_text ? c->why_text : "");
  else if(c->hop == KB_HOP_PROXY_BACKEND)
    fprintf(out, "; %s connection closed by ISA%s\n", when,
            c->parent_closed ? " when its client's connection closed" : "");
  else
    fprintf(out, "; %s connection closed by the client\n", when);
}

int evidence_write_transcript(struct sim_recorder *rec, FILE *out)
{
  struct evidence_conns conns;
  size_t i, j;

  pthread_mutex_lock(&rec->lock);
  if(evidence__group(rec, &conns)) {
    pthread_mutex_unlock(&rec->lock);
    errno = ENOMEM;
    return -1;
  }
  fprintf(out,
          "; kbsim transcript: %zu connections, in client order\n"
          "; Lines that begin with ';' are kbsim's. Each message follows its\n"
          "; '; <time> <direction>: <n> bytes' line as exactly those n bytes\n"
          "; (CRLF kept); times are ISO 8601 on the session's clock.\n",
          conns.count);
  for(i = 0; i < conns.count; i++) {
    const struct evidence_conn *c = &conns.items[i];
    char when[64];

    fprintf(out, ";\n; === %s: %s ===\n", c->name,
            c->hop == KB_HOP_CLIENT_PROXY ? "Communicator <-> ISA"
                                          : "ISA <-> Exchange");
    if(c->opened) {
      evidence__iso(c->open_us, when);
      fprintf(out, "; %s connection opened\n", when);
    }
    for(j = 0; j < c->nmsgs; j++)
      evidence__write_msg(out, c->hop, &c->msgs[j]);
    if(c->closed)
      evidence__write_close(out, c);
  }
  pthread_mutex_unlock(&rec->lock);
  evidence__conns_free(&conns);
  if(ferror(out)) {
    errno = errno ? errno : EIO;
    return -1;
  }
  return 0;
}

/* ---- pcap ------------------------------------------------------------- */

#define EV_TCP_FIN 0x01
#define EV_TCP_SYN 0x02
#define EV_TCP_RST 0x04
#define EV_TCP_PSH 0x08
#define EV_TCP_ACK 0x10
#define EV_MSS 1460

struct evidence_endpoint {
  uint8_t ip[4];
  uint16_t port;
  uint32_t seq;
};

/* One thing that happened on a connection, in the order of the capture. */
enum evidence_step_kind { EV_STEP_OPEN, EV_STEP_DATA, EV_STEP_CLOSE };

struct evidence_step {
  enum evidence_step_kind kind;
  size_t conn;                    /* index in conns */
  const struct evidence_msg *msg; /* DATA */
  unsigned timeline;              /* the client whose clock stamped it */
  int64_t at_us;
  size_t rank;  /* the recorder index it is ordered by (see evidence__steps) */
  unsigned sub; /* 0: before the step of that rank, 1: it, 2: after */
  size_t own;   /* its own recorder index */
};

/* A segment built, waiting for its place in the file. */
struct evidence_packet {
  int64_t us;
  size_t order;
  size_t len;
  uint8_t bytes[];
};

struct evidence_pcap {
  struct evidence_packet **pkts;
  size_t count, alloc;
  int64_t us;   /* the next segment's time */
  int64_t step; /* between segments of one instant */
  bool failed;
};

static uint16_t evidence__csum(uint32_t sum, const uint8_t *p, size_t len)
{
  size_t i;

  for(i = 0; i + 1 < len; i += 2)
    sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if(len & 1)
    sum += (uint32_t)(p[len - 1] << 8);
  while(sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static void evidence__put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void evidence__put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Builds one IPv4/TCP segment from src to dst carrying len bytes at the
 * capture's current time, and advances src's sequence number. */
static void evidence__segment(struct evidence_pcap *pc,
                              struct evidence_endpoint *src,
                              const struct evidence_endpoint *dst,
                              uint8_t flags, const uint8_t *data, size_t len)
{
  struct evidence_packet *p;
  uint8_t *pkt;
  uint8_t pseudo[12];
  uint32_t sum = 0;
  size_t i;

  if(pc->count == pc->alloc) {
    size_t alloc = pc->alloc ? pc->alloc * 2 : 256;
    struct evidence_packet **grown =
        realloc(pc->pkts, alloc * sizeof(*pc->pkts));
    if(!grown) {
      pc->failed = true;
      return;
    }
    pc->pkts = grown;
    pc->alloc = alloc;
  }
  p = malloc(sizeof(*p) + 40 + len);
  if(!p) {
    pc->failed = true;
    return;
  }
  p->us = pc->us;
  p->order = pc->count;
  p->len = 40 + len;
  pkt = p->bytes;
  memset(pkt, 0, 40);
  pkt[0] = 0x45;
  evidence__put16(pkt + 2, (uint16_t)(40 + len));
  pkt[6] = 0x40; /* don't fragment */
  pkt[8] = 64;   /* TTL */
  pkt[9] = 6;    /* TCP */
  memcpy(pkt + 12, src->ip, 4);
  memcpy(pkt + 16, dst->ip, 4);
  evidence__put16(pkt + 10, evidence__csum(0, pkt, 20));

  evidence__put16(pkt + 20, src->port);
  evidence__put16(pkt + 22, dst->port);
  evidence__put32(pkt + 24, src->seq);
  evidence__put32(pkt + 28, (flags & EV_TCP_ACK) ? dst->seq : 0);
  pkt[32] = 5 << 4;
  pkt[33] = flags;
  evidence__put16(pkt + 34, 65535);
  if(len)
    memcpy(pkt + 40, data, len);
  memcpy(pseudo, src->ip, 4);
  memcpy(pseudo + 4, dst->ip, 4);
  pseudo[8] = 0;
  pseudo[9] = 6;
  evidence__put16(pseudo + 10, (uint16_t)(20 + len));
  for(i = 0; i < 12; i += 2)
    sum += (uint32_t)(pseudo[i] << 8 | pseudo[i + 1]);
  evidence__put16(pkt + 36, evidence__csum(sum, pkt + 20, 20 + len));
  pc->pkts[pc->count++] = p;
  pc->us += pc->step;
  src->seq += (uint32_t)len;
  if(flags & (EV_TCP_SYN | EV_TCP_FIN))
    src->seq++;
}

/* One write: segments of at most one MSS. */
static void evidence__data(struct evidence_pcap *pc,
                           struct evidence_endpoint *src,
                           const struct evidence_endpoint *dst,
                           const uint8_t *data, size_t len)
{
  while(len) {
    size_t n = len < EV_MSS ? len : EV_MSS;
    evidence__segment(pc, src, dst, EV_TCP_PSH | EV_TCP_ACK, data, n);
    data += n;
    len -= n;
  }
}

static size_t evidence__segments_of(size_t len)
{
  return (len + EV_MSS - 1) / EV_MSS;
}

/* How many segments step writes. */
static size_t evidence__step_segments(const struct evidence_step *st)
{
  if(st->kind != EV_STEP_DATA)
    return 3;
  return evidence__segments_of(st->msg->head) +
         evidence__segments_of(st->msg->len - st->msg->head);
}

/* Picks stable synthetic endpoints for connection number index of c. */
static void evidence__endpoints(const struct evidence_conn *c, unsigned index,
                                struct evidence_endpoint *cli,
                                struct evidence_endpoint *srv)
{
  struct kb_conn_id name;
  unsigned id, conn;

  memset(cli, 0, sizeof(*cli));
  memset(srv, 0, sizeof(*srv));
  /* A name that is no client's ("balancer conn 3", "ISA01 conn 7
   * upstream"): an address and port of its own from its index. */
  if(kb_conn_name_parse(c->name, &name)) {
    name.client = 0xff00u | (index >> 14);
    name.conn = index;
  }
  id = name.client;
  conn = name.conn;
  if(c->hop == KB_HOP_CLIENT_PROXY) {
    cli->ip[0] = 127;
    cli->ip[1] = 1;
    cli->ip[2] = (uint8_t)(id >> 8);
    cli->ip[3] = (uint8_t)id;
    cli->port = (uint16_t)(49152 + conn % 16384);
    srv->ip[0] = 127;
    srv->ip[3] = 2;
  }
  else {
    cli->ip[0] = 127;
    cli->ip[3] = 2;
    cli->port = (uint16_t)(49152 + index % 16384);
    srv->ip[0] = 127;
    srv->ip[3] = 3;
  }
  srv->port = 80;
  /* Initial sequence numbers: fixed per connection, distinct per side. */
  cli->seq = 0x10000000u + index * 0x100000u;
  srv->seq = 0x80000000u + index * 0x100000u;
}

/* Orders steps by time on their timeline, then by timeline, then in
 * causal order within the session (see evidence__steps): the same for a
 * seed whichever thread ran first. */
static int evidence__step_cmp(const void *pa, const void *pb)
{
  const struct evidence_step *a = pa, *b = pb;

  if(a->at_us != b->at_us)
    return a->at_us < b->at_us ? -1 : 1;
  if(a->timeline != b->timeline)
    return a->timeline < b->timeline ? -1 : 1;
  if(a->rank != b->rank)
    return a->rank < b->rank ? -1 : 1;
  if(a->sub != b->sub)
    return a->sub < b->sub ? -1 : 1;
  if(a->own != b->own)
    return a->own < b->own ? -1 : 1;
  if(a->conn != b->conn)
    return a->conn < b->conn ? -1 : 1;
  return a->kind < b->kind ? -1 : a->kind > b->kind;
}

/* Orders a client's answers by timeline, then as the client read them. */
static int evidence__answer_cmp(const void *pa, const void *pb)
{
  const struct evidence_step *a = *(const struct evidence_step *const *)pa;
  const struct evidence_step *b = *(const struct evidence_step *const *)pb;

  if(a->timeline != b->timeline)
    return a->timeline < b->timeline ? -1 : 1;
  return a->own < b->own ? -1 : a->own > b->own;
}

/* Places each step of ISA's upstream hop just before the first answer its
 * client read after it: everything ISA does upstream for a request happens
 * between the client's request and that answer, and ISA records its bytes
 * before it answers, but the client records its request only once
 * libcurl's send returned, which may be after ISA's reaction. Returns 0,
 * or -1 out of memory. */
static int evidence__anchor_upstream(const struct evidence_conns *conns,
                                     struct evidence_step *steps, size_t n)
{
  const struct evidence_step **answers = calloc(n + 1, sizeof(*answers));
  size_t i, na = 0;

  if(!answers)
    return -1;
  for(i = 0; i < n; i++)
    if(steps[i].kind == EV_STEP_DATA && steps[i].msg->dir == KB_TRACE_RECV &&
       conns->items[steps[i].conn].hop == KB_HOP_CLIENT_PROXY)
      answers[na++] = &steps[i];
  qsort(answers, na, sizeof(*answers), evidence__answer_cmp);
  for(i = 0; i < n; i++) {
    struct evidence_step *st = &steps[i];
    size_t lo = 0, hi = na;

    /* Live connections (timeline 0) carry the real clock's own order. */
    if(conns->items[st->conn].hop != KB_HOP_PROXY_BACKEND || st->sub == 2 ||
       !st->timeline)
      continue;
    /* The first answer of st's timeline read after st was recorded. */
    while(lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      const struct evidence_step *a = answers[mid];
      if(a->timeline < st->timeline ||
         (a->timeline == st->timeline && a->own < st->own))
        lo = mid + 1;
      else
        hi = mid;
    }
    if(lo < na && answers[lo]->timeline == st->timeline) {
      st->at_us = answers[lo]->at_us;
      st->rank = answers[lo]->own;
      st->sub = 0;
    }
  }
  free(answers);
  return 0;
}

static int evidence__packet_cmp(const void *pa, const void *pb)
{
  const struct evidence_packet *a = *(const struct evidence_packet *const *)pa;
  const struct evidence_packet *b = *(const struct evidence_packet *const *)pb;

  if(a->us != b->us)
    return a->us < b->us ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

/* Lists every connection's open, messages and close as steps. Returns the
 * array (count in *n), or NULL out of memory. */
static struct evidence_step *evidence__steps(const struct evidence_conns *conns,
                                             size_t *n)
{
  size_t i, j, total = 0;
  struct evidence_step *steps;

  for(i = 0; i < conns->count; i++)
    total += conns->items[i].nmsgs + 2;
  steps = calloc(total + 1, sizeof(*steps));
  if(!steps)
    return NULL;
  *n = 0;
  for(i = 0; i < conns->count; i++) {
    const struct evidence_conn *c = &conns->items[i];
    struct kb_conn_id id;
    unsigned timeline = kb_conn_name_parse(c->name, &id) ? 0 : id.client;
    struct evidence_step *st;
    size_t first = *n;

    if(c->opened || c->nmsgs) {
      st = &steps[(*n)++];
      st->kind = EV_STEP_OPEN;
      st->at_us = c->opened ? c->open_us : c->msgs[0].at_us;
      st->own = c->opened ? c->open_rank : c->msgs[0].rank;
    }
    for(j = 0; j < c->nmsgs; j++) {
      st = &steps[(*n)++];
      st->kind = EV_STEP_DATA;
      st->msg = &c->msgs[j];
      st->at_us = c->msgs[j].at_us;
      st->own = c->msgs[j].rank;
    }
    if(c->closed && (c->opened || c->nmsgs)) {
      st = &steps[(*n)++];
      st->kind = EV_STEP_CLOSE;
      st->at_us = c->close_us;
      st->own = c->close_rank;
    }
    for(st = &steps[first]; st < &steps[*n]; st++) {
      st->conn = i;
      st->timeline = timeline;
      st->rank = st->own;
      st->sub = 1;
      /* Closed with its client's connection: right after that close. */
      if(st->kind == EV_STEP_CLOSE && c->parent_closed)
        st->sub = 2;
    }
  }
  if(evidence__anchor_upstream(conns, steps, *n)) {
    free(steps);
    return NULL;
  }
  qsort(steps, *n, sizeof(*steps), evidence__step_cmp);
  return steps;
}

/* Writes the segments of each step, spreading those of one instant of a
 * timeline across the time to its next instant (at most 1 ms, at most
 * 100 us apart), so the capture keeps causal order and think times. */
static void evidence__replay(struct evidence_pcap *pc,
                             const struct evidence_conns *conns,
                             const struct evidence_step *steps, size_t n)
{
  struct evidence_endpoint *cli = calloc(conns->count + 1, sizeof(*cli));
  struct evidence_endpoint *srv = calloc(conns->count + 1, sizeof(*srv));
  size_t i, k;

  if(!cli || !srv) {
    pc->failed = true;
    free(cli);
    free(srv);
    return;
  }
  for(i = 0; i < conns->count; i++)
    evidence__endpoints(&conns->items[i], (unsigned)i, &cli[i], &srv[i]);
  for(i = 0; i < n;) {
    size_t end = i, segs = 0;
    int64_t span = 1000;

    /* One instant of one timeline: steps i..end-1. */
    while(end < n && steps[end].at_us == steps[i].at_us &&
          steps[end].timeline == steps[i].timeline)
      segs += evidence__step_segments(&steps[end++]);
    for(k = end; k < n; k++)
      if(steps[k].timeline == steps[i].timeline) {
        if(steps[k].at_us - steps[i].at_us < span)
          span = steps[k].at_us - steps[i].at_us;
        break;
      }
    pc->step = span / (int64_t)(segs + 1);
    if(pc->step > 100)
      pc->step = 100;
    if(pc->step < 1)
      pc->step = 1;
    pc->us = steps[i].at_us + pc->step;
    for(; i < end; i++) {
      const struct evidence_step *st = &steps[i];
      const struct evidence_conn *c = &conns->items[st->conn];
      struct evidence_endpoint *a = &cli[st->conn], *b = &srv[st->conn];
      bool server_first = c->why && c->why->server_first;

      if(st->kind == EV_STEP_OPEN) {
        evidence__segment(pc, a, b, EV_TCP_SYN, NULL, 0);
        evidence__segment(pc, b, a, EV_TCP_SYN | EV_TCP_ACK, NULL, 0);
        evidence__segment(pc, a, b, EV_TCP_ACK, NULL, 0);
      }
      else if(st->kind == EV_STEP_DATA) {
        struct evidence_endpoint *from = st->msg->dir == KB_TRACE_SEND ? a : b;
        struct evidence_endpoint *to = from == a ? b : a;
        evidence__data(pc, from, to, st->msg->data, st->msg->head);
        evidence__data(pc, from, to, st->msg->data + st->msg->head,
                       st->msg->len - st->msg->head);
      }
      else if(c->why && c->why->reset) {
        /* One RST from whoever reset it: no FIN, nothing after. */
        struct evidence_endpoint *from = server_first ? b : a;
        evidence__segment(pc, from, from == a ? b : a, EV_TCP_RST | EV_TCP_ACK,
                          NULL, 0);
      }
      else {
        struct evidence_endpoint *first = server_first ? b : a;
        struct evidence_endpoint *second = server_first ? a : b;
        evidence__segment(pc, first, second, EV_TCP_FIN | EV_TCP_ACK, NULL, 0);
        evidence__segment(pc, second, first, EV_TCP_FIN | EV_TCP_ACK, NULL, 0);
        evidence__segment(pc, first, second, EV_TCP_ACK, NULL, 0);
      }
    }
  }
  free(cli);
  free(srv);
}

int evidence_write_pcap(struct sim_recorder *rec, const char *path, char *err,
                        size_t errlen)
{
  struct evidence_conns conns = {0};
  struct evidence_pcap pc;
  struct evidence_step *steps = NULL;
  pcap_t *dead = pcap_open_dead(DLT_RAW, 65535);
  pcap_dumper_t *dumper;
  size_t i, nsteps = 0;
  int result = -1;

  memset(&pc, 0, sizeof(pc));
  if(!dead) {
    snprintf(err, errlen, "pcap: cannot open a raw-IP capture handle");
    return -1;
  }
  if(!strcmp(path, "-")) {
    /* libpcap closes the stream it writes: give it its own descriptor of
     * standard output. */
    FILE *std = evidence_open("--pcap", path, err, errlen);
    int fd;
    FILE *f;

    fflush(std);
    fd = dup(fileno(std));
    f = fd < 0 ? NULL : fdopen(fd, "wb");
    if(!f) {
      snprintf(err, errlen, "--pcap -: cannot write: %s", strerror(errno));
      if(fd >= 0)
        close(fd);
      pcap_close(dead);
      return -1;
    }
    dumper = pcap_dump_fopen(dead, f);
    if(!dumper)
      fclose(f);
  }
  else
    dumper = pcap_dump_open(dead, path);
  if(!dumper) {
    snprintf(err, errlen, "--pcap %s: %s", path, pcap_geterr(dead));
    pcap_close(dead);
    return -1;
  }
  pthread_mutex_lock(&rec->lock);
  if(!evidence__group(rec, &conns)) {
    steps = evidence__steps(&conns, &nsteps);
    if(steps)
      evidence__replay(&pc, &conns, steps, nsteps);
  }
  pthread_mutex_unlock(&rec->lock);
  if(!steps || pc.failed) {
    snprintf(err, errlen, "--pcap %s: out of memory", path);
    goto done;
  }
  qsort(pc.pkts, pc.count, sizeof(*pc.pkts), evidence__packet_cmp);
  for(i = 0; i < pc.count; i++) {
    struct pcap_pkthdr hdr;

    hdr.ts.tv_sec = (time_t)(pc.pkts[i]->us / 1000000);
    hdr.ts.tv_usec = (suseconds_t)(pc.pkts[i]->us % 1000000);
    hdr.caplen = hdr.len = (bpf_u_int32)pc.pkts[i]->len;
    pcap_dump((u_char *)dumper, &hdr, pc.pkts[i]->bytes);
  }
  result = 0;

done:
  for(i = 0; i < pc.count; i++)
    free(pc.pkts[i]);
  free(pc.pkts);
  free(steps);
  evidence__conns_free(&conns);
  if(pcap_dump_flush(dumper) && !result) {
    snprintf(err, errlen, "--pcap %s: write failed: %s", path, strerror(errno));
    result = -1;
  }
  pcap_dump_close(dumper);
  pcap_close(dead);
  return result;
}

/* ---- JSON ------------------------------------------------------------- */

static json_t *evidence__view_json(const struct client_view *v)
{
  json_t *notes = json_array();
  json_t *log = json_array();

  if(v->integration_error)
    json_array_append_new(notes, json_string(CLIENT_NOTIFICATION_TEXT));
  if(v->autodiscovery_failed_logged)
    json_array_append_new(log, json_string(CLIENT_LOG_TEXT));
  return json_pack("{s:o, s:o, s:b, s:b, s:b, s:s}", "notifications", notes,
                   "log", log, "presence_available", v->presence_available,
                   "scheduling_available", v->scheduling_available,
                   "autodiscover_ok", v->autodiscover_ok, "ews_url",
                   v->ews_url);
}

/* Returns the ISA member that served ev's connection: the observer of the
 * listener's side of that connection (ISA's accepting side of the client
 * hop, its connecting side of the upstream hop), as its own events name
 * it; NULL when no member recorded it (a live listener kbsim does not
 * run). Call with rec->lock held. */
static const char *evidence__member(const struct sim_recorder *rec,
                                    const struct sim_event *ev)
{
  enum kb_side isa =
      ev->hop == KB_HOP_CLIENT_PROXY ? KB_SIDE_SERVER : KB_SIDE_CLIENT;
  size_t i;

  for(i = 0; i < rec->count; i++) {
    const struct sim_event *o = &rec->events[i];
    if(o->hop == ev->hop && o->side == isa && o->origin[0] &&
       strcmp(o->origin, "balancer") && !strcmp(o->conn_name, ev->conn_name))
      return o->origin;
  }
  return NULL;
}

/* The recorded exchanges: Communicator's view of the first hop and
 * Exchange's view of the second, ordered by connection name then order. */
static json_t *evidence__exchanges_json(const struct sim_recorder *rec)
{
  json_t *all = json_array();
  size_t *idx = calloc(rec->count + 1, sizeof(*idx));
  size_t n = 0, i, k;

  if(!idx)
    return all;
  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    if(ev->kind != KB_TRACE_EXCHANGE || !ev->conn_name[0])
      continue;
    if((ev->hop == KB_HOP_CLIENT_PROXY && ev->side == KB_SIDE_CLIENT) ||
       (ev->hop == KB_HOP_PROXY_BACKEND && ev->side == KB_SIDE_SERVER))
      idx[n++] = i;
  }
  /* Insertion sort by name keeps arrival order within one connection
   * (stable); n is the number of legs in a run. */
  for(i = 1; i < n; i++) {
    size_t v = idx[i];
    for(k = i; k > 0 && evidence_name_cmp(rec->events[idx[k - 1]].conn_name,
                                          rec->events[v].conn_name) > 0;
        k--)
      idx[k] = idx[k - 1];
    idx[k] = v;
  }
  for(i = 0; i < n; i++) {
    const struct sim_event *ev = &rec->events[idx[i]];
    const struct kb_exchange *x = &ev->exchange;
    const char *member = evidence__member(rec, ev);
    json_array_append_new(
        all,
        json_pack(
            "{s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:s, s:I, s:I}", "hop",
            ev->hop == KB_HOP_CLIENT_PROXY ? "client-proxy" : "proxy-backend",
            "observer", ev->origin, "connection", ev->conn_name, "member",
            member ? json_string(member) : json_null(), "method", ev->method,
            "path", ev->path, "status", x->status, "request_ntlm",
            kb_auth_name(x->req_auth), "response_ntlm",
            kb_auth_name(x->resp_auth), "request_body_length",
            (json_int_t)x->req_body_len, "response_body_length",
            (json_int_t)x->resp_body_len));
  }
  free(idx);
  return all;
}

static const char *evidence__expect_name(int expect)
{
  return expect < 0 ? "none" : expect ? "error" : "clean";
}

/* The run's members as the scenario gives them, each with the policy it
 * ends up with; null for a live session (the listener is not kbsim's). */
static json_t *evidence__members_json(const struct scenario *sc)
{
  json_t *all;
  size_t i;

  if(!sc)
    return json_null();
  all = json_array();
  for(i = 0; i < sc->nmembers; i++) {
    const struct scenario_member *m = &sc->members[i];
    json_array_append_new(
        all,
        json_pack(
            "{s:s, s:s, s:b, s:s}", "name", m->name, "patch",
            scenario_patch_name(m->patch), "script", m->script, "policy",
            proxy_policy_name(scenario_effective_policy(m->patch, m->script))));
  }
  return all;
}

/* The command line, the version and the time: which kbsim wrote this,
 * asked how, and when (the real clock, the one part of a report that a
 * seed does not fix). */
static int evidence__argc;
static char **evidence__argv;

void evidence_set_command_line(int argc, char **argv)
{
  /* getopt permutes argv as it parses: keep the order it was typed in. The
   * copy lives as long as the process. */
  char **copy = calloc((size_t)argc + 1, sizeof(*copy));

  if(!copy)
    return;
  memcpy(copy, argv, (size_t)argc * sizeof(*copy));
  free(evidence__argv);
  evidence__argc = argc;
  evidence__argv = copy;
}

#define EVIDENCE_REMOVED "(password removed by kbsim)"
#define EVIDENCE_MAX_SECRETS (SCENARIO_MAX_USERS + 1)

/* Returns a copy of text (free it) with every occurrence of each of the n
 * secrets replaced by EVIDENCE_REMOVED, or NULL when out of memory. */
static char *evidence__redact(const char *text, char (*secrets)[256], size_t n)
{
  struct kb_buf b;
  const char *at = text;

  kb_buf_init(&b, (size_t)4 << 20);
  while(*at) {
    size_t i, len = 0;

    for(i = 0; i < n; i++) {
      len = strlen(secrets[i]);
      if(len && !strncmp(at, secrets[i], len))
        break;
    }
    if(i < n) {
      if(kb_buf_add(&b, EVIDENCE_REMOVED, strlen(EVIDENCE_REMOVED)))
        break;
      at += len;
    }
    else if(kb_buf_add(&b, at++, 1))
      break;
  }
  if(*at) {
    kb_buf_free(&b);
    return NULL;
  }
  return kb_buf_steal(&b, NULL);
}

/* Adds the password of a "DOMAIN\user:password" spec to secrets. */
static void evidence__secret_of(const char *spec, char (*secrets)[256],
                                size_t *n)
{
  char domain[128], user[128], err[256];

  if(*n < EVIDENCE_MAX_SECRETS &&
     !kb_users_split_spec(spec, true, domain, sizeof(domain), user,
                          sizeof(user), secrets[*n], sizeof(secrets[0]), err,
                          sizeof(err)) &&
     secrets[*n][0])
    (*n)++;
}

/* Collects every password a report could quote: the scenario's users and
 * client password, and each --user/-u value on the command line. */
static size_t evidence__secrets(const struct scenario *sc, char (*secrets)[256])
{
  size_t i, n = 0;
  int k;

  for(i = 0; sc && i < sc->nusers; i++)
    evidence__secret_of(sc->user_specs[i], secrets, &n);
  if(sc && sc->has_password_override && sc->client_password[0] &&
     n < EVIDENCE_MAX_SECRETS)
    snprintf(secrets[n++], sizeof(secrets[0]), "%s", sc->client_password);
  for(k = 1; k < evidence__argc; k++) {
    const char *a = evidence__argv[k];
    if(!strncmp(a, "--user=", 7))
      evidence__secret_of(a + 7, secrets, &n);
    else if(!strncmp(a, "-u", 2) && a[2])
      evidence__secret_of(a + 2, secrets, &n);
    else if((!strcmp(a, "--user") || !strcmp(a, "-u")) &&
            k + 1 < evidence__argc)
      evidence__secret_of(evidence__argv[k + 1], secrets, &n);
  }
  return n;
}

/* Adds text to arr, passwords removed. */
static void evidence__append_redacted(json_t *arr, const char *text,
                                      char (*secrets)[256], size_t n)
{
  char *clean = evidence__redact(text, secrets, n);

  json_array_append_new(arr, clean ? json_string(clean) : json_null());
  free(clean);
}

static json_t *evidence__stamp_json(char (*secrets)[256], size_t nsecrets)
{
  json_t *argv = json_array();
  struct timespec now;
  char when[64];
  int i;

  for(i = 0; i < evidence__argc; i++)
    evidence__append_redacted(argv, evidence__argv[i], secrets, nsecrets);
  clock_gettime(CLOCK_REALTIME, &now);
  evidence__iso((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, when);
  return json_pack("{s:s, s:s, s:o, s:s}", "kbsim", version_kbsim(), "commit",
                   version_commit(), "argv", argv, "written", when);
}

static json_t *evidence__scenario_json(const struct evidence_run *run,
                                       char (*secrets)[256], size_t nsecrets)
{
  const struct scenario *sc = run->sc;
  char *clean;
  json_t *text, *file;

  if(!sc)
    return json_pack("{s:s, s:n, s:n}", "name", "live session", "file", "text");
  /* json_string refuses what is not UTF-8: such a file's text is null,
   * as an unreadable one's. Passwords never reach a report. */
  clean = run->scenario_text
              ? evidence__redact(run->scenario_text, secrets, nsecrets)
              : NULL;
  text = clean ? json_string(clean) : NULL;
  free(clean);
  file = sc->path[0] ? json_string(sc->path) : NULL;
  return json_pack("{s:s, s:o, s:o}", "name", sc->name, "file",
                   file ? file : json_null(), "text",
                   text ? text : json_null());
}

int evidence_write_json(struct sim_recorder *rec,
                        const struct evidence_run *run, const char *path,
                        char *err, size_t errlen)
{
  const struct scenario *sc = run->sc;
  json_t *root, *clients = json_array();
  unsigned with_error = run->sessions->users_with_error;
  const char *cls = run->outcome_class ? run->outcome_class
                    : with_error       ? "server-error"
                                       : "clean";
  int expect = sc ? sc->expect.outcome : run->expect;
  char(*secrets)[256] = calloc(EVIDENCE_MAX_SECRETS, sizeof(*secrets));
  size_t i, j, nsecrets;
  FILE *out;
  int result = 0;

  if(!secrets) {
    json_decref(clients);
    snprintf(err, errlen, "--json: could not build the report (out of memory)");
    return -1;
  }
  nsecrets = evidence__secrets(sc, secrets);
  for(i = 0; i < run->sessions->count; i++) {
    const struct sim_session *s = &run->sessions->sessions[i];
    json_t *posts = json_array();

    for(j = 0; j < s->nresults; j++) {
      const struct client_post_result *r = &s->results[j];
      json_array_append_new(
          posts,
          json_pack("{s:i, s:s, s:s, s:i, s:i, s:i, s:I, s:s, s:o}", "index",
                    (int)r->index, "kind", client_post_kind_name(r->kind),
                    "outcome", client_outcome_name(r->outcome), "legs",
                    (int)r->legs, "leg1_status", r->leg1_status, "final_status",
                    r->final_status, "connection", (json_int_t)r->connection,
                    "detail", r->detail, "view_after",
                    s->views ? evidence__view_json(&s->views[j])
                             : json_null()));
    }
    json_array_append_new(
        clients,
        json_pack("{s:i, s:s, s:s, s:o, s:o}", "id", (int)s->id, "error",
                  s->error, "outcome_class", client_class_name(s->klass),
                  "posts", posts, "view", evidence__view_json(&s->view)));
  }

  pthread_mutex_lock(&rec->lock);
  root = json_pack(
      "{s:i, s:s, s:o, s:o, s:{s:s, s:s, s:s, s:s}, s:o, s:o, s:i, s:i, s:s, "
      "s:s, s:s, s:s, s:s, s:o, s:o, "
      "s:{s:i, s:i, s:i, s:i, s:o, s:o}}",
      "version", 2, "kind", "run", "stamp",
      evidence__stamp_json(secrets, nsecrets), "scenario",
      evidence__scenario_json(run, secrets, nsecrets), "topology", "client",
      "Office Communicator 2007", "proxy",
      "ISA Server 2006 web listener (Integrated)", "backend",
      "Exchange 2007 EWS", "hops", "client-proxy, proxy-backend", "members",
      evidence__members_json(sc), "seed",
      run->live ? json_null()
                : json_integer((json_int_t)(sc ? sc->seed : run->seed)),
      "clients", (int)(sc ? sc->clients : run->clients), "ews_posts",
      (int)(sc ? sc->posts : run->ews_posts), "ntlm",
      sc ? ntlm_response_kind_name(sc->ntlm) : run->ntlm, "expected",
      evidence__expect_name(expect), "got",
      !strcmp(cls, "infrastructure") ? "unknown"
      : with_error                   ? "error"
                                     : "clean",
      "verdict",
      !strcmp(cls, "infrastructure") ? "error"
      : run->passed                  ? "pass"
                                     : "fail",
      "outcome_class", cls, "exchanges", evidence__exchanges_json(rec),
      "sessions", clients, "summary", "posts", (int)run->sessions->posts,
      "posts_ok", (int)run->sessions->posts_ok, "posts_failed",
      (int)run->sessions->posts_failed, "users_with_error", (int)with_error,
      "backend_empty_posts",
      run->backend ? json_integer((json_int_t)run->backend->empty_posts)
                   : json_null(),
      "proxy_reauth_skipped",
      run->proxy ? json_integer((json_int_t)run->proxy->reauth_skipped)
                 : json_null());
  pthread_mutex_unlock(&rec->lock);
  explicit_bzero(secrets, EVIDENCE_MAX_SECRETS * sizeof(*secrets));
  free(secrets);
  if(!root) {
    snprintf(err, errlen, "--json: could not build the report (out of memory)");
    return -1;
  }
  out = evidence_open("--json", path, err, errlen);
  if(!out)
    result = -1;
  else {
    if(json_dumpf(root, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
       fputc('\n', out) == EOF) {
      snprintf(err, errlen, "--json %s: cannot write: %s", path,
               strerror(errno));
      result = -1;
    }
    if(evidence_close(out, "--json", path, result ? NULL : err, errlen))
      result = -1;
  }
  json_decref(root);
  return result;
}

/* ---- serve's JSON ------------------------------------------------------ */

/* The code of the reason c closed (evidence__write_close says it for
 * people), or NULL when it did not close. */
static const char *evidence__close_code(const struct evidence_conn *c)
{
  if(!c->closed)
    return NULL;
  if(c->why)
    return c->why->code;
  if(c->hop == KB_HOP_PROXY_BACKEND)
    return c->parent_closed ? EVIDENCE_CLOSE_WITH_CLIENT : EVIDENCE_CLOSE_ISA;
  return EVIDENCE_CLOSE_CLIENT;
}

static json_t *evidence__iso_json(bool known, int64_t us)
{
  char when[64];

  if(!known)
    return json_null();
  evidence__iso(us, when);
  return json_string(when);
}

/* Every connection with recorded bytes, as the transcript and the capture
 * name and order them. */
static json_t *evidence__serve_conns_json(const struct evidence_conns *conns)
{
  json_t *all = json_array();
  size_t i;

  for(i = 0; i < conns->count; i++) {
    const struct evidence_conn *c = &conns->items[i];
    const char *code = evidence__close_code(c);

    json_array_append_new(
        all, json_pack("{s:s, s:s, s:o, s:o, s:o, s:I}", "name", c->name, "hop",
                       c->hop == KB_HOP_CLIENT_PROXY ? "client-proxy"
                                                     : "proxy-backend",
                       "opened", evidence__iso_json(c->opened, c->open_us),
                       "closed", evidence__iso_json(c->closed, c->close_us),
                       "close", code ? json_string(code) : json_null(),
                       "messages", (json_int_t)c->nmsgs));
  }
  return all;
}

/* The codes of the notes observer (origin, conn) wrote about the request
 * that exchange at index at answered: those since its previous exchange. */
static json_t *evidence__serve_notes_json(const struct sim_recorder *rec,
                                          size_t at)
{
  const struct sim_event *x = &rec->events[at];
  json_t *codes = json_array();
  size_t k, first = at;

  for(k = at; k-- > 0;) {
    const struct sim_event *o = &rec->events[k];
    if(o->conn != x->conn || o->hop != x->hop || o->side != x->side ||
       strcmp(o->origin, x->origin))
      continue;
    if(o->kind == KB_TRACE_EXCHANGE || o->kind == KB_TRACE_OPEN)
      break;
    if(o->kind == KB_TRACE_NOTE && o->note != KB_NOTE_NONE)
      first = k;
  }
  for(k = first; k < at; k++) {
    const struct sim_event *o = &rec->events[k];
    if(o->kind == KB_TRACE_NOTE && o->note != KB_NOTE_NONE &&
       o->conn == x->conn && o->hop == x->hop && o->side == x->side &&
       !strcmp(o->origin, x->origin))
      json_array_append_new(codes, json_string(kb_note_name(o->note)));
  }
  return codes;
}

/* What the members answered on the client hop and Exchange on the
 * upstream one, in the order they were recorded (the real clock's), each
 * with the observer's notes about it; counts into the summary's tallies. */
static json_t *evidence__serve_exchanges_json(const struct sim_recorder *rec,
                                              json_int_t *requests,
                                              json_int_t *forwarded,
                                              json_int_t *server_errors)
{
  json_t *all = json_array();
  size_t i;

  for(i = 0; i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];
    const struct kb_exchange *x = &ev->exchange;
    char name[128];

    if(ev->kind != KB_TRACE_EXCHANGE || ev->side != KB_SIDE_SERVER)
      continue;
    if(ev->conn_name[0])
      snprintf(name, sizeof(name), "%s", ev->conn_name);
    else
      snprintf(name, sizeof(name), "%s conn %llu", ev->origin,
               (unsigned long long)ev->conn);
    if(ev->hop == KB_HOP_CLIENT_PROXY) {
      (*requests)++;
      if(x->status >= 500)
        (*server_errors)++;
    }
    else
      (*forwarded)++;
    json_array_append_new(
        all,
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:s, s:I, s:I, "
                  "s:o}",
                  "hop",
                  ev->hop == KB_HOP_CLIENT_PROXY ? "client-proxy"
                                                 : "proxy-backend",
                  "observer", ev->origin, "connection", name, "at",
                  evidence__iso_json(true, ev->at_us), "method", ev->method,
                  "path", ev->path, "status", x->status, "request_ntlm",
                  kb_auth_name(x->req_auth), "response_ntlm",
                  kb_auth_name(x->resp_auth), "request_body_length",
                  (json_int_t)x->req_body_len, "response_body_length",
                  (json_int_t)x->resp_body_len, "notes",
                  evidence__serve_notes_json(rec, i)));
  }
  return all;
}

/* The members as started, each with the policy in force at the stop and
 * its counters. */
static json_t *evidence__serve_members_json(const struct evidence_serve *srv)
{
  json_t *all = json_array();
  size_t i;

  for(i = 0; i < srv->nmembers; i++) {
    const struct scenario_member *m = &srv->sc->members[i];
    const struct proxy_stats *st = &srv->members[i];

    json_array_append_new(
        all,
        json_pack(
            "{s:s, s:s, s:b, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
            "s:I}}",
            "name", m->name, "patch", scenario_patch_name(m->patch), "script",
            m->script, "policy",
            proxy_policy_name(scenario_effective_policy(m->patch, m->script)),
            "policy_at_stop", proxy_policy_name(srv->policies[i]), "stats",
            "connections", (json_int_t)st->connections, "requests",
            (json_int_t)st->requests, "challenges", (json_int_t)st->challenges,
            "auth_ok", (json_int_t)st->auth_ok, "auth_failed",
            (json_int_t)st->auth_failed, "reauth_skipped",
            (json_int_t)st->reauth_skipped, "forwarded",
            (json_int_t)st->forwarded, "forwarded_empty_posts",
            (json_int_t)st->forwarded_empty_posts));
  }
  return all;
}

struct json_t *evidence_serve_report(struct sim_recorder *rec,
                                     const struct evidence_serve *srv)
{
  struct evidence_run run = {.sc = srv->sc,
                             .scenario_text = srv->scenario_text};
  struct evidence_conns conns;
  json_t *root = NULL, *balancer = json_null(), *conns_json, *exchanges;
  json_int_t requests = 0, forwarded = 0, server_errors = 0, resets = 0;
  json_int_t skipped = 0, empty_posts_forwarded = 0;
  char(*secrets)[256] = calloc(EVIDENCE_MAX_SECRETS, sizeof(*secrets));
  size_t i, nsecrets;

  if(!secrets)
    return NULL;
  nsecrets = evidence__secrets(srv->sc, secrets);
  for(i = 0; i < srv->nmembers; i++) {
    skipped += (json_int_t)srv->members[i].reauth_skipped;
    empty_posts_forwarded += (json_int_t)srv->members[i].forwarded_empty_posts;
  }
  if(srv->balanced)
    balancer = json_pack("{s:s, s:I, s:I, s:I}", "mode",
                         balancer_mode_name(srv->sc->balancer), "accepted",
                         (json_int_t)srv->balancer.accepted, "refused",
                         (json_int_t)srv->balancer.refused, "connect_failed",
                         (json_int_t)srv->balancer.connect_failed);
  pthread_mutex_lock(&rec->lock);
  if(evidence__group(rec, &conns)) {
    pthread_mutex_unlock(&rec->lock);
    json_decref(balancer);
    free(secrets);
    return NULL;
  }
  for(i = 0; i < conns.count; i++)
    if(conns.items[i].why && conns.items[i].why->reset)
      resets++;
  conns_json = evidence__serve_conns_json(&conns);
  exchanges = evidence__serve_exchanges_json(rec, &requests, &forwarded,
                                             &server_errors);
  root = json_pack(
      "{s:i, s:s, s:o, s:o, s:{s:s, s:s, s:s}, s:o, s:o, s:o, s:o, s:s, s:o, "
      "s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
      "version", 2, "kind", "serve", "stamp",
      evidence__stamp_json(secrets, nsecrets), "scenario",
      evidence__scenario_json(&run, secrets, nsecrets), "topology", "proxy",
      "ISA Server 2006 web listener", "backend", "Exchange 2007 EWS", "hops",
      "client-proxy, proxy-backend", "members",
      evidence__serve_members_json(srv), "balancer", balancer, "started",
      evidence__iso_json(true, srv->started_us), "stopped",
      evidence__iso_json(true, srv->stopped_us), "signal", srv->signal,
      "connections", conns_json, "exchanges", exchanges, "summary",
      "connections", (json_int_t)conns.count, "resets", resets, "requests",
      requests, "server_errors", server_errors, "forwarded", forwarded,
      "proxy_reauth_skipped", skipped, "proxy_empty_posts_forwarded",
      empty_posts_forwarded, "backend_empty_posts",
      (json_int_t)srv->backend.empty_posts);
  pthread_mutex_unlock(&rec->lock);
  evidence__conns_free(&conns);
  explicit_bzero(secrets, EVIDENCE_MAX_SECRETS * sizeof(*secrets));
  free(secrets);
  return root;
}

int evidence_write_serve_json(const struct json_t *report, const char *path,
                              char *err, size_t errlen)
{
  FILE *out = evidence_open("--json", path, err, errlen);
  int result = 0;

  if(!out)
    return -1;
  if(json_dumpf(report, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
     fputc('\n', out) == EOF) {
    snprintf(err, errlen, "--json %s: cannot write: %s", path, strerror(errno));
    result = -1;
  }
  if(evidence_close(out, "--json", path, result ? NULL : err, errlen))
    result = -1;
  return result;
}

int evidence_write_transcript_to(struct sim_recorder *rec, const char *path,
                                 char *err, size_t errlen)
{
  FILE *out = evidence_open("--transcript", path, err, errlen);
  int result;

  if(!out)
    return -1;
  result = evidence_write_transcript(rec, out);
  if(result)
    snprintf(err, errlen, "--transcript %s: cannot write: %s", path,
             strerror(errno));
  if(evidence_close(out, "--transcript", path, result ? NULL : err, errlen))
    result = -1;
  return result;
}

/* ---- where evidence goes ---------------------------------------------- */

/* The original standard output once evidence_claim_stdout set it aside;
 * NULL: stdout itself. Written only by the main thread before any other
 * starts. */
static FILE *evidence__stdout;

enum evidence_status evidence_claim_stdout(const char *const *paths, size_t n,
                                           char *err, size_t errlen)
{
  const char *first = NULL;
  size_t i;
  int fd;

  for(i = 0; i < n; i++) {
    if(!paths[i] || strcmp(paths[i], "-"))
      continue;
    if(first) {
      snprintf(err, errlen,
               "only one evidence file can go to standard output ('-'); "
               "give the others file names");
      return EVIDENCE_BAD_ARGS;
    }
    first = paths[i];
  }
  if(!first || evidence__stdout)
    return EVIDENCE_OK;
  fflush(stdout);
  fd = dup(STDOUT_FILENO);
  if(fd < 0 || !(evidence__stdout = fdopen(fd, "w")) ||
     dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    snprintf(err, errlen, "cannot set standard output aside for evidence: %s",
             strerror(errno));
    if(fd >= 0 && !evidence__stdout)
      close(fd);
    return EVIDENCE_IO;
  }
  return EVIDENCE_OK;
}

FILE *evidence_open(const char *flag, const char *path, char *err,
                    size_t errlen)
{
  FILE *f;

  if(!strcmp(path, "-"))
    return evidence__stdout ? evidence__stdout : stdout;
  f = fopen(path, "w");
  if(!f)
    snprintf(err, errlen, "%s %s: cannot write: %s", flag, path,
             strerror(errno));
  return f;
}

int evidence_close(FILE *f, const char *flag, const char *path, char *err,
                   size_t errlen)
{
  int bad;

  if(f == stdout || f == evidence__stdout)
    bad = fflush(f) || ferror(f);
  else {
    bad = ferror(f);
    bad |= fclose(f) != 0;
  }
  if(bad && err)
    snprintf(err, errlen, "%s %s: cannot write: %s", flag, path,
             strerror(errno ? errno : EIO));
  return bad ? -1 : 0;
}

/* Checks that path can be written without leaving anything behind: a file
 * that is there is opened for writing (not truncated), one that is not is
 * created and removed again. Returns 0, or -1 with errno set. */
static int evidence__probe(const char *path)
{
  int fd;

  if(!strcmp(path, "-"))
    return 0;
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if(fd >= 0) {
    close(fd);
    return unlink(path);
  }
  if(errno != EEXIST)
    return -1;
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if(fd < 0)
    return -1;
  close(fd);
  return 0;
}

/* Writes path with label inserted before its extension ("bug.txt" +
 * "fix" -> "bug-fix.txt") into out. Returns 0, or -1 when it does not
 * fit. */
static int evidence__insert(const char *path, const char *label, char *out,
                            size_t len)
{
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(path, '.');
  int n;

  if(!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : path))
    n = snprintf(out, len, "%s-%s", path, label);
  else
    n = snprintf(out, len, "%.*s-%s%s", (int)(dot - path), path, label, dot);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Picks run i's label: its name, or with -2, -3... the first one no
 * earlier run has. labels holds the earlier ones. */
static void evidence__label(char (*labels)[80], size_t i, const char *name)
{
  unsigned k;
  size_t j;

  for(k = 1;; k++) {
    if(k == 1)
      snprintf(labels[i], 80, "%s", name);
    else
      snprintf(labels[i], 80, "%.60s-%u", name, k);
    for(j = 0; j < i; j++)
      if(!strcmp(labels[j], labels[i]))
        break;
    if(j == i)
      return;
  }
}

enum evidence_status evidence_plan(const struct evidence_want *want,
                                   const char *const *names, size_t n,
                                   struct evidence_paths *out, char *err,
                                   size_t errlen)
{
  static const char *const flags[3] = {"--transcript", "--pcap", "--json"};
  const char *given[3] = {want->transcript, want->pcap, want->json};
  char(*labels)[80] = calloc(n + 1, sizeof(*labels));
  enum evidence_status result = EVIDENCE_OK;
  size_t i, k;

  if(!labels) {
    snprintf(err, errlen, "out of memory naming the evidence files");
    return EVIDENCE_IO;
  }
  memset(out, 0, n * sizeof(*out));
  for(k = 0; k < 3 && n > 1; k++)
    if(given[k] && !strcmp(given[k], "-")) {
      snprintf(err, errlen,
               "%s -: standard output holds one run's file, and %zu "
               "scenarios would each write one; give a file name (each "
               "scenario gets its own)",
               flags[k], n);
      result = EVIDENCE_BAD_ARGS;
      goto done;
    }
  for(i = 0; i < n; i++) {
    char *slot[3] = {out[i].transcript, out[i].pcap, out[i].json};

    evidence__label(labels, i, names[i]);
    for(k = 0; k < 3; k++) {
      if(!given[k])
        continue;
      if(n == 1)
        snprintf(slot[k], sizeof(out[i].json), "%s", given[k]);
      else if(evidence__insert(given[k], labels[i], slot[k],
                               sizeof(out[i].json))) {
        snprintf(err, errlen, "%s %s: the name is too long; give a shorter one",
                 flags[k], given[k]);
        result = EVIDENCE_BAD_ARGS;
        goto done;
      }
      if(evidence__probe(slot[k])) {
        snprintf(err, errlen,
                 "%s %s: cannot write: %s; give a path in a writable "
                 "directory",
                 flags[k], slot[k], strerror(errno));
        result = EVIDENCE_IO;
        goto done;
      }
    }
  }
  if(want->html && evidence__probe(want->html)) {
    snprintf(err, errlen,
             "--html %s: cannot write: %s; give a path in a writable "
             "directory",
             want->html, strerror(errno));
    result = EVIDENCE_IO;
  }

done:
  free(labels);
  return result;
}

enum evidence_status evidence_prepare(const struct evidence_want *want,
                                      const char *const *names, size_t n,
                                      struct evidence_paths *out, char *err,
                                      size_t errlen)
{
  const char *outs[4] = {want->transcript, want->pcap, want->json, want->html};
  enum evidence_status st = evidence_claim_stdout(outs, 4, err, errlen);

  return st ? st : evidence_plan(want, names, n, out, err, errlen);
}

char *evidence_read_text(const char *path)
{
  FILE *f = fopen(path, "r");
  struct kb_buf b;
  char chunk[4096];
  size_t n;

  if(!f)
    return NULL;
  kb_buf_init(&b, (size_t)1 << 20);
  while((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    if(kb_buf_add(&b, chunk, n))
      break;
  if(ferror(f) || !feof(f)) {
    fclose(f);
    kb_buf_free(&b);
    return NULL;
  }
  fclose(f);
  return kb_buf_steal(&b, NULL);
}
