/*
 * test_proxy.h - what the files of test_proxy share: the support case's
 * constants, a libcurl test client that keeps one TCP connection across
 * requests (as Communicator does), the NTLM legs as Authorization lines,
 * the listener in front of its upstream (kbt_env.h), and assert_stats.
 */
#ifndef TESTS_TEST_PROXY_H
#define TESTS_TEST_PROXY_H

#include <check.h>
#include <curl/curl.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "kbt.h"
#include "kbt_env.h"
#include "kbt_ntlm.h"
#include "proxy/proxy.h"

/* 2009-03-17 16:26:24 UTC, the Date of the support case's 500. */
#define T_NOW_MS KBT_CASE_MS
#define T_DATE "Tue, 17 Mar 2009 16:26:24 GMT"
#define T_PASSWORD KBT_ALICE_PASSWORD
#define T_BOB_PASSWORD KBT_BOB_PASSWORD
/* The body of every failed NTLM login, whatever the reason. */
#define T_LOGIN_FAILED                                                         \
  "ISA ISA01: authentication failed; check the user name and password\n"
/* The support case's own type 1, non-canonical padding included. */
#define T_CASE_TYPE1                                                           \
  "NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0=="
/* The WWW-Authenticate headers of an integrated listener's fresh offer,
 * in order, as tc_headers joins them. */
#define T_OFFER "Negotiate|NTLM"

/* ---- the test client ---------------------------------------------------- */

/* One libcurl easy handle: requests reuse its connection while it lasts. */
struct tc {
  CURL *h;
  uint16_t port;
  long status;
  long connects; /* new TCP connections the last request needed */
  struct kb_buf headers;
  struct kb_buf body;
};

void tc_init(struct tc *c, uint16_t port);
void tc_free(struct tc *c);

/* Readies c's handle for a request to path with the header list (which
 * tc_perform frees): the buffers emptied, the URL, timeouts and the
 * callbacks that fill them; the handle's other options are kept. */
void tc_prepare(struct tc *c, const char *path, struct curl_slist *list);

/* Performs the request tc_prepare readied; returns the curl result, with
 * status and connects in c. Frees list. */
CURLcode tc_perform(struct tc *c, struct curl_slist *list);

/* Sends one request on the client's connection. hdrs is a NULL-terminated
 * list of "Name: value" lines; body NULL means none. Returns the curl
 * result; status, headers and body are in c. */
CURLcode tc_do(struct tc *c, const char *method, const char *path,
               const char *const *hdrs, const char *body, size_t body_len);

/* Copies the value of the last response's header name into out; returns
 * out, or NULL when the header is absent. Fails the test when it occurs
 * more than once. */
const char *tc_header(struct tc *c, const char *name, char *out, size_t outlen);

/* Copies the values of every header name of the last response into out,
 * in their order, joined by '|'; returns out, or NULL when there is none. */
const char *tc_headers(struct tc *c, const char *name, char *out,
                       size_t outlen);

/* ---- NTLM legs ---------------------------------------------------------- */

/* Returns "Authorization: <scheme> <type 1>" (caller frees). */
char *t_type1(enum ntlm_scheme scheme);

/* Returns "Authorization: <scheme> <type 3>" answering the type 2 in
 * www_auth, which must carry scheme, for FABRIKAM\user (caller frees). */
char *t_type3(const char *www_auth, enum ntlm_scheme scheme, const char *user,
              const char *password);

/* The challenge the proxy must have drawn for handshake n on conn. */
void t_expected_challenge(uint64_t conn, unsigned n, uint8_t out[8]);

/* Runs the two legs of a Communicator POST on c: type 1 with
 * Content-Length 0 (expects 401 + type 2), then type 3 with the body.
 * Returns the final status. */
long t_handshake_post(struct tc *c, const char *path, enum ntlm_scheme scheme,
                      const char *user, const char *password, const char *body);

/* ---- the listener and its upstream --------------------------------------- */

/* What a test sets beyond t_env_start's arguments: the listener's
 * authentication and keep-alive limits, and optionally its clock (the
 * fixed T_NOW_MS when now_ms is NULL) and connection names. */
struct t_opts {
  enum proxy_auth auth;
  int64_t idle_timeout_ms;
  unsigned max_requests;
  unsigned connection_timeout_s;
  unsigned loops;
  struct kb_clock clock;
  struct kb_names names;
};

/* The listener with policy, max_body and upstream timeout_ms (0: the
 * defaults) and o (NULL: none) in front of up (url for KBT_UP_URL); the
 * trace records the listener's events with their bytes (T_PROXY_TRACE
 * prints them), not Exchange's. */
void t_env_start(struct kbt_env *e, enum kbt_upstream up, const char *url,
                 size_t max_body, long timeout_ms, enum proxy_policy policy,
                 const struct t_opts *o);

/* Exchange's counters. */
struct backend_stats be_stats(struct kbt_env *e);

/* Asserts the listener's counters: every one not named must be 0. */
#define assert_stats(px, ...)                                                  \
  do {                                                                         \
    struct proxy_stats got_, want_ = {__VA_ARGS__};                            \
    proxy_stats((px), &got_);                                                  \
    ck_assert_uint_eq(got_.connections, want_.connections);                    \
    ck_assert_uint_eq(got_.requests, want_.requests);                          \
    ck_assert_uint_eq(got_.challenges, want_.challenges);                      \
    ck_assert_uint_eq(got_.auth_ok, want_.auth_ok);                            \
    ck_assert_uint_eq(got_.auth_failed, want_.auth_failed);                    \
    ck_assert_uint_eq(got_.reauth_skipped, want_.reauth_skipped);              \
    ck_assert_uint_eq(got_.forwarded, want_.forwarded);                        \
    ck_assert_uint_eq(got_.forwarded_empty_posts,                              \
                      want_.forwarded_empty_posts);                            \
    ck_assert_uint_eq(got_.upstream_errors, want_.upstream_errors);            \
    ck_assert_uint_eq(got_.basic_ok, want_.basic_ok);                          \
    ck_assert_uint_eq(got_.basic_failed, want_.basic_failed);                  \
    ck_assert_uint_eq(got_.idle_closed, want_.idle_closed);                    \
    ck_assert_uint_eq(got_.max_requests_closed, want_.max_requests_closed);    \
  } while(0)

/* The suites, one per file. */
Suite *proxy_auth_suite(void);
Suite *proxy_forwarding_suite(void);
Suite *proxy_keepalive_suite(void);

#endif /* TESTS_TEST_PROXY_H */
