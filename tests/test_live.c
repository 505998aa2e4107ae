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
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "balancer/balancer.h"
#include "client/client.h"
#include "common/kb_buf.h"
#include "evidence/evidence.h"
#include "kbt.h"
#include "live/live.h"
#include "proc.h"
#include "rc.h"
#include "sim/sim_env.h"

#define HALF_PATCHED SCENARIOS_DIR "/half-patched-array.ini"
#define ALICE "FABRIKAM\\alice:Passw0rd!"
#define BOB "FABRIKAM\\bob:B0b-secret"

/* ---- helpers: sockets ------------------------------------------------- */

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
  MEMBER_SPEAK,    /* send speak_len bytes, shut the write side, then
                      count what arrives until EOF */
  MEMBER_RESET     /* echo the first byte; reset (RST) on the second */
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
      if(m->mode == MEMBER_RESET && m->received >= 2) {
        struct linger lg = {1, 0};

        /* Not checked here (no assertions off the test's thread): the
         * client's ECONNRESET says whether the reset went out. */
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        break;
      }
      while(m->mode != MEMBER_SPEAK && off < (size_t)n) {
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
  m->lfd = rc_loopback(true, &m->port);
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

/* Round-robin draws nothing; most tests record nothing. */
static const struct kb_rng no_rng = {NULL, NULL};
static const struct kb_trace no_trace = {0};

static struct balancer *balancer_over(const struct member_srv *members,
                                      size_t n, enum balancer_mode mode,
                                      struct kb_rng rng, struct kb_trace trace)
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
  cfg.rng = rng;
  cfg.trace = trace;
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
  b = balancer_over(m, 2, BALANCER_ROUND_ROBIN, no_rng, no_trace);

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
  b = balancer_over(&m, 1, BALANCER_ROUND_ROBIN, no_rng, no_trace);
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

/* What a reset through the balancer leaves: the member (MEMBER_ECHO) or
 * the client (MEMBER_RESET) reset on the other side, one note of code
 * note, and the transcript's close row row. The client sends "x" and gets
 * it back (the pair is spliced), then resets, or sends "y" for the member
 * to reset on. */
static void reset_through_balancer(enum member_mode mode, enum kb_note note,
                                   const char *row)
{
  struct linger lg = {1, 0};
  struct member_srv m;
  struct balancer_stats st;
  struct balancer *b;
  struct sim_recorder rec;
  char c, *text = NULL;
  size_t len = 0, i, notes = 0;
  FILE *out;
  int fd;

  member_start(&m, mode, 1);
  sim_recorder_init(&rec, true);
  b = balancer_over(&m, 1, BALANCER_ROUND_ROBIN, no_rng,
                    sim_recorder_as_kb(&rec));
  fd = connect_to(balancer_port(b));
  ck_assert_int_eq(send(fd, "x", 1, 0), 1);
  ck_assert_int_eq(recv(fd, &c, 1, 0), 1);
  ck_assert_int_eq(c, 'x');
  if(mode == MEMBER_RESET) {
    ssize_t n;

    ck_assert_int_eq(send(fd, "y", 1, 0), 1);
    n = recv(fd, &c, 1, 0);
    ck_assert_msg(n < 0 && errno == ECONNRESET,
                  "the client got %zd (%s), not the member's reset", n,
                  n < 0 ? strerror(errno) : "no error");
  }
  else
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(fd);
  member_join(&m);
  if(mode == MEMBER_ECHO) {
    ck_assert_uint_eq(m.resets, 1);
    ck_assert_uint_eq(m.clean_eofs, 0);
  }
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.accepted, 1);
  ck_assert_uint_eq(st.open, 0);
  balancer_stop(b); /* joins its thread: every event is in */
  for(i = 0; i < rec.count; i++)
    notes += rec.events[i].kind == KB_TRACE_NOTE && rec.events[i].note == note;
  ck_assert_uint_eq(notes, 1);
  out = open_memstream(&text, &len);
  ck_assert_ptr_nonnull(out);
  ck_assert_int_eq(evidence_write_transcript(&rec, out), 0);
  ck_assert_int_eq(fclose(out), 0);
  ck_assert_msg(strstr(text, row), "no \"%s\" in:\n%s", row, text);
  free(text);
  sim_recorder_free(&rec);
}

/* A reset on either side is passed on as a reset and said as such. */
START_TEST(balancer_passes_resets_on)
{
  reset_through_balancer(MEMBER_ECHO, KB_NOTE_CLIENT_RESET,
                         "reset by the client (RST)");
  reset_through_balancer(MEMBER_RESET, KB_NOTE_MEMBER_RESET,
                         "reset by ISA (RST)");
}
END_TEST

/* A member that is down gets the client closed at once. */
START_TEST(balancer_closes_both_sides_together)
{
  struct balancer_stats st;
  struct balancer *b;
  struct balancer_config cfg;
  struct sim_recorder rec;
  char err[256], c;
  uint16_t dead_port;
  int fd, dead;

  /* A port nobody listens on: the client's connection is closed, and the
   * evidence says the balancer closed it for want of its member, not that
   * the client did. */
  dead = rc_loopback(false, &dead_port);
  memset(&cfg, 0, sizeof(cfg));
  cfg.nmembers = 1;
  cfg.members[0].port = dead_port;
  sim_recorder_init(&rec, true);
  cfg.trace = sim_recorder_as_kb(&rec);
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
  balancer_stop(b); /* joins its thread: every event is in */
  {
    char *text = NULL;
    size_t len = 0, i, notes = 0, opens = 0, closes = 0;
    FILE *out = open_memstream(&text, &len);

    for(i = 0; i < rec.count; i++) {
      notes += rec.events[i].kind == KB_TRACE_NOTE &&
               rec.events[i].note == KB_NOTE_MEMBER_UNREACHABLE &&
               strstr(rec.events[i].text, "member 1 of the array");
      opens += rec.events[i].kind == KB_TRACE_OPEN;
      closes += rec.events[i].kind == KB_TRACE_CLOSE;
    }
    ck_assert_uint_eq(notes, 1);
    ck_assert_uint_eq(opens, 1);
    ck_assert_uint_eq(closes, 1);
    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(evidence_write_transcript(&rec, out), 0);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_msg(strstr(text, "connection closed by the balancer: it could "
                               "not connect to the member (balancer conn 1: "
                               "could not connect to member 1 of the array"),
                  "%s", text);
    ck_assert_msg(!strstr(text, "closed by the client"), "%s", text);
    free(text);
  }
  sim_recorder_free(&rec);

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

/* At the cap a new connection gets a fast 503 and the close, never a wait
 * in the kernel's backlog (issue 13: every new client hung there); once a
 * connection ends, the next one is served. */
START_TEST(balancer_cap_answers_503)
{
  struct member_srv m;
  struct balancer_config cfg;
  struct balancer_stats st;
  struct balancer *b;
  struct kb_buf in;
  char err[256], got[256];
  size_t have = 0;
  ssize_t n;
  int fd[3], i;

  member_start(&m, MEMBER_ECHO, 2);
  memset(&cfg, 0, sizeof(cfg));
  cfg.nmembers = 1;
  cfg.members[0].port = m.port;
  cfg.max_connections = 1;
  ck_assert_msg(!balancer_start(&cfg, &b, err, sizeof(err)), "%s", err);
  kb_buf_init(&in, 16);
  /* The first holds the only pair: its echo proves it is spliced. */
  fd[0] = connect_to(balancer_port(b));
  ck_assert_int_eq(send(fd[0], "ping", 4, MSG_NOSIGNAL), 4);
  for(have = 0; have < 4; have += (size_t)n)
    ck_assert_int_gt(n = recv(fd[0], got + have, 4 - have, 0), 0);
  ck_assert_int_eq(memcmp(got, "ping", 4), 0);
  fd[1] = connect_to(balancer_port(b));
  have = 0;
  while(have < sizeof(got) - 1 &&
        (n = read(fd[1], got + have, sizeof(got) - 1 - have)) > 0)
    have += (size_t)n;
  got[have] = '\0';
  ck_assert_msg(!strncmp(got, "HTTP/1.1 503 ", 13), "%s", got);
  close(fd[1]);
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.refused, 1);
  ck_assert_int_eq(shutdown(fd[0], SHUT_WR), 0);
  while(read(fd[0], got, sizeof(got)) > 0) /* the member's EOF: pair ends */
    ;
  close(fd[0]);
  /* The pair's end is the balancer's to notice: wait for its count. */
  for(i = 0; balancer_stats(b, &st), st.open; i++) {
    ck_assert_int_lt(i, 10000000);
    sched_yield();
  }
  fd[2] = connect_to(balancer_port(b));
  ck_assert_int_eq(pump(fd[2], (const uint8_t *)"pong", 4, true, &in), 0);
  ck_assert_uint_eq(in.len, 4);
  close(fd[2]);
  member_join(&m);
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
  struct sim_rng rng;
  size_t i, j;

  sim_rng_init(&rng, seed);
  for(j = 0; j < 3; j++)
    member_start(&m[j], MEMBER_ECHO, (unsigned)n);
  b = balancer_over(m, 3, mode, sim_rng_as_kb(&rng), no_trace);
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
  char token[160];      /* from the Console line */
  char token_path[512]; /* from the Token file line */
  struct kb_buf rest;   /* stdout after the banner, filled by serve_stop */
};

