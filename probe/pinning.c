/*
 * pinning.c - the checks of the upstream connection a listener that
 * passes NTLM through must pin to each client connection: handshake-split
 * (one handshake's type 1 and type 3 on one upstream connection?) and
 * pinned-recycled (the authenticated upstream connection kept while the
 * client's stays up?). Each runs an Outlook session (libcurl's NTLM: the
 * type 1 first, then requests without credentials on the authenticated
 * connection) on one client connection and reads Exchange's connections:
 * run alone, every Exchange connection that moved meanwhile carried that
 * client's requests.
 */
#include "probe_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define PROBE_MAX_MOVED 16u

/* What one pinning session saw: the client's side and Exchange's. */
struct probe_pinning {
  struct probe_session s;
  struct probe_status before, after;
  struct probe_moved moved[PROBE_MAX_MOVED];
  size_t nmoved;
  char who[260]; /* "DOMAIN\user" */
};

/* Whether the check can run: the listener offers NTLM and Exchange's
 * status is given; otherwise r says why not. */
static bool probe_pinning_can(const struct probe_config *cfg,
                              const struct probe_report *rep,
                              struct probe_result *r)
{
  r->verdict = PROBE_SKIP;
  if(rep->offer != PROBE_OFFER_NTLM)
    snprintf(r->line, sizeof(r->line),
             "not run: the listener does not offer NTLM");
  else if(!cfg->status_url)
    snprintf(r->line, sizeof(r->line),
             "needs Exchange's view: give --exchange-status URL");
  else
    return true;
  return false;
}

/* Runs the first user's Outlook session of posts EWS POSTs, stopped after
 * max_posts POSTs (0: not), into *p and r's counts. */
static void probe_pinning_run(const struct probe_config *cfg, unsigned posts,
                              unsigned max_posts, long timeout_ms,
                              struct probe_pinning *p, struct probe_result *r)
{
  const struct probe_user *u = &cfg->users[0];

  memset(p, 0, sizeof(*p));
  snprintf(p->who, sizeof(p->who), "%s\\%s", u->domain ? u->domain : "",
           u->user ? u->user : "");
  probe__session_init(&p->s, cfg, 30, u, CLIENT_KIND_OUTLOOK, posts,
                      timeout_ms);
  p->s.max_posts = max_posts;
  probe__status_read(cfg->status_url, timeout_ms, &p->before);
  probe__session_run(&p->s);
  probe__status_read(cfg->status_url, timeout_ms, &p->after);
  probe__status_delta(&p->before, &p->after, &r->exchange);
  p->nmoved = probe__moved(&p->before, &p->after, p->moved, PROBE_MAX_MOVED);
  r->posts_ok = p->s.view.posts_ok;
  r->posts_failed = p->s.view.posts_failed;
  r->integration_error = p->s.view.integration_error;
}

static void probe_pinning_free(struct probe_pinning *p)
{
  probe__status_free(&p->before);
  probe__status_free(&p->after);
}

/* The first moved connection with a counter of its own set: challenged,
 * a type 3 without a challenge, an identity served (which: 0, 1, 2), or
 * NULL. */
static const struct probe_moved *
probe_pinning_find(const struct probe_pinning *p, int which)
{
  size_t i;

  for(i = 0; i < p->nmoved; i++) {
    const struct probe_moved *m = &p->moved[i];
    if((which == 0 && m->challenges) ||
       (which == 1 && m->type3_without_challenge) ||
       (which == 2 && m->challenges && m->conn->nids))
      return m;
  }
  return NULL;
}

/* Says into r what kept the session from being judged, when something
 * did (not created, nothing reached Exchange). Returns whether it did. */
static bool probe_pinning_broken(const struct probe_pinning *p,
                                 struct probe_result *r)
{
  r->verdict = PROBE_ERROR;
  if(!p->s.created)
    snprintf(r->line, sizeof(r->line), "%s", p->s.err);
  else if(!r->exchange.known)
    snprintf(r->line, sizeof(r->line), "could not read Exchange's status");
  else if(probe__reached_nothing(r))
    snprintf(r->line, sizeof(r->line), PROBE_NOTHING_REACHED " (%s)",
             p->s.worst == CLIENT_OK ? "every POST answered" : p->s.detail);
  else
    return false;
  return true;
}

