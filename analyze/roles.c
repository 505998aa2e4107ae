/*
 * roles.c - which endpoint is the listener and which the server behind
 * it. The listener is the host that both accepts connections and opens
 * them: the requests it accepts reappear, same method and path, on the
 * connections it opens to the server, from its own address, before it
 * answers. The first events are held (at most AN_HOLD of them) until that
 * shows, or --listener and --server say it; then everything held is fed
 * to the model in order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_int.h"

#define AN_HOLD 4096         /* events held at most before deciding */
#define AN_MAX_SERVICES 64   /* accepting endpoints told apart */
#define AN_MIRROR_WINDOW 5.0 /* seconds between a request and its copy */
#define AN_SURE 16           /* copies seen that settle it early */

struct an_service {
  char endpoint[AN_ENDPOINT];
  uint64_t requests;
};

struct an_roles {
  struct an_model *m;
  struct an_msg *held;
  size_t n, cap;
  bool decided;
};

struct an_roles *an__roles_new(struct an_model *m)
{
  struct an_roles *r = calloc(1, sizeof(*r));

  if(r)
    r->m = m;
  return r;
}

/* "localhost:80" as "127.0.0.1:80", for comparing with the capture's. */
static void an_endpoint_norm(const char *in, char *out, size_t len)
{
  if(!strncmp(in, "localhost:", 10))
    snprintf(out, len, "127.0.0.1:%s", in + 10);
  else
    snprintf(out, len, "%s", in);
}

/* The path of a request target: an absolute form loses its scheme and
 * host, so a proxy that rewrites one into the other still matches. */
static const char *an_path_of(const char *target)
{
  const char *p = strstr(target, "://");

  if(!p)
    return target;
  p = strchr(p + 3, '/');
  return p ? p : "/";
}

/* The accepting endpoints of the held requests, busiest first. */
static size_t an_services(const struct an_roles *r, struct an_service *out)
{
  size_t n = 0, i, k;

  for(i = 0; i < r->n; i++) {
    const struct an_msg *msg = &r->held[i];
    /* Requests only: an HTTP/2 HEADERS frame of answers goes the other
     * way. */
    if(msg->kind != AN_REQUEST && (msg->kind != AN_H2 || !msg->method[0]))
      continue;
    for(k = 0; k < n && strcmp(out[k].endpoint, msg->dst); k++)
      ;
    if(k == n) {
      if(n == AN_MAX_SERVICES)
        continue;
      snprintf(out[n++].endpoint, AN_ENDPOINT, "%s", msg->dst);
      out[k].requests = 0;
    }
    out[k].requests++;
  }
  for(i = 1; i < n; i++)
    for(k = i; k > 0 && out[k].requests > out[k - 1].requests; k--) {
      struct an_service t = out[k];
      out[k] = out[k - 1];
      out[k - 1] = t;
    }
  return n;
}

/* How many requests to a are copied, within AN_MIRROR_WINDOW seconds, to
 * b from a's own host. */
static uint64_t an_mirror(const struct an_roles *r, const char *a,
                          const char *b)
{
  char host[AN_ENDPOINT], from[AN_ENDPOINT];
  uint64_t count = 0;
  size_t i, j;

  an__host(a, host, sizeof(host));
  for(i = 0; i < r->n; i++) {
    const struct an_msg *x = &r->held[i];
    /* An HTTP/2 request is copied upstream as HTTP/1.1 too. */
    if((x->kind != AN_REQUEST && (x->kind != AN_H2 || !x->method[0])) ||
       strcmp(x->dst, a))
      continue;
    for(j = i + 1; j < r->n && r->held[j].t <= x->t + AN_MIRROR_WINDOW; j++) {
      const struct an_msg *y = &r->held[j];
      if(y->kind != AN_REQUEST || strcmp(y->dst, b) ||
         strcmp(y->method, x->method) ||
         strcmp(an_path_of(y->path), an_path_of(x->path)))
        continue;
      an__host(y->src, from, sizeof(from));
      if(!strcmp(from, host)) {
        count++;
        break;
      }
    }
  }
  return count;
}