/* The token of the server the running test started: http() sends it. */
static char test_token[160];

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
  char *argv[24] = {KBSIM_BIN, "serve"};
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
  if(strstr(s->banner.data, "Console:"))
    sscanf(strstr(s->banner.data, "Console:"),
           "Console: http://127.0.0.1:%*u/?token=%159[0-9a-zA-Z_-]", s->token);
  if(strstr(s->banner.data, "Token file:"))
    sscanf(strstr(s->banner.data, "Token file:"), "Token file: %511s",
           s->token_path);
  snprintf(test_token, sizeof(test_token), "%s", s->token);
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
  s->rest = p.out;
  kb_buf_init(&p.out, 1);
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

/* method url with the extra request headers in hdrs (NULL-terminated
 * "Name: value" list, may be NULL) and post as the body of a POST ->
 * status, body, headers (both NUL-terminated). */
static long http_with(const char *method, const char *url,
                      const char *const *hdrs, const char *post,
                      struct kb_buf *body, struct kb_buf *headers)
{
  CURL *c = curl_easy_init();
  struct curl_slist *list = NULL;
  long status = 0;

  kb_buf_init(body, (size_t)1 << 20);
  kb_buf_init(headers, 65536);
  kb_buf_add(body, "", 0);
  kb_buf_add(headers, "", 0);
  ck_assert_ptr_nonnull(c);
  for(; hdrs && *hdrs; hdrs++) {
    list = curl_slist_append(list, *hdrs);
    ck_assert_ptr_nonnull(list);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if(!strcmp(method, "POST")) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post ? post : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post ? post : ""));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  curl_slist_free_all(list);
  return status;
}

/* method url as `kbsim ctl` sends it (the token, a JSON POST) -> status,
 * body, headers. */
