/*
 * test_kerberos.c - Kerberos inside the network, against a real MIT KDC
 * (sim/kdc.h) started by the suite on loopback with a throwaway realm,
 * FABRIKAM.COM: the listener accepts a Communicator's ticket in one leg
 * through MIT's gss_accept_sec_context and forwards it with its body, so
 * an internal user never sees KB 942638 on the RTM listener where an
 * external (NTLM) user does; MIT's klist and kvno confirm the ticket the
 * client got; the defect mixes-after-single-leg mixes a Kerberos user's
 * pooled upstream connection into the next client's session, and kbsim
 * probe --krb5-ccache names it against kbsim serve; serve's live console
 * draws a Kerberos session's legs as such (tests/console/kerberos.js).
 * Skipped, and said so, when the KDC's programs are missing.
 */
#include <check.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "client/client.h"
#include "common/kb_defect.h"
#include "kbt.h"
#include "kbt_env.h"
#include "proc.h"
#include "proxy/proxy.h"
#include "served.h"
#include "sim/kdc.h"

/* The suite's realm, started in main (NULL when skipped). */
static struct sim_kdc *kdc;
static char alice_ccache[400];

/* Static: a failed assertion with CK_FORK=no leaves the servers running
 * (kbt_env.h). */
static struct kbt_env env;

/* The listener (policy, with the realm's keytab when keytab) in front of
 * Exchange, with alice and bob. */
static void krb_env_start(enum proxy_policy policy, bool keytab)
{
  static struct proxy_config pc;
  struct kbt_env_opts o;

  memset(&pc, 0, sizeof(pc));
  pc.policy = policy;
  pc.krb5_keytab = keytab ? sim_kdc_keytab(kdc) : NULL;
  memset(&o, 0, sizeof(o));
  o.listener = &pc;
  o.debug = "T_KRB_TRACE";
  kbt_env_start(&env, &o);
}

/* A listener that passes NTLM through (auth none) with defects, in front
 * of an Exchange that authenticates itself, NTLM and Kerberos (the
 * realm's keytab). */
static void krb_pass_through_start(unsigned defects)
{
  static struct proxy_config pc;
  static struct backend_config bc;
  struct kbt_env_opts o;

  memset(&pc, 0, sizeof(pc));
  pc.auth = PROXY_AUTH_NONE;
  pc.defects = defects;
  memset(&bc, 0, sizeof(bc));
  bc.auth = BACKEND_AUTH_INTEGRATED;
  bc.krb5_keytab = sim_kdc_keytab(kdc);
  memset(&o, 0, sizeof(o));
  o.listener = &pc;
  o.exchange = &bc;
  o.debug = "T_KRB_TRACE";
  kbt_env_start(&env, &o);
}

/* One session of user (Kerberos from ccache when not NULL, else NTLM)
 * through the listener; fills *view and returns the client (destroy it). */
static struct client *krb_session(unsigned id, const char *user,
                                  const char *password, const char *ccache,
                                  struct client_view *view)
{
  struct client_config cc;
  struct client *c = NULL;
  char err[256] = "";

  memset(&cc, 0, sizeof(cc));
  cc.id = id;
  cc.base_url = env.url;
  cc.domain = "FABRIKAM";
  cc.user = user;
  cc.password = password;
  cc.krb5_ccache = ccache;
  cc.ews_posts = 3;
  cc.clock.now_ms = kbt_now;
  cc.rng.fill = kbt_fill;
  cc.trace = kbt_trace_sink(&env.trace);
  ck_assert_msg(client_create(&cc, &c, err, sizeof(err)) == 0, "%s", err);
  client_run_session(c);
  client_view(c, view);
  return c;
}

/* Through an RTM listener (per-connection) that accepts Kerberos: alice,
 * inside, sends each POST in one leg with her ticket and its body - no
 * type 1, no body held back - and sees no error; bob, outside with NTLM,
 * re-authenticates each EWS POST with a body-less type 1 on the same
 * listener and gets KB 942638. Without the listener's keytab alice falls
 * back to NTLM and sees the error too (the test's control). */
