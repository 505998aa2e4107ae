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
  const char *html;             /* --html: one page for every run */
  struct html_report *report;   /* what it will hold */
  struct evidence_paths *paths; /* each run's files, named before any ran */
};

/* --tap: standard output is TAP's alone; the human lines are left out. */
static bool kbsim_run_tap;

/* Says where a file went: "evidence: wrote bug.json" (on stderr with
 * --tap). */
static void kbsim_wrote(const char *path)
{
  FILE *out = kbsim_run_tap ? stderr : stdout;

  if(strcmp(path, "-"))
    fprintf(out, "evidence: wrote %s\n", path);
  else
    fprintf(out, "evidence: wrote standard output\n");
}

/* Writes whichever evidence files were asked for into the paths planned
 * for this run. Returns 0, or -1 after printing a one-line error. */
static int kbsim_write_evidence(struct sim_recorder *rec,
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
    kbsim_wrote(paths->transcript);
  if(paths->pcap[0] &&
     evidence_write_pcap(rec, paths->pcap, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(paths->pcap[0])
    kbsim_wrote(paths->pcap);
  if(paths->json[0] &&
     evidence_write_json(rec, run, paths->json, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(paths->json[0])
    kbsim_wrote(paths->json);
  return 0;
}

/* Sets standard output aside when an evidence flag is "-", before stdout
 * is wrapped; --junit - and --tap want standard output for themselves.
 * Returns 0 or the exit code (kbsim_evidence_status). */
static int kbsim_evidence_stdout(const struct kbsim_evidence *want,
                                 const char *junit, bool tap)
{
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

/* Names every run's evidence files and checks they can be written, before
 * anything runs. Returns 0 or the exit code (kbsim_evidence_status). */
static int kbsim_evidence_plan(struct kbsim_evidence *want,
                               const struct scenario *scenarios, size_t n)
{
  static struct evidence_paths paths[KBSIM_MAX_FILES];
  const char *names[KBSIM_MAX_FILES];
  struct evidence_want w = {want->transcript, want->pcap, want->json,
                            want->html};
  char err[512];
  size_t i;

  for(i = 0; i < n; i++)
    names[i] = scenarios[i].name;
  want->paths = paths;
  return kbsim_evidence_status(
      evidence_plan(&w, names, n, paths, err, sizeof(err)), err);
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
    kbsim_wrote(want->html);
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
      printf("client %-3u " WRAP_HANG "POST %-2u %-20s conn %-2" PRIu64
             " legs %u  %-10s %s%s%s\n",
             s->id, r->index, client_post_kind_name(r->kind), r->connection,
             r->legs, legs, client_outcome_name(r->outcome),
             r->detail[0] ? ": " : "", r->detail);
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

/* Seconds since start (CLOCK_MONOTONIC). */
static double kbsim_seconds_since(const struct timespec *start)
{
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

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
  snprintf(v->classname, sizeof(v->classname), "%s",
           sc->path[0] ? sc->path : "kbsim.run");
  sim_recorder_init(&rec, want->transcript || want->pcap || want->html);
  if(sim_scenario_run(sc,
                      want->transcript || want->pcap || want->json || want->html
                          ? sim_recorder_as_kb(&rec)
                          : (struct kb_trace){0},
                      &o, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    if(from_file && !kbsim_run_tap)
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
    if(kbsim_write_evidence(&rec, paths, &run)) {
      v->result = CI_ERROR;
      snprintf(v->message, sizeof(v->message), "evidence could not be written");
      result = 3;
      goto done;
    }
  }
  if((!from_file || verbose) && !kbsim_run_tap)
    kbsim_print_sessions(&o);
  sim_outcome_summary(sc, &o, summary, sizeof(summary));
  snprintf(v->output, sizeof(v->output), "%s", summary);
  v->result = result == 0 ? CI_PASS : result == 1 ? CI_FAIL : CI_ERROR;
  snprintf(v->message, sizeof(v->message), "%s", result ? why : summary);
  if(kbsim_run_tap)
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
 * sim_user_add_fn for --user-file too. */
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
     "Concurrent Communicator sessions, 1 to 1000 "
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
     "tshark."},
    {"json", 'j', "FILE", "Write the JSON report."},
    {"html", 'H', "FILE",
     "Write a self-contained page with a sequence "
     "diagram per run, side by side."},
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
  char err[512];
  const struct ci_suite suite = {.name = "kbsim run", .cases = v, .ncases = n};
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

static int kbsim_cmd_run(int argc, char **argv)
{
  static struct ci_case verdicts[KBSIM_MAX_FILES];
  const char *junit = NULL;
  bool tap = false;
  int errors = 0;
  static struct scenario scenarios[KBSIM_MAX_FILES];
  struct scenario *flags = &scenarios[0];
  struct kbsim_evidence want = {NULL, NULL, NULL, NULL, NULL, NULL};
  char err[512];
  struct kbsim_args a;
  bool have_policy = false, have_seed = false, verbose = false;
  bool flag_only = false; /* a flag that makes no sense with files */
  const char *flag_name = NULL;
  uint64_t v, seed = 1;
  size_t nfiles, i;
  int c, failed = 0, bad = 0;

  scenario_defaults(flags);
  flags->nusers = 0;
  kbsim_args_init(&a, &kbsim_run_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 'P': {
      enum proxy_policy policy;
      if(proxy_policy_parse(optarg, &policy))
        return kbsim_bad_args("--policy: '%s' is not per-connection or "
                              "per-request",
                              optarg);
      /* As shipped, or with the hotfix (SP1) and the script. */
      flags->members[0].patch = policy == PROXY_POLICY_PER_REQUEST
                                    ? SCENARIO_PATCH_SP1
                                    : SCENARIO_PATCH_RTM;
      flags->members[0].script = policy == PROXY_POLICY_PER_REQUEST;
      have_policy = true;
      flag_only = true;
      flag_name = "--policy";
      break;
    }
    case 'c':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_CLIENTS, &v))
        return kbsim_bad_args("--clients: '%s' is not a number from 1 to "
                              "1000",
                              optarg);
      flags->clients = (unsigned)v;
      flag_only = true;
      flag_name = "--clients";
      break;
    case 'p':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_POSTS, &v))
        return kbsim_bad_args("--posts: '%s' is not a number from 1 to 100",
                              optarg);
      flags->posts = (unsigned)v;
      flag_only = true;
      flag_name = "--posts";
      break;
    case 's':
      if(kbsim_parse_u64(optarg, 0, UINT64_MAX, &seed))
        return kbsim_bad_args("--seed: '%s' is not a whole number", optarg);
      have_seed = true;
      break;
    case 'e':
      if(!strcmp(optarg, "error"))
        flags->expect.outcome = 1;
      else if(!strcmp(optarg, "clean"))
        flags->expect.outcome = 0;
      else
        return kbsim_bad_args("--expect: '%s' is not error or clean", optarg);
      flag_only = true;
      flag_name = "--expect";
      break;
    case 'n':
      if(kbsim_parse_kind(optarg, &flags->ntlm))
        return kbsim_bad_args("--ntlm: '%s' is not v2, v1 or v1-ess", optarg);
      flag_only = true;
      flag_name = "--ntlm";
      break;
    case 'u':
      if(kbsim_run_add_user(flags, optarg, err, sizeof(err)))
        return kbsim_bad_args("--user: %s", err);
      flag_only = true;
      flag_name = "--user";
      break;
    case 'F':
      if(sim_user_file(optarg, kbsim_run_add_user, flags, err, sizeof(err))) {
        fprintf(stderr, "kbsim: --user-file: %s\n", err);
        return 2;
      }
      flag_only = true;
      flag_name = "--user-file";
      break;
    case 't':
      want.transcript = optarg;
      break;
    case 'w':
      want.pcap = optarg;
      break;
    case 'j':
      want.json = optarg;
      break;
    case 'H':
      want.html = optarg;
      break;
    case 'v':
      verbose = true;
      break;
    case 'J':
      junit = optarg;
      break;
    case 'T':
      tap = kbsim_run_tap = true;
      break;
    }
  }
  if(c < 0)
    return a.status;
  if((bad = kbsim_evidence_stdout(&want, junit, tap)) != 0)
    return bad;
  (void)wrap_stdout(wrap_columns(STDOUT_FILENO));

  nfiles = (size_t)(argc - optind);
  if(nfiles) {
    if(flag_only)
      return kbsim_bad_args("%s cannot be combined with scenario files; "
                            "set it in the file instead",
                            flag_name);
    if(nfiles > KBSIM_MAX_FILES)
      return kbsim_bad_args("at most %d scenario files at once",
                            KBSIM_MAX_FILES);
    /* Read every file before running any, so a typo in the last one is
     * found before minutes of runs. */
    for(i = 0; i < nfiles; i++) {
      if(kbsim_load_scenario(argv[optind + (int)i], &scenarios[i]))
        bad = 1;
      else if(have_seed)
        scenarios[i].seed = seed;
    }
    if(bad)
      return 2;
    if((bad = kbsim_evidence_plan(&want, scenarios, nfiles)) != 0)
      return bad;
    if(kbsim_html_start(&want))
      return 3;
    for(i = 0; i < nfiles; i++) {
      int rc = kbsim_run_one(&scenarios[i], &want, &want.paths[i], true,
                             verbose, &verdicts[i]);
      failed += rc == 1;
      errors += rc == 3;
    }
    if(nfiles > 1 && !tap)
      printf("%zu scenarios: %zu passed, %d failed, %d could not run\n", nfiles,
             nfiles - (size_t)failed - (size_t)errors, failed, errors);
    return kbsim_run_finish(&want, verdicts, nfiles, junit, tap);
  }

  if(!have_policy)
    return kbsim_bad_args("give scenarios (files or names), or --policy "
                          "per-connection|per-request");
  if(!flags->nusers)
    snprintf(flags->user_specs[flags->nusers++], sizeof(flags->user_specs[0]),
             "%s", kbsim_default_user);
  flags->nmembers = 1;
  snprintf(flags->members[0].name, sizeof(flags->members[0].name), "ISA01");
  snprintf(flags->name, sizeof(flags->name), "run");
  flags->seed = seed;
  if((bad = kbsim_evidence_plan(&want, flags, 1)) != 0)
    return bad;
  if(kbsim_html_start(&want))
    return 3;
  kbsim_run_one(flags, &want, &want.paths[0], false, verbose, &verdicts[0]);
  return kbsim_run_finish(&want, verdicts, 1, junit, tap);
}
