/*
 * integrated.c - the integrated (NTLM) rows of the listener's decision
 * table, raw or inside Negotiate: reads the request's Authorization,
 * verifies a type 3 against the handshake pending on the connection (or,
 * on a listener with a keytab, a Kerberos ticket through MIT's GSS-API,
 * common/kb_gss.h), asks proxy_auth_decide (auth.c) what to do and
 * carries it out - a forward, a 401 with the offer, or a 401 with a new
 * type 2.
 */
#include "proxy_int.h"

#include "common/kb_gss.h"

/* The offer of an integrated listener, in IIS's order: one
 * WWW-Authenticate header per scheme, Negotiate first. */
static const char *const proxy_offer_integrated[] = {"Negotiate", "NTLM", NULL};

/* A 401 asking an integrated client to start again: "WWW-Authenticate:
 * Negotiate" and "WWW-Authenticate: NTLM". */
#define proxy_answer_401(conn, ans, ...)                                       \
  proxy__answer_text((conn), (ans), MHD_HTTP_UNAUTHORIZED,                     \
                     proxy_offer_integrated, KB_AUTH_NTLM_BARE, __VA_ARGS__)

/* Formats "DOMAIN\user" of an identity into out. */
static const char *proxy_who(const struct ntlm_identity *who, char *out,
                             size_t outlen)
{
  snprintf(out, outlen, "%s\\%s", who->domain, who->user);
  return out;
}

/* Reads the request's Authorization header, an AUTHENTICATE's strings in
 * charset. Returns what it carries; for PROXY_TOKEN_BAD writes why into
 * why; for NEGOTIATE and AUTHENTICATE fills *msg (caller frees with
 * ntlm_message_free), *scheme and *raw, the message's bytes as sent
 * (caller frees with ntlm_bytes_free). *peeked is the NTLM type the token
 * claims, even when it does not decode. */
static enum proxy_token
proxy_read_token(const char *value, enum ntlm_charset charset,
                 enum ntlm_scheme *scheme, struct ntlm_message *msg,
                 struct ntlm_bytes *raw, enum ntlm_type *peeked, char *why,
                 size_t whylen)
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
  r = ntlm_decode_as(token.data, token.len, charset, msg, err, sizeof(err));
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

/* What the request's Authorization header on conn carries, for the
 * decision table; fills msg, raw and scheme for a type 1 or 3 and why for
 * an unusable header; first is a foreign Negotiate token's first byte. A
 * type 3 answering conn's challenge is read in the character set that
 * challenge agreed (ntlm_challenge_charset), not in the one its own flags
 * claim. */
