/*
 * test_artefacts.c - what `kbsim run` hands to CI: the JSON report v2
 * (its content, and docs/report.schema.json judged by Debian's
 * python3-jsonschema on every catalogue scenario, the flag form and
 * `--json -`, refusing corrupted reports), evidence file names that never
 * collide, every file checked before anything runs (exit 3), and `-` as
 * standard output for every evidence flag.
 */
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"

#define SCHEMA SOURCE_DIR "/docs/report.schema.json"
#define MAX_ARGS 96

static char tmpdir[256];

static json_t *load(const char *path)
{
  json_error_t jerr;
  json_t *root = json_load_file(path, 0, &jerr);

  ck_assert_msg(root != NULL, "%s is not JSON: %s", path, jerr.text);
  return root;
}

static json_t *get(json_t *obj, const char *key)
{
  json_t *v = json_object_get(obj, key);

  ck_assert_msg(v != NULL, "JSON report lacks \"%s\"", key);
  return v;
}

static const char *str(json_t *obj, const char *key)
{
  json_t *v = get(obj, key);

  ck_assert_msg(json_is_string(v), "\"%s\" is not a string", key);
  return json_string_value(v);
}

/* The flag form's report: v2 with its stamp, the unnamed scenario, one
 * member and its policy, the verdict and class, and the member that
 * served every exchange. */
START_TEST(json_v2_flag_form)
{
  char path[512];
  const char *args[] = {
      "run",    "--policy", "per-connection", "--seed", "3", "--clients", "2",
      "--json", path,       "--posts",        "2",      NULL};
  struct proc_out p;
  json_t *root, *stamp, *argv, *members, *ex;
  size_t i;

  proc_tmpdir("kbsim-artefacts", tmpdir, sizeof(tmpdir));
  snprintf(path, sizeof(path), "%s/run.json", tmpdir);
  proc_kbsim(&p, args);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  proc_free(&p);
  root = load(path);
  ck_assert_int_eq(json_integer_value(get(root, "version")), 2);
  ck_assert_str_eq(str(root, "kind"), "run");
  stamp = get(root, "stamp");
  ck_assert(strlen(str(stamp, "kbsim")) > 0);
  ck_assert(strlen(str(stamp, "commit")) > 0);
  ck_assert_uint_eq(strlen(str(stamp, "written")), 24);
  /* The command line as typed, though getopt permuted it. */
  argv = get(stamp, "argv");
  ck_assert_uint_eq(json_array_size(argv), 12);
  for(i = 1; i < 12; i++)
    ck_assert_str_eq(json_string_value(json_array_get(argv, i)), args[i - 1]);
  ck_assert_str_eq(str(get(root, "scenario"), "name"), "run");
  ck_assert(json_is_null(get(get(root, "scenario"), "file")));
  members = get(root, "members");
  ck_assert_uint_eq(json_array_size(members), 1);
  ck_assert_str_eq(str(json_array_get(members, 0), "name"), "ISA01");
  ck_assert_str_eq(str(json_array_get(members, 0), "patch"), "rtm");
  ck_assert_str_eq(str(json_array_get(members, 0), "policy"), "per-connection");
  ck_assert(json_is_false(get(json_array_get(members, 0), "script")));
  ck_assert_ptr_null(json_object_get(root, "policy"));
  ck_assert_int_eq(json_integer_value(get(root, "seed")), 3);
  ck_assert_str_eq(str(root, "expected"), "none");
  ck_assert_str_eq(str(root, "got"), "error");
  ck_assert_str_eq(str(root, "verdict"), "pass");
  ck_assert_str_eq(str(root, "outcome_class"), "server-error");
  ex = get(root, "exchanges");
  ck_assert_uint_eq(json_array_size(ex), 16);
  for(i = 0; i < json_array_size(ex); i++)
    ck_assert_str_eq(str(json_array_get(ex, i), "member"), "ISA01");
  json_decref(root);
  proc_rmdir(tmpdir);
}
END_TEST

