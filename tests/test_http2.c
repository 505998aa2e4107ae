/*
 * test_http2.c - the probe's http2 check (issue 31) against real HTTPS
 * listeners on loopback, each with a CA made for the run that the probe
 * verifies with (--ca-file): kbsim's own listener (`serve --tls`,
 * libmicrohttpd, HTTP/1.1 only: h2 refused in ALPN, fine); a listener
 * that refuses NTLM on HTTP/2 as IIS does (tests/h2-downgrade, python3-h2:
 * RST_STREAM and GOAWAY HTTP_1_1_REQUIRED, the client retrying on
 * HTTP/1.1, fine); nginx 1.22 of examples/nginx on TLS with `http2`
 * (NTLM let through on HTTP/2 streams: ntlm-over-http2) and without it
 * (refused in ALPN). Over plain http:// the check is not run and says
 * why. Every report matches probe/report.schema.json. nginx's cases are
 * slow; each case that needs a tool is skipped, saying so, without it.
 */
#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"
#include "served.h"

#define ALICE "FABRIKAM\\alice:Passw0rd!"
#define BOB "FABRIKAM\\bob:Passw0rd!"
#define NGINX "/usr/sbin/nginx"
#define PYTHON_H2 "/usr/lib/python3/dist-packages/h2"
#define SCHEMA SOURCE_DIR "/probe/report.schema.json"

/* One probe's run: its output and exit, its JSON report. */
struct h2_probe {
  char dir[256];
  char json[300], junit[300];
  struct proc_out out;
  json_t *doc; /* the JSON report, owned */
};

/* Probes url as alice (and bob when two), with Exchange's status and the
 * CA file when not NULL, writing --json and --junit into a new
 * directory; the report is judged against the schema, and nothing may
 * come on stderr. */
static void h2_probe(const char *url, const char *status, const char *ca,
                     bool two, struct h2_probe *p)
{
  char jarg[320], xarg[320];
  const char *paths[2];
  char *argv[20];
  int n = 0;

  memset(p, 0, sizeof(*p));
  proc_tmpdir("kbsim-h2", p->dir, sizeof(p->dir));
  snprintf(p->json, sizeof(p->json), "%s/probe.json", p->dir);
  snprintf(p->junit, sizeof(p->junit), "%s/probe.xml", p->dir);
  snprintf(jarg, sizeof(jarg), "--json=%s", p->json);
  snprintf(xarg, sizeof(xarg), "--junit=%s", p->junit);
  argv[n++] = KBSIM_BIN;
  argv[n++] = "probe";
  argv[n++] = (char *)url;
  argv[n++] = "--user";
  argv[n++] = ALICE;
  if(two) {
    argv[n++] = "--user";
    argv[n++] = BOB;
  }
  if(status) {
    argv[n++] = "--exchange-status";
    argv[n++] = (char *)status;
  }
  if(ca) {
    argv[n++] = "--ca-file";
    argv[n++] = (char *)ca;
  }
  argv[n++] = jarg;
  argv[n++] = xarg;
  argv[n] = NULL;
  proc_run(argv, &p->out);
  p->doc = json_load_file(p->json, 0, NULL);
  ck_assert_msg(p->doc != NULL, "no JSON report (exit %d): %s%s", p->out.status,
                p->out.out.data, p->out.err.data);
  /* What the probe has to say is in its lines; stderr stays empty (a
   * sanitizer's report would land there). */
  ck_assert_msg(!p->out.err.data || !p->out.err.data[0], "stderr: %s",
                p->out.err.data);
  paths[0] = p->json;
  paths[1] = NULL;
  if(proc_have(PROC_JSONSCHEMA))
    proc_assert_schema(SCHEMA, paths);
}

static void h2_probe_free(struct h2_probe *p)
{
  json_decref(p->doc);
  proc_free(&p->out);
  proc_rmdir(p->dir);
}

