/*
 * kbt_env.c - the listener and Exchange for a test; see kbt_env.h.
 */
#include "kbt_env.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

void kbt_env_start(struct kbt_env *e, struct backend_config *bc,
                   struct proxy_config *pc, const char *debug)
{
  char err[256];

  memset(e, 0, sizeof(*e));
  kbt_trace_init(&e->trace, false, debug);
  e->users = kb_users_new();
  ck_assert_ptr_nonnull(e->users);
  ck_assert_msg(kb_users_add(e->users, "FABRIKAM", "alice", KBT_ALICE_PASSWORD,
                             err, sizeof(err)) == 0,
                "%s", err);
  ck_assert_msg(kb_users_add(e->users, "FABRIKAM", "bob", KBT_BOB_PASSWORD, err,
                             sizeof(err)) == 0,
                "%s", err);
  if(bc) {
    bc->clock.now_ms = kbt_now;
    bc->trace = kbt_trace_sink(&e->trace);
    ck_assert_msg(backend_start(bc, &e->be, err, sizeof(err)) == 0, "%s", err);
    snprintf(e->backend_url, sizeof(e->backend_url), "http://127.0.0.1:%u",
             (unsigned)backend_port(e->be));
    pc->backend_url = e->backend_url;
  }
  else {
    ck_assert_ptr_nonnull(pc->backend_url);
    snprintf(e->backend_url, sizeof(e->backend_url), "%s", pc->backend_url);
  }
  pc->users = e->users;
  pc->clock.now_ms = kbt_now;
  pc->rng.fill = kbt_fill;
  pc->trace = kbt_trace_sink(&e->trace);
  ck_assert_msg(proxy_start(pc, &e->px, err, sizeof(err)) == 0, "%s", err);
}

void kbt_env_stop(struct kbt_env *e)
{
  proxy_stop(e->px);
  backend_stop(e->be);
  kb_users_free(e->users);
  kbt_trace_free(&e->trace);
  memset(e, 0, sizeof(*e));
}
