/*
 * xml.c - the XML of Communicator's requests and the reading of Exchange's
 * answers (libxml2); see xml.h.
 */
#include "xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* XML namespaces of the Outlook autodiscover and EWS messages. */
#define CLIENT_NS_AD_REQUEST                                                   \
  "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/"  \
  "2006"
#define CLIENT_NS_AD_OUTER                                                     \
  "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
#define CLIENT_NS_AD_RESPONSE                                                  \
  "http://schemas.microsoft.com/exchange/autodiscover/outlook/"                \
  "responseschema/2006a"
#define CLIENT_NS_SOAP "http://schemas.xmlsoap.org/soap/envelope/"
#define CLIENT_NS_MESSAGES                                                     \
  "http://schemas.microsoft.com/exchange/services/2006/messages"
#define CLIENT_NS_TYPES                                                        \
  "http://schemas.microsoft.com/exchange/services/2006/types"

/* ---- request bodies ------------------------------------------------------ */

/* Adds a child element with escaped text to parent. Returns the child, or
 * NULL (clearing *ok) when parent is NULL or memory runs out. */
static xmlNodePtr client_xml_text(xmlNodePtr parent, xmlNsPtr ns,
                                  const char *name, const char *text, bool *ok)
{
  xmlNodePtr node = NULL;
  if(parent)
    node = xmlNewTextChild(parent, ns, BAD_CAST name, BAD_CAST text);
  if(!node)
    *ok = false;
  return node;
}

/* Adds an empty child element to parent; same contract as client_xml_text. */
static xmlNodePtr client_xml_node(xmlNodePtr parent, xmlNsPtr ns,
                                  const char *name, bool *ok)
{
  xmlNodePtr node = NULL;
  if(parent)
    node = xmlNewChild(parent, ns, BAD_CAST name, NULL);
  if(!node)
    *ok = false;
  return node;
}

/* Fills an EWS SerializableTimeZone for UTC: Exchange 2007 requires one in
 * GetUserAvailability, and UTC keeps the window independent of the host. */
static void client_xml_utc_zone(xmlNodePtr parent, xmlNsPtr t, bool *ok)
{
  static const char *const parts[] = {"StandardTime", "DaylightTime"};
  xmlNodePtr tz = client_xml_node(parent, t, "TimeZone", ok);
  size_t i;
  client_xml_text(tz, t, "Bias", "0", ok);
  for(i = 0; i < 2; i++) {
    xmlNodePtr p = client_xml_node(tz, t, parts[i], ok);
    client_xml_text(p, t, "Bias", "0", ok);
    client_xml_text(p, t, "Time", "00:00:00", ok);
    client_xml_text(p, t, "DayOrder", "1", ok);
    client_xml_text(p, t, "Month", "1", ok);
    client_xml_text(p, t, "DayOfWeek", "Sunday", ok);
  }
}

/* Formats ms since the epoch as an EWS dateTime in UTC
 * ("2009-03-17T00:00:00"). */
static void client_xml_time(int64_t ms, char out[32])
{
  time_t secs = (time_t)(ms / 1000);
  struct tm tm;
  if(!gmtime_r(&secs, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm))
    snprintf(out, 32, "1970-01-01T00:00:00");
}

/* Builds the body of the POST of kind as an XML document. Returns the
 * document (caller frees with xmlFreeDoc) or NULL when out of memory. */
