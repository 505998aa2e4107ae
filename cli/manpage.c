/*
 * manpage.c - kbsim.1 and the bash and zsh completions, written from the
 * same command tables as `--help` (usage.h), so none of them can name an
 * option the program does not take. The build runs `kbsim --man` and
 * `kbsim --completion SHELL` and installs what they print. A value
 * written "KEY=..." (sweep's --vary) completes to the scenario keys a grid
 * varies (sweep_grid.c), each with its "=".
 */
#include <stdbool.h>
#include <string.h>

#include "evidence/version.h"
#include "sweep.h"
#include "usage.h"

#ifndef KBSIM_CATALOGUE_DIR
#error "KBSIM_CATALOGUE_DIR must come from sim/CMakeLists.txt"
#endif

/* The ENVIRONMENT section: the variables kbsim reads. */
static const struct kbsim_fact kbsim_environment[] = {
    {"KBSIM_SCENARIOS", "Directories (colon-separated) where a scenario "
                        "named without a path is looked for, after the "
                        "current directory and before the catalogue."},
    {"NO_COLOR", "When set and not empty, the demo is not coloured unless "
                 "--color says so (no-color.org)."},
    {"COLUMNS",
     "The width demo, run and list wrap their output at when it "
     "is not a terminal (default 100; a terminal's own width wins)."},
    {"TERM", "The demo is not coloured on a dumb terminal."},
    {"KBSIM_ADMIN_TOKEN",
     "The admin endpoint's token: serve uses it instead of a random one, "
     "ctl sends it when --token is not given."},
    {"SOURCE_DATE_EPOCH",
     "Whole seconds since 1970: the time the JSON reports' stamp says they "
     "were written (stamp.written), instead of the real clock, so that the "
     "same command with the same seed writes the same bytes "
     "(reproducible-builds.org). Not a number: exit 2."},
    {"KBSIM_PASSWORD",
     "The password of client --user DOMAIN\\user when the spec has none "
     "(else it is asked on the terminal, without echo)."},
    {NULL, NULL}};

/* ---- roff -------------------------------------------------------------- */

/* Writes text as roff text: backslashes and hyphens escaped, a line that
 * would start with a control character protected. */
static void man_text(FILE *out, const char *text, size_t len)
{
  size_t i;
  bool bol = true;

  for(i = 0; i < len; i++) {
    char c = text[i];

    if(bol && (c == '.' || c == '\''))
      fputs("\\&", out);
    bol = false;
    if(c == '\\')
      fputs("\\e", out);
    else if(c == '-')
      fputs("\\-", out);
    else if(c == '\n') {
      fputc('\n', out);
      bol = true;
    }
    else
      fputc(c, out);
  }
}

static void man_str(FILE *out, const char *text)
{
  man_text(out, text, strlen(text));
}

/* Writes paragraphs ("\n\n" between; a "\n" inside keeps the line). */
static void man_paragraphs(FILE *out, const char *text)
{
  const char *p = text;

  while(*p) {
    const char *end = strstr(p, "\n\n");
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *q = p;

    fputs(".PP\n", out);
    while(q < p + len) {
      size_t n = strcspn(q, "\n");
      if(q + n > p + len)
        n = (size_t)(p + len - q);
      man_text(out, q, n);
      fputc('\n', out);
      q += n;
      if(q < p + len) {
        fputs(".br\n", out);
        q++;
      }
    }
    p += len;
    while(*p == '\n')
      p++;
  }
}

/* Writes an option's tag line: .TP, then \-\-name \fIARG\fR. */
static void man_opt(FILE *out, const struct kbsim_opt *o)
{
  fputs(".TP\n\\fB\\-\\-", out);
  man_str(out, o->name);
  fputs("\\fR", out);
  if(o->arg && o->arg[0] == '[') {
    fputs("[=\\fI", out);
    man_text(out, o->arg + 1, strlen(o->arg) - 2);
    fputs("\\fR]", out);
  }
  else if(o->arg) {
    fputs(" \\fI", out);
    man_str(out, o->arg);
    fputs("\\fR", out);
  }
  fputc('\n', out);
  man_str(out, o->help);
  fputc('\n', out);
}

