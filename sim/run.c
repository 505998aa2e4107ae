/*
 * run.c - scenario -> topology + client plan -> outcome -> verdict.
 */
#include "sim/run.h"
#include "common/kb_guard.h"
#include "common/kb_net.h"
#include "sim/fdlimit.h"
#include "sim/kdc.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Appends printf-formatted text to out[len] at *pos, never past the end. */
static void sim__append(char *out, size_t len, size_t *pos, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));
static void sim__append(char *out, size_t len, size_t *pos, const char *fmt,
                        ...)
{
  va_list ap;
  int n;

  if(*pos >= len)
    return;
  va_start(ap, fmt);
  n = vsnprintf(out + *pos, len - *pos, fmt, ap);
  va_end(ap);
  if(n > 0)
    *pos += (size_t)n < len - *pos ? (size_t)n : len - *pos - 1;
}

static void sim__add_stats(struct proxy_stats *sum, const struct proxy_stats *s)
{
  sum->connections += s->connections;
  sum->requests += s->requests;
  sum->challenges += s->challenges;
  sum->auth_ok += s->auth_ok;
  sum->auth_failed += s->auth_failed;
  sum->reauth_skipped += s->reauth_skipped;
  sum->forwarded += s->forwarded;
  sum->forwarded_empty_posts += s->forwarded_empty_posts;
  sum->upstream_errors += s->upstream_errors;
  sum->basic_ok += s->basic_ok;
  sum->basic_failed += s->basic_failed;
  sum->idle_closed += s->idle_closed;
  sum->max_requests_closed += s->max_requests_closed;
}

/* Whether a topology started for a runs b as well: everything
 * sim_topology_start takes from a scenario but the seed and the members'
 * policies (which sim_topology_reset sets). */
static bool sim__same_shape(const struct scenario *a, const struct scenario *b)
{
  size_t i;

  if(a->nusers != b->nusers || a->auth != b->auth || a->defects != b->defects ||
     a->kerberos != b->kerberos ||
     memcmp(a->user_internal, b->user_internal, sizeof(a->user_internal)) ||
     a->idle_timeout_ms != b->idle_timeout_ms ||
     a->max_requests != b->max_requests || a->balancer != b->balancer ||
     a->nmembers != b->nmembers || strcmp(a->dns_domain, b->dns_domain) ||
     a->tls != b->tls ||
     a->bridge_same_certificate != b->bridge_same_certificate ||
     a->exchange_auth != b->exchange_auth ||
     a->extended_protection != b->extended_protection)
    return false;
  for(i = 0; i < a->nusers; i++)
    if(strcmp(a->user_specs[i], b->user_specs[i]))
      return false;
  for(i = 0; i < a->nmembers; i++)
    if(strcmp(a->members[i].name, b->members[i].name))
      return false;
  return true;
}

/* Member i's policy in sc, for each of the topology's members. */
static void sim__policies(const struct scenario *sc,
                          enum proxy_policy policies[SIM_MAX_MEMBERS])
{
  size_t i;

  for(i = 0; i < SIM_MAX_MEMBERS; i++)
    policies[i] = i < sc->nmembers
                      ? scenario_effective_policy(sc->members[i].patch,
                                                  sc->members[i].script)
                      : PROXY_POLICY_PER_CONNECTION;
}

int sim_scenario_users(const struct scenario *sc, struct kb_users **out,
                       char *err, size_t errlen)
{
  char why[256];
  size_t i;

  *out = kb_users_new();
  if(!*out) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for(i = 0; i < sc->nusers; i++) {
    if(kb_users_add_spec(*out, sc->user_specs[i], why, sizeof(why))) {
      snprintf(err, errlen, "%s: [users]: %s",
               sc->path[0] ? sc->path : sc->name, why);
      kb_users_free(*out);
      *out = NULL;
      return -1;
    }
  }
  return 0;
}

