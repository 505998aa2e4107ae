/*
 * serve_print.c - what `kbsim serve` prints: where everything listens
 * (the scenario's array behind its balancer, or the flag form's
 * listener), Exchange, the admin endpoint and its console, the users and
 * whether their passwords are printed, the hints to copy, what runs after
 * a trainer's reset or switch; and its warnings.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "common/kb_guard.h"
#include "serve.h"
#include "sim/fdlimit.h"

/* The catalogue's throwaway test accounts: published in its scenario
 * files, the README and the man page, and good for nothing but kbsim. */
static const char *const kbsim_serve_throwaway[] = {"FABRIKAM\\alice:Passw0rd!",
                                                    "FABRIKAM\\bob:B0b-secret"};

void kbsim_serve_url(const char *host, uint16_t port, char *out, size_t len)
{
  kbsim_serve_url_tls(false, host, port, out, len);
}

void kbsim_serve_url_tls(bool tls, const char *host, uint16_t port, char *out,
                         size_t len)
{
  snprintf(out, len, strchr(host, ':') ? "%s://[%s]:%u/" : "%s://%s:%u/",
           tls ? "https" : "http", host, (unsigned)port);
}

/* Prints the TLS line: which hops have it, which certificate the
 * listener presents, and where the run's CA certificate is (or the
 * certificate itself). Nothing for plain HTTP. */
static void kbsim_serve_print_tls(const struct kbsim_serve *s)
{
  const struct sim_topology *topo = s->topo;

  if(topo->tls == SCENARIO_TLS_NONE)
    return;
  printf("TLS:          %s: HTTPS to the listener%s, presenting %s; ",
         scenario_tls_name(topo->tls),
         topo->tls == SCENARIO_TLS_BRIDGE ? " and to Exchange"
                                          : ", HTTP to Exchange",
         topo->tls == SCENARIO_TLS_BRIDGE && s->sc->bridge_same_certificate
             ? "Exchange's certificate"
             : "its own certificate");
  if(s->o->ca_file)
    printf("the run's CA certificate is in %s (client --ca-file %s)\n",
           s->o->ca_file, s->o->ca_file);
  else
    printf("the run's CA certificate follows (or give --ca-file FILE)\n%s",
           topo->pki.ca.cert_pem);
}