/* The check named name in p's report. */
static const json_t *h2_check(const struct h2_probe *p, const char *name)
{
  const json_t *checks = json_object_get(p->doc, "checks");
  size_t i;

  for(i = 0; i < json_array_size(checks); i++) {
    const json_t *c = json_array_get(checks, i);
    if(!strcmp(json_string_value(json_object_get(c, "name")), name))
      return c;
  }
  ck_abort_msg("no check %s in %s", name, p->out.out.data);
  return NULL;
}

/* Asserts the http2 check's verdict and that its line holds each of the
 * NULL-terminated needles. */
static void h2_assert(const struct h2_probe *p, const char *verdict,
                      const char *const *needles)
{
  const json_t *c = h2_check(p, "http2");
  const char *line = json_string_value(json_object_get(c, "line"));

  ck_assert_msg(
      !strcmp(json_string_value(json_object_get(c, "verdict")), verdict),
      "http2 is not %s: %s", verdict, p->out.out.data);
  ck_assert_str_eq(json_string_value(json_object_get(c, "defect")),
                   "ntlm-over-http2");
  for(; *needles; needles++)
    ck_assert_msg(strstr(line, *needles) != NULL, "no '%s' in: %s", *needles,
                  line);
}

/* Whether p's report lists defect. */
static bool h2_found(const struct h2_probe *p, const char *defect)
{
  const json_t *list = json_object_get(p->doc, "defects");
  size_t i;

  for(i = 0; i < json_array_size(list); i++)
    if(!strcmp(json_string_value(json_array_get(list, i)), defect))
      return true;
  return false;
}

/* ---- kbsim's own listener ---------------------------------------------- */

/* A `kbsim serve` under test, and where to reach it. */
struct h2_serve {
  struct served sv;
  char dir[256];
  char ca[300];    /* the run's CA certificate, written by --ca-file */
  char url[64];    /* the listener */
  char status[96]; /* Exchange's status */
};

/* Starts `kbsim serve --policy per-request` for alice and bob, on HTTPS
 * (--tls offload, the CA written to s->ca) when tls. */
static void h2_serve_start(struct h2_serve *s, bool tls)
{
  const char *args[20] = {"--proxy",  "127.0.0.1:0", "--backend", "127.0.0.1:0",
                          "--policy", "per-request", "--user",    ALICE,
                          "--user",   BOB,           NULL};
  int n = 10;

  memset(s, 0, sizeof(*s));
  proc_tmpdir("kbsim-h2-serve", s->dir, sizeof(s->dir));
  snprintf(s->ca, sizeof(s->ca), "%s/ca.pem", s->dir);
  if(tls) {
    args[n++] = "--tls";
    args[n++] = "offload";
    args[n++] = "--ca-file";
    args[n++] = s->ca;
  }
  args[n] = NULL;
  served_start(&s->sv, args);
  ck_assert_msg(s->sv.listener && s->sv.exchange, "serve's banner: %s",
                s->sv.banner.data);
  snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%u/", tls ? "https" : "http",
           s->sv.listener);
  snprintf(s->status, sizeof(s->status), "http://127.0.0.1:%u/kbsim/status",
           s->sv.exchange);
}

static void h2_serve_stop(struct h2_serve *s)
{
  served_stop(&s->sv);
  kb_buf_free(&s->sv.rest);
  proc_rmdir(s->dir);
}

/* kbsim's listener on HTTPS speaks HTTP/1.1 only (libmicrohttpd): h2 is
 * refused in ALPN, and every other check passes over TLS, the
 * certificate verified against the run's CA. Without the CA the
 * listener cannot be probed, and the offer says what to give. */
