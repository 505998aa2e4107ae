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
  proc_assert_schema(SOURCE_DIR "/probe/report.schema.json",
                     (const char *const[]){path, NULL});
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

/* The value after "prefix" on a line of text, up to the line's end, into
 * out; "" when no line starts with it. */
static void line_after(const char *text, const char *prefix, char *out,
                       size_t len)
{
  const char *at = text;

  out[0] = '\0';
  for(; at && *at; at = strchr(at, '\n'), at = at ? at + 1 : NULL)
    if(!strncmp(at, prefix, strlen(prefix))) {
      at += strlen(prefix);
      snprintf(out, len, "%.*s", (int)strcspn(at, "\n"), at);
      return;
    }
}

/* The requests Exchange has answered, from its status URL (curl). */
static long exchange_requests(const char *status_url)
{
  char *const argv[] = {"/usr/bin/curl", "-sf", (char *)status_url, NULL};
  struct proc_out p;
  json_t *doc;
  long n;

  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "curl %s: %s", status_url, p.err.data);
  doc = json_loads(p.out.data, 0, NULL);
  ck_assert_msg(doc != NULL, "%s answered %s", status_url, p.out.data);
  n = (long)json_integer_value(json_object_get(doc, "requests"));
  json_decref(doc);
  proc_free(&p);
  return n;
}

/* Samba's NTLM judges each client kind's: Squid (examples/squid) hands
 * every handshake to ntlm_auth and forwards a request to Exchange only
 * once ntlm_auth has accepted its type 3, so the requests Exchange counts
 * are the kind's sign-ins Samba verified. Squid forwards the body-less
 * re-authenticating POST (its probe's body-less-forward), so Communicator
 * and Internet Explorer see their error there too. A wrong password:
 * ntlm_auth refuses it and nothing reaches Exchange. Java is left out:
 * its kind closes the connection after a 401 to a request whose body it
 * held back (Expect), so through Squid, which answers without a 100, its
 * type 3 comes on a new connection; whether Apache HttpClient really does
 * that is not settled (see client/README.md). */
START_TEST(each_kind_signs_in_through_squid)
{
  static const struct {
    const char *kind;
    int exit;     /* kbsim client's */
    long reached; /* requests Exchange answered */
  } kinds[] = {
      {"communicator", 1, 2}, {"outlook", 0, 2}, {"one-shot", 0, 2},
      {"ie", 1, 3},           {"dotnet", 0, 2},
  };
  char *const start[] = {SOURCE_DIR "/examples/squid/start", KBSIM_BIN, NULL};
  char url[128], status[128], stop[512];
  struct proc_out p, s;
  long before;
  size_t i;

  if(!have_tools())
    return; /* skipped; main says so */
  proc_run(start, &s);
  ck_assert_msg(s.status == 0, "examples/squid/start: %s", s.err.data);
  line_after(s.out.data, "listener: ", url, sizeof(url));
  line_after(s.out.data, "exchange status: ", status, sizeof(status));
  line_after(s.out.data, "stop: ", stop, sizeof(stop));
  ck_assert_msg(url[0] && status[0] && stop[0], "%s", s.out.data);
  for(i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
    before = exchange_requests(status);
    PROC_KBSIM(&p, "client", "--url", url, "--kind", kinds[i].kind, "--user",
               "FABRIKAM\\alice:Passw0rd!", "--posts", "1");
    ck_assert_msg(p.status == kinds[i].exit, "%s through Squid: exit %d\n%s%s",
                  kinds[i].kind, p.status, p.out.data, p.err.data);
    ck_assert_ptr_null(strstr(p.out.data, "auth-failed"));
    proc_free(&p);
    ck_assert_int_eq(exchange_requests(status) - before, kinds[i].reached);
  }
  before = exchange_requests(status);
  PROC_KBSIM(&p, "client", "--url", url, "--user",
             "FABRIKAM\\alice:not-the-password", "--posts", "1");
  ck_assert_int_eq(p.status, 1);
  ck_assert_ptr_nonnull(strstr(p.out.data, "auth-failed"));
  proc_free(&p);
  ck_assert_int_eq(exchange_requests(status), before);
  {
    char *const argv[] = {"/bin/sh", "-c", stop, NULL};
    proc_run(argv, &p);
    ck_assert_msg(p.status == 0, "%s: %s", stop, p.err.data);
    proc_free(&p);
  }
  proc_free(&s);
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
  tcase_add_test(t, each_kind_signs_in_through_squid);
  suite_add_tcase(s, t);
  failed = kbt_run(s);
  for(i = 0; i < sizeof(tools) / sizeof(tools[0]); i++)
    skipped |= proc_skip_unless(tools[i].path,
                                "matrix_is_what_the_probes_find, "
                                "each_kind_signs_in_through_squid",
                                tools[i].how);
  return proc_suite_exit(failed, skipped);
}
