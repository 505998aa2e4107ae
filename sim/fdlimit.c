/*
 * fdlimit.c - RLIMIT_NOFILE: raised to the hard limit, and checked against
 * what a run needs. See fdlimit.h.
 */
#include "sim/fdlimit.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>

static pthread_once_t sim__fd_once = PTHREAD_ONCE_INIT;

static void sim__fd_raise(void)
{
  struct rlimit r;
  if(getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &r);
  }
}

unsigned long sim_fd_limit(void)
{
  struct rlimit r;
  pthread_once(&sim__fd_once, sim__fd_raise);
  if(getrlimit(RLIMIT_NOFILE, &r) || r.rlim_cur == RLIM_INFINITY)
    return (unsigned long)-1;
  return (unsigned long)r.rlim_cur;
}

unsigned long sim_fd_need(unsigned long sessions)
{
  return SIM_FDS_BASE + sessions * SIM_FDS_PER_SESSION;
}

unsigned sim_fd_per_session(enum client_kind kind)
{
  return kind == CLIENT_KIND_OUTLOOK_ANYWHERE ? SIM_FDS_PER_RPC_SESSION
                                              : SIM_FDS_PER_SESSION;
}

int sim_fd_check(unsigned long sessions, unsigned per_session, char *err,
                 size_t errlen)
{
  unsigned long limit = sim_fd_limit();
  unsigned long need = SIM_FDS_BASE + sessions * per_session;

  if(need <= limit)
    return 0;
  snprintf(err, errlen,
           "%lu client%s about %lu file descriptors; the limit is %lu: "
           "raise it (ulimit -n %lu) or run at most %lu clients",
           sessions, sessions == 1 ? " needs" : "s need", need, limit, need,
           sim_fd_sessions(per_session));
  return -1;
}

unsigned long sim_fd_sessions(unsigned per_session)
{
  unsigned long limit = sim_fd_limit();
  return limit > SIM_FDS_BASE ? (limit - SIM_FDS_BASE) / per_session : 0;
}
