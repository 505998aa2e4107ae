/*
 * test_client_field.c - the clients of the field against the real listener
 * and Exchange (test_client.h): Internet Explorer (ie), .NET's
 * HttpWebRequest (dotnet, with and without connection sharing) and Java
 * (java), each under both policies. Every request is checked as the
 * client sent it (its header block byte for byte, the NTLM tokens masked
 * and judged by type), as the listener read it (method, path,
 * Authorization, body, connection, status) and as Exchange received it;
 * then the POSTs' outcomes, the connections opened and closed, and the
 * counters of both servers.
 */
#include <check.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "client/client.h"
#include "kbt.h"
#include "kbt_env.h"
#include "proxy/proxy.h"
#include "test_client.h"

/* The bodies the session sends, for alice with the default contacts on
 * kbt.h's clock. */
#define AD_LEN 370u     /* autodiscover */
#define OOF_LEN 445u    /* GetUserOofSettings */
#define AVAIL_LEN 1789u /* GetUserAvailability */

#define AD "/autodiscover/autodiscover.xml"
#define EWS "/EWS/Exchange.asmx"
#define WSDL "/EWS/Services.wsdl"

#define NONE KB_AUTH_NONE
#define T1 KB_AUTH_NTLM_NEGOTIATE
#define T3 KB_AUTH_NTLM_AUTHENTICATE

/* One request as the client sent it and the listener read it. */
struct want_req {
  const char *method;
  const char *path;
  enum kb_auth auth;
  int length;    /* its Content-Length, -1 for none (a GET) */
  size_t read;   /* body bytes the listener read: 0 when it refused the
                    request before asking for them */
  uint64_t conn; /* the client's and the listener's connection number */
  int status;    /* the listener's answer */
};

/* One request as Exchange received it. */
struct want_up {
  const char *method;
  const char *path;
  enum kb_auth auth;
  size_t body;
  int status;
};

/* One POST (or ie's GET) of the session. */
struct want_post {
  enum client_outcome outcome;
  unsigned legs;
  uint64_t connection; /* its last leg's */
};

