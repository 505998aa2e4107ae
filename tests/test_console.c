/*
 * test_console.c - what a trainer does in front of a room with `kbsim
 * serve SCENARIO --admin` and no second terminal: reset the array to the
 * scenario's start, switch to another scenario in place, run sessions
 * inside serve; every leg naming its user; each member's score since the
 * last change of its policy; `kbsim client` naming the member that served
 * it; serve's banner and the passwords it prints or not; the new
 * endpoints refusing what guard.c refuses (token, Host, Origin, content
 * type) and bodies they cannot use; and the console itself in headless
 * Chromium at 1024x768 (tests/console/trainer.js), its screenshots read
 * back with libpng; and a TLS array's console (tests/console/tls.js): the
 * hops' kinds and Extended Protection's refusal with its why.
 *
 * Everything is on 127.0.0.1 with port 0; tests synchronise on printed
 * lines, answers and events, never on sleeps.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <png.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/kb_buf.h"
#include "kbt.h"
#include "proc.h"
#include "served.h"

#define HALF_PATCHED SCENARIOS_DIR "/half-patched-array.ini"
#define ALICE "FABRIKAM\\alice:Passw0rd!"

/* ---- helpers: a running serve ------------------------------------------ */

/* Runs kbsim with args (NULL-terminated, after the program name). */
static void kbsim(struct proc_out *p, const char *const *args)
{
  char *argv[24] = {KBSIM_BIN};
  size_t i;

  for(i = 0; args[i]; i++)
    argv[1 + i] = (char *)args[i];
  proc_run(argv, p);
}

/* `kbsim ctl --admin 127.0.0.1:PORT a1 a2 a3 a4 a5` (NULL ends them). */
static void ctl(const struct served *s, struct proc_out *p, const char *a1,
                const char *a2, const char *a3, const char *a4, const char *a5)
{
  char admin[32];
  const char *args[] = {"ctl", "--admin", admin, a1, a2, a3, a4, a5, NULL};

  snprintf(admin, sizeof(admin), "127.0.0.1:%u", s->admin);
  kbsim(p, args);
}

/* `kbsim client` as user against port; returns its exit code and copies
 * the member its "Served by:" line names into served (64 bytes). */
static int client_on(unsigned port, const char *user, char *served)
{
  char url[64];
  const char *args[] = {"client", "--url", url, "--user", user, NULL};
  struct proc_out p;
  const char *line;
  int status;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
  kbsim(&p, args);
  status = p.status;
  ck_assert_msg(status == 0 || status == 1, "client exited %d: %s%s", status,
                p.out.data, p.err.data);
  line = strstr(p.out.data, "\nServed by: ");
  ck_assert_msg(line != NULL, "no Served by line: %s", p.out.data);
  ck_assert_int_eq(sscanf(line, "\nServed by: %63s", served), 1);
  ck_assert_ptr_nonnull(strstr(line, " (the Via header of its answers)\n"));
  proc_free(&p);
  return status;
}

/* ---- helpers: HTTP to the admin endpoint -------------------------------- */

