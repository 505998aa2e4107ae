/*
 * admin.h - the admin endpoint of `kbsim serve`: HTTP + JSON
 * (libmicrohttpd, jansson) for a trainer to change the live ISA array and
 * watch what it does.
 *
 *   GET  /status                      members, balancer, Exchange
 *   POST /members/N/apply-fix         run the KB 942638 script on member N
 *   POST /members/N/revert            undo the script
 *   POST /members/N/hotfix            install the hotfix (RTM members)
 *   POST /members/N/sp1               install ISA 2006 SP1
 *   POST /apply-fix, POST /revert     the same on every member
 *
 *   GET  /                            the live console (one page)
 *   GET  /events                      Server-Sent Events: "status" (the
 *                                     /status JSON) and "leg" (live.h)
 *
 * N is the member's position (from 1) or its name ("ISA02"). A change
 * recomputes the member's effective policy with scenario_effective_policy()
 * and hands it to proxy_set_policy(): it applies from the next request,
 * and no connection is dropped. Errors are JSON {"error": "..."} with 400,
 * 401, 403, 404 (unknown member or path; /events without a live view),
 * 405 or 500 (out of memory); a request whose head or body comes too
 * slowly gets kb_guard.h's 408.
 *
 * Security, as Jupyter does it: a random token is made at start. Every
 * request must carry it, as "Authorization: Bearer TOKEN" or as the cookie
 * the console page sets when opened as /?token=TOKEN (401 otherwise). The
 * Host header must name the bound address, "localhost" or a name given in
 * admin_config.hosts, with this port (403 otherwise, against DNS
 * rebinding); an Origin header must be this endpoint's own origin (403);
 * and a POST must say Content-Type: application/json (403), which no web
 * page can send to another origin without a CORS preflight this endpoint
 * never grants.
 */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "balancer/balancer.h"
#include "proxy/proxy.h"
#include "sim/scenario.h"

#define ADMIN_MAX_MEMBERS 16

/* What a trainer can do to a member. */
enum admin_action {
  ADMIN_APPLY_FIX = 0, /* run the KB script */
  ADMIN_REVERT,        /* undo the script */
  ADMIN_HOTFIX,        /* install the hotfix on RTM */
  ADMIN_SP1            /* install SP1, which includes the hotfix */
};

/* "apply-fix", "revert", "hotfix", "sp1". */
const char *admin_action_name(enum admin_action action);

/* Parses an action name; returns 0, or -1 when name is none of them. */
int admin_action_parse(const char *name, enum admin_action *out);

/* Why a member with this patch level and script state has the policy it
 * has, in a few words ("script run, no effect without the hotfix"). Never
 * NULL; the string is static. */
const char *admin_policy_reason(enum scenario_patch patch, bool script);

/* One array member as the admin endpoint manages it. */
struct admin_member {
  const char *name; /* copied */
  const char *url;  /* where it listens; copied */
  enum scenario_patch patch;
  bool script;
  struct proxy *proxy; /* borrowed; must outlive the admin endpoint */
};

struct admin_config {
  const char *bind_host; /* numeric address; "127.0.0.1" when NULL */
  uint16_t port;         /* 0 picks a free port; read it with admin_port */
  const char *scenario;  /* shown in /status; may be NULL; copied */
  const struct admin_member *members; /* copied */
  size_t nmembers;                    /* 1..ADMIN_MAX_MEMBERS */
  /* Borrowed; must outlive the admin endpoint. balancer may be NULL. */
  struct backend *backend;
  const char *backend_url; /* copied */
  struct balancer *balancer;
  const char *balancer_url; /* copied; NULL without a balancer */
  enum balancer_mode balancer_mode;
  /* The token; NULL makes a random one (read it with admin_token). At
   * least ADMIN_TOKEN_MIN characters of [A-Za-z0-9_-]. Copied. */
  const char *token;
  /* A request's head must arrive within this (0: 10 s; kb_guard.h). */
  unsigned head_timeout_ms;
  /* Further names the Host header may give (e.g. a machine's DNS name),
   * nhosts of them; copied. */
  const char *const *hosts;
  size_t nhosts;
  /* Legs for the console; borrowed, must outlive the endpoint. NULL: the
   * console shows the array only. */
  struct live *live;
};

#define ADMIN_TOKEN_MIN 16
#define ADMIN_TOKEN_MAX 128
#define ADMIN_MAX_HOSTS 8

struct live;

struct admin;

/* Sets every member's policy from its patch level and script, then serves
 * the endpoint on libmicrohttpd's threads (one per connection). On success
 * *out owns it (release with admin_stop). Returns 0, or -1 with a one-line
 * reason in err. */
int admin_start(const struct admin_config *config, struct admin **out,
                char *err, size_t errlen);

/* The port actually listened on. */
uint16_t admin_port(const struct admin *admin);

/* The token every request needs; valid until admin_stop. */
const char *admin_token(const struct admin *admin);

/* Checks a token given by a user: returns 0, or -1 with a one-line
 * reason in err. */
int admin_token_check(const char *token, char *err, size_t errlen);

/* The file `kbsim serve` keeps the token of the endpoint on port in for
 * `kbsim ctl`: $XDG_RUNTIME_DIR/kbsim-UID/admin-PORT.token, or under /tmp
 * without XDG_RUNTIME_DIR. Writes the path into out. */
void admin_token_path(uint16_t port, char *out, size_t len);

/* Writes the token to path with mode 0600, in a directory of this user's
 * alone (made 0700 when missing; refused when it is anyone else's, open to
 * others or a symbolic link). Returns 0, or -1 with a one-line reason. */
int admin_token_write(const char *path, const char *token, char *err,
                      size_t errlen);

/* Reads a token from path into out (at least ADMIN_TOKEN_MAX + 1 bytes).
 * Returns 0, or -1 with a one-line reason in err. */
int admin_token_read(const char *path, char *out, size_t len, char *err,
                     size_t errlen);

/* Stops the endpoint and frees it; members' proxies keep their policies.
 * Accepts NULL. */
void admin_stop(struct admin *admin);

#endif /* ADMIN_H */