/* The half-patched array: both members with their own policy, and each
 * exchange names the member that served it - every 500 is ISA02's, the
 * unpatched one, and the clients it served are the ones who saw the
 * error. The scenario's text is the file's. */
START_TEST(json_v2_names_the_serving_member)
{
  char path[512];
  const char *ini = SCENARIOS_DIR "/half-patched-array.ini";
  const char *args[] = {"run", ini, "--json", path, NULL};
  struct proc_out p;
  json_t *root, *members, *ex, *v, *sessions;
  char *text;
  size_t i, isa01 = 0, isa02 = 0, fivehundreds = 0;
  bool on_isa02[8] = {false};

  proc_tmpdir("kbsim-artefacts", tmpdir, sizeof(tmpdir));
  snprintf(path, sizeof(path), "%s/a.json", tmpdir);
  proc_kbsim(&p, args);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  proc_free(&p);
  root = load(path);
  ck_assert_str_eq(str(get(root, "scenario"), "name"), "half-patched-array");
  ck_assert_str_eq(str(get(root, "scenario"), "file"), ini);
  /* The file's text, its passwords removed: no report carries one. */
  text = proc_slurp(ini, NULL);
  ck_assert_ptr_nonnull(strstr(text, "= Passw0rd!\n"));
  ck_assert_ptr_nonnull(strstr(text, "= B0b-secret\n"));
  {
    char want[4096], *at;
    size_t o = 0;
    for(at = text; *at && o < sizeof(want) - 64;) {
      const char *pw = !strncmp(at, "Passw0rd!", 9)     ? "Passw0rd!"
                       : !strncmp(at, "B0b-secret", 10) ? "B0b-secret"
                                                        : NULL;
      if(pw) {
        o += (size_t)snprintf(want + o, sizeof(want) - o, "%s",
                              "(password removed by kbsim)");
        at += strlen(pw);
      }
      else
        want[o++] = *at++;
    }
    want[o] = '\0';
    ck_assert_str_eq(str(get(root, "scenario"), "text"), want);
  }
  free(text);
  text = proc_slurp(path, NULL);
  ck_assert_ptr_null(strstr(text, "Passw0rd!"));
  ck_assert_ptr_null(strstr(text, "B0b-secret"));
  free(text);
  ck_assert_str_eq(str(root, "expected"), "error");
  ck_assert_str_eq(str(root, "verdict"), "pass");
  members = get(root, "members");
  ck_assert_uint_eq(json_array_size(members), 2);
  ck_assert_str_eq(str(json_array_get(members, 0), "policy"), "per-request");
  ck_assert_str_eq(str(json_array_get(members, 0), "patch"), "rtm+hotfix");
  ck_assert_str_eq(str(json_array_get(members, 1), "policy"), "per-connection");
  ex = get(root, "exchanges");
  json_array_foreach(ex, i, v)
  {
    const char *m = str(v, "member");
    unsigned client = 0;

    ck_assert_int_eq(sscanf(str(v, "connection"), "client %u", &client), 1);
    ck_assert_uint_lt(client, 8);
    if(!strcmp(m, "ISA01"))
      isa01++;
    else {
      ck_assert_str_eq(m, "ISA02");
      isa02++;
      on_isa02[client] = true;
    }
    if(json_integer_value(get(v, "status")) == 500) {
      ck_assert_str_eq(m, "ISA02");
      fivehundreds++;
    }
  }
  ck_assert_uint_gt(isa01, 0);
  ck_assert_uint_gt(isa02, 0);
  ck_assert_uint_eq(fivehundreds, 8); /* 4 empty POSTs, on both hops */
  sessions = get(root, "sessions");
  json_array_foreach(sessions, i, v)
  {
    json_int_t id = json_integer_value(get(v, "id"));
    bool saw = json_array_size(get(get(v, "view"), "notifications")) > 0;
    ck_assert_msg(saw == on_isa02[id], "client %d: saw %d, on ISA02 %d",
                  (int)id, saw, on_isa02[id]);
  }
  json_decref(root);
  proc_rmdir(tmpdir);
}
END_TEST

