/*
 * auth.h - the integrated listener's decision table (proxy/README.md,
 * "`integrated`") as a pure function, public so that tests and fuzzers
 * check its rows directly (proxy/CMakeLists.txt). It reads the
 * connection's state, the policy and what the Authorization header
 * carries, and says what to do, what the connection's state becomes,
 * which counters move and which note code tells it. It touches neither
 * libmicrohttpd nor libcurl, nor any NTLM crypto: a type 3's proof is
 * checked by the caller first (proxy_auth_verifies says when) and handed
 * in as a verdict.
 */
#ifndef PROXY_AUTH_H
#define PROXY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/kb_env.h"
#include "proxy/proxy.h"

/* Where a connection's NTLM handshake stands. */
enum proxy_auth_state {
  PROXY_AUTH_UNAUTHENTICATED = 0,
  PROXY_AUTH_CHALLENGED,   /* a type 2 was sent; a type 3 may follow */
  PROXY_AUTH_AUTHENTICATED /* a type 3 was verified on this connection */
};

/* What a request's Authorization header carries. */
enum proxy_token {
  PROXY_TOKEN_NONE = 0,     /* no Authorization header */
  PROXY_TOKEN_BAD,          /* present but unusable */
  PROXY_TOKEN_BAD_TYPE3,    /* unusable, though it claims to be a type 3 */
  PROXY_TOKEN_KERBEROS,     /* Negotiate with a token that is not NTLMSSP */
  PROXY_TOKEN_NEGOTIATE,    /* an NTLM type 1 */
  PROXY_TOKEN_AUTHENTICATE, /* an NTLM type 3 */
  PROXY_TOKEN_COUNT         /* not a token: how many there are */
};

/* What the listener does with the request. */
enum proxy_act {
  PROXY_ACT_FORWARD = 0, /* to Exchange, as it came */
  PROXY_ACT_OFFER,       /* 401 offering Negotiate and NTLM */
  PROXY_ACT_CHALLENGE    /* 401 with a new type 2 (handshake restarts) */
};

struct proxy_auth_input {
  enum proxy_auth_state state;
  enum proxy_policy policy;
  enum proxy_token token;
  /* PROXY_TOKEN_AUTHENTICATE while CHALLENGED: the type 3's proof (and
   * MIC) checked out. PROXY_TOKEN_KERBEROS on a listener with Kerberos:
   * MIT's GSS-API accepted the ticket. Ignored otherwise. */
  bool verified;
  /* The listener accepts Kerberos (it has a keytab): a Kerberos token is
   * verified (proxy_auth_verifies) instead of refused unread. */
  bool kerberos;
  /* The listener's defects (proxy_config.defects). Two change rows:
   * body-less-forward forwards a type 1 on an authenticated connection
   * whatever the policy, body-on-type1 forwards a type 1 that carries a
   * body. 0: none. */
  unsigned defects;
  /* The request carries a body (read, or announced with Expect). */
  bool has_body;
};

struct proxy_auth_decision {
  enum proxy_act act;
  enum proxy_auth_state next; /* the connection's state after it */
  enum kb_note note;          /* the decision's note code */
  bool forget;                /* drop the connection's identity */
  bool auth_ok;               /* counters: a type 3 verified */
  bool kerberos_ok;           /* a Kerberos ticket accepted */
  bool auth_failed;           /* a type 3 (or what claims to be) refused */
  bool reauth_skipped;        /* the bug: a type 1 not challenged */
};

/* Whether the caller must verify the token before deciding: a
 * PROXY_TOKEN_AUTHENTICATE on a CHALLENGED connection, or a
 * PROXY_TOKEN_KERBEROS when the listener accepts Kerberos (kerberos). */
bool proxy_auth_verifies(enum proxy_auth_state state, enum proxy_token token,
                         bool kerberos);

/* The decision table. Total: every input has a decision. Nothing is
 * forwarded from a connection that is not authenticated afterwards,
 * except by the defect body-on-type1 (note KB_NOTE_TYPE1_BODY_FORWARDED). */
void proxy_auth_decide(const struct proxy_auth_input *in,
                       struct proxy_auth_decision *out);

/* What a decision's texts say beyond the decision itself, gathered by the
 * caller from the connection and the request. Strings may be "" where the
 * decision does not use them, never NULL. */
struct proxy_auth_facts {
  const char *conn;     /* how the words name the connection: "client 3
                           conn 1" (kb_names, as both ends name it), or
                           "connection 7" before a name is known */
  const char *listener; /* ISA's name, for the 401's body */
  const char *who;      /* DOMAIN\user: the identity before, or the new one */
  const char *how;      /* how a type 3 verified: "NTLMv2, MIC verified" */
  const char *what;     /* what is forwarded: "POST /EWS/... to Exchange" */
  const char *why;      /* why the header is unusable */
  const char *err;      /* why a type 3 or a Kerberos ticket was refused */
  unsigned first_byte;  /* of a Negotiate token that is not NTLMSSP */
  unsigned handshake;   /* the number of the handshake a type 2 starts */
};

/* The decision's note text for the trace into note and, when it refuses
 * with an offer, the 401's body into body (else body is ""). The words
 * are for people; everything else reads d->note. note may be NULL (with
 * notelen 0) when nothing records the note: then only the body is
 * written, and the facts only the body uses (listener, why, err) are
 * read. */
void proxy_auth_texts(const struct proxy_auth_input *in,
                      const struct proxy_auth_decision *d,
                      const struct proxy_auth_facts *f, char *note,
                      size_t notelen, char *body, size_t bodylen);

/* "UNAUTHENTICATED", "CHALLENGED", "AUTHENTICATED"; "none", "bad", ...;
 * "forward", "offer", "challenge". For tests and traces. */
const char *proxy_auth_state_name(enum proxy_auth_state state);
const char *proxy_token_name(enum proxy_token token);
const char *proxy_act_name(enum proxy_act act);

#endif /* PROXY_AUTH_H */