static size_t to_buf(char *data, size_t size, size_t n, void *ctx)
{
  return kb_buf_add(ctx, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* method path on s's admin endpoint with the request headers in hdrs
 * (NULL-terminated "Name: value" list; the token is not added) and post
 * as a POST's body -> status; body and headers NUL-terminated. */
static long http_raw(const struct served *s, const char *method,
                     const char *path, const char *const *hdrs,
                     const char *post, struct kb_buf *body,
                     struct kb_buf *headers)
{
  CURL *c = curl_easy_init();
  struct curl_slist *list = NULL;
  char url[256];
  long status = 0;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", s->admin, path);
  kb_buf_init(body, (size_t)1 << 20);
  kb_buf_init(headers, 65536);
  kb_buf_add(body, "", 0);
  kb_buf_add(headers, "", 0);
  ck_assert_ptr_nonnull(c);
  for(; hdrs && *hdrs; hdrs++) {
    list = curl_slist_append(list, *hdrs);
    ck_assert_ptr_nonnull(list);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if(!strcmp(method, "POST")) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post ? post : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post ? post : ""));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  curl_slist_free_all(list);
  return status;
}

/* POST path with body as the console sends it (the token, JSON); expects
 * want_status and returns the answer parsed (owned by the caller). */
static json_t *post_json(const struct served *s, const char *path,
                         const char *post, long want_status)
{
  char bearer[200];
  const char *hdrs[] = {bearer, "Content-Type: application/json", NULL};
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j;
  long status;

  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", s->token);
  status = http_raw(s, "POST", path, hdrs, post, &body, &headers);
  ck_assert_msg(status == want_status, "POST %s %.200s: %ld %.300s", path, post,
                status, body.data);
  ck_assert_ptr_nonnull(strstr(headers.data, "Content-Type: application/json"));
  j = json_loads(body.data, 0, &jerr);
  ck_assert_msg(json_is_object(j), "POST %s: not JSON: %.300s", path,
                body.data);
  kb_buf_free(&body);
  kb_buf_free(&headers);
  return j;
}

/* GET /status as JSON (owned by the caller). */
static json_t *status_of(const struct served *s)
{
  char bearer[200];
  const char *hdrs[] = {bearer, NULL};
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j;

  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", s->token);
  ck_assert_int_eq(http_raw(s, "GET", "/status", hdrs, NULL, &body, &headers),
                   200);
  j = json_loads(body.data, 0, &jerr);
  ck_assert_msg(json_is_object(j), "status is not JSON: %.300s", body.data);
  kb_buf_free(&body);
  kb_buf_free(&headers);
  return j;
}

/* The value at a path of keys and array indexes in j: "members.1.score"
 * (borrowed). */
static json_t *at(json_t *j, const char *path)
{
  char copy[256], *save = NULL, *k;

  snprintf(copy, sizeof(copy), "%s", path);
  for(k = strtok_r(copy, ".", &save); k && j; k = strtok_r(NULL, ".", &save))
    j = json_is_array(j) ? json_array_get(j, strtoul(k, NULL, 10))
                         : json_object_get(j, k);
  ck_assert_msg(j != NULL, "nothing at %s", path);
  return j;
}

static long long at_int(json_t *j, const char *path)
{
  json_t *v = at(j, path);

  ck_assert_msg(json_is_integer(v), "%s is not an integer", path);
  return (long long)json_integer_value(v);
}

static const char *at_str(json_t *j, const char *path)
{
  json_t *v = at(j, path);

  ck_assert_msg(json_is_string(v), "%s is not a string", path);
  return json_string_value(v);
}

/* The endpoint refuses method path (with hdrs, body post) with
 * want_status and a one-line JSON error containing want. */
static void refused(const struct served *s, const char *method,
                    const char *path, const char *const *hdrs, const char *post,
                    long want_status, const char *want)
{
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j, *e;
  long status = http_raw(s, method, path, hdrs, post, &body, &headers);

  ck_assert_msg(status == want_status, "%s %s (%s): %ld %s", method, path,
                post ? post : "", status, body.data);
  if(status == 401)
    ck_assert_ptr_nonnull(strstr(headers.data, "WWW-Authenticate: Bearer"));
  if(status == 405)
    ck_assert_ptr_nonnull(strstr(headers.data, "Allow: POST\r\n"));
  j = json_loads(body.data, 0, &jerr);
  e = json_object_get(j, "error");
  ck_assert_msg(json_is_string(e), "%s %s: %s", method, path, body.data);
  ck_assert_msg(strstr(json_string_value(e), want) != NULL, "%s %s: %s", method,
                path, json_string_value(e));
  ck_assert_ptr_null(strchr(json_string_value(e), '\n'));
  json_decref(j);
  kb_buf_free(&body);
  kb_buf_free(&headers);
}

/* ---- helpers: a console's stream ----------------------------------------- */

struct stream {
  int fd;
  struct kb_buf in;
  size_t used; /* bytes of in already returned as events */
};

static void stream_open(struct stream *st, const struct served *s)
{
  struct sockaddr_in sin;
  struct timeval tv = {20, 0};
  char req[512];
  size_t len;

  memset(st, 0, sizeof(*st));
  kb_buf_init(&st->in, (size_t)64 << 20);
  st->fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(st->fd, 0);
  ck_assert_int_eq(setsockopt(st->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)),
                   0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sin.sin_port = htons((uint16_t)s->admin);
  ck_assert_int_eq(connect(st->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  len = (size_t)snprintf(req, sizeof(req),
                         "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
                         "Authorization: Bearer %s\r\n"
                         "Accept: text/event-stream\r\n\r\n",
                         s->admin, s->token);
  ck_assert_int_eq(write(st->fd, req, len), (ssize_t)len);
}

/* The next event of type (others skipped), its data parsed (owned by the
 * caller); fails after 15 s of silence (the stream sends a keep-alive
 * every 10 s). */
static json_t *stream_next(struct stream *st, const char *type)
{
  char want[64];

  snprintf(want, sizeof(want), "event: %s\ndata: ", type);
  for(;;) {
    char buf[65536];
    const char *start = st->in.data ? st->in.data + st->used : NULL;
    const char *ev = start ? strstr(start, want) : NULL;
    const char *end = ev ? strstr(ev, "\n\n") : NULL;
    struct pollfd pfd = {st->fd, POLLIN, 0};
    ssize_t n;

    if(end) {
      json_error_t jerr;
      const char *data = ev + strlen(want);
      json_t *j = json_loadb(data, (size_t)(end - data), 0, &jerr);

      ck_assert_msg(json_is_object(j), "bad %s event", type);
      st->used = (size_t)(end + 2 - st->in.data);
      return j;
    }
    ck_assert_msg(poll(&pfd, 1, 15000) == 1, "no %s event in 15 s", type);
    n = read(st->fd, buf, sizeof(buf));
    ck_assert_msg(n > 0, "the stream ended before a %s event", type);
    ck_assert_int_eq(kb_buf_add(&st->in, buf, (size_t)n), KB_BUF_OK);
  }
}

static void stream_close(struct stream *st)
{
  close(st->fd);
  kb_buf_free(&st->in);
}

/* ---- reset and switch ---------------------------------------------------- */

/* Reset puts the array back as half-patched-array starts it: ISA02's
 * hotfix gone, every counter at zero, the scores counting from "the
 * reset"; a console hears it; the balancer and Exchange keep their ports,
 * and the balancer starts its turn again. */
START_TEST(reset_restores_the_start)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct stream st;
  struct proc_out p;
  char served[64];
  json_t *j, *ev;
  size_t i;

  served_start(&s, args);
  stream_open(&st, &s);
  json_decref(stream_next(&st, "status"));
  /* kbsim client says which member the balancer sent it to. */
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 0);
  ck_assert_str_eq(served, "ISA01");
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 1);
  ck_assert_str_eq(served, "ISA02");
  ctl(&s, &p, "hotfix", "--member", "ISA02", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);

  ctl(&s, &p, "reset", NULL, NULL, NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "Reset: half-patched-array as it starts "
                               "(ISA01, ISA02); counters at zero, sessions "
                               "cleared\n");
  proc_free(&p);
  /* Every console hears it. */
  ev = stream_next(&st, "reset");
  ck_assert_int_eq(at_int(ev, "generation"), 1);
  json_decref(ev);
  stream_close(&st);
  j = status_of(&s);
  ck_assert_int_eq(at_int(j, "generation"), 1);
  ck_assert_str_eq(at_str(j, "scenario"), "half-patched-array");
  ck_assert_str_eq(at_str(j, "members.1.patch"), "rtm");
  ck_assert_str_eq(at_str(j, "members.1.policy"), "per-connection");
  ck_assert_str_eq(at_str(j, "members.0.policy"), "per-request");
  ck_assert_int_eq(at_int(j, "balancer.connections"), 0);
  ck_assert_int_eq(at_int(j, "exchange.requests"), 0);
  for(i = 0; i < 2; i++) {
    char key[64];

    snprintf(key, sizeof(key), "members.%zu.requests", i);
    ck_assert_int_eq(at_int(j, key), 0);
    snprintf(key, sizeof(key), "members.%zu.forwarded_empty_posts", i);
    ck_assert_int_eq(at_int(j, key), 0);
    snprintf(key, sizeof(key), "members.%zu.score.since", i);
    ck_assert_str_eq(at_str(j, key), "the reset");
    snprintf(key, sizeof(key), "members.%zu.score.sessions", i);
    ck_assert_int_eq(at_int(j, key), 0);
  }
  /* The same ports: the balancer starts its turn again at ISA01. */
  ck_assert_int_eq(served_port(&s, "Balancer:"), s.balancer);
  ck_assert_uint_eq(
      strtoul(strrchr(at_str(j, "exchange.url"), ':') + 1, NULL, 10),
      s.exchange);
  json_decref(j);
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 0);
  ck_assert_str_eq(served, "ISA01");
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 1);
  ck_assert_str_eq(served, "ISA02");
  served_stop(&s);
  /* The terminal says what runs now. */
  ck_assert_ptr_nonnull(strstr(s.rest.data, "Reset:        half-patched-array "
                                            "as it starts; counters at zero, "
                                            "sessions cleared\nMember ISA01: "
                                            "http://127.0.0.1:"));
  kb_buf_free(&s.rest);
}
END_TEST

