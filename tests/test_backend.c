/*
 * test_backend.c - Exchange 2007 as the published server, through
 * backend.h only: a real server on 127.0.0.1 port 0, libcurl as the client,
 * libxml2 to read what comes back.
 *
 * The clock is fixed at the support case's Date (Tue, 17 Mar 2009 16:26:24
 * GMT) so header blocks can be compared byte for byte; the trace sink
 * records every event so tests can count them.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend/backend.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "kbt.h"
#include "rc.h"

/* 2009-03-17T16:26:24Z, the Date of the support case's response. */
#define SEED_MS KBT_CASE_MS
#define SEED_DATE "Tue, 17 Mar 2009 16:26:24 GMT"

#define EWS "/EWS/Exchange.asmx"
#define AUTODISCOVER "/autodiscover/autodiscover.xml"
#define NS_MESSAGES                                                            \
  "http://schemas.microsoft.com/exchange/services/2006/messages"
#define NS_TYPES "http://schemas.microsoft.com/exchange/services/2006/types"

/* ---- data: what goes on the wire ------------------------------------- */

/* The support case's request headers, in its order (curl adds
 * Content-Length: 0 itself). The token is an NTLM type 1. */
static const char *const seed_request_headers[] = {
    "Accept: text/xml",
    "Content-Type: text/xml; charset=utf-8",
    "User-Agent: Microsoft+Office+Communicator/2.0",
    "Host: autodiscover.fabrikam.com",
    "Connection: Keep-Alive",
    "Cache-Control: no-cache",
    "Authorization: NTLM "
    "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0==",
    NULL};

/* The support case's response headers as libmicrohttpd 0.9.75 emits them:
 * the seed's names, values and order, except that MHD always writes
 * Content-Length itself, after the application's headers. */
static const char seed_response_head[] =
    "HTTP/1.1 500 Internal Server Error\r\n"
    "Connection: Keep-Alive\r\n"
    "Date: " SEED_DATE "\r\n"
    "Content-Type: application/soap+xml; charset=utf-8\r\n"
    "Server: Microsoft-IIS/7.0\r\n"
    "Cache-Control: private\r\n"
    "X-AspNet-Version: 2.0.50727\r\n"
    "X-Powered-By: ASP.NET\r\n"
    "Content-Length: 479\r\n"
    "\r\n";

