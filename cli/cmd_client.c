/*
 * cmd_client.c - `kbsim client`: one Communicator session against any
 * listener - `kbsim serve`'s balancer or a member, or a real ISA - on the
 * real clock, printing each POST as it completes, which member served it
 * (Via) and then what the user sees. Exit 0 when the user saw no error, 1 when
 * they did, 2 for bad arguments, 3 when the harness could not reach the
 * listener or write an evidence file.
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
#include "common/kb_range.h"
#include "common/kb_users.h"
#include "evidence/evidence.h"
#include "render/html.h"
#include "secret.h"

/* Parses "30s" or "5s..40s" (common/kb_range.h) into [*min, *max] ms,
 * the smaller first. Returns 0 or -1. */
static int kbsim_client_think(const char *text, int64_t *min, int64_t *max)
{
  struct kb_range r;

  if(kb_range_split(text, KB_RANGE_SINGLE, &r, NULL, 0) ||
     scenario_parse_duration(r.lo, min) || scenario_parse_duration(r.hi, max) ||
     *max < *min)
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
  /* ie's page is a GET, outlook-anywhere's steps RPC, the rest POSTs. */
  printf("%-4s %-2u %-20s conn %-2" PRIu64 "%s legs %u  %-10s %s%s%s%s\n",
         client_post_kind_verb(r->kind), r->index,
         client_post_kind_name(r->kind), r->connection,
         r->new_connection ? " (new)" : "      ", r->legs, legs,
         client_outcome_name(r->outcome), r->detail[0] ? ": " : "", r->detail,
         think);
}

/* Adds name (a POST's served_by) to the list in out, "ISA01, ISA02",
 * unless it is empty or there already. */
static void kbsim_client_served(char *out, size_t len, const char *name)
{
  size_t at = strlen(out), n = strlen(name);
  const char *p = out;

  if(!n)
    return;
  while((p = strstr(p, name)) != NULL) {
    if((p == out || p[-1] == ' ') && (p[n] == ',' || !p[n]))
      return;
    p += n;
  }
  if(at + n + 3 < len)
    snprintf(out + at, len - at, "%s%s", at ? ", " : "", name);
}

