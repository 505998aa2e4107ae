/*
 * proxy.c - the ISA Server 2006 web listener: Integrated (NTLM), Basic or
 * no authentication in front (libmicrohttpd), a reverse proxy to the
 * published server behind (libcurl, one easy and one multi handle per
 * client connection, so each has its own upstream connection).
 *
 * Event loop threads (proxy_config.loops, at most PROXY_MAX_LOOPS) run both
 * sides: each has a libmicrohttpd daemon in external epoll mode on the
 * shared listening socket, and every connection it accepted has a libcurl
 * multi handle driven through the socket interface, all on the loop's one
 * epoll set. A request to forward suspends its client
 * connection (MHD_suspend_connection) while its upstream transfer runs, and
 * the transfer's end resumes it; no thread ever blocks on the backend.
 *
 * The decision table is in proxy.h and proxy/README.md. Everything a client
 * connection owns lives in struct proxy_conn, which libmicrohttpd keeps as
 * the connection's socket context: created on MHD_CONNECTION_NOTIFY_STARTED,
 * freed on MHD_CONNECTION_NOTIFY_CLOSED. Only the loop thread touches it in
 * between (and proxy_stop once the loop has ended), so it needs no lock.
 * What other threads read (the policy, the stop flag, the counters) is
 * atomic or under proxy->lock.
 */
#include "proxy_int.h"

_Thread_local bool proxy_closing_idle;
_Thread_local const struct proxy_loop *proxy_current_loop;

/* ---- small helpers ---------------------------------------------------- */

/* Returns a malloc'd copy of s, or of fallback when s is NULL or empty;
 * NULL when out of memory. */
static char *proxy_strdup_or(const char *s, const char *fallback)
{
  return strdup((s && *s) ? s : fallback);
}

/* Returns a, b and c joined in a new string the caller frees, or NULL when
 * b is NULL or memory ran out. */
static char *proxy_join(const char *a, const char *b, const char *c)
{
  size_t la = strlen(a), lb, lc = strlen(c);
  char *s;

  if(!b)
    return NULL;
  lb = strlen(b);
  s = malloc(la + lb + lc + 1);
  if(s) {
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    memcpy(s + la + lb, c, lc + 1);
  }
  return s;
}

/* Lower-cases s up to the first stop character ('\0': all of it) and
 * returns it; NULL stays NULL. */
static char *proxy_lower(char *s, char stop)
{
  char *p;

  for(p = s; p && *p && *p != stop; p++)
    *p = (char)tolower((unsigned char)*p);
  return s;
}

