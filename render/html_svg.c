/*
 * html_svg.c - the sequence diagram of a run as inline SVG: a lane for
 * the client, each ISA member and Exchange, a row per arrow or remark,
 * ISA's decisions on its lane, clients whose sessions went the same way
 * drawn once; with TLS, what each hop is and why Exchange refused a
 * login (Extended Protection).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "html_int.h"

/* The longest arrow label ("POST /autodiscover/autodiscover.xml · NTLM
 * type 3 · 370 B") takes about 340 px at 11.5 px: the gap between lanes. */
#define SVG_ROW 22                         /* one arrow or one remark */
#define SVG_TOP 72                         /* below the lane headers */
#define SVG_HEAD_W 150                     /* a lane header */
#define SVG_X_CLIENT 80                    /* the client's lane */
#define SVG_GAP 350                        /* between lanes that talk */
#define SVG_X_ISA (SVG_X_CLIENT + SVG_GAP) /* the first member's lane */
#define SVG_MEMBER_GAP 170
#define SVG_CHAR_W 6.4 /* a 11.5px character, for pill widths */
#define SVG_BOLD_W 7.4 /* a bold one */

struct html_svg {
  FILE *out; /* the rows, written before the size is known */
  int y;     /* top of the next row */
  int width;
  int x_exchange;
  const struct story *story;
};

static int html__member_x(const struct html_svg *svg, const char *member)
{
  size_t i;

  for(i = 0; i < svg->story->nmembers; i++)
    if(!strcmp(svg->story->members[i], member))
      return SVG_X_ISA + (int)i * SVG_MEMBER_GAP;
  return SVG_X_ISA;
}

/* Draws an arrow from x1 to x2 on the current row with label centred
 * above it; cls picks colour and dash ("req", "rep", plus "bad", "auth",
 * "ok"). */
static void html__arrow(struct html_svg *svg, int x1, int x2, const char *cls,
                        const char *label)
{
  int y = svg->y + 17;
  int dir = x2 > x1 ? 1 : -1;

  fprintf(svg->out,
          "<rect class=\"hit\" x=\"0\" y=\"%d\" width=\"%d\" "
          "height=\"%d\"/>",
          svg->y, svg->width, SVG_ROW);
  fprintf(svg->out, "<text class=\"lbl %s\" x=\"%d\" y=\"%d\">", cls,
          (x1 + x2) / 2, svg->y + 12);
  html__esc(svg->out, label);
  fprintf(svg->out,
          "</text><line class=\"%s\" x1=\"%d\" y1=\"%d\" x2=\"%d\" "
          "y2=\"%d\"/><path class=\"head %s\" d=\"M%d %dl%d -4.5v9z\"/>\n",
          cls, x1, y, x2 - dir * 8, y, cls, x2, y, -dir * 9);
  svg->y += SVG_ROW;
}

/* Who sent leg: a capture's client, or the run's client kind. */
static const char *html__sender(const struct story *story,
                                const struct story_leg *leg)
{
  if(leg->captured)
    return "The client";
  return story->kind ? story->kind->label : "The client";
}

/* Writes a leg's tooltip: every decoded token and ISA's decisions. */
static void html__leg_title(FILE *out, const struct story *story,
                            const struct story_leg *leg)
{
  const char *who = html__sender(story, leg);
  size_t i;

  fputs("<title>", out);
  html__escf(out, "%s, %s %s\n%s sent %s, %s, %zu-byte body", leg->conn,
             leg->front.method, leg->front.path, who, leg->front.method,
             html__auth_label(leg->front.req_auth), leg->front.req_body);
  if(leg->marks[0])
    html__escf(out, "\nFound: %s", leg->marks);
  if(leg->front.req_token)
    html__escf(out, "\n  Authorization: %s", leg->front.req_token);
  for(i = 0; i < leg->nisa; i++)
    html__escf(out, "\n%s decided: %s", leg->member[0] ? leg->member : "ISA",
               leg->isa_notes[i].text);
  if(leg->front.status)
    html__escf(out, "\n%s got %d, %zu-byte body", who, leg->front.status,
               leg->front.resp_body);
  else
    html__escf(out, "\n%s got no answer", who);
  if(leg->front.resp_token)
    html__escf(out, "\n  WWW-Authenticate: %s", leg->front.resp_token);
  fputs("</title>", out);
}

