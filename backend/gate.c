/*
 * gate.c - who a request reaches Exchange as: IIS 7's Windows
 * authentication per connection (with Extended Protection's check of the
 * channel binding), or ISA's trust. See gate.h.
 */
#include "gate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nettle/base64.h>

#include "common/kb_gss.h"
#include "common/kb_users.h"

/* Longest Basic token read for a name, in base64 characters. */
#define BACKEND_BASIC_MAX_TOKEN 1024u

void backend_auth_ctx_free(struct backend_auth_ctx *ctx)
{
  if(!ctx)
    return;
  ntlm_bytes_free(&ctx->negotiate);
  ntlm_bytes_free(&ctx->type2);
  explicit_bzero(ctx, sizeof(*ctx));
}

/* One account lookup for ntlm_server_verify_ex: the realm in, the
 * account out. */
struct backend_lookup {
  const struct backend_auth_server *srv;
  struct kb_account account;
  bool found;
};

static const char *backend_lookup_fn(void *cls, const char *domain,
                                     const char *user)
{
  struct backend_lookup *l = cls;
  const struct kb_realm realm = {l->srv->domain, l->srv->dns_domain};

  l->found = kb_users_resolve(l->srv->users, &realm, domain, user,
                              &l->account) == KB_RESOLVE_OK;
  return l->found ? l->account.password : NULL;
}

/* Writes "DOMAIN\user" of a Basic value's user name into out; leaves it
 * alone when the value is not Basic or does not decode. */
static void backend_basic_identity(const char *value, char *out, size_t len)
{
  struct base64_decode_ctx b64;
  uint8_t buf[BASE64_DECODE_LENGTH(BACKEND_BASIC_MAX_TOKEN) + 1];
  size_t dlen = sizeof(buf) - 1;
  size_t n;
  const char *p = value;
  char *colon;

  while(*p == ' ' || *p == '\t')
    p++;
  if(strncasecmp(p, "Basic", 5) || (p[5] != ' ' && p[5] != '\t'))
    return;
  p += 6;
  while(*p == ' ' || *p == '\t')
    p++;
  n = strcspn(p, " \t");
  if(!n || n > BACKEND_BASIC_MAX_TOKEN)
    return;
  base64_decode_init(&b64);
  if(!base64_decode_update(&b64, &dlen, buf, n, p) ||
     !base64_decode_final(&b64))
    return;
  buf[dlen] = '\0';
  colon = memchr(buf, ':', dlen);
  if(colon)
    *colon = '\0';
  n = colon ? (size_t)(colon - (char *)buf) : dlen;
  /* A name that does not fit, or holds a NUL, names nobody. */
  if(buf[0] && n < len && !memchr(buf, '\0', n))
    memcpy(out, buf, n + 1);
  explicit_bzero(buf, sizeof(buf));
}

/* Behind ISA: nothing refused; the identity follows what was named. */
static void backend_gate_trust(struct backend_auth_ctx *ctx, const char *value)
{
  struct ntlm_message msg;
  struct ntlm_bytes token = {NULL, 0};
  enum ntlm_scheme scheme;
  char err[160];

  if(!value)
    return;
  if(ntlm_header_parse(value, &scheme, &token, err, sizeof(err)) != NTLM_OK) {
    backend_basic_identity(value, ctx->identity, sizeof(ctx->identity));
    return;
  }
  if(ntlm_peek_type(token.data, token.len) == NTLM_TYPE_AUTHENTICATE &&
     ntlm_decode(token.data, token.len, &msg, err, sizeof(err)) == NTLM_OK) {
    snprintf(ctx->identity, sizeof(ctx->identity), "%s\\%s",
             msg.domain ? msg.domain : "", msg.user ? msg.user : "");
    ntlm_message_free(&msg);
  }
  ntlm_bytes_free(&token);
}

/* Answers a type 1: a fresh challenge on this connection, whatever its
 * state (IIS does not keep a context across a new handshake). Takes
 * *raw. */
