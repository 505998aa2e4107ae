/*
 * topology.c - starts backend and proxy on loopback, hands them the shared
 * clock, random source, users and trace, and runs client sessions.
 */
#include "sim/topology.h"
#include "common/kb_fiber.h"
#include "common/kb_guard.h"
#include "sim/fdlimit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Connections one of n listeners holds: the configured cap (1024 when
 * none), no more than the descriptor limit lets n of them hold. */
static unsigned sim_topology_capacity(const struct sim_topology_config *config,
                                      size_t n)
{
  unsigned long cap = config->max_connections ? config->max_connections
                                              : KB_GUARD_MAX_CONNECTIONS;
  unsigned long fit =
      sim_fd_sessions(config->fds_per_session ? config->fds_per_session
                                              : SIM_FDS_PER_SESSION) /
      (n ? n : 1);

  if(fit < cap)
    cap = fit < 16 ? 16 : fit;
  return (unsigned)cap;
}

/* Stamps each event with the simulated time of its session's timeline
 * (the connection's name, else the observer's), the clock its Date headers
 * and idle timeouts read, and passes it on. */
static void sim__topology_stamp(void *ctx, const struct kb_trace_event *ev)
{
  const struct sim_topology *topo = ctx;
  struct kb_trace_event stamped = *ev;

  if(!stamped.at_ms)
    stamped.at_ms = kb_clock_now(
        &topo->kb_clock,
        ev->conn_name && ev->conn_name[0] ? ev->conn_name : ev->origin);
  kb_trace_emit(&topo->outer_trace, &stamped);
}

/* With TLS and a trace into a recorder that keeps bytes (evidence wants
 * them): readies each hop's tap, so that its servers' TLS records are
 * recorded beside the plaintext. */
static void sim__topology_taps(struct sim_topology *topo,
                               const struct sim_topology_config *config)
{
  struct sim_recorder *rec = sim_recorder_of(config->trace);
  int hop;

  if(topo->tls == SCENARIO_TLS_NONE || !rec || !rec->keep_bytes)
    return;
  for(hop = KB_HOP_CLIENT_PROXY; hop <= KB_HOP_PROXY_BACKEND; hop++) {
    topo->taps[hop].rec = rec;
    topo->taps[hop].names = topo->kb_names;
    topo->taps[hop].hop = (enum kb_hop)hop;
  }
}

int sim_topology_start(const struct sim_topology_config *config,
                       struct sim_topology **out, char *err, size_t errlen)
{
  struct sim_topology *topo;
  struct backend_config bcfg;
  struct proxy_config pcfg;
  char why[256] = "";
  size_t i;

  *out = NULL;
  topo = calloc(1, sizeof(*topo));
  if(!topo) {
    snprintf(err, errlen, "out of memory starting the topology");
    return -1;
  }
  topo->users = config->users;
  topo->trace = config->trace;
  if(config->simulated) {
    sim_clock_init(&topo->clock, SIM_CASE_EPOCH_MS);
    topo->clock_ready = true;
    sim_rng_init(&topo->rng, config->seed);
    topo->kb_clock = sim_clock_as_kb(&topo->clock);
    topo->kb_rng = sim_rng_as_kb(&topo->rng);
    if(sim_names_init(&topo->names)) {
      snprintf(err, errlen, "out of memory starting the topology");
      goto error;
    }
    topo->names_ready = true;
    topo->kb_names = sim_names_as_kb(&topo->names);
    if(config->trace.emit) {
      topo->outer_trace = config->trace;
      topo->trace.emit = sim__topology_stamp;
      topo->trace.ctx = topo;
    }
  }
  /* else: zeroed kb_clock / kb_rng mean the real clock and getrandom(). */

  topo->tls = config->tls;
  if(topo->tls != SCENARIO_TLS_NONE &&
     kb_pki_create(&topo->pki, why, sizeof(why))) {
    snprintf(err, errlen, "%s", why);
    goto error;
  }
  sim__topology_taps(topo, config);
  topo->nproxies = config->nmembers ? config->nmembers : 1;
  topo->member_connections = sim_topology_capacity(config, topo->nproxies);
  memset(&bcfg, 0, sizeof(bcfg));
  bcfg.max_connections =
      (unsigned)(topo->member_connections * topo->nproxies + 64u);
  bcfg.bind_host = config->backend_host;
  bcfg.port = config->backend_port;
  bcfg.clock = topo->kb_clock;
  bcfg.trace = topo->trace;
  bcfg.names = topo->kb_names;
  bcfg.status = config->exchange_status;
  bcfg.auth = config->backend_auth;
  bcfg.users = config->users;
  bcfg.dns_domain = config->dns_domain;
  bcfg.rng = topo->kb_rng;
  if(config->backend_auth == BACKEND_AUTH_INTEGRATED)
    bcfg.krb5_keytab = config->krb5_keytab;
  bcfg.extended_protection = config->extended_protection;
  if(topo->tls == SCENARIO_TLS_BRIDGE) {
    bcfg.tls_cert_pem = topo->pki.exchange.cert_pem;
    bcfg.tls_key_pem = topo->pki.exchange.key_pem;
    if(topo->taps[KB_HOP_PROXY_BACKEND].rec) {
      bcfg.tls_tap = sim_tls_tap_session;
      bcfg.tls_tap_ctx = &topo->taps[KB_HOP_PROXY_BACKEND];
    }
  }
  if(backend_start(&bcfg, &topo->backend, why, sizeof(why))) {
    snprintf(err, errlen, "Exchange (backend): %s", why);
    goto error;
  }
  snprintf(topo->backend_url, sizeof(topo->backend_url), "%s://%s:%u",
           topo->tls == SCENARIO_TLS_BRIDGE ? "https" : "http",
           config->backend_host ? config->backend_host : "127.0.0.1",
           (unsigned)backend_port(topo->backend));

