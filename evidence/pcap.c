/*
 * pcap.c - the capture: every connection as a TCP stream of synthetic
 * IPv4 segments, both hops interleaved in causal order at the times the
 * events were stamped with, written by libpcap's own writer; on a TLS run
 * its TLS connections carry the records their server end read and wrote,
 * written as pcapng with their secrets (pcapng.c).
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evidence_int.h"

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
  /* A TLS connection's: the server end's chunks [tls_from, tls_to) it
   * writes instead of the plaintext (evidence__tls_ranges). */
  size_t tls_from, tls_to;
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

/* How many segments st of connection c writes. */
static size_t evidence__step_segments(const struct evidence_conn *c,
                                      const struct evidence_step *st)
{
  size_t n = st->kind == EV_STEP_DATA ? 0 : 3, k;

  if(c->tls) {
    for(k = st->tls_from; k < st->tls_to; k++)
      n += evidence__segments_of(c->tls->chunks[k].len);
    return n;
  }
  if(st->kind != EV_STEP_DATA)
    return n;
  return evidence__segments_of(st->msg->head) +
         evidence__segments_of(st->msg->len - st->msg->head);
}

/* Shares a TLS connection's recorded chunks among its n steps st (its
 * open, messages and close, in order): the handshake with the open (or
 * before the first message), then each run of chunks one way with the
 * next run of messages that way (HTTP/1.1 on one connection alternates:
 * the client's request, the server's answer), written at its first
 * message; what is left (close_notify, or all of it once the runs stop
 * matching) with the close. Every chunk is written once and in order, so
 * each direction's records stay whole whatever time they are given. */
static void evidence__tls_ranges(const struct evidence_conn *c,
                                 struct evidence_step *st, size_t n)
{
  const struct sim_tls_conn *t = c->tls;
  size_t hs = 0, at = 0, k;
  bool lost = false;

  while(hs < t->count && t->chunks[hs].handshake)
    hs++;
  for(k = 0; k < n; k++) {
    size_t to = at < hs ? hs : at;

    if(st[k].kind == EV_STEP_DATA && !lost &&
       (!k || st[k - 1].kind != EV_STEP_DATA ||
        st[k - 1].msg->dir != st[k].msg->dir)) {
      bool from_client = st[k].msg->dir == KB_TRACE_SEND;
      if(to < t->count && t->chunks[to].from_client == from_client)
        while(to < t->count && t->chunks[to].from_client == from_client)
          to++;
      else
        lost = true;
    }
    else if(st[k].kind == EV_STEP_CLOSE)
      to = t->count;
    st[k].tls_from = at;
    st[k].tls_to = to;
    at = to;
  }
  if(n && at < t->count)
    st[n - 1].tls_to = t->count;
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
  srv->port = c->tls ? 443 : 80;
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
    if(c->tls)
      evidence__tls_ranges(c, &steps[first], *n - first);
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

/* Writes the segments of one step of connection c, whose endpoints are a
 * (the connecting side) and b: the handshake, one write, or the close
 * (FIN from whoever closed first, or one RST). A TLS connection's steps
 * carry its records (tls_from, tls_to) in place of the plaintext, each
 * chunk (what its server end read or wrote one way in a row) one write. */
static void evidence__play(struct evidence_pcap *pc,
                           const struct evidence_conn *c,
                           const struct evidence_step *st,
                           struct evidence_endpoint *a,
                           struct evidence_endpoint *b)
{
  bool server_first = c->why && c->why->server_first;
  size_t k;

  if(st->kind == EV_STEP_OPEN) {
    evidence__segment(pc, a, b, EV_TCP_SYN, NULL, 0);
    evidence__segment(pc, b, a, EV_TCP_SYN | EV_TCP_ACK, NULL, 0);
    evidence__segment(pc, a, b, EV_TCP_ACK, NULL, 0);
  }
  for(k = st->tls_from; c->tls && k < st->tls_to; k++) {
    const struct sim_tls_chunk *ch = &c->tls->chunks[k];
    evidence__data(pc, ch->from_client ? a : b, ch->from_client ? b : a,
                   ch->data, ch->len);
  }
  if(st->kind == EV_STEP_DATA && !c->tls) {
    struct evidence_endpoint *from = st->msg->dir == KB_TRACE_SEND ? a : b;
    struct evidence_endpoint *to = from == a ? b : a;
    evidence__data(pc, from, to, st->msg->data, st->msg->head);
    evidence__data(pc, from, to, st->msg->data + st->msg->head,
                   st->msg->len - st->msg->head);
  }
  if(st->kind != EV_STEP_CLOSE)
    return;
  if(c->why && c->why->reset) {
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
          steps[end].timeline == steps[i].timeline) {
      segs +=
          evidence__step_segments(&conns->items[steps[end].conn], &steps[end]);
      end++;
    }
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
      size_t conn = steps[i].conn;
      evidence__play(pc, &conns->items[conn], &steps[i], &cli[conn],
                     &srv[conn]);
    }
  }
  free(cli);
  free(srv);
}

/* Opens libpcap's writer on path ("-": standard output, as evidence_open
 * gives it). Returns it, or NULL with a one-line reason in err. */
