/*
 * test_hostile_invariants.c - the security invariants of NTLM per
 * connection against the real listener (test_hostile.h): seeded random
 * request sequences over interleaved connections checked against a model
 * of the decision table, the bug's path keeping each connection's
 * identity, no state crossing connections; and no password (as typed, as
 * UTF-16LE, as its NT hash) in any evidence file kbsim writes.
 */
#define _GNU_SOURCE /* memmem */
#include <check.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "ntlm/ntlm.h"
#include "ntlm/ntlm_core.h"
#include "proc.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "test_hostile.h"

/* ---- clock, random source ----------------------------------------------- */

/* splitmix64: the seeded PRNG of the random-sequence tests. */
static uint64_t hx_rand(uint64_t *state)
{
  uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

/* ---- tests: security invariants ---------------------------------------- */

/* What a random step does on a connection. */
enum hx_op {
  HX_PLAIN,        /* POST with a body, no Authorization */
  HX_TYPE1,        /* Communicator's leg 1: type 1, Content-Length 0 */
  HX_TYPE3,        /* a valid answer to this connection's latest type 2 */
  HX_TYPE3_WRONG,  /* ... with the wrong password */
  HX_TYPE3_OTHER,  /* a valid answer to another connection's type 2 */
  HX_TYPE3_REPLAY, /* a type 3 this connection already used */
  HX_GARBAGE,      /* an Authorization that is not NTLM */
  HX_RECONNECT,    /* close and open a new connection */
  HX_NOPS
};

enum hx_state { HX_UNAUTH, HX_CHALLENGED, HX_AUTH };

/* One connection of the random test and the model of what the proxy must
 * think of it. */
struct hx_mconn {
  struct rc c;
  enum hx_state state;
  int who;       /* user index when HX_AUTH */
  bool has_chal; /* chal holds the latest type 2 seen */
  struct ntlm_message chal;
  char *used_type3;        /* the last type 3 that authenticated it */
  unsigned forwarded;      /* requests the model says reached the backend */
  unsigned skips;          /* re-authentications skipped (the bug path) */
  char skip_users[64][16]; /* who each skip note must name */
};

static const char *const hx_user[2] = {"alice", "bob"};
static const char *const hx_password[2] = {T_ALICE_PASSWORD, T_BOB_PASSWORD};

static void hx_mconn_open(struct hx *e, struct hx_mconn *m)
{
  memset(m, 0, sizeof(*m));
  hx_open(&m->c, e);
}

static void hx_mconn_reset(struct hx_mconn *m)
{
  rc_close(&m->c);
  if(m->has_chal)
    ntlm_message_free(&m->chal);
  free(m->used_type3);
  m->has_chal = false;
  m->used_type3 = NULL;
}

/* Drives nsteps random steps (PRNG seeded with seed) over nconns
 * interleaved connections and checks every answer against the model of
 * proxy.h's decision table. At the end the backend must have received
 * exactly the requests the model allows, each on an upstream connection
 * of the client connection that sent it, and every skipped
 * re-authentication must name the user its connection authenticated as. */
static void hx_random_sequences(enum proxy_policy policy, uint64_t seed,
                                unsigned nconns, unsigned nsteps)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {policy, 0, 0, 0, NULL};
  struct hx_mconn *conns = calloc(nconns, sizeof(*conns));
  struct hx_mconn *done = NULL;
  struct hx_mconn *grown;
  size_t ndone = 0;
  uint64_t rng = seed;
  unsigned total = 0;
  unsigned by_op[HX_NOPS][2]; /* [op][forwarded?]: the run's coverage */
  unsigned step;
  size_t i, k;
  char *t1 = kbt_ntlm_type1(NTLM_SCHEME_NTLM);

  ck_assert_ptr_nonnull(conns);
  memset(by_op, 0, sizeof(by_op));
  hx_start(&e, &o);
  for(i = 0; i < nconns; i++)
    hx_mconn_open(&e, &conns[i]);
  for(step = 0; step < nsteps; step++) {
    struct hx_mconn *m = &conns[hx_rand(&rng) % nconns];
    struct hx_mconn *other = &conns[hx_rand(&rng) % nconns];
    enum hx_op op = (enum hx_op)(hx_rand(&rng) % HX_NOPS);
    int user = (int)(hx_rand(&rng) % 2);
    struct rc_resp r;
    char *auth = NULL;
    const char *body = oof_body;
    bool valid_answer = false;
    int want;

    /* Half the steps on a challenged connection answer it properly, so
     * that handshakes complete and authenticated states get explored. */
    if(m->state == HX_CHALLENGED && (hx_rand(&rng) & 1))
      op = HX_TYPE3;
    switch(op) {
    case HX_PLAIN:
      break;
    case HX_TYPE1:
      auth = strdup(t1);
      body = "";
      break;
    case HX_TYPE3:
    case HX_TYPE3_WRONG:
      if(!m->has_chal) {
        op = HX_GARBAGE; /* nothing to answer yet */
        auth = strdup("NTLM TlRMTVNTUAAHAAAA");
        break;
      }
      auth = kbt_ntlm_type3(&m->chal, NTLM_SCHEME_NTLM, hx_user[user],
                            op == HX_TYPE3 ? hx_password[user] : "wrong");
      valid_answer = op == HX_TYPE3 && m->state == HX_CHALLENGED;
      break;
    case HX_TYPE3_OTHER:
      if(other == m || !other->has_chal) {
        op = HX_PLAIN;
        break;
      }
      auth = kbt_ntlm_type3(&other->chal, NTLM_SCHEME_NTLM, hx_user[user],
                            hx_password[user]);
      break;
    case HX_TYPE3_REPLAY:
      if(!m->used_type3) {
        op = HX_PLAIN;
        break;
      }
      auth = strdup(m->used_type3);
      break;
    case HX_GARBAGE:
      auth = strdup((hx_rand(&rng) & 1) ? "NTLM !!garbage!!"
                                        : "Basic YWxpY2U6UGFzc3cwcmQh");
      break;
    case HX_RECONNECT:
    case HX_NOPS:
      /* The model keeps what the old connection did; a new one starts
       * unauthenticated. */
      grown = realloc(done, (ndone + 1) * sizeof(*done));
      ck_assert_ptr_nonnull(grown);
      done = grown;
      rc_close(&m->c);
      done[ndone++] = *m;
      hx_mconn_open(&e, m);
      by_op[HX_RECONNECT][0]++;
      continue;
    }

    /* What proxy.h's table says. */
    if(op == HX_PLAIN)
      want = m->state == HX_AUTH ? 200 : 401;
    else if(op == HX_TYPE1)
      want = m->state == HX_AUTH && policy == PROXY_POLICY_PER_CONNECTION
                 ? 500 /* forwarded without its body: the bug */
                 : 401;
    else if(op == HX_GARBAGE)
      want = 401;
    else
      want = valid_answer ? 200 : 401;

    ck_assert_msg(rc_post(&m->c, T_EWS, auth, body, strlen(body), &r) == want,
                  "seed %" PRIu64 " step %u: %s op %d in state %d: got %d, "
                  "want %d",
                  seed, step, m->c.name, (int)op, (int)m->state, r.status,
                  want);

    by_op[op][want != 401]++;
    /* Move the model. */
    if(want != 401) {
      m->forwarded++;
      total++;
    }
    if(op == HX_TYPE1 && want == 500) {
      ck_assert_uint_lt(m->skips, 64);
      snprintf(m->skip_users[m->skips++], 16, "%s", hx_user[m->who]);
    }
    else if(op == HX_TYPE1) {
      if(m->has_chal)
        ntlm_message_free(&m->chal);
      kbt_ntlm_challenge_of(&r, &m->chal);
      m->has_chal = true;
      m->state = HX_CHALLENGED;
    }
    else if(want == 200 && op != HX_PLAIN) {
      m->state = HX_AUTH;
      m->who = user;
      free(m->used_type3);
      m->used_type3 = strdup(auth);
    }
    else if(want == 401) {
      m->state = HX_UNAUTH;
    }
    rc_resp_free(&r);
    free(auth);
  }

  /* The sequence did walk the table: handshakes completed, requests went
   * through on authenticated connections, every kind of step was tried,
   * and (per-connection only) the bug's path was taken. */
  ck_assert_uint_gt(by_op[HX_TYPE3][1], 5);
  ck_assert_uint_gt(by_op[HX_PLAIN][1], 5);
  ck_assert_uint_gt(by_op[HX_PLAIN][0], 5);
  for(i = 0; i < HX_NOPS; i++)
    ck_assert_msg(by_op[i][0] + by_op[i][1] > 3, "op %zu tried %u times", i,
                  by_op[i][0] + by_op[i][1]);
  for(i = HX_TYPE3_WRONG; i <= HX_GARBAGE; i++)
    ck_assert_uint_eq(by_op[i][1], 0);
  if(policy == PROXY_POLICY_PER_CONNECTION)
    ck_assert_uint_gt(by_op[HX_TYPE1][1], 3);
  else
    ck_assert_uint_eq(by_op[HX_TYPE1][1], 0);
  if(getenv("HX_TRACE"))
    for(i = 0; i < HX_NOPS; i++)
      fprintf(stderr, "op %zu: %u refused, %u forwarded\n", i, by_op[i][0],
              by_op[i][1]);

  /* The backend saw exactly what the model allows ... */
  ck_assert_uint_eq(hx_backend_requests(&e), total);
  ck_assert_uint_eq(hx_forwarded(&e), total);
  /* ... each request on an upstream connection of its own client
   * connection, and every skip note names that connection's user. */
  for(k = 0; k < ndone + nconns; k++) {
    struct hx_mconn *m = k < ndone ? &done[k] : &conns[k - ndone];
    char prefix[80];
    uint64_t id = hx_proxy_conn_id(&e.env.trace, m->c.name);
    unsigned seen = 0, skips = 0;

    snprintf(prefix, sizeof(prefix), "%s upstream ", m->c.name);
    pthread_mutex_lock(&e.env.trace.lock);
    for(i = 0; i < e.env.trace.n; i++) {
      const struct kbt_event *ev = &e.env.trace.ev[i];
      if(ev->kind == KB_TRACE_EXCHANGE && !strcmp(hx_role(ev), "backend") &&
         !strncmp(ev->conn_name, prefix, strlen(prefix)))
        seen++;
      if(ev->kind == KB_TRACE_NOTE && ev->conn == id &&
         ev->note == KB_NOTE_REAUTH_SKIPPED) {
        char want_note[80];
        ck_assert_uint_lt(skips, m->skips);
        snprintf(want_note, sizeof(want_note),
                 "is already authenticated as FABRIKAM\\%s;",
                 m->skip_users[skips]);
        ck_assert_msg(strstr(ev->text, want_note), "%s: \"%s\" lacks \"%s\"",
                      m->c.name, ev->text, want_note);
        skips++;
      }
    }
    pthread_mutex_unlock(&e.env.trace.lock);
    ck_assert_msg(seen == m->forwarded, "%s: backend saw %u, model says %u",
                  m->c.name, seen, m->forwarded);
    ck_assert_uint_eq(skips, m->skips);
    if(policy == PROXY_POLICY_PER_REQUEST)
      ck_assert_uint_eq(skips, 0);
  }
  /* Every backend exchange belongs to a named client connection. */
  pthread_mutex_lock(&e.env.trace.lock);
  for(i = 0; i < e.env.trace.n; i++)
    if(e.env.trace.ev[i].kind == KB_TRACE_EXCHANGE &&
       !strcmp(hx_role(&e.env.trace.ev[i]), "backend"))
      ck_assert_msg(!strncmp(e.env.trace.ev[i].conn_name, "hostile ", 8),
                    "backend exchange on \"%s\"", e.env.trace.ev[i].conn_name);
  pthread_mutex_unlock(&e.env.trace.lock);

  for(i = 0; i < nconns; i++)
    hx_mconn_reset(&conns[i]);
  for(k = 0; k < ndone; k++)
    hx_mconn_reset(&done[k]);
  free(done);
  free(conns);
  free(t1);
  hx_stop(&e);
}