  topo->balancer = config->balancer;
  if(topo->nproxies > SIM_MAX_MEMBERS) {
    snprintf(err, errlen, "at most %d array members", SIM_MAX_MEMBERS);
    goto error;
  }
  for(i = 0; i < topo->nproxies; i++) {
    memset(&pcfg, 0, sizeof(pcfg));
    pcfg.bind_host = config->proxy_host;
    /* The first member takes the requested port; the others pick. */
    pcfg.port = i ? 0 : config->proxy_port;
    pcfg.backend_url = topo->backend_url;
    pcfg.policy = config->nmembers ? config->members[i].policy : config->policy;
    pcfg.name = config->nmembers ? config->members[i].name : NULL;
    pcfg.users = config->users;
    pcfg.dns_domain = config->dns_domain;
    pcfg.auth = config->auth;
    pcfg.defects = config->defects;
    pcfg.krb5_keytab = config->krb5_keytab;
    pcfg.idle_timeout_ms = config->idle_timeout_ms;
    pcfg.max_requests = config->max_requests;
    pcfg.max_connections = topo->member_connections;
    pcfg.clock = topo->kb_clock;
    pcfg.rng = topo->kb_rng;
    pcfg.trace = topo->trace;
    pcfg.names = topo->kb_names;
    if(topo->tls != SCENARIO_TLS_NONE) {
      const struct kb_cert *cert =
          topo->tls == SCENARIO_TLS_BRIDGE && config->bridge_same_certificate
              ? &topo->pki.exchange
              : &topo->pki.isa;

      pcfg.tls_cert_pem = cert->cert_pem;
      pcfg.tls_key_pem = cert->key_pem;
      pcfg.upstream_ca_pem = topo->pki.ca.cert_pem;
      if(topo->taps[KB_HOP_CLIENT_PROXY].rec) {
        pcfg.tls_tap = sim_tls_tap_session;
        pcfg.tls_tap_ctx = &topo->taps[KB_HOP_CLIENT_PROXY];
      }
    }
    if(proxy_start(&pcfg, &topo->proxies[i], why, sizeof(why))) {
      snprintf(err, errlen, "ISA listener %s (proxy): %s",
               pcfg.name ? pcfg.name : "ISA01", why);
      goto error;
    }
    topo->proxy_ports[i] = proxy_port(topo->proxies[i]);
  }
  topo->proxy = topo->proxies[0];
  snprintf(topo->proxy_url, sizeof(topo->proxy_url), "%s://%s:%u",
           topo->tls != SCENARIO_TLS_NONE ? "https" : "http",
           config->proxy_host ? config->proxy_host : "127.0.0.1",
           (unsigned)topo->proxy_ports[0]);
  *out = topo;
  return 0;

error:
  sim_topology_stop(topo);
  return -1;
}

int sim_topology_quiesce(struct sim_topology *topo, unsigned timeout_ms,
                         char *err, size_t errlen)
{
  size_t i;

  /* Listeners first: closing a client connection closes its upstream
   * one, which Exchange sees next. */
  for(i = 0; i < topo->nproxies; i++)
    if(proxy_wait_idle(topo->proxies[i], timeout_ms)) {
      snprintf(err, errlen,
               "ISA listener %zu still holds client connections after %u ms",
               i + 1, timeout_ms);
      return -1;
    }
  if(backend_wait_idle(topo->backend, timeout_ms)) {
    snprintf(err, errlen, "Exchange still holds connections after %u ms",
             timeout_ms);
    return -1;
  }
  return 0;
}

