/*
 * test_live_serve.c - `kbsim serve FILE` as a trainer drives it
 * (test_live.h): sessions of `kbsim client` through the balancer
 * alternating members, `kbsim ctl` changing a member while a connection
 * stays open, the README's short demo, curl's own NTLM and the other kinds
 * of client through the balancer, and the original flag form with --auth
 * and --admin.
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

/* ---- the trainer's flow ----------------------------------------------- */

/* half-patched-array: ISA01 fixed, ISA02 RTM. The balancer sends the k-th
 * connection to member (k - 1) mod 2, so sessions alternate ISA01, ISA02. */
START_TEST(trainer_flow)
{
  static const char *const args[] = {HALF_PATCHED, "--proxy",     "127.0.0.1:0",
                                     "--admin",    "127.0.0.1:0", NULL};
  struct served s;
  struct proc_out p;
  struct client_config cfg;
  struct client *cl = NULL;
  struct client_post_result r;
  char url[64], err[256];
  long long isa02_conns, isa02_empty;
  json_t *st;

  lv_serve_start(&s, args);
  ck_assert_uint_gt(s.balancer, 0);
  ck_assert_uint_gt(s.admin, 0);
  ck_assert_uint_gt(s.members[0], 0);
  ck_assert_uint_gt(s.members[1], 0);
  ck_assert_ptr_nonnull(
      strstr(s.banner.data, "Member ISA01: http://127.0.0.1:"));
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(rtm+hotfix, script run; policy "
                                              "per-request: hotfix and script: "
                                              "KB 942638 applied)"));
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(rtm, no script; policy "
                                              "per-connection: as shipped"));
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(round-robin per TCP connection "
                                              "over 2 members)"));

  /* Connection 1 -> ISA01 (fixed), connection 2 -> ISA02 (the bug). */
  ck_assert_int_eq(lv_client_session(&s, ALICE), 0);
  ck_assert_int_eq(lv_client_session(&s, BOB), 1);
  st = lv_status_of(&s);
  ck_assert_str_eq(json_string_value(json_object_get(st, "scenario")),
                   "half-patched-array");
  ck_assert_int_eq(lv_section_int(st, "balancer", "connections"), 2);
  ck_assert_int_eq(lv_member_int(st, 0, "connections"), 1);
  ck_assert_int_eq(lv_member_int(st, 0, "balanced_connections"), 1);
  ck_assert_int_eq(lv_member_int(st, 0, "forwarded_empty_posts"), 0);
  ck_assert_int_eq(lv_member_int(st, 1, "connections"), 1);
  ck_assert_int_eq(lv_member_int(st, 1, "forwarded_empty_posts"), 2);
  ck_assert_int_eq(lv_member_int(st, 1, "reauth_skipped"), 2);
  ck_assert_int_eq(lv_section_int(st, "exchange", "empty_posts"), 2);
  ck_assert_str_eq(lv_member_str(st, 1, "policy"), "per-connection");
  json_decref(st);

  lv_ctl(&s, &p, "status", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(
      strstr(p.out.data, "member  patch       script  policy"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA02   rtm         no      "
                                           "per-connection      1"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "2 empty (answered with a SOAP "
                                           "500)"));
  proc_free(&p);

  /* The script alone on an RTM member changes nothing. */
  lv_ctl(&s, &p, "apply-fix", "--member", "2");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: script run; policy stays per-connection "
                               "(script run, no effect without the hotfix)\n");
  proc_free(&p);
  st = lv_status_of(&s);
  ck_assert_str_eq(lv_member_str(st, 1, "why"),
                   "script run, no effect without the hotfix");
  ck_assert_str_eq(lv_member_str(st, 1, "policy"), "per-connection");
  ck_assert(json_is_true(json_object_get(
      json_array_get(json_object_get(st, "members"), 1), "script")));
  json_decref(st);
  ck_assert_int_eq(lv_client_session(&s, ALICE), 0); /* connection 3: ISA01 */
  ck_assert_int_eq(lv_client_session(&s, BOB), 1);   /* connection 4: ISA02 */
  ck_assert_int_eq(lv_client_session(&s, ALICE), 0); /* connection 5: ISA01 */

  /* Connection 6 (ISA02) stays open across the hotfix: a session of our
   * own, stepped by hand. */
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.balancer);
  memset(&cfg, 0, sizeof(cfg));
  cfg.id = 1;
  cfg.base_url = url;
  cfg.domain = "FABRIKAM";
  cfg.user = "alice";
  cfg.password = "Passw0rd!";
  cfg.ews_posts = 2;
  ck_assert_msg(!client_create(&cfg, &cl, err, sizeof(err)), "%s", err);
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert(r.new_connection);
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_SERVER_ERROR); /* still the bug */
  st = lv_status_of(&s);
  isa02_conns = lv_member_int(st, 1, "connections");
  isa02_empty = lv_member_int(st, 1, "forwarded_empty_posts");
  ck_assert_int_eq(isa02_conns, 3);
  ck_assert_int_eq(isa02_empty, 5);
  /* Ours at least (earlier sessions' closes may still be on their way). */
  ck_assert_int_ge(lv_member_int(st, 1, "open_connections"), 1);
  json_decref(st);

  lv_ctl(&s, &p, "hotfix", "--member", "ISA02");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA02: hotfix installed; policy "
                               "per-connection -> per-request (hotfix and "
                               "script: KB 942638 applied)\n");
  proc_free(&p);

  /* The next request on the open connection is challenged: clean, and
   * on the same connection. */
  ck_assert_int_eq(client_step(cl, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_OK);
  ck_assert_uint_eq(r.legs, 2);
  ck_assert_int_eq(r.leg1_status, 401);
  ck_assert_int_eq(r.final_status, 200);
  ck_assert(!r.new_connection);
  ck_assert_uint_eq(r.connection, 1);
  st = lv_status_of(&s);
  ck_assert_int_eq(lv_member_int(st, 1, "connections"), isa02_conns);
  ck_assert_int_ge(lv_member_int(st, 1, "open_connections"), 1);
  ck_assert_int_eq(lv_member_int(st, 1, "forwarded_empty_posts"), isa02_empty);
  ck_assert_str_eq(lv_member_str(st, 1, "policy"), "per-request");
  json_decref(st);

  /* New sessions on both members are clean now. */
  ck_assert_int_eq(lv_client_session(&s, ALICE), 0); /* connection 7: ISA01 */
  ck_assert_int_eq(lv_client_session(&s, BOB), 0);   /* connection 8: ISA02 */
  client_destroy(cl);
  st = lv_status_of(&s);
  ck_assert_int_eq(lv_member_int(st, 1, "connections"), isa02_conns + 1);
  ck_assert_int_eq(lv_member_int(st, 1, "forwarded_empty_posts"), isa02_empty);
  ck_assert_int_eq(lv_section_int(st, "exchange", "empty_posts"), isa02_empty);
  json_decref(st);

  /* Revert on every member: the hotfix stays, the script goes. */
  lv_ctl(&s, &p, "revert", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data,
                   "ISA01: script undone; policy per-request -> "
                   "per-connection (hotfix installed, no effect until the "
                   "script is run)\n"
                   "ISA02: script undone; policy per-request -> "
                   "per-connection (hotfix installed, no effect until the "
                   "script is run)\n");
  proc_free(&p);
  ck_assert_int_eq(lv_client_session(&s, ALICE), 1); /* connection 9: ISA01 */
  ck_assert_int_eq(lv_client_session(&s, BOB), 1);   /* connection 10: ISA02 */

  /* And apply-fix on every member fixes both again. */
  lv_ctl(&s, &p, "apply-fix", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "ISA01: script run; policy "
                                           "per-connection -> per-request"));
  proc_free(&p);
  ck_assert_int_eq(lv_client_session(&s, ALICE), 0);
  ck_assert_int_eq(lv_client_session(&s, BOB), 0);
  st = lv_status_of(&s);
  ck_assert_int_eq(lv_section_int(st, "balancer", "connections"), 12);
  ck_assert_int_eq(lv_member_int(st, 0, "connections"), 6);
  ck_assert_int_eq(lv_member_int(st, 1, "connections"), 6);
  json_decref(st);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* The README's short demo: SP1 everywhere but the script never run. The
 * sessions fail; `ctl apply-fix` alone fixes them. */
