/*
 * perform.c - how a client's transfer waits: in curl_easy_perform when the
 * client has a thread of its own (`kbsim client`, tests that step a client
 * by hand), or, on a fiber of common/kb_fiber.h, in the multi handle its
 * worker's clients share, whose sockets each client's fiber watches,
 * yielding meanwhile; and the fiber's own multi handles (rpc.c's).
 */
#include "client_int.h"

#include "common/kb_fiber.h"

#include <stdlib.h>

/* The connections curl_easy_perform's own multi handle keeps: libcurl's
 * default CURLOPT_MAXCONNECTS, which it copies to that handle. */
#define CLIENT_MAXCONNECTS 5L

/* What kb_fiber saw on a socket, as curl_multi_socket_action's mask. */
static int client_cselect(unsigned events)
{
  int mask = 0;

  if(events & KB_FIBER_IN)
    mask |= CURL_CSELECT_IN;
  if(events & KB_FIBER_OUT)
    mask |= CURL_CSELECT_OUT;
  if(events & KB_FIBER_ERR)
    mask |= CURL_CSELECT_ERR;
  return mask;
}

/* What libcurl's CURL_POLL_* asks of a socket, as kb_fiber's events. */
static unsigned client_poll_events(int what)
{
  unsigned events = 0;

  if(what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= KB_FIBER_IN;
  if(what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= KB_FIBER_OUT;
  return events;
}

/* CURLMOPT_SOCKETFUNCTION: watches s on the fiber for what libcurl wants,
 * tagged with the multi handle it belongs to. */
static int client_multi_socket(CURL *easy, curl_socket_t s, int what,
                               void *userp, void *socketp)
{
  struct kb_fiber *f = kb_fiber_self();

  (void)easy;
  (void)socketp;
  return f && kb_fiber_watch(f, userp, s, client_poll_events(what)) ? -1 : 0;
}

/* CURLMOPT_TIMERFUNCTION: libcurl's one timer is the fiber's. */
static int client_multi_timer(CURLM *multi, long ms, void *userp)
{
  struct kb_fiber *f = kb_fiber_self();

  (void)multi;
  (void)userp;
  if(f)
    kb_fiber_timer(f, ms);
  return 0;
}

CURLM *client__multi_new(void)
{
  CURLM *multi = curl_multi_init();

  if(!multi || !kb_fiber_self())
    return multi;
  if(curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, client_multi_socket) ||
     curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, multi) ||
     curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, client_multi_timer) ||
     curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, CLIENT_MAXCONNECTS)) {
    curl_multi_cleanup(multi);
    return NULL;
  }
  return multi;
}

CURLMcode client__multi_perform(CURLM *multi)
{
  struct kb_fiber *f = kb_fiber_self();
  struct kb_fiber_ready ready[KB_FIBER_WATCHES];
  CURLMcode rc = CURLM_OK;
  int running = 0;
  bool timer = false;
  size_t i, n;

  if(!f)
    return curl_multi_perform(multi, &running);
  n = kb_fiber_take(f, multi, ready, KB_FIBER_WATCHES, &timer);
  for(i = 0; i < n && rc == CURLM_OK; i++) {
    rc = curl_multi_socket_action(multi, ready[i].fd,
                                  client_cselect(ready[i].events), &running);
  }
  if(timer && rc == CURLM_OK)
    rc = curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
  return rc;
}

CURLMcode client__multi_poll(CURLM *multi, int ms)
{
  struct kb_fiber *f = kb_fiber_self();

  if(!f)
    return curl_multi_poll(multi, NULL, 0, ms, NULL);
  kb_fiber_wait(f, ms);
  return CURLM_OK;
}

