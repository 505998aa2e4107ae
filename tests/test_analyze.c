/*
 * test_analyze.c - `kbsim analyze` judged on captures: kbsim's own pcaps of
 * the catalogue (each finds exactly what its run counted: the bug
 * scenarios body-less-forward once per empty POST, the fixed ones
 * nothing), real traffic captured with tcpdump through Squid, nginx and
 * Apache (tests/analyze/capture-proxy), a HAR from headless Chromium
 * through `kbsim serve` (tests/analyze/har.js), HAR files written here,
 * and the inputs that cannot be read, each with its one line.
 *
 * The reports are read back by others' code: the JSON by jansson and
 * python3-jsonschema (docs/report.schema.json), the JUnit by junitparser.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/kb_defect.h"
#include "kbt.h"
#include "proc.h"

#define SCHEMA SOURCE_DIR "/docs/report.schema.json"
#define CAPTURE_PROXY TESTS_DIR "/analyze/capture-proxy"

static char dir[256];

static void setup(void)
{
  proc_tmpdir("kbsim-analyze", dir, sizeof(dir));
}

static void teardown(void)
{
  proc_rmdir(dir);
}

/* DIR/name, in a static buffer of its own per call slot. */
static const char *at(const char *name)
{
  static char paths[8][512];
  static unsigned next;
  char *p = paths[next++ % 8];

  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

/* `kbsim run SCENARIO --pcap DIR/NAME.pcap --json DIR/NAME.json`; returns
 * the run's count of POSTs that reached Exchange without a body. */
static long run_scenario(const char *name)
{
  char scenario[512], pcap[512], json[512];
  char *argv[] = {KBSIM_BIN, "run",    scenario, "--pcap",
                  pcap,      "--json", json,     NULL};
  struct proc_out p;
  json_error_t jerr;
  json_t *doc;
  long empty;

  snprintf(scenario, sizeof(scenario), SCENARIOS_DIR "/%s.ini", name);
  snprintf(pcap, sizeof(pcap), "%s/%s.pcap", dir, name);
  snprintf(json, sizeof(json), "%s/%s.json", dir, name);
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0 || p.status == 1, "kbsim run %s: %d %s", name,
                p.status, p.err.data);
  proc_free(&p);
  doc = json_load_file(json, 0, &jerr);
  ck_assert_msg(doc, "%s: %s", json, jerr.text);
  empty = (long)json_integer_value(
      json_object_get(json_object_get(doc, "summary"), "backend_empty_posts"));
  json_decref(doc);
  return empty;
}

/* Runs `kbsim analyze` with args (NULL-terminated, at most 12) and
 * --json DIR/out.json; returns the report (the caller decrefs) and the
 * process in *p (the caller frees). */
static json_t *analyze(struct proc_out *p, const char *const *args)
{
  char *argv[20];
  size_t n = 0, i;
  json_error_t jerr;
  json_t *doc;

  argv[n++] = KBSIM_BIN;
  argv[n++] = "analyze";
  for(i = 0; args[i] && n < 16; i++)
    argv[n++] = (char *)args[i];
  argv[n++] = "--json";
  argv[n++] = (char *)at("out.json");
  argv[n] = NULL;
  unlink(at("out.json"));
  proc_run(argv, p);
  if(p->status == 3)
    return NULL;
  doc = json_load_file(at("out.json"), 0, &jerr);
  ck_assert_msg(doc, "analyze wrote no JSON (%d): %s %s", p->status,
                p->out.data, p->err.data);
  return doc;
}

/* The count of defect name in report doc. */
static long count_of(json_t *doc, const char *name)
{
  return (long)json_integer_value(
      json_object_get(json_object_get(doc, "counts"), name));
}

/* Asserts the report's "defects" are exactly want (names, in the table's
 * order), each spelled as kb_defect.h spells it, and that each finding's
 * defect is one of them. */
static void assert_defects(json_t *doc, const char *const *want, size_t n,
                           const char *what)
{
  json_t *defects = json_object_get(doc, "defects"), *f;
  size_t i;

  ck_assert_msg(json_array_size(defects) == n, "%s: %zu defects found, not %zu",
                what, json_array_size(defects), n);
  for(i = 0; i < n; i++) {
    const char *got = json_string_value(json_array_get(defects, i));
    enum kb_defect d;
    ck_assert_msg(got && !strcmp(got, want[i]), "%s: defect %zu is %s, not %s",
                  what, i, got ? got : "(none)", want[i]);
    ck_assert_int_eq(kb_defect_parse(got, &d, NULL, 0), 0);
    ck_assert_str_eq(kb_defect_name(d), got);
  }
  json_array_foreach(json_object_get(doc, "findings"), i, f)
  {
    const char *name = json_string_value(json_object_get(f, "defect"));
    size_t k;
    for(k = 0; k < n && strcmp(name, want[k]); k++)
      ;
    ck_assert_msg(k < n, "%s: a finding of %s", what, name);
    ck_assert_msg(json_array_size(json_object_get(f, "places")) > 0,
                  "%s: a finding without places", what);
  }
}

