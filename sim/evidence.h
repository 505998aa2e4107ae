/*
 * evidence.h - what a run leaves behind for someone else: a plain-text
 * transcript, a pcap file and a JSON report, all built from the trace
 * recorder after the run, ordered by connection name (client, connection,
 * hop), never by arrival time, so one seed gives the same bytes every time.
 */
#ifndef EVIDENCE_H
#define EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim_env.h"
#include "topology.h"

/* Writes the transcript of every connection with recorded bytes: for each
 * connection, in name order, each HTTP message as exactly the bytes that
 * crossed the socket (CRLF kept), after an annotation line with its time
 * (ISO 8601, the session's clock), direction and length; annotations (NTLM
 * decodes, opens, closes with their reason) are lines that begin with ';'.
 * Returns 0, or -1 with errno set when writing failed. */
int evidence_write_transcript(struct sim_recorder *rec, FILE *out);

/* Writes every connection with recorded bytes as a TCP stream (handshake,
 * one segment per write split at a 1460-byte MSS, FIN from whoever closed
 * first) into a pcap file through libpcap's own writer (LINKTYPE_RAW,
 * IPv4), both hops interleaved in causal order at the times the events
 * were stamped with. Addresses and ports are synthetic and stable: clients
 * 127.1.x.y, ISA 127.0.0.2:80, Exchange 127.0.0.3:80. Returns 0, or -1 with
 * a one-line reason in err. */
int evidence_write_pcap(struct sim_recorder *rec, const char *path, char *err,
                        size_t errlen);

/* What a JSON report describes besides the recorded exchanges. */
struct evidence_run {
  const char *policy;
  uint64_t seed;
  unsigned clients;
  unsigned ews_posts;
  const char *ntlm;
  const struct sim_sessions *sessions;
  const struct backend_stats *backend; /* NULL: unknown (a live listener) */
  const struct proxy_stats *proxy;     /* NULL: unknown */
  bool live; /* the real clock and randomness: no seed ("seed": null) */
};

/* Writes the JSON report (schema in README.md) to path. Returns 0, or -1
 * with a one-line reason in err. */
int evidence_write_json(struct sim_recorder *rec,
                        const struct evidence_run *run, const char *path,
                        char *err, size_t errlen);

/* Compares connection names naturally: digit runs as numbers, so
 * "client 2 conn 1" sorts before "client 10 conn 1". */
int evidence_name_cmp(const char *a, const char *b);

#endif /* EVIDENCE_H */
