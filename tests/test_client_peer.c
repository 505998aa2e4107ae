/*
 * test_client_peer.c - Communicator against a scripted peer
 * (test_client.h): the answers our own servers never give - a bare 401, a
 * 404, a broken challenge, an unusable EWS URL, connections closed after
 * every response or dropped while idle, Basic offered, several schemes
 * offered at once.
 */
#include <check.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/client.h"
#include "kbt.h"
#include "rc.h"
#include "test_client.h"

/* ---- a scripted peer ---------------------------------------------------- */

/* Answers each request it reads with the next canned response; closes the
 * connection after a response whose close flag is set, and instead of
 * answering when the step has no response (a listener that found the
 * connection idle too long). Serves one connection at a time, which is all
 * one client uses. */
#define PEER_STEPS 12
struct peer_step {
  char *response; /* malloc'd; NULL: close without answering */
  bool close_after;
};

struct peer {
  int lfd;
  int stop[2];
  uint16_t port;
  struct peer_step steps[PEER_STEPS];
  size_t nsteps;
  pthread_t thread;
  /* Read after join. */
  unsigned accepts;
  unsigned requests;
  size_t body_len[PEER_STEPS];
  bool has_auth[PEER_STEPS]; /* the request carried Authorization */
  char buf[65536];
};

/* Waits for fd to be readable or the stop pipe to fire. Returns true when
 * fd is readable. */
static bool peer_wait(struct peer *p, int fd)
{
  struct pollfd pfd[2] = {{fd, POLLIN, 0}, {p->stop[0], POLLIN, 0}};
  if(poll(pfd, 2, 20000) <= 0 || (pfd[1].revents & POLLIN))
    return false;
  return true;
}

/* Reads one request into buf. Returns its body length, or -1 when the
 * client closed the connection (or stop fired) first. */
static long peer_read_request(struct peer *p, int fd, char *buf, size_t cap)
{
  size_t have = 0;
  for(;;) {
    char *end;
    ssize_t n;
    buf[have] = '\0';
    end = strstr(buf, "\r\n\r\n");
    if(end) {
      const char *cl = strstr(buf, "\r\nContent-Length: ");
      size_t hdr = (size_t)(end + 4 - buf);
      size_t body = cl ? strtoul(cl + 18, NULL, 10) : 0;
      if(have >= hdr + body)
        return (long)body;
    }
    if(have + 1 >= cap || !peer_wait(p, fd))
      return -1;
    n = read(fd, buf + have, cap - 1 - have);
    if(n <= 0)
      return -1;
    have += (size_t)n;
  }
}

/* Sends all of s; false when the client went away (no SIGPIPE). */
static bool peer_send(int fd, const char *s)
{
  size_t len = strlen(s), off = 0;
  while(off < len) {
    ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
    if(n <= 0)
      return false;
    off += (size_t)n;
  }
  return true;
}

static void *peer_main(void *arg)
{
  struct peer *p = arg;
  char *buf = p->buf;
  int conn = -1;
  size_t i = 0;
  while(i < p->nsteps) {
    long body;
    if(conn < 0) {
      if(!peer_wait(p, p->lfd))
        break;
      conn = accept(p->lfd, NULL, NULL);
      if(conn < 0)
        break;
      p->accepts++;
    }
    body = peer_read_request(p, conn, buf, sizeof(p->buf));
    if(body < 0) {
      close(conn);
      conn = -1;
      continue;
    }
    p->body_len[i] = (size_t)body;
    p->has_auth[i] = strstr(buf, "\r\nAuthorization: ") != NULL;
    p->requests++;
    if(p->steps[i].response && !peer_send(conn, p->steps[i].response))
      break;
    if(p->steps[i].close_after || !p->steps[i].response) {
      close(conn);
      conn = -1;
    }
    i++;
  }
  /* Hold the last connection until the client closes it. */
  if(conn >= 0) {
    while(peer_wait(p, conn) && read(conn, buf, sizeof(p->buf)) > 0)
      ;
    close(conn);
  }
  return NULL;
}

