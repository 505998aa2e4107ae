/*
 * http2.c - the http2 check: Communicator's handshake on HTTPS with HTTP/2
 * offered in ALPN (libcurl's nghttp2), judged by what the listener does
 * with NTLM on an HTTP/2 stream: refuses h2 in ALPN, downgrades with
 * HTTP_1_1_REQUIRED (RFC 9113 9.3.2; the client retries on HTTP/1.1), or
 * lets it through, where the handshake is bound to no connection the
 * client controls (ntlm-over-http2).
 */
#include "probe_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "ntlm/ntlm.h"

/* An NTLM challenge's WWW-Authenticate value, whole (probe_answer's
 * offers are cut at 255 bytes). */
#define PROBE_H2_MAX_CHALLENGE 4096

/* One handle through the check's requests, and what libcurl told of them. */
struct probe_h2 {
  CURL *easy;
  struct probe_answer ans; /* the last request's answer */
  long version;            /* its HTTP version, CURL_HTTP_VERSION_* */
  char challenge[PROBE_H2_MAX_CHALLENGE]; /* its NTLM type 2 value, or "" */
  char errbuf[CURL_ERROR_SIZE];
  /* From libcurl's informational lines, over the check's requests. */
  bool alpn_h2; /* a TLS handshake agreed on h2 */
  bool alpn_h1; /* ... on http/1.1 (else no protocol was chosen) */
  /* How the listener said HTTP_1_1_REQUIRED: "RST_STREAM" (the stream),
   * "GOAWAY" (the connection), NULL: it did not. */
  const char *required;
  bool retried;          /* libcurl retried a request on HTTP/1.1 itself */
  bool downgraded_type1; /* the request downgraded was the type 1 */
  bool http1_now;        /* the rest goes on HTTP/1.1 */
};

/* Notes what libcurl's informational lines say of ALPN and HTTP/2's end
 * (libcurl 7.88: "ALPN: server accepted h2", "HTTP/2 stream 1 was not
 * closed cleanly: HTTP_1_1_REQUIRED (err 13)" and then "Downgrades to
 * HTTP/1.1" as it retries by itself, or "recveived GOAWAY, error=13,
 * last_stream=0", its spelling, after which it gives up). */
static int probe_h2_debug(CURL *easy, curl_infotype type, char *data,
                          size_t len, void *cls)
{
  struct probe_h2 *h = cls;
  char line[256];

  (void)easy;
  if(type != CURLINFO_TEXT)
    return 0;
  if(len >= sizeof(line))
    len = sizeof(line) - 1;
  memcpy(line, data, len);
  line[len] = '\0';
  if(strstr(line, "ALPN: server accepted h2"))
    h->alpn_h2 = true;
  if(strstr(line, "ALPN: server accepted http/1.1"))
    h->alpn_h1 = true;
  if(strstr(line, "HTTP_1_1_REQUIRED"))
    h->required = "RST_STREAM";
  if(strstr(line, "GOAWAY, error=13"))
    h->required = "GOAWAY";
  if(strstr(line, "Downgrades to HTTP/1.1"))
    h->retried = true;
  return 0;
}

/* The header callback: probe__header_cb's, and the whole NTLM challenge
 * of the last answer into h->challenge. */
static size_t probe_h2_header(char *data, size_t size, size_t n, void *cls)
{
  struct probe_h2 *h = cls;
  size_t len = size * n, vlen;
  const char *v;

  if(len > 5 && !strncmp(data, "HTTP/", 5))
    h->challenge[0] = '\0';
  else if(probe__www_authenticate(data, len, &v, &vlen) && vlen > 5 &&
          vlen < sizeof(h->challenge) && !strncasecmp(v, "NTLM ", 5)) {
    memcpy(h->challenge, v, vlen);
    h->challenge[vlen] = '\0';
  }
  return probe__header_cb(data, size, n, &h->ans);
}

/* POSTs t's autodiscover request on h's handle, on its connection when it
 * is still open: with the body (Communicator's first request and its
 * type 3) or without (its type 1, Content-Length 0), authorization the
 * Authorization value or NULL. Fills h->ans, h->version and h->errbuf. */
