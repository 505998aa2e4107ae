/*
 * html.c - the self-contained HTML report: one section per run (verdict,
 * the sequence diagram, the tables), an overview row per run when there
 * are several, the style and the page around them. See html.h.
 */
#include "render/html.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/kb_buf.h"
#include "evidence/evidence.h"
#include "html_int.h"

struct html_report {
  char *title;
  char *lead;      /* html_report_set_lead's text, NULL: the KB's story */
  char **sections; /* each run, rendered */
  char **rows;     /* each run's row of the overview table */
  size_t count;
  bool several_clients; /* a run had more than one client */
};

struct html_report *html_report_new(const char *title)
{
  struct html_report *r = calloc(1, sizeof(*r));

  if(r && !(r->title = strdup(title ? title : "kbsim report"))) {
    free(r);
    r = NULL;
  }
  return r;
}

void html_report_free(struct html_report *report)
{
  size_t i;

  if(!report)
    return;
  for(i = 0; i < report->count; i++) {
    free(report->sections[i]);
    free(report->rows[i]);
  }
  free(report->sections);
  free(report->rows);
  free(report->title);
  free(report->lead);
  free(report);
}

/* Writes one run's column: title, verdict, the diagram, the timeline and
 * the legs in full. */
static void html__section(FILE *out, const struct html_run *run,
                          const struct story *story, size_t index)
{
  const struct sim_outcome *o = run->outcome;
  const struct scenario *sc = run->sc;
  const char *title = run->title ? run->title : sc ? sc->name : "run";
  char why[512], summary[768];

  fprintf(out, "<section class=\"run\" id=\"run-%zu\">\n<h2>", index + 1);
  html__esc(out, title);
  if(sc && o) {
    bool pass = sim_scenario_check(sc, o, why, sizeof(why)) != 0;
    const char *got = o->sessions.users_with_error ? "error" : "clean";
    bool harness = o->sessions.infrastructure > 0;

    if(harness)
      fprintf(out, " <span class=\"verdict fail\">ERROR: the harness could not "
                   "run it (infrastructure); no verdict</span>");
    else if(sc->expect.outcome >= 0)
      fprintf(out,
              " <span class=\"verdict %s\">%s: expected %s, got %s (%s)"
              "</span>",
              pass ? "pass" : "fail", pass ? "PASS" : "FAIL",
              sc->expect.outcome ? "error" : "clean", got,
              client_class_name(sim_outcome_class(o)));
    else
      fprintf(out, " <span class=\"verdict %s\">%s%s</span>",
              pass ? "pass" : "fail", pass ? "" : "FAIL: ", got);
    if(!pass) {
      fputs("<span class=\"cap\">", out);
      html__esc(out, why);
      fputs("</span>", out);
    }
  }
  fputs("</h2>\n", out);
  if(sc && sc->description[0]) {
    fputs("<p class=\"desc\">", out);
    html__esc(out, sc->description);
    fputs("</p>\n", out);
  }
  if(sc && o) {
    sim_outcome_summary(sc, o, summary, sizeof(summary));
    fprintf(out, "<p class=\"summary\">seed %" PRIu64 ": ", sc->seed);
    html__esc(out, summary);
    fputs("</p>\n", out);
  }
  fputs("<div class=\"diagram\">\n", out);
  if(html__svg(out, story, run))
    fputs("<p class=\"cap\">The diagram could not be drawn (out of memory)."
          "</p>\n",
          out);
  fputs("</div>\n", out);
  if(story->clients_total > story->clients_shown ||
     story->nlegs < story->legs_total)
    fprintf(out,
            "<p class=\"cap\">The diagram shows %zu of %zu legs: those "
            "of the first %u of %u clients%s.</p>\n",
            story->nlegs, story->legs_total, story->clients_shown,
            story->clients_total,
            story->nlegs >= HTML_MAX_LEGS ? ", up to the leg limit" : "");
  if(o) {
    fputs("<h3>What the users saw, POST by POST</h3>\n", out);
    html__timeline(out, &o->sessions);
  }
  html__details(out, story);
  fputs("</section>\n", out);
}

