/*
 * kb_wire.c - HTTP/1.1 messages in recorded bytes: framing (RFC 9112
 * section 6.3), the start line and field values; see kb_wire.h.
 */
#include "common/kb_wire.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Returns the first occurrence of needle (nlen bytes) in data (len bytes),
 * or NULL. (memmem is a GNU extension; the build is plain POSIX.) */
static const char *kb_wire_find(const char *data, size_t len,
                                const char *needle, size_t nlen)
{
  const char *p = data, *end = data + len;

  while(nlen && (size_t)(end - p) >= nlen) {
    p = memchr(p, needle[0], (size_t)(end - p) - nlen + 1);
    if(!p)
      return NULL;
    if(!memcmp(p, needle, nlen))
      return p;
    p++;
  }
  return NULL;
}

static bool kb_wire_blank(char c)
{
  return c == ' ' || c == '\t';
}

const char *kb_wire_field(const char *block, size_t len, const char *name,
                          size_t *at, size_t *vlen)
{
  size_t n = strlen(name);

  while(*at < len) {
    const char *line = block + *at;
    const char *eol = memchr(line, '\n', len - *at);
    size_t l = eol ? (size_t)(eol - line) : len - *at;
    const char *v, *end;

    *at += l + (eol ? 1 : 0);
    if(l <= n || line[n] != ':' || strncasecmp(line, name, n))
      continue;
    v = line + n + 1;
    end = line + l;
    if(end > v && end[-1] == '\r')
      end--;
    while(v < end && kb_wire_blank(*v))
      v++;
    while(end > v && kb_wire_blank(end[-1]))
      end--;
    *vlen = (size_t)(end - v);
    return v;
  }
  return NULL;
}

const char *kb_wire_field_first(const char *block, size_t len, const char *name,
                                size_t *vlen)
{
  size_t at = 0;

  return kb_wire_field(block, len, name, &at, vlen);
}

/* Reads a request line, "METHOD SP TARGET SP VERSION", into m. */
static void kb_wire_request_line(const char *line, size_t len,
                                 struct kb_wire_msg *m)
{
  const char *sp = memchr(line, ' ', len);
  const char *sp2 =
      sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - line)) : NULL;

  if(!sp || !sp2 || sp == line || sp2 == sp + 1)
    return;
  m->method = line;
  m->method_len = (size_t)(sp - line);
  m->target = sp + 1;
  m->target_len = (size_t)(sp2 - sp - 1);
}

