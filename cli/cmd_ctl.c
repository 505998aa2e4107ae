/*
 * cmd_ctl.c - `kbsim ctl`: the trainer's remote for a running `kbsim
 * serve`, over its admin endpoint (libcurl + jansson; see admin.h).
 *
 *   kbsim ctl --admin HOST:PORT [--token T] status
 *   kbsim ctl --admin HOST:PORT apply-fix|revert [--member N]
 *   kbsim ctl --admin HOST:PORT hotfix|sp1 --member N
 *   kbsim ctl --admin HOST:PORT reset | scenario NAME
 *   kbsim ctl --admin HOST:PORT session [--user U] [--member N] [--count N]
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
/* 20 sessions of three POSTs, each request allowed 10 s. */
#define KBSIM_CTL_SESSIONS_TIMEOUT_MS 660000L

/* libcurl's write callback: appends to the kb_buf, refusing past its cap
 * (libcurl then fails the transfer). */
static size_t kbsim_ctl_write(char *data, size_t size, size_t n, void *ctx)
{
  return kb_buf_add(ctx, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* Sends method path (a POST with the JSON body post) to the admin
 * endpoint at base ("http://H:P") and parses the JSON answer into *reply
 * (owned by the caller). Returns 0 on a 2xx answer; otherwise prints one
 * line saying what went wrong and returns -1. */
static int kbsim_ctl_call(const char *base, const char *admin_arg,
                          const char *token, const char *method,
                          const char *path, const char *post, json_t **reply)
{
  char url[320], errbuf[CURL_ERROR_SIZE] = "", bearer[ADMIN_TOKEN_MAX + 32];
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
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, post);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(post));
  }
  /* A session runs for as long as its requests take. */
  if(!strcmp(path, "/sessions"))
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, KBSIM_CTL_SESSIONS_TIMEOUT_MS);
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
  /* The scoreboard: each member's sessions since its last change. */
  json_array_foreach(members, i, m)
  {
    const json_t *sc = json_object_get(m, "score");

    if(json_is_object(sc))
      printf("%s since %s (%s): %lld session%s, %lld with the error\n",
             kbsim_ctl_str(m, "name"), kbsim_ctl_str(sc, "since"),
             kbsim_ctl_str(sc, "at"), kbsim_ctl_int(sc, "sessions"),
             kbsim_ctl_int(sc, "sessions") == 1 ? "" : "s",
             kbsim_ctl_int(sc, "errors"));
  }
}

/* Prints what a reset or a switch started: "Reset: NAME as it starts
 * (ISA01, ISA02); counters at zero, sessions cleared". */
static void kbsim_ctl_print_restart(const json_t *reply)
{
  const json_t *members = json_object_get(reply, "members");
  const json_t *m;
  size_t i;

  printf("%s: %s %s (",
         !strcmp(kbsim_ctl_str(reply, "action"), "reset") ? "Reset"
                                                          : "Scenario",
         kbsim_ctl_str(reply, "scenario"),
         !strcmp(kbsim_ctl_str(reply, "action"), "reset") ? "as it starts"
                                                          : "started");
  json_array_foreach(members, i, m)
  {
    printf("%s%s", i ? ", " : "",
           json_is_string(m) ? json_string_value(m) : "?");
  }
  printf("); counters at zero, sessions cleared\n");
}

/* Prints each session the endpoint ran, one line each, then the count:
 * "Session 1 as FABRIKAM\\alice through the balancer: served by ISA02;
 * the user saw the Outlook Integration Error (server-error)"; a kind
 * other than Communicator is named, with what its user sees. */
