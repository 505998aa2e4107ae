/*
 * cmd_demo.c - `kbsim demo`: the story of KB 942638 told step by step. One
 * client session (Communicator's, or another kind's with --kind) under
 * ISA 2006 as shipped, then the same session with the KB applied: for
 * every POST, each leg - what the client sent, what ISA decided and why,
 * what Exchange received and answered, what the client got - and what the
 * user sees after it; then both side by side and the verdict. --inside
 * tells the session of a user inside the network (Kerberos from a KDC the
 * demo starts, sim/kdc.h); --tls and --extended-protection put HTTPS on
 * the hops and tell why Exchange refuses a login whose channel binding
 * names another certificate.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "evidence/evidence.h"
#include "render/html.h"
#include "sim/kdc.h"
#include "wrap.h"

/* ---- output ----------------------------------------------------------- */

enum kbsim_color_mode {
  KBSIM_COLOR_AUTO = 0, /* on a terminal, unless NO_COLOR is set */
  KBSIM_COLOR_ALWAYS,
  KBSIM_COLOR_NEVER
};

enum kbsim_tone {
  KBSIM_PLAIN = 0,
  KBSIM_BOLD,
  KBSIM_DIM,
  KBSIM_RED,
  KBSIM_GREEN,
  KBSIM_YELLOW,
  KBSIM_BLUE,
  KBSIM_CYAN
};

struct kbsim_demo {
  const struct client_kind_info *kind; /* whose session is told */
  bool inside; /* --inside: the user signs in with Kerberos (one leg) */
  enum scenario_tls tls; /* --tls: none, offload or bridge */
  bool bridge_same;      /* --bridge-certificate same */
  enum backend_epa epa;  /* --extended-protection */
  bool epa_refuses;      /* the real world's table: Exchange refuses the login
                            (TLS ends at another certificate in front of it) */
  int column;            /* the labels' width: "Internet Explorer noted:" */
  bool color;
  bool step;        /* --step: wait for Enter between steps */
  bool input_ended; /* stdin reached its end: stop waiting */
};

/* Returns the escape sequence that starts tone, or "" without colour. */
static const char *kbsim_on(const struct kbsim_demo *d, enum kbsim_tone tone)
{
  static const char *const seq[] = {"",         "\033[1m",  "\033[2m",
                                    "\033[31m", "\033[32m", "\033[33m",
                                    "\033[34m", "\033[36m"};

  return d->color ? seq[tone] : "";
}

/* Returns the escape sequence that ends any tone, or "". */
static const char *kbsim_off(const struct kbsim_demo *d)
{
  return d->color ? "\033[0m" : "";
}

/* Decides whether to colour: --color=always/never win; auto colours a
 * terminal unless NO_COLOR is set and non-empty (no-color.org) or the
 * terminal is dumb. */
static bool kbsim_want_color(enum kbsim_color_mode mode)
{
  const char *no_color = getenv("NO_COLOR");
  const char *term = getenv("TERM");

  if(mode != KBSIM_COLOR_AUTO)
    return mode == KBSIM_COLOR_ALWAYS;
  if(no_color && no_color[0])
    return false;
  if(term && !strcmp(term, "dumb"))
    return false;
  return isatty(STDOUT_FILENO) != 0;
}

/* With --step, waits for Enter on stdin. End of input ends the waiting for
 * the rest of the demo, so `kbsim demo --step < /dev/null` just runs. */
static void kbsim_pause(struct kbsim_demo *d)
{
  char line[256];

  if(!d->step || d->input_ended)
    return;
  printf("%s  [Enter: next step]%s", kbsim_on(d, KBSIM_DIM), kbsim_off(d));
  fflush(stdout);
  wrap_flush();
  if(!fgets(line, sizeof(line), stdin)) {
    d->input_ended = true;
    printf("\n");
  }
  printf("\n");
}

/* Prints "label" padded to the narration's column, in tone. */
static void kbsim_label(const struct kbsim_demo *d, enum kbsim_tone tone,
                        const char *label)
{
  printf("         %s%-*s%s " WRAP_HANG, kbsim_on(d, tone), d->column, label,
         kbsim_off(d));
}

/* ---- one leg, one POST ------------------------------------------------ */

/* Writes what a request's Authorization carried: "no Authorization",
 * "Authorization: Negotiate (Kerberos ticket)", or "Authorization: " and
 * the kind's one name (kb_auth_name). */
static const char *kbsim_auth_words(enum kb_auth auth, char *out, size_t len)
{
  if(auth == KB_AUTH_NONE)
    return "no Authorization";
  if(auth == KB_AUTH_SPNEGO)
    return "Authorization: Negotiate (Kerberos ticket)";
  snprintf(out, len, "Authorization: %s", kb_auth_name(auth));
  return out;
}

/* Formats an answer: "401, WWW-Authenticate: NTLM type 2" or "500,
 * 479-byte body". */
static void kbsim_answer(const struct story_hop *hop, char *out, size_t len)
{
  if(!hop->status)
    snprintf(out, len, "no answer: the connection closed");
  else if(hop->resp_auth != KB_AUTH_NONE)
    snprintf(out, len, "%d, WWW-Authenticate: %s", hop->status,
             kb_auth_name(hop->resp_auth));
  else
    snprintf(out, len, "%d, %zu-byte body", hop->status, hop->resp_body);
}

