/*
 * kerberos.c - a POST of a user inside the network: Negotiate with a
 * Kerberos ticket, in one leg. The ticket is MIT's (common/kb_gss.h:
 * gss_init_sec_context from the user's credential cache), crafted per leg
 * rather than left to libcurl's CURLAUTH_NEGOTIATE, because libcurl sends
 * a POST's first request without credentials and, on its 401, the token
 * with the body held back (Content-Length: 0), as for NTLM: a leg
 * structure no Windows client inside the network has. Windows sends the
 * AP-REQ with the first request and its body once it knows the site wants
 * Negotiate, so nothing is held back and the listener never sees a
 * body-less POST: KB 942638 cannot happen.
 */
#include "client_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/kb_gss.h"

enum client_outcome client__post_kerberos(struct client *c,
                                          const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  char err[256];
  char *auth;
  CURLcode rc;

  /* A fresh AP-REQ per request: an acceptor refuses one it has seen (its
   * replay cache). */
  auth = kb_gss_initiate(c->krb5_ccache, c->host, err, sizeof(err));
  if(!auth) {
    client__detail(res, "Kerberos: %.200s; run kinit for %.40s", err, c->user);
    res->harness_failed = true; /* nothing was sent: the listener is not
                                   at stake */
    return CLIENT_AUTH_FAILED;
  }
  client__leg_init(&leg);
  rc = client__run_leg(c, p, CLIENT_LEG_KERBEROS, auth, p->body, p->len, &leg);
  free(auth);
  client__apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client__transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401 &&
          (leg.ntlm_bare || leg.ntlm_value || leg.ntlm_value_too_big)) {
    /* The listener does not take the ticket (no Kerberos there, or it
     * refused it): Windows falls back to NTLM for the rest of the
     * session. */
    c->scheme = CLIENT_SCHEME_NTLM;
    result = client__post_ntlm(c, p);
  }
  else if(leg.status == 401) {
    client__detail(res, "HTTP 401 to a Kerberos ticket, offering no NTLM "
                        "to fall back to");
    result = CLIENT_AUTH_FAILED;
  }
  else
    result = client__final_status(c, p, &leg,
                                  "the POST with a Kerberos "
                                  "ticket");
  client__leg_free(&leg);
  return result;
}
