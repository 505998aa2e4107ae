/*
 * test_probe_defects.c - `kbsim probe` names every defect it finds (issue
 * 29): against `kbsim serve --defect NAME`, for every defect the listener
 * implements, it exits 1 and lists exactly that defect in its JSON;
 * against the correct listeners (`serve --policy per-request`, `serve
 * --pass-through`) it exits 0 with "defects": []. Every report matches
 * probe/report.schema.json (python3-jsonschema), whose defect names are
 * common/kb_defect.h's; the JUnit report has one testcase per check. And
 * the hints that misled: a split handshake is never "check the user name
 * and password" (probe and client), the wrong password is inconclusive
 * when nobody could sign in, a listener that answers by itself is said to
 * have reached nothing, and checks that need Exchange's status are
 * skipped without it.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/kb_defect.h"
#include "kbt.h"
#include "probe/probe.h"
#include "proc.h"
#include "proxy/proxy.h"

#define ALICE "FABRIKAM\\alice:Passw0rd!"
#define BOB "FABRIKAM\\bob:Hunter2?"
#define SPLIT_HINT "check the user name and password"

/* A `kbsim serve` under test, and where its Exchange's status is. */
struct pd_serve {
  pid_t pid;
  int outfd, errfd;
  char url[64];    /* the listener */
  char status[96]; /* Exchange's status */
};

/* Starts `kbsim serve` with a1 and a2 (NULL: none) after its ports and
 * alice and bob as users. */
static void pd_serve_start(struct pd_serve *s, const char *a1, const char *a2)
{
  char *argv[16];
  unsigned port, status;
  int n = 0;

  argv[n++] = KBSIM_BIN;
  argv[n++] = "serve";
  argv[n++] = "--proxy";
  argv[n++] = "127.0.0.1:0";
  argv[n++] = "--backend";
  argv[n++] = "127.0.0.1:0";
  if(a1)
    argv[n++] = (char *)a1;
  if(a2)
    argv[n++] = (char *)a2;
  argv[n++] = "--user";
  argv[n++] = ALICE;
  argv[n++] = "--user";
  argv[n++] = BOB;
  argv[n++] = "-q";
  argv[n] = NULL;
  s->pid = proc_spawn(argv, &s->outfd, &s->errfd);
  port = proc_read_port(s->outfd, "ISA listener: http://127.0.0.1:");
  status = proc_read_port(s->outfd, "Status:       http://127.0.0.1:");
  if(!port || !status) {
    struct proc_out out;

    kill(s->pid, SIGKILL);
    proc_collect(s->pid, s->outfd, s->errfd, &out);
    ck_abort_msg("serve %s %s printed no banner (exit %d): %.500s",
                 a1 ? a1 : "", a2 ? a2 : "", out.status, out.err.data);
  }
  snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u/", port);
  snprintf(s->status, sizeof(s->status), "http://127.0.0.1:%u/kbsim/status",
           status);
}

static void pd_serve_stop(struct pd_serve *s)
{
  struct proc_out o;

  ck_assert_int_eq(kill(s->pid, SIGTERM), 0);
  proc_collect(s->pid, s->outfd, s->errfd, &o);
  ck_assert_msg(o.status == 0, "serve exited %d: %s", o.status, o.err.data);
  proc_free(&o);
}

/* One probe's run: its output and exit, its JSON and JUnit reports. */
struct pd_probe {
  char dir[256];
  char json[300], junit[300];
  struct proc_out out;
  json_t *doc; /* the JSON report, owned */
};

/* Probes url with alice and bob, and Exchange's status when status is
 * not NULL, writing --json and --junit into a new directory. */
