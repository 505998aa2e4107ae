/*
 * upstream.c - the listener's relay to the published server: one libcurl
 * multi handle per event loop, and per client connection an easy handle
 * and a share handle holding its connection cache (libcurl initialised
 * once per process; the share handle handed from one client connection to
 * the next only under the defect mixes-identities, defects.c), upstream
 * connection names, libcurl's socket and timer callbacks that put its
 * sockets in the loop's epoll set, the request sent with the headers
 * headers.c builds, and the response collected and handed back to the
 * client connection.
 */
#include "proxy_int.h"

/* ---- upstream (libcurl) ----------------------------------------------- */

static pthread_once_t proxy_curl_once = PTHREAD_ONCE_INIT;
static CURLcode proxy_curl_init_result = CURLE_FAILED_INIT;

/* libcurl wants curl_global_init before any other call and it must not
 * race with itself, so the first proxy_start runs it exactly once. It is
 * never undone: other components may use libcurl in the same process, and
 * curl_global_cleanup at exit is optional. */
static void proxy_curl_global_init(void)
{
  proxy_curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

CURLcode proxy__curl_init(void)
{
  pthread_once(&proxy_curl_once, proxy_curl_global_init);
  return proxy_curl_init_result;
}

/* Names a new upstream socket "<client connection> upstream <n>", so the
 * backend can tell which client connection it serves; proxy_curl_prereq
 * claims the name once libcurl has connected it (see kb_names). */
static void proxy_name_upstream(struct proxy__conn *conn)
{
  struct kb_conn_id id;

  conn->upstreams++;
  if(!kb_conn_name_parse(conn->name, &id) && id.conn) {
    id.upstream = conn->upstreams;
    kb_conn_name_format(&id, conn->up_name, sizeof(conn->up_name));
  }
  else /* a name from outside the simulation: kept as it came */
    snprintf(conn->up_name, sizeof(conn->up_name), "%s upstream %u", conn->name,
             conn->upstreams);
  conn->up_claimed = false;
}

/* CURLOPT_PREREQFUNCTION: called once the upstream connection is
 * established or picked for reuse, before the request goes. Counts the
 * request on it and claims a new connection's name for the port the
 * kernel gave it. */
static int proxy_curl_prereq(void *clientp, char *conn_primary_ip,
                             char *conn_local_ip, int conn_primary_port,
                             int conn_local_port)
{
  struct proxy__conn *conn = clientp;
  (void)conn_primary_ip;
  (void)conn_local_ip;
  (void)conn_primary_port;

  conn->up_requests++;

  if(!conn->up_claimed && conn->up_name[0] && conn_local_port > 0 &&
     conn_local_port <= 65535) {
    kb_names_claim(&conn->proxy->names, (uint16_t)conn_local_port,
                   conn->up_port, conn->up_name);
    conn->up_claimed = true;
  }
  return CURL_PREREQFUNC_OK;
}

/* Opens the socket of an upstream connection and traces it. */
static curl_socket_t proxy_curl_open(void *clientp, curlsocktype purpose,
                                     struct curl_sockaddr *addr)
{
  struct proxy__conn *conn = clientp;
  curl_socket_t fd;

  if(purpose != CURLSOCKTYPE_IPCXN)
    return CURL_SOCKET_BAD;
  fd = kb_net_socket(addr->family, addr->socktype | SOCK_CLOEXEC,
                     addr->protocol);
  /* Unbound when it fails: the same connection from the kernel's
   * source. */
  if(fd != CURL_SOCKET_BAD && addr->family == AF_INET)
    (void)kb_net_bind_source(fd, (uint32_t)atomic_load(&conn->proxy->source));
  if(fd != CURL_SOCKET_BAD && conn->name[0] && conn->proxy->names.claim)
    proxy_name_upstream(conn);
  else
    conn->up_name[0] = '\0';
  conn->up_port = kb_sockaddr_port(&addr->addr);
  conn->up_requests = 0;
  if(fd != CURL_SOCKET_BAD)
    proxy__emit(conn->proxy, KB_TRACE_OPEN, KB_HOP_PROXY_BACKEND, conn->id,
                conn->up_name, NULL, 0, NULL);
  return fd;
}

/* Closes the socket of an upstream connection and traces it, under the
 * client connection that owns it, or the last one while it sits in the
 * pool (clientp is the struct proxy__upstream: see there). Closing takes
 * it out of the epoll set, so the embedded watch forgets it. */
static int proxy_curl_close(void *clientp, curl_socket_t fd)
{
  struct proxy__upstream *u = clientp;
  struct proxy__conn *conn = u->conn;

  if(conn && conn->up.fd == fd) {
    conn->up.fd = CURL_SOCKET_BAD;
    conn->up.registered = conn->up.active = false;
  }
  if(conn)
    conn->up_requests = 0; /* no upstream connection open */
  proxy__emit(u->proxy, KB_TRACE_CLOSE, KB_HOP_PROXY_BACKEND,
              conn ? conn->id : u->conn_id, conn ? conn->up_name : u->name,
              NULL, 0, NULL);
  return close(fd);
}

/* Traces the exact bytes libcurl writes to and reads from the backend. */
static int proxy_curl_debug(CURL *handle, curl_infotype type, char *data,
                            size_t size, void *clientp)
{
  struct proxy__conn *conn = clientp;
  enum kb_trace_kind kind;
  (void)handle;

  switch(type) {
  case CURLINFO_HEADER_OUT:
  case CURLINFO_DATA_OUT:
    kind = KB_TRACE_SEND;
    break;
  case CURLINFO_HEADER_IN:
  case CURLINFO_DATA_IN:
    kind = KB_TRACE_RECV;
    break;
  default:
    return 0;
  }
  proxy__emit(conn->proxy, kind, KB_HOP_PROXY_BACKEND, conn->id, conn->up_name,
              data, size, NULL);
  return 0;
}

/* Collects the header lines of the final response; a status line starts a
 * new block, so only the last response's headers remain. */
static size_t proxy_curl_header(char *data, size_t size, size_t nmemb,
                                void *userp)
{
  struct proxy__fwd *fwd = userp;
  size_t total = size * nmemb;
  size_t len = total;

  if(len >= 5 && !memcmp(data, "HTTP/", 5)) {
    kb_buf_reset(&fwd->headers);
    return total;
  }
  while(len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
    len--;
  /* The blank end line: a streamed request's answer may go now
   * (stream.c). */
  if(!len) {
    proxy__stream_head(fwd->conn);
    return total;
  }
  /* Skip obsolete folded continuations. */
  if(data[0] == ' ' || data[0] == '\t')
    return total;
  if(kb_buf_add(&fwd->headers, data, len) != KB_BUF_OK ||
     kb_buf_add(&fwd->headers, "\n", 1) != KB_BUF_OK) {
    fwd->too_big = true;
    return 0;
  }
  return total;
}

/* Collects the response body up to max_body; past it the transfer is
 * aborted and the client gets a 502 (a streamed answer, which the client
 * reads as it comes, is cut). */
static size_t proxy_curl_write(char *data, size_t size, size_t nmemb,
                               void *userp)
{
  struct proxy__fwd *fwd = userp;
  size_t total = size * nmemb;

  if(kb_buf_add(&fwd->body, data, total) != KB_BUF_OK) {
    fwd->too_big = true;
    return 0;
  }
  if(fwd->conn->stream.live)
    proxy__stream_wake(fwd->conn);
  return total;
}

/* Monotonic milliseconds, for the loop's timers (libcurl's timeouts are
 * real time, like libmicrohttpd's). */
int64_t proxy__mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Points the embedded watch of conn at fd with the events libcurl asks
 * for, with as few epoll_ctl calls as possible. Returns 0 or -1. */
static int proxy_watch_up(struct proxy__conn *conn, curl_socket_t fd,
                          uint32_t events)
{
  struct proxy__watch *w = &conn->up;
  struct epoll_event ev;

  if(w->fd != fd) {
    w->fd = fd;
    w->registered = false;
  }
  w->active = true;
  if(w->registered && w->events == events)
    return 0;
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = w;
  if(epoll_ctl(conn->loop->epfd, w->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
               fd, &ev)) {
    w->registered = false;
    return -1;
  }
  w->registered = true;
  w->events = events;
  return 0;
}

/* The client connection an easy handle of a loop's multi handle
 * forwards for (CURLOPT_PRIVATE), or NULL (libcurl's own handles). */
static struct proxy__conn *proxy_conn_of(CURL *easy)
{
  char *priv = NULL;
  if(!easy || curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK)
    return NULL;
  return (struct proxy__conn *)(void *)priv;
}

/* libcurl's socket callback for a loop's multi handle: registers, changes
 * or retires the socket in the loop's epoll set, for the client connection
 * whose transfer uses it. The upstream socket uses conn->up, left
 * registered when libcurl removes it; any other socket gets a watch of its
 * own, which on removal goes on loop->dead, freed once the current batch
 * of events is done. Returns 0, or -1 when the socket cannot be watched
 * (the transfer then fails and the client gets a 502). */
static int proxy_curl_socket(CURL *easy, curl_socket_t fd, int what,
                             void *userp, void *socketp)
{
  struct proxy__loop *loop = userp;
  struct proxy__watch *w = socketp;
  struct proxy__conn *conn = w ? w->conn : proxy_conn_of(easy);
  struct epoll_event ev;
  uint32_t events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                    ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  int op = EPOLL_CTL_MOD;

  if(!conn) /* no client connection's transfer: nothing is watched */
    return 0;
  if(!w && (conn->up.fd == fd || conn->up.fd == CURL_SOCKET_BAD)) {
    if(what == CURL_POLL_REMOVE) {
      conn->up.active = false;
      return 0;
    }
    return proxy_watch_up(conn, fd, events);
  }
  if(what == CURL_POLL_REMOVE) {
    if(w) {
      /* The socket may already be closed: then epoll dropped it. */
      epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
      w->conn = NULL;
      w->next_dead = loop->dead;
      loop->dead = w;
    }
    return 0;
  }
  if(!w) {
    w = calloc(1, sizeof(*w));
    if(!w)
      return -1;
    w->kind = PROXY__WATCH_UPSTREAM;
    w->conn = conn;
    w->fd = fd;
    if(curl_multi_assign(loop->multi, fd, w) != CURLM_OK) {
      free(w);
      return -1;
    }
    op = EPOLL_CTL_ADD;
  }
  memset(&ev, 0, sizeof(ev));
  ev.events = events;
  ev.data.ptr = w;
  if(epoll_ctl(loop->epfd, op, fd, &ev) && op == EPOLL_CTL_ADD) {
    curl_multi_assign(loop->multi, fd, NULL);
    free(w);
    return -1;
  }
  return 0;
}

/* libcurl's timer callback for a loop's multi handle: remembers when the
 * loop must call it back (timeout_ms 0: at once; -1: never). */
static int proxy_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
  struct proxy__loop *loop = userp;
  (void)multi;
  loop->timer_at = timeout_ms < 0 ? -1 : proxy__mono_ms() + timeout_ms;
  return 0;
}

/* One header line of a relayed response, split in place. */
struct proxy_header {
  char *name;
  char *value;
};

/* Responses with up to this many header lines are split into the
 * caller's array; more take a calloc. */
#define PROXY_SPLIT_STACK 32

/* Splits fwd->headers ("Name: value\n" lines) in place into *out: stack
 * (PROXY_SPLIT_STACK entries) when the lines fit, else an array to free
 * (*out != stack). Returns the count, or (size_t)-1 when out of memory.
 * Lines without a name are dropped. */
static size_t proxy_split_headers(struct proxy__fwd *fwd,
                                  struct proxy_header *stack,
                                  struct proxy_header **out)
{
  struct proxy_header *h;
  size_t lines = 0;
  size_t n = 0;
  char *p;
  char *save = NULL;
  char *line;

  *out = stack;
  if(!fwd->headers.data || !fwd->headers.len)
    return 0;
  for(p = fwd->headers.data; *p; p++)
    lines += *p == '\n';
  if(lines + 1 <= PROXY_SPLIT_STACK)
    h = stack;
  else {
    h = calloc(lines + 1, sizeof(*h));
    if(!h)
      return (size_t)-1;
  }
  for(line = strtok_r(fwd->headers.data, "\n", &save); line;
      line = strtok_r(NULL, "\n", &save)) {
    char *colon = strchr(line, ':');
    char *value;
    char *end;
    if(!colon || colon == line)
      continue;
    *colon = '\0';
    value = colon + 1;
    while(*value == ' ' || *value == '\t')
      value++;
    end = value + strlen(value);
    while(end > value && (end[-1] == ' ' || end[-1] == '\t'))
      *--end = '\0';
    h[n].name = line;
    h[n].value = value;
    n++;
  }
  *out = h;
  return n;
}

/* The longest WWW-Authenticate value the defect challenge-rewritten folds
 * the server's into. */
#define PROXY_MAX_FOLD ((size_t)8 * 1024)

/* Builds the client's response from what the backend sent: its status,
 * headers minus hop-by-hop ones (and, with the defect challenge-rewritten,
 * its WWW-Authenticate headers folded: defects.c), body, plus our Via. The
 * response points into fwd->body, which must stay as it is until the request
 * completes; live: the transfer runs on, and the response reads its body
 * from fwd->body as it comes, announcing the backend's Content-Length
 * (stream.c). Fills ans; ans->response stays NULL when out of memory. */
void proxy__relay(struct proxy__conn *conn, struct proxy__fwd *fwd,
                  unsigned status, struct proxy__answer *ans, bool live)
{
  struct MHD_Response *r = NULL;
  struct proxy_header stack[PROXY_SPLIT_STACK];
  struct proxy_header *h = NULL;
  size_t count;
  size_t i;
  size_t body_len = 0;
  const char *connection_tokens = NULL;
  bool has_date = false;
  struct kb_buf fold;

  kb_buf_init(&fold, PROXY_MAX_FOLD);
  count = proxy_split_headers(fwd, stack, &h);
  if(count == (size_t)-1)
    return;
  /* The body stays in fwd->body, which the connection keeps untouched
   * until this request completes (proxy__on_completed): no copy, and the
   * buffer's memory serves the next request. */
  if(kb_buf_add(&fwd->body, "", 0) != KB_BUF_OK) /* allocates if empty */
    goto out;
  body_len = fwd->body.len;
  if(live) {
    uint64_t size = MHD_SIZE_UNKNOWN;
    for(i = 0; i < count; i++)
      if(!strcasecmp(h[i].name, MHD_HTTP_HEADER_CONTENT_LENGTH))
        size = strtoull(h[i].value, NULL, 10);
    r = proxy__stream_response(conn, size);
    body_len = size == MHD_SIZE_UNKNOWN ? 0 : (size_t)size;
  }
  else
    r = MHD_create_response_from_buffer(body_len, fwd->body.data,
                                        MHD_RESPMEM_PERSISTENT);
  if(!r)
    goto out;
  ans->status = status;
  ans->response = r;
  ans->resp_auth = KB_AUTH_NONE;
  ans->resp_body_len = body_len;

  /* The response's own Connection header names more hop-by-hop fields. */
  for(i = 0; i < count; i++)
    if(!strcasecmp(h[i].name, "Connection"))
      connection_tokens = h[i].value;
  for(i = 0; i < count; i++) {
    proxy__defect_private(conn, status, h[i].name, h[i].value);
    if(proxy__is_hop_header(h[i].name, connection_tokens) ||
       proxy__defect_fold(conn, h[i].name, h[i].value, &fold))
      continue;
    if(!strcasecmp(h[i].name, MHD_HTTP_HEADER_DATE))
      has_date = true;
    if(!strcasecmp(h[i].name, MHD_HTTP_HEADER_WWW_AUTHENTICATE) &&
       ans->resp_auth == KB_AUTH_NONE)
      ans->resp_auth = proxy__classify_auth(h[i].value);
    /* libmicrohttpd refuses values it considers unsafe; such a header is
     * dropped rather than failing the whole response. */
    MHD_add_response_header(r, h[i].name, h[i].value);
  }
  proxy__defect_folded(conn, r, &fold, ans);
  if(!has_date)
    proxy__add_date(conn, r);
  MHD_add_response_header(r, MHD_HTTP_HEADER_VIA, conn->proxy->via);
out:
  kb_buf_free(&fold);
  if(h != stack)
    free(h);
}

/* Fills ans with the answer to a forward that produced no relayable
 * response: 503 when proxy_stop aborted it, 502 when the response was too
 * big or the backend could not be reached (or memory ran out), 504 on the
 * upstream timeout. errbuf is libcurl's detail line, possibly empty. */
static void proxy_upstream_failed(struct proxy__conn *conn,
                                  const struct proxy__fwd *fwd, CURLcode res,
                                  const char *errbuf, struct proxy__answer *ans)
{
  const struct proxy *proxy = conn->proxy;

  if(res == CURLE_ABORTED_BY_CALLBACK) {
    /* Only proxy_stop aborts a transfer: not the backend's fault. */
    proxy__note(conn, KB_NOTE_UPSTREAM_STOPPING,
                "the listener is stopping: transfer to the published "
                "server abandoned, 503");
    proxy__answer_text(
        conn, ans, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, KB_AUTH_NONE,
        "ISA %s: the listener is shutting down; retry later", proxy->name);
    return;
  }
  ans->delta.upstream_errors = 1;
  if(fwd->too_big) {
    proxy__note(conn, KB_NOTE_UPSTREAM_TOO_BIG,
                "the response of the published server is larger than "
                "the %zu-byte limit: 502",
                proxy->max_body);
    proxy__answer_text(conn, ans, MHD_HTTP_BAD_GATEWAY, NULL, KB_AUTH_NONE,
                       "ISA %s: the response of the published server %s is "
                       "larger than the %zu-byte limit; raise max_body",
                       proxy->name, proxy->backend_url, proxy->max_body);
  }
  else if(res == CURLE_OPERATION_TIMEDOUT) {
    proxy__note(conn, KB_NOTE_UPSTREAM_TIMEOUT,
                "the published server did not answer within %ld ms: 504",
                proxy->upstream_timeout_ms);
    proxy__answer_text(conn, ans, MHD_HTTP_GATEWAY_TIMEOUT, NULL, KB_AUTH_NONE,
                       "ISA %s: the published server %s did not answer within "
                       "%ld ms: %s",
                       proxy->name, proxy->backend_url,
                       proxy->upstream_timeout_ms,
                       errbuf[0] ? errbuf : curl_easy_strerror(res));
  }
  else {
    const char *why = res == CURLE_OK ? "no HTTP status in its answer"
                      : errbuf[0]     ? errbuf
                                      : curl_easy_strerror(res);
    proxy__note(conn, KB_NOTE_UPSTREAM_UNREACHABLE,
                "the published server could not be reached (%s): 502", why);
    proxy__answer_text(conn, ans, MHD_HTTP_BAD_GATEWAY, NULL, KB_AUTH_NONE,
                       "ISA %s: the published server %s could not be reached: "
                       "%s",
                       proxy->name, proxy->backend_url, why);
  }
}

/* Buffers of a connection that grew past this are freed when the request
 * that grew them completes; smaller ones keep their memory for the next
 * request, which saves their growth (a few reallocs each) every time. */
#define PROXY_KEEP_BUF ((size_t)64 * 1024)

/* Empties buf for the next request, freeing its memory when it grew past
 * PROXY_KEEP_BUF. */
void proxy__buf_recycle(struct kb_buf *buf)
{
  if(buf->size > PROXY_KEEP_BUF)
    kb_buf_free(buf);
  else
    kb_buf_reset(buf);
}

/* Frees what the forward of conn held for its transfer and cannot keep:
 * the handle, the header list, the URL and the buffers stay for the next
 * request (the handle keeps nothing else of this one: see proxy__forward),
 * and fwd.body stays untouched, since the relayed answer points into it
 * until the request completes (proxy__on_completed recycles it). */
void proxy__fwd_release(struct proxy__conn *conn)
{
  kb_buf_reset(&conn->fwd.headers);
}

/* Puts conn on its loop's list of transfers in flight. */
static void proxy_busy_link(struct proxy__conn *conn)
{
  struct proxy__loop *loop = conn->loop;
  conn->busy_prev = NULL;
  conn->busy_next = loop->busy;
  if(loop->busy)
    loop->busy->busy_prev = conn;
  loop->busy = conn;
}

/* Takes conn off its loop's list of transfers in flight. */
void proxy__busy_unlink(struct proxy__conn *conn)
{
  struct proxy__loop *loop = conn->loop;
  if(conn->busy_prev)
    conn->busy_prev->busy_next = conn->busy_next;
  else if(loop->busy == conn)
    loop->busy = conn->busy_next;
  if(conn->busy_next)
    conn->busy_next->busy_prev = conn->busy_prev;
  conn->busy_prev = conn->busy_next = NULL;
}

/* Creates loop's multi handle, which every upstream transfer of the
 * loop runs in: one multi handle costs about 40 KiB (libcurl 7.88's
 * socket hash of 911 slots, connection and DNS caches) and a wake-up
 * socket pair, more than the rest of a client connection. Its callbacks
 * put the sockets in the loop's epoll set. Called as the loop starts, so
 * that its descriptors are there before any session's. Returns 0 or -1. */
int proxy__multi_init(struct proxy__loop *loop)
{
  if(loop->multi)
    return 0;
  loop->timer_at = -1;
  loop->multi = curl_multi_init();
  if(!loop->multi ||
     curl_multi_setopt(loop->multi, CURLMOPT_SOCKETFUNCTION,
                       proxy_curl_socket) ||
     curl_multi_setopt(loop->multi, CURLMOPT_SOCKETDATA, loop) ||
     curl_multi_setopt(loop->multi, CURLMOPT_TIMERFUNCTION, proxy_curl_timer) ||
     curl_multi_setopt(loop->multi, CURLMOPT_TIMERDATA, loop) ||
     /* Applied to each client connection's own cache
      * (Curl_conncache_return_conn): what a multi handle of its own
      * allowed it (four per easy handle). */
     curl_multi_setopt(loop->multi, CURLMOPT_MAXCONNECTS, 4L)) {
    proxy__multi_close(loop);
    return -1;
  }
  return 0;
}

/* Closes loop's multi handle, once no client connection's transfer is in
 * it (proxy__loops_close). Accepts a loop without one. */
void proxy__multi_close(struct proxy__loop *loop)
{
  if(loop->multi)
    curl_multi_cleanup(loop->multi);
  loop->multi = NULL;
  loop->timer_at = -1;
}

/* Gives conn a share handle of its own holding its connection cache,
 * which libcurl uses instead of the multi handle's (Curl_multi_add_handle),
 * so that its upstream connections are this client connection's alone,
 * and the struct proxy__upstream its connections' close callback names;
 * or, under the defect mixes-identities, the ones another client
 * connection left in the pool (defects.c). Returns 0 or -1. */
static int proxy_share_init(struct proxy__conn *conn)
{
  struct proxy__upstream *u;

  if(conn->share || proxy__defect_adopt(conn))
    return 0;
  u = calloc(1, sizeof(*u));
  if(!u)
    return -1;
  conn->share = curl_share_init();
  if(!conn->share || curl_share_setopt(conn->share, CURLSHOPT_SHARE,
                                       CURL_LOCK_DATA_CONNECT) != CURLSHE_OK) {
    if(conn->share)
      curl_share_cleanup(conn->share);
    conn->share = NULL;
    free(u);
    return -1;
  }
  u->proxy = conn->proxy;
  u->conn = conn;
  conn->upstream = u;
  return 0;
}

/* Creates conn's upstream handles on first use (the loop's multi handle
 * is there since the loop started): its share handle (proxy_share_init) and an
 * easy handle in that share with the options every forward shares (set once:
 * resetting and setting them again cost a visible share of each request in the
 * profile). Returns 0 or -1. */
static int proxy_upstream_init(struct proxy__conn *conn)
{
  struct proxy *proxy = conn->proxy;
  CURL *curl = conn->curl;

  if(!conn->loop->multi || proxy_share_init(conn))
    return -1;
  if(!curl) {
    curl = conn->curl = curl_easy_init();
    if(!curl)
      return -1;
    if(curl_easy_setopt(curl, CURLOPT_SHARE, conn->share) ||
       curl_easy_setopt(curl, CURLOPT_PRIVATE, (void *)conn)) {
      curl_easy_cleanup(curl);
      conn->curl = NULL;
      return -1;
    }
    curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_PROXY, ""); /* ignore *_proxy env */
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, proxy->upstream_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     proxy->upstream_timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, conn->fwd_err);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, proxy_curl_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &conn->fwd);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, proxy_curl_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &conn->fwd);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, proxy_curl_open);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, conn);
    curl_easy_setopt(curl, CURLOPT_CLOSESOCKETFUNCTION, proxy_curl_close);
    curl_easy_setopt(curl, CURLOPT_CLOSESOCKETDATA, conn->upstream);
    curl_easy_setopt(curl, CURLOPT_PREREQFUNCTION, proxy_curl_prereq);
    curl_easy_setopt(curl, CURLOPT_PREREQDATA, conn);
    if(proxy->upstream_ca_pem) {
      /* TLS bridging: Exchange's certificate checked against the CA. */
      struct curl_blob ca;

      ca.data = (void *)proxy->upstream_ca_pem;
      ca.len = strlen(proxy->upstream_ca_pem);
      ca.flags = CURL_BLOB_COPY;
      curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
    }
    if(proxy->trace.emit) {
      curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);
      curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, proxy_curl_debug);
      curl_easy_setopt(curl, CURLOPT_DEBUGDATA, conn);
    }
  }
  return 0;
}

