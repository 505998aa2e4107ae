/*
 * plot.h - a sweep's grid as a self-contained page: the failure rate
 * against the first varied key, with its 95% band, one line per value of
 * the second key, and the table of every point below. Inline SVG, no
 * script, no external resource.
 */
#ifndef SIM_PLOT_H
#define SIM_PLOT_H

#include <stddef.h>

struct sim_plot_point {
  const char *x;      /* value of the first varied key */
  const char *series; /* value of the second, or NULL */
  const char *label;  /* the whole point, for the table */
  double rate, lo, hi;
  unsigned long long sessions, with_error;
  const char *verdict; /* "pass", "fail", "error" */
};

/* Writes the page to path. xkey and series_key name the axes (series_key
 * NULL: one line). Returns 0, or -1 with one line in err. */
int sim_plot_write(const char *path, const char *title, const char *xkey,
                   const char *series_key, const struct sim_plot_point *pts,
                   size_t n, char *err, size_t errlen);

#endif /* SIM_PLOT_H */