static pcap_dumper_t *evidence__pcap_open(pcap_t *dead, const char *path,
                                          char *err, size_t errlen)
{
  pcap_dumper_t *dumper;

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
      return NULL;
    }
    dumper = pcap_dump_fopen(dead, f);
    if(!dumper)
      fclose(f);
  }
  else
    dumper = pcap_dump_open(dead, path);
  if(!dumper)
    snprintf(err, errlen, "--pcap %s: %s", path, pcap_geterr(dead));
  return dumper;
}

/* Writes the packets of pc as a classic pcap file through libpcap's own
 * writer. Returns 0, or -1 with a one-line reason in err. */
static int evidence__write_classic(const struct evidence_pcap *pc,
                                   const char *path, char *err, size_t errlen)
{
  pcap_t *dead = pcap_open_dead(DLT_RAW, 65535);
  pcap_dumper_t *dumper;
  size_t i;
  int result = 0;

  if(!dead) {
    snprintf(err, errlen, "pcap: cannot open a raw-IP capture handle");
    return -1;
  }
  dumper = evidence__pcap_open(dead, path, err, errlen);
  if(!dumper) {
    pcap_close(dead);
    return -1;
  }
  for(i = 0; i < pc->count; i++) {
    struct pcap_pkthdr hdr;

    hdr.ts.tv_sec = (time_t)(pc->pkts[i]->us / 1000000);
    hdr.ts.tv_usec = (suseconds_t)(pc->pkts[i]->us % 1000000);
    hdr.caplen = hdr.len = (bpf_u_int32)pc->pkts[i]->len;
    pcap_dump((u_char *)dumper, &hdr, pc->pkts[i]->bytes);
  }
  if(pcap_dump_flush(dumper)) {
    snprintf(err, errlen, "--pcap %s: write failed: %s", path, strerror(errno));
    result = -1;
  }
  pcap_dump_close(dumper);
  pcap_close(dead);
  return result;
}

/* Writes the packets of pc as pcapng with the key log lines of its TLS
 * connections in a Decryption Secrets Block ahead of them, so that
 * Wireshark decrypts it with no other file. Returns 0, or -1 with a
 * one-line reason in err. */
static int evidence__write_ng(const struct evidence_pcap *pc,
                              const char *keylog, size_t keylog_len,
                              const char *path, char *err, size_t errlen)
{
  FILE *out = evidence_open("--pcap", path, err, errlen);
  size_t i;
  int failed;

  if(!out)
    return -1;
  failed = evidence__pcapng_start(out) ||
           evidence__pcapng_secrets(out, keylog, keylog_len);
  for(i = 0; i < pc->count && !failed; i++)
    failed = evidence__pcapng_packet(out, pc->pkts[i]->us, pc->pkts[i]->bytes,
                                     pc->pkts[i]->len);
  if(failed)
    snprintf(err, errlen, "--pcap %s: cannot write: %s", path, strerror(errno));
  if(evidence_close(out, "--pcap", path, failed ? NULL : err, errlen))
    failed = 1;
  return failed ? -1 : 0;
}

/* Gathers the key log lines of every TLS connection of conns, in their
 * order, into *out (malloc'd, *len bytes; NULL when there is none).
 * Returns 0, or -1 out of memory. */
static int evidence__keylog(const struct evidence_conns *conns, char **out,
                            size_t *len)
{
  size_t i;

  *out = NULL;
  *len = 0;
  for(i = 0; i < conns->count; i++) {
    const struct sim_tls_conn *t = conns->items[i].tls;
    char *grown;

    if(!t || !t->keylog_len)
      continue;
    grown = realloc(*out, *len + t->keylog_len);
    if(!grown)
      return -1;
    memcpy(grown + *len, t->keylog, t->keylog_len);
    *out = grown;
    *len += t->keylog_len;
  }
  return 0;
}

int evidence_write_pcap(struct sim_recorder *rec, const char *path, char *err,
                        size_t errlen)
{
  struct evidence_conns conns = {0};
  struct evidence_pcap pc;
  struct evidence_step *steps = NULL;
  char *keylog = NULL;
  size_t i, nsteps = 0, keylog_len = 0;
  bool tls = false;
  int result = -1;

  memset(&pc, 0, sizeof(pc));
  pthread_mutex_lock(&rec->lock);
  if(!evidence__group(rec, &conns)) {
    steps = evidence__steps(&conns, &nsteps);
    if(steps)
      evidence__replay(&pc, &conns, steps, nsteps);
    for(i = 0; i < conns.count; i++)
      tls = tls || conns.items[i].tls;
    if(tls && evidence__keylog(&conns, &keylog, &keylog_len))
      pc.failed = true;
  }
  pthread_mutex_unlock(&rec->lock);
  if(!steps || pc.failed) {
    snprintf(err, errlen, "--pcap %s: out of memory", path);
    goto done;
  }
  qsort(pc.pkts, pc.count, sizeof(*pc.pkts), evidence__packet_cmp);
  result = tls ? evidence__write_ng(&pc, keylog, keylog_len, path, err, errlen)
               : evidence__write_classic(&pc, path, err, errlen);

done:
  for(i = 0; i < pc.count; i++)
    free(pc.pkts[i]);
  free(pc.pkts);
  free(steps);
  free(keylog);
  evidence__conns_free(&conns);
  return result;
}