START_TEST(internal_kerberos_external_ntlm)
{
  struct client_view v;
  struct proxy_stats ps;
  struct backend_stats bs;
  struct client *c;
  size_t i;

  if(!kdc)
    return;
  krb_env_start(PROXY_POLICY_PER_CONNECTION, true);
  c = krb_session(1, "alice", KBT_ALICE_PASSWORD, alice_ccache, &v);
  ck_assert_msg(!v.integration_error && v.posts_ok == 4,
                "alice (Kerberos): %u of 4 POSTs ok, error %d: %s", v.posts_ok,
                v.integration_error,
                client_result(c, client_results_count(c) - 1)->detail);
  for(i = 0; i < client_results_count(c); i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_uint_eq(r->legs, 1);
    ck_assert_int_eq(r->leg1_status, 200);
  }
  client_destroy(c);
  proxy_stats(env.px, &ps);
  ck_assert_uint_eq(ps.kerberos_ok, 4);
  ck_assert_uint_eq(ps.challenges, 0);
  ck_assert_uint_eq(ps.reauth_skipped, 0);
  ck_assert_uint_eq(ps.forwarded_empty_posts, 0);
  ck_assert_uint_eq(kbt_count_code(&env.trace, KB_NOTE_KERBEROS_OK), 4);

  c = krb_session(2, "bob", KBT_BOB_PASSWORD, NULL, &v);
  ck_assert_msg(v.integration_error, "bob (NTLM) saw no error through RTM");
  client_destroy(c);
  backend_stats(env.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, 3); /* bob's three, none of alice's */
  kbt_env_stop(&env);

  /* The control: the same listener without a keytab. */
  krb_env_start(PROXY_POLICY_PER_CONNECTION, false);
  c = krb_session(3, "alice", KBT_ALICE_PASSWORD, alice_ccache, &v);
  ck_assert_msg(v.integration_error,
                "alice fell back to NTLM without the keytab, yet saw no "
                "error");
  ck_assert_uint_eq(kbt_count_code(&env.trace, KB_NOTE_KERBEROS), 1);
  client_destroy(c);
  kbt_env_stop(&env);
}
END_TEST

/* mixes-after-single-leg: a listener that pins an upstream connection
 * only once a 401 with NTLM or Negotiate came back on it (HAProxy's rule)
 * never pins alice's, whose Kerberos ticket rides on the first request of
 * every connection: when her client leaves, her upstream connection,
 * authenticated as her at Exchange, goes back to the pool, and bob's first
 * request (Communicator's, without credentials) is served on it as alice
 * (haproxy#2985). The same listener without the defect pins every client
 * connection to an upstream one of its own; with it, an NTLM session (a
 * 401 on its connection) stays pinned and mixes nothing. */
