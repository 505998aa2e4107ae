/*
 * test_tls.c - TLS and Extended Protection (issue 31): the channel
 * bindings of ntlm/bindings.c against values computed independently
 * (Python's hashlib over RFC 2744's structure), a type 3 carrying them and
 * the server reading them back; the run's certificates (common/kb_cert.c)
 * served by Exchange over real TLS on loopback and checked by libcurl
 * against the run's CA; every TLS mode of a topology run end to end, the
 * Extended Protection table of the real world (offload, bridge with the
 * same or another certificate, none) with the bindings each side
 * computed; and the scenario keys' refusals; the commands' TLS options,
 * and --keylog's secrets decrypting a real capture of the loopback in
 * Wireshark's tools, and --pcap's own capture decrypted by tshark with no
 * key file (both slow).
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/kb_cert.h"
#include "kbt.h"
#include "ntlm/ntlm.h"
#include "proc.h"
#include "served.h"
#include "sim/run.h"
#include "sim/scenario.h"

/* hashlib.md5(b'\0'*16 + struct.pack('<I', len(d)) + d) with d =
 * b'tls-server-end-point:' + bytes(range(1, 33)), and with d = b''. */
static const char cbt_1_32[] = "911836bc229595a81fdaef8f1ce9077e";
static const char cbt_empty[] = "441018525208457705bf09a8ee3c1093";

static void hex(const uint8_t *p, size_t n, char *out)
{
  size_t i;
  for(i = 0; i < n; i++)
    sprintf(out + 2 * i, "%02x", p[i]);
}

START_TEST(bindings_known_values)
{
  uint8_t hash[32], out[16];
  char text[33];
  size_t i;

  for(i = 0; i < sizeof(hash); i++)
    hash[i] = (uint8_t)(i + 1);
  ntlm_tls_end_point_bindings(hash, sizeof(hash), out);
  hex(out, 16, text);
  ck_assert_str_eq(text, cbt_1_32);
  ntlm_channel_bindings(NULL, 0, out);
  hex(out, 16, text);
  ck_assert_str_eq(text, cbt_empty);
}
END_TEST

static const char *pw(void *ctx, const char *domain, const char *user)
{
  (void)ctx;
  (void)domain;
  (void)user;
  return "Passw0rd!";
}

/* A type 3 built with channel bindings (with and without a MIC) verifies,
 * and the server reads the same 16 bytes back; without them it reads
 * none. */
START_TEST(bindings_round_trip)
{
  static const uint8_t schal[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  static const uint8_t cchal[8] = {9, 9, 9, 9, 9, 9, 9, 9};
  struct ntlm_server_info info = {"FABRIKAM", "EXCH01", "fabrikam.com",
                                  "exch01.fabrikam.com"};
  struct ntlm_client_creds creds = {"FABRIKAM", "alice", "Passw0rd!",
                                    "COMMUNICATOR", NTLM_RESPONSE_V2};
  struct ntlm_bytes t1 = {0}, t2 = {0}, t3 = {0};
  struct ntlm_message chal, auth;
  struct ntlm_client_options opt;
  struct ntlm_exchange ex;
  struct ntlm_identity who;
  uint8_t cbt[16], got[16];
  int round;

  ntlm_tls_end_point_bindings(
      (const uint8_t *)"0123456789abcdef0123456789abcdef", 32, cbt);
  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &t1),
                   NTLM_OK);
  ck_assert_int_eq(
      ntlm_server_challenge(&info, NTLM_COMMUNICATOR_FLAGS, schal,
                            ntlm_filetime_from_unix_ms(KBT_CASE_MS), &t2),
      NTLM_OK);
  ck_assert_int_eq(ntlm_decode(t2.data, t2.len, &chal, NULL, 0), NTLM_OK);
  for(round = 0; round < 3; round++) {
    memset(&opt, 0, sizeof(opt));
    memset(&ex, 0, sizeof(ex));
    opt.client_challenge = cchal;
    opt.channel_bindings = round < 2 ? cbt : NULL;
    if(round == 1) {
      ex.negotiate = t1.data;
      ex.negotiate_len = t1.len;
      ex.challenge = t2.data;
      ex.challenge_len = t2.len;
      opt.mic = true;
      opt.exchange = &ex;
    }
    ck_assert_int_eq(
        ntlm_client_authenticate_ex(&creds, &chal, &opt, &t3, NULL, NULL, 0),
        NTLM_OK);
    ck_assert_int_eq(ntlm_decode(t3.data, t3.len, &auth, NULL, 0), NTLM_OK);
    ex.authenticate = t3.data;
    ex.authenticate_len = t3.len;
    ck_assert_int_eq(ntlm_server_verify_ex(&auth, round == 1 ? &ex : NULL,
                                           schal, pw, NULL, &who, NULL, 0),
                     NTLM_OK);
    ck_assert_int_eq(who.mic_checked, round == 1);
    ck_assert_int_eq(who.has_channel_bindings, round < 2);
    ck_assert_int_eq(ntlm_response_channel_bindings(&auth, got), round < 2);
    if(round < 2) {
      ck_assert_mem_eq(got, cbt, 16);
      ck_assert_mem_eq(who.channel_bindings, cbt, 16);
    }
    ntlm_message_free(&auth);
    ntlm_bytes_free(&t3);
  }
  ntlm_message_free(&chal);
  ntlm_bytes_free(&t1);
  ntlm_bytes_free(&t2);
}
END_TEST

/* ---- certificates and real TLS ------------------------------------------ */

/* Collects a body (discarded) for libcurl. */
static size_t tls_sink(char *p, size_t size, size_t n, void *ctx)
{
  (void)p;
  (void)ctx;
  return size * n;
}

