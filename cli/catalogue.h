/*
 * catalogue.h - where scenario files are found. A scenario given on the
 * command line is a path, or a name ("bug") looked up as ./bug.ini, then
 * in each directory of $KBSIM_SCENARIOS (colon-separated), then in the
 * installed catalogue: ../share/kbsim/scenarios beside the program (so an
 * unpacked or relocated package finds its own), else the directory it was
 * built to be installed in.
 *
 * Not thread-safe only in that it reads the environment; call from the
 * main thread.
 */
#ifndef CATALOGUE_H
#define CATALOGUE_H

#include <stddef.h>

/* Writes the installed catalogue's directory into dir. Returns 0, or -1
 * when neither the one beside the program nor the configured one exists
 * (dir then holds the configured one, for messages). */
int catalogue_dir(char *dir, size_t len);

/* Resolves arg (a path or a name) into path. Returns 0, or -1 with a
 * one-line error in err saying where it looked and the closest name. */
int catalogue_find(const char *arg, char *path, size_t len, char *err,
                   size_t errlen);

/* Lists the catalogue's *.ini files in name order into *names (an array
 * of *n file names, "bug.ini"; free with catalogue_names_free). Returns 0,
 * or -1 with a one-line error in err. */
int catalogue_names(char ***names, size_t *n, char *err, size_t errlen);

/* Frees what catalogue_names returned; accepts NULL. */
void catalogue_names_free(char **names, size_t n);

#endif /* CATALOGUE_H */