struct field_case {
  const char *name;
  enum client_kind kind;
  bool sharing;
  enum proxy_policy policy;
  const struct want_req *reqs;
  size_t nreqs;
  const struct want_up *ups;
  size_t nups;
  const struct want_post *posts;
  size_t nposts;
  unsigned connections; /* TCP connections, client's and listener's */
  bool serial;          /* each closed before the next opens, all closed */
  bool error;           /* the user sees the Outlook Integration Error */
  unsigned challenges, auth_ok, reauth_skipped, empty_posts;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Internet Explorer ----------------------------------------------------
 */

/* Two GETs of the page (the first does the handshake, the second goes on
 * the authenticated connection without Authorization), then each POST's
 * type 1 with Content-Length 0: forwarded empty as it is (RTM) ... */
static const struct want_req ie_rtm_reqs[] = {
    {"GET", WSDL, NONE, -1, 0, 1, 401}, {"GET", WSDL, T1, -1, 0, 1, 401},
    {"GET", WSDL, T3, -1, 0, 1, 200},   {"GET", WSDL, NONE, -1, 0, 1, 200},
    {"POST", EWS, T1, 0, 0, 1, 500},    {"POST", EWS, T1, 0, 0, 1, 500}};
static const struct want_up ie_rtm_ups[] = {{"GET", WSDL, T3, 0, 200},
                                            {"GET", WSDL, NONE, 0, 200},
                                            {"POST", EWS, T1, 0, 500},
                                            {"POST", EWS, T1, 0, 500}};
static const struct want_post ie_rtm_posts[] = {{CLIENT_OK, 3, 1},
                                                {CLIENT_OK, 1, 1},
                                                {CLIENT_SERVER_ERROR, 1, 1},
                                                {CLIENT_SERVER_ERROR, 1, 1}};

/* ... or challenged again, the body going with the type 3 (the fix). */
static const struct want_req ie_fix_reqs[] = {
    {"GET", WSDL, NONE, -1, 0, 1, 401},
    {"GET", WSDL, T1, -1, 0, 1, 401},
    {"GET", WSDL, T3, -1, 0, 1, 200},
    {"GET", WSDL, NONE, -1, 0, 1, 200},
    {"POST", EWS, T1, 0, 0, 1, 401},
    {"POST", EWS, T3, OOF_LEN, OOF_LEN, 1, 200},
    {"POST", EWS, T1, 0, 0, 1, 401},
    {"POST", EWS, T3, AVAIL_LEN, AVAIL_LEN, 1, 200}};
static const struct want_up ie_fix_ups[] = {{"GET", WSDL, T3, 0, 200},
                                            {"GET", WSDL, NONE, 0, 200},
                                            {"POST", EWS, T3, OOF_LEN, 200},
                                            {"POST", EWS, T3, AVAIL_LEN, 200}};
static const struct want_post ie_fix_posts[] = {
    {CLIENT_OK, 3, 1}, {CLIENT_OK, 1, 1}, {CLIENT_OK, 2, 1}, {CLIENT_OK, 2, 1}};

/* ---- .NET ------------------------------------------------------------------
 */

/* Without connection sharing, every POST: the plain request with Expect
 * refused from its head (the body never sent) and closed by the listener,
 * the handshake on a new connection (type 1 with Content-Length 0), and
 * that connection closed by the client after the answer. The same under
 * both policies: no request ever meets an authenticated connection. */
static const struct want_req dotnet_reqs[] = {
    {"POST", AD, NONE, AD_LEN, 0, 1, 401},
    {"POST", AD, T1, 0, 0, 2, 401},
    {"POST", AD, T3, AD_LEN, AD_LEN, 2, 200},
    {"POST", EWS, NONE, OOF_LEN, 0, 3, 401},
    {"POST", EWS, T1, 0, 0, 4, 401},
    {"POST", EWS, T3, OOF_LEN, OOF_LEN, 4, 200},
    {"POST", EWS, NONE, AVAIL_LEN, 0, 5, 401},
    {"POST", EWS, T1, 0, 0, 6, 401},
    {"POST", EWS, T3, AVAIL_LEN, AVAIL_LEN, 6, 200}};
static const struct want_up dotnet_ups[] = {{"POST", AD, T3, AD_LEN, 200},
                                            {"POST", EWS, T3, OOF_LEN, 200},
                                            {"POST", EWS, T3, AVAIL_LEN, 200}};
static const struct want_post dotnet_posts[] = {
    {CLIENT_OK, 3, 2}, {CLIENT_OK, 3, 4}, {CLIENT_OK, 3, 6}};

/* With UnsafeAuthenticatedConnectionSharing, the authenticated connection
 * stays and later POSTs go on it without Authorization. */
static const struct want_req dotnet_sharing_reqs[] = {
    {"POST", AD, NONE, AD_LEN, 0, 1, 401},
    {"POST", AD, T1, 0, 0, 2, 401},
    {"POST", AD, T3, AD_LEN, AD_LEN, 2, 200},
    {"POST", EWS, NONE, OOF_LEN, OOF_LEN, 2, 200},
    {"POST", EWS, NONE, AVAIL_LEN, AVAIL_LEN, 2, 200}};
static const struct want_up shared_ups[] = {
    {"POST", AD, T3, AD_LEN, 200},
    {"POST", EWS, NONE, OOF_LEN, 200},
    {"POST", EWS, NONE, AVAIL_LEN, 200}};
static const struct want_post shared_posts[] = {
    {CLIENT_OK, 3, 2}, {CLIENT_OK, 1, 2}, {CLIENT_OK, 1, 2}};

/* ---- Java ------------------------------------------------------------------
 */

/* The plain POST refused and closed as .NET's, then the handshake on a new
 * connection with the body on both legs, later POSTs on it without
 * Authorization. */
static const struct want_req java_reqs[] = {
    {"POST", AD, NONE, AD_LEN, 0, 1, 401},
    {"POST", AD, T1, AD_LEN, AD_LEN, 2, 401},
    {"POST", AD, T3, AD_LEN, AD_LEN, 2, 200},
    {"POST", EWS, NONE, OOF_LEN, OOF_LEN, 2, 200},
    {"POST", EWS, NONE, AVAIL_LEN, AVAIL_LEN, 2, 200}};

#define RTM PROXY_POLICY_PER_CONNECTION
#define FIX PROXY_POLICY_PER_REQUEST

static const struct field_case field_cases[] = {
    {"ie rtm", CLIENT_KIND_IE, false, RTM, ie_rtm_reqs, N(ie_rtm_reqs),
     ie_rtm_ups, N(ie_rtm_ups), ie_rtm_posts, N(ie_rtm_posts), 1, false, true,
     1, 1, 2, 2},
    {"ie fix", CLIENT_KIND_IE, false, FIX, ie_fix_reqs, N(ie_fix_reqs),
     ie_fix_ups, N(ie_fix_ups), ie_fix_posts, N(ie_fix_posts), 1, false, false,
     3, 3, 0, 0},
    {"dotnet rtm", CLIENT_KIND_DOTNET, false, RTM, dotnet_reqs, N(dotnet_reqs),
     dotnet_ups, N(dotnet_ups), dotnet_posts, N(dotnet_posts), 6, true, false,
     3, 3, 0, 0},
    {"dotnet fix", CLIENT_KIND_DOTNET, false, FIX, dotnet_reqs, N(dotnet_reqs),
     dotnet_ups, N(dotnet_ups), dotnet_posts, N(dotnet_posts), 6, true, false,
     3, 3, 0, 0},
    {"dotnet sharing rtm", CLIENT_KIND_DOTNET, true, RTM, dotnet_sharing_reqs,
     N(dotnet_sharing_reqs), shared_ups, N(shared_ups), shared_posts,
     N(shared_posts), 2, false, false, 1, 1, 0, 0},
    {"dotnet sharing fix", CLIENT_KIND_DOTNET, true, FIX, dotnet_sharing_reqs,
     N(dotnet_sharing_reqs), shared_ups, N(shared_ups), shared_posts,
     N(shared_posts), 2, false, false, 1, 1, 0, 0},
    {"java rtm", CLIENT_KIND_JAVA, false, RTM, java_reqs, N(java_reqs),
     shared_ups, N(shared_ups), shared_posts, N(shared_posts), 2, false, false,
     1, 1, 0, 0},
    {"java fix", CLIENT_KIND_JAVA, false, FIX, java_reqs, N(java_reqs),
     shared_ups, N(shared_ups), shared_posts, N(shared_posts), 2, false, false,
     1, 1, 0, 0}};

/* ---- the header blocks -----------------------------------------------------
 */

#define HOST "Host: autodiscover.fabrikam.com\r\n"
#define IE_UA                                                                  \
  "User-Agent: Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; .NET CLR "   \
  "2.0.50727)\r\n"
#define DOTNET_UA                                                              \
  "User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; MS Web Services Client "     \
  "Protocol 2.0.50727.3053)\r\n"
#define JAVA_UA "User-Agent: Apache-HttpClient/4.5.13 (Java/11.0.20)\r\n"
#define AUTH "Authorization: NTLM ...\r\n" /* the token masked */

/* Writes into out the header block the client of kind must send for w,
 * with its NTLM token masked as mask_ntlm does. */
static void want_head(enum client_kind kind, const struct want_req *w,
                      char *out, size_t len)
{
  const char *auth = w->auth == NONE ? "" : AUTH;
  char cl[48] = "";

  if(w->length >= 0)
    snprintf(cl, sizeof(cl), "Content-Length: %d\r\n", w->length);
  switch(kind) {
  case CLIENT_KIND_IE:
    snprintf(out, len,
             "%s %s HTTP/1.1\r\nAccept: */*\r\n%s" IE_UA HOST
             "%sConnection: Keep-Alive\r\nCache-Control: no-cache\r\n%s\r\n",
             w->method, w->path,
             w->length >= 0 ? "Content-Type: text/xml; charset=utf-8\r\n" : "",
             cl, auth);
    break;
  case CLIENT_KIND_DOTNET:
    snprintf(out, len,
             "%s %s HTTP/1.1\r\n" DOTNET_UA
             "Content-Type: text/xml; charset=utf-8\r\n%s" HOST
             "%sExpect: 100-continue\r\nConnection: Keep-Alive\r\n\r\n",
             w->method, w->path, auth, cl);
    break;
  default: /* java */
    snprintf(
        out, len,
        "%s %s HTTP/1.1\r\n%sContent-Type: text/xml; charset=UTF-8\r\n" HOST
        "Connection: Keep-Alive\r\n" JAVA_UA "Expect: 100-continue\r\n%s\r\n",
        w->method, w->path, cl, auth);
    break;
  }
}

/* Copies the header block at the start of text into out with the token of
 * an "Authorization: NTLM <token>" line replaced by "...". */
static void mask_ntlm(const char *text, char *out, size_t len)
{
  static const char field[] = "\r\nAuthorization: NTLM ";
  const char *end = strstr(text, "\r\n\r\n");
  const char *at = strstr(text, field);
  size_t head = end ? (size_t)(end - text) + 4 : strlen(text);

  if(at && at < end) {
    const char *eol = strstr(at + 2, "\r\n");
    snprintf(out, len, "%.*s...%.*s", (int)(at + sizeof(field) - 1 - text),
             text, (int)(text + head - eol), eol);
  }
  else
    snprintf(out, len, "%.*s", (int)head, text);
}

/* ---- the test --------------------------------------------------------------
 */

/* What the i-th request of a session of kind is: ie's two GETs of the page
 * or autodiscover, then the EWS POSTs from GetUserOofSettings on. */
static enum client_post_kind want_kind(enum client_kind kind, size_t i)
{
  size_t lead = kind == CLIENT_KIND_IE ? 2 : 1;

