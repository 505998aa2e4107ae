/*
 * test_ntlm.h - what the files of test_ntlm share: hex literals, MS-NLMP
 * 4.2's common inputs and messages, the support case's token, and the
 * user store and server of the round trips.
 */
#ifndef TESTS_TEST_NTLM_H
#define TESTS_TEST_NTLM_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "ntlm/ntlm.h"

/* Decodes hex (blanks allowed) into a malloc'd buffer; *len gets its size.
 * Aborts the test on a malformed literal, which is a bug in the test. */
uint8_t *nt_hex(const char *h, size_t *len);

/* Asserts that got[0..glen) equals the hex literal want. */
void nt_assert_hex(const uint8_t *got, size_t glen, const char *want);

/* Decodes a hex literal as a message, asserting success. */
void nt_decode_hex(const char *h, struct ntlm_message *m);

/* MS-NLMP 4.2.1's server challenge 0123456789abcdef and client
 * challenge aa * 8. */
extern const uint8_t nt_server_chal[8];
extern const uint8_t nt_client_chal[8];

/* MS-NLMP 4.2.4.3: the CHALLENGE_MESSAGE of the NTLMv2 example. */
#define SPEC_CHALLENGE_V2                                                      \
  "4e544c4d53535000020000000c000c003800000033828ae20123456789abcdef"           \
  "00000000000000002400240044000000060070170000000f5300650072007600"           \
  "6500720002000c0044006f006d00610069006e0001000c005300650072007600"           \
  "6500720000000000"

/* MS-NLMP 4.2.4.3: the AUTHENTICATE_MESSAGE of the NTLMv2 example. */
#define SPEC_AUTHENTICATE_V2                                                   \
  "4e544c4d5353500003000000180018006c00000054005400840000000c000c00"           \
  "480000000800080054000000100010005c00000010001000d8000000358288e2"           \
  "0501280a0000000f44006f006d00610069006e00550073006500720043004f00"           \
  "4d005000550054004500520086c35097ac9cec102554764a57cccc19aaaaaaaa"           \
  "aaaaaaaa68cd0ab851e51c96aabc927bebef6a1c010100000000000000000000"           \
  "00000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e00"           \
  "01000c005300650072007600650072000000000000000000c5dad2544fc97990"           \
  "94ce1ce90bc9d03e"

/* MS-NLMP 4.2.3.3: the CHALLENGE_MESSAGE of the NTLMv1-with-client-
 * challenge example (no target info). */
#define SPEC_CHALLENGE_V1                                                      \
  "4e544c4d53535000020000000c000c003800000033820a820123456789abcdef"           \
  "00000000000000000000000000000000060070170000000f5300650072007600"           \
  "65007200"

/* MS-NLMP 4.2.4.1.3's target info: NbDomainName "Domain", NbComputerName
 * "Server", EOL. */
#define SPEC_TARGET_INFO                                                       \
  "02000c0044006f006d00610069006e0001000c00530065007200760065007200"           \
  "00000000"

/* The support case's Authorization token (non-canonical final base64
 * character) and the same 40 bytes canonically encoded. */
#define SEED_TOKEN "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAAD0=="
#define SEED_CANONICAL                                                         \
  "TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw=="
#define SEED_HEX                                                               \
  "4e544c4d53535000010000000782 08a2 0000000000000000 0000000000000000"        \
  "0501280a0000000f"

/* The user store of the round-trip tests: case-insensitive like
 * kb_users. Counts lookups so tests can see verification consulted it. */
struct nt_store {
  int lookups;
};

const char *nt_lookup(void *ctx, const char *domain, const char *user);

/* ISA01 of FABRIKAM, as the round trips' server. */
extern const struct ntlm_server_info nt_isa;

/* The suites, one per file. */
Suite *ntlm_vectors_suite(void);
Suite *ntlm_roundtrip_suite(void);
Suite *ntlm_nlmp_suite(void);
Suite *ntlm_malformed_suite(void);

#endif /* TESTS_TEST_NTLM_H */
