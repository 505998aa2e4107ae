/*
 * kb_buf.c - a growable byte buffer with a hard size cap.
 */
#include "common/kb_buf.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kb_buf_init(struct kb_buf *buf, size_t cap)
{
  buf->data = NULL;
  buf->len = 0;
  buf->size = 0;
  buf->cap = cap;
}

/* Makes room for extra more bytes plus the NUL. Leaves buf unchanged on
 * failure. */
static enum kb_buf_result kb__buf_reserve(struct kb_buf *buf, size_t extra)
{
  size_t need;
  size_t size;
  char *data;

  if(extra > buf->cap || buf->len > buf->cap - extra)
    return KB_BUF_TOO_BIG;
  need = buf->len + extra + 1;
  if(need <= buf->size)
    return KB_BUF_OK;
  size = buf->size ? buf->size : 64;
  while(size < need)
    size = size > ((size_t)-1) / 2 ? need : size * 2;
  if(size > buf->cap + 1)
    size = buf->cap + 1;
  data = realloc(buf->data, size);
  if(!data)
    return KB_BUF_NOMEM;
  buf->data = data;
  buf->size = size;
  return KB_BUF_OK;
}

enum kb_buf_result kb_buf_add(struct kb_buf *buf, const void *mem, size_t len)
{
  enum kb_buf_result result = kb__buf_reserve(buf, len);

  if(result)
    return result;
  if(len)
    memcpy(buf->data + buf->len, mem, len);
  buf->len += len;
  assert(buf->len < buf->size && buf->len <= buf->cap);
  buf->data[buf->len] = '\0';
  return KB_BUF_OK;
}

enum kb_buf_result kb_buf_printf(struct kb_buf *buf, const char *fmt, ...)
{
  enum kb_buf_result result;
  va_list ap;
  int n;

  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if(n < 0)
    return KB_BUF_NOMEM;
  result = kb__buf_reserve(buf, (size_t)n);
  if(result)
    return result;
  va_start(ap, fmt);
  vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  buf->len += (size_t)n;
  return KB_BUF_OK;
}

void kb_buf_reset(struct kb_buf *buf)
{
  buf->len = 0;
  if(buf->data)
    buf->data[0] = '\0';
}

void kb_buf_free(struct kb_buf *buf)
{
  free(buf->data);
  buf->data = NULL;
  buf->len = 0;
  buf->size = 0;
}

char *kb_buf_steal(struct kb_buf *buf, size_t *len)
{
  char *data = buf->data;

  if(len)
    *len = buf->len;
  if(!data)
    data = calloc(1, 1);
  buf->data = NULL;
  buf->len = 0;
  buf->size = 0;
  return data;
}

size_t kb_array_capacity(size_t count)
{
  size_t cap = 8;

  if(!count)
    return 0;
  while(cap < count && cap <= SIZE_MAX / 2)
    cap *= 2;
  return cap < count ? count : cap;
}

void *kb_array_grow(void *items, size_t size, size_t count, size_t more)
{
  size_t need;

  if(more > SIZE_MAX - count)
    return NULL;
  need = kb_array_capacity(count + more);
  if(items && need <= kb_array_capacity(count))
    return items;
  if(!size || need > SIZE_MAX / size)
    return NULL;
  return realloc(items, need * size);
}
