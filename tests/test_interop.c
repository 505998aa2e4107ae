/*
 * test_interop.c - kbsim's NTLM against NTLM stacks nobody on the team
 * wrote: Samba's ntlm_auth (helper protocols ntlmssp-client-1 and
 * squid-2.5-ntlmssp, local --username/--password) and gss-ntlmssp (through
 * python3-gssapi, tests/interop/gss_ntlmssp.py, which speaks ntlm_auth's
 * line protocol), plus libcurl's NTLM for the spellings of a user name.
 *
 * Both ways:
 *  - each stack as the client of the real listener (topology in-process,
 *    real clock and randomness), on one keep-alive connection that
 *    re-authenticates every POST like Communicator: under per-connection
 *    the second type 1 is forwarded body-less and Exchange answers 500
 *    (the bug), under per-request it gets 401 + a new type 2 and the POST
 *    then goes through;
 *  - each stack as the acceptor of the type 3 kbsim's client builds
 *    (the NEGOTIATE flags and AUTHENTICATE of client.c: ntlm_client_flags,
 *    ntlm_client_authenticate_ex) for NTLMv2 with and without a MIC,
 *    NTLMv1 and NTLMv1-ESS, for an ASCII and a non-ASCII account.
 */
#define _GNU_SOURCE /* pipe2 */
#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backend.h"
#include "client/client.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "ntlm/ntlm.h"
#include "proc.h"
#include "sim/topology.h"

extern char **environ;

#define T_EWS "/EWS/Exchange.asmx"
#define T_DOMAIN "FABRIKAM"
/* The accounts every stack signs in as: ASCII, and non-ASCII in both the
 * user name and the password. */
static const struct {
  const char *user;
  const char *password;
} accounts[] = {
    {"alice", "Passw0rd!"},
    {"j\xc3\xbcrgen", "P\xc3\xa4ssw\xc3\xb6rd"},
};
#define NACCOUNTS (sizeof(accounts) / sizeof(accounts[0]))

static char userfile_dir[256];

/* ---- a helper process speaking ntlm_auth's line protocol ---------------- */

struct helper {
  pid_t pid;
  FILE *to;   /* its stdin */
  FILE *from; /* its stdout */
};

static void helper_start(struct helper *h, char *const argv[])
{
  posix_spawn_file_actions_t fa;
  int in[2], out[2];

  /* Close-on-exec: another helper started later must not hold this one's
   * pipes open (it would never see its stdin end). */
  ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
  ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  ck_assert_msg(posix_spawn(&h->pid, argv[0], &fa, NULL, argv, environ) == 0,
                "cannot start %s; run scripts/setup", argv[0]);
  posix_spawn_file_actions_destroy(&fa);
  close(in[0]);
  close(out[1]);
  h->to = fdopen(in[1], "w");
  h->from = fdopen(out[0], "r");
  ck_assert_ptr_nonnull(h->to);
  ck_assert_ptr_nonnull(h->from);
}

/* Sends one line and returns the helper's answer (its verb, a blank and
 * the argument), without the newline, in a static buffer. The answer is
 * the event waited for; Check's timeout bounds a helper that hangs. */
static const char *helper_say(struct helper *h, const char *verb,
                              const char *arg)
{
  static char line[8192];
  size_t n;

  if(arg)
    fprintf(h->to, "%s %s\n", verb, arg);
  else
    fprintf(h->to, "%s\n", verb);
  ck_assert_int_eq(fflush(h->to), 0);
  ck_assert_msg(fgets(line, sizeof(line), h->from) != NULL,
                "the helper ended without answering %s", verb);
  n = strlen(line);
  while(n && (line[n - 1] == '\n' || line[n - 1] == ' '))
    line[--n] = '\0';
  return line;
}

/* Asserts the answer starts with verb + " " and returns its argument. */
static const char *helper_expect(const char *answer, const char *verb)
{
  size_t n = strlen(verb);

  ck_assert_msg(!strncmp(answer, verb, n) && answer[n] == ' ',
                "helper answered \"%.200s\", not %s", answer, verb);
  return answer + n + 1;
}

/* The type 3 in a client helper's answer to "TT": "KK <type 3>" from
 * gss_ntlmssp.py, "AF <type 3>" from Samba 4 (its handshake ends there). */
static const char *helper_type3(const char *answer)
{
  if(!strncmp(answer, "AF ", 3))
    return answer + 3;
  return helper_expect(answer, "KK");
}

static void helper_stop(struct helper *h)
{
  int status;

  fclose(h->to);
  fclose(h->from);
  ck_assert_int_eq(waitpid(h->pid, &status, 0), h->pid);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "helper exited with status %d", status);
}

