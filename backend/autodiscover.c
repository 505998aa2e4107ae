/*
 * autodiscover.c - POST /autodiscover/autodiscover.xml: the Outlook
 * (2006a) response for the request's EMailAddress, with ASUrl and OOFUrl
 * the server's EWS URL, or Exchange's error 600 for anything else.
 */
#include "soap_int.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define EXCHANGE_ORG_DN                                                        \
  "/o=Fabrikam/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
#define EXCHANGE_DEPLOYMENT_ID "644560b8-a1ce-429c-8ace-23395843f701"
#define EXCHANGE_AD_ERROR_ID "2477272013"

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
  soap__xml_open(&x);
  soap__xml_start(&x, NULL, "Autodiscover", NS_AD_RESPONSE);
  soap__xml_start(&x, NULL, "Response", NULL);
  soap__xml_start(&x, NULL, "Error", NULL);
  soap__xml_attr(&x, "Time", stamp);
  soap__xml_attr(&x, "Id", EXCHANGE_AD_ERROR_ID);
  soap__xml_elem(&x, "ErrorCode", "600");
  soap__xml_elem(&x, "Message", "Invalid Request");
  soap__xml_empty(&x, "DebugData");
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_AUTODISCOVER_ERROR;
  return soap__xml_close(&x, &reply->body);
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
      len && len <= INT_MAX ? soap__parse(body, len, why, sizeof(why)) : NULL;
  const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
  const xmlNode *request = NULL;
  struct soap_xml x;
  enum soap_result result;

  if(soap__is(root, NS_AD_REQUEST, "Autodiscover")) {
    request = soap__child(root, NS_AD_REQUEST, "Request");
  }
  if(!request ||
     !soap__text(soap__child(request, NS_AD_REQUEST, "EMailAddress"), address,
                 sizeof(address)) ||
     !strchr(address, '@') ||
     !soap__text(
         soap__child(request, NS_AD_REQUEST, "AcceptableResponseSchema"),
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

  soap__xml_open(&x);
  soap__xml_start(&x, NULL, "Autodiscover", NS_AD_RESPONSE);
  soap__xml_start(&x, NULL, "Response", NS_AD_RESPONSE_OUTLOOK);
  soap__xml_start(&x, NULL, "User", NULL);
  soap__xml_elem(&x, "DisplayName", display);
  soap__xml_elem(&x, "LegacyDN", dn);
  soap__xml_elem(&x, "DeploymentId", EXCHANGE_DEPLOYMENT_ID);
  soap__xml_end(&x); /* User */
  soap__xml_start(&x, NULL, "Account", NULL);
  soap__xml_elem(&x, "AccountType", "email");
  soap__xml_elem(&x, "Action", "settings");
  soap__xml_start(&x, NULL, "Protocol", NULL);
  soap__xml_elem(&x, "Type", "EXCH");
  soap__xml_elem(&x, "Server", host);
  soap__xml_elem(&x, "ServerDN",
                 EXCHANGE_ORG_DN "/cn=Configuration/cn=Servers/cn=EXCH01");
  soap__xml_elem(&x, "ASUrl", srv->ews_url);
  soap__xml_elem(&x, "OOFUrl", srv->ews_url);
  soap__xml_end(&x); /* Protocol EXCH */
  soap__xml_start(&x, NULL, "Protocol", NULL);
  soap__xml_elem(&x, "Type", "EXPR");
  soap__xml_elem(&x, "Server", host);
  soap__xml_elem(&x, "SSL",
                 strncasecmp(srv->ews_url, "https:", 6) ? "Off" : "On");
  soap__xml_elem(&x, "AuthPackage", "Ntlm");
  soap__xml_elem(&x, "ASUrl", srv->ews_url);
  soap__xml_elem(&x, "OOFUrl", srv->ews_url);
  soap__xml_end(&x); /* Protocol EXPR */
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_AUTODISCOVER;
  result = soap__xml_close(&x, &reply->body);
  return result;
}
