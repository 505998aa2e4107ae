/*
 * post.c - one POST of the session and its strategies. For Communicator
 * libcurl's own authentication is never enabled: Communicator
 * re-authenticates each POST, which libcurl's NTLM never does, so every leg
 * is crafted here with ntlm.h and sent as plain custom headers - the plain
 * first request that learns the scheme, NTLM's type 1 then type 3, Basic.
 * Outlook is the opposite case and uses libcurl's CURLAUTH_NTLM as it is;
 * one-shot is Communicator's on a new connection for every POST. ie is
 * Communicator's too, with GETs that go without Authorization on an
 * authenticated connection. dotnet and java authenticate a connection once
 * with the same legs crafted here (Expect: 100-continue on their POSTs) and
 * send later requests on it without Authorization. A client with Kerberos
 * credentials (client_config.krb5_ccache) sends each POST in one leg with
 * its ticket (kerberos.c).
 */
#include "client/reauth.h"
#include "client_int.h"
#include "xml.h"

#include <libxml/xmlmemory.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntlm/ntlm.h"

void client__detail(struct client_post_result *res, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
  va_end(ap);
}

/* Decides the outcome of a 2xx that ends the POST. */
static enum client_outcome client_final_2xx(struct client *c,
                                            enum client_post_kind kind,
                                            const struct client_leg *leg,
                                            struct client_post_result *res)
{
  if(leg->status != 200) {
    client__detail(res, "HTTP %d carries no %s response to use", leg->status,
                   client_post_kind_name(kind));
    return CLIENT_PROTOCOL_ERROR;
  }
  return client__check_body(c, kind, &leg->body, res);
}

/* Judges the final status of a POST the way every kind of POST does when
 * no credentials are at stake: a 2xx is decided by its body, a 5xx is the
 * server's error, anything else is unexpected. what names the request in
 * the detail ("the POST"). Returns the POST's outcome. */
enum client_outcome client__final_status(struct client *c,
                                         const struct client_post_ctx *p,
                                         struct client_leg *leg,
                                         const char *what)
{
  if(leg->status >= 200 && leg->status <= 299)
    return client_final_2xx(c, p->kind, leg, p->res);
  if(leg->status >= 500 && leg->status <= 599) {
    client__detail(p->res, "HTTP %d to %s", leg->status, what);
    return CLIENT_SERVER_ERROR;
  }
  client__detail(p->res, "unexpected HTTP %d to %s", leg->status, what);
  return CLIENT_PROTOCOL_ERROR;
}

/* ---- NTLM ---------------------------------------------------------------- */