/* GETs url with libcurl, verifying against ca_pem (NULL: the system's
 * store); returns curl's result and the status in *status. When seen is
 * not NULL, the end point of the certificate the server presented. */
static CURLcode tls_get(const char *url, const char *ca_pem, long *status,
                        struct kb_end_point *seen)
{
  CURL *e = curl_easy_init();
  struct curl_certinfo *info = NULL;
  struct curl_slist *f;
  CURLcode rc;

  ck_assert_ptr_nonnull(e);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, tls_sink);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
  if(ca_pem) {
    struct curl_blob ca = {(void *)ca_pem, strlen(ca_pem), CURL_BLOB_COPY};
    curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
  }
  *status = 0;
  rc = curl_easy_perform(e);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
  if(seen) {
    memset(seen, 0, sizeof(*seen));
    if(!rc && !curl_easy_getinfo(e, CURLINFO_CERTINFO, &info) && info &&
       info->num_of_certs > 0)
      for(f = info->certinfo[0]; f; f = f->next)
        if(!strncmp(f->data, "Cert:", 5))
          ck_assert_int_eq(kb_end_point_pem(f->data + 5, seen), 0);
  }
  curl_easy_cleanup(e);
  return rc;
}

/* The run's PKI: two server certificates of one CA, told apart by subject,
 * with SHA-256 end points (ECDSA with SHA-256, RFC 5929 4.1), and no key
 * kept for the CA. */
START_TEST(pki_made)
{
  struct kb_pki pki;
  struct kb_end_point ep;
  char err[256] = "";

  ck_assert_msg(!kb_pki_create(&pki, err, sizeof(err)), "%s", err);
  ck_assert_ptr_null(pki.ca.key_pem);
  ck_assert_ptr_nonnull(strstr(pki.exchange.subject, "OU=Exchange"));
  ck_assert_ptr_nonnull(strstr(pki.isa.subject, "OU=ISA listener"));
  ck_assert_str_eq(pki.exchange.end_point.hash_name, "SHA256");
  ck_assert_uint_eq(pki.exchange.end_point.len, 32);
  ck_assert_int_eq(kb_end_point_pem(pki.isa.cert_pem, &ep), 0);
  ck_assert_mem_eq(ep.hash, pki.isa.end_point.hash, 32);
  ck_assert_int_ne(
      memcmp(pki.isa.end_point.hash, pki.exchange.end_point.hash, 32), 0);
  kb_pki_free(&pki);
  kb_pki_free(&pki); /* zeroed: a second free is harmless */
  kb_pki_free(NULL);
}
END_TEST

/* Exchange serves HTTPS on port 0 with the run's certificate: libcurl
 * gets the page when it trusts the run's CA (and sees Exchange's own
 * certificate), refuses it against another run's CA, and plain HTTP to
 * the TLS port gets no answer. */
START_TEST(backend_https_verified)
{
  struct kb_pki pki, other;
  struct backend_config cfg;
  struct backend *b = NULL;
  struct kb_end_point seen;
  char err[256] = "", url[96];
  long status;

  ck_assert_msg(!kb_pki_create(&pki, err, sizeof(err)), "%s", err);
  ck_assert_msg(!kb_pki_create(&other, err, sizeof(err)), "%s", err);
  memset(&cfg, 0, sizeof(cfg));
  cfg.tls_cert_pem = pki.exchange.cert_pem;
  cfg.tls_key_pem = pki.exchange.key_pem;
  ck_assert_msg(!backend_start(&cfg, &b, err, sizeof(err)), "%s", err);

  snprintf(url, sizeof(url), "https://127.0.0.1:%u/EWS/Services.wsdl",
           (unsigned)backend_port(b));
  ck_assert_int_eq(tls_get(url, pki.ca.cert_pem, &status, &seen), CURLE_OK);
  ck_assert_int_eq(status, 200);
  ck_assert_uint_eq(seen.len, 32);
  ck_assert_mem_eq(seen.hash, pki.exchange.end_point.hash, 32);
  ck_assert_int_eq(tls_get(url, other.ca.cert_pem, &status, NULL),
                   CURLE_PEER_FAILED_VERIFICATION);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Services.wsdl",
           (unsigned)backend_port(b));
  ck_assert_int_ne(tls_get(url, NULL, &status, NULL), CURLE_OK);
  ck_assert_int_ne(status, 200);

  backend_stop(b);
  kb_pki_free(&pki);
  kb_pki_free(&other);
}
END_TEST

/* A key without its certificate's pair, or a certificate that is not one,
 * is refused in one line before anything listens. */
START_TEST(backend_https_refused)
{
  struct backend_config cfg;
  struct backend *b = NULL;
  char err[256] = "";

  memset(&cfg, 0, sizeof(cfg));
  cfg.tls_cert_pem = "not a certificate";
  ck_assert_int_eq(backend_start(&cfg, &b, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "needs its private key"));
  cfg.tls_key_pem = "not a key";
  ck_assert_int_eq(backend_start(&cfg, &b, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "not a PEM X.509 certificate"));
  ck_assert_ptr_null(b);
}
END_TEST

/* ---- topologies over TLS --------------------------------------------------
 */

/* What a run's trace said about channel bindings and TLS. */
struct tls_seen {
  pthread_mutex_t lock;
  unsigned client_notes, exchange_notes;
  char client_text[512], exchange_text[512];
  /* What Exchange's GET /kbsim/status document said at the end. */
  json_int_t status_refused;
  char status_why[512];
};