/* Writes a formatted line into err when there is room for one. */
static void proxy_set_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void proxy_set_error(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if(!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Emits a byte or connection event on either hop, as the proxy saw it. */
void proxy_emit(const struct proxy *proxy, enum kb_trace_kind kind,
                enum kb_hop hop, uint64_t conn, const char *conn_name,
                const void *data, size_t len,
                const struct kb_exchange *exchange)
{
  struct kb_trace_event ev;
  if(!proxy->trace.emit)
    return;
  memset(&ev, 0, sizeof(ev));
  ev.kind = kind;
  ev.hop = hop;
  /* The proxy is the server on the client hop and the client upstream. */
  ev.side = hop == KB_HOP_CLIENT_PROXY ? KB_SIDE_SERVER : KB_SIDE_CLIENT;
  ev.origin = proxy->name; /* the array member: "ISA01" */
  ev.conn = conn;
  ev.conn_name = conn_name && *conn_name ? conn_name : NULL;
  ev.data = data;
  ev.len = len;
  ev.exchange = exchange;
  kb_trace_emit(&proxy->trace, &ev);
}

/* Adds every counter of delta to the proxy's, in one locked step so that a
 * reader never sees half of one request. */
static void proxy_stats_add(struct proxy *proxy,
                            const struct proxy_stats *delta)
{
  pthread_mutex_lock(&proxy->lock);
  proxy->stats.connections += delta->connections;
  proxy->stats.requests += delta->requests;
  proxy->stats.challenges += delta->challenges;
  proxy->stats.auth_ok += delta->auth_ok;
  proxy->stats.auth_failed += delta->auth_failed;
  proxy->stats.reauth_skipped += delta->reauth_skipped;
  proxy->stats.forwarded += delta->forwarded;
  proxy->stats.forwarded_empty_posts += delta->forwarded_empty_posts;
  proxy->stats.upstream_errors += delta->upstream_errors;
  proxy->stats.basic_ok += delta->basic_ok;
  proxy->stats.basic_failed += delta->basic_failed;
  proxy->stats.idle_closed += delta->idle_closed;
  proxy->stats.max_requests_closed += delta->max_requests_closed;
  pthread_mutex_unlock(&proxy->lock);
}

/* Returns true when name is a hop-by-hop header, or one a relay must not
 * copy because the next hop computes it (Content-Length), or one named by
 * the message's Connection header (connection_tokens, may be NULL). */
bool proxy_is_hop_header(const char *name, const char *connection_tokens)
{
#define PROXY_HOP(name)                                                        \
  {                                                                            \
    name, sizeof(name) - 1                                                     \
  }
  /* With their lengths: most names are told apart by length alone, and
   * this runs for every header in both directions. */
  static const struct {
    const char *name;
    size_t len;
  } hop[] = {PROXY_HOP("Connection"),
             PROXY_HOP("Keep-Alive"),
             PROXY_HOP("Proxy-Connection"),
             PROXY_HOP("Proxy-Authorization"),
             PROXY_HOP("Proxy-Authenticate"),
             PROXY_HOP("TE"),
             PROXY_HOP("Trailer"),
             PROXY_HOP("Transfer-Encoding"),
             PROXY_HOP("Upgrade"),
             PROXY_HOP("Content-Length")};
#undef PROXY_HOP
  size_t i;
  size_t n = strlen(name);
  const char *p = connection_tokens;

  for(i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if(n == hop[i].len && !strcasecmp(name, hop[i].name))
      return true;
  /* "Connection: Keep-Alive, X-Foo" also makes X-Foo hop-by-hop. */
  while(p && *p) {
    size_t len;
    while(*p == ' ' || *p == '\t' || *p == ',')
      p++;
    len = strcspn(p, ", \t");
    if(len == n && len && !strncasecmp(p, name, n))
      return true;
    p += len;
  }
  return false;
}

/* Classifies an Authorization or WWW-Authenticate value for the trace.
 * Never fails: unparseable values are KB_AUTH_OTHER. */
/* Classifies a NUL-terminated header value (NULL: absent) for the trace. */
enum kb_auth proxy_classify_auth(const char *value)
{
  return kb_auth_classify(value, value ? strlen(value) : 0);
}

/* Formats "DOMAIN\user" of an identity into out. */
static const char *proxy_who(const struct ntlm_identity *who, char *out,
                             size_t outlen)
{
  snprintf(out, outlen, "%s\\%s", who->domain, who->user);
  return out;
}

/* Returns the connection's name for a note: the name its peer claimed,
 * or its id when it has none. Writes into out, which it returns. */
const char *proxy_conn_label(const struct proxy_conn *conn, char *out,
                             size_t outlen)
{
  if(conn->name[0])
    snprintf(out, outlen, "%s", conn->name);
  else
    snprintf(out, outlen, "%" PRIu64, conn->id);
  return out;
}

/* The timeline a connection lives on: its name, or the shared one. */
static int64_t proxy_conn_now(const struct proxy_conn *conn)
{
  return kb_clock_now(&conn->proxy->clock, conn->name[0] ? conn->name : NULL);
}

/* Writes a duration for a note: "45 s" when it is whole seconds, else
 * "45500 ms". */
static const char *proxy_format_ms(int64_t ms, char *out, size_t outlen)
{
  if(ms % 1000 == 0)
    snprintf(out, outlen, "%" PRId64 " s", ms / 1000);
  else
    snprintf(out, outlen, "%" PRId64 " ms", ms);
  return out;
}

/* Copies len bytes a peer sent into out (outlen > 0) as printable text for
 * a note, each byte outside printable ASCII as '?', so that a hostile user
 * name cannot break a trace line. Truncates to outlen - 1. */
static const char *proxy_printable(const char *in, size_t len, char *out,
                                   size_t outlen)
{
  size_t i;
  for(i = 0; i < len && i + 1 < outlen; i++)
    out[i] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
  out[i] = '\0';
  return out;
}

/* ---- policy and authentication method ---------------------------------- */

const char *proxy_policy_name(enum proxy_policy policy)
{
  return policy == PROXY_POLICY_PER_REQUEST ? "per-request" : "per-connection";
}

int proxy_policy_parse(const char *name, enum proxy_policy *out)
{
  if(!name || !out)
    return -1;
  if(!strcmp(name, "per-connection"))
    *out = PROXY_POLICY_PER_CONNECTION;
  else if(!strcmp(name, "per-request"))
    *out = PROXY_POLICY_PER_REQUEST;
  else
    return -1;
  return 0;
}

const char *proxy_auth_name(enum proxy_auth auth)
{
  switch(auth) {
  case PROXY_AUTH_BASIC:
    return "basic";
  case PROXY_AUTH_NONE:
    return "none";
  case PROXY_AUTH_INTEGRATED:
    break;
  }
  return "integrated";
}

int proxy_auth_parse(const char *name, enum proxy_auth *out)
{
  if(!name || !out)
    return -1;
  if(!strcmp(name, "integrated"))
    *out = PROXY_AUTH_INTEGRATED;
  else if(!strcmp(name, "basic"))
    *out = PROXY_AUTH_BASIC;
  else if(!strcmp(name, "none"))
    *out = PROXY_AUTH_NONE;
  else
    return -1;
  return 0;
}

void proxy_set_policy(struct proxy *proxy, enum proxy_policy policy)
{
  atomic_store(&proxy->policy, (int)policy);
}

void proxy_set_source(struct proxy *proxy, uint32_t source)
{
  atomic_store(&proxy->source, source);
}

enum proxy_policy proxy_get_policy(const struct proxy *proxy)
{
  return (enum proxy_policy)atomic_load(&proxy->policy);
}

unsigned proxy_capacity(const struct proxy *proxy)
{
  return proxy ? kb_guard_capacity(proxy->guard) : 0;
}

uint16_t proxy_port(const struct proxy *proxy)
{
  return proxy->port;
}

int proxy_wait_idle(struct proxy *proxy, unsigned timeout_ms)
{
  struct timespec until;
  int rc = 0;

  kb_deadline(&until, timeout_ms);
  pthread_mutex_lock(&proxy->lock);
  while(proxy->open && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&proxy->idle, &proxy->lock, &until);
  rc = proxy->open ? -1 : 0;
  pthread_mutex_unlock(&proxy->lock);
  return rc;
}

void proxy_reset(struct proxy *proxy)
{
  pthread_mutex_lock(&proxy->lock);
  assert(!proxy->open);
  memset(&proxy->stats, 0, sizeof(proxy->stats));
  atomic_store(&proxy->next_id, 1);
  pthread_mutex_unlock(&proxy->lock);
  kb_guard_reset_stats(proxy->guard);
}

void proxy_stats(const struct proxy *proxy, struct proxy_stats *stats)
{
  struct proxy *p = (struct proxy *)proxy; /* locking is not a change */
  struct kb_guard_stats g;
  pthread_mutex_lock(&p->lock);
  *stats = p->stats;
  pthread_mutex_unlock(&p->lock);
  kb_guard_stats(p->guard, &g);
  stats->head_timeouts = g.timed_out;
  stats->evicted = g.evicted;
  stats->refused = g.refused;
}

/* ---- responses -------------------------------------------------------- */

/* Adds a Date header from the configured clock: the daemon runs with
 * MHD_USE_SUPPRESS_DATE_NO_CLOCK so that a simulated clock shows. */
void proxy_add_date(const struct proxy_conn *conn, struct MHD_Response *r)
{
  char date[KB_HTTP_DATE_LEN];
  kb_http_date(proxy_conn_now(conn), date);
  MHD_add_response_header(r, MHD_HTTP_HEADER_DATE, date);
}

/* The offer of an integrated listener, in IIS's order: one
 * WWW-Authenticate header per scheme, Negotiate first. */
static const char *const proxy_offer_integrated[] = {"Negotiate", "NTLM", NULL};

/* Fills ans with a response the proxy writes itself: status, a one-line
 * text/plain body from fmt, and one WWW-Authenticate header per value of
 * the NULL-terminated list www_auth, in its order, when www_auth is not
 * NULL (resp_auth classifies them for the trace). On allocation failure
 * ans->response stays NULL and the caller drops the connection. */
void proxy_answer_text(const struct proxy_conn *conn, struct proxy_answer *ans,
                       unsigned status, const char *const *www_auth,
                       enum kb_auth resp_auth, const char *fmt, ...)
{
  char body[1024];
  va_list ap;
  int n;
  size_t len;
  struct MHD_Response *r;

  va_start(ap, fmt);
  n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
  va_end(ap);
  len = n < 0 ? 0 : (size_t)n;
  if(len > sizeof(body) - 2)
    len = sizeof(body) - 2;
  body[len++] = '\n';
  body[len] = '\0';

  r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
  if(r) {
    size_t i;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    for(i = 0; www_auth && www_auth[i]; i++)
      MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth[i]);
    proxy_add_date(conn, r);
  }
  ans->status = status;
  ans->response = r;
  ans->resp_auth = www_auth ? resp_auth : KB_AUTH_NONE;
  ans->resp_body_len = len;
}

/* A 401 asking an integrated client to start again: "WWW-Authenticate:
 * Negotiate" and "WWW-Authenticate: NTLM". */
#define proxy_answer_401(conn, ans, ...)                                       \
  proxy_answer_text((conn), (ans), MHD_HTTP_UNAUTHORIZED,                      \
                    proxy_offer_integrated, KB_AUTH_NTLM_BARE, __VA_ARGS__)

/* ---- the decision table ----------------------------------------------- */

/* Reads the request's Authorization header. Returns what it carries; for
 * PROXY_TOKEN_BAD writes why into why; for NEGOTIATE and AUTHENTICATE
 * fills *msg (caller frees with ntlm_message_free), *scheme and *raw, the
 * message's bytes as sent (caller frees with ntlm_bytes_free). *peeked is
 * the NTLM type the token claims, even when it does not decode. */
static enum proxy_token
proxy_read_token(const char *value, enum ntlm_scheme *scheme,
                 struct ntlm_message *msg, struct ntlm_bytes *raw,
                 enum ntlm_type *peeked, char *why, size_t whylen)
{
  struct ntlm_bytes token = {NULL, 0};
  enum proxy_token result = PROXY_TOKEN_BAD;
  char err[256];
  enum ntlm_result r;

  *peeked = NTLM_TYPE_NONE;
  memset(msg, 0, sizeof(*msg));
  if(!value)
    return PROXY_TOKEN_NONE;

  err[0] = '\0';
  r = ntlm_header_parse(value, scheme, &token, err, sizeof(err));
  if(r != NTLM_OK) {
    snprintf(why, whylen, "%s", err[0] ? err : ntlm_strerror(r));
    goto out;
  }
  if(!token.len) {
    snprintf(why, whylen, "the Authorization header carries no NTLM token");
    goto out;
  }
  *peeked = ntlm_peek_type(token.data, token.len);
  if(*peeked == NTLM_TYPE_NONE) {
    /* Too short, no signature, or a type NTLM does not have: the codec
     * says which, with the numbers. */
    struct ntlm_message probe;
    err[0] = '\0';
    if(ntlm_decode(token.data, token.len, &probe, err, sizeof(err)) == NTLM_OK)
      ntlm_message_free(&probe);
    snprintf(why, whylen, "the Authorization token is not an NTLM message: %s",
             err[0] ? err : "no NTLMSSP signature");
    goto out;
  }
  if(*peeked == NTLM_TYPE_CHALLENGE) {
    snprintf(why, whylen,
             "the client sent an NTLM type 2 (CHALLENGE), "
             "which only servers send");
    goto out;
  }
  r = ntlm_decode(token.data, token.len, msg, err, sizeof(err));
  if(r != NTLM_OK) {
    snprintf(why, whylen, "%s", err[0] ? err : ntlm_strerror(r));
    goto out;
  }
  result = msg->type == NTLM_TYPE_NEGOTIATE ? PROXY_TOKEN_NEGOTIATE
                                            : PROXY_TOKEN_AUTHENTICATE;
  *raw = token;
  token.data = NULL;
out:
  ntlm_bytes_free(&token);
  return result;
}

/* One account lookup: the listener's realm in, the resolution out. */
struct proxy_lookup {
  const struct proxy *proxy;
  enum kb_resolve resolved;
  struct kb_account account;
};

/* Resolves a name as the listener's domain controller would (kb_users). */
static enum kb_resolve proxy_resolve(struct proxy_lookup *l, const char *domain,
                                     const char *user)
{
  const struct kb_realm realm = {l->proxy->domain, l->proxy->dns_domain};

  l->resolved =
      kb_users_resolve(l->proxy->users, &realm, domain, user, &l->account);
  return l->resolved;
}

/* Adapts the resolver to ntlm_server_verify's lookup. */
static const char *proxy_lookup(void *ctx, const char *domain, const char *user)
{
  struct proxy_lookup *l = ctx;

  return proxy_resolve(l, domain, user) == KB_RESOLVE_OK ? l->account.password
                                                         : NULL;
}

/* Starts (or restarts) a handshake: draws a server challenge, answers 401
 * with a type 2 in the client's scheme and leaves the connection
 * CHALLENGED. */
static void proxy_challenge(struct proxy_conn *conn,
                            const struct ntlm_message *negotiate,
                            struct ntlm_bytes *raw, enum ntlm_scheme scheme,
                            struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  struct ntlm_server_info info;
  struct ntlm_bytes type2 = {NULL, 0};
  char label[256];
  char *header = NULL;

  memset(&conn->who, 0, sizeof(conn->who));
  conn->state = PROXY_AUTH_UNAUTHENTICATED;
  conn->handshakes++;
  if(conn->name[0])
    snprintf(label, sizeof(label), "proxy/%s/%s/handshake/%u/challenge",
             proxy->name, conn->name, conn->handshakes);
  else
    snprintf(label, sizeof(label),
             "proxy/%s/conn/%" PRIu64 "/handshake/%u/challenge", proxy->name,
             conn->id, conn->handshakes);
  kb_rng_fill(&proxy->rng, label, conn->challenge, sizeof(conn->challenge));
  conn->negotiate_flags = negotiate->flags;
  conn->scheme = scheme;

  memset(&info, 0, sizeof(info));
  info.netbios_domain = proxy->domain;
  info.netbios_computer = proxy->name;
  info.dns_domain = proxy->dns_domain;
  info.dns_computer = proxy->dns_computer;
  ntlm_bytes_free(&conn->hs_negotiate);
  ntlm_bytes_free(&conn->hs_challenge);
  conn->hs_negotiate = *raw;
  raw->data = NULL;
  raw->len = 0;
  if(ntlm_server_challenge(&info, conn->negotiate_flags, conn->challenge,
                           ntlm_filetime_from_unix_ms(proxy_conn_now(conn)),
                           &type2) != NTLM_OK ||
     !(header = ntlm_header_format(scheme, type2.data, type2.len))) {
    proxy_answer_text(
        conn, ans, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, KB_AUTH_NONE,
        "ISA %s: could not build an NTLM challenge; retry", proxy->name);
    goto out;
  }
  conn->state = PROXY_AUTH_CHALLENGED;
  conn->hs_challenge = type2;
  type2.data = NULL;
  type2.len = 0;
  ans->delta.challenges = 1;
  {
    /* The type 2 alone, in the scheme the client used. */
    const char *const offer[] = {header, NULL};
    proxy_answer_text(
        conn, ans, MHD_HTTP_UNAUTHORIZED, offer, KB_AUTH_NTLM_CHALLENGE,
        "ISA %s: NTLM challenge sent; answer it with a type 3", proxy->name);
  }
out:
  free(header);
  ntlm_bytes_free(&type2);
}

/* Describes, for a decision note, what forwarding this request sends. */
static void proxy_describe_forward(const struct proxy_conn *conn,
                                   const char *method, char *out, size_t outlen)
{
  if(!strcmp(method, "POST") && !conn->req.body.len)
    snprintf(out, outlen, "POST forwarded without its body");
  else if(conn->req.body.len)
    snprintf(out, outlen, "%s forwarded with its %zu-byte body", method,
             conn->req.body.len);
  else
    snprintf(out, outlen, "%s forwarded", method);
}

/* Returns true when value is "Negotiate <token>" and the token is not raw
 * NTLMSSP: a SPNEGO or Kerberos token (a GSS-API token starts 0x60), which
 * this listener cannot accept. *first gets the token's first byte. Only
 * the start of the token is decoded, so a Kerberos ticket of any size is
 * recognised, even one past NTLM_MAX_MESSAGE. */
static bool proxy_foreign_negotiate(const char *value, uint8_t *first)
{
  static const uint8_t signature[8] = {'N', 'T', 'L', 'M', 'S', 'S', 'P', 0};
  struct base64_decode_ctx ctx;
  /* 12 base64 characters decode to 9 bytes: the whole signature. */
  uint8_t buf[BASE64_DECODE_LENGTH(12)];
  size_t dlen = sizeof(buf);
  size_t n;
  const char *p = value;

  if(!p)
    return false;
  while(*p == ' ' || *p == '\t')
    p++;
  if(strncasecmp(p, "Negotiate", 9) || (p[9] != ' ' && p[9] != '\t'))
    return false;
  p += 9;
  while(*p == ' ' || *p == '\t')
    p++;
  n = strcspn(p, "= \t");
  if(n > 12)
    n = 12;
  base64_decode_init(&ctx);
  /* A token that does not even start as base64 is left to the NTLM parser,
   * which names the problem. */
  if(!n || !base64_decode_update(&ctx, &dlen, buf, n, p) || !dlen)
    return false;
  *first = buf[0];
  return memcmp(buf, signature, dlen < 8 ? dlen : 8) != 0;
}

/* Verifies the type 3 msg (raw: its bytes as sent) against the handshake
 * pending on conn: the proof, the account (resolved as a domain
 * controller would) and the MIC when one is announced. Fills conn->who
 * with the account as the store spells it and returns true, or writes why
 * not into err. */
static bool proxy_verify_type3(struct proxy_conn *conn,
                               const struct ntlm_message *msg,
                               const struct ntlm_bytes *raw, char *err,
                               size_t errlen)
{
  struct ntlm_exchange exchange;
  struct proxy_lookup lookup;
  size_t n;

  exchange.negotiate = conn->hs_negotiate.data;
  exchange.negotiate_len = conn->hs_negotiate.len;
  exchange.challenge = conn->hs_challenge.data;
  exchange.challenge_len = conn->hs_challenge.len;
  exchange.authenticate = raw->data;
  exchange.authenticate_len = raw->len;
  memset(&lookup, 0, sizeof(lookup));
  lookup.proxy = conn->proxy;
  lookup.resolved = KB_RESOLVE_BAD_NAME;
  err[0] = '\0';
  if(ntlm_server_verify_ex(msg, &exchange, conn->challenge, proxy_lookup,
                           &lookup, &conn->who, err, errlen) != NTLM_OK) {
    n = strlen(err);
    if(lookup.resolved != KB_RESOLVE_OK && n < errlen)
      snprintf(err + n, errlen - n, "; account: %s",
               kb_resolve_name(lookup.resolved));
    return false;
  }
  /* The account as the store spells it, whatever spelling resolved. */
  snprintf(conn->who.domain, sizeof(conn->who.domain), "%s",
           lookup.account.domain);
  snprintf(conn->who.user, sizeof(conn->who.user), "%s", lookup.account.user);
  return true;
}

/* What the request's Authorization header carries, for the decision
 * table; fills msg, raw and scheme for a type 1 or 3 and why for an
 * unusable header; first is a foreign Negotiate token's first byte. */
static enum proxy_token
proxy_integrated_token(const char *value, enum ntlm_scheme *scheme,
                       struct ntlm_message *msg, struct ntlm_bytes *raw,
                       uint8_t *first, char *why, size_t whylen)
{
  enum ntlm_type peeked;
  enum proxy_token token;

  memset(msg, 0, sizeof(*msg));
  if(proxy_foreign_negotiate(value, first))
    return PROXY_TOKEN_KERBEROS;
  token = proxy_read_token(value, scheme, msg, raw, &peeked, why, whylen);
  if(token == PROXY_TOKEN_BAD && peeked == NTLM_TYPE_AUTHENTICATE)
    token = PROXY_TOKEN_BAD_TYPE3;
  return token;
}

/* The integrated rows of the decision table (proxy.h): NTLM, raw or inside
 * Negotiate, with the connection's handshake state and the policy. value
 * is the request's Authorization header or NULL. The decision is
 * proxy_auth_decide's (auth.c); this reads the header, verifies a type 3
 * when the table asks, tells the decision in a note and carries it out.
 * Fills ans, forwarding when the table says so. Never fails. */
static void proxy_decide_integrated(struct proxy_conn *conn,
                                    struct MHD_Connection *mc,
                                    const char *method, const char *value,
                                    struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_auth_input in;
  struct proxy_auth_decision d;
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  struct ntlm_message msg;
  struct ntlm_bytes raw = {NULL, 0};
  uint8_t first = 0;
  struct proxy_auth_facts facts;
  char why[320];
  char who[260];
  char how[96];
  char what[128];
  char err[320];
  char note[1024];
  char body[512];

  /* One read per request: a concurrent proxy_set_policy applies from the
   * next request on. */
  in.policy = (enum proxy_policy)atomic_load(&proxy->policy);
  in.state = conn->state;
  why[0] = err[0] = who[0] = how[0] = what[0] = '\0';
  in.token = proxy_integrated_token(value, &scheme, &msg, &raw, &first, why,
                                    sizeof(why));
  in.verified = proxy_auth_verifies(in.state, in.token) &&
                proxy_verify_type3(conn, &msg, &raw, err, sizeof(err));
  proxy_auth_decide(&in, &d);

  /* The identity the texts name: the one the connection had, or the one
   * its type 3 just proved. */
  if(in.state == PROXY_AUTH_AUTHENTICATED || d.auth_ok)
    proxy_who(&conn->who, who, sizeof(who));
  if(d.auth_ok)
    snprintf(how, sizeof(how), "%s%s%s",
             ntlm_response_kind_name(conn->who.kind),
             conn->who.mic_checked ? ", MIC verified" : "",
             conn->who.key_exchanged ? ", session key exchanged" : "");
  ans->delta.auth_failed = d.auth_failed;
  ans->delta.auth_ok = d.auth_ok;
  ans->delta.reauth_skipped = d.reauth_skipped;
  if(d.forget)
    memset(&conn->who, 0, sizeof(conn->who));
  if(d.act != PROXY_ACT_CHALLENGE)
    conn->state = d.next; /* proxy_challenge sets CHALLENGED once sent */
  if(d.act == PROXY_ACT_FORWARD)
    proxy_describe_forward(conn, method, what, sizeof(what));
  if(d.auth_ok) {
    memset(conn->challenge, 0, sizeof(conn->challenge));
    ntlm_bytes_free(&conn->hs_negotiate);
    ntlm_bytes_free(&conn->hs_challenge);
  }

  facts = (struct proxy_auth_facts){.conn_id = conn->id,
                                    .listener = proxy->name,
                                    .who = who,
                                    .how = how,
                                    .what = what,
                                    .why = why,
                                    .err = err,
                                    .first_byte = first,
                                    .handshake = conn->handshakes + 1};
  proxy_auth_texts(&in, &d, &facts, note, sizeof(note), body, sizeof(body));
  proxy_note(conn, d.note, "%s", note);
  if(d.act == PROXY_ACT_OFFER)
    proxy_answer_401(conn, ans, "%s", body);
  if(d.act == PROXY_ACT_FORWARD)
    proxy_forward(conn, mc, method, ans);
  else if(d.act == PROXY_ACT_CHALLENGE)
    proxy_challenge(conn, &msg, &raw, scheme, ans);
  ntlm_message_free(&msg);
  ntlm_bytes_free(&raw);
}

/* Whether the integrated table refuses this request whatever its body
 * (a 401 offer: no credentials, an unusable token, Kerberos), judged from
 * the head alone and without side effects. A type 3 is taken as if it
 * verified (it is forwarded with its body, so the body is wanted), and a
 * challenge is not a refusal: the handshake must go on on this
 * connection, and libmicrohttpd 0.9.75 closes any connection answered
 * before its declared body. */
static bool proxy_refused_from_head(const struct proxy_conn *conn,
                                    struct MHD_Connection *mc)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_auth_input in;
  struct proxy_auth_decision d;
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  struct ntlm_message msg;
  struct ntlm_bytes raw = {NULL, 0};
  uint8_t first = 0;
  char why[320];
  const char *value = MHD_lookup_connection_value(
      mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);

  if(proxy->auth == PROXY_AUTH_NONE)
    return false;
  if(proxy->auth == PROXY_AUTH_BASIC)
    return !value; /* no credentials: the 401 offer */
  in.policy = (enum proxy_policy)atomic_load(&proxy->policy);
  in.state = conn->state;
  in.token = proxy_integrated_token(value, &scheme, &msg, &raw, &first, why,
                                    sizeof(why));
  in.verified = true;
  proxy_auth_decide(&in, &d);
  ntlm_message_free(&msg);
  ntlm_bytes_free(&raw);
  return d.act == PROXY_ACT_OFFER;
}

/* Whether the client waits for 100 Continue before sending a body. */
static bool proxy_expects_continue(struct MHD_Connection *mc)
{
  const char *expect =
      MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
  const char *length = MHD_lookup_connection_value(
      mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *coding = MHD_lookup_connection_value(
      mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);

  return expect && !strcasecmp(expect, "100-continue") &&
         ((length && strcmp(length, "0")) || coding);
}

/* How a request's Basic credentials fared. */
enum proxy_basic {
  PROXY_BASIC_OK = 0,
  PROXY_BASIC_MISSING,   /* no Authorization header */
  PROXY_BASIC_SCHEME,    /* another scheme (NTLM, Negotiate, ...) */
  PROXY_BASIC_MALFORMED, /* not "Basic base64(user:password)" */
  PROXY_BASIC_UNKNOWN,   /* no such user */
  PROXY_BASIC_REFUSED    /* wrong password */
};

/* Compares a stored password with the one a client sent, in time that
 * depends on neither the bytes nor the lengths: both are copied into
 * zero-padded buffers of PROXY_BASIC_MAX bytes compared whole with nettle's
 * memeql_sec, and the lengths are compared without a branch. A stored
 * password longer than that cap never matches (no token can carry it).
 * Returns true on a match; the copies are wiped. */
static bool proxy_secret_eq(const char *want, size_t want_len, const char *got,
                            size_t got_len)
{
  uint8_t a[PROXY_BASIC_MAX];
  uint8_t b[PROXY_BASIC_MAX];
  int same;

  if(want_len > sizeof(a) || got_len > sizeof(b))
    return false;
  memset(a, 0, sizeof(a));
  memset(b, 0, sizeof(b));
  memcpy(a, want, want_len);
  memcpy(b, got, got_len);
  same = memeql_sec(a, b, sizeof(a)) & (want_len == got_len);
  explicit_bzero(a, sizeof(a));
  explicit_bzero(b, sizeof(b));
  return same != 0;
}

/* Checks "Authorization: Basic base64(user:password)" (value may be NULL)
 * against the user store. The user is "DOMAIN\user", "user@domain" (a DNS
 * domain whose first label is the listener's domain also names it) or a
 * bare "user" in the listener's domain. Writes "DOMAIN\user" (printable,
 * for notes) into who when a user name was found, and what was wrong into
 * why otherwise. The password is compared in constant time, also for an
 * unknown user, and never copied anywhere but wiped buffers. */
static enum proxy_basic proxy_check_basic(const struct proxy *proxy,
                                          const char *value, char *who,
                                          size_t wholen, char *why,
                                          size_t whylen)
{
  struct base64_decode_ctx ctx;
  char *buf = NULL;
  size_t dlen = 0;
  const char *p = value;
  const char *colon;
  const char *pass;
  const char *stored = NULL;
  size_t n;
  size_t pass_len;
  char user[256];
  char domain[256];
  char shown[520];
  char *sep;
  bool match;
  struct proxy_lookup lookup = {NULL, KB_RESOLVE_BAD_NAME, {NULL, NULL, NULL}};
  enum proxy_basic result = PROXY_BASIC_MALFORMED;

  who[0] = '\0';
  if(!p) {
    snprintf(why, whylen, "no Authorization header");
    return PROXY_BASIC_MISSING;
  }
  while(*p == ' ' || *p == '\t')
    p++;
  n = strcspn(p, " \t");
  if(n != 5 || strncasecmp(p, "Basic", 5)) {
    snprintf(why, whylen, "the Authorization header uses the %s scheme",
             proxy_printable(p, n < 32 ? n : 32, shown, sizeof(shown)));
    return PROXY_BASIC_SCHEME;
  }
  p += 5;
  while(*p == ' ' || *p == '\t')
    p++;
  n = strlen(p);
  while(n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
    n--;
  if(!n) {
    snprintf(why, whylen, "the Basic header carries no credentials");
    goto out;
  }
  if(n > PROXY_BASIC_MAX_TOKEN) {
    snprintf(why, whylen,
             "the Basic token is %zu characters long, over the %u-character "
             "limit",
             n, PROXY_BASIC_MAX_TOKEN);
    goto out;
  }
  if(n != strcspn(p, " \t\r\n")) {
    snprintf(why, whylen, "the Basic token has a blank inside");
    goto out;
  }
  buf = malloc(BASE64_DECODE_LENGTH(n) + 1);
  if(!buf) {
    snprintf(why, whylen, "out of memory decoding the Basic token");
    goto out;
  }
  dlen = BASE64_DECODE_LENGTH(n) + 1;
  base64_decode_init(&ctx);
  if(!base64_decode_update(&ctx, &dlen, (uint8_t *)buf, n, p) ||
     !base64_decode_final(&ctx)) {
    snprintf(why, whylen, "the Basic token is not valid base64");
    goto out;
  }
  colon = memchr(buf, ':', dlen);
  if(!colon) {
    snprintf(why, whylen,
             "the Basic credentials have no ':' between user and password");
    goto out;
  }
  n = (size_t)(colon - buf);
  if(!n || n >= sizeof(user) || memchr(buf, '\0', n)) {
    snprintf(why, whylen,
             "the Basic credentials carry an empty, overlong or binary user "
             "name");
    goto out;
  }
  memcpy(user, buf, n);
  user[n] = '\0';
  pass = colon + 1;
  pass_len = dlen - n - 1;

  /* "DOMAIN\user" names the domain; "user" and the UPN "user@dnsdomain"
   * leave it to the resolver, as NTLM's empty domain does. */
  domain[0] = '\0';
  if((sep = strchr(user, '\\'))) {
    *sep = '\0';
    snprintf(domain, sizeof(domain), "%s", user);
    memmove(user, sep + 1, strlen(sep + 1) + 1);
    if(!user[0] || !domain[0]) {
      snprintf(why, whylen,
               "the Basic user name has an empty user or domain part");
      goto out;
    }
  }
  lookup.proxy = proxy;
  if(proxy_resolve(&lookup, domain, user) == KB_RESOLVE_OK) {
    stored = lookup.account.password;
    snprintf(domain, sizeof(domain), "%s", lookup.account.domain);
    snprintf(user, sizeof(user), "%s", lookup.account.user);
  }
  else if(!domain[0])
    snprintf(domain, sizeof(domain), "%s", proxy->domain);
  snprintf(shown, sizeof(shown), "%s\\%s", domain, user);
  proxy_printable(shown, strlen(shown), who, wholen);
  /* An unknown user costs the same comparison as a known one. */
  match = proxy_secret_eq(stored ? stored : "", stored ? strlen(stored) : 0,
                          pass, pass_len);
  if(!stored) {
    snprintf(why, whylen, "no user %s in the user store (%s)", who,
             kb_resolve_name(lookup.resolved));
    result = PROXY_BASIC_UNKNOWN;
  }
  else if(!match) {
    snprintf(why, whylen, "wrong password for %s", who);
    result = PROXY_BASIC_REFUSED;
  }
  else
    result = PROXY_BASIC_OK;
out:
  if(buf) {
    explicit_bzero(buf, dlen);
    free(buf);
  }
  return result;
}

/* The Basic rows of the decision table: every request carries its own
 * credentials, and the connection remembers nothing. value is the
 * request's Authorization header or NULL. Valid: forwarded, Authorization
 * included; anything else: 401 "WWW-Authenticate: Basic realm=..." and
 * nothing forwarded. Fills ans. Never fails. */
static void proxy_decide_basic(struct proxy_conn *conn,
                               struct MHD_Connection *mc, const char *method,
                               const char *value, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  const char *const offer[] = {proxy->basic_offer, NULL};
  enum proxy_basic verdict;
  char who[300];
  char why[400];

  why[0] = '\0';
  verdict = proxy_check_basic(proxy, value, who, sizeof(who), why, sizeof(why));
  if(verdict == PROXY_BASIC_OK) {
    char what[128];
    ans->delta.basic_ok = 1;
    proxy_describe_forward(conn, method, what, sizeof(what));
    proxy_note(conn, KB_NOTE_BASIC_OK,
               "connection %" PRIu64 ": Basic credentials of %s verified; %s",
               conn->id, who, what);
    proxy_forward(conn, mc, method, ans);
    return;
  }
  /* A request without credentials is asked for them, like NTLM's first
   * 401; only credentials that were presented and refused count as a
   * failed login. */
  if(value)
    ans->delta.basic_failed = 1;
  proxy_note(conn, KB_NOTE_BASIC_REFUSED,
             "connection %" PRIu64 ": Basic authentication failed (%s): 401 "
             "asking for Basic, nothing forwarded",
             conn->id, why);
  proxy_answer_text(conn, ans, MHD_HTTP_UNAUTHORIZED, offer, KB_AUTH_OTHER,
                    "ISA %s: %s; send Authorization: Basic with "
                    "base64(DOMAIN\\user:password)",
                    proxy->name,
                    verdict == PROXY_BASIC_MISSING ? "authentication required"
                    : verdict == PROXY_BASIC_UNKNOWN ||
                            verdict == PROXY_BASIC_REFUSED
                        ? "Basic authentication failed: check the user name "
                          "and password"
                        : why);
}

/* Applies the decision table of proxy.h to the request now complete on
 * conn and fills ans with the answer (forwarding when the table says so):
 * the checks every listener makes, then the rows of its authentication
 * method. Never fails: what a client sends can only earn it a 4xx. */
static void proxy_decide(struct proxy_conn *conn, struct MHD_Connection *mc,
                         const char *method, struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  const char *value;
  char what[128];

  assert(proxy_current_loop == conn->loop);

  if(conn->req.too_big) {
    proxy_note(conn, KB_NOTE_BODY_TOO_LARGE,
               "request body of %zu bytes is over the %zu-byte limit: "
               "413, nothing forwarded",
               conn->req.body_seen, proxy->max_body);
    proxy_answer_text(conn, ans, MHD_HTTP_CONTENT_TOO_LARGE, NULL, KB_AUTH_NONE,
                      "ISA %s: the request body is larger than the %zu-byte "
                      "limit; send a smaller body",
                      proxy->name, proxy->max_body);
    return;
  }
  if(conn->req.nomem || !conn->req.uri) {
    proxy_answer_text(conn, ans, MHD_HTTP_SERVICE_UNAVAILABLE, NULL,
                      KB_AUTH_NONE,
                      "ISA %s: out of memory while reading the request; "
                      "retry later",
                      proxy->name);
    return;
  }
  if(conn->req.framing != KB_HTTP_OK) {
    const struct kb_http_rule *rule = kb_http_rule(conn->req.framing);
    proxy_note(conn, KB_NOTE_BAD_FRAMING,
               "request head with %s: %u, closed, nothing forwarded", rule->why,
               rule->status);
    proxy_answer_text(conn, ans, rule->status, NULL, KB_AUTH_NONE,
                      "ISA %s: the request has %s (RFC 9112); fix the "
                      "client's request",
                      proxy->name, rule->why);
    return;
  }

  value = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_AUTHORIZATION);
  switch(proxy->auth) {
  case PROXY_AUTH_NONE:
    if(proxy->trace.emit) {
      proxy_describe_forward(conn, method, what, sizeof(what));
      proxy_note(conn, KB_NOTE_ANONYMOUS,
                 "connection %" PRIu64 ": the listener does not "
                 "authenticate; %s",
                 conn->id, what);
    }
    proxy_forward(conn, mc, method, ans);
    break;
  case PROXY_AUTH_BASIC:
    proxy_decide_basic(conn, mc, method, value, ans);
    break;
  case PROXY_AUTH_INTEGRATED:
    proxy_decide_integrated(conn, mc, method, value, ans);
    break;
  }
}

/* ---- libmicrohttpd callbacks ------------------------------------------ */

/* Empties the request state, keeping the connection's. The buffers keep
 * their memory for the next request unless they grew large; the relayed
 * body goes too, so this must not run while an answer pointing into it
 * is queued (it runs as a request starts and once it has completed). */
static void proxy_req_reset(struct proxy_conn *conn)
{
  struct kb_buf body = conn->req.body;

  proxy_buf_recycle(&body);
  memset(&conn->req, 0, sizeof(conn->req));
  conn->req.body = body;
  proxy_buf_recycle(&conn->uri_buf);
  proxy_buf_recycle(&conn->fwd.body);
  proxy_buf_recycle(&conn->fwd.headers);
}

/* Frees a connection and everything it owns, upstream handles first (their
 * close and socket callbacks still read conn). A transfer in flight (only
 * possible while the proxy stops) is abandoned. Accepts NULL. */
static void proxy_conn_free(struct proxy_conn *conn)
{
  if(!conn)
    return;
  if(conn->fwd_state == PROXY_FWD_RUNNING) {
    curl_multi_remove_handle(conn->multi, conn->curl);
    proxy_busy_unlink(conn);
  }
  if(conn->fwd_state == PROXY_FWD_DONE && conn->pending.response)
    MHD_destroy_response(conn->pending.response);
  proxy_fwd_release(conn);
  if(conn->curl)
    curl_easy_cleanup(conn->curl);
  /* Closes the cached upstream connection, traced by proxy_curl_close. */
  if(conn->multi)
    curl_multi_cleanup(conn->multi);
  curl_slist_free_all(conn->fwd_headers);
  curl_url_cleanup(conn->fwd_uh);
  kb_buf_free(&conn->fwd_url);
  kb_buf_free(&conn->fwd.headers);
  kb_buf_free(&conn->fwd.body);
  kb_buf_free(&conn->uri_buf);
  kb_buf_free(&conn->req.body);
  ntlm_bytes_free(&conn->hs_negotiate);
  ntlm_bytes_free(&conn->hs_challenge);
  free(conn);
}

/* Looks up the name the peer of mc claimed for its connection to the
 * listener (kb_names); leaves name empty when there is none. */
static void proxy_resolve_peer(const struct proxy *proxy,
                               struct MHD_Connection *mc, char *name,
                               size_t len)
{
  const union MHD_ConnectionInfo *info =
      MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

  kb_names_resolve_addr(&proxy->names, info ? info->client_addr : NULL,
                        proxy->port, name, len);
}

/* Creates the per-connection state on STARTED and frees it on CLOSED.
 * When it cannot be allocated, socket_context stays NULL and every
 * request on that connection is refused by closing it. */
void proxy_on_connection(void *cls, struct MHD_Connection *mc,
                         void **socket_context,
                         enum MHD_ConnectionNotificationCode toe)
{
  struct proxy_loop *loop = cls;
  struct proxy *proxy = loop->proxy;
  struct proxy_conn *conn = *socket_context;
  struct proxy_stats delta;

  if(toe == MHD_CONNECTION_NOTIFY_STARTED) {
    conn = calloc(1, sizeof(*conn));
    if(!conn)
      return;
    conn->proxy = proxy;
    conn->loop = loop;
    conn->up.kind = PROXY_WATCH_UPSTREAM;
    conn->up.conn = conn;
    conn->up.fd = CURL_SOCKET_BAD;
    conn->up.embedded = true;
    conn->id = atomic_fetch_add(&proxy->next_id, 1);
    conn->state = PROXY_AUTH_UNAUTHENTICATED;
    kb_buf_init(&conn->req.body, proxy->max_body);
    kb_buf_init(&conn->uri_buf, SIZE_MAX / 2);
    kb_buf_init(&conn->fwd_url, SIZE_MAX / 2);
    kb_buf_init(&conn->fwd.headers, PROXY_MAX_RESPONSE_HEADERS);
    kb_buf_init(&conn->fwd.body, proxy->max_body);
    *socket_context = conn;
    {
      const union MHD_ConnectionInfo *fd =
          MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
      const union MHD_ConnectionInfo *addr =
          MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
      if(fd)
        conn->slot = kb_guard_open(proxy->guard, fd->connect_fd,
                                   addr ? addr->client_addr : NULL);
    }
    proxy_peer_watch(conn, mc);
    memset(&delta, 0, sizeof(delta));
    delta.connections = 1;
    proxy_stats_add(proxy, &delta);
    pthread_mutex_lock(&proxy->lock);
    proxy->open++;
    pthread_mutex_unlock(&proxy->lock);
    /* OPEN is traced with the connection's name at its first request. */
  }
  else if(toe == MHD_CONNECTION_NOTIFY_CLOSED && conn) {
    uint64_t id = conn->id;
    char name[sizeof(conn->name)];

    /* A connection that never sent a request stays unnamed. */
    if(!conn->named)
      proxy_emit(proxy, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, id, "", NULL, 0,
                 NULL);
    /* In case libmicrohttpd logged nothing after an idle close. */
    proxy_closing_idle = false;
    memcpy(name, conn->name, sizeof(name));
    kb_guard_close(conn->slot);
    conn->slot = NULL;
    proxy_peer_unwatch(conn);
    proxy_gone_unlink(conn);
    /* Upstream first, so its CLOSE is traced before the client's. */
    proxy_conn_free(conn);
    *socket_context = NULL;
    proxy_emit(proxy, KB_TRACE_CLOSE, KB_HOP_CLIENT_PROXY, id, name, NULL, 0,
               NULL);
    /* Last: proxy_wait_idle's callers may reset what the above used. */
    pthread_mutex_lock(&proxy->lock);
    assert(proxy->open > 0);
    if(!--proxy->open)
      pthread_cond_broadcast(&proxy->idle);
    pthread_mutex_unlock(&proxy->lock);
  }
}

/* Called once per request with the raw request target, before
 * libmicrohttpd splits off the query: the only place the query string is
 * seen as sent. Returns the connection, which becomes the request's
 * con_cls; the request state is embedded in it, so there is nothing to
 * leak when a request ends before the access handler sees it. */
void *proxy_on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
  const union MHD_ConnectionInfo *info;
  struct proxy_conn *conn;
  (void)cls;

  info = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  conn = info ? info->socket_context : NULL;
  if(!conn)
    return NULL;
  if(!conn->named) {
    /* The peer claimed its name before sending this request (kb_names). */
    proxy_resolve_peer(conn->proxy, mc, conn->name, sizeof(conn->name));
    conn->named = true;
    proxy_emit(conn->proxy, KB_TRACE_OPEN, KB_HOP_CLIENT_PROXY, conn->id,
               conn->name, NULL, 0, NULL);
  }
  proxy_req_reset(conn);
  if(!uri)
    uri = "";
  /* On failure req.uri stays NULL: the request gets a 503. */
  if(kb_buf_add(&conn->uri_buf, uri, strlen(uri)) == KB_BUF_OK)
    conn->req.uri = conn->uri_buf.data;
  return conn;
}

/* Ends a request: frees its body and target. */
void proxy_on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                        enum MHD_RequestTerminationCode toe)
{
  struct proxy_conn *conn = *con_cls;
  (void)cls;
  (void)mc;
  (void)toe;
  if(conn) {
    proxy_req_reset(conn);
    conn->answering = false;
    kb_guard_next(conn->slot);
    proxy_peer_finish(conn);
  }
  *con_cls = NULL;
}

