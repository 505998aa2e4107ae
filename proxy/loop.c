/*
 * loop.c - the listener's event loops: each thread waits on one epoll set
 * holding its libmicrohttpd daemon, its wake-up eventfd, the libcurl
 * sockets of its connections (driven by upstream.c's socket and timer
 * callbacks) and the client sockets' EPOLLRDHUP watch, and starts the
 * daemon whose callbacks connection.c and request.c define.
 */
#include "proxy_int.h"

#include <sys/ioctl.h>

/* Per-connection memory for the request line and headers. A type 3 token
 * from a long domain\user is a few KiB of base64; the largest header the
 * listener must still read to refuse it itself (401, not libmicrohttpd's
 * 431) is a 16 KB token, the size of a maximal Kerberos ticket
 * (test_garbage_tokens), so 20 KiB leaves room for the other headers.
 * libmicrohttpd zeroes the whole pool several times a request, so each KiB
 * more costs time on every request (memset: 4 % of the loop thread at 32
 * KiB). */
#define PROXY_CONNECTION_MEMORY ((size_t)20 * 1024)
/* Events taken from epoll per wait. */
#define PROXY_LOOP_EVENTS 64
/* Longest sleep of the loop even with nothing to wait for. */
#define PROXY_LOOP_MAX_WAIT_MS 1000

_Thread_local const struct proxy__loop *proxy__current_loop;

/* ---- the event loop ---------------------------------------------------- */

/* Watches conn's client socket for the client leaving (see struct
 * proxy__conn). Without it the connection still works; only a client that
 * leaves mid-request is then noticed by the connection timeout instead. */
void proxy__peer_watch(struct proxy__conn *conn, struct MHD_Connection *mc)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
  struct epoll_event ev;

  if(!info || conn->loop->epfd < 0)
    return;
  conn->peer.kind = PROXY__WATCH_PEER;
  conn->peer.conn = conn;
  conn->peer.fd = info->connect_fd;
  conn->peer.embedded = true;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLRDHUP;
  ev.data.ptr = &conn->peer;
  conn->peer.registered =
      epoll_ctl(conn->loop->epfd, EPOLL_CTL_ADD, conn->peer.fd, &ev) == 0;
}

/* Stops watching conn's client socket. */
void proxy__peer_unwatch(struct proxy__conn *conn)
{
  if(!conn->peer.registered)
    return;
  epoll_ctl(conn->loop->epfd, EPOLL_CTL_DEL, conn->peer.fd, NULL);
  conn->peer.registered = false;
}

/* Takes conn off the list of connections whose client has gone. */
void proxy__gone_unlink(struct proxy__conn *conn)
{
  struct proxy__loop *loop = conn->loop;

  if(conn->gone_prev)
    conn->gone_prev->gone_next = conn->gone_next;
  else if(loop->gone == conn)
    loop->gone = conn->gone_next;
  if(conn->gone_next)
    conn->gone_next->gone_prev = conn->gone_prev;
  conn->gone_prev = conn->gone_next = NULL;
}

/* Shuts down our sending side of a connection whose client has gone, once
 * nothing is left to send it (no answer being produced or sent), so that
 * libmicrohttpd sees EPOLLHUP and closes it. Called after libmicrohttpd
 * has read what arrived, and when an answer completes. */
void proxy__peer_finish(struct proxy__conn *conn)
{
  char label[80];

  int unread = 0;

  /* A streamed channel ends with its client (stream.c). */
  proxy__stream_client_left(conn);
  if(!conn->peer_gone || conn->peer_shut || conn->answering ||
     conn->fwd_state != PROXY__FWD_IDLE)
    return;
  /* A request the defect expect-hang holds waits for exactly this. */
  if(proxy__defect_release(conn))
    return;
  /* Bytes that came before the FIN and that libmicrohttpd has not read
   * yet are a request whose answer the client waits for (it may send a
   * request and half-close at once, and our watch can see the FIN before
   * libmicrohttpd's own epoll set has the connection back after a
   * suspension): libmicrohttpd reads them and the request runs; its
   * answer's completion calls this again. */
  if(ioctl(conn->peer.fd, FIONREAD, &unread) == 0 && unread > 0)
    return;
  /* A channel's end is noted where it is cut (stream.c). */
  if((conn->req.started || conn->req.uri) && !conn->req.stream)
    proxy__note(conn, KB_NOTE_CLIENT_LEFT,
                "%s: the client closed it in the middle of "
                "a request; closing it, nothing forwarded",
                proxy__conn_label(conn, label, sizeof(label)));
  shutdown(conn->peer.fd, SHUT_WR);
  conn->peer_shut = true;
  proxy__gone_unlink(conn);
}

