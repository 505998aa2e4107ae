/*
 * cmd_run.c - `kbsim run`: from flags or scenario files.
 *
 * Both build a scenario - from the flags, or from an INI file - and run
 * it through run.h, so a flag run is just an unnamed scenario.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "common/kb_users.h"
#include "evidence/ci.h"
#include "evidence/evidence.h"
#include "render/html.h"
#include "secret.h"
#include "wrap.h"

#define KBSIM_MAX_FILES 256

/* ---- evidence --------------------------------------------------------- */

struct kbsim_evidence {
  const char *transcript, *pcap, *json;
  const char *html;           /* --html: one page for every run */
  struct html_report *report; /* what it will hold */
  /* Each run's files, named before any ran (kbsim_evidence_plan); owned,
   * released with free(). */
  struct evidence_paths *paths;
  bool tap; /* --tap: standard output is TAP's alone, no human lines */
};

/* Says where a file went: "evidence: wrote bug.json" (on stderr with
 * --tap). */
static void kbsim_wrote(const struct kbsim_evidence *want, const char *path)
{
  FILE *out = want->tap ? stderr : stdout;

  if(strcmp(path, "-"))
    fprintf(out, "evidence: wrote %s\n", path);
  else
    fprintf(out, "evidence: wrote standard output\n");
}

/* Writes whichever evidence files were asked for into the paths planned
 * for this run. Returns 0, or -1 after printing a one-line error. */
