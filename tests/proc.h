/*
 * proc.h - test support: runs a program with its stdout and stderr
 * captured (no shell, no deadlock on full pipes), makes and removes
 * scratch directories, reads whole files.
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

/* Makes a new directory "/tmp/<prefix>-XXXXXX" into dir (at least 256
 * bytes). Fails the running test if it cannot. */
void proc_tmpdir(const char *prefix, char *dir, size_t len);

/* Removes dir and everything in it. */
void proc_rmdir(const char *dir);

/* Reads a whole file, NUL-terminated; fails the running test when it
 * cannot. Stores its length in *len when len is not NULL. Caller frees. */
char *proc_slurp(const char *path, size_t *len);

/* Returns NULL when p is a kbsim usage error - exit 2, nothing on stdout,
 * and on stderr exactly one line "kbsim...: <what>" and one line
 * "kbsim: try '... --help'" - or else what is wrong with it. */
const char *proc_usage_error(const struct proc_out *p);

#endif /* TESTS_PROC_H */
