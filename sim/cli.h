/*
 * cli.h - what the kbsim commands share: usage, argument errors and
 * parsers, and the commands themselves (one file each).
 */
#ifndef CLI_H
#define CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ntlm.h"
#include "run.h"
#include "topology.h"

#define KBSIM_MAX_CLIENTS 1000
#define KBSIM_MAX_POSTS 100
#define KBSIM_MAX_USERS 64

/* "FABRIKAM\alice:Passw0rd!", the user of the demo and of flag runs. */
extern const char *kbsim_default_user;

void kbsim_usage(FILE *out);

/* Prints "kbsim: <message>", a blank line and the usage to stderr; returns
 * 2, the exit code for bad arguments. */
int kbsim_bad_args(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parses a whole decimal number in [min, max]. Returns 0 or -1. */
int kbsim_parse_u64(const char *text, uint64_t min, uint64_t max,
                    uint64_t *out);

/* Parses "HOST:PORT" or "[V6]:PORT". Returns 0 or -1. */
int kbsim_parse_hostport(const char *text, char *host, size_t hostlen,
                         uint16_t *port);

/* Parses "v2", "v1", "v1-ess". Returns 0 or -1. */
int kbsim_parse_kind(const char *text, enum ntlm_response_kind *kind);

/* Prints what a user sees, one line per item, each prefixed by indent. */
void kbsim_print_view(const char *indent, const struct client_view *v);

int kbsim_cmd_demo(int argc, char **argv);
int kbsim_cmd_run(int argc, char **argv);
int kbsim_cmd_sweep(int argc, char **argv);
int kbsim_cmd_serve(int argc, char **argv);
int kbsim_cmd_ctl(int argc, char **argv);
int kbsim_cmd_client(int argc, char **argv);
int kbsim_cmd_exchange(int argc, char **argv);
int kbsim_cmd_probe(int argc, char **argv);

#endif /* CLI_H */