/* The loop saw EPOLLRDHUP (or HUP, ERR) on conn's client socket. The
 * bytes that came before the FIN may not be read yet - a client may send
 * a whole request and half-close - so the decision waits for
 * proxy_loop_gone, after libmicrohttpd's turn. */
static void proxy_peer_gone(struct proxy__conn *conn)
{
  struct proxy__loop *loop = conn->loop;

  proxy__peer_unwatch(conn);
  if(conn->peer_gone)
    return;
  conn->peer_gone = true;
  conn->gone_prev = NULL;
  conn->gone_next = loop->gone;
  if(loop->gone)
    loop->gone->gone_prev = conn;
  loop->gone = conn;
}

/* After MHD_run: finishes the connections of loop whose client has gone,
 * unless libmicrohttpd still has bytes to process (it then asks for a
 * zero timeout, and the next turn decides). */
static void proxy_loop_gone(struct proxy__loop *loop)
{
  MHD_UNSIGNED_LONG_LONG ms;
  struct proxy__conn *c = loop->gone;

  if(!c || (MHD_get_timeout(loop->daemon, &ms) == MHD_YES && ms == 0))
    return;
  while(c) {
    struct proxy__conn *next = c->gone_next; /* finish may unlink c */
    proxy__peer_finish(c);
    c = next;
  }
}

/* Milliseconds the loop may sleep: until libcurl's timer of the loop's
 * transfers or libmicrohttpd's next timeout, whichever is first, at most
 * PROXY_LOOP_MAX_WAIT_MS. */
static int proxy_loop_wait_ms(struct proxy__loop *loop)
{
  MHD_UNSIGNED_LONG_LONG mhd_ms;
  int64_t wait = PROXY_LOOP_MAX_WAIT_MS;

  if(MHD_get_timeout(loop->daemon, &mhd_ms) == MHD_YES &&
     mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait)
    wait = (int64_t)mhd_ms;
  if(loop->multi && loop->timer_at >= 0 && wait > 0) {
    int64_t now = proxy__mono_ms();
    if(loop->timer_at - now < wait)
      wait = loop->timer_at - now;
  }
  return wait < 0 ? 0 : (int)wait;
}

/* Calls libcurl back when its timer is due (the first call after
 * curl_multi_add_handle starts the transfer; libcurl runs every transfer
 * whose own timeout expired) and finishes the transfers that ended. */
