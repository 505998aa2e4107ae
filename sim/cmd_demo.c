/*
 * cmd_demo.c - `kbsim demo`: one session as shipped, one with the KB, side by
 * side, each leg narrated from the trace.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

void kbsim_print_view(const char *indent, const struct client_view *v)
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

int kbsim_cmd_demo(int argc, char **argv)
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

