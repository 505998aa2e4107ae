/*
 * report.c - what an analysis says: one line per finding and a summary
 * (as the rest of kbsim), the JSON report of kind "analysis"
 * (docs/report.schema.json) and the JUnit suite, one testcase per defect
 * of the family (evidence/ci.h's one writer).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "analyze_int.h"
#include "evidence/ci.h"
#include "evidence/evidence.h"
#include "evidence/version.h"

/* Why the input cannot show defect d (NULL: it can): a failure analyze
 * does not look for, or one that needs a hop the input lacks. */
static const char *an_blind(enum kb_defect d, enum analyze_hops hops)
{
  bool both = hops == ANALYZE_HOPS_BOTH;

  switch(d) {
  case KB_DEFECT_EXPECT_HANG:
    return "not looked for in captures: a request that waits for a 100 "
           "Continue shows only as time, not as a message (kbsim probe "
           "finds it)";
  case KB_DEFECT_HANDSHAKE_SPLIT:
  case KB_DEFECT_MIXES_IDENTITIES:
    return both || hops == ANALYZE_HOPS_SERVER
               ? NULL
               : "needs the server's side of the listener";
  case KB_DEFECT_PINNED_RECYCLED:
  case KB_DEFECT_MIXES_AFTER_SINGLE_LEG:
  case KB_DEFECT_CHALLENGE_REWRITTEN:
    return both ? NULL : "needs both sides of the listener";
  case KB_DEFECT_BODY_ON_TYPE1:
    return hops == ANALYZE_HOPS_SERVER ? "needs the clients' side" : NULL;
  case KB_DEFECT_BODY_LESS_FORWARD:
  case KB_DEFECT_NTLM_OVER_HTTP2:
  case KB_DEFECT_COUNT:
    break;
  }
  return hops == ANALYZE_HOPS_NONE ? "no HTTP in the input" : NULL;
}

void analyze_ref_format(const struct analyze_result *r,
                        const struct analyze_ref *ref, char *out, size_t len)
{
  const struct analyze_input *in =
      ref->file < r->ninputs ? &r->inputs[ref->file] : NULL;

  if(in && in->har)
    snprintf(out, len, "%s%sentry %llu", r->ninputs > 1 ? in->path : "",
             r->ninputs > 1 ? " " : "", (unsigned long long)ref->frame);
  else if(in && r->ninputs > 1)
    snprintf(out, len, "%s:%llu", in->path, (unsigned long long)ref->frame);
  else
    snprintf(out, len, "%llu", (unsigned long long)ref->frame);
}

/* "frames 33 (authenticated), 45 (type 1 POST)" for f's places. */
static void an_places(const struct analyze_result *r,
                      const struct analyze_finding *f, char *out, size_t len)
{
  bool har = f->nrefs && f->refs[0].file < r->ninputs &&
             r->inputs[f->refs[0].file].har;
  size_t i, at;

  at = (size_t)snprintf(out, len, "%s", har ? "HAR " : "frames ");
  for(i = 0; i < f->nrefs && at < len; i++) {
    char where[600];
    analyze_ref_format(r, &f->refs[i], where, sizeof(where));
    at += (size_t)snprintf(out + at, len - at, "%s%s%s%s%s", i ? ", " : "",
                           where, f->refs[i].what[0] ? " (" : "",
                           f->refs[i].what, f->refs[i].what[0] ? ")" : "");
  }
}

/* Instances counted beyond those kept in the findings. */
static size_t an_not_listed(const struct analyze_result *r)
{
  size_t i, all = 0;

  for(i = 0; i < KB_DEFECT_COUNT; i++)
    all += r->counts[i];
  return all > r->nfindings ? all - r->nfindings : 0;
}

/* The defects found, "body-less-forward (8), mixes-identities (1)". */
static void an_found(const struct analyze_result *r, char *out, size_t len)
{
  size_t i, at = 0;

  out[0] = '\0';
  for(i = 0; i < KB_DEFECT_COUNT && at < len; i++)
    if(r->counts[i])
      at += (size_t)snprintf(out + at, len - at, "%s%s (%zu)", at ? ", " : "",
                             kb_defect_name((enum kb_defect)i), r->counts[i]);
}

