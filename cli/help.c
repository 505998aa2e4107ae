/*
 * help.c - `kbsim help [COMMAND]`: the list of commands, or one command's
 * usage and options, printed from the command tables (usage.c).
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static const struct kbsim_opt help_opts[] = {{NULL, 0, NULL, NULL}};

static int kbsim_cmd_help(int argc, char **argv);

const struct kbsim_command kbsim_help_command = {
    "help",
    "[COMMAND]",
    "show a command's usage and options, or list the commands",
    "Without a command, lists the commands; with one, prints its usage and "
    "options, as 'kbsim COMMAND --help' does. 'man kbsim' has everything in "
    "one page.",
    help_opts,
    "@command",
    kbsim_cmd_help};

/* `kbsim help [COMMAND]`. */
static int kbsim_cmd_help(int argc, char **argv)
{
  struct kbsim_args a;
  const struct kbsim_command *cmd;
  const char *best;
  int c;

  kbsim_args_init(&a, &kbsim_help_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    ;
  if(c < 0)
    return a.status;
  if(optind == argc) {
    kbsim_help_all(stdout, 80);
    return 0;
  }
  if(optind + 1 < argc)
    return kbsim_bad_args("give one command, not '%s' too", argv[optind + 1]);
  cmd = kbsim_command_find(argv[optind]);
  if(cmd) {
    kbsim_help(stdout, cmd, 80);
    return 0;
  }
  best = kbsim_command_suggest(argv[optind]);
  if(best)
    return kbsim_bad_args("no command '%s'; did you mean '%s'?", argv[optind],
                          best);
  return kbsim_bad_args("no command '%s'", argv[optind]);
}
