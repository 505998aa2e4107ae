/*
 * plot.c - the sweep grid's page: an SVG line chart with confidence bands
 * and a table. See plot.h.
 */
#include "render/plot.h"

#include <stdio.h>
#include <string.h>

#define PLOT_W 720
#define PLOT_H 360
#define PLOT_LEFT 64
#define PLOT_RIGHT 24
#define PLOT_TOP 24
#define PLOT_BOTTOM 56

/* Colours of the series, then again (they are also named in the legend). */
static const char *const plot_colours[] = {"#d32f2f", "#1565c0", "#2e7d32",
                                           "#6a1b9a", "#ef6c00", "#00838f"};

static void plot_esc(FILE *out, const char *s)
{
  for(; s && *s; s++) {
    if(*s == '<')
      fputs("&lt;", out);
    else if(*s == '>')
      fputs("&gt;", out);
    else if(*s == '&')
      fputs("&amp;", out);
    else if(*s == '"')
      fputs("&quot;", out);
    else
      fputc(*s, out);
  }
}

/* The distinct values of x (or series) in order of first appearance. */
static size_t plot_distinct(const struct sim_plot_point *pts, size_t n,
                            int series, const char **out, size_t max)
{
  size_t i, j, k = 0;
  for(i = 0; i < n; i++) {
    const char *v = series ? pts[i].series : pts[i].x;
    if(!v)
      v = "";
    for(j = 0; j < k && strcmp(out[j], v); j++)
      ;
    if(j == k && k < max)
      out[k++] = v;
  }
  return k;
}

static double plot_px(size_t i, size_t nx)
{
  double span = PLOT_W - PLOT_LEFT - PLOT_RIGHT;
  return PLOT_LEFT + (nx > 1 ? span * (double)i / (double)(nx - 1) : span / 2);
}

static double plot_py(double rate)
{
  return PLOT_TOP + (PLOT_H - PLOT_TOP - PLOT_BOTTOM) * (1 - rate);
}

static void plot_svg(FILE *out, const char *xkey, const char *series_key,
                     const struct sim_plot_point *pts, size_t n)
{
  const char *xs[512], *ss[64];
  size_t nx = plot_distinct(pts, n, 0, xs, 512);
  size_t ns = plot_distinct(pts, n, 1, ss, 64);
  size_t i, s, t;

  fprintf(out,
          "<svg id=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" "
          "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\">\n",
          PLOT_W, PLOT_H, PLOT_W, PLOT_H);
  /* Axes and the y grid: 0..100 %. */
  for(t = 0; t <= 4; t++) {
    double y = plot_py((double)t / 4);
    fprintf(out,
            "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
            "<text class=\"tick\" x=\"%d\" y=\"%.1f\">%zu%%</text>\n",
            PLOT_LEFT, y, PLOT_W - PLOT_RIGHT, y, PLOT_LEFT - 8, y + 4, t * 25);
  }
  for(i = 0; i < nx; i++) {
    fprintf(out, "<text class=\"xtick\" x=\"%.1f\" y=\"%d\">", plot_px(i, nx),
            PLOT_H - PLOT_BOTTOM + 20);
    plot_esc(out, xs[i]);
    fputs("</text>\n", out);
  }
  fprintf(out, "<text class=\"axis\" x=\"%d\" y=\"%d\">", PLOT_W / 2,
          PLOT_H - 10);
  plot_esc(out, xkey);
  fprintf(out,
          "</text>\n<text class=\"axis\" transform=\"translate(16 %d) "
          "rotate(-90)\">sessions with the error</text>\n",
          PLOT_H / 2);
  for(s = 0; s < ns; s++) {
    const char *colour =
        plot_colours[s % (sizeof(plot_colours) / sizeof(plot_colours[0]))];
    /* The band: upper bounds left to right, lower right to left. */
    fprintf(out, "<polygon class=\"band\" fill=\"%s\" points=\"", colour);
    for(i = 0; i < n; i++)
      if(!strcmp(pts[i].series ? pts[i].series : "", ss[s])) {
        size_t xi;
        for(xi = 0; xi < nx && strcmp(xs[xi], pts[i].x); xi++)
          ;
        fprintf(out, "%.1f,%.1f ", plot_px(xi, nx), plot_py(pts[i].hi));
      }
    for(i = n; i-- > 0;)
      if(!strcmp(pts[i].series ? pts[i].series : "", ss[s])) {
        size_t xi;
        for(xi = 0; xi < nx && strcmp(xs[xi], pts[i].x); xi++)
          ;
        fprintf(out, "%.1f,%.1f ", plot_px(xi, nx), plot_py(pts[i].lo));
      }
    fprintf(out, "\"/>\n<polyline class=\"rate\" stroke=\"%s\" points=\"",
            colour);
    for(i = 0; i < n; i++)
      if(!strcmp(pts[i].series ? pts[i].series : "", ss[s])) {
        size_t xi;
        for(xi = 0; xi < nx && strcmp(xs[xi], pts[i].x); xi++)
          ;
        fprintf(out, "%.1f,%.1f ", plot_px(xi, nx), plot_py(pts[i].rate));
      }
    fputs("\"/>\n", out);
    for(i = 0; i < n; i++)
      if(!strcmp(pts[i].series ? pts[i].series : "", ss[s])) {
        size_t xi;
        for(xi = 0; xi < nx && strcmp(xs[xi], pts[i].x); xi++)
          ;
        fprintf(out,
                "<circle class=\"point\" fill=\"%s\" cx=\"%.1f\" cy=\"%.1f\" "
                "r=\"4\"><title>",
                colour, plot_px(xi, nx), plot_py(pts[i].rate));
        plot_esc(out, pts[i].label);
        fprintf(out, ": %.1f%%</title></circle>\n", 100 * pts[i].rate);
      }
    if(series_key) {
      fprintf(out, "<text class=\"legend\" fill=\"%s\" x=\"%d\" y=\"%zu\">",
              colour, PLOT_LEFT + 8, (size_t)PLOT_TOP + 14 + 16 * s);
      plot_esc(out, series_key);
      fputs(" = ", out);
      plot_esc(out, ss[s]);
      fputs("</text>\n", out);
    }
  }
  fputs("</svg>\n", out);
}

