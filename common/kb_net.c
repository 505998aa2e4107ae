/*
 * kb_net.c - listening sockets and numeric addresses for every server.
 */
#include "common/kb_net.h"

#include "common/kb_env.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void kb_net_where(const char *host, uint16_t port, char *out, size_t len)
{
  if(!host)
    host = "*";
  snprintf(out, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
           (unsigned)port);
}

int kb_net_resolve(const char *host, uint16_t port, bool passive,
                   struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                   size_t errlen)
{
  struct addrinfo hints, *ai = NULL;
  char service[8];
  int rc;

  snprintf(service, sizeof(service), "%u", (unsigned)port);
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  rc = getaddrinfo(host, service, &hints, &ai);
  if(rc || !ai || ai->ai_addrlen > sizeof(*ss)) {
    snprintf(err, errlen,
             "'%s' is not a numeric address (%s); use e.g. "
             "127.0.0.1",
             host ? host : "", rc ? gai_strerror(rc) : "no address");
    if(ai)
      freeaddrinfo(ai);
    return -1;
  }
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  *sslen = ai->ai_addrlen;
  freeaddrinfo(ai);
  return 0;
}

int kb_net_listen(const char *who, const char *host, uint16_t port, int flags,
                  char *err, size_t errlen)
{
  struct sockaddr_storage ss;
  socklen_t sslen = 0;
  char where[80], why[160];
  int one = 1;
  int fd = -1;

  kb_net_where(host, port, where, sizeof(where));
  if(kb_net_resolve(host, port, true, &ss, &sslen, why, sizeof(why))) {
    snprintf(err, errlen, "%s: cannot listen on %s: %s", who, where, why);
    goto error;
  }
  fd = socket(ss.ss_family,
              SOCK_STREAM | SOCK_CLOEXEC |
                  (flags & KB_NET_NONBLOCK ? SOCK_NONBLOCK : 0),
              0);
  if(fd < 0) {
    snprintf(err, errlen, "%s: cannot listen on %s: socket(): %s", who, where,
             strerror(errno));
    goto error;
  }
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if(bind(fd, (struct sockaddr *)&ss, sslen) || listen(fd, SOMAXCONN)) {
    snprintf(err, errlen, "%s: cannot listen on %s: %s; pick another port or 0",
             who, where, strerror(errno));
    goto error;
  }
  return fd;

error:
  if(fd >= 0)
    close(fd);
  return -1;
}

uint16_t kb_net_local_port(int fd)
{
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);

  if(getsockname(fd, (struct sockaddr *)&ss, &len))
    return 0;
  return kb_sockaddr_port((struct sockaddr *)&ss);
}

int kb_net_bind_source(int fd, uint32_t source)
{
  struct sockaddr_in sin;
  int one = 1;

  if(!source)
    return 0;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(source);
#ifdef IP_BIND_ADDRESS_NO_PORT
  (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#else
  (void)one;
#endif
  return bind(fd, (struct sockaddr *)&sin, sizeof(sin));
}

static atomic_ulong kb_net_exhausted;

int kb_net_socket(int domain, int type, int protocol)
{
  int fd = socket(domain, type, protocol);
  if(fd < 0 && (errno == EMFILE || errno == ENFILE))
    atomic_fetch_add(&kb_net_exhausted, 1);
  return fd;
}

unsigned long kb_net_fd_exhausted(void)
{
  return atomic_load(&kb_net_exhausted);
}
