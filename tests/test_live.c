/*
 * test_live.c - the live topology a trainer drives: `kbsim serve FILE`
 * (members behind the TCP balancer, admin endpoint), `kbsim client`
 * sessions through the balancer, `kbsim ctl` changing members while
 * connections stay open, the admin endpoint refusing bad requests, curl
 * --ntlm through the balancer; and the balancer itself in-process: large
 * bodies both ways, half-closes passed on, both sides closed together.
 *
 * Everything is on 127.0.0.1 with port 0; tests synchronise on printed
 * lines, responses, thread joins and EOFs, never on sleeps.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "balancer.h"
#include "client.h"
#include "kb_buf.h"
#include "proc.h"

#define HALF_PATCHED SCENARIOS_DIR "/half-patched-array.ini"
#define ALICE "FABRIKAM\\alice:Passw0rd!"
#define BOB "FABRIKAM\\bob:B0b-secret"

/* ---- helpers: sockets ------------------------------------------------- */

/* Opens a listening socket on 127.0.0.1, port 0; returns it and its port. */
static int listen_any(uint16_t *port)
{
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  ck_assert_int_eq(listen(fd, 16), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  *port = ntohs(sin.sin_port);
  return fd;
}

/* Returns a socket bound to a loopback port that does not listen: a
 * connect to that port is refused, and, while the socket stays open, no
 * other socket - not even a connecting one picking its source port - can
 * take the port (closing a listener instead leaves the port free for
 * anyone, including a TCP self-connect). */
static int bound_not_listening(uint16_t *port)
{
  struct sockaddr_in sin;
  socklen_t len = sizeof(sin);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
  *port = ntohs(sin.sin_port);
  return fd;
}

static int connect_to(uint16_t port)
{
  struct sockaddr_in sin;
  /* No test may hang on a socket: a read that gets nothing in 20 s fails
   * with EAGAIN instead. */
  struct timeval tv = {20, 0};
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons(port);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  return fd;
}

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
  size_t i;

  for(i = 0; i < len; i++) {
    seed = seed * 1103515245u + 12345u;
    buf[i] = (uint8_t)(seed >> 16);
  }
}

/* Writes out (then shuts the write side when shut is set) while reading
 * into in until the peer's EOF, on one non-blocking socket. Returns 0 for
 * a clean EOF, or the errno that ended the read. */
static int pump(int fd, const uint8_t *out, size_t outlen, bool shut,
                struct kb_buf *in)
{
  size_t sent = 0;
  bool shut_done = !shut;
  char buf[65536];
  int fl = fcntl(fd, F_GETFL);

  ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
  for(;;) {
    struct pollfd p = {fd, POLLIN, 0};
    ssize_t n;

    if(sent < outlen)
      p.events |= POLLOUT;
    ck_assert_int_ge(poll(&p, 1, -1), 0);
    if(p.revents & POLLOUT) {
      n = send(fd, out + sent, outlen - sent, MSG_NOSIGNAL);
      if(n > 0)
        sent += (size_t)n;
    }
    if(sent == outlen && !shut_done) {
      ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
      shut_done = true;
    }
    if(p.revents & (POLLIN | POLLHUP | POLLERR)) {
      n = recv(fd, buf, sizeof(buf), 0);
      if(n > 0)
        ck_assert_int_eq(kb_buf_add(in, buf, (size_t)n), KB_BUF_OK);
      else if(!n) {
        ck_assert_uint_eq(sent, outlen);
        break;
      }
      else if(errno != EAGAIN && errno != EINTR) {
        int e = errno;
        ck_assert_int_eq(fcntl(fd, F_SETFL, fl), 0);
        return e;
      }
    }
  }
  ck_assert_int_eq(fcntl(fd, F_SETFL, fl), 0);
  return 0;
}

/* ---- helpers: member servers for the balancer ------------------------- */

enum member_mode {
  MEMBER_ECHO = 0, /* echo every byte until EOF, then close */
  MEMBER_SPEAK     /* send speak_len bytes, shut the write side, then
                      count what arrives until EOF */
};

struct member_srv {
  int lfd;
  uint16_t port;
  enum member_mode mode;
  unsigned conns; /* connections to serve before the thread ends */
  size_t speak_len;
  pthread_t thread;
  /* Read after join only. */
  size_t received;
  unsigned clean_eofs; /* connections that ended with a FIN */
  unsigned resets;     /* ... with an error (RST) */
};

static void *member_thread(void *arg)
{
  struct member_srv *m = arg;
  unsigned i;

  for(i = 0; i < m->conns; i++) {
    int fd = accept(m->lfd, NULL, NULL);
    char buf[65536];

    if(fd < 0)
      break;
    if(m->mode == MEMBER_SPEAK) {
      uint8_t *out = malloc(m->speak_len);
      size_t off = 0;

      fill_pattern(out, m->speak_len, 99);
      while(off < m->speak_len) {
        ssize_t n = send(fd, out + off, m->speak_len - off, MSG_NOSIGNAL);
        if(n <= 0)
          break;
        off += (size_t)n;
      }
      free(out);
      shutdown(fd, SHUT_WR);
    }
    for(;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      size_t off = 0;

      if(n == 0) {
        m->clean_eofs++;
        break;
      }
      if(n < 0) {
        m->resets++;
        break;
      }
      m->received += (size_t)n;
      while(m->mode == MEMBER_ECHO && off < (size_t)n) {
        ssize_t w = send(fd, buf + off, (size_t)n - off, MSG_NOSIGNAL);
        if(w <= 0)
          break;
        off += (size_t)w;
      }
    }
    close(fd);
  }
  return NULL;
}

static void member_start(struct member_srv *m, enum member_mode mode,
                         unsigned conns)
{
  memset(m, 0, sizeof(*m));
  m->lfd = listen_any(&m->port);
  m->mode = mode;
  m->conns = conns;
  m->speak_len = (size_t)1 << 20;
  ck_assert_int_eq(pthread_create(&m->thread, NULL, member_thread, m), 0);
}

static void member_join(struct member_srv *m)
{
  ck_assert_int_eq(pthread_join(m->thread, NULL), 0);
  close(m->lfd);
}

static struct balancer *balancer_over(const struct member_srv *members,
                                      size_t n, enum balancer_mode mode,
                                      uint64_t seed)
{
  struct balancer_config cfg;
  struct balancer *b = NULL;
  char err[256];
  size_t i;

  memset(&cfg, 0, sizeof(cfg));
  cfg.nmembers = n;
  for(i = 0; i < n; i++)
    cfg.members[i].port = members[i].port;
  cfg.mode = mode;
  cfg.seed = seed;
  ck_assert_msg(!balancer_start(&cfg, &b, err, sizeof(err)), "%s", err);
  ck_assert_uint_gt(balancer_port(b), 0);
  return b;
}

