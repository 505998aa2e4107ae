/*
 * html_escape.c - escaping for the HTML report and serve's page: every
 * recorded byte reaches a page as text, never as markup.
 */
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#include "html_int.h"

/* Returns the length of the valid UTF-8 sequence at p (at most len bytes)
 * for a code point HTML may carry as text, or 0 when it is not one. */
static size_t html__utf8_len(const unsigned char *p, size_t len)
{
  uint32_t cp;
  size_t n, i;

  if(p[0] < 0xc2 || p[0] > 0xf4)
    return 0;
  n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
  if(len < n)
    return 0;
  cp = p[0] & (0xff >> (n + 1));
  for(i = 1; i < n; i++) {
    if((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
     (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
    return 0; /* overlong, out of range, a surrogate, or a C1 control */
  return n;
}

void html_escape(FILE *out, const char *text, size_t len)
{
  const unsigned char *p = (const unsigned char *)text;
  size_t i = 0;

  while(i < len) {
    unsigned char ch = p[i];
    size_t n;

    switch(ch) {
    case '&':
      fputs("&amp;", out);
      break;
    case '<':
      fputs("&lt;", out);
      break;
    case '>':
      fputs("&gt;", out);
      break;
    case '"':
      fputs("&quot;", out);
      break;
    case '\'':
      fputs("&#39;", out);
      break;
    case '\n':
    case '\t':
      fputc(ch, out);
      break;
    default:
      if(ch >= 0x20 && ch < 0x7f)
        fputc(ch, out);
      else if(ch >= 0x80 && (n = html__utf8_len(p + i, len - i)) > 0) {
        fwrite(p + i, 1, n, out);
        i += n;
        continue;
      }
      else
        fprintf(out, "\\x%02x", ch);
    }
    i++;
  }
}

/* html_escape of a NUL-terminated string; NULL writes nothing. */
void html__esc(FILE *out, const char *text)
{
  if(text)
    html_escape(out, text, strlen(text));
}

/* Writes printf-formatted text, escaped. */
void html__escf(FILE *out, const char *fmt, ...)
{
  char line[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  html__esc(out, line);
}