/* Another scenario of the catalogue in place of the running one: bug's
 * one RTM member behind the same balancer; one that is not in the
 * catalogue changes nothing; and back. */
START_TEST(scenario_switch_in_place)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct proc_out p;
  char served[64];
  json_t *j;

  served_start(&s, args);
  j = status_of(&s);
  ck_assert_int_ge(json_array_size(at(j, "catalogue")), 10);
  ck_assert(json_is_true(at(j, "restartable")));
  json_decref(j);
  ctl(&s, &p, "scenario", "bug", NULL, NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "Scenario: bug started (ISA01); counters at "
                               "zero, sessions cleared\n");
  proc_free(&p);
  j = status_of(&s);
  ck_assert_str_eq(at_str(j, "scenario"), "bug");
  ck_assert_uint_eq(json_array_size(at(j, "members")), 1);
  ck_assert_str_eq(at_str(j, "members.0.policy"), "per-connection");
  ck_assert_str_eq(at_str(j, "members.0.score.since"), "scenario bug started");
  ck_assert_int_eq(at_int(j, "generation"), 1);
  json_decref(j);
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 1);
  ck_assert_str_eq(served, "ISA01");

  /* Not in the catalogue: refused, nothing restarted. */
  ctl(&s, &p, "scenario", "../../etc/passwd", NULL, NULL, NULL);
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.err.data, "(HTTP 404): no scenario "
                                           "'../../etc/passwd' in the "
                                           "catalogue; use one of "));
  proc_free(&p);
  j = status_of(&s);
  ck_assert_int_eq(at_int(j, "generation"), 1);
  ck_assert_int_eq(at_int(j, "members.0.connections"), 1);
  json_decref(j);

  ctl(&s, &p, "scenario", "half-patched-array", NULL, NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  j = status_of(&s);
  ck_assert_uint_eq(json_array_size(at(j, "members")), 2);
  json_decref(j);
  served_stop(&s);
  ck_assert_ptr_nonnull(strstr(s.rest.data, "Scenario:     bug - "));
  kb_buf_free(&s.rest);
}
END_TEST

/* A POST /sessions on a thread of its own (no assertion off the test's
 * thread: the answer is kept for the test to judge). */
struct background_run {
  const struct served *s;
  const char *body;
  pthread_t thread;
  long status;
  struct kb_buf answer;
};

static void *background_run_thread(void *arg)
{
  struct background_run *b = arg;
  char url[128], bearer[200];
  struct curl_slist *list = NULL;
  CURL *c = curl_easy_init();

  snprintf(url, sizeof(url), "http://127.0.0.1:%u/sessions", b->s->admin);
  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", b->s->token);
  list = curl_slist_append(list, bearer);
  list = curl_slist_append(list, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &b->answer);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
  if(curl_easy_perform(c) == CURLE_OK)
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &b->status);
  curl_easy_cleanup(c);
  curl_slist_free_all(list);
  return NULL;
}

/* A reset that arrives while sessions run waits for them to end: none is
 * cut in the middle (none an infrastructure failure), and what they did
 * is gone with the reset. */
START_TEST(reset_waits_for_running_sessions)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct background_run b;
  json_error_t jerr;
  json_t *j, *one;
  long long conns = 0;
  size_t i;
  int tries;

  served_start(&s, args);
  memset(&b, 0, sizeof(b));
  b.s = &s;
  b.body = "{\"count\": 12}";
  kb_buf_init(&b.answer, (size_t)1 << 20);
  ck_assert_int_eq(pthread_create(&b.thread, NULL, background_run_thread, &b),
                   0);
  /* Once the first session is under way (the balancer saw it). */
  for(tries = 0; !conns && tries < 100000; tries++) {
    j = status_of(&s);
    conns = at_int(j, "balancer.connections");
    json_decref(j);
  }
  ck_assert_int_gt(conns, 0);
  j = post_json(&s, "/reset", "{}", 200);
  json_decref(j);
  ck_assert_int_eq(pthread_join(b.thread, NULL), 0);
  ck_assert_int_eq(b.status, 200);
  kb_buf_add(&b.answer, "", 1);
  j = json_loads(b.answer.data, 0, &jerr);
  ck_assert_msg(json_is_object(j), "%.300s", b.answer.data);
  ck_assert_uint_eq(json_array_size(at(j, "sessions")), 12);
  json_array_foreach(at(j, "sessions"), i, one)
  {
    ck_assert_str_ne(at_str(one, "outcome_class"), "infrastructure");
  }
  ck_assert_int_eq(at_int(j, "errors"), 6);
  json_decref(j);
  kb_buf_free(&b.answer);
  /* The reset came after the last of them. */
  j = status_of(&s);
  ck_assert_int_eq(at_int(j, "generation"), 1);
  ck_assert_int_eq(at_int(j, "balancer.connections"), 0);
  ck_assert_int_eq(at_int(j, "exchange.requests"), 0);
  json_decref(j);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* ---- sessions inside serve, the user on every leg, the scores ------------ */

/* POST /sessions runs Communicator sessions inside serve: through the
 * balancer by default, on one member when asked, as any user of the
 * scenario; the answer names who served each. The legs carry the user
 * from the type 3 on, and which answers were errors for the user. */