/* ASP.NET 2.0's SOAP 1.2 fault for an empty request: 479 bytes. */
static const char seed_response_body[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope "
    "xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\" "
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
    "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body><soap:Fault>"
    "<soap:Code><soap:Value>soap:Receiver</soap:Value></soap:Code>"
    "<soap:Reason><soap:Text xml:lang=\"en\">Server was unable to process "
    "request. ---&gt; Root element is missing.</soap:Text></soap:Reason>"
    "<soap:Detail /></soap:Fault></soap:Body></soap:Envelope>";

static const char oof_request[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
    "xmlns:t=\"" NS_TYPES "\">\n"
    "  <soap:Body>\n"
    "    <GetUserOofSettingsRequest xmlns=\"" NS_MESSAGES "\">\n"
    "      <t:Mailbox><t:Address>john.doe@fabrikam.com</t:Address>"
    "</t:Mailbox>\n"
    "    </GetUserOofSettingsRequest>\n"
    "  </soap:Body>\n"
    "</soap:Envelope>\n";

/* Monday 2009-03-16, one day, hourly slots, for two mailboxes. */
static const char availability_request[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
    "xmlns:t=\"" NS_TYPES "\" xmlns:m=\"" NS_MESSAGES "\">\n"
    "<soap:Body><m:GetUserAvailabilityRequest>\n"
    "<t:TimeZone><t:Bias>0</t:Bias></t:TimeZone>\n"
    "<m:MailboxDataArray>\n"
    "<t:MailboxData><t:Email><t:Address>john.doe@fabrikam.com</t:Address>"
    "</t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData>\n"
    "<t:MailboxData><t:Email><t:Address>jane.roe@fabrikam.com</t:Address>"
    "</t:Email><t:AttendeeType>Required</t:AttendeeType></t:MailboxData>\n"
    "</m:MailboxDataArray>\n"
    "<t:FreeBusyViewOptions><t:TimeWindow>"
    "<t:StartTime>2009-03-16T00:00:00</t:StartTime>"
    "<t:EndTime>2009-03-17T00:00:00</t:EndTime></t:TimeWindow>"
    "<t:MergedFreeBusyIntervalInMinutes>60</t:MergedFreeBusyIntervalInMinutes>"
    "<t:RequestedView>FreeBusyMerged</t:RequestedView>"
    "</t:FreeBusyViewOptions>\n"
    "</m:GetUserAvailabilityRequest></soap:Body></soap:Envelope>\n";

static const char autodiscover_request[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/"
    "outlook/requestschema/2006\">\n"
    "  <Request>\n"
    "    <EMailAddress>john.doe@fabrikam.com</EMailAddress>\n"
    "    <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/"
    "autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\n"
    "  </Request>\n"
    "</Autodiscover>\n";

/* ---- fixtures: clock and trace recorder ------------------------------ */

static _Atomic int64_t clock_ms = SEED_MS;

static int64_t test_now(void *ctx, const char *who)
{
  (void)ctx;
  (void)who;
  return atomic_load(&clock_ms);
}

/* Every event the backend emits (tests/kbt.h), one recording per test. */
static struct kbt_trace trace;

static void setup(void)
{
  kbt_trace_init(&trace, false, "T_BACKEND_TRACE");
  atomic_store(&clock_ms, SEED_MS);
}

static void teardown(void)
{
  kbt_trace_free(&trace);
}

/* Starts a backend on 127.0.0.1:0 with the test clock and recorder. */
static struct backend *start_backend(size_t max_body, const char *ews_url)
{
  struct backend_config cfg;
  struct backend *b = NULL;
  char err[256] = "";

  memset(&cfg, 0, sizeof(cfg));
  cfg.bind_host = "127.0.0.1";
  cfg.ews_url = ews_url;
  cfg.max_body = max_body;
  cfg.clock.now_ms = test_now;
  cfg.trace = kbt_trace_sink(&trace);
  ck_assert_msg(backend_start(&cfg, &b, err, sizeof(err)) == 0,
                "backend_start: %s", err);
  ck_assert_ptr_nonnull(b);
  ck_assert_uint_ne(backend_port(b), 0);
  return b;
}

/* ---- HTTP with libcurl ------------------------------------------------ */

struct resp {
  long status;
  long connects;      /* new connections curl made for this request */
  struct kb_buf head; /* the final response's header block, verbatim */
  struct kb_buf body;
};

static void resp_init(struct resp *r)
{
  memset(r, 0, sizeof(*r));
  kb_buf_init(&r->head, 64 * 1024);
  kb_buf_init(&r->body, 8 * 1024 * 1024);
}

static void resp_free(struct resp *r)
{
  kb_buf_free(&r->head);
  kb_buf_free(&r->body);
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
  return kb_buf_add(ud, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* Keeps only the last response's header block (a 100 Continue comes
 * first when Expect is used). */
static size_t on_head(char *data, size_t size, size_t n, void *ud)
{
  struct kb_buf *head = ud;

  if(size * n > 5 && !memcmp(data, "HTTP/", 5)) {
    kb_buf_reset(head);
  }
  return kb_buf_add(head, data, size * n) == KB_BUF_OK ? size * n : 0;
}

/* Streams `left` bytes of 'x' as a chunked upload. */
static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
  size_t *left = ud;
  size_t len = size * n < *left ? size * n : *left;

  memset(buf, 'x', len);
  *left -= len;
  return len;
}

/* One request on curl (reused for keep-alive). body NULL and method POST
 * with chunked > 0 streams chunked bytes instead. Headers end in NULL. */
static CURLcode http(CURL *curl, uint16_t port, const char *method,
                     const char *path, const char *body, size_t len,
                     const char *const *headers, size_t chunked, struct resp *r)
{
  struct curl_slist *list = NULL;
  char url[256];
  bool expect = false;
  CURLcode rc;

  curl_easy_reset(curl);
  snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)port, path);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r->body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_head);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r->head);
  for(; headers && *headers; headers++) {
    list = curl_slist_append(list, *headers);
    expect = expect || !strncasecmp(*headers, "Expect:", 7);
  }
  if(!expect) {
    list = curl_slist_append(list, "Expect:");
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
  if(!strcmp(method, "POST")) {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    if(chunked) {
      curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(curl, CURLOPT_READDATA, &chunked);
    }
    else {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
  }
  else if(strcmp(method, "GET")) {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  }
  rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &r->connects);
  curl_slist_free_all(list);
  return rc;
}

/* One POST on a fresh handle; asserts the transfer itself worked. */
static void post(uint16_t port, const char *path, const char *body,
                 const char *const *headers, struct resp *r)
{
  CURL *curl = curl_easy_init();
  CURLcode rc;

  ck_assert_ptr_nonnull(curl);
  rc = http(curl, port, "POST", path, body, body ? strlen(body) : 0, headers, 0,
            r);
  ck_assert_msg(rc == CURLE_OK, "curl: %s", curl_easy_strerror(rc));
  curl_easy_cleanup(curl);
}

/* Returns the value of header name in r's header block (copied into out),
 * or NULL when absent. */
static const char *header(const struct resp *r, const char *name, char *out,
                          size_t outlen)
{
  const char *at = NULL, *v;
  size_t len;

  if(!r->head.data || !rc_next_header(r->head.data, name, &at, &v, &len))
    return NULL;
  snprintf(out, outlen, "%.*s", (int)len, v);
  return out;
}

/* ---- XML assertions --------------------------------------------------- */

/* Parses r's body; asserts it is well-formed. */
static xmlDocPtr parse(const struct resp *r)
{
  xmlDocPtr doc = xmlReadMemory(
      r->body.data ? r->body.data : "", (int)r->body.len, NULL, NULL,
      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);

  ck_assert_msg(doc != NULL, "response is not well-formed XML: %s",
                r->body.data ? r->body.data : "(empty)");
  return doc;
}

/* Returns the XPath string value of expr in doc as a malloc'd string
 * (empty when nothing matches). Prefixes: s11, s12 (SOAP), m, t (EWS),
 * ad (autodiscover response), ao (Outlook response 2006a). */
static char *xp(xmlDocPtr doc, const char *expr)
{
  xmlXPathContextPtr ctx = xmlXPathNewContext(doc);
  xmlXPathObjectPtr obj;
  char *out;
  char wrapped[512];

  ck_assert_ptr_nonnull(ctx);
  xmlXPathRegisterNs(ctx, BAD_CAST "s11",
                     BAD_CAST "http://schemas.xmlsoap.org/soap/envelope/");
  xmlXPathRegisterNs(ctx, BAD_CAST "s12",
                     BAD_CAST "http://www.w3.org/2003/05/soap-envelope");
  xmlXPathRegisterNs(ctx, BAD_CAST "m", BAD_CAST NS_MESSAGES);
  xmlXPathRegisterNs(ctx, BAD_CAST "t", BAD_CAST NS_TYPES);
  xmlXPathRegisterNs(ctx, BAD_CAST "ad",
                     BAD_CAST
                     "http://schemas.microsoft.com/exchange/autodiscover/"
                     "responseschema/2006");
  xmlXPathRegisterNs(
      ctx, BAD_CAST "ao",
      BAD_CAST "http://schemas.microsoft.com/exchange/autodiscover/outlook/"
               "responseschema/2006a");
  snprintf(wrapped, sizeof(wrapped), "string(%s)", expr);
  obj = xmlXPathEvalExpression(BAD_CAST wrapped, ctx);
  ck_assert_msg(obj && obj->type == XPATH_STRING, "bad xpath %s", expr);
  out = strdup((const char *)obj->stringval);
  xmlXPathFreeObject(obj);
  xmlXPathFreeContext(ctx);
  return out;
}

#define ck_assert_xp(doc, expr, expected)                                      \
  do {                                                                         \
    char *got_ = xp((doc), (expr));                                            \
    ck_assert_msg(!strcmp(got_, (expected)), "%s: expected '%s', got '%s'",    \
                  (expr), (expected), got_);                                   \
    free(got_);                                                                \
  } while(0)

/* Returns the count(expr) in doc. */
static int xp_count(xmlDocPtr doc, const char *expr)
{
  char wrapped[512];
  char *s;
  int n;

  snprintf(wrapped, sizeof(wrapped), "count(%s)", expr);
  /* xp wraps in string(); string(count(...)) is the number as text. */
  s = xp(doc, wrapped);
  n = atoi(s);
  free(s);
  return n;
}

#define FAULT_TEXT "/s12:Envelope/s12:Body/s12:Fault/s12:Reason/s12:Text"

/* Asserts every counter of s; the order is that of struct backend_stats. */
static void assert_stats(const struct backend *b, uint64_t connections,
                         uint64_t requests, uint64_t ews_posts,
                         uint64_t empty_posts, uint64_t oof_ok,
                         uint64_t availability_ok, uint64_t soap_faults,
                         uint64_t autodiscover_ok, uint64_t not_found,
                         uint64_t bad_method, uint64_t too_large)
{
  struct backend_stats s;

  memset(&s, 0xff, sizeof(s));
  backend_stats(b, &s);
  ck_assert_uint_eq(s.connections, connections);
  ck_assert_uint_eq(s.requests, requests);
  ck_assert_uint_eq(s.ews_posts, ews_posts);
  ck_assert_uint_eq(s.empty_posts, empty_posts);
  ck_assert_uint_eq(s.oof_ok, oof_ok);
  ck_assert_uint_eq(s.availability_ok, availability_ok);
  ck_assert_uint_eq(s.soap_faults, soap_faults);
  ck_assert_uint_eq(s.autodiscover_ok, autodiscover_ok);
  ck_assert_uint_eq(s.not_found, not_found);
  ck_assert_uint_eq(s.bad_method, bad_method);
  ck_assert_uint_eq(s.too_large, too_large);
}

/* ---- tests ------------------------------------------------------------ */

/* The bug's symptom: the body-less POST gets the support case's 500. */
START_TEST(empty_post_is_seed_fault)
{
  struct backend *b = start_backend(0, NULL);
  struct resp r;
  struct kbt_event ev;

  ck_assert_uint_eq(strlen(seed_response_body), 479);
  resp_init(&r);
  post(backend_port(b), EWS, NULL, seed_request_headers, &r);
  ck_assert_int_eq(r.status, 500);
  ck_assert_str_eq(r.head.data, seed_response_head);
  ck_assert_uint_eq(r.body.len, 479);
  ck_assert_str_eq(r.body.data, seed_response_body);
  assert_stats(b, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0);

  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_OPEN, NULL), 1);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_EXCHANGE, NULL), 1);
  ck_assert(kbt_get(&trace, KB_TRACE_EXCHANGE, 0, &ev));
  ck_assert_str_eq(ev.origin, "backend");
  ck_assert_int_eq(ev.hop, KB_HOP_PROXY_BACKEND);
  ck_assert_int_eq(ev.side, KB_SIDE_SERVER);
  ck_assert_uint_eq(ev.conn, 1);
  ck_assert_str_eq(ev.method, "POST");
  ck_assert_str_eq(ev.path, EWS);
  ck_assert_int_eq(ev.ex.req_auth, KB_AUTH_NTLM_NEGOTIATE);
  ck_assert_uint_eq(ev.ex.req_body_len, 0);
  ck_assert_int_eq(ev.ex.status, 500);
  ck_assert_uint_eq(ev.ex.resp_body_len, 479);
  backend_stop(b);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_CLOSE, NULL), 1);
  resp_free(&r);
}
END_TEST