/* Makes u, an upstream another client connection left in the pool, conn's
 * (conn has no share handle yet): its share handle and cached connection,
 * whose name, port and request count become conn's. */
void proxy__upstream_attach(struct proxy__conn *conn, struct proxy__upstream *u)
{
  assert(!conn->share && !conn->upstream && !u->conn);
  conn->upstream = u;
  conn->share = u->share;
  u->share = NULL;
  u->conn = conn;
  snprintf(conn->up_name, sizeof(conn->up_name), "%s", u->name);
  conn->up_port = u->port;
  conn->up_claimed = true;
  conn->up_requests = u->requests;
}

/* Takes conn's share handle away from it, its cached upstream connection
 * left open: the socket leaves the loop's epoll set, and the returned
 * struct proxy__upstream holds the handle and what the trace and the next
 * owner need (the caller owns it: proxy__upstream_attach or
 * proxy__upstream_free). NULL when conn has none. conn's easy handle must
 * be cleaned up already (it holds the share handle until then). */
struct proxy__upstream *proxy__upstream_detach(struct proxy__conn *conn)
{
  struct proxy__upstream *u = conn->upstream;

  if(!u || !conn->share)
    return NULL;
  if(conn->up.registered)
    epoll_ctl(conn->loop->epfd, EPOLL_CTL_DEL, conn->up.fd, NULL);
  conn->up.fd = CURL_SOCKET_BAD;
  conn->up.registered = conn->up.active = false;
  u->share = conn->share;
  u->conn = NULL;
  u->conn_id = conn->id;
  proxy__conn_label(conn, u->owner, sizeof(u->owner));
  snprintf(u->name, sizeof(u->name), "%s", conn->up_name);
  u->port = conn->up_port;
  u->requests = conn->up_requests;
  conn->share = NULL;
  conn->upstream = NULL;
  return u;
}

