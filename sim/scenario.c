/*
 * scenario.c - INI scenario files, parsed by inih.
 *
 * inih reads the file through a line reader of ours, which counts lines
 * and spots section headers, so every error can name its line, including
 * the checks made once the whole file has been read.
 */
#include "sim/scenario.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kb_range.h"
#include "common/kb_users.h"

const char *scenario_patch_name(enum scenario_patch patch)
{
  switch(patch) {
  case SCENARIO_PATCH_RTM:
    return "rtm";
  case SCENARIO_PATCH_RTM_HOTFIX:
    return "rtm+hotfix";
  case SCENARIO_PATCH_SP1:
    return "sp1";
  }
  return "?";
}

enum proxy_policy scenario_effective_policy(enum scenario_patch patch,
                                            bool script)
{
  return script && patch != SCENARIO_PATCH_RTM ? PROXY_POLICY_PER_REQUEST
                                               : PROXY_POLICY_PER_CONNECTION;
}

const char *scenario_tls_name(enum scenario_tls tls)
{
  return tls == SCENARIO_TLS_BRIDGE    ? "bridge"
         : tls == SCENARIO_TLS_OFFLOAD ? "offload"
                                       : "none";
}

int scenario_tls_parse(const char *name, enum scenario_tls *out)
{
  if(!strcmp(name, "none"))
    *out = SCENARIO_TLS_NONE;
  else if(!strcmp(name, "offload"))
    *out = SCENARIO_TLS_OFFLOAD;
  else if(!strcmp(name, "bridge"))
    *out = SCENARIO_TLS_BRIDGE;
  else
    return -1;
  return 0;
}

void scenario_defaults(struct scenario *sc)
{
  memset(sc, 0, sizeof(*sc));
  snprintf(sc->name, sizeof(sc->name), "unnamed");
  sc->seed = 1;
  sc->auth = PROXY_AUTH_INTEGRATED;
  sc->balancer = BALANCER_ROUND_ROBIN;
  sc->clients = 1;
  sc->kind = CLIENT_KIND_COMMUNICATOR;
  sc->posts = 2;
  sc->ntlm = NTLM_RESPONSE_V2;
  sc->expect.outcome = -1;
  sc->expect.rate_lo = sc->expect.rate_hi = -1;
  sc->expect.empty_posts = -1;
  sc->expect.users_with_error = -1;
  sc->expect.backend_requests = -1;
  sc->expect.auth_failed = -1;
}

int scenario_parse_duration(const char *text, int64_t *ms)
{
  char *end = NULL;
  double v;
  double scale = 1000;

  if(!text || !*text)
    return -1;
  errno = 0;
  v = strtod(text, &end);
  if(errno || end == text || v < 0 || v > 1e9)
    return -1;
  if(!strcmp(end, "") || !strcmp(end, "s"))
    scale = 1000;
  else if(!strcmp(end, "ms"))
    scale = 1;
  else if(!strcmp(end, "m"))
    scale = 60000;
  else if(!strcmp(end, "h"))
    scale = 3600000;
  else
    return -1;
  *ms = (int64_t)(v * scale + 0.5);
  return 0;
}

/* ---- parsing ---------------------------------------------------------- */

/* Keys given so far outside [users]: one a section and key can have
 * (members have two each, the other sections fewer than 32 together). */
#define SCENARIO_MAX_KEYS (SCENARIO_MAX_MEMBERS * 2 + 32)

/* A key already given: "section\nkey" and its line. */
struct scenario_key {
  char name[SCENARIO_TEXT + 96];
  unsigned line;
};

struct scenario_parse {
  struct scenario *sc;
  FILE *file;
  unsigned line;       /* the line inih is handling */
  unsigned error_line; /* 0 until the first error */
  char error[384];
  unsigned client_user_line;
  unsigned connection_sharing_line;  /* 0 when the key is not given */
  unsigned auth_line;                /* [listener] auth, 0: not given */
  unsigned defect_line;              /* [listener] defect, 0: not given */
  unsigned bridge_certificate_line;  /* likewise */
  unsigned extended_protection_line; /* likewise */
  unsigned exchange_auth_line;       /* likewise */
  unsigned users_line;
  /* [kerberos] internal as written, judged once [users] is whole. */
  char internal[SCENARIO_TEXT * 4];
  unsigned internal_line;
  bool has_members; /* a [member] section was seen */
  /* A key line was read since the last section header. inih then reads
   * an indented line as more of that key's value (INI_ALLOW_MULTILINE),
   * which the reader refuses: it would hide a key, or a section. */
  bool after_key;
  /* Every key given so far, so that one given twice is refused instead of
   * the second silently replacing the first. */
  struct scenario_key keys[SCENARIO_MAX_KEYS];
  size_t nkeys;
  /* [users] as read, so that a user given twice (in any case, as a DC
   * compares names) is refused at its line. */
  struct kb_users *users;
};

