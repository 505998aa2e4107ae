/*
 * analyze.c - peak resident memory of one `kbsim analyze` of a capture,
 * in a fresh process so that the peak belongs to that capture alone: the
 * analysis itself (this process) and tshark's (its child), apart.
 *
 * Usage: bench_analyze CAPTURE
 * Prints one tab-separated line:
 *   analyze <bytes> <KiB peak, this process> <KiB peak, tshark> <requests>
 *           <findings> <seconds>
 * bench/analyze-run runs it on captures of increasing size. Exits 1 when
 * the capture cannot be read.
 */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "analyze/analyze.h"

int main(int argc, char **argv)
{
  struct analyze_config cfg;
  struct analyze_result r;
  struct rusage self, kids;
  struct timespec t0, t1;
  struct stat st;
  char err[512];
  size_t i, found = 0;

  if(argc != 2 || stat(argv[1], &st)) {
    fprintf(stderr, "usage: bench_analyze CAPTURE\n");
    return 2;
  }
  memset(&cfg, 0, sizeof(cfg));
  cfg.files = (const char *const *)argv + 1;
  cfg.nfiles = 1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if(analyze_run(&cfg, &r, err, sizeof(err))) {
    fprintf(stderr, "bench_analyze: %s\n", err);
    analyze_result_free(&r);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  for(i = 0; i < KB_DEFECT_COUNT; i++)
    found += r.counts[i];
  printf("analyze\t%lld\t%ld\t%ld\t%llu\t%zu\t%.3f\n", (long long)st.st_size,
         self.ru_maxrss, kids.ru_maxrss, (unsigned long long)r.requests, found,
         (double)(t1.tv_sec - t0.tv_sec) +
             (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  analyze_result_free(&r);
  return 0;
}