/* Closes share, and with it the upstream connections in its cache (each
 * traced by proxy_curl_close): libcurl 7.88's curl_share_cleanup closes
 * them (Curl_conncache_close_all_connections) once no easy handle uses the
 * share; one that still does is a bug (the connections would stay open). */
static void proxy_share_close(CURLSH *share)
{
  CURLSHcode rc;

  if(!share)
    return;
  rc = curl_share_cleanup(share);
  assert(rc == CURLSHE_OK);
  (void)rc;
}

/* Closes conn's share handle, and with it its cached upstream connection
 * (traced by proxy_curl_close, under conn), and frees its struct
 * proxy__upstream. conn's easy handle must be cleaned up already. */
void proxy__upstream_close(struct proxy__conn *conn)
{
  proxy_share_close(conn->share);
  free(conn->upstream);
  conn->share = NULL;
  conn->upstream = NULL;
}

/* Closes what u, out of any client connection, holds - its share handle,
 * and with it the cached upstream connection (traced by proxy_curl_close
 * under the last owner) - and frees it. Accepts NULL. */
void proxy__upstream_free(struct proxy__upstream *u)
{
  if(!u)
    return;
  proxy_share_close(u->share);
  free(u);
}

/* Sets conn->fwd_url on the upstream handle, parsed once here: given as
 * a string alone, libcurl parses it again and rebuilds it for every
 * transfer (a tenth of its work per request in the profile). The parse
 * uses the flags libcurl itself would (path kept as is); a URL it
 * refuses is given as a string only, so that the transfer fails with
 * libcurl's own error. Returns 0, or -1 when out of memory. */
