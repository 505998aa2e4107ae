/*
 * request.c - one request on a client connection, from libmicrohttpd's
 * per-request callbacks (the raw target, the access handler, the
 * completion) to the answer queued: the keep-alive limits and the checks
 * every listener makes first, the dispatch to the rows of the listener's
 * authentication method, and the exchange's trace.
 */
#include "proxy_int.h"

/* ---- the request's life ----------------------------------------------- */

/* Empties the request state, keeping the connection's. The buffers keep
 * their memory for the next request unless they grew large; the relayed
 * body goes too, so this must not run while an answer pointing into it
 * is queued (it runs as a request starts and once it has completed). */
static void proxy_req_reset(struct proxy__conn *conn)
{
  struct kb_buf body = conn->req.body;

  proxy__buf_recycle(&body);
  memset(&conn->req, 0, sizeof(conn->req));
  conn->req.body = body;
  proxy__buf_recycle(&conn->uri_buf);
  proxy__buf_recycle(&conn->fwd.body);
  proxy__buf_recycle(&conn->fwd.headers);
  memset(&conn->stream, 0, sizeof(conn->stream));
}

/* Looks up the name the peer of mc claimed for its connection to the
 * listener (kb_names); leaves name empty when there is none. */
static void proxy_resolve_peer(const struct proxy *proxy,
                               struct MHD_Connection *mc, char *name,
                               size_t len)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

  kb_names_resolve_addr(&proxy->names, info ? info->client_addr : NULL,
                        proxy->port, name, len);
}

/* Called once per request with the raw request target, before
 * libmicrohttpd splits off the query: the only place the query string is
 * seen as sent. Returns the connection, which becomes the request's
 * con_cls; the request state is embedded in it, so there is nothing to
 * leak when a request ends before the access handler sees it. */
void *proxy__on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
  const union MHD_ConnectionInfo *info;
  struct proxy__conn *conn;
  (void)cls;

  info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn = info ? info->socket_context : NULL;
  if(!conn)
    return NULL;
  if(!conn->named) {
    /* The peer claimed its name before sending this request (kb_names). */
    proxy_resolve_peer(conn->proxy, mc, conn->name, sizeof(conn->name));
    conn->named = true;
    proxy__emit(conn->proxy, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, conn->id,
                conn->name, NULL, 0, NULL);
  }
  proxy_req_reset(conn);
  if(!uri)
    uri = "";
  /* On failure req.uri stays NULL: the request gets a 503. */
  if(kb_buf_add(&conn->uri_buf, uri, strlen(uri)) == KB_BUF_OK)
    conn->req.uri = conn->uri_buf.data;
  return conn;
}

/* Ends a request: frees its body and target. */
void proxy__on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
  struct proxy__conn *conn = *con_cls;
  (void)cls;
  (void)mc;
  (void)toe;
  if(conn) {
    /* A channel whose client ended first closes its upstream side. */
    proxy__stream_end(conn);
    proxy_req_reset(conn);
    conn->answering = false;
    kb_guard_next(conn->slot);
    proxy__peer_finish(conn);
  }
  *con_cls = NULL;
}

/* ---- keep-alive limits ------------------------------------------------ */

/* Writes a duration for a note: "45 s" when it is whole seconds, else
 * "45500 ms". */
static const char *proxy_format_ms(int64_t ms, char *out, size_t outlen)
{
  if(ms % 1000 == 0)
    snprintf(out, outlen, "%" PRId64 " s", ms / 1000);
  else
    snprintf(out, outlen, "%" PRId64 " ms", ms);
  return out;
}

/* Decides, as a request starts on conn, whether the listener would have
 * closed the connection in the meantime: it has answered on it before and
 * the connection's timeline moved more than idle_timeout_ms since. Counts
 * and notes it. Returns true when the request must get no answer and the
 * connection must close. */
