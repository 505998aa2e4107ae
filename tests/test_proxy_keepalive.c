/*
 * test_proxy_keepalive.c - the listener's connections over time
 * (test_proxy.h): its idle timeout on a clock the test sets (with and
 * without connection names), the keep-alive request limit and the
 * connection timeout; concurrent connections (each with upstream
 * connections of its own, closed with it), several event loops, and
 * stopping with connections open or a request in flight.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"
#include "rc.h"
#include "test_proxy.h"

/* ---- tests: keep-alive limits ------------------------------------------- */

/* A clock whose time the test sets. "client 7" and its connections have a
 * timeline of their own, everyone else shares one; calls without a name
 * are counted, so a test can tell whose time the proxy asked for. */
struct t_clock {
  _Atomic int64_t shared;
  _Atomic int64_t client7;
  atomic_uint unnamed_calls;
};

static int64_t t_clock_now(void *ctx, const char *who)
{
  struct t_clock *k = ctx;
  if(who && (!strcmp(who, "client 7") || !strncmp(who, "client 7 ", 9)))
    return atomic_load(&k->client7);
  if(!who)
    atomic_fetch_add(&k->unnamed_calls, 1);
  return atomic_load(&k->shared);
}

/* Connection names (kb_names): the latest claim per port wins. */
struct t_names {
  pthread_mutex_t lock;
  uint16_t port[64];
  uint16_t remote[64];
  char name[64][96];
  size_t n;
  unsigned client_conns; /* "client 7 conn <n>" claimed so far */
};

static void t_names_claim(void *ctx, uint16_t port, uint16_t remote,
                          const char *name)
{
  struct t_names *nm = ctx;
  pthread_mutex_lock(&nm->lock);
  if(nm->n < 64) {
    nm->port[nm->n] = port;
    nm->remote[nm->n] = remote;
    snprintf(nm->name[nm->n], sizeof(nm->name[0]), "%s", name);
    nm->n++;
  }
  pthread_mutex_unlock(&nm->lock);
}

static int t_names_resolve(void *ctx, uint16_t port, uint16_t local, char *name,
                           size_t len)
{
  struct t_names *nm = ctx;
  size_t i;
  int result = -1;
  pthread_mutex_lock(&nm->lock);
  for(i = nm->n; i-- > 0;)
    if(nm->port[i] == port && nm->remote[i] == local) {
      snprintf(name, len, "%s", nm->name[i]);
      result = 0;
      break;
    }
  pthread_mutex_unlock(&nm->lock);
  return result;
}

/* The test client's side of kb_names: binds each new connection's socket
 * and claims "client 7 conn <n>" for its port before libcurl connects. */
static curl_socket_t t_open_named(void *clientp, curlsocktype purpose,
                                  struct curl_sockaddr *addr)
{
  struct t_names *nm = clientp;
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  char name[64];
  unsigned n;
  curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
  (void)purpose;

  if(fd == CURL_SOCKET_BAD)
    return fd;
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
     getsockname(fd, (struct sockaddr *)&sa, &len)) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  pthread_mutex_lock(&nm->lock);
  n = ++nm->client_conns;
  pthread_mutex_unlock(&nm->lock);
  snprintf(name, sizeof(name), "client 7 conn %u", n);
  t_names_claim(nm, ntohs(sa.sin_port),
                ntohs(((const struct sockaddr_in *)&addr->addr)->sin_port),
                name);
  return fd;
}

/* POSTs kbt_oof_body on c with libcurl's own NTLM as FABRIKAM\alice: libcurl
 * runs the handshake on a new connection and sends nothing more on an
 * authenticated one. names, when set, names new connections. Returns the
 * curl result; status and connects are in c. */
static CURLcode t_curl_ntlm_post(struct tc *c, struct t_names *names)
{
  struct curl_slist *list = NULL;

  list = curl_slist_append(list, "Expect:");
  list = curl_slist_append(list, "Content-Type: text/xml; charset=utf-8");
  tc_prepare(c, "/EWS/Exchange.asmx", list);
  curl_easy_setopt(c->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_NTLM);
  curl_easy_setopt(c->h, CURLOPT_USERPWD, "FABRIKAM\\alice:" T_PASSWORD);
  curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, kbt_oof_body);
  curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE,
                   (curl_off_t)strlen(kbt_oof_body));
  if(names) {
    curl_easy_setopt(c->h, CURLOPT_OPENSOCKETFUNCTION, t_open_named);
    curl_easy_setopt(c->h, CURLOPT_OPENSOCKETDATA, names);
  }
  return tc_perform(c, list);
}