static void html__back_title(FILE *out, const struct story_leg *leg,
                             const struct story_hop *hop)
{
  const char *server = leg->captured ? "the server" : "Exchange";

  fputs("<title>", out);
  html__escf(out, "%s forwarded %s %s to %s, %s, %zu-byte body",
             leg->member[0] ? leg->member : "ISA", hop->method, hop->path,
             server, html__auth_label(hop->req_auth), hop->req_body);
  if(hop->req_token)
    html__escf(out, "\n  Authorization: %s", hop->req_token);
  if(html__empty_post(hop))
    html__escf(out, "\n%s got a POST without its body",
               leg->captured ? "The server" : "Exchange");
  if(hop->status)
    html__escf(out, "\n%s answered %d, %zu-byte body",
               leg->captured ? "The server" : "Exchange", hop->status,
               hop->resp_body);
  if(hop->why)
    html__escf(out, "\nExchange: %s", hop->why);
  fputs("</title>", out);
}

/* The class of an answer arrow: bad for 5xx, auth for a challenge, ok for
 * 2xx, lost when the connection closed under the request (libcurl then
 * sends it again on a new one). */
static const char *html__answer_class(const struct story_hop *hop)
{
  if(!hop->status)
    return "rep lost";
  if(hop->status >= 500)
    return "rep bad";
  if(hop->status == 401)
    return "rep auth";
  if(hop->status < 300)
    return "rep ok";
  return "rep";
}

/* Draws what the user saw once a POST completed: its outcome, and the
 * notification if this POST made it appear. */
static void html__post_row(struct html_svg *svg, const struct sim_session *s,
                           const struct story_leg *leg)
{
  const struct client_post_result *r = &s->results[leg->post];
  bool fail = r->outcome != CLIENT_OK;
  bool appeared =
      s->views && s->views[leg->post].integration_error &&
      (leg->post == 0 || !s->views[leg->post - 1].integration_error);
  char name[96], text[256];
  int w, x = SVG_X_CLIENT + 8;

  html__post_name(s, leg->post, name, sizeof(name));
  snprintf(text, sizeof(text), "%s %s %d %s",
           fail ? "\xe2\x9c\x97" : "\xe2\x9c\x93", name, r->final_status,
           client_outcome_name(r->outcome));
  w = (int)((double)strlen(text) * SVG_CHAR_W) + 16;
  fprintf(svg->out,
          "<g class=\"post %s\" data-post=\"%d\">"
          "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"9\"/>"
          "<text x=\"%d\" y=\"%d\">",
          fail ? "fail" : "ok", leg->post, x, svg->y + 2, w, SVG_ROW - 4, x + 8,
          svg->y + 15);
  html__esc(svg->out, text);
  fputs("</text></g>", svg->out);
  if(appeared) {
    /* Communicator's notification, or what another program shows. */
    const struct client_kind_info *k = svg->story->kind;
    bool notifies = !k || k->notifies;
    const char *what = notifies ? CLIENT_NOTIFICATION_TEXT : k->symptom;
    x += w + 10;
    fprintf(svg->out,
            "<g class=\"notify\"><rect x=\"%d\" y=\"%d\" "
            "width=\"%d\" height=\"%d\" rx=\"9\"/><text x=\"%d\" y=\"%d\">",
            x, svg->y + 2, (int)((double)(strlen(what) + 2) * SVG_BOLD_W) + 18,
            SVG_ROW - 4, x + 9, svg->y + 15);
    html__escf(svg->out, "\xe2\x9a\xa0 %s", what);
    fputs("</text><title>", svg->out);
    if(notifies)
      html__escf(svg->out, "%s shows the notification: %s",
                 html__sender(svg->story, leg), what);
    else
      html__escf(svg->out, "%s shows %s", html__sender(svg->story, leg), what);
    fputs("</title></g>", svg->out);
  }
  fputc('\n', svg->out);
  svg->y += SVG_ROW;
  /* Why it failed, in the client's own words, under the pill. */
  if(fail && r->detail[0]) {
    snprintf(text, sizeof(text), "why: %s", r->detail);
    fprintf(svg->out, "<text class=\"remark failwhy\" x=\"%d\" y=\"%d\">",
            SVG_X_CLIENT + 16, svg->y + 15);
    html__esc(svg->out, text);
    fputs("</text>\n", svg->out);
    svg->y += SVG_ROW;
  }
}