void probe__handshake_split(const struct probe_config *cfg, long timeout_ms,
                            struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_HANDSHAKE_SPLIT];
  const struct probe_moved *chal, *orphan;
  struct probe_pinning p;

  if(!probe_pinning_can(cfg, rep, r))
    return;
  /* One POST: the handshake alone, the type 1 its first request. */
  probe_pinning_run(cfg, 1, 1, timeout_ms, &p, r);
  chal = probe_pinning_find(&p, 0);
  orphan = probe_pinning_find(&p, 1);
  if(probe_pinning_broken(&p, r))
    ;
  else if(orphan && chal && chal != orphan) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "one handshake on one client connection: the type 1 was "
             "challenged on Exchange connection %" PRIu64
             ", the type 3 reached connection %" PRIu64
             ", where no challenge was pending, so %.60s was refused "
             "without the password being checked (%zu Exchange connections "
             "for %u client connection%s)",
             chal->conn->id, orphan->conn->id, p.who, p.nmoved,
             p.s.view.connections, p.s.view.connections == 1 ? "" : "s");
  }
  else if(orphan) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "the type 3 reached Exchange connection %" PRIu64
             ", where no challenge was pending: its type 1 went elsewhere, "
             "so %.60s was refused without the password being checked",
             orphan->conn->id, p.who);
  }
  else if(p.s.worst != CLIENT_OK)
    snprintf(r->line, sizeof(r->line), "%s", p.s.detail);
  else if(chal) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "type 1 and type 3 on one upstream connection (Exchange "
             "connection %" PRIu64 ": challenged, then served as %.60s)",
             chal->conn->id, chal->conn->nids ? chal->conn->ids[0] : "?");
  }
  else {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "the listener authenticates itself: Exchange saw no handshake "
             "and served %.60s (%" PRIu64 " request%s)",
             r->exchange.identities[0][0] ? r->exchange.identities[0] : "?",
             r->exchange.requests, r->exchange.requests == 1 ? "" : "s");
  }
  probe_pinning_free(&p);
}

/* A moved connection after the authenticated one that refused the client's
 * requests (a body with no identity, or a type 3 without a challenge), or
 * NULL. */
static const struct probe_moved *
probe_pinning_refused_after(const struct probe_pinning *p,
                            const struct probe_moved *auth)
{
  size_t i;

  for(i = 0; i < p->nmoved; i++) {
    const struct probe_moved *m = &p->moved[i];
    if(m != auth && m->conn->id > auth->conn->id &&
       (m->unauthenticated_bodies || m->type3_without_challenge))
      return m;
  }
  return NULL;
}

void probe__pinned_recycled(const struct probe_config *cfg, unsigned posts,
                            long timeout_ms, struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_PINNED_RECYCLED];
  const struct probe_moved *auth, *next;
  struct probe_pinning p;

  if(!probe_pinning_can(cfg, rep, r))
    return;
  probe_pinning_run(cfg, posts, 0, timeout_ms, &p, r);
  auth = probe_pinning_find(&p, 2);
  next = auth ? probe_pinning_refused_after(&p, auth) : NULL;
  if(probe_pinning_broken(&p, r))
    ;
  else if(next && p.s.view.connections == 1) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "the client's one connection was authenticated on Exchange "
             "connection %" PRIu64 " (%" PRIu64 " requests as %.60s); its "
             "next requests reached connection %" PRIu64
             ", which nobody had authenticated, and were refused (%" PRIu64
             " bodies with no identity, %" PRIu64
             " type 3s without a challenge): the listener replaced the "
             "pinned upstream connection while the client's stayed up",
             auth->conn->id, auth->requests, auth->conn->ids[0], next->conn->id,
             next->unauthenticated_bodies, next->type3_without_challenge);
  }
  else if(p.s.worst == CLIENT_OK) {
    r->verdict = PROBE_PASS;
    if(auth)
      snprintf(r->line, sizeof(r->line),
               "%u POSTs answered: the client's connection kept Exchange "
               "connection %" PRIu64 ", authenticated once as %.60s (%" PRIu64
               " requests on it)",
               p.s.view.posts_ok, auth->conn->id, auth->conn->ids[0],
               auth->requests);
    else
      snprintf(r->line, sizeof(r->line),
               "%u POSTs answered; the listener authenticates itself "
               "(Exchange saw no handshake)",
               p.s.view.posts_ok);
  }
  else if(!auth)
    snprintf(r->line, sizeof(r->line),
             "no handshake completed (%s%s), so nothing was pinned to be "
             "recycled: see handshake-split",
             p.s.detail,
             r->exchange.type3_without_challenge
                 ? "; the type 3 found no challenge at Exchange"
                 : "");
  else if(p.s.view.connections > 1)
    snprintf(r->line, sizeof(r->line),
             "the client's connection was closed under it (%u connections): "
             "%s",
             p.s.view.connections, p.s.detail);
  else
    snprintf(r->line, sizeof(r->line), "%s", p.s.detail);
  probe_pinning_free(&p);
}
