/*
 * test_report.c - the narrated demo and the HTML report.
 *
 * The report: escaping byte for byte and against a hostile trace; the
 * story of one session leg by leg (POSTs, decisions, decoded tokens);
 * pages for bug and bug + fix checked for structure (libxml2's HTML parser
 * for the page, its XML parser for each diagram), one arrow per recorded
 * leg (counted against the JSON report), the highlight on every empty POST
 * and every 500, nothing loaded from outside; and the page rendered by
 * headless Chromium: a DOM dump that shows the diagrams laid out, and a
 * screenshot that is neither empty nor one colour and has the failing legs
 * in red. The demo: plain when piped, colour by flag or on a terminal,
 * NO_COLOR honoured, --step waiting for Enter and ending at end of input,
 * --html writing both sessions. TLS and Kerberos drawn: the hops' kinds
 * and each Extended Protection refusal with both bindings (report and
 * demo), a Kerberos user's legs as one-leg Negotiate (report and demo
 * --inside, against MIT's KDC; skipped, and said so, without it).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <png.h>
#include <pty.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"
#include "render/html.h"
#include "sim/run.h"
#include "sim/sim_env.h"

/* The running test's scratch directory. */
static char tmpdir[256];

/* True when text[len] is valid UTF-8 without control bytes other than
 * newline and tab: what the page must be, whatever was recorded. */