/* Notes that say why a connection closed or a request went again, drawn
 * as text on the diagram: decisions as data, read by code. */
static bool html__close_note(enum kb_note code)
{
  switch(code) {
  case KB_NOTE_IDLE_CLOSED:
  case KB_NOTE_MAX_REQUESTS:
  case KB_NOTE_CLIENT_LEFT:
  case KB_NOTE_RESENT:
  case KB_NOTE_CLIENT_MAX_REQUESTS:
  case KB_NOTE_CLIENT_IDLE:
    return true;
  default:
    return false;
  }
}

/* Draws one line of text across the lanes (cls "gap" or "closed"): what
 * happened between arrows, visible without hovering and in print. */
static void html__remark(struct html_svg *svg, const char *cls,
                         const char *text)
{
  fprintf(svg->out, "<text class=\"remark %s\" x=\"%d\" y=\"%d\">", cls,
          SVG_X_CLIENT + 8, svg->y + 15);
  html__esc(svg->out, text);
  fputs("</text>\n", svg->out);
  svg->y += SVG_ROW;
}

/* Draws the think time before a POST's first leg, when there was any. */
static void html__think_row(struct html_svg *svg, const struct sim_session *s,
                            const struct story_leg *leg)
{
  const struct client_post_result *r;
  char name[96], text[192];

  if(!s || leg->post < 0 || (size_t)leg->post >= s->nresults)
    return;
  r = &s->results[leg->post];
  if(r->think_ms <= 0)
    return;
  html__post_name(s, leg->post, name, sizeof(name));
  snprintf(text, sizeof(text),
           "\xe2\x8f\xb1 %.1f s of think time: the connection sits idle "
           "before %s",
           (double)r->think_ms / 1000.0, name);
  html__remark(svg, "gap", text);
}

/* Draws one leg: the client's request, ISA's decision, whatever ISA
 * forwarded and Exchange's answer, and the answer the client got. */
