/*
 * leg.c - one leg of a POST: its headers in the support case's order, one
 * transfer (client__perform), and its answer (status, WWW-Authenticate values,
 * body) booked into the POST's result. A transfer that fails is described here.
 */
#include "client_int.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void client__leg_init(struct client_leg *leg)
{
  memset(leg, 0, sizeof(*leg));
  kb_buf_init(&leg->body, CLIENT_MAX_BODY);
}

void client__leg_free(struct client_leg *leg)
{
  kb_buf_free(&leg->body);
  free(leg->ntlm_value);
  leg->ntlm_value = NULL;
}

void client__leg_reset_response(struct client_leg *leg)
{
  free(leg->ntlm_value);
  leg->ntlm_value = NULL;
  leg->ntlm_value_too_big = false;
  leg->ntlm_bare = false;
  leg->basic_offered = false;
  leg->other_scheme = false;
  leg->via[0] = '\0';
  kb_buf_reset(&leg->body);
  leg->body_result = KB_BUF_OK;
}

/* One header line of a leg: a name with a NULL value is a libcurl
 * directive and is not sent (the empty "Expect:" stops "Expect:
 * 100-continue", the empty "Accept:" stops libcurl's own Accept, and
 * the leading empty "Host:" stops libcurl from moving our Host header to
 * the front - it puts a custom Host first unless its own is removed).
 * libcurl looks up a directive by the first entry of that name, hence the
 * order. Entries with skip set are left out. */
struct client_header {
  const char *name;
  const char *value;
  bool skip;
};

#define CLIENT_MAX_HEADERS 12u

/* Fills h with the headers of a leg of c's kind, in that client's order,
 * and returns how many. get: a GET (no body, no Content-Type or
 * Content-Length); auth: the Authorization value or NULL; length: the
 * Content-Length as text.
 *
 * Communicator's follow the support case; Outlook's leave Content-Length
 * and Authorization to libcurl, whose NTLM decides them per request. ie's
 * are Internet Explorer 7's (the page's XMLHTTP POSTs the same way).
 * dotnet's are HttpWebRequest's under a SOAP client: the headers set
 * through its collection in the order they were set (User-Agent,
 * Content-Type), Authorization, then those it writes itself (Host,
 * Content-Length, Expect, Connection), Expect on every POST (the type 1's
 * Content-Length 0 included). java's are Apache HttpClient 4's: its
 * protocol interceptors' order, then Authorization, which its exec chain
 * adds last; Expect on every POST (each carries its body). Where the order
 * is not documented it is what captures of those clients commonly show;
 * the values are assumptions named in client/README.md. */
static size_t client_header_list(const struct client *c, bool get,
                                 const char *auth, const char *length,
                                 struct client_header *h)
{
  size_t n = 0;
  bool outlook = c->kind == CLIENT_KIND_OUTLOOK;
  bool ie = c->kind == CLIENT_KIND_IE;
  const char *ua = client_kind_info(c->kind)->user_agent;

#define CLIENT_HDR(nm, val, sk)                                                \
  do {                                                                         \
    h[n].name = (nm);                                                          \
    h[n].value = (val);                                                        \
    h[n].skip = (sk);                                                          \
    n++;                                                                       \
  } while(0)
  switch(c->kind) {
  case CLIENT_KIND_DOTNET:
    CLIENT_HDR("Host", NULL, false);
    CLIENT_HDR("Accept", NULL, false);
    CLIENT_HDR("User-Agent", ua, false);
    CLIENT_HDR("Content-Type", "text/xml; charset=utf-8", false);
    CLIENT_HDR("Authorization", auth, !auth);
    CLIENT_HDR("Host", c->host, false);
    CLIENT_HDR("Content-Length", length, false);
    CLIENT_HDR("Expect", "100-continue", false);
    CLIENT_HDR("Connection", "Keep-Alive", false);
    break;
  case CLIENT_KIND_JAVA:
    CLIENT_HDR("Host", NULL, false);
    CLIENT_HDR("Accept", NULL, false);
    CLIENT_HDR("Content-Length", length, false);
    CLIENT_HDR("Content-Type", "text/xml; charset=UTF-8", false);
    CLIENT_HDR("Host", c->host, false);
    CLIENT_HDR("Connection", "Keep-Alive", false);
    CLIENT_HDR("User-Agent", ua, false);
    CLIENT_HDR("Expect", "100-continue", false);
    CLIENT_HDR("Authorization", auth, !auth);
    break;
  case CLIENT_KIND_OUTLOOK_ANYWHERE:
    /* MS-RPCH 2.1.2.1.1 names Accept, User-Agent, Host, Content-Length,
     * Cache-Control and Pragma for both channels; their order here is
     * WinINet's (assumed), Authorization last. */
    CLIENT_HDR("Host", NULL, false);
    CLIENT_HDR("Content-Type", NULL, false); /* none: not a form */
    CLIENT_HDR("Accept", "application/rpc", false);
    CLIENT_HDR("User-Agent", ua, false);
    CLIENT_HDR("Host", c->host, false);
    CLIENT_HDR("Content-Length", length, false);
    CLIENT_HDR("Connection", "Keep-Alive", false);
    CLIENT_HDR("Cache-Control", "no-cache", false);
    CLIENT_HDR("Pragma", "no-cache", false);
    CLIENT_HDR("Authorization", auth, !auth);
    CLIENT_HDR("Expect", NULL, false);
    break;
  case CLIENT_KIND_COMMUNICATOR:
  case CLIENT_KIND_OUTLOOK:
  case CLIENT_KIND_ONE_SHOT:
  case CLIENT_KIND_IE:
  default:
    /* WinINet's order, Communicator's and Internet Explorer's. */
    CLIENT_HDR("Host", NULL, false);
    CLIENT_HDR("Accept", ie ? "*/*" : "text/xml", false);
    CLIENT_HDR("Content-Type", "text/xml; charset=utf-8", get);
    CLIENT_HDR("User-Agent", ua, false);
    CLIENT_HDR("Host", c->host, false);
    CLIENT_HDR("Content-Length", length, outlook || get);
    CLIENT_HDR("Connection", "Keep-Alive", false);
    CLIENT_HDR("Cache-Control", "no-cache", false);
    CLIENT_HDR("Authorization", auth, outlook || !auth);
    CLIENT_HDR("Expect", NULL, false);
    break;
  }
#undef CLIENT_HDR
  assert(n <= CLIENT_MAX_HEADERS);
  return n;
}

