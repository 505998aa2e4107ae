/*
 * client.c - Office Communicator 2007's Outlook integration, over libcurl.
 *
 * One curl easy handle per client carries the whole session, so every POST
 * rides the same keep-alive connection for as long as the listener keeps it
 * open. libcurl's own authentication is never enabled: Communicator
 * re-authenticates each POST, which libcurl's NTLM never does, so both legs
 * are crafted here with ntlm.h and sent as plain custom headers.
 *
 * The sockets are opened and closed through our own callbacks so that the
 * session can count its TCP connections and name them in the trace; the
 * pre-request callback tells which of them a request is about to use.
 */
#include "client.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kb_buf.h"

#define CLIENT_DEFAULT_HOST "autodiscover.fabrikam.com"
#define CLIENT_DEFAULT_WORKSTATION "COMMUNICATOR"
#define CLIENT_DEFAULT_MAIL_DOMAIN "fabrikam.com"
#define CLIENT_DEFAULT_EWS_POSTS 2u
#define CLIENT_DEFAULT_TIMEOUT_MS 10000L
#define CLIENT_USER_AGENT "Microsoft+Office+Communicator/2.0"
#define CLIENT_AUTODISCOVER_PATH "/autodiscover/autodiscover.xml"

/* Limits on what a peer can make us hold. */
#define CLIENT_MAX_BODY (1024u * 1024u)
#define CLIENT_MAX_AUTH_VALUE 8192u
#define CLIENT_MAX_SOCKETS 8u
#define CLIENT_MAX_EWS_POSTS 100000u

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

static const char *const client_default_contacts[] = {
    "bob@fabrikam.com", "carol@fabrikam.com", NULL};

/* Where the session is. */
enum client_phase {
  CLIENT_PHASE_AUTODISCOVER = 0, /* POST 0 not sent yet */
  CLIENT_PHASE_EWS,              /* autodiscover succeeded: EWS POSTs */
  CLIENT_PHASE_DONE              /* nothing more to send */
};

/* Which leg of a POST, for details and trace events. */
enum client_leg_kind {
  CLIENT_LEG_NEGOTIATE = 1,   /* type 1, body held back */
  CLIENT_LEG_AUTHENTICATE = 2 /* type 3 with the body */
};

/* A socket opened through client_open_socket. conn stays 0 until a request
 * is about to use it, i.e. until the TCP connection is established. */
struct client_socket {
  curl_socket_t fd;
  uint64_t conn;
  char name[48]; /* "client <id> conn <n>" when names are in use, else "" */
};

/* One request and what came back for it. */
struct client_leg {
  int status;                     /* 0 until a status line arrived */
  struct kb_buf body;             /* response body, capped at CLIENT_MAX_BODY */
  enum kb_buf_result body_result; /* why the write callback stopped */
  char *ntlm_value;        /* first "NTLM <token>" WWW-Authenticate value */
  bool ntlm_value_too_big; /* an NTLM value above CLIENT_MAX_AUTH_VALUE */
  bool ntlm_bare;          /* "WWW-Authenticate: NTLM" without a token */
  bool other_scheme;       /* a WWW-Authenticate of another scheme */
};

struct client {
  /* Copied configuration. */
  unsigned id;
  char *host;
  char *domain;
  char *user;
  char *password;
  char *workstation;
  char *email;
  char **contacts; /* NULL-terminated */
  unsigned ews_posts;
  enum ntlm_response_kind ntlm_kind;
  long timeout_ms;
  struct kb_clock clock;
  struct kb_rng rng;
  struct kb_trace trace;
  struct kb_names names;
  uint64_t sockets_named; /* sockets named so far */
  char origin[32]; /* "client <id>" */

  /* Transport. */
  CURLU *base; /* config->base_url, parsed */
  char *autodiscover_url;
  char *ews_url; /* ASUrl's path on base_url, once known */
  char *ews_path;
  CURL *easy;
  char errbuf[CURL_ERROR_SIZE];
  struct client_socket sockets[CLIENT_MAX_SOCKETS];
  size_t nsockets;
  uint64_t conn_count;    /* connections established so far */
  uint64_t current_conn;  /* the one the running request uses, 0 if none */
  char current_name[48];  /* its name; kept after the socket closes */
  struct client_leg *leg; /* the leg being received, for the callbacks */

  /* Session. */
  enum client_phase phase;
  unsigned next_index;
  struct client_post_result *results; /* 1 + ews_posts slots */
  size_t nresults;
  struct client_view view;
};

/* ---- names --------------------------------------------------------------- */

const char *client_post_kind_name(enum client_post_kind kind)
{
  switch(kind) {
  case CLIENT_POST_AUTODISCOVER:
    return "autodiscover";
  case CLIENT_POST_OOF:
    return "GetUserOofSettings";
  case CLIENT_POST_AVAILABILITY:
    return "GetUserAvailability";
  }
  return "unknown";
}

const char *client_outcome_name(enum client_outcome outcome)
{
  switch(outcome) {
  case CLIENT_OK:
    return "ok";
  case CLIENT_SERVER_ERROR:
    return "server-error";
  case CLIENT_AUTH_FAILED:
    return "auth-failed";
  case CLIENT_PROTOCOL_ERROR:
    return "protocol-error";
  case CLIENT_TRANSPORT_ERROR:
    return "transport-error";
  }
  return "unknown";
}

/* ---- process-wide initialisation ----------------------------------------- */

static pthread_once_t client_global_once = PTHREAD_ONCE_INIT;
static CURLcode client_global_result = CURLE_FAILED_INIT;