static void krb_mixes_after_single_leg(bool broken)
{
  struct client_view v;
  struct backend_stats bs;
  struct client *c;

  krb_pass_through_start(broken ? PROXY_DEFECT(KB_DEFECT_MIXES_AFTER_SINGLE_LEG)
                                : 0);
  /* An NTLM session first: its 401 makes its connection private. */
  c = krb_session(1, "bob", KBT_BOB_PASSWORD, NULL, &v);
  ck_assert(!v.integration_error && v.posts_ok == 4);
  client_destroy(c);
  ck_assert_int_eq(proxy_wait_idle(env.px, 10000), 0);
  c = krb_session(2, "alice", KBT_ALICE_PASSWORD, NULL, &v);
  client_destroy(c);
  ck_assert_int_eq(proxy_wait_idle(env.px, 10000), 0);
  backend_stats(env.be, &bs);
  ck_assert_uint_eq(bs.mismatches, 0);
  ck_assert_uint_eq(kbt_count_code(&env.trace, KB_NOTE_UPSTREAM_POOLED), 0);

  /* alice with Kerberos, then bob. */
  c = krb_session(3, "alice", KBT_ALICE_PASSWORD, alice_ccache, &v);
  ck_assert_msg(!v.integration_error && v.posts_ok == 4, "alice: %s",
                client_result(c, client_results_count(c) - 1)->detail);
  client_destroy(c);
  ck_assert_int_eq(proxy_wait_idle(env.px, 10000), 0);
  c = krb_session(4, "bob", KBT_BOB_PASSWORD, NULL, &v);
  client_destroy(c);
  ck_assert_int_eq(proxy_wait_idle(env.px, 10000), 0);
  backend_stats(env.be, &bs);
  if(broken) {
    struct backend_conn_info recs[16];
    size_t n = backend_connections(env.be, recs, 16), i;
    bool found = false;

    ck_assert_uint_gt(bs.mismatches, 0);
    for(i = 0; i < n; i++)
      if(recs[i].mismatches &&
         !strcmp(recs[i].last_mismatch_identity, "FABRIKAM\\alice") &&
         !strcmp(recs[i].last_mismatch_mailbox, "bob@fabrikam.com"))
        found = true;
    ck_assert_msg(found, "no Exchange connection gave bob's mailbox to alice");
    /* alice's upstream pooled, taken by bob */
    ck_assert_uint_ge(kbt_count_code(&env.trace, KB_NOTE_UPSTREAM_POOLED), 2);
  }
  else
    ck_assert_uint_eq(bs.mismatches, 0);
  kbt_env_stop(&env);
}

START_TEST(mixes_after_single_leg)
{
  if(!kdc)
    return;
  krb_mixes_after_single_leg(false);
  krb_mixes_after_single_leg(true);
}
END_TEST

/* The probe end to end: `kbsim probe --krb5-ccache` (alice's cache) against
 * `kbsim serve --defect mixes-after-single-leg --krb5-keytab` names
 * mixes-after-single-leg, exit 1, class mixes-identities; against the
 * correct pass-through listener with the same keytab, nothing (exit 0). The
 * programs find the realm through KRB5_CONFIG, which sim_kdc_start set and
 * they inherit. */
