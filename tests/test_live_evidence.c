/*
 * test_live_evidence.c - what `kbsim serve` and `kbsim client` record on
 * the real clock (test_live.h): the JSON report against its schema, the
 * page, and the close reasons (a client's FIN, ISA's FIN, a client's
 * reset); and, tagged slow, the captures tshark decodes and
 * tests/pcap-judge holds to the transcript.
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

/* What `kbsim client --pcap --transcript --json --html` and `kbsim serve
 * --pcap --transcript --json --html` recorded of one session, in dir. */
struct recorded {
  char dir[256], pcap[512], txt[512], json[512], html[512];
  char spcap[512], stxt[512], sjson[512], shtml[512];
};

/* Runs the session: the bug's serve and one client through its balancer
 * as alice (exit 1: the user saw the error), then stops serve once the
 * balancer has ended the pair. Checks serve's line per request. */
static void record_a_session(struct recorded *r)
{
  char url[64];
  const char *args[] = {SCENARIOS_DIR "/bug.ini",
                        "--pcap",
                        r->spcap,
                        "--transcript",
                        r->stxt,
                        "--json",
                        r->sjson,
                        "--html",
                        r->shtml,
                        NULL};
  const char *cargs[] = {
      "client",       "--url", url,      "--user", ALICE,    "--pcap", r->pcap,
      "--transcript", r->txt,  "--json", r->json,  "--html", r->html,  NULL};
  struct served s;
  struct proc_out p;

  proc_tmpdir("kbsim-live", r->dir, sizeof(r->dir));
  snprintf(r->pcap, sizeof(r->pcap), "%s/live.pcap", r->dir);
  snprintf(r->txt, sizeof(r->txt), "%s/live.txt", r->dir);
  snprintf(r->json, sizeof(r->json), "%s/live.json", r->dir);
  snprintf(r->html, sizeof(r->html), "%s/live.html", r->dir);
  snprintf(r->spcap, sizeof(r->spcap), "%s/serve.pcap", r->dir);
  snprintf(r->stxt, sizeof(r->stxt), "%s/serve.txt", r->dir);
  snprintf(r->sjson, sizeof(r->sjson), "%s/serve.json", r->dir);
  snprintf(r->shtml, sizeof(r->shtml), "%s/serve.html", r->dir);
  lv_serve_start(&s, args);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.balancer);
  proc_kbsim(&p, cargs);
  ck_assert_msg(p.status == 1, "client exited %d: %s%s", p.status, p.out.data,
                p.err.data);
  proc_free(&p);
  lv_balancer_drained(&s);
  served_stop(&s);
  /* Recording keeps the line per request: the five the member answered,
   * the two EWS POSTs forwarded without their challenge. */
  ck_assert_int_eq(proc_count(s.rest.data, " ISA01 conn 1 POST "), 5);
  ck_assert_int_eq(proc_count(s.rest.data, ": reauth-skipped -> 500"), 2);
  kb_buf_free(&s.rest);
}

/* `kbsim client --pcap --transcript --json --html` against `kbsim serve
 * --pcap --transcript --json --html` records its own hop on the real
 * clock: serve's report and page (both hops' connections, the member's
 * decisions, the counters), the client's report and page. What tshark and
 * tests/pcap-judge read of the captures is
 * client_and_serve_captures_hold's. */