START_TEST(readme_demo_apply_fix_fixes_sp1)
{
  static const char *const args[] = {SCENARIOS_DIR "/sp1-without-script.ini",
                                     "--admin", "127.0.0.1:0", NULL};
  struct served s;
  struct proc_out p;

  lv_serve_start(&s, args);
  ck_assert_int_eq(lv_client_session(&s, ALICE), 1);
  lv_ctl(&s, &p, "apply-fix", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA01: script run; policy per-connection -> "
                               "per-request (SP1 and script: KB 942638 "
                               "applied)\n");
  proc_free(&p);
  ck_assert_int_eq(lv_client_session(&s, ALICE), 0);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* curl's own NTLM (authenticate the connection once) through the
 * balancer, on both members; a wrong password is refused; Outlook's kind
 * of client is never hit by the bug, Communicator's is; a listener that
 * is not there makes the user see the error. */
START_TEST(curl_and_clients_through_the_balancer)
{
  static const char *const args[] = {HALF_PATCHED, NULL};
  struct served s;
  struct proc_out p;
  char url[96], base[64];
  const char *outlook[] = {"client", "--url",   base,      "--user", BOB,
                           "--kind", "outlook", "--posts", "3",      NULL};
  const char *one_shot[] = {"client", "--url",  base,       "--user",
                            BOB,      "--kind", "one-shot", NULL};
  const char *nobody[] = {"client", "--url", "http://127.0.0.1:9/",
                          "--user", ALICE,   NULL};
  const char *think[] = {"client",  "--url", base,      "--user", ALICE,
                         "--think", "20ms",  "--posts", "1",      NULL};
  json_t *st;
  int i;

  lv_serve_start(&s, args);
  /* The admin endpoint is always there with a scenario file. */
  ck_assert_uint_gt(s.admin, 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx",
           s.balancer);
  snprintf(base, sizeof(base), "http://127.0.0.1:%u", s.balancer);
  for(i = 0; i < 2; i++) { /* connections 1 and 2: ISA01, ISA02 */
    proc_curl_ntlm(url, ALICE, PROC_OOF_REQUEST, true);
  }
  /* connection 3: ISA01 */
  proc_curl_ntlm(url, "FABRIKAM\\alice:wrong", PROC_OOF_REQUEST, false);

  proc_kbsim(&p, outlook); /* connection 4: ISA02, per-connection */
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "(outlook, 3 EWS POSTs)"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Verdict: no error for "
                                           "FABRIKAM\\bob"));
  proc_free(&p);
  proc_kbsim(&p, one_shot); /* connections 5.. : a new one per POST */
  ck_assert_msg(p.status == 0, "%s%s", p.out.data, p.err.data);
  proc_free(&p);

  st = lv_status_of(&s);
  ck_assert_int_eq(lv_member_int(st, 0, "auth_failed"), 1);
  ck_assert_int_eq(lv_member_int(st, 1, "forwarded_empty_posts"), 0);
  ck_assert_int_eq(lv_member_int(st, 0, "connections") +
                       lv_member_int(st, 1, "connections"),
                   lv_section_int(st, "balancer", "connections"));
  ck_assert_int_ge(lv_member_int(st, 1, "connections"), 2);
  ck_assert_int_eq(lv_section_int(st, "exchange", "oof_ok"), 2 + 2 + 1);
  json_decref(st);

  proc_kbsim(&p, think);
  ck_assert_ptr_nonnull(strstr(p.out.data, "(after 20 ms thinking)"));
  proc_free(&p);

  /* Nothing listening: what the user would see, but no verdict on the
   * listener (issue 14: this was reported as the bug, exit 1). */
  proc_kbsim(&p, nobody);
  ck_assert_int_eq(p.status, 3);
  ck_assert_ptr_nonnull(strstr(p.out.data, "transport-error"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "(infrastructure)"));
  ck_assert_ptr_null(strstr(p.out.data, "Verdict: FABRIKAM"));
  ck_assert_ptr_nonnull(strstr(p.out.data, "Notifications:      Outlook "
                                           "Integration Error"));
  proc_free(&p);
  served_stop(&s);
  kb_buf_free(&s.rest);
}
END_TEST