START_TEST(sessions_run_inside_serve)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct stream st;
  struct proc_out p;
  json_t *j, *leg;
  unsigned legs = 0, named = 0, failed = 0;

  served_start(&s, args);
  stream_open(&st, &s);
  j = post_json(&s, "/sessions", "{}", 200);
  ck_assert_str_eq(at_str(j, "user"), "FABRIKAM\\alice");
  ck_assert_str_eq(at_str(j, "target"), "balancer");
  ck_assert_int_eq(at_int(j, "count"), 1);
  ck_assert_int_eq(at_int(j, "errors"), 0);
  ck_assert_str_eq(at_str(j, "sessions.0.served_by"), "ISA01");
  ck_assert_str_eq(at_str(j, "sessions.0.outcome_class"), "clean");
  json_decref(j);
  /* Any case of the name; the balancer's turn goes on. */
  j = post_json(&s, "/sessions",
                "{\"user\": \"fabrikam\\\\BOB\", \"count\": 3}", 200);
  ck_assert_str_eq(at_str(j, "user"), "FABRIKAM\\bob");
  ck_assert_int_eq(at_int(j, "errors"), 2);
  ck_assert_str_eq(at_str(j, "sessions.0.served_by"), "ISA02");
  ck_assert(json_is_true(at(j, "sessions.0.error")));
  ck_assert_str_eq(at_str(j, "sessions.0.outcome_class"), "server-error");
  ck_assert_int_eq(at_int(j, "sessions.0.posts_failed"), 2);
  ck_assert_str_eq(at_str(j, "sessions.1.served_by"), "ISA01");
  ck_assert_str_eq(at_str(j, "sessions.2.served_by"), "ISA02");
  json_decref(j);
  j = post_json(&s, "/sessions", "{\"member\": 1}", 200);
  ck_assert_str_eq(at_str(j, "target"), "ISA01");
  ck_assert_str_eq(at_str(j, "sessions.0.served_by"), "ISA01");
  json_decref(j);

  /* 5 sessions' legs: each after the type 3 names its user; the 500s are
   * failed, the handshake's 401s not. */
  while(legs < 7 + 5 + 7 + 5 + 7) {
    leg = stream_next(&st, "leg");
    legs++;
    if(json_is_string(json_object_get(leg, "user"))) {
      named++;
      ck_assert(!strcmp(at_str(leg, "user"), "FABRIKAM\\alice") ||
                !strcmp(at_str(leg, "user"), "FABRIKAM\\bob"));
    }
    else
      ck_assert_msg(json_is_null(at(leg, "user")), "leg %u", legs);
    ck_assert(json_is_boolean(at(leg, "failed")));
    ck_assert_str_eq(at_str(leg, "client"), "Communicator");
    if(json_is_true(at(leg, "failed"))) {
      failed++;
      ck_assert_int_eq(at_int(leg, "status"), 500);
      ck_assert_str_eq(at_str(leg, "member"), "ISA02");
      ck_assert_str_eq(at_str(leg, "user"), "FABRIKAM\\bob");
    }
    else
      ck_assert_int_ne(at_int(leg, "status"), 500);
    json_decref(leg);
  }
  /* Offer and type 1 are anonymous until the type 3: 2 a session. */
  ck_assert_uint_eq(named, legs - 2 * 5);
  ck_assert_uint_eq(failed, 4);
  stream_close(&st);

  /* The scores: ISA02's two sessions both saw the error, bob's. */
  j = status_of(&s);
  ck_assert_str_eq(at_str(j, "members.1.score.since"), "the start");
  ck_assert_int_eq(at_int(j, "members.1.score.sessions"), 2);
  ck_assert_int_eq(at_int(j, "members.1.score.errors"), 2);
  ck_assert_uint_eq(json_array_size(at(j, "members.1.score.strip")), 2);
  ck_assert_str_eq(at_str(j, "members.1.score.strip.0.user"), "FABRIKAM\\bob");
  ck_assert(json_is_true(at(j, "members.1.score.strip.1.error")));
  ck_assert_int_eq(at_int(j, "members.0.score.sessions"), 3);
  ck_assert_int_eq(at_int(j, "members.0.score.errors"), 0);
  ck_assert_str_eq(at_str(j, "users.1"), "FABRIKAM\\bob");
  /* Names only: the users' passwords never leave serve. */
  {
    char *text = json_dumps(j, 0);

    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_null(strstr(text, "Passw0rd"));
    free(text);
  }
  json_decref(j);

  ctl(&s, &p, "session", "--user", "FABRIKAM\\bob", "--member", "ISA02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data,
                   "Session 1 as FABRIKAM\\bob on ISA02: served by ISA02; the "
                   "user saw the Outlook Integration Error (server-error)\n"
                   "1 session, 1 with the error\n");
  proc_free(&p);
  ctl(&s, &p, "session", "--count", "2", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data,
                   "Session 1 as FABRIKAM\\alice through the balancer: served "
                   "by ISA01; no error for the user (clean)\n"
                   "Session 2 as FABRIKAM\\alice through the balancer: served "
                   "by ISA02; the user saw the Outlook Integration Error "
                   "(server-error)\n"
                   "2 sessions, 1 with the error\n");
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* Sessions of another client kind: the console's legs name the client by
 * its User-Agent; Internet Explorer's GETs and its body-less POST on ISA02,
 * Java's clean there; a kind that is none is refused in one line, by the
 * endpoint and by ctl. */