static void backend_gate_challenge(const struct backend_auth_server *srv,
                                   struct backend_auth_ctx *ctx, uint64_t conn,
                                   const struct ntlm_message *negotiate,
                                   struct ntlm_bytes *raw,
                                   enum ntlm_scheme scheme,
                                   struct backend_gate_answer *out)
{
  struct ntlm_server_info info;
  struct ntlm_bytes type2 = {NULL, 0};
  char label[128];
  char *header = NULL;

  ctx->identity[0] = '\0';
  ctx->state = BACKEND_AUTH_STATE_UNAUTHENTICATED;
  ctx->handshakes++;
  snprintf(label, sizeof(label),
           "backend/conn/%" PRIu64 "/handshake/%u/challenge", conn,
           ctx->handshakes);
  kb_rng_fill(&srv->rng, label, ctx->challenge, sizeof(ctx->challenge));
  memset(&info, 0, sizeof(info));
  info.netbios_domain = srv->domain;
  info.netbios_computer = srv->computer;
  info.dns_domain = srv->dns_domain;
  ntlm_bytes_free(&ctx->negotiate);
  ntlm_bytes_free(&ctx->type2);
  ctx->negotiate = *raw;
  raw->data = NULL;
  raw->len = 0;
  out->gate = BACKEND_GATE_REFUSE;
  if(ntlm_server_challenge(
         &info, negotiate->flags, ctx->challenge,
         ntlm_filetime_from_unix_ms(kb_clock_now(&srv->clock, NULL)),
         &type2) != NTLM_OK ||
     !(header = ntlm_header_format(scheme, type2.data, type2.len)) ||
     strlen(header) >= sizeof(out->www_authenticate)) {
    snprintf(out->why, sizeof(out->why),
             "Exchange could not build an NTLM challenge; retry");
    goto out;
  }
  snprintf(out->www_authenticate, sizeof(out->www_authenticate), "%s", header);
  snprintf(out->why, sizeof(out->why),
           "NTLM challenge sent; answer it with a type 3");
  ctx->type2 = type2;
  type2.data = NULL;
  ctx->state = BACKEND_AUTH_STATE_CHALLENGED;
  out->gate = BACKEND_GATE_CHALLENGE;
out:
  free(header);
  ntlm_bytes_free(&type2);
}