static bool clean_utf8(const unsigned char *t, size_t len)
{
  size_t i = 0;

  while(i < len) {
    unsigned char c = t[i];
    size_t n, k;

    if(c < 0x80) {
      if((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
        return false;
      i++;
      continue;
    }
    n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if(!n || i + n > len)
      return false;
    for(k = 1; k < n; k++)
      if((t[i + k] & 0xc0) != 0x80)
        return false;
    i += n;
  }
  return true;
}

/* ---- parsing the page ------------------------------------------------- */

struct parse_errors {
  int other; /* anything but an element HTML 4 does not know */
  char first[256];
};

static void collect_error(void *ctx, xmlErrorPtr e)
{
  struct parse_errors *pe = ctx;

  /* libxml2's HTML parser knows HTML 4: <svg>, <section>, <details>...
   * are "unknown tags" to it, which is not a fault of the page. */
  if(e->domain == XML_FROM_HTML && e->code == XML_HTML_UNKNOWN_TAG)
    return;
  if(!pe->other++)
    snprintf(pe->first, sizeof(pe->first), "line %d: %s", e->line,
             e->message ? e->message : "?");
}

/* Parses the page with libxml2's HTML parser; fails the test on any error
 * but unknown (HTML5 / SVG) tags. */
static htmlDocPtr parse_page(const char *path)
{
  struct parse_errors pe;
  htmlDocPtr doc;

  memset(&pe, 0, sizeof(pe));
  xmlSetStructuredErrorFunc(&pe, collect_error);
  doc = htmlReadFile(path, "utf-8", HTML_PARSE_NONET);
  xmlSetStructuredErrorFunc(NULL, NULL);
  ck_assert_msg(doc != NULL, "%s does not parse as HTML", path);
  ck_assert_msg(pe.other == 0, "%s: %d HTML parse errors, first %s", path,
                pe.other, pe.first);
  return doc;
}

/* Returns how many nodes expr selects in doc. */
static int xpath_count(xmlDocPtr doc, const char *expr)
{
  xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  xmlXPathObjectPtr obj;
  int n;

  ck_assert_ptr_nonnull(ctx);
  obj = xmlXPathEvalExpression((const xmlChar *)expr, ctx);
  ck_assert_msg(obj != NULL, "bad XPath %s", expr);
  n = obj->nodesetval ? obj->nodesetval->nodeNr : 0;
  xmlXPathFreeObject(obj);
  xmlXPathFreeContext(ctx);
  return n;
}

/* XPath for elements named name carrying class cls. */
#define HAS_CLASS(cls)                                                         \
  "contains(concat(' ', normalize-space(@class), ' '), ' " cls " ')"
#define EL(name) "//*[local-name()='" name "']"

/* Each <svg>...</svg> of the page parsed as strict XML, as an inline SVG
 * must be; fails the test when one is not well-formed. Returns how many
 * there are; the documents go to docs (at most max). */
static int parse_svgs(const char *page, xmlDocPtr *docs, int max)
{
  const char *p = page;
  int n = 0;

  while((p = strstr(p, "<svg")) != NULL) {
    const char *end = strstr(p, "</svg>");
    xmlDocPtr doc;

    ck_assert_ptr_nonnull(end);
    end += 6;
    doc = xmlReadMemory(p, (int)(end - p), "svg.xml", NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR |
                            XML_PARSE_NOWARNING);
    ck_assert_msg(doc != NULL, "diagram %d is not well-formed XML", n + 1);
    ck_assert_int_lt(n, max);
    docs[n++] = doc;
    p = end;
  }
  return n;
}

/* Checks that nothing on the page comes from outside: no element loading
 * a URL, no external script, no CSS import or url(), and "http(s)://" only
 * in the SVG namespace. */
static void assert_self_contained(const char *page, xmlDocPtr doc)
{
  const char *p = page;

  ck_assert_int_eq(xpath_count(doc, "//*[@src or @href or @action or "
                                    "@srcset or @poster or @data]"),
                   0);
  ck_assert_int_eq(xpath_count(doc, "//link | //img | //iframe | //object | "
                                    "//embed | //video | //audio | //base"),
                   0);
  ck_assert_int_eq(xpath_count(doc, "//script[@src]"), 0);
  ck_assert_ptr_null(strstr(page, "@import"));
  ck_assert_ptr_null(strstr(page, "url("));
  while((p = strstr(p, "http")) != NULL) {
    if(!strncmp(p, "http://", 7) || !strncmp(p, "https://", 8))
      ck_assert_msg(!strncmp(p, "http://www.w3.org/2000/svg\"", 27),
                    "external reference: %.60s", p);
    p += 4;
  }
}

/* Reads the JSON report and counts its exchanges: all, the empty POSTs
 * Exchange received, and the 500s on each hop. */
struct json_counts {
  int exchanges, empty_posts, hop1_500, hop2_500;
};

static void json_count(const char *path, struct json_counts *c)
{
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);
  json_t *x;
  size_t i;

  ck_assert_msg(root != NULL, "%s: %s", path, jerr.text);
  memset(c, 0, sizeof(*c));
  json_array_foreach(json_object_get(root, "exchanges"), i, x)
  {
    bool hop2 =
        !strcmp(json_string_value(json_object_get(x, "hop")), "proxy-backend");
    int status = (int)json_integer_value(json_object_get(x, "status"));

    c->exchanges++;
    if(hop2 &&
       !strcmp(json_string_value(json_object_get(x, "method")), "POST") &&
       json_integer_value(json_object_get(x, "request_body_length")) == 0)
      c->empty_posts++;
    if(status == 500)
      (*(hop2 ? &c->hop2_500 : &c->hop1_500))++;
  }
  json_decref(root);
}

/* How many clients each drawn client stands for: a diagram draws a run of
 * identical sessions once, its band saying how many (data-clients). Only
 * diagrams with one band (all clients alike) are compared here. */
static int drawn_once_for(xmlDocPtr svg)
{
  int bands = xpath_count(svg, EL("g") "[" HAS_CLASS("band") "]");
  int n;

  ck_assert_int_eq(bands, 1);
  for(n = 1; n <= 64; n++) {
    char expr[128];
    snprintf(expr, sizeof(expr), EL("g") "[@data-clients='%d']", n);
    if(xpath_count(svg, expr) == 1)
      return n;
  }
  ck_abort_msg("the band says for how many clients it stands");
  return 0;
}

/* Checks one diagram against the JSON report of the same run: every
 * exchange drawn, once for each set of identical clients. */
static void assert_diagram(xmlDocPtr svg, const struct json_counts *c)
{
  int k = drawn_once_for(svg);

  ck_assert_int_eq(k * xpath_count(svg, EL("g") "[" HAS_CLASS("leg") "]"),
                   c->exchanges);
  /* Every empty POST that reached Exchange and every 500, highlighted. */
  ck_assert_int_eq(k * xpath_count(svg, EL("g") "[@data-hop='2' and "
                                                "@data-method='POST' and "
                                                "@data-req-body='0']"),
                   c->empty_posts);
  ck_assert_int_eq(
      k * xpath_count(svg, EL("g") "[@data-hop='2' and "
                                   "@data-method='POST' and "
                                   "@data-req-body='0']/*[local-name()='line' "
                                   "and " HAS_CLASS("req") " and " HAS_CLASS(
                                       "bad") "]"),
      c->empty_posts);
  ck_assert_int_eq(
      k * xpath_count(svg, EL("g") "[@data-hop='2' and "
                                   "@data-status='500']/*[local-name()='line' "
                                   "and " HAS_CLASS("rep") " and " HAS_CLASS(
                                       "bad") "]"),
      c->hop2_500);
  ck_assert_int_eq(
      k * xpath_count(svg, EL("g") "[@data-hop='1' and "
                                   "@data-status='500']/*[local-name()='line' "
                                   "and " HAS_CLASS("rep") " and " HAS_CLASS(
                                       "bad") "]"),
      c->hop1_500);
  /* Nothing else is red. */
  ck_assert_int_eq(k * xpath_count(svg, EL("line") "[" HAS_CLASS("bad") "]"),
                   c->empty_posts + c->hop1_500 + c->hop2_500);
}

/* ---- escaping --------------------------------------------------------- */

static void assert_escaped(const char *in, size_t len, const char *want)
{
  char *got = NULL;
  size_t got_len = 0;
  FILE *f = open_memstream(&got, &got_len);

  ck_assert_ptr_nonnull(f);
  html_escape(f, in, len);
  ck_assert_int_eq(fclose(f), 0);
  ck_assert_str_eq(got, want);
  free(got);
}

START_TEST(escape_exact_bytes)
{
  assert_escaped("a<b>&\"'", 7, "a&lt;b&gt;&amp;&quot;&#39;");
  assert_escaped("line\n\ttab", 9, "line\n\ttab");
  assert_escaped("\x01\x1b[31m\x7f", 7, "\\x01\\x1b[31m\\x7f");
  assert_escaped("nul\0here", 8, "nul\\x00here");
  assert_escaped("caf\xc3\xa9 \xf0\x9f\x98\x80", 10,
                 "caf\xc3\xa9 \xf0\x9f\x98\x80");
  assert_escaped("\xc3", 1, "\\xc3");                   /* cut short */
  assert_escaped("\xc0\xaf", 2, "\\xc0\\xaf");          /* overlong '/' */
  assert_escaped("\xed\xa0\x80", 3, "\\xed\\xa0\\x80"); /* a surrogate */
  assert_escaped("\xc2\x85", 2, "\\xc2\\x85");          /* C1 control */
  assert_escaped("\xf4\x90\x80\x80", 4,
                 "\\xf4\\x90\\x80\\x80"); /* > U+10FFFF */
  assert_escaped("\xff<", 2, "\\xff&lt;");
}
END_TEST

/* Emits one trace event into rec. */
static void emit(struct sim_recorder *rec, enum kb_trace_kind kind,
                 enum kb_hop hop, enum kb_side side, const char *origin,
                 uint64_t conn, const char *name, const struct kb_exchange *x,
                 const char *text, const char *data, size_t len)
{
  struct kb_trace trace = sim_recorder_as_kb(rec);
  struct kb_trace_event ev;

  memset(&ev, 0, sizeof(ev));
  ev.kind = kind;
  ev.hop = hop;
  ev.side = side;
  ev.origin = origin;
  ev.conn = conn;
  ev.conn_name = name;
  ev.exchange = x;
  ev.text = text;
  ev.data = (const uint8_t *)data;
  ev.len = len;
  kb_trace_emit(&trace, &ev);
}

START_TEST(hostile_trace_stays_text)
{
  static const char evil_path[] = "/EWS/\"><script>alert(1)</script>&amp;'";
  static const char evil_note[] = "</text></svg><script>alert(2)</script>"
                                  "\x01\xff\xc3 <!-- -->";
  static const char evil_member[] = "ISA<b onmouseover=alert(3)>";
  static const char request[] =
      "POST /EWS/\"><script>alert(1)</script>&amp;' HTTP/1.1\r\n"
      "Authorization: NTLM <img src=x onerror=alert(4)>\r\n"
      "Content-Length: 0\r\n\r\n";
  struct sim_recorder rec;
  struct kb_exchange front = {.method = "POST",
                              .path = evil_path,
                              .req_auth = KB_AUTH_NTLM_NEGOTIATE,
                              .status = 500,
                              .resp_auth = KB_AUTH_NONE,
                              .resp_body_len = 3};
  struct kb_exchange back = front;
  struct scenario sc;
  struct sim_outcome o;
  struct sim_session session;
  struct client_post_result result;
  struct client_view view;
  struct html_report *report;
  struct html_run run;
  char path[512], err[256];
  char *page;
  size_t len;
  htmlDocPtr doc;
  xmlDocPtr svg[4];

  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  sim_recorder_init(&rec, true);
  emit(&rec, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER, evil_member, 7,
       "client 1 conn 1", NULL, NULL, NULL, 0);
  emit(&rec, KB_TRACE_SEND, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, "client 1", 1,
       "client 1 conn 1", NULL, NULL, request, sizeof(request) - 1);
  emit(&rec, KB_TRACE_NOTE, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER, evil_member, 7,
       NULL, NULL, evil_note, NULL, 0);
  emit(&rec, KB_TRACE_EXCHANGE, KB_HOP_PROXY_BACKEND, KB_SIDE_SERVER, "backend",
       1, "client 1 conn 1 upstream 1", &back, NULL, NULL, 0);
  emit(&rec, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER,
       evil_member, 7, "client 1 conn 1", &front, NULL, NULL, 0);
  emit(&rec, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, "client 1",
       1, "client 1 conn 1", &front, NULL, NULL, 0);
  emit(&rec, KB_TRACE_NOTE, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, "client 1", 1,
       NULL, NULL, "notification: <marquee>", NULL, 0);

  scenario_defaults(&sc);
  snprintf(sc.name, sizeof(sc.name), "<img src=x onerror=alert(5)>");
  snprintf(sc.description, sizeof(sc.description), "</h2><iframe src=//x>");
  sc.nmembers = 1;
  snprintf(sc.members[0].name, sizeof(sc.members[0].name), "%s", evil_member);
  memset(&o, 0, sizeof(o));
  memset(&session, 0, sizeof(session));
  memset(&result, 0, sizeof(result));
  memset(&view, 0, sizeof(view));
  result.index = 1;
  result.kind = CLIENT_POST_OOF;
  result.outcome = CLIENT_SERVER_ERROR;
  result.legs = 1;
  result.final_status = 500;
  snprintf(result.detail, sizeof(result.detail), "<script>alert(6)</script>");
  view.integration_error = true;
  session.id = 1;
  session.nresults = 1;
  session.results = &result;
  session.views = &view;
  session.view = view;
  snprintf(session.error, sizeof(session.error), "%s", "");
  o.sessions.count = 1;
  o.sessions.sessions = &session;
  o.sessions.users_with_error = 1;

  report = html_report_new("<script>alert(7)</script>");
  ck_assert_ptr_nonnull(report);
  memset(&run, 0, sizeof(run));
  run.sc = &sc;
  run.outcome = &o;
  run.rec = &rec;
  ck_assert_int_eq(html_report_add(report, &run, err, sizeof(err)), 0);
  snprintf(path, sizeof(path), "%s/hostile.html", tmpdir);
  ck_assert_int_eq(html_report_write(report, path, err, sizeof(err)), 0);
  html_report_free(report);
  sim_recorder_free(&rec);

  page = proc_slurp(path, &len);
  ck_assert_msg(clean_utf8((const unsigned char *)page, len),
                "the page is not clean UTF-8");
  ck_assert_int_eq(proc_count(page, "<script"), 1); /* the page's own */
  ck_assert_int_eq(proc_count(page, "<img"), 0);
  ck_assert_int_eq(proc_count(page, "<iframe"), 0);
  ck_assert_int_eq(proc_count(page, "<marquee"), 0);
  ck_assert_int_eq(proc_count(page, "<b "), 0);
  ck_assert_ptr_nonnull(strstr(page, "&lt;/text&gt;&lt;/svg&gt;&lt;script&gt;"
                                     "alert(2)&lt;/script&gt;\\x01\\xff\\xc3"));
  ck_assert_ptr_nonnull(strstr(page, "/EWS/&quot;&gt;&lt;script&gt;alert(1)"));
  doc = parse_page(path);
  ck_assert_int_eq(xpath_count(doc, "//script"), 1);
  ck_assert_int_eq(xpath_count(doc, "//script[starts-with(normalize-space(.), "
                                    "'(function(){var s=document.')]"),
                   1);
  ck_assert_int_eq(xpath_count(doc, "//iframe | //img | //marquee"), 0);
  ck_assert_int_eq(xpath_count(doc, "//@*[starts-with(name(), 'on')]"), 0);
  assert_self_contained(page, doc);
  xmlFreeDoc(doc);
  ck_assert_int_eq(parse_svgs(page, svg, 4), 1);
  /* The hostile leg is drawn, highlighted, with its note as text. */
  ck_assert_int_eq(xpath_count(svg[0], EL("g") "[" HAS_CLASS("leg") "]"), 2);
  ck_assert_int_eq(xpath_count(svg[0], EL("line") "[" HAS_CLASS("bad") "]"), 3);
  ck_assert_int_eq(xpath_count(svg[0],
                               EL("title") "[contains(., "
                                           "'</svg><script>alert(2)')]"),
                   1);
  xmlFreeDoc(svg[0]);
  free(page);
  proc_rmdir(tmpdir);
}
END_TEST

/* ---- the story -------------------------------------------------------- */

START_TEST(story_of_one_bug_session)
{
  struct scenario sc;
  struct sim_recorder rec;
  struct sim_outcome o;
  struct story story;
  char err[256];
  static const int posts[] = {0, 0, 0, 1, 2};
  static const size_t backs[] = {0, 0, 1, 1, 1};
  static const int status[] = {401, 401, 200, 500, 500};
  size_t i;

  scenario_defaults(&sc);
  sc.nmembers = 1;
  snprintf(sc.members[0].name, sizeof(sc.members[0].name), "ISA01");
  sc.nusers = 1;
  snprintf(sc.user_specs[0], sizeof(sc.user_specs[0]),
           "FABRIKAM\\alice:Passw0rd!");
  sim_recorder_init(&rec, true);
  ck_assert_msg(sim_scenario_run(&sc, sim_recorder_as_kb(&rec), &o, err,
                                 sizeof(err)) == 0,
                "%s", err);
  ck_assert_int_eq(story_build(&rec, &o.sessions, 0, 0, &story), 0);

  ck_assert_uint_eq(story.nlegs, 5);
  ck_assert_uint_eq(story.legs_total, 5);
  ck_assert_uint_eq(story.back_total, 3);
  ck_assert_uint_eq(story.clients_shown, 1);
  ck_assert_uint_eq(story.nmembers, 1);
  ck_assert_str_eq(story.members[0], "ISA01");
  for(i = 0; i < 5; i++) {
    const struct story_leg *leg = &story.legs[i];
    ck_assert_int_eq(leg->post, posts[i]);
    ck_assert(leg->post_end == (i >= 2));
    ck_assert_uint_eq(leg->nback, backs[i]);
    ck_assert_int_eq(leg->front.status, status[i]);
    ck_assert_str_eq(leg->member, "ISA01");
    ck_assert_str_eq(leg->conn, "client 1 conn 1");
    ck_assert(leg->new_conn == (i == 0));
    ck_assert_uint_eq(leg->nisa, 1);
  }
  ck_assert_ptr_null(story.legs[0].front.req_token);
  ck_assert_ptr_null(story.legs[0].front.resp_token); /* bare "NTLM" */
  ck_assert_ptr_nonnull(story.legs[1].front.req_token);
  ck_assert_msg(!strncmp(story.legs[1].front.req_token,
                         "NTLM type 1 NEGOTIATE flags 0x", 30),
                "%s", story.legs[1].front.req_token);
  ck_assert_ptr_nonnull(story.legs[1].front.resp_token);
  ck_assert_msg(
      !strncmp(story.legs[1].front.resp_token, "NTLM type 2 CHALLENGE", 21),
      "%s", story.legs[1].front.resp_token);
  ck_assert_ptr_nonnull(story.legs[2].front.req_token);
  ck_assert_str_eq(story.legs[2].front.req_token,
                   "NTLM type 3 AUTHENTICATE FABRIKAM\\alice from "
                   "COMMUNICATOR, NTLMv2 response");
  /* What ISA forwarded, decoded from its upstream bytes. */
  ck_assert_ptr_nonnull(story.legs[3].back[0].req_token);
  ck_assert_msg(
      !strncmp(story.legs[3].back[0].req_token, "NTLM type 1 NEGOTIATE", 21),
      "%s", story.legs[3].back[0].req_token);
  ck_assert_uint_eq(story.legs[3].back[0].req_body, 0);
  ck_assert_int_eq(story.legs[3].back[0].status, 500);
  /* The story reads codes; the text is for people. */
  ck_assert_int_eq(story.legs[3].isa_notes[0].code, KB_NOTE_REAUTH_SKIPPED);
  ck_assert_ptr_nonnull(
      strstr(story.legs[3].isa_notes[0].text, "not challenged"));
  ck_assert_uint_eq(story.legs[2].back[0].req_body, 370);
  ck_assert_int_eq(story.legs[2].isa_notes[0].code, KB_NOTE_AUTH_OK);
  ck_assert_ptr_nonnull(strstr(story.legs[2].isa_notes[0].text,
                               "authenticated as FABRIKAM\\alice"));
  /* Communicator noted the notification after the first failed POST. */
  ck_assert_uint_ge(story.legs[3].nclient, 1);
  ck_assert_int_eq(story.legs[3].client_notes[0].code, KB_NOTE_NOTIFICATION);
  ck_assert_str_eq(story.legs[3].client_notes[0].text,
                   "notification: Outlook Integration Error");

  story_free(&story);
  sim_outcome_free(&o);
  sim_recorder_free(&rec);
}
END_TEST

/* ---- the page --------------------------------------------------------- */

START_TEST(report_of_the_bug)
{
  char html[512], json[512];
  const char *args[] = {
      "run", SCENARIOS_DIR "/bug.ini", "--html", html, "--json", json, NULL};
  struct proc_out p;
  struct json_counts c;
  char *page;
  size_t len;
  htmlDocPtr doc;
  xmlDocPtr svg[4];

  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/bug.html", tmpdir);
  snprintf(json, sizeof(json), "%s/bug.json", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  json_count(json, &c);
  ck_assert_int_eq(c.exchanges, 4 * (5 + 3));
  ck_assert_int_eq(c.empty_posts, 8);

  page = proc_slurp(html, &len);
  ck_assert_msg(!strncmp(page, "<!DOCTYPE html>\n", 16), "no doctype");
  ck_assert(clean_utf8((const unsigned char *)page, len));
  doc = parse_page(html);
  ck_assert_int_eq(xpath_count(doc, "//section[" HAS_CLASS("run") "]"), 1);
  ck_assert_int_eq(xpath_count(doc, "//svg"), 1);
  ck_assert_int_eq(
      xpath_count(doc,
                  "//span[" HAS_CLASS("verdict") " and " HAS_CLASS("pass") "]"),
      1);
  /* The timeline: the notification where it appeared, once per user. */
  ck_assert_int_eq(
      xpath_count(doc, "//table[" HAS_CLASS("timeline") "]//span[" HAS_CLASS(
                           "badge") "]"),
      4);
  ck_assert_int_eq(
      xpath_count(doc, "//table[" HAS_CLASS("timeline") "]/tbody/tr"), 4);
  assert_self_contained(page, doc);
  xmlFreeDoc(doc);

  ck_assert_int_eq(parse_svgs(page, svg, 4), 1);
  assert_diagram(svg[0], &c);
  /* The four users' sessions went the same way: drawn once. */
  ck_assert_int_eq(drawn_once_for(svg[0]), 4);
  /* Tokens decoded on demand, in the tooltips: the type 3 as Communicator
   * sent it and as ISA forwarded it. */
  ck_assert_int_eq(xpath_count(svg[0],
                               EL("title") "[contains(., 'NTLM type 3 "
                                           "AUTHENTICATE FABRIKAM\\alice from "
                                           "COMMUNICATOR')]"),
                   2);
  ck_assert_int_eq(xpath_count(svg[0], EL("title") "[contains(., 'NTLM type 2 "
                                                   "CHALLENGE')]"),
                   1);
  /* The notification in the diagram, after the first EWS POST; each failed
   * POST says why as text, without hovering. */
  ck_assert_int_eq(xpath_count(svg[0], EL("g") "[" HAS_CLASS("notify") "]"), 1);
  ck_assert_int_eq(
      xpath_count(svg[0],
                  EL("g") "[" HAS_CLASS("post") " and " HAS_CLASS("fail") "]"),
      2);
  ck_assert_int_eq(
      xpath_count(svg[0],
                  EL("text") "[" HAS_CLASS(
                      "failwhy") " and "
                                 "contains(., 'the listener forwarded it "
                                 "instead of challenging')]"),
      2);
  xmlFreeDoc(svg[0]);
  free(page);
  proc_rmdir(tmpdir);
}
END_TEST

/* ie's report names its requests as they went: the page's two GETs, then
 * the EWS POSTs, in the timeline's heads and cells; no autodiscover. */
START_TEST(report_of_ie_names_its_gets)
{
  char html[512], json[512];
  const char *args[] = {
      "run", SCENARIOS_DIR "/ie-client.ini", "--html", html, "--json", json,
      NULL};
  struct proc_out p;
  htmlDocPtr doc;
  json_error_t jerr;
  json_t *root;
  char *page;
  size_t len;

  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/ie.html", tmpdir);
  snprintf(json, sizeof(json), "%s/ie.json", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  /* Who the client was: the JSON's topology, the diagram's first lane and
   * its arrows name Internet Explorer, never Communicator. */
  root = json_load_file(json, 0, &jerr);
  ck_assert_msg(root != NULL, "%s: %s", json, jerr.text);
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(root, "topology"), "client")),
                   "Internet Explorer (WinINet)");
  json_decref(root);
  page = proc_slurp(html, &len);
  ck_assert_ptr_nonnull(strstr(page, "<text class=\"name\" x=\"80\" "
                                     "y=\"21\">Internet Explorer</text>"
                                     "<text class=\"sub\" x=\"80\" "
                                     "y=\"36\">Internet Explorer (WinINet)"
                                     "</text>"));
  ck_assert_ptr_nonnull(strstr(page, "Internet Explorer sent GET"));
  ck_assert_ptr_nonnull(strstr(page, "\xe2\x9a\xa0 an HTTP 500 page in the "
                                     "browser</text><title>Internet Explorer "
                                     "shows an HTTP 500 page in the browser"));
  ck_assert_ptr_null(strstr(page, "Communicator sent"));
  ck_assert_ptr_null(strstr(page, "Office Communicator 2007"));
  free(page);
  doc = parse_page(html);
  ck_assert_int_eq(
      xpath_count(doc, "//table[" HAS_CLASS(
                           "timeline") "]//th["
                                       "text()='GET 0' or text()='GET 1']"),
      2);
  ck_assert_int_eq(
      xpath_count(doc, "//table[" HAS_CLASS("timeline") "]//th["
                                                        "text()='POST 2']"),
      1);
  ck_assert_int_eq(xpath_count(doc, "//table[" HAS_CLASS(
                                        "timeline") "]//th["
                                                    "text()='autodiscover']"),
                   0);
  xmlFreeDoc(doc);
  proc_rmdir(tmpdir);
}
END_TEST