static void peer_add(struct peer *p, bool close_after, const char *status,
                     const char *headers, const char *body)
{
  size_t n = strlen(status) + strlen(headers) + strlen(body) + 128;
  char *s = malloc(n);
  ck_assert_ptr_nonnull(s);
  snprintf(s, n, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n%s", status,
           headers, strlen(body), body);
  ck_assert_uint_lt(p->nsteps, PEER_STEPS);
  p->steps[p->nsteps].response = s;
  p->steps[p->nsteps].close_after = close_after;
  p->nsteps++;
}

/* Adds a step that reads the request and closes the connection without
 * answering. */
static void peer_add_drop(struct peer *p)
{
  ck_assert_uint_lt(p->nsteps, PEER_STEPS);
  p->steps[p->nsteps].response = NULL;
  p->steps[p->nsteps].close_after = true;
  p->nsteps++;
}

/* The 401 of a listener accepting Integrated credentials, to a request
 * without Authorization. */
#define PEER_NTLM_OFFER "WWW-Authenticate: NTLM\r\n"

static void peer_start(struct peer *p)
{
  p->lfd = rc_loopback(true, &p->port);
  ck_assert_int_eq(pipe(p->stop), 0);
  ck_assert_int_eq(pthread_create(&p->thread, NULL, peer_main, p), 0);
}

/* Stops the peer (after the client is destroyed) and frees the script. */
static void peer_stop(struct peer *p)
{
  size_t i;
  ck_assert_int_eq(write(p->stop[1], "x", 1), 1);
  pthread_join(p->thread, NULL);
  close(p->stop[0]);
  close(p->stop[1]);
  close(p->lfd);
  for(i = 0; i < p->nsteps; i++)
    free(p->steps[i].response);
}

static const char autodiscover_ok_body[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
    "autodiscover/responseschema/2006\">"
    "<Response xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
    "outlook/responseschema/2006a\"><Account><AccountType>email"
    "</AccountType><Action>settings</Action>"
    "<Protocol><Type>EXPR</Type><ASUrl>https://x/wrong</ASUrl></Protocol>"
    "<Protocol><Type> EXCH </Type>"
    "<ASUrl> https://mail.contoso.com/EWS/Other.asmx </ASUrl></Protocol>"
    "</Account></Response></Autodiscover>";

static const char oof_ok_body[] =
    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<s:Body><GetUserOofSettingsResponse xmlns=\"http://schemas.microsoft."
    "com/exchange/services/2006/messages\"><ResponseMessage "
    "ResponseClass=\"Success\"><ResponseCode>NoError</ResponseCode>"
    "</ResponseMessage></GetUserOofSettingsResponse></s:Body></s:Envelope>";

static const char availability_ok_body[] =
    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
    "<s:Body><GetUserAvailabilityResponse xmlns=\"http://schemas.microsoft."
    "com/exchange/services/2006/messages\"><FreeBusyResponseArray>"
    "<FreeBusyResponse/></FreeBusyResponseArray>"
    "</GetUserAvailabilityResponse></s:Body></s:Envelope>";

/* A listener without authentication that closes the connection after each
 * response, with or without saying so: libcurl reconnects, the client
 * counts a connection per POST, and the EWS POSTs go to the ASUrl's path
 * on the listener. */
START_TEST(test_peer_reconnects)
{
  const char *hdr = _i ? "Connection: close\r\n" : "";
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  char url[64];
  size_t i;
  unsigned conn = 0;

  memset(&p, 0, sizeof(p));
  peer_add(&p, true, "200 OK", hdr, autodiscover_ok_body);
  peer_add(&p, true, "200 OK", hdr, oof_ok_body);
  peer_add(&p, true, "200 OK", hdr, availability_ok_body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(url, 11, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, 1);
    ck_assert_int_eq(r->leg1_status, 200);
    ck_assert_uint_eq(r->connection, i + 1);
    ck_assert(r->new_connection);
  }
  client_view(c, &v);
  ck_assert_str_eq(v.ews_url, "https://mail.contoso.com/EWS/Other.asmx");
  ck_assert(v.presence_available && v.scheduling_available);
  ck_assert(!v.integration_error);
  ck_assert_uint_eq(v.connections, 3);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.accepts, 3);
  ck_assert_uint_eq(p.requests, 3);
  /* The listener never asked: every POST went once, with its body and no
   * Authorization, each on its own new connection. */
  for(i = 0; i < 3; i++) {
    ck_assert_uint_gt(p.body_len[i], 0);
    ck_assert(!p.has_auth[i]);
  }
  ck_assert_uint_lt(
      kbt_find_send(&rec, "client 11", "POST /EWS/Other.asmx ", 0), rec.n);
  /* OPEN n, CLOSE n, in order, for n = 1..3. */
  for(i = 0; i < rec.n; i++) {
    if(rec.ev[i].kind == KB_TRACE_OPEN) {
      ck_assert_uint_eq(rec.ev[i].conn, conn + 1);
      conn++;
    }
    else if(rec.ev[i].kind == KB_TRACE_CLOSE)
      ck_assert_uint_eq(rec.ev[i].conn, conn);
  }
  ck_assert_uint_eq(conn, 3);
  ck_assert_uint_eq(kbt_count_from(&rec, KB_TRACE_CLOSE, NULL), 3);
  kbt_trace_free(&rec);
}
END_TEST

