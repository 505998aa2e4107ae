/*
 * test_probe.c - `kbsim probe` and `kbsim exchange` (issue 18): the probe
 * classifies real listeners on loopback. kbsim's own ISA listener under
 * both policies (per-connection: KB 942638's bug; per-request: not
 * affected), Exchange alone with its own NTLM (IIS), Basic and anonymous
 * listeners, a port nobody listens on; Exchange's identity bookkeeping
 * (a mailbox given to another identity is counted); and the real Squid
 * 5 with Samba's ntlm_auth (examples/squid), judged by the CLI, its JSON
 * read back with jansson and its JUnit with libxml2; and nginx and Apache
 * httpd passing NTLM through their pools of upstream connections
 * (examples/nginx, examples/apache --pass-through), which mix identities.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "kbt_env.h"
#include "probe/probe.h"
#include "proc.h"
#include "proxy/proxy.h"
#include "rc.h"

static const char *const alice = "FABRIKAM\\alice:" KBT_ALICE_PASSWORD;
static const char *const bob = "FABRIKAM\\bob:" KBT_BOB_PASSWORD;
static const struct probe_user users[] = {
    {"FABRIKAM", "alice", KBT_ALICE_PASSWORD},
    {"FABRIKAM", "bob", KBT_BOB_PASSWORD}};

static void assert_schema(const char *path);

/* Exchange (status on, authenticating as exchange_auth says) and, unless
 * listener_auth is -1, kbsim's listener in front of it (kbt_env.h): e->url
 * is what the probe talks to. */
static void topology_start(struct kbt_env *e, enum backend_auth exchange_auth,
                           int listener_auth, enum proxy_policy policy)
{
  struct backend_config bc;
  struct proxy_config pc;
  struct kbt_env_opts o;

  memset(&bc, 0, sizeof(bc));
  bc.auth = exchange_auth;
  bc.status = true;
  memset(&pc, 0, sizeof(pc));
  pc.policy = policy;
  pc.auth = (enum proxy_auth)listener_auth;
  memset(&o, 0, sizeof(o));
  o.exchange = &bc;
  o.listener = &pc;
  o.no_listener = listener_auth < 0;
  kbt_env_start(e, &o);
}

/* Exchange's status URL in e (into out). */
static const char *status_url(const struct kbt_env *e, char *out, size_t len)
{
  snprintf(out, len, "%s/kbsim/status", e->backend_url);
  return out;
}

/* Probes url with the first nusers users and, unless NULL, Exchange's
 * status at status. */
static void probe_url(const char *url, size_t nusers, const char *status,
                      struct probe_report *rep)
{
  struct probe_config cfg;
  char err[256];

  memset(&cfg, 0, sizeof(cfg));
  cfg.url = url;
  cfg.users = users;
  cfg.nusers = nusers;
  cfg.status_url = status;
  ck_assert_msg(probe_run(&cfg, rep, err, sizeof(err)) == 0, "%s", err);
}

/* Probes e, with Exchange's status when status is set. */
static void probe(const struct kbt_env *e, size_t nusers, bool status,
                  struct probe_report *rep)
{
  char st[160];

  probe_url(e->url, nusers, status ? status_url(e, st, sizeof(st)) : NULL, rep);
}

/* Asserts the first six verdicts, in probe.h's order (the defect checks
 * after them: tests/test_probe_defects.c). */
#define ASSERT_VERDICTS(rep, o, c, ol, os, two, wrong)                         \
  do {                                                                         \
    const enum probe_verdict want[6] = {o, c, ol, os, two, wrong};             \
    int i_;                                                                    \
    for(i_ = 0; i_ < 6; i_++)                                                  \
      ck_assert_msg((rep)->checks[i_].verdict == want[i_],                     \
                    "%s: %s, not %s: %s",                                      \
                    probe_check_name((enum probe_check)i_),                    \
                    probe_verdict_name((rep)->checks[i_].verdict),             \
                    probe_verdict_name(want[i_]), (rep)->checks[i_].line);     \
  } while(0)

/* ISA 2006 as shipped: the bug, seen by the client and by Exchange. */
START_TEST(test_isa_per_connection)
{
  struct kbt_env e;
  struct probe_report rep;

  topology_start(&e, BACKEND_AUTH_NONE, PROXY_AUTH_INTEGRATED,
                 PROXY_POLICY_PER_CONNECTION);
  probe(&e, 2, true, &rep);
  ASSERT_VERDICTS(&rep, PROBE_PASS, PROBE_FAIL, PROBE_PASS, PROBE_PASS,
                  PROBE_PASS, PROBE_PASS);
  ck_assert_int_eq(rep.offer, PROBE_OFFER_NTLM);
  ck_assert_int_eq(rep.cls, PROBE_CLASS_KB942638);
  ck_assert_int_eq(probe_class_exit(rep.cls), 1);
  /* Every one of the 3 EWS POSTs after autodiscover went body-less. */
  ck_assert(rep.checks[PROBE_CHECK_COMMUNICATOR].exchange.known);
  ck_assert_uint_eq(rep.checks[PROBE_CHECK_COMMUNICATOR].exchange.empty_posts,
                    3);
  ck_assert(rep.checks[PROBE_CHECK_COMMUNICATOR].integration_error);
  ck_assert_uint_eq(rep.checks[PROBE_CHECK_OUTLOOK].exchange.empty_posts, 0);
  ck_assert_str_eq(rep.checks[PROBE_CHECK_OUTLOOK].exchange.identities[0],
                   "FABRIKAM\\alice");
  ck_assert_uint_eq(rep.checks[PROBE_CHECK_TWO_USERS].exchange.mismatches, 0);
  kbt_env_stop(&e);
}
END_TEST

