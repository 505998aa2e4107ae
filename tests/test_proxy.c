/*
 * test_proxy.c - the ISA listener through proxy.h: the one list of the
 * suites, one per file, and what they share (test_proxy.h).
 *
 *   test_proxy_auth.c       the decision table of KB 942638 against the
 *                           real Exchange: NTLM and Negotiate, garbage,
 *                           Kerberos refused, Basic and anonymous listeners
 *   test_proxy_forward.c    exact forwarding against a recording upstream,
 *                           limits, a half-closed client, upstream
 *                           failures, the trace
 *   test_proxy_keepalive.c  idle timeout, keep-alive limit, connection
 *                           timeout; concurrency, several loops, stop
 *
 * The test client is libcurl with hand-set headers on one easy handle, so
 * that every leg of a handshake reuses one TCP connection, as Communicator
 * does; NTLM messages come from ntlm.h (kbt_ntlm.h). Servers bind
 * 127.0.0.1:0.
 */
#include "test_proxy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rc.h"

/* ---- the test client ---------------------------------------------------- */

static size_t tc_header_cb(char *d, size_t s, size_t n, void *u)
{
  struct tc *c = u;
  if(s * n >= 5 && !memcmp(d, "HTTP/", 5))
    kb_buf_reset(&c->headers);
  kb_buf_add(&c->headers, d, s * n);
  return s * n;
}

static size_t tc_body_cb(char *d, size_t s, size_t n, void *u)
{
  struct tc *c = u;
  kb_buf_add(&c->body, d, s * n);
  return s * n;
}

void tc_init(struct tc *c, uint16_t port)
{
  memset(c, 0, sizeof(*c));
  c->h = curl_easy_init();
  ck_assert_ptr_nonnull(c->h);
  c->port = port;
  kb_buf_init(&c->headers, 65536);
  kb_buf_init(&c->body, 1 << 20);
}

void tc_free(struct tc *c)
{
  curl_easy_cleanup(c->h);
  kb_buf_free(&c->headers);
  kb_buf_free(&c->body);
}

void tc_prepare(struct tc *c, const char *path, struct curl_slist *list)
{
  char url[600];

  kb_buf_reset(&c->headers);
  kb_buf_reset(&c->body);
  c->status = 0;
  c->connects = -1;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)c->port, path);
  curl_easy_setopt(c->h, CURLOPT_URL, url);
  curl_easy_setopt(c->h, CURLOPT_PROXY, "");
  curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, list);
  curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, tc_header_cb);
  curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, tc_body_cb);
  curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
}

CURLcode tc_perform(struct tc *c, struct curl_slist *list)
{
  CURLcode res = curl_easy_perform(c->h);

  curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
  curl_easy_getinfo(c->h, CURLINFO_NUM_CONNECTS, &c->connects);
  curl_slist_free_all(list);
  return res;
}

CURLcode tc_do(struct tc *c, const char *method, const char *path,
               const char *const *hdrs, const char *body, size_t body_len)
{
  struct curl_slist *list = NULL;
  size_t i;

  curl_easy_reset(c->h);
  list = curl_slist_append(list, "Expect:");
  for(i = 0; hdrs && hdrs[i]; i++)
    list = curl_slist_append(list, hdrs[i]);
  tc_prepare(c, path, list);
  if(!strcmp(method, "POST") || body) {
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(body ? body_len : 0));
    if(strcmp(method, "POST") != 0)
      curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
  }
  else if(!strcmp(method, "HEAD"))
    curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
  else if(strcmp(method, "GET") != 0)
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
  return tc_perform(c, list);
}

/* Copies the value of the last response's header name into out; returns
 * out, or NULL when the header is absent. Fails the test when it occurs
 * more than once. */
const char *tc_header(struct tc *c, const char *name, char *out, size_t outlen)
{
  const char *at = NULL, *v, *found = NULL;
  unsigned count = 0;
  size_t len;

  if(!c->headers.data)
    return NULL;
  while(rc_next_header(c->headers.data, name, &at, &v, &len)) {
    snprintf(out, outlen, "%.*s", (int)len, v);
    found = out;
    count++;
  }
  ck_assert_uint_le(count, 1);
  return found;
}

/* Copies the values of every header name of the last response into out,
 * in their order, joined by '|'; returns out, or NULL when there is none. */
