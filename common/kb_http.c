/*
 * kb_http.c - request-head checks: framing (RFC 9112 section 6), field
 * syntax (RFC 9110 section 5.5), Host (RFC 9112 section 3.2) and the
 * request target's forms (RFC 9112 section 3.2). See kb_http.h.
 */
#include "common/kb_http.h"

#include <string.h>
#include <strings.h>

/* Indexed by verdict. 501 for a coding the server does not implement,
 * 400 for everything else; every framing fault closes, because the
 * server can no longer tell where the next request starts. */
static const struct kb_http_rule kb_http_rules[KB_HTTP_VERDICT_COUNT] = {
    {KB_HTTP_OK, 0, false, "a valid request head"},
    {KB_HTTP_BAD_FIELD_NAME, 400, true,
     "a header name that is not a token (a blank before the colon, a space "
     "or a control character in it)"},
    {KB_HTTP_BAD_FIELD_VALUE, 400, true,
     "a header value with a CR, LF, NUL or another control character"},
    {KB_HTTP_BAD_LENGTH, 400, true, "a Content-Length that is not a number"},
    {KB_HTTP_CONFLICTING_LENGTHS, 400, true,
     "two different Content-Length values"},
    {KB_HTTP_LENGTH_AND_CODING, 400, true,
     "both Content-Length and Transfer-Encoding"},
    {KB_HTTP_CHUNKED_NOT_FINAL, 400, true,
     "a Transfer-Encoding whose last coding is not chunked, or chunked twice"},
    {KB_HTTP_UNKNOWN_CODING, 501, true, "a transfer coding other than chunked"},
    {KB_HTTP_CODING_IN_HTTP10, 400, true,
     "a Transfer-Encoding in an HTTP/1.0 request"},
    {KB_HTTP_NO_HOST, 400, true, "an HTTP/1.1 request without Host"},
    {KB_HTTP_MANY_HOSTS, 400, true, "more than one Host"},
    {KB_HTTP_BAD_HOST, 400, true, "a Host that is not a host[:port]"},
    {KB_HTTP_BAD_TARGET, 400, true,
     "a request target that is neither a path nor an absolute http URL"},
};

const struct kb_http_rule *kb_http_rule(enum kb_http_verdict v)
{
  if((unsigned)v >= KB_HTTP_VERDICT_COUNT)
    v = KB_HTTP_BAD_TARGET;
  return &kb_http_rules[v];
}

