/*
 * backend.c - Exchange 2007 (IIS 7) EWS and Outlook Autodiscover, served by
 * libmicrohttpd. See backend.h for the routes and README.md for the folder.
 *
 * Shape: one libmicrohttpd daemon on a small internal thread pool. Each TCP
 * connection gets a struct backend_conn (its trace id) in MHD's socket
 * context; each request gets a struct backend_req in MHD's request context,
 * holding the body in a capped kb_buf. When the body is complete the request
 * is answered in one go: build the reply, count it, trace it, queue it.
 * Handlers never block.
 */
#include "backend.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libxml/entities.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlwriter.h>
#include <microhttpd.h>
#include <nettle/base64.h>

#include "kb_buf.h"

#define BACKEND_ORIGIN "backend"
#define BACKEND_DEFAULT_HOST "127.0.0.1"
#define BACKEND_DEFAULT_EWS_URL                                                \
  "https://autodiscover.fabrikam.com/EWS/Exchange.asmx"
#define BACKEND_DEFAULT_MAX_BODY ((size_t)1024 * 1024)

#define BACKEND_EWS_PATH "/EWS/Exchange.asmx"
#define BACKEND_AUTODISCOVER_PATH "/autodiscover/autodiscover.xml"

/* libmicrohttpd tuning. The memory limit bounds what one connection may
 * spend on its request line and headers (NTLM type 3 headers are a few KiB);
 * the timeout is IIS 7's default connectionTimeout. */
#define BACKEND_THREADS 2u
#define BACKEND_CONN_MEMORY ((size_t)64 * 1024)
#define BACKEND_CONN_TIMEOUT_S 120u
#define BACKEND_CONN_LIMIT 512u

/* Responses are built from bounded inputs; this cap is a backstop. */
#define BACKEND_MAX_RESPONSE ((size_t)64 * 1024 * 1024)
/* A fault reason is one line of at most this many bytes. */
#define BACKEND_MAX_REASON 320
/* The longest mailbox address or timestamp text we accept from a request. */
#define BACKEND_MAX_TEXT 320

/* Exchange 2007's GetUserAvailability limits. */
#define BACKEND_MAX_MAILBOXES 100
#define BACKEND_MAX_WINDOW_S ((int64_t)42 * 24 * 3600)
#define BACKEND_DEFAULT_INTERVAL_MIN 30
#define BACKEND_MIN_INTERVAL_MIN 5
#define BACKEND_MAX_INTERVAL_MIN 1440

#define NS_SOAP11 "http://schemas.xmlsoap.org/soap/envelope/"
#define NS_SOAP12 "http://www.w3.org/2003/05/soap-envelope"
#define NS_XSI "http://www.w3.org/2001/XMLSchema-instance"
#define NS_XSD "http://www.w3.org/2001/XMLSchema"
#define NS_MESSAGES                                                            \
  "http://schemas.microsoft.com/exchange/services/2006/messages"
#define NS_TYPES "http://schemas.microsoft.com/exchange/services/2006/types"
#define NS_AD_REQUEST                                                          \
  "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/"  \
  "2006"
#define NS_AD_RESPONSE_OUTLOOK                                                 \
  "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/" \
  "2006a"
#define NS_AD_RESPONSE                                                         \
  "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"

#define CT_SOAP12 "application/soap+xml; charset=utf-8"
#define CT_XML "text/xml; charset=utf-8"
#define CT_HTML "text/html"

/* ASP.NET 2.0's SOAP 1.2 fault, byte for byte: with the reason "Server was
 * unable to process request. ---> Root element is missing." it is exactly
 * the 479 bytes of the support case's response. */
#define BACKEND_FAULT_FMT                                                      \
  "<?xml version=\"1.0\" encoding=\"utf-8\"?>"                                 \
  "<soap:Envelope xmlns:soap=\"" NS_SOAP12 "\" xmlns:xsi=\"" NS_XSI            \
  "\" xmlns:xsd=\"" NS_XSD "\">"                                               \
  "<soap:Body><soap:Fault><soap:Code><soap:Value>%s</soap:Value></soap:Code>"  \
  "<soap:Reason><soap:Text xml:lang=\"en\">%s</soap:Text></soap:Reason>"       \
  "<soap:Detail /></soap:Fault></soap:Body></soap:Envelope>"

#define FAULT_RECEIVER "soap:Receiver"
#define FAULT_SENDER "soap:Sender"
#define REASON_EMPTY                                                           \
  "Server was unable to process request. ---> Root element is missing."
#define REASON_READ "Server was unable to read request. ---> "

/* Exchange 2007 SP1 as it names itself in soap:Header. */
#define EXCHANGE_MAJOR "8"
#define EXCHANGE_MINOR "1"
#define EXCHANGE_BUILD "240"
#define EXCHANGE_BUILD_MINOR "6"
#define EXCHANGE_ORG_DN                                                        \
  "/o=Fabrikam/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
#define EXCHANGE_DEPLOYMENT_ID "644560b8-a1ce-429c-8ace-23395843f701"
#define EXCHANGE_AD_ERROR_ID "2477272013"

static const char backend_html_404[] =
    "<html><head><title>404 - File or directory not found.</title></head>"
    "<body><h2>404 - File or directory not found.</h2><p>The resource you "
    "are looking for might have been removed, had its name changed, or is "
    "temporarily unavailable.</p></body></html>";
static const char backend_html_405[] =
    "<html><head><title>405 - HTTP verb used to access this page is not "
    "allowed.</title></head><body><h2>405 - HTTP verb used to access this "
    "page is not allowed.</h2><p>The page you are looking for cannot be "
    "displayed because an invalid method (HTTP verb) was used.</p></body>"
    "</html>";
static const char backend_html_413[] =
    "<html><head><title>413 - Request Entity Too Large</title></head>"
    "<body><h2>413 - Request Entity Too Large</h2><p>The request body is "
    "larger than this server accepts.</p></body></html>";

/* Where a request goes, decided from its method and path alone. */
enum backend_route {
  BACKEND_ROUTE_EWS,
  BACKEND_ROUTE_AUTODISCOVER,
  BACKEND_ROUTE_NOT_FOUND,
  BACKEND_ROUTE_BAD_METHOD
};

/* What a reply was, for the counters. */
enum backend_outcome {
  BACKEND_OUT_SOAP_FAULT,
  BACKEND_OUT_OOF,
  BACKEND_OUT_AVAILABILITY,
  BACKEND_OUT_AUTODISCOVER,
  BACKEND_OUT_AUTODISCOVER_ERROR,
  BACKEND_OUT_NOT_FOUND,
  BACKEND_OUT_BAD_METHOD,
  BACKEND_OUT_TOO_LARGE
};

/* How a request body is held while it arrives. */
enum backend_body_state {
  BACKEND_BODY_BUFFERING, /* kept in req->body */
  BACKEND_BODY_DISCARD,   /* counted, not kept (404/405 routes) */
  BACKEND_BODY_TOO_LARGE, /* over max_body: counted, not kept */
  BACKEND_BODY_NOMEM      /* an append failed: counted, not kept */
};

/* Result of the EWS / autodiscover builders. */
enum backend_result { BACKEND_OK = 0, BACKEND_NOMEM = -1 };

struct backend {
  struct MHD_Daemon *daemon;
  uint16_t port;
  char *ews_url;   /* owned copy */
  size_t max_body; /* effective cap, never above INT_MAX (libxml2 takes int) */
  struct kb_clock clock;
  struct kb_trace trace;
  struct kb_names names;
  pthread_mutex_t lock; /* guards stats and next_conn */
  struct backend_stats stats;
  uint64_t next_conn;
};

/* MHD's per-TCP-connection socket context: created when the connection
 * opens, freed when it closes. */
struct backend_conn {
  uint64_t id;
  char name[96]; /* the name the peer claimed (kb_names), or "" */
};

/* MHD's per-request context: created on the first call of the access
 * handler, freed in the request-completed notification. */