/* Routes libmicrohttpd's own error messages to the trace as notes. */
void proxy_on_mhd_log(void *cls, const char *fmt, va_list ap)
{
  struct proxy *proxy = cls;
  char line[512];
  size_t len;

  vsnprintf(line, sizeof(line), fmt, ap);
  if(proxy_closing_idle &&
     !strncmp(line, PROXY_MHD_APP_ERROR, sizeof(PROXY_MHD_APP_ERROR) - 1)) {
    proxy_closing_idle = false;
    return;
  }
  if(!proxy->trace.emit)
    return;
  len = strlen(line);
  while(len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  kb_trace_note(&proxy->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER, proxy->name,
                0, KB_NOTE_LIBRARY, "libmicrohttpd: %s", line);
}

/* Decides, as a request starts on conn, whether the listener would have
 * closed the connection in the meantime: it has answered on it before and
 * the connection's timeline moved more than idle_timeout_ms since. Counts
 * and notes it. Returns true when the request must get no answer and the
 * connection must close. */
static bool proxy_idle_expired(struct proxy_conn *conn)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_stats delta;
  int64_t idle;
  char label[80];
  char idle_s[32];
  char limit_s[32];

  if(proxy->idle_timeout_ms <= 0 || !conn->answers)
    return false;
  idle = proxy_conn_now(conn) - conn->last_answer_ms;
  if(idle <= proxy->idle_timeout_ms)
    return false;
  memset(&delta, 0, sizeof(delta));
  delta.idle_closed = 1;
  proxy_stats_add(proxy, &delta);
  proxy_note(conn, KB_NOTE_IDLE_CLOSED,
             "connection %s idle %s > %s: the listener had closed it; closed "
             "without an answer, nothing forwarded",
             proxy_conn_label(conn, label, sizeof(label)),
             proxy_format_ms(idle, idle_s, sizeof(idle_s)),
             proxy_format_ms(proxy->idle_timeout_ms, limit_s, sizeof(limit_s)));
  return true;
}

