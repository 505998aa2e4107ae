/*
 * tls_tap.h - the TLS records of every connection a TLS run's servers
 * accept, as they crossed the socket, with the secrets that decrypt them:
 * what evidence/ puts in a capture that opens decrypted.
 */
#ifndef SIM_TLS_TAP_H
#define SIM_TLS_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kb_env.h"

struct sim_recorder;
struct sockaddr;

/* What the server's end read or wrote one way before it turned to the
 * other (or the handshake ended): exactly the bytes of the TLS records
 * that crossed the socket. */
struct sim_tls_chunk {
  bool from_client; /* read by the server: written by the connecting side */
  bool handshake;   /* before the first application data the server read
                       (the handshake, and TLS 1.3's session tickets) */
  uint8_t *data;    /* owned */
  size_t len;
};

/* One TLS connection a server accepted. Filled by the thread that runs
 * the connection, under the recorder's lock; read once the run is over. */
struct sim_tls_conn {
  enum kb_hop hop;
  /* The name its peer claimed (kb_names), resolved at the first request
   * read; "" when it never sent one (evidence then leaves it out). */
  char name[KB_CONN_NAME_LEN];
  struct sim_tls_chunk *chunks;
  size_t count, alloc;
  char *keylog; /* NSS key log lines ("LABEL random secret\n"), owned */
  size_t keylog_len;
  /* Once the handshake is done: "TLS1.3", "TLS_AES_256_GCM_SHA384", and
   * the SHA-256 of the certificate the server presented, hex with colons. */
  char version[16];
  char suite[64];
  char cert_sha256[96];
  /* Private to tls_tap.c. */
  struct sim_recorder *rec;
  struct kb_names names;
  void *session; /* its gnutls_session_t, while it runs */
  int fd;
  uint16_t peer_port, local_port;
  bool finished_in;          /* the client's Finished was read */
  bool app;                  /* the first application data was read */
  void (*next_keylog)(void); /* the session's own key log function (GnuTLS's
                                SSLKEYLOGFILE writer), cast back to call */
};

/* Where one hop's servers hand their sessions: the recorder, the names
 * table both ends use, and the hop. */
struct sim_tls_tap {
  struct sim_recorder *rec;
  struct kb_names names;
  enum kb_hop hop;
};

/* The backend_config / proxy_config tls_tap callback (ctx a struct
 * sim_tls_tap): records the connection of session (a gnutls_session_t not
 * yet past its handshake) from peer to local_port into the recorder, by
 * taking over its transport (the same socket, read and written the same
 * way), watching its handshake and keeping its key log lines (GnuTLS's own
 * SSLKEYLOGFILE writer still gets them). Out of memory, the recorder is
 * marked failed and the connection runs untouched. */
void sim_tls_tap_session(void *ctx, void *session, const struct sockaddr *peer,
                         uint16_t local_port);

/* Frees the TLS connections rec holds (sim_recorder_free and _clear call
 * it). */
void sim_tls_conns_free(struct sim_recorder *rec);

#endif /* SIM_TLS_TAP_H */