static long http(const char *method, const char *url, struct kb_buf *body,
                 struct kb_buf *headers)
{
  char bearer[200];
  const char *hdrs[] = {bearer, "Content-Type: application/json", NULL};

  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", test_token);
  return http_with(method, url, hdrs, "{}", body, headers);
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

/* Waits until the balancer has ended every pair (its counters say so), so
 * a stop that follows does not close them itself: each close keeps the
 * reason it had. Reads the admin status once per round trip. */
static void balancer_drained(const struct served *s)
{
  long long open = 1;
  int tries;

  for(tries = 0; open && tries < 10000; tries++) {
    json_t *st = status_of(s);
    open = section_int(st, "balancer", "open");
    json_decref(st);
  }
  ck_assert_int_eq(open, 0);
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
  kb_buf_free(&s.rest);
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
  kb_buf_free(&s.rest);
}
END_TEST

/* Counts the occurrences of part in s. */
static int count_in(const char *s, const char *part)
{
  int count = 0;

  while((s = strstr(s, part)) != NULL) {
    count++;
    s++;
  }
  return count;
}

/* The integer at key in the object at section of root. */
static long long json_int_at(json_t *root, const char *section, const char *key)
{
  json_t *v = json_object_get(json_object_get(root, section), key);

  ck_assert_msg(json_is_integer(v), "%s has no integer %s", section, key);
  return (long long)json_integer_value(v);
}

/* Validates the JSON report at path against docs/report.schema.json with
 * python3-jsonschema. */
static void schema_valid(const char *path)
{
  char *schema[] = {"/usr/bin/python3",
                    "-m",
                    "jsonschema",
                    "-i",
                    (char *)path,
                    SCENARIOS_DIR "/../docs/report.schema.json",
                    NULL};
  struct proc_out v;

  ck_assert_msg(access("/usr/lib/python3/dist-packages/jsonschema", F_OK) == 0,
                "python3-jsonschema is missing: run scripts/setup");
  proc_run(schema, &v);
  ck_assert_msg(v.status == 0, "%s: %s%s", path, v.out.data, v.err.data);
  proc_free(&v);
}

/* `kbsim client --pcap --transcript --json --html` against `kbsim serve
 * --pcap --transcript --json` records its own hop on the real clock: tshark
 * decodes the handshake and the bug's 500s, and tests/pcap-judge finds the
 * capture and the transcript the same bytes, message by message, each header
 * block in one segment. */
START_TEST(client_and_serve_record_a_session)
{
  char dir[256], url[64], pcap[512], txt[512], json[512], html[512];
  char spcap[512], stxt[512], sjson[512], shtml[512];
  const char *args[] = {SCENARIOS_DIR "/bug.ini",
                        "--pcap",
                        spcap,
                        "--transcript",
                        stxt,
                        "--json",
                        sjson,
                        "--html",
                        shtml,
                        NULL};
  char *sjudge[] = {TESTS_DIR "/pcap-judge", "--live", spcap, stxt, NULL};
  const char *cargs[] = {
      "client",       "--url", url,      "--user", ALICE,    "--pcap", pcap,
      "--transcript", txt,     "--json", json,     "--html", html,     NULL};
  char *judge[] = {TESTS_DIR "/pcap-judge", pcap, txt, NULL};
  struct served s;
  struct proc_out p;

  proc_tmpdir("kbsim-live", dir, sizeof(dir));
  snprintf(pcap, sizeof(pcap), "%s/live.pcap", dir);
  snprintf(txt, sizeof(txt), "%s/live.txt", dir);
  snprintf(json, sizeof(json), "%s/live.json", dir);
  snprintf(html, sizeof(html), "%s/live.html", dir);
  snprintf(spcap, sizeof(spcap), "%s/serve.pcap", dir);
  snprintf(stxt, sizeof(stxt), "%s/serve.txt", dir);
  snprintf(sjson, sizeof(sjson), "%s/serve.json", dir);
  snprintf(shtml, sizeof(shtml), "%s/serve.html", dir);
  serve_start(&s, args);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.balancer);
  kbsim(&p, cargs);
  ck_assert_msg(p.status == 1, "client exited %d: %s%s", p.status, p.out.data,
                p.err.data);
  proc_free(&p);
  balancer_drained(&s);
  serve_stop(&s);
  /* Recording keeps the line per request: the five the member answered,
   * the two EWS POSTs forwarded without their challenge. */
  ck_assert_int_eq(count_in(s.rest.data, " ISA01 conn 1 POST "), 5);
  ck_assert_int_eq(count_in(s.rest.data, ": reauth-skipped -> 500"), 2);
  kb_buf_free(&s.rest);
  {
    /* serve's own report of what passed, valid against the schema: both
     * hops' connections, the member's decisions, the counters. */
    json_error_t jerr;
    json_t *root = json_load_file(sjson, 0, &jerr);
    json_t *ex, *conns, *m;
    size_t i;
    int skipped = 0, upstream = 0;

    ck_assert_msg(root != NULL, "%s: %s", sjson, jerr.text);
    schema_valid(sjson);
    ck_assert_str_eq(json_string_value(json_object_get(root, "kind")), "serve");
    ck_assert_str_eq(json_string_value(json_object_get(root, "signal")),
                     "SIGTERM");
    ck_assert_int_eq(json_int_at(root, "summary", "requests"), 5);
    ck_assert_int_eq(json_int_at(root, "summary", "forwarded"), 3);
    ck_assert_int_eq(json_int_at(root, "summary", "server_errors"), 2);
    ck_assert_int_eq(json_int_at(root, "summary", "proxy_reauth_skipped"), 2);
    ck_assert_int_eq(json_int_at(root, "summary", "backend_empty_posts"), 2);
    ck_assert_int_eq(json_int_at(root, "summary", "resets"), 0);
    ck_assert_int_eq(json_int_at(root, "balancer", "accepted"), 1);
    m = json_array_get(json_object_get(root, "members"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(m, "policy_at_stop")),
                     "per-connection");
    ex = json_object_get(root, "exchanges");
    ck_assert_int_eq(json_array_size(ex), 8);
    for(i = 0; i < json_array_size(ex); i++) {
      json_t *x = json_array_get(ex, i);
      json_t *notes = json_object_get(x, "notes");
      if(!strcmp(json_string_value(json_object_get(x, "hop")),
                 "proxy-backend")) {
        upstream++;
        ck_assert_str_eq(json_string_value(json_object_get(x, "observer")),
                         "backend");
        continue;
      }
      ck_assert_str_eq(json_string_value(json_object_get(x, "observer")),
                       "ISA01");
      ck_assert_int_eq(json_array_size(notes), 1);
      if(!strcmp(json_string_value(json_array_get(notes, 0)),
                 "reauth-skipped")) {
        skipped++;
        ck_assert_int_eq(json_integer_value(json_object_get(x, "status")), 500);
        ck_assert_int_eq(
            json_integer_value(json_object_get(x, "request_body_length")), 0);
      }
    }
    ck_assert_int_eq(skipped, 2);
    ck_assert_int_eq(upstream, 3);
    {
      /* The page of the same: each failing POST marked on both hops, and
       * why in words on the row, not in a tooltip. */
      size_t hlen;
      char *page = proc_slurp(shtml, &hlen);
      ck_assert_int_eq(count_in(page, "<tr class=\"x bug\">"), 2);
      ck_assert_int_eq(count_in(page, "<tr class=\"x up bug\">"), 2);
      ck_assert_int_eq(count_in(page, "the POST reached Exchange without its "
                                      "body (KB 942638)"),
                       2);
      ck_assert_int_eq(count_in(page, "<tr class=\"conn\">"), 2);
      ck_assert_ptr_null(strstr(page, "title="));
      free(page);
    }
    /* The connections as the transcript names them, with why they
     * closed: the client hung up, ISA closed its upstream. */
    conns = json_object_get(root, "connections");
    ck_assert_int_eq(json_array_size(conns), 2);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(conns, 0), "name")),
        "balancer conn 1");
    for(i = 0; i < 2; i++) {
      json_t *c = json_array_get(conns, i);
      const char *name = json_string_value(json_object_get(c, "name"));
      ck_assert_str_eq(json_string_value(json_object_get(c, "close")),
                       !strcmp(name, "balancer conn 1") ? "client-closed"
                                                        : "isa-closed");
    }
    json_decref(root);
  }

  proc_tshark(pcap, "ntlmssp || http.response", "ntlmssp.messagetype",
              "http.response.code", &p);
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

    char *schema[] = {"/usr/bin/python3",
                      "-m",
                      "jsonschema",
                      "-i",
                      json,
                      SCENARIOS_DIR "/../docs/report.schema.json",
                      NULL};
    json_t *ex;
    size_t i;

    ck_assert_msg(root != NULL, "%s: %s", json, jerr.text);
    /* A live session's report v2: no members, no scenario file, judged
     * as the client's exit is (the user saw the error: expected clean,
     * fail), and no member of kbsim's served its exchanges. */
    ck_assert_int_eq(json_integer_value(json_object_get(root, "version")), 2);
    ck_assert(json_is_null(json_object_get(root, "members")));
    ck_assert_str_eq(json_string_value(json_object_get(
                         json_object_get(root, "scenario"), "name")),
                     "live session");
    ck_assert_str_eq(json_string_value(json_object_get(root, "expected")),
                     "clean");
    ck_assert_str_eq(json_string_value(json_object_get(root, "got")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(root, "verdict")),
                     "fail");
    ex = json_object_get(root, "exchanges");
    for(i = 0; i < json_array_size(ex); i++)
      ck_assert(json_is_null(json_object_get(json_array_get(ex, i), "member")));
    /* The stamp's command line keeps the password out. */
    {
      char *stamp = json_dumps(json_object_get(root, "stamp"), 0);
      ck_assert_ptr_nonnull(stamp);
      ck_assert_ptr_nonnull(strstr(stamp, "FABRIKAM\\\\alice:"));
      ck_assert_ptr_null(strstr(stamp, "Passw0rd!"));
      free(stamp);
    }
    ck_assert_msg(access("/usr/lib/python3/dist-packages/jsonschema", F_OK) ==
                      0,
                  "python3-jsonschema is missing: run scripts/setup");
    {
      struct proc_out v;
      proc_run(schema, &v);
      ck_assert_msg(v.status == 0, "%s: %s%s", json, v.out.data, v.err.data);
      proc_free(&v);
    }
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
  proc_tshark(spcap, "http.request || http.response.code == 500", "ip.dst",
              "http.response.code", &p);
  ck_assert_int_eq(proc_count_lines(p.out.data, "127.0.0.2\t"), 5);
  ck_assert_int_eq(proc_count_lines(p.out.data, "127.0.0.3\t"), 3);
  ck_assert_int_eq(proc_count_lines(p.out.data, "127.0.0.2\t500"), 2);
  ck_assert_int_eq(proc_count_lines(p.out.data, "127.1.255.0\t500"), 2);
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
  fd = connect_to((uint16_t)s.balancer);
  ck_assert_int_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
  /* Read to the end: ISA's FIN, passed on by the balancer. */
  while((n = recv(fd, buf, sizeof(buf), 0)) > 0)
    ;
  ck_assert_int_eq(n, 0);
  close(fd);
  serve_stop(&s);
  kb_buf_free(&s.rest);

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

/* A client that resets its connection (SO_LINGER 0) has it reset on the
 * member's side too, and the evidence says so: the capture carries the
 * client's RST and no FIN, the transcript and the JSON report the close
 * as a reset. */