/* Writes 16 bytes as lower-case hex into out (33 bytes). */
static void backend_hex16(const uint8_t *b, char out[33])
{
  size_t i;

  for(i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* Extended Protection over a verified type 3 (who): returns true when the
 * channel binding passes srv's setting, else false with why saying which
 * binding the client computed against the one Exchange expected. */
static bool backend_gate_bindings(const struct backend_auth_server *srv,
                                  const struct ntlm_identity *who, char *why,
                                  size_t whylen)
{
  static const uint8_t zero[16];
  const char *mode = backend_epa_name(srv->epa);
  bool sent = who->has_channel_bindings &&
              memcmp(who->channel_bindings, zero, sizeof(zero));
  char got[33], want[33];

  if(srv->epa == BACKEND_EPA_NONE)
    return true;
  if(!sent) {
    if(srv->epa == BACKEND_EPA_ALLOW)
      return true;
    snprintf(why, whylen,
             "Extended Protection (%s): the client's NTLM type 3 carries no "
             "channel binding; only a client that binds its login to the TLS "
             "connection (NTLMv2, MsvAvChannelBindings) gets in",
             mode);
    return false;
  }
  backend_hex16(who->channel_bindings, got);
  if(!srv->tls) {
    snprintf(why, whylen,
             "Extended Protection (%s): the client's channel binding %s "
             "names the certificate it saw, but this connection reached "
             "Exchange over plain HTTP: no TLS channel to match (TLS ended "
             "in front of Exchange)",
             mode, got);
    return false;
  }
  if(!memcmp(who->channel_bindings, srv->bindings, 16))
    return true;
  backend_hex16(srv->bindings, want);
  snprintf(why, whylen,
           "Extended Protection (%s): the client's channel binding %s (the "
           "certificate it saw) is not %s (Exchange's own, %s %.23s...): "
           "TLS ended at another certificate in front of Exchange",
           mode, got, want, srv->hash_name, srv->end_point);
  return false;
}

/* Verifies a type 3 against the connection's pending challenge. */
static void backend_gate_verify(const struct backend_auth_server *srv,
                                struct backend_auth_ctx *ctx,
                                const struct ntlm_message *msg,
                                const struct ntlm_bytes *raw,
                                struct backend_gate_answer *out)
{
  struct ntlm_exchange exchange;
  struct backend_lookup lookup;
  struct ntlm_identity who;
  char err[160];

  out->gate = BACKEND_GATE_REFUSE;
  if(ctx->state != BACKEND_AUTH_STATE_CHALLENGED) {
    out->type3_without_challenge = true;
    ctx->state = BACKEND_AUTH_STATE_UNAUTHENTICATED;
    ctx->identity[0] = '\0';
    snprintf(out->why, sizeof(out->why),
             "NTLM type 3 without a challenge on this connection; start "
             "with a type 1");
    return;
  }
  exchange.negotiate = ctx->negotiate.data;
  exchange.negotiate_len = ctx->negotiate.len;
  exchange.challenge = ctx->type2.data;
  exchange.challenge_len = ctx->type2.len;
  exchange.authenticate = raw->data;
  exchange.authenticate_len = raw->len;
  memset(&lookup, 0, sizeof(lookup));
  lookup.srv = srv;
  err[0] = '\0';
  ctx->identity[0] = '\0';
  if(ntlm_server_verify_ex(msg, &exchange, ctx->challenge, backend_lookup_fn,
                           &lookup, &who, err, sizeof(err)) != NTLM_OK ||
     !lookup.found) {
    ctx->state = BACKEND_AUTH_STATE_UNAUTHENTICATED;
    snprintf(out->why, sizeof(out->why), "logon failed: %s",
             err[0] ? err : "the user is not known");
    return;
  }
  if(!backend_gate_bindings(srv, &who, out->why, sizeof(out->why))) {
    ctx->state = BACKEND_AUTH_STATE_UNAUTHENTICATED;
    out->channel_binding_refused = true;
    return;
  }
  snprintf(ctx->identity, sizeof(ctx->identity), "%s\\%s",
           lookup.account.domain, lookup.account.user);
  ctx->state = BACKEND_AUTH_STATE_AUTHENTICATED;
  out->gate = BACKEND_GATE_PASS;
}

/* Accepts the Kerberos ticket in value with the keytab (one leg) and
 * authenticates the connection as its principal's account, as IIS keeps a
 * Kerberos connection authenticated (authPersistNonNTLM, on by default in
 * IIS 7); a refused ticket de-authenticates it. */
static void backend_gate_kerberos(const struct backend_auth_server *srv,
                                  struct backend_auth_ctx *ctx,
                                  const char *value,
                                  struct backend_gate_answer *out)
{
  const struct kb_realm realm = {srv->domain, srv->dns_domain};
  struct kb_account account;
  char principal[300], domain[128], user[128], err[200];

  ctx->state = BACKEND_AUTH_STATE_UNAUTHENTICATED;
  ctx->identity[0] = '\0';
  out->gate = BACKEND_GATE_REFUSE;
  if(kb_gss_accept(srv->krb5_keytab, value, principal, sizeof(principal), err,
                   sizeof(err)) != KB_GSS_OK) {
    snprintf(out->why, sizeof(out->why), "logon failed: %s", err);
    return;
  }
  if(kb_gss_principal_split(principal, domain, sizeof(domain), user,
                            sizeof(user)) ||
     kb_users_resolve(srv->users, &realm, domain, user, &account) !=
         KB_RESOLVE_OK) {
    snprintf(out->why, sizeof(out->why),
             "logon failed: the principal %.200s has no account", principal);
    return;
  }
  snprintf(ctx->identity, sizeof(ctx->identity), "%s\\%s", account.domain,
           account.user);
  ctx->state = BACKEND_AUTH_STATE_AUTHENTICATED;
  out->gate = BACKEND_GATE_PASS;
}

/* IIS with Windows authentication, per connection. */
static void backend_gate_integrated(const struct backend_auth_server *srv,
                                    struct backend_auth_ctx *ctx, uint64_t conn,
                                    const char *value,
                                    struct backend_gate_answer *out)
{
  struct ntlm_bytes token = {NULL, 0};
  struct ntlm_message msg;
  enum ntlm_scheme scheme;
  enum ntlm_type type;
  unsigned char first;
  char err[160];

  memset(&msg, 0, sizeof(msg));
  if(!value) {
    if(ctx->state == BACKEND_AUTH_STATE_AUTHENTICATED) {
      out->gate = BACKEND_GATE_PASS;
      return;
    }
    ctx->state = BACKEND_AUTH_STATE_UNAUTHENTICATED;
    out->gate = BACKEND_GATE_REFUSE;
    snprintf(out->why, sizeof(out->why),
             "this connection is not authenticated; send NTLM credentials");
    return;
  }
  if(srv->krb5_keytab && kb_gss_is_negotiate(value, &first)) {
    backend_gate_kerberos(srv, ctx, value, out);
    return;
  }
  out->gate = BACKEND_GATE_REFUSE;
  err[0] = '\0';
  if(ntlm_header_parse(value, &scheme, &token, err, sizeof(err)) != NTLM_OK ||
     (type = ntlm_peek_type(token.data, token.len)) == NTLM_TYPE_NONE ||
     type == NTLM_TYPE_CHALLENGE ||
     /* A type 3 answering this connection's challenge is read in the
      * character set the challenge agreed (ntlm_challenge_charset). */
     ntlm_decode_as(
         token.data, token.len,
         ctx->state == BACKEND_AUTH_STATE_CHALLENGED
             ? ntlm_challenge_charset(ctx->type2.data, ctx->type2.len)
             : NTLM_CHARSET_FLAGGED,
         &msg, err, sizeof(err)) != NTLM_OK) {
    ctx->state = BACKEND_AUTH_STATE_UNAUTHENTICATED;
    ctx->identity[0] = '\0';
    snprintf(out->why, sizeof(out->why),
             "the Authorization header is not an NTLM type 1 or 3%s%s",
             err[0] ? ": " : "", err);
    goto out;
  }
  if(msg.type == NTLM_TYPE_NEGOTIATE)
    backend_gate_challenge(srv, ctx, conn, &msg, &token, scheme, out);
  else
    backend_gate_verify(srv, ctx, &msg, &token, out);
out:
  ntlm_message_free(&msg);
  ntlm_bytes_free(&token);
}

void backend_auth_gate(const struct backend_auth_server *srv,
                       struct backend_auth_ctx *ctx, uint64_t conn,
                       const char *authorization,
                       struct backend_gate_answer *out)
{
  out->gate = BACKEND_GATE_PASS;
  out->www_authenticate[0] = '\0';
  out->why[0] = '\0';
  out->type3_without_challenge = false;
  if(srv->auth == BACKEND_AUTH_INTEGRATED)
    backend_gate_integrated(srv, ctx, conn, authorization, out);
  else
    backend_gate_trust(ctx, authorization);
}

bool backend_auth_owns(const char *identity, const char *mailbox)
{
  const char *user = strrchr(identity, '\\');
  size_t local = strcspn(mailbox, "@");

  user = user ? user + 1 : identity;
  if(!*user || !local)
    return false;
  /* A UPN identity ("alice@fabrikam.com") compares by its name part. */
  return strcspn(user, "@") == local && !strncasecmp(user, mailbox, local);
}
