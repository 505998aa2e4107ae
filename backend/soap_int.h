/*
 * soap_int.h - internal to the files behind soap.h (soap.c, xmlread.c,
 * xmlwrite.c, ews.c, freebusy.c, autodiscover.c): the namespaces, the
 * limits, and the helpers they share.
 */
#ifndef BACKEND_SOAP_INT_H
#define BACKEND_SOAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>
#include <libxml/xmlwriter.h>

#include "soap.h"

/* A fault reason is one line of at most this many bytes. */
#define SOAP_MAX_REASON 320
/* The longest mailbox address or timestamp text we accept from a request. */
#define SOAP_MAX_TEXT 320

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

/* ---- soap.c: replies and the text forms every reply uses ----------------- */

/* soap_fault with a printf-formatted reason. */
enum soap_result soap__faultf(struct soap_reply *reply, const char *code,
                              const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* src as one printable-ASCII line of at most SOAP_MAX_REASON bytes. */
void soap__one_line(char *dst, size_t dstlen, const char *src);

/* t (seconds since the epoch, UTC) as xs:dateTime without a zone. */
void soap__iso_time(int64_t t, char out[32]);

/* ---- xmlread.c: parsing a request and finding its elements --------------- */

/* Parses body safely; NULL with a one-line reason in why. */
xmlDocPtr soap__parse(const char *body, size_t len, char *why, size_t whylen);

/* Whether node is the element {ns}name. */
bool soap__is(const xmlNode *node, const char *ns, const char *name);

/* parent's first element child {ns}name, or NULL. */
xmlNode *soap__child(const xmlNode *parent, const char *ns, const char *name);

/* parent's first element child, or NULL. */
xmlNode *soap__first_element(const xmlNode *parent);

/* node's trimmed text into out; false when empty or too long. */
bool soap__text(const xmlNode *node, char *out, size_t outlen);

/* "{namespace}name" of node, one line, for fault reasons. */
void soap__qname(const xmlNode *node, char *out, size_t outlen);

/* ---- xmlwrite.c: building a reply's XML ---------------------------------- */

/* A libxml2 text writer into memory with a sticky failure flag, so a run
 * of writes is checked once at the end (like curl's dynbuf). */
struct soap_xml {
  xmlBufferPtr buf;
  xmlTextWriterPtr w;
  bool failed;
};

/* Opens the writer and writes the XML declaration. */
void soap__xml_open(struct soap_xml *x);
/* Starts element prefix:name, declaring ns on it when not NULL. */
void soap__xml_start(struct soap_xml *x, const char *prefix, const char *name,
                     const char *ns);
/* Ends the innermost open element. */
void soap__xml_end(struct soap_xml *x);
/* Writes attribute name="value". */
void soap__xml_attr(struct soap_xml *x, const char *name, const char *value);
/* Writes <name>text</name>, text escaped. */
void soap__xml_elem(struct soap_xml *x, const char *name, const char *text);
/* Writes the empty element <name/>. */
void soap__xml_empty(struct soap_xml *x, const char *name);
/* Writes text, escaped, inside the open element. */
void soap__xml_text(struct soap_xml *x, const char *text);
/* Finishes the document into out and frees the writer. */
enum soap_result soap__xml_close(struct soap_xml *x, struct kb_buf *out);
/* Opens a SOAP 1.1 envelope with Exchange's header, leaving Body open. */
void soap__xml_envelope(struct soap_xml *x);
/* Writes a Success ResponseMessage with ResponseCode NoError. */
void soap__xml_success(struct soap_xml *x);

/* ---- freebusy.c ---------------------------------------------------------- */

/* Answers GetUserAvailability (op is its request element). */
enum soap_result soap__availability(const xmlNode *op,
                                    struct soap_reply *reply);

#endif /* BACKEND_SOAP_INT_H */
