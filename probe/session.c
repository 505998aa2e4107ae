/*
 * session.c - the checks made of client sessions (client/): communicator,
 * outlook and one-shot (one session each), two-users and wrong-password,
 * each judged by what the clients saw and, when given, what Exchange's
 * status counted meanwhile.
 */
#include "probe_int.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void *probe__session_run(void *cls)
{
  struct probe_session *s = cls;
  struct client *client = NULL;
  struct client_post_result res;
  size_t i;

  s->worst = CLIENT_OK;
  s->detail[0] = '\0';
  if(client_create(&s->cfg, &client, s->err, sizeof(s->err)))
    return NULL;
  s->created = true;
  if(s->max_posts)
    for(i = 0; i < s->max_posts && client_step(client, &res) == 1; i++)
      ;
  else
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

void probe__session_init(struct probe_session *s,
                         const struct probe_config *cfg, unsigned id,
                         const struct probe_user *user, enum client_kind kind,
                         unsigned posts, long timeout_ms)
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
  s->cfg.ca_pem = cfg->ca_pem;
}

bool probe__reached_nothing(const struct probe_result *r)
{
  return r->exchange.known && !r->exchange.requests;
}

/* Judges a finished single session into r: pass when every POST worked;
 * a 5xx after the type 1 is the body-less POST when Exchange (if known)
 * counted an empty POST. When Exchange's status is known, a session that
 * failed says what Exchange saw instead of what the client guessed: a
 * type 3 that found no challenge on its connection (the handshake was
 * moved, the password never checked), or nothing at all. */
static void probe_judge_session(const struct probe_session *s,
                                struct probe_result *r, const char *what)
{
  const struct probe_exchange *ex = &r->exchange;

  r->posts_ok = s->view.posts_ok;
  r->posts_failed = s->view.posts_failed;
  r->integration_error = s->view.integration_error;
  if(!s->created) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "%s: %s", what, s->err);
    return;
  }
  if(probe__reached_nothing(r)) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "%s: " PROBE_NOTHING_REACHED " (%s)",
             what, s->worst == CLIENT_OK ? "every POST answered" : s->detail);
    return;
  }
  if(s->worst == CLIENT_OK) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line), "%s: %u POSTs answered, no error%s%s",
             what, s->view.posts_ok,
             ex->known && ex->identities[0][0] ? "; Exchange saw " : "",
             ex->known ? ex->identities[0] : "");
    return;
  }
  if(s->worst == CLIENT_SERVER_ERROR && (!ex->known || ex->empty_posts)) {
    r->verdict = PROBE_FAIL;
    if(ex->known)
      snprintf(r->line, sizeof(r->line),
               "%s: the body-less POST reached Exchange (%" PRIu64
               " empty POSTs, SOAP 500; %s)",
               what, ex->empty_posts, CLIENT_NOTIFICATION_TEXT);
    else
      snprintf(r->line, sizeof(r->line),
               "%s: a 5xx answered the re-authenticated POST (%s): the "
               "body-less POST was forwarded",
               what, CLIENT_NOTIFICATION_TEXT);
    return;
  }
  r->verdict = PROBE_ERROR;
  if(ex->known && ex->type3_without_challenge)
    snprintf(r->line, sizeof(r->line),
             "%s: %.60s\\%.60s's type 3 reached Exchange on a connection with "
             "no challenge pending (type3_without_challenge %" PRIu64
             "): the listener moved the handshake to another upstream "
             "connection, so the password was never checked (handshake-split "
             "and pinned-recycled tell how)",
             what, s->cfg.domain ? s->cfg.domain : "",
             s->cfg.user ? s->cfg.user : "", ex->type3_without_challenge);
  else
    snprintf(r->line, sizeof(r->line), "%s: %s", what, s->detail);
}

void probe__single(const struct probe_config *cfg, unsigned posts,
                   long timeout_ms, enum client_kind kind,
                   struct probe_result *r, const char *what)
{
  struct probe_status before, after;
  struct probe_session s;

  probe__session_init(&s, cfg, 1, &cfg->users[0], kind, posts, timeout_ms);
  probe__status_read(cfg->status_url, timeout_ms, &before);
  probe__session_run(&s);
  probe__status_read(cfg->status_url, timeout_ms, &after);
  probe__status_delta(&before, &after, &r->exchange);
  probe_judge_session(&s, r, what);
  probe__status_free(&before);
  probe__status_free(&after);
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
    started[i] = !pthread_create(&t[i], NULL, probe__session_run, &s[i]);
  for(i = 0; i < n; i++) {
    if(started[i])
      pthread_join(t[i], NULL);
    else
      probe__session_run(&s[i]);
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

/* Judges the two-users check from Exchange's deltas in r and what broke a
 * session (broken, or NULL); who names the two users; status_url and why
 * say what could not be read. */
static void probe_two_users_judge(struct probe_result *r, char who[2][260],
                                  const char *broken, const char *status_url,
                                  const char *why)
{
  if(!r->exchange.known || why) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "could not read Exchange's status at %s: %s", status_url,
             why ? why : "?");
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
  else if(probe__reached_nothing(r)) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), PROBE_NOTHING_REACHED);
  }
  else if(broken && r->exchange.type3_without_challenge) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "a session could not sign in: %" PRIu64
             " type 3s reached Exchange on a connection with no challenge "
             "pending (the listener moved the handshake; handshake-split and "
             "pinned-recycled tell how)",
             r->exchange.type3_without_challenge);
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
}

