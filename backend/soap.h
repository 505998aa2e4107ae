/*
 * soap.h - internal to backend/: what Exchange answers to a request's body.
 *
 * The EWS SOAP request (ews.c, freebusy.c) and the Outlook autodiscover
 * request (autodiscover.c), plus the fault and the static pages every
 * answer may be (soap.c). It takes bytes and returns a reply (status,
 * content type, body, what it was for the counters, the mailbox it is
 * about); it knows nothing of sockets or libmicrohttpd, so the fuzz
 * targets (fuzz/targets.c, which tests/test_hostile.c replays) call it
 * directly. mhd.c is the only other user. Who a request runs as is
 * gate.h's; the NTLM type of its Authorization header is
 * kb_auth_classify's (common/kb_auth.h). Not a public header: nothing
 * outside backend/, fuzz/ and tests/ includes it.
 */
#ifndef BACKEND_SOAP_H
#define BACKEND_SOAP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/kb_buf.h"
#include "common/kb_env.h"

/* The statuses this module writes. */
#define SOAP_HTTP_OK 200u
#define SOAP_HTTP_SERVER_ERROR 500u

/* Fault codes of ASP.NET's SOAP 1.2 fault. */
#define SOAP_FAULT_RECEIVER "soap:Receiver"
#define SOAP_FAULT_SENDER "soap:Sender"

/* Content types of the replies. */
#define SOAP_CT_SOAP12 "application/soap+xml; charset=utf-8"
#define SOAP_CT_XML "text/xml; charset=utf-8"
#define SOAP_CT_HTML "text/html"

/* What a reply was, for the counters. */
enum soap_outcome {
  SOAP_OUT_SOAP_FAULT,
  SOAP_OUT_OOF,
  SOAP_OUT_AVAILABILITY,
  SOAP_OUT_AUTODISCOVER,
  SOAP_OUT_AUTODISCOVER_ERROR,
  SOAP_OUT_WSDL, /* GET /EWS/Services.wsdl: 200, counted in requests only */
  SOAP_OUT_NOT_FOUND,
  SOAP_OUT_BAD_METHOD,
  SOAP_OUT_TOO_LARGE,
  SOAP_OUT_UNAUTHORIZED, /* 401 from the integrated gate (gate.h) */
  SOAP_OUT_RPC /* an RPC_OUT_DATA channel opened: counted in requests only */
};

/* Result of the builders: only memory can fail them; anything a peer sends
 * becomes a reply. */
enum soap_result { SOAP_OK = 0, SOAP_NOMEM = -1 };

/* What the handlers need to know about the server they answer for. */
struct soap_server {
  const char *ews_url;   /* written into autodiscover responses */
  struct kb_clock clock; /* response timestamps */
};

/* One response before it is handed to libmicrohttpd. */
struct soap_reply {
  const char *who; /* the connection's name, for its timeline; may be NULL */
  unsigned int status;
  const char *content_type;
  enum soap_outcome outcome;
  bool allow_post; /* add "Allow: POST" */
  /* The mailbox the request is about (GetUserOofSettings' t:Mailbox,
   * autodiscover's EMailAddress), "" when it names none: whose data the
   * answer holds, which the backend compares with who asked. */
  char mailbox[320];
  struct kb_buf body;
};

/* Prepares an empty reply for the connection named who (borrowed, may be
 * NULL). Never fails; release with soap_reply_free. */
void soap_reply_init(struct soap_reply *reply, const char *who);

/* Frees the reply's body. Accepts a reply that never allocated. */
void soap_reply_free(struct soap_reply *reply);

/* Answers a POST to /EWS/Exchange.asmx whose body is the len bytes at
 * body (borrowed; need not be NUL-terminated): an empty body gets the
 * support case's "Root element is missing." fault, GetUserOofSettings and
 * GetUserAvailability a 200, anything else a SOAP 1.2 fault whose one-line
 * reason names the problem. Fills reply (whose body must be empty).
 * Returns SOAP_OK, or SOAP_NOMEM when the reply could not be built. */
enum soap_result soap_ews(const struct soap_server *srv, const char *body,
                          size_t len, struct soap_reply *reply);

/* Answers a POST to /autodiscover/autodiscover.xml: the Outlook response
 * for the request's EMailAddress, or Exchange's error 600 (still a 200)
 * when the body is empty, malformed or not an Outlook 2006a request. Same
 * ownership and result contract as soap_ews. */
enum soap_result soap_autodiscover(const struct soap_server *srv,
                                   const char *body, size_t len,
                                   struct soap_reply *reply);

/* Fills reply with a SOAP 1.2 fault (500) with the given code and a reason
 * made one printable line and escaped. Returns SOAP_OK or SOAP_NOMEM. */
enum soap_result soap_fault(struct soap_reply *reply, const char *code,
                            const char *reason);

/* Fills reply with a static HTML page (borrowed) under status. Returns
 * SOAP_OK or SOAP_NOMEM. */
enum soap_result soap_page(struct soap_reply *reply, unsigned int status,
                           enum soap_outcome outcome, const char *page);

#endif /* BACKEND_SOAP_H */