/* The pair (listener, server) whose requests are copied most; returns the
 * copies (0: none), *tie when another pair has as many. */
static uint64_t an_best_pair(const struct an_roles *r,
                             const struct an_service *s, size_t n,
                             const char *want_l, const char *want_s, size_t *li,
                             size_t *si, bool *tie)
{
  uint64_t best = 0;
  size_t a, b;

  *tie = false;
  for(a = 0; a < n; a++)
    for(b = 0; b < n; b++) {
      uint64_t score;
      if(a == b || (want_l && strcmp(s[a].endpoint, want_l)) ||
         (want_s && strcmp(s[b].endpoint, want_s)))
        continue;
      score = an_mirror(r, s[a].endpoint, s[b].endpoint);
      if(score > best) {
        best = score;
        *li = a;
        *si = b;
        *tie = false;
      }
      else if(score && score == best)
        *tie = true;
    }
  return best;
}

/* True when every request held comes from a HAR (a browser's view). */
static bool an_browser_only(const struct an_roles *r)
{
  size_t i;

  for(i = 0; i < r->n; i++)
    if(r->held[i].kind != AN_CLOSE && strncmp(r->held[i].src, "browser:", 8) &&
       strncmp(r->held[i].dst, "browser:", 8))
      return false;
  return true;
}

/* Decides the roles from what is held and the command line. */
static void an_decide(struct an_roles *r)
{
  struct analyze_result *res = r->m->res;
  const struct analyze_config *cfg = r->m->cfg;
  struct an_service s[AN_MAX_SERVICES];
  char want_l[AN_ENDPOINT] = "", want_s[AN_ENDPOINT] = "";
  size_t n = an_services(r, s), li = 0, si = 0, k;
  bool tie, has_l = false, has_s = false;
  uint64_t copies;

  if(cfg->listener)
    an_endpoint_norm(cfg->listener, want_l, sizeof(want_l));
  if(cfg->server)
    an_endpoint_norm(cfg->server, want_s, sizeof(want_s));
  for(k = 0; k < n; k++) {
    has_l |= !strcmp(s[k].endpoint, want_l);
    has_s |= !strcmp(s[k].endpoint, want_s);
  }
  if(want_l[0] && want_s[0]) {
    /* Both said: nothing to infer, nothing held. */
    res->hops = ANALYZE_HOPS_BOTH;
    snprintf(res->listener, sizeof(res->listener), "%s", want_l);
    snprintf(res->server, sizeof(res->server), "%s", want_s);
    snprintf(res->roles, sizeof(res->roles), "listener %s, server %s: as given",
             res->listener, res->server);
    r->m->roles_known = true;
    r->decided = true;
    return;
  }
  if(an_browser_only(r) && !want_l[0] && !want_s[0]) {
    res->hops = n ? ANALYZE_HOPS_CLIENT : ANALYZE_HOPS_NONE;
    snprintf(res->roles, sizeof(res->roles),
             "a browser's HAR: one hop, the client's side of %s%s",
             n ? s[0].endpoint : "nothing", n > 1 ? " and others" : "");
    r->m->roles_known = true;
    r->decided = true;
    return;
  }
  copies = an_best_pair(r, s, n, want_l[0] ? want_l : NULL,
                        want_s[0] ? want_s : NULL, &li, &si, &tie);
  if(copies && !tie) {
    res->hops = ANALYZE_HOPS_BOTH;
    snprintf(res->listener, sizeof(res->listener), "%s", s[li].endpoint);
    snprintf(res->server, sizeof(res->server), "%s", s[si].endpoint);
    snprintf(res->roles, sizeof(res->roles),
             "listener %s, server %s: %s (%llu of the listener's requests "
             "reappear on its connections to the server)",
             res->listener, res->server, "inferred",
             (unsigned long long)copies);
  }
  else if(has_l || (!want_s[0] && n == 1 && !copies)) {
    res->hops = ANALYZE_HOPS_CLIENT;
    snprintf(res->listener, sizeof(res->listener), "%s",
             has_l ? want_l : s[0].endpoint);
    snprintf(res->roles, sizeof(res->roles),
             "listener %s%s: one hop, the clients' side%s", res->listener,
             has_l ? " (as given)" : "",
             has_s || !want_s[0] ? "" : " (the server given is not in it)");
  }
  else if(has_s) {
    res->hops = ANALYZE_HOPS_SERVER;
    snprintf(res->server, sizeof(res->server), "%s", want_s);
    snprintf(res->roles, sizeof(res->roles),
             "server %s (as given): one hop, the server's side", res->server);
  }
  else if(n) {
    /* Several services and nothing tells them apart: each is taken for a
     * listener, seen from its clients. */
    res->hops = ANALYZE_HOPS_CLIENT;
    res->ambiguous = true;
    snprintf(res->roles, sizeof(res->roles),
             "ambiguous: %zu endpoints accept connections (%s, %s%s) and "
             "no request to one reappears on another; each is taken for a "
             "listener seen from its clients (say which is which with "
             "--listener HOST:PORT --server HOST:PORT)",
             n, s[0].endpoint, n > 1 ? s[1].endpoint : "",
             n > 2 ? ", ..." : "");
  }
  else
    res->hops = ANALYZE_HOPS_NONE;
  r->m->roles_known = true;
  r->decided = true;
}

