/*
 * secret.c - user files (inih), KBSIM_PASSWORD and a no-echo prompt
 * (termios on /dev/tty). See secret.h.
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <ini.h>

struct secret_reading {
  secret_user_add_fn add;
  void *ctx;
  const char *path;
  char *err;
  size_t errlen;
  int failed;
};

/* inih's handler: one "DOMAIN\user = password". Returns 0 on the first
 * error, which stops inih. */
static int secret_user_line(void *arg, const char *section, const char *key,
                            const char *value)
{
  struct secret_reading *f = arg;
  char spec[512];
  char why[256];

  if(*section && strcmp(section, "users")) {
    snprintf(f->err, f->errlen,
             "%s: section [%s]: a user file holds only [users] or "
             "DOMAIN\\user = password lines",
             f->path, section);
    f->failed = 1;
    return 0;
  }
  if(!strcmp(key, "dns_domain"))
    return 1; /* a scenario's [users] may carry it; nothing to add */
  if(snprintf(spec, sizeof(spec), "%s:%s", key, value) >= (int)sizeof(spec) ||
     f->add(f->ctx, spec, why, sizeof(why))) {
    /* The key is DOMAIN\user: no password in it. */
    snprintf(f->err, f->errlen, "%s: %.100s: %s", f->path, key, why);
    f->failed = 1;
    memset(spec, 0, sizeof(spec));
    return 0;
  }
  memset(spec, 0, sizeof(spec));
  return 1;
}

int secret_user_file(const char *path, secret_user_add_fn add, void *ctx,
                     char *err, size_t errlen)
{
  struct secret_reading f = {add, ctx, path, err, errlen, 0};
  FILE *fp = fopen(path, "r");
  int rc;

  if(!fp) {
    snprintf(err, errlen, "cannot read the user file %s: %s; check the path",
             path, strerror(errno));
    return -1;
  }
  rc = ini_parse_file(fp, secret_user_line, &f);
  fclose(fp);
  if(f.failed)
    return -1;
  if(rc > 0) {
    snprintf(err, errlen,
             "%s:%d: not DOMAIN\\user = password (nor [users] or a comment)",
             path, rc);
    return -1;
  }
  if(rc < 0) {
    snprintf(err, errlen, "cannot read the user file %s", path);
    return -1;
  }
  return 0;
}

int secret_ask_password(const char *who, char *password, size_t len, char *err,
                        size_t errlen)
{
  const char *env = getenv("KBSIM_PASSWORD");
  struct termios old, quiet;
  size_t n;
  int fd;
  FILE *tty;

  if(env && *env) {
    if(strlen(env) >= len) {
      snprintf(err, errlen, "KBSIM_PASSWORD is longer than %zu bytes", len - 1);
      return -1;
    }
    snprintf(password, len, "%s", env);
    return 0;
  }
  fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  if(fd < 0 || !isatty(fd)) {
    if(fd >= 0)
      close(fd);
    snprintf(err, errlen,
             "no password for %s: give DOMAIN\\user:password, set "
             "KBSIM_PASSWORD, or run on a terminal to be asked",
             who);
    return -1;
  }
  tty = fdopen(fd, "r+");
  if(!tty) {
    close(fd);
    snprintf(err, errlen, "cannot open the terminal to ask for a password");
    return -1;
  }
  fprintf(tty, "Password for %s: ", who);
  fflush(tty);
  tcgetattr(fd, &old);
  quiet = old;
  quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
  tcsetattr(fd, TCSAFLUSH, &quiet);
  password[0] = '\0';
  if(!fgets(password, (int)len, tty))
    password[0] = '\0';
  tcsetattr(fd, TCSAFLUSH, &old);
  fflush(tty);
  fputc('\n', tty);
  fclose(tty);
  n = strcspn(password, "\r\n");
  password[n] = '\0';
  if(!n) {
    snprintf(err, errlen, "no password typed for %s", who);
    return -1;
  }
  return 0;
}
