/*
 * cmd_serve.c - `kbsim serve`: the topology on real loopback ports for
 * real clients, until SIGINT or SIGTERM.
 *
 *   kbsim serve FILE [--proxy H:P] [--backend H:P] [--admin H:P]
 *     [--admin-host NAME]... [-q]
 *     the scenario's whole array: Exchange, every member on its own port,
 *     a TCP load balancer on --proxy in front of them, and the admin
 *     endpoint (admin.h) through which a trainer applies the fix live.
 *   kbsim serve --proxy H:P --backend H:P --policy P --user ... [--auth A]
 *     [--admin H:P]
 *     one listener on --proxy, no balancer (the original form).
 *   kbsim serve --proxy H:P --backend H:P --pass-through|--defect NAME...
 *     --user ...
 *     the same listener passing NTLM through to an Exchange that
 *     authenticates itself, or broken in named ways (proxy/defects.c),
 *     so that a trainer shows each failure of the family on the wire.
 *
 * Real clients mean the real clock and the kernel's randomness. Every
 * request a member answers is printed as one line as it happens (-q
 * silences it) and streamed to the admin endpoint's console (live.h).
 * This file parses the command line and runs serve until a signal; what
 * runs is serve_array.c's (started, restarted for a trainer, stopped),
 * what it prints serve_print.c's.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "render/serve_page.h"
#include "secret.h"
#include "serve.h"

static int kbsim_cmd_serve(int argc, char **argv);

/* Option values without a short form. */
enum {
  KBSIM_SERVE_PASS_THROUGH = 1101,
  KBSIM_SERVE_KRB5_KEYTAB = 1102,
  KBSIM_SERVE_TLS,
  KBSIM_SERVE_BRIDGE_CERTIFICATE,
  KBSIM_SERVE_EXTENDED_PROTECTION,
  KBSIM_SERVE_CA_FILE
};

