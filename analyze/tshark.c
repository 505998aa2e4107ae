/*
 * tshark.c - a capture read through Wireshark's dissectors: tshark does
 * TCP reassembly, HTTP/1.x and HTTP/2 parsing and TLS decryption (with the
 * capture's Decryption Secrets Block or --keylog), and prints the few
 * fields asked for as newline-delimited JSON (-T ek), which is read here
 * line by line with jansson and handed over as events.
 *
 * A line is at most AN_LINE_MAX bytes: the body is the last field asked
 * for, so a longer line (a large download) is cut before its body and
 * everything else in it is kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "analyze_int.h"

#define AN_LINE_MAX (1024 * 1024)
#define AN_PENDING 16 /* events one frame can hold */

extern char **environ;

/* The fields asked for, as -e arguments; the body last (see above). */
static const char *const an_fields[] = {
    "frame.number",
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.stream",
    "tcp.flags",
    "http.request.method",
    "http.request.uri",
    "http.request.version",
    "http.response.code",
    "http.authorization",
    "http.www_authenticate",
    "http.content_length_header",
    "http2.headers.method",
    "http2.headers.path",
    "http2.headers.status",
    "http2.headers.authorization",
    "http2.headers.www_authenticate",
    "tls.handshake.type",
    "http.file_data",
};

/* What tshark shows: HTTP messages, HTTP/2 headers, TLS ClientHellos (to
 * say which connections stayed encrypted), and the end of each side of a
 * connection. */
static const char an_filter[] =
    "http.request || http.response || http2.type == 1 || "
    "tls.handshake.type == 1 || tcp.flags.fin == 1 || tcp.flags.reset == 1";

struct an_tshark {
  struct an_source base;
  pid_t pid;
  int out;    /* tshark's standard output */
  FILE *errf; /* its standard error, a temporary file */
  char *buf;  /* bytes read, not yet a whole line */
  size_t len, cap;
  bool skipping; /* inside a line past AN_LINE_MAX */
  bool eof;
  struct an_msg pending[AN_PENDING];
  size_t npending, next_pending;
  uint64_t cut; /* lines cut before their body */
};

/* The i-th string of field key in layers ("" when absent); n gets the
 * number of values when not NULL. */
static const char *an_field(json_t *layers, const char *key, size_t i,
                            size_t *n)
{
  json_t *v = json_object_get(layers, key);
  const char *s;

  if(n)
    *n = json_is_array(v) ? json_array_size(v) : 0;
  if(json_is_array(v))
    v = json_array_get(v, i);
  s = json_string_value(v);
  return s ? s : "";
}

/* Fills src and dst of m from layers. */
static void an_endpoints(json_t *layers, struct an_msg *m)
{
  const char *s4 = an_field(layers, "ip_src", 0, NULL);
  const char *d4 = an_field(layers, "ip_dst", 0, NULL);
  const char *sp = an_field(layers, "tcp_srcport", 0, NULL);
  const char *dp = an_field(layers, "tcp_dstport", 0, NULL);

  if(s4[0])
    snprintf(m->src, sizeof(m->src), "%s:%s", s4, sp);
  else
    snprintf(m->src, sizeof(m->src), "[%s]:%s",
             an_field(layers, "ipv6_src", 0, NULL), sp);
  if(d4[0])
    snprintf(m->dst, sizeof(m->dst), "%s:%s", d4, dp);
  else
    snprintf(m->dst, sizeof(m->dst), "[%s]:%s",
             an_field(layers, "ipv6_dst", 0, NULL), dp);
}

/* A new pending event of kind for the frame described by base. */
static struct an_msg *an_pending(struct an_tshark *ts,
                                 const struct an_msg *base, enum an_kind kind)
{
  struct an_msg *m;

  if(ts->npending == AN_PENDING)
    return NULL;
  m = &ts->pending[ts->npending++];
  *m = *base;
  m->auth = NULL;
  m->kind = kind;
  return m;
}

/* The value of field key that belongs to message i of n in the frame:
 * the i-th when there is one per message, the only one when there is one
 * message, else none (the values cannot be told apart). */
static const char *an_per_msg(json_t *layers, const char *key, size_t i,
                              size_t n)
{
  size_t count;
  const char *v = an_field(layers, key, 0, &count);

  if(count == n)
    return an_field(layers, key, i, NULL);
  return n == 1 ? v : "";
}