static void probe_h2_post(struct probe_h2 *h, const struct probe_target *t,
                          const char *authorization, bool body)
{
  struct curl_slist *headers = NULL, *at;
  char auth[2200];

  memset(&h->ans, 0, sizeof(h->ans));
  h->ans.rc = CURLE_OUT_OF_MEMORY;
  h->version = 0;
  h->errbuf[0] = '\0';
  h->challenge[0] = '\0';
  snprintf(auth, sizeof(auth), "Authorization: %s",
           authorization ? authorization : "");
  at = headers = curl_slist_append(NULL, t->host);
  if(at)
    at = curl_slist_append(headers, "Content-Type: text/xml; charset=utf-8");
  if(at)
    at = curl_slist_append(headers, "Expect:");
  if(at && authorization)
    at = curl_slist_append(headers, auth);
  explicit_bzero(auth, sizeof(auth));
  if(at) {
    curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body ? t->body : "");
    curl_easy_setopt(h->easy, CURLOPT_HTTP_VERSION,
                     h->http1_now ? (long)CURL_HTTP_VERSION_1_1
                                  : (long)CURL_HTTP_VERSION_2TLS);
    h->ans.rc = curl_easy_perform(h->easy);
    curl_easy_getinfo(h->easy, CURLINFO_HTTP_VERSION, &h->version);
    /* An answer on HTTP/2 came over a connection whose ALPN chose h2,
     * whatever libcurl's informational lines said. */
    if(h->ans.rc == CURLE_OK && h->version == CURL_HTTP_VERSION_2_0)
      h->alpn_h2 = true;
  }
  curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(headers);
}

/* The type 3 answering h->challenge for the first user into out
 * ("NTLM <b64>"). Returns 0, or -1 with why in out. */
static int probe_h2_type3(const struct probe_config *cfg,
                          const struct probe_h2 *h, char *out, size_t len)
{
  const struct probe_user *u = &cfg->users[0];
  struct ntlm_bytes token = {NULL, 0}, type3 = {NULL, 0};
  struct ntlm_client_creds creds = {u->domain, u->user, u->password,
                                    "COMMUNICATOR", NTLM_RESPONSE_V2};
  struct ntlm_message challenge;
  enum ntlm_scheme scheme;
  enum ntlm_result nr;
  uint8_t cchal[8];
  char err[128] = "", *v = NULL;
  int result = -1;

  memset(&challenge, 0, sizeof(challenge));
  nr = ntlm_header_parse(h->challenge, &scheme, &token, err, sizeof(err));
  if(nr == NTLM_OK)
    nr = ntlm_decode(token.data, token.len, &challenge, err, sizeof(err));
  if(nr == NTLM_OK && challenge.type != NTLM_TYPE_CHALLENGE)
    nr = NTLM_ERR_TYPE;
  if(nr == NTLM_OK && getrandom(cchal, sizeof(cchal), 0) != sizeof(cchal))
    nr = NTLM_ERR_ARG;
  if(nr == NTLM_OK)
    nr = ntlm_client_authenticate(&creds, &challenge, cchal, 0, &type3, err,
                                  sizeof(err));
  if(nr == NTLM_OK)
    v = ntlm_header_format(NTLM_SCHEME_NTLM, type3.data, type3.len);
  if(v) {
    snprintf(out, len, "%s", v);
    explicit_bzero(v, strlen(v));
    result = 0;
  }
  else
    snprintf(out, len, "cannot answer the challenge: %s",
             err[0] ? err : ntlm_strerror(nr));
  free(v);
  ntlm_bytes_free(&type3);
  ntlm_bytes_free(&token);
  ntlm_message_free(&challenge);
  return result;
}

/* "HTTP/2", "HTTP/1.1", ... for a CURL_HTTP_VERSION_*. */
static const char *probe_h2_version(long version)
{
  switch(version) {
  case CURL_HTTP_VERSION_2_0:
    return "HTTP/2";
  case CURL_HTTP_VERSION_1_1:
    return "HTTP/1.1";
  case CURL_HTTP_VERSION_1_0:
    return "HTTP/1.0";
  default:
    return "no HTTP";
  }
}

/* What the last transfer failed with, for a line: libcurl's message. */
static const char *probe_h2_error(const struct probe_h2 *h)
{
  return h->errbuf[0] ? h->errbuf : curl_easy_strerror(h->ans.rc);
}

/* Sends the type 3 answering the challenge of the last answer, and says
 * in what (", then ...") how it was answered. */
