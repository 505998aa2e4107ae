/*
 * kdc.c - a throwaway Kerberos realm on loopback with MIT's own programs;
 * see kdc.h. Every program runs through posix_spawn (the topology's
 * threads may be running) with the realm's files in its environment.
 */
#define _GNU_SOURCE
#include "sim/kdc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* Whether a realm of this process is running: MIT's library reads the
 * realm's krb5.conf from KRB5_CONFIG, which is process-wide, so there is
 * one at a time. */
static atomic_bool sim_kdc_running;

#define SIM_KDC_KRB5KDC "/usr/sbin/krb5kdc"
#define SIM_KDC_UTIL "/usr/sbin/kdb5_util"
#define SIM_KDC_ADMIN "/usr/sbin/kadmin.local"
#define SIM_KDC_KINIT "/usr/bin/kinit"
/* Ports tried when another program takes ours between pick and bind. */
#define SIM_KDC_TRIES 5
/* How long the KDC may take to say it serves. */
#define SIM_KDC_READY_S 20

struct sim_kdc {
  char realm[64];
  char dir[256];
  char krb5_conf[300];
  char kdc_conf[300];
  char keytab[300];
  char env_config[320]; /* "KRB5_CONFIG=..." */
  char env_profile[320];
  uint16_t port;
  pid_t pid;  /* krb5kdc's, 0 when not running */
  int log_fd; /* krb5kdc's stderr */
  pthread_t drain;
  bool drain_started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool ready;     /* it logged "commencing operation" */
  bool ended;     /* its stderr closed: it exited */
  char last[256]; /* its last line, for the error when it never served */
};

bool sim_kdc_available(char *why, size_t whylen)
{
  static const struct {
    const char *path;
    const char *package;
  } need[] = {{SIM_KDC_KRB5KDC, "krb5-kdc"},
              {SIM_KDC_UTIL, "krb5-kdc"},
              {SIM_KDC_ADMIN, "krb5-admin-server"},
              {SIM_KDC_KINIT, "krb5-user"}};
  size_t i;

  for(i = 0; i < sizeof(need) / sizeof(need[0]); i++)
    if(access(need[i].path, X_OK)) {
      snprintf(why, whylen,
               "%s is not installed; install %s (apt-get install krb5-kdc "
               "krb5-admin-server krb5-user) for Kerberos",
               need[i].path, need[i].package);
      return false;
    }
  return true;
}

/* The environment of the realm's programs: ours with KRB5_CONFIG and
 * KRB5_KDC_PROFILE replaced. Returns a malloc'd array (the strings are
 * borrowed), or NULL. */
static char **sim_kdc_env(const struct sim_kdc *kdc)
{
  size_t n = 0, k = 0, i;
  char **env;

  while(environ[n])
    n++;
  env = calloc(n + 3, sizeof(*env));
  if(!env)
    return NULL;
  for(i = 0; i < n; i++)
    if(strncmp(environ[i], "KRB5_CONFIG=", 12) &&
       strncmp(environ[i], "KRB5_KDC_PROFILE=", 17))
      env[k++] = environ[i];
  env[k++] = (char *)kdc->env_config;
  env[k++] = (char *)kdc->env_profile;
  env[k] = NULL;
  return env;
}

/* Spawns argv with the realm's environment, stdin from in_fd and stdout
 * and stderr into out_fd (-1: inherited). Returns the pid, or -1. */
static pid_t sim_kdc_spawn(const struct sim_kdc *kdc, const char *const *argv,
                           int in_fd, int out_fd)
{
  posix_spawn_file_actions_t fa;
  char **env = sim_kdc_env(kdc);
  pid_t pid = -1;
  int rc;

  if(!env)
    return -1;
  posix_spawn_file_actions_init(&fa);
  if(in_fd >= 0)
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
  if(out_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
  }
  rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, env);
  posix_spawn_file_actions_destroy(&fa);
  free(env);
  return rc ? -1 : pid;
}