static void krb_probe(const char *mode, int want_exit, const char *want_defects,
                      const char *want_verdict)
{
  char *serve[16] = {KBSIM_BIN,   "serve",       "--proxy",   "127.0.0.1:0",
                     "--backend", "127.0.0.1:0", (char *)mode};
  char url[64], status[96], dir[256], json[300], jarg[320];
  struct proc_out o, p;
  unsigned port, sport;
  int n = 7, outfd, errfd;
  pid_t pid;
  json_t *doc, *defects, *checks;
  char found[128] = "";
  const char *verdict = "";
  size_t i;

  if(!strcmp(mode, "--defect"))
    serve[n++] = "mixes-after-single-leg";
  serve[n++] = "--krb5-keytab";
  serve[n++] = (char *)sim_kdc_keytab(kdc);
  serve[n++] = "--user";
  serve[n++] = "FABRIKAM\\alice:" KBT_ALICE_PASSWORD;
  serve[n++] = "--user";
  serve[n++] = "FABRIKAM\\bob:" KBT_BOB_PASSWORD;
  serve[n++] = "-q";
  pid = proc_spawn(serve, &outfd, &errfd);
  port = proc_read_port(outfd, "ISA listener: http://127.0.0.1:");
  sport = proc_read_port(outfd, "Status:       http://127.0.0.1:");
  if(!port || !sport) {
    kill(pid, SIGKILL);
    proc_collect(pid, outfd, errfd, &o);
    ck_abort_msg("serve %s printed no banner (exit %d): %.500s", mode, o.status,
                 o.err.data);
  }
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  snprintf(status, sizeof(status), "http://127.0.0.1:%u/kbsim/status", sport);
  proc_tmpdir("kbsim-krb", dir, sizeof(dir));
  snprintf(json, sizeof(json), "%s/probe.json", dir);
  snprintf(jarg, sizeof(jarg), "--json=%s", json);
  {
    char *probe[] = {KBSIM_BIN,
                     "probe",
                     url,
                     "--user",
                     "FABRIKAM\\alice:" KBT_ALICE_PASSWORD,
                     "--user",
                     "FABRIKAM\\bob:" KBT_BOB_PASSWORD,
                     "--exchange-status",
                     status,
                     "--krb5-ccache",
                     alice_ccache,
                     jarg,
                     NULL};
    proc_run(probe, &p);
  }
  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  proc_collect(pid, outfd, errfd, &o);
  ck_assert_msg(o.status == 0, "serve exited %d: %s", o.status, o.err.data);
  proc_free(&o);
  doc = json_load_file(json, 0, NULL);
  ck_assert_msg(doc, "no JSON report: exit %d\n%s%s", p.status, p.out.data,
                p.err.data);
  defects = json_object_get(doc, "defects");
  for(i = 0; i < json_array_size(defects); i++)
    snprintf(found + strlen(found), sizeof(found) - strlen(found), "%s%s",
             i ? "," : "", json_string_value(json_array_get(defects, i)));
  checks = json_object_get(doc, "checks");
  for(i = 0; i < json_array_size(checks); i++)
    if(!strcmp(json_string_value(
                   json_object_get(json_array_get(checks, i), "name")),
               "single-leg"))
      verdict = json_string_value(
          json_object_get(json_array_get(checks, i), "verdict"));
  ck_assert_msg(p.status == want_exit && !strcmp(found, want_defects) &&
                    !strcmp(verdict, want_verdict),
                "serve %s: probe exit %d, defects [%s], single-leg %s:\n%s%s",
                mode, p.status, found, verdict, p.out.data, p.err.data);
  json_decref(doc);
  proc_free(&p);
  proc_rmdir(dir);
}

START_TEST(probe_finds_mixes_after_single_leg)
{
  if(!kdc)
    return;
  krb_probe("--defect", 1, "mixes-after-single-leg", "fail");
  krb_probe("--pass-through", 0, "", "pass");
}
END_TEST

/* MIT's own tools confirm the ticket alice's client used: klist lists the
 * service ticket for HTTP/autodiscover.fabrikam.com in her cache, and kvno
 * gets its key version, the same as the listener's keytab holds. */
START_TEST(tickets_confirmed_by_mit_tools)
{
  const char *klist[] = {"/usr/bin/klist", "-c", alice_ccache, NULL};
  const char *kvno[] = {"/usr/bin/kvno", "-c", alice_ccache,
                        "HTTP/" SIM_KDC_SERVICE_HOST, NULL};
  const char *keys[] = {"/usr/bin/klist", "-k", sim_kdc_keytab(kdc), NULL};
  struct client_view v;
  char out[4096], keytab[4096];
  const char *at;
  struct client *c;
  unsigned version = 0, listed = 0;

  if(!kdc)
    return;
  krb_env_start(PROXY_POLICY_PER_REQUEST, true);
  c = krb_session(1, "alice", KBT_ALICE_PASSWORD, alice_ccache, &v);
  ck_assert(!v.integration_error && v.posts_ok == 4);
  client_destroy(c);
  kbt_env_stop(&env);

  ck_assert_int_eq(sim_kdc_exec(kdc, klist, NULL, out, sizeof(out)), 0);
  ck_assert_msg(strstr(out, "Default principal: alice@FABRIKAM.COM") &&
                    strstr(out, "krbtgt/FABRIKAM.COM@FABRIKAM.COM") &&
                    strstr(out, "HTTP/" SIM_KDC_SERVICE_HOST "@FABRIKAM.COM"),
                "%s", out);
  ck_assert_int_eq(sim_kdc_exec(kdc, kvno, NULL, out, sizeof(out)), 0);
  at = strstr(out, "kvno = ");
  ck_assert_msg(at && sscanf(at, "kvno = %u", &version) == 1, "%s", out);
  ck_assert_int_eq(sim_kdc_exec(kdc, keys, NULL, keytab, sizeof(keytab)), 0);
  /* "   2 HTTP/autodiscover.fabrikam.com@FABRIKAM.COM": the line's
   * start holds the key's version. */
  at = strstr(keytab, "HTTP/" SIM_KDC_SERVICE_HOST);
  ck_assert_msg(at, "%s", keytab);
  while(at > keytab && at[-1] != '\n')
    at--;
  ck_assert_msg(sscanf(at, "%u", &listed) == 1 && listed == version,
                "kvno %u, keytab:\n%s", version, keytab);
}
END_TEST