/* True when text holds, at its start, 32 lowercase hex digits: a channel
 * binding (the MD5 of gss_channel_bindings_struct) as kbsim writes it. */
static bool hex32_at(const char *text)
{
  size_t i;

  for(i = 0; i < 32; i++)
    if(!strchr("0123456789abcdef", text[i]))
      return false;
  return true;
}

/* TLS on the report's diagram: under the lane headers, what each hop is
 * (bridged with ISA's own certificate: HTTPS both, two certificates), on
 * Exchange's lane its Extended Protection, and for each refused login
 * why, in words on the diagram: the binding the client computed against
 * the one Exchange expected. A plain HTTP run says nothing of it. */
START_TEST(report_of_tls_hops_and_epa)
{
  static const char refused[] = "remark refused\" x=\"88\" y=\"";
  static const char binding[] =
      "\xe2\x9c\x97 Exchange: Extended Protection (require): the "
      "client&#39;s channel binding ";
  char html[512];
  const char *own[] = {"run", SCENARIOS_DIR "/epa-bridge-own-require.ini",
                       "--html", html, NULL};
  const char *offload[] = {"run", SCENARIOS_DIR "/tls-offload-bug.ini",
                           "--html", html, NULL};
  const char *plain[] = {"run",    "--policy", "per-connection",
                         "--html", html,       NULL};
  struct proc_out p;
  const char *at;
  char *page;
  size_t len;
  int refusals = 0;

  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/tls.html", tmpdir);
  proc_kbsim_exits(&p, own, 0);
  proc_free(&p);
  page = proc_slurp(html, &len);
  ck_assert_ptr_nonnull(strstr(page, "<text class=\"hopkind\" data-hop=\"1\" "
                                     "x=\"255\" y=\"68\">HTTPS (ISA&#39;s own "
                                     "certificate)</text>"));
  ck_assert_ptr_nonnull(strstr(page, "data-hop=\"2\" x=\"605\" y=\"68\">HTTPS "
                                     "(Exchange&#39;s certificate): TLS "
                                     "bridged</text>"));
  ck_assert_ptr_nonnull(strstr(page, ">EPA: require</text>"));
  for(at = strstr(page, refused); at; at = strstr(at + 1, refused)) {
    const char *said = strstr(at, binding);
    ck_assert_ptr_nonnull(said);
    said += strlen(binding);
    ck_assert_msg(hex32_at(said), "not a binding: %.40s", said);
    said += 32;
    ck_assert_msg(!strncmp(said, " (the certificate it saw) is not ", 33),
                  "%.60s", said);
    ck_assert_msg(hex32_at(said + 33), "not a binding: %.40s", said + 33);
    refusals++;
  }
  /* One login, refused once: autodiscover's type 3. */
  ck_assert_int_eq(refusals, 1);
  /* ... and said in the legs' table and the arrow's tooltip. */
  ck_assert_int_eq(proc_count(page, "Exchange: Extended Protection (require)"),
                   3);
  free(page);

  proc_kbsim_exits(&p, offload, 0);
  proc_free(&p);
  page = proc_slurp(html, &len);
  ck_assert_ptr_nonnull(strstr(page, ">HTTP: TLS offloaded, it ends at "
                                     "ISA</text>"));
  ck_assert_ptr_null(strstr(page, "Extended Protection"));
  free(page);

  proc_kbsim_exits(&p, plain, 0);
  proc_free(&p);
  page = proc_slurp(html, &len);
  ck_assert_ptr_null(strstr(page, "class=\"hopkind\""));
  ck_assert_ptr_null(strstr(page, "remark refused"));
  free(page);
  proc_rmdir(tmpdir);
}
END_TEST

