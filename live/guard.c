/*
 * guard.c - who may ask the admin endpoint: the token it is made with,
 * the Host and Origin a request must name, the token it must carry and a
 * POST's content type; and the token file `kbsim serve` leaves for
 * `kbsim ctl`.
 */
#include "admin_int.h"
#include "common/kb_env.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADMIN_TOKEN_BYTES 24 /* 48 hex digits, as Jupyter's */

int admin_token_check(const char *token, char *err, size_t errlen)
{
  size_t len = strlen(token);

  if(len < ADMIN_TOKEN_MIN || len > ADMIN_TOKEN_MAX ||
     strspn(token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789_-") != len) {
    snprintf(err, errlen,
             "the admin token must be %d to %d characters of letters, "
             "digits, '_' and '-'",
             ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX);
    return -1;
  }
  return 0;
}

/* Compares a token a client gave with ours in time that depends on
 * neither's content: both are copied into zeroed buffers of the largest
 * size, every byte and the lengths are compared, the copies wiped. */
static bool admin__token_eq(const struct admin *a, const char *given)
{
  unsigned char x[ADMIN_TOKEN_MAX + 1], y[ADMIN_TOKEN_MAX + 1];
  size_t glen = strnlen(given, sizeof(x));
  size_t tlen = strlen(a->token);
  volatile unsigned char diff = 0;
  size_t i;

  memset(x, 0, sizeof(x));
  memset(y, 0, sizeof(y));
  memcpy(x, given, glen < sizeof(x) ? glen : sizeof(x));
  memcpy(y, a->token, tlen);
  for(i = 0; i < sizeof(x); i++)
    diff |= (unsigned char)(x[i] ^ y[i]);
  diff |= (unsigned char)(glen != tlen);
  explicit_bzero(x, sizeof(x));
  explicit_bzero(y, sizeof(y));
  return !diff;
}

/* Whether name (a Host or Origin host, brackets stripped, len bytes) is
 * one this endpoint answers to. */
static bool admin__host_known(const struct admin *a, const char *name,
                              size_t len)
{
  size_t i;

  if((len == strlen(a->bind_host) && !strncasecmp(name, a->bind_host, len)) ||
     (len == 9 && !strncasecmp(name, "localhost", 9)))
    return true;
  for(i = 0; i < a->nhosts; i++)
    if(len == strlen(a->hosts[i]) && !strncasecmp(name, a->hosts[i], len))
      return true;
  return false;
}

/* Whether hostport ("127.0.0.1:8099", "[::1]:8099", "localhost") names
 * this endpoint: a known host and, when a port is given, ours. */
static bool admin__hostport_ok(const struct admin *a, const char *hostport)
{
  const char *host = hostport, *end, *colon;
  size_t len;

  if(*host == '[') {
    host++;
    end = strchr(host, ']');
    if(!end)
      return false;
    colon = end[1] == ':' ? end + 1 : NULL;
    if(end[1] && !colon)
      return false;
  }
  else {
    colon = strchr(host, ':');
    if(colon && strchr(colon + 1, ':'))
      return false;
    end = colon ? colon : host + strlen(host);
  }
  len = (size_t)(end - host);
  if(!len || !admin__host_known(a, host, len))
    return false;
  if(colon) {
    char *stop;
    unsigned long port;

    if(!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
      return false;
    port = strtoul(colon + 1, &stop, 10);
    if(port != a->port)
      return false;
  }
  return true;
}

/* Sets up what the guard checks: the token (config->token, checked, or
 * a random one from the kernel), the further Host names and the bound
 * address. Returns 0, or -1 with a one-line reason in err. */
int admin__guard_init(struct admin *a, const struct admin_config *config,
                      const char *bind_host, char *err, size_t errlen)
{
  size_t i;

  if(config->token) {
    if(admin_token_check(config->token, err, errlen))
      return -1;
    snprintf(a->token, sizeof(a->token), "%s", config->token);
  }
  else {
    struct kb_rng kernel; /* zeroed: the kernel's randomness */
    uint8_t raw[ADMIN_TOKEN_BYTES];

    memset(&kernel, 0, sizeof(kernel));
    kb_rng_fill(&kernel, "admin/token", raw, sizeof(raw));
    for(i = 0; i < sizeof(raw); i++)
      snprintf(a->token + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof(raw));
  }
  if(config->nhosts > ADMIN_MAX_HOSTS) {
    snprintf(err, errlen, "admin endpoint: at most %d --admin-host names",
             ADMIN_MAX_HOSTS);
    return -1;
  }
  for(i = 0; i < config->nhosts; i++)
    snprintf(a->hosts[i], sizeof(a->hosts[i]), "%s", config->hosts[i]);
  a->nhosts = config->nhosts;
  snprintf(a->bind_host, sizeof(a->bind_host), "%s", bind_host);
  return 0;
}

/* Checks one request before anything is done for it: Host, Origin, the
 * token (from Authorization: Bearer, the cookie, or on GET / the query),
 * and a POST's content type. Returns ADMIN__OK, or what was wrong with a
 * one-line reason in why; *from_query says the token came in the URL. */
enum admin__verdict admin__guard(struct admin *a, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 bool *from_query, char *why, size_t whylen)
{
  const char *host =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
  const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_ORIGIN);
  const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_AUTHORIZATION);
  const char *cookie =
      MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, a->cookie);
  const char *query =
      MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token");
  const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_TYPE);
  const char *token = NULL;

  *from_query = false;
  if(!host || !admin__hostport_ok(a, host)) {
    snprintf(why, whylen,
             "Host '%.100s' is not this endpoint's; use "
             "http://%s%s%s:%u/, or start serve with --admin-host NAME",
             host ? host : "(none)", strchr(a->bind_host, ':') ? "[" : "",
             a->bind_host, strchr(a->bind_host, ':') ? "]" : "",
             (unsigned)a->port);
    return ADMIN__BAD_HOST;
  }
  if(origin &&
     (strncmp(origin, "http://", 7) || strcasecmp(origin + 7, host))) {
    snprintf(why, whylen,
             "Origin '%.100s' is not this endpoint's (http://%.100s): other "
             "web pages may not use the admin endpoint",
             origin, host);
    return ADMIN__BAD_ORIGIN;
  }
  if(auth && !strncasecmp(auth, "Bearer ", 7))
    token = auth + 7;
  else if(cookie)
    token = cookie;
  else if(query && !strcmp(url, "/") && !strcmp(method, "GET")) {
    token = query;
    *from_query = true;
  }
  if(!token) {
    snprintf(why, whylen,
             "no token: open the console URL `kbsim serve` printed, or send "
             "Authorization: Bearer TOKEN (kbsim ctl --token)");
    return ADMIN__NO_TOKEN;
  }
  if(!admin__token_eq(a, token)) {
    snprintf(why, whylen,
             "wrong token: use the one `kbsim serve` printed or wrote to "
             "its token file");
    return ADMIN__BAD_TOKEN;
  }
  if(!strcmp(method, "POST")) {
    size_t n = type ? strcspn(type, "; \t") : 0;

    if(!type || n != 16 || strncasecmp(type, "application/json", 16)) {
      snprintf(why, whylen,
               "a change needs Content-Type: application/json, not "
               "'%.60s'",
               type ? type : "(none)");
      return ADMIN__BAD_TYPE;
    }
  }
  return ADMIN__OK;
}

