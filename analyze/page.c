/*
 * page.c - `analyze --html`: the report's own page and sequence diagrams
 * (render/html.h) drawn from the story the capture was read into, with
 * the findings listed above the diagram and each finding's legs in red.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_int.h"
#include "render/html.h"

#define AN_PAGE_LINES 200 /* findings listed above the diagram */

int analyze_write_html(const struct analyze_result *r, const char *path,
                       char *err, size_t errlen)
{
  struct html_report *page = html_report_new("kbsim analyze");
  struct html_story_section sec;
  char(*lines)[2048] = calloc(AN_PAGE_LINES + 4, sizeof(*lines));
  const char **texts = calloc(AN_PAGE_LINES + 4, sizeof(*texts));
  char title[512], verdict[512], where[600];
  size_t n = 0, i, k, found = 0;
  int result = -1;

  if(!page || !lines || !texts ||
     html_report_set_lead(
         page, "What kbsim analyze read in the input: each client "
               "connection's requests to the listener, what the listener "
               "sent the server for each, and the answers, drawn as the "
               "report draws a run; the legs of each finding are red. Hover "
               "over an arrow for its NTLM tokens decoded.")) {
    snprintf(err, errlen, "--html: out of memory");
    goto done;
  }
  snprintf(lines[n++], sizeof(lines[0]), "hops: %s", r->roles);
  for(i = 0; i < r->nfindings && n < AN_PAGE_LINES; i++) {
    const struct analyze_finding *f = &r->findings[i];
    size_t at = (size_t)snprintf(lines[n], sizeof(lines[0]), "%s: %s; ",
                                 kb_defect_name(f->defect), f->text);
    for(k = 0; k < f->nrefs && at < sizeof(lines[0]); k++) {
      analyze_ref_format(r, &f->refs[k], where, sizeof(where));
      at += (size_t)snprintf(lines[n] + at, sizeof(lines[0]) - at, "%s%s (%s)",
                             k ? ", " : "", where, f->refs[k].what);
    }
    n++;
  }
  for(i = 0; i < r->nnotes && n < AN_PAGE_LINES + 3; i++)
    snprintf(lines[n++], sizeof(lines[0]), "note: %s", r->notes[i]);
  for(i = 0; i < n; i++)
    texts[i] = lines[i];
  for(i = 0; i < KB_DEFECT_COUNT; i++)
    found += r->counts[i];
  snprintf(title, sizeof(title), "%s%s", r->ninputs ? r->inputs[0].path : "",
           r->ninputs > 1 ? " and the other inputs" : "");
  if(found)
    snprintf(verdict, sizeof(verdict), "found %zu instance%s of the family",
             found, found == 1 ? "" : "s");
  else
    snprintf(verdict, sizeof(verdict), "nothing of the family found");
  memset(&sec, 0, sizeof(sec));
  sec.title = title;
  sec.verdict = verdict;
  sec.failed = found > 0;
  sec.lines = texts;
  sec.nlines = n;
  sec.story = &r->story;
  if(html_report_add_story(page, &sec, err, errlen) ||
     html_report_write(page, path, err, errlen))
    goto done;
  result = 0;

done:
  html_report_free(page);
  free(lines);
  free(texts);
  return result;
}