/* Kerberos on the report: the internal users' legs say Negotiate with a
 * Kerberos ticket, accepted in one leg with the body, beside the external
 * users' NTLM legs that the bug reaches. Skipped without MIT's KDC (main
 * says so). */
START_TEST(report_of_kerberos_inside)
{
  char html[512];
  const char *args[] = {"run", SCENARIOS_DIR "/kerberos-inside.ini", "--html",
                        html, NULL};
  struct proc_out p;
  char *page;
  size_t len;

  if(!proc_scenario_runs(SCENARIOS_DIR "/kerberos-inside.ini"))
    return;
  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/krb.html", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  page = proc_slurp(html, &len);
  ck_assert_ptr_nonnull(strstr(page, ">POST /EWS/Exchange.asmx \xc2\xb7 "
                                     "Negotiate (Kerberos) \xc2\xb7 445 B"
                                     "</text>"));
  ck_assert_ptr_nonnull(strstr(page, ">Kerberos ticket accepted in one leg: "
                                     "forwarded with its 445-byte body"
                                     "</text>"));
  ck_assert_ptr_nonnull(strstr(page, "data-req-auth=\"SPNEGO\""));
  /* The NTLM users outside still meet the bug on the same listener. */
  ck_assert_ptr_nonnull(strstr(page, ">no challenge: forwarded WITHOUT the "
                                     "body</text>"));
  free(page);
  proc_rmdir(tmpdir);
}
END_TEST

