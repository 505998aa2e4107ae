/*
 * rc.h - a raw HTTP/1.1 client for the suites that must write exact (and
 * wrong) bytes: test_hostile, test_abuse, test_live. Fails the running
 * Check test on anything unexpected; a receive timeout of RC_WAIT_S bounds
 * every wait.
 */
#ifndef RC_H
#define RC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kb_buf.h"
#include "common/kb_env.h"

/* Returns a TCP socket bound to 127.0.0.1, port 0, and its port in *port.
 * Listening: the kernel accepts connections nobody serves. Not listening:
 * a connect to the port is refused, and while the socket stays open no
 * other socket (not even a connecting one picking its source port) can
 * take the port, which closing a listener would leave free for anyone. */
int rc_loopback(bool listening, uint16_t *port);

/* Bounds every wait on a socket; only a failure reaches it. */
#define RC_WAIT_S 20

/* Returns a socket connected to 127.0.0.1:port whose reads and writes give
 * up after RC_WAIT_S (EAGAIN), for tests that read and write by hand. */
int rc_dial(uint16_t port);

/* One client TCP connection with its own read buffer, so pipelined
 * responses are read one after the other. */
struct rc {
  int fd;
  char name[64];
  char buf[1 << 16];
  size_t have;
};

struct rc_resp {
  int status; /* 0 when the connection closed before a status line */
  char head[16384];
  char *body; /* NUL-terminated; owned */
  size_t body_len;
};

/* Connects to 127.0.0.1:port from source (a numeric IPv4 address such as
 * "127.0.0.2", or NULL for the kernel's choice). When names is not NULL
 * the connection is claimed as name in it before anything is sent. */
void rc_connect(struct rc *c, const char *source, uint16_t port,
                struct kb_names *names, const char *name);
void rc_close(struct rc *c);
/* Writes all len bytes; returns false when the peer is gone. */
bool rc_send(struct rc *c, const void *data, size_t len);
/* Reads more bytes into the buffer: the count, 0 at end of stream. */
size_t rc_fill(struct rc *c);
/* True when the peer closes with nothing more to read. */
bool rc_closed_by_peer(struct rc *c);
/* Finds the next line of header name (any case) in the header block head
 * ("HTTP/1.1 ...\r\nName: value\r\n...", status line first) after *at
 * (NULL: from the start); sets *v and *vlen to its value, blanks after
 * the colon skipped, and moves *at past it. Returns false when there is
 * none. The one header lookup over recorded bytes of the suites. */
bool rc_next_header(const char *head, const char *name, const char **at,
                    const char **v, size_t *vlen);

/* The value of header name in r, copied into out; NULL when absent. */
const char *rc_header(const struct rc_resp *r, const char *name, char *out,
                      size_t outlen);
/* How many times header name occurs in r with exactly value. */
unsigned rc_header_count(const struct rc_resp *r, const char *name,
                         const char *value);
/* Reads one response; false (status 0) when the connection closed before
 * a status line. */
bool rc_read(struct rc *c, struct rc_resp *r);
void rc_resp_free(struct rc_resp *r);

/* Appends a request to out, laid out as Communicator lays it out (Accept,
 * Content-Type, Host, Content-Length); auth is the Authorization value or
 * NULL; the len bytes of body follow. */
void rc_build(struct kb_buf *out, const char *method, const char *path,
              const char *auth, const char *body, size_t len);

/* Sends one POST built by rc_build and reads its response into r (release
 * with rc_resp_free); returns the status. */
int rc_post(struct rc *c, const char *path, const char *auth, const char *body,
            size_t len, struct rc_resp *r);

#endif /* RC_H */
