/*
 * rules.c - the family's failures as rules over answered requests: each
 * rule reads one request, its answer, what the listener sent upstream for
 * it and the NTLM state of the connections involved, and records a
 * finding with the frames that show it. A rule that needs both hops runs
 * only when both are in the input; a few conclude from one hop, and say
 * so (analyze.h: one_hop).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "analyze_int.h"

/* ---- helpers ------------------------------------------------------------- */

/* The open client request serial of connection conn, or NULL. */
static struct an_req *an_client_req(struct an_model *m, uint64_t conn,
                                    uint64_t serial)
{
  struct an_conn *c = an__conn_by_serial(m, conn);
  struct an_req *r;

  for(r = c ? c->head : NULL; r; r = r->next)
    if(r->client_serial == serial)
      return r;
  return NULL;
}

/* True when identity ("DOMAIN\user" or "user@domain") owns mailbox
 * ("user@domain"): the user names match, without case. */
static bool an_owns(const char *identity, const char *mailbox)
{
  const char *user = strrchr(identity, '\\');
  size_t ulen, mlen = strcspn(mailbox, "@");

  user = user ? user + 1 : identity;
  ulen = strcspn(user, "@");
  return ulen == mlen && !strncasecmp(user, mailbox, ulen);
}

/* True for credentials that start or finish a handshake on the request
 * itself (NTLM type 1 or 3, a SPNEGO token, Basic...): a request with
 * none relies on its connection's authentication. */
static bool an_credentials(enum kb_auth a)
{
  return a != KB_AUTH_NONE;
}

/* The first WWW-Authenticate of an answer, classified. */
static enum kb_auth an_offer(const struct an_msg *answer)
{
  size_t i;
  enum kb_auth best = KB_AUTH_NONE;

  for(i = 0; answer && i < answer->nchallenges; i++) {
    enum kb_auth a =
        kb_auth_classify(answer->challenges[i], strlen(answer->challenges[i]));
    if(a == KB_AUTH_NTLM_CHALLENGE)
      return a;
    if(best == KB_AUTH_NONE || a == KB_AUTH_NTLM_BARE)
      best = a;
  }
  return best;
}

/* "s" when n is not 1. */
static const char *an_s(size_t n)
{
  return n == 1 ? "" : "s";
}

/* Writes a list of WWW-Authenticate values for a line: "NTLM, Negotiate"
 * with each token shortened to its scheme and length. */
static void an_offers(char (*list)[AN_CHALLENGE], size_t n, char *out,
                      size_t len)
{
  size_t i, at = 0;

  out[0] = '\0';
  for(i = 0; i < n && at < len; i++) {
    const char *sp = strchr(list[i], ' ');
    if(sp)
      at += (size_t)snprintf(out + at, len - at, "%s%.*s <%zu-char token>",
                             i ? ", " : "", (int)(sp - list[i]), list[i],
                             strlen(sp + 1));
    else
      at +=
          (size_t)snprintf(out + at, len - at, "%s%s", i ? ", " : "", list[i]);
  }
  if(!n)
    snprintf(out, len, "none");
}

/* ---- the NTLM state of a connection ------------------------------------- */

/* Updates c's authentication after req got answer (status 0: none). */
static void an_track(struct an_conn *c, const struct an_req *req,
                     const struct an_msg *answer)
{
  int status = answer ? answer->status : 0;

  if(!status)
    return;
  if(status == 401) {
    c->saw_401 = true;
    if(an_offer(answer) == KB_AUTH_NTLM_CHALLENGE)
      c->challenged = true;
    if(req->auth == KB_AUTH_NTLM_AUTHENTICATE || req->auth == KB_AUTH_SPNEGO)
      c->authenticated = false;
    return;
  }
  if(req->auth == KB_AUTH_NTLM_AUTHENTICATE || req->auth == KB_AUTH_SPNEGO) {
    c->authenticated = true;
    c->single_leg = req->auth == KB_AUTH_SPNEGO;
    snprintf(c->identity, sizeof(c->identity), "%s",
             req->identity[0] ? req->identity : "a Kerberos (SPNEGO) identity");
    c->auth_ref = req->ref;
  }
  /* A browser reports no leg of its own handshakes (Chromium's DevTools
   * and HAR export): a connection the listener served a request on has
   * passed its authentication. */
  else if(c->hidden_handshakes && !c->authenticated && status < 500) {
    c->authenticated = true;
    snprintf(c->identity, sizeof(c->identity),
             "the browser's user (a HAR holds no handshake)");
    c->auth_ref = req->ref;
  }
}