START_TEST(report_of_bug_and_fix_side_by_side)
{
  char html[512], json[512], each[512];
  const char *args[] = {"run",
                        SCENARIOS_DIR "/bug.ini",
                        SCENARIOS_DIR "/fix.ini",
                        "--html",
                        html,
                        "--json",
                        json,
                        NULL};
  struct proc_out p;
  struct json_counts bug, fix;
  char *page;
  size_t len;
  htmlDocPtr doc;
  xmlDocPtr svg[4];

  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/report.html", tmpdir);
  snprintf(json, sizeof(json), "%s/run.json", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  snprintf(each, sizeof(each), "%s/run-bug.json", tmpdir);
  json_count(each, &bug);
  snprintf(each, sizeof(each), "%s/run-fix.json", tmpdir);
  json_count(each, &fix);
  ck_assert_int_eq(fix.exchanges, 4 * (7 + 3));
  ck_assert_int_eq(fix.empty_posts + fix.hop1_500 + fix.hop2_500, 0);

  page = proc_slurp(html, &len);
  doc = parse_page(html);
  ck_assert_int_eq(xpath_count(doc, "//section[" HAS_CLASS("run") "]"), 2);
  ck_assert_int_eq(xpath_count(doc, "//section[@id='run-1']/h2[starts-with("
                                    "normalize-space(.), 'bug')]"),
                   1);
  ck_assert_int_eq(xpath_count(doc, "//section[@id='run-2']/h2[starts-with("
                                    "normalize-space(.), 'fix')]"),
                   1);
  ck_assert_int_eq(
      xpath_count(doc,
                  "//span[" HAS_CLASS("verdict") " and " HAS_CLASS("pass") "]"),
      2);
  ck_assert_int_eq(
      xpath_count(doc, "//section[@id='run-2']//span[" HAS_CLASS("badge") "]"),
      0);
  assert_self_contained(page, doc);
  xmlFreeDoc(doc);

  ck_assert_int_eq(parse_svgs(page, svg, 4), 2);
  assert_diagram(svg[0], &bug);
  assert_diagram(svg[1], &fix);
  ck_assert_int_eq(xpath_count(svg[1], EL("g") "[" HAS_CLASS("notify") "]"), 0);
  xmlFreeDoc(svg[0]);
  xmlFreeDoc(svg[1]);
  free(page);
  proc_rmdir(tmpdir);
}
END_TEST

START_TEST(report_caps_big_runs)
{
  char html[512];
  const char *args[] = {
      "run",     "--policy", "per-connection", "--clients", "12",
      "--posts", "1",        "--html",         html,        NULL};
  struct proc_out p;
  char *page;
  size_t len;
  xmlDocPtr svg[2];

  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/big.html", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  page = proc_slurp(html, &len);
  ck_assert_ptr_nonnull(strstr(page, "The diagram shows 32 of 48 legs: those "
                                     "of the first 8 of 12 clients."));
  ck_assert_ptr_nonnull(strstr(page, "The first 8 of 12 users are shown."));
  ck_assert_int_eq(parse_svgs(page, svg, 2), 1);
  /* The 8 clients drawn went the same way: one band says so, and one
   * client's 4 legs stand for all of them. */
  ck_assert_int_eq(xpath_count(svg[0], EL("g") "[" HAS_CLASS("band") "]"), 1);
  ck_assert_int_eq(xpath_count(svg[0], EL("g") "[@data-clients='8']"), 1);
  ck_assert_int_eq(xpath_count(svg[0], EL("g") "[@data-hop='1']"), 4);
  xmlFreeDoc(svg[0]);
  free(page);
  proc_rmdir(tmpdir);
}
END_TEST

/* ---- in a browser ----------------------------------------------------- */

/* Runs headless Chromium on url the way the probe runs it (no network
 * beyond the page, a new empty profile): it prints the DOM after the
 * page's script ran and writes a screenshot to shot. */
static void chromium_run(const char *bin, const char *profile, const char *url,
                         const char *shot, const char *size, struct proc_out *p)
{
  char user_data[600], screenshot[600], window[64];
  char *argv[] = {(char *)bin,
                  "--headless",
                  "--no-sandbox",
                  "--disable-gpu",
                  "--disable-quic",
                  "--no-first-run",
                  "--disable-background-networking",
                  "--disable-component-update",
                  "--disable-sync",
                  "--hide-scrollbars",
                  window,
                  user_data,
                  "--dump-dom",
                  screenshot,
                  (char *)url,
                  NULL};

  ck_assert_int_eq(mkdir(profile, 0700), 0);
  snprintf(user_data, sizeof(user_data), "--user-data-dir=%s", profile);
  snprintf(window, sizeof(window), "--window-size=%s", size);
  snprintf(screenshot, sizeof(screenshot), "--screenshot=%s", shot);
  proc_run(argv, p);
  ck_assert_msg(p->status == 0, "chromium exited %d: %.2000s", p->status,
                p->err.data);
}

/* Renders the page html (a file) in headless Chromium at 1024x768, a
 * projector's size, with a new profile beside it: the DOM after the
 * page's script ran, parsed, and the screenshot written to html's name
 * with .png for .html (into shot). */
static htmlDocPtr chromium_render(const char *bin, const char *html, char *shot,
                                  size_t shotlen)
{
  char url[600], profile[520];
  struct proc_out dom;
  htmlDocPtr doc;
  size_t n = strlen(html);

  ck_assert(n > 5 && n < 500 && !strcmp(html + n - 5, ".html"));
  snprintf(url, sizeof(url), "file://%s", html);
  snprintf(shot, shotlen, "%.*s.png", (int)(n - 5), html);
  snprintf(profile, sizeof(profile), "%.*s.profile", (int)(n - 5), html);
  chromium_run(bin, profile, url, shot, "1024,768", &dom);
  doc = htmlReadMemory(dom.out.data, (int)dom.out.len, "dom.html", "utf-8",
                       HTML_PARSE_NONET | HTML_PARSE_NOERROR |
                           HTML_PARSE_NOWARNING);
  ck_assert_ptr_nonnull(doc);
  proc_free(&dom);
  return doc;
}

/* What a PNG shows, roughly: its size, how many colours, how many pixels
 * are the report's red. */
struct png_look {
  unsigned width, height;
  unsigned colours; /* distinct, after dropping the low 3 bits */
  unsigned red;
};

static void png_look(const char *path, struct png_look *look)
{
  png_image image;
  unsigned char *pixels;
  static unsigned char seen[1 << 15];
  size_t i, n;

  memset(&image, 0, sizeof(image));
  memset(look, 0, sizeof(*look));
  memset(seen, 0, sizeof(seen));
  image.version = PNG_IMAGE_VERSION;
  ck_assert_msg(png_image_begin_read_from_file(&image, path), "%s: %s", path,
                image.message);
  image.format = PNG_FORMAT_RGB;
  pixels = malloc(PNG_IMAGE_SIZE(image));
  ck_assert_ptr_nonnull(pixels);
  ck_assert_msg(png_image_finish_read(&image, NULL, pixels, 0, NULL), "%s: %s",
                path, image.message);
  look->width = image.width;
  look->height = image.height;
  n = (size_t)image.width * image.height;
  for(i = 0; i < n; i++) {
    unsigned r = pixels[3 * i], g = pixels[3 * i + 1], b = pixels[3 * i + 2];
    unsigned key = (r >> 3) << 10 | (g >> 3) << 5 | (b >> 3);
    if(!seen[key]) {
      seen[key] = 1;
      look->colours++;
    }
    /* #d32f2f and its antialiased neighbours. */
    if(r > 180 && g < 90 && b < 90)
      look->red++;
  }
  free(pixels);
  png_image_free(&image);
}

START_TEST(report_renders_in_chromium)
{
  char bin[512], html[512], shot[600];
  const char *args[] = {
      "run", SCENARIOS_DIR "/bug.ini", SCENARIOS_DIR "/fix.ini", "--html", html,
      NULL};
  struct proc_out p;
  struct png_look look;
  htmlDocPtr doc;
  struct stat st;

  if(!proc_which("chromium", bin, sizeof(bin)))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/report.html", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  /* A 1024x768 projector: the bug and the fix still side by side. */
  doc = chromium_render(bin, html, shot, sizeof(shot));

  /* The inline script ran after layout and measured both diagrams. */
  ck_assert_int_eq(xpath_count(doc, "/html[@data-rendered='2']"), 1);
  ck_assert_int_eq(xpath_count(doc, "//svg[@data-rendered-width > 300 and "
                                    "@data-rendered-height > 300]"),
                   2);
  /* Both sections at the same height, the fix well right of the bug; the
   * Big box, the overview table, the four identical clients of each run
   * drawn once, and the why of each failed POST drawn as text. */
  ck_assert_int_eq(xpath_count(doc, "//section[@id='run-1' and "
                                    "@data-rendered-top = //section[@id="
                                    "'run-2']/@data-rendered-top and "
                                    "@data-rendered-left + 400 < //section["
                                    "@id='run-2']/@data-rendered-left]"),
                   1);
  ck_assert_int_eq(xpath_count(doc, "//input[@id='big' and @type='checkbox']"),
                   1);
  ck_assert_int_eq(xpath_count(doc, "//table[@class='overview']/tbody/tr"), 2);
  ck_assert_int_eq(xpath_count(doc, "//*[local-name()='g' and "
                                    "@data-clients='4']"),
                   2);
  ck_assert_int_eq(xpath_count(doc, "//section[@id='run-1']//*[local-name()="
                                    "'text' and contains(@class,'failwhy')]"),
                   2);
  xmlFreeDoc(doc);

  ck_assert_int_eq(stat(shot, &st), 0);
  ck_assert_int_gt(st.st_size, 20000);
  png_look(shot, &look);
  ck_assert_uint_eq(look.width, 1024);
  ck_assert_uint_eq(look.height, 768);
  ck_assert_uint_gt(look.colours, 50);
  /* The failing legs of the bug are drawn in red, and they show. */
  ck_assert_uint_gt(look.red, 500);
  proc_rmdir(tmpdir);
}
END_TEST

/* A sweep's 3 x 3 grid (idle timeout x how many of the two members are
 * patched) as Chromium renders it: three lines with their bands, nine
 * points, nine table rows. The intermittency's shape: at every timeout
 * the rate falls as members are patched (none patched above one above
 * both), the unpatched array's rate rises with the timeout (a longer-kept
 * connection is re-authenticated on more often), and the red line shows
 * in the screenshot. */
START_TEST(sweep_plot_renders_in_chromium)
{
  char bin[512], html[512], shot[600];
  const char *args[] = {"sweep",   SCENARIOS_DIR "/intermittent-array.ini",
                        "--seeds", "1..4",
                        "--vary",  "listener.idle_timeout=10s,30s,60s",
                        "--vary",  "array.patched=0,1,2",
                        "--html",  html,
                        NULL};
  struct proc_out p;
  struct png_look look;
  htmlDocPtr doc;
  int k;

  if(!proc_which("chromium", bin, sizeof(bin)))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/sweep.html", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  doc = chromium_render(bin, html, shot, sizeof(shot));
  ck_assert_int_eq(xpath_count(doc, "//*[local-name()='polyline' and "
                                    "@class='rate']"),
                   3);
  ck_assert_int_eq(xpath_count(doc, "//*[local-name()='polygon' and "
                                    "@class='band']"),
                   3);
  ck_assert_int_eq(xpath_count(doc, "//*[local-name()='circle']"), 9);
  ck_assert_int_eq(xpath_count(doc, "//table[@id='points']//tr[td]"), 9);
  /* SVG y grows downwards. Circles 1-3 are no member patched at 10, 30
   * and 60 s, 4-6 one, 7-9 both: each lies above the next line's at the
   * same timeout. */
  for(k = 1; k <= 6; k++) {
    char expr[160];
    snprintf(expr, sizeof(expr),
             "(//*[local-name()='circle'])[%d][number(@cy) < "
             "number((//*[local-name()='circle'])[%d]/@cy)]",
             k, k + 3);
    ck_assert_msg(xpath_count(doc, expr) == 1, "circle %d not above %d", k,
                  k + 3);
  }
  /* Unpatched, 60 s lies above 10 s. */
  ck_assert_int_eq(xpath_count(doc,
                               "(//*[local-name()='circle'])[3][number(@cy) < "
                               "number((//*[local-name()='circle'])[1]/@cy)]"),
                   1);
  xmlFreeDoc(doc);
  png_look(shot, &look);
  ck_assert_uint_gt(look.colours, 20);
  ck_assert_uint_gt(look.red, 300);
  proc_rmdir(tmpdir);
}
END_TEST

/* The "Big" box ticked (here in the file, as a click would): one run per
 * row at 1024x768, the fix below the bug. */
START_TEST(report_big_stacks_runs)
{
  char bin[512], html[512], shot[600];
  const char *args[] = {
      "run", SCENARIOS_DIR "/bug.ini", SCENARIOS_DIR "/fix.ini", "--html", html,
      NULL};
  struct proc_out p;
  char *page, *at;
  size_t len;
  FILE *f;
  htmlDocPtr doc;

  if(!proc_which("chromium", bin, sizeof(bin)))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/report.html", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  proc_free(&p);
  page = proc_slurp(html, &len);
  at = strstr(page, "id=\"big\">");
  ck_assert_ptr_nonnull(at);
  f = fopen(html, "w");
  ck_assert_ptr_nonnull(f);
  fwrite(page, 1, (size_t)(at - page), f);
  fputs("id=\"big\" checked>", f);
  fputs(at + strlen("id=\"big\">"), f);
  ck_assert_int_eq(fclose(f), 0);
  free(page);
  doc = chromium_render(bin, html, shot, sizeof(shot));
  /* Both sections start at the same left edge, the second one lower. */
  ck_assert_int_eq(xpath_count(doc, "//section[@id='run-1' and "
                                    "@data-rendered-left = //section[@id="
                                    "'run-2']/@data-rendered-left and "
                                    "@data-rendered-top < //section[@id="
                                    "'run-2']/@data-rendered-top]"),
                   1);
  xmlFreeDoc(doc);
  proc_rmdir(tmpdir);
}
END_TEST

/* ---- the demo --------------------------------------------------------- */

/* Runs kbsim with args, stdin fed from input (then its end), and the
 * environment variable name set to value (NULL: unset) for the child. */
static void kbsim_input(const char *const *args, const char *input,
                        const char *name, const char *value, struct proc_out *p)
{
  char *argv[32];
  int in[2], saved, outfd, errfd, n = 0;
  char *old = getenv(name) ? strdup(getenv(name)) : NULL;
  pid_t pid;

  argv[n++] = KBSIM_BIN;
  while(*args && n < 31)
    argv[n++] = (char *)*args++;
  argv[n] = NULL;
  ck_assert_int_eq(pipe(in), 0);
  ck_assert_int_ne(fcntl(in[1], F_SETFD, FD_CLOEXEC), -1);
  ck_assert_int_lt(strlen(input), 4096); /* fits the pipe: no deadlock */
  ck_assert_int_eq(write(in[1], input, strlen(input)), (ssize_t)strlen(input));
  ck_assert_int_eq(close(in[1]), 0);
  saved = dup(0);
  ck_assert_int_ge(saved, 0);
  ck_assert_int_eq(dup2(in[0], 0), 0);
  close(in[0]);
  if(value)
    setenv(name, value, 1);
  else
    unsetenv(name);
  pid = proc_spawn(argv, &outfd, &errfd);
  if(old)
    setenv(name, old, 1);
  else
    unsetenv(name);
  free(old);
  dup2(saved, 0);
  close(saved);
  proc_collect(pid, outfd, errfd, p);
}

/* --kind tells another client's session: Internet Explorer's pages, then
 * the same bug on its POSTs; Java's, clean both times and said so. */
START_TEST(demo_of_other_kinds)
{
  struct proc_out p;
  const char *part2;

  PROC_KBSIM(&p, "demo", "--kind", "ie");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "One Internet Explorer session: "
                                           "FABRIKAM\\alice, 2 GETs of "
                                           "/EWS/Services.wsdl + 2 EWS POSTs"));
  ck_assert_int_eq(proc_count(p.out.data, "Step 1: GET /EWS/Services.wsdl"), 2);
  ck_assert_int_eq(
      proc_count(p.out.data, "Step 3: EWS POST 1, GetUserOofSettings"), 2);
  ck_assert_int_eq(proc_count(p.out.data, "Internet Explorer sent:  POST "
                                          "/EWS/Exchange.asmx, Authorization: "
                                          "NTLM type 1, 0-byte body"),
                   4);
  ck_assert_int_eq(proc_count(p.out.data, "The GET: ok"), 4);
  /* Its user sees what a browser shows, not Communicator's window. */
  ck_assert_int_eq(proc_count(p.out.data, "The user sees: an HTTP 500 page "
                                          "in the browser"),
                   2);
  ck_assert_ptr_null(strstr(p.out.data, "Notifications"));
  ck_assert_int_eq(proc_count(p.out.data, "Integration Error"), 1); /* title */
  ck_assert_ptr_null(strstr(p.out.data, "Communicator"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: as KB 942638 describes - "
                                           "the bug as shipped, fixed by the "
                                           "KB."));
  proc_free(&p);

  PROC_KBSIM(&p, "demo", "--kind", "java");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  part2 = strstr(p.out.data, "== Part 2 of 2");
  ck_assert_ptr_nonnull(part2);
  ck_assert_int_eq(proc_count(p.out.data, "Java client sent:"),
                   2 * proc_count(part2, "Java client sent:"));
  ck_assert_ptr_null(strstr(p.out.data, "under Notifications"));
  ck_assert_ptr_null(strstr(p.out.data, "0-byte body -> 500"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Java client never sends a POST "
                                           "without its body on an "
                                           "authenticated connection"));
  proc_free(&p);

  /* Outlook Anywhere: its channels, clean both times, counted in calls. */
  PROC_KBSIM(&p, "demo", "--kind", "outlook-anywhere");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "One Outlook Anywhere session: "
                                           "FABRIKAM\\alice, the RPC "
                                           "channels' setup + 2 RPC calls"));
  ck_assert_int_eq(proc_count(p.out.data, "Step 1: the RPC channels"), 2);
  ck_assert_int_eq(proc_count(p.out.data, "The RPC channels: ok"), 2);
  ck_assert_ptr_null(strstr(p.out.data, "EWS POST"));
  proc_free(&p);

  PROC_KBSIM(&p, "demo", "--kind", "netscape");
  ck_assert_int_eq(p.status, 2);
  ck_assert_str_eq(p.out.data, "");
  ck_assert_ptr_nonnull(strstr(p.err.data, "kbsim demo: --kind: 'netscape' "
                                           "is no client kind; kinds are "
                                           "communicator, outlook, one-shot, "
                                           "ie, dotnet, java or "
                                           "outlook-anywhere\n"));
  proc_free(&p);
}
END_TEST

