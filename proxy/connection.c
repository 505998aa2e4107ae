/*
 * connection.c - a client connection of the listener: the state it owns
 * (struct proxy__conn), created on libmicrohttpd's STARTED notification
 * and freed on CLOSED, its name and timeline, and libmicrohttpd's
 * connection-level callbacks: the accept policy and the error log.
 */
#include "proxy_int.h"

/* Cap on the response header block relayed from the backend. */
#define PROXY_MAX_RESPONSE_HEADERS ((size_t)64 * 1024)

/* The line libmicrohttpd logs after an access handler's MHD_NO. */
#define PROXY_MHD_APP_ERROR "Application reported internal error"

_Thread_local bool proxy__closing_quietly;

/* Returns how a note names the connection: the name both ends know it by
 * ("client 3 conn 1", kb_names) once its first request resolved it, else
 * "connection N" with its accept number. A resolved name never gives way
 * to the accept number, which follows the order concurrent clients were
 * accepted in and would make the same seed's notes differ. Writes into
 * out, which it returns. */
const char *proxy__conn_label(const struct proxy__conn *conn, char *out,
                              size_t outlen)
{
  if(conn->name[0])
    snprintf(out, outlen, "%s", conn->name);
  else
    snprintf(out, outlen, "connection %" PRIu64, conn->id);
  return out;
}

/* The timeline a connection lives on: its name, or the shared one. */
int64_t proxy__conn_now(const struct proxy__conn *conn)
{
  return kb_clock_now(&conn->proxy->clock, conn->name[0] ? conn->name : NULL);
}

/* libmicrohttpd's accept policy: the guard's caps (kb_guard.h). */
enum MHD_Result proxy__on_accept(void *cls, const struct sockaddr *addr,
                                 socklen_t addrlen)
{
  struct proxy *proxy = cls;
  return kb_guard_admit(proxy->guard, addr, addrlen) ? MHD_YES : MHD_NO;
}

/* Frees a connection and everything it owns, upstream handles first (their
 * close and socket callbacks still read conn). A transfer in flight (only
 * possible while the proxy stops) is abandoned. Accepts NULL. */
static void proxy_conn_free(struct proxy__conn *conn)
{
  if(!conn)
    return;
  if(conn->fwd_state == PROXY__FWD_RUNNING ||
     (conn->stream.live && !conn->stream.up_done)) {
    curl_multi_remove_handle(conn->loop->multi, conn->curl);
    proxy__busy_unlink(conn);
  }
  if(conn->fwd_state == PROXY__FWD_DONE && conn->pending.response)
    MHD_destroy_response(conn->pending.response);
  proxy__fwd_release(conn);
  if(conn->curl)
    curl_easy_cleanup(conn->curl);
  /* Closes the cached upstream connection, traced by proxy_curl_close,
   * unless the defect mixes-identities puts it in the pool (defects.c). */
  if(!proxy__defect_park(conn))
    proxy__upstream_close(conn);
  curl_slist_free_all(conn->fwd_headers);
  curl_url_cleanup(conn->fwd_uh);
  kb_buf_free(&conn->fwd_url);
  kb_buf_free(&conn->fwd.headers);
  kb_buf_free(&conn->fwd.body);
  kb_buf_free(&conn->uri_buf);
  kb_buf_free(&conn->req.body);
  ntlm_bytes_free(&conn->hs_negotiate);
  ntlm_bytes_free(&conn->hs_challenge);
  free(conn);
}

/* Creates the per-connection state on STARTED and frees it on CLOSED.
 * When it cannot be allocated, socket_context stays NULL and every
 * request on that connection is refused by closing it. */
/* HTTPS with a tap (proxy_config.tls_tap): hands it the connection's
 * GnuTLS session, before its handshake, to record. */