void kbsim_man(FILE *out)
{
  size_t i, j;

  fprintf(out,
          ".\\\" kbsim.1, written by `kbsim --man` from the option tables.\n"
          ".TH KBSIM 1 \"\" \"kbsim %s\" \"User Commands\"\n"
          ".SH NAME\n"
          "kbsim \\- reproduce KB 942638, Communicator's \"Outlook Integration "
          "Error\" behind ISA Server 2006\n"
          ".SH SYNOPSIS\n"
          ".SY kbsim\n"
          "[\\fB\\-\\-version\\fR] [\\fB\\-\\-help\\fR] "
          "[\\fICOMMAND\\fR [\\fIARGS\\fR]]\n.YS\n",
          version_kbsim());
  for(i = 0; kbsim_commands[i]; i++) {
    const char *p = kbsim_commands[i]->synopsis;
    while(*p) {
      size_t n = strcspn(p, "\n");
      fprintf(out, ".SY \"kbsim %s\"\n", kbsim_commands[i]->name);
      man_text(out, p, n);
      fputs("\n.YS\n", out);
      p += n;
      if(*p)
        p++;
    }
  }
  fputs(".SH DESCRIPTION\n", out);
  man_paragraphs(
      out,
      "Office Communicator 2007 re-authenticates every EWS POST on a "
      "keep-alive NTLM connection: it sends Authorization: NTLM with a type "
      "1 message and Content-Length: 0, holding the body back for the "
      "handshake. ISA Server 2006 (a web listener with Integrated "
      "authentication) keeps the connection's authentication instead of "
      "challenging and forwards the body-less POST; Exchange 2007 answers a "
      "SOAP 500, and the user sees \"Outlook Integration Error\". KB 942638 "
      "makes ISA re-authenticate such requests.\n\n"
      "kbsim runs the whole topology in one process, on real loopback "
      "sockets with real NTLM: Communicator (libcurl), the ISA 2006 web "
      "listener (libmicrohttpd and libcurl) and Exchange 2007 EWS "
      "(libmicrohttpd). Seeded runs are reproducible byte for byte: the "
      "clock is simulated and every random draw comes from the seed.\n\n"
      "Without a command, kbsim runs the demo. Every option takes its value "
      "as the next word or after an equals sign (--seed 3, --seed=3).");
  fputs(".SH COMMANDS\n", out);
  for(i = 0; kbsim_commands[i]; i++) {
    const struct kbsim_command *c = kbsim_commands[i];
    const char *p = c->synopsis;

    fprintf(out, ".SS \"kbsim %s\"\n", c->name);
    while(*p) {
      size_t n = strcspn(p, "\n");
      fprintf(out, ".SY \"kbsim %s\"\n", c->name);
      man_text(out, p, n);
      fputs("\n.YS\n", out);
      p += n;
      if(*p)
        p++;
    }
    man_paragraphs(out, c->description);
    for(j = 0; c->opts[j].name; j++)
      man_opt(out, &c->opts[j]);
    fputs(".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nPrint this command's help "
          "and exit.\n",
          out);
  }
  fputs(".SH \"EXIT STATUS\"\n", out);
  for(i = 0; kbsim_exit_codes[i].name; i++) {
    fprintf(out, ".TP\n.B %s\n", kbsim_exit_codes[i].name);
    man_str(out, kbsim_exit_codes[i].text);
    fputc('\n', out);
  }
  fputs(".SH ENVIRONMENT\n", out);
  for(i = 0; kbsim_environment[i].name; i++) {
    fprintf(out, ".TP\n.B %s\n", kbsim_environment[i].name);
    man_str(out, kbsim_environment[i].text);
    fputc('\n', out);
  }
  fputs(".SH FILES\n.TP\n.I ./NAME.ini\n"
        "A scenario named on the command line is looked for here first.\n"
        ".TP\n.I ",
        out);
  man_str(out, KBSIM_CATALOGUE_DIR);
  fputs("/*.ini\nThe scenario catalogue, one file per case of the support "
        "article (\\fBkbsim list\\fR), used when neither the current "
        "directory nor \\fBKBSIM_SCENARIOS\\fR has the name; also found "
        "relative to the program, as \\fI../share/kbsim/scenarios\\fR.\n",
        out);
  fputs(".SH EXAMPLES\n.nf\n"
        "kbsim demo                      # the bug, then the fix\n"
        "kbsim run bug fix \\-\\-html report.html\n"
        "kbsim run \\-\\-policy per\\-connection \\-\\-clients 8 \\-\\-expect "
        "error\n"
        "kbsim sweep intermittent\\-array \\-\\-seeds 1..500\n"
        "kbsim serve half\\-patched\\-array \\-\\-proxy 127.0.0.1:8080 "
        "\\-\\-admin 127.0.0.1:8099\n"
        "kbsim ctl \\-\\-admin http://127.0.0.1:8099/ apply\\-fix\n"
        ".fi\n"
        ".SH \"SEE ALSO\"\n"
        ".BR curl (1),\n.BR tshark (1),\n.BR ntlm_auth (1)\n",
        out);
}