/* Raw bytes: an HTTP/1.0 keep-alive client gets the same bytes, and the
 * connection stays open for a second request. */
START_TEST(raw_bytes_http10_keepalive)
{
  static const char request[] = "POST " EWS " HTTP/1.0\r\n"
                                "Host: autodiscover.fabrikam.com\r\n"
                                "Connection: Keep-Alive\r\n"
                                "Content-Length: 0\r\n\r\n";
  struct backend *b = start_backend(0, NULL);
  struct sockaddr_in sa;
  char buf[4096] = "";
  size_t want = strlen(seed_response_head) + 479;
  size_t got;
  ssize_t n;
  int round;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(backend_port(b));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  for(round = 0; round < 2; round++) {
    ck_assert_int_eq(send(fd, request, strlen(request), 0),
                     (ssize_t)strlen(request));
    for(got = 0; got < want; got += (size_t)n) {
      n = recv(fd, buf + got, sizeof(buf) - got, 0);
      ck_assert_int_gt(n, 0);
    }
    ck_assert_uint_eq(got, want);
    /* libmicrohttpd answers HTTP/1.1 (as IIS does) and, with the client
     * asking for keep-alive, the same Connection header. */
    ck_assert_int_eq(
        memcmp(buf, seed_response_head, strlen(seed_response_head)), 0);
    ck_assert_int_eq(
        memcmp(buf + strlen(seed_response_head), seed_response_body, 479), 0);
  }
  close(fd);
  assert_stats(b, 1, 2, 2, 2, 0, 0, 2, 0, 0, 0, 0);
  backend_stop(b);
}
END_TEST