static enum kbsim_tone kbsim_status_tone(int status)
{
  if(!status || status >= 500)
    return KBSIM_RED;
  if(status == 401)
    return KBSIM_BLUE;
  return status < 300 ? KBSIM_GREEN : KBSIM_PLAIN;
}

/* Tells one leg: the request, ISA's decisions, what reached Exchange, the
 * answer. */
static void kbsim_demo_leg(const struct kbsim_demo *d,
                           const struct story_leg *leg, unsigned number)
{
  char who[48], answer[128], words[64], said[48];
  size_t i;

  if(leg->new_conn)
    printf("  %sTCP connection %s to %s%s\n", kbsim_on(d, KBSIM_DIM), leg->conn,
           leg->member[0] ? leg->member : "ISA", kbsim_off(d));
  snprintf(said, sizeof(said), "%s sent:", d->kind->label);
  printf("  leg %-3u%s%-*s%s " WRAP_HANG "%s %s, %s, %zu-byte body\n", number,
         kbsim_on(d, KBSIM_BOLD), d->column, said, kbsim_off(d),
         leg->front.method, leg->front.path,
         kbsim_auth_words(leg->front.req_auth, words, sizeof(words)),
         leg->front.req_body);
  snprintf(who, sizeof(who),
           "%s decided:", leg->member[0] ? leg->member : "ISA");
  for(i = 0; i < leg->nisa; i++) {
    /* The bug's own decision is told in red. */
    bool kept = leg->isa_notes[i].code == KB_NOTE_REAUTH_SKIPPED;
    kbsim_label(d, KBSIM_YELLOW, who);
    printf("%s%s%s\n", kbsim_on(d, kept ? KBSIM_RED : KBSIM_PLAIN),
           leg->isa_notes[i].text, kbsim_off(d));
  }
  for(i = 0; i < leg->nback; i++) {
    const struct story_hop *hop = &leg->back[i];
    bool empty = !strcmp(hop->method, "POST") && hop->req_body == 0;

    kbsim_label(d, KBSIM_CYAN, "Exchange received:");
    kbsim_answer(hop, answer, sizeof(answer));
    printf("%s%s %s, %s, %zu-byte body -> %s%s\n",
           kbsim_on(d, empty || hop->status >= 500 ? KBSIM_RED : KBSIM_PLAIN),
           hop->method, hop->path,
           kbsim_auth_words(hop->req_auth, words, sizeof(words)), hop->req_body,
           answer, kbsim_off(d));
    if(empty && hop->status >= 500)
      printf("         %s%-*s " WRAP_HANG
             "a POST without its body: nothing for EWS to "
             "parse, so a SOAP fault%s\n",
             kbsim_on(d, KBSIM_RED), d->column, "", kbsim_off(d));
    if(hop->why) {
      /* Why Exchange refused a login it would otherwise take. */
      kbsim_label(d, KBSIM_CYAN, "Exchange decided:");
      printf("%s%s%s\n", kbsim_on(d, KBSIM_RED), hop->why, kbsim_off(d));
    }
  }
  for(i = 0; i < leg->nclient; i++) {
    /* The notification and the log line are told with the POST. */
    if(leg->client_notes[i].code == KB_NOTE_NOTIFICATION ||
       leg->client_notes[i].code == KB_NOTE_LOG)
      continue;
    snprintf(said, sizeof(said), "%s noted:", d->kind->label);
    kbsim_label(d, KBSIM_DIM, said);
    printf("%s\n", leg->client_notes[i].text);
  }
  kbsim_answer(&leg->front, answer, sizeof(answer));
  snprintf(said, sizeof(said), "%s got:", d->kind->label);
  kbsim_label(d, KBSIM_BOLD, said);
  printf("%s%s%s\n", kbsim_on(d, kbsim_status_tone(leg->front.status)), answer,
         kbsim_off(d));
}

/* What a request is, in a word: "GET" (ie's pages), "RPC channels" and
 * "RPC call" (outlook-anywhere's own names), else "POST". */
static const char *kbsim_request_word(enum client_post_kind kind)
{
  if(kind == CLIENT_POST_RPC_CHANNELS || kind == CLIENT_POST_RPC_CALL)
    return client_post_kind_name(kind);
  return kind == CLIENT_POST_PAGE ? "GET" : "POST";
}

/* What a request is called, into out: "GET Services.wsdl", "RPC call",
 * "POST GetUserOofSettings". */
static const char *kbsim_request_name(enum client_post_kind kind, char *out,
                                      size_t len)
{
  const char *word = kbsim_request_word(kind);

  if(!strcmp(word, client_post_kind_name(kind)))
    snprintf(out, len, "%s", word);
  else
    snprintf(out, len, "%s %s", word, client_post_kind_name(kind));
  return out;
}

/* Prints the heading of the request a step is about; ews numbers the
 * EWS POSTs from 1. */