/* ---- completions -------------------------------------------------------- */

/* Writes choices "a|b|c" or "[a|b]" as "a b c". */
static void comp_words(FILE *out, const char *choices)
{
  const char *p = choices + (choices[0] == '[');

  while(*p && *p != ']') {
    size_t n = strcspn(p, "|]");
    fprintf(out, "%.*s", (int)n, p);
    p += n;
    if(*p == '|') {
      fputc(' ', out);
      p++;
    }
  }
}

/* True for "a|b|c": the only values allowed. "KEY=V1,...|KEY=LOW..HIGH"
 * is no list of choices but two ways to write one. */
static bool comp_is_choice(const char *arg)
{
  return arg && strchr(arg, '|') && !strchr(arg, '=');
}

/* True for a value that starts with a scenario key (--vary). */
static bool comp_is_key(const char *arg)
{
  return arg && !strncmp(arg, "KEY=", 4);
}

/* Writes the keys a grid varies, space-separated, each followed by
 * suffix. */
static void comp_keys(FILE *out, const char *suffix)
{
  size_t i;

  for(i = 0; kbsim_vary_keys[i]; i++)
    fprintf(out, "%s%s%s", i ? " " : "", kbsim_vary_keys[i], suffix);
}

static void comp_bash(FILE *out)
{
  size_t i, j;

  fputs("# bash completion for kbsim, written by `kbsim --completion bash`\n"
        "# from its option tables.\n"
        "_kbsim()\n{\n"
        "    local cur prev words cword split cmd i\n"
        "    _init_completion -s || return\n"
        "    for ((i = 1; i < cword; i++)); do\n"
        "        case ${words[i]} in\n"
        "        -*) ;;\n"
        "        *) cmd=${words[i]}; break ;;\n"
        "        esac\n"
        "    done\n"
        "    if [[ -z $cmd ]]; then\n"
        "        COMPREPLY=($(compgen -W '--help --version",
        out);
  for(i = 0; kbsim_commands[i]; i++)
    fprintf(out, " %s", kbsim_commands[i]->name);
  fputs("' -- \"$cur\"))\n        return\n    fi\n    case $cmd in\n", out);
  for(i = 0; kbsim_commands[i]; i++) {
    const struct kbsim_command *c = kbsim_commands[i];
    const char *ops = c->operands;

    fprintf(out, "    %s)\n        case $prev in\n", c->name);
    for(j = 0; c->opts[j].name; j++) {
      const struct kbsim_opt *o = &c->opts[j];
      if(!o->arg || o->arg[0] == '[')
        continue;
      fprintf(out, "        --%s)\n            ", o->name);
      if(comp_is_key(o->arg)) {
        fputs("COMPREPLY=($(compgen -W '", out);
        comp_keys(out, "=");
        fputs("' -- \"$cur\"))\n"
              "            [[ ${COMPREPLY-} == *= ]] && compopt -o nospace\n",
              out);
      }
      else if(comp_is_choice(o->arg)) {
        fputs("COMPREPLY=($(compgen -W '", out);
        comp_words(out, o->arg);
        fputs("' -- \"$cur\"))\n", out);
      }
      else if(strstr(o->arg, "FILE"))
        fputs("_filedir\n", out);
      else
        fputs(":\n", out);
      fputs("            return ;;\n", out);
    }
    fputs("        esac\n        if [[ $cur == -* ]]; then\n"
          "            COMPREPLY=($(compgen -W '--help",
          out);
    for(j = 0; c->opts[j].name; j++)
      fprintf(out, " --%s", c->opts[j].name);
    fputs("' -- \"$cur\"))\n            return\n        fi\n", out);
    if(ops && !strcmp(ops, "@scenario"))
      fputs("        COMPREPLY=($(compgen -W \"$(\"${words[0]}\" list "
            "--names 2>/dev/null)\" -- \"$cur\"))\n"
            "        _filedir ini\n",
            out);
    else if(ops && !strcmp(ops, "@files"))
      fputs("        _filedir\n", out);
    else if(ops && !strcmp(ops, "@command")) {
      fputs("        COMPREPLY=($(compgen -W '", out);
      for(j = 0; kbsim_commands[j]; j++)
        fprintf(out, "%s%s", j ? " " : "", kbsim_commands[j]->name);
      fputs("' -- \"$cur\"))\n", out);
    }
    else if(ops) {
      fputs("        COMPREPLY=($(compgen -W '", out);
      comp_words(out, ops);
      fputs("' -- \"$cur\"))\n", out);
    }
    fputs("        ;;\n", out);
  }
  fputs("    esac\n} &&\n    complete -F _kbsim kbsim\n", out);
}