static const struct kbsim_opt serve_opts[] = {
    {"proxy", 'x', "HOST:PORT",
     "Where clients connect: the balancer with "
     "SCENARIO (default 127.0.0.1:0), the "
     "listener without; port 0 picks a free one."},
    {"backend", 'b', "HOST:PORT",
     "Where Exchange listens (default "
     "127.0.0.1:0 with SCENARIO)."},
    {"admin", 'a', "HOST:PORT",
     "Where the admin endpoint listens (always with SCENARIO, default "
     "127.0.0.1:0). Every request needs its token: KBSIM_ADMIN_TOKEN when "
     "set, else a random one, printed in the console's URL and written to "
     "a file only you can read, where 'kbsim ctl' finds it. It is plain "
     "HTTP: keep it on loopback."},
    {"policy", 'P', "per-connection|per-request",
     "Without SCENARIO: the listener's policy (per-request counts as SP1 "
     "with the script, per-connection as RTM)."},
    {"auth", 'A', "integrated|basic|none",
     "Without SCENARIO: the "
     "listener's authentication "
     "(default integrated)."},
    {"pass-through", KBSIM_SERVE_PASS_THROUGH, NULL,
     "Without SCENARIO: the listener authenticates nobody; it passes NTLM "
     "through to Exchange, which authenticates each connection itself "
     "with the --user accounts (as 'kbsim exchange --auth integrated'), "
     "and pins each client connection to an upstream connection of its "
     "own, as HAProxy does. Takes no --policy and no --auth."},
    {"defect", 'D', "NAME",
     "Without SCENARIO: break the listener in one named way (repeat for "
     "more); enough alone, with --proxy, --backend and the users, to start. "
     "Each of the first four implies --pass-through: handshake-split sends "
     "every request on a new upstream connection, so a type 3 never meets "
     "its challenge; mixes-identities hands the upstream connection of a "
     "client that left to the next client; pinned-recycled replaces the "
     "pinned upstream connection after 2 requests while the client's stays "
     "open; challenge-rewritten folds Exchange's offer (WWW-Authenticate: "
     "Negotiate, then NTLM) into one header without NTLM. The others are "
     "the authenticating "
     "listener's: body-less-forward forwards a type 1 on an authenticated "
     "connection (the bug of --policy per-connection, which it implies); "
     "expect-hang answers a request with Expect: 100-continue neither a 100 "
     "nor anything until the client gives up; body-on-type1 forwards a type "
     "1 that carries a body, unauthenticated. mixes-after-single-leg pins "
     "an upstream connection only after a 401 with NTLM or Negotiate "
     "(HAProxy's rule), so a Kerberos client's, which never sees one, "
     "goes back to the pool for the next client (pass-through; give "
     "--krb5-keytab for Kerberos to pass). ntlm-over-http2 (TLS) is not "
     "available yet."},
    {"krb5-keytab", KBSIM_SERVE_KRB5_KEYTAB, "FILE",
     "Accept Negotiate with Kerberos too (MIT's GSS-API): the keytab of "
     "HTTP/autodiscover.fabrikam.com, for the listener and, under "
     "--pass-through or a pass-through --defect, for Exchange. A ticket "
     "comes in one leg, with the request's body. KRB5_CONFIG names the "
     "realm (kinit's krb5.conf); tests/test_kerberos.c starts a realm."},
    {"user", 'u', "'DOMAIN\\user:password'",
     "Without SCENARIO: a "
     "directory entry; repeat "
     "for more."},
    {"user-file", 'F', "FILE",
     "Without SCENARIO: read users from FILE (DOMAIN\\user = password "
     "lines, as in a scenario's [users]); keeps passwords out of the "
     "process list."},
    {"tls", KBSIM_SERVE_TLS, "none|offload|bridge",
     "Without SCENARIO (a scenario says it in [listener] tls): offload "
     "serves HTTPS to the clients and speaks HTTP to Exchange; bridge "
     "serves HTTPS on both hops; none is plain HTTP. A CA is made for the "
     "run and signs Exchange's and the listener's certificates; its "
     "private keys stay in memory. A TLS serve records no evidence yet."},
    {"bridge-certificate", KBSIM_SERVE_BRIDGE_CERTIFICATE, "same|own",
     "Without SCENARIO, with --tls bridge: same presents Exchange's "
     "certificate to the clients, own the listener's."},
    {"extended-protection", KBSIM_SERVE_EXTENDED_PROTECTION,
     "none|allow|require",
     "Without SCENARIO, with --pass-through: Exchange's Extended "
     "Protection, whether a type 3 must carry the channel binding of "
     "Exchange's own certificate (allow refuses a wrong one, require a "
     "wrong or missing one)."},
    {"ca-file", KBSIM_SERVE_CA_FILE, "FILE",
     "With TLS: write the run's CA certificate (PEM) to FILE, for 'kbsim "
     "client --ca-file FILE' or curl --cacert, instead of printing it."},
    {"admin-host", 'H', "NAME",
     "Another name the admin endpoint answers to in Host (besides its "
     "address and localhost); repeat for more."},
    {"quiet", 'q', NULL, "No line per request on the terminal (also -q)."},
    {"pcap", 'c', "FILE",
     "On SIGINT/SIGTERM, write what passed: the client hop as the balancer "
     "relayed it and every member's upstream hop, as a capture. Without "
     "SCENARIO a one-member relay on --proxy records the client hop."},
    {"transcript", 't', "FILE", "The same as exact bytes, NTLM decoded."},
    {"json", 'j', "FILE",
     "On SIGINT/SIGTERM, the JSON report of what passed: every connection "
     "of both hops with its close reason, every exchange as the members "
     "and Exchange saw it, the counters."},
    {"keylog", KBSIM_OPT_KEYLOG, "FILE", KBSIM_KEYLOG_HELP},
    {"redact", KBSIM_OPT_REDACT, NULL,
     "Replace what an offline dictionary attack on the password needs (each "
     "NTLM type 3's LM and NT proofs, MIC and session key) by a marker of the "
     "same length in the transcript and the pcap: for evidence shared outside "
     "the team."},
    {"html", 'w', "FILE",
     "On SIGINT/SIGTERM, the page of what passed: both hops' connections, "
     "each request with the listener's decision and what reached "
     "Exchange."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_serve_command = {
    "serve",
    "SCENARIO [--proxy HOST:PORT] [--backend HOST:PORT] [--admin HOST:PORT]\n"
    "--proxy HOST:PORT --backend HOST:PORT --policy P --user SPEC... "
    "[--auth integrated|basic|none] [--admin HOST:PORT]\n"
    "--proxy HOST:PORT --backend HOST:PORT --pass-through|--defect NAME... "
    "--user SPEC... [--admin HOST:PORT]",
    "the listener and Exchange on real ports, for real clients",
    "Runs until SIGINT or SIGTERM on the real clock with the kernel's "
    "randomness, and prints where everything listens. With SCENARIO (a file "
    "or a catalogue name): the scenario's whole array, each member on its "
    "own port with its patch level and script, behind a TCP load balancer "
    "on --proxy that picks a member per new connection, and the admin "
    "endpoint that 'kbsim ctl' drives. Without: one listener on --proxy in "
    "front of Exchange on --backend; with --pass-through it passes NTLM on "
    "to an Exchange that authenticates, and each --defect breaks it in one "
    "of the named ways the reverse-proxy family fails (what kbsim probe "
    "tells apart), for a trainer to show on the wire. Exchange's status "
    "line says where its counters are read.\n\n"
    "HOST:PORT is a numeric address or localhost (127.0.0.1), [V6]:PORT for "
    "IPv6, or a URL as serve prints it (http://127.0.0.1:8099/).",
    serve_opts,
    "@scenario",
    kbsim_cmd_serve};

/* Adds a --user spec to the flag form's store, and keeps a copy for the
 * sessions the admin endpoint runs. Returns 0, or -1 with a one-line
 * reason in err. */
static int kbsim_serve_user(struct kbsim_serve_opts *o, const char *spec,
                            char *err, size_t errlen)
{
  if(kb_users_add_spec(o->users, spec, err, errlen))
    return -1;
  if(o->nuser_specs < KBSIM_SERVE_MAX_USERS &&
     (o->user_specs[o->nuser_specs] = strdup(spec)) != NULL)
    o->nuser_specs++;
  return 0;
}

/* secret_user_add_fn for --user-file: into the store of the flag form. */
static int kbsim_serve_add_user(void *ctx, const char *spec, char *err,
                                size_t errlen)
{
  return kbsim_serve_user(ctx, spec, err, errlen);
}

/* The first of the defects in the bit set defects whose listener is
 * where (kb_defect.h), or NULL. */
static const char *kbsim_serve_defect_of(unsigned defects,
                                         enum kb_defect_where where)
{
  unsigned i;

  for(i = 0; i < KB_DEFECT_COUNT; i++)
    if((defects & PROXY_DEFECT(i)) &&
       kb_defect_info((enum kb_defect)i)->where == where)
      return kb_defect_name((enum kb_defect)i);
  return NULL;
}

/* Settles the flag form's listener from --pass-through, --defect,
 * --policy and --auth: a pass-through defect implies --pass-through, and
 * what contradicts itself is a usage error naming both sides. Returns 0,
 * or 2 after printing it. */
static int kbsim_serve_check_flags(struct kbsim_serve_opts *o)
{
  const char *through =
      kbsim_serve_defect_of(o->defects, KB_DEFECT_PASS_THROUGH);
  const char *authenticating =
      kbsim_serve_defect_of(o->defects, KB_DEFECT_AUTHENTICATING);
  char why[64];

  if(o->have_bridge_certificate && o->tls != SCENARIO_TLS_BRIDGE)
    return kbsim_bad_args("--bridge-certificate is which certificate a "
                          "bridging listener presents; give --tls bridge");
  if(o->extended_protection && !through && !o->pass_through)
    return kbsim_bad_args("--extended-protection checks Exchange's own "
                          "logins; give --pass-through");
  if(through)
    snprintf(why, sizeof(why), "--defect %s", through);
  else
    snprintf(why, sizeof(why), "--pass-through");
  if(through || o->pass_through) {
    if(authenticating)
      return kbsim_bad_args("--defect %s breaks a listener that "
                            "authenticates, %s one that passes NTLM "
                            "through; give one kind",
                            authenticating, why);
    if(o->have_policy)
      return kbsim_bad_args("--policy: under %s the listener authenticates "
                            "nobody, so it has no policy; drop --policy",
                            why);
    if(o->have_auth && o->auth != PROXY_AUTH_NONE)
      return kbsim_bad_args("--auth %s: under %s Exchange authenticates, "
                            "not the listener; drop --auth",
                            proxy_auth_name(o->auth), why);
    o->pass_through = true;
    return 0;
  }
  if(!authenticating)
    return 0;
  if(o->have_auth && o->auth != PROXY_AUTH_INTEGRATED)
    return kbsim_bad_args("--auth %s cannot have --defect %s, a defect of "
                          "the integrated listener; drop --auth",
                          proxy_auth_name(o->auth), authenticating);
  if(o->defects & PROXY_DEFECT(KB_DEFECT_BODY_LESS_FORWARD)) {
    if(o->have_policy && o->policy == PROXY_POLICY_PER_REQUEST)
      return kbsim_bad_args("--policy per-request is the fix of what "
                            "--defect body-less-forward breaks; give one");
    o->policy = PROXY_POLICY_PER_CONNECTION;
  }
  else if(!o->have_policy)
    o->policy = PROXY_POLICY_PER_REQUEST; /* the defect alone */
  return 0;
}

/* Takes one option of the flag form (c, its value in optarg): the
 * listener's policy, authentication, pass-through, defects and users.
 * Sets *flag_only to the option's name. Returns 0, or the exit code 2
 * after printing what was wrong. */
static int kbsim_serve_flag_opt(struct kbsim_serve_opts *o, int c,
                                const char **flag_only)
{
  char err[512];

  switch(c) {
  case 'P':
    if(proxy_policy_parse(optarg, &o->policy))
      return kbsim_bad_args("--policy: '%s' is not per-connection or "
                            "per-request",
                            optarg);
    o->have_policy = true;
    *flag_only = "--policy";
    break;
  case 'A':
    if(proxy_auth_parse(optarg, &o->auth))
      return kbsim_bad_args("--auth: '%s' is not integrated, basic or none",
                            optarg);
    o->have_auth = true;
    *flag_only = "--auth";
    break;
  case KBSIM_SERVE_PASS_THROUGH:
    o->pass_through = true;
    *flag_only = "--pass-through";
    break;
  case 'D': {
    enum kb_defect d;
    const char *missing;

    if(kb_defect_parse(optarg, &d, err, sizeof(err)))
      return kbsim_bad_args("--defect: %s", err);
    missing = proxy_defect_unavailable(d);
    if(missing)
      return kbsim_bad_args("--defect %s %s", optarg, missing);
    o->defects |= PROXY_DEFECT(d);
    *flag_only = "--defect";
    break;
  }
  case 'u':
    if(kbsim_serve_user(o, optarg, err, sizeof(err)))
      return kbsim_bad_args("--user: %s", err);
    *flag_only = "--user";
    break;
  case 'F':
    if(secret_user_file(optarg, kbsim_serve_add_user, o, err, sizeof(err))) {
      fprintf(stderr, "kbsim: --user-file: %s\n", err);
      return 2;
    }
    *flag_only = "--user-file";
    break;
  case KBSIM_SERVE_TLS:
    if(scenario_tls_parse(optarg, &o->tls))
      return kbsim_bad_args("--tls: '%s' is not none, offload or bridge",
                            optarg);
    *flag_only = "--tls";
    break;
  case KBSIM_SERVE_BRIDGE_CERTIFICATE:
    if(strcmp(optarg, "same") && strcmp(optarg, "own"))
      return kbsim_bad_args("--bridge-certificate: '%s' is not same or own",
                            optarg);
    o->bridge_same_certificate = !strcmp(optarg, "same");
    o->have_bridge_certificate = true;
    *flag_only = "--bridge-certificate";
    break;
  case KBSIM_SERVE_EXTENDED_PROTECTION:
    if(backend_epa_parse(optarg, &o->extended_protection))
      return kbsim_bad_args("--extended-protection: '%s' is not none, allow "
                            "or require",
                            optarg);
    *flag_only = "--extended-protection";
    break;
  }
  return 0;
}

/* Parses the command line into *o. Returns 0, or the exit code 2 after
 * printing what was wrong. */

static int kbsim_serve_parse(int argc, char **argv, struct kbsim_serve_opts *o)
{
  struct kbsim_args a;
  struct kbsim_endpoint *ep;
  const char *flag_only = NULL;
  int c, bad;

  kbsim_args_init(&a, &kbsim_serve_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 'q':
      o->quiet = true;
      break;
    case KBSIM_OPT_REDACT:
      evidence_set_redact(true);
      break;
    case KBSIM_OPT_KEYLOG:
      if(kbsim_keylog(optarg))
        return 3;
      break;
    case 'H':
      if(!*optarg || strlen(optarg) > 253 ||
         strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789.-:") != strlen(optarg))
        return kbsim_bad_args("--admin-host: '%s' is not a host name (e.g. "
                              "trainer-pc.fabrikam.com)",
                              optarg);
      if(o->nadmin_hosts == ADMIN_MAX_HOSTS)
        return kbsim_bad_args("--admin-host: at most %d names",
                              ADMIN_MAX_HOSTS);
      o->admin_hosts[o->nadmin_hosts++] = optarg;
      break;
    case 'x':
    case 'b':
    case 'a':
      ep = c == 'x' ? &o->proxy : c == 'b' ? &o->backend : &o->admin;
      if(kbsim_parse_endpoint(optarg, ep->host, sizeof(ep->host), &ep->port))
        return kbsim_bad_args("--%s: '%s' is not HOST:PORT (e.g. "
                              "127.0.0.1:8080, [::1]:0)",
                              c == 'x'   ? "proxy"
                              : c == 'b' ? "backend"
                                         : "admin",
                              optarg);
      ep->given = true;
      break;
    case KBSIM_SERVE_CA_FILE:
      o->ca_file = optarg;
      break;
    case 'P':
    case 'A':
    case KBSIM_SERVE_PASS_THROUGH:
    case 'D':
    case 'u':
    case 'F':
    case KBSIM_SERVE_TLS:
    case KBSIM_SERVE_BRIDGE_CERTIFICATE:
    case KBSIM_SERVE_EXTENDED_PROTECTION:
      bad = kbsim_serve_flag_opt(o, c, &flag_only);
      if(bad)
        return bad;
      break;
    case KBSIM_SERVE_KRB5_KEYTAB:
      if(access(optarg, R_OK))
        return kbsim_bad_args("--krb5-keytab: cannot read '%s': %s; give "
                              "the keytab of HTTP/autodiscover.fabrikam.com",
                              optarg, strerror(errno));
      o->krb5_keytab = optarg;
      break;
    case 'c':
      o->pcap = optarg;
      break;
    case 't':
      o->transcript = optarg;
      break;
    case 'j':
      o->json = optarg;
      break;
    case 'w':
      o->html = optarg;
      break;
    }
  }
  if(c < 0) {
    o->exit_now = true;
    return a.status;
  }
  if(optind < argc)
    o->file = argv[optind++];
  if(optind < argc)
    return kbsim_bad_args("unexpected argument '%s'; give one scenario",
                          argv[optind]);
  {
    /* Written on SIGINT/SIGTERM, checked now; "-" is standard output. */
    struct evidence_want w = {o->transcript, o->pcap, o->json, o->html};
    bad = kbsim_evidence_check(&w, "serve");
    if(bad)
      return bad;
  }
  if(o->file && flag_only)
    return kbsim_bad_args("%s cannot be combined with a scenario; set it in "
                          "the file instead",
                          flag_only);
  if(!o->file && (bad = kbsim_serve_check_flags(o)) != 0)
    return bad;
  if(!o->file && (!o->proxy.given || !o->backend.given ||
                  !(o->have_policy || o->pass_through || o->defects) ||
                  !kb_users_count(o->users)))
    return kbsim_bad_args(
        "give a scenario (a file or a name), or --proxy, --backend, --policy "
        "(or --pass-through, or --defect) and at least one --user or "
        "--user-file");
  if(!o->proxy.given)
    snprintf(o->proxy.host, sizeof(o->proxy.host), "127.0.0.1");
  if(!o->backend.given)
    snprintf(o->backend.host, sizeof(o->backend.host), "127.0.0.1");
  if(!o->admin.given)
    snprintf(o->admin.host, sizeof(o->admin.host), "127.0.0.1");
  return 0;
}

/* Builds a one-member scenario from the flag form: --policy per-request
 * is ISA 2006 SP1 with the script (as `kbsim run` reads it), per-connection
 * is RTM as shipped, so the admin endpoint can change it like any member. */
static void kbsim_serve_flag_scenario(const struct kbsim_serve_opts *o,
                                      struct scenario *sc)
{
  scenario_defaults(sc);
  snprintf(sc->name, sizeof(sc->name), "serve");
  sc->nusers = 0;
  sc->auth = o->pass_through ? PROXY_AUTH_NONE
             : o->have_auth  ? o->auth
                             : PROXY_AUTH_INTEGRATED;
  sc->nmembers = 1;
  snprintf(sc->members[0].name, sizeof(sc->members[0].name), "ISA01");
  sc->members[0].patch = o->policy == PROXY_POLICY_PER_REQUEST
                             ? SCENARIO_PATCH_SP1
                             : SCENARIO_PATCH_RTM;
  sc->members[0].script = o->policy == PROXY_POLICY_PER_REQUEST;
  sc->tls = o->tls;
  sc->bridge_same_certificate = o->bridge_same_certificate;
  sc->exchange_auth =
      o->pass_through ? BACKEND_AUTH_INTEGRATED : BACKEND_AUTH_NONE;
  sc->extended_protection = o->extended_protection;
}

/* Returns the real clock in microseconds since the epoch. */
static int64_t kbsim_serve_now_us(void)
{
  struct timespec now;

  clock_gettime(CLOCK_REALTIME, &now);
  return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* Writes what the recorder holds to --pcap, --transcript, --json and
 * --html, those given; srv describes the array for --json. Returns 0, or -1
 * after printing a one-line error. */
static int kbsim_serve_evidence(struct sim_recorder *rec,
                                const struct kbsim_serve_opts *o,
                                const struct evidence_serve *srv)
{
  char err[512];

  if(rec->failed) {
    fprintf(stderr, "kbsim: out of memory recording; evidence would be "
                    "incomplete, so none was written\n");
    return -1;
  }
  if(o->transcript &&
     evidence_write_transcript_to(rec, o->transcript, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(o->pcap && evidence_write_pcap(rec, o->pcap, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(o->json || o->html) {
    /* One report: the page is drawn from what the JSON says. */
    json_t *report = evidence_serve_report(rec, srv);
    int result = 0;

    if(!report) {
      fprintf(stderr,
              "kbsim: %s: could not build the report (out of "
              "memory)\n",
              o->json ? "--json" : "--html");
      return -1;
    }
    if(o->json && evidence_write_serve_json(report, o->json, err, sizeof(err)))
      result = -1;
    else if(o->html && serve_page_write(report, o->html, err, sizeof(err)))
      result = -1;
    if(result)
      fprintf(stderr, "kbsim: %s\n", err);
    json_decref(report);
    return result;
  }
  return 0;
}

/* Stops everything s started and, after a clean stop (result 0), writes
 * the evidence files. Returns result, or 1 when the evidence could not be
 * written. */
static int kbsim_serve_stop(struct kbsim_serve *s, int result)
{
  struct evidence_serve *srv = &s->srv;

  kbsim_serve_stop_array(s);
  /* Everything stopped, every close recorded: now the files. */
  if(s->recording && !result) {
    char *text = s->sc->path[0] ? evidence_read_text(s->sc->path) : NULL;
    srv->scenario_text = text;
    if(kbsim_serve_evidence(&s->rec, s->o, srv))
      result = 1;
    free(text);
  }
  sim_recorder_free(&s->rec);
  free(s->switched);
  kb_users_free(s->switched_users);
  return result;
}

/* Runs the topology of sc until SIGINT or SIGTERM. With a balancer (the
 * scenario form) members listen on loopback ephemeral ports behind it;
 * without (the flag form) the one member listens on --proxy. Returns the
 * exit code: 1 when a trainer's restart could not start an array. */
static int kbsim_serve_run(const struct scenario *sc,
                           const struct kb_users *users,
                           const struct kbsim_serve_opts *o, bool balanced)
{
  struct kbsim_serve *s = calloc(1, sizeof(*s));
  sigset_t set;
  int sig = 0, result = 1;

  /* Block the stop signals before any thread starts, so every thread
   * inherits the mask and only sigwait() below receives them. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  if(!s) {
    fprintf(stderr, "kbsim: out of memory\n");
    return 1;
  }
  s->sc = sc;
  s->users = users;
  s->o = o;
  s->balanced = balanced;
  s->recording = o->pcap || o->transcript || o->json || o->html;
  s->relay = !balanced && s->recording;
  sim_recorder_init(&s->rec, true);
  if(kbsim_serve_start(s))
    goto done;
  /* The endpoint answers already: a reset must wait for the banner, which
   * reads the array it would replace. */
  admin_hold(s->adm);
  kbsim_serve_warn(s);
  kbsim_serve_print(s);
  printf("serving until SIGINT or SIGTERM\n");
  fflush(stdout);
  admin_release(s->adm);
  s->srv.started_us = kbsim_serve_now_us();
  sigwait(&set, &sig);
  s->srv.stopped_us = kbsim_serve_now_us();
  s->srv.signal = sig == SIGINT ? "SIGINT" : "SIGTERM";
  printf("stopping on %s\n", s->srv.signal);
  fflush(stdout);
  /* A restart that could not start an array sent the signal itself. */
  result = s->failed ? 1 : 0;

done:
  result = kbsim_serve_stop(s, result);
  free(s);
  return result;
}

static int kbsim_cmd_serve(int argc, char **argv)
{
  struct kbsim_serve_opts o;
  struct scenario *sc = NULL;
  struct kb_users *users = NULL;
  char err[512];
  size_t i;
  int result = 2;

  memset(&o, 0, sizeof(o));
  o.users = kb_users_new();
  sc = calloc(1, sizeof(*sc));
  if(!o.users || !sc) {
    fprintf(stderr, "kbsim: out of memory\n");
    result = 1;
    goto done;
  }
  result = kbsim_serve_parse(argc, argv, &o);
  if(result || o.exit_now)
    goto done;

  if(!o.file) {
    kbsim_serve_flag_scenario(&o, sc);
    result = kbsim_serve_run(sc, o.users, &o, false);
    goto done;
  }
  if(kbsim_load_scenario(o.file, sc)) {
    result = 2;
    goto done;
  }
  users = kb_users_new();
  if(!users) {
    fprintf(stderr, "kbsim: out of memory\n");
    result = 1;
    goto done;
  }
  for(i = 0; i < sc->nusers; i++) {
    if(kb_users_add_spec(users, sc->user_specs[i], err, sizeof(err))) {
      fprintf(stderr, "kbsim: %s: [users]: %s\n", o.file, err);
      result = 2;
      goto done;
    }
  }
  result = kbsim_serve_run(sc, users, &o, true);

done:
  kb_users_free(users);
  kb_users_free(o.users);
  for(i = 0; i < o.nuser_specs; i++) {
    explicit_bzero(o.user_specs[i], strlen(o.user_specs[i]));
    free(o.user_specs[i]);
  }
  free(sc);
  return result;
}
