/*
 * rpc.c - Exchange's RPC proxy, /rpc/rpcproxy.dll, cut to what Outlook
 * Anywhere (client kind outlook-anywhere) needs to open its channels and
 * make a few calls: RPC over HTTP v2 (MS-RPCH) with the RPC server behind
 * it played by the proxy itself as an echo.
 *
 * A virtual connection is two requests on two connections that name it by
 * the same cookie: RPC_OUT_DATA, whose body is CONN/A1 (MS-RPCH 2.2.4.2),
 * is answered at once with a 200 announcing 1 GB whose body streams what
 * the virtual connection sends the client; RPC_IN_DATA, whose body is
 * never complete (its Content-Length is the channel's lifetime), is read
 * as it comes, PDU by PDU. Its CONN/B1 (2.2.4.5) makes the server send
 * CONN/A3 and CONN/C2 (2.2.4.4, 2.2.4.9) on OUT; each request PDU (MS-RPCE
 * 2.2.2.1) comes back on OUT as a response PDU with the same call_id and
 * stub. When the IN request ends (its connection closed), the virtual
 * connection ends and the OUT answer is cut: the connection closes.
 *
 * The OUT answer's reader suspends its connection while there is nothing
 * to send and is resumed when the IN side queues bytes (libmicrohttpd's
 * thread pool is never blocked). Virtual connections are kept in a list
 * under b->lock; each is held by the requests that name it.
 */
#include "backend_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "common/kb_http.h"

/* The OUT answer's announced length: the channel's lifetime (MS-RPCH
 * 3.2.3.5.2: the outbound proxy's default is 1 GB as well). */
#define BACKEND_RPC_OUT_LENGTH 1073741824ull
#define BACKEND_RPC_A1_LEN 76u
#define BACKEND_RPC_B1_LEN 104u
#define BACKEND_RPC_PTYPE_REQUEST 0u
#define BACKEND_RPC_PTYPE_RESPONSE 2u
#define BACKEND_RPC_PTYPE_RTS 20u
/* The longest PDU read from IN: past it the channel is closed. */
#define BACKEND_RPC_MAX_PDU 4096u

/* One virtual connection. */
struct backend_rpc_vc {
  uint8_t cookie[16];
  unsigned refs;    /* requests naming it */
  bool ended;       /* IN closed: OUT's answer is cut */
  bool out_waiting; /* OUT's reader suspended out_mc */
  struct MHD_Connection *out_mc;
  struct kb_buf down; /* bytes for OUT not yet read */
  size_t down_off;    /* ... of which read */
  struct backend_rpc_vc *next;
};

/* What an RPC request carries between calls of the access handler. */
struct backend_rpc_req {
  struct backend *b;
  struct backend_rpc_vc *vc;
  bool in;           /* RPC_IN_DATA */
  struct kb_buf pdu; /* IN: the PDU being read */
  bool broken;       /* IN: a PDU it could not read; the channel closes */
  uint64_t sent;     /* OUT: body bytes its answer gave libmicrohttpd */
};

static uint16_t backend_rpc_get16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