/* Judges the file against the report schema with python3-jsonschema. */
static void assert_schema(const char *path)
{
  proc_assert_schema(SCHEMA, (const char *const[]){path, NULL});
}

/* Asserts p is kbsim analyze's refusal of its input: exit 3, nothing on
 * stdout, exactly one line on stderr, holding want. */
static void assert_unreadable(const struct proc_out *p, const char *want)
{
  ck_assert_msg(p->status == 3, "exit %d, not 3: %s", p->status, p->err.data);
  ck_assert_msg(p->out.len == 0, "stdout: %s", p->out.data);
  ck_assert_msg(p->err.len &&
                    strchr(p->err.data, '\n') == p->err.data + p->err.len - 1,
                "not one line: %s", p->err.data);
  ck_assert_msg(!strncmp(p->err.data, "kbsim analyze: ", 15), "%s",
                p->err.data);
  ck_assert_msg(strstr(p->err.data, want), "'%s' not in: %s", want,
                p->err.data);
}

/* Writes text to DIR/name; returns the path. */
static const char *write_file(const char *name, const char *text, size_t len)
{
  const char *path = at(name);
  FILE *f = fopen(path, "wb");

  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, len, f), len);
  ck_assert_int_eq(fclose(f), 0);
  return path;
}

/* ---- kbsim's own captures ---------------------------------------------- */

/* The bug: one body-less-forward per POST that reached Exchange empty,
 * each naming its frames and both connections; the fix: nothing. */
START_TEST(bug_and_fix)
{
  static const char *const found[] = {"body-less-forward"};
  const char *args[] = {NULL, NULL};
  struct proc_out p;
  json_t *doc, *f;
  long empty = run_scenario("bug");

  ck_assert_int_eq(empty, 8);
  args[0] = at("bug.pcap");
  doc = analyze(&p, args);
  ck_assert_msg(p.status == 1, "exit %d: %s", p.status, p.err.data);
  assert_defects(doc, found, 1, "bug");
  ck_assert_int_eq(count_of(doc, "body-less-forward"), empty);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "hops")), "both");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "listener")),
                   "127.0.0.2:80");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "server")),
                   "127.0.0.3:80");
  f = json_array_get(json_object_get(doc, "findings"), 0);
  ck_assert_int_eq(json_array_size(json_object_get(f, "connections")), 2);
  ck_assert_int_eq(json_array_size(json_object_get(f, "places")), 5);
  ck_assert(!json_is_true(json_object_get(f, "one_hop")));
  ck_assert_int_eq(proc_count_lines(p.out.data, ""), 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, "FOUND body-less-forward: POST "
                                           "/EWS/Exchange.asmx"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "found body-less-forward (8)"));
  json_decref(doc);
  proc_free(&p);
  assert_schema(at("out.json"));

  ck_assert_int_eq(run_scenario("fix"), 0);
  args[0] = at("fix.pcap");
  doc = analyze(&p, args);
  ck_assert_msg(p.status == 0, "exit %d: %s", p.status, p.out.data);
  assert_defects(doc, NULL, 0, "fix");
  ck_assert_ptr_nonnull(strstr(p.out.data, "nothing of the family found"));
  json_decref(doc);
  proc_free(&p);
}
END_TEST

/* The listener and the server said on the command line: the same
 * findings as inferred. */
START_TEST(roles_given)
{
  const char *args[] = {NULL,       "--listener",   "127.0.0.2:80",
                        "--server", "127.0.0.3:80", NULL};
  struct proc_out p;
  json_t *doc;

  run_scenario("bug");
  args[0] = at("bug.pcap");
  doc = analyze(&p, args);
  ck_assert_int_eq(p.status, 1);
  ck_assert_int_eq(count_of(doc, "body-less-forward"), 8);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "hops")), "both");
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "paired")), 12);
  ck_assert_ptr_nonnull(
      strstr(json_string_value(json_object_get(doc, "roles")), "as given"));
  json_decref(doc);
  proc_free(&p);
}
END_TEST

