/*
 * usage.h - kbsim's command line as data. Each command is a struct
 * kbsim_command with one table of options; getopt_long's entries, the
 * `--help` text, the man page (kbsim.1) and the shell completions are all
 * made from these tables, so they cannot drift apart. Adding an option to
 * a command is one line in its table and one case in its switch.
 *
 * Everything here is read-only data or works on the caller's memory; the
 * parser uses getopt_long's globals (optind, optarg), so one command line
 * is parsed at a time, on the main thread.
 */
#ifndef USAGE_H
#define USAGE_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define KBSIM_MAX_OPTS 40 /* options of one command */

/* One option. arg is NULL for a flag; "N", "FILE", "HOST:PORT"... names the
 * value; "a|b|c" lists the only values allowed (completed by the shells);
 * "[a|b]" is a value that may be left out (--color, --color always,
 * --color=always). */
/* What of an option's value must not stay in the process's command line,
 * where ps and /proc/PID/cmdline show it to every user of the machine. */
enum kbsim_secret {
  KBSIM_SECRET_NONE = 0,
  KBSIM_SECRET_PASSWORD, /* 'DOMAIN\user:password': what follows the ':' */
  KBSIM_SECRET_WHOLE     /* a token: all of it */
};

struct kbsim_opt {
  const char *name; /* "policy" for --policy */
  int val;          /* what kbsim_args_next returns; > 0, not 'h' */
  const char *arg;
  const char *help; /* what it does, in sentences */
};

/* One command: `kbsim NAME ...`. */
struct kbsim_command {
  const char *name;             /* "run" */
  const char *synopsis;         /* its forms after "kbsim NAME ", one a line */
  const char *summary;          /* one line for the list of commands */
  const char *description;      /* paragraphs ("\n\n" between), for --help and
                                   the man page */
  const struct kbsim_opt *opts; /* ends with {NULL, 0, NULL, NULL} */
  const char *operands;         /* what the operands complete to:
                                   "@scenario", "@command", "@files" (any
                                   file), words ("status apply-fix ..."), or
                                   NULL for none */
  int (*run)(int argc, char **argv); /* argv[0] is the command's name */
};

/* Every command, in the order `kbsim --help` lists them, NULL-terminated
 * (kbsim.c). */
extern const struct kbsim_command *const kbsim_commands[];

/* The program's name as the user ran it ("kbsim", "build/bin/kbsim"), for
 * hints that must work when copied (kbsim.c sets it first). */
extern const char *kbsim_program;

/* One exit status or environment variable, for the man page. */
struct kbsim_fact {
  const char *name; /* "0", "KBSIM_SCENARIOS" */
  const char *text;
};
/* The program's exit codes (kbsim.c), ending with {NULL}; the man page's
 * environment variables are its own (manpage.c). */
extern const struct kbsim_fact kbsim_exit_codes[];

/* A parse of one command's arguments. */
struct kbsim_args {
  const struct kbsim_command *cmd;
  int argc;
  char **argv;
  int status;   /* after kbsim_args_next returned -1: the exit code */
  char *secret; /* the value last returned, to hide */
  enum kbsim_secret secret_kind;
  struct option longopts[KBSIM_MAX_OPTS + 2];
  /* getopt's short options: ":h" and, for each flag without a value whose
   * val is its name's first letter (quiet 'q', verbose 'v'), that letter. */
  char shortopts[KBSIM_MAX_OPTS + 4];
};

/* Starts parsing argv (argv[0] is the command's name) for cmd. Can't
 * fail. */
void kbsim_args_init(struct kbsim_args *a, const struct kbsim_command *cmd,
                     int argc, char **argv);

/* Returns the next option's val with optarg set to its value (NULL when an
 * optional value was left out), after hiding the secret part of the value
 * it returned last when its option carries one (usage.c); 0 when the
 * options are done (operands start at optind); -1 when the command must exit
 * with a->status: 0 after printing its help (--help, -h), 2 after printing a
 * usage error (unknown or ambiguous option, with a did-you-mean; a missing
 * value). Both
 * `--opt value` and `--opt=value` are accepted. */
int kbsim_args_next(struct kbsim_args *a);

/* Looks a command up by name; NULL when there is none. */
const struct kbsim_command *kbsim_command_find(const char *name);

/* Returns the command name closest to word (kbsim_did_you_mean), or
 * NULL. */
const char *kbsim_command_suggest(const char *word);

/* Prints cmd's help (usage forms, description, options) to out, wrapped
 * at columns. */
void kbsim_help(FILE *out, const struct kbsim_command *cmd, int columns);

/* Prints the program's short help (commands, global options) to out. */
void kbsim_help_all(FILE *out, int columns);

/* Returns the candidate closest to word (edit distance of at most a
 * third of its length, at least 1, at most 3), or NULL when none is
 * close. */
const char *kbsim_did_you_mean(const char *word, const char *const *candidates,
                               size_t n);

/* Writes the man page kbsim.1 in roff to out (manpage.c). */
void kbsim_man(FILE *out);

/* Writes the completion script for shell ("bash" or "zsh") to out
 * (manpage.c). Returns 0, or -1 for another shell. */
int kbsim_completion(FILE *out, const char *shell);

#endif /* USAGE_H */
