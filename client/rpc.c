/*
 * rpc.c - Outlook Anywhere (client kind outlook-anywhere): RPC over HTTP
 * v2 (MS-RPCH) as Outlook 2007 opens it through a reverse proxy. Two
 * channels, each an HTTP request on a connection of its own that lives as
 * long as the session, run side by side in one libcurl multi handle: the
 * OUT channel (RPC_OUT_DATA, whose long answer carries what the server
 * sends) and the IN channel (RPC_IN_DATA, whose 1 GB body carries what the
 * client sends, written gradually through the read callback).
 *
 * Each channel is authenticated with NTLM on its own connection: a plain
 * request (Content-Length 0) is offered NTLM, the type 1 (Content-Length
 * 0) gets the type 2, the type 3 opens the channel with its announced
 * length and its first PDU: CONN/A1 on OUT (76 bytes, MS-RPCH 2.2.4.2),
 * CONN/B1 on IN (2.2.4.5). Exchange then sends CONN/A3 and CONN/C2 on OUT
 * (2.2.4.4, 2.2.4.9): the virtual connection is open. Each RPC call sends a
 * request PDU on IN and waits for the response PDU on OUT (MS-RPCE
 * 2.2.2.1; the server here only echoes it). The session ends with the
 * client closing IN; Exchange then closes OUT, so the last event of every
 * run is the same.
 */
#include "client_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/kb_auth.h"

/* The RPC proxy's URL: the RPC server and port after '?' (6004: Exchange
 * 2007's directory proxy, the first endpoint Outlook binds). */
#define CLIENT_RPC_PATH "/rpc/rpcproxy.dll"
#define CLIENT_RPC_QUERY "exchange.fabrikam.com:6004"
#define CLIENT_RPC_TARGET CLIENT_RPC_PATH "?" CLIENT_RPC_QUERY
/* The IN channel's Content-Length: its lifetime in bytes, which the
 * client announces and never sends whole (MS-RPCH 2.1.2.1.1 and 3.2.2.5.1:
 * Windows announces 1 GB). */
#define CLIENT_RPC_IN_LENGTH 1073741824u
/* The OUT channel's: exactly its CONN/A1 (MS-RPCH 2.1.2.1.2). */
#define CLIENT_RPC_A1_LEN 76u
#define CLIENT_RPC_B1_LEN 104u
/* PDU types (MS-RPCE 2.2.2.1, MS-RPCH 2.2.3.1). */
#define CLIENT_RPC_PTYPE_REQUEST 0u
#define CLIENT_RPC_PTYPE_RESPONSE 2u
#define CLIENT_RPC_PTYPE_RTS 20u
/* The stub of each request PDU: fixed, so the bytes repeat. */
#define CLIENT_RPC_STUB "kbsim echo"

/* One channel: its easy handle and what it has sent and received. */
struct client_rpc_chan {
  struct client *c;
  const char *method; /* "RPC_OUT_DATA", "RPC_IN_DATA" */
  CURL *easy;
  CURLU *url; /* the RPC proxy's, handed to easy */
  struct curl_slist *headers;
  bool added; /* in the multi handle */
  bool done;  /* its transfer ended (result) */
  CURLcode result;
  uint64_t conn;               /* the connection its request went on */
  char name[KB_CONN_NAME_LEN]; /* its name ("client 1 conn 2"), or "" */
  enum kb_auth req_auth;
  uint64_t req_len;      /* the announced Content-Length */
  bool traced;           /* its EXCHANGE is out */
  struct client_leg leg; /* status and challenge of the latest answer */
  bool head_done;        /* the final answer's header block is complete */
  size_t resp_bytes;     /* body bytes of that answer */
  struct kb_buf out;     /* body bytes to send */
  size_t out_off;        /* ... of which handed to libcurl */
  bool paused;           /* the read callback paused for want of bytes */
};

