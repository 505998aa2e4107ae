/*
 * defects.c - the listener's defects (serve --defect; the names are
 * common/kb_defect.h's): which listener can have each, and each one's
 * change of behaviour, in one place. All are off unless
 * proxy_config.defects asks for them. body-less-forward and body-on-type1
 * change rows of the decision table, as data (auth.c takes the bits); the
 * others change the relay through the calls below, each made from one
 * place of request.c, upstream.c, connection.c or loop.c.
 */
#include "proxy_int.h"

/* ---- the table ---------------------------------------------------------- */

/* One defect: the listener that can have it and, for one the listener
 * cannot have yet, what it needs. The comment of each row says where its
 * change is made. */
struct proxy_defect_row {
  enum kb_defect defect;
  enum proxy_auth auth; /* integrated: ISA's own; none: passes NTLM on */
  const char *missing;  /* NULL: available */
};

static const struct proxy_defect_row proxy_defect_rows[KB_DEFECT_COUNT] = {
    /* auth.c: the row of a type 1 on an authenticated connection */
    {KB_DEFECT_BODY_LESS_FORWARD, PROXY_AUTH_INTEGRATED, NULL},
    /* proxy__defect_hold, proxy__defect_release */
    {KB_DEFECT_EXPECT_HANG, PROXY_AUTH_INTEGRATED, NULL},
    /* auth.c: the row of a type 1 that carries a body */
    {KB_DEFECT_BODY_ON_TYPE1, PROXY_AUTH_INTEGRATED, NULL},
    /* proxy__defect_transfer */
    {KB_DEFECT_HANDSHAKE_SPLIT, PROXY_AUTH_NONE, NULL},
    /* proxy__defect_park, proxy__defect_adopt */
    {KB_DEFECT_MIXES_IDENTITIES, PROXY_AUTH_NONE, NULL},
    /* proxy__defect_transfer */
    {KB_DEFECT_PINNED_RECYCLED, PROXY_AUTH_NONE, NULL},
    /* proxy__defect_private, then as mixes-identities */
    {KB_DEFECT_MIXES_AFTER_SINGLE_LEG, PROXY_AUTH_NONE, NULL},
    /* proxy__defect_fold, proxy__defect_folded */
    {KB_DEFECT_CHALLENGE_REWRITTEN, PROXY_AUTH_NONE, NULL},
    {KB_DEFECT_NTLM_OVER_HTTP2, PROXY_AUTH_NONE,
     "needs HTTP/2 over TLS, which the listener does not speak yet"},
};

/* The pinned-recycled listener closes its upstream connection after this
 * many requests. */
#define PROXY_RECYCLE_AFTER 2u

/* Upstream connections the mixes-identities pool holds at most per loop,
 * as nginx's "keepalive 8" of examples/nginx; more are closed. */
#define PROXY_POOL_MAX 8u

const char *proxy_defect_unavailable(enum kb_defect d)
{
  return (unsigned)d < KB_DEFECT_COUNT ? proxy_defect_rows[d].missing
                                       : "is no defect";
}

/* Checks that a listener authenticating as auth can have every defect of
 * the bit set defects. Returns 0, or -1 with a one-line reason in err. */
int proxy__defects_check(unsigned defects, enum proxy_auth auth, char *err,
                         size_t errlen)
{
  char none[2];
  unsigned i;

  if(!err || !errlen) {
    err = none;
    errlen = sizeof(none);
  }
  if(defects >> KB_DEFECT_COUNT) {
    snprintf(err, errlen,
             "proxy: defects 0x%x name no defect; use "
             "PROXY_DEFECT(KB_DEFECT_...)",
             defects);
    return -1;
  }
  for(i = 0; i < KB_DEFECT_COUNT; i++) {
    const struct proxy_defect_row *row = &proxy_defect_rows[i];

    assert(row->defect == (enum kb_defect)i);
    if(!(defects & PROXY_DEFECT(i)))
      continue;
    if(row->missing) {
      snprintf(err, errlen, "proxy: defect %s %s", kb_defect_name(row->defect),
               row->missing);
      return -1;
    }
    if(row->auth != auth) {
      snprintf(err, errlen,
               "proxy: defect %s is one of a listener %s; give it auth %s",
               kb_defect_name(row->defect),
               row->auth == PROXY_AUTH_NONE ? "that passes NTLM through"
                                            : "that authenticates",
               proxy_auth_name(row->auth));
      return -1;
    }
  }
  return 0;
}

