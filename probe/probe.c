/*
 * probe.c - the battery of probe.h: real client sessions (client/) against
 * a listener, Exchange's counters read over HTTP (libcurl, jansson), the
 * verdicts and the class.
 */
#include "probe/probe.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "client/client.h"
#include "common/kb_buf.h"

#define PROBE_DEFAULT_POSTS 3u
#define PROBE_DEFAULT_TIMEOUT_MS 10000L
#define PROBE_MAX_STATUS ((size_t)4 * 1024 * 1024)
#define PROBE_MAX_CONNS 1024u

static const char *const probe_check_names[PROBE_CHECK_COUNT] = {
    "offer",    "communicator", "outlook",
    "one-shot", "two-users",    "wrong-password"};

const char *probe_check_name(enum probe_check check)
{
  return check < PROBE_CHECK_COUNT ? probe_check_names[check] : "?";
}

const char *probe_verdict_name(enum probe_verdict verdict)
{
  switch(verdict) {
  case PROBE_PASS:
    return "pass";
  case PROBE_FAIL:
    return "fail";
  case PROBE_SKIP:
    return "skip";
  case PROBE_ERROR:
    break;
  }
  return "error";
}

/* The classes as data: name, words, exit code. */
static const struct {
  const char *name;
  const char *text;
  int exit_code;
} probe_classes[] = {
    [PROBE_CLASS_NOT_AFFECTED] = {"not-affected",
                                  "re-authenticates every POST (not affected)",
                                  0},
    [PROBE_CLASS_KB942638] = {"kb942638",
                              "keeps the connection's context and forwards "
                              "the body-less POST (KB 942638's bug)",
                              1},
    [PROBE_CLASS_BASIC_ANONYMOUS] = {"basic-or-anonymous", "Basic / anonymous",
                                     0},
    [PROBE_CLASS_MIXES] = {"mixes-identities",
                           "mixes identities across "
                           "clients",
                           1},
    [PROBE_CLASS_UNPROBED] = {"unprobed", "could not be probed", 3}};

const char *probe_class_name(enum probe_class cls)
{
  return probe_classes[cls].name;
}

const char *probe_class_text(enum probe_class cls)
{
  return probe_classes[cls].text;
}

int probe_class_exit(enum probe_class cls)
{
  return probe_classes[cls].exit_code;
}

/* ---- Exchange's status ------------------------------------------------ */

/* One connection of Exchange's status. */
struct probe_conn {
  uint64_t id;
  uint64_t requests;
  uint64_t mismatches;
  unsigned nids;
  char ids[2][260];
  bool more_ids;            /* more than two identities */
  char mixed_mailbox[320];  /* its last mismatch: the mailbox */
  char mixed_identity[260]; /* and the identity it went to */
};

/* Exchange's counters at one moment. */
struct probe_status {
  bool ok;
  char why[160]; /* when not ok: what the URL answered instead */
  uint64_t requests, empty_posts, mismatches;
  size_t nconns;
  struct probe_conn *conns; /* owned */
};

