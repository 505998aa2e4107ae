/*
 * html_tables.c - the tables under a run's diagram: what each user saw
 * POST by POST, and every leg with its NTLM tokens decoded.
 */
#include <string.h>

#include "html_int.h"

#define HTML_MAX_POST_COLUMNS 13

/* The head of request column j: what its requests are ("autodiscover",
 * "POST 1", ie's "GET 0"), taken from the sessions that have one, or
 * "request N" when their kinds put different requests there. */
static void html_column_head(const struct sim_sessions *ss, size_t j, FILE *out)
{
  char head[64] = "", one[64];
  size_t i;

  for(i = 0; i < ss->count && i < HTML_MAX_CLIENTS; i++) {
    const struct sim_session *s = &ss->sessions[i];
    const struct client_post_result *r;

    if(s->error[0] || j >= s->nresults)
      continue;
    r = &s->results[j];
    html__request_head(r, one, sizeof(one));
    if(!head[0])
      snprintf(head, sizeof(head), "%s", one);
    else if(strcmp(head, one)) {
      snprintf(head, sizeof(head), "request %zu", j + 1);
      break;
    }
  }
  fprintf(out, "<th>%s</th>", head[0] ? head : "");
}

/* Writes the timeline: one row per user, one cell per POST, with the
 * notification where it appeared and presence and scheduling after it. */
void html__timeline(FILE *out, const struct sim_sessions *ss)
{
  size_t i, j, columns = 0, shown = 0;

  for(i = 0; i < ss->count && i < HTML_MAX_CLIENTS; i++)
    if(ss->sessions[i].nresults > columns)
      columns = ss->sessions[i].nresults;
  if(columns > HTML_MAX_POST_COLUMNS)
    columns = HTML_MAX_POST_COLUMNS;
  fputs("<table class=\"timeline\"><thead><tr><th>user</th>", out);
  for(j = 0; j < columns; j++)
    html_column_head(ss, j, out);
  fputs("</tr></thead><tbody>\n", out);
  for(i = 0; i < ss->count && i < HTML_MAX_CLIENTS; i++) {
    const struct sim_session *s = &ss->sessions[i];

    shown++;
    fprintf(out, "<tr data-client=\"%u\"><th>client %u</th>", s->id, s->id);
    if(s->error[0]) {
      fprintf(out, "<td class=\"fail\" colspan=\"%zu\">could not start: ",
              columns ? columns : 1);
      html__esc(out, s->error);
      fputs("</td></tr>\n", out);
      continue;
    }
    for(j = 0; j < columns; j++) {
      const struct client_post_result *r =
          j < s->nresults ? &s->results[j] : NULL;
      const struct client_view *v = r && s->views ? &s->views[j] : NULL;
      char name[96];

      if(!r) {
        fputs("<td></td>", out);
        continue;
      }
      html__post_name(s, (int)j, name, sizeof(name));
      fprintf(out, "<td class=\"%s\"><b>",
              r->outcome == CLIENT_OK ? "ok" : "fail");
      html__esc(out, r->kind == CLIENT_POST_AUTODISCOVER
                         ? "autodiscover"
                         : client_post_kind_name(r->kind));
      fprintf(out, "</b> %d %s", r->final_status,
              client_outcome_name(r->outcome));
      if(v) {
        bool appeared = v->integration_error &&
                        (j == 0 || !s->views[j - 1].integration_error);
        if(appeared)
          fputs("<span class=\"badge\">&#9888; " CLIENT_NOTIFICATION_TEXT
                "</span>",
                out);
        fprintf(out, "<small>presence %s \xc2\xb7 scheduling %s</small>",
                v->presence_available ? "&#10003;" : "&#10007;",
                v->scheduling_available ? "&#10003;" : "&#10007;");
      }
      fputs("</td>", out);
    }
    fputs("</tr>\n", out);
  }
  fputs("</tbody></table>\n", out);
  if(ss->count > shown)
    fprintf(out, "<p class=\"cap\">The first %zu of %zu users are shown.</p>\n",
            shown, ss->count);
  else if(columns == HTML_MAX_POST_COLUMNS)
    fputs("<p class=\"cap\">The first POSTs of each session are shown.</p>\n",
          out);
}

