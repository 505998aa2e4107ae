/*
 * auth.c - the integrated listener's decision table; see auth.h.
 */
#include "auth.h"

#include <assert.h>
#include <string.h>

bool proxy_auth_verifies(enum proxy_auth_state state, enum proxy_token token)
{
  return token == PROXY_TOKEN_AUTHENTICATE && state == PROXY_AUTH_CHALLENGED;
}

/* Refuses the request with the offer and de-authenticates the
 * connection. */
static void proxy__refuse(struct proxy_auth_decision *out, enum kb_note note,
                          bool auth_failed)
{
  out->act = PROXY_ACT_OFFER;
  out->next = PROXY_AUTH_UNAUTHENTICATED;
  out->note = note;
  out->forget = true;
  out->auth_failed = auth_failed;
}

void proxy_auth_decide(const struct proxy_auth_input *in,
                       struct proxy_auth_decision *out)
{
  const bool authenticated = in->state == PROXY_AUTH_AUTHENTICATED;

  memset(out, 0, sizeof(*out));
  out->next = in->state;
  switch(in->token) {
  case PROXY_TOKEN_NONE:
    if(authenticated) {
      out->act = PROXY_ACT_FORWARD;
      out->note = KB_NOTE_FORWARD_AUTHENTICATED;
    }
    else {
      /* Not a failed login: the client is asked for credentials. */
      out->act = PROXY_ACT_OFFER;
      out->next = PROXY_AUTH_UNAUTHENTICATED;
      out->note = KB_NOTE_OFFER;
    }
    break;
  case PROXY_TOKEN_KERBEROS:
    proxy__refuse(out, KB_NOTE_KERBEROS, false);
    break;
  case PROXY_TOKEN_BAD:
  case PROXY_TOKEN_BAD_TYPE3:
    proxy__refuse(out, KB_NOTE_AUTH_UNUSABLE,
                  in->token == PROXY_TOKEN_BAD_TYPE3);
    break;
  case PROXY_TOKEN_NEGOTIATE:
    if(authenticated && in->policy == PROXY_POLICY_PER_CONNECTION) {
      /* KB 942638: ISA 2006 as shipped keeps the connection's context
       * and forwards the body-less type 1. */
      out->act = PROXY_ACT_FORWARD;
      out->note = KB_NOTE_REAUTH_SKIPPED;
      out->reauth_skipped = true;
    }
    else {
      out->act = PROXY_ACT_CHALLENGE;
      out->next = PROXY_AUTH_CHALLENGED;
      out->note = authenticated ? KB_NOTE_REAUTH_CHALLENGED : KB_NOTE_CHALLENGE;
    }
    break;
  case PROXY_TOKEN_AUTHENTICATE:
    if(in->state != PROXY_AUTH_CHALLENGED)
      proxy__refuse(out, KB_NOTE_AUTH_UNEXPECTED, true);
    else if(!in->verified)
      proxy__refuse(out, KB_NOTE_AUTH_REFUSED, true);
    else {
      out->act = PROXY_ACT_FORWARD;
      out->next = PROXY_AUTH_AUTHENTICATED;
      out->note = KB_NOTE_AUTH_OK;
      out->auth_ok = true;
    }
    break;
  case PROXY_TOKEN_COUNT:
  default:
    /* Not a token: refused like an unusable header. */
    proxy__refuse(out, KB_NOTE_AUTH_UNUSABLE, false);
    break;
  }
  /* The table's invariants: nothing is forwarded from a connection that
   * is not authenticated afterwards, and only a verified type 3 on a
   * challenged connection authenticates one. */
  assert(out->act != PROXY_ACT_FORWARD ||
         out->next == PROXY_AUTH_AUTHENTICATED);
  assert(out->next != PROXY_AUTH_AUTHENTICATED ||
         in->state == PROXY_AUTH_AUTHENTICATED || out->auth_ok);
  assert(!out->auth_ok || (in->state == PROXY_AUTH_CHALLENGED && in->verified));
}

const char *proxy_auth_state_name(enum proxy_auth_state state)
{
  switch(state) {
  case PROXY_AUTH_UNAUTHENTICATED:
    return "UNAUTHENTICATED";
  case PROXY_AUTH_CHALLENGED:
    return "CHALLENGED";
  case PROXY_AUTH_AUTHENTICATED:
    return "AUTHENTICATED";
  }
  return "?";
}

const char *proxy_token_name(enum proxy_token token)
{
  static const char *const names[PROXY_TOKEN_COUNT] = {
      "none", "bad", "bad type 3", "kerberos", "type 1", "type 3"};

  return (unsigned)token < PROXY_TOKEN_COUNT ? names[token] : "?";
}

const char *proxy_act_name(enum proxy_act act)
{
  switch(act) {
  case PROXY_ACT_FORWARD:
    return "forward";
  case PROXY_ACT_OFFER:
    return "offer";
  case PROXY_ACT_CHALLENGE:
    return "challenge";
  }
  return "?";
}