/* Runs once per process. curl_global_init and xmlInitParser must both run
 * before any other thread uses the libraries; pthread_once makes that hold
 * however many clients start at the same time, and its return publishes
 * client_global_result to every caller. Neither is ever undone: other
 * components may still be using libcurl, and curl_global_cleanup is not
 * thread-safe, so the process exit reclaims them. */
static void client_global_init_once(void)
{
  client_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
  xmlInitParser();
}

/* Returns 0 once libcurl and libxml2 are initialised, -1 if libcurl failed. */
static int client_global_init(void)
{
  if(pthread_once(&client_global_once, client_global_init_once))
    return -1;
  return client_global_result == CURLE_OK ? 0 : -1;
}

/* ---- helpers ------------------------------------------------------------- */

/* Returns a malloc'd copy of s, or of fallback when s is NULL; NULL only
 * when out of memory (or both are NULL). */
static char *client_strdup(const char *s, const char *fallback)
{
  const char *src = s ? s : fallback;
  return src ? strdup(src) : NULL;
}

/* Writes a one-line detail into res->detail. */
static void client_detail(struct client_post_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void client_detail(struct client_post_result *res, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->detail, sizeof(res->detail), fmt, ap);
  va_end(ap);
}

/* Prepares an empty leg. */
static void client_leg_init(struct client_leg *leg)
{
  memset(leg, 0, sizeof(*leg));
  kb_buf_init(&leg->body, CLIENT_MAX_BODY);
}

/* Frees what a leg holds. */
static void client_leg_free(struct client_leg *leg)
{
  kb_buf_free(&leg->body);
  free(leg->ntlm_value);
  leg->ntlm_value = NULL;
}

/* Forgets the authentication headers of an earlier response in the same
 * transfer (an interim 1xx), keeping the body buffer. */
static void client_leg_reset_headers(struct client_leg *leg)
{
  free(leg->ntlm_value);
  leg->ntlm_value = NULL;
  leg->ntlm_value_too_big = false;
  leg->ntlm_bare = false;
  leg->other_scheme = false;
}

/* Returns a URL string for base with its path replaced by path and no query
 * or fragment, malloc'd (caller frees), or NULL when out of memory or when
 * curl refuses the path. */
