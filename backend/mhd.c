/*
 * mhd.c - the backend's libmicrohttpd glue: the daemon, its connection
 * and request notifications, request bodies, and answers sent with IIS's
 * headers, counted (counters.c) and traced before they are queued.
 *
 * Each TCP connection gets a struct backend_conn (its trace id, guard slot
 * and authentication context) in MHD's socket context; each request gets a
 * struct backend_req in MHD's request context, holding the body in a capped
 * kb_buf. When the body is complete the request is answered in one go: the
 * gate's verdict (gate.c), the reply (soap.h), count it, trace it, queue
 * it. Handlers never block.
 */
#include "backend_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/kb_guard.h"
#include "common/kb_http.h"

#define BACKEND_EWS_PATH "/EWS/Exchange.asmx"
#define BACKEND_AUTODISCOVER_PATH "/autodiscover/autodiscover.xml"
#define BACKEND_WSDL_PATH "/EWS/Services.wsdl"
#define BACKEND_STATUS_PATH "/kbsim/status"
#define BACKEND_RPC_PATH "/rpc/rpcproxy.dll"

static const char backend_html_404[] =
    "<html><head><title>404 - File or directory not found.</title></head>"
    "<body><h2>404 - File or directory not found.</h2><p>The resource you "
    "are looking for might have been removed, had its name changed, or is "
    "temporarily unavailable.</p></body></html>";
/* The service description EWS serves at /EWS/Services.wsdl, cut to its
 * service element: the page a browser in the EWS folder GETs (client kind
 * ie). */
static const char backend_wsdl[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<wsdl:definitions xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\" "
    "xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\" "
    "targetNamespace=\"http://schemas.microsoft.com/exchange/services/2006/"
    "messages\"><wsdl:service name=\"ExchangeServices\"><wsdl:port "
    "name=\"ExchangeServicePort\" binding=\"tns:ExchangeServiceBinding\">"
    "<soap:address location=\"/EWS/Exchange.asmx\"/></wsdl:port>"
    "</wsdl:service></wsdl:definitions>\n";
static const char backend_html_405[] =
    "<html><head><title>405 - HTTP verb used to access this page is not "
    "allowed.</title></head><body><h2>405 - HTTP verb used to access this "
    "page is not allowed.</h2><p>The page you are looking for cannot be "
    "displayed because an invalid method (HTTP verb) was used.</p></body>"
    "</html>";
static const char backend_html_401[] =
    "<html><head><title>401 - Unauthorized: Access is denied due to invalid "
    "credentials.</title></head><body><h2>401 - Unauthorized: Access is "
    "denied due to invalid credentials.</h2><p>You do not have permission "
    "to view this directory or page using the credentials that you "
    "supplied.</p></body></html>";
static const char backend_html_413[] =
    "<html><head><title>413 - Request Entity Too Large</title></head>"
    "<body><h2>413 - Request Entity Too Large</h2><p>The request body is "
    "larger than this server accepts.</p></body></html>";

/* MHD's per-TCP-connection socket context: created when the connection
 * opens, freed when it closes. */
struct backend_conn {
  uint64_t id;
  struct kb_guard_slot *slot;
  char name[96]; /* the name the peer claimed (kb_names), or "" */
  bool named;    /* name resolved and OPEN traced (first request) */
  /* Its first request read GET /kbsim/status: an observer, neither
   * counted, recorded nor traced (backend__conn_status_reader). */
  bool status_reader;
  struct backend_auth_ctx auth; /* who the connection is (gate.h) */
};

/* Adds the gate's WWW-Authenticate headers to a 401: the type 2 alone,
 * or IIS's offer (Negotiate, then NTLM). Returns false when MHD refused
 * one. */
static bool backend_offer(struct MHD_Response *response,
                          const struct backend_gate_answer *gate)
{
  if(gate->gate == BACKEND_GATE_CHALLENGE)
    return MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                   gate->www_authenticate) == MHD_YES;
  if(gate->gate == BACKEND_GATE_REFUSE)
    return MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                   "Negotiate") == MHD_YES &&
           MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                   "NTLM") == MHD_YES;
  return true;
}