static size_t probe_write_cb(char *data, size_t size, size_t n, void *cls)
{
  return kb_buf_add(cls, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* Reads url's status document into *st (ok false when it could not). */
static void probe_status_read(const char *url, long timeout_ms,
                              struct probe_status *st)
{
  struct kb_buf body;
  CURL *curl = curl_easy_init();
  json_t *doc = NULL, *list;
  json_error_t jerr;
  CURLcode res;
  long code = 0;
  size_t i;

  memset(st, 0, sizeof(*st));
  snprintf(st->why, sizeof(st->why),
           url ? "out of memory" : "no --exchange-status URL given");
  kb_buf_init(&body, PROBE_MAX_STATUS);
  if(!curl || !url)
    goto out;
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, probe_write_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  res = curl_easy_perform(curl);
  if(res != CURLE_OK) {
    snprintf(st->why, sizeof(st->why), "%s", curl_easy_strerror(res));
    goto out;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  if(code != 200) {
    snprintf(st->why, sizeof(st->why), "it answered HTTP %ld, not 200", code);
    goto out;
  }
  doc = json_loadb(body.data, body.len, 0, &jerr);
  if(!doc) {
    snprintf(st->why, sizeof(st->why), "its answer is not JSON (%.100s)",
             body.len ? jerr.text : "an empty body");
    goto out;
  }
  list = json_object_get(doc, "per_connection");
  if(!json_is_object(doc) || !json_is_array(list)) {
    snprintf(st->why, sizeof(st->why),
             "its JSON has no per_connection list: not Exchange's status");
    goto out;
  }
  st->requests = (uint64_t)json_integer_value(json_object_get(doc, "requests"));
  st->empty_posts =
      (uint64_t)json_integer_value(json_object_get(doc, "empty_posts"));
  st->mismatches =
      (uint64_t)json_integer_value(json_object_get(doc, "mismatches"));
  st->nconns = json_array_size(list);
  if(st->nconns > PROBE_MAX_CONNS)
    st->nconns = PROBE_MAX_CONNS;
  st->conns = calloc(st->nconns ? st->nconns : 1, sizeof(*st->conns));
  if(!st->conns)
    goto out;
  for(i = 0; i < st->nconns; i++) {
    json_t *c = json_array_get(list, i);
    json_t *ids = json_object_get(c, "identities");
    struct probe_conn *pc = &st->conns[i];
    size_t j;
    pc->id = (uint64_t)json_integer_value(json_object_get(c, "id"));
    pc->requests = (uint64_t)json_integer_value(json_object_get(c, "requests"));
    pc->mismatches =
        (uint64_t)json_integer_value(json_object_get(c, "mismatches"));
    snprintf(
        pc->mixed_mailbox, sizeof(pc->mixed_mailbox), "%s",
        json_string_value(json_object_get(c, "last_mismatch_mailbox"))
            ? json_string_value(json_object_get(c, "last_mismatch_mailbox"))
            : "");
    snprintf(
        pc->mixed_identity, sizeof(pc->mixed_identity), "%s",
        json_string_value(json_object_get(c, "last_mismatch_identity"))
            ? json_string_value(json_object_get(c, "last_mismatch_identity"))
            : "");
    for(j = 0; j < json_array_size(ids); j++) {
      const char *id = json_string_value(json_array_get(ids, j));
      if(!id || !*id)
        continue;
      if(pc->nids < 2)
        snprintf(pc->ids[pc->nids++], sizeof(pc->ids[0]), "%s", id);
      else
        pc->more_ids = true;
    }
  }
  st->ok = true;
out:
  json_decref(doc);
  kb_buf_free(&body);
  curl_easy_cleanup(curl);
}

static void probe_status_free(struct probe_status *st)
{
  free(st->conns);
  memset(st, 0, sizeof(*st));
}

/* Connection id in st, NULL when it was not there. */
static const struct probe_conn *probe_conn_find(const struct probe_status *st,
                                                uint64_t id)
{
  size_t i;

  for(i = 0; i < st->nconns; i++)
    if(st->conns[i].id == id)
      return &st->conns[i];
  return NULL;
}

/* The requests connection id had in st, 0 when it was not there. */
static uint64_t probe_conn_requests(const struct probe_status *st, uint64_t id)
{
  const struct probe_conn *c = probe_conn_find(st, id);
  return c ? c->requests : 0;
}

/* Whether connection id served requests between before and after as
 * identity ("DOMAIN\user", compared without case). */
static bool probe_conn_served(const struct probe_status *before,
                              const struct probe_status *after, uint64_t id,
                              const char *identity)
{
  const struct probe_conn *c = probe_conn_find(after, id);
  unsigned k;

  if(!c || c->requests == probe_conn_requests(before, id))
    return false;
  for(k = 0; k < c->nids; k++)
    if(!strcasecmp(c->ids[k], identity))
      return true;
  return false;
}

/* Fills *ex with what moved between before and after: the counters, the
 * identities seen on the connections that served requests in between, and
 * how many of those served two identities or more. */
static void probe_status_delta(const struct probe_status *before,
                               const struct probe_status *after,
                               struct probe_exchange *ex)
{
  size_t i;
  unsigned n = 0, k;

  memset(ex, 0, sizeof(*ex));
  if(!before->ok || !after->ok)
    return;
  ex->known = true;
  ex->requests = after->requests - before->requests;
  ex->empty_posts = after->empty_posts - before->empty_posts;
  ex->mismatches = after->mismatches - before->mismatches;
  for(i = 0; i < after->nconns; i++) {
    const struct probe_conn *c = &after->conns[i];
    const struct probe_conn *was = probe_conn_find(before, c->id);
    if(c->requests == (was ? was->requests : 0))
      continue;
    if(c->nids > 1)
      ex->shared++;
    if(!ex->mixed_conn && c->mismatches > (was ? was->mismatches : 0)) {
      ex->mixed_conn = c->id;
      snprintf(ex->mixed_mailbox, sizeof(ex->mixed_mailbox), "%s",
               c->mixed_mailbox);
      snprintf(ex->mixed_identity, sizeof(ex->mixed_identity), "%s",
               c->mixed_identity);
    }
    for(k = 0; k < c->nids && n < 2; k++) {
      if(n && !strcmp(ex->identities[0], c->ids[k]))
        continue;
      snprintf(ex->identities[n++], sizeof(ex->identities[0]), "%s", c->ids[k]);
    }
  }
}

/* ---- the anonymous request -------------------------------------------- */

struct probe_offer_seen {
  bool ntlm, basic;
};

static size_t probe_header_cb(char *data, size_t size, size_t n, void *cls)
{
  struct probe_offer_seen *seen = cls;
  size_t len = size * n;
  static const char name[] = "WWW-Authenticate:";
  const char *v;

  if(len > sizeof(name) && !strncasecmp(data, name, sizeof(name) - 1)) {
    v = data + sizeof(name) - 1;
    while(*v == ' ' || *v == '\t')
      v++;
    if(!strncasecmp(v, "NTLM", 4) || !strncasecmp(v, "Negotiate", 9))
      seen->ntlm = true;
    else if(!strncasecmp(v, "Basic", 5))
      seen->basic = true;
  }
  return len;
}

static size_t probe_discard_cb(char *data, size_t size, size_t n, void *cls)
{
  (void)data;
  (void)cls;
  return size * n;
}

/* POSTs an autodiscover request without credentials and judges the
 * answer's offer. */
static void probe_offer(const struct probe_config *cfg, long timeout_ms,
                        struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_OFFER];
  struct probe_offer_seen seen = {false, false};
  CURL *curl = curl_easy_init();
  struct curl_slist *headers = NULL;
  char url[1024], host[300];
  CURLcode rc;
  long code = 0;

  snprintf(url, sizeof(url), "%s/autodiscover/autodiscover.xml", cfg->url);
  snprintf(host, sizeof(host), "Host: %s",
           cfg->host ? cfg->host : "autodiscover.fabrikam.com");
  r->verdict = PROBE_ERROR;
  if(!curl || !(headers = curl_slist_append(NULL, host))) {
    snprintf(r->line, sizeof(r->line), "out of memory");
    goto out;
  }
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, probe_header_cb);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &seen);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, probe_discard_cb);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  rc = curl_easy_perform(curl);
  if(rc != CURLE_OK) {
    snprintf(r->line, sizeof(r->line), "no answer from %s: %s", cfg->url,
             curl_easy_strerror(rc));
    goto out;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
  r->verdict = PROBE_PASS;
  if(code == 401 && seen.ntlm) {
    rep->offer = PROBE_OFFER_NTLM;
    snprintf(r->line, sizeof(r->line),
             "401 offering NTLM%s: integrated authentication",
             seen.basic ? " and Basic" : "");
  }
  else if(code == 401 && seen.basic) {
    rep->offer = PROBE_OFFER_BASIC;
    snprintf(r->line, sizeof(r->line), "401 offering Basic only");
  }
  else if(code >= 200 && code < 300) {
    rep->offer = PROBE_OFFER_ANONYMOUS;
    snprintf(r->line, sizeof(r->line),
             "%ld without credentials: anonymous access", code);
  }
  else {
    rep->offer = PROBE_OFFER_OTHER;
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "%ld to a request without credentials, offering neither NTLM "
             "nor Basic; is %s a listener publishing kbsim exchange?",
             code, cfg->url);
  }