static void pd_probe_for(const char *url, const char *status,
                         const char *timeout, struct pd_probe *p)
{
  char jarg[320], xarg[320];
  char *argv[16];
  int n = 0;

  memset(p, 0, sizeof(*p));
  proc_tmpdir("kbsim-pd", p->dir, sizeof(p->dir));
  snprintf(p->json, sizeof(p->json), "%s/probe.json", p->dir);
  snprintf(p->junit, sizeof(p->junit), "%s/probe.xml", p->dir);
  snprintf(jarg, sizeof(jarg), "--json=%s", p->json);
  snprintf(xarg, sizeof(xarg), "--junit=%s", p->junit);
  argv[n++] = KBSIM_BIN;
  argv[n++] = "probe";
  argv[n++] = (char *)url;
  argv[n++] = "--user";
  argv[n++] = ALICE;
  argv[n++] = "--user";
  argv[n++] = BOB;
  if(status) {
    argv[n++] = "--exchange-status";
    argv[n++] = (char *)status;
  }
  if(timeout) {
    argv[n++] = "--timeout";
    argv[n++] = (char *)timeout;
  }
  argv[n++] = jarg;
  argv[n++] = xarg;
  argv[n] = NULL;
  proc_run(argv, &p->out);
  p->doc = json_load_file(p->json, 0, NULL);
  ck_assert_msg(p->doc != NULL, "no JSON report: exit %d\n%s%s", p->out.status,
                p->out.out.data, p->out.err.data);
}

/* The probe with its default timeout (10 s per answer). */
static void pd_probe(const char *url, const char *status, struct pd_probe *p)
{
  pd_probe_for(url, status, NULL, p);
}

static void pd_probe_free(struct pd_probe *p)
{
  json_decref(p->doc);
  proc_free(&p->out);
  proc_rmdir(p->dir);
}

/* Has python3-jsonschema check the report at path against
 * probe/report.schema.json. */
static void pd_assert_schema(const char *path)
{
  proc_assert_schema(SOURCE_DIR "/probe/report.schema.json",
                     (const char *const[]){path, NULL});
}

/* The report's "defects" joined by commas ("" for none). */
static void pd_defects(const json_t *doc, char *out, size_t len)
{
  const json_t *list = json_object_get(doc, "defects");
  size_t i, at = 0;

  ck_assert_msg(json_is_array(list), "no \"defects\" list");
  out[0] = '\0';
  for(i = 0; i < json_array_size(list) && at < len; i++)
    at += (size_t)snprintf(out + at, len - at, "%s%s", i ? "," : "",
                           json_string_value(json_array_get(list, i)));
}

/* The check named name in the report. */
static const json_t *pd_check(const json_t *doc, const char *name)
{
  const json_t *checks = json_object_get(doc, "checks");
  size_t i;

  for(i = 0; i < json_array_size(checks); i++) {
    const json_t *c = json_array_get(checks, i);
    if(!strcmp(json_string_value(json_object_get(c, "name")), name))
      return c;
  }
  ck_abort_msg("no check %s in the report", name);
  return NULL;
}

static const char *pd_verdict(const json_t *doc, const char *name)
{
  return json_string_value(json_object_get(pd_check(doc, name), "verdict"));
}

static const char *pd_line(const json_t *doc, const char *name)
{
  return json_string_value(json_object_get(pd_check(doc, name), "line"));
}

/* Asserts the JUnit report at path has one testcase per check, each named
 * after it. */
static void pd_assert_junit(const char *path)
{
  char *xml = proc_slurp(path, NULL);
  char want[80];
  int i;

  ck_assert_ptr_nonnull(xml);
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    snprintf(want, sizeof(want), "<testcase name=\"%s\"",
             probe_check_name((enum probe_check)i));
    ck_assert_msg(strstr(xml, want) != NULL, "no %s in %s", want, xml);
  }
  {
    const char *at = xml;
    int n = 0;
    while((at = strstr(at, "<testcase ")) != NULL) {
      n++;
      at++;
    }
    ck_assert_int_eq(n, PROBE_CHECK_COUNT);
  }
  free(xml);
}

/* The defects the listener implements (serve --defect takes them), but
 * mixes-after-single-leg: the probe finds it only with Kerberos
 * credentials, so test_kerberos.c shows it end to end against a KDC of
 * its own. */
static enum kb_defect pd_defect(int i)
{
  int d, n = 0;

  for(d = 0; d < KB_DEFECT_COUNT; d++)
    if(!proxy_defect_unavailable((enum kb_defect)d) &&
       d != KB_DEFECT_MIXES_AFTER_SINGLE_LEG && n++ == i)
      return (enum kb_defect)d;
  return KB_DEFECT_COUNT;
}

static int pd_ndefects(void)
{
  int n = 0;

  while(pd_defect(n) != KB_DEFECT_COUNT)
    n++;
  return n;
}