static char *client_url_with_path(CURLU *base, const char *path)
{
  char *result = NULL;
  char *url = NULL;
  CURLU *u = curl_url_dup(base);
  if(!u)
    goto out;
  if(curl_url_set(u, CURLUPART_PATH, path, 0) != CURLUE_OK ||
     curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
     curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
     curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
    goto out;
  result = strdup(url);
out:
  curl_free(url);
  curl_url_cleanup(u);
  return result;
}

/* ---- trace --------------------------------------------------------------- */

/* Returns the name of the socket carrying connection conn, or NULL. */
static const char *client_conn_name(const struct client *c, uint64_t conn)
{
  size_t i;

  for(i = 0; conn && i < c->nsockets; i++)
    if(c->sockets[i].conn == conn)
      return c->sockets[i].name[0] ? c->sockets[i].name : NULL;
  return NULL;
}

/* Emits one event of kind with optional bytes on the client's hop and side. */
static void client_trace(const struct client *c, enum kb_trace_kind kind,
                         uint64_t conn, const void *data, size_t len)
{
  struct kb_trace_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.conn_name = client_conn_name(c, conn);
  ev.kind = kind;
  ev.hop = KB_HOP_CLIENT_PROXY;
  ev.side = KB_SIDE_CLIENT;
  ev.origin = c->origin;
  ev.conn = conn;
  ev.data = data;
  ev.len = len;
  kb_trace_emit(&c->trace, &ev);
}

/* ---- libcurl callbacks --------------------------------------------------- */

/* Binds a new socket to an ephemeral port before curl connects it and
 * claims that port's name, so the listener can resolve who connected. A
 * socket that cannot be bound stays unnamed; curl still connects it. */
static void client_name_socket(struct client *c, struct client_socket *sock,
                               int family)
{
  struct sockaddr_storage ss;
  socklen_t len;
  uint16_t port;

  memset(&ss, 0, sizeof(ss));
  ss.ss_family = (sa_family_t)family;
  if(family == AF_INET)
    len = sizeof(struct sockaddr_in);
  else if(family == AF_INET6)
    len = sizeof(struct sockaddr_in6);
  else
    return;
  if(bind(sock->fd, (struct sockaddr *)&ss, len) ||
     getsockname(sock->fd, (struct sockaddr *)&ss, &len))
    return;
  port = family == AF_INET ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                           : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  snprintf(sock->name, sizeof(sock->name), "client %u conn %" PRIu64, c->id,
           ++c->sockets_named);
  kb_names_claim(&c->names, port, sock->name);
}

/* CURLOPT_OPENSOCKETFUNCTION: opens the socket curl asks for and remembers
 * it. Returns the socket, or CURL_SOCKET_BAD when it cannot be opened or
 * the client already tracks CLIENT_MAX_SOCKETS (curl then reports a
 * connect failure). curl owns the socket until it hands it to
 * client_close_socket. */
static curl_socket_t client_open_socket(void *clientp, curlsocktype purpose,
                                        struct curl_sockaddr *address)
{
  struct client *c = clientp;
  curl_socket_t fd;
  if(purpose != CURLSOCKTYPE_IPCXN || c->nsockets == CLIENT_MAX_SOCKETS)
    return CURL_SOCKET_BAD;
  fd = socket(address->family, address->socktype | SOCK_CLOEXEC,
              address->protocol);
  if(fd < 0)
    return CURL_SOCKET_BAD;
  c->sockets[c->nsockets].fd = fd;
  c->sockets[c->nsockets].conn = 0;
  c->sockets[c->nsockets].name[0] = '\0';
  if(c->names.claim)
    client_name_socket(c, &c->sockets[c->nsockets], address->family);
  c->nsockets++;
  return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: closes a socket curl is done with, emitting
 * CLOSE when it had carried a connection. Returns close()'s result. */
static int client_close_socket(void *clientp, curl_socket_t item)
{
  struct client *c = clientp;
  size_t i;
  for(i = 0; i < c->nsockets; i++) {
    if(c->sockets[i].fd != item)
      continue;
    if(c->sockets[i].conn)
      client_trace(c, KB_TRACE_CLOSE, c->sockets[i].conn, NULL, 0);
    c->sockets[i] = c->sockets[c->nsockets - 1];
    c->nsockets--;
    break;
  }
  return close(item);
}

/* Returns true when fd's local address is ip:port. */
static bool client_socket_is(curl_socket_t fd, const char *ip, int port)
{
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof(ss);
  char text[INET6_ADDRSTRLEN];
  const void *addr;
  int local_port;
  if(getsockname(fd, (struct sockaddr *)&ss, &sslen))
    return false;
  if(ss.ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    addr = &sin->sin_addr;
    local_port = ntohs(sin->sin_port);
  }
  else if(ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
    addr = &sin6->sin6_addr;
    local_port = ntohs(sin6->sin6_port);
  }
  else
    return false;
  if(local_port != port || !inet_ntop(ss.ss_family, addr, text, sizeof(text)))
    return false;
  return !strcmp(text, ip);
}

/* CURLOPT_PREREQFUNCTION: called once the connection for a request is
 * established or picked for reuse. Finds our socket by its local address,
 * numbers it (emitting OPEN) the first time, and makes it the current
 * connection for the trace. Always lets the request go. */
static int client_prereq(void *clientp, char *conn_primary_ip,
                         char *conn_local_ip, int conn_primary_port,
                         int conn_local_port)
{
  struct client *c = clientp;
  size_t i;
  (void)conn_primary_ip;
  (void)conn_primary_port;
  c->current_conn = 0;
  c->current_name[0] = '\0';
  for(i = 0; i < c->nsockets; i++) {
    if(!client_socket_is(c->sockets[i].fd, conn_local_ip, conn_local_port))
      continue;
    if(!c->sockets[i].conn) {
      c->sockets[i].conn = ++c->conn_count;
      client_trace(c, KB_TRACE_OPEN, c->sockets[i].conn, NULL, 0);
    }
    c->current_conn = c->sockets[i].conn;
    memcpy(c->current_name, c->sockets[i].name, sizeof(c->current_name));
    break;
  }
  return CURL_PREREQFUNC_OK;
}

/* CURLOPT_DEBUGFUNCTION: turns the bytes curl wrote and read into SEND and
 * RECV events, exactly as they crossed the socket. Curl's text lines are
 * dropped: the trace has its own notes. Returns 0 as curl requires. */
static int client_debug(CURL *handle, curl_infotype type, char *data,
                        size_t size, void *userptr)
{
  struct client *c = userptr;
  (void)handle;
  switch(type) {
  case CURLINFO_HEADER_OUT:
  case CURLINFO_DATA_OUT:
    client_trace(c, KB_TRACE_SEND, c->current_conn, data, size);
    break;
  case CURLINFO_HEADER_IN:
  case CURLINFO_DATA_IN:
    client_trace(c, KB_TRACE_RECV, c->current_conn, data, size);
    break;
  default:
    break;
  }
  return 0;
}

/* CURLOPT_HEADERFUNCTION: keeps the WWW-Authenticate values that matter
 * for the NTLM handshake. A status line starts a new response (1xx
 * responses come before the final one), so it clears what an earlier one
 * left. Returns the bytes consumed; never aborts the transfer, since an
 * oversized value is reported once the response is complete. */
static size_t client_header(char *buffer, size_t size, size_t nitems,
                            void *userdata)
{
  static const char name[] = "WWW-Authenticate:";
  struct client *c = userdata;
  struct client_leg *leg = c->leg;
  size_t len = size * nitems;
  const char *v;
  size_t vlen;
  if(!leg)
    return len;
  if(len >= 5 && !memcmp(buffer, "HTTP/", 5)) {
    client_leg_reset_headers(leg);
    return len;
  }
  if(len < sizeof(name) - 1 || strncasecmp(buffer, name, sizeof(name) - 1))
    return len;
  v = buffer + sizeof(name) - 1;
  vlen = len - (sizeof(name) - 1);
  while(vlen && (*v == ' ' || *v == '\t')) {
    v++;
    vlen--;
  }
  while(vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
                 v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  if(vlen >= 4 && !strncasecmp(v, "NTLM", 4) &&
     (vlen == 4 || v[4] == ' ' || v[4] == '\t')) {
    if(vlen == 4)
      leg->ntlm_bare = true;
    else if(leg->ntlm_value || leg->ntlm_value_too_big)
      ; /* the first NTLM challenge is the one answered */
    else if(vlen > CLIENT_MAX_AUTH_VALUE)
      leg->ntlm_value_too_big = true;
    else
      leg->ntlm_value = strndup(v, vlen);
  }
  else
    leg->other_scheme = true;
  return len;
}

/* CURLOPT_WRITEFUNCTION: collects the response body up to CLIENT_MAX_BODY.
 * Returns the bytes taken; 0 (which aborts the transfer) when the body
 * would pass the cap or memory runs out. */
static size_t client_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct client *c = userdata;
  size_t len = size * nmemb;
  if(!c->leg)
    return len;
  c->leg->body_result = kb_buf_add(&c->leg->body, ptr, len);
  return c->leg->body_result == KB_BUF_OK ? len : 0;
}

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
static xmlDocPtr client_build_doc(const struct client *c,
                                  enum client_post_kind kind)
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
    client_xml_text(req, NULL, "EMailAddress", c->email, &ok);
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
      client_xml_text(mbox, t, "Address", c->email, &ok);
    }
    else {
      /* The free/busy window is the simulated day around "now", in UTC,
       * so runs on the simulated clock ask for the same window. */
      int64_t day_ms = 86400000;
      int64_t now = kb_clock_now(&c->clock, c->origin);
      int64_t start = now - ((now % day_ms) + day_ms) % day_ms;
      char start_s[32], end_s[32];
      xmlNodePtr arr, opts, win;
      size_t i;
      client_xml_time(start, start_s);
      client_xml_time(start + day_ms, end_s);
      client_xml_utc_zone(op, t, &ok);
      arr = client_xml_node(op, NULL, "MailboxDataArray", &ok);
      for(i = 0; c->contacts[i]; i++) {
        xmlNodePtr md = client_xml_node(arr, t, "MailboxData", &ok);
        xmlNodePtr email = client_xml_node(md, t, "Email", &ok);
        client_xml_text(email, t, "Address", c->contacts[i], &ok);
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

/* Serialises the body of the POST of kind into *out / *len. Returns 0, or
 * -1 when out of memory. The caller frees *out with xmlFree. */
static int client_build_body(const struct client *c, enum client_post_kind kind,
                             xmlChar **out, int *len)
{
  int result = -1;
  xmlDocPtr doc = client_build_doc(c, kind);
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

/* Parses body with the network off and evaluates expr with the prefixes
 * s (SOAP 1.1), m (EWS messages), ad (autodiscover) and a (Outlook
 * autodiscover response) bound. Returns the number of nodes selected, 0
 * when the body is not XML, or -1 when out of memory; when text is
 * non-NULL *text receives the first node's trimmed content (caller frees),
 * NULL when nothing matched. */
static int client_xpath(const struct kb_buf *body, const char *expr,
                        char **text)
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

/* Takes the EXCH ASUrl out of an autodiscover response and points the EWS
 * POSTs at its path on the listener. Returns CLIENT_OK or
 * CLIENT_PROTOCOL_ERROR with the reason in res->detail. */
static enum client_outcome
client_use_autodiscover(struct client *c, const struct kb_buf *body,
                        struct client_post_result *res)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  char *asurl = NULL;
  char *path = NULL;
  char *url = NULL;
  CURLU *u = NULL;
  int n = client_xpath(body,
                       "/ad:Autodiscover/a:Response/a:Account/"
                       "a:Protocol[normalize-space(a:Type)='EXCH']/a:ASUrl",
                       &asurl);
  if(n < 0) {
    client_detail(res, "out of memory reading the autodiscover response");
    goto out;
  }
  if(n == 0 || !asurl || !*asurl) {
    client_detail(res, "the autodiscover response names no EWS URL (EXCH "
                       "ASUrl); check the published Autodiscover service");
    goto out;
  }
  if(strlen(asurl) >= sizeof(c->view.ews_url)) {
    client_detail(res, "the autodiscover ASUrl is longer than %zu bytes",
                  sizeof(c->view.ews_url) - 1);
    goto out;
  }
  u = curl_url();
  if(!u || curl_url_set(u, CURLUPART_URL, asurl, 0) != CURLUE_OK ||
     curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
    client_detail(res, "the autodiscover ASUrl '%.80s' is not a URL", asurl);
    goto out;
  }
  url = client_url_with_path(c->base, path);
  if(!url) {
    client_detail(res, "cannot put the ASUrl path '%.80s' on the listener URL",
                  path);
    goto out;
  }
  free(c->ews_url);
  free(c->ews_path);
  c->ews_url = url;
  c->ews_path = strdup(path);
  url = NULL;
  if(!c->ews_path) {
    client_detail(res, "out of memory reading the autodiscover response");
    goto out;
  }
  memcpy(c->view.ews_url, asurl, strlen(asurl) + 1);
  result = CLIENT_OK;
out:
  free(url);
  curl_free(path);
  curl_url_cleanup(u);
  free(asurl);
  return result;
}

/* Decides whether a 200 answering the POST of kind carries what the user
 * needs. Returns CLIENT_OK or CLIENT_PROTOCOL_ERROR with res->detail. */
static enum client_outcome client_check_body(struct client *c,
                                             enum client_post_kind kind,
                                             const struct kb_buf *body,
                                             struct client_post_result *res)
{
  int n;
  if(kind == CLIENT_POST_AUTODISCOVER)
    return client_use_autodiscover(c, body, res);
  if(kind == CLIENT_POST_OOF)
    n = client_xpath(body,
                     "/s:Envelope/s:Body/m:GetUserOofSettingsResponse/"
                     "m:ResponseMessage[@ResponseClass='Success']",
                     NULL);
  else
    n = client_xpath(body,
                     "/s:Envelope/s:Body/m:GetUserAvailabilityResponse/"
                     "m:FreeBusyResponseArray/m:FreeBusyResponse",
                     NULL);
  if(n > 0)
    return CLIENT_OK;
  if(n < 0)
    client_detail(res, "out of memory reading the %s response",
                  client_post_kind_name(kind));
  else if(kind == CLIENT_POST_OOF)
    client_detail(res, "the GetUserOofSettings response is not a SOAP "
                       "envelope with ResponseClass=\"Success\"");
  else
    client_detail(res, "the GetUserAvailability response is not a SOAP "
                       "envelope with FreeBusyResponse elements");
  return CLIENT_PROTOCOL_ERROR;
}

/* ---- one leg ------------------------------------------------------------- */

/* Sends one leg: a POST to url with Communicator's headers in the support
 * case's order, auth as the Authorization value and body (len bytes, may
 * be 0). Fills *leg with the response and emits one EXCHANGE event.
 * Returns curl's result; the caller owns leg, which must be cleared. */
static CURLcode client_send_leg(struct client *c, const char *url,
                                const char *path, enum kb_auth req_auth,
                                const char *auth, const char *body, size_t len,
                                struct client_leg *leg)
{
  CURLcode result = CURLE_OUT_OF_MEMORY;
  struct curl_slist *headers = NULL;
  struct kb_buf line;
  struct kb_exchange ex;
  struct kb_trace_event ev;
  long status = 0;
  size_t i;
  char length[32];
  /* The headers in the support case's order. A name with a NULL value is
   * a libcurl directive and is not sent: the empty "Expect:" stops
   * "Expect: 100-continue", and the leading empty "Host:" stops libcurl from
   * moving our Host header to the front (it puts a custom Host first unless
   * its own is removed), so ours goes out fifth like Communicator's. libcurl
   * looks up a directive by the first entry of that name, hence the order. */
  const char *const table[][2] = {{"Host", NULL},
                                  {"Accept", "text/xml"},
                                  {"Content-Type", "text/xml; charset=utf-8"},
                                  {"User-Agent", CLIENT_USER_AGENT},
                                  {"Host", c->host},
                                  {"Content-Length", length},
                                  {"Connection", "Keep-Alive"},
                                  {"Cache-Control", "no-cache"},
                                  {"Authorization", auth},
                                  {"Expect", NULL}};
  snprintf(length, sizeof(length), "%zu", len);
  kb_buf_init(&line, CLIENT_MAX_AUTH_VALUE + 64);
  for(i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    struct curl_slist *next;
    const char *value = table[i][1];
    kb_buf_reset(&line);
    if(kb_buf_printf(&line, "%s:%s%s", table[i][0], value ? " " : "",
                     value ? value : "") != KB_BUF_OK)
      goto out;
    next = curl_slist_append(headers, line.data);
    if(!next)
      goto out;
    headers = next;
  }
  c->errbuf[0] = '\0';
  if(curl_easy_setopt(c->easy, CURLOPT_URL, url) != CURLE_OK ||
     curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
     curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) !=
         CURLE_OK ||
     curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK)
    goto out;
  /* current_conn outlives a close at the end of the transfer so that the
   * result can name the connection; a leg that never got one reports 0. */
  c->current_conn = 0;
  c->leg = leg;
  result = curl_easy_perform(c->easy);
  c->leg = NULL;
  if(curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
    leg->status = (int)status;

  memset(&ex, 0, sizeof(ex));
  ex.method = "POST";
  ex.path = path;
  ex.req_auth = req_auth;
  ex.req_body_len = len;
  ex.status = leg->status;
  ex.resp_body_len = leg->body.len;
  if(leg->ntlm_value || leg->ntlm_value_too_big) {
    struct ntlm_bytes token = {NULL, 0};
    enum ntlm_scheme scheme;
    enum ntlm_type type = NTLM_TYPE_NONE;
    if(leg->ntlm_value &&
       ntlm_header_parse(leg->ntlm_value, &scheme, &token, NULL, 0) == NTLM_OK)
      type = ntlm_peek_type(token.data, token.len);
    ntlm_bytes_free(&token);
    ex.resp_auth = type == NTLM_TYPE_NEGOTIATE      ? KB_AUTH_NTLM_NEGOTIATE
                   : type == NTLM_TYPE_CHALLENGE    ? KB_AUTH_NTLM_CHALLENGE
                   : type == NTLM_TYPE_AUTHENTICATE ? KB_AUTH_NTLM_AUTHENTICATE
                                                    : KB_AUTH_OTHER;
  }
  else if(leg->ntlm_bare)
    ex.resp_auth = KB_AUTH_NTLM_BARE;
  else if(leg->other_scheme)
    ex.resp_auth = KB_AUTH_OTHER;
  else
    ex.resp_auth = KB_AUTH_NONE;
  memset(&ev, 0, sizeof(ev));
  ev.kind = KB_TRACE_EXCHANGE;
  ev.hop = KB_HOP_CLIENT_PROXY;
  ev.side = KB_SIDE_CLIENT;
  ev.origin = c->origin;
  ev.conn = c->current_conn;
  ev.conn_name = c->current_name[0] ? c->current_name : NULL;
  ev.exchange = &ex;
  kb_trace_emit(&c->trace, &ev);
out:
  curl_slist_free_all(headers);
  kb_buf_free(&line);
  return result;
}

/* Describes a transfer that failed in res->detail: a body past the cap is
 * the peer's fault (CLIENT_PROTOCOL_ERROR); anything else is curl's own
 * message (CLIENT_TRANSPORT_ERROR) with what to check. Returns the
 * outcome. */
static enum client_outcome
client_transfer_failed(const struct client *c, CURLcode rc,
                       const struct client_leg *leg, enum client_leg_kind which,
                       struct client_post_result *res)
{
  const char *msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
  if(leg->body_result == KB_BUF_TOO_BIG) {
    client_detail(res, "leg %d: the response body is larger than %u bytes",
                  (int)which, CLIENT_MAX_BODY);
    return CLIENT_PROTOCOL_ERROR;
  }
  if(leg->body_result == KB_BUF_NOMEM)
    client_detail(res, "leg %d: out of memory receiving the response",
                  (int)which);
  else
    client_detail(res, "leg %d: %.110s; check that the listener is running",
                  (int)which, msg);
  return CLIENT_TRANSPORT_ERROR;
}

/* Decides the outcome of a 2xx that ends the POST. */
static enum client_outcome client_final_2xx(struct client *c,
                                            enum client_post_kind kind,
                                            const struct client_leg *leg,
                                            struct client_post_result *res)
{
  if(leg->status != 200) {
    client_detail(res, "HTTP %d carries no %s response to use", leg->status,
                  client_post_kind_name(kind));
    return CLIENT_PROTOCOL_ERROR;
  }
  return client_check_body(c, kind, &leg->body, res);
}

/* Answers the type 2 in leg1's 401 and sends leg 2 with the body. Returns
 * the POST's outcome with res filled. */
static enum client_outcome
client_leg2(struct client *c, enum client_post_kind kind, const char *url,
            const char *path, const struct client_leg *leg1, const char *body,
            size_t len, struct client_post_result *res)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct ntlm_bytes token = {NULL, 0};
  struct ntlm_bytes type3 = {NULL, 0};
  struct ntlm_message challenge;
  struct ntlm_client_creds creds;
  struct client_leg leg2;
  enum ntlm_scheme scheme;
  enum ntlm_result nr;
  char err[128];
  char label[80];
  uint8_t cchal[8];
  char *auth = NULL;
  CURLcode rc;

  memset(&challenge, 0, sizeof(challenge));
  client_leg_init(&leg2);
  err[0] = '\0';
  if(leg1->ntlm_value_too_big) {
    client_detail(res, "the NTLM challenge is longer than %u bytes",
                  CLIENT_MAX_AUTH_VALUE);
    goto out;
  }
  nr = ntlm_header_parse(leg1->ntlm_value, &scheme, &token, err, sizeof(err));
  if(nr == NTLM_OK)
    nr = ntlm_decode(token.data, token.len, &challenge, err, sizeof(err));
  if(nr == NTLM_OK && challenge.type != NTLM_TYPE_CHALLENGE) {
    nr = NTLM_ERR_TYPE;
    snprintf(err, sizeof(err), "the 401 carries an NTLM type %d, not type 2",
             (int)challenge.type);
  }
  if(nr != NTLM_OK) {
    client_detail(res, "bad NTLM challenge: %.120s",
                  err[0] ? err : ntlm_strerror(nr));
    goto out;
  }

  snprintf(label, sizeof(label), "client/%u/post/%u/client-challenge", c->id,
           res->index);
  kb_rng_fill(&c->rng, label, cchal, sizeof(cchal));
  creds.domain = c->domain;
  creds.user = c->user;
  creds.password = c->password;
  creds.workstation = c->workstation;
  creds.kind = c->ntlm_kind;
  nr = ntlm_client_authenticate(
      &creds, &challenge, cchal,
      ntlm_filetime_from_unix_ms(kb_clock_now(&c->clock, c->origin)), &type3, err,
      sizeof(err));
  if(nr != NTLM_OK) {
    client_detail(res, "cannot answer the NTLM challenge: %.110s",
                  err[0] ? err : ntlm_strerror(nr));
    goto out;
  }
  auth = ntlm_header_format(NTLM_SCHEME_NTLM, type3.data, type3.len);
  if(!auth) {
    client_detail(res, "out of memory building the NTLM type 3");
    result = CLIENT_TRANSPORT_ERROR;
    goto out;
  }

  res->legs = 2;
  rc = client_send_leg(c, url, path, KB_AUTH_NTLM_AUTHENTICATE, auth, body, len,
                       &leg2);
  res->final_status = leg2.status;
  res->connection = c->current_conn;
  if(rc != CURLE_OK)
    result = client_transfer_failed(c, rc, &leg2, CLIENT_LEG_AUTHENTICATE, res);
  else if(leg2.status == 200)
    result = client_check_body(c, kind, &leg2.body, res);
  else if(leg2.status == 401) {
    client_detail(res,
                  "HTTP 401 to the type 3: the listener refused "
                  "%.40s\\%.40s; check the user name and password",
                  c->domain, c->user);
    result = CLIENT_AUTH_FAILED;
  }
  else if(leg2.status >= 500 && leg2.status <= 599) {
    client_detail(res, "HTTP %d to the authenticated POST with its body",
                  leg2.status);
    result = CLIENT_SERVER_ERROR;
  }
  else
    client_detail(res, "unexpected HTTP %d to the type 3", leg2.status);
out:
  if(auth)
    explicit_bzero(auth, strlen(auth));
  free(auth);
  ntlm_bytes_free(&type3);
  ntlm_bytes_free(&token);
  ntlm_message_free(&challenge);
  client_leg_free(&leg2);
  return result;
}

/* Makes the POST of kind, both legs as needed, and fills *res. */
static void client_post(struct client *c, enum client_post_kind kind,
                        struct client_post_result *res)
{
  struct ntlm_bytes type1 = {NULL, 0};
  struct client_leg leg1;
  xmlChar *body = NULL;
  int body_len = 0;
  char *auth = NULL;
  const char *url =
      kind == CLIENT_POST_AUTODISCOVER ? c->autodiscover_url : c->ews_url;
  const char *path =
      kind == CLIENT_POST_AUTODISCOVER ? CLIENT_AUTODISCOVER_PATH : c->ews_path;
  CURLcode rc;

  client_leg_init(&leg1);
  res->outcome = CLIENT_TRANSPORT_ERROR;
  if(client_build_body(c, kind, &body, &body_len) ||
     ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &type1) != NTLM_OK ||
     !(auth = ntlm_header_format(NTLM_SCHEME_NTLM, type1.data, type1.len))) {
    client_detail(res, "out of memory building the %s POST",
                  client_post_kind_name(kind));
    goto out;
  }

  /* Leg 1: the type 1 with Content-Length: 0, the body held back. */
  res->legs = 1;
  rc =
      client_send_leg(c, url, path, KB_AUTH_NTLM_NEGOTIATE, auth, "", 0, &leg1);
  res->leg1_status = res->final_status = leg1.status;
  res->connection = c->current_conn;
  if(rc != CURLE_OK)
    res->outcome =
        client_transfer_failed(c, rc, &leg1, CLIENT_LEG_NEGOTIATE, res);
  else if(leg1.status == 401) {
    if(leg1.ntlm_value || leg1.ntlm_value_too_big)
      res->outcome = client_leg2(c, kind, url, path, &leg1, (char *)body,
                                 (size_t)body_len, res);
    else {
      client_detail(res, "HTTP 401 without an NTLM challenge to the type 1; "
                         "the listener must accept Integrated credentials");
      res->outcome = CLIENT_AUTH_FAILED;
    }
  }
  else if(leg1.status >= 200 && leg1.status <= 299)
    res->outcome = client_final_2xx(c, kind, &leg1, res);
  else if(leg1.status >= 500 && leg1.status <= 599) {
    /* This is KB 942638: the body-less leg reached Exchange. */
    client_detail(res,
                  "HTTP %d to the body-less type 1: the listener "
                  "forwarded it instead of challenging (KB 942638)",
                  leg1.status);
    res->outcome = CLIENT_SERVER_ERROR;
  }
  else {
    client_detail(res, "unexpected HTTP %d to the type 1", leg1.status);
    res->outcome = CLIENT_PROTOCOL_ERROR;
  }
out:
  free(auth);
  ntlm_bytes_free(&type1);
  xmlFree(body);
  client_leg_free(&leg1);
}

/* ---- the session --------------------------------------------------------- */

/* Records a finished POST in what the user sees. */
static void client_record(struct client *c,
                          const struct client_post_result *res)
{
  struct client_view *v = &c->view;
  bool ok = res->outcome == CLIENT_OK;
  v->posts_done++;
  if(ok)
    v->posts_ok++;
  else {
    v->posts_failed++;
    if(!v->integration_error)
      kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                    res->connection, "notification: %s",
                    CLIENT_NOTIFICATION_TEXT);
    v->integration_error = true;
    v->autodiscovery_failed_logged = true;
    kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                  res->connection, "log: %s (POST %u %s: %s: %s)",
                  CLIENT_LOG_TEXT, res->index, client_post_kind_name(res->kind),
                  client_outcome_name(res->outcome), res->detail);
  }
  switch(res->kind) {
  case CLIENT_POST_AUTODISCOVER:
    v->autodiscover_ok = ok;
    break;
  case CLIENT_POST_OOF:
    v->presence_available = ok;
    break;
  case CLIENT_POST_AVAILABILITY:
    v->scheduling_available = ok;
    break;
  }
  v->connections = (unsigned)c->conn_count;
}

