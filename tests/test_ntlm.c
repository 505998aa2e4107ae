/*
 * test_ntlm.c - the NTLM library (ntlm.h): the one list of the suites, one
 * per file, and what they share (test_ntlm.h).
 *
 *   test_ntlm_vectors.c    MS-NLMP 4.2 vectors and the support case's own
 *                          token
 *   test_ntlm_roundtrip.c  client <-> server handshakes for every response
 *                          kind, codec round trips, concurrent handshakes
 *   test_ntlm_nlmp.c       negotiation, key exchange and the MIC (MS-NLMP
 *                          3.1.5, 3.2.5)
 *   test_ntlm_malformed.c  a table of malformed messages and headers, and
 *                          a mutation loop
 *
 * Every expected value is an exact byte string or count. The vectors are
 * MS-NLMP section 4.2's (common inputs in 4.2.1: user "User", domain
 * "Domain", password "Password", workstation "COMPUTER", server challenge
 * 0123456789abcdef, client challenge aa * 8, time 0).
 */
#include "test_ntlm.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kbt.h"

uint8_t *nt_hex(const char *h, size_t *len)
{
  size_t n = strlen(h);
  uint8_t *out = malloc(n / 2 + 1);
  size_t o = 0;
  int hi = -1;

  ck_assert_ptr_nonnull(out);
  for(; *h; h++) {
    int v;
    if(*h == ' ' || *h == '\n')
      continue;
    if(*h >= '0' && *h <= '9')
      v = *h - '0';
    else if(*h >= 'a' && *h <= 'f')
      v = *h - 'a' + 10;
    else if(*h >= 'A' && *h <= 'F')
      v = *h - 'A' + 10;
    else
      ck_abort_msg("bad hex digit '%c' in a test literal", *h);
    if(hi < 0)
      hi = v;
    else {
      out[o++] = (uint8_t)(hi << 4 | v);
      hi = -1;
    }
  }
  ck_assert_int_eq(hi, -1);
  *len = o;
  return out;
}

void nt_assert_hex(const uint8_t *got, size_t glen, const char *want)
{
  size_t wlen;
  uint8_t *w = nt_hex(want, &wlen);

  ck_assert_uint_eq(glen, wlen);
  ck_assert_mem_eq(got, w, wlen);
  free(w);
}

const uint8_t nt_server_chal[8] = {0x01, 0x23, 0x45, 0x67,
                                   0x89, 0xab, 0xcd, 0xef};
const uint8_t nt_client_chal[8] = {0xaa, 0xaa, 0xaa, 0xaa,
                                   0xaa, 0xaa, 0xaa, 0xaa};

void nt_decode_hex(const char *h, struct ntlm_message *m)
{
  size_t len;
  uint8_t *b = nt_hex(h, &len);
  char err[256] = "";

  ck_assert_msg(ntlm_decode(b, len, m, err, sizeof(err)) == NTLM_OK, "%s", err);
  free(b);
}

const char *nt_lookup(void *ctx, const char *domain, const char *user)
{
  struct nt_store *s = ctx;

  if(s)
    s->lookups++;
  if(!strcasecmp(domain, "FABRIKAM") && !strcasecmp(user, "alice"))
    return "Secr3t!";
  if(!strcasecmp(domain, "FABRIKAM") && !strcasecmp(user, "\xc3\xa9mile"))
    return "p\xc3\xa4ss";
  if(!strcasecmp(domain, "Domain") && !strcasecmp(user, "User"))
    return "Password";
  return NULL;
}

const struct ntlm_server_info nt_isa = {"FABRIKAM", "ISA01", "fabrikam.com",
                                        "isa01.fabrikam.com"};

int main(void)
{
  static Suite *(*const suites[])(void) = {
      ntlm_vectors_suite, ntlm_roundtrip_suite, ntlm_nlmp_suite,
      ntlm_malformed_suite, NULL};

  return kbt_run_list(suites) ? EXIT_FAILURE : EXIT_SUCCESS;
}