void sim_scenario_topology(const struct scenario *sc, struct kb_users *users,
                           struct kb_trace trace,
                           struct sim_topology_config *cfg)
{
  enum proxy_policy policies[SIM_MAX_MEMBERS];
  size_t i;

  sim__policies(sc, policies);
  memset(cfg, 0, sizeof(*cfg));
  cfg->users = users;
  cfg->dns_domain = sc->dns_domain[0] ? sc->dns_domain : NULL;
  cfg->simulated = true;
  cfg->seed = sc->seed;
  cfg->trace = trace;
  cfg->auth = sc->auth;
  cfg->defects = sc->defects;
  /* A pass-through defect's listener passes NTLM to an Exchange that
   * authenticates; else [exchange] auth says. */
  cfg->backend_auth =
      scenario_passes_through(sc) ? BACKEND_AUTH_INTEGRATED : sc->exchange_auth;
  cfg->idle_timeout_ms = sc->idle_timeout_ms;
  cfg->max_requests = sc->max_requests;
  /* Every session is connected at once (they run on fibers, all started
   * together): past the listener's default of 1024, each member may have
   * to hold every client's connection. */
  if(sc->clients > KB_GUARD_MAX_CONNECTIONS)
    cfg->max_connections = sc->clients;
  cfg->balancer = sc->balancer;
  cfg->tls = sc->tls;
  cfg->bridge_same_certificate = sc->bridge_same_certificate;
  cfg->extended_protection = sc->extended_protection;
  cfg->nmembers = sc->nmembers;
  for(i = 0; i < sc->nmembers; i++) {
    cfg->members[i].name = sc->members[i].name;
    cfg->members[i].policy = policies[i];
  }
}

int sim_scenario_plan(const struct scenario *sc, struct sim_logins *logins,
                      struct sim_clients *plan, char *err, size_t errlen)
{
  size_t i;

  /* Who signs in: the one [clients] user, or every user in turn; a
   * password override replaces what the store knows (a wrong password). */
  memset(logins, 0, sizeof(*logins));
  for(i = 0; i < sc->nusers; i++) {
    const char *spec = sc->user_specs[i];
    size_t n = strcspn(spec, ":");
    char *own = logins->owned[logins->n];

    if(sc->client_user[0] &&
       (strlen(sc->client_user) != n || strncasecmp(spec, sc->client_user, n)))
      continue;
    if(sc->has_password_override)
      snprintf(own, sizeof(logins->owned[0]), "%.*s:%s", (int)n, spec,
               sc->client_password);
    else
      snprintf(own, sizeof(logins->owned[0]), "%s", spec);
    logins->user[logins->n] = i;
    logins->specs[logins->n++] = own;
  }
  if(!logins->n) {
    snprintf(err, errlen, "%s: no user to sign in as", sc->name);
    return -1;
  }
  memset(plan, 0, sizeof(*plan));
  plan->count = sc->clients;
  plan->ews_posts = sc->posts;
  plan->ntlm = sc->ntlm;
  plan->kind = sc->kind;
  plan->connection_sharing = sc->connection_sharing;
  plan->think_min_ms = sc->think_min_ms;
  plan->think_max_ms = sc->think_max_ms;
  plan->idle_timeout_ms = sc->client_idle_timeout_ms;
  plan->max_requests = sc->client_max_requests;
  plan->logins = logins->specs;
  plan->nlogins = logins->n;
  return 0;
}

/* Starts the realm of sc's [kerberos] for runner: MIT's KDC (sim/kdc.h)
 * with every user of [users] as a principal of the realm (the DNS domain
 * in capitals, FABRIKAM.COM) with the same password, and each internal
 * user's ticket-granting ticket (kinit) in a cache of its own. Returns 0,
 * or -1 with a one-line reason in err. */