/* The stacks, as data: how each starts as client and as acceptor. */
enum stack { STACK_SAMBA, STACK_GSS };
static const char *const stack_names[] = {"Samba ntlm_auth", "gss-ntlmssp"};

static char arg_user[300], arg_password[300], arg_name[300];

/* A client helper signing in as account, typing its user name as user
 * (NULL: as stored). */
static void stack_client_as(struct helper *h, enum stack s, size_t account,
                            const char *user)
{
  snprintf(arg_user, sizeof(arg_user), "--username=%s",
           user ? user : accounts[account].user);
  snprintf(arg_password, sizeof(arg_password), "--password=%s",
           accounts[account].password);
  snprintf(arg_name, sizeof(arg_name), T_DOMAIN "\\%s", accounts[account].user);
  if(s == STACK_SAMBA) {
    char *const argv[] = {"/usr/bin/ntlm_auth",
                          "--helper-protocol=ntlmssp-client-1",
                          arg_user,
                          arg_password,
                          "--domain=" T_DOMAIN,
                          NULL};
    helper_start(h, argv);
  }
  else {
    char *const argv[] = {"/usr/bin/python3", GSS_HELPER, "client", arg_name,
                          NULL};
    helper_start(h, argv);
  }
}

static void stack_client(struct helper *h, enum stack s, size_t account)
{
  stack_client_as(h, s, account, NULL);
}

/* An acceptor that knows account with password (ntlm_auth checks one
 * local account; gss-ntlmssp reads the user file, which holds both). */
static void stack_server(struct helper *h, enum stack s, size_t account,
                         const char *password)
{
  snprintf(arg_user, sizeof(arg_user), "--username=%s", accounts[account].user);
  snprintf(arg_password, sizeof(arg_password), "--password=%s", password);
  if(s == STACK_SAMBA) {
    /* Samba 4 refuses NTLMv1 unless told otherwise, as Windows does with
     * LmCompatibilityLevel 5; ISA's domain controllers of 2009 accepted
     * it, which is what kbsim's v1 kinds stand for. */
    char *const argv[] = {"/usr/bin/ntlm_auth",
                          "--helper-protocol=squid-2.5-ntlmssp",
                          arg_user,
                          arg_password,
                          "--domain=" T_DOMAIN,
                          "--option=ntlm auth = yes",
                          NULL};
    helper_start(h, argv);
  }
  else {
    /* gss-ntlmssp's acceptor refuses NTLMv1 at its default level 3; 2
     * accepts NTLMv1 and NTLMv2 alike. */
    char *const argv[] = {"/usr/bin/env",     "LM_COMPAT_LEVEL=2",
                          "/usr/bin/python3", GSS_HELPER,
                          "server",           NULL};
    helper_start(h, argv);
  }
}

/* ---- HTTP over one keep-alive connection (libcurl) --------------------- */

struct http {
  CURL *h;
  char url[128];
  struct kb_buf body;
  long status;
  long connects;   /* new connections the last request opened */
  char ntlm[4096]; /* the WWW-Authenticate: NTLM token, or "" */
};

static size_t http_collect(char *p, size_t size, size_t n, void *ctx)
{
  struct kb_buf *b = ctx;

  return kb_buf_add(b, p, size * n) == KB_BUF_OK ? size * n : 0;
}

static void http_init(struct http *t, const struct sim_topology *topo)
{
  memset(t, 0, sizeof(*t));
  kb_buf_init(&t->body, 1 << 20);
  snprintf(t->url, sizeof(t->url), "%s" T_EWS, topo->proxy_url);
  t->h = curl_easy_init();
  ck_assert_ptr_nonnull(t->h);
}