static void tls_emit(void *ctx, const struct kb_trace_event *ev)
{
  struct tls_seen *s = ctx;

  if(ev->kind != KB_TRACE_NOTE || ev->note != KB_NOTE_CHANNEL_BINDING)
    return;
  pthread_mutex_lock(&s->lock);
  if(ev->side == KB_SIDE_CLIENT) {
    if(!s->client_notes++)
      snprintf(s->client_text, sizeof(s->client_text), "%s", ev->text);
  }
  else if(!s->exchange_notes++)
    snprintf(s->exchange_text, sizeof(s->exchange_text), "%s", ev->text);
  pthread_mutex_unlock(&s->lock);
}

/* Loads scenarios/NAME.ini. */
static void tls_scenario(const char *name, struct scenario *sc)
{
  char path[512], err[512] = "";

  snprintf(path, sizeof(path), "%s/%s.ini", SCENARIOS_DIR, name);
  ck_assert_msg(!scenario_load(path, sc, err, sizeof(err)), "%s", err);
}

/* Runs sc with its trace into *seen; the outcome into *o (freed by the
 * caller), and the 32 hex digits of the bindings a client on the
 * listener's certificate computes into listener_cbt, of Exchange's into
 * exchange_cbt. */
/* Reads Exchange's status document (what GET /kbsim/status answers) into
 * seen's status members. */
static void tls_read_status(const struct backend *be, struct tls_seen *seen)
{
  char *text = backend_status_json(be);
  json_t *doc;
  json_error_t jerr;

  ck_assert_ptr_nonnull(text);
  doc = json_loads(text, 0, &jerr);
  ck_assert_msg(doc != NULL, "%s", jerr.text);
  ck_assert(json_is_integer(json_object_get(doc, "channel_binding_refused")));
  ck_assert(json_is_string(json_object_get(doc, "channel_binding_why")));
  seen->status_refused =
      json_integer_value(json_object_get(doc, "channel_binding_refused"));
  snprintf(seen->status_why, sizeof(seen->status_why), "%s",
           json_string_value(json_object_get(doc, "channel_binding_why")));
  json_decref(doc);
  free(text);
}

static void tls_run(const struct scenario *sc, struct tls_seen *seen,
                    struct sim_outcome *o, char listener_cbt[33],
                    char exchange_cbt[33])
{
  struct sim_runner runner;
  struct kb_trace trace = {tls_emit, seen};
  const struct kb_pki *pki;
  const struct kb_cert *cert;
  uint8_t cbt[16];
  char err[512] = "";

  memset(&runner, 0, sizeof(runner));
  memset(seen, 0, sizeof(*seen));
  pthread_mutex_init(&seen->lock, NULL);
  ck_assert_msg(!sim_runner_run(&runner, sc, trace, o, err, sizeof(err)), "%s",
                err);
  ck_assert_int_eq(runner.topo->tls, sc->tls);
  ck_assert_str_eq(runner.topo->proxy_url[4] == 's' ? "https" : "http",
                   "https");
  pki = &runner.topo->pki;
  cert = sc->tls == SCENARIO_TLS_BRIDGE && sc->bridge_same_certificate
             ? &pki->exchange
             : &pki->isa;
  ntlm_tls_end_point_bindings(cert->end_point.hash, cert->end_point.len, cbt);
  hex(cbt, 16, listener_cbt);
  ntlm_tls_end_point_bindings(pki->exchange.end_point.hash,
                              pki->exchange.end_point.len, cbt);
  hex(cbt, 16, exchange_cbt);
  ck_assert_int_eq(strncmp(runner.topo->backend_url, "https:", 6) == 0,
                   sc->tls == SCENARIO_TLS_BRIDGE);
  tls_read_status(runner.topo->backend, seen);
  sim_runner_stop(&runner);
  pthread_mutex_destroy(&seen->lock);
}

/* KB 942638 and its fix do not care about TLS: behind an offloading
 * listener the body-less POSTs reach Exchange; through a bridging one
 * with the fix none does. The clients verified the listener against the
 * run's CA (a transport error would be class infrastructure). */
START_TEST(kb_over_tls)
{
  struct scenario sc;
  struct sim_outcome o;
  struct tls_seen seen;
  char lc[33], ec[33];

  tls_scenario("tls-offload-bug", &sc);
  tls_run(&sc, &seen, &o, lc, ec);
  ck_assert_uint_eq(o.sessions.users_with_error, 2);
  ck_assert_uint_eq(o.sessions.infrastructure, 0);
  ck_assert_uint_eq(o.backend.empty_posts, 4);
  ck_assert_int_eq(sim_outcome_class(&o), CLIENT_CLASS_SERVER_ERROR);
  /* The listener authenticates: the client's binding goes to ISA only. */
  ck_assert_uint_eq(seen.exchange_notes, 0);
  ck_assert_uint_gt(seen.client_notes, 0);
  ck_assert_ptr_nonnull(strstr(seen.client_text, lc));
  ck_assert_msg(strstr(seen.client_text, "ISA listener"), "%s",
                seen.client_text);
  sim_outcome_free(&o);

  tls_scenario("tls-bridge-fix", &sc);
  tls_run(&sc, &seen, &o, lc, ec);
  ck_assert_uint_eq(o.sessions.users_with_error, 0);
  ck_assert_uint_eq(o.sessions.infrastructure, 0);
  ck_assert_uint_eq(o.backend.empty_posts, 0);
  ck_assert_uint_eq(o.backend.oof_ok + o.backend.availability_ok, 4);
  sim_outcome_free(&o);
}
END_TEST