/* Fills the body fields of m, message i of n. */
static void an_body(json_t *layers, struct an_msg *m, size_t i, size_t n)
{
  const char *cl = an_per_msg(layers, "http_content_length_header", i, n);
  const char *body = an_per_msg(layers, "http_file_data", i, n);
  size_t blen = strlen(body);

  m->body_len = cl[0] ? strtoull(cl, NULL, 10) : blen;
  an__msg_body(m, body, blen);
}

/* The HTTP/1.x requests of a frame. */
static void an_requests(struct an_tshark *ts, json_t *layers,
                        const struct an_msg *base)
{
  size_t n, i;

  an_field(layers, "http_request_method", 0, &n);
  for(i = 0; i < n; i++) {
    struct an_msg *m = an_pending(ts, base, AN_REQUEST);
    const char *auth = an_per_msg(layers, "http_authorization", i, n);

    if(!m)
      return;
    snprintf(m->method, sizeof(m->method), "%s",
             an_field(layers, "http_request_method", i, NULL));
    snprintf(m->path, sizeof(m->path), "%s",
             an_per_msg(layers, "http_request_uri", i, n));
    snprintf(m->version, sizeof(m->version), "%s",
             an_per_msg(layers, "http_request_version", i, n));
    if(auth[0])
      m->auth = strndup(auth, AN_AUTH);
    an_body(layers, m, i, n);
  }
}

/* The HTTP/1.x answers of a frame. WWW-Authenticate values go to the one
 * answer, or to its only 401 when there are several. */
static void an_responses(struct an_tshark *ts, json_t *layers,
                         const struct an_msg *base)
{
  size_t n, i, k, nchal, n401 = 0;

  an_field(layers, "http_response_code", 0, &n);
  an_field(layers, "http_www_authenticate", 0, &nchal);
  for(i = 0; i < n; i++)
    n401 += !strcmp(an_field(layers, "http_response_code", i, NULL), "401");
  for(i = 0; i < n; i++) {
    struct an_msg *m = an_pending(ts, base, AN_RESPONSE);

    if(!m)
      return;
    m->status = atoi(an_field(layers, "http_response_code", i, NULL));
    if(n == 1 || (n401 == 1 && m->status == 401))
      for(k = 0; k < nchal && k < AN_MAX_CHALLENGES; k++)
        snprintf(m->challenges[m->nchallenges++], AN_CHALLENGE, "%s",
                 an_field(layers, "http_www_authenticate", k, NULL));
    an_body(layers, m, i, n);
  }
}

/* An HTTP/2 HEADERS frame: its first request's method and path, its
 * first status, and every Authorization value that could be NTLM. */
static void an_h2(struct an_tshark *ts, json_t *layers,
                  const struct an_msg *base)
{
  size_t nm, ns, na, nw;
  struct an_msg *m;

  an_field(layers, "http2_headers_method", 0, &nm);
  an_field(layers, "http2_headers_status", 0, &ns);
  an_field(layers, "http2_headers_authorization", 0, &na);
  an_field(layers, "http2_headers_www_authenticate", 0, &nw);
  if(!nm && !ns)
    return;
  m = an_pending(ts, base, AN_H2);
  if(!m)
    return;
  snprintf(m->method, sizeof(m->method), "%s",
           an_field(layers, "http2_headers_method", 0, NULL));
  snprintf(m->path, sizeof(m->path), "%s",
           an_field(layers, "http2_headers_path", 0, NULL));
  m->status = atoi(an_field(layers, "http2_headers_status", 0, NULL));
  if(na)
    m->auth = strndup(an_field(layers, "http2_headers_authorization", 0, NULL),
                      AN_AUTH);
  for(size_t k = 0; k < nw && k < AN_MAX_CHALLENGES; k++)
    snprintf(m->challenges[m->nchallenges++], AN_CHALLENGE, "%s",
             an_field(layers, "http2_headers_www_authenticate", k, NULL));
}

/* Turns one line of tshark's output into pending events. Lines that are
 * not a packet (the index lines of -T ek) give none. */
