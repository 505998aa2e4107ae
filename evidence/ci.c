/*
 * ci.c - JUnit XML through libxml2's xmlTextWriter, and TAP 14: the one
 * writer of each that run, sweep, merge and probe use. See ci.h.
 */
#include "evidence/ci.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <libxml/xmlwriter.h>

int ci_exit(const struct ci_case *c, size_t n)
{
  int rc = 0;
  size_t i;

  for(i = 0; i < n; i++) {
    if(c[i].result == CI_ERROR)
      return 3;
    if(c[i].result == CI_FAIL)
      rc = 1;
  }
  return rc;
}

/* A suite's counts: its cases, failures, errors, skipped, and seconds. */
struct ci_counts {
  size_t failures, errors, skipped;
  double seconds;
};

static void ci__count(const struct ci_suite *s, struct ci_counts *n)
{
  size_t i;

  memset(n, 0, sizeof(*n));
  for(i = 0; i < s->ncases; i++) {
    n->failures += s->cases[i].result == CI_FAIL;
    n->errors += s->cases[i].result == CI_ERROR;
    n->skipped += s->cases[i].result == CI_SKIP;
    n->seconds += s->cases[i].seconds > 0 ? s->cases[i].seconds : 0;
  }
}

/* Writes the counts as attributes of the element just started. Returns 0
 * or -1 (a libxml2 call failed). */
static int ci__counts(xmlTextWriterPtr w, const struct ci_suite *s)
{
  struct ci_counts n;
  int bad = 0;

  ci__count(s, &n);
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "tests", "%zu",
                                           s->ncases) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "failures", "%zu",
                                           n.failures) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "errors", "%zu",
                                           n.errors) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "skipped", "%zu",
                                           n.skipped) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "time", "%.3f",
                                           n.seconds) < 0;
  return bad ? -1 : 0;
}

/* Writes the testsuite's start tag with its counts, and its properties.
 * Returns 0 or -1 (a libxml2 call failed). */
static int ci__suite_start(xmlTextWriterPtr w, const struct ci_suite *s)
{
  size_t i;
  int bad = 0;

  bad |= xmlTextWriterStartElement(w, BAD_CAST "testsuite") < 0;
  bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST s->name) < 0;
  bad |= ci__counts(w, s) < 0;
  if(s->nproperties) {
    bad |= xmlTextWriterStartElement(w, BAD_CAST "properties") < 0;
    for(i = 0; i < s->nproperties; i++) {
      bad |= xmlTextWriterStartElement(w, BAD_CAST "property") < 0;
      bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "name",
                                         BAD_CAST s->properties[i].name) < 0;
      bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "value",
                                         BAD_CAST s->properties[i].value) < 0;
      bad |= xmlTextWriterEndElement(w) < 0;
    }
    bad |= xmlTextWriterEndElement(w) < 0;
  }
  return bad ? -1 : 0;
}

/* Writes one testcase. Returns 0 or -1 (a libxml2 call failed). */
static int ci__case(xmlTextWriterPtr w, const struct ci_case *t)
{
  static const char *const results[] = {
      [CI_FAIL] = "failure", [CI_ERROR] = "error", [CI_SKIP] = "skipped"};
  int bad = 0;

  bad |= xmlTextWriterStartElement(w, BAD_CAST "testcase") < 0;
  bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST t->name) < 0;
  bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "classname",
                                     BAD_CAST t->classname) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "time", "%.3f",
                                           t->seconds > 0 ? t->seconds : 0) < 0;
  if(t->result != CI_PASS) {
    bad |= xmlTextWriterStartElement(w, BAD_CAST results[t->result]) < 0;
    bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "message",
                                       BAD_CAST t->message) < 0;
    if(t->type && t->result != CI_SKIP)
      bad |=
          xmlTextWriterWriteAttribute(w, BAD_CAST "type", BAD_CAST t->type) < 0;
    /* The details readers show under a failure: the message again. */
    if(t->result != CI_SKIP)
      bad |= xmlTextWriterWriteString(w, BAD_CAST t->message) < 0;
    bad |= xmlTextWriterEndElement(w) < 0;
  }
  if(t->output[0])
    bad |= xmlTextWriterWriteElement(w, BAD_CAST "system-out",
                                     BAD_CAST t->output) < 0;
  bad |= xmlTextWriterEndElement(w) < 0;
  return bad ? -1 : 0;
}

/* Writes the document; returns 0 or -1 (a libxml2 call failed). */
static int ci__junit(xmlTextWriterPtr w, const struct ci_suite *s)
{
  size_t i;
  int bad = 0;

  bad |= xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL) < 0;
  bad |= xmlTextWriterStartElement(w, BAD_CAST "testsuites") < 0;
  bad |= ci__counts(w, s) < 0;
  bad |= ci__suite_start(w, s) < 0;
  for(i = 0; i < s->ncases && !bad; i++)
    bad |= ci__case(w, &s->cases[i]) < 0;
  if(s->output)
    bad |= xmlTextWriterWriteElement(w, BAD_CAST "system-out",
                                     BAD_CAST s->output) < 0;
  bad |= xmlTextWriterEndDocument(w) < 0;
  return bad ? -1 : 0;
}

int ci_junit_write(const char *path, const struct ci_suite *suite, char *err,
                   size_t errlen)
{
  xmlTextWriterPtr w;
  int rc;

  w = xmlNewTextWriterFilename(path, 0);
  if(!w) {
    snprintf(err, errlen, "--junit %s: cannot write it; check the directory",
             path);
    return -1;
  }
  xmlTextWriterSetIndent(w, 1);
  rc = ci__junit(w, suite);
  xmlFreeTextWriter(w); /* flushes and closes */
  if(rc)
    snprintf(err, errlen, "--junit %s: writing failed (disk full?)", path);
  return rc;
}

/* Writes s as a YAML double-quoted scalar. */
static void ci__yaml_string(FILE *out, const char *s)
{
  fputc('"', out);
  for(; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if(c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if(c < 0x20)
      fprintf(out, "\\x%02x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

void ci_tap_write(FILE *out, const struct ci_case *c, size_t n)
{
  size_t i;

  fprintf(out, "TAP version 14\n1..%zu\n", n);
  for(i = 0; i < n; i++) {
    const struct ci_case *t = &c[i];
    fprintf(out, "%s %zu - %s",
            t->result == CI_PASS || t->result == CI_SKIP ? "ok" : "not ok",
            i + 1, t->name);
    if(t->result == CI_SKIP)
      fprintf(out, " # SKIP %s", t->message);
    fputc('\n', out);
    if(t->result == CI_PASS || t->result == CI_SKIP)
      continue;
    fprintf(out, "  ---\n  severity: %s\n",
            t->result == CI_FAIL ? "fail" : "error");
    if(t->type)
      fprintf(out, "  class: %s\n", t->type);
    fputs("  message: ", out);
    ci__yaml_string(out, t->message);
    fputs("\n  ...\n", out);
  }
}