/* Writes the first sentence of help, escaped for an _arguments spec. */
static void comp_zsh_help(FILE *out, const char *help)
{
  size_t n = strcspn(help, ".;(");
  size_t i;

  for(i = 0; i < n; i++) {
    char c = help[i];
    if(c == '\'')
      fputs("'\\''", out);
    else if(c == '[' || c == ']' || c == ':' || c == '\\')
      fprintf(out, "\\%c", c);
    else
      fputc(c, out);
  }
}

static void comp_zsh(FILE *out)
{
  size_t i, j;

  fputs("#compdef kbsim\n"
        "# zsh completion for kbsim, written by `kbsim --completion zsh`\n"
        "# from its option tables.\n\n"
        "_kbsim_scenarios() {\n"
        "  local -a names\n"
        "  names=(${(f)\"$(${words[1]} list --names 2>/dev/null)\"})\n"
        "  _alternative 'names:scenario:compadd -a names' "
        "'files:file:_files -g \"*.ini\"'\n"
        "}\n\n"
        "_kbsim_vary_keys() {\n"
        "  compadd -S = -- ",
        out);
  comp_keys(out, "");
  fputs("\n}\n\n"
        "_kbsim() {\n"
        "  local -a commands\n"
        "  commands=(\n",
        out);
  for(i = 0; kbsim_commands[i]; i++) {
    fprintf(out, "    '%s:", kbsim_commands[i]->name);
    comp_zsh_help(out, kbsim_commands[i]->summary);
    fputs("'\n", out);
  }
  fputs("  )\n"
        "  if (( CURRENT == 2 )); then\n"
        "    _describe 'command' commands\n"
        "    return\n"
        "  fi\n"
        "  local cmd=$words[2]\n"
        "  shift words\n"
        "  (( CURRENT-- ))\n"
        "  case $cmd in\n",
        out);
  for(i = 0; kbsim_commands[i]; i++) {
    const struct kbsim_command *c = kbsim_commands[i];
    const char *ops = c->operands;

    fprintf(out,
            "  %s)\n    _arguments \\\n      '(- *)'{-h,--help}'[print "
            "the help]' \\\n",
            c->name);
    for(j = 0; c->opts[j].name; j++) {
      const struct kbsim_opt *o = &c->opts[j];

      fprintf(out, "      '--%s%s[", o->name,
              !o->arg            ? ""
              : o->arg[0] == '[' ? "=-"
                                 : "=");
      comp_zsh_help(out, o->help);
      fputs("]", out);
      if(o->arg) {
        fprintf(out, "%s:%s:", o->arg[0] == '[' ? ":" : "",
                comp_is_choice(o->arg) ? "value"
                : comp_is_key(o->arg)  ? "key"
                                       : "arg");
        if(comp_is_key(o->arg))
          fputs("_kbsim_vary_keys", out);
        else if(comp_is_choice(o->arg)) {
          fputc('(', out);
          comp_words(out, o->arg);
          fputc(')', out);
        }
        else if(strstr(o->arg, "FILE"))
          fputs("_files", out);
        else
          fputs(" ", out);
      }
      fputs("' \\\n", out);
    }
    if(ops && !strcmp(ops, "@scenario"))
      fputs("      '*:scenario:_kbsim_scenarios'\n", out);
    else if(ops && !strcmp(ops, "@files"))
      fputs("      '*:file:_files'\n", out);
    else if(ops && !strcmp(ops, "@command")) {
      fputs("      '1:command:(", out);
      for(j = 0; kbsim_commands[j]; j++)
        fprintf(out, "%s%s", j ? " " : "", kbsim_commands[j]->name);
      fputs(")'\n", out);
    }
    else if(ops) {
      fputs("      '1:action:(", out);
      comp_words(out, ops);
      fputs(")'\n", out);
    }
    else
      fputs("      \n", out);
    fputs("    ;;\n", out);
  }
  fputs("  esac\n}\n\n_kbsim \"$@\"\n", out);
}

int kbsim_completion(FILE *out, const char *shell)
{
  if(!strcmp(shell, "bash"))
    comp_bash(out);
  else if(!strcmp(shell, "zsh"))
    comp_zsh(out);
  else
    return -1;
  return 0;
}