int sim_topology_reset(struct sim_topology *topo, uint64_t seed,
                       const enum proxy_policy *policies, char *err,
                       size_t errlen)
{
  size_t i;

  if(!topo->clock_ready || !topo->names_ready) {
    snprintf(err, errlen, "only a simulated topology can be reset");
    return -1;
  }
  if(sim_topology_quiesce(topo, SIM_QUIESCE_TIMEOUT_MS, err, errlen))
    return -1;
  /* Nothing runs now: no client thread, no connection. The components'
   * threads next read the clock, the names and the seed after taking their
   * component's lock for a new connection, which proxy_reset and
   * backend_reset below take after these writes. */
  sim_clock_reset(&topo->clock);
  sim_rng_init(&topo->rng, seed);
  sim_names_clear(&topo->names);
  for(i = 0; i < topo->nproxies; i++) {
    proxy_reset(topo->proxies[i]);
    if(policies)
      proxy_set_policy(topo->proxies[i], policies[i]);
  }
  backend_reset(topo->backend);
  return 0;
}

void sim_topology_stop(struct sim_topology *topo)
{
  size_t i;

  if(!topo)
    return;
  for(i = 0; i < topo->nproxies; i++)
    proxy_stop(topo->proxies[i]);
  backend_stop(topo->backend);
  kb_pki_free(&topo->pki);
  if(topo->names_ready)
    sim_names_free(&topo->names);
  if(topo->clock_ready)
    sim_clock_free(&topo->clock);
  free(topo);
}

/* The balancer in front of the array (client_balancer): chooses the
 * member for a new connection from its name, so the choice does not depend
 * on which client connects first. Returns 0 after writing the member's
 * port into addr, or -1 to leave the address alone. */
static int sim__balancer_pick(void *ctx, const char *conn_name,
                              struct sockaddr *addr, unsigned addrlen)
{
  const struct sim_topology *topo = ctx;
  struct kb_conn_id id;
  size_t member;
  uint16_t port;

  if(kb_conn_name_parse(conn_name, &id) || !id.conn || id.upstream)
    return -1;
  if(topo->balancer == BALANCER_SEEDED) {
    struct kb_rng rng = topo->kb_rng;
    uint8_t draw[4];
    char label[96];

    snprintf(label, sizeof(label), "balancer/%s", conn_name);
    kb_rng_fill(&rng, label, draw, sizeof(draw));
    member = ((uint32_t)draw[0] | (uint32_t)draw[1] << 8 |
              (uint32_t)draw[2] << 16 | (uint32_t)draw[3] << 24) %
             topo->nproxies;
  }
  else
    member = (id.client + id.conn - 2) % topo->nproxies;
  port = htons(topo->proxy_ports[member]);
  if(addr->sa_family == AF_INET && addrlen >= sizeof(struct sockaddr_in))
    ((struct sockaddr_in *)addr)->sin_port = port;
  else if(addr->sa_family == AF_INET6 && addrlen >= sizeof(struct sockaddr_in6))
    ((struct sockaddr_in6 *)addr)->sin6_port = port;
  else
    return -1;
  return 0;
}

uint32_t sim_topology_run_source(unsigned long k)
{
  return (127u << 24) | (uint32_t)(2 + k % 250);
}

void sim_topology_set_source(struct sim_topology *topo, uint32_t source)
{
  size_t i;

  topo->source = source;
  for(i = 0; i < topo->nproxies; i++)
    proxy_set_source(topo->proxies[i], source);
}

void sim_topology_client_config(const struct sim_topology *topo, unsigned id,
                                const char *domain, const char *user,
                                const char *password, unsigned ews_posts,
                                struct client_config *out)
{
  memset(out, 0, sizeof(*out));
  out->id = id;
  out->base_url = topo->proxy_url;
  out->domain = domain;
  out->user = user;
  out->password = password;
  out->ews_posts = ews_posts;
  out->clock = topo->kb_clock;
  out->rng = topo->kb_rng;
  out->trace = topo->trace;
  out->names = topo->kb_names;
  out->source = topo->source;
  if(topo->tls != SCENARIO_TLS_NONE)
    out->ca_pem = topo->pki.ca.cert_pem;
  if(topo->nproxies > 1) {
    out->balancer.pick = sim__balancer_pick;
    out->balancer.ctx = (void *)topo;
  }
}

struct sim__job {
  struct sim_topology *topo;
  struct sim_session *session;
  const char *spec;
  const char *krb5_ccache; /* NULL: NTLM */
  const struct sim_clients *plan;
};

/* Fiber body (kb_fiber_fn): one client, one session, results copied into
 * the job's session slot (which no other fiber touches). */