static int kbsim_write_evidence(struct sim_recorder *rec,
                                const struct kbsim_evidence *want,
                                const struct evidence_paths *paths,
                                const struct evidence_run *run)
{
  char err[512];

  if(rec->failed) {
    fprintf(stderr, "kbsim: out of memory recording the trace; evidence "
                    "would be incomplete, so none was written\n");
    return -1;
  }
  if(paths->transcript[0] &&
     evidence_write_transcript_to(rec, paths->transcript, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(paths->transcript[0])
    kbsim_wrote(want, paths->transcript);
  if(paths->pcap[0] &&
     evidence_write_pcap(rec, paths->pcap, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(paths->pcap[0])
    kbsim_wrote(want, paths->pcap);
  if(paths->pcap[0] && run->sc && run->sc->tls != SCENARIO_TLS_NONE)
    fprintf(want->tap ? stderr : stdout,
            "evidence: note: %s is pcapng: the TLS records each connection's "
            "server end read and wrote, and their secrets, so Wireshark "
            "decrypts it with no key file; TLS draws its own randomness, so "
            "it differs from run to run\n",
            strcmp(paths->pcap, "-") ? paths->pcap : "standard output");
  if(paths->json[0] &&
     evidence_write_json(rec, run, paths->json, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(paths->json[0])
    kbsim_wrote(want, paths->json);
  return 0;
}

/* Sets standard output aside when an evidence flag is "-", before stdout
 * is wrapped; --junit - and --tap want standard output for themselves.
 * Returns 0 or the exit code (kbsim_evidence_status). */
static int kbsim_evidence_stdout(const struct kbsim_evidence *want,
                                 const char *junit)
{
  bool tap = want->tap;
  const char *outs[4] = {want->transcript, want->pcap, want->json, want->html};
  char err[512];
  size_t i;

  for(i = 0; i < 4; i++)
    if(outs[i] && !strcmp(outs[i], "-") &&
       ((junit && !strcmp(junit, "-")) || tap))
      return kbsim_bad_args("%s and an evidence file cannot both go to "
                            "standard output ('-'); give the file a name",
                            tap ? "--tap" : "--junit -");
  return kbsim_evidence_status(evidence_claim_stdout(outs, 4, err, sizeof(err)),
                               err);
}

/* Names every run's evidence files into want->paths (allocated here) and
 * checks they can be written, before anything runs. Returns 0 or the exit
 * code (kbsim_evidence_status; 3 when out of memory). */
static int kbsim_evidence_plan(struct kbsim_evidence *want,
                               const struct scenario *scenarios, size_t n)
{
  const char *names[KBSIM_MAX_FILES];
  struct evidence_want w = {want->transcript, want->pcap, want->json,
                            want->html};
  char err[512];
  size_t i;

  for(i = 0; i < n; i++)
    names[i] = scenarios[i].name;
  want->paths = calloc(n, sizeof(*want->paths));
  if(!want->paths) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 3;
  }
  return kbsim_evidence_status(
      evidence_plan(&w, names, n, want->paths, err, sizeof(err)), err);
}

/* Starts the --html page when it was asked for. Returns 0, or -1 after
 * printing a one-line error. */
static int kbsim_html_start(struct kbsim_evidence *want)
{
  if(!want->html)
    return 0;
  want->report = html_report_new("KB 942638: what each run did on the wire");
  if(!want->report) {
    fprintf(stderr, "kbsim: --html: out of memory\n");
    return -1;
  }
  return 0;
}

/* Writes and frees the --html page. Returns 0, or 1 after printing a
 * one-line error. */
static int kbsim_html_finish(struct kbsim_evidence *want)
{
  char err[512];
  int result = 0;

  if(want->report &&
     html_report_write(want->report, want->html, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    result = 1;
  }
  else if(want->report)
    kbsim_wrote(want, want->html);
  html_report_free(want->report);
  want->report = NULL;
  return result;
}

/* ---- printing --------------------------------------------------------- */

static void kbsim_print_sessions(const struct sim_outcome *o)
{
  size_t i, j;

  for(i = 0; i < o->sessions.count; i++) {
    const struct sim_session *s = &o->sessions.sessions[i];

    if(s->error[0]) {
      printf("client %u  could not start: %s\n", s->id, s->error);
      continue;
    }
    for(j = 0; j < s->nresults; j++) {
      const struct client_post_result *r = &s->results[j];
      char legs[32];

      if(r->legs > 1)
        snprintf(legs, sizeof(legs), "%d -> %d", r->leg1_status,
                 r->final_status);
      else
        snprintf(legs, sizeof(legs), "%d", r->final_status);
      /* ie's page is a GET, outlook-anywhere's steps RPC, the rest POSTs. */
      printf("client %-3u " WRAP_HANG "%-4s %-2u %-20s conn %-2" PRIu64
             " legs %u  %-10s %s%s%s\n",
             s->id, client_post_kind_verb(r->kind), r->index,
             client_post_kind_name(r->kind), r->connection, r->legs, legs,
             client_outcome_name(r->outcome), r->detail[0] ? ": " : "",
             r->detail);
    }
    printf("client %-3u " WRAP_HANG "sees: %s; presence %s; scheduling %s\n",
           s->id,
           s->view.integration_error ? CLIENT_NOTIFICATION_TEXT
                                     : "no notification",
           s->view.presence_available ? "available" : "unavailable",
           s->view.scheduling_available ? "available" : "unavailable");
  }
}

/* ---- run -------------------------------------------------------------- */

/* Runs one scenario, writes its evidence, prints its lines and fills *v.
 * Returns 0 when it ran and matched its expectations, 1 when it did not,
 * 3 when the harness could not run it (never counted as the outcome). */
static int kbsim_run_one(const struct scenario *sc,
                         const struct kbsim_evidence *want,
                         const struct evidence_paths *paths, bool from_file,
                         bool verbose, struct ci_case *v)
{
  struct sim_recorder rec;
  struct sim_outcome o;
  struct timespec start;
  char err[512], why[512], summary[768];
  char *text = sc->path[0] ? evidence_read_text(sc->path) : NULL;
  int result = 1;

  clock_gettime(CLOCK_MONOTONIC, &start);
  memset(v, 0, sizeof(*v));
  snprintf(v->name, sizeof(v->name), "%s", sc->name);
  /* The scenario's name ("run" for flags), not its path: Jenkins splits
   * a classname at its dots. */
  snprintf(v->classname, sizeof(v->classname), "%s", sc->name);
  sim_recorder_init(&rec, want->transcript || want->pcap || want->html);
  rec.client = client_kind_info(sc->kind);
  if(sim_scenario_run(sc,
                      want->transcript || want->pcap || want->json || want->html
                          ? sim_recorder_as_kb(&rec)
                          : (struct kb_trace){0},
                      &o, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    if(from_file && !want->tap)
      printf("ERROR %s (%s): " WRAP_HANG "the harness could not run it "
             "(infrastructure): %s\n",
             sc->name, sc->path, err);
    v->result = CI_ERROR;
    v->type = client_class_name(CLIENT_CLASS_INFRASTRUCTURE);
    snprintf(v->message, sizeof(v->message), "%s", err);
    v->seconds = kbsim_seconds_since(&start);
    sim_recorder_free(&rec);
    free(text);
    return 3;
  }
  v->type = client_class_name(sim_outcome_class(&o));
  if(sim_scenario_check(sc, &o, why, sizeof(why)))
    result = 0;
  else if(o.sessions.infrastructure)
    result = 3;
  {
    struct evidence_run run = {.sc = sc,
                               .scenario_text = text,
                               .sessions = &o.sessions,
                               .backend = &o.backend,
                               .proxy = &o.proxy,
                               .passed = !result,
                               .outcome_class = v->type};
    if(kbsim_write_evidence(&rec, want, paths, &run)) {
      v->result = CI_ERROR;
      snprintf(v->message, sizeof(v->message), "evidence could not be written");
      result = 3;
      goto done;
    }
  }
  if((!from_file || verbose) && !want->tap)
    kbsim_print_sessions(&o);
  sim_outcome_summary(sc, &o, summary, sizeof(summary));
  snprintf(v->output, sizeof(v->output), "%s", summary);
  v->result = result == 0 ? CI_PASS : result == 1 ? CI_FAIL : CI_ERROR;
  snprintf(v->message, sizeof(v->message), "%s", result ? why : summary);
  if(want->tap)
    ; /* the verdict says it */
  else if(from_file && result == 3)
    printf("ERROR %s (%s): " WRAP_HANG "%s: %s\n", sc->name, sc->path, why,
           summary);
  else if(from_file && !result) {
    const char *got = o.sessions.users_with_error ? "error" : "clean";
    printf("PASS %s (%s): " WRAP_HANG "expected %s, got %s: %s\n", sc->name,
           sc->path,
           sc->expect.outcome < 0 ? "-"
           : sc->expect.outcome   ? "error"
                                  : "clean",
           got, summary);
  }
  else if(from_file) /* why says each expectation that failed, once */
    printf("FAIL %s (%s): " WRAP_HANG "%s: %s\n", sc->name, sc->path, why,
           summary);
  else {
    const struct scenario_member *m = &sc->members[0];
    printf("summary: " WRAP_HANG "policy %s, seed %" PRIu64
           ": %u client%s, %u POST%s, %u ok, %u failed; %s\n",
           proxy_policy_name(scenario_effective_policy(m->patch, m->script)),
           sc->seed, (unsigned)o.sessions.count,
           o.sessions.count == 1 ? "" : "s", o.sessions.posts,
           o.sessions.posts == 1 ? "" : "s", o.sessions.posts_ok,
           o.sessions.posts_failed, summary);
    if(result)
      printf("%s%s\n", result == 3 ? "error: " : "", why);
  }
  if(want->report) {
    struct html_run page = {NULL, sc, &o, &rec};
    if(html_report_add(want->report, &page, err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s\n", err);
      result = 1;
    }
  }

done:
  v->seconds = kbsim_seconds_since(&start);
  sim_outcome_free(&o);
  sim_recorder_free(&rec);
  free(text);
  return result;
}

/* Adds a "DOMAIN\user:password" spec to the flag form's scenario; a
 * secret_user_add_fn for --user-file too. */
static int kbsim_run_add_user(void *ctx, const char *spec, char *err,
                              size_t errlen)
{
  struct scenario *flags = ctx;
  char domain[128], user[128], password[256];

  if(flags->nusers == KBSIM_MAX_USERS) {
    snprintf(err, errlen, "at most %d users; give fewer", KBSIM_MAX_USERS);
    return -1;
  }
  if(kb_users_split_spec(spec, false, domain, sizeof(domain), user,
                         sizeof(user), password, sizeof(password), err, errlen))
    return -1;
  memset(password, 0, sizeof(password));
  if(strlen(spec) >= sizeof(flags->user_specs[0])) {
    snprintf(err, errlen, "user spec longer than %zu bytes",
             sizeof(flags->user_specs[0]) - 1);
    return -1;
  }
  snprintf(flags->user_specs[flags->nusers++], sizeof(flags->user_specs[0]),
           "%s", spec);
  return 0;
}

static int kbsim_cmd_run(int argc, char **argv);

static const struct kbsim_opt run_opts[] = {
    {"policy", 'P', "per-connection|per-request",
     "Run N sessions through one ISA: per-connection is ISA 2006 as "
     "shipped, per-request has KB 942638 (SP1 and the script)."},
    {"clients", 'c', "N",
     "Concurrent Communicator sessions, 1 to 10000 "
     "(default 1)."},
    {"posts", 'p', "N",
     "EWS POSTs per session after autodiscover, 1 to 100 "
     "(default 2)."},
    {"seed", 's', "S",
     "Seed for NTLM challenges, think times and balancer "
     "draws; the same seed gives the same bytes. With "
     "files, overrides each file's seed."},
    {"expect", 'e', "error|clean",
     "Exit 1 unless the outcome is this: error means at least one user saw "
     "the Outlook Integration Error."},
    {"ntlm", 'n', "v2|v1|v1-ess",
     "The NTLM response Communicator sends "
     "(default v2)."},
    {"user", 'u', "'DOMAIN\\user:password'",
     "A directory entry, also who signs in; repeat for more users (default "
     "FABRIKAM\\alice:Passw0rd!)."},
    {"user-file", 'F', "FILE",
     "Read users from FILE: DOMAIN\\user = password lines, as in a "
     "scenario's [users]; keeps passwords out of the process list."},
    {"transcript", 't', "FILE",
     "Write the exact bytes of every request and "
     "response on both hops, NTLM decoded."},
    {"pcap", 'w', "FILE",
     "Write both hops as TCP streams for Wireshark or "
     "tshark. On a TLS run: pcapng with the real TLS records and their "
     "secrets (a Decryption Secrets Block), which differs from run to run."},
    {"json", 'j', "FILE", "Write the JSON report."},
    {"html", 'H', "FILE",
     "Write a self-contained page with a sequence "
     "diagram per run, side by side."},
    {"keylog", KBSIM_OPT_KEYLOG, "FILE", KBSIM_KEYLOG_HELP},
    {"redact", KBSIM_OPT_REDACT, NULL,
     "Replace what an offline dictionary attack on the password needs (each "
     "NTLM type 3's LM and NT proofs, MIC and session key) by a marker of the "
     "same length in the transcript and the pcap: for evidence shared outside "
     "the team."},
    {"verbose", 'v', NULL, "With files, also print every POST's outcome."},
    {"junit", 'J', "FILE",
     "Write JUnit XML (one testcase per scenario; a failure or error with "
     "the deciding evidence) for CI; - for standard output."},
    {"tap", 'T', NULL,
     "Print TAP version 14 on standard output instead of PASS/FAIL lines."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_run_command = {
    "run",
    "--policy per-connection|per-request [--clients N] [--posts N] [--seed S] "
    "[--expect error|clean] [--ntlm v2|v1|v1-ess] [--user SPEC]... "
    "[EVIDENCE]\n"
    "SCENARIO... [--seed S] [--verbose] [EVIDENCE]",
    "run Communicator sessions, or scenario files with PASS/FAIL",
    "With --policy: N concurrent Communicator sessions, each on its own "
    "connection (autodiscover, then EWS POSTs alternating "
    "GetUserOofSettings and GetUserAvailability); prints every POST's "
    "outcome and a summary.\n\n"
    "With SCENARIO...: runs scenario files, one PASS/FAIL line each (what "
    "was expected, what happened, the deciding evidence); exits 1 on any "
    "mismatch. A SCENARIO is a path, or a name found as ./NAME.ini, in "
    "$KBSIM_SCENARIOS, then in the catalogue ('kbsim list'). A malformed "
    "file is refused before anything runs (exit 2). With several, evidence "
    "file names get the scenario's name (bug.txt becomes bug-fix.txt; a name "
    "used twice gets -2: bug-fix-2.txt).\n\n"
    "EVIDENCE is any of --transcript FILE, --pcap FILE, --json FILE, --html "
    "FILE; one of them may be - (standard output; kbsim's own lines then go "
    "to standard error). Every file is checked before anything runs (exit 3 "
    "when one cannot be written), and run prints where it wrote each one.",
    run_opts,
    "@scenario",
    kbsim_cmd_run};

/* Ends a run: the HTML report, JUnit and TAP; returns the exit status
 * (ci_exit, or 3 when a report could not be written). */
static int kbsim_run_finish(struct kbsim_evidence *want,
                            const struct ci_case *v, size_t n,
                            const char *junit, bool tap)
{
  const struct ci_suite suite = {.name = "kbsim run", .cases = v, .ncases = n};
  char err[512];
  int rc = ci_exit(v, n);

  if(kbsim_html_finish(want))
    rc = 3;
  if(junit && ci_junit_write(junit, &suite, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    rc = 3;
  }
  if(tap)
    ci_tap_write(stdout, v, n);
  return rc;
}

/* One `kbsim run`. Owned by kbsim_cmd_run, on the heap: it holds up to
 * KBSIM_MAX_FILES scenarios and their verdicts. */
struct kbsim_run {
  struct kbsim_evidence want;
  const char *junit; /* --junit */
  bool have_policy, have_seed, verbose;
  /* The last flag given that makes no sense with files, or NULL. */
  const char *flag_only;
  uint64_t seed;
  bool exit_now; /* --help printed: exit with the code returned */
  struct ci_case verdicts[KBSIM_MAX_FILES];
  /* The files' scenarios; scenarios[0] is the flag form's. */
  struct scenario scenarios[KBSIM_MAX_FILES];
};

/* Takes one option c with its value arg into *r (the flag form's settings
 * into r->scenarios[0]). Returns 0, or 2 after printing what was wrong. */
static int kbsim_run_option(struct kbsim_run *r, int c, const char *arg)
{
  struct scenario *flags = &r->scenarios[0];
  enum proxy_policy policy;
  char err[512];
  uint64_t v;

  switch(c) {
  case 'P':
    if(proxy_policy_parse(arg, &policy))
      return kbsim_bad_args("--policy: '%s' is not per-connection or "
                            "per-request",
                            arg);
    /* As shipped, or with the hotfix (SP1) and the script. */
    flags->members[0].patch = policy == PROXY_POLICY_PER_REQUEST
                                  ? SCENARIO_PATCH_SP1
                                  : SCENARIO_PATCH_RTM;
    flags->members[0].script = policy == PROXY_POLICY_PER_REQUEST;
    r->have_policy = true;
    r->flag_only = "--policy";
    break;
  case 'c':
    if(kbsim_parse_u64(arg, 1, KBSIM_MAX_CLIENTS, &v))
      return kbsim_bad_args("--clients: '%s' is not a number from 1 to %u", arg,
                            KBSIM_MAX_CLIENTS);
    flags->clients = (unsigned)v;
    r->flag_only = "--clients";
    break;
  case 'p':
    if(kbsim_parse_u64(arg, 1, KBSIM_MAX_POSTS, &v))
      return kbsim_bad_args("--posts: '%s' is not a number from 1 to 100", arg);
    flags->posts = (unsigned)v;
    r->flag_only = "--posts";
    break;
  case 's':
    if(kbsim_parse_u64(arg, 0, UINT64_MAX, &r->seed))
      return kbsim_bad_args("--seed: '%s' is not a whole number", arg);
    r->have_seed = true;
    break;
  case 'e':
    if(!strcmp(arg, "error"))
      flags->expect.outcome = 1;
    else if(!strcmp(arg, "clean"))
      flags->expect.outcome = 0;
    else
      return kbsim_bad_args("--expect: '%s' is not error or clean", arg);
    r->flag_only = "--expect";
    break;
  case 'n':
    if(kbsim_parse_kind(arg, &flags->ntlm))
      return kbsim_bad_args("--ntlm: '%s' is not v2, v1 or v1-ess", arg);
    r->flag_only = "--ntlm";
    break;
  case 'u':
    if(kbsim_run_add_user(flags, arg, err, sizeof(err)))
      return kbsim_bad_args("--user: %s", err);
    r->flag_only = "--user";
    break;
  case 'F':
    if(secret_user_file(arg, kbsim_run_add_user, flags, err, sizeof(err))) {
      fprintf(stderr, "kbsim: --user-file: %s\n", err);
      return 2;
    }
    r->flag_only = "--user-file";
    break;
  case 't':
    r->want.transcript = arg;
    break;
  case 'w':
    r->want.pcap = arg;
    break;
  case 'j':
    r->want.json = arg;
    break;
  case 'H':
    r->want.html = arg;
    break;
  case KBSIM_OPT_REDACT:
    evidence_set_redact(true);
    break;
  case KBSIM_OPT_KEYLOG:
    if(kbsim_keylog(arg))
      return 3;
    break;
  case 'v':
    r->verbose = true;
    break;
  case 'J':
    r->junit = arg;
    break;
  case 'T':
    r->want.tap = true;
    break;
  }
  return 0;
}

/* Parses the command line into *r. Returns 0, or the exit code (with
 * r->exit_now after --help) after printing what was wrong. */
static int kbsim_run_parse(int argc, char **argv, struct kbsim_run *r)
{
  struct kbsim_args a;
  int c, bad;

  r->seed = 1;
  scenario_defaults(&r->scenarios[0]);
  r->scenarios[0].nusers = 0;
  kbsim_args_init(&a, &kbsim_run_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    if((bad = kbsim_run_option(r, c, optarg)) != 0)
      return bad;
  if(c < 0) {
    r->exit_now = true;
    return a.status;
  }
  return kbsim_evidence_stdout(&r->want, r->junit);
}

/* Reads scenario file i, name as given; one that cannot be read gets an
 * error verdict (type "bad-scenario") with the one-line reason, which is
 * also printed. Returns 0, or 2 when it cannot be read. */
static int kbsim_run_read(struct kbsim_run *r, const char *name, size_t i)
{
  struct ci_case *v = &r->verdicts[i];
  struct timespec start;
  char err[1024];

  memset(v, 0, sizeof(*v));
  clock_gettime(CLOCK_MONOTONIC, &start);
  if(!kbsim_read_scenario(name, &r->scenarios[i], err, sizeof(err)))
    return 0;
  fprintf(stderr, "kbsim: %s\n", err);
  kbsim_bad_scenario_case(name, err, kbsim_seconds_since(&start), v);
  return 2;
}

/* Ends a run refused because a scenario file of names[0..n) could not be
 * read: nothing ran, but --junit and --tap still say why (an error case
 * per bad file, the others skipped). Returns 2, or 3 when a file could
 * not be written. */
static int kbsim_run_refused(struct kbsim_run *r, char **names, size_t n)
{
  char err[512];
  size_t i, bad = 0;

  while(bad < n && r->verdicts[bad].result != CI_ERROR)
    bad++;
  for(i = 0; i < n; i++) {
    struct ci_case *v = &r->verdicts[i];
    if(v->result == CI_ERROR)
      continue;
    kbsim_copy(v->name, sizeof(v->name), r->scenarios[i].name);
    kbsim_copy(v->classname, sizeof(v->classname), r->scenarios[i].name);
    v->result = CI_SKIP;
    snprintf(v->message, sizeof(v->message),
             "not run: %s could not be read, and no scenario runs until "
             "every file can",
             names[bad]);
  }
  if(r->junit &&
     ci_junit_write(r->junit,
                    &(const struct ci_suite){
                        .name = "kbsim run", .cases = r->verdicts, .ncases = n},
                    err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 3;
  }
  if(r->want.tap)
    ci_tap_write(stdout, r->verdicts, n);
  return 2;
}

/* Runs the scenario files named by names[0..n), each read before any
 * runs, so a typo in the last one is found before minutes of runs.
 * Returns the exit code. */
static int kbsim_run_files(struct kbsim_run *r, char **names, size_t n)
{
  struct kbsim_evidence *want = &r->want;
  int failed = 0, errors = 0, bad = 0;
  size_t i;

  if(r->flag_only)
    return kbsim_bad_args("%s cannot be combined with scenario files; "
                          "set it in the file instead",
                          r->flag_only);
  if(n > KBSIM_MAX_FILES)
    return kbsim_bad_args("at most %d scenario files at once", KBSIM_MAX_FILES);
  for(i = 0; i < n; i++) {
    if(kbsim_run_read(r, names[i], i))
      bad = 1;
    else if(r->have_seed)
      r->scenarios[i].seed = r->seed;
  }
  if(bad)
    return kbsim_run_refused(r, names, n);
  if((bad = kbsim_evidence_plan(want, r->scenarios, n)) != 0)
    return bad;
  if(kbsim_html_start(want))
    return 3;
  for(i = 0; i < n; i++) {
    int rc = kbsim_run_one(&r->scenarios[i], want, &want->paths[i], true,
                           r->verbose, &r->verdicts[i]);
    failed += rc == 1;
    errors += rc == 3;
  }
  if(n > 1 && !want->tap)
    printf("%zu scenarios: %zu passed, %d failed, %d could not run\n", n,
           n - (size_t)failed - (size_t)errors, failed, errors);
  return kbsim_run_finish(want, r->verdicts, n, r->junit, want->tap);
}

/* Runs the flag form: N sessions through one member with --policy.
 * Returns the exit code. */
static int kbsim_run_flags(struct kbsim_run *r)
{
  struct scenario *flags = &r->scenarios[0];
  int bad;

  if(!r->have_policy)
    return kbsim_bad_args("give scenarios (files or names), or --policy "
                          "per-connection|per-request");
  if(!flags->nusers)
    snprintf(flags->user_specs[flags->nusers++], sizeof(flags->user_specs[0]),
             "%s", kbsim_default_user);
  flags->nmembers = 1;
  snprintf(flags->members[0].name, sizeof(flags->members[0].name), "ISA01");
  snprintf(flags->name, sizeof(flags->name), "run");
  flags->seed = r->seed;
  if((bad = kbsim_evidence_plan(&r->want, flags, 1)) != 0)
    return bad;
  if(kbsim_html_start(&r->want))
    return 3;
  kbsim_run_one(flags, &r->want, &r->want.paths[0], false, r->verbose,
                &r->verdicts[0]);
  return kbsim_run_finish(&r->want, r->verdicts, 1, r->junit, r->want.tap);
}

static int kbsim_cmd_run(int argc, char **argv)
{
  struct kbsim_run *r = calloc(1, sizeof(*r));
  int rc;

  if(!r) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 3;
  }
  rc = kbsim_run_parse(argc, argv, r);
  if(!rc && !r->exit_now) {
    /* TAP is for machines: its lines stay whole. */
    if(!r->want.tap)
      (void)wrap_stdout(wrap_columns(STDOUT_FILENO));
    rc = optind < argc
             ? kbsim_run_files(r, argv + optind, (size_t)(argc - optind))
             : kbsim_run_flags(r);
  }
  free(r->want.paths);
  free(r);
  return rc;
}
