/*
 * kb_net.h - listening sockets and numeric addresses, one way for every
 * server of kbsim (listener, Exchange, balancer, admin endpoint), in the
 * style of redis's anet: each call returns a result and, on failure, one
 * line in the caller's err buffer saying what was wrong and what to do.
 *
 * Addresses are numeric only (127.0.0.1, ::1): kbsim never resolves names,
 * so a run never waits on DNS and never reaches a host it was not given.
 */
#ifndef KB_NET_H
#define KB_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Flags for kb_net_listen. */
#define KB_NET_NONBLOCK 0x1 /* the socket is non-blocking */

/* Formats host and port as "127.0.0.1:8080" or "[::1]:8080" into out.
 * Never fails; truncates to len. */
void kb_net_where(const char *host, uint16_t port, char *out, size_t len);

/* Turns a numeric host and a port into *ss and *sslen. passive: host may
 * be NULL for the wildcard address. Returns 0, or -1 with the reason
 * ("'example.com' is not a numeric address ...; use e.g. 127.0.0.1") in
 * err. */
int kb_net_resolve(const char *host, uint16_t port, bool passive,
                   struct sockaddr_storage *ss, socklen_t *sslen, char *err,
                   size_t errlen);

/* Opens a TCP socket listening on host:port (numeric; port 0 lets the
 * kernel pick) with SO_REUSEADDR, close-on-exec and the system's largest
 * backlog. who names the server in err ("balancer", "Exchange"). Returns
 * the descriptor, which the caller owns, or -1 with a line in err such as
 * "balancer: cannot listen on 127.0.0.1:80: Permission denied; pick
 * another port or 0". */
int kb_net_listen(const char *who, const char *host, uint16_t port, int flags,
                  char *err, size_t errlen);

/* Opens a socket as socket(2) does; when the process is out of file
 * descriptors (EMFILE, ENFILE) counts it, so that a run can tell its own
 * exhaustion from the listener's behaviour (kb_net_fd_exhausted). */
int kb_net_socket(int domain, int type, int protocol);

/* Binds an AF_INET socket, before its connect(), to the IPv4 address
 * source (host order; 0 does nothing), the port left to connect() as
 * without a bind (IP_BIND_ADDRESS_NO_PORT). A kept topology gives each
 * run its own loopback source (127.0.0.N): the kernel's ports in
 * TIME_WAIT are counted per (source, destination), and runs on the same
 * listener ports from one source wear the 28,000 ephemeral ports out
 * within a minute. Returns 0, or -1 (errno set; the socket is then
 * unbound and still usable). */
int kb_net_bind_source(int fd, uint32_t source);

/* How many times kb_net_socket found no descriptor, process-wide. */
unsigned long kb_net_fd_exhausted(void);

/* The port fd is bound to, in host order; 0 when it has none or fd is
 * not an IPv4/IPv6 socket. */
uint16_t kb_net_local_port(int fd);

#endif /* KB_NET_H */
