/*
 * usage.c - parsing, help and usage errors from the command tables (see
 * usage.h). A usage error is one line saying what was wrong and one line
 * saying where the help is, like curl's and git's.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "usage.h"
#include "wrap.h"

/* The command being parsed, for kbsim_bad_args's hint; NULL before one. */
static const struct kbsim_command *usage__current;

const struct kbsim_command *kbsim_command_find(const char *name)
{
  size_t i;

  for(i = 0; kbsim_commands[i]; i++)
    if(!strcmp(kbsim_commands[i]->name, name))
      return kbsim_commands[i];
  return NULL;
}

/* Prints the hint line of a usage error. */
static void usage_hint(void)
{
  if(usage__current)
    fprintf(stderr, "kbsim: try '%s %s --help'\n", kbsim_program,
            usage__current->name);
  else
    fprintf(stderr, "kbsim: try '%s --help'\n", kbsim_program);
}

int kbsim_bad_args(const char *fmt, ...)
{
  char msg[1024];
  const char *text = msg;
  size_t n;
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if(usage__current) {
    /* "run: ..." from a caller that names its command itself. */
    n = strlen(usage__current->name);
    if(!strncmp(text, usage__current->name, n) && !strncmp(text + n, ": ", 2))
      text += n + 2;
    fprintf(stderr, "kbsim %s: %s\n", usage__current->name, text);
  }
  else
    fprintf(stderr, "kbsim: %s\n", text);
  usage_hint();
  return 2;
}

/* ---- did you mean ------------------------------------------------------ */

/* Optimal string alignment distance (insertions, deletions, substitutions
 * and swaps of neighbours), or a large number past 63 characters. */
