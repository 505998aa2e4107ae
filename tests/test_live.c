/*
 * test_live.c - the live topology a trainer drives: the one list of the
 * suites, one per file, and what they share (test_live.h).
 *
 *   test_live_balancer.c  the TCP balancer in-process: large bodies both
 *                         ways, half-closes and resets passed on, both
 *                         sides closed together, its cap, its picks
 *   test_live_serve.c     `kbsim serve FILE` with `client`, `ctl` and curl
 *                         through the balancer; the flag form
 *   test_live_evidence.c  what serve and client record: capture,
 *                         transcript, JSON and page, and who closed
 *   test_live_admin.c     the admin endpoint's and ctl's refusals, and who
 *                         may use the endpoint
 *   test_live_stream.c    the live stream and the terminal lines, the live
 *                         view in-process, the console in headless
 *                         Chromium
 *
 * Everything is on 127.0.0.1 with port 0; tests synchronise on printed
 * lines, responses, thread joins and EOFs, never on sleeps.
 */
#include "test_live.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kbt.h"

/* ---- helpers: kbsim processes ----------------------------------------- */

/* The token of the server the running test started: lv_http() sends it. */
static char test_token[160];

/* served_start, and the token lv_http() sends from then on. */
void lv_serve_start(struct served *s, const char *const *args)
{
  served_start(s, args);
  snprintf(test_token, sizeof(test_token), "%s", s->token);
}

/* `kbsim client` through the balancer as user; returns its exit code and
 * checks that it printed the verdict that code means. */
int lv_client_session(const struct served *s, const char *user)
{
  char url[64];
  const char *args[] = {"client", "--url", url, "--user", user, NULL};
  struct proc_out p;
  int status;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->balancer);
  proc_kbsim(&p, args);
  status = p.status;
  ck_assert_msg(status == 0 || status == 1, "client exited %d: %s%s", status,
                p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "POST 0  autodiscover"));
  ck_assert_ptr_nonnull(
      strstr(p.out.data, status ? "Verdict: FABRIKAM" : "Verdict: no error"));
  ck_assert_int_eq(!!strstr(p.out.data, "Notifications:      Outlook "
                                        "Integration Error"),
                   status);
  proc_free(&p);
  return status;
}

/* `kbsim ctl --admin 127.0.0.1:PORT args...`; returns its output. */
void lv_ctl(const struct served *s, struct proc_out *p, const char *a1,
            const char *a2, const char *a3)
{
  char admin[32];
  const char *args[] = {"ctl", "--admin", admin, a1, a2, a3, NULL};

  snprintf(admin, sizeof(admin), "127.0.0.1:%u", s->admin);
  proc_kbsim(p, args);
}

/* ---- helpers: HTTP to the admin endpoint ------------------------------ */

static size_t to_buf(char *data, size_t size, size_t n, void *ctx)
{
  return kb_buf_add(ctx, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* method url with the extra request headers in hdrs (NULL-terminated
 * "Name: value" list, may be NULL) and post as the body of a POST ->
 * status, body, headers (both NUL-terminated). */
long lv_http_with(const char *method, const char *url, const char *const *hdrs,
                  const char *post, struct kb_buf *body, struct kb_buf *headers)
{
  CURL *c = curl_easy_init();
  struct curl_slist *list = NULL;
  long status = 0;

  kb_buf_init(body, (size_t)1 << 20);
  kb_buf_init(headers, 65536);
  kb_buf_add(body, "", 0);
  kb_buf_add(headers, "", 0);
  ck_assert_ptr_nonnull(c);
  for(; hdrs && *hdrs; hdrs++) {
    list = curl_slist_append(list, *hdrs);
    ck_assert_ptr_nonnull(list);
  }
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if(!strcmp(method, "POST")) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post ? post : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post ? post : ""));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, to_buf);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  curl_slist_free_all(list);
  return status;
}

/* method url as `kbsim ctl` sends it (the token, a JSON POST) -> status,
 * body, headers. */
long lv_http(const char *method, const char *url, struct kb_buf *body,
             struct kb_buf *headers)
{
  char bearer[200];
  const char *hdrs[] = {bearer, "Content-Type: application/json", NULL};

  snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s", test_token);
  return lv_http_with(method, url, hdrs, "{}", body, headers);
}

/* GET /status as JSON (owned by the caller). */
json_t *lv_status_of(const struct served *s)
{
  char url[64];
  struct kb_buf body, headers;
  json_error_t jerr;
  json_t *j;

  snprintf(url, sizeof(url), "http://127.0.0.1:%u/status", s->admin);
  ck_assert_int_eq(lv_http("GET", url, &body, &headers), 200);
  j = json_loads(body.data, 0, &jerr);
  ck_assert_msg(json_is_object(j), "status is not JSON: %s", body.data);
  kb_buf_free(&body);
  kb_buf_free(&headers);
  return j;
}

/* Member i's (from 0) integer field in a status. */
long long lv_member_int(json_t *st, size_t i, const char *key)
{
  json_t *m = json_array_get(json_object_get(st, "members"), i);
  json_t *v = json_object_get(m, key);

  ck_assert_msg(json_is_integer(v), "member %zu has no integer %s", i, key);
  return (long long)json_integer_value(v);
}

const char *lv_member_str(json_t *st, size_t i, const char *key)
{
  json_t *m = json_array_get(json_object_get(st, "members"), i);
  json_t *v = json_object_get(m, key);

  ck_assert_msg(json_is_string(v), "member %zu has no string %s", i, key);
  return json_string_value(v);
}

long long lv_section_int(json_t *st, const char *section, const char *key)
{
  json_t *v = json_object_get(json_object_get(st, section), key);

  ck_assert_msg(json_is_integer(v), "%s has no integer %s", section, key);
  return (long long)json_integer_value(v);
}

/* Waits until the balancer has ended every pair (its counters say so), so
 * a stop that follows does not close them itself: each close keeps the
 * reason it had. Reads the admin status once per round trip. */
void lv_balancer_drained(const struct served *s)
{
  long long open = 1;
  int tries;

  for(tries = 0; open && tries < 10000; tries++) {
    json_t *st = lv_status_of(s);
    open = lv_section_int(st, "balancer", "open");
    json_decref(st);
  }
  ck_assert_int_eq(open, 0);
}

/* The integer at key in the object at section of root. */
long long lv_json_int_at(json_t *root, const char *section, const char *key)
{
  json_t *v = json_object_get(json_object_get(root, section), key);

  ck_assert_msg(json_is_integer(v), "%s has no integer %s", section, key);
  return (long long)json_integer_value(v);
}

/* The number of lines of text that contain needle (at their start when
 * at_start is set). */
int lv_lines_with(const char *text, const char *needle, bool at_start)
{
  const char *line = text;
  int n = 0;

  while(line && *line) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    const char *hit = strstr(line, needle);

    if(hit && hit < line + len && (!at_start || hit == line))
      n++;
    line = eol ? eol + 1 : NULL;
  }
  return n;
}

/* True, after saying so, when console_in_chromium ran without node or
 * Chromium: only when its suite (stream) and its tag (slow) were run. */
static bool live_console_skipped(void)
{
  const char *suite = getenv("CK_RUN_SUITE");
  const char *excluded = getenv("CK_EXCLUDE_TAGS");
  const char *included = getenv("CK_INCLUDE_TAGS");

  if(suite && strcmp(suite, "stream"))
    return false;
  if((excluded && strstr(excluded, KBT_SLOW)) ||
     (included && !strstr(included, KBT_SLOW)))
    return false;
  return proc_skip_unless("/usr/bin/node", "console_in_chromium",
                          "apt-get install nodejs") |
         proc_skip_unless("/usr/bin/chromium", "console_in_chromium",
                          "apt-get install chromium");
}

int main(void)
{
  static Suite *(*const suites[])(void) = {
      live_balancer_suite, live_serve_suite,  live_evidence_suite,
      live_admin_suite,    live_stream_suite, NULL};
  int failed;

  proc_whole_lines();
  /* A writer into a closed socket must get EPIPE, not die. */
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  failed = kbt_run_list(suites);
  curl_global_cleanup();
  return proc_suite_exit(failed, live_console_skipped());
}