struct client_rpc {
  CURLM *multi;
  struct client_rpc_chan out, in;
  struct kb_buf down;  /* what OUT's 200 carried, PDU by PDU */
  size_t parsed;       /* bytes of down cut into PDUs */
  unsigned pdus;       /* whole PDUs received on OUT */
  uint8_t last_ptype;  /* of the latest one */
  uint32_t last_call;  /* its call_id */
  uint8_t cookies[64]; /* virtual connection, OUT, IN, association group */
  bool closed;         /* the channels are closed */
};

/* ---- PDUs (MS-RPCH 2.2.3, MS-RPCE 2.2.2) --------------------------------- */

static void client_rpc_put16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void client_rpc_put32(uint8_t *p, uint32_t v)
{
  client_rpc_put16(p, (uint16_t)v);
  client_rpc_put16(p + 2, (uint16_t)(v >> 16));
}

/* Writes the 16-byte common header of a PDU of ptype and len bytes:
 * version 5.0, first and last fragment, little-endian data
 * representation, no authentication. */
static void client_rpc_header(uint8_t *p, uint8_t ptype, uint16_t len,
                              uint32_t call_id)
{
  p[0] = 5;
  p[1] = 0;
  p[2] = ptype;
  p[3] = 0x03; /* PFC_FIRST_FRAG | PFC_LAST_FRAG */
  client_rpc_put32(p + 4, 0x10);
  client_rpc_put16(p + 8, len);
  client_rpc_put16(p + 10, 0);
  client_rpc_put32(p + 12, call_id);
}

/* Writes an RTS command of type with a 4-byte value at p; returns 8. */
static size_t client_rpc_cmd32(uint8_t *p, uint32_t type, uint32_t value)
{
  client_rpc_put32(p, type);
  client_rpc_put32(p + 4, value);
  return 8;
}

/* Writes an RTS command of type with a 16-byte cookie at p; returns 20. */
static size_t client_rpc_cmd_cookie(uint8_t *p, uint32_t type,
                                    const uint8_t *cookie)
{
  client_rpc_put32(p, type);
  memcpy(p + 4, cookie, 16);
  return 20;
}

/* CONN/A1 (MS-RPCH 2.2.4.2): Version 1, the virtual connection cookie,
 * the OUT channel cookie, ReceiveWindowSize 65536. 76 bytes at p. */
static void client_rpc_conn_a1(const struct client_rpc *r, uint8_t *p)
{
  size_t n = 20;
  client_rpc_header(p, CLIENT_RPC_PTYPE_RTS, CLIENT_RPC_A1_LEN, 0);
  client_rpc_put16(p + 16, 0); /* flags: RTS_FLAG_NONE */
  client_rpc_put16(p + 18, 4); /* commands */
  n += client_rpc_cmd32(p + n, 6, 1);
  n += client_rpc_cmd_cookie(p + n, 3, r->cookies);
  n += client_rpc_cmd_cookie(p + n, 3, r->cookies + 16);
  client_rpc_cmd32(p + n, 0, 65536);
}

/* CONN/B1 (MS-RPCH 2.2.4.5): Version 1, the virtual connection cookie,
 * the IN channel cookie, ChannelLifetime 1 GB, ClientKeepalive 300000 ms,
 * the association group id. 104 bytes at p. */
static void client_rpc_conn_b1(const struct client_rpc *r, uint8_t *p)
{
  size_t n = 20;
  client_rpc_header(p, CLIENT_RPC_PTYPE_RTS, CLIENT_RPC_B1_LEN, 0);
  client_rpc_put16(p + 16, 0);
  client_rpc_put16(p + 18, 6);
  n += client_rpc_cmd32(p + n, 6, 1);
  n += client_rpc_cmd_cookie(p + n, 3, r->cookies);
  n += client_rpc_cmd_cookie(p + n, 3, r->cookies + 32);
  n += client_rpc_cmd32(p + n, 4, CLIENT_RPC_IN_LENGTH);
  n += client_rpc_cmd32(p + n, 5, 300000);
  client_rpc_cmd_cookie(p + n, 12, r->cookies + 48);
}