/* ---- the worker's multi handle ------------------------------------------
 *
 * On a fiber, every client of one worker thread runs its transfers in one
 * multi handle, the worker's: a multi handle costs about 40 KiB (libcurl
 * 7.88 allocates a socket hash of 911 slots, a connection cache, a DNS
 * cache and a closure handle) and two descriptors (its wake-up socket
 * pair), more than the rest of a client. Each client keeps its
 * connections to itself all the same: its easy handle has a share handle
 * of its own holding the connection cache (CURL_LOCK_DATA_CONNECT), which
 * libcurl uses instead of the multi handle's (Curl_multi_add_handle), so
 * no client ever picks up a connection another one authenticated. A
 * client's sockets are watched on its own fiber; libcurl's one timer is the
 * worker's (kb_fiber_worker_timer), and whoever drives the multi handle
 * (a fiber for its ready sockets, the worker for the timer) may finish
 * another client's transfer, whose fiber it then wakes. Fibers never leave
 * their worker, so only that thread touches it. */

struct client__wmulti {
  CURLM *multi;
  size_t users;           /* clients holding it (client__wmulti_get) */
  struct client *running; /* clients with a transfer in it */
};

/* The worker's multi handle; NULL until a client on it needs it, and
 * again once the last one is done with it. */
static _Thread_local struct client__wmulti *client_wmulti;

/* The client an easy handle of the worker's multi handle belongs to. */
static struct client *client_of(CURL *easy)
{
  char *priv = NULL;
  if(!easy || curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK)
    return NULL;
  return (struct client *)(void *)priv;
}

/* Ends c's transfer with result, waking its fiber when another one (or the
 * worker) finished it. */
static void client_wmulti_done(struct client *c, CURLcode result)
{
  c->wm_result = result;
  c->wm_done = true;
  if(c->fiber && c->fiber != kb_fiber_self())
    kb_fiber_wake(c->fiber);
}

/* Hands each finished transfer's result to its client. */
static void client_wmulti_dispatch(struct client__wmulti *wm)
{
  CURLMsg *msg;
  int left = 0;

  while((msg = curl_multi_info_read(wm->multi, &left))) {
    struct client *c = client_of(msg->easy_handle);
    if(msg->msg == CURLMSG_DONE && c && c->easy == msg->easy_handle)
      client_wmulti_done(c, msg->data.result);
  }
}

/* A multi handle error ends every transfer in it: no client waits for
 * ever on a handle that no longer moves. */
static void client_wmulti_fail(struct client__wmulti *wm)
{
  struct client *c;
  for(c = wm->running; c; c = c->wm_next)
    if(!c->wm_done)
      client_wmulti_done(c, CURLE_FAILED_INIT);
}

/* kb_fiber_timer_fn: libcurl's timer expired, on the worker's loop. */
static void client_wmulti_expire(void *arg)
{
  struct client__wmulti *wm = arg;
  int running = 0;

  if(curl_multi_socket_action(wm->multi, CURL_SOCKET_TIMEOUT, 0, &running) !=
     CURLM_OK)
    client_wmulti_fail(wm);
  else
    client_wmulti_dispatch(wm);
}

/* CURLMOPT_TIMERFUNCTION of the worker's multi handle. */
static int client_wmulti_timer(CURLM *multi, long ms, void *userp)
{
  (void)multi;
  return kb_fiber_worker_timer(ms, client_wmulti_expire, userp) ? -1 : 0;
}

/* CURLMOPT_SOCKETFUNCTION of the worker's multi handle: watches s on the
 * fiber of the client whose transfer uses it, whichever fiber (or the
 * worker) libcurl calls this from. */
static int client_wmulti_socket(CURL *easy, curl_socket_t s, int what,
                                void *userp, void *socketp)
{
  struct client *c = client_of(easy);
  struct kb_fiber *f = c && c->fiber ? c->fiber : kb_fiber_self();

  (void)socketp;
  return f && kb_fiber_watch(f, userp, s, client_poll_events(what)) ? -1 : 0;
}

/* The worker's multi handle, made when none is there, with one more user;
 * NULL when out of memory. */
static struct client__wmulti *client_wmulti_get(void)
{
  struct client__wmulti *wm = client_wmulti;