/* ---- balancer, in-process --------------------------------------------- */

/* 4 MiB each way through an echo member, the client half-closing after
 * its last byte: every byte comes back in order, then a clean EOF; the
 * pair is closed on both sides and counted. The next connection goes to
 * the other member (round-robin). */
START_TEST(balancer_splices_large_bodies_both_ways)
{
  const size_t len = (size_t)4 << 20;
  struct member_srv m[2];
  struct balancer_stats st;
  struct balancer *b;
  struct kb_buf in;
  uint8_t *out = malloc(len);
  int fd;

  ck_assert_ptr_nonnull(out);
  fill_pattern(out, len, 7);
  member_start(&m[0], MEMBER_ECHO, 1);
  member_start(&m[1], MEMBER_ECHO, 1);
  b = balancer_over(m, 2, BALANCER_ROUND_ROBIN, 0);

  kb_buf_init(&in, len + 1);
  fd = connect_to(balancer_port(b));
  ck_assert_int_eq(pump(fd, out, len, true, &in), 0);
  close(fd);
  ck_assert_uint_eq(in.len, len);
  ck_assert_int_eq(memcmp(in.data, out, len), 0);
  /* The client saw the EOF only after the balancer closed the pair. */
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.accepted, 1);
  ck_assert_uint_eq(st.open, 0);
  ck_assert_uint_eq(st.bytes_to_members, len);
  ck_assert_uint_eq(st.bytes_to_clients, len);
  ck_assert_uint_eq(st.member_connections[0], 1);
  ck_assert_uint_eq(st.member_connections[1], 0);
  member_join(&m[0]);
  ck_assert_uint_eq(m[0].received, len);
  ck_assert_uint_eq(m[0].clean_eofs, 1);
  ck_assert_uint_eq(m[0].resets, 0);

  kb_buf_reset(&in);
  fd = connect_to(balancer_port(b));
  ck_assert_int_eq(pump(fd, out, 1000, true, &in), 0);
  close(fd);
  ck_assert_uint_eq(in.len, 1000);
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.member_connections[1], 1);
  ck_assert_uint_eq(st.member_open[0] + st.member_open[1], 0);
  member_join(&m[1]);
  ck_assert_uint_eq(m[1].clean_eofs, 1);

  balancer_stop(b);
  kb_buf_free(&in);
  free(out);
}
END_TEST

/* The member speaks first and half-closes: the client gets 1 MiB and EOF
 * while its own direction stays open; it then sends 256 KiB and
 * half-closes, and the member gets every byte and a clean EOF. */
START_TEST(balancer_passes_half_close_from_member)
{
  const size_t len = (size_t)256 << 10;
  struct member_srv m;
  struct balancer_stats st;
  struct balancer *b;
  struct kb_buf in;
  uint8_t *expect = malloc((size_t)1 << 20);
  uint8_t *out = malloc(len);
  int fd;

  fill_pattern(expect, (size_t)1 << 20, 99);
  fill_pattern(out, len, 5);
  member_start(&m, MEMBER_SPEAK, 1);
  b = balancer_over(&m, 1, BALANCER_ROUND_ROBIN, 0);
  kb_buf_init(&in, (size_t)2 << 20);
  fd = connect_to(balancer_port(b));
  ck_assert_int_eq(pump(fd, NULL, 0, false, &in), 0);
  ck_assert_uint_eq(in.len, (size_t)1 << 20);
  ck_assert_int_eq(memcmp(in.data, expect, in.len), 0);
  /* The member's FIN did not end the client's direction. */
  kb_buf_reset(&in);
  ck_assert_int_eq(pump(fd, out, len, true, &in), 0);
  ck_assert_uint_eq(in.len, 0);
  member_join(&m);
  ck_assert_uint_eq(m.received, len);
  ck_assert_uint_eq(m.clean_eofs, 1);
  /* The member saw its EOF from the close that ended the pair. */
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.open, 0);
  ck_assert_uint_eq(st.bytes_to_members, len);
  ck_assert_uint_eq(st.bytes_to_clients, (size_t)1 << 20);
  close(fd);
  balancer_stop(b);
  kb_buf_free(&in);
  free(out);
  free(expect);
}
END_TEST

/* A client that resets its connection takes the member's side down with
 * it; a member that is down gets the client closed at once. */
START_TEST(balancer_closes_both_sides_together)
{
  struct linger lg = {1, 0};
  struct member_srv m;
  struct balancer_stats st;
  struct balancer *b;
  struct balancer_config cfg;
  char err[256], c;
  uint16_t dead_port;
  int fd, dead;

  member_start(&m, MEMBER_ECHO, 1);
  b = balancer_over(&m, 1, BALANCER_ROUND_ROBIN, 0);
  fd = connect_to(balancer_port(b));
  /* One echoed byte proves the pair is spliced before the reset. */
  ck_assert_int_eq(send(fd, "x", 1, 0), 1);
  ck_assert_int_eq(recv(fd, &c, 1, 0), 1);
  ck_assert_int_eq(c, 'x');
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(fd);
  member_join(&m);
  ck_assert_uint_eq(m.clean_eofs + m.resets, 1);
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.open, 0);
  balancer_stop(b);

  /* A port nobody listens on. */
  dead = bound_not_listening(&dead_port);
  memset(&cfg, 0, sizeof(cfg));
  cfg.nmembers = 1;
  cfg.members[0].port = dead_port;
  ck_assert_msg(!balancer_start(&cfg, &b, err, sizeof(err)), "%s", err);
  fd = connect_to(balancer_port(b));
  {
    ssize_t n = recv(fd, &c, 1, 0);
    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET),
                  "recv gave %zd (%s)", n, strerror(errno));
  }
  close(fd);
  close(dead);
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.accepted, 1);
  ck_assert_uint_eq(st.connect_failed, 1);
  ck_assert_uint_eq(st.open, 0);
  balancer_stop(b);

  /* Bad configurations are refused with a reason. */
  memset(&cfg, 0, sizeof(cfg));
  ck_assert_int_eq(balancer_start(&cfg, &b, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "needs 1 to 16 members"));
  cfg.nmembers = 1;
  cfg.bind_host = "localhost";
  ck_assert_int_eq(balancer_start(&cfg, &b, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "is not a numeric address"));
}
END_TEST

/* At the cap, new connections wait in the kernel's queue and are served,
 * in order, as earlier ones end. */
