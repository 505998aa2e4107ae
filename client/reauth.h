/*
 * reauth.h - Communicator's re-authentication of one POST as a pure
 * function. Every POST starts with an NTLM type 1 and Content-Length: 0,
 * the body held back; what comes back decides the next step. No libcurl,
 * no NTLM crypto. Public so that tests/test_decide.c checks it as a table;
 * the client's post.c is its one caller.
 */
#ifndef CLIENT_REAUTH_H
#define CLIENT_REAUTH_H

#include <stdbool.h>

/* What Communicator does after the answer to its body-less type 1. */
enum client_reauth_step {
  CLIENT_REAUTH_TYPE3 = 0,    /* 401 with a type 2: answer it, with the body */
  CLIENT_REAUTH_NO_CHALLENGE, /* 401 without a type 2: authentication failed */
  CLIENT_REAUTH_ANSWERED,     /* 2xx: the listener answered the type 1 */
  CLIENT_REAUTH_BODY_LOST,    /* 5xx: the body-less leg reached Exchange
                                 (KB 942638) */
  CLIENT_REAUTH_UNEXPECTED    /* anything else: a protocol error */
};

/* The step for the HTTP status of the answer to the type 1 and whether
 * it carried an NTLM challenge (WWW-Authenticate: NTLM <token>, or one too
 * long to keep). */
enum client_reauth_step client_reauth_next(int status, bool has_type2);

#endif /* CLIENT_REAUTH_H */