START_TEST(serve_records_a_reset)
{
  static const char req[] =
      "GET /EWS/Exchange.asmx HTTP/1.1\r\nHost: a\r\n\r\n";
  char dir[256], pcap[512], txt[512], json[512], buf[4096];
  const char *args[] = {SCENARIOS_DIR "/bug.ini",
                        "--pcap",
                        pcap,
                        "--transcript",
                        txt,
                        "--json",
                        json,
                        NULL};
  char *flags[] = {"/usr/bin/tshark",
                   "-n",
                   "-r",
                   pcap,
                   "-Y",
                   "tcp.flags.reset == 1 || tcp.flags.fin == 1",
                   "-T",
                   "fields",
                   "-e",
                   "tcp.srcport",
                   "-e",
                   "tcp.flags.reset",
                   "-e",
                   "tcp.flags.fin",
                   NULL};
  struct linger lg = {1, 0};
  struct served s;
  struct proc_out p;
  json_error_t jerr;
  json_t *root, *c;
  char *text;
  size_t len, got = 0;
  int fd;

  buf[0] = '\0';

  proc_tmpdir("kbsim-live", dir, sizeof(dir));
  snprintf(pcap, sizeof(pcap), "%s/reset.pcap", dir);
  snprintf(txt, sizeof(txt), "%s/reset.txt", dir);
  snprintf(json, sizeof(json), "%s/reset.json", dir);
  serve_start(&s, args);
  fd = connect_to((uint16_t)s.balancer);
  ck_assert_int_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
  /* The whole 401 (its head and the Content-Length it gives) first, so
   * the reset follows an answer. */
  for(;;) {
    const char *end = strstr(buf, "\r\n\r\n");
    const char *cl = strstr(buf, "Content-Length: ");
    ssize_t n;

    if(end && cl && got >= (size_t)(end - buf) + 4 + strtoul(cl + 16, NULL, 10))
      break;
    n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
    ck_assert_int_gt(n, 0);
    got += (size_t)n;
    buf[got] = '\0';
  }
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(fd);
  balancer_drained(&s);
  serve_stop(&s);
  kb_buf_free(&s.rest);

  text = proc_slurp(txt, &len);
  ck_assert_msg(strstr(text, "connection reset by the client (RST)") != NULL,
                "%s", text);
  free(text);
  proc_run(flags, &p);
  ck_assert_msg(p.status == 0, "tshark: %s", p.err.data);
  /* One RST, from the client (not ISA's port 80), and no FIN at all: the
   * 401 offer reached nothing upstream. */
  ck_assert_int_eq(count_in(p.out.data, "\t1\t0\n"), 1);
  ck_assert_int_eq(count_in(p.out.data, "\t0\t1\n"), 0);
  ck_assert_msg(strncmp(p.out.data, "80\t", 3) != 0, "%s", p.out.data);
  proc_free(&p);
  root = json_load_file(json, 0, &jerr);
  ck_assert_msg(root != NULL, "%s: %s", json, jerr.text);
  schema_valid(json);
  ck_assert_int_eq(json_int_at(root, "summary", "resets"), 1);
  c = json_array_get(json_object_get(root, "connections"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(c, "name")),
                   "balancer conn 1");
  ck_assert_str_eq(json_string_value(json_object_get(c, "close")), "reset");
  json_decref(root);
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
  kb_buf_free(&s.rest);

  /* ctl: nothing listening -> 1, one line. The admin port is free now,
   * and its token file gone. */
  ck_assert_int_eq(access(s.token_path, F_OK), -1);
  ctl(&s, &p, "status", NULL, NULL);
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data, "");
  ck_assert_msg(!strncmp(p.err.data,
                         "kbsim: no token for the admin endpoint "
                         "at http://127.0.0.1:",
                         58),
                "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.err.data, "cannot read the token file "));
  nl = strchr(p.err.data, '\n');
  ck_assert_ptr_nonnull(nl);
  ck_assert_str_eq(nl, "\n");
  proc_free(&p);
  /* With a token given, ctl goes on and finds nothing listening. */
  setenv("KBSIM_ADMIN_TOKEN", s.token, 1);
  ctl(&s, &p, "status", NULL, NULL);
  unsetenv("KBSIM_ADMIN_TOKEN");
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
    ck_assert_msg(!strncmp(p.err.data, "kbsim", 5), "case %zu: %s", i,
                  p.err.data);
    ck_assert_msg(!strstr(p.err.data, "Passw0rd!"),
                  "case %zu shows the "
                  "password: %s",
                  i, p.err.data);
    nl = strchr(p.err.data, '\n');
    ck_assert_ptr_nonnull(nl);
    /* A scenario file that cannot be read is not a usage problem: one
     * line, no hint. */
    if(strcmp(cases[i][1] ? cases[i][1] : "", "/nonexistent/scenario.ini")) {
      const char *why = proc_usage_error(&p);
      ck_assert_msg(!why, "case %zu: %s:\n%s", i, why, p.err.data);
    }
    else
      ck_assert_msg(!nl[1], "case %zu: %s", i, p.err.data);
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
    proc_curl_ntlm(url, ALICE, PROC_OOF_REQUEST, true);
  }
  /* connection 3: ISA01 */
  proc_curl_ntlm(url, "FABRIKAM\\alice:wrong", PROC_OOF_REQUEST, false);

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

  /* Nothing listening: what the user would see, but no verdict on the
   * listener (issue 14: this was reported as the bug, exit 1). */
  kbsim(&p, nobody);
  ck_assert_int_eq(p.status, 3);
  ck_assert_ptr_nonnull(strstr(p.out.data, "transport-error"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "(infrastructure)"));
  ck_assert_ptr_null(strstr(p.out.data, "Verdict: FABRIKAM"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Notifications:      Outlook "
                                           "Integration Error"));
  proc_free(&p);
  serve_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* The original flag form keeps working, with --auth and --admin added. */
START_TEST(serve_flag_form_with_auth_and_admin)
{
  char dir[256], json[512], txt[512];
  const char *const args[] = {"--proxy",     "127.0.0.1:0", "--backend",
                              "127.0.0.1:0", "--policy",    "per-connection",
                              "--user",      ALICE,         "--auth",
                              "basic",       "--admin",     "127.0.0.1:0",
                              "--json",      json,          "--transcript",
                              txt,           NULL};
  char *text;
  json_error_t jerr;
  json_t *root, *m, *ex;
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

  proc_tmpdir("kbsim-live", dir, sizeof(dir));
  snprintf(json, sizeof(json), "%s/flag.json", dir);
  snprintf(txt, sizeof(txt), "%s/flag.txt", dir);
  serve_start(&s, args);
  ck_assert_uint_gt(s.listener, 0);
  ck_assert_uint_gt(s.admin, 0);
  ck_assert_uint_eq(s.balancer, 0);
  /* Recording in the flag form: a one-member relay takes --proxy, so the
   * client hop is recorded too. */
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(policy per-connection, basic "
                                              "authentication; recorded "
                                              "through a TCP relay)"));
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
  ck_assert_int_eq(section_int(st, "balancer", "connections"), 1);
  ck_assert_int_eq(member_int(st, 0, "requests"), 1);
  ck_assert_str_eq(member_str(st, 0, "policy"), "per-request");
  json_decref(st);
  serve_stop(&s);
  kb_buf_free(&s.rest);

  /* The client hop, as the relay carried it: the request and its answer,
   * with Basic's credentials kept out. */
  text = proc_slurp(txt, NULL);
  ck_assert_msg(strstr(text, "\n; === balancer conn 1: ") &&
                    strstr(text, "POST /EWS/Exchange.asmx HTTP/1.1\r\n") &&
                    strstr(text, "HTTP/1.1 200 OK\r\n"),
                "%.1500s", text);
  ck_assert_ptr_null(strstr(text, "Passw0rd!"));
  /* In client order: the client's connection, then what ISA opened for it
   * (upper-case "ISA01" once sorted before "balancer"). */
  ck_assert_msg(strstr(text, " upstream: ISA <-> Exchange ===") &&
                    strstr(text, "\n; === balancer conn 1: ") <
                        strstr(text, " upstream: ISA <-> Exchange ==="),
                "%.3000s", text);
  free(text);

  /* The report says what ctl changed, that the relay carried the one
   * connection, and what the one request did on each hop. */
  root = json_load_file(json, 0, &jerr);
  ck_assert_msg(root != NULL, "%s: %s", json, jerr.text);
  schema_valid(json);
  ck_assert(json_is_object(json_object_get(root, "balancer")));
  m = json_array_get(json_object_get(root, "members"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(m, "policy")),
                   "per-connection");
  ck_assert_str_eq(json_string_value(json_object_get(m, "policy_at_stop")),
                   "per-request");
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(root, "scenario"), "name")),
                   "serve");
  ex = json_object_get(root, "exchanges");
  ck_assert_int_eq(json_array_size(ex), 2);
  ck_assert_int_eq(json_int_at(root, "summary", "requests"), 1);
  ck_assert_int_eq(json_int_at(root, "summary", "forwarded"), 1);
  {
    /* Recorded in the order they happened: Exchange may answer before or
     * after the member has written its own line. */
    json_t *front = json_array_get(ex, 0);
    if(strcmp(json_string_value(json_object_get(front, "hop")), "client-proxy"))
      front = json_array_get(ex, 1);
    ck_assert_str_eq(json_string_value(json_object_get(front, "hop")),
                     "client-proxy");
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(front, "notes"), 0)),
        "basic-ok");
  }
  json_decref(root);
  proc_rmdir(dir);
}
END_TEST