START_TEST(balancer_cap_queues_connections)
{
  struct member_srv m;
  struct balancer_config cfg;
  struct balancer_stats st;
  struct balancer *b;
  struct kb_buf in;
  char err[256];
  int fd[3], i;

  member_start(&m, MEMBER_ECHO, 3);
  memset(&cfg, 0, sizeof(cfg));
  cfg.nmembers = 1;
  cfg.members[0].port = m.port;
  cfg.max_connections = 1;
  cfg.buffer_size = 512; /* small buffers: many passes per body */
  ck_assert_msg(!balancer_start(&cfg, &b, err, sizeof(err)), "%s", err);
  for(i = 0; i < 3; i++)
    fd[i] = connect_to(balancer_port(b)); /* the kernel completes them */
  kb_buf_init(&in, 70000);
  for(i = 0; i < 3; i++) {
    uint8_t out[65536];

    fill_pattern(out, sizeof(out), (uint32_t)i);
    kb_buf_reset(&in);
    ck_assert_int_eq(pump(fd[i], out, sizeof(out), true, &in), 0);
    ck_assert_uint_eq(in.len, sizeof(out));
    ck_assert_int_eq(memcmp(in.data, out, sizeof(out)), 0);
    close(fd[i]);
    /* The next one may already be accepted: its turn came. */
    balancer_stats(b, &st);
    ck_assert_uint_ge(st.accepted, (uint64_t)i + 1);
    ck_assert_uint_le(st.open, 1);
  }
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.accepted, 3);
  ck_assert_uint_eq(st.open, 0);
  member_join(&m);
  ck_assert_uint_eq(m.clean_eofs, 3);
  balancer_stop(b);
  kb_buf_free(&in);
}
END_TEST

/* Which member (0..2) each of n sequential connections went to. */
static void record_picks(enum balancer_mode mode, uint64_t seed, size_t *picks,
                         size_t n)
{
  struct member_srv m[3];
  struct balancer_stats before, after;
  struct balancer *b;
  struct kb_buf in;
  size_t i, j;

  for(j = 0; j < 3; j++)
    member_start(&m[j], MEMBER_ECHO, (unsigned)n);
  b = balancer_over(m, 3, mode, seed);
  kb_buf_init(&in, 16);
  for(i = 0; i < n; i++) {
    int fd;

    balancer_stats(b, &before);
    fd = connect_to(balancer_port(b));
    kb_buf_reset(&in);
    ck_assert_int_eq(pump(fd, (const uint8_t *)"ping", 4, true, &in), 0);
    ck_assert_uint_eq(in.len, 4);
    close(fd);
    balancer_stats(b, &after);
    ck_assert_uint_eq(after.accepted, before.accepted + 1);
    picks[i] = 99;
    for(j = 0; j < 3; j++)
      if(after.member_connections[j] == before.member_connections[j] + 1)
        picks[i] = j;
    ck_assert_uint_lt(picks[i], 3);
  }
  balancer_stop(b);
  /* The members wait for more connections than they got: wake them. */
  for(j = 0; j < 3; j++) {
    shutdown(m[j].lfd, SHUT_RDWR);
    member_join(&m[j]);
  }
  kb_buf_free(&in);
}

/* Round-robin follows connection order; seeded draws repeat for a seed. */
START_TEST(balancer_picks_by_mode)
{
  size_t a[12], c[12], i;
  bool differs = false;

  record_picks(BALANCER_ROUND_ROBIN, 0, a, 12);
  for(i = 0; i < 12; i++)
    ck_assert_uint_eq(a[i], i % 3);
  record_picks(BALANCER_SEEDED, 42, a, 12);
  record_picks(BALANCER_SEEDED, 42, c, 12);
  for(i = 0; i < 12; i++) {
    ck_assert_uint_eq(a[i], c[i]);
    if(a[i] != i % 3)
      differs = true;
  }
  ck_assert_msg(differs, "seed 42 gave the round-robin order");
}
END_TEST

/* ---- helpers: kbsim processes ----------------------------------------- */

/* A running `kbsim serve`: its pid, pipes and the ports it printed. */
struct served {
  pid_t pid;
  int outfd, errfd;
  struct kb_buf banner; /* stdout up to and including "serving until" */
  unsigned balancer, admin, listener, exchange;
  unsigned members[4];
};

/* Port printed after label ("Admin:") as http://127.0.0.1:PORT/, or 0. */
static unsigned banner_port(const struct served *s, const char *label)
{
  const char *at = strstr(s->banner.data, label);
  unsigned port = 0;

  if(at)
    sscanf(at + strlen(label), " http://127.0.0.1:%u/", &port);
  return port;
}

/* Starts kbsim serve with args (NULL-terminated, after "serve") and reads
 * its banner up to "serving until". The server dies with the test
 * (PR_SET_PDEATHSIG), whatever the test's fate. */
static void serve_start(struct served *s, const char *const *args)
{
  char *argv[16] = {KBSIM_BIN, "serve"};
  int o[2], e[2];
  size_t i;

  for(i = 0; args[i]; i++)
    argv[2 + i] = (char *)args[i];
  memset(s, 0, sizeof(*s));
  kb_buf_init(&s->banner, 16384);
  ck_assert_int_eq(pipe(o), 0);
  ck_assert_int_eq(pipe(e), 0);
  s->pid = fork();
  /* The child only makes async-signal-safe calls before exec (no
   * assertion: Check's would allocate, and a lock another thread held at
   * the fork would hang it). */
  if(!s->pid) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]);
    close(o[1]);
    close(e[0]);
    close(e[1]);
    execv(argv[0], argv);
    _exit(127);
  }
  ck_assert_int_ge(s->pid, 0);
  close(o[1]);
  close(e[1]);
  s->outfd = o[0];
  s->errfd = e[0];
  for(;;) {
    char c;
    ssize_t n = read(s->outfd, &c, 1);

    if(n <= 0)
      break;
    ck_assert_int_eq(kb_buf_add(&s->banner, &c, 1), KB_BUF_OK);
    if(c == '\n' && strstr(s->banner.data, "serving until"))
      break;
  }
  ck_assert_msg(s->banner.data && strstr(s->banner.data, "serving until"),
                "serve did not start:\n%s",
                s->banner.data ? s->banner.data : "");
  s->balancer = banner_port(s, "Balancer:");
  s->admin = banner_port(s, "Admin:");
  s->listener = banner_port(s, "ISA listener:");
  s->exchange = banner_port(s, "Exchange:");
  s->members[0] = banner_port(s, "Member ISA01:");
  s->members[1] = banner_port(s, "Member ISA02:");
}

/* Stops the server with SIGTERM; it must exit 0 having said so. */
static void serve_stop(struct served *s)
{
  struct proc_out p;

  ck_assert_int_eq(kill(s->pid, SIGTERM), 0);
  proc_collect(s->pid, s->outfd, s->errfd, &p);
  ck_assert_msg(p.status == 0, "serve exited %d: %s", p.status, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "stopping on SIGTERM"));
  ck_assert_str_eq(p.err.data, "");
  proc_free(&p);
  kb_buf_free(&s->banner);
}