static void scenario__fail(struct scenario_parse *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void scenario__fail(struct scenario_parse *p, const char *fmt, ...)
{
  va_list ap;

  if(p->error_line)
    return; /* the first error is the one reported */
  p->error_line = p->line ? p->line : 1;
  va_start(ap, fmt);
  vsnprintf(p->error, sizeof(p->error), fmt, ap);
  va_end(ap);
}

static int scenario__uint(const char *v, unsigned min, unsigned max,
                          unsigned *out)
{
  char *end = NULL;
  unsigned long n;

  if(!*v || *v == '-' || *v == '+')
    return -1;
  errno = 0;
  n = strtoul(v, &end, 10);
  if(errno || *end || n < min || n > max)
    return -1;
  *out = (unsigned)n;
  return 0;
}

static int scenario__bool(const char *v, bool *out)
{
  if(!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1"))
    *out = true;
  else if(!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0"))
    *out = false;
  else
    return -1;
  return 0;
}

/* Registers a [member NAME] section when the reader meets its header, so
 * that a member with no keys still counts and members keep file order. */
static void scenario__member_header(struct scenario_parse *p, const char *line)
{
  struct scenario *sc = p->sc;
  const char *name = line + strlen("[member");
  size_t n;
  size_t i;

  name += strspn(name, " \t");
  n = strcspn(name, "]\r\n");
  while(n && (name[n - 1] == ' ' || name[n - 1] == '\t'))
    n--;
  if(!n || n >= sizeof(sc->members[0].name)) {
    scenario__fail(p, "[member] needs a name of 1 to 31 characters, like "
                      "[member ISA01]");
    return;
  }
  for(i = 0; i < sc->nmembers; i++) {
    if(strlen(sc->members[i].name) == n &&
       !strncmp(sc->members[i].name, name, n)) {
      scenario__fail(p, "[member %.*s] appears twice; give each member once",
                     (int)n, name);
      return;
    }
  }
  if(sc->nmembers == SCENARIO_MAX_MEMBERS) {
    scenario__fail(p,
                   "more than %d [member] sections; an array has at most "
                   "%d members here",
                   SCENARIO_MAX_MEMBERS, SCENARIO_MAX_MEMBERS);
    return;
  }
  memcpy(sc->members[sc->nmembers].name, name, n);
  sc->members[sc->nmembers].name[n] = '\0';
  sc->members[sc->nmembers].patch = SCENARIO_PATCH_RTM;
  sc->members[sc->nmembers].script = false;
  sc->nmembers++;
  p->has_members = true;
}

/* Checks a section header line where it stands, so that an unknown or
 * empty section is reported at its own line. */
static void scenario__section_header(struct scenario_parse *p, const char *s)
{
  static const char *known[] = {"scenario", "listener", "exchange", "users",
                                "clients",  "expect",   "kerberos"};
  size_t n = strcspn(s + 1, "]\r\n");
  size_t i;

  if(s[1 + n] != ']') {
    scenario__fail(p, "section header [%.*s is not closed with ']'",
                   (int)(n > 60 ? 60 : n), s + 1);
    return;
  }
  if(!strncmp(s, "[member", 7) &&
     (s[7] == ' ' || s[7] == '\t' || s[7] == ']')) {
    scenario__member_header(p, s);
    return;
  }
  for(i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if(strlen(known[i]) == n && !strncmp(s + 1, known[i], n))
      return;
  scenario__fail(p,
                 "unknown section [%.*s]; sections are scenario, listener, "
                 "exchange, member NAME, users, kerberos, clients, expect",
                 (int)n, s + 1);
}

/* inih's reader: fgets that counts lines and checks section headers. */
static char *scenario__reader(char *str, int num, void *stream)
{
  struct scenario_parse *p = stream;
  char *got = fgets(str, num, p->file);
  const char *s;

  if(!got)
    return NULL;
  p->line++;
  s = got + strspn(got, " \t");
  if(*s == '\0' || *s == '\r' || *s == '\n' || *s == ';' || *s == '#')
    return got; /* blank or a comment: inih skips it */
  if(s > got && p->after_key)
    scenario__fail(p, "this line is indented, so INI reads it as more of the "
                      "value of the key above it; kbsim takes one line per "
                      "key: remove the indentation");
  else if(*s == '[') {
    scenario__section_header(p, s);
    p->after_key = false;
  }
  else
    p->after_key = true;
  return got;
}

static struct scenario_member *scenario__member(struct scenario *sc,
                                                const char *section)
{
  const char *name = section + strlen("member");
  size_t i;

  name += strspn(name, " \t");
  for(i = 0; i < sc->nmembers; i++)
    if(!strcmp(sc->members[i].name, name))
      return &sc->members[i];
  return NULL;
}

/* Reads [listener] defect = NAME[, NAME...] (kb_defect.h's names) into
 * sc->defects; a name kbsim's listener cannot have yet is refused. */
static void scenario__defects(struct scenario_parse *p, const char *v)
{
  char list[SCENARIO_TEXT], *save = NULL, *name;
  enum kb_defect d;
  char why[320];

  p->defect_line = p->line;
  snprintf(list, sizeof(list), "%s", v);
  for(name = strtok_r(list, ", \t", &save); name;
      name = strtok_r(NULL, ", \t", &save)) {
    if(kb_defect_parse(name, &d, why, sizeof(why))) {
      scenario__fail(p, "[listener] defect = %s: %s", name, why);
      return;
    }
    if(proxy_defect_unavailable(d)) {
      scenario__fail(p, "[listener] defect = %s: %s", name,
                     proxy_defect_unavailable(d));
      return;
    }
    p->sc->defects |= PROXY_DEFECT(d);
  }
  if(!p->sc->defects)
    scenario__fail(p, "[listener] defect is empty: name one or more, e.g. "
                      "handshake-split");
}

/* Settles the listener of a file with [listener] defect: a pass-through
 * defect makes it pass NTLM through (auth none), as serve --defect does,
 * and cannot go with auth = integrated or basic; an authenticating one
 * cannot go with a listener that does not authenticate, nor with a
 * pass-through one. */
static void scenario__settle_defects(struct scenario_parse *p)
{
  struct scenario *sc = p->sc;
  const char *through = NULL, *authenticating = NULL;
  unsigned i;

  for(i = 0; i < KB_DEFECT_COUNT; i++) {
    const struct kb_defect_info *info = kb_defect_info((enum kb_defect)i);
    if(!(sc->defects & PROXY_DEFECT(i)) || !info)
      continue;
    if(info->where == KB_DEFECT_PASS_THROUGH && !through)
      through = info->name;
    else if(info->where == KB_DEFECT_AUTHENTICATING && !authenticating)
      authenticating = info->name;
  }
  p->line = p->defect_line;
  if(through && authenticating)
    scenario__fail(p,
                   "[listener] defect = %s passes NTLM through, %s breaks a "
                   "listener that authenticates: name defects of one kind",
                   through, authenticating);
  else if(through && p->auth_line && sc->auth != PROXY_AUTH_NONE)
    scenario__fail(p,
                   "[listener] defect = %s passes NTLM through to Exchange; "
                   "auth = %s cannot have it: set auth = none or remove it",
                   through, proxy_auth_name(sc->auth));
  else if(through)
    sc->auth = PROXY_AUTH_NONE;
  else if(authenticating && sc->auth == PROXY_AUTH_NONE)
    scenario__fail(p,
                   "[listener] defect = %s breaks a listener that "
                   "authenticates; auth = none cannot have it",
                   authenticating);
}

bool scenario_passes_through(const struct scenario *sc)
{
  unsigned i;

  for(i = 0; i < KB_DEFECT_COUNT; i++)
    if((sc->defects & PROXY_DEFECT(i)) &&
       kb_defect_info((enum kb_defect)i)->where == KB_DEFECT_PASS_THROUGH)
      return true;
  return false;
}

static void scenario__listener(struct scenario_parse *p, const char *key,
                               const char *v)
{
  struct scenario *sc = p->sc;

  if(!strcmp(key, "auth")) {
    p->auth_line = p->line;
    if(proxy_auth_parse(v, &sc->auth))
      scenario__fail(p, "[listener] auth = %s: use integrated, basic or none",
                     v);
  }
  else if(!strcmp(key, "defect"))
    scenario__defects(p, v);
  else if(!strcmp(key, "idle_timeout")) {
    if(scenario_parse_duration(v, &sc->idle_timeout_ms))
      scenario__fail(p,
                     "[listener] idle_timeout = %s: not a duration; write "
                     "30s, 500ms, 2m or 0 for none",
                     v);
  }
  else if(!strcmp(key, "max_requests")) {
    if(scenario__uint(v, 0, 1000000, &sc->max_requests))
      scenario__fail(p,
                     "[listener] max_requests = %s: use a whole number, "
                     "0 for no limit",
                     v);
  }
  else if(!strcmp(key, "balancer")) {
    if(!strcmp(v, "round-robin"))
      sc->balancer = BALANCER_ROUND_ROBIN;
    else if(!strcmp(v, "seeded"))
      sc->balancer = BALANCER_SEEDED;
    else
      scenario__fail(p, "[listener] balancer = %s: use round-robin or seeded",
                     v);
  }
  else if(!strcmp(key, "tls")) {
    if(scenario_tls_parse(v, &sc->tls))
      scenario__fail(p,
                     "[listener] tls = %s: use none (plain HTTP), offload "
                     "(HTTPS to the listener, HTTP to Exchange) or bridge "
                     "(HTTPS on both)",
                     v);
  }
  else if(!strcmp(key, "bridge_certificate")) {
    p->bridge_certificate_line = p->line;
    if(!strcmp(v, "same"))
      sc->bridge_same_certificate = true;
    else if(!strcmp(v, "own"))
      sc->bridge_same_certificate = false;
    else
      scenario__fail(p,
                     "[listener] bridge_certificate = %s: use same (the "
                     "listener presents Exchange's certificate) or own",
                     v);
  }
  else
    scenario__fail(p,
                   "[listener] has no key '%s'; it knows auth, defect, "
                   "idle_timeout, max_requests, balancer, tls, "
                   "bridge_certificate",
                   key);
}

static void scenario__exchange(struct scenario_parse *p, const char *key,
                               const char *v)
{
  struct scenario *sc = p->sc;

  if(!strcmp(key, "auth")) {
    p->exchange_auth_line = p->line;
    if(backend_auth_parse(v, &sc->exchange_auth))
      scenario__fail(p,
                     "[exchange] auth = %s: use none (Exchange trusts the "
                     "listener) or integrated (IIS's Windows authentication)",
                     v);
  }
  else if(!strcmp(key, "extended_protection")) {
    p->extended_protection_line = p->line;
    if(backend_epa_parse(v, &sc->extended_protection))
      scenario__fail(p,
                     "[exchange] extended_protection = %s: use none, allow "
                     "or require",
                     v);
  }
  else
    scenario__fail(p,
                   "[exchange] has no key '%s'; it knows auth, "
                   "extended_protection",
                   key);
}

/* 0 when name is a DNS domain: dot-separated labels of letters, digits
 * and inner hyphens, each 1 to 63 long, at least two labels. */
static int scenario__dns_name(const char *name)
{
  size_t label = 0;
  size_t labels = 1;
  const char *c;

  for(c = name; *c; c++) {
    if(*c == '.') {
      if(!label || c[-1] == '-')
        return -1;
      label = 0;
      labels++;
    }
    else if(isalnum((unsigned char)*c) || (*c == '-' && label)) {
      if(++label > 63)
        return -1;
    }
    else
      return -1;
  }
  return label && c[-1] != '-' && labels >= 2 ? 0 : -1;
}

static void scenario__clients(struct scenario_parse *p, const char *key,
                              const char *v)
{
  struct scenario *sc = p->sc;

  if(!strcmp(key, "count")) {
    if(scenario__uint(v, 1, SCENARIO_MAX_CLIENTS, &sc->clients))
      scenario__fail(p, "[clients] count = %s: use 1 to %d", v,
                     SCENARIO_MAX_CLIENTS);
  }
  else if(!strcmp(key, "kind")) {
    if(client_kind_parse(v, &sc->kind))
      scenario__fail(p, "[clients] kind = %s: use " CLIENT_KIND_NAMES, v);
  }
  else if(!strcmp(key, "user")) {
    if(strlen(v) >= sizeof(sc->client_user) || !strchr(v, '\\'))
      scenario__fail(p,
                     "[clients] user = %s: write DOMAIN\\user, one of "
                     "[users]",
                     v);
    else {
      snprintf(sc->client_user, sizeof(sc->client_user), "%s", v);
      p->client_user_line = p->line;
    }
  }
  else if(!strcmp(key, "password")) {
    if(strlen(v) >= sizeof(sc->client_password))
      scenario__fail(p, "[clients] password is longer than %d bytes",
                     SCENARIO_TEXT - 1);
    else {
      snprintf(sc->client_password, sizeof(sc->client_password), "%s", v);
      sc->has_password_override = true;
    }
  }
  else if(!strcmp(key, "posts")) {
    if(scenario__uint(v, 1, SCENARIO_MAX_POSTS, &sc->posts))
      scenario__fail(p, "[clients] posts = %s: use 1 to %d", v,
                     SCENARIO_MAX_POSTS);
  }
  else if(!strcmp(key, "think")) {
    struct kb_range r;

    /* A duration, or a range of them (common/kb_range.h). */
    if(kb_range_split(v, KB_RANGE_SINGLE, &r, NULL, 0) ||
       scenario_parse_duration(r.lo, &sc->think_min_ms) ||
       scenario_parse_duration(r.hi, &sc->think_max_ms) ||
       sc->think_min_ms > sc->think_max_ms)
      scenario__fail(p,
                     "[clients] think = %s: write a duration (10s) or a "
                     "range (5s..40s) with the smaller first",
                     v);
  }
  else if(!strcmp(key, "idle_timeout")) {
    if(scenario_parse_duration(v, &sc->client_idle_timeout_ms))
      scenario__fail(p,
                     "[clients] idle_timeout = %s: not a duration; write "
                     "60s, 2m or 0 for none",
                     v);
  }
  else if(!strcmp(key, "max_requests")) {
    if(scenario__uint(v, 0, 1000000, &sc->client_max_requests))
      scenario__fail(p,
                     "[clients] max_requests = %s: use a whole number, "
                     "0 for no limit",
                     v);
  }
  else if(!strcmp(key, "connection_sharing")) {
    p->connection_sharing_line = p->line;
    if(scenario__bool(v, &sc->connection_sharing))
      scenario__fail(p,
                     "[clients] connection_sharing = %s: use yes or no "
                     "(dotnet's UnsafeAuthenticatedConnectionSharing)",
                     v);
  }
  else if(!strcmp(key, "ntlm")) {
    if(!strcmp(v, "v2"))
      sc->ntlm = NTLM_RESPONSE_V2;
    else if(!strcmp(v, "v1"))
      sc->ntlm = NTLM_RESPONSE_V1;
    else if(!strcmp(v, "v1-ess"))
      sc->ntlm = NTLM_RESPONSE_V1_ESS;
    else
      scenario__fail(p, "[clients] ntlm = %s: use v2, v1 or v1-ess", v);
  }
  else
    scenario__fail(p,
                   "[clients] has no key '%s'; it knows count, kind, user, "
                   "password, posts, think, idle_timeout, max_requests, "
                   "connection_sharing, ntlm",
                   key);
}

static void scenario__count(struct scenario_parse *p, const char *key,
                            const char *v, int64_t *out)
{
  unsigned n;

  if(scenario__uint(v, 0, 100000000, &n))
    scenario__fail(p, "[expect] %s = %s: use a whole number", key, v);
  else
    *out = n;
}

static void scenario__expect(struct scenario_parse *p, const char *key,
                             const char *v)
{
  struct scenario_expect *e = &p->sc->expect;

  if(!strcmp(key, "outcome")) {
    if(!strcmp(v, "error"))
      e->outcome = 1;
    else if(!strcmp(v, "clean"))
      e->outcome = 0;
    else
      scenario__fail(p,
                     "[expect] outcome = %s: use error (a user saw the "
                     "Outlook Integration Error) or clean",
                     v);
  }
  else if(!strcmp(key, "empty_posts"))
    scenario__count(p, key, v, &e->empty_posts);
  else if(!strcmp(key, "users_with_error"))
    scenario__count(p, key, v, &e->users_with_error);
  else if(!strcmp(key, "backend_requests"))
    scenario__count(p, key, v, &e->backend_requests);
  else if(!strcmp(key, "auth_failed"))
    scenario__count(p, key, v, &e->auth_failed);
  else if(!strcmp(key, "rate")) {
    if(scenario_parse_rate(v, &e->rate_lo, &e->rate_hi))
      scenario__fail(p,
                     "[expect] rate = %s: write LOW..HIGH, e.g. 40%%..70%%, "
                     "with LOW <= HIGH",
                     v);
  }
  else
    scenario__fail(p,
                   "[expect] has no key '%s'; it knows outcome, "
                   "empty_posts, users_with_error, backend_requests, "
                   "auth_failed, rate",
                   key);
}

/* inih's handler: one key = value of one section. Returns 1 always, so
 * inih reads on; the first error is kept in p. */
/* Returns true, after failing p, when section's key was given before;
 * else remembers it. [users] is left to kb_users. */
static bool scenario__repeated(struct scenario_parse *p, const char *section,
                               const char *key)
{
  char name[sizeof(p->keys[0].name)];
  size_t i;

  snprintf(name, sizeof(name), "%.100s\n%.100s", section, key);
  for(i = 0; i < p->nkeys; i++)
    if(!strcmp(p->keys[i].name, name)) {
      scenario__fail(p, "[%s] %s is given twice (line %u and here); keep one",
                     section, key, p->keys[i].line);
      return true;
    }
  if(p->nkeys == SCENARIO_MAX_KEYS) {
    scenario__fail(p, "more than %d keys; a scenario needs far fewer",
                   SCENARIO_MAX_KEYS);
    return true;
  }
  snprintf(p->keys[p->nkeys].name, sizeof(p->keys[0].name), "%s", name);
  p->keys[p->nkeys++].line = p->line;
  return false;
}

static int scenario__handler(void *user, const char *section, const char *key,
                             const char *v)
{
  struct scenario_parse *p = user;
  struct scenario *sc = p->sc;

  if(!*section) {
    scenario__fail(
        p,
        "%s = %s is before any [section]; every key belongs to one "
        "of scenario, listener, exchange, member NAME, users, kerberos, "
        "clients, expect",
        key, v);
    return 1;
  }
  if(strcmp(section, "users") && scenario__repeated(p, section, key))
    return 1;
  if(!strcmp(section, "scenario")) {
    if(!strcmp(key, "name")) {
      if(!*v || strlen(v) >= sizeof(sc->name) || strpbrk(v, " /\\"))
        scenario__fail(p,
                       "[scenario] name = %s: one word of at most 63 "
                       "characters, no spaces or slashes",
                       v);
      else
        snprintf(sc->name, sizeof(sc->name), "%s", v);
    }
    else if(!strcmp(key, "description"))
      snprintf(sc->description, sizeof(sc->description), "%s", v);
    else if(!strcmp(key, "seed")) {
      char *end = NULL;
      errno = 0;
      sc->seed = strtoull(v, &end, 10);
      if(errno || !*v || *end || *v == '-')
        scenario__fail(p, "[scenario] seed = %s: use a whole number", v);
    }
    else
      scenario__fail(p,
                     "[scenario] has no key '%s'; it knows name, "
                     "description, seed",
                     key);
  }
  else if(!strcmp(section, "listener"))
    scenario__listener(p, key, v);
  else if(!strcmp(section, "exchange"))
    scenario__exchange(p, key, v);
  else if(!strncmp(section, "member", 6) &&
          (section[6] == ' ' || section[6] == '\t')) {
    struct scenario_member *m = scenario__member(sc, section);

    if(!m)
      return 1; /* its header was refused; that error is already kept */
    if(!strcmp(key, "patch")) {
      if(!strcmp(v, "rtm"))
        m->patch = SCENARIO_PATCH_RTM;
      else if(!strcmp(v, "rtm+hotfix"))
        m->patch = SCENARIO_PATCH_RTM_HOTFIX;
      else if(!strcmp(v, "sp1"))
        m->patch = SCENARIO_PATCH_SP1;
      else
        scenario__fail(p, "[%s] patch = %s: use rtm, rtm+hotfix or sp1",
                       section, v);
    }
    else if(!strcmp(key, "script")) {
      if(scenario__bool(v, &m->script))
        scenario__fail(p, "[%s] script = %s: use yes or no", section, v);
    }
    else
      scenario__fail(p, "[%s] has no key '%s'; it knows patch, script", section,
                     key);
  }
  else if(!strcmp(section, "users")) {
    if(!strcmp(key, "dns_domain")) {
      if(scenario__dns_name(v) || strlen(v) >= sizeof(sc->dns_domain))
        scenario__fail(p,
                       "[users] dns_domain = %s: write a DNS domain such as "
                       "fabrikam.com",
                       v);
      else
        snprintf(sc->dns_domain, sizeof(sc->dns_domain), "%s", v);
    }
    else if(!strchr(key, '\\'))
      scenario__fail(p, "[users] %s: write DOMAIN\\user = password", key);
    else if(sc->nusers == SCENARIO_MAX_USERS)
      scenario__fail(p, "[users]: at most %d users", SCENARIO_MAX_USERS);
    else if(strlen(key) + strlen(v) + 2 > sizeof(sc->user_specs[0]))
      scenario__fail(p, "[users] %s: name and password too long", key);
    else {
      char err[256], *spec = sc->user_specs[sc->nusers];
      size_t klen = strlen(key), vlen = strlen(v);

      /* Fits: checked above. */
      memcpy(spec, key, klen);
      spec[klen] = ':';
      memcpy(spec + klen + 1, v, vlen + 1);
      if(!p->users)
        p->users = kb_users_new();
      if(!p->users)
        scenario__fail(p, "[users]: out of memory");
      else if(kb_users_add_spec(p->users, sc->user_specs[sc->nusers], err,
                                sizeof(err)))
        scenario__fail(p, "[users] %s", err);
      sc->nusers++;
      if(!p->users_line)
        p->users_line = p->line;
    }
  }
  else if(!strcmp(section, "kerberos")) {
    if(strcmp(key, "internal"))
      scenario__fail(p, "[kerberos] has no key '%s'; it knows internal", key);
    else if(strlen(v) >= sizeof(p->internal))
      scenario__fail(p, "[kerberos] internal: at most %zu characters",
                     sizeof(p->internal) - 1);
    else {
      snprintf(p->internal, sizeof(p->internal), "%s", v);
      p->internal_line = p->line;
    }
  }
  else if(!strcmp(section, "clients"))
    scenario__clients(p, key, v);
  else if(!strcmp(section, "expect"))
    scenario__expect(p, key, v);
  /* Unknown sections were reported at their header by the reader. */
  return 1;
}

/* Marks the users [kerberos] internal names (comma-separated, each in
 * [users]) as inside the network. */
static void scenario__internal(struct scenario_parse *p)
{
  struct scenario *sc = p->sc;
  const char *name = p->internal;
  size_t i, n;

  p->line = p->internal_line;
  while(*name) {
    name += strspn(name, " \t,");
    n = strcspn(name, ",");
    while(n && (name[n - 1] == ' ' || name[n - 1] == '\t'))
      n--;
    if(!n)
      break;
    for(i = 0; i < sc->nusers; i++)
      if(!strncasecmp(sc->user_specs[i], name, n) &&
         sc->user_specs[i][n] == ':')
        break;
    if(i == sc->nusers) {
      scenario__fail(p,
                     "[kerberos] internal = %.*s is not in [users]; add it "
                     "there (the KDC gets the users of [users])",
                     (int)n, name);
      return;
    }
    sc->user_internal[i] = sc->kerberos = true;
    name += n;
  }
  if(!sc->kerberos)
    scenario__fail(p, "[kerberos] internal names nobody; write DOMAIN\\user, "
                      "...");
  else if(sc->kind != CLIENT_KIND_COMMUNICATOR &&
          sc->kind != CLIENT_KIND_ONE_SHOT)
    scenario__fail(p,
                   "[kerberos] internal users are Communicators signed in to "
                   "the domain; kind = %s has no Kerberos here: set kind = "
                   "communicator or one-shot",
                   client_kind_name(sc->kind));
  else if(sc->auth != PROXY_AUTH_INTEGRATED)
    scenario__fail(p, "[kerberos] needs [listener] auth = integrated "
                      "(Negotiate)");
}

/* Checks what only the whole file can tell. */
static void scenario__check(struct scenario_parse *p)
{
  struct scenario *sc = p->sc;
  size_t i;

  if(!sc->nusers)
    snprintf(sc->user_specs[sc->nusers++], sizeof(sc->user_specs[0]), "%s",
             "FABRIKAM\\alice:Passw0rd!");
  if(!sc->nmembers) {
    snprintf(sc->members[0].name, sizeof(sc->members[0].name), "ISA01");
    sc->nmembers = 1;
  }
  if(sc->client_user[0]) {
    size_t n = strlen(sc->client_user);
    for(i = 0; i < sc->nusers; i++)
      if(!strncasecmp(sc->user_specs[i], sc->client_user, n) &&
         sc->user_specs[i][n] == ':')
        break;
    if(i == sc->nusers) {
      p->line = p->client_user_line;
      scenario__fail(p,
                     "[clients] user = %s is not in [users]; add it there "
                     "(the listener checks passwords against [users])",
                     sc->client_user);
    }
  }
  if(p->internal_line && !p->error_line)
    scenario__internal(p);
  if(p->defect_line)
    scenario__settle_defects(p);
  /* The kind may come after the key, so it is judged once both are read. */
  if(p->connection_sharing_line && sc->kind != CLIENT_KIND_DOTNET) {
    p->line = p->connection_sharing_line;
    scenario__fail(p,
                   "[clients] connection_sharing is .NET's "
                   "UnsafeAuthenticatedConnectionSharing; kind = %s has no "
                   "such setting: set kind = dotnet or remove the key",
                   client_kind_name(sc->kind));
  }
  if(p->bridge_certificate_line && sc->tls != SCENARIO_TLS_BRIDGE) {
    p->line = p->bridge_certificate_line;
    scenario__fail(p,
                   "[listener] bridge_certificate is which certificate a "
                   "bridging listener presents; tls = %s does not bridge: "
                   "set tls = bridge or remove the key",
                   scenario_tls_name(sc->tls));
  }
  if(p->extended_protection_line && sc->extended_protection &&
     sc->exchange_auth != BACKEND_AUTH_INTEGRATED) {
    p->line = p->extended_protection_line;
    scenario__fail(p, "[exchange] extended_protection checks Exchange's own "
                      "NTLM logins; set [exchange] auth = integrated (behind a "
                      "[listener] auth = none that passes NTLM through)");
  }
  if(sc->exchange_auth == BACKEND_AUTH_INTEGRATED &&
     sc->auth != PROXY_AUTH_NONE) {
    p->line = p->exchange_auth_line;
    scenario__fail(p, "[exchange] auth = integrated needs [listener] auth = "
                      "none: the listener must pass NTLM through to Exchange");
  }
}

int scenario_load_stream(FILE *file, const char *path, struct scenario *sc,
                         char *err, size_t errlen)
{
  struct scenario_parse p;
  const char *base;
  int rc;

  scenario_defaults(sc);
  memset(&p, 0, sizeof(p));
  p.sc = sc;
  p.file = file;
  snprintf(sc->path, sizeof(sc->path), "%s", path);
  base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(sc->name, sizeof(sc->name), "%.*s", (int)strcspn(base, "."), base);
  rc = ini_parse_stream(scenario__reader, &p, scenario__handler, &p);
  kb_users_free(p.users);
  if(rc > 0 && (!p.error_line || (unsigned)rc < p.error_line)) {
    /* inih's own syntax error: a line that is neither [section], key =
     * value nor a comment, or longer than inih reads. */
    snprintf(err, errlen,
             "%s:%d: not a [section], a key = value or a "
             "comment (lines are limited to %d characters)",
             path, rc, INI_MAX_LINE - 1);
    return -1;
  }
  if(rc < 0) {
    snprintf(err, errlen, "%s: cannot read", path);
    return -1;
  }
  if(!p.error_line)
    scenario__check(&p);
  if(p.error_line) {
    snprintf(err, errlen, "%s:%u: %s", path, p.error_line, p.error);
    return -1;
  }
  return 0;
}

int scenario_load(const char *path, struct scenario *sc, char *err,
                  size_t errlen)
{
  FILE *file = fopen(path, "r");
  int result;

  if(!file) {
    scenario_defaults(sc);
    snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    return -1;
  }
  result = scenario_load_stream(file, path, sc, err, errlen);
  fclose(file);
  return result;
}

/* One bound, a part of a range (not empty, no space): "40%" or "0.4". */
static int scenario__fraction(char *text, double *out)
{
  size_t len = strlen(text);
  char *end;
  bool percent = len && text[len - 1] == '%';
  double v;

  if(percent)
    text[len - 1] = '\0';
  errno = 0;
  v = strtod(text, &end);
  if(errno || end == text || *end)
    return -1;
  if(percent)
    v /= 100;
  if(v < 0 || v > 1)
    return -1;
  *out = v;
  return 0;
}

int scenario_parse_rate(const char *text, double *lo, double *hi)
{
  struct kb_range r;
  double a, b;

  /* LOW..HIGH, both given (common/kb_range.h). */
  if(kb_range_split(text, KB_RANGE_PAIR, &r, NULL, 0) ||
     scenario__fraction(r.lo, &a) || scenario__fraction(r.hi, &b) || a > b)
    return -1;
  *lo = a;
  *hi = b;
  return 0;
}

int scenario_override(struct scenario *sc, const char *dotted,
                      const char *value, char *err, size_t errlen)
{
  struct scenario_parse p;
  char section[96];
  const char *dot = strchr(dotted, '.');
  const char *key;
  size_t i;

  if(!dot || dot == dotted || !dot[1]) {
    snprintf(err, errlen,
             "'%s' is not SECTION.KEY or member.NAME.KEY (e.g. "
             "listener.idle_timeout, member.ISA02.patch)",
             dotted);
    return -1;
  }
  key = dot + 1;
  if(!strcmp(dotted, "array.patched")) {
    /* How many members are patched, as one key a grid can vary: the
     * first N in file order get SP1 and the script, the rest stay RTM
     * without it. */
    unsigned n;
    if(scenario__uint(value, 0, (unsigned)sc->nmembers, &n)) {
      snprintf(err, errlen,
               "array.patched = %s: give how many of the %zu members are "
               "patched, 0 to %zu",
               value, sc->nmembers, sc->nmembers);
      return -1;
    }
    for(i = 0; i < sc->nmembers; i++) {
      sc->members[i].patch = i < n ? SCENARIO_PATCH_SP1 : SCENARIO_PATCH_RTM;
      sc->members[i].script = i < n;
    }
    return 0;
  }
  if((size_t)(dot - dotted) == 6 && !strncmp(dotted, "member", 6)) {
    const char *dot2 = strchr(key, '.');
    if(!dot2 || dot2 == key || !dot2[1]) {
      snprintf(err, errlen,
               "'%s': write member.NAME.KEY, e.g. "
               "member.ISA02.patch",
               dotted);
      return -1;
    }
    snprintf(section, sizeof(section), "member %.*s", (int)(dot2 - key), key);
    for(i = 0; i < sc->nmembers; i++)
      if(!strcmp(sc->members[i].name, section + 7))
        break;
    if(i == sc->nmembers) {
      snprintf(err, errlen, "'%s': the scenario has no member %s", dotted,
               section + 7);
      return -1;
    }
    key = dot2 + 1;
  }
  else
    snprintf(section, sizeof(section), "%.*s", (int)(dot - dotted), dotted);
  memset(&p, 0, sizeof(p));
  p.sc = sc;
  p.has_members = true;
  scenario__handler(&p, section, key, value);
  if(!p.error_line && !p.error[0])
    scenario__check(&p);
  if(p.error_line || p.error[0]) {
    snprintf(err, errlen, "%s = %s: %s", dotted, value, p.error);
    return -1;
  }
  return 0;
}