START_TEST(sessions_of_other_kinds)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct stream st;
  struct proc_out p;
  json_t *j, *leg;
  unsigned legs = 0, gets = 0, empty = 0;

  served_start(&s, args);
  j = status_of(&s);
  ck_assert_uint_eq(json_array_size(at(j, "kinds")), 7);
  ck_assert_str_eq(at_str(j, "kinds.0.name"), "communicator");
  ck_assert_str_eq(at_str(j, "kinds.3.name"), "ie");
  ck_assert_str_eq(at_str(j, "kinds.3.label"), "Internet Explorer");
  json_decref(j);

  stream_open(&st, &s);
  j = post_json(&s, "/sessions", "{\"kind\": \"ie\", \"member\": \"ISA02\"}",
                200);
  ck_assert_str_eq(at_str(j, "kind"), "ie");
  ck_assert_int_eq(at_int(j, "errors"), 1);
  ck_assert_str_eq(at_str(j, "sessions.0.outcome_class"), "server-error");
  json_decref(j);
  /* ie: 3 legs for the first GET, 1 for the second, 1 per POST (each
   * forwarded without its body). */
  while(legs < 3 + 1 + 2) {
    leg = stream_next(&st, "leg");
    legs++;
    ck_assert_str_eq(at_str(leg, "client"), "Internet Explorer");
    gets += !strcmp(at_str(leg, "method"), "GET");
    empty += !strcmp(at_str(leg, "method"), "POST") &&
             at_int(leg, "req_body") == 0 && at_int(leg, "status") == 500;
    json_decref(leg);
  }
  ck_assert_uint_eq(gets, 4);
  ck_assert_uint_eq(empty, 2);
  stream_close(&st);

  j = post_json(&s, "/sessions", "{\"kind\": \"netscape\"}", 400);
  ck_assert_str_eq(at_str(j, "error"),
                   "\"kind\" must be a client kind: communicator, outlook, "
                   "one-shot, ie, dotnet, java or outlook-anywhere");
  json_decref(j);
  j = post_json(&s, "/sessions", "{\"kind\": 3}", 400);
  json_decref(j);

  ctl(&s, &p, "session", "--kind", "java", "--member", "ISA02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data,
                   "Session 1 (Java client) as FABRIKAM\\alice on ISA02: "
                   "served by ISA02; no error for the user (clean)\n"
                   "1 session, 0 with the error\n");
  proc_free(&p);
  ctl(&s, &p, "session", "--kind", "ie", "--member", "ISA02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data,
                   "Session 1 (Internet Explorer) as FABRIKAM\\alice on "
                   "ISA02: served by ISA02; the user saw an HTTP 500 page in "
                   "the browser (server-error)\n"
                   "1 session, 1 with the error\n");
  proc_free(&p);
  ctl(&s, &p, "status", "--kind", "ie", NULL, NULL);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "status takes no --kind; only "
                                           "session does"));
  proc_free(&p);
  ctl(&s, &p, "session", "--kind", "netscape", NULL, NULL);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "--kind: 'netscape' is no client "
                                           "kind; kinds are communicator"));
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* A member's score starts again when its policy changes, and only then: a
 * session that started before the change stays out of it, even when it
 * goes on; ctl status prints the scoreboard. */
START_TEST(score_starts_again_at_each_change)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct proc_out p;
  struct client_config cfg;
  struct client *cl = NULL;
  struct client_post_result r;
  char url[64], err[256], served[64];
  json_t *j;

  served_start(&s, args);
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 0); /* ISA01 */
  /* Connection 2, to ISA02, stays open across the fix. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.balancer);
  memset(&cfg, 0, sizeof(cfg));
  cfg.id = 1;
  cfg.base_url = url;
  cfg.domain = "FABRIKAM";
  cfg.user = "alice";
  cfg.password = "Passw0rd!";
  cfg.ews_posts = 2;
  ck_assert_msg(!client_create(&cfg, &cl, err, sizeof(err)), "%s", err);
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_str_eq(r.served_by, "ISA02");
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_SERVER_ERROR);
  /* The hotfix alone changes no policy: the score goes on. */
  ctl(&s, &p, "hotfix", "--member", "ISA02", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  j = status_of(&s);
  ck_assert_str_eq(at_str(j, "members.1.score.since"), "the start");
  ck_assert_int_eq(at_int(j, "members.1.score.sessions"), 1);
  ck_assert_int_eq(at_int(j, "members.1.score.errors"), 1);
  json_decref(j);
  /* The script does: from now on. */
  ctl(&s, &p, "apply-fix", "--member", "ISA02", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_OK); /* the open session, clean now */
  client_destroy(cl);
  j = status_of(&s);
  ck_assert_str_eq(at_str(j, "members.1.score.since"),
                   "the script ran on ISA02");
  ck_assert_int_eq(at_int(j, "members.1.score.sessions"), 0);
  ck_assert_str_eq(at_str(j, "members.0.score.since"), "the start");
  json_decref(j);
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 0);
  ck_assert_str_eq(served, "ISA01");
  ck_assert_int_eq(client_on(s.balancer, ALICE, served), 0);
  ck_assert_str_eq(served, "ISA02");
  ctl(&s, &p, "status", NULL, NULL, NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "\nISA01 since the start ("));
  ck_assert_ptr_nonnull(strstr(p.out.data, "): 2 sessions, 0 with the error\n"
                                           "ISA02 since the script ran on "
                                           "ISA02 ("));
  ck_assert_ptr_nonnull(strstr(p.out.data, "): 1 session, 0 with the error\n"));
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* `kbsim client --json` names the member of each POST, and the schema
 * takes it. */
START_TEST(client_json_names_the_member)
{
  static const char *const args[] = {HALF_PATCHED, "--quiet", NULL};
  char *schema[] = {"/usr/bin/python3",
                    "-m",
                    "jsonschema",
                    "-i",
                    NULL,
                    SCENARIOS_DIR "/../docs/report.schema.json",
                    NULL};
  char dir[256], path[300], url[64];
  const char *cargs[] = {"client", "--url",  url,  "--user",
                         ALICE,    "--json", path, NULL};
  struct served s;
  struct proc_out p;
  json_error_t jerr;
  json_t *j;
  size_t i;

  proc_tmpdir("kbsim-console", dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/client.json", dir);
  served_start(&s, args);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.balancer);
  kbsim(&p, cargs);
  ck_assert_int_eq(p.status, 0);
  proc_free(&p);
  kbsim(&p, cargs);
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "Served by: ISA02 (the Via "));
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);
  j = json_load_file(path, 0, &jerr);
  ck_assert_msg(j != NULL, "%s", jerr.text);
  for(i = 0; i < 3; i++) {
    char key[64];

    snprintf(key, sizeof(key), "sessions.0.posts.%zu.served_by", i);
    ck_assert_str_eq(at_str(j, key), "ISA02");
  }
  json_decref(j);
  if(access("/usr/lib/python3/dist-packages/jsonschema", F_OK) == 0) {
    schema[4] = path;
    proc_run(schema, &p);
    ck_assert_msg(p.status == 0, "%s: %s%s", path, p.out.data, p.err.data);
    proc_free(&p);
  }
  proc_rmdir(dir);
}
END_TEST

/* ---- the new endpoints' refusals ----------------------------------------- */

/* POST /reset, /scenario and /sessions obey guard.c as every change does
 * - the token, the Host, the Origin, the content type - and refuse the
 * bodies they cannot use; nothing they refuse changes the array or runs
 * a session. */