/* KB 942638 applied. */
START_TEST(test_isa_per_request)
{
  struct kbt_env e;
  struct probe_report rep;

  topology_start(&e, BACKEND_AUTH_NONE, PROXY_AUTH_INTEGRATED,
                 PROXY_POLICY_PER_REQUEST);
  probe(&e, 2, true, &rep);
  ASSERT_VERDICTS(&rep, PROBE_PASS, PROBE_PASS, PROBE_PASS, PROBE_PASS,
                  PROBE_PASS, PROBE_PASS);
  ck_assert_int_eq(rep.cls, PROBE_CLASS_NOT_AFFECTED);
  ck_assert_int_eq(probe_class_exit(rep.cls), 0);
  ck_assert_uint_eq(rep.checks[PROBE_CHECK_COMMUNICATOR].exchange.empty_posts,
                    0);
  ck_assert_uint_eq(rep.checks[PROBE_CHECK_COMMUNICATOR].posts_ok, 4);
  ck_assert_str_eq(rep.checks[PROBE_CHECK_COMMUNICATOR].exchange.identities[0],
                   "FABRIKAM\\alice");
  kbt_env_stop(&e);
}
END_TEST

/* Without Exchange's status the bug is still found, from the client's
 * 500; the two-user check says what it needs. */
START_TEST(test_without_status)
{
  struct kbt_env e;
  struct probe_report rep;

  topology_start(&e, BACKEND_AUTH_NONE, PROXY_AUTH_INTEGRATED,
                 PROXY_POLICY_PER_CONNECTION);
  probe(&e, 1, false, &rep);
  ASSERT_VERDICTS(&rep, PROBE_PASS, PROBE_FAIL, PROBE_PASS, PROBE_PASS,
                  PROBE_SKIP, PROBE_PASS);
  ck_assert(!rep.checks[PROBE_CHECK_COMMUNICATOR].exchange.known);
  ck_assert_int_eq(rep.cls, PROBE_CLASS_KB942638);
  ck_assert_ptr_nonnull(
      strstr(rep.checks[PROBE_CHECK_TWO_USERS].line, "--user twice"));
  kbt_env_stop(&e);
}
END_TEST

/* Exchange alone with its own NTLM, as IIS: a type 1 always gets a new
 * challenge, so nothing body-less reaches EWS. */
START_TEST(test_exchange_integrated)
{
  struct kbt_env e;
  struct probe_report rep;
  struct backend_stats s;

  topology_start(&e, BACKEND_AUTH_INTEGRATED, -1, PROXY_POLICY_PER_CONNECTION);
  probe(&e, 2, true, &rep);
  ASSERT_VERDICTS(&rep, PROBE_PASS, PROBE_PASS, PROBE_PASS, PROBE_PASS,
                  PROBE_PASS, PROBE_PASS);
  ck_assert_int_eq(rep.cls, PROBE_CLASS_NOT_AFFECTED);
  backend_stats(e.be, &s);
  ck_assert_uint_eq(s.empty_posts, 0);
  ck_assert_uint_eq(s.mismatches, 0);
  ck_assert_uint_gt(s.challenges, 0);
  ck_assert_uint_gt(s.refused, 0); /* the wrong password, the offers */
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_basic_and_anonymous)
{
  struct kbt_env e;
  struct probe_report rep;

  topology_start(&e, BACKEND_AUTH_NONE, PROXY_AUTH_BASIC,
                 PROXY_POLICY_PER_CONNECTION);
  probe(&e, 2, true, &rep);
  ck_assert_int_eq(rep.offer, PROBE_OFFER_BASIC);
  ck_assert_int_eq(rep.checks[PROBE_CHECK_COMMUNICATOR].verdict, PROBE_PASS);
  ck_assert_int_eq(rep.checks[PROBE_CHECK_OUTLOOK].verdict, PROBE_SKIP);
  ck_assert_int_eq(rep.checks[PROBE_CHECK_WRONG_PASSWORD].verdict, PROBE_PASS);
  ck_assert_int_eq(rep.cls, PROBE_CLASS_BASIC_ANONYMOUS);
  ck_assert_int_eq(probe_class_exit(rep.cls), 0);
  kbt_env_stop(&e);

  topology_start(&e, BACKEND_AUTH_NONE, PROXY_AUTH_NONE,
                 PROXY_POLICY_PER_CONNECTION);
  probe(&e, 2, true, &rep);
  ck_assert_int_eq(rep.offer, PROBE_OFFER_ANONYMOUS);
  ck_assert_int_eq(rep.checks[PROBE_CHECK_COMMUNICATOR].verdict, PROBE_PASS);
  ck_assert_int_eq(rep.checks[PROBE_CHECK_WRONG_PASSWORD].verdict, PROBE_FAIL);
  ck_assert_int_eq(rep.cls, PROBE_CLASS_BASIC_ANONYMOUS);
  kbt_env_stop(&e);
}
END_TEST

/* A port nobody listens on: could not be probed (3), never "affected". */
START_TEST(test_unreachable)
{
  struct probe_report rep;
  char url[64];
  uint16_t port;
  /* Bound, not listening: connections are refused (rc.h). */
  int fd = rc_loopback(false, &port);

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  probe_url(url, 1, NULL, &rep);
  close(fd);
  ck_assert_int_eq(rep.checks[PROBE_CHECK_OFFER].verdict, PROBE_ERROR);
  ck_assert_int_eq(rep.cls, PROBE_CLASS_UNPROBED);
  ck_assert_int_eq(probe_class_exit(rep.cls), 3);
  {
    struct probe_config cfg;
    char path[] = "/tmp/kbsim-probe-XXXXXX";
    char err[256] = "";
    int tfd = mkstemp(path);
    ck_assert_int_ge(tfd, 0);
    close(tfd);
    memset(&cfg, 0, sizeof(cfg));
    cfg.url = url;
    cfg.users = users;
    cfg.nusers = 1;
    ck_assert_msg(probe_write_json(&cfg, &rep, path, err, sizeof(err)) == 0,
                  "%s", err);
    assert_schema(path);
    unlink(path);
  }
}
END_TEST

