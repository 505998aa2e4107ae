/*
 * serve_array.c - what `kbsim serve` runs: the live view, the scenario's
 * topology (Exchange and every member), the balancer in front (or the
 * flag form's recording relay) and the admin endpoint; restarting the
 * array in place when a trainer resets it or switches to another
 * scenario of the catalogue; and stopping it all.
 *
 * A restart keeps the ports people were given: the balancer's (the flag
 * form's listener's) and Exchange's are bound again, the admin endpoint
 * never stops; the members come back on new ports, as many as the
 * scenario has. It runs on an admin endpoint's thread under its lock
 * (admin.h: admin_restart); the main thread meanwhile only waits for a
 * signal.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "catalogue.h"
#include "cli.h"
#include "serve.h"
#include "sim/fdlimit.h"

/* kb_trace emit: hands ev to both sinks, each of which locks its own. */
static void kbsim_serve_tee_emit(void *ctx, const struct kb_trace_event *ev)
{
  const struct kbsim_serve_tee *t = ctx;

  kb_trace_emit(&t->live, ev);
  kb_trace_emit(&t->rec, ev);
}

/* With TLS and --ca-file, writes the run's CA certificate (public) there,
 * again after a restart (a new CA). Returns 0, or -1 with a one-line
 * reason in err. */
static int kbsim_serve_write_ca(struct kbsim_serve *s, char *err, size_t errlen)
{
  const char *path = s->o->ca_file;
  FILE *f;
  bool ok;

  if(!path || s->topo->tls == SCENARIO_TLS_NONE)
    return 0;
  f = fopen(path, "w");
  ok = f && fputs(s->topo->pki.ca.cert_pem, f) >= 0;
  if(f && fclose(f))
    ok = false;
  if(!ok)
    snprintf(err, errlen,
             "--ca-file %s: cannot write it (%s); give a path in a "
             "directory you can write",
             path, strerror(errno));
  return ok ? 0 : -1;
}

/* Starts the topology of s->sc: the members listen on loopback ephemeral
 * ports behind a balancer or relay, or the one member on --proxy (on the
 * port it had, after a restart); Exchange on --backend (the same). Returns
 * 0, or -1 with a one-line reason in err. */
static int kbsim_serve_topology(struct kbsim_serve *s, char *err, size_t errlen)
{
  const struct scenario *sc = s->sc;
  const struct kbsim_serve_opts *o = s->o;
  struct sim_topology_config *cfg = &s->cfg;
  bool behind = s->balanced || s->relay;
  size_t i;

  memset(cfg, 0, sizeof(*cfg));
  cfg->trace = live_as_trace(s->live);
  cfg->nmembers = sc->nmembers;
  for(i = 0; i < sc->nmembers; i++) {
    cfg->members[i].name = sc->members[i].name;
    cfg->members[i].policy =
        scenario_effective_policy(sc->members[i].patch, sc->members[i].script);
  }
  cfg->policy = cfg->members[0].policy;
  cfg->auth = sc->auth;
  /* The flag form's --defect, or a file's [listener] defect. */
  cfg->defects = o->defects | sc->defects;
  cfg->krb5_keytab = o->krb5_keytab;
  cfg->backend_auth = o->pass_through || scenario_passes_through(sc)
                          ? BACKEND_AUTH_INTEGRATED
                          : sc->exchange_auth;
  cfg->extended_protection = sc->extended_protection;
  cfg->tls = sc->tls;
  cfg->bridge_same_certificate = sc->bridge_same_certificate;
  if(s->recording && sc->tls != SCENARIO_TLS_NONE) {
    /* What the balancer relays is TLS records, not HTTP. */
    snprintf(err, errlen,
             "--pcap, --transcript, --json and --html cannot record a TLS "
             "serve yet (the client hop is encrypted where serve records "
             "it); drop them, or serve with tls none");
    return -1;
  }
  cfg->idle_timeout_ms = sc->idle_timeout_ms;
  cfg->max_requests = sc->max_requests;
  cfg->users = s->users;
  cfg->dns_domain = sc->dns_domain[0] ? sc->dns_domain : NULL;
  cfg->proxy_host = behind ? "127.0.0.1" : o->proxy.host;
  cfg->proxy_port = behind ? 0 : s->proxy_port ? s->proxy_port : o->proxy.port;
  cfg->backend_host = o->backend.host;
  cfg->backend_port = s->backend_port ? s->backend_port : o->backend.port;
  cfg->simulated = false;      /* real clients: real clock, real randomness */
  cfg->exchange_status = true; /* for kbsim probe --exchange-status */
  cfg->fds_per_session = SIM_FDS_PER_SERVED_SESSION;
  /* --pcap/--transcript: every member's upstream hop (its libcurl) and,
   * through the balancer, the client hop, stamped on the real clock. */
  if(s->recording) {
    s->tee.live = cfg->trace;
    s->tee.rec = sim_recorder_as_kb(&s->rec);
    cfg->trace.emit = kbsim_serve_tee_emit;
    cfg->trace.ctx = &s->tee;
  }
  if(sim_topology_start(cfg, &s->topo, err, errlen))
    return -1;
  return kbsim_serve_write_ca(s, err, errlen);
}

