/*
 * scenario.h - a case of the support article as data: topology (ISA array
 * members with patch level and KB script, listener authentication,
 * keep-alive limits and TLS; Exchange's authentication and Extended
 * Protection), users, clients and their timing, seed, and the
 * expected outcome. Read from INI files with inih; see scenarios/README.md
 * for the format.
 */
#ifndef SCENARIO_H
#define SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend/backend.h"
#include "balancer/balancer.h"
#include "client/client.h"
#include "ntlm/ntlm.h"
#include "proxy/proxy.h"

#define SCENARIO_MAX_MEMBERS 16
#define SCENARIO_MAX_USERS 64
#define SCENARIO_MAX_CLIENTS 10000
#define SCENARIO_MAX_POSTS 100
#define SCENARIO_TEXT 128

/* ISA 2006 patch levels, as the KB distinguishes them. */
enum scenario_patch {
  SCENARIO_PATCH_RTM = 0,    /* as shipped */
  SCENARIO_PATCH_RTM_HOTFIX, /* the KB 942638 hotfix installed */
  SCENARIO_PATCH_SP1         /* Service Pack 1: the hotfix is included */
};

const char *scenario_patch_name(enum scenario_patch patch);

/* TLS on the hops, as ISA publishes Exchange: none (plain HTTP, the
 * default), offload (HTTPS from the client to the listener, HTTP from the
 * listener to Exchange) or bridge (HTTPS on both hops). */
enum scenario_tls {
  SCENARIO_TLS_NONE = 0,
  SCENARIO_TLS_OFFLOAD,
  SCENARIO_TLS_BRIDGE
};

/* "none" / "offload" / "bridge". */
const char *scenario_tls_name(enum scenario_tls tls);

/* Parses a TLS mode; returns 0, or -1 when name is none of them. */
int scenario_tls_parse(const char *name, enum scenario_tls *out);

/* The policy a member ends up with: the script takes effect only where the
 * hotfix is (RTM + hotfix, or SP1); anything else stays per-connection. */
enum proxy_policy scenario_effective_policy(enum scenario_patch patch,
                                            bool script);

struct scenario_member {
  char name[32];
  enum scenario_patch patch;
  bool script;
};

/* An expectation: which counters must have which value. -1 = not checked. */
struct scenario_expect {
  int outcome;              /* 1 error, 0 clean, -1 not given */
  int64_t empty_posts;      /* empty POSTs that reached Exchange */
  int64_t users_with_error; /* sessions that showed the notification */
  int64_t backend_requests; /* requests that reached Exchange at all */
  int64_t auth_failed;      /* type 3 / Basic refusals at the listener */
  /* sweep only: the share of sessions with the error, as fractions;
   * rate_lo < 0 when not given. The sweep passes when the whole 95%
   * Wilson interval lies within [rate_lo, rate_hi]. */
  double rate_lo, rate_hi;
};

struct scenario {
  char path[256]; /* the file it came from, or "" */
  char name[64];
  char description[256];
  uint64_t seed;

  /* [listener] */
  enum proxy_auth auth;
  /* defect = NAME, ...: PROXY_DEFECT bits, every member's (serve
   * --defect). A pass-through defect makes the members pass NTLM through
   * (auth none) to an Exchange that authenticates itself. */
  unsigned defects;
  int64_t idle_timeout_ms;
  unsigned max_requests;
  enum balancer_mode balancer;
  enum scenario_tls tls;        /* tls = none|offload|bridge */
  bool bridge_same_certificate; /* bridge_certificate = same|own */

  /* [exchange] */
  enum backend_auth exchange_auth;      /* auth = none|integrated */
  enum backend_epa extended_protection; /* none|allow|require */

  /* [member NAME] sections, in file order */
  struct scenario_member members[SCENARIO_MAX_MEMBERS];
  size_t nmembers;

  /* [users] DOMAIN\user = password */
  char user_specs[SCENARIO_MAX_USERS][SCENARIO_TEXT * 2];
  size_t nusers;
  /* [users] dns_domain = fabrikam.com: the DNS name of the listener's
   * domain (type 2 target info, UPN suffix); "" = lowercase(domain).com */
  char dns_domain[SCENARIO_TEXT];

  /* [kerberos] internal = DOMAIN\user, ...: the users inside the network,
   * who sign in with Kerberos (Negotiate, one leg) against a KDC the run
   * starts (sim/kdc.h); the others use NTLM. kerberos is set when any
   * user is internal; user_internal[i] says it of user_specs[i]. */
  bool kerberos;
  bool user_internal[SCENARIO_MAX_USERS];

  /* [clients] */
  unsigned clients;
  enum client_kind kind;
  bool connection_sharing; /* dotnet: UnsafeAuthenticatedConnectionSharing */
  char client_user[SCENARIO_TEXT];     /* DOMAIN\user, "" = each user in turn */
  char client_password[SCENARIO_TEXT]; /* override, "" = the store's */
  bool has_password_override;
  unsigned posts;
  int64_t think_min_ms, think_max_ms;
  int64_t client_idle_timeout_ms;
  unsigned client_max_requests;
  enum ntlm_response_kind ntlm;

  struct scenario_expect expect;
};

/* Whether sc's listener passes NTLM through to an Exchange that
 * authenticates (a pass-through [listener] defect). */
bool scenario_passes_through(const struct scenario *sc);

/* Fills sc with the defaults: one RTM member without the script,
 * integrated listener, FABRIKAM\alice, one Communicator client, 2 EWS
 * POSTs, seed 1, no expectation. */
void scenario_defaults(struct scenario *sc);

/* Sets one key of a loaded scenario as its file would: dotted is
 * "SECTION.KEY" ("listener.idle_timeout", "clients.think") or
 * "member.NAME.KEY" ("member.ISA02.patch", an existing member). One key
 * exists only here, for grids: "array.patched" = N patches the first N
 * members (SP1 and the script) and leaves the others RTM without it.
 * Returns 0, or -1 with one line in err. */
int scenario_override(struct scenario *sc, const char *dotted,
                      const char *value, char *err, size_t errlen);

/* Parses "40%..70%" (or "0.4..0.7") into fractions lo <= hi in [0, 1].
 * Returns 0 or -1. */
int scenario_parse_rate(const char *text, double *lo, double *hi);

/* Reads an INI scenario file into sc (defaults first). Returns 0, or -1
 * with one line in err: "FILE:LINE: what was wrong; what to do". */
int scenario_load(const char *path, struct scenario *sc, char *err,
                  size_t errlen);

/* As scenario_load, from an open stream (not closed here); name is what
 * errors call it ("FILE:LINE: ..."). For fuzzing and for scenarios held in
 * memory (fmemopen). */
int scenario_load_stream(FILE *file, const char *name, struct scenario *sc,
                         char *err, size_t errlen);

/* Parses a duration: "30" (seconds), "500ms", "30s", "2m", "1h". Returns
 * 0, or -1 when text is not one. */
int scenario_parse_duration(const char *text, int64_t *ms);

#endif /* SCENARIO_H */
