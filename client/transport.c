/*
 * transport.c - the client's libcurl side: the easy handle and its
 * callbacks, and the sockets under it. The sockets are opened and closed
 * through our own callbacks so that the session can count its TCP
 * connections, name them in the trace, let a balancer pick where each goes
 * and close one when the client's own keep-alive limits say so; the
 * pre-request callback tells which of them a request is about to use, and
 * the debug callback sees every request libcurl sends. On HTTPS the
 * handle verifies the listener against the run's CA, and the certificate
 * the listener presented becomes the client's channel binding.
 */
#include "client_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/kb_auth.h"
#include "common/kb_cert.h"
#include "common/kb_net.h"
#include "ntlm/ntlm.h"

/* ---- sockets and URLs ---------------------------------------------------- */

char *client__url_with_path(CURLU *base, const char *path)
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

struct client_socket *client__socket_of(struct client *c, uint64_t conn)
{
  size_t i;
  for(i = 0; conn && i < c->nsockets; i++)
    if(c->sockets[i].conn == conn)
      return &c->sockets[i];
  return NULL;
}

uint64_t client__open_conn(const struct client *c)
{
  uint64_t newest = 0;
  size_t i;
  for(i = 0; i < c->nsockets; i++)
    if(c->sockets[i].conn > newest)
      newest = c->sockets[i].conn;
  return newest;
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
        client__req_flush(c);
      client__trace(c, KB_TRACE_CLOSE, c->sockets[i].conn, NULL, 0);
    }
    c->sockets[i] = c->sockets[c->nsockets - 1];
    c->nsockets--;
    break;
  }
  return close(item);
}

/* Returns true when sock's local address is ip:port. The address is read
 * once, when the socket has one (a connected socket keeps it): every
 * request asks of every socket, and a getsockname each was a tenth of a
 * session's system calls. */
static bool client_socket_is(struct client_socket *sock, const char *ip,
                             int port)
{
  if(!sock->local_port) {
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    const void *addr;
    int local_port;
    if(getsockname(sock->fd, (struct sockaddr *)&ss, &sslen))
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
    if(!local_port ||
       !inet_ntop(ss.ss_family, addr, sock->local_ip, sizeof(sock->local_ip)))
      return false;
    sock->local_port = (uint16_t)local_port;
  }
  return sock->local_port == port && !strcmp(sock->local_ip, ip);
}

uint64_t client__conn_ready(struct client *c, const char *ip, int port)
{
  size_t i;
  c->current_conn = 0;
  c->current_name[0] = '\0';
  for(i = 0; i < c->nsockets; i++) {
    if(!client_socket_is(&c->sockets[i], ip, port))
      continue;
    if(!c->sockets[i].conn) {
      /* A new connection: claim its name before the first byte goes. */
      /* (libcurl's conn_primary_port is the URL's, not the balancer's
       * pick.) */
      if(c->sockets[i].name[0] && port > 0 && port <= 65535)
        kb_names_claim(&c->names, (uint16_t)port, c->sockets[i].remote_port,
                       c->sockets[i].name);
      c->sockets[i].conn = ++c->conn_count;
      c->leg_new_conn = c->sockets[i].conn;
      client__trace(c, KB_TRACE_OPEN, c->sockets[i].conn, NULL, 0);
    }
    c->current_conn = c->sockets[i].conn;
    memcpy(c->current_name, c->sockets[i].name, sizeof(c->current_name));
    break;
  }
  return c->current_conn;
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
  (void)conn_primary_ip;
  (void)conn_primary_port;
  client__req_flush(c);
  client__conn_ready(c, conn_local_ip, conn_local_port);
  return CURL_PREREQFUNC_OK;
}

/* libcurl 7.88 hands an interim (1xx) answer's status line to the debug
 * callback, but not the empty line that ends its head; the socket carried
 * it ("HTTP/1.1 100 Continue\r\n\r\n", 25 bytes), so it is traced before
 * whatever comes next: the body sent after a 100, or the final answer
 * (client_debug), else at the end of the transfer (client_send_leg). */
