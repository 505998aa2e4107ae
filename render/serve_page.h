/*
 * serve_page.h - `kbsim serve --html`: the page of what passed through a
 * served array, drawn from serve's JSON report (evidence.h) so the page
 * and the report never disagree: the members, every connection of both
 * hops with the reason it closed, and every request with the listener's
 * decision and what reached Exchange, the failing ones marked in words.
 */
#ifndef SERVE_PAGE_H
#define SERVE_PAGE_H

#include <stddef.h>

struct json_t; /* jansson's */

/* Writes the page of report (what evidence_serve_report built; borrowed)
 * to path; "-" is standard output (evidence_open). Returns 0, or -1 with
 * a one-line reason in err. */
int serve_page_write(const struct json_t *report, const char *path, char *err,
                     size_t errlen);

#endif /* SERVE_PAGE_H */
