/*
 * client.c - Office Communicator 2007's Outlook integration, over libcurl.
 *
 * One curl easy handle per client carries the session, so every POST rides
 * the same keep-alive connection for as long as the listener (and the
 * client's own keep-alive limits) keep it open. For Communicator libcurl's
 * own authentication is never enabled: Communicator re-authenticates each
 * POST, which libcurl's NTLM never does, so every leg is crafted here with
 * ntlm.h and sent as plain custom headers. Outlook is the opposite case and
 * uses libcurl's CURLAUTH_NTLM as it is.
 *
 * The sockets are opened and closed through our own callbacks so that the
 * session can count its TCP connections, name them in the trace and let a
 * balancer pick where each goes; the pre-request callback tells which of
 * them a request is about to use, and the debug callback sees every request
 * libcurl sends, so the trace holds one EXCHANGE per HTTP request.
 */
#include "client/client.h"
#include "client/reauth.h"
#include "xml.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <libxml/parser.h>
#include <netinet/in.h>
#include <nettle/base64.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/kb_auth.h"
#include "common/kb_buf.h"
#include "common/kb_net.h"
#include "common/kb_wire.h"

#define CLIENT_DEFAULT_HOST "autodiscover.fabrikam.com"
#define CLIENT_DEFAULT_WORKSTATION "COMMUNICATOR"
#define CLIENT_DEFAULT_MAIL_DOMAIN "fabrikam.com"
#define CLIENT_DEFAULT_EWS_POSTS 2u
#define CLIENT_DEFAULT_TIMEOUT_MS 10000L
#define CLIENT_USER_AGENT "Microsoft+Office+Communicator/2.0"
#define CLIENT_OUTLOOK_USER_AGENT                                              \
  "Microsoft Office/12.0 (Windows NT 5.1; Microsoft Office Outlook "           \
  "12.0.4518; Pro)"
#define CLIENT_AUTODISCOVER_PATH "/autodiscover/autodiscover.xml"

/* Limits on what a peer can make us hold. */
#define CLIENT_MAX_BODY (1024u * 1024u)
#define CLIENT_MAX_AUTH_VALUE 8192u
#define CLIENT_MAX_SOCKETS 8u
#define CLIENT_MAX_EWS_POSTS 100000u
/* Credentials longer than this are refused at create time; they only need
 * to fit one Authorization header. */
#define CLIENT_MAX_CREDENTIALS 1024u

static const char *const client_default_contacts[] = {
    "bob@fabrikam.com", "carol@fabrikam.com", NULL};

/* Where the session is. */
enum client_phase {
  CLIENT_PHASE_AUTODISCOVER = 0, /* POST 0 not sent yet */
  CLIENT_PHASE_EWS,              /* autodiscover succeeded: EWS POSTs */
  CLIENT_PHASE_DONE              /* nothing more to send */
};

/* The authentication scheme Communicator learned from the listener's first
 * answer; kept for the whole session, across reconnects, as WinINet does. */
enum client_scheme {
  CLIENT_SCHEME_UNKNOWN = 0, /* nothing answered yet: send without */
  CLIENT_SCHEME_NONE,        /* the listener answered without asking */
  CLIENT_SCHEME_NTLM,        /* type 1 + Content-Length 0, then type 3 */
  CLIENT_SCHEME_BASIC        /* credentials and body together */
};

/* What a leg carries, for details and trace events. */
enum client_leg_kind {
  CLIENT_LEG_PLAIN = 0,    /* no Authorization, with the body */
  CLIENT_LEG_NEGOTIATE,    /* NTLM type 1, body held back */
  CLIENT_LEG_AUTHENTICATE, /* NTLM type 3 with the body */
  CLIENT_LEG_BASIC,        /* Basic credentials with the body */
  CLIENT_LEG_OUTLOOK       /* libcurl's own NTLM, as many requests as needed */
};

/* A socket opened through client_open_socket. conn stays 0 until a request
 * is about to use it, i.e. until the TCP connection is established. */
struct client_socket {
  curl_socket_t fd;
  uint64_t conn;
  unsigned requests;           /* requests sent on it, for max_requests */
  char name[KB_CONN_NAME_LEN]; /* "client <id> conn <n>" when names are in use,
                                  else "" */
  uint16_t remote_port; /* where it connects, after the balancer's pick */
};

/* One request and what came back for it. */
struct client_leg {
  int status;                     /* 0 until a status line arrived */
  struct kb_buf body;             /* response body, capped at CLIENT_MAX_BODY */
  enum kb_buf_result body_result; /* why the write callback stopped */
  char *ntlm_value;        /* first "NTLM <token>" WWW-Authenticate value */
  bool ntlm_value_too_big; /* an NTLM value above CLIENT_MAX_AUTH_VALUE */
  bool ntlm_bare;          /* "WWW-Authenticate: NTLM" without a token */
  bool basic_offered;      /* "WWW-Authenticate: Basic ..." */
  bool other_scheme;       /* a WWW-Authenticate of another scheme */
};

/* One HTTP request libcurl sent, recorded from the debug and header
 * callbacks until it is complete, then emitted as an EXCHANGE. */
struct client_req {
  bool sent;     /* its header block went out */
  uint64_t conn; /* the connection it went out on */
  char conn_name[48];
  char method[16];
  char path[256]; /* truncated when longer */
  enum kb_auth req_auth;
  size_t req_body_len; /* its Content-Length */
  int status;          /* final status, 0 while none arrived */
  enum kb_auth resp_auth;
  size_t resp_written; /* body bytes handed to the write callback */
  size_t resp_data_in; /* body bytes received, ignored ones included */
};

struct client {
  /* Copied configuration. */
  unsigned id;
  enum client_kind kind;
  char *host;
  char *domain;
  char *user;
  char *password;
  char *workstation;
  char *email;
  char **contacts;  /* NULL-terminated */
  char *basic_auth; /* "Basic base64(DOMAIN\user:password)" */
  char *curl_user;  /* "DOMAIN\user", for Outlook's libcurl NTLM */
  unsigned ews_posts;
  enum ntlm_response_kind ntlm_kind;
  bool ntlm_mic;
  int64_t think_min_ms;
  int64_t think_max_ms;
  int64_t idle_timeout_ms;
  unsigned max_requests;
  struct client_balancer balancer;
  long timeout_ms;
  struct kb_clock clock;
  struct kb_rng rng;
  struct kb_trace trace;
  struct kb_names names;
  uint32_t source;         /* see client_config */
  uint64_t sockets_opened; /* sockets opened so far; names the next one */
  char origin[32];         /* "client <id>" */