/* A request PDU (MS-RPCE 2.2.2.1 and 12.6.4.9 of C706): call_id, context
 * 0, opnum 0 and CLIENT_RPC_STUB. Returns its length, written at p
 * (room for 64 bytes). */
static size_t client_rpc_request(uint8_t *p, uint32_t call_id)
{
  size_t stub = sizeof(CLIENT_RPC_STUB) - 1;
  size_t len = 24 + stub;
  client_rpc_header(p, CLIENT_RPC_PTYPE_REQUEST, (uint16_t)len, call_id);
  client_rpc_put32(p + 16, (uint32_t)stub); /* alloc_hint */
  client_rpc_put16(p + 20, 0);              /* p_cont_id */
  client_rpc_put16(p + 22, 0);              /* opnum */
  memcpy(p + 24, CLIENT_RPC_STUB, stub);
  return len;
}

/* Cuts what OUT carried into whole PDUs by their frag_length, counting
 * them and keeping the latest's type and call_id. */
static void client_rpc_cut(struct client_rpc *r)
{
  const uint8_t *d = (const uint8_t *)r->down.data;
  while(r->down.len - r->parsed >= 16) {
    const uint8_t *p = d + r->parsed;
    size_t len = (size_t)p[8] | (size_t)p[9] << 8;
    if(len < 16 || r->down.len - r->parsed < len)
      break;
    r->pdus++;
    r->last_ptype = p[2];
    r->last_call = (uint32_t)p[12] | (uint32_t)p[13] << 8 |
                   (uint32_t)p[14] << 16 | (uint32_t)p[15] << 24;
    r->parsed += len;
  }
}

/* ---- the channels' libcurl callbacks ------------------------------------- */

/* CURLOPT_PREREQFUNCTION: the channel's connection, numbered and named. */
static int client_rpc_prereq(void *clientp, char *primary_ip, char *local_ip,
                             int primary_port, int local_port)
{
  struct client_rpc_chan *ch = clientp;
  (void)primary_ip;
  (void)primary_port;
  ch->conn = client__conn_ready(ch->c, local_ip, local_port);
  snprintf(ch->name, sizeof(ch->name), "%s", ch->c->current_name);
  return CURL_PREREQFUNC_OK;
}

/* CURLOPT_DEBUGFUNCTION: the bytes the channel sent and received, as SEND
 * and RECV on its connection. */
static int client_rpc_debug(CURL *handle, curl_infotype type, char *data,
                            size_t size, void *userptr)
{
  struct client_rpc_chan *ch = userptr;
  (void)handle;
  if(type == CURLINFO_HEADER_OUT || type == CURLINFO_DATA_OUT)
    client__trace(ch->c, KB_TRACE_SEND, ch->conn, data, size);
  else if(type == CURLINFO_HEADER_IN || type == CURLINFO_DATA_IN)
    client__trace(ch->c, KB_TRACE_RECV, ch->conn, data, size);
  return 0;
}

/* Traces the channel's request as an EXCHANGE once, when its transfer
 * ends or is cut: its answer's status (0: none came) and the body bytes
 * that came, which for a channel's 200 are what it carried, not the 1 GB
 * it announced. */
static void client_rpc_exchange(struct client_rpc_chan *ch)
{
  struct kb_exchange ex;
  if(ch->traced)
    return;
  ch->traced = true;
  memset(&ex, 0, sizeof(ex));
  ex.method = ch->method;
  ex.path = CLIENT_RPC_TARGET;
  ex.req_auth = ch->req_auth;
  /* A cut transfer sent what was handed to libcurl, not its length. */
  ex.req_body_len = ch->done ? (size_t)ch->req_len : ch->out_off;
  ex.status = ch->head_done ? ch->leg.status : 0;
  ex.resp_auth = ch->leg.ntlm_value  ? KB_AUTH_NTLM_CHALLENGE
                 : ch->leg.ntlm_bare ? KB_AUTH_NTLM_BARE
                                     : KB_AUTH_NONE;
  ex.resp_body_len = ch->resp_bytes;
  client__trace_exchange(ch->c, ch->conn, ch->name, &ex);
}