/* Starts the balancer (or the flag form's relay) on --proxy in front of
 * the members (on the port it had, after a restart). Returns 0, or -1
 * with a one-line reason in err. */
static int kbsim_serve_balancer(struct kbsim_serve *s, char *err, size_t errlen)
{
  const struct sim_topology *topo = s->topo;
  struct balancer_config *bcfg = &s->bcfg;
  size_t i;

  memset(bcfg, 0, sizeof(*bcfg));
  bcfg->bind_host = s->o->proxy.host;
  bcfg->port = s->proxy_port ? s->proxy_port : s->o->proxy.port;
  bcfg->nmembers = topo->nproxies;
  /* As many as the members hold together: one member connection per
   * client connection. */
  bcfg->max_connections = (unsigned)(topo->member_connections * topo->nproxies);
  for(i = 0; i < topo->nproxies; i++) {
    bcfg->members[i].host = "127.0.0.1";
    bcfg->members[i].port = topo->proxy_ports[i];
  }
  bcfg->mode = s->sc->balancer;
  /* Seeded: the scenario's seed, so a live array spreads connections
   * in the same order as the scenario's run. */
  sim_rng_init(&s->brng, s->sc->seed);
  bcfg->rng = sim_rng_as_kb(&s->brng);
  bcfg->trace = s->cfg.trace;
  return balancer_start(bcfg, &s->bal, err, errlen);
}

/* Starts what runs behind the admin endpoint: the topology and, in front,
 * the balancer or relay; remembers the ports a restart binds again.
 * Returns 0, or -1 with a one-line reason in err. */
static int kbsim_serve_components(struct kbsim_serve *s, char *err,
                                  size_t errlen)
{
  if(kbsim_serve_topology(s, err, errlen) ||
     ((s->balanced || s->relay) && kbsim_serve_balancer(s, err, errlen)))
    return -1;
  s->backend_port = backend_port(s->topo->backend);
  s->proxy_port = s->bal ? balancer_port(s->bal) : proxy_port(s->topo->proxy);
  return 0;
}

/* Describes what runs for the admin endpoint into *out, pointing into s
 * (valid until the next restart or the stop). */
static void kbsim_serve_array(struct kbsim_serve *s, struct admin_array *out)
{
  const struct kbsim_serve_opts *o = s->o;
  const struct sim_topology *topo = s->topo;
  size_t i;

  memset(out, 0, sizeof(*out));
  memset(s->members, 0, sizeof(s->members));
  for(i = 0; i < topo->nproxies; i++) {
    kbsim_serve_url_tls(topo->tls != SCENARIO_TLS_NONE, s->cfg.proxy_host,
                        topo->proxy_ports[i], s->member_urls[i],
                        sizeof(s->member_urls[i]));
    s->members[i].name = s->sc->members[i].name;
    s->members[i].url = s->member_urls[i];
    s->members[i].patch = s->sc->members[i].patch;
    s->members[i].script = s->sc->members[i].script;
    s->members[i].proxy = topo->proxies[i];
  }
  kbsim_serve_url_tls(topo->tls == SCENARIO_TLS_BRIDGE, o->backend.host,
                      backend_port(topo->backend), s->backend_url,
                      sizeof(s->backend_url));
  out->scenario = s->balanced ? s->sc->name : NULL;
  out->members = s->members;
  out->nmembers = topo->nproxies;
  out->backend = topo->backend;
  out->backend_url = s->backend_url;
  if(s->bal) {
    kbsim_serve_url_tls(topo->tls != SCENARIO_TLS_NONE, o->proxy.host,
                        balancer_port(s->bal), s->balancer_url,
                        sizeof(s->balancer_url));
    out->balancer = s->bal;
    out->balancer_url = s->balancer_url;
    out->balancer_mode = s->bcfg.mode;
  }
  /* Who the console's sessions sign in as: the scenario's users, or the
   * flag form's --user specs. */
  if(s->balanced) {
    for(i = 0; i < s->sc->nusers && i < KBSIM_SERVE_MAX_USERS; i++)
      s->user_specs[i] = s->sc->user_specs[i];
  }
  else {
    for(i = 0; i < o->nuser_specs; i++)
      s->user_specs[i] = o->user_specs[i];
  }
  /* The console's sessions verify the listeners as kbsim client
   * --ca-file does. */
  out->ca_pem = topo->tls != SCENARIO_TLS_NONE ? topo->pki.ca.cert_pem : NULL;
  out->users = s->user_specs;
  out->nusers = i;
}