/* Reads a status line, "HTTP/1.x NNN ...", into m. */
static void kb_wire_status_line(const char *line, size_t len,
                                struct kb_wire_msg *m)
{
  if(len < 12 || strncmp(line, "HTTP/1.", 7) || line[8] != ' ' ||
     !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
     !isdigit((unsigned char)line[11]) || (len > 12 && line[12] != ' '))
    return;
  m->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

/* True when the last transfer coding of the Transfer-Encoding value v is
 * chunked. */
static bool kb_wire_last_chunked(const char *v, size_t vlen)
{
  const char *comma;

  while((comma = memchr(v, ',', vlen)) != NULL) {
    vlen -= (size_t)(comma + 1 - v);
    v = comma + 1;
  }
  while(vlen && kb_wire_blank(*v)) {
    v++;
    vlen--;
  }
  while(vlen && kb_wire_blank(v[vlen - 1]))
    vlen--;
  return vlen == 7 && !strncasecmp(v, "chunked", 7);
}

/* Reads the chunked body at p (len bytes). Returns its length on the wire
 * with the data's in *data, or 0 when the bytes end before its last chunk
 * and trailers do (or a chunk size is no hex number). */
static size_t kb_wire_chunked(const uint8_t *p, size_t len, size_t *data)
{
  size_t at = 0;

  *data = 0;
  for(;;) {
    const uint8_t *eol = at < len ? memchr(p + at, '\n', len - at) : NULL;
    uint64_t size = 0;
    size_t i = at;

    if(!eol || !isxdigit(p[at]))
      return 0;
    for(; i < (size_t)(eol - p) && isxdigit(p[i]); i++) {
      if(size > (UINT64_MAX >> 4))
        return 0;
      size = size * 16 + (uint64_t)(isdigit(p[i]) ? p[i] - '0'
                                                  : (tolower(p[i]) - 'a' + 10));
    }
    at = (size_t)(eol - p) + 1;
    if(!size) {
      /* Trailer fields, then the blank line. */
      for(;;) {
        eol = at < len ? memchr(p + at, '\n', len - at) : NULL;
        if(!eol)
          return 0;
        if(eol == p + at || (eol == p + at + 1 && p[at] == '\r'))
          return (size_t)(eol - p) + 1;
        at = (size_t)(eol - p) + 1;
      }
    }
    if(size > len - at)
      return 0;
    at += (size_t)size;
    *data += (size_t)size;
    if(at < len && p[at] == '\r')
      at++;
    if(at < len && p[at] == '\n')
      at++;
  }
}

/* Reads a whole Content-Length value (digits only). Returns 0, or -1. */
static int kb_wire_length(const char *v, size_t vlen, uint64_t *out)
{
  size_t i;

  if(!vlen)
    return -1;
  *out = 0;
  for(i = 0; i < vlen; i++) {
    if(!isdigit((unsigned char)v[i]) || *out > (UINT64_MAX - 9) / 10)
      return -1;
    *out = *out * 10 + (uint64_t)(v[i] - '0');
  }
  return 0;
}

/* The body's framing once the head is read: fills m->len, m->body,
 * m->complete and m->chunked. */
static void kb_wire_body(const uint8_t *p, size_t len, enum kb_wire_dir dir,
                         struct kb_wire_msg *m)
{
  const char *head = (const char *)p + m->fields;
  size_t hlen = m->head - m->fields, avail = len - m->head, vlen, wire;
  const char *v;
  uint64_t n;

  m->len = m->head;
  m->complete = true;
  if(dir == KB_WIRE_RESPONSE && ((m->status >= 100 && m->status < 200) ||
                                 m->status == 204 || m->status == 304))
    return;
  v = kb_wire_field_first(head, hlen, "Transfer-Encoding", &vlen);
  if(v && kb_wire_last_chunked(v, vlen)) {
    m->chunked = true;
    wire = kb_wire_chunked(p + m->head, avail, &m->body);
    m->complete = wire != 0;
    m->len += wire ? wire : avail;
    return;
  }
  v = kb_wire_field_first(head, hlen, "Content-Length", &vlen);
  if(v) {
    if(kb_wire_length(v, vlen, &n) || n > avail) {
      m->complete = false;
      m->len = len;
      m->body = avail;
      return;
    }
    m->len += (size_t)n;
    m->body = (size_t)n;
    return;
  }
  /* No length: a request has no body, a response runs to the close. */
  if(dir == KB_WIRE_RESPONSE) {
    m->len = len;
    m->body = avail;
  }
}

size_t kb_wire_message(const uint8_t *p, size_t len, enum kb_wire_dir dir,
                       struct kb_wire_msg *m)
{
  const char *s = (const char *)p;
  const char *blank = kb_wire_find(s, len, "\r\n\r\n", 4);
  const char *eol;

  memset(m, 0, sizeof(*m));
  if(!blank) {
    m->head = m->len = m->fields = len;
    return len;
  }
  m->whole_head = true;
  m->head = (size_t)(blank - s) + 4;
  eol = memchr(s, '\n', m->head);
  m->fields = (size_t)(eol - s) + 1;
  if(dir == KB_WIRE_REQUEST)
    kb_wire_request_line(s, (size_t)(eol - s) - (eol > s && eol[-1] == '\r'),
                         m);
  else
    kb_wire_status_line(s, (size_t)(eol - s) - (eol > s && eol[-1] == '\r'), m);
  kb_wire_body(p, len, dir, m);
  return m->len;
}
