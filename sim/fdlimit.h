/*
 * fdlimit.h - file descriptors a run needs, checked before it starts.
 *
 * A session costs about SIM_FDS_PER_SESSION descriptors at its peak (the
 * client's socket and libcurl's, the listener's accepted socket, its
 * upstream socket and libcurl's wake-up pair, Exchange's accepted socket;
 * measured with `ulimit -n` against `kbsim run --clients 100`: 800 fail,
 * 850 pass). Running out mid-run makes connections fail in ways that look
 * like the bug, so a run that cannot fit is refused before it starts.
 */
#ifndef FDLIMIT_H
#define FDLIMIT_H

#include <stddef.h>

#define SIM_FDS_PER_SESSION 10u
/* A session whose client is another process (serve): the listener's
 * socket, upstream socket and wake-up pair, Exchange's socket, the
 * balancer's two. */
#define SIM_FDS_PER_SERVED_SESSION 7u
#define SIM_FDS_BASE 64u /* threads' eventfds, epoll sets, listeners, files */

/* Raises the soft RLIMIT_NOFILE to the hard one (once; later calls only
 * read it). Returns the soft limit now in force. */
unsigned long sim_fd_limit(void);

/* The descriptors sessions concurrent sessions need. */
unsigned long sim_fd_need(unsigned long sessions);

/* Whether sessions fit under the limit (raised first). Returns 0, or -1
 * with one line in err saying what to raise: "1000 clients need about
 * 10064 file descriptors; the limit is 1024: raise it (ulimit -n 10064)
 * or run fewer clients". */
int sim_fd_check(unsigned long sessions, char *err, size_t errlen);

/* The most sessions of per_session descriptors each that fit under the
 * limit (raised first). */
unsigned long sim_fd_sessions(unsigned per_session);

#endif /* FDLIMIT_H */
