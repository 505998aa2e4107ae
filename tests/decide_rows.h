/*
 * decide_rows.h - proxy/README.md's integrated decision table as data:
 * one row per (connection state, policy, Authorization kind, verdict) with
 * the action, the next state, the note code and the counters. test_decide
 * runs every row through proxy_auth_decide; test_hostile runs the same
 * rows through sockets against the real listener. Included by one file of
 * each suite only (it defines the table).
 */
#ifndef TESTS_DECIDE_ROWS_H
#define TESTS_DECIDE_ROWS_H

#include <stdbool.h>

#include "common/kb_env.h"
#include "proxy/auth.h"

enum {
  U = PROXY_AUTH_UNAUTHENTICATED,
  C = PROXY_AUTH_CHALLENGED,
  A = PROXY_AUTH_AUTHENTICATED
};
enum { PC = PROXY_POLICY_PER_CONNECTION, PR = PROXY_POLICY_PER_REQUEST };
enum {
  FWD = PROXY_ACT_FORWARD,
  OFFER = PROXY_ACT_OFFER,
  CHAL = PROXY_ACT_CHALLENGE
};
/* counters: ok = auth_ok, fail = auth_failed, skip = reauth_skipped */
enum { NONE = 0, OK = 1, FAIL = 2, SKIP = 4 };

struct row {
  int state, policy;
  enum proxy_token token;
  bool verified;
  int act, next;
  enum kb_note note;
  bool forget;
  int counters;
};

/* proxy/README.md's table, one row per input. */
static const struct row rows[] = {
    /* no Authorization */
    {U, PC, PROXY_TOKEN_NONE, 0, OFFER, U, KB_NOTE_OFFER, 0, NONE},
    {C, PC, PROXY_TOKEN_NONE, 0, OFFER, U, KB_NOTE_OFFER, 0, NONE},
    {A, PC, PROXY_TOKEN_NONE, 0, FWD, A, KB_NOTE_FORWARD_AUTHENTICATED, 0,
     NONE},
    {U, PR, PROXY_TOKEN_NONE, 0, OFFER, U, KB_NOTE_OFFER, 0, NONE},
    {C, PR, PROXY_TOKEN_NONE, 0, OFFER, U, KB_NOTE_OFFER, 0, NONE},
    {A, PR, PROXY_TOKEN_NONE, 0, FWD, A, KB_NOTE_FORWARD_AUTHENTICATED, 0,
     NONE},
    /* type 1: the bug and the fix */
    {U, PC, PROXY_TOKEN_NEGOTIATE, 0, CHAL, C, KB_NOTE_CHALLENGE, 0, NONE},
    {C, PC, PROXY_TOKEN_NEGOTIATE, 0, CHAL, C, KB_NOTE_CHALLENGE, 0, NONE},
    {A, PC, PROXY_TOKEN_NEGOTIATE, 0, FWD, A, KB_NOTE_REAUTH_SKIPPED, 0, SKIP},
    {U, PR, PROXY_TOKEN_NEGOTIATE, 0, CHAL, C, KB_NOTE_CHALLENGE, 0, NONE},
    {C, PR, PROXY_TOKEN_NEGOTIATE, 0, CHAL, C, KB_NOTE_CHALLENGE, 0, NONE},
    {A, PR, PROXY_TOKEN_NEGOTIATE, 0, CHAL, C, KB_NOTE_REAUTH_CHALLENGED, 0,
     NONE},
    /* type 3, verified or not */
    {U, PC, PROXY_TOKEN_AUTHENTICATE, 1, OFFER, U, KB_NOTE_AUTH_UNEXPECTED, 1,
     FAIL},
    {C, PC, PROXY_TOKEN_AUTHENTICATE, 1, FWD, A, KB_NOTE_AUTH_OK, 0, OK},
    {C, PC, PROXY_TOKEN_AUTHENTICATE, 0, OFFER, U, KB_NOTE_AUTH_REFUSED, 1,
     FAIL},
    {A, PC, PROXY_TOKEN_AUTHENTICATE, 1, OFFER, U, KB_NOTE_AUTH_UNEXPECTED, 1,
     FAIL},
    {U, PR, PROXY_TOKEN_AUTHENTICATE, 0, OFFER, U, KB_NOTE_AUTH_UNEXPECTED, 1,
     FAIL},
    {C, PR, PROXY_TOKEN_AUTHENTICATE, 1, FWD, A, KB_NOTE_AUTH_OK, 0, OK},
    {C, PR, PROXY_TOKEN_AUTHENTICATE, 0, OFFER, U, KB_NOTE_AUTH_REFUSED, 1,
     FAIL},
    {A, PR, PROXY_TOKEN_AUTHENTICATE, 0, OFFER, U, KB_NOTE_AUTH_UNEXPECTED, 1,
     FAIL},
    /* Kerberos, unusable headers: refused, de-authenticated */
    {U, PC, PROXY_TOKEN_KERBEROS, 0, OFFER, U, KB_NOTE_KERBEROS, 1, NONE},
    {A, PC, PROXY_TOKEN_KERBEROS, 0, OFFER, U, KB_NOTE_KERBEROS, 1, NONE},
    {C, PR, PROXY_TOKEN_KERBEROS, 0, OFFER, U, KB_NOTE_KERBEROS, 1, NONE},
    {A, PC, PROXY_TOKEN_BAD, 0, OFFER, U, KB_NOTE_AUTH_UNUSABLE, 1, NONE},
    {C, PR, PROXY_TOKEN_BAD, 0, OFFER, U, KB_NOTE_AUTH_UNUSABLE, 1, NONE},
    {A, PC, PROXY_TOKEN_BAD_TYPE3, 0, OFFER, U, KB_NOTE_AUTH_UNUSABLE, 1, FAIL},
    {C, PR, PROXY_TOKEN_BAD_TYPE3, 0, OFFER, U, KB_NOTE_AUTH_UNUSABLE, 1, FAIL},
};

#define DECIDE_NROWS (sizeof(rows) / sizeof(rows[0]))

#endif /* TESTS_DECIDE_ROWS_H */
