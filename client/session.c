/*
 * session.c - the session: the autodiscover POST, whose answer points the
 * EWS POSTs at their URL, then the EWS POSTs in turn (GetUserOofSettings,
 * GetUserAvailability), each after its think time; what makes each answer
 * usable, and what the user sees.
 */
#include "client_int.h"
#include "xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the answers --------------------------------------------------------- */

/* Takes the EXCH ASUrl out of an autodiscover response and points the EWS
 * POSTs at its path on the listener. Returns CLIENT_OK or
 * CLIENT_PROTOCOL_ERROR with the reason in res->detail. */
static enum client_outcome
client_use_autodiscover(struct client *c, const struct kb_buf *body,
                        struct client_post_result *res)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  char *asurl = NULL;
  char *path = NULL;
  char *url = NULL;
  CURLU *u = NULL;
  int n = client_xml_xpath(body,
                           "/ad:Autodiscover/a:Response/a:Account/"
                           "a:Protocol[normalize-space(a:Type)='EXCH']/a:ASUrl",
                           &asurl);
  if(n < 0) {
    client__detail(res, "out of memory reading the autodiscover response");
    goto out;
  }
  if(n == 0 || !asurl || !*asurl) {
    client__detail(res, "the autodiscover response names no EWS URL (EXCH "
                        "ASUrl); check the published Autodiscover service");
    goto out;
  }
  if(strlen(asurl) >= sizeof(c->view.ews_url)) {
    client__detail(res, "the autodiscover ASUrl is longer than %zu bytes",
                   sizeof(c->view.ews_url) - 1);
    goto out;
  }
  u = curl_url();
  if(!u || curl_url_set(u, CURLUPART_URL, asurl, 0) != CURLUE_OK ||
     curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
    client__detail(res, "the autodiscover ASUrl '%.80s' is not a URL", asurl);
    goto out;
  }
  url = client__url_with_path(c->base, path);
  if(!url) {
    client__detail(res, "cannot put the ASUrl path '%.80s' on the listener URL",
                   path);
    goto out;
  }
  free(c->ews_url);
  free(c->ews_path);
  c->ews_url = url;
  c->ews_path = strdup(path);
  url = NULL;
  if(!c->ews_path) {
    client__detail(res, "out of memory reading the autodiscover response");
    goto out;
  }
  memcpy(c->view.ews_url, asurl, strlen(asurl) + 1);
  result = CLIENT_OK;
out:
  free(url);
  curl_free(path);
  curl_url_cleanup(u);
  free(asurl);
  return result;
}

enum client_outcome client__check_body(struct client *c,
                                       enum client_post_kind kind,
                                       const struct kb_buf *body,
                                       struct client_post_result *res)
{
  int n;
  if(kind == CLIENT_POST_AUTODISCOVER)
    return client_use_autodiscover(c, body, res);
  if(kind == CLIENT_POST_PAGE) {
    n = client_xml_xpath(body, "/*[local-name()='definitions']", NULL);
    if(n > 0)
      return CLIENT_OK;
    client__detail(res, n < 0 ? "out of memory reading Services.wsdl"
                              : "Services.wsdl is not a WSDL document");
    return CLIENT_PROTOCOL_ERROR;
  }
  if(kind == CLIENT_POST_OOF)
    n = client_xml_xpath(body,
                         "/s:Envelope/s:Body/m:GetUserOofSettingsResponse/"
                         "m:ResponseMessage[@ResponseClass='Success']",
                         NULL);
  else
    n = client_xml_xpath(body,
                         "/s:Envelope/s:Body/m:GetUserAvailabilityResponse/"
                         "m:FreeBusyResponseArray/m:FreeBusyResponse",
                         NULL);
  if(n > 0)
    return CLIENT_OK;
  if(n < 0)
    client__detail(res, "out of memory reading the %s response",
                   client_post_kind_name(kind));
  else if(kind == CLIENT_POST_OOF)
    client__detail(res, "the GetUserOofSettings response is not a SOAP "
                        "envelope with ResponseClass=\"Success\"");
  else
    client__detail(res, "the GetUserAvailability response is not a SOAP "
                        "envelope with FreeBusyResponse elements");
  return CLIENT_PROTOCOL_ERROR;
}

/* ---- the POSTs in turn --------------------------------------------------- */

/* Spends the think time before EWS POST res->index: a duration drawn
 * uniformly from [think_min_ms, think_max_ms] - the 8 bytes drawn as
 * "client/<id>/post/<n>/think", big-endian, modulo the width of the range,
 * plus the minimum - passed on the client's simulated timeline. No draw
 * when think_max_ms is 0. Records it in res->think_ms. */
