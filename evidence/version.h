/*
 * version.h - what this kbsim is: its version, the git commit it was built
 * from and the versions of the libraries it runs with, for `kbsim
 * --version`, the man page and the stamp of the JSON reports (run, serve,
 * sweep).
 *
 * Every function here can't fail and is safe from any thread: the strings
 * are constants or are filled into the caller's memory.
 */
#ifndef VERSION_H
#define VERSION_H

#include <stddef.h>

#define VERSION_MAX_LIBS 8

/* One library kbsim is linked with, as it reports itself at run time. */
struct version_lib {
  const char *name; /* "libmicrohttpd" */
  char version[32]; /* "0.9.75" */
};

/* Returns kbsim's version, "0.1.0" (CMakeLists.txt's project version). */
const char *version_kbsim(void);

/* Returns the git commit of the source tree at build time ("0cf6340a1b2c",
 * "v0.1.0-3-g0cf6340a1b2c-dirty"), or "unknown" when built without git. */
const char *version_commit(void);

/* Fills out with up to max libraries (VERSION_MAX_LIBS is enough) in a
 * fixed order: libmicrohttpd, libcurl, nettle, libxml2, jansson, libpcap,
 * libunistring. Returns how many it filled. */
size_t version_libs(struct version_lib *out, size_t max);

/* Writes one line, "kbsim 0.1.0 (commit 0cf6340a1b2c; libmicrohttpd
 * 0.9.75, libcurl 7.88.1, ...)", into out (truncated to len). Returns the
 * length it would have written, as snprintf does. */
int version_line(char *out, size_t len);

#endif /* VERSION_H */
