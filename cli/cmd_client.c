/*
 * cmd_client.c - `kbsim client`: one Communicator session against any
 * listener - `kbsim serve`'s balancer or a member, or a real ISA - on the
 * real clock, printing each POST as it completes and then what the user
 * sees. Exit 0 when the user saw no error, 1 when they did, 2 for bad
 * arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client/verdict.h"
#include "common/kb_users.h"
#include "evidence/evidence.h"
#include "render/html.h"
#include "secret.h"

/* Parses "30s" or "5s..40s" into [*min, *max] ms. Returns 0 or -1. */
static int kbsim_client_think(const char *text, int64_t *min, int64_t *max)
{
  const char *dots = strstr(text, "..");
  char first[64];

  if(!dots) {
    if(scenario_parse_duration(text, min))
      return -1;
    *max = *min;
    return 0;
  }
  if((size_t)(dots - text) >= sizeof(first))
    return -1;
  snprintf(first, sizeof(first), "%.*s", (int)(dots - text), text);
  if(scenario_parse_duration(first, min) ||
     scenario_parse_duration(dots + 2, max) || *max < *min)
    return -1;
  return 0;
}

/* Prints one POST's line: what was sent, on which connection, what came
 * back and what it meant. */
static void kbsim_client_print_post(const struct client_post_result *r)
{
  char legs[32], think[48] = "";

  if(r->legs > 1)
    snprintf(legs, sizeof(legs), "%d -> %d", r->leg1_status, r->final_status);
  else
    snprintf(legs, sizeof(legs), "%d", r->final_status);
  if(r->think_ms > 0)
    snprintf(think, sizeof(think), " (after %" PRId64 " ms thinking)",
             r->think_ms);
  printf("POST %-2u %-20s conn %-2" PRIu64 "%s legs %u  %-10s %s%s%s%s\n",
         r->index, client_post_kind_name(r->kind), r->connection,
         r->new_connection ? " (new)" : "      ", r->legs, legs,
         client_outcome_name(r->outcome), r->detail[0] ? ": " : "", r->detail,
         think);
}

/* What `kbsim client` writes, and the session it writes about. */
struct kbsim_client_files {
  const char *pcap, *transcript, *json, *html;
  struct sim_session session; /* results and views: owned */
  enum ntlm_response_kind ntlm;
  unsigned ews_posts;
};

/* Writes the session's --json and --html: what the client saw, with what
 * only the listener knows (its counters, Exchange's) left unknown. Returns
 * 0, or -1 after printing a one-line error. */
static int kbsim_client_report(struct sim_recorder *rec,
                               struct kbsim_client_files *f)
{
  struct sim_outcome o;
  char err[512];
  size_t i;
  int result = 0;