START_TEST(oof_settings)
{
  struct backend *b = start_backend(0, NULL);
  struct resp r;
  char value[256];
  xmlDocPtr doc;

  resp_init(&r);
  post(backend_port(b), EWS, oof_request, NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(header(&r, "Content-Type", value, sizeof(value)),
                   "text/xml; charset=utf-8");
  ck_assert_str_eq(header(&r, "Date", value, sizeof(value)), SEED_DATE);
  ck_assert_str_eq(header(&r, "Server", value, sizeof(value)),
                   "Microsoft-IIS/7.0");
  doc = parse(&r);
#define OOF "/s11:Envelope/s11:Body/m:GetUserOofSettingsResponse"
  ck_assert_xp(doc, OOF "/m:ResponseMessage/@ResponseClass", "Success");
  ck_assert_xp(doc, OOF "/m:ResponseMessage/m:ResponseCode", "NoError");
  ck_assert_xp(doc, OOF "/t:OofSettings/t:OofState", "Disabled");
  ck_assert_xp(doc, OOF "/t:OofSettings/t:ExternalAudience", "All");
  /* The default duration starts at the clock's hour. */
  ck_assert_xp(doc, OOF "/t:OofSettings/t:Duration/t:StartTime",
               "2009-03-17T16:00:00");
  ck_assert_xp(doc, OOF "/t:OofSettings/t:Duration/t:EndTime",
               "2009-03-18T16:00:00");
  ck_assert_xp(doc, OOF "/m:AllowExternalOof", "All");
#undef OOF
  ck_assert_xp(
      doc, "/s11:Envelope/s11:Header/t:ServerVersionInfo/@MajorVersion", "8");
  xmlFreeDoc(doc);
  assert_stats(b, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0);
  backend_stop(b);
  resp_free(&r);
}
END_TEST

START_TEST(availability_per_mailbox)
{
  struct backend *b = start_backend(0, NULL);
  struct resp r;
  struct resp again;
  xmlDocPtr doc;
  char expr[256];
  int i;
  /* The pattern each address gets on Monday 2009-03-16 (a golden value:
   * it changes only if the free/busy model does). */
  static const char *const expected[] = {"000000000022120220000000",
                                         "000000000021222020000000"};

  resp_init(&r);
  resp_init(&again);
  post(backend_port(b), EWS, availability_request, NULL, &r);
  ck_assert_int_eq(r.status, 200);
  doc = parse(&r);
#define FB                                                                     \
  "/s11:Envelope/s11:Body/m:GetUserAvailabilityResponse/"                      \
  "m:FreeBusyResponseArray/m:FreeBusyResponse"
  ck_assert_int_eq(xp_count(doc, FB), 2);
  for(i = 1; i <= 2; i++) {
    snprintf(expr, sizeof(expr), FB "[%d]/m:ResponseMessage/@ResponseClass", i);
    ck_assert_xp(doc, expr, "Success");
    snprintf(expr, sizeof(expr), FB "[%d]/m:FreeBusyView/t:FreeBusyViewType",
             i);
    ck_assert_xp(doc, expr, "FreeBusyMerged");
    snprintf(expr, sizeof(expr), FB "[%d]/m:FreeBusyView/t:MergedFreeBusy", i);
    char *merged = xp(doc, expr);
    int busy = 0;

    /* One digit per hour of the day; outside 09-17 UTC always free. */
    ck_assert_uint_eq(strlen(merged), 24);
    ck_assert_str_eq(merged, expected[i - 1]);
    for(int h = 0; h < 24; h++) {
      ck_assert(merged[h] >= '0' && merged[h] <= '2');
      if(h < 9 || h >= 17) {
        ck_assert_int_eq(merged[h], '0');
      }
      busy += merged[h] != '0';
    }
    /* Hourly slots on hour boundaries: one event per non-free slot. */
    snprintf(expr, sizeof(expr),
             FB "[%d]/m:FreeBusyView/t:CalendarEventArray/t:CalendarEvent", i);
    ck_assert_int_eq(xp_count(doc, expr), busy);
    free(merged);
  }
#undef FB
  xmlFreeDoc(doc);

  /* Deterministic: derived from addresses and window, not the clock. */
  atomic_store(&clock_ms, SEED_MS + 86400000 * 3);
  post(backend_port(b), EWS, availability_request, NULL, &again);
  ck_assert_int_eq(again.status, 200);
  ck_assert_uint_eq(again.body.len, r.body.len);
  ck_assert_int_eq(memcmp(again.body.data, r.body.data, r.body.len), 0);
  assert_stats(b, 2, 2, 2, 0, 0, 2, 0, 0, 0, 0, 0);
  backend_stop(b);
  resp_free(&r);
  resp_free(&again);
}
END_TEST

START_TEST(availability_bad_window_faults)
{
  static const char request[] =
      "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
      "xmlns:t=\"" NS_TYPES "\" xmlns:m=\"" NS_MESSAGES "\"><soap:Body>"
      "<m:GetUserAvailabilityRequest><m:MailboxDataArray><t:MailboxData>"
      "<t:Email><t:Address>a@b.c</t:Address></t:Email></t:MailboxData>"
      "</m:MailboxDataArray><t:FreeBusyViewOptions><t:TimeWindow>"
      "<t:StartTime>2009-03-17T00:00:00</t:StartTime>"
      "<t:EndTime>2009-02-30T00:00:00</t:EndTime></t:TimeWindow>"
      "</t:FreeBusyViewOptions></m:GetUserAvailabilityRequest>"
      "</soap:Body></soap:Envelope>";
  struct backend *b = start_backend(0, NULL);
  struct resp r;
  xmlDocPtr doc;
  char *text;

  resp_init(&r);
  post(backend_port(b), EWS, request, NULL, &r);
  ck_assert_int_eq(r.status, 500);
  doc = parse(&r);
  text = xp(doc, FAULT_TEXT);
  ck_assert_str_eq(text, "t:TimeWindow needs t:StartTime and t:EndTime as "
                         "YYYY-MM-DDThh:mm:ss.");
  free(text);
  xmlFreeDoc(doc);
  assert_stats(b, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0);
  backend_stop(b);
  resp_free(&r);
}
END_TEST

/* Malformed XML: the fault names libxml2's problem and its line. */
START_TEST(malformed_xml_fault)
{
  static const char request[] =
      "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
      "\n<soap:Body>\n<GetUserOofSettingsRequest xmlns=\"" NS_MESSAGES "\">\n"
      "</soap:Body></soap:Envelope>\n";
  struct backend *b = start_backend(0, NULL);
  struct resp r;
  char value[256];
  xmlDocPtr doc;
  char *text;

  resp_init(&r);
  post(backend_port(b), EWS, request, NULL, &r);
  ck_assert_int_eq(r.status, 500);
  ck_assert_str_eq(header(&r, "Content-Type", value, sizeof(value)),
                   "application/soap+xml; charset=utf-8");
  doc = parse(&r);
  ck_assert_xp(doc, "/s12:Envelope/s12:Body/s12:Fault/s12:Code/s12:Value",
               "soap:Receiver");
  text = xp(doc, FAULT_TEXT);
  ck_assert_str_eq(text, "Server was unable to read request. ---> XML parse "
                         "error at line 4: Opening and ending tag mismatch: "
                         "GetUserOofSettingsRequest line 3 and soap:Body");
  ck_assert_ptr_null(strchr(text, '\n'));
  free(text);
  xmlFreeDoc(doc);
  assert_stats(b, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0);
  backend_stop(b);
  resp_free(&r);
}
END_TEST

/* Well-formed but wrong: not an envelope, an unknown operation, a DTD. */
START_TEST(wrong_documents_fault)
{
  static const struct {
    const char *body;
    const char *reason;
  } cases[] = {
      {"<hello xmlns=\"urn:x\"/>",
       "Server was unable to read request. ---> The request is not a SOAP "
       "envelope: its root element is {urn:x}hello."},
      {"<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/"
       "envelope/\"><soap:Body><GetFolder xmlns=\"" NS_MESSAGES "\"/>"
       "</soap:Body></soap:Envelope>",
       "The operation {" NS_MESSAGES "}GetFolder is not implemented by this "
       "server; it answers GetUserOofSettings and GetUserAvailability."},
      {"<soap:Envelope xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\">"
       "<soap:Body/></soap:Envelope>",
       "Server was unable to read request. ---> The SOAP envelope has no "
       "operation element in its Body."},
      {"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>",
       "Server was unable to read request. ---> DTDs are not allowed in SOAP "
       "messages"},
      {"<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/"
       "envelope/\"><soap:Body><GetUserOofSettingsRequest xmlns=\"" NS_MESSAGES
       "\"/></soap:Body></soap:Envelope>",
       "GetUserOofSettingsRequest has no t:Mailbox/t:Address; send the "
       "mailbox's SMTP address."},
  };
  struct backend *b = start_backend(0, NULL);
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct resp r;
    xmlDocPtr doc;
    char *text;

    resp_init(&r);
    post(backend_port(b), EWS, cases[i].body, NULL, &r);
    ck_assert_int_eq(r.status, 500);
    doc = parse(&r);
    text = xp(doc, FAULT_TEXT);
    ck_assert_msg(!strcmp(text, cases[i].reason), "case %zu: got '%s'", i,
                  text);
    free(text);
    xmlFreeDoc(doc);
    resp_free(&r);
  }
  assert_stats(b, 5, 5, 5, 0, 0, 0, 5, 0, 0, 0, 0);
  backend_stop(b);
}
END_TEST