struct backend_req {
  enum backend_route route;
  enum backend_body_state body_state;
  enum kb_auth auth;
  uint64_t conn;
  const char *conn_name; /* the connection's, which outlives the request */
  size_t received; /* body bytes seen, kept or not */
  bool answered;   /* a response has been queued */
  bool ews_post;   /* counts towards stats.ews_posts */
  struct kb_buf body;
};

/* One response before it is handed to libmicrohttpd. */
struct backend_reply {
  const char *who; /* the connection's name, for its timeline; may be NULL */
  unsigned int status;
  const char *content_type;
  enum backend_outcome outcome;
  bool allow_post; /* add "Allow: POST" */
  struct kb_buf body;
};

/* ---- small helpers ---------------------------------------------------- */

/* Copies src into a one-line, printable-ASCII reason of at most
 * BACKEND_MAX_REASON bytes: control and non-ASCII bytes become '?', runs of
 * whitespace one space, and a trailing newline (libxml2 ends its messages
 * with one) disappears. Never fails. */
static void backend_one_line(char *dst, size_t dstlen, const char *src)
{
  size_t n = 0;
  bool space = false;

  if(dstlen > BACKEND_MAX_REASON) {
    dstlen = BACKEND_MAX_REASON;
  }
  if(!dstlen) {
    return;
  }
  for(; *src && n + 1 < dstlen; src++) {
    unsigned char c = (unsigned char)*src;
    if(c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      space = n > 0;
      continue;
    }
    if(space && n + 2 < dstlen) {
      dst[n++] = ' ';
    }
    space = false;
    dst[n++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
  }
  dst[n] = '\0';
}

/* Formats t (seconds since the epoch, UTC) as xs:dateTime without a zone,
 * "2009-03-17T16:00:00", the form EWS uses. Never fails. */
static void backend_iso_time(int64_t t, char out[32])
{
  struct tm tm;
  time_t tt = (time_t)t;

  if(!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm)) {
    snprintf(out, 32, "1970-01-01T00:00:00");
  }
}

/* Parses an xs:dateTime "YYYY-MM-DDThh:mm:ss" (fraction and zone suffix
 * ignored: times are taken as UTC, the request's TimeZone is not applied).
 * Returns true and sets *out, or false when text is not a valid date. */
static bool backend_parse_time(const char *text, int64_t *out)
{
  struct tm tm;
  struct tm back;
  int year, mon, day, hour, min, sec;
  int used = 0;
  time_t t;

  if(sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min,
            &sec, &used) != 6 ||
     used != 19 || year < 1970 || year > 9999) {
    return false;
  }
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  t = timegm(&tm);
  /* timegm normalises 2009-02-30 to 2009-03-02; a round trip catches it. */
  if(t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != day ||
     back.tm_mon != mon - 1 || back.tm_hour != hour || back.tm_min != min ||
     back.tm_sec != sec) {
    return false;
  }
  *out = (int64_t)t;
  return true;
}

/* Returns true when node is an element named name in namespace ns. */
static bool backend_is(const xmlNode *node, const char *ns, const char *name)
{
  return node && node->type == XML_ELEMENT_NODE && node->ns && node->ns->href &&
         xmlStrEqual(node->ns->href, BAD_CAST ns) &&
         xmlStrEqual(node->name, BAD_CAST name);
}

/* Returns parent's first element child named {ns}name, or NULL. */
static xmlNode *backend_child(const xmlNode *parent, const char *ns,
                              const char *name)
{
  xmlNode *node = parent ? parent->children : NULL;

  for(; node; node = node->next) {
    if(backend_is(node, ns, name)) {
      return node;
    }
  }
  return NULL;
}

/* Returns parent's first element child, whatever its name, or NULL. */
static xmlNode *backend_first_element(const xmlNode *parent)
{
  xmlNode *node = parent ? parent->children : NULL;

  while(node && node->type != XML_ELEMENT_NODE) {
    node = node->next;
  }
  return node;
}

/* Copies node's text content, trimmed of surrounding whitespace, into out.
 * Returns true when it is non-empty and fits; false otherwise (also when
 * node is NULL or out of memory). */
static bool backend_text(const xmlNode *node, char *out, size_t outlen)
{
  xmlChar *content = node ? xmlNodeGetContent(node) : NULL;
  bool ok = false;

  if(content) {
    const char *start = (const char *)content;
    size_t len = strlen(start);

    while(len && strchr(" \t\r\n", *start)) {
      start++;
      len--;
    }
    while(len && strchr(" \t\r\n", start[len - 1])) {
      len--;
    }
    if(len && len < outlen) {
      memcpy(out, start, len);
      out[len] = '\0';
      ok = true;
    }
    xmlFree(content);
  }
  return ok;
}

/* Writes "{namespace}name" (or just "name") of node into out, one line,
 * for fault reasons. Never fails. */
static void backend_qname(const xmlNode *node, char *out, size_t outlen)
{
  char raw[BACKEND_MAX_REASON];

  if(node->ns && node->ns->href) {
    snprintf(raw, sizeof(raw), "{%s}%s", (const char *)node->ns->href,
             (const char *)node->name);
  }
  else {
    snprintf(raw, sizeof(raw), "%s", (const char *)node->name);
  }
  backend_one_line(out, outlen, raw);
}

/* Classifies an Authorization header value: KB_AUTH_NONE when absent, the
 * NTLM message type when it is "NTLM <token>" or "Negotiate <token>" whose
 * token decodes to an NTLMSSP message of type 1, 2 or 3, KB_AUTH_OTHER for
 * anything else. Only the first 16 base64 characters (12 bytes: signature
 * and type) are decoded. Never fails. */
static enum kb_auth backend_classify_auth(const char *value)
{
  static const uint8_t signature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
  struct base64_decode_ctx ctx;
  uint8_t raw[BASE64_DECODE_LENGTH(16)];
  size_t rawlen = 0;
  size_t skip;
  enum kb_auth result = KB_AUTH_OTHER;

  if(!value) {
    return KB_AUTH_NONE;
  }
  if(!strncasecmp(value, "NTLM ", 5)) {
    skip = 5;
  }
  else if(!strncasecmp(value, "Negotiate ", 10)) {
    skip = 10;
  }
  else {
    return KB_AUTH_OTHER;
  }
  value += skip;
  value += strspn(value, " ");
  if(strlen(value) < 16) {
    return KB_AUTH_OTHER;
  }
  base64_decode_init(&ctx);
  if(base64_decode_update(&ctx, &rawlen, raw, 16, value) && rawlen >= 12 &&
     !memcmp(raw, signature, sizeof(signature))) {
    uint32_t type = (uint32_t)raw[8] | (uint32_t)raw[9] << 8 |
                    (uint32_t)raw[10] << 16 | (uint32_t)raw[11] << 24;
    if(type == 1) {
      result = KB_AUTH_NTLM_NEGOTIATE;
    }
    else if(type == 2) {
      result = KB_AUTH_NTLM_CHALLENGE;
    }
    else if(type == 3) {
      result = KB_AUTH_NTLM_AUTHENTICATE;
    }
  }
  return result;
}

/* ---- building XML ------------------------------------------------------ */

/* A libxml2 text writer into memory with a sticky failure flag, so a run
 * of writes is checked once at the end (like curl's dynbuf). */
struct backend_xml {
  xmlBufferPtr buf;
  xmlTextWriterPtr w;
  bool failed;
};

/* Opens the writer and writes the XML declaration. On failure x->failed is
 * set; bx_close must be called either way. */
static void bx_open(struct backend_xml *x)
{
  x->buf = xmlBufferCreate();
  x->w = x->buf ? xmlNewTextWriterMemory(x->buf, 0) : NULL;
  x->failed = !x->w;
  if(!x->failed && xmlTextWriterStartDocument(x->w, NULL, "utf-8", NULL) < 0) {
    x->failed = true;
  }
}

/* Starts element prefix:name; ns, when not NULL, is declared on it (as the
 * default namespace when prefix is NULL). */
static void bx_start(struct backend_xml *x, const char *prefix,
                     const char *name, const char *ns)
{
  if(!x->failed && xmlTextWriterStartElementNS(
                       x->w, BAD_CAST prefix, BAD_CAST name, BAD_CAST ns) < 0) {
    x->failed = true;
  }
}

