/*
 * cmd_probe.c - `kbsim probe URL`: Communicator's pattern against any
 * listener publishing `kbsim exchange` (probe/probe.h), one verdict line
 * per behaviour and the listener's class. Exit 0 not affected, 1
 * affected, 2 bad arguments, 3 could not be probed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "kb_users.h"
#include "probe.h"
#include "secret.h"

#define KBSIM_PROBE_MAX_USERS 2

static const char kbsim_probe_usage[] =
    "usage: kbsim probe URL --user 'DOMAIN\\user:password' [--user ...]\n"
    "                 [--exchange-status URL] [--posts N] [--host NAME]\n"
    "                 [--json FILE] [--junit FILE]\n"
    "  Runs Communicator's sessions and the others against the listener at\n"
    "  URL (publishing kbsim exchange) and classifies it. --exchange-status\n"
    "  is kbsim exchange's http://HOST:PORT/kbsim/status: with it the probe\n"
    "  also sees what reached Exchange; the two-user check needs it and a\n"
    "  second --user. A user given without ':password' takes it from\n"
    "  KBSIM_PASSWORD or the terminal.\n"
    "  Exit 0 not affected (Basic / anonymous included), 1 affected,\n"
    "  2 bad arguments, 3 could not be probed.\n";

static int kbsim_probe_bad(const char *what, const char *arg)
{
  fprintf(stderr, "kbsim probe: %s%s%s%s\n\n%s", what, arg ? " '" : "",
          arg ? arg : "", arg ? "'" : "", kbsim_probe_usage);
  return 2;
}

/* One --user, split into its parts. */
struct kbsim_probe_user {
  char domain[128], user[128], password[256];
};

int kbsim_cmd_probe(int argc, char **argv)
{
  static const struct option opts[] = {
      {"user", required_argument, NULL, 'u'},
      {"exchange-status", required_argument, NULL, 's'},
      {"posts", required_argument, NULL, 'p'},
      {"host", required_argument, NULL, 'H'},
      {"json", required_argument, NULL, 'j'},
      {"junit", required_argument, NULL, 'J'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  struct kbsim_probe_user parts[KBSIM_PROBE_MAX_USERS];
  struct probe_user users[KBSIM_PROBE_MAX_USERS];
  struct probe_config cfg;
  struct probe_report rep;
  const char *json = NULL, *junit = NULL;
  size_t nusers = 0, i;
  char err[512];
  uint64_t v;
  int c, result = 2;

  memset(&cfg, 0, sizeof(cfg));
  memset(parts, 0, sizeof(parts));
  opterr = 0;
  optind = 1;
  while((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
    switch(c) {
    case 'u':
      if(nusers == KBSIM_PROBE_MAX_USERS) {
        result =
            kbsim_probe_bad("at most two --user (the two-user check)", NULL);
        goto done;
      }
      if(kb_users_split_spec(optarg, true, parts[nusers].domain,
                             sizeof(parts[0].domain), parts[nusers].user,
                             sizeof(parts[0].user), parts[nusers].password,
                             sizeof(parts[0].password), err, sizeof(err))) {
        fprintf(stderr, "kbsim probe: --user: %s\n", err);
        goto done;
      }
      nusers++;
      break;
    case 's':
      cfg.status_url = optarg;
      break;
    case 'p':
      if(kbsim_parse_u64(optarg, 1, KBSIM_MAX_POSTS, &v)) {
        result = kbsim_probe_bad("--posts wants a number from 1 to 100, not",
                                 optarg);
        goto done;
      }
      cfg.posts = (unsigned)v;
      break;
    case 'H':
      cfg.host = optarg;
      break;
    case 'j':
      json = optarg;
      break;
    case 'J':
      junit = optarg;
      break;
    case 'h':
      fputs(kbsim_probe_usage, stdout);
      result = 0;
      goto done;
    case ':':
      result = kbsim_probe_bad("this option needs a value:", argv[optind - 1]);
      goto done;
    default:
      result = kbsim_probe_bad("unknown option", argv[optind - 1]);
      goto done;
    }
  }
  if(optind < argc)
    cfg.url = argv[optind++];
  if(optind < argc) {
    result = kbsim_probe_bad("unexpected argument", argv[optind]);
    goto done;
  }
  if(!cfg.url) {
    result = kbsim_probe_bad("give the listener's URL", NULL);
    goto done;
  }
  if(strncmp(cfg.url, "http://", 7) && strncmp(cfg.url, "https://", 8)) {
    result = kbsim_probe_bad("the listener's URL starts http:// or https://,"
                             " unlike",
                             cfg.url);
    goto done;
  }
  if(!nusers) {
    result = kbsim_probe_bad("give --user 'DOMAIN\\user:password'", NULL);
    goto done;
  }
  for(i = 0; i < nusers; i++) {
    if(!parts[i].password[0]) {
      char who[600];
      snprintf(who, sizeof(who), "%.127s\\%.127s", parts[i].domain,
               parts[i].user);
      if(sim_ask_password(who, parts[i].password, sizeof(parts[i].password),
                          err, sizeof(err))) {
        fprintf(stderr, "kbsim probe: %s\n", err);
        goto done;
      }
    }
    users[i].domain = parts[i].domain;
    users[i].user = parts[i].user;
    users[i].password = parts[i].password;
  }
  cfg.users = users;
  cfg.nusers = nusers;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  if(probe_run(&cfg, &rep, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    goto done;
  }
  printf("Probing %s%s%s\n", cfg.url,
         cfg.status_url ? " with Exchange's status at " : "",
         cfg.status_url ? cfg.status_url : "");
  for(i = 0; i < PROBE_CHECK_COUNT; i++)
    printf("%-5s %-15s %s\n",
           probe_verdict_name(rep.checks[i].verdict) /* PASS etc. */,
           probe_check_name((enum probe_check)i), rep.checks[i].line);
  printf("Class: %s\n", probe_class_text(rep.cls));
  result = probe_class_exit(rep.cls);
  err[0] = '\0';
  if(json && probe_write_json(&cfg, &rep, json, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 3;
  }
  err[0] = '\0';
  if(junit && probe_write_junit(&cfg, &rep, junit, err, sizeof(err))) {
    fprintf(stderr, "kbsim probe: %s\n", err);
    result = 3;
  }

done:
  explicit_bzero(parts, sizeof(parts));
  return result;
}
