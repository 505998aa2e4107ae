/*
 * client.c - the client's life cycle and names: the names of client.h's
 * enums, the process-wide initialisation of libcurl and libxml2, checking
 * and copying a client_config into a new client, and destroying it. The
 * session itself is in session.c.
 */
#include "client_int.h"

#include <libxml/parser.h>
#include <nettle/base64.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIENT_DEFAULT_HOST "autodiscover.fabrikam.com"
#define CLIENT_DEFAULT_WORKSTATION "COMMUNICATOR"
#define CLIENT_DEFAULT_MAIL_DOMAIN "fabrikam.com"
#define CLIENT_DEFAULT_EWS_POSTS 2u
#define CLIENT_DEFAULT_TIMEOUT_MS 10000L

/* Limits on what a config can ask for. */
#define CLIENT_MAX_EWS_POSTS 100000u
/* Credentials longer than this are refused at create time; they only need
 * to fit one Authorization header. */
#define CLIENT_MAX_CREDENTIALS 1024u

static const char *const client_default_contacts[] = {
    "bob@fabrikam.com", "carol@fabrikam.com", NULL};

/* ---- names --------------------------------------------------------------- */

/* Each kind's names and what it does to a listener, in the enum's order.
 * holds_body: it re-authenticates a POST on an authenticated connection
 * with a body-less type 1, which an ISA as shipped forwards (KB 942638).
 * The symptoms of the kinds that are not Communicator are what such a
 * program shows for a failed request, not a window kbsim models. */
static const struct client_kind_info client_kinds[] = {
    {CLIENT_KIND_COMMUNICATOR, "communicator", "Communicator",
     "Office Communicator 2007",
     "Communicator re-authenticates every POST. On a keep-alive connection "
     "that ISA has already authenticated, it sends Authorization: NTLM "
     "<type 1> with Content-Length: 0, holding the body back for the "
     "handshake. What ISA does with that POST decides everything.",
     "autodiscover", "EWS POST", true, "the Outlook Integration Error", true,
     "Microsoft+Office+Communicator/2.0"},
    {CLIENT_KIND_OUTLOOK, "outlook", "Outlook", "Outlook 2007",
     "Outlook authenticates a connection once and sends its later requests "
     "on it without Authorization: it never holds a body back, so ISA as "
     "shipped has nothing to get wrong.",
     "autodiscover", "EWS POST", false, "an EWS error in Outlook", false,
     "Microsoft Office/12.0 (Windows NT 5.1; Microsoft Office Outlook "
     "12.0.4518; Pro)"},
    {CLIENT_KIND_ONE_SHOT, "one-shot", "Communicator",
     "Communicator, a connection per POST",
     "This Communicator runs every POST's handshake on a new connection and "
     "closes it afterwards: no type 1 ever arrives on an authenticated "
     "connection, so ISA as shipped has nothing to get wrong.",
     "autodiscover", "EWS POST", false, "the Outlook Integration Error", true,
     "Microsoft+Office+Communicator/2.0"},
    {CLIENT_KIND_IE, "ie", "Internet Explorer", "Internet Explorer (WinINet)",
     "Internet Explorer sends a POST with Content-Length: 0 and an NTLM "
     "type 1 whenever it expects a challenge, the body only after the "
     "handshake; its GETs on the authenticated connection carry no "
     "Authorization. What ISA does with that POST decides everything.",
     "2 GETs of /EWS/Services.wsdl", "EWS POST", true,
     "an HTTP 500 page in the browser", false,
     "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1; .NET CLR 2.0.50727)"},
    {CLIENT_KIND_DOTNET, "dotnet", ".NET client", ".NET HttpWebRequest",
     ".NET's HttpWebRequest sends its type 1 on a new connection with "
     "Expect: 100-continue, and closes the connection after each "
     "authenticated request (with connection sharing, later POSTs go on it "
     "without re-authenticating): ISA as shipped has nothing to get wrong.",
     "autodiscover", "EWS POST", false, "a failed EWS call", false,
     "Mozilla/4.0 (compatible; MSIE 6.0; MS Web Services Client Protocol "
     "2.0.50727.3053)"},
    {CLIENT_KIND_JAVA, "java", "Java client", "Java (Apache HttpClient)",
     "Java's HttpClient authenticates a connection once, each leg with its "
     "body, and sends later POSTs on it without Authorization: ISA as "
     "shipped has nothing to get wrong.",
     "autodiscover", "EWS POST", false, "a failed EWS call", false,
     "Apache-HttpClient/4.5.13 (Java/11.0.20)"},
    {CLIENT_KIND_OUTLOOK_ANYWHERE, "outlook-anywhere", "Outlook Anywhere",
     "Outlook 2007 (RPC over HTTP)",
     "Outlook Anywhere opens two long-lived RPC over HTTP channels, each "
     "authenticated once with NTLM on its own connection, and never "
     "re-authenticates them: ISA as shipped has nothing to get wrong, but "
     "a listener that splits a handshake or recycles the pinned connection "
     "kills the channels.",
     "the RPC channels' setup", "RPC call", false,
     "Outlook asking for the password again", false,
     /* The RPC runtime's own, as MS-RPCH 2.1.2.1.1 and 2.1.2.1.2 give it. */
     "MSRPC"},
};