out:
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
}

/* ---- client sessions -------------------------------------------------- */

/* One session to run, and what it saw. */
struct probe_session {
  struct client_config cfg;
  struct client_view view;
  enum client_outcome worst; /* the first failed POST's outcome */
  char detail[200];          /* its detail */
  char err[256];             /* client_create's error */
  bool created;
  bool challenged; /* some POST's first leg was answered 401 */
};

/* Runs one session to its end (a thread body too). */
static void *probe_session_run(void *cls)
{
  struct probe_session *s = cls;
  struct client *client = NULL;
  size_t i;

  s->worst = CLIENT_OK;
  s->detail[0] = '\0';
  if(client_create(&s->cfg, &client, s->err, sizeof(s->err)))
    return NULL;
  s->created = true;
  client_run_session(client);
  client_view(client, &s->view);
  for(i = 0; i < client_results_count(client); i++) {
    const struct client_post_result *r = client_result(client, i);
    if(r && r->leg1_status == 401)
      s->challenged = true;
    if(r && r->outcome != CLIENT_OK && s->worst == CLIENT_OK) {
      s->worst = r->outcome;
      snprintf(s->detail, sizeof(s->detail), "POST %u (%s): %s%s%s", r->index,
               client_post_kind_name(r->kind), client_outcome_name(r->outcome),
               r->detail[0] ? ": " : "", r->detail);
    }
  }
  client_destroy(client);
  return NULL;
}

