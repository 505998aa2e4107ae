/*
 * kdc.h - a throwaway Kerberos realm on loopback: MIT's own KDC (krb5kdc,
 * from Debian's krb5-kdc) with a database, principals and a keytab made by
 * MIT's kdb5_util and kadmin.local in a directory of its own, for the
 * runs and tests whose internal users sign in with Kerberos. The harness
 * starts it; components only see the keytab and the credential caches it
 * names.
 */
#ifndef SIM_KDC_H
#define SIM_KDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim_kdc;

/* The service every listener and Exchange accept tickets for: the
 * published name's HTTP service. */
#define SIM_KDC_SERVICE_HOST "autodiscover.fabrikam.com"

/* Whether MIT's KDC programs are installed (krb5kdc, kdb5_util,
 * kadmin.local from krb5-kdc and krb5-admin-server, kinit from
 * krb5-user). When not, writes which is missing and what to install into
 * why and returns false. Can't fail otherwise. */
bool sim_kdc_available(char *why, size_t whylen);

/* Starts a KDC for realm (e.g. "FABRIKAM.COM") in a new directory under
 * $TMPDIR (or /tmp): writes its krb5.conf and kdc.conf, creates the
 * database (kdb5_util create -s), the principal HTTP/<SIM_KDC_SERVICE_HOST>
 * and its keytab (kadmin.local ktadd), and runs krb5kdc in the foreground
 * on a free loopback port (UDP and TCP), returning once it logged that it
 * serves (its stderr, read by a thread of ours, never a sleep). A port
 * taken between our pick and its bind is retried on another, 5 times at
 * most. Sets KRB5_CONFIG in this process to its krb5.conf, for MIT's
 * library to find the realm: call it before other threads use Kerberos.
 * One realm at a time per process (KRB5_CONFIG is process-wide): while
 * one runs, another start fails saying so.
 * Returns 0 with *out (stop it with sim_kdc_stop), or -1 with one line in
 * err. */
int sim_kdc_start(const char *realm, struct sim_kdc **out, char *err,
                  size_t errlen);

/* Adds the principal user@realm with password (kadmin.local addprinc).
 * Returns 0, or -1 with one line in err. Not thread-safe: add users
 * before sessions start. */
int sim_kdc_add_user(struct sim_kdc *kdc, const char *user,
                     const char *password, char *err, size_t errlen);

/* Gets user@realm's ticket-granting ticket with MIT's kinit, password on
 * its standard input, into a credential cache of its own in the KDC's
 * directory, and writes the cache's path into ccache. Returns 0, or -1
 * with one line in err (kinit's own words). */
int sim_kdc_kinit(struct sim_kdc *kdc, const char *user, const char *password,
                  char *ccache, size_t cclen, char *err, size_t errlen);

/* The realm, its krb5.conf, the service's keytab and the KDC's port;
 * owned by kdc. */
const char *sim_kdc_realm(const struct sim_kdc *kdc);
const char *sim_kdc_krb5_conf(const struct sim_kdc *kdc);
const char *sim_kdc_keytab(const struct sim_kdc *kdc);
uint16_t sim_kdc_port(const struct sim_kdc *kdc);

/* Runs an MIT program (argv[0] a path) with the realm's configuration in
 * its environment; its standard output and error go into out (NUL
 * terminated, truncated to outlen). Returns its exit status, or -1 when it
 * could not run or was killed. */
int sim_kdc_exec(const struct sim_kdc *kdc, const char *const *argv,
                 const char *input, char *out, size_t outlen);

/* Stops the KDC, waits for it and removes its directory. Accepts NULL. */
void sim_kdc_stop(struct sim_kdc *kdc);

#endif /* SIM_KDC_H */
