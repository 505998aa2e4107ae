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
 *   POST /reset                       the scenario's starting state again:
 *                                     members and Exchange restarted,
 *                                     counters at zero, sessions cleared
 *   POST /scenario {"scenario": NAME} another scenario of the catalogue,
 *                                     started in place of this one
 *   POST /sessions {"user": U, "member": N, "count": C}
 *                                     C Communicator sessions as U (all
 *                                     optional), run inside serve against
 *                                     the balancer or member N; answers
 *                                     once they ran
 *
 *   GET  /                            the live console (one page)
 *   GET  /events                      Server-Sent Events: "status" (the
 *                                     /status JSON) and "leg" (live.h)
 *
 * N is the member's position (from 1) or its name ("ISA02"). A change
 * recomputes the member's effective policy with scenario_effective_policy()
 * and hands it to proxy_set_policy(): it applies from the next request,
 * and no connection is dropped; the live view's score of the member starts
 * again (live_mark). A reset or a switch has serve restart its array
 * (admin_restart); the admin endpoint and the balancer keep their ports,
 * and every console is told (live_reset). Errors are JSON {"error": "..."}
 * with 400 (a body that is not what the path takes), 401, 403, 404
 * (unknown member, user, scenario or path; /events without a live view),
 * 405, 409 (serve cannot restart or run sessions, or is restarting), 413
 * (a body over ADMIN_MAX_BODY), 500 (out of memory) or 503 (the array
 * could not be started again); a request whose head or body comes too
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

/* What serve runs, as the admin endpoint manages it: handed over at
 * start (in admin_config) and by each restart. */
struct admin_array {
  const char *scenario; /* shown in /status; may be NULL; copied */
  const struct admin_member *members; /* copied */
  size_t nmembers;                    /* 1..ADMIN_MAX_MEMBERS */
  /* Borrowed, until admin_stop or the next restart. balancer may be
   * NULL. */
  struct backend *backend;
  const char *backend_url; /* copied */
  struct balancer *balancer;
  const char *balancer_url; /* copied; NULL without a balancer */
  enum balancer_mode balancer_mode;
  /* The run's CA certificate (PEM) POST /sessions verifies the listeners'
   * HTTPS against; NULL when they speak HTTP. Copied. */
  const char *ca_pem;
  /* Who POST /sessions signs in as: "DOMAIN\user:password" specs, nusers
   * of them (the scenario's users); copied, wiped at stop. */
  const char *const *users;
  size_t nusers;
};

/* How the admin endpoint has serve restart its array (POST /reset, POST
 * /scenario). fn runs on one of the endpoint's threads, under its lock
 * (nothing else reads the array meanwhile, and no session it runs is in
 * flight): it stops what runs and starts scenario's array - a catalogue
 * name, or NULL for the one running, as it started - on the same balancer
 * port. It returns 0 with *out describing what runs now, or -1 with a
 * one-line reason in err; after -1, *out describes what runs now (the
 * previous array, untouched or started again) when out->nmembers > 0, and
 * nothing runs when it is 0 (serve is stopping). What *out points to stays
 * valid until the next call or admin_stop. */
struct admin_restart {
  int (*fn)(void *ctx, const char *scenario, struct admin_array *out, char *err,
            size_t errlen);
  void *ctx;
};

/* Bytes of a request body the endpoint reads at most (413 above). */
#define ADMIN_MAX_BODY 4096
/* Sessions one POST /sessions runs at most. */
#define ADMIN_MAX_SESSIONS 20
#define ADMIN_MAX_CATALOGUE 64

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
  const char *ca_pem; /* as admin_array's */
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
  /* Who POST /sessions signs in as ("DOMAIN\user:password" specs),
   * nusers of them; copied, wiped at stop. None: it answers 409. */
  const char *const *users;
  size_t nusers;
  /* The scenarios POST /scenario may start (catalogue names), ncatalogue
   * of them (at most ADMIN_MAX_CATALOGUE); copied. */
  const char *const *catalogue;
  size_t ncatalogue;
  /* Zeroed: POST /reset and POST /scenario answer 409. */
  struct admin_restart restart;
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

/* Holds the endpoint's lock, so that no restart (POST /reset, POST
 * /scenario) changes the array until admin_release: for a caller that
 * reads the array itself, as serve prints its banner once the endpoint
 * already answers. Accepts NULL (then nothing is held). */
void admin_hold(struct admin *admin);
void admin_release(struct admin *admin);

/* Stops the endpoint and frees it; members' proxies keep their policies.
 * Accepts NULL. */
void admin_stop(struct admin *admin);

#endif /* ADMIN_H */