/* Answers GET /kbsim/status with the status document. Not counted. */
static enum MHD_Result backend_send_status(struct backend *b,
                                           struct MHD_Connection *connection)
{
  char *json = backend_status_json(b);
  struct MHD_Response *response;
  enum MHD_Result result = MHD_NO;

  if(!json)
    return MHD_NO;
  response = MHD_create_response_from_buffer(strlen(json), json,
                                             MHD_RESPMEM_MUST_FREE);
  if(!response) {
    free(json);
    return MHD_NO;
  }
  if(MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             "application/json") == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                             "no-store") == MHD_YES)
    result = MHD_queue_response(connection, MHD_HTTP_OK, response);
  MHD_destroy_response(response);
  return result;
}

/* Hands reply to libmicrohttpd with the IIS headers in the support case's
 * order, after counting and tracing it (so a client that has its response
 * always sees it counted). Returns MHD_YES, or MHD_NO when libmicrohttpd
 * could not take it (it then closes the connection). reply stays owned by
 * the caller. */
static enum MHD_Result backend_send(struct backend *b,
                                    struct MHD_Connection *connection,
                                    struct backend_req *req, const char *method,
                                    const char *url,
                                    const struct soap_reply *reply)
{
  struct MHD_Response *response;
  char date[KB_HTTP_DATE_LEN];
  struct kb_exchange exchange;
  enum MHD_Result result = MHD_NO;

  response = MHD_create_response_from_buffer(
      reply->body.len, reply->body.data ? reply->body.data : (char *)"",
      MHD_RESPMEM_MUST_COPY);
  if(!response) {
    return MHD_NO;
  }
  kb_http_date(kb_clock_now(&b->clock, reply->who), date);
  /* IIS answers "Connection: Keep-Alive". libmicrohttpd strips a
   * Keep-Alive set by the application and writes its own Connection header
   * (first); this flag makes it say Keep-Alive to HTTP/1.1 clients too. */
  if(MHD_set_response_options(response, MHD_RF_SEND_KEEP_ALIVE_HEADER,
                              MHD_RO_END) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_DATE, date) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             reply->content_type) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_SERVER,
                             "Microsoft-IIS/7.0") == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                             "private") == MHD_YES &&
     (!reply->allow_post ||
      MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "POST") ==
          MHD_YES) &&
     backend_offer(response, &req->gate) &&
     MHD_add_response_header(response, "X-AspNet-Version", "2.0.50727") ==
         MHD_YES &&
     MHD_add_response_header(response, "X-Powered-By", "ASP.NET") == MHD_YES) {
    backend__count(b, req, reply);
    if(req->gate.channel_binding_refused) /* why a right password got a 401 */
      backend__trace_req(b, req, NULL, KB_NOTE_CHANNEL_BINDING, req->gate.why);

    memset(&exchange, 0, sizeof(exchange));
    exchange.method = method;
    exchange.path = url;
    exchange.req_auth = req->auth;
    exchange.req_body_len = req->received;
    exchange.status = (int)reply->status;
    exchange.resp_auth = KB_AUTH_NONE;
    exchange.resp_body_len = reply->body.len;
    backend__trace_req(b, req, &exchange, KB_NOTE_NONE, NULL);

    req->answered = true;
    result = MHD_queue_response(connection, reply->status, response);
  }
  MHD_destroy_response(response);
  return result;
}

/* Builds the reply for a request whose body is complete (or refused) and
 * sends it. Returns what backend_send returns, or MHD_NO when out of
 * memory. */
