/*
 * verdict.h - why a session ended as it did, in the classes every verdict
 * of kbsim uses (client, run, sweep, JSON, HTML, demo):
 *
 *   clean          no error: every POST answered as it should
 *   server-error   the user saw the error because of the listener's
 *                  behaviour (a SOAP 500 after a forwarded body-less POST,
 *                  a connection the listener broke)
 *   auth-failed    the login was refused
 *   infrastructure the harness could not do its job (nothing listening,
 *                  descriptors exhausted, a timeout of our own): never the
 *                  bug, and never what --expect error wants
 *
 * Pure functions of the results: the rules are the table in verdict.c.
 */
#ifndef CLIENT_VERDICT_H
#define CLIENT_VERDICT_H

#include <stddef.h>

#include "client/client.h"

enum client_class {
  CLIENT_CLASS_CLEAN = 0,
  CLIENT_CLASS_SERVER_ERROR,
  CLIENT_CLASS_AUTH_FAILED,
  CLIENT_CLASS_INFRASTRUCTURE, /* ranks highest: it voids the others */
  CLIENT_CLASS_COUNT
};

/* "clean", "server-error", "auth-failed", "infrastructure". */
const char *client_class_name(enum client_class c);

/* The class of one POST's result. */
enum client_class client_result_class(const struct client_post_result *r);

/* The class of a session: its highest-ranking POST (infrastructure over
 * auth-failed over server-error over clean); clean for none. */
enum client_class client_session_class(const struct client_post_result *r,
                                       size_t n);

#endif /* CLIENT_VERDICT_H */