/* Writes root with one change made by edit to path. */
static void write_edited(json_t *root, void (*edit)(json_t *), const char *path)
{
  json_t *copy = json_deep_copy(root);

  edit(copy);
  ck_assert_int_eq(json_dump_file(copy, path, JSON_INDENT(1)), 0);
  json_decref(copy);
}

static void edit_array_policy(json_t *r)
{
  json_object_set_new(json_array_get(json_object_get(r, "members"), 0),
                      "policy", json_string("array"));
}

static void edit_no_version(json_t *r)
{
  json_object_del(r, "version");
}

static void edit_v1(json_t *r)
{
  json_object_set_new(r, "version", json_integer(1));
}

static void edit_class(json_t *r)
{
  json_object_set_new(r, "outcome_class", json_string("bug"));
}

static void edit_extra(json_t *r)
{
  json_object_set_new(r, "policy", json_string("per-connection"));
}

static void edit_no_member(json_t *r)
{
  json_object_del(json_array_get(json_object_get(r, "exchanges"), 0), "member");
}

static void edit_no_argv(json_t *r)
{
  json_object_del(json_object_get(r, "stamp"), "argv");
}

static void edit_verdict(json_t *r)
{
  json_object_set_new(r, "verdict", json_true());
}

static void edit_no_kind(json_t *r)
{
  json_object_del(r, "kind");
}

static void edit_kind_sweep(json_t *r)
{
  json_object_set_new(r, "kind", json_string("sweep"));
}

static json_t *first_point(json_t *r)
{
  return json_array_get(json_object_get(r, "points"), 0);
}

static void edit_sweep_interval(json_t *r)
{
  json_array_set_new(json_object_get(first_point(r), "interval"), 1,
                     json_real(1.5));
}

static void edit_sweep_seed(json_t *r)
{
  json_object_set_new(
      json_array_get(json_object_get(first_point(r), "per_seed"), 0), "class",
      json_string("clean"));
}

static void edit_sweep_rate(json_t *r)
{
  json_object_del(first_point(r), "rate");
}

/* python3-jsonschema accepts the report of every catalogue scenario (one
 * run, one file each), of the flag form and of `--json -`, and refuses
 * each corruption of a real one. */