/* What `kbsim client` writes, and the session it writes about. */
struct kbsim_client_files {
  const char *pcap, *transcript, *json, *html;
  struct sim_session session; /* results and views: owned */
  enum ntlm_response_kind ntlm;
  enum client_kind kind;
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
        .kind = f->kind,
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
    {"kind", 'k',
     "communicator|outlook|one-shot|ie|dotnet|java|outlook-anywhere",
     "Communicator (re-authenticates every POST), Outlook (authenticates a "
     "connection once), a new connection per POST, Internet Explorer (GETs "
     "a page, then POSTs as WinINet does), .NET's HttpWebRequest, Java's "
     "HttpClient, or Outlook Anywhere (two RPC over HTTP channels, then "
     "--posts RPC calls echoed) (default communicator)."},
    {"connection-sharing", 'S', NULL,
     "With --kind dotnet: UnsafeAuthenticatedConnectionSharing, the "
     "authenticated connection kept for the next POSTs."},
    {"krb5-ccache", 'K', "FILE",
     "A user inside the network: the Kerberos credential cache (kinit -c "
     "FILE) whose ticket goes with every POST, Negotiate in one leg with "
     "the body (communicator or one-shot; KRB5_CONFIG names the realm)."},
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
    {"ca-file", 'C', "FILE",
     "For an https URL: verify the listener's certificate against the CA "
     "certificates in FILE (PEM; what 'kbsim serve' and 'kbsim exchange "
     "--tls' write with --ca-file) instead of the system's. On HTTPS the "
     "NTLMv2 type 3 carries the channel binding of the certificate the "
     "listener presented (Extended Protection)."},
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
    {"keylog", KBSIM_OPT_KEYLOG, "FILE", KBSIM_KEYLOG_HELP},
    {"redact", KBSIM_OPT_REDACT, NULL,
     "Replace what an offline dictionary attack on the password needs (each "
     "NTLM type 3's LM and NT proofs, MIC and session key) by a marker of the "
     "same length in the transcript and the pcap: for evidence shared outside "
     "the team."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_client_command = {
    "client",
    "--url URL --user SPEC [--kind KIND] [--connection-sharing] "
    "[--krb5-ccache FILE] [--posts N] "
    "[--think DURATION] [--ntlm v2|v2-mic|v1|v1-ess] [--host NAME] "
    "[--ca-file FILE] [EVIDENCE]",
    "one Communicator session against any listener, on the real clock",
    "One Communicator session (or another client kind's, --kind) against "
    "any listener. Prints each POST as it completes (connection, legs, "
    "statuses, outcome), which listener served it (the Via header of its "
    "answers: the member of serve's array) and then what the user sees: "
    "notification, log line, presence, scheduling (for a kind other than "
    "Communicator, what that program shows for a failed request). Exits 0 "
    "when the user saw no error, 1 when they saw the Outlook Integration "
    "Error (or the kind's failed request), 3 when the session could not run "
    "(the listener unreachable, an evidence file not writable).",
    client_opts,
    NULL,
    kbsim_cmd_client};

/* One `kbsim client` run: what the command line asked for and what the
 * session needs. Owned by kbsim_cmd_client, which wipes the password. */
struct kbsim_client_run {
  const char *url, *host;
  bool has_user; /* --user was given: domain, user (and password) hold it */
  struct client_config cfg;
  struct kbsim_client_files files;
  char domain[128], user[128], password[256];
  bool recording; /* an evidence file was asked for: rec and names live */
  struct sim_recorder rec;
  struct sim_names names;
  bool exit_now; /* --help printed: exit with the code returned */
  char *ca_pem;  /* --ca-file's text (owned), or NULL */
};

/* Takes one option c with its value arg into *r. Returns 0, or 2 after
 * printing what was wrong. */
static int kbsim_client_option(struct kbsim_client_run *r, int c,
                               const char *arg)
{
  struct client_config *cfg = &r->cfg;
  uint64_t v;

  switch(c) {
  case 'U':
    r->url = arg;
    break;
  case 'u': {
    /* Split now: the password is hidden from the command line once this
     * returns (usage.c: usage_secrets). */
    char err[512];
    if(kb_users_split_spec(arg, true, r->domain, sizeof(r->domain), r->user,
                           sizeof(r->user), r->password, sizeof(r->password),
                           err, sizeof(err)))
      return kbsim_bad_args("--user: %s", err);
    r->has_user = true;
    break;
  }
  case 'k':
    if(client_kind_parse(arg, &cfg->kind))
      return kbsim_bad_args("--kind: '%s' is not " CLIENT_KIND_NAMES, arg);
    break;
  case 'S':
    cfg->connection_sharing = true;
    break;
  case 'K':
    cfg->krb5_ccache = arg;
    break;
  case 'p':
    if(kbsim_parse_u64(arg, 1, KBSIM_MAX_POSTS, &v))
      return kbsim_bad_args("--posts: '%s' is not a number from 1 to 100", arg);
    cfg->ews_posts = (unsigned)v;
    break;
  case 't':
    if(kbsim_client_think(arg, &cfg->think_min_ms, &cfg->think_max_ms))
      return kbsim_bad_args("--think: '%s' is not a duration (500ms, 30s, "
                            "2m) or a range with the smaller first (5s..40s)",
                            arg);
    break;
  case 'n':
    /* v2-mic: NTLMv2 with a MIC, as Windows Vista and later send it. */
    cfg->ntlm_mic = !strcmp(arg, "v2-mic");
    if(cfg->ntlm_mic)
      cfg->ntlm_kind = NTLM_RESPONSE_V2;
    else if(kbsim_parse_kind(arg, &cfg->ntlm_kind))
      return kbsim_bad_args("--ntlm: '%s' is not v2, v2-mic, v1 or v1-ess",
                            arg);
    break;
  case 'H':
    r->host = arg;
    break;
  case 'C':
    return kbsim_read_ca(arg, &r->ca_pem);
  case KBSIM_OPT_REDACT:
    evidence_set_redact(true);
    break;
  case KBSIM_OPT_KEYLOG:
    return kbsim_keylog(arg);
  case 'P':
    r->files.pcap = arg;
    break;
  case 'T':
    r->files.transcript = arg;
    break;
  case 'J':
    r->files.json = arg;
    break;
  case 'W':
    r->files.html = arg;
    break;
  }
  return 0;
}

/* Parses the command line into *r and checks the evidence files can be
 * written. Returns 0, or the exit code (with r->exit_now after --help)
 * after printing what was wrong. */
static int kbsim_client_parse(int argc, char **argv, struct kbsim_client_run *r)
{
  struct kbsim_args a;
  int c, bad;

  r->cfg.ews_posts = 2;
  r->cfg.kind = CLIENT_KIND_COMMUNICATOR;
  r->cfg.ntlm_kind = NTLM_RESPONSE_V2;
  kbsim_args_init(&a, &kbsim_client_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    if((bad = kbsim_client_option(r, c, optarg)) != 0)
      return bad;
  if(c < 0) {
    r->exit_now = true;
    return a.status;
  }
  if(optind < argc)
    return kbsim_bad_args("unexpected argument '%s'", argv[optind]);
  if(!r->url || !r->has_user)
    return kbsim_bad_args("--url and --user are required");
  if(r->cfg.connection_sharing && r->cfg.kind != CLIENT_KIND_DOTNET)
    return kbsim_bad_args("--connection-sharing is .NET's "
                          "UnsafeAuthenticatedConnectionSharing; use it "
                          "with --kind dotnet");
  {
    /* Every evidence file is checked before the session starts. */
    struct evidence_want w = {r->files.transcript, r->files.pcap, r->files.json,
                              r->files.html};
    return kbsim_evidence_check(&w, "client");
  }
}

/* The password, when --user gave none: from KBSIM_PASSWORD or the
 * terminal. Returns 0, or 2 after printing why not. */
static int kbsim_client_login(struct kbsim_client_run *r)
{
  char err[512], who[260];

  if(r->password[0])
    return 0;
  snprintf(who, sizeof(who), "%s\\%s", r->domain, r->user);
  if(secret_ask_password(who, r->password, sizeof(r->password), err,
                         sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 2;
  }
  return 0;
}

/* Starts recording the session's hop when an evidence file was asked
 * for: the bytes libcurl wrote and read, stamped on the real clock as
 * they were recorded; connections are named so the files can tell them
 * apart. Returns 0, or 2 after printing that memory ran out. */
static int kbsim_client_record(struct kbsim_client_run *r)
{
  struct kbsim_client_files *f = &r->files;

  if(!f->pcap && !f->transcript && !f->json && !f->html)
    return 0;
  /* The POSTs and the view after each, for --json and --html. */
  f->session.id = r->cfg.id;
  f->session.results = calloc(KBSIM_MAX_POSTS + 2, sizeof(*f->session.results));
  f->session.views = calloc(KBSIM_MAX_POSTS + 2, sizeof(*f->session.views));
  f->ntlm = r->cfg.ntlm_kind;
  f->kind = r->cfg.kind;
  f->ews_posts = r->cfg.ews_posts;
  if(sim_names_init(&r->names) || !f->session.results || !f->session.views) {
    sim_names_free(&r->names);
    fprintf(stderr, "kbsim: client: out of memory for the evidence files\n");
    return 2;
  }
  sim_recorder_init(&r->rec, true);
  r->rec.client = client_kind_info(r->cfg.kind);
  r->recording = true;
  r->cfg.trace = sim_recorder_as_kb(&r->rec);
  r->cfg.names = sim_names_as_kb(&r->names);
  return 0;
}

/* Runs the session, printing each POST as it completes, then what the
 * user sees and the verdict. Returns 0 when the user saw no error, 1 when
 * they did, 3 when the harness could not reach the listener. */
static int kbsim_client_session(struct kbsim_client_run *r,
                                struct client *client)
{
  struct sim_session *session = &r->files.session;
  const char *domain = r->domain, *user = r->user;
  struct client_post_result res;
  struct client_view view;
  enum client_class klass = CLIENT_CLASS_CLEAN;
  char served[256] = "";

  if(r->cfg.kind == CLIENT_KIND_OUTLOOK_ANYWHERE)
    printf("%s session: %s\\%s -> %s (outlook-anywhere: the RPC channels, "
           "then %u RPC call%s)\n",
           client_kind_label(r->cfg.kind), domain, user, r->url,
           r->cfg.ews_posts, r->cfg.ews_posts == 1 ? "" : "s");
  else
    printf("%s session: %s\\%s -> %s (%s, %u EWS POST%s)\n",
           client_kind_label(r->cfg.kind), domain, user, r->url,
           client_kind_name(r->cfg.kind), r->cfg.ews_posts,
           r->cfg.ews_posts == 1 ? "" : "s");
  fflush(stdout);
  while(client_step(client, &res) == 1) {
    enum client_class k = client_result_class(&res);
    kbsim_client_print_post(&res);
    fflush(stdout);
    kbsim_client_served(served, sizeof(served), res.served_by);
    if(k > klass)
      klass = k;
    if(r->recording && session->nresults < KBSIM_MAX_POSTS + 2) {
      session->results[session->nresults] = res;
      client_view(client, &session->views[session->nresults]);
      session->nresults++;
    }
  }
  client_view(client, &view);
  session->view = view;
  /* Which member of an array the balancer sent the session to: the Via
   * its answers carried. */
  if(served[0])
    printf("Served by: %s (the Via header of its answers)\n", served);
  else
    printf("Served by: unknown (no answer carried a Via header)\n");
  printf("What %s\\%s sees:\n", domain, user);
  kbsim_print_view("  ", &view, client_kind_info(r->cfg.kind));
  session->klass = klass;
  /* What the user saw, and why: never the listener's fault when the
   * harness could not reach it, gave up waiting or did not trust its
   * certificate (the POST's line above says which). */
  if(klass == CLIENT_CLASS_INFRASTRUCTURE)
    printf("Verdict: no verdict for %s\\%s: the harness failed, not the "
           "listener (the failed request's line says how) "
           "(infrastructure)\n",
           domain, user);
  else if(view.integration_error)
    printf("Verdict: %s\\%s saw %s (%s)\n", domain, user,
           client_kind_info(r->cfg.kind)->symptom, client_class_name(klass));
  else
    printf("Verdict: no error for %s\\%s (clean)\n", domain, user);
  return klass == CLIENT_CLASS_INFRASTRUCTURE ? 3
         : view.integration_error             ? 1
                                              : 0;
}

static int kbsim_cmd_client(int argc, char **argv)
{
  struct kbsim_client_run *r = calloc(1, sizeof(*r));
  struct client *client = NULL;
  char err[512];
  int result;

  if(!r) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 3;
  }
  result = kbsim_client_parse(argc, argv, r);
  if(result || r->exit_now)
    goto done;
  result = kbsim_client_login(r);
  if(result)
    goto done;
  /* Real clock (a zeroed kb_clock): --think really waits. Real
   * randomness: client challenges from getrandom(). */
  r->cfg.id = 1;
  r->cfg.base_url = r->url;
  r->cfg.host = r->host;
  r->cfg.domain = r->domain;
  r->cfg.user = r->user;
  r->cfg.password = r->password;
  r->cfg.ca_pem = r->ca_pem;
  result = kbsim_client_record(r);
  if(result)
    goto done;
  if(client_create(&r->cfg, &client, err, sizeof(err))) {
    result = kbsim_bad_args("client: %s", err);
    goto done;
  }
  result = kbsim_client_session(r, client);

done:
  client_destroy(client);
  client = NULL;
  if(r->recording) {
    if(result != 2 && kbsim_client_evidence(&r->rec, &r->files))
      result = 3;
    sim_recorder_free(&r->rec);
    sim_names_free(&r->names);
  }
  free(r->files.session.results);
  free(r->files.session.views);
  explicit_bzero(r->password, sizeof(r->password));
  free(r->ca_pem);
  free(r);
  return result;
}
