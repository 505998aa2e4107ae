/*
 * cmd_probe.c - `kbsim probe URL`: Communicator's pattern against any
 * listener publishing `kbsim exchange` (probe/probe.h), one verdict line
 * per behaviour and the listener's class. Exit 0 not affected, 1
 * affected, 2 bad arguments, 3 could not be probed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "common/kb_users.h"
#include "evidence/ci.h"
#include "probe/probe.h"
#include "secret.h"

#define KBSIM_PROBE_MAX_USERS 2

/* One --user, split into its parts. */
struct kbsim_probe_user {
  char domain[128], user[128], password[256];
};

static int kbsim_cmd_probe(int argc, char **argv);

static const struct kbsim_opt probe_opts[] = {
    {"user", 'u', "'DOMAIN\\user[:password]'",
     "Who signs in; required, at most twice (the two-user check needs "
     "two). Without the password, it comes from KBSIM_PASSWORD or is asked "
     "on the terminal."},
    {"exchange-status", 's', "URL",
     "kbsim exchange's http://HOST:PORT/kbsim/status: with it the probe "
     "also sees what reached Exchange (empty POSTs, identities); the "
     "two-user check needs it."},
    {"posts", 'p', "N", "EWS POSTs per session, 1 to 100 (default 3)."},
    {"host", 'H', "NAME",
     "The Host header (default autodiscover.fabrikam.com)."},
    {"json", 'j', "FILE",
     "Write the report as JSON (probe/report.schema.json)."},
    {"junit", 'J', "FILE",
     "Write the report as a JUnit testsuite, one testcase per check."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_probe_command = {
    "probe",
    "URL --user SPEC [--user SPEC] [--exchange-status URL] [--posts N] "
    "[--host NAME] [--json FILE] [--junit FILE]",
    "classify any listener against Communicator's pattern",
    "Runs a fixed battery against the listener at URL, which publishes "
    "kbsim exchange: a Communicator session re-authenticating every POST, "
    "an Outlook session authenticating once, one-shot connections, two "
    "users at once, a wrong password. Prints one verdict line per behaviour "
    "and the listener's class: re-authenticates every POST (not affected), "
    "keeps the connection's context and forwards the body-less POST (KB "
    "942638's bug), Basic / anonymous, or mixes identities across clients. "
    "Exits 0 when the listener is not affected, 1 when it is, 3 when it "
    "could not be probed.",
    probe_opts,
    NULL,
    kbsim_cmd_probe};

/* Writes the probe's report as JUnit (evidence/ci.h): one testcase per
 * check, a failure for FAIL, an error for ERROR, skipped for SKIP, each
 * with its line as the message and system-out; the listener and its class
 * as properties, the class in words as the suite's system-out. Returns 0,
 * or -1 with one line in err. */
static int kbsim_probe_junit(const struct probe_config *cfg,
                             const struct probe_report *rep, const char *path,
                             char *err, size_t errlen)
{
  static const enum ci_result results[] = {[PROBE_PASS] = CI_PASS,
                                           [PROBE_FAIL] = CI_FAIL,
                                           [PROBE_SKIP] = CI_SKIP,
                                           [PROBE_ERROR] = CI_ERROR};
  struct ci_case cases[PROBE_CHECK_COUNT];
  const struct ci_property props[] = {{"class", probe_class_name(rep->cls)},
                                      {"listener", cfg->url}};
  struct ci_suite suite = {.name = "kbsim probe",
                           .properties = props,
                           .nproperties = 2,
                           .output = probe_class_text(rep->cls)};
  size_t i;

  memset(cases, 0, sizeof(cases));
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    const struct probe_result *r = &rep->checks[i];

    snprintf(cases[i].name, sizeof(cases[i].name), "%s",
             probe_check_name((enum probe_check)i));
    snprintf(cases[i].classname, sizeof(cases[i].classname), "kbsim.probe");
    cases[i].result = results[r->verdict];
    snprintf(cases[i].message, sizeof(cases[i].message), "%s", r->line);
    snprintf(cases[i].output, sizeof(cases[i].output), "%s", r->line);
    cases[i].seconds = -1; /* the probe does not time its checks */
  }
  suite.cases = cases;
  suite.ncases = PROBE_CHECK_COUNT;
  return ci_junit_write(path, &suite, err, errlen);
}

static int kbsim_cmd_probe(int argc, char **argv)
{
  struct kbsim_args a;
  struct kbsim_probe_user parts[KBSIM_PROBE_MAX_USERS];
  struct probe_user users[KBSIM_PROBE_MAX_USERS];
  struct probe_config cfg;
  struct probe_report rep;
  const char *json = NULL, *junit = NULL;
  size_t nusers = 0, i;
  char err[512];
  uint64_t v;
  int c, result = 2;

  memset(&cfg, 0, sizeof(cfg));
  memset(parts, 0, sizeof(parts));
  kbsim_args_init(&a, &kbsim_probe_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 'u':
      if(nusers == KBSIM_PROBE_MAX_USERS) {
        result = kbsim_bad_args("at most two --user (the two-user check)");
        goto done;
      }
      if(kb_users_split_spec(optarg, true, parts[nusers].domain,
                             sizeof(parts[0].domain), parts[nusers].user,
                             sizeof(parts[0].user), parts[nusers].password,
                             sizeof(parts[0].password), err, sizeof(err))) {
        fprintf(stderr, "kbsim probe: --user: %s\n", err);
        goto done;
      }
      nusers++;
      break;
    case 's':
      cfg.status_url = optarg;
      break;
    case 'p':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_POSTS, &v)) {
        result = kbsim_bad_args("--posts: '%s' is not a number from 1 to 100",
                                optarg);
        goto done;
      }
      cfg.posts = (unsigned)v;
      break;
    case 'H':
      cfg.host = optarg;
      break;
    case 'j':
      json = optarg;
      break;
    case 'J':
      junit = optarg;
      break;
    }
  }
  if(c < 0) {
    result = a.status;
    goto done;
  }
  if(optind < argc)
    cfg.url = argv[optind++];
  if(optind < argc) {
    result = kbsim_bad_args("unexpected argument '%s'", argv[optind]);
    goto done;
  }
  if(!cfg.url) {
    result = kbsim_bad_args("give the listener's URL");
    goto done;
  }
  if(strncmp(cfg.url, "http://", 7) && strncmp(cfg.url, "https://", 8)) {
    result = kbsim_bad_args(
        "the listener's URL starts http:// or https://, unlike '%s'", cfg.url);
    goto done;
  }
  if(!nusers) {
    result = kbsim_bad_args("give --user 'DOMAIN\\user:password'");
    goto done;
  }
  for(i = 0; i < nusers; i++) {
    if(!parts[i].password[0]) {
      char who[600];
      snprintf(who, sizeof(who), "%.127s\\%.127s", parts[i].domain,
               parts[i].user);
      if(sim_ask_password(who, parts[i].password, sizeof(parts[i].password),
                          err, sizeof(err))) {
        fprintf(stderr, "kbsim probe: %s\n", err);
        goto done;
      }
    }
    users[i].domain = parts[i].domain;
    users[i].user = parts[i].user;
    users[i].password = parts[i].password;
  }
  cfg.users = users;
  cfg.nusers = nusers;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  if(probe_run(&cfg, &rep, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    goto done;
  }
  printf("Probing %s%s%s\n", cfg.url,
         cfg.status_url ? " with Exchange's status at " : "",
         cfg.status_url ? cfg.status_url : "");
  for(i = 0; i < PROBE_CHECK_COUNT; i++)
    printf("%-5s %-15s %s\n",
           probe_verdict_name(rep.checks[i].verdict) /* PASS etc. */,
           probe_check_name((enum probe_check)i), rep.checks[i].line);
  printf("Class: %s\n", probe_class_text(rep.cls));
  result = probe_class_exit(rep.cls);
  err[0] = '\0';
  if(json && probe_write_json(&cfg, &rep, json, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 3;
  }
  err[0] = '\0';
  if(junit && kbsim_probe_junit(&cfg, &rep, junit, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 3;
  }

done:
  explicit_bzero(parts, sizeof(parts));
  return result;
}
