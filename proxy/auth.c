/*
 * auth.c - the integrated listener's decision table; see auth.h.
 */
#include "proxy/auth.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool proxy_auth_verifies(enum proxy_auth_state state, enum proxy_token token,
                         bool kerberos)
{
  return (token == PROXY_TOKEN_AUTHENTICATE &&
          state == PROXY_AUTH_CHALLENGED) ||
         (token == PROXY_TOKEN_KERBEROS && kerberos);
}

/* Refuses the request with the offer and de-authenticates the
 * connection. */
static void proxy_auth_refuse(struct proxy_auth_decision *out,
                              enum kb_note note, bool auth_failed)
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
    if(!in->kerberos)
      proxy_auth_refuse(out, KB_NOTE_KERBEROS, false);
    else if(!in->verified)
      proxy_auth_refuse(out, KB_NOTE_KERBEROS_REFUSED, true);
    else {
      /* Kerberos in one leg: the ticket comes with the request and its
       * body, whatever the connection's state, so nothing is ever held
       * back and there is no handshake to skip (no KB 942638). The
       * connection stays authenticated, as IIS keeps a Kerberos
       * connection (authPersistNonNTLM). */
      out->act = PROXY_ACT_FORWARD;
      out->next = PROXY_AUTH_AUTHENTICATED;
      out->note = KB_NOTE_KERBEROS_OK;
      out->kerberos_ok = true;
    }
    break;
  case PROXY_TOKEN_BAD:
  case PROXY_TOKEN_BAD_TYPE3:
    proxy_auth_refuse(out, KB_NOTE_AUTH_UNUSABLE,
                      in->token == PROXY_TOKEN_BAD_TYPE3);
    break;
  case PROXY_TOKEN_NEGOTIATE:
    if(authenticated &&
       (in->policy == PROXY_POLICY_PER_CONNECTION ||
        (in->defects & PROXY_DEFECT(KB_DEFECT_BODY_LESS_FORWARD)))) {
      /* KB 942638: ISA 2006 as shipped keeps the connection's context
       * and forwards the body-less type 1; the defect body-less-forward
       * does it whatever the policy. */
      out->act = PROXY_ACT_FORWARD;
      out->note = KB_NOTE_REAUTH_SKIPPED;
      out->reauth_skipped = true;
    }
    else if(in->has_body &&
            (in->defects & PROXY_DEFECT(KB_DEFECT_BODY_ON_TYPE1))) {
      /* The defect body-on-type1: a listener that takes a type 1 with a
       * body for a request to serve, and hands it on unauthenticated.
       * The connection stays where it was: no handshake started. */
      out->act = PROXY_ACT_FORWARD;
      out->note = KB_NOTE_TYPE1_BODY_FORWARDED;
    }
    else {
      out->act = PROXY_ACT_CHALLENGE;
      out->next = PROXY_AUTH_CHALLENGED;
      out->note = authenticated ? KB_NOTE_REAUTH_CHALLENGED : KB_NOTE_CHALLENGE;
    }
    break;
  case PROXY_TOKEN_AUTHENTICATE:
    if(in->state != PROXY_AUTH_CHALLENGED)
      proxy_auth_refuse(out, KB_NOTE_AUTH_UNEXPECTED, true);
    else if(!in->verified)
      proxy_auth_refuse(out, KB_NOTE_AUTH_REFUSED, true);
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
    proxy_auth_refuse(out, KB_NOTE_AUTH_UNUSABLE, false);
    break;
  }
  /* The table's invariants: nothing is forwarded from a connection that
   * is not authenticated afterwards (but by the defect body-on-type1),
   * and only a verified type 3 on a challenged connection authenticates
   * one. */
  assert(out->act != PROXY_ACT_FORWARD ||
         out->next == PROXY_AUTH_AUTHENTICATED ||
         out->note == KB_NOTE_TYPE1_BODY_FORWARDED);
  assert(out->next != PROXY_AUTH_AUTHENTICATED ||
         in->state == PROXY_AUTH_AUTHENTICATED || out->auth_ok ||
         out->kerberos_ok);
  assert(!out->kerberos_ok ||
         (in->kerberos && in->verified && in->token == PROXY_TOKEN_KERBEROS));
  assert(!out->auth_ok || (in->state == PROXY_AUTH_CHALLENGED && in->verified));
}

