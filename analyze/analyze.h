/*
 * analyze.h - `kbsim analyze`: captures (pcap, pcapng, through tshark) and
 * HAR 1.2 files read back into HTTP connections, the proxy's two hops told
 * apart and paired, and every instance of the reverse-proxy family's
 * failures (common/kb_defect.h) found in them, with the frames that show
 * it. The result is printed, written as JSON (kind "analysis",
 * docs/report.schema.json), as a JUnit suite (evidence/ci.h) and as the
 * report's sequence diagrams (render/html.h).
 *
 * A capture is streamed: tshark's output is read line by line and only
 * the open connections and their unanswered requests are kept, so memory
 * follows the traffic in flight, not the capture's size. One analysis runs
 * on the calling thread; nothing here is shared between analyses.
 */
#ifndef ANALYZE_H
#define ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/kb_defect.h"
#include "render/story.h"

#define ANALYZE_MAX_REFS 12       /* places named by one finding */
#define ANALYZE_MAX_CONNS 4       /* connections named by one finding */
#define ANALYZE_MAX_FINDINGS 1000 /* kept; the rest are only counted */
#define ANALYZE_LABEL 112         /* "127.1.0.1:49153 -> 127.0.0.2:80" */

/* What the analysis is asked to read. Everything is borrowed for the
 * call. */
struct analyze_config {
  const char *const *files; /* pcap, pcapng or HAR; at least one */
  size_t nfiles;
  const char *keylog;   /* TLS key log (SSLKEYLOGFILE format), or NULL */
  const char *listener; /* "HOST:PORT" of the proxy's listener, or NULL */
  const char *server;   /* "HOST:PORT" of the server behind it, or NULL */
  const char *tshark;   /* the program, NULL: "tshark" on PATH */
  bool progress;        /* a progress line on stderr (a terminal's) */
  int argc;             /* the command line, for the JSON's stamp */
  char **argv;
};

/* Which hops of the proxy the input holds. */
enum analyze_hops {
  ANALYZE_HOPS_NONE = 0, /* no HTTP request at all */
  ANALYZE_HOPS_CLIENT,   /* the client side of the listener only */
  ANALYZE_HOPS_SERVER,   /* the server side only (the listener as client) */
  ANALYZE_HOPS_BOTH      /* both, paired request by request */
};

/* One place in the input: a frame of a capture or an entry of a HAR. */
struct analyze_ref {
  unsigned file;  /* index into the config's files */
  uint64_t frame; /* frame number (1-based), or HAR entry (1-based) */
  char what[48];  /* "type 1 POST", "500", "401 loop" */
};

/* One instance of a failure. */
struct analyze_finding {
  enum kb_defect defect;
  char text[640]; /* the one line, without the defect's name */
  char conns[ANALYZE_MAX_CONNS][ANALYZE_LABEL];
  size_t nconns;
  struct analyze_ref refs[ANALYZE_MAX_REFS];
  size_t nrefs;
  bool one_hop; /* concluded from one hop only (text says what is assumed) */
};

/* One input file as it was read. */
struct analyze_input {
  const char *path; /* borrowed from the config */
  bool har;         /* HAR, else a capture read by tshark */
  uint64_t frames;  /* frames (capture) or entries (HAR) read */
};

struct analyze_result {
  struct analyze_input *inputs; /* one per config file; owned */
  size_t ninputs;
  enum analyze_hops hops;
  char listener[64]; /* "127.0.0.2:80"; "" when unknown */
  char server[64];
  char roles[512]; /* how the hops were told apart, one line */
  bool ambiguous;  /* the roles could not be inferred and were not given */
  uint64_t requests, answers;
  uint64_t client_conns, upstream_conns, other_conns;
  uint64_t paired; /* upstream requests matched to a client request */
  uint64_t ntlm;   /* requests and answers that carry or offer NTLM */
  struct analyze_finding *findings; /* in the order found; owned */
  size_t nfindings;
  size_t counts[KB_DEFECT_COUNT]; /* every instance, kept or not */
  char (*notes)[320]; /* what one hop cannot show, one line each; owned */
  size_t nnotes;
  struct story story; /* the legs drawn by --html (bounded); owned */
};

/* Reads every file of cfg and fills *out (zeroed first; release with
 * analyze_result_free, also after a failure). Returns 0, or -1 when the
 * input cannot be read, with one line in err saying which file and why:
 * tshark missing, not a capture nor a HAR, a truncated capture, a HAR that
 * is not JSON, a capture without any HTTP. */
int analyze_run(const struct analyze_config *cfg, struct analyze_result *out,
                char *err, size_t errlen);

/* Frees what analyze_run filled in. Accepts NULL and a zeroed result. */
void analyze_result_free(struct analyze_result *r);

/* Writes "FILE:FRAME" for ref (or "FILE#ENTRY" for a HAR's) to out. */
void analyze_ref_format(const struct analyze_result *r,
                        const struct analyze_ref *ref, char *out, size_t len);

/* Prints one line per finding, the notes, and a summary line to out. */
void analyze_print(FILE *out, const struct analyze_result *r);

/* The exit status kbsim analyze gives r: 0 nothing of the family was
 * found, 1 something was. */
int analyze_exit(const struct analyze_result *r);

/* Writes r as the JSON report of kind "analysis" to path ("-": standard
 * output). Returns 0, or -1 with one line in err. */
int analyze_write_json(const struct analyze_result *r,
                       const struct analyze_config *cfg, const char *path,
                       char *err, size_t errlen);

/* Writes r as a JUnit suite, one testcase per defect of the family
 * (failed: found; skipped: the input cannot show it). Returns 0, or -1
 * with one line in err. */
int analyze_write_junit(const struct analyze_result *r, const char *path,
                        char *err, size_t errlen);

/* Writes the page: the findings, and the connections as the report's
 * sequence diagrams with each finding's legs in red. Returns 0, or -1 with
 * one line in err. */
int analyze_write_html(const struct analyze_result *r, const char *path,
                       char *err, size_t errlen);

#endif /* ANALYZE_H */