/* The done-when: `probe` against `serve --defect NAME`, with two users
 * and Exchange's status, exits 1 and lists exactly that defect; the
 * report matches the schema; one JUnit testcase per check. */
START_TEST(probe_names_each_defect)
{
  const char *name = kb_defect_name(pd_defect(_i));
  const bool hang = pd_defect(_i) == KB_DEFECT_EXPECT_HANG;
  struct pd_serve s;
  struct pd_probe p;
  char found[256];

  pd_serve_start(&s, "--defect", name);
  /* A hang is called after --timeout: 2 s, not the default 10. */
  pd_probe_for(s.url, s.status, hang ? "2" : NULL, &p);
  pd_serve_stop(&s);
  pd_defects(p.doc, found, sizeof(found));
  ck_assert_msg(p.out.status == 1 && !strcmp(found, name),
                "--defect %s: exit %d, defects [%s]:\n%s", name, p.out.status,
                found, p.out.out.data);
  ck_assert_int_eq(json_integer_value(json_object_get(p.doc, "exit_code")), 1);
  pd_assert_schema(p.json);
  pd_assert_junit(p.junit);
  /* The check that found it says so, and the lines name it. */
  {
    char want[80];
    snprintf(want, sizeof(want), "Defects: %s\n", name);
    ck_assert_ptr_nonnull(strstr(p.out.out.data, want));
  }
  if(hang)
    ck_assert_msg(strstr(pd_line(p.doc, "expect-hang"), "an answer in 2 s"),
                  "%s", pd_line(p.doc, "expect-hang"));
  /* Nowhere the misleading hint. */
  ck_assert_msg(!strstr(p.out.out.data, SPLIT_HINT), "%s", p.out.out.data);
  pd_probe_free(&p);
}
END_TEST

/* The correct listeners: exit 0, "defects": [], every check passing but
 * single-leg, skipped without Kerberos credentials, and http2, skipped on
 * http://. */
START_TEST(probe_finds_none_in_correct_listeners)
{
  static const char *const modes[][2] = {{"--policy", "per-request"},
                                         {"--pass-through", NULL}};
  size_t i;

  for(i = 0; i < 2; i++) {
    struct pd_serve s;
    struct pd_probe p;
    const json_t *checks;
    char found[256];
    size_t k;

    pd_serve_start(&s, modes[i][0], modes[i][1]);
    pd_probe(s.url, s.status, &p);
    pd_serve_stop(&s);
    pd_defects(p.doc, found, sizeof(found));
    ck_assert_msg(p.out.status == 0 && !found[0], "%s: exit %d, [%s]:\n%s",
                  modes[i][0], p.out.status, found, p.out.out.data);
    ck_assert_ptr_nonnull(strstr(p.out.out.data, "Defects: none\n"));
    checks = json_object_get(p.doc, "checks");
    ck_assert_uint_eq(json_array_size(checks), PROBE_CHECK_COUNT);
    for(k = 0; k < json_array_size(checks); k++) {
      const json_t *check = json_array_get(checks, k);
      const char *name = json_string_value(json_object_get(check, "name"));
      /* single-leg needs Kerberos; http2 needs https:// (test_http2.c). */
      bool skip = !strcmp(name, "single-leg") || !strcmp(name, "http2");

      ck_assert_msg(
          !strcmp(json_string_value(json_object_get(check, "verdict")),
                  skip ? "skip" : "pass"),
          "%s: %s", modes[i][0], p.out.out.data);
    }
    pd_assert_schema(p.json);
    pd_probe_free(&p);
  }
}
END_TEST

/* The hints behind a listener that splits every handshake (as nginx
 * without keepalive): the probe says the type 3 found no challenge and
 * the password was never checked, not "check the user name and
 * password"; the wrong password is inconclusive, since the right one
 * never signed in either. Before issue 29 the probe said "could not be
 * probed" (exit 3), "check the user name and password" on every session
 * and "pass" for the wrong password. */