static enum MHD_Result backend_answer(struct backend *b,
                                      struct MHD_Connection *connection,
                                      struct backend_req *req,
                                      const char *method, const char *url)
{
  struct soap_reply reply;
  enum soap_result built;
  enum MHD_Result result = MHD_NO;

  if(req->route == BACKEND_ROUTE_STATUS) {
    req->answered = true;
    return backend_send_status(b, connection);
  }
  soap_reply_init(&reply, req->conn_name);
  if(req->gate.gate != BACKEND_GATE_PASS) {
    built = soap_page(&reply, MHD_HTTP_UNAUTHORIZED, SOAP_OUT_UNAUTHORIZED,
                      backend_html_401);
  }
  else if(req->route == BACKEND_ROUTE_NOT_FOUND) {
    built = soap_page(&reply, MHD_HTTP_NOT_FOUND, SOAP_OUT_NOT_FOUND,
                      backend_html_404);
  }
  else if(req->route == BACKEND_ROUTE_WSDL) {
    built = soap_page(&reply, MHD_HTTP_OK, SOAP_OUT_WSDL, backend_wsdl);
    reply.content_type = SOAP_CT_XML;
  }
  else if(req->route == BACKEND_ROUTE_BAD_METHOD) {
    reply.allow_post = true;
    built = soap_page(&reply, MHD_HTTP_METHOD_NOT_ALLOWED, SOAP_OUT_BAD_METHOD,
                      backend_html_405);
  }
  else if(req->body_state == BACKEND_BODY_TOO_LARGE) {
    built = soap_page(&reply, MHD_HTTP_CONTENT_TOO_LARGE, SOAP_OUT_TOO_LARGE,
                      backend_html_413);
  }
  else if(req->body_state == BACKEND_BODY_NOMEM) {
    built = soap_fault(&reply, SOAP_FAULT_RECEIVER,
                       "The server ran out of memory reading the request; "
                       "retry later.");
  }
  else if(req->route == BACKEND_ROUTE_AUTODISCOVER) {
    built = soap_autodiscover(&b->soap, req->body.data, req->body.len, &reply);
  }
  else {
    built = soap_ews(&b->soap, req->body.data, req->body.len, &reply);
  }
  if(built == SOAP_OK) {
    result = backend_send(b, connection, req, method, url, &reply);
  }
  soap_reply_free(&reply);
  return result;
}

/* Returns true when the request declares a Content-Length above max. */
static bool backend_declared_too_big(struct MHD_Connection *connection,
                                     size_t max)
{
  const char *value = MHD_lookup_connection_value(
      connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long declared;
  char *end;

  if(!value) {
    return false;
  }
  errno = 0;
  declared = strtoull(value, &end, 10);
  return errno == ERANGE || (end != value && declared > max);
}

void backend__trace_req(const struct backend *b, const struct backend_req *req,
                        const struct kb_exchange *exchange, enum kb_note note,
                        const char *text)
{
  struct kb_trace_event ev;

  memset(&ev, 0, sizeof(ev));
  ev.kind = exchange ? KB_TRACE_EXCHANGE : KB_TRACE_NOTE;
  ev.hop = KB_HOP_PROXY_BACKEND;
  ev.side = KB_SIDE_SERVER;
  ev.origin = BACKEND_ORIGIN;
  ev.conn = req->conn;
  ev.conn_name = req->conn_name;
  ev.exchange = exchange;
  ev.note = note;
  ev.text = text;
  kb_trace_emit(&b->trace, &ev);
}

/* Emits an OPEN or CLOSE trace event for connection id (named name). */
static void backend_trace_conn(const struct backend *b, enum kb_trace_kind kind,
                               uint64_t id, const char *name)
{
  struct kb_trace_event ev;

  memset(&ev, 0, sizeof(ev));
  ev.kind = kind;
  ev.hop = KB_HOP_PROXY_BACKEND;
  ev.side = KB_SIDE_SERVER;
  ev.origin = BACKEND_ORIGIN;
  ev.conn = id;
  ev.conn_name = name && *name ? name : NULL;
  kb_trace_emit(&b->trace, &ev);
}

/* Copies the name the peer of connection claimed for its port into name,
 * or leaves it empty. */
static void backend_resolve_peer(const struct backend *b,
                                 struct MHD_Connection *connection, char *name,
                                 size_t len)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

  kb_names_resolve_addr(&b->names, info ? info->client_addr : NULL, b->port,
                        name, len);
}