START_TEST(new_endpoints_refuse)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  static const char *const paths[] = {"/reset", "/scenario", "/sessions"};
  static const struct {
    const char *path, *body;
    long status;
    const char *want;
  } bodies[] = {
      {"/scenario", "{}", 400, "say which scenario: {\"scenario\": \"NAME\"}"},
      {"/scenario", "{\"scenario\": 7}", 400, "say which scenario"},
      {"/scenario", "{\"scenario\": \"nope\"}", 404,
       "no scenario 'nope' in the catalogue; use one of anonymous, "},
      {"/scenario", "[\"bug\"]", 400, "the body must be a JSON object"},
      {"/scenario", "scenario=bug", 400, "the body is not JSON: "},
      {"/sessions", "{\"count\": 0}", 400,
       "\"count\" must be a number from 1 to 20"},
      {"/sessions", "{\"count\": 21}", 400, "from 1 to 20"},
      {"/sessions", "{\"count\": \"2\"}", 400, "from 1 to 20"},
      {"/sessions", "{\"user\": \"FABRIKAM\\\\mallory\"}", 404,
       "no user 'FABRIKAM\\mallory' in this scenario; users: "
       "FABRIKAM\\alice, FABRIKAM\\bob"},
      {"/sessions", "{\"user\": 1}", 400, "\"user\" must be a user's name"},
      {"/sessions", "{\"member\": \"ISA09\"}", 404,
       "no member 'ISA09' in this array; members: 1 ISA01, 2 ISA02"},
      {"/sessions", "{\"member\": 3}", 404, "no member '3'"},
      {"/sessions", "{\"member\": true}", 400, "\"member\" must be"},
  };
  struct served s;
  char bearer[200], wrong[200], host[64], origin[64], big[6000];
  size_t i;
  json_t *j;

  served_start(&s, args);
  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", s.token);
  snprintf(wrong, sizeof(wrong), "Authorization: Bearer %s", s.token);
  wrong[strlen(wrong) - 1] ^= 1;
  snprintf(host, sizeof(host), "Host: 127.0.0.1:%u", s.admin);
  snprintf(origin, sizeof(origin), "Origin: http://127.0.0.1:%u", s.admin + 1);
  for(i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    const char *json = "Content-Type: application/json";
    const char *none[] = {json, NULL};
    const char *bad[] = {wrong, json, NULL};
    const char *rebound[] = {bearer, json, "Host: rebind.attacker.example",
                             NULL};
    const char *foreign[] = {bearer, json, host, origin, NULL};
    const char *plain[] = {bearer, "Content-Type: text/plain", NULL};
    const char *form[] = {
        bearer, "Content-Type: application/x-www-form-urlencoded", NULL};
    const char *untyped[] = {bearer, "Content-Type:", NULL};
    const char *get[] = {bearer, NULL};
    const char *body = "{\"scenario\": \"bug\", \"count\": 20}";

    refused(&s, "POST", paths[i], none, body, 401, "no token");
    refused(&s, "POST", paths[i], bad, body, 401, "wrong token");
    refused(&s, "POST", paths[i], rebound, body, 403,
            "Host 'rebind.attacker.example' is not this endpoint's");
    refused(&s, "POST", paths[i], foreign, body, 403,
            "other web pages may not use the admin endpoint");
    refused(&s, "POST", paths[i], plain, body, 403,
            "a change needs Content-Type: application/json, not "
            "'text/plain'");
    refused(&s, "POST", paths[i], form, body, 403, "a change needs");
    refused(&s, "POST", paths[i], untyped, body, 403, "a change needs");
    refused(&s, "GET", paths[i], get, NULL, 405, "use POST");
    refused(&s, "PUT", paths[i], get, NULL, 405, "use POST");
  }
  for(i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    const char *hdrs[] = {bearer, "Content-Type: application/json", NULL};
    refused(&s, "POST", bodies[i].path, hdrs, bodies[i].body, bodies[i].status,
            bodies[i].want);
  }
  {
    const char *hdrs[] = {bearer, "Content-Type: application/json", NULL};

    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    refused(&s, "POST", "/sessions", hdrs, big, 413,
            "the body is over 4096 bytes");
  }
  /* Nothing changed, nothing ran. */
  j = status_of(&s);
  ck_assert_int_eq(at_int(j, "generation"), 0);
  ck_assert_str_eq(at_str(j, "scenario"), "half-patched-array");
  ck_assert_int_eq(at_int(j, "balancer.connections"), 0);
  ck_assert_int_eq(at_int(j, "members.1.connections"), 0);
  json_decref(j);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* serve without a scenario (--admin): reset restarts its one listener on
 * the same port, sessions run against it; it cannot switch scenarios. */
