/*
 * cmd_exchange.c - `kbsim exchange`: Exchange's EWS and Autodiscover alone
 * on a real port, for a third-party listener to publish, until SIGINT or
 * SIGTERM. --auth none trusts what reaches it (as behind ISA);
 * --auth integrated authenticates NTLM per connection (as IIS with Windows
 * authentication behind a pass-through proxy). GET /kbsim/status on the
 * same port gives its counters to loopback peers (a probe reads them).
 * Exit 0 after a signal, 1 when it could not start, 2 for bad arguments.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cli.h"
#include "kb_users.h"
#include "secret.h"

static const char kbsim_exchange_usage[] =
    "usage: kbsim exchange --listen HOST:PORT [--auth none|integrated]\n"
    "                 [--user 'DOMAIN\\user:password']... [--user-file "
    "FILE]\n"
    "  Exchange's EWS and Autodiscover alone; port 0 picks a free one.\n"
    "  --auth none        trust what reaches it, as behind ISA (default)\n"
    "  --auth integrated  authenticate NTLM per connection, as IIS with\n"
    "                     Windows authentication (needs --user or "
    "--user-file)\n"
    "  Counters: GET /kbsim/status on the same port, from loopback only.\n";

/* sim_user_add_fn for --user-file. */
static int kbsim_exchange_add_user(void *ctx, const char *spec, char *err,
                                   size_t errlen)
{
  return kb_users_add_spec(ctx, spec, err, errlen);
}

/* Prints "kbsim exchange: <what>" and the usage; returns 2. */
static int kbsim_exchange_bad(const char *what, const char *arg)
{
  fprintf(stderr, "kbsim exchange: %s%s%s%s\n\n%s", what, arg ? " '" : "",
          arg ? arg : "", arg ? "'" : "", kbsim_exchange_usage);
  return 2;
}

int kbsim_cmd_exchange(int argc, char **argv)
{
  static const struct option opts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"auth", required_argument, NULL, 'a'},
      {"user", required_argument, NULL, 'u'},
      {"user-file", required_argument, NULL, 'F'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct backend_config cfg;
  struct backend *b = NULL;
  struct kb_users *users = kb_users_new();
  const char *listen = NULL;
  char host[64], err[512];
  sigset_t set;
  int c, sig = 0, result = 2;

  memset(&cfg, 0, sizeof(cfg));
  if(!users) {
    fprintf(stderr, "kbsim exchange: out of memory\n");
    return 1;
  }
  opterr = 0;
  optind = 1;
  while((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch(c) {
    case 'l':
      listen = optarg;
      break;
    case 'a':
      if(backend_auth_parse(optarg, &cfg.auth)) {
        result =
            kbsim_exchange_bad("--auth is none or integrated, not", optarg);
        goto done;
      }
      break;
    case 'u':
      if(kb_users_add_spec(users, optarg, err, sizeof(err))) {
        fprintf(stderr, "kbsim exchange: --user: %s\n", err);
        goto done;
      }
      break;
    case 'F':
      if(sim_user_file(optarg, kbsim_exchange_add_user, users, err,
                       sizeof(err))) {
        fprintf(stderr, "kbsim exchange: --user-file: %s\n", err);
        goto done;
      }
      break;
    case 'h':
      fputs(kbsim_exchange_usage, stdout);
      result = 0;
      goto done;
    case ':':
      result =
          kbsim_exchange_bad("this option needs a value:", argv[optind - 1]);
      goto done;
    default:
      result = kbsim_exchange_bad("unknown option", argv[optind - 1]);
      goto done;
    }
  }
  if(optind < argc) {
    result = kbsim_exchange_bad("unexpected argument", argv[optind]);
    goto done;
  }
  if(!listen) {
    result = kbsim_exchange_bad("--listen HOST:PORT is required", NULL);
    goto done;
  }
  if(kbsim_parse_hostport(listen, host, sizeof(host), &cfg.port)) {
    result = kbsim_exchange_bad(
        "--listen wants HOST:PORT (e.g. 127.0.0.1:8081), not", listen);
    goto done;
  }
  if(cfg.auth == BACKEND_AUTH_INTEGRATED && !kb_users_count(users)) {
    result = kbsim_exchange_bad(
        "--auth integrated needs the accounts: give --user or --user-file",
        NULL);
    goto done;
  }

  /* Block the stop signals before the server's threads start, so they
   * inherit the mask and only sigwait() below receives them. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  /* Real clock and getrandom() challenges: zeroed kb_clock and kb_rng. */
  cfg.bind_host = host;
  cfg.users = users;
  cfg.status = true;
  if(backend_start(&cfg, &b, err, sizeof(err))) {
    fprintf(stderr, "kbsim exchange: %s\n", err);
    result = 1;
    goto done;
  }
  printf("Exchange (auth %s) at http://%s%s%s:%u\n",
         backend_auth_name(cfg.auth), strchr(host, ':') ? "[" : "", host,
         strchr(host, ':') ? "]" : "", (unsigned)backend_port(b));
  printf("status at http://%s%s%s:%u/kbsim/status (loopback only)\n",
         strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
         (unsigned)backend_port(b));
  printf("serving until SIGINT or SIGTERM\n");
  fflush(stdout);
  sigwait(&set, &sig);
  printf("stopping on %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  result = 0;

done:
  backend_stop(b);
  kb_users_free(users);
  return result;
}
