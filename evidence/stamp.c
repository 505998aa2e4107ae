/*
 * stamp.c - what the evidence says about when and by whom: the ISO 8601
 * times every file carries, and the JSON reports' stamp (which kbsim,
 * asked how, when) and scenario text, with every password removed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/kb_buf.h"
#include "common/kb_users.h"
#include "evidence/version.h"
#include "evidence_int.h"

/* Formats us (microseconds since the epoch) as ISO 8601 UTC with
 * milliseconds: "2009-03-17T16:26:24.000Z". */
void evidence__iso(int64_t us, char out[64])
{
  time_t sec = (time_t)(us / 1000000);
  struct tm tm;

  gmtime_r(&sec, &tm);
  snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(us / 1000 % 1000));
}

/* The command line, the version and the time: which kbsim wrote this,
 * asked how, and when (the real clock, the one part of a report that a
 * seed does not fix, unless SOURCE_DATE_EPOCH fixes it). */
static int evidence__argc;
static char **evidence__argv;
static bool evidence__epoch_set;
static int64_t evidence__epoch_s;

/* The latest time ISO 8601's four-digit year can say: 9999-12-31T23:59:59Z. */
#define EVIDENCE_MAX_EPOCH 253402300799LL

int evidence_set_written_epoch(const char *value, char *err, size_t errlen)
{
  int64_t s = 0;
  const char *p = value;

  for(; *p >= '0' && *p <= '9' && s <= EVIDENCE_MAX_EPOCH; p++)
    s = s * 10 + (*p - '0');
  if(!*value || *p || s > EVIDENCE_MAX_EPOCH) {
    snprintf(err, errlen,
             "SOURCE_DATE_EPOCH is '%.40s', not whole seconds since 1970 "
             "(digits only, at most %lld); set it to such a number, or unset "
             "it for the real clock",
             value, (long long)EVIDENCE_MAX_EPOCH);
    return -1;
  }
  evidence__epoch_s = s;
  evidence__epoch_set = true;
  return 0;
}

void evidence_set_command_line(int argc, char **argv)
{
  /* getopt permutes argv as it parses: keep the order it was typed in. The
   * copy lives as long as the process. */
  char **copy = calloc((size_t)argc + 1, sizeof(*copy));

  if(!copy)
    return;
  memcpy(copy, argv, (size_t)argc * sizeof(*copy));
  free(evidence__argv);
  evidence__argc = argc;
  evidence__argv = copy;
}

#define EVIDENCE_REMOVED "(password removed by kbsim)"

/* Returns a copy of text (free it) with every occurrence of each of the n
 * secrets replaced by EVIDENCE_REMOVED, or NULL when out of memory. */
static char *evidence__redact(const char *text, char (*secrets)[256], size_t n)
{
  struct kb_buf b;
  const char *at = text;

  kb_buf_init(&b, (size_t)4 << 20);
  while(*at) {
    size_t i, len = 0;

    for(i = 0; i < n; i++) {
      len = strlen(secrets[i]);
      if(len && !strncmp(at, secrets[i], len))
        break;
    }
    if(i < n) {
      if(kb_buf_add(&b, EVIDENCE_REMOVED, strlen(EVIDENCE_REMOVED)))
        break;
      at += len;
    }
    else if(kb_buf_add(&b, at++, 1))
      break;
  }
  if(*at) {
    kb_buf_free(&b);
    return NULL;
  }
  return kb_buf_steal(&b, NULL);
}

/* Adds the password of a "DOMAIN\user:password" spec to secrets. */
static void evidence__secret_of(const char *spec, char (*secrets)[256],
                                size_t *n)
{
  char domain[128], user[128], err[256];

  if(*n < EVIDENCE_MAX_SECRETS &&
     !kb_users_split_spec(spec, true, domain, sizeof(domain), user,
                          sizeof(user), secrets[*n], sizeof(secrets[0]), err,
                          sizeof(err)) &&
     secrets[*n][0])
    (*n)++;
}

/* Collects every password a report could quote: the scenario's users and
 * client password, and each --user/-u value on the command line. */
size_t evidence__secrets(const struct scenario *sc, char (*secrets)[256])
{
  size_t i, n = 0;
  int k;

  for(i = 0; sc && i < sc->nusers; i++)
    evidence__secret_of(sc->user_specs[i], secrets, &n);
  if(sc && sc->has_password_override && sc->client_password[0] &&
     n < EVIDENCE_MAX_SECRETS)
    snprintf(secrets[n++], sizeof(secrets[0]), "%s", sc->client_password);
  for(k = 1; k < evidence__argc; k++) {
    const char *a = evidence__argv[k];
    if(!strncmp(a, "--user=", 7))
      evidence__secret_of(a + 7, secrets, &n);
    else if(!strncmp(a, "-u", 2) && a[2])
      evidence__secret_of(a + 2, secrets, &n);
    else if((!strcmp(a, "--user") || !strcmp(a, "-u")) &&
            k + 1 < evidence__argc)
      evidence__secret_of(evidence__argv[k + 1], secrets, &n);
  }
  return n;
}

/* Adds text to arr, passwords removed. */
static void evidence__append_redacted(json_t *arr, const char *text,
                                      char (*secrets)[256], size_t n)
{
  char *clean = evidence__redact(text, secrets, n);

  json_array_append_new(arr, clean ? json_string(clean) : json_null());
  free(clean);
}

json_t *evidence__stamp_json(char (*secrets)[256], size_t nsecrets)
{
  json_t *argv = json_array();
  struct timespec now;
  char when[64];
  int i;

  for(i = 0; i < evidence__argc; i++)
    evidence__append_redacted(argv, evidence__argv[i], secrets, nsecrets);
  if(evidence__epoch_set)
    evidence__iso(evidence__epoch_s * 1000000, when);
  else {
    clock_gettime(CLOCK_REALTIME, &now);
    evidence__iso((int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000, when);
  }
  return json_pack("{s:s, s:s, s:o, s:s}", "kbsim", version_kbsim(), "commit",
                   version_commit(), "argv", argv, "written", when);
}

json_t *evidence__scenario_json(const struct evidence_run *run,
                                char (*secrets)[256], size_t nsecrets)
{
  const struct scenario *sc = run->sc;
  char *clean;
  json_t *text, *file;

  if(!sc)
    return json_pack("{s:s, s:n, s:n}", "name", "live session", "file", "text");
  /* json_string refuses what is not UTF-8: such a file's text is null,
   * as an unreadable one's. Passwords never reach a report. */
  clean = run->scenario_text
              ? evidence__redact(run->scenario_text, secrets, nsecrets)
              : NULL;
  text = clean ? json_string(clean) : NULL;
  free(clean);
  file = sc->path[0] ? json_string(sc->path) : NULL;
  return json_pack("{s:s, s:o, s:o}", "name", sc->name, "file",
                   file ? file : json_null(), "text",
                   text ? text : json_null());
}

char *evidence_read_text(const char *path)
{
  FILE *f = fopen(path, "r");
  struct kb_buf b;
  char chunk[4096];
  size_t n;

  if(!f)
    return NULL;
  kb_buf_init(&b, (size_t)1 << 20);
  while((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
    if(kb_buf_add(&b, chunk, n))
      break;
  if(ferror(f) || !feof(f)) {
    fclose(f);
    kb_buf_free(&b);
    return NULL;
  }
  fclose(f);
  return kb_buf_steal(&b, NULL);
}