static void sim__session(void *arg, size_t k)
{
  struct sim__job *job = (struct sim__job *)arg + k;
  struct sim_session *s = job->session;
  struct client_config cfg;
  struct client *client = NULL;
  char domain[128], user[128], password[256];
  size_t i;

  if(kb_users_split_spec(job->spec, false, domain, sizeof(domain), user,
                         sizeof(user), password, sizeof(password), s->error,
                         sizeof(s->error)))
    return;
  sim_topology_client_config(job->topo, s->id, domain, user, password,
                             job->plan->ews_posts, &cfg);
  cfg.ntlm_kind = job->plan->ntlm;
  cfg.kind = job->plan->kind;
  cfg.connection_sharing = job->plan->connection_sharing;
  cfg.think_min_ms = job->plan->think_min_ms;
  cfg.think_max_ms = job->plan->think_max_ms;
  cfg.idle_timeout_ms = job->plan->idle_timeout_ms;
  cfg.max_requests = job->plan->max_requests;
  cfg.krb5_ccache = job->krb5_ccache;
  if(client_create(&cfg, &client, s->error, sizeof(s->error)))
    return;
  /* Step the session by hand to keep what the user saw after each POST. */
  for(;;) {
    struct client_post_result r;
    struct client_view *views;

    if(client_step(client, &r) != 1)
      break;
    views = realloc(s->views, (s->nresults + 1) * sizeof(*views));
    if(!views) {
      snprintf(s->error, sizeof(s->error), "out of memory keeping results");
      break;
    }
    s->views = views;
    client_view(client, &s->views[s->nresults]);
    s->nresults++;
  }
  client_view(client, &s->view);
  s->results = calloc(s->nresults ? s->nresults : 1, sizeof(*s->results));
  if(!s->results) {
    s->nresults = 0;
    snprintf(s->error, sizeof(s->error), "out of memory keeping results");
  }
  for(i = 0; i < s->nresults; i++)
    s->results[i] = *client_result(client, i);
  client_destroy(client);
}

int sim_run_sessions(struct sim_topology *topo, unsigned nclients,
                     unsigned ews_posts, enum ntlm_response_kind kind,
                     const char *const *users_spec, size_t nusers,
                     struct sim_sessions *out, char *err, size_t errlen)
{
  struct sim_clients plan;

  memset(&plan, 0, sizeof(plan));
  plan.count = nclients;
  plan.ews_posts = ews_posts;
  plan.ntlm = kind;
  plan.kind = CLIENT_KIND_COMMUNICATOR;
  plan.logins = users_spec;
  plan.nlogins = nusers;
  return sim_run_plan(topo, &plan, out, err, errlen);
}

int sim_run_plan(struct sim_topology *topo, const struct sim_clients *plan,
                 struct sim_sessions *out, char *err, size_t errlen)
{
  unsigned nclients = plan->count;
  size_t nusers = plan->nlogins;
  struct sim__job *jobs = NULL;
  struct kb_fiber_stats stats;
  unsigned i;
  int result = -1;

  memset(out, 0, sizeof(*out));
  if(!nclients || !nusers) {
    snprintf(err, errlen, "need at least one client and one user");
    return -1;
  }
  out->sessions = calloc(nclients, sizeof(*out->sessions));
  jobs = calloc(nclients, sizeof(*jobs));
  if(!out->sessions || !jobs) {
    snprintf(err, errlen, "out of memory for %u clients", nclients);
    goto done;
  }
  out->count = nclients;
  for(i = 0; i < nclients; i++) {
    out->sessions[i].id = i + 1;
    jobs[i].topo = topo;
    jobs[i].session = &out->sessions[i];
    jobs[i].spec = plan->logins[i % nusers];
    jobs[i].krb5_ccache =
        plan->krb5_ccaches ? plan->krb5_ccaches[i % nusers] : NULL;
    jobs[i].plan = plan;
  }
  if(kb_fiber_run(nclients, sim__session, jobs, kb_fiber_threads(nclients),
                  &stats, err, errlen))
    goto done;
  out->threads = stats.threads;
  out->stack_peak = stats.stack_peak;

  for(i = 0; i < nclients; i++) {
    const struct sim_session *s = &out->sessions[i];
    size_t j;

    out->sessions[i].klass =
        s->error[0] ? CLIENT_CLASS_INFRASTRUCTURE
                    : client_session_class(s->results, s->nresults);
    if(s->klass == CLIENT_CLASS_INFRASTRUCTURE)
      out->infrastructure++;
    else if(s->view.integration_error)
      out->users_with_error++;
    if(s->error[0])
      out->not_started++;
    for(j = 0; j < s->nresults; j++) {
      out->posts++;
      if(s->results[j].outcome == CLIENT_OK)
        out->posts_ok++;
      else
        out->posts_failed++;
    }
  }
  result = 0;

done:
  free(jobs);
  if(result)
    sim_sessions_free(out);
  return result;
}

void sim_sessions_free(struct sim_sessions *s)
{
  size_t i;

  if(!s)
    return;
  for(i = 0; s->sessions && i < s->count; i++) {
    free(s->sessions[i].results);
    free(s->sessions[i].views);
  }
  free(s->sessions);
  memset(s, 0, sizeof(*s));
}