START_TEST(autodiscover_carries_ews_url)
{
  static const char ews_url[] = "https://mail.example.test/EWS/Exchange.asmx";
  struct backend *b = start_backend(0, ews_url);
  struct resp r;
  char value[256];
  xmlDocPtr doc;

  resp_init(&r);
  /* IIS matches the path case-insensitively. */
  post(backend_port(b), "/AutoDiscover/AutoDiscover.xml", autodiscover_request,
       NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(header(&r, "Content-Type", value, sizeof(value)),
                   "text/xml; charset=utf-8");
  doc = parse(&r);
#define AO "/ad:Autodiscover/ao:Response"
  ck_assert_xp(doc, AO "/ao:User/ao:DisplayName", "John Doe");
  ck_assert_xp(doc, AO "/ao:Account/ao:AccountType", "email");
  ck_assert_xp(doc, AO "/ao:Account/ao:Action", "settings");
  ck_assert_int_eq(xp_count(doc, AO "/ao:Account/ao:Protocol"), 2);
  ck_assert_xp(doc, AO "/ao:Account/ao:Protocol[ao:Type='EXCH']/ao:ASUrl",
               ews_url);
  ck_assert_xp(doc, AO "/ao:Account/ao:Protocol[ao:Type='EXCH']/ao:OOFUrl",
               ews_url);
  ck_assert_xp(doc, AO "/ao:Account/ao:Protocol[ao:Type='EXPR']/ao:ASUrl",
               ews_url);
  ck_assert_xp(doc, AO "/ao:Account/ao:Protocol[ao:Type='EXPR']/ao:OOFUrl",
               ews_url);
  ck_assert_xp(doc, AO "/ao:Account/ao:Protocol[ao:Type='EXPR']/ao:Server",
               "mail.example.test");
#undef AO
  xmlFreeDoc(doc);
  assert_stats(b, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0);
  backend_stop(b);
  resp_free(&r);
}
END_TEST

/* Empty, malformed or foreign autodiscover requests: 200 + error 600. */
START_TEST(autodiscover_invalid_request)
{
  static const char *const bodies[] = {
      NULL, "<Autodiscover", "<a/>",
      "<Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/"
      "autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>"
      "john@fabrikam.com</EMailAddress></Request></Autodiscover>"};
  struct backend *b = start_backend(0, NULL);
  size_t i;

  for(i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    struct resp r;
    xmlDocPtr doc;

    resp_init(&r);
    post(backend_port(b), AUTODISCOVER, bodies[i], NULL, &r);
    ck_assert_int_eq(r.status, 200);
    doc = parse(&r);
    ck_assert_xp(doc, "/ad:Autodiscover/ad:Response/ad:Error/ad:ErrorCode",
                 "600");
    ck_assert_xp(doc, "/ad:Autodiscover/ad:Response/ad:Error/ad:Message",
                 "Invalid Request");
    ck_assert_xp(doc, "/ad:Autodiscover/ad:Response/ad:Error/@Time",
                 "16:26:24.0000000");
    xmlFreeDoc(doc);
    resp_free(&r);
  }
  assert_stats(b, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  backend_stop(b);
}
END_TEST

START_TEST(not_found_and_bad_method)
{
  struct backend *b = start_backend(0, NULL);
  CURL *curl = curl_easy_init();
  struct resp r;
  char value[256];

  ck_assert_ptr_nonnull(curl);
  resp_init(&r);
  ck_assert_int_eq(
      http(curl, backend_port(b), "GET", "/nope", NULL, 0, NULL, 0, &r),
      CURLE_OK);
  ck_assert_int_eq(r.status, 404);
  ck_assert_ptr_null(header(&r, "Allow", value, sizeof(value)));
  resp_free(&r);

  /* A body sent to an unknown path is read and dropped; the connection
   * stays usable. */
  resp_init(&r);
  ck_assert_int_eq(http(curl, backend_port(b), "POST", "/EWS/Other.asmx",
                        oof_request, strlen(oof_request), NULL, 0, &r),
                   CURLE_OK);
  ck_assert_int_eq(r.status, 404);
  ck_assert_int_eq(r.connects, 0);
  resp_free(&r);

  resp_init(&r);
  ck_assert_int_eq(
      http(curl, backend_port(b), "GET", EWS, NULL, 0, NULL, 0, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 405);
  ck_assert_str_eq(header(&r, "Allow", value, sizeof(value)), "POST");
  ck_assert_str_eq(header(&r, "Date", value, sizeof(value)), SEED_DATE);
  resp_free(&r);

  resp_init(&r);
  ck_assert_int_eq(
      http(curl, backend_port(b), "PUT", AUTODISCOVER, NULL, 0, NULL, 0, &r),
      CURLE_OK);
  ck_assert_int_eq(r.status, 405);
  ck_assert_str_eq(header(&r, "Allow", value, sizeof(value)), "POST");
  resp_free(&r);

  curl_easy_cleanup(curl);
  assert_stats(b, 1, 4, 0, 0, 0, 0, 0, 0, 2, 2, 0);
  backend_stop(b);
}
END_TEST

/* Over max_body: declared (answered before the body is sent) and chunked
 * (answered after the body, which is counted but never held). Exactly
 * max_body is still accepted. */
START_TEST(body_over_cap_is_413)
{
  static const char *const expect[] = {"Expect: 100-continue", NULL};
  struct backend *b = start_backend(1024, NULL);
  CURL *curl = curl_easy_init();
  char *big = malloc(2049);
  struct resp r;
  struct kbt_event ev;

  ck_assert_ptr_nonnull(curl);
  ck_assert_ptr_nonnull(big);
  memset(big, 'x', 2048);
  big[2048] = '\0';

  resp_init(&r);
  ck_assert_int_eq(
      http(curl, backend_port(b), "POST", EWS, big, 2048, expect, 0, &r),
      CURLE_OK);
  ck_assert_int_eq(r.status, 413);
  resp_free(&r);

  resp_init(&r);
  ck_assert_int_eq(http(curl, backend_port(b), "POST", AUTODISCOVER, NULL, 0,
                        NULL, 5000, &r),
                   CURLE_OK);
  ck_assert_int_eq(r.status, 413);
  resp_free(&r);

  /* 1024 bytes of 'x' is not XML: a parse fault, not a 413. */
  resp_init(&r);
  ck_assert_int_eq(
      http(curl, backend_port(b), "POST", EWS, big, 1024, NULL, 0, &r),
      CURLE_OK);
  ck_assert_int_eq(r.status, 500);
  resp_free(&r);

  ck_assert(kbt_get(&trace, KB_TRACE_EXCHANGE, 1, &ev));
  ck_assert_int_eq(ev.ex.status, 413);
  ck_assert_uint_eq(ev.ex.req_body_len, 5000);
  curl_easy_cleanup(curl);
  free(big);
  assert_stats(b, kbt_count_from(&trace, KB_TRACE_OPEN, NULL), 3, 2, 0, 0, 0, 1,
               0, 0, 0, 2);
  backend_stop(b);
}
END_TEST

/* Date comes from the configured clock, read per response. */
START_TEST(date_follows_clock)
{
  struct backend *b = start_backend(0, NULL);
  struct resp r;
  char value[256];

  resp_init(&r);
  post(backend_port(b), EWS, NULL, NULL, &r);
  ck_assert_str_eq(header(&r, "Date", value, sizeof(value)), SEED_DATE);
  resp_free(&r);

  atomic_store(&clock_ms, INT64_C(0));
  resp_init(&r);
  post(backend_port(b), EWS, NULL, NULL, &r);
  ck_assert_str_eq(header(&r, "Date", value, sizeof(value)),
                   "Thu, 01 Jan 1970 00:00:00 GMT");
  resp_free(&r);
  backend_stop(b);
}
END_TEST

/* Several requests on one kept-alive connection: one connection. */
START_TEST(keepalive_one_connection)
{
  struct backend *b = start_backend(0, NULL);
  CURL *curl = curl_easy_init();
  struct resp r;
  struct kbt_event ev;
  int i;

  ck_assert_ptr_nonnull(curl);
  for(i = 0; i < 6; i++) {
    resp_init(&r);
    ck_assert_int_eq(
        http(curl, backend_port(b), "POST", EWS, i % 2 ? oof_request : NULL,
             i % 2 ? strlen(oof_request) : 0, seed_request_headers, 0, &r),
        CURLE_OK);
    ck_assert_int_eq(r.status, i % 2 ? 200 : 500);
    ck_assert_int_eq(r.connects, i == 0 ? 1 : 0);
    resp_free(&r);
  }
  assert_stats(b, 1, 6, 6, 3, 3, 0, 3, 0, 0, 0, 0);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_OPEN, NULL), 1);
  for(i = 0; i < 6; i++) {
    ck_assert(kbt_get(&trace, KB_TRACE_EXCHANGE, (size_t)i, &ev));
    ck_assert_uint_eq(ev.conn, 1);
  }
  /* Stopping with the connection still open closes it. */
  backend_stop(b);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_CLOSE, NULL), 1);
  curl_easy_cleanup(curl);
}
END_TEST