/* ---- rules on the upstream hop ------------------------------------------- */

/* An authenticated upstream connection served a request of another client
 * connection that relied on the connection's authentication. */
static void an_rule_mixed(struct an_model *m, struct an_conn *c,
                          struct an_req *req, struct an_req *client,
                          const struct an_conn *cc, int status)
{
  enum kb_defect d = c->single_leg ? KB_DEFECT_MIXES_AFTER_SINGLE_LEG
                                   : KB_DEFECT_MIXES_IDENTITIES;
  struct analyze_finding *f = NULL;
  char who[256];
  size_t i;

  if(!c->authenticated || !c->auth_client || c->auth_client == cc->serial ||
     an_credentials(req->auth) || !status || status == 401)
    return;
  if(client) {
    an__mark(client, d);
    client->up_marked = true;
  }
  /* One finding per client connection mixed in; its later requests add
   * their frames to it. */
  for(i = 0; i < c->nmixed; i++)
    if(c->mixed[i] == cc->serial) {
      if(c->mixed_finding[i] && c->mixed_finding[i] <= m->res->nfindings) {
        f = &m->res->findings[c->mixed_finding[i] - 1];
        an__finding_ref(f, &req->ref, "served too");
      }
      return;
    }
  if(cc->identity[0] && cc->authenticated)
    snprintf(who, sizeof(who), "whose user is %s", cc->identity);
  else if(req->mailbox[0] && !an_owns(c->identity, req->mailbox))
    snprintf(who, sizeof(who), "asking for %s's mailbox", req->mailbox);
  else
    snprintf(who, sizeof(who), "never authenticated itself");
  f = an__finding(m, d, false);
  if(c->nmixed < 4) {
    c->mixed[c->nmixed] = cc->serial;
    c->mixed_finding[c->nmixed++] = f ? m->res->nfindings : 0;
  }
  if(!f)
    return;
  an__text(f,
           "the upstream connection %s, authenticated%s as %s by the client "
           "connection %s, served %s %s of the client connection %s (%s): "
           "the server answered %d as %s",
           c->label, c->single_leg ? " in one leg (Kerberos)" : "", c->identity,
           c->auth_client_label, req->method, req->path, cc->label, who, status,
           c->identity);
  an__finding_conn(f, c->label);
  an__finding_conn(f, c->auth_client_label);
  an__finding_conn(f, cc->label);
  an__finding_ref(f, &c->auth_ref, "authenticated");
  if(client)
    an__finding_ref(f, &client->ref, "other client's request");
  an__finding_ref(f, &req->ref, "served upstream");
}

/* One hop (the server's): a connection authenticated as one user carries
 * a request for another user's mailbox, or a second identity. */
static void an_rule_mixed_one_hop(struct an_model *m, struct an_conn *c,
                                  const struct an_req *req, int status,
                                  const struct an_msg *answer)
{
  struct analyze_finding *f;
  bool other_mailbox = req->mailbox[0] && !an_credentials(req->auth) &&
                       !an_owns(c->identity, req->mailbox);
  bool other_user = req->auth == KB_AUTH_NTLM_AUTHENTICATE &&
                    req->identity[0] && strcasecmp(req->identity, c->identity);

  if(!c->authenticated || !status || status >= 300 ||
     (!other_mailbox && !other_user))
    return;
  f = an__finding(m, KB_DEFECT_MIXES_IDENTITIES, true);
  if(!f)
    return;
  if(other_mailbox)
    an__text(f,
             "the upstream connection %s, authenticated as %s, carried %s %s "
             "for %s's mailbox and the server answered %d (one hop: which "
             "client sent it is not in the capture)",
             c->label, c->identity, req->method, req->path, req->mailbox,
             status);
  else
    an__text(f,
             "the upstream connection %s carried requests of two identities, "
             "%s and then %s (one hop: whether two clients shared it is not in "
             "the capture)",
             c->label, c->identity, req->identity);
  an__finding_conn(f, c->label);
  an__finding_ref(f, &c->auth_ref, "authenticated");
  an__finding_ref(f, &req->ref, other_mailbox ? "other mailbox" : "other user");
  if(answer)
    an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                    "served");
}

/* One hop (the server's): what the listener did wrong shows on the
 * requests it sent. */
