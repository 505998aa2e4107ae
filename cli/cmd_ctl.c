/*
 * cmd_ctl.c - `kbsim ctl`: the trainer's remote for a running `kbsim
 * serve`, over its admin endpoint (libcurl + jansson; see admin.h).
 *
 *   kbsim ctl --admin HOST:PORT [--token T] status
 *   kbsim ctl --admin HOST:PORT apply-fix|revert [--member N]
 *   kbsim ctl --admin HOST:PORT hotfix|sp1 --member N
 *
 * The token comes from --token, else KBSIM_ADMIN_TOKEN, else the file
 * `kbsim serve` wrote for that port (admin_token_path).
 *
 * Exit 0 when the endpoint did it, 1 when it could not be reached or
 * refused (one line saying why), 2 for bad arguments.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/kb_buf.h"
#include "live/admin.h"

#define KBSIM_CTL_MAX_REPLY ((size_t)1 << 20)
#define KBSIM_CTL_TIMEOUT_MS 10000L

/* libcurl's write callback: appends to the kb_buf, refusing past its cap
 * (libcurl then fails the transfer). */
static size_t kbsim_ctl_write(char *data, size_t size, size_t n, void *ctx)
{
  return kb_buf_add(ctx, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* Sends method path to the admin endpoint at base ("http://H:P") and
 * parses the JSON answer into *reply (owned by the caller). Returns 0 on a
 * 2xx answer; otherwise prints one line saying what went wrong and returns
 * -1. */
static int kbsim_ctl_call(const char *base, const char *admin_arg,
                          const char *token, const char *method,
                          const char *path, json_t **reply)
{
  char url[256], errbuf[CURL_ERROR_SIZE] = "", bearer[ADMIN_TOKEN_MAX + 32];
  struct curl_slist *headers = NULL, *more;
  struct kb_buf body;
  json_error_t jerr;
  json_t *j = NULL;
  CURL *curl = NULL;
  CURLcode rc;
  long status = 0;
  int result = -1;

  *reply = NULL;
  kb_buf_init(&body, KBSIM_CTL_MAX_REPLY);
  snprintf(url, sizeof(url), "%s%s", base, path);
  curl = curl_easy_init();
  if(!curl) {
    fprintf(stderr, "kbsim: libcurl could not start a transfer\n");
    goto done;
  }
  curl_easy_setopt(curl, CURLOPT_URL, url);
  /* The admin endpoint is on loopback: never go through an http_proxy
   * from the environment. */
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, KBSIM_CTL_TIMEOUT_MS);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, kbsim_ctl_write);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", token);
  headers = curl_slist_append(NULL, bearer);
  more = headers && !strcmp(method, "POST")
             ? curl_slist_append(headers, "Content-Type: application/json")
             : headers;
  explicit_bzero(bearer, sizeof(bearer));
  if(!more) {
    fprintf(stderr, "kbsim: out of memory\n");
    goto done;
  }
  headers = more;
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if(!strcmp(method, "POST")) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 2L);
  }
  rc = curl_easy_perform(curl);
  if(rc != CURLE_OK) {
    fprintf(stderr,
            "kbsim: cannot reach the admin endpoint at %s: %s; is "
            "`kbsim serve` running with --admin %s?\n",
            base, errbuf[0] ? errbuf : curl_easy_strerror(rc), admin_arg);
    goto done;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  j = json_loadb(body.data ? body.data : "", body.len, 0, &jerr);
  if(status < 200 || status > 299) {
    json_t *e = j ? json_object_get(j, "error") : NULL;
    fprintf(stderr,
            "kbsim: the admin endpoint refused %s %s (HTTP %ld): "
            "%s\n",
            method, path, status,
            json_is_string(e) ? json_string_value(e)
                              : "no reason given; is it really kbsim serve?");
    goto done;
  }
  if(!json_is_object(j)) {
    fprintf(stderr,
            "kbsim: the admin endpoint at %s answered %s %s with "
            "something that is not kbsim's JSON; is it really kbsim serve?\n",
            base, method, path);
    goto done;
  }
  *reply = j;
  j = NULL;
  result = 0;

done:
  json_decref(j);
  curl_easy_cleanup(curl);
  curl_slist_free_all(headers);
  kb_buf_free(&body);
  return result;
}

/* A string field of o, or "?" when missing. */
static const char *kbsim_ctl_str(const json_t *o, const char *key)
{
  const json_t *v = json_object_get(o, key);

  return json_is_string(v) ? json_string_value(v) : "?";
}