START_TEST(flag_form_resets_in_place)
{
  static const char *const args[] = {
      "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
      "--admin", "127.0.0.1:0", "--policy",  "per-connection",
      "--user",  ALICE,         "--quiet",   NULL};
  struct served s;
  char served[64];
  json_t *j;

  served_start(&s, args);
  ck_assert_uint_gt(s.listener, 0);
  j = post_json(&s, "/sessions", "{}", 200);
  ck_assert_str_eq(at_str(j, "target"), "ISA01");
  ck_assert_str_eq(at_str(j, "user"), "FABRIKAM\\alice");
  ck_assert(json_is_true(at(j, "sessions.0.error")));
  json_decref(j);
  j = post_json(&s, "/members/1/sp1", "{}", 200);
  json_decref(j);
  j = post_json(&s, "/reset", "{}", 200);
  ck_assert(json_is_null(at(j, "scenario")));
  json_decref(j);
  j = status_of(&s);
  ck_assert_str_eq(at_str(j, "members.0.patch"), "rtm");
  ck_assert_int_eq(at_int(j, "members.0.requests"), 0);
  ck_assert_uint_eq(
      strtoul(strrchr(at_str(j, "members.0.url"), ':') + 1, NULL, 10),
      s.listener);
  ck_assert_uint_eq(json_array_size(at(j, "catalogue")), 0);
  json_decref(j);
  ck_assert_int_eq(client_on(s.listener, ALICE, served), 1);
  ck_assert_str_eq(served, "ISA01");
  j = post_json(&s, "/scenario", "{\"scenario\": \"bug\"}", 409);
  ck_assert_ptr_nonnull(strstr(at_str(j, "error"), "use POST /reset"));
  json_decref(j);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* ---- the banner ---------------------------------------------------------- */

/* The catalogue's throwaway accounts are printed with their passwords, so
 * a trainer needs not open the file; anyone else's are not: the banner
 * says where they are, and the hint asks for the password. */
START_TEST(banner_says_where_the_passwords_are)
{
  static const char *const catalogue[] = {"half-patched-array", "--quiet",
                                          NULL};
  char dir[256], path[300], *text;
  const char *own[] = {path, "--quiet", NULL};
  struct served s;
  FILE *f;

  served_start(&s, catalogue);
  ck_assert_ptr_nonnull(strstr(s.banner.data,
                               "\nPasswords:    FABRIKAM\\alice:Passw0rd!, "
                               "FABRIKAM\\bob:B0b-secret (the catalogue's "
                               "throwaway test accounts)\n"));
  ck_assert_ptr_nonnull(
      strstr(s.banner.data, " client --url http://127.0.0.1:"));
  ck_assert_ptr_nonnull(
      strstr(s.banner.data, "/ --user 'FABRIKAM\\alice:Passw0rd!'\n"));
  served_stop(&s);
  kb_buf_free(&s.rest);

  /* A scenario of one's own, with another account. */
  proc_tmpdir("kbsim-console", dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/own.ini", dir);
  text = proc_slurp(HALF_PATCHED, NULL);
  f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  *strstr(text, "[users]") = '\0';
  fprintf(f, "%s[users]\nFABRIKAM\\carol = Real-S3cret\n", text);
  ck_assert_int_eq(fclose(f), 0);
  free(text);
  served_start(&s, own);
  ck_assert_ptr_null(strstr(s.banner.data, "Real-S3cret"));
  ck_assert_ptr_nonnull(strstr(s.banner.data, "users FABRIKAM\\carol\n"));
  ck_assert_msg(strstr(s.banner.data, "\nPasswords:    in ") &&
                    strstr(s.banner.data, "own.ini, [users] (not printed: a "
                                          "scenario of your own may hold "
                                          "real ones)\n"),
                "%s", s.banner.data);
  ck_assert_ptr_nonnull(strstr(s.banner.data,
                               "/ --user 'FABRIKAM\\carol' (asks for the "
                               "password; or set KBSIM_PASSWORD)\n"));
  served_stop(&s);
  ck_assert_ptr_null(strstr(s.rest.data, "Real-S3cret"));
  kb_buf_free(&s.rest);
  proc_rmdir(dir);
}
END_TEST

/* ---- the console at a projector's size ----------------------------------- */

/* Reads the PNG at path (8-bit RGB or RGBA) into *rows; its size into *w
 * and *h. */
static void png_read(const char *path, png_bytep **rows, unsigned *w,
                     unsigned *h, unsigned *channels)
{
  FILE *f = fopen(path, "rb");
  png_structp png;
  png_infop info;

  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  ck_assert_ptr_nonnull(png);
  info = png_create_info_struct(png);
  ck_assert_ptr_nonnull(info);
  png_init_io(png, f);
  png_read_png(png, info,
               PNG_TRANSFORM_STRIP_16 | PNG_TRANSFORM_PACKING |
                   PNG_TRANSFORM_EXPAND,
               NULL);
  *w = png_get_image_width(png, info);
  *h = png_get_image_height(png, info);
  *channels = png_get_channels(png, info);
  ck_assert_uint_ge(*channels, 3);
  {
    png_bytep *src = png_get_rows(png, info);
    unsigned y;

    *rows = calloc(*h, sizeof(**rows));
    ck_assert_ptr_nonnull(*rows);
    for(y = 0; y < *h; y++) {
      (*rows)[y] = malloc(*w * *channels);
      ck_assert_ptr_nonnull((*rows)[y]);
      memcpy((*rows)[y], src[y], *w * *channels);
    }
  }
  png_destroy_read_struct(&png, &info, NULL);
  fclose(f);
}

/* Whether the pixel at (x, y) is the console's red (#b00020) or green
 * (#1b6e20), give or take antialiasing. */
static bool pixel_is(png_bytep const *rows, unsigned channels, long x, long y,
                     bool red)
{
  const png_byte *p = rows[y] + x * channels;

  if(red)
    return p[0] > 140 && p[1] < 70 && p[2] < 80;
  return p[1] > 80 && p[0] < 70 && p[2] < 70;
}

/* Checks a screenshot: 1024x768, and each of the JSON marks' centres
 * ({"x", "y", "error"}) the colour its verdict wants. */
static void screenshot_holds(const char *path, json_t *marks)
{
  png_bytep *rows;
  unsigned w, h, ch, y;
  size_t i;
  json_t *m;

  png_read(path, &rows, &w, &h, &ch);
  ck_assert_uint_eq(w, 1024);
  ck_assert_uint_eq(h, 768);
  json_array_foreach(marks, i, m)
  {
    long x = (long)at_int(m, "x"), yy = (long)at_int(m, "y");
    bool red = json_is_true(json_object_get(m, "error"));

    ck_assert_msg(x >= 0 && x < (long)w && yy >= 0 && yy < (long)h,
                  "%s: mark %zu at %ld,%ld is outside", path, i, x, yy);
    ck_assert_msg(pixel_is(rows, ch, x, yy, red),
                  "%s: mark %zu at %ld,%ld is not %s", path, i, x, yy,
                  red ? "red" : "green");
  }
  for(y = 0; y < h; y++)
    free(rows[y]);
  free(rows);
}

/* Returns true when an executable named name is on PATH. */
static bool on_path(const char *name)
{
  const char *path = getenv("PATH");
  char dirs[4096], file[4200], *save = NULL, *dir;

  snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/bin:/bin");
  for(dir = strtok_r(dirs, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
    snprintf(file, sizeof(file), "%s/%s", dir, name);
    if(access(file, X_OK) == 0)
      return true;
  }
  return false;
}

/* The trainer's whole hour in headless Chromium at 1024x768
 * (tests/console/trainer.js), without a terminal; then the screenshots
 * read back: the strip's marks red and green where the page drew them,
 * the presenter's decision dot red; and the array as the clicks left it. */
START_TEST(console_at_1024x768)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     "--quiet", NULL};
  struct served s;
  struct proc_out p;
  char console[256], dir[256], node_path[512], file[300];
  char *argv[] = {
      "/usr/bin/env", node_path, "node", TESTS_DIR "/console/trainer.js",
      console,        dir,       NULL};
  json_error_t jerr;
  json_t *g, *dot, *st;

  if(!on_path("node") || !on_path("chromium")) {
    fprintf(stderr,
            "test_console: SKIP console_at_1024x768: %s is not "
            "installed (scripts/setup installs it)\n",
            on_path("node") ? "chromium" : "node");
    return;
  }
  ck_assert_msg(access(NODE_MODULES "/puppeteer-core", F_OK) == 0,
                "puppeteer-core is missing from " NODE_MODULES
                ": run scripts/setup");
  proc_tmpdir("kbsim-console", dir, sizeof(dir));
  snprintf(node_path, sizeof(node_path), "NODE_PATH=%s", NODE_MODULES);
  served_start(&s, args);
  snprintf(console, sizeof(console), "http://127.0.0.1:%u/?token=%s", s.admin,
           s.token);
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "the trainer's flow failed (%d):\n%s%s",
                p.status, p.out.data, p.err.data);
  ck_assert_msg(!strstr(p.out.data, "FAIL"), "%s", p.out.data);
  {
    /* One ok line per step. */
    const char *l = p.out.data;
    int oks = 0;

    for(; (l = strstr(l, "ok ")) != NULL; l++)
      oks += l == p.out.data || l[-1] == '\n';
    ck_assert_int_eq(oks, 10);
  }
  proc_free(&p);
  /* Where the page drew what, and the pixels there. */
  snprintf(file, sizeof(file), "%s/geometry.json", dir);
  g = json_load_file(file, 0, &jerr);
  ck_assert_msg(g != NULL, "%s: %s", file, jerr.text);
  ck_assert_uint_eq(json_array_size(at(g, "marks")), 3);
  snprintf(file, sizeof(file), "%s/compact.png", dir);
  screenshot_holds(file, at(g, "marks"));
  dot = json_pack("[{s:O, s:O, s:b}]", "x", at(g, "dot.x"), "y", at(g, "dot.y"),
                  "error", 1);
  ck_assert_str_eq(at_str(g, "dot.fill"), "#b00020");
  snprintf(file, sizeof(file), "%s/present.png", dir);
  screenshot_holds(file, dot);
  json_decref(dot);
  json_decref(g);
  /* The picker brought half-patched-array back, after three restarts. */
  st = status_of(&s);
  ck_assert_int_eq(at_int(st, "generation"), 3);
  ck_assert_str_eq(at_str(st, "scenario"), "half-patched-array");
  ck_assert_uint_eq(json_array_size(at(st, "members")), 2);
  json_decref(st);
  served_stop(&s);
  kb_buf_free(&s.rest);
  proc_rmdir(dir);
}
END_TEST