static void proxy_loop_timers(struct proxy__loop *loop)
{
  int running = 0;

  if(!loop->multi || loop->timer_at < 0 || loop->timer_at > proxy__mono_ms())
    return;
  loop->timer_at = -1;
  curl_multi_socket_action(loop->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  proxy__fwd_check(loop);
}

/* Abandons every transfer in flight on loop because the proxy is
 * stopping: each client gets a 503 if its connection can still take
 * one. */
static void proxy_loop_abandon(struct proxy__loop *loop)
{
  while(loop->busy)
    proxy__fwd_finish(loop->busy, CURLE_ABORTED_BY_CALLBACK);
}

/* Frees the watches retired during the last batch of events. */
static void proxy_loop_bury(struct proxy__loop *loop)
{
  while(loop->dead) {
    struct proxy__watch *w = loop->dead;
    loop->dead = w->next_dead;
    free(w);
  }
}

/* A loop thread: waits on its epoll set holding its libmicrohttpd
 * daemon's epoll descriptor, the wakeup eventfd and its connections'
 * upstream and client sockets; drives libcurl on upstream events and
 * timers, then lets libmicrohttpd accept, read, call the handlers
 * (including those of connections just resumed) and write. Runs until
 * proxy_stop sets the stop flag; returns NULL. */
static void *proxy_loop_main(void *arg)
{
  struct proxy__loop *loop = arg;
  struct proxy *proxy = loop->proxy;
  struct epoll_event events[PROXY_LOOP_EVENTS];

  proxy__current_loop = loop;

  for(;;) {
    int n = epoll_wait(loop->epfd, events, PROXY_LOOP_EVENTS,
                       proxy_loop_wait_ms(loop));
    int i;

    for(i = 0; i < n; i++) {
      struct proxy__watch *w = events[i].data.ptr;
      uint64_t count;
      int flags = 0;
      int running = 0;

      switch(w->kind) {
      case PROXY__WATCH_MHD:
        break; /* MHD_run below */
      case PROXY__WATCH_WAKE:
        if(read(loop->wakefd, &count, sizeof(count)) < 0)
          count = 0; /* already drained */
        break;
      case PROXY__WATCH_PEER:
        if(w->conn)
          proxy_peer_gone(w->conn);
        break;
      case PROXY__WATCH_UPSTREAM:
        if(!w->conn)
          break; /* retired earlier in this batch */
        if(w->embedded && !w->active) {
          /* A kept connection between requests: the backend closed it or
           * sent something unasked. Stop watching (level-triggered, it
           * would fire on every wait); libcurl finds it dead before
           * reusing it. */
          epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
          w->registered = false;
          break;
        }
        if(events[i].events & (EPOLLIN | EPOLLHUP))
          flags |= CURL_CSELECT_IN;
        if(events[i].events & EPOLLOUT)
          flags |= CURL_CSELECT_OUT;
        if(events[i].events & EPOLLERR)
          flags |= CURL_CSELECT_ERR;
        /* The call may retire w (libcurl closes the socket) and finish
         * any transfer of the loop. */
        curl_multi_socket_action(loop->multi, w->fd, flags, &running);
        proxy__fwd_check(loop);
        break;
      }
    }
    if(atomic_load(&proxy->stopping)) {
      proxy_loop_abandon(loop);
      proxy__defect_release_all(loop);
      /* Let the resumed connections queue their 503 and try to send it. */
      MHD_run(loop->daemon);
      proxy_loop_bury(loop);
      break;
    }
    proxy_loop_timers(loop);
    MHD_run(loop->daemon);
    proxy_loop_gone(loop);
    proxy_loop_bury(loop);
  }
  return NULL;
}

/* Creates loop's epoll set with its daemon's epoll descriptor and the
 * wakeup eventfd in it and the multi handle of its upstream transfers,
 * and starts the loop thread. Returns 0, or -1 with
 * errno set; what was created is released by proxy__loops_close. */
int proxy__loop_start(struct proxy__loop *loop)
{
  const union MHD_DaemonInfo *info;
  struct epoll_event ev;
  char name[16];
  int rc;

  info = MHD_get_daemon_info(loop->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  if(!info) {
    errno = ENOTSUP;
    return -1;
  }
  loop->epfd = epoll_create1(EPOLL_CLOEXEC);
  if(loop->epfd < 0)
    return -1;
  loop->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if(loop->wakefd < 0)
    return -1;
  loop->mhd_watch.kind = PROXY__WATCH_MHD;
  loop->mhd_watch.fd = info->epoll_fd;
  loop->wake_watch.kind = PROXY__WATCH_WAKE;
  loop->wake_watch.fd = loop->wakefd;
  memset(&ev, 0, sizeof(ev));
  ev.events = EPOLLIN;
  ev.data.ptr = &loop->mhd_watch;
  if(epoll_ctl(loop->epfd, EPOLL_CTL_ADD, info->epoll_fd, &ev))
    return -1;
  ev.data.ptr = &loop->wake_watch;
  if(epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wakefd, &ev))
    return -1;
  if(proxy__multi_init(loop)) {
    errno = ENOMEM;
    return -1;
  }
  rc = pthread_create(&loop->thread, NULL, proxy_loop_main, loop);
  if(rc) {
    errno = rc;
    return -1;
  }
  if(loop->index)
    snprintf(name, sizeof(name), "kb-proxy-%u", loop->index + 1);
  else
    snprintf(name, sizeof(name), "kb-proxy");
  kb_thread_name(loop->thread, name);
  loop->started = true;
  return 0;
}

/* Stops every loop thread that runs (each abandons its transfers in
 * flight) and waits for them. The epoll sets and eventfds stay open:
 * closing connections still retires upstream sockets from them. */
void proxy__loops_stop(struct proxy *proxy)
{
  uint64_t one = 1;
  unsigned i;

  atomic_store(&proxy->stopping, true);
  for(i = 0; i < proxy->nloops; i++)
    if(proxy->loops[i].started &&
       write(proxy->loops[i].wakefd, &one, sizeof(one)) < 0) {
      /* The counter is already non-zero: the loop is awake anyway. */
    }
  for(i = 0; i < proxy->nloops; i++)
    if(proxy->loops[i].started) {
      pthread_join(proxy->loops[i].thread, NULL);
      proxy->loops[i].started = false;
    }
}

/* Stops every daemon, closing its connections (their CLOSED notifications
 * free their state and close their upstream connections), then closes
 * the upstream connections left in the loops' pools (defects.c), the
 * loops' descriptors, and frees retired watches. After
 * proxy__loops_stop. */
void proxy__loops_close(struct proxy *proxy)
{
  unsigned i;

  for(i = 0; i < proxy->nloops; i++)
    if(proxy->loops[i].daemon) {
      MHD_stop_daemon(proxy->loops[i].daemon);
      proxy->loops[i].daemon = NULL;
    }
  for(i = 0; i < proxy->nloops; i++) {
    struct proxy__loop *loop = &proxy->loops[i];
    proxy__defect_pool_drain(loop);
    proxy__multi_close(loop);
    proxy_loop_bury(loop);
    if(loop->wakefd >= 0)
      close(loop->wakefd);
    if(loop->epfd >= 0)
      close(loop->epfd);
    loop->wakefd = loop->epfd = -1;
  }
}

/* How many loops to run: wanted, 1 when 0, at most PROXY__MAX_LOOPS. */
unsigned proxy__loop_count(unsigned wanted)
{
  if(wanted < 1)
    return 1;
  return wanted > PROXY__MAX_LOOPS ? PROXY__MAX_LOOPS : wanted;
}

/* Starts loop's libmicrohttpd daemon in external epoll mode: on addr
 * (port 0 picks one) when listen_fd is -1, else accepting from listen_fd,
 * which it then owns; with the listener's certificate when it serves
 * HTTPS. Returns the daemon or NULL (errno set when the
 * system refused). */
struct MHD_Daemon *proxy__daemon_start(struct proxy__loop *loop,
                                       unsigned int flags, uint16_t port,
                                       const struct sockaddr *addr,
                                       int listen_fd, unsigned connection_limit,
                                       unsigned connection_timeout_s)
{
  struct proxy *proxy = loop->proxy;
  struct MHD_OptionItem where[4] = {{MHD_OPTION_END, 0, NULL},
                                    {MHD_OPTION_END, 0, NULL},
                                    {MHD_OPTION_END, 0, NULL},
                                    {MHD_OPTION_END, 0, NULL}};

  if(listen_fd < 0) {
    where[0].option = MHD_OPTION_SOCK_ADDR;
    where[0].ptr_value = (void *)addr;
  }
  else {
    where[0].option = MHD_OPTION_LISTEN_SOCKET;
    where[0].value = listen_fd;
  }
  if(proxy->tls_cert_pem) { /* flags carry MHD_USE_TLS */
    where[1].option = MHD_OPTION_HTTPS_MEM_CERT;
    where[1].ptr_value = (void *)proxy->tls_cert_pem;
    where[2].option = MHD_OPTION_HTTPS_MEM_KEY;
    where[2].ptr_value = (void *)proxy->tls_key_pem;
  }
  return MHD_start_daemon(
      flags, port, proxy__on_accept, proxy, proxy__on_request, proxy,
      /* First, so that libmicrohttpd's option parsing logs through it. */
      MHD_OPTION_EXTERNAL_LOGGER, proxy__on_mhd_log, proxy, MHD_OPTION_ARRAY,
      where, MHD_OPTION_CONNECTION_LIMIT, connection_limit,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, PROXY_CONNECTION_MEMORY,
      MHD_OPTION_CONNECTION_TIMEOUT, connection_timeout_s,
      MHD_OPTION_NOTIFY_CONNECTION, proxy__on_connection, loop,
      MHD_OPTION_URI_LOG_CALLBACK, proxy__on_uri, proxy,
      MHD_OPTION_NOTIFY_COMPLETED, proxy__on_completed, proxy, MHD_OPTION_END);
}
