/*
 * html_int.h - what the files of the HTML report share inside render/:
 * escaping (html_escape.c), what a leg says in words (html_leg.c), the
 * sequence diagram (html_svg.c) and the tables under it (html_tables.c),
 * which the page (html.c) puts together.
 */
#ifndef HTML_INT_H
#define HTML_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "render/html.h"

/* ---- escaping (html_escape.c) ----------------------------------------- */

/* html_escape of a NUL-terminated string; NULL writes nothing. */
void html__esc(FILE *out, const char *text);

/* Writes printf-formatted text, escaped. */
void html__escf(FILE *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- what a leg says (html_leg.c) ------------------------------------- */

/* "no Authorization", "non-NTLM credentials", "Negotiate (Kerberos)",
 * or the kind of NTLM token (kb_auth_name). */
const char *html__auth_label(enum kb_auth auth);

/* True when hop is a POST that reached Exchange without its body. */
bool html__empty_post(const struct story_hop *hop);

/* The short text on an arrow: "POST /EWS/Exchange.asmx · NTLM type 1 ·
 * 0 B", or for an answer "401 · NTLM type 2" / "500 · 479 B". */
void html__request_label(const struct story_hop *hop, char *out, size_t len);
void html__answer_label(const struct story_hop *hop, char *out, size_t len);

/* What ISA did with the leg, in a few words; *bad when it forwarded a
 * POST without its body (a capture's leg: when it is part of a finding,
 * whose defects are the words). */
void html__decision(const struct story_leg *leg, char *out, size_t len,
                    bool *bad);

/* A request's short name, a timeline column's head: "autodiscover",
 * "POST 2", ie's "GET 0". */
void html__request_head(const struct client_post_result *r, char *out,
                        size_t len);

/* Names a request: "autodiscover", "POST 2 GetUserOofSettings" or ie's
 * "GET 0 Services.wsdl". */
void html__post_name(const struct sim_session *s, int post, char *out,
                     size_t len);

/* ---- the sequence diagram (html_svg.c) -------------------------------- */

/* Writes the story of run as one <svg>: the lane headers and lines, then
 * a row per arrow or remark. Returns 0, or -1 when out of memory (nothing
 * is written then). */
int html__svg(FILE *out, const struct story *story, const struct html_run *run);

/* ---- the tables under it (html_tables.c) ------------------------------ */

/* Writes the timeline: one row per user, one cell per POST, with the
 * notification where it appeared and presence and scheduling after it. */
void html__timeline(FILE *out, const struct sim_sessions *ss);

/* Writes every leg drawn with its tokens decoded, for reading in full. */
void html__details(FILE *out, const struct story *story);

#endif /* HTML_INT_H */