START_TEST(client_and_serve_record_a_session)
{
  struct recorded r;

  record_a_session(&r);
  {
    /* serve's own report of what passed, valid against the schema: both
     * hops' connections, the member's decisions, the counters. */
    json_error_t jerr;
    json_t *root = json_load_file(r.sjson, 0, &jerr);
    json_t *ex, *conns, *m;
    size_t i;
    int skipped = 0, upstream = 0;

    ck_assert_msg(root != NULL, "%s: %s", r.sjson, jerr.text);
    /* Both reports, serve's and the client's, in one python3-jsonschema
     * process. */
    proc_assert_schema(LV_SCHEMA, (const char *const[]){r.sjson, r.json, NULL});
    ck_assert_str_eq(json_string_value(json_object_get(root, "kind")), "serve");
    ck_assert_str_eq(json_string_value(json_object_get(root, "signal")),
                     "SIGTERM");
    ck_assert_int_eq(lv_json_int_at(root, "summary", "requests"), 5);
    ck_assert_int_eq(lv_json_int_at(root, "summary", "forwarded"), 3);
    ck_assert_int_eq(lv_json_int_at(root, "summary", "server_errors"), 2);
    ck_assert_int_eq(lv_json_int_at(root, "summary", "proxy_reauth_skipped"),
                     2);
    ck_assert_int_eq(lv_json_int_at(root, "summary", "backend_empty_posts"), 2);
    ck_assert_int_eq(lv_json_int_at(root, "summary", "resets"), 0);
    ck_assert_int_eq(lv_json_int_at(root, "balancer", "accepted"), 1);
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
      char *page = proc_slurp(r.shtml, &hlen);
      ck_assert_int_eq(proc_count(page, "<tr class=\"x bug\">"), 2);
      ck_assert_int_eq(proc_count(page, "<tr class=\"x up bug\">"), 2);
      ck_assert_int_eq(proc_count(page, "the POST reached Exchange without its "
                                        "body (KB 942638)"),
                       2);
      ck_assert_int_eq(proc_count(page, "<tr class=\"conn\">"), 2);
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

  {
    /* The report of what the client saw; what only the listener knows is
     * null, not a made-up 0, and a live run has no seed. */
    json_error_t jerr;
    json_t *root = json_load_file(r.json, 0, &jerr);
    json_t *sum = json_object_get(root, "summary");
    size_t hlen;
    char *page = proc_slurp(r.html, &hlen);
    const char *at = page;
    int why = 0;

    json_t *ex;
    size_t i;

    ck_assert_msg(root != NULL, "%s: %s", r.json, jerr.text);
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
  proc_rmdir(r.dir);
}
END_TEST

/* The same session's captures (tagged slow: tshark reads them): tshark
 * decodes the handshake and the bug's 500s, and tests/pcap-judge finds
 * each capture and its transcript the same bytes, message by message,
 * each header block in one segment. */
START_TEST(client_and_serve_captures_hold)
{
  char *judge[] = {TESTS_DIR "/pcap-judge", NULL, NULL, NULL};
  char *sjudge[] = {TESTS_DIR "/pcap-judge", "--live", NULL, NULL, NULL};
  struct recorded r;
  struct proc_out p;

  record_a_session(&r);
  judge[1] = r.pcap;
  judge[2] = r.txt;
  sjudge[2] = r.spcap;
  sjudge[3] = r.stxt;
  proc_tshark(r.pcap, "ntlmssp || http.response", "ntlmssp.messagetype",
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
  /* serve --pcap --transcript recorded both hops of the same session,
   * through the balancer and the member's upstream, written on SIGTERM:
   * the 5 requests from the client, the 3 ISA forwarded, the bug's 500 on
   * each hop. */
  proc_tshark(r.spcap, "http.request || http.response.code == 500", "ip.dst",
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
  proc_rmdir(r.dir);
}
END_TEST

/* What tshark saw of one TCP stream's RST and FIN segments, from lines
 * "stream<TAB>srcport<TAB>reset<TAB>fin". */
struct closes {
  char first_port[8];     /* of the stream's first RST or FIN, or "" */
  char first_fin_port[8]; /* of its first FIN, or "" */
  int rst_only;           /* RST without FIN */
  int fin_only;           /* FIN without RST */
};

static void closes_of(const char *lines, unsigned stream, struct closes *c)
{
  const char *line = lines;

  memset(c, 0, sizeof(*c));
  while(*line) {
    unsigned st, rst, fin;
    char port[8];

    if(sscanf(line, "%u\t%7[0-9]\t%u\t%u", &st, port, &rst, &fin) == 4 &&
       st == stream) {
      if(!c->first_port[0])
        snprintf(c->first_port, sizeof(c->first_port), "%s", port);
      if(fin && !c->first_fin_port[0])
        snprintf(c->first_fin_port, sizeof(c->first_fin_port), "%s", port);
      c->rst_only += rst && !fin;
      c->fin_only += fin && !rst;
    }
    line += strcspn(line, "\n");
    line += *line == '\n';
  }
}

/* What serve recorded of two connections, in dir. */
struct closes_run {
  char dir[256], pcap[512], txt[512], json[512];
};

/* One serve of the bug (--pcap, --transcript, --json), two connections
 * through its balancer, each closed in its own way:
 *
 * A client that resets its connection (SO_LINGER 0) has it reset on the
 * member's side too (connection 1).
 *
 * When ISA closes first (it answers "Connection: close" and the client
 * waits for the end), the balancer sees the member's FIN first
 * (connection 2). */
static void record_closes(struct closes_run *r)
{
  static const char req[] =
      "GET /EWS/Exchange.asmx HTTP/1.1\r\nHost: a\r\n\r\n";
  static const char req_close[] =
      "GET /EWS/Exchange.asmx HTTP/1.1\r\nHost: a\r\n"
      "Connection: close\r\n\r\n";
  const char *args[] = {SCENARIOS_DIR "/bug.ini",
                        "--pcap",
                        r->pcap,
                        "--transcript",
                        r->txt,
                        "--json",
                        r->json,
                        NULL};
  struct linger lg = {1, 0};
  struct served s;
  char buf[4096];
  size_t got = 0;
  ssize_t n;
  int fd;

  buf[0] = '\0';
  proc_tmpdir("kbsim-live", r->dir, sizeof(r->dir));
  snprintf(r->pcap, sizeof(r->pcap), "%s/closes.pcap", r->dir);
  snprintf(r->txt, sizeof(r->txt), "%s/closes.txt", r->dir);
  snprintf(r->json, sizeof(r->json), "%s/closes.json", r->dir);
  lv_serve_start(&s, args);

  /* Connection 1, reset by the client. */
  fd = rc_dial((uint16_t)s.balancer);
  ck_assert_int_eq(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
  /* The whole 401 (its head and the Content-Length it gives) first, so
   * the reset follows an answer. */
  for(;;) {
    const char *end = strstr(buf, "\r\n\r\n");
    const char *cl = strstr(buf, "Content-Length: ");

    if(end && cl && got >= (size_t)(end - buf) + 4 + strtoul(cl + 16, NULL, 10))
      break;
    n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
    ck_assert_int_gt(n, 0);
    got += (size_t)n;
    buf[got] = '\0';
  }
  ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
  close(fd);

  /* Connection 2, closed by ISA: read to the end, ISA's FIN passed on by
   * the balancer. */
  fd = rc_dial((uint16_t)s.balancer);
  ck_assert_int_eq(send(fd, req_close, sizeof(req_close) - 1, 0),
                   (ssize_t)sizeof(req_close) - 1);
  while((n = recv(fd, buf, sizeof(buf), 0)) > 0)
    ;
  ck_assert_int_eq(n, 0);
  close(fd);
  lv_balancer_drained(&s);
  served_stop(&s);
  kb_buf_free(&s.rest);
}

/* Who closed, as the transcript and the JSON report say it: the client's
 * reset on connection 1, ISA's FIN reaching the balancer first on 2. */
START_TEST(serve_records_who_closed)
{
  struct closes_run r;
  json_error_t jerr;
  json_t *root, *c;
  char *text;
  size_t len;

  record_closes(&r);
  text = proc_slurp(r.txt, &len);
  ck_assert_msg(strstr(text, "connection reset by the client (RST)") != NULL,
                "%s", text);
  ck_assert_msg(strstr(text, "connection closed by ISA: its FIN reached the "
                             "balancer first") != NULL,
                "%s", text);
  free(text);
  root = json_load_file(r.json, 0, &jerr);
  ck_assert_msg(root != NULL, "%s: %s", r.json, jerr.text);
  proc_assert_schema(LV_SCHEMA, (const char *const[]){r.json, NULL});
  ck_assert_int_eq(lv_json_int_at(root, "summary", "resets"), 1);
  c = json_array_get(json_object_get(root, "connections"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(c, "name")),
                   "balancer conn 1");
  ck_assert_str_eq(json_string_value(json_object_get(c, "close")), "reset");
  json_decref(root);
  proc_rmdir(r.dir);
}
END_TEST

/* Who closed, as the capture says it (tagged slow: tshark reads it); the
 * capture's TCP streams are its connections in order. Connection 1: the
 * client's RST and no FIN. Connection 2: the first FIN is ISA's. */
START_TEST(serve_captures_who_closed)
{
  struct closes_run r;
  char *flags[] = {"/usr/bin/tshark",
                   "-n",
                   "-r",
                   NULL,
                   "-Y",
                   "tcp.flags.reset == 1 || tcp.flags.fin == 1",
                   "-T",
                   "fields",
                   "-e",
                   "tcp.stream",
                   "-e",
                   "tcp.srcport",
                   "-e",
                   "tcp.flags.reset",
                   "-e",
                   "tcp.flags.fin",
                   NULL};
  struct proc_out p;
  struct closes reset, isa;

  record_closes(&r);
  flags[3] = r.pcap;
  proc_run(flags, &p);
  ck_assert_msg(p.status == 0, "tshark: %s", p.err.data);
  closes_of(p.out.data, 0, &reset);
  closes_of(p.out.data, 1, &isa);
  /* One RST, from the client (not ISA's port 80), and no FIN at all: the
   * 401 offer reached nothing upstream. */
  ck_assert_int_eq(reset.rst_only, 1);
  ck_assert_int_eq(reset.fin_only, 0);
  ck_assert_msg(reset.first_port[0] && strcmp(reset.first_port, "80") != 0,
                "%s", p.out.data);
  /* The other connection's first FIN is ISA's. */
  ck_assert_msg(!strcmp(isa.first_fin_port, "80"), "first FIN from %s",
                p.out.data);
  proc_free(&p);
  proc_rmdir(r.dir);
}
END_TEST

Suite *live_evidence_suite(void)
{
  Suite *s = suite_create("evidence");
  TCase *tc = tcase_create("evidence");
  TCase *captures = tcase_create("captures");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, client_and_serve_record_a_session);
  tcase_add_test(tc, serve_records_who_closed);
  suite_add_tcase(s, tc);
  /* What tshark reads: its cost, not kbsim's. */
  tcase_set_timeout(captures, 60);
  tcase_set_tags(captures, KBT_SLOW);
  tcase_add_test(captures, client_and_serve_captures_hold);
  tcase_add_test(captures, serve_captures_who_closed);
  suite_add_tcase(s, captures);
  return s;
}