START_TEST(test_random_sequences_per_connection)
{
  hx_random_sequences(PROXY_POLICY_PER_CONNECTION, UINT64_C(942638), 4, 1000);
}
END_TEST

START_TEST(test_random_sequences_per_request)
{
  hx_random_sequences(PROXY_POLICY_PER_REQUEST, UINT64_C(942638), 4, 1000);
}
END_TEST

START_TEST(test_bug_path_keeps_the_connections_identity)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc a, b;
  struct rc_resp r;
  char *t1 = kbt_ntlm_type1(NTLM_SCHEME_NTLM);

  hx_start(&e, &o);
  hx_open(&a, &e);
  hx_open(&b, &e);
  ck_assert_int_eq(kbt_ntlm_handshake(&a, "alice", T_ALICE_PASSWORD), 200);
  ck_assert_int_eq(kbt_ntlm_handshake(&b, "bob", T_BOB_PASSWORD), 200);
  /* The re-authenticating leg 1 on each: forwarded body-less (500). */
  ck_assert_int_eq(rc_post(&b, T_EWS, t1, "", 0, &r), 500);
  rc_resp_free(&r);
  ck_assert_int_eq(rc_post(&a, T_EWS, t1, "", 0, &r), 500);
  rc_resp_free(&r);
  /* Each skipped re-authentication keeps its own connection's identity. */
  ck_assert(kbt_has_note(&e.env.trace, KB_NOTE_REAUTH_SKIPPED,
                         hx_proxy_conn_id(&e.env.trace, a.name),
                         "as FABRIKAM\\alice;"));
  ck_assert(kbt_has_note(&e.env.trace, KB_NOTE_REAUTH_SKIPPED,
                         hx_proxy_conn_id(&e.env.trace, b.name),
                         "as FABRIKAM\\bob;"));
  ck_assert(hx_wait_event(&e.env.trace, KB_TRACE_EXCHANGE, KB_HOP_PROXY_BACKEND,
                          "backend", "hostile 1 upstream 1"));
  ck_assert(hx_wait_event(&e.env.trace, KB_TRACE_EXCHANGE, KB_HOP_PROXY_BACKEND,
                          "backend", "hostile 2 upstream 1"));
  rc_close(&a);
  rc_close(&b);
  free(t1);
  hx_stop(&e);
}
END_TEST