static void an_rules_server_only(struct an_model *m, struct an_conn *c,
                                 const struct an_req *req,
                                 const struct an_msg *answer, bool authed)
{
  int status = answer ? answer->status : 0;
  struct analyze_finding *f;

  if(!strcmp(req->method, "POST") && req->auth == KB_AUTH_NTLM_NEGOTIATE &&
     !req->body_len && authed && status && status != 401 &&
     (f = an__finding(m, KB_DEFECT_BODY_LESS_FORWARD, true))) {
    an__text(f,
             "POST %s with NTLM type 1 and no body reached the server on the "
             "connection %s, authenticated as %s, and got %d (one hop: the "
             "listener forwarded the type 1 instead of challenging it)",
             req->path, c->label, c->identity, status);
    an__finding_conn(f, c->label);
    an__finding_ref(f, &req->ref, "type 1 POST, no body");
    an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                    "answer");
  }
  if(req->auth == KB_AUTH_NTLM_AUTHENTICATE && status == 401 &&
     !c->challenged && (f = an__finding(m, KB_DEFECT_HANDSHAKE_SPLIT, true))) {
    an__text(f,
             "a type 3 (%s) reached the server on the connection %s, which "
             "never carried its challenge, and was refused with 401 (one hop: "
             "its type 1 went on another connection)",
             req->identity[0] ? req->identity : "no user", c->label);
    an__finding_conn(f, c->label);
    an__finding_ref(f, &req->ref, "type 3");
    an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                    "401");
  }
  an_rule_mixed_one_hop(m, c, req, status, answer);
}

void an__rules_upstream(struct an_model *m, struct an_conn *c,
                        struct an_req *req, const struct an_msg *answer)
{
  int status = answer ? answer->status : 0;
  struct an_req *client =
      req->client_conn ? an_client_req(m, req->client_conn, req->client_serial)
                       : NULL;
  struct an_conn *cc = an__conn_by_serial(m, req->client_conn);
  bool authed = c->authenticated;
  size_t i;

  if(client && answer) {
    client->up_answered = true;
    client->up_status = status;
    client->up_answer.file = answer->file;
    client->up_answer.frame = answer->frame;
    client->up_resp_auth = an_offer(answer);
    client->up_resp_body = answer->body_len;
    client->up_nchallenges = answer->nchallenges;
    for(i = 0; i < answer->nchallenges; i++)
      memcpy(client->up_challenges[i], answer->challenges[i], AN_CHALLENGE);
  }
  if(m->res->hops == ANALYZE_HOPS_SERVER ||
     (!cc && m->res->hops == ANALYZE_HOPS_BOTH))
    an_rules_server_only(m, c, req, answer, authed);
  else if(cc)
    an_rule_mixed(m, c, req, client, cc, status);
  an_track(c, req, answer);
  if(cc && status && status != 401 &&
     (req->auth == KB_AUTH_NTLM_AUTHENTICATE || req->auth == KB_AUTH_SPNEGO)) {
    c->auth_client = cc->serial;
    snprintf(c->auth_client_label, sizeof(c->auth_client_label), "%s",
             cc->label);
    c->nmixed = 0;
  }
}

/* ---- rules on the client hop --------------------------------------------- */

/* A type 1 POST without its body on an authenticated connection, not
 * challenged: forwarded (KB 942638). */
static void an_rule_body_less(struct an_model *m, struct an_conn *c,
                              struct an_req *req, const struct an_msg *answer,
                              bool authed)
{
  bool both = m->res->hops == ANALYZE_HOPS_BOTH;
  int status = answer ? answer->status : 0;
  struct analyze_finding *f;

  if(strcmp(req->method, "POST") || req->auth != KB_AUTH_NTLM_NEGOTIATE ||
     req->body_len || !authed || !status || status == 401 ||
     (both && !req->nup))
    return;
  an__mark(req, KB_DEFECT_BODY_LESS_FORWARD);
  req->up_marked = true;
  f = an__finding(m, KB_DEFECT_BODY_LESS_FORWARD, !both);
  if(!f)
    return;
  if(both)
    an__text(f,
             "POST %s with NTLM type 1 and Content-Length 0 on the "
             "connection %s, authenticated as %s, was forwarded instead of "
             "challenged: it reached the server on %s without a body, the "
             "server answered %d, the client got %d",
             req->path, c->label, c->identity, req->up_label, req->up_status,
             status);
  else
    an__text(f,
             "POST %s with NTLM type 1 and Content-Length 0 on the "
             "connection %s, authenticated as %s, was answered %d instead of "
             "challenged (one hop: that it reached the server without its "
             "body is inferred from that answer)",
             req->path, c->label, c->identity, status);
  an__finding_conn(f, c->label);
  an__finding_conn(f, req->up_label);
  an__finding_ref(f, &c->auth_ref, "authenticated");
  an__finding_ref(f, &req->ref, "type 1 POST, no body");
  an__finding_ref(f, &req->up_ref, "forwarded");
  an__finding_ref(f, &req->up_answer, "server's answer");
  an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                  "client's answer");
}

