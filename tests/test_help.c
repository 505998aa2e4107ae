/*
 * test_help.c - every claim a command's --help makes that a test can check
 * is checked against what the command does: each numeric range ("1 to
 * 100") at both ends and just outside them, each default, each limit ("at
 * most twice") and each exit code it names. A claim in a help text that no
 * row below checks fails the test, so a new claim comes with its check.
 */
#include <check.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbt.h"
#include "proc.h"

#define ALICE "FABRIKAM\\alice:Passw0rd!"
/* Nothing listens on port 1 of loopback: a client or probe that gets
 * that far exits 3 at once. */
#define NOWHERE "http://127.0.0.1:1/"
/* An evidence path that cannot be written: checked before anything runs,
 * so a command that gets past its arguments exits 3 at once. */
#define UNWRITABLE "/nonexistent/kbsim/x.json"

/* How to run a command up to the point where an option's value has been
 * judged: its required arguments, and what stops it right after. */
struct help_cmd {
  const char *name;
  const char *before; /* arguments before the option under test */
  const char *after;  /* arguments after it, stopping the run early */
};

static const struct help_cmd help_cmds[] = {
    {"demo", "", "--html " UNWRITABLE},
    {"run", "--policy per-request", "--json " UNWRITABLE},
    {"sweep", "fix --seeds 1..2", "--json " UNWRITABLE},
    {"client", "--url " NOWHERE " --user " ALICE, ""},
    {"probe", NOWHERE " --user " ALICE, ""},
    /* Nothing listens on port 1: a session that gets that far exits 1. */
    {"ctl", "--admin 127.0.0.1:1 --token 0123456789abcdef0123 session", ""},
};

/* One claim and how it is checked: run `kbsim ARGS` (split at spaces) and
 * expect exit status exit with want in its output (stdout then stderr);
 * want NULL: anything. */
struct help_claim {
  const char *command;
  const char *claim; /* as the help says it, wrapped lines joined */
  const char *args;
  int exit;
  const char *want;
};

/* The claims that are not ranges (ranges are checked by rule, below).
 * Defaults are checked by running with and without the option and
 * comparing (help_same), here by what the output says. */
static const struct help_claim help_claims[] = {
    {"demo", "Exits 0 only when both behave as the KB says", "demo", 0,
     "Verdict: as KB 942638 describes"},
    {"run", "exits 1 on any mismatch",
     "run " TESTS_DIR "/data/wrong-expectation.ini", 1,
     "FAIL wrong-expectation"},
    {"run", "A malformed file is refused before anything runs (exit 2)",
     "run " TESTS_DIR "/data/bad-scenarios/syntax.ini", 2, NULL},
    {"run", "exit 3 when one cannot be written", "run fix --json " UNWRITABLE,
     3, "cannot"},
    {"run", "Exit 1 unless the outcome is this",
     "run --policy per-request --expect error", 1, NULL},
    {"run", "at least one user saw the Outlook Integration Error",
     "run --policy per-connection --expect error", 0, NULL},
    {"sweep", "at most 1000000", "sweep fix --seeds 1..1000001", 2,
     "at most 1000000 seeds"},
    {"sweep", "Exit 1 unless the whole 95% interval",
     "sweep bug --seeds 1..3 --expect-rate 0%..10%", 1, NULL},
    {"sweep", "at most 3 keys",
     "sweep fix --seeds 1..2 --vary clients.think=1s,2s --vary "
     "clients.think=3s,4s --vary clients.think=5s,6s --vary "
     "clients.think=7s,8s",
     2, "at most 3 keys"},
    {"exchange", "Exits 0 after a signal, 1 when it could not start",
     "exchange --listen 192.0.2.1:8080", 1, "cannot listen"},
    {"client", "3 when the session could not run",
     "client --url " NOWHERE " --user " ALICE, 3, NULL},
    {"probe",
     "Exits 0 when no defect was found, 1 when any was, 3 when the "
     "listener could not be probed",
     "probe " NOWHERE " --user " ALICE, 3, NULL},
    {"probe", "at most twice",
     "probe " NOWHERE " --user " ALICE " --user FABRIKAM\\bob:x --user "
     "FABRIKAM\\carol:y",
     2, "at most two --user"},
};

/* Defaults, checked by comparing the output with the option left out and
 * given its default: the same bytes. */
struct help_default {
  const char *command;
  const char *claim;
  const char *without, *with;
};

