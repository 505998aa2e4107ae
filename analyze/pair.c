/*
 * pair.c - the two hops paired: each request the listener sends upstream
 * is matched to the client request it forwards, among those still
 * awaiting their answer, by content (method, path, body length; the
 * Authorization token when both carry the same one, as a pass-through
 * proxy sends it on; the body's hash) and then by the client connection
 * the upstream connection served last.
 */
#include <stdio.h>
#include <string.h>

#include "analyze_int.h"

/* The path of a request target, without an absolute form's scheme and
 * host. */
static const char *an_path(const char *target)
{
  const char *p = strstr(target, "://");

  if(!p)
    return target;
  p = strchr(p + 3, '/');
  return p ? p : "/";
}

/* True for an Authorization that carries an NTLM message. */
static bool an_ntlm(enum kb_auth a)
{
  return a == KB_AUTH_NTLM_NEGOTIATE || a == KB_AUTH_NTLM_CHALLENGE ||
         a == KB_AUTH_NTLM_AUTHENTICATE;
}

/* How well client request r fits upstream request up on upc: -1 not at
 * all, else higher is better. */
static int an_fit(const struct an_conn *upc, const struct an_req *up,
                  const struct an_req *r)
{
  int score = 0;

  if(strcmp(r->method, up->method) || r->body_len != up->body_len ||
     strcmp(an_path(r->path), an_path(up->path)))
    return -1;
  /* A token passed through arrives as it was sent; two different NTLM
   * messages are two different requests. */
  if(an_ntlm(r->auth) && an_ntlm(up->auth) && r->auth_hash != up->auth_hash)
    return -1;
  if(r->auth_hash && r->auth_hash == up->auth_hash)
    score += 8;
  if(r->body_hash && r->body_hash == up->body_hash)
    score += 4;
  if(upc->last_client == r->conn)
    score += 2;
  if(!r->nup)
    score += 1;
  return score;
}

struct an_req *an__pair(struct an_model *m, struct an_conn *upc,
                        struct an_req *up)
{
  struct an_req *r, *best = NULL;
  int best_score = -1;

  /* Oldest first: among equals, the listener forwards in arrival order. */
  for(r = m->open_head; r; r = r->open_next) {
    int score = an_fit(upc, up, r);
    if(score > best_score) {
      best = r;
      best_score = score;
    }
  }
  if(!best)
    return NULL;
  up->client_conn = best->conn;
  up->client_serial = best->client_serial;
  best->nup++;
  /* The last copy is the one whose answer the client gets. */
  best->up_conn = upc->serial;
  snprintf(best->up_label, sizeof(best->up_label), "%s", upc->label);
  best->up_fresh = upc->nreqs == 1;
  best->up_ref = up->ref;
  best->up_auth = up->auth;
  best->up_body = up->body_len;
  best->up_answered = false;
  best->up_status = 0;
  best->up_nchallenges = 0;
  upc->last_client = best->conn;
  m->res->paired++;
  return best;
}