/* An integer field of o, or 0 when missing. */
static long long kbsim_ctl_int(const json_t *o, const char *key)
{
  const json_t *v = json_object_get(o, key);

  return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* Prints GET /status as a table. */
static void kbsim_ctl_print_status(const json_t *st)
{
  const json_t *bal = json_object_get(st, "balancer");
  const json_t *members = json_object_get(st, "members");
  const json_t *ex = json_object_get(st, "exchange");
  const json_t *m;
  size_t i, width = 6;

  if(json_is_string(json_object_get(st, "scenario")))
    printf("Scenario %s\n", kbsim_ctl_str(st, "scenario"));
  if(json_is_object(bal))
    printf("Balancer %s (%s): %lld connection%s, %lld open\n",
           kbsim_ctl_str(bal, "url"), kbsim_ctl_str(bal, "mode"),
           kbsim_ctl_int(bal, "connections"),
           kbsim_ctl_int(bal, "connections") == 1 ? "" : "s",
           kbsim_ctl_int(bal, "open"));
  json_array_foreach(members, i, m)
  {
    size_t n = strlen(kbsim_ctl_str(m, "name"));
    if(n > width)
      width = n;
  }
  printf("%-*s  %-10s  %-6s  %-14s  %5s  %4s  %8s  %11s  %s\n", (int)width,
         "member", "patch", "script", "policy", "conns", "open", "requests",
         "empty POSTs", "why");
  json_array_foreach(members, i, m)
  {
    char open[16] = "-";

    if(json_is_integer(json_object_get(m, "open_connections")))
      snprintf(open, sizeof(open), "%lld",
               kbsim_ctl_int(m, "open_connections"));
    printf("%-*s  %-10s  %-6s  %-14s  %5lld  %4s  %8lld  %11lld  %s\n",
           (int)width, kbsim_ctl_str(m, "name"), kbsim_ctl_str(m, "patch"),
           json_is_true(json_object_get(m, "script")) ? "run" : "no",
           kbsim_ctl_str(m, "policy"), kbsim_ctl_int(m, "connections"), open,
           kbsim_ctl_int(m, "requests"),
           kbsim_ctl_int(m, "forwarded_empty_posts"), kbsim_ctl_str(m, "why"));
  }
  if(json_is_object(ex))
    printf("Exchange %s: %lld request%s, %lld EWS POST%s, %lld empty "
           "(answered with a SOAP 500)\n",
           kbsim_ctl_str(ex, "url"), kbsim_ctl_int(ex, "requests"),
           kbsim_ctl_int(ex, "requests") == 1 ? "" : "s",
           kbsim_ctl_int(ex, "ews_posts"),
           kbsim_ctl_int(ex, "ews_posts") == 1 ? "" : "s",
           kbsim_ctl_int(ex, "empty_posts"));
}

/* Prints what an action changed, one line per member:
 * "ISA02: script run; policy per-connection -> per-request (why)". */
static void kbsim_ctl_print_changes(const json_t *reply)
{
  const json_t *changes = json_object_get(reply, "changes");
  const json_t *c;
  size_t i;

  json_array_foreach(changes, i, c)
  {
    const char *before = kbsim_ctl_str(c, "policy_before");
    const char *after = kbsim_ctl_str(c, "policy");

    if(strcmp(before, after))
      printf("%s: %s; policy %s -> %s (%s)\n", kbsim_ctl_str(c, "name"),
             kbsim_ctl_str(c, "what"), before, after, kbsim_ctl_str(c, "why"));
    else
      printf("%s: %s; policy stays %s (%s)\n", kbsim_ctl_str(c, "name"),
             kbsim_ctl_str(c, "what"), after, kbsim_ctl_str(c, "why"));
  }
}

static int kbsim_cmd_ctl(int argc, char **argv);

static const struct kbsim_opt ctl_opts[] = {
    {"admin", 'a', "HOST:PORT",
     "The admin endpoint, as serve printed it: "
     "127.0.0.1:8099, localhost:8099 or "
     "http://127.0.0.1:8099/; required."},
    {"member", 'm', "N",
     "The member to change: its number from 1 or its "
     "name (ISA02). apply-fix and revert without it "
     "change every member."},
    {"token", 't', "TOKEN",
     "The admin token serve printed; else KBSIM_ADMIN_TOKEN, else the "
     "token file serve wrote (mode 0600) for that port."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_ctl_command = {
    "ctl",
    "--admin HOST:PORT status | apply-fix [--member N] | revert [--member N]\n"
    "--admin HOST:PORT hotfix --member N | sp1 --member N",
    "change a running serve: apply or undo the fix, or show status",
    "Changes a running 'kbsim serve' through its admin endpoint. apply-fix "
    "runs the KB 942638 script, revert undoes it (the hotfix stays), hotfix "
    "installs the hotfix on an RTM member, sp1 installs SP1. Each change "
    "takes effect from the next request; no connection is dropped. Prints "
    "what changed, one line per member; status prints a table per member "
    "(patch, script, policy, connections, requests, empty POSTs forwarded, "
    "why) and Exchange's counts.",
    ctl_opts,
    "status|apply-fix|revert|hotfix|sp1",
    kbsim_cmd_ctl};

static int kbsim_cmd_ctl(int argc, char **argv)
{
  struct kbsim_args a;
  const char *admin_arg = NULL, *member = NULL, *what, *token = NULL;
  char token_buf[ADMIN_TOKEN_MAX + 1], token_arg[ADMIN_TOKEN_MAX + 1];
  char token_path[512], terr[512];
  enum admin_action act = ADMIN_APPLY_FIX;
  bool status;
  char host[64], base[128], path[128];
  uint16_t port = 0;
  json_t *reply = NULL;
  int c, result = 2;

  kbsim_args_init(&a, &kbsim_ctl_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 'a':
      if(kbsim_parse_endpoint(optarg, host, sizeof(host), &port) || !port)
        return kbsim_bad_args("--admin: '%s' is not HOST:PORT or the Admin "
                              "URL kbsim serve printed (e.g. 127.0.0.1:8099, "
                              "http://127.0.0.1:8099/)",
                              optarg);
      admin_arg = optarg;
      break;
    case 'm':
      if(!*optarg || strlen(optarg) > 31 ||
         strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789_.-") != strlen(optarg))
        return kbsim_bad_args("--member: '%s' is neither a member's number "
                              "(1, 2, ...) nor its name (ISA01)",
                              optarg);
      member = optarg;
      break;
    case 't':
      if(admin_token_check(optarg, terr, sizeof(terr)))
        return kbsim_bad_args("--token: %s", terr);
      /* A copy: the argument is hidden once parsed (usage_secrets). */
      snprintf(token_arg, sizeof(token_arg), "%s", optarg);
      token = token_arg;
      break;
    }
  }
  if(c < 0)
    return a.status;
  if(!admin_arg)
    return kbsim_bad_args("--admin HOST:PORT is required");
  if(optind >= argc)
    return kbsim_bad_args("say what to do: status, apply-fix, revert, "
                          "hotfix or sp1");
  if(optind + 1 < argc)
    return kbsim_bad_args("unexpected argument '%s'", argv[optind + 1]);
  what = argv[optind];
  status = !strcmp(what, "status");
  if(!status && admin_action_parse(what, &act)) {
    static const char *const actions[] = {"status", "apply-fix", "revert",
                                          "hotfix", "sp1"};
    const char *best = kbsim_did_you_mean(what, actions, 5);
    if(best)
      return kbsim_bad_args("unknown action '%s'; did you mean '%s'?", what,
                            best);
    return kbsim_bad_args("unknown action '%s'; use status, apply-fix, "
                          "revert, hotfix or sp1",
                          what);
  }
  if(status && member)
    return kbsim_bad_args("status shows every member; drop --member");
  if(!member && (act == ADMIN_HOTFIX || act == ADMIN_SP1) && !status)
    return kbsim_bad_args("%s is installed on one member at a time; "
                          "add --member N",
                          what);

  snprintf(base, sizeof(base),
           strchr(host, ':') ? "http://[%s]:%u" : "http://%s:%u", host,
           (unsigned)port);
  if(status)
    snprintf(path, sizeof(path), "/status");
  else if(member)
    snprintf(path, sizeof(path), "/members/%s/%s", member,
             admin_action_name(act));
  else
    snprintf(path, sizeof(path), "/%s", admin_action_name(act));
  if(!token && getenv("KBSIM_ADMIN_TOKEN") && *getenv("KBSIM_ADMIN_TOKEN")) {
    token = getenv("KBSIM_ADMIN_TOKEN");
    if(admin_token_check(token, terr, sizeof(terr)))
      return kbsim_bad_args("KBSIM_ADMIN_TOKEN: %s", terr);
  }
  result = 1;
  if(!token) {
    admin_token_path(port, token_path, sizeof(token_path));
    if(admin_token_read(token_path, token_buf, sizeof(token_buf), terr,
                        sizeof(terr))) {
      fprintf(stderr,
              "kbsim: no token for the admin endpoint at %s: %s; is `kbsim "
              "serve` running with --admin %s? Otherwise give --token or "
              "set KBSIM_ADMIN_TOKEN\n",
              base, terr, admin_arg);
      return 1;
    }
    token = token_buf;
  }
  if(curl_global_init(CURL_GLOBAL_DEFAULT)) {
    fprintf(stderr, "kbsim: libcurl could not initialise\n");
    return 1;
  }
  if(kbsim_ctl_call(base, admin_arg, token, status ? "GET" : "POST", path,
                    &reply))
    goto done;
  if(status)
    kbsim_ctl_print_status(reply);
  else
    kbsim_ctl_print_changes(reply);
  result = 0;

done:
  json_decref(reply);
  curl_global_cleanup();
  return result;
}