/* Usage errors: no file, a bad HOST:PORT, both ends the same. */
START_TEST(usage_errors)
{
  static const char *const rows[][4] = {
      {NULL},
      {"x.pcap", "--listener", "nonsense", NULL},
      {"x.pcap", "--listener", "127.0.0.1:80", NULL},
  };
  size_t i;

  for(i = 0; i < 3; i++) {
    char *argv[8] = {KBSIM_BIN, "analyze"};
    size_t n = 2, k;
    struct proc_out p;
    const char *why;

    for(k = 0; rows[i][k]; k++)
      argv[n++] = (char *)rows[i][k];
    if(i == 2) {
      argv[n++] = "--server";
      argv[n++] = "127.0.0.1:80";
    }
    argv[n] = NULL;
    proc_run(argv, &p);
    why = proc_usage_error(&p);
    ck_assert_msg(!why, "row %zu: %s", i, why);
    proc_free(&p);
  }
}
END_TEST

/* The rules no real proxy here shows yet, on captures crafted for each
 * (tests/analyze/craft-pcap): each finds its defect, and only it. */
START_TEST(crafted_rules)
{
  static const char *const rows[][2] = {
      {"pinned-recycled", "pinned-recycled"},
      {"challenge-rewritten", "challenge-rewritten"},
      {"single-leg", "mixes-after-single-leg"},
  };
  size_t i;

  for(i = 0; i < 3; i++) {
    char pcap[512];
    char *craft[] = {TESTS_DIR "/analyze/craft-pcap", (char *)rows[i][0], pcap,
                     NULL};
    const char *args[] = {pcap, NULL};
    const char *found[] = {rows[i][1]};
    struct proc_out p;
    json_t *doc;

    snprintf(pcap, sizeof(pcap), "%s/%s.pcap", dir, rows[i][0]);
    proc_run(craft, &p);
    ck_assert_msg(p.status == 0, "craft-pcap: %s", p.err.data);
    proc_free(&p);
    doc = analyze(&p, args);
    ck_assert_msg(p.status == 1, "%s: exit %d: %s", rows[i][0], p.status,
                  p.out.data);
    assert_defects(doc, found, 1, rows[i][0]);
    ck_assert_int_eq(count_of(doc, rows[i][1]), 1);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "hops")), "both");
    json_decref(doc);
    proc_free(&p);
  }
}
END_TEST

/* ---- inputs that cannot be read ---------------------------------------- */

/* A pcap of one UDP datagram on the loopback (raw IPv4): no HTTP at all. */
static const char *udp_pcap(void)
{
  static const unsigned char bytes[] = {
      /* global header: little-endian, v2.4, snaplen 65535, LINKTYPE_RAW */
      0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0,
      0, 101, 0, 0, 0,
      /* one record of 28 bytes */
      0x30, 0x90, 0xbf, 0x49, 0, 0, 0, 0, 28, 0, 0, 0, 28, 0, 0, 0,
      /* IPv4 127.0.0.1 -> 127.0.0.1, UDP 5000 -> 5001, no payload */
      0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0x3c, 0xcf, 127, 0, 0, 1, 127, 0,
      0, 1, 0x13, 0x88, 0x13, 0x89, 0, 8, 0, 0};

  return write_file("udp.pcap", (const char *)bytes, sizeof(bytes));
}

/* Each input that cannot be read gets its own line and exit 3: a
 * truncated capture, a HAR that is not JSON, a capture without HTTP, a
 * file of neither format, a key log that is not there. */
