/*
 * test_hostile_upstream.c - the listener in front of an upstream that
 * fails (test_hostile.h): Exchange down and back, too slow, and a small
 * server that misbehaves by path (resets, garbage, truncated bodies, huge
 * or odd headers).
 */
#define _GNU_SOURCE /* memmem, strcasestr, accept4 */
#include <check.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "test_hostile.h"

/* ---- a misbehaving upstream -------------------------------------------- */

/* A small HTTP server that misbehaves by path: /ok answers 200 "ok",
 * /slow never answers, /reset resets the connection (RST), /garbage
 * answers bytes that are not HTTP, /truncated closes in the middle of its
 * body, /headers sends 100 KiB of headers. Thread per connection. */
#define MB_MAX_CONNS 64

struct mb {
  int lfd;
  uint16_t port;
  int stop[2]; /* a pipe: readable once stopping */
  pthread_t acceptor;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  pthread_t threads[MB_MAX_CONNS];
  size_t nconns;
  unsigned requests;
  unsigned slow_waiting; /* /slow requests being held */
};

/* The misbehaving upstream a test is running, for mb_teardown. */
static struct mb *mb_live;

/* Waits until fd is readable or the server stops; returns false on stop. */
static bool mb_wait(struct mb *m, int fd)
{
  struct pollfd p[2] = {{fd, POLLIN, 0}, {m->stop[0], POLLIN, 0}};
  while(poll(p, 2, -1) < 0)
    if(errno != EINTR)
      return false;
  return !(p[1].revents & POLLIN);
}