/* Answers our servers never give, each ending the session at
 * autodiscover with the outcome the case promises. With after_offer the
 * peer first answers the plain request with a 401 offering NTLM, so the
 * odd answer meets the type 1 (leg 2); otherwise it meets the plain
 * request. */
struct odd_case {
  bool after_offer;
  const char *status;
  const char *headers;
  const char *body;
  enum client_outcome outcome;
  int final_status;
  const char *detail; /* a substring */
};

static const struct odd_case odd_cases[] = {
    {true, "401 Unauthorized", "WWW-Authenticate: NTLM\r\n", "",
     CLIENT_AUTH_FAILED, 401, "without an NTLM challenge"},
    {true, "401 Unauthorized", "WWW-Authenticate: Basic realm=\"x\"\r\n", "",
     CLIENT_AUTH_FAILED, 401, "without an NTLM challenge"},
    {true, "401 Unauthorized", "WWW-Authenticate: NTLM !!!notbase64\r\n", "",
     CLIENT_PROTOCOL_ERROR, 401, "bad NTLM challenge"},
    {true, "401 Unauthorized",
     "WWW-Authenticate: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgK"
     "AAAADw==\r\n",
     "", CLIENT_PROTOCOL_ERROR, 401, "not type 2"},
    {true, "404 Not Found", "", "nope", CLIENT_PROTOCOL_ERROR, 404,
     "unexpected HTTP 404 to the type 1"},
    {true, "503 Service Unavailable", "", "", CLIENT_SERVER_ERROR, 503,
     "HTTP 503 to the body-less type 1"},
    {false, "401 Unauthorized", "WWW-Authenticate: Negotiate\r\n", "",
     CLIENT_AUTH_FAILED, 401, "offering neither NTLM nor Basic"},
    {false, "401 Unauthorized", "", "", CLIENT_AUTH_FAILED, 401,
     "offering neither NTLM nor Basic"},
    {false, "404 Not Found", "", "nope", CLIENT_PROTOCOL_ERROR, 404,
     "unexpected HTTP 404 to the POST"},
    {false, "503 Service Unavailable", "", "", CLIENT_SERVER_ERROR, 503,
     "HTTP 503 to the POST"},
    {false, "200 OK", "", "<not xml", CLIENT_PROTOCOL_ERROR, 200, "no EWS URL"},
    {false, "200 OK", "",
     "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
     "autodiscover/responseschema/2006\"><Response><Error/></Response>"
     "</Autodiscover>",
     CLIENT_PROTOCOL_ERROR, 200, "no EWS URL"},
    {false, "204 No Content", "", "", CLIENT_PROTOCOL_ERROR, 204, "HTTP 204"},
};

