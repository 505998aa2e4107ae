/*
 * kbt.h - what the test suites share (on the model of libuv's task.h and
 * curl's libtest): the support case's constants, one deterministic random
 * fill and fixed clock for the components' kb_rng / kb_clock, and the
 * request body the listener tests POST.
 */
#ifndef TESTS_KBT_H
#define TESTS_KBT_H

#include <stddef.h>
#include <stdint.h>

/* 2009-03-17 16:26:24 UTC: the Date of the support case's 500. */
#define KBT_CASE_MS INT64_C(1237307184000)

/* GetUserOofSettings for alice, as Communicator POSTs it. */
extern const char *const kbt_oof_body;

/* kb_clock.now_ms: always KBT_CASE_MS. */
int64_t kbt_now(void *ctx, const char *who);

/* kb_rng.fill: deterministic bytes from label alone (FNV-1a of the label,
 * then splitmix64), so a test can recompute what a component drew under
 * a label (the proxy's challenge, say) and so check the label. */
void kbt_fill(void *ctx, const char *label, uint8_t *buf, size_t len);

#endif /* TESTS_KBT_H */
