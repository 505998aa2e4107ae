/*
 * args.c - what the commands share to read their arguments: whole numbers,
 * HOST:PORT and endpoint URLs, the NTLM response kind, a scenario named on
 * the command line, and the checks of evidence files before anything runs;
 * and what every command's verdicts need: a case's time, the case of a
 * scenario file that cannot be read, a bounded copy (declared in cli.h);
 * and the one reader of --ca-file.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"
#include "cli.h"

const char *kbsim_default_user = "FABRIKAM\\alice:Passw0rd!";

int kbsim_evidence_status(enum evidence_status st, const char *err)
{
  if(st == EVIDENCE_BAD_ARGS)
    return kbsim_bad_args("%s", err);
  if(st) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 3;
  }
  return 0;
}

int kbsim_keylog(const char *path)
{
  FILE *f = fopen(path, "a");

  if(!f) {
    fprintf(stderr,
            "kbsim: --keylog %s: cannot write it (%s); give a path in a "
            "directory you can write\n",
            path, strerror(errno));
    return 3;
  }
  fclose(f);
  return setenv("SSLKEYLOGFILE", path, 1) ? 3 : 0;
}

int kbsim_evidence_check(const struct evidence_want *want, const char *name)
{
  struct evidence_paths paths;
  char err[512];

  return kbsim_evidence_status(
      evidence_prepare(want, &name, 1, &paths, err, sizeof(err)), err);
}

int kbsim_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
  char *end = NULL;
  unsigned long long v;

  /* Digits only: strtoull would skip spaces and negate after a '-'. */
  if(!text || *text < '0' || *text > '9')
    return -1;
  errno = 0;
  v = strtoull(text, &end, 10);
  if(errno || *end || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int kbsim_parse_hostport(const char *text, char *host, size_t hostlen,
                         uint16_t *port)
{
  const char *colon;
  const char *start = text;
  size_t n;
  uint64_t p;

  if(text[0] == '[') {
    const char *close = strchr(text, ']');
    if(!close || close[1] != ':')
      return -1;
    start = text + 1;
    n = (size_t)(close - start);
    colon = close + 1;
  }
  else {
    colon = strrchr(text, ':');
    if(!colon)
      return -1;
    n = (size_t)(colon - text);
  }
  if(!n || n >= hostlen || kbsim_parse_u64(colon + 1, 0, 65535, &p))
    return -1;
  memcpy(host, start, n);
  host[n] = '\0';
  *port = (uint16_t)p;
  return 0;
}

int kbsim_parse_endpoint(const char *text, char *host, size_t hostlen,
                         uint16_t *port)
{
  char buf[256];
  size_t n;

  /* The URL serve prints: http://HOST:PORT/ */
  if(!strncmp(text, "http://", 7))
    text += 7;
  snprintf(buf, sizeof(buf), "%s", text);
  n = strlen(buf);
  if(n && buf[n - 1] == '/')
    buf[--n] = '\0';
  if(strchr(buf, '/') || kbsim_parse_hostport(buf, host, hostlen, port))
    return -1;
  if(!strcmp(host, "localhost") && hostlen > strlen("127.0.0.1"))
    snprintf(host, hostlen, "127.0.0.1");
  return 0;
}

int kbsim_parse_kind(const char *text, enum ntlm_response_kind *kind)
{
  if(!strcmp(text, "v2"))
    *kind = NTLM_RESPONSE_V2;
  else if(!strcmp(text, "v1"))
    *kind = NTLM_RESPONSE_V1;
  else if(!strcmp(text, "v1-ess"))
    *kind = NTLM_RESPONSE_V1_ESS;
  else
    return -1;
  return 0;
}

int kbsim_read_scenario(const char *arg, struct scenario *sc, char *err,
                        size_t errlen)
{
  char path[4096];

  if(catalogue_find(arg, path, sizeof(path), err, errlen) ||
     scenario_load(path, sc, err, errlen))
    return 2;
  return 0;
}

int kbsim_load_scenario(const char *arg, struct scenario *sc)
{
  char err[1024];

  if(kbsim_read_scenario(arg, sc, err, sizeof(err))) {
    fprintf(stderr, "kbsim: %s\n", err);
    return 2;
  }
  return 0;
}

void kbsim_bad_scenario_case(const char *arg, const char *err, double seconds,
                             struct ci_case *v)
{
  const char *base = strrchr(arg, '/') ? strrchr(arg, '/') + 1 : arg;
  size_t len = strlen(base);

  memset(v, 0, sizeof(*v));
  if(len > 4 && !strcmp(base + len - 4, ".ini"))
    len -= 4;
  snprintf(v->name, sizeof(v->name), "%.*s", (int)len, base);
  memcpy(v->classname, v->name, sizeof(v->classname));
  v->result = CI_ERROR;
  v->type = "bad-scenario";
  v->seconds = seconds;
  snprintf(v->message, sizeof(v->message), "%.700s", err);
}

double kbsim_seconds_since(const struct timespec *start)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

void kbsim_copy(char *dst, size_t n, const char *src)
{
  size_t len = strlen(src);

  if(len >= n)
    len = n - 1;
  memmove(dst, src, len);
  dst[len] = '\0';
}

int kbsim_read_ca(const char *path, char **out)
{
  FILE *f = fopen(path, "r");
  size_t n = 0;
  bool ok;

  free(*out);
  *out = f ? calloc(1, 65537) : NULL;
  ok = *out && (n = fread(*out, 1, 65536, f)) > 0 && !ferror(f) && n < 65536 &&
       strstr(*out, "-----BEGIN CERTIFICATE-----");
  if(f)
    fclose(f);
  if(!ok)
    return kbsim_bad_args("--ca-file %s: %s", path,
                          !f ? "cannot be read; give the CA's PEM file (what "
                               "serve or exchange wrote with --ca-file)"
                             : "holds no PEM certificate (under 64 KiB)");
  return 0;
}