START_TEST(demo_is_plain_when_piped)
{
  const char *none[] = {NULL};
  struct proc_out p;

  kbsim_input(none, "", "NO_COLOR", NULL, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_null(strchr(p.out.data, '\033'));
  ck_assert_ptr_nonnull(strstr(p.out.data,
                               "== Part 1 of 2: ISA 2006 as "
                               "shipped (policy per-connection) =="));
  ck_assert_ptr_nonnull(strstr(p.out.data, "== Part 2 of 2: ISA 2006 with KB "
                                           "942638 (policy per-request) =="));
  ck_assert_int_eq(proc_count(p.out.data, "Step 3: EWS POST 2, "
                                          "GetUserAvailability"),
                   2);
  /* Both empty POSTs, as Exchange received them, and ISA's reason. */
  ck_assert_int_eq(proc_count(p.out.data, "Exchange received:  POST "
                                          "/EWS/Exchange.asmx, Authorization: "
                                          "NTLM type 1, 0-byte body -> 500"),
                   2);
  ck_assert_int_eq(proc_count(p.out.data,
                              "policy per-connection keeps that "
                              "context: NTLM type 1 not challenged"),
                   2);
  ck_assert_int_eq(proc_count(p.out.data, "\"Outlook Integration Error\" under "
                                          "Notifications (new)"),
                   1);
  ck_assert_int_eq(proc_count(p.out.data, "[Enter: next step]"), 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: as KB 942638 describes"));
  proc_free(&p);
}
END_TEST

START_TEST(demo_colour_flags)
{
  const char *always[] = {"demo", "--color=always", NULL};
  const char *never[] = {"demo", "--color=never", NULL};
  const char *bad[] = {"demo", "--color=sometimes", NULL};
  struct proc_out p;

  /* An explicit flag beats NO_COLOR, as no-color.org asks. */
  kbsim_input(always, "", "NO_COLOR", "1", &p);
  ck_assert_int_eq(p.status, 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, "\033[31m"));
  /* The decision that is the bug (KB_NOTE_REAUTH_SKIPPED) is red. */
  ck_assert_ptr_nonnull(
      strstr(p.out.data, "\033[31mclient 1 conn 1 is already authenticated as "
                         "FABRIKAM\\alice; policy per-connection keeps"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "\033[32mVerdict: as KB 942638 "
                                           "describes"));
  proc_free(&p);
  kbsim_input(never, "", "NO_COLOR", NULL, &p);
  ck_assert_int_eq(p.status, 0);
  ck_assert_ptr_null(strchr(p.out.data, '\033'));
  proc_free(&p);
  kbsim_input(bad, "", "NO_COLOR", NULL, &p);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data,
                               "kbsim demo: --color: 'sometimes' is "
                               "not always, never or auto\n"));
  proc_free(&p);
}
END_TEST