static size_t sink(char *d, size_t s, size_t n, void *cls)
{
  return kb_buf_add(cls, d, s * n) == KB_BUF_OK ? s * n : 0;
}

/* POSTs body to url with an Authorization header; returns the status. */
static long post(const char *url, const char *auth, const char *body)
{
  CURL *c = curl_easy_init();
  struct curl_slist *h = NULL;
  struct kb_buf out;
  char line[256];
  long code = 0;

  kb_buf_init(&out, 1 << 20);
  snprintf(line, sizeof(line), "Authorization: %s", auth);
  h = curl_slist_append(h, line);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  kb_buf_free(&out);
  return code;
}

/* Exchange trusting what reaches it counts alice's mailbox given to bob's
 * identity: the mixing the two-user check looks for. */
START_TEST(test_exchange_counts_mismatch)
{
  static const char ad[] =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover "
      "xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/"
      "requestschema/2006\"><Request><EMailAddress>alice@fabrikam.com</"
      "EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/"
      "exchange/autodiscover/outlook/responseschema/2006a</"
      "AcceptableResponseSchema></Request></Autodiscover>";
  struct kbt_env e;
  struct backend_stats s;
  struct backend_conn_info info[4];
  char url[192];
  size_t n;

  topology_start(&e, BACKEND_AUTH_NONE, -1, PROXY_POLICY_PER_CONNECTION);
  snprintf(url, sizeof(url), "%s/autodiscover/autodiscover.xml", e.url);
  /* "FABRIKAM\alice:x", then "FABRIKAM\bob:x", in Basic. */
  ck_assert_int_eq(post(url, "Basic RkFCUklLQU1cYWxpY2U6eA==", ad), 200);
  backend_stats(e.be, &s);
  ck_assert_uint_eq(s.mismatches, 0);
  ck_assert_int_eq(post(url, "Basic RkFCUklLQU1cYm9iOng=", ad), 200);
  backend_stats(e.be, &s);
  ck_assert_uint_eq(s.mismatches, 1);
  n = backend_connections(e.be, info, 4);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(info[1].identities[0], "FABRIKAM\\bob");
  ck_assert_str_eq(info[1].last_mismatch,
                   "alice@fabrikam.com served as FABRIKAM\\bob");
  /* A name that is not UTF-8 (FABRIKAM\ève in Latin-1: byte 0xE9) keeps the
   * status document whole, its byte written out. */
  ck_assert_int_eq(post(url, "Basic RkFCUklLQU1c6XZlOng=", ad), 200);
  {
    char *text = backend_status_json(e.be);
    json_error_t jerr;
    json_t *doc, *conns, *ids;

    ck_assert_ptr_nonnull(text);
    doc = json_loads(text, 0, &jerr);
    ck_assert_msg(doc != NULL, "%s: %s", jerr.text, text);
    conns = json_object_get(doc, "per_connection");
    ck_assert_uint_eq(json_array_size(conns), 3);
    ids = json_object_get(json_array_get(conns, 2), "identities");
    ck_assert_str_eq(json_string_value(json_array_get(ids, 0)),
                     "FABRIKAM\\\\xe9ve");
    json_decref(doc);
    free(text);
  }
  kbt_env_stop(&e);
}
END_TEST

/* One request by libcurl: method, url, an NTLM login (libcurl's own NTLM,
 * a third-party implementation) or none; the body into *body when given,
 * the number of WWW-Authenticate headers into *offers. Returns the
 * status. */
struct fetched {
  struct kb_buf body;
  unsigned offers;
};

static size_t count_offers(char *d, size_t s, size_t n, void *cls)
{
  struct fetched *f = cls;
  if(s * n > 17 && !strncasecmp(d, "WWW-Authenticate:", 17))
    f->offers++;
  return s * n;
}

static long fetch(const char *url, const char *ntlm_login, const char *body,
                  struct fetched *f)
{
  CURL *c = curl_easy_init();
  long code = 0;

  kb_buf_init(&f->body, 1 << 22);
  f->offers = 0;
  curl_easy_setopt(c, CURLOPT_URL, url);
  if(body)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  if(ntlm_login) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_NTLM);
    curl_easy_setopt(c, CURLOPT_USERPWD, ntlm_login);
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &f->body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, count_offers);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  ck_assert_int_eq(kb_buf_add(&f->body, "", 1), KB_BUF_OK);
  return code;
}