/* Runs kbsim with args (NULL-terminated, after the program name). */
static void kbsim(struct proc_out *p, const char *const *args)
{
  char *argv[24] = {KBSIM_BIN};
  size_t i;

  for(i = 0; args[i]; i++)
    argv[1 + i] = (char *)args[i];
  proc_run(argv, p);
}

/* `kbsim client` through the balancer as user; returns its exit code and
 * checks that it printed the verdict that code means. */
static int client_session(const struct served *s, const char *user)
{
  char url[64];
  const char *args[] = {"client", "--url", url, "--user", user, NULL};
  struct proc_out p;
  int status;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->balancer);
  kbsim(&p, args);
  status = p.status;
  ck_assert_msg(status == 0 || status == 1, "client exited %d: %s%s", status,
                p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "POST 0  autodiscover"));
  ck_assert_ptr_nonnull(
      strstr(p.out.data, status ? "Verdict: FABRIKAM" : "Verdict: no error"));
  ck_assert_int_eq(!!strstr(p.out.data, "Notifications:      Outlook "
                                        "Integration Error"),
                   status);
  proc_free(&p);
  return status;
}

/* `kbsim ctl --admin 127.0.0.1:PORT args...`; returns its output. */
static void ctl(const struct served *s, struct proc_out *p, const char *a1,
                const char *a2, const char *a3)
{
  char admin[32];
  const char *args[] = {"ctl", "--admin", admin, a1, a2, a3, NULL};

  snprintf(admin, sizeof(admin), "127.0.0.1:%u", s->admin);
  kbsim(p, args);
}

/* ---- helpers: HTTP to the admin endpoint ------------------------------ */

static size_t to_buf(char *data, size_t size, size_t n, void *ctx)
{
  return kb_buf_add(ctx, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* method url -> status, body, headers (both NUL-terminated). */
static long http(const char *method, const char *url, struct kb_buf *body,
                 struct kb_buf *headers)
{
  CURL *c = curl_easy_init();
  long status = 0;

  kb_buf_init(body, (size_t)1 << 20);
  kb_buf_init(headers, 65536);
  kb_buf_add(body, "", 0);
  kb_buf_add(headers, "", 0);
  ck_assert_ptr_nonnull(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if(!strcmp(method, "POST")) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  return status;
}

/* GET /status as JSON (owned by the caller). */
static json_t *status_of(const struct served *s)
{
  char url[64];
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", s->admin);
  ck_assert_int_eq(http("GET", url, &body, &headers), 200);
  j = json_loads(body.data, 0, &jerr);
  ck_assert_msg(json_is_object(j), "status is not JSON: %s", body.data);
  kb_buf_free(&body);
  kb_buf_free(&headers);
  return j;
}

/* Member i's (from 0) integer field in a status. */
static long long member_int(json_t *st, size_t i, const char *key)
{
  json_t *m = json_array_get(json_object_get(st, "members"), i);
  json_t *v = json_object_get(m, key);

  ck_assert_msg(json_is_integer(v), "member %zu has no integer %s", i, key);
  return (long long)json_integer_value(v);
}

static const char *member_str(json_t *st, size_t i, const char *key)
{
  json_t *m = json_array_get(json_object_get(st, "members"), i);
  json_t *v = json_object_get(m, key);

  ck_assert_msg(json_is_string(v), "member %zu has no string %s", i, key);
  return json_string_value(v);
}

static long long section_int(json_t *st, const char *section, const char *key)
{
  json_t *v = json_object_get(json_object_get(st, section), key);

  ck_assert_msg(json_is_integer(v), "%s has no integer %s", section, key);
  return (long long)json_integer_value(v);
}

/* ---- the trainer's flow ----------------------------------------------- */

/* half-patched-array: ISA01 fixed, ISA02 RTM. The balancer sends the k-th
 * connection to member (k - 1) mod 2, so sessions alternate ISA01, ISA02. */
START_TEST(trainer_flow)
{
  static const char *const args[] = {HALF_PATCHED, "--proxy",     "127.0.0.1:0",
                                     "--admin",    "127.0.0.1:0", NULL};
  struct served s;
  struct proc_out p;
  struct client_config cfg;
  struct client *cl = NULL;
  struct client_post_result r;
  char url[64], err[256];
  long long isa02_conns, isa02_empty;
  json_t *st;

  serve_start(&s, args);
  ck_assert_uint_gt(s.balancer, 0);
  ck_assert_uint_gt(s.admin, 0);
  ck_assert_uint_gt(s.members[0], 0);
  ck_assert_uint_gt(s.members[1], 0);
  ck_assert_ptr_nonnull(
      strstr(s.banner.data, "Member ISA01: http://127.0.0.1:"));
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(rtm+hotfix, script run; policy "
                                              "per-request: hotfix and script: "
                                              "KB 942638 applied)"));
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(rtm, no script; policy "
                                              "per-connection: as shipped"));
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(round-robin per TCP connection "
                                              "over 2 members)"));

  /* Connection 1 -> ISA01 (fixed), connection 2 -> ISA02 (the bug). */
  ck_assert_int_eq(client_session(&s, ALICE), 0);
  ck_assert_int_eq(client_session(&s, BOB), 1);
  st = status_of(&s);
  ck_assert_str_eq(json_string_value(json_object_get(st, "scenario")),
                   "half-patched-array");
  ck_assert_int_eq(section_int(st, "balancer", "connections"), 2);
  ck_assert_int_eq(member_int(st, 0, "connections"), 1);
  ck_assert_int_eq(member_int(st, 0, "balanced_connections"), 1);
  ck_assert_int_eq(member_int(st, 0, "forwarded_empty_posts"), 0);
  ck_assert_int_eq(member_int(st, 1, "connections"), 1);
  ck_assert_int_eq(member_int(st, 1, "forwarded_empty_posts"), 2);
  ck_assert_int_eq(member_int(st, 1, "reauth_skipped"), 2);
  ck_assert_int_eq(section_int(st, "exchange", "empty_posts"), 2);
  ck_assert_str_eq(member_str(st, 1, "policy"), "per-connection");
  json_decref(st);

  ctl(&s, &p, "status", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(
      strstr(p.out.data, "member  patch       script  policy"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA02   rtm         no      "
                                           "per-connection      1"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "2 empty (answered with a SOAP "
                                           "500)"));
  proc_free(&p);

  /* The script alone on an RTM member changes nothing. */
  ctl(&s, &p, "apply-fix", "--member", "2");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: script run; policy stays per-connection "
                               "(script run, no effect without the hotfix)\n");
  proc_free(&p);
  st = status_of(&s);
  ck_assert_str_eq(member_str(st, 1, "why"),
                   "script run, no effect without the hotfix");
  ck_assert_str_eq(member_str(st, 1, "policy"), "per-connection");
  ck_assert(json_is_true(json_object_get(
      json_array_get(json_object_get(st, "members"), 1), "script")));
  json_decref(st);
  ck_assert_int_eq(client_session(&s, ALICE), 0); /* connection 3: ISA01 */
  ck_assert_int_eq(client_session(&s, BOB), 1);   /* connection 4: ISA02 */
  ck_assert_int_eq(client_session(&s, ALICE), 0); /* connection 5: ISA01 */

  /* Connection 6 (ISA02) stays open across the hotfix: a session of our
   * own, stepped by hand. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.balancer);
  memset(&cfg, 0, sizeof(cfg));
  cfg.id = 1;
  cfg.base_url = url;
  cfg.domain = "FABRIKAM";
  cfg.user = "alice";
  cfg.password = "Passw0rd!";
  cfg.ews_posts = 2;
  ck_assert_msg(!client_create(&cfg, &cl, err, sizeof(err)), "%s", err);
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert(r.new_connection);
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_SERVER_ERROR); /* still the bug */
  st = status_of(&s);
  isa02_conns = member_int(st, 1, "connections");
  isa02_empty = member_int(st, 1, "forwarded_empty_posts");
  ck_assert_int_eq(isa02_conns, 3);
  ck_assert_int_eq(isa02_empty, 5);
  /* Ours at least (earlier sessions' closes may still be on their way). */
  ck_assert_int_ge(member_int(st, 1, "open_connections"), 1);
  json_decref(st);

  ctl(&s, &p, "hotfix", "--member", "ISA02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: hotfix installed; policy "
                               "per-connection -> per-request (hotfix and "
                               "script: KB 942638 applied)\n");
  proc_free(&p);

  /* The next request on the open connection is challenged: clean, and
   * on the same connection. */
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert_uint_eq(r.legs, 2);
  ck_assert_int_eq(r.leg1_status, 401);
  ck_assert_int_eq(r.final_status, 200);
  ck_assert(!r.new_connection);
  ck_assert_uint_eq(r.connection, 1);
  st = status_of(&s);
  ck_assert_int_eq(member_int(st, 1, "connections"), isa02_conns);
  ck_assert_int_ge(member_int(st, 1, "open_connections"), 1);
  ck_assert_int_eq(member_int(st, 1, "forwarded_empty_posts"), isa02_empty);
  ck_assert_str_eq(member_str(st, 1, "policy"), "per-request");
  json_decref(st);

  /* New sessions on both members are clean now. */
  ck_assert_int_eq(client_session(&s, ALICE), 0); /* connection 7: ISA01 */
  ck_assert_int_eq(client_session(&s, BOB), 0);   /* connection 8: ISA02 */
  client_destroy(cl);
  st = status_of(&s);
  ck_assert_int_eq(member_int(st, 1, "connections"), isa02_conns + 1);
  ck_assert_int_eq(member_int(st, 1, "forwarded_empty_posts"), isa02_empty);
  ck_assert_int_eq(section_int(st, "exchange", "empty_posts"), isa02_empty);
  json_decref(st);

  /* Revert on every member: the hotfix stays, the script goes. */
  ctl(&s, &p, "revert", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data,
                   "ISA01: script undone; policy per-request -> "
                   "per-connection (hotfix installed, no effect until the "
                   "script is run)\n"
                   "ISA02: script undone; policy per-request -> "
                   "per-connection (hotfix installed, no effect until the "
                   "script is run)\n");
  proc_free(&p);
  ck_assert_int_eq(client_session(&s, ALICE), 1); /* connection 9: ISA01 */
  ck_assert_int_eq(client_session(&s, BOB), 1);   /* connection 10: ISA02 */

  /* And apply-fix on every member fixes both again. */
  ctl(&s, &p, "apply-fix", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA01: script run; policy "
                                           "per-connection -> per-request"));
  proc_free(&p);
  ck_assert_int_eq(client_session(&s, ALICE), 0);
  ck_assert_int_eq(client_session(&s, BOB), 0);
  st = status_of(&s);
  ck_assert_int_eq(section_int(st, "balancer", "connections"), 12);
  ck_assert_int_eq(member_int(st, 0, "connections"), 6);
  ck_assert_int_eq(member_int(st, 1, "connections"), 6);
  json_decref(st);
  serve_stop(&s);
}
END_TEST

