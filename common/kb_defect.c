/*
 * kb_defect.c - the table of the reverse-proxy family's failures: one name
 * and one line each (kb_defect.h).
 */
#include "common/kb_defect.h"

#include <stdio.h>
#include <string.h>

static const struct kb_defect_info kb_defects[KB_DEFECT_COUNT] = {
    {KB_DEFECT_BODY_LESS_FORWARD, "body-less-forward", KB_DEFECT_AUTHENTICATING,
     "a type 1 POST without its body on an authenticated connection is "
     "forwarded instead of challenged (KB 942638)"},
    {KB_DEFECT_EXPECT_HANG, "expect-hang", KB_DEFECT_AUTHENTICATING,
     "a request with Expect: 100-continue gets neither a 100 nor an answer"},
    {KB_DEFECT_BODY_ON_TYPE1, "body-on-type1", KB_DEFECT_AUTHENTICATING,
     "a type 1 that carries a body is forwarded with it, unauthenticated"},
    {KB_DEFECT_HANDSHAKE_SPLIT, "handshake-split", KB_DEFECT_PASS_THROUGH,
     "the type 1 and the type 3 of one handshake reach the server on "
     "different upstream connections: a 401 loop"},
    {KB_DEFECT_MIXES_IDENTITIES, "mixes-identities", KB_DEFECT_PASS_THROUGH,
     "an authenticated upstream connection serves another client's "
     "requests as the first client"},
    {KB_DEFECT_PINNED_RECYCLED, "pinned-recycled", KB_DEFECT_PASS_THROUGH,
     "the upstream connection pinned to a client is closed and replaced "
     "while the client's connection stays authenticated"},
    {KB_DEFECT_MIXES_AFTER_SINGLE_LEG, "mixes-after-single-leg",
     KB_DEFECT_PASS_THROUGH,
     "an upstream connection is pinned only after a 401, so a client that "
     "authenticates in one leg (Kerberos) is never pinned and its "
     "connection serves others"},
    {KB_DEFECT_CHALLENGE_REWRITTEN, "challenge-rewritten",
     KB_DEFECT_PASS_THROUGH,
     "the server's WWW-Authenticate headers reach the client folded, "
     "reordered or without NTLM"},
    {KB_DEFECT_NTLM_OVER_HTTP2, "ntlm-over-http2", KB_DEFECT_EITHER,
     "NTLM is let through on HTTP/2 streams, bound to no connection the "
     "client controls"},
};

const struct kb_defect_info *kb_defect_info(enum kb_defect d)
{
  return (unsigned)d < KB_DEFECT_COUNT ? &kb_defects[d] : NULL;
}

const char *kb_defect_name(enum kb_defect d)
{
  return (unsigned)d < KB_DEFECT_COUNT ? kb_defects[d].name : "?";
}

int kb_defect_parse(const char *name, enum kb_defect *out, char *err,
                    size_t errlen)
{
  size_t i, at;

  for(i = 0; i < KB_DEFECT_COUNT; i++)
    if(name && !strcmp(name, kb_defects[i].name)) {
      *out = kb_defects[i].defect;
      return 0;
    }
  if(err && errlen) {
    at = (size_t)snprintf(err, errlen, "'%s' is no defect; defects are",
                          name ? name : "");
    for(i = 0; i < KB_DEFECT_COUNT && at < errlen; i++)
      at += (size_t)snprintf(err + at, errlen - at, "%s %s", i ? "," : "",
                             kb_defects[i].name);
  }
  return -1;
}