/* Builds the request headers of a leg into a libcurl list, which the
 * caller frees with curl_slist_free_all: client_header_list's, with auth
 * (when not NULL) as the Authorization and len as the Content-Length (the
 * bytes it sends, or outlook-anywhere's announced length). Returns NULL
 * when out of memory. */
struct curl_slist *client__headers(const struct client *c, bool get,
                                   const char *auth, uint64_t len)
{
  struct curl_slist *result = NULL;
  struct curl_slist *list = NULL;
  struct client_header table[CLIENT_MAX_HEADERS];
  struct kb_buf line;
  size_t i, n;
  char length[32];

  snprintf(length, sizeof(length), "%" PRIu64, len);
  n = client_header_list(c, get, auth, length, table);
  kb_buf_init(&line, CLIENT_MAX_AUTH_VALUE + 64);
  for(i = 0; i < n; i++) {
    struct curl_slist *next;
    if(table[i].skip)
      continue;
    kb_buf_reset(&line);
    if(kb_buf_printf(&line, "%s:%s%s", table[i].name, table[i].value ? " " : "",
                     table[i].value ? table[i].value : "") != KB_BUF_OK)
      goto out;
    next = curl_slist_append(list, line.data);
    if(!next)
      goto out;
    list = next;
  }
  result = list;
  list = NULL;
out:
  kb_buf_free(&line);
  curl_slist_free_all(list);
  return result;
}

/* Returns how the trace names the Authorization a leg of kind which
 * carries, for a leg that never got a request out. */
static enum kb_auth client_leg_auth(enum client_leg_kind which)
{
  switch(which) {
  case CLIENT_LEG_NEGOTIATE:
    return KB_AUTH_NTLM_NEGOTIATE;
  case CLIENT_LEG_AUTHENTICATE:
    return KB_AUTH_NTLM_AUTHENTICATE;
  case CLIENT_LEG_BASIC:
    return KB_AUTH_OTHER;
  case CLIENT_LEG_KERBEROS:
    return KB_AUTH_SPNEGO;
  case CLIENT_LEG_PLAIN:
  case CLIENT_LEG_OUTLOOK:
  case CLIENT_LEG_AUTHENTICATED:
    break;
  }
  return KB_AUTH_NONE;
}

/* Sends one leg: one transfer (client__perform) of a POST to url with the
 * headers of client_headers, auth as the Authorization value and body (len
 * bytes, may be 0). Fills *leg with the last response. Every request libcurl
 * sent becomes one EXCHANGE event; a leg that never got one out still gets one,
 * with status 0. When the listener closed a kept-alive connection without
 * answering and libcurl sent the request again on a new one, a NOTE says
 * so. Returns curl's result; the caller owns leg, which must be cleared. */
static CURLcode client_send_leg(struct client *c,
                                const struct client_post_ctx *p,
                                enum client_leg_kind which, const char *auth,
                                const char *body, size_t len,
                                struct client_leg *leg)
{
  CURLcode result = CURLE_OUT_OF_MEMORY;
  struct curl_slist *headers = NULL;
  long status = 0;