/* The README's short demo: SP1 everywhere but the script never run. The
 * sessions fail; `ctl apply-fix` alone fixes them. */
START_TEST(readme_demo_apply_fix_fixes_sp1)
{
  static const char *const args[] = {SCENARIOS_DIR "/sp1-without-script.ini",
                                     "--admin", "127.0.0.1:0", NULL};
  struct served s;
  struct proc_out p;

  serve_start(&s, args);
  ck_assert_int_eq(client_session(&s, ALICE), 1);
  ctl(&s, &p, "apply-fix", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA01: script run; policy per-connection -> "
                               "per-request (SP1 and script: KB 942638 "
                               "applied)\n");
  proc_free(&p);
  ck_assert_int_eq(client_session(&s, ALICE), 0);
  serve_stop(&s);
}
END_TEST

/* Counts the lines of s that equal line exactly. */
static int count_lines(const char *s, const char *line)
{
  size_t n = strlen(line);
  int count = 0;

  while(*s) {
    size_t l = strcspn(s, "\n");
    if(l == n && !strncmp(s, line, n))
      count++;
    s += l + (s[l] == '\n');
  }
  return count;
}

/* `kbsim client --pcap --transcript --json --html` against `kbsim serve
 * --pcap --transcript` records its own hop on the real clock: tshark decodes
 * the handshake and the bug's 500s, and tests/pcap-judge finds the capture and
 * the transcript the same bytes, message by message, each header block in one
 * segment. */