static const struct help_default help_defaults[] = {
    {"probe", "(default 10)", "probe " NOWHERE " --user " ALICE,
     "probe " NOWHERE " --user " ALICE " --timeout 10"},
    {"demo", "(default 1)", "demo --color=never",
     "demo --color=never --seed 1"},
    {"demo", "(default 2)", "demo --color=never",
     "demo --color=never --posts 2"},
    {"demo", "(default communicator)", "demo --color=never",
     "demo --color=never --kind communicator"},
    {"demo", "(default none: plain HTTP)", "demo --color=never",
     "demo --color=never --tls none"},
    {"run", "(default 1)", "run --policy per-connection",
     "run --policy per-connection --clients 1"},
    {"run", "(default 2)", "run --policy per-connection",
     "run --policy per-connection --posts 2"},
    {"run", "(default v2)", "run --policy per-connection --transcript -",
     "run --policy per-connection --ntlm v2 --transcript -"},
    {"run", "(default FABRIKAM\\alice:Passw0rd!)",
     "run --policy per-connection --transcript -",
     "run --policy per-connection --user " ALICE " --transcript -"},
    {"sweep", "(default: one per core)", "sweep fix --seeds 1..4",
     "sweep fix --seeds 1..4 --jobs 2"},
};

/* Claims checked by another suite, and where: a long-running server's
 * defaults, a session's, and codes that need more than one command. */
struct help_where {
  const char *command;
  const char *claim;
  const char *where;
};

static const struct help_where help_elsewhere[] = {
    {"demo", "at most 100 columns when it is not a terminal",
     "test_cli: output_wraps_at_spaces"},
    /* TLS runs make a CA each: their bindings differ run to run. */
    {"demo", "(default none)", "test_report: demo_of_tls_and_epa"},
    {"sweep", "exit 3", "test_ci: sweep_gates_on_its_rate"},
    {"sweep", "exit 130", "test_ci: sweep_interrupted_reports_partial"},
    {"merge", "exit 1 when a rate misses its expectation",
     "test_ci: shards_merge_to_one_run"},
    {"merge", "3 when a seed could not run",
     "test_ci: shards_merge_to_one_run"},
    {"merge", "(default: standard output)", "test_ci: shards_merge_to_one_run"},
    {"serve", "(default 127.0.0.1:0)",
     "test_live: trainer_flow (lv_serve_start reads the banner)"},
    {"serve", "(default 127.0.0.1:0 with SCENARIO)",
     "test_live: trainer_flow (lv_serve_start reads the banner)"},
    {"serve", "(default integrated)",
     "test_probe: test_readme_recipe_probes_serve"},
    {"client", "(default communicator)",
     "test_live: client_and_serve_record_a_session"},
    {"client", "(default 2)", "test_live: client_and_serve_record_a_session"},
    {"client", "(default v2)", "test_live: client_and_serve_record_a_session"},
    {"client", "(default autodiscover.fabrikam.com)",
     "test_live: client_and_serve_record_a_session"},
    {"exchange", "Default none",
     "test_probe: test_status_url_must_answer_status"},
    {"client",
     "Exits 0 when the user saw no error, 1 when they saw the Outlook "
     "Integration Error",
     "test_live: client_and_serve_record_a_session"},
    {"probe", "(default 3)", "test_probe: test_isa_per_connection"},
    {"ctl", "(default 1)", "test_console: sessions_run_inside_serve"},
    {"ctl", "(default communicator)",
     "test_console: sessions_run_inside_serve"},
    {"probe", "(default autodiscover.fabrikam.com)",
     "test_probe: test_isa_per_connection"},
};

/* Runs kbsim with args split at single spaces. */
static void help_run(const char *args, struct proc_out *p)
{
  char copy[2048], *argv[64], *save = NULL, *w;
  int n = 0;

  snprintf(copy, sizeof(copy), "%s", args);
  argv[n++] = KBSIM_BIN;
  for(w = strtok_r(copy, " ", &save); w && n < 63;
      w = strtok_r(NULL, " ", &save))
    argv[n++] = w;
  argv[n] = NULL;
  proc_run(argv, p);
}

/* The --help of command, its wrapped lines joined into one line each
 * paragraph (runs of spaces made one). Caller frees. Each command's help
 * is read once per process: the rows of several tests ask for the same
 * few, and every read is a kbsim started. */
static char *help_text(const char *command)
{
  static struct {
    char command[16];
    char *flat;
  } seen[16];
  char args[64];
  struct proc_out p;
  char *flat, *o;
  const char *i;
  size_t k;

  for(k = 0; k < sizeof(seen) / sizeof(seen[0]) && seen[k].flat; k++)
    if(!strcmp(seen[k].command, command))
      return strdup(seen[k].flat);
  snprintf(args, sizeof(args), "%s --help", command);
  help_run(args, &p);
  ck_assert_int_eq(p.status, 0);
  flat = malloc(p.out.len + 1);
  ck_assert_ptr_nonnull(flat);
  for(i = p.out.data, o = flat; *i; i++) {
    char c = *i == '\n' ? ' ' : *i;
    if(c == ' ' && o > flat && o[-1] == ' ')
      continue;
    *o++ = c;
  }
  *o = '\0';
  proc_free(&p);
  if(k < sizeof(seen) / sizeof(seen[0]) &&
     strlen(command) < sizeof(seen[k].command)) {
    snprintf(seen[k].command, sizeof(seen[k].command), "%s", command);
    seen[k].flat = strdup(flat);
  }
  return flat;
}