/* tchar of RFC 9110 5.6.2. */
static bool kb_http_tchar(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool kb_http_token(const char *s, size_t n)
{
  size_t i;
  if(!n)
    return false;
  for(i = 0; i < n; i++)
    if(!kb_http_tchar((unsigned char)s[i]))
      return false;
  return true;
}

/* field-value of RFC 9110 5.5: VCHAR, obs-text, SP and HTAB. */
static bool kb_http_value_ok(const char *s, size_t n)
{
  size_t i;
  for(i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if((c < 0x20 && c != '\t') || c == 0x7f)
      return false;
  }
  return true;
}

static bool kb_http_is(const struct kb_http_field *f, const char *name)
{
  return f->name_len == strlen(name) &&
         !strncasecmp(f->name, name, f->name_len);
}

/* 1*DIGIT, at most 19 digits (fits uint64_t). */
static bool kb_http_length(const char *s, size_t n, uint64_t *out)
{
  uint64_t v = 0;
  size_t i;
  if(!n || n > 19)
    return false;
  for(i = 0; i < n; i++) {
    if(s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *out = v;
  return true;
}

/* uri-host [":" port] of RFC 3986, loosely: reg-name or IP-literal
 * characters, then digits after the last colon outside brackets. Empty
 * is allowed (RFC 9110 7.2). */
static bool kb_http_host_ok(const char *s, size_t n)
{
  size_t i;
  bool bracket = false;
  for(i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if(c == '[' && i == 0)
      bracket = true;
    else if(c == ']' && bracket)
      bracket = false;
    else if(c == ':') {
      if(bracket)
        continue;
      for(i++; i < n; i++)
        if(s[i] < '0' || s[i] > '9')
          return false;
      return true;
    }
    else if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("-._~!$&'()*+,;=%", c)))
      return false;
  }
  return !bracket;
}

/* Trims OWS around [*s, *s + *n). */
static void kb_http_trim(const char **s, size_t *n)
{
  while(*n && (**s == ' ' || **s == '\t')) {
    (*s)++;
    (*n)--;
  }
  while(*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
    (*n)--;
}

/* Takes the codings of one Transfer-Encoding line: chunked must be the
 * last one of all lines and appear once; any other is unknown to us. */
static void kb_http_codings(struct kb_http_reader *r, const char *p, size_t len)
{
  const char *end = p + len;

  r->coding = true;
  while(p <= end) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    const char *semi = memchr(p, ';', (size_t)(stop - p));
    const char *c = p;
    size_t n = (size_t)((semi ? semi : stop) - p);
    kb_http_trim(&c, &n);
    if(n) { /* empty list elements are allowed (RFC 9110 5.6.1) */
      bool is_chunked = n == 7 && !strncasecmp(c, "chunked", 7);
      if(is_chunked && r->head.chunked) {
        r->verdict = KB_HTTP_CHUNKED_NOT_FINAL;
        return;
      }
      r->head.chunked |= is_chunked;
      r->other_coding |= !is_chunked;
      r->last_chunked = is_chunked;
    }
    if(!comma)
      break;
    p = comma + 1;
  }
}

/* The origin-form path of target: target itself, or what follows the
 * authority of an absolute http(s) URL ("/" when nothing does). NULL when
 * target is neither. */
static const char *kb_http_path(const char *target)
{
  const char *p;
  size_t i;

  if(!target || !*target)
    return NULL;
  for(i = 0; target[i]; i++)
    if((unsigned char)target[i] <= 0x20 || target[i] == 0x7f)
      return NULL;
  if(target[0] == '/')
    return target;
  if(!strncasecmp(target, "http://", 7))
    p = target + 7;
  else if(!strncasecmp(target, "https://", 8))
    p = target + 8;
  else
    return NULL;
  if(*p == '/' || *p == '?' || !*p)
    return NULL; /* no authority */
  p += strcspn(p, "/?#");
  if(*p == '/')
    return p;
  return *p ? NULL : "/";
}

void kb_http_begin(struct kb_http_reader *r)
{
  memset(r, 0, sizeof(*r));
}

void kb_http_field(struct kb_http_reader *r, const char *name, size_t name_len,
                   const char *value, size_t value_len)
{
  struct kb_http_field f = {name, name_len, value, value_len};
  uint64_t n = 0;

  if(r->verdict != KB_HTTP_OK)
    return;
  if(!kb_http_token(name, name_len))
    r->verdict = KB_HTTP_BAD_FIELD_NAME;
  else if(!kb_http_value_ok(value, value_len))
    r->verdict = KB_HTTP_BAD_FIELD_VALUE;
  else if(kb_http_is(&f, "Content-Length")) {
    if(!kb_http_length(value, value_len, &n))
      r->verdict = KB_HTTP_BAD_LENGTH;
    else if(r->head.has_length && n != r->head.length)
      r->verdict = KB_HTTP_CONFLICTING_LENGTHS;
    r->head.has_length = true;
    r->head.length = n;
  }
  else if(kb_http_is(&f, "Transfer-Encoding"))
    kb_http_codings(r, value, value_len);
  else if(kb_http_is(&f, "Host")) {
    if(++r->hosts > 1)
      r->verdict = KB_HTTP_MANY_HOSTS;
    else if(!kb_http_host_ok(value, value_len))
      r->verdict = KB_HTTP_BAD_HOST;
  }
}

enum kb_http_verdict kb_http_end(struct kb_http_reader *r, const char *version,
                                 const char *target, struct kb_http_head *head)
{
  bool http10 = version && !strcmp(version, "HTTP/1.0");

  if(r->verdict != KB_HTTP_OK)
    return r->verdict;
  if(r->coding) {
    if(http10)
      return r->verdict = KB_HTTP_CODING_IN_HTTP10;
    if(r->head.has_length)
      return r->verdict = KB_HTTP_LENGTH_AND_CODING;
    if(!r->last_chunked)
      return r->verdict = KB_HTTP_CHUNKED_NOT_FINAL;
    if(r->other_coding)
      return r->verdict = KB_HTTP_UNKNOWN_CODING;
  }
  if(!r->hosts && !http10)
    return r->verdict = KB_HTTP_NO_HOST;
  r->head.path = kb_http_path(target);
  if(!r->head.path)
    return r->verdict = KB_HTTP_BAD_TARGET;
  if(head)
    *head = r->head;
  return KB_HTTP_OK;
}

enum kb_http_verdict kb_http_check(const char *version, const char *target,
                                   const struct kb_http_field *fields,
                                   size_t nfields, struct kb_http_head *head)
{
  struct kb_http_reader r;
  size_t i;

  kb_http_begin(&r);
  for(i = 0; i < nfields; i++)
    kb_http_field(&r, fields[i].name, fields[i].name_len, fields[i].value,
                  fields[i].value_len);
  return kb_http_end(&r, version, target, head);
}
