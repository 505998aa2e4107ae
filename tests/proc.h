/*
 * proc.h - test support for the suites that run programs: runs one with
 * its stdout and stderr captured (no shell, no deadlock on full pipes),
 * kbsim itself, python3-jsonschema, tshark and curl's NTLM; makes and
 * removes scratch directories, reads whole files, counts what a text
 * says; and the skip protocol for a missing tool.
 */
#ifndef TESTS_PROC_H
#define TESTS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/kb_buf.h"

struct proc_out {
  struct kb_buf out; /* stdout, NUL-terminated */
  struct kb_buf err; /* stderr, NUL-terminated */
  int status;        /* exit code, or 128 + signal */
};

/* Starts argv[0] (a path) with stdout and stderr on pipes; returns the pid
 * and the read ends. Fails the running test if it cannot. */
pid_t proc_spawn(char *const argv[], int *outfd, int *errfd);

/* Reads both pipes to their end, reaps pid and fills *p (initialised
 * here); release with proc_free. */
void proc_collect(pid_t pid, int outfd, int errfd, struct proc_out *p);

/* proc_spawn + proc_collect. */
void proc_run(char *const argv[], struct proc_out *p);

#ifdef KBSIM_BIN
/* Runs the kbsim under test with args (NULL-terminated, after the program
 * name) into *p; the caller checks p->status. */
void proc_kbsim(struct proc_out *p, const char *const *args);

/* proc_kbsim, failing the running test (with what kbsim printed) unless
 * it exits want. */
void proc_kbsim_exits(struct proc_out *p, const char *const *args, int want);

/* PROC_KBSIM(&p, "run", "--seed", "3"): proc_kbsim with those arguments. */
#define PROC_KBSIM(p, ...)                                                     \
  proc_kbsim((p), (const char *const[]){__VA_ARGS__, NULL})
#endif

void proc_free(struct proc_out *p);

/* Makes a new directory "/tmp/<prefix>-XXXXXX" into dir (at least 256
 * bytes). Fails the running test if it cannot. */
void proc_tmpdir(const char *prefix, char *dir, size_t len);

/* Removes dir and everything in it, in this process. */
void proc_rmdir(const char *dir);

/* Reads a whole file, NUL-terminated; fails the running test when it
 * cannot. Stores its length in *len when len is not NULL. Caller frees. */
char *proc_slurp(const char *path, size_t *len);

/* The exit code of a suite that passed but skipped tests for a missing
 * tool (CTest's SKIP_RETURN_CODE; tests/run-suites reports it). */
#define PROC_SKIPPED 77

/* Returns true when path exists and, unless it ends in a '/'-free data
 * file, can be run. Tests that need a third-party tool return early when
 * this is false; the suite's main calls proc_skip_unless for the same
 * path, so the skip is said once and counted. */
bool proc_have(const char *path);

/* Returns false when path is there; otherwise prints "skip: <test>: needs
 * <path> (<how>)" on stderr and returns true. */
bool proc_skip_unless(const char *path, const char *test, const char *how);

/* MIT's KDC, which a scenario with [kerberos] (sim/kdc.h) and
 * tests/test_kerberos.c start. */
#define PROC_KRB5KDC "/usr/sbin/krb5kdc"

/* Whether the scenario file at path can run here: false for one with a
 * [kerberos] section while MIT's KDC is missing. The catalogue's suites
 * leave such a file out and their main says so with
 * proc_skip_unless(PROC_KRB5KDC, ...). */
bool proc_scenario_runs(const char *path);

/* The suite's exit code: EXIT_FAILURE when a test failed, PROC_SKIPPED
 * when none failed but one was skipped, else EXIT_SUCCESS. */
int proc_suite_exit(int failed, bool skipped);

/* Returns NULL when p is a kbsim usage error - exit 2, nothing on stdout,
 * and on stderr exactly one line "kbsim...: <what>" and one line
 * "kbsim: try '... --help'" - or else what is wrong with it. */
const char *proc_usage_error(const struct proc_out *p);

/* Posts the file body to url with curl's own NTLM as credentials
 * ("DOMAIN\\user:password") and asserts the answer: with ok, curl exits 0
 * and gets a 200 carrying GetUserOofSettingsResponse; else a 401 carrying
 * none. */
void proc_curl_ntlm(const char *url, const char *credentials, const char *body,
                    bool ok);

/* Runs tshark on pcap: the packets filter displays, one line each with
 * field and, unless NULL, field2, tab-separated. Fails the running test
 * when tshark does. Free p with proc_free. */
void proc_tshark(const char *pcap, const char *filter, const char *field,
                 const char *field2, struct proc_out *p);

/* Counts the lines of s that equal line exactly. */
int proc_count_lines(const char *s, const char *line);

/* Counts the occurrences of needle in s that do not overlap. */
int proc_count(const char *s, const char *needle);

/* Returns true when an executable named name is in a directory of PATH,
 * and writes its path into out unless out is NULL. */
bool proc_which(const char *name, char *out, size_t len);

/* Where Debian's python3-jsonschema lives: tests that need it check for
 * it with proc_have. */
#define PROC_JSONSCHEMA "/usr/lib/python3/dist-packages/jsonschema"

#ifdef TESTS_DIR
/* The GetUserOofSettings request Communicator POSTs, as a file. */
#define PROC_OOF_REQUEST TESTS_DIR "/data/oof-request.xml"

/* Runs a Python judge of tests/ci (argv[0] its path, then its arguments,
 * none with a tab or a newline) in the one python3 process the test
 * program keeps from its first call to its exit (tests/ci/judge.py), and
 * fills *p as proc_run would (release with proc_free). */
void proc_judge(char *const argv[], struct proc_out *p);

/* Judges each JSON file of paths (NULL-terminated) against the JSON
 * schema at schema with python3-jsonschema, through proc_judge
 * (tests/ci/schema_each.py): *p gets a line per file, "valid FILE" or
 * "invalid FILE: why" (release with proc_free). Returns how many files
 * were invalid; fails the running test when python3 could not judge them
 * (python3-jsonschema missing, a file unreadable). */
int proc_schema_each(const char *schema, const char *const *paths,
                     struct proc_out *p);

/* proc_schema_each, failing the running test unless every file is
 * valid. */
void proc_assert_schema(const char *schema, const char *const *paths);
#endif
/* Reads a server's stdout (fd) line by line until a line starts with
 * prefix followed by a port number; returns the port, or 0 at EOF. Reads
 * a byte at a time, so nothing after that line is consumed. */
unsigned proc_read_port(int fd, const char *prefix);

/* Sets COLUMNS so kbsim writes whole lines: the checks that call it read
 * what a line says; wrapping has its own tests (test_cli). */
void proc_whole_lines(void);

#endif /* TESTS_PROC_H */