/* Writes run's row of the overview: scenario, expected, got, users with
 * the error, empty POSTs at Exchange, members and their policies. */
static void html__overview_row(FILE *out, const struct html_run *run,
                               size_t index)
{
  const struct sim_outcome *o = run->outcome;
  const struct scenario *sc = run->sc;
  const char *title = run->title ? run->title : sc ? sc->name : "run";
  char why[512];
  size_t k;

  fprintf(out, "<tr data-run=\"%zu\"><td>", index + 1);
  html__esc(out, title);
  fputs("</td>", out);
  if(sc && o) {
    bool pass = sim_scenario_check(sc, o, why, sizeof(why)) != 0;
    const char *want = sc->expect.outcome < 0 ? "-"
                       : sc->expect.outcome   ? "error"
                                              : "clean";
    fprintf(out,
            "<td>%s</td><td class=\"%s\">%s%s</td><td>%u of %zu</td>"
            "<td>%" PRIu64 " of %" PRIu64 "</td><td>",
            want, pass ? "pass" : "fail",
            client_class_name(sim_outcome_class(o)), pass ? "" : " (FAIL)",
            o->sessions.users_with_error, o->sessions.count,
            o->backend.empty_posts, o->backend.ews_posts);
    for(k = 0; k < sc->nmembers; k++) {
      const struct scenario_member *m = &sc->members[k];
      html__escf(
          out, "%s%s %s%s: %s", k ? ", " : "", m->name,
          scenario_patch_name(m->patch), m->script ? " + script" : "",
          proxy_policy_name(scenario_effective_policy(m->patch, m->script)));
    }
    fputs("</td>", out);
  }
  else
    fputs("<td colspan=\"5\"></td>", out);
  fputs("</tr>\n", out);
}

int html_report_add(struct html_report *report, const struct html_run *run,
                    char *err, size_t errlen)
{
  char *row = NULL, **rows;
  size_t rowlen = 0;
  struct story story;
  char *text = NULL, **sections;
  size_t len = 0;
  FILE *out;
  int result = -1;

  if(story_build(run->rec, run->outcome ? &run->outcome->sessions : NULL,
                 HTML_MAX_CLIENTS, HTML_MAX_LEGS, &story)) {
    snprintf(err, errlen, "--html: out of memory reading the trace");
    return -1;
  }
  out = open_memstream(&text, &len);
  if(!out) {
    snprintf(err, errlen, "--html: out of memory");
    goto done;
  }
  html__section(out, run, &story, report->count);
  if(fclose(out)) {
    snprintf(err, errlen, "--html: out of memory rendering the page");
    goto done;
  }
  sections =
      kb_array_grow(report->sections, sizeof(*sections), report->count, 1);
  if(!sections) {
    snprintf(err, errlen, "--html: out of memory");
    goto done;
  }
  report->sections = sections;
  rows = kb_array_grow(report->rows, sizeof(*rows), report->count, 1);
  if(!rows) {
    snprintf(err, errlen, "--html: out of memory");
    goto done;
  }
  report->rows = rows;
  out = open_memstream(&row, &rowlen);
  if(!out) {
    snprintf(err, errlen, "--html: out of memory");
    goto done;
  }
  html__overview_row(out, run, report->count);
  if(fclose(out)) {
    snprintf(err, errlen, "--html: out of memory rendering the page");
    goto done;
  }
  if(run->outcome && run->outcome->sessions.count > 1)
    report->several_clients = true;
  report->rows[report->count] = row;
  row = NULL;
  report->sections[report->count++] = text;
  text = NULL;
  result = 0;

done:
  free(row);
  free(text);
  story_free(&story);
  return result;
}

/* Appends text as a section and row as its overview row; takes both.
 * Returns 0, or -1 out of memory (both freed). */