/* Ends the innermost open element. */
static void bx_end(struct backend_xml *x)
{
  if(!x->failed && xmlTextWriterEndElement(x->w) < 0) {
    x->failed = true;
  }
}

/* Writes attribute prefix:name="value" (namespace declarations included). */
static void bx_attr(struct backend_xml *x, const char *name, const char *value)
{
  if(!x->failed &&
     xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST value) < 0) {
    x->failed = true;
  }
}

/* Writes <name>text</name> in the current default namespace; the writer
 * escapes text. */
static void bx_elem(struct backend_xml *x, const char *name, const char *text)
{
  if(!x->failed &&
     xmlTextWriterWriteElement(x->w, BAD_CAST name, BAD_CAST text) < 0) {
    x->failed = true;
  }
}

/* Writes an empty element <name/> in the current default namespace. */
static void bx_empty(struct backend_xml *x, const char *name)
{
  bx_start(x, NULL, name, NULL);
  bx_end(x);
}

/* Finishes the document and appends it to out. Frees the writer in every
 * case. Returns BACKEND_OK, or BACKEND_NOMEM when any write failed. */
static enum backend_result bx_close(struct backend_xml *x, struct kb_buf *out)
{
  enum backend_result result = BACKEND_NOMEM;

  if(!x->failed && xmlTextWriterEndDocument(x->w) >= 0 &&
     xmlTextWriterFlush(x->w) >= 0 &&
     kb_buf_add(out, xmlBufferContent(x->buf),
                (size_t)xmlBufferLength(x->buf)) == KB_BUF_OK) {
    result = BACKEND_OK;
  }
  if(x->w) {
    xmlFreeTextWriter(x->w);
  }
  if(x->buf) {
    xmlBufferFree(x->buf);
  }
  x->w = NULL;
  x->buf = NULL;
  return result;
}

/* Opens a SOAP 1.1 envelope with Exchange's ServerVersionInfo header and
 * leaves soap:Body open. */
static void bx_soap_open(struct backend_xml *x)
{
  bx_open(x);
  bx_start(x, "soap", "Envelope", NS_SOAP11);
  bx_attr(x, "xmlns:xsi", NS_XSI);
  bx_attr(x, "xmlns:xsd", NS_XSD);
  bx_start(x, "soap", "Header", NULL);
  bx_start(x, "t", "ServerVersionInfo", NS_TYPES);
  bx_attr(x, "MajorVersion", EXCHANGE_MAJOR);
  bx_attr(x, "MinorVersion", EXCHANGE_MINOR);
  bx_attr(x, "MajorBuildNumber", EXCHANGE_BUILD);
  bx_attr(x, "MinorBuildNumber", EXCHANGE_BUILD_MINOR);
  bx_end(x); /* ServerVersionInfo */
  bx_end(x); /* Header */
  bx_start(x, "soap", "Body", NULL);
}

/* Writes <ResponseMessage ResponseClass="Success"><ResponseCode>NoError. */
static void bx_success(struct backend_xml *x)
{
  bx_start(x, NULL, "ResponseMessage", NULL);
  bx_attr(x, "ResponseClass", "Success");
  bx_elem(x, "ResponseCode", "NoError");
  bx_end(x);
}

/* ---- replies ---------------------------------------------------------- */

/* Fills reply with a SOAP 1.2 fault (500, application/soap+xml) whose
 * code is code and whose reason is reason, made one line and escaped by
 * libxml2. Returns BACKEND_OK or BACKEND_NOMEM. */
static enum backend_result backend_fault(struct backend_reply *reply,
                                         const char *code, const char *reason)
{
  char line[BACKEND_MAX_REASON];
  xmlChar *escaped;
  enum backend_result result = BACKEND_NOMEM;

  backend_one_line(line, sizeof(line), reason);
  escaped = xmlEncodeSpecialChars(NULL, BAD_CAST line);
  if(escaped) {
    kb_buf_reset(&reply->body);
    if(kb_buf_printf(&reply->body, BACKEND_FAULT_FMT, code,
                     (const char *)escaped) == KB_BUF_OK) {
      result = BACKEND_OK;
    }
    xmlFree(escaped);
  }
  reply->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
  reply->content_type = CT_SOAP12;
  reply->outcome = BACKEND_OUT_SOAP_FAULT;
  return result;
}

/* Same as backend_fault with a printf-formatted reason. */
static enum backend_result backend_faultf(struct backend_reply *reply,
                                          const char *code, const char *fmt,
                                          ...)
    __attribute__((format(printf, 3, 4)));
static enum backend_result backend_faultf(struct backend_reply *reply,
                                          const char *code, const char *fmt,
                                          ...)
{
  char reason[BACKEND_MAX_REASON * 2];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  return backend_fault(reply, code, reason);
}

/* Fills reply with a static HTML page. Returns BACKEND_OK or BACKEND_NOMEM. */
static enum backend_result backend_html(struct backend_reply *reply,
                                        unsigned int status,
                                        enum backend_outcome outcome,
                                        const char *page)
{
  reply->status = status;
  reply->content_type = CT_HTML;
  reply->outcome = outcome;
  return kb_buf_add(&reply->body, page, strlen(page)) == KB_BUF_OK
             ? BACKEND_OK
             : BACKEND_NOMEM;
}

/* What the parser callbacks saw, behind ctxt->_private. */
struct backend_parse_state {
  bool saw_dtd;
  bool have_error;
  int line;
  char message[BACKEND_MAX_REASON];
};

/* Stops the parse as soon as a DTD appears: SOAP forbids them, and refusing
 * before any declaration is read leaves entity expansion nothing to do. */
static void backend_on_dtd(void *ctx, const xmlChar *name,
                           const xmlChar *external_id, const xmlChar *system_id)
{
  xmlParserCtxtPtr ctxt = ctx;
  struct backend_parse_state *state = ctxt->_private;

  (void)name;
  (void)external_id;
  (void)system_id;
  state->saw_dtd = true;
  xmlStopParser(ctxt);
}

/* Keeps the first error libxml2 reports (it goes on after some and reports
 * consequences; the first is the one worth naming) and prints nothing. */
static void backend_on_xml_error(void *ctx, xmlErrorPtr error)
{
  xmlParserCtxtPtr ctxt = ctx;
  struct backend_parse_state *state = ctxt->_private;

  if(state->have_error || !error || error->level < XML_ERR_ERROR) {
    return;
  }
  state->have_error = true;
  state->line = error->line;
  backend_one_line(state->message, sizeof(state->message),
                   error->message ? error->message : "no reason given");
}

/* Parses body (no network, no entity substitution, no DTD, nothing printed).
 * Returns the document (the caller frees it with xmlFreeDoc), or NULL with a
 * one-line reason in why: libxml2's first problem with its line, or the DTD
 * refusal, or out of memory. */
