/*
 * html.c - the story of a run (leg by leg, from the trace recorder) and
 * the self-contained HTML report drawn from it.
 *
 * The story it draws is story.c's.
 */
#include "render/html.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/kb_buf.h"
#include "evidence/evidence.h"
#include "ntlm/ntlm.h"

/* ---- escaping --------------------------------------------------------- */

/* Returns the length of the valid UTF-8 sequence at p (at most len bytes)
 * for a code point HTML may carry as text, or 0 when it is not one. */
static size_t html__utf8_len(const unsigned char *p, size_t len)
{
  uint32_t cp;
  size_t n, i;

  if(p[0] < 0xc2 || p[0] > 0xf4)
    return 0;
  n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
  if(len < n)
    return 0;
  cp = p[0] & (0xff >> (n + 1));
  for(i = 1; i < n; i++) {
    if((p[i] & 0xc0) != 0x80)
      return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  if((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
     (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0)
    return 0; /* overlong, out of range, a surrogate, or a C1 control */
  return n;
}

void html_escape(FILE *out, const char *text, size_t len)
{
  const unsigned char *p = (const unsigned char *)text;
  size_t i = 0;

  while(i < len) {
    unsigned char ch = p[i];
    size_t n;

    switch(ch) {
    case '&':
      fputs("&amp;", out);
      break;
    case '<':
      fputs("&lt;", out);
      break;
    case '>':
      fputs("&gt;", out);
      break;
    case '"':
      fputs("&quot;", out);
      break;
    case '\'':
      fputs("&#39;", out);
      break;
    case '\n':
    case '\t':
      fputc(ch, out);
      break;
    default:
      if(ch >= 0x20 && ch < 0x7f)
        fputc(ch, out);
      else if(ch >= 0x80 && (n = html__utf8_len(p + i, len - i)) > 0) {
        fwrite(p + i, 1, n, out);
        i += n;
        continue;
      }
      else
        fprintf(out, "\\x%02x", ch);
    }
    i++;
  }
}

/* html_escape of a NUL-terminated string; NULL writes nothing. */
static void html__esc(FILE *out, const char *text)
{
  if(text)
    html_escape(out, text, strlen(text));
}

/* Writes printf-formatted text, escaped. */
static void html__escf(FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void html__escf(FILE *out, const char *fmt, ...)
{
  char line[1024];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  html__esc(out, line);
}

/* ---- what a leg says -------------------------------------------------- */

static const char *html__auth_label(enum kb_auth auth)
{
  switch(auth) {
  case KB_AUTH_NONE:
    return "no Authorization";
  case KB_AUTH_OTHER:
    return "non-NTLM credentials";
  default:
    return kb_auth_name(auth);
  }
}

/* True when hop is a POST that reached Exchange without its body. */
static bool html__empty_post(const struct story_hop *hop)
{
  return !strcmp(hop->method, "POST") && hop->req_body == 0;
}

/* The short text on an arrow: "POST /EWS/Exchange.asmx · NTLM type 1 ·
 * 0 B", or for an answer "401 · NTLM type 2" / "500 · 479 B". */
static void html__request_label(const struct story_hop *hop, char *out,
                                size_t len)
{
  snprintf(out, len, "%s %s \xc2\xb7 %s \xc2\xb7 %zu B", hop->method, hop->path,
           hop->req_auth == KB_AUTH_NONE ? "no auth"
                                         : html__auth_label(hop->req_auth),
           hop->req_body);
}

static void html__answer_label(const struct story_hop *hop, char *out,
                               size_t len)
{
  if(!hop->status)
    snprintf(out, len, "no answer: the connection closed");
  else if(hop->resp_auth == KB_AUTH_NTLM_CHALLENGE)
    snprintf(out, len, "%d \xc2\xb7 NTLM type 2 challenge", hop->status);
  else if(hop->resp_auth == KB_AUTH_NTLM_BARE)
    snprintf(out, len, "%d \xc2\xb7 asks for NTLM", hop->status);
  else if(hop->resp_auth != KB_AUTH_NONE)
    snprintf(out, len, "%d \xc2\xb7 asks for credentials", hop->status);
  else
    snprintf(out, len, "%d \xc2\xb7 %zu B", hop->status, hop->resp_body);
}

/* What ISA did with the leg, in a few words; *bad when it forwarded a
 * POST without its body. */
static void html__decision(const struct story_leg *leg, char *out, size_t len,
                           bool *bad)
{
  size_t i;

  *bad = false;
  for(i = 0; i < leg->nback; i++)
    if(html__empty_post(&leg->back[i]))
      *bad = true;
  if(*bad)
    snprintf(out, len, "no challenge: forwarded WITHOUT the body");
  else if(leg->nback)
    snprintf(out, len, "authenticated: forwarded with its %zu-byte body",
             leg->back[0].req_body);
  else if(leg->front.status == 401 &&
          leg->front.resp_auth == KB_AUTH_NTLM_CHALLENGE)
    snprintf(out, len, "challenges: 401 + NTLM type 2");
  else if(leg->front.status == 401 &&
          leg->front.req_auth == KB_AUTH_NTLM_AUTHENTICATE)
    snprintf(out, len, "refuses the login: 401");
  else if(leg->front.status == 401)
    snprintf(out, len, "asks for credentials: 401");
  else if(!leg->front.status)
    snprintf(out, len, "no answer");
  else
    snprintf(out, len, "answers %d itself", leg->front.status);
}

/* Names a POST: "autodiscover" or "POST 2 GetUserOofSettings". */
static void html__post_name(const struct sim_session *s, int post, char *out,
                            size_t len)
{
  const struct client_post_result *r = &s->results[post];

  if(r->kind == CLIENT_POST_AUTODISCOVER)
    snprintf(out, len, "autodiscover");
  else
    snprintf(out, len, "POST %u %s", r->index, client_post_kind_name(r->kind));
}

/* ---- the sequence diagram --------------------------------------------- */

/* The longest arrow label ("POST /autodiscover/autodiscover.xml · NTLM
 * type 3 · 370 B") takes about 340 px at 11.5 px: the gap between lanes. */
#define SVG_ROW 22                         /* one arrow or one remark */
#define SVG_TOP 72                         /* below the lane headers */
#define SVG_HEAD_W 150                     /* a lane header */
#define SVG_X_CLIENT 80                    /* Communicator's lane */
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

/* Writes a leg's tooltip: every decoded token and ISA's decisions. */
static void html__leg_title(FILE *out, const struct story_leg *leg)
{
  size_t i;

  fputs("<title>", out);
  html__escf(out, "%s, %s %s\nCommunicator sent %s, %s, %zu-byte body",
             leg->conn, leg->front.method, leg->front.path, leg->front.method,
             html__auth_label(leg->front.req_auth), leg->front.req_body);
  if(leg->front.req_token)
    html__escf(out, "\n  Authorization: %s", leg->front.req_token);
  for(i = 0; i < leg->nisa; i++)
    html__escf(out, "\n%s decided: %s", leg->member[0] ? leg->member : "ISA",
               leg->isa_notes[i].text);
  if(leg->front.status)
    html__escf(out, "\nCommunicator got %d, %zu-byte body", leg->front.status,
               leg->front.resp_body);
  else
    html__escf(out, "\nCommunicator got no answer");
  if(leg->front.resp_token)
    html__escf(out, "\n  WWW-Authenticate: %s", leg->front.resp_token);
  fputs("</title>", out);
}

static void html__back_title(FILE *out, const struct story_leg *leg,
                             const struct story_hop *hop)
{
  fputs("<title>", out);
  html__escf(out, "%s forwarded %s %s to Exchange, %s, %zu-byte body",
             leg->member[0] ? leg->member : "ISA", hop->method, hop->path,
             html__auth_label(hop->req_auth), hop->req_body);
  if(hop->req_token)
    html__escf(out, "\n  Authorization: %s", hop->req_token);
  if(html__empty_post(hop))
    html__escf(out, "\nExchange got a POST without its body");
  html__escf(out, "\nExchange answered %d, %zu-byte body", hop->status,
             hop->resp_body);
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
    const char *note = "\xe2\x9a\xa0 Outlook Integration Error";
    x += w + 10;
    fprintf(svg->out,
            "<g class=\"notify\"><rect x=\"%d\" y=\"%d\" "
            "width=\"%d\" height=\"%d\" rx=\"9\"/><text x=\"%d\" y=\"%d\">",
            x, svg->y + 2, (int)(27 * SVG_BOLD_W) + 18, SVG_ROW - 4, x + 9,
            svg->y + 15);
    html__esc(svg->out, note);
    fputs("</text><title>Communicator shows the "
          "notification: " CLIENT_NOTIFICATION_TEXT "</title></g>",
          svg->out);
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

/* Draws one leg: Communicator's request, ISA's decision, whatever ISA
 * forwarded and Exchange's answer, and the answer Communicator got. */
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
  fprintf(svg->out, "<g class=\"leg hop1%s\" data-hop=\"1\" data-conn=\"",
          leg->front.status >= 500 ? " failed" : "");
  html__esc(svg->out, leg->conn);
  fprintf(svg->out, "\" data-method=\"");
  html__esc(svg->out, leg->front.method);
  fprintf(svg->out,
          "\" data-status=\"%d\" data-req-auth=\"%s\" "
          "data-req-body=\"%zu\" data-forwarded=\"%zu\">",
          leg->front.status, kb_auth_name(leg->front.req_auth),
          leg->front.req_body, leg->nback);
  html__leg_title(svg->out, leg);
  html__request_label(&leg->front, label, sizeof(label));
  html__arrow(svg, SVG_X_CLIENT, xm, "req", label);
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
    bool empty = html__empty_post(hop);

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

  /* Why a connection closed, or a request went again, as text. */
  for(i = 0; i < leg->nisa; i++)
    if(html__close_note(leg->isa_notes[i].code)) {
      snprintf(label, sizeof(label), "\xe2\x9c\x82 %s: %s",
               leg->member[0] ? leg->member : "ISA", leg->isa_notes[i].text);
      html__remark(svg, "closed", label);
    }
  for(i = 0; i < leg->nclient; i++)
    if(html__close_note(leg->client_notes[i].code)) {
      snprintf(label, sizeof(label), "\xe2\x9c\x82 Communicator: %s",
               leg->client_notes[i].text);
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
    fprintf(out, "%d|%s|%d|%s|", leg->new_conn, leg->member, leg->post, label);
    html__answer_label(&leg->front, label, sizeof(label));
    fprintf(out, "%s|", label);
    html__decision(leg, label, sizeof(label), &bad);
    fprintf(out, "%s|%zu|", label, leg->nback);
    for(k = 0; k < leg->nback; k++) {
      html__request_label(&leg->back[k], label, sizeof(label));
      fprintf(out, "%s|", label);
      html__answer_label(&leg->back[k], label, sizeof(label));
      fprintf(out, "%s|", label);
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

/* Writes the lane headers and lines, then the rows, as one <svg>. */
static int html__svg(FILE *out, const struct story *story,
                     const struct html_run *run)
{
  struct html_svg svg;
  char *rows = NULL;
  size_t rows_len = 0, i;
  unsigned client = 0;
  int lanes[SIM_MAX_MEMBERS + 2];
  size_t nlanes = 0, members = story->nmembers ? story->nmembers : 1;
  int result = -1;

  memset(&svg, 0, sizeof(svg));
  svg.story = story;
  svg.x_exchange = SVG_X_ISA + (int)(members - 1) * SVG_MEMBER_GAP + SVG_GAP;
  svg.width = svg.x_exchange + SVG_HEAD_W / 2 + 5;
  svg.y = SVG_TOP;
  svg.out = open_memstream(&rows, &rows_len);
  if(!svg.out)
    return -1;
  for(i = 0; i < story->nlegs;) {
    const struct sim_sessions *ss =
        run->outcome ? &run->outcome->sessions : NULL;
    size_t end = html__client_end(story, i), next = end, same = 1;
    char *sig = html__client_sig(story, i, end, ss);
    unsigned last;

    client = story->legs[i].client;
    last = client;
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
    fprintf(svg.out,
            "<g class=\"band\" data-clients=\"%zu\"><rect x=\"0\" y=\"%d\" "
            "width=\"%d\" height=\"%d\"/><text x=\"8\" y=\"%d\">",
            same, svg.y + 2, svg.width, SVG_ROW - 2, svg.y + 17);
    if(same > 1)
      fprintf(svg.out,
              "clients %u\xe2\x80\x93%u: %zu identical sessions, drawn once "
              "(client %u's)",
              client, last, same, client);
    else
      fprintf(svg.out, "client %u", client);
    fputs("</text></g>\n", svg.out);
    svg.y += SVG_ROW;
    for(; i < end; i++) {
      const struct story_leg *leg = &story->legs[i];
      const struct sim_session *s = story_session(ss, leg->client);

      if(i == 0 || story->legs[i - 1].client != leg->client ||
         story->legs[i - 1].post != leg->post)
        html__think_row(&svg, s, leg);
      html__svg_leg(&svg, leg, s);
    }
    i = next;
  }
  if(!story->nlegs) {
    fprintf(svg.out,
            "<text class=\"conn\" x=\"%d\" y=\"%d\">no request was "
            "recorded</text>\n",
            SVG_X_CLIENT + 8, svg.y + 15);
    svg.y += SVG_ROW;
  }
  if(fclose(svg.out))
    goto done;
  svg.y += 8;

  fprintf(out,
          "<svg class=\"seq\" xmlns=\"http://www.w3.org/2000/svg\" "
          "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
          "aria-label=\"sequence diagram\">\n",
          svg.width, svg.y, svg.width, svg.y);
  lanes[nlanes++] = SVG_X_CLIENT;
  for(i = 0; i < members; i++)
    lanes[nlanes++] = SVG_X_ISA + (int)i * SVG_MEMBER_GAP;
  lanes[nlanes++] = svg.x_exchange;
  for(i = 0; i < nlanes; i++)
    fprintf(out,
            "<line class=\"lane\" x1=\"%d\" y1=\"58\" x2=\"%d\" "
            "y2=\"%d\"/>\n",
            lanes[i], lanes[i], svg.y);
  /* Lane headers: who, and for each member its patch level and policy. */
  for(i = 0; i < nlanes; i++) {
    char name[64], sub[96], policy[64];
    const char *tone = "";

    policy[0] = '\0';
    if(i == 0) {
      snprintf(name, sizeof(name), "Communicator");
      snprintf(sub, sizeof(sub), "Office Communicator 2007");
    }
    else if(i == nlanes - 1) {
      snprintf(name, sizeof(name), "Exchange");
      snprintf(sub, sizeof(sub), "Exchange 2007 EWS");
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
  fwrite(rows, 1, rows_len, out);
  fputs("</svg>\n", out);
  result = 0;

done:
  free(rows);
  return result;
}

/* ---- what the users saw ----------------------------------------------- */

#define HTML_MAX_POST_COLUMNS 13

/* Writes the timeline: one row per user, one cell per POST, with the
 * notification where it appeared and presence and scheduling after it. */
static void html__timeline(FILE *out, const struct sim_sessions *ss)
{
  size_t i, j, columns = 0, shown = 0;

  for(i = 0; i < ss->count && i < HTML_MAX_CLIENTS; i++)
    if(ss->sessions[i].nresults > columns)
      columns = ss->sessions[i].nresults;
  if(columns > HTML_MAX_POST_COLUMNS)
    columns = HTML_MAX_POST_COLUMNS;
  fputs("<table class=\"timeline\"><thead><tr><th>user</th>", out);
  for(j = 0; j < columns; j++)
    if(j)
      fprintf(out, "<th>POST %zu</th>", j);
    else
      fputs("<th>autodiscover</th>", out);
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
static void html__details(FILE *out, const struct story *story)
{
  size_t i, j;

  fprintf(out,
          "<details class=\"legs\"><summary>Every leg, NTLM tokens "
          "decoded (%zu legs)</summary>\n<table><thead><tr><th>connection"
          "</th><th>hop</th><th>request</th><th>Authorization</th>"
          "<th>answer</th><th>WWW-Authenticate</th><th>ISA decided</th></tr>"
          "</thead><tbody>\n",
          story->nlegs);
  for(i = 0; i < story->nlegs; i++) {
    const struct story_leg *leg = &story->legs[i];

    fputs("<tr><td>", out);
    html__esc(out, leg->conn);
    fputs("</td><td>Communicator \xe2\x86\x92 ", out);
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
    for(j = 0; j < leg->nisa; j++) {
      if(j)
        fputs("<br>", out);
      html__esc(out, leg->isa_notes[j].text);
    }
    fputs("</td></tr>\n", out);
    for(j = 0; j < leg->nback; j++) {
      const struct story_hop *hop = &leg->back[j];
      bool empty = html__empty_post(hop);

      fprintf(out, "<tr class=\"back%s\"><td></td><td>", empty ? " bad" : "");
      html__esc(out, leg->member[0] ? leg->member : "ISA");
      fputs(" \xe2\x86\x92 Exchange</td><td>", out);
      html__escf(out, "%s %s, %zu-byte body", hop->method, hop->path,
                 hop->req_body);
      fputs("</td><td class=\"tok\">", out);
      html__esc(out, hop->req_token ? hop->req_token
                                    : html__auth_label(hop->req_auth));
      fprintf(out, "</td><td class=\"%s\">", hop->status >= 500 ? "fail" : "");
      html__escf(out, "%d, %zu-byte body", hop->status, hop->resp_body);
      fputs("</td><td></td><td></td></tr>\n", out);
    }
  }
  fputs("</tbody></table></details>\n", out);
}

/* ---- the page --------------------------------------------------------- */

struct html_report {
  char *title;
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
  fputs("</h1>\n<p class=\"lead\">Communicator re-authenticates every POST: on "
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
  fprintf(out,
          "</main>\n<footer>Written by kbsim from %zu run%s; every run "
          "is reproducible from its seed.</footer>\n<script>%s</script>\n"
          "</body>\n</html>\n",
          report->count, report->count == 1 ? "" : "s", html__script);
  result = evidence_close(out, "--html", path, err, errlen);
  return result;
}
