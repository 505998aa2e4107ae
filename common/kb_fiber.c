/*
 * kb_fiber.c - fibers on worker threads: one epoll loop per worker, a
 * min-heap of fiber timers beside the worker's own timer, stacks mmap'd
 * below a guard page, and the switches annotated for ASan and TSan when
 * built with them.
 */
/* A fiber's switches after its first are _setjmp/_longjmp between stacks
 * (see "switching"); glibc's fortified longjmp refuses to jump to a frame
 * below the stack pointer that is not on a signal stack, which a jump
 * into a fiber's stack may be. */
#undef _FORTIFY_SOURCE
#include "common/kb_fiber.h"
#include "common/kb_env.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KB_FIBER_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define KB_FIBER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(KB_FIBER_ASAN)
#define KB_FIBER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(KB_FIBER_TSAN)
#define KB_FIBER_TSAN 1
#endif
#ifdef KB_FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef KB_FIBER_TSAN
#include <sanitizer/tsan_interface.h>
#endif
/* swapcontext sets the signal mask at every switch, two system calls that
 * were a session's most frequent after poll and epoll (17 switches a
 * Communicator session): a fiber is entered by swapcontext once, then
 * switched by _setjmp/_longjmp, which leave the mask alone (no fiber
 * changes it). TSan cannot follow a longjmp to another fiber's buffer, and
 * ASan's fiber annotations are written for swapcontext: those builds
 * swap contexts every time. */
#if !defined(KB_FIBER_ASAN) && !defined(KB_FIBER_TSAN)
#define KB_FIBER_JMP 1
#endif
/* valgrind's memcheck takes a stack it was not told of for a plain
 * anonymous mapping and reports every access a fiber makes on it; its
 * client requests tell it (a few no-op instructions outside valgrind). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define KB_FIBER_VALGRIND 1
#endif
#endif

/* Stack per fiber. A session's deepest path (libcurl's callbacks, libxml2,
 * NTLM, MIT Kerberos through GSS-API, TLS) touched 24 KiB at most when
 * measured (client/README.md); the reserve leaves ten times that and
 * costs address space only. Sanitizers' redzones make frames larger. */
#if defined(KB_FIBER_ASAN) || defined(KB_FIBER_TSAN)
#define KB_FIBER_STACK (1024u * 1024u)
#else
#define KB_FIBER_STACK (256u * 1024u)
#endif

/* Events one epoll_wait takes at most. */
#define KB_FIBER_EVENTS 256

struct kb_worker;

/* One watched descriptor; epoll's data points at it. */
struct kb_fiber_slot {
  struct kb_fiber *fiber;
  void *owner;
  int fd; /* -1: free */
  unsigned events;
};

struct kb_fiber {
  struct kb_worker *worker;
  ucontext_t ctx;
#ifdef KB_FIBER_JMP
  jmp_buf jb;   /* where the fiber yielded */
  bool started; /* entered once, by swapcontext */
#endif
  void *map; /* guard page + stack */
  size_t map_len;
#ifdef KB_FIBER_VALGRIND
  unsigned vg_stack; /* the stack's id for valgrind */
#endif
  char *stack;
  size_t index;     /* the task's i */
  int64_t timer_at; /* libcurl's timer, monotonic ms; -1: none */
  int64_t wake_at;  /* kb_fiber_wait's limit; -1: none */
  size_t heap_pos;  /* SIZE_MAX: not in the heap */
  bool waiting;     /* yielded in kb_fiber_wait */
  bool queued;      /* in the worker's run queue */
  bool done;
  bool timer_fired;
  bool woken; /* kb_fiber_wake since it last waited */
  struct kb_fiber_slot slots[KB_FIBER_WATCHES];
  struct kb_fiber_ready ready[KB_FIBER_WATCHES];
  size_t nready;
  struct kb_fiber *next; /* run queue */
#ifdef KB_FIBER_ASAN
  void *fake_stack;
#endif
#ifdef KB_FIBER_TSAN
  void *tsan;
#endif
};