START_TEST(unreadable_inputs)
{
  const char *args[] = {NULL, NULL};
  struct proc_out p;
  struct stat st;
  char *whole;
  size_t len;

  /* A truncated capture: kbsim's own, less its last 100 bytes. */
  run_scenario("bug");
  whole = proc_slurp(at("bug.pcap"), &len);
  args[0] = write_file("cut.pcap", whole, len - 100);
  free(whole);
  ck_assert_ptr_null(analyze(&p, args));
  assert_unreadable(&p, "cut.pcap: a truncated capture: it ends in the "
                        "middle of a packet");
  proc_free(&p);

  /* A HAR that is not JSON. */
  args[0] = write_file("broken.har", "{\"log\": {\"entries\": [", 21);
  ck_assert_ptr_null(analyze(&p, args));
  assert_unreadable(&p, "broken.har: a HAR that is not JSON:");
  proc_free(&p);

  /* A capture without any HTTP. */
  args[0] = udp_pcap();
  ck_assert_ptr_null(analyze(&p, args));
  assert_unreadable(&p, "udp.pcap: no HTTP at all in it");
  proc_free(&p);

  /* Neither a capture nor a HAR. */
  args[0] = write_file("notes.txt", "hello\n", 6);
  ck_assert_ptr_null(analyze(&p, args));
  assert_unreadable(&p, "notes.txt: neither a capture (pcap, pcapng) nor a "
                        "HAR");
  proc_free(&p);

  /* A key log that is not there. */
  args[0] = at("bug.pcap");
  {
    const char *keyed[] = {args[0], "--keylog", "/nonexistent/keys.txt", NULL};
    ck_assert_ptr_null(analyze(&p, keyed));
  }
  assert_unreadable(&p, "--keylog /nonexistent/keys.txt: cannot read: No "
                        "such file or directory");
  proc_free(&p);

  /* Nothing written for an input that cannot be read. */
  ck_assert_int_ne(stat(at("out.json"), &st), 0);
}
END_TEST

/* Without tshark on PATH: one line saying what to install, exit 3; a HAR
 * is still read. */
START_TEST(tshark_missing)
{
  static const char empty[] = "{\"log\": {\"version\": \"1.2\", "
                              "\"entries\": []}}";
  char pcap[512], har[512];
  char *argv[] = {
      "/usr/bin/env", "PATH=/nonexistent", KBSIM_BIN, "analyze", pcap, NULL};
  struct proc_out p;

  run_scenario("fix");
  snprintf(pcap, sizeof(pcap), "%s", at("fix.pcap"));
  proc_run(argv, &p);
  assert_unreadable(&p, "tshark is not installed");
  ck_assert_ptr_nonnull(strstr(p.err.data, "apt-get install tshark"));
  proc_free(&p);
  snprintf(har, sizeof(har), "%s",
           write_file("empty.har", empty, sizeof(empty) - 1));
  argv[4] = har;
  proc_run(argv, &p);
  assert_unreadable(&p, "empty.har: a HAR without any entry");
  proc_free(&p);
}
END_TEST

/* A capture with HTTP but no NTLM: its one line, and nothing found. */
START_TEST(no_ntlm)
{
  const char *args[] = {NULL, NULL};
  struct proc_out p;
  json_t *doc;

  run_scenario("basic-auth");
  args[0] = at("basic-auth.pcap");
  doc = analyze(&p, args);
  ck_assert_int_eq(p.status, 0);
  ck_assert_int_eq(proc_count_lines(p.out.data,
                                    "note: no NTLM in the input: no request "
                                    "carries an NTLM token and no answer "
                                    "offers NTLM, so nothing of the family "
                                    "can show"),
                   1);
  assert_defects(doc, NULL, 0, "basic-auth");
  json_decref(doc);
  proc_free(&p);
}
END_TEST

/* ---- HAR files --------------------------------------------------------- */

/* A HAR as a browser writes it: a request served on connection 7 (its
 * handshake hidden), then a type 1 POST without a body answered 500 on
 * it; and an HTTP/2 request carrying NTLM on connection 9. */
static const char har_text[] =
    "{\"log\": {\"version\": \"1.2\", \"creator\": {\"name\": \"test\"},\n"
    " \"entries\": [\n"
    "  {\"startedDateTime\": \"2024-05-01T10:00:00.000Z\", \"time\": 20,\n"
    "   \"connection\": \"7\", \"serverIPAddress\": \"127.0.0.1\",\n"
    "   \"request\": {\"method\": \"GET\", \"url\": "
    "\"http://127.0.0.1:8080/owa/\",\n"
    "     \"httpVersion\": \"HTTP/1.1\", \"headers\": [], \"bodySize\": 0},\n"
    "   \"response\": {\"status\": 200, \"httpVersion\": \"HTTP/1.1\",\n"
    "     \"headers\": [], \"content\": {\"size\": 5}, \"bodySize\": 5}},\n"
    "  {\"startedDateTime\": \"2024-05-01T10:00:01.000+00:00\", \"time\": 20,\n"
    "   \"connection\": \"7\", \"serverIPAddress\": \"127.0.0.1\",\n"
    "   \"request\": {\"method\": \"POST\", \"url\": "
    "\"http://127.0.0.1:8080/EWS/Exchange.asmx\",\n"
    "     \"httpVersion\": \"HTTP/1.1\", \"bodySize\": 0, \"headers\": [\n"
    "       {\"name\": \"Authorization\", \"value\": \"NTLM "
    "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==\"},\n"
    "       {\"name\": \"Content-Length\", \"value\": \"0\"}]},\n"
    "   \"response\": {\"status\": 500, \"httpVersion\": \"HTTP/1.1\",\n"
    "     \"headers\": [], \"content\": {\"size\": 479}, \"bodySize\": 479}},\n"
    "  {\"startedDateTime\": \"2024-05-01T10:00:02.000Z\", \"time\": 20,\n"
    "   \"connection\": \"9\", \"serverIPAddress\": \"127.0.0.1\",\n"
    "   \"request\": {\"method\": \"GET\", \"url\": "
    "\"https://127.0.0.1:8080/owa/\",\n"
    "     \"httpVersion\": \"h2\", \"bodySize\": 0, \"headers\": [\n"
    "       {\"name\": \"authorization\", \"value\": \"NTLM "
    "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==\"}]},\n"
    "   \"response\": {\"status\": 401, \"httpVersion\": \"h2\",\n"
    "     \"headers\": [], \"content\": {\"size\": 0}, \"bodySize\": 0}}\n"
    " ]}}\n";