/* Counts an answer about to be queued on conn and stamps its time on the
 * connection's timeline; at max_requests answers it adds "Connection:
 * close", so libmicrohttpd closes the connection once the answer is out. */
static void proxy_count_answer(struct proxy_conn *conn,
                               struct proxy_answer *ans)
{
  struct proxy *proxy = conn->proxy;
  char label[80];

  conn->answers++;
  conn->last_answer_ms = proxy_conn_now(conn);
  if(!proxy->max_requests || conn->answers < proxy->max_requests)
    return;
  if(MHD_add_response_header(ans->response, MHD_HTTP_HEADER_CONNECTION,
                             "close") != MHD_YES)
    return;
  ans->delta.max_requests_closed = 1;
  proxy_note(conn, KB_NOTE_MAX_REQUESTS,
             "connection %s reached the listener's limit of %u requests: "
             "Connection: close, the connection closes after this answer",
             proxy_conn_label(conn, label, sizeof(label)), proxy->max_requests);
}

/* Returns true when the request's Content-Length announces more than max
 * bytes, storing the announced length in *declared. */
static bool proxy_declared_too_big(struct MHD_Connection *mc, size_t max,
                                   size_t *declared)
{
  const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                              MHD_HTTP_HEADER_CONTENT_LENGTH);
  unsigned long long n;
  char *end = NULL;

  if(!v || *v < '0' || *v > '9')
    return false;
  errno = 0;
  n = strtoull(v, &end, 10);
  if(errno == ERANGE)
    n = ULLONG_MAX;
  else if(errno || *end)
    return false; /* libmicrohttpd itself refuses a malformed length */
  if(n <= max)
    return false;
  *declared = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
  return true;
}