/* CURLOPT_HEADERFUNCTION: the status, the WWW-Authenticate offers and the
 * Via of the channel's answer, read as every leg's are. */
static size_t client_rpc_header_cb(char *buffer, size_t size, size_t nitems,
                                   void *userdata)
{
  struct client_rpc_chan *ch = userdata;
  size_t len = size * nitems;
  enum kb_auth seen;

  if(len >= 12 && !memcmp(buffer, "HTTP/", 5)) {
    const char *sp = memchr(buffer, ' ', len);
    client__leg_reset_response(&ch->leg);
    ch->leg.status = sp && sp + 4 <= buffer + len ? atoi(sp + 1) : 0;
    ch->head_done = false;
    ch->resp_bytes = 0;
    return len;
  }
  if(len <= 2 && ch->leg.status >= 200) { /* the blank line */
    ch->head_done = true; /* traced when the transfer ends: see there */
    return len;
  }
  if(len > 4 && !strncasecmp(buffer, "Via:", 4))
    client__via(buffer + 4, len - 4, ch->leg.via, sizeof(ch->leg.via));
  else
    (void)client__leg_www_authenticate(&ch->leg, buffer, len, &seen);
  return len;
}

/* CURLOPT_WRITEFUNCTION: what OUT's 200 carries goes to the PDUs, capped
 * at CLIENT_MAX_BODY; any other answer's body is only counted. */
static size_t client_rpc_write(char *ptr, size_t size, size_t nmemb,
                               void *userdata)
{
  struct client_rpc_chan *ch = userdata;
  struct client_rpc *r = ch->c->rpc;
  size_t len = size * nmemb;

  ch->resp_bytes += len;
  if(ch != &r->out || ch->leg.status != 200)
    return len;
  if(kb_buf_add(&r->down, ptr, len) != KB_BUF_OK)
    return 0;
  client_rpc_cut(r);
  return len;
}

/* CURLOPT_READFUNCTION: the channel's body as it is queued; paused when
 * none is, until client_rpc_send queues more. */
static size_t client_rpc_read(char *buffer, size_t size, size_t nitems,
                              void *userdata)
{
  struct client_rpc_chan *ch = userdata;
  size_t room = size * nitems;
  size_t left = ch->out.len - ch->out_off;

  if(!left) {
    ch->paused = true;
    return CURL_READFUNC_PAUSE;
  }
  if(left > room)
    left = room;
  memcpy(buffer, ch->out.data + ch->out_off, left);
  ch->out_off += left;
  return left;
}

/* Queues len bytes on the channel's body and wakes the read callback. */
static int client_rpc_send(struct client_rpc_chan *ch, const void *data,
                           size_t len)
{
  if(kb_buf_add(&ch->out, data, len) != KB_BUF_OK)
    return -1;
  if(ch->paused && ch->added) {
    ch->paused = false;
    curl_easy_pause(ch->easy, CURLPAUSE_CONT);
  }
  return 0;
}

/* ---- driving the channels ------------------------------------------------ */

/* Takes a channel's handle out of the multi handle: a transfer still
 * running is cut and its connection closed (traced CLOSE), an ended one
 * leaves its connection in the cache for the channel's next leg. */
static void client_rpc_remove(struct client_rpc *r, struct client_rpc_chan *ch)
{
  if(!ch->added)
    return;
  client_rpc_exchange(ch); /* before a cut transfer's CLOSE */
  curl_multi_remove_handle(r->multi, ch->easy);
  ch->added = false;
}

/* What a wait waits for. */
enum client_rpc_until {
  CLIENT_RPC_UNTIL_DONE = 0, /* the channel's transfer ended */
  CLIENT_RPC_UNTIL_HEAD,     /* ... or its answer's head is complete */
  CLIENT_RPC_UNTIL_PDUS      /* OUT carried pdus PDUs, or a channel ended */
};

/* Drives both channels until what until names (for ch, or pdus PDUs on
 * OUT) or c->timeout_ms of real time has passed. Returns 0, or -1 on the
 * timeout or a multi handle error. */