void admin_token_path(uint16_t port, char *out, size_t len)
{
  const char *base = getenv("XDG_RUNTIME_DIR");

  if(!base || base[0] != '/')
    base = "/tmp";
  snprintf(out, len, "%s/kbsim-%u/admin-%u.token", base, (unsigned)getuid(),
           (unsigned)port);
}

int admin_token_write(const char *path, const char *token, char *err,
                      size_t errlen)
{
  char dir[512];
  char *slash;
  struct stat st;
  size_t len = strlen(token);
  int fd;

  snprintf(dir, sizeof(dir), "%s", path);
  slash = strrchr(dir, '/');
  if(!slash || slash == dir) {
    snprintf(err, errlen, "token file %s: not in a directory", path);
    return -1;
  }
  *slash = '\0';
  if(mkdir(dir, 0700) && errno != EEXIST) {
    snprintf(err, errlen, "cannot make %s for the token file: %s", dir,
             strerror(errno));
    return -1;
  }
  if(lstat(dir, &st) || !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
     (st.st_mode & 077)) {
    snprintf(err, errlen,
             "%s is not a directory of yours alone (mode 0700); remove it "
             "and start again",
             dir);
    return -1;
  }
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if(fd < 0 || fchmod(fd, 0600) || write(fd, token, len) != (ssize_t)len ||
     write(fd, "\n", 1) != 1) {
    snprintf(err, errlen, "cannot write the token file %s: %s", path,
             strerror(errno));
    if(fd >= 0)
      close(fd);
    return -1;
  }
  if(close(fd)) {
    snprintf(err, errlen, "cannot write the token file %s: %s", path,
             strerror(errno));
    return -1;
  }
  return 0;
}

int admin_token_read(const char *path, char *out, size_t len, char *err,
                     size_t errlen)
{
  char buf[ADMIN_TOKEN_MAX + 4];
  ssize_t n;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

  if(fd < 0) {
    snprintf(err, errlen, "cannot read the token file %s (%s)", path,
             strerror(errno));
    return -1;
  }
  n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if(n < 0)
    n = 0;
  buf[n] = '\0';
  buf[strcspn(buf, "\r\n")] = '\0';
  if(admin_token_check(buf, err, errlen) || strlen(buf) >= len) {
    char why[160];

    snprintf(why, sizeof(why), "%s", err);
    snprintf(err, errlen, "%s: %s", path, why);
    return -1;
  }
  snprintf(out, len, "%s", buf);
  explicit_bzero(buf, sizeof(buf));
  return 0;
}