static void kbsim_ctl_print_sessions(const json_t *reply)
{
  const json_t *list = json_object_get(reply, "sessions");
  const char *target = kbsim_ctl_str(reply, "target");
  const struct client_kind_info *kind =
      client_kind_info(CLIENT_KIND_COMMUNICATOR);
  enum client_kind k;
  const json_t *one;
  char as[64] = "";
  size_t i;

  if(!client_kind_parse(kbsim_ctl_str(reply, "kind"), &k) &&
     k != CLIENT_KIND_COMMUNICATOR) {
    kind = client_kind_info(k);
    snprintf(as, sizeof(as), " (%s)", kind->label);
  }
  json_array_foreach(list, i, one)
  {
    const json_t *by = json_object_get(one, "served_by");

    printf("Session %lld%s as %s %s%s: served by %s; %s%s (%s)\n",
           kbsim_ctl_int(one, "n"), as, kbsim_ctl_str(reply, "user"),
           strcmp(target, "balancer") ? "on " : "through the ", target,
           json_is_string(by) ? json_string_value(by) : "unknown",
           json_is_true(json_object_get(one, "error"))
               ? "the user saw "
               : "no error for the user",
           json_is_true(json_object_get(one, "error")) ? kind->symptom : "",
           kbsim_ctl_str(one, "outcome_class"));
  }
  printf("%lld session%s, %lld with the error\n",
         (long long)json_array_size(list),
         json_array_size(list) == 1 ? "" : "s", kbsim_ctl_int(reply, "errors"));
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
     "change every member. For session: the member the sessions go to, "
     "on its own port; without it they go through the balancer, each to "
     "the member it picks."},
    {"user", 'u', "'DOMAIN\\user'",
     "For session: who signs in, one of the scenario's users (serve knows "
     "the password); without it, the scenario's first."},
    {"count", 'c', "N",
     "For session: how many sessions, one after another, 1 to 20 (default "
     "1)."},
    {"kind", 'k', "KIND",
     "For session: the client kind, " CLIENT_KIND_NAMES
     " (default communicator)."},
    {"token", 't', "TOKEN",
     "The admin token serve printed; else KBSIM_ADMIN_TOKEN, else the "
     "token file serve wrote (mode 0600) for that port."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_ctl_command = {
    "ctl",
    "--admin HOST:PORT status | apply-fix [--member N] | revert [--member N]\n"
    "--admin HOST:PORT hotfix --member N | sp1 --member N\n"
    "--admin HOST:PORT reset | scenario NAME\n"
    "--admin HOST:PORT session [--user 'DOMAIN\\user'] [--member N] "
    "[--count N] [--kind KIND]",
    "change a running serve: apply or undo the fix, reset, run sessions",
    "Changes a running 'kbsim serve' through its admin endpoint. apply-fix "
    "runs the KB 942638 script, revert undoes it (the hotfix stays), hotfix "
    "installs the hotfix on an RTM member, sp1 installs SP1. Each change "
    "takes effect from the next request; no connection is dropped. Prints "
    "what changed, one line per member; status prints a table per member "
    "(patch, script, policy, connections, requests, empty POSTs forwarded, "
    "why), Exchange's counts and each member's sessions since the last "
    "change of its policy.\n\n"
    "reset puts the array back as its scenario starts it (patch levels, "
    "scripts, every counter at zero, the consoles' sessions cleared); "
    "scenario NAME starts another scenario of the catalogue in its place "
    "(kbsim list names them). Both restart the members and Exchange; the "
    "balancer and the admin endpoint keep their ports. session runs "
    "client sessions inside serve (Communicator's, or --kind's), as --user, "
    "and prints who served each and what its user saw.",
    ctl_opts,
    "status|apply-fix|revert|hotfix|sp1|reset|scenario|session",
    kbsim_cmd_ctl};

/* What ctl was asked to do. */
struct kbsim_ctl_req {
  const char *admin_arg, *member, *user, *token, *kind;
  unsigned count; /* session's --count, 0 when not given */
  const char *what, *scenario;
  char host[64];
  uint16_t port;
  char token_arg[ADMIN_TOKEN_MAX + 1];
  /* The request it makes. */
  char method[8], path[160], body[512];
};

/* Takes one option c with its value arg into *r. Returns 0, or 2 after
 * printing what was wrong. */
static int kbsim_ctl_option(struct kbsim_ctl_req *r, int c, const char *arg)
{
  char terr[512];
  uint64_t v;

  switch(c) {
  case 'a':
    if(kbsim_parse_endpoint(arg, r->host, sizeof(r->host), &r->port) ||
       !r->port)
      return kbsim_bad_args("--admin: '%s' is not HOST:PORT or the Admin "
                            "URL kbsim serve printed (e.g. 127.0.0.1:8099, "
                            "http://127.0.0.1:8099/)",
                            arg);
    r->admin_arg = arg;
    break;
  case 'm':
    if(!*arg || strlen(arg) > 31 ||
       strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_.-") != strlen(arg))
      return kbsim_bad_args("--member: '%s' is neither a member's number "
                            "(1, 2, ...) nor its name (ISA01)",
                            arg);
    r->member = arg;
    break;
  case 'u':
    if(!*arg || strlen(arg) > 200 || strchr(arg, ':') || strchr(arg, '"'))
      return kbsim_bad_args("--user: '%s' is not a user's name as "
                            "'DOMAIN\\user' (serve has the password)",
                            strchr(arg, ':') ? "DOMAIN\\user:..." : arg);
    r->user = arg;
    break;
  case 'k':
    if(client_kind_parse(arg, NULL))
      return kbsim_bad_args("--kind: '%s' is no client kind; kinds are %s", arg,
                            CLIENT_KIND_NAMES);
    r->kind = arg;
    break;
  case 'c':
    if(kbsim_parse_u64(arg, 1, ADMIN_MAX_SESSIONS, &v))
      return kbsim_bad_args("--count: '%s' is not a number from 1 to %d", arg,
                            ADMIN_MAX_SESSIONS);
    r->count = (unsigned)v;
    break;
  case 't':
    if(admin_token_check(arg, terr, sizeof(terr)))
      return kbsim_bad_args("--token: %s", terr);
    /* A copy: the argument is hidden once parsed (usage_secrets). */
    snprintf(r->token_arg, sizeof(r->token_arg), "%s", arg);
    r->token = r->token_arg;
    break;
  }
  return 0;
}

/* Writes the JSON string of text, quotes and backslashes escaped, after
 * key into out at *pos. */
static void kbsim_ctl_json_field(char *out, size_t len, size_t *pos,
                                 const char *key, const char *text)
{
  size_t i;

  *pos += (size_t)snprintf(out + *pos, len - *pos, "%s\"%s\": \"",
                           *pos > 1 ? ", " : "", key);
  for(i = 0; text[i] && *pos + 3 < len; i++) {
    if(text[i] == '"' || text[i] == '\\')
      out[(*pos)++] = '\\';
    out[(*pos)++] = text[i];
  }
  *pos += (size_t)snprintf(out + *pos, len - *pos, "\"");
}

/* Makes the request what asks for, with its options, into r->method,
 * r->path and r->body. Returns 0, or 2 after printing what was wrong. */
static int kbsim_ctl_request(struct kbsim_ctl_req *r)
{
  static const char *const actions[] = {"status",   "apply-fix", "revert",
                                        "hotfix",   "sp1",       "reset",
                                        "scenario", "session"};
  bool session = !strcmp(r->what, "session");
  enum admin_action act = ADMIN_APPLY_FIX;
  size_t pos = 1;

  snprintf(r->method, sizeof(r->method), "POST");
  snprintf(r->body, sizeof(r->body), "{}");
  if(!session && (r->user || r->count || r->kind))
    return kbsim_bad_args("%s takes no %s; only session does", r->what,
                          r->user    ? "--user"
                          : r->count ? "--count"
                                     : "--kind");
  if(!strcmp(r->what, "scenario") != !!r->scenario)
    return kbsim_bad_args(r->scenario ? "unexpected argument '%s'"
                                      : "scenario needs the NAME of one of "
                                        "the catalogue's (kbsim list)",
                          r->scenario);
  if(r->member &&
     (!strcmp(r->what, "status") || !strcmp(r->what, "reset") || r->scenario))
    return kbsim_bad_args("%s is for the whole array; drop --member", r->what);
  if(!strcmp(r->what, "status")) {
    snprintf(r->method, sizeof(r->method), "GET");
    snprintf(r->path, sizeof(r->path), "/status");
  }
  else if(!strcmp(r->what, "reset"))
    snprintf(r->path, sizeof(r->path), "/reset");
  else if(r->scenario) {
    snprintf(r->path, sizeof(r->path), "/scenario");
    kbsim_ctl_json_field(r->body, sizeof(r->body), &pos, "scenario",
                         r->scenario);
    snprintf(r->body + pos, sizeof(r->body) - pos, "}");
  }
  else if(session) {
    snprintf(r->path, sizeof(r->path), "/sessions");
    if(r->user)
      kbsim_ctl_json_field(r->body, sizeof(r->body), &pos, "user", r->user);
    if(r->member)
      kbsim_ctl_json_field(r->body, sizeof(r->body), &pos, "member", r->member);
    if(r->kind)
      kbsim_ctl_json_field(r->body, sizeof(r->body), &pos, "kind", r->kind);
    pos += (size_t)snprintf(r->body + pos, sizeof(r->body) - pos,
                            "%s\"count\": %u}", pos > 1 ? ", " : "",
                            r->count ? r->count : 1);
  }
  else if(!admin_action_parse(r->what, &act)) {
    if(!r->member && (act == ADMIN_HOTFIX || act == ADMIN_SP1))
      return kbsim_bad_args("%s is installed on one member at a time; "
                            "add --member N",
                            r->what);
    if(r->member)
      snprintf(r->path, sizeof(r->path), "/members/%s/%s", r->member,
               admin_action_name(act));
    else
      snprintf(r->path, sizeof(r->path), "/%s", admin_action_name(act));
  }
  else {
    const char *best = kbsim_did_you_mean(r->what, actions, 8);
    if(best)
      return kbsim_bad_args("unknown action '%s'; did you mean '%s'?", r->what,
                            best);
    return kbsim_bad_args("unknown action '%s'; use status, apply-fix, "
                          "revert, hotfix, sp1, reset, scenario or session",
                          r->what);
  }
  return 0;
}

/* Parses the command line into *r and makes its request. Returns 0, or
 * the exit code after printing what was wrong (or the help). */
static int kbsim_ctl_parse(int argc, char **argv, struct kbsim_ctl_req *r,
                           bool *exit_now)
{
  struct kbsim_args a;
  int c, bad;

  kbsim_args_init(&a, &kbsim_ctl_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0)
    if((bad = kbsim_ctl_option(r, c, optarg)) != 0)
      return bad;
  if(c < 0) {
    *exit_now = true;
    return a.status;
  }
  if(!r->admin_arg)
    return kbsim_bad_args("--admin HOST:PORT is required");
  if(optind >= argc)
    return kbsim_bad_args("say what to do: status, apply-fix, revert, "
                          "hotfix, sp1, reset, scenario NAME or session");
  r->what = argv[optind];
  if(optind + 1 < argc)
    r->scenario = argv[optind + 1];
  if(optind + 2 < argc)
    return kbsim_bad_args("unexpected argument '%s'", argv[optind + 2]);
  return kbsim_ctl_request(r);
}

/* The token: --token, else KBSIM_ADMIN_TOKEN, else the token file serve
 * wrote for the port (into buf). Returns 0, or the exit code after
 * printing why there is none. */
static int kbsim_ctl_token(struct kbsim_ctl_req *r, const char *base, char *buf,
                           size_t len)
{
  char token_path[512], terr[512];
  const char *env = getenv("KBSIM_ADMIN_TOKEN");

  if(r->token)
    return 0;
  if(env && *env) {
    if(admin_token_check(env, terr, sizeof(terr)))
      return kbsim_bad_args("KBSIM_ADMIN_TOKEN: %s", terr);
    r->token = env;
    return 0;
  }
  admin_token_path(r->port, token_path, sizeof(token_path));
  if(admin_token_read(token_path, buf, len, terr, sizeof(terr))) {
    fprintf(stderr,
            "kbsim: no token for the admin endpoint at %s: %s; is `kbsim "
            "serve` running with --admin %s? Otherwise give --token or "
            "set KBSIM_ADMIN_TOKEN\n",
            base, terr, r->admin_arg);
    return 1;
  }
  r->token = buf;
  return 0;
}

static int kbsim_cmd_ctl(int argc, char **argv)
{
  struct kbsim_ctl_req r;
  char token_buf[ADMIN_TOKEN_MAX + 1], base[128];
  bool exit_now = false;
  json_t *reply = NULL;
  int result;

  memset(&r, 0, sizeof(r));
  result = kbsim_ctl_parse(argc, argv, &r, &exit_now);
  if(result || exit_now)
    return result;
  snprintf(base, sizeof(base),
           strchr(r.host, ':') ? "http://[%s]:%u" : "http://%s:%u", r.host,
           (unsigned)r.port);
  result = kbsim_ctl_token(&r, base, token_buf, sizeof(token_buf));
  if(result)
    return result;
  result = 1;
  if(curl_global_init(CURL_GLOBAL_DEFAULT)) {
    fprintf(stderr, "kbsim: libcurl could not initialise\n");
    return 1;
  }
  if(kbsim_ctl_call(base, r.admin_arg, r.token, r.method, r.path, r.body,
                    &reply))
    goto done;
  if(!strcmp(r.path, "/status"))
    kbsim_ctl_print_status(reply);
  else if(!strcmp(r.path, "/reset") || !strcmp(r.path, "/scenario"))
    kbsim_ctl_print_restart(reply);
  else if(!strcmp(r.path, "/sessions"))
    kbsim_ctl_print_sessions(reply);
  else
    kbsim_ctl_print_changes(reply);
  result = 0;

done:
  explicit_bzero(token_buf, sizeof(token_buf));
  explicit_bzero(r.token_arg, sizeof(r.token_arg));
  json_decref(reply);
  curl_global_cleanup();
  return result;
}