static int client_rpc_wait(struct client *c, struct client_rpc_chan *ch,
                           enum client_rpc_until until, unsigned pdus)
{
  struct client_rpc *r = c->rpc;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);

  for(;;) {
    int left = 0;
    CURLMsg *msg;
    if(client__multi_perform(r->multi) != CURLM_OK)
      return -1;
    while((msg = curl_multi_info_read(r->multi, &left))) {
      struct client_rpc_chan *done =
          msg->easy_handle == r->out.easy ? &r->out : &r->in;
      if(msg->msg != CURLMSG_DONE)
        continue;
      done->done = true;
      done->result = msg->data.result;
      client_rpc_remove(r, done);
    }
    if(ch->done || (until == CLIENT_RPC_UNTIL_HEAD && ch->head_done) ||
       (until == CLIENT_RPC_UNTIL_PDUS &&
        (r->pdus >= pdus || r->out.done || r->in.done)))
      return 0;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
       c->timeout_ms)
      return -1;
    if(client__multi_poll(r->multi, 100) != CURLM_OK)
      return -1;
  }
}

/* Starts one leg of a channel: its request with auth (NULL: none) and the
 * announced length len; the body comes from ch->out. Returns 0 or -1. */
static int client_rpc_leg(struct client *c, struct client_rpc_chan *ch,
                          const char *auth, enum kb_auth kind, uint64_t len)
{
  curl_slist_free_all(ch->headers);
  ch->headers = client__headers(c, false, auth, len);
  client__leg_reset_response(&ch->leg);
  ch->leg.status = 0;
  ch->head_done = false;
  ch->traced = false;
  ch->done = false;
  ch->resp_bytes = 0;
  ch->req_auth = kind;
  ch->req_len = len;
  ch->paused = false;
  kb_buf_reset(&ch->out);
  ch->out_off = 0;
  if(!ch->headers ||
     curl_easy_setopt(ch->easy, CURLOPT_HTTPHEADER, ch->headers) ||
     curl_easy_setopt(ch->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) ||
     curl_multi_add_handle(c->rpc->multi, ch->easy) != CURLM_OK)
    return -1;
  ch->added = true;
  return 0;
}

/* Sets up a channel's easy handle for method, a copy of the client's (its
 * sockets, timeouts and the Communicator options) with the channel's own
 * callbacks, no overall timeout (a channel lives as long as the session),
 * and the RPC proxy's URL, the RPC server in its query as is. Returns 0
 * or -1. */
static int client_rpc_chan_init(struct client *c, struct client_rpc_chan *ch,
                                const char *method)
{
  CURL *e;
  CURLU *u;
  int result = -1;

  ch->c = c;
  ch->method = method;
  client__leg_init(&ch->leg);
  kb_buf_init(&ch->out, CLIENT_MAX_BODY);
  e = ch->easy = c->easy ? curl_easy_duphandle(c->easy) : NULL;
  u = curl_url_dup(c->base);
  if(e && u &&
     curl_url_set(u, CURLUPART_PATH, CLIENT_RPC_PATH, 0) == CURLUE_OK &&
     curl_url_set(u, CURLUPART_QUERY, CLIENT_RPC_QUERY, 0) == CURLUE_OK &&
     curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
     !curl_easy_setopt(e, CURLOPT_CURLU, u) &&
     !curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L) &&
     !curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL) &&
     !curl_easy_setopt(e, CURLOPT_POST, 1L) &&
     !curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) &&
     !curl_easy_setopt(e, CURLOPT_READFUNCTION, client_rpc_read) &&
     !curl_easy_setopt(e, CURLOPT_READDATA, ch) &&
     !curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, client_rpc_prereq) &&
     !curl_easy_setopt(e, CURLOPT_PREREQDATA, ch) &&
     !curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, client_rpc_debug) &&
     !curl_easy_setopt(e, CURLOPT_DEBUGDATA, ch) &&
     !curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, client_rpc_header_cb) &&
     !curl_easy_setopt(e, CURLOPT_HEADERDATA, ch) &&
     !curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, client_rpc_write) &&
     !curl_easy_setopt(e, CURLOPT_WRITEDATA, ch))
    result = 0;
  ch->url = u;
  return result;
}