static size_t usage_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b), i, j;
  size_t d[64][64];

  if(la >= 64 || lb >= 64)
    return 1000;
  for(i = 0; i <= la; i++)
    d[i][0] = i;
  for(j = 0; j <= lb; j++)
    d[0][j] = j;
  for(i = 1; i <= la; i++) {
    for(j = 1; j <= lb; j++) {
      size_t cost = a[i - 1] != b[j - 1];
      size_t best = d[i - 1][j] + 1;
      if(d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if(d[i - 1][j - 1] + cost < best)
        best = d[i - 1][j - 1] + cost;
      if(i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
         d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  }
  return d[la][lb];
}

const char *kbsim_did_you_mean(const char *word, const char *const *candidates,
                               size_t n)
{
  size_t limit = strlen(word) / 3, best = (size_t)-1, i;
  const char *found = NULL;

  if(limit < 1)
    limit = 1;
  if(limit > 3)
    limit = 3;
  for(i = 0; i < n; i++) {
    size_t d = usage_distance(word, candidates[i]);
    if(d <= limit && d < best) {
      best = d;
      found = candidates[i];
    }
  }
  return found;
}

const char *kbsim_command_suggest(const char *word)
{
  const char *names[32];
  size_t n = 0;

  for(n = 0; n < 32 && kbsim_commands[n]; n++)
    names[n] = kbsim_commands[n]->name;
  return kbsim_did_you_mean(word, names, n);
}

/* ---- parsing ----------------------------------------------------------- */

void kbsim_args_init(struct kbsim_args *a, const struct kbsim_command *cmd,
                     int argc, char **argv)
{
  size_t i;

  memset(a, 0, sizeof(*a));
  a->cmd = cmd;
  a->argc = argc;
  a->argv = argv;
  usage__current = cmd;
  for(i = 0; i < KBSIM_MAX_OPTS && cmd->opts[i].name; i++) {
    const struct kbsim_opt *o = &cmd->opts[i];
    a->longopts[i].name = o->name;
    a->longopts[i].has_arg = !o->arg            ? no_argument
                             : o->arg[0] == '[' ? optional_argument
                                                : required_argument;
    a->longopts[i].val = o->val;
  }
  a->longopts[i].name = "help";
  a->longopts[i].val = 'h';
  {
    size_t n = 0;
    a->shortopts[n++] = ':';
    a->shortopts[n++] = 'h';
    for(i = 0; i < KBSIM_MAX_OPTS && cmd->opts[i].name; i++)
      if(!cmd->opts[i].arg && cmd->opts[i].val == cmd->opts[i].name[0] &&
         cmd->opts[i].val != 'h')
        a->shortopts[n++] = (char)cmd->opts[i].val;
    a->shortopts[n] = '\0';
  }
  opterr = 0;
  optind = 1;
}

/* Returns the table entry getopt_long matched for val. */
static const struct kbsim_opt *usage_opt(const struct kbsim_command *cmd,
                                         int val)
{
  size_t i;

  for(i = 0; cmd->opts[i].name; i++)
    if(cmd->opts[i].val == val)
      return &cmd->opts[i];
  return NULL;
}

/* Returns true when word is one of choices ("a|b|c" or "[a|b|c]"). */
static bool usage_is_choice(const char *choices, const char *word)
{
  size_t n = strlen(word);
  const char *p = choices + (choices[0] == '[');

  while(*p) {
    size_t len = strcspn(p, "|]");
    if(len == n && !strncmp(p, word, n))
      return true;
    p += len;
    if(*p)
      p++;
  }
  return false;
}

/* Reports an option getopt_long did not know: ambiguous (a prefix of
 * several) or unknown, with the closest name. */
static int usage_unknown(struct kbsim_args *a, const char *arg)
{
  const char *names[KBSIM_MAX_OPTS + 1];
  char word[64], list[256] = "";
  size_t n = 0, matches = 0, i, len;
  const char *best;

  if(strncmp(arg, "--", 2))
    return kbsim_bad_args("unknown option '%s'; options are long ones "
                          "(--name)",
                          arg);
  len = strcspn(arg + 2, "=");
  snprintf(word, sizeof(word), "%.*s", (int)len, arg + 2);
  for(i = 0; a->cmd->opts[i].name; i++) {
    names[n++] = a->cmd->opts[i].name;
    if(len && !strncmp(a->cmd->opts[i].name, word, len)) {
      size_t used = strlen(list);
      snprintf(list + used, sizeof(list) - used, "%s--%s", matches ? ", " : "",
               a->cmd->opts[i].name);
      matches++;
    }
  }
  names[n++] = "help";
  for(i = 0; a->cmd->opts[i].name; i++)
    if(!strcmp(a->cmd->opts[i].name, word) && arg[2 + len] == '=')
      return kbsim_bad_args("option '--%s' takes no value; give it alone",
                            word);
  if(matches > 1)
    return kbsim_bad_args("option '--%s' is ambiguous: %s", word, list);
  best = kbsim_did_you_mean(word, names, n);
  if(best)
    return kbsim_bad_args("unknown option '--%s'; did you mean '--%s'?", word,
                          best);
  return kbsim_bad_args("unknown option '--%s'", word);
}

/* The options whose values carry a secret. kbsim_args_next overwrites the
 * secret part in argv (with '*') at its next call, as curl does with -u's
 * password, so that ps and /proc/PID/cmdline stop showing it: a command
 * copies what it keeps of such a value before asking for the next option.
 * KBSIM_PASSWORD, --user-file and the token file keep secrets off the
 * command line altogether. */
static const struct {
  const char *command;
  int val;
  enum kbsim_secret kind;
} usage_secrets[] = {
    {"run", 'u', KBSIM_SECRET_PASSWORD},
    {"serve", 'u', KBSIM_SECRET_PASSWORD},
    {"client", 'u', KBSIM_SECRET_PASSWORD},
    {"probe", 'u', KBSIM_SECRET_PASSWORD},
    {"exchange", 'u', KBSIM_SECRET_PASSWORD},
    {"ctl", 't', KBSIM_SECRET_WHOLE},
};

/* The secret option val of cmd carries, or KBSIM_SECRET_NONE. */
static enum kbsim_secret usage_secret_of(const struct kbsim_command *cmd,
                                         int val)
{
  size_t i;

  for(i = 0; i < sizeof(usage_secrets) / sizeof(usage_secrets[0]); i++)
    if(usage_secrets[i].val == val &&
       !strcmp(usage_secrets[i].command, cmd->name))
      return usage_secrets[i].kind;
  return KBSIM_SECRET_NONE;
}

/* Overwrites the secret part of value (kind) with '*', in place. */
static void usage_hide(char *value, enum kbsim_secret kind)
{
  char *from = value;

  if(kind == KBSIM_SECRET_PASSWORD) {
    char *user = strchr(value, '\\');
    from = strchr(user ? user : value, ':');
    if(!from)
      return; /* no password in it */
    from++;
  }
  if(kind != KBSIM_SECRET_NONE)
    memset(from, '*', strlen(from));
}

int kbsim_args_next(struct kbsim_args *a)
{
  const struct kbsim_opt *o;
  int c;

  if(a->secret) {
    usage_hide(a->secret, a->secret_kind);
    a->secret = NULL;
  }
  c = getopt_long(a->argc, a->argv, a->shortopts, a->longopts, NULL);

  if(c == -1)
    return 0;
  if(c == 'h') {
    kbsim_help(stdout, a->cmd, wrap_columns(1) > 80 ? 80 : wrap_columns(1));
    a->status = 0;
    return -1;
  }
  if(c == ':') {
    o = usage_opt(a->cmd, optopt);
    if(o)
      a->status = kbsim_bad_args("--%s needs a value (%s)", o->name, o->arg);
    else
      a->status = kbsim_bad_args("%s needs a value", a->argv[optind - 1]);
    return -1;
  }
  if(c == '?') {
    a->status = usage_unknown(a, a->argv[optind - 1]);
    return -1;
  }
  o = usage_opt(a->cmd, c);
  /* An optional value as the next word: --color always. */
  if(o && o->arg && o->arg[0] == '[' && !optarg && optind < a->argc &&
     usage_is_choice(o->arg, a->argv[optind]))
    optarg = a->argv[optind++];
  if(optarg &&
     (a->secret_kind = usage_secret_of(a->cmd, c)) != KBSIM_SECRET_NONE)
    a->secret = optarg;
  return c;
}

/* ---- help -------------------------------------------------------------- */

/* Prints text's paragraphs ("\n\n" between, "\n" inside ends a line)
 * indented by indent, wrapped at columns. */
static void usage_paragraphs(FILE *out, const char *text, int indent,
                             int columns)
{
  const char *p = text;

  while(*p) {
    size_t len = strcspn(p, "\n");
    char line[2048];

    snprintf(line, sizeof(line), "%*s" WRAP_HANG "%.*s", indent, "", (int)len,
             p);
    wrap_line(out, line, strlen(line), columns);
    p += len;
    if(*p)
      p++;
  }
}

/* Formats "--name ARG" (or "--name[=ARG]") into out. */
static void usage_opt_name(const struct kbsim_opt *o, char *out, size_t len)
{
  if(!o->arg)
    snprintf(out, len, "--%s", o->name);
  else if(o->arg[0] == '[')
    snprintf(out, len, "--%s[=%.*s]", o->name, (int)strlen(o->arg) - 2,
             o->arg + 1);
  else
    snprintf(out, len, "--%s %s", o->name, o->arg);
}

void kbsim_help(FILE *out, const struct kbsim_command *cmd, int columns)
{
  const char *p = cmd->synopsis;
  char name[128], line[1024];
  size_t i;
  bool first = true;

  while(*p) {
    size_t len = strcspn(p, "\n");
    snprintf(line, sizeof(line), "%s kbsim %s " WRAP_HANG "%.*s",
             first ? "usage:" : "      ", cmd->name, (int)len, p);
    wrap_line(out, line, strlen(line), columns);
    first = false;
    p += len;
    if(*p)
      p++;
  }
  fputc('\n', out);
  usage_paragraphs(out, cmd->description, 0, columns);
  fputs("\noptions:\n", out);
  for(i = 0; cmd->opts[i].name; i++) {
    const struct kbsim_opt *o = &cmd->opts[i];

    usage_opt_name(o, name, sizeof(name));
    if(strlen(name) > 20) {
      fprintf(out, "  %s\n", name);
      snprintf(line, sizeof(line), "%24s" WRAP_HANG "%s", "", o->help);
    }
    else
      snprintf(line, sizeof(line), "  %-22s" WRAP_HANG "%s", name, o->help);
    wrap_line(out, line, strlen(line), columns);
  }
  snprintf(line, sizeof(line), "  %-22s" WRAP_HANG "%s", "-h, --help",
           "print this help and exit");
  wrap_line(out, line, strlen(line), columns);
}

void kbsim_help_all(FILE *out, int columns)
{
  char line[512];
  size_t i;

  fprintf(out, "usage: kbsim [--version] [--help] COMMAND [ARGS]\n\n"
               "KB 942638 reproduced: Office Communicator 2007's "
               "\"Outlook Integration Error\"\nbehind ISA Server 2006, on "
               "real loopback sockets with real NTLM.\n\ncommands:\n");
  for(i = 0; kbsim_commands[i]; i++) {
    snprintf(line, sizeof(line), "  %-9s" WRAP_HANG "%s",
             kbsim_commands[i]->name, kbsim_commands[i]->summary);
    wrap_line(out, line, strlen(line), columns);
  }
  fprintf(out, "\nWithout a command, kbsim runs the demo.\n"
               "'kbsim help COMMAND' or 'kbsim COMMAND --help' shows a "
               "command's options;\n'man kbsim' has them all. "
               "'kbsim --version' prints the version and libraries.\n");
}
