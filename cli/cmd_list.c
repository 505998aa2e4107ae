/*
 * cmd_list.c - `kbsim list`: the installed scenario catalogue, one line
 * per scenario (name, expected outcome, what it shows), or only the names
 * for scripts and shell completion.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "catalogue.h"
#include "cli.h"
#include "wrap.h"

static int kbsim_cmd_list(int argc, char **argv);

static const struct kbsim_opt list_opts[] = {
    {"names", 'n', NULL,
     "Print only the names, one a line (for scripts and "
     "shell completion)."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_list_command = {
    "list",
    "[--names]",
    "the scenario catalogue: name, outcome, what each shows",
    "Prints the installed scenario catalogue, one line per scenario: its "
    "name (what 'kbsim run NAME' takes), the outcome it expects (error: a "
    "user sees the Outlook Integration Error; clean: nobody does) and what "
    "it shows. The files are plain INI; copy one to start a scenario of "
    "your own.",
    list_opts,
    NULL,
    kbsim_cmd_list};

static int kbsim_cmd_list(int argc, char **argv)
{
  struct kbsim_args a;
  struct scenario sc;
  char **names = NULL;
  char dir[PATH_MAX], path[PATH_MAX + 256], err[1024];
  bool only_names = false;
  size_t n = 0, i, width = 4;
  int c, result = 0;

  kbsim_args_init(&a, &kbsim_list_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 'n':
      only_names = true;
      break;
    }
  }
  if(c < 0)
    return a.status;
  if(optind < argc)
    return kbsim_bad_args("unexpected argument '%s'; list takes no operands",
                          argv[optind]);
  if(catalogue_names(&names, &n, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 1;
  }
  catalogue_dir(dir, sizeof(dir));
  for(i = 0; i < n; i++)
    if(strlen(names[i]) - 4 > width)
      width = strlen(names[i]) - 4;
  if(!only_names)
    (void)wrap_stdout(wrap_columns(STDOUT_FILENO));
  for(i = 0; i < n; i++) {
    int len = (int)strlen(names[i]) - 4;

    if(only_names) {
      printf("%.*s\n", len, names[i]);
      continue;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    if(scenario_load(path, &sc, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      result = 1;
      continue;
    }
    printf("%-*.*s  %-5s  " WRAP_HANG "%s\n", (int)width, len, names[i],
           sc.expect.outcome < 0 ? "-"
           : sc.expect.outcome   ? "error"
                                 : "clean",
           sc.description);
  }
  catalogue_names_free(names, n);
  return result;
}