static void an_line(struct an_tshark *ts, char *line, size_t len)
{
  json_t *doc, *layers;
  struct an_msg base;
  unsigned long flags;
  size_t n, i;

  if(len > 1 && !strncmp(line, "{\"index\"", 8))
    return;
  doc = json_loadb(line, len, 0, NULL);
  layers = json_object_get(doc, "layers");
  if(!json_is_object(layers)) {
    json_decref(doc);
    return;
  }
  memset(&base, 0, sizeof(base));
  base.file = ts->base.file;
  base.frame = strtoull(an_field(layers, "frame_number", 0, NULL), NULL, 10);
  base.t = strtod(an_field(layers, "frame_time_epoch", 0, NULL), NULL);
  base.stream = strtoull(an_field(layers, "tcp_stream", 0, NULL), NULL, 10);
  an_endpoints(layers, &base);
  if(base.frame > ts->base.frames)
    ts->base.frames = base.frame;
  an_requests(ts, layers, &base);
  an_responses(ts, layers, &base);
  an_h2(ts, layers, &base);
  an_field(layers, "tls_handshake_type", 0, &n);
  for(i = 0; i < n; i++)
    if(!strcmp(an_field(layers, "tls_handshake_type", i, NULL), "1")) {
      an_pending(ts, &base, AN_TLS);
      break;
    }
  flags = strtoul(an_field(layers, "tcp_flags", 0, NULL), NULL, 16);
  if(flags & 0x05) {
    struct an_msg *m = an_pending(ts, &base, AN_CLOSE);
    if(m)
      m->reset = (flags & 0x04) != 0;
  }
  json_decref(doc);
}

/* A line past AN_LINE_MAX: everything before its body, closed again, or
 * nothing when the body is not where it was expected. */
static void an_line_cut(struct an_tshark *ts)
{
  static const char key[] = ",\"http_file_data\":[";
  char *at;

  ts->buf[ts->len - 1] = '\0';
  at = strstr(ts->buf, key);
  ts->cut++;
  if(!at)
    return;
  memcpy(at, "}}", 3);
  an_line(ts, ts->buf, (size_t)(at + 2 - ts->buf));
}

/* Takes the first whole line out of the buffer and handles it. Returns
 * false when there is no whole line yet. */
static bool an_take_line(struct an_tshark *ts)
{
  char *nl = ts->len ? memchr(ts->buf, '\n', ts->len) : NULL;
  size_t n;

  if(!nl)
    return false;
  n = (size_t)(nl - ts->buf);
  if(!ts->skipping)
    an_line(ts, ts->buf, n);
  ts->skipping = false;
  memmove(ts->buf, nl + 1, ts->len - n - 1);
  ts->len -= n + 1;
  return true;
}

/* Reads until at least one event is pending or the output ended, one
 * line at a time (a line's events fit in the pending array). Returns 0,
 * or -1 with one line in err. */
static int an_fill(struct an_tshark *ts, char *err, size_t errlen)
{
  while(!ts->npending && !ts->eof) {
    ssize_t got;

    if(an_take_line(ts))
      continue;
    if(ts->len == ts->cap) {
      if(ts->cap >= AN_LINE_MAX) {
        /* Too long: handle what is there and drop the rest of the line. */
        an_line_cut(ts);
        ts->len = 0;
        ts->skipping = true;
        continue;
      }
      size_t cap = ts->cap ? ts->cap * 2 : 65536;
      char *grown = realloc(ts->buf, cap);
      if(!grown) {
        snprintf(err, errlen, "%s: out of memory", ts->base.path);
        return -1;
      }
      ts->buf = grown;
      ts->cap = cap;
    }
    got = read(ts->out, ts->buf + ts->len, ts->cap - ts->len);
    if(got < 0 && errno == EINTR)
      continue;
    if(got < 0) {
      snprintf(err, errlen, "%s: reading tshark's output: %s", ts->base.path,
               strerror(errno));
      return -1;
    }
    if(got == 0) {
      ts->eof = true;
      if(ts->len && !ts->skipping)
        an_line(ts, ts->buf, ts->len);
      ts->len = 0;
      break;
    }
    ts->len += (size_t)got;
  }
  return 0;
}

static int an_tshark_next(struct an_source *s, struct an_msg *m, char *err,
                          size_t errlen)
{
  struct an_tshark *ts = (struct an_tshark *)s;

  an__msg_clear(m);
  if(ts->next_pending == ts->npending) {
    ts->npending = ts->next_pending = 0;
    if(an_fill(ts, err, errlen))
      return -1;
    if(!ts->npending)
      return 0;
  }
  *m = ts->pending[ts->next_pending];
  memset(&ts->pending[ts->next_pending++], 0, sizeof(*m));
  if(m->kind != AN_CLOSE)
    s->http++;
  return 1;
}

/* tshark's complaint as one line: its last line that is not the warning
 * about running as root. */