START_TEST(test_peer_odd_answers)
{
  const struct odd_case *oc = &odd_cases[_i];
  struct peer p;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  struct client_view v;
  char url[64];

  memset(&p, 0, sizeof(p));
  if(oc->after_offer)
    peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
  peer_add(&p, false, oc->status, oc->headers, oc->body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  cc = cl_config(url, 12, "alice", KBT_ALICE_PASSWORD);
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_msg(r.outcome == oc->outcome, "case %d: %s (%s)", _i,
                client_outcome_name(r.outcome), r.detail);
  ck_assert_uint_eq(r.legs, oc->after_offer ? 2 : 1);
  ck_assert_int_eq(r.leg1_status, oc->after_offer ? 401 : oc->final_status);
  ck_assert_int_eq(r.final_status, oc->final_status);
  ck_assert_msg(strstr(r.detail, oc->detail), "case %d: detail '%s'", _i,
                r.detail);
  ck_assert_ptr_null(strchr(r.detail, '\n'));
  ck_assert_int_eq(client_step(c, &r), 0);
  client_view(c, &v);
  ck_assert(v.integration_error && !v.autodiscover_ok);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.requests, oc->after_offer ? 2 : 1);
  /* The plain request carries the body; a type 1 never does. */
  ck_assert_uint_gt(p.body_len[0], 0);
  ck_assert(!p.has_auth[0]);
  if(oc->after_offer) {
    ck_assert_uint_eq(p.body_len[1], 0);
    ck_assert(p.has_auth[1]);
  }
}
END_TEST

/* What a peer can make the client hold is capped: a body past 1 MiB and an
 * NTLM challenge past 8 KiB are refused as protocol errors. */
START_TEST(test_peer_oversized)
{
  struct peer p;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  char url[64];
  size_t n = _i ? 9000 : 1024 * 1024 + 1;
  char *big = malloc(n + 64);
  ck_assert_ptr_nonnull(big);
  memset(&p, 0, sizeof(p));
  if(_i) {
    memcpy(big, "WWW-Authenticate: NTLM ", 23);
    memset(big + 23, 'A', n);
    memcpy(big + 23 + n, "\r\n", 3);
    peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
    peer_add(&p, false, "401 Unauthorized", big, "");
  }
  else {
    memset(big, 'x', n);
    big[n] = '\0';
    peer_add(&p, false, "200 OK", "", big);
  }
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  cc = cl_config(url, 14, "alice", KBT_ALICE_PASSWORD);
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_PROTOCOL_ERROR);
  ck_assert_uint_eq(r.legs, _i ? 2 : 1);
  ck_assert_str_eq(r.detail,
                   _i ? "the NTLM challenge is longer than 8192 bytes"
                      : "leg 1: the response body is larger than 1048576 "
                        "bytes");
  ck_assert_int_eq(client_step(c, &r), 0);
  client_destroy(c);
  peer_stop(&p);
  free(big);
}
END_TEST

/* EWS answers a 200 the client cannot use: a protocol error, and the
 * information stays unavailable. The type 3 goes out with the body after a
 * challenge built by ntlm.h, on the same connection. */