START_TEST(split_handshake_hints)
{
  struct pd_serve s;
  struct pd_probe p;

  pd_serve_start(&s, "--defect", "handshake-split");
  pd_probe(s.url, s.status, &p);
  pd_serve_stop(&s);
  ck_assert_int_eq(p.out.status, 1);
  ck_assert_str_eq(pd_verdict(p.doc, "handshake-split"), "fail");
  ck_assert_ptr_nonnull(strstr(pd_line(p.doc, "handshake-split"),
                               "where no challenge was pending"));
  ck_assert_ptr_nonnull(strstr(pd_line(p.doc, "handshake-split"),
                               "without the password being checked"));
  ck_assert_ptr_nonnull(
      strstr(pd_line(p.doc, "communicator"), "no challenge pending"));
  ck_assert_str_eq(pd_verdict(p.doc, "wrong-password"), "error");
  ck_assert_ptr_nonnull(
      strstr(pd_line(p.doc, "wrong-password"), "inconclusive"));
  ck_assert_str_eq(json_string_value(json_object_get(p.doc, "class")),
                   "defective");
  ck_assert_msg(!strstr(p.out.out.data, SPLIT_HINT), "%s", p.out.out.data);
  pd_probe_free(&p);
}
END_TEST

/* `kbsim client` behind the same listener gives the right hint too: the
 * 401 to the type 3 is a wrong password or a split handshake, never
 * "check the user name and password" alone (as before issue 29). */
START_TEST(client_split_handshake_hint)
{
  struct pd_serve s;
  struct proc_out o;

  pd_serve_start(&s, "--defect", "handshake-split");
  {
    char *const argv[] = {KBSIM_BIN, "client", "--url", s.url,
                          "--user",  ALICE,    NULL};
    proc_run(argv, &o);
  }
  pd_serve_stop(&s);
  ck_assert_int_eq(o.status, 1);
  ck_assert_msg(strstr(o.out.data, "HTTP 401 to the type 3 (FABRIKAM\\alice): "
                                   "bad password, or the listener split "
                                   "the handshake (kbsim probe tells which)"),
                "%s", o.out.data);
  ck_assert_msg(!strstr(o.out.data, SPLIT_HINT), "%s", o.out.data);
  proc_free(&o);
}
END_TEST

/* Without Exchange's status, the checks that need it are skipped and say
 * so; the rest still judge; nothing guesses. Behind the splitting
 * listener that leaves nothing proven: could not be probed (exit 3), and
 * still no "check the user name and password". */
START_TEST(without_status_skips_not_guesses)
{
  static const char *const needs[] = {"two-users", "handshake-split",
                                      "pinned-recycled", "challenge-rewritten"};
  struct pd_serve s;
  struct pd_probe p;
  size_t i;

  pd_serve_start(&s, "--defect", "handshake-split");
  pd_probe(s.url, NULL, &p);
  pd_serve_stop(&s);
  ck_assert_int_eq(p.out.status, 3);
  for(i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
    ck_assert_str_eq(pd_verdict(p.doc, needs[i]), "skip");
    ck_assert_ptr_nonnull(
        strstr(pd_line(p.doc, needs[i]), "needs Exchange's view"));
  }
  ck_assert_str_eq(pd_verdict(p.doc, "expect-hang"), "pass");
  ck_assert_str_eq(pd_verdict(p.doc, "body-on-type1"), "pass");
  ck_assert_msg(!strstr(p.out.out.data, SPLIT_HINT), "%s", p.out.out.data);
  pd_assert_schema(p.json);
  pd_probe_free(&p);
}
END_TEST

/* A listener that answers by itself (a maintenance page: 200 to
 * everything) in front of an Exchange that sees nothing: the probe says
 * nothing reached Exchange, not a protocol error on every session (as
 * before issue 29), and could not probe (exit 3). */