void client__end_interim(struct client *c)
{
  if(!c->interim_open)
    return;
  c->interim_open = false;
  client__trace(c, KB_TRACE_RECV, c->current_conn, "\r\n", 2);
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
    client__end_interim(c);
    client__req_start(c, data, size);
    client__trace(c, KB_TRACE_SEND, c->current_conn, data, size);
    break;
  case CURLINFO_DATA_OUT:
    client__end_interim(c);
    client__trace(c, KB_TRACE_SEND, c->current_conn, data, size);
    break;
  case CURLINFO_DATA_IN:
    client__end_interim(c);
    c->req.resp_data_in += size;
    client__trace(c, KB_TRACE_RECV, c->current_conn, data, size);
    break;
  case CURLINFO_HEADER_IN:
    if(size == 2 && !memcmp(data, "\r\n", 2))
      c->interim_open = false; /* libcurl gave the end of the head itself */
    else if(size > 5 && !memcmp(data, "HTTP/", 5))
      client__end_interim(c); /* a new status line: the 1xx head ended */
    client__trace(c, KB_TRACE_RECV, c->current_conn, data, size);
    /* "HTTP/1.1 1xx ..." opens an interim head. */
    if(size > 12 && !memcmp(data, "HTTP/1.", 7) && data[8] == ' ' &&
       data[9] == '1')
      c->interim_open = true;
    break;
  default:
    break;
  }
  return 0;
}

void client__via(const char *v, size_t len, char *out, size_t outlen)
{
  const char *end = v + len, *at = v, *by, *p;
  size_t n;

  for(p = v; p < end; p++)
    if(*p == ',')
      at = p + 1;
  while(at < end && (*at == ' ' || *at == '\t'))
    at++;
  while(at < end && *at != ' ' && *at != '\t') /* the protocol: "1.1" */
    at++;
  while(at < end && (*at == ' ' || *at == '\t'))
    at++;
  by = at;
  while(at < end && *at != ' ' && *at != '\t' && *at != '(' && *at != '\r' &&
        *at != '\n')
    at++;
  n = (size_t)(at - by);
  if(!n || n >= outlen)
    return;
  memcpy(out, by, n);
  out[n] = '\0';
}

bool client__leg_www_authenticate(struct client_leg *leg, const char *buffer,
                                  size_t len, enum kb_auth *seen)
{
  static const char name[] = "WWW-Authenticate:";
  const char *v;
  size_t vlen;

  if(len < sizeof(name) - 1 || strncasecmp(buffer, name, sizeof(name) - 1))
    return false;
  v = buffer + sizeof(name) - 1;
  vlen = len - (sizeof(name) - 1);
  while(vlen && (*v == ' ' || *v == '\t')) {
    v++;
    vlen--;
  }
  while(vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
                 v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
    vlen--;
  *seen = kb_auth_classify(v, vlen);
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
  return true;
}

/* CURLOPT_HEADERFUNCTION: keeps the WWW-Authenticate values that matter
 * for authentication, and who answered (Via). A status line starts a new
 * response (1xx responses, and for Outlook libcurl's own 401s, come before the
 * final one), so it clears what an earlier one left. One challenge per header
 * line, as IIS and ISA send them. Returns the bytes consumed; never aborts the
 * transfer, since an oversized value is reported once the response is complete.
 */
static size_t client_header(char *buffer, size_t size, size_t nitems,
                            void *userdata)
{
  struct client *c = userdata;
  struct client_leg *leg = c->leg;
  size_t len = size * nitems;
  enum kb_auth seen;
  if(!leg)
    return len;
  if(len >= 5 && !memcmp(buffer, "HTTP/", 5)) {
    const char *sp = memchr(buffer, ' ', len);
    int status = 0;
    if(sp && (size_t)(sp - buffer) + 4 <= len && sp[1] >= '0' && sp[1] <= '9' &&
       sp[2] >= '0' && sp[2] <= '9' && sp[3] >= '0' && sp[3] <= '9')
      status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    client__leg_reset_response(leg);
    client__req_response(c, status);
    return len;
  }
  if(len > 4 && !strncasecmp(buffer, "Via:", 4)) {
    client__via(buffer + 4, len - 4, leg->via, sizeof(leg->via));
    return len;
  }
  if(client__leg_www_authenticate(leg, buffer, len, &seen))
    client__req_resp_auth(c, seen);
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

/* ---- the easy handle and the client's keep-alive limits ------------------ */

/* Bytes libcurl reads from the socket at once (CURLOPT_BUFFERSIZE). */
#define CLIENT_RECV_BUFFER 4096L

int client__setup_easy(struct client *c)
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
     /* dotnet and java wait for 100 Continue as long as for an answer:
      * theirs give up after 350 ms (.NET's ContinueTimeout) or 3 s
      * (HttpClient's wait-for-continue) and send the body anyway, which
      * on a loaded machine would change the bytes' order from run to
      * run. */
     curl_easy_setopt(e, CURLOPT_EXPECT_100_TIMEOUT_MS, timeout) ||
     /* libcurl holds a receive buffer of this size while a transfer runs:
      * 16 KiB by default, for answers of a few KiB, in every concurrent
      * session (bench_memory). */
     curl_easy_setopt(e, CURLOPT_BUFFERSIZE, CLIENT_RECV_BUFFER) ||
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
  if(c->ca_pem) {
    struct curl_blob ca;

    ca.data = c->ca_pem;
    ca.len = strlen(c->ca_pem);
    ca.flags = CURL_BLOB_COPY;
    /* The certificate it saw, for the channel binding; a new handshake on
     * every connection (no session resumption), as each must present it. */
    if(curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca) ||
       curl_easy_setopt(e, CURLOPT_CERTINFO, 1L) ||
       curl_easy_setopt(e, CURLOPT_SSL_SESSIONID_CACHE, 0L))
      return -1;
  }
  return 0;
}