static int sim__runner_kdc(struct sim_runner *runner, const struct scenario *sc,
                           char *err, size_t errlen)
{
  char realm[SCENARIO_TEXT];
  char domain[128], user[128], password[256];
  char why[512];
  size_t i;

  snprintf(realm, sizeof(realm), "%s",
           sc->dns_domain[0] ? sc->dns_domain : "fabrikam.com");
  for(i = 0; realm[i]; i++)
    realm[i] = (char)toupper((unsigned char)realm[i]);
  if(sim_kdc_start(realm, &runner->kdc, why, sizeof(why))) {
    snprintf(err, errlen, "%s: [kerberos] needs MIT's KDC: %s", sc->name, why);
    return -1;
  }
  for(i = 0; i < sc->nusers; i++) {
    runner->ccache[i][0] = '\0';
    if(kb_users_split_spec(sc->user_specs[i], false, domain, sizeof(domain),
                           user, sizeof(user), password, sizeof(password), why,
                           sizeof(why)) ||
       sim_kdc_add_user(runner->kdc, user, password, why, sizeof(why)) ||
       (sc->user_internal[i] &&
        sim_kdc_kinit(runner->kdc, user, password, runner->ccache[i],
                      sizeof(runner->ccache[i]), why, sizeof(why)))) {
      explicit_bzero(password, sizeof(password));
      snprintf(err, errlen, "%s: %s", sc->name, why);
      return -1;
    }
    explicit_bzero(password, sizeof(password));
  }
  return 0;
}

/* Starts runner's topology for sc: its user store, then the components.
 * Returns 0, or -1 with a one-line reason in err. */
static int sim__runner_start(struct sim_runner *runner,
                             const struct scenario *sc, struct kb_trace trace,
                             char *err, size_t errlen)
{
  struct sim_topology_config cfg;

  if(sim_scenario_users(sc, &runner->users, err, errlen))
    return -1;
  if(sc->kerberos && sim__runner_kdc(runner, sc, err, errlen))
    return -1;
  sim_scenario_topology(sc, runner->users, trace, &cfg);
  cfg.krb5_keytab = runner->kdc ? sim_kdc_keytab(runner->kdc) : NULL;
  if(sim_topology_start(&cfg, &runner->topo, err, errlen))
    return -1;
  runner->shape = *sc;
  runner->trace = trace;
  runner->starts++;
  return 0;
}

/* Makes runner's topology ready for sc: the kept one reset for sc's seed
 * and policies when it fits, else a new one. Returns 0, or -1 with a
 * one-line reason in err. */
static int sim__runner_ready(struct sim_runner *runner,
                             const struct scenario *sc, struct kb_trace trace,
                             char *err, size_t errlen)
{
  if(runner->topo) {
    enum proxy_policy policies[SIM_MAX_MEMBERS];
    char why[256];

    sim__policies(sc, policies);
    if(sim__same_shape(&runner->shape, sc) &&
       runner->trace.emit == trace.emit && runner->trace.ctx == trace.ctx &&
       !sim_topology_reset(runner->topo, sc->seed, policies, why, sizeof(why)))
      return 0;
    /* Another shape, or a topology that did not go quiet: a new one. */
    sim_runner_stop(runner);
  }
  return sim__runner_start(runner, sc, trace, err, errlen);
}