static void kbsim_demo_step(const struct kbsim_demo *d, unsigned step,
                            unsigned ews, const struct client_post_result *r)
{
  char why[96] = "";

  if(r->kind == CLIENT_POST_AUTODISCOVER)
    snprintf(why, sizeof(why), "%s asks Exchange where EWS is", d->kind->label);
  else if(r->kind == CLIENT_POST_OOF)
    snprintf(why, sizeof(why), "out-of-office status, part of presence");
  else if(r->kind == CLIENT_POST_AVAILABILITY)
    snprintf(why, sizeof(why),
             "free/busy of the contacts: scheduling information");
  else if(r->kind == CLIENT_POST_PAGE)
    snprintf(why, sizeof(why), "a page of the EWS folder, before the POSTs");
  else if(r->kind == CLIENT_POST_RPC_CHANNELS)
    snprintf(why, sizeof(why),
             "RPC_OUT_DATA and RPC_IN_DATA opened, each authenticated");
  else if(r->kind == CLIENT_POST_RPC_CALL)
    snprintf(why, sizeof(why), "a request PDU on IN, its echo on OUT");
  if(r->kind == CLIENT_POST_AUTODISCOVER)
    printf("%sStep %u: " WRAP_HANG "autodiscover%s - %s\n",
           kbsim_on(d, KBSIM_BOLD), step, kbsim_off(d), why);
  else if(r->kind == CLIENT_POST_PAGE)
    printf("%sStep %u: " WRAP_HANG "GET /EWS/%s%s - %s\n",
           kbsim_on(d, KBSIM_BOLD), step, client_post_kind_name(r->kind),
           kbsim_off(d), why);
  else if(r->kind == CLIENT_POST_RPC_CHANNELS)
    printf("%sStep %u: " WRAP_HANG "the RPC channels%s - %s\n",
           kbsim_on(d, KBSIM_BOLD), step, kbsim_off(d), why);
  else if(r->kind == CLIENT_POST_RPC_CALL)
    printf("%sStep %u: " WRAP_HANG "RPC call %u%s - %s\n",
           kbsim_on(d, KBSIM_BOLD), step, ews, kbsim_off(d), why);
  else
    printf("%sStep %u: " WRAP_HANG "EWS POST %u, %s%s - %s\n",
           kbsim_on(d, KBSIM_BOLD), step, ews, client_post_kind_name(r->kind),
           kbsim_off(d), why);
}

/* Prints what the user sees once POST j completed. */
static void kbsim_demo_sees(const struct kbsim_demo *d,
                            const struct sim_session *s, size_t j)
{
  const struct client_post_result *r = &s->results[j];
  const struct client_view *v = s->views ? &s->views[j] : &s->view;
  bool appeared = v->integration_error &&
                  (j == 0 || !s->views || !s->views[j - 1].integration_error);

  printf("  %sThe %s:%s " WRAP_HANG "%s%s%s", kbsim_on(d, KBSIM_BOLD),
         kbsim_request_word(r->kind), kbsim_off(d),
         kbsim_on(d, r->outcome == CLIENT_OK ? KBSIM_GREEN : KBSIM_RED),
         client_outcome_name(r->outcome), kbsim_off(d));
  if(r->detail[0])
    printf(" (%s)", r->detail);
  printf("\n  %sThe user sees:%s " WRAP_HANG, kbsim_on(d, KBSIM_BOLD),
         kbsim_off(d));
  if(!d->kind->notifies) {
    /* Not Communicator's window: what the program shows for this request. */
    if(r->outcome == CLIENT_OK)
      printf("%sno error%s\n\n", kbsim_on(d, KBSIM_GREEN), kbsim_off(d));
    else
      printf("%s%s%s\n\n", kbsim_on(d, KBSIM_RED), d->kind->symptom,
             kbsim_off(d));
    return;
  }
  if(v->integration_error)
    printf("%s\"%s\" under Notifications%s%s", kbsim_on(d, KBSIM_RED),
           CLIENT_NOTIFICATION_TEXT, appeared ? " (new)" : " (still there)",
           kbsim_off(d));
  else
    printf("%sno notification%s", kbsim_on(d, KBSIM_GREEN), kbsim_off(d));
  printf("; presence %s, scheduling %s\n\n",
         v->presence_available ? "available" : "unavailable",
         v->scheduling_available ? "available" : "unavailable");
}

/* ---- the two runs ----------------------------------------------------- */

struct kbsim_phase {
  const char *title; /* "ISA 2006 as shipped" */
  const char *what;  /* a sentence on the member */
  struct scenario sc;
  struct sim_outcome o;
  struct sim_recorder rec;
  bool recorder_ready;
  bool as_kb_says;
};

/* Fills phase's scenario: one session of d's kind through ISA01 as
 * shipped (RTM, per-connection) or with the hotfix and the script, inside
 * the network (Kerberos) and with TLS as d says. Only a kind that holds a
 * POST's body back on an authenticated connection is expected to fail as
 * shipped, and only from outside; with Extended Protection in front of
 * which TLS ends at another certificate, every login fails. */
