/*
 * xmlwrite.c - building a reply's XML with libxml2's xmlTextWriter, so
 * every reply is well-formed whatever the request held: elements,
 * attributes and text with one sticky failure flag, and the SOAP envelope
 * Exchange 2007 writes.
 */
#include "soap_int.h"

/* Exchange 2007 SP1 as it names itself in soap:Header. */
#define EXCHANGE_MAJOR "8"
#define EXCHANGE_MINOR "1"
#define EXCHANGE_BUILD "240"
#define EXCHANGE_BUILD_MINOR "6"

/* Opens the writer and writes the XML declaration. On failure x->failed is
 * set; soap__xml_close must be called either way. */
void soap__xml_open(struct soap_xml *x)
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
void soap__xml_start(struct soap_xml *x, const char *prefix, const char *name,
                     const char *ns)
{
  if(!x->failed && xmlTextWriterStartElementNS(
                       x->w, BAD_CAST prefix, BAD_CAST name, BAD_CAST ns) < 0) {
    x->failed = true;
  }
}

/* Ends the innermost open element. */
void soap__xml_end(struct soap_xml *x)
{
  if(!x->failed && xmlTextWriterEndElement(x->w) < 0) {
    x->failed = true;
  }
}

/* Writes attribute prefix:name="value" (namespace declarations included). */
void soap__xml_attr(struct soap_xml *x, const char *name, const char *value)
{
  if(!x->failed &&
     xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST value) < 0) {
    x->failed = true;
  }
}

/* Writes <name>text</name> in the current default namespace; the writer
 * escapes text. */
void soap__xml_elem(struct soap_xml *x, const char *name, const char *text)
{
  if(!x->failed &&
     xmlTextWriterWriteElement(x->w, BAD_CAST name, BAD_CAST text) < 0) {
    x->failed = true;
  }
}

/* Writes an empty element <name/> in the current default namespace. */
void soap__xml_empty(struct soap_xml *x, const char *name)
{
  soap__xml_start(x, NULL, name, NULL);
  soap__xml_end(x);
}

/* Finishes the document and appends it to out. Frees the writer in every
 * case. Returns SOAP_OK, or SOAP_NOMEM when any write failed. */
enum soap_result soap__xml_close(struct soap_xml *x, struct kb_buf *out)
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
void soap__xml_envelope(struct soap_xml *x)
{
  soap__xml_open(x);
  soap__xml_start(x, "soap", "Envelope", NS_SOAP11);
  soap__xml_attr(x, "xmlns:xsi", NS_XSI);
  soap__xml_attr(x, "xmlns:xsd", NS_XSD);
  soap__xml_start(x, "soap", "Header", NULL);
  soap__xml_start(x, "t", "ServerVersionInfo", NS_TYPES);
  soap__xml_attr(x, "MajorVersion", EXCHANGE_MAJOR);
  soap__xml_attr(x, "MinorVersion", EXCHANGE_MINOR);
  soap__xml_attr(x, "MajorBuildNumber", EXCHANGE_BUILD);
  soap__xml_attr(x, "MinorBuildNumber", EXCHANGE_BUILD_MINOR);
  soap__xml_end(x); /* ServerVersionInfo */
  soap__xml_end(x); /* Header */
  soap__xml_start(x, "soap", "Body", NULL);
}

/* Writes <ResponseMessage ResponseClass="Success"><ResponseCode>NoError. */
void soap__xml_success(struct soap_xml *x)
{
  soap__xml_start(x, NULL, "ResponseMessage", NULL);
  soap__xml_attr(x, "ResponseClass", "Success");
  soap__xml_elem(x, "ResponseCode", "NoError");
  soap__xml_end(x);
}

void soap__xml_text(struct soap_xml *x, const char *text)
{
  if(!x->failed && xmlTextWriterWriteString(x->w, BAD_CAST text) < 0) {
    x->failed = true;
  }
}
