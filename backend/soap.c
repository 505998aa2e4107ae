/*
 * soap.c - what Exchange 2007 makes of a request's bytes: EWS SOAP
 * (GetUserOofSettings, GetUserAvailability), Outlook autodiscover, and the
 * NTLM type of an Authorization header. See soap.h for the contract and
 * README.md for the answers; backend.c wraps it in libmicrohttpd.
 *
 * XML is parsed with libxml2 (no network, no entity substitution, a DTD
 * stops the parse) and written with xmlTextWriter, so every reply is
 * well-formed whatever the request held.
 */
#include "soap.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <libxml/entities.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlwriter.h>

/* Responses are built from bounded inputs; this cap is a backstop. */
#define SOAP_MAX_RESPONSE ((size_t)64 * 1024 * 1024)
/* A fault reason is one line of at most this many bytes. */
#define SOAP_MAX_REASON 320
/* The longest mailbox address or timestamp text we accept from a request. */
#define SOAP_MAX_TEXT 320

/* Exchange 2007's GetUserAvailability limits. */
#define SOAP_MAX_MAILBOXES 100
#define SOAP_MAX_WINDOW_S ((int64_t)42 * 24 * 3600)
#define SOAP_DEFAULT_INTERVAL_MIN 30
#define SOAP_MIN_INTERVAL_MIN 5
#define SOAP_MAX_INTERVAL_MIN 1440

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

/* ASP.NET 2.0's SOAP 1.2 fault, byte for byte: with the reason "Server was
 * unable to process request. ---> Root element is missing." it is exactly
 * the 479 bytes of the support case's response. */
#define SOAP_FAULT_FMT                                                         \
  "<?xml version=\"1.0\" encoding=\"utf-8\"?>"                                 \
  "<soap:Envelope xmlns:soap=\"" NS_SOAP12 "\" xmlns:xsi=\"" NS_XSI            \
  "\" xmlns:xsd=\"" NS_XSD "\">"                                               \
  "<soap:Body><soap:Fault><soap:Code><soap:Value>%s</soap:Value></soap:Code>"  \
  "<soap:Reason><soap:Text xml:lang=\"en\">%s</soap:Text></soap:Reason>"       \
  "<soap:Detail /></soap:Fault></soap:Body></soap:Envelope>"

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

/* ---- small helpers ---------------------------------------------------- */

/* Copies src into a one-line, printable-ASCII reason of at most
 * SOAP_MAX_REASON bytes: control and non-ASCII bytes become '?', runs of
 * whitespace one space, and a trailing newline (libxml2 ends its messages
 * with one) disappears. Never fails. */
