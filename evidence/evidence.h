/*
 * evidence.h - what a run leaves behind for someone else: a plain-text
 * transcript, a pcap file and a JSON report, all built from the trace
 * recorder after the run, ordered by connection name (client, connection,
 * hop), never by arrival time, so one seed gives the same bytes every time;
 * and where those files go, named and checked before a run starts.
 */
#ifndef EVIDENCE_H
#define EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim/scenario.h"
#include "sim/sim_env.h"
#include "sim/topology.h"

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
 * 127.1.x.y, ISA 127.0.0.2:80, Exchange 127.0.0.3:80. On a TLS run (the
 * recorder holds TLS records, sim/tls_tap.h) its TLS connections carry
 * those records on port 443 instead of the plaintext, and the file is
 * pcapng with their key log lines in a Decryption Secrets Block; TLS's
 * randomness makes it differ from run to run. path "-" is standard
 * output (evidence_open). Returns 0, or -1 with a one-line reason in err. */
int evidence_write_pcap(struct sim_recorder *rec, const char *path, char *err,
                        size_t errlen);

/* What a JSON report describes besides the recorded exchanges. Everything
 * is borrowed for the call. */
struct evidence_run {
  /* The scenario that ran (name, file, members, expectation, seed,
   * clients, posts, NTLM); NULL: a live session, described by the fields
   * below. */
  const struct scenario *sc;
  const char *scenario_text; /* sc's file as read before the run, or NULL */
  uint64_t seed;             /* without sc */
  unsigned clients;          /* without sc */
  unsigned ews_posts;        /* without sc */
  const char *ntlm;          /* without sc: "NTLMv2" ... */
  enum client_kind kind;     /* without sc: who the client was */
  int expect;                /* without sc: 1 error, 0 clean, -1 none */
  const struct sim_sessions *sessions;
  const struct backend_stats *backend; /* NULL: unknown (a live listener) */
  const struct proxy_stats *proxy;     /* NULL: unknown */
  bool live;   /* the real clock and randomness: no seed ("seed": null) */
  bool passed; /* the verdict: every expectation held */
  /* "clean", "server-error", "auth-failed" or "infrastructure"; NULL:
   * "server-error" when a user saw the error, else "clean". */
  const char *outcome_class;
};

/* Writes the JSON report (version 2, docs/report.schema.json) to path; "-"
 * is standard output (evidence_open). Returns 0, or -1 with a one-line
 * reason in err. */
int evidence_write_json(struct sim_recorder *rec,
                        const struct evidence_run *run, const char *path,
                        char *err, size_t errlen);

/* What `kbsim serve`'s JSON report describes besides what the recorder
 * holds: the array as it was started, its counters and policies at the
 * stop, and when it ran (the real clock). Everything is borrowed. */
struct evidence_serve {
  const struct scenario *sc; /* the scenario served, or the flag form's */
  const char *scenario_text; /* sc's file as read, or NULL (flag form) */
  bool balanced;             /* false: the flag form, no balancer */
  size_t nmembers;           /* sc->nmembers */
  enum proxy_policy policies[SIM_MAX_MEMBERS]; /* in force at the stop */
  struct proxy_stats members[SIM_MAX_MEMBERS];
  struct backend_stats backend;
  struct balancer_stats balancer; /* balanced only */
  int64_t started_us, stopped_us; /* real clock, us since the epoch */
  const char *signal;             /* "SIGINT" or "SIGTERM" */
};

struct json_t; /* jansson's */

/* Builds serve's JSON report (version 2, kind "serve",
 * docs/report.schema.json): every connection of both hops as the evidence
 * files name it, with its open and close times and the reason it closed;
 * every exchange as the members (client hop) and Exchange (upstream hop)
 * saw it, with the observer's note codes; the members and counters.
 * Returns it (release with json_decref), or NULL when out of memory. */
struct json_t *evidence_serve_report(struct sim_recorder *rec,
                                     const struct evidence_serve *srv);

/* Writes what evidence_serve_report built to path; "-" is standard
 * output. Returns 0, or -1 with a one-line reason in err. */
int evidence_write_serve_json(const struct json_t *report, const char *path,
                              char *err, size_t errlen);

/* Writes the transcript (evidence_write_transcript) to path; "-" is
 * standard output. Returns 0, or -1 with a one-line reason in err. */
int evidence_write_transcript_to(struct sim_recorder *rec, const char *path,
                                 char *err, size_t errlen);