/* Exchange's own NTLM against libcurl's, and its status document. */
START_TEST(test_exchange_gate_and_status)
{
  static const char ad[] =
      "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover "
      "xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/"
      "requestschema/2006\"><Request><EMailAddress>alice@fabrikam.com</"
      "EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/"
      "exchange/autodiscover/outlook/responseschema/2006a</"
      "AcceptableResponseSchema></Request></Autodiscover>";
  struct kbt_env e;
  struct fetched f;
  struct backend_stats st;
  char url[192], st_url[160];
  json_t *doc, *conns;
  size_t i;
  bool alice_seen = false;

  topology_start(&e, BACKEND_AUTH_INTEGRATED, -1, PROXY_POLICY_PER_CONNECTION);
  snprintf(url, sizeof(url), "%s/autodiscover/autodiscover.xml", e.url);
  /* No credentials: IIS's offer, Negotiate then NTLM. */
  ck_assert_int_eq(fetch(url, NULL, ad, &f), 401);
  ck_assert_uint_eq(f.offers, 2);
  kb_buf_free(&f.body);
  /* libcurl's NTLM signs in; a wrong password does not. */
  ck_assert_int_eq(fetch(url, alice, ad, &f), 200);
  ck_assert_ptr_nonnull(strstr(f.body.data, "Exchange.asmx"));
  kb_buf_free(&f.body);
  ck_assert_int_eq(fetch(url, "FABRIKAM\\alice:wrong", ad, &f), 401);
  kb_buf_free(&f.body);
  backend_stats(e.be, &st);
  ck_assert_uint_eq(st.autodiscover_ok, 1);
  ck_assert_uint_eq(st.challenges, 2);
  ck_assert_uint_eq(st.mismatches, 0);
  /* The status, read twice: reading it is not counted. */
  status_url(&e, st_url, sizeof(st_url));
  ck_assert_int_eq(fetch(st_url, NULL, NULL, &f), 200);
  kb_buf_free(&f.body);
  ck_assert_int_eq(fetch(st_url, NULL, NULL, &f), 200);
  doc = json_loads(f.body.data, 0, NULL);
  kb_buf_free(&f.body);
  ck_assert_ptr_nonnull(doc);
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "requests")),
                   (json_int_t)st.requests);
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "empty_posts")), 0);
  conns = json_object_get(doc, "per_connection");
  ck_assert(json_is_array(conns));
  for(i = 0; i < json_array_size(conns); i++) {
    json_t *ids = json_object_get(json_array_get(conns, i), "identities");
    if(json_array_size(ids) == 1 &&
       !strcmp(json_string_value(json_array_get(ids, 0)), "FABRIKAM\\alice"))
      alice_seen = true;
  }
  ck_assert(alice_seen);
  json_decref(doc);
  kbt_env_stop(&e);

  /* Without config.status the path is unknown, as on a real IIS. */
  {
    struct backend_config bc;
    struct backend *b;
    char err[256];
    memset(&bc, 0, sizeof(bc));
    ck_assert_int_eq(backend_start(&bc, &b, err, sizeof(err)), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/kbsim/status",
             (unsigned)backend_port(b));
    ck_assert_int_eq(fetch(url, NULL, NULL, &f), 404);
    kb_buf_free(&f.body);
    backend_stop(b);
  }
}
END_TEST

/* python3-jsonschema checks the report at path against
 * probe/report.schema.json. */
static void assert_schema(const char *path)
{
  proc_assert_schema(SOURCE_DIR "/probe/report.schema.json",
                     (const char *const[]){path, NULL});
}

/* ---- the real Squid ---------------------------------------------------- */

/* The value after "prefix" on a line of text, into out. */
static void line_after(const char *text, const char *prefix, char *out,
                       size_t len)
{
  const char *p = strstr(text, prefix);
  ck_assert_msg(p != NULL, "no '%s' in: %s", prefix, text);
  p += strlen(prefix);
  snprintf(out, len, "%.*s", (int)strcspn(p, "\n"), p);
}

/* One examples/squid setup, started and probed. */
struct squid_run {
  const char *example; /* "squid", "apache" */
  char dir[256];       /* start's temporary directory, for stop */
  char jpath[300];     /* the probe's JSON report */
  char xpath[300];     /* the probe's JUnit report */
  struct proc_out q;   /* the probe's output and exit status */
  json_t *status;      /* Exchange's status after the probe (owned) */
};

/* Starts examples/<example> (with mode, "" or "--pass-through") and
 * probes it with the CLI (JSON and JUnit too) into *r. */
static void squid_up(const char *example, const char *mode, struct squid_run *r)
{
  char start[512], stop[512], url[128], status[128], jarg[310], xarg[310];
  struct proc_out p;

  snprintf(start, sizeof(start), "%s/examples/%s/start", SOURCE_DIR, example);
  {
    char *const with[] = {start, (char *)mode, (char *)KBSIM_BIN, NULL};
    char *const without[] = {start, (char *)KBSIM_BIN, NULL};
    proc_run(*mode ? with : without, &p);
  }
  ck_assert_msg(p.status == 0, "start: %s%s", p.out.data, p.err.data);
  line_after(p.out.data, "listener: ", url, sizeof(url));
  line_after(p.out.data, "exchange status: ", status, sizeof(status));
  line_after(p.out.data, "stop: ", stop, sizeof(stop));
  snprintf(r->dir, sizeof(r->dir), "%s", strrchr(stop, ' ') + 1);
  r->example = example;
  snprintf(r->jpath, sizeof(r->jpath), "%s.json", r->dir);
  snprintf(r->xpath, sizeof(r->xpath), "%s.xml", r->dir);
  snprintf(jarg, sizeof(jarg), "--json=%s", r->jpath);
  snprintf(xarg, sizeof(xarg), "--junit=%s", r->xpath);
  {
    char *const argv[] = {(char *)KBSIM_BIN,
                          "probe",
                          url,
                          "--user",
                          "FABRIKAM\\alice:Passw0rd!",
                          "--user",
                          "FABRIKAM\\bob:Passw0rd!",
                          "--exchange-status",
                          status,
                          jarg,
                          xarg,
                          NULL};
    proc_run(argv, &r->q);
  }
  {
    struct fetched f;
    ck_assert_int_eq(fetch(status, NULL, NULL, &f), 200);
    r->status = json_loads(f.body.data, 0, NULL);
    ck_assert_ptr_nonnull(r->status);
    kb_buf_free(&f.body);
  }
  proc_free(&p);
}

/* Stops the n setups at once (Squid takes about 3 s to exit). */
static void squid_down(struct squid_run *r, size_t n)
{
  pid_t pid[3];
  int out[3], err[3];

  ck_assert_uint_le(n, 3);
  size_t i;

  for(i = 0; i < n; i++) {
    char stop[512];
    char *const argv[] = {stop, r[i].dir, NULL};
    snprintf(stop, sizeof(stop), "%s/examples/%s/stop", SOURCE_DIR,
             r[i].example);
    pid[i] = proc_spawn(argv, &out[i], &err[i]);
  }
  for(i = 0; i < n; i++) {
    struct proc_out s;
    proc_collect(pid[i], out[i], err[i], &s);
    ck_assert_msg(s.status == 0, "stop: %s", s.err.data);
    proc_free(&s);
  }
}