/* Prepares a session of kind for user number u. */
static void probe_session_init(struct probe_session *s,
                               const struct probe_config *cfg, unsigned id,
                               const struct probe_user *user,
                               enum client_kind kind, unsigned posts,
                               long timeout_ms)
{
  memset(s, 0, sizeof(*s));
  s->cfg.id = id;
  s->cfg.base_url = cfg->url;
  s->cfg.host = cfg->host;
  s->cfg.domain = user->domain;
  s->cfg.user = user->user;
  s->cfg.password = user->password;
  s->cfg.ews_posts = posts;
  s->cfg.kind = kind;
  s->cfg.timeout_ms = timeout_ms;
}

/* Judges a finished single session into r: pass when every POST worked;
 * a 5xx after the type 1 is the body-less POST when Exchange (if known)
 * counted an empty POST. */
static void probe_judge_session(const struct probe_session *s,
                                struct probe_result *r, const char *what)
{
  r->posts_ok = s->view.posts_ok;
  r->posts_failed = s->view.posts_failed;
  r->integration_error = s->view.integration_error;
  if(!s->created) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "%s: %s", what, s->err);
    return;
  }
  if(s->worst == CLIENT_OK) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line), "%s: %u POSTs answered, no error%s%s",
             what, s->view.posts_ok,
             r->exchange.known && r->exchange.identities[0][0]
                 ? "; Exchange saw "
                 : "",
             r->exchange.known ? r->exchange.identities[0] : "");
    return;
  }
  if(s->worst == CLIENT_SERVER_ERROR &&
     (!r->exchange.known || r->exchange.empty_posts)) {
    r->verdict = PROBE_FAIL;
    if(r->exchange.known)
      snprintf(r->line, sizeof(r->line),
               "%s: the body-less POST reached Exchange (%" PRIu64
               " empty POSTs, SOAP 500; %s)",
               what, r->exchange.empty_posts, CLIENT_NOTIFICATION_TEXT);
    else
      snprintf(r->line, sizeof(r->line),
               "%s: a 5xx answered the re-authenticated POST (%s): the "
               "body-less POST was forwarded",
               what, CLIENT_NOTIFICATION_TEXT);
    return;
  }
  r->verdict = PROBE_ERROR;
  snprintf(r->line, sizeof(r->line), "%s: %s", what, s->detail);
}

/* Runs one session of kind as the first user and judges it. */
static void probe_single(const struct probe_config *cfg, unsigned posts,
                         long timeout_ms, enum client_kind kind,
                         struct probe_result *r, const char *what)
{
  struct probe_status before, after;
  struct probe_session s;

  probe_session_init(&s, cfg, 1, &cfg->users[0], kind, posts, timeout_ms);
  probe_status_read(cfg->status_url, timeout_ms, &before);
  probe_session_run(&s);
  probe_status_read(cfg->status_url, timeout_ms, &after);
  probe_status_delta(&before, &after, &r->exchange);
  probe_judge_session(&s, r, what);
  probe_status_free(&before);
  probe_status_free(&after);
}

