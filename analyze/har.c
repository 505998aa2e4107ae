/*
 * har.c - a HAR 1.2 file (what a browser's developer tools export) read
 * with jansson into the same events a capture gives: each entry's request
 * at its start and its answer when it completed, on the connection the
 * entry names. A HAR is one JSON document, so it is read whole; it holds
 * the client's side of the listener only.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "analyze_int.h"

struct an_har {
  struct an_source base;
  struct an_msg *msgs; /* in time order */
  size_t n, next;
};

/* Reads an ISO 8601 time ("2024-05-01T10:00:00.123Z", "+02:00" offsets).
 * Returns 0 with seconds since the epoch in *t, or -1. */
static int an_har_time(const char *s, double *t)
{
  struct tm tm;
  double sec;
  int used = 0, oh = 0, om = 0;
  char sign;

  memset(&tm, 0, sizeof(tm));
  if(!s || sscanf(s, "%d-%d-%dT%d:%d:%lf%n", &tm.tm_year, &tm.tm_mon,
                  &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &sec, &used) != 6)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  tm.tm_sec = 0;
  *t = (double)timegm(&tm) + sec;
  s += used;
  if(sscanf(s, "%c%d:%d", &sign, &oh, &om) == 3 && (sign == '+' || sign == '-'))
    *t -= (sign == '+' ? 1 : -1) * (oh * 3600.0 + om * 60.0);
  return 0;
}

/* The value of header name in a HAR headers array, or NULL. */
static const char *an_har_header(json_t *headers, const char *name, size_t nth)
{
  size_t i, seen = 0;
  json_t *h;

  json_array_foreach(headers, i, h)
  {
    const char *n = json_string_value(json_object_get(h, "name"));
    if(n && !strcasecmp(n, name) && seen++ == nth)
      return json_string_value(json_object_get(h, "value"));
  }
  return NULL;
}

/* "host:port" of an entry's server: serverIPAddress (else the URL's host)
 * and the URL's port (else the scheme's). */
static void an_har_server(json_t *entry, const char *url, char *out, size_t len)
{
  const char *ip = json_string_value(json_object_get(entry, "serverIPAddress"));
  const char *host = strstr(url, "://");
  char name[256] = "", port[8];
  size_t n;

  snprintf(port, sizeof(port), "%s", !strncmp(url, "https", 5) ? "443" : "80");
  host = host ? host + 3 : url;
  n = strcspn(host, "/?#");
  /* Credentials in the URL ("user:password@host") are not the host. */
  if(memchr(host, '@', n)) {
    const char *at = host;
    while(memchr(at, '@', n - (size_t)(at - host)))
      at = (const char *)memchr(at, '@', n - (size_t)(at - host)) + 1;
    n -= (size_t)(at - host);
    host = at;
  }
  snprintf(name, sizeof(name), "%.*s", (int)n, host);
  if(name[0] == '[') {
    char *close = strchr(name, ']');
    if(close && close[1] == ':')
      snprintf(port, sizeof(port), "%.7s", close + 2);
    if(close)
      close[1] = '\0';
  }
  else if(strchr(name, ':')) {
    snprintf(port, sizeof(port), "%.7s", strchr(name, ':') + 1);
    *strchr(name, ':') = '\0';
  }
  if(ip && ip[0] == '[')
    snprintf(out, len, "%s:%s", ip, port);
  else if(ip && strchr(ip, ':'))
    snprintf(out, len, "[%s]:%s", ip, port); /* IPv6, as tshark's */
  else if(ip && ip[0])
    snprintf(out, len, "%s:%s", ip, port);
  else
    snprintf(out, len, "%s:%s", name, port);
}

/* The path of a URL ("/EWS/Exchange.asmx?x"). */
static const char *an_har_path(const char *url)
{
  const char *host = strstr(url, "://");
  const char *slash = host ? strchr(host + 3, '/') : url;

  return slash ? slash : "/";
}

/* Sets the body fields of m from a HAR message: its Content-Length, else
 * bodySize, else the text's length. */
static void an_har_body(struct an_msg *m, json_t *msg, json_t *headers,
                        const char *text)
{
  const char *cl = an_har_header(headers, "Content-Length", 0);
  json_int_t size = json_integer_value(json_object_get(msg, "bodySize"));
  size_t tlen = text ? strlen(text) : 0;

  if(cl)
    m->body_len = strtoull(cl, NULL, 10);
  else if(json_is_integer(json_object_get(msg, "bodySize")) && size >= 0)
    m->body_len = (uint64_t)size;
  else
    m->body_len = tlen;
  if(text)
    an__msg_body(m, text, tlen);
}

/* Turns entry index i into its request (and answer) in msgs. Returns how
 * many it added, or -1 with one line in err. */
