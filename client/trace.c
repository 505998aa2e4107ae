/*
 * trace.c - what the client reports to its kb_trace (hop CLIENT_PROXY, side
 * CLIENT, origin "client <id>"): single events, and one EXCHANGE per HTTP
 * request, recorded from the header block libcurl sent and the response
 * its callbacks saw.
 */
#include "client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kb_auth.h"
#include "common/kb_wire.h"

/* Ranks what a WWW-Authenticate or Authorization header says, so that one
 * response offering several schemes is summed up by the one that matters
 * to NTLM: an NTLM message, then a bare "NTLM", then Negotiate, then
 * anything else. */
static int client_auth_rank(enum kb_auth a)
{
  switch(a) {
  case KB_AUTH_NTLM_NEGOTIATE:
  case KB_AUTH_NTLM_CHALLENGE:
  case KB_AUTH_NTLM_AUTHENTICATE:
    return 4;
  case KB_AUTH_NTLM_BARE:
    return 3;
  case KB_AUTH_NEGOTIATE_BARE:
  case KB_AUTH_SPNEGO:
    return 2;
  case KB_AUTH_OTHER:
    return 1;
  case KB_AUTH_NONE:
    break;
  }
  return 0;
}

/* Returns the name of the socket carrying connection conn, or NULL. */
static const char *client_conn_name(const struct client *c, uint64_t conn)
{
  size_t i;

  for(i = 0; conn && i < c->nsockets; i++)
    if(c->sockets[i].conn == conn)
      return c->sockets[i].name[0] ? c->sockets[i].name : NULL;
  return NULL;
}

void client__trace(const struct client *c, enum kb_trace_kind kind,
                   uint64_t conn, const void *data, size_t len)
{
  struct kb_trace_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.conn_name = client_conn_name(c, conn);
  ev.kind = kind;
  ev.hop = KB_HOP_CLIENT_PROXY;
  ev.side = KB_SIDE_CLIENT;
  ev.origin = c->origin;
  ev.conn = conn;
  ev.data = data;
  ev.len = len;
  kb_trace_emit(&c->trace, &ev);
}

void client__trace_exchange(const struct client *c, uint64_t conn,
                            const char *name, const struct kb_exchange *ex)
{
  struct kb_trace_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.kind = KB_TRACE_EXCHANGE;
  ev.hop = KB_HOP_CLIENT_PROXY;
  ev.side = KB_SIDE_CLIENT;
  ev.origin = c->origin;
  ev.conn = conn;
  ev.conn_name = name && name[0] ? name : NULL;
  ev.exchange = ex;
  kb_trace_emit(&c->trace, &ev);
}

void client__req_flush(struct client *c)
{
  struct client_req *r = &c->req;
  struct kb_exchange ex;
  if(r->sent) {
    memset(&ex, 0, sizeof(ex));
    ex.method = r->method;
    ex.path = r->path;
    ex.req_auth = r->req_auth;
    ex.req_body_len = r->req_body_len;
    ex.status = r->status;
    ex.resp_auth = r->resp_auth;
    ex.resp_body_len = r->resp_written ? r->resp_written : r->resp_data_in;
    client__trace_exchange(c, r->conn, r->conn_name, &ex);
    if(!r->status) {
      c->leg_unanswered++;
      c->leg_dead_conn = r->conn;
    }
    else if(!c->leg_first_status)
      c->leg_first_status = r->status;
  }
  memset(r, 0, sizeof(*r));
}

void client__req_start(struct client *c, const char *data, size_t len)
{
  struct client_req *r = &c->req;
  struct client_socket *sock;
  const char *v, *sp;
  size_t vlen, n;
  char num[32];

  client__req_flush(c);
  r->sent = true;
  r->conn = c->current_conn;
  memcpy(r->conn_name, c->current_name, sizeof(r->conn_name));
  /* "POST /EWS/Exchange.asmx HTTP/1.1" */
  sp = memchr(data, ' ', len);
  n = sp ? (size_t)(sp - data) : 0;
  snprintf(r->method, sizeof(r->method), "%.*s", (int)n, data);
  if(sp) {
    const char *p = sp + 1;
    const char *end = memchr(p, ' ', len - (size_t)(p - data));
    n = end ? (size_t)(end - p) : 0;
    snprintf(r->path, sizeof(r->path), "%.*s", (int)n, p);
  }
  v = kb_wire_field_first(data, len, "Authorization", &vlen);
  r->req_auth = v ? kb_auth_classify(v, vlen) : KB_AUTH_NONE;
  v = kb_wire_field_first(data, len, "Content-Length", &vlen);
  if(v && vlen < sizeof(num)) {
    memcpy(num, v, vlen);
    num[vlen] = '\0';
    r->req_body_len = (size_t)strtoull(num, NULL, 10);
  }
  c->leg_requests++;
  sock = client__socket_of(c, c->current_conn);
  if(sock)
    sock->requests++;
}

void client__req_response(struct client *c, int status)
{
  c->req.status = status;
  c->req.resp_auth = KB_AUTH_NONE;
  c->req.resp_written = 0;
  c->req.resp_data_in = 0;
}

void client__req_resp_auth(struct client *c, enum kb_auth seen)
{
  if(client_auth_rank(seen) > client_auth_rank(c->req.resp_auth))
    c->req.resp_auth = seen;
}
