/*
 * rc.c - a raw HTTP/1.1 client for tests: exact bytes out, responses read
 * one after the other from its own buffer (pipelining), every wait bounded
 * by a receive timeout that only a failure reaches. See rc.h.
 */
#define _GNU_SOURCE /* memmem */
#include "rc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <check.h>

/* A socket bound to 127.0.0.1:0, listening or not; see rc.h. */
int rc_loopback(bool listening, uint16_t *port)
{
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  if(listening)
    ck_assert_int_eq(listen(fd, 16), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  *port = ntohs(sin.sin_port);
  return fd;
}

int rc_dial(uint16_t port)
{
  struct sockaddr_in sin;
  struct timeval tv = {RC_WAIT_S, 0};
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  return fd;
}

/* Connects to port from source (NULL: the kernel's choice); when names is
 * not NULL the connection is claimed as name in it before anything is
 * sent. */
void rc_connect(struct rc *c, const char *source, uint16_t port,
                struct kb_names *names, const char *name)
{
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  struct timeval tv = {RC_WAIT_S, 0};

  memset(c, 0, sizeof(*c));
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(c->fd, 0);
  ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)),
                   0);
  ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)),
                   0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  if(source) {
    struct sockaddr_in from;
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, source, &from.sin_addr), 1);
    ck_assert_int_eq(bind(c->fd, (struct sockaddr *)&from, sizeof(from)), 0);
  }
  ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  snprintf(c->name, sizeof(c->name), "%s", name ? name : "raw client");
  if(names) {
    ck_assert_int_eq(getsockname(c->fd, (struct sockaddr *)&sa, &len), 0);
    kb_names_claim(names, ntohs(sa.sin_port), port, c->name);
  }
}

void rc_close(struct rc *c)
{
  if(c->fd >= 0)
    close(c->fd);
  c->fd = -1;
}

/* Writes all len bytes; returns false when the peer is gone. */
bool rc_send(struct rc *c, const void *data, size_t len)
{
  const char *p = data;
  while(len) {
    ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
    if(n < 0 && errno == EINTR)
      continue;
    if(n <= 0)
      return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

/* Reads more bytes into the buffer. Returns the count, 0 at end of stream
 * (or a reset), and fails the test on the receive timeout. */
size_t rc_fill(struct rc *c)
{
  ssize_t n;
  ck_assert_uint_lt(c->have, sizeof(c->buf));
  do
    n = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
  while(n < 0 && errno == EINTR);
  ck_assert_msg(!(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)),
                "%s: no answer before the receive timeout", c->name);
  if(n <= 0)
    return 0;
  c->have += (size_t)n;
  return (size_t)n;
}

/* Returns true when the peer closes the connection (end of stream or a
 * reset) with nothing more to read; waits up to RC_WAIT_S. */
bool rc_closed_by_peer(struct rc *c)
{
  return c->have == 0 && rc_fill(c) == 0;
}

bool rc_next_header(const char *head, const char *name, const char **at,
                    const char **v, size_t *vlen)
{
  const char *p = *at ? *at : strstr(head, "\r\n");
  size_t n = strlen(name);

  while(p && p[2]) {
    const char *line = p + 2;
    const char *end = strstr(line, "\r\n");
    if(!end)
      break;
    p = end;
    if((size_t)(end - line) > n && line[n] == ':' &&
       !strncasecmp(line, name, n)) {
      *v = line + n + 1;
      while(**v == ' ')
        (*v)++;
      *vlen = (size_t)(end - *v);
      *at = p;
      return true;
    }
  }
  return false;
}

/* Copies the value of header name in r into out; returns out or NULL. */
const char *rc_header(const struct rc_resp *r, const char *name, char *out,
                      size_t outlen)
{
  const char *at = NULL, *v;
  size_t len;

  if(!rc_next_header(r->head, name, &at, &v, &len))
    return NULL;
  snprintf(out, outlen, "%.*s", (int)len, v);
  return out;
}

/* Returns how many times header name occurs in r with exactly value. */
unsigned rc_header_count(const struct rc_resp *r, const char *name,
                         const char *value)
{
  const char *at = NULL, *v;
  unsigned count = 0;
  size_t len;

  while(rc_next_header(r->head, name, &at, &v, &len))
    count += len == strlen(value) && !strncmp(v, value, len);
  return count;
}

/* Reads one response. Returns false (status 0) when the connection closed
 * before a status line. */
bool rc_read(struct rc *c, struct rc_resp *r)
{
  char *end;
  size_t head_len;
  size_t want = 0;
  char v[32];
  bool by_length;

  memset(r, 0, sizeof(*r));
  for(;;) {
    end = c->have ? memmem(c->buf, c->have, "\r\n\r\n", 4) : NULL;
    if(end)
      break;
    if(!rc_fill(c)) {
      ck_assert_msg(c->have == 0, "%s: closed inside a response head", c->name);
      return false;
    }
  }
  head_len = (size_t)(end - c->buf) + 4;
  ck_assert_uint_lt(head_len, sizeof(r->head));
  memcpy(r->head, c->buf, head_len);
  r->head[head_len] = '\0';
  ck_assert_msg(sscanf(r->head, "HTTP/1.%*d %d", &r->status) == 1,
                "%s: not a status line: %.80s", c->name, r->head);
  by_length = rc_header(r, "Content-Length", v, sizeof(v)) != NULL;
  if(by_length)
    want = strtoul(v, NULL, 10);
  memmove(c->buf, c->buf + head_len, c->have - head_len);
  c->have -= head_len;
  if(by_length) {
    ck_assert_uint_le(want, sizeof(c->buf));
    while(c->have < want)
      ck_assert_msg(rc_fill(c) > 0, "%s: closed inside a body", c->name);
  }
  else {
    /* No length: the body runs to the end of the connection. */
    while(rc_fill(c) > 0)
      ;
    want = c->have;
  }
  r->body = malloc(want + 1);
  ck_assert_ptr_nonnull(r->body);
  memcpy(r->body, c->buf, want);
  r->body[want] = '\0';
  r->body_len = want;
  memmove(c->buf, c->buf + want, c->have - want);
  c->have -= want;
  return true;
}

void rc_resp_free(struct rc_resp *r)
{
  free(r->body);
  r->body = NULL;
}

void rc_build(struct kb_buf *out, const char *method, const char *path,
              const char *auth, const char *body, size_t len)
{
  ck_assert_int_eq(kb_buf_printf(out,
                                 "%s %s HTTP/1.1\r\n"
                                 "Accept: text/xml\r\n"
                                 "Content-Type: text/xml; charset=utf-8\r\n"
                                 "Host: autodiscover.fabrikam.com\r\n"
                                 "Content-Length: %zu\r\n",
                                 method, path, len),
                   KB_BUF_OK);
  if(auth)
    ck_assert_int_eq(kb_buf_printf(out, "Authorization: %s\r\n", auth),
                     KB_BUF_OK);
  ck_assert_int_eq(kb_buf_add(out, "\r\n", 2), KB_BUF_OK);
  if(len)
    ck_assert_int_eq(kb_buf_add(out, body, len), KB_BUF_OK);
}

int rc_post(struct rc *c, const char *path, const char *auth, const char *body,
            size_t len, struct rc_resp *r)
{
  struct kb_buf req;

  kb_buf_init(&req, (size_t)16 << 20);
  rc_build(&req, "POST", path, auth, body, len);
  ck_assert_msg(rc_send(c, req.data, req.len), "%s: send failed", c->name);
  kb_buf_free(&req);
  rc_read(c, r);
  return r->status;
}