/* Runs the idle-timeout scenario: a real libcurl client authenticates,
 * comes back within the limit, then after 45 s on a 30 s limit. named:
 * connections carry kb_names names and only client 7's timeline moves. */
static void t_idle_scenario(bool named)
{
  struct kbt_env e;
  struct t_opts o;
  struct t_clock clk;
  struct t_names nm;
  struct tc c;
  struct backend_stats bs;
  _Atomic int64_t *timeline;
  const char *label = named ? "client 7 conn 1" : "1";
  char note[256];

  atomic_init(&clk.shared, T_NOW_MS);
  atomic_init(&clk.client7, T_NOW_MS);
  timeline = named ? &clk.client7 : &clk.shared;
  atomic_init(&clk.unnamed_calls, 0);
  memset(&nm, 0, sizeof(nm));
  pthread_mutex_init(&nm.lock, NULL);
  memset(&o, 0, sizeof(o));
  o.idle_timeout_ms = 30000;
  o.clock.now_ms = t_clock_now;
  o.clock.ctx = &clk;
  if(named) {
    o.names.claim = t_names_claim;
    o.names.resolve = t_names_resolve;
    o.names.ctx = &nm;
  }
  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));

  ck_assert_int_eq(t_curl_ntlm_post(&c, named ? &nm : NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 1);
  /* Exactly at the limit is not past it. */
  atomic_fetch_add(timeline, 30000);
  ck_assert_int_eq(t_curl_ntlm_post(&c, named ? &nm : NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2);

  /* 45 s later the listener "had closed" the connection: libcurl's
   * request on it gets nothing back, and libcurl retries on a new
   * connection, where it authenticates again. */
  atomic_fetch_add(timeline, 45000);
  ck_assert_int_eq(t_curl_ntlm_post(&c, named ? &nm : NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 1);
  ck_assert_ptr_nonnull(strstr(c.body.data, "GetUserOofSettingsResponse"));
  assert_stats(e.px, .connections = 2, .requests = 5, .challenges = 2,
               .auth_ok = 2, .forwarded = 3, .idle_closed = 1);
  /* The backend saw the three bodies and nothing of the dead request. */
  bs = be_stats(&e);
  ck_assert_uint_eq(bs.requests, 3);
  ck_assert_uint_eq(bs.oof_ok, 3);
  ck_assert_uint_eq(bs.empty_posts, 0);
  snprintf(note, sizeof(note), "%s idle 45 s > 30 s", label);
  ck_assert_msg(kbt_has_note(&e.trace, KB_NOTE_IDLE_CLOSED, 0, note),
                "no note: %s", note);
  ck_assert_uint_eq(kbt_count_code(&e.trace, KB_NOTE_LIBRARY), 0);
  if(named)
    ck_assert_uint_eq(atomic_load(&clk.unnamed_calls), 0);
  else
    ck_assert_uint_gt(atomic_load(&clk.unnamed_calls), 0);
  tc_free(&c);
  kbt_env_stop_servers(&e);
  /* Connection 1 answered three requests and was closed with nothing
   * upstream for the fourth: two upstream sends went out for it. */
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, 1), 3);
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, 2), 2);
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, 0),
                    2);
  kbt_env_stop(&e);
  pthread_mutex_destroy(&nm.lock);
}

START_TEST(test_idle_timeout)
{
  t_idle_scenario(false);
}
END_TEST

START_TEST(test_idle_timeout_named)
{
  t_idle_scenario(true);
}
END_TEST