struct kb_worker {
  pthread_t thread;
  int epfd;
  ucontext_t main;
#ifdef KB_FIBER_JMP
  jmp_buf jb; /* the loop, while a fiber runs */
#endif
  kb_fiber_fn *fn;
  void *arg;
  size_t first, n, step; /* tasks first, first + step, ... (n of them) */
  size_t live;
  struct kb_fiber **heap;
  size_t nheap;
  struct kb_fiber *runq, *runq_tail;
  /* The worker's own timer (kb_fiber_worker_timer): fn(arg) at timer_at,
   * monotonic ms; -1: none. */
  int64_t timer_at;
  kb_fiber_timer_fn *timer_fn;
  void *timer_arg;
  size_t stack_peak;
  char err[160];
#ifdef KB_FIBER_ASAN
  void *fake_stack;
  const void *main_bottom;
  size_t main_size;
#endif
#ifdef KB_FIBER_TSAN
  void *tsan_main;
#endif
};

/* The fiber running on this thread; NULL on a worker's own loop and on any
 * other thread. */
static _Thread_local struct kb_fiber *kb_fiber_current;
/* The worker whose thread this is; NULL on any other thread. */
static _Thread_local struct kb_worker *kb_worker_current;

static int64_t kb_fiber_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the timer heap: fibers keyed by their earliest deadline ------------- */

static int64_t kb_fiber_key(const struct kb_fiber *f)
{
  if(f->timer_at < 0)
    return f->wake_at;
  if(f->wake_at < 0 || f->timer_at < f->wake_at)
    return f->timer_at;
  return f->wake_at;
}

static void kb_heap_swap(struct kb_worker *w, size_t a, size_t b)
{
  struct kb_fiber *t = w->heap[a];
  w->heap[a] = w->heap[b];
  w->heap[b] = t;
  w->heap[a]->heap_pos = a;
  w->heap[b]->heap_pos = b;
}