/* Returns true when the peer of connection is on a loopback address. */
static bool backend_peer_is_loopback(struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  const struct sockaddr *sa = info ? info->client_addr : NULL;

  if(!sa)
    return false;
  if(sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)(const void *)sa)
                      ->sin_addr.s_addr) >>
            24) == 127;
  if(sa->sa_family == AF_INET6) {
    const struct in6_addr *a =
        &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

/* Returns a new request context for method and url on connection, routed
 * and with its Authorization classified, or NULL when out of memory. The
 * caller owns it; backend_on_completed frees it. */
static struct backend_req *backend_req_new(struct backend *b,
                                           struct MHD_Connection *connection,
                                           const char *url, const char *method)
{
  struct backend_req *req = calloc(1, sizeof(*req));
  const union MHD_ConnectionInfo *info;
  struct backend_conn *conn;
  const char *auth;

  if(!req) {
    return NULL;
  }
  /* IIS matches paths case-insensitively. */
  if(!strcasecmp(url, BACKEND_EWS_PATH)) {
    req->route = BACKEND_ROUTE_EWS;
  }
  else if(!strcasecmp(url, BACKEND_AUTODISCOVER_PATH)) {
    req->route = BACKEND_ROUTE_AUTODISCOVER;
  }
  else if(!strcasecmp(url, BACKEND_WSDL_PATH)) {
    req->route =
        strcmp(method, "GET") ? BACKEND_ROUTE_NOT_FOUND : BACKEND_ROUTE_WSDL;
  }
  else if(!strcasecmp(url, BACKEND_RPC_PATH)) {
    req->route = strcmp(method, "RPC_IN_DATA") && strcmp(method, "RPC_OUT_DATA")
                     ? BACKEND_ROUTE_BAD_METHOD
                     : BACKEND_ROUTE_RPC;
  }
  else if(b->status && !strcmp(url, BACKEND_STATUS_PATH) &&
          !strcmp(method, "GET") && backend_peer_is_loopback(connection)) {
    req->route = BACKEND_ROUTE_STATUS;
  }
  else {
    req->route = BACKEND_ROUTE_NOT_FOUND;
  }
  if((req->route == BACKEND_ROUTE_EWS ||
      req->route == BACKEND_ROUTE_AUTODISCOVER) &&
     strcmp(method, "POST")) {
    req->route = BACKEND_ROUTE_BAD_METHOD;
  }
  req->ews_post = req->route == BACKEND_ROUTE_EWS;
  req->body_state =
      (req->route == BACKEND_ROUTE_EWS ||
       req->route == BACKEND_ROUTE_AUTODISCOVER ||
       (req->route == BACKEND_ROUTE_RPC && !strcmp(method, "RPC_OUT_DATA")))
          ? BACKEND_BODY_BUFFERING
      : req->route == BACKEND_ROUTE_RPC ? BACKEND_BODY_STREAM
                                        : BACKEND_BODY_DISCARD;
  kb_buf_init(&req->body, b->max_body);
  auth = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_AUTHORIZATION);
  req->auth = kb_auth_classify(auth, auth ? strlen(auth) : 0);
  info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn = info ? info->socket_context : NULL;
  if(conn && !conn->named) {
    /* The peer claimed its name before sending this request (kb_names). */
    backend_resolve_peer(b, connection, conn->name, sizeof(conn->name));
    conn->named = true;
    if(req->route == BACKEND_ROUTE_STATUS) {
      conn->status_reader = true;
      backend__conn_status_reader(b, conn->id);
    }
    else {
      if(conn->name[0])
        backend__conn_named(b, conn->id, conn->name);
      backend_trace_conn(b, KB_TRACE_OPEN, conn->id, conn->name);
    }
  }
  req->conn = conn ? conn->id : 0;
  req->conn_name = conn && conn->name[0] ? conn->name : NULL;
  if(req->route != BACKEND_ROUTE_STATUS && conn) {
    /* Only this connection's thread touches its context. */
    backend_auth_gate(&b->auth, &conn->auth, conn->id, auth, &req->gate);
    if(req->gate.gate != BACKEND_GATE_PASS)
      req->body_state = BACKEND_BODY_DISCARD;
    snprintf(req->identity, sizeof(req->identity), "%s", conn->auth.identity);
  }
  else if(req->route != BACKEND_ROUTE_STATUS &&
          b->auth.auth == BACKEND_AUTH_INTEGRATED) {
    /* No context to keep a handshake in: refuse rather than trust. */
    req->gate.gate = BACKEND_GATE_REFUSE;
    req->body_state = BACKEND_BODY_DISCARD;
  }
  if(req->route == BACKEND_ROUTE_RPC && req->gate.gate == BACKEND_GATE_PASS &&
     backend__rpc_begin(b, req, method)) {
    free(req);
    return NULL;
  }
  return req;
}

