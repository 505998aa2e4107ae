/*
 * test_doctest.c - scripts/doctest, the runner of the docs' shell
 * examples, on a page of planted broken ones (tests/data/doctest-broken.md):
 * each failure named by its line and its reason, the good blocks passed,
 * the skip with a reason skipped, exit 1.
 */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kbt.h"
#include "proc.h"

#define DOCTEST SOURCE_DIR "/scripts/doctest"
#define PAGE SOURCE_DIR "/tests/data/doctest-broken.md"
#define YAMLLINT "/usr/bin/yamllint"

/* Asserts that out has the line want. */
static void has_line(const char *out, const char *want)
{
  ck_assert_msg(proc_count_lines(out, want) == 1, "no line '%s' in:\n%s", want,
                out);
}

/* The planted page: two blocks pass, one is skipped for its reason, five
 * fail, each with its line and why; exit 1. */
START_TEST(planted_examples_fail)
{
  char *argv[] = {DOCTEST, "--build", BUILD_DIR, PAGE, NULL};
  struct proc_out p;

  if(!proc_have(YAMLLINT))
    return; /* skipped; main says so */
  proc_run(argv, &p);
  ck_assert_msg(p.status == 1, "exit %d: %s%s", p.status, p.out.data,
                p.err.data);
  has_line(p.out.data, "ok      tests/data/doctest-broken.md:8");
  has_line(p.out.data,
           "FAIL    tests/data/doctest-broken.md:14: exit 2, expected 0");
  has_line(p.out.data, "FAIL    tests/data/doctest-broken.md:21: promised "
                       "but missing or empty: report.html");
  has_line(p.out.data, "ok      tests/data/doctest-broken.md:28");
  has_line(p.out.data, "FAIL    tests/data/doctest-broken.md:35: doctest "
                       "marker: skip: give the reason it cannot run");
  ck_assert_ptr_nonnull(strstr(p.out.data,
                               "FAIL    tests/data/doctest-broken.md:42: "
                               "doctest marker: 'file=report.html' is not an "
                               "option"));
  has_line(p.out.data, "skip    tests/data/doctest-broken.md:49: needs a "
                       "second machine");
  has_line(p.out.data, "FAIL    tests/data/doctest-broken.md:55: yamllint");
  ck_assert_ptr_nonnull(strstr(p.out.data, "duplication of key \"runs-on\""));
  has_line(p.out.data, "doctest: 2 passed, 5 failed, 1 skipped");
  proc_free(&p);
}
END_TEST

/* A build without kbsim is refused before any block runs (exit 2). */
START_TEST(needs_a_build)
{
  char *argv[] = {DOCTEST, "--build", "/nonexistent", PAGE, NULL};
  struct proc_out p;

  proc_run(argv, &p);
  ck_assert_int_eq(p.status, 2);
  ck_assert_ptr_nonnull(strstr(p.err.data, "is not built"));
  ck_assert_str_eq(p.out.data, "");
  proc_free(&p);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("doctest");
  TCase *tc = tcase_create("the docs' examples");
  bool skipped;
  int failed;

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, planted_examples_fail);
  tcase_add_test(tc, needs_a_build);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  skipped = proc_skip_unless(YAMLLINT, "planted_examples_fail",
                             "apt-get install yamllint");
  return proc_suite_exit(failed, skipped);
}
