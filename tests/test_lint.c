/*
 * test_lint.c - scripts/lint's architecture checks: `layers` (includes
 * against the dependency order in scripts/layers) on this tree and on a
 * copy of it with violations planted, and `readmes` (each folder's
 * README.md lists its files) on a small tree built here, clean and then
 * planted.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kbt.h"
#include "proc.h"

#define LINT SOURCE_DIR "/scripts/lint"

/* Runs `scripts/lint CHECK ROOT` into *p. */
static void lint(const char *check, const char *root, struct proc_out *p)
{
  char *argv[] = {LINT, (char *)check, (char *)root, NULL};

  proc_run(argv, p);
}

/* Writes text to root/rel, making the folders on the way. */
static void put(const char *root, const char *rel, const char *text)
{
  char path[512];
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", root, rel);
  for(char *s = path + strlen(root) + 1; (s = strchr(s, '/')); s++) {
    *s = '\0';
    ck_assert_msg(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s",
                  path, strerror(errno));
    *s = '/';
  }
  f = fopen(path, "w");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  fputs(text, f);
  ck_assert_int_eq(fclose(f), 0);
}

/* Appends line (and a newline) to root/rel, which ends in a newline, and
 * returns its line number there. */
static int append(const char *root, const char *rel, const char *line)
{
  char path[512];
  size_t len;
  char *text;
  int n = 1;
  FILE *f;

  snprintf(path, sizeof(path), "%s/%s", root, rel);
  text = proc_slurp(path, &len);
  ck_assert_msg(len > 0 && text[len - 1] == '\n', "%s ends mid-line", path);
  for(size_t i = 0; i < len; i++)
    n += text[i] == '\n';
  free(text);
  f = fopen(path, "a");
  ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
  fprintf(f, "%s\n", line);
  ck_assert_int_eq(fclose(f), 0);
  return n;
}

/* What one planted include must make `lint layers` say. */
struct plant {
  const char *file;
  const char *include;
  const char *says; /* after "FILE:LINE: includes "INCLUDE"" */
};

/* Copies what the layers check reads of this tree's tracked files (the
 * C files, the CMakeLists.txt and scripts/layers) to dir, which is not a
 * git work tree: lint then reads every file there. */
static void copy_tree(const char *dir)
{
  char *argv[] = {"/bin/sh",
                  "-c",
                  "cd \"$1\" && git ls-files -z -- '*.c' '*.h' "
                  "'*CMakeLists.txt' scripts/layers | tar --null -T - -cf - | "
                  "tar -xf - -C \"$2\"",
                  "sh",
                  SOURCE_DIR,
                  (char *)dir,
                  NULL};
  struct proc_out p;

  proc_run(argv, &p);
  ck_assert_msg(p.status == 0, "copying the tree: %s", p.err.data);
  proc_free(&p);
}

START_TEST(layers_pass_on_this_tree)
{
  struct proc_out p;

  lint("layers", SOURCE_DIR, &p);
  ck_assert_msg(p.status == 0, "lint layers exited %d:\n%s%s", p.status,
                p.out.data, p.err.data);
  ck_assert_ptr_nonnull(strstr(p.out.data, "follow scripts/layers"));
  proc_free(&p);
}
END_TEST

/* Each rule broken once in a copy of the tree, in new files (and in
 * ntlm/ntlm.h, the public header of the one folder that includes nothing
 * of ours), in the order lint reports: by file, then line. A white-box
 * include of an internal header is not a violation. */