/* Takes one piece of request body: kept while buffering and under the cap,
 * otherwise only counted (the buffer is released the moment the cap is
 * passed, so nothing past it is ever held). */
static void backend_req_feed(struct backend_req *req, const char *data,
                             size_t len)
{
  enum kb_buf_result added;

  if(req->body_state == BACKEND_BODY_STREAM) {
    backend__rpc_in_data(req, data, len); /* counts it too */
    return;
  }
  req->received += len;
  if(req->body_state != BACKEND_BODY_BUFFERING) {
    return;
  }
  added = kb_buf_add(&req->body, data, len);
  if(added != KB_BUF_OK) {
    req->body_state =
        added == KB_BUF_TOO_BIG ? BACKEND_BODY_TOO_LARGE : BACKEND_BODY_NOMEM;
    kb_buf_free(&req->body);
  }
}

/* The guard slot of connection, or NULL. */
static struct kb_guard_slot *backend_slot(struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  const struct backend_conn *conn = info ? info->socket_context : NULL;
  return conn ? conn->slot : NULL;
}

/* libmicrohttpd's accept policy: the guard's caps. */
static enum MHD_Result backend_on_accept(void *cls, const struct sockaddr *addr,
                                         socklen_t addrlen)
{
  struct backend *b = cls;
  return kb_guard_admit(b->guard, addr, addrlen) ? MHD_YES : MHD_NO;
}

static enum MHD_Result backend_head_field(void *cls, enum MHD_ValueKind kind,
                                          const char *key, size_t key_size,
                                          const char *value, size_t value_size)
{
  (void)kind;
  kb_http_field(cls, key, key_size, value ? value : "", value ? value_size : 0);
  return MHD_YES;
}

/* Refuses a request whose head RFC 9112/9110 forbid (kb_http.h), as IIS
 * does: the rule's status, a one-line reason, and the connection closes
 * (libmicrohttpd closes after an answer queued before the body). Returns
 * MHD_YES when it answered, MHD_NO to go on with the request. */
static enum MHD_Result backend_refuse_head(struct MHD_Connection *connection,
                                           const char *url, const char *version,
                                           bool *refused)
{
  struct kb_http_reader r;
  const struct kb_http_rule *rule;
  struct MHD_Response *response;
  enum MHD_Result result;
  char text[256];
  int n;

  kb_http_begin(&r);
  MHD_get_connection_values_n(connection, MHD_HEADER_KIND, backend_head_field,
                              &r);
  *refused = kb_http_end(&r, version, url, NULL) != KB_HTTP_OK;
  if(!*refused)
    return MHD_YES;
  rule = kb_http_rule(r.verdict);
  n = snprintf(text, sizeof(text), "Bad request: the request has %s.\n",
               rule->why);
  response = MHD_create_response_from_buffer(
      n > 0 && (size_t)n < sizeof(text) ? (size_t)n : 0, text,
      MHD_RESPMEM_MUST_COPY);
  if(!response)
    return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                          "text/plain; charset=utf-8");
  result = MHD_queue_response(connection, rule->status, response);
  MHD_destroy_response(response);
  return result;
}

/* libmicrohttpd's access handler: called once with the headers, once per
 * piece of body, and once more when the body is complete; answers on the
 * last call, or on the first when the declared body is over the cap (MHD
 * then closes the connection instead of reading the body). */
