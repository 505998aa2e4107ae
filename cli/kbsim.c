/*
 * kbsim.c - the kbsim program's main: finds the command in one table and
 * runs it, as git.c does; --version, --help (and the hidden --man and
 * --completion the build uses) are answered here. It also sets glibc's
 * trim threshold for the whole process (KBSIM_TRIM_THRESHOLD).
 *
 * Commands, one file each (cmd_NAME.c; help in help.c): demo, run, sweep,
 * merge, serve, ctl, client, list, exchange, probe, analyze, help. Without a
 * command, or with options only, kbsim runs the demo.
 *
 * Exit codes (kbsim_exit_codes below, for the man page):
 *   0  As expected: with --expect, in the demo and for scenario files
 *      every outcome was the one expected; client: the user saw no error;
 *      sweep: the rate is within --expect-rate.
 *   1  The outcome differed from what was expected (client: the user saw
 *      the Outlook Integration Error, its class server-error or
 *      auth-failed; ctl: the admin endpoint refused; probe: the listener
 *      is affected; analyze: a failure of the family was found).
 *   2  Bad arguments or a malformed scenario file: one line saying what
 *      was wrong, and where the help is.
 *   3  The harness could not run (class infrastructure): nothing
 *      listening, descriptors exhausted, a timeout of kbsim's own, an
 *      evidence file not writable, an input analyze cannot read. Never
 *      counted as the bug.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "evidence/evidence.h"
#include "evidence/version.h"

const char *kbsim_program = "kbsim";

const struct kbsim_command *const kbsim_commands[] = {&kbsim_demo_command,
                                                      &kbsim_run_command,
                                                      &kbsim_sweep_command,
                                                      &kbsim_serve_command,
                                                      &kbsim_ctl_command,
                                                      &kbsim_client_command,
                                                      &kbsim_merge_command,
                                                      &kbsim_list_command,
                                                      &kbsim_exchange_command,
                                                      &kbsim_probe_command,
                                                      &kbsim_analyze_command,
                                                      &kbsim_help_command,
                                                      NULL};

const struct kbsim_fact kbsim_exit_codes[] = {
    {"0", "As expected: with --expect, in the demo and for scenario files "
          "every outcome was the one expected; client: the user saw no "
          "error; sweep: the rate is within --expect-rate."},
    {"1", "The outcome differed from what was expected (client: the user saw "
          "the Outlook Integration Error, its class server-error or "
          "auth-failed; ctl: the admin endpoint refused; probe: the "
          "listener is affected; analyze: a failure of the family was "
          "found)."},
    {"2", "Bad arguments or a malformed scenario file: one line saying what "
          "was wrong, and where the help is."},
    {"3", "The harness could not run (class infrastructure): nothing "
          "listening, descriptors exhausted, a timeout of kbsim's own, an "
          "evidence file not writable, an input analyze cannot read. Never "
          "counted as the bug."},
    {NULL, NULL}};

/* glibc's trim threshold for the whole process. Each libcurl 7.88 transfer
 * allocates a 16 KiB receive buffer and frees it when it ends, and a
 * listener's event loop runs many transfers at once, so the free space at
 * the top of its heap crossed the default threshold (128 KiB) and back
 * hundreds of times a second under load: glibc gave the pages back
 * (madvise, with a TLB shootdown on the other cores) and faulted them in
 * again, 5-10 % of the listener's CPU per request (bench/README.md).
 * Keeping up to 4 MiB free at the top of each heap (one per thread that
 * allocates) leaves the peak memory as it was. */
#define KBSIM_TRIM_THRESHOLD (4 * 1024 * 1024)

/* Prints the version, the commit and the libraries. */
static int kbsim_version_print(void)
{
  struct version_lib libs[VERSION_MAX_LIBS];
  size_t n = version_libs(libs, VERSION_MAX_LIBS), i;

  printf("kbsim %s (commit %s)\nlibraries:", version_kbsim(), version_commit());
  for(i = 0; i < n; i++)
    printf("%s %s %s", i ? "," : "", libs[i].name, libs[i].version);
  printf("\n");
  return 0;
}

int main(int argc, char **argv)
{
  const struct kbsim_command *cmd;
  const char *best, *epoch = getenv("SOURCE_DATE_EPOCH");
  char err[256];

#ifdef M_TRIM_THRESHOLD
  mallopt(M_TRIM_THRESHOLD, KBSIM_TRIM_THRESHOLD);
#endif
  /* Hints name the program as it was run, so they work when copied. */
  if(argc > 0 && argv[0] && strchr(argv[0], '/'))
    kbsim_program = argv[0];
  evidence_set_command_line(argc, argv);
  if(epoch && evidence_set_written_epoch(epoch, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 2;
  }
  if(argc < 2)
    return kbsim_demo_command.run(1, argv);
  if(!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
    return kbsim_version_print();
  if(!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    kbsim_help_all(stdout, 80);
    return 0;
  }
  /* Hidden: what the build installs, from the option tables. */
  if(!strcmp(argv[1], "--man")) {
    kbsim_man(stdout);
    return 0;
  }
  if(!strcmp(argv[1], "--completion")) {
    if(argc != 3 || kbsim_completion(stdout, argv[2]))
      return kbsim_bad_args("--completion takes bash or zsh");
    return 0;
  }
  cmd = kbsim_command_find(argv[1]);
  if(cmd)
    return cmd->run(argc - 1, argv + 1);
  /* Options without a command are the demo's: kbsim --seed 3. */
  if(argv[1][0] == '-')
    return kbsim_demo_command.run(argc, argv);
  best = kbsim_command_suggest(argv[1]);
  if(best)
    return kbsim_bad_args("unknown command '%s'; did you mean '%s'?", argv[1],
                          best);
  return kbsim_bad_args("unknown command '%s'", argv[1]);
}