/* GETs url into out->out (libcurl), asserting a 200. */
static size_t krb_collect(char *data, size_t size, size_t n, void *ctx)
{
  struct kb_buf *b = ctx;

  return kb_buf_add(b, data, size * n) == KB_BUF_OK ? size * n : 0;
}

static void krb_get(const char *url, struct proc_out *out)
{
  CURL *c = curl_easy_init();
  long code = 0;

  memset(out, 0, sizeof(*out));
  kb_buf_init(&out->out, 1 << 20);
  ck_assert_ptr_nonnull(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, krb_collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out->out);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  ck_assert_int_eq(code, 200);
  ck_assert_int_eq(kb_buf_add(&out->out, "", 1), KB_BUF_OK);
  curl_easy_cleanup(c);
}

/* `kbsim exchange --krb5-keytab` for a third-party listener that passes
 * Negotiate through: alice's client sends her ticket straight to it,
 * Kerberos in one leg with each POST's body, and signs in (exit 0);
 * Exchange's status counts her autodiscover and POSTs, no NTLM challenge,
 * and her on the connection. */
START_TEST(exchange_accepts_kerberos)
{
  struct served x;
  struct proc_out p, st;
  char url[96], status[128];
  unsigned port;

  if(!kdc)
    return;
  served_start_command(
      &x, "exchange",
      (const char *const[]){"--listen", "127.0.0.1:0", "--auth", "integrated",
                            "--user", "FABRIKAM\\alice:" KBT_ALICE_PASSWORD,
                            "--krb5-keytab", sim_kdc_keytab(kdc), NULL});
  ck_assert_ptr_nonnull(strstr(x.banner.data, "auth integrated, Kerberos"));
  port = served_port(&x, "Exchange (");
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  PROC_KBSIM(&p, "client", "--url", url, "--user",
             "FABRIKAM\\alice:" KBT_ALICE_PASSWORD, "--krb5-ccache",
             alice_ccache, "--posts", "2");
  ck_assert_msg(p.status == 0, "exit %d\n%s%s", p.status, p.out.data,
                p.err.data);
  snprintf(status, sizeof(status), "http://127.0.0.1:%u/kbsim/status", port);
  krb_get(status, &st);
  /* Autodiscover and the two POSTs, each with its ticket: no 401 offered a
   * challenge, and the connection served alice's principal. */
  ck_assert_msg(
      strstr(st.out.data, "\"ews_posts\":2") &&
          strstr(st.out.data, "\"challenges\":0") &&
          strstr(st.out.data, "\"requests\":3") &&
          strstr(st.out.data, "\"identities\":[\"FABRIKAM\\\\alice\"]"),
      "%s", st.out.data);
  proc_free(&st);
  proc_free(&p);
  served_stop(&x);
  kb_buf_free(&x.rest);
}
END_TEST

/* The live console draws a Kerberos user's session as such (headless
 * Chromium, tests/console/kerberos.js): serve with the realm's keytab, a
 * `kbsim client --krb5-ccache` session, its legs "Negotiate (Kerberos)"
 * and ISA's one-leg acceptance, nothing body-less. */