static xmlDocPtr backend_parse(const struct kb_buf *body, char *why,
                               size_t whylen)
{
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  xmlDocPtr doc = NULL;
  struct backend_parse_state state;

  if(!ctxt) {
    snprintf(why, whylen, "the server ran out of memory parsing the request");
    return NULL;
  }
  memset(&state, 0, sizeof(state));
  ctxt->_private = &state;
  ctxt->sax->internalSubset = backend_on_dtd;
  ctxt->sax->serror = backend_on_xml_error;
  doc = xmlCtxtReadMemory(
      ctxt, body->data ? body->data : "", (int)body->len, NULL, NULL,
      XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if(doc && (state.saw_dtd || state.have_error)) {
    xmlFreeDoc(doc);
    doc = NULL;
  }
  if(!doc) {
    char raw[BACKEND_MAX_REASON * 2];

    if(state.saw_dtd) {
      snprintf(raw, sizeof(raw), "DTDs are not allowed in SOAP messages");
    }
    else if(state.have_error) {
      snprintf(raw, sizeof(raw), "XML parse error at line %d: %s", state.line,
               state.message);
    }
    else {
      snprintf(raw, sizeof(raw), "XML parse error (libxml2 gave no reason)");
    }
    backend_one_line(why, whylen, raw);
  }
  xmlFreeParserCtxt(ctxt);
  return doc;
}

/* Answers GetUserOofSettings: OOF disabled, with the default one-day
 * duration starting at the clock's current hour. Fills reply with a fault
 * when the request names no mailbox. Returns BACKEND_OK or BACKEND_NOMEM. */
static enum backend_result backend_oof(const struct backend *b,
                                       const xmlNode *op,
                                       struct backend_reply *reply)
{
  struct backend_xml x;
  char address[BACKEND_MAX_TEXT];
  char start[32];
  char end[32];
  int64_t now = kb_clock_now(&b->clock, reply->who) / 1000;

  if(!backend_text(backend_child(backend_child(op, NS_TYPES, "Mailbox"),
                                 NS_TYPES, "Address"),
                   address, sizeof(address))) {
    return backend_fault(
        reply, FAULT_SENDER,
        "GetUserOofSettingsRequest has no t:Mailbox/t:Address; "
        "send the mailbox's SMTP address.");
  }
  backend_iso_time(now - now % 3600, start);
  backend_iso_time(now - now % 3600 + 24 * 3600, end);

  bx_soap_open(&x);
  bx_start(&x, NULL, "GetUserOofSettingsResponse", NS_MESSAGES);
  bx_success(&x);
  bx_start(&x, NULL, "OofSettings", NS_TYPES);
  bx_elem(&x, "OofState", "Disabled");
  bx_elem(&x, "ExternalAudience", "All");
  bx_start(&x, NULL, "Duration", NULL);
  bx_elem(&x, "StartTime", start);
  bx_elem(&x, "EndTime", end);
  bx_end(&x); /* Duration */
  bx_start(&x, NULL, "InternalReply", NULL);
  bx_empty(&x, "Message");
  bx_end(&x);
  bx_start(&x, NULL, "ExternalReply", NULL);
  bx_empty(&x, "Message");
  bx_end(&x);
  bx_end(&x); /* OofSettings */
  bx_elem(&x, "AllowExternalOof", "All");
  reply->status = MHD_HTTP_OK;
  reply->content_type = CT_XML;
  reply->outcome = BACKEND_OUT_OOF;
  return bx_close(&x, &reply->body);
}

/* Free/busy status codes of MergedFreeBusy, in increasing priority. */
enum backend_busy {
  BACKEND_BUSY_FREE = 0,
  BACKEND_BUSY_TENTATIVE = 1,
  BACKEND_BUSY_BUSY = 2
};

#define BACKEND_FNV_OFFSET UINT64_C(14695981039346656037)
#define BACKEND_FNV_PRIME UINT64_C(1099511628211)

/* Returns the FNV-1a hash of the lower-cased address: the per-mailbox seed
 * of its free/busy pattern. */
static uint64_t backend_address_seed(const char *address)
{
  uint64_t h = BACKEND_FNV_OFFSET;

  for(; *address; address++) {
    char c = *address;
    h = (h ^ (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c)) * BACKEND_FNV_PRIME;
  }
  return h;
}

/* Returns the deterministic status of the hour starting at hour_start for
 * the mailbox whose seed is seed: working hours (09-17 UTC, Monday-Friday)
 * are busy or tentative by a hash of the seed and the hour, everything else
 * is free. Depends on nothing but its arguments. */
static enum backend_busy backend_hour_status(uint64_t seed, int64_t hour_start)
{
  uint64_t h = seed;
  int64_t days = hour_start / 86400;
  int hour_of_day = (int)(hour_start % 86400 / 3600);
  int weekday = (int)((days + 4) % 7); /* 1970-01-01 was a Thursday */
  uint64_t hour = (uint64_t)(hour_start / 3600);
  int i;

  if(weekday == 0 || weekday == 6 || hour_of_day < 9 || hour_of_day >= 17) {
    return BACKEND_BUSY_FREE;
  }
  for(i = 0; i < 8; i++) {
    h = (h ^ (uint8_t)(hour >> (8 * i))) * BACKEND_FNV_PRIME;
  }
  switch(h % 10) {
  case 0:
  case 1:
  case 2:
    return BACKEND_BUSY_BUSY;
  case 3:
    return BACKEND_BUSY_TENTATIVE;
  default:
    return BACKEND_BUSY_FREE;
  }
}

/* The request's free/busy question, validated. */
struct backend_fb_query {
  int64_t start;
  int64_t end;
  int interval_s;
  char view[32];
  bool merged;
  bool events;
};

/* Reads t:FreeBusyViewOptions from op into q. Returns NULL, or a one-line
 * reason (a static string) when the options are missing or out of
 * Exchange's limits. */
static const char *backend_fb_options(const xmlNode *op,
                                      struct backend_fb_query *q)
{
  static const char *const views[] = {
      "MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged"};
  const xmlNode *opts = backend_child(op, NS_TYPES, "FreeBusyViewOptions");
  const xmlNode *window = backend_child(opts, NS_TYPES, "TimeWindow");
  char text[BACKEND_MAX_TEXT];
  char *end;
  long minutes = BACKEND_DEFAULT_INTERVAL_MIN;

  if(!opts) {
    return "GetUserAvailabilityRequest has no t:FreeBusyViewOptions; "
           "send one with a t:TimeWindow.";
  }
  if(!backend_text(backend_child(window, NS_TYPES, "StartTime"), text,
                   sizeof(text)) ||
     !backend_parse_time(text, &q->start) ||
     !backend_text(backend_child(window, NS_TYPES, "EndTime"), text,
                   sizeof(text)) ||
     !backend_parse_time(text, &q->end)) {
    return "t:TimeWindow needs t:StartTime and t:EndTime as "
           "YYYY-MM-DDThh:mm:ss.";
  }
  if(q->end <= q->start || q->end - q->start > BACKEND_MAX_WINDOW_S) {
    return "t:TimeWindow must end after it starts and span at most 42 days.";
  }
  if(backend_text(
         backend_child(opts, NS_TYPES, "MergedFreeBusyIntervalInMinutes"), text,
         sizeof(text))) {
    errno = 0;
    minutes = strtol(text, &end, 10);
    if(errno || *end || minutes < BACKEND_MIN_INTERVAL_MIN ||
       minutes > BACKEND_MAX_INTERVAL_MIN) {
      return "t:MergedFreeBusyIntervalInMinutes must be 5 to 1440.";
    }
  }
  q->interval_s = (int)minutes * 60;
  snprintf(q->view, sizeof(q->view), "FreeBusyMerged");
  if(backend_text(backend_child(opts, NS_TYPES, "RequestedView"), text,
                  sizeof(text))) {
    size_t i;

    for(i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
      if(!strcmp(text, views[i])) {
        break;
      }
    }
    if(i == sizeof(views) / sizeof(views[0])) {
      return "t:RequestedView must be MergedOnly, FreeBusy, FreeBusyMerged, "
             "Detailed or DetailedMerged.";
    }
    snprintf(q->view, sizeof(q->view), "%s", views[i]);
  }
  q->merged = strstr(q->view, "Merged") != NULL;
  q->events = strcmp(q->view, "MergedOnly") != 0;
  return NULL;
}

/* Writes t:MergedFreeBusy: one digit per interval of q's window, each the
 * busiest hour the interval overlaps. Written in chunks so a 42-day window
 * at 5 minutes (12096 slots) needs no big buffer. */
static void backend_fb_merged(struct backend_xml *x, uint64_t seed,
                              const struct backend_fb_query *q)
{
  char slots[2048];
  size_t n = 0;

  bx_start(x, NULL, "MergedFreeBusy", NS_TYPES);
  for(int64_t slot = q->start; slot < q->end; slot += q->interval_s) {
    enum backend_busy worst = BACKEND_BUSY_FREE;

    for(int64_t hour = slot - slot % 3600; hour < slot + q->interval_s;
        hour += 3600) {
      enum backend_busy status = backend_hour_status(seed, hour);
      worst = status > worst ? status : worst;
    }
    slots[n++] = (char)('0' + worst);
    if(n == sizeof(slots) - 1 || slot + q->interval_s >= q->end) {
      slots[n] = '\0';
      if(!x->failed && xmlTextWriterWriteString(x->w, BAD_CAST slots) < 0) {
        x->failed = true;
      }
      n = 0;
    }
  }
  bx_end(x);
}

/* Writes t:CalendarEventArray: one event per non-free hour overlapping q's
 * window. */
static void backend_fb_events(struct backend_xml *x, uint64_t seed,
                              const struct backend_fb_query *q)
{
  bx_start(x, NULL, "CalendarEventArray", NS_TYPES);
  for(int64_t hour = q->start - q->start % 3600; hour < q->end; hour += 3600) {
    enum backend_busy status = backend_hour_status(seed, hour);
    char start[32];
    char end[32];

    if(status == BACKEND_BUSY_FREE) {
      continue;
    }
    backend_iso_time(hour, start);
    backend_iso_time(hour + 3600, end);
    bx_start(x, NULL, "CalendarEvent", NULL);
    bx_elem(x, "StartTime", start);
    bx_elem(x, "EndTime", end);
    bx_elem(x, "BusyType", status == BACKEND_BUSY_BUSY ? "Busy" : "Tentative");
    bx_end(x);
  }
  bx_end(x);
}

/* Writes one FreeBusyResponse for address over q's window. */
static void backend_fb_one(struct backend_xml *x, const char *address,
                           const struct backend_fb_query *q)
{
  uint64_t seed = backend_address_seed(address);

  bx_start(x, NULL, "FreeBusyResponse", NULL);
  bx_success(x);
  bx_start(x, NULL, "FreeBusyView", NULL);
  bx_start(x, NULL, "FreeBusyViewType", NS_TYPES);
  if(!x->failed && xmlTextWriterWriteString(x->w, BAD_CAST q->view) < 0) {
    x->failed = true;
  }
  bx_end(x);
  if(q->merged) {
    backend_fb_merged(x, seed, q);
  }
  if(q->events) {
    backend_fb_events(x, seed, q);
  }
  bx_end(x); /* FreeBusyView */
  bx_end(x); /* FreeBusyResponse */
}

/* Answers GetUserAvailability with one FreeBusyResponse per t:MailboxData,
 * in request order, derived only from each address and the request's
 * window. Fills reply with a fault when the request is incomplete or out of
 * Exchange's limits. Returns BACKEND_OK or BACKEND_NOMEM. */
static enum backend_result backend_availability(const xmlNode *op,
                                                struct backend_reply *reply)
{
  const xmlNode *array = backend_child(op, NS_MESSAGES, "MailboxDataArray");
  const xmlNode *node;
  struct backend_fb_query q;
  struct backend_xml x;
  char address[BACKEND_MAX_TEXT];
  const char *why;
  int count = 0;

  if(!array) {
    /* Some clients put MailboxDataArray in the types namespace. */
    array = backend_child(op, NS_TYPES, "MailboxDataArray");
  }
  for(node = array ? array->children : NULL; node; node = node->next) {
    if(!backend_is(node, NS_TYPES, "MailboxData")) {
      continue;
    }
    if(!backend_text(backend_child(backend_child(node, NS_TYPES, "Email"),
                                   NS_TYPES, "Address"),
                     address, sizeof(address))) {
      return backend_fault(reply, FAULT_SENDER,
                           "A t:MailboxData has no t:Email/t:Address; send "
                           "each mailbox's SMTP address.");
    }
    count++;
  }
  if(count == 0 || count > BACKEND_MAX_MAILBOXES) {
    return backend_fault(reply, FAULT_SENDER,
                         "GetUserAvailabilityRequest needs 1 to 100 "
                         "t:MailboxData in its MailboxDataArray.");
  }
  why = backend_fb_options(op, &q);
  if(why) {
    return backend_fault(reply, FAULT_SENDER, why);
  }

  bx_soap_open(&x);
  bx_start(&x, NULL, "GetUserAvailabilityResponse", NS_MESSAGES);
  bx_start(&x, NULL, "FreeBusyResponseArray", NULL);
  for(node = array->children; node; node = node->next) {
    if(backend_is(node, NS_TYPES, "MailboxData") &&
       backend_text(backend_child(backend_child(node, NS_TYPES, "Email"),
                                  NS_TYPES, "Address"),
                    address, sizeof(address))) {
      backend_fb_one(&x, address, &q);
    }
  }
  reply->status = MHD_HTTP_OK;
  reply->content_type = CT_XML;
  reply->outcome = BACKEND_OUT_AVAILABILITY;
  return bx_close(&x, &reply->body);
}

/* Answers a non-empty POST to EWS: parse, check the SOAP envelope, and
 * dispatch on the operation element. Every failure becomes a SOAP fault
 * naming it. Returns BACKEND_OK or BACKEND_NOMEM. */
static enum backend_result backend_ews(const struct backend *b,
                                       const struct kb_buf *body,
                                       struct backend_reply *reply)
{
  char why[BACKEND_MAX_REASON];
  char name[BACKEND_MAX_REASON];
  xmlDocPtr doc = backend_parse(body, why, sizeof(why));
  const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
  const xmlNode *soap_body = NULL;
  const xmlNode *op;
  const char *soap_ns = NULL;
  enum backend_result result;

  if(!doc) {
    return backend_faultf(reply, FAULT_RECEIVER, REASON_READ "%s", why);
  }
  if(backend_is(root, NS_SOAP11, "Envelope")) {
    soap_ns = NS_SOAP11;
  }
  else if(backend_is(root, NS_SOAP12, "Envelope")) {
    soap_ns = NS_SOAP12;
  }
  if(!soap_ns) {
    backend_qname(root, name, sizeof(name));
    result = backend_faultf(reply, FAULT_SENDER,
                            REASON_READ "The request is not a SOAP envelope: "
                                        "its root element is %s.",
                            name);
  }
  else if(!(soap_body = backend_child(root, soap_ns, "Body")) ||
          !(op = backend_first_element(soap_body))) {
    result = backend_fault(reply, FAULT_SENDER,
                           REASON_READ "The SOAP envelope has no operation "
                                       "element in its Body.");
  }
  else if(backend_is(op, NS_MESSAGES, "GetUserOofSettingsRequest")) {
    result = backend_oof(b, op, reply);
  }
  else if(backend_is(op, NS_MESSAGES, "GetUserAvailabilityRequest")) {
    result = backend_availability(op, reply);
  }
  else {
    backend_qname(op, name, sizeof(name));
    result = backend_faultf(reply, FAULT_SENDER,
                            "The operation %s is not implemented by this "
                            "server; it answers GetUserOofSettings and "
                            "GetUserAvailability.",
                            name);
  }
  xmlFreeDoc(doc);
  return result;
}

/* Fills reply with Exchange's autodiscover error (still a 200, as Exchange
 * does): ErrorCode 600, "Invalid Request", stamped with the clock's time.
 * Returns BACKEND_OK or BACKEND_NOMEM. */
static enum backend_result
backend_autodiscover_error(const struct backend *b, struct backend_reply *reply)
{
  struct backend_xml x;
  int64_t ms = kb_clock_now(&b->clock, reply->who);
  int64_t day_ms = ((ms % 86400000) + 86400000) % 86400000;
  char stamp[32];

  snprintf(stamp, sizeof(stamp), "%02d:%02d:%02d.%03d0000",
           (int)(day_ms / 3600000), (int)(day_ms / 60000 % 60),
           (int)(day_ms / 1000 % 60), (int)(day_ms % 1000));
  bx_open(&x);
  bx_start(&x, NULL, "Autodiscover", NS_AD_RESPONSE);
  bx_start(&x, NULL, "Response", NULL);
  bx_start(&x, NULL, "Error", NULL);
  bx_attr(&x, "Time", stamp);
  bx_attr(&x, "Id", EXCHANGE_AD_ERROR_ID);
  bx_elem(&x, "ErrorCode", "600");
  bx_elem(&x, "Message", "Invalid Request");
  bx_empty(&x, "DebugData");
  reply->status = MHD_HTTP_OK;
  reply->content_type = CT_XML;
  reply->outcome = BACKEND_OUT_AUTODISCOVER_ERROR;
  return bx_close(&x, &reply->body);
}

/* Writes a display name made from the address's local part into out:
 * "john.doe@fabrikam.com" gives "John Doe". Never fails. */
static void backend_display_name(const char *address, char *out, size_t outlen)
{
  size_t n = 0;
  bool word_start = true;

  for(; *address && *address != '@' && n + 1 < outlen; address++) {
    char c = *address;
    if(c == '.' || c == '_' || c == '-') {
      if(n && out[n - 1] != ' ') {
        out[n++] = ' ';
      }
      word_start = true;
      continue;
    }
    out[n++] = (word_start && c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
    word_start = false;
  }
  while(n && out[n - 1] == ' ') {
    n--;
  }
  out[n] = '\0';
  if(!n) {
    snprintf(out, outlen, "%s", "Mailbox User");
  }
}

/* Writes the host part of url ("https://host[:port]/...") into out, or
 * "localhost" when url has no authority. Never fails. */
static void backend_url_host(const char *url, char *out, size_t outlen)
{
  const char *start = strstr(url, "://");
  size_t len;

  start = start ? start + 3 : url;
  len = strcspn(start, ":/?#");
  if(!len || len >= outlen) {
    snprintf(out, outlen, "localhost");
    return;
  }
  memcpy(out, start, len);
  out[len] = '\0';
}

/* Answers POST /autodiscover/autodiscover.xml: the Outlook response for the
 * request's EMailAddress, with ASUrl and OOFUrl set to the EWS URL, or
 * Exchange's error response when the request is empty, malformed, or not an
 * Outlook request for the 2006a response schema. Returns BACKEND_OK or
 * BACKEND_NOMEM. */
static enum backend_result backend_autodiscover(const struct backend *b,
                                                const struct kb_buf *body,
                                                struct backend_reply *reply)
{
  char why[BACKEND_MAX_REASON];
  char address[BACKEND_MAX_TEXT];
  char schema[BACKEND_MAX_TEXT];
  char local[BACKEND_MAX_TEXT];
  char display[BACKEND_MAX_TEXT];
  char dn[BACKEND_MAX_TEXT * 2];
  char host[BACKEND_MAX_TEXT];
  xmlDocPtr doc = body->len ? backend_parse(body, why, sizeof(why)) : NULL;
  const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
  const xmlNode *request = NULL;
  struct backend_xml x;
  enum backend_result result;

  if(backend_is(root, NS_AD_REQUEST, "Autodiscover")) {
    request = backend_child(root, NS_AD_REQUEST, "Request");
  }
  if(!request ||
     !backend_text(backend_child(request, NS_AD_REQUEST, "EMailAddress"),
                   address, sizeof(address)) ||
     !strchr(address, '@') ||
     !backend_text(
         backend_child(request, NS_AD_REQUEST, "AcceptableResponseSchema"),
         schema, sizeof(schema)) ||
     strcmp(schema, NS_AD_RESPONSE_OUTLOOK)) {
    xmlFreeDoc(doc);
    return backend_autodiscover_error(b, reply);
  }
  xmlFreeDoc(doc);

  snprintf(local, sizeof(local), "%.*s", (int)strcspn(address, "@"), address);
  backend_display_name(address, display, sizeof(display));
  snprintf(dn, sizeof(dn), EXCHANGE_ORG_DN "/cn=Recipients/cn=%s", local);
  backend_url_host(b->ews_url, host, sizeof(host));

  bx_open(&x);
  bx_start(&x, NULL, "Autodiscover", NS_AD_RESPONSE);
  bx_start(&x, NULL, "Response", NS_AD_RESPONSE_OUTLOOK);
  bx_start(&x, NULL, "User", NULL);
  bx_elem(&x, "DisplayName", display);
  bx_elem(&x, "LegacyDN", dn);
  bx_elem(&x, "DeploymentId", EXCHANGE_DEPLOYMENT_ID);
  bx_end(&x); /* User */
  bx_start(&x, NULL, "Account", NULL);
  bx_elem(&x, "AccountType", "email");
  bx_elem(&x, "Action", "settings");
  bx_start(&x, NULL, "Protocol", NULL);
  bx_elem(&x, "Type", "EXCH");
  bx_elem(&x, "Server", host);
  bx_elem(&x, "ServerDN",
          EXCHANGE_ORG_DN "/cn=Configuration/cn=Servers/cn=EXCH01");
  bx_elem(&x, "ASUrl", b->ews_url);
  bx_elem(&x, "OOFUrl", b->ews_url);
  bx_end(&x); /* Protocol EXCH */
  bx_start(&x, NULL, "Protocol", NULL);
  bx_elem(&x, "Type", "EXPR");
  bx_elem(&x, "Server", host);
  bx_elem(&x, "SSL", strncasecmp(b->ews_url, "https:", 6) ? "Off" : "On");
  bx_elem(&x, "AuthPackage", "Ntlm");
  bx_elem(&x, "ASUrl", b->ews_url);
  bx_elem(&x, "OOFUrl", b->ews_url);
  bx_end(&x); /* Protocol EXPR */
  reply->status = MHD_HTTP_OK;
  reply->content_type = CT_XML;
  reply->outcome = BACKEND_OUT_AUTODISCOVER;
  result = bx_close(&x, &reply->body);
  return result;
}

/* ---- libmicrohttpd glue ------------------------------------------------ */

/* Adds to the counters what reply says about req, under the lock. */
static void backend_count(struct backend *b, const struct backend_req *req,
                          const struct backend_reply *reply)
{
  struct backend_stats *s = &b->stats;

  pthread_mutex_lock(&b->lock);
  s->requests++;
  if(req->ews_post) {
    s->ews_posts++;
    if(req->received == 0 && req->body_state == BACKEND_BODY_BUFFERING) {
      s->empty_posts++;
    }
  }
  switch(reply->outcome) {
  case BACKEND_OUT_SOAP_FAULT:
    s->soap_faults++;
    break;
  case BACKEND_OUT_OOF:
    s->oof_ok++;
    break;
  case BACKEND_OUT_AVAILABILITY:
    s->availability_ok++;
    break;
  case BACKEND_OUT_AUTODISCOVER:
    s->autodiscover_ok++;
    break;
  case BACKEND_OUT_AUTODISCOVER_ERROR:
    break;
  case BACKEND_OUT_NOT_FOUND:
    s->not_found++;
    break;
  case BACKEND_OUT_BAD_METHOD:
    s->bad_method++;
    break;
  case BACKEND_OUT_TOO_LARGE:
    s->too_large++;
    break;
  }
  pthread_mutex_unlock(&b->lock);
}

/* Hands reply to libmicrohttpd with the IIS headers in the support case's
 * order, after counting and tracing it (so a client that has its response
 * always sees it counted). Returns MHD_YES, or MHD_NO when libmicrohttpd
 * could not take it (it then closes the connection). reply stays owned by
 * the caller. */
static enum MHD_Result backend_send(struct backend *b,
                                    struct MHD_Connection *connection,
                                    struct backend_req *req, const char *method,
                                    const char *url,
                                    const struct backend_reply *reply)
{
  struct MHD_Response *response;
  char date[KB_HTTP_DATE_LEN];
  struct kb_exchange exchange;
  struct kb_trace_event ev;
  enum MHD_Result result = MHD_NO;

  response = MHD_create_response_from_buffer(
      reply->body.len, reply->body.data ? reply->body.data : (char *)"",
      MHD_RESPMEM_MUST_COPY);
  if(!response) {
    return MHD_NO;
  }
  kb_http_date(kb_clock_now(&b->clock, reply->who), date);
  /* IIS answers "Connection: Keep-Alive". libmicrohttpd strips a
   * Keep-Alive set by the application and writes its own Connection header
   * (first); this flag makes it say Keep-Alive to HTTP/1.1 clients too. */
  if(MHD_set_response_options(response, MHD_RF_SEND_KEEP_ALIVE_HEADER,
                              MHD_RO_END) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_DATE, date) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                             reply->content_type) == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_SERVER,
                             "Microsoft-IIS/7.0") == MHD_YES &&
     MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL,
                             "private") == MHD_YES &&
     (!reply->allow_post ||
      MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "POST") ==
          MHD_YES) &&
     MHD_add_response_header(response, "X-AspNet-Version", "2.0.50727") ==
         MHD_YES &&
     MHD_add_response_header(response, "X-Powered-By", "ASP.NET") == MHD_YES) {
    backend_count(b, req, reply);

    memset(&exchange, 0, sizeof(exchange));
    exchange.method = method;
    exchange.path = url;
    exchange.req_auth = req->auth;
    exchange.req_body_len = req->received;
    exchange.status = (int)reply->status;
    exchange.resp_auth = KB_AUTH_NONE;
    exchange.resp_body_len = reply->body.len;
    memset(&ev, 0, sizeof(ev));
    ev.kind = KB_TRACE_EXCHANGE;
    ev.hop = KB_HOP_PROXY_BACKEND;
    ev.side = KB_SIDE_SERVER;
    ev.origin = BACKEND_ORIGIN;
    ev.conn = req->conn;
    ev.conn_name = req->conn_name;
    ev.exchange = &exchange;
    kb_trace_emit(&b->trace, &ev);

    req->answered = true;
    result = MHD_queue_response(connection, reply->status, response);
  }
  MHD_destroy_response(response);
  return result;
}

