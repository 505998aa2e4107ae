/*
 * admin_int.h - internal to live/: the admin endpoint's state, which its
 * files share, and the calls between them.
 *
 *   admin.c    start/stop, libmicrohttpd's callbacks, routing a request
 *   guard.c    who may ask (Host, Origin, token, content type) and the
 *              token file
 *   actions.c  what a trainer can do to a member, under the lock
 *   status.c   GET /status: members, balancer, Exchange
 *   stream.c   the console page and its Server-Sent Events (/events)
 *   reply.c    how every answer is sent: headers, JSON, errors
 *
 * libmicrohttpd runs a thread per connection, so every function here may
 * run on several threads at once: members[].patch and members[].script
 * are read and written under lock, stopping is atomic, and everything
 * else in struct admin is set before the daemon starts and only read
 * after.
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
  char *scenario;
  struct admin__member members[ADMIN_MAX_MEMBERS];
  size_t nmembers;
  struct backend *backend;
  char *backend_url;
  struct balancer *balancer;
  char *balancer_url;
  enum balancer_mode balancer_mode;
  /* Guards members[].patch and members[].script, and orders the policy
   * changes pushed to the proxies. */
  pthread_mutex_t lock;
  bool lock_ready;
  char token[ADMIN_TOKEN_MAX + 1];
  char cookie[48]; /* the cookie's name, with the port: one per endpoint */
  char bind_host[64];
  char hosts[ADMIN_MAX_HOSTS][256];
  size_t nhosts;
  struct live *live;
  atomic_bool stopping;
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

/* actions.c */
void admin__member_list(const struct admin *a, char *out, size_t len);
long admin__find_member(const struct admin *a, const char *id);
enum MHD_Result admin__act(struct admin *a, struct MHD_Connection *conn,
                           enum admin_action act, long only);

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
