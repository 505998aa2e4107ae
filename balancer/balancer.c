/*
 * balancer.c - see balancer.h.
 *
 * One thread runs a poll() loop over a wake-up pipe, the listening socket
 * and two non-blocking sockets per pair (client, member). Each direction
 * has its own buffer; a full buffer stops reading its source (the peer
 * feels TCP back-pressure instead of the balancer growing), and a source's
 * FIN becomes shutdown(SHUT_WR) on the other side once the buffer is
 * flushed. A pair ends when both directions have ended, or at the first
 * error on either side; both sockets are then closed together. A side that
 * reset its connection (RST) gets the other side reset too, as a TCP
 * balancer passes a reset on, and the trace notes who reset it.
 */
#include "balancer/balancer.h"
#include "common/kb_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BALANCER_DEFAULT_HOST "127.0.0.1"
#define BALANCER_DEFAULT_MAX 128u
#define BALANCER_MAX_CAP 4096u
#define BALANCER_DEFAULT_BUFFER ((size_t)64 * 1024)
/* How long accepting pauses when the process is out of descriptors. */
#define BALANCER_ACCEPT_BACKOFF_MS 100

enum balancer__state {
  BALANCER__CONNECTING = 0, /* non-blocking connect to the member pending */
  BALANCER__SPLICING        /* moving bytes both ways */
};

/* What one service pass decided for a pair. */
enum balancer__verdict { BALANCER__ALIVE = 0, BALANCER__DONE };

/* How a pair ended, when not both FINs passed on. */
enum balancer__end {
  BALANCER__END_CLOSED = 0,   /* FINs, or a socket error that is no reset */
  BALANCER__END_CLIENT_RESET, /* the client sent RST */
  BALANCER__END_MEMBER_RESET, /* the member sent RST */
  BALANCER__END_STOPPED,      /* still open when the balancer stopped */
  BALANCER__END_UNREACHABLE   /* the member could not be connected to */
};

/* One direction of a pair: bytes read from its source and not yet written
 * to its destination, at buf[off .. off + len). */
struct balancer__dir {
  char *buf;
  size_t off;
  size_t len;
  bool eof;  /* the source sent FIN: nothing more will come */
  bool shut; /* the destination was told so (shutdown SHUT_WR) */
};

struct balancer__pair {
  int cfd; /* the client's socket */
  int mfd; /* the member's socket */
  size_t member;
  uint64_t k; /* accepted k-th: names it in the trace */
  enum balancer__state state;
  struct balancer__dir up;   /* client -> member */
  struct balancer__dir down; /* member -> client */
  enum balancer__end end;
  int connect_errno; /* BALANCER__END_UNREACHABLE: why */
  bool dead;
};

struct balancer {
  int lfd;
  int wake[2];
  uint16_t port;
  struct sockaddr_storage addrs[BALANCER_MAX_MEMBERS];
  socklen_t addrlens[BALANCER_MAX_MEMBERS];
  size_t nmembers;
  enum balancer_mode mode;
  struct kb_rng rng; /* BALANCER_SEEDED: the draws */
  unsigned max;
  size_t bufsize;
  struct kb_trace trace;
  /* Owned by the loop thread only. */
  struct balancer__pair **pairs;
  size_t npairs;
  struct pollfd *pfds;
  bool accept_paused;
  pthread_t thread;
  bool thread_started;
  /* Guards stats, which other threads read. */
  pthread_mutex_t lock;
  bool lock_ready;
  struct balancer_stats stats;
};

const char *balancer_mode_name(enum balancer_mode mode)
{
  return mode == BALANCER_SEEDED ? "seeded" : "round-robin";
}