static xmlDocPtr client_xml_doc(enum client_post_kind kind, const char *email,
                                const char *const *contacts, int64_t now)
{
  bool ok = true;
  xmlDocPtr doc = xmlNewDoc(BAD_CAST "1.0");
  xmlNodePtr root = NULL;
  xmlNsPtr t = NULL;
  if(!doc)
    return NULL;
  if(kind == CLIENT_POST_AUTODISCOVER) {
    xmlNodePtr req;
    root = xmlNewNode(NULL, BAD_CAST "Autodiscover");
    if(!root || !xmlNewNs(root, BAD_CAST CLIENT_NS_AD_REQUEST, NULL))
      ok = false;
    else {
      xmlDocSetRootElement(doc, root);
      xmlSetNs(root, root->nsDef);
    }
    req = client_xml_node(ok ? root : NULL, NULL, "Request", &ok);
    client_xml_text(req, NULL, "EMailAddress", email, &ok);
    client_xml_text(req, NULL, "AcceptableResponseSchema",
                    CLIENT_NS_AD_RESPONSE, &ok);
  }
  else {
    xmlNsPtr soap = NULL;
    xmlNodePtr body, op = NULL;
    root = xmlNewNode(NULL, BAD_CAST "Envelope");
    if(root) {
      xmlDocSetRootElement(doc, root);
      soap = xmlNewNs(root, BAD_CAST CLIENT_NS_SOAP, BAD_CAST "soap");
      t = xmlNewNs(root, BAD_CAST CLIENT_NS_TYPES, BAD_CAST "t");
    }
    if(!root || !soap || !t)
      ok = false;
    else
      xmlSetNs(root, soap);
    body = client_xml_node(ok ? root : NULL, soap, "Body", &ok);
    op = client_xml_node(body, NULL,
                         kind == CLIENT_POST_OOF ? "GetUserOofSettingsRequest"
                                                 : "GetUserAvailabilityRequest",
                         &ok);
    if(op) {
      xmlNsPtr m = xmlNewNs(op, BAD_CAST CLIENT_NS_MESSAGES, NULL);
      if(m)
        xmlSetNs(op, m);
      else
        ok = false;
    }
    if(kind == CLIENT_POST_OOF) {
      xmlNodePtr mbox = client_xml_node(op, t, "Mailbox", &ok);
      client_xml_text(mbox, t, "Address", email, &ok);
    }
    else {
      /* The free/busy window is the simulated day around "now", in UTC,
       * so runs on the simulated clock ask for the same window. */
      int64_t day_ms = 86400000;
      int64_t start = now - ((now % day_ms) + day_ms) % day_ms;
      char start_s[32], end_s[32];
      xmlNodePtr arr, opts, win;
      size_t i;
      client_xml_time(start, start_s);
      client_xml_time(start + day_ms, end_s);
      client_xml_utc_zone(op, t, &ok);
      arr = client_xml_node(op, NULL, "MailboxDataArray", &ok);
      for(i = 0; contacts[i]; i++) {
        xmlNodePtr md = client_xml_node(arr, t, "MailboxData", &ok);
        xmlNodePtr addr = client_xml_node(md, t, "Email", &ok);
        client_xml_text(addr, t, "Address", contacts[i], &ok);
        client_xml_text(md, t, "AttendeeType", "Required", &ok);
        client_xml_text(md, t, "ExcludeConflicts", "false", &ok);
      }
      opts = client_xml_node(op, t, "FreeBusyViewOptions", &ok);
      win = client_xml_node(opts, t, "TimeWindow", &ok);
      client_xml_text(win, t, "StartTime", start_s, &ok);
      client_xml_text(win, t, "EndTime", end_s, &ok);
      client_xml_text(opts, t, "MergedFreeBusyIntervalInMinutes", "60", &ok);
      client_xml_text(opts, t, "RequestedView", "FreeBusy", &ok);
    }
  }
  if(!ok) {
    xmlFreeDoc(doc);
    doc = NULL;
  }
  return doc;
}

int client_xml_body(enum client_post_kind kind, const char *email,
                    const char *const *contacts, int64_t now_ms, xmlChar **out,
                    int *len)
{
  int result = -1;
  xmlDocPtr doc = client_xml_doc(kind, email, contacts, now_ms);
  *out = NULL;
  *len = 0;
  if(!doc)
    goto out;
  xmlDocDumpFormatMemoryEnc(doc, out, len, "utf-8", 1);
  if(*out && *len > 0)
    result = 0;
out:
  xmlFreeDoc(doc);
  return result;
}

/* ---- response bodies ----------------------------------------------------- */

int client_xml_xpath(const struct kb_buf *body, const char *expr, char **text)
{
  int result = 0;
  xmlDocPtr doc = NULL;
  xmlXPathContextPtr ctx = NULL;
  xmlXPathObjectPtr obj = NULL;
  if(text)
    *text = NULL;
  if(!body->len || body->len > (size_t)INT32_MAX)
    goto out;
  doc =
      xmlReadMemory(body->data, (int)body->len, "response.xml", NULL,
                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if(!doc)
    goto out;
  ctx = xmlXPathNewContext(doc);
  if(!ctx || xmlXPathRegisterNs(ctx, BAD_CAST "s", BAD_CAST CLIENT_NS_SOAP) ||
     xmlXPathRegisterNs(ctx, BAD_CAST "m", BAD_CAST CLIENT_NS_MESSAGES) ||
     xmlXPathRegisterNs(ctx, BAD_CAST "ad", BAD_CAST CLIENT_NS_AD_OUTER) ||
     xmlXPathRegisterNs(ctx, BAD_CAST "a", BAD_CAST CLIENT_NS_AD_RESPONSE)) {
    result = -1;
    goto out;
  }
  obj = xmlXPathEvalExpression(BAD_CAST expr, ctx);
  if(!obj) {
    result = -1;
    goto out;
  }
  if(obj->type != XPATH_NODESET || !obj->nodesetval)
    goto out;
  result = obj->nodesetval->nodeNr;
  if(text && result > 0) {
    xmlChar *content = xmlNodeGetContent(obj->nodesetval->nodeTab[0]);
    const char *s = (const char *)content;
    size_t n;
    if(!content) {
      result = -1;
      goto out;
    }
    while(*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
      s++;
    n = strlen(s);
    while(n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' ||
                s[n - 1] == '\n'))
      n--;
    *text = strndup(s, n);
    xmlFree(content);
    if(!*text)
      result = -1;
  }
out:
  xmlXPathFreeObject(obj);
  xmlXPathFreeContext(ctx);
  xmlFreeDoc(doc);
  return result;
}
