/*
 * catalogue.c - the scenario search path (see catalogue.h).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalogue.h"
#include "usage.h"

#ifndef KBSIM_CATALOGUE_DIR
#error "KBSIM_CATALOGUE_DIR must come from sim/CMakeLists.txt"
#endif
#ifndef KBSIM_BIN_TO_DATA
#error "KBSIM_BIN_TO_DATA must come from sim/CMakeLists.txt"
#endif

static bool catalogue_is_dir(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool catalogue_is_file(const char *path)
{
  struct stat st;

  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int catalogue_dir(char *dir, size_t len)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

  if(n > 0) {
    char *slash;
    exe[n] = '\0';
    slash = strrchr(exe, '/');
    if(slash) {
      char near[PATH_MAX + 64], real[PATH_MAX];
      *slash = '\0';
      snprintf(near, sizeof(near), "%s/%s/kbsim/scenarios", exe,
               KBSIM_BIN_TO_DATA);
      if(realpath(near, real) && catalogue_is_dir(real)) {
        snprintf(dir, len, "%s", real);
        return 0;
      }
    }
  }
  snprintf(dir, len, "%s", KBSIM_CATALOGUE_DIR);
  return catalogue_is_dir(dir) ? 0 : -1;
}

static int catalogue_ini(const struct dirent *d)
{
  size_t n = strlen(d->d_name);

  return n > 4 && d->d_name[0] != '.' && !strcmp(d->d_name + n - 4, ".ini");
}

int catalogue_names(char ***names, size_t *n, char *err, size_t errlen)
{
  char dir[PATH_MAX];
  struct dirent **list = NULL;
  char **out;
  int count, i;

  *names = NULL;
  *n = 0;
  if(catalogue_dir(dir, sizeof(dir))) {
    snprintf(err, errlen,
             "the scenario catalogue is not installed (no %s); reinstall "
             "kbsim, or give scenario files",
             dir);
    return -1;
  }
  count = scandir(dir, &list, catalogue_ini, alphasort);
  if(count < 0) {
    snprintf(err, errlen, "cannot read the scenario catalogue %s: %s", dir,
             strerror(errno));
    return -1;
  }
  out = calloc((size_t)count + 1, sizeof(*out));
  for(i = 0; i < count; i++) {
    if(out)
      out[i] = strdup(list[i]->d_name);
    free(list[i]);
  }
  free(list);
  if(!out) {
    snprintf(err, errlen, "out of memory listing %s", dir);
    return -1;
  }
  for(i = 0; i < count; i++)
    if(!out[i]) {
      catalogue_names_free(out, (size_t)count);
      snprintf(err, errlen, "out of memory listing %s", dir);
      return -1;
    }
  *names = out;
  *n = (size_t)count;
  return 0;
}

void catalogue_names_free(char **names, size_t n)
{
  size_t i;

  if(!names)
    return;
  for(i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

/* Tries dir/file; on success writes it to path and returns true. A name
 * too long for PATH_MAX or for path is not tried: cut short, it could
 * name another file. */
static bool catalogue_try(const char *dir, const char *file, char *path,
                          size_t len)
{
  char buf[PATH_MAX];
  int n = snprintf(buf, sizeof(buf), "%s/%s", dir, file);

  if(n < 0 || (size_t)n >= sizeof(buf) || (size_t)n >= len ||
     !catalogue_is_file(buf))
    return false;
  memcpy(path, buf, (size_t)n + 1);
  return true;
}

int catalogue_find(const char *arg, char *path, size_t len, char *err,
                   size_t errlen)
{
  const char *env = getenv("KBSIM_SCENARIOS");
  char file[NAME_MAX + 1], dir[PATH_MAX], word[NAME_MAX + 1];
  char **names = NULL;
  const char *best = NULL;
  size_t n = 0, arglen = strlen(arg), i;
  int installed;

  /* A path, or a file that is there: as given (scenario_load reports what
   * is wrong with it). */
  if(strchr(arg, '/') || catalogue_is_file(arg) || !arglen ||
     arglen + 5 > sizeof(file)) {
    snprintf(path, len, "%s", arg);
    return 0;
  }
  if(arglen > 4 && !strcmp(arg + arglen - 4, ".ini"))
    snprintf(file, sizeof(file), "%s", arg);
  else
    snprintf(file, sizeof(file), "%s.ini", arg);
  if(catalogue_try(".", file, path, len))
    return 0;
  if(env) {
    const char *p = env;
    while(*p) {
      size_t dl = strcspn(p, ":");
      if(dl && dl < sizeof(dir)) {
        snprintf(dir, sizeof(dir), "%.*s", (int)dl, p);
        if(catalogue_try(dir, file, path, len))
          return 0;
      }
      p += dl;
      if(*p)
        p++;
    }
  }
  installed = catalogue_dir(dir, sizeof(dir)) == 0;
  if(installed && catalogue_try(dir, file, path, len))
    return 0;

  /* Not found: the closest name in the catalogue. */
  if(installed && !catalogue_names(&names, &n, err, errlen)) {
    const char **words = calloc(n ? n : 1, sizeof(*words));
    snprintf(word, sizeof(word), "%.*s", (int)(strlen(file) - 4), file);
    for(i = 0; words && i < n; i++) {
      names[i][strlen(names[i]) - 4] = '\0'; /* "bug.ini" -> "bug" */
      words[i] = names[i];
    }
    best = words ? kbsim_did_you_mean(word, words, n) : NULL;
    snprintf(err, errlen,
             "scenario '%s' not found: no such file, no ./%s%s%s, and not in "
             "the catalogue (%s)%s%s%s; 'kbsim list' shows the catalogue",
             arg, file, env ? ", none in $KBSIM_SCENARIOS=" : "",
             env ? env : "", dir, best ? "; did you mean '" : "",
             best ? best : "", best ? "'?" : "");
    free(words);
    catalogue_names_free(names, n);
    return -1;
  }
  snprintf(err, errlen,
           "scenario '%s' not found: no such file, no ./%s%s%s, and no "
           "catalogue installed (%s)",
           arg, file, env ? ", none in $KBSIM_SCENARIOS=" : "", env ? env : "",
           dir);
  return -1;
}
