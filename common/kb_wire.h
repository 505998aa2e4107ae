/*
 * kb_wire.h - HTTP/1.1 messages in bytes already sent or received: where
 * one message ends (RFC 9112 section 6.3), what its start line says, and
 * the value of a field. The one reader of recorded bytes, used by the
 * evidence writers, the story and the live view, and by the client for
 * the head libcurl sends.
 *
 * It judges nothing (kb_http.h judges a request before a server acts on
 * it): it reads what was on the wire as a peer would have, and says when
 * bytes are no complete message. Pure: no allocation, no I/O; safe from
 * any thread.
 */
#ifndef KB_WIRE_H
#define KB_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which side sent the bytes: the framing rules differ (a response may run
 * to the close; 1xx, 204 and 304 answers have no body). */
enum kb_wire_dir { KB_WIRE_REQUEST = 0, KB_WIRE_RESPONSE };

/* One message found at the start of a run of bytes. Offsets count from
 * that start; pointers point into it. */
struct kb_wire_msg {
  size_t len;      /* the whole message: head and body */
  size_t head;     /* the head: start line, field lines and the blank line */
  size_t fields;   /* where the field lines start (after the start line) */
  size_t body;     /* the body's length once decoded (chunked: the chunks'
                      data only); len - head on the wire */
  bool whole_head; /* a blank line ends the head; when false, head = len =
                      all of the bytes */
  bool complete;   /* the whole message is there: false when the bytes end
                      before it does, or its length cannot be known (no
                      whole head, a Content-Length that is no number);
                      then len is all of the bytes */
  bool chunked;    /* the last transfer coding is chunked */
  /* The start line. A request: method and target (NULL when the line is
   * not "METHOD SP TARGET SP VERSION"). A response: status, 0 when the
   * line is not "HTTP/1.x NNN ...". */
  const char *method, *target;
  size_t method_len, target_len;
  int status;
};

/* Reads the first message of the len bytes at p, sent in direction dir,
 * into *m. Returns m->len: always at least 1 when len is not 0, so a
 * caller that cuts a stream into messages moves on; 0 only when len is 0.
 * A response's length counts no body for 1xx, 204 and 304; a message
 * with neither Content-Length nor chunked coding has no body when it is a
 * request and runs to the end of the bytes when it is a response. */
size_t kb_wire_message(const uint8_t *p, size_t len, enum kb_wire_dir dir,
                       struct kb_wire_msg *m);

/* Finds the next field named name (no colon; case does not matter) among
 * the field lines of block (len bytes, lines ended by CRLF or LF), from
 * offset *at. Returns its value without the blanks (SP, HTAB) around it,
 * with its length in *vlen, and moves *at past its line, so that a loop
 * finds every field of that name in order; NULL when there is no more.
 * A line that is not "name:" (the start line, a continuation) never
 * matches. block need not be NUL-terminated. */
const char *kb_wire_field(const char *block, size_t len, const char *name,
                          size_t *at, size_t *vlen);

/* The same from the start of block: the first field named name. */
const char *kb_wire_field_first(const char *block, size_t len, const char *name,
                                size_t *vlen);

#endif /* KB_WIRE_H */