static int an_har_entry(struct an_har *h, json_t *entry, size_t i, char *err,
                        size_t errlen)
{
  json_t *req = json_object_get(entry, "request");
  json_t *resp = json_object_get(entry, "response");
  const char *url = json_string_value(json_object_get(req, "url"));
  const char *version = json_string_value(json_object_get(req, "httpVersion"));
  const char *conn = json_string_value(json_object_get(entry, "connection"));
  json_t *rh = json_object_get(req, "headers");
  struct an_msg *m = &h->msgs[h->n], *a;
  const char *auth;
  double t, took = json_number_value(json_object_get(entry, "time"));
  size_t k;
  bool h2;

  if(!url ||
     an_har_time(json_string_value(json_object_get(entry, "startedDateTime")),
                 &t)) {
    snprintf(err, errlen,
             "%s: entry %zu is not a HAR 1.2 entry (no request.url or "
             "startedDateTime)",
             h->base.path, i + 1);
    return -1;
  }
  h2 = version &&
       (!strcasecmp(version, "h2") || !strncasecmp(version, "HTTP/2", 6) ||
        !strcasecmp(version, "h3"));
  memset(m, 0, sizeof(*m));
  m->kind = h2 ? AN_H2 : AN_REQUEST;
  m->file = h->base.file;
  m->frame = i + 1;
  m->t = t;
  /* The connection the browser names (Chromium: its socket id), else one
   * connection per entry. */
  m->stream = conn ? an__hash(conn, strlen(conn)) : (uint64_t)~i;
  snprintf(m->src, sizeof(m->src), "browser:%.40s", conn ? conn : "entry");
  an_har_server(entry, url, m->dst, sizeof(m->dst));
  snprintf(m->method, sizeof(m->method), "%s",
           json_string_value(json_object_get(req, "method"))
               ? json_string_value(json_object_get(req, "method"))
               : "");
  snprintf(m->path, sizeof(m->path), "%s", an_har_path(url));
  snprintf(m->version, sizeof(m->version), "%s", version ? version : "");
  auth = an_har_header(rh, "Authorization", 0);
  if(auth)
    m->auth = strndup(auth, AN_AUTH);
  an_har_body(m, req, rh,
              json_string_value(
                  json_object_get(json_object_get(req, "postData"), "text")));
  if(!json_is_object(resp) || h2) {
    /* HTTP/2: the answer's offers on the same event. */
    for(k = 0; h2 && k < AN_MAX_CHALLENGES; k++) {
      const char *c = an_har_header(json_object_get(resp, "headers"),
                                    "WWW-Authenticate", k);
      if(!c)
        break;
      snprintf(m->challenges[m->nchallenges++], AN_CHALLENGE, "%s", c);
    }
    h->n++;
    return 1;
  }
  /* Chromium says status 0 for a request that got no answer. */
  if(json_integer_value(json_object_get(resp, "status")) <= 0) {
    h->n++;
    return 1;
  }
  a = &h->msgs[h->n + 1];
  *a = *m;
  a->auth = NULL;
  a->kind = AN_RESPONSE;
  a->t = t + (took > 0 ? took / 1000.0 : 0);
  snprintf(a->src, sizeof(a->src), "%s", m->dst);
  snprintf(a->dst, sizeof(a->dst), "%s", m->src);
  a->status = (int)json_integer_value(json_object_get(resp, "status"));
  a->mailbox[0] = '\0';
  a->body_hash = 0;
  for(k = 0; k < AN_MAX_CHALLENGES; k++) {
    const char *c =
        an_har_header(json_object_get(resp, "headers"), "WWW-Authenticate", k);
    if(!c)
      break;
    snprintf(a->challenges[a->nchallenges++], AN_CHALLENGE, "%s", c);
  }
  an_har_body(a, resp, json_object_get(resp, "headers"),
              json_string_value(
                  json_object_get(json_object_get(resp, "content"), "text")));
  h->n += 2;
  return 2;
}

/* Orders events by time; the same time keeps the file's order. */
static int an_har_cmp(const void *pa, const void *pb)
{
  const struct an_msg *a = pa, *b = pb;

  if(a->t != b->t)
    return a->t < b->t ? -1 : 1;
  if(a->frame != b->frame)
    return a->frame < b->frame ? -1 : 1;
  return (int)a->kind - (int)b->kind;
}

static int an_har_next(struct an_source *s, struct an_msg *m, char *err,
                       size_t errlen)
{
  struct an_har *h = (struct an_har *)s;

  (void)err;
  (void)errlen;
  an__msg_clear(m);
  if(h->next == h->n)
    return 0;
  *m = h->msgs[h->next];
  memset(&h->msgs[h->next++], 0, sizeof(*m));
  s->http++;
  return 1;
}

static int an_har_close(struct an_source *s, char *err, size_t errlen)
{
  struct an_har *h = (struct an_har *)s;
  size_t i;

  (void)err;
  (void)errlen;
  for(i = 0; i < h->n; i++)
    an__msg_clear(&h->msgs[i]);
  free(h->msgs);
  free(h);
  return 0;
}

int an__har_open(unsigned file, const char *path, struct an_source **out,
                 char *err, size_t errlen)
{
  struct an_har *h = calloc(1, sizeof(*h));
  json_error_t jerr;
  json_t *doc = NULL, *entries, *entry;
  size_t i;

  if(!h) {
    snprintf(err, errlen, "%s: out of memory", path);
    return -1;
  }
  h->base.next = an_har_next;
  h->base.close = an_har_close;
  h->base.file = file;
  h->base.path = path;
  doc = json_load_file(path, 0, &jerr);
  if(!doc) {
    snprintf(err, errlen, "%s: a HAR that is not JSON: %s (line %d, column %d)",
             path, jerr.text, jerr.line, jerr.column);
    goto error;
  }
  entries = json_object_get(json_object_get(doc, "log"), "entries");
  if(!json_is_array(entries)) {
    snprintf(err, errlen,
             "%s: JSON, but not a HAR: no log.entries array (HAR 1.2)", path);
    goto error;
  }
  h->msgs = calloc(2 * json_array_size(entries) + 1, sizeof(*h->msgs));
  if(!h->msgs) {
    snprintf(err, errlen, "%s: out of memory", path);
    goto error;
  }
  json_array_foreach(entries, i, entry)
  {
    if(an_har_entry(h, entry, i, err, errlen) < 0)
      goto error;
  }
  h->base.frames = json_array_size(entries);
  qsort(h->msgs, h->n, sizeof(*h->msgs), an_har_cmp);
  json_decref(doc);
  *out = &h->base;
  return 0;

error:
  json_decref(doc);
  an_har_close(&h->base, NULL, 0);
  return -1;
}