static void client_think(struct client *c, struct client_post_result *res)
{
  uint8_t raw[8];
  char label[80];
  uint64_t v = 0, span;
  size_t i;
  if(c->think_max_ms <= 0)
    return;
  snprintf(label, sizeof(label), "client/%u/post/%u/think", c->id, res->index);
  kb_rng_fill(&c->rng, label, raw, sizeof(raw));
  for(i = 0; i < sizeof(raw); i++)
    v = (v << 8) | raw[i];
  span = (uint64_t)(c->think_max_ms - c->think_min_ms) + 1;
  res->think_ms = c->think_min_ms + (int64_t)(v % span);
  kb_clock_advance(&c->clock, c->origin, res->think_ms);
}

/* Records a finished POST in what the user sees. */
static void client_record(struct client *c,
                          const struct client_post_result *res)
{
  struct client_view *v = &c->view;
  bool ok = res->outcome == CLIENT_OK;
  v->posts_done++;
  if(ok)
    v->posts_ok++;
  else {
    v->posts_failed++;
    if(!v->integration_error)
      kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                    res->connection, KB_NOTE_NOTIFICATION, "notification: %s",
                    CLIENT_NOTIFICATION_TEXT);
    v->integration_error = true;
    v->autodiscovery_failed_logged = true;
    kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                  res->connection, KB_NOTE_LOG, "log: %s (POST %u %s: %s: %s)",
                  CLIENT_LOG_TEXT, res->index, client_post_kind_name(res->kind),
                  client_outcome_name(res->outcome), res->detail);
  }
  switch(res->kind) {
  case CLIENT_POST_AUTODISCOVER:
    v->autodiscover_ok = ok;
    break;
  case CLIENT_POST_OOF:
    v->presence_available = ok;
    break;
  case CLIENT_POST_AVAILABILITY:
    v->scheduling_available = ok;
    break;
  case CLIENT_POST_PAGE:
  case CLIENT_POST_RPC_CHANNELS:
  case CLIENT_POST_RPC_CALL:
    break; /* the way in; outlook-anywhere's calls show nothing */
  }
  v->connections = (unsigned)c->conn_count;
}

int client_step(struct client *client, struct client_post_result *res)
{
  struct client_post_result *r;
  if(!client || client->phase == CLIENT_PHASE_DONE)
    return 0;
  r = &client->results[client->nresults];
  memset(r, 0, sizeof(*r));
  r->index = client->next_index;
  if(client->kind == CLIENT_KIND_OUTLOOK_ANYWHERE)
    r->kind = client->phase == CLIENT_PHASE_AUTODISCOVER
                  ? CLIENT_POST_RPC_CHANNELS
                  : CLIENT_POST_RPC_CALL;
  else if(client->phase == CLIENT_PHASE_AUTODISCOVER)
    r->kind = client->kind == CLIENT_KIND_IE ? CLIENT_POST_PAGE
                                             : CLIENT_POST_AUTODISCOVER;
  else {
    /* EWS POST n, from 1, alternates from GetUserOofSettings. */
    r->kind = ((r->index - client->lead + 1) % 2) ? CLIENT_POST_OOF
                                                  : CLIENT_POST_AVAILABILITY;
    client_think(client, r);
  }
  r->at_ms = kb_clock_now(&client->clock, client->origin);
  if(client->kind == CLIENT_KIND_OUTLOOK_ANYWHERE)
    client__rpc_step(client, r);
  else
    client__post(client, r->kind, r);
  client->nresults++;
  client->next_index++;
  client_record(client, r);
  if(client->phase == CLIENT_PHASE_AUTODISCOVER &&
     r->kind == CLIENT_POST_PAGE) {
    /* A browser knows the EWS URL: it goes on whatever the page did. */
    if(client->next_index >= client->lead)
      client->phase = client->ews_posts ? CLIENT_PHASE_EWS : CLIENT_PHASE_DONE;
  }
  else if(client->phase == CLIENT_PHASE_AUTODISCOVER)
    client->phase = (r->outcome == CLIENT_OK && client->ews_posts)
                        ? CLIENT_PHASE_EWS
                        : CLIENT_PHASE_DONE;
  else if(client->next_index >= client->lead + client->ews_posts)
    client->phase = CLIENT_PHASE_DONE;
  /* outlook-anywhere closed its channels after a call that failed. */
  if(client->kind == CLIENT_KIND_OUTLOOK_ANYWHERE && r->outcome != CLIENT_OK)
    client->phase = CLIENT_PHASE_DONE;
  if(res)
    *res = *r;
  return 1;
}

unsigned client_run_session(struct client *client)
{
  struct client_post_result res;
  unsigned failed = 0;
  while(client_step(client, &res))
    if(res.outcome != CLIENT_OK)
      failed++;
  return failed;
}

/* ---- what the user sees -------------------------------------------------- */

void client_view(const struct client *client, struct client_view *view)
{
  *view = client->view;
  view->connections = (unsigned)client->conn_count;
}

size_t client_results_count(const struct client *client)
{
  return client->nresults;
}

const struct client_post_result *client_result(const struct client *client,
                                               size_t i)
{
  return i < client->nresults ? &client->results[i] : NULL;
}
