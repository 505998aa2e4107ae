/*
 * html_leg.c - what a leg says in words on the report: the labels on its
 * arrows, ISA's decision, the name of a POST.
 */
#include <stdio.h>
#include <string.h>

#include "html_int.h"

const char *html__auth_label(enum kb_auth auth)
{
  switch(auth) {
  case KB_AUTH_NONE:
    return "no Authorization";
  case KB_AUTH_OTHER:
    return "non-NTLM credentials";
  case KB_AUTH_SPNEGO:
    /* The listener names a Kerberos ticket with KB_NOTE_KERBEROS_OK. */
    return "Negotiate (Kerberos)";
  default:
    return kb_auth_name(auth);
  }
}

/* True when hop is a POST that reached Exchange without its body. */
bool html__empty_post(const struct story_hop *hop)
{
  return !strcmp(hop->method, "POST") && hop->req_body == 0;
}

/* The short text on an arrow: "POST /EWS/Exchange.asmx · NTLM type 1 ·
 * 0 B", or for an answer "401 · NTLM type 2" / "500 · 479 B". */
void html__request_label(const struct story_hop *hop, char *out, size_t len)
{
  snprintf(out, len, "%s %s \xc2\xb7 %s \xc2\xb7 %zu B", hop->method, hop->path,
           hop->req_auth == KB_AUTH_NONE ? "no auth"
                                         : html__auth_label(hop->req_auth),
           hop->req_body);
}

void html__answer_label(const struct story_hop *hop, char *out, size_t len)
{
  if(!hop->status)
    snprintf(out, len, "no answer: the connection closed");
  else if(hop->resp_auth == KB_AUTH_NTLM_CHALLENGE)
    snprintf(out, len, "%d \xc2\xb7 NTLM type 2 challenge", hop->status);
  else if(hop->resp_auth == KB_AUTH_NTLM_BARE)
    snprintf(out, len, "%d \xc2\xb7 asks for NTLM", hop->status);
  else if(hop->resp_auth != KB_AUTH_NONE)
    snprintf(out, len, "%d \xc2\xb7 asks for credentials", hop->status);
  else
    snprintf(out, len, "%d \xc2\xb7 %zu B", hop->status, hop->resp_body);
}

/* True when ISA wrote a note with code on leg. */
static bool html__has_note(const struct story_leg *leg, enum kb_note code)
{
  size_t i;

  for(i = 0; i < leg->nisa; i++)
    if(leg->isa_notes[i].code == code)
      return true;
  return false;
}

/* What ISA did with the leg, in a few words; *bad when it forwarded a
 * POST without its body (a capture's leg: when it is part of a finding,
 * whose defects are the words). */
void html__decision(const struct story_leg *leg, char *out, size_t len,
                    bool *bad)
{
  size_t i;

  *bad = false;
  /* A capture's leg: only a finding is bad, and its defects say what the
   * listener did. */
  if(leg->captured) {
    *bad = leg->marks[0] != '\0';
    if(*bad)
      snprintf(out, len, "%s", leg->marks);
    else if(leg->nback)
      snprintf(out, len, "forwarded");
    else if(leg->front.status == 401)
      snprintf(out, len, "answers 401 itself");
    else if(!leg->front.status)
      snprintf(out, len, "no answer");
    else
      snprintf(out, len, "answers %d itself", leg->front.status);
    return;
  }
  for(i = 0; i < leg->nback; i++)
    if(html__empty_post(&leg->back[i]))
      *bad = true;
  if(*bad)
    snprintf(out, len, "no challenge: forwarded WITHOUT the body");
  else if(leg->nback && html__has_note(leg, KB_NOTE_KERBEROS_OK))
    snprintf(out, len,
             "Kerberos ticket accepted in one leg: forwarded with its "
             "%zu-byte body",
             leg->back[0].req_body);
  else if(html__has_note(leg, KB_NOTE_KERBEROS_REFUSED))
    snprintf(out, len, "refuses the Kerberos ticket: 401");
  else if(leg->nback)
    snprintf(out, len, "authenticated: forwarded with its %zu-byte body",
             leg->back[0].req_body);
  else if(leg->front.status == 401 &&
          leg->front.resp_auth == KB_AUTH_NTLM_CHALLENGE)
    snprintf(out, len, "challenges: 401 + NTLM type 2");
  else if(leg->front.status == 401 &&
          leg->front.req_auth == KB_AUTH_NTLM_AUTHENTICATE)
    snprintf(out, len, "refuses the login: 401");
  else if(leg->front.status == 401)
    snprintf(out, len, "asks for credentials: 401");
  else if(!leg->front.status)
    snprintf(out, len, "no answer");
  else
    snprintf(out, len, "answers %d itself", leg->front.status);
}

void html__request_head(const struct client_post_result *r, char *out,
                        size_t len)
{
  if(r->kind == CLIENT_POST_AUTODISCOVER)
    snprintf(out, len, "autodiscover");
  else
    snprintf(out, len, "%s %u", r->kind == CLIENT_POST_PAGE ? "GET" : "POST",
             r->index);
}

/* Names a request: "autodiscover", "POST 2 GetUserOofSettings" or, for
 * ie's page, "GET 0 Services.wsdl". */
void html__post_name(const struct sim_session *s, int post, char *out,
                     size_t len)
{
  const struct client_post_result *r = &s->results[post];
  char head[32];

  html__request_head(r, head, sizeof(head));
  if(r->kind == CLIENT_POST_AUTODISCOVER)
    snprintf(out, len, "%s", head);
  else
    snprintf(out, len, "%s %s", head, client_post_kind_name(r->kind));
}
