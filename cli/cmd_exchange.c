/*
 * cmd_exchange.c - `kbsim exchange`: Exchange's EWS and Autodiscover alone
 * on a real port, for a third-party listener to publish, until SIGINT or
 * SIGTERM. --auth none trusts what reaches it (as behind ISA);
 * --auth integrated authenticates NTLM per connection (as IIS with Windows
 * authentication behind a pass-through proxy), under --extended-protection
 * when asked. --tls serves HTTPS with a certificate of a CA made for the
 * run, whose certificate it prints or writes to --ca-file. GET
 * /kbsim/status on the same port gives its counters to loopback peers (a
 * probe reads them). Exit 0 after a signal, 1 when it could not start, 2
 * for bad arguments.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cli.h"
#include "common/kb_cert.h"
#include "common/kb_users.h"
#include "secret.h"

/* secret_user_add_fn for --user-file. */
static int kbsim_exchange_add_user(void *ctx, const char *spec, char *err,
                                   size_t errlen)
{
  return kb_users_add_spec(ctx, spec, err, errlen);
}

static int kbsim_cmd_exchange(int argc, char **argv);

/* Option values without a short form. */
enum {
  KBSIM_EXCHANGE_TLS = 1201,
  KBSIM_EXCHANGE_EPA,
  KBSIM_EXCHANGE_CA,
  KBSIM_EXCHANGE_KRB5_KEYTAB
};

static const struct kbsim_opt exchange_opts[] = {
    {"listen", 'l', "HOST:PORT",
     "Where to listen (numeric address; port 0 picks a free one); "
     "required."},
    {"auth", 'a', "none|integrated",
     "none: trust what reaches it, as Exchange behind ISA (the identity is "
     "the user a forwarded type 3 or Basic header names); integrated: "
     "authenticate NTLM per connection, as IIS with Windows authentication "
     "(needs --user or --user-file). Default none."},
    {"user", 'u', "'DOMAIN\\user:password'",
     "An account for --auth integrated; repeatable."},
    {"user-file", 'F', "FILE",
     "Accounts for --auth integrated, one 'DOMAIN\\user = password' a "
     "line (kept off the process list)."},
    {"tls", KBSIM_EXCHANGE_TLS, NULL,
     "Serve HTTPS: a CA is made for this run and signs Exchange's "
     "certificate (mail.fabrikam.com, localhost, 127.0.0.1, ::1); its "
     "private keys stay in memory. The CA's certificate, which clients "
     "verify against, is printed, or written to --ca-file."},
    {"ca-file", KBSIM_EXCHANGE_CA, "FILE",
     "With --tls: write the run's CA certificate (PEM) to FILE instead of "
     "printing it, e.g. for curl --cacert FILE."},
    {"extended-protection", KBSIM_EXCHANGE_EPA, "none|allow|require",
     "With --auth integrated: Extended Protection, whether a type 3 must "
     "carry the channel binding of Exchange's own TLS certificate (RFC "
     "5929 tls-server-end-point). allow refuses a wrong binding and "
     "accepts none; require refuses both; none checks nothing."},
    {"krb5-keytab", KBSIM_EXCHANGE_KRB5_KEYTAB, "FILE",
     "With --auth integrated: accept Negotiate with Kerberos too (MIT's "
     "GSS-API), the keytab of HTTP/autodiscover.fabrikam.com: a ticket "
     "comes in one leg with the request's body and authenticates the "
     "connection as its principal, as IIS 7 keeps it. For a third-party "
     "listener that passes Negotiate through (HAProxy, haproxy#2985). "
     "KRB5_CONFIG names the realm."},
    {NULL, 0, NULL, NULL}};

const struct kbsim_command kbsim_exchange_command = {
    "exchange",
    "--listen HOST:PORT [--auth none|integrated] [--user SPEC]... "
    "[--user-file FILE] [--tls [--ca-file FILE]] "
    "[--extended-protection none|allow|require] [--krb5-keytab FILE]",
    "Exchange's EWS and Autodiscover alone, for a third-party listener",
    "Runs only the EWS + Autodiscover stand-in on a real port until SIGINT "
    "or SIGTERM, printing its URL, so another listener (Squid, Apache, a "
    "gateway) can publish it. GET /kbsim/status on the same port answers "
    "loopback peers with its counters as JSON (requests, empty_posts, "
    "mismatches, the identities each connection served), which kbsim probe "
    "reads. Exits 0 after a signal, 1 when it could not start.",
    exchange_opts,
    NULL,
    kbsim_cmd_exchange};

/* Writes the run's CA certificate (public) to path. Returns 0, or 1
 * after printing why not. */
static int kbsim_exchange_write_ca(const char *path, const char *pem)
{
  FILE *f = fopen(path, "w");
  bool ok = f && fputs(pem, f) >= 0;

  if(f && fclose(f))
    ok = false;
  if(!ok) {
    fprintf(stderr,
            "kbsim exchange: --ca-file %s: cannot write it (%s); give a "
            "path in a directory you can write\n",
            path, strerror(errno));
    return 1;
  }
  return 0;
}