/* Creates c->rpc: the multi handle, both channels and the cookies, drawn
 * as "client/<id>/rpc/cookies". Returns 0 or -1. */
static int client_rpc_init(struct client *c)
{
  char label[64];
  struct client_rpc *r = calloc(1, sizeof(*r));
  if(!r)
    return -1;
  c->rpc = r;
  kb_buf_init(&r->down, CLIENT_MAX_BODY);
  snprintf(label, sizeof(label), "client/%u/rpc/cookies", c->id);
  kb_rng_fill(&c->rng, label, r->cookies, sizeof(r->cookies));
  r->multi = client__multi_new();
  if(!r->multi || client_rpc_chan_init(c, &r->out, "RPC_OUT_DATA") ||
     client_rpc_chan_init(c, &r->in, "RPC_IN_DATA"))
    return -1;
  return 0;
}

/* ---- the session's steps ------------------------------------------------- */

/* Describes a channel's leg that ended badly in res. Returns the outcome. */
static enum client_outcome client_rpc_failed(struct client *c,
                                             const struct client_rpc_chan *ch,
                                             const char *leg,
                                             struct client_post_result *res)
{
  int status = ch->leg.status;
  res->final_status = status;
  if(!ch->done || ch->result != CURLE_OK) {
    const char *why = !ch->done      ? "no answer in time"
                      : c->errbuf[0] ? c->errbuf
                                     : curl_easy_strerror(ch->result);
    res->harness_failed = !ch->done || ch->result == CURLE_COULDNT_CONNECT;
    client__detail(res, "%s %s: %.100s", ch->method, leg, why);
    return CLIENT_TRANSPORT_ERROR;
  }
  if(status == 401) {
    client__detail(res,
                   "%s: 401 to the %s: the channel died and Outlook asks "
                   "for the password again (wrong password, or a listener "
                   "that split the handshake)",
                   ch->method, leg);
    return CLIENT_AUTH_FAILED;
  }
  if(status >= 500 && status <= 599) {
    client__detail(res, "%s: HTTP %d to the %s", ch->method, status, leg);
    return CLIENT_SERVER_ERROR;
  }
  client__detail(res, "%s: unexpected HTTP %d to the %s", ch->method, status,
                 leg);
  return CLIENT_PROTOCOL_ERROR;
}

/* Authenticates one channel on its connection and opens it: the plain
 * request, the type 1, then the type 3 announcing len with first (flen
 * bytes) as the first bytes of its body. On success the type 3's
 * transfer runs on; OUT has its 200's head, IN its first PDU queued.
 * Returns the outcome, res filled on failure. */
static enum client_outcome client_rpc_open(struct client *c,
                                           struct client_rpc_chan *ch,
                                           uint64_t len, const uint8_t *first,
                                           size_t flen,
                                           struct client_post_result *res)
{
  enum client_outcome result = CLIENT_TRANSPORT_ERROR;
  struct ntlm_bytes type1 = {NULL, 0};
  char *auth = NULL;

