/*
 * wrap.c - wrapping output at the reader's width (see wrap.h): a greedy
 * fill at spaces over the visible width of each character, and a stdio
 * stream (glibc's fopencookie) in front of file descriptor 1 so that the
 * commands keep writing with printf.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <unistr.h>
#include <uniwidth.h>

#include "wrap.h"

int wrap_columns(int fd)
{
  struct winsize ws;
  const char *env = getenv("COLUMNS");
  long columns = WRAP_MAX_COLUMNS;

  if(isatty(fd) && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
    columns = ws.ws_col;
  else if(env && *env) {
    char *end = NULL;
    long v = strtol(env, &end, 10);
    if(!*end && v > 0)
      columns = v;
  }
  return columns < WRAP_MIN_COLUMNS ? WRAP_MIN_COLUMNS : (int)columns;
}

/* One unit of a line: a character or a whole escape sequence. */
struct wrap_unit {
  size_t off, len;
  int width; /* columns; 0 for an escape, -1 for WRAP_HANG */
  bool space;
};

/* Cuts line into units. Returns how many, at most max. */
static size_t wrap_units(const char *line, size_t len, struct wrap_unit *u,
                         size_t max)
{
  size_t i = 0, n = 0;

  while(i < len && n < max) {
    struct wrap_unit *w = &u[n++];
    ucs4_t uc;
    int step;

    w->off = i;
    w->space = line[i] == ' ';
    if(line[i] == WRAP_HANG[0]) {
      w->len = 1;
      w->width = -1;
    }
    else if(line[i] == '\033' && i + 1 < len && line[i + 1] == '[') {
      size_t j = i + 2;
      while(j < len && !(line[j] >= 0x40 && line[j] <= 0x7e))
        j++;
      w->len = (j < len ? j + 1 : j) - i;
      w->width = 0;
    }
    else {
      step = u8_mbtouc(&uc, (const uint8_t *)line + i, len - i);
      w->len = step > 0 ? (size_t)step : 1;
      w->width = uc_width(uc, "UTF-8");
      if(w->width < 0)
        w->width = 0;
    }
    i += w->len;
  }
  return n;
}

/* Writes units [from, to) of line, leaving out the hang marker. */
static void wrap_put(FILE *out, const char *line, const struct wrap_unit *u,
                     size_t from, size_t to)
{
  size_t i;

  for(i = from; i < to; i++)
    if(u[i].width >= 0)
      fwrite(line + u[i].off, 1, u[i].len, out);
}

void wrap_line(FILE *out, const char *line, size_t len, int columns)
{
  struct wrap_unit *u = malloc((len + 1) * sizeof(*u));
  size_t n, start = 0, i, brk;
  int col = 0, hang = -1, indent = 0;

  if(!u) { /* no memory to measure it: as it is */
    fwrite(line, 1, len, out);
    fputc('\n', out);
    return;
  }
  n = wrap_units(line, len, u, len + 1);
  while(indent < (int)n && u[indent].space)
    indent++;
  for(i = 0; i < n; i++) {
    if(u[i].width < 0) {
      hang = col;
      continue;
    }
    col += u[i].width;
  }
  if(hang < 0 || hang > columns / 2)
    hang = indent + 4 > columns / 2 ? 0 : indent + 4;

  for(;;) {
    /* From unit start at column col (0 on the first line, hang after),
     * find the last space before the width is exceeded. */
    col = start ? hang : 0;
    brk = 0;
    for(i = start; i < n; i++) {
      if(u[i].width < 0)
        continue;
      if(u[i].space && i > start && !u[i - 1].space &&
         col > (start ? hang : indent)) {
        brk = i;
      }
      if(col + u[i].width > columns && brk)
        break;
      col += u[i].width;
    }
    if(i == n || !brk) {
      wrap_put(out, line, u, start, n);
      fputc('\n', out);
      break;
    }
    wrap_put(out, line, u, start, brk);
    fprintf(out, "\n%*s", hang, "");
    start = brk;
    while(start < n && (u[start].space || u[start].width < 0))
      start++;
    if(start == n) {
      fputc('\n', out);
      break;
    }
  }
  free(u);
}

/* ---- the stdout stream ------------------------------------------------- */

struct wrap_stream {
  int columns;
  char *pending; /* the line not yet ended */
  size_t len, cap;
  FILE *raw; /* unbuffered, onto fd 1 */
};

static struct wrap_stream *wrap__stream;

static ssize_t wrap_write(void *cookie, const char *data, size_t size)
{
  struct wrap_stream *w = cookie;
  size_t i;

  for(i = 0; i < size; i++) {
    if(data[i] == '\n') {
      wrap_line(w->raw, w->pending ? w->pending : "", w->len, w->columns);
      w->len = 0;
      continue;
    }
    if(w->len == w->cap) {
      size_t cap = w->cap ? 2 * w->cap : 256;
      char *p = realloc(w->pending, cap);
      if(!p) {
        errno = ENOMEM;
        return -1;
      }
      w->pending = p;
      w->cap = cap;
    }
    w->pending[w->len++] = data[i];
  }
  fflush(w->raw);
  return ferror(w->raw) ? -1 : (ssize_t)size;
}

void wrap_flush(void)
{
  struct wrap_stream *w = wrap__stream;

  if(!w)
    return;
  fflush(stdout);
  if(w->len)
    fwrite(w->pending, 1, w->len, w->raw);
  w->len = 0;
  fflush(w->raw);
}

static void wrap_at_exit(void)
{
  wrap_flush();
}

int wrap_stdout(int columns)
{
  static cookie_io_functions_t io = {NULL, wrap_write, NULL, NULL};
  struct wrap_stream *w;
  FILE *f;

  if(wrap__stream)
    return 0;
  w = calloc(1, sizeof(*w));
  if(!w)
    return -1;
  w->columns = columns;
  w->raw = fdopen(dup(STDOUT_FILENO), "w");
  f = w->raw ? fopencookie(w, "w", io) : NULL;
  if(!f) {
    if(w->raw)
      fclose(w->raw);
    free(w);
    return -1;
  }
  fflush(stdout);
  setvbuf(f, NULL, _IOLBF, 0);
  stdout = f;
  wrap__stream = w;
  atexit(wrap_at_exit);
  return 0;
}
