/*
 * targets.c - the fuzz targets' bodies; see targets.h. Each target feeds
 * the bytes to a parser exactly as the component does with what a peer
 * sent, then checks properties of the result that must hold for any input.
 */
#include "targets.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "backend/gate.h"
#include "backend/soap.h"
#include "common/kb_auth.h"
#include "common/kb_env.h"
#include "common/kb_http.h"
#include "common/kb_users.h"
#include "ntlm/ntlm.h"
#include "proxy/auth.h"
#include "sim/scenario.h"

/* The password every user has in fuzz_ntlm's user store, and the one user
 * it does not know (so the unknown-user path is reachable too). */
#define FUZZ_PASSWORD "Passw0rd!"
#define FUZZ_UNKNOWN_USER "nobody"

/* A fixed server challenge and client challenge, as the proxy and client
 * would have drawn them. */
static const uint8_t fuzz_server_challenge[8] = {0x01, 0x23, 0x45, 0x67,
                                                 0x89, 0xab, 0xcd, 0xef};
static const uint8_t fuzz_client_challenge[8] = {0xaa, 0xaa, 0xaa, 0xaa,
                                                 0xaa, 0xaa, 0xaa, 0xaa};

/* Reports a broken property and aborts: the fuzzer keeps the input as a
 * crash, the replay test fails on it. */
