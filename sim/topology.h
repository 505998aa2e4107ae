/*
 * topology.h - wires backend, proxy and clients into the KB 942638
 * topology inside one process, and runs Communicator sessions through it.
 *
 *   client(s) --HTTP/NTLM--> proxy (ISA listener) --HTTP--> backend (Exchange)
 *
 * With TLS (offload or bridge) the hops marked HTTP become HTTPS with a
 * CA and certificates the topology makes for the run.
 *
 * Everything listens on loopback ports (0 = ephemeral). The topology owns
 * the simulated clock and the seeded random source and hands them, with the
 * user store and the trace sink, to each component through its config.
 */
#ifndef TOPOLOGY_H
#define TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "balancer/balancer.h"
#include "client/client.h"
#include "client/verdict.h"
#include "common/kb_cert.h"
#include "common/kb_env.h"
#include "common/kb_users.h"
#include "proxy/proxy.h"
#include "sim/scenario.h"
#include "sim/sim_env.h"
#include "sim/tls_tap.h"

#define SIM_MAX_MEMBERS 16

/* One ISA array member. */
struct sim_member {
  const char *name;         /* "ISA01"; Via, NTLM target, traces */
  enum proxy_policy policy; /* its effective policy */
};

struct sim_topology_config {
  enum proxy_policy policy; /* with no members: one, "ISA01" */
  size_t nmembers;          /* 0 or up to SIM_MAX_MEMBERS */
  struct sim_member members[SIM_MAX_MEMBERS];
  enum balancer_mode balancer;
  enum proxy_auth auth; /* every member's listener */
  unsigned defects;     /* every member's (proxy_config.defects) */
  /* Exchange's own authentication: none (it trusts the listeners) or
   * integrated, with users, behind a listener that passes NTLM through
   * (auth PROXY_AUTH_NONE). */
  enum backend_auth backend_auth;
  /* Integrated Exchange: Extended Protection (backend.h). */
  enum backend_epa extended_protection;
  /* TLS: with anything but none, the topology makes a throwaway CA and
   * certificates for the run (kb_pki_create), every listener serves HTTPS
   * and the clients verify against the CA; bridge also makes Exchange
   * serve HTTPS, the listeners verifying it. bridge_same_certificate:
   * the listeners present Exchange's certificate (the same on both hops)
   * instead of their own. */
  enum scenario_tls tls;
  bool bridge_same_certificate;
  int64_t idle_timeout_ms; /* listener keep-alive limits */
  unsigned max_requests;
  /* Client connections each listener holds (0: 1024, fewer when the
   * descriptor limit cannot hold that many); Exchange takes every
   * listener's worth plus 64, so a listener never forwards into a full
   * Exchange. */
  unsigned max_connections;
  unsigned fds_per_session;     /* descriptors a session costs; 0 = a run's */
  const struct kb_users *users; /* borrowed; must outlive the topology */
  const char *dns_domain;       /* the listeners'; NULL = fabrikam.com */
  const char *proxy_host;       /* numeric; "127.0.0.1" when NULL */
  uint16_t proxy_port;          /* 0 = ephemeral */
  const char *backend_host;
  uint16_t backend_port;
  /* Seeded simulation (reproducible) or real clock and OS randomness
   * (what `kbsim serve` uses for real clients). */
  bool simulated;
  uint64_t seed;
  /* Exchange answers GET /kbsim/status to loopback peers (backend.h):
   * what `kbsim serve` turns on for `kbsim probe --exchange-status`. */
  bool exchange_status;
  struct kb_trace trace; /* where every component's events go */
  /* Every member accepts Kerberos with this keytab (proxy_config's
   * krb5_keytab; sim/kdc.h makes one), and so does Exchange when it
   * authenticates itself (backend_auth integrated); NULL: none.
   * Borrowed. */
  const char *krb5_keytab;
};

struct sim_topology {
  struct sim_clock clock;
  struct sim_rng rng;
  struct sim_names names;
  bool names_ready;
  bool clock_ready;
  struct kb_clock kb_clock; /* what components were handed */
  struct kb_rng kb_rng;
  struct kb_names kb_names;
  struct kb_trace trace;       /* what components were handed */
  struct kb_trace outer_trace; /* the caller's, behind a simulated stamp */
  const struct kb_users *users;
  struct backend *backend;
  struct proxy *proxy; /* the first member */
  struct proxy *proxies[SIM_MAX_MEMBERS];
  uint16_t proxy_ports[SIM_MAX_MEMBERS];
  size_t nproxies;
  unsigned member_connections; /* each listener's cap; Exchange's is
                                  nproxies times it, plus 64 */
  enum balancer_mode balancer;
  uint32_t source; /* clients' and members' IPv4 source; 0: the kernel's */
  char backend_url[64];
  char proxy_url[64];
  enum scenario_tls tls;
  struct kb_pki pki; /* with TLS: the run's CA and certificates; zeroed */
  /* With TLS and a recorder keeping bytes: where each hop's servers hand
   * their sessions (sim/tls_tap.h), by enum kb_hop. */
  struct sim_tls_tap taps[2];
};

/* Starts backend then proxy. Returns 0 with *out owning the topology
 * (release with sim_topology_stop), or -1 with a one-line reason in err. */
int sim_topology_start(const struct sim_topology_config *config,
                       struct sim_topology **out, char *err, size_t errlen);

