/*
 * secret.h - credentials from where a process list cannot see them: a
 * user file (--user-file, the lines of a scenario's [users]), the
 * environment (KBSIM_PASSWORD) and a terminal prompt that does not echo.
 * Nothing here prints or returns a password in an error.
 */
#ifndef SECRET_H
#define SECRET_H

#include <stddef.h>

/* Called with each "DOMAIN\user:password" spec a user file holds. Returns
 * 0, or -1 with one line in err (which then ends the reading). */
typedef int (*secret_user_add_fn)(void *ctx, const char *spec, char *err,
                                  size_t errlen);

/* Reads path: "DOMAIN\user = password" lines, optionally under [users];
 * '#' and ';' start comments. Calls add for each. Returns 0, or -1 with
 * "FILE:LINE: what was wrong; what to do" in err. */
int secret_user_file(const char *path, secret_user_add_fn add, void *ctx,
                     char *err, size_t errlen);

/* The password for who ("FABRIKAM\alice") when the command line left it
 * out: KBSIM_PASSWORD if set, else asked on the terminal without echo.
 * Returns 0, or -1 with one line in err (no terminal, nothing typed). */
int secret_ask_password(const char *who, char *password, size_t len, char *err,
                        size_t errlen);

#endif /* SECRET_H */