/* Releases what squid_up kept of the n setups. */
static void squid_free(struct squid_run *r, size_t n)
{
  size_t i;

  for(i = 0; i < n; i++) {
    unlink(r[i].jpath);
    unlink(r[i].xpath);
    proc_free(&r[i].q);
    json_decref(r[i].status);
  }
}

/* The real Squid both ways, at once: with ntlm_auth in front of a
 * trusting Exchange, and passing NTLM through to Exchange's own; and
 * Apache httpd with Basic when installed. */
START_TEST(test_squid)
{
  struct squid_run r[3];
  bool apache =
      proc_have("/usr/sbin/apache2") && proc_have("/usr/bin/htpasswd");
  json_t *doc;
  xmlDocPtr x;
  xmlXPathContextPtr xc;
  xmlXPathObjectPtr failures;

  if(!proc_have("/usr/sbin/squid") || !proc_have("/usr/bin/ntlm_auth"))
    return;
  squid_up("squid", "", &r[0]);
  squid_up("squid", "--pass-through", &r[1]);
  if(apache)
    squid_up("apache", "", &r[2]);
  squid_down(r, apache ? 3 : 2);

  /* What Squid 5.7 does with ntlm_auth (examples/squid/README.md): it
   * keeps the connection's NTLM identity and forwards the body-less type 1
   * POST. */
  ck_assert_msg(r[0].q.status == 1, "probe exit %d: %s%s", r[0].q.status,
                r[0].q.out.data, r[0].q.err.data);
  ck_assert_ptr_nonnull(strstr(
      r[0].q.out.data, "Class: keeps the connection's context and forwards "
                       "the body-less POST (KB 942638's bug)\n"));
  ck_assert_ptr_nonnull(strstr(r[0].q.out.data, "fail  communicator "));
  ck_assert_ptr_nonnull(strstr(r[0].q.out.data, "pass  wrong-password "));
  ck_assert_ptr_nonnull(strstr(r[0].q.out.data, "pass  two-users "));
  assert_schema(r[0].jpath);
  doc = json_load_file(r[0].jpath, 0, NULL);
  ck_assert_ptr_nonnull(doc);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "class")),
                   "kb942638");
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "exit_code")), 1);
  ck_assert_int_eq(
      json_integer_value(json_object_get(
          json_object_get(json_array_get(json_object_get(doc, "checks"), 1),
                          "exchange"),
          "empty_posts")),
      3);
  json_decref(doc);
  x = xmlReadFile(r[0].xpath, NULL, XML_PARSE_NONET);
  ck_assert_ptr_nonnull(x);
  xc = xmlXPathNewContext(x);
  failures = xmlXPathEvalExpression(BAD_CAST "//testcase[failure]/@name", xc);
  ck_assert_ptr_nonnull(failures);
  ck_assert_int_eq(failures->nodesetval ? failures->nodesetval->nodeNr : 0, 1);
  ck_assert_str_eq(
      (const char *)failures->nodesetval->nodeTab[0]->children->content,
      "communicator");
  xmlXPathFreeObject(failures);
  xmlXPathFreeContext(xc);
  xmlFreeDoc(x);

  /* Passing NTLM through: Squid pins the upstream connection to the
   * client's, Exchange challenges every type 1 itself, so nothing
   * body-less reaches EWS. */
  ck_assert_msg(r[1].q.status == 0, "probe exit %d: %s%s", r[1].q.status,
                r[1].q.out.data, r[1].q.err.data);
  ck_assert_ptr_nonnull(strstr(
      r[1].q.out.data, "Class: re-authenticates every POST (not affected)\n"));
  ck_assert_ptr_nonnull(strstr(r[1].q.out.data, "pass  two-users "));
  assert_schema(r[1].jpath);
  doc = json_load_file(r[1].jpath, 0, NULL);
  ck_assert_ptr_nonnull(doc);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "class")),
                   "not-affected");
  ck_assert_int_eq(
      json_integer_value(json_object_get(
          json_object_get(json_array_get(json_object_get(doc, "checks"), 1),
                          "exchange"),
          "empty_posts")),
      0);
  json_decref(doc);

  /* Apache httpd with Basic (Debian has no NTLM module for it): no
   * connection-bound authentication, so no KB 942638; it shares upstream
   * connections between users, but each request names its user. */
  if(apache) {
    ck_assert_msg(r[2].q.status == 0, "probe exit %d: %s%s", r[2].q.status,
                  r[2].q.out.data, r[2].q.err.data);
    ck_assert_ptr_nonnull(
        strstr(r[2].q.out.data, "Class: Basic / anonymous\n"));
    ck_assert_ptr_nonnull(strstr(r[2].q.out.data, "pass  communicator "));
    ck_assert_ptr_nonnull(strstr(r[2].q.out.data, "pass  two-users "));
    ck_assert_ptr_nonnull(strstr(r[2].q.out.data, "pass  wrong-password "));
    assert_schema(r[2].jpath);
  }
  squid_free(r, apache ? 3u : 2u);
}
END_TEST

/* The check named name in a probe's JSON report doc. */
static json_t *report_check(json_t *doc, const char *name)
{
  json_t *checks = json_object_get(doc, "checks");
  size_t i;

  for(i = 0; i < json_array_size(checks); i++) {
    json_t *c = json_array_get(checks, i);
    if(!strcmp(json_string_value(json_object_get(c, "name")), name))
      return c;
  }
  ck_abort_msg("no check %s in the report", name);
  return NULL;
}

/* Asserts what a listener that pools upstream connections across clients
 * does to the probe's two users (r: its run): the second user's session,
 * on its own client connection after the first user's had finished, is
 * served on Exchange connection 1 as the first user, who had authenticated
 * it; Exchange's own status says the same. */
