/*
 * serve_page.c - see serve_page.h. Plain tables, self-contained (no script,
 * no external resource), readable printed: every fact is in the text, none
 * only in a tooltip.
 */
#include "render/serve_page.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "evidence/evidence.h"
#include "render/html.h"

/* What a close code means, for people (the codes of serve's JSON report,
 * evidence/serve_report.c). */
static const struct {
  const char *code, *text;
} serve_page__closes[] = {
    {"idle", "closed by ISA: idle past the listener's limit"},
    {"max-requests", "closed by ISA: the listener's max requests"},
    {"client-idle", "closed by the client: idle past its own limit"},
    {"client-max-requests", "closed by the client: its max requests"},
    {"client-left", "closed by the client in the middle of a request"},
    {"server-closed", "closed by ISA (its FIN came first)"},
    {"reset", "reset (RST)"},
    {"stopped", "still open when serve stopped"},
    {"member-unreachable", "closed by the balancer: the member could not "
                           "be connected to"},
    {"client-closed", "closed by the client"},
    {"isa-closed", "closed by ISA"},
    {"with-client", "closed by ISA with its client's connection"},
};

/* What a listener's note code means on a request, and whether it is the
 * bug (marked on the row). */
struct serve_page_note {
  const char *code, *text;
  bool bug;
};

static const struct serve_page_note serve_page__notes[] = {
    {"reauth-skipped",
     "type 1 on an authenticated connection forwarded without a challenge: "
     "the POST reached Exchange without its body (KB 942638)",
     true},
    {"reauth-challenged",
     "type 1 on an authenticated connection challenged again (the fix)", false},
    {"offer", "no credentials: 401 offering NTLM", false},
    {"challenge", "type 1: 401 with a challenge", false},
    {"auth-ok", "type 3 verified: forwarded with its body", false},
    {"auth-refused", "type 3 refused: 401", false},
    {"forward-authenticated", "authenticated connection: forwarded", false},
};

/* The row of note code, or NULL when the page has no words for it. */
static const struct serve_page_note *serve_page__note(const char *code)
{
  size_t k;

  for(k = 0; code && k < sizeof(serve_page__notes) / sizeof(*serve_page__notes);
      k++)
    if(!strcmp(code, serve_page__notes[k].code))
      return &serve_page__notes[k];
  return NULL;
}

static const char *serve_page__str(const json_t *o, const char *key)
{
  const char *v = json_string_value(json_object_get(o, key));

  return v ? v : "";
}

static long long serve_page__int(const json_t *o, const char *key)
{
  return (long long)json_integer_value(json_object_get(o, key));
}

static void serve_page__text(FILE *out, const char *text)
{
  html_escape(out, text, strlen(text));
}

/* Writes one cell of a row: the string at key in o, escaped ("" when o
 * has none). */
static void serve_page__cell(FILE *out, const json_t *o, const char *key)
{
  fputs("<td>", out);
  serve_page__text(out, serve_page__str(o, key));
  fputs("</td>", out);
}

/* Writes one cell of a row: the integer at key in o (0 when o has none). */
static void serve_page__count(FILE *out, const json_t *o, const char *key)
{
  fprintf(out, "<td>%lld</td>", serve_page__int(o, key));
}

static void serve_page__members(FILE *out, const json_t *report)
{
  const json_t *members = json_object_get(report, "members");
  size_t i;

  fputs("<h2>Members</h2>\n<table><tr><th>member</th><th>patch</th>"
        "<th>script</th><th>policy at start</th><th>policy at stop</th>"
        "<th>connections</th><th>requests</th><th>re-authentications "
        "not challenged</th><th>empty POSTs forwarded</th></tr>\n",
        out);
  for(i = 0; i < json_array_size(members); i++) {
    const json_t *m = json_array_get(members, i);
    const json_t *st = json_object_get(m, "stats");

    fputs("<tr>", out);
    serve_page__cell(out, m, "name");
    serve_page__cell(out, m, "patch");
    fprintf(out, "<td>%s</td>",
            json_is_true(json_object_get(m, "script")) ? "run" : "not run");
    serve_page__cell(out, m, "policy");
    serve_page__cell(out, m, "policy_at_stop");
    serve_page__count(out, st, "connections");
    serve_page__count(out, st, "requests");
    serve_page__count(out, st, "reauth_skipped");
    serve_page__count(out, st, "forwarded_empty_posts");
    fputs("</tr>\n", out);
  }
  fputs("</table>\n", out);
}

static void serve_page__connections(FILE *out, const json_t *report)
{
  const json_t *conns = json_object_get(report, "connections");
  size_t i, k;

  fputs("<h2>Connections</h2>\n<table><tr><th>connection</th><th>hop</th>"
        "<th>opened</th><th>closed</th><th>why it closed</th>"
        "<th>messages</th></tr>\n",
        out);
  for(i = 0; i < json_array_size(conns); i++) {
    const json_t *c = json_array_get(conns, i);
    const char *code = serve_page__str(c, "close");
    const char *why = *code ? code : "not closed";

    for(k = 0; k < sizeof(serve_page__closes) / sizeof(*serve_page__closes);
        k++)
      if(!strcmp(serve_page__closes[k].code, code))
        why = serve_page__closes[k].text;
    fprintf(out, "<tr class=\"conn%s\">",
            !strcmp(code, "reset") ? " reset" : "");
    serve_page__cell(out, c, "name");
    serve_page__cell(out, c, "hop");
    serve_page__cell(out, c, "opened");
    serve_page__cell(out, c, "closed");
    fputs("<td class=\"why\">", out);
    serve_page__text(out, why);
    fputs("</td>", out);
    serve_page__count(out, c, "messages");
    fputs("</tr>\n", out);
  }
  fputs("</table>\n", out);
}