static void kbsim_phase_init(struct kbsim_phase *phase, bool fixed,
                             const struct kbsim_demo *d, uint64_t seed,
                             unsigned posts)
{
  struct scenario *sc = &phase->sc;
  const struct client_kind_info *kind = d->kind;

  memset(phase, 0, sizeof(*phase));
  scenario_defaults(sc);
  snprintf(sc->name, sizeof(sc->name), "%s", fixed ? "with-kb" : "as-shipped");
  snprintf(sc->description, sizeof(sc->description), "%s",
           fixed ? "ISA 2006 with the KB 942638 hotfix and script: a "
                   "re-authenticating POST is challenged"
                 : "ISA 2006 as shipped: a re-authenticating POST on an "
                   "authenticated connection is forwarded without its body");
  sc->seed = seed;
  sc->kind = kind->kind;
  sc->posts = posts;
  sc->clients = 1;
  sc->nmembers = 1;
  snprintf(sc->members[0].name, sizeof(sc->members[0].name), "ISA01");
  sc->members[0].patch = fixed ? SCENARIO_PATCH_RTM_HOTFIX : SCENARIO_PATCH_RTM;
  sc->members[0].script = fixed;
  sc->nusers = 1;
  snprintf(sc->user_specs[0], sizeof(sc->user_specs[0]), "%s",
           kbsim_default_user);
  sc->expect.outcome = !fixed && kind->holds_body && !d->inside;
  if(d->inside) {
    /* [kerberos] internal = FABRIKAM\alice; the run starts the realm. */
    sc->kerberos = true;
    sc->user_internal[0] = true;
    snprintf(sc->dns_domain, sizeof(sc->dns_domain), "fabrikam.com");
  }
  sc->tls = d->tls;
  sc->bridge_same_certificate = d->bridge_same;
  sc->extended_protection = d->epa;
  if(d->epa != BACKEND_EPA_NONE) {
    /* As the TLS scenarios: Exchange authenticates itself and checks the
     * binding; ISA passes NTLM through, so its patch level changes
     * nothing, and the real world's table says the outcome. */
    sc->auth = PROXY_AUTH_NONE;
    sc->exchange_auth = BACKEND_AUTH_INTEGRATED;
    sc->expect.outcome = d->epa_refuses;
  }
  phase->title = fixed ? "ISA 2006 with KB 942638" : "ISA 2006 as shipped";
  phase->what = fixed ? "ISA01 has the KB 942638 hotfix and its script: an "
                        "NTLM type 1 restarts the\nhandshake, even on an "
                        "authenticated connection."
                      : "ISA01 runs ISA Server 2006 as shipped: once a "
                        "connection is authenticated,\nit keeps that "
                        "authentication for every request on it.";
}

static void kbsim_phase_free(struct kbsim_phase *phase)
{
  sim_outcome_free(&phase->o);
  if(phase->recorder_ready)
    sim_recorder_free(&phase->rec);
  phase->recorder_ready = false;
}

/* Runs one phase and tells it step by step. Returns 0, or -1 (message
 * printed) when the topology could not run. */