/* ---- who may use the admin endpoint ------------------------------------ */

/* The number of lines of text that contain needle (at their start when
 * at_start is set). */
static int lines_with(const char *text, const char *needle, bool at_start)
{
  const char *line = text;
  int n = 0;

  while(line && *line) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    const char *hit = strstr(line, needle);

    if(hit && hit < line + len && (!at_start || hit == line))
      n++;
    line = eol ? eol + 1 : NULL;
  }
  return n;
}

/* method path with hdrs -> want_status and a JSON error containing want. */
static void guarded(const struct served *s, const char *method,
                    const char *path, const char *const *hdrs, const char *post,
                    long want_status, const char *want)
{
  char url[256];
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j, *e;
  long status;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", s->admin, path);
  status = http_with(method, url, hdrs, post, &body, &headers);
  ck_assert_msg(status == want_status, "%s %s: %ld %s", method, path, status,
                body.data);
  if(status == 401)
    ck_assert_ptr_nonnull(strstr(headers.data, "WWW-Authenticate: Bearer"));
  if(want) {
    j = json_loads(body.data, 0, &jerr);
    e = json_object_get(j, "error");
    ck_assert_msg(json_is_string(e), "%s %s: %s", method, path, body.data);
    ck_assert_msg(strstr(json_string_value(e), want) != NULL, "%s %s: %s",
                  method, path, json_string_value(e));
    /* One line. */
    ck_assert_ptr_null(strchr(json_string_value(e), '\n'));
    json_decref(j);
  }
  kb_buf_free(&body);
  kb_buf_free(&headers);
}

/* The endpoint refuses what a foreign web page, a DNS-rebinding page or
 * anyone without the token can send, and nothing changes; the token file
 * is the user's alone; the console page sets a strict cookie. */
