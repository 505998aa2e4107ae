/*
 * stream.c - the listener's streamed requests: RPC over HTTP's channels
 * (RPC_IN_DATA and RPC_OUT_DATA, MS-RPCH), whose bodies and answers go
 * through as they come instead of being gathered whole, as ISA Server
 * passes Outlook Anywhere to the RPC proxy behind it.
 *
 * Every other request is decided once its body is complete and answered
 * once its upstream transfer has ended. A channel cannot be: RPC_IN_DATA
 * announces 1 GB (its lifetime) and never sends it all, RPC_OUT_DATA's
 * 200 announces as much and streams for the session's life. So a channel
 * with a body is decided from its head (authentication needs nothing
 * else); when forwarded, its body goes up through libcurl's read callback
 * as the client sends it (paused while there is nothing to send), and a
 * 2xx answer is queued as soon as its head has come, its body read from
 * the transfer as it arrives (the connection suspended while there is
 * nothing to write). The upstream transfer has no overall timeout. A
 * channel ends when its client leaves (the upstream connection is closed
 * with it) or its server closes (the client's connection is closed).
 *
 * Limits: the bytes between the two sides of a channel are held up to
 * max_body each way (the body not yet taken by libcurl, the answer not yet
 * written to the client); past it the channel closes. An answer other
 * than 2xx is relayed whole once its transfer has ended, and while the
 * client's body is still coming it waits for the next piece of body: a
 * server that answers an RPC_IN_DATA early is closed on instead.
 */
#include "proxy_int.h"

#include <sys/ioctl.h>

bool proxy__stream_method(const char *method)
{
  return !strcmp(method, "RPC_IN_DATA") || !strcmp(method, "RPC_OUT_DATA");
}

bool proxy__stream_wanted(struct MHD_Connection *mc, const char *method,
                          uint64_t *declared)
{
  const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long n;
  char *end = NULL;

  if(!proxy__stream_method(method) || !v || *v < '0' || *v > '9')
    return false;
  errno = 0;
  n = strtoull(v, &end, 10);
  if(errno || *end || !n)
    return false;
  *declared = n;
  return true;
}

/* CURLOPT_READFUNCTION of a streamed request: the body the client has sent
 * and libcurl has not taken yet; paused when there is none, until
 * proxy__stream_body brings more. */
static size_t proxy_stream_read(char *buffer, size_t size, size_t nitems,
                                void *userdata)
{
  struct proxy__conn *conn = userdata;
  size_t room = size * nitems;
  size_t left = conn->req.body.len - conn->stream.up_off;

  if(!left) {
    if(conn->stream.body_done)
      return 0;
    conn->stream.up_paused = true;
    return CURL_READFUNC_PAUSE;
  }
  if(left > room)
    left = room;
  memcpy(buffer, conn->req.body.data + conn->stream.up_off, left);
  conn->stream.up_off += left;
  return left;
}

void proxy__stream_setup(struct proxy__conn *conn)
{
  CURL *curl = conn->curl;

  conn->stream.up_off = 0;
  conn->stream.up_paused = false;
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
  curl_easy_setopt(curl, CURLOPT_READFUNCTION, proxy_stream_read);
  curl_easy_setopt(curl, CURLOPT_READDATA, conn);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   (curl_off_t)conn->req.declared);
  /* A channel lives as long as the session. */
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 0L);
}

int proxy__stream_body(struct proxy__conn *conn, const char *data, size_t len)
{
  conn->req.body_seen += len;
  if(conn->stream.up_off == conn->req.body.len) {
    kb_buf_reset(&conn->req.body);
    conn->stream.up_off = 0;
  }
  if(kb_buf_add(&conn->req.body, data, len) != KB_BUF_OK)
    return -1;
  proxy__stream_more(conn);
  return 0;
}

void proxy__stream_more(struct proxy__conn *conn)
{
  if(conn->stream.up_paused && conn->fwd_state == PROXY__FWD_RUNNING) {
    conn->stream.up_paused = false;
    curl_easy_pause(conn->curl, CURLPAUSE_CONT);
  }
}

/* The content reader of a streamed answer: what the transfer received and
 * the client has not been written yet; the end (the connection closes,
 * the answer cut short of its length) once the transfer has ended or the
 * client has gone; else nothing for now, the connection suspended until
 * proxy__stream_wake. */
static ssize_t proxy_stream_reader(void *cls, uint64_t pos, char *buf,
                                   size_t max)
{
  struct proxy__conn *conn = cls;
  struct kb_buf *b = &conn->fwd.body;
  size_t left = b->len - conn->stream.down_off;
  (void)pos;

  if(left) {
    if(left > max)
      left = max;
    memcpy(buf, b->data + conn->stream.down_off, left);
    conn->stream.down_off += left;
    if(conn->stream.down_off == b->len) {
      kb_buf_reset(b);
      conn->stream.down_off = 0;
    }
    return (ssize_t)left;
  }
  if(conn->stream.up_done || conn->stream.gone)
    return MHD_CONTENT_READER_END_WITH_ERROR;
  conn->stream.waiting = true;
  MHD_suspend_connection(conn->stream.mc);
  return 0;
}