START_TEST(schema_judges_every_report)
{
  static void (*const edits[])(json_t *) = {
      edit_array_policy, edit_no_version, edit_v1,      edit_class,
      edit_extra,        edit_no_member,  edit_no_argv, edit_verdict,
      edit_no_kind,      edit_kind_sweep};
  static void (*const sweep_edits[])(json_t *) = {
      edit_sweep_interval, edit_sweep_seed, edit_sweep_rate, edit_no_version,
      edit_no_kind};
  enum {
    NEDITS = sizeof(edits) / sizeof(edits[0]),
    NSWEEP_EDITS = sizeof(sweep_edits) / sizeof(sweep_edits[0])
  };
  char bad[NEDITS + NSWEEP_EDITS][320];
  struct dirent **list;
  const char *args[MAX_ARGS];
  const char *docs[64 + NEDITS + NSWEEP_EDITS];
  char paths[64][300], base[300], flag[300], dash[300];
  const char *flag_args[] = {"run", "--policy", "per-request", "--clients",
                             "2",   "--json",   flag,          NULL};
  const char *dash_args[] = {"run", SCENARIOS_DIR "/wrong-password.ini",
                             "--json", "-", NULL};
  char sweep[300], refused[300];
  const char *sweep_args[] = {
      "sweep", "half-patched-array", "--seeds", "1..4", "--json", sweep, NULL};
  struct proc_out p;
  json_t *root;
  int n, i, nargs = 0, ndocs = 0;
  size_t k;
  FILE *f;

  if(!proc_have(PROC_JSONSCHEMA))
    return; /* skipped; main says so */
  proc_tmpdir("kbsim-artefacts", tmpdir, sizeof(tmpdir));
  snprintf(base, sizeof(base), "%s/c.json", tmpdir);
  snprintf(flag, sizeof(flag), "%s/flag.json", tmpdir);
  snprintf(dash, sizeof(dash), "%s/dash.json", tmpdir);
  args[nargs++] = "run";
  n = scandir(SCENARIOS_DIR, &list, NULL, alphasort);
  ck_assert_int_gt(n, 0);
  for(i = 0; i < n; i++) {
    size_t len = strlen(list[i]->d_name);
    char *ini = malloc(600);

    ck_assert_ptr_nonnull(ini);
    snprintf(ini, 600, "%s/%s", SCENARIOS_DIR, list[i]->d_name);
    /* A [kerberos] file without MIT's KDC is left out (main says so). */
    if(len > 4 && !strcmp(list[i]->d_name + len - 4, ".ini") && ndocs < 56 &&
       proc_scenario_runs(ini)) {
      args[nargs++] = ini;
      /* Every catalogue file's name is its [scenario] name. */
      snprintf(paths[ndocs], sizeof(paths[0]), "%s/c-%.*s.json", tmpdir,
               (int)(len - 4), list[i]->d_name);
      docs[ndocs] = paths[ndocs];
      ndocs++;
    }
    else
      free(ini);
    free(list[i]);
  }
  free(list);
  ck_assert_int_ge(ndocs, 13);
  args[nargs++] = "--json";
  args[nargs++] = base;
  args[nargs] = NULL;
  proc_kbsim(&p, args);
  ck_assert_msg(p.status == 0, "kbsim run exited %d: %.400s", p.status,
                p.err.data);
  proc_free(&p);
  for(i = 1; i < nargs - 2; i++)
    free((char *)args[i]);
  proc_kbsim(&p, flag_args);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  proc_free(&p);
  docs[ndocs++] = flag;
  proc_kbsim(&p, dash_args);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  f = fopen(dash, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(p.out.data, 1, p.out.len, f), p.out.len);
  ck_assert_int_eq(fclose(f), 0);
  proc_free(&p);
  docs[ndocs++] = dash;
  /* A client with nothing to talk to: the harness failed, and its
   * report says so - no verdict, never the bug. */
  {
    const char *client_args[] = {"client",
                                 "--url",
                                 "http://127.0.0.1:1/",
                                 "--user",
                                 "FABRIKAM\\alice:Passw0rd!",
                                 "--json",
                                 refused,
                                 NULL};
    json_t *r;
    snprintf(refused, sizeof(refused), "%s/refused.json", tmpdir);
    proc_kbsim(&p, client_args);
    ck_assert_msg(p.status == 3, "client exited %d: %.400s", p.status,
                  p.err.data);
    proc_free(&p);
    r = load(refused);
    ck_assert_str_eq(str(r, "outcome_class"), "infrastructure");
    ck_assert_str_eq(str(r, "got"), "unknown");
    ck_assert_str_eq(str(r, "verdict"), "error");
    ck_assert_str_eq(
        str(json_array_get(get(r, "sessions"), 0), "outcome_class"),
        "infrastructure");
    json_decref(r);
    docs[ndocs++] = refused;
  }
  /* sweep --json, described by the same schema's $defs/sweep. */
  snprintf(sweep, sizeof(sweep), "%s/sweep.json", tmpdir);
  proc_kbsim(&p, sweep_args);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  proc_free(&p);
  docs[ndocs++] = sweep;

  /* The judge can fail: each corruption of a real report is refused. The
   * reports and their corruptions are judged in one python3-jsonschema
   * process, file by file. */
  root = load(paths[0]);
  for(k = 0; k < NEDITS; k++) {
    snprintf(bad[k], sizeof(bad[0]), "%s/bad-%zu.json", tmpdir, k);
    write_edited(root, edits[k], bad[k]);
  }
  json_decref(root);
  root = load(sweep);
  ck_assert_str_eq(str(root, "kind"), "sweep");
  for(k = 0; k < NSWEEP_EDITS; k++) {
    snprintf(bad[NEDITS + k], sizeof(bad[0]), "%s/bad-sweep-%zu.json", tmpdir,
             k);
    write_edited(root, sweep_edits[k], bad[NEDITS + k]);
  }
  json_decref(root);
  for(k = 0; k < NEDITS + NSWEEP_EDITS; k++)
    docs[ndocs + k] = bad[k];
  docs[ndocs + k] = NULL;
  ck_assert_int_eq(proc_schema_each(SCHEMA, docs, &p), NEDITS + NSWEEP_EDITS);
  for(i = 0; i < ndocs; i++) {
    char line[400];
    snprintf(line, sizeof(line), "valid %.320s", docs[i]);
    ck_assert_msg(proc_count_lines(p.out.data, line) == 1, "%s: %.800s",
                  docs[i], p.out.data);
  }
  for(k = 0; k < NEDITS + NSWEEP_EDITS; k++) {
    char line[400];
    snprintf(line, sizeof(line), "invalid %.320s: ", bad[k]);
    ck_assert_msg(strstr(p.out.data, line), "corruption %s was accepted: %s",
                  bad[k], p.out.data);
    snprintf(line, sizeof(line), "valid %.320s", bad[k]);
    ck_assert_msg(proc_count_lines(p.out.data, line) == 0,
                  "a corruption was judged valid: %s", p.out.data);
  }
  proc_free(&p);
  proc_rmdir(tmpdir);
}
END_TEST

