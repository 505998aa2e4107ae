/*
 * test_live_admin.c - the admin endpoint of `kbsim serve` and `kbsim ctl`
 * (test_live.h): bad requests refused with one line naming why, bad ctl
 * and client invocations (exit 2), nothing listening; and who may use the
 * endpoint: no or a wrong token 401, a foreign Host, Origin or content
 * type 403, the console's strict cookie, the token file 0600.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "balancer/balancer.h"
#include "client/client.h"
#include "common/kb_buf.h"
#include "kbt.h"
#include "live/live.h"
#include "proc.h"
#include "rc.h"
#include "test_live.h"

/* ---- the admin endpoint and ctl refuse what is wrong ------------------ */

/* method path -> status and a JSON {"error": ...} containing want. */
static void refused(const struct served *s, const char *method,
                    const char *path, long want_status, const char *want,
                    const char *allow)
{
  char url[256];
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j, *e;
  long status;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", s->admin, path);
  status = lv_http(method, url, &body, &headers);
  ck_assert_msg(status == want_status, "%s %s: %ld %s", method, path, status,
                body.data);
  ck_assert_ptr_nonnull(strstr(headers.data, "Content-Type: application/json"));
  if(allow) {
    char line[64];
    snprintf(line, sizeof(line), "Allow: %s\r\n", allow);
    ck_assert_msg(strstr(headers.data, line) != NULL, "%s %s: %s", method, path,
                  headers.data);
  }
  j = json_loads(body.data, 0, &jerr);
  e = json_object_get(j, "error");
  ck_assert_msg(json_is_string(e), "%s %s: %s", method, path, body.data);
  ck_assert_msg(strstr(json_string_value(e), want) != NULL, "%s %s: %s", method,
                path, json_string_value(e));
  json_decref(j);
  kb_buf_free(&body);
  kb_buf_free(&headers);
}

START_TEST(admin_refuses_bad_requests)
{
  static const char *const args[] = {HALF_PATCHED, "--admin", "127.0.0.1:0",
                                     NULL};
  struct served s;
  struct proc_out p;
  json_t *st;
  char *nl;

  lv_serve_start(&s, args);
  refused(&s, "GET", "/nope", 404, "no such endpoint '/nope'", NULL);
  refused(&s, "POST", "/members/9/apply-fix", 404,
          "no member '9' in this array; members: 1 ISA01, 2 ISA02", NULL);
  refused(&s, "POST", "/members/ISA07/revert", 404, "no member 'ISA07'", NULL);
  refused(&s, "POST", "/members/0/revert", 404, "no member '0'", NULL);
  refused(&s, "POST", "/members//revert", 404, "no such endpoint", NULL);
  refused(&s, "POST", "/members/1", 404, "no such endpoint", NULL);
  refused(&s, "POST", "/members/1/frob", 404,
          "unknown action 'frob' for ISA01; use apply-fix, revert, hotfix or "
          "sp1",
          NULL);
  refused(&s, "POST", "/members/isa01/apply-fix/again", 404,
          "unknown action 'apply-fix/again'", NULL);
  refused(&s, "GET", "/members/1/apply-fix", 405, "use POST", "POST");
  refused(&s, "DELETE", "/apply-fix", 405, "use POST", "POST");
  refused(&s, "POST", "/status", 405, "use GET", "GET, HEAD");
  refused(&s, "POST", "/hotfix", 400,
          "hotfix is installed on one member at a time: POST "
          "/members/N/hotfix with N one of 1 ISA01, 2 ISA02",
          NULL);
  refused(&s, "POST", "/sp1", 400, "one member at a time", NULL);

  /* Nothing changed. */
  st = lv_status_of(&s);
  ck_assert_str_eq(lv_member_str(st, 0, "policy"), "per-request");
  ck_assert_str_eq(lv_member_str(st, 1, "policy"), "per-connection");
  ck_assert_str_eq(lv_member_str(st, 1, "patch"), "rtm");
  json_decref(st);

  /* ctl: refused by the endpoint -> 1, one line naming why. */
  lv_ctl(&s, &p, "sp1", "--member", "9");
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data, "");
  ck_assert_str_eq(p.err.data, "kbsim: the admin endpoint refused POST "
                               "/members/9/sp1 (HTTP 404): no member '9' in "
                               "this array; members: 1 ISA01, 2 ISA02\n");
  proc_free(&p);
  /* Names work as well as numbers, in any case; repeating is harmless. */
  lv_ctl(&s, &p, "sp1", "--member", "isa02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: SP1 installed; policy stays "
                               "per-connection (SP1 includes the hotfix, no "
                               "effect until the script is run)\n");
  proc_free(&p);
  lv_ctl(&s, &p, "hotfix", "--member", "2");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: SP1 already includes the hotfix; "
                               "policy stays per-connection (SP1 includes the "
                               "hotfix, no effect until the script is run)\n");
  proc_free(&p);
  lv_ctl(&s, &p, "revert", "--member", "2");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA02: script was not run, "
                                           "nothing to undo"));
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);

  /* ctl: nothing listening -> 1, one line. The admin port is free now,
   * and its token file gone. */
  ck_assert_int_eq(access(s.token_path, F_OK), -1);
  lv_ctl(&s, &p, "status", NULL, NULL);
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data, "");
  ck_assert_msg(!strncmp(p.err.data,
                         "kbsim: no token for the admin endpoint "
                         "at http://127.0.0.1:",
                         58),
                "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.err.data, "cannot read the token file "));
  nl = strchr(p.err.data, '\n');
  ck_assert_ptr_nonnull(nl);
  ck_assert_str_eq(nl, "\n");
  proc_free(&p);
  /* With a token given, ctl goes on and finds nothing listening. */
  setenv("KBSIM_ADMIN_TOKEN", s.token, 1);
  lv_ctl(&s, &p, "status", NULL, NULL);
  unsetenv("KBSIM_ADMIN_TOKEN");
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data, "");
  ck_assert_msg(!strncmp(p.err.data,
                         "kbsim: cannot reach the admin endpoint "
                         "at http://127.0.0.1:",
                         58),
                "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.err.data, "is `kbsim serve` running with "
                                           "--admin 127.0.0.1:"));
  nl = strchr(p.err.data, '\n');
  ck_assert_ptr_nonnull(nl);
  ck_assert_str_eq(nl, "\n");
  proc_free(&p);
}
END_TEST

