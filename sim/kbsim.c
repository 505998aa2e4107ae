/*
 * kbsim.c - the kbsim program: demo, run and serve.
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

#include "evidence.h"
#include "topology.h"

#define KBSIM_MAX_CLIENTS 1000
#define KBSIM_MAX_POSTS 100
#define KBSIM_MAX_USERS 64

static const char *kbsim_default_user = "FABRIKAM\\alice:Passw0rd!";

static void kbsim_usage(FILE *out)
{
  fputs(
    "usage: kbsim [demo] [--seed S] [--posts N]\n"
    "       kbsim run --policy per-connection|per-request [--clients N]\n"
    "                 [--posts N] [--seed S] [--expect error|clean]\n"
    "                 [--ntlm v2|v1|v1-ess] [--user 'DOMAIN\\user:password']...\n"
    "                 [--transcript FILE] [--pcap FILE] [--json FILE]\n"
    "       kbsim serve --proxy HOST:PORT --backend HOST:PORT\n"
    "                 --policy per-connection|per-request\n"
    "                 --user 'DOMAIN\\user:password' [--user ...]\n"
    "\n"
    "  demo   one Communicator session under ISA 2006 as shipped\n"
    "         (per-connection), then with KB 942638 applied (per-request),\n"
    "         side by side; exits 0 when both behave as the KB says\n"
    "  run    N concurrent Communicator sessions through the topology;\n"
    "         with --expect, exits 1 unless the outcome is as expected\n"
    "         (error = at least one user saw the Outlook Integration Error)\n"
    "  serve  ISA listener and Exchange on real ports until SIGINT/SIGTERM;\n"
    "         port 0 picks a free one\n"
    "\n"
    "  --posts N   EWS POSTs per session after autodiscover (default 2)\n"
    "  --seed S    seed for NTLM challenges; same seed, same run (default 1)\n"
    "  --transcript FILE, --pcap FILE, --json FILE\n"
    "              evidence of every hop: the exact bytes as text, as a\n"
    "              capture for Wireshark/tshark, and a JSON report\n",
    out);
}

/* Prints "kbsim: <message>" and the usage to stderr; returns exit code 2. */
static int kbsim_bad_args(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int kbsim_bad_args(const char *fmt, ...)
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
static int kbsim_parse_u64(const char *text, uint64_t min, uint64_t max,
                           uint64_t *out)
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
static int kbsim_parse_hostport(const char *text, char *host, size_t hostlen,
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

static int kbsim_parse_kind(const char *text, enum ntlm_response_kind *kind)
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

/* ---- reporting -------------------------------------------------------- */

/* Formats one exchange as "POST /path [NTLM type 1, 0-byte body] -> 500
 * (479-byte body)". */
static void kbsim_format_exchange(const struct sim_event *ev, char *out,
                                  size_t outlen)
{
  const struct kb_exchange *x = &ev->exchange;
  char resp[64];

  if(x->status && x->resp_auth != KB_AUTH_NONE)
    snprintf(resp, sizeof(resp), "%d %s", x->status, kb_auth_name(x->resp_auth));
  else if(x->status)
    snprintf(resp, sizeof(resp), "%d (%zu-byte body)", x->status,
             x->resp_body_len);
  else
    snprintf(resp, sizeof(resp), "no response");
  snprintf(out, outlen, "%s %s [%s, %zu-byte body] -> %s", ev->method,
           ev->path, x->req_auth == KB_AUTH_NONE ? "no Authorization"
                                                 : kb_auth_name(x->req_auth),
           x->req_body_len, resp);
}

/* Prints what each hop saw, leg by leg, from the recorder. The proxy's
 * decisions and the backend's view of a leg are recorded before the
 * response reaches the client, so they are held back and printed under the
 * client's line for that leg. */
static void kbsim_print_hops(struct sim_recorder *rec)
{
  char **held = NULL;
  size_t nheld = 0;
  size_t i, j;
  char line[512];

  pthread_mutex_lock(&rec->lock);
  held = calloc(rec->count + 1, sizeof(*held));
  for(i = 0; held && i < rec->count; i++) {
    const struct sim_event *ev = &rec->events[i];

    if(ev->kind == KB_TRACE_EXCHANGE && ev->side == KB_SIDE_CLIENT &&
       ev->hop == KB_HOP_CLIENT_PROXY) {
      kbsim_format_exchange(ev, line, sizeof(line));
      printf("  Communicator -> ISA      %s\n", line);
      for(j = 0; j < nheld; j++) {
        printf("%s\n", held[j]);
        free(held[j]);
      }
      nheld = 0;
    }
    else if(ev->kind == KB_TRACE_NOTE && ev->hop == KB_HOP_CLIENT_PROXY &&
            ev->side == KB_SIDE_SERVER) {
      snprintf(line, sizeof(line), "      ISA decides:         %s", ev->text);
      held[nheld++] = strdup(line);
    }
    else if(ev->kind == KB_TRACE_EXCHANGE && ev->side == KB_SIDE_SERVER &&
            ev->hop == KB_HOP_PROXY_BACKEND) {
      char x[400];
      kbsim_format_exchange(ev, x, sizeof(x));
      snprintf(line, sizeof(line), "      Exchange received:   %s", x);
      held[nheld++] = strdup(line);
    }
  }
  for(j = 0; j < nheld; j++) {
    if(held[j])
      printf("%s\n", held[j]);
    free(held[j]);
  }
  free(held);
  pthread_mutex_unlock(&rec->lock);
}

static void kbsim_print_view(const char *indent, const struct client_view *v)
{
  printf("%sNotifications:      %s\n", indent,
         v->integration_error ? CLIENT_NOTIFICATION_TEXT : "(none)");
  if(v->autodiscovery_failed_logged)
    printf("%sLog:                %s\n", indent, CLIENT_LOG_TEXT);
  printf("%sPresence info:      %s\n", indent,
         v->presence_available ? "available" : "unavailable");
  printf("%sScheduling info:    %s\n", indent,
         v->scheduling_available ? "available" : "unavailable");
}

/* ---- demo ------------------------------------------------------------- */

struct kbsim_phase {
  enum proxy_policy policy;
  struct sim_sessions sessions;
  struct backend_stats backend;
  struct proxy_stats proxy;
  bool as_kb_says;
};

/* Runs one session under phase->policy in a fresh topology and prints its
 * hop-by-hop story. Returns 0, or -1 (message printed) when the topology
 * could not run. */
static int kbsim_demo_phase(struct kbsim_phase *phase, const struct kb_users *users,
                            uint64_t seed, unsigned posts)
{
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  struct sim_recorder rec;
  char err[512];
  const char *spec = kbsim_default_user;
  const struct sim_session *s;
  int result = -1;

  sim_recorder_init(&rec, false);
  memset(&cfg, 0, sizeof(cfg));
  cfg.policy = phase->policy;
  cfg.users = users;
  cfg.simulated = true;
  cfg.seed = seed;
  cfg.trace = sim_recorder_as_kb(&rec);
  if(sim_topology_start(&cfg, &topo, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    goto done;
  }
  if(sim_run_sessions(topo, 1, posts, NTLM_RESPONSE_V2, &spec, 1,
                      &phase->sessions, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    goto done;
  }
  backend_stats(topo->backend, &phase->backend);
  proxy_stats(topo->proxy, &phase->proxy);

  printf("== ISA 2006 %s (policy %s) ==\n",
         phase->policy == PROXY_POLICY_PER_CONNECTION ? "as shipped"
                                                      : "with KB 942638",
         proxy_policy_name(phase->policy));
  kbsim_print_hops(&rec);
  s = &phase->sessions.sessions[0];
  if(s->error[0])
    printf("  client could not start: %s\n", s->error);
  printf("  What the user sees:\n");
  kbsim_print_view("    ", &s->view);
  printf("\n");

  if(phase->policy == PROXY_POLICY_PER_CONNECTION)
    phase->as_kb_says = s->view.integration_error &&
                        phase->backend.empty_posts > 0 &&
                        phase->proxy.reauth_skipped > 0;
  else
    phase->as_kb_says = !s->view.integration_error &&
                        phase->backend.empty_posts == 0 &&
                        phase->sessions.posts_failed == 0 &&
                        s->view.presence_available &&
                        s->view.scheduling_available;
  result = 0;

done:
  sim_topology_stop(topo);
  sim_recorder_free(&rec);
  return result;
}

static int kbsim_demo(int argc, char **argv)
{
  static const struct option opts[] = {{"seed", required_argument, NULL, 's'},
                                       {"posts", required_argument, NULL, 'p'},
                                       {NULL, 0, NULL, 0}};
  struct kbsim_phase phases[2];
  struct kb_users *users = NULL;
  uint64_t seed = 1, posts = 2;
  char err[256];
  size_t i, row;
  int c, result = 1;

  opterr = 0;
  optind = 1;
  while((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch(c) {
    case 's':
      if(kbsim_parse_u64(optarg, 0, UINT64_MAX, &seed))
        return kbsim_bad_args("--seed: '%s' is not a whole number", optarg);
      break;
    case 'p':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_POSTS, &posts))
        return kbsim_bad_args("--posts: '%s' is not a number from 1 to 100",
                              optarg);
      break;
    case ':':
      return kbsim_bad_args("%s needs a value", argv[optind - 1]);
    default:
      return kbsim_bad_args("demo: unknown option '%s'", argv[optind - 1]);
    }
  }
  if(optind < argc)
    return kbsim_bad_args("demo: unexpected argument '%s'", argv[optind]);

  users = kb_users_new();
  if(!users || kb_users_add_spec(users, kbsim_default_user, err, sizeof(err))) {
    fprintf(stderr, "kbsim: cannot set up the user store\n");
    kb_users_free(users);
    return 1;
  }
  memset(phases, 0, sizeof(phases));
  phases[0].policy = PROXY_POLICY_PER_CONNECTION;
  phases[1].policy = PROXY_POLICY_PER_REQUEST;
  printf("KB 942638: Communicator re-authenticates every POST on a keep-alive\n"
         "connection; ISA 2006 forwards the body-less first leg to Exchange.\n"
         "One session: autodiscover + %" PRIu64 " EWS POSTs, user FABRIKAM\\alice, "
         "seed %" PRIu64 ".\n\n", posts, seed);
  for(i = 0; i < 2; i++) {
    if(kbsim_demo_phase(&phases[i], users, seed, (unsigned)posts))
      goto done;
  }

  printf("%-28s %-28s %s\n", "Side by side", "ISA 2006 as shipped",
         "KB 942638 applied");
  for(row = 0; row < phases[0].sessions.sessions[0].nresults ||
               row < phases[1].sessions.sessions[0].nresults; row++) {
    char label[64], cell[2][64];
    const struct client_post_result *r = NULL;

    for(i = 0; i < 2; i++) {
      const struct sim_session *s = &phases[i].sessions.sessions[0];
      cell[i][0] = '\0';
      if(row < s->nresults) {
        r = &s->results[row];
        snprintf(cell[i], sizeof(cell[i]), "%d %s", r->final_status,
                 client_outcome_name(r->outcome));
      }
    }
    snprintf(label, sizeof(label), "POST %s", client_post_kind_name(r->kind));
    printf("%-28s %-28s %s\n", label, cell[0], cell[1]);
  }
  printf("%-28s %-28" PRIu64 " %" PRIu64 "\n", "Empty POSTs at Exchange",
         phases[0].backend.empty_posts, phases[1].backend.empty_posts);
  printf("%-28s %-28" PRIu64 " %" PRIu64 "\n", "Re-auth without challenge",
         phases[0].proxy.reauth_skipped, phases[1].proxy.reauth_skipped);
  printf("%-28s %-28s %s\n", "Outlook Integration Error",
         phases[0].sessions.sessions[0].view.integration_error ? "shown" : "not shown",
         phases[1].sessions.sessions[0].view.integration_error ? "shown" : "not shown");
  printf("%-28s %-28s %s\n", "Presence information",
         phases[0].sessions.sessions[0].view.presence_available ? "available" : "unavailable",
         phases[1].sessions.sessions[0].view.presence_available ? "available" : "unavailable");
  printf("%-28s %-28s %s\n", "Scheduling information",
         phases[0].sessions.sessions[0].view.scheduling_available ? "available" : "unavailable",
         phases[1].sessions.sessions[0].view.scheduling_available ? "available" : "unavailable");
  printf("\n");
  if(phases[0].as_kb_says && phases[1].as_kb_says) {
    printf("Verdict: as KB 942638 describes - the bug as shipped, fixed by the KB.\n");
    result = 0;
  }
  else
    printf("Verdict: NOT as KB 942638 describes (as shipped: %s; with the KB: %s).\n",
           phases[0].as_kb_says ? "as described" : "differs",
           phases[1].as_kb_says ? "as described" : "differs");

done:
  for(i = 0; i < 2; i++)
    sim_sessions_free(&phases[i].sessions);
  kb_users_free(users);
  return result;
}

/* ---- run -------------------------------------------------------------- */

/* Writes whichever evidence files were asked for. Returns 0, or -1 after
 * printing a one-line error. */
static int kbsim_write_evidence(struct sim_recorder *rec, const char *transcript,
                                const char *pcap, const char *json,
                                enum proxy_policy policy, uint64_t seed,
                                unsigned clients, unsigned posts,
                                enum ntlm_response_kind kind,
                                const struct sim_sessions *sessions,
                                const struct backend_stats *bs,
                                const struct proxy_stats *ps)
{
  char err[512];

  if(rec->failed) {
    fprintf(stderr, "kbsim: out of memory recording the trace; evidence "
            "would be incomplete, so none was written\n");
    return -1;
  }
  if(transcript) {
    FILE *f = fopen(transcript, "w");
    int bad = !f || evidence_write_transcript(rec, f);
    if(f && fclose(f))
      bad = 1;
    if(bad) {
      fprintf(stderr, "kbsim: --transcript %s: cannot write: %s\n", transcript,
              strerror(errno));
      return -1;
    }
  }
  if(pcap && evidence_write_pcap(rec, pcap, SIM_CASE_EPOCH_MS, err,
                                 sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(json) {
    struct evidence_run run = {proxy_policy_name(policy), seed, clients, posts,
                               ntlm_response_kind_name(kind), sessions, bs, ps};
    if(evidence_write_json(rec, &run, json, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      return -1;
    }
  }
  return 0;
}

static int kbsim_run(int argc, char **argv)
{
  static const struct option opts[] = {
    {"policy", required_argument, NULL, 'P'},
    {"clients", required_argument, NULL, 'c'},
    {"posts", required_argument, NULL, 'p'},
    {"seed", required_argument, NULL, 's'},
    {"expect", required_argument, NULL, 'e'},
    {"ntlm", required_argument, NULL, 'n'},
    {"user", required_argument, NULL, 'u'},
    {"transcript", required_argument, NULL, 't'},
    {"pcap", required_argument, NULL, 'w'},
    {"json", required_argument, NULL, 'j'},
    {NULL, 0, NULL, 0}};
  const char *transcript = NULL, *pcap = NULL, *json = NULL;
  struct sim_recorder rec;
  const char *specs[KBSIM_MAX_USERS];
  size_t nspecs = 0;
  enum proxy_policy policy = PROXY_POLICY_PER_CONNECTION;
  enum ntlm_response_kind kind = NTLM_RESPONSE_V2;
  bool have_policy = false;
  int expect = -1; /* -1 none, 1 error, 0 clean */
  uint64_t clients = 1, posts = 2, seed = 1;
  struct kb_users *users = NULL;
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  struct sim_sessions sessions = {0};
  struct backend_stats bs;
  struct proxy_stats ps;
  char err[512];
  size_t i, j;
  int c, result = 1;

  opterr = 0;
  optind = 1;
  while((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch(c) {
    case 'P':
      if(proxy_policy_parse(optarg, &policy))
        return kbsim_bad_args("--policy: '%s' is not per-connection or "
                              "per-request", optarg);
      have_policy = true;
      break;
    case 'c':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_CLIENTS, &clients))
        return kbsim_bad_args("--clients: '%s' is not a number from 1 to "
                              "1000", optarg);
      break;
    case 'p':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_POSTS, &posts))
        return kbsim_bad_args("--posts: '%s' is not a number from 1 to 100",
                              optarg);
      break;
    case 's':
      if(kbsim_parse_u64(optarg, 0, UINT64_MAX, &seed))
        return kbsim_bad_args("--seed: '%s' is not a whole number", optarg);
      break;
    case 'e':
      if(!strcmp(optarg, "error"))
        expect = 1;
      else if(!strcmp(optarg, "clean"))
        expect = 0;
      else
        return kbsim_bad_args("--expect: '%s' is not error or clean", optarg);
      break;
    case 'n':
      if(kbsim_parse_kind(optarg, &kind))
        return kbsim_bad_args("--ntlm: '%s' is not v2, v1 or v1-ess", optarg);
      break;
    case 'u':
      if(nspecs == KBSIM_MAX_USERS)
        return kbsim_bad_args("--user: at most 64 users; give fewer");
      specs[nspecs++] = optarg;
      break;
    case 't':
      transcript = optarg;
      break;
    case 'w':
      pcap = optarg;
      break;
    case 'j':
      json = optarg;
      break;
    case ':':
      return kbsim_bad_args("%s needs a value", argv[optind - 1]);
    default:
      return kbsim_bad_args("run: unknown option '%s'", argv[optind - 1]);
    }
  }
  if(optind < argc)
    return kbsim_bad_args("run: unexpected argument '%s'", argv[optind]);
  if(!have_policy)
    return kbsim_bad_args("run: --policy is required (per-connection or "
                          "per-request)");
  if(!nspecs)
    specs[nspecs++] = kbsim_default_user;

  users = kb_users_new();
  if(!users) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 1;
  }
  sim_recorder_init(&rec, transcript || pcap);
  for(i = 0; i < nspecs; i++) {
    if(kb_users_add_spec(users, specs[i], err, sizeof(err))) {
      kb_users_free(users);
      sim_recorder_free(&rec);
      return kbsim_bad_args("--user: %s", err);
    }
  }

  memset(&cfg, 0, sizeof(cfg));
  cfg.policy = policy;
  cfg.users = users;
  cfg.simulated = true;
  cfg.seed = seed;
  cfg.trace = sim_recorder_as_kb(&rec);
  if(sim_topology_start(&cfg, &topo, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    goto done;
  }
  if(sim_run_sessions(topo, (unsigned)clients, (unsigned)posts, kind, specs,
                      nspecs, &sessions, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    goto done;
  }
  backend_stats(topo->backend, &bs);
  proxy_stats(topo->proxy, &ps);
  /* Stop first: the last connections close, and their closes are part of
   * the evidence. */
  sim_topology_stop(topo);
  topo = NULL;
  if(kbsim_write_evidence(&rec, transcript, pcap, json, policy, seed,
                          (unsigned)clients, (unsigned)posts, kind, &sessions,
                          &bs, &ps))
    goto done;

  for(i = 0; i < sessions.count; i++) {
    const struct sim_session *s = &sessions.sessions[i];

    if(s->error[0]) {
      printf("client %u  could not start: %s\n", s->id, s->error);
      continue;
    }
    for(j = 0; j < s->nresults; j++) {
      const struct client_post_result *r = &s->results[j];
      char legs[32];

      if(r->legs == 2)
        snprintf(legs, sizeof(legs), "%d -> %d", r->leg1_status, r->final_status);
      else
        snprintf(legs, sizeof(legs), "%d", r->final_status);
      printf("client %-3u POST %-2u %-20s conn %-2" PRIu64 " legs %u  %-10s %s%s%s\n",
             s->id, r->index, client_post_kind_name(r->kind), r->connection,
             r->legs, legs, client_outcome_name(r->outcome),
             r->detail[0] ? ": " : "", r->detail);
    }
    printf("client %-3u sees: %s; presence %s; scheduling %s\n", s->id,
           s->view.integration_error ? CLIENT_NOTIFICATION_TEXT : "no notification",
           s->view.presence_available ? "available" : "unavailable",
           s->view.scheduling_available ? "available" : "unavailable");
  }
  printf("summary: policy %s, seed %" PRIu64 ": %u clients, %u POSTs, %u ok, "
         "%u failed; %u of %u users saw the Outlook Integration Error; "
         "Exchange received %" PRIu64 " empty POSTs; ISA skipped %" PRIu64
         " re-authentications\n",
         proxy_policy_name(policy), seed, (unsigned)sessions.count,
         sessions.posts, sessions.posts_ok, sessions.posts_failed,
         sessions.users_with_error, (unsigned)sessions.count, bs.empty_posts,
         ps.reauth_skipped);
  if(sessions.not_started)
    result = 1;
  else if(expect < 0)
    result = 0;
  else if((expect == 1) == (sessions.users_with_error > 0))
    result = 0;
  else
    printf("expected %s, got %s\n", expect ? "error" : "clean",
           sessions.users_with_error ? "error" : "clean");

done:
  sim_sessions_free(&sessions);
  sim_topology_stop(topo);
  sim_recorder_free(&rec);
  kb_users_free(users);
  return result;
}

/* ---- serve ------------------------------------------------------------ */

static int kbsim_serve(int argc, char **argv)
{
  static const struct option opts[] = {
    {"proxy", required_argument, NULL, 'x'},
    {"backend", required_argument, NULL, 'b'},
    {"policy", required_argument, NULL, 'P'},
    {"user", required_argument, NULL, 'u'},
    {NULL, 0, NULL, 0}};
  char phost[64] = "", bhost[64] = "";
  uint16_t pport = 0, bport = 0;
  enum proxy_policy policy = PROXY_POLICY_PER_CONNECTION;
  bool have_proxy = false, have_backend = false, have_policy = false;
  struct kb_users *users = kb_users_new();
  struct sim_topology_config cfg;
  struct sim_topology *topo = NULL;
  sigset_t set;
  char err[512];
  int c, sig = 0, result = 2;

  if(!users) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 1;
  }
  opterr = 0;
  optind = 1;
  while((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch(c) {
    case 'x':
      if(kbsim_parse_hostport(optarg, phost, sizeof(phost), &pport)) {
        result = kbsim_bad_args("--proxy: '%s' is not HOST:PORT (e.g. "
                                "127.0.0.1:8080, [::1]:0)", optarg);
        goto done;
      }
      have_proxy = true;
      break;
    case 'b':
      if(kbsim_parse_hostport(optarg, bhost, sizeof(bhost), &bport)) {
        result = kbsim_bad_args("--backend: '%s' is not HOST:PORT (e.g. "
                                "127.0.0.1:8081, [::1]:0)", optarg);
        goto done;
      }
      have_backend = true;
      break;
    case 'P':
      if(proxy_policy_parse(optarg, &policy)) {
        result = kbsim_bad_args("--policy: '%s' is not per-connection or "
                                "per-request", optarg);
        goto done;
      }
      have_policy = true;
      break;
    case 'u':
      if(kb_users_add_spec(users, optarg, err, sizeof(err))) {
        result = kbsim_bad_args("--user: %s", err);
        goto done;
      }
      break;
    case ':':
      result = kbsim_bad_args("%s needs a value", argv[optind - 1]);
      goto done;
    default:
      result = kbsim_bad_args("serve: unknown option '%s'", argv[optind - 1]);
      goto done;
    }
  }
  if(optind < argc) {
    result = kbsim_bad_args("serve: unexpected argument '%s'", argv[optind]);
    goto done;
  }
  if(!have_proxy || !have_backend || !have_policy || !kb_users_count(users)) {
    result = kbsim_bad_args("serve: --proxy, --backend, --policy and at least "
                            "one --user are required");
    goto done;
  }

  /* Block the stop signals before any thread starts, so every thread
   * inherits the mask and only sigwait() below receives them. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  memset(&cfg, 0, sizeof(cfg));
  cfg.policy = policy;
  cfg.users = users;
  cfg.proxy_host = phost;
  cfg.proxy_port = pport;
  cfg.backend_host = bhost;
  cfg.backend_port = bport;
  cfg.simulated = false; /* real clients: real clock, real randomness */
  result = 1;
  if(sim_topology_start(&cfg, &topo, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    goto done;
  }
  printf("ISA listener: http://%s%s%s:%u/ (policy %s)\n",
         strchr(phost, ':') ? "[" : "", phost, strchr(phost, ':') ? "]" : "",
         (unsigned)proxy_port(topo->proxy), proxy_policy_name(policy));
  printf("Exchange:     http://%s%s%s:%u/\n",
         strchr(bhost, ':') ? "[" : "", bhost, strchr(bhost, ':') ? "]" : "",
         (unsigned)backend_port(topo->backend));
  printf("serving until SIGINT or SIGTERM\n");
  fflush(stdout);
  sigwait(&set, &sig);
  printf("stopping on %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  fflush(stdout);
  result = 0;

done:
  sim_topology_stop(topo);
  kb_users_free(users);
  return result;
}

int main(int argc, char **argv)
{
  const char *cmd = argc > 1 ? argv[1] : "demo";

  if(!strcmp(cmd, "demo"))
    return kbsim_demo(argc > 1 ? argc - 1 : 1, argc > 1 ? argv + 1 : argv);
  if(!strcmp(cmd, "run"))
    return kbsim_run(argc - 1, argv + 1);
  if(!strcmp(cmd, "serve"))
    return kbsim_serve(argc - 1, argv + 1);
  if(!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    kbsim_usage(stdout);
    return 0;
  }
  if(cmd[0] == '-')
    return kbsim_demo(argc, argv);
  return kbsim_bad_args("unknown command '%s'; use demo, run or serve", cmd);
}