static void serve_page__exchanges(FILE *out, const json_t *report)
{
  const json_t *all = json_object_get(report, "exchanges");
  size_t i, j;

  fputs(
      "<h2>Requests</h2>\n<p>The client hop as the member answered it, "
      "the upstream hop as Exchange did, in the order they were recorded.</p>\n"
      "<table><tr><th>time</th><th>hop</th><th>seen by</th>"
      "<th>connection</th><th>request</th><th>Authorization</th>"
      "<th>body</th><th>status</th><th>the listener's decision</th></tr>\n",
      out);
  for(i = 0; i < json_array_size(all); i++) {
    const json_t *x = json_array_get(all, i);
    const json_t *notes = json_object_get(x, "notes");
    bool bug = false;
    bool upstream = !strcmp(serve_page__str(x, "hop"), "proxy-backend");

    for(j = 0; j < json_array_size(notes); j++) {
      const struct serve_page_note *n =
          serve_page__note(json_string_value(json_array_get(notes, j)));
      if(n && n->bug)
        bug = true;
    }
    /* An empty POST that reached Exchange is the bug seen from there. */
    if(upstream && !strcmp(serve_page__str(x, "method"), "POST") &&
       !serve_page__int(x, "request_body_length"))
      bug = true;
    fprintf(out, "<tr class=\"x%s%s\">", upstream ? " up" : "",
            bug ? " bug" : "");
    serve_page__cell(out, x, "at");
    fprintf(out, "<td>%s</td>",
            upstream ? "ISA &rarr; Exchange" : "client &rarr; ISA");
    serve_page__cell(out, x, "observer");
    serve_page__cell(out, x, "connection");
    fputs("<td>", out);
    serve_page__text(out, serve_page__str(x, "method"));
    fputs(" ", out);
    serve_page__text(out, serve_page__str(x, "path"));
    fputs("</td>", out);
    serve_page__cell(out, x, "request_ntlm");
    fprintf(out, "<td>%lld bytes</td>",
            serve_page__int(x, "request_body_length"));
    serve_page__count(out, x, "status");
    fputs("<td class=\"why\">", out);
    for(j = 0; j < json_array_size(notes); j++) {
      const char *code = json_string_value(json_array_get(notes, j));
      const struct serve_page_note *n = serve_page__note(code);

      if(j)
        fputs("; ", out);
      serve_page__text(out, n ? n->text : code);
    }
    if(upstream && bug)
      fputs("an EWS POST without its body: Exchange answers a SOAP 500", out);
    fputs("</td></tr>\n", out);
  }
  fputs("</table>\n", out);
}

int serve_page_write(const struct json_t *report, const char *path, char *err,
                     size_t errlen)
{
  const json_t *sum = json_object_get(report, "summary");
  const json_t *sc = json_object_get(report, "scenario");
  FILE *out = evidence_open("--html", path, err, errlen);
  int result = 0;

  if(!out)
    return -1;
  fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<title>kbsim serve: what passed</title>\n<style>\n"
        "body{font:15px/1.4 sans-serif;margin:1.5em;color:#222}\n"
        "table{border-collapse:collapse;margin-bottom:1.5em}\n"
        "th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;"
        "vertical-align:top}\n"
        "th{background:#eee}\ntr.bug td{background:#fde0dc}\n"
        "tr.reset td.why{font-weight:bold}\n"
        "tr.up td:first-child{padding-left:1.5em}\n"
        "@media print{body{margin:0;font-size:11pt}}\n"
        "</style></head><body>\n<h1>kbsim serve: what passed through ",
        out);
  serve_page__text(out, serve_page__str(sc, "name"));
  fputs("</h1>\n<p>From ", out);
  serve_page__text(out, serve_page__str(report, "started"));
  fputs(" to ", out);
  serve_page__text(out, serve_page__str(report, "stopped"));
  fputs(" (stopped by ", out);
  serve_page__text(out, serve_page__str(report, "signal"));
  fprintf(out,
          ", the real clock). <span class=\"summary\">%lld requests, %lld "
          "answered 5xx; %lld forwarded to Exchange, %lld of them POSTs "
          "without their body; %lld re-authentications not challenged; "
          "%lld connections, %lld reset.</span></p>\n",
          serve_page__int(sum, "requests"),
          serve_page__int(sum, "server_errors"),
          serve_page__int(sum, "forwarded"),
          serve_page__int(sum, "backend_empty_posts"),
          serve_page__int(sum, "proxy_reauth_skipped"),
          serve_page__int(sum, "connections"), serve_page__int(sum, "resets"));
  serve_page__members(out, report);
  serve_page__exchanges(out, report);
  serve_page__connections(out, report);
  fputs("</body></html>\n", out);
  if(ferror(out)) {
    snprintf(err, errlen, "--html %s: cannot write: %s", path,
             strerror(errno ? errno : EIO));
    result = -1;
  }
  if(evidence_close(out, "--html", path, result ? NULL : err, errlen))
    result = -1;
  return result;
}