/* Header lines a trace carries at most, per request and per response. */
#define PROXY_TRACE_HEAD_MAX 16384u

/* Header lines gathered for a trace; failed once one did not fit. */
struct proxy_head {
  struct kb_buf buf;
  bool failed;
};

/* libmicrohttpd's header iterator: appends "Name: value\r\n" to the
 * proxy_head in cls. */
static enum MHD_Result proxy_head_line(void *cls, enum MHD_ValueKind kind,
                                       const char *key, const char *value)
{
  struct proxy_head *head = cls;
  (void)kind;
  if(kb_buf_printf(&head->buf, "%s: %s\r\n", key, value ? value : ""))
    head->failed = true;
  return MHD_YES;
}

static enum MHD_Result proxy_head_field(void *cls, enum MHD_ValueKind kind,
                                        const char *key, size_t key_size,
                                        const char *value, size_t value_size)
{
  (void)kind;
  kb_http_field(cls, key, key_size, value ? value : "", value ? value_size : 0);
  return MHD_YES;
}

/* Judges the request head of conn (kb_http.h). On success the request's
 * target becomes its origin-form path (an absolute-form target keeps only
 * its path). */
static enum kb_http_verdict proxy_check_head(struct proxy_conn *conn,
                                             struct MHD_Connection *mc,
                                             const char *version)
{
  struct kb_http_reader r;
  struct kb_http_head head;
  enum kb_http_verdict v;

  if(!conn->req.uri)
    return KB_HTTP_OK; /* out of memory: answered 503 */
  kb_http_begin(&r);
  MHD_get_connection_values_n(mc, MHD_HEADER_KIND, proxy_head_field, &r);
  v = kb_http_end(&r, version, conn->req.uri, &head);
  if(v == KB_HTTP_OK)
    conn->req.uri = head.path;
  return v;
}