#define CLIENTS 8
#define PER_CLIENT 12

struct client_arg {
  uint16_t port;
  int ok;
};

/* One client thread: PER_CLIENT requests on its own kept-alive handle,
 * alternating the empty POST and GetUserOofSettings. No Check asserts off
 * the main thread; it reports how many came back as expected. */
static void *client_main(void *p)
{
  struct client_arg *arg = p;
  CURL *curl = curl_easy_init();
  struct resp r;
  int i;

  for(i = 0; curl && i < PER_CLIENT; i++) {
    bool oof = i % 2;
    resp_init(&r);
    if(http(curl, arg->port, "POST", EWS, oof ? oof_request : NULL,
            oof ? strlen(oof_request) : 0, NULL, 0, &r) == CURLE_OK &&
       r.status == (oof ? 200 : 500) && r.connects == (i == 0)) {
      arg->ok++;
    }
    resp_free(&r);
  }
  curl_easy_cleanup(curl);
  return NULL;
}

START_TEST(concurrent_clients_consistent_counts)
{
  struct backend *b = start_backend(0, NULL);
  pthread_t threads[CLIENTS];
  struct client_arg args[CLIENTS];
  struct backend_stats s;
  int i;

  for(i = 0; i < CLIENTS; i++) {
    args[i].port = backend_port(b);
    args[i].ok = 0;
    ck_assert_int_eq(pthread_create(&threads[i], NULL, client_main, &args[i]),
                     0);
  }
  /* Snapshots taken while clients run are consistent with themselves. */
  for(i = 0; i < 200; i++) {
    backend_stats(b, &s);
    ck_assert_uint_le(s.empty_posts, s.ews_posts);
    ck_assert_uint_eq(s.ews_posts, s.oof_ok + s.soap_faults);
    ck_assert_uint_eq(s.requests, s.ews_posts);
  }
  for(i = 0; i < CLIENTS; i++) {
    ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
    ck_assert_int_eq(args[i].ok, PER_CLIENT);
  }
  assert_stats(b, CLIENTS, CLIENTS * PER_CLIENT, CLIENTS * PER_CLIENT,
               CLIENTS * PER_CLIENT / 2, CLIENTS * PER_CLIENT / 2, 0,
               CLIENTS * PER_CLIENT / 2, 0, 0, 0, 0);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_OPEN, NULL), CLIENTS);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_EXCHANGE, NULL),
                    CLIENTS * PER_CLIENT);
  backend_stop(b);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_CLOSE, NULL), CLIENTS);
}
END_TEST

