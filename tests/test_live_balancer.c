/*
 * test_live_balancer.c - the TCP balancer (balancer.h) in-process, in
 * front of member servers of the test's own: 4 MiB each way, half-closes
 * passed on, resets passed on as resets on either side, both sides closed
 * together, a fast 503 at its cap, and the members it picks by mode.
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
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
#include "test_live.h"

/* ---- helpers: sockets ------------------------------------------------- */

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
  fd = rc_dial(balancer_port(b));
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
  fd = rc_dial(balancer_port(b));
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
  fd = rc_dial(balancer_port(b));
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
  fd = rc_dial(balancer_port(b));
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
  fd = rc_dial(balancer_port(b));
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
  struct kbt_trace trace;
  struct kb_buf in;
  char err[256], got[256];
  size_t have = 0;
  ssize_t n;
  int fd[3];

  member_start(&m, MEMBER_ECHO, 2);
  memset(&cfg, 0, sizeof(cfg));
  cfg.nmembers = 1;
  cfg.members[0].port = m.port;
  cfg.max_connections = 1;
  kbt_trace_init(&trace, false, "T_BALANCER_TRACE");
  cfg.trace = kbt_trace_sink(&trace);
  ck_assert_msg(!balancer_start(&cfg, &b, err, sizeof(err)), "%s", err);
  kb_buf_init(&in, 16);
  /* The first holds the only pair: its echo proves it is spliced. */
  fd[0] = rc_dial(balancer_port(b));
  ck_assert_int_eq(send(fd[0], "ping", 4, MSG_NOSIGNAL), 4);
  for(have = 0; have < 4; have += (size_t)n)
    ck_assert_int_gt(n = recv(fd[0], got + have, 4 - have, 0), 0);
  ck_assert_int_eq(memcmp(got, "ping", 4), 0);
  fd[1] = rc_dial(balancer_port(b));
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
  /* The pair's end is the balancer's to notice: its CLOSE event follows
   * the count. */
  kbt_wait_for(&trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY);
  balancer_stats(b, &st);
  ck_assert_uint_eq(st.open, 0);
  fd[2] = rc_dial(balancer_port(b));
  ck_assert_int_eq(pump(fd[2], (const uint8_t *)"pong", 4, true, &in), 0);
  ck_assert_uint_eq(in.len, 4);
  close(fd[2]);
  member_join(&m);
  balancer_stop(b);
  kbt_trace_free(&trace);
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
    fd = rc_dial(balancer_port(b));
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

Suite *live_balancer_suite(void)
{
  Suite *s = suite_create("balancer");
  TCase *tc = tcase_create("balancer");

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, balancer_splices_large_bodies_both_ways);
  tcase_add_test(tc, balancer_passes_half_close_from_member);
  tcase_add_test(tc, balancer_closes_both_sides_together);
  tcase_add_test(tc, balancer_passes_resets_on);
  tcase_add_test(tc, balancer_picks_by_mode);
  tcase_add_test(tc, balancer_cap_answers_503);
  suite_add_tcase(s, tc);
  return s;
}
