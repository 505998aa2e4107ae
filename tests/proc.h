/*
 * proc.h - runs a program for a test with its stdout and stderr captured,
 * without a shell and without deadlocking on full pipes.
 */
#ifndef TESTS_PROC_H
#define TESTS_PROC_H

#include <sys/types.h>

#include "kb_buf.h"

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

void proc_free(struct proc_out *p);

#endif /* TESTS_PROC_H */