int client_step(struct client *client, struct client_post_result *res)
{
  struct client_post_result *r;
  if(!client || client->phase == CLIENT_PHASE_DONE)
    return 0;
  r = &client->results[client->nresults];
  memset(r, 0, sizeof(*r));
  r->index = client->next_index;
  if(client->phase == CLIENT_PHASE_AUTODISCOVER)
    r->kind = CLIENT_POST_AUTODISCOVER;
  else
    r->kind = (r->index % 2) ? CLIENT_POST_OOF : CLIENT_POST_AVAILABILITY;
  client_post(client, r->kind, r);
  client->nresults++;
  client->next_index++;
  client_record(client, r);
  if(client->phase == CLIENT_PHASE_AUTODISCOVER)
    client->phase = (r->outcome == CLIENT_OK && client->ews_posts)
                        ? CLIENT_PHASE_EWS
                        : CLIENT_PHASE_DONE;
  else if(client->next_index > client->ews_posts)
    client->phase = CLIENT_PHASE_DONE;
  if(res)
    *res = *r;
  return 1;
}

unsigned client_run_session(struct client *client)
{
  struct client_post_result res;
  unsigned failed = 0;
  while(client_step(client, &res))
    if(res.outcome != CLIENT_OK)
      failed++;
  return failed;
}