/* Loads the catalogue's scenario name, with its users' store, for a
 * switch. Returns 0 with *sc and *users owned by the caller, or -1 with a
 * one-line reason in err. */
static int kbsim_serve_load(const char *name, struct scenario **sc,
                            struct kb_users **users, char *err, size_t errlen)
{
  char dir[4096], path[4200], uerr[256];
  size_t i;

  *sc = calloc(1, sizeof(**sc));
  *users = kb_users_new();
  if(!*sc || !*users) {
    snprintf(err, errlen, "out of memory");
    goto error;
  }
  /* The catalogue's own file, whatever ./NAME.ini or $KBSIM_SCENARIOS
   * hold: the console offers the catalogue's names. */
  catalogue_dir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/%s.ini", dir, name);
  if(scenario_load(path, *sc, err, errlen))
    goto error;
  for(i = 0; i < (*sc)->nusers; i++)
    if(kb_users_add_spec(*users, (*sc)->user_specs[i], uerr, sizeof(uerr))) {
      snprintf(err, errlen, "%.300s: [users]: %.200s", path, uerr);
      goto error;
    }
  return 0;

error:
  free(*sc);
  kb_users_free(*users);
  *sc = NULL;
  *users = NULL;
  return -1;
}

/* admin_restart's fn: stops the balancer and the array, resets the live
 * view (every console clears), and starts name's array (NULL: the one
 * running, as it started) on the same ports. A scenario that cannot be
 * read leaves everything as it was; an array that cannot be started stops
 * serve (exit 1). */
static int kbsim_serve_restart(void *ctx, const char *name,
                               struct admin_array *out, char *err,
                               size_t errlen)
{
  struct kbsim_serve *s = ctx;
  struct scenario *next = NULL;
  struct kb_users *next_users = NULL;
  char since[LIVE_SINCE_MAX], why[512];

  if(name && (!s->balanced ||
              kbsim_serve_load(name, &next, &next_users, why, sizeof(why)))) {
    if(!s->balanced)
      snprintf(why, sizeof(why), "serve without a SCENARIO cannot switch");
    snprintf(err, errlen, "scenario %s: %s; %s runs as before", name, why,
             s->sc->name);
    kbsim_serve_array(s, out);
    return -1;
  }
  balancer_stop(s->bal);
  s->bal = NULL;
  sim_topology_stop(s->topo);
  s->topo = NULL;
  /* The evidence is of what passed since: the old array's is gone with
   * it (nothing emits into the recorder now). */
  if(s->recording) {
    sim_recorder_free(&s->rec);
    sim_recorder_init(&s->rec, true);
  }
  if(name)
    snprintf(since, sizeof(since), "scenario %s started", next->name);
  else
    snprintf(since, sizeof(since), "the reset");
  live_reset(s->live, since);
  if(next) {
    free(s->switched);
    kb_users_free(s->switched_users);
    s->sc = s->switched = next;
    s->users = s->switched_users = next_users;
  }
  if(kbsim_serve_components(s, why, sizeof(why))) {
    fprintf(stderr, "kbsim: cannot start the array again: %s; serve stops\n",
            why);
    snprintf(err, errlen, "cannot start the array again: %s; serve stops", why);
    balancer_stop(s->bal);
    s->bal = NULL;
    sim_topology_stop(s->topo);
    s->topo = NULL;
    s->failed = true;
    kill(getpid(), SIGTERM);
    memset(out, 0, sizeof(*out));
    return -1;
  }
  kbsim_serve_array(s, out);
  kbsim_serve_print_restart(s, !name);
  return 0;
}

/* The names of the catalogue's scenarios, for the console's picker (none
 * in the flag form, which cannot switch). */