/* Bad ctl and client invocations: exit 2, one line, then the usage. */
START_TEST(bad_arguments)
{
  static const char *cases[][14] = {
      {"ctl", "status", NULL},
      {"ctl", "--admin", "127.0.0.1", "status", NULL},
      {"ctl", "--admin", "127.0.0.1:0", "status", NULL},
      {"ctl", "--admin", "127.0.0.1:9", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "reboot", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "hotfix", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "sp1", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "status", "--member", "1", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "revert", "--member", "a/b", NULL},
      {"ctl", "--admin", "127.0.0.1:9", "status", "extra", NULL},
      {"client", NULL},
      {"client", "--url", "http://127.0.0.1:9/", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", "alice", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--kind",
       "ie6", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--posts",
       "0", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--think",
       "soon", NULL},
      {"client", "--url", "http://127.0.0.1:9/", "--user", ALICE, "--think",
       "9s..1s", NULL},
      {"client", "--url", "ftp://127.0.0.1:9/", "--user", ALICE, NULL},
      {"serve", "/nonexistent/scenario.ini", NULL},
      {"serve", HALF_PATCHED, "--policy", "per-request", NULL},
      {"serve", HALF_PATCHED, "--user", ALICE, NULL},
      {"serve", HALF_PATCHED, HALF_PATCHED, NULL},
      {"serve", "--proxy", "127.0.0.1:0", "--backend", "127.0.0.1:0",
       "--policy", "per-request", "--user", ALICE, "--auth", "kerberos", NULL},
  };
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct proc_out p;
    char *nl;

    proc_kbsim(&p, cases[i]);
    ck_assert_msg(p.status == 2, "case %zu (%s) exited %d: %s", i, cases[i][0],
                  p.status, p.err.data);
    ck_assert_msg(!strncmp(p.err.data, "kbsim", 5), "case %zu: %s", i,
                  p.err.data);
    ck_assert_msg(!strstr(p.err.data, "Passw0rd!"),
                  "case %zu shows the "
                  "password: %s",
                  i, p.err.data);
    nl = strchr(p.err.data, '\n');
    ck_assert_ptr_nonnull(nl);
    /* A scenario file that cannot be read is not a usage problem: one
     * line, no hint. */
    if(strcmp(cases[i][1] ? cases[i][1] : "", "/nonexistent/scenario.ini")) {
      const char *why = proc_usage_error(&p);
      ck_assert_msg(!why, "case %zu: %s:\n%s", i, why, p.err.data);
    }
    else
      ck_assert_msg(!nl[1], "case %zu: %s", i, p.err.data);
    ck_assert_str_eq(p.out.data, "");
    proc_free(&p);
  }
}
END_TEST

