/*
 * analyze.c - analyze_run: every input opened as its source (tshark for a
 * capture, the HAR reader), their events merged in time order and handed
 * to the role finder and the model, the sources' own complaints turned
 * into the one line that says why the input cannot be read, and what one
 * hop cannot show written down.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "analyze_int.h"

/* Seconds on the monotonic clock, for the progress line. */
static double an_clock(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* True when path's name ends in ".har" (any case). */
static bool an_har_name(const char *path)
{
  size_t n = strlen(path);

  return n > 4 && !strcasecmp(path + n - 4, ".har");
}

/* Opens file i of cfg as its source. Returns 0, or -1 with one line in
 * err. */
static int an_open(const struct analyze_config *cfg, unsigned i,
                   struct analyze_input *in, struct an_source **out, char *err,
                   size_t errlen)
{
  enum an_format fmt = an__sniff(cfg->files[i], err, errlen);

  in->path = cfg->files[i];
  /* A file named .har that is not JSON is a HAR that is not JSON. */
  if(fmt == AN_FORMAT_UNKNOWN && an_har_name(cfg->files[i]) &&
     !strstr(err, "cannot read") && !strstr(err, "is empty"))
    fmt = AN_FORMAT_HAR;
  switch(fmt) {
  case AN_FORMAT_HAR:
    in->har = true;
    return an__har_open(i, cfg->files[i], out, err, errlen);
  case AN_FORMAT_PCAP:
  case AN_FORMAT_PCAPNG:
    return an__tshark_open(cfg, i, cfg->files[i], out, err, errlen);
  case AN_FORMAT_UNKNOWN:
    break;
  }
  return -1;
}

/* Prints the progress line (stderr, a terminal's). */
static void an_progress(const struct an_model *m, struct an_source **src,
                        size_t n)
{
  uint64_t frames = 0;
  size_t i;

  for(i = 0; i < n; i++)
    if(src[i])
      frames += src[i]->frames;
  fprintf(stderr,
          "\ranalyze: %llu frames, %llu requests, %llu connections\033[K",
          (unsigned long long)frames, (unsigned long long)m->res->requests,
          (unsigned long long)(m->res->client_conns + m->res->upstream_conns +
                               m->res->other_conns));
  fflush(stderr);
}

/* Reads every source to its end, merging their events by time. Returns 0,
 * or -1 with one line in err. */
static int an_merge(struct an_model *m, struct an_roles *roles,
                    struct an_source **src, size_t n, char *err, size_t errlen)
{
  struct an_msg *head = calloc(n, sizeof(*head));
  bool *has = calloc(n, sizeof(*has));
  double shown = an_clock();
  size_t i;
  int result = -1;

  if(!head || !has) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  for(i = 0; i < n; i++) {
    int rc = src[i]->next(src[i], &head[i], err, errlen);
    if(rc < 0)
      goto done;
    has[i] = rc == 1;
  }
  for(;;) {
    size_t best = n;
    int rc;

    for(i = 0; i < n; i++)
      if(has[i] && (best == n || head[i].t < head[best].t))
        best = i;
    if(best == n)
      break;
    if(an__roles_take(roles, &head[best]) || m->failed) {
      snprintf(err, errlen, "out of memory");
      goto done;
    }
    rc = src[best]->next(src[best], &head[best], err, errlen);
    if(rc < 0)
      goto done;
    has[best] = rc == 1;
    if(m->cfg->progress && an_clock() - shown > 0.5) {
      an_progress(m, src, n);
      shown = an_clock();
    }
  }
  result = 0;

done:
  if(m->cfg->progress)
    fputs("\r\033[K", stderr);
  for(i = 0; head && i < n; i++)
    an__msg_clear(&head[i]);
  free(head);
  free(has);
  return result;
}

/* Writes down what the hops in the input cannot show. */
static void an_notes(struct an_model *m)
{
  const struct analyze_result *r = m->res;

  switch(r->hops) {
  case ANALYZE_HOPS_CLIENT:
    an__note(m, "one hop, the clients' side: handshake-split, "
                "mixes-identities, pinned-recycled and challenge-rewritten "
                "need the server's side too (a capture behind the listener, "
                "or --server); body-less-forward is concluded from the "
                "listener's answer");
    break;
  case ANALYZE_HOPS_SERVER:
    an__note(m, "one hop, the server's side: which client sent each request "
                "is not in it, so mixes-identities shows only where a body "
                "names another user's mailbox or one connection carries two "
                "identities; pinned-recycled and challenge-rewritten need the "
                "clients' side too");
    break;
  case ANALYZE_HOPS_BOTH:
    break;
  case ANALYZE_HOPS_NONE:
    an__note(m, "no HTTP request in the input");
    break;
  }
  if(m->tls_opaque)
    an__note(m,
             "%llu TLS connection%s (%sto %s) could not be read: without "
             "the keys (--keylog FILE, or a pcapng with a Decryption "
             "Secrets Block) what %s is not in this analysis",
             (unsigned long long)m->tls_opaque, m->tls_opaque == 1 ? "" : "s",
             m->tls_opaque == 1 ? "" : "the first ", m->tls_dst,
             m->tls_opaque == 1 ? "it carries" : "they carry");
  if(r->requests && !r->ntlm && !r->nfindings)
    an__note(m, "no NTLM in the input: no request carries an NTLM token and "
                "no answer offers NTLM, so nothing of the family can show");
}

/* Sets err to why the input holds nothing to analyze, and returns -1; 0
 * when it does hold HTTP. */
static int an_no_http(const struct analyze_result *r, char *err, size_t errlen)
{
  size_t i;

  if(r->requests)
    return 0;
  for(i = 0; i < r->ninputs; i++)
    if(!r->inputs[i].har)
      break;
  if(r->ninputs == 1 && r->inputs[0].har)
    snprintf(err, errlen, "%s: a HAR without any entry: nothing to analyze",
             r->inputs[0].path);
  else
    snprintf(err, errlen,
             "%s%s: no HTTP at all in %s: no HTTP request among the frames "
             "(HTTPS without its keys is not HTTP: give --keylog FILE)",
             r->inputs[i < r->ninputs ? i : 0].path,
             r->ninputs > 1 ? " and the others" : "",
             r->ninputs > 1 ? "them" : "it");
  return -1;
}

int analyze_run(const struct analyze_config *cfg, struct analyze_result *out,
                char *err, size_t errlen)
{
  struct an_source **src = calloc(cfg->nfiles + 1, sizeof(*src));
  struct an_model m;
  struct an_roles *roles = NULL;
  size_t i;
  int result = -1;

  memset(out, 0, sizeof(*out));
  memset(&m, 0, sizeof(m));
  out->inputs = calloc(cfg->nfiles + 1, sizeof(*out->inputs));
  if(!src || !out->inputs || an__model_init(&m, cfg, out) ||
     !(roles = an__roles_new(&m))) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  out->ninputs = cfg->nfiles;
  if(cfg->keylog && access(cfg->keylog, R_OK)) {
    snprintf(err, errlen, "--keylog %s: cannot read: %s", cfg->keylog,
             strerror(errno));
    goto done;
  }
  for(i = 0; i < cfg->nfiles; i++)
    if(an_open(cfg, (unsigned)i, &out->inputs[i], &src[i], err, errlen))
      goto done;
  if(an_merge(&m, roles, src, cfg->nfiles, err, errlen) || an__roles_end(roles))
    goto done;
  an__model_finish(&m);
  /* How each source ended: a truncated capture, tshark's complaint. */
  for(i = 0; i < cfg->nfiles; i++) {
    struct an_source *s = src[i];
    int rc;
    out->inputs[i].frames = s->frames;
    src[i] = NULL;
    rc = s->close(s, err, errlen);
    if(rc)
      goto done;
  }
  if(m.failed) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  if(an_no_http(out, err, errlen))
    goto done;
  an_notes(&m);
  if(an__legs_finish(&m)) {
    snprintf(err, errlen, "out of memory");
    goto done;
  }
  result = 0;

done:
  for(i = 0; src && i < cfg->nfiles; i++)
    if(src[i])
      src[i]->close(src[i], NULL, 0);
  free(src);
  an__roles_free(roles);
  an__model_free(&m);
  return result;
}

void analyze_result_free(struct analyze_result *r)
{
  if(!r)
    return;
  free(r->inputs);
  free(r->findings);
  free(r->notes);
  story_free(&r->story);
  memset(r, 0, sizeof(*r));
}