bool kbsim_serve_loopback(const char *host)
{
  return !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

bool kbsim_serve_throwaway_users(const struct scenario *sc)
{
  size_t i, k;

  for(i = 0; i < sc->nusers; i++) {
    for(k = 0;
        k < sizeof(kbsim_serve_throwaway) / sizeof(kbsim_serve_throwaway[0]);
        k++)
      if(!strcmp(sc->user_specs[i], kbsim_serve_throwaway[k]))
        break;
    if(k == sizeof(kbsim_serve_throwaway) / sizeof(kbsim_serve_throwaway[0]))
      return false;
  }
  return sc->nusers > 0;
}

/* Prints where Exchange listens and where its counters are read. */
static void kbsim_serve_print_exchange(const struct kbsim_serve *s)
{
  char url[96];

  kbsim_serve_url_tls(s->topo->tls == SCENARIO_TLS_BRIDGE, s->o->backend.host,
                      backend_port(s->topo->backend), url, sizeof(url));
  printf("Exchange:     %s\n", url);
  printf("Status:       %skbsim/status (Exchange's counters, for kbsim probe "
         "--exchange-status; loopback only)\n",
         url);
}

/* Prints the admin endpoint's lines: its URL, the console's (with the
 * token) and where ctl finds the token. */
static void kbsim_serve_print_admin(const struct kbsim_serve *s)
{
  char url[128];

  kbsim_serve_url(s->o->admin.host, admin_port(s->adm), url, sizeof(url));
  printf("Admin:        %s (every request needs the token)\n", url);
  printf("Console:      %s?token=%s\n", url, admin_token(s->adm));
  printf("Token file:   %s (mode 0600; kbsim ctl reads it)\n", s->token_path);
}

/* Prints each member of the array: its URL, patch level, script and the
 * policy they make. */
static void kbsim_serve_print_members(const struct kbsim_serve *s)
{
  char label[48], murl[128];
  size_t i;

  for(i = 0; i < s->sc->nmembers; i++) {
    const struct scenario_member *m = &s->sc->members[i];

    snprintf(label, sizeof(label), "Member %s:", m->name);
    kbsim_serve_url_tls(s->topo->tls != SCENARIO_TLS_NONE, "127.0.0.1",
                        s->topo->proxy_ports[i], murl, sizeof(murl));
    printf("%-13s %s (%s, %s; policy %s: %s)\n", label, murl,
           scenario_patch_name(m->patch),
           m->script ? "script run" : "no script",
           proxy_policy_name(scenario_effective_policy(m->patch, m->script)),
           admin_policy_reason(m->patch, m->script));
  }
}

/* Prints "; defects a, b" for the bit set defects, or nothing. */
static void kbsim_serve_print_defects(unsigned defects)
{
  const char *sep = "; defects ";
  unsigned i;

  for(i = 0; i < KB_DEFECT_COUNT; i++)
    if(defects & PROXY_DEFECT(i)) {
      printf("%s%s", sep, kb_defect_name((enum kb_defect)i));
      sep = ", ";
    }
}

/* Prints the scenario's users and their passwords - or where they are:
 * the catalogue's throwaway accounts are printed, anyone else's are
 * not, since a scenario of one's own may hold real ones and a banner is
 * seen on projectors and in logs. Then the client hint, with the password
 * when printed. */
static void kbsim_serve_print_users(const struct kbsim_serve *s)
{
  const struct scenario *sc = s->sc;
  bool shown = kbsim_serve_throwaway_users(sc);
  int n0 = (int)strcspn(sc->user_specs[0], ":");
  char url[128];
  size_t i;

  if(scenario_passes_through(sc))
    printf("Listener:     pass-through (NTLM goes on to Exchange, which "
           "authenticates)");
  else
    printf("Listener:     %s authentication", proxy_auth_name(sc->auth));
  kbsim_serve_print_defects(sc->defects);
  printf("; users");
  for(i = 0; i < sc->nusers; i++)
    printf("%s %.*s", i ? "," : "", (int)strcspn(sc->user_specs[i], ":"),
           sc->user_specs[i]);
  printf("\n");
  if(shown) {
    printf("Passwords:   ");
    for(i = 0; i < sc->nusers; i++)
      printf("%s %s", i ? "," : "", sc->user_specs[i]);
    printf(" (the catalogue's throwaway test accounts)\n");
  }
  else
    printf("Passwords:    in %s, [users] (not printed: a scenario of your "
           "own may hold real ones)\n",
           sc->path[0] ? sc->path : "the scenario file");
  kbsim_serve_url_tls(s->topo->tls != SCENARIO_TLS_NONE, s->o->proxy.host,
                      balancer_port(s->bal), url, sizeof(url));
  if(shown)
    printf("Try:          %s client --url %s --user '%s'\n", kbsim_program, url,
           sc->user_specs[0]);
  else
    printf("Try:          %s client --url %s --user '%.*s' (asks for the "
           "password; or set KBSIM_PASSWORD)\n",
           kbsim_program, url, n0, sc->user_specs[0]);
}

/* Prints what serves where, for the scenario form. */
static void kbsim_serve_print_array(const struct kbsim_serve *s)
{
  const struct scenario *sc = s->sc;
  const struct kbsim_serve_opts *o = s->o;
  char url[128];

  printf("Scenario:     %s%s%s\n", sc->name, sc->description[0] ? " - " : "",
         sc->description);
  kbsim_serve_url_tls(s->topo->tls != SCENARIO_TLS_NONE, o->proxy.host,
                      balancer_port(s->bal), url, sizeof(url));
  printf("Balancer:     %s (%s per TCP connection over %zu member%s)\n", url,
         balancer_mode_name(sc->balancer), sc->nmembers,
         sc->nmembers == 1 ? "" : "s");
  kbsim_serve_print_members(s);
  kbsim_serve_print_exchange(s);
  kbsim_serve_print_tls(s);
  kbsim_serve_print_admin(s);
  kbsim_serve_print_users(s);
  printf("              %s ctl --admin %s%s%s:%u "
         "status|apply-fix|revert|reset\n",
         kbsim_program, strchr(o->admin.host, ':') ? "[" : "", o->admin.host,
         strchr(o->admin.host, ':') ? "]" : "", (unsigned)admin_port(s->adm));
}

/* Prints what serves where, for the flag form. */
static void kbsim_serve_print_flag(const struct kbsim_serve *s)
{
  const struct kbsim_serve_opts *o = s->o;
  char url[128];

  kbsim_serve_url_tls(s->topo->tls != SCENARIO_TLS_NONE, o->proxy.host,
                      s->relay ? balancer_port(s->bal)
                               : proxy_port(s->topo->proxy),
                      url, sizeof(url));
  if(o->pass_through)
    printf("ISA listener: %s (pass-through: NTLM goes on to Exchange, which "
           "authenticates",
           url);
  else
    printf("ISA listener: %s (policy %s", url,
           proxy_policy_name(s->cfg.members[0].policy));
  if(!o->pass_through && s->sc->auth != PROXY_AUTH_INTEGRATED)
    printf(", %s authentication", proxy_auth_name(s->sc->auth));
  kbsim_serve_print_defects(o->defects);
  printf(s->relay ? "; recorded through a TCP relay)\n" : ")\n");
  kbsim_serve_print_exchange(s);
  kbsim_serve_print_tls(s);
  if(s->adm)
    kbsim_serve_print_admin(s);
}

void kbsim_serve_print(const struct kbsim_serve *s)
{
  if(s->balanced)
    kbsim_serve_print_array(s);
  else
    kbsim_serve_print_flag(s);
}

void kbsim_serve_print_restart(const struct kbsim_serve *s, bool reset)
{
  const struct scenario *sc = s->sc;

  if(reset)
    printf("Reset:        %s as it starts; counters at zero, sessions "
           "cleared\n",
           sc->name);
  else
    printf("Scenario:     %s%s%s (switched to; counters at zero)\n", sc->name,
           sc->description[0] ? " - " : "", sc->description);
  if(s->balanced) {
    kbsim_serve_print_members(s);
    if(!reset)
      kbsim_serve_print_users(s);
  }
  kbsim_serve_print_exchange(s);
  fflush(stdout);
}

void kbsim_serve_warn(const struct kbsim_serve *s)
{
  const struct kbsim_serve_opts *o = s->o;
  const struct sim_topology *topo = s->topo;

  if(topo->member_connections < KB_GUARD_MAX_CONNECTIONS)
    fprintf(
        stderr,
        "kbsim: warning: the descriptor limit (%lu) holds %u connections "
        "per listener; raise it (ulimit -n %lu) for %u\n",
        sim_fd_limit(), topo->member_connections,
        sim_fd_need((unsigned long)KB_GUARD_MAX_CONNECTIONS * topo->nproxies),
        KB_GUARD_MAX_CONNECTIONS);
  /* Exchange trusts whatever reaches it (as the real one trusts ISA's
   * delegation) and answers mailbox data without a login - unless it
   * authenticates itself behind a pass-through listener. */
  if(!o->pass_through && !kbsim_serve_loopback(o->backend.host))
    fprintf(stderr,
            "kbsim: warning: Exchange on %s answers mailbox data to anyone "
            "who reaches it, without a login; bind it to 127.0.0.1\n",
            o->backend.host);
  if(!kbsim_serve_loopback(o->proxy.host))
    fprintf(stderr,
            "kbsim: warning: the listener on %s is reachable from other "
            "machines: anyone there can sign in with its test accounts and "
            "reach Exchange through it\n",
            o->proxy.host);
}
