/*
 * kbsim.c - the kbsim program: finds the command (demo, run, sweep, serve,
 * ctl, client, list, help) and runs it; --version, --help; the parsers the
 * commands share.
 *
 * Exit codes: 0 success (and, with --expect or in the demo, the outcome
 * matched); 1 the outcome differed from what was expected, or the topology
 * could not run; 2 bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"
#include "cli.h"
#include "evidence/evidence.h"
#include "evidence/version.h"

const char *kbsim_default_user = "FABRIKAM\\alice:Passw0rd!";

const char *kbsim_program = "kbsim";

const struct kbsim_command *const kbsim_commands[] = {
    &kbsim_demo_command,  &kbsim_run_command,  &kbsim_sweep_command,
    &kbsim_serve_command, &kbsim_ctl_command,  &kbsim_client_command,
    &kbsim_merge_command, &kbsim_list_command, &kbsim_exchange_command,
    &kbsim_probe_command, &kbsim_help_command, NULL};

const struct kbsim_fact kbsim_exit_codes[] = {
    {"0", "As expected: with --expect, in the demo and for scenario files "
          "every outcome was the one expected; client: the user saw no "
          "error; sweep: the rate is within --expect-rate."},
    {"1", "The outcome differed from what was expected (client: the user saw "
          "the Outlook Integration Error, its class server-error or "
          "auth-failed; ctl: the admin endpoint refused; probe: the "
          "listener is affected)."},
    {"2", "Bad arguments or a malformed scenario file: one line saying what "
          "was wrong, and where the help is."},
    {"3", "The harness could not run (class infrastructure): nothing "
          "listening, descriptors exhausted, a timeout of kbsim's own, an "
          "evidence file not writable. Never counted as the bug."},
    {NULL, NULL}};

const struct kbsim_fact kbsim_environment[] = {
    {"KBSIM_SCENARIOS", "Directories (colon-separated) where a scenario "
                        "named without a path is looked for, after the "
                        "current directory and before the catalogue."},
    {"NO_COLOR", "When set and not empty, the demo is not coloured unless "
                 "--color says so (no-color.org)."},
    {"COLUMNS",
     "The width demo, run and list wrap their output at when it "
     "is not a terminal (default 100; a terminal's own width wins)."},
    {"TERM", "The demo is not coloured on a dumb terminal."},
    {"KBSIM_PASSWORD",
     "The password of client --user DOMAIN\\user when the spec has none "
     "(else it is asked on the terminal, without echo)."},
    {NULL, NULL}};

/* ---- help --------------------------------------------------------------- */

static const struct kbsim_opt help_opts[] = {{NULL, 0, NULL, NULL}};

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

/* Parses a whole decimal number in [min, max]. Returns 0 or -1. */
int kbsim_evidence_status(enum evidence_status st, const char *err)
{
  if(st == EVIDENCE_BAD_ARGS)
    return kbsim_bad_args("%s", err);
  if(st) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 3;
  }
  return 0;
}

int kbsim_evidence_check(const struct evidence_want *want, const char *name)
{
  struct evidence_paths paths;
  char err[512];

  return kbsim_evidence_status(
      evidence_prepare(want, &name, 1, &paths, err, sizeof(err)), err);
}

int kbsim_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
  char *end = NULL;
  unsigned long long v;

  if(!text || !*text || *text == '-' || *text == '+')
    return -1;
  errno = 0;
  v = strtoull(text, &end, 10);
  if(errno || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

/* Parses "HOST:PORT" or "[V6]:PORT" into host (numeric address) and port.
 * Returns 0 or -1. */
int kbsim_parse_hostport(const char *text, char *host, size_t hostlen,
                         uint16_t *port)
{
  const char *colon;
  const char *start = text;
  size_t n;
  uint64_t p;

  if(text[0] == '[') {
    const char *close = strchr(text, ']');
    if(!close || close[1] != ':')
      return -1;
    start = text + 1;
    n = (size_t)(close - start);
    colon = close + 1;
  }
  else {
    colon = strrchr(text, ':');
    if(!colon)
      return -1;
    n = (size_t)(colon - text);
  }
  if(!n || n >= hostlen || kbsim_parse_u64(colon + 1, 0, 65535, &p))
    return -1;
  memcpy(host, start, n);
  host[n] = '\0';
  *port = (uint16_t)p;
  return 0;
}

int kbsim_parse_endpoint(const char *text, char *host, size_t hostlen,
                         uint16_t *port)
{
  char buf[256];
  size_t n;

  /* The URL serve prints: http://HOST:PORT/ */
  if(!strncmp(text, "http://", 7))
    text += 7;
  snprintf(buf, sizeof(buf), "%s", text);
  n = strlen(buf);
  if(n && buf[n - 1] == '/')
    buf[--n] = '\0';
  if(strchr(buf, '/') || kbsim_parse_hostport(buf, host, hostlen, port))
    return -1;
  if(!strcmp(host, "localhost") && hostlen > strlen("127.0.0.1"))
    snprintf(host, hostlen, "127.0.0.1");
  return 0;
}

int kbsim_load_scenario(const char *arg, struct scenario *sc)
{
  char path[4096], err[1024];

  if(catalogue_find(arg, path, sizeof(path), err, sizeof(err)) ||
     scenario_load(path, sc, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 2;
  }
  return 0;
}

int kbsim_parse_kind(const char *text, enum ntlm_response_kind *kind)
{
  if(!strcmp(text, "v2"))
    *kind = NTLM_RESPONSE_V2;
  else if(!strcmp(text, "v1"))
    *kind = NTLM_RESPONSE_V1;
  else if(!strcmp(text, "v1-ess"))
    *kind = NTLM_RESPONSE_V1_ESS;
  else
    return -1;
  return 0;
}

int main(int argc, char **argv)
{
  const struct kbsim_command *cmd;
  const char *best;

  /* Hints name the program as it was run, so they work when copied. */
  if(argc > 0 && argv[0] && strchr(argv[0], '/'))
    kbsim_program = argv[0];
  evidence_set_command_line(argc, argv);
  if(argc < 2)
    return kbsim_cmd_demo(1, argv);
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
    return kbsim_cmd_demo(argc, argv);
  best = kbsim_command_suggest(argv[1]);
  if(best)
    return kbsim_bad_args("unknown command '%s'; did you mean '%s'?", argv[1],
                          best);
  return kbsim_bad_args("unknown command '%s'", argv[1]);
}