START_TEST(test_no_state_crosses_connections)
{
  static struct hx e; /* static: see hx_teardown */
  struct hx_opts o = {PROXY_POLICY_PER_CONNECTION, 0, 0, 0, NULL};
  struct rc a, b, a2;
  struct rc_resp r;
  size_t i;
  unsigned on_a = 0, on_b = 0, on_a2 = 0, other = 0;

  hx_start(&e, &o);
  hx_open(&a, &e);
  ck_assert_int_eq(kbt_ntlm_handshake(&a, "alice", T_ALICE_PASSWORD), 200);
  /* While alice's connection is authenticated, bob's new one is not. */
  hx_open(&b, &e);
  hx_assert_refused(&b, NULL, "ISA ISA01: authentication required");
  ck_assert_int_eq(kbt_ntlm_handshake(&b, "bob", T_BOB_PASSWORD), 200);
  /* Interleaved requests on both. */
  for(i = 0; i < 6; i++) {
    struct rc *c = (i % 2) ? &a : &b;
    ck_assert_int_eq(rc_post(c, T_EWS, NULL, oof_body, strlen(oof_body), &r),
                     200);
    rc_resp_free(&r);
  }
  /* alice's connection closes; her next one starts from nothing. */
  rc_close(&a);
  ck_assert(hx_wait_event(&e.env.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY,
                          "proxy", a.name));
  hx_open(&a2, &e);
  hx_assert_refused(&a2, NULL, "ISA ISA01: authentication required");
  ck_assert_int_eq(kbt_ntlm_handshake(&a2, "alice", T_ALICE_PASSWORD), 200);

  /* Each backend connection served exactly one client connection. */
  pthread_mutex_lock(&e.env.trace.lock);
  for(i = 0; i < e.env.trace.n; i++) {
    const struct kbt_event *ev = &e.env.trace.ev[i];
    if(ev->kind != KB_TRACE_EXCHANGE || strcmp(hx_role(ev), "backend"))
      continue;
    if(!strcmp(ev->conn_name, "hostile 1 upstream 1"))
      on_a++;
    else if(!strcmp(ev->conn_name, "hostile 2 upstream 1"))
      on_b++;
    else if(!strcmp(ev->conn_name, "hostile 3 upstream 1"))
      on_a2++;
    else
      other++;
  }
  pthread_mutex_unlock(&e.env.trace.lock);
  ck_assert_uint_eq(on_a, 4);
  ck_assert_uint_eq(on_b, 4);
  ck_assert_uint_eq(on_a2, 1);
  ck_assert_uint_eq(other, 0);
  {
    struct backend_stats s;
    backend_stats(e.env.be, &s);
    ck_assert_uint_eq(s.connections, 3);
  }
  rc_close(&b);
  rc_close(&a2);
  hx_stop(&e);
}
END_TEST