/* Both failures a browser's view can show, from one hop, each with its
 * HAR entries; the JSON against the schema, the JUnit read by
 * junitparser, the page with the findings' legs red. */
START_TEST(har_findings)
{
  static const char *const found[] = {"body-less-forward", "ntlm-over-http2"};
  const char *args[] = {NULL, "--junit", NULL, "--html", NULL, NULL};
  char *junit[] = {TESTS_DIR "/ci/junit_counts.py", NULL, NULL};
  struct proc_out p, j;
  json_t *doc, *f;
  char *page;

  args[0] = write_file("session.har", har_text, sizeof(har_text) - 1);
  args[2] = at("analyze.xml");
  args[4] = at("analyze.html");
  doc = analyze(&p, args);
  ck_assert_msg(p.status == 1, "exit %d: %s %s", p.status, p.out.data,
                p.err.data);
  assert_defects(doc, found, 2, "har");
  ck_assert_str_eq(json_string_value(json_object_get(doc, "hops")), "client");
  f = json_array_get(json_object_get(doc, "findings"), 0);
  ck_assert(json_is_true(json_object_get(f, "one_hop")));
  ck_assert_int_eq(
      json_integer_value(json_object_get(
          json_array_get(json_object_get(f, "places"), 1), "entry")),
      2);
  ck_assert_ptr_nonnull(strstr(p.out.data, "HAR entry 1 (authenticated), "
                                           "entry 2 (type 1 POST, no body)"));
  json_decref(doc);
  proc_free(&p);
  assert_schema(at("out.json"));

  junit[1] = (char *)at("analyze.xml");
  proc_judge(junit, &j);
  ck_assert_msg(j.status == 0, "%s", j.err.data);
  ck_assert_int_eq(proc_count_lines(j.out.data, "tests 9"), 1);
  ck_assert_int_eq(proc_count_lines(j.out.data, "failures 2"), 1);
  ck_assert_ptr_nonnull(strstr(j.out.data, "case body-less-forward failure "
                                           "defect 1 instance; first: POST"));
  ck_assert_ptr_nonnull(strstr(j.out.data, "case challenge-rewritten pass - "
                                           "needs both sides"));
  proc_free(&j);

  page = proc_slurp(at("analyze.html"), NULL);
  ck_assert_ptr_nonnull(strstr(page, "found 2 instances of the family"));
  ck_assert_ptr_nonnull(strstr(page, "class=\"leg hop1 failed finding\""));
  ck_assert_ptr_nonnull(strstr(page, "class=\"lbl req bad\""));
  free(page);
}
END_TEST

/* Two endpoints that nothing links (kbsim's listener in a capture, a
 * browser's server in a HAR): one line says it is ambiguous; given, it
 * is not. */
