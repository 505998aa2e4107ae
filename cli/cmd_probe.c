/*
 * cmd_probe.c - `kbsim probe URL`: Communicator's pattern against any
 * listener publishing `kbsim exchange` (probe/probe.h), one verdict line
 * per check, the defects found and the listener's class. Exit 0 no defect
 * found, 1 a defect found, 2 bad arguments, 3 could not be probed.
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
/* --timeout's ceiling, in seconds: five minutes per answer. */
#define KBSIM_PROBE_MAX_TIMEOUT 300

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
     "also sees what reached Exchange (empty POSTs, identities, "
     "challenges, offers); the two-users, handshake-split, pinned-recycled "
     "and challenge-rewritten checks need it and are skipped without it."},
    {"krb5-ccache", 'k', "FILE",
     "The first user's Kerberos credential cache (kinit -c FILE): the "
     "single-leg check signs that user in with Kerberos, the ticket and "
     "the body with the first request of each connection, then the second "
     "user with NTLM, and fails when the second is served as the first "
     "(mixes-after-single-leg). KRB5_CONFIG names the realm's KDC. Without "
     "it, with one user or without --exchange-status the check is "
     "skipped."},
    {"posts", 'p', "N", "EWS POSTs per session, 1 to 100 (default 3)."},
    {"host", 'H', "NAME",
     "The Host header (default autodiscover.fabrikam.com)."},
    {"timeout", 't', "N",
     "Seconds to wait for each answer, 1 to 300 (default 10); the "
     "expect-hang check calls a POST hung after this long."},
    {"ca-file", 'C', "FILE",
     "For an https URL: verify the listener's certificate against the CA "
     "certificates in FILE (PEM; what 'kbsim serve --tls' writes with "
     "--ca-file) instead of the system's."},
    {"json", 'j', "FILE",
     "Write the report as JSON (probe/report.schema.json)."},
    {"junit", 'J', "FILE",
     "Write the report as a JUnit testsuite, one testcase per check."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_probe_command = {
    "probe",
    "URL --user SPEC [--user SPEC] [--exchange-status URL] [--krb5-ccache "
    "FILE] [--posts N] "
    "[--host NAME] [--timeout N] [--ca-file FILE] [--json FILE] "
    "[--junit FILE]",
    "classify any listener against Communicator's pattern",
    "Runs a fixed battery against the listener at URL, which publishes "
    "kbsim exchange: a Communicator session re-authenticating every POST, "
    "an Outlook session authenticating once, one-shot connections, two "
    "users at once, a wrong password, and one check for each other defect "
    "of the reverse-proxy family: handshake-split, pinned-recycled, "
    "challenge-rewritten, expect-hang, body-on-type1, with Kerberos "
    "credentials single-leg (mixes-after-single-leg), and on an https URL "
    "http2: Communicator's handshake with HTTP/2 offered in ALPN, fine when "
    "the listener refuses h2 or downgrades NTLM with HTTP_1_1_REQUIRED, "
    "ntlm-over-http2 when it lets NTLM through on HTTP/2 streams. Prints one "
    "verdict "
    "line per check, the defects found by name and the listener's class: "
    "re-authenticates every POST (not affected), keeps the connection's "
    "context and forwards the body-less POST (KB 942638's bug), Basic / "
    "anonymous, mixes identities across clients, or breaks Communicator's "
    "pattern another way. Exits 0 when no defect was found, 1 when any "
    "was, 3 when the listener could not be probed.",
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
    /* No scenario: the command, without a dot (Jenkins splits there). */
    snprintf(cases[i].classname, sizeof(cases[i].classname), "probe");
    cases[i].result = results[r->verdict];
    snprintf(cases[i].message, sizeof(cases[i].message), "%s", r->line);
    snprintf(cases[i].output, sizeof(cases[i].output), "%s", r->line);
    cases[i].seconds = r->seconds;
  }
  suite.cases = cases;
  suite.ncases = PROBE_CHECK_COUNT;
  return ci_junit_write(path, &suite, err, errlen);
}

/* One `kbsim probe`: what the command line asked for. Owned by
 * kbsim_cmd_probe, which wipes the passwords. */
struct kbsim_probe {
  struct kbsim_probe_user parts[KBSIM_PROBE_MAX_USERS];
  struct probe_user users[KBSIM_PROBE_MAX_USERS];
  size_t nusers;
  struct probe_config cfg;
  const char *json, *junit;
  char *ca_pem;  /* --ca-file's text (owned), or NULL */
  bool exit_now; /* --help printed: exit with the code returned */
};

/* Reads --ca-file's PEM text into p and p->cfg. Returns 0, or 2 after
 * printing what was wrong. */
static int kbsim_probe_ca(struct kbsim_probe *p, const char *path)
{
  int rc = kbsim_read_ca(path, &p->ca_pem);

  p->cfg.ca_pem = p->ca_pem;
  return rc;
}

/* Takes one option c with its value arg into *p. Returns 0, or 2 after
 * printing what was wrong. */