static void kb_heap_fix(struct kb_worker *w, size_t i)
{
  while(i > 0 &&
        kb_fiber_key(w->heap[(i - 1) / 2]) > kb_fiber_key(w->heap[i])) {
    kb_heap_swap(w, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
  for(;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if(l < w->nheap && kb_fiber_key(w->heap[l]) < kb_fiber_key(w->heap[m]))
      m = l;
    if(r < w->nheap && kb_fiber_key(w->heap[r]) < kb_fiber_key(w->heap[m]))
      m = r;
    if(m == i)
      return;
    kb_heap_swap(w, i, m);
    i = m;
  }
}

/* Puts f where its key says, into or out of the heap. The heap has room
 * for every fiber of the worker (allocated at start), so this can't fail. */
static void kb_heap_update(struct kb_fiber *f)
{
  struct kb_worker *w = f->worker;
  size_t i = f->heap_pos;

  if(kb_fiber_key(f) < 0) {
    if(i == SIZE_MAX)
      return;
    f->heap_pos = SIZE_MAX;
    if(i != --w->nheap) {
      w->heap[i] = w->heap[w->nheap];
      w->heap[i]->heap_pos = i;
      kb_heap_fix(w, i);
    }
    return;
  }
  if(i == SIZE_MAX) {
    i = w->nheap++;
    w->heap[i] = f;
    f->heap_pos = i;
  }
  kb_heap_fix(w, i);
}

/* ---- switching ------------------------------------------------------------
 */

static void kb_fiber_enqueue(struct kb_fiber *f)
{
  struct kb_worker *w = f->worker;
  if(f->queued)
    return;
  f->queued = true;
  f->next = NULL;
  if(w->runq_tail)
    w->runq_tail->next = f;
  else
    w->runq = f;
  w->runq_tail = f;
}

/* From the worker's loop into f, until f yields or ends. */
static void kb_fiber_resume(struct kb_worker *w, struct kb_fiber *f)
{
  kb_fiber_current = f;
#ifdef KB_FIBER_ASAN
  __sanitizer_start_switch_fiber(&w->fake_stack, f->stack, KB_FIBER_STACK);
#endif
#ifdef KB_FIBER_TSAN
  __tsan_switch_to_fiber(f->tsan, 0);
#endif
#ifdef KB_FIBER_JMP
  if(!_setjmp(w->jb)) {
    if(f->started)
      _longjmp(f->jb, 1);
    f->started = true;
    swapcontext(&w->main, &f->ctx);
  }
#else
  swapcontext(&w->main, &f->ctx);
#endif
#ifdef KB_FIBER_ASAN
  __sanitizer_finish_switch_fiber(w->fake_stack, NULL, NULL);
#endif
  kb_fiber_current = NULL;
}

/* From f back to its worker's loop. A fiber that is done passes no fake
 * stack to ASan, which then frees it. */
static void kb_fiber_yield(struct kb_fiber *f)
{
  struct kb_worker *w = f->worker;
#ifdef KB_FIBER_ASAN
  __sanitizer_start_switch_fiber(f->done ? NULL : &f->fake_stack,
                                 w->main_bottom, w->main_size);
#endif
#ifdef KB_FIBER_TSAN
  __tsan_switch_to_fiber(w->tsan_main, 0);
#endif
#ifdef KB_FIBER_JMP
  if(!_setjmp(f->jb))
    _longjmp(w->jb, 1);
#else
  swapcontext(&f->ctx, &w->main);
#endif
#ifdef KB_FIBER_ASAN
  __sanitizer_finish_switch_fiber(f->fake_stack, &w->main_bottom,
                                  &w->main_size);
#endif
}

/* A fiber's first frame: the task, then back to the loop for good. */
static void kb_fiber_entry(void)
{
  struct kb_fiber *f = kb_fiber_current;
#ifdef KB_FIBER_ASAN
  __sanitizer_finish_switch_fiber(NULL, &f->worker->main_bottom,
                                  &f->worker->main_size);
#endif
  f->worker->fn(f->worker->arg, f->index);
  f->done = true;
  kb_fiber_yield(f);
  abort(); /* a finished fiber is never resumed */
}

/* Bytes of f's stack that are resident: the pages it ever touched. */
static size_t kb_fiber_touched(const struct kb_fiber *f)
{
  size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = KB_FIBER_STACK / page;
  unsigned char vec[KB_FIBER_STACK / 4096];
  size_t i, n = 0;

  if(pages > sizeof(vec) || mincore(f->stack, KB_FIBER_STACK, vec))
    return 0;
  for(i = 0; i < pages; i++)
    n += vec[i] & 1;
  return n * page;
}

static void kb_fiber_free(struct kb_fiber *f)
{
  size_t i;
  if(!f)
    return;
  for(i = 0; i < KB_FIBER_WATCHES; i++)
    if(f->slots[i].fd >= 0)
      (void)epoll_ctl(f->worker->epfd, EPOLL_CTL_DEL, f->slots[i].fd, NULL);
  f->timer_at = f->wake_at = -1;
  kb_heap_update(f);
#ifdef KB_FIBER_TSAN
  if(f->tsan)
    __tsan_destroy_fiber(f->tsan);
#endif
  if(f->map) {
#ifdef KB_FIBER_VALGRIND
    if(f->vg_stack)
      VALGRIND_STACK_DEREGISTER(f->vg_stack);
#endif
    munmap(f->map, f->map_len);
  }
  free(f);
}

/* Makes ctx start kb_fiber_entry on the KB_FIBER_STACK bytes at stack.
 * Apart from its caller because getcontext returns twice. Returns 0 or
 * -1. */
static int kb_fiber_context(ucontext_t *ctx, char *stack)
{
  if(getcontext(ctx))
    return -1;
  ctx->uc_stack.ss_sp = stack;
  ctx->uc_stack.ss_size = KB_FIBER_STACK;
  ctx->uc_link = NULL;
  makecontext(ctx, kb_fiber_entry, 0);
  return 0;
}

/* Makes the fiber of task index on w, ready to run. Returns NULL with
 * w->err set when its stack cannot be mapped. */
static struct kb_fiber *kb_fiber_new(struct kb_worker *w, size_t index)
{
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  struct kb_fiber *f = calloc(1, sizeof(*f));
  size_t i;

  if(!f) {
    snprintf(w->err, sizeof(w->err), "out of memory for a session's fiber");
    return NULL;
  }
  f->worker = w;
  f->index = index;
  f->timer_at = f->wake_at = -1;
  f->heap_pos = SIZE_MAX;
  for(i = 0; i < KB_FIBER_WATCHES; i++) {
    f->slots[i].fiber = f;
    f->slots[i].fd = -1;
  }
  f->map_len = KB_FIBER_STACK + page;
  f->map = mmap(NULL, f->map_len, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if(f->map == MAP_FAILED) {
    f->map = NULL;
    snprintf(w->err, sizeof(w->err), "cannot map a session's stack: %s",
             strerror(errno));
    kb_fiber_free(f);
    return NULL;
  }
  f->stack = (char *)f->map + page;
#ifdef KB_FIBER_VALGRIND
  f->vg_stack = VALGRIND_STACK_REGISTER(f->stack, f->stack + KB_FIBER_STACK);
#endif
  if(mprotect(f->map, page, PROT_NONE) || kb_fiber_context(&f->ctx, f->stack)) {
    snprintf(w->err, sizeof(w->err), "cannot guard a session's stack: %s",
             strerror(errno));
    kb_fiber_free(f);
    return NULL;
  }
#ifdef KB_FIBER_TSAN
  f->tsan = __tsan_create_fiber(0);
#endif
  return f;
}

/* ---- the worker's loop ----------------------------------------------------
 */

static void kb_fiber_add_ready(struct kb_fiber *f, void *owner, int fd,
                               unsigned events)
{
  size_t i;
  for(i = 0; i < f->nready; i++)
    if(f->ready[i].fd == fd && f->ready[i].owner == owner) {
      f->ready[i].events |= events;
      return;
    }
  /* One entry per watched descriptor: it can't overflow. */
  if(f->nready < KB_FIBER_WATCHES) {
    f->ready[f->nready].owner = owner;
    f->ready[f->nready].fd = fd;
    f->ready[f->nready].events = events;
    f->nready++;
  }
}

/* Wakes every fiber whose deadline has passed. */
static void kb_fiber_expire(struct kb_worker *w, int64_t now)
{
  while(w->nheap && kb_fiber_key(w->heap[0]) <= now) {
    struct kb_fiber *f = w->heap[0];
    if(f->timer_at >= 0 && f->timer_at <= now) {
      f->timer_at = -1;
      f->timer_fired = true;
    }
    if(f->wake_at >= 0 && f->wake_at <= now)
      f->wake_at = -1;
    kb_heap_update(f);
    if(f->waiting)
      kb_fiber_enqueue(f);
  }
}

/* Runs the worker's fibers until the last one ended. */
static void kb_worker_loop(struct kb_worker *w)
{
  struct epoll_event evs[KB_FIBER_EVENTS];

  while(w->live) {
    int n, i, timeout = -1;

    while(w->runq) {
      struct kb_fiber *f = w->runq;
      w->runq = f->next;
      if(!w->runq)
        w->runq_tail = NULL;
      f->queued = false;
      kb_fiber_resume(w, f);
      if(f->done) {
        size_t touched = kb_fiber_touched(f);
        if(touched > w->stack_peak)
          w->stack_peak = touched;
        kb_fiber_free(f);
        w->live--;
      }
    }
    if(!w->live)
      break;
    if(w->nheap || w->timer_at >= 0) {
      int64_t at = w->nheap ? kb_fiber_key(w->heap[0]) : w->timer_at;
      int64_t wait;
      if(w->timer_at >= 0 && w->timer_at < at)
        at = w->timer_at;
      wait = at - kb_fiber_now();
      timeout = wait < 0 ? 0 : wait > INT_MAX ? INT_MAX : (int)wait;
    }
    n = epoll_wait(w->epfd, evs, KB_FIBER_EVENTS, timeout);
    for(i = 0; i < n; i++) {
      const struct kb_fiber_slot *s = evs[i].data.ptr;
      unsigned events = 0;
      if(evs[i].events & EPOLLIN)
        events |= KB_FIBER_IN;
      if(evs[i].events & EPOLLOUT)
        events |= KB_FIBER_OUT;
      if(evs[i].events & (EPOLLERR | EPOLLHUP))
        events |= KB_FIBER_ERR;
      kb_fiber_add_ready(s->fiber, s->owner, s->fd, events);
      if(s->fiber->waiting)
        kb_fiber_enqueue(s->fiber);
    }
    kb_fiber_expire(w, kb_fiber_now());
    if(w->timer_at >= 0 && w->timer_at <= kb_fiber_now()) {
      w->timer_at = -1;
      w->timer_fn(w->timer_arg); /* may set the timer again */
    }
  }
}

static void *kb_worker_main(void *arg)
{
  struct kb_worker *w = arg;
  size_t i;

#ifdef KB_FIBER_TSAN
  w->tsan_main = __tsan_get_current_fiber();
#endif
  kb_worker_current = w;
  w->heap = calloc(w->n ? w->n : 1, sizeof(*w->heap));
  if(!w->heap) {
    snprintf(w->err, sizeof(w->err), "out of memory for a worker's timers");
    return NULL;
  }
  for(i = 0; i < w->n; i++) {
    struct kb_fiber *f = kb_fiber_new(w, w->first + i * w->step);
    if(!f)
      break;
    w->live++;
    kb_fiber_enqueue(f);
  }
  kb_worker_loop(w);
  kb_worker_current = NULL;
  return NULL;
}

unsigned kb_fiber_threads(size_t n)
{
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if(cores < 1)
    cores = 1;
  if((size_t)cores > n)
    return n ? (unsigned)n : 1;
  return (unsigned)cores;
}

int kb_fiber_run(size_t n, kb_fiber_fn *fn, void *arg, unsigned threads,
                 struct kb_fiber_stats *stats, char *err, size_t errlen)
{
  struct kb_worker *w;
  unsigned t, started = 0;
  int result = 0;

  if(!threads)
    threads = kb_fiber_threads(n);
  if(threads > n && n)
    threads = (unsigned)n;
  w = calloc(threads, sizeof(*w));
  if(!w) {
    snprintf(err, errlen, "out of memory for %u worker threads", threads);
    return -1;
  }
  for(t = 0; t < threads; t++) {
    int rc;
    w[t].fn = fn;
    w[t].arg = arg;
    w[t].first = t;
    w[t].step = threads;
    w[t].n = n > t ? (n - t + threads - 1) / threads : 0;
    w[t].timer_at = -1;
    w[t].epfd = epoll_create1(EPOLL_CLOEXEC);
    if(w[t].epfd < 0) {
      snprintf(err, errlen, "cannot make a worker's epoll instance: %s",
               strerror(errno));
      result = -1;
      break;
    }
    rc = pthread_create(&w[t].thread, NULL, kb_worker_main, &w[t]);
    if(rc) {
      close(w[t].epfd);
      snprintf(err, errlen, "cannot start worker thread %u of %u: %s", t + 1,
               threads, strerror(rc));
      result = -1;
      break;
    }
    kb_thread_name(w[t].thread, "kb-client");
    started++;
  }
  if(stats) {
    memset(stats, 0, sizeof(*stats));
    stats->threads = started;
    stats->stack_size = KB_FIBER_STACK;
  }
  for(t = 0; t < started; t++) {
    pthread_join(w[t].thread, NULL);
    close(w[t].epfd);
    if(w[t].err[0] && !result) {
      snprintf(err, errlen, "%s; use fewer --clients", w[t].err);
      result = -1;
    }
    if(stats && w[t].stack_peak > stats->stack_peak)
      stats->stack_peak = w[t].stack_peak;
    free(w[t].heap);
  }
  free(w);
  return result;
}

/* ---- what a fiber calls ---------------------------------------------------
 */

struct kb_fiber *kb_fiber_self(void)
{
  return kb_fiber_current;
}

int kb_fiber_watch(struct kb_fiber *f, void *owner, int fd, unsigned events)
{
  struct kb_fiber_slot *slot = NULL, *free_slot = NULL;
  struct epoll_event ev;
  size_t i;

  for(i = 0; i < KB_FIBER_WATCHES; i++) {
    if(f->slots[i].fd == fd)
      slot = &f->slots[i];
    else if(f->slots[i].fd < 0 && !free_slot)
      free_slot = &f->slots[i];
  }
  if(!events) {
    if(slot) {
      /* The descriptor may be closed already; epoll then forgot it. */
      (void)epoll_ctl(f->worker->epfd, EPOLL_CTL_DEL, fd, NULL);
      slot->fd = -1;
    }
    for(i = 0; i < f->nready; i++)
      if(f->ready[i].fd == fd) {
        f->ready[i] = f->ready[--f->nready];
        break;
      }
    return 0;
  }
  memset(&ev, 0, sizeof(ev));
  ev.events = (events & KB_FIBER_IN ? EPOLLIN : 0u) |
              (events & KB_FIBER_OUT ? EPOLLOUT : 0u);
  if(slot) {
    ev.data.ptr = slot;
    slot->owner = owner;
    slot->events = events;
    /* A descriptor closed and its number reused: epoll forgot the old. */
    if(!epoll_ctl(f->worker->epfd, EPOLL_CTL_MOD, fd, &ev) ||
       (errno == ENOENT && !epoll_ctl(f->worker->epfd, EPOLL_CTL_ADD, fd, &ev)))
      return 0;
    return -1;
  }
  if(!free_slot)
    return -1;
  ev.data.ptr = free_slot;
  if(epoll_ctl(f->worker->epfd, EPOLL_CTL_ADD, fd, &ev) &&
     (errno != EEXIST || epoll_ctl(f->worker->epfd, EPOLL_CTL_MOD, fd, &ev)))
    return -1;
  free_slot->fd = fd;
  free_slot->owner = owner;
  free_slot->events = events;
  return 0;
}

void kb_fiber_timer(struct kb_fiber *f, long ms)
{
  f->timer_at = ms < 0 ? -1 : kb_fiber_now() + ms;
  kb_heap_update(f);
}

void kb_fiber_wait(struct kb_fiber *f, long max_ms)
{
  int64_t now = kb_fiber_now();

  if(f->woken || f->nready || f->timer_fired ||
     (f->timer_at >= 0 && f->timer_at <= now)) {
    f->woken = false;
    return;
  }
  f->wake_at = max_ms < 0 ? -1 : now + max_ms;
  kb_heap_update(f);
  f->waiting = true;
  kb_fiber_yield(f);
  f->waiting = false;
  f->woken = false;
  f->wake_at = -1;
  kb_heap_update(f);
}

void kb_fiber_wake(struct kb_fiber *f)
{
  f->woken = true;
  if(f->waiting)
    kb_fiber_enqueue(f);
}

int kb_fiber_worker_timer(long ms, kb_fiber_timer_fn *fn, void *arg)
{
  struct kb_worker *w = kb_worker_current;

  if(!w)
    return -1;
  w->timer_at = ms < 0 ? -1 : kb_fiber_now() + ms;
  w->timer_fn = fn;
  w->timer_arg = arg;
  return 0;
}

size_t kb_fiber_take(struct kb_fiber *f, const void *owner,
                     struct kb_fiber_ready *ready, size_t max, bool *timer)
{
  size_t i, n = 0, kept = 0;

  if(f->timer_at >= 0 && f->timer_at <= kb_fiber_now()) {
    f->timer_at = -1;
    f->timer_fired = true;
    kb_heap_update(f);
  }
  *timer = f->timer_fired;
  f->timer_fired = false;
  for(i = 0; i < f->nready; i++) {
    if(f->ready[i].owner == owner && n < max)
      ready[n++] = f->ready[i];
    else
      f->ready[kept++] = f->ready[i];
  }
  f->nready = kept;
  return n;
}