  memset(&o, 0, sizeof(o));
  o.sessions.count = 1;
  o.sessions.sessions = &f->session;
  o.sessions.users_with_error = f->session.view.integration_error ? 1 : 0;
  for(i = 0; i < f->session.nresults; i++) {
    o.sessions.posts++;
    if(f->session.results[i].outcome == CLIENT_OK)
      o.sessions.posts_ok++;
    else
      o.sessions.posts_failed++;
  }
  if(f->json) {
    /* The client's verdict: a user who saw no error, as its exit 0. */
    struct evidence_run run = {
        .clients = 1,
        .ews_posts = f->ews_posts,
        .ntlm = ntlm_response_kind_name(f->ntlm),
        .expect = 0,
        .sessions = &o.sessions,
        .live = true,
        .passed = !o.sessions.users_with_error &&
                  f->session.klass != CLIENT_CLASS_INFRASTRUCTURE,
        .outcome_class = client_class_name(f->session.klass)};
    if(evidence_write_json(rec, &run, f->json, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      return -1;
    }
  }
  if(f->html) {
    struct html_report *report =
        html_report_new("kbsim client: one live session on the wire");
    struct html_run page = {"live session", NULL, &o, rec};

    if(!report) {
      fprintf(stderr, "kbsim: --html: out of memory\n");
      return -1;
    }
    if(html_report_add(report, &page, err, sizeof(err)) ||
       html_report_write(report, f->html, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      result = -1;
    }
    html_report_free(report);
  }
  return result;
}

/* Writes the session's evidence files, those asked for, once the client
 * is gone (so every close is recorded). Returns 0, or -1 after printing a
 * one-line error. */
static int kbsim_client_evidence(struct sim_recorder *rec,
                                 struct kbsim_client_files *f)
{
  const char *pcap = f->pcap, *transcript = f->transcript;
  char err[512];

  if(rec->failed) {
    fprintf(stderr, "kbsim: out of memory recording the session; evidence "
                    "would be incomplete, so none was written\n");
    return -1;
  }
  if(transcript &&
     evidence_write_transcript_to(rec, transcript, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(pcap && evidence_write_pcap(rec, pcap, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  return kbsim_client_report(rec, f);
}

static int kbsim_cmd_client(int argc, char **argv);

static const struct kbsim_opt client_opts[] = {
    {"url", 'U', "URL",
     "The listener: serve's balancer or a member, or a "
     "real ISA; required."},
    {"user", 'u', "'DOMAIN\\user[:password]'",
     "Who signs in; required. Without the password, it comes from "
     "KBSIM_PASSWORD or is asked on the terminal (ps shows a command "
     "line)."},
    {"kind", 'k', "communicator|outlook|one-shot",
     "Communicator (re-authenticates every POST), Outlook (authenticates a "
     "connection once) or a new connection per POST (default "
     "communicator)."},
    {"posts", 'p', "N",
     "EWS POSTs after autodiscover, 1 to 100 (default "
     "2)."},
    {"think", 't', "DURATION",
     "Really wait before each EWS POST: 500ms, "
     "30s, 2m, or a range 5s..40s."},
    {"ntlm", 'n', "v2|v2-mic|v1|v1-ess",
     "The NTLM response: v2-mic adds a "
     "MIC as Windows Vista and later "
     "send it (default v2)."},
    {"host", 'H', "NAME",
     "The Host header (default "
     "autodiscover.fabrikam.com)."},
    {"pcap", 'P', "FILE",
     "Write the session's own hop as a capture for Wireshark or tshark, "
     "on the real clock."},
    {"transcript", 'T', "FILE",
     "Write the exact bytes of the session's hop, NTLM decoded."},
    {"json", 'J', "FILE",
     "Write the JSON report of the session (what only the listener "
     "knows is null)."},
    {"html", 'W', "FILE",
     "Write the session's page with its sequence "
     "diagram."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_client_command = {
    "client",
    "--url URL --user SPEC [--kind communicator|outlook|one-shot] [--posts N] "
    "[--think DURATION] [--ntlm v2|v2-mic|v1|v1-ess] [--host NAME] "
    "[EVIDENCE]",
    "one Communicator session against any listener, on the real clock",
    "One Communicator session (or Outlook's, or one connection per POST) "
    "against any listener. Prints each POST as it completes (connection, "
    "legs, statuses, outcome) and then what the user sees: notification, "
    "log line, presence, scheduling. Exits 0 when the user saw no error, 1 "
    "when they saw the Outlook Integration Error.",
    client_opts,
    NULL,
    kbsim_cmd_client};

static int kbsim_cmd_client(int argc, char **argv)
{
  struct kbsim_args a;
  const char *url = NULL, *spec = NULL, *host = NULL;
  struct kbsim_client_files files;
  struct sim_recorder rec;
  struct sim_names names;
  bool recording = false;
  char domain[128], user[128], password[256], err[512];
  struct client_config cfg;
  struct client *client = NULL;
  struct client_post_result r;
  struct client_view view;
  uint64_t v;
  enum client_class klass = CLIENT_CLASS_CLEAN;
  int c, result = 2;

  memset(&cfg, 0, sizeof(cfg));
  memset(&files, 0, sizeof(files));
  cfg.ews_posts = 2;
  cfg.kind = CLIENT_KIND_COMMUNICATOR;
  cfg.ntlm_kind = NTLM_RESPONSE_V2;
  kbsim_args_init(&a, &kbsim_client_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 'U':
      url = optarg;
      break;
    case 'u':
      spec = optarg;
      break;
    case 'k':
      if(client_kind_parse(optarg, &cfg.kind))
        return kbsim_bad_args("--kind: '%s' is not communicator, outlook or "
                              "one-shot",
                              optarg);
      break;
    case 'p':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_POSTS, &v))
        return kbsim_bad_args("--posts: '%s' is not a number from 1 to 100",
                              optarg);
      cfg.ews_posts = (unsigned)v;
      break;
    case 't':
      if(kbsim_client_think(optarg, &cfg.think_min_ms, &cfg.think_max_ms))
        return kbsim_bad_args("--think: '%s' is not a duration (500ms, 30s, "
                              "2m) or a range (5s..40s)",
                              optarg);
      break;
    case 'n':
      /* v2-mic: NTLMv2 with a MIC, as Windows Vista and later send it. */
      cfg.ntlm_mic = !strcmp(optarg, "v2-mic");
      if(cfg.ntlm_mic)
        cfg.ntlm_kind = NTLM_RESPONSE_V2;
      else if(kbsim_parse_kind(optarg, &cfg.ntlm_kind))
        return kbsim_bad_args("--ntlm: '%s' is not v2, v2-mic, v1 or v1-ess",
                              optarg);
      break;
    case 'H':
      host = optarg;
      break;
    case 'P':
      files.pcap = optarg;
      break;
    case 'T':
      files.transcript = optarg;
      break;
    case 'J':
      files.json = optarg;
      break;
    case 'W':
      files.html = optarg;
      break;
    }
  }
  if(c < 0)
    return a.status;
  if(optind < argc)
    return kbsim_bad_args("unexpected argument '%s'", argv[optind]);
  if(!url || !spec)
    return kbsim_bad_args("--url and --user are required");
  {
    /* Every evidence file is checked before the session starts. */
    struct evidence_want w = {files.transcript, files.pcap, files.json,
                              files.html};
    int bad = kbsim_evidence_check(&w, "client");
    if(bad)
      return bad;
  }
  if(kb_users_split_spec(spec, true, domain, sizeof(domain), user, sizeof(user),
                         password, sizeof(password), err, sizeof(err)))
    return kbsim_bad_args("--user: %s", err);
  if(!password[0]) {
    char who[260];
    /* DOMAIN\user alone: the password from KBSIM_PASSWORD or the
     * terminal, never from the command line (ps shows it). */
    snprintf(who, sizeof(who), "%s\\%s", domain, user);
    if(sim_ask_password(who, password, sizeof(password), err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      return 2;
    }
  }

  /* Real clock (a zeroed kb_clock): --think really waits. Real
   * randomness: client challenges from getrandom(). */
  cfg.id = 1;
  cfg.base_url = url;
  cfg.host = host;
  cfg.domain = domain;
  cfg.user = user;
  cfg.password = password;
  /* Evidence of this hop: the bytes libcurl wrote and read, stamped on
   * the real clock as they were recorded; connections are named so the
   * files can tell them apart. */
  if(files.pcap || files.transcript || files.json || files.html) {
    /* The POSTs and the view after each, for --json and --html. */
    files.session.id = cfg.id;
    files.session.results =
        calloc(KBSIM_MAX_POSTS + 2, sizeof(*files.session.results));
    files.session.views =
        calloc(KBSIM_MAX_POSTS + 2, sizeof(*files.session.views));
    files.ntlm = cfg.ntlm_kind;
    files.ews_posts = cfg.ews_posts;
    if(sim_names_init(&names) || !files.session.results ||
       !files.session.views) {
      sim_names_free(&names);
      fprintf(stderr, "kbsim: client: out of memory for the evidence files\n");
      result = 2;
      goto done;
    }
    sim_recorder_init(&rec, true);
    recording = true;
    cfg.trace = sim_recorder_as_kb(&rec);
    cfg.names = sim_names_as_kb(&names);
  }
  if(client_create(&cfg, &client, err, sizeof(err))) {
    result = kbsim_bad_args("client: %s", err);
    goto done;
  }
  printf("Communicator session: %s\\%s -> %s (%s, %u EWS POST%s)\n", domain,
         user, url, client_kind_name(cfg.kind), cfg.ews_posts,
         cfg.ews_posts == 1 ? "" : "s");
  fflush(stdout);
  while(client_step(client, &r) == 1) {
    enum client_class k = client_result_class(&r);
    kbsim_client_print_post(&r);
    fflush(stdout);
    if(k > klass)
      klass = k;
    if(recording && files.session.nresults < KBSIM_MAX_POSTS + 2) {
      files.session.results[files.session.nresults] = r;
      client_view(client, &files.session.views[files.session.nresults]);
      files.session.nresults++;
    }
  }
  client_view(client, &view);
  files.session.view = view;
  printf("What %s\\%s sees:\n", domain, user);
  kbsim_print_view("  ", &view);
  files.session.klass = klass;
  /* What the user saw, and why: never the listener's fault when the
   * harness could not reach it or gave up waiting. */
  if(klass == CLIENT_CLASS_INFRASTRUCTURE)
    printf("Verdict: no verdict for %s\\%s: the harness could not reach "
           "the listener or gave up waiting (infrastructure)\n",
           domain, user);
  else if(view.integration_error)
    printf("Verdict: %s\\%s saw the %s (%s)\n", domain, user,
           CLIENT_NOTIFICATION_TEXT, client_class_name(klass));
  else
    printf("Verdict: no error for %s\\%s (clean)\n", domain, user);
  result = klass == CLIENT_CLASS_INFRASTRUCTURE ? 3
           : view.integration_error             ? 1
                                                : 0;

done:
  client_destroy(client);
  client = NULL;
  if(recording) {
    if(result != 2 && kbsim_client_evidence(&rec, &files))
      result = 3;
    sim_recorder_free(&rec);
    sim_names_free(&names);
  }
  free(files.session.results);
  free(files.session.views);
  explicit_bzero(password, sizeof(password));
  return result;
}