enum client_outcome client__ntlm_answer(struct client *c,
                                        struct client_post_result *res,
                                        const struct ntlm_bytes *type1,
                                        const struct client_leg *leg1,
                                        char **auth)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct ntlm_bytes token = {NULL, 0};
  struct ntlm_bytes type3 = {NULL, 0};
  struct ntlm_message challenge;
  struct ntlm_client_creds creds;
  struct ntlm_client_options opt;
  struct ntlm_exchange exchange;
  enum ntlm_scheme scheme;
  enum ntlm_result nr;
  char err[128];
  char label[80];
  uint8_t cchal[8];

  memset(&challenge, 0, sizeof(challenge));
  err[0] = '\0';
  *auth = NULL;
  if(leg1->ntlm_value_too_big) {
    client__detail(res, "the NTLM challenge is longer than %u bytes",
                   CLIENT_MAX_AUTH_VALUE);
    goto out;
  }
  nr = ntlm_header_parse(leg1->ntlm_value, &scheme, &token, err, sizeof(err));
  if(nr == NTLM_OK)
    nr = ntlm_decode(token.data, token.len, &challenge, err, sizeof(err));
  if(nr == NTLM_OK && challenge.type != NTLM_TYPE_CHALLENGE) {
    nr = NTLM_ERR_TYPE;
    snprintf(err, sizeof(err), "the 401 carries an NTLM type %d, not type 2",
             (int)challenge.type);
  }
  if(nr != NTLM_OK) {
    client__detail(res, "bad NTLM challenge: %.120s",
                   err[0] ? err : ntlm_strerror(nr));
    goto out;
  }

  snprintf(label, sizeof(label), "client/%u/post/%u/client-challenge", c->id,
           res->index);
  kb_rng_fill(&c->rng, label, cchal, sizeof(cchal));
  creds.domain = c->domain;
  creds.user = c->user;
  creds.password = c->password;
  creds.workstation = c->workstation;
  creds.kind = c->ntlm_kind;
  memset(&opt, 0, sizeof(opt));
  opt.client_challenge = cchal;
  opt.timestamp =
      ntlm_filetime_from_unix_ms(kb_clock_now(&c->clock, c->origin));
  if(c->ntlm_mic) {
    memset(&exchange, 0, sizeof(exchange));
    exchange.negotiate = type1->data;
    exchange.negotiate_len = type1->len;
    exchange.challenge = token.data;
    exchange.challenge_len = token.len;
    opt.mic = true;
    opt.exchange = &exchange;
  }
  if(c->cbt_known && c->ntlm_kind == NTLM_RESPONSE_V2) {
    char hex[33];
    size_t i;

    for(i = 0; i < 16; i++)
      snprintf(hex + 2 * i, 3, "%02x", c->cbt[i]);
    opt.channel_bindings = c->cbt;
    kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                  c->current_conn, KB_NOTE_CHANNEL_BINDING,
                  "POST %u's type 3 carries channel binding %s: "
                  "tls-server-end-point of the certificate the listener "
                  "presented (%s; %.60s...)",
                  res->index, hex, c->cbt_subject, c->cbt_hash);
  }
  nr = ntlm_client_authenticate_ex(&creds, &challenge, &opt, &type3, NULL, err,
                                   sizeof(err));
  if(nr != NTLM_OK) {
    client__detail(res, "cannot answer the NTLM challenge: %.110s",
                   err[0] ? err : ntlm_strerror(nr));
    goto out;
  }
  *auth = ntlm_header_format(NTLM_SCHEME_NTLM, type3.data, type3.len);
  if(!*auth) {
    client__detail(res, "out of memory building the NTLM type 3");
    result = CLIENT_TRANSPORT_ERROR;
    goto out;
  }
  result = CLIENT_OK;
out:
  ntlm_bytes_free(&type3);
  ntlm_bytes_free(&token);
  ntlm_message_free(&challenge);
  return result;
}

/* Answers the type 2 in leg1's 401 (the handshake began with type1) and
 * sends the type 3 with the body. Returns the POST's outcome with p->res
 * filled. */
static enum client_outcome client_ntlm_type3(struct client *c,
                                             const struct client_post_ctx *p,
                                             const struct ntlm_bytes *type1,
                                             const struct client_leg *leg1)
{
  enum client_outcome result;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  char *auth = NULL;
  CURLcode rc;

  client__leg_init(&leg);
  result = client__ntlm_answer(c, res, type1, leg1, &auth);
  if(result != CLIENT_OK)
    goto out;
  rc = client__run_leg(c, p, CLIENT_LEG_AUTHENTICATE, auth, p->body, p->len,
                       &leg);
  client__apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client__transfer_failed(c, rc, &leg, res);
  else if(leg.status == 200) {
    c->authed_conn = res->connection; /* NTLM authenticated it */
    result = client__check_body(c, p->kind, &leg.body, res);
  }
  else if(leg.status == 401) {
    /* Not "check the password": a listener that sends the type 3 on
     * another upstream connection than the type 1 (handshake-split) gets
     * the same 401 from the server for a right one, and only the server's
     * side tells the two apart (kbsim probe --exchange-status). */
    client__detail(res,
                   "HTTP 401 to the type 3 (%.20s\\%.20s): bad password, "
                   "or the listener split the handshake (kbsim probe tells "
                   "which)",
                   c->domain, c->user);
    result = CLIENT_AUTH_FAILED;
  }
  else if(leg.status >= 500 && leg.status <= 599) {
    client__detail(res, "HTTP %d to the authenticated POST with its body",
                   leg.status);
    result = CLIENT_SERVER_ERROR;
  }
  else {
    client__detail(res, "unexpected HTTP %d to the type 3", leg.status);
    result = CLIENT_PROTOCOL_ERROR;
  }
out:
  if(auth)
    explicit_bzero(auth, strlen(auth));
  free(auth);
  client__leg_free(&leg);
  return result;
}

