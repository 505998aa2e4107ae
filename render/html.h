/*
 * html.h - the self-contained HTML report drawn from a run's story
 * (story.h): a sequence diagram in SVG per run, the failing legs
 * highlighted, NTLM tokens decoded on demand, what each user saw after
 * each POST, several runs side by side. One seed gives the same diagram
 * every time; only the words of ISA's decisions (tooltips, the legs'
 * table) quote the member's own connection numbers, which follow the
 * order it accepted concurrent clients' connections.
 */
#ifndef HTML_H
#define HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "render/story.h"
#include "sim/run.h"
#include "sim/scenario.h"
#include "sim/sim_env.h"

/* Clients drawn per run; the page says when a run had more. */
#define HTML_MAX_CLIENTS 8
/* Legs drawn per run, so a 100-POST run stays a page, not a poster. */
#define HTML_MAX_LEGS 400

/* One run as the report shows it: the scenario gives its name,
 * description, members and expectations (the verdict is judged here with
 * sim_scenario_check), the outcome its sessions and counters, the recorder
 * its legs. Everything is borrowed for the call. */
struct html_run {
  const char *title; /* NULL: the scenario's name */
  const struct scenario *sc;
  const struct sim_outcome *outcome;
  struct sim_recorder *rec; /* keep_bytes, for the NTLM token decodes */
};

struct html_report;

/* Returns a new, empty report titled title (copied), or NULL when out of
 * memory. Release with html_report_free. */
struct html_report *html_report_new(const char *title);

/* Renders run into the report now, so its recorder and outcome can be
 * freed afterwards. Returns 0, or -1 with a one-line reason in err. */
int html_report_add(struct html_report *report, const struct html_run *run,
                    char *err, size_t errlen);

/* A story built elsewhere, as kbsim analyze reads one back from a
 * capture, with the lines said above its diagram. Everything is borrowed
 * for the call. */
struct html_story_section {
  const char *title;
  const char *verdict;      /* beside the title ("found: ..."), or NULL */
  bool failed;              /* the verdict is bad news */
  const char *const *lines; /* above the diagram, one list item each */
  size_t nlines;
  const struct story *story;
};

/* Renders sec into the report now: title, verdict, lines, the story's
 * diagram and every leg in full. Returns 0, or -1 with a one-line reason
 * in err. */
int html_report_add_story(struct html_report *report,
                          const struct html_story_section *sec, char *err,
                          size_t errlen);

/* Replaces the page's opening paragraph and legend (KB 942638's story) by
 * text (copied, escaped) and a legend for captures. Returns 0, or -1 out
 * of memory. */
int html_report_set_lead(struct html_report *report, const char *text);

/* Writes the page (every run added so far, side by side) to path; "-" is
 * standard output (evidence_open). Returns 0, or -1 with a one-line reason
 * in err. */
int html_report_write(const struct html_report *report, const char *path,
                      char *err, size_t errlen);

/* Frees the report. Accepts NULL. */
void html_report_free(struct html_report *report);

/* Writes len bytes of text to out escaped for HTML text and attribute
 * values: markup characters as entities, control bytes and invalid UTF-8
 * as visible \xNN, so nothing recorded can become markup. */
void html_escape(FILE *out, const char *text, size_t len);

#endif /* HTML_H */
