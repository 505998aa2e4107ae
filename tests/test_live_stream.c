/*
 * test_live_stream.c - the live view (test_live.h): the console's event
 * stream leg by leg with its decisions and the terminal's line per
 * request, a stream reopened after a leg; the live view in-process (its
 * ring of the newest legs); and the console in headless Chromium
 * (tests/console/drive.js, tagged slow).
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
#include "kbt.h"
#include "live/live.h"
#include "proc.h"
#include "rc.h"
#include "test_live.h"

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
  st->fd = rc_dial((uint16_t)s->admin);
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

  lv_serve_start(&s, args);
  stream_open(&st, &s);
  ev = stream_next(&st, "status");
  ck_assert_str_eq(lv_member_str(ev, 1, "name"), "ISA02");
  json_decref(ev);
  /* The first session goes to ISA01 (fixed), the second to ISA02. */
  ck_assert_int_eq(lv_client_session(&s, ALICE), 0);
  ck_assert_int_eq(lv_client_session(&s, BOB), 1);
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
  lv_ctl(&s, &p, "hotfix", "--member", "ISA02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  /* Statuses sent after the legs came before it; the change's comes, or
   * stream_next fails after 15 s of silence. */
  for(;;) {
    bool changed;

    ev = stream_next(&st, "status");
    changed = !strcmp(lv_member_str(ev, 1, "patch"), "rtm+hotfix");
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
  served_stop(&s);
  /* One line per request, as it happened. */
  ck_assert_int_eq(lv_lines_with(s.rest.data, " conn ", false), 12);
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

  if(!proc_have("/usr/bin/node") || !proc_have("/usr/bin/chromium"))
    return; /* skipped; main says so */
  ck_assert_msg(access(NODE_MODULES "/puppeteer-core", F_OK) == 0,
                "puppeteer-core is missing from " NODE_MODULES
                ": run scripts/setup");
  proc_tmpdir("kbsim-console", dir, sizeof(dir));
  snprintf(shot, sizeof(shot), "%s/console.png", dir);
  snprintf(node_path, sizeof(node_path), "NODE_PATH=%s", NODE_MODULES);
  lv_serve_start(&s, args);
  snprintf(console, sizeof(console), "http://127.0.0.1:%u/?token=%s", s.admin,
           s.token);
  snprintf(balancer, sizeof(balancer), "http://127.0.0.1:%u/", s.balancer);
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "the browser flow failed (%d):\n%s%s", p.status,
                p.out.data, p.err.data);
  ck_assert_int_eq(lv_lines_with(p.out.data, "ok ", true), 9);
  proc_free(&p);
  /* What the clicks did, as the endpoint sees it. */
  st = lv_status_of(&s);
  ck_assert_str_eq(lv_member_str(st, 1, "patch"), "rtm+hotfix");
  ck_assert_str_eq(lv_member_str(st, 1, "policy"), "per-request");
  ck_assert_str_eq(lv_member_str(st, 0, "policy"), "per-request");
  ck_assert_int_eq(lv_member_int(st, 1, "forwarded_empty_posts"), 2);
  ck_assert_int_eq(lv_member_int(st, 1, "connections"), 2);
  ck_assert_int_eq(lv_member_int(st, 0, "connections"), 3);
  ck_assert_int_eq(lv_member_int(st, 0, "forwarded_empty_posts"), 0);
  json_decref(st);
  served_stop(&s);
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
  ck_assert_int_eq(lv_lines_with(lines, " conn ", false), 5);
  ck_assert_int_eq(lv_lines_with(lines,
                                 " ISA02 conn 1 POST /EWS/Exchange.asmx "
                                 "NTLM type 1, no body: reauth-skipped "
                                 "-> 500\n",
                                 false),
                   2);
  ck_assert_int_eq(lv_lines_with(lines,
                                 " ISA01 conn 2 POST /EWS/Exchange.asmx "
                                 "NTLM type 1, no body: challenge -> "
                                 "401\n",
                                 false),
                   1);
  free(lines);
}
END_TEST

Suite *live_stream_suite(void)
{
  Suite *s = suite_create("stream");
  TCase *live = tcase_create("live");
  TCase *console = tcase_create("console");

  tcase_set_timeout(live, 60);
  tcase_add_test(live, live_stream_and_terminal_lines);
  tcase_add_test(live, live_view_keeps_the_newest_legs);
  suite_add_tcase(s, live);
  tcase_set_timeout(console, 60);
  tcase_set_tags(console, KBT_SLOW);
  tcase_add_test(console, console_in_chromium);
  suite_add_tcase(s, console);
  return s;
}