static void probe_h2_finish(const struct probe_config *cfg,
                            const struct probe_target *t, struct probe_h2 *h,
                            char *what, size_t len)
{
  char type3[2200];

  if(probe_h2_type3(cfg, h, type3, sizeof(type3))) {
    snprintf(what, len, "; the probe could not answer it (%.160s)", type3);
    return;
  }
  probe_h2_post(h, t, type3, true);
  explicit_bzero(type3, sizeof(type3));
  if(h->ans.rc != CURLE_OK)
    snprintf(what, len, "; the type 3 with the body got no answer (%.200s)",
             probe_h2_error(h));
  else
    snprintf(what, len, "; the type 3 with the body got HTTP %ld on %s",
             h->ans.status, probe_h2_version(h->version));
}

/* The listener downgraded a request (HTTP_1_1_REQUIRED): the type 1 on
 * HTTP/1.1 unless answered holds its answer there already (libcurl
 * retried it), then the type 3. Judges r. */
static void probe_h2_downgraded(const struct probe_config *cfg,
                                const struct probe_target *t, const char *type1,
                                bool answered, struct probe_h2 *h,
                                struct probe_result *r)
{
  const char *who = h->retried ? "libcurl" : "the probe";
  char what[300] = "";

  h->http1_now = true;
  if(!answered) {
    /* A connection of its own, unless libcurl's retry has opened one. */
    curl_easy_setopt(h->easy, CURLOPT_FRESH_CONNECT, h->retried ? 0L : 1L);
    probe_h2_post(h, t, type1, false);
    curl_easy_setopt(h->easy, CURLOPT_FRESH_CONNECT, 0L);
  }
  if(h->ans.rc != CURLE_OK) {
    snprintf(r->line, sizeof(r->line),
             "the listener answered a request on an HTTP/2 stream with %s "
             "HTTP_1_1_REQUIRED, but the type 1 on HTTP/1.1 got no answer: "
             "%.200s",
             h->required, probe_h2_error(h));
    return;
  }
  if(h->ans.status == 401 && h->challenge[0])
    probe_h2_finish(cfg, t, h, what, sizeof(what));
  else
    snprintf(what, sizeof(what), "; the type 1 there got HTTP %ld",
             h->ans.status);
  r->verdict = PROBE_PASS;
  snprintf(r->line, sizeof(r->line),
           "the listener answered the %s on an HTTP/2 stream with %s "
           "HTTP_1_1_REQUIRED and %s retried it on HTTP/1.1, a connection "
           "of its own%s",
           h->downgraded_type1 ? "type 1" : "request without credentials",
           h->required, who, what);
}

/* The type 1 came back on HTTP/2: judges r by the answer, finishing the
 * handshake on the connection when it was challenged. */
static void probe_h2_through(const struct probe_config *cfg,
                             const struct probe_target *t, struct probe_h2 *h,
                             struct probe_result *r)
{
  char what[300] = "";

  if(h->ans.status != 401 || !h->challenge[0]) {
    snprintf(r->line, sizeof(r->line),
             "HTTP %ld on HTTP/2 to a type 1 without its body%s, where "
             "HTTP_1_1_REQUIRED or a 401 with a type 2 was expected",
             h->ans.status,
             h->ans.status == 401 ? " (a 401 without a challenge)" : "");
    return;
  }
  probe_h2_finish(cfg, t, h, what, sizeof(what));
  r->verdict = PROBE_FAIL;
  snprintf(r->line, sizeof(r->line),
           "NTLM let through on HTTP/2: the type 1 on an HTTP/2 stream got "
           "a 401 with a type 2%s, another stream; the listener, not the "
           "client, chose the upstream connection of each stream",
           what);
}

/* The check on h's handle: Communicator's request without credentials,
 * then its type 1 without the body, each judged as it comes. */
static void probe_h2_run(const struct probe_config *cfg,
                         const struct probe_target *t, struct probe_h2 *h,
                         struct probe_result *r)
{
  char type1[256];

