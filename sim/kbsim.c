/*
 * kbsim.c - the kbsim program: demo, run, sweep, serve, ctl and client.
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

#include "cli.h"

const char *kbsim_default_user = "FABRIKAM\\alice:Passw0rd!";

void kbsim_usage(FILE *out)
{
  fputs(
      "usage: kbsim [demo] [--seed S] [--posts N] [--step]\n"
      "                 [--color=always|never|auto] [--html FILE]\n"
      "       kbsim run --policy per-connection|per-request [--clients N]\n"
      "                 [--posts N] [--seed S] [--expect error|clean]\n"
      "                 [--ntlm v2|v1|v1-ess] [--user "
      "'DOMAIN\\user:password']...\n"
      "                 [EVIDENCE]\n"
      "       kbsim run FILE... [--seed S] [--verbose] [EVIDENCE]\n"
      "       kbsim sweep FILE --seeds A..B [--jobs N]\n"
      "       kbsim serve FILE [--proxy HOST:PORT] [--backend HOST:PORT]\n"
      "                 [--admin HOST:PORT]\n"
      "       kbsim serve --proxy HOST:PORT --backend HOST:PORT\n"
      "                 --policy per-connection|per-request\n"
      "                 --user 'DOMAIN\\user:password' [--user ...]\n"
      "                 [--auth integrated|basic|none] [--admin HOST:PORT]\n"
      "       kbsim ctl --admin HOST:PORT status | apply-fix [--member N] |\n"
      "                 revert [--member N] | hotfix --member N | sp1 --member "
      "N\n"
      "       kbsim client --url URL --user 'DOMAIN\\user:password'\n"
      "                 [--kind communicator|outlook|one-shot] [--posts N]\n"
      "                 [--think DURATION] [--ntlm v2|v2-mic|v1|v1-ess]\n"
      "                 [--host NAME]\n"
      "  EVIDENCE: [--transcript FILE] [--pcap FILE] [--json FILE] [--html "
      "FILE]\n"
      "\n"
      "  demo   one Communicator session under ISA 2006 as shipped\n"
      "         (per-connection), then with KB 942638 applied (per-request),\n"
      "         narrated leg by leg (--step: wait for Enter between steps),\n"
      "         then side by side; exits 0 when both behave as the KB says\n"
      "  run    N concurrent Communicator sessions through the topology, or\n"
      "         scenario files (see scenarios/README.md), one PASS/FAIL line\n"
      "         each; exits 1 unless every outcome is as expected\n"
      "         (error = at least one user saw the Outlook Integration Error)\n"
      "  sweep  a scenario over many seeds: the share of sessions that saw\n"
      "         the error, with a 95% confidence interval\n"
      "  serve  ISA listener and Exchange on real ports until SIGINT/SIGTERM;\n"
      "         port 0 picks a free one. With FILE: the scenario's whole "
      "array\n"
      "         behind a TCP load balancer on --proxy, and an admin endpoint\n"
      "         (no authentication: keep it on loopback)\n"
      "  ctl    change a running serve through its admin endpoint: run or\n"
      "         undo the KB script, install the hotfix or SP1; or show status\n"
      "  client one Communicator session against any listener, on the real\n"
      "         clock; exits 1 when the user saw the Outlook Integration "
      "Error\n"
      "  exchange  Exchange alone behind any listener (kbsim exchange --help)\n"
      "  probe     Communicator's pattern against any listener, one verdict\n"
      "            per behaviour (kbsim probe --help)\n"
      "\n"
      "  --posts N   EWS POSTs per session after autodiscover (default 2)\n"
      "  --seed S    seed for NTLM challenges, think times, balancer draws;\n"
      "              same seed, same bytes (default 1)\n"
      "  --transcript FILE, --pcap FILE, --json FILE, --html FILE\n"
      "              evidence of every hop: the exact bytes as text, as a\n"
      "              capture for Wireshark/tshark, a JSON report, and a\n"
      "              self-contained page with the sequence diagram\n",
      out);
}

/* Prints "kbsim: <message>" and the usage to stderr; returns exit code 2. */
int kbsim_bad_args(const char *fmt, ...)
{
  va_list ap;

  fputs("kbsim: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n\n", stderr);
  kbsim_usage(stderr);
  return 2;
}

/* Parses a whole decimal number in [min, max]. Returns 0 or -1. */
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
  const char *cmd = argc > 1 ? argv[1] : "demo";

  if(!strcmp(cmd, "demo"))
    return kbsim_cmd_demo(argc > 1 ? argc - 1 : 1, argc > 1 ? argv + 1 : argv);
  if(!strcmp(cmd, "run"))
    return kbsim_cmd_run(argc - 1, argv + 1);
  if(!strcmp(cmd, "sweep"))
    return kbsim_cmd_sweep(argc - 1, argv + 1);
  if(!strcmp(cmd, "serve"))
    return kbsim_cmd_serve(argc - 1, argv + 1);
  if(!strcmp(cmd, "ctl"))
    return kbsim_cmd_ctl(argc - 1, argv + 1);
  if(!strcmp(cmd, "client"))
    return kbsim_cmd_client(argc - 1, argv + 1);
  if(!strcmp(cmd, "exchange"))
    return kbsim_cmd_exchange(argc - 1, argv + 1);
  if(!strcmp(cmd, "probe"))
    return kbsim_cmd_probe(argc - 1, argv + 1);
  if(!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    kbsim_usage(stdout);
    return 0;
  }
  if(cmd[0] == '-')
    return kbsim_cmd_demo(argc, argv);
  return kbsim_bad_args("unknown command '%s'; use demo, run, sweep, serve, "
                        "ctl, client, exchange or probe",
                        cmd);
}