int sim_runner_run(struct sim_runner *runner, const struct scenario *sc,
                   struct kb_trace trace, struct sim_outcome *out, char *err,
                   size_t errlen)
{
  struct sim_topology *topo;
  struct sim_clients plan;
  struct sim_logins logins;
  size_t i, j;
  char why[256];
  int result = -1;
  unsigned long exhausted;

  memset(out, 0, sizeof(*out));
  /* Out of descriptors mid-run, connections fail as if the listener
   * failed them: refuse a run that cannot fit, before it starts. */
  if(sim_fd_check(sc->clients, sim_fd_per_session(sc->kind), err, errlen))
    return -1;
  exhausted = kb_net_fd_exhausted();

  if(sim_scenario_plan(sc, &logins, &plan, err, errlen))
    goto done;

  if(sim__runner_ready(runner, sc, trace, err, errlen))
    goto done;
  topo = runner->topo;
  if(runner->kdc) {
    for(i = 0; i < logins.n; i++)
      logins.ccaches[i] = runner->ccache[logins.user[i]][0]
                              ? runner->ccache[logins.user[i]]
                              : NULL;
    plan.krb5_ccaches = logins.ccaches;
  }
  if(!runner->fresh)
    sim_topology_set_source(topo, sim_topology_run_source(runner->runs));
  runner->runs++;

  if(sim_run_plan(topo, &plan, &out->sessions, err, errlen))
    goto done;

  backend_stats(topo->backend, &out->backend);
  out->nmembers = topo->nproxies;
  for(i = 0; i < topo->nproxies; i++) {
    proxy_stats(topo->proxies[i], &out->members[i]);
    sim__add_stats(&out->proxy, &out->members[i]);
  }
  for(i = 0; i < out->sessions.count; i++)
    for(j = 0; j < out->sessions.sessions[i].nresults; j++)
      if(out->sessions.sessions[i].results[j].kind == CLIENT_POST_OOF ||
         out->sessions.sessions[i].results[j].kind == CLIENT_POST_AVAILABILITY)
        out->ews_posts++;
  /* A socket that could not be opened for want of descriptors makes a
   * failure that is the harness's, not the listener's: no verdict. */
  if(kb_net_fd_exhausted() != exhausted) {
    snprintf(err, errlen,
             "kbsim ran out of file descriptors during the run (%lu "
             "sockets could not be opened): the result says nothing about "
             "the listener; raise ulimit -n above %lu",
             kb_net_fd_exhausted() - exhausted, sim_fd_limit());
    goto done;
  }
  result = 0;

done:
  /* The last connections' closes belong to the evidence, so the caller
   * reads the trace only after they are in: stopping closes them, and a
   * kept topology is left only once it is quiet (else it is stopped). */
  if(result || runner->fresh || !runner->topo ||
     sim_topology_quiesce(runner->topo, SIM_QUIESCE_TIMEOUT_MS, why,
                          sizeof(why)))
    sim_runner_stop(runner);
  if(result)
    sim_outcome_free(out);
  return result;
}

void sim_runner_stop(struct sim_runner *runner)
{
  if(!runner)
    return;
  sim_topology_stop(runner->topo);
  runner->topo = NULL;
  kb_users_free(runner->users);
  runner->users = NULL;
  sim_kdc_stop(runner->kdc);
  runner->kdc = NULL;
}

int sim_scenario_run(const struct scenario *sc, struct kb_trace trace,
                     struct sim_outcome *out, char *err, size_t errlen)
{
  struct sim_runner fresh;

  memset(&fresh, 0, sizeof(fresh));
  fresh.fresh = true;
  return sim_runner_run(&fresh, sc, trace, out, err, errlen);
}

void sim_outcome_free(struct sim_outcome *o)
{
  if(!o)
    return;
  sim_sessions_free(&o->sessions);
  memset(o, 0, sizeof(*o));
}

/* "s" for a plural count, "" for one. */
static const char *sim__s(uint64_t n)
{
  return n == 1 ? "" : "s";
}

static void sim__expect_count(const char *what, int64_t want, uint64_t got,
                              char *why, size_t len, size_t *pos, int *ok)
{
  if(want < 0 || (uint64_t)want == got)
    return;
  sim__append(why, len, pos, "%sexpected %s %" PRId64 ", got %" PRIu64,
              *pos ? "; " : "", what, want, got);
  *ok = 0;
}

/* Why the first session the harness failed ended: its error, or the
 * detail of its first such POST. */
static const char *sim__harness_detail(const struct sim_outcome *o)
{
  size_t i, j;

  for(i = 0; i < o->sessions.count; i++) {
    const struct sim_session *s = &o->sessions.sessions[i];
    if(s->klass != CLIENT_CLASS_INFRASTRUCTURE)
      continue;
    if(s->error[0])
      return s->error;
    for(j = 0; j < s->nresults; j++)
      if(s->results[j].harness_failed)
        return s->results[j].detail;
  }
  return "unknown";
}