static bool proxy_idle_expired(struct proxy__conn *conn)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_stats delta;
  int64_t idle;
  char label[80];
  char idle_s[32];
  char limit_s[32];

  if(proxy->idle_timeout_ms <= 0 || !conn->answers)
    return false;
  idle = proxy__conn_now(conn) - conn->last_answer_ms;
  if(idle <= proxy->idle_timeout_ms)
    return false;
  memset(&delta, 0, sizeof(delta));
  delta.idle_closed = 1;
  proxy__stats_add(proxy, &delta);
  proxy__note(
      conn, KB_NOTE_IDLE_CLOSED,
      "%s idle %s > %s: the listener had closed it; closed "
      "without an answer, nothing forwarded",
      proxy__conn_label(conn, label, sizeof(label)),
      proxy_format_ms(idle, idle_s, sizeof(idle_s)),
      proxy_format_ms(proxy->idle_timeout_ms, limit_s, sizeof(limit_s)));
  return true;
}

/* Counts an answer about to be queued on conn and stamps its time on the
 * connection's timeline; at max_requests answers it adds "Connection:
 * close", so libmicrohttpd closes the connection once the answer is out. */
static void proxy_count_answer(struct proxy__conn *conn,
                               struct proxy__answer *ans)
{
  struct proxy *proxy = conn->proxy;
  char label[80];

  conn->answers++;
  conn->last_answer_ms = proxy__conn_now(conn);
  if(!proxy->max_requests || conn->answers < proxy->max_requests)
    return;
  if(MHD_add_response_header(ans->response, MHD_HTTP_HEADER_CONNECTION,
                             "close") != MHD_YES)
    return;
  ans->delta.max_requests_closed = 1;
  proxy__note(conn, KB_NOTE_MAX_REQUESTS,
              "%s reached the listener's limit of %u requests: "
              "Connection: close, the connection closes after this answer",
              proxy__conn_label(conn, label, sizeof(label)),
              proxy->max_requests);
}

/* ---- checks on the head ----------------------------------------------- */

/* Returns true when the request's Content-Length announces more than max
 * bytes, storing the announced length in *declared. */
static bool proxy_declared_too_big(struct MHD_Connection *mc, size_t max,
                                   size_t *declared)
{
  const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long n;
  char *end = NULL;

  if(!v || *v < '0' || *v > '9')
    return false;
  errno = 0;
  n = strtoull(v, &end, 10);
  if(errno == ERANGE)
    n = ULLONG_MAX;
  else if(errno || *end)
    return false; /* libmicrohttpd itself refuses a malformed length */
  if(n <= max)
    return false;
  *declared = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
  return true;
}

