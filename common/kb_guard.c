/*
 * kb_guard.c - connection caps and request deadlines for libmicrohttpd
 * servers. See kb_guard.h.
 *
 * One mutex guards a list of slots, one per open connection; a thread
 * sleeps on a condition variable (CLOCK_MONOTONIC) until the earliest
 * deadline; a call that moves a slot wakes it only when the slot's new
 * deadline comes before the one it sleeps until (a kept-alive connection's
 * requests push their deadlines later, so a busy server does not wake the
 * thread on every request). A slot is never freed while its socket may be
 * touched: the server closes the slot (kb_guard_close) before libmicrohttpd
 * closes the socket, and the thread only touches sockets of slots still listed.
 */
#include "common/kb_guard.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Where a connection's current request stands. */
enum kb_guard_phase {
  KB_GUARD_HEAD, /* waiting for the head: deadline running */
  KB_GUARD_BODY, /* head read, waiting for the body: deadline running */
  KB_GUARD_BUSY  /* answering: no deadline (the server's own timeouts) */
};

struct kb_guard_slot {
  struct kb_guard *guard;
  int fd;
  struct sockaddr_storage addr;
  enum kb_guard_phase phase;
  int64_t deadline_ms; /* monotonic; for HEAD and BODY */
  int64_t waiting_ms;  /* since when it waits for a head: eviction order */
  bool expired;        /* answered 408 or evicted: shut down, closing */
  struct kb_guard_slot *prev, *next;
};

struct kb_guard {
  struct kb_guard_config config;
  pthread_mutex_t lock;
  pthread_cond_t wake;
  pthread_t thread;
  bool stopping;
  /* When the thread wakes next unless signalled (monotonic ms); 0 while
   * it has not yet looked at the slots. */
  int64_t sleep_until;
  struct kb_guard_slot *slots;
  struct kb_guard_stats stats;
  char answer_408[256];
  size_t answer_408_len;
};

static int64_t kb_guard_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Same address (the port aside). */
static bool kb_guard_same_host(const struct sockaddr_storage *a,
                               const struct sockaddr *b)
{
  if(!b || a->ss_family != b->sa_family)
    return false;
  if(b->sa_family == AF_INET)
    return !memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                   &((const struct sockaddr_in *)b)->sin_addr,
                   sizeof(struct in_addr));
  if(b->sa_family == AF_INET6)
    return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                   &((const struct sockaddr_in6 *)b)->sin6_addr,
                   sizeof(struct in6_addr));
  return false;
}

/* Ends a connection under the lock: answered 408 first when answer. */
static void kb_guard_end(struct kb_guard *g, struct kb_guard_slot *s,
                         bool answer)
{
  if(answer) {
    /* Nothing else writes now: the head or body is incomplete, so the
     * server has no answer queued (head_done/body_done refuse from now
     * on). A full send buffer just loses the courtesy. */
    (void)!send(s->fd, g->answer_408, g->answer_408_len,
                MSG_DONTWAIT | MSG_NOSIGNAL);
    g->stats.timed_out++;
  }
  else
    g->stats.evicted++;
  /* The FIN follows the answer; SHUT_RD makes libmicrohttpd read the end
   * of the stream and close the connection. */
  shutdown(s->fd, SHUT_WR);
  shutdown(s->fd, SHUT_RD);
  s->expired = true;
}

static void *kb_guard_main(void *arg)
{
  struct kb_guard *g = arg;

  pthread_mutex_lock(&g->lock);
  while(!g->stopping) {
    int64_t now = kb_guard_now();
    int64_t next = now + 60000;
    struct kb_guard_slot *s;
    struct timespec until;

    for(s = g->slots; s; s = s->next) {
      if(s->expired || s->phase == KB_GUARD_BUSY)
        continue;
      if(s->deadline_ms <= now)
        kb_guard_end(g, s, true);
      else if(s->deadline_ms < next)
        next = s->deadline_ms;
    }
    g->sleep_until = next;
    g->stats.scans++;
    until.tv_sec = next / 1000;
    until.tv_nsec = (next % 1000) * 1000000;
    pthread_cond_timedwait(&g->wake, &g->lock, &until);
  }
  pthread_mutex_unlock(&g->lock);
  return NULL;
}

int kb_guard_start(const struct kb_guard_config *config, struct kb_guard **out,
                   char *err, size_t errlen)
{
  struct kb_guard *g = calloc(1, sizeof(*g));
  pthread_condattr_t attr;
  const char *body;
  int n;

  *out = NULL;
  if(!g) {
    snprintf(err, errlen, "out of memory while starting the connection guard");
    return -1;
  }
  g->config = *config;
  if(!g->config.head_timeout_ms)
    g->config.head_timeout_ms = KB_GUARD_HEAD_TIMEOUT_MS;
  if(!g->config.body_timeout_ms)
    g->config.body_timeout_ms = KB_GUARD_BODY_TIMEOUT_MS;
  if(!g->config.max_connections)
    g->config.max_connections = KB_GUARD_MAX_CONNECTIONS;
  if(!g->config.max_per_address ||
     g->config.max_per_address > g->config.max_connections)
    g->config.max_per_address = g->config.max_connections;
  body = "the request did not arrive in time; send it at once\n";
  n = snprintf(g->answer_408, sizeof(g->answer_408),
               "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Length: %zu\r\n\r\n%s",
               strlen(body), body);
  g->answer_408_len = n > 0 ? (size_t)n : 0;
  pthread_mutex_init(&g->lock, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&g->wake, &attr);
  pthread_condattr_destroy(&attr);
  errno = pthread_create(&g->thread, NULL, kb_guard_main, g);
  if(errno) {
    snprintf(err, errlen, "cannot start the connection guard's thread: %s",
             strerror(errno));
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    free(g);
    return -1;
  }
  *out = g;
  return 0;
}