/* libmicrohttpd's accept policy: the guard's caps (kb_guard.h). */
enum MHD_Result proxy_on_accept(void *cls, const struct sockaddr *addr,
                                socklen_t addrlen)
{
  struct proxy *proxy = cls;
  return kb_guard_admit(proxy->guard, addr, addrlen) ? MHD_YES : MHD_NO;
}

/* The access handler: on the first call (headers only) closes a
 * connection that sat idle past the limit; then gathers the body (capped,
 * but always read to its end so the connection stays keep-alive), decides
 * and answers. A request to forward suspends the connection until its
 * transfer ends; libmicrohttpd then calls again, and the answer that
 * proxy_fwd_finish left in conn->pending is queued. */
enum MHD_Result proxy_on_request(void *cls, struct MHD_Connection *mc,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
  struct proxy *proxy = cls;
  struct proxy_conn *conn = *con_cls;
  struct proxy_answer ans;
  struct kb_exchange ex;
  struct proxy_head req_head, resp_head;
  const char *auth;
  enum MHD_Result result;

  if(!conn)
    return MHD_NO;
  if(!conn->req.started) {
    conn->req.started = true;
    /* Too late: the guard answered 408 and is closing the connection. */
    if(!kb_guard_head_done(conn->slot))
      return MHD_NO;
    /* MHD_NO before any response closes the socket with nothing sent,
     * which is what a client finds on a connection the server had
     * closed: libcurl then retries on a new one. */
    if(proxy_idle_expired(conn)) {
      proxy_closing_idle = true;
      return MHD_NO;
    }
    /* A head two parsers could frame differently is refused before
     * anything else, and before its body is read (RFC 9112 section 6). */
    conn->req.framing = proxy_check_head(conn, mc, version);
    if(conn->req.framing != KB_HTTP_OK) {
      conn->req.refused_early = true;
      goto decide;
    }
    /* A client waiting for 100 Continue is not asked for a body the
     * listener will refuse anyway: the 401 goes at once, as IIS and ISA
     * answer it (libmicrohttpd then closes, the body unread). */
    if(proxy_expects_continue(mc) && proxy_refused_from_head(conn, mc)) {
      conn->req.refused_early = true;
      goto decide;
    }
    /* A body announced as too big is refused before it is read: reading
     * megabytes only to refuse them is what a slow-drip attack wants. */
    if(proxy_declared_too_big(mc, proxy->max_body, &conn->req.body_seen)) {
      conn->req.too_big = true;
      conn->req.refused_early = true;
      goto decide;
    }
    return MHD_YES;
  }
  if(*upload_data_size) {
    conn->req.body_seen += *upload_data_size;
    if(!conn->req.too_big && !conn->req.nomem) {
      enum kb_buf_result r =
          kb_buf_add(&conn->req.body, upload_data, *upload_data_size);
      if(r != KB_BUF_OK) {
        /* Keep reading to the end, but hold nothing more. */
        conn->req.too_big = r == KB_BUF_TOO_BIG;
        conn->req.nomem = r == KB_BUF_NOMEM;
        kb_buf_free(&conn->req.body);
      }
    }
    *upload_data_size = 0;
    return MHD_YES;
  }

decide:
  if(conn->fwd_state == PROXY_FWD_RUNNING)
    return MHD_YES; /* not expected while suspended; nothing to do yet */
  if(conn->fwd_state == PROXY_FWD_IDLE && !kb_guard_body_done(conn->slot))
    return MHD_NO; /* the body came too late: answered 408 */
  if(conn->fwd_state == PROXY_FWD_DONE) {
    ans = conn->pending;
    memset(&conn->pending, 0, sizeof(conn->pending));
    conn->fwd_state = PROXY_FWD_IDLE;
  }
  else {
    memset(&ans, 0, sizeof(ans));
    proxy_decide(conn, mc, method, &ans);
    if(conn->fwd_state == PROXY_FWD_RUNNING) {
      conn->pending = ans;
      MHD_suspend_connection(mc);
      return MHD_YES;
    }
  }
  if(!ans.response)
    return MHD_NO;
  /* The unread body makes the connection unusable: say it closes. */
  if(conn->req.refused_early)
    MHD_add_response_header(ans.response, MHD_HTTP_HEADER_CONNECTION, "close");

  ans.delta.requests = 1;
  proxy_count_answer(conn, &ans);
  /* Counters and trace before queueing: once the response is on the wire
   * a client may read the stats, and must see this request in them. */
  proxy_stats_add(proxy, &ans.delta);
  if(proxy->trace.emit) {
    /* Classifying the request's token decodes it: only for a trace. */
    auth = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_AUTHORIZATION);
    memset(&ex, 0, sizeof(ex));
    ex.method = method;
    ex.path = url;
    ex.req_auth = proxy_classify_auth(auth);
    ex.req_body_len = conn->req.body_seen;
    ex.status = (int)ans.status;
    ex.resp_auth = ans.resp_auth;
    ex.resp_body_len = ans.resp_body_len;
    memset(&req_head, 0, sizeof(req_head));
    memset(&resp_head, 0, sizeof(resp_head));
    kb_buf_init(&req_head.buf, PROXY_TRACE_HEAD_MAX);
    kb_buf_init(&resp_head.buf, PROXY_TRACE_HEAD_MAX);
    MHD_get_connection_values(mc, MHD_HEADER_KIND, proxy_head_line, &req_head);
    MHD_get_response_headers(ans.response, proxy_head_line, &resp_head);
    /* Truncated or out of memory: the trace says nothing rather than
     * something incomplete. */
    ex.req_headers = req_head.failed ? NULL : req_head.buf.data;
    ex.resp_headers = resp_head.failed ? NULL : resp_head.buf.data;
    proxy_emit(proxy, KB_TRACE_EXCHANGE, KB_HOP_CLIENT_PROXY, conn->id,
               conn->name, NULL, 0, &ex);
    kb_buf_free(&req_head.buf);
    kb_buf_free(&resp_head.buf);
  }

  result = MHD_queue_response(mc, ans.status, ans.response);
  MHD_destroy_response(ans.response);
  /* Until the completion notice, a client that has gone must still be
   * able to take the answer (a half-closed client waits for it). */
  conn->answering = result == MHD_YES;
  return result;
}

