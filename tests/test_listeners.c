/*
 * test_listeners.c - the published matrix (docs/listeners.md) against the
 * real listeners, now (issue 29): scripts/listeners-table --run starts
 * every setup of examples/ (Squid, nginx, Apache httpd, HAProxy, each in
 * the configurations people deploy) and probes it; each report must name
 * exactly the defects below and match probe/report.schema.json; and the
 * page the script writes from those reports must be the committed one,
 * byte for byte, so the page cannot drift from what the probes find.
 * Slow (make check-slow); skipped, saying so, without the listeners.
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbt.h"
#include "proc.h"

/* Each setup's slug (scripts/listeners-table's) and the defects its probe
 * must find, as the report lists them. */
static const struct {
  const char *slug;
  const char *defects;
} listeners[] = {
    {"squid", "body-less-forward"},
    {"squid-pass-through", ""},
    {"nginx-keepalive", "mixes-identities"},
    {"nginx-no-keepalive", "handshake-split"},
    {"apache-basic", ""},
    {"apache-pool", "mixes-identities"},
    {"apache-no-reuse", "handshake-split"},
    {"haproxy-safe", ""},
    {"haproxy-always", ""},
    {"haproxy-server-close", "handshake-split"},
};

/* The tools the setups need, and how to get them. */
static const struct {
  const char *path, *how;
} tools[] = {
    {"/usr/sbin/squid", "apt-get install squid"},
    {"/usr/bin/ntlm_auth", "apt-get install winbind"},
    {"/usr/sbin/nginx", "apt-get install nginx"},
    {"/usr/sbin/apache2", "apt-get install apache2"},
    {"/usr/bin/htpasswd", "apt-get install apache2-utils"},
    {"/usr/sbin/haproxy", "apt-get install haproxy"},
};

static bool have_tools(void)
{
  size_t i;

  for(i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
    if(!proc_have(tools[i].path))
      return false;
  return true;
}

/* Has python3-jsonschema check the report at path. */
static void assert_schema(const char *path)
{
  char *const argv[] = {"/usr/bin/python3",
                        "-c",
                        "import json, sys, jsonschema\n"
                        "jsonschema.validate(json.load(open(sys.argv[2])), "
                        "json.load(open(sys.argv[1])))",
                        SOURCE_DIR "/probe/report.schema.json",
                        (char *)path,
                        NULL};
  struct proc_out p;

  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "%s does not match the schema: %s", path,
                p.err.data);
  proc_free(&p);
}

/* The report's "defects" joined by commas. */
static void defects_of(const json_t *doc, char *out, size_t len)
{
  const json_t *list = json_object_get(doc, "defects");
  size_t i, at = 0;

  out[0] = '\0';
  for(i = 0; i < json_array_size(list) && at < len; i++)
    at += (size_t)snprintf(out + at, len - at, "%s%s", i ? "," : "",
                           json_string_value(json_array_get(list, i)));
}

START_TEST(matrix_is_what_the_probes_find)
{
  char dir[256], path[320];
  char *const list[] = {SOURCE_DIR "/scripts/listeners-table", "--list", NULL};
  char *const run[] = {SOURCE_DIR "/scripts/listeners-table", "--run",
                       KBSIM_BIN, dir, NULL};
  char *const write[] = {SOURCE_DIR "/scripts/listeners-table", dir, NULL};
  struct proc_out p;
  char *page;
  size_t i;

  if(!have_tools())
    return; /* skipped; main says so */
  /* The script's setups are this test's. */
  proc_run(list, &p);
  ck_assert_int_eq(p.status, 0);
  for(i = 0; i < sizeof(listeners) / sizeof(listeners[0]); i++) {
    char want[128];
    snprintf(want, sizeof(want), "%s\t", listeners[i].slug);
    ck_assert_msg(strstr(p.out.data, want) != NULL, "no setup %s in:\n%s",
                  listeners[i].slug, p.out.data);
  }
  proc_free(&p);

  proc_tmpdir("kbsim-listeners", dir, sizeof(dir));
  proc_run(run, &p);
  ck_assert_msg(p.status == 0, "listeners-table --run: %s", p.err.data);
  proc_free(&p);
  for(i = 0; i < sizeof(listeners) / sizeof(listeners[0]); i++) {
    json_t *doc;
    char found[256];

    snprintf(path, sizeof(path), "%s/%s.json", dir, listeners[i].slug);
    doc = json_load_file(path, 0, NULL);
    ck_assert_msg(doc != NULL, "no report for %s", listeners[i].slug);
    defects_of(doc, found, sizeof(found));
    ck_assert_msg(!strcmp(found, listeners[i].defects),
                  "%s: defects [%s], not [%s]", listeners[i].slug, found,
                  listeners[i].defects);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "exit_code")),
                     listeners[i].defects[0] ? 1 : 0);
    json_decref(doc);
    assert_schema(path);
  }

  proc_run(write, &p);
  ck_assert_msg(p.status == 0, "listeners-table: %s", p.err.data);
  page = proc_slurp(SOURCE_DIR "/docs/listeners.md", NULL);
  ck_assert_ptr_nonnull(page);
  ck_assert_msg(!strcmp(page, p.out.data),
                "docs/listeners.md is not what the probes find now; write "
                "it again: scripts/listeners-table --run build/bin/kbsim DIR "
                "&& scripts/listeners-table DIR > docs/listeners.md\n"
                "now:\n%s",
                p.out.data);
  free(page);
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("listeners");
  TCase *t = tcase_create("real listeners");
  bool skipped = false;
  size_t i;
  int failed;

  tcase_set_timeout(t, 120);
  tcase_set_tags(t, KBT_SLOW);
  tcase_add_test(t, matrix_is_what_the_probes_find);
  suite_add_tcase(s, t);
  failed = kbt_run(s);
  for(i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
    skipped |= proc_skip_unless(tools[i].path, "matrix_is_what_the_probes_find",
                                tools[i].how);
  return proc_suite_exit(failed, skipped);
}