  probe_h2_post(h, t, NULL, true);
  if(h->ans.rc != CURLE_OK && !h->required) {
    snprintf(r->line, sizeof(r->line), "no answer on HTTPS: %.200s%s",
             probe_h2_error(h),
             h->ans.rc == CURLE_PEER_FAILED_VERIFICATION
                 ? "; give the listener's CA with --ca-file"
                 : "");
    return;
  }
  if(!h->alpn_h2) {
    r->verdict = PROBE_PASS;
    snprintf(r->line, sizeof(r->line),
             "the listener refused h2 in ALPN (%s): NTLM stays on HTTP/1.1 "
             "connections",
             h->alpn_h1 ? "it chose http/1.1" : "it chose no protocol");
    return;
  }
  if(probe__type1(type1, sizeof(type1))) {
    snprintf(r->line, sizeof(r->line), "out of memory");
    return;
  }
  /* Whatever answered the request without credentials (a pooling
   * listener may have served it on a connection another client
   * authenticated), Communicator's next request is a type 1. */
  if(!h->required) {
    probe_h2_post(h, t, type1, false);
    h->downgraded_type1 = h->required != NULL;
  }
  if(h->required)
    probe_h2_downgraded(
        cfg, t, type1,
        h->downgraded_type1 && h->retried && h->ans.rc == CURLE_OK, h, r);
  else if(h->ans.rc != CURLE_OK)
    snprintf(r->line, sizeof(r->line),
             "the type 1 on an HTTP/2 stream got no answer: %.200s",
             probe_h2_error(h));
  else if(h->version != CURL_HTTP_VERSION_2_0)
    snprintf(r->line, sizeof(r->line),
             "the type 1 was answered on %s after the listener had agreed "
             "on h2, without HTTP_1_1_REQUIRED",
             probe_h2_version(h->version));
  else
    probe_h2_through(cfg, t, h, r);
}

/* Appends to a failed r's line what Exchange counted meanwhile. */
static void probe_h2_seen(struct probe_result *r)
{
  const struct probe_exchange *x = &r->exchange;
  size_t at = strlen(r->line);

  snprintf(r->line + at, sizeof(r->line) - at,
           " (Exchange: %" PRIu64 " requests on %" PRIu64
           " connection%s, %" PRIu64 " challenged%s%s)",
           x->requests, x->connections, x->connections == 1 ? "" : "s",
           x->challenges, x->identities[0][0] ? "; identity " : "",
           x->identities[0]);
}

void probe__http2(const struct probe_config *cfg, long timeout_ms,
                  struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[PROBE_CHECK_HTTP2];
  struct probe_status before, after;
  struct probe_target t;
  struct probe_h2 *h;

  if(strncasecmp(cfg->url, "https://", 8)) {
    r->verdict = PROBE_SKIP;
    snprintf(r->line, sizeof(r->line),
             "not run: %s is plain HTTP, and clients offer HTTP/2 only on "
             "TLS (ALPN h2), not in clear text (h2c); probe the https:// URL",
             cfg->url);
    return;
  }
  if(rep->offer == PROBE_OFFER_BASIC) {
    r->verdict = PROBE_SKIP;
    snprintf(r->line, sizeof(r->line),
             "not run: the listener offers Basic only");
    return;
  }
  r->verdict = PROBE_ERROR;
  h = calloc(1, sizeof(*h));
  if(!h || !(h->easy = curl_easy_init()) ||
     probe__curl_listener(h->easy, cfg, timeout_ms) != CURLE_OK) {
    snprintf(r->line, sizeof(r->line), "out of memory");
    if(h)
      curl_easy_cleanup(h->easy);
    free(h);
    return;
  }
  probe__target(cfg, &t);
  curl_easy_setopt(h->easy, CURLOPT_URL, t.url);
  curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->errbuf);
  curl_easy_setopt(h->easy, CURLOPT_VERBOSE, 1L);
  curl_easy_setopt(h->easy, CURLOPT_DEBUGFUNCTION, probe_h2_debug);
  curl_easy_setopt(h->easy, CURLOPT_DEBUGDATA, h);
  curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, probe_h2_header);
  curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, h);
  curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, probe__discard_cb);
  probe__status_read(cfg->status_url, timeout_ms, &before);
  probe_h2_run(cfg, &t, h, r);
  probe__status_read(cfg->status_url, timeout_ms, &after);
  probe__status_delta(&before, &after, &r->exchange);
  if(r->verdict == PROBE_FAIL && r->exchange.known)
    probe_h2_seen(r);
  probe__status_free(&before);
  probe__status_free(&after);
  curl_easy_cleanup(h->easy);
  explicit_bzero(h, sizeof(*h));
  free(h);
}