static int html__append(struct html_report *report, char *text, char *row)
{
  char **sections, **rows;

  sections =
      kb_array_grow(report->sections, sizeof(*sections), report->count, 1);
  if(sections)
    report->sections = sections;
  rows = sections ? kb_array_grow(report->rows, sizeof(*rows), report->count, 1)
                  : NULL;
  if(!rows) {
    free(text);
    free(row);
    return -1;
  }
  report->rows = rows;
  report->rows[report->count] = row;
  report->sections[report->count++] = text;
  return 0;
}

int html_report_add_story(struct html_report *report,
                          const struct html_story_section *sec, char *err,
                          size_t errlen)
{
  struct html_run run = {sec->title, NULL, NULL, NULL};
  char *text = NULL, *row = NULL;
  size_t len = 0, rowlen = 0, i;
  FILE *out = open_memstream(&text, &len);

  if(!out) {
    snprintf(err, errlen, "--html: out of memory");
    return -1;
  }
  fprintf(out, "<section class=\"run\" id=\"run-%zu\">\n<h2>",
          report->count + 1);
  html__esc(out, sec->title);
  if(sec->verdict) {
    fprintf(out, " <span class=\"verdict %s\">", sec->failed ? "fail" : "pass");
    html__esc(out, sec->verdict);
    fputs("</span>", out);
  }
  fputs("</h2>\n", out);
  if(sec->nlines) {
    fputs("<ul class=\"findings\">\n", out);
    for(i = 0; i < sec->nlines; i++) {
      fputs("<li>", out);
      html__esc(out, sec->lines[i]);
      fputs("</li>\n", out);
    }
    fputs("</ul>\n", out);
  }
  fputs("<div class=\"diagram\">\n", out);
  if(html__svg(out, sec->story, &run))
    fputs("<p class=\"cap\">The diagram could not be drawn (out of memory)."
          "</p>\n",
          out);
  fputs("</div>\n", out);
  if(sec->story->nlegs < sec->story->legs_total)
    fprintf(out,
            "<p class=\"cap\">The diagram shows %zu of %zu legs: those of the "
            "first %u of %u client connections, and those of findings.</p>\n",
            sec->story->nlegs, sec->story->legs_total,
            sec->story->clients_shown, sec->story->clients_total);
  html__details(out, sec->story);
  fputs("</section>\n", out);
  if(fclose(out)) {
    free(text);
    snprintf(err, errlen, "--html: out of memory rendering the page");
    return -1;
  }
  out = open_memstream(&row, &rowlen);
  if(!out) {
    free(text);
    snprintf(err, errlen, "--html: out of memory");
    return -1;
  }
  fprintf(out, "<tr data-run=\"%zu\"><td>", report->count + 1);
  html__esc(out, sec->title);
  fputs("</td><td colspan=\"5\">", out);
  html__esc(out, sec->verdict);
  fputs("</td></tr>\n", out);
  if(fclose(out)) {
    free(text);
    free(row);
    snprintf(err, errlen, "--html: out of memory rendering the page");
    return -1;
  }
  if(html__append(report, text, row)) {
    snprintf(err, errlen, "--html: out of memory");
    return -1;
  }
  return 0;
}

int html_report_set_lead(struct html_report *report, const char *text)
{
  char *copy = strdup(text);

  if(!copy)
    return -1;
  free(report->lead);
  report->lead = copy;
  return 0;
}

