/*
 * evidence_int.h - what the evidence writers share inside evidence/: the
 * connections and messages cut from the recorder's byte streams
 * (conns.c), the time format every file uses and the reports' stamp
 * (stamp.c), and the one writer of a JSON report (report.c).
 */
#ifndef EVIDENCE_INT_H
#define EVIDENCE_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "evidence/evidence.h"
#include "sim/tls_tap.h"

/* ---- connections and messages (conns.c) ------------------------------- */

/* What ended a connection, as the recorded notes say: decisions as data.
 * server_first: the accepting side (ISA on the client hop) closed first;
 * reset: that side sent RST, not FIN. code names the reason in the JSON
 * report. */
struct evidence_close_row {
  enum kb_note note;
  bool server_first;
  bool reset;
  const char *code;
  const char *reason;
};

/* The codes of the closes no note explains. */
#define EVIDENCE_CLOSE_CLIENT "client-closed"
#define EVIDENCE_CLOSE_ISA "isa-closed"
#define EVIDENCE_CLOSE_WITH_CLIENT "with-client"

/* One HTTP message (or, unparsable, the rest of a direction's bytes) as
 * its sender wrote it: the header block, then the body. */
struct evidence_msg {
  enum kb_trace_kind dir; /* SEND: from the connecting side; RECV: to it */
  uint8_t *data;          /* owned */
  size_t len;
  size_t head; /* header block length, blank line included */
  int64_t at_us;
  size_t rank; /* recorder index of the event that carried its first byte */
};

/* One connection's recorded events, as indices into the recorder, and what
 * evidence makes of them. */
struct evidence_conn {
  enum kb_hop hop;
  char *name; /* owned */
  size_t *events;
  size_t count;
  size_t alloc;
  struct evidence_msg *msgs;
  size_t nmsgs;
  bool opened, closed;
  int64_t open_us, close_us;
  size_t open_rank, close_rank;
  const struct evidence_close_row *why; /* NULL: the connecting side's */
  const char *why_text;                 /* the note's own words, or NULL */
  bool parent_closed; /* upstream: closed with its client connection */
  /* On a TLS run: the server end's records of this connection
   * (sim/tls_tap.h), in the recorder; NULL for plain HTTP. */
  const struct sim_tls_conn *tls;
};

struct evidence_conns {
  struct evidence_conn *items;
  size_t count;
};

/* Groups the recorder's byte-stream events by connection, sorted by name,
 * builds each one's messages and, on a TLS run, finds its server end's
 * records (evidence_conn.tls). Call with rec->lock held; names point
 * into the recorder. Returns 0 or -1 when out of memory. */
int evidence__group(const struct sim_recorder *rec, struct evidence_conns *out);

/* Set by evidence_set_redact (main thread, before anything is written). */
extern bool evidence__redacting;

/* Frees what evidence__group filled in and zeroes c. */
void evidence__conns_free(struct evidence_conns *c);

/* ---- times and the reports' stamp (stamp.c) --------------------------- */

/* Formats us (microseconds since the epoch) as ISO 8601 UTC with
 * milliseconds: "2009-03-17T16:26:24.000Z". */
void evidence__iso(int64_t us, char out[64]);

/* Room for every password a report could quote: the scenario's users,
 * the client's override. */
#define EVIDENCE_MAX_SECRETS (SCENARIO_MAX_USERS + 1)

/* Collects every password a report could quote into secrets (room for
 * EVIDENCE_MAX_SECRETS): the scenario's users and client password (sc
 * may be NULL), and each --user/-u value on the command line. Returns how
 * many. */
size_t evidence__secrets(const struct scenario *sc, char (*secrets)[256]);

/* The report's stamp: which kbsim wrote it, asked how (the command line,
 * the n secrets removed), and when. Returns a new object. */
json_t *evidence__stamp_json(char (*secrets)[256], size_t nsecrets);

/* The report's scenario: run->sc's name, file and text (the n secrets
 * removed), or a live session's. Returns a new object. */
json_t *evidence__scenario_json(const struct evidence_run *run,
                                char (*secrets)[256], size_t nsecrets);

/* ---- writing a report (report.c) -------------------------------------- */

/* Writes root, indented and in insertion order, with a final line feed,
 * to path; "-" is standard output (evidence_open). Returns 0, or -1 with
 * a one-line reason naming --json in err. */
int evidence__json_write(const json_t *root, const char *path, char *err,
                         size_t errlen);

/* ---- pcapng blocks (pcapng.c) ----------------------------------------- */

/* Writes a pcapng section header and its one interface (raw IPv4,
 * microseconds). Returns 0, or -1 when out could not take it. */
int evidence__pcapng_start(FILE *out);

/* Writes a Decryption Secrets Block holding len bytes of NSS key log
 * lines. Returns 0 or -1, as above. */
int evidence__pcapng_secrets(FILE *out, const char *keylog, size_t len);

/* Writes one packet of len bytes (an IPv4 datagram) at us microseconds
 * since the epoch. Returns 0 or -1, as above. */
int evidence__pcapng_packet(FILE *out, int64_t us, const uint8_t *pkt,
                            size_t len);

#endif /* EVIDENCE_INT_H */