/* Communicator's NTLM re-authentication of one POST: the type 1 with
 * Content-Length: 0 and the body held back, then on 401 + type 2 the type
 * 3 with the body. A 5xx to the type 1 is KB 942638: the listener
 * forwarded the body-less leg. java's type 1 carries the body (its
 * entity is repeatable, and Expect: 100-continue keeps it back until the
 * listener asks). Returns the POST's outcome. */
enum client_outcome client__post_ntlm(struct client *c,
                                      const struct client_post_ctx *p)
{
  bool with_body = c->kind == CLIENT_KIND_JAVA;
  enum client_outcome result = CLIENT_TRANSPORT_ERROR;
  struct client_post_result *res = p->res;
  struct ntlm_bytes type1 = {NULL, 0};
  struct client_leg leg;
  char *auth = NULL;
  CURLcode rc;

  client__leg_init(&leg);
  if(ntlm_client_negotiate(ntlm_client_flags(c->ntlm_kind), &type1) !=
         NTLM_OK ||
     !(auth = ntlm_header_format(NTLM_SCHEME_NTLM, type1.data, type1.len))) {
    client__detail(res, "out of memory building the %s POST",
                   client_post_kind_name(p->kind));
    goto out;
  }
  rc = client__run_leg(c, p, CLIENT_LEG_NEGOTIATE, auth,
                       with_body ? p->body : "", with_body ? p->len : 0, &leg);
  client__apply_max_requests(c, rc == CURLE_OK && leg.status == 401 &&
                                    (leg.ntlm_value || leg.ntlm_value_too_big));
  if(rc != CURLE_OK) {
    result = client__transfer_failed(c, rc, &leg, res);
    goto out;
  }
  switch(client_reauth_next(leg.status,
                            leg.ntlm_value || leg.ntlm_value_too_big)) {
  case CLIENT_REAUTH_TYPE3:
    result = client_ntlm_type3(c, p, &type1, &leg);
    break;
  case CLIENT_REAUTH_NO_CHALLENGE:
    client__detail(res, "HTTP 401 without an NTLM challenge to the type 1; "
                        "the listener must accept Integrated credentials");
    result = CLIENT_AUTH_FAILED;
    break;
  case CLIENT_REAUTH_ANSWERED:
    result = client_final_2xx(c, p->kind, &leg, res);
    break;
  case CLIENT_REAUTH_BODY_LOST:
    /* This is KB 942638: the body-less leg reached Exchange. */
    client__detail(res,
                   "HTTP %d to the body-less type 1: the listener "
                   "forwarded it instead of challenging (KB 942638)",
                   leg.status);
    result = CLIENT_SERVER_ERROR;
    break;
  case CLIENT_REAUTH_UNEXPECTED:
  default:
    client__detail(res, "unexpected HTTP %d to the type 1", leg.status);
    result = CLIENT_PROTOCOL_ERROR;
    break;
  }
out:
  free(auth);
  ntlm_bytes_free(&type1);
  client__leg_free(&leg);
  return result;
}

/* ---- Basic, the plain first request, Outlook ----------------------------- */

/* Sends the POST p with Basic credentials and its body in one leg. Returns
 * the POST's outcome. */
static enum client_outcome client_post_basic(struct client *c,
                                             const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  CURLcode rc;

  client__leg_init(&leg);
  rc = client__run_leg(c, p, CLIENT_LEG_BASIC, c->basic_auth, p->body, p->len,
                       &leg);
  client__apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client__transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401) {
    client__detail(res,
                   "HTTP 401 to Basic credentials: the listener refused "
                   "%.40s\\%.40s; check the user name and password",
                   c->domain, c->user);
    result = CLIENT_AUTH_FAILED;
  }
  else
    result =
        client__final_status(c, p, &leg, "the POST with Basic credentials");
  client__leg_free(&leg);
  return result;
}