/* Two users' Communicator sessions: the first user's alone, then the
 * second user's on a new connection, then (when nothing mixed) both at
 * once. Mixing is a mailbox given to another identity (Exchange's
 * mismatches). One after the other is what makes a pooling listener mix
 * every time: when the second user's first request (sent without
 * credentials, as Communicator does) arrives, the upstream connection the
 * first user authenticated is idle in the pool, whatever the timing. */
void probe__two_users(const struct probe_config *cfg, unsigned posts,
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
    probe__session_init(&s[i], cfg, 10 + i, &cfg->users[i % 2],
                        CLIENT_KIND_COMMUNICATOR, posts, timeout_ms);
  for(i = 0; i < 2; i++)
    snprintf(who[i], sizeof(who[i]), "%s\\%s",
             cfg->users[i].domain ? cfg->users[i].domain : "",
             cfg->users[i].user ? cfg->users[i].user : "");
  probe__status_read(cfg->status_url, timeout_ms, &st[0]);
  probe__session_run(&s[0]);
  probe__status_read(cfg->status_url, timeout_ms, &st[1]);
  probe__session_run(&s[1]);
  probe__status_read(cfg->status_url, timeout_ms, &st[2]);
  if(st[0].ok && st[2].ok && st[2].mismatches == st[0].mismatches) {
    probe_sessions_at_once(&s[2], 2);
    probe__status_read(cfg->status_url, timeout_ms, &st[3]);
    ran = 4;
    last = 3;
  }
  probe__status_delta(&st[0], &st[last], &r->exchange);
  r->exchange.mixed_conn_reused =
      probe__mixed_on_first(st, &r->exchange, who[0]);
  for(i = 0; i < ran; i++) {
    r->posts_ok += s[i].view.posts_ok;
    r->posts_failed += s[i].view.posts_failed;
    r->integration_error |= s[i].view.integration_error;
    if(!broken)
      broken = probe_session_broken(&s[i]);
  }
  probe_two_users_judge(r, who, broken, cfg->status_url,
                        !st[0].ok            ? st[0].why
                        : !st[1].ok          ? st[1].why
                        : !r->exchange.known ? st[last].why
                                             : NULL);
  for(i = 0; i < 4; i++)
    probe__status_free(&st[i]);
}

bool probe__mixed_on_first(const struct probe_status st[3],
                           const struct probe_exchange *x, const char *first)
{
  return x->mixed_conn && st[1].ok &&
         probe__conn_mixed(&st[1], &st[2], x->mixed_conn) &&
         probe__conn_served(&st[0], &st[1], x->mixed_conn, first) &&
         !strcasecmp(x->mixed_identity, first);
}

/* Whether a session with the right password was served (some POST of the
 * session checks answered): without one, a refused wrong password shows
 * nothing. */
static bool probe_signed_in(const struct probe_report *rep)
{
  static const enum probe_check sessions[] = {
      PROBE_CHECK_COMMUNICATOR,    PROBE_CHECK_OUTLOOK,
      PROBE_CHECK_ONE_SHOT,        PROBE_CHECK_TWO_USERS,
      PROBE_CHECK_HANDSHAKE_SPLIT, PROBE_CHECK_PINNED_RECYCLED};
  size_t i;

  for(i = 0; i < sizeof(sessions) / sizeof(sessions[0]); i++)
    if(rep->checks[sessions[i]].posts_ok)
      return true;
  return false;
}

/* The first user with a wrong password: a correct listener refuses it. */
void probe__wrong_password(const struct probe_config *cfg, long timeout_ms,
                           struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_WRONG_PASSWORD];
  struct probe_user wrong = cfg->users[0];
  struct probe_session s;
  struct probe_status before, after;
  char password[300];

  snprintf(password, sizeof(password), "%s-not-the-password",
           wrong.password ? wrong.password : "");
  wrong.password = password;
  probe__session_init(&s, cfg, 20, &wrong, CLIENT_KIND_COMMUNICATOR, 1,
                      timeout_ms);
  probe__status_read(cfg->status_url, timeout_ms, &before);
  probe__session_run(&s);
  probe__status_read(cfg->status_url, timeout_ms, &after);
  probe__status_delta(&before, &after, &r->exchange);
  probe__status_free(&before);
  probe__status_free(&after);
  explicit_bzero(password, sizeof(password));
  r->posts_ok = s.view.posts_ok;
  r->posts_failed = s.view.posts_failed;
  if(!s.created) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "%s", s.err);
  }
  else if(s.worst == CLIENT_AUTH_FAILED && !probe_signed_in(rep)) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "inconclusive: refused with 401, but no session with the right "
             "password was served either, so the refusal shows nothing");
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