const char *tc_headers(struct tc *c, const char *name, char *out, size_t outlen)
{
  const char *at = NULL, *v;
  size_t len, used = 0;

  out[0] = '\0';
  if(!c->headers.data)
    return NULL;
  while(rc_next_header(c->headers.data, name, &at, &v, &len)) {
    used += (size_t)snprintf(out + used, outlen - used, "%s%.*s",
                             used ? "|" : "", (int)len, v);
    ck_assert_uint_lt(used, outlen);
  }
  return used ? out : NULL;
}

/* ---- NTLM legs ---------------------------------------------------------- */

/* ---- NTLM legs ---------------------------------------------------------- */

/* "Authorization: " and value, which it frees (caller frees the line). */
static char *t_auth_line(char *value)
{
  char *line = malloc(strlen(value) + 32);

  ck_assert_ptr_nonnull(line);
  sprintf(line, "Authorization: %s", value);
  free(value);
  return line;
}

char *t_type1(enum ntlm_scheme scheme)
{
  return t_auth_line(kbt_ntlm_type1(scheme));
}

char *t_type3(const char *www_auth, enum ntlm_scheme scheme, const char *user,
              const char *password)
{
  struct ntlm_message msg;
  char *value;

  kbt_ntlm_challenge(www_auth, scheme, &msg);
  value = kbt_ntlm_type3(&msg, scheme, user, password);
  ntlm_message_free(&msg);
  return t_auth_line(value);
}

void t_expected_challenge(uint64_t conn, unsigned n, uint8_t out[8])
{
  char label[128];

  snprintf(label, sizeof(label),
           "proxy/ISA01/conn/%" PRIu64 "/handshake/%u/challenge", conn, n);
  kbt_fill(NULL, label, out, 8);
}

long t_handshake_post(struct tc *c, const char *path, enum ntlm_scheme scheme,
                      const char *user, const char *password, const char *body)
{
  char www[4096];
  char *t1 = t_type1(scheme);
  char *t3;
  const char *h1[] = {"Content-Type: text/xml; charset=utf-8", t1, NULL};
  const char *h3[] = {"Content-Type: text/xml; charset=utf-8", NULL, NULL};

  ck_assert_int_eq(tc_do(c, "POST", path, h1, "", 0), CURLE_OK);
  ck_assert_int_eq(c->status, 401);
  ck_assert_ptr_nonnull(tc_header(c, "WWW-Authenticate", www, sizeof(www)));
  t3 = t_type3(www, scheme, user, password);
  h3[1] = t3;
  ck_assert_int_eq(tc_do(c, "POST", path, h3, body, strlen(body)), CURLE_OK);
  ck_assert_int_eq(c->connects, 0); /* same TCP connection as the type 1 */
  free(t1);
  free(t3);
  return c->status;
}

/* ---- the listener and its upstream --------------------------------------- */

void t_env_start(struct kbt_env *e, enum kbt_upstream up, const char *url,
                 size_t max_body, long timeout_ms, enum proxy_policy policy,
                 const struct t_opts *o)
{
  struct kbt_env_opts eo;
  struct proxy_config pc;

  memset(&pc, 0, sizeof(pc));
  pc.policy = policy;
  pc.max_body = max_body;
  pc.upstream_timeout_ms = timeout_ms;
  if(o) {
    pc.auth = o->auth;
    pc.idle_timeout_ms = o->idle_timeout_ms;
    pc.max_requests = o->max_requests;
    pc.connection_timeout_s = o->connection_timeout_s;
    pc.loops = o->loops;
    pc.clock = o->clock;
    pc.names = o->names;
  }
  memset(&eo, 0, sizeof(eo));
  eo.upstream = up;
  eo.url = url;
  eo.listener = &pc;
  eo.keep_bytes = true;
  eo.exchange_untraced = true;
  eo.debug = "T_PROXY_TRACE";
  kbt_env_start(e, &eo);
}

struct backend_stats be_stats(struct kbt_env *e)
{
  struct backend_stats s;

  backend_stats(e->be, &s);
  return s;
}

int main(void)
{
  static Suite *(*const suites[])(void) = {
      proxy_auth_suite, proxy_forwarding_suite, proxy_keepalive_suite, NULL};
  int failed;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  failed = kbt_run_list(suites);
  curl_global_cleanup();
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