/* ---- tests: no password in the evidence --------------------------------- */

/* Returns true when needle (len bytes) occurs in the file at path. */
static bool hx_file_has(const char *path, const void *needle, size_t len)
{
  size_t n;
  char *text = proc_slurp(path, &n);
  bool found;

  ck_assert_uint_gt(n, 0);
  found = n >= len && memmem(text, n, needle, len) != NULL;
  free(text);
  return found;
}

/* Checks that neither password of the run appears in path: as typed, as
 * UTF-16LE (how NTLM would carry it), nor as its NT hash. */
static void hx_assert_no_secret(const char *path, const char *password)
{
  uint8_t utf16[128];
  uint8_t hash[16];
  char hex[33];
  size_t i, n = strlen(password);

  ck_assert_uint_le(2 * n, sizeof(utf16));
  for(i = 0; i < n; i++) {
    utf16[2 * i] = (uint8_t)password[i];
    utf16[2 * i + 1] = 0;
  }
  ck_assert_int_eq(ntlm_nt_hash(password, hash), NTLM_OK);
  for(i = 0; i < 16; i++)
    snprintf(hex + 2 * i, 3, "%02x", hash[i]);
  ck_assert_msg(!hx_file_has(path, password, n), "%s holds the password", path);
  ck_assert_msg(!hx_file_has(path, utf16, 2 * n),
                "%s holds the password in UTF-16LE", path);
  ck_assert_msg(!hx_file_has(path, hash, 16), "%s holds the NT hash", path);
  ck_assert_msg(!hx_file_has(path, hex, 32), "%s holds the NT hash in hex",
                path);
}

