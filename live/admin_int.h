/*
 * admin_int.h - internal to live/: the admin endpoint's state, which its
 * files share, and the calls between them.
 *
 *   admin.c    start/stop, libmicrohttpd's callbacks, routing a request
 *   guard.c    who may ask (Host, Origin, token, content type) and the
 *              token file
 *   actions.c  what a trainer can do to a member, under the lock
 *   restart.c  POST /reset and POST /scenario: serve restarts its array
 *   sessions.c POST /sessions: Communicator sessions run inside serve
 *   status.c   GET /status: members, balancer, Exchange, scores
 *   stream.c   the console page and its Server-Sent Events (/events)
 *   reply.c    how every answer is sent: headers, JSON, errors
 *
 * libmicrohttpd runs a thread per connection, so every function here may
 * run on several threads at once: the array (members, the components they
 * point to, the URLs, the users) is read and written under lock, since a
 * restart replaces it; stopping is atomic; everything else in struct
 * admin is set before the daemon starts and only read after.
 */
#ifndef ADMIN_INT_H
#define ADMIN_INT_H

#include "live/admin.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct admin__member {
  char *name;
  char *url;
  enum scenario_patch patch;
  bool script;
  struct proxy *proxy;
};

struct admin {
  struct MHD_Daemon *daemon;
  struct kb_guard *guard; /* caps and head deadlines (kb_guard.h) */
  uint16_t port;
  /* Guards the array below, and orders the policy changes pushed to the
   * proxies. */
  pthread_mutex_t lock;
  bool lock_ready;
  /* The array: replaced whole by a restart (restart.c). */
  char *scenario;
  struct admin__member members[ADMIN_MAX_MEMBERS];
  size_t nmembers; /* 0: the array could not be started again */
  struct backend *backend;
  char *backend_url;
  struct balancer *balancer;
  char *balancer_url;
  char *ca_pem; /* NULL without TLS */
  enum balancer_mode balancer_mode;
  char **users; /* "DOMAIN\user:password" specs, wiped when freed */
  size_t nusers;
  /* Sessions running (sessions.c) and a restart waiting for them, under
   * the lock; idle is signalled when the last session ends. */
  unsigned running;
  bool restarting;
  pthread_cond_t idle;
  bool idle_ready;
  unsigned session_ids; /* names the next session's client */
  /* Set before the daemon starts. */
  char *catalogue[ADMIN_MAX_CATALOGUE];
  size_t ncatalogue;
  struct admin_restart restart;
  char token[ADMIN_TOKEN_MAX + 1];
  char cookie[48]; /* the cookie's name, with the port: one per endpoint */
  char bind_host[64];
  char hosts[ADMIN_MAX_HOSTS][256];
  size_t nhosts;
  struct live *live;
  atomic_bool stopping;
};

/* One request's body, gathered by admin.c up to ADMIN_MAX_BODY. */
struct admin__request {
  char body[ADMIN_MAX_BODY + 1];
  size_t len;
  bool too_big;
};

/* What the guard found wrong, or ADMIN__OK. */
enum admin__verdict {
  ADMIN__OK = 0,
  ADMIN__NO_TOKEN,   /* 401 */
  ADMIN__BAD_TOKEN,  /* 401 */
  ADMIN__BAD_HOST,   /* 403 */
  ADMIN__BAD_ORIGIN, /* 403 */
  ADMIN__BAD_TYPE    /* 403 */
};

/* guard.c */
int admin__guard_init(struct admin *a, const struct admin_config *config,
                      const char *bind_host, char *err, size_t errlen);
enum admin__verdict admin__guard(struct admin *a, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 bool *from_query, char *why, size_t whylen);

/* admin.c */
int admin__adopt_array(struct admin *a, const struct admin_array *arr);
void admin__free_array(struct admin *a);
json_t *admin__body(const struct admin__request *req, char *why, size_t whylen);

/* actions.c */
void admin__member_list(const struct admin *a, char *out, size_t len);
long admin__find_member(const struct admin *a, const char *id);
enum MHD_Result admin__act(struct admin *a, struct MHD_Connection *conn,
                           enum admin_action act, const char *id);

/* restart.c */
enum MHD_Result admin__restart(struct admin *a, struct MHD_Connection *conn,
                               const struct admin__request *req, bool reset);

/* sessions.c */
enum MHD_Result admin__sessions(struct admin *a, struct MHD_Connection *conn,
                                const struct admin__request *req);

/* status.c */
json_t *admin__status(struct admin *a);

/* stream.c */
enum MHD_Result admin__page(struct admin *a, struct MHD_Connection *conn,
                            bool from_query);
enum MHD_Result admin__events(struct admin *a, struct MHD_Connection *conn);

/* reply.c */
enum MHD_Result admin__send(struct MHD_Connection *conn, unsigned status,
                            const char *type, const char *text, size_t len,
                            const char *const *extra);
enum MHD_Result admin__reply_with(struct MHD_Connection *conn, unsigned status,
                                  json_t *body, const char *const *extra);
enum MHD_Result admin__reply(struct MHD_Connection *conn, unsigned status,
                             json_t *body, const char *allow);
__attribute__((format(printf, 4, 5))) enum MHD_Result
admin__error(struct MHD_Connection *conn, unsigned status, const char *allow,
             const char *fmt, ...);

#endif /* ADMIN_INT_H */