  if(wm) {
    wm->users++;
    return wm;
  }
  wm = calloc(1, sizeof(*wm));
  if(!wm || !(wm->multi = curl_multi_init()) ||
     curl_multi_setopt(wm->multi, CURLMOPT_SOCKETFUNCTION,
                       client_wmulti_socket) ||
     curl_multi_setopt(wm->multi, CURLMOPT_SOCKETDATA, wm) ||
     curl_multi_setopt(wm->multi, CURLMOPT_TIMERFUNCTION,
                       client_wmulti_timer) ||
     curl_multi_setopt(wm->multi, CURLMOPT_TIMERDATA, wm) ||
     /* Applied to each client's own cache (Curl_conncache_return_conn). */
     curl_multi_setopt(wm->multi, CURLMOPT_MAXCONNECTS, CLIENT_MAXCONNECTS)) {
    if(wm && wm->multi)
      curl_multi_cleanup(wm->multi);
    free(wm);
    return NULL;
  }
  wm->users = 1;
  client_wmulti = wm;
  return wm;
}

/* One user less; the last one cleans the multi handle up. */
static void client_wmulti_put(struct client__wmulti *wm)
{
  if(!wm || --wm->users)
    return;
  curl_multi_cleanup(wm->multi);
  (void)kb_fiber_worker_timer(-1, NULL, NULL);
  if(client_wmulti == wm)
    client_wmulti = NULL;
  free(wm);
}

/* Gives c, on a fiber, what its transfers there need: the worker's multi
 * handle and a connection cache of its own. */
static int client_wmulti_join(struct client *c)
{
  if(!c->share) {
    c->share = curl_share_init();
    if(!c->share ||
       curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) ||
       curl_easy_setopt(c->easy, CURLOPT_SHARE, c->share))
      return -1;
  }
  if(!c->wm && !(c->wm = client_wmulti_get()))
    return -1;
  c->fiber = kb_fiber_self();
  return curl_easy_setopt(c->easy, CURLOPT_PRIVATE, (void *)c) ? -1 : 0;
}

/* One round of the worker's multi handle from fiber f: what f found ready
 * on it, then every transfer that round finished handed to its client. */
static void client_wmulti_drive(struct client__wmulti *wm, struct kb_fiber *f)
{
  struct kb_fiber_ready ready[KB_FIBER_WATCHES];
  bool timer = false;
  size_t i, n = kb_fiber_take(f, wm, ready, KB_FIBER_WATCHES, &timer);
  CURLMcode rc = CURLM_OK;

  for(i = 0; i < n && rc == CURLM_OK; i++) {
    int running = 0;
    rc = curl_multi_socket_action(wm->multi, ready[i].fd,
                                  client_cselect(ready[i].events), &running);
  }
  if(rc != CURLM_OK)
    client_wmulti_fail(wm);
  else
    client_wmulti_dispatch(wm);
}

/* Takes c off the list of clients with a transfer in wm. */
static void client_wmulti_unlink(struct client__wmulti *wm, struct client *c)
{
  struct client **p = &wm->running;
  while(*p && *p != c)
    p = &(*p)->wm_next;
  if(*p)
    *p = c->wm_next;
  c->wm_next = NULL;
}

CURLcode client__perform(struct client *c)
{
  struct kb_fiber *f = kb_fiber_self();
  struct client__wmulti *wm;

  if(!f)
    return curl_easy_perform(c->easy);
  if(client_wmulti_join(c))
    return CURLE_OUT_OF_MEMORY;
  wm = c->wm;
  c->wm_done = false;
  if(curl_multi_add_handle(wm->multi, c->easy) != CURLM_OK)
    return CURLE_FAILED_INIT;
  c->wm_next = wm->running;
  wm->running = c;
  for(;;) {
    client_wmulti_drive(wm, f);
    if(c->wm_done)
      break;
    kb_fiber_wait(f, -1);
  }
  client_wmulti_unlink(wm, c);
  curl_multi_remove_handle(wm->multi, c->easy);
  return c->wm_result;
}

void client__easy_cleanup(struct client *c)
{
  /* The share handle closes c's connections (client_close_socket traces
   * them); it can only go once no easy handle uses it. */
  if(c->easy)
    curl_easy_cleanup(c->easy);
  c->easy = NULL;
  if(c->share)
    curl_share_cleanup(c->share);
  c->share = NULL;
  client_wmulti_put(c->wm);
  c->wm = NULL;
}
