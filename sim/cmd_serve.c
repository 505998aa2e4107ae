/*
 * cmd_serve.c - `kbsim serve`: the listener and Exchange on real ports.
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

/* ---- serve ------------------------------------------------------------ */

int kbsim_cmd_serve(int argc, char **argv)
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