static enum proxy_token
proxy_integrated_token(const struct proxy__conn *conn, const char *value,
                       enum ntlm_scheme *scheme, struct ntlm_message *msg,
                       struct ntlm_bytes *raw, uint8_t *first, char *why,
                       size_t whylen)
{
  enum ntlm_charset charset =
      conn->state == PROXY_AUTH_CHALLENGED
          ? ntlm_challenge_charset(conn->hs_challenge.data,
                                   conn->hs_challenge.len)
          : NTLM_CHARSET_FLAGGED;
  enum ntlm_type peeked;
  enum proxy_token token;

  memset(msg, 0, sizeof(*msg));
  if(kb_gss_is_negotiate(value, first))
    return PROXY_TOKEN_KERBEROS;
  token =
      proxy_read_token(value, charset, scheme, msg, raw, &peeked, why, whylen);
  if(token == PROXY_TOKEN_BAD && peeked == NTLM_TYPE_AUTHENTICATE)
    token = PROXY_TOKEN_BAD_TYPE3;
  return token;
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

/* Verifies the type 3 msg (raw: its bytes as sent) against the handshake
 * pending on conn: the proof, the account (resolved as a domain
 * controller would) and the MIC when one is announced. Fills conn->who
 * with the account as the store spells it and returns true, or writes why
 * not into err. */
static bool proxy_verify_type3(struct proxy__conn *conn,
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

/* Verifies the Kerberos ticket in value with the listener's keytab (MIT's
 * gss_accept_sec_context, one leg) and resolves its principal
 * ("alice@FABRIKAM.COM": user alice of the realm's NetBIOS domain
 * FABRIKAM) in the listener's directory, as a domain controller maps a
 * principal to its account. Fills conn->who and returns true, or writes
 * why not into err. */
static bool proxy_verify_kerberos(struct proxy__conn *conn, const char *value,
                                  char *err, size_t errlen)
{
  struct proxy_lookup lookup;
  char principal[300];
  char domain[128];
  char user[128];

  if(kb_gss_accept(conn->proxy->krb5_keytab, value, principal,
                   sizeof(principal), err, errlen) != KB_GSS_OK)
    return false;
  memset(&lookup, 0, sizeof(lookup));
  lookup.proxy = conn->proxy;
  if(kb_gss_principal_split(principal, domain, sizeof(domain), user,
                            sizeof(user)) ||
     proxy_resolve(&lookup, domain, user) != KB_RESOLVE_OK) {
    snprintf(err, errlen, "the principal %.200s has no account here",
             principal);
    return false;
  }
  memset(&conn->who, 0, sizeof(conn->who));
  snprintf(conn->who.domain, sizeof(conn->who.domain), "%s",
           lookup.account.domain);
  snprintf(conn->who.user, sizeof(conn->who.user), "%s", lookup.account.user);
  return true;
}

/* Starts (or restarts) a handshake: draws a server challenge, answers 401
 * with a type 2 in the client's scheme and leaves the connection
 * CHALLENGED. */
static void proxy_challenge(struct proxy__conn *conn,
                            const struct ntlm_message *negotiate,
                            struct ntlm_bytes *raw, enum ntlm_scheme scheme,
                            struct proxy__answer *ans)
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
                           ntlm_filetime_from_unix_ms(proxy__conn_now(conn)),
                           &type2) != NTLM_OK ||
     !(header = ntlm_header_format(scheme, type2.data, type2.len))) {
    proxy__answer_text(
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
    proxy__answer_text(
        conn, ans, MHD_HTTP_UNAUTHORIZED, offer, KB_AUTH_NTLM_CHALLENGE,
        "ISA %s: NTLM challenge sent; answer it with a type 3", proxy->name);
  }
out:
  free(header);
  ntlm_bytes_free(&type2);
}

/* The integrated rows of the decision table (proxy.h): NTLM, raw or inside
 * Negotiate, with the connection's handshake state and the policy. value
 * is the request's Authorization header or NULL. The decision is
 * proxy_auth_decide's (auth.c); this reads the header, verifies a type 3
 * when the table asks, tells the decision in a note and carries it out.
 * Fills ans, forwarding when the table says so. Never fails. */