const struct client_kind_info *client_kind_info(enum client_kind kind)
{
  return (unsigned)kind < sizeof(client_kinds) / sizeof(client_kinds[0])
             ? &client_kinds[kind]
             : NULL;
}

const struct client_kind_info *client_kind_by_user_agent(const char *ua,
                                                         size_t len)
{
  size_t i;

  for(i = 0; ua && i < sizeof(client_kinds) / sizeof(client_kinds[0]); i++)
    if(strlen(client_kinds[i].user_agent) == len &&
       !memcmp(client_kinds[i].user_agent, ua, len))
      return &client_kinds[i];
  return NULL;
}

const char *client_kind_name(enum client_kind kind)
{
  const struct client_kind_info *k = client_kind_info(kind);
  return k ? k->name : "unknown";
}

const char *client_kind_label(enum client_kind kind)
{
  const struct client_kind_info *k = client_kind_info(kind);
  return k ? k->label : "client";
}

int client_kind_parse(const char *name, enum client_kind *out)
{
  size_t i;

  for(i = 0; name && i < sizeof(client_kinds) / sizeof(client_kinds[0]); i++) {
    if(!strcmp(name, client_kinds[i].name)) {
      if(out)
        *out = client_kinds[i].kind;
      return 0;
    }
  }
  return -1;
}

const char *client_post_kind_name(enum client_post_kind kind)
{
  switch(kind) {
  case CLIENT_POST_AUTODISCOVER:
    return "autodiscover";
  case CLIENT_POST_OOF:
    return "GetUserOofSettings";
  case CLIENT_POST_AVAILABILITY:
    return "GetUserAvailability";
  case CLIENT_POST_PAGE:
    return "Services.wsdl";
  case CLIENT_POST_RPC_CHANNELS:
    return "RPC channels";
  case CLIENT_POST_RPC_CALL:
    return "RPC call";
  }
  return "unknown";
}