static void html__svg_leg(struct html_svg *svg, const struct story_leg *leg,
                          const struct sim_session *s)
{
  int xm = html__member_x(svg, leg->member);
  char label[320], decision[128];
  bool bad;
  size_t i;

  if(leg->new_conn) {
    fprintf(svg->out, "<text class=\"conn\" x=\"%d\" y=\"%d\">",
            SVG_X_CLIENT + 8, svg->y + 15);
    html__escf(svg->out, "TCP connection %s \xe2\x86\x92 %s", leg->conn,
               leg->member[0] ? leg->member : "ISA");
    fputs("</text>\n", svg->out);
    svg->y += SVG_ROW;
  }

  html__decision(leg, decision, sizeof(decision), &bad);
  fprintf(svg->out, "<g class=\"leg hop1%s%s\" data-hop=\"1\" data-conn=\"",
          leg->front.status >= 500 ? " failed" : "",
          leg->captured && leg->marks[0] ? " finding" : "");
  html__esc(svg->out, leg->conn);
  fprintf(svg->out, "\" data-method=\"");
  html__esc(svg->out, leg->front.method);
  fprintf(svg->out,
          "\" data-status=\"%d\" data-req-auth=\"%s\" "
          "data-req-body=\"%zu\" data-forwarded=\"%zu\">",
          leg->front.status, kb_auth_name(leg->front.req_auth),
          leg->front.req_body, leg->nback);
  html__leg_title(svg->out, svg->story, leg);
  html__request_label(&leg->front, label, sizeof(label));
  html__arrow(svg, SVG_X_CLIENT, xm,
              leg->captured && leg->front.marked ? "req bad" : "req", label);
  /* ISA's decision: a mark on its lane and a few words beside it. */
  fprintf(svg->out,
          "<circle class=\"decision%s\" cx=\"%d\" cy=\"%d\" "
          "r=\"5\"/><text class=\"why%s\" x=\"%d\" y=\"%d\">",
          bad ? " bad" : "", xm, svg->y - SVG_ROW + 17, bad ? " bad" : "",
          xm + 10, svg->y - SVG_ROW + 21);
  html__esc(svg->out, decision);
  fputs("</text>\n", svg->out);

  /* The answer comes after what was forwarded: keep its row free now and
   * draw it below the forwarded legs. */
  {
    int y_answer = svg->y + (int)leg->nback * 2 * SVG_ROW;
    int y_save = svg->y;
    svg->y = y_answer;
    html__answer_label(&leg->front, label, sizeof(label));
    html__arrow(svg, xm, SVG_X_CLIENT, html__answer_class(&leg->front), label);
    svg->y = y_save;
  }
  fputs("</g>\n", svg->out);

  for(i = 0; i < leg->nback; i++) {
    const struct story_hop *hop = &leg->back[i];
    bool empty = leg->captured ? hop->marked : html__empty_post(hop);

    fprintf(svg->out, "<g class=\"leg hop2%s%s\" data-hop=\"2\" data-conn=\"",
            empty ? " empty-post" : "", hop->status >= 500 ? " failed" : "");
    html__esc(svg->out, leg->conn);
    fprintf(svg->out, "\" data-method=\"");
    html__esc(svg->out, hop->method);
    fprintf(svg->out,
            "\" data-status=\"%d\" data-req-auth=\"%s\" "
            "data-req-body=\"%zu\">",
            hop->status, kb_auth_name(hop->req_auth), hop->req_body);
    html__back_title(svg->out, leg, hop);
    html__request_label(hop, label, sizeof(label));
    html__arrow(svg, xm, svg->x_exchange, empty ? "req bad" : "req", label);
    html__answer_label(hop, label, sizeof(label));
    html__arrow(svg, svg->x_exchange, xm, html__answer_class(hop), label);
    fputs("</g>\n", svg->out);
  }
  svg->y += SVG_ROW; /* the answer's row */

  /* Why Exchange refused a login it would otherwise take (Extended
   * Protection: the binding the client computed against its own). */
  for(i = 0; i < leg->nback; i++)
    if(leg->back[i].why) {
      snprintf(label, sizeof(label), "\xe2\x9c\x97 Exchange: %s",
               leg->back[i].why);
      html__remark(svg, "refused", label);
    }

  /* Why a connection closed, or a request went again, as text. */
  for(i = 0; i < leg->nisa; i++)
    if(html__close_note(leg->isa_notes[i].code)) {
      snprintf(label, sizeof(label), "\xe2\x9c\x82 %s: %s",
               leg->member[0] ? leg->member : "ISA", leg->isa_notes[i].text);
      html__remark(svg, "closed", label);
    }
  for(i = 0; i < leg->nclient; i++)
    if(html__close_note(leg->client_notes[i].code)) {
      snprintf(label, sizeof(label), "\xe2\x9c\x82 %s: %s",
               html__sender(svg->story, leg), leg->client_notes[i].text);
      html__remark(svg, "closed", label);
    }

  if(s && leg->post >= 0 && leg->post_end && (size_t)leg->post < s->nresults)
    html__post_row(svg, s, leg);
}

