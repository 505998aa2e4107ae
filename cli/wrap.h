/*
 * wrap.h - output wrapped to the reader's width: the terminal's, or at
 * most 100 columns when stdout is not a terminal, broken at spaces only
 * (so an option, a path or a URL is never cut) with a hanging indent.
 *
 * A line says where its continuation lines start by holding WRAP_HANG at
 * that column (after a label, say); the marker itself is never printed.
 * Without one, continuations are indented four columns past the line's own
 * indent. Colour escapes take no width; other characters take the width
 * libunistring gives them.
 */
#ifndef WRAP_H
#define WRAP_H

#include <stddef.h>
#include <stdio.h>

/* Marks the column continuation lines start at; never printed. */
#define WRAP_HANG "\x1f"

#define WRAP_MAX_COLUMNS 100 /* when stdout is not a terminal */
#define WRAP_MIN_COLUMNS 40  /* narrower terminals are wrapped at this */

/* Returns the width for output on fd: a terminal's own width, else
 * $COLUMNS when it is set (as ls reads it: a script that wants long lines
 * says so), else WRAP_MAX_COLUMNS; never below WRAP_MIN_COLUMNS. Can't
 * fail. */
int wrap_columns(int fd);

/* Writes one line (len bytes, no '\n' inside) wrapped at columns to out,
 * each output line ended by '\n'. Can't fail (write errors stay in out's
 * error flag). */
void wrap_line(FILE *out, const char *line, size_t len, int columns);

/* Replaces stdout with a stream that wraps every complete line written to
 * it at columns and writes the result to file descriptor 1. A line not yet
 * ended stays pending until its '\n' or wrap_flush(). Returns 0, or -1
 * (stdout left as it was) when the stream cannot be made. */
int wrap_stdout(int columns);

/* Writes out a pending unfinished line as it is (a prompt before reading
 * input). Can't fail; a no-op when stdout is not wrapped. */
void wrap_flush(void);

#endif /* WRAP_H */
