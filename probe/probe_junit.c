/*
 * probe_junit.c - the probe's report as a JUnit testsuite, written with
 * libxml2's xmlwriter: one testcase per check; a failure for FAIL, an
 * error for ERROR, skipped for SKIP; the class in a property and in
 * system-out.
 */
#include <stdio.h>
#include <string.h>

#include <libxml/xmlwriter.h>

#include "probe/probe.h"

int probe_write_junit(const struct probe_config *config,
                      const struct probe_report *report, const char *path,
                      char *err, size_t errlen)
{
  xmlTextWriterPtr w = xmlNewTextWriterFilename(path, 0);
  int failures = 0, errors = 0, skipped = 0, i, ok = 0;
  char num[16];

  if(!w) {
    snprintf(err, errlen, "cannot write the JUnit report to %s; check the path",
             path);
    return -1;
  }
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    failures += report->checks[i].verdict == PROBE_FAIL;
    errors += report->checks[i].verdict == PROBE_ERROR;
    skipped += report->checks[i].verdict == PROBE_SKIP;
  }
  xmlTextWriterSetIndent(w, 1);
  ok |= xmlTextWriterStartDocument(w, NULL, "UTF-8", NULL) < 0;
  ok |= xmlTextWriterStartElement(w, BAD_CAST "testsuite") < 0;
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "name",
                                    BAD_CAST "kbsim probe") < 0;
  snprintf(num, sizeof(num), "%d", PROBE_CHECK_COUNT);
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "tests", BAD_CAST num) < 0;
  snprintf(num, sizeof(num), "%d", failures);
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "failures", BAD_CAST num) < 0;
  snprintf(num, sizeof(num), "%d", errors);
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "errors", BAD_CAST num) < 0;
  snprintf(num, sizeof(num), "%d", skipped);
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "skipped", BAD_CAST num) < 0;
  ok |= xmlTextWriterStartElement(w, BAD_CAST "properties") < 0;
  ok |= xmlTextWriterStartElement(w, BAD_CAST "property") < 0;
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST "class") < 0;
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "value",
                                    BAD_CAST probe_class_name(report->cls)) < 0;
  ok |= xmlTextWriterEndElement(w) < 0;
  ok |= xmlTextWriterStartElement(w, BAD_CAST "property") < 0;
  ok |=
      xmlTextWriterWriteAttribute(w, BAD_CAST "name", BAD_CAST "listener") < 0;
  ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "value", BAD_CAST config->url) <
        0;
  ok |= xmlTextWriterEndElement(w) < 0;
  ok |= xmlTextWriterEndElement(w) < 0; /* properties */
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    const struct probe_result *r = &report->checks[i];
    ok |= xmlTextWriterStartElement(w, BAD_CAST "testcase") < 0;
    ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "classname",
                                      BAD_CAST "probe") < 0;
    ok |= xmlTextWriterWriteAttribute(
              w, BAD_CAST "name",
              BAD_CAST probe_check_name((enum probe_check)i)) < 0;
    if(r->verdict != PROBE_PASS) {
      const char *el = r->verdict == PROBE_FAIL    ? "failure"
                       : r->verdict == PROBE_ERROR ? "error"
                                                   : "skipped";
      ok |= xmlTextWriterStartElement(w, BAD_CAST el) < 0;
      ok |= xmlTextWriterWriteAttribute(w, BAD_CAST "message",
                                        BAD_CAST r->line) < 0;
      ok |= xmlTextWriterEndElement(w) < 0;
    }
    ok |= xmlTextWriterWriteElement(w, BAD_CAST "system-out",
                                    BAD_CAST r->line) < 0;
    ok |= xmlTextWriterEndElement(w) < 0;
  }
  ok |= xmlTextWriterWriteElement(w, BAD_CAST "system-out",
                                  BAD_CAST probe_class_text(report->cls)) < 0;
  ok |= xmlTextWriterEndDocument(w) < 0;
  xmlFreeTextWriter(w);
  if(ok) {
    snprintf(err, errlen,
             "cannot write the JUnit report to %s; check the "
             "disk",
             path);
    return -1;
  }
  return 0;
}