/* Asserts that `kbsim args` exits with want_exit, and with want in its
 * output when want is not NULL. */
static void help_expect(const char *args, int want_exit, const char *want)
{
  struct proc_out p;

  help_run(args, &p);
  ck_assert_msg(p.status == want_exit, "kbsim %s: exit %d, not %d: %.300s",
                args, p.status, want_exit, p.err.data);
  if(want)
    ck_assert_msg(strstr(p.out.data, want) || strstr(p.err.data, want),
                  "kbsim %s: no '%s' in: %.200s / %.200s", args, want,
                  p.out.data, p.err.data);
  proc_free(&p);
}

/* Every "--OPT N ... A to B" of command's help: A and B are taken (the run
 * gets past its arguments: not exit 2), A - 1 and B + 1 are refused in one
 * line naming the range (exit 2). */
static unsigned help_ranges(const struct help_cmd *c, const char *help)
{
  regex_t re;
  regmatch_t m[4];
  const char *at = help;
  unsigned n = 0;

  ck_assert_int_eq(regcomp(&re, "--([a-z-]+) N [^-]*[^0-9]([0-9]+) to ([0-9]+)",
                           REG_EXTENDED),
                   0);
  while(!regexec(&re, at, 4, m, 0)) {
    char opt[32], args[1024], want[64];
    long lo = strtol(at + m[2].rm_so, NULL, 10);
    long hi = strtol(at + m[3].rm_so, NULL, 10);
    long v[4] = {lo, hi, lo - 1, hi + 1};
    int i;

    snprintf(opt, sizeof(opt), "%.*s", (int)(m[1].rm_eo - m[1].rm_so),
             at + m[1].rm_so);
    snprintf(want, sizeof(want), "from %ld to %ld", lo, hi);
    for(i = 0; i < 4; i++) {
      struct proc_out p;
      snprintf(args, sizeof(args), "%s %s --%s %ld %s", c->name, c->before, opt,
               v[i], c->after);
      help_run(args, &p);
      if(i < 2)
        ck_assert_msg(p.status != 2,
                      "kbsim %s: %ld is in the range the help "
                      "gives, yet refused: %s",
                      args, v[i], p.err.data);
      else if(v[i] >= 0)
        ck_assert_msg(p.status == 2 && strstr(p.err.data, want),
                      "kbsim %s: %ld is outside the range the help gives, "
                      "yet exit %d: %s",
                      args, v[i], p.status, p.err.data);
      proc_free(&p);
    }
    n++;
    at += m[0].rm_eo;
  }
  regfree(&re);
  return n;
}

/* Ranges, for every command that has them. */
START_TEST(help_ranges_hold)
{
  size_t i;
  unsigned total = 0;

  for(i = 0; i < sizeof(help_cmds) / sizeof(help_cmds[0]); i++) {
    char *help = help_text(help_cmds[i].name);
    unsigned n = help_ranges(&help_cmds[i], help);
    ck_assert_msg(n > 0, "%s --help names no range", help_cmds[i].name);
    total += n;
    free(help);
  }
  /* demo, run x2, sweep, client, probe x2: --posts, --clients, --jobs,
   * --timeout; ctl: --count. */
  ck_assert_uint_eq(total, 8);
}
END_TEST

/* The claims in help_claims, each where its help says it. */
START_TEST(help_claims_hold)
{
  size_t i;

  for(i = 0; i < sizeof(help_claims) / sizeof(help_claims[0]); i++) {
    const struct help_claim *c = &help_claims[i];
    char *help = help_text(c->command);
    ck_assert_msg(strstr(help, c->claim), "%s --help no longer says '%s'",
                  c->command, c->claim);
    free(help);
    if(c->args)
      help_expect(c->args, c->exit, c->want);
  }
}
END_TEST

/* Each default: the same bytes with the option left out and given. */
START_TEST(help_defaults_hold)
{
  size_t i;

  for(i = 0; i < sizeof(help_defaults) / sizeof(help_defaults[0]); i++) {
    const struct help_default *d = &help_defaults[i];
    struct proc_out a, b;
    char *help = help_text(d->command);

    ck_assert_msg(strstr(help, d->claim), "%s --help no longer says '%s'",
                  d->command, d->claim);
    free(help);
    help_run(d->without, &a);
    help_run(d->with, &b);
    ck_assert_msg(a.status == b.status && !strcmp(a.out.data, b.out.data),
                  "'kbsim %s' and 'kbsim %s' differ", d->without, d->with);
    proc_free(&a);
    proc_free(&b);
  }
}
END_TEST