/* Serves one upstream connection, which it owns and closes. */
static void *mb_conn_main(void *arg)
{
  struct mb *m = ((void **)arg)[0];
  int fd = (int)(intptr_t)((void **)arg)[1];
  char buf[65536];
  size_t have = 0;
  free(arg);

  for(;;) {
    char *end;
    char path[128] = "";
    char *cl;
    size_t head, body = 0;
    ssize_t n;

    while(!(end = memmem(buf, have, "\r\n\r\n", 4))) {
      if(have == sizeof(buf) || !mb_wait(m, fd))
        goto out;
      n = recv(fd, buf + have, sizeof(buf) - have, 0);
      if(n <= 0)
        goto out;
      have += (size_t)n;
    }
    head = (size_t)(end - buf) + 4;
    sscanf(buf, "%*s %127s", path);
    cl = strcasestr(buf, "\r\nContent-Length:");
    if(cl && cl < end)
      body = strtoul(cl + 17, NULL, 10);
    while(have < head + body) {
      if(have == sizeof(buf) || !mb_wait(m, fd))
        goto out;
      n = recv(fd, buf + have, sizeof(buf) - have, 0);
      if(n <= 0)
        goto out;
      have += (size_t)n;
    }
    memmove(buf, buf + head + body, have - head - body);
    have -= head + body;
    pthread_mutex_lock(&m->lock);
    m->requests++;
    if(!strcmp(path, "/slow"))
      m->slow_waiting++;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);

    if(!strncmp(path, "/ok", 3)) {
      static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain"
                               "\r\nContent-Length: 3\r\n\r\nok\n";
      if(send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL) < 0)
        goto out;
      continue;
    }
    if(!strcmp(path, "/slow")) {
      /* Hold the request until the proxy gives up or we stop. */
      while(mb_wait(m, fd) && recv(fd, buf, sizeof(buf), 0) > 0)
        ;
    }
    else if(!strcmp(path, "/reset")) {
      /* Closing with a zero linger sends RST instead of FIN. */
      struct linger l = {1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    else if(!strcmp(path, "/garbage")) {
      static const char junk[] = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
      (void)send(fd, junk, sizeof(junk) - 1, MSG_NOSIGNAL);
    }
    else if(!strcmp(path, "/truncated")) {
      static const char part[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                                 "\r\nshort";
      (void)send(fd, part, sizeof(part) - 1, MSG_NOSIGNAL);
    }
    else if(!strcmp(path, "/odd-headers")) {
      /* An awkward answer libcurl still takes (it refuses a line without
       * a colon or with a NUL: 502, as "/garbage"): more header lines than
       * the relay's stack array, a hop-by-hop field named by Connection
       * and an obsolete folded line, then more fields. */
      static char odd[8192];
      size_t len = (size_t)snprintf(odd, sizeof(odd),
                                    "HTTP/1.1 200 OK\r\nConnection: close, "
                                    "X-Drop\r\nX-Drop: hop\r\n");
      int k;
      for(k = 0; k < 100; k++)
        len += (size_t)snprintf(odd + len, sizeof(odd) - len, "X-H%d: %d\r\n",
                                k, k);
      len += (size_t)snprintf(odd + len, sizeof(odd) - len,
                              "X-Folded: a\r\n b\r\n");
      len += (size_t)snprintf(odd + len, sizeof(odd) - len,
                              "X-After: yes\r\nContent-Length: 2\r\n\r\nok");
      (void)send(fd, odd, len, MSG_NOSIGNAL);
    }
    else if(!strcmp(path, "/headers")) {
      static char big[100 * 1024 + 128];
      size_t len =
          (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Big: ");
      memset(big + len, 'h', 100 * 1024);
      len += 100 * 1024;
      len += (size_t)snprintf(big + len, sizeof(big) - len,
                              "\r\nContent-Length: 2\r\n\r\nok");
      (void)send(fd, big, len, MSG_NOSIGNAL);
    }
    /* Every misbehaviour ends the connection. */
    goto out;
  }
out:
  close(fd);
  return NULL;
}

static void *mb_accept_main(void *arg)
{
  struct mb *m = arg;
  while(mb_wait(m, m->lfd)) {
    int fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
    void **a;
    if(fd < 0)
      continue;
    pthread_mutex_lock(&m->lock);
    if(m->nconns == MB_MAX_CONNS) {
      pthread_mutex_unlock(&m->lock);
      close(fd);
      continue;
    }
    a = malloc(2 * sizeof(*a));
    ck_assert_ptr_nonnull(a);
    a[0] = m;
    a[1] = (void *)(intptr_t)fd;
    ck_assert_int_eq(
        pthread_create(&m->threads[m->nconns], NULL, mb_conn_main, a), 0);
    m->nconns++;
    pthread_mutex_unlock(&m->lock);
  }
  return NULL;
}

static void mb_start(struct mb *m)
{
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);

  memset(m, 0, sizeof(*m));
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->cond, NULL);
  ck_assert_int_eq(pipe(m->stop), 0);
  m->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(m->lfd, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(m->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ck_assert_int_eq(listen(m->lfd, 64), 0);
  ck_assert_int_eq(getsockname(m->lfd, (struct sockaddr *)&sa, &len), 0);
  m->port = ntohs(sa.sin_port);
  ck_assert_int_eq(pthread_create(&m->acceptor, NULL, mb_accept_main, m), 0);
  mb_live = m;
}

static void mb_stop(struct mb *m)
{
  size_t i;
  mb_live = NULL;
  ck_assert_int_eq(write(m->stop[1], "x", 1), 1);
  pthread_join(m->acceptor, NULL);
  for(i = 0; i < m->nconns; i++)
    pthread_join(m->threads[i], NULL);
  close(m->lfd);
  close(m->stop[0]);
  close(m->stop[1]);
  pthread_cond_destroy(&m->cond);
  pthread_mutex_destroy(&m->lock);
}

/* Starts Exchange on port (0 = any), as hx_start does: on the fixed clock,
 * into e's trace, resolving names from e's table; returns it. */
static struct backend *hx_backend_start(struct hx *e, uint16_t port)
{
  struct backend_config bc;
  struct backend *be = NULL;
  char err[256];

  memset(&bc, 0, sizeof(bc));
  bc.port = port;
  bc.clock.now_ms = kbt_now;
  bc.trace = kbt_trace_sink(&e->env.trace);
  bc.names = e->kb_names;
  ck_assert_msg(backend_start(&bc, &be, err, sizeof(err)) == 0, "%s", err);
  return be;
}

/* Starts the proxy in front of a misbehaving upstream. */
static void hx_start_mb(struct hx *e, struct mb *m, long timeout_ms)
{
  char url[64];
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, timeout_ms, 0, url};
  mb_start(m);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)m->port);
  hx_start(e, &o);
}

/* On an authenticated connection, GET path; returns the status and leaves
 * the body in r. */
