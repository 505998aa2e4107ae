/*
 * evidence.c - transcript, pcap and JSON report from the trace recorder.
 *
 * Only the connecting side of each hop records bytes (libcurl's debug
 * callback in the client and in the proxy's upstream handle), so every
 * connection has exactly one byte stream; both hops are named by
 * kb_names, so connections sort by who was talking.
 */
#include "evidence.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kb_buf.h"
#include "ntlm.h"

/* One connection's recorded events, as indices into the recorder. */
struct evidence_conn {
  enum kb_hop hop;
  const char *name;
  size_t *events;
  size_t count;
  size_t alloc;
};

struct evidence_conns {
  struct evidence_conn *items;
  size_t count;
};

int evidence_name_cmp(const char *a, const char *b)
{
  while(*a && *b) {
    if(isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
      unsigned long long x = strtoull(a, (char **)&a, 10);
      unsigned long long y = strtoull(b, (char **)&b, 10);
      if(x != y)
        return x < y ? -1 : 1;
      continue;
    }
    if(*a != *b)
      return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
    a++;
    b++;
  }
  return (unsigned char)*a - (unsigned char)*b;
}

static int evidence__conn_cmp(const void *pa, const void *pb)
{
  const struct evidence_conn *a = pa, *b = pb;

  return evidence_name_cmp(a->name, b->name);
}

static bool evidence__is_stream_event(const struct sim_event *ev)
{
  return ev->side == KB_SIDE_CLIENT && ev->conn_name[0] &&
         (ev->kind == KB_TRACE_OPEN || ev->kind == KB_TRACE_CLOSE ||
          ev->kind == KB_TRACE_SEND || ev->kind == KB_TRACE_RECV);
}

static void evidence__conns_free(struct evidence_conns *c)
{
  size_t i;

  for(i = 0; i < c->count; i++)
    free(c->items[i].events);
  free(c->items);
  memset(c, 0, sizeof(*c));
}

