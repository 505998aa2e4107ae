/*
 * request.c - the checks made of one request, sent by libcurl on a new
 * connection to the listener's autodiscover URL: offer (no credentials),
 * challenge-rewritten (the offer the client got against the one Exchange
 * sent), expect-hang (Expect: 100-continue) and body-on-type1 (a type 1
 * that carries the body); and what every request to the listener shares
 * (the target, libcurl's options with the CA, the answer's header reader),
 * which http2.c uses too.
 */
#include "probe_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ntlm/ntlm.h"

/* libcurl's wait for a 100 Continue before it sends the body anyway, as
 * its default and .NET's. */
#define PROBE_EXPECT_WAIT_MS 1000L

/* The scheme at the start of a WWW-Authenticate value, its length. */
static size_t probe_scheme_len(const char *v)
{
  return strcspn(v, " \t,");
}

/* Whether value starts with scheme, as a whole word. */
static bool probe_is_scheme(const char *value, const char *scheme)
{
  size_t n = probe_scheme_len(value);
  return n == strlen(scheme) && !strncasecmp(value, scheme, n);
}

bool probe__www_authenticate(const char *data, size_t len, const char **value,
                             size_t *vlen)
{
  static const char name[] = "WWW-Authenticate:";
  const char *v;
  size_t n;

  if(len <= sizeof(name) || strncasecmp(data, name, sizeof(name) - 1))
    return false;
  v = data + sizeof(name) - 1;
  while(v < data + len && (*v == ' ' || *v == '\t'))
    v++;
  n = len - (size_t)(v - data);
  while(n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' ||
              v[n - 1] == '\t'))
    n--;
  *value = v;
  *vlen = n;
  return true;
}

size_t probe__header_cb(char *data, size_t size, size_t n, void *cls)
{
  struct probe_answer *ans = cls;
  size_t len = size * n, vlen;
  char value[256];
  const char *v;
  int code;

  if(len > 5 && !strncmp(data, "HTTP/", 5)) {
    v = memchr(data, ' ', len);
    code = v ? atoi(v + 1) : 0;
    if(code == 100)
      ans->continued = true;
    else if(code >= 200)
      ans->status = code;
    ans->noffers = 0;
    ans->ntlm = ans->basic = ans->type2 = false;
    return len;
  }
  if(!probe__www_authenticate(data, len, &v, &vlen))
    return len;
  if(vlen >= sizeof(value))
    vlen = sizeof(value) - 1;
  memcpy(value, v, vlen);
  value[vlen] = '\0';
  if(ans->noffers < PROBE_MAX_OFFERS)
    snprintf(ans->offers[ans->noffers++], sizeof(ans->offers[0]), "%s", value);
  if(probe_is_scheme(value, "NTLM") || probe_is_scheme(value, "Negotiate")) {
    ans->ntlm = true;
    if(value[probe_scheme_len(value)] == ' ' &&
       value[probe_scheme_len(value) + 1])
      ans->type2 = true;
  }
  else if(probe_is_scheme(value, "Basic"))
    ans->basic = true;
  return len;
}

size_t probe__discard_cb(char *data, size_t size, size_t n, void *cls)
{
  (void)data;
  (void)cls;
  return size * n;
}

void probe__target(const struct probe_config *cfg, struct probe_target *t)
{
  const struct probe_user *u = &cfg->users[0];

  /* The listener's URL may end in "/" (serve prints it so). */
  snprintf(t->url, sizeof(t->url), "%.*s/autodiscover/autodiscover.xml",
           (int)(strlen(cfg->url) -
                 (*cfg->url && cfg->url[strlen(cfg->url) - 1] == '/')),
           cfg->url);
  snprintf(t->host, sizeof(t->host), "Host: %s",
           cfg->host ? cfg->host : "autodiscover.fabrikam.com");
  snprintf(t->body, sizeof(t->body),
           "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover "
           "xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
           "outlook/requestschema/2006\"><Request><EMailAddress>%.100s@"
           "%s</EMailAddress><AcceptableResponseSchema>http://"
           "schemas.microsoft.com/exchange/autodiscover/outlook/"
           "responseschema/2006a</AcceptableResponseSchema></Request>"
           "</Autodiscover>",
           u->user ? u->user : "", PROBE_MAIL_DOMAIN);
}