static int hx_get(struct rc *c, const char *path, struct rc_resp *r)
{
  struct kb_buf req;
  kb_buf_init(&req, 4096);
  kb_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
  ck_assert(rc_send(c, req.data, req.len));
  kb_buf_free(&req);
  ck_assert(rc_read(c, r));
  return r->status;
}

/* An authenticated connection to the proxy in front of a misbehaving
 * upstream: the handshake's forward goes to /ok. */
static void hx_auth_on_ok(struct hx *e, struct rc *c)
{
  struct ntlm_message chal;
  struct rc_resp r;
  char *t3;
  hx_open(c, e);
  kbt_ntlm_leg1(c, &chal);
  t3 = kbt_ntlm_type3(&chal, NTLM_SCHEME_NTLM, "alice", T_ALICE_PASSWORD);
  ck_assert_int_eq(rc_post(c, "/ok", t3, "x", 1, &r), 200);
  ck_assert_str_eq(r.body, "ok\n");
  rc_resp_free(&r);
  free(t3);
  ntlm_message_free(&chal);
}

START_TEST(test_backend_down)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc c;
  struct rc_resp r;
  char want[256];

  struct sockaddr_in sa;
  int one = 1;
  int hold;

  hx_start(&e, &o);
  hx_open(&c, &e);
  ck_assert_int_eq(kbt_ntlm_handshake(&c, "alice", T_ALICE_PASSWORD), 200);
  backend_stop(e.env.be);
  e.env.be = NULL;
  /* Exchange's port stays bound, not listening, while it is down: a
   * connection there is refused, and no socket can take the port as its
   * own ephemeral one (a connection to itself would not be refused). */
  hold = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge(hold, 0);
  ck_assert_int_eq(
      setsockopt(hold, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(e.backend_port);
  ck_assert_msg(bind(hold, (struct sockaddr *)&sa, sizeof(sa)) == 0,
                "bind(%u): %s", (unsigned)e.backend_port, strerror(errno));
  ck_assert_int_eq(rc_post(&c, T_EWS, NULL, oof_body, strlen(oof_body), &r),
                   502);
  snprintf(want, sizeof(want),
           "ISA ISA01: the published server %s could not be reached: ",
           e.env.backend_url);
  ck_assert_msg(!strncmp(r.body, want, strlen(want)), "%s", r.body);
  ck_assert_ptr_eq(strchr(r.body, '\n'), r.body + r.body_len - 1);
  rc_resp_free(&r);
  /* Exchange comes back on its port: the same client connection, still
   * authenticated, gets through again; so does a new client. */
  close(hold);
  e.env.be = hx_backend_start(&e, e.backend_port);
  ck_assert_int_eq(rc_post(&c, T_EWS, NULL, oof_body, strlen(oof_body), &r),
                   200);
  rc_resp_free(&r);
  rc_close(&c);
  hx_assert_serves(&e);
  hx_stop(&e);
}
END_TEST

struct hx_slow_arg {
  struct rc *c;
  struct rc_resp r;
};

static void *hx_slow_main(void *arg)
{
  struct hx_slow_arg *a = arg;
  hx_get(a->c, "/slow", &a->r);
  return NULL;
}

START_TEST(test_backend_slow)
{
  static struct hx e; /* static: see hx_teardown */
  static struct mb m;
  struct rc slow, other;
  struct rc_resp r;
  struct hx_slow_arg arg;
  pthread_t th;
  char want[256];

  hx_start_mb(&e, &m, 400);
  hx_auth_on_ok(&e, &slow);
  hx_auth_on_ok(&e, &other);
  arg.c = &slow;
  ck_assert_int_eq(pthread_create(&th, NULL, hx_slow_main, &arg), 0);
  /* Once the upstream holds the slow request, another client is served. */
  pthread_mutex_lock(&m.lock);
  while(!m.slow_waiting)
    pthread_cond_wait(&m.cond, &m.lock);
  pthread_mutex_unlock(&m.lock);
  ck_assert_int_eq(hx_get(&other, "/ok", &r), 200);
  rc_resp_free(&r);
  pthread_join(th, NULL);
  ck_assert_int_eq(arg.r.status, 504);
  snprintf(want, sizeof(want),
           "ISA ISA01: the published server http://127.0.0.1:%u did not "
           "answer within 400 ms: ",
           (unsigned)m.port);
  ck_assert_msg(!strncmp(arg.r.body, want, strlen(want)), "%s", arg.r.body);
  rc_resp_free(&arg.r);
  /* The slow client's connection is still usable. */
  ck_assert_int_eq(hx_get(&slow, "/ok", &r), 200);
  rc_resp_free(&r);
  rc_close(&slow);
  rc_close(&other);
  hx_stop(&e);
  mb_stop(&m);
}
END_TEST

START_TEST(test_backend_misbehaves)
{
  static struct hx e; /* static: see hx_teardown */
  static struct mb m;
  struct rc c;
  struct rc_resp r;
  static const char *const paths[] = {"/reset", "/garbage", "/truncated",
                                      "/headers"};
  size_t i;
  struct proxy_stats s;

  hx_start_mb(&e, &m, 0);
  hx_auth_on_ok(&e, &c);
  for(i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    ck_assert_msg(hx_get(&c, paths[i], &r) == 502, "%s -> %d", paths[i],
                  r.status);
    ck_assert_msg(!strncmp(r.body, "ISA ISA01: the ", 15), "%s -> %s", paths[i],
                  r.body);
    ck_assert_ptr_eq(strchr(r.body, '\n'), r.body + r.body_len - 1);
    rc_resp_free(&r);
    /* The same client connection goes on, on a new upstream connection. */
    ck_assert_int_eq(hx_get(&c, "/ok", &r), 200);
    rc_resp_free(&r);
  }
  proxy_stats(e.env.px, &s);
  ck_assert_uint_eq(s.upstream_errors, 4);
  rc_close(&c);
  /* And a new client is served as usual. */
  hx_auth_on_ok(&e, &c);
  rc_close(&c);
  hx_stop(&e);
  mb_stop(&m);
}
END_TEST

/* The relay of an awkward but complete answer: every field reaches the
 * client in order except the hop-by-hop ones; the folded line's
 * continuation is dropped, not glued to another field; nothing after them
 * is lost. */
START_TEST(test_backend_odd_headers)
{
  static struct hx e; /* static: see hx_teardown */
  static struct mb m;
  struct rc c;
  struct rc_resp r;
  char want[32];
  const char *at;
  int k;

  hx_start_mb(&e, &m, 0);
  hx_auth_on_ok(&e, &c);
  ck_assert_msg(hx_get(&c, "/odd-headers", &r) == 200, "%d %s", r.status,
                r.body);
  ck_assert_str_eq(r.body, "ok");
  at = r.head;
  for(k = 0; k < 100; k++) {
    snprintf(want, sizeof(want), "\r\nX-H%d: %d\r\n", k, k);
    at = strstr(at, want);
    ck_assert_msg(at != NULL, "%s missing or out of order", want + 2);
  }
  ck_assert_ptr_nonnull(strstr(r.head, "\r\nX-After: yes\r\n"));
  ck_assert_ptr_nonnull(strstr(r.head, "\r\nX-Folded: a\r\n"));
  ck_assert_ptr_nonnull(strstr(r.head, "\r\nVia: 1.1 ISA01\r\n"));
  ck_assert_ptr_null(strstr(r.head, "X-Drop"));
  ck_assert_ptr_null(strstr(r.head, "\r\n b\r\n"));
  rc_resp_free(&r);
  /* The upstream connection closed after it; the client's goes on. */
  ck_assert_int_eq(hx_get(&c, "/ok", &r), 200);
  rc_resp_free(&r);
  rc_close(&c);
  hx_stop(&e);
  mb_stop(&m);
}
END_TEST

/* Stops what a failed test left running: the misbehaving upstream too. */
static void mb_teardown(void)
{
  hx_teardown();
  if(mb_live)
    mb_stop(mb_live);
}

Suite *hostile_upstream_suite(void)
{
  Suite *s = suite_create("upstream");
  TCase *tc = tcase_create("upstream");

  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, mb_teardown);
  tcase_add_test(tc, test_backend_down);
  tcase_add_test(tc, test_backend_slow);
  tcase_add_test(tc, test_backend_misbehaves);
  tcase_add_test(tc, test_backend_odd_headers);
  suite_add_tcase(s, tc);
  return s;
}