const char *client_post_kind_verb(enum client_post_kind kind)
{
  switch(kind) {
  case CLIENT_POST_PAGE:
    return "GET";
  case CLIENT_POST_RPC_CHANNELS:
  case CLIENT_POST_RPC_CALL:
    return "RPC";
  case CLIENT_POST_AUTODISCOVER:
  case CLIENT_POST_OOF:
  case CLIENT_POST_AVAILABILITY:
    break;
  }
  return "POST";
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

/* ---- life cycle ---------------------------------------------------------- */

/* Returns a malloc'd copy of s, or of fallback when s is NULL; NULL only
 * when out of memory (or both are NULL). */
static char *client_strdup(const char *s, const char *fallback)
{
  const char *src = s ? s : fallback;
  return src ? strdup(src) : NULL;
}

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

/* Builds "Basic base64(DOMAIN\user:password)" and Outlook's libcurl user
 * name "DOMAIN\user" into c. Returns 0, or -1 when out of memory. */
static int client_build_credentials(struct client *c)
{
  int result = -1;
  struct kb_buf plain;
  size_t n;
  kb_buf_init(&plain, 3 * CLIENT_MAX_CREDENTIALS + 8);
  if(kb_buf_printf(&plain, "%s\\%s:%s", c->domain, c->user, c->password) !=
     KB_BUF_OK)
    goto out;
  n = BASE64_ENCODE_RAW_LENGTH(plain.len);
  c->basic_auth = malloc(sizeof("Basic ") + n);
  if(!c->basic_auth)
    goto out;
  memcpy(c->basic_auth, "Basic ", sizeof("Basic ") - 1);
  base64_encode_raw(c->basic_auth + sizeof("Basic ") - 1, plain.len,
                    (const uint8_t *)plain.data);
  c->basic_auth[sizeof("Basic ") - 1 + n] = '\0';
  n = strlen(c->domain) + 1 + strlen(c->user) + 1;
  c->curl_user = malloc(n);
  if(!c->curl_user)
    goto out;
  snprintf(c->curl_user, n, "%s\\%s", c->domain, c->user);
  result = 0;
out:
  if(plain.data)
    explicit_bzero(plain.data, plain.len);
  kb_buf_free(&plain);
  return result;
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

/* Checks config before anything is allocated. Returns NULL when a client
 * can be made from it, or a one-line reason: a constant, or written into
 * why_buf (why_len bytes). */
static const char *client_check_config(const struct client_config *config,
                                       char *why_buf, size_t why_len)
{
  if(!config->base_url || !*config->base_url)
    return "no listener URL; set base_url, e.g. http://127.0.0.1:8080";
  if(!config->domain || !config->user || !config->password)
    return "no credentials; set domain, user and password";
  if(config->host && !client_header_safe(config->host))
    return "host must be a non-empty name without control characters";
  if(strlen(config->domain) > CLIENT_MAX_CREDENTIALS ||
     strlen(config->user) > CLIENT_MAX_CREDENTIALS ||
     strlen(config->password) > CLIENT_MAX_CREDENTIALS) {
    snprintf(why_buf, why_len,
             "domain, user and password must each be at most %u bytes",
             CLIENT_MAX_CREDENTIALS);
    return why_buf;
  }
  if(client_kind_parse(client_kind_name(config->kind), NULL))
    return "unknown client kind; use " CLIENT_KIND_NAMES;
  if(config->connection_sharing && config->kind != CLIENT_KIND_DOTNET)
    return "connection_sharing is .NET's UnsafeAuthenticatedConnectionSharing; "
           "use it with the dotnet kind";
  if(config->krb5_ccache && config->kind != CLIENT_KIND_COMMUNICATOR &&
     config->kind != CLIENT_KIND_ONE_SHOT)
    return "Kerberos credentials (krb5_ccache) are for the communicator and "
           "one-shot kinds; use one of them";
  if(config->think_min_ms < 0 || config->think_max_ms < config->think_min_ms)
    return "think time must satisfy 0 <= think_min_ms <= think_max_ms";
  if(config->idle_timeout_ms < 0)
    return "idle_timeout_ms must be 0 (no limit) or positive";
  if(config->ews_posts > CLIENT_MAX_EWS_POSTS) {
    snprintf(why_buf, why_len,
             "ews_posts %u is above the limit of %u; ask for fewer POSTs",
             config->ews_posts, CLIENT_MAX_EWS_POSTS);
    return why_buf;
  }
  return NULL;
}

/* Copies a checked config into the new client c: numbers as they are (or
 * their defaults), strings duplicated (or their defaults), the Basic and
 * libcurl credentials built, the results allocated. Returns 0, or -1 when
 * out of memory (what was copied is freed by client_destroy). */
static int client_copy_config(struct client *c,
                              const struct client_config *config)
{
  c->id = config->id;
  c->kind = config->kind;
  c->connection_sharing = config->connection_sharing;
  c->lead = config->kind == CLIENT_KIND_IE ? CLIENT_IE_PAGES : 1u;
  c->think_min_ms = config->think_min_ms;
  c->think_max_ms = config->think_max_ms;
  c->idle_timeout_ms = config->idle_timeout_ms;
  c->max_requests = config->max_requests;
  c->balancer = config->balancer;
  c->ews_posts =
      config->ews_posts ? config->ews_posts : CLIENT_DEFAULT_EWS_POSTS;
  c->ntlm_kind = config->ntlm_kind;
  c->ntlm_mic = config->ntlm_mic;
  c->timeout_ms =
      config->timeout_ms > 0 ? config->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
  c->clock = config->clock;
  c->rng = config->rng;
  c->trace = config->trace;
  c->names = config->names;
  c->source = config->source;
  snprintf(c->origin, sizeof(c->origin), "client %u", c->id);
  if(config->ca_pem && !(c->ca_pem = strdup(config->ca_pem)))
    return -1;
  c->host = client_strdup(config->host, CLIENT_DEFAULT_HOST);
  c->domain = strdup(config->domain);
  c->user = strdup(config->user);
  c->password = strdup(config->password);
  if(config->krb5_ccache) {
    /* Inside the network: the ticket goes with the first request. */
    c->krb5_ccache = strdup(config->krb5_ccache);
    c->scheme = CLIENT_SCHEME_KERBEROS;
    if(!c->krb5_ccache)
      return -1;
  }
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
     !c->email || client_copy_contacts(c, config->contacts) ||
     client_build_credentials(c))
    return -1;
  c->results = calloc((size_t)c->ews_posts + c->lead, sizeof(*c->results));
  return c->results ? 0 : -1;
}

int client_create(const struct client_config *config, struct client **out,
                  char *err, size_t errlen)
{
  int result = -1;
  struct client *c = NULL;
  CURLUcode uc;
  char *scheme = NULL;
  const char *why = "out of memory creating the client";
  const char *bad;
  char why_buf[200];

  if(out)
    *out = NULL;
  if(!config || !out) {
    why = "client_create needs a config and somewhere to put the client";
    goto out;
  }
  bad = client_check_config(config, why_buf, sizeof(why_buf));
  if(bad) {
    why = bad;
    goto out;
  }
  if(client_global_init()) {
    why = "libcurl failed to initialise; check the installation";
    goto out;
  }
  c = calloc(1, sizeof(*c));
  if(!c || client_copy_config(c, config))
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
  c->autodiscover_url =
      client__url_with_path(c->base, CLIENT_AUTODISCOVER_PATH);
  if(!c->autodiscover_url)
    goto out;
  if(c->kind == CLIENT_KIND_IE) {
    /* A browser in the EWS folder knows its URLs: no autodiscover. */
    c->page_url = client__url_with_path(c->base, CLIENT_PAGE_PATH);
    c->ews_url = client__url_with_path(c->base, CLIENT_EWS_PATH);
    c->ews_path = strdup(CLIENT_EWS_PATH);
    if(!c->page_url || !c->ews_url || !c->ews_path)
      goto out;
  }
  c->easy = curl_easy_init();
  if(!c->easy)
    goto out;
  if(client__setup_easy(c)) {
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
  client__rpc_free(client);
  client__easy_cleanup(client);
  curl_url_cleanup(client->base);
  free(client->autodiscover_url);
  free(client->page_url);
  free(client->ews_url);
  free(client->ews_path);
  free(client->host);
  free(client->domain);
  free(client->user);
  if(client->password) {
    explicit_bzero(client->password, strlen(client->password));
    free(client->password);
  }
  if(client->basic_auth) {
    explicit_bzero(client->basic_auth, strlen(client->basic_auth));
    free(client->basic_auth);
  }
  free(client->curl_user);
  free(client->ca_pem);
  free(client->workstation);
  free(client->krb5_ccache);
  free(client->email);
  if(client->contacts) {
    for(size_t i = 0; client->contacts[i]; i++)
      free(client->contacts[i]);
    free(client->contacts);
  }
  free(client->results);
  free(client);
}