/* Groups the recorder's byte-stream events by connection, sorted by name.
 * Call with rec->lock held; the result points into the recorder. Returns 0
 * or -1 when out of memory. */
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

    if(!evidence__is_stream_event(ev))
      continue;
    /* Connections are few next to events; a linear search from the most
     * recent keeps this simple and fast enough. */
    for(j = out->count; j-- > 0;) {
      if(out->items[j].hop == ev->hop &&
         !strcmp(out->items[j].name, ev->conn_name)) {
        c = &out->items[j];
        break;
      }
    }
    if(!c) {
      c = &out->items[out->count++];
      c->hop = ev->hop;
      c->name = ev->conn_name;
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
  return 0;
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
 * one carrying an NTLM token. */
static void evidence__decode_line(FILE *out, const char *line, size_t len)
{
  static const char *names[] = {"Authorization:", "WWW-Authenticate:"};
  char value[NTLM_MAX_MESSAGE * 2];
  char desc[512];
  size_t i, n;

  for(i = 0; i < 2; i++) {
    n = strlen(names[i]);
    if(len > n && !strncasecmp(line, names[i], n))
      break;
  }
  if(i == 2 || len - n >= sizeof(value))
    return;
  memcpy(value, line + n, len - n);
  value[len - n] = '\0';
  if(!strncasecmp(value + strspn(value, " "), "Basic", 5)) {
    if(i == 0)
      fprintf(out, "    ; Basic credentials, replaced with x by kbsim: "
                   "evidence never carries passwords\n");
    return;
  }
  if(ntlm_header_describe(value, strlen(value), desc, sizeof(desc)))
    fprintf(out, "    ; %s\n", desc);
}

/* Writes one direction's bytes line by line: CRLF shown as a line end,
 * other control bytes as \xNN, an NTLM decode after each auth header. */
static void evidence__write_block(FILE *out, enum kb_hop hop,
                                  enum kb_trace_kind kind,
                                  const struct kb_buf *b)
{
  size_t i = 0;
  bool last_blank = false;

  fprintf(out, "%s\n", evidence__direction(hop, kind));
  while(i < b->len) {
    size_t start = i, end;

    while(i < b->len && b->data[i] != '\n')
      i++;
    end = i;
    if(end > start && b->data[end - 1] == '\r')
      end--;
    last_blank = end == start;
    for(size_t k = start; k < end; k++) {
      unsigned char ch = (unsigned char)b->data[k];
      if(ch < 0x20 && ch != '\t')
        fprintf(out, "\\x%02x", ch);
      else
        fputc(ch, out);
    }
    if(i < b->len) {
      /* A bare LF inside a body is shown as a line end too; the pcap keeps
       * the exact bytes. */
      fputc('\n', out);
      i++;
    }
    else
      fputs("\n", out);
    evidence__decode_line(out, b->data + start, end - start);
  }
  /* One blank line between blocks: a block that ends with the blank line
   * closing its headers (a request without body) has it already. */
  if(!last_blank)
    fputc('\n', out);
}

int evidence_write_transcript(struct sim_recorder *rec, FILE *out)
{
  struct evidence_conns conns;
  struct kb_buf block;
  size_t i, j;
  int result = 0;

  kb_buf_init(&block, (size_t)64 << 20);
  pthread_mutex_lock(&rec->lock);
  if(evidence__group(rec, &conns)) {
    pthread_mutex_unlock(&rec->lock);
    errno = ENOMEM;
    return -1;
  }
  fprintf(out, "# kbsim transcript: %zu connections, client order\n\n",
          conns.count);
  for(i = 0; i < conns.count; i++) {
    const struct evidence_conn *c = &conns.items[i];
    enum kb_trace_kind dir = KB_TRACE_OPEN;

    fprintf(out, "=== %s: %s ===\n", c->name,
            c->hop == KB_HOP_CLIENT_PROXY ? "Communicator <-> ISA"
                                          : "ISA <-> Exchange");
    for(j = 0; j <= c->count; j++) {
      const struct sim_event *ev =
          j < c->count ? &rec->events[c->events[j]] : NULL;
      bool flush = block.len && (!ev || ev->kind != dir);

      if(flush) {
        evidence__write_block(out, c->hop, dir, &block);
        kb_buf_reset(&block);
      }
      if(!ev)
        break;
      if(ev->kind == KB_TRACE_OPEN)
        fprintf(out, "--- connection opened\n\n");
      else if(ev->kind == KB_TRACE_CLOSE)
        fprintf(out, "--- connection closed\n\n");
      else {
        dir = ev->kind;
        if(kb_buf_add(&block, ev->data, ev->len))
          result = -1;
      }
    }
  }
  pthread_mutex_unlock(&rec->lock);
  evidence__conns_free(&conns);
  kb_buf_free(&block);
  if(ferror(out) || result) {
    errno = errno ? errno : EIO;
    return -1;
  }
  return 0;
}

/* ---- pcap ------------------------------------------------------------- */

#define EV_TCP_FIN 0x01
#define EV_TCP_SYN 0x02
#define EV_TCP_PSH 0x08
#define EV_TCP_ACK 0x10
#define EV_MSS 1460

struct evidence_endpoint {
  uint8_t ip[4];
  uint16_t port;
  uint32_t seq;
};

struct evidence_pcap {
  pcap_dumper_t *dumper;
  int64_t usec;
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

/* Writes one IPv4/TCP segment from src to dst carrying len bytes, and
 * advances src's sequence number. */
static void evidence__segment(struct evidence_pcap *pc,
                              struct evidence_endpoint *src,
                              const struct evidence_endpoint *dst,
                              uint8_t flags, const uint8_t *data, size_t len)
{
  uint8_t pkt[40 + EV_MSS];
  uint8_t pseudo[12];
  struct pcap_pkthdr hdr;
  uint32_t sum = 0;
  size_t i;

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

  hdr.ts.tv_sec = (time_t)(pc->usec / 1000000);
  hdr.ts.tv_usec = (suseconds_t)(pc->usec % 1000000);
  hdr.caplen = hdr.len = (bpf_u_int32)(40 + len);
  pcap_dump((u_char *)pc->dumper, &hdr, pkt);
  pc->usec += 1000;
  src->seq += (uint32_t)len;
  if(flags & (EV_TCP_SYN | EV_TCP_FIN))
    src->seq++;
}

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

/* Picks stable synthetic endpoints for connection number index of c. */
static void evidence__endpoints(const struct evidence_conn *c, unsigned index,
                                struct evidence_endpoint *cli,
                                struct evidence_endpoint *srv)
{
  struct kb_conn_id name;
  unsigned id, conn;

  memset(cli, 0, sizeof(*cli));
  memset(srv, 0, sizeof(*srv));
  kb_conn_name_parse(c->name, &name); /* zeroed when it is no client's */
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

int evidence_write_pcap(struct sim_recorder *rec, const char *path,
                        int64_t base_ms, char *err, size_t errlen)
{
  struct evidence_conns conns = {0};
  struct evidence_pcap pc = {NULL, base_ms * 1000};
  pcap_t *dead = pcap_open_dead(DLT_RAW, 65535);
  size_t i, j;
  int result = -1;

  if(!dead) {
    snprintf(err, errlen, "pcap: cannot open a raw-IP capture handle");
    return -1;
  }
  pc.dumper = pcap_dump_open(dead, path);
  if(!pc.dumper) {
    snprintf(err, errlen, "--pcap %s: %s", path, pcap_geterr(dead));
    pcap_close(dead);
    return -1;
  }
  pthread_mutex_lock(&rec->lock);
  if(evidence__group(rec, &conns)) {
    pthread_mutex_unlock(&rec->lock);
    snprintf(err, errlen, "pcap: out of memory");
    goto done;
  }
  for(i = 0; i < conns.count; i++) {
    const struct evidence_conn *c = &conns.items[i];
    struct evidence_endpoint cli, srv;
    bool open = false;

    evidence__endpoints(c, (unsigned)i, &cli, &srv);
    for(j = 0; j < c->count; j++) {
      const struct sim_event *ev = &rec->events[c->events[j]];

      /* A stream whose open was not recorded still gets a handshake, so
       * tools can follow it. */
      if(!open && ev->kind != KB_TRACE_CLOSE) {
        evidence__segment(&pc, &cli, &srv, EV_TCP_SYN, NULL, 0);
        evidence__segment(&pc, &srv, &cli, EV_TCP_SYN | EV_TCP_ACK, NULL, 0);
        evidence__segment(&pc, &cli, &srv, EV_TCP_ACK, NULL, 0);
        open = true;
      }
      if(ev->kind == KB_TRACE_SEND)
        evidence__data(&pc, &cli, &srv, ev->data, ev->len);
      else if(ev->kind == KB_TRACE_RECV)
        evidence__data(&pc, &srv, &cli, ev->data, ev->len);
      else if(ev->kind == KB_TRACE_CLOSE && open) {
        evidence__segment(&pc, &cli, &srv, EV_TCP_FIN | EV_TCP_ACK, NULL, 0);
        evidence__segment(&pc, &srv, &cli, EV_TCP_FIN | EV_TCP_ACK, NULL, 0);
        evidence__segment(&pc, &cli, &srv, EV_TCP_ACK, NULL, 0);
        open = false;
      }
    }
  }
  pthread_mutex_unlock(&rec->lock);
  result = 0;

done:
  evidence__conns_free(&conns);
  if(pcap_dump_flush(pc.dumper) && !result) {
    snprintf(err, errlen, "--pcap %s: write failed: %s", path, strerror(errno));
    result = -1;
  }
  pcap_dump_close(pc.dumper);
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
    json_array_append_new(
        all,
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:I}", "hop",
                  ev->hop == KB_HOP_CLIENT_PROXY ? "client-proxy"
                                                 : "proxy-backend",
                  "observer", ev->origin, "connection", ev->conn_name, "method",
                  ev->method, "path", ev->path, "status", x->status,
                  "request_ntlm", kb_auth_name(x->req_auth), "response_ntlm",
                  kb_auth_name(x->resp_auth), "request_body_length",
                  (json_int_t)x->req_body_len, "response_body_length",
                  (json_int_t)x->resp_body_len));
  }
  free(idx);
  return all;
}