void proxy__decide_integrated(struct proxy__conn *conn,
                              struct MHD_Connection *mc, const char *method,
                              const char *value, struct proxy__answer *ans)
{
  struct proxy *proxy = conn->proxy;
  struct proxy_auth_input in;
  struct proxy_auth_decision d;
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  struct ntlm_message msg;
  struct ntlm_bytes raw = {NULL, 0};
  uint8_t first = 0;
  struct proxy_auth_facts facts;
  /* The note's words are built only when something records them; the
   * 401's body always is. */
  bool noted = proxy->trace.emit != NULL;
  char why[320];
  char who[260];
  char how[96];
  char what[128];
  char err[320];
  char label[80];
  char note[1024];
  char body[512];

  /* One read per request: a concurrent proxy_set_policy applies from the
   * next request on. */
  in.policy = (enum proxy_policy)atomic_load(&proxy->policy);
  in.state = conn->state;
  in.defects = proxy->defects;
  in.has_body = conn->req.body_seen > 0;
  why[0] = err[0] = who[0] = how[0] = what[0] = '\0';
  in.token = proxy_integrated_token(conn, value, &scheme, &msg, &raw, &first,
                                    why, sizeof(why));
  in.kerberos = proxy->krb5_keytab != NULL;
  in.verified = false;
  if(proxy_auth_verifies(in.state, in.token, in.kerberos))
    in.verified = in.token == PROXY_TOKEN_KERBEROS
                      ? proxy_verify_kerberos(conn, value, err, sizeof(err))
                      : proxy_verify_type3(conn, &msg, &raw, err, sizeof(err));
  proxy_auth_decide(&in, &d);

  /* The identity the texts name: the one the connection had, or the one
   * its type 3 or ticket just proved. */
  if(noted &&
     (in.state == PROXY_AUTH_AUTHENTICATED || d.auth_ok || d.kerberos_ok))
    proxy_who(&conn->who, who, sizeof(who));
  if(noted && d.auth_ok)
    snprintf(how, sizeof(how), "%s%s%s",
             ntlm_response_kind_name(conn->who.kind),
             conn->who.mic_checked ? ", MIC verified" : "",
             conn->who.key_exchanged ? ", session key exchanged" : "");
  ans->delta.auth_failed = d.auth_failed;
  ans->delta.auth_ok = d.auth_ok;
  ans->delta.kerberos_ok = d.kerberos_ok;
  ans->delta.reauth_skipped = d.reauth_skipped;
  if(d.forget)
    memset(&conn->who, 0, sizeof(conn->who));
  if(d.act != PROXY_ACT_CHALLENGE)
    conn->state = d.next; /* proxy_challenge sets CHALLENGED once sent */
  if(noted && d.act == PROXY_ACT_FORWARD)
    proxy__describe_forward(conn, method, what, sizeof(what));
  if(d.auth_ok) {
    memset(conn->challenge, 0, sizeof(conn->challenge));
    ntlm_bytes_free(&conn->hs_negotiate);
    ntlm_bytes_free(&conn->hs_challenge);
  }

  facts = (struct proxy_auth_facts){
      .conn = noted ? proxy__conn_label(conn, label, sizeof(label)) : "",
      .listener = proxy->name,
      .who = who,
      .how = how,
      .what = what,
      .why = why,
      .err = err,
      .first_byte = first,
      .handshake = conn->handshakes + 1};
  proxy_auth_texts(&in, &d, &facts, noted ? note : NULL,
                   noted ? sizeof(note) : 0, body, sizeof(body));
  if(noted)
    proxy__note(conn, d.note, "%s", note);
  if(d.act == PROXY_ACT_OFFER)
    proxy_answer_401(conn, ans, "%s", body);
  if(d.act == PROXY_ACT_FORWARD)
    proxy__forward(conn, mc, method, ans);
  else if(d.act == PROXY_ACT_CHALLENGE)
    proxy_challenge(conn, &msg, &raw, scheme, ans);
  ntlm_message_free(&msg);
  ntlm_bytes_free(&raw);
}

/* Whether the integrated table refuses this request whatever its body
 * (a 401 offer: no credentials, an unusable token, Kerberos), judged from
 * its Authorization value (NULL: none) and the connection's state alone,
 * without side effects. A type 3 is taken as if it verified (it is
 * forwarded with its body, so the body is wanted), and a challenge is not
 * a refusal: the handshake must go on on this connection, and
 * libmicrohttpd 0.9.75 closes any connection answered before its declared
 * body. */
bool proxy__integrated_refuses(const struct proxy__conn *conn,
                               const char *value)
{
  struct proxy_auth_input in;
  struct proxy_auth_decision d;
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  struct ntlm_message msg;
  struct ntlm_bytes raw = {NULL, 0};
  uint8_t first = 0;
  char why[320];

  in.policy = (enum proxy_policy)atomic_load(&conn->proxy->policy);
  in.state = conn->state;
  in.defects = conn->proxy->defects;
  in.has_body = true; /* asked from the head of a request with a body */
  in.kerberos = conn->proxy->krb5_keytab != NULL;
  in.token = proxy_integrated_token(conn, value, &scheme, &msg, &raw, &first,
                                    why, sizeof(why));
  in.verified = true;
  proxy_auth_decide(&in, &d);
  ntlm_message_free(&msg);
  ntlm_bytes_free(&raw);
  return d.act == PROXY_ACT_OFFER;
}