/* Builds the reply for a request whose body is complete (or refused) and
 * sends it. Returns what backend_send returns, or MHD_NO when out of
 * memory. */
static enum MHD_Result backend_answer(struct backend *b,
                                      struct MHD_Connection *connection,
                                      struct backend_req *req,
                                      const char *method, const char *url)
{
  struct backend_reply reply;
  enum backend_result built;
  enum MHD_Result result = MHD_NO;

  memset(&reply, 0, sizeof(reply));
  reply.who = req->conn_name;
  kb_buf_init(&reply.body, BACKEND_MAX_RESPONSE);
  if(req->route == BACKEND_ROUTE_NOT_FOUND) {
    built = backend_html(&reply, MHD_HTTP_NOT_FOUND, BACKEND_OUT_NOT_FOUND,
                         backend_html_404);
  }
  else if(req->route == BACKEND_ROUTE_BAD_METHOD) {
    reply.allow_post = true;
    built = backend_html(&reply, MHD_HTTP_METHOD_NOT_ALLOWED,
                         BACKEND_OUT_BAD_METHOD, backend_html_405);
  }
  else if(req->body_state == BACKEND_BODY_TOO_LARGE) {
    built = backend_html(&reply, MHD_HTTP_CONTENT_TOO_LARGE,
                         BACKEND_OUT_TOO_LARGE, backend_html_413);
  }
  else if(req->body_state == BACKEND_BODY_NOMEM) {
    built = backend_fault(&reply, FAULT_RECEIVER,
                          "The server ran out of memory reading the request; "
                          "retry later.");
  }
  else if(req->route == BACKEND_ROUTE_AUTODISCOVER) {
    built = backend_autodiscover(b, &req->body, &reply);
  }
  else if(req->received == 0) {
    built = backend_fault(&reply, FAULT_RECEIVER, REASON_EMPTY);
  }
  else {
    built = backend_ews(b, &req->body, &reply);
  }
  if(built == BACKEND_OK) {
    result = backend_send(b, connection, req, method, url, &reply);
  }
  kb_buf_free(&reply.body);
  return result;
}