static void assert_mixes(const struct squid_run *r)
{
  json_t *doc, *two, *ex, *mixed, *conns, *c1 = NULL;
  size_t i, used = 0;

  ck_assert_msg(r->q.status == 1, "%s: probe exit %d: %s%s", r->dir,
                r->q.status, r->q.out.data, r->q.err.data);
  ck_assert_ptr_nonnull(
      strstr(r->q.out.data, "Class: mixes identities across clients\n"));
  assert_schema(r->jpath);
  doc = json_load_file(r->jpath, 0, NULL);
  ck_assert_ptr_nonnull(doc);
  ck_assert_str_eq(json_string_value(json_object_get(doc, "class")),
                   "mixes-identities");
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "exit_code")), 1);
  /* Exchange challenges every type 1 itself: no KB 942638 here. */
  ck_assert_str_eq(json_string_value(json_object_get(
                       report_check(doc, "communicator"), "verdict")),
                   "pass");
  two = report_check(doc, "two-users");
  ck_assert_str_eq(json_string_value(json_object_get(two, "verdict")), "fail");
  ex = json_object_get(two, "exchange");
  /* bob's autodiscover and his two GetUserOofSettings, all as alice. */
  ck_assert_int_eq(json_integer_value(json_object_get(ex, "mismatches")), 3);
  mixed = json_object_get(ex, "mixed");
  ck_assert_int_eq(json_integer_value(json_object_get(mixed, "connection")), 1);
  ck_assert_str_eq(json_string_value(json_object_get(mixed, "mailbox")),
                   "bob@fabrikam.com");
  ck_assert_str_eq(json_string_value(json_object_get(mixed, "identity")),
                   "FABRIKAM\\alice");
  ck_assert(json_is_true(json_object_get(mixed, "reused")));
  /* The password never went out: the pooled connection served it. */
  ck_assert_str_eq(json_string_value(json_object_get(
                       report_check(doc, "wrong-password"), "verdict")),
                   "fail");
  json_decref(doc);

  /* Exchange's view: the listener sent everything over one upstream
   * connection, authenticated by alice alone, which answered bob's
   * mailbox to her. */
  conns = json_object_get(r->status, "per_connection");
  for(i = 0; i < json_array_size(conns); i++) {
    json_t *c = json_array_get(conns, i);
    if(json_integer_value(json_object_get(c, "requests")) > 0)
      used++;
    if(json_integer_value(json_object_get(c, "id")) == 1)
      c1 = c;
  }
  ck_assert_uint_eq(used, 1);
  ck_assert_ptr_nonnull(c1);
  ck_assert_int_eq(json_integer_value(json_object_get(c1, "mismatches")), 3);
  ck_assert_uint_eq(json_array_size(json_object_get(c1, "identities")), 1);
  ck_assert_str_eq(
      json_string_value(json_array_get(json_object_get(c1, "identities"), 0)),
      "FABRIKAM\\alice");
  ck_assert_str_eq(
      json_string_value(json_object_get(c1, "last_mismatch_mailbox")),
      "bob@fabrikam.com");
  ck_assert_str_eq(
      json_string_value(json_object_get(c1, "last_mismatch_identity")),
      "FABRIKAM\\alice");
  ck_assert_int_eq(json_integer_value(json_object_get(r->status, "mismatches")),
                   3);
}

/* nginx and Apache httpd passing NTLM through to Exchange's own, each
 * with its pool of kept-alive upstream connections
 * (examples/nginx/README.md, examples/apache/README.md): both mix
 * identities. */
START_TEST(test_pooling_listeners)
{
  struct squid_run r[2];
  size_t n = 0;

  if(proc_have("/usr/sbin/nginx"))
    squid_up("nginx", "", &r[n++]);
  if(proc_have("/usr/sbin/apache2"))
    squid_up("apache", "--pass-through", &r[n++]);
  squid_down(r, n);
  for(size_t i = 0; i < n; i++)
    assert_mixes(&r[i]);
  squid_free(r, n);
}
END_TEST

/* ---- the commands' arguments ------------------------------------------ */

/* Runs argv: a usage error (proc_usage_error) whose message holds
 * needle. */
static void run_cli(char *const argv[], const char *needle)
{
  struct proc_out p;
  const char *why;

  proc_run(argv, &p);
  why = proc_usage_error(&p);
  ck_assert_msg(!why, "%s %s: %s:\n%s", argv[1], argv[2] ? argv[2] : "", why,
                p.err.data);
  ck_assert_msg(strstr(p.err.data, needle) != NULL, "no '%s' in: %s", needle,
                p.err.data);
  proc_free(&p);
}

START_TEST(test_cli_errors)
{
  {
    char *const argv[] = {(char *)KBSIM_BIN, "probe", NULL};
    run_cli(argv, "kbsim probe: give the listener's URL\n");
  }
  {
    char *const argv[] = {(char *)KBSIM_BIN, "probe", "http://127.0.0.1:1",
                          NULL};
    run_cli(argv, "give --user");
  }
  {
    char *const argv[] = {(char *)KBSIM_BIN, "probe",         "ftp://x",
                          "--user",          "FABRIKAM\\a:b", NULL};
    run_cli(argv, "starts http:// or https://");
  }
  {
    char *const argv[] = {
        (char *)KBSIM_BIN, "exchange", "--listen", "127.0.0.1:0",
        "--auth",          "kerberos", NULL};
    run_cli(argv, "--auth: 'kerberos' is not none or integrated\n");
  }
  {
    char *const argv[] = {
        (char *)KBSIM_BIN, "exchange",   "--listen", "127.0.0.1:0",
        "--auth",          "integrated", NULL};
    run_cli(argv, "needs the accounts");
  }
  {
    char *const argv[] = {(char *)KBSIM_BIN, "exchange", NULL};
    run_cli(argv, "--listen HOST:PORT is required");
  }
}
END_TEST

/* Stops a server with SIGTERM and checks it said so and exited 0. */
static void stop_server(pid_t pid, int outfd, int errfd)
{
  struct proc_out s;

  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  proc_collect(pid, outfd, errfd, &s);
  ck_assert_msg(s.status == 0, "exited %d: %s", s.status, s.err.data);
  ck_assert_ptr_nonnull(strstr(s.out.data, "stopping on SIGTERM"));
  proc_free(&s);
}

