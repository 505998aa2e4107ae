/*
 * gate.h - internal to backend/: who a request reaches Exchange as.
 *
 * IIS 7 with Windows authentication (BACKEND_AUTH_INTEGRATED) keeps an
 * NTLM context per TCP connection: a type 1 always gets a fresh type 2,
 * a type 3 is verified against the connection's challenge (ntlm/, with
 * the account resolved by kb_users_resolve), and a request without
 * Authorization on an authenticated connection runs as that connection's
 * user. With a keytab it also accepts Negotiate with a Kerberos ticket in
 * one leg (common/kb_gss.h) and keeps the connection authenticated as the
 * ticket's principal. Under Extended Protection a verified NTLM type 3
 * must also carry the channel binding of Exchange's own TLS certificate
 * (backend.h's enum backend_epa). Behind ISA (BACKEND_AUTH_NONE) Exchange
 * trusts what reaches it: the identity is the user named by the last
 * type 3 or Basic credentials seen on the connection, unverified, and
 * nothing is refused.
 *
 * No libmicrohttpd here: mhd.c hands in the Authorization value and
 * carries out the gate's answer.
 */
#ifndef BACKEND_GATE_H
#define BACKEND_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "ntlm/ntlm.h"

/* Where a connection's NTLM handshake stands (integrated only). */
enum backend_auth_state {
  BACKEND_AUTH_STATE_UNAUTHENTICATED = 0,
  BACKEND_AUTH_STATE_CHALLENGED,
  BACKEND_AUTH_STATE_AUTHENTICATED
};

/* One connection's authentication context; zeroed means "nothing seen".
 * Owned by the connection; release with backend_auth_ctx_free. */
struct backend_auth_ctx {
  enum backend_auth_state state;
  unsigned handshakes;
  uint8_t challenge[8];
  struct ntlm_bytes negotiate; /* the handshake's type 1, for the MIC */
  struct ntlm_bytes type2;     /* the handshake's type 2, for the MIC */
  char identity[260];          /* "DOMAIN\user", "" while anonymous */
};

/* What the gate decided for one request. */
enum backend_gate {
  BACKEND_GATE_PASS = 0,  /* serve it as ctx->identity */
  BACKEND_GATE_CHALLENGE, /* 401 with www_authenticate (a type 2) */
  BACKEND_GATE_REFUSE     /* 401 offering NTLM and Negotiate */
};

/* What the gate needs to know about the server. */
struct backend_auth_server {
  enum backend_auth auth;
  const struct kb_users *users; /* borrowed; integrated only */
  const char *domain;           /* NetBIOS domain, e.g. "FABRIKAM" */
  const char *dns_domain;       /* e.g. "fabrikam.com" */
  const char *computer;         /* e.g. "EXCH01" */
  struct kb_rng rng;            /* server challenges */
  struct kb_clock clock;        /* type 2 timestamps */
  const char *krb5_keytab;      /* integrated: Kerberos too; NULL: NTLM only */
  /* Extended Protection: whether Exchange serves TLS, and then the
   * MsvAvChannelBindings a client that saw its certificate sends, with
   * that certificate's RFC 5929 hash for people ("SHA256", "ab:cd:..."). */
  enum backend_epa epa;
  bool tls;
  uint8_t bindings[16];
  char hash_name[16];
  char end_point[200];
};

struct backend_gate_answer {
  enum backend_gate gate;
  char www_authenticate[1024]; /* CHALLENGE: "NTLM <type 2>" */
  char why[512];               /* CHALLENGE/REFUSE: one line for people */
  /* REFUSE: the request carried a type 3 and no challenge was pending on
   * the connection (its type 1 went on another: a handshake split). */
  bool type3_without_challenge;
  /* REFUSE: the type 3's proof was right but Extended Protection refused
   * its channel binding (why says which binding against which). */
  bool channel_binding_refused;
};

/* Judges a request carrying the Authorization value authorization (NULL
 * when absent) on the connection whose context is ctx, named name (for
 * the challenge's random label) and numbered conn. Updates ctx and fills
 * *out. Never fails: anything a client sends becomes an answer. */
void backend_auth_gate(const struct backend_auth_server *srv,
                       struct backend_auth_ctx *ctx, uint64_t conn,
                       const char *authorization,
                       struct backend_gate_answer *out);

/* Frees what ctx holds and zeroes it. Accepts NULL. */
void backend_auth_ctx_free(struct backend_auth_ctx *ctx);

/* Returns true when identity ("DOMAIN\user") names the owner of mailbox
 * ("user@domain"): the user part equals the mailbox's local part, ASCII
 * case folded. False when either is empty. */
bool backend_auth_owns(const char *identity, const char *mailbox);

#endif /* BACKEND_GATE_H */
