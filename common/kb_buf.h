/*
 * kb_buf.h - a growable byte buffer that refuses to grow past its cap.
 *
 * Modelled on curl's dynbuf: every buffer that holds bytes from the
 * network carries its own limit, so no peer can make us allocate without
 * bound. The data is always NUL-terminated (not counted in len), so text
 * bodies can be used as C strings.
 */
#ifndef KB_BUF_H
#define KB_BUF_H

#include <stddef.h>

struct kb_buf {
  char *data;  /* NULL until the first append */
  size_t len;  /* bytes held, excluding the terminating NUL */
  size_t size; /* bytes allocated */
  size_t cap;  /* the most len may ever be */
};

enum kb_buf_result { KB_BUF_OK = 0, KB_BUF_TOO_BIG, KB_BUF_NOMEM };

/* Initialises an empty buffer that will hold at most cap bytes. */
void kb_buf_init(struct kb_buf *buf, size_t cap);

/* Appends len bytes. On KB_BUF_TOO_BIG or KB_BUF_NOMEM the buffer is left
 * as it was. */
enum kb_buf_result kb_buf_add(struct kb_buf *buf, const void *mem, size_t len);

/* Appends printf-formatted text; same result contract as kb_buf_add. */
enum kb_buf_result kb_buf_printf(struct kb_buf *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Empties the buffer but keeps its memory. */
void kb_buf_reset(struct kb_buf *buf);

/* The growth rule for plain arrays (kbsim's, besides byte buffers): an
 * array of count items holds room for kb_array_capacity(count) of them
 * (none when empty, then 8, then powers of two), so an array needs no
 * field for what it has allocated. */
size_t kb_array_capacity(size_t count);

/* Makes room in items (count used, each size bytes, grown only by this
 * function) for more. Returns the array, moved or not, or NULL when out
 * of memory or past SIZE_MAX (then items is still valid and unchanged). */
void *kb_array_grow(void *items, size_t size, size_t count, size_t more);

/* Frees the memory; the buffer may be reused after kb_buf_init. Accepts a
 * buffer that never allocated. */
void kb_buf_free(struct kb_buf *buf);

/* Hands the data to the caller (who frees it) and leaves buf empty. Returns
 * a valid empty string rather than NULL when nothing was appended, or NULL
 * when out of memory. */
char *kb_buf_steal(struct kb_buf *buf, size_t *len);

#endif /* KB_BUF_H */