START_TEST(own_listener_refuses_h2)
{
  static const char *const refused[] = {"refused h2 in ALPN",
                                        "it chose http/1.1", NULL};
  const json_t *checks;
  struct h2_serve s;
  struct h2_probe p;
  size_t i;

  h2_serve_start(&s, true);
  h2_probe(s.url, s.status, s.ca, true, &p);
  ck_assert_msg(p.out.status == 0, "exit %d: %s", p.out.status, p.out.out.data);
  h2_assert(&p, "pass", refused);
  ck_assert_uint_eq(json_array_size(json_object_get(p.doc, "defects")), 0);
  checks = json_object_get(p.doc, "checks");
  for(i = 0; i < json_array_size(checks); i++) {
    const json_t *c = json_array_get(checks, i);
    const char *name = json_string_value(json_object_get(c, "name"));

    ck_assert_msg(!strcmp(json_string_value(json_object_get(c, "verdict")),
                          strcmp(name, "single-leg") ? "pass" : "skip"),
                  "%s over TLS: %s", name, p.out.out.data);
  }
  h2_probe_free(&p);

  h2_probe(s.url, s.status, NULL, false, &p);
  h2_serve_stop(&s);
  ck_assert_msg(p.out.status == 3, "exit %d: %s", p.out.status, p.out.out.data);
  ck_assert_msg(strstr(p.out.out.data, "give the listener's CA with "
                                       "--ca-file") != NULL,
                "%s", p.out.out.data);
  h2_probe_free(&p);
}
END_TEST

/* Over plain http:// the check is not run, and says why: clients offer
 * HTTP/2 only on TLS. */
START_TEST(plain_http_not_run)
{
  static const char *const why[] = {"not run: ", "plain HTTP", "(h2c)", NULL};
  struct h2_serve s;
  struct h2_probe p;

  h2_serve_start(&s, false);
  h2_probe(s.url, s.status, NULL, false, &p);
  h2_serve_stop(&s);
  ck_assert_msg(p.out.status == 0, "exit %d: %s", p.out.status, p.out.out.data);
  h2_assert(&p, "skip", why);
  ck_assert_ptr_nonnull(strstr(p.out.out.data, "skip  http2 "));
  h2_probe_free(&p);
}
END_TEST

/* ---- a listener that downgrades NTLM (tests/h2-downgrade) -------------- */

/* tests/h2-downgrade in front of `kbsim exchange --auth integrated`. */
struct h2_iis {
  struct served ex;
  pid_t pid;
  int out, err;
  char dir[256], ca[300], url[64], status[96];
};

static void h2_iis_start(struct h2_iis *s, const char *mode)
{
  char users[300], port_arg[16], script[300];
  const char *args[] = {"--listen",    "127.0.0.1:0", "--auth", "integrated",
                        "--user-file", users,         NULL};
  unsigned port;
  FILE *f;

  memset(s, 0, sizeof(*s));
  proc_tmpdir("kbsim-h2-iis", s->dir, sizeof(s->dir));
  snprintf(users, sizeof(users), "%s/users.ini", s->dir);
  f = fopen(users, "w");
  ck_assert_ptr_nonnull(f);
  fputs("FABRIKAM\\alice = Passw0rd!\nFABRIKAM\\bob = Passw0rd!\n", f);
  fclose(f);
  ck_assert_int_eq(chmod(users, 0600), 0);
  served_start_command(&s->ex, "exchange", args);
  port = served_port(&s->ex, "Exchange (auth integrated) at");
  ck_assert_msg(port, "kbsim exchange's banner: %s", s->ex.banner.data);
  snprintf(s->status, sizeof(s->status), "http://127.0.0.1:%u/kbsim/status",
           port);
  snprintf(port_arg, sizeof(port_arg), "%u", port);
  snprintf(script, sizeof(script), "%s/h2-downgrade", TESTS_DIR);
  {
    char *const argv[] = {script, port_arg, s->dir, (char *)mode, NULL};
    s->pid = proc_spawn(argv, &s->out, &s->err);
  }
  port = proc_read_port(s->out, "listening ");
  ck_assert_msg(port, "tests/h2-downgrade did not start");
  snprintf(s->ca, sizeof(s->ca), "%s/ca.pem", s->dir);
  snprintf(s->url, sizeof(s->url), "https://127.0.0.1:%u", port);
}

