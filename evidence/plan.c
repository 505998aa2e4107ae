/*
 * plan.c - where evidence goes: the files of one or several runs named
 * and checked before anything runs, standard output set aside when a
 * file is "-", and the streams opened and closed with errors that name
 * the flag.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evidence/evidence.h"

/* The original standard output once evidence_claim_stdout set it aside;
 * NULL: stdout itself. Written only by the main thread before any other
 * starts. */
static FILE *evidence__stdout;

enum evidence_status evidence_claim_stdout(const char *const *paths, size_t n,
                                           char *err, size_t errlen)
{
  const char *first = NULL;
  size_t i;
  int fd;

  for(i = 0; i < n; i++) {
    if(!paths[i] || strcmp(paths[i], "-"))
      continue;
    if(first) {
      snprintf(err, errlen,
               "only one evidence file can go to standard output ('-'); "
               "give the others file names");
      return EVIDENCE_BAD_ARGS;
    }
    first = paths[i];
  }
  if(!first || evidence__stdout)
    return EVIDENCE_OK;
  fflush(stdout);
  fd = dup(STDOUT_FILENO);
  if(fd < 0 || !(evidence__stdout = fdopen(fd, "w")) ||
     dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    snprintf(err, errlen, "cannot set standard output aside for evidence: %s",
             strerror(errno));
    if(fd >= 0 && !evidence__stdout)
      close(fd);
    return EVIDENCE_IO;
  }
  return EVIDENCE_OK;
}

FILE *evidence_open(const char *flag, const char *path, char *err,
                    size_t errlen)
{
  FILE *f;

  if(!strcmp(path, "-"))
    return evidence__stdout ? evidence__stdout : stdout;
  f = fopen(path, "w");
  if(!f)
    snprintf(err, errlen, "%s %s: cannot write: %s", flag, path,
             strerror(errno));
  return f;
}

int evidence_close(FILE *f, const char *flag, const char *path, char *err,
                   size_t errlen)
{
  int bad;

  if(f == stdout || f == evidence__stdout)
    bad = fflush(f) || ferror(f);
  else {
    bad = ferror(f);
    bad |= fclose(f) != 0;
  }
  if(bad && err)
    snprintf(err, errlen, "%s %s: cannot write: %s", flag, path,
             strerror(errno ? errno : EIO));
  return bad ? -1 : 0;
}

/* Checks that path can be written without leaving anything behind: a file
 * that is there is opened for writing (not truncated), one that is not is
 * created and removed again. Returns 0, or -1 with errno set. */
static int evidence__probe(const char *path)
{
  int fd;

  if(!strcmp(path, "-"))
    return 0;
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if(fd >= 0) {
    close(fd);
    return unlink(path);
  }
  if(errno != EEXIST)
    return -1;
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if(fd < 0)
    return -1;
  close(fd);
  return 0;
}

/* Writes path with label inserted before its extension ("bug.txt" +
 * "fix" -> "bug-fix.txt") into out. Returns 0, or -1 when it does not
 * fit. */
static int evidence__insert(const char *path, const char *label, char *out,
                            size_t len)
{
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(path, '.');
  int n;

  if(!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : path))
    n = snprintf(out, len, "%s-%s", path, label);
  else
    n = snprintf(out, len, "%.*s-%s%s", (int)(dot - path), path, label, dot);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Picks run i's label: its name, or with -2, -3... the first one no
 * earlier run has. labels holds the earlier ones. */
static void evidence__label(char (*labels)[80], size_t i, const char *name)
{
  unsigned k;
  size_t j;

  for(k = 1;; k++) {
    if(k == 1)
      snprintf(labels[i], 80, "%s", name);
    else
      snprintf(labels[i], 80, "%.60s-%u", name, k);
    for(j = 0; j < i; j++)
      if(!strcmp(labels[j], labels[i]))
        break;
    if(j == i)
      return;
  }
}

enum evidence_status evidence_plan(const struct evidence_want *want,
                                   const char *const *names, size_t n,
                                   struct evidence_paths *out, char *err,
                                   size_t errlen)
{
  static const char *const flags[3] = {"--transcript", "--pcap", "--json"};
  const char *given[3] = {want->transcript, want->pcap, want->json};
  char(*labels)[80] = calloc(n + 1, sizeof(*labels));
  enum evidence_status result = EVIDENCE_OK;
  size_t i, k;

  if(!labels) {
    snprintf(err, errlen, "out of memory naming the evidence files");
    return EVIDENCE_IO;
  }
  memset(out, 0, n * sizeof(*out));
  for(k = 0; k < 3 && n > 1; k++)
    if(given[k] && !strcmp(given[k], "-")) {
      snprintf(err, errlen,
               "%s -: standard output holds one run's file, and %zu "
               "scenarios would each write one; give a file name (each "
               "scenario gets its own)",
               flags[k], n);
      result = EVIDENCE_BAD_ARGS;
      goto done;
    }
  for(i = 0; i < n; i++) {
    char *slot[3] = {out[i].transcript, out[i].pcap, out[i].json};

    evidence__label(labels, i, names[i]);
    for(k = 0; k < 3; k++) {
      if(!given[k])
        continue;
      if(n == 1)
        snprintf(slot[k], sizeof(out[i].json), "%s", given[k]);
      else if(evidence__insert(given[k], labels[i], slot[k],
                               sizeof(out[i].json))) {
        snprintf(err, errlen, "%s %s: the name is too long; give a shorter one",
                 flags[k], given[k]);
        result = EVIDENCE_BAD_ARGS;
        goto done;
      }
      if(evidence__probe(slot[k])) {
        snprintf(err, errlen,
                 "%s %s: cannot write: %s; give a path in a writable "
                 "directory",
                 flags[k], slot[k], strerror(errno));
        result = EVIDENCE_IO;
        goto done;
      }
    }
  }
  if(want->html && evidence__probe(want->html)) {
    snprintf(err, errlen,
             "--html %s: cannot write: %s; give a path in a writable "
             "directory",
             want->html, strerror(errno));
    result = EVIDENCE_IO;
  }

done:
  free(labels);
  return result;
}

enum evidence_status evidence_prepare(const struct evidence_want *want,
                                      const char *const *names, size_t n,
                                      struct evidence_paths *out, char *err,
                                      size_t errlen)
{
  const char *outs[4] = {want->transcript, want->pcap, want->json, want->html};
  enum evidence_status st = evidence_claim_stdout(outs, 4, err, errlen);

  return st ? st : evidence_plan(want, names, n, out, err, errlen);
}