/* Sends the POST p without credentials and with its body, as WinINet does
 * before it knows the listener's scheme (or after the listener answered
 * without asking). A 2xx ends it and the listener is anonymous; a 401
 * teaches the scheme for the rest of the session - NTLM when offered
 * (alone or after Negotiate), else Basic - and the POST goes on with it.
 * Returns the POST's outcome. */
static enum client_outcome client_post_plain(struct client *c,
                                             const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  CURLcode rc;

  client__leg_init(&leg);
  rc = client__run_leg(c, p, CLIENT_LEG_PLAIN, NULL, p->body, p->len, &leg);
  client__apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client__transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401 &&
          (leg.ntlm_bare || leg.ntlm_value || leg.ntlm_value_too_big)) {
    c->scheme = CLIENT_SCHEME_NTLM;
    result = client__post_ntlm(c, p);
  }
  else if(leg.status == 401 && leg.basic_offered) {
    c->scheme = CLIENT_SCHEME_BASIC;
    result = client_post_basic(c, p);
  }
  else if(leg.status == 401) {
    client__detail(res, "HTTP 401 offering neither NTLM nor Basic; the "
                        "listener must accept Integrated or Basic "
                        "credentials");
    result = CLIENT_AUTH_FAILED;
  }
  else {
    if(leg.status >= 200 && leg.status <= 299)
      c->scheme = CLIENT_SCHEME_NONE; /* the listener is anonymous */
    result = client__final_status(c, p, &leg, "the POST");
  }
  client__leg_free(&leg);
  return result;
}

/* Outlook's POST: libcurl's CURLAUTH_NTLM makes as many requests as its
 * handshake needs (a type 1 and a type 3 on a new connection, one request
 * without Authorization on an authenticated one) in one transfer. Returns
 * the POST's outcome. */
static enum client_outcome client_post_outlook(struct client *c,
                                               const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  CURLcode rc;

  client__leg_init(&leg);
  rc = client__run_leg(c, p, CLIENT_LEG_OUTLOOK, NULL, p->body, p->len, &leg);
  client__apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client__transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401 && !leg.ntlm_bare && !leg.ntlm_value &&
          !leg.ntlm_value_too_big && res->legs == 1) {
    client__detail(res, "HTTP 401 without NTLM; the listener must accept "
                        "Integrated credentials");
    result = CLIENT_AUTH_FAILED;
  }
  else if(leg.status == 401) {
    client__detail(res,
                   "HTTP 401 after libcurl's handshake (%.20s\\%.20s): bad "
                   "password, or the listener split the handshake (kbsim "
                   "probe tells which)",
                   c->domain, c->user);
    result = CLIENT_AUTH_FAILED;
  }
  else
    result = client__final_status(c, p, &leg, "the POST");
  client__leg_free(&leg);
  return result;
}

/* ---- requests on an authenticated connection ---------------------------- */

/* Sends the request p without Authorization and with its body on the
 * connection NTLM authenticated earlier (ie's GETs; dotnet's and java's
 * POSTs), which the listener forwards as it is. A 401 means the listener
 * no longer holds the connection authenticated: the handshake starts
 * again, as each of those clients does. Returns the POST's outcome. */
static enum client_outcome
client_post_authenticated(struct client *c, const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  CURLcode rc;

  client__leg_init(&leg);
  rc = client__run_leg(c, p, CLIENT_LEG_AUTHENTICATED, NULL, p->body, p->len,
                       &leg);
  client__apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client__transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401 &&
          (leg.ntlm_bare || leg.ntlm_value || leg.ntlm_value_too_big)) {
    c->authed_conn = 0;
    result = client__post_ntlm(c, p);
  }
  else if(leg.status == 401) {
    client__detail(res, "HTTP 401 offering no NTLM on the authenticated "
                        "connection; the listener must accept Integrated "
                        "credentials");
    result = CLIENT_AUTH_FAILED;
  }
  else
    result = client__final_status(c, p, &leg, p->get ? "the GET" : "the POST");
  client__leg_free(&leg);
  return result;
}

