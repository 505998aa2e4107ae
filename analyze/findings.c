/*
 * findings.c - the result's findings (every instance counted, the first
 * ANALYZE_MAX_FINDINGS kept), the places and connections each names, the
 * notes on what one hop cannot show, and the marks a finding leaves on
 * its requests for the page.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze_int.h"
#include "common/kb_buf.h"

struct analyze_finding *an__finding(struct an_model *m, enum kb_defect d,
                                    bool one_hop)
{
  struct analyze_result *res = m->res;
  struct analyze_finding *f, *grown;

  res->counts[d]++;
  if(res->nfindings == ANALYZE_MAX_FINDINGS)
    return NULL;
  grown = kb_array_grow(res->findings, sizeof(*grown), res->nfindings, 1);
  if(!grown) {
    m->failed = true;
    return NULL;
  }
  res->findings = grown;
  f = &res->findings[res->nfindings++];
  memset(f, 0, sizeof(*f));
  f->defect = d;
  f->one_hop = one_hop;
  return f;
}

void an__text(struct analyze_finding *f, const char *fmt, ...)
{
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(f->text, sizeof(f->text), fmt, ap);
  va_end(ap);
}

void an__finding_conn(struct analyze_finding *f, const char *label)
{
  size_t i;

  if(!f || !label || !label[0])
    return;
  for(i = 0; i < f->nconns; i++)
    if(!strcmp(f->conns[i], label))
      return;
  if(f->nconns < ANALYZE_MAX_CONNS)
    snprintf(f->conns[f->nconns++], ANALYZE_LABEL, "%s", label);
}

void an__finding_ref(struct analyze_finding *f, const struct analyze_ref *ref,
                     const char *what)
{
  struct analyze_ref *r;

  if(!f || !ref || !ref->frame || f->nrefs == ANALYZE_MAX_REFS)
    return;
  r = &f->refs[f->nrefs++];
  *r = *ref;
  snprintf(r->what, sizeof(r->what), "%s", what);
}

void an__note(struct an_model *m, const char *fmt, ...)
{
  struct analyze_result *res = m->res;
  char line[320];
  char(*grown)[320];
  va_list ap;
  size_t i;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  for(i = 0; i < res->nnotes; i++)
    if(!strcmp(res->notes[i], line))
      return;
  grown = kb_array_grow(res->notes, sizeof(*grown), res->nnotes, 1);
  if(!grown) {
    m->failed = true;
    return;
  }
  res->notes = grown;
  memcpy(res->notes[res->nnotes++], line, sizeof(line));
}

void an__mark(struct an_req *req, enum kb_defect d)
{
  const char *name = kb_defect_name(d);
  size_t len;

  if(!req || strstr(req->marks, name))
    return;
  len = strlen(req->marks);
  snprintf(req->marks + len, sizeof(req->marks) - len, "%s%s", len ? ", " : "",
           name);
}