/* The page's own style: no fonts, images or anything else from outside. */
static const char html__css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;padding:18px 22px;font:14px/1.4 'DejaVu Sans','Segoe UI',"
    "Arial,sans-serif;color:#1f2a30;background:#fafbfc}"
    "h1{font-size:22px;margin:0 0 4px}"
    "h2{font-size:18px;margin:0 0 6px;display:flex;gap:10px;align-items:center;"
    "flex-wrap:wrap}"
    "h3{font-size:15px;margin:16px 0 6px}"
    "p{margin:4px 0}"
    ".lead{color:#455a64;max-width:1100px}"
    ".legend{display:flex;flex-wrap:wrap;gap:8px 22px;margin:12px 0 16px;"
    "padding:8px 12px;background:#fff;border:1px solid #dde3e8;"
    "border-radius:6px;font-size:13px}"
    ".legend span{display:inline-flex;align-items:center;gap:6px}"
    ".sw{display:inline-block;width:34px;height:0;border-top:2px solid #455a64}"
    ".sw.rep{border-top-style:dashed}"
    ".sw.bad{border-top:3px solid #d32f2f}"
    ".sw.rep.bad{border-top:3px dashed #d32f2f}"
    ".sw.auth{border-top:2px dashed #1565c0}"
    ".sw.ok{border-top:2px dashed #2e7d32}"
    ".dot{display:inline-block;width:10px;height:10px;border-radius:50%;"
    "background:#ffb300;border:1px solid #8d6e00}"
    ".dot.bad{background:#d32f2f;border-color:#8e0000}"
    /* Two runs side by side down to a 1024-pixel projector. */
    ".runs{display:grid;grid-template-columns:repeat(auto-fit,"
    "minmax(min(100%,440px),1fr));gap:22px;align-items:start}"
    ".run{background:#fff;border:1px solid #dde3e8;border-radius:8px;"
    "padding:14px 16px;min-width:0}"
    ".verdict{font-size:13px;padding:2px 10px;border-radius:12px;"
    "font-weight:normal}"
    ".verdict.pass{background:#e8f5e9;color:#1b5e20;border:1px solid #81c784}"
    ".verdict.fail{background:#ffebee;color:#b71c1c;border:1px solid #e57373}"
    ".desc{color:#37474f}.summary{color:#546e7a;font-size:13px}"
    ".cap{color:#6d4c41;font-size:12px;font-style:italic}"
    ".diagram{margin-top:10px;overflow-x:auto}"
    "svg.seq{display:block;max-width:100%;height:auto;font-size:11.5px;"
    "font-family:'DejaVu Sans','Segoe UI',Arial,sans-serif}"
    "svg .lane{stroke:#b0bec5;stroke-dasharray:4 4}"
    "svg .actor rect{fill:#263238}svg .actor text{fill:#fff;text-anchor:middle}"
    "svg .actor .name{font-weight:bold;font-size:13px}"
    "svg .actor .sub{font-size:10px;fill:#cfd8dc}"
    "svg .actor .buggy{fill:#ff8a80;font-weight:bold}"
    "svg .actor .fixed{fill:#b9f6ca;font-weight:bold}"
    "svg .band rect{fill:#eceff1}svg .band text{font-weight:bold;fill:#37474f}"
    "svg .hit{fill:transparent}svg g.leg:hover .hit{fill:#fff8e1}"
    "svg line.req,svg line.rep{stroke:#455a64;stroke-width:1.6}"
    "svg line.rep{stroke-dasharray:6 4}"
    "svg path.head{fill:#455a64}"
    "svg .auth{stroke:#1565c0}svg path.head.auth{fill:#1565c0}"
    "svg line.ok{stroke:#2e7d32}svg path.head.ok{fill:#2e7d32}"
    "svg line.lost{stroke:#90a4ae;stroke-dasharray:2 3}"
    "svg path.head.lost{fill:#90a4ae}svg text.lbl.lost{fill:#78909c}"
    "svg line.bad{stroke:#d32f2f;stroke-width:2.8}svg "
    "path.head.bad{fill:#d32f2f}"
    "svg text.lbl{font-size:11.5px;text-anchor:middle;fill:#263238;"
    "paint-order:stroke;"
    "stroke:#fff;stroke-width:3px}"
    "svg text.lbl.auth{fill:#0d47a1}svg text.lbl.ok{fill:#1b5e20}"
    "svg text.lbl.bad{fill:#c62828;font-weight:bold}"
    "svg .decision{fill:#ffb300;stroke:#8d6e00}"
    "svg .decision.bad{fill:#d32f2f;stroke:#8e0000}"
    "svg text.why{font-size:11px;font-style:italic;fill:#6d5200;"
    "paint-order:stroke;stroke:#fff;stroke-width:3px}"
    "svg text.why.bad{fill:#c62828;font-weight:bold}"
    "svg text.conn{font-size:11px;font-style:italic;fill:#78909c}"
    "svg .post rect{fill:#e8f5e9;stroke:#66bb6a}svg .post text{fill:#1b5e20}"
    "svg .post.fail rect{fill:#ffebee;stroke:#e57373}"
    "svg .post.fail text{fill:#b71c1c}"
    "svg .notify rect{fill:#d32f2f}svg .notify text{fill:#fff;"
    "font-weight:bold}"
    "table{border-collapse:collapse;font-size:12px}"
    "th,td{border:1px solid #dde3e8;padding:4px 6px;text-align:left;"
    "vertical-align:top}"
    "thead th{background:#eceff1}"
    ".timeline td.ok{background:#f1f8f1}.timeline td.fail{background:#fdecec}"
    ".timeline small{display:block;color:#546e7a}"
    ".badge{display:inline-block;margin:2px 0 0;padding:1px 7px;"
    "border-radius:9px;background:#d32f2f;color:#fff;font-weight:bold;"
    "font-size:11px}"
    "details.legs{margin-top:14px}details.legs summary{cursor:pointer;"
    "color:#1565c0}"
    "details.legs table{margin-top:6px;width:100%}"
    "details.legs td.tok{font-family:'DejaVu Sans Mono',monospace;"
    "font-size:11px;overflow-wrap:anywhere}"
    "details.legs td.fail,details.legs tr.bad td{color:#b71c1c}"
    "svg text.remark{font-size:11.5px;fill:#37474f}"
    "svg text.remark.gap{fill:#5d4037;font-style:italic}"
    "svg text.remark.closed{fill:#6a1b9a}"
    "svg text.remark.failwhy{fill:#b71c1c;font-weight:bold}"
    "svg text.remark.refused{fill:#b71c1c}"
    "svg text.hopkind{font-size:11px;fill:#455a64;text-anchor:middle;"
    "font-style:italic}"
    "table.overview{margin:0 0 16px}table.overview td.fail{color:#b71c1c;"
    "font-weight:bold}table.overview td.pass{color:#1b5e20}"
    "footer{margin-top:18px;color:#78909c;font-size:12px}"
    /* "Big" ticked, for the back of a room: one run per row, so each
     * diagram gets the page's width, and larger labels. */
    ".big{display:inline-flex;gap:6px;align-items:center;margin:0 0 12px;"
    "font-size:13px}"
    "body:has(#big:checked) .runs{grid-template-columns:1fr}"
    "body:has(#big:checked) svg text.lbl,body:has(#big:checked) svg "
    "text.remark,body:has(#big:checked) svg text.why{font-size:14px}"
    /* On paper or a projector's handout: one run a page, big labels, no
     * hover needed (every remark is already text on the diagram). */
    "@media print{body{background:#fff;padding:0}.legend{display:none}"
    ".runs{display:block}.run{break-inside:avoid;page-break-after:always;"
    "border:0}svg text.lbl,svg text.remark,svg text.why{font-size:14px}"
    "svg .actor .name{font-size:15px}details.legs{display:none}}";

