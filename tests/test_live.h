/*
 * test_live.h - what the files of test_live share: `kbsim serve` started
 * and stopped as a process, `kbsim client` and `kbsim ctl` against it, and
 * HTTP to its admin endpoint with the status read as JSON.
 */
#ifndef TESTS_TEST_LIVE_H
#define TESTS_TEST_LIVE_H

#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/kb_buf.h"
#include "proc.h"
#include "served.h"

#define HALF_PATCHED SCENARIOS_DIR "/half-patched-array.ini"
#define ALICE "FABRIKAM\\alice:Passw0rd!"
#define BOB "FABRIKAM\\bob:B0b-secret"
/* The JSON report's schema (python3-jsonschema reads it). */
#define LV_SCHEMA SOURCE_DIR "/docs/report.schema.json"

/* served_start (served.h), and the token lv_http() sends from then on. */
void lv_serve_start(struct served *s, const char *const *args);

/* `kbsim client` through the balancer as user; returns its exit code and
 * checks that it printed the verdict that code means. */
int lv_client_session(const struct served *s, const char *user);

/* `kbsim ctl --admin 127.0.0.1:PORT a1 a2 a3` (NULL ends the arguments);
 * returns its output. */
void lv_ctl(const struct served *s, struct proc_out *p, const char *a1,
            const char *a2, const char *a3);

/* method url with the extra request headers in hdrs (NULL-terminated
 * "Name: value" list, may be NULL) and post as the body of a POST ->
 * status, body, headers (both NUL-terminated; the caller frees them). */
long lv_http_with(const char *method, const char *url, const char *const *hdrs,
                  const char *post, struct kb_buf *body,
                  struct kb_buf *headers);

/* method url as `kbsim ctl` sends it (the token of the server the test
 * started, a JSON POST) -> status, body, headers. */
long lv_http(const char *method, const char *url, struct kb_buf *body,
             struct kb_buf *headers);

/* GET /status as JSON (owned by the caller). */
json_t *lv_status_of(const struct served *s);

/* Member i's (from 0) integer or string field in a status. */
long long lv_member_int(json_t *st, size_t i, const char *key);
const char *lv_member_str(json_t *st, size_t i, const char *key);

/* The integer at key in the object at section of a status or a report. */
long long lv_section_int(json_t *st, const char *section, const char *key);
long long lv_json_int_at(json_t *root, const char *section, const char *key);

/* Waits until the balancer has ended every pair, so a stop that follows
 * does not close them itself: each close keeps the reason it had. */
void lv_balancer_drained(const struct served *s);

/* The number of lines of text that contain needle (at their start when
 * at_start is set). */
int lv_lines_with(const char *text, const char *needle, bool at_start);

/* The suites, one per file. */
Suite *live_balancer_suite(void);
Suite *live_serve_suite(void);
Suite *live_evidence_suite(void);
Suite *live_admin_suite(void);
Suite *live_stream_suite(void);

#endif /* TESTS_TEST_LIVE_H */