static void h2_iis_stop(struct h2_iis *s)
{
  struct proc_out o;

  ck_assert_int_eq(kill(s->pid, SIGTERM), 0);
  proc_collect(s->pid, s->out, s->err, &o);
  proc_free(&o);
  served_stop(&s->ex);
  kb_buf_free(&s->ex.rest);
  proc_rmdir(s->dir);
}

/* Probes the downgrading listener in mode (rst, goaway) and asserts the
 * check passed saying needles; Exchange saw the type 3 on HTTP/1.1. */
static void h2_downgrade(const char *mode, const char *const *needles)
{
  struct h2_iis s;
  struct h2_probe p;

  h2_iis_start(&s, mode);
  h2_probe(s.url, s.status, s.ca, true, &p);
  h2_iis_stop(&s);
  ck_assert_msg(p.out.status == 0, "exit %d: %s", p.out.status, p.out.out.data);
  h2_assert(&p, "pass", needles);
  ck_assert(!h2_found(&p, "ntlm-over-http2"));
  h2_probe_free(&p);
}

/* RST_STREAM HTTP_1_1_REQUIRED: libcurl retries the type 1 on HTTP/1.1
 * itself, and the handshake ends there. */
START_TEST(downgrade_rst_stream)
{
  static const char *const said[] = {
      "the type 1 on an HTTP/2 stream with RST_STREAM HTTP_1_1_REQUIRED",
      "libcurl retried it on HTTP/1.1",
      "the type 3 with the body got HTTP 200 on HTTP/1.1", NULL};

  if(!proc_have(PYTHON_H2))
    return;
  h2_downgrade("rst", said);
}
END_TEST

/* GOAWAY HTTP_1_1_REQUIRED: libcurl 7.88 gives the request up ("Error in
 * the HTTP2 framing layer"); the probe retries on HTTP/1.1 as a client
 * must. */
START_TEST(downgrade_goaway)
{
  static const char *const said[] = {
      "the type 1 on an HTTP/2 stream with GOAWAY HTTP_1_1_REQUIRED",
      "the probe retried it on HTTP/1.1",
      "the type 3 with the body got HTTP 200 on HTTP/1.1", NULL};

  if(!proc_have(PYTHON_H2))
    return;
  h2_downgrade("goaway", said);
}
END_TEST

/* ---- nginx (examples/nginx) -------------------------------------------- */

/* The rest of the line of text that starts with prefix, into out. */
static void h2_line(const char *text, const char *prefix, char *out, size_t len)
{
  const char *at = strstr(text, prefix);

  ck_assert_msg(at != NULL, "no '%s' in: %s", prefix, text);
  at += strlen(prefix);
  snprintf(out, len, "%.*s", (int)strcspn(at, "\n"), at);
}

/* Starts examples/nginx with mode (--http2, --tls), probes it with both
 * users, Exchange's status and its CA into *p, and stops it. */
static void h2_nginx(const char *mode, struct h2_probe *p)
{
  char start[300], stop[512], url[128], status[128], ca[300];
  struct proc_out o;

  snprintf(start, sizeof(start), "%s/examples/nginx/start", SOURCE_DIR);
  {
    char *const argv[] = {start, (char *)mode, (char *)KBSIM_BIN, NULL};
    proc_run(argv, &o);
  }
  ck_assert_msg(o.status == 0, "start %s: %s%s", mode, o.out.data, o.err.data);
  h2_line(o.out.data, "listener: ", url, sizeof(url));
  h2_line(o.out.data, "exchange status: ", status, sizeof(status));
  h2_line(o.out.data, "--ca-file ", ca, sizeof(ca));
  h2_line(o.out.data, "stop: ", stop, sizeof(stop));
  proc_free(&o);
  ck_assert_msg(!strncmp(url, "https://127.0.0.1:", 18), "%s", url);
  h2_probe(url, status, ca, true, p);
  {
    char *const argv[] = {"/bin/sh", "-c", stop, NULL};
    proc_run(argv, &o);
  }
  ck_assert_msg(o.status == 0, "stop: %s", o.err.data);
  proc_free(&o);
}