/* ---- who may use the admin endpoint ------------------------------------ */

/* The number of lines of text that contain needle (at their start when
 * at_start is set). */

/* method path with hdrs -> want_status and a JSON error containing want. */
static void guarded(const struct served *s, const char *method,
                    const char *path, const char *const *hdrs, const char *post,
                    long want_status, const char *want)
{
  char url[256];
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j, *e;
  long status;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", s->admin, path);
  status = lv_http_with(method, url, hdrs, post, &body, &headers);
  ck_assert_msg(status == want_status, "%s %s: %ld %s", method, path, status,
                body.data);
  if(status == 401)
    ck_assert_ptr_nonnull(strstr(headers.data, "WWW-Authenticate: Bearer"));
  if(want) {
    j = json_loads(body.data, 0, &jerr);
    e = json_object_get(j, "error");
    ck_assert_msg(json_is_string(e), "%s %s: %s", method, path, body.data);
    ck_assert_msg(strstr(json_string_value(e), want) != NULL, "%s %s: %s",
                  method, path, json_string_value(e));
    /* One line. */
    ck_assert_ptr_null(strchr(json_string_value(e), '\n'));
    json_decref(j);
  }
  kb_buf_free(&body);
  kb_buf_free(&headers);
}

/* The endpoint refuses what a foreign web page, a DNS-rebinding page or
 * anyone without the token can send, and nothing changes; the token file
 * is the user's alone; the console page sets a strict cookie. */
