/*
 * kbt_ntlm.c - a test client's NTLM tokens and handshake legs; see
 * kbt_ntlm.h.
 */
#include "kbt_ntlm.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "kbt.h"

char *kbt_ntlm_type1(enum ntlm_scheme scheme)
{
  struct ntlm_bytes b = {NULL, 0};
  char *v;

  ck_assert_int_eq(ntlm_client_negotiate(NTLM_COMMUNICATOR_FLAGS, &b), NTLM_OK);
  v = ntlm_header_format(scheme, b.data, b.len);
  ck_assert_ptr_nonnull(v);
  ntlm_bytes_free(&b);
  return v;
}

void kbt_ntlm_challenge(const char *www_auth, enum ntlm_scheme scheme,
                        struct ntlm_message *msg)
{
  struct ntlm_bytes b = {NULL, 0};
  enum ntlm_scheme got;

  ck_assert_ptr_nonnull(www_auth);
  ck_assert_int_eq(ntlm_header_parse(www_auth, &got, &b, NULL, 0), NTLM_OK);
  ck_assert_int_eq(got, scheme);
  ck_assert_int_eq(ntlm_decode(b.data, b.len, msg, NULL, 0), NTLM_OK);
  ck_assert_int_eq(msg->type, NTLM_TYPE_CHALLENGE);
  ntlm_bytes_free(&b);
}

void kbt_ntlm_challenge_of(const struct rc_resp *r, struct ntlm_message *msg)
{
  char www[4096];

  ck_assert_int_eq(r->status, 401);
  ck_assert_ptr_nonnull(rc_header(r, "WWW-Authenticate", www, sizeof(www)));
  kbt_ntlm_challenge(www, NTLM_SCHEME_NTLM, msg);
}

struct ntlm_bytes kbt_ntlm_type3_raw(const struct ntlm_message *challenge,
                                     const char *user, const char *password)
{
  struct ntlm_client_creds creds = {"FABRIKAM", user, password, "COMMUNICATOR",
                                    NTLM_RESPONSE_V2};
  static const uint8_t cc[8] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
  struct ntlm_bytes b = {NULL, 0};

  ck_assert_int_eq(
      ntlm_client_authenticate(&creds, challenge, cc, 0, &b, NULL, 0), NTLM_OK);
  return b;
}

char *kbt_ntlm_header(enum ntlm_scheme scheme, const uint8_t *raw, size_t len)
{
  char *v = ntlm_header_format(scheme, raw, len);

  ck_assert_ptr_nonnull(v);
  return v;
}

char *kbt_ntlm_type3(const struct ntlm_message *challenge,
                     enum ntlm_scheme scheme, const char *user,
                     const char *password)
{
  struct ntlm_bytes b = kbt_ntlm_type3_raw(challenge, user, password);
  char *v = kbt_ntlm_header(scheme, b.data, b.len);

  ntlm_bytes_free(&b);
  return v;
}

void kbt_ntlm_leg1(struct rc *c, struct ntlm_message *chal)
{
  struct rc_resp r;
  char *t1 = kbt_ntlm_type1(NTLM_SCHEME_NTLM);

  ck_assert_int_eq(rc_post(c, KBT_EWS, t1, "", 0, &r), 401);
  kbt_ntlm_challenge_of(&r, chal);
  rc_resp_free(&r);
  free(t1);
}

int kbt_ntlm_handshake(struct rc *c, const char *user, const char *password)
{
  struct ntlm_message chal;
  struct rc_resp r;
  char *t3;
  int status;

  kbt_ntlm_leg1(c, &chal);
  t3 = kbt_ntlm_type3(&chal, NTLM_SCHEME_NTLM, user, password);
  status = rc_post(c, KBT_EWS, t3, kbt_oof_body, strlen(kbt_oof_body), &r);
  if(status == 200)
    ck_assert_ptr_nonnull(strstr(r.body, "GetUserOofSettingsResponse"));
  rc_resp_free(&r);
  free(t3);
  ntlm_message_free(&chal);
  return status;
}
