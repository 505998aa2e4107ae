/*
 * sweep_grid.c - the grid of `kbsim sweep --vary`: each key's values,
 * written as a list (KEY=V1,V2,...) or as a stepped range
 * (KEY=LOW..HIGH/STEP, split by common/kb_range.h), and the scenario and
 * name of each grid point; and the keys a grid varies, for completion.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/kb_range.h"
#include "sweep.h"

/* Reads a finite number and the unit after it from s ("10s", "0.5"): the
 * number into *x, the unit's length into *ulen (the unit ends s). Returns
 * 0, or -1 when s does not start with a number. */
static int kbsim_vary_quantity(const char *s, double *x, size_t *ulen)
{
  char *end;

  *x = strtod(s, &end);
  if(end == s || !isfinite(*x))
    return -1;
  *ulen = strlen(end);
  return 0;
}

/* Fills v's values from "LOW..HIGH/STEP" (numbers with one unit suffix,
 * e.g. 10s..60s/10s: LOW, LOW + STEP, ... up to HIGH); text is the whole
 * --vary, for errors. Returns 0, or -1 with what is wrong in err. */
static int kbsim_vary_range(const char *text, const char *range,
                            struct kbsim_vary *v, char *err, size_t errlen)
{
  struct kb_range r;
  char why[128];
  const char *unit;
  double lo, hi, step, count;
  size_t lu, hu, su, i, n;

  if(kb_range_split(range, KB_RANGE_STEP, &r, why, sizeof(why))) {
    snprintf(err, errlen, "%s: %s", text, why);
    return -1;
  }
  if(kbsim_vary_quantity(r.lo, &lo, &lu)) {
    snprintf(err, errlen, "%s: LOW '%s' is not a number", text, r.lo);
    return -1;
  }
  if(kbsim_vary_quantity(r.hi, &hi, &hu)) {
    snprintf(err, errlen, "%s: HIGH '%s' is not a number", text, r.hi);
    return -1;
  }
  if(kbsim_vary_quantity(r.step, &step, &su)) {
    snprintf(err, errlen, "%s: STEP '%s' is not a number", text, r.step);
    return -1;
  }
  /* The units end LOW, HIGH and STEP. */
  unit = r.lo + strlen(r.lo) - lu;
  if(lu != hu || lu != su || strcmp(unit, r.hi + strlen(r.hi) - hu) ||
     strcmp(unit, r.step + strlen(r.step) - su)) {
    snprintf(err, errlen,
             "%s: LOW, HIGH and STEP must be numbers with the same unit, "
             "as in 10s..60s/10s",
             text);
    return -1;
  }
  if(!(step > 0) || hi < lo) {
    snprintf(err, errlen, "%s: %s", text,
             step > 0 ? "HIGH is below LOW" : "STEP must be above 0");
    return -1;
  }
  /* Counted first (a huge count is no size_t), each value then from
   * LOW, not summed: 0.1 steps stay 0.1, 0.2, 0.3. */
  count = (hi - lo) / step * (1 + 1e-9);
  if(!(count < KBSIM_MAX_VALUES)) {
    snprintf(err, errlen, "%s makes more than %d values", text,
             KBSIM_MAX_VALUES);
    return -1;
  }
  n = (size_t)count + 1;
  for(i = 0; i < n; i++) {
    int w = snprintf(v->values[v->n++], sizeof(v->values[0]), "%.15g%s",
                     lo + (double)i * step, unit);
    if(w < 0 || (size_t)w >= sizeof(v->values[0])) {
      snprintf(err, errlen, "%s: a value is longer than %zu characters", text,
               sizeof(v->values[0]) - 1);
      return -1;
    }
  }
  return 0;
}

/* Fills v's values from "V1,V2,...", kept as written, so a value may
 * itself be a range (clients.think=0s..30s,0s..60s); text is the whole
 * --vary, for errors. Returns 0, or -1 with what is wrong in err. */