void client_view(const struct client *client, struct client_view *view)
{
  *view = client->view;
  view->connections = (unsigned)client->conn_count;
}

size_t client_results_count(const struct client *client)
{
  return client->nresults;
}

const struct client_post_result *client_result(const struct client *client,
                                               size_t i)
{
  return i < client->nresults ? &client->results[i] : NULL;
}

/* ---- life cycle ---------------------------------------------------------- */

/* Returns true when s can be a header value: non-empty, no control
 * characters (so no CR/LF to end the header early). */
static bool client_header_safe(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  if(!*p)
    return false;
  for(; *p; p++)
    if(*p < 0x20 || *p == 0x7f)
      return false;
  return true;
}

/* Sets the options that stay the same for the whole session. Returns 0, or
 * -1 when libcurl refuses one. */
static int client_setup_easy(struct client *c)
{
  CURL *e = c->easy;
  long timeout = c->timeout_ms;
  if(curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) ||
     curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) ||
     curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ||
     curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) ||
     /* A hosts-file-like setup: talk to base_url, never an environment
      * proxy, never a redirect. */
     curl_easy_setopt(e, CURLOPT_PROXY, "") ||
     curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) ||
     curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout) ||
     curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout) ||
     curl_easy_setopt(e, CURLOPT_POST, 1L) ||
     curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, client_open_socket) ||
     curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, c) ||
     curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, client_close_socket) ||
     curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, c) ||
     curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, client_prereq) ||
     curl_easy_setopt(e, CURLOPT_PREREQDATA, c) ||
     curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, client_debug) ||
     curl_easy_setopt(e, CURLOPT_DEBUGDATA, c) ||
     curl_easy_setopt(e, CURLOPT_VERBOSE, 1L) ||
     curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, client_header) ||
     curl_easy_setopt(e, CURLOPT_HEADERDATA, c) ||
     curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, client_write) ||
     curl_easy_setopt(e, CURLOPT_WRITEDATA, c))
    return -1;
  return 0;
}