START_TEST(client_and_serve_record_a_session)
{
  char dir[256], url[64], pcap[512], txt[512], json[512], html[512];
  char spcap[512], stxt[512];
  const char *args[] = {SCENARIOS_DIR "/bug.ini", "--pcap", spcap,
                        "--transcript",           stxt,     NULL};
  char *sjudge[] = {TESTS_DIR "/pcap-judge", "--live", spcap, stxt, NULL};
  char *sfields[] = {"/usr/bin/tshark",
                     "-n",
                     "-r",
                     spcap,
                     "-Y",
                     "http.request || http.response.code == 500",
                     "-T",
                     "fields",
                     "-e",
                     "ip.dst",
                     "-e",
                     "http.response.code",
                     NULL};
  const char *cargs[] = {
      "client",       "--url", url,      "--user", ALICE,    "--pcap", pcap,
      "--transcript", txt,     "--json", json,     "--html", html,     NULL};
  char *judge[] = {TESTS_DIR "/pcap-judge", pcap, txt, NULL};
  char *fields[] = {"/usr/bin/tshark",
                    "-n",
                    "-r",
                    pcap,
                    "-Y",
                    "ntlmssp || http.response",
                    "-T",
                    "fields",
                    "-e",
                    "ntlmssp.messagetype",
                    "-e",
                    "http.response.code",
                    NULL};
  struct served s;
  struct proc_out p;

  proc_tmpdir("kbsim-live", dir, sizeof(dir));
  snprintf(pcap, sizeof(pcap), "%s/live.pcap", dir);
  snprintf(txt, sizeof(txt), "%s/live.txt", dir);
  snprintf(json, sizeof(json), "%s/live.json", dir);
  snprintf(html, sizeof(html), "%s/live.html", dir);
  snprintf(spcap, sizeof(spcap), "%s/serve.pcap", dir);
  snprintf(stxt, sizeof(stxt), "%s/serve.txt", dir);
  serve_start(&s, args);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.balancer);
  kbsim(&p, cargs);
  ck_assert_msg(p.status == 1, "client exited %d: %s%s", p.status, p.out.data,
                p.err.data);
  proc_free(&p);
  serve_stop(&s);

  proc_run(fields, &p);
  ck_assert_msg(p.status == 0, "tshark: %s", p.err.data);
  /* Autodiscover's type 1 -> 401 + type 2, type 3 -> 200, then both EWS
   * POSTs' type 1 forwarded -> 500. */
  ck_assert_str_eq(p.out.data, "\t401\n"
                               "0x00000001\t\n"
                               "0x00000002\t401\n"
                               "0x00000003\t\n"
                               "\t200\n"
                               "0x00000001\t\n"
                               "\t500\n"
                               "0x00000001\t\n"
                               "\t500\n");
  proc_free(&p);
  proc_run(judge, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "1 connections, 23 frames, 0 "
                                           "forwarded requests, 0 failures"));
  proc_free(&p);
  {
    /* The report of what the client saw; what only the listener knows is
     * null, not a made-up 0, and a live run has no seed. */
    json_error_t jerr;
    json_t *root = json_load_file(json, 0, &jerr);
    json_t *sum = json_object_get(root, "summary");
    size_t hlen;
    char *page = proc_slurp(html, &hlen);
    const char *at = page;
    int why = 0;

    ck_assert_msg(root != NULL, "%s: %s", json, jerr.text);
    ck_assert(json_is_null(json_object_get(root, "seed")));
    ck_assert_int_eq(json_array_size(json_object_get(root, "exchanges")), 5);
    ck_assert_int_eq(json_integer_value(json_object_get(sum, "posts_failed")),
                     2);
    ck_assert(json_is_null(json_object_get(sum, "backend_empty_posts")));
    json_decref(root);
    while((at = strstr(at, "class=\"remark failwhy\"")) != NULL) {
      why++;
      at++;
    }
    ck_assert_int_eq(why, 2);
    free(page);
  }
  /* serve --pcap --transcript recorded both hops of the same session,
   * through the balancer and the member's upstream, written on SIGTERM:
   * the 5 requests from the client, the 3 ISA forwarded, the bug's 500 on
   * each hop. */
  proc_run(sfields, &p);
  ck_assert_msg(p.status == 0, "tshark: %s", p.err.data);
  ck_assert_int_eq(count_lines(p.out.data, "127.0.0.2\t"), 5);
  ck_assert_int_eq(count_lines(p.out.data, "127.0.0.3\t"), 3);
  ck_assert_int_eq(count_lines(p.out.data, "127.0.0.2\t500"), 2);
  ck_assert_int_eq(count_lines(p.out.data, "127.1.255.0\t500"), 2);
  proc_free(&p);
  proc_run(sjudge, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, ": 2 connections, "));
  ck_assert_ptr_nonnull(strstr(p.out.data, " 0 failures"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* When ISA closes first (it answers "Connection: close" and the client
 * waits for the end), the balancer sees the member's FIN first: the
 * transcript says who closed, and the capture's first FIN is ISA's. */
START_TEST(serve_records_who_closed)
{
  static const char req[] = "GET /EWS/Exchange.asmx HTTP/1.1\r\nHost: a\r\n"
                            "Connection: close\r\n\r\n";
  char dir[256], pcap[512], txt[512], buf[4096];
  const char *args[] = {SCENARIOS_DIR "/bug.ini", "--pcap", pcap,
                        "--transcript",           txt,      NULL};
  char *fins[] = {"/usr/bin/tshark",
                  "-n",
                  "-r",
                  pcap,
                  "-Y",
                  "tcp.flags.fin == 1",
                  "-T",
                  "fields",
                  "-e",
                  "tcp.srcport",
                  NULL};
  struct sockaddr_in sin;
  struct served s;
  struct proc_out p;
  char *text;
  size_t len;
  ssize_t n;
  int fd;

  proc_tmpdir("kbsim-live", dir, sizeof(dir));
  snprintf(pcap, sizeof(pcap), "%s/closed.pcap", dir);
  snprintf(txt, sizeof(txt), "%s/closed.txt", dir);
  serve_start(&s, args);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)s.balancer);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  ck_assert_int_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
  /* Read to the end: ISA's FIN, passed on by the balancer. */
  while((n = recv(fd, buf, sizeof(buf), 0)) > 0)
    ;
  ck_assert_int_eq(n, 0);
  close(fd);
  serve_stop(&s);

  text = proc_slurp(txt, &len);
  ck_assert_msg(strstr(text, "connection closed by ISA: its FIN reached the "
                             "balancer first") != NULL,
                "%s", text);
  free(text);
  proc_run(fins, &p);
  ck_assert_msg(p.status == 0, "tshark: %s", p.err.data);
  ck_assert_msg(!strncmp(p.out.data, "80\n", 3), "first FIN from %s",
                p.out.data);
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* ---- the admin endpoint and ctl refuse what is wrong ------------------ */

/* method path -> status and a JSON {"error": ...} containing want. */
static void refused(const struct served *s, const char *method,
                    const char *path, long want_status, const char *want,
                    const char *allow)
{
  char url[256];
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j, *e;
  long status;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", s->admin, path);
  status = http(method, url, &body, &headers);
  ck_assert_msg(status == want_status, "%s %s: %ld %s", method, path, status,
                body.data);
  ck_assert_ptr_nonnull(strstr(headers.data, "Content-Type: application/json"));
  if(allow) {
    char line[64];
    snprintf(line, sizeof(line), "Allow: %s\r\n", allow);
    ck_assert_msg(strstr(headers.data, line) != NULL, "%s %s: %s", method, path,
                  headers.data);
  }
  j = json_loads(body.data, 0, &jerr);
  e = json_object_get(j, "error");
  ck_assert_msg(json_is_string(e), "%s %s: %s", method, path, body.data);
  ck_assert_msg(strstr(json_string_value(e), want) != NULL, "%s %s: %s", method,
                path, json_string_value(e));
  json_decref(j);
  kb_buf_free(&body);
  kb_buf_free(&headers);
}

START_TEST(admin_refuses_bad_requests)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     NULL};
  struct served s;
  struct proc_out p;
  json_t *st;
  char *nl;

  serve_start(&s, args);
  refused(&s, "GET", "/nope", 404, "no such endpoint '/nope'", NULL);
  refused(&s, "POST", "/members/9/apply-fix", 404,
          "no member '9' in this array; members: 1 ISA01, 2 ISA02", NULL);
  refused(&s, "POST", "/members/ISA07/revert", 404, "no member 'ISA07'", NULL);
  refused(&s, "POST", "/members/0/revert", 404, "no member '0'", NULL);
  refused(&s, "POST", "/members//revert", 404, "no such endpoint", NULL);
  refused(&s, "POST", "/members/1", 404, "no such endpoint", NULL);
  refused(&s, "POST", "/members/1/frob", 404,
          "unknown action 'frob' for ISA01; use apply-fix, revert, hotfix or "
          "sp1",
          NULL);
  refused(&s, "POST", "/members/isa01/apply-fix/again", 404,
          "unknown action 'apply-fix/again'", NULL);
  refused(&s, "GET", "/members/1/apply-fix", 405, "use POST", "POST");
  refused(&s, "DELETE", "/apply-fix", 405, "use POST", "POST");
  refused(&s, "POST", "/status", 405, "use GET", "GET, HEAD");
  refused(&s, "POST", "/hotfix", 400,
          "hotfix is installed on one member at a time: POST "
          "/members/N/hotfix with N one of 1 ISA01, 2 ISA02",
          NULL);
  refused(&s, "POST", "/sp1", 400, "one member at a time", NULL);

  /* Nothing changed. */
  st = status_of(&s);
  ck_assert_str_eq(member_str(st, 0, "policy"), "per-request");
  ck_assert_str_eq(member_str(st, 1, "policy"), "per-connection");
  ck_assert_str_eq(member_str(st, 1, "patch"), "rtm");
  json_decref(st);

  /* ctl: refused by the endpoint -> 1, one line naming why. */
  ctl(&s, &p, "sp1", "--member", "9");
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data, "");
  ck_assert_str_eq(p.err.data, "kbsim: the admin endpoint refused POST "
                               "/members/9/sp1 (HTTP 404): no member '9' in "
                               "this array; members: 1 ISA01, 2 ISA02\n");
  proc_free(&p);
  /* Names work as well as numbers, in any case; repeating is harmless. */
  ctl(&s, &p, "sp1", "--member", "isa02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: SP1 installed; policy stays "
                               "per-connection (SP1 includes the hotfix, no "
                               "effect until the script is run)\n");
  proc_free(&p);
  ctl(&s, &p, "hotfix", "--member", "2");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: SP1 already includes the hotfix; "
                               "policy stays per-connection (SP1 includes the "
                               "hotfix, no effect until the script is run)\n");
  proc_free(&p);
  ctl(&s, &p, "revert", "--member", "2");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA02: script was not run, "
                                           "nothing to undo"));
  proc_free(&p);
  serve_stop(&s);

  /* ctl: nothing listening -> 1, one line. The admin port is free now. */
  ctl(&s, &p, "status", NULL, NULL);
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data, "");
  ck_assert_msg(!strncmp(p.err.data,
                         "kbsim: cannot reach the admin endpoint "
                         "at http://127.0.0.1:",
                         58),
                "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.err.data, "is `kbsim serve` running with "
                                           "--admin 127.0.0.1:"));
  nl = strchr(p.err.data, '\n');
  ck_assert_ptr_nonnull(nl);
  ck_assert_str_eq(nl, "\n");
  proc_free(&p);
}
END_TEST

