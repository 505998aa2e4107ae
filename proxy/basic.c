/*
 * basic.c - the Basic rows of the listener's decision table: credentials
 * on every request, decoded, resolved in the user store and compared in
 * constant time; no connection state, so no KB 942638.
 */
#include "proxy_int.h"

/* Longest "Basic <token>" token accepted, in base64 characters; the
 * credentials it decodes to fit PROXY_BASIC_MAX bytes. */
#define PROXY_BASIC_MAX_TOKEN 4096u
#define PROXY_BASIC_MAX (PROXY_BASIC_MAX_TOKEN / 4u * 3u)

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

/* Basic credentials as a request carried them: the decoded token, and
 * the user name taken out of it and split from its domain. */
struct proxy_basic_creds {
  char *buf;  /* the decoded token (malloc'd), or NULL */
  size_t len; /* the bytes of buf that proxy_basic_wipe wipes */
  char user[256];
  char domain[256]; /* "" unless the name was "DOMAIN\user" */
  const char *pass; /* into buf, not NUL-terminated */
  size_t pass_len;
};

/* Decodes "Authorization: Basic base64(user:password)" (value may be NULL)
 * into *c. Returns PROXY_BASIC_OK, or PROXY_BASIC_MISSING, _SCHEME or
 * _MALFORMED with what was wrong in why. Either way c->buf may hold the
 * decoded token: the caller wipes it with proxy_basic_wipe. */
static enum proxy_basic proxy_basic_decode(const char *value,
                                           struct proxy_basic_creds *c,
                                           char *why, size_t whylen)
{
  struct base64_decode_ctx ctx;
  const char *p = value;
  const char *colon;
  size_t n;
  char scheme[33];
  char *sep;

  memset(c, 0, sizeof(*c));
  if(!p) {
    snprintf(why, whylen, "no Authorization header");
    return PROXY_BASIC_MISSING;
  }
  while(*p == ' ' || *p == '\t')
    p++;
  n = strcspn(p, " \t");
  if(n != 5 || strncasecmp(p, "Basic", 5)) {
    snprintf(why, whylen, "the Authorization header uses the %s scheme",
             proxy_printable(p, n < 32 ? n : 32, scheme, sizeof(scheme)));
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
    return PROXY_BASIC_MALFORMED;
  }
  if(n > PROXY_BASIC_MAX_TOKEN) {
    snprintf(why, whylen,
             "the Basic token is %zu characters long, over the %u-character "
             "limit",
             n, PROXY_BASIC_MAX_TOKEN);
    return PROXY_BASIC_MALFORMED;
  }
  if(n != strcspn(p, " \t\r\n")) {
    snprintf(why, whylen, "the Basic token has a blank inside");
    return PROXY_BASIC_MALFORMED;
  }
  c->buf = malloc(BASE64_DECODE_LENGTH(n) + 1);
  if(!c->buf) {
    snprintf(why, whylen, "out of memory decoding the Basic token");
    return PROXY_BASIC_MALFORMED;
  }
  c->len = BASE64_DECODE_LENGTH(n) + 1;
  base64_decode_init(&ctx);
  if(!base64_decode_update(&ctx, &c->len, (uint8_t *)c->buf, n, p) ||
     !base64_decode_final(&ctx)) {
    snprintf(why, whylen, "the Basic token is not valid base64");
    return PROXY_BASIC_MALFORMED;
  }
  colon = memchr(c->buf, ':', c->len);
  if(!colon) {
    snprintf(why, whylen,
             "the Basic credentials have no ':' between user and password");
    return PROXY_BASIC_MALFORMED;
  }
  n = (size_t)(colon - c->buf);
  if(!n || n >= sizeof(c->user) || memchr(c->buf, '\0', n)) {
    snprintf(why, whylen,
             "the Basic credentials carry an empty, overlong or binary user "
             "name");
    return PROXY_BASIC_MALFORMED;
  }
  memcpy(c->user, c->buf, n);
  c->user[n] = '\0';
  c->pass = colon + 1;
  c->pass_len = c->len - n - 1;

  /* "DOMAIN\user" names the domain; "user" and the UPN "user@dnsdomain"
   * leave it to the resolver, as NTLM's empty domain does. */
  if((sep = strchr(c->user, '\\'))) {
    *sep = '\0';
    snprintf(c->domain, sizeof(c->domain), "%s", c->user);
    memmove(c->user, sep + 1, strlen(sep + 1) + 1);
    if(!c->user[0] || !c->domain[0]) {
      snprintf(why, whylen,
               "the Basic user name has an empty user or domain part");
      return PROXY_BASIC_MALFORMED;
    }
  }
  return PROXY_BASIC_OK;
}

