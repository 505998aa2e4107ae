/*
 * soap.c - the reply every builder fills (soap.h): its life, ASP.NET's SOAP
 * 1.2 fault, IIS's static pages, and the text forms replies share (one-line
 * reasons, EWS times). The builders are ews.c, freebusy.c and
 * autodiscover.c; mhd.c wraps them in libmicrohttpd.
 */
#include "soap_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libxml/entities.h>

/* Responses are built from bounded inputs; this cap is a backstop. */
#define SOAP_MAX_RESPONSE ((size_t)64 * 1024 * 1024)

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

/* Copies src into a one-line, printable-ASCII reason of at most
 * SOAP_MAX_REASON bytes: control and non-ASCII bytes become '?', runs of
 * whitespace one space, and a trailing newline (libxml2 ends its messages
 * with one) disappears. Never fails. */
void soap__one_line(char *dst, size_t dstlen, const char *src)
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
void soap__iso_time(int64_t t, char out[32])
{
  struct tm tm;
  time_t tt = (time_t)t;

  if(!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm)) {
    snprintf(out, 32, "1970-01-01T00:00:00");
  }
}

/* The reason is escaped by libxml2 and printed into ASP.NET's template, so
 * the empty-body fault stays the support case's 479 bytes. */
enum soap_result soap_fault(struct soap_reply *reply, const char *code,
                            const char *reason)
{
  char line[SOAP_MAX_REASON];
  xmlChar *escaped;
  enum soap_result result = SOAP_NOMEM;

  soap__one_line(line, sizeof(line), reason);
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
enum soap_result soap__faultf(struct soap_reply *reply, const char *code,
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