START_TEST(ambiguous_roles)
{
  const char *args[] = {NULL, NULL, NULL, NULL, NULL};
  struct proc_out p;
  json_t *doc;

  run_scenario("wrong-password");
  args[0] = at("wrong-password.pcap");
  args[1] = write_file("session.har", har_text, sizeof(har_text) - 1);
  doc = analyze(&p, args);
  ck_assert_int_eq(p.status, 1);
  ck_assert_msg(!strncmp(p.err.data,
                         "kbsim analyze: ambiguous: 2 endpoints "
                         "accept connections",
                         55) &&
                    strchr(p.err.data, '\n') ==
                        p.err.data + strlen(p.err.data) - 1,
                "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.err.data, "--listener HOST:PORT --server "
                                           "HOST:PORT"));
  ck_assert(json_is_true(json_object_get(doc, "ambiguous")));
  json_decref(doc);
  proc_free(&p);
  args[2] = "--listener";
  args[3] = "127.0.0.2:80";
  doc = analyze(&p, args);
  ck_assert_int_eq(p.status, 0);
  ck_assert_str_eq(p.err.data, "");
  ck_assert(!json_is_true(json_object_get(doc, "ambiguous")));
  json_decref(doc);
  proc_free(&p);
}
END_TEST

/* ---- slow: the whole catalogue, real proxies, a real browser ----------- */

/* Every catalogue scenario's capture: exactly body-less-forward, once per
 * POST that reached Exchange empty, when its run counted any; nothing
 * otherwise. kerberos-inside's internal users' Negotiate tickets are
 * real Kerberos: nothing is found on their connections, only the external
 * NTLM users' body-less POSTs (left out, and said, without MIT's KDC). */
START_TEST(every_scenario)
{
  static const char *const found[] = {"body-less-forward"};
  static const char *const names[] = {"anonymous",
                                      "basic-auth",
                                      "bug",
                                      "fix",
                                      "half-patched-array",
                                      "hotfix-without-script",
                                      "intermittent-array",
                                      "kerberos-inside",
                                      "one-shot-client",
                                      "outlook-client",
                                      "script-without-hotfix",
                                      "sp1-script",
                                      "sp1-without-script",
                                      "wrong-password"};
  size_t i;

  for(i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    char pcap[512];
    const char *args[] = {pcap, NULL};
    long empty;
    struct proc_out p;
    json_t *doc;

    snprintf(pcap, sizeof(pcap), SCENARIOS_DIR "/%s.ini", names[i]);
    if(!proc_scenario_runs(pcap))
      continue; /* main says so */
    empty = run_scenario(names[i]);
    snprintf(pcap, sizeof(pcap), "%s", at(names[i]));
    strcat(pcap, ".pcap");
    doc = analyze(&p, args);
    ck_assert_msg(p.status == (empty ? 1 : 0), "%s: exit %d: %s", names[i],
                  p.status, p.out.data);
    assert_defects(doc, found, empty ? 1 : 0, names[i]);
    ck_assert_msg(count_of(doc, "body-less-forward") == empty,
                  "%s: %ld body-less-forward, %ld empty POSTs", names[i],
                  count_of(doc, "body-less-forward"), empty);
    json_decref(doc);
    proc_free(&p);
  }
}
END_TEST

/* One real proxy: capture-proxy's capture of alice's and bob's sessions,
 * analyzed; returns the report, NULL when a tool is missing. */
static json_t *real_proxy(const char *proxy, struct proc_out *p)
{
  char pcap[512];
  char *argv[] = {CAPTURE_PROXY, (char *)proxy, KBSIM_BIN, pcap, NULL};
  const char *args[] = {pcap, NULL};
  struct proc_out c;

  snprintf(pcap, sizeof(pcap), "%s/%s.pcap", dir, proxy);
  proc_run(argv, &c);
  if(c.status == PROC_SKIPPED) {
    fprintf(stderr, "skip: %s: %s", proxy, c.err.data);
    proc_free(&c);
    return NULL;
  }
  ck_assert_msg(c.status == 0, "capture-proxy %s: %d %s", proxy, c.status,
                c.err.data);
  proc_free(&c);
  return analyze(p, args);
}

/* Squid authenticating with ntlm_auth forwards the body-less type 1
 * POSTs: two per session; passing NTLM through (pinned) it is clean. */
START_TEST(squid)
{
  static const char *const found[] = {"body-less-forward"};
  struct proc_out p;
  json_t *doc = real_proxy("squid", &p);

  if(!doc)
    return;
  ck_assert_int_eq(p.status, 1);
  assert_defects(doc, found, 1, "squid");
  ck_assert_int_eq(count_of(doc, "body-less-forward"), 4);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "hops")), "both");
  json_decref(doc);
  proc_free(&p);
  doc = real_proxy("squid-passthru", &p);
  ck_assert_msg(p.status == 0, "squid-passthru: exit %d: %.1500s", p.status,
                p.out.data);
  assert_defects(doc, NULL, 0, "squid-passthru");
  json_decref(doc);
  proc_free(&p);
}
END_TEST