static void backend_rpc_put32(uint8_t *p, uint32_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* Writes an RTS PDU's header (MS-RPCH 2.2.3.6.1) for len bytes and
 * commands commands at p. */
static void backend_rpc_rts_header(uint8_t *p, uint16_t len, uint16_t commands)
{
  memset(p, 0, 20);
  p[0] = 5;
  p[2] = BACKEND_RPC_PTYPE_RTS;
  p[3] = 0x03;
  p[4] = 0x10;
  p[8] = (uint8_t)len;
  p[9] = (uint8_t)(len >> 8);
  p[18] = (uint8_t)commands;
}

/* Finds the virtual connection of cookie, or with create makes it, and
 * takes a reference. Returns NULL when there is none (or no memory).
 * Under b->lock. */
static struct backend_rpc_vc *
backend_rpc_vc_get(struct backend *b, const uint8_t *cookie, bool create)
{
  struct backend_rpc_vc *vc;

  for(vc = b->rpc_vcs; vc; vc = vc->next)
    if(!memcmp(vc->cookie, cookie, 16) && !vc->ended)
      break;
  if(!vc && create) {
    vc = calloc(1, sizeof(*vc));
    if(!vc)
      return NULL;
    memcpy(vc->cookie, cookie, 16);
    kb_buf_init(&vc->down, (size_t)1 << 20);
    vc->next = b->rpc_vcs;
    b->rpc_vcs = vc;
  }
  if(vc)
    vc->refs++;
  return vc;
}

/* Drops a reference to vc, freeing it with the last. Under b->lock. */
static void backend_rpc_vc_put(struct backend *b, struct backend_rpc_vc *vc)
{
  struct backend_rpc_vc **at;

  if(--vc->refs)
    return;
  for(at = &b->rpc_vcs; *at; at = &(*at)->next)
    if(*at == vc) {
      *at = vc->next;
      break;
    }
  kb_buf_free(&vc->down);
  free(vc);
}

/* Wakes OUT's reader when it waits. Under b->lock. */
static void backend_rpc_wake(struct backend_rpc_vc *vc)
{
  if(vc->out_waiting) {
    vc->out_waiting = false;
    MHD_resume_connection(vc->out_mc);
  }
}

/* Queues len bytes for OUT and wakes its reader; a virtual connection
 * that cannot hold them ends. Under b->lock. */
static void backend_rpc_down(struct backend_rpc_vc *vc, const void *data,
                             size_t len)
{
  if(kb_buf_add(&vc->down, data, len) != KB_BUF_OK)
    vc->ended = true;
  backend_rpc_wake(vc);
}

/* OUT's content reader: what the virtual connection queued, else the end
 * (the connection closes: the answer is cut short of its length) once it
 * has ended, else nothing for now, the connection suspended until
 * backend_rpc_wake. */
static ssize_t backend_rpc_read(void *cls, uint64_t pos, char *buf, size_t max)
{
  struct backend_rpc_req *rr = cls;
  struct backend *b = rr->b;
  struct backend_rpc_vc *vc = rr->vc;
  ssize_t n;
  (void)pos;

  pthread_mutex_lock(&b->lock);
  if(vc->down.len > vc->down_off) {
    size_t left = vc->down.len - vc->down_off;
    if(left > max)
      left = max;
    memcpy(buf, vc->down.data + vc->down_off, left);
    vc->down_off += left;
    if(vc->down_off == vc->down.len) {
      kb_buf_reset(&vc->down);
      vc->down_off = 0;
    }
    n = (ssize_t)left;
    rr->sent += left;
  }
  else if(vc->ended)
    n = MHD_CONTENT_READER_END_WITH_ERROR;
  else {
    vc->out_waiting = true;
    MHD_suspend_connection(vc->out_mc);
    n = 0;
  }
  pthread_mutex_unlock(&b->lock);
  return n;
}

/* Answers one whole PDU read from IN: CONN/B1 opens the virtual
 * connection it names (CONN/A3 and CONN/C2 on OUT), a request PDU is
 * echoed as a response, anything else is ignored. Under b->lock. */
static void backend_rpc_pdu(struct backend_rpc_req *rr, const uint8_t *p,
                            size_t len)
{
  if(p[2] == BACKEND_RPC_PTYPE_RTS && len == BACKEND_RPC_B1_LEN && !rr->vc) {
    uint8_t a3[28], c2[44];
    /* The virtual connection cookie: the second command's. */
    rr->vc = backend_rpc_vc_get(rr->b, p + 32, false);
    if(!rr->vc) {
      rr->broken = true;
      return;
    }
    /* CONN/A3: ConnectionTimeout 120000 ms. */
    backend_rpc_rts_header(a3, sizeof(a3), 1);
    backend_rpc_put32(a3 + 20, 2);
    backend_rpc_put32(a3 + 24, 120000);
    /* CONN/C2: Version 1, ReceiveWindowSize 65536, ConnectionTimeout. */
    backend_rpc_rts_header(c2, sizeof(c2), 3);
    backend_rpc_put32(c2 + 20, 6);
    backend_rpc_put32(c2 + 24, 1);
    backend_rpc_put32(c2 + 28, 0);
    backend_rpc_put32(c2 + 32, 65536);
    backend_rpc_put32(c2 + 36, 2);
    backend_rpc_put32(c2 + 40, 120000);
    backend_rpc_down(rr->vc, a3, sizeof(a3));
    backend_rpc_down(rr->vc, c2, sizeof(c2));
  }
  else if(p[2] == BACKEND_RPC_PTYPE_REQUEST && len >= 24 && rr->vc) {
    uint8_t echo[BACKEND_RPC_MAX_PDU];
    /* The response has the request's layout: alloc_hint, p_cont_id, then
     * cancel_count and a reserved byte where opnum was, then the stub. */
    memcpy(echo, p, len);
    echo[2] = BACKEND_RPC_PTYPE_RESPONSE;
    echo[22] = 0;
    echo[23] = 0;
    backend_rpc_down(rr->vc, echo, len);
  }
}

void backend__rpc_in_data(struct backend_req *req, const char *data, size_t len)
{
  struct backend_rpc_req *rr = req->rpc;
  struct backend *b;

  req->received += len;
  if(!rr || !rr->in || rr->broken)
    return;
  b = rr->b;
  pthread_mutex_lock(&b->lock);
  while(len && !rr->broken) {
    size_t have = rr->pdu.len;
    size_t want = 16;
    size_t take;
    if(have >= 16)
      want = backend_rpc_get16((const uint8_t *)rr->pdu.data + 8);
    if(want < 16 || want > BACKEND_RPC_MAX_PDU) {
      rr->broken = true;
      break;
    }
    take = want - have < len ? want - have : len;
    if(kb_buf_add(&rr->pdu, data, take) != KB_BUF_OK) {
      rr->broken = true;
      break;
    }
    data += take;
    len -= take;
    if(rr->pdu.len >= 16 &&
       rr->pdu.len == backend_rpc_get16((const uint8_t *)rr->pdu.data + 8)) {
      backend_rpc_pdu(rr, (const uint8_t *)rr->pdu.data, rr->pdu.len);
      kb_buf_reset(&rr->pdu);
    }
  }
  pthread_mutex_unlock(&b->lock);
}

int backend__rpc_begin(struct backend *b, struct backend_req *req,
                       const char *method)
{
  struct backend_rpc_req *rr = calloc(1, sizeof(*rr));
  if(!rr)
    return -1;
  rr->b = b;
  rr->in = !strcmp(method, "RPC_IN_DATA");
  kb_buf_init(&rr->pdu, BACKEND_RPC_MAX_PDU);
  req->rpc = rr;
  return 0;
}

enum MHD_Result backend__rpc_out_answer(struct backend *b,
                                        struct MHD_Connection *connection,
                                        struct backend_req *req)
{
  struct backend_rpc_req *rr = req->rpc;
  const uint8_t *a1 = (const uint8_t *)req->body.data;
  struct MHD_Response *response;
  char date[KB_HTTP_DATE_LEN];
  enum MHD_Result result = MHD_NO;

  /* CONN/A1: the virtual connection cookie is its second command's. */
  if(!rr || rr->in || req->body.len != BACKEND_RPC_A1_LEN || a1[2] != 20)
    return MHD_NO;
  pthread_mutex_lock(&b->lock);
  rr->vc = backend_rpc_vc_get(b, a1 + 32, true);
  if(rr->vc)
    rr->vc->out_mc = connection;
  pthread_mutex_unlock(&b->lock);
  if(!rr->vc)
    return MHD_NO;
  response = MHD_create_response_from_callback(BACKEND_RPC_OUT_LENGTH, 4096,
                                               backend_rpc_read, rr, NULL);
  if(!response)
    return MHD_NO;
  kb_http_date(kb_clock_now(&b->clock, req->conn_name), date);
  if(MHD_set_response_options(response, MHD_RF_SEND_KEEP_ALIVE_HEADER,
                              MHD_RO_END) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_DATE, date) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             "application/rpc") == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_SERVER,
                             "Microsoft-IIS/7.0") == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                             "private") == MHD_YES) {
    struct soap_reply reply;
    /* Counted now, so that a client that has its answer sees it counted;
     * traced when it ends, with what it sent (backend_rpc_ended). */
    soap_reply_init(&reply, req->conn_name);
    reply.status = MHD_HTTP_OK;
    reply.outcome = SOAP_OUT_RPC;
    backend__count(b, req, &reply);
    soap_reply_free(&reply);
    req->answered = true;
    result = MHD_queue_response(connection, MHD_HTTP_OK, response);
  }
  MHD_destroy_response(response);
  return result;
}