START_TEST(admin_refuses_other_origins_and_tokens)
{
  static const char *const args[] = {
      HALF_PATCHED, "--admin", "127.0.0.1:0", "--admin-host",
      "trainer-pc", "-q",      NULL};
  struct served s;
  struct proc_out p;
  char bearer[200], host_local[64], host_pc[64], host_wrong_port[64],
      own_origin[64], cookie[256], url[256], wrong[200];
  struct kb_buf body, headers;
  struct stat st;
  json_t *status;
  char *file;

  serve_start(&s, args);
  ck_assert_uint_eq(strlen(s.token), 48);
  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", s.token);
  snprintf(wrong, sizeof(wrong), "Authorization: Bearer %s", s.token);
  wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
  snprintf(host_local, sizeof(host_local), "Host: localhost:%u", s.admin);
  snprintf(host_pc, sizeof(host_pc), "Host: TRAINER-PC:%u", s.admin);
  snprintf(host_wrong_port, sizeof(host_wrong_port), "Host: 127.0.0.1:%u",
           s.admin == 1 ? 2u : 1u);
  snprintf(own_origin, sizeof(own_origin), "Origin: http://127.0.0.1:%u",
           s.admin);
  {
    const char *none[] = {NULL};
    const char *bad_token[] = {wrong, NULL};
    const char *short_token[] = {"Authorization: Bearer abc", NULL};
    const char *basic[] = {"Authorization: Basic YTpi", NULL};
    const char *rebind[] = {bearer, "Host: rebind.attacker.example", NULL};
    const char *rebind_port[] = {bearer, host_wrong_port, NULL};
    const char *no_host[] = {bearer, "Host:", NULL};
    const char *local[] = {bearer, host_local, NULL};
    const char *pc[] = {bearer, host_pc, NULL};
    /* What a page elsewhere sends: a simple request, no preflight. */
    const char *simple[] = {"Origin: http://attacker.example",
                            "Content-Type: text/plain", NULL};
    const char *simple_tok[] = {bearer, "Origin: http://attacker.example",
                                "Content-Type: application/json", NULL};
    const char *null_origin[] = {bearer, "Origin: null",
                                 "Content-Type: application/json", NULL};
    const char *form[] = {bearer, own_origin,
                          "Content-Type: application/x-www-form-urlencoded",
                          NULL};
    const char *plain[] = {bearer, "Content-Type: text/plain", NULL};
    const char *no_type[] = {bearer, "Content-Type:", NULL};
    const char *json_lookalike[] = {bearer, "Content-Type: application/jsonp",
                                    NULL};
    const char *own[] = {bearer, own_origin,
                         "Content-Type: application/json; charset=utf-8", NULL};
    const char *query_elsewhere[] = {NULL};

    guarded(&s, "GET", "/status", none, NULL, 401, "no token");
    guarded(&s, "GET", "/events", none, NULL, 401, "no token");
    guarded(&s, "GET", "/", none, NULL, 401, "no token");
    guarded(&s, "GET", "/status", bad_token, NULL, 401, "wrong token");
    guarded(&s, "GET", "/status", short_token, NULL, 401, "wrong token");
    guarded(&s, "GET", "/status", basic, NULL, 401, "no token");
    guarded(&s, "POST", "/revert", none, "{}", 401, "no token");
    guarded(&s, "POST", "/members/1/revert", simple, "{}", 403,
            "Origin 'http://attacker.example' is not this endpoint's");
    guarded(&s, "POST", "/members/1/revert", simple_tok, "{}", 403,
            "Origin 'http://attacker.example'");
    guarded(&s, "POST", "/revert", null_origin, "{}", 403, "Origin 'null'");
    guarded(&s, "GET", "/status", rebind, NULL, 403,
            "Host 'rebind.attacker.example' is not this endpoint's");
    guarded(&s, "GET", "/status", rebind_port, NULL, 403,
            "is not this "
            "endpoint's");
    guarded(&s, "GET", "/status", no_host, NULL, 403, "Host '(none)'");
    {
      static const char *const odd[] = {
          "Host: [::1",         "Host: 127.0.0.1:",
          "Host: 127.0.0.1:+1", "Host: 127.0.0.1:99999999999999999999",
          "Host: [127.0.0.1]x", "Host: 127.0.0.1:1:2",
          "Host: localhost.",   "Host: 127.0.0.1.nip.io"};
      size_t k;

      for(k = 0; k < sizeof(odd) / sizeof(odd[0]); k++) {
        const char *h[] = {bearer, odd[k], NULL};
        guarded(&s, "GET", "/status", h, NULL, 403, "is not this endpoint's");
      }
    }
    guarded(&s, "POST", "/members/1/revert", form, "a=b", 403,
            "a change needs Content-Type: application/json, not "
            "'application/x-www-form-urlencoded'");
    guarded(&s, "POST", "/revert", plain, "{}", 403, "not 'text/plain'");
    guarded(&s, "POST", "/revert", no_type, "{}", 403, "not '(none)'");
    guarded(&s, "POST", "/revert", json_lookalike, "{}", 403,
            "application/jsonp");
    snprintf(url, sizeof(url), "/status?token=%s", s.token);
    guarded(&s, "GET", url, query_elsewhere, NULL, 401, "no token");

    /* Nothing changed. */
    status = status_of(&s);
    ck_assert_str_eq(member_str(status, 0, "policy"), "per-request");
    ck_assert_str_eq(member_str(status, 1, "policy"), "per-connection");
    ck_assert_int_eq(member_int(status, 0, "requests"), 0);
    json_decref(status);

    /* Localhost, --admin-host (any case) and the own origin are fine. */
    guarded(&s, "GET", "/status", local, NULL, 200, NULL);
    guarded(&s, "GET", "/status", pc, NULL, 200, NULL);
    guarded(&s, "POST", "/members/2/sp1", own, "{}", 200, NULL);
  }
  status = status_of(&s);
  ck_assert_str_eq(member_str(status, 1, "patch"), "sp1");
  json_decref(status);

  /* The console page: the token in the URL becomes a strict cookie; the
   * page may load nothing from anywhere. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/?token=%s", s.admin, s.token);
  ck_assert_int_eq(http_with("GET", url, NULL, NULL, &body, &headers), 200);
  ck_assert_ptr_nonnull(strstr(headers.data, "Content-Type: text/html"));
  ck_assert_ptr_nonnull(
      strstr(headers.data, "Content-Security-Policy: default-src 'none'"));
  ck_assert_ptr_nonnull(strstr(headers.data, "X-Frame-Options: DENY"));
  snprintf(cookie, sizeof(cookie),
           "Set-Cookie: kbsim_admin_%u=%s; Path=/; HttpOnly; "
           "SameSite=Strict\r\n",
           s.admin, s.token);
  ck_assert_msg(strstr(headers.data, cookie) != NULL, "%s", headers.data);
  ck_assert_ptr_nonnull(strstr(body.data, "<title>kbsim live console"));
  ck_assert_ptr_null(strstr(body.data, "src=\"http"));
  ck_assert_ptr_null(strstr(body.data, "href=\"http"));
  kb_buf_free(&body);
  kb_buf_free(&headers);
  {
    char cookie_hdr[256];
    const char *with_cookie[] = {cookie_hdr, NULL};

    snprintf(cookie_hdr, sizeof(cookie_hdr), "Cookie: kbsim_admin_%u=%s",
             s.admin, s.token);
    guarded(&s, "GET", "/status", with_cookie, NULL, 200, NULL);
    snprintf(cookie_hdr, sizeof(cookie_hdr), "Cookie: kbsim_admin_%u=%s",
             s.admin + 1, s.token);
    guarded(&s, "GET", "/status", with_cookie, NULL, 401, "no token");
  }

  /* The token file: this user's, mode 0600, in a 0700 directory. */
  ck_assert_msg(s.token_path[0] == '/', "%s", s.banner.data);
  ck_assert_int_eq(lstat(s.token_path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  ck_assert_uint_eq(st.st_uid, getuid());
  ck_assert(S_ISREG(st.st_mode));
  file = proc_slurp(s.token_path, NULL);
  ck_assert_str_eq(strtok(file, "\n"), s.token);
  free(file);
  *strrchr(s.token_path, '/') = '\0';
  ck_assert_int_eq(lstat(s.token_path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0700);
  *(s.token_path + strlen(s.token_path)) = '/';

  /* ctl: --token beats the environment, which beats the file. */
  {
    char admin[32];
    const char *good[] = {"ctl",   "--admin", admin, "--token",
                          s.token, "status",  NULL};
    const char *bad[] = {"ctl",      "--admin", admin, "--token",
                         wrong + 22, "status",  NULL};
    const char *silly[] = {"ctl", "--admin", admin, "--token",
                           "x y", "status",  NULL};

    snprintf(admin, sizeof(admin), "127.0.0.1:%u", s.admin);
    kbsim(&p, good);
    ck_assert_msg(p.status == 0, "%s", p.err.data);
    proc_free(&p);
    kbsim(&p, bad);
    ck_assert_int_eq(p.status, 1);
    ck_assert_str_eq(p.err.data, "kbsim: the admin endpoint refused GET "
                                 "/status (HTTP 401): wrong token: use the "
                                 "one `kbsim serve` printed or wrote to its "
                                 "token file\n");
    proc_free(&p);
    setenv("KBSIM_ADMIN_TOKEN", wrong + 22, 1);
    ctl(&s, &p, "status", NULL, NULL);
    ck_assert_int_eq(p.status, 1);
    ck_assert_ptr_nonnull(strstr(p.err.data, "(HTTP 401): wrong token"));
    proc_free(&p);
    kbsim(&p, good);
    ck_assert_msg(p.status == 0, "%s", p.err.data);
    proc_free(&p);
    unsetenv("KBSIM_ADMIN_TOKEN");
    kbsim(&p, silly);
    ck_assert_int_eq(p.status, 2);
    ck_assert_msg(!strncmp(p.err.data,
                           "kbsim ctl: --token: the admin token must be 16 to "
                           "128 characters of letters, digits, '_' and "
                           "'-'\n",
                           strlen("kbsim ctl: --token: the admin token must be "
                                  "16 to 128 characters of letters, digits, "
                                  "'_' and '-'\n")),
                  "%s", p.err.data);
    proc_free(&p);
  }
  serve_stop(&s);
  /* -q: nothing after the banner but the stop. */
  ck_assert_str_eq(s.rest.data, "stopping on SIGTERM\n");
  kb_buf_free(&s.rest);
  ck_assert_int_eq(access(s.token_path, F_OK), -1);
}
END_TEST

/* ---- the live view: the stream and the terminal ------------------------ */

/* A console's stream, read by hand from a socket: events as they come. */
struct stream {
  int fd;
  struct kb_buf in;
  size_t used; /* bytes of in already returned as events */
};

static void stream_open_after(struct stream *st, const struct served *s,
                              unsigned after);

static void stream_open(struct stream *st, const struct served *s)
{
  stream_open_after(st, s, 0);
}

/* Opens a stream as a browser reconnecting after leg number after does
 * (Last-Event-ID; 0: a new console). */
static void stream_open_after(struct stream *st, const struct served *s,
                              unsigned after)
{
  char req[512];
  size_t len;

  memset(st, 0, sizeof(*st));
  kb_buf_init(&st->in, (size_t)64 << 20);
  st->fd = connect_to((uint16_t)s->admin);
  ck_assert_int_ge(st->fd, 0);
  len = (size_t)snprintf(req, sizeof(req),
                         "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                         "Authorization: Bearer %s\r\n"
                         "Last-Event-ID: %u\r\n"
                         "Accept: text/event-stream\r\n\r\n",
                         s->admin, s->token, after);
  ck_assert_int_eq(write(st->fd, req, len), (ssize_t)len);
}

/* Reads the next event of the given type (skipping others) and returns
 * its data parsed (owned by the caller); fails after 15 s of silence, which
 * only a broken stream gives (it sends a keep-alive every 10 s). */
static json_t *stream_next(struct stream *st, const char *type)
{
  char want[64];

  snprintf(want, sizeof(want), "event: %s\ndata: ", type);
  for(;;) {
    char buf[65536];
    const char *at = st->in.data ? st->in.data + st->used : NULL;
    const char *ev = at ? strstr(at, want) : NULL;
    const char *end = ev ? strstr(ev, "\n\n") : NULL;
    struct pollfd pfd = {st->fd, POLLIN, 0};
    ssize_t n;

    if(end) {
      json_error_t jerr;
      const char *data = ev + strlen(want);
      json_t *j = json_loadb(data, (size_t)(end - data), 0, &jerr);

      ck_assert_msg(json_is_object(j), "bad %s event: %.*s", type,
                    (int)(end - data), data);
      st->used = (size_t)(end + 2 - st->in.data);
      return j;
    }
    ck_assert_msg(poll(&pfd, 1, 15000) == 1, "no %s event in 15 s", type);
    n = read(st->fd, buf, sizeof(buf));
    ck_assert_msg(n > 0, "the stream ended before a %s event", type);
    ck_assert_int_eq(kb_buf_add(&st->in, buf, (size_t)n), KB_BUF_OK);
  }
}

static void stream_close(struct stream *st)
{
  close(st->fd);
  kb_buf_free(&st->in);
}

/* The string field key of the first decision of leg, or "". */
static const char *leg_decision(json_t *leg)
{
  json_t *d = json_array_get(json_object_get(leg, "decisions"), 0);

  return json_is_string(json_object_get(d, "code"))
             ? json_string_value(json_object_get(d, "code"))
             : "";
}

/* Every leg of a session through ISA02 (RTM) reaches the stream as it
 * happens, typed: the decisions' codes, the body-less POST forwarded and
 * Exchange's 500, the type 1 decoded; a change by ctl reaches it as a
 * status; a stream opened later gets the kept legs. The terminal prints
 * one line per request. */
START_TEST(live_stream_and_terminal_lines)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     NULL};
  struct served s;
  struct stream st, late;
  struct proc_out p;
  json_t *ev, *leg, *x;
  unsigned skipped = 0, legs = 0, i;
  long long last = 0;

  serve_start(&s, args);
  stream_open(&st, &s);
  ev = stream_next(&st, "status");
  ck_assert_str_eq(member_str(ev, 1, "name"), "ISA02");
  json_decref(ev);
  /* The first session goes to ISA01 (fixed), the second to ISA02. */
  ck_assert_int_eq(client_session(&s, ALICE), 0);
  ck_assert_int_eq(client_session(&s, BOB), 1);
  /* ISA01's session: no leg skipped; ISA02's: two, each forwarded
   * body-less and answered 500. Legs come in order, numbered. */
  while(skipped < 2) {
    leg = stream_next(&st, "leg");
    legs++;
    ck_assert_int_gt(json_integer_value(json_object_get(leg, "seq")), last);
    last = json_integer_value(json_object_get(leg, "seq"));
    if(!strcmp(leg_decision(leg), "reauth-skipped")) {
      skipped++;
      ck_assert_str_eq(json_string_value(json_object_get(leg, "member")),
                       "ISA02");
      ck_assert_str_eq(json_string_value(json_object_get(leg, "path")),
                       "/EWS/Exchange.asmx");
      ck_assert_str_eq(json_string_value(json_object_get(leg, "req_auth")),
                       "NTLM type 1");
      ck_assert_int_eq(json_integer_value(json_object_get(leg, "req_body")), 0);
      ck_assert_int_eq(json_integer_value(json_object_get(leg, "status")), 500);
      ck_assert(json_is_true(json_object_get(leg, "forwarded")));
      x = json_object_get(leg, "exchange");
      ck_assert_int_eq(json_integer_value(json_object_get(x, "req_body")), 0);
      ck_assert_int_eq(json_integer_value(json_object_get(x, "status")), 500);
      ck_assert_msg(!strncmp(json_string_value(json_object_get(x, "req_head")),
                             "POST /EWS/Exchange.asmx HTTP/1.1\r\n", 34),
                    "%s", json_string_value(json_object_get(x, "req_head")));
      ck_assert_ptr_nonnull(strstr(
          json_string_value(json_object_get(x, "resp_head")), "HTTP/1.1 500"));
      ck_assert_ptr_nonnull(
          strstr(json_string_value(json_object_get(leg, "req_token")),
                 "NTLM type 1 NEGOTIATE"));
      ck_assert_ptr_nonnull(
          strstr(json_string_value(json_object_get(leg, "req_headers")),
                 "Authorization: NTLM TlRMTVNTUAAB"));
    }
    else
      ck_assert_int_ne(json_integer_value(json_object_get(leg, "status")), 500);
    json_decref(leg);
  }
  /* 7 legs a session on ISA01 (offer, handshake, two re-challenged
   * POSTs), 5 on ISA02 (offer, handshake, two skipped). */
  ck_assert_uint_eq(legs, 7 + 5);
  /* A change reaches the stream as a status. */
  ctl(&s, &p, "hotfix", "--member", "ISA02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  /* Statuses sent after the legs came before it; the change's comes, or
   * stream_next fails after 15 s of silence. */
  for(;;) {
    bool changed;

    ev = stream_next(&st, "status");
    changed = !strcmp(member_str(ev, 1, "patch"), "rtm+hotfix");
    json_decref(ev);
    if(changed)
      break;
  }
  /* A console opened now gets the kept legs, oldest first. */
  stream_open(&late, &s);
  for(i = 1; i <= 12; i++) {
    leg = stream_next(&late, "leg");
    ck_assert_int_eq(json_integer_value(json_object_get(leg, "seq")), i);
    json_decref(leg);
  }
  stream_close(&late);
  /* A console reconnecting after leg 10 gets 11 and 12 only. */
  stream_open_after(&late, &s, 10);
  leg = stream_next(&late, "leg");
  ck_assert_int_eq(json_integer_value(json_object_get(leg, "seq")), 11);
  json_decref(leg);
  leg = stream_next(&late, "leg");
  ck_assert_int_eq(json_integer_value(json_object_get(leg, "seq")), 12);
  json_decref(leg);
  stream_close(&late);
  stream_close(&st);
  serve_stop(&s);
  /* One line per request, as it happened. */
  ck_assert_int_eq(lines_with(s.rest.data, " conn ", false), 12);
  ck_assert_ptr_nonnull(strstr(s.rest.data,
                               " ISA02 conn 1 POST /EWS/Exchange.asmx NTLM "
                               "type 1, no body: reauth-skipped -> 500 "
                               "(Exchange's answer)\n"));
  ck_assert_ptr_nonnull(strstr(s.rest.data,
                               " ISA01 conn 1 POST /EWS/Exchange.asmx NTLM "
                               "type 1, no body: reauth-challenged -> 401 "
                               "NTLM type 2\n"));
  ck_assert_ptr_nonnull(strstr(s.rest.data,
                               " ISA02 conn 1 POST "
                               "/autodiscover/autodiscover.xml no "
                               "Authorization: offer -> 401 NTLM\n"));
  kb_buf_free(&s.rest);
}
END_TEST

/* ---- the console in a real browser ------------------------------------- */

/* Returns true when an executable named name is on PATH. */
static bool on_path(const char *name)
{
  const char *path = getenv("PATH");
  char dirs[4096], file[4200], *save = NULL, *dir;

  snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
  for(dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    snprintf(file, sizeof(file), "%s/%s", dir, name);
    if(access(file, X_OK) == 0)
      return true;
  }
  return false;
}

/* The trainer's flow in headless Chromium (tests/console/drive.js): the
 * console loads with its token, sessions appear without a reload, a
 * click shows a leg's NTLM token, a page of another origin changes
 * nothing, the fix buttons fix ISA02, the page asks nothing of anyone
 * else. Then, apart from the browser, the array is as the clicks left it. */
START_TEST(console_in_chromium)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct proc_out p;
  char console[256], balancer[64], shot[300], dir[256], node_path[512];
  char *argv[] = {
      "/usr/bin/env", node_path, "node",    TESTS_DIR "/console/drive.js",
      console,        balancer,  KBSIM_BIN, ALICE,
      shot,           NULL};
  json_t *st;
  size_t len;
  char *png;

  if(!on_path("node") || !on_path("chromium")) {
    fprintf(stderr,
            "test_live: SKIP console_in_chromium: %s is not "
            "installed (scripts/setup installs it)\n",
            on_path("node") ? "chromium" : "node");
    return;
  }
  ck_assert_msg(access(NODE_MODULES "/puppeteer-core", F_OK) == 0,
                "puppeteer-core is missing from " NODE_MODULES
                ": run scripts/setup");
  proc_tmpdir("kbsim-console", dir, sizeof(dir));
  snprintf(shot, sizeof(shot), "%s/console.png", dir);
  snprintf(node_path, sizeof(node_path), "NODE_PATH=%s", NODE_MODULES);
  serve_start(&s, args);
  snprintf(console, sizeof(console), "http://127.0.0.1:%u/?token=%s", s.admin,
           s.token);
  snprintf(balancer, sizeof(balancer), "http://127.0.0.1:%u/", s.balancer);
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "the browser flow failed (%d):\n%s%s", p.status,
                p.out.data, p.err.data);
  ck_assert_int_eq(lines_with(p.out.data, "ok ", true), 9);
  proc_free(&p);
  /* What the clicks did, as the endpoint sees it. */
  st = status_of(&s);
  ck_assert_str_eq(member_str(st, 1, "patch"), "rtm+hotfix");
  ck_assert_str_eq(member_str(st, 1, "policy"), "per-request");
  ck_assert_str_eq(member_str(st, 0, "policy"), "per-request");
  ck_assert_int_eq(member_int(st, 1, "forwarded_empty_posts"), 2);
  ck_assert_int_eq(member_int(st, 1, "connections"), 2);
  ck_assert_int_eq(member_int(st, 0, "connections"), 3);
  ck_assert_int_eq(member_int(st, 0, "forwarded_empty_posts"), 0);
  json_decref(st);
  serve_stop(&s);
  kb_buf_free(&s.rest);
  png = proc_slurp(shot, &len);
  ck_assert_uint_gt(len, 10000);
  ck_assert_int_eq(memcmp(png, "\x89PNG", 4), 0);
  free(png);
  proc_rmdir(dir);
}
END_TEST