#define fuzz_check(cond, ...)                                                  \
  do {                                                                         \
    if(!(cond)) {                                                              \
      fprintf(stderr, "fuzz property failed at %s:%d: %s: ", __FILE__,         \
              __LINE__, #cond);                                                \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while(0)

void fuzz_init(void)
{
  xmlInitParser();
}

/* Returns a malloc'd NUL-terminated copy of the bytes before the first NUL
 * (what a C string header value would hold), or NULL when out of memory. */
static char *fuzz_cstring(const uint8_t *data, size_t size)
{
  const uint8_t *nul = memchr(data, 0, size);
  size_t len = nul ? (size_t)(nul - data) : size;
  char *s = malloc(len + 1);

  if(s) {
    memcpy(s, data, len);
    s[len] = '\0';
  }
  return s;
}

/* The proxy's password lookup, for a store where everyone but
 * FUZZ_UNKNOWN_USER has FUZZ_PASSWORD. */
static const char *fuzz_lookup(void *ctx, const char *domain, const char *user)
{
  (void)ctx;
  (void)domain;
  return strcmp(user, FUZZ_UNKNOWN_USER) ? FUZZ_PASSWORD : NULL;
}

/* Returns true when two optional strings are equal (both NULL counts). */
static bool fuzz_str_eq(const char *a, const char *b)
{
  return (!a && !b) || (a && b && !strcmp(a, b));
}

/* Returns true when two byte fields are equal. */
static bool fuzz_bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b,
                          size_t blen)
{
  return alen == blen && (!alen || !memcmp(a, b, alen));
}

/* Encodes a decoded message back and decodes the result: whatever
 * ntlm_decode (decode.c) accepted and ntlm_encode (encode.c) could
 * re-encode must come back with the same fields. */
static void fuzz_ntlm_round_trip(const struct ntlm_message *msg)
{
  struct ntlm_bytes enc = {NULL, 0};
  struct ntlm_message again;
  char err[256];
  enum ntlm_result r;

  if(ntlm_encode(msg, &enc, err, sizeof(err)) != NTLM_OK) {
    return; /* e.g. too big once laid out, or OEM cannot carry a name */
  }
  r = ntlm_decode(enc.data, enc.len, &again, err, sizeof(err));
  fuzz_check(r == NTLM_OK, "re-encoded type %d does not decode: %s",
             (int)msg->type, err);
  fuzz_check(again.type == msg->type, "type %d became %d", (int)msg->type,
             (int)again.type);
  fuzz_check(again.flags == msg->flags, "flags changed");
  fuzz_check(fuzz_str_eq(again.domain, msg->domain), "domain changed");
  fuzz_check(fuzz_str_eq(again.user, msg->user), "user changed");
  fuzz_check(fuzz_str_eq(again.workstation, msg->workstation),
             "workstation changed");
  fuzz_check(fuzz_str_eq(again.target_name, msg->target_name),
             "target name changed");
  fuzz_check(fuzz_bytes_eq(again.target_info, again.target_info_len,
                           msg->target_info, msg->target_info_len),
             "target info changed");
  fuzz_check(fuzz_bytes_eq(again.lm_response, again.lm_response_len,
                           msg->lm_response, msg->lm_response_len),
             "LM response changed");
  fuzz_check(fuzz_bytes_eq(again.nt_response, again.nt_response_len,
                           msg->nt_response, msg->nt_response_len),
             "NT response changed");
  ntlm_message_free(&again);
  ntlm_bytes_free(&enc);
}

/* Answers a decoded CHALLENGE as the client would, with the response kind
 * picked by pick, and checks that the server side accepts the answer
 * against that very challenge: whatever a server sent, our client never
 * produces a proof our server refuses. */
static void fuzz_ntlm_answer(const struct ntlm_message *challenge,
                             unsigned pick)
{
  static const enum ntlm_response_kind kinds[] = {
      NTLM_RESPONSE_V2, NTLM_RESPONSE_V1, NTLM_RESPONSE_V1_ESS};
  struct ntlm_client_creds creds = {"FABRIKAM", "alice", FUZZ_PASSWORD,
                                    "COMMUNICATOR", kinds[pick % 3]};
  struct ntlm_bytes t3 = {NULL, 0};
  struct ntlm_message auth;
  struct ntlm_identity who;
  char err[256];
  enum ntlm_result r;

  if(ntlm_client_authenticate(&creds, challenge, fuzz_client_challenge, 0, &t3,
                              err, sizeof(err)) != NTLM_OK) {
    return; /* e.g. the answer would be over NTLM_MAX_MESSAGE */
  }
  r = ntlm_decode(t3.data, t3.len, &auth, err, sizeof(err));
  fuzz_check(r == NTLM_OK, "our own type 3 does not decode: %s", err);
  r = ntlm_server_verify(&auth, challenge->server_challenge, fuzz_lookup, NULL,
                         &who, err, sizeof(err));
  fuzz_check(r == NTLM_OK, "our own %s type 3 is refused: %s",
             ntlm_response_kind_name(creds.kind), err);
  fuzz_check(!strcmp(who.user, "alice") && !strcmp(who.domain, "FABRIKAM"),
             "verified as %s\\%s", who.domain, who.user);
  ntlm_message_free(&auth);
  ntlm_bytes_free(&t3);
}

int fuzz_ntlm(const uint8_t *data, size_t size)
{
  struct ntlm_message msg;
  struct ntlm_identity who;
  char err[256];
  char text[1024];
  char tiny[8];
  enum ntlm_type peeked = ntlm_peek_type(data, size);
  enum ntlm_result r = ntlm_decode(data, size, &msg, err, sizeof(err));

  if(r != NTLM_OK) {
    fuzz_check(strlen(err) > 0, "error %d without a reason", (int)r);
    return 0;
  }
  fuzz_check(peeked == msg.type, "peek says %d, decode says %d", (int)peeked,
             (int)msg.type);
  ntlm_describe(&msg, text, sizeof(text));
  fuzz_check(!strncmp(text, "NTLM type ", 10), "describe wrote \"%s\"", text);
  ntlm_describe(&msg, tiny, sizeof(tiny));
  fuzz_check(strlen(tiny) < sizeof(tiny), "describe overran");
  fuzz_ntlm_round_trip(&msg);

  if(msg.type == NTLM_TYPE_AUTHENTICATE) {
    /* The proxy's path: any verdict is fine, a crash or a verdict for
     * someone else is not. */
    r = ntlm_server_verify(&msg, fuzz_server_challenge, fuzz_lookup, NULL, &who,
                           err, sizeof(err));
    if(r == NTLM_OK) {
      fuzz_check(msg.user && !strncmp(who.user, msg.user, sizeof(who.user) - 1),
                 "verified as %s", who.user);
    }
    else {
      fuzz_check(strlen(err) > 0, "verify error %d without a reason", (int)r);
      /* The reason names domain\user, never the password: it may hold
       * the password's text only when the client put it in those. */
      fuzz_check(!strstr(err, FUZZ_PASSWORD) ||
                     (msg.domain && strstr(msg.domain, FUZZ_PASSWORD)) ||
                     (msg.user && strstr(msg.user, FUZZ_PASSWORD)),
                 "the password is in \"%s\"", err);
    }
  }
  else if(msg.type == NTLM_TYPE_CHALLENGE) {
    fuzz_ntlm_answer(&msg, size ? data[size - 1] : 0);
  }
  ntlm_message_free(&msg);
  ntlm_message_free(&msg); /* documented as safe on a freed message */
  return 0;
}

int fuzz_ntlm_header(const uint8_t *data, size_t size)
{
  char *value = fuzz_cstring(data, size);
  struct ntlm_bytes token = {NULL, 0};
  struct ntlm_bytes again = {NULL, 0};
  enum ntlm_scheme scheme = NTLM_SCHEME_NTLM;
  enum ntlm_scheme scheme2 = NTLM_SCHEME_NTLM;
  enum kb_auth backend_view;
  struct ntlm_header_info peek;
  char err[256];
  char *formatted = NULL;
  enum ntlm_result r;

  if(!value) {
    return 0;
  }
  backend_view = kb_auth_classify(value, strlen(value));
  fuzz_check(backend_view != KB_AUTH_NONE, "a present header classified as "
                                           "absent");
  ntlm_header_peek(value, strlen(value), &peek);
  r = ntlm_header_parse(value, &scheme, &token, err, sizeof(err));
  /* The peek and the full parse are one grammar: they agree on whether
   * the value is NTLM or Negotiate and whether its token is base64. */
  fuzz_check((r == NTLM_ERR_HEADER) == (peek.kind == NTLM_TOKEN_OTHER_SCHEME),
             "parse says %d, peek says kind %d", (int)r, (int)peek.kind);
  fuzz_check((r == NTLM_ERR_BASE64) == (peek.kind == NTLM_TOKEN_BAD_BASE64),
             "parse says %d, peek says kind %d", (int)r, (int)peek.kind);
  fuzz_check(r != NTLM_OK || peek.kind != NTLM_TOKEN_NTLMSSP ||
                 peek.type == ntlm_peek_type(token.data, token.len),
             "peek says type %d, the token is type %d", (int)peek.type,
             (int)ntlm_peek_type(token.data, token.len));
  if(r == NTLM_OK) {
    fuzz_check(token.len <= NTLM_MAX_MESSAGE, "token of %zu bytes accepted",
               token.len);
    if(token.len) {
      fuzz_ntlm(token.data, token.len);
      /* The classification every component uses reads only the
       * signature and type: it must agree with the full decode. */
      if(ntlm_peek_type(token.data, token.len) != NTLM_TYPE_NONE) {
        fuzz_check((int)backend_view ==
                       (int)ntlm_peek_type(token.data, token.len),
                   "kb_auth_classify says %s for a type %d token",
                   kb_auth_name(backend_view),
                   (int)ntlm_peek_type(token.data, token.len));
      }
      formatted = ntlm_header_format(scheme, token.data, token.len);
      fuzz_check(formatted != NULL, "format failed");
      r = ntlm_header_parse(formatted, &scheme2, &again, err, sizeof(err));
      fuzz_check(
          r == NTLM_OK && scheme2 == scheme &&
              fuzz_bytes_eq(again.data, again.len, token.data, token.len),
          "\"%s\" does not parse back to its token", formatted);
    }
  }
  else {
    fuzz_check(strlen(err) > 0, "error %d without a reason", (int)r);
  }
  free(formatted);
  ntlm_bytes_free(&again);
  ntlm_bytes_free(&token);
  free(value);
  return 0;
}

/* Checks that a reply body is one well-formed XML document: the backend
 * writes with xmlTextWriter and escapes everything it copies from the
 * request, so nothing a client sends may break its answers. */
static void fuzz_well_formed(const struct soap_reply *reply)
{
  xmlDocPtr doc;

  fuzz_check(reply->body.len > 0, "empty reply body");
  doc =
      xmlReadMemory(reply->body.data, (int)reply->body.len, NULL, NULL,
                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  fuzz_check(doc != NULL, "reply is not well-formed XML: %.300s",
             reply->body.data);
  xmlFreeDoc(doc);
}

/* A clock that says what the support case's Date says. */
static int64_t fuzz_now(void *ctx, const char *who)
{
  (void)ctx;
  (void)who;
  return INT64_C(1237307184000);
}

int fuzz_ews(const uint8_t *data, size_t size)
{
  struct soap_server srv = {NULL, {fuzz_now, NULL, NULL}};
  struct soap_reply reply;

  srv.ews_url = "https://autodiscover.fabrikam.com/EWS/Exchange.asmx";
  soap_reply_init(&reply, NULL);
  if(soap_ews(&srv, (const char *)data, size, &reply) == SOAP_OK) {
    fuzz_check(reply.status == SOAP_HTTP_OK ||
                   reply.status == SOAP_HTTP_SERVER_ERROR,
               "status %u", reply.status);
    fuzz_check(reply.status == SOAP_HTTP_OK ||
                   reply.outcome == SOAP_OUT_SOAP_FAULT,
               "a 500 that is not a fault");
    fuzz_well_formed(&reply);
  }
  soap_reply_free(&reply);
  return 0;
}

int fuzz_autodiscover(const uint8_t *data, size_t size)
{
  struct soap_server srv = {NULL, {fuzz_now, NULL, NULL}};
  struct soap_reply reply;

  srv.ews_url = "https://autodiscover.fabrikam.com/EWS/Exchange.asmx";
  soap_reply_init(&reply, NULL);
  if(soap_autodiscover(&srv, (const char *)data, size, &reply) == SOAP_OK) {
    fuzz_check(reply.status == SOAP_HTTP_OK, "status %u", reply.status);
    fuzz_check(reply.outcome == SOAP_OUT_AUTODISCOVER ||
                   reply.outcome == SOAP_OUT_AUTODISCOVER_ERROR,
               "outcome %d", (int)reply.outcome);
    fuzz_well_formed(&reply);
  }
  soap_reply_free(&reply);
  return 0;
}

int fuzz_users(const uint8_t *data, size_t size)
{
  char *spec = fuzz_cstring(data, size);
  struct kb_users *users = kb_users_new();
  char err[256];

  if(spec && users) {
    err[0] = '\0';
    if(kb_users_add_spec(users, spec, err, sizeof(err)) == 0) {
      /* "DOMAIN\user:password": the password follows the first ':' after
       * the backslash; it must be stored as given. */
      const char *slash = strchr(spec, '\\');
      const char *colon = slash ? strchr(slash, ':') : NULL;
      char domain[256];
      char user[256];

      fuzz_check(kb_users_count(users) == 1, "accepted but not stored");
      if(slash && colon && (size_t)(slash - spec) < sizeof(domain) &&
         (size_t)(colon - slash) < sizeof(user)) {
        snprintf(domain, sizeof(domain), "%.*s", (int)(slash - spec), spec);
        snprintf(user, sizeof(user), "%.*s", (int)(colon - slash - 1),
                 slash + 1);
        fuzz_check(kb_users_password(users, domain, user) != NULL,
                   "\"%s\" accepted, %s\\%s not found", spec, domain, user);
      }
      fuzz_check(kb_users_add_spec(users, spec, err, sizeof(err)) == -1,
                 "the same user added twice");
    }
    else {
      fuzz_check(strlen(err) > 0, "refused without a reason");
    }
  }
  kb_users_free(users);
  free(spec);
  return 0;
}

/* Returns true when a fixed-size text field is NUL-terminated. */
#define fuzz_terminated(field) (memchr((field), 0, sizeof(field)) != NULL)

int fuzz_scenario(const uint8_t *data, size_t size)
{
  struct scenario *sc = malloc(sizeof(*sc));
  char err[512];
  FILE *f;
  size_t i;

  /* fmemopen refuses an empty buffer; an empty file is the defaults. */
  f = size ? fmemopen((void *)(uintptr_t)data, size, "r") : NULL;
  if(!sc || !f) {
    if(f)
      fclose(f);
    free(sc);
    return 0;
  }
  err[0] = '\0';
  if(scenario_load_stream(f, "fuzz.ini", sc, err, sizeof(err)) == 0) {
    fuzz_check(sc->nmembers >= 1 && sc->nmembers <= SCENARIO_MAX_MEMBERS,
               "%zu members", sc->nmembers);
    fuzz_check(sc->nusers >= 1 && sc->nusers <= SCENARIO_MAX_USERS, "%zu users",
               sc->nusers);
    fuzz_check(sc->clients >= 1 && sc->clients <= SCENARIO_MAX_CLIENTS,
               "%u clients", sc->clients);
    fuzz_check(sc->posts <= SCENARIO_MAX_POSTS, "%u posts", sc->posts);
    fuzz_check(sc->think_min_ms >= 0 && sc->think_min_ms <= sc->think_max_ms,
               "think %lld..%lld ms", (long long)sc->think_min_ms,
               (long long)sc->think_max_ms);
    fuzz_check(fuzz_terminated(sc->name) && fuzz_terminated(sc->description) &&
                   fuzz_terminated(sc->client_user) &&
                   fuzz_terminated(sc->client_password),
               "an unterminated text field");
    for(i = 0; i < sc->nmembers; i++)
      fuzz_check(fuzz_terminated(sc->members[i].name) && sc->members[i].name[0],
                 "member %zu has no name", i);
    for(i = 0; i < sc->nusers; i++)
      fuzz_check(fuzz_terminated(sc->user_specs[i]) &&
                     strchr(sc->user_specs[i], '\\') &&
                     strchr(sc->user_specs[i], ':'),
                 "user %zu is \"%.60s\"", i, sc->user_specs[i]);
  }
  else {
    fuzz_check(!strncmp(err, "fuzz.ini", 8), "refused with \"%s\"", err);
    fuzz_check(!strchr(err, '\n'), "a reason of more than one line: %s", err);
  }
  fclose(f);
  free(sc);
  return 0;
}

int fuzz_decide(const uint8_t *data, size_t size)
{
  enum proxy_auth_state state = PROXY_AUTH_UNAUTHENTICATED;
  size_t i;

  for(i = 0; i < size; i++) {
    struct proxy_auth_input in;
    struct proxy_auth_decision d;
    bool body_less_forward, body_on_type1;

    in.state = state;
    in.policy =
        (data[i] & 1) ? PROXY_POLICY_PER_REQUEST : PROXY_POLICY_PER_CONNECTION;
    in.token = (enum proxy_token)((data[i] >> 1) & 7);
    in.verified = (data[i] >> 4) & 1;
    in.has_body = (data[i] >> 5) & 1;
    /* A listener with a keytab on odd positions: both tables meet. */
    in.kerberos = i & 1;
    /* The two defects that change rows (proxy/defects.c). */
    body_less_forward = (data[i] >> 6) & 1;
    body_on_type1 = (data[i] >> 7) & 1;
    in.defects =
        (body_less_forward ? PROXY_DEFECT(KB_DEFECT_BODY_LESS_FORWARD) : 0) |
        (body_on_type1 ? PROXY_DEFECT(KB_DEFECT_BODY_ON_TYPE1) : 0);
    proxy_auth_decide(&in, &d);
    fuzz_check(d.act <= PROXY_ACT_CHALLENGE, "action %d", (int)d.act);
    fuzz_check(d.next <= PROXY_AUTH_AUTHENTICATED, "state %d", (int)d.next);
    fuzz_check(d.note != KB_NOTE_NONE && d.note < KB_NOTE_COUNT, "note %d",
               (int)d.note);
    fuzz_check(d.act != PROXY_ACT_FORWARD ||
                   d.next == PROXY_AUTH_AUTHENTICATED ||
                   (body_on_type1 && in.has_body &&
                    in.token == PROXY_TOKEN_NEGOTIATE && d.next == state),
               "forwarded from %s", proxy_auth_state_name(state));
    fuzz_check(
        !d.reauth_skipped ||
            (state == PROXY_AUTH_AUTHENTICATED &&
             (in.policy == PROXY_POLICY_PER_CONNECTION || body_less_forward) &&
             in.token == PROXY_TOKEN_NEGOTIATE),
        "re-authentication skipped from %s", proxy_auth_state_name(state));
    fuzz_check(!d.auth_ok || (state == PROXY_AUTH_CHALLENGED && in.verified),
               "authenticated without a verified type 3");
    fuzz_check(!d.kerberos_ok || (in.kerberos && in.verified &&
                                  in.token == PROXY_TOKEN_KERBEROS),
               "authenticated without a verified Kerberos ticket");
    state = d.next;
  }
  return 0;
}

/* A raw request head: "METHOD TARGET VERSION" then "name: value" lines,
 * split on CRLF, judged by kb_http_check. Invariants: a verdict in range
 * with a rule; a valid head's path is the target itself (origin form) or
 * a suffix of it starting with '/'; what is accepted has no control
 * character in any value and a token for every name. */
int fuzz_http(const uint8_t *data, size_t size)
{
  struct kb_http_field fields[64];
  struct kb_http_head head;
  char *copy = malloc(size + 1);
  char *line, *next, *target = NULL, *version = NULL;
  size_t n = 0, i;
  enum kb_http_verdict v;

  if(!copy)
    return 0;
  memcpy(copy, data, size);
  copy[size] = '\0';
  for(line = copy; line && n < 64; line = next) {
    char *eol = strstr(line, "\r\n");
    next = eol ? eol + 2 : NULL;
    if(eol)
      *eol = '\0';
    if(!target) {
      char *sp = strchr(line, ' ');
      target = sp ? sp + 1 : line + strlen(line);
      if(sp)
        *sp = '\0';
      sp = strchr(target, ' ');
      version = sp ? sp + 1 : "HTTP/1.1";
      if(sp)
        *sp = '\0';
      continue;
    }
    if(!*line)
      break;
    {
      char *colon = strchr(line, ':');
      char *value = colon ? colon + 1 : line + strlen(line);
      size_t vlen;
      fields[n].name = line;
      fields[n].name_len = colon ? (size_t)(colon - line) : strlen(line);
      while(*value == ' ' || *value == '\t')
        value++;
      vlen = strlen(value);
      while(vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
        vlen--;
      fields[n].value = value;
      fields[n].value_len = vlen;
      n++;
    }
  }
  v = kb_http_check(version, target ? target : "", fields, n, &head);
  fuzz_check((unsigned)v < KB_HTTP_VERDICT_COUNT, "verdict %d", (int)v);
  fuzz_check(kb_http_rule(v)->verdict == v, "rule of %d", (int)v);
  fuzz_check((v == KB_HTTP_OK) == (kb_http_rule(v)->status == 0),
             "status of %d", (int)v);
  if(v == KB_HTTP_OK) {
    fuzz_check(head.path && head.path[0] == '/', "path");
    fuzz_check(target[0] != '/' || head.path == target, "origin form");
    for(i = 0; i < n; i++) {
      size_t k;
      fuzz_check(fields[i].name_len > 0, "empty name accepted");
      for(k = 0; k < fields[i].name_len; k++)
        fuzz_check(fields[i].name[k] > ' ' && fields[i].name[k] != ':',
                   "name byte 0x%02x accepted",
                   (unsigned char)fields[i].name[k]);
      for(k = 0; k < fields[i].value_len; k++) {
        unsigned char c = (unsigned char)fields[i].value[k];
        fuzz_check(c >= 0x20 || c == '\t', "value byte 0x%02x accepted", c);
      }
    }
  }
  free(copy);
  return 0;
}

/* The gate's challenges: fixed bytes, so a run repeats. */
static void fuzz_gate_fill(void *ctx, const char *label, uint8_t *buf,
                           size_t len)
{
  (void)ctx;
  (void)label;
  memset(buf, 0x5a, len);
}

int fuzz_gate(const uint8_t *data, size_t size)
{
  static struct kb_users *users;
  struct backend_auth_server integrated, trusting;
  struct backend_auth_ctx ictx, tctx;
  struct backend_gate_answer ans;
  char line[8192];
  size_t at = 0;
  char err[128];

  if(!users) {
    users = kb_users_new();
    if(!users ||
       kb_users_add_spec(users, "FABRIKAM\\alice:Passw0rd!", err, sizeof(err)))
      abort();
  }
  memset(&integrated, 0, sizeof(integrated));
  integrated.auth = BACKEND_AUTH_INTEGRATED;
  integrated.users = users;
  integrated.domain = "FABRIKAM";
  integrated.dns_domain = "fabrikam.com";
  integrated.computer = "EXCH01";
  integrated.rng.fill = fuzz_gate_fill;
  trusting = integrated;
  trusting.auth = BACKEND_AUTH_NONE;
  memset(&ictx, 0, sizeof(ictx));
  memset(&tctx, 0, sizeof(tctx));
  while(at < size) {
    const uint8_t *nl = memchr(data + at, '\n', size - at);
    size_t n = nl ? (size_t)(nl - (data + at)) : size - at;
    size_t keep = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
    const char *value = line;

    memcpy(line, data + at, keep);
    line[keep] = '\0';
    at += n + 1;
    /* An empty line: the request has no Authorization header. */
    if(!line[0])
      value = NULL;
    backend_auth_gate(&integrated, &ictx, 1, value, &ans);
    if(ans.gate == BACKEND_GATE_PASS &&
       (ictx.state != BACKEND_AUTH_STATE_AUTHENTICATED || !ictx.identity[0]))
      abort();
    if(ans.gate == BACKEND_GATE_CHALLENGE &&
       (ictx.state != BACKEND_AUTH_STATE_CHALLENGED ||
        (strncmp(ans.www_authenticate, "NTLM ", 5) &&
         strncmp(ans.www_authenticate, "Negotiate ", 10))))
      abort();
    if(ans.gate != BACKEND_GATE_PASS && !ans.why[0])
      abort();
    backend_auth_gate(&trusting, &tctx, 1, value, &ans);
    if(ans.gate != BACKEND_GATE_PASS)
      abort();
  }
  backend_auth_ctx_free(&ictx);
  backend_auth_ctx_free(&tctx);
  return 0;
}

const struct fuzz_target fuzz_targets[] = {
    {"ntlm", fuzz_ntlm},     {"ntlm_header", fuzz_ntlm_header},
    {"ews", fuzz_ews},       {"autodiscover", fuzz_autodiscover},
    {"users", fuzz_users},   {"scenario", fuzz_scenario},
    {"decide", fuzz_decide}, {"http", fuzz_http},
    {"gate", fuzz_gate},     {NULL, NULL}};