/* Returns the index after the last leg of the client whose legs start at
 * i (legs are grouped by client). */
static size_t html__client_end(const struct story *story, size_t i)
{
  unsigned client = story->legs[i].client;

  while(i < story->nlegs && story->legs[i].client == client)
    i++;
  return i;
}

/* Returns what the diagram would draw for legs [from, to) of one client,
 * its id and connection names aside, as a string to compare (owned by the
 * caller), or NULL out of memory. */
static char *html__client_sig(const struct story *story, size_t from, size_t to,
                              const struct sim_sessions *ss)
{
  const struct sim_session *s = story_session(ss, story->legs[from].client);
  char *text = NULL, label[320];
  size_t len = 0, i, k;
  bool bad;
  FILE *out = open_memstream(&text, &len);

  if(!out)
    return NULL;
  for(i = from; i < to; i++) {
    const struct story_leg *leg = &story->legs[i];

    html__request_label(&leg->front, label, sizeof(label));
    fprintf(out, "%d|%s|%d|%s|%s|", leg->new_conn, leg->member, leg->post,
            leg->marks, label);
    html__answer_label(&leg->front, label, sizeof(label));
    fprintf(out, "%s|", label);
    html__decision(leg, label, sizeof(label), &bad);
    fprintf(out, "%s|%zu|", label, leg->nback);
    for(k = 0; k < leg->nback; k++) {
      html__request_label(&leg->back[k], label, sizeof(label));
      fprintf(out, "%d|%s|", leg->back[k].marked, label);
      html__answer_label(&leg->back[k], label, sizeof(label));
      fprintf(out, "%s|%s|", label, leg->back[k].why ? leg->back[k].why : "");
    }
    for(k = 0; k < leg->nisa; k++)
      fprintf(out, "i%d|", (int)leg->isa_notes[k].code);
    for(k = 0; k < leg->nclient; k++)
      fprintf(out, "c%d|", (int)leg->client_notes[k].code);
    fputc('\n', out);
  }
  for(k = 0; s && k < s->nresults; k++)
    fprintf(out, "%d|%d|%d|%" PRId64 "|%s|%d\n", (int)s->results[k].kind,
            (int)s->results[k].outcome, s->results[k].final_status,
            s->results[k].think_ms, s->results[k].detail,
            s->views ? s->views[k].integration_error : -1);
  if(fclose(out)) {
    free(text);
    return NULL;
  }
  return text;
}

/* Draws the band that opens the legs of client (and, when same > 1, of
 * the clients up to last whose sessions went the same way). */
static void html__band(struct html_svg *svg, unsigned client, unsigned last,
                       size_t same)
{
  fprintf(svg->out,
          "<g class=\"band\" data-clients=\"%zu\"><rect x=\"0\" y=\"%d\" "
          "width=\"%d\" height=\"%d\"/><text x=\"8\" y=\"%d\">",
          same, svg->y + 2, svg->width, SVG_ROW - 2, svg->y + 17);
  if(same > 1)
    fprintf(svg->out,
            "clients %u\xe2\x80\x93%u: %zu identical sessions, drawn once "
            "(client %u's)",
            client, last, same, client);
  else
    fprintf(svg->out, "client %u", client);
  fputs("</text></g>\n", svg->out);
  svg->y += SVG_ROW;
}

/* Draws the rows of every client's legs into svg->out, clients whose
 * sessions went exactly the same way once. */