START_TEST(admin_refuses_other_origins_and_tokens)
{
  static const char *const args[] = {
      HALF_PATCHED, "--admin", "127.0.0.1:0", "--admin-host",
      "trainer-pc", "-q",      NULL};
  struct served s;
  struct proc_out p;
  char bearer[200], host_local[64], host_pc[64], host_wrong_port[64],
      own_origin[64], cookie[256], url[256], wrong[200];
  struct kb_buf body, headers;
  struct stat st;
  json_t *status;
  char *file;

  lv_serve_start(&s, args);
  ck_assert_uint_eq(strlen(s.token), 48);
  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", s.token);
  snprintf(wrong, sizeof(wrong), "Authorization: Bearer %s", s.token);
  wrong[strlen(wrong) - 1] = wrong[strlen(wrong) - 1] == '0' ? '1' : '0';
  snprintf(host_local, sizeof(host_local), "Host: localhost:%u", s.admin);
  snprintf(host_pc, sizeof(host_pc), "Host: TRAINER-PC:%u", s.admin);
  snprintf(host_wrong_port, sizeof(host_wrong_port), "Host: 127.0.0.1:%u",
           s.admin == 1 ? 2u : 1u);
  snprintf(own_origin, sizeof(own_origin), "Origin: http://127.0.0.1:%u",
           s.admin);
  {
    const char *none[] = {NULL};
    const char *bad_token[] = {wrong, NULL};
    const char *short_token[] = {"Authorization: Bearer abc", NULL};
    const char *basic[] = {"Authorization: Basic YTpi", NULL};
    const char *rebind[] = {bearer, "Host: rebind.attacker.example", NULL};
    const char *rebind_port[] = {bearer, host_wrong_port, NULL};
    const char *no_host[] = {bearer, "Host:", NULL};
    const char *local[] = {bearer, host_local, NULL};
    const char *pc[] = {bearer, host_pc, NULL};
    /* What a page elsewhere sends: a simple request, no preflight. */
    const char *simple[] = {"Origin: http://attacker.example",
                            "Content-Type: text/plain", NULL};
    const char *simple_tok[] = {bearer, "Origin: http://attacker.example",
                                "Content-Type: application/json", NULL};
    const char *null_origin[] = {bearer, "Origin: null",
                                 "Content-Type: application/json", NULL};
    const char *form[] = {bearer, own_origin,
                          "Content-Type: application/x-www-form-urlencoded",
                          NULL};
    const char *plain[] = {bearer, "Content-Type: text/plain", NULL};
    const char *no_type[] = {bearer, "Content-Type:", NULL};
    const char *json_lookalike[] = {bearer, "Content-Type: application/jsonp",
                                    NULL};
    const char *own[] = {bearer, own_origin,
                         "Content-Type: application/json; charset=utf-8", NULL};
    const char *query_elsewhere[] = {NULL};

    guarded(&s, "GET", "/status", none, NULL, 401, "no token");
    guarded(&s, "GET", "/events", none, NULL, 401, "no token");
    guarded(&s, "GET", "/", none, NULL, 401, "no token");
    guarded(&s, "GET", "/status", bad_token, NULL, 401, "wrong token");
    guarded(&s, "GET", "/status", short_token, NULL, 401, "wrong token");
    guarded(&s, "GET", "/status", basic, NULL, 401, "no token");
    guarded(&s, "POST", "/revert", none, "{}", 401, "no token");
    guarded(&s, "POST", "/members/1/revert", simple, "{}", 403,
            "Origin 'http://attacker.example' is not this endpoint's");
    guarded(&s, "POST", "/members/1/revert", simple_tok, "{}", 403,
            "Origin 'http://attacker.example'");
    guarded(&s, "POST", "/revert", null_origin, "{}", 403, "Origin 'null'");
    guarded(&s, "GET", "/status", rebind, NULL, 403,
            "Host 'rebind.attacker.example' is not this endpoint's");
    guarded(&s, "GET", "/status", rebind_port, NULL, 403,
            "is not this "
            "endpoint's");
    guarded(&s, "GET", "/status", no_host, NULL, 403, "Host '(none)'");
    {
      static const char *const odd[] = {
          "Host: [::1",         "Host: 127.0.0.1:",
          "Host: 127.0.0.1:+1", "Host: 127.0.0.1:99999999999999999999",
          "Host: [127.0.0.1]x", "Host: 127.0.0.1:1:2",
          "Host: localhost.",   "Host: 127.0.0.1.nip.io"};
      size_t k;

      for(k = 0; k < sizeof(odd) / sizeof(odd[0]); k++) {
        const char *h[] = {bearer, odd[k], NULL};
        guarded(&s, "GET", "/status", h, NULL, 403, "is not this endpoint's");
      }
    }
    guarded(&s, "POST", "/members/1/revert", form, "a=b", 403,
            "a change needs Content-Type: application/json, not "
            "'application/x-www-form-urlencoded'");
    guarded(&s, "POST", "/revert", plain, "{}", 403, "not 'text/plain'");
    guarded(&s, "POST", "/revert", no_type, "{}", 403, "not '(none)'");
    guarded(&s, "POST", "/revert", json_lookalike, "{}", 403,
            "application/jsonp");
    snprintf(url, sizeof(url), "/status?token=%s", s.token);
    guarded(&s, "GET", url, query_elsewhere, NULL, 401, "no token");

    /* Nothing changed. */
    status = lv_status_of(&s);
    ck_assert_str_eq(lv_member_str(status, 0, "policy"), "per-request");
    ck_assert_str_eq(lv_member_str(status, 1, "policy"), "per-connection");
    ck_assert_int_eq(lv_member_int(status, 0, "requests"), 0);
    json_decref(status);

    /* Localhost, --admin-host (any case) and the own origin are fine. */
    guarded(&s, "GET", "/status", local, NULL, 200, NULL);
    guarded(&s, "GET", "/status", pc, NULL, 200, NULL);
    guarded(&s, "POST", "/members/2/sp1", own, "{}", 200, NULL);
  }
  status = lv_status_of(&s);
  ck_assert_str_eq(lv_member_str(status, 1, "patch"), "sp1");
  json_decref(status);

  /* The console page: the token in the URL becomes a strict cookie; the
   * page may load nothing from anywhere. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/?token=%s", s.admin, s.token);
  ck_assert_int_eq(lv_http_with("GET", url, NULL, NULL, &body, &headers), 200);
  ck_assert_ptr_nonnull(strstr(headers.data, "Content-Type: text/html"));
  ck_assert_ptr_nonnull(
      strstr(headers.data, "Content-Security-Policy: default-src 'none'"));
  ck_assert_ptr_nonnull(strstr(headers.data, "X-Frame-Options: DENY"));
  snprintf(cookie, sizeof(cookie),
           "Set-Cookie: kbsim_admin_%u=%s; Path=/; HttpOnly; "
           "SameSite=Strict\r\n",
           s.admin, s.token);
  ck_assert_msg(strstr(headers.data, cookie) != NULL, "%s", headers.data);
  ck_assert_ptr_nonnull(strstr(body.data, "<title>kbsim live console"));
  ck_assert_ptr_null(strstr(body.data, "src=\"http"));
  ck_assert_ptr_null(strstr(body.data, "href=\"http"));
  kb_buf_free(&body);
  kb_buf_free(&headers);
  {
    char cookie_hdr[256];
    const char *with_cookie[] = {cookie_hdr, NULL};

    snprintf(cookie_hdr, sizeof(cookie_hdr), "Cookie: kbsim_admin_%u=%s",
             s.admin, s.token);
    guarded(&s, "GET", "/status", with_cookie, NULL, 200, NULL);
    snprintf(cookie_hdr, sizeof(cookie_hdr), "Cookie: kbsim_admin_%u=%s",
             s.admin + 1, s.token);
    guarded(&s, "GET", "/status", with_cookie, NULL, 401, "no token");
  }

  /* The token file: this user's, mode 0600, in a 0700 directory. */
  ck_assert_msg(s.token_path[0] == '/', "%s", s.banner.data);
  ck_assert_int_eq(lstat(s.token_path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0600);
  ck_assert_uint_eq(st.st_uid, getuid());
  ck_assert(S_ISREG(st.st_mode));
  file = proc_slurp(s.token_path, NULL);
  ck_assert_str_eq(strtok(file, "\n"), s.token);
  free(file);
  *strrchr(s.token_path, '/') = '\0';
  ck_assert_int_eq(lstat(s.token_path, &st), 0);
  ck_assert_uint_eq(st.st_mode & 0777, 0700);
  *(s.token_path + strlen(s.token_path)) = '/';

  /* ctl: --token beats the environment, which beats the file. */
  {
    char admin[32];
    const char *good[] = {"ctl",   "--admin", admin, "--token",
                          s.token, "status",  NULL};
    const char *bad[] = {"ctl",      "--admin", admin, "--token",
                         wrong + 22, "status",  NULL};
    const char *silly[] = {"ctl", "--admin", admin, "--token",
                           "x y", "status",  NULL};

    snprintf(admin, sizeof(admin), "127.0.0.1:%u", s.admin);
    proc_kbsim(&p, good);
    ck_assert_msg(p.status == 0, "%s", p.err.data);
    proc_free(&p);
    proc_kbsim(&p, bad);
    ck_assert_int_eq(p.status, 1);
    ck_assert_str_eq(p.err.data, "kbsim: the admin endpoint refused GET "
                                 "/status (HTTP 401): wrong token: use the "
                                 "one `kbsim serve` printed or wrote to its "
                                 "token file\n");
    proc_free(&p);
    setenv("KBSIM_ADMIN_TOKEN", wrong + 22, 1);
    lv_ctl(&s, &p, "status", NULL, NULL);
    ck_assert_int_eq(p.status, 1);
    ck_assert_ptr_nonnull(strstr(p.err.data, "(HTTP 401): wrong token"));
    proc_free(&p);
    proc_kbsim(&p, good);
    ck_assert_msg(p.status == 0, "%s", p.err.data);
    proc_free(&p);
    unsetenv("KBSIM_ADMIN_TOKEN");
    proc_kbsim(&p, silly);
    ck_assert_int_eq(p.status, 2);
    ck_assert_msg(!strncmp(p.err.data,
                           "kbsim ctl: --token: the admin token must be 16 to "
                           "128 characters of letters, digits, '_' and "
                           "'-'\n",
                           strlen("kbsim ctl: --token: the admin token must be "
                                  "16 to 128 characters of letters, digits, "
                                  "'_' and '-'\n")),
                  "%s", p.err.data);
    proc_free(&p);
  }
  served_stop(&s);
  /* -q: nothing after the banner but the stop. */
  ck_assert_str_eq(s.rest.data, "stopping on SIGTERM\n");
  kb_buf_free(&s.rest);
  ck_assert_int_eq(access(s.token_path, F_OK), -1);
}
END_TEST

Suite *live_admin_suite(void)
{
  Suite *s = suite_create("admin");
  TCase *tc = tcase_create("admin"), *slow;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, admin_refuses_bad_requests);
  tcase_add_test(tc, admin_refuses_other_origins_and_tokens);
  suite_add_tcase(s, tc);
  /* A table of 23 bad invocations of ctl, client and serve. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, bad_arguments);
  suite_add_tcase(s, slow);
  return s;
}