  /* Transport. */
  CURLU *base; /* config->base_url, parsed */
  char *autodiscover_url;
  char *ews_url; /* ASUrl's path on base_url, once known */
  char *ews_path;
  CURL *easy; /* NULL only when re-creating it ran out of memory */
  char errbuf[CURL_ERROR_SIZE];
  bool out_of_fds; /* a socket could not be opened: EMFILE, ENFILE */
  struct client_socket sockets[CLIENT_MAX_SOCKETS];
  size_t nsockets;
  uint64_t conn_count;      /* connections established so far */
  uint64_t current_conn;    /* the one the running request uses, 0 if none */
  char current_name[48];    /* its name; kept after the socket closes */
  struct client_leg *leg;   /* the leg being received, for the callbacks */
  int64_t last_response_ms; /* client time of the latest answer */

  /* The leg being sent (one curl_easy_perform). */
  struct client_req req;   /* the request in flight */
  unsigned leg_requests;   /* HTTP requests sent in this leg */
  unsigned leg_unanswered; /* ... of which got no answer */
  uint64_t leg_dead_conn;  /* the connection of the last of those */
  uint64_t leg_new_conn;   /* connection numbered in this leg, or 0 */
  int leg_first_status;    /* status of the first answered request */

  /* Session. */
  enum client_phase phase;
  enum client_scheme scheme;
  unsigned next_index;
  struct client_post_result *results; /* 1 + ews_posts slots */
  size_t nresults;
  struct client_view view;
};

/* ---- names --------------------------------------------------------------- */

const char *client_kind_name(enum client_kind kind)
{
  switch(kind) {
  case CLIENT_KIND_COMMUNICATOR:
    return "communicator";
  case CLIENT_KIND_OUTLOOK:
    return "outlook";
  case CLIENT_KIND_ONE_SHOT:
    return "one-shot";
  }
  return "unknown";
}