/* The real world's table: each scenario's outcome, Exchange's refusals,
 * and the evidence naming the binding the client computed (of the
 * certificate the listener presented) against the one Exchange expected
 * (of its own certificate), or the plain HTTP channel that has none. */
START_TEST(epa_table)
{
  static const struct {
    const char *name;
    unsigned errors;
    const char *why; /* in Exchange's refusal; NULL: none refused */
  } rows[] = {
      {"epa-offload-require", 1, "over plain HTTP"},
      {"epa-bridge-same-require", 0, NULL},
      {"epa-bridge-own-require", 1, "(Exchange's own, SHA256 "},
      {"epa-offload-none", 0, NULL},
  };
  struct scenario sc;
  struct sim_outcome o;
  struct tls_seen seen;
  char lc[33], ec[33], summary[1024];
  size_t i;

  for(i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    tls_scenario(rows[i].name, &sc);
    tls_run(&sc, &seen, &o, lc, ec);
    ck_assert_msg(o.sessions.users_with_error == rows[i].errors,
                  "%s: %u users with the error", rows[i].name,
                  o.sessions.users_with_error);
    ck_assert_uint_eq(o.sessions.infrastructure, 0);
    /* Communicator bound every type 3 to the listener's certificate. */
    ck_assert_uint_gt(seen.client_notes, 0);
    ck_assert_msg(strstr(seen.client_text, lc), "%s: %s", rows[i].name,
                  seen.client_text);
    sim_outcome_summary(&sc, &o, summary, sizeof(summary));
    /* Exchange's status document counts the refusals and says why. */
    ck_assert_int_eq(seen.status_refused,
                     (json_int_t)o.backend.channel_binding_refused);
    ck_assert_str_eq(seen.status_why, o.backend.channel_binding_why);
    if(!rows[i].why) {
      ck_assert_uint_eq(o.backend.channel_binding_refused, 0);
      ck_assert_uint_eq(seen.exchange_notes, 0);
      ck_assert_uint_eq(o.backend.oof_ok + o.backend.availability_ok, 2);
      ck_assert_ptr_null(strstr(summary, "Extended Protection"));
      sim_outcome_free(&o);
      continue;
    }
    ck_assert_int_eq(sim_outcome_class(&o), CLIENT_CLASS_AUTH_FAILED);
    ck_assert_uint_eq(o.backend.channel_binding_refused, 1);
    ck_assert_uint_eq(seen.exchange_notes, 1);
    ck_assert_str_eq(seen.exchange_text, o.backend.channel_binding_why);
    ck_assert_msg(strstr(o.backend.channel_binding_why, lc), "%s",
                  o.backend.channel_binding_why);
    ck_assert_ptr_nonnull(strstr(o.backend.channel_binding_why, rows[i].why));
    ck_assert_ptr_nonnull(
        strstr(o.backend.channel_binding_why, "Extended Protection (require)"));
    /* Bridging: Exchange names the binding it expected, its own. */
    ck_assert_int_eq(strstr(o.backend.channel_binding_why, ec) != NULL,
                     sc.tls == SCENARIO_TLS_BRIDGE);
    ck_assert_ptr_nonnull(strstr(summary, "Exchange refused 1 login: "));
    ck_assert_ptr_nonnull(strstr(summary, o.backend.channel_binding_why));
    sim_outcome_free(&o);
  }
}
END_TEST

/* allow: a client without a binding (NTLMv1 carries no AV pairs) gets
 * in; require refuses it, saying the binding is missing. */
START_TEST(epa_allow_and_missing)
{
  struct scenario sc;
  struct sim_outcome o;
  struct tls_seen seen;
  char lc[33], ec[33];

  tls_scenario("epa-bridge-same-require", &sc);
  sc.ntlm = NTLM_RESPONSE_V1;
  tls_run(&sc, &seen, &o, lc, ec);
  ck_assert_uint_eq(seen.client_notes, 0);
  ck_assert_uint_eq(o.sessions.users_with_error, 1);
  ck_assert_ptr_nonnull(
      strstr(o.backend.channel_binding_why, "carries no channel binding"));
  sim_outcome_free(&o);

  sc.extended_protection = BACKEND_EPA_ALLOW;
  tls_run(&sc, &seen, &o, lc, ec);
  ck_assert_uint_eq(o.sessions.users_with_error, 0);
  ck_assert_uint_eq(o.backend.channel_binding_refused, 0);
  sim_outcome_free(&o);

  /* allow still refuses a binding that is not Exchange's. */
  tls_scenario("epa-bridge-own-require", &sc);
  sc.extended_protection = BACKEND_EPA_ALLOW;
  tls_run(&sc, &seen, &o, lc, ec);
  ck_assert_uint_eq(o.sessions.users_with_error, 1);
  ck_assert_ptr_nonnull(
      strstr(o.backend.channel_binding_why, "Extended Protection (allow)"));
  sim_outcome_free(&o);
}
END_TEST

/* kbsim run gives each scenario its outcome (exit 0: as expected), and
 * the line says why Exchange refused. */
