/*
 * verdict.c - the outcome classes of verdict.h, as a table.
 */
#include "client/verdict.h"

static const char *const client_class_names[CLIENT_CLASS_COUNT] = {
    [CLIENT_CLASS_CLEAN] = "clean",
    [CLIENT_CLASS_SERVER_ERROR] = "server-error",
    [CLIENT_CLASS_AUTH_FAILED] = "auth-failed",
    [CLIENT_CLASS_INFRASTRUCTURE] = "infrastructure",
};

/* The class of each outcome. A transport error is the listener's doing
 * (it broke the connection) unless the harness itself failed
 * (harness_failed: nothing listening, our timeout, no descriptor). */
static const enum client_class client_outcome_classes[] = {
    [CLIENT_OK] = CLIENT_CLASS_CLEAN,
    [CLIENT_SERVER_ERROR] = CLIENT_CLASS_SERVER_ERROR,
    [CLIENT_AUTH_FAILED] = CLIENT_CLASS_AUTH_FAILED,
    [CLIENT_PROTOCOL_ERROR] = CLIENT_CLASS_SERVER_ERROR,
    [CLIENT_TRANSPORT_ERROR] = CLIENT_CLASS_SERVER_ERROR,
};

const char *client_class_name(enum client_class c)
{
  return (unsigned)c < CLIENT_CLASS_COUNT ? client_class_names[c] : "unknown";
}

enum client_class client_result_class(const struct client_post_result *r)
{
  if(r->harness_failed)
    return CLIENT_CLASS_INFRASTRUCTURE;
  if((unsigned)r->outcome >=
     sizeof(client_outcome_classes) / sizeof(client_outcome_classes[0]))
    return CLIENT_CLASS_INFRASTRUCTURE;
  return client_outcome_classes[r->outcome];
}

enum client_class client_session_class(const struct client_post_result *r,
                                       size_t n)
{
  enum client_class worst = CLIENT_CLASS_CLEAN;
  size_t i;

  for(i = 0; i < n; i++) {
    enum client_class c = client_result_class(&r[i]);
    if(c > worst)
      worst = c;
  }
  return worst;
}