/* Writes every leg drawn with its tokens decoded, for reading in full. */
void html__details(FILE *out, const struct story *story)
{
  const char *client = story->lanes[0][0] ? story->lanes[0]
                       : story->kind      ? story->kind->label
                                          : "client";
  const char *server = story->lanes[2][0] ? story->lanes[2] : "Exchange";
  size_t i, j;

  fprintf(out,
          "<details class=\"legs\"><summary>Every leg, NTLM tokens "
          "decoded (%zu legs)</summary>\n<table><thead><tr><th>connection"
          "</th><th>hop</th><th>request</th><th>Authorization</th>"
          "<th>answer</th><th>WWW-Authenticate</th><th>%s</th></tr>"
          "</thead><tbody>\n",
          story->nlegs, story->lanes[0][0] ? "found" : "ISA decided");
  for(i = 0; i < story->nlegs; i++) {
    const struct story_leg *leg = &story->legs[i];

    fprintf(out, "<tr%s><td>", leg->marks[0] ? " class=\"bad\"" : "");
    html__esc(out, leg->conn);
    fputs("</td><td>", out);
    html__escf(out, "%s \xe2\x86\x92 ", client);
    html__esc(out, leg->member[0] ? leg->member : "ISA");
    fputs("</td><td>", out);
    html__escf(out, "%s %s, %zu-byte body", leg->front.method, leg->front.path,
               leg->front.req_body);
    fputs("</td><td class=\"tok\">", out);
    html__esc(out, leg->front.req_token
                       ? leg->front.req_token
                       : html__auth_label(leg->front.req_auth));
    fprintf(out, "</td><td class=\"%s\">",
            leg->front.status >= 500 || !leg->front.status ? "fail" : "");
    if(leg->front.status)
      html__escf(out, "%d, %zu-byte body", leg->front.status,
                 leg->front.resp_body);
    else
      fputs("no answer", out);
    fputs("</td><td class=\"tok\">", out);
    html__esc(out, leg->front.resp_token ? leg->front.resp_token
                   : leg->front.resp_auth != KB_AUTH_NONE
                       ? kb_auth_name(leg->front.resp_auth)
                       : "");
    fputs("</td><td>", out);
    if(leg->marks[0]) {
      html__esc(out, leg->marks);
      if(leg->nisa)
        fputs("<br>", out);
    }
    for(j = 0; j < leg->nisa; j++) {
      if(j)
        fputs("<br>", out);
      html__esc(out, leg->isa_notes[j].text);
    }
    fputs("</td></tr>\n", out);
    for(j = 0; j < leg->nback; j++) {
      const struct story_hop *hop = &leg->back[j];
      bool empty = leg->captured ? hop->marked : html__empty_post(hop);

      fprintf(out, "<tr class=\"back%s\"><td></td><td>", empty ? " bad" : "");
      html__esc(out, leg->member[0] ? leg->member : "ISA");
      html__escf(out, " \xe2\x86\x92 %s", server);
      fputs("</td><td>", out);
      html__escf(out, "%s %s, %zu-byte body", hop->method, hop->path,
                 hop->req_body);
      fputs("</td><td class=\"tok\">", out);
      html__esc(out, hop->req_token ? hop->req_token
                                    : html__auth_label(hop->req_auth));
      fprintf(out, "</td><td class=\"%s\">", hop->status >= 500 ? "fail" : "");
      html__escf(out, "%d, %zu-byte body", hop->status, hop->resp_body);
      /* The last column: why Exchange refused (Extended Protection). */
      fputs("</td><td></td><td>", out);
      if(hop->why)
        html__escf(out, "Exchange: %s", hop->why);
      fputs("</td></tr>\n", out);
    }
  }
  fputs("</tbody></table></details>\n", out);
}