START_TEST(test_peer_unusable_ews)
{
  static const uint8_t server_challenge[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  struct ntlm_server_info info = {"FABRIKAM", "ISA01", NULL, NULL};
  struct ntlm_bytes type2 = {NULL, 0};
  struct peer p;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  char url[64], www[1024];
  char *value;
  const struct client_post_result *r;

  ck_assert_int_eq(ntlm_server_challenge(&info, NTLM_COMMUNICATOR_FLAGS,
                                         server_challenge, 0, &type2),
                   NTLM_OK);
  value = ntlm_header_format(NTLM_SCHEME_NTLM, type2.data, type2.len);
  ck_assert_ptr_nonnull(value);
  snprintf(www, sizeof(www), "WWW-Authenticate: %s\r\n", value);
  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", autodiscover_ok_body);
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", availability_ok_body); /* wrong op */
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", oof_ok_body); /* wrong op */
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  cc = cl_config(url, 13, "alice", KBT_ALICE_PASSWORD);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 2);
  r = client_result(c, 0);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->legs, 3);
  r = client_result(c, 1);
  ck_assert_int_eq(r->outcome, CLIENT_PROTOCOL_ERROR);
  ck_assert_uint_eq(r->legs, 2);
  ck_assert_int_eq(r->final_status, 200);
  ck_assert_ptr_nonnull(strstr(r->detail, "ResponseClass=\"Success\""));
  r = client_result(c, 2);
  ck_assert_int_eq(r->outcome, CLIENT_PROTOCOL_ERROR);
  ck_assert_ptr_nonnull(strstr(r->detail, "FreeBusyResponse"));
  client_view(c, &v);
  ck_assert(v.autodiscover_ok && v.integration_error);
  ck_assert(!v.presence_available && !v.scheduling_available);
  ck_assert_uint_eq(v.connections, 1);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.accepts, 1);
  ck_assert_uint_eq(p.requests, 7);
  ck_assert_uint_gt(p.body_len[0], 0);
  ck_assert(!p.has_auth[0]);
  ck_assert_uint_eq(p.body_len[1], 0);
  ck_assert_uint_gt(p.body_len[2], 0);
  ck_assert_uint_eq(p.body_len[3], 0);
  ck_assert_uint_gt(p.body_len[4], 0);
  free(value);
  ntlm_bytes_free(&type2);
}
END_TEST

/* The listener closes a kept-alive connection without answering (it found
 * it idle too long); libcurl sends the type 1 again on a new connection by
 * itself. The result names the new connection, which counts as opened by
 * the POST; the trace shows the unanswered request on the old one, its
 * close, the new one's open, and a note. */
START_TEST(test_peer_drops_idle)
{
  static const uint8_t server_challenge[8] = {8, 7, 6, 5, 4, 3, 2, 1};
  struct ntlm_server_info info = {"FABRIKAM", "ISA01", NULL, NULL};
  struct ntlm_bytes type2 = {NULL, 0};
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_view v;
  char url[64], www[1024];
  char *value;
  const struct client_post_result *r;
  size_t i, n = 0;
  static const struct {
    uint64_t conn;
    enum kb_auth req;
    int status;
  } want[] = {{1, KB_AUTH_NONE, 401},
              {1, KB_AUTH_NTLM_NEGOTIATE, 401},
              {1, KB_AUTH_NTLM_AUTHENTICATE, 200},
              {1, KB_AUTH_NTLM_NEGOTIATE, 0},
              {2, KB_AUTH_NTLM_NEGOTIATE, 401},
              {2, KB_AUTH_NTLM_AUTHENTICATE, 200},
              {2, KB_AUTH_NTLM_NEGOTIATE, 401},
              {2, KB_AUTH_NTLM_AUTHENTICATE, 200}};

  ck_assert_int_eq(ntlm_server_challenge(&info, NTLM_COMMUNICATOR_FLAGS,
                                         server_challenge, 0, &type2),
                   NTLM_OK);
  value = ntlm_header_format(NTLM_SCHEME_NTLM, type2.data, type2.len);
  ck_assert_ptr_nonnull(value);
  snprintf(www, sizeof(www), "WWW-Authenticate: %s\r\n", value);
  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized", PEER_NTLM_OFFER, "");
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", autodiscover_ok_body);
  peer_add_drop(&p);
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", oof_ok_body);
  peer_add(&p, false, "401 Unauthorized", www, "");
  peer_add(&p, false, "200 OK", "", availability_ok_body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(url, 19, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  r = client_result(c, 1);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->legs, 2);
  ck_assert_int_eq(r->leg1_status, 401);
  ck_assert_uint_eq(r->connection, 2);
  ck_assert(r->new_connection);
  r = client_result(c, 2);
  ck_assert_int_eq(r->outcome, CLIENT_OK);
  ck_assert_uint_eq(r->connection, 2);
  ck_assert(!r->new_connection);
  client_view(c, &v);
  ck_assert_uint_eq(v.connections, 2);
  ck_assert(!v.integration_error);
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.accepts, 2);
  ck_assert_uint_eq(p.requests, 8);

  kbt_assert_serial_conns(&rec, "client 19", 2);
  for(i = 0; i < rec.n; i++) {
    const struct kbt_event *ev = &rec.ev[i];
    if(ev->kind != KB_TRACE_EXCHANGE)
      continue;
    ck_assert_uint_lt(n, 8);
    ck_assert_uint_eq(ev->conn, want[n].conn);
    ck_assert_int_eq(ev->ex.req_auth, want[n].req);
    ck_assert_int_eq(ev->ex.status, want[n].status);
    n++;
  }
  ck_assert_uint_eq(n, 8);
  ck_assert_ptr_nonnull(kbt_find_note(&rec, "client 19",
                                      "connection 1 was closed without an "
                                      "answer; libcurl sent the request "
                                      "again on connection 2"));
  kbt_trace_free(&rec);
  free(value);
  ntlm_bytes_free(&type2);
}
END_TEST

