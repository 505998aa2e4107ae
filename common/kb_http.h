/*
 * kb_http.h - what every kbsim server checks in a request head before it
 * acts on it: message framing (RFC 9112 section 6) and field syntax (RFC
 * 9110 section 5.5), so that no request whose length two parsers could
 * read differently is answered, forwarded or kept alive.
 *
 * libmicrohttpd parses the head; kb_http_check judges what it parsed. The
 * verdicts and what a server answers to each are one table
 * (kb_http_rule), so the listener and Exchange answer alike.
 *
 * What libmicrohttpd 0.9.75 mangles before anyone can see it (an obs-fold
 * line glued to the previous field, a NUL ending a value or the target
 * early) cannot be judged here; README.md ("Framing") says so.
 */
#ifndef KB_HTTP_H
#define KB_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One field line as parsed: name and value with their lengths. */
struct kb_http_field {
  const char *name;
  size_t name_len;
  const char *value;
  size_t value_len;
};

/* What is wrong with a request head, if anything. */
enum kb_http_verdict {
  KB_HTTP_OK = 0,
  KB_HTTP_BAD_FIELD_NAME,      /* not a token: a blank before the colon... */
  KB_HTTP_BAD_FIELD_VALUE,     /* CR, LF, NUL or another control in a value */
  KB_HTTP_BAD_LENGTH,          /* Content-Length not a decimal number */
  KB_HTTP_CONFLICTING_LENGTHS, /* Content-Length given twice, differently */
  KB_HTTP_LENGTH_AND_CODING,   /* Content-Length and Transfer-Encoding */
  KB_HTTP_CHUNKED_NOT_FINAL,   /* Transfer-Encoding whose last coding is
                                  not chunked: the length is unknowable */
  KB_HTTP_UNKNOWN_CODING,      /* a transfer coding other than chunked */
  KB_HTTP_CODING_IN_HTTP10,    /* Transfer-Encoding in an HTTP/1.0 request */
  KB_HTTP_NO_HOST,             /* HTTP/1.1 without Host */
  KB_HTTP_MANY_HOSTS,          /* Host given more than once */
  KB_HTTP_BAD_HOST,            /* Host not a valid authority */
  KB_HTTP_BAD_TARGET,          /* neither origin form nor absolute form */
  KB_HTTP_VERDICT_COUNT        /* not a verdict: the number of them */
};

/* What a server does with a verdict. */
struct kb_http_rule {
  enum kb_http_verdict verdict;
  unsigned status; /* 0 for KB_HTTP_OK */
  bool close;      /* the connection must close after the answer */
  const char *why; /* for people: "Content-Length and Transfer-Encoding" */
};

/* The rule of verdict v (the table is indexed by verdict). */
const struct kb_http_rule *kb_http_rule(enum kb_http_verdict v);

/* What a valid head says. */
struct kb_http_head {
  const char *path; /* the origin-form part of the target: into target */
  bool chunked;     /* the body is chunked */
  bool has_length;  /* a Content-Length was given */
  uint64_t length;  /* its value */
};

/* Judges a head one field at a time, as a parser's iterator hands them
 * over (libmicrohttpd's MHD_get_connection_values_n): kb_http_begin, then
 * kb_http_field for each field line in order, then kb_http_end. The first
 * fault found is the verdict. Pure: no allocation, no I/O. */
struct kb_http_reader {
  enum kb_http_verdict verdict; /* the first fault so far, or KB_HTTP_OK */
  struct kb_http_head head;
  size_t hosts;
  bool coding;       /* a Transfer-Encoding line was seen */
  bool last_chunked; /* the last coding so far is chunked */
  bool other_coding; /* a coding other than chunked was seen */
};

void kb_http_begin(struct kb_http_reader *r);
void kb_http_field(struct kb_http_reader *r, const char *name, size_t name_len,
                   const char *value, size_t value_len);
/* version ("HTTP/1.1") and target as sent. On KB_HTTP_OK fills *head when
 * not NULL. */
enum kb_http_verdict kb_http_end(struct kb_http_reader *r, const char *version,
                                 const char *target, struct kb_http_head *head);

/* The same over an array of fields. */
enum kb_http_verdict kb_http_check(const char *version, const char *target,
                                   const struct kb_http_field *fields,
                                   size_t nfields, struct kb_http_head *head);

#endif /* KB_HTTP_H */
