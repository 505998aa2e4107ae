/*
 * kerberos.c - the single-leg check: a listener that pins an upstream
 * connection to its client only once a 401 with NTLM or Negotiate came
 * back on it (HAProxy's rule) never pins a Kerberos client, which sends
 * its ticket with the first request of every connection and so never
 * sees a 401; that upstream connection, authenticated as the Kerberos
 * user at Exchange, can then serve the next client (haproxy#2985).
 */
#include "probe_int.h"

/* The second user's sessions at most, while none was mixed. */
#define PROBE_SINGLE_LEG_TRIES 3u

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Says why the check cannot run into r and returns true, or false when it
 * can. */
static bool probe_single_leg_skip(const struct probe_config *cfg,
                                  const struct probe_report *rep,
                                  struct probe_result *r)
{
  const char *why = NULL;

  if(!cfg->krb5_ccache)
    why = "needs Kerberos credentials for the first user: give "
          "--krb5-ccache FILE (kinit's cache)";
  else if(cfg->nusers < 2)
    why = "needs a second user: give --user twice";
  else if(!cfg->status_url)
    why = "needs Exchange's view: give --exchange-status URL";
  else if(rep->checks[PROBE_CHECK_TWO_USERS].verdict == PROBE_FAIL)
    why = "two-users found that the listener mixes every client's "
          "connection, whatever its authentication";
  if(!why)
    return false;
  r->verdict = PROBE_SKIP;
  snprintf(r->line, sizeof(r->line), "%s", why);
  return true;
}

void probe__single_leg(const struct probe_config *cfg, unsigned posts,
                       long timeout_ms, struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_SINGLE_LEG];
  /* Exchange before, after the Kerberos session, after the second user's
   * last session. */
  struct probe_status st[3];
  /* The Kerberos session, then up to PROBE_SINGLE_LEG_TRIES of the second
   * user's: a listener puts a connection in its pool once it has seen the
   * client leave, which may be after the next client has connected, so a
   * second user's session that found nothing pooled is run again. */
  struct probe_session s[1 + PROBE_SINGLE_LEG_TRIES];
  char who[2][260];
  unsigned i, ran = 2;

  if(probe_single_leg_skip(cfg, rep, r))
    return;
  memset(st, 0, sizeof(st));
  for(i = 0; i < 1 + PROBE_SINGLE_LEG_TRIES; i++)
    probe__session_init(&s[i], cfg, 30 + i, &cfg->users[i ? 1 : 0],
                        CLIENT_KIND_COMMUNICATOR, posts, timeout_ms);
  for(i = 0; i < 2; i++)
    snprintf(who[i], sizeof(who[i]), "%s\\%s",
             cfg->users[i].domain ? cfg->users[i].domain : "",
             cfg->users[i].user ? cfg->users[i].user : "");
  s[0].cfg.krb5_ccache = cfg->krb5_ccache;
  probe__status_read(cfg->status_url, timeout_ms, &st[0]);
  probe__session_run(&s[0]);
  probe__status_read(cfg->status_url, timeout_ms, &st[1]);
  probe__session_run(&s[1]);
  probe__status_read(cfg->status_url, timeout_ms, &st[2]);
  while(ran < 1 + PROBE_SINGLE_LEG_TRIES && st[1].ok && st[2].ok &&
        st[2].mismatches == st[1].mismatches) {
    probe__status_free(&st[2]);
    probe__session_run(&s[ran++]);
    probe__status_read(cfg->status_url, timeout_ms, &st[2]);
  }
  probe__status_delta(&st[0], &st[2], &r->exchange);
  r->exchange.mixed_conn_reused =
      probe__mixed_on_first(st, &r->exchange, who[0]);
  for(i = 0; i < ran; i++) {
    r->posts_ok += s[i].view.posts_ok;
    r->posts_failed += s[i].view.posts_failed;
    r->integration_error |= s[i].view.integration_error;
  }
  if(!st[0].ok || !st[1].ok || !r->exchange.known) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "could not read Exchange's status at %s: %s", cfg->status_url,
             !st[0].ok   ? st[0].why
             : !st[1].ok ? st[1].why
                         : st[2].why);
  }
  else if(r->exchange.mismatches) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "%.40s's session reached Exchange as %.40s%s (Exchange "
             "connection %" PRIu64 "): %.40s's Kerberos session had sent "
             "its ticket with its first request, got no 401, and its "
             "upstream connection was not kept for it; %" PRIu64
             " answers held another user's mailbox (last: %.40s)",
             who[1], r->exchange.mixed_identity,
             r->exchange.mixed_conn_reused
                 ? " on the Kerberos session's upstream connection"
                 : "",
             r->exchange.mixed_conn, who[0], r->exchange.mismatches,
             r->exchange.mixed_mailbox);
  }
  else if(!s[0].created || s[0].worst != CLIENT_OK) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "the Kerberos session could not run: %.300s",
             !s[0].created ? s[0].err : s[0].detail);
  }
  else if(s[0].challenged) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "the ticket was not taken (a 401 answered it; the client fell "
             "back to NTLM): no single-leg session to judge; does the "
             "listener's keytab hold HTTP/<its name>?");
  }
  else {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "%.60s's Kerberos session (%u POSTs in one leg each) left "
             "nothing that served %.60s as %.60s (%" PRIu64
             " Exchange requests)",
             who[0], s[0].view.posts_ok, who[1], who[0], r->exchange.requests);
  }
  for(i = 0; i < 3; i++)
    probe__status_free(&st[i]);
}