/* Records how big each diagram rendered, so a headless browser's DOM dump
 * shows that it was laid out (tests/test_report.c reads it). */
static const char html__script[] =
    "(function(){var s=document.querySelectorAll('svg.seq');"
    "for(var i=0;i<s.length;i++){var b=s[i].getBoundingClientRect();"
    "s[i].setAttribute('data-rendered-width',Math.round(b.width));"
    "s[i].setAttribute('data-rendered-height',Math.round(b.height));}"
    "var r=document.querySelectorAll('section.run');"
    "for(var j=0;j<r.length;j++){var c=r[j].getBoundingClientRect();"
    "r[j].setAttribute('data-rendered-left',Math.round(c.left));"
    "r[j].setAttribute('data-rendered-top',Math.round(c.top));}"
    "document.documentElement.setAttribute('data-rendered',String(s.length));"
    "})();";

int html_report_write(const struct html_report *report, const char *path,
                      char *err, size_t errlen)
{
  FILE *out = evidence_open("--html", path, err, errlen);
  size_t i;
  int result = -1;

  if(!out)
    return -1;
  fputs(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width\">\n<title>",
      out);
  html__esc(out, report->title);
  fprintf(out, "</title>\n<style>%s</style>\n</head>\n<body>\n<header>\n<h1>",
          html__css);
  html__esc(out, report->title);
  if(report->lead) {
    /* A page of stories read back from captures: their own words, and
     * red for the legs of a finding. */
    fputs("</h1>\n<p class=\"lead\">", out);
    html__esc(out, report->lead);
    fputs("</p>\n</header>\n<div class=\"legend\">"
          "<span><i class=\"sw\"></i>request</span>"
          "<span><i class=\"sw rep\"></i>answer</span>"
          "<span><i class=\"sw auth\"></i>401: a challenge</span>"
          "<span><i class=\"sw ok\"></i>2xx answer</span>"
          "<span><i class=\"sw bad\"></i>a leg of a finding</span>"
          "<span><i class=\"sw rep bad\"></i>a 5xx answer</span>"
          "<span><i class=\"dot bad\"></i>the defects it shows</span>"
          "</div>\n",
          out);
  }
  else
    fputs(
        "</h1>\n<p class=\"lead\">Communicator re-authenticates every POST: on "
        "a keep-alive connection ISA has already authenticated, it sends "
        "<code>Authorization: NTLM &lt;type 1&gt;</code> with "
        "<code>Content-Length: 0</code>, holding the body back for the "
        "handshake. ISA 2006 as shipped keeps the connection's "
        "authentication, forwards the body-less POST, and Exchange answers a "
        "SOAP 500: the user sees \xe2\x80\x9cOutlook Integration "
        "Error\xe2\x80\x9d. "
        "With KB 942638 ISA challenges the POST, so the body arrives with the "
        "type 3. Hover over an arrow for its NTLM tokens decoded.</p>\n"
        "</header>\n<div class=\"legend\">"
        "<span><i class=\"sw\"></i>request</span>"
        "<span><i class=\"sw rep\"></i>answer</span>"
        "<span><i class=\"sw auth\"></i>401: NTLM challenge</span>"
        "<span><i class=\"sw ok\"></i>2xx answer</span>"
        "<span><i class=\"sw bad\"></i>POST that reached Exchange without its "
        "body</span>"
        "<span><i class=\"sw rep bad\"></i>Exchange's 500 (SOAP fault) and the "
        "same 500 at Communicator</span>"
        "<span><i class=\"dot\"></i>ISA's decision</span>"
        "<span><i class=\"dot bad\"></i>ISA kept the connection's "
        "authentication</span>"
        "<span class=\"badge\">&#9888; Outlook Integration Error</span> "
        "<span>appears for the user</span>"
        "</div>\n"
        "<label class=\"big\"><input type=\"checkbox\" id=\"big\"> Big: "
        "one run per row, larger labels (for a projector)</label>\n",
        out);
  /* Several scenarios or clients: what each run showed, before the
   * diagrams. */
  if(report->count > 1 || report->several_clients) {
    fputs("<table class=\"overview\"><thead><tr><th>scenario</th>"
          "<th>expected</th><th>got</th><th>users with the error</th>"
          "<th>empty POSTs at Exchange</th><th>members</th></tr></thead>"
          "<tbody>\n",
          out);
    for(i = 0; i < report->count; i++)
      fputs(report->rows[i], out);
    fputs("</tbody></table>\n", out);
  }
  fputs("<main class=\"runs\">\n", out);
  for(i = 0; i < report->count; i++)
    fputs(report->sections[i], out);
  if(report->lead)
    fprintf(out,
            "</main>\n<footer>Written by kbsim analyze.</footer>\n"
            "<script>%s</script>\n</body>\n</html>\n",
            html__script);
  else
    fprintf(out,
            "</main>\n<footer>Written by kbsim from %zu run%s; every run "
            "is reproducible from its seed.</footer>\n<script>%s</script>\n"
            "</body>\n</html>\n",
            report->count, report->count == 1 ? "" : "s", html__script);
  result = evidence_close(out, "--html", path, err, errlen);
  return result;
}