/* Runs the demo on a terminal (a pseudo-terminal) with NO_COLOR set to
 * no_color (NULL: unset); returns whether the output had colour. */
static bool demo_on_terminal_coloured(const char *no_color)
{
  struct kb_buf out;
  char buf[4096];
  int master, ws = 0;
  pid_t pid;
  bool coloured;

  pid = forkpty(&master, NULL, NULL, NULL);
  ck_assert_int_ge(pid, 0);
  if(pid == 0) {
    char *argv[] = {KBSIM_BIN, "demo", NULL};
    setenv("TERM", "xterm", 1);
    if(no_color)
      setenv("NO_COLOR", no_color, 1);
    else
      unsetenv("NO_COLOR");
    execv(argv[0], argv);
    _exit(127);
  }
  kb_buf_init(&out, (size_t)16 << 20);
  kb_buf_add(&out, "", 0);
  for(;;) {
    ssize_t n = read(master, buf, sizeof(buf));
    if(n > 0)
      kb_buf_add(&out, buf, (size_t)n);
    else if(n < 0 && errno == EINTR)
      continue;
    else
      break; /* EIO: the child closed the terminal */
  }
  close(master);
  ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
  ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "demo on a terminal: %s",
                out.data);
  ck_assert_ptr_nonnull(strstr(out.data, "Verdict: as KB 942638 describes"));
  coloured = strstr(out.data, "\033[") != NULL;
  kb_buf_free(&out);
  return coloured;
}

START_TEST(demo_colour_on_a_terminal_unless_no_color)
{
  ck_assert(demo_on_terminal_coloured(NULL));
  ck_assert(!demo_on_terminal_coloured("1"));
  /* Set but empty does not count (no-color.org). */
  ck_assert(demo_on_terminal_coloured(""));
}
END_TEST

START_TEST(demo_step_waits_for_enter)
{
  const char *step[] = {"demo", "--step", NULL};
  struct proc_out p;

  /* Enough Enters: the introduction, three POSTs and the end of each part. */
  kbsim_input(step, "\n\n\n\n\n\n\n\n\n\n\n\n", "NO_COLOR", NULL, &p);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_int_eq(proc_count(p.out.data, "[Enter: next step]"), 9);
  proc_free(&p);
  /* Three Enters, then the end of input: the demo stops waiting and
   * finishes. */
  kbsim_input(step, "\n\n\n", "NO_COLOR", NULL, &p);
  ck_assert_int_eq(p.status, 0);
  ck_assert_int_eq(proc_count(p.out.data, "[Enter: next step]"), 4);
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: as KB 942638 describes"));
  proc_free(&p);
  kbsim_input(step, "", "NO_COLOR", NULL, &p);
  ck_assert_int_eq(p.status, 0);
  ck_assert_int_eq(proc_count(p.out.data, "[Enter: next step]"), 1);
  proc_free(&p);
}
END_TEST

/* Runs the demo with args, unwrapped (COLUMNS wide enough for any line),
 * into p. */
static void demo_unwrapped(struct proc_out *p, const char *const *args)
{
  char *old = getenv("COLUMNS") ? strdup(getenv("COLUMNS")) : NULL;

  setenv("COLUMNS", "2000", 1);
  proc_kbsim(p, args);
  if(old)
    setenv("COLUMNS", old, 1);
  else
    unsetenv("COLUMNS");
  free(old);
}

/* --tls and --extended-protection: the hops in the heading, and each
 * refused login's why under what Exchange received, in both runs: the
 * binding the client computed against Exchange's own. A bridge with
 * Exchange's certificate lets the logins in. */