/* Feeds everything held to the model, in order, and lets it go. */
static void an_release(struct an_roles *r)
{
  size_t i;

  for(i = 0; i < r->n; i++) {
    an__model_feed(r->m, &r->held[i]);
    an__msg_clear(&r->held[i]);
  }
  r->n = 0;
}

/* True when what is held already settles the roles. */
static bool an_settled(const struct an_roles *r)
{
  struct an_service s[AN_MAX_SERVICES];
  size_t n, li, si;
  bool tie;

  if(r->m->cfg->listener && r->m->cfg->server)
    return true;
  if(r->n % 256)
    return false;
  n = an_services(r, s);
  return an_best_pair(r, s, n, NULL, NULL, &li, &si, &tie) >= AN_SURE && !tie;
}

int an__roles_take(struct an_roles *r, struct an_msg *msg)
{
  if(r->decided) {
    an__model_feed(r->m, msg);
    an__msg_clear(msg);
    return 0;
  }
  if(r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 256;
    struct an_msg *grown = realloc(r->held, cap * sizeof(*grown));
    if(!grown)
      return -1;
    r->held = grown;
    r->cap = cap;
  }
  r->held[r->n++] = *msg;
  memset(msg, 0, sizeof(*msg));
  if(r->n >= AN_HOLD || an_settled(r)) {
    an_decide(r);
    an_release(r);
  }
  return 0;
}

int an__roles_end(struct an_roles *r)
{
  if(!r->decided) {
    an_decide(r);
    an_release(r);
  }
  return 0;
}

void an__roles_free(struct an_roles *r)
{
  size_t i;

  if(!r)
    return;
  for(i = 0; i < r->n; i++)
    an__msg_clear(&r->held[i]);
  free(r->held);
  free(r);
}

enum an_hop an__roles_hop(const struct an_model *m, const char *server)
{
  const struct analyze_result *res = m->res;

  switch(res->hops) {
  case ANALYZE_HOPS_BOTH:
    if(!strcmp(server, res->listener))
      return AN_HOP_CLIENT;
    return !strcmp(server, res->server) ? AN_HOP_UPSTREAM : AN_HOP_OTHER;
  case ANALYZE_HOPS_CLIENT:
    return !res->listener[0] || !strcmp(server, res->listener) ? AN_HOP_CLIENT
                                                               : AN_HOP_OTHER;
  case ANALYZE_HOPS_SERVER:
    return !strcmp(server, res->server) ? AN_HOP_UPSTREAM : AN_HOP_OTHER;
  case ANALYZE_HOPS_NONE:
    break;
  }
  return AN_HOP_OTHER;
}
