/*
 * kb_range.h - the one grammar of ranges, "A..B" and "A..B/STEP", as the
 * command line and scenario files write them (--seeds 1..100, think =
 * 5s..40s, rate = 40%..70%, --vary KEY=10s..60s/10s).
 *
 * kb_range_split only splits and checks the shape; what a part means (a
 * seed, a duration, a fraction, a number with a unit) and whether LOW <=
 * HIGH once converted are the caller's, because each grammar of values
 * is different. Pure: no allocation, no global state; safe from any
 * thread.
 */
#ifndef KB_RANGE_H
#define KB_RANGE_H

#include <stdbool.h>
#include <stddef.h>

/* The longest part (LOW, HIGH or STEP), in bytes, with its terminator. */
#define KB_RANGE_PART 64

/* What a caller accepts besides LOW..HIGH (flags, or-ed). */
enum kb_range_form {
  KB_RANGE_PAIR = 0,        /* LOW..HIGH only */
  KB_RANGE_SINGLE = 1 << 0, /* also one value A, read as A..A */
  KB_RANGE_STEP = 1 << 1    /* LOW..HIGH/STEP: the step is required */
};

/* The parts of a range, each copied out and NUL-terminated. */
struct kb_range {
  char lo[KB_RANGE_PART];
  char hi[KB_RANGE_PART];   /* a copy of lo for a single value */
  char step[KB_RANGE_PART]; /* "" without KB_RANGE_STEP */
  bool single;              /* text was one value, without ".." */
};

/* Splits text into r by the one rule every range follows:
 *   - the separator is "..", once: "1..2..3" is refused, and so is a third
 *     dot next to it ("0...5" could be 0. to 5 or 0 to .5: write 0..0.5);
 *   - no part is empty ("..5", "5..", "1..5/") and none holds a space or
 *     a control character (" 1..5", "1 .. 5");
 *   - each part is shorter than KB_RANGE_PART;
 *   - one value without ".." only with KB_RANGE_SINGLE; "/STEP" after HIGH
 *     exactly when form has KB_RANGE_STEP (a '/' elsewhere is refused).
 * Returns 0, or -1 with one line in err saying what is wrong ("HIGH is
 * empty"), without text itself: the caller names the flag or key. err may
 * be NULL. r is only written on success. */
int kb_range_split(const char *text, unsigned form, struct kb_range *r,
                   char *err, size_t errlen);

#endif /* KB_RANGE_H */