/* The done-when of issue 18 through the commands alone: `kbsim probe`
 * against `kbsim serve` under both policies (exit 1 with the bug's class,
 * exit 0 with the fix's), and against `kbsim exchange --auth integrated`
 * with its status. */
START_TEST(test_cli_own_listener)
{
  static const char *const policies[] = {"per-connection", "per-request"};
  static const char *const classes[] = {
      "Class: keeps the connection's context and forwards the body-less "
      "POST (KB 942638's bug)\n",
      "Class: re-authenticates every POST (not affected)\n"};
  char url[64], status[96];
  struct proc_out q;
  int outfd, errfd;
  unsigned port;
  pid_t pid;
  int i;

  for(i = 0; i < 2; i++) {
    char *serve[] = {
        KBSIM_BIN,   "serve",       "--proxy",  "127.0.0.1:0",
        "--backend", "127.0.0.1:0", "--policy", (char *)policies[i],
        "--user",    (char *)alice, NULL};
    pid = proc_spawn(serve, &outfd, &errfd);
    port = proc_read_port(outfd, "ISA listener: http://127.0.0.1:");
    ck_assert_uint_gt(port, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    {
      char *const argv[] = {KBSIM_BIN, "probe",       url,
                            "--user",  (char *)alice, NULL};
      proc_run(argv, &q);
    }
    stop_server(pid, outfd, errfd);
    ck_assert_msg(q.status == 1 - i, "%s: exit %d: %s", policies[i], q.status,
                  q.out.data);
    ck_assert_msg(strstr(q.out.data, classes[i]) != NULL, "%s: %s", policies[i],
                  q.out.data);
    proc_free(&q);
  }
  {
    char *exchange[] = {KBSIM_BIN, "exchange",   "--listen", "127.0.0.1:0",
                        "--auth",  "integrated", "--user",   (char *)alice,
                        "--user",  (char *)bob,  NULL};
    pid = proc_spawn(exchange, &outfd, &errfd);
    port = proc_read_port(outfd,
                          "Exchange (auth integrated) at http://127.0.0.1:");
    ck_assert_uint_gt(port, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);
    snprintf(status, sizeof(status), "%s/kbsim/status", url);
    {
      char *const argv[] = {
          KBSIM_BIN,     "probe",  url,         "--user",
          (char *)alice, "--user", (char *)bob, "--exchange-status",
          status,        NULL};
      proc_run(argv, &q);
    }
    stop_server(pid, outfd, errfd);
    ck_assert_msg(q.status == 0, "exit %d: %s", q.status, q.out.data);
    ck_assert_ptr_nonnull(strstr(q.out.data, classes[1]));
    ck_assert_ptr_nonnull(strstr(q.out.data, "pass  two-users "));
    proc_free(&q);
  }
}
END_TEST

/* README's recipe for kbsim's own listener under test, as written but for
 * the ports (0: serve picks; the test reads them from serve's banner): the
 * probe's two-users check reads Exchange's status through serve, and
 * Exchange counts only what the topology sent: the probe's status reads
 * are status readers, not connections, and no connection is recorded
 * without a request. */
START_TEST(test_readme_recipe_probes_serve)
{
  char *serve[] = {KBSIM_BIN,   "serve",       "--proxy",  "127.0.0.1:0",
                   "--backend", "127.0.0.1:0", "--policy", "per-connection",
                   "--user",    (char *)alice, "--user",   (char *)bob,
                   NULL};
  char url[64], status[96];
  struct fetched f;
  struct proc_out q;
  json_t *doc, *conns;
  unsigned port, eport;
  size_t i;
  int outfd, errfd;
  pid_t pid = proc_spawn(serve, &outfd, &errfd);

  port = proc_read_port(outfd, "ISA listener: http://127.0.0.1:");
  eport = proc_read_port(outfd, "Status:       http://127.0.0.1:");
  ck_assert_uint_gt(port, 0);
  ck_assert_uint_gt(eport, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  snprintf(status, sizeof(status), "http://127.0.0.1:%u/kbsim/status", eport);
  {
    char *const argv[] = {
        KBSIM_BIN,     "probe",  url,         "--user",
        (char *)alice, "--user", (char *)bob, "--exchange-status",
        status,        NULL};
    proc_run(argv, &q);
  }
  ck_assert_msg(q.status == 1, "exit %d: %s%s", q.status, q.out.data,
                q.err.data);
  ck_assert_ptr_nonnull(strstr(q.out.data, "(KB 942638's bug)\n"));
  /* Exchange's view was read: the check ran and judged. */
  ck_assert_msg(strstr(q.out.data, "pass  two-users ") != NULL, "%s",
                q.out.data);
  proc_free(&q);
  ck_assert_int_eq(fetch(status, NULL, NULL, &f), 200);
  doc = json_loads(f.body.data, 0, NULL);
  ck_assert_ptr_nonnull(doc);
  conns = json_object_get(doc, "per_connection");
  ck_assert_uint_gt(json_array_size(conns), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(doc, "connections")),
                   (json_int_t)json_array_size(conns));
  ck_assert_int_gt(json_integer_value(json_object_get(doc, "status_readers")),
                   0);
  for(i = 0; i < json_array_size(conns); i++) {
    json_t *c = json_array_get(conns, i);
    ck_assert_msg(json_integer_value(json_object_get(c, "requests")) > 0,
                  "connection %lld served no request",
                  (long long)json_integer_value(json_object_get(c, "id")));
    ck_assert_int_eq(json_integer_value(json_object_get(c, "id")),
                     (json_int_t)i + 1);
  }
  json_decref(doc);
  kb_buf_free(&f.body);
  stop_server(pid, outfd, errfd);
}
END_TEST

/* A port on loopback where nothing listens: bound, never listening, so a
 * connection is refused while the socket stays open. Returns the socket. */
static int refusing_port(unsigned *port)
{
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof(sa);
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

/* Asserts that the probe refused --exchange-status with one line ending in
 * what the URL answered (want), exit 3, nothing run. */
static void assert_status_refused(const char *url, const char *status,
                                  const char *want)
{
  char *const argv[] = {KBSIM_BIN,      "probe",       (char *)url,
                        "--user",       (char *)alice, "--exchange-status",
                        (char *)status, NULL};
  char line[512];
  struct proc_out q;

  proc_run(argv, &q);
  snprintf(line, sizeof(line),
           "kbsim probe: --exchange-status %s: %s; give the status URL that "
           "kbsim exchange or kbsim serve prints "
           "(http://HOST:PORT/kbsim/status)\n",
           status, want);
  ck_assert_msg(q.status == 3, "exit %d: %s", q.status, q.err.data);
  ck_assert_str_eq(q.out.data, "");
  ck_assert_str_eq(q.err.data, line);
  proc_free(&q);
}

/* A status URL that answers no status document is refused before anything
 * runs, in one line that says what it answered (exit 3: the listener
 * could not be probed): a 404, nothing listening, a page that is not
 * JSON, JSON that is not Exchange's status. */
START_TEST(test_status_url_must_answer_status)
{
  char *exchange[] = {KBSIM_BIN, "exchange", "--listen", "127.0.0.1:0", NULL};
  char url[64], bad[128], dir[256], path[300];
  char *web[] = {
      "/usr/bin/python3", "-u",          "-m", "http.server", "--bind",
      "127.0.0.1",        "--directory", dir,  "0",           NULL};
  unsigned port, wport;
  int outfd, errfd, wout, werr, refusing;
  pid_t pid, wpid;
  FILE *fh;

  pid = proc_spawn(exchange, &outfd, &errfd);
  port = proc_read_port(outfd, "Exchange (auth none) at http://127.0.0.1:");
  ck_assert_uint_gt(port, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", port);

  snprintf(bad, sizeof(bad), "%s/kbsim/nope", url);
  assert_status_refused(url, bad, "it answered HTTP 404, not 200");

  refusing = refusing_port(&wport);
  snprintf(bad, sizeof(bad), "http://127.0.0.1:%u/kbsim/status", wport);
  assert_status_refused(url, bad, curl_easy_strerror(CURLE_COULDNT_CONNECT));
  close(refusing);

  /* Python's own web server: a 200 that is not JSON, and one that is JSON
   * but not a status document. */
  proc_tmpdir("kbsim-status", dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/page", dir);
  fh = fopen(path, "w");
  ck_assert_ptr_nonnull(fh);
  fputs("<html>not a status</html>\n", fh);
  fclose(fh);
  snprintf(path, sizeof(path), "%s/other.json", dir);
  fh = fopen(path, "w");
  ck_assert_ptr_nonnull(fh);
  fputs("{\"requests\": 1}\n", fh);
  fclose(fh);
  wpid = proc_spawn(web, &wout, &werr);
  wport = proc_read_port(wout, "Serving HTTP on 127.0.0.1 port ");
  ck_assert_uint_gt(wport, 0);
  snprintf(bad, sizeof(bad), "http://127.0.0.1:%u/page", wport);
  assert_status_refused(url, bad,
                        "its answer is not JSON ('[' or '{' expected near "
                        "'<')");
  snprintf(bad, sizeof(bad), "http://127.0.0.1:%u/other.json", wport);
  assert_status_refused(url, bad,
                        "its JSON has no per_connection list: not Exchange's "
                        "status");
  ck_assert_int_eq(kill(wpid, SIGTERM), 0);
  {
    struct proc_out w;
    proc_collect(wpid, wout, werr, &w);
    proc_free(&w);
  }
  proc_rmdir(dir);
  stop_server(pid, outfd, errfd);
}
END_TEST

static Suite *probe_suite(void)
{
  Suite *s = suite_create("probe");
  TCase *t = tcase_create("listeners");

  tcase_set_timeout(t, 60);
  tcase_add_test(t, test_isa_per_connection);
  tcase_add_test(t, test_isa_per_request);
  tcase_add_test(t, test_without_status);
  tcase_add_test(t, test_exchange_integrated);
  tcase_add_test(t, test_basic_and_anonymous);
  tcase_add_test(t, test_unreachable);
  tcase_add_test(t, test_exchange_counts_mismatch);
  tcase_add_test(t, test_exchange_gate_and_status);
  tcase_add_test(t, test_cli_errors);
  tcase_add_test(t, test_cli_own_listener);
  tcase_add_test(t, test_readme_recipe_probes_serve);
  tcase_add_test(t, test_status_url_must_answer_status);
  suite_add_tcase(s, t);
  t = tcase_create("third-party listeners");
  tcase_set_timeout(t, 60);
  tcase_set_tags(t, KBT_SLOW);
  tcase_add_test(t, test_squid);
  tcase_add_test(t, test_pooling_listeners);
  suite_add_tcase(s, t);
  return s;
}

int main(void)
{
  static const struct {
    const char *path, *test, *how;
  } tools[] = {
      {"/usr/sbin/squid", "test_squid", "apt-get install squid"},
      {"/usr/bin/ntlm_auth", "test_squid", "apt-get install winbind"},
      {"/usr/sbin/apache2", "test_squid, test_pooling_listeners",
       "apt-get install apache2"},
      {"/usr/bin/htpasswd", "test_squid", "apt-get install apache2-utils"},
      {"/usr/sbin/nginx", "test_pooling_listeners", "apt-get install nginx"},
  };
  int failed;
  bool skipped = false;
  size_t i;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  failed = kbt_run(probe_suite());
  curl_global_cleanup();
  for(i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
    skipped |= proc_skip_unless(tools[i].path, tools[i].test, tools[i].how);
  return proc_suite_exit(failed, skipped);
}