START_TEST(layers_name_file_line_and_rule)
{
  static const struct plant plants[] = {
      {"bench/planted.c", "proxy/proxy_int.h",
       ", an internal header: proxy/CMakeLists.txt's kbsim_public_headers"
       " does not list proxy_int.h (public)"},
      {"client/planted.c", "proxy/proxy_int.h",
       ", but client/ may include only client/ common/ ntlm/ (order)"},
      {"client/planted.c", "proxy.h",
       " by its bare name, but client/ has no proxy.h (bare)"},
      {"client/planted.c", "../common/kb_buf.h",
       ", but an include path names the folder, never .. (dotdot)"},
      {"ntlm/ntlm.h", "planted_int.h",
       ", an internal header, from a public one, which other folders reach"
       " without it (bare)"},
      {"ntlm/planted.c", "cli/cli.h",
       ", but ntlm/ may include nothing of ours (order)"},
      {"probe/planted.c", "proxy/proxy.h",
       ", but probe/ may include only probe/ client/ common/ ntlm/ (order)"},
      {"sim/planted.c", "tests/kbt.h",
       ", but sim/ may include only sim/ backend/ proxy/ client/ balancer/"
       " common/ ntlm/ (order)"},
  };
  char dir[256], path[512], line[256], want[4096] = "";
  struct proc_out p;

  proc_tmpdir("kbsim-lint", dir, sizeof(dir));
  copy_tree(dir);
  lint("layers", dir, &p);
  ck_assert_msg(p.status == 0, "the copy: %s%s", p.out.data, p.err.data);
  proc_free(&p);

  put(dir, "ntlm/planted_int.h",
      "/* internal: not in ntlm/CMakeLists.txt */\n");
  put(dir, "tests/planted.c",
      "/* white-box */\n#include \"proxy/proxy_int.h\"\n");
  for(size_t i = 0; i < sizeof(plants) / sizeof(plants[0]); i++) {
    const struct plant *pl = &plants[i];
    int n;

    snprintf(path, sizeof(path), "%s/%s", dir, pl->file);
    if(access(path, F_OK) != 0)
      put(dir, pl->file, "/* planted */\n");
    snprintf(line, sizeof(line), "#include \"%s\"", pl->include);
    n = append(dir, pl->file, line);
    snprintf(want + strlen(want), sizeof(want) - strlen(want),
             "%s:%d: includes \"%s\"%s\n", pl->file, n, pl->include, pl->says);
  }
  lint("layers", dir, &p);
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data, want);
  ck_assert_str_eq(p.err.data, "lint: 8 include(s) against scripts/layers\n");
  proc_free(&p);

  /* A table whose folder names one listed after it is refused. */
  append(dir, "scripts/layers", "early: late");
  append(dir, "scripts/layers", "late:");
  lint("layers", dir, &p);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "early/ may include late/, which "
                                           "has no line before it"));
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

/* A README's file list in every form the grammar has, and what is not
 * one: an option item, a code block, a table that is not of files. */
static void put_readme_tree(const char *dir)
{
  put(dir, "README.md", "# the root: not checked\n");
  put(dir, ".ci/run", "hidden: needs no README\n");
  put(dir, "alpha/README.md",
      "# alpha\n\n"
      "- `one.[ch]` — the first\n"
      "- `two.c`, `three.c` / `three.h` — two more\n"
      "  - `sub/` — a subfolder, in a nested item\n"
      "- `--flag`: an option, not a file\n\n"
      "```\n- `nope.c` — in a code block\n```\n");
  put(dir, "alpha/CMakeLists.txt", "# not listed\n");
  put(dir, "alpha/.gitignore", "hidden: not listed\n");
  put(dir, "alpha/one.c", "\n");
  put(dir, "alpha/one.h", "\n");
  put(dir, "alpha/two.c", "\n");
  put(dir, "alpha/three.c", "\n");
  put(dir, "alpha/three.h", "\n");
  put(dir, "alpha/sub/README.md",
      "| file | job |\n|------|-----|\n| `data.txt` | data |\n\n"
      "| check | what |\n|---|---|\n| `offer` | a check, not a file |\n");
  put(dir, "alpha/sub/data.txt", "1\n");
  put(dir, "beta/README.md", "- `b.c` — b\n");
  put(dir, "beta/b.c", "\n");
  put(dir, "fuzz/README.md", "- `corpus/` — saved inputs, no README\n");
  put(dir, "fuzz/corpus/ntlm/type1", "x\n");
}

START_TEST(readmes_list_their_folders_both_ways)
{
  char dir[256], path[512];
  struct proc_out p;

  proc_tmpdir("kbsim-lint", dir, sizeof(dir));
  put_readme_tree(dir);
  lint("readmes", dir, &p);
  ck_assert_msg(p.status == 0, "the clean tree: %s%s", p.out.data, p.err.data);
  ck_assert_str_eq(p.out.data, "lint: the READMEs of 4 folders list their "
                               "files\n");
  proc_free(&p);

  put(dir, "alpha/four.c", "\n");
  snprintf(path, sizeof(path), "%s/alpha/three.h", dir);
  ck_assert_int_eq(unlink(path), 0);
  put(dir, "beta/sub2/README.md", "- `z.txt` — z\n");
  put(dir, "beta/sub2/z.txt", "z\n");
  put(dir, "gamma/g.c", "\n");
  lint("readmes", dir, &p);
  ck_assert_int_eq(p.status, 1);
  ck_assert_str_eq(p.out.data,
                   "alpha/README.md: lists three.h, which does not exist\n"
                   "alpha/README.md: does not list four.c\n"
                   "beta/README.md: does not list sub2/\n"
                   "gamma/README.md: does not exist\n");
  ck_assert_str_eq(p.err.data, "lint: 4 difference(s) between READMEs and "
                               "their folders\n");
  proc_free(&p);
  proc_rmdir(dir);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("lint");
  TCase *tc = tcase_create("lint");
  int failed;

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, layers_pass_on_this_tree);
  tcase_add_test(tc, layers_name_file_line_and_rule);
  tcase_add_test(tc, readmes_list_their_folders_both_ways);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