static int proxy_upstream_url(struct proxy__conn *conn)
{
  CURLcode rc;

  if(!conn->fwd_uh)
    conn->fwd_uh = curl_url();
  if(conn->fwd_uh &&
     curl_url_set(conn->fwd_uh, CURLUPART_URL, conn->fwd_url.data,
                  CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME |
                      CURLU_PATH_AS_IS) == CURLUE_OK)
    rc = curl_easy_setopt(conn->curl, CURLOPT_CURLU, conn->fwd_uh);
  else
    rc = curl_easy_setopt(conn->curl, CURLOPT_CURLU, NULL);
  /* The string too: libcurl reports it (errors, effective URL). */
  if(!rc)
    rc = curl_easy_setopt(conn->curl, CURLOPT_URL, conn->fwd_url.data);
  return rc ? -1 : 0;
}

/* Starts forwarding the current request to the backend on the
 * connection's own easy handle, in its loop's multi handle. On success the
 * transfer is in flight (fwd_state RUNNING, conn on the busy list) and the
 * access handler suspends the client connection; proxy__fwd_finish later fills
 * conn->pending with the relayed response. When the transfer cannot even
 * start, ans is filled at once with the 502 of proxy_upstream_failed. The
 * request body stays owned by conn->req and must stay put until the
 * transfer ends (libcurl reads it from there). */