  if(i < lead)
    return kind == CLIENT_KIND_IE ? CLIENT_POST_PAGE : CLIENT_POST_AUTODISCOVER;
  return (i - lead) % 2 ? CLIENT_POST_AVAILABILITY : CLIENT_POST_OOF;
}

/* Asserts the listener's (hop CLIENT_PROXY) and Exchange's (hop
 * PROXY_BACKEND) view of the session in e's trace against f. */
static void assert_servers_saw(struct kbt_env *e, const struct field_case *f)
{
  size_t i, nreq = 0, nup = 0;

  for(i = 0; i < e->trace.n; i++) {
    const struct kbt_event *ev = &e->trace.ev[i];
    if(ev->kind != KB_TRACE_EXCHANGE || ev->side != KB_SIDE_SERVER)
      continue;
    if(ev->hop == KB_HOP_CLIENT_PROXY) {
      const struct want_req *w = &f->reqs[nreq];
      ck_assert_msg(nreq < f->nreqs, "%s: more than %zu requests", f->name,
                    f->nreqs);
      ck_assert_str_eq(ev->method, w->method);
      ck_assert_str_eq(ev->path, w->path);
      ck_assert_msg(ev->ex.req_auth == w->auth,
                    "%s: request %zu: Authorization %d, not %d", f->name,
                    nreq + 1, (int)ev->ex.req_auth, (int)w->auth);
      ck_assert_msg(ev->ex.req_body_len == w->read,
                    "%s: request %zu: the listener read %zu bytes, not %zu",
                    f->name, nreq + 1, ev->ex.req_body_len, w->read);
      ck_assert_int_eq(ev->ex.status, w->status);
      ck_assert_uint_eq(ev->conn, w->conn);
      nreq++;
    }
    else {
      const struct want_up *u = &f->ups[nup];
      ck_assert_msg(nup < f->nups, "%s: more than %zu upstream requests",
                    f->name, f->nups);
      ck_assert_str_eq(ev->method, u->method);
      ck_assert_str_eq(ev->path, u->path);
      ck_assert_int_eq(ev->ex.req_auth, u->auth);
      ck_assert_uint_eq(ev->ex.req_body_len, u->body);
      ck_assert_int_eq(ev->ex.status, u->status);
      nup++;
    }
  }
  ck_assert_uint_eq(nreq, f->nreqs);
  ck_assert_uint_eq(nup, f->nups);
}

/* Asserts the client's own trace of origin against f: each request's
 * header block byte for byte (tokens masked), its Authorization by type,
 * its connection and answer, and the body bytes it sent. */
static void assert_client_sent(struct kbt_trace *rec, const char *origin,
                               const struct field_case *f)
{
  size_t i, nhead = 0, nex = 0, body = 0, want_body = 0;
  char got[4096], want[4096];

  for(i = 0; i < rec->n; i++) {
    const struct kbt_event *ev = &rec->ev[i];
    if(strcmp(ev->origin, origin))
      continue;
    if(ev->kind == KB_TRACE_SEND &&
       (!strncmp(ev->text, "GET ", 4) || !strncmp(ev->text, "POST ", 5))) {
      ck_assert_msg(nhead < f->nreqs, "%s: more than %zu requests", f->name,
                    f->nreqs);
      mask_ntlm(ev->text, got, sizeof(got));
      want_head(f->kind, &f->reqs[nhead], want, sizeof(want));
      ck_assert_msg(!strcmp(got, want), "%s: request %zu:\n%s\nnot\n%s",
                    f->name, nhead + 1, got, want);
      ck_assert_uint_eq(ev->conn, f->reqs[nhead].conn);
      want_body += f->reqs[nhead].read;
      nhead++;
    }
    else if(ev->kind == KB_TRACE_SEND)
      body += ev->len;
    else if(ev->kind == KB_TRACE_EXCHANGE) {
      const struct want_req *w = &f->reqs[nex];
      ck_assert_uint_lt(nex, f->nreqs);
      ck_assert_int_eq(ev->ex.req_auth, w->auth);
      ck_assert_int_eq(ev->ex.status, w->status);
      ck_assert_uint_eq(ev->conn, w->conn);
      nex++;
    }
  }
  ck_assert_uint_eq(nhead, f->nreqs);
  ck_assert_uint_eq(nex, f->nreqs);
  /* A body goes only when the listener asks for it (100 Continue) or
   * with the request (ie's type 3): exactly what the listener read. */
  ck_assert_uint_eq(body, want_body);
}

START_TEST(test_field_kind)
{
  const struct field_case *f = &field_cases[_i];
  struct kbt_env e;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  struct backend_stats bs;
  struct proxy_stats ps;
  size_t i;

  cl_env_start(&e, f->policy);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(e.url, 30, "alice", KBT_ALICE_PASSWORD);
  cc.kind = f->kind;
  cc.connection_sharing = f->sharing;
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  client_run_session(c);
  ck_assert_uint_eq(client_results_count(c), f->nposts);
  for(i = 0; i < f->nposts; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_msg(r->outcome == f->posts[i].outcome, "%s: POST %zu: %s: %s",
                  f->name, i, client_outcome_name(r->outcome), r->detail);
    ck_assert_uint_eq(r->legs, f->posts[i].legs);
    ck_assert_uint_eq(r->connection, f->posts[i].connection);
    ck_assert_int_eq(r->kind, want_kind(f->kind, i));
  }
  client_view(c, &v);
  ck_assert(v.integration_error == f->error);
  ck_assert(v.presence_available == !f->error);
  ck_assert(v.scheduling_available == !f->error);
  ck_assert_uint_eq(v.connections, f->connections);
  if(f->serial) /* dotnet without sharing closes each connection itself */
    kbt_assert_serial_conns(&rec, "client 30", f->connections);
  else
    ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, "client 30"),
                      f->connections - 1);
  client_destroy(c);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_OPEN, "client 30"),
                    f->connections);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, "client 30"),
                    f->connections);
  assert_client_sent(&rec, "client 30", f);

  /* The servers are done once the client has its answers. */
  proxy_stats(e.px, &ps);
  ck_assert_uint_eq(ps.connections, f->connections);
  ck_assert_uint_eq(ps.challenges, f->challenges);
  ck_assert_uint_eq(ps.auth_ok, f->auth_ok);
  ck_assert_uint_eq(ps.reauth_skipped, f->reauth_skipped);
  backend_stats(e.be, &bs);
  ck_assert_uint_eq(bs.empty_posts, f->empty_posts);
  /* What the kind table tells people (the demo's verdict, the run's
   * expectations) is what the kind does to an ISA as shipped. */
  if(f->policy == PROXY_POLICY_PER_CONNECTION)
    ck_assert_msg((bs.empty_posts > 0) == client_kind_info(f->kind)->holds_body,
                  "%s: %" PRIu64 " empty POSTs, yet holds_body is %d", f->name,
                  bs.empty_posts, client_kind_info(f->kind)->holds_body);
  /* The listener may still trace the close of a connection: its view is
   * read once it has stopped. */
  kbt_env_stop_servers(&e);
  assert_servers_saw(&e, f);
  kbt_trace_free(&rec);
  kbt_env_stop(&e);
}
END_TEST