/* ---- expect-hang -------------------------------------------------------- */

/* Under the defect expect-hang, holds the request on conn, whose client
 * waits for 100 Continue (Expect: 100-continue with a body): suspended
 * before libmicrohttpd sends the 100, it gets neither a 100 nor an answer
 * until its client leaves (proxy__defect_release; the loop's EPOLLRDHUP
 * watch sees it) - or until the guard's body deadline answers 408 (30 s,
 * kb_guard.h). Called from the access handler's first call. Returns
 * whether it held it. */
bool proxy__defect_hold(struct proxy__conn *conn, struct MHD_Connection *mc)
{
  struct proxy__loop *loop = conn->loop;
  char label[80];

  if(!proxy__defect(conn->proxy, KB_DEFECT_EXPECT_HANG))
    return false;
  MHD_suspend_connection(mc);
  conn->held = mc;
  conn->held_prev = NULL;
  conn->held_next = loop->held;
  if(loop->held)
    loop->held->held_prev = conn;
  loop->held = conn;
  proxy__note(conn, KB_NOTE_EXPECT_HELD,
              "%s expects 100 Continue; the defect expect-hang sends "
              "neither a 100 nor an answer until the client gives up",
              proxy__conn_label(conn, label, sizeof(label)));
  return true;
}

/* Lets a held connection go: resumed, its request closes it unanswered
 * (proxy__on_request sees dropped). */
static void proxy_defect_drop(struct proxy__conn *conn)
{
  struct proxy__loop *loop = conn->loop;
  struct MHD_Connection *mc = conn->held;

  if(conn->held_prev)
    conn->held_prev->held_next = conn->held_next;
  else
    loop->held = conn->held_next;
  if(conn->held_next)
    conn->held_next->held_prev = conn->held_prev;
  conn->held_prev = conn->held_next = NULL;
  conn->held = NULL;
  conn->dropped = true;
  MHD_resume_connection(mc);
}

/* The client of conn has gone (proxy__peer_finish): a connection the
 * defect expect-hang holds is let go, to close without an answer.
 * Returns whether conn was held. */
bool proxy__defect_release(struct proxy__conn *conn)
{
  char label[80];

  if(!conn->held)
    return false;
  proxy__note(conn, KB_NOTE_CLIENT_LEFT,
              "%s: the client gave up waiting for 100 Continue; closing it, "
              "nothing answered, nothing forwarded",
              proxy__conn_label(conn, label, sizeof(label)));
  proxy_defect_drop(conn);
  conn->peer_shut = true; /* nothing more to do for its leaving */
  proxy__gone_unlink(conn);
  return true;
}

/* The listener stops: every held connection is let go, since
 * libmicrohttpd cannot stop with a connection suspended. */
void proxy__defect_release_all(struct proxy__loop *loop)
{
  while(loop->held)
    proxy_defect_drop(loop->held);
}

/* ---- handshake-split, pinned-recycled ----------------------------------- */

/* Sets what the listener's defects change about the transfer about to
 * start on conn: whether libcurl closes the upstream connection once it
 * is done (CURLOPT_FORBID_REUSE), and notes it.
 *
 * handshake-split: every request on a fresh upstream connection, closed
 * after it, as nginx does without `keepalive` in its upstream block
 * (nginx.org's ngx_http_upstream_module: NTLM "requires keepalive
 * connections to upstream servers"; examples/nginx/README.md: "every
 * request gets a new upstream connection and NTLM's second leg never
 * finds its challenge"). Deterministic, where a shared pool would make it
 * depend on timing.
 *
 * pinned-recycled: the pinned connection is closed after its
 * PROXY_RECYCLE_AFTER-th request and the next goes on a new one while the
 * client's stays open, as a limit on requests per upstream connection
 * does (HAProxy's "max-reuse", nginx's upstream "keepalive_requests"). */