void proxy__forward(struct proxy__conn *conn, struct MHD_Connection *mc,
                    const char *method, struct proxy__answer *ans)
{
  struct proxy *proxy = conn->proxy;
  CURL *curl;
  size_t uri_len;
  const char *body = conn->req.body.data ? conn->req.body.data : "";
  size_t body_len = conn->req.body.len;
  bool is_post = !strcmp(method, "POST");
  bool is_head = !strcmp(method, "HEAD");
  bool send_body = !is_head && (is_post || body_len > 0 || conn->req.stream);

  /* The buffers keep their memory from one request to the next; the
   * previous answer, which may have pointed into fwd.body, is complete. */
  conn->fwd.conn = conn;
  conn->fwd.too_big = false;
  kb_buf_reset(&conn->fwd.headers);
  kb_buf_reset(&conn->fwd.body);
  conn->fwd_err[0] = '\0';

  /* Once proxy_stop has begun, the loop's last turn (which lets abandoned
   * connections queue their 503) may still read a new request: starting a
   * transfer would leave its connection suspended, and libmicrohttpd
   * aborts the process when stopped with a suspended connection. */
  if(atomic_load(&proxy->stopping)) {
    proxy_upstream_failed(conn, &conn->fwd, CURLE_ABORTED_BY_CALLBACK,
                          conn->fwd_err, ans);
    return;
  }
  ans->delta.forwarded = 1;
  if(is_post && !body_len)
    ans->delta.forwarded_empty_posts = 1;

  if(proxy_upstream_init(conn))
    goto fail;
  curl = conn->curl;

  /* The handle keeps its URL between transfers (libcurl starts each from
   * the one last set), so a target that repeats is not set again. */
  uri_len = strlen(conn->req.uri);
  if(conn->fwd_url.len != proxy->backend_url_len + uri_len ||
     memcmp(conn->fwd_url.data + proxy->backend_url_len, conn->req.uri,
            uri_len)) {
    kb_buf_reset(&conn->fwd_url);
    if(kb_buf_add(&conn->fwd_url, proxy->backend_url, proxy->backend_url_len) !=
           KB_BUF_OK ||
       kb_buf_add(&conn->fwd_url, conn->req.uri, uri_len) != KB_BUF_OK ||
       proxy_upstream_url(conn)) {
      kb_buf_free(&conn->fwd_url);
      goto fail;
    }
  }
  if(proxy__upstream_headers(conn, mc, send_body))
    goto fail;
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, conn->fwd_headers);
  /* Only the method options change from one request to the next; each
   * branch below sets the method whole, so nothing of the previous request
   * (NOBODY after a HEAD, a custom verb, ...) carries over. */
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
  if(conn->req.stream) {
    /* An RPC channel: its body as the client sends it (stream.c). */
    proxy__stream_setup(conn);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  }
  else if(send_body) {
    /* POSTFIELDS even when empty, so an empty POST goes out with
     * "Content-Length: 0" exactly as the client sent it. */
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    if(!is_post)
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  }
  else if(is_head)
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  else {
    /* HTTPGET clears NOBODY and POST. */
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    if(strcmp(method, "GET"))
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  }

  /* What the listener's defects change about this transfer (defects.c). */
  proxy__defect_transfer(conn);
  /* The loop drives it from here: adding it sets a timer that fires at
   * once. */
  if(curl_multi_add_handle(conn->loop->multi, curl) != CURLM_OK)
    goto fail;
  conn->mc = mc;
  conn->fwd_state = PROXY__FWD_RUNNING;
  proxy_busy_link(conn);
  return;