static void an_tshark_complaint(struct an_tshark *ts, char *out, size_t len)
{
  char line[512];

  out[0] = '\0';
  rewind(ts->errf);
  while(fgets(line, sizeof(line), ts->errf)) {
    line[strcspn(line, "\r\n")] = '\0';
    if(line[0] && !strstr(line, "could be dangerous"))
      snprintf(out, len, "%.300s", line);
  }
}

static int an_tshark_close(struct an_source *s, char *err, size_t errlen)
{
  struct an_tshark *ts = (struct an_tshark *)s;
  char why[400];
  int status = 0, result = 0;
  size_t i;

  if(!ts->eof)
    kill(ts->pid, SIGTERM);
  close(ts->out);
  while(waitpid(ts->pid, &status, 0) < 0 && errno == EINTR)
    ;
  an_tshark_complaint(ts, why, sizeof(why));
  if(ts->eof && strstr(why, "cut short in the middle of a packet")) {
    snprintf(err, errlen,
             "%s: a truncated capture: it ends in the middle of a packet "
             "(frames up to %llu were read)",
             s->path, (unsigned long long)s->frames);
    result = -1;
  }
  else if(ts->eof && (!WIFEXITED(status) || WEXITSTATUS(status))) {
    snprintf(err, errlen, "%s: tshark cannot read it: %s", s->path,
             why[0] ? why : "it failed without saying why");
    result = -1;
  }
  for(i = 0; i < AN_PENDING; i++)
    an__msg_clear(&ts->pending[i]);
  fclose(ts->errf);
  free(ts->buf);
  free(ts);
  return result;
}

/* The arguments of tshark for cfg's capture path, in argv (at most max,
 * NULL-terminated); the -o values made here go into opts. */
static void an_tshark_argv(const struct analyze_config *cfg, const char *path,
                           const char **argv, size_t max, char (*opts)[600])
{
  size_t n = 0, i, nopt = 0;

  argv[n++] = cfg->tshark ? cfg->tshark : "tshark";
  argv[n++] = "-n";
  argv[n++] = "-r";
  argv[n++] = path;
  if(cfg->keylog) {
    snprintf(opts[nopt], sizeof(opts[0]), "tls.keylog_file:%s", cfg->keylog);
    argv[n++] = "-o";
    argv[n++] = opts[nopt++];
  }
  /* Said on the command line, the ports may be registered to another
   * protocol: tshark's heuristics (HTTP, TLS) go first then. */
  if(cfg->listener || cfg->server) {
    argv[n++] = "-o";
    argv[n++] = "tcp.try_heuristic_first:TRUE";
  }
  argv[n++] = "-Y";
  argv[n++] = an_filter;
  argv[n++] = "-T";
  argv[n++] = "ek";
  for(i = 0; i < sizeof(an_fields) / sizeof(an_fields[0]) && n + 3 < max; i++) {
    argv[n++] = "-e";
    argv[n++] = an_fields[i];
  }
  argv[n] = NULL;
}

int an__tshark_open(const struct analyze_config *cfg, unsigned file,
                    const char *path, struct an_source **out, char *err,
                    size_t errlen)
{
  struct an_tshark *ts = calloc(1, sizeof(*ts));
  const char *argv[80];
  char opts[1][600];
  posix_spawn_file_actions_t fa;
  int pipefd[2] = {-1, -1}, rc;

  if(!ts || !(ts->errf = tmpfile()) || pipe(pipefd) ||
     fcntl(pipefd[0], F_SETFD, FD_CLOEXEC) ||
     fcntl(pipefd[1], F_SETFD, FD_CLOEXEC)) {
    snprintf(err, errlen, "%s: cannot start tshark: %s", path, strerror(errno));
    goto error;
  }
  an_tshark_argv(cfg, path, argv, sizeof(argv) / sizeof(argv[0]), opts);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fileno(ts->errf), 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  rc = posix_spawnp(&ts->pid, argv[0], &fa, NULL, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if(rc == ENOENT) {
    snprintf(err, errlen,
             "tshark is not installed: kbsim analyze reads captures through "
             "Wireshark's dissectors (apt-get install tshark)");
    goto error;
  }
  if(rc) {
    snprintf(err, errlen, "%s: cannot start %s: %s", path, argv[0],
             strerror(rc));
    goto error;
  }
  ts->out = pipefd[0];
  ts->base.next = an_tshark_next;
  ts->base.close = an_tshark_close;
  ts->base.file = file;
  ts->base.path = path;
  *out = &ts->base;
  return 0;

error:
  if(pipefd[0] >= 0)
    close(pipefd[0]);
  if(ts && ts->errf)
    fclose(ts->errf);
  free(ts);
  return -1;
}
