/*
 * kb_range.c - splits "A..B" and "A..B/STEP" into their parts and checks
 * the shape (kb_range.h); the values are the callers'.
 */
#include "common/kb_range.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Writes one line into err (when there is one). Returns -1. */
static int kb_range__fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int kb_range__fail(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if(err && errlen) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Checks one part, text[0..len), named name in errors, and copies it into
 * out (KB_RANGE_PART bytes). Returns 0, or -1 with why in err. */
static int kb_range__part(const char *name, const char *text, size_t len,
                          char *out, char *err, size_t errlen)
{
  size_t i;

  if(!len)
    return kb_range__fail(err, errlen, "%s is empty", name);
  for(i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)text[i];
    if(ch == ' ' || ch == '\t')
      return kb_range__fail(err, errlen, "%s has a space in it", name);
    if(ch < 0x20 || ch == 0x7f)
      return kb_range__fail(err, errlen, "%s has a control character in it",
                            name);
  }
  if(len >= KB_RANGE_PART)
    return kb_range__fail(err, errlen, "%s is longer than %d characters", name,
                          KB_RANGE_PART - 1);
  memcpy(out, text, len);
  out[len] = '\0';
  return 0;
}

int kb_range_split(const char *text, unsigned form, struct kb_range *r,
                   char *err, size_t errlen)
{
  struct kb_range out;
  const char *dots, *high, *slash;
  size_t highlen;

  memset(&out, 0, sizeof(out));
  if(!text || !*text)
    return kb_range__fail(err, errlen, "it is empty");
  if(strstr(text, "..."))
    return kb_range__fail(err, errlen,
                          "three dots in a row: write LOW..HIGH with two "
                          "(0..0.5, not 0...5)");
  dots = strstr(text, "..");
  if(!dots) {
    if(!(form & KB_RANGE_SINGLE))
      return kb_range__fail(err, errlen, "no '..' between LOW and HIGH");
    if(strchr(text, '/'))
      return kb_range__fail(err, errlen, "one value takes no /STEP");
    if(kb_range__part("the value", text, strlen(text), out.lo, err, errlen))
      return -1;
    memcpy(out.hi, out.lo, sizeof(out.hi));
    out.single = true;
    *r = out;
    return 0;
  }
  if(strstr(dots + 2, ".."))
    return kb_range__fail(err, errlen, "more than one '..'");
  high = dots + 2;
  slash = strchr(text, '/');
  if(slash && slash < dots)
    return kb_range__fail(err, errlen, "LOW has a '/' in it");
  if(slash && !(form & KB_RANGE_STEP))
    return kb_range__fail(err, errlen, "a /STEP is not taken here");
  if(!slash && (form & KB_RANGE_STEP))
    return kb_range__fail(err, errlen, "no /STEP after HIGH");
  highlen = slash ? (size_t)(slash - high) : strlen(high);
  if(kb_range__part("LOW", text, (size_t)(dots - text), out.lo, err, errlen) ||
     kb_range__part("HIGH", high, highlen, out.hi, err, errlen))
    return -1;
  if(slash) {
    if(strchr(slash + 1, '/'))
      return kb_range__fail(err, errlen, "STEP has a '/' in it");
    if(kb_range__part("STEP", slash + 1, strlen(slash + 1), out.step, err,
                      errlen))
      return -1;
  }
  *r = out;
  return 0;
}