CURLcode probe__curl_listener(CURL *curl, const struct probe_config *cfg,
                              long timeout_ms)
{
  struct curl_blob ca;
  CURLcode rc;

  if((rc = curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms)) ||
     (rc = curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L)) ||
     (rc = curl_easy_setopt(curl, CURLOPT_PROXY, "")) ||
     (rc = curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https")))
    return rc;
  if(!cfg->ca_pem)
    return CURLE_OK;
  ca.data = (void *)cfg->ca_pem;
  ca.len = strlen(cfg->ca_pem);
  ca.flags = CURL_BLOB_COPY;
  return curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
}

void probe__request(const struct probe_config *cfg, long timeout_ms,
                    const struct probe_request *req, struct probe_answer *ans)
{
  CURL *curl = curl_easy_init();
  struct curl_slist *headers = NULL, *h;
  struct probe_target t;
  char auth[1200];

  memset(ans, 0, sizeof(*ans));
  ans->rc = CURLE_OUT_OF_MEMORY;
  probe__target(cfg, &t);
  snprintf(auth, sizeof(auth), "Authorization: %s",
           req->authorization ? req->authorization : "");
  if(!curl)
    return;
  h = curl_slist_append(NULL, t.host);
  headers = h;
  if(h)
    h = curl_slist_append(headers, "Content-Type: text/xml; charset=utf-8");
  if(h)
    h = curl_slist_append(headers,
                          req->expect ? "Expect: 100-continue" : "Expect:");
  if(h && req->authorization)
    h = curl_slist_append(headers, auth);
  explicit_bzero(auth, sizeof(auth));
  if(!h)
    goto out;
  if((ans->rc = probe__curl_listener(curl, cfg, timeout_ms)) != CURLE_OK)
    goto out;
  curl_easy_setopt(curl, CURLOPT_URL, t.url);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, t.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, probe__header_cb);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, ans);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, probe__discard_cb);
  curl_easy_setopt(curl, CURLOPT_EXPECT_100_TIMEOUT_MS, PROBE_EXPECT_WAIT_MS);
  /* HTTP/1.1 as Communicator speaks it, also on HTTPS where libcurl would
   * offer h2 in ALPN: the http2 check offers it on purpose. */
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  ans->rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &ans->seconds);
out:
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
}

/* Sends req, reading Exchange's status before and after into r->exchange
 * (the readings into before and after too, when not NULL; the caller
 * frees them). */
static void probe_request_seen(const struct probe_config *cfg, long timeout_ms,
                               const struct probe_request *req,
                               struct probe_answer *ans, struct probe_result *r,
                               struct probe_status *before,
                               struct probe_status *after)
{
  struct probe_status b, a;

  probe__status_read(cfg->status_url, timeout_ms, &b);
  probe__request(cfg, timeout_ms, req, ans);
  probe__status_read(cfg->status_url, timeout_ms, &a);
  probe__status_delta(&b, &a, &r->exchange);
  if(before && after) {
    *before = b;
    *after = a;
    return;
  }
  probe__status_free(&b);
  probe__status_free(&a);
}

void probe__offer(const struct probe_config *cfg, long timeout_ms,
                  struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_OFFER];
  const struct probe_request req = {NULL, false};
  struct probe_answer ans;

  probe_request_seen(cfg, timeout_ms, &req, &ans, r, NULL, NULL);
  r->verdict = PROBE_ERROR;
  if(ans.rc != CURLE_OK) {
    snprintf(r->line, sizeof(r->line), "no answer from %s: %s%s", cfg->url,
             curl_easy_strerror(ans.rc),
             ans.rc == CURLE_PEER_FAILED_VERIFICATION
                 ? "; give the listener's CA with --ca-file"
                 : "");
    return;
  }
  if(ans.status != 401 && probe__reached_nothing(r)) {
    snprintf(r->line, sizeof(r->line),
             PROBE_NOTHING_REACHED " (HTTP %ld to a request without "
                                   "credentials); does %s publish the "
                                   "Exchange whose status was given?",
             ans.status, cfg->url);
    return;
  }
  r->verdict = PROBE_PASS;
  if(ans.status == 401 && ans.ntlm) {
    rep->offer = PROBE_OFFER_NTLM;
    snprintf(r->line, sizeof(r->line),
             "401 offering NTLM%s: integrated authentication",
             ans.basic ? " and Basic" : "");
  }
  else if(ans.status == 401 && ans.basic) {
    rep->offer = PROBE_OFFER_BASIC;
    snprintf(r->line, sizeof(r->line), "401 offering Basic only");
  }
  else if(ans.status >= 200 && ans.status < 300) {
    rep->offer = PROBE_OFFER_ANONYMOUS;
    snprintf(r->line, sizeof(r->line),
             "%ld without credentials: anonymous access", ans.status);
  }
  else {
    rep->offer = PROBE_OFFER_OTHER;
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "%ld to a request without credentials, offering neither NTLM "
             "nor Basic; is %s a listener publishing kbsim exchange?",
             ans.status, cfg->url);
  }
}