/* Two scenarios with the same name in one run get bug, bug-2: neither
 * overwrites the other, and run says where it wrote each file. */
START_TEST(evidence_names_never_collide)
{
  static const char *const kinds[] = {"txt", "json"};
  char txt[300], json[300], line[600];
  const char *args[] = {"run",
                        SCENARIOS_DIR "/bug.ini",
                        SCENARIOS_DIR "/fix.ini",
                        SCENARIOS_DIR "/bug.ini",
                        "--transcript",
                        txt,
                        "--json",
                        json,
                        NULL};
  static const char *const labels[] = {"bug", "fix", "bug-2"};
  struct proc_out p;
  struct stat st;
  size_t i, k;
  int files = 0;

  proc_tmpdir("kbsim-artefacts", tmpdir, sizeof(tmpdir));
  snprintf(txt, sizeof(txt), "%s/e.txt", tmpdir);
  snprintf(json, sizeof(json), "%s/e.json", tmpdir);
  proc_kbsim(&p, args);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  for(i = 0; i < 3; i++)
    for(k = 0; k < 2; k++) {
      char path[400];
      snprintf(path, sizeof(path), "%s/e-%s.%s", tmpdir, labels[i], kinds[k]);
      ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "%s missing", path);
      snprintf(line, sizeof(line), "evidence: wrote %s", path);
      ck_assert_msg(proc_count_lines(p.out.data, line) == 1,
                    "no '%s' in:\n%.400s", line, p.out.data);
    }
  /* Nothing else was written, and nothing else said so. */
  {
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    ck_assert_ptr_nonnull(d);
    while((e = readdir(d)) != NULL)
      files += e->d_name[0] != '.';
    closedir(d);
  }
  ck_assert_int_eq(files, 6);
  {
    const char *s = p.out.data;
    int said = 0;
    while((s = strstr(s, "evidence: wrote ")) != NULL) {
      said++;
      s++;
    }
    ck_assert_int_eq(said, 6);
  }
  proc_free(&p);
  {
    /* Both bug reports are bug's, each its own. */
    char a[400], b[400];
    json_t *ra, *rb;
    snprintf(a, sizeof(a), "%s/e-bug.json", tmpdir);
    snprintf(b, sizeof(b), "%s/e-bug-2.json", tmpdir);
    ra = load(a);
    rb = load(b);
    ck_assert_str_eq(str(get(ra, "scenario"), "name"), "bug");
    ck_assert_str_eq(str(get(rb, "scenario"), "name"), "bug");
    json_object_del(ra, "stamp");
    json_object_del(rb, "stamp");
    ck_assert(json_equal(ra, rb));
    json_decref(ra);
    json_decref(rb);
  }
  proc_rmdir(tmpdir);
}
END_TEST