fail:
  proxy_upstream_failed(conn, &conn->fwd, CURLE_OUT_OF_MEMORY, conn->fwd_err,
                        ans);
  proxy__fwd_release(conn);
}

/* Ends conn's transfer with libcurl's result res (CURLE_ABORTED_BY_CALLBACK
 * when proxy_stop abandons it): fills conn->pending with the relayed
 * response or the 502/503/504, releases the transfer and resumes the
 * client connection, whose access handler then queues the answer. */
void proxy__fwd_finish(struct proxy__conn *conn, CURLcode res)
{
  long code = 0;

  /* A streamed answer already queued: it ends with its transfer. */
  if(proxy__stream_finish(conn, res))
    return;

  if(res == CURLE_OK)
    curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &code);
  /* Done with the handle: the upstream connection stays in the share
   * handle's cache (or closes now when the transfer was cut short). */
  curl_multi_remove_handle(conn->loop->multi, conn->curl);
  proxy__busy_unlink(conn);
  if(res == CURLE_OK && code >= 100 && code <= 999)
    proxy__relay(conn, &conn->fwd, (unsigned)code, &conn->pending, false);
  else
    proxy_upstream_failed(conn, &conn->fwd, res, conn->fwd_err, &conn->pending);
  proxy__fwd_release(conn);
  conn->fwd_state = PROXY__FWD_DONE;
  if(conn->req.stream) {
    curl_easy_setopt(conn->curl, CURLOPT_TIMEOUT_MS,
                     conn->proxy->upstream_timeout_ms);
    /* An RPC channel's answer before the client's body is complete
     * cannot be queued until libmicrohttpd calls with more body, which
     * the client may never send: its connection is closed instead. */
    if(!conn->stream.body_done && !conn->suspended && conn->mc) {
      const union MHD_ConnectionInfo *fd =
          MHD_get_connection_info(conn->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
      proxy__note(conn, KB_NOTE_NONE,
                  "the published server answered %ld before the %s body's "
                  "end: the client's channel is closed",
                  code, "streamed");
      if(fd)
        shutdown(fd->connect_fd, SHUT_RDWR);
    }
  }
  /* Not suspended yet: libmicrohttpd calls again at once and finds the
   * answer. */
  if(conn->suspended) {
    conn->suspended = false;
    MHD_resume_connection(conn->mc);
  }
  conn->mc = NULL;
}

/* Hands each transfer of loop's multi handle that finished to
 * proxy__fwd_finish, for the client connection it forwards for. */
void proxy__fwd_check(struct proxy__loop *loop)
{
  CURLMsg *msg;
  int left = 0;

  if(!loop->multi)
    return;
  while((msg = curl_multi_info_read(loop->multi, &left))) {
    struct proxy__conn *conn = proxy_conn_of(msg->easy_handle);
    if(msg->msg == CURLMSG_DONE && conn && msg->easy_handle == conn->curl &&
       (conn->fwd_state == PROXY__FWD_RUNNING ||
        (conn->stream.live && !conn->stream.up_done)))
      proxy__fwd_finish(conn, msg->data.result);
  }
}