void kb_guard_stop(struct kb_guard *g)
{
  if(!g)
    return;
  pthread_mutex_lock(&g->lock);
  g->stopping = true;
  pthread_cond_signal(&g->wake);
  pthread_mutex_unlock(&g->lock);
  pthread_join(g->thread, NULL);
  /* Slots left by a server that did not close them are freed here. */
  while(g->slots) {
    struct kb_guard_slot *s = g->slots;
    g->slots = s->next;
    free(s);
  }
  pthread_cond_destroy(&g->wake);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

unsigned kb_guard_capacity(const struct kb_guard *g)
{
  return g ? g->config.max_connections : 0;
}

/* The connection from host (NULL: any) that has waited longest for a
 * head, under the lock. */
static struct kb_guard_slot *kb_guard_victim(struct kb_guard *g,
                                             const struct sockaddr *host)
{
  struct kb_guard_slot *s, *best = NULL;
  for(s = g->slots; s; s = s->next)
    if(!s->expired && s->phase == KB_GUARD_HEAD &&
       (!host || kb_guard_same_host(&s->addr, host)) &&
       (!best || s->waiting_ms < best->waiting_ms))
      best = s;
  return best;
}

bool kb_guard_admit(struct kb_guard *g, const struct sockaddr *addr,
                    socklen_t len)
{
  struct kb_guard_slot *s;
  unsigned total = 0, mine = 0;
  bool ok = true;
  (void)len;

  if(!g)
    return true;
  pthread_mutex_lock(&g->lock);
  for(s = g->slots; s; s = s->next)
    if(!s->expired) {
      total++;
      mine += kb_guard_same_host(&s->addr, addr);
    }
  if(mine >= g->config.max_per_address || total >= g->config.max_connections) {
    struct kb_guard_slot *victim =
        kb_guard_victim(g, mine >= g->config.max_per_address ? addr : NULL);
    if(victim)
      kb_guard_end(g, victim, false);
    else {
      g->stats.refused++;
      ok = false;
    }
  }
  pthread_mutex_unlock(&g->lock);
  return ok;
}

/* Wakes the thread, under the lock, when deadline_ms comes before the time
 * it sleeps until; a later deadline is found when it next wakes. */
static void kb_guard_wake(struct kb_guard *g, int64_t deadline_ms)
{
  if(deadline_ms < g->sleep_until || !g->sleep_until)
    pthread_cond_signal(&g->wake);
}

struct kb_guard_slot *kb_guard_open(struct kb_guard *g, int fd,
                                    const struct sockaddr *addr)
{
  struct kb_guard_slot *s;

  if(!g)
    return NULL;
  s = calloc(1, sizeof(*s));
  if(!s)
    return NULL;
  s->guard = g;
  s->fd = fd;
  if(addr) {
    size_t n = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in);
    memcpy(&s->addr, addr, n);
  }
  s->phase = KB_GUARD_HEAD;
  pthread_mutex_lock(&g->lock);
  s->waiting_ms = kb_guard_now();
  s->deadline_ms = s->waiting_ms + g->config.head_timeout_ms;
  s->next = g->slots;
  if(g->slots)
    g->slots->prev = s;
  g->slots = s;
  kb_guard_wake(g, s->deadline_ms);
  pthread_mutex_unlock(&g->lock);
  return s;
}

/* Moves s to phase with a deadline timeout_ms from now (0: none). Returns
 * false when s had already expired. */
static bool kb_guard_move(struct kb_guard_slot *s, enum kb_guard_phase phase,
                          int64_t timeout_ms)
{
  struct kb_guard *g;
  bool ok;

  if(!s)
    return true;
  g = s->guard;
  pthread_mutex_lock(&g->lock);
  ok = !s->expired;
  if(ok) {
    s->phase = phase;
    s->waiting_ms = kb_guard_now();
    s->deadline_ms = s->waiting_ms + timeout_ms;
    if(phase != KB_GUARD_BUSY)
      kb_guard_wake(g, s->deadline_ms);
  }
  pthread_mutex_unlock(&g->lock);
  return ok;
}

bool kb_guard_head_done(struct kb_guard_slot *s)
{
  return kb_guard_move(s, KB_GUARD_BODY,
                       s ? s->guard->config.body_timeout_ms : 0);
}

bool kb_guard_body_done(struct kb_guard_slot *s)
{
  return kb_guard_move(s, KB_GUARD_BUSY, 0);
}

void kb_guard_next(struct kb_guard_slot *s)
{
  if(s)
    kb_guard_move(s, KB_GUARD_HEAD,
                  (int64_t)s->guard->config.idle_ms +
                      s->guard->config.head_timeout_ms);
}

void kb_guard_close(struct kb_guard_slot *s)
{
  struct kb_guard *g;

  if(!s)
    return;
  g = s->guard;
  pthread_mutex_lock(&g->lock);
  if(s->prev)
    s->prev->next = s->next;
  else
    g->slots = s->next;
  if(s->next)
    s->next->prev = s->prev;
  pthread_mutex_unlock(&g->lock);
  free(s);
}

void kb_guard_stats(struct kb_guard *g, struct kb_guard_stats *out)
{
  memset(out, 0, sizeof(*out));
  if(!g)
    return;
  pthread_mutex_lock(&g->lock);
  *out = g->stats;
  pthread_mutex_unlock(&g->lock);
}

void kb_guard_reset_stats(struct kb_guard *g)
{
  if(!g)
    return;
  pthread_mutex_lock(&g->lock);
  memset(&g->stats, 0, sizeof(g->stats));
  pthread_mutex_unlock(&g->lock);
}