/* ---- the live view in-process ------------------------------------------ */

/* Emits, as member ISA0m would on its client connection conn, a decision
 * note and the exchange that completes the leg. */
static void live_leg(struct kb_trace *t, const char *member, uint64_t conn,
                     enum kb_note code, int status)
{
  struct kb_exchange ex = {.method = "POST",
                           .path = "/EWS/Exchange.asmx",
                           .req_auth = KB_AUTH_NTLM_NEGOTIATE,
                           .status = status,
                           .req_headers = "Authorization: NTLM "
                                          "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAA"
                                          "AAAAAAAAFASgKAAAADw==\r\n"};
  struct kb_trace_event ev;

  memset(&ev, 0, sizeof(ev));
  ev.kind = KB_TRACE_NOTE;
  ev.hop = KB_HOP_CLIENT_PROXY;
  ev.side = KB_SIDE_SERVER;
  ev.origin = member;
  ev.conn = conn;
  ev.note = code;
  ev.text = "for people";
  t->emit(t->ctx, &ev);
  ev.kind = KB_TRACE_EXCHANGE;
  ev.note = KB_NOTE_NONE;
  ev.text = NULL;
  ev.exchange = &ex;
  t->emit(t->ctx, &ev);
}

/* The ring keeps the newest legs only; a leg carries its own connection's
 * decision even when connections interleave; events of other observers
 * are ignored; a note of a connection that never completes a leg costs
 * one bounded slot; the terminal gets one line per leg. */