/* The kind table: a row per kind in the enum's order, each name read
 * back, as many rows as CLIENT_KIND_NAMES names. */
START_TEST(test_kind_table)
{
  const struct client_kind_info *k;
  enum client_kind back;
  unsigned n = 0, named = 1;
  const char *p;

  for(; (k = client_kind_info((enum client_kind)n)) != NULL; n++) {
    ck_assert_int_eq(k->kind, (int)n);
    ck_assert_int_eq(client_kind_parse(k->name, &back), 0);
    ck_assert_int_eq(back, k->kind);
    ck_assert_str_eq(client_kind_name(k->kind), k->name);
    ck_assert_str_eq(client_kind_label(k->kind), k->label);
    ck_assert(k->product[0] && k->pattern[0] && k->lead[0] && k->symptom[0]);
    /* Its User-Agent names it (one-shot's is Communicator's). */
    ck_assert_str_eq(
        client_kind_by_user_agent(k->user_agent, strlen(k->user_agent))->label,
        k->label);
  }
  for(p = CLIENT_KIND_NAMES; *p; p++)
    named += *p == ',';
  named += strstr(CLIENT_KIND_NAMES, " or ") != NULL;
  ck_assert_uint_eq(n, named);
  ck_assert_int_eq(client_kind_parse("netscape", &back), -1);
  ck_assert_ptr_null(client_kind_by_user_agent("curl/7.88.1", 11));
  ck_assert_ptr_null(client_kind_by_user_agent("Apache-HttpClient", 17));
}
END_TEST

Suite *client_field_suite(void)
{
  Suite *s = suite_create("field");
  TCase *tc = tcase_create("field");

  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_field_kind, 0, (int)N(field_cases));
  tcase_add_test(tc, test_kind_table);
  suite_add_tcase(s, tc);
  return s;
}
