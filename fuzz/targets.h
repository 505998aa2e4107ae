/*
 * targets.h - the fuzz targets' bodies: one function per parser of outside
 * bytes, shared by the libFuzzer programs (fuzz/libfuzzer.c, built with
 * KBSIM_FUZZ=ON) and the Check suite that replays every saved input
 * (tests/test_hostile.c), so a crash found by the fuzzer is reproduced
 * through the very same entry point.
 *
 * Each function takes any bytes, never crashes on them, and checks a few
 * properties of what the parser returned; a broken property is reported
 * on stderr and abort()s, which libFuzzer records as a crash.
 */
#ifndef FUZZ_TARGETS_H
#define FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* Sets up what the parsers need once per process (libxml2). Idempotent. */
void fuzz_init(void);

/* An NTLM message as bytes: ntlm_decode, ntlm_peek_type, ntlm_describe; a
 * decoded message is encoded back and decoded again (fields must survive);
 * a type 3 goes through ntlm_server_verify with a fixed challenge (the
 * proxy's path), a type 2 through ntlm_client_authenticate (the client's
 * path). Returns 0. */
int fuzz_ntlm(const uint8_t *data, size_t size);

/* An Authorization / WWW-Authenticate value (bytes up to the first NUL):
 * ntlm_header_parse, then the token as in fuzz_ntlm's decode; a parsed
 * token formatted back must parse to the same bytes; and the peek
 * (ntlm_header_peek, kb_auth_classify) must agree with the parse. Returns
 * 0. */
int fuzz_ntlm_header(const uint8_t *data, size_t size);

/* A POST body to /EWS/Exchange.asmx through the backend's handler
 * (soap_ews): the reply must be a 200 or a 500 SOAP fault and well-formed
 * XML. Returns 0. */
int fuzz_ews(const uint8_t *data, size_t size);

/* A POST body to /autodiscover/autodiscover.xml (soap_autodiscover): the
 * reply must be a 200 and well-formed XML. Returns 0. */
int fuzz_autodiscover(const uint8_t *data, size_t size);

/* A --user spec ("DOMAIN\user:password", bytes up to the first NUL) into a
 * user store (kb_users_add_spec); an accepted spec must be found again.
 * Returns 0. */
int fuzz_users(const uint8_t *data, size_t size);

/* A scenario file (sim/scenario.h, INI via inih) read from memory
 * (scenario_load_stream): a loaded scenario stays within its limits; a
 * refused one says where ("fuzz.ini:LINE: ..."). Returns 0. */
int fuzz_scenario(const uint8_t *data, size_t size);

/* Each byte a request on one connection (bit 0 the policy, bits 1-3 the
 * Authorization kind, bit 4 whether a type 3 verified) through the
 * listener's decision table (proxy_auth_decide), the state threaded from
 * one to the next: every decision is one the table has, a forward leaves
 * the connection authenticated, and only a type 1 on an authenticated
 * per-connection listener is forwarded without a challenge. Returns 0. */
int fuzz_decide(const uint8_t *data, size_t size);

/* A raw request head through kb_http_check (common/kb_http.h). */
int fuzz_http(const uint8_t *data, size_t size);

/* Lines of Authorization values (an empty line: no header) through
 * Exchange's gate (backend/gate.h), one connection's context threaded
 * from line to line, integrated and trusting: a request passes the
 * integrated gate only on an authenticated connection with an identity, a
 * challenge carries a type 2 in NTLM or Negotiate and leaves the
 * connection challenged, and the trusting gate refuses nothing. Returns 0. */
int fuzz_gate(const uint8_t *data, size_t size);

/* The targets by name, for the replay test and fuzz/run. */
struct fuzz_target {
  const char *name; /* also the corpus folder: fuzz/corpus/<name>/ */
  int (*run)(const uint8_t *data, size_t size);
};

/* NULL-name terminated. */
extern const struct fuzz_target fuzz_targets[];

#endif /* FUZZ_TARGETS_H */