/* Runs the n sessions at once, a thread each (in this thread when one
 * cannot be started). */
static void probe_sessions_at_once(struct probe_session *s, unsigned n)
{
  pthread_t t[2];
  bool started[2] = {false, false};
  unsigned i;

  assert(n <= 2);
  for(i = 0; i < n; i++)
    started[i] = !pthread_create(&t[i], NULL, probe_session_run, &s[i]);
  for(i = 0; i < n; i++) {
    if(started[i])
      pthread_join(t[i], NULL);
    else
      probe_session_run(&s[i]);
  }
}

/* What kept a two-user session from running to its end (not created, or
 * a failure other than the listener's 5xx), or NULL. */
static const char *probe_session_broken(const struct probe_session *s)
{
  if(!s->created)
    return s->err;
  if(s->worst != CLIENT_OK && s->worst != CLIENT_SERVER_ERROR)
    return s->detail;
  return NULL;
}

/* Whether mismatches moved on connection id between before and after. */
static bool probe_conn_mixed(const struct probe_status *before,
                             const struct probe_status *after, uint64_t id)
{
  const struct probe_conn *b = probe_conn_find(before, id);
  const struct probe_conn *a = probe_conn_find(after, id);
  return a && a->mismatches > (b ? b->mismatches : 0);
}

/* Two users' Communicator sessions: the first user's alone, then the
 * second user's on a new connection, then (when nothing mixed) both at
 * once. Mixing is a mailbox given to another identity (Exchange's
 * mismatches). One after the other is what makes a pooling listener mix
 * every time: when the second user's first request (sent without
 * credentials, as Communicator does) arrives, the upstream connection the
 * first user authenticated is idle in the pool, whatever the timing. */
static void probe_two_users(const struct probe_config *cfg, unsigned posts,
                            long timeout_ms, struct probe_result *r)
{
  /* Exchange before, after the first user, after the second, at the end. */
  struct probe_status st[4];
  /* One after the other: 0, 1; at once: 2, 3. */
  struct probe_session s[4];
  char who[2][260];
  const char *broken = NULL;
  unsigned i, ran = 2, last = 2;

  if(cfg->nusers < 2) {
    r->verdict = PROBE_SKIP;
    snprintf(r->line, sizeof(r->line),
             "needs a second user: give --user twice");
    return;
  }
  if(!cfg->status_url) {
    r->verdict = PROBE_SKIP;
    snprintf(r->line, sizeof(r->line),
             "needs Exchange's view: give --exchange-status URL");
    return;
  }
  memset(st, 0, sizeof(st));
  for(i = 0; i < 4; i++)
    probe_session_init(&s[i], cfg, 10 + i, &cfg->users[i % 2],
                       CLIENT_KIND_COMMUNICATOR, posts, timeout_ms);
  for(i = 0; i < 2; i++)
    snprintf(who[i], sizeof(who[i]), "%s\\%s",
             cfg->users[i].domain ? cfg->users[i].domain : "",
             cfg->users[i].user ? cfg->users[i].user : "");
  probe_status_read(cfg->status_url, timeout_ms, &st[0]);
  probe_session_run(&s[0]);
  probe_status_read(cfg->status_url, timeout_ms, &st[1]);
  probe_session_run(&s[1]);
  probe_status_read(cfg->status_url, timeout_ms, &st[2]);
  if(st[0].ok && st[2].ok && st[2].mismatches == st[0].mismatches) {
    probe_sessions_at_once(&s[2], 2);
    probe_status_read(cfg->status_url, timeout_ms, &st[3]);
    ran = 4;
    last = 3;
  }
  probe_status_delta(&st[0], &st[last], &r->exchange);
  /* The second user's session mixed on the connection the first user's
   * had been served on, as the first user. */
  r->exchange.mixed_conn_reused =
      r->exchange.mixed_conn && st[1].ok &&
      probe_conn_mixed(&st[1], &st[2], r->exchange.mixed_conn) &&
      probe_conn_served(&st[0], &st[1], r->exchange.mixed_conn, who[0]) &&
      !strcasecmp(r->exchange.mixed_identity, who[0]);
  for(i = 0; i < ran; i++) {
    r->posts_ok += s[i].view.posts_ok;
    r->posts_failed += s[i].view.posts_failed;
    r->integration_error |= s[i].view.integration_error;
    if(!broken)
      broken = probe_session_broken(&s[i]);
  }
  if(!r->exchange.known || !st[1].ok) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "could not read Exchange's status at %s: %s", cfg->status_url,
             st[0].ok ? st[1].why : st[0].why);
  }
  else if(r->exchange.mismatches && r->exchange.mixed_conn_reused) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "%.60s's session reached Exchange as %.60s on the upstream "
             "connection %.60s's finished session had authenticated "
             "(Exchange connection %" PRIu64 "): %" PRIu64
             " answers held another user's mailbox (last: %.60s)",
             who[1], r->exchange.mixed_identity, who[0], r->exchange.mixed_conn,
             r->exchange.mismatches, r->exchange.mixed_mailbox);
  }
  else if(r->exchange.mismatches) {
    r->verdict = PROBE_FAIL;
    if(r->exchange.mixed_mailbox[0])
      snprintf(r->line, sizeof(r->line),
               "%" PRIu64 " answers held another user's mailbox (last: "
               "%.60s, served as %.60s on Exchange connection %" PRIu64 ")",
               r->exchange.mismatches, r->exchange.mixed_mailbox,
               r->exchange.mixed_identity, r->exchange.mixed_conn);
    else /* an Exchange whose status does not say which */
      snprintf(r->line, sizeof(r->line),
               "%" PRIu64 " answers held another user's mailbox",
               r->exchange.mismatches);
  }
  else if(broken) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "a session could not run: %s", broken);
  }
  else {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "no answer reached the wrong user, one after the other or at "
             "once (%" PRIu64 " Exchange requests; %" PRIu64
             " upstream connections served both users)",
             r->exchange.requests, r->exchange.shared);
  }
  for(i = 0; i < 4; i++)
    probe_status_free(&st[i]);
}