  c->leg_requests = 0;
  c->leg_unanswered = 0;
  c->leg_dead_conn = 0;
  c->leg_new_conn = 0;
  c->leg_first_status = 0;
  c->current_conn = 0;
  c->current_name[0] = '\0';
  c->errbuf[0] = '\0';
  headers = client__headers(c, p->get, auth, len);
  if(!c->easy || !headers ||
     curl_easy_setopt(c->easy, CURLOPT_URL, p->url) != CURLE_OK ||
     curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK)
    ; /* result stays CURLE_OUT_OF_MEMORY */
  else if(p->get ? curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L) != CURLE_OK
                 : (curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                     (curl_off_t)len) != CURLE_OK ||
                    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body) !=
                        CURLE_OK))
    ; /* likewise */
  else {
    /* current_conn outlives a close at the end of the transfer so that the
     * result can name the connection; a leg that never got one reports 0. */
    c->leg = leg;
    result = client__perform(c);
    client__end_interim(c);
    c->leg = NULL;
    if(c->ca_pem)
      client__tls_seen(c);
    if(curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
      leg->status = (int)status;
  }
  client__req_flush(c);
  if(!c->leg_requests) {
    struct kb_exchange ex;
    memset(&ex, 0, sizeof(ex));
    ex.method = p->get ? "GET" : "POST";
    ex.path = p->path;
    ex.req_auth = client_leg_auth(which);
    ex.req_body_len = len;
    client__trace_exchange(c, c->current_conn, c->current_name, &ex);
  }
  if(c->leg_unanswered && leg->status)
    kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                  c->current_conn, KB_NOTE_RESENT,
                  "connection %" PRIu64 " was closed without an answer; "
                  "libcurl sent the request again on connection %" PRIu64,
                  c->leg_dead_conn, c->current_conn);
  if(leg->status)
    c->last_response_ms = kb_clock_now(&c->clock, c->origin);
  curl_slist_free_all(headers);
  return result;
}

CURLcode client__run_leg(struct client *c, const struct client_post_ctx *p,
                         enum client_leg_kind which, const char *auth,
                         const char *body, size_t len, struct client_leg *leg)
{
  struct client_post_result *res = p->res;
  bool first = res->legs == 0;
  CURLcode rc = client_send_leg(c, p, which, auth, body, len, leg);
  if(which == CLIENT_LEG_OUTLOOK && c->leg_requests > 1)
    res->legs += c->leg_requests;
  else
    res->legs++;
  if(first) {
    res->leg1_status = which == CLIENT_LEG_OUTLOOK && c->leg_first_status
                           ? c->leg_first_status
                           : leg->status;
    res->new_connection = c->leg_new_conn && c->leg_new_conn == c->current_conn;
  }
  res->final_status = leg->status;
  res->connection = c->current_conn;
  if(leg->via[0])
    memcpy(res->served_by, leg->via, sizeof(res->served_by));
  return rc;
}

enum client_outcome client__transfer_failed(const struct client *c, CURLcode rc,
                                            const struct client_leg *leg,
                                            struct client_post_result *res)
{
  const char *msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
  /* The listener's certificate not verified against what we trust: our
   * configuration (the CA to trust), not KB 942638 or any defect. */
  bool untrusted = rc == CURLE_PEER_FAILED_VERIFICATION ||
                   rc == CURLE_SSL_CACERT_BADFILE ||
                   rc == CURLE_SSL_ISSUER_ERROR;
  /* What says nothing about the listener: it was not there to answer, or
   * we gave up waiting, or we could not even try. A connection the
   * listener broke (GOT_NOTHING, RECV_ERROR, ...) is its behaviour. */
  res->harness_failed =
      c->out_of_fds || untrusted || rc == CURLE_COULDNT_CONNECT ||
      rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_OPERATION_TIMEDOUT ||
      rc == CURLE_OUT_OF_MEMORY || rc == CURLE_FAILED_INIT ||
      leg->body_result == KB_BUF_NOMEM;
  if(rc == CURLE_OUT_OF_MEMORY && !c->errbuf[0]) {
    client__detail(res, "leg %u: out of memory setting up the request",
                   res->legs);
    return CLIENT_TRANSPORT_ERROR;
  }
  if(leg->body_result == KB_BUF_TOO_BIG) {
    client__detail(res, "leg %u: the response body is larger than %u bytes",
                   res->legs, CLIENT_MAX_BODY);
    return CLIENT_PROTOCOL_ERROR;
  }
  if(c->out_of_fds)
    client__detail(res,
                   "leg %u: kbsim ran out of file descriptors: the harness "
                   "failed, not the listener; raise ulimit -n",
                   res->legs);
  else if(leg->body_result == KB_BUF_NOMEM)
    client__detail(res, "leg %u: out of memory receiving the response",
                   res->legs);
  else if(untrusted)
    client__detail(res,
                   "leg %u: %.48s: the listener's certificate is not "
                   "trusted; give its CA (--ca-file)",
                   res->legs, msg);
  else
    client__detail(res, "leg %u: %.110s; check that the listener is running",
                   res->legs, msg);
  return CLIENT_TRANSPORT_ERROR;
}