int client_kind_parse(const char *name, enum client_kind *out)
{
  static const enum client_kind all[] = {
      CLIENT_KIND_COMMUNICATOR, CLIENT_KIND_OUTLOOK, CLIENT_KIND_ONE_SHOT};
  size_t i;
  for(i = 0; name && i < sizeof(all) / sizeof(all[0]); i++) {
    if(!strcmp(name, client_kind_name(all[i]))) {
      if(out)
        *out = all[i];
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

/* Forgets what an earlier response in the same transfer left (an interim
 * 1xx, or a 401 libcurl answered by itself), so that the leg describes the
 * last response only. */
static void client_leg_reset_response(struct client_leg *leg)
{
  free(leg->ntlm_value);
  leg->ntlm_value = NULL;
  leg->ntlm_value_too_big = false;
  leg->ntlm_bare = false;
  leg->basic_offered = false;
  leg->other_scheme = false;
  kb_buf_reset(&leg->body);
  leg->body_result = KB_BUF_OK;
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

/* Returns the socket carrying connection conn, or NULL when it is closed
 * (or conn is 0). */
static struct client_socket *client_socket_of(struct client *c, uint64_t conn)
{
  size_t i;
  for(i = 0; conn && i < c->nsockets; i++)
    if(c->sockets[i].conn == conn)
      return &c->sockets[i];
  return NULL;
}

/* Returns the number of the connection libcurl keeps open for the next
 * request (the newest established one), or 0 when there is none. */
static uint64_t client_open_conn(const struct client *c)
{
  uint64_t newest = 0;
  size_t i;
  for(i = 0; i < c->nsockets; i++)
    if(c->sockets[i].conn > newest)
      newest = c->sockets[i].conn;
  return newest;
}

/* Ranks what a WWW-Authenticate or Authorization header says, so that one
 * response offering several schemes is summed up by the one that matters
 * to NTLM: an NTLM message, then a bare "NTLM", then Negotiate, then
 * anything else. */
static int client_auth_rank(enum kb_auth a)
{
  switch(a) {
  case KB_AUTH_NTLM_NEGOTIATE:
  case KB_AUTH_NTLM_CHALLENGE:
  case KB_AUTH_NTLM_AUTHENTICATE:
    return 4;
  case KB_AUTH_NTLM_BARE:
    return 3;
  case KB_AUTH_NEGOTIATE_BARE:
  case KB_AUTH_SPNEGO:
    return 2;
  case KB_AUTH_OTHER:
    return 1;
  case KB_AUTH_NONE:
    break;
  }
  return 0;
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

/* Emits one EXCHANGE event for ex, observed on conn (named name, may be
 * ""). */
static void client_trace_exchange(const struct client *c, uint64_t conn,
                                  const char *name,
                                  const struct kb_exchange *ex)
{
  struct kb_trace_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.kind = KB_TRACE_EXCHANGE;
  ev.hop = KB_HOP_CLIENT_PROXY;
  ev.side = KB_SIDE_CLIENT;
  ev.origin = c->origin;
  ev.conn = conn;
  ev.conn_name = name && name[0] ? name : NULL;
  ev.exchange = ex;
  kb_trace_emit(&c->trace, &ev);
}

/* Emits the request in flight as an EXCHANGE once its header block went
 * out, and forgets it. A request that got no answer (its connection died
 * under it) is counted in leg_unanswered, since libcurl may send it again. */
static void client_req_flush(struct client *c)
{
  struct client_req *r = &c->req;
  struct kb_exchange ex;
  if(r->sent) {
    memset(&ex, 0, sizeof(ex));
    ex.method = r->method;
    ex.path = r->path;
    ex.req_auth = r->req_auth;
    ex.req_body_len = r->req_body_len;
    ex.status = r->status;
    ex.resp_auth = r->resp_auth;
    ex.resp_body_len = r->resp_written ? r->resp_written : r->resp_data_in;
    client_trace_exchange(c, r->conn, r->conn_name, &ex);
    if(!r->status) {
      c->leg_unanswered++;
      c->leg_dead_conn = r->conn;
    }
    else if(!c->leg_first_status)
      c->leg_first_status = r->status;
  }
  memset(r, 0, sizeof(*r));
}

/* Starts recording a request from the header block libcurl is sending (len
 * bytes): its method, path, Authorization and Content-Length, and counts
 * it on its connection for max_requests. */
static void client_req_start(struct client *c, const char *data, size_t len)
{
  struct client_req *r = &c->req;
  struct client_socket *sock;
  const char *v, *sp;
  size_t vlen, n;
  char num[32];

  client_req_flush(c);
  r->sent = true;
  r->conn = c->current_conn;
  memcpy(r->conn_name, c->current_name, sizeof(r->conn_name));
  /* "POST /EWS/Exchange.asmx HTTP/1.1" */
  sp = memchr(data, ' ', len);
  n = sp ? (size_t)(sp - data) : 0;
  snprintf(r->method, sizeof(r->method), "%.*s", (int)n, data);
  if(sp) {
    const char *p = sp + 1;
    const char *end = memchr(p, ' ', len - (size_t)(p - data));
    n = end ? (size_t)(end - p) : 0;
    snprintf(r->path, sizeof(r->path), "%.*s", (int)n, p);
  }
  v = kb_wire_field_first(data, len, "Authorization", &vlen);
  r->req_auth = v ? kb_auth_classify(v, vlen) : KB_AUTH_NONE;
  v = kb_wire_field_first(data, len, "Content-Length", &vlen);
  if(v && vlen < sizeof(num)) {
    memcpy(num, v, vlen);
    num[vlen] = '\0';
    r->req_body_len = (size_t)strtoull(num, NULL, 10);
  }
  c->leg_requests++;
  sock = client_socket_of(c, c->current_conn);
  if(sock)
    sock->requests++;
}

/* ---- libcurl callbacks --------------------------------------------------- */

/* Lets the balancer pick where the connection named name goes: it may
 * rewrite address->addr in place, which libcurl then connects to (its
 * documentation allows the open-socket callback to modify the address). A
 * pick that declines (-1), or that changes the address family, leaves the
 * address from base_url. */
static void client_balance(struct client *c, const char *name,
                           struct curl_sockaddr *address)
{
  struct sockaddr_storage keep;
  size_t len = address->addrlen;
  if(!c->balancer.pick || len > sizeof(keep))
    return;
  memcpy(&keep, &address->addr, len);
  if(c->balancer.pick(c->balancer.ctx, name, &address->addr,
                      address->addrlen) ||
     address->addr.sa_family != keep.ss_family)
    memcpy(&address->addr, &keep, len);
}

/* CURLOPT_OPENSOCKETFUNCTION: opens the socket curl asks for and remembers
 * it with the name it will claim, after the balancer (if any) picked its
 * destination. Returns the
 * socket, or CURL_SOCKET_BAD when it cannot be opened or the client already
 * tracks CLIENT_MAX_SOCKETS (curl then reports a connect failure). curl
 * owns the socket until it hands it to client_close_socket. */
static curl_socket_t client_open_socket(void *clientp, curlsocktype purpose,
                                        struct curl_sockaddr *address)
{
  struct client *c = clientp;
  struct client_socket *sock;
  struct kb_conn_id id;
  char name[KB_CONN_NAME_LEN];
  curl_socket_t fd;
  if(purpose != CURLSOCKTYPE_IPCXN || c->nsockets == CLIENT_MAX_SOCKETS)
    return CURL_SOCKET_BAD;
  id.client = c->id;
  id.conn = (unsigned)(c->sockets_opened + 1);
  id.upstream = 0;
  kb_conn_name_format(&id, name, sizeof(name));
  client_balance(c, name, address);
  fd = kb_net_socket(address->family, address->socktype | SOCK_CLOEXEC,
                     address->protocol);
  if(fd < 0) {
    c->out_of_fds = errno == EMFILE || errno == ENFILE;
    return CURL_SOCKET_BAD;
  }
  /* Unbound when it fails: the connection is the same, only its source
   * address is the kernel's. */
  if(address->family == AF_INET)
    (void)kb_net_bind_source(fd, c->source);
  c->sockets_opened++;
  sock = &c->sockets[c->nsockets++];
  memset(sock, 0, sizeof(*sock));
  sock->fd = fd;
  /* Named once connected: client_prereq claims the port the kernel picks
   * in connect() (see kb_names). */
  if(c->names.claim)
    snprintf(sock->name, sizeof(sock->name), "%s", name);
  sock->remote_port = kb_sockaddr_port(&address->addr);
  return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: closes a socket curl is done with, emitting
 * the EXCHANGE of a request still in flight on it, then CLOSE when it had
 * carried a connection. Returns close()'s result. */
static int client_close_socket(void *clientp, curl_socket_t item)
{
  struct client *c = clientp;
  size_t i;
  for(i = 0; i < c->nsockets; i++) {
    if(c->sockets[i].fd != item)
      continue;
    if(c->sockets[i].conn) {
      if(c->req.sent && c->req.conn == c->sockets[i].conn)
        client_req_flush(c);
      client_trace(c, KB_TRACE_CLOSE, c->sockets[i].conn, NULL, 0);
    }
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

/* CURLOPT_PREREQFUNCTION: called before each request, once its connection
 * is established or picked for reuse (libcurl's own NTLM handshake and its
 * retry after a dead connection each pass here again). Ends the previous
 * request's record, finds our socket by its local address, numbers it
 * (claiming its name and emitting OPEN) the first time, and makes it the
 * current connection for the trace. Always lets the request go. */
static int client_prereq(void *clientp, char *conn_primary_ip,
                         char *conn_local_ip, int conn_primary_port,
                         int conn_local_port)
{
  struct client *c = clientp;
  size_t i;
  (void)conn_primary_ip;
  (void)conn_primary_port;
  client_req_flush(c);
  c->current_conn = 0;
  c->current_name[0] = '\0';
  for(i = 0; i < c->nsockets; i++) {
    if(!client_socket_is(c->sockets[i].fd, conn_local_ip, conn_local_port))
      continue;
    if(!c->sockets[i].conn) {
      /* A new connection: claim its name before the first byte goes. */
      /* (libcurl's conn_primary_port is the URL's, not the balancer's
       * pick.) */
      if(c->sockets[i].name[0] && conn_local_port > 0 &&
         conn_local_port <= 65535)
        kb_names_claim(&c->names, (uint16_t)conn_local_port,
                       c->sockets[i].remote_port, c->sockets[i].name);
      c->sockets[i].conn = ++c->conn_count;
      c->leg_new_conn = c->sockets[i].conn;
      client_trace(c, KB_TRACE_OPEN, c->sockets[i].conn, NULL, 0);
    }
    c->current_conn = c->sockets[i].conn;
    memcpy(c->current_name, c->sockets[i].name, sizeof(c->current_name));
    break;
  }
  return CURL_PREREQFUNC_OK;
}

/* CURLOPT_DEBUGFUNCTION: turns the bytes curl wrote and read into SEND and
 * RECV events, exactly as they crossed the socket, and starts a request's
 * record at each header block sent. Curl's text lines are dropped: the
 * trace has its own notes. Returns 0 as curl requires. */
static int client_debug(CURL *handle, curl_infotype type, char *data,
                        size_t size, void *userptr)
{
  struct client *c = userptr;
  (void)handle;
  switch(type) {
  case CURLINFO_HEADER_OUT:
    client_req_start(c, data, size);
    client_trace(c, KB_TRACE_SEND, c->current_conn, data, size);
    break;
  case CURLINFO_DATA_OUT:
    client_trace(c, KB_TRACE_SEND, c->current_conn, data, size);
    break;
  case CURLINFO_DATA_IN:
    c->req.resp_data_in += size;
    client_trace(c, KB_TRACE_RECV, c->current_conn, data, size);
    break;
  case CURLINFO_HEADER_IN:
    client_trace(c, KB_TRACE_RECV, c->current_conn, data, size);
    break;
  default:
    break;
  }
  return 0;
}

/* CURLOPT_HEADERFUNCTION: keeps the WWW-Authenticate values that matter
 * for authentication. A status line starts a new response (1xx responses,
 * and for Outlook libcurl's own 401s, come before the final one), so it
 * clears what an earlier one left. One challenge per header line, as IIS
 * and ISA send them. Returns the bytes consumed; never aborts the transfer,
 * since an oversized value is reported once the response is complete. */
static size_t client_header(char *buffer, size_t size, size_t nitems,
                            void *userdata)
{
  static const char name[] = "WWW-Authenticate:";
  struct client *c = userdata;
  struct client_leg *leg = c->leg;
  size_t len = size * nitems;
  const char *v;
  size_t vlen;
  enum kb_auth seen;
  if(!leg)
    return len;
  if(len >= 5 && !memcmp(buffer, "HTTP/", 5)) {
    const char *sp = memchr(buffer, ' ', len);
    client_leg_reset_response(leg);
    c->req.status = 0;
    c->req.resp_auth = KB_AUTH_NONE;
    c->req.resp_written = 0;
    c->req.resp_data_in = 0;
    if(sp && (size_t)(sp - buffer) + 4 <= len && sp[1] >= '0' && sp[1] <= '9' &&
       sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9')
      c->req.status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
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
  seen = kb_auth_classify(v, vlen);
  if(client_auth_rank(seen) > client_auth_rank(c->req.resp_auth))
    c->req.resp_auth = seen;
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
  else if(vlen >= 5 && !strncasecmp(v, "Basic", 5) &&
          (vlen == 5 || v[5] == ' ' || v[5] == '\t')) {
    leg->basic_offered = true;
    leg->other_scheme = true;
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
  c->req.resp_written += len;
  c->leg->body_result = kb_buf_add(&c->leg->body, ptr, len);
  return c->leg->body_result == KB_BUF_OK ? len : 0;
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
  int n = client_xml_xpath(body,
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
    n = client_xml_xpath(body,
                         "/s:Envelope/s:Body/m:GetUserOofSettingsResponse/"
                         "m:ResponseMessage[@ResponseClass='Success']",
                         NULL);
  else
    n = client_xml_xpath(body,
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

/* Closes the session's connection for good by replacing the easy handle:
 * libcurl has no call that closes one cached connection, and a fresh handle
 * guarantees the old connection is never reused. The close goes through
 * client_close_socket, so CLOSE is traced. Returns 0, or -1 when a new
 * handle cannot be made (c->easy is then NULL and the next leg fails with a
 * transport error). */
static int client_setup_easy(struct client *c);
static int client_drop_connection(struct client *c)
{
  if(c->easy)
    curl_easy_cleanup(c->easy);
  c->easy = curl_easy_init();
  if(c->easy && !client_setup_easy(c))
    return 0;
  if(c->easy)
    curl_easy_cleanup(c->easy);
  c->easy = NULL;
  return -1;
}

/* Builds the request headers of a leg into a libcurl list, which the
 * caller frees with curl_slist_free_all. Communicator's follow the support
 * case's order, with auth (when not NULL) last and the Content-Length of
 * the len bytes it sends; Outlook's leave Content-Length and Authorization
 * to libcurl, whose NTLM decides them per request. Returns NULL when out of
 * memory. */
static struct curl_slist *client_headers(const struct client *c,
                                         const char *auth, size_t len)
{
  struct curl_slist *result = NULL;
  struct curl_slist *list = NULL;
  struct kb_buf line;
  bool outlook = c->kind == CLIENT_KIND_OUTLOOK;
  size_t i;
  char length[32];
  /* A name with a NULL value is a libcurl directive and is not sent: the
   * empty "Expect:" stops "Expect: 100-continue", and the leading empty
   * "Host:" stops libcurl from moving our Host header to the front (it puts
   * a custom Host first unless its own is removed), so ours goes out fifth
   * like Communicator's. libcurl looks up a directive by the first entry of
   * that name, hence the order. Entries with skip set are left out. */
  const struct {
    const char *name;
    const char *value;
    bool skip;
  } table[] = {{"Host", NULL, false},
               {"Accept", "text/xml", false},
               {"Content-Type", "text/xml; charset=utf-8", false},
               {"User-Agent",
                outlook ? CLIENT_OUTLOOK_USER_AGENT : CLIENT_USER_AGENT, false},
               {"Host", c->host, false},
               {"Content-Length", length, outlook},
               {"Connection", "Keep-Alive", false},
               {"Cache-Control", "no-cache", false},
               {"Authorization", auth, outlook || !auth},
               {"Expect", NULL, false}};

  snprintf(length, sizeof(length), "%zu", len);
  kb_buf_init(&line, CLIENT_MAX_AUTH_VALUE + 64);
  for(i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    struct curl_slist *next;
    if(table[i].skip)
      continue;
    kb_buf_reset(&line);
    if(kb_buf_printf(&line, "%s:%s%s", table[i].name, table[i].value ? " " : "",
                     table[i].value ? table[i].value : "") != KB_BUF_OK)
      goto out;
    next = curl_slist_append(list, line.data);
    if(!next)
      goto out;
    list = next;
  }
  result = list;
  list = NULL;
out:
  kb_buf_free(&line);
  curl_slist_free_all(list);
  return result;
}

/* Returns how the trace names the Authorization a leg of kind which
 * carries, for a leg that never got a request out. */
static enum kb_auth client_leg_auth(enum client_leg_kind which)
{
  switch(which) {
  case CLIENT_LEG_NEGOTIATE:
    return KB_AUTH_NTLM_NEGOTIATE;
  case CLIENT_LEG_AUTHENTICATE:
    return KB_AUTH_NTLM_AUTHENTICATE;
  case CLIENT_LEG_BASIC:
    return KB_AUTH_OTHER;
  case CLIENT_LEG_PLAIN:
  case CLIENT_LEG_OUTLOOK:
    break;
  }
  return KB_AUTH_NONE;
}

/* Sends one leg: one curl_easy_perform of a POST to url with the headers
 * of client_headers, auth as the Authorization value and body (len bytes,
 * may be 0). Fills *leg with the last response. Every request libcurl sent
 * becomes one EXCHANGE event; a leg that never got one out still gets one,
 * with status 0. When the listener closed a kept-alive connection without
 * answering and libcurl sent the request again on a new one, a NOTE says
 * so. Returns curl's result; the caller owns leg, which must be cleared. */
static CURLcode client_send_leg(struct client *c, const char *url,
                                const char *path, enum client_leg_kind which,
                                const char *auth, const char *body, size_t len,
                                struct client_leg *leg)
{
  CURLcode result = CURLE_OUT_OF_MEMORY;
  struct curl_slist *headers = NULL;
  long status = 0;

  c->leg_requests = 0;
  c->leg_unanswered = 0;
  c->leg_dead_conn = 0;
  c->leg_new_conn = 0;
  c->leg_first_status = 0;
  c->current_conn = 0;
  c->current_name[0] = '\0';
  c->errbuf[0] = '\0';
  headers = client_headers(c, auth, len);
  if(!c->easy || !headers ||
     curl_easy_setopt(c->easy, CURLOPT_URL, url) != CURLE_OK ||
     curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
     curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) !=
         CURLE_OK ||
     curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK)
    ; /* result stays CURLE_OUT_OF_MEMORY */
  else {
    /* current_conn outlives a close at the end of the transfer so that the
     * result can name the connection; a leg that never got one reports 0. */
    c->leg = leg;
    result = curl_easy_perform(c->easy);
    c->leg = NULL;
    if(curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
      leg->status = (int)status;
  }
  client_req_flush(c);
  if(!c->leg_requests) {
    struct kb_exchange ex;
    memset(&ex, 0, sizeof(ex));
    ex.method = "POST";
    ex.path = path;
    ex.req_auth = client_leg_auth(which);
    ex.req_body_len = len;
    client_trace_exchange(c, c->current_conn, c->current_name, &ex);
  }
  if(c->leg_unanswered && leg->status)
    kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                  c->current_conn, KB_NOTE_RESENT,
                  "connection %" PRIu64 " was closed without an answer; "
                  "libcurl sent the request again on connection %" PRIu64,
                  c->leg_dead_conn, c->current_conn);
  if(leg->status)
    c->last_response_ms = kb_clock_now(&c->clock, c->origin);
  curl_slist_free_all(headers);
  return result;
}

/* Describes a transfer that failed in res->detail: a body past the cap is
 * the peer's fault (CLIENT_PROTOCOL_ERROR); anything else is curl's own
 * message (CLIENT_TRANSPORT_ERROR) with what to check. Returns the
 * outcome. */
static enum client_outcome
client_transfer_failed(const struct client *c, CURLcode rc,
                       const struct client_leg *leg,
                       struct client_post_result *res)
{
  const char *msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
  /* What says nothing about the listener: it was not there to answer, or
   * we gave up waiting, or we could not even try. A connection the
   * listener broke (GOT_NOTHING, RECV_ERROR, ...) is its behaviour. */
  res->harness_failed = c->out_of_fds || rc == CURLE_COULDNT_CONNECT ||
                        rc == CURLE_COULDNT_RESOLVE_HOST ||
                        rc == CURLE_OPERATION_TIMEDOUT ||
                        rc == CURLE_OUT_OF_MEMORY || rc == CURLE_FAILED_INIT ||
                        leg->body_result == KB_BUF_NOMEM;
  if(rc == CURLE_OUT_OF_MEMORY && !c->errbuf[0]) {
    client_detail(res, "leg %u: out of memory setting up the request",
                  res->legs);
    return CLIENT_TRANSPORT_ERROR;
  }
  if(leg->body_result == KB_BUF_TOO_BIG) {
    client_detail(res, "leg %u: the response body is larger than %u bytes",
                  res->legs, CLIENT_MAX_BODY);
    return CLIENT_PROTOCOL_ERROR;
  }
  if(c->out_of_fds)
    client_detail(res,
                  "leg %u: kbsim ran out of file descriptors: the harness "
                  "failed, not the listener; raise ulimit -n",
                  res->legs);
  else if(leg->body_result == KB_BUF_NOMEM)
    client_detail(res, "leg %u: out of memory receiving the response",
                  res->legs);
  else
    client_detail(res, "leg %u: %.110s; check that the listener is running",
                  res->legs, msg);
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

/* ---- one POST ------------------------------------------------------------ */

/* What every leg of one POST shares. */
struct client_post_ctx {
  enum client_post_kind kind;
  const char *url;
  const char *path;
  const char *body; /* the POST body, held back on an NTLM type 1 */
  size_t len;
  struct client_post_result *res;
};

/* Closes the connection the last request used once it carried
 * max_requests requests, unless hold: the leg was an NTLM type 1 answered
 * by a challenge, and NTLM authenticates the connection, so closing before
 * the type 3 would make the handshake impossible; the limit then applies
 * after the type 3. */
static void client_apply_max_requests(struct client *c, bool hold)
{
  struct client_socket *sock = client_socket_of(c, c->current_conn);
  if(!c->max_requests || hold || !sock || sock->requests < c->max_requests)
    return;
  kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                sock->conn, KB_NOTE_CLIENT_MAX_REQUESTS,
                "closing connection %" PRIu64 " after %u requests: the "
                "client's max_requests is %u",
                sock->conn, sock->requests, c->max_requests);
  client_drop_connection(c);
}

/* Sends one leg of the POST p and books it in p->res: the leg count, the
 * first leg's status and whether it opened a new connection, the last
 * status and connection. For Outlook one leg is all the requests libcurl's
 * NTLM made, and each counts. Returns curl's result; the caller owns leg. */
static CURLcode client_run_leg(struct client *c,
                               const struct client_post_ctx *p,
                               enum client_leg_kind which, const char *auth,
                               const char *body, size_t len,
                               struct client_leg *leg)
{
  struct client_post_result *res = p->res;
  bool first = res->legs == 0;
  CURLcode rc =
      client_send_leg(c, p->url, p->path, which, auth, body, len, leg);
  if(which == CLIENT_LEG_OUTLOOK && c->leg_requests > 1)
    res->legs += c->leg_requests;
  else
    res->legs++;
  if(first) {
    res->leg1_status = which == CLIENT_LEG_OUTLOOK && c->leg_first_status
                           ? c->leg_first_status
                           : leg->status;
    res->new_connection = c->leg_new_conn && c->leg_new_conn == c->current_conn;
  }
  res->final_status = leg->status;
  res->connection = c->current_conn;
  return rc;
}

/* Answers the type 2 in leg1's 401 (the handshake began with type1) and
 * sends the type 3 with the body. Returns the POST's outcome with p->res
 * filled. */
static enum client_outcome client_ntlm_type3(struct client *c,
                                             const struct client_post_ctx *p,
                                             const struct ntlm_bytes *type1,
                                             const struct client_leg *leg1)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct ntlm_bytes token = {NULL, 0};
  struct ntlm_bytes type3 = {NULL, 0};
  struct ntlm_message challenge;
  struct ntlm_client_creds creds;
  struct ntlm_client_options opt;
  struct ntlm_exchange exchange;
  struct client_leg leg;
  enum ntlm_scheme scheme;
  enum ntlm_result nr;
  char err[128];
  char label[80];
  uint8_t cchal[8];
  char *auth = NULL;
  CURLcode rc;

  memset(&challenge, 0, sizeof(challenge));
  client_leg_init(&leg);
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
  memset(&opt, 0, sizeof(opt));
  opt.client_challenge = cchal;
  opt.timestamp =
      ntlm_filetime_from_unix_ms(kb_clock_now(&c->clock, c->origin));
  if(c->ntlm_mic) {
    memset(&exchange, 0, sizeof(exchange));
    exchange.negotiate = type1->data;
    exchange.negotiate_len = type1->len;
    exchange.challenge = token.data;
    exchange.challenge_len = token.len;
    opt.mic = true;
    opt.exchange = &exchange;
  }
  nr = ntlm_client_authenticate_ex(&creds, &challenge, &opt, &type3, NULL, err,
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

  rc = client_run_leg(c, p, CLIENT_LEG_AUTHENTICATE, auth, p->body, p->len,
                      &leg);
  client_apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client_transfer_failed(c, rc, &leg, res);
  else if(leg.status == 200)
    result = client_check_body(c, p->kind, &leg.body, res);
  else if(leg.status == 401) {
    client_detail(res,
                  "HTTP 401 to the type 3: the listener refused "
                  "%.40s\\%.40s; check the user name and password",
                  c->domain, c->user);
    result = CLIENT_AUTH_FAILED;
  }
  else if(leg.status >= 500 && leg.status <= 599) {
    client_detail(res, "HTTP %d to the authenticated POST with its body",
                  leg.status);
    result = CLIENT_SERVER_ERROR;
  }
  else
    client_detail(res, "unexpected HTTP %d to the type 3", leg.status);
out:
  if(auth)
    explicit_bzero(auth, strlen(auth));
  free(auth);
  ntlm_bytes_free(&type3);
  ntlm_bytes_free(&token);
  ntlm_message_free(&challenge);
  client_leg_free(&leg);
  return result;
}

/* Communicator's NTLM re-authentication of one POST: the type 1 with
 * Content-Length: 0 and the body held back, then on 401 + type 2 the type
 * 3 with the body. A 5xx to the type 1 is KB 942638: the listener
 * forwarded the body-less leg. Returns the POST's outcome. */
static enum client_outcome client_post_ntlm(struct client *c,
                                            const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_TRANSPORT_ERROR;
  struct client_post_result *res = p->res;
  struct ntlm_bytes type1 = {NULL, 0};
  struct client_leg leg;
  char *auth = NULL;
  CURLcode rc;

  client_leg_init(&leg);
  if(ntlm_client_negotiate(ntlm_client_flags(c->ntlm_kind), &type1) !=
         NTLM_OK ||
     !(auth = ntlm_header_format(NTLM_SCHEME_NTLM, type1.data, type1.len))) {
    client_detail(res, "out of memory building the %s POST",
                  client_post_kind_name(p->kind));
    goto out;
  }
  rc = client_run_leg(c, p, CLIENT_LEG_NEGOTIATE, auth, "", 0, &leg);
  client_apply_max_requests(c, rc == CURLE_OK && leg.status == 401 &&
                                   (leg.ntlm_value || leg.ntlm_value_too_big));
  if(rc != CURLE_OK) {
    result = client_transfer_failed(c, rc, &leg, res);
    goto out;
  }
  switch(client_reauth_next(leg.status,
                            leg.ntlm_value || leg.ntlm_value_too_big)) {
  case CLIENT_REAUTH_TYPE3:
    result = client_ntlm_type3(c, p, &type1, &leg);
    break;
  case CLIENT_REAUTH_NO_CHALLENGE:
    client_detail(res, "HTTP 401 without an NTLM challenge to the type 1; "
                       "the listener must accept Integrated credentials");
    result = CLIENT_AUTH_FAILED;
    break;
  case CLIENT_REAUTH_ANSWERED:
    result = client_final_2xx(c, p->kind, &leg, res);
    break;
  case CLIENT_REAUTH_BODY_LOST:
    /* This is KB 942638: the body-less leg reached Exchange. */
    client_detail(res,
                  "HTTP %d to the body-less type 1: the listener "
                  "forwarded it instead of challenging (KB 942638)",
                  leg.status);
    result = CLIENT_SERVER_ERROR;
    break;
  case CLIENT_REAUTH_UNEXPECTED:
  default:
    client_detail(res, "unexpected HTTP %d to the type 1", leg.status);
    result = CLIENT_PROTOCOL_ERROR;
    break;
  }
out:
  free(auth);
  ntlm_bytes_free(&type1);
  client_leg_free(&leg);
  return result;
}

/* Judges the final status of a POST the way every kind of POST does when
 * no credentials are at stake: a 2xx is decided by its body, a 5xx is the
 * server's error, anything else is unexpected. what names the request in
 * the detail ("the POST"). Returns the POST's outcome. */
static enum client_outcome client_final_status(struct client *c,
                                               const struct client_post_ctx *p,
                                               struct client_leg *leg,
                                               const char *what)
{
  if(leg->status >= 200 && leg->status <= 299)
    return client_final_2xx(c, p->kind, leg, p->res);
  if(leg->status >= 500 && leg->status <= 599) {
    client_detail(p->res, "HTTP %d to %s", leg->status, what);
    return CLIENT_SERVER_ERROR;
  }
  client_detail(p->res, "unexpected HTTP %d to %s", leg->status, what);
  return CLIENT_PROTOCOL_ERROR;
}

/* Sends the POST p with Basic credentials and its body in one leg. Returns
 * the POST's outcome. */
static enum client_outcome client_post_basic(struct client *c,
                                             const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  CURLcode rc;

  client_leg_init(&leg);
  rc = client_run_leg(c, p, CLIENT_LEG_BASIC, c->basic_auth, p->body, p->len,
                      &leg);
  client_apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client_transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401) {
    client_detail(res,
                  "HTTP 401 to Basic credentials: the listener refused "
                  "%.40s\\%.40s; check the user name and password",
                  c->domain, c->user);
    result = CLIENT_AUTH_FAILED;
  }
  else
    result = client_final_status(c, p, &leg, "the POST with Basic credentials");
  client_leg_free(&leg);
  return result;
}

/* Sends the POST p without credentials and with its body, as WinINet does
 * before it knows the listener's scheme (or after the listener answered
 * without asking). A 2xx ends it and the listener is anonymous; a 401
 * teaches the scheme for the rest of the session - NTLM when offered
 * (alone or after Negotiate), else Basic - and the POST goes on with it.
 * Returns the POST's outcome. */
static enum client_outcome client_post_plain(struct client *c,
                                             const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  CURLcode rc;

  client_leg_init(&leg);
  rc = client_run_leg(c, p, CLIENT_LEG_PLAIN, NULL, p->body, p->len, &leg);
  client_apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client_transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401 &&
          (leg.ntlm_bare || leg.ntlm_value || leg.ntlm_value_too_big)) {
    c->scheme = CLIENT_SCHEME_NTLM;
    result = client_post_ntlm(c, p);
  }
  else if(leg.status == 401 && leg.basic_offered) {
    c->scheme = CLIENT_SCHEME_BASIC;
    result = client_post_basic(c, p);
  }
  else if(leg.status == 401) {
    client_detail(res, "HTTP 401 offering neither NTLM nor Basic; the "
                       "listener must accept Integrated or Basic "
                       "credentials");
    result = CLIENT_AUTH_FAILED;
  }
  else {
    if(leg.status >= 200 && leg.status <= 299)
      c->scheme = CLIENT_SCHEME_NONE; /* the listener is anonymous */
    result = client_final_status(c, p, &leg, "the POST");
  }
  client_leg_free(&leg);
  return result;
}

/* Outlook's POST: libcurl's CURLAUTH_NTLM makes as many requests as its
 * handshake needs (a type 1 and a type 3 on a new connection, one request
 * without Authorization on an authenticated one) in one transfer. Returns
 * the POST's outcome. */
static enum client_outcome client_post_outlook(struct client *c,
                                               const struct client_post_ctx *p)
{
  enum client_outcome result = CLIENT_PROTOCOL_ERROR;
  struct client_post_result *res = p->res;
  struct client_leg leg;
  CURLcode rc;

  client_leg_init(&leg);
  rc = client_run_leg(c, p, CLIENT_LEG_OUTLOOK, NULL, p->body, p->len, &leg);
  client_apply_max_requests(c, false);
  if(rc != CURLE_OK)
    result = client_transfer_failed(c, rc, &leg, res);
  else if(leg.status == 401 && !leg.ntlm_bare && !leg.ntlm_value &&
          !leg.ntlm_value_too_big && res->legs == 1) {
    client_detail(res, "HTTP 401 without NTLM; the listener must accept "
                       "Integrated credentials");
    result = CLIENT_AUTH_FAILED;
  }
  else if(leg.status == 401) {
    client_detail(res,
                  "HTTP 401 after libcurl's NTLM handshake: the listener "
                  "refused %.40s\\%.40s; check the user name and password",
                  c->domain, c->user);
    result = CLIENT_AUTH_FAILED;
  }
  else
    result = client_final_status(c, p, &leg, "the POST");
  client_leg_free(&leg);
  return result;
}

/* Closes the open connection before a POST when it has been idle, on the
 * client's timeline, longer than the client's idle_timeout_ms. */
static void client_apply_idle_timeout(struct client *c, int64_t now)
{
  uint64_t conn = client_open_conn(c);
  int64_t idle = now - c->last_response_ms;
  if(c->idle_timeout_ms <= 0 || !conn || idle <= c->idle_timeout_ms)
    return;
  kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin, conn,
                KB_NOTE_CLIENT_IDLE,
                "closing connection %" PRIu64 ": idle for %" PRId64 " ms, "
                "longer than the client's idle timeout of %" PRId64 " ms",
                conn, idle, c->idle_timeout_ms);
  client_drop_connection(c);
}

/* Makes the POST of kind, all its legs as the client's kind and the
 * learned scheme require, and fills *res (index and kind already set). */
static void client_post(struct client *c, enum client_post_kind kind,
                        struct client_post_result *res)
{
  struct client_post_ctx p;
  xmlChar *body = NULL;
  int body_len = 0;

  memset(&p, 0, sizeof(p));
  p.kind = kind;
  p.res = res;
  p.url = kind == CLIENT_POST_AUTODISCOVER ? c->autodiscover_url : c->ews_url;
  p.path =
      kind == CLIENT_POST_AUTODISCOVER ? CLIENT_AUTODISCOVER_PATH : c->ews_path;
  res->outcome = CLIENT_TRANSPORT_ERROR;
  if(client_xml_body(kind, c->email, (const char *const *)c->contacts,
                     kb_clock_now(&c->clock, c->origin), &body, &body_len)) {
    client_detail(res, "out of memory building the %s POST",
                  client_post_kind_name(kind));
    goto out;
  }
  p.body = (const char *)body;
  p.len = (size_t)body_len;

  client_apply_idle_timeout(c, res->at_ms);
  /* One-shot starts every POST on a new connection; the previous POST
   * closed its own, so this only matters if something kept one open. */
  if(c->kind == CLIENT_KIND_ONE_SHOT && client_open_conn(c))
    client_drop_connection(c);
  if(c->kind == CLIENT_KIND_OUTLOOK)
    res->outcome = client_post_outlook(c, &p);
  else if(c->scheme == CLIENT_SCHEME_NTLM)
    res->outcome = client_post_ntlm(c, &p);
  else if(c->scheme == CLIENT_SCHEME_BASIC)
    res->outcome = client_post_basic(c, &p);
  else
    res->outcome = client_post_plain(c, &p);
  if(c->kind == CLIENT_KIND_ONE_SHOT && client_open_conn(c))
    client_drop_connection(c);
out:
  xmlFree(body);
}

/* Spends the think time before EWS POST res->index: a duration drawn
 * uniformly from [think_min_ms, think_max_ms] - the 8 bytes drawn as
 * "client/<id>/post/<n>/think", big-endian, modulo the width of the range,
 * plus the minimum - passed on the client's simulated timeline. No draw
 * when think_max_ms is 0. Records it in res->think_ms. */
static void client_think(struct client *c, struct client_post_result *res)
{
  uint8_t raw[8];
  char label[80];
  uint64_t v = 0, span;
  size_t i;
  if(c->think_max_ms <= 0)
    return;
  snprintf(label, sizeof(label), "client/%u/post/%u/think", c->id, res->index);
  kb_rng_fill(&c->rng, label, raw, sizeof(raw));
  for(i = 0; i < sizeof(raw); i++)
    v = (v << 8) | raw[i];
  span = (uint64_t)(c->think_max_ms - c->think_min_ms) + 1;
  res->think_ms = c->think_min_ms + (int64_t)(v % span);
  kb_clock_advance(&c->clock, c->origin, res->think_ms);
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
                    res->connection, KB_NOTE_NOTIFICATION, "notification: %s",
                    CLIENT_NOTIFICATION_TEXT);
    v->integration_error = true;
    v->autodiscovery_failed_logged = true;
    kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                  res->connection, KB_NOTE_LOG, "log: %s (POST %u %s: %s: %s)",
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
  else {
    r->kind = (r->index % 2) ? CLIENT_POST_OOF : CLIENT_POST_AVAILABILITY;
    client_think(client, r);
  }
  r->at_ms = kb_clock_now(&client->clock, client->origin);
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

/* Sets the options that stay the same for the whole session, on a new
 * easy handle: the one of client_create and each one that replaces it.
 * Outlook gets libcurl's NTLM with the user's credentials; Communicator
 * gets no libcurl authentication at all. Returns 0, or -1 when libcurl
 * refuses one. */
static int client_setup_easy(struct client *c)
{
  CURL *e = c->easy;
  long timeout = c->timeout_ms;
  if(c->kind == CLIENT_KIND_OUTLOOK &&
     (curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_NTLM) ||
      curl_easy_setopt(e, CURLOPT_USERNAME, c->curl_user) ||
      curl_easy_setopt(e, CURLOPT_PASSWORD, c->password)))
    return -1;
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
  if(strlen(config->domain) > CLIENT_MAX_CREDENTIALS ||
     strlen(config->user) > CLIENT_MAX_CREDENTIALS ||
     strlen(config->password) > CLIENT_MAX_CREDENTIALS) {
    snprintf(why_buf, sizeof(why_buf),
             "domain, user and password must each be at most %u bytes",
             CLIENT_MAX_CREDENTIALS);
    why = why_buf;
    goto out;
  }
  if(config->kind != CLIENT_KIND_COMMUNICATOR &&
     config->kind != CLIENT_KIND_OUTLOOK &&
     config->kind != CLIENT_KIND_ONE_SHOT) {
    why = "unknown client kind; use communicator, outlook or one-shot";
    goto out;
  }
  if(config->think_min_ms < 0 || config->think_max_ms < config->think_min_ms) {
    why = "think time must satisfy 0 <= think_min_ms <= think_max_ms";
    goto out;
  }
  if(config->idle_timeout_ms < 0) {
    why = "idle_timeout_ms must be 0 (no limit) or positive";
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
  c->kind = config->kind;
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
     !c->email || client_copy_contacts(c, config->contacts) ||
     client_build_credentials(c))
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
  if(client->basic_auth) {
    explicit_bzero(client->basic_auth, strlen(client->basic_auth));
    free(client->basic_auth);
  }
  free(client->curl_user);
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
