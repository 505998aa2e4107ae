/*
 * source.c - what the sources share: an event's owned parts, the body's
 * hash and mailbox, endpoints, and what a file is from its first bytes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_int.h"

void an__msg_clear(struct an_msg *m)
{
  free(m->auth);
  memset(m, 0, sizeof(*m));
}

uint64_t an__hash(const void *data, size_t len)
{
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i;

  for(i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h ? h : 1;
}

/* True when c may be part of an e-mail address's local part or domain. */
static bool an__mail_char(int c)
{
  return isalnum(c) || c == '.' || c == '-' || c == '_' || c == '+' ||
         c == '\'';
}

void an__msg_body(struct an_msg *m, const char *body, size_t len)
{
  const char *at, *end = body + len;

  m->body_hash = len ? an__hash(body, len) : 0;
  m->mailbox[0] = '\0';
  /* The first "local@domain" of the body: EWS names the mailbox in
   * <t:Address>, Autodiscover in <EMailAddress>. */
  for(at = memchr(body, '@', len); at; at = memchr(at + 1, '@', end - at - 1)) {
    const char *a = at, *b = at + 1;

    while(a > body && an__mail_char((unsigned char)a[-1]))
      a--;
    while(b < end && an__mail_char((unsigned char)*b))
      b++;
    if(a < at && b > at + 1 && memchr(at + 1, '.', (size_t)(b - at - 1)) &&
       (size_t)(b - a) < sizeof(m->mailbox)) {
      memcpy(m->mailbox, a, (size_t)(b - a));
      m->mailbox[b - a] = '\0';
      return;
    }
    if(at + 1 >= end)
      break;
  }
}

void an__host(const char *endpoint, char *out, size_t len)
{
  const char *colon = strrchr(endpoint, ':');
  size_t n = colon ? (size_t)(colon - endpoint) : strlen(endpoint);

  if(n && endpoint[0] == '[' && endpoint[n - 1] == ']') {
    endpoint++;
    n -= 2;
  }
  snprintf(out, len, "%.*s", (int)n, endpoint);
}

enum an_format an__sniff(const char *path, char *err, size_t errlen)
{
  static const unsigned char pcap_magics[][4] = {{0xd4, 0xc3, 0xb2, 0xa1},
                                                 {0xa1, 0xb2, 0xc3, 0xd4},
                                                 {0x4d, 0x3c, 0xb2, 0xa1},
                                                 {0xa1, 0xb2, 0x3c, 0x4d}};
  static const unsigned char pcapng_magic[4] = {0x0a, 0x0d, 0x0d, 0x0a};
  unsigned char head[64];
  size_t n, i;
  FILE *f = fopen(path, "rb");

  if(!f) {
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    return AN_FORMAT_UNKNOWN;
  }
  n = fread(head, 1, sizeof(head), f);
  fclose(f);
  if(!n) {
    snprintf(err, errlen, "%s: the file is empty", path);
    return AN_FORMAT_UNKNOWN;
  }
  for(i = 0; n >= 4 && i < sizeof(pcap_magics) / sizeof(pcap_magics[0]); i++)
    if(!memcmp(head, pcap_magics[i], 4))
      return AN_FORMAT_PCAP;
  if(n >= 4 && !memcmp(head, pcapng_magic, 4))
    return AN_FORMAT_PCAPNG;
  /* A HAR is JSON: after blanks (and a UTF-8 byte order mark), a '{'. */
  i = n >= 3 && head[0] == 0xef && head[1] == 0xbb && head[2] == 0xbf ? 3 : 0;
  while(i < n && isspace(head[i]))
    i++;
  if(i < n && head[i] == '{')
    return AN_FORMAT_HAR;
  snprintf(err, errlen,
           "%s: neither a capture (pcap, pcapng) nor a HAR (JSON): it starts "
           "with the bytes %02x%s%02x%s%02x%s%02x",
           path, head[0], n > 1 ? " " : "", n > 1 ? head[1] : 0,
           n > 2 ? " " : "", n > 2 ? head[2] : 0, n > 3 ? " " : "",
           n > 3 ? head[3] : 0);
  return AN_FORMAT_UNKNOWN;
}