/* Returns true when the request declares a Content-Length above max. */
static bool backend_declared_too_big(struct MHD_Connection *connection,
                                     size_t max)
{
  const char *value = MHD_lookup_connection_value(
      connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long declared;
  char *end;

  if(!value) {
    return false;
  }
  errno = 0;
  declared = strtoull(value, &end, 10);
  return errno == ERANGE || (end != value && declared > max);
}

/* Returns a new request context for method and url on connection, routed
 * and with its Authorization classified, or NULL when out of memory. The
 * caller owns it; backend_on_completed frees it. */
static struct backend_req *backend_req_new(const struct backend *b,
                                           struct MHD_Connection *connection,
                                           const char *url, const char *method)
{
  struct backend_req *req = calloc(1, sizeof(*req));
  const union MHD_ConnectionInfo *info;
  const struct backend_conn *conn;

  if(!req) {
    return NULL;
  }
  /* IIS matches paths case-insensitively. */
  if(!strcasecmp(url, BACKEND_EWS_PATH)) {
    req->route = BACKEND_ROUTE_EWS;
  }
  else if(!strcasecmp(url, BACKEND_AUTODISCOVER_PATH)) {
    req->route = BACKEND_ROUTE_AUTODISCOVER;
  }
  else {
    req->route = BACKEND_ROUTE_NOT_FOUND;
  }
  if(req->route != BACKEND_ROUTE_NOT_FOUND && strcmp(method, "POST")) {
    req->route = BACKEND_ROUTE_BAD_METHOD;
  }
  req->ews_post = req->route == BACKEND_ROUTE_EWS;
  req->body_state = (req->route == BACKEND_ROUTE_EWS ||
                     req->route == BACKEND_ROUTE_AUTODISCOVER)
                        ? BACKEND_BODY_BUFFERING
                        : BACKEND_BODY_DISCARD;
  kb_buf_init(&req->body, b->max_body);
  req->auth = backend_classify_auth(MHD_lookup_connection_value(
      connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION));
  info =
      MHD_get_connection_info(connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn = info ? info->socket_context : NULL;
  req->conn = conn ? conn->id : 0;
  req->conn_name = conn && conn->name[0] ? conn->name : NULL;
  return req;
}

/* Takes one piece of request body: kept while buffering and under the cap,
 * otherwise only counted (the buffer is released the moment the cap is
 * passed, so nothing past it is ever held). */
static void backend_req_feed(struct backend_req *req, const char *data,
                             size_t len)
{
  enum kb_buf_result added;

  req->received += len;
  if(req->body_state != BACKEND_BODY_BUFFERING) {
    return;
  }
  added = kb_buf_add(&req->body, data, len);
  if(added != KB_BUF_OK) {
    req->body_state =
        added == KB_BUF_TOO_BIG ? BACKEND_BODY_TOO_LARGE : BACKEND_BODY_NOMEM;
    kb_buf_free(&req->body);
  }
}

/* libmicrohttpd's access handler: called once with the headers, once per
 * piece of body, and once more when the body is complete; answers on the
 * last call, or on the first when the declared body is over the cap (MHD
 * then closes the connection instead of reading the body). */
static enum MHD_Result
backend_on_request(void *cls, struct MHD_Connection *connection,
                   const char *url, const char *method, const char *version,
                   const char *upload_data, size_t *upload_data_size,
                   void **req_cls)
{
  struct backend *b = cls;
  struct backend_req *req = *req_cls;
  enum MHD_Result result = MHD_YES;

  (void)version;
  if(!req) {
    req = backend_req_new(b, connection, url, method);
    if(!req) {
      return MHD_NO;
    }
    *req_cls = req;
    if(backend_declared_too_big(connection, b->max_body)) {
      if(req->body_state == BACKEND_BODY_BUFFERING) {
        req->body_state = BACKEND_BODY_TOO_LARGE;
      }
      result = backend_answer(b, connection, req, method, url);
    }
  }
  else if(*upload_data_size) {
    backend_req_feed(req, upload_data, *upload_data_size);
    *upload_data_size = 0;
  }
  else if(!req->answered) {
    result = backend_answer(b, connection, req, method, url);
  }
  return result;
}

/* libmicrohttpd's request-completed notification: frees the request
 * context, whether or not the request was answered. */
static void backend_on_completed(void *cls, struct MHD_Connection *connection,
                                 void **req_cls,
                                 enum MHD_RequestTerminationCode toe)
{
  struct backend_req *req = *req_cls;

  (void)cls;
  (void)connection;
  (void)toe;
  if(req) {
    kb_buf_free(&req->body);
    free(req);
    *req_cls = NULL;
  }
}

/* Emits an OPEN or CLOSE trace event for connection id (named name). */
static void backend_trace_conn(const struct backend *b, enum kb_trace_kind kind,
                               uint64_t id, const char *name)
{
  struct kb_trace_event ev;

  memset(&ev, 0, sizeof(ev));
  ev.kind = kind;
  ev.hop = KB_HOP_PROXY_BACKEND;
  ev.side = KB_SIDE_SERVER;
  ev.origin = BACKEND_ORIGIN;
  ev.conn = id;
  ev.conn_name = name && *name ? name : NULL;
  kb_trace_emit(&b->trace, &ev);
}

/* Copies the name the peer of connection claimed for its port into name,
 * or leaves it empty. */
static void backend_resolve_peer(const struct backend *b,
                                 struct MHD_Connection *connection, char *name,
                                 size_t len)
{
  const union MHD_ConnectionInfo *info;
  const struct sockaddr *sa;
  uint16_t port;

  name[0] = '\0';
  if(!b->names.resolve)
    return;
  info = MHD_get_connection_info(connection,
                                 MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  if(!info || !info->client_addr)
    return;
  sa = info->client_addr;
  if(sa->sa_family == AF_INET)
    port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
  else if(sa->sa_family == AF_INET6)
    port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  else
    return;
  kb_names_resolve(&b->names, port, name, len);
}

/* libmicrohttpd's connection notification: on open, counts the connection,
 * gives it the next id and stores a struct backend_conn in the socket
 * context; on close, frees it. Both are traced. If the context cannot be
 * allocated the connection still works, traced as id 0. */
static void backend_on_connection(void *cls, struct MHD_Connection *connection,
                                  void **socket_context,
                                  enum MHD_ConnectionNotificationCode toe)
{
  struct backend *b = cls;
  struct backend_conn *conn = *socket_context;

  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    uint64_t id;

    pthread_mutex_lock(&b->lock);
    b->stats.connections++;
    id = ++b->next_conn;
    pthread_mutex_unlock(&b->lock);
    conn = malloc(sizeof(*conn));
    if(conn) {
      conn->id = id;
      backend_resolve_peer(b, connection, conn->name, sizeof(conn->name));
    }
    *socket_context = conn;
    backend_trace_conn(b, KB_TRACE_OPEN, id, conn ? conn->name : NULL);
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED) {
    backend_trace_conn(b, KB_TRACE_CLOSE, conn ? conn->id : 0,
                       conn ? conn->name : NULL);
    free(conn);
    *socket_context = NULL;
  }
}

/* Opens a listening TCP socket on host:port. Returns the descriptor, or -1
 * with a one-line reason in err. The caller owns the descriptor. */
static int backend_listen(const char *host, uint16_t port, char *err,
                          size_t errlen)
{
  struct addrinfo hints;
  struct addrinfo *ai = NULL;
  char service[8];
  char where[80];
  int one = 1;
  int rc;
  int fd = -1;

  if(strchr(host, ':')) {
    snprintf(where, sizeof(where), "[%s]:%u", host, (unsigned)port);
  }
  else {
    snprintf(where, sizeof(where), "%s:%u", host, (unsigned)port);
  }
  snprintf(service, sizeof(service), "%u", (unsigned)port);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  rc = getaddrinfo(host, service, &hints, &ai);
  if(rc) {
    snprintf(err, errlen,
             "cannot listen on %s: '%s' is not a numeric address (%s); use "
             "e.g. 127.0.0.1",
             where, host, gai_strerror(rc));
    goto out;
  }
  fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
  if(fd < 0) {
    snprintf(err, errlen, "cannot listen on %s: socket(): %s", where,
             strerror(errno));
    goto out;
  }
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if(bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, SOMAXCONN)) {
    snprintf(err, errlen, "cannot listen on %s: %s; pick another port or 0",
             where, strerror(errno));
    close(fd);
    fd = -1;
  }
out:
  if(ai) {
    freeaddrinfo(ai);
  }
  return fd;
}

int backend_start(const struct backend_config *config, struct backend **out,
                  char *err, size_t errlen)
{
  struct backend *b = NULL;
  const char *host;
  const union MHD_DaemonInfo *info;
  int fd = -1;
  int result = -1;

  *out = NULL;
  if(!config) {
    snprintf(err, errlen,
             "backend_start needs a config; pass a zeroed "
             "struct backend_config for the defaults");
    return -1;
  }
  host = config->bind_host ? config->bind_host : BACKEND_DEFAULT_HOST;
  /* libxml2 2.9 wants its globals set up before threads use it; repeated
   * calls are harmless. */
  xmlInitParser();

  b = calloc(1, sizeof(*b));
  if(!b || pthread_mutex_init(&b->lock, NULL)) {
    free(b);
    b = NULL;
    snprintf(err, errlen, "cannot start the backend: out of memory");
    goto out;
  }
  b->ews_url =
      strdup(config->ews_url ? config->ews_url : BACKEND_DEFAULT_EWS_URL);
  if(!b->ews_url) {
    snprintf(err, errlen, "cannot start the backend: out of memory");
    goto out;
  }
  b->max_body = config->max_body ? config->max_body : BACKEND_DEFAULT_MAX_BODY;
  if(b->max_body > INT_MAX) {
    b->max_body = INT_MAX;
  }
  b->clock = config->clock;
  b->trace = config->trace;
  b->names = config->names;

  fd = backend_listen(host, config->port, err, errlen);
  if(fd < 0) {
    goto out;
  }
  /* No MHD_USE_ERROR_LOG: libmicrohttpd stays silent; what matters is
   * traced. MHD owns fd once the daemon starts. */
  b->daemon = MHD_start_daemon(
      MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_SUPPRESS_DATE_NO_CLOCK |
          MHD_USE_ITC,
      0, NULL, NULL, backend_on_request, b, MHD_OPTION_LISTEN_SOCKET, fd,
      MHD_OPTION_THREAD_POOL_SIZE, BACKEND_THREADS,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, BACKEND_CONN_MEMORY,
      MHD_OPTION_CONNECTION_TIMEOUT, BACKEND_CONN_TIMEOUT_S,
      MHD_OPTION_CONNECTION_LIMIT, BACKEND_CONN_LIMIT,
      MHD_OPTION_NOTIFY_CONNECTION, backend_on_connection, b,
      MHD_OPTION_NOTIFY_COMPLETED, backend_on_completed, b, MHD_OPTION_END);
  if(!b->daemon) {
    snprintf(err, errlen,
             "cannot start the backend on %s:%u: libmicrohttpd refused (%s); "
             "check thread and file-descriptor limits",
             host, (unsigned)config->port, strerror(errno));
    close(fd);
    goto out;
  }
  info = MHD_get_daemon_info(b->daemon, MHD_DAEMON_INFO_BIND_PORT);
  b->port = info ? info->port : 0;
  if(!b->port) {
    snprintf(err, errlen,
             "cannot start the backend on %s: libmicrohttpd "
             "did not report its port",
             host);
    goto out;
  }
  *out = b;
  b = NULL;
  result = 0;
out:
  backend_stop(b);
  return result;
}

uint16_t backend_port(const struct backend *backend)
{
  return backend ? backend->port : 0;
}

void backend_stats(const struct backend *backend, struct backend_stats *stats)
{
  /* The lock is not part of the backend's observable state, so taking it
   * through a const pointer is fine. */
  pthread_mutex_t *lock = (pthread_mutex_t *)&backend->lock;

  pthread_mutex_lock(lock);
  *stats = backend->stats;
  pthread_mutex_unlock(lock);
}

void backend_stop(struct backend *backend)
{
  if(!backend) {
    return;
  }
  /* MHD_stop_daemon joins its threads after closing every connection, so
   * all completed/closed notifications have run when it returns. */
  if(backend->daemon) {
    MHD_stop_daemon(backend->daemon);
  }
  pthread_mutex_destroy(&backend->lock);
  free(backend->ews_url);
  free(backend);
}