void client__tls_seen(struct client *c)
{
  struct curl_certinfo *info = NULL;
  struct curl_slist *f;
  struct kb_end_point ep;
  const char *pem = NULL, *subject = "";

  if(!c->easy ||
     curl_easy_getinfo(c->easy, CURLINFO_CERTINFO, &info) != CURLE_OK ||
     !info || info->num_of_certs < 1)
    return;
  /* The first is the listener's own certificate, the chain after it. */
  for(f = info->certinfo[0]; f; f = f->next) {
    if(!strncmp(f->data, "Cert:", 5))
      pem = f->data + 5;
    else if(!strncmp(f->data, "Subject:", 8))
      subject = f->data + 8;
  }
  if(!pem || kb_end_point_pem(pem, &ep))
    return;
  ntlm_tls_end_point_bindings(ep.hash, ep.len, c->cbt);
  c->cbt_known = true;
  snprintf(c->cbt_subject, sizeof(c->cbt_subject), "%s", subject);
  snprintf(c->cbt_hash, sizeof(c->cbt_hash), "%s ", ep.hash_name);
  kb_hex_colon(ep.hash, ep.len, c->cbt_hash + strlen(c->cbt_hash),
               sizeof(c->cbt_hash) - strlen(c->cbt_hash));
}

int client__drop_connection(struct client *c)
{
  client__easy_cleanup(c);
  c->easy = curl_easy_init();
  if(c->easy && !client__setup_easy(c))
    return 0;
  if(c->easy)
    curl_easy_cleanup(c->easy);
  c->easy = NULL;
  return -1;
}

void client__apply_idle_timeout(struct client *c, int64_t now)
{
  uint64_t conn = client__open_conn(c);
  int64_t idle = now - c->last_response_ms;
  if(c->idle_timeout_ms <= 0 || !conn || idle <= c->idle_timeout_ms)
    return;
  kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin, conn,
                KB_NOTE_CLIENT_IDLE,
                "closing connection %" PRIu64 ": idle for %" PRId64 " ms, "
                "longer than the client's idle timeout of %" PRId64 " ms",
                conn, idle, c->idle_timeout_ms);
  client__drop_connection(c);
}

void client__apply_max_requests(struct client *c, bool hold)
{
  struct client_socket *sock = client__socket_of(c, c->current_conn);
  if(!c->max_requests || hold || !sock || sock->requests < c->max_requests)
    return;
  kb_trace_note(&c->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, c->origin,
                sock->conn, KB_NOTE_CLIENT_MAX_REQUESTS,
                "closing connection %" PRIu64 " after %u requests: the "
                "client's max_requests is %u",
                sock->conn, sock->requests, c->max_requests);
  client__drop_connection(c);
}