/* Traces a channel that ended, when its connection closes: a channel's
 * answer is never complete, so only then is it known what it carried.
 * RPC_IN_DATA is never answered (status 0): it is counted now and traced
 * with the body bytes it carried (before its virtual connection ends, so
 * before OUT closes); RPC_OUT_DATA, counted when it was answered, is
 * traced with its 200 and the body bytes its answer sent, not the 1 GB it
 * announced. */
static void backend_rpc_ended(struct backend *b, struct backend_req *req,
                              const struct backend_rpc_req *rr)
{
  struct soap_reply reply;
  struct kb_exchange exchange;

  soap_reply_init(&reply, req->conn_name);
  reply.status = rr->in ? 0 : MHD_HTTP_OK;
  reply.outcome = SOAP_OUT_RPC;
  if(rr->in) /* OUT was counted when it was answered */
    backend__count(b, req, &reply);
  soap_reply_free(&reply);
  memset(&exchange, 0, sizeof(exchange));
  exchange.method = rr->in ? "RPC_IN_DATA" : "RPC_OUT_DATA";
  exchange.path = "/rpc/rpcproxy.dll";
  exchange.req_auth = req->auth;
  exchange.req_body_len = req->received;
  exchange.status = (int)reply.status;
  exchange.resp_body_len = (size_t)rr->sent;
  backend__trace_req(b, req, &exchange, KB_NOTE_NONE, NULL);
}

void backend__rpc_end(struct backend_req *req)
{
  struct backend_rpc_req *rr = req->rpc;
  struct backend *b;

  if(!rr)
    return;
  b = rr->b;
  if(rr->in || req->answered)
    backend_rpc_ended(b, req, rr);
  pthread_mutex_lock(&b->lock);
  if(rr->vc) {
    if(rr->in) {
      /* The IN channel is gone: the virtual connection ends, and OUT's
       * answer with it (MS-RPCH 3.2.3.5.3: a channel's close closes the
       * virtual connection). */
      rr->vc->ended = true;
      backend_rpc_wake(rr->vc);
    }
    else
      rr->vc->out_waiting = false;
    backend_rpc_vc_put(b, rr->vc);
  }
  pthread_mutex_unlock(&b->lock);
  kb_buf_free(&rr->pdu);
  free(rr);
  req->rpc = NULL;
}

void backend__rpc_stop(struct backend *b)
{
  struct backend_rpc_vc *vc;

  pthread_mutex_lock(&b->lock);
  for(vc = b->rpc_vcs; vc; vc = vc->next) {
    vc->ended = true;
    backend_rpc_wake(vc);
  }
  pthread_mutex_unlock(&b->lock);
}