/* Whether the connection libcurl keeps open is the one NTLM authenticated
 * for ie, dotnet and java. */
static bool client_on_authed_conn(const struct client *c)
{
  uint64_t open = client__open_conn(c);
  return open && open == c->authed_conn;
}

/* A POST of dotnet or java: without Authorization, with Expect:
 * 100-continue and its body (client_header_list). On a connection that is
 * not authenticated the listener answers 401 at once and closes it
 * (proxy/README.md: an Expect it refuses whatever the body), so the
 * handshake runs on a new connection; on an authenticated one it is
 * forwarded. Returns the POST's outcome. */
static enum client_outcome
client_post_connection_auth(struct client *c, const struct client_post_ctx *p)
{
  if(client_on_authed_conn(c))
    return client_post_authenticated(c, p);
  return client_post_plain(c, p);
}

/* ---- one POST ------------------------------------------------------------ */

void client__post(struct client *c, enum client_post_kind kind,
                  struct client_post_result *res)
{
  struct client_post_ctx p;
  xmlChar *body = NULL;
  int body_len = 0;

  memset(&p, 0, sizeof(p));
  p.kind = kind;
  p.res = res;
  p.get = kind == CLIENT_POST_PAGE;
  p.url = kind == CLIENT_POST_AUTODISCOVER ? c->autodiscover_url
          : p.get                          ? c->page_url
                                           : c->ews_url;
  p.path = kind == CLIENT_POST_AUTODISCOVER ? CLIENT_AUTODISCOVER_PATH
           : p.get                          ? CLIENT_PAGE_PATH
                                            : c->ews_path;
  res->outcome = CLIENT_TRANSPORT_ERROR;
  if(!p.get &&
     client_xml_body(kind, c->email, (const char *const *)c->contacts,
                     kb_clock_now(&c->clock, c->origin), &body, &body_len)) {
    client__detail(res, "out of memory building the %s POST",
                   client_post_kind_name(kind));
    goto out;
  }
  p.body = body ? (const char *)body : "";
  p.len = (size_t)body_len;

  client__apply_idle_timeout(c, res->at_ms);
  /* One-shot starts every POST on a new connection; the previous POST
   * closed its own, so this only matters if something kept one open. */
  if(c->kind == CLIENT_KIND_ONE_SHOT && client__open_conn(c))
    client__drop_connection(c);
  if(c->kind == CLIENT_KIND_OUTLOOK)
    res->outcome = client_post_outlook(c, &p);
  else if(c->kind == CLIENT_KIND_DOTNET || c->kind == CLIENT_KIND_JAVA)
    res->outcome = client_post_connection_auth(c, &p);
  else if(c->scheme == CLIENT_SCHEME_KERBEROS)
    res->outcome = client__post_kerberos(c, &p); /* kerberos.c */
  else if(p.get && c->scheme == CLIENT_SCHEME_NTLM && client_on_authed_conn(c))
    res->outcome = client_post_authenticated(c, &p); /* WinINet's GET */
  else if(c->scheme == CLIENT_SCHEME_NTLM)
    res->outcome = client__post_ntlm(c, &p);
  else if(c->scheme == CLIENT_SCHEME_BASIC)
    res->outcome = client_post_basic(c, &p);
  else
    res->outcome = client_post_plain(c, &p);
  /* One-shot closes after every POST; so does dotnet without
   * UnsafeAuthenticatedConnectionSharing, after its authenticated
   * request. */
  if((c->kind == CLIENT_KIND_ONE_SHOT ||
      (c->kind == CLIENT_KIND_DOTNET && !c->connection_sharing)) &&
     client__open_conn(c))
    client__drop_connection(c);
out:
  xmlFree(body);
}
