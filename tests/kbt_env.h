/*
 * kbt_env.h - the one environment starter of the suites that drive the
 * real listener (proxy.h) and the real Exchange stand-in (backend.h) on
 * loopback: the case's users, the fixed clock and random source of kbt.h,
 * and one trace recorder every component writes into. What a suite varies
 * (policy, authentication, limits, Exchange's own NTLM, the upstream) it
 * sets in the options and the two configurations.
 */
#ifndef TESTS_KBT_ENV_H
#define TESTS_KBT_ENV_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "common/kb_users.h"
#include "kbt.h"
#include "proxy/proxy.h"

/* The case's two accounts, in every environment. */
#define KBT_ALICE_PASSWORD "Passw0rd!"
#define KBT_BOB_PASSWORD "Hunter2?"

/* What the listener forwards to. */
enum kbt_upstream {
  KBT_UP_EXCHANGE = 0, /* the real Exchange, started from opts.exchange */
  KBT_UP_RECORDER,     /* a small server recording the last request whole
                          and answering 200 (4096 bytes on /big) */
  KBT_UP_URL           /* opts.url: another server, or a port nobody serves */
};

/* The recording upstream (KBT_UP_RECORDER); read its fields under lock. */
struct kbt_recorder {
  struct MHD_Daemon *d;
  uint16_t port;
  pthread_mutex_t lock;
  unsigned connections;
  unsigned requests;
  char method[16];
  char uri[512];
  char headers[8192]; /* "Name: value\n" per header, as it arrived */
  char body[8192];
  size_t body_len; /* 0 as well when the body did not fit */
};

struct kbt_env_opts {
  enum kbt_upstream upstream;
  const char *url; /* KBT_UP_URL: the upstream's base URL */
  /* The configurations to start from, or NULL for all defaults. What the
   * caller left unset is filled in: the clock (kbt_now), the random source
   * (kbt_fill), the trace, the users and the upstream's URL. */
  struct backend_config *exchange;
  struct proxy_config *listener;
  bool no_listener; /* Exchange alone: e->url is Exchange's */
  /* More accounts than alice and bob: "DOMAIN\\user:password" specs,
   * NULL-terminated; NULL for none. */
  const char *const *users;
  bool keep_bytes;        /* the trace records SEND and RECV too */
  bool exchange_untraced; /* only the listener writes into the trace */
  const char *debug;      /* variable that prints the trace (kbt.h) */
};

struct kbt_env {
  struct kb_users *users;  /* FABRIKAM\alice, FABRIKAM\bob, opts.users */
  struct backend *be;      /* NULL unless the upstream is Exchange */
  struct kbt_recorder rec; /* KBT_UP_RECORDER */
  bool has_rec;
  struct proxy *px; /* NULL with opts.no_listener */
  struct kbt_trace trace;
  char backend_url[128]; /* what the listener forwards to */
  char url[128];         /* http://127.0.0.1:PORT of the listener */
};

/* Starts the upstream and, unless o->no_listener, the listener in front of
 * it (o NULL: Exchange and the listener with their defaults). Fails the
 * running test when anything does not start. The environment is the
 * running one until kbt_env_stop (see kbt_env_teardown). */
void kbt_env_start(struct kbt_env *e, const struct kbt_env_opts *o);

/* Starts one more listener from pc (zeroed but for what it varies) in
 * front of e's upstream, with e's users, clock, random source and trace;
 * the caller stops it with proxy_stop before kbt_env_stop. */
struct proxy *kbt_env_listener(struct kbt_env *e, struct proxy_config *pc);

/* Stops every server; the trace and users stay readable until
 * kbt_env_stop. */
void kbt_env_stop_servers(struct kbt_env *e);

/* Stops and frees what kbt_env_start started. */
void kbt_env_stop(struct kbt_env *e);

/* A checked fixture's teardown: stops the environment a failed test left
 * running. With CK_FORK=no (the sanitizer stages) a failed assertion leaves
 * the test at once, and the servers' threads would go on writing into a
 * dead test's trace; tests keep their environment in static storage for
 * the same reason. */
void kbt_env_teardown(void);

/* How many requests the recording upstream has answered. */
unsigned kbt_recorder_requests(struct kbt_recorder *rec);

#endif /* TESTS_KBT_ENV_H */