static enum MHD_Result
backend_on_request(void *cls, struct MHD_Connection *connection,
                   const char *url, const char *method, const char *version,
                   const char *upload_data, size_t *upload_data_size,
                   void **req_cls)
{
  struct backend *b = cls;
  struct backend_req *req = *req_cls;
  enum MHD_Result result = MHD_YES;

  if(!req) {
    bool refused;
    /* Too late: the guard answered 408 and is closing the connection. */
    if(!kb_guard_head_done(backend_slot(connection)))
      return MHD_NO;
    result = backend_refuse_head(connection, url, version, &refused);
    if(refused)
      return result;
    req = backend_req_new(b, connection, url, method);
    if(!req) {
      return MHD_NO;
    }
    *req_cls = req;
    /* An RPC_IN_DATA's length is its channel's lifetime: read as it
     * comes, never refused for it, and without the guard's body deadline
     * (rpc.c). */
    if(req->body_state == BACKEND_BODY_STREAM &&
       !kb_guard_body_done(backend_slot(connection)))
      return MHD_NO;
    if(req->body_state != BACKEND_BODY_STREAM &&
       backend_declared_too_big(connection, b->max_body)) {
      if(req->body_state == BACKEND_BODY_BUFFERING) {
        req->body_state = BACKEND_BODY_TOO_LARGE;
      }
      if(!kb_guard_body_done(backend_slot(connection)))
        return MHD_NO;
      result = backend_answer(b, connection, req, method, url);
    }
  }
  else if(*upload_data_size) {
    backend_req_feed(req, upload_data, *upload_data_size);
    *upload_data_size = 0;
  }
  else if(!req->answered) {
    if(!kb_guard_body_done(backend_slot(connection)))
      return MHD_NO; /* the body came too late: answered 408 */
    if(req->rpc)     /* an RPC channel: OUT streams, a whole IN closes */
      result = req->body_state == BACKEND_BODY_STREAM
                   ? MHD_NO
                   : backend__rpc_out_answer(b, connection, req);
    else
      result = backend_answer(b, connection, req, method, url);
  }
  return result;
}

/* libmicrohttpd's request-completed notification: frees the request
 * context, whether or not the request was answered. */
static void backend_on_completed(void *cls, struct MHD_Connection *connection,
                                 void **req_cls,
                                 enum MHD_RequestTerminationCode toe)
{
  struct backend_req *req = *req_cls;

  (void)cls;
  (void)toe;
  kb_guard_next(backend_slot(connection));
  if(req) {
    backend__rpc_end(req);
    kb_buf_free(&req->body);
    free(req);
    *req_cls = NULL;
  }
}

/* libmicrohttpd's connection notification: on open, counts the connection,
 * gives it the next id and stores a struct backend_conn in the socket
 * context; on close, frees it. Both are traced (OPEN at the first request,
 * once the peer's name can be resolved). If the context cannot be
 * allocated the connection still works, traced as id 0. */
/* HTTPS with a tap (backend_config.tls_tap): hands it the connection's
 * GnuTLS session, before its handshake, to record. */
static void backend_tap_tls(struct backend *b,
                            struct MHD_Connection *connection)
{
  const union MHD_ConnectionInfo *tls, *addr;

  if(!b->tls_tap)
    return;
  tls = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  addr =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if(tls && tls->tls_session)
    b->tls_tap(b->tls_tap_ctx, tls->tls_session,
               addr ? addr->client_addr : NULL, b->port);
}

static void backend_on_connection(void *cls, struct MHD_Connection *connection,
                                  void **socket_context,
                                  enum MHD_ConnectionNotificationCode toe)
{
  struct backend *b = cls;
  struct backend_conn *conn = *socket_context;

  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    uint64_t id = backend__conn_opened(b);