START_TEST(run_prints_why)
{
  struct proc_out p;
  char path[512];

  snprintf(path, sizeof(path), "%s/epa-bridge-own-require.ini", SCENARIOS_DIR);
  PROC_KBSIM(&p, "run", path);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  /* One line for the test: the output wraps at 100 columns, continuing
   * each line after a line feed and four spaces. */
  for(char *c = p.out.data; (c = strstr(c, "\n    ")) != NULL;) {
    memmove(c, c + 4, strlen(c + 4) + 1); /* "\n    x" -> " x" */
    *c = ' ';
  }
  ck_assert_ptr_nonnull(strstr(p.out.data, "PASS epa-bridge-own-require"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Extended Protection (require)"));
  proc_free(&p);
}
END_TEST

/* ---- scenario keys --------------------------------------------------------
 */

static void tls_load_fails(const char *text, const char *want)
{
  struct scenario sc;
  char err[512] = "";
  FILE *f = fmemopen((void *)text, strlen(text), "r");

  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(scenario_load_stream(f, "t.ini", &sc, err, sizeof(err)), -1);
  fclose(f);
  ck_assert_msg(strstr(err, want), "got '%s', want '%s'", err, want);
}

START_TEST(scenario_keys)
{
  struct scenario sc;
  char err[512] = "";
  static const char good[] = "[listener]\nauth = none\ntls = bridge\n"
                             "bridge_certificate = same\n[exchange]\n"
                             "auth = integrated\n"
                             "extended_protection = allow\n";
  FILE *f = fmemopen((void *)good, strlen(good), "r");

  ck_assert_int_eq(scenario_load_stream(f, "t.ini", &sc, err, sizeof(err)), 0);
  fclose(f);
  ck_assert_int_eq(sc.tls, SCENARIO_TLS_BRIDGE);
  ck_assert(sc.bridge_same_certificate);
  ck_assert_int_eq(sc.exchange_auth, BACKEND_AUTH_INTEGRATED);
  ck_assert_int_eq(sc.extended_protection, BACKEND_EPA_ALLOW);

  tls_load_fails("[listener]\ntls = ssl\n",
                 "t.ini:2: [listener] tls = ssl: use none");
  tls_load_fails("[listener]\ntls = offload\nbridge_certificate = same\n",
                 "t.ini:3: [listener] bridge_certificate is which");
  tls_load_fails("[listener]\nbridge_certificate = both\n",
                 "bridge_certificate = both: use same");
  tls_load_fails("[exchange]\nextended_protection = require\n",
                 "t.ini:2: [exchange] extended_protection checks");
  tls_load_fails("[exchange]\nauth = integrated\n",
                 "t.ini:2: [exchange] auth = integrated needs [listener] "
                 "auth = none");
  tls_load_fails("[exchange]\nepa = on\n", "[exchange] has no key 'epa'");
}
END_TEST

/* ---- the commands ----------------------------------------------------------
 */

#define ALICE "FABRIKAM\\alice:Passw0rd!"

/* kbsim exchange --tls: HTTPS with a certificate of the CA it wrote to
 * --ca-file, which libcurl verifies; under --extended-protection require
 * curl's NTLM (which sends no channel binding) is refused. */
START_TEST(exchange_tls_serves)
{
  struct served x;
  char dir[256], ca[300], url[96];
  char *pem;
  long status;

  proc_tmpdir("kbsim-tls", dir, sizeof(dir));
  snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
  served_start_command(&x, "exchange",
                       (const char *const[]){"--listen", "127.0.0.1:0", "--tls",
                                             "--ca-file", ca, NULL});
  ck_assert_ptr_nonnull(strstr(x.banner.data, "OU=Exchange"));
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/EWS/Services.wsdl",
           served_port(&x, "Exchange ("));
  pem = proc_slurp(ca, NULL);
  ck_assert_int_eq(tls_get(url, pem, &status, NULL), CURLE_OK);
  ck_assert_int_eq(status, 200);
  ck_assert_int_eq(tls_get(url, NULL, &status, NULL),
                   CURLE_PEER_FAILED_VERIFICATION);
  free(pem);
  served_stop(&x);
  kb_buf_free(&x.rest);
  proc_rmdir(dir);
}
END_TEST

/* The console's sessions on a TLS array: serve of tls-offload-bug, and `kbsim
 * ctl session` runs a session inside serve that verifies the listener
 * against the run's CA and meets KB 942638 (server-error); before, it
 * could not verify the certificate. A client that does not trust the
 * listener's certificate (kbsim client without --ca-file) is the
 * harness's failure, never the bug: exit 3, class infrastructure, and
 * the line says what to give. */
START_TEST(serve_tls_console_sessions)
{
  char scenario[300], admin[32], url[64];
  struct served s;
  struct proc_out p;

  snprintf(scenario, sizeof(scenario), "%s/tls-offload-bug.ini", SCENARIOS_DIR);
  served_start(&s, (const char *const[]){scenario, "--admin", "127.0.0.1:0",
                                         "--quiet", NULL});
  snprintf(admin, sizeof(admin), "127.0.0.1:%u", s.admin);
  PROC_KBSIM(&p, "ctl", "--admin", admin, "session", "--count", "2");
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_msg(strstr(p.out.data, "the user saw the Outlook Integration "
                                   "Error (server-error)") &&
                    strstr(p.out.data, "2 sessions, 2 with the error") &&
                    strstr(p.out.data, "served by ISA01") &&
                    !strstr(p.out.data, "infrastructure"),
                "%s", p.out.data);
  proc_free(&p);
  snprintf(url, sizeof(url), "https://127.0.0.1:%u/", s.balancer);
  PROC_KBSIM(&p, "client", "--url", url, "--user", ALICE, "--posts", "1");
  ck_assert_msg(p.status == 3 && strstr(p.out.data, "infrastructure") &&
                    strstr(p.out.data, "the listener's certificate is not "
                                       "trusted; give its CA (--ca-file)") &&
                    !strstr(p.out.data, "server-error"),
                "exit %d\n%s%s", p.status, p.out.data, p.err.data);
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* kbsim serve --tls bridge passing NTLM through to an Exchange that
 * requires Extended Protection: kbsim client, trusting the CA serve
 * wrote, signs in when the listener presents Exchange's certificate
 * (exit 0) and is refused when it presents its own (exit 1). */
START_TEST(serve_tls_bridge)
{
  static const char *const certs[] = {"same", "own"};
  struct served s;
  struct proc_out p;
  char dir[256], ca[300], url[96];
  size_t i;

  proc_tmpdir("kbsim-tls", dir, sizeof(dir));
  snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
  for(i = 0; i < 2; i++) {
    served_start(&s,
                 (const char *const[]){
                     "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
                     "--pass-through", "--user", ALICE, "--tls", "bridge",
                     "--bridge-certificate", certs[i], "--extended-protection",
                     "require", "--ca-file", ca, "--quiet", NULL});
    ck_assert_ptr_nonnull(strstr(s.banner.data, "TLS:          bridge"));
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/",
             served_port(&s, "ISA listener:"));
    PROC_KBSIM(&p, "client", "--url", url, "--user", ALICE, "--ca-file", ca,
               "--posts", "1");
    ck_assert_msg(p.status == (int)i, "--bridge-certificate %s: exit %d\n%s%s",
                  certs[i], p.status, p.out.data, p.err.data);
    proc_free(&p);
    served_stop(&s);
    kb_buf_free(&s.rest);
  }
  proc_rmdir(dir);
}
END_TEST

/* What does not go together is a usage error (exit 2) in one line. */
START_TEST(cli_refusals)
{
  struct proc_out p;
  const char *bad;

  PROC_KBSIM(&p, "serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
             "--policy", "per-request", "--user", ALICE, "--bridge-certificate",
             "same");
  bad = proc_usage_error(&p);
  ck_assert_msg(!bad, "%s", bad);
  ck_assert_ptr_nonnull(strstr(p.err.data, "give --tls bridge"));
  proc_free(&p);
  PROC_KBSIM(&p, "serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
             "--policy", "per-request", "--user", ALICE,
             "--extended-protection", "require");
  ck_assert_ptr_null(proc_usage_error(&p));
  ck_assert_ptr_nonnull(strstr(p.err.data, "give --pass-through"));
  proc_free(&p);
  PROC_KBSIM(&p, "exchange", "--listen", "127.0.0.1:0", "--ca-file", "x");
  ck_assert_ptr_null(proc_usage_error(&p));
  proc_free(&p);
  PROC_KBSIM(&p, "exchange", "--listen", "127.0.0.1:0", "--extended-protection",
             "require");
  ck_assert_ptr_null(proc_usage_error(&p));
  ck_assert_ptr_nonnull(strstr(p.err.data, "give --auth integrated"));
  proc_free(&p);
  PROC_KBSIM(&p, "client", "--url", "https://127.0.0.1:1/", "--user", ALICE,
             "--ca-file", "/nonexistent/ca.pem");
  ck_assert_ptr_null(proc_usage_error(&p));
  proc_free(&p);
  /* A TLS serve records nothing yet, and says so. */
  PROC_KBSIM(&p, "serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
             "--policy", "per-request", "--user", ALICE, "--tls", "offload",
             "--transcript", "/dev/null");
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.err.data, "cannot record a TLS serve yet"));
  proc_free(&p);
}
END_TEST

