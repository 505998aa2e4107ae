/*
 * xml.h - internal to client/: the XML Communicator sends (autodiscover,
 * GetUserOofSettings, GetUserAvailability) and the reading of what comes
 * back, with libxml2. No libcurl, no sockets, no client state: post.c
 * hands in what a body needs and gets bytes back, session.c hands in an
 * answer and gets what the XPath selects.
 */
#ifndef CLIENT_XML_H
#define CLIENT_XML_H

#include <libxml/xmlstring.h>
#include <stdint.h>

#include "client/client.h"
#include "common/kb_buf.h"

/* Serialises the body of the POST of kind for the mailbox email: the
 * availability request asks about contacts (NULL-terminated) over the UTC
 * day around now_ms. Returns 0 with *out / *len set (free *out with
 * xmlFree), or -1 when out of memory. */
int client_xml_body(enum client_post_kind kind, const char *email,
                    const char *const *contacts, int64_t now_ms, xmlChar **out,
                    int *len);

/* Parses body with the network off and evaluates expr with the prefixes
 * s (SOAP 1.1), m (EWS messages), ad (autodiscover) and a (Outlook
 * autodiscover response) bound. Returns the number of nodes selected, 0
 * when the body is not XML, or -1 when out of memory; when text is
 * non-NULL *text receives the first node's trimmed content (caller frees),
 * NULL when nothing matched. */
int client_xml_xpath(const struct kb_buf *body, const char *expr, char **text);

#endif /* CLIENT_XML_H */