struct MHD_Response *proxy__stream_response(struct proxy__conn *conn,
                                            uint64_t size)
{
  conn->stream.down_off = 0;
  return MHD_create_response_from_callback(size, 16 * 1024, proxy_stream_reader,
                                           conn, NULL);
}

void proxy__stream_wake(struct proxy__conn *conn)
{
  if(conn->stream.waiting) {
    conn->stream.waiting = false;
    MHD_resume_connection(conn->stream.mc);
  }
}

void proxy__stream_head(struct proxy__conn *conn)
{
  long code = 0;
  char label[80];

  if(!conn->req.stream || conn->stream.live ||
     conn->fwd_state != PROXY__FWD_RUNNING)
    return;
  curl_easy_getinfo(conn->curl, CURLINFO_RESPONSE_CODE, &code);
  if(code < 200 || code > 299)
    return; /* relayed whole when its transfer ends */
  proxy__relay(conn, &conn->fwd, (unsigned)code, &conn->pending, true);
  if(!conn->pending.response)
    return; /* out of memory: relayed whole at the end */
  proxy__note(conn, KB_NOTE_NONE,
              "%s: the published server answered %ld: the answer streams "
              "to the client as it comes",
              proxy__conn_label(conn, label, sizeof(label)), code);
  conn->stream.live = true;
  conn->stream.mc = conn->mc;
  conn->fwd_state = PROXY__FWD_DONE;
  if(conn->suspended) {
    conn->suspended = false;
    MHD_resume_connection(conn->mc);
  }
}

bool proxy__stream_finish(struct proxy__conn *conn, CURLcode res)
{
  char label[80];

  if(!conn->stream.live || conn->stream.up_done)
    return false;
  curl_multi_remove_handle(conn->loop->multi, conn->curl);
  proxy__busy_unlink(conn);
  curl_easy_setopt(conn->curl, CURLOPT_TIMEOUT_MS,
                   conn->proxy->upstream_timeout_ms);
  conn->stream.up_done = true;
  proxy__note(conn, KB_NOTE_NONE,
              "%s: the published server ended the streamed answer (%s); "
              "closing the client's connection with it",
              proxy__conn_label(conn, label, sizeof(label)),
              res == CURLE_OK ? "complete" : curl_easy_strerror(res));
  proxy__stream_wake(conn);
  return true;
}

/* Cuts conn's streamed transfer when the client's side ended first: its
 * channel's upstream connection closes with it (libcurl closes a
 * connection whose transfer is cut). A request never answered (an
 * RPC_IN_DATA) adds what its decision counted (the type 3 verified, the
 * request forwarded); it is not an answered request. */
static void proxy_stream_cut(struct proxy__conn *conn)
{
  char label[80];

  if(conn->fwd_state != PROXY__FWD_RUNNING &&
     !(conn->stream.live && !conn->stream.up_done))
    return;
  proxy__note(conn, KB_NOTE_NONE,
              "%s: the client's %s ended after %zu body bytes: the "
              "upstream channel is closed with it",
              proxy__conn_label(conn, label, sizeof(label)),
              conn->stream.live ? "answer" : "request", conn->req.body_seen);
  curl_multi_remove_handle(conn->loop->multi, conn->curl);
  proxy__busy_unlink(conn);
  curl_easy_setopt(conn->curl, CURLOPT_TIMEOUT_MS,
                   conn->proxy->upstream_timeout_ms);
  conn->stream.up_done = true;
  if(conn->fwd_state == PROXY__FWD_RUNNING) {
    proxy__stats_add(conn->proxy, &conn->pending.delta);
    memset(&conn->pending, 0, sizeof(conn->pending));
    conn->fwd_state = PROXY__FWD_IDLE;
  }
}

void proxy__stream_end(struct proxy__conn *conn)
{
  if(!conn->req.stream)
    return;
  proxy_stream_cut(conn);
  if(conn->fwd_state == PROXY__FWD_DONE && conn->pending.response) {
    MHD_destroy_response(conn->pending.response);
    conn->pending.response = NULL;
    conn->fwd_state = PROXY__FWD_IDLE;
  }
  memset(&conn->stream, 0, sizeof(conn->stream));
}

void proxy__stream_client_left(struct proxy__conn *conn)
{
  int unread = 0;

  if(!conn->peer_gone || !conn->req.stream)
    return;
  if(conn->stream.live) {
    /* A streamed answer waiting for bytes ends with its client. */
    conn->stream.gone = true;
    proxy__stream_wake(conn);
  }
  /* A channel whose body was still coming (an RPC_IN_DATA): once
   * libmicrohttpd has read what came before the FIN, its transfer is cut,
   * so that the connection can close (libmicrohttpd's edge-triggered
   * epoll may never see that FIN itself). */
  else if(conn->fwd_state == PROXY__FWD_RUNNING &&
          !(ioctl(conn->peer.fd, FIONREAD, &unread) == 0 && unread > 0))
    proxy_stream_cut(conn);
}