/* A type 1 carrying a body, on a connection not authenticated, let
 * through with it instead of challenged. */
static void an_rule_body_on_type1(struct an_model *m, struct an_conn *c,
                                  struct an_req *req,
                                  const struct an_msg *answer, bool authed)
{
  bool both = m->res->hops == ANALYZE_HOPS_BOTH;
  int status = answer ? answer->status : 0;
  struct analyze_finding *f;

  if(req->auth != KB_AUTH_NTLM_NEGOTIATE || !req->body_len || authed ||
     !status || status == 401 || (both && (!req->nup || req->up_status == 401)))
    return;
  an__mark(req, KB_DEFECT_BODY_ON_TYPE1);
  f = an__finding(m, KB_DEFECT_BODY_ON_TYPE1, !both);
  if(!f)
    return;
  an__text(f,
           "%s %s with NTLM type 1 and a %llu-byte body, on a connection not "
           "authenticated, was answered %d instead of challenged%s",
           req->method, req->path, (unsigned long long)req->body_len, status,
           both ? ": the listener forwarded it with its body" : "");
  an__finding_conn(f, c->label);
  an__finding_ref(f, &req->ref, "type 1 with a body");
  an__finding_ref(f, &req->up_ref, "forwarded");
  an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                  "answer");
}

/* The type 3 of a handshake forwarded on another upstream connection than
 * its type 1. */
static void an_rule_split(struct an_model *m, struct an_conn *c,
                          struct an_req *req, const struct an_msg *answer)
{
  struct analyze_finding *f;

  if(req->auth != KB_AUTH_NTLM_AUTHENTICATE || !req->nup || !c->type1_up ||
     req->up_conn == c->type1_up)
    return;
  an__mark(req, KB_DEFECT_HANDSHAKE_SPLIT);
  req->up_marked = true;
  f = an__finding(m, KB_DEFECT_HANDSHAKE_SPLIT, false);
  if(!f)
    return;
  an__text(f,
           "the handshake of the client connection %s was split: its type 1 "
           "went upstream on %s, its type 3 (%s) on %s, where the server %s",
           c->label, c->type1_up_label,
           req->identity[0] ? req->identity : "no user", req->up_label,
           req->up_status == 401 ? "refused it with 401 (the 401 loop)"
           : req->up_status      ? "answered it"
                                 : "did not answer");
  an__finding_conn(f, c->label);
  an__finding_conn(f, c->type1_up_label);
  an__finding_conn(f, req->up_label);
  an__finding_ref(f, &c->type1_ref, "type 1");
  an__finding_ref(f, &c->type1_up_ref, "type 1 upstream");
  an__finding_ref(f, &req->ref, "type 3");
  an__finding_ref(f, &req->up_ref, "type 3 upstream");
  an__finding_ref(f, &req->up_answer,
                  req->up_status == 401 ? "401 loop" : "server's answer");
  if(answer)
    an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                    "client's answer");
}

/* An authenticated client connection's request forwarded on a fresh
 * upstream connection, which the server challenges. */
static void an_rule_recycled(struct an_model *m, struct an_conn *c,
                             struct an_req *req, const struct an_msg *answer,
                             bool authed)
{
  struct an_conn *pinned = an__conn_by_serial(m, c->pinned_up);
  struct analyze_finding *f;

  if(!authed || an_credentials(req->auth) || !req->nup || !req->up_fresh ||
     req->up_conn == c->pinned_up || req->up_status != 401)
    return;
  an__mark(req, KB_DEFECT_PINNED_RECYCLED);
  req->up_marked = true;
  f = an__finding(m, KB_DEFECT_PINNED_RECYCLED, false);
  if(!f)
    return;
  an__text(f,
           "the client connection %s, authenticated as %s%s%s, sent %s %s "
           "without credentials, relying on that authentication, and the "
           "listener forwarded it on a fresh upstream connection %s, where "
           "the server answered 401",
           c->label, c->identity, pinned ? " through " : "",
           pinned ? pinned->label : "", req->method, req->path, req->up_label);
  an__finding_conn(f, c->label);
  if(pinned)
    an__finding_conn(f, pinned->label);
  an__finding_conn(f, req->up_label);
  an__finding_ref(f, &c->auth_ref, "authenticated");
  an__finding_ref(f, &req->ref, "no credentials");
  an__finding_ref(f, &req->up_ref, "fresh upstream");
  an__finding_ref(f, &req->up_answer, "401");
  if(answer)
    an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                    "client's answer");
}

