/*
 * legs.c - the capture as render/'s story: each client request with its
 * answer is a leg, what the listener sent upstream for it the leg's
 * forwarded hop, and a finding's requests are marked to be drawn red.
 * The page keeps the legs of the first AN_LEG_CONNS client connections
 * and, beyond them, those of findings, up to fixed bounds, so a large
 * capture still makes a page of bounded size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_int.h"
#include "common/kb_buf.h"

#define AN_LEG_CONNS 8     /* client connections drawn whole */
#define AN_LEGS_MAX 400    /* legs drawn at most */
#define AN_LEGS_MARKED 200 /* legs of findings drawn beyond the others */

/* ntlm_header_describe of value, owned, or NULL. */
static char *an_token_text(const char *value)
{
  char text[512];

  if(!value || !ntlm_header_describe(value, strlen(value), text, sizeof(text)))
    return NULL;
  return strdup(text);
}

/* The first WWW-Authenticate of answer that carries a token, or its
 * first. */
static const char *an_challenge(const struct an_msg *answer)
{
  size_t i;

  if(!answer || !answer->nchallenges)
    return NULL;
  for(i = 0; i < answer->nchallenges; i++)
    if(strchr(answer->challenges[i], ' '))
      return answer->challenges[i];
  return answer->challenges[0];
}

/* A new leg for connection c, or NULL when the bounds say no (marked:
 * it is part of a finding). */
static struct story_leg *an_leg_new(struct an_model *m, struct an_conn *c,
                                    bool marked)
{
  struct story *st = &m->res->story;
  size_t nmarked = 0, i;
  struct story_leg *legs, *leg;

  st->legs_total++;
  for(i = 0; marked && i < st->nlegs; i++)
    nmarked += st->legs[i].marks[0] != '\0';
  if(!(c->ordinal <= AN_LEG_CONNS && st->nlegs < AN_LEGS_MAX) &&
     !(marked && nmarked < AN_LEGS_MARKED))
    return NULL;
  legs = kb_array_grow(st->legs, sizeof(*legs), st->nlegs, 1);
  if(!legs) {
    m->failed = true;
    return NULL;
  }
  st->legs = legs;
  leg = &st->legs[st->nlegs++];
  memset(leg, 0, sizeof(*leg));
  leg->client = c->ordinal;
  snprintf(leg->conn, sizeof(leg->conn), "%s", c->client);
  leg->new_conn = c->legs++ == 0;
  snprintf(leg->member, sizeof(leg->member), "%.31s",
           m->res->listener[0] ? m->res->listener : c->server);
  leg->post = -1;
  leg->captured = true;
  return leg;
}

/* Fills a hop's answer side from answer (NULL: none came). */
static void an_hop_answer(struct story_hop *hop, const struct an_msg *answer)
{
  const char *chal = an_challenge(answer);

  if(!answer)
    return;
  hop->status = answer->status;
  hop->resp_auth = chal ? kb_auth_classify(chal, strlen(chal)) : KB_AUTH_NONE;
  hop->resp_body = (size_t)answer->body_len;
  hop->resp_token = an_token_text(chal);
}

/* Fills a hop's request side from req. */
static void an_hop_request(struct story_hop *hop, const struct an_req *req)
{
  snprintf(hop->method, sizeof(hop->method), "%s", req->method);
  snprintf(hop->path, sizeof(hop->path), "%.127s", req->path);
  hop->req_auth = req->auth;
  hop->req_body = (size_t)req->body_len;
  hop->req_token = req->auth_text ? strdup(req->auth_text) : NULL;
}

