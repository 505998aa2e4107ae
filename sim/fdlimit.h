/*
 * fdlimit.h - file descriptors a run needs, checked before it starts.
 *
 * A session costs SIM_FDS_PER_SESSION descriptors at its peak: four TCP
 * sockets (the client's, the listener's accepted one and its upstream one,
 * Exchange's accepted one). The clients' multi handle is their worker's,
 * one per worker thread (client/perform.c), and the listener's is its
 * event loop's, one per loop (proxy/upstream.c), so their wake-up socket
 * pairs count in SIM_FDS_BASE. Measured by listing /proc/PID/fd while
 * bench_memory held 1000 sessions: about 3900 TCP sockets, 6 Unix ones,
 * 10 others (with a multi handle per listener connection, before: 4002,
 * 2004 and 10; bench/README.md). Running out mid-run makes connections
 * fail in ways that look like the bug, so a run that cannot fit is
 * refused before it starts.
 */
#ifndef FDLIMIT_H
#define FDLIMIT_H

#include <stddef.h>

#include "client/client.h"

#define SIM_FDS_PER_SESSION 4u
/* An outlook-anywhere session: its autodiscover connection and its two
 * RPC channels' (client/rpc.c), each with the listener's two sockets and
 * Exchange's socket, and the channels' own multi handle: at 200 sessions
 * of scenarios/outlook-anywhere-fix.ini a limit of 9 each failed sockets,
 * 10 each did not (14 while each listener connection had a multi handle
 * and its wake-up pair). */
#define SIM_FDS_PER_RPC_SESSION 10u
/* A session whose client is another process (serve): the listener's
 * socket and upstream socket, Exchange's socket, the balancer's two. */
#define SIM_FDS_PER_SERVED_SESSION 5u
/* Threads' eventfds, epoll sets and wake-up pairs, listeners, files. */
#define SIM_FDS_BASE 64u

/* Raises the soft RLIMIT_NOFILE to the hard one (once; later calls only
 * read it). Returns the soft limit now in force. */
unsigned long sim_fd_limit(void);

/* The descriptors sessions concurrent sessions need (Communicator's). */
unsigned long sim_fd_need(unsigned long sessions);

/* The descriptors one session of a client of kind needs at its peak. */
unsigned sim_fd_per_session(enum client_kind kind);

/* Whether sessions of per_session descriptors each fit under the limit
 * (raised first). Returns 0, or -1 with one line in err saying what to
 * raise: "1000 clients need about 4064 file descriptors; the limit is
 * 1024: raise it (ulimit -n 4064) or run at most 240 clients". */
int sim_fd_check(unsigned long sessions, unsigned per_session, char *err,
                 size_t errlen);

/* The most sessions of per_session descriptors each that fit under the
 * limit (raised first). */
unsigned long sim_fd_sessions(unsigned per_session);

#endif /* FDLIMIT_H */