static void html__svg_rows(struct html_svg *svg, const struct story *story,
                           const struct html_run *run)
{
  const struct sim_sessions *ss = run->outcome ? &run->outcome->sessions : NULL;
  size_t i;

  for(i = 0; i < story->nlegs;) {
    size_t end = html__client_end(story, i), next = end, same = 1;
    char *sig = html__client_sig(story, i, end, ss);
    unsigned client = story->legs[i].client, last = client;

    /* Clients whose sessions went exactly the same way are drawn once. */
    while(sig && next < story->nlegs) {
      size_t e2 = html__client_end(story, next);
      char *sig2 = html__client_sig(story, next, e2, ss);
      bool equal = sig2 && !strcmp(sig, sig2);

      free(sig2);
      if(!equal)
        break;
      last = story->legs[next].client;
      same++;
      next = e2;
    }
    free(sig);
    html__band(svg, client, last, same);
    for(; i < end; i++) {
      const struct story_leg *leg = &story->legs[i];
      const struct sim_session *s = story_session(ss, leg->client);

      if(i == 0 || story->legs[i - 1].client != leg->client ||
         story->legs[i - 1].post != leg->post)
        html__think_row(svg, s, leg);
      html__svg_leg(svg, leg, s);
    }
    i = next;
  }
  if(!story->nlegs) {
    fprintf(svg->out,
            "<text class=\"conn\" x=\"%d\" y=\"%d\">no request was "
            "recorded</text>\n",
            SVG_X_CLIENT + 8, svg->y + 15);
    svg->y += SVG_ROW;
  }
}

/* Writes what each hop is under the lane headers when the run has TLS:
 * "HTTPS (ISA's own certificate)" between the client and the first
 * member, "HTTP: TLS offloaded, it ends at ISA" between the last member
 * (x_isa) and Exchange. A plain HTTP run's diagram says nothing. */
static void html__svg_hops(FILE *out, const struct scenario *sc, int x_isa,
                           int x_exchange)
{
  char client_hop[96], server_hop[96];

  if(!story_tls_hops(sc, client_hop, sizeof(client_hop), server_hop,
                     sizeof(server_hop)))
    return;
  fprintf(out, "<text class=\"hopkind\" data-hop=\"1\" x=\"%d\" y=\"68\">",
          (SVG_X_CLIENT + SVG_X_ISA) / 2);
  html__esc(out, client_hop);
  fprintf(out,
          "</text><text class=\"hopkind\" data-hop=\"2\" x=\"%d\" "
          "y=\"68\">",
          (x_isa + x_exchange) / 2);
  html__esc(out, server_hop);
  fputs("</text>\n", out);
}

/* Writes the lanes, down to the diagram's height: a line each, and a
 * header saying who, and for each member its patch level and policy. */