/* Appends "\"v\"" for each of the n values to out, comma-separated. */
static void probe_quote_list(char *out, size_t len, const char (*v)[256],
                             unsigned n)
{
  size_t at = 0;
  unsigned i;

  out[0] = '\0';
  for(i = 0; i < n && at < len; i++)
    at += (size_t)snprintf(out + at, len - at, "%s\"%.60s\"", i ? ", " : "",
                           v[i]);
}

/* Collects the bare offers (a scheme without a token: "Negotiate",
 * "NTLM") Exchange's connections that moved sent, into offers; returns
 * how many. */
static unsigned probe_exchange_offers(const struct probe_status *before,
                                      const struct probe_status *after,
                                      char (*offers)[256])
{
  struct probe_moved moved[16];
  size_t n = probe__moved(before, after, moved, 16), i;
  unsigned k, j, count = 0;

  for(i = 0; i < n; i++)
    for(k = 0; k < moved[i].conn->noffers; k++) {
      const char *v = moved[i].conn->offers[k];
      bool seen = false;
      if(v[probe_scheme_len(v)] != '\0')
        continue; /* a challenge with its token, or a list */
      for(j = 0; j < count; j++)
        seen |= !strcasecmp(offers[j], v);
      if(!seen && count < PROBE_MAX_OFFERS)
        snprintf(offers[count++], sizeof(offers[0]), "%s", v);
    }
  return count;
}

/* Judges challenge-rewritten into r: each offer Exchange sent must reach
 * the client as a header of its own. */
static void probe_challenge_judge(const struct probe_answer *ans,
                                  const char (*sent)[256], unsigned nsent,
                                  struct probe_result *r)
{
  char sent_list[300], got_list[300], missing[120] = "";
  size_t at = 0;
  unsigned i, k;

  probe_quote_list(sent_list, sizeof(sent_list), sent, nsent);
  probe_quote_list(got_list, sizeof(got_list), ans->offers, ans->noffers);
  for(i = 0; i < nsent; i++) {
    bool got = false;
    for(k = 0; k < ans->noffers; k++)
      got |= !strcasecmp(ans->offers[k], sent[i]);
    if(!got && at < sizeof(missing))
      at += (size_t)snprintf(missing + at, sizeof(missing) - at, "%s%.40s",
                             at ? ", " : "", sent[i]);
  }
  if(!missing[0]) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "the client got Exchange's offer as Exchange sent it: %.200s",
             sent_list);
    return;
  }
  r->verdict = PROBE_FAIL;
  snprintf(r->line, sizeof(r->line),
           "Exchange offered %.100s in %u headers; the client got %u: %.100s "
           "(%.60s "
           "missing as a header of its own: a client that looks for it, as "
           "Communicator does for NTLM, finds no scheme)",
           sent_list, nsent, ans->noffers, ans->noffers ? got_list : "none",
           missing);
}

void probe__challenge_rewritten(const struct probe_config *cfg, long timeout_ms,
                                struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_CHALLENGE_REWRITTEN];
  const struct probe_request req = {NULL, false};
  struct probe_status before, after;
  struct probe_answer ans;
  char sent[PROBE_MAX_OFFERS][256], got_list[300];
  unsigned nsent;

  if(!cfg->status_url) {
    r->verdict = PROBE_SKIP;
    snprintf(r->line, sizeof(r->line),
             "needs Exchange's view: give --exchange-status URL");
    return;
  }
  probe_request_seen(cfg, timeout_ms, &req, &ans, r, &before, &after);
  nsent = probe_exchange_offers(&before, &after, sent);
  probe__status_free(&before);
  probe__status_free(&after);
  probe_quote_list(got_list, sizeof(got_list), ans.offers, ans.noffers);
  if(ans.rc != CURLE_OK) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "no answer: %s",
             curl_easy_strerror(ans.rc));
  }
  else if(ans.status != 401) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "HTTP %ld to a request without credentials: no challenge to "
             "rewrite",
             ans.status);
  }
  else if(!nsent) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "the listener made its own offer (%.200s); Exchange sent none: "
             "nothing to rewrite",
             ans.noffers ? got_list : "none");
  }
  else
    probe_challenge_judge(&ans, (const char(*)[256])sent, nsent, r);
}

