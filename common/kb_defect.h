/*
 * kb_defect.h - the failures of the reverse-proxy family, by one set of
 * names: what kbsim's listener can be made to do (serve --defect NAME),
 * what kbsim probe finds in a real proxy ("defects" in its JSON) and what
 * kbsim analyze finds in a capture. A name is spelled the same in every
 * one of them, because each is defined here once.
 */
#ifndef KB_DEFECT_H
#define KB_DEFECT_H

#include <stdbool.h>
#include <stddef.h>

/* One failure of the family. The order is the table's (kb_defect.c). */
enum kb_defect {
  /* Bodies mishandled during the handshake. */
  KB_DEFECT_BODY_LESS_FORWARD = 0, /* a type 1 POST with Content-Length 0 on
                                      an authenticated connection forwarded
                                      instead of challenged (KB 942638) */
  KB_DEFECT_EXPECT_HANG,           /* Expect: 100-continue gets neither a
                                      100 nor an answer */
  KB_DEFECT_BODY_ON_TYPE1,         /* a type 1 that carries a body forwarded
                                      with it, unauthenticated */
  /* Connections: the handshake and the identity belong to one upstream
   * connection, pinned to one client connection. */
  KB_DEFECT_HANDSHAKE_SPLIT,        /* type 1 and type 3 of one handshake on
                                       different upstream connections */
  KB_DEFECT_MIXES_IDENTITIES,       /* an authenticated upstream connection
                                       serves another client */
  KB_DEFECT_PINNED_RECYCLED,        /* the pinned upstream connection is
                                       replaced while the client's stays up */
  KB_DEFECT_MIXES_AFTER_SINGLE_LEG, /* pinned only after a 401: a client that
                                       authenticates in one leg (Kerberos)
                                       is never pinned */
  /* Challenges. */
  KB_DEFECT_CHALLENGE_REWRITTEN, /* WWW-Authenticate folded, NTLM or
                                    Negotiate dropped */
  /* HTTP/2. */
  KB_DEFECT_NTLM_OVER_HTTP2, /* NTLM let through on HTTP/2 streams */
  KB_DEFECT_COUNT            /* not a defect: how many there are */
};

/* Where a listener has a defect. */
enum kb_defect_where {
  KB_DEFECT_AUTHENTICATING, /* a listener that authenticates itself (ISA) */
  KB_DEFECT_PASS_THROUGH,   /* a listener that passes NTLM through to the
                               server, which authenticates */
  KB_DEFECT_EITHER          /* the front side, whatever authenticates */
};

/* A defect's entry in the table. */
struct kb_defect_info {
  enum kb_defect defect;
  const char *name; /* "handshake-split": the one spelling */
  enum kb_defect_where where;
  const char *what; /* one line for people: what goes wrong on the wire */
};

/* The entry of defect d, NULL when d is not a defect. Can't fail
 * otherwise; the table is constant, safe from any thread. */
const struct kb_defect_info *kb_defect_info(enum kb_defect d);

/* The name of d ("body-less-forward"), or "?" when d is not a defect. */
const char *kb_defect_name(enum kb_defect d);

/* Reads a defect's name. Returns 0, or -1 when name is none (then err, if
 * not NULL, holds a line listing the names). */
int kb_defect_parse(const char *name, enum kb_defect *out, char *err,
                    size_t errlen);

#endif /* KB_DEFECT_H */
