/*
 * kb_fiber.h - many tasks written as plain blocking sequences on a few
 * threads: each task a fiber (ucontext) with a guarded stack of its own,
 * each worker thread one epoll loop that resumes a fiber when a descriptor
 * it watches is ready or its timer expires.
 */
#ifndef KB_FIBER_H
#define KB_FIBER_H

#include <stdbool.h>
#include <stddef.h>

/* Events a fiber watches a descriptor for, and finds ready. */
#define KB_FIBER_IN 1u
#define KB_FIBER_OUT 2u
#define KB_FIBER_ERR 4u /* reported only: an error or hang-up */

/* Descriptors one fiber may watch at once (a client tracks at most 8
 * sockets; libcurl may watch a few more while it resolves or closes). */
#define KB_FIBER_WATCHES 16

struct kb_fiber;

/* One descriptor found ready by kb_fiber_take. */
struct kb_fiber_ready {
  void *owner; /* as given to kb_fiber_watch */
  int fd;
  unsigned events; /* KB_FIBER_IN | KB_FIBER_OUT | KB_FIBER_ERR */
};

/* What kb_fiber_run did, for the harness's own figures. */
struct kb_fiber_stats {
  unsigned threads;  /* worker threads it ran the tasks on */
  size_t stack_size; /* bytes of stack reserved per fiber, guard apart */
  size_t stack_peak; /* most bytes of stack one fiber touched (resident) */
};

/* A task: fn(arg, i) for i in 0 .. n-1, each on a fiber of its own. */
typedef void kb_fiber_fn(void *arg, size_t i);

/* Runs n tasks on threads worker threads (0: kb_fiber_threads(n)); task i
 * runs on worker i % threads and never leaves it. All tasks start at
 * once; returns when every one has returned. Each fiber's stack is
 * mmap'd (MAP_NORESERVE, so only the pages it touches cost memory) below
 * a guard page. Fills *stats when not NULL. Returns 0, or -1 with one line
 * in err when a worker, its epoll instance or a stack could not be made
 * (tasks already started still run to their end first). */
int kb_fiber_run(size_t n, kb_fiber_fn *fn, void *arg, unsigned threads,
                 struct kb_fiber_stats *stats, char *err, size_t errlen);

/* Workers for n tasks: one per online core, never more than n. */
unsigned kb_fiber_threads(size_t n);

/* The fiber running on the calling thread, NULL when the caller is not on
 * a fiber (then it should block as it always has). */
struct kb_fiber *kb_fiber_self(void);

/* Watches fd for events (KB_FIBER_IN and/or KB_FIBER_OUT; 0 forgets it)
 * on behalf of owner (borrowed; a tag such as the libcurl multi handle
 * the descriptor belongs to, so that kb_fiber_take hands each owner its
 * own). Returns 0, or -1 when the fiber watches too many descriptors or
 * epoll refused. Only what runs on f's worker thread may call it: f
 * itself, another fiber of that worker or a kb_fiber_worker_timer
 * function. */
int kb_fiber_watch(struct kb_fiber *f, void *owner, int fd, unsigned events);

/* Sets the fiber's timer to expire after ms milliseconds (0: at once), or
 * clears it (ms < 0): the timer of a libcurl multi handle of the fiber's
 * own (client/rpc.c's), one per fiber. */
void kb_fiber_timer(struct kb_fiber *f, long ms);

/* Yields until a watched descriptor is ready, the timer expires, the
 * fiber is woken (kb_fiber_wake) or max_ms passes (max_ms < 0: no limit);
 * returns at once when something is already pending. Only the fiber
 * itself may call it. */
void kb_fiber_wait(struct kb_fiber *f, long max_ms);

/* Makes f's kb_fiber_wait return: at once when f waits, else at its next
 * call. For whatever runs on f's worker thread (another fiber of it, or a
 * kb_fiber_worker_timer function) to hand f something it waits for. */
void kb_fiber_wake(struct kb_fiber *f);

/* A function the worker's loop calls itself, off every fiber. */
typedef void kb_fiber_timer_fn(void *arg);

/* Sets the calling worker's own timer: fn(arg) runs on the worker's loop
 * (kb_fiber_self() is NULL there) once ms milliseconds have passed (0: at
 * its next turn); ms < 0 clears it. One per worker: a call replaces the
 * last. This is the timer of a libcurl multi handle that the fibers of one
 * worker share (client/perform.c). Callable from the worker's fibers and
 * from such a function. Returns 0, or -1 when the caller is not on a
 * worker thread. */
int kb_fiber_worker_timer(long ms, kb_fiber_timer_fn *fn, void *arg);

/* Takes what is pending without waiting: up to max of owner's ready
 * descriptors into ready (returns how many; other owners' stay pending)
 * and whether the timer expired (*timer; the one timer is the fiber's). */
size_t kb_fiber_take(struct kb_fiber *f, const void *owner,
                     struct kb_fiber_ready *ready, size_t max, bool *timer);

#endif