/* Asserts p is the harness refusing to start: exit 3, nothing on stdout
 * (no session ran, no POST was printed), one line on stderr naming
 * flag and path. */
static void assert_refused_at_once(const struct proc_out *p, const char *flag,
                                   const char *path)
{
  char want[600];

  snprintf(want, sizeof(want), "kbsim: %s %s: cannot write: ", flag, path);
  ck_assert_msg(p->status == 3, "exit %d: %.300s%.300s", p->status, p->out.data,
                p->err.data);
  ck_assert_msg(p->out.len == 0, "stdout: %.400s", p->out.data);
  ck_assert_msg(!strncmp(p->err.data, want, strlen(want)), "stderr: %.400s",
                p->err.data);
  ck_assert_msg(strchr(p->err.data, '\n') == p->err.data + p->err.len - 1,
                "more than one line: %.400s", p->err.data);
}

/* An unwritable evidence path fails before any session runs, exit 3, for
 * every flag, in the flag form and with files - also when it is only the
 * last scenario's file that cannot be written. Nothing is left behind. */
START_TEST(unwritable_evidence_fails_first)
{
  static const char *const flags[] = {"--json", "--transcript", "--pcap",
                                      "--html"};
  char blocked[300], ok[300], okfile[320], dir[300];
  struct proc_out p;
  struct stat st;
  size_t i;

  proc_tmpdir("kbsim-artefacts", tmpdir, sizeof(tmpdir));
  for(i = 0; i < 4; i++) {
    const char *files[] = {"run", "bug", flags[i], "/nonexistent/x.json", NULL};
    const char *flagform[] = {
        "run", "--policy", "per-connection", flags[i], "/nonexistent/x.json",
        NULL};
    proc_kbsim(&p, files);
    assert_refused_at_once(&p, flags[i], "/nonexistent/x.json");
    proc_free(&p);
    proc_kbsim(&p, flagform);
    assert_refused_at_once(&p, flags[i], "/nonexistent/x.json");
    proc_free(&p);
  }
  /* client and serve check theirs before connecting or listening. */
  {
    const char *client[] = {"client",
                            "--url",
                            "http://127.0.0.1:1/",
                            "--user",
                            "FABRIKAM\\alice:x",
                            "--json",
                            "/nonexistent/x.json",
                            NULL};
    const char *serve[] = {"serve", "bug", "--pcap", "/nonexistent/x.pcap",
                           NULL};
    proc_kbsim(&p, client);
    assert_refused_at_once(&p, "--json", "/nonexistent/x.json");
    proc_free(&p);
    proc_kbsim(&p, serve);
    assert_refused_at_once(&p, "--pcap", "/nonexistent/x.pcap");
    proc_free(&p);
  }
  /* The second scenario's JSON would be a directory: refused before the
   * first scenario runs, and the first one's probe leaves no file. */
  snprintf(ok, sizeof(ok), "%s/r.json", tmpdir);
  snprintf(okfile, sizeof(okfile), "%s/r-bug.json", tmpdir);
  snprintf(dir, sizeof(dir), "%s/r-fix.json", tmpdir);
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  {
    const char *args[] = {"run", "bug", "fix", "--json", ok, NULL};
    proc_kbsim(&p, args);
    assert_refused_at_once(&p, "--json", dir);
    proc_free(&p);
  }
  ck_assert_int_ne(stat(okfile, &st), 0);
  /* A read-only file is refused; root may write anyway, so only when the
   * refusal is real. */
  snprintf(blocked, sizeof(blocked), "%s/ro.json", tmpdir);
  {
    FILE *f = fopen(blocked, "w");
    ck_assert_ptr_nonnull(f);
    fputs("keep\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(blocked, 0400), 0);
    if(access(blocked, W_OK) != 0) {
      const char *args[] = {"run", "bug", "--json", blocked, NULL};
      proc_kbsim(&p, args);
      assert_refused_at_once(&p, "--json", blocked);
      proc_free(&p);
    }
    /* The probe of a file that is there does not truncate it. */
    ck_assert_int_eq(chmod(blocked, 0600), 0);
    {
      const char *args[] = {"run",   "bug",    "--json",
                            blocked, "--pcap", "/nonexistent/x.pcap",
                            NULL};
      char *kept;
      proc_kbsim(&p, args);
      assert_refused_at_once(&p, "--pcap", "/nonexistent/x.pcap");
      proc_free(&p);
      kept = proc_slurp(blocked, NULL);
      ck_assert_str_eq(kept, "keep\n");
      free(kept);
    }
  }
  proc_rmdir(tmpdir);
}
END_TEST

/* `-` is standard output for every evidence flag: the file alone on
 * stdout, kbsim's own lines on stderr; two `-`, or `-` for several
 * scenarios' files, are usage errors. */
START_TEST(dash_is_standard_output)
{
  static const char pcap_magic[4] = {'\xd4', '\xc3', '\xb2', '\xa1'};
  const char *json[] = {"run", "bug", "--json", "-", NULL};
  const char *txt[] = {"run", "bug", "--transcript", "-", NULL};
  const char *pcap[] = {"run", "bug", "--pcap", "-", NULL};
  const char *html[] = {"run", "bug", "--html", "-", NULL};
  const char *flagform[] = {"run",    "--policy", "per-request",
                            "--json", "-",        NULL};
  const char *two[] = {"run", "bug", "--json", "-", "--pcap", "-", NULL};
  const char *several[] = {"run", "bug", "fix", "--transcript", "-", NULL};
  struct proc_out p;
  json_error_t jerr;
  json_t *root;
  const char *why;

  proc_kbsim(&p, json);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  root = json_loads(p.out.data, 0, &jerr);
  ck_assert_msg(root != NULL, "stdout is not one JSON text: %s", jerr.text);
  ck_assert_str_eq(str(get(root, "scenario"), "name"), "bug");
  json_decref(root);
  ck_assert_ptr_nonnull(strstr(p.err.data, "PASS bug"));
  ck_assert_ptr_nonnull(strstr(p.err.data, "evidence: wrote standard output"));
  proc_free(&p);

  proc_kbsim(&p, flagform);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  root = json_loads(p.out.data, 0, &jerr);
  ck_assert_msg(root != NULL, "stdout is not one JSON text: %s", jerr.text);
  ck_assert_str_eq(str(json_array_get(get(root, "members"), 0), "policy"),
                   "per-request");
  json_decref(root);
  ck_assert_ptr_nonnull(strstr(p.err.data, "summary: "));
  proc_free(&p);

  proc_kbsim(&p, txt);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  ck_assert_str_eq(strstr(p.out.data, "; kbsim transcript: "), p.out.data);
  ck_assert_ptr_null(strstr(p.out.data, "PASS"));
  proc_free(&p);

  proc_kbsim(&p, pcap);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  ck_assert_uint_gt(p.out.len, 1000);
  ck_assert_int_eq(memcmp(p.out.data, pcap_magic, 4), 0);
  proc_free(&p);

  proc_kbsim(&p, html);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  ck_assert_str_eq(strstr(p.out.data, "<!DOCTYPE html>"), p.out.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "</html>\n"));
  proc_free(&p);

  {
    /* The demo's page too, its narration on stderr. */
    const char *demo[] = {"demo", "--posts", "1", "--html", "-", NULL};
    proc_kbsim(&p, demo);
    /* 0 or 1 is the demo's verdict; the page is what is judged here. */
    ck_assert_msg(p.status == 0 || p.status == 1, "%.400s", p.err.data);
    ck_assert_str_eq(strstr(p.out.data, "<!DOCTYPE html>"), p.out.data);
    ck_assert_ptr_nonnull(strstr(p.err.data, "KB 942638"));
    proc_free(&p);
  }

  proc_kbsim(&p, two);
  why = proc_usage_error(&p);
  ck_assert_msg(why == NULL, "%.600s", why);
  proc_free(&p);
  proc_kbsim(&p, several);
  why = proc_usage_error(&p);
  ck_assert_msg(why == NULL, "%.600s", why);
  proc_free(&p);
}
END_TEST