/* The trace classifies Authorization headers by NTLM message type, with
 * the one grammar the listener and the client use: a bare scheme is named
 * as such (it used to be "other" here and "NTLM" at the listener). */
START_TEST(trace_classifies_authorization)
{
  static const struct {
    const char *header;
    enum kb_auth auth;
  } cases[] = {
      {NULL, KB_AUTH_NONE},
      {"Authorization: NTLM "
       "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0==",
       KB_AUTH_NTLM_NEGOTIATE},
      /* "NTLMSSP\0" + type 2 / type 3, then padding. */
      {"Authorization: NTLM TlRMTVNTUAACAAAAAAAAAA==", KB_AUTH_NTLM_CHALLENGE},
      {"Authorization: Negotiate TlRMTVNTUAADAAAAAAAAAA==",
       KB_AUTH_NTLM_AUTHENTICATE},
      {"Authorization: NTLM TlRMTVNTUAAEAAAAAAAAAA==", KB_AUTH_OTHER},
      {"Authorization: NTLM !!!!!!!!!!!!!!!!!!!!", KB_AUTH_OTHER},
      {"Authorization: NTLM", KB_AUTH_NTLM_BARE},
      {"Authorization: Negotiate", KB_AUTH_NEGOTIATE_BARE},
      {"Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", KB_AUTH_SPNEGO},
      {"Authorization: Basic dXNlcjpwYXNzd29yZA==", KB_AUTH_OTHER},
  };
  struct backend *b = start_backend(0, NULL);
  struct kbt_event ev;
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *headers[] = {cases[i].header, NULL};
    struct resp r;

    resp_init(&r);
    post(backend_port(b), EWS, NULL, headers, &r);
    ck_assert_int_eq(r.status, 500);
    resp_free(&r);
    ck_assert(kbt_get(&trace, KB_TRACE_EXCHANGE, i, &ev));
    ck_assert_msg(ev.ex.req_auth == cases[i].auth, "case %zu: %s, want %s", i,
                  kb_auth_name(ev.ex.req_auth), kb_auth_name(cases[i].auth));
  }
  backend_stop(b);
}
END_TEST

/* Sends the support case's empty POST on fd and reads the whole 500. */
static void raw_roundtrip(int fd)
{
  static const char request[] = "POST " EWS " HTTP/1.1\r\n"
                                "Host: autodiscover.fabrikam.com\r\n"
                                "Content-Length: 0\r\n\r\n";
  char buf[4096] = "";
  size_t want = strlen(seed_response_head) + 479;
  size_t got;
  ssize_t n;

  ck_assert_int_eq(send(fd, request, strlen(request), 0),
                   (ssize_t)strlen(request));
  for(got = 0; got < want; got += (size_t)n) {
    n = recv(fd, buf + got, sizeof(buf) - got, 0);
    ck_assert_int_gt(n, 0);
  }
  ck_assert_int_eq(memcmp(buf, seed_response_head, strlen(seed_response_head)),
                   0);
}

/* Stop with connections open, one idle and one with a request half sent:
 * every OPEN gets its CLOSE and nothing leaks (the ASan build checks the
 * latter). */
START_TEST(stop_with_connections_open)
{
  static const char partial[] = "POST " EWS " HTTP/1.1\r\nHost: x\r\n";
  struct backend *b = start_backend(0, NULL);
  struct sockaddr_in sa;
  int fds[2];
  int i;

  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(backend_port(b));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for(i = 0; i < 2; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fds[i], 0);
    ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    /* A full round trip proves the server has accepted the connection. */
    raw_roundtrip(fds[i]);
  }
  ck_assert_int_eq(send(fds[1], partial, strlen(partial), 0),
                   (ssize_t)strlen(partial));
  assert_stats(b, 2, 2, 2, 2, 0, 0, 2, 0, 0, 0, 0);
  backend_stop(b);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_OPEN, NULL), 2);
  ck_assert_uint_eq(kbt_count_from(&trace, KB_TRACE_CLOSE, NULL), 2);
  for(i = 0; i < 2; i++) {
    close(fds[i]);
  }
}
END_TEST

/* ---- the RPC proxy (/rpc/rpcproxy.dll) ---------------------------------- */

/* A loopback connection to b. */
static int rpc_connect(struct backend *b)
{
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0);

  ck_assert_int_ge(fd, 0);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_port = htons(backend_port(b));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  return fd;
}

/* Sends len bytes on fd. */
static void rpc_send(int fd, const void *data, size_t len)
{
  ck_assert_int_eq(send(fd, data, len, 0), (ssize_t)len);
}

/* Receives exactly len bytes from fd into buf. */
static void rpc_recv(int fd, uint8_t *buf, size_t len)
{
  size_t got;
  ssize_t n;

  for(got = 0; got < len; got += (size_t)n) {
    n = recv(fd, buf + got, len - got, 0);
    ck_assert_int_gt(n, 0);
  }
}

/* An RTS PDU of len bytes whose second command is the virtual connection
 * cookie (CONN/A1: 76 bytes, CONN/B1: 104; the rest left zero). */
static void rpc_rts(uint8_t *p, size_t len, const uint8_t *cookie)
{
  memset(p, 0, len);
  p[0] = 5;
  p[2] = 20;
  p[3] = 3;
  p[4] = 0x10;
  p[8] = (uint8_t)len;
  p[20] = 6;
  p[24] = 1;
  p[28] = 3;
  memcpy(p + 32, cookie, 16);
}

/* Opens an OUT channel (RPC_OUT_DATA with CONN/A1 for cookie) on a new
 * connection and reads its answer's head, which must be a 200 announcing
 * 1 GB. Returns the connection. */
static int rpc_out(struct backend *b, const uint8_t *cookie)
{
  static const char head[] =
      "RPC_OUT_DATA /rpc/rpcproxy.dll?exch:6004 "
      "HTTP/1.1\r\nHost: x\r\nContent-Length: 76\r\n\r\n";
  uint8_t a1[76];
  char resp[1024] = "";
  size_t got = 0;
  int fd = rpc_connect(b);

  rpc_rts(a1, sizeof(a1), cookie);
  rpc_send(fd, head, strlen(head));
  rpc_send(fd, a1, sizeof(a1));
  while(!strstr(resp, "\r\n\r\n")) {
    ssize_t n = recv(fd, resp + got, 1, 0);
    ck_assert_int_eq(n, 1);
    got++;
    ck_assert_uint_lt(got, sizeof(resp) - 1);
  }
  ck_assert_msg(!strncmp(resp, "HTTP/1.1 200 ", 13), "%s", resp);
  ck_assert_msg(strstr(resp, "\r\nContent-Length: 1073741824\r\n"), "%s", resp);
  ck_assert_msg(strstr(resp, "\r\nContent-Type: application/rpc\r\n"), "%s",
                resp);
  return fd;
}