/* Whether the client waits for 100 Continue before sending a body. */
static bool proxy_expects_continue(struct MHD_Connection *mc)
{
  const char *expect =
      MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
  const char *length = MHD_lookup_connection_value(
      mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *coding = MHD_lookup_connection_value(
      mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

  return expect && !strcasecmp(expect, "100-continue") &&
         ((length && strcmp(length, "0")) || coding);
}

/* libmicrohttpd's header iterator: hands each field, with its length, to
 * the kb_http reader in cls. */
static enum MHD_Result proxy_head_field(void *cls, enum MHD_ValueKind kind,
                                        const char *key, size_t key_size,
                                        const char *value, size_t value_size)
{
  (void)kind;
  kb_http_field(cls, key, key_size, value ? value : "", value ? value_size : 0);
  return MHD_YES;
}

/* Judges the request head of conn (kb_http.h). On success the request's
 * target becomes its origin-form path (an absolute-form target keeps only
 * its path). */
static enum kb_http_verdict proxy_check_head(struct proxy__conn *conn,
                                             struct MHD_Connection *mc,
                                             const char *version)
{
  struct kb_http_reader r;
  struct kb_http_head head;
  enum kb_http_verdict v;

  if(!conn->req.uri)
    return KB_HTTP_OK; /* out of memory: answered 503 */
  kb_http_begin(&r);
  MHD_get_connection_values_n(mc, MHD_HEADER_KIND, proxy_head_field, &r);
  v = kb_http_end(&r, version, conn->req.uri, &head);
  if(v == KB_HTTP_OK)
    conn->req.uri = head.path;
  return v;
}

/* ---- the decision ----------------------------------------------------- */

/* Describes, for a decision note, what forwarding this request sends. */
void proxy__describe_forward(const struct proxy__conn *conn, const char *method,
                             char *out, size_t outlen)
{
  if(conn->req.stream)
    snprintf(out, outlen,
             "%s forwarded, its body streamed as it comes (%" PRIu64
             " bytes announced)",
             method, conn->req.declared);
  else if(!strcmp(method, "POST") && !conn->req.body.len)
    snprintf(out, outlen, "POST forwarded without its body");
  else if(conn->req.body.len)
    snprintf(out, outlen, "%s forwarded with its %zu-byte body", method,
             conn->req.body.len);
  else
    snprintf(out, outlen, "%s forwarded", method);
}

/* Whether the listener refuses this request whatever its body (a 401
 * offer), judged from the head alone and without side effects: never
 * without authentication, without credentials under Basic, and as
 * proxy__integrated_refuses says under Integrated. */
static bool proxy_refused_from_head(const struct proxy__conn *conn,
                                    struct MHD_Connection *mc)
{
  const char *value = MHD_lookup_connection_value(
      mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

  switch(conn->proxy->auth) {
  case PROXY_AUTH_NONE:
    break;
  case PROXY_AUTH_BASIC:
    return !value; /* no credentials: the 401 offer */
  case PROXY_AUTH_INTEGRATED:
    return proxy__integrated_refuses(conn, value);
  }
  return false;
}

/* Applies the decision table (proxy/README.md) to the request now complete on
 * conn and fills ans with the answer (forwarding when the table says so):
 * the checks every listener makes, then the rows of its authentication
 * method. Never fails: what a client sends can only earn it a 4xx. */
static void proxy_decide(struct proxy__conn *conn, struct MHD_Connection *mc,
                         const char *method, struct proxy__answer *ans)
{
  struct proxy *proxy = conn->proxy;
  const char *value;
  char what[128];

  assert(proxy__current_loop == conn->loop);

  if(conn->req.too_big) {
    proxy__note(conn, KB_NOTE_BODY_TOO_LARGE,
                "request body of %zu bytes is over the %zu-byte limit: "
                "413, nothing forwarded",
                conn->req.body_seen, proxy->max_body);
    proxy__answer_text(conn, ans, MHD_HTTP_CONTENT_TOO_LARGE, NULL,
                       KB_AUTH_NONE,
                       "ISA %s: the request body is larger than the %zu-byte "
                       "limit; send a smaller body",
                       proxy->name, proxy->max_body);
    return;
  }
  if(conn->req.nomem || !conn->req.uri) {
    proxy__answer_text(conn, ans, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
                       KB_AUTH_NONE,
                       "ISA %s: out of memory while reading the request; "
                       "retry later",
                       proxy->name);
    return;
  }
  if(conn->req.framing != KB_HTTP_OK) {
    const struct kb_http_rule *rule = kb_http_rule(conn->req.framing);
    proxy__note(conn, KB_NOTE_BAD_FRAMING,
                "request head with %s: %u, closed, nothing forwarded",
                rule->why, rule->status);
    proxy__answer_text(conn, ans, rule->status, NULL, KB_AUTH_NONE,
                       "ISA %s: the request has %s (RFC 9112); fix the "
                       "client's request",
                       proxy->name, rule->why);
    return;
  }

  value = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_AUTHORIZATION);
  switch(proxy->auth) {
  case PROXY_AUTH_NONE:
    if(proxy->trace.emit) {
      char label[80];
      proxy__describe_forward(conn, method, what, sizeof(what));
      proxy__note(conn, KB_NOTE_ANONYMOUS,
                  "%s: the listener does not authenticate; %s",
                  proxy__conn_label(conn, label, sizeof(label)), what);
    }
    proxy__forward(conn, mc, method, ans);
    break;
  case PROXY_AUTH_BASIC:
    proxy__decide_basic(conn, mc, method, value, ans);
    break;
  case PROXY_AUTH_INTEGRATED:
    proxy__decide_integrated(conn, mc, method, value, ans);
    break;
  }
}

/* ---- the access handler ----------------------------------------------- */

/* What the access handler does after a request's head or a piece of its
 * body. */
enum proxy_step {
  PROXY_STEP_READ = 0, /* MHD_YES: read on */
  PROXY_STEP_CLOSE,    /* MHD_NO: close the connection without an answer */
  PROXY_STEP_DECIDE,   /* refused from its head: decide and answer now */
  PROXY_STEP_HOLD,     /* MHD_YES, suspended: the defect expect-hang */
  PROXY_STEP_STREAM    /* an RPC channel: decide and forward now, then
                          stream its body (stream.c) */
};

/* The access handler's first call on a request, with its head alone:
 * closes a connection that sat idle past the limit, and refuses from the
 * head what must not wait for the body (bad framing, a 401 to a client
 * waiting for 100 Continue, a body announced as too big). */
static enum proxy_step proxy_request_head(struct proxy__conn *conn,
                                          struct MHD_Connection *mc,
                                          const char *method,
                                          const char *version)
{
  conn->req.started = true;
  /* Too late: the guard answered 408 and is closing the connection. */
  if(!kb_guard_head_done(conn->slot))
    return PROXY_STEP_CLOSE;
  /* MHD_NO before any response closes the socket with nothing sent,
   * which is what a client finds on a connection the server had
   * closed: libcurl then retries on a new one. */
  if(proxy_idle_expired(conn)) {
    proxy__closing_quietly = true;
    return PROXY_STEP_CLOSE;
  }
  /* A head two parsers could frame differently is refused before
   * anything else, and before its body is read (RFC 9112 section 6). */
  conn->req.framing = proxy_check_head(conn, mc, version);
  if(conn->req.framing != KB_HTTP_OK) {
    conn->req.refused_early = true;
    return PROXY_STEP_DECIDE;
  }
  /* The defect expect-hang answers a client waiting for 100 Continue
   * nothing at all (defects.c). */
  if(proxy_expects_continue(mc) && proxy__defect_hold(conn, mc))
    return PROXY_STEP_HOLD;
  /* A client waiting for 100 Continue is not asked for a body the
   * listener will refuse anyway: the 401 goes at once, as IIS and ISA
   * answer it (libmicrohttpd then closes, the body unread). */
  if(proxy_expects_continue(mc) && proxy_refused_from_head(conn, mc)) {
    conn->req.refused_early = true;
    return PROXY_STEP_DECIDE;
  }
  /* An RPC channel's Content-Length is its lifetime, not a body to
   * gather: it is decided now and streamed (stream.c). */
  if(proxy__stream_wanted(mc, method, &conn->req.declared)) {
    conn->req.stream = true;
    return PROXY_STEP_STREAM;
  }
  /* A body announced as too big is refused before it is read: reading
   * megabytes only to refuse them is what a slow-drip attack wants. */
  if(proxy_declared_too_big(mc, conn->proxy->max_body, &conn->req.body_seen)) {
    conn->req.too_big = true;
    conn->req.refused_early = true;
    return PROXY_STEP_DECIDE;
  }
  return PROXY_STEP_READ;
}

/* Takes len bytes of the request body: counted always, kept while the
 * body stays within max_body and memory lasts. */
static void proxy_request_body(struct proxy__conn *conn, const char *data,
                               size_t len)
{
  conn->req.body_seen += len;
  if(!conn->req.too_big && !conn->req.nomem) {
    enum kb_buf_result r = kb_buf_add(&conn->req.body, data, len);
    if(r != KB_BUF_OK) {
      /* Keep reading to the end, but hold nothing more. */
      conn->req.too_big = r == KB_BUF_TOO_BIG;
      conn->req.nomem = r == KB_BUF_NOMEM;
      kb_buf_free(&conn->req.body);
    }
  }
}

/* Header lines a trace carries at most, per request and per response. */
#define PROXY_TRACE_HEAD_MAX 16384u

/* Header lines gathered for a trace; failed once one did not fit. */
struct proxy_head {
  struct kb_buf buf;
  bool failed;
};

/* libmicrohttpd's header iterator: appends "Name: value\r\n" to the
 * proxy_head in cls. */
static enum MHD_Result proxy_head_line(void *cls, enum MHD_ValueKind kind,
                                       const char *key, const char *value)
{
  struct proxy_head *head = cls;
  (void)kind;
  if(kb_buf_printf(&head->buf, "%s: %s\r\n", key, value ? value : ""))
    head->failed = true;
  return MHD_YES;
}

/* Traces the exchange of the request on conn and its answer ans, about to
 * be queued: method, target, both header blocks, what their
 * Authorization and WWW-Authenticate carry, status and body lengths. */
static void proxy_trace_exchange(const struct proxy__conn *conn,
                                 struct MHD_Connection *mc, const char *url,
                                 const char *method,
                                 const struct proxy__answer *ans)
{
  struct kb_exchange ex;
  struct proxy_head req_head, resp_head;
  const char *auth;

  /* Classifying the request's token decodes it: only for a trace. */
  auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_AUTHORIZATION);
  memset(&ex, 0, sizeof(ex));
  ex.method = method;
  ex.path = url;
  ex.req_auth = proxy__classify_auth(auth);
  ex.req_body_len = conn->req.body_seen;
  ex.status = (int)ans->status;
  ex.resp_auth = ans->resp_auth;
  ex.resp_body_len = ans->resp_body_len;
  memset(&req_head, 0, sizeof(req_head));
  memset(&resp_head, 0, sizeof(resp_head));
  kb_buf_init(&req_head.buf, PROXY_TRACE_HEAD_MAX);
  kb_buf_init(&resp_head.buf, PROXY_TRACE_HEAD_MAX);
  MHD_get_connection_values(mc, MHD_HEADER_KIND, proxy_head_line, &req_head);
  MHD_get_response_headers(ans->response, proxy_head_line, &resp_head);
  /* Truncated or out of memory: the trace says nothing rather than
   * something incomplete. */
  ex.req_headers = req_head.failed ? NULL : req_head.buf.data;
  ex.resp_headers = resp_head.failed ? NULL : resp_head.buf.data;
  proxy__emit(conn->proxy, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, conn->id,
              conn->name, NULL, 0, &ex);
  kb_buf_free(&req_head.buf);
  kb_buf_free(&resp_head.buf);
}

/* Answers the request now complete on conn: decides it, or takes the
 * answer its transfer left in conn->pending; a request to forward
 * suspends the connection instead, at the call after the one that
 * started the forward. Counts and traces the answer, then
 * queues it. Returns what the access handler returns. */
static enum MHD_Result proxy_request_answer(struct proxy__conn *conn,
                                            struct MHD_Connection *mc,
                                            const char *url, const char *method)
{
  struct proxy *proxy = conn->proxy;
  struct proxy__answer ans;
  enum MHD_Result result;

  if(conn->fwd_state == PROXY__FWD_RUNNING) {
    /* The second final call of a request being forwarded. Suspending in
     * the first would leave libmicrohttpd 0.9.75 believing the
     * connection still waits for request bytes (it does not update that
     * while suspended): on resume it would read first, and a client that
     * sent its request and half-closed would be taken for gone, its
     * answer dropped after Exchange executed the request. Answering the
     * first call with nothing makes libmicrohttpd wait on nothing and
     * call again at once; suspended now, it resumes to write. */
    if(!conn->suspended) {
      MHD_suspend_connection(mc);
      conn->suspended = true;
    }
    return MHD_YES;
  }
  if(conn->fwd_state == PROXY__FWD_IDLE && !kb_guard_body_done(conn->slot))
    return MHD_NO; /* the body came too late: answered 408 */
  if(conn->fwd_state == PROXY__FWD_DONE) {
    ans = conn->pending;
    memset(&conn->pending, 0, sizeof(conn->pending));
    conn->fwd_state = PROXY__FWD_IDLE;
  }
  else {
    memset(&ans, 0, sizeof(ans));
    proxy_decide(conn, mc, method, &ans);
    if(conn->fwd_state == PROXY__FWD_RUNNING) {
      conn->pending = ans;
      return MHD_YES; /* suspended at the next call, above */
    }
  }
  if(!ans.response)
    return MHD_NO;
  /* The unread body makes the connection unusable: say it closes. */
  if(conn->req.refused_early ||
     (conn->req.stream && !conn->stream.body_done && !conn->stream.live))
    MHD_add_response_header(ans.response, MHD_HTTP_HEADER_CONNECTION, "close");

  ans.delta.requests = 1;
  proxy_count_answer(conn, &ans);
  /* Counters and trace before queueing: once the response is on the wire
   * a client may read the stats, and must see this request in them. */
  proxy__stats_add(proxy, &ans.delta);
  if(proxy->trace.emit)
    proxy_trace_exchange(conn, mc, url, method, &ans);

  result = MHD_queue_response(mc, ans.status, ans.response);
  MHD_destroy_response(ans.response);
  /* Until the completion notice, a client that has gone must still be
   * able to take the answer (a half-closed client waits for it). */
  conn->answering = result == MHD_YES;
  return result;
}

/* The access handler: on the first call (headers only) closes a
 * connection that sat idle past the limit; then gathers the body (capped,
 * but always read to its end so the connection stays keep-alive), decides
 * and answers. A request to forward suspends the connection until its
 * transfer ends; libmicrohttpd then calls again, and the answer that
 * proxy__fwd_finish left in conn->pending is queued. */
enum MHD_Result proxy__on_request(void *cls, struct MHD_Connection *mc,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
  struct proxy__conn *conn = *con_cls;
  (void)cls;

  if(!conn)
    return MHD_NO;
  if(conn->dropped) {
    /* Let go by the defect expect-hang: its client has gone. */
    proxy__closing_quietly = true;
    return MHD_NO;
  }
  if(!conn->req.started) {
    switch(proxy_request_head(conn, mc, method, version)) {
    case PROXY_STEP_READ:
    case PROXY_STEP_HOLD:
      return MHD_YES;
    case PROXY_STEP_CLOSE:
      return MHD_NO;
    case PROXY_STEP_DECIDE:
      break;
    case PROXY_STEP_STREAM:
      return proxy_request_answer(conn, mc, url, method);
    }
  }
  else if(*upload_data_size && conn->req.stream &&
          conn->fwd_state == PROXY__FWD_RUNNING) {
    /* A channel being forwarded: its body goes up as it comes. */
    if(proxy__stream_body(conn, upload_data, *upload_data_size))
      return MHD_NO; /* more than max_body held: the channel closes */
    *upload_data_size = 0;
    return MHD_YES;
  }
  else if(*upload_data_size && conn->req.stream &&
          conn->fwd_state == PROXY__FWD_IDLE) {
    /* Answered from its head (a 401, the answer already queued). */
    *upload_data_size = 0;
    return MHD_YES;
  }
  else if(*upload_data_size && conn->req.stream) {
    /* An answer came before the body's end: queued now, the connection
     * closes after it. */
    *upload_data_size = 0;
    return proxy_request_answer(conn, mc, url, method);
  }
  else if(*upload_data_size) {
    proxy_request_body(conn, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if(conn->req.stream && !conn->stream.body_done) {
    /* The final call: the channel's body is complete. */
    conn->stream.body_done = true;
    proxy__stream_more(conn);
  }
  return proxy_request_answer(conn, mc, url, method);
}
