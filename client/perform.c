/*
 * perform.c - how a client's transfer waits: in curl_easy_perform when the
 * client has a thread of its own (`kbsim client`, tests that step a client
 * by hand), or, on a fiber of common/kb_fiber.h, in a multi handle whose
 * sockets and timer the fiber's worker watches, yielding meanwhile.
 */
#include "client_int.h"

#include "common/kb_fiber.h"

/* The connections curl_easy_perform's own multi handle keeps: libcurl's
 * default CURLOPT_MAXCONNECTS, which it copies to that handle. */
#define CLIENT_MAXCONNECTS 5L

/* CURLMOPT_SOCKETFUNCTION: watches s on the fiber for what libcurl wants,
 * tagged with the multi handle it belongs to. */
static int client_multi_socket(CURL *easy, curl_socket_t s, int what,
                               void *userp, void *socketp)
{
  struct kb_fiber *f = kb_fiber_self();
  unsigned events = 0;

  (void)easy;
  (void)socketp;
  if(what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= KB_FIBER_IN;
  if(what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= KB_FIBER_OUT;
  return f && kb_fiber_watch(f, userp, s, events) ? -1 : 0;
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
    int mask = 0;
    if(ready[i].events & KB_FIBER_IN)
      mask |= CURL_CSELECT_IN;
    if(ready[i].events & KB_FIBER_OUT)
      mask |= CURL_CSELECT_OUT;
    if(ready[i].events & KB_FIBER_ERR)
      mask |= CURL_CSELECT_ERR;
    rc = curl_multi_socket_action(multi, ready[i].fd, mask, &running);
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

CURLcode client__perform(struct client *c)
{
  CURLcode result = CURLE_OUT_OF_MEMORY;
  bool done = false;

  if(!kb_fiber_self())
    return curl_easy_perform(c->easy);
  if(!c->multi && !(c->multi = client__multi_new()))
    return CURLE_OUT_OF_MEMORY;
  if(curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
    return CURLE_FAILED_INIT;
  while(!done) {
    CURLMsg *msg;
    int left = 0;

    if(client__multi_perform(c->multi) != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    while((msg = curl_multi_info_read(c->multi, &left)))
      if(msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy) {
        result = msg->data.result;
        done = true;
      }
    if(!done)
      client__multi_poll(c->multi, -1);
  }
  curl_multi_remove_handle(c->multi, c->easy);
  return result;
}

void client__easy_cleanup(struct client *c)
{
  if(c->multi)
    curl_multi_cleanup(c->multi);
  c->multi = NULL;
  if(c->easy)
    curl_easy_cleanup(c->easy);
  c->easy = NULL;
}