/* ---- start / stop ----------------------------------------------------- */

int proxy_start(const struct proxy_config *config, struct proxy **out,
                char *err, size_t errlen)
{
  struct proxy *proxy = NULL;
  struct sockaddr_storage addr;
  /* External epoll mode: each loop thread drives its libmicrohttpd
   * daemon and its connections' libcurl handles. */
  unsigned int flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                       MHD_USE_SUPPRESS_DATE_NO_CLOCK | MHD_USE_ERROR_LOG;
  const union MHD_DaemonInfo *info;
  bool lock_ready = false;
  size_t len;
  int saved_errno;
  unsigned connection_timeout_s;
  unsigned connection_limit;
  unsigned i;
  CURLcode curl_rc;

  if(!config || !out) {
    proxy_set_error(err, errlen, "proxy_start: config and out must be given");
    return -1;
  }
  *out = NULL;
  if(!config->backend_url || strncmp(config->backend_url, "http", 4) != 0) {
    proxy_set_error(err, errlen,
                    "proxy: no published server URL; set backend_url, e.g. "
                    "http://127.0.0.1:8081");
    return -1;
  }
  if(!config->users) {
    proxy_set_error(err, errlen,
                    "proxy: no user store; give the proxy the "
                    "users it verifies NTLM against");
    return -1;
  }
  if(config->auth != PROXY_AUTH_INTEGRATED &&
     config->auth != PROXY_AUTH_BASIC && config->auth != PROXY_AUTH_NONE) {
    proxy_set_error(err, errlen,
                    "proxy: unknown listener authentication %d; use "
                    "integrated, basic or none",
                    (int)config->auth);
    return -1;
  }
  if(config->idle_timeout_ms < 0) {
    proxy_set_error(err, errlen,
                    "proxy: idle_timeout_ms is negative (%" PRId64 "); use 0 "
                    "for no limit",
                    config->idle_timeout_ms);
    return -1;
  }
  curl_rc = proxy_curl_init();
  if(curl_rc != CURLE_OK) {
    proxy_set_error(err, errlen, "proxy: libcurl could not be initialised: %s",
                    curl_easy_strerror(curl_rc));
    return -1;
  }

  proxy = calloc(1, sizeof(*proxy));
  if(!proxy) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    goto fail;
  }
  for(i = 0; i < PROXY_MAX_LOOPS; i++) {
    proxy->loops[i].proxy = proxy;
    proxy->loops[i].index = i;
    proxy->loops[i].epfd = proxy->loops[i].wakefd = -1;
  }
  proxy->bind_host = proxy_strdup_or(config->bind_host, PROXY_DEFAULT_HOST);
  proxy->backend_url = strdup(config->backend_url);
  proxy->name = proxy_strdup_or(config->name, PROXY_DEFAULT_NAME);
  proxy->domain = proxy_strdup_or(config->domain, PROXY_DEFAULT_DOMAIN);
  /* The DNS names: the configured domain, else lowercase(domain).com;
   * the computer lowercase(name).<dns domain>. */
  if(config->dns_domain && *config->dns_domain)
    proxy->dns_domain = strdup(config->dns_domain);
  else if(proxy->domain)
    proxy->dns_domain = proxy_lower(proxy_join(proxy->domain, ".com", ""), 0);
  if(proxy->name && proxy->dns_domain)
    proxy->dns_computer =
        proxy_lower(proxy_join(proxy->name, ".", proxy->dns_domain), '.');
  proxy->basic_offer = proxy_join("Basic realm=\"", proxy->name, "\"");
  proxy->via = proxy_join("1.1 ", proxy->name, "");
  if(!proxy->bind_host || !proxy->backend_url || !proxy->name ||
     !proxy->domain || !proxy->dns_domain || !proxy->dns_computer ||
     !proxy->basic_offer || !proxy->via) {
    proxy_set_error(err, errlen, "proxy: out of memory while starting");
    goto fail;
  }
  len = strlen(proxy->backend_url);
  while(len && proxy->backend_url[len - 1] == '/')
    proxy->backend_url[--len] = '\0';
  proxy->backend_url_len = len;
  proxy->users = config->users;
  proxy->auth = config->auth;
  proxy->idle_timeout_ms = config->idle_timeout_ms;
  proxy->max_requests = config->max_requests;
  connection_timeout_s = config->connection_timeout_s
                             ? config->connection_timeout_s
                             : PROXY_DEFAULT_CONNECTION_TIMEOUT_S;
  proxy->max_body =
      config->max_body ? config->max_body : PROXY_DEFAULT_MAX_BODY;
  proxy->upstream_timeout_ms = config->upstream_timeout_ms > 0
                                   ? config->upstream_timeout_ms
                                   : PROXY_DEFAULT_TIMEOUT_MS;
  proxy->clock = config->clock;
  proxy->rng = config->rng;
  proxy->trace = config->trace;
  proxy->names = config->names;
  atomic_init(&proxy->policy, (int)config->policy);
  atomic_init(&proxy->source, 0);
  atomic_init(&proxy->stopping, false);
  atomic_init(&proxy->next_id, 1);
  if(pthread_mutex_init(&proxy->lock, NULL)) {
    proxy_set_error(err, errlen, "proxy: cannot create a mutex");
    goto fail;
  }
  if(pthread_cond_init(&proxy->idle, NULL)) {
    pthread_mutex_destroy(&proxy->lock);
    proxy_set_error(err, errlen, "proxy: cannot create a condition variable");
    goto fail;
  }
  lock_ready = true;

  memset(&addr, 0, sizeof(addr));
  {
    struct sockaddr_in *v4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&addr;
    if(inet_pton(AF_INET, proxy->bind_host, &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(config->port);
    }
    else if(inet_pton(AF_INET6, proxy->bind_host, &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(config->port);
      flags |= MHD_USE_IPv6;
    }
    else {
      proxy_set_error(err, errlen,
                      "proxy: bind_host '%s' is not a numeric IPv4 or IPv6 "
                      "address; use e.g. 127.0.0.1",
                      proxy->bind_host);
      goto fail;
    }
  }

  {
    struct kb_guard_config gc;
    char gerr[128];
    memset(&gc, 0, sizeof(gc));
    gc.who = proxy->name;
    gc.head_timeout_ms = config->head_timeout_ms;
    gc.idle_ms = connection_timeout_s * 1000u;
    gc.max_connections = config->max_connections;
    gc.max_per_address = config->max_per_address;
    if(kb_guard_start(&gc, &proxy->guard, gerr, sizeof(gerr))) {
      proxy_set_error(err, errlen, "proxy: %s", gerr);
      goto fail;
    }
  }
  /* The guard refuses at its caps, at once; libmicrohttpd's own limit,
   * shared out among the loops, leaves room for connections the guard
   * has shut down and libmicrohttpd has not closed yet, so that it never
   * stops accepting (new clients would then hang in the backlog). */
  proxy->nloops = proxy_loop_count(config->loops);
  connection_limit = 2 * kb_guard_capacity(proxy->guard) / proxy->nloops;
  errno = 0;
  proxy->loops[0].daemon = proxy_daemon_start(
      &proxy->loops[0], flags, config->port, (const struct sockaddr *)&addr, -1,
      connection_limit, connection_timeout_s);
  saved_errno = errno;
  if(!proxy->loops[0].daemon) {
    proxy_set_error(err, errlen,
                    "proxy: cannot listen on %s:%u: %s; pick another port or 0",
                    proxy->bind_host, (unsigned)config->port,
                    saved_errno ? strerror(saved_errno)
                                : "libmicrohttpd "
                                  "refused to start");
    goto fail;
  }
  info = MHD_get_daemon_info(proxy->loops[0].daemon, MHD_DAEMON_INFO_BIND_PORT);
  proxy->port = info ? info->port : config->port;
  /* The other loops accept from a duplicate of the listening socket, each
   * daemon closing its own descriptor when it stops. */
  info = MHD_get_daemon_info(proxy->loops[0].daemon, MHD_DAEMON_INFO_LISTEN_FD);
  for(i = 1; i < proxy->nloops; i++) {
    int fd = info ? fcntl(info->listen_fd, F_DUPFD_CLOEXEC, 0) : -1;
    if(fd >= 0) {
      errno = 0;
      proxy->loops[i].daemon =
          proxy_daemon_start(&proxy->loops[i], flags, 0, NULL, fd,
                             connection_limit, connection_timeout_s);
    }
    if(fd < 0 || !proxy->loops[i].daemon) {
      /* (A descriptor libmicrohttpd refused may leak: whether it closed
       * it is not known, and closing it twice could hit a new one.) */
      saved_errno = errno;
      proxy_set_error(err, errlen,
                      "proxy: cannot start event loop %u of %u: %s; check "
                      "the process's limit on descriptors",
                      i + 1, proxy->nloops,
                      saved_errno ? strerror(saved_errno)
                                  : "libmicrohttpd refused to start");
      goto fail;
    }
  }
  for(i = 0; i < proxy->nloops; i++)
    if(proxy_loop_start(&proxy->loops[i])) {
      saved_errno = errno;
      proxy_set_error(err, errlen,
                      "proxy: cannot start the event loop: %s; check the "
                      "process's limits on threads and descriptors",
                      strerror(saved_errno));
      goto fail;
    }
  *out = proxy;
  return 0;

fail:
  if(proxy) {
    proxy_loops_stop(proxy);
    proxy_loops_close(proxy);
    kb_guard_stop(proxy->guard);
    if(lock_ready) {
      pthread_cond_destroy(&proxy->idle);
      pthread_mutex_destroy(&proxy->lock);
    }
    free(proxy->bind_host);
    free(proxy->backend_url);
    free(proxy->name);
    free(proxy->domain);
    free(proxy->dns_domain);
    free(proxy->dns_computer);
    free(proxy->basic_offer);
    free(proxy->via);
    free(proxy);
  }
  return -1;
}

void proxy_stop(struct proxy *proxy)
{
  if(!proxy)
    return;
  /* The loops abandon transfers in flight (503) instead of waiting for
   * the upstream timeout, then end. */
  proxy_loops_stop(proxy);
  /* Closes every connection; their CLOSED notifications free their state
   * (and close their upstream connections) before this returns. */
  proxy_loops_close(proxy);
  kb_guard_stop(proxy->guard);
  pthread_cond_destroy(&proxy->idle);
  pthread_mutex_destroy(&proxy->lock);
  free(proxy->bind_host);
  free(proxy->backend_url);
  free(proxy->name);
  free(proxy->domain);
  free(proxy->dns_domain);
  free(proxy->dns_computer);
  free(proxy->basic_offer);
  free(proxy->via);
  free(proxy);
}