int sim_kdc_exec(const struct sim_kdc *kdc, const char *const *argv,
                 const char *input, char *out, size_t outlen)
{
  int in[2] = {-1, -1}, o[2] = {-1, -1};
  size_t used = 0;
  pid_t pid;
  int status = -1;
  char buf[512];
  ssize_t n;

  if(outlen)
    out[0] = '\0';
  if(pipe2(in, O_CLOEXEC) || pipe2(o, O_CLOEXEC))
    goto out;
  pid = sim_kdc_spawn(kdc, argv, in[0], o[1]);
  close(in[0]);
  close(o[1]);
  in[0] = o[1] = -1;
  if(pid < 0)
    goto out;
  /* The input is a password line: far below a pipe's buffer. */
  if(input && write(in[1], input, strlen(input)) < 0) {
    /* the program left early; its output says why */
  }
  close(in[1]);
  in[1] = -1;
  while((n = read(o[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if(n > 0 && used + 1 < outlen) {
      size_t take =
          (size_t)n < outlen - 1 - used ? (size_t)n : outlen - 1 - used;
      memcpy(out + used, buf, take);
      used += take;
      out[used] = '\0';
    }
  while(waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
out:
  if(in[0] >= 0)
    close(in[0]);
  if(in[1] >= 0)
    close(in[1]);
  if(o[0] >= 0)
    close(o[0]);
  if(o[1] >= 0)
    close(o[1]);
  return status;
}

/* Writes text into path. Returns 0, or -1 with err. */
static int sim_kdc_write(const char *path, const char *text, char *err,
                         size_t errlen)
{
  FILE *f = fopen(path, "w");
  int bad;

  if(!f) {
    snprintf(err, errlen, "kdc: could not write %s: %s", path, strerror(errno));
    return -1;
  }
  bad = fputs(text, f) < 0;
  if(fclose(f) || bad) {
    snprintf(err, errlen, "kdc: could not write %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Picks a loopback port free for both UDP and TCP (bound and released:
 * krb5kdc takes no port 0). Returns it, or 0. */
static uint16_t sim_kdc_pick_port(void)
{
  struct sockaddr_in a;
  socklen_t alen = sizeof(a);
  uint16_t port = 0;
  int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if(t >= 0 && u >= 0 && !bind(t, (struct sockaddr *)&a, sizeof(a)) &&
     !getsockname(t, (struct sockaddr *)&a, &alen) &&
     !bind(u, (struct sockaddr *)&a, sizeof(a)))
    port = ntohs(a.sin_port);
  if(t >= 0)
    close(t);
  if(u >= 0)
    close(u);
  return port;
}

/* Writes krb5.conf and kdc.conf for kdc->port. Returns 0, or -1. */
static int sim_kdc_configure(struct sim_kdc *kdc, char *err, size_t errlen)
{
  char text[2048];
  const char *r = kdc->realm;

  /* No DNS anywhere: the realm's KDC is named, host names are taken as
   * written (the published name need not resolve), fabrikam.com maps to
   * the realm. */
  snprintf(text, sizeof(text),
           "[libdefaults]\n"
           "  default_realm = %s\n"
           "  dns_lookup_kdc = false\n"
           "  dns_lookup_realm = false\n"
           "  dns_canonicalize_hostname = false\n"
           "  rdns = false\n"
           "[realms]\n"
           "  %s = {\n"
           "    kdc = 127.0.0.1:%u\n"
           "  }\n"
           "[domain_realm]\n"
           "  .fabrikam.com = %s\n"
           "  fabrikam.com = %s\n",
           r, r, kdc->port, r, r);
  if(sim_kdc_write(kdc->krb5_conf, text, err, errlen))
    return -1;
  snprintf(text, sizeof(text),
           "[kdcdefaults]\n"
           "  kdc_listen = 127.0.0.1:%u\n"
           "  kdc_tcp_listen = 127.0.0.1:%u\n"
           "[realms]\n"
           "  %s = {\n"
           "    database_name = %s/principal\n"
           "    key_stash_file = %s/stash\n"
           "    acl_file = %s/kadm5.acl\n"
           "    kdc_listen = 127.0.0.1:%u\n"
           "    kdc_tcp_listen = 127.0.0.1:%u\n"
           "  }\n"
           "[logging]\n"
           "  kdc = STDERR\n"
           "  admin_server = FILE:%s/kadmin.log\n",
           kdc->port, kdc->port, r, kdc->dir, kdc->dir, kdc->dir, kdc->port,
           kdc->port, kdc->dir);
  return sim_kdc_write(kdc->kdc_conf, text, err, errlen);
}

/* Reads krb5kdc's stderr to its end (so that its log never fills the
 * pipe), and tells the starter when it serves or has ended. */
static void *sim_kdc_drain(void *arg)
{
  struct sim_kdc *kdc = arg;
  char buf[1024];
  char line[256];
  size_t used = 0;
  ssize_t n;

  for(;;) {
    n = read(kdc->log_fd, buf, sizeof(buf));
    if(n < 0 && errno == EINTR)
      continue;
    if(n <= 0)
      break;
    for(ssize_t i = 0; i < n; i++) {
      if(buf[i] != '\n') {
        if(used + 1 < sizeof(line))
          line[used++] = buf[i];
        continue;
      }
      line[used] = '\0';
      used = 0;
      pthread_mutex_lock(&kdc->lock);
      if(!kdc->ready)
        snprintf(kdc->last, sizeof(kdc->last), "%s", line);
      if(strstr(line, "commencing operation"))
        kdc->ready = true;
      pthread_cond_broadcast(&kdc->cond);
      pthread_mutex_unlock(&kdc->lock);
    }
  }
  pthread_mutex_lock(&kdc->lock);
  kdc->ended = true;
  pthread_cond_broadcast(&kdc->cond);
  pthread_mutex_unlock(&kdc->lock);
  return NULL;
}

/* Ends krb5kdc and its drain thread, if running. */
static void sim_kdc_end(struct sim_kdc *kdc)
{
  int status;

  if(kdc->pid > 0) {
    kill(kdc->pid, SIGTERM);
    while(waitpid(kdc->pid, &status, 0) < 0 && errno == EINTR)
      ;
    kdc->pid = 0;
  }
  if(kdc->drain_started) {
    pthread_join(kdc->drain, NULL);
    kdc->drain_started = false;
  }
  if(kdc->log_fd >= 0) {
    close(kdc->log_fd);
    kdc->log_fd = -1;
  }
}

/* Runs krb5kdc on kdc->port and waits until it serves. Returns 0, 1 when
 * it ended first (the port was taken: try another), or -1 with err. */
static int sim_kdc_serve(struct sim_kdc *kdc, char *err, size_t errlen)
{
  const char *argv[] = {SIM_KDC_KRB5KDC, "-n", "-r", kdc->realm, NULL};
  struct timespec until;
  int p[2];
  int result = 0;

  if(pipe2(p, O_CLOEXEC)) {
    snprintf(err, errlen, "kdc: pipe: %s", strerror(errno));
    return -1;
  }
  kdc->ready = kdc->ended = false;
  kdc->last[0] = '\0';
  kdc->pid = sim_kdc_spawn(kdc, argv, -1, p[1]);
  close(p[1]);
  kdc->log_fd = p[0];
  if(kdc->pid < 0) {
    kdc->pid = 0;
    snprintf(err, errlen, "kdc: could not run %s", SIM_KDC_KRB5KDC);
    return -1;
  }
  if(pthread_create(&kdc->drain, NULL, sim_kdc_drain, kdc)) {
    snprintf(err, errlen, "kdc: could not start a thread");
    return -1;
  }
  kdc->drain_started = true;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += SIM_KDC_READY_S;
  pthread_mutex_lock(&kdc->lock);
  while(!kdc->ready && !kdc->ended)
    if(pthread_cond_timedwait(&kdc->cond, &kdc->lock, &until) == ETIMEDOUT)
      break;
  if(!kdc->ready && !kdc->ended) {
    snprintf(err, errlen, "kdc: krb5kdc did not start serving within %d s",
             SIM_KDC_READY_S);
    result = -1;
  }
  else if(!kdc->ready) {
    snprintf(err, errlen, "kdc: krb5kdc ended: %.200s", kdc->last);
    result = strstr(kdc->last, "in use") ? 1 : -1;
  }
  pthread_mutex_unlock(&kdc->lock);
  return result;
}

int sim_kdc_start(const char *realm, struct sim_kdc **out, char *err,
                  size_t errlen)
{
  const char *tmp = getenv("TMPDIR");
  struct sim_kdc *kdc;
  char principal[128];
  char cmd[512];
  char said[1024];
  int tries, rc;

  *out = NULL;
  if(!sim_kdc_available(said, sizeof(said))) {
    snprintf(err, errlen, "kdc: %s", said);
    return -1;
  }
  if(atomic_exchange(&sim_kdc_running, true)) {
    snprintf(err, errlen,
             "kdc: another Kerberos realm runs in this process, and MIT "
             "reads KRB5_CONFIG process-wide; run Kerberos scenarios one at "
             "a time (sweep --jobs 1)");
    return -1;
  }
  kdc = calloc(1, sizeof(*kdc));
  if(!kdc) {
    atomic_store(&sim_kdc_running, false);
    snprintf(err, errlen, "kdc: out of memory");
    return -1;
  }
  kdc->log_fd = -1;
  pthread_mutex_init(&kdc->lock, NULL);
  pthread_cond_init(&kdc->cond, NULL);
  snprintf(kdc->realm, sizeof(kdc->realm), "%s", realm);
  snprintf(kdc->dir, sizeof(kdc->dir), "%s/kbsim-kdc-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if(!mkdtemp(kdc->dir)) {
    snprintf(err, errlen, "kdc: could not make a directory in %s: %s",
             tmp && *tmp ? tmp : "/tmp", strerror(errno));
    kdc->dir[0] = '\0';
    goto error;
  }
  snprintf(kdc->krb5_conf, sizeof(kdc->krb5_conf), "%s/krb5.conf", kdc->dir);
  snprintf(kdc->kdc_conf, sizeof(kdc->kdc_conf), "%s/kdc.conf", kdc->dir);
  snprintf(kdc->keytab, sizeof(kdc->keytab), "%s/http.keytab", kdc->dir);
  snprintf(kdc->env_config, sizeof(kdc->env_config), "KRB5_CONFIG=%s",
           kdc->krb5_conf);
  snprintf(kdc->env_profile, sizeof(kdc->env_profile), "KRB5_KDC_PROFILE=%s",
           kdc->kdc_conf);
  for(tries = 0; tries < SIM_KDC_TRIES; tries++) {
    kdc->port = sim_kdc_pick_port();
    if(!kdc->port) {
      snprintf(err, errlen, "kdc: no free loopback port");
      goto error;
    }
    if(sim_kdc_configure(kdc, err, errlen))
      goto error;
    if(!tries) {
      /* The database, the service and its keytab, once. */
      const char *create[] = {SIM_KDC_UTIL, "-r", realm,          "create",
                              "-s",         "-P", "kbsim-master", NULL};
      const char *admin[] = {SIM_KDC_ADMIN, "-r", realm, "-q", cmd, NULL};

      /* kadmin.local wants the ACL file to exist; nobody administers
       * this realm remotely. */
      snprintf(cmd, sizeof(cmd), "%s/kadm5.acl", kdc->dir);
      if(sim_kdc_write(cmd, "", err, errlen))
        goto error;
      if(sim_kdc_exec(kdc, create, NULL, said, sizeof(said))) {
        snprintf(err, errlen, "kdc: kdb5_util create failed: %.200s", said);
        goto error;
      }
      snprintf(principal, sizeof(principal), "HTTP/%s", SIM_KDC_SERVICE_HOST);
      snprintf(cmd, sizeof(cmd), "addprinc -randkey %s", principal);
      if(sim_kdc_exec(kdc, admin, NULL, said, sizeof(said))) {
        snprintf(err, errlen, "kdc: %s failed: %.200s", cmd, said);
        goto error;
      }
      snprintf(cmd, sizeof(cmd), "ktadd -k %s %s", kdc->keytab, principal);
      if(sim_kdc_exec(kdc, admin, NULL, said, sizeof(said))) {
        snprintf(err, errlen, "kdc: %s failed: %.200s", cmd, said);
        goto error;
      }
    }
    rc = sim_kdc_serve(kdc, err, errlen);
    if(!rc)
      break;
    sim_kdc_end(kdc);
    if(rc < 0)
      goto error;
  }
  if(tries == SIM_KDC_TRIES)
    goto error; /* err says the last try's reason */
  /* MIT's library in this process reads the realm from here. */
  setenv("KRB5_CONFIG", kdc->krb5_conf, 1);
  *out = kdc;
  return 0;
error:
  sim_kdc_stop(kdc);
  return -1;
}

int sim_kdc_add_user(struct sim_kdc *kdc, const char *user,
                     const char *password, char *err, size_t errlen)
{
  char cmd[512];
  char said[1024];
  const char *admin[] = {SIM_KDC_ADMIN, "-r", kdc->realm, "-q", cmd, NULL};

  /* kadmin.local's query is one line of its own grammar: a password with
   * a quote or a blank would be cut; refuse it rather than mangle it. */
  if(strpbrk(user, " \t\"'\\") || strpbrk(password, "\"\n\\")) {
    snprintf(err, errlen,
             "kdc: user %.60s: a name with a blank or a quote, or a "
             "password with a quote or a backslash, cannot be given to "
             "kadmin.local; choose another",
             user);
    return -1;
  }
  snprintf(cmd, sizeof(cmd), "addprinc -pw \"%s\" %s", password, user);
  if(sim_kdc_exec(kdc, admin, NULL, said, sizeof(said)) ||
     strstr(said, "error")) {
    snprintf(err, errlen, "kdc: addprinc %s failed: %.200s", user, said);
    return -1;
  }
  return 0;
}

int sim_kdc_kinit(struct sim_kdc *kdc, const char *user, const char *password,
                  char *ccache, size_t cclen, char *err, size_t errlen)
{
  char principal[200];
  char path[400];
  char input[300];
  char said[1024];
  const char *argv[] = {SIM_KDC_KINIT, "-c", path, principal, NULL};
  size_t n;

  snprintf(principal, sizeof(principal), "%s@%s", user, kdc->realm);
  snprintf(path, sizeof(path), "FILE:%s/%s.ccache", kdc->dir, user);
  n = (size_t)snprintf(input, sizeof(input), "%s\n", password);
  if(n >= sizeof(input) || strlen(path) >= cclen) {
    snprintf(err, errlen, "kdc: kinit %s: password or path too long", user);
    return -1;
  }
  if(sim_kdc_exec(kdc, argv, input, said, sizeof(said))) {
    said[strcspn(said, "\n")] = '\0';
    snprintf(err, errlen, "kdc: kinit %s failed: %.200s", principal, said);
    explicit_bzero(input, sizeof(input));
    return -1;
  }
  explicit_bzero(input, sizeof(input));
  snprintf(ccache, cclen, "%s", path);
  return 0;
}

const char *sim_kdc_realm(const struct sim_kdc *kdc)
{
  return kdc->realm;
}
const char *sim_kdc_krb5_conf(const struct sim_kdc *kdc)
{
  return kdc->krb5_conf;
}
const char *sim_kdc_keytab(const struct sim_kdc *kdc)
{
  return kdc->keytab;
}
uint16_t sim_kdc_port(const struct sim_kdc *kdc)
{
  return kdc->port;
}

/* nftw's callback: removes one entry, children first. */
static int sim_kdc_rm(const char *path, const struct stat *st, int flag,
                      struct FTW *ftw)
{
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void sim_kdc_stop(struct sim_kdc *kdc)
{
  if(!kdc)
    return;
  sim_kdc_end(kdc);
  if(kdc->dir[0])
    nftw(kdc->dir, sim_kdc_rm, 8, FTW_DEPTH | FTW_PHYS);
  pthread_cond_destroy(&kdc->cond);
  pthread_mutex_destroy(&kdc->lock);
  free(kdc);
  atomic_store(&sim_kdc_running, false);
}