/* nginx's keepalive pool and Apache's pass-through give bob's client
 * connection the upstream connection alice authenticated; nginx without
 * keepalive sends each type 3 on another connection than its type 1. */
START_TEST(nginx_and_apache)
{
  static const char *const mixes[] = {"mixes-identities"};
  static const char *const split[] = {"handshake-split"};
  static const char *const rows[] = {"nginx", "apache-passthru"};
  struct proc_out p;
  json_t *doc;
  size_t i;

  for(i = 0; i < 2; i++) {
    json_t *f;
    doc = real_proxy(rows[i], &p);
    if(!doc)
      continue;
    ck_assert_int_eq(p.status, 1);
    assert_defects(doc, mixes, 1, rows[i]);
    f = json_array_get(json_object_get(doc, "findings"), 0);
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(f, "text")),
                                 "authenticated as FABRIKAM\\alice"));
    ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(f, "text")),
                                 "bob@fabrikam.com"));
    ck_assert_int_eq(json_array_size(json_object_get(f, "connections")), 3);
    json_decref(doc);
    proc_free(&p);
  }
  doc = real_proxy("nginx-nokeepalive", &p);
  if(!doc)
    return;
  ck_assert_int_eq(p.status, 1);
  assert_defects(doc, split, 1, "nginx-nokeepalive");
  ck_assert_int_eq(count_of(doc, "handshake-split"), 2);
  ck_assert_ptr_nonnull(strstr(p.out.data, "(the 401 loop)"));
  json_decref(doc);
  proc_free(&p);
}
END_TEST

/* nginx with its listener on TLS, curl --ntlm as the clients: without
 * the keys one line says which connections stayed encrypted; with them
 * (--keylog, or a pcapng carrying them in a Decryption Secrets Block) both
 * hops are read and paired. */
START_TEST(tls_keys)
{
  char keys[512], dsb[512];
  char *inject[] = {
      "/usr/bin/editcap", "--inject-secrets", NULL, NULL, dsb, NULL};
  char secrets[600];
  const char *with_keys[] = {NULL, "--keylog", keys, NULL};
  const char *with_dsb[] = {dsb, NULL};
  struct proc_out p;
  json_t *doc;
  size_t i;

  doc = real_proxy("nginx-tls", &p);
  if(!doc)
    return;
  ck_assert_int_eq(p.status, 0);
  ck_assert_ptr_nonnull(strstr(p.out.data, "note: 2 TLS connections (the "
                                           "first to 127.0.0.1:"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "could not be read: without the "
                                           "keys (--keylog FILE"));
  json_decref(doc);
  proc_free(&p);
  snprintf(keys, sizeof(keys), "%s/nginx-tls.pcap.keys", dir);
  snprintf(dsb, sizeof(dsb), "%s/nginx-tls.pcapng", dir);
  snprintf(secrets, sizeof(secrets), "tls,%s", keys);
  inject[2] = secrets;
  inject[3] = (char *)at("nginx-tls.pcap");
  proc_run(inject, &p);
  ck_assert_msg(p.status == 0, "editcap: %s", p.err.data);
  proc_free(&p);
  with_keys[0] = at("nginx-tls.pcap");
  for(i = 0; i < 2; i++) {
    doc = analyze(&p, i ? with_dsb : with_keys);
    ck_assert_msg(p.status == 0, "exit %d: %s %s", p.status, p.out.data,
                  p.err.data);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "hops")), "both");
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "requests")), 8);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "paired")), 4);
    ck_assert_ptr_null(strstr(p.out.data, "TLS connection"));
    assert_defects(doc, NULL, 0, i ? "tls, secrets block" : "tls, --keylog");
    json_decref(doc);
    proc_free(&p);
  }
}
END_TEST

/* nginx speaking HTTP/2 on TLS, curl starting NTLM on an HTTP/2 stream:
 * read with the keys, ntlm-over-http2 on the clients' connections. */
START_TEST(http2)
{
  static const char *const found[] = {"ntlm-over-http2"};
  char keys[512];
  const char *with_keys[] = {NULL, "--keylog", keys, NULL};
  struct proc_out p;
  json_t *doc = real_proxy("nginx-h2", &p);

  if(!doc)
    return;
  json_decref(doc);
  proc_free(&p);
  snprintf(keys, sizeof(keys), "%s/nginx-h2.pcap.keys", dir);
  with_keys[0] = at("nginx-h2.pcap");
  doc = analyze(&p, with_keys);
  ck_assert_msg(p.status == 1, "exit %d: %s", p.status, p.out.data);
  assert_defects(doc, found, 1, "http2");
  ck_assert_int_eq(count_of(doc, "ntlm-over-http2"), 2);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "hops")), "both");
  json_decref(doc);
  proc_free(&p);
}
END_TEST