/* Wipes and frees the decoded token of c. Accepts one that holds none. */
static void proxy_basic_wipe(struct proxy_basic_creds *c)
{
  if(c->buf) {
    explicit_bzero(c->buf, c->len);
    free(c->buf);
    c->buf = NULL;
  }
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
  const struct kb_realm realm = {proxy->domain, proxy->dns_domain};
  struct proxy_basic_creds c;
  struct kb_account account = {NULL, NULL, NULL};
  enum kb_resolve resolved;
  const char *stored = NULL;
  char shown[520];
  bool match;
  enum proxy_basic result;

  who[0] = '\0';
  result = proxy_basic_decode(value, &c, why, whylen);
  if(result != PROXY_BASIC_OK)
    goto out;
  /* Resolved as the listener's domain controller would (kb_users). */
  resolved = kb_users_resolve(proxy->users, &realm, c.domain, c.user, &account);
  if(resolved == KB_RESOLVE_OK) {
    stored = account.password;
    snprintf(c.domain, sizeof(c.domain), "%s", account.domain);
    snprintf(c.user, sizeof(c.user), "%s", account.user);
  }
  else if(!c.domain[0])
    snprintf(c.domain, sizeof(c.domain), "%s", proxy->domain);
  snprintf(shown, sizeof(shown), "%s\\%s", c.domain, c.user);
  proxy_printable(shown, strlen(shown), who, wholen);
  /* An unknown user costs the same comparison as a known one. */
  match = proxy_secret_eq(stored ? stored : "", stored ? strlen(stored) : 0,
                          c.pass, c.pass_len);
  if(!stored) {
    snprintf(why, whylen, "no user %s in the user store (%s)", who,
             kb_resolve_name(resolved));
    result = PROXY_BASIC_UNKNOWN;
  }
  else if(!match) {
    snprintf(why, whylen, "wrong password for %s", who);
    result = PROXY_BASIC_REFUSED;
  }
  else
    result = PROXY_BASIC_OK;
out:
  proxy_basic_wipe(&c);
  return result;
}

/* The Basic rows of the decision table: every request carries its own
 * credentials, and the connection remembers nothing. value is the
 * request's Authorization header or NULL. Valid: forwarded, Authorization
 * included; anything else: 401 "WWW-Authenticate: Basic realm=..." and
 * nothing forwarded. Fills ans. Never fails. */
void proxy__decide_basic(struct proxy__conn *conn, struct MHD_Connection *mc,
                         const char *method, const char *value,
                         struct proxy__answer *ans)
{
  struct proxy *proxy = conn->proxy;
  const char *const offer[] = {proxy->basic_offer, NULL};
  enum proxy_basic verdict;
  char who[300];
  char why[400];
  char label[80];

  why[0] = '\0';
  proxy__conn_label(conn, label, sizeof(label));
  verdict = proxy_check_basic(proxy, value, who, sizeof(who), why, sizeof(why));
  if(verdict == PROXY_BASIC_OK) {
    char what[128];
    ans->delta.basic_ok = 1;
    proxy__describe_forward(conn, method, what, sizeof(what));
    proxy__note(conn, KB_NOTE_BASIC_OK,
                "%s: Basic credentials of %s verified; %s", label, who, what);
    proxy__forward(conn, mc, method, ans);
    return;
  }
  /* A request without credentials is asked for them, like NTLM's first
   * 401; only credentials that were presented and refused count as a
   * failed login. */
  if(value)
    ans->delta.basic_failed = 1;
  proxy__note(conn, KB_NOTE_BASIC_REFUSED,
              "%s: Basic authentication failed (%s): 401 "
              "asking for Basic, nothing forwarded",
              label, why);
  proxy__answer_text(conn, ans, MHD_HTTP_UNAUTHORIZED, offer, KB_AUTH_OTHER,
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