void analyze_print(FILE *out, const struct analyze_result *r)
{
  char places[2048], found[512];
  size_t i;

  fprintf(out, "hops: %s\n", r->roles);
  for(i = 0; i < r->nfindings; i++) {
    const struct analyze_finding *f = &r->findings[i];
    an_places(r, f, places, sizeof(places));
    fprintf(out, "FOUND %s: %s; %s\n", kb_defect_name(f->defect), f->text,
            places);
  }
  if(an_not_listed(r))
    fprintf(out, "(%zu more instances are counted, not listed)\n",
            an_not_listed(r));
  for(i = 0; i < r->nnotes; i++)
    fprintf(out, "note: %s\n", r->notes[i]);
  an_found(r, found, sizeof(found));
  fprintf(out,
          "analyze: %zu file%s, %llu client and %llu upstream connection%s, "
          "%llu HTTP/1 request%s (%llu paired across the listener); %s%s\n",
          r->ninputs, r->ninputs == 1 ? "" : "s",
          (unsigned long long)r->client_conns,
          (unsigned long long)r->upstream_conns,
          r->upstream_conns == 1 ? "" : "s", (unsigned long long)r->requests,
          r->requests == 1 ? "" : "s", (unsigned long long)r->paired,
          found[0] ? "found " : "nothing of the family found",
          found[0] ? found : "");
}

int analyze_exit(const struct analyze_result *r)
{
  size_t i;

  for(i = 0; i < KB_DEFECT_COUNT; i++)
    if(r->counts[i])
      return 1;
  return 0;
}

static const char *an_hops_name(enum analyze_hops h)
{
  switch(h) {
  case ANALYZE_HOPS_CLIENT:
    return "client";
  case ANALYZE_HOPS_SERVER:
    return "server";
  case ANALYZE_HOPS_BOTH:
    return "both";
  case ANALYZE_HOPS_NONE:
    break;
  }
  return "none";
}

/* The stamp every kbsim report carries: which kbsim, asked how, when. */
static json_t *an_stamp(const struct analyze_config *cfg)
{
  json_t *argv = json_array();
  struct timeval tv;
  struct tm tm;
  char when[40];
  int i;

  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03dZ",
           (int)(tv.tv_usec / 1000));
  for(i = 0; i < cfg->argc; i++)
    json_array_append_new(argv, json_string(cfg->argv[i]));
  if(!cfg->argc)
    json_array_append_new(argv, json_string("kbsim"));
  return json_pack("{s:s, s:s, s:o, s:s}", "kbsim", version_kbsim(), "commit",
                   version_commit(), "argv", argv, "written", when);
}

/* One finding as JSON. */
static json_t *an_finding_json(const struct analyze_result *r,
                               const struct analyze_finding *f)
{
  json_t *conns = json_array(), *places = json_array();
  size_t i;

  for(i = 0; i < f->nconns; i++)
    json_array_append_new(conns, json_string(f->conns[i]));
  for(i = 0; i < f->nrefs; i++) {
    const struct analyze_ref *ref = &f->refs[i];
    const struct analyze_input *in = &r->inputs[ref->file];
    json_array_append_new(places,
                          json_pack("{s:s, s:I, s:s}", "file", in->path,
                                    in->har ? "entry" : "frame",
                                    (json_int_t)ref->frame, "what", ref->what));
  }
  return json_pack("{s:s, s:s, s:b, s:o, s:o}", "defect",
                   kb_defect_name(f->defect), "text", f->text, "one_hop",
                   f->one_hop, "connections", conns, "places", places);
}