static int kbsim_vary_list(const char *text, const char *list,
                           struct kbsim_vary *v, char *err, size_t errlen)
{
  while(*list) {
    size_t n = strcspn(list, ",");

    if(!n) {
      snprintf(err, errlen, "%s: an empty value between commas", text);
      return -1;
    }
    if(n >= sizeof(v->values[0])) {
      snprintf(err, errlen, "%s: '%.*s' is longer than %zu characters", text,
               (int)n, list, sizeof(v->values[0]) - 1);
      return -1;
    }
    if(v->n == KBSIM_MAX_VALUES) {
      snprintf(err, errlen, "%s has more than %d values", text,
               KBSIM_MAX_VALUES);
      return -1;
    }
    snprintf(v->values[v->n++], sizeof(v->values[0]), "%.*s", (int)n, list);
    list += n + (list[n] == ',');
  }
  return 0;
}

/* Parses "KEY=V1,V2,..." or "KEY=LOW..HIGH/STEP" into *v: a range when
 * the values hold ".." and, after it, '/'; a list otherwise. Returns 0, or
 * -1 with what is wrong in err. */
static int kbsim_vary_parse(const char *text, struct kbsim_vary *v, char *err,
                            size_t errlen)
{
  const char *eq = strchr(text, '=');
  const char *list, *dots;

  memset(v, 0, sizeof(*v));
  if(!eq || eq == text || !eq[1]) {
    snprintf(err, errlen, "'%s' is not KEY=V1,V2,... or KEY=LOW..HIGH/STEP",
             text);
    return -1;
  }
  if((size_t)(eq - text) >= sizeof(v->key)) {
    snprintf(err, errlen, "'%.*s' is not a scenario key (too long)",
             (int)(eq - text), text);
    return -1;
  }
  snprintf(v->key, sizeof(v->key), "%.*s", (int)(eq - text), text);
  list = eq + 1;
  dots = strstr(list, "..");
  if(dots && strchr(dots, '/'))
    return kbsim_vary_range(text, list, v, err, errlen);
  return kbsim_vary_list(text, list, v, err, errlen);
}

/* In the order of a scenario file's sections (sim/scenario.c's keys). */
const char *const kbsim_vary_keys[] = {
    "array.patched",         "listener.auth",     "listener.idle_timeout",
    "listener.max_requests", "listener.balancer", "member.NAME.patch",
    "member.NAME.script",    "clients.count",     "clients.kind",
    "clients.posts",         "clients.think",     "clients.idle_timeout",
    "clients.max_requests",  "clients.ntlm",      NULL};

void kbsim_grid_init(struct kbsim_grid *g)
{
  memset(g, 0, sizeof(*g));
  g->npoints = 1;
}

int kbsim_grid_add(struct kbsim_grid *g, const char *text, char *err,
                   size_t errlen)
{
  if(g->nvary == KBSIM_MAX_VARY) {
    snprintf(err, errlen, "at most %d keys", KBSIM_MAX_VARY);
    return -1;
  }
  if(kbsim_vary_parse(text, &g->vary[g->nvary], err, errlen))
    return -1;
  g->npoints *= g->vary[g->nvary++].n;
  return 0;
}

int kbsim_grid_point(const struct kbsim_grid *g, size_t pt,
                     const struct scenario *base, struct scenario *sc,
                     size_t *at, char *err, size_t errlen)
{
  size_t k, rest = pt;

  *sc = *base;
  for(k = 0; k < g->nvary; k++) {
    size_t i = rest % g->vary[k].n;
    rest /= g->vary[k].n;
    if(at)
      at[k] = i;
    if(scenario_override(sc, g->vary[k].key, g->vary[k].values[i], err, errlen))
      return -1;
  }
  return 0;
}

void kbsim_grid_name(const struct kbsim_grid *g, const char *base,
                     const size_t *at, char *out, size_t len)
{
  size_t k, pos;

  pos = (size_t)snprintf(out, len, "%s", base);
  for(k = 0; k < g->nvary && pos < len; k++)
    pos += (size_t)snprintf(out + pos, len - pos, "%s%s=%s", k ? " " : " [",
                            g->vary[k].key, g->vary[k].values[at[k]]);
  if(g->nvary && pos < len)
    snprintf(out + pos, len - pos, "]");
}