/* True when claim says the claim found at text (len bytes): the first
 * min(len, strlen(claim)) bytes of it lie inside claim. */
static bool help_in(const char *claim, const char *text, size_t len)
{
  char words[256];
  size_t n = strlen(claim) < len ? strlen(claim) : len;

  snprintf(words, sizeof(words), "%.*s", (int)n, text);
  return strstr(claim, words) != NULL;
}

/* True when the claim at text (len bytes) is one the tables above check. */
static bool help_covered(const char *command, const char *text, size_t len)
{
  size_t i;

  for(i = 0; i < sizeof(help_claims) / sizeof(help_claims[0]); i++)
    if(!strcmp(help_claims[i].command, command) &&
       help_in(help_claims[i].claim, text, len))
      return true;
  for(i = 0; i < sizeof(help_defaults) / sizeof(help_defaults[0]); i++)
    if(!strcmp(help_defaults[i].command, command) &&
       help_in(help_defaults[i].claim, text, len))
      return true;
  for(i = 0; i < sizeof(help_elsewhere) / sizeof(help_elsewhere[0]); i++)
    if(!strcmp(help_elsewhere[i].command, command) &&
       help_in(help_elsewhere[i].claim, text, len))
      return true;
  return false;
}

/* No help text claims a default, a limit or an exit code that no row
 * checks (ranges are checked by rule). */
START_TEST(help_claims_are_all_checked)
{
  static const char *const commands[] = {"demo",     "run",   "sweep",  "merge",
                                         "serve",    "ctl",   "client", "list",
                                         "exchange", "probe", "help"};
  regex_t re;
  size_t i;

  ck_assert_int_eq(
      regcomp(&re,
              "\\(default[^)]*\\)|Default [a-z]+|at most [a-z0-9]+[^,.;)]*|"
              "at least [a-z]+[^,.;)]*|[Ee]xits? [0-9]+[^.;)]*",
              REG_EXTENDED),
      0);
  for(i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    char *help = help_text(commands[i]);
    const char *at = help;
    regmatch_t m;

    while(!regexec(&re, at, 1, &m, 0)) {
      size_t len = (size_t)(m.rm_eo - m.rm_so);
      /* Only the claim's own words: at most the first 40 characters. */
      ck_assert_msg(
          help_covered(commands[i], at + m.rm_so, len < 40 ? len : 40),
          "%s --help claims '%.*s', which no row of "
          "tests/test_help.c checks",
          commands[i], (int)len, at + m.rm_so);
      at += m.rm_eo;
    }
    free(help);
  }
  regfree(&re);
}
END_TEST

/* Each claim checked elsewhere names a test that exists: "test_X: NAME"
 * is a test (or the helper it names) in tests/test_X.c or its parts. */
START_TEST(help_elsewhere_names_real_tests)
{
  size_t i;

  for(i = 0; i < sizeof(help_elsewhere) / sizeof(help_elsewhere[0]); i++) {
    const char *where = help_elsewhere[i].where;
    const char *colon = strstr(where, ": ");
    char include[64], name[64];
    struct proc_out p;

    ck_assert_ptr_nonnull(colon);
    snprintf(include, sizeof(include), "%.*s*.c", (int)(colon - where), where);
    snprintf(name, sizeof(name), "%.*s", (int)strcspn(colon + 2, " '"),
             colon + 2);
    {
      char *const argv[] = {"/usr/bin/grep", "-rqw", "--include",
                            include,         "--",   name,
                            TESTS_DIR,       NULL};
      proc_run(argv, &p);
    }
    ck_assert_msg(p.status == 0, "%s --help '%s': no %s in tests/%s",
                  help_elsewhere[i].command, help_elsewhere[i].claim, name,
                  include);
    proc_free(&p);
  }
}
END_TEST

int main(void)
{
  Suite *s = suite_create("help");
  TCase *tc = tcase_create("help");
  TCase *slow;
  int failed;

  proc_whole_lines();
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, help_claims_hold);
  tcase_add_test(tc, help_claims_are_all_checked);
  tcase_add_test(tc, help_elsewhere_names_real_tests);
  suite_add_tcase(s, tc);
  /* Every range at both ends and each default compared: about a hundred runs of
   * kbsim. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, help_ranges_hold);
  tcase_add_test(slow, help_defaults_hold);
  suite_add_tcase(s, slow);
  failed = kbt_run(s);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