/* A listener that asks for Basic: the plain first request learns it, then
 * every POST carries the credentials and its body in one leg. */
START_TEST(test_peer_basic)
{
  static const char ews_basic[] =
      "POST /EWS/Other.asmx HTTP/1.1\r\n"
      "Accept: text/xml\r\n"
      "Content-Type: text/xml; charset=utf-8\r\n"
      "User-Agent: Microsoft+Office+Communicator/2.0\r\n"
      "Host: autodiscover.fabrikam.com\r\n"
      "Content-Length: %zu\r\n"
      "Connection: Keep-Alive\r\n"
      "Cache-Control: no-cache\r\n"
      "Authorization: Basic RkFCUklLQU1cYWxpY2U6UGFzc3cwcmQh\r\n"
      "\r\n";
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  char url[64], expect[512];
  size_t i, n = 0;

  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized",
           "WWW-Authenticate: Basic realm=\"autodiscover.fabrikam.com\"\r\n",
           "");
  peer_add(&p, false, "200 OK", "", autodiscover_ok_body);
  peer_add(&p, false, "200 OK", "", oof_ok_body);
  peer_add(&p, false, "200 OK", "", availability_ok_body);
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(url, 20, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_uint_eq(client_run_session(c), 0);
  for(i = 0; i < 3; i++) {
    const struct client_post_result *r = client_result(c, i);
    ck_assert_int_eq(r->outcome, CLIENT_OK);
    ck_assert_uint_eq(r->legs, i ? 1 : 2);
    ck_assert_int_eq(r->leg1_status, i ? 200 : 401);
    ck_assert_uint_eq(r->connection, 1);
  }
  client_destroy(c);
  peer_stop(&p);
  ck_assert_uint_eq(p.requests, 4);
  for(i = 0; i < 4; i++) {
    ck_assert_uint_gt(p.body_len[i], 0);
    ck_assert(p.has_auth[i] == (i > 0));
  }
  /* The first EWS POST, byte for byte. */
  snprintf(expect, sizeof(expect), ews_basic, p.body_len[2]);
  i = kbt_find_send(&rec, "client 20", "POST /EWS/", 0);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_str_eq(rec.ev[i].text, expect);
  for(i = 0; i < rec.n; i++) {
    if(rec.ev[i].kind != KB_TRACE_EXCHANGE)
      continue;
    ck_assert_int_eq(rec.ev[i].ex.req_auth, n ? KB_AUTH_OTHER : KB_AUTH_NONE);
    ck_assert_int_eq(rec.ev[i].ex.resp_auth, n ? KB_AUTH_NONE : KB_AUTH_OTHER);
    ck_assert_uint_eq(rec.ev[i].ex.req_body_len, p.body_len[n]);
    n++;
  }
  ck_assert_uint_eq(n, 4);
  kbt_trace_free(&rec);
}
END_TEST