/* A TLS array's console in headless Chromium (tests/console/tls.js):
 * offloading in front of an Exchange that requires Extended Protection,
 * a session over HTTPS whose diagram says what each hop is, and the
 * Exchange line saying why the login was refused (the client's binding,
 * and no TLS at Exchange to match it). */
START_TEST(console_draws_tls_and_epa)
{
  char ca[300], dir[256], console[256], listener[128], node_path[512];
  const char *const args[] = {"--proxy",
                              "127.0.0.1:0",
                              "--backend",
                              "127.0.0.1:0",
                              "--pass-through",
                              "--tls",
                              "offload",
                              "--extended-protection",
                              "require",
                              "--ca-file",
                              ca,
                              "--admin",
                              "127.0.0.1:0",
                              "--user",
                              ALICE,
                              "--quiet",
                              NULL};
  char *argv[] = {
      "/usr/bin/env", node_path, "node",   TESTS_DIR "/console/tls.js",
      console,        KBSIM_BIN, listener, ca,
      ALICE,          NULL};
  struct served s;
  struct proc_out p;
  json_t *st;

  if(!on_path("node") || !on_path("chromium")) {
    fprintf(stderr,
            "test_console: SKIP console_draws_tls_and_epa: %s is not "
            "installed (scripts/setup installs it)\n",
            on_path("node") ? "chromium" : "node");
    return;
  }
  ck_assert_msg(access(NODE_MODULES "/puppeteer-core", F_OK) == 0,
                "puppeteer-core is missing from " NODE_MODULES
                ": run scripts/setup");
  proc_tmpdir("kbsim-console", dir, sizeof(dir));
  snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
  snprintf(node_path, sizeof(node_path), "NODE_PATH=%s", NODE_MODULES);
  served_start(&s, args);
  snprintf(console, sizeof(console), "http://127.0.0.1:%u/?token=%s", s.admin,
           s.token);
  snprintf(listener, sizeof(listener), "https://127.0.0.1:%u", s.listener);
  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "the TLS console's flow failed (%d):\n%s%s",
                p.status, p.out.data, p.err.data);
  ck_assert_int_eq(proc_count(p.out.data, "ok "), 3);
  proc_free(&p);
  /* What the console read: the refusal and its why in /status. */
  st = status_of(&s);
  ck_assert_int_eq(at_int(st, "exchange.channel_binding_refused"), 1);
  ck_assert_ptr_nonnull(
      strstr(at_str(st, "exchange.channel_binding_why"), "over plain HTTP"));
  json_decref(st);
  served_stop(&s);
  kb_buf_free(&s.rest);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("console");
  TCase *api = tcase_create("api");
  TCase *browser = tcase_create("browser");
  int failed;

  proc_whole_lines();
  /* A writer into a closed socket must get EPIPE, not die. */
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  tcase_set_timeout(api, 60);
  tcase_add_test(api, reset_restores_the_start);
  tcase_add_test(api, scenario_switch_in_place);
  tcase_add_test(api, reset_waits_for_running_sessions);
  tcase_add_test(api, sessions_run_inside_serve);
  tcase_add_test(api, sessions_of_other_kinds);
  tcase_add_test(api, score_starts_again_at_each_change);
  tcase_add_test(api, client_json_names_the_member);
  tcase_add_test(api, new_endpoints_refuse);
  tcase_add_test(api, flag_form_resets_in_place);
  tcase_add_test(api, banner_says_where_the_passwords_are);
  suite_add_tcase(s, api);
  tcase_set_timeout(browser, 90);
  tcase_set_tags(browser, KBT_SLOW);
  tcase_add_test(browser, console_at_1024x768);
  tcase_add_test(browser, console_draws_tls_and_epa);
  suite_add_tcase(s, browser);
  failed = kbt_run(s);
  curl_global_cleanup();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