static void proxy_tap_tls(const struct proxy *proxy, struct MHD_Connection *mc)
{
  const union MHD_ConnectionInfo *tls, *addr;

  if(!proxy->tls_tap)
    return;
  tls = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_GNUTLS_SESSION);
  addr = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if(tls && tls->tls_session)
    proxy->tls_tap(proxy->tls_tap_ctx, tls->tls_session,
                   addr ? addr->client_addr : NULL, proxy->port);
}

void proxy__on_connection(void *cls, struct MHD_Connection *mc,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
  struct proxy__loop *loop = cls;
  struct proxy *proxy = loop->proxy;
  struct proxy__conn *conn = *socket_context;
  struct proxy_stats delta;

  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn = calloc(1, sizeof(*conn));
    if(!conn)
      return;
    conn->proxy = proxy;
    conn->loop = loop;
    conn->up.kind = PROXY__WATCH_UPSTREAM;
    conn->up.conn = conn;
    conn->up.fd = CURL_SOCKET_BAD;
    conn->up.embedded = true;
    conn->id = atomic_fetch_add(&proxy->next_id, 1);
    conn->state = PROXY_AUTH_UNAUTHENTICATED;
    kb_buf_init(&conn->req.body, proxy->max_body);
    kb_buf_init(&conn->uri_buf, SIZE_MAX / 2);
    kb_buf_init(&conn->fwd_url, SIZE_MAX / 2);
    kb_buf_init(&conn->fwd.headers, PROXY_MAX_RESPONSE_HEADERS);
    kb_buf_init(&conn->fwd.body, proxy->max_body);
    *socket_context = conn;
    proxy_tap_tls(proxy, mc);
    {
      const union MHD_ConnectionInfo *fd =
          MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
      const union MHD_ConnectionInfo *addr =
          MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      if(fd)
        conn->slot = kb_guard_open(proxy->guard, fd->connect_fd,
                                   addr ? addr->client_addr : NULL);
    }
    proxy__peer_watch(conn, mc);
    memset(&delta, 0, sizeof(delta));
    delta.connections = 1;
    proxy__stats_add(proxy, &delta);
    pthread_mutex_lock(&proxy->lock);
    proxy->open++;
    pthread_mutex_unlock(&proxy->lock);
    /* OPEN is traced with the connection's name at its first request. */
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED && conn) {
    uint64_t id = conn->id;
    char name[sizeof(conn->name)];

    /* A connection that never sent a request stays unnamed. */
    if(!conn->named)
      proxy__emit(proxy, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, id, "", NULL, 0,
                  NULL);
    /* In case libmicrohttpd logged nothing after a deliberate close. */
    proxy__closing_quietly = false;
    memcpy(name, conn->name, sizeof(name));
    kb_guard_close(conn->slot);
    conn->slot = NULL;
    proxy__peer_unwatch(conn);
    proxy__gone_unlink(conn);
    /* Upstream first, so its CLOSE is traced before the client's. */
    proxy_conn_free(conn);
    *socket_context = NULL;
    proxy__emit(proxy, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, id, name, NULL, 0,
                NULL);
    /* Last: proxy_wait_idle's callers may reset what the above used. */
    pthread_mutex_lock(&proxy->lock);
    assert(proxy->open > 0);
    if(!--proxy->open)
      pthread_cond_broadcast(&proxy->idle);
    pthread_mutex_unlock(&proxy->lock);
  }
}

/* Routes libmicrohttpd's own error messages to the trace as notes. */
void proxy__on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  struct proxy *proxy = cls;
  char line[512];
  size_t len;

  vsnprintf(line, sizeof(line), fmt, ap);
  if(proxy__closing_quietly &&
     !strncmp(line, PROXY_MHD_APP_ERROR, sizeof(PROXY_MHD_APP_ERROR) - 1)) {
    proxy__closing_quietly = false;
    return;
  }
  if(!proxy->trace.emit)
    return;
  len = strlen(line);
  while(len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  kb_trace_note(&proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER, proxy->name,
                0, KB_NOTE_LIBRARY, "libmicrohttpd: %s", line);
}