/* The challenge the client got differs from the one the server sent. */
static void an_rule_rewritten(struct an_model *m, struct an_conn *c,
                              struct an_req *req, const struct an_msg *answer)
{
  char sent[400], got[400];
  struct analyze_finding *f;
  size_t i;
  bool same;

  if(!answer || answer->status != 401 || !req->up_answered ||
     req->up_status != 401)
    return;
  same = answer->nchallenges == req->up_nchallenges;
  for(i = 0; same && i < answer->nchallenges; i++)
    same = !strcmp(answer->challenges[i], req->up_challenges[i]);
  if(same)
    return;
  an__mark(req, KB_DEFECT_CHALLENGE_REWRITTEN);
  req->up_marked = true;
  f = an__finding(m, KB_DEFECT_CHALLENGE_REWRITTEN, false);
  if(!f)
    return;
  an_offers(req->up_challenges, req->up_nchallenges, sent, sizeof(sent));
  an_offers((char(*)[AN_CHALLENGE])answer->challenges, answer->nchallenges, got,
            sizeof(got));
  an__text(f,
           "the server's 401 on %s offered %zu WWW-Authenticate value%s (%s); "
           "the client connection %s got %zu (%s)",
           req->up_label, req->up_nchallenges, an_s(req->up_nchallenges), sent,
           c->label, answer->nchallenges, got);
  an__finding_conn(f, c->label);
  an__finding_conn(f, req->up_label);
  an__finding_ref(f, &req->up_answer, "server's 401");
  an__finding_ref(f, &(struct analyze_ref){answer->file, answer->frame, ""},
                  "client's 401");
}

void an__rules_client(struct an_model *m, struct an_conn *c, struct an_req *req,
                      const struct an_msg *answer)
{
  bool authed = c->authenticated, both = m->res->hops == ANALYZE_HOPS_BOTH;
  int status = answer ? answer->status : 0;

  an_rule_body_less(m, c, req, answer, authed);
  an_rule_body_on_type1(m, c, req, answer, authed);
  if(both) {
    an_rule_split(m, c, req, answer);
    an_rule_recycled(m, c, req, answer, authed);
    an_rule_rewritten(m, c, req, answer);
  }
  if(req->auth == KB_AUTH_NTLM_NEGOTIATE) {
    c->type1_up = req->up_conn;
    snprintf(c->type1_up_label, sizeof(c->type1_up_label), "%s", req->up_label);
    c->type1_ref = req->ref;
    c->type1_up_ref = req->up_ref;
  }
  else if(req->auth == KB_AUTH_NTLM_AUTHENTICATE)
    c->type1_up = 0;
  an_track(c, req, answer);
  if(req->nup && status && status != 401 && c->authenticated)
    c->pinned_up = req->up_conn;
}

/* ---- HTTP/2 -------------------------------------------------------------- */

void an__rules_h2(struct an_model *m, struct an_conn *c,
                  const struct an_msg *msg)
{
  enum kb_auth a =
      kb_auth_classify(msg->auth, msg->auth ? strlen(msg->auth) : 0);
  struct analyze_finding *f;
  bool ntlm = a == KB_AUTH_NTLM_NEGOTIATE || a == KB_AUTH_NTLM_AUTHENTICATE ||
              a == KB_AUTH_NTLM_BARE;
  size_t i;

  for(i = 0; !ntlm && i < msg->nchallenges; i++) {
    enum kb_auth o =
        kb_auth_classify(msg->challenges[i], strlen(msg->challenges[i]));
    ntlm = o == KB_AUTH_NTLM_CHALLENGE || o == KB_AUTH_NTLM_BARE;
  }
  if(!ntlm || c->hop == AN_HOP_OTHER)
    return;
  if(c->h2_reported) {
    /* Later frames of the same connection join its finding. */
    return;
  }
  c->h2_reported = true;
  f = an__finding(m, KB_DEFECT_NTLM_OVER_HTTP2, false);
  if(!f)
    return;
  an__text(f,
           "NTLM on HTTP/2 on the connection %s: %s%s%s, on a stream bound to "
           "no connection the client controls",
           c->label, msg->method[0] ? msg->method : "an answer offering NTLM",
           msg->method[0] ? " " : "", msg->method[0] ? msg->path : "");
  an__finding_conn(f, c->label);
  an__finding_ref(f, &(struct analyze_ref){msg->file, msg->frame, ""},
                  msg->method[0] ? kb_auth_name(a) : "NTLM offered");
}