static void html__svg_lanes(FILE *out, const struct html_svg *svg,
                            const struct story *story,
                            const struct html_run *run, size_t members)
{
  int lanes[SIM_MAX_MEMBERS + 2];
  size_t nlanes = 0, i;

  lanes[nlanes++] = SVG_X_CLIENT;
  for(i = 0; i < members; i++)
    lanes[nlanes++] = SVG_X_ISA + (int)i * SVG_MEMBER_GAP;
  lanes[nlanes++] = svg->x_exchange;
  for(i = 0; i < nlanes; i++)
    fprintf(out,
            "<line class=\"lane\" x1=\"%d\" y1=\"58\" x2=\"%d\" "
            "y2=\"%d\"/>\n",
            lanes[i], lanes[i], svg->y);
  if(run->sc)
    html__svg_hops(out, run->sc, lanes[nlanes - 2], svg->x_exchange);
  /* Lane headers: who, and for each member its patch level and policy. */
  for(i = 0; i < nlanes; i++) {
    char name[64], sub[96], policy[64];
    const char *tone = "";

    policy[0] = '\0';
    if(story->lanes[0][0]) {
      /* A capture's lanes: client, listener, server, as it names them. */
      size_t k = i == 0 ? 0 : i == nlanes - 1 ? 2 : 1;
      snprintf(name, sizeof(name), "%s", story->lanes[k]);
      snprintf(sub, sizeof(sub), "%s", story->lane_subs[k]);
    }
    else if(i == 0) {
      snprintf(name, sizeof(name), "%s",
               story->kind ? story->kind->label : "client");
      snprintf(sub, sizeof(sub), "%s", story->kind ? story->kind->product : "");
    }
    else if(i == nlanes - 1) {
      snprintf(name, sizeof(name), "Exchange");
      snprintf(sub, sizeof(sub), "Exchange 2007 EWS");
      if(run->sc && run->sc->extended_protection != BACKEND_EPA_NONE) {
        /* Extended Protection for Authentication is Exchange's; the
         * third line says it, short enough for the lane's header. */
        snprintf(policy, sizeof(policy), "EPA: %s",
                 backend_epa_name(run->sc->extended_protection));
        tone =
            run->sc->extended_protection == BACKEND_EPA_REQUIRE ? " buggy" : "";
      }
    }
    else {
      const char *m = story->nmembers ? story->members[i - 1] : "ISA";
      size_t k;
      snprintf(name, sizeof(name), "%s", m);
      snprintf(sub, sizeof(sub), "ISA Server 2006");
      for(k = 0; run->sc && k < run->sc->nmembers; k++) {
        const struct scenario_member *sm = &run->sc->members[k];
        enum proxy_policy pol =
            scenario_effective_policy(sm->patch, sm->script);
        if(strcmp(sm->name, m))
          continue;
        snprintf(sub, sizeof(sub), "%s%s", scenario_patch_name(sm->patch),
                 sm->script ? " + KB script" : ", no KB script");
        snprintf(policy, sizeof(policy), "policy %s", proxy_policy_name(pol));
        tone = pol == PROXY_POLICY_PER_REQUEST ? " fixed" : " buggy";
      }
    }
    fprintf(out,
            "<g class=\"actor\"><rect x=\"%d\" y=\"4\" width=\"%d\" "
            "height=\"%d\" rx=\"6\"/><text class=\"name\" x=\"%d\" "
            "y=\"21\">",
            lanes[i] - SVG_HEAD_W / 2, SVG_HEAD_W, policy[0] ? 54 : 42,
            lanes[i]);
    html__esc(out, name);
    fprintf(out, "</text><text class=\"sub\" x=\"%d\" y=\"36\">", lanes[i]);
    html__esc(out, sub);
    fputs("</text>", out);
    if(policy[0]) {
      fprintf(out, "<text class=\"sub%s\" x=\"%d\" y=\"50\">", tone, lanes[i]);
      html__esc(out, policy);
      fputs("</text>", out);
    }
    fputs("</g>\n", out);
  }
}

/* Writes the lane headers and lines, then the rows, as one <svg>. */
int html__svg(FILE *out, const struct story *story, const struct html_run *run)
{
  struct html_svg svg;
  char *rows = NULL;
  size_t rows_len = 0, members = story->nmembers ? story->nmembers : 1;

  memset(&svg, 0, sizeof(svg));
  svg.story = story;
  svg.x_exchange = SVG_X_ISA + (int)(members - 1) * SVG_MEMBER_GAP + SVG_GAP;
  svg.width = svg.x_exchange + SVG_HEAD_W / 2 + 5;
  svg.y = SVG_TOP;
  /* The rows first, into memory: the <svg>'s height is known only after. */
  svg.out = open_memstream(&rows, &rows_len);
  if(!svg.out)
    return -1;
  html__svg_rows(&svg, story, run);
  if(fclose(svg.out)) {
    free(rows);
    return -1;
  }
  svg.y += 8;

  fprintf(out,
          "<svg class=\"seq\" xmlns=\"http://www.w3.org/2000/svg\" "
          "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
          "aria-label=\"sequence diagram\">\n",
          svg.width, svg.y, svg.width, svg.y);
  html__svg_lanes(out, &svg, story, run, members);
  fwrite(rows, 1, rows_len, out);
  fputs("</svg>\n", out);
  free(rows);
  return 0;
}