void proxy__defect_transfer(struct proxy__conn *conn)
{
  const struct proxy *proxy = conn->proxy;
  bool split = proxy__defect(proxy, KB_DEFECT_HANDSHAKE_SPLIT);
  /* The kept connection carried up_requests (0: none is open); this is
   * one more on it. */
  bool recycle = proxy__defect(proxy, KB_DEFECT_PINNED_RECYCLED) &&
                 conn->up_requests > 0 &&
                 conn->up_requests + 1 >= PROXY_RECYCLE_AFTER;
  char label[80];

  if(!proxy->defects)
    return;
  curl_easy_setopt(conn->curl, CURLOPT_FORBID_REUSE,
                   split || recycle ? 1L : 0L);
  if(split)
    proxy__note(conn, KB_NOTE_UPSTREAM_UNPINNED,
                "%s: the defect handshake-split sends this request on an "
                "upstream connection of its own, closed after it",
                proxy__conn_label(conn, label, sizeof(label)));
  else if(recycle)
    proxy__note(conn, KB_NOTE_UPSTREAM_RECYCLED,
                "%s: the defect pinned-recycled closes its upstream "
                "connection%s%s after this, its request %u on it; the next "
                "goes on a new one",
                proxy__conn_label(conn, label, sizeof(label)),
                conn->up_name[0] ? " " : "", conn->up_name,
                conn->up_requests + 1);
}

/* ---- mixes-identities, mixes-after-single-leg --------------------------- */

/* Under the defect mixes-after-single-leg, takes a header of the response
 * about to be relayed to conn's client, whose status is status: a 401
 * with WWW-Authenticate NTLM or Negotiate (with or without a token) marks
 * conn's upstream connection private, kept for this client alone - the
 * rule HAProxy follows in every http-reuse mode (its configuration
 * manual, "http-reuse"). A client that authenticates in one leg
 * (Kerberos, its ticket with the first request of a new connection) never
 * gets such a 401, so its connection is never marked and goes back to the
 * pool (haproxy#2985). */
void proxy__defect_private(struct proxy__conn *conn, int status,
                           const char *name, const char *value)
{
  size_t scheme;

  if(status != MHD_HTTP_UNAUTHORIZED || conn->up_private ||
     !proxy__defect(conn->proxy, KB_DEFECT_MIXES_AFTER_SINGLE_LEG) ||
     strcasecmp(name, MHD_HTTP_HEADER_WWW_AUTHENTICATE))
    return;
  scheme = strcspn(value, " \t,");
  if((scheme == 4 && !strncasecmp(value, "NTLM", 4)) ||
     (scheme == 9 && !strncasecmp(value, "Negotiate", 9)))
    conn->up_private = true;
}

/* Whether conn's upstream connection goes to the pool when its client
 * leaves: always under mixes-identities, when no 401 made it private
 * under mixes-after-single-leg. */
static bool proxy_defect_pools(const struct proxy__conn *conn)
{
  return proxy__defect(conn->proxy, KB_DEFECT_MIXES_IDENTITIES) ||
         (proxy__defect(conn->proxy, KB_DEFECT_MIXES_AFTER_SINGLE_LEG) &&
          !conn->up_private);
}

/* The defect that pools, for the notes. */
static const char *proxy_defect_pooler(const struct proxy *proxy)
{
  return kb_defect_name(proxy__defect(proxy, KB_DEFECT_MIXES_IDENTITIES)
                            ? KB_DEFECT_MIXES_IDENTITIES
                            : KB_DEFECT_MIXES_AFTER_SINGLE_LEG);
}

/* Under the defect mixes-identities, puts the upstream connection of
 * conn, whose client has left, in its loop's pool, open and authenticated
 * as whoever authenticated it, for the next client connection to take
 * (proxy__defect_adopt): a pool of upstream connections shared by every
 * client, as nginx's `keepalive` and Apache's mod_proxy keep one
 * (examples/nginx/README.md, examples/apache/README.md). Pinning is
 * exactly what this undoes: HAProxy marks a connection that answered 401
 * with NTLM or Negotiate private, never shared (doc/configuration.txt,
 * "http-reuse"; src/http_ana.c). Called as conn is freed; returns whether
 * the pool took its upstream (the caller then must not close it). */
bool proxy__defect_park(struct proxy__conn *conn)
{
  struct proxy__loop *loop = conn->loop;
  struct proxy__upstream *u;
  char label[80];

  if(!proxy_defect_pools(conn) || atomic_load(&conn->proxy->stopping) ||
     loop->npool >= PROXY_POOL_MAX || conn->fwd_state != PROXY__FWD_IDLE ||
     !conn->up_requests)
    return false; /* (no upstream connection open: nothing to hand on) */
  u = proxy__upstream_detach(conn);
  if(!u)
    return false;
  u->next = loop->pool;
  loop->pool = u;
  loop->npool++;
  proxy__note(conn, KB_NOTE_UPSTREAM_POOLED,
              "%s closed; the defect %s keeps its upstream "
              "connection%s%s open for the next client%s",
              proxy__conn_label(conn, label, sizeof(label)),
              proxy_defect_pooler(conn->proxy), u->name[0] ? " " : "", u->name,
              proxy__defect(conn->proxy, KB_DEFECT_MIXES_IDENTITIES)
                  ? ""
                  : " (no 401 with NTLM or Negotiate made it private)");
  return true;
}