/* The original flag form keeps working, with --auth and --admin added. */
START_TEST(serve_flag_form_with_auth_and_admin)
{
  char dir[256], json[512], txt[512];
  const char *const args[] = {"--proxy",     "127.0.0.1:0", "--backend",
                              "127.0.0.1:0", "--policy",    "per-connection",
                              "--user",      ALICE,         "--auth",
                              "basic",       "--admin",     "127.0.0.1:0",
                              "--json",      json,          "--transcript",
                              txt,           NULL};
  char *text;
  json_error_t jerr;
  json_t *root, *m, *ex;
  struct served s;
  struct proc_out p;
  char url[96];
  char *curl_basic[] = {"/usr/bin/curl",
                        "-sS",
                        "--basic",
                        "-u",
                        ALICE,
                        "-d",
                        "@" TESTS_DIR "/data/oof-request.xml",
                        "-w",
                        "\nstatus=%{http_code}",
                        url,
                        NULL};
  json_t *st;

  proc_tmpdir("kbsim-live", dir, sizeof(dir));
  snprintf(json, sizeof(json), "%s/flag.json", dir);
  snprintf(txt, sizeof(txt), "%s/flag.txt", dir);
  lv_serve_start(&s, args);
  ck_assert_uint_gt(s.listener, 0);
  ck_assert_uint_gt(s.admin, 0);
  ck_assert_uint_eq(s.balancer, 0);
  /* Recording in the flag form: a one-member relay takes --proxy, so the
   * client hop is recorded too. */
  ck_assert_ptr_nonnull(strstr(s.banner.data, "(policy per-connection, basic "
                                              "authentication; recorded "
                                              "through a TCP relay)"));
  snprintf(url, sizeof(url), "http://127.0.0.1:%u/EWS/Exchange.asmx",
           s.listener);
  proc_run(curl_basic, &p);
  ck_assert_msg(p.status == 0, "curl: %s", p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "status=200"));
  proc_free(&p);

  lv_ctl(&s, &p, "sp1", "--member", "1");
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  proc_free(&p);
  lv_ctl(&s, &p, "apply-fix", NULL, NULL);
  ck_assert_msg(p.status == 0, "%s", p.err.data);
  ck_assert_str_eq(p.out.data, "ISA01: script run; policy per-connection -> "
                               "per-request (SP1 and script: KB 942638 "
                               "applied)\n");
  proc_free(&p);
  st = lv_status_of(&s);
  ck_assert_int_eq(lv_section_int(st, "balancer", "connections"), 1);
  ck_assert_int_eq(lv_member_int(st, 0, "requests"), 1);
  ck_assert_str_eq(lv_member_str(st, 0, "policy"), "per-request");
  json_decref(st);
  served_stop(&s);
  kb_buf_free(&s.rest);

  /* The client hop, as the relay carried it: the request and its answer,
   * with Basic's credentials kept out. */
  text = proc_slurp(txt, NULL);
  ck_assert_msg(strstr(text, "\n; === balancer conn 1: ") &&
                    strstr(text, "POST /EWS/Exchange.asmx HTTP/1.1\r\n") &&
                    strstr(text, "HTTP/1.1 200 OK\r\n"),
                "%.1500s", text);
  ck_assert_ptr_null(strstr(text, "Passw0rd!"));
  /* In client order: the client's connection, then what ISA opened for it
   * (upper-case "ISA01" once sorted before "balancer"). */
  ck_assert_msg(strstr(text, " upstream: ISA <-> Exchange ===") &&
                    strstr(text, "\n; === balancer conn 1: ") <
                        strstr(text, " upstream: ISA <-> Exchange ==="),
                "%.3000s", text);
  free(text);

  /* The report says what ctl changed, that the relay carried the one
   * connection, and what the one request did on each hop. */
  root = json_load_file(json, 0, &jerr);
  ck_assert_msg(root != NULL, "%s: %s", json, jerr.text);
  proc_assert_schema(LV_SCHEMA, (const char *const[]){json, NULL});
  ck_assert(json_is_object(json_object_get(root, "balancer")));
  m = json_array_get(json_object_get(root, "members"), 0);
  ck_assert_str_eq(json_string_value(json_object_get(m, "policy")),
                   "per-connection");
  ck_assert_str_eq(json_string_value(json_object_get(m, "policy_at_stop")),
                   "per-request");
  ck_assert_str_eq(json_string_value(json_object_get(
                       json_object_get(root, "scenario"), "name")),
                   "serve");
  ex = json_object_get(root, "exchanges");
  ck_assert_int_eq(json_array_size(ex), 2);
  ck_assert_int_eq(lv_json_int_at(root, "summary", "requests"), 1);
  ck_assert_int_eq(lv_json_int_at(root, "summary", "forwarded"), 1);
  {
    /* Recorded in the order they happened: Exchange may answer before or
     * after the member has written its own line. */
    json_t *front = json_array_get(ex, 0);
    if(strcmp(json_string_value(json_object_get(front, "hop")), "client-proxy"))
      front = json_array_get(ex, 1);
    ck_assert_str_eq(json_string_value(json_object_get(front, "hop")),
                     "client-proxy");
    ck_assert_str_eq(
        json_string_value(json_array_get(json_object_get(front, "notes"), 0)),
        "basic-ok");
  }
  json_decref(root);
  proc_rmdir(dir);
}
END_TEST

Suite *live_serve_suite(void)
{
  Suite *s = suite_create("serve");
  TCase *tc = tcase_create("serve");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, trainer_flow);
  tcase_add_test(tc, readme_demo_apply_fix_fixes_sp1);
  tcase_add_test(tc, curl_and_clients_through_the_balancer);
  tcase_add_test(tc, serve_flag_form_with_auth_and_admin);
  suite_add_tcase(s, tc);
  return s;
}