void an__leg_client(struct an_model *m, struct an_conn *c,
                    const struct an_req *req, const struct an_msg *answer)
{
  struct story_leg *leg = an_leg_new(m, c, req->marks[0] != '\0');

  if(!leg)
    return;
  an_hop_request(&leg->front, req);
  an_hop_answer(&leg->front, answer);
  leg->front.marked = req->marks[0] != '\0';
  leg->order = (size_t)req->ref.frame;
  snprintf(leg->marks, sizeof(leg->marks), "%s", req->marks);
  if(!req->nup)
    return;
  leg->back = calloc(1, sizeof(*leg->back));
  if(!leg->back) {
    m->failed = true;
    return;
  }
  leg->nback = 1;
  snprintf(leg->back->method, sizeof(leg->back->method), "%s", req->method);
  snprintf(leg->back->path, sizeof(leg->back->path), "%.127s", req->path);
  leg->back->req_auth = req->up_auth;
  leg->back->req_body = (size_t)req->up_body;
  leg->back->status = req->up_status;
  leg->back->resp_auth = req->up_resp_auth;
  leg->back->resp_body = (size_t)req->up_resp_body;
  leg->back->marked = req->up_marked;
}

void an__leg_upstream(struct an_model *m, struct an_conn *c,
                      const struct an_req *req, const struct an_msg *answer)
{
  struct story_leg *leg = an_leg_new(m, c, req->marks[0] != '\0');

  if(!leg)
    return;
  an_hop_request(&leg->front, req);
  an_hop_answer(&leg->front, answer);
  leg->front.marked = req->marks[0] != '\0';
  leg->order = (size_t)req->ref.frame;
  snprintf(leg->marks, sizeof(leg->marks), "%s", req->marks);
}

/* By connection, then frame. */
static int an_leg_cmp(const void *pa, const void *pb)
{
  const struct story_leg *a = pa, *b = pb;

  if(a->client != b->client)
    return a->client < b->client ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

int an__legs_finish(struct an_model *m)
{
  struct analyze_result *res = m->res;
  struct story *st = &res->story;
  size_t i;

  if(st->nlegs)
    qsort(st->legs, st->nlegs, sizeof(*st->legs), an_leg_cmp);
  for(i = 0; i < st->nlegs; i++) {
    st->legs[i].new_conn =
        i == 0 || st->legs[i - 1].client != st->legs[i].client;
    if(st->legs[i].new_conn)
      st->clients_shown++;
  }
  st->clients_total =
      (unsigned)(res->hops == ANALYZE_HOPS_SERVER ? res->upstream_conns
                                                  : res->client_conns);
  st->nmembers = 1;
  snprintf(st->members[0], sizeof(st->members[0]), "%.31s",
           res->listener[0] ? res->listener : "listener");
  if(res->hops == ANALYZE_HOPS_SERVER) {
    snprintf(st->lanes[0], sizeof(st->lanes[0]), "listener");
    snprintf(st->lane_subs[0], sizeof(st->lane_subs[0]),
             "as the server's client");
    snprintf(st->lanes[1], sizeof(st->lanes[1]), "server");
    snprintf(st->lane_subs[1], sizeof(st->lane_subs[1]), "%.63s", res->server);
    snprintf(st->members[0], sizeof(st->members[0]), "server");
    for(i = 0; i < st->nlegs; i++)
      snprintf(st->legs[i].member, sizeof(st->legs[i].member), "server");
    snprintf(st->lanes[2], sizeof(st->lanes[2]), "(not in the capture)");
    return 0;
  }
  snprintf(st->lanes[0], sizeof(st->lanes[0]), "client");
  snprintf(st->lane_subs[0], sizeof(st->lane_subs[0]), "from the capture");
  snprintf(st->lanes[1], sizeof(st->lanes[1]), "listener");
  snprintf(st->lane_subs[1], sizeof(st->lane_subs[1]), "%.63s",
           res->listener[0] ? res->listener : "(several)");
  snprintf(st->lanes[2], sizeof(st->lanes[2]), "server");
  snprintf(st->lane_subs[2], sizeof(st->lane_subs[2]), "%.63s",
           res->server[0] ? res->server : "(not in the capture)");
  return 0;
}