/* POSTs body (may be empty) with "Authorization: NTLM token". */
static long http_post(struct http *t, const char *token, const char *body)
{
  struct curl_slist *hs = NULL;
  struct curl_header *wa;
  char auth[4200];
  size_t i;

  snprintf(auth, sizeof(auth), "Authorization: NTLM %s", token);
  hs = curl_slist_append(hs, auth);
  hs = curl_slist_append(hs, "Content-Type: text/xml; charset=utf-8");
  hs = curl_slist_append(hs, "Expect:");
  kb_buf_reset(&t->body);
  curl_easy_setopt(t->h, CURLOPT_URL, t->url);
  curl_easy_setopt(t->h, CURLOPT_HTTPHEADER, hs);
  curl_easy_setopt(t->h, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(t->h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  curl_easy_setopt(t->h, CURLOPT_WRITEFUNCTION, http_collect);
  curl_easy_setopt(t->h, CURLOPT_WRITEDATA, &t->body);
  curl_easy_setopt(t->h, CURLOPT_TIMEOUT, 20L);
  ck_assert_int_eq(curl_easy_perform(t->h), CURLE_OK);
  curl_slist_free_all(hs);
  curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &t->status);
  curl_easy_getinfo(t->h, CURLINFO_NUM_CONNECTS, &t->connects);
  t->ntlm[0] = '\0';
  for(i = 0; curl_easy_header(t->h, "WWW-Authenticate", i, CURLH_HEADER, -1,
                              &wa) == CURLHE_OK;
      i++)
    if(!strncmp(wa->value, "NTLM ", 5))
      snprintf(t->ntlm, sizeof(t->ntlm), "%s", wa->value + 5);
  return t->status;
}

static void http_free(struct http *t)
{
  curl_easy_cleanup(t->h);
  kb_buf_free(&t->body);
}

/* ---- the topology ------------------------------------------------------ */

static struct kb_users *interop_users(void)
{
  struct kb_users *u = kb_users_new();
  char err[256];
  size_t i;

  ck_assert_ptr_nonnull(u);
  for(i = 0; i < NACCOUNTS; i++)
    ck_assert_int_eq(kb_users_add(u, T_DOMAIN, accounts[i].user,
                                  accounts[i].password, err, sizeof(err)),
                     0);
  return u;
}

/* The listener's "authenticated as" notes, kept for the test to read. */
static pthread_mutex_t notes_lock = PTHREAD_MUTEX_INITIALIZER;
static char auth_notes[4096];

static void interop_note(void *ctx, const struct kb_trace_event *ev)
{
  (void)ctx;
  if(ev->kind != KB_TRACE_NOTE || ev->note != KB_NOTE_AUTH_OK)
    return;
  pthread_mutex_lock(&notes_lock);
  if(strlen(auth_notes) + strlen(ev->text) + 2 < sizeof(auth_notes)) {
    strcat(auth_notes, ev->text);
    strcat(auth_notes, "\n");
  }
  pthread_mutex_unlock(&notes_lock);
}

static struct sim_topology *interop_start_dns(struct kb_users *users,
                                              enum proxy_policy policy,
                                              const char *dns_domain)
{
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  char err[256];

  auth_notes[0] = '\0';
  memset(&cfg, 0, sizeof(cfg));
  cfg.policy = policy;
  cfg.users = users;
  cfg.trace.emit = interop_note;
  cfg.dns_domain = dns_domain;
  ck_assert_msg(sim_topology_start(&cfg, &topo, err, sizeof(err)) == 0, "%s",
                err);
  return topo;
}

static struct sim_topology *interop_start(struct kb_users *users,
                                          enum proxy_policy policy)
{
  return interop_start_dns(users, policy, NULL);
}

static char *oof_body;

/* ---- independent clients of the listener ------------------------------- */

/* One handshake on t with the client helper: type 1 without a body (401
 * + type 2), type 3 with the body; returns the status of the type 3. */
static long interop_handshake(struct http *t, struct helper *c)
{
  char type1[4096];

  snprintf(type1, sizeof(type1), "%s",
           helper_expect(helper_say(c, "YR", NULL), "YR"));
  ck_assert_int_eq(http_post(t, type1, ""), 401);
  ck_assert_msg(t->ntlm[0], "no type 2 in the 401");
  return http_post(t, helper_type3(helper_say(c, "TT", t->ntlm)), oof_body);
}

/* _i: stack * 2 * NACCOUNTS + policy * NACCOUNTS + account */
START_TEST(test_stack_as_client)
{
  const enum stack s = (enum stack)(_i / (2 * NACCOUNTS));
  const enum proxy_policy policy = (_i / NACCOUNTS) % 2
                                       ? PROXY_POLICY_PER_REQUEST
                                       : PROXY_POLICY_PER_CONNECTION;
  const size_t account = (size_t)_i % NACCOUNTS;
  struct kb_users *users = interop_users();
  struct sim_topology *topo = interop_start(users, policy);
  struct backend_stats bs;
  struct helper c;
  struct http t;
  char type1[4096];

  stack_client(&c, s, account);
  http_init(&t, topo);
  /* First POST of the session: the whole handshake, the body with the
   * type 3, Exchange's answer. */
  ck_assert_msg(interop_handshake(&t, &c) == 200, "%s as %s: type 3 -> %ld: %s",
                stack_names[s], accounts[account].user, t.status,
                t.body.data ? t.body.data : "");
  ck_assert_ptr_nonnull(strstr(t.body.data, "GetUserOofSettingsResponse"));
  /* Both ask for KEY_EXCH and send a random session key, which the
   * listener decrypted. Neither sends a MIC over raw NTLMSSP (gss-ntlmssp
   * and Samba add one only inside SPNEGO); the acceptor tests below have
   * gss-ntlmssp check kbsim's. */
  pthread_mutex_lock(&notes_lock);
  ck_assert_msg(strstr(auth_notes, "(NTLMv2, session key exchanged)"), "%s",
                auth_notes);
  pthread_mutex_unlock(&notes_lock);

  /* The next POST re-authenticates on the same connection. */
  snprintf(type1, sizeof(type1), "%s",
           helper_expect(helper_say(&c, "YR", NULL), "YR"));
  http_post(&t, type1, "");
  ck_assert_int_eq(t.connects, 0);
  if(policy == PROXY_POLICY_PER_CONNECTION) {
    /* KB 942638: not challenged, forwarded without its body. */
    ck_assert_int_eq(t.status, 500);
    ck_assert_str_eq(t.ntlm, "");
    backend_stats(topo->backend, &bs);
    ck_assert_uint_eq(bs.empty_posts, 1);
    ck_assert_uint_eq(bs.soap_faults, 1);
  }
  else {
    ck_assert_int_eq(t.status, 401);
    ck_assert_msg(t.ntlm[0], "no new type 2");
    ck_assert_int_eq(
        http_post(&t, helper_type3(helper_say(&c, "TT", t.ntlm)), oof_body),
        200);
    ck_assert_int_eq(t.connects, 0);
    ck_assert_ptr_nonnull(strstr(t.body.data, "GetUserOofSettingsResponse"));
    backend_stats(topo->backend, &bs);
    ck_assert_uint_eq(bs.empty_posts, 0);
    ck_assert_uint_eq(bs.oof_ok, 2);
  }
  http_free(&t);
  helper_stop(&c);
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* A user name that differs from the stored one only in non-ASCII case
 * ("JÜRGEN" for "jürgen") signs in, from Samba's client. (libcurl can't
 * say it: it sends each byte of a name as one UTF-16 unit.) */
START_TEST(test_non_ascii_case)
{
  struct kb_users *users = interop_users();
  struct sim_topology *topo = interop_start(users, PROXY_POLICY_PER_REQUEST);
  struct helper c;
  struct http t;

  stack_client_as(&c, STACK_SAMBA, 1, "J\xc3\x9cRGEN");
  http_init(&t, topo);
  ck_assert_int_eq(interop_handshake(&t, &c), 200);
  ck_assert_ptr_nonnull(strstr(t.body.data, "GetUserOofSettingsResponse"));
  http_free(&t);
  helper_stop(&c);
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* A stack that types the wrong password gets the 401 every failed login
 * gets, and nothing reaches Exchange. */
START_TEST(test_stack_wrong_password)
{
  const enum stack s = (enum stack)_i;
  struct kb_users *users = kb_users_new();
  struct sim_topology *topo;
  struct backend_stats bs;
  struct helper c;
  struct http t;
  char err[256];

  /* The store holds another password than the helper types. */
  ck_assert_int_eq(
      kb_users_add(users, T_DOMAIN, "alice", "Other1!", err, sizeof(err)), 0);
  topo = interop_start(users, PROXY_POLICY_PER_REQUEST);
  stack_client(&c, s, 0);
  http_init(&t, topo);
  ck_assert_int_eq(interop_handshake(&t, &c), 401);
  ck_assert_str_eq(t.body.data, "ISA ISA01: authentication failed; check the "
                                "user name and password\n");
  backend_stats(topo->backend, &bs);
  ck_assert_uint_eq(bs.requests, 0);
  http_free(&t);
  helper_stop(&c);
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* ---- independent acceptors of kbsim's type 3 ---------------------------- */

struct kind_row {
  const char *name;
  enum ntlm_response_kind kind;
  bool mic;
};

static const struct kind_row iokinds[] = {
    {"v2", NTLM_RESPONSE_V2, false},
    {"v2-mic", NTLM_RESPONSE_V2, true},
    {"v1", NTLM_RESPONSE_V1, false},
    {"v1-ess", NTLM_RESPONSE_V1_ESS, false},
};
#define NKINDS (sizeof(iokinds) / sizeof(iokinds[0]))

/* kbsim's client answering the acceptor's type 2 (base64) to type1 as
 * client.c does; returns the type 3 in base64 (caller frees). */
static char *kbsim_type3(const char *type2_b64, const struct ntlm_bytes *type1,
                         size_t k, size_t account, const char *password)
{
  static const uint8_t cchal[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  struct ntlm_client_creds creds = {T_DOMAIN, accounts[account].user, password,
                                    "COMMUNICATOR", iokinds[k].kind};
  struct ntlm_client_options opt;
  struct ntlm_exchange ex;
  struct ntlm_bytes t2 = {0}, t3 = {0};
  struct ntlm_message chal;
  enum ntlm_scheme scheme;
  char *header;
  char *b64;
  char hdr[4200];
  char err[256] = "";

  snprintf(hdr, sizeof(hdr), "NTLM %s", type2_b64);
  ck_assert_int_eq(ntlm_header_parse(hdr, &scheme, &t2, err, sizeof(err)),
                   NTLM_OK);
  ck_assert_int_eq(ntlm_decode(t2.data, t2.len, &chal, err, sizeof(err)),
                   NTLM_OK);
  memset(&opt, 0, sizeof(opt));
  opt.client_challenge = cchal;
  opt.timestamp = ntlm_filetime_from_unix_ms(KBT_CASE_MS);
  ex.negotiate = type1->data;
  ex.negotiate_len = type1->len;
  ex.challenge = t2.data;
  ex.challenge_len = t2.len;
  ex.authenticate = NULL;
  ex.authenticate_len = 0;
  opt.mic = iokinds[k].mic;
  opt.exchange = &ex;
  ck_assert_msg(ntlm_client_authenticate_ex(&creds, &chal, &opt, &t3, NULL, err,
                                            sizeof(err)) == NTLM_OK,
                "%s", err);
  header = ntlm_header_format(NTLM_SCHEME_NTLM, t3.data, t3.len);
  ck_assert_ptr_nonnull(header);
  b64 = strdup(header + 5);
  free(header);
  ntlm_bytes_free(&t2);
  ntlm_bytes_free(&t3);
  ntlm_message_free(&chal);
  return b64;
}

/* The acceptors the "acceptors" test case shares, each knowing its
 * account (gss-ntlmssp's reads the user file, which holds both: one
 * process serves both accounts). */
static struct helper acceptors[2][NACCOUNTS];

/* _i: stack * NKINDS * NACCOUNTS + kind * NACCOUNTS + account */
START_TEST(test_stack_as_acceptor)
{
  const enum stack s = (enum stack)(_i / (NKINDS * NACCOUNTS));
  const size_t k = (size_t)(_i / NACCOUNTS) % NKINDS;
  const size_t account = (size_t)_i % NACCOUNTS;
  const char *const passwords[] = {accounts[account].password, "Wr0ng!"};
  struct helper *a = &acceptors[s][account];
  size_t wrong;

  /* One acceptor for every handshake: "YR" starts a new one. */
  for(wrong = 0; wrong < 2; wrong++) {
    struct ntlm_bytes type1 = {0};
    char *header;
    char *t3;
    char type2[4096];
    const char *verdict;

    ck_assert_int_eq(
        ntlm_client_negotiate(ntlm_client_flags(iokinds[k].kind), &type1),
        NTLM_OK);
    header = ntlm_header_format(NTLM_SCHEME_NTLM, type1.data, type1.len);
    snprintf(type2, sizeof(type2), "%s",
             helper_expect(helper_say(a, "YR", header + 5), "TT"));
    free(header);
    t3 = kbsim_type3(type2, &type1, k, account, passwords[wrong]);
    verdict = helper_say(a, "KK", t3);
    if(!wrong)
      ck_assert_msg(!strncmp(verdict, "AF ", 3),
                    "%s refused kbsim's %s as %s: %s", stack_names[s],
                    iokinds[k].name, accounts[account].user, verdict);
    else
      ck_assert_msg(!strncmp(verdict, "NA ", 3),
                    "%s accepted kbsim's %s with a wrong password: %s",
                    stack_names[s], iokinds[k].name, verdict);
    free(t3);
    ntlm_bytes_free(&type1);
  }
}
END_TEST

/* kbsim's own client with --ntlm v2-mic through the listener: the MIC
 * (which gss-ntlmssp accepts above) is verified, for every POST of the
 * session, under per-request; and plain v1 signs in as v1. */
START_TEST(test_kbsim_client_kinds)
{
  struct kb_users *users = interop_users();
  struct sim_topology *topo = interop_start(users, PROXY_POLICY_PER_REQUEST);
  struct client_config cfg;
  struct client *c = NULL;
  char err[256];
  const char *p;
  int n = 0;

  sim_topology_client_config(topo, 1, T_DOMAIN, "alice", "Passw0rd!", 2, &cfg);
  cfg.ntlm_mic = true;
  ck_assert_int_eq(client_create(&cfg, &c, err, sizeof(err)), 0);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_destroy(c);
  pthread_mutex_lock(&notes_lock);
  for(p = auth_notes; (p = strstr(p, "(NTLMv2, MIC verified)")); p++)
    n++;
  pthread_mutex_unlock(&notes_lock);
  /* autodiscover and two EWS POSTs, each its own handshake */
  ck_assert_msg(n == 3, "%d MICs verified: %s", n, auth_notes);

  pthread_mutex_lock(&notes_lock);
  auth_notes[0] = '\0';
  pthread_mutex_unlock(&notes_lock);
  sim_topology_client_config(topo, 2, T_DOMAIN, "alice", "Passw0rd!", 1, &cfg);
  cfg.ntlm_kind = NTLM_RESPONSE_V1;
  ck_assert_int_eq(client_create(&cfg, &c, err, sizeof(err)), 0);
  ck_assert_uint_eq(client_run_session(c), 0);
  client_destroy(c);
  pthread_mutex_lock(&notes_lock);
  ck_assert_msg(strstr(auth_notes, "(NTLMv1)"), "%s", auth_notes);
  pthread_mutex_unlock(&notes_lock);
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* ---- Chromium ---------------------------------------------------------- */

/* Headless Chromium's own NTLM (net/ntlm), with credentials in the URL:
 * a bare "alice" (empty domain) signs in and reaches Exchange, whose 405
 * to a GET is the page; a wrong password ends the load with
 * ERR_INVALID_AUTH_CREDENTIALS and nothing reaches Exchange. */
START_TEST(test_chromium)
{
  static const struct {
    const char *userinfo;
    bool ok;
  } rows[] = {{"alice:Passw0rd!", true}, {"alice:Wr0ng!", false}};
  struct kb_users *users;
  struct sim_topology *topo;
  struct backend_stats bs;
  size_t i;

  if(!proc_have("/usr/bin/chromium"))
    return; /* skipped; main says so */
  users = interop_users();
  topo = interop_start(users, PROXY_POLICY_PER_REQUEST);
  for(i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    char profile[300], user_data[320], url[256];
    char *argv[] = {"/usr/bin/chromium",
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    user_data,
                    "--dump-dom",
                    url,
                    NULL};
    struct proc_out p;

    snprintf(profile, sizeof(profile), "%s/chromium-%zu", userfile_dir, i);
    snprintf(user_data, sizeof(user_data), "--user-data-dir=%s", profile);
    snprintf(url, sizeof(url), "http://%s@%s/autodiscover/autodiscover.xml",
             rows[i].userinfo, topo->proxy_url + strlen("http://"));
    proc_run(argv, &p);
    ck_assert_msg(p.status == 0, "chromium exited %d: %.2000s", p.status,
                  p.err.data);
    if(rows[i].ok)
      ck_assert_msg(strstr(p.out.data, "405 - HTTP verb used to access this "
                                       "page is not allowed"),
                    "%.2000s", p.out.data);
    else
      ck_assert_msg(strstr(p.err.data, "ERR_INVALID_AUTH_CREDENTIALS"),
                    "%.2000s", p.err.data);
    proc_free(&p);
  }
  backend_stats(topo->backend, &bs);
  ck_assert_uint_eq(bs.bad_method, 1);
  pthread_mutex_lock(&notes_lock);
  ck_assert_msg(strstr(auth_notes, "authenticated as FABRIKAM\\alice"), "%s",
                auth_notes);
  pthread_mutex_unlock(&notes_lock);
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* ---- an OEM-only client: httpntlm's type 3 ---------------------------- */

/* httpntlm 1.7.7 (npm, tests/interop/oem_client.js) negotiates OEM strings
 * only and writes its type 3's strings in OEM, under a fixed flags word
 * that says UNICODE: the listener reads them as the handshake agreed (as
 * Samba does) and signs alice in; a wrong password is still refused. */
START_TEST(test_oem_client)
{
  static const struct {
    const char *password;
    long status;
  } rows[] = {{"Passw0rd!", 200}, {"Wr0ng!", 401}};
  struct kb_users *users;
  struct sim_topology *topo;
  char url[256];
  size_t i;

  if(!proc_have("/usr/bin/node"))
    return; /* skipped; main says so */
  users = interop_users();
  topo = interop_start(users, PROXY_POLICY_PER_REQUEST);
  snprintf(url, sizeof(url), "%s/EWS/Exchange.asmx", topo->proxy_url);
  for(i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    char *argv[] = {"/usr/bin/env",
                    "NODE_PATH=" NODE_MODULES,
                    "/usr/bin/node",
                    "--openssl-legacy-provider",
                    TESTS_DIR "/interop/oem_client.js",
                    url,
                    T_DOMAIN,
                    "alice",
                    (char *)rows[i].password,
                    TESTS_DIR "/data/oof-request.xml",
                    NULL};
    struct proc_out p;
    unsigned t1, t2, t3;
    long status;

    proc_run(argv, &p);
    ck_assert_msg(p.status == 0, "oem_client exited %d: %s%s", p.status,
                  p.out.data, p.err.data);
    ck_assert_int_eq(sscanf(p.out.data, "%ld type1 0x%x type2 0x%x type3 0x%x",
                            &status, &t1, &t2, &t3),
                     4);
    ck_assert_int_eq(status, rows[i].status);
    /* OEM alone asked for and agreed; the type 3's word says UNICODE. */
    ck_assert_uint_eq(t1, NTLM_NEGOTIATE_NTLM | NTLM_NEGOTIATE_OEM);
    ck_assert_uint_eq(t2 & NTLM_NEGOTIATE_UNICODE, 0);
    ck_assert_uint_ne(t2 & NTLM_NEGOTIATE_OEM, 0);
    ck_assert_uint_ne(t3 & NTLM_NEGOTIATE_UNICODE, 0);
    proc_free(&p);
  }
  pthread_mutex_lock(&notes_lock);
  ck_assert_msg(strstr(auth_notes, "authenticated as FABRIKAM\\alice"), "%s",
                auth_notes);
  pthread_mutex_unlock(&notes_lock);
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* ---- libcurl: the spellings of one account ----------------------------- */

/* Every spelling a domain controller accepts gets through libcurl's NTLM
 * (which sends user and domain as typed); the others get the same 401. */
struct spelling {
  const char *userpwd;
  long status;
};

/* POSTs with libcurl's NTLM as each spelling, one connection each, and
 * asserts its status; every 401 has the same body. */
static void curl_spellings(const struct sim_topology *topo,
                           const struct spelling *rows, size_t n)
{
  size_t i;

  for(i = 0; i < n; i++) {
    struct http t;
    long status;
    http_init(&t, topo);
    curl_easy_setopt(t.h, CURLOPT_URL, t.url);
    curl_easy_setopt(t.h, CURLOPT_HTTPAUTH, CURLAUTH_NTLM);
    curl_easy_setopt(t.h, CURLOPT_USERPWD, rows[i].userpwd);
    curl_easy_setopt(t.h, CURLOPT_POSTFIELDS, oof_body);
    curl_easy_setopt(t.h, CURLOPT_WRITEFUNCTION, http_collect);
    curl_easy_setopt(t.h, CURLOPT_WRITEDATA, &t.body);
    curl_easy_setopt(t.h, CURLOPT_TIMEOUT, 20L);
    ck_assert_int_eq(curl_easy_perform(t.h), CURLE_OK);
    curl_easy_getinfo(t.h, CURLINFO_RESPONSE_CODE, &status);
    ck_assert_msg(status == rows[i].status, "%s -> %ld, want %ld",
                  rows[i].userpwd, status, rows[i].status);
    if(status == 401)
      ck_assert_str_eq(t.body.data, "ISA ISA01: authentication failed; "
                                    "check the user name and password\n");
    else
      ck_assert_ptr_nonnull(strstr(t.body.data, "GetUserOofSettingsResponse"));
    http_free(&t);
  }
}

/* Every spelling a domain controller accepts gets through libcurl's NTLM
 * (which sends user and domain as typed); the others get the same 401. */
START_TEST(test_curl_spellings)
{
  static const struct spelling rows[] = {
      {"FABRIKAM\\alice:Passw0rd!", 200},
      {"fabrikam\\ALICE:Passw0rd!", 200},
      {"alice:Passw0rd!", 200}, /* empty domain: the listener's */
      {"fabrikam.com\\alice:Passw0rd!", 200},
      {"alice@fabrikam.com:Passw0rd!", 200}, /* UPN, empty domain */
      {"FABRIKAM\\alice:passw0rd!", 401},
      {"FABRIKAM\\mallory:Passw0rd!", 401},
      {"CONTOSO\\alice:Passw0rd!", 401},
      {"alice@FABRIKAM:Passw0rd!", 401},
  };
  struct kb_users *users = interop_users();
  struct sim_topology *topo = interop_start(users, PROXY_POLICY_PER_REQUEST);

  curl_spellings(topo, rows, sizeof(rows) / sizeof(rows[0]));
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* With another DNS domain configured ([users] dns_domain), that name and
 * its UPNs sign in, and fabrikam.com no longer does. */
START_TEST(test_curl_dns_domain)
{
  static const struct spelling rows[] = {
      {"corp.fabrikam.test\\alice:Passw0rd!", 200},
      {"alice@CORP.fabrikam.test:Passw0rd!", 200},
      {"fabrikam.com\\alice:Passw0rd!", 401},
      {"alice@fabrikam.com:Passw0rd!", 401},
  };
  struct kb_users *users = interop_users();
  struct sim_topology *topo =
      interop_start_dns(users, PROXY_POLICY_PER_REQUEST, "corp.fabrikam.test");

  curl_spellings(topo, rows, sizeof(rows) / sizeof(rows[0]));
  sim_topology_stop(topo);
  kb_users_free(users);
}
END_TEST

/* Per test (in its own process): the request body, and gss-ntlmssp's
 * user file holding both accounts. */
static void interop_setup(void)
{
  char path[300];
  FILE *f;
  size_t i;

  oof_body = proc_slurp(TESTS_DIR "/data/oof-request.xml", NULL);
  proc_tmpdir("kbsim-interop", userfile_dir, sizeof(userfile_dir));
  snprintf(path, sizeof(path), "%s/users", userfile_dir);
  f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  for(i = 0; i < NACCOUNTS; i++)
    fprintf(f, T_DOMAIN ":%s:%s\n", accounts[i].user, accounts[i].password);
  ck_assert_int_eq(fclose(f), 0);
  ck_assert_int_eq(setenv("NTLM_USER_FILE", path, 1), 0);
}

static void interop_teardown(void)
{
  proc_rmdir(userfile_dir);
  free(oof_body);
  oof_body = NULL;
}

/* Once for the acceptors' test case (its tests do not interfere: "YR"
 * starts each handshake afresh): the user file and one acceptor per stack
 * and account, started once rather than per test. */
static void acceptors_setup(void)
{
  size_t i;

  interop_setup();
  for(i = 0; i < NACCOUNTS; i++)
    stack_server(&acceptors[STACK_SAMBA][i], STACK_SAMBA, i,
                 accounts[i].password);
  stack_server(&acceptors[STACK_GSS][0], STACK_GSS, 0, accounts[0].password);
  for(i = 1; i < NACCOUNTS; i++)
    acceptors[STACK_GSS][i] = acceptors[STACK_GSS][0];
}

static void acceptors_teardown(void)
{
  size_t i;

  for(i = 0; i < NACCOUNTS; i++)
    helper_stop(&acceptors[STACK_SAMBA][i]);
  helper_stop(&acceptors[STACK_GSS][0]);
  interop_teardown();
}

int main(void)
{
  Suite *s = suite_create("interop");
  TCase *tc;
  int failed;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  /* The third-party stacks, Samba's and gss-ntlmssp: their cost, not
   * kbsim's (tests/README.md's rule for the slow tag). */
  tc = tcase_create("stacks");
  tcase_set_timeout(tc, 60);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_checked_fixture(tc, interop_setup, interop_teardown);
  tcase_add_loop_test(tc, test_stack_as_client, 0, (int)(2 * 2 * NACCOUNTS));
  tcase_add_loop_test(tc, test_stack_wrong_password, 0, 2);
  tcase_add_test(tc, test_non_ascii_case);
  suite_add_tcase(s, tc);

  tc = tcase_create("clients");
  tcase_set_timeout(tc, 60);
  tcase_add_checked_fixture(tc, interop_setup, interop_teardown);
  tcase_add_test(tc, test_curl_spellings);
  tcase_add_test(tc, test_curl_dns_domain);
  tcase_add_test(tc, test_kbsim_client_kinds);
  suite_add_tcase(s, tc);

  tc = tcase_create("browser");
  tcase_set_timeout(tc, 60);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_checked_fixture(tc, interop_setup, interop_teardown);
  tcase_add_test(tc, test_chromium);
  suite_add_tcase(s, tc);

  tc = tcase_create("node");
  tcase_set_timeout(tc, 60);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_checked_fixture(tc, interop_setup, interop_teardown);
  tcase_add_test(tc, test_oem_client);
  suite_add_tcase(s, tc);
  tc = tcase_create("acceptors");
  tcase_set_timeout(tc, 60);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_unchecked_fixture(tc, acceptors_setup, acceptors_teardown);
  tcase_add_loop_test(tc, test_stack_as_acceptor, 0,
                      (int)(2 * NKINDS * NACCOUNTS));
  suite_add_tcase(s, tc);

  failed = kbt_run(s);
  return proc_suite_exit(
      failed, proc_skip_unless("/usr/bin/chromium", "test_chromium",
                               "apt-get install chromium") |
                  proc_skip_unless("/usr/bin/node", "test_oem_client",
                                   "apt-get install nodejs"));
}
