/*
 * sweep_run.c - one grid point of `kbsim sweep`: its seeds run by workers
 * that take them from a shared counter, each result in its own slot, so
 * the numbers do not depend on --jobs; the progress line on a terminal;
 * SIGINT stops the workers after their current seed.
 *
 * Each worker keeps one topology (sim_runner) and resets it between seeds
 * instead of starting a new one; --fresh starts one per seed, for
 * comparing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/kb_env.h"
#include "sweep.h"

/* Set by SIGINT, read by the workers (take no new seed): a lock-free
 * atomic, safe in a signal handler and between threads. */
static atomic_int kbsim_sweep_stop;

static void kbsim_sweep_on_sigint(int sig)
{
  (void)sig;
  atomic_store(&kbsim_sweep_stop, 1);
}

void kbsim_sweep_catch_sigint(struct sigaction *old)
{
  struct sigaction act;

  atomic_store(&kbsim_sweep_stop, 0);
  memset(&act, 0, sizeof(act));
  act.sa_handler = kbsim_sweep_on_sigint;
  sigemptyset(&act.sa_mask);
  sigaction(SIGINT, &act, old);
}

void kbsim_sweep_release_sigint(const struct sigaction *old)
{
  sigaction(SIGINT, old, NULL);
}

bool kbsim_sweep_interrupted(void)
{
  return atomic_load(&kbsim_sweep_stop) != 0;
}

static int64_t kbsim_monotonic_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Prints the progress line, at most every 100 ms and once at the end;
 * done seeds of sw's are finished. */
static void kbsim_sweep_progress(struct kbsim_sweep *sw, uint64_t done)
{
  int64_t now = kbsim_monotonic_ms();

  pthread_mutex_lock(&sw->print_lock);
  if(now - sw->last_print_ms >= 100 || done == sw->count) {
    double secs = (double)(now - sw->start_ms) / 1000;
    double rate = secs > 0 ? (double)done / secs : 0;
    fprintf(stderr,
            "\rsweep: %" PRIu64 "/%" PRIu64 " seeds (%3u%%), %.0f/s, "
            "ETA %.0f s   ",
            done, sw->count, (unsigned)(done * 100 / sw->count), rate,
            rate > 0 ? (double)(sw->count - done) / rate : 0.0);
    if(done == sw->count)
      fputs("\n", stderr);
    fflush(stderr);
    sw->last_print_ms = now;
  }
  pthread_mutex_unlock(&sw->print_lock);
}

/* Worker: takes the next seed until none is left. Each result goes to its
 * own slot, so the totals do not depend on which worker ran what. */
static void *kbsim_sweep_worker(void *arg)
{
  struct kbsim_sweep *sw = arg;
  struct scenario sc = *sw->sc;
  struct sim_runner *runner =
      &sw->runners[atomic_fetch_add(&sw->next_runner, 1)];
  uint64_t i;

  while(!kbsim_sweep_interrupted() &&
        (i = atomic_fetch_add(&sw->next, 1)) < sw->count) {
    struct kbsim_seed_result *r = &sw->results[i];
    struct sim_outcome o;
    struct kb_trace none = {0};
    uint64_t done;

    sc.seed = sw->first + i;
    if(sim_runner_run(runner, &sc, none, &o, r->error, sizeof(r->error)) == 0) {
      r->ran = true;
      r->sessions = (unsigned)o.sessions.count;
      r->with_error = o.sessions.users_with_error;
      r->infrastructure = o.sessions.infrastructure;
      r->empty_posts = o.backend.empty_posts;
      r->ews_posts = o.ews_posts;
      sim_outcome_free(&o);
    }
    done = atomic_fetch_add(&sw->done, 1) + 1;
    if(sw->progress)
      kbsim_sweep_progress(sw, done);
  }
  return NULL;
}

int kbsim_sweep_point(const struct scenario *sc, uint64_t first, uint64_t count,
                      uint64_t jobs, struct sim_runner *runners,
                      struct kbsim_sweep *sw)
{
  pthread_t threads[KBSIM_MAX_JOBS];
  unsigned started = 0;
  uint64_t i;

  memset(sw, 0, sizeof(*sw));
  sw->sc = sc;
  sw->runners = runners;
  sw->first = first;
  sw->count = count;
  sw->results = calloc(count, sizeof(*sw->results));
  if(!sw->results)
    return -1;
  atomic_init(&sw->next_runner, 0);
  atomic_init(&sw->next, 0);
  atomic_init(&sw->done, 0);
  sw->progress = isatty(2);
  sw->start_ms = kbsim_monotonic_ms();
  pthread_mutex_init(&sw->print_lock, NULL);
  for(i = 0; i < jobs; i++) {
    if(pthread_create(&threads[i], NULL, kbsim_sweep_worker, sw))
      break;
    kb_thread_name(threads[i], "kb-sweep");
    started++;
  }
  if(!started)
    kbsim_sweep_worker(sw);
  for(i = 0; i < started; i++)
    pthread_join(threads[i], NULL);
  pthread_mutex_destroy(&sw->print_lock);
  if(sw->progress && kbsim_sweep_interrupted())
    fputs("\n", stderr);
  return 0;
}