START_TEST(test_no_password_in_evidence)
{
  static const char *const passwords[] = {"Zq8!unique-Secret", "Pw-for-Bob#7"};
  static const char *const kinds[] = {"v2", "v1", "v1-ess"};
  char dir[256];
  char files[3][320];
  char out[320];
  size_t k, f, p;

  proc_tmpdir("kbsim-hostile", dir, sizeof(dir));
  for(k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
    struct proc_out run;
    FILE *fo;
    const char *args[] = {"run",
                          "--policy",
                          k ? "per-request" : "per-connection",
                          "--clients",
                          "3",
                          "--posts",
                          "2",
                          "--ntlm",
                          kinds[k],
                          "--user",
                          "FABRIKAM\\alice:Zq8!unique-Secret",
                          "--user",
                          "FABRIKAM\\bob:Pw-for-Bob#7",
                          "--transcript",
                          files[0],
                          "--pcap",
                          files[1],
                          "--json",
                          files[2],
                          NULL};
    snprintf(files[0], sizeof(files[0]), "%s/%s.txt", dir, kinds[k]);
    snprintf(files[1], sizeof(files[1]), "%s/%s.pcap", dir, kinds[k]);
    snprintf(files[2], sizeof(files[2]), "%s/%s.json", dir, kinds[k]);
    proc_kbsim(&run, args);
    ck_assert_msg(run.status == 0 || run.status == 1, "kbsim exited %d: %s",
                  run.status, run.err.data);
    /* What it printed is evidence too. */
    snprintf(out, sizeof(out), "%s/%s.out", dir, kinds[k]);
    fo = fopen(out, "wb");
    ck_assert_ptr_nonnull(fo);
    fwrite(run.out.data, 1, run.out.len, fo);
    fwrite(run.err.data, 1, run.err.len, fo);
    fclose(fo);
    proc_free(&run);
    /* The run did authenticate both users: the evidence names them. */
    ck_assert(hx_file_has(files[0], "FABRIKAM\\alice", 14));
    ck_assert(hx_file_has(files[0], "FABRIKAM\\bob", 12));
    for(f = 0; f < 3; f++)
      for(p = 0; p < 2; p++)
        hx_assert_no_secret(files[f], passwords[p]);
    for(p = 0; p < 2; p++)
      hx_assert_no_secret(out, passwords[p]);
  }
  proc_rmdir(dir);
}
END_TEST

/* A --user spec without the backslash is refused without echoing its
 * password: `kbsim run --user 'alice:Passw0rd!'` must not print it on
 * stderr (and into CI logs). */
START_TEST(test_user_spec_error_hides_password)
{
  struct kb_users *users = kb_users_new();
  char err[256];

  ck_assert_ptr_nonnull(users);
  ck_assert_int_eq(
      kb_users_add_spec(users, "alice:Zq8!unique-Secret", err, sizeof(err)),
      -1);
  ck_assert_msg(!strstr(err, "Zq8!unique-Secret"), "%s", err);
  kb_users_free(users);
}
END_TEST

Suite *hostile_invariants_suite(void)
{
  Suite *s = suite_create("invariants");
  TCase *tc = tcase_create("invariants");

  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, NULL, hx_teardown);
  tcase_add_test(tc, test_random_sequences_per_connection);
  tcase_add_test(tc, test_random_sequences_per_request);
  tcase_add_test(tc, test_bug_path_keeps_the_connections_identity);
  tcase_add_test(tc, test_no_state_crosses_connections);
  tcase_add_test(tc, test_no_password_in_evidence);
  tcase_add_test(tc, test_user_spec_error_hides_password);
  suite_add_tcase(s, tc);
  return s;
}