START_TEST(live_view_keeps_the_newest_legs)
{
  struct live_config cfg = {NULL, 3};
  struct live *l;
  struct kb_trace t;
  struct kb_trace_event other;
  struct kb_buf out;
  char err[256], *lines = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&lines, &len);
  uint64_t last, v;
  unsigned i;

  ck_assert_ptr_nonnull(f);
  cfg.out = f;
  ck_assert_int_eq(live_new(&cfg, &l, err, sizeof(err)), 0);
  t = live_as_trace(l);
  ck_assert_uint_eq(live_version(l), 0);
  /* A backend's and a client's events are not legs. */
  memset(&other, 0, sizeof(other));
  other.kind = KB_TRACE_NOTE;
  other.hop = KB_HOP_PROXY_BACKEND;
  other.side = KB_SIDE_SERVER;
  other.origin = "backend";
  other.conn = 1;
  t.emit(t.ctx, &other);
  other.hop = KB_HOP_CLIENT_PROXY;
  other.side = KB_SIDE_CLIENT;
  other.origin = "client 1";
  t.emit(t.ctx, &other);
  /* 300 connections that never finish a request. */
  for(i = 0; i < 300; i++) {
    memset(&other, 0, sizeof(other));
    other.kind = KB_TRACE_NOTE;
    other.hop = KB_HOP_CLIENT_PROXY;
    other.side = KB_SIDE_SERVER;
    other.origin = "ISA03";
    other.conn = 1000 + i;
    other.note = KB_NOTE_CLIENT_LEFT;
    t.emit(t.ctx, &other);
  }
  ck_assert_uint_eq(live_version(l), 0);
  live_leg(&t, "ISA01", 1, KB_NOTE_REAUTH_CHALLENGED, 401);
  live_leg(&t, "ISA02", 1, KB_NOTE_REAUTH_SKIPPED, 500);
  live_leg(&t, "ISA01", 2, KB_NOTE_CHALLENGE, 401);
  live_leg(&t, "ISA02", 2, KB_NOTE_OFFER, 401);
  live_leg(&t, "ISA02", 1, KB_NOTE_REAUTH_SKIPPED, 500);
  ck_assert_uint_eq(live_version(l), 5);
  /* No change since version 5: the wait times out at once. */
  v = live_wait(l, 5, 1);
  ck_assert_uint_eq(v, 5);
  live_bump(l);
  ck_assert_uint_eq(live_wait(l, 5, 10000), 6);

  kb_buf_init(&out, 1 << 20);
  last = live_events_since(l, 0, &out);
  ck_assert_uint_eq(last, 5);
  ck_assert_ptr_null(strstr(out.data, "id: 1\n"));
  ck_assert_ptr_null(strstr(out.data, "id: 2\n"));
  ck_assert_ptr_nonnull(
      strstr(out.data, "id: 3\nevent: leg\ndata: {\"seq\":3,"));
  ck_assert_ptr_nonnull(
      strstr(out.data, "id: 5\nevent: leg\ndata: {\"seq\":5,"));
  ck_assert_ptr_nonnull(strstr(out.data, "\"member\":\"ISA02\",\"conn\":1"));
  ck_assert_ptr_nonnull(strstr(out.data,
                               "\"decisions\":[{\"code\":\"reauth-"
                               "skipped\",\"text\":\"for people\"}]"));
  ck_assert_ptr_nonnull(strstr(out.data, "\"req_token\":\"NTLM type 1 "
                                         "NEGOTIATE"));
  ck_assert_ptr_null(strstr(out.data, "client-left"));
  ck_assert_ptr_null(strstr(out.data, "backend"));
  kb_buf_reset(&out);
  ck_assert_uint_eq(live_events_since(l, 4, &out), 5);
  ck_assert_ptr_null(strstr(out.data, "id: 4\n"));
  ck_assert_ptr_nonnull(strstr(out.data, "id: 5\n"));
  kb_buf_reset(&out);
  ck_assert_uint_eq(live_events_since(l, 5, &out), 5);
  ck_assert_uint_eq(out.len, 0);
  kb_buf_free(&out);

  live_free(l);
  fclose(f);
  ck_assert_int_eq(lines_with(lines, " conn ", false), 5);
  ck_assert_int_eq(lines_with(lines,
                              " ISA02 conn 1 POST /EWS/Exchange.asmx "
                              "NTLM type 1, no body: reauth-skipped "
                              "-> 500\n",
                              false),
                   2);
  ck_assert_int_eq(lines_with(lines,
                              " ISA01 conn 2 POST /EWS/Exchange.asmx "
                              "NTLM type 1, no body: challenge -> "
                              "401\n",
                              false),
                   1);
  free(lines);
}
END_TEST

int main(void)
{
  proc_whole_lines();
  Suite *s = suite_create("live");
  TCase *bal = tcase_create("balancer");
  TCase *live = tcase_create("live");
  TCase *console = tcase_create("console");
  int failed;

  /* A writer into a closed socket must get EPIPE, not die. */
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  tcase_set_timeout(bal, 30);
  tcase_add_test(bal, balancer_splices_large_bodies_both_ways);
  tcase_add_test(bal, balancer_passes_half_close_from_member);
  tcase_add_test(bal, balancer_closes_both_sides_together);
  tcase_add_test(bal, balancer_passes_resets_on);
  tcase_add_test(bal, balancer_picks_by_mode);
  tcase_add_test(bal, balancer_cap_answers_503);
  suite_add_tcase(s, bal);
  tcase_set_timeout(live, 60);
  tcase_add_test(live, trainer_flow);
  tcase_add_test(live, readme_demo_apply_fix_fixes_sp1);
  tcase_add_test(live, client_and_serve_record_a_session);
  tcase_add_test(live, serve_records_who_closed);
  tcase_add_test(live, serve_records_a_reset);
  tcase_add_test(live, admin_refuses_bad_requests);
  tcase_add_test(live, bad_arguments);
  tcase_add_test(live, curl_and_clients_through_the_balancer);
  tcase_add_test(live, serve_flag_form_with_auth_and_admin);
  tcase_add_test(live, admin_refuses_other_origins_and_tokens);
  tcase_add_test(live, live_stream_and_terminal_lines);
  tcase_add_test(live, live_view_keeps_the_newest_legs);
  suite_add_tcase(s, live);
  tcase_set_timeout(console, 60);
  tcase_set_tags(console, KBT_SLOW);
  tcase_add_test(console, console_in_chromium);
  suite_add_tcase(s, console);
  failed = kbt_run(s);
  curl_global_cleanup();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