/* The first user with a wrong password: a correct listener refuses it. */
static void probe_wrong_password(const struct probe_config *cfg,
                                 long timeout_ms, struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_WRONG_PASSWORD];
  struct probe_user wrong = cfg->users[0];
  struct probe_session s;
  struct probe_status before, after;
  char password[300];

  snprintf(password, sizeof(password), "%s-not-the-password",
           wrong.password ? wrong.password : "");
  wrong.password = password;
  probe_session_init(&s, cfg, 20, &wrong, CLIENT_KIND_COMMUNICATOR, 1,
                     timeout_ms);
  probe_status_read(cfg->status_url, timeout_ms, &before);
  probe_session_run(&s);
  probe_status_read(cfg->status_url, timeout_ms, &after);
  probe_status_delta(&before, &after, &r->exchange);
  probe_status_free(&before);
  probe_status_free(&after);
  explicit_bzero(password, sizeof(password));
  r->posts_ok = s.view.posts_ok;
  r->posts_failed = s.view.posts_failed;
  if(!s.created) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "%s", s.err);
  }
  else if(s.worst == CLIENT_AUTH_FAILED) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line), "refused with 401");
  }
  else if(s.worst == CLIENT_OK && !s.challenged) {
    /* The password never went out: nothing asked for it. */
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "served without being asked for credentials: the listener "
             "let it through unauthenticated");
  }
  else if(s.worst == CLIENT_OK) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "served with a wrong password: the listener checks no "
             "password");
  }
  else {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "%s", s.detail);
  }
}

/* The class from the verdicts, worst first. */
static enum probe_class probe_classify(const struct probe_report *rep)
{
  const struct probe_result *c = rep->checks;

  if(c[PROBE_CHECK_OFFER].verdict == PROBE_ERROR ||
     c[PROBE_CHECK_COMMUNICATOR].verdict == PROBE_ERROR)
    return PROBE_CLASS_UNPROBED;
  if(c[PROBE_CHECK_TWO_USERS].verdict == PROBE_FAIL)
    return PROBE_CLASS_MIXES;
  if(c[PROBE_CHECK_COMMUNICATOR].verdict == PROBE_FAIL ||
     c[PROBE_CHECK_ONE_SHOT].verdict == PROBE_FAIL)
    return PROBE_CLASS_KB942638;
  if(rep->offer != PROBE_OFFER_NTLM ||
     c[PROBE_CHECK_WRONG_PASSWORD].verdict == PROBE_FAIL)
    return PROBE_CLASS_BASIC_ANONYMOUS;
  return PROBE_CLASS_NOT_AFFECTED;
}