int evidence_write_json(struct sim_recorder *rec,
                        const struct evidence_run *run, const char *path,
                        char *err, size_t errlen)
{
  json_t *root, *clients = json_array();
  size_t i, j;
  int result = 0;

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
    json_array_append_new(clients,
                          json_pack("{s:i, s:s, s:o, s:o}", "id", (int)s->id,
                                    "error", s->error, "posts", posts, "view",
                                    evidence__view_json(&s->view)));
  }

  pthread_mutex_lock(&rec->lock);
  root = json_pack(
      "{s:s, s:{s:s, s:s, s:s, s:s}, s:s, s:I, s:i, s:i, s:s, s:o, s:o, "
      "s:{s:i, s:i, s:i, s:i, s:I, s:I}}",
      "kbsim", "1", "topology", "client", "Office Communicator 2007", "proxy",
      "ISA Server 2006 web listener (Integrated)", "backend",
      "Exchange 2007 EWS", "hops", "client-proxy, proxy-backend", "policy",
      run->policy, "seed", (json_int_t)run->seed, "clients", (int)run->clients,
      "ews_posts", (int)run->ews_posts, "ntlm", run->ntlm, "exchanges",
      evidence__exchanges_json(rec), "sessions", clients, "summary", "posts",
      (int)run->sessions->posts, "posts_ok", (int)run->sessions->posts_ok,
      "posts_failed", (int)run->sessions->posts_failed, "users_with_error",
      (int)run->sessions->users_with_error, "backend_empty_posts",
      (json_int_t)run->backend->empty_posts, "proxy_reauth_skipped",
      (json_int_t)run->proxy->reauth_skipped);
  pthread_mutex_unlock(&rec->lock);
  if(!root) {
    snprintf(err, errlen, "--json: could not build the report (out of memory)");
    return -1;
  }
  if(json_dump_file(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) {
    snprintf(err, errlen, "--json %s: cannot write: %s", path, strerror(errno));
    result = -1;
  }
  json_decref(root);
  return result;
}
