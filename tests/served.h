/*
 * served.h - a `kbsim serve` (or `kbsim exchange`) a test runs
 * (KBSIM_BIN): its process, pipes and what its banner said.
 */
#ifndef TESTS_SERVED_H
#define TESTS_SERVED_H

#include <sys/types.h>

#include "common/kb_buf.h"

/* A running `kbsim serve`: its pid, pipes and the ports it printed. */
struct served {
  pid_t pid;
  int outfd, errfd;
  struct kb_buf banner; /* stdout up to and including "serving until" */
  unsigned balancer, admin, listener, exchange;
  unsigned members[4];
  char token[160];      /* from the Console line */
  char token_path[512]; /* from the Token file line */
  struct kb_buf rest;   /* stdout after the banner, filled by served_stop */
};

/* Starts kbsim serve with args (NULL-terminated, after "serve") and reads
 * its banner up to "serving until", taking the ports and the console's
 * token from it. The server dies with the test (PR_SET_PDEATHSIG),
 * whatever the test's fate. */
void served_start(struct served *s, const char *const *args);

/* The same for another command that prints "serving until" once it
 * listens (`kbsim exchange`). */
void served_start_command(struct served *s, const char *command,
                          const char *const *args);

/* The port s's banner printed after label ("Admin:") as
 * http://127.0.0.1:PORT/ (or https://), or 0. */
unsigned served_port(const struct served *s, const char *label);

/* Stops the server with SIGTERM; it must exit 0 having said so, and
 * nothing on stderr. What it printed after the banner is in s->rest (the
 * caller frees it). */
void served_stop(struct served *s);

#endif /* TESTS_SERVED_H */
