/*
 * evidence.h - what a run leaves behind for someone else: a plain-text
 * transcript, a pcap file and a JSON report, all built from the trace
 * recorder after the run, ordered by connection name (client, connection,
 * hop), never by arrival time, so one seed gives the same bytes every time.
 */
#ifndef EVIDENCE_H
#define EVIDENCE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim_env.h"
#include "topology.h"

/* Writes the transcript of every connection with recorded bytes: for each
 * connection, in name order, the exact bytes each way in the seed's style
 * (request line, headers, blank line, body), each NTLM token followed by a
 * one-line decode, opens and closes marked. Returns 0, or -1 with errno
 * set when writing failed. */
int evidence_write_transcript(struct sim_recorder *rec, FILE *out);

/* Writes every connection with recorded bytes as a TCP stream (handshake,
 * data, FIN) into a pcap file through libpcap's own writer (LINKTYPE_RAW,
 * IPv4). Addresses and ports are synthetic and stable: clients
 * 127.1.x.y, ISA 127.0.0.2:80, Exchange 127.0.0.3:80; packet times start at
 * base_ms. Returns 0, or -1 with a one-line reason in err. */
int evidence_write_pcap(struct sim_recorder *rec, const char *path,
                        int64_t base_ms, char *err, size_t errlen);

/* What a JSON report describes besides the recorded exchanges. */
struct evidence_run {
  const char *policy;
  uint64_t seed;
  unsigned clients;
  unsigned ews_posts;
  const char *ntlm;
  const struct sim_sessions *sessions;
  const struct backend_stats *backend;
  const struct proxy_stats *proxy;
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