  if(client_rpc_leg(c, ch, NULL, KB_AUTH_NONE, 0) ||
     client_rpc_wait(c, ch, CLIENT_RPC_UNTIL_DONE, 0) || ch->result ||
     ch->leg.status != 401 || !(ch->leg.ntlm_bare || ch->leg.ntlm_value)) {
    if(!res->leg1_status)
      res->leg1_status = ch->leg.status;
    result = client_rpc_failed(c, ch, "plain request", res);
    if(result == CLIENT_AUTH_FAILED)
      client__detail(res,
                     "%s: HTTP 401 without NTLM offered: the listener "
                     "must accept Integrated credentials",
                     ch->method);
    goto out;
  }
  res->legs++;
  res->connection = ch->conn;
  if(!res->leg1_status)
    res->leg1_status = ch->leg.status;
  if(ntlm_client_negotiate(ntlm_client_flags(c->ntlm_kind), &type1) !=
         NTLM_OK ||
     !(auth = ntlm_header_format(NTLM_SCHEME_NTLM, type1.data, type1.len))) {
    client__detail(res, "out of memory building the type 1");
    goto out;
  }
  if(client_rpc_leg(c, ch, auth, KB_AUTH_NTLM_NEGOTIATE, 0) ||
     client_rpc_wait(c, ch, CLIENT_RPC_UNTIL_DONE, 0) || ch->result ||
     ch->leg.status != 401 || !ch->leg.ntlm_value) {
    result = client_rpc_failed(c, ch, "type 1", res);
    goto out;
  }
  res->legs++;
  free(auth);
  auth = NULL;
  result = client__ntlm_answer(c, res, &type1, &ch->leg, &auth);
  if(result != CLIENT_OK)
    goto out;
  if(client_rpc_leg(c, ch, auth, KB_AUTH_NTLM_AUTHENTICATE, len) ||
     client_rpc_send(ch, first, flen)) {
    client__detail(res, "out of memory starting the %s channel", ch->method);
    result = CLIENT_TRANSPORT_ERROR;
    goto out;
  }
  res->legs++;
  result = CLIENT_OK;
out:
  if(auth)
    explicit_bzero(auth, strlen(auth));
  free(auth);
  ntlm_bytes_free(&type1);
  return result;
}

/* Step 0: opens OUT, then IN, and waits for CONN/A3 and CONN/C2 on OUT. */
static enum client_outcome client_rpc_channels(struct client *c,
                                               struct client_post_result *res)
{
  struct client_rpc *r = c->rpc;
  enum client_outcome result;
  uint8_t a1[CLIENT_RPC_A1_LEN], b1[CLIENT_RPC_B1_LEN];

  client_rpc_conn_a1(r, a1);
  client_rpc_conn_b1(r, b1);
  result = client_rpc_open(c, &r->out, CLIENT_RPC_A1_LEN, a1, sizeof(a1), res);
  if(result != CLIENT_OK)
    return result;
  /* MS-RPCH 3.2.2.4.1.1: the OUT channel's 200 comes before anything on
   * it; the IN channel opens once it has (FreeRDP waits the same way). */
  if(client_rpc_wait(c, &r->out, CLIENT_RPC_UNTIL_HEAD, 0) ||
     r->out.leg.status != 200) {
    if(!r->out.done && r->out.head_done)
      client_rpc_wait(c, &r->out, CLIENT_RPC_UNTIL_DONE, 0);
    return client_rpc_failed(c, &r->out, "type 3", res);
  }
  res->final_status = 200;
  result =
      client_rpc_open(c, &r->in, CLIENT_RPC_IN_LENGTH, b1, sizeof(b1), res);
  if(result != CLIENT_OK)
    return result;
  if(client_rpc_wait(c, &r->in, CLIENT_RPC_UNTIL_PDUS, 2) || r->in.done)
    return client_rpc_failed(c, &r->in, "type 3", res);
  if(r->out.done || r->pdus < 2 || r->last_ptype != CLIENT_RPC_PTYPE_RTS) {
    client__detail(res,
                   "RPC_OUT_DATA: no CONN/A3 and CONN/C2 from the "
                   "server (%u PDUs)",
                   r->pdus);
    return CLIENT_PROTOCOL_ERROR;
  }
  res->connection = r->out.conn; /* the channel the answers come on */
  /* Who passed the channels on (the Via of OUT's 200). */
  memcpy(res->served_by, r->out.leg.via, sizeof(res->served_by));
  return CLIENT_OK;
}

/* Step n: a request PDU with call_id n on IN, its response awaited on OUT. */
static enum client_outcome client_rpc_call(struct client *c,
                                           struct client_post_result *res)
{
  struct client_rpc *r = c->rpc;
  uint8_t pdu[64];
  size_t len = client_rpc_request(pdu, res->index);
  unsigned want = r->pdus + 1;

