/*
 * serve.h - what `kbsim serve`'s files share: its options (cmd_serve.c
 * parses them), the running serve - the live view, the array, the
 * balancer and the admin endpoint that serve_array.c starts, restarts in
 * place for a trainer and stops - and the lines serve_print.c prints.
 *
 * A serve is started and stopped on the main thread. A restart (a reset
 * or a switch of scenario, asked through the admin endpoint) runs on one
 * of the endpoint's threads under its lock, while the main thread waits
 * for a signal: it is the only other code that touches the array.
 */
#ifndef SERVE_H
#define SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "balancer/balancer.h"
#include "common/kb_users.h"
#include "evidence/evidence.h"
#include "live/admin.h"
#include "live/live.h"
#include "sim/scenario.h"
#include "sim/sim_env.h"
#include "sim/topology.h"

#define KBSIM_SERVE_MAX_USERS 64

struct kbsim_endpoint {
  char host[64];
  uint16_t port;
  bool given;
};

struct kbsim_serve_opts {
  const char *file;
  struct kbsim_endpoint proxy, backend, admin;
  enum proxy_policy policy;
  bool have_policy;
  enum proxy_auth auth;
  bool have_auth;
  /* --pass-through, or implied by a pass-through --defect: the listener
   * authenticates nobody and Exchange authenticates NTLM itself. */
  bool pass_through;
  unsigned defects;        /* --defect, PROXY_DEFECT bits */
  const char *krb5_keytab; /* --krb5-keytab: Kerberos too, or NULL */
  struct kb_users *users;  /* --user specs, flag form only */
  /* The same specs as given, for the sessions the admin endpoint runs
   * (owned, wiped at the end). */
  char *user_specs[KBSIM_SERVE_MAX_USERS];
  size_t nuser_specs;
  bool exit_now; /* --help printed: exit with the code returned */
  const char *admin_hosts[ADMIN_MAX_HOSTS]; /* --admin-host */
  size_t nadmin_hosts;
  bool quiet; /* -q: no line per request */
  /* TLS (the flag form's --tls, --bridge-certificate and
   * --extended-protection; a scenario sets them in its file) and where
   * the run's CA certificate is written (--ca-file, either form). */
  enum scenario_tls tls;
  bool bridge_same_certificate, have_bridge_certificate;
  enum backend_epa extended_protection;
  const char *ca_file;
  /* Evidence written on SIGINT/SIGTERM. */
  const char *pcap, *transcript, *json, *html;
};

/* Both sinks of a recording serve: the live view (terminal lines, the
 * console) and the recorder the files are written from. */
struct kbsim_serve_tee {
  struct kb_trace live, rec;
};

/* A running serve: what kbsim_serve_start starts, and what their configs
 * point into (the tee, the balancer's random source), so everything lives
 * until the stop. Owned by cmd_serve.c; zeroed means nothing started. */
struct kbsim_serve {
  /* The scenario running: the command line's, or the catalogue's one a
   * trainer switched to (switched, owned). */
  const struct scenario *sc;
  struct scenario *switched;
  const struct kb_users *users; /* sc's store: the caller's, or owned */
  struct kb_users *switched_users;
  const struct kbsim_serve_opts *o;
  bool balanced;  /* the scenario form: members behind the balancer */
  bool recording; /* --pcap, --transcript, --json or --html */
  /* The flag form has no balancer, and libmicrohttpd hands over no raw
   * bytes: to record the client hop, a one-member TCP relay (the
   * balancer) takes --proxy and the listener moves behind it. */
  bool relay;
  struct sim_topology_config cfg;
  struct sim_topology *topo;
  struct balancer_config bcfg;
  struct sim_rng brng;
  struct balancer *bal;
  struct admin *adm;
  struct live *live;
  struct sim_recorder rec;
  struct kbsim_serve_tee tee;
  char token_path[512]; /* "" until written; removed at the stop */
  struct evidence_serve srv;
  /* The ports a restart starts the array on again: the balancer's (or the
   * flag form's listener's) and Exchange's, as first bound. */
  uint16_t proxy_port, backend_port;
  /* What the admin endpoint is handed (admin_array), kept here. */
  struct admin_member members[ADMIN_MAX_MEMBERS];
  char member_urls[ADMIN_MAX_MEMBERS][128];
  char balancer_url[128], backend_url[128];
  const char *user_specs[KBSIM_SERVE_MAX_USERS];
  char *catalogue[ADMIN_MAX_CATALOGUE]; /* owned */
  size_t ncatalogue;
  bool failed; /* a restart could not start an array: serve stops, exit 1 */
};

/* ---- serve_array.c ----------------------------------------------------- */

/* Starts the live view, s->sc's topology, the balancer (or the flag
 * form's relay) and, with a scenario or --admin, the admin endpoint.
 * Returns 0, or -1 after printing a one-line error (stop s anyway). */
int kbsim_serve_start(struct kbsim_serve *s);

/* Stops the admin endpoint, the balancer and the array, reading what
 * --json reports on the way into s->srv, and frees the live view.
 * Accepts a partly started serve. */
void kbsim_serve_stop_array(struct kbsim_serve *s);

/* ---- serve_print.c ----------------------------------------------------- */

/* Formats http://host:port/ (IPv6 literals bracketed) into out. */
void kbsim_serve_url(const char *host, uint16_t port, char *out, size_t len);

/* The same with https:// when tls. */
void kbsim_serve_url_tls(bool tls, const char *host, uint16_t port, char *out,
                         size_t len);

/* Returns true when host is a loopback address. */
bool kbsim_serve_loopback(const char *host);

/* Warns about what a real client could do that a trainer may not want:
 * too few descriptors, Exchange or the listener reachable from
 * elsewhere. */
void kbsim_serve_warn(const struct kbsim_serve *s);

/* Prints what serves where: the scenario form's array or the flag form's
 * listener, Exchange, the admin endpoint, and the users. */
void kbsim_serve_print(const struct kbsim_serve *s);

/* Prints, after a restart, what runs now: "Reset:" (reset) or
 * "Scenario:", its members and Exchange. */
void kbsim_serve_print_restart(const struct kbsim_serve *s, bool reset);

/* Whether every user of sc is one of the catalogue's throwaway accounts,
 * whose passwords the banner may print. */
bool kbsim_serve_throwaway_users(const struct scenario *sc);

#endif /* SERVE_H */
