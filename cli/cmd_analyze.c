/*
 * cmd_analyze.c - `kbsim analyze FILE...`: captures and HAR files read
 * back (analyze/analyze.h), one line per failure of the family found and a
 * summary, and the JSON, JUnit and HTML reports. Exit 0 nothing found, 1
 * something found, 2 bad arguments, 3 the input cannot be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analyze/analyze.h"
#include "cli.h"

static int kbsim_cmd_analyze(int argc, char **argv);

static const struct kbsim_opt analyze_opts[] = {
    {"keylog", 'k', "FILE",
     "TLS keys in the SSLKEYLOGFILE format (what browsers and curl write), "
     "to read HTTPS; a pcapng with a Decryption Secrets Block needs none."},
    {"listener", 'l', "HOST:PORT",
     "The proxy's listener, where the clients connect, when the capture "
     "cannot tell (it says so)."},
    {"server", 's', "HOST:PORT",
     "The server behind the proxy, when the capture cannot tell."},
    {"json", 'j', "FILE",
     "Write the findings as JSON (kind \"analysis\", "
     "report.schema.json); - is standard output."},
    {"html", 'H', "FILE",
     "Write the connections as the report's sequence diagrams, each "
     "finding's legs in red."},
    {"junit", 'J', "FILE",
     "Write a JUnit testsuite, one testcase per defect of the family."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_analyze_command = {
    "analyze",
    "FILE... [--keylog FILE] [--listener HOST:PORT] [--server HOST:PORT] "
    "[--json FILE] [--html FILE] [--junit FILE]",
    "find the reverse-proxy family's failures in captures and HAR files",
    "Reads captures (pcap, pcapng; through tshark, which must be installed) "
    "and HAR 1.2 files, rebuilds each connection's requests with their "
    "NTLM messages, identities, body lengths and answers, tells the proxy's "
    "two hops apart (the listener both accepts connections and opens them; "
    "both hops may be in one file or in one file per side), pairs each "
    "request the proxy sent upstream with the client request it forwards, "
    "and reports every instance of each failure of the family with its "
    "frames: body-less-forward (KB 942638), body-on-type1, "
    "handshake-split, mixes-identities, mixes-after-single-leg, "
    "pinned-recycled, challenge-rewritten, ntlm-over-http2. With one hop "
    "only it says what cannot be concluded.\n\n"
    "Exits 0 when nothing of the family was found, 1 when something was, "
    "3 when the input cannot be read (tshark missing, a truncated capture, "
    "a HAR that is not JSON, no HTTP at all), with the reason in one line.",
    analyze_opts,
    "@files",
    kbsim_cmd_analyze};

/* One `kbsim analyze`: what the command line asked for. */
struct kbsim_analyze {
  struct analyze_config cfg;
  const char *json, *html, *junit;
  bool exit_now; /* --help printed: exit with the code returned */
};

/* Checks a HOST:PORT value of flag. Returns 0, or 2 after saying why. */
static int kbsim_analyze_endpoint(const char *flag, const char *arg)
{
  char host[256];
  uint16_t port;

  if(kbsim_parse_hostport(arg, host, sizeof(host), &port) || !port)
    return kbsim_bad_args("%s: '%s' is not HOST:PORT", flag, arg);
  return 0;
}

/* Parses the command line into *a. Returns 0, or the exit code (with
 * a->exit_now after --help) after printing what was wrong. */
static int kbsim_analyze_parse(int argc, char **argv, struct kbsim_analyze *a)
{
  struct kbsim_args args;
  int c, bad = 0;

  kbsim_args_init(&args, &kbsim_analyze_command, argc, argv);
  while(!bad && (c = kbsim_args_next(&args)) > 0) {
    switch(c) {
    case 'k':
      a->cfg.keylog = optarg;
      break;
    case 'l':
      a->cfg.listener = optarg;
      bad = kbsim_analyze_endpoint("--listener", optarg);
      break;
    case 's':
      a->cfg.server = optarg;
      bad = kbsim_analyze_endpoint("--server", optarg);
      break;
    case 'j':
      a->json = optarg;
      break;
    case 'H':
      a->html = optarg;
      break;
    case 'J':
      a->junit = optarg;
      break;
    }
  }
  if(bad)
    return bad;
  if(c < 0) {
    a->exit_now = true;
    return args.status;
  }
  if(optind >= argc)
    return kbsim_bad_args("give a capture (pcap, pcapng) or a HAR file");
  a->cfg.files = (const char *const *)argv + optind;
  a->cfg.nfiles = (size_t)(argc - optind);
  if(a->cfg.listener && a->cfg.server &&
     !strcmp(a->cfg.listener, a->cfg.server))
    return kbsim_bad_args("--listener and --server are the same endpoint");
  return 0;
}

/* Writes the reports asked for. Returns 0, or 3 after saying which could
 * not be written. */
static int kbsim_analyze_write(const struct kbsim_analyze *a,
                               const struct analyze_result *r)
{
  char err[512];
  int result = 0;

  if(a->json && analyze_write_json(r, &a->cfg, a->json, err, sizeof(err))) {
    fprintf(stderr, "kbsim analyze: %s\n", err);
    result = 3;
  }
  if(a->html && analyze_write_html(r, a->html, err, sizeof(err))) {
    fprintf(stderr, "kbsim analyze: %s\n", err);
    result = 3;
  }
  if(a->junit && analyze_write_junit(r, a->junit, err, sizeof(err))) {
    fprintf(stderr, "kbsim analyze: %s\n", err);
    result = 3;
  }
  return result;
}

static int kbsim_cmd_analyze(int argc, char **argv)
{
  struct kbsim_analyze a;
  struct analyze_result r;
  struct evidence_want want;
  char err[512];
  int result;

  memset(&a, 0, sizeof(a));
  memset(&r, 0, sizeof(r));
  result = kbsim_analyze_parse(argc, argv, &a);
  if(result || a.exit_now)
    return result;
  /* Every report can be written before the input is read. */
  memset(&want, 0, sizeof(want));
  want.json = a.json;
  want.html = a.html;
  result = kbsim_evidence_check(&want, "analysis");
  if(result)
    return result;
  a.cfg.progress = isatty(STDERR_FILENO);
  /* The stamp's command line, program first: kbsim.c hands each command
   * main's argv from its second element on. */
  a.cfg.argc = argc + 1;
  a.cfg.argv = argv - 1;
  if(analyze_run(&a.cfg, &r, err, sizeof(err))) {
    fprintf(stderr, "kbsim analyze: %s\n", err);
    analyze_result_free(&r);
    return 3;
  }
  if(r.ambiguous)
    fprintf(stderr, "kbsim analyze: %s\n", r.roles);
  analyze_print(stdout, &r);
  result = kbsim_analyze_write(&a, &r);
  if(!result)
    result = analyze_exit(&r);
  analyze_result_free(&r);
  return result;
}