/* Headless Chromium through `kbsim serve` (ISA as shipped): its HAR holds
 * the type 1 POST without a body answered 500 on a connection the
 * listener had served: body-less-forward from the browser's side. */
START_TEST(chromium_har)
{
  char har[512], node_path[600], url[64];
  char *serve[] = {KBSIM_BIN,   "serve",
                   "--proxy",   "127.0.0.1:0",
                   "--backend", "127.0.0.1:0",
                   "--policy",  "per-connection",
                   "--user",    "FABRIKAM\\alice:Passw0rd!",
                   "--quiet",   NULL};
  char *drive[] = {"/usr/bin/env",
                   node_path,
                   "node",
                   TESTS_DIR "/analyze/har.js",
                   url,
                   "FABRIKAM\\alice",
                   "Passw0rd!",
                   har,
                   NULL};
  static const char *const found[] = {"body-less-forward"};
  const char *args[] = {har, NULL};
  struct proc_out p, d;
  json_t *doc;
  unsigned port;
  int outfd, errfd;
  pid_t pid;

  if(!proc_have("/usr/bin/chromium") || !proc_have("/usr/bin/node"))
    return; /* skipped; main says so */
  ck_assert_msg(access(NODE_MODULES "/puppeteer-core", F_OK) == 0,
                "puppeteer-core is missing from " NODE_MODULES
                ": run scripts/setup");
  snprintf(har, sizeof(har), "%s/session.har", dir);
  snprintf(node_path, sizeof(node_path), "NODE_PATH=%s", NODE_MODULES);
  pid = proc_spawn(serve, &outfd, &errfd);
  port = proc_read_port(outfd, "ISA listener: http://127.0.0.1:");
  ck_assert_uint_gt(port, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  proc_run(drive, &d);
  kill(pid, SIGTERM);
  proc_collect(pid, outfd, errfd, &p);
  proc_free(&p);
  ck_assert_msg(d.status == 0, "har.js: %s %s", d.out.data, d.err.data);
  ck_assert_msg(strstr(d.out.data, "ok POSTs answered 200 and 500"), "%s",
                d.out.data);
  proc_free(&d);
  doc = analyze(&p, args);
  ck_assert_msg(p.status == 1, "exit %d: %s", p.status, p.out.data);
  assert_defects(doc, found, 1, "chromium");
  ck_assert_int_eq(count_of(doc, "body-less-forward"), 1);
  ck_assert(json_is_true(json_object_get(
      json_array_get(json_object_get(doc, "findings"), 0), "one_hop")));
  json_decref(doc);
  proc_free(&p);
  assert_schema(at("out.json"));
}
END_TEST

int main(void)
{
  Suite *s = suite_create("analyze");
  TCase *tc = tcase_create("analyze");
  int failed;

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, usage_errors);
  tcase_add_test(tc, tshark_missing);
  tcase_add_test(tc, har_findings);
  suite_add_tcase(s, tc);
  /* Captures through tshark (about a second of CPU each): bug and fix, the
   * inputs it cannot read, the rules one by one, roles given and ambiguous, a
   * capture without NTLM. */
  tc = tcase_create("rules");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 60);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_test(tc, bug_and_fix);
  tcase_add_test(tc, unreadable_inputs);
  tcase_add_test(tc, roles_given);
  tcase_add_test(tc, crafted_rules);
  tcase_add_test(tc, no_ntlm);
  tcase_add_test(tc, ambiguous_roles);
  suite_add_tcase(s, tc);
  /* tshark over the whole catalogue, the third-party proxies (Squid takes
   * 3 s to stop) and headless Chromium. */
  tc = tcase_create("real");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_test(tc, every_scenario);
  tcase_add_test(tc, squid);
  tcase_add_test(tc, nginx_and_apache);
  tcase_add_test(tc, tls_keys);
  tcase_add_test(tc, http2);
  tcase_add_test(tc, chromium_har);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  return proc_suite_exit(
      failed,
      proc_skip_unless("/usr/bin/tshark", "analyze", "apt-get install tshark") |
          proc_skip_unless("/usr/bin/tcpdump", "squid",
                           "apt-get install tcpdump") |
          proc_skip_unless(PROC_KRB5KDC, "every_scenario: kerberos-inside",
                           "apt-get install krb5-kdc"));
}