/* Copies the NULL-terminated contacts list (the defaults when NULL) into
 * c->contacts. Returns 0, or -1 when out of memory. */
static int client_copy_contacts(struct client *c, const char *const *src)
{
  size_t n = 0, i;
  if(!src)
    src = client_default_contacts;
  while(src[n])
    n++;
  c->contacts = calloc(n + 1, sizeof(*c->contacts));
  if(!c->contacts)
    return -1;
  for(i = 0; i < n; i++) {
    c->contacts[i] = strdup(src[i]);
    if(!c->contacts[i])
      return -1;
  }
  return 0;
}

int client_create(const struct client_config *config, struct client **out,
                  char *err, size_t errlen)
{
  int result = -1;
  struct client *c = NULL;
  CURLUcode uc;
  char *scheme = NULL;
  const char *why = "out of memory creating the client";
  char why_buf[200];

  if(out)
    *out = NULL;
  if(!config || !out) {
    why = "client_create needs a config and somewhere to put the client";
    goto out;
  }
  if(!config->base_url || !*config->base_url) {
    why = "no listener URL; set base_url, e.g. http://127.0.0.1:8080";
    goto out;
  }
  if(!config->domain || !config->user || !config->password) {
    why = "no credentials; set domain, user and password";
    goto out;
  }
  if(config->host && !client_header_safe(config->host)) {
    why = "host must be a non-empty name without control characters";
    goto out;
  }
  if(config->ews_posts > CLIENT_MAX_EWS_POSTS) {
    snprintf(why_buf, sizeof(why_buf),
             "ews_posts %u is above the limit of %u; ask for fewer POSTs",
             config->ews_posts, CLIENT_MAX_EWS_POSTS);
    why = why_buf;
    goto out;
  }
  if(client_global_init()) {
    why = "libcurl failed to initialise; check the installation";
    goto out;
  }
  c = calloc(1, sizeof(*c));
  if(!c)
    goto out;
  c->id = config->id;
  c->ews_posts =
      config->ews_posts ? config->ews_posts : CLIENT_DEFAULT_EWS_POSTS;
  c->ntlm_kind = config->ntlm_kind;
  c->timeout_ms =
      config->timeout_ms > 0 ? config->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
  c->clock = config->clock;
  c->rng = config->rng;
  c->trace = config->trace;
  c->names = config->names;
  snprintf(c->origin, sizeof(c->origin), "client %u", c->id);
  c->host = client_strdup(config->host, CLIENT_DEFAULT_HOST);
  c->domain = strdup(config->domain);
  c->user = strdup(config->user);
  c->password = strdup(config->password);
  c->workstation =
      client_strdup(config->workstation, CLIENT_DEFAULT_WORKSTATION);
  if(config->email)
    c->email = strdup(config->email);
  else {
    size_t n = strlen(config->user) + sizeof("@" CLIENT_DEFAULT_MAIL_DOMAIN);
    c->email = malloc(n);
    if(c->email)
      snprintf(c->email, n, "%s@" CLIENT_DEFAULT_MAIL_DOMAIN, config->user);
  }
  if(!c->host || !c->domain || !c->user || !c->password || !c->workstation ||
     !c->email || client_copy_contacts(c, config->contacts))
    goto out;
  c->results = calloc((size_t)c->ews_posts + 1, sizeof(*c->results));
  if(!c->results)
    goto out;

  c->base = curl_url();
  if(!c->base)
    goto out;
  uc = curl_url_set(c->base, CURLUPART_URL, config->base_url, 0);
  if(uc == CURLUE_OK)
    uc = curl_url_get(c->base, CURLUPART_SCHEME, &scheme, 0);
  if(uc != CURLUE_OK || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
    snprintf(why_buf, sizeof(why_buf),
             "base_url '%.80s' is not an http(s) URL; use e.g. "
             "http://127.0.0.1:8080",
             config->base_url);
    why = why_buf;
    goto out;
  }
  c->autodiscover_url = client_url_with_path(c->base, CLIENT_AUTODISCOVER_PATH);
  if(!c->autodiscover_url)
    goto out;
  c->easy = curl_easy_init();
  if(!c->easy)
    goto out;
  if(client_setup_easy(c)) {
    why = "libcurl refused an option; it must be 7.80 or newer";
    goto out;
  }
  c->phase = CLIENT_PHASE_AUTODISCOVER;
  *out = c;
  c = NULL;
  result = 0;
out:
  curl_free(scheme);
  if(result && err && errlen)
    snprintf(err, errlen, "client: %s", why);
  client_destroy(c);
  return result;
}

void client_destroy(struct client *client)
{
  if(!client)
    return;
  /* Closing the handle closes its connection through client_close_socket,
   * which still needs the client. */
  if(client->easy)
    curl_easy_cleanup(client->easy);
  curl_url_cleanup(client->base);
  free(client->autodiscover_url);
  free(client->ews_url);
  free(client->ews_path);
  free(client->host);
  free(client->domain);
  free(client->user);
  if(client->password) {
    explicit_bzero(client->password, strlen(client->password));
    free(client->password);
  }
  free(client->workstation);
  free(client->email);
  if(client->contacts) {
    for(size_t i = 0; client->contacts[i]; i++)
      free(client->contacts[i]);
    free(client->contacts);
  }
  free(client->results);
  free(client);
}