/* ---- where evidence goes --------------------------------------------- */

/* Remembers the command line for the reports' stamp, in the order it was
 * given (the strings are borrowed: main's, which outlive every report).
 * Call from main before parsing, on the main thread. */
void evidence_set_command_line(int argc, char **argv);

/* Fixes the time the reports' stamp says they were written (stamp.written)
 * to value, whole seconds since 1970 in decimal digits: the
 * reproducible-builds convention SOURCE_DATE_EPOCH, which main reads. Until
 * it is called, the stamp has the real clock's time. Returns 0, or -1 with
 * one line in err when value is not such a number (nothing is changed).
 * Call from main before anything is written, on the main thread. */
int evidence_set_written_epoch(const char *value, char *err, size_t errlen);

/* With on, the transcript and the pcap carry every NTLM AUTHENTICATE with
 * what an offline dictionary attack on the password needs replaced by
 * "REDACTED" repeated, each field keeping its length (ntlm_redact): for
 * evidence shared outside the team. The JSON report and the HTML page
 * never carry a token. Call from main before anything is written. */
void evidence_set_redact(bool on);

/* What went wrong naming or opening evidence files. */
enum evidence_status {
  EVIDENCE_OK = 0,
  EVIDENCE_BAD_ARGS, /* the flags cannot work together: exit 2 */
  EVIDENCE_IO        /* a file cannot be written: exit 3 */
};

/* When any of the n paths (NULL entries skipped) is "-", sets standard
 * output aside for that evidence: from then on evidence_open("-") writes
 * to the original standard output and everything else printed to stdout
 * goes to stderr, so the evidence can be piped. Call from the main thread
 * before any other starts. Returns EVIDENCE_OK, or EVIDENCE_BAD_ARGS with
 * one line in err when two paths are "-", EVIDENCE_IO when the descriptors
 * cannot be moved. */
enum evidence_status evidence_claim_stdout(const char *const *paths, size_t n,
                                           char *err, size_t errlen);

/* Opens path to write evidence into ("-": standard output, as
 * evidence_claim_stdout left it). flag names the option in errors
 * ("--json"). Returns the stream (close with evidence_close), or NULL with
 * "--json PATH: cannot write: REASON" in err. */
FILE *evidence_open(const char *flag, const char *path, char *err,
                    size_t errlen);

/* Flushes and closes what evidence_open returned (standard output is only
 * flushed). Returns 0, or -1 with a one-line reason in err when anything
 * written was lost. */
int evidence_close(FILE *f, const char *flag, const char *path, char *err,
                   size_t errlen);

/* The files one run writes: "" where a kind was not asked for. */
struct evidence_paths {
  char transcript[512], pcap[512], json[512];
};

/* What a command was asked to write, as given: NULL for none, "-" for
 * standard output. */
struct evidence_want {
  const char *transcript, *pcap, *json, *html;
};

/* Names the files of n runs (run i is the scenario named names[i]) and
 * checks, before anything runs, that every one of them and the html page
 * can be written. With one run the names are as given; with several, each
 * run's name goes before the extension (bug.txt -> bug-fix.txt) and a name
 * already used gets -2, -3... (bug-bug.txt, bug-bug-2.txt), so no run
 * overwrites another's. Fills out[0..n-1]. Returns EVIDENCE_OK;
 * EVIDENCE_BAD_ARGS when standard output would hold several runs' files;
 * EVIDENCE_IO when a file cannot be written (nothing is left behind that
 * was not there): one line in err each. */
enum evidence_status evidence_plan(const struct evidence_want *want,
                                   const char *const *names, size_t n,
                                   struct evidence_paths *out, char *err,
                                   size_t errlen);

/* evidence_claim_stdout for want's four paths, then evidence_plan: what a
 * command calls once, before it runs anything. Same results. */
enum evidence_status evidence_prepare(const struct evidence_want *want,
                                      const char *const *names, size_t n,
                                      struct evidence_paths *out, char *err,
                                      size_t errlen);

/* Reads the scenario file at path whole, for the report. Returns it (free
 * it), or NULL when it cannot be read. */
char *evidence_read_text(const char *path);

/* Compares connection names naturally: digit runs as numbers, so
 * "client 2 conn 1" sorts before "client 10 conn 1", and letters without
 * case first, so a client's "balancer conn 1" comes before the members'
 * "ISA01 conn 1 upstream" (case breaks ties only). */
int evidence_name_cmp(const char *a, const char *b);

#endif /* EVIDENCE_H */