/* How long sim_topology_quiesce waits for the last connections to close
 * (real time) before giving up on reusing the topology. */
#define SIM_QUIESCE_TIMEOUT_MS 10000u

/* Waits until every listener and Exchange hold no connection: the
 * clients have closed theirs, and each close has gone through the
 * listener to its upstream connection and been traced. Returns 0, or -1
 * with a one-line reason in err when some stayed open for timeout_ms. */
int sim_topology_quiesce(struct sim_topology *topo, unsigned timeout_ms,
                         char *err, size_t errlen);

/* Makes a running simulated topology what sim_topology_start made of it,
 * seeded with seed, without restarting anything (a sweep's next seed):
 * waits until it is quiet (sim_topology_quiesce), then puts back every
 * timeline of the clock, the random source's seed, the table of
 * connection names, each listener's and Exchange's counters, connection
 * ids and records, and sets member i's policy to policies[i] (nproxies of
 * them; NULL keeps them). Ports, threads, users and the rest of the
 * configuration stay. Returns 0, or -1 with a one-line reason in err
 * (not simulated, or connections stayed open): start a new topology. */
int sim_topology_reset(struct sim_topology *topo, uint64_t seed,
                       const enum proxy_policy *policies, char *err,
                       size_t errlen);

/* The loopback source address of the k-th run on a kept topology:
 * 127.0.0.2 to 127.0.0.251 in turn (127.0.0.1 is every listener's). */
uint32_t sim_topology_run_source(unsigned long k);

/* Makes the next clients' connections and every member's connections to
 * Exchange leave from the IPv4 address source (host order; 0: the
 * kernel's choice, 127.0.0.1). Runs on a kept topology each take their
 * own (sim_topology_run_source): a connection's ports stay in TIME_WAIT
 * for a minute per (source, destination), and thousands of runs a minute
 * on the same listener ports from one source wear the ephemeral ports
 * out and make every connect() cost more. Nothing a run records depends
 * on it. Call it between runs. */
void sim_topology_set_source(struct sim_topology *topo, uint32_t source);

/* Stops proxy then backend and frees the topology. Accepts NULL. */
void sim_topology_stop(struct sim_topology *topo);

/* Fills a client config aimed at the topology's proxy for client id (from
 * 1) with the given credentials; the topology's clock, random source and
 * trace are handed over. Strings are borrowed until client_create. */
void sim_topology_client_config(const struct sim_topology *topo, unsigned id,
                                const char *domain, const char *user,
                                const char *password, unsigned ews_posts,
                                struct client_config *out);

/* One client's session, as run by sim_run_sessions. */
struct sim_session {
  unsigned id;
  struct client_view view;
  size_t nresults;
  struct client_post_result *results; /* owned */
  struct client_view *views;          /* owned: the view after each POST */
  char error[256];                    /* client_create failure, or "" */
  enum client_class klass;            /* why it ended so (verdict.h) */
};

struct sim_sessions {
  size_t count;
  struct sim_session *sessions; /* ordered by client id, not by finish */
  unsigned users_with_error;    /* sessions showing the notification
                                   for the listener's doing (server-error,
                                   auth-failed), never infrastructure */
  unsigned infrastructure;      /* sessions the harness failed */
  unsigned not_started;         /* sessions whose client could not start */
  unsigned posts, posts_ok, posts_failed;
  unsigned threads;  /* worker threads the sessions ran on */
  size_t stack_peak; /* most stack one session's fiber touched, bytes */
};

/* Runs nclients Communicator sessions concurrently, each a fiber
 * (common/kb_fiber.h) on one of a few worker threads (one per core, never
 * more than nclients), client i (from 1) signing in as users_spec[(i-1) %
 * nusers] ("DOMAIN\user:password" specs; borrowed). Returns 0 with *out
 * filled (release with sim_sessions_free), or -1 with a reason in err when
 * a worker or a session's stack could not be made. */
int sim_run_sessions(struct sim_topology *topo, unsigned nclients,
                     unsigned ews_posts, enum ntlm_response_kind kind,
                     const char *const *users_spec, size_t nusers,
                     struct sim_sessions *out, char *err, size_t errlen);

/* Who the clients of a run are and how they behave. */
struct sim_clients {
  unsigned count;
  unsigned ews_posts;
  enum ntlm_response_kind ntlm;
  enum client_kind kind;
  bool connection_sharing; /* dotnet (client_config) */
  int64_t think_min_ms, think_max_ms;
  int64_t idle_timeout_ms; /* the clients' own keep-alive limits */
  unsigned max_requests;
  /* Client i (from 1) signs in as logins[(i-1) % nlogins], a
   * "DOMAIN\user:password" spec (borrowed). */
  const char *const *logins;
  size_t nlogins;
  /* NULL, or parallel to logins: the login's Kerberos credential cache
   * (client_config.krb5_ccache: a user inside the network), or NULL for
   * NTLM. Borrowed. */
  const char *const *krb5_ccaches;
};

/* Runs plan->count sessions concurrently, as sim_run_sessions. */
int sim_run_plan(struct sim_topology *topo, const struct sim_clients *plan,
                 struct sim_sessions *out, char *err, size_t errlen);

/* Frees what sim_run_sessions filled in. Accepts an all-zero struct. */
void sim_sessions_free(struct sim_sessions *s);

#endif /* TOPOLOGY_H */