START_TEST(test_idle_timeout_off)
{
  struct kbt_env e;
  struct t_opts o;
  struct t_clock clk;
  struct tc c;

  /* With no limit an hour of idleness changes nothing. */
  atomic_init(&clk.shared, T_NOW_MS);
  atomic_init(&clk.client7, T_NOW_MS);
  atomic_init(&clk.unnamed_calls, 0);
  memset(&o, 0, sizeof(o));
  o.clock.now_ms = t_clock_now;
  o.clock.ctx = &clk;
  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(t_curl_ntlm_post(&c, NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  atomic_fetch_add(&clk.shared, 3600 * 1000);
  ck_assert_int_eq(t_curl_ntlm_post(&c, NULL), CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_max_requests)
{
  struct kbt_env e;
  struct t_opts o;
  struct tc c;
  char v[256];
  char www[4096];
  char *t1 = t_type1(NTLM_SCHEME_NTLM);
  char *t3;
  const char *h1[] = {t1, NULL};
  const char *h3[] = {NULL, NULL};

  memset(&o, 0, sizeof(o));
  o.max_requests = 3;
  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h1, "", 0),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_ptr_null(tc_header(&c, "Connection", v, sizeof(v)));
  ck_assert_ptr_nonnull(tc_header(&c, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  h3[0] = t3;
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", h3, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_ptr_null(tc_header(&c, "Connection", v, sizeof(v)));
  /* The third answer is the last on this connection. */
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 200);
  ck_assert_int_eq(c.connects, 0);
  ck_assert_str_eq(tc_header(&c, "Connection", v, sizeof(v)), "close");
  ck_assert_ptr_nonnull(strstr(c.body.data, "GetUserOofSettingsResponse"));
  kbt_wait_for(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY);
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, 1),
                    1);
  assert_stats(e.px, .connections = 1, .requests = 3, .challenges = 1,
               .auth_ok = 1, .forwarded = 2, .max_requests_closed = 1);
  ck_assert(
      kbt_has_note(&e.trace, KB_NOTE_MAX_REQUESTS, 1, "limit of 3 requests"));
  /* The next request needs a new connection, which starts
   * unauthenticated. */
  ck_assert_int_eq(tc_do(&c, "POST", "/EWS/Exchange.asmx", NULL, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c.status, 401);
  ck_assert_int_eq(c.connects, 1);
  ck_assert_ptr_null(tc_header(&c, "Connection", v, sizeof(v)));
  ck_assert_uint_eq(be_stats(&e).requests, 2);
  ck_assert_uint_eq(be_stats(&e).oof_ok, 2);
  assert_stats(e.px, .connections = 2, .requests = 4, .challenges = 1,
               .auth_ok = 1, .forwarded = 2, .max_requests_closed = 1);
  tc_free(&c);
  free(t1);
  free(t3);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_connection_timeout)
{
  struct kbt_env e;
  struct t_opts o;
  struct sockaddr_in sa;
  struct timespec t0, t1;
  char buf[64];
  ssize_t got;
  double elapsed;
  int fd;

  memset(&o, 0, sizeof(o));
  o.connection_timeout_s = 1;
  t_env_start(&e, KBT_UP_EXCHANGE, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(fd, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(proxy_port(e.px));
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  /* A client that says nothing: the listener drops it after 1 s of real
   * time, which recv sees as the end of the stream. */
  got = recv(fd, buf, sizeof(buf), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  ck_assert_int_le(got, 0);
  elapsed =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  ck_assert_msg(elapsed >= 0.9 && elapsed < 10.0, "closed after %.2f s",
                elapsed);
  close(fd);
  kbt_wait_for(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY);
  assert_stats(e.px, .connections = 1);
  kbt_env_stop(&e);
}
END_TEST

/* ---- tests: threads ------------------------------------------------------ */

struct t_worker {
  uint16_t port;
  const char *user;
  const char *password;
  int ok;
};

static void *t_worker_main(void *arg)
{
  struct t_worker *w = arg;
  struct tc c;
  int i;

  tc_init(&c, w->port);
  if(t_handshake_post(&c, "/w", NTLM_SCHEME_NTLM, w->user, w->password,
                      "first") == 200)
    w->ok++;
  for(i = 0; i < 3; i++)
    if(tc_do(&c, "POST", "/w", NULL, "more", 4) == CURLE_OK &&
       c.status == 200 && c.connects == 0)
      w->ok++;
  tc_free(&c);
  return NULL;
}

/* Runs n (at most 8) workers at once on port, alice and bob in turn, and
 * asserts that each got its 4 answers. */
static void t_run_workers(uint16_t port, int n)
{
  struct t_worker w[8];
  pthread_t th[8];
  int i;

  ck_assert_int_le(n, 8);
  for(i = 0; i < n; i++) {
    w[i].port = port;
    w[i].user = i % 2 ? "bob" : "alice";
    w[i].password = i % 2 ? T_BOB_PASSWORD : T_PASSWORD;
    w[i].ok = 0;
    ck_assert_int_eq(pthread_create(&th[i], NULL, t_worker_main, &w[i]), 0);
  }
  for(i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    ck_assert_int_eq(w[i].ok, 4);
  }
}

START_TEST(test_concurrent_connections)
{
  struct kbt_env e;

  t_env_start(&e, KBT_UP_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  t_run_workers(proxy_port(e.px), 4);
  /* Each client connection had its own upstream connection. */
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_uint_eq(e.rec.connections, 4);
  ck_assert_uint_eq(e.rec.requests, 16);
  pthread_mutex_unlock(&e.rec.lock);
  assert_stats(e.px, .connections = 4, .requests = 20, .challenges = 4,
               .auth_ok = 4, .forwarded = 16);
  kbt_env_stop(&e);
}
END_TEST

/* Blocks until origin has traced n CLOSEs (Check's timeout bounds a wait
 * that never ends). */
static void t_wait_closes(struct kbt_trace *t, const char *origin, size_t n)
{
  pthread_mutex_lock(&t->lock);
  for(;;) {
    size_t i, seen = 0;
    for(i = 0; i < t->n; i++)
      seen +=
          t->ev[i].kind == KB_TRACE_CLOSE && !strcmp(t->ev[i].origin, origin);
    if(seen >= n)
      break;
    pthread_cond_wait(&t->cond, &t->lock);
  }
  pthread_mutex_unlock(&t->lock);
}

/* Exchange's record of its connection id (from 1). */
static struct backend_conn_info t_exchange_conn(struct kbt_env *e, uint64_t id)
{
  static struct backend_conn_info recs[8];
  size_t n = backend_connections(e->be, recs, 8), i;

  for(i = 0; i < n; i++)
    if(recs[i].id == id)
      return recs[i];
  ck_abort_msg("Exchange has no connection %llu", (unsigned long long)id);
  return recs[0];
}

/* One more request on c, authenticated already: answered 200 on the same
 * TCP connection. */
static void t_post(struct tc *c)
{
  const char *h[] = {"Content-Type: text/xml; charset=utf-8", NULL};

  ck_assert_int_eq(tc_do(c, "POST", "/EWS/Exchange.asmx", h, kbt_oof_body,
                         strlen(kbt_oof_body)),
                   CURLE_OK);
  ck_assert_int_eq(c->status, 200);
  ck_assert_int_eq(c->connects, 0);
}

/* Two client connections of one user, open at once and taking turns:
 * each has an upstream connection of its own, though the transfers of
 * both run in their loop's one multi handle (a connection cache shared by
 * the two would hand the second one the first one's idle, authenticated
 * connection); and when the first one's client leaves, its upstream
 * connection is closed for real (Exchange sees it end) while the
 * other's stays up and serves on. */
START_TEST(test_connections_own_upstreams)
{
  static struct kbt_env e;
  struct kbt_env_opts eo;
  struct proxy_config pc;
  struct tc a, b;
  struct backend_conn_info rec;

  /* t_env_start's, with Exchange's CLOSEs traced. */
  memset(&pc, 0, sizeof(pc));
  pc.policy = PROXY_POLICY_PER_CONNECTION;
  memset(&eo, 0, sizeof(eo));
  eo.upstream = KBT_UP_EXCHANGE;
  eo.listener = &pc;
  eo.debug = "T_PROXY_TRACE";
  kbt_env_start(&e, &eo);
  tc_init(&a, proxy_port(e.px));
  tc_init(&b, proxy_port(e.px));
  ck_assert_int_eq(t_handshake_post(&a, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  ck_assert_int_eq(t_handshake_post(&b, "/EWS/Exchange.asmx", NTLM_SCHEME_NTLM,
                                    "alice", T_PASSWORD, kbt_oof_body),
                   200);
  t_post(&a);
  ck_assert_uint_eq(be_stats(&e).connections, 2);
  ck_assert_uint_eq(t_exchange_conn(&e, 1).requests, 2);
  ck_assert_uint_eq(t_exchange_conn(&e, 2).requests, 1);

  /* a leaves: Exchange's connection 1 (a's upstream) ends with it. */
  tc_free(&a);
  t_wait_closes(&e.trace, "backend", 1);
  rec = t_exchange_conn(&e, 1);
  ck_assert(!rec.open);
  ck_assert(t_exchange_conn(&e, 2).open);
  t_post(&b);
  ck_assert_uint_eq(be_stats(&e).connections, 2);
  ck_assert_uint_eq(t_exchange_conn(&e, 2).requests, 2);
  tc_free(&b);
  ck_assert_int_eq(proxy_wait_idle(e.px, 10000), 0);
  ck_assert_int_eq(backend_wait_idle(e.be, 10000), 0);
  kbt_env_stop(&e);
}
END_TEST

/* Counts this process's threads whose name starts with prefix. */
static unsigned t_threads_named(const char *prefix)
{
  DIR *dir = opendir("/proc/self/task");
  struct dirent *de;
  unsigned n = 0;

  ck_assert_ptr_nonnull(dir);
  while((de = readdir(dir))) {
    char path[300], comm[32] = "";
    FILE *f;
    if(de->d_name[0] == '.')
      continue;
    snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
    f = fopen(path, "r");
    if(!f)
      continue;
    if(fgets(comm, sizeof(comm), f) && !strncmp(comm, prefix, strlen(prefix)))
      n++;
    fclose(f);
  }
  closedir(dir);
  return n;
}

/* Three event loops on one listening socket: eight clients at once, each
 * authenticated on its own connection with its own upstream one, whichever
 * loop accepted it; counters add up across loops; a policy switch reaches
 * every loop; stopping ends all three threads with connections open. */
START_TEST(test_several_loops)
{
  struct kbt_env e;
  struct t_opts o;
  struct tc c;
  unsigned before = t_threads_named("kb-proxy");

  memset(&o, 0, sizeof(o));
  o.loops = 3;
  t_env_start(&e, KBT_UP_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION, &o);
  ck_assert_uint_eq(t_threads_named("kb-proxy"), before + 3);
  t_run_workers(proxy_port(e.px), 8);
  pthread_mutex_lock(&e.rec.lock);
  ck_assert_uint_eq(e.rec.connections, 8);
  ck_assert_uint_eq(e.rec.requests, 32);
  pthread_mutex_unlock(&e.rec.lock);
  assert_stats(e.px, .connections = 8, .requests = 40, .challenges = 8,
               .auth_ok = 8, .forwarded = 32);
  /* The fix applies to the next request, whichever loop serves it. */
  proxy_set_policy(e.px, PROXY_POLICY_PER_REQUEST);
  tc_init(&c, proxy_port(e.px));
  ck_assert_int_eq(
      t_handshake_post(&c, "/x", NTLM_SCHEME_NTLM, "alice", T_PASSWORD, "a"),
      200);
  ck_assert_int_eq(
      t_handshake_post(&c, "/x", NTLM_SCHEME_NTLM, "alice", T_PASSWORD, "b"),
      200);
  assert_stats(e.px, .connections = 9, .requests = 44, .challenges = 10,
               .auth_ok = 10, .forwarded = 34);
  kbt_env_stop_servers(&e);
  ck_assert_uint_eq(t_threads_named("kb-proxy"), before);
  ck_assert_int_ne(tc_do(&c, "GET", "/x", NULL, NULL, 0), CURLE_OK);
  tc_free(&c);
  kbt_env_stop(&e);
}
END_TEST

START_TEST(test_stop_with_open_connections)
{
  struct kbt_env e;
  struct tc a, b;
  uint16_t port;

  t_env_start(&e, KBT_UP_RECORDER, NULL, 0, 0, PROXY_POLICY_PER_CONNECTION,
              NULL);
  port = proxy_port(e.px);
  tc_init(&a, port);
  tc_init(&b, port);
  ck_assert_int_eq(
      t_handshake_post(&a, "/x", NTLM_SCHEME_NTLM, "alice", T_PASSWORD, "a"),
      200);
  ck_assert_int_eq(tc_do(&b, "GET", "/x", NULL, NULL, 0), CURLE_OK);
  ck_assert_int_eq(b.status, 401);
  /* Both client connections (and one upstream) are open and idle. */
  kbt_env_stop_servers(&e);
  ck_assert_uint_eq(kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, 0),
                    2);
  ck_assert_uint_eq(
      kbt_count(&e.trace, KB_TRACE_CLOSE, KB_HOP_PROXY_BACKEND, 0), 1);
  ck_assert_int_ne(tc_do(&a, "GET", "/x", NULL, NULL, 0), CURLE_OK);
  tc_free(&a);
  tc_free(&b);
  kbt_env_stop(&e);
}
END_TEST

struct t_inflight {
  uint16_t port;
  char *type1;  /* prepared by the test thread: ntlm.h calls that fail */
  long status1; /* would assert, and asserts belong to the test thread */
  char www[4096];
  char *type3;
  CURLcode res2;
  long status2;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int step; /* 1: type 2 received; 2: type 3 made */
};

/* Sends the two legs; the second hangs upstream until the proxy stops. */
static void *t_inflight_main(void *arg)
{
  struct t_inflight *f = arg;
  struct tc c;
  const char *h1[] = {f->type1, NULL};
  const char *h3[] = {NULL, NULL};

  tc_init(&c, f->port);
  tc_do(&c, "POST", "/slow", h1, "", 0);
  f->status1 = c.status;
  if(!tc_header(&c, "WWW-Authenticate", f->www, sizeof(f->www)))
    f->www[0] = '\0';
  pthread_mutex_lock(&f->lock);
  f->step = 1;
  pthread_cond_broadcast(&f->cond);
  while(f->step != 2)
    pthread_cond_wait(&f->cond, &f->lock);
  pthread_mutex_unlock(&f->lock);
  h3[0] = f->type3;
  f->res2 = tc_do(&c, "POST", "/slow", h3, "x", 1);
  f->status2 = c.status;
  tc_free(&c);
  return NULL;
}

START_TEST(test_stop_with_request_in_flight)
{
  struct kbt_env e;
  uint16_t port;
  int fd = rc_loopback(true, &port);
  char url[64];
  pthread_t th;
  struct t_inflight f;
  struct timespec t0, t1;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  t_env_start(&e, KBT_UP_URL, url, 0, 30000, PROXY_POLICY_PER_CONNECTION, NULL);
  memset(&f, 0, sizeof(f));
  pthread_mutex_init(&f.lock, NULL);
  pthread_cond_init(&f.cond, NULL);
  f.port = proxy_port(e.px);
  f.type1 = t_type1(NTLM_SCHEME_NTLM);
  ck_assert_int_eq(pthread_create(&th, NULL, t_inflight_main, &f), 0);
  pthread_mutex_lock(&f.lock);
  while(f.step != 1)
    pthread_cond_wait(&f.cond, &f.lock);
  pthread_mutex_unlock(&f.lock);
  ck_assert_int_eq(f.status1, 401);
  f.type3 = t_type3(f.www, NTLM_SCHEME_NTLM, "alice", T_PASSWORD);
  pthread_mutex_lock(&f.lock);
  f.step = 2;
  pthread_cond_broadcast(&f.cond);
  pthread_mutex_unlock(&f.lock);
  /* The request is on its way to a server that never answers. */
  kbt_wait_for(&e.trace, KB_TRACE_SEND, KB_HOP_PROXY_BACKEND);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  proxy_stop(e.px);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  e.px = NULL;
  /* Not the 30 s upstream timeout: the transfer was aborted. */
  ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 10);
  pthread_join(th, NULL);
  /* The client got no answer from the backend: the connection closed, or
   * a 503 made it out before it did. */
  ck_assert(f.res2 != CURLE_OK || f.status2 == 503);
  ck_assert(kbt_has_note(&e.trace, KB_NOTE_UPSTREAM_STOPPING, 0, NULL));
  free(f.type1);
  free(f.type3);
  pthread_cond_destroy(&f.cond);
  pthread_mutex_destroy(&f.lock);
  kbt_env_stop(&e);
  close(fd);
}
END_TEST

Suite *proxy_keepalive_suite(void)
{
  Suite *s = suite_create("keep-alive");
  TCase *tc;

  tc = tcase_create("keep-alive");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_idle_timeout);
  tcase_add_test(tc, test_idle_timeout_named);
  tcase_add_test(tc, test_idle_timeout_off);
  tcase_add_test(tc, test_max_requests);
  tcase_add_test(tc, test_connection_timeout);
  suite_add_tcase(s, tc);

  tc = tcase_create("threads");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_concurrent_connections);
  tcase_add_test(tc, test_connections_own_upstreams);
  tcase_add_test(tc, test_several_loops);
  tcase_add_test(tc, test_stop_with_open_connections);
  tcase_add_test(tc, test_stop_with_request_in_flight);
  suite_add_tcase(s, tc);
  return s;
}