/* Starts timing a check: the monotonic clock into *start. */
static void probe_clock(struct timespec *start)
{
  clock_gettime(CLOCK_MONOTONIC, start);
}

/* Seconds since start, for a check's time. */
static double probe_since(const struct timespec *start)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

enum probe_run_result probe_run(const struct probe_config *config,
                                struct probe_report *report, char *err,
                                size_t errlen)
{
  struct probe_result *c = report->checks;
  struct timespec t;
  unsigned posts;
  long timeout_ms;
  int i;

  memset(report, 0, sizeof(*report));
  if(!config || !config->url || !config->users || !config->nusers) {
    snprintf(err, errlen,
             "probe: give the listener's URL and at least one "
             "user");
    return PROBE_RUN_BAD_CONFIG;
  }
  posts = config->posts ? config->posts : PROBE_DEFAULT_POSTS;
  timeout_ms =
      config->timeout_ms ? config->timeout_ms : PROBE_DEFAULT_TIMEOUT_MS;
  if(config->status_url) {
    /* A status URL that answers nothing usable would turn every check
     * that reads it into a guess: say so before anything runs. */
    struct probe_status st;
    probe_status_read(config->status_url, timeout_ms, &st);
    if(!st.ok) {
      snprintf(err, errlen,
               "--exchange-status %s: %s; give the status URL that kbsim "
               "exchange or kbsim serve prints (http://HOST:PORT/"
               "kbsim/status)",
               config->status_url, st.why);
      probe_status_free(&st);
      return PROBE_RUN_NO_STATUS;
    }
    probe_status_free(&st);
  }
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    report->checks[i].verdict = PROBE_SKIP;
    snprintf(report->checks[i].line, sizeof(report->checks[i].line),
             "not run: the listener could not be reached");
  }
  probe_clock(&t);
  probe_offer(config, timeout_ms, report);
  c[PROBE_CHECK_OFFER].seconds = probe_since(&t);
  if(c[PROBE_CHECK_OFFER].verdict == PROBE_PASS) {
    probe_clock(&t);
    probe_single(config, posts, timeout_ms, CLIENT_KIND_COMMUNICATOR,
                 &c[PROBE_CHECK_COMMUNICATOR], "re-authenticating every POST");
    c[PROBE_CHECK_COMMUNICATOR].seconds = probe_since(&t);
    if(report->offer == PROBE_OFFER_BASIC) {
      /* Outlook's side of the client library speaks NTLM only. */
      c[PROBE_CHECK_OUTLOOK].verdict = PROBE_SKIP;
      snprintf(c[PROBE_CHECK_OUTLOOK].line, sizeof(c[0].line),
               "not run: the Outlook client here speaks NTLM only and the "
               "listener offers Basic");
    }
    else {
      probe_clock(&t);
      probe_single(config, posts, timeout_ms, CLIENT_KIND_OUTLOOK,
                   &c[PROBE_CHECK_OUTLOOK],
                   "authenticating the connection once");
      c[PROBE_CHECK_OUTLOOK].seconds = probe_since(&t);
    }
    probe_clock(&t);
    probe_single(config, posts, timeout_ms, CLIENT_KIND_ONE_SHOT,
                 &c[PROBE_CHECK_ONE_SHOT], "a new connection per POST");
    c[PROBE_CHECK_ONE_SHOT].seconds = probe_since(&t);
    memset(&c[PROBE_CHECK_TWO_USERS], 0, sizeof(c[0]));
    probe_clock(&t);
    probe_two_users(config, posts, timeout_ms, &c[PROBE_CHECK_TWO_USERS]);
    c[PROBE_CHECK_TWO_USERS].seconds = probe_since(&t);
    probe_clock(&t);
    probe_wrong_password(config, timeout_ms, report);
    c[PROBE_CHECK_WRONG_PASSWORD].seconds = probe_since(&t);
  }
  report->cls = probe_classify(report);
  return PROBE_RUN_OK;
}