/* `--pcap -` on a pipe gives a capture tshark reads (tagged slow: tshark's
 * cost): bug's 4 clients x 2 EWS POSTs, a 500 on each hop. */
START_TEST(pcap_on_stdout_reads_in_tshark)
{
  const char *pcap[] = {"run", "bug", "--pcap", "-", NULL};
  char path[300];
  char *count[] = {"/usr/bin/tshark",           "-n", "-r", path, "-Y",
                   "http.response.code == 500", NULL};
  struct proc_out p, t;
  FILE *f;

  if(!proc_have("/usr/bin/tshark"))
    return; /* nothing to read it with (dash_is_standard_output checks
               the capture's magic) */
  proc_kbsim(&p, pcap);
  ck_assert_msg(p.status == 0, "%.400s", p.err.data);
  proc_tmpdir("kbsim-artefacts", tmpdir, sizeof(tmpdir));
  snprintf(path, sizeof(path), "%s/s.pcap", tmpdir);
  f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(p.out.data, 1, p.out.len, f), p.out.len);
  ck_assert_int_eq(fclose(f), 0);
  proc_free(&p);
  proc_run(count, &t);
  ck_assert_msg(t.status == 0, "tshark: %s", t.err.data);
  {
    int lines = 0;
    const char *s;
    for(s = t.out.data; *s; s++)
      lines += *s == '\n';
    ck_assert_int_eq(lines, 16);
  }
  proc_free(&t);
  proc_rmdir(tmpdir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("artefacts");
  TCase *tc = tcase_create("artefacts");
  TCase *slow;
  int failed;
  bool skipped;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, json_v2_flag_form);
  tcase_add_test(tc, json_v2_names_the_serving_member);
  tcase_add_test(tc, evidence_names_never_collide);
  tcase_add_test(tc, unwritable_evidence_fails_first);
  tcase_add_test(tc, dash_is_standard_output);
  suite_add_tcase(s, tc);
  /* python3-jsonschema on every catalogue scenario's report. */
  slow = tcase_create("slow");
  tcase_set_timeout(slow, 60);
  tcase_set_tags(slow, KBT_SLOW);
  tcase_add_test(slow, schema_judges_every_report);
  suite_add_tcase(s, slow);
  tc = tcase_create("tshark");
  tcase_set_timeout(tc, 60);
  tcase_set_tags(tc, KBT_SLOW);
  tcase_add_test(tc, pcap_on_stdout_reads_in_tshark);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  skipped = proc_skip_unless(PROC_JSONSCHEMA, "schema_judges_every_report",
                             "apt-get install python3-jsonschema");
  skipped |= proc_skip_unless(PROC_KRB5KDC,
                              "schema_judges_every_report: kerberos-inside",
                              "apt-get install krb5-kdc");
  return proc_suite_exit(failed, skipped);
}