/* --keylog FILE: every TLS connection of a bridged run (the client's to
 * the listener, the listener's to Exchange) has its TLS 1.3 secrets in
 * NSS's key log format, from both of its ends (libcurl and GnuTLS), so
 * Wireshark can decrypt a capture of it; a file that cannot be written
 * stops the run before it starts (exit 3). The run says its --pcap holds
 * the TLS and its secrets, and differs from run to run. */
START_TEST(keylog_every_connection)
{
  static const char *const labels[] = {
      "CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
      "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"};
  struct proc_out p;
  char dir[256], log[300], pcap[300], scenario[512], randoms[8][65];
  char *text, *line, *save = NULL;
  size_t nrandoms = 0, nlines = 0, i, k;

  proc_tmpdir("kbsim-tls", dir, sizeof(dir));
  snprintf(log, sizeof(log), "%s/keys.log", dir);
  snprintf(scenario, sizeof(scenario), "%s/epa-bridge-same-require.ini",
           SCENARIOS_DIR);
  snprintf(pcap, sizeof(pcap), "%s/run.pcap", dir);
  PROC_KBSIM(&p, "run", scenario, "--keylog", log, "--pcap", pcap);
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "decrypts it with no key file"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "differs from run to run"));
  proc_free(&p);
  text = proc_slurp(log, NULL);
  for(line = strtok_r(text, "\n", &save); line;
      line = strtok_r(NULL, "\n", &save), nlines++) {
    char label[40], random[65], secret[129];

    ck_assert_msg(sscanf(line, "%39s %64[0-9a-f] %128[0-9a-f]", label, random,
                         secret) == 3 &&
                      strlen(random) == 64 && strlen(secret) >= 64,
                  "not a key log line: %s", line);
    for(k = 0; k < sizeof(labels) / sizeof(labels[0]); k++)
      if(!strcmp(label, labels[k]))
        break;
    ck_assert_msg(k < sizeof(labels) / sizeof(labels[0]), "label %s", label);
    for(i = 0; i < nrandoms && strcmp(randoms[i], random); i++)
      ;
    if(i == nrandoms) {
      ck_assert_uint_lt(nrandoms, 8);
      snprintf(randoms[nrandoms++], sizeof(randoms[0]), "%s", random);
    }
  }
  free(text);
  /* Two connections (client conn 1, its upstream 1), five secrets each,
   * written by both ends. */
  ck_assert_uint_eq(nrandoms, 2);
  ck_assert_uint_eq(nlines, 2 * 5 * 2);

  PROC_KBSIM(&p, "run", scenario, "--keylog", "/nonexistent/kbsim/keys.log");
  ck_assert_int_eq(p.status, 3);
  ck_assert_ptr_nonnull(strstr(p.err.data, "--keylog"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* Reads the first line's hex of text (tshark's -e output) into out, at
 * most max bytes. Returns the byte count. */
static size_t tls_unhex(const char *text, uint8_t *out, size_t max)
{
  size_t n = 0;
  unsigned b;

  while(n < max && isxdigit((unsigned char)text[2 * n]) &&
        isxdigit((unsigned char)text[2 * n + 1]) &&
        sscanf(text + 2 * n, "%2x", &b) == 1)
    out[n++] = (uint8_t)b;
  return n;
}

/* --keylog end to end with Wireshark's tools: a real capture of the
 * loopback (dumpcap) while a bridged run with Extended Protection runs,
 * the key log injected as a pcapng Decryption Secrets Block (editcap
 * --inject-secrets), then tshark, given no key file, decrypts every
 * NTLMSSP type 3 of both hops: alice's, each with the same channel
 * binding, which is RFC 5929's binding of the certificate tshark saw in
 * the decrypted handshake. Without the secrets it decrypts nothing. */
START_TEST(keylog_decrypts_capture)
{
  static const char filter[] = "tls && ntlmssp.messagetype == 0x00000003";
  struct proc_out p, d;
  struct kb_end_point ep;
  char dir[256], log[300], cap[300], withkeys[300], secrets[320];
  char scenario[512], want[33], *line, *save = NULL;
  uint8_t der[4096], cbt[16];
  size_t len;
  int outfd, errfd, rows = 0;
  pid_t pid;

  if(!proc_have("/usr/bin/dumpcap") || !proc_have("/usr/bin/editcap") ||
     !proc_have("/usr/bin/tshark"))
    return;
  proc_tmpdir("kbsim-tls", dir, sizeof(dir));
  snprintf(log, sizeof(log), "%s/keys.log", dir);
  snprintf(cap, sizeof(cap), "%s/lo.pcapng", dir);
  snprintf(withkeys, sizeof(withkeys), "%s/lo-dsb.pcapng", dir);
  snprintf(secrets, sizeof(secrets), "tls,%s", log);
  snprintf(scenario, sizeof(scenario), "%s/epa-bridge-same-require.ini",
           SCENARIOS_DIR);
  {
    char *argv[] = {"/usr/bin/dumpcap",
                    "-B",
                    "32",
                    "-i",
                    "lo",
                    "-f",
                    "tcp",
                    "-w",
                    cap,
                    NULL};
    char buf[256] = "", *at;
    size_t got = 0;

    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM, 0);

    /* A listener of our own to knock on: packets for dumpcap to count. */
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 64), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
    pid = proc_spawn(argv, &outfd, &errfd);
    /* "Capturing on" comes before the capture runs; a packet count above
     * 0 ("Packets: N") once it does: knock until it says so. */
    for(;;) {
      struct pollfd pfd = {errfd, POLLIN, 0};
      int k = socket(AF_INET, SOCK_STREAM, 0);

      ck_assert_int_eq(connect(k, (struct sockaddr *)&sa, sizeof(sa)), 0);
      close(k);
      close(accept(lfd, NULL, NULL));
      if(poll(&pfd, 1, 100) < 1)
        continue;
      ck_assert_msg(read(errfd, buf + got, 1) == 1, "dumpcap: %s", buf);
      buf[++got] = '\0';
      at = strstr(buf, "Packets: ");
      if(at && at[9] >= '1' && at[9] <= '9')
        break;
      if(got == sizeof(buf) - 1) { /* keep the last half */
        memmove(buf, buf + got / 2, got - got / 2 + 1);
        got -= got / 2;
      }
    }
    PROC_KBSIM(&p, "run", scenario, "--keylog", log);
    ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
    proc_free(&p);
    /* One more knock, after the run: once the file holds it (its ports,
     * as TCP writes them), it holds every packet of the run before it. */
    {
      struct sockaddr_in me;
      socklen_t melen = sizeof(me);
      int k = socket(AF_INET, SOCK_STREAM, 0);
      uint8_t mark[4];
      char *bytes;
      size_t n;

      ck_assert_int_eq(connect(k, (struct sockaddr *)&sa, sizeof(sa)), 0);
      ck_assert_int_eq(getsockname(k, (struct sockaddr *)&me, &melen), 0);
      memcpy(mark, &me.sin_port, 2);
      memcpy(mark + 2, &sa.sin_port, 2);
      close(k);
      close(accept(lfd, NULL, NULL));
      for(;;) {
        struct pollfd pfd = {errfd, POLLIN, 0};

        /* dumpcap reports each batch it has written. */
        ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
        ck_assert_int_gt(read(errfd, buf, sizeof(buf) - 1), 0);
        bytes = proc_slurp(cap, &n);
        k = memmem(bytes, n, mark, sizeof(mark)) != NULL;
        free(bytes);
        if(k)
          break;
      }
    }
    close(lfd);
  }
  ck_assert_int_eq(kill(pid, SIGTERM), 0);
  proc_collect(pid, outfd, errfd, &d);
  proc_free(&d);
  {
    char *argv[] = {
        "/usr/bin/editcap", "--inject-secrets", secrets, cap, withkeys, NULL};
    proc_run(argv, &p);
    ck_assert_msg(p.status == 0, "editcap: %s", p.err.data);
    proc_free(&p);
  }

  /* The certificate the client hop presented (bridge, same: Exchange's),
   * as tshark decrypted it, and its binding. */
  proc_tshark(
      withkeys,
      "tls.handshake.certificate && x509sat.printableString == \"Exchange\"",
      "tls.handshake.certificate", NULL, &p);
  len = tls_unhex(p.out.data, der, sizeof(der));
  ck_assert_msg(!kb_end_point_der(der, len, &ep), "not a certificate: %.200s",
                p.out.data);
  ntlm_tls_end_point_bindings(ep.hash, ep.len, cbt);
  hex(cbt, 16, want);
  proc_free(&p);

  proc_tshark(withkeys, filter, "ntlmssp.auth.username",
              "ntlmssp.ntlmv2_response.channel_bindings", &p);
  for(line = strtok_r(p.out.data, "\n", &save); line;
      line = strtok_r(NULL, "\n", &save), rows++) {
    char user[64], got[40];

    ck_assert_int_eq(sscanf(line, "%63s %39s", user, got), 2);
    ck_assert_str_eq(user, "alice");
    ck_assert_str_eq(got, want);
  }
  /* Autodiscover and 2 POSTs, each signing in on both hops. */
  ck_assert_int_eq(rows, 6);
  proc_free(&p);
  proc_tshark(cap, filter, "ntlmssp.auth.username", NULL, &p);
  ck_assert_str_eq(p.out.data, "");
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* --pcap on a TLS run opens decrypted: for an offloading run (TLS on the
 * client hop only) and a bridging one with two users (both hops), the
 * capture is pcapng whose TLS connections carry the records their server
 * end read and wrote, and tests/pcap-judge has tshark, given no key file,
 * decrypt every one of them (the capture's Decryption Secrets Block) and
 * find the transcript's bytes, the NTLMSSP types, each type 3's user and
 * domain, and the request lines in what it decrypted; plain HTTP stays on
 * port 80, judged on its TCP payload. Without the records and secrets the
 * judge finds no TLS connection to decrypt. */
START_TEST(pcap_opens_decrypted)
{
  static const struct {
    const char *file;
    const char *decrypted;
  } runs[] = {
      {"tls-offload-bug", "2 TLS connections decrypted"},
      {"tls-bridge-fix", "4 TLS connections decrypted"},
  };
  char dir[256], scenario[512], pcap[300], txt[300];
  struct proc_out p;
  size_t i;

  if(!proc_have("/usr/bin/tshark"))
    return;
  proc_tmpdir("kbsim-tls", dir, sizeof(dir));
  for(i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
    char *judge[] = {TESTS_DIR "/pcap-judge", pcap, txt, NULL};
    uint8_t *bytes;
    size_t n;

    snprintf(scenario, sizeof(scenario), "%s/%s.ini", SCENARIOS_DIR,
             runs[i].file);
    snprintf(pcap, sizeof(pcap), "%s/%s.pcapng", dir, runs[i].file);
    snprintf(txt, sizeof(txt), "%s/%s.txt", dir, runs[i].file);
    PROC_KBSIM(&p, "run", scenario, "--pcap", pcap, "--transcript", txt);
    ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
    proc_free(&p);
    /* pcapng: a section header block first. */
    bytes = (uint8_t *)proc_slurp(pcap, &n);
    ck_assert_uint_gt(n, 4);
    ck_assert_int_eq(memcmp(bytes, "\x0a\x0d\x0d\x0a", 4), 0);
    free(bytes);
    proc_run(judge, &p);
    ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
    ck_assert_msg(strstr(p.out.data, runs[i].decrypted), "%s", p.out.data);
    ck_assert_ptr_nonnull(strstr(p.out.data, " 0 failures\n"));
    proc_free(&p);
  }
  proc_rmdir(dir);
}
END_TEST

static Suite *tls_suite(void)
{
  Suite *s = suite_create("tls");
  TCase *tc = tcase_create("bindings");

  tcase_add_test(tc, bindings_known_values);
  tcase_add_test(tc, bindings_round_trip);
  suite_add_tcase(s, tc);
  tc = tcase_create("https");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, pki_made);
  tcase_add_test(tc, backend_https_verified);
  tcase_add_test(tc, backend_https_refused);
  tcase_add_test(tc, kb_over_tls);
  suite_add_tcase(s, tc);
  tc = tcase_create("epa");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, epa_table);
  tcase_add_test(tc, epa_allow_and_missing);
  tcase_add_test(tc, run_prints_why);
  tcase_add_test(tc, scenario_keys);
  suite_add_tcase(s, tc);
  tc = tcase_create("commands");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, exchange_tls_serves);
  tcase_add_test(tc, serve_tls_bridge);
  tcase_add_test(tc, serve_tls_console_sessions);
  tcase_add_test(tc, cli_refusals);
  tcase_add_test(tc, keylog_every_connection);
  suite_add_tcase(s, tc);
  /* Wireshark's tools over a real capture of the loopback: slow. */
  tc = tcase_create("wireshark");
  tcase_set_timeout(tc, 60);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_test(tc, keylog_decrypts_capture);
  tcase_add_test(tc, pcap_opens_decrypted);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  int failed = kbt_run(tls_suite());

  /* dumpcap and editcap come with tshark (wireshark-common). */
  return proc_suite_exit(
      failed, proc_skip_unless("/usr/bin/dumpcap", "keylog_decrypts_capture",
                               "apt-get install tshark") |
                  proc_skip_unless("/usr/bin/tshark", "pcap_opens_decrypted",
                                   "apt-get install tshark"));
}