/* Which scheme the plain request's 401 teaches when it offers several:
 * NTLM whenever it is there, Basic otherwise. */
struct offer_case {
  const char *headers;
  const char *auth_prefix; /* of the second request's Authorization */
  const char *detail;      /* the peer then refuses: a substring */
};

static const struct offer_case offer_cases[] = {
    {"WWW-Authenticate: Negotiate\r\nWWW-Authenticate: NTLM\r\n",
     "Authorization: NTLM TlRMTVNTUAAB", "without an NTLM challenge"},
    {"WWW-Authenticate: Basic realm=\"x\"\r\nWWW-Authenticate: NTLM\r\n",
     "Authorization: NTLM TlRMTVNTUAAB", "without an NTLM challenge"},
    {"WWW-Authenticate: Negotiate\r\nWWW-Authenticate: Basic realm=\"x\"\r\n",
     "Authorization: Basic ", "HTTP 401 to Basic credentials"},
};

START_TEST(test_peer_offers)
{
  const struct offer_case *oc = &offer_cases[_i];
  struct peer p;
  struct kbt_trace rec;
  struct client_config cc;
  struct client *c;
  struct client_post_result r;
  char url[64];
  size_t i;

  memset(&p, 0, sizeof(p));
  peer_add(&p, false, "401 Unauthorized", oc->headers, "");
  peer_add(&p, false, "401 Unauthorized", "WWW-Authenticate: NTLM\r\n", "");
  peer_start(&p);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)p.port);
  kbt_trace_init(&rec, true, "T_CLIENT_TRACE");
  cc = cl_config(url, 21, "alice", KBT_ALICE_PASSWORD);
  cc.trace = kbt_trace_sink(&rec);
  c = cl_new(&cc);
  ck_assert_int_eq(client_step(c, &r), 1);
  ck_assert_int_eq(r.outcome, CLIENT_AUTH_FAILED);
  ck_assert_uint_eq(r.legs, 2);
  ck_assert_msg(strstr(r.detail, oc->detail), "case %d: %s", _i, r.detail);
  client_destroy(c);
  peer_stop(&p);
  i = kbt_find_send(&rec, "client 21", "POST /autodiscover/", 0);
  i = kbt_find_send(&rec, "client 21", "POST /autodiscover/", i + 1);
  ck_assert_uint_lt(i, rec.n);
  ck_assert_ptr_nonnull(strstr(rec.ev[i].text, oc->auth_prefix));
  kbt_trace_free(&rec);
}
END_TEST

Suite *client_peer_suite(void)
{
  Suite *s = suite_create("peer");
  TCase *tc = tcase_create("peer");

  tcase_set_timeout(tc, 30);
  tcase_add_loop_test(tc, test_peer_reconnects, 0, 2);
  tcase_add_loop_test(tc, test_peer_odd_answers, 0,
                      (int)(sizeof(odd_cases) / sizeof(odd_cases[0])));
  tcase_add_test(tc, test_peer_unusable_ews);
  tcase_add_loop_test(tc, test_peer_oversized, 0, 2);
  tcase_add_test(tc, test_peer_drops_idle);
  tcase_add_test(tc, test_peer_basic);
  tcase_add_loop_test(tc, test_peer_offers, 0,
                      (int)(sizeof(offer_cases) / sizeof(offer_cases[0])));
  suite_add_tcase(s, tc);
  return s;
}
