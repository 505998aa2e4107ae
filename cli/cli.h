/*
 * cli.h - what the kbsim commands share: usage (usage.h), the argument
 * helpers (args.c), what a user sees (view.c), and the commands
 * themselves, one file each, for kbsim.c's table.
 */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "evidence/ci.h"
#include "evidence/evidence.h"
#include "ntlm/ntlm.h"
#include "sim/run.h"
#include "sim/topology.h"
#include "usage.h"

#define KBSIM_MAX_CLIENTS 10000
#define KBSIM_MAX_POSTS 100
#define KBSIM_MAX_USERS 64

/* The option value of --redact, the same in every command that has it. */
#define KBSIM_OPT_REDACT 1001
/* ... and of --keylog. */
#define KBSIM_OPT_KEYLOG 1002

/* --keylog FILE's help, the same in run, client and serve. */
#define KBSIM_KEYLOG_HELP                                                      \
  "Append the TLS secrets of every connection kbsim makes or accepts "         \
  "(libcurl's and libmicrohttpd's GnuTLS, through SSLKEYLOGFILE) to FILE, "    \
  "in NSS's key log format, so Wireshark decrypts a capture of the "           \
  "loopback (tcpdump -i lo) with it. run's own --pcap carries the TLS and "    \
  "its secrets; client's and serve's are rebuilt from the plaintext."

/* Prints a usage error, "kbsim CMD: <message>" (a leading "CMD: " in the
 * message is dropped), and "kbsim: try 'kbsim CMD --help'" to stderr;
 * returns 2, the exit code for bad arguments (usage.c). */
int kbsim_bad_args(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads --ca-file path's PEM text (a CA certificate, under 64 KiB) into
 * *out, freeing what *out held; the caller frees it. Returns 0, or 2 after
 * printing what was wrong (kbsim_bad_args). */
int kbsim_read_ca(const char *path, char **out);

/* ---- args.c ---------------------------------------------------------- */

/* "FABRIKAM\alice:Passw0rd!", the user of the demo and of flag runs. */
extern const char *kbsim_default_user;

/* Returns the exit code for st after printing err: 0, 2 for flags that
 * cannot work together, 3 for evidence that cannot be written. */
int kbsim_evidence_status(enum evidence_status st, const char *err);

/* evidence_prepare for one run named name, before anything runs: every
 * file want asks for can be written, "-" claims standard output. Returns
 * 0 or the exit code (kbsim_evidence_status). */
int kbsim_evidence_check(const struct evidence_want *want, const char *name);

/* --keylog FILE: checks FILE can be appended to and sets SSLKEYLOGFILE to
 * it for libcurl (read at its global init, which has not run yet) and
 * GnuTLS (read at the first handshake). Returns 0, or 3 after printing
 * one line when FILE cannot be written. */
int kbsim_keylog(const char *path);

/* Parses a whole decimal number in [min, max]: digits only, no sign, no
 * space. Returns 0 or -1. */
int kbsim_parse_u64(const char *text, uint64_t min, uint64_t max,
                    uint64_t *out);

/* Parses "HOST:PORT" or "[V6]:PORT". Returns 0 or -1. */
int kbsim_parse_hostport(const char *text, char *host, size_t hostlen,
                         uint16_t *port);

/* Parses "v2", "v1", "v1-ess". Returns 0 or -1. */
int kbsim_parse_kind(const char *text, enum ntlm_response_kind *kind);

/* Parses an --admin or --proxy value: HOST:PORT, [V6]:PORT or the URL
 * serve prints (http://127.0.0.1:8099/); "localhost" is 127.0.0.1.
 * Returns 0 or -1. */
int kbsim_parse_endpoint(const char *text, char *host, size_t hostlen,
                         uint16_t *port);

/* Resolves a scenario argument (a path or a catalogue name, catalogue.h)
 * and loads it. Returns 0, or 2 after printing a one-line error. */
int kbsim_load_scenario(const char *arg, struct scenario *sc);

/* As kbsim_load_scenario, printing nothing: the one-line error goes into
 * err. Returns 0 or 2. */
int kbsim_read_scenario(const char *arg, struct scenario *sc, char *err,
                        size_t errlen);

/* Fills *v, the JUnit and TAP case of a scenario file that could not be
 * read: named for the file as given (its name without the directory and
 * ".ini", as the catalogue names it: the scenario's own name is not
 * known), an error of type "bad-scenario" with err, the one-line reason,
 * as its message; seconds is how long the reading took. */
void kbsim_bad_scenario_case(const char *arg, const char *err, double seconds,
                             struct ci_case *v);

/* Seconds since start, read from CLOCK_MONOTONIC: how long a test case
 * took, for JUnit's time. */
double kbsim_seconds_since(const struct timespec *start);

/* Copies the string src into dst of size n (n > 0), cut to fit and always
 * terminated. Can't fail. */
void kbsim_copy(char *dst, size_t n, const char *src);

/* ---- view.c ---------------------------------------------------------- */

/* Prints what a user sees, one line per item, each prefixed by indent. */
void kbsim_print_view(const char *indent, const struct client_view *v,
                      const struct client_kind_info *kind);

/* ---- the commands: cmd_NAME.c, help.c ---------------------------------- */

extern const struct kbsim_command kbsim_demo_command;
extern const struct kbsim_command kbsim_run_command;
extern const struct kbsim_command kbsim_sweep_command;
extern const struct kbsim_command kbsim_serve_command;
extern const struct kbsim_command kbsim_ctl_command;
extern const struct kbsim_command kbsim_client_command;
extern const struct kbsim_command kbsim_list_command;
extern const struct kbsim_command kbsim_merge_command;
extern const struct kbsim_command kbsim_exchange_command;
extern const struct kbsim_command kbsim_probe_command;
extern const struct kbsim_command kbsim_analyze_command;
extern const struct kbsim_command kbsim_help_command;

#endif /* CLI_H */
