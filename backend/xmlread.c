/*
 * xmlread.c - reading a request's XML with libxml2: the parse (no network,
 * no entity substitution, a DTD stops it, nothing printed, the first error
 * kept as a one-line reason) and element lookups by namespace and local
 * name.
 */
#include "soap_int.h"

#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>

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
  soap__one_line(state->message, sizeof(state->message),
                 error->message ? error->message : "no reason given");
}

/* Parses body (no network, no entity substitution, no DTD, nothing printed).
 * Returns the document (the caller frees it with xmlFreeDoc), or NULL with a
 * one-line reason in why: libxml2's first problem with its line, or the DTD
 * refusal, or out of memory. */
xmlDocPtr soap__parse(const char *body, size_t len, char *why, size_t whylen)
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
    soap__one_line(why, whylen, raw);
  }
  xmlFreeParserCtxt(ctxt);
  return doc;
}

/* Returns true when node is an element named name in namespace ns. */
bool soap__is(const xmlNode *node, const char *ns, const char *name)
{
  return node && node->type == XML_ELEMENT_NODE && node->ns && node->ns->href &&
         xmlStrEqual(node->ns->href, BAD_CAST ns) &&
         xmlStrEqual(node->name, BAD_CAST name);
}

/* Returns parent's first element child named {ns}name, or NULL. */
xmlNode *soap__child(const xmlNode *parent, const char *ns, const char *name)
{
  xmlNode *node = parent ? parent->children : NULL;

  for(; node; node = node->next) {
    if(soap__is(node, ns, name)) {
      return node;
    }
  }
  return NULL;
}

/* Returns parent's first element child, whatever its name, or NULL. */
xmlNode *soap__first_element(const xmlNode *parent)
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
bool soap__text(const xmlNode *node, char *out, size_t outlen)
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
void soap__qname(const xmlNode *node, char *out, size_t outlen)
{
  char raw[SOAP_MAX_REASON];

  if(node->ns && node->ns->href) {
    snprintf(raw, sizeof(raw), "{%s}%s", (const char *)node->ns->href,
             (const char *)node->name);
  }
  else {
    snprintf(raw, sizeof(raw), "%s", (const char *)node->name);
  }
  soap__one_line(out, outlen, raw);
}