int sim_plot_write(const char *path, const char *title, const char *xkey,
                   const char *series_key, const struct sim_plot_point *pts,
                   size_t n, char *err, size_t errlen)
{
  FILE *out = strcmp(path, "-") ? fopen(path, "w") : stdout;
  size_t i;

  if(!out) {
    snprintf(err, errlen, "--html %s: cannot write it; check the directory",
             path);
    return -1;
  }
  fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        "<title>",
        out);
  plot_esc(out, title);
  fputs("</title>\n<style>\n"
        "body{font:16px/1.4 sans-serif;margin:24px;color:#222}\n"
        "svg{max-width:100%;height:auto}\n"
        ".grid{stroke:#ddd}.tick{font-size:12px;text-anchor:end}\n"
        ".xtick{font-size:12px;text-anchor:middle}\n"
        ".axis{font-size:14px;text-anchor:middle}\n"
        ".band{opacity:.18}.rate{fill:none;stroke-width:2.5}\n"
        ".legend{font-size:14px;font-weight:bold}\n"
        "table{border-collapse:collapse;margin-top:16px}\n"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\n"
        "td:first-child,th:first-child{text-align:left}\n"
        ".fail{color:#d32f2f;font-weight:bold}.error{color:#6a1b9a}\n"
        "</style></head><body>\n<h1>",
        out);
  plot_esc(out, title);
  fputs("</h1>\n<p>The share of sessions that saw the Outlook Integration "
        "Error, with its 95% (Wilson) interval as a band.</p>\n",
        out);
  plot_svg(out, xkey, series_key, pts, n);
  fputs("<table id=\"points\"><tr><th>point</th><th>sessions</th>"
        "<th>with the error</th><th>rate</th><th>95% interval</th>"
        "<th>verdict</th></tr>\n",
        out);
  for(i = 0; i < n; i++) {
    fputs("<tr><td>", out);
    plot_esc(out, pts[i].label);
    fprintf(out,
            "</td><td>%llu</td><td>%llu</td><td>%.2f%%</td>"
            "<td>%.2f%%..%.2f%%</td><td class=\"%s\">%s</td></tr>\n",
            pts[i].sessions, pts[i].with_error, 100 * pts[i].rate,
            100 * pts[i].lo, 100 * pts[i].hi, pts[i].verdict, pts[i].verdict);
  }
  fputs("</table>\n</body></html>\n", out);
  if(out == stdout)
    return fflush(out) ? -1 : 0;
  if(fclose(out)) {
    snprintf(err, errlen, "--html %s: writing failed (disk full?)", path);
    return -1;
  }
  return 0;
}