static int kbsim_demo_phase(struct kbsim_demo *d, struct kbsim_phase *phase,
                            unsigned part, bool keep_bytes)
{
  struct story story;
  const struct sim_session *s;
  enum proxy_policy policy = scenario_effective_policy(
      phase->sc.members[0].patch, phase->sc.members[0].script);
  char err[512];
  unsigned step = 0, legno = 0, ews = 0;
  int post = -2;
  size_t i;

  sim_recorder_init(&phase->rec, keep_bytes);
  phase->rec.client = client_kind_info(phase->sc.kind);
  phase->recorder_ready = true;
  if(sim_scenario_run(&phase->sc, sim_recorder_as_kb(&phase->rec), &phase->o,
                      err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(story_build(&phase->rec, &phase->o.sessions, 1, 0, &story)) {
    fprintf(stderr, "kbsim: out of memory reading the trace\n");
    return -1;
  }
  s = &phase->o.sessions.sessions[0];

  printf("%s== Part %u of 2: %s (policy %s) ==%s\n%s\n\n",
         kbsim_on(d, KBSIM_BOLD), part, phase->title, proxy_policy_name(policy),
         kbsim_off(d), phase->what);
  if(s->error[0])
    printf("  client could not start: %s\n\n", s->error);
  for(i = 0; i < story.nlegs; i++) {
    const struct story_leg *leg = &story.legs[i];

    if(leg->post != post) {
      post = leg->post;
      legno = 0;
      if(post >= 0) {
        enum client_post_kind k = s->results[post].kind;
        if(k == CLIENT_POST_OOF || k == CLIENT_POST_AVAILABILITY ||
           k == CLIENT_POST_RPC_CALL)
          ews++;
        kbsim_demo_step(d, ++step, ews, &s->results[post]);
      }
      else
        printf("%sOther requests%s\n", kbsim_on(d, KBSIM_BOLD), kbsim_off(d));
    }
    kbsim_demo_leg(d, leg, ++legno);
    if(leg->post >= 0 && leg->post_end) {
      kbsim_demo_sees(d, s, (size_t)leg->post);
      kbsim_pause(d);
    }
  }
  printf("%sWhat the user sees at the end (%s):%s\n", kbsim_on(d, KBSIM_BOLD),
         phase->title, kbsim_off(d));
  kbsim_print_view("    ", &s->view, d->kind);
  printf("\n");
  story_free(&story);

  if(d->epa != BACKEND_EPA_NONE)
    /* The real world's table: Exchange refuses every login whose binding
     * is not its own, and takes the others; ISA passes them through. */
    phase->as_kb_says = d->epa_refuses
                            ? phase->o.backend.channel_binding_refused > 0 &&
                                  phase->o.sessions.posts_failed > 0
                            : phase->o.backend.channel_binding_refused == 0 &&
                                  phase->o.sessions.posts_failed == 0 &&
                                  phase->o.backend.empty_posts == 0;
  else if(phase->sc.expect.outcome == 1)
    phase->as_kb_says = s->view.integration_error &&
                        phase->o.backend.empty_posts > 0 &&
                        phase->o.proxy.reauth_skipped > 0;
  else if(!d->kind->notifies)
    /* Not Communicator's window: clean is every request answered. */
    phase->as_kb_says = !s->view.integration_error &&
                        phase->o.backend.empty_posts == 0 &&
                        phase->o.sessions.posts_failed == 0;
  else
    phase->as_kb_says =
        !s->view.integration_error && phase->o.backend.empty_posts == 0 &&
        phase->o.sessions.posts_failed == 0 && s->view.presence_available &&
        /* Scheduling comes from GetUserAvailability, EWS POST 2: with
         * --posts 1 it is never asked for. */
        (s->view.scheduling_available || phase->sc.posts < 2);
  kbsim_pause(d);
  return 0;
}

/* Prints one row of the side-by-side table, the cells coloured as good or
 * bad. */
static void kbsim_row(const struct kbsim_demo *d, const char *label,
                      const char *a, bool a_bad, const char *b, bool b_bad)
{
  printf("%-28s %s%-28s%s %s%s%s\n", label,
         kbsim_on(d, a_bad ? KBSIM_RED : KBSIM_GREEN), a, kbsim_off(d),
         kbsim_on(d, b_bad ? KBSIM_RED : KBSIM_GREEN), b, kbsim_off(d));
}

static void kbsim_side_by_side(const struct kbsim_demo *d,
                               const struct kbsim_phase phases[2])
{
  const struct sim_session *s0 = &phases[0].o.sessions.sessions[0];
  const struct sim_session *s1 = &phases[1].o.sessions.sessions[0];
  char a[64], b[64];
  size_t row;

  printf("%s%-28s %-28s %s%s\n", kbsim_on(d, KBSIM_BOLD), "Side by side",
         "ISA 2006 as shipped", "KB 942638 applied", kbsim_off(d));
  for(row = 0; row < s0->nresults || row < s1->nresults; row++) {
    const struct client_post_result *r0 =
        row < s0->nresults ? &s0->results[row] : NULL;
    const struct client_post_result *r1 =
        row < s1->nresults ? &s1->results[row] : NULL;
    const struct client_post_result *r = r0 ? r0 : r1;
    char label[64];

    snprintf(a, sizeof(a), "%d %s", r0 ? r0->final_status : 0,
             r0 ? client_outcome_name(r0->outcome) : "-");
    snprintf(b, sizeof(b), "%d %s", r1 ? r1->final_status : 0,
             r1 ? client_outcome_name(r1->outcome) : "-");
    kbsim_request_name(r->kind, label, sizeof(label));
    kbsim_row(d, label, a, !r0 || r0->outcome != CLIENT_OK, b,
              !r1 || r1->outcome != CLIENT_OK);
  }
  snprintf(a, sizeof(a), "%" PRIu64, phases[0].o.backend.empty_posts);
  snprintf(b, sizeof(b), "%" PRIu64, phases[1].o.backend.empty_posts);
  kbsim_row(d, "Empty POSTs at Exchange", a, phases[0].o.backend.empty_posts, b,
            phases[1].o.backend.empty_posts);
  snprintf(a, sizeof(a), "%" PRIu64, phases[0].o.proxy.reauth_skipped);
  snprintf(b, sizeof(b), "%" PRIu64, phases[1].o.proxy.reauth_skipped);
  kbsim_row(d, "Re-auth without challenge", a, phases[0].o.proxy.reauth_skipped,
            b, phases[1].o.proxy.reauth_skipped);
  if(d->epa != BACKEND_EPA_NONE) {
    snprintf(a, sizeof(a), "%" PRIu64,
             phases[0].o.backend.channel_binding_refused);
    snprintf(b, sizeof(b), "%" PRIu64,
             phases[1].o.backend.channel_binding_refused);
    kbsim_row(d, "Refused: channel binding", a,
              phases[0].o.backend.channel_binding_refused, b,
              phases[1].o.backend.channel_binding_refused);
  }
  if(!d->kind->notifies) {
    kbsim_row(d, "A failed request",
              s0->view.integration_error ? d->kind->symptom : "none",
              s0->view.integration_error,
              s1->view.integration_error ? d->kind->symptom : "none",
              s1->view.integration_error);
    printf("\n");
    return;
  }
  kbsim_row(d, "Outlook Integration Error",
            s0->view.integration_error ? "shown" : "not shown",
            s0->view.integration_error,
            s1->view.integration_error ? "shown" : "not shown",
            s1->view.integration_error);
  kbsim_row(d, "Presence information",
            s0->view.presence_available ? "available" : "unavailable",
            !s0->view.presence_available,
            s1->view.presence_available ? "available" : "unavailable",
            !s1->view.presence_available);
  kbsim_row(d, "Scheduling information",
            s0->view.scheduling_available ? "available" : "unavailable",
            !s0->view.scheduling_available,
            s1->view.scheduling_available ? "available" : "unavailable",
            !s1->view.scheduling_available);
  printf("\n");
}

/* Writes the --html page of both runs. Returns 0, or -1 after printing a
 * one-line error. */
static int kbsim_demo_html(const struct kbsim_demo *d,
                           struct kbsim_phase phases[2], const char *path)
{
  char title[128];
  struct html_report *report;
  char err[512];
  size_t i;
  int result = -1;

  snprintf(title, sizeof(title),
           "KB 942638: one %s session, as shipped and with the KB",
           d->kind->label);
  report = html_report_new(title);
  if(!report) {
    fprintf(stderr, "kbsim: --html: out of memory\n");
    return -1;
  }
  for(i = 0; i < 2; i++) {
    struct html_run run = {phases[i].title, &phases[i].sc, &phases[i].o,
                           &phases[i].rec};
    if(html_report_add(report, &run, err, sizeof(err)))
      goto done;
  }
  if(html_report_write(report, path, err, sizeof(err)))
    goto done;
  result = 0;

done:
  if(result)
    fprintf(stderr, "kbsim: %s\n", err);
  html_report_free(report);
  return result;
}

/* Prints where the session runs when it is not the plain default: the
 * user inside the network, the hops' TLS and Exchange's Extended
 * Protection. Prints nothing for a plain HTTP session from outside. */
static void kbsim_demo_setting(const struct kbsim_demo *d,
                               const struct scenario *sc)
{
  char client_hop[96], server_hop[96];

  if(d->inside)
    printf("FABRIKAM\\alice is inside the network, signed in to the "
           "domain: instead of that NTLM handshake, Negotiate with a Kerberos "
           "ticket for "
           "HTTP/" SIM_KDC_SERVICE_HOST " from a realm of its own (MIT's "
           "krb5kdc on a loopback port, FABRIKAM.COM), sent with each "
           "request and its body in one leg.\n\n");
  if(!story_tls_hops(sc, client_hop, sizeof(client_hop), server_hop,
                     sizeof(server_hop)))
    return;
  printf("The hops: %s to ISA01: %s; ISA01 to Exchange: %s. Exchange's "
         "Extended Protection: %s.%s\n\n",
         d->kind->label, client_hop, server_hop,
         backend_epa_name(sc->extended_protection),
         sc->extended_protection == BACKEND_EPA_NONE
             ? ""
             : " Exchange authenticates NTLM itself and checks each login's "
               "channel binding against the certificate of its own TLS "
               "connection; ISA01 passes NTLM through, so its patch level "
               "changes nothing.");
}

static int kbsim_cmd_demo(int argc, char **argv);

/* The long-only options. */
enum {
  KBSIM_DEMO_INSIDE = 1201,
  KBSIM_DEMO_TLS,
  KBSIM_DEMO_BRIDGE_CERTIFICATE,
  KBSIM_DEMO_EXTENDED_PROTECTION
};

static const struct kbsim_opt demo_opts[] = {
    {"seed", 's', "S",
     "Seed for the NTLM challenges; the same seed prints "
     "the same bytes (default 1)."},
    {"posts", 'p', "N", "EWS POSTs after autodiscover, 1 to 100 (default 2)."},
    {"kind", 'k', "KIND",
     "Whose session: " CLIENT_KIND_NAMES " (default communicator)."},
    {"inside", KBSIM_DEMO_INSIDE, NULL,
     "The user is inside the network, signed in to the domain: Negotiate "
     "with a Kerberos ticket, one leg with the body, from a realm the demo "
     "starts (MIT's krb5kdc on loopback; Debian's krb5-kdc, "
     "krb5-admin-server and krb5-user). Shows why internal users never see "
     "the error. With --kind communicator (the default) or one-shot."},
    {"tls", KBSIM_DEMO_TLS, "none|offload|bridge",
     "TLS on the hops: offload is HTTPS to ISA and HTTP to Exchange, "
     "bridge HTTPS on both (default none: plain HTTP)."},
    {"bridge-certificate", KBSIM_DEMO_BRIDGE_CERTIFICATE, "same|own",
     "With --tls bridge: whether ISA presents Exchange's certificate to the "
     "client (same, the default) or its own."},
    {"extended-protection", KBSIM_DEMO_EXTENDED_PROTECTION,
     "none|allow|require",
     "Exchange's Extended Protection with --tls: a login's channel binding "
     "must name the certificate of Exchange's own TLS connection (default "
     "none). Where TLS ends at another certificate, the demo tells the "
     "binding the client computed against the one Exchange expected."},
    {"step", 'S', NULL,
     "Wait for Enter after each step; end of input stops "
     "the waiting."},
    {"color", 'c', "[always|never|auto]",
     "Colour the story: auto (the default) colours a terminal unless "
     "NO_COLOR is set; --color alone is always."},
    {"colour", 'c', "[always|never|auto]", "The same as --color."},
    {"html", 'H', "FILE",
     "Also write both sessions as one self-contained "
     "HTML page with sequence diagrams."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_demo_command = {
    "demo",
    "[--seed S] [--posts N] [--kind KIND] [--inside] [--tls MODE] "
    "[--bridge-certificate same|own] [--extended-protection MODE] [--step] "
    "[--color[=WHEN]] [--html FILE]",
    "the bug, then the fix, told step by step (the default)",
    "One Communicator session under ISA 2006 as shipped (per-connection), "
    "then with KB 942638 applied (per-request), told step by step: for each "
    "POST, what Communicator sent, what ISA decided and why, what Exchange "
    "received and answered, what Communicator got, and what the user sees. "
    "Then both runs side by side and the verdict. --kind tells another "
    "client's session the same way: Internet Explorer's fails as shipped as "
    "Communicator's does; the other kinds never send a POST without its "
    "body on an authenticated connection, so ISA as shipped serves them. "
    "--inside tells the session of a user inside the network: Kerberos in "
    "one leg, so no body is ever held back. --tls puts HTTPS on the hops "
    "(told in the heading); with --extended-protection, a login whose "
    "channel binding names a certificate other than Exchange's own (TLS "
    "offloaded, or bridged with ISA's own certificate) is refused in both "
    "runs, and each refusal says both bindings.\n\n"
    "Exits 0 only when both behave as the KB says (for a kind the bug does "
    "not reach or a user inside: clean both times; where Extended "
    "Protection refuses: refused both times, as in the TLS scenarios). Output "
    "is "
    "wrapped to the "
    "terminal's width (at most 100 columns when it is not a terminal).",
    demo_opts,
    NULL,
    kbsim_cmd_demo};

static int kbsim_cmd_demo(int argc, char **argv)
{
  struct kbsim_phase phases[2];
  struct kbsim_demo d;
  struct kbsim_args a;
  enum kbsim_color_mode mode = KBSIM_COLOR_AUTO;
  const char *html = NULL;
  uint64_t seed = 1, posts = 2;
  enum client_kind kind = CLIENT_KIND_COMMUNICATOR;
  size_t i;
  bool have_bridge = false;
  int c, result = 1;

  memset(&d, 0, sizeof(d));
  d.bridge_same = true;
  kbsim_args_init(&a, &kbsim_demo_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
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
    case 'k':
      if(client_kind_parse(optarg, &kind))
        return kbsim_bad_args("--kind: '%s' is no client kind; kinds are "
                              "%s",
                              optarg, CLIENT_KIND_NAMES);
      break;
    case 'S':
      d.step = true;
      break;
    case 'c':
      if(!optarg || !strcmp(optarg, "always"))
        mode = KBSIM_COLOR_ALWAYS;
      else if(!strcmp(optarg, "never"))
        mode = KBSIM_COLOR_NEVER;
      else if(!strcmp(optarg, "auto"))
        mode = KBSIM_COLOR_AUTO;
      else
        return kbsim_bad_args("--color: '%s' is not always, never or auto",
                              optarg);
      break;
    case 'H':
      html = optarg;
      break;
    case KBSIM_DEMO_INSIDE:
      d.inside = true;
      break;
    case KBSIM_DEMO_TLS:
      if(scenario_tls_parse(optarg, &d.tls))
        return kbsim_bad_args("--tls: '%s' is not none, offload or bridge",
                              optarg);
      break;
    case KBSIM_DEMO_BRIDGE_CERTIFICATE:
      if(strcmp(optarg, "same") && strcmp(optarg, "own"))
        return kbsim_bad_args("--bridge-certificate: '%s' is not same or own",
                              optarg);
      d.bridge_same = !strcmp(optarg, "same");
      have_bridge = true;
      break;
    case KBSIM_DEMO_EXTENDED_PROTECTION:
      if(backend_epa_parse(optarg, &d.epa))
        return kbsim_bad_args("--extended-protection: '%s' is not none, "
                              "allow or require",
                              optarg);
      break;
    }
  }
  if(c < 0)
    return a.status;
  if(optind < argc)
    return kbsim_bad_args("unexpected argument '%s'; the demo takes only "
                          "options",
                          argv[optind]);
  if(have_bridge && d.tls != SCENARIO_TLS_BRIDGE)
    return kbsim_bad_args("--bridge-certificate is which certificate a "
                          "bridging listener presents; give --tls bridge");
  if(d.epa != BACKEND_EPA_NONE && d.tls == SCENARIO_TLS_NONE)
    return kbsim_bad_args("--extended-protection binds a login to a TLS "
                          "channel; give --tls offload or --tls bridge");
  if(d.inside && kind != CLIENT_KIND_COMMUNICATOR &&
     kind != CLIENT_KIND_ONE_SHOT)
    /* The client library's rule (client_config's krb5_ccache). */
    return kbsim_bad_args("--inside: Kerberos is Communicator's and "
                          "one-shot's here; give --kind communicator or "
                          "one-shot");
  if(d.inside) {
    char why[256];
    if(!sim_kdc_available(why, sizeof(why))) {
      fprintf(stderr,
              "kbsim: --inside needs MIT's KDC for its Kerberos realm: %s\n",
              why);
      return 3;
    }
  }
  /* The real world's table (scenarios/README.md): a channel binding
   * names the certificate the client saw; Exchange matches it against its
   * own TLS connection's, which only a bridge with Exchange's certificate
   * shares. */
  d.epa_refuses = d.epa != BACKEND_EPA_NONE &&
                  !(d.tls == SCENARIO_TLS_BRIDGE && d.bridge_same);
  {
    /* --html is checked before anything runs; "-" is standard output. */
    struct evidence_want w = {NULL, NULL, NULL, html};
    int bad = kbsim_evidence_check(&w, "demo");
    if(bad)
      return bad;
  }
  d.color = kbsim_want_color(mode);
  /* Unwrapped output when the stream cannot be made: still all there. */
  (void)wrap_stdout(wrap_columns(STDOUT_FILENO));

  d.kind = client_kind_info(kind);
  d.column = (int)strlen(d.kind->label) + (int)strlen(" noted:");
  if(d.column < 19)
    d.column = 19;
  kbsim_phase_init(&phases[0], false, &d, seed, (unsigned)posts);
  kbsim_phase_init(&phases[1], true, &d, seed, (unsigned)posts);
  printf("%sKB 942638: \"Outlook Integration Error\" behind ISA Server "
         "2006%s\n" WRAP_HANG "%s\n"
         "One %s session: FABRIKAM\\alice, %s + %" PRIu64 " %s%s, seed %" PRIu64
         ".\n\n",
         kbsim_on(&d, KBSIM_BOLD), kbsim_off(&d), d.kind->pattern,
         d.kind->label, d.kind->lead, posts, d.kind->call,
         posts == 1 ? "" : "s", seed);
  kbsim_demo_setting(&d, &phases[0].sc);
  kbsim_pause(&d);
  for(i = 0; i < 2; i++) {
    if(kbsim_demo_phase(&d, &phases[i], (unsigned)i + 1, html != NULL)) {
      result = 3; /* the harness could not run: no verdict */
      goto done;
    }
  }
  kbsim_side_by_side(&d, phases);
  if(phases[0].o.sessions.infrastructure ||
     phases[1].o.sessions.infrastructure) {
    /* What the harness failed says nothing about ISA. */
    printf("%sVerdict: none - the harness could not run a session "
           "(infrastructure), so nothing is shown about KB 942638.%s\n",
           kbsim_on(&d, KBSIM_RED), kbsim_off(&d));
    result = 3;
  }
  else if(phases[0].as_kb_says && phases[1].as_kb_says) {
    if(d.epa_refuses)
      printf("%sVerdict: as the real world's table says - Exchange's "
             "Extended Protection refuses the login in both runs: the "
             "channel binding %s computed names the certificate it saw, "
             "and TLS ends at another one in front of Exchange. The KB "
             "changes nothing for it; bridge with Exchange's certificate "
             "(scenarios/README.md).%s\n",
             kbsim_on(&d, KBSIM_GREEN), d.kind->label, kbsim_off(&d));
    else if(d.epa != BACKEND_EPA_NONE)
      printf("%sVerdict: as the real world's table says - ISA bridges with "
             "Exchange's own certificate, so the channel binding %s "
             "computed is the one Exchange expects: Extended Protection "
             "lets every login in, both times.%s\n",
             kbsim_on(&d, KBSIM_GREEN), d.kind->label, kbsim_off(&d));
    else if(d.inside)
      printf("%sVerdict: as KB 942638 describes - inside the network "
             "FABRIKAM\\alice sends each request with her Kerberos ticket "
             "and its body, in one leg: no handshake holds a body back, so "
             "ISA as shipped has nothing body-less to forward, and the KB "
             "changes nothing for her. The users outside, on NTLM, are the "
             "ones who see the error.%s\n",
             kbsim_on(&d, KBSIM_GREEN), kbsim_off(&d));
    else if(d.kind->holds_body)
      printf("%sVerdict: as KB 942638 describes - the bug as shipped, fixed "
             "by the KB.%s\n",
             kbsim_on(&d, KBSIM_GREEN), kbsim_off(&d));
    else
      printf("%sVerdict: as KB 942638 describes - %s never sends a POST "
             "without its body on an authenticated connection, so ISA as "
             "shipped serves it, and the KB changes nothing for it.%s\n",
             kbsim_on(&d, KBSIM_GREEN), d.kind->label, kbsim_off(&d));
    result = 0;
  }
  else
    printf("%sVerdict: NOT as KB 942638 describes (as shipped: %s; with the "
           "KB: %s).%s\n",
           kbsim_on(&d, KBSIM_RED),
           phases[0].as_kb_says ? "as described" : "differs",
           phases[1].as_kb_says ? "as described" : "differs", kbsim_off(&d));
  if(html) {
    if(kbsim_demo_html(&d, phases, html))
      result = 3;
    else
      printf("Report: %s\n", html);
  }

done:
  for(i = 0; i < 2; i++)
    kbsim_phase_free(&phases[i]);
  return result;
}