/* The whole report. */
static json_t *an_json(const struct analyze_result *r,
                       const struct analyze_config *cfg)
{
  json_t *inputs = json_array(), *defects = json_array();
  json_t *counts = json_object(), *findings = json_array();
  json_t *notes = json_array();
  size_t i;

  for(i = 0; i < r->ninputs; i++)
    json_array_append_new(
        inputs, json_pack("{s:s, s:s, s:I}", "file", r->inputs[i].path,
                          "format", r->inputs[i].har ? "har" : "capture",
                          r->inputs[i].har ? "entries" : "frames",
                          (json_int_t)r->inputs[i].frames));
  for(i = 0; i < KB_DEFECT_COUNT; i++) {
    const char *name = kb_defect_name((enum kb_defect)i);
    if(r->counts[i])
      json_array_append_new(defects, json_string(name));
    json_object_set_new(counts, name, json_integer((json_int_t)r->counts[i]));
  }
  for(i = 0; i < r->nfindings; i++)
    json_array_append_new(findings, an_finding_json(r, &r->findings[i]));
  for(i = 0; i < r->nnotes; i++)
    json_array_append_new(notes, json_string(r->notes[i]));
  return json_pack(
      "{s:i, s:s, s:o, s:o, s:s, s:o, s:o, s:s, s:b, s:{s:I, s:I, s:I}, "
      "s:I, s:I, s:I, s:o, s:o, s:o, s:I, s:o}",
      "version", 2, "kind", "analysis", "stamp", an_stamp(cfg), "inputs",
      inputs, "hops", an_hops_name(r->hops), "listener",
      r->listener[0] ? json_string(r->listener) : json_null(), "server",
      r->server[0] ? json_string(r->server) : json_null(), "roles", r->roles,
      "ambiguous", r->ambiguous, "connections", "client",
      (json_int_t)r->client_conns, "upstream", (json_int_t)r->upstream_conns,
      "other", (json_int_t)r->other_conns, "requests", (json_int_t)r->requests,
      "answers", (json_int_t)r->answers, "paired", (json_int_t)r->paired,
      "defects", defects, "counts", counts, "findings", findings,
      "findings_not_listed", (json_int_t)an_not_listed(r), "notes", notes);
}

int analyze_write_json(const struct analyze_result *r,
                       const struct analyze_config *cfg, const char *path,
                       char *err, size_t errlen)
{
  json_t *doc = an_json(r, cfg);
  FILE *out;
  int result = -1;

  if(!doc) {
    snprintf(err, errlen, "--json %s: out of memory", path);
    return -1;
  }
  out = evidence_open("--json", path, err, errlen);
  if(out) {
    if(json_dumpf(doc, out, JSON_INDENT(2) | JSON_ENSURE_ASCII) == 0)
      fputc('\n', out);
    result = evidence_close(out, "--json", path, err, errlen);
  }
  json_decref(doc);
  return result;
}

int analyze_write_junit(const struct analyze_result *r, const char *path,
                        char *err, size_t errlen)
{
  struct ci_case cases[KB_DEFECT_COUNT];
  const struct ci_property props[] = {
      {"hops", an_hops_name(r->hops)},
      {"listener", r->listener[0] ? r->listener : "unknown"},
      {"server", r->server[0] ? r->server : "unknown"}};
  struct ci_suite suite = {.name = "kbsim analyze",
                           .properties = props,
                           .nproperties = 3,
                           .output = r->roles};
  char places[1024];
  size_t i, k;

  memset(cases, 0, sizeof(cases));
  for(i = 0; i < KB_DEFECT_COUNT; i++) {
    struct ci_case *c = &cases[i];
    const char *blind = an_blind((enum kb_defect)i, r->hops);
    size_t at = 0;

    snprintf(c->name, sizeof(c->name), "%s", kb_defect_name((enum kb_defect)i));
    snprintf(c->classname, sizeof(c->classname), "kbsim.analyze");
    c->seconds = -1;
    c->result = r->counts[i] ? CI_FAIL : blind ? CI_SKIP : CI_PASS;
    if(c->result == CI_SKIP)
      snprintf(c->message, sizeof(c->message), "%s", blind);
    for(k = 0; k < r->nfindings && r->counts[i]; k++) {
      const struct analyze_finding *f = &r->findings[k];
      if(f->defect != (enum kb_defect)i)
        continue;
      an_places(r, f, places, sizeof(places));
      if(!c->message[0])
        snprintf(c->message, sizeof(c->message), "%zu instance%s; first: %s",
                 r->counts[i], r->counts[i] == 1 ? "" : "s", f->text);
      if(at < sizeof(c->output))
        at += (size_t)snprintf(c->output + at, sizeof(c->output) - at,
                               "%s; %s\n", f->text, places);
    }
    c->type = c->result == CI_FAIL ? "defect" : NULL;
  }
  suite.cases = cases;
  suite.ncases = KB_DEFECT_COUNT;
  return ci_junit_write(path, &suite, err, errlen);
}