/* Bad ctl and client invocations: exit 2, one line, then the usage. */
START_TEST(bad_arguments)
{
  static const char *cases[][14] = {
      {"ctl", "status", NULL},
      {"ctl", "--admin", "127.0.0.1", "status", NULL},
      {"ctl", "--admin", "127.0.0.1:0", "status", NULL},
      {"ctl", "--admin", "127.0.0.1:9", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "reboot", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "hotfix", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "sp1", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "status", "--member", "1", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "revert", "--member", "a/b", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "status", "extra", NULL},
      {"client", NULL},
      {"client", "--url", "http://127.0.0.1:9/", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", "alice", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--kind",
       "ie6", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--posts",
       "0", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--think",
       "soon", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--think",
       "9s..1s", NULL},
      {"client", "--url", "ftp://127.0.0.1:9/", "--user", ALICE, NULL},
      {"serve", "/nonexistent/scenario.ini", NULL},
      {"serve", HALF_PATCHED, "--policy", "per-request", NULL},
      {"serve", HALF_PATCHED, "--user", ALICE, NULL},
      {"serve", HALF_PATCHED, HALF_PATCHED, NULL},
      {"serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
       "--policy", "per-request", "--user", ALICE, "--auth", "kerberos", NULL},
  };
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct proc_out p;
    char *nl;

    kbsim(&p, cases[i]);
    ck_assert_msg(p.status == 2, "case %zu (%s) exited %d: %s", i, cases[i][0],
                  p.status, p.err.data);
    ck_assert_msg(!strncmp(p.err.data, "kbsim: ", 7), "case %zu: %s", i,
                  p.err.data);
    ck_assert_msg(!strstr(p.err.data, "Passw0rd!"),
                  "case %zu shows the "
                  "password: %s",
                  i, p.err.data);
    nl = strchr(p.err.data, '\n');
    ck_assert_ptr_nonnull(nl);
    /* A scenario file that cannot be read is not a usage problem. */
    if(strcmp(cases[i][1] ? cases[i][1] : "", "/nonexistent/scenario.ini"))
      ck_assert_msg(!strncmp(nl, "\n\nusage: kbsim", 14), "case %zu: %s", i,
                    p.err.data);
    ck_assert_str_eq(p.out.data, "");
    proc_free(&p);
  }
}
END_TEST

/* curl's own NTLM (authenticate the connection once) through the
 * balancer, on both members; a wrong password is refused; Outlook's kind
 * of client is never hit by the bug, Communicator's is; a listener that
 * is not there makes the user see the error. */