/* nginx with `listen ... ssl http2` passes the type 1 on an HTTP/2 stream
 * to Exchange and its challenge back: NTLM over HTTP/2, named beside the
 * mixing its keepalive pool does anyway; the JUnit says it failed. */
START_TEST(nginx_http2_lets_ntlm_through)
{
  static const char *const through[] = {
      "NTLM let through on HTTP/2",
      "the type 1 on an HTTP/2 stream got a 401 with a type 2", NULL};
  struct h2_probe p;
  char *xml;

  if(!proc_have(NGINX))
    return;
  h2_nginx("--http2", &p);
  ck_assert_msg(p.out.status == 1, "exit %d: %s", p.out.status, p.out.out.data);
  h2_assert(&p, "fail", through);
  ck_assert(h2_found(&p, "ntlm-over-http2"));
  ck_assert(h2_found(&p, "mixes-identities"));
  ck_assert_ptr_nonnull(strstr(p.out.out.data, "fail  http2 "));
  xml = proc_slurp(p.junit, NULL);
  ck_assert_ptr_nonnull(xml);
  {
    const char *tc = strstr(xml, "<testcase name=\"http2\"");
    ck_assert_ptr_nonnull(tc);
    ck_assert_ptr_nonnull(strstr(tc, "<failure message=\"NTLM let through"));
  }
  free(xml);
  h2_probe_free(&p);
}
END_TEST

/* nginx on TLS without `http2`: h2 refused in ALPN, fine; only its pool's
 * mixing is found. */
START_TEST(nginx_tls_refuses_h2)
{
  static const char *const refused[] = {"refused h2 in ALPN",
                                        "it chose http/1.1", NULL};
  struct h2_probe p;

  if(!proc_have(NGINX))
    return;
  h2_nginx("--tls", &p);
  ck_assert_msg(p.out.status == 1, "exit %d: %s", p.out.status, p.out.out.data);
  h2_assert(&p, "pass", refused);
  ck_assert(!h2_found(&p, "ntlm-over-http2"));
  ck_assert(h2_found(&p, "mixes-identities"));
  h2_probe_free(&p);
}
END_TEST

static Suite *http2_suite(void)
{
  Suite *s = suite_create("http2");
  TCase *t = tcase_create("listeners");

  tcase_set_timeout(t, 60);
  tcase_add_test(t, own_listener_refuses_h2);
  tcase_add_test(t, plain_http_not_run);
  tcase_add_test(t, downgrade_rst_stream);
  tcase_add_test(t, downgrade_goaway);
  suite_add_tcase(s, t);
  t = tcase_create("nginx");
  tcase_set_timeout(t, 90);
  tcase_set_tags(t, KBT_SLOW);
  tcase_add_test(t, nginx_http2_lets_ntlm_through);
  tcase_add_test(t, nginx_tls_refuses_h2);
  suite_add_tcase(s, t);
  return s;
}

int main(void)
{
  bool skipped = false;
  int failed;

  proc_whole_lines();
  failed = kbt_run(http2_suite());
  skipped |= proc_skip_unless(PYTHON_H2,
                              "downgrade_rst_stream, "
                              "downgrade_goaway",
                              "apt-get install python3-h2");
  skipped |= proc_skip_unless(NGINX,
                              "nginx_http2_lets_ntlm_through, "
                              "nginx_tls_refuses_h2",
                              "apt-get install nginx");
  return proc_suite_exit(failed, skipped);
}