void proxy_auth_texts(const struct proxy_auth_input *in,
                      const struct proxy_auth_decision *d,
                      const struct proxy_auth_facts *f, char *note,
                      size_t notelen, char *body, size_t bodylen)
{
  const char *conn = f->conn;

/* The note's words, written only when someone reads them. */
#define NOTE(...)                                                              \
  do {                                                                         \
    if(note)                                                                   \
      snprintf(note, notelen, __VA_ARGS__);                                    \
  } while(0)

  assert((note ? notelen > 0 : notelen == 0) && bodylen > 0);
  if(note)
    note[0] = '\0';
  body[0] = '\0';
  switch(d->note) {
  case KB_NOTE_FORWARD_AUTHENTICATED:
    NOTE("%s is authenticated as %s; %s", conn, f->who, f->what);
    break;
  case KB_NOTE_OFFER:
    NOTE("%s is not authenticated%s and sent no "
         "Authorization: 401 asking for NTLM",
         conn,
         in->state == PROXY_AUTH_CHALLENGED
             ? " (it left its handshake after the type 2)"
             : "");
    snprintf(body, bodylen,
             "ISA %s: authentication required; send NTLM credentials",
             f->listener);
    break;
  case KB_NOTE_KERBEROS:
    NOTE("%s sent a Negotiate token that is not "
         "NTLMSSP (first byte 0x%02x: SPNEGO/Kerberos); Kerberos is "
         "not available here, the client should fall back to NTLM: "
         "401 offering Negotiate and NTLM, nothing forwarded%s",
         conn, f->first_byte,
         in->state == PROXY_AUTH_UNAUTHENTICATED
             ? ""
             : ", connection de-authenticated");
    snprintf(body, bodylen,
             "ISA %s: Kerberos is not available on this listener; "
             "authenticate with NTLM (Negotiate with an NTLMSSP token, or "
             "NTLM)",
             f->listener);
    break;
  case KB_NOTE_KERBEROS_OK:
    NOTE("%s sent a Kerberos ticket with its request: accepted as %s in "
         "one leg, nothing held back; %s",
         conn, f->who, f->what);
    break;
  case KB_NOTE_KERBEROS_REFUSED:
    NOTE("%s sent a Kerberos ticket that was refused (%s): 401 offering "
         "Negotiate and NTLM, nothing forwarded%s",
         conn, f->err,
         in->state == PROXY_AUTH_UNAUTHENTICATED
             ? ""
             : ", connection de-authenticated");
    snprintf(body, bodylen,
             "ISA %s: the Kerberos ticket was refused (%s); get a new "
             "ticket (kinit) or authenticate with NTLM",
             f->listener, f->err);
    break;
  case KB_NOTE_AUTH_UNUSABLE:
    NOTE("%s sent an unusable Authorization header "
         "(%s): 401 asking for NTLM, connection de-authenticated",
         conn, f->why);
    snprintf(body, bodylen,
             "ISA %s: unusable Authorization header: %s; start again with "
             "an NTLM type 1",
             f->listener, f->why);
    break;
  case KB_NOTE_REAUTH_SKIPPED:
    NOTE("%s is already authenticated as %s; %s keeps that context: "
         "NTLM type 1 not challenged, %s",
         conn, f->who,
         in->policy == PROXY_POLICY_PER_CONNECTION
             ? "policy per-connection"
             : "the defect body-less-forward",
         f->what);
    break;
  case KB_NOTE_TYPE1_BODY_FORWARDED:
    NOTE("%s sent an NTLM type 1 with a body; the defect body-on-type1 "
         "takes it for a request: %s, unauthenticated",
         conn, f->what);
    break;
  case KB_NOTE_REAUTH_CHALLENGED:
    NOTE("%s is authenticated as %s, but policy "
         "per-request: NTLM type 1 on an authenticated connection "
         "restarts the handshake: 401 with a new type 2",
         conn, f->who);
    break;
  case KB_NOTE_CHALLENGE:
    NOTE("%s: NTLM type 1: 401 with a type 2 "
         "(handshake %u on this connection)",
         conn, f->handshake);
    break;
  case KB_NOTE_AUTH_UNEXPECTED:
    NOTE("%s sent an NTLM type 3 with no challenge "
         "pending: 401 asking for NTLM, connection de-authenticated",
         conn);
    snprintf(body, bodylen,
             "ISA %s: NTLM type 3 without a challenge on this connection; "
             "start again with a type 1",
             f->listener);
    break;
  case KB_NOTE_AUTH_REFUSED:
    NOTE("%s: NTLM type 3 refused (%s): 401 asking "
         "for NTLM, nothing forwarded",
         conn, f->err);
    /* The same answer whatever the reason: a client must not learn which
     * accounts exist (the reason is in the note). */
    snprintf(body, bodylen,
             "ISA %s: authentication failed; check the user name and "
             "password",
             f->listener);
    break;
  case KB_NOTE_AUTH_OK:
    NOTE("%s authenticated as %s (%s); %s", conn, f->who, f->how, f->what);
    break;
  default:
    break;
  }
#undef NOTE
  /* Every refusal with an offer has a body, and nothing else has one. */
  assert((d->act == PROXY_ACT_OFFER) == (body[0] != '\0'));
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