/* Both channels of a virtual connection: CONN/B1 on IN brings CONN/A3 and
 * CONN/C2 on OUT, a request PDU comes back as a response PDU with its
 * call_id and stub, and IN's close closes OUT. */
START_TEST(rpc_proxy_channels)
{
  static const char in_head[] = "RPC_IN_DATA /rpc/rpcproxy.dll?exch:6004 "
                                "HTTP/1.1\r\nHost: x\r\n"
                                "Content-Length: 1073741824\r\n\r\n";
  static const uint8_t cookie[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  static const uint8_t request[28] = {5, 0, 0, 3, 0x10, 0,   0,   0,  28, 0,
                                      0, 0, 7, 0, 0,    0,   4,   0,  0,  0,
                                      0, 0, 9, 0, 'e',  'c', 'h', 'o'};
  struct backend *b = start_backend(0, NULL);
  uint8_t b1[104], got[72];
  int out = rpc_out(b, cookie);
  int in = rpc_connect(b);

  rpc_rts(b1, sizeof(b1), cookie);
  rpc_send(in, in_head, strlen(in_head));
  rpc_send(in, b1, sizeof(b1));
  /* CONN/A3 (28 bytes) and CONN/C2 (44 bytes). */
  rpc_recv(out, got, 72);
  ck_assert_int_eq(got[2], 20);
  ck_assert_int_eq(got[8], 28);
  ck_assert_int_eq(got[28 + 2], 20);
  ck_assert_int_eq(got[28 + 8], 44);
  rpc_send(in, request, sizeof(request));
  rpc_recv(out, got, sizeof(request));
  ck_assert_int_eq(got[2], 2);  /* response */
  ck_assert_int_eq(got[12], 7); /* call_id */
  ck_assert_int_eq(got[22], 0); /* cancel_count where opnum was */
  ck_assert_int_eq(memcmp(got + 24, "echo", 4), 0);
  close(in);
  /* The virtual connection is over: OUT's answer is cut. */
  ck_assert_int_eq(recv(out, got, sizeof(got), 0), 0);
  close(out);
  ck_assert_int_eq(backend_wait_idle(b, 5000), 0);
  /* Two requests reached Exchange, none of them EWS. */
  assert_stats(b, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  backend_stop(b);
}
END_TEST

/* A backend stops with an OUT channel waiting (its connection suspended)
 * and an IN channel open, without hanging or leaking (libmicrohttpd must
 * not stop with a connection suspended; the ASan build checks leaks). */
START_TEST(rpc_proxy_stop_with_channels_open)
{
  static const char in_head[] = "RPC_IN_DATA /rpc/rpcproxy.dll?exch:6004 "
                                "HTTP/1.1\r\nHost: x\r\n"
                                "Content-Length: 1073741824\r\n\r\n";
  static const uint8_t cookie[16] = {9};
  static const uint8_t other[16] = {8};
  struct backend *b = start_backend(0, NULL);
  uint8_t b1[104];
  int out = rpc_out(b, cookie);
  int in = rpc_connect(b);

  /* A CONN/B1 naming no virtual connection: read, and ignored. */
  rpc_rts(b1, sizeof(b1), other);
  rpc_send(in, in_head, strlen(in_head));
  rpc_send(in, b1, sizeof(b1));
  backend_stop(b);
  /* The waiting OUT answer was resumed and cut: its connection is closed,
   * with nothing sent after the head. */
  ck_assert_int_eq(recv(out, b1, sizeof(b1), 0), 0);
  close(in);
  close(out);
}
END_TEST

START_TEST(start_errors_are_one_line)
{
  struct backend_config cfg;
  struct backend *b = start_backend(0, NULL);
  struct backend *other = (struct backend *)&cfg;
  char err[256] = "";
  char want[64];

  memset(&cfg, 0, sizeof(cfg));
  cfg.port = backend_port(b);
  ck_assert_int_eq(backend_start(&cfg, &other, err, sizeof(err)), -1);
  ck_assert_ptr_null(other);
  snprintf(want, sizeof(want), "Exchange: cannot listen on 127.0.0.1:%u: ",
           (unsigned)backend_port(b));
  ck_assert_msg(!strncmp(err, want, strlen(want)), "got '%s'", err);
  ck_assert_ptr_nonnull(strstr(err, "Address already in use"));
  ck_assert_ptr_null(strchr(err, '\n'));

  cfg.port = 0;
  cfg.bind_host = "localhost";
  ck_assert_int_eq(backend_start(&cfg, &other, err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "'localhost' is not a numeric address"));
  backend_stop(b);
  backend_stop(NULL);
}
END_TEST

static Suite *backend_suite(void)
{
  Suite *s = suite_create("backend");
  TCase *tc = tcase_create("backend");

  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, empty_post_is_seed_fault);
  tcase_add_test(tc, raw_bytes_http10_keepalive);
  tcase_add_test(tc, oof_settings);
  tcase_add_test(tc, availability_per_mailbox);
  tcase_add_test(tc, availability_bad_window_faults);
  tcase_add_test(tc, malformed_xml_fault);
  tcase_add_test(tc, wrong_documents_fault);
  tcase_add_test(tc, autodiscover_carries_ews_url);
  tcase_add_test(tc, autodiscover_invalid_request);
  tcase_add_test(tc, not_found_and_bad_method);
  tcase_add_test(tc, body_over_cap_is_413);
  tcase_add_test(tc, date_follows_clock);
  tcase_add_test(tc, keepalive_one_connection);
  tcase_add_test(tc, concurrent_clients_consistent_counts);
  tcase_add_test(tc, trace_classifies_authorization);
  tcase_add_test(tc, stop_with_connections_open);
  tcase_add_test(tc, start_errors_are_one_line);
  tcase_add_test(tc, rpc_proxy_channels);
  tcase_add_test(tc, rpc_proxy_stop_with_channels_open);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  int failed;

  if(curl_global_init(CURL_GLOBAL_DEFAULT)) {
    fprintf(stderr, "test_backend: curl_global_init failed\n");
    return 1;
  }
  xmlInitParser();
  failed = kbt_run(backend_suite());
  curl_global_cleanup();
  return failed ? 1 : 0;
}