START_TEST(listener_answering_by_itself)
{
  char *exchange[] = {KBSIM_BIN, "exchange", "--listen", "127.0.0.1:0", NULL};
  char *page[] = {"/usr/bin/python3", "-u", "-c",
                  "import http.server as h\n"
                  "class P(h.BaseHTTPRequestHandler):\n"
                  "  def answer(self):\n"
                  "    n = int(self.headers.get('Content-Length') or 0)\n"
                  "    self.rfile.read(n)\n"
                  "    b = b'<html>Down for maintenance</html>'\n"
                  "    self.send_response(200)\n"
                  "    self.send_header('Content-Length', str(len(b)))\n"
                  "    self.end_headers()\n"
                  "    self.wfile.write(b)\n"
                  "  do_GET = do_POST = answer\n"
                  "  def log_message(self, *a): pass\n"
                  "s = h.HTTPServer(('127.0.0.1', 0), P)\n"
                  "print('page at %d' % s.server_address[1])\n"
                  "s.serve_forever()\n",
                  NULL};
  char url[64], status[96];
  struct proc_out o;
  struct pd_probe p;
  int eout, eerr, pout, perr;
  pid_t epid, ppid;
  unsigned port;

  epid = proc_spawn(exchange, &eout, &eerr);
  port = proc_read_port(eout, "Exchange (auth none) at http://127.0.0.1:");
  ck_assert_uint_gt(port, 0);
  snprintf(status, sizeof(status), "http://127.0.0.1:%u/kbsim/status", port);
  ppid = proc_spawn(page, &pout, &perr);
  port = proc_read_port(pout, "page at ");
  ck_assert_uint_gt(port, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
  pd_probe(url, status, &p);
  ck_assert_int_eq(kill(ppid, SIGTERM), 0);
  proc_collect(ppid, pout, perr, &o);
  proc_free(&o);
  ck_assert_int_eq(kill(epid, SIGTERM), 0);
  proc_collect(epid, eout, eerr, &o);
  proc_free(&o);
  ck_assert_int_eq(p.out.status, 3);
  ck_assert_str_eq(pd_verdict(p.doc, "offer"), "error");
  ck_assert_msg(strstr(pd_line(p.doc, "offer"),
                       "nothing reached Exchange (its status counted no "
                       "request): the listener answered by itself"),
                "%s", p.out.out.data);
  ck_assert_msg(!strstr(p.out.out.data, "protocol-error"), "%s",
                p.out.out.data);
  pd_assert_schema(p.json);
  pd_probe_free(&p);
}
END_TEST

/* The schema's defect names are common/kb_defect.h's, all of them, and
 * each check's "defect" is probe_check_defect's. */
START_TEST(schema_names_the_defect_table)
{
  json_t *schema =
      json_load_file(SOURCE_DIR "/probe/report.schema.json", 0, NULL);
  const json_t *names;
  int d;

  ck_assert_ptr_nonnull(schema);
  names = json_object_get(
      json_object_get(json_object_get(schema, "definitions"), "defect"),
      "enum");
  ck_assert_uint_eq(json_array_size(names), KB_DEFECT_COUNT);
  for(d = 0; d < KB_DEFECT_COUNT; d++)
    ck_assert_str_eq(json_string_value(json_array_get(names, (size_t)d)),
                     kb_defect_name((enum kb_defect)d));
  json_decref(schema);
  ck_assert_int_eq(probe_check_defect(PROBE_CHECK_COMMUNICATOR),
                   KB_DEFECT_BODY_LESS_FORWARD);
  ck_assert_int_eq(probe_check_defect(PROBE_CHECK_TWO_USERS),
                   KB_DEFECT_MIXES_IDENTITIES);
  ck_assert_int_eq(probe_check_defect(PROBE_CHECK_SINGLE_LEG),
                   KB_DEFECT_MIXES_AFTER_SINGLE_LEG);
  ck_assert_int_eq(probe_check_defect(PROBE_CHECK_OFFER), KB_DEFECT_COUNT);
  for(d = PROBE_CHECK_HANDSHAKE_SPLIT; d < PROBE_CHECK_SINGLE_LEG; d++)
    ck_assert_str_eq(kb_defect_name(probe_check_defect((enum probe_check)d)),
                     probe_check_name((enum probe_check)d));
}
END_TEST

int main(void)
{
  Suite *s = suite_create("probe_defects");
  TCase *t = tcase_create("defects");
  TCase *slow;
  int failed;

  proc_whole_lines();
  tcase_set_timeout(t, 90);
  tcase_add_test(t, schema_names_the_defect_table);
  tcase_add_test(t, probe_finds_none_in_correct_listeners);
  tcase_add_test(t, split_handshake_hints);
  tcase_add_test(t, client_split_handshake_hint);
  tcase_add_test(t, without_status_skips_not_guesses);
  tcase_add_test(t, listener_answering_by_itself);
  suite_add_tcase(s, t);
  /* A kbsim serve, a probe and python3-jsonschema for each defect. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 90);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_loop_test(slow, probe_names_each_defect, 0, pd_ndefects());
  suite_add_tcase(s, slow);
  failed = kbt_run(s);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