START_TEST(demo_of_tls_and_epa)
{
  static const char decided[] =
      "Exchange decided:   Extended Protection (require): the client's "
      "channel binding ";
  const char *own[] = {"demo",    "--tls",
                       "bridge",  "--bridge-certificate",
                       "own",     "--extended-protection",
                       "require", NULL};
  const char *same[] = {"demo",    "--tls", "bridge", "--extended-protection",
                        "require", NULL};
  struct proc_out p;
  const char *at;
  int n = 0;

  demo_unwrapped(&p, own);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "The hops: Communicator to ISA01: "
                                           "HTTPS (ISA's own certificate); "
                                           "ISA01 to Exchange: HTTPS "
                                           "(Exchange's certificate): TLS "
                                           "bridged. Exchange's Extended "
                                           "Protection: require."));
  for(at = strstr(p.out.data, decided); at; at = strstr(at + 1, decided)) {
    at += strlen(decided);
    ck_assert_msg(hex32_at(at), "%.40s", at);
    ck_assert_msg(!strncmp(at + 32, " (the certificate it saw) is not ", 33),
                  "%.60s", at + 32);
    ck_assert_msg(hex32_at(at + 65), "%.40s", at + 65);
    n++;
  }
  ck_assert_int_eq(n, 2); /* autodiscover's login, once per run */
  ck_assert_ptr_nonnull(strstr(p.out.data, "Refused: channel binding     1   "
                                           "                         1"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: as the real world's "
                                           "table says - Exchange's Extended "
                                           "Protection refuses the login in "
                                           "both runs"));
  proc_free(&p);

  demo_unwrapped(&p, same);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "HTTPS (Exchange's certificate, "
                                           "presented by ISA)"));
  ck_assert_ptr_null(strstr(p.out.data, "Exchange decided:"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "lets every login in, both "
                                           "times."));
  proc_free(&p);

  /* --extended-protection's default: none, nothing refused. */
  PROC_KBSIM(&p, "demo", "--tls", "offload");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "Exchange's Extended Protection: "
                                           "none."));
  ck_assert_ptr_null(strstr(p.out.data, "Exchange decided:"));
  proc_free(&p);

  PROC_KBSIM(&p, "demo", "--bridge-certificate", "own");
  ck_assert_ptr_null(proc_usage_error(&p));
  ck_assert_ptr_nonnull(strstr(p.err.data, "give --tls bridge"));
  proc_free(&p);
  PROC_KBSIM(&p, "demo", "--extended-protection", "require");
  ck_assert_ptr_null(proc_usage_error(&p));
  ck_assert_ptr_nonnull(strstr(p.err.data, "give --tls offload or --tls "
                                           "bridge"));
  proc_free(&p);
}
END_TEST

/* --inside: alice signs in with Kerberos from the demo's own KDC, each
 * request in one leg with its body, clean as shipped and with the KB.
 * Skipped without MIT's KDC (main says so). */
START_TEST(demo_inside_the_network)
{
  const char *args[] = {"demo", "--inside", NULL};
  struct proc_out p;

  /* Only the kinds whose client takes Kerberos credentials. */
  PROC_KBSIM(&p, "demo", "--inside", "--kind", "ie");
  ck_assert_ptr_null(proc_usage_error(&p));
  ck_assert_ptr_nonnull(strstr(p.err.data, "give --kind communicator or "
                                           "one-shot"));
  proc_free(&p);
  if(!proc_have(PROC_KRB5KDC))
    return;
  demo_unwrapped(&p, args);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "FABRIKAM\\alice is inside the "
                                           "network, signed in to the "
                                           "domain"));
  /* Every request of both runs: the ticket and the body, once. */
  ck_assert_int_eq(proc_count(p.out.data, "Communicator sent:  POST "
                                          "/EWS/Exchange.asmx, Authorization: "
                                          "Negotiate (Kerberos ticket), "),
                   4);
  ck_assert_int_eq(proc_count(p.out.data, "Communicator sent:"), 6);
  ck_assert_int_eq(proc_count(p.out.data, "Authorization: NTLM type"), 0);
  ck_assert_ptr_null(strstr(p.out.data, " 0-byte body"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: as KB 942638 describes - "
                                           "inside the network "
                                           "FABRIKAM\\alice sends each request "
                                           "with her Kerberos ticket"));
  proc_free(&p);
}
END_TEST

START_TEST(demo_writes_the_page)
{
  char html[512];
  const char *args[] = {"demo", "--html", html, NULL};
  struct proc_out p;
  char *page;
  size_t len;
  htmlDocPtr doc;
  xmlDocPtr svg[4];
  struct json_counts bug = {5 + 3, 2, 2, 2}, fix = {7 + 3, 0, 0, 0};

  proc_tmpdir("kbsim-report", tmpdir, sizeof(tmpdir));
  snprintf(html, sizeof(html), "%s/demo.html", tmpdir);
  proc_kbsim_exits(&p, args, 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, "Report: "));
  proc_free(&p);
  page = proc_slurp(html, &len);
  doc = parse_page(html);
  ck_assert_int_eq(xpath_count(doc, "//section[" HAS_CLASS("run") "]"), 2);
  ck_assert_int_eq(xpath_count(doc, "//section[@id='run-1']/h2[starts-with("
                                    "normalize-space(.), 'ISA 2006 as "
                                    "shipped')]"),
                   1);
  ck_assert_int_eq(
      xpath_count(doc,
                  "//span[" HAS_CLASS("verdict") " and " HAS_CLASS("pass") "]"),
      2);
  assert_self_contained(page, doc);
  xmlFreeDoc(doc);
  ck_assert_int_eq(parse_svgs(page, svg, 4), 2);
  assert_diagram(svg[0], &bug);
  assert_diagram(svg[1], &fix);
  xmlFreeDoc(svg[0]);
  xmlFreeDoc(svg[1]);
  free(page);
  proc_rmdir(tmpdir);
}
END_TEST

int main(void)
{
  proc_whole_lines();
  Suite *s = suite_create("report");
  TCase *page = tcase_create("page");
  TCase *browser = tcase_create("browser");
  TCase *demo = tcase_create("demo");
  TCase *kdc = tcase_create("kdc");
  int failed;

  tcase_set_timeout(page, 30);
  tcase_add_test(page, escape_exact_bytes);
  tcase_add_test(page, hostile_trace_stays_text);
  tcase_add_test(page, story_of_one_bug_session);
  tcase_add_test(page, report_of_the_bug);
  tcase_add_test(page, report_of_bug_and_fix_side_by_side);
  tcase_add_test(page, report_of_ie_names_its_gets);
  tcase_add_test(page, report_of_tls_hops_and_epa);
  tcase_add_test(page, report_caps_big_runs);
  suite_add_tcase(s, page);
  tcase_set_timeout(browser, 60);
  tcase_set_tags(browser, KBT_SLOW);
  tcase_add_test(browser, report_renders_in_chromium);
  tcase_add_test(browser, report_big_stacks_runs);
  tcase_add_test(browser, sweep_plot_renders_in_chromium);
  suite_add_tcase(s, browser);
  tcase_set_timeout(demo, 30);
  tcase_add_test(demo, demo_is_plain_when_piped);
  tcase_add_test(demo, demo_of_other_kinds);
  tcase_add_test(demo, demo_colour_flags);
  tcase_add_test(demo, demo_colour_on_a_terminal_unless_no_color);
  tcase_add_test(demo, demo_step_waits_for_enter);
  tcase_add_test(demo, demo_writes_the_page);
  tcase_add_test(demo, demo_of_tls_and_epa);
  suite_add_tcase(s, demo);
  /* Each starts MIT's KDC for its run (kdb5_util, krb5kdc, kadmin.local
   * and kinit for every user): some 0.2 s of CPU apiece. */
  tcase_set_timeout(kdc, 30);
  tcase_set_tags(kdc, KBT_SLOW);
  tcase_add_test(kdc, report_of_kerberos_inside);
  tcase_add_test(kdc, demo_inside_the_network);
  suite_add_tcase(s, kdc);
  failed = kbt_run(s);
  xmlCleanupParser();
  {
    char bin[512];
    bool skipped = !proc_which("chromium", bin, sizeof(bin));
    if(skipped)
      fprintf(stderr, "skip: report_renders_in_chromium: needs chromium on "
                      "PATH, which is missing (apt-get install chromium)\n");
    /* The Kerberos cases need MIT's KDC; without it they return early. */
    skipped |= proc_skip_unless(PROC_KRB5KDC,
                                "report_of_kerberos_inside, "
                                "demo_inside_the_network",
                                "apt-get install krb5-kdc krb5-admin-server "
                                "krb5-user");
    return proc_suite_exit(failed, skipped);
  }
}