/* Makes fd non-blocking and close-on-exec. Returns 0 or -1 (errno set). */
static int balancer__fd_setup(int fd)
{
  int fl = fcntl(fd, F_GETFL);

  if(fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -1;
  fl = fcntl(fd, F_GETFD);
  if(fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
    return -1;
  return 0;
}

/* The member for the k-th accepted connection (from 1). */
static size_t balancer__pick(struct balancer *b, uint64_t k)
{
  if(b->mode == BALANCER_SEEDED) {
    uint8_t draw[4];
    char label[64];

    snprintf(label, sizeof(label), "balancer/conn %llu", (unsigned long long)k);
    kb_rng_fill(&b->rng, label, draw, sizeof(draw));
    return ((uint32_t)draw[0] | (uint32_t)draw[1] << 8 |
            (uint32_t)draw[2] << 16 | (uint32_t)draw[3] << 24) %
           b->nmembers;
  }
  return (size_t)((k - 1) % b->nmembers);
}

/* Traces one event of pair p: bytes the client sent (SEND) or got
 * (RECV), or its OPEN / CLOSE. */
static void balancer__trace(const struct balancer *b,
                            const struct balancer__pair *p,
                            enum kb_trace_kind kind, const char *data,
                            size_t len)
{
  struct kb_trace_event ev;
  char name[48];

  if(!b->trace.emit)
    return;
  snprintf(name, sizeof(name), "balancer conn %llu", (unsigned long long)p->k);
  memset(&ev, 0, sizeof(ev));
  ev.kind = kind;
  ev.hop = KB_HOP_CLIENT_PROXY;
  ev.side = KB_SIDE_CLIENT; /* it sees the client's bytes as they came */
  ev.origin = "balancer";
  ev.conn = p->k;
  ev.conn_name = name;
  ev.data = (const uint8_t *)data;
  ev.len = len;
  kb_trace_emit(&b->trace, &ev);
}

/* Frees a pair's memory; its sockets must already be closed. Accepts
 * NULL. */
static void balancer__pair_free(struct balancer__pair *p)
{
  if(!p)
    return;
  free(p->up.buf);
  free(p->down.buf);
  free(p);
}

/* Makes the close of fd send RST instead of FIN. */
static void balancer__reset_on_close(int fd)
{
  struct linger lg = {1, 0};

  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* What the trace says about a pair that did not end with both FINs. */
static const struct {
  enum kb_note note;
  const char *text;
} balancer__ends[] = {
    [BALANCER__END_CLOSED] = {KB_NOTE_NONE, NULL},
    [BALANCER__END_CLIENT_RESET] = {KB_NOTE_CLIENT_RESET,
                                    "the client reset it; reset passed on "
                                    "to the member"},
    [BALANCER__END_MEMBER_RESET] = {KB_NOTE_MEMBER_RESET,
                                    "the member reset it; reset passed on "
                                    "to the client"},
    [BALANCER__END_STOPPED] = {KB_NOTE_BALANCER_STOPPED,
                               "still open when serve stopped: closed by "
                               "the balancer"},
    [BALANCER__END_UNREACHABLE] = {KB_NOTE_MEMBER_UNREACHABLE,
                                   "could not connect to member"},
};

/* Ends a pair: counts it closed first, then closes both sockets together,
 * so that whoever sees the close also sees the counters. A reset on one
 * side becomes a reset of the other. */
static void balancer__pair_close(struct balancer *b, struct balancer__pair *p)
{
  pthread_mutex_lock(&b->lock);
  b->stats.open--;
  b->stats.member_open[p->member]--;
  pthread_mutex_unlock(&b->lock);
  if(p->end == BALANCER__END_CLIENT_RESET)
    balancer__reset_on_close(p->mfd);
  else if(p->end == BALANCER__END_MEMBER_RESET)
    balancer__reset_on_close(p->cfd);
  if(p->end == BALANCER__END_UNREACHABLE && b->trace.emit)
    kb_trace_note(&b->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, "balancer",
                  p->k, balancer__ends[p->end].note,
                  "balancer conn %llu: %s %zu of the array (%s); closed "
                  "the client's connection",
                  (unsigned long long)p->k, balancer__ends[p->end].text,
                  p->member + 1, strerror(p->connect_errno));
  else if(balancer__ends[p->end].text && b->trace.emit)
    kb_trace_note(&b->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, "balancer",
                  p->k, balancer__ends[p->end].note, "balancer conn %llu: %s",
                  (unsigned long long)p->k, balancer__ends[p->end].text);
  close(p->cfd);
  close(p->mfd);
  p->cfd = p->mfd = -1;
  p->dead = true;
  balancer__trace(b, p, KB_TRACE_CLOSE, NULL, 0);
}

/* At the cap: a client gets a fast 503 and the close, never a wait in
 * the kernel's backlog. */
static void balancer__refuse(struct balancer *b, int cfd)
{
  static const char answer[] =
      "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
      "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 55\r\n"
      "\r\nthe array holds as many connections as it can; retry\n\n";
  /* Counted first: a client that reads the answer may read the stats. */
  pthread_mutex_lock(&b->lock);
  b->stats.refused++;
  pthread_mutex_unlock(&b->lock);
  (void)!send(cfd, answer, sizeof(answer) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  shutdown(cfd, SHUT_WR);
  close(cfd);
}

/* Accepts what is waiting, up to the cap, and starts connecting each to
 * its member. A connection the balancer cannot serve (no memory) is
 * closed immediately: the client sees the close. One whose member
 * refuses the connection is traced, opened and closed with the reason. */
static void balancer__accept(struct balancer *b)
{
  for(;;) {
    struct balancer__pair *p = NULL;
    uint64_t k;
    size_t m;
    int one = 1;
    int cfd, mfd = -1;

    cfd = accept(b->lfd, NULL, NULL);
    if(cfd < 0) {
      if(errno == EINTR || errno == ECONNABORTED)
        continue;
      /* Out of descriptors or memory: the listener stays readable, so
       * back off instead of spinning. */
      if(errno != EAGAIN && errno != EWOULDBLOCK)
        b->accept_paused = true;
      return;
    }
    if(b->npairs >= b->max) {
      balancer__refuse(b, cfd);
      continue;
    }
    pthread_mutex_lock(&b->lock);
    k = ++b->stats.accepted;
    pthread_mutex_unlock(&b->lock);
    m = balancer__pick(b, k);

    if(balancer__fd_setup(cfd))
      goto refuse;
    (void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    mfd = socket(b->addrs[m].ss_family,
                 SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if(mfd < 0)
      goto refuse;
    (void)setsockopt(mfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p = calloc(1, sizeof(*p));
    if(!p)
      goto refuse;
    p->up.buf = malloc(b->bufsize);
    p->down.buf = malloc(b->bufsize);
    if(!p->up.buf || !p->down.buf)
      goto refuse;
    p->cfd = cfd;
    p->mfd = mfd;
    p->member = m;
    p->k = k;
    if(!connect(mfd, (struct sockaddr *)&b->addrs[m], b->addrlens[m]))
      p->state = BALANCER__SPLICING;
    else if(errno == EINPROGRESS)
      p->state = BALANCER__CONNECTING;
    else {
      /* Refused at once (a loopback member that is down): the client's
       * connection is in the evidence, with why it closed. */
      p->end = BALANCER__END_UNREACHABLE;
      p->connect_errno = errno;
    }
    pthread_mutex_lock(&b->lock);
    b->stats.open++;
    b->stats.member_connections[m]++;
    b->stats.member_open[m]++;
    b->stats.connect_failed += p->end == BALANCER__END_UNREACHABLE;
    pthread_mutex_unlock(&b->lock);
    b->pairs[b->npairs++] = p;
    balancer__trace(b, p, KB_TRACE_OPEN, NULL, 0);
    if(p->end == BALANCER__END_UNREACHABLE)
      balancer__pair_close(b, p);
    continue;

  refuse:
    pthread_mutex_lock(&b->lock);
    b->stats.connect_failed++;
    b->stats.member_connections[m]++;
    pthread_mutex_unlock(&b->lock);
    balancer__pair_free(p);
    if(mfd >= 0)
      close(mfd);
    close(cfd);
  }
}

/* Notes in p's end that the peer on fd reset its connection, when errno
 * says so (a send after the peer's RST fails with EPIPE). */
static void balancer__note_reset(struct balancer__pair *p, int fd)
{
  if((errno == ECONNRESET || errno == EPIPE) && !p->end)
    p->end =
        fd == p->cfd ? BALANCER__END_CLIENT_RESET : BALANCER__END_MEMBER_RESET;
}

/* Reads what fd has into d's free space. Returns 0 (bytes, nothing yet or
 * FIN recorded in d->eof), or -1 on a socket error (a reset noted in p). */
static int balancer__read(const struct balancer *b, struct balancer__pair *p,
                          int fd, struct balancer__dir *d, size_t size)
{
  ssize_t n;

  if(d->off && d->off + d->len == size) {
    memmove(d->buf, d->buf + d->off, d->len);
    d->off = 0;
  }
  if(d->eof || d->off + d->len == size)
    return 0;
  n = recv(fd, d->buf + d->off + d->len, size - d->off - d->len, 0);
  if(n > 0) {
    /* What the client sent, or what its member answered, as it came. */
    balancer__trace(b, p, d == &p->up ? KB_TRACE_SEND : KB_TRACE_RECV,
                    d->buf + d->off + d->len, (size_t)n);
    d->len += (size_t)n;
  }
  else if(!n) {
    /* The member's FIN before the client's: ISA closed the connection. */
    if(d == &p->down && !p->up.eof && b->trace.emit)
      kb_trace_note(&b->trace, KB_HOP_CLIENT_PROXY, KB_SIDE_CLIENT, "balancer",
                    p->k, KB_NOTE_SERVER_CLOSED_FIRST,
                    "balancer conn %llu: the member closed it first",
                    (unsigned long long)p->k);
    d->eof = true;
  }
  else if(errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    balancer__note_reset(p, fd);
    return -1;
  }
  return 0;
}

/* Writes what d holds to fd, then passes the source's FIN on once d is
 * empty - unless the other direction has already ended (last): then the
 * pair is over and the close that follows carries the FIN, after the
 * counters say so. Counts delivered bytes into *counter under the lock.
 * Returns 0, or -1 on a socket error (peer gone; a reset noted in p). */
static int balancer__flush(struct balancer *b, struct balancer__pair *p, int fd,
                           struct balancer__dir *d, bool last,
                           uint64_t *counter)
{
  if(d->len) {
    ssize_t n = send(fd, d->buf + d->off, d->len, MSG_NOSIGNAL);

    if(n > 0) {
      d->off += (size_t)n;
      d->len -= (size_t)n;
      if(!d->len)
        d->off = 0;
      pthread_mutex_lock(&b->lock);
      *counter += (uint64_t)n;
      pthread_mutex_unlock(&b->lock);
    }
    else if(n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
            errno != EINTR) {
      balancer__note_reset(p, fd);
      return -1;
    }
  }
  if(d->eof && !d->len && !d->shut) {
    /* The peer may already be gone; its close will show on the next
     * read or write, so the result does not matter here. */
    if(!last)
      (void)shutdown(fd, SHUT_WR);
    d->shut = true;
  }
  return 0;
}

/* Moves what can move for one pair after poll(). pc and pm are the pair's
 * entries as polled. Returns BALANCER__DONE when the pair has ended (both
 * directions finished, or an error on either side). */
static enum balancer__verdict balancer__service(struct balancer *b,
                                                struct balancer__pair *p,
                                                const struct pollfd *pc,
                                                const struct pollfd *pm)
{
  if(p->state == BALANCER__CONNECTING) {
    int soerr = 0;
    socklen_t len = sizeof(soerr);

    if(pm->fd < 0 || !pm->revents)
      return BALANCER__ALIVE;
    if(getsockopt(p->mfd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr) {
      p->end = BALANCER__END_UNREACHABLE;
      p->connect_errno = soerr ? soerr : errno;
      pthread_mutex_lock(&b->lock);
      b->stats.connect_failed++;
      pthread_mutex_unlock(&b->lock);
      return BALANCER__DONE;
    }
    p->state = BALANCER__SPLICING;
    return BALANCER__ALIVE;
  }
  if(pc->fd >= 0 && (pc->events & POLLIN) && pc->revents &&
     balancer__read(b, p, p->cfd, &p->up, b->bufsize))
    return BALANCER__DONE;
  if(pm->fd >= 0 && (pm->events & POLLIN) && pm->revents &&
     balancer__read(b, p, p->mfd, &p->down, b->bufsize))
    return BALANCER__DONE;
  /* Write whenever there is something to write: a non-blocking send just
   * says EAGAIN when the socket is full. */
  if(balancer__flush(b, p, p->mfd, &p->up, p->down.shut,
                     &b->stats.bytes_to_members) ||
     balancer__flush(b, p, p->cfd, &p->down, p->up.shut,
                     &b->stats.bytes_to_clients))
    return BALANCER__DONE;
  return p->up.shut && p->down.shut ? BALANCER__DONE : BALANCER__ALIVE;
}

/* Sets the poll entries for one pair: read a side while its buffer has
 * room and it has not sent FIN, write it while something waits for it. A
 * side with nothing to wait for is left out (fd -1), so a hang-up there
 * does not wake the loop in vain. Both sides are never left out of a live
 * pair: a client not read has sent FIN or filled the buffer up, which the
 * member is then polled to take; once both FINs are passed on the pair has
 * ended. */
static void balancer__poll_entries(const struct balancer *b,
                                   const struct balancer__pair *p,
                                   struct pollfd *pc, struct pollfd *pm)
{
  short ce = 0, me = 0;

  pc->revents = pm->revents = 0;
  if(p->state == BALANCER__CONNECTING) {
    pc->fd = -1;
    pc->events = 0;
    pm->fd = p->mfd;
    pm->events = POLLOUT;
    return;
  }
  if(!p->up.eof && p->up.len < b->bufsize)
    ce |= POLLIN;
  if(p->down.len)
    ce |= POLLOUT;
  if(!p->down.eof && p->down.len < b->bufsize)
    me |= POLLIN;
  if(p->up.len)
    me |= POLLOUT;
  pc->fd = ce ? p->cfd : -1;
  pc->events = ce;
  pm->fd = me ? p->mfd : -1;
  pm->events = me;
}

/* The loop thread: poll, accept, service, drop ended pairs; returns when
 * balancer_stop writes to the wake-up pipe. */
static void *balancer__run(void *arg)
{
  struct balancer *b = arg;

  for(;;) {
    size_t polled = b->npairs;
    size_t i, kept;
    int rc;

    b->pfds[0].fd = b->wake[0];
    b->pfds[0].events = POLLIN;
    b->pfds[0].revents = 0;
    b->pfds[1].fd = !b->accept_paused ? b->lfd : -1;
    b->pfds[1].events = POLLIN;
    b->pfds[1].revents = 0;
    for(i = 0; i < polled; i++)
      balancer__poll_entries(b, b->pairs[i], &b->pfds[2 + 2 * i],
                             &b->pfds[3 + 2 * i]);
    rc = poll(b->pfds, (nfds_t)(2 + 2 * polled),
              b->accept_paused ? BALANCER_ACCEPT_BACKOFF_MS : -1);
    if(rc < 0 && errno != EINTR)
      break;
    if(rc < 0)
      continue;
    if(b->pfds[0].revents)
      break;
    b->accept_paused = false;
    if(b->pfds[1].revents)
      balancer__accept(b);
    for(i = 0; i < polled; i++) {
      struct balancer__pair *p = b->pairs[i];

      if(balancer__service(b, p, &b->pfds[2 + 2 * i], &b->pfds[3 + 2 * i]) ==
         BALANCER__DONE)
        balancer__pair_close(b, p);
    }
    /* Drop ended pairs, keeping the order of the others (those accepted
     * during this pass included). */
    for(i = kept = 0; i < b->npairs; i++) {
      if(b->pairs[i]->dead)
        balancer__pair_free(b->pairs[i]);
      else
        b->pairs[kept++] = b->pairs[i];
    }
    b->npairs = kept;
  }
  return NULL;
}

int balancer_start(const struct balancer_config *config, struct balancer **out,
                   char *err, size_t errlen)
{
  struct balancer *b = NULL;
  const char *host =
      config->bind_host ? config->bind_host : BALANCER_DEFAULT_HOST;
  struct sockaddr_storage ss;
  socklen_t sslen = sizeof(ss);
  char why[256], where[80];
  size_t i;
  int rc;

  *out = NULL;
  if(!config->nmembers || config->nmembers > BALANCER_MAX_MEMBERS) {
    snprintf(err, errlen, "balancer: needs 1 to %d members, got %zu",
             BALANCER_MAX_MEMBERS, config->nmembers);
    return -1;
  }
  b = calloc(1, sizeof(*b));
  if(!b) {
    snprintf(err, errlen, "balancer: out of memory");
    return -1;
  }
  b->lfd = b->wake[0] = b->wake[1] = -1;
  if(pthread_mutex_init(&b->lock, NULL)) {
    snprintf(err, errlen, "balancer: cannot create a mutex");
    goto error;
  }
  b->lock_ready = true;
  b->nmembers = config->nmembers;
  b->stats.nmembers = config->nmembers;
  b->mode = config->mode;
  b->trace = config->trace;
  b->rng = config->rng;
  b->max =
      config->max_connections ? config->max_connections : BALANCER_DEFAULT_MAX;
  if(b->max > BALANCER_MAX_CAP)
    b->max = BALANCER_MAX_CAP;
  b->bufsize =
      config->buffer_size ? config->buffer_size : BALANCER_DEFAULT_BUFFER;
  for(i = 0; i < b->nmembers; i++) {
    const char *mhost = config->members[i].host ? config->members[i].host
                                                : BALANCER_DEFAULT_HOST;

    if(kb_net_resolve(mhost, config->members[i].port, false, &b->addrs[i],
                      &b->addrlens[i], why, sizeof(why))) {
      kb_net_where(mhost, config->members[i].port, where, sizeof(where));
      snprintf(err, errlen, "balancer: member %zu at %s: %s", i + 1, where,
               why);
      goto error;
    }
  }
  b->pairs = calloc(b->max, sizeof(*b->pairs));
  b->pfds = calloc(2 + 2 * (size_t)b->max, sizeof(*b->pfds));
  if(!b->pairs || !b->pfds) {
    snprintf(err, errlen, "balancer: out of memory for %u connections", b->max);
    goto error;
  }
  if(pipe(b->wake) || balancer__fd_setup(b->wake[0]) ||
     balancer__fd_setup(b->wake[1])) {
    snprintf(err, errlen, "balancer: pipe(): %s", strerror(errno));
    goto error;
  }
  b->lfd = kb_net_listen("balancer", host, config->port, KB_NET_NONBLOCK, err,
                         errlen);
  if(b->lfd < 0)
    goto error;
  if(getsockname(b->lfd, (struct sockaddr *)&ss, &sslen)) {
    snprintf(err, errlen, "balancer: getsockname(): %s", strerror(errno));
    goto error;
  }
  b->port = kb_sockaddr_port((struct sockaddr *)&ss);
  rc = pthread_create(&b->thread, NULL, balancer__run, b);
  if(rc) {
    snprintf(err, errlen, "balancer: cannot start its thread: %s",
             strerror(rc));
    goto error;
  }
  kb_thread_name(b->thread, "kb-balancer");
  b->thread_started = true;
  *out = b;
  return 0;

error:
  balancer_stop(b);
  return -1;
}

uint16_t balancer_port(const struct balancer *b)
{
  return b->port;
}

void balancer_stats(const struct balancer *b, struct balancer_stats *stats)
{
  pthread_mutex_lock((pthread_mutex_t *)&b->lock);
  *stats = b->stats;
  pthread_mutex_unlock((pthread_mutex_t *)&b->lock);
}

void balancer_stop(struct balancer *b)
{
  size_t i;

  if(!b)
    return;
  if(b->thread_started) {
    char c = 1;

    /* The pipe is empty (nobody else writes it), so this cannot block. */
    while(write(b->wake[1], &c, 1) < 0 && errno == EINTR)
      ;
    pthread_join(b->thread, NULL);
  }
  for(i = 0; b->pairs && i < b->npairs; i++) {
    b->pairs[i]->end = BALANCER__END_STOPPED;
    balancer__pair_close(b, b->pairs[i]);
    balancer__pair_free(b->pairs[i]);
  }
  if(b->lfd >= 0)
    close(b->lfd);
  if(b->wake[0] >= 0)
    close(b->wake[0]);
  if(b->wake[1] >= 0)
    close(b->wake[1]);
  free(b->pairs);
  free(b->pfds);
  if(b->lock_ready)
    pthread_mutex_destroy(&b->lock);
  free(b);
}