START_TEST(console_draws_kerberos)
{
  char dir[256], console[256], listener[128], node_path[512], bin[512];
  const char *const args[] = {
      "--proxy",       "127.0.0.1:0",
      "--backend",     "127.0.0.1:0",
      "--policy",      "per-connection",
      "--krb5-keytab", kdc ? sim_kdc_keytab(kdc) : "",
      "--admin",       "127.0.0.1:0",
      "--user",        "FABRIKAM\\alice:" KBT_ALICE_PASSWORD,
      "--quiet",       NULL};
  char *argv[] = {"/usr/bin/env",
                  node_path,
                  "node",
                  TESTS_DIR "/console/kerberos.js",
                  console,
                  KBSIM_BIN,
                  listener,
                  alice_ccache,
                  "FABRIKAM\\alice:" KBT_ALICE_PASSWORD,
                  NULL};
  struct served s;
  struct proc_out p;

  if(!kdc)
    return;
  if(!proc_which("node", bin, sizeof(bin)) ||
     !proc_which("chromium", bin, sizeof(bin))) {
    fprintf(stderr, "test_kerberos: SKIP console_draws_kerberos: node or "
                    "chromium is not installed (scripts/setup installs "
                    "them)\n");
    return;
  }
  ck_assert_msg(access(NODE_MODULES "/puppeteer-core", F_OK) == 0,
                "puppeteer-core is missing from " NODE_MODULES
                ": run scripts/setup");
  proc_tmpdir("kbsim-krb", dir, sizeof(dir));
  snprintf(node_path, sizeof(node_path), "NODE_PATH=%s", NODE_MODULES);
  served_start(&s, args);
  snprintf(console, sizeof(console), "http://127.0.0.1:%u/?token=%s", s.admin,
           s.token);
  snprintf(listener, sizeof(listener), "http://127.0.0.1:%u/", s.listener);
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "the Kerberos console's flow failed (%d):\n%s%s",
                p.status, p.out.data, p.err.data);
  ck_assert_int_eq(proc_count(p.out.data, "ok "), 3);
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("kerberos");
  TCase *tc = tcase_create("kerberos");
  TCase *browser;
  SRunner *sr;
  char why[256], err[512];
  bool skipped = false;
  int failed;

  if(!sim_kdc_available(why, sizeof(why))) {
    fprintf(stderr, "skip: kerberos: %s\n", why);
    skipped = true;
  }
  else if(sim_kdc_start("FABRIKAM.COM", &kdc, err, sizeof(err)) ||
          sim_kdc_add_user(kdc, "alice", KBT_ALICE_PASSWORD, err,
                           sizeof(err)) ||
          sim_kdc_kinit(kdc, "alice", KBT_ALICE_PASSWORD, alice_ccache,
                        sizeof(alice_ccache), err, sizeof(err))) {
    fprintf(stderr, "kerberos: %s\n", err);
    sim_kdc_stop(kdc);
    return EXIT_FAILURE;
  }
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, NULL, kbt_env_teardown);
  tcase_add_test(tc, internal_kerberos_external_ntlm);
  tcase_add_test(tc, tickets_confirmed_by_mit_tools);
  tcase_add_test(tc, mixes_after_single_leg);
  tcase_add_test(tc, probe_finds_mixes_after_single_leg);
  tcase_add_test(tc, exchange_accepts_kerberos);
  suite_add_tcase(s, tc);
  /* The console in headless Chromium: the costliest. */
  browser = tcase_create("browser");
  tcase_set_timeout(browser, 90);
  tcase_set_tags(browser, KBT_SLOW);
  tcase_add_test(browser, console_draws_kerberos);
  suite_add_tcase(s, browser);
  sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  sim_kdc_stop(kdc);
  return proc_suite_exit(failed, skipped);
}