static int kbsim_probe_option(struct kbsim_probe *p, int c, const char *arg)
{
  struct kbsim_probe_user *u = &p->parts[p->nusers];
  char err[512];
  uint64_t v;

  switch(c) {
  case 'u':
    if(p->nusers == KBSIM_PROBE_MAX_USERS)
      return kbsim_bad_args("at most two --user (the two-user check)");
    if(kb_users_split_spec(arg, true, u->domain, sizeof(u->domain), u->user,
                           sizeof(u->user), u->password, sizeof(u->password),
                           err, sizeof(err))) {
      fprintf(stderr, "kbsim probe: --user: %s\n", err);
      return 2;
    }
    p->nusers++;
    break;
  case 's':
    p->cfg.status_url = arg;
    break;
  case 'k':
    p->cfg.krb5_ccache = arg;
    break;
  case 'p':
    if(kbsim_parse_u64(arg, 1, KBSIM_MAX_POSTS, &v))
      return kbsim_bad_args("--posts: '%s' is not a number from 1 to 100", arg);
    p->cfg.posts = (unsigned)v;
    break;
  case 'H':
    p->cfg.host = arg;
    break;
  case 't':
    if(kbsim_parse_u64(arg, 1, KBSIM_PROBE_MAX_TIMEOUT, &v))
      return kbsim_bad_args("--timeout: '%s' is not a number from 1 to 300",
                            arg);
    p->cfg.timeout_ms = (long)v * 1000;
    break;
  case 'C':
    return kbsim_probe_ca(p, arg);
  case 'j':
    p->json = arg;
    break;
  case 'J':
    p->junit = arg;
    break;
  }
  return 0;
}

/* Parses the command line into *p. Returns 0, or the exit code (with
 * p->exit_now after --help) after printing what was wrong. */
static int kbsim_probe_parse(int argc, char **argv, struct kbsim_probe *p)
{
  struct kbsim_args a;
  const char *url;
  int c, bad;

  kbsim_args_init(&a, &kbsim_probe_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    if((bad = kbsim_probe_option(p, c, optarg)) != 0)
      return bad;
  if(c < 0) {
    p->exit_now = true;
    return a.status;
  }
  if(optind < argc)
    p->cfg.url = argv[optind++];
  if(optind < argc)
    return kbsim_bad_args("unexpected argument '%s'", argv[optind]);
  url = p->cfg.url;
  if(!url)
    return kbsim_bad_args("give the listener's URL");
  if(strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
    return kbsim_bad_args(
        "the listener's URL starts http:// or https://, unlike '%s'", url);
  if(!p->nusers)
    return kbsim_bad_args("give --user 'DOMAIN\\user:password'");
  return 0;
}

/* Asks for the passwords the --user specs left out (KBSIM_PASSWORD or the
 * terminal) and hands the users to the probe's config. Returns 0, or 2
 * after printing why not. */
static int kbsim_probe_users(struct kbsim_probe *p)
{
  char err[512];
  size_t i;

  for(i = 0; i < p->nusers; i++) {
    struct kbsim_probe_user *u = &p->parts[i];

    if(!u->password[0]) {
      char who[600];
      snprintf(who, sizeof(who), "%.127s\\%.127s", u->domain, u->user);
      if(secret_ask_password(who, u->password, sizeof(u->password), err,
                             sizeof(err))) {
        fprintf(stderr, "kbsim probe: %s\n", err);
        return 2;
      }
    }
    p->users[i].domain = u->domain;
    p->users[i].user = u->user;
    p->users[i].password = u->password;
  }
  p->cfg.users = p->users;
  p->cfg.nusers = p->nusers;
  return 0;
}

/* Prints "Defects: " and the names of those rep found ("none"). */
static void kbsim_probe_print_defects(const struct probe_report *rep)
{
  const char *sep = "";
  int d;

  printf("Defects:");
  for(d = 0; d < KB_DEFECT_COUNT; d++)
    if(rep->defects[d]) {
      printf("%s %s", sep, kb_defect_name((enum kb_defect)d));
      sep = ",";
    }
  printf("%s\n", *sep ? "" : " none");
}

/* Prints rep, one verdict line per check, the defects and the class, and
 * writes --json and --junit. Returns the exit code: the class's, or 3 when a
 * file could not be written. */
static int kbsim_probe_report(const struct kbsim_probe *p,
                              const struct probe_report *rep)
{
  const struct probe_config *cfg = &p->cfg;
  char err[512];
  size_t i;
  int result;

  printf("Probing %s%s%s\n", cfg->url,
         cfg->status_url ? " with Exchange's status at " : "",
         cfg->status_url ? cfg->status_url : "");
  for(i = 0; i < PROBE_CHECK_COUNT; i++)
    printf("%-5s %-19s %s\n",
           probe_verdict_name(rep->checks[i].verdict) /* PASS etc. */,
           probe_check_name((enum probe_check)i), rep->checks[i].line);
  kbsim_probe_print_defects(rep);
  printf("Class: %s\n", probe_class_text(rep->cls));
  result = probe_class_exit(rep->cls);
  err[0] = '\0';
  if(p->json && probe_write_json(cfg, rep, p->json, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 3;
  }
  err[0] = '\0';
  if(p->junit && kbsim_probe_junit(cfg, rep, p->junit, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 3;
  }
  return result;
}

static int kbsim_cmd_probe(int argc, char **argv)
{
  struct kbsim_probe p;
  struct probe_report rep;
  char err[512];
  int result;

  memset(&p, 0, sizeof(p));
  result = kbsim_probe_parse(argc, argv, &p);
  if(result || p.exit_now)
    goto done;
  result = kbsim_probe_users(&p);
  if(result)
    goto done;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  switch(probe_run(&p.cfg, &rep, err, sizeof(err))) {
  case PROBE_RUN_OK:
    break;
  case PROBE_RUN_BAD_CONFIG:
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 2;
    goto done;
  case PROBE_RUN_NO_STATUS:
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 3; /* could not be probed */
    goto done;
  }
  result = kbsim_probe_report(&p, &rep);

done:
  explicit_bzero(p.parts, sizeof(p.parts));
  free(p.ca_pem);
  return result;
}