void probe__expect_hang(const struct probe_config *cfg, long timeout_ms,
                        struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_EXPECT_HANG];
  const struct probe_request req = {NULL, true};
  struct probe_answer ans;
  char seen[80] = "";

  probe_request_seen(cfg, timeout_ms, &req, &ans, r, NULL, NULL);
  if(r->exchange.known)
    snprintf(seen, sizeof(seen), "; Exchange counted %" PRIu64 " requests",
             r->exchange.requests);
  if(ans.status) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line), "answered HTTP %ld%s in %.1f s",
             ans.status, ans.continued ? " after 100 Continue" : "",
             ans.seconds);
  }
  else if(ans.rc == CURLE_OPERATION_TIMEDOUT && !ans.continued) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "a POST with Expect: 100-continue and a body got neither 100 "
             "Continue nor an answer in %.0f s (the body went after %.0f s "
             "anyway)%s",
             ans.seconds, PROBE_EXPECT_WAIT_MS / 1000.0, seen);
  }
  else if(ans.rc == CURLE_OPERATION_TIMEDOUT) {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line),
             "100 Continue came, then no answer in %.0f s%s", ans.seconds,
             seen);
  }
  else {
    r->verdict = PROBE_ERROR;
    snprintf(r->line, sizeof(r->line), "no answer: %s%s",
             curl_easy_strerror(ans.rc), seen);
  }
}

int probe__type1(char *out, size_t len)
{
  struct ntlm_bytes b = {NULL, 0};
  char *v = NULL;

  if(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &b) == NTLM_OK)
    v = ntlm_header_format(NTLM_SCHEME_NTLM, b.data, b.len);
  ntlm_bytes_free(&b);
  if(!v)
    return -1;
  snprintf(out, len, "%s", v);
  free(v);
  return 0;
}

void probe__body_on_type1(const struct probe_config *cfg, long timeout_ms,
                          struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_BODY_ON_TYPE1];
  struct probe_request req = {NULL, false};
  struct probe_answer ans;
  char type1[256], seen[160] = "";

  if(rep->offer != PROBE_OFFER_NTLM) {
    r->verdict = PROBE_SKIP;
    snprintf(r->line, sizeof(r->line),
             "not run: the listener does not offer NTLM");
    return;
  }
  r->verdict = PROBE_ERROR;
  if(probe__type1(type1, sizeof(type1))) {
    snprintf(r->line, sizeof(r->line), "out of memory");
    return;
  }
  req.authorization = type1;
  probe_request_seen(cfg, timeout_ms, &req, &ans, r, NULL, NULL);
  if(ans.rc != CURLE_OK) {
    snprintf(r->line, sizeof(r->line), "no answer: %s",
             curl_easy_strerror(ans.rc));
    return;
  }
  if(ans.status >= 200 && ans.status < 300) {
    if(probe__reached_nothing(r))
      snprintf(seen, sizeof(seen), "; " PROBE_NOTHING_REACHED);
    else if(r->exchange.known)
      snprintf(seen, sizeof(seen),
               "; Exchange served it with no identity (%" PRIu64
               " unauthenticated bodies)",
               r->exchange.unauthenticated_bodies);
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "a type 1 carrying the autodiscover request's body was answered "
             "HTTP %ld: served without authentication%s",
             ans.status, seen);
  }
  else if(ans.status != 401 && r->exchange.known &&
          r->exchange.unauthenticated_bodies && !r->exchange.challenges) {
    r->verdict = PROBE_FAIL;
    snprintf(r->line, sizeof(r->line),
             "a type 1 carrying the autodiscover request's body reached "
             "Exchange with it, unchallenged (%" PRIu64
             " unauthenticated bodies), and was answered HTTP %ld",
             r->exchange.unauthenticated_bodies, ans.status);
  }
  else if(ans.status == 401) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "a type 1 carrying a body was challenged (401 %s); its body "
             "was served to nobody",
             ans.type2 ? "with a type 2" : "with the offer");
  }
  else
    snprintf(r->line, sizeof(r->line),
             "HTTP %ld to a type 1 carrying a body, where a 401 with a type 2 "
             "was expected",
             ans.status);
}