/* Under the defect mixes-identities, gives conn, which has no upstream
 * yet, the one its loop's pool took last (nginx's keepalive cache hands
 * out the most recently used: examples/nginx/README.md). Returns whether
 * it did. */
bool proxy__defect_adopt(struct proxy__conn *conn)
{
  struct proxy__loop *loop = conn->loop;
  struct proxy__upstream *u = loop->pool;
  char label[80];

  if(!u || (!proxy__defect(conn->proxy, KB_DEFECT_MIXES_IDENTITIES) &&
            !proxy__defect(conn->proxy, KB_DEFECT_MIXES_AFTER_SINGLE_LEG)))
    return false;
  loop->pool = u->next;
  loop->npool--;
  u->next = NULL;
  proxy__upstream_attach(conn, u);
  proxy__note(conn, KB_NOTE_UPSTREAM_POOLED,
              "%s: the defect %s sends it on the upstream "
              "connection%s%s, which %s left in the pool",
              proxy__conn_label(conn, label, sizeof(label)),
              proxy_defect_pooler(conn->proxy), conn->up_name[0] ? " " : "",
              conn->up_name, u->owner);
  return true;
}

/* Closes every upstream connection in loop's pool (the listener stops;
 * each CLOSE is traced under its last client connection). */
void proxy__defect_pool_drain(struct proxy__loop *loop)
{
  while(loop->pool) {
    struct proxy__upstream *u = loop->pool;
    loop->pool = u->next;
    loop->npool--;
    proxy__upstream_free(u);
  }
}

/* ---- challenge-rewritten ------------------------------------------------ */

/* Under the defect challenge-rewritten, takes a header of the response
 * being relayed to conn's client when it is a WWW-Authenticate: the
 * server's offer ("Negotiate", "NTLM") is folded into one header (RFC
 * 9110's list form, legal for WWW-Authenticate, which many clients then
 * fail to split) without the bare NTLM, as a gateway that rewrites or
 * filters the schemes offered does. A challenge that carries a token (a
 * type 2) is folded too, kept: a client that chose a scheme gets its
 * answer. Appends value to fold unless it is the bare NTLM. Returns
 * whether the relay must not copy the header itself. */
bool proxy__defect_fold(const struct proxy__conn *conn, const char *name,
                        const char *value, struct kb_buf *fold)
{
  size_t scheme;

  if(!proxy__defect(conn->proxy, KB_DEFECT_CHALLENGE_REWRITTEN) ||
     strcasecmp(name, MHD_HTTP_HEADER_WWW_AUTHENTICATE))
    return false;
  scheme = strcspn(value, " \t,");
  if(scheme == 4 && !strncasecmp(value, "NTLM", 4) &&
     !value[4 + strspn(value + 4, " \t")])
    return true;
  if((fold->len && kb_buf_add(fold, ", ", 2) != KB_BUF_OK) ||
     kb_buf_add(fold, value, strlen(value)) != KB_BUF_OK)
    kb_buf_reset(fold); /* too long: dropped whole */
  return true;
}

/* Adds the folded WWW-Authenticate, if any, to the response r relayed to
 * conn's client and, on a 401, notes the rewrite and classifies what the
 * client gets for the trace. */
void proxy__defect_folded(struct proxy__conn *conn, struct MHD_Response *r,
                          const struct kb_buf *fold, struct proxy__answer *ans)
{
  char label[80];

  if(!proxy__defect(conn->proxy, KB_DEFECT_CHALLENGE_REWRITTEN))
    return;
  if(fold->len)
    MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, fold->data);
  if(ans->status != MHD_HTTP_UNAUTHORIZED)
    return; /* where challenges are not */
  ans->resp_auth = proxy__classify_auth(fold->len ? fold->data : NULL);
  proxy__note(conn, KB_NOTE_CHALLENGE_REWRITTEN,
              "%s: the defect challenge-rewritten folds the server's "
              "WWW-Authenticate headers into one without the bare NTLM: "
              "\"%s\"",
              proxy__conn_label(conn, label, sizeof(label)),
              fold->len ? fold->data : "");
}