  res->legs = 1;
  res->connection = r->in.conn;
  if(client_rpc_send(&r->in, pdu, len)) {
    client__detail(res, "out of memory queueing RPC call %u", res->index);
    return CLIENT_TRANSPORT_ERROR;
  }
  if(client_rpc_wait(c, &r->in, CLIENT_RPC_UNTIL_PDUS, want) ||
     r->pdus < want) {
    client__detail(
        res, "RPC call %u: no response on RPC_OUT_DATA (%s)", res->index,
        r->out.done || r->in.done ? "a channel closed" : "none in time");
    return CLIENT_TRANSPORT_ERROR;
  }
  /* A call has no HTTP status of its own: it rides on the channels' 200,
   * through whoever passed them on. */
  res->leg1_status = 200;
  memcpy(res->served_by, r->out.leg.via, sizeof(res->served_by));
  if(r->last_ptype != CLIENT_RPC_PTYPE_RESPONSE || r->last_call != res->index) {
    client__detail(res,
                   "RPC call %u: the server answered PDU type %u for "
                   "call %" PRIu32,
                   res->index, r->last_ptype, r->last_call);
    return CLIENT_PROTOCOL_ERROR;
  }
  res->final_status = 200;
  return CLIENT_OK;
}

/* Ends the session: the client closes IN (its transfer cut, its
 * connection closed); Exchange then ends the virtual connection and closes
 * OUT, which the client waits for, so the last events of a run are always
 * the same. */
static void client_rpc_close(struct client *c)
{
  struct client_rpc *r = c->rpc;
  if(!r || r->closed)
    return;
  r->closed = true;
  if(r->in.added) {
    kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                  r->in.conn, KB_NOTE_NONE,
                  "closing RPC_IN_DATA on connection %" PRIu64 " after %" PRIu64
                  " of its announced %u bytes: the session is over",
                  r->in.conn, (uint64_t)r->in.out_off, CLIENT_RPC_IN_LENGTH);
    client_rpc_remove(r, &r->in);
  }
  if(r->out.added && !r->out.done)
    (void)client_rpc_wait(c, &r->out, CLIENT_RPC_UNTIL_DONE, 0);
  client_rpc_remove(r, &r->out);
}

void client__rpc_step(struct client *c, struct client_post_result *res)
{
  enum client_outcome result;
  bool first = !c->rpc;

  if(first && client_rpc_init(c)) {
    client__detail(res, "out of memory setting up the RPC channels");
    res->outcome = CLIENT_TRANSPORT_ERROR;
    res->harness_failed = true;
    return;
  }
  c->errbuf[0] = '\0';
  if(c->rpc->closed)
    result = CLIENT_TRANSPORT_ERROR;
  else if(res->kind == CLIENT_POST_RPC_CHANNELS)
    result = client_rpc_channels(c, res);
  else
    result = client_rpc_call(c, res);
  res->outcome = result;
  if(result != CLIENT_OK || res->index + 1 >= c->lead + c->ews_posts)
    client_rpc_close(c);
}

/* Frees a channel's handle and buffers. */
static void client_rpc_chan_free(struct client_rpc *r,
                                 struct client_rpc_chan *ch)
{
  if(ch->easy) {
    if(ch->added)
      curl_multi_remove_handle(r->multi, ch->easy);
    curl_easy_cleanup(ch->easy);
  }
  curl_url_cleanup(ch->url);
  curl_slist_free_all(ch->headers);
  client__leg_free(&ch->leg);
  kb_buf_free(&ch->out);
}

void client__rpc_free(struct client *c)
{
  struct client_rpc *r = c->rpc;
  if(!r)
    return;
  client_rpc_chan_free(r, &r->in);
  client_rpc_chan_free(r, &r->out);
  /* Closes what the cache kept, through client_close_socket. */
  if(r->multi)
    curl_multi_cleanup(r->multi);
  kb_buf_free(&r->down);
  free(r);
  c->rpc = NULL;
}