static void soap_one_line(char *dst, size_t dstlen, const char *src)
{
  size_t n = 0;
  bool space = false;

  if(dstlen > SOAP_MAX_REASON) {
    dstlen = SOAP_MAX_REASON;
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
static void soap_iso_time(int64_t t, char out[32])
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
static bool soap_parse_time(const char *text, int64_t *out)
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
static bool soap_is(const xmlNode *node, const char *ns, const char *name)
{
  return node && node->type == XML_ELEMENT_NODE && node->ns && node->ns->href &&
         xmlStrEqual(node->ns->href, BAD_CAST ns) &&
         xmlStrEqual(node->name, BAD_CAST name);
}

/* Returns parent's first element child named {ns}name, or NULL. */
static xmlNode *soap_child(const xmlNode *parent, const char *ns,
                           const char *name)
{
  xmlNode *node = parent ? parent->children : NULL;

  for(; node; node = node->next) {
    if(soap_is(node, ns, name)) {
      return node;
    }
  }
  return NULL;
}

/* Returns parent's first element child, whatever its name, or NULL. */
static xmlNode *soap_first_element(const xmlNode *parent)
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
static bool soap_text(const xmlNode *node, char *out, size_t outlen)
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
static void soap_qname(const xmlNode *node, char *out, size_t outlen)
{
  char raw[SOAP_MAX_REASON];

  if(node->ns && node->ns->href) {
    snprintf(raw, sizeof(raw), "{%s}%s", (const char *)node->ns->href,
             (const char *)node->name);
  }
  else {
    snprintf(raw, sizeof(raw), "%s", (const char *)node->name);
  }
  soap_one_line(out, outlen, raw);
}

/* ---- building XML ------------------------------------------------------ */

/* A libxml2 text writer into memory with a sticky failure flag, so a run
 * of writes is checked once at the end (like curl's dynbuf). */
struct soap_xml {
  xmlBufferPtr buf;
  xmlTextWriterPtr w;
  bool failed;
};

/* Opens the writer and writes the XML declaration. On failure x->failed is
 * set; bx_close must be called either way. */
static void bx_open(struct soap_xml *x)
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
static void bx_start(struct soap_xml *x, const char *prefix, const char *name,
                     const char *ns)
{
  if(!x->failed && xmlTextWriterStartElementNS(
                       x->w, BAD_CAST prefix, BAD_CAST name, BAD_CAST ns) < 0) {
    x->failed = true;
  }
}

/* Ends the innermost open element. */
static void bx_end(struct soap_xml *x)
{
  if(!x->failed && xmlTextWriterEndElement(x->w) < 0) {
    x->failed = true;
  }
}

/* Writes attribute prefix:name="value" (namespace declarations included). */
static void bx_attr(struct soap_xml *x, const char *name, const char *value)
{
  if(!x->failed &&
     xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST value) < 0) {
    x->failed = true;
  }
}

/* Writes <name>text</name> in the current default namespace; the writer
 * escapes text. */
static void bx_elem(struct soap_xml *x, const char *name, const char *text)
{
  if(!x->failed &&
     xmlTextWriterWriteElement(x->w, BAD_CAST name, BAD_CAST text) < 0) {
    x->failed = true;
  }
}

/* Writes an empty element <name/> in the current default namespace. */
static void bx_empty(struct soap_xml *x, const char *name)
{
  bx_start(x, NULL, name, NULL);
  bx_end(x);
}

/* Finishes the document and appends it to out. Frees the writer in every
 * case. Returns SOAP_OK, or SOAP_NOMEM when any write failed. */
static enum soap_result bx_close(struct soap_xml *x, struct kb_buf *out)
{
  enum soap_result result = SOAP_NOMEM;

  if(!x->failed && xmlTextWriterEndDocument(x->w) >= 0 &&
     xmlTextWriterFlush(x->w) >= 0 &&
     kb_buf_add(out, xmlBufferContent(x->buf),
                (size_t)xmlBufferLength(x->buf)) == KB_BUF_OK) {
    result = SOAP_OK;
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
static void bx_soap_open(struct soap_xml *x)
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
static void bx_success(struct soap_xml *x)
{
  bx_start(x, NULL, "ResponseMessage", NULL);
  bx_attr(x, "ResponseClass", "Success");
  bx_elem(x, "ResponseCode", "NoError");
  bx_end(x);
}

/* ---- replies ---------------------------------------------------------- */

/* The reason is escaped by libxml2 and printed into ASP.NET's template, so
 * the empty-body fault stays the support case's 479 bytes. */
enum soap_result soap_fault(struct soap_reply *reply, const char *code,
                            const char *reason)
{
  char line[SOAP_MAX_REASON];
  xmlChar *escaped;
  enum soap_result result = SOAP_NOMEM;

  soap_one_line(line, sizeof(line), reason);
  escaped = xmlEncodeSpecialChars(NULL, BAD_CAST line);
  if(escaped) {
    kb_buf_reset(&reply->body);
    if(kb_buf_printf(&reply->body, SOAP_FAULT_FMT, code,
                     (const char *)escaped) == KB_BUF_OK) {
      result = SOAP_OK;
    }
    xmlFree(escaped);
  }
  reply->status = SOAP_HTTP_SERVER_ERROR;
  reply->content_type = SOAP_CT_SOAP12;
  reply->outcome = SOAP_OUT_SOAP_FAULT;
  return result;
}

/* Same as soap_fault with a printf-formatted reason. */
static enum soap_result soap_faultf(struct soap_reply *reply, const char *code,
                                    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum soap_result soap_faultf(struct soap_reply *reply, const char *code,
                                    const char *fmt, ...)
{
  char reason[SOAP_MAX_REASON * 2];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  return soap_fault(reply, code, reason);
}

enum soap_result soap_page(struct soap_reply *reply, unsigned int status,
                           enum soap_outcome outcome, const char *page)
{
  reply->status = status;
  reply->content_type = SOAP_CT_HTML;
  reply->outcome = outcome;
  return kb_buf_add(&reply->body, page, strlen(page)) == KB_BUF_OK ? SOAP_OK
                                                                   : SOAP_NOMEM;
}

/* What the parser callbacks saw, behind ctxt->_private. */
struct soap_parse_state {
  bool saw_dtd;
  bool have_error;
  int line;
  char message[SOAP_MAX_REASON];
};

/* Stops the parse as soon as a DTD appears: SOAP forbids them, and refusing
 * before any declaration is read leaves entity expansion nothing to do. */
static void soap_on_dtd(void *ctx, const xmlChar *name,
                        const xmlChar *external_id, const xmlChar *system_id)
{
  xmlParserCtxtPtr ctxt = ctx;
  struct soap_parse_state *state = ctxt->_private;

  (void)name;
  (void)external_id;
  (void)system_id;
  state->saw_dtd = true;
  xmlStopParser(ctxt);
}

/* Keeps the first error libxml2 reports (it goes on after some and reports
 * consequences; the first is the one worth naming) and prints nothing. */
static void soap_on_xml_error(void *ctx, xmlErrorPtr error)
{
  xmlParserCtxtPtr ctxt = ctx;
  struct soap_parse_state *state = ctxt->_private;

  if(state->have_error || !error || error->level < XML_ERR_ERROR) {
    return;
  }
  state->have_error = true;
  state->line = error->line;
  soap_one_line(state->message, sizeof(state->message),
                error->message ? error->message : "no reason given");
}

/* Parses body (no network, no entity substitution, no DTD, nothing printed).
 * Returns the document (the caller frees it with xmlFreeDoc), or NULL with a
 * one-line reason in why: libxml2's first problem with its line, or the DTD
 * refusal, or out of memory. */
static xmlDocPtr soap_parse(const char *body, size_t len, char *why,
                            size_t whylen)
{
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  xmlDocPtr doc = NULL;
  struct soap_parse_state state;

  if(!ctxt) {
    snprintf(why, whylen, "the server ran out of memory parsing the request");
    return NULL;
  }
  memset(&state, 0, sizeof(state));
  ctxt->_private = &state;
  ctxt->sax->internalSubset = soap_on_dtd;
  ctxt->sax->serror = soap_on_xml_error;
  /* Callers keep len under INT_MAX, libxml2's limit. */
  doc = xmlCtxtReadMemory(ctxt, body ? body : "", (int)len, NULL, NULL,
                          XML_PARSE_NONET | XML_PARSE_NOERROR |
                              XML_PARSE_NOWARNING);
  if(doc && (state.saw_dtd || state.have_error)) {
    xmlFreeDoc(doc);
    doc = NULL;
  }
  if(!doc) {
    char raw[SOAP_MAX_REASON * 2];

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
    soap_one_line(why, whylen, raw);
  }
  xmlFreeParserCtxt(ctxt);
  return doc;
}

/* Answers GetUserOofSettings: OOF disabled, with the default one-day
 * duration starting at the clock's current hour. Fills reply with a fault
 * when the request names no mailbox. Returns SOAP_OK or SOAP_NOMEM. */
static enum soap_result soap_oof(const struct soap_server *srv,
                                 const xmlNode *op, struct soap_reply *reply)
{
  struct soap_xml x;
  char address[SOAP_MAX_TEXT];
  char start[32];
  char end[32];
  int64_t now = kb_clock_now(&srv->clock, reply->who) / 1000;

  if(!soap_text(
         soap_child(soap_child(op, NS_TYPES, "Mailbox"), NS_TYPES, "Address"),
         address, sizeof(address))) {
    return soap_fault(reply, SOAP_FAULT_SENDER,
                      "GetUserOofSettingsRequest has no t:Mailbox/t:Address; "
                      "send the mailbox's SMTP address.");
  }
  snprintf(reply->mailbox, sizeof(reply->mailbox), "%s", address);
  soap_iso_time(now - now % 3600, start);
  soap_iso_time(now - now % 3600 + 24 * 3600, end);

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
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_OOF;
  return bx_close(&x, &reply->body);
}

/* Free/busy status codes of MergedFreeBusy, in increasing priority. */
enum soap_busy {
  SOAP_BUSY_FREE = 0,
  SOAP_BUSY_TENTATIVE = 1,
  SOAP_BUSY_BUSY = 2
};

#define SOAP_FNV_OFFSET UINT64_C(14695981039346656037)
#define SOAP_FNV_PRIME UINT64_C(1099511628211)

/* Returns the FNV-1a hash of the lower-cased address: the per-mailbox seed
 * of its free/busy pattern. */
static uint64_t soap_address_seed(const char *address)
{
  uint64_t h = SOAP_FNV_OFFSET;

  for(; *address; address++) {
    char c = *address;
    h = (h ^ (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c)) * SOAP_FNV_PRIME;
  }
  return h;
}

/* Returns the deterministic status of the hour starting at hour_start for
 * the mailbox whose seed is seed: working hours (09-17 UTC, Monday-Friday)
 * are busy or tentative by a hash of the seed and the hour, everything else
 * is free. Depends on nothing but its arguments. */
static enum soap_busy soap_hour_status(uint64_t seed, int64_t hour_start)
{
  uint64_t h = seed;
  int64_t days = hour_start / 86400;
  int hour_of_day = (int)(hour_start % 86400 / 3600);
  int weekday = (int)((days + 4) % 7); /* 1970-01-01 was a Thursday */
  uint64_t hour = (uint64_t)(hour_start / 3600);
  int i;

  if(weekday == 0 || weekday == 6 || hour_of_day < 9 || hour_of_day >= 17) {
    return SOAP_BUSY_FREE;
  }
  for(i = 0; i < 8; i++) {
    h = (h ^ (uint8_t)(hour >> (8 * i))) * SOAP_FNV_PRIME;
  }
  switch(h % 10) {
  case 0:
  case 1:
  case 2:
    return SOAP_BUSY_BUSY;
  case 3:
    return SOAP_BUSY_TENTATIVE;
  default:
    return SOAP_BUSY_FREE;
  }
}

/* The request's free/busy question, validated. */
struct soap_fb_query {
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
static const char *soap_fb_options(const xmlNode *op, struct soap_fb_query *q)
{
  static const char *const views[] = {
      "MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged"};
  const xmlNode *opts = soap_child(op, NS_TYPES, "FreeBusyViewOptions");
  const xmlNode *window = soap_child(opts, NS_TYPES, "TimeWindow");
  char text[SOAP_MAX_TEXT];
  char *end;
  long minutes = SOAP_DEFAULT_INTERVAL_MIN;

  if(!opts) {
    return "GetUserAvailabilityRequest has no t:FreeBusyViewOptions; "
           "send one with a t:TimeWindow.";
  }
  if(!soap_text(soap_child(window, NS_TYPES, "StartTime"), text,
                sizeof(text)) ||
     !soap_parse_time(text, &q->start) ||
     !soap_text(soap_child(window, NS_TYPES, "EndTime"), text, sizeof(text)) ||
     !soap_parse_time(text, &q->end)) {
    return "t:TimeWindow needs t:StartTime and t:EndTime as "
           "YYYY-MM-DDThh:mm:ss.";
  }
  if(q->end <= q->start || q->end - q->start > SOAP_MAX_WINDOW_S) {
    return "t:TimeWindow must end after it starts and span at most 42 days.";
  }
  if(soap_text(soap_child(opts, NS_TYPES, "MergedFreeBusyIntervalInMinutes"),
               text, sizeof(text))) {
    errno = 0;
    minutes = strtol(text, &end, 10);
    if(errno || *end || minutes < SOAP_MIN_INTERVAL_MIN ||
       minutes > SOAP_MAX_INTERVAL_MIN) {
      return "t:MergedFreeBusyIntervalInMinutes must be 5 to 1440.";
    }
  }
  q->interval_s = (int)minutes * 60;
  snprintf(q->view, sizeof(q->view), "FreeBusyMerged");
  if(soap_text(soap_child(opts, NS_TYPES, "RequestedView"), text,
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
static void soap_fb_merged(struct soap_xml *x, uint64_t seed,
                           const struct soap_fb_query *q)
{
  char slots[2048];
  size_t n = 0;

  bx_start(x, NULL, "MergedFreeBusy", NS_TYPES);
  for(int64_t slot = q->start; slot < q->end; slot += q->interval_s) {
    enum soap_busy worst = SOAP_BUSY_FREE;

    for(int64_t hour = slot - slot % 3600; hour < slot + q->interval_s;
        hour += 3600) {
      enum soap_busy status = soap_hour_status(seed, hour);
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
static void soap_fb_events(struct soap_xml *x, uint64_t seed,
                           const struct soap_fb_query *q)
{
  bx_start(x, NULL, "CalendarEventArray", NS_TYPES);
  for(int64_t hour = q->start - q->start % 3600; hour < q->end; hour += 3600) {
    enum soap_busy status = soap_hour_status(seed, hour);
    char start[32];
    char end[32];

    if(status == SOAP_BUSY_FREE) {
      continue;
    }
    soap_iso_time(hour, start);
    soap_iso_time(hour + 3600, end);
    bx_start(x, NULL, "CalendarEvent", NULL);
    bx_elem(x, "StartTime", start);
    bx_elem(x, "EndTime", end);
    bx_elem(x, "BusyType", status == SOAP_BUSY_BUSY ? "Busy" : "Tentative");
    bx_end(x);
  }
  bx_end(x);
}

/* Writes one FreeBusyResponse for address over q's window. */
static void soap_fb_one(struct soap_xml *x, const char *address,
                        const struct soap_fb_query *q)
{
  uint64_t seed = soap_address_seed(address);

  bx_start(x, NULL, "FreeBusyResponse", NULL);
  bx_success(x);
  bx_start(x, NULL, "FreeBusyView", NULL);
  bx_start(x, NULL, "FreeBusyViewType", NS_TYPES);
  if(!x->failed && xmlTextWriterWriteString(x->w, BAD_CAST q->view) < 0) {
    x->failed = true;
  }
  bx_end(x);
  if(q->merged) {
    soap_fb_merged(x, seed, q);
  }
  if(q->events) {
    soap_fb_events(x, seed, q);
  }
  bx_end(x); /* FreeBusyView */
  bx_end(x); /* FreeBusyResponse */
}

/* Answers GetUserAvailability with one FreeBusyResponse per t:MailboxData,
 * in request order, derived only from each address and the request's
 * window. Fills reply with a fault when the request is incomplete or out of
 * Exchange's limits. Returns SOAP_OK or SOAP_NOMEM. */
static enum soap_result soap_availability(const xmlNode *op,
                                          struct soap_reply *reply)
{
  const xmlNode *array = soap_child(op, NS_MESSAGES, "MailboxDataArray");
  const xmlNode *node;
  struct soap_fb_query q;
  struct soap_xml x;
  char address[SOAP_MAX_TEXT];
  const char *why;
  int count = 0;

  if(!array) {
    /* Some clients put MailboxDataArray in the types namespace. */
    array = soap_child(op, NS_TYPES, "MailboxDataArray");
  }
  for(node = array ? array->children : NULL; node; node = node->next) {
    if(!soap_is(node, NS_TYPES, "MailboxData")) {
      continue;
    }
    if(!soap_text(
           soap_child(soap_child(node, NS_TYPES, "Email"), NS_TYPES, "Address"),
           address, sizeof(address))) {
      return soap_fault(reply, SOAP_FAULT_SENDER,
                        "A t:MailboxData has no t:Email/t:Address; send "
                        "each mailbox's SMTP address.");
    }
    count++;
  }
  if(count == 0 || count > SOAP_MAX_MAILBOXES) {
    return soap_fault(reply, SOAP_FAULT_SENDER,
                      "GetUserAvailabilityRequest needs 1 to 100 "
                      "t:MailboxData in its MailboxDataArray.");
  }
  why = soap_fb_options(op, &q);
  if(why) {
    return soap_fault(reply, SOAP_FAULT_SENDER, why);
  }

  bx_soap_open(&x);
  bx_start(&x, NULL, "GetUserAvailabilityResponse", NS_MESSAGES);
  bx_start(&x, NULL, "FreeBusyResponseArray", NULL);
  for(node = array->children; node; node = node->next) {
    if(soap_is(node, NS_TYPES, "MailboxData") &&
       soap_text(
           soap_child(soap_child(node, NS_TYPES, "Email"), NS_TYPES, "Address"),
           address, sizeof(address))) {
      soap_fb_one(&x, address, &q);
    }
  }
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_AVAILABILITY;
  return bx_close(&x, &reply->body);
}

/* An empty body is the bug's symptom and gets the support case's fault;
 * a non-empty one is parsed, its SOAP envelope checked, and the operation
 * element dispatched on. Every failure becomes a SOAP fault naming it. */
enum soap_result soap_ews(const struct soap_server *srv, const char *body,
                          size_t len, struct soap_reply *reply)
{
  char why[SOAP_MAX_REASON];
  char name[SOAP_MAX_REASON];
  xmlDocPtr doc;
  const xmlNode *root;
  const xmlNode *soap_body = NULL;
  const xmlNode *op;
  const char *soap_ns = NULL;
  enum soap_result result;

  if(!len) {
    return soap_fault(reply, SOAP_FAULT_RECEIVER, REASON_EMPTY);
  }
  if(len > INT_MAX) {
    return soap_fault(reply, SOAP_FAULT_SENDER,
                      REASON_READ "The request is larger than 2 GiB.");
  }
  doc = soap_parse(body, len, why, sizeof(why));
  root = doc ? xmlDocGetRootElement(doc) : NULL;
  if(!doc) {
    return soap_faultf(reply, SOAP_FAULT_RECEIVER, REASON_READ "%s", why);
  }
  if(soap_is(root, NS_SOAP11, "Envelope")) {
    soap_ns = NS_SOAP11;
  }
  else if(soap_is(root, NS_SOAP12, "Envelope")) {
    soap_ns = NS_SOAP12;
  }
  if(!soap_ns) {
    soap_qname(root, name, sizeof(name));
    result = soap_faultf(reply, SOAP_FAULT_SENDER,
                         REASON_READ "The request is not a SOAP envelope: "
                                     "its root element is %s.",
                         name);
  }
  else if(!(soap_body = soap_child(root, soap_ns, "Body")) ||
          !(op = soap_first_element(soap_body))) {
    result = soap_fault(reply, SOAP_FAULT_SENDER,
                        REASON_READ "The SOAP envelope has no operation "
                                    "element in its Body.");
  }
  else if(soap_is(op, NS_MESSAGES, "GetUserOofSettingsRequest")) {
    result = soap_oof(srv, op, reply);
  }
  else if(soap_is(op, NS_MESSAGES, "GetUserAvailabilityRequest")) {
    result = soap_availability(op, reply);
  }
  else {
    soap_qname(op, name, sizeof(name));
    result = soap_faultf(reply, SOAP_FAULT_SENDER,
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
 * Returns SOAP_OK or SOAP_NOMEM. */
static enum soap_result soap_autodiscover_error(const struct soap_server *srv,
                                                struct soap_reply *reply)
{
  struct soap_xml x;
  int64_t ms = kb_clock_now(&srv->clock, reply->who);
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
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_AUTODISCOVER_ERROR;
  return bx_close(&x, &reply->body);
}

/* Writes a display name made from the address's local part into out:
 * "john.doe@fabrikam.com" gives "John Doe". Never fails. */
static void soap_display_name(const char *address, char *out, size_t outlen)
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
static void soap_url_host(const char *url, char *out, size_t outlen)
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

/* ASUrl and OOFUrl are the server's EWS URL; the display name and legacy
 * DN come from the address's local part. */
enum soap_result soap_autodiscover(const struct soap_server *srv,
                                   const char *body, size_t len,
                                   struct soap_reply *reply)
{
  char why[SOAP_MAX_REASON];
  char address[SOAP_MAX_TEXT];
  char schema[SOAP_MAX_TEXT];
  char local[SOAP_MAX_TEXT];
  char display[SOAP_MAX_TEXT];
  char dn[SOAP_MAX_TEXT * 2];
  char host[SOAP_MAX_TEXT];
  xmlDocPtr doc =
      len && len <= INT_MAX ? soap_parse(body, len, why, sizeof(why)) : NULL;
  const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
  const xmlNode *request = NULL;
  struct soap_xml x;
  enum soap_result result;

  if(soap_is(root, NS_AD_REQUEST, "Autodiscover")) {
    request = soap_child(root, NS_AD_REQUEST, "Request");
  }
  if(!request ||
     !soap_text(soap_child(request, NS_AD_REQUEST, "EMailAddress"), address,
                sizeof(address)) ||
     !strchr(address, '@') ||
     !soap_text(soap_child(request, NS_AD_REQUEST, "AcceptableResponseSchema"),
                schema, sizeof(schema)) ||
     strcmp(schema, NS_AD_RESPONSE_OUTLOOK)) {
    xmlFreeDoc(doc);
    return soap_autodiscover_error(srv, reply);
  }
  xmlFreeDoc(doc);
  snprintf(reply->mailbox, sizeof(reply->mailbox), "%s", address);

  snprintf(local, sizeof(local), "%.*s", (int)strcspn(address, "@"), address);
  soap_display_name(address, display, sizeof(display));
  snprintf(dn, sizeof(dn), EXCHANGE_ORG_DN "/cn=Recipients/cn=%s", local);
  soap_url_host(srv->ews_url, host, sizeof(host));

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
  bx_elem(&x, "ASUrl", srv->ews_url);
  bx_elem(&x, "OOFUrl", srv->ews_url);
  bx_end(&x); /* Protocol EXCH */
  bx_start(&x, NULL, "Protocol", NULL);
  bx_elem(&x, "Type", "EXPR");
  bx_elem(&x, "Server", host);
  bx_elem(&x, "SSL", strncasecmp(srv->ews_url, "https:", 6) ? "Off" : "On");
  bx_elem(&x, "AuthPackage", "Ntlm");
  bx_elem(&x, "ASUrl", srv->ews_url);
  bx_elem(&x, "OOFUrl", srv->ews_url);
  bx_end(&x); /* Protocol EXPR */
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_AUTODISCOVER;
  result = bx_close(&x, &reply->body);
  return result;
}

void soap_reply_init(struct soap_reply *reply, const char *who)
{
  memset(reply, 0, sizeof(*reply));
  reply->who = who;
  kb_buf_init(&reply->body, SOAP_MAX_RESPONSE);
}

void soap_reply_free(struct soap_reply *reply)
{
  kb_buf_free(&reply->body);
}