static int kbsim_cmd_exchange(int argc, char **argv)
{
  struct kbsim_args a;
  struct backend_config cfg;
  struct backend *b = NULL;
  struct kb_users *users = kb_users_new();
  struct kb_pki pki;
  const char *listen = NULL, *ca_file = NULL;
  bool tls = false;
  char host[64], err[512];
  sigset_t set;
  int c, sig = 0, result = 2;

  memset(&cfg, 0, sizeof(cfg));
  memset(&pki, 0, sizeof(pki));
  if(!users) {
    fprintf(stderr, "kbsim exchange: out of memory\n");
    return 1;
  }
  kbsim_args_init(&a, &kbsim_exchange_command, argc, argv);
  while((c = kbsim_args_next(&a)) > 0) {
    switch(c) {
    case 'l':
      listen = optarg;
      break;
    case 'a':
      if(backend_auth_parse(optarg, &cfg.auth)) {
        result =
            kbsim_bad_args("--auth: '%s' is not none or integrated", optarg);
        goto done;
      }
      break;
    case 'u':
      if(kb_users_add_spec(users, optarg, err, sizeof(err))) {
        fprintf(stderr, "kbsim exchange: --user: %s\n", err);
        goto done;
      }
      break;
    case 'F':
      if(secret_user_file(optarg, kbsim_exchange_add_user, users, err,
                          sizeof(err))) {
        fprintf(stderr, "kbsim exchange: --user-file: %s\n", err);
        goto done;
      }
      break;
    case KBSIM_EXCHANGE_TLS:
      tls = true;
      break;
    case KBSIM_EXCHANGE_CA:
      ca_file = optarg;
      break;
    case KBSIM_EXCHANGE_KRB5_KEYTAB:
      if(access(optarg, R_OK)) {
        result = kbsim_bad_args("--krb5-keytab: cannot read '%s': %s; give "
                                "the keytab of HTTP/autodiscover.fabrikam.com",
                                optarg, strerror(errno));
        goto done;
      }
      cfg.krb5_keytab = optarg;
      break;
    case KBSIM_EXCHANGE_EPA:
      if(backend_epa_parse(optarg, &cfg.extended_protection)) {
        result = kbsim_bad_args(
            "--extended-protection: '%s' is not none, allow or require",
            optarg);
        goto done;
      }
      break;
    }
  }
  if(c < 0) {
    result = a.status;
    goto done;
  }
  if(optind < argc) {
    result = kbsim_bad_args("unexpected argument '%s'", argv[optind]);
    goto done;
  }
  if(!listen) {
    result = kbsim_bad_args("--listen HOST:PORT is required");
    goto done;
  }
  if(kbsim_parse_hostport(listen, host, sizeof(host), &cfg.port)) {
    result = kbsim_bad_args(
        "--listen: '%s' is not HOST:PORT (e.g. 127.0.0.1:8081)", listen);
    goto done;
  }
  if(ca_file && !tls) {
    result = kbsim_bad_args("--ca-file is where --tls writes its CA; give "
                            "--tls too");
    goto done;
  }
  if(cfg.extended_protection && cfg.auth != BACKEND_AUTH_INTEGRATED) {
    result = kbsim_bad_args("--extended-protection checks Exchange's own "
                            "logins; give --auth integrated too");
    goto done;
  }
  if(cfg.krb5_keytab && cfg.auth != BACKEND_AUTH_INTEGRATED) {
    result = kbsim_bad_args("--krb5-keytab lets Exchange authenticate "
                            "Kerberos itself; give --auth integrated too");
    goto done;
  }
  if(cfg.auth == BACKEND_AUTH_INTEGRATED && !kb_users_count(users)) {
    result = kbsim_bad_args(
        "--auth integrated needs the accounts: give --user or --user-file");
    goto done;
  }

  /* Block the stop signals before the server's threads start, so they
   * inherit the mask and only sigwait() below receives them. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  /* Real clock and getrandom() challenges: zeroed kb_clock and kb_rng. */
  cfg.bind_host = host;
  cfg.users = users;
  cfg.status = true;
  if(tls) {
    if(kb_pki_create(&pki, err, sizeof(err))) {
      fprintf(stderr, "kbsim exchange: %s\n", err);
      result = 1;
      goto done;
    }
    cfg.tls_cert_pem = pki.exchange.cert_pem;
    cfg.tls_key_pem = pki.exchange.key_pem;
    if(ca_file && kbsim_exchange_write_ca(ca_file, pki.ca.cert_pem)) {
      result = 1;
      goto done;
    }
  }
  if(backend_start(&cfg, &b, err, sizeof(err))) {
    fprintf(stderr, "kbsim exchange: %s\n", err);
    result = 1;
    goto done;
  }
  printf("Exchange (auth %s%s%s%s) at %s://%s%s%s:%u\n",
         backend_auth_name(cfg.auth), cfg.krb5_keytab ? ", Kerberos" : "",
         cfg.extended_protection ? ", extended protection " : "",
         cfg.extended_protection ? backend_epa_name(cfg.extended_protection)
                                 : "",
         tls ? "https" : "http", strchr(host, ':') ? "[" : "", host,
         strchr(host, ':') ? "]" : "", (unsigned)backend_port(b));
  printf("status at %s://%s%s%s:%u/kbsim/status (loopback only)\n",
         tls ? "https" : "http", strchr(host, ':') ? "[" : "", host,
         strchr(host, ':') ? "]" : "", (unsigned)backend_port(b));
  if(tls && ca_file)
    printf("TLS: %s, signed by the run's CA, whose certificate is in %s\n",
           pki.exchange.subject, ca_file);
  else if(tls)
    printf("TLS: %s, signed by the run's CA, whose certificate follows\n%s",
           pki.exchange.subject, pki.ca.cert_pem);
  printf("serving until SIGINT or SIGTERM\n");
  fflush(stdout);
  sigwait(&set, &sig);
  printf("stopping on %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  result = 0;

done:
  backend_stop(b);
  kb_pki_free(&pki);
  kb_users_free(users);
  return result;
}