int sim_scenario_check(const struct scenario *sc, const struct sim_outcome *o,
                       char *why, size_t len)
{
  const struct scenario_expect *e = &sc->expect;
  size_t pos = 0;
  int ok = 1;
  int got_error = o->sessions.users_with_error > 0;

  if(len)
    why[0] = '\0';
  if(e->outcome >= 0 && e->outcome != got_error) {
    sim__append(why, len, &pos, "expected %s, got %s",
                e->outcome ? "error" : "clean", got_error ? "error" : "clean");
    ok = 0;
  }
  sim__expect_count("empty_posts", e->empty_posts, o->backend.empty_posts, why,
                    len, &pos, &ok);
  sim__expect_count("users_with_error", e->users_with_error,
                    o->sessions.users_with_error, why, len, &pos, &ok);
  sim__expect_count("backend_requests", e->backend_requests,
                    o->backend.requests, why, len, &pos, &ok);
  sim__expect_count("auth_failed", e->auth_failed,
                    o->proxy.auth_failed + o->proxy.basic_failed, why, len,
                    &pos, &ok);
  if(o->sessions.infrastructure) {
    /* The harness failed: no expectation can be judged, met or not. */
    pos = 0;
    sim__append(why, len, &pos,
                "%u session%s could not run (infrastructure, not the "
                "listener): %s",
                o->sessions.infrastructure, sim__s(o->sessions.infrastructure),
                sim__harness_detail(o));
    ok = 0;
  }
  return ok;
}

enum client_class sim_outcome_class(const struct sim_outcome *o)
{
  enum client_class worst = CLIENT_CLASS_CLEAN;
  size_t i;

  for(i = 0; i < o->sessions.count; i++)
    if(o->sessions.sessions[i].klass > worst)
      worst = o->sessions.sessions[i].klass;
  return worst;
}

void sim_outcome_summary(const struct scenario *sc, const struct sim_outcome *o,
                         char *out, size_t len)
{
  const struct client_kind_info *kind = client_kind_info(sc->kind);
  size_t pos = 0;
  size_t i;

  sim__append(out, len, &pos,
              "%u of %u user%s saw %s; Exchange "
              "received %" PRIu64 " of %" PRIu64 " EWS POST%s empty",
              o->sessions.users_with_error, (unsigned)o->sessions.count,
              sim__s(o->sessions.count),
              kind ? kind->symptom : "the Outlook Integration Error",
              o->backend.empty_posts, o->ews_posts, sim__s(o->ews_posts));
  if(o->backend.empty_posts) {
    sim__append(out, len, &pos, " (");
    for(i = 0; i < o->nmembers; i++) {
      const struct scenario_member *m = &sc->members[i];
      sim__append(
          out, len, &pos, "%s%s %s%s %s: %" PRIu64, i ? ", " : "", m->name,
          scenario_patch_name(m->patch), m->script ? "+script" : "",
          proxy_policy_name(scenario_effective_policy(m->patch, m->script)),
          o->members[i].forwarded_empty_posts);
    }
    sim__append(out, len, &pos, ")");
  }
  sim__append(out, len, &pos, "; %" PRIu64 " request%s reached Exchange",
              o->backend.requests, sim__s(o->backend.requests));
  if(o->proxy.auth_failed || o->proxy.basic_failed)
    sim__append(out, len, &pos, "; %" PRIu64 " login%s refused",
                o->proxy.auth_failed + o->proxy.basic_failed,
                sim__s(o->proxy.auth_failed + o->proxy.basic_failed));
  if(o->backend.channel_binding_refused)
    sim__append(out, len, &pos, "; Exchange refused %" PRIu64 " login%s: %s",
                o->backend.channel_binding_refused,
                sim__s(o->backend.channel_binding_refused),
                o->backend.channel_binding_why);
}