static void kbsim_serve_catalogue(struct kbsim_serve *s)
{
  char **names = NULL, err[512];
  size_t n = 0, i;

  if(!s->balanced || catalogue_names(&names, &n, err, sizeof(err)))
    return;
  for(i = 0; i < n && s->ncatalogue < ADMIN_MAX_CATALOGUE; i++) {
    size_t len = strlen(names[i]);

    if(len > 4 && !strcmp(names[i] + len - 4, ".ini"))
      len -= 4;
    s->catalogue[s->ncatalogue] = strndup(names[i], len);
    if(s->catalogue[s->ncatalogue])
      s->ncatalogue++;
  }
  catalogue_names_free(names, n);
}

/* Starts the admin endpoint on --admin and writes its token file. Returns
 * 0, or -1 after printing a one-line error. */
static int kbsim_serve_admin(struct kbsim_serve *s)
{
  const struct kbsim_serve_opts *o = s->o;
  const char *env_token = getenv("KBSIM_ADMIN_TOKEN");
  struct admin_config acfg;
  struct admin_array arr;
  char err[512];

  kbsim_serve_array(s, &arr);
  kbsim_serve_catalogue(s);
  memset(&acfg, 0, sizeof(acfg));
  acfg.bind_host = o->admin.host;
  acfg.port = o->admin.port;
  acfg.scenario = arr.scenario;
  acfg.members = arr.members;
  acfg.nmembers = arr.nmembers;
  acfg.backend = arr.backend;
  acfg.backend_url = arr.backend_url;
  acfg.balancer = arr.balancer;
  acfg.balancer_url = arr.balancer_url;
  acfg.balancer_mode = arr.balancer_mode;
  acfg.ca_pem = arr.ca_pem;
  acfg.users = arr.users;
  acfg.nusers = arr.nusers;
  acfg.catalogue = (const char *const *)s->catalogue;
  acfg.ncatalogue = s->ncatalogue;
  acfg.restart.fn = kbsim_serve_restart;
  acfg.restart.ctx = s;
  acfg.token = env_token && *env_token ? env_token : NULL;
  acfg.hosts = o->admin_hosts;
  acfg.nhosts = o->nadmin_hosts;
  acfg.live = s->live;
  if(acfg.token && admin_token_check(acfg.token, err, sizeof(err))) {
    fprintf(stderr, "kbsim: KBSIM_ADMIN_TOKEN: %s\n", err);
    return -1;
  }
  if(admin_start(&acfg, &s->adm, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  admin_token_path(admin_port(s->adm), s->token_path, sizeof(s->token_path));
  if(admin_token_write(s->token_path, admin_token(s->adm), err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    s->token_path[0] = '\0';
    return -1;
  }
  if(!kbsim_serve_loopback(o->admin.host))
    fprintf(stderr,
            "kbsim: warning: the admin endpoint on %s is reachable from "
            "other machines, over plain HTTP; whoever sees the token can "
            "change the array. Bind it to 127.0.0.1 unless you must\n",
            o->admin.host);
  return 0;
}

int kbsim_serve_start(struct kbsim_serve *s)
{
  struct live_config lcfg;
  char err[512];

  memset(&lcfg, 0, sizeof(lcfg));
  lcfg.out = s->o->quiet ? NULL : stdout;
  if(live_new(&lcfg, &s->live, err, sizeof(err)) ||
     kbsim_serve_components(s, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return -1;
  }
  if(s->balanced || s->o->admin.given)
    return kbsim_serve_admin(s);
  return 0;
}

void kbsim_serve_stop_array(struct kbsim_serve *s)
{
  struct evidence_serve *srv = &s->srv;
  size_t i;

  /* The admin endpoint and the balancer point into the topology: stop
   * them first. What --json reports is read on the way: the balancer's
   * counters before it goes, the members' once nothing reaches them. */
  admin_stop(s->adm);
  s->adm = NULL;
  if(s->token_path[0])
    unlink(s->token_path);
  if(s->bal)
    balancer_stats(s->bal, &srv->balancer);
  balancer_stop(s->bal);
  s->bal = NULL;
  if(s->topo) {
    srv->sc = s->sc;
    srv->balanced = s->balanced || s->relay;
    srv->nmembers = s->topo->nproxies;
    for(i = 0; i < s->topo->nproxies; i++) {
      srv->policies[i] = proxy_get_policy(s->topo->proxies[i]);
      proxy_stats(s->topo->proxies[i], &srv->members[i]);
    }
    backend_stats(s->topo->backend, &srv->backend);
  }
  sim_topology_stop(s->topo);
  s->topo = NULL;
  live_free(s->live); /* nothing emits into it any more */
  s->live = NULL;
  for(i = 0; i < s->ncatalogue; i++)
    free(s->catalogue[i]);
  s->ncatalogue = 0;
}
