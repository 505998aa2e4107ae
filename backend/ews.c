/*
 * ews.c - POST /EWS/Exchange.asmx: the support case's fault for an empty
 * body, the SOAP envelope checked and its operation dispatched on, and
 * GetUserOofSettings answered (GetUserAvailability is freebusy.c's).
 */
#include "soap_int.h"

#include <limits.h>
#include <stdio.h>

#define REASON_EMPTY                                                           \
  "Server was unable to process request. ---> Root element is missing."
#define REASON_READ "Server was unable to read request. ---> "

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

  if(!soap__text(
         soap__child(soap__child(op, NS_TYPES, "Mailbox"), NS_TYPES, "Address"),
         address, sizeof(address))) {
    return soap_fault(reply, SOAP_FAULT_SENDER,
                      "GetUserOofSettingsRequest has no t:Mailbox/t:Address; "
                      "send the mailbox's SMTP address.");
  }
  snprintf(reply->mailbox, sizeof(reply->mailbox), "%s", address);
  soap__iso_time(now - now % 3600, start);
  soap__iso_time(now - now % 3600 + 24 * 3600, end);

  soap__xml_envelope(&x);
  soap__xml_start(&x, NULL, "GetUserOofSettingsResponse", NS_MESSAGES);
  soap__xml_success(&x);
  soap__xml_start(&x, NULL, "OofSettings", NS_TYPES);
  soap__xml_elem(&x, "OofState", "Disabled");
  soap__xml_elem(&x, "ExternalAudience", "All");
  soap__xml_start(&x, NULL, "Duration", NULL);
  soap__xml_elem(&x, "StartTime", start);
  soap__xml_elem(&x, "EndTime", end);
  soap__xml_end(&x); /* Duration */
  soap__xml_start(&x, NULL, "InternalReply", NULL);
  soap__xml_empty(&x, "Message");
  soap__xml_end(&x);
  soap__xml_start(&x, NULL, "ExternalReply", NULL);
  soap__xml_empty(&x, "Message");
  soap__xml_end(&x);
  soap__xml_end(&x); /* OofSettings */
  soap__xml_elem(&x, "AllowExternalOof", "All");
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_OOF;
  return soap__xml_close(&x, &reply->body);
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
  doc = soap__parse(body, len, why, sizeof(why));
  root = doc ? xmlDocGetRootElement(doc) : NULL;
  if(!doc) {
    return soap__faultf(reply, SOAP_FAULT_RECEIVER, REASON_READ "%s", why);
  }
  if(soap__is(root, NS_SOAP11, "Envelope")) {
    soap_ns = NS_SOAP11;
  }
  else if(soap__is(root, NS_SOAP12, "Envelope")) {
    soap_ns = NS_SOAP12;
  }
  if(!soap_ns) {
    soap__qname(root, name, sizeof(name));
    result = soap__faultf(reply, SOAP_FAULT_SENDER,
                          REASON_READ "The request is not a SOAP envelope: "
                                      "its root element is %s.",
                          name);
  }
  else if(!(soap_body = soap__child(root, soap_ns, "Body")) ||
          !(op = soap__first_element(soap_body))) {
    result = soap_fault(reply, SOAP_FAULT_SENDER,
                        REASON_READ "The SOAP envelope has no operation "
                                    "element in its Body.");
  }
  else if(soap__is(op, NS_MESSAGES, "GetUserOofSettingsRequest")) {
    result = soap_oof(srv, op, reply);
  }
  else if(soap__is(op, NS_MESSAGES, "GetUserAvailabilityRequest")) {
    result = soap__availability(op, reply);
  }
  else {
    soap__qname(op, name, sizeof(name));
    result = soap__faultf(reply, SOAP_FAULT_SENDER,
                          "The operation %s is not implemented by this "
                          "server; it answers GetUserOofSettings and "
                          "GetUserAvailability.",
                          name);
  }
  xmlFreeDoc(doc);
  return result;
}