START_TEST(curl_and_clients_through_the_balancer)
{
  static const char *const args[] = {HALF_PATCHED, NULL};
  struct served s;
  struct proc_out p;
  char url[96], base[64];
  char *curl_ok[] = {"/usr/bin/curl",
                     "-sS",
                     "--ntlm",
                     "-u",
                     ALICE,
                     "-H",
                     "Content-Type: text/xml; charset=utf-8",
                     "-d",
                     "@" TESTS_DIR "/data/oof-request.xml",
                     "-w",
                     "\nstatus=%{http_code}",
                     url,
                     NULL};
  char *curl_bad[] = {"/usr/bin/curl",
                      "-sS",
                      "--ntlm",
                      "-u",
                      "FABRIKAM\\alice:wrong",
                      "-d",
                      "@" TESTS_DIR "/data/oof-request.xml",
                      "-w",
                      "\nstatus=%{http_code}",
                      url,
                      NULL};
  const char *outlook[] = {"client", "--url",   base,      "--user", BOB,
                           "--kind", "outlook", "--posts", "3",      NULL};
  const char *one_shot[] = {"client", "--url",  base,       "--user",
                            BOB,      "--kind", "one-shot", NULL};
  const char *nobody[] = {"client", "--url", "http://127.0.0.1:9/",
                          "--user", ALICE,   NULL};
  const char *think[] = {"client",  "--url", base,      "--user", ALICE,
                         "--think", "20ms",  "--posts", "1",      NULL};
  json_t *st;
  int i;

  serve_start(&s, args);
  /* The admin endpoint is always there with a scenario file. */
  ck_assert_uint_gt(s.admin, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx",
           s.balancer);
  snprintf(base, sizeof(base), "http://127.0.0.1:%u", s.balancer);
  for(i = 0; i < 2; i++) { /* connections 1 and 2: ISA01, ISA02 */
    proc_run(curl_ok, &p);
    ck_assert_msg(p.status == 0, "curl: %s", p.err.data);
    ck_assert_ptr_nonnull(strstr(p.out.data, "GetUserOofSettingsResponse"));
    ck_assert_ptr_nonnull(strstr(p.out.data, "status=200"));
    proc_free(&p);
  }
  proc_run(curl_bad, &p); /* connection 3: ISA01 */
  ck_assert_ptr_nonnull(strstr(p.out.data, "status=401"));
  ck_assert_ptr_null(strstr(p.out.data, "GetUserOofSettingsResponse"));
  proc_free(&p);

  kbsim(&p, outlook); /* connection 4: ISA02, per-connection */
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "(outlook, 3 EWS POSTs)"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: no error for "
                                           "FABRIKAM\\bob"));
  proc_free(&p);
  kbsim(&p, one_shot); /* connections 5.. : a new one per POST */
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  proc_free(&p);

  st = status_of(&s);
  ck_assert_int_eq(member_int(st, 0, "auth_failed"), 1);
  ck_assert_int_eq(member_int(st, 1, "forwarded_empty_posts"), 0);
  ck_assert_int_eq(member_int(st, 0, "connections") +
                       member_int(st, 1, "connections"),
                   section_int(st, "balancer", "connections"));
  ck_assert_int_ge(member_int(st, 1, "connections"), 2);
  ck_assert_int_eq(section_int(st, "exchange", "oof_ok"), 2 + 2 + 1);
  json_decref(st);

  kbsim(&p, think);
  ck_assert_ptr_nonnull(strstr(p.out.data, "(after 20 ms thinking)"));
  proc_free(&p);

  kbsim(&p, nobody);
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "transport-error"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Notifications:      Outlook "
                                           "Integration Error"));
  proc_free(&p);
  serve_stop(&s);
}
END_TEST

/* The original flag form keeps working, with --auth and --admin added. */
START_TEST(serve_flag_form_with_auth_and_admin)
{
  static const char *const args[] = {
      "--proxy",        "127.0.0.1:0", "--backend", "127.0.0.1:0", "--policy",
      "per-connection", "--user",      ALICE,       "--auth",      "basic",
      "--admin",        "127.0.0.1:0", NULL};
  struct served s;
  struct proc_out p;
  char url[96];
  char *curl_basic[] = {"/usr/bin/curl",
                        "-sS",
                        "--basic",
                        "-u",
                        ALICE,
                        "-d",
                        "@" TESTS_DIR "/data/oof-request.xml",
                        "-w",
                        "\nstatus=%{http_code}",
                        url,
                        NULL};
  json_t *st;

  serve_start(&s, args);
  ck_assert_uint_gt(s.listener, 0);
  ck_assert_uint_gt(s.admin, 0);
  ck_assert_uint_eq(s.balancer, 0);
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(policy per-connection, basic "
                                              "authentication)"));
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx",
           s.listener);
  proc_run(curl_basic, &p);
  ck_assert_msg(p.status == 0, "curl: %s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "status=200"));
  proc_free(&p);

  ctl(&s, &p, "sp1", "--member", "1");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  ctl(&s, &p, "apply-fix", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA01: script run; policy per-connection -> "
                               "per-request (SP1 and script: KB 942638 "
                               "applied)\n");
  proc_free(&p);
  st = status_of(&s);
  ck_assert(json_is_null(json_object_get(st, "balancer")));
  ck_assert_int_eq(member_int(st, 0, "requests"), 1);
  ck_assert_str_eq(member_str(st, 0, "policy"), "per-request");
  json_decref(st);
  serve_stop(&s);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("live");
  TCase *bal = tcase_create("balancer");
  TCase *live = tcase_create("live");
  SRunner *sr;
  int failed;

  /* A writer into a closed socket must get EPIPE, not die. */
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  tcase_set_timeout(bal, 30);
  tcase_add_test(bal, balancer_splices_large_bodies_both_ways);
  tcase_add_test(bal, balancer_passes_half_close_from_member);
  tcase_add_test(bal, balancer_closes_both_sides_together);
  tcase_add_test(bal, balancer_picks_by_mode);
  tcase_add_test(bal, balancer_cap_queues_connections);
  suite_add_tcase(s, bal);
  tcase_set_timeout(live, 60);
  tcase_add_test(live, trainer_flow);
  tcase_add_test(live, readme_demo_apply_fix_fixes_sp1);
  tcase_add_test(live, client_and_serve_record_a_session);
  tcase_add_test(live, serve_records_who_closed);
  tcase_add_test(live, admin_refuses_bad_requests);
  tcase_add_test(live, bad_arguments);
  tcase_add_test(live, curl_and_clients_through_the_balancer);
  tcase_add_test(live, serve_flag_form_with_auth_and_admin);
  suite_add_tcase(s, live);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  curl_global_cleanup();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
