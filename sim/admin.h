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
 * N is the member's position (from 1) or its name ("ISA02"). A change
 * recomputes the member's effective policy with scenario_effective_policy()
 * and hands it to proxy_set_policy(): it applies from the next request,
 * and no connection is dropped. Errors are JSON {"error": "..."} with 400,
 * 404 (unknown member or path) or 405.
 *
 * There is no authentication: anyone who reaches the endpoint can change
 * the array. Bind it to loopback (the default) and never expose it.
 */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "balancer.h"
#include "proxy.h"
#include "scenario.h"

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
};

struct admin;

/* Sets every member's policy from its patch level and script, then serves
 * the endpoint on its own thread. On success *out owns it (release with
 * admin_stop). Returns 0, or -1 with a one-line reason in err. */
int admin_start(const struct admin_config *config, struct admin **out,
                char *err, size_t errlen);

/* The port actually listened on. */
uint16_t admin_port(const struct admin *admin);

/* Stops the endpoint and frees it; members' proxies keep their policies.
 * Accepts NULL. */
void admin_stop(struct admin *admin);

#endif /* ADMIN_H */