    conn = calloc(1, sizeof(*conn));
    if(conn) {
      const union MHD_ConnectionInfo *fd = MHD_get_connection_info(
          connection, MHD_CONNECTION_INFO_CONNECTION_FD);
      const union MHD_ConnectionInfo *addr = MHD_get_connection_info(
          connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      conn->id = id;
      conn->name[0] = '\0';
      conn->named = false;
      conn->slot = fd ? kb_guard_open(b->guard, fd->connect_fd,
                                      addr ? addr->client_addr : NULL)
                      : NULL;
    }
    *socket_context = conn;
    backend_tap_tls(b, connection);
    /* OPEN is traced with the connection's name at its first request. */
    if(!conn)
      backend_trace_conn(b, KB_TRACE_OPEN, id, NULL);
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    /* A connection that never sent a request stays unnamed. */
    if(conn && !conn->named)
      backend_trace_conn(b, KB_TRACE_OPEN, conn->id, NULL);
    if(!conn || !conn->status_reader)
      backend_trace_conn(b, KB_TRACE_CLOSE, conn ? conn->id : 0,
                         conn ? conn->name : NULL);
    if(conn) {
      if(!conn->status_reader)
        backend__conn_closed(b, conn->id, conn->name);
      kb_guard_close(conn->slot);
      backend_auth_ctx_free(&conn->auth);
    }
    free(conn);
    *socket_context = NULL;
    /* Last: backend_wait_idle's callers may reset what the above used. */
    backend__conn_done(b);
  }
}

int backend__daemon_start(struct backend *b, int fd, const char *host,
                          uint16_t port, char *err, size_t errlen)
{
  /* No MHD_USE_ERROR_LOG: libmicrohttpd stays silent; what matters is
   * traced. MHD owns fd once the daemon starts. Its own limit leaves room
   * for connections the guard shut down and it has not closed yet, so it
   * never stops accepting; the guard refuses at the cap, at once. */
  /* HTTPS through libmicrohttpd's GnuTLS; the PEM text is read here. */
  struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL},
                                  {MHD_OPTION_END, 0, NULL},
                                  {MHD_OPTION_END, 0, NULL}};
  /* Suspend and resume: the RPC proxy's OUT channel waits for data.
   * poll, not epoll: in libmicrohttpd 0.9.75's epoll loop a resumed
   * connection is outside the epoll set until it next waits to read or
   * write, so an OUT answer cut by its reader right after a resume
   * (backend_rpc_read, once the IN channel has gone) is left closed but
   * not cleaned up: no event comes for it, and it lingers until it is
   * the oldest connection of its worker or its 120 s timeout. A kept
   * topology then waited for Exchange to go quiet for 10 s (one
   * outlook-anywhere run in four, when the two channels were on
   * different workers). The poll loop visits every connection each
   * round and cleans a closed one at once. */
  unsigned int flags = MHD_USE_POLL_INTERNAL_THREAD |
                       MHD_USE_SUPPRESS_DATE_NO_CLOCK | MHD_USE_ITC |
                       MHD_ALLOW_SUSPEND_RESUME;

  if(b->tls_cert_pem) {
    flags |= MHD_USE_TLS;
    tls[0].option = MHD_OPTION_HTTPS_MEM_CERT;
    tls[0].ptr_value = (void *)b->tls_cert_pem;
    tls[1].option = MHD_OPTION_HTTPS_MEM_KEY;
    tls[1].ptr_value = (void *)b->tls_key_pem;
  }
  b->daemon = MHD_start_daemon(
      flags, 0, backend_on_accept, b, backend_on_request, b, MHD_OPTION_ARRAY,
      tls, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE,
      BACKEND_THREADS, MHD_OPTION_CONNECTION_MEMORY_LIMIT, BACKEND_CONN_MEMORY,
      MHD_OPTION_CONNECTION_TIMEOUT, BACKEND_CONN_TIMEOUT_S,
      MHD_OPTION_CONNECTION_LIMIT, 2 * kb_guard_capacity(b->guard),
      MHD_OPTION_NOTIFY_CONNECTION, backend_on_connection, b,
      MHD_OPTION_NOTIFY_COMPLETED, backend_on_completed, b, MHD_OPTION_END);
  if(!b->daemon) {
    snprintf(err, errlen,
             "cannot start the backend on %s:%u: libmicrohttpd refused (%s); "
             "check thread and file-descriptor limits%s",
             host, (unsigned)port, strerror(errno),
             b->tls_cert_pem ? ", and the TLS certificate and key" : "");
    close(fd);
    return -1;
  }
  return 0;
}

void backend__daemon_stop(struct backend *b)
{
  backend__rpc_stop(b);
  if(b->daemon)
    MHD_stop_daemon(b->daemon);
}
