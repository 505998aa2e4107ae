/*
 * verdicts.c - JUnit XML through libxml2's xmlTextWriter, and TAP 14.
 * See verdicts.h.
 */
#include "evidence/verdicts.h"

#include <stdio.h>
#include <string.h>

#include <libxml/xmlwriter.h>

int sim_verdicts_exit(const struct sim_verdict *v, size_t n)
{
  int rc = 0;
  size_t i;

  for(i = 0; i < n; i++) {
    if(v[i].result == SIM_RESULT_ERROR)
      return 3;
    if(v[i].result == SIM_RESULT_FAIL)
      rc = 1;
  }
  return rc;
}

/* Writes the document; returns 0 or -1 (a libxml2 call failed). */
static int sim__junit(xmlTextWriterPtr w, const char *suite,
                      const struct sim_verdict *v, size_t n)
{
  size_t i, failures = 0, errors = 0;
  double total = 0;
  int bad = 0;

  for(i = 0; i < n; i++) {
    failures += v[i].result == SIM_RESULT_FAIL;
    errors += v[i].result == SIM_RESULT_ERROR;
    total += v[i].seconds;
  }
  bad |= xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL) < 0;
  bad |= xmlTextWriterStartElement(w, BAD_CAST "testsuites") < 0;
  bad |= xmlTextWriterStartElement(w, BAD_CAST "testsuite") < 0;
  bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST suite) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "tests", "%zu", n) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "failures", "%zu",
                                           failures) < 0;
  bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "errors", "%zu",
                                           errors) < 0;
  bad |=
      xmlTextWriterWriteFormatAttribute(w, BAD_CAST "time", "%.3f", total) < 0;
  for(i = 0; i < n && !bad; i++) {
    const struct sim_verdict *t = &v[i];
    bad |= xmlTextWriterStartElement(w, BAD_CAST "testcase") < 0;
    bad |=
        xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST t->name) < 0;
    bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "classname",
                                       BAD_CAST t->classname) < 0;
    bad |= xmlTextWriterWriteFormatAttribute(w, BAD_CAST "time", "%.3f",
                                             t->seconds) < 0;
    if(t->result != SIM_RESULT_PASS) {
      bad |= xmlTextWriterStartElement(w, BAD_CAST(t->result == SIM_RESULT_FAIL
                                                       ? "failure"
                                                       : "error")) < 0;
      bad |= xmlTextWriterWriteAttribute(w, BAD_CAST "message",
                                         BAD_CAST t->message) < 0;
      bad |= xmlTextWriterWriteAttribute(
                 w, BAD_CAST "type", BAD_CAST client_class_name(t->got)) < 0;
      bad |= xmlTextWriterWriteString(w, BAD_CAST t->message) < 0;
      bad |= xmlTextWriterEndElement(w) < 0;
    }
    if(t->output[0])
      bad |= xmlTextWriterWriteElement(w, BAD_CAST "system-out",
                                       BAD_CAST t->output) < 0;
    bad |= xmlTextWriterEndElement(w) < 0;
  }
  bad |= xmlTextWriterEndDocument(w) < 0;
  return bad ? -1 : 0;
}

int sim_junit_write(const char *path, const char *suite,
                    const struct sim_verdict *v, size_t n, char *err,
                    size_t errlen)
{
  xmlTextWriterPtr w;
  int rc;

  w = xmlNewTextWriterFilename(strcmp(path, "-") ? path : "-", 0);
  if(!w) {
    snprintf(err, errlen, "--junit %s: cannot write it; check the directory",
             path);
    return -1;
  }
  xmlTextWriterSetIndent(w, 1);
  rc = sim__junit(w, suite, v, n);
  xmlFreeTextWriter(w); /* flushes and closes */
  if(rc)
    snprintf(err, errlen, "--junit %s: writing failed (disk full?)", path);
  return rc;
}

/* Writes s as a YAML double-quoted scalar. */
static void sim__yaml_string(FILE *out, const char *s)
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

void sim_tap_write(FILE *out, const struct sim_verdict *v, size_t n)
{
  size_t i;

  fprintf(out, "TAP version 14\n1..%zu\n", n);
  for(i = 0; i < n; i++) {
    const struct sim_verdict *t = &v[i];
    fprintf(out, "%s %zu - %s\n",
            t->result == SIM_RESULT_PASS ? "ok" : "not ok", i + 1, t->name);
    if(t->result == SIM_RESULT_PASS)
      continue;
    fprintf(out, "  ---\n  severity: %s\n  class: %s\n  message: ",
            t->result == SIM_RESULT_FAIL ? "fail" : "error",
            client_class_name(t->got));
    sim__yaml_string(out, t->message);
    fputs("\n  ...\n", out);
  }
}
