/*
 * transcript.c - the plain-text transcript: every connection in name
 * order, each message as exactly the bytes that crossed the socket after
 * an annotation line, the NTLM tokens decoded, and why it closed; on a
 * TLS run, what each connection's TLS negotiated (the bytes shown are
 * the plaintext inside it).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/kb_auth.h"
#include "common/kb_wire.h"
#include "evidence_int.h"
#include "ntlm/ntlm.h"

/* Writes a message's direction into out: ">>> Communicator -> ISA", with
 * client the client hop's sender ("Internet Explorer", "client"). */
static const char *evidence__direction(enum kb_hop hop, enum kb_trace_kind kind,
                                       const char *client, char *out,
                                       size_t len)
{
  if(hop == KB_HOP_CLIENT_PROXY)
    snprintf(out, len,
             kind == KB_TRACE_SEND ? ">>> %s -> ISA" : "<<< ISA -> %s", client);
  else
    snprintf(out, len, "%s",
             kind == KB_TRACE_SEND ? ">>> ISA -> Exchange"
                                   : "<<< Exchange -> ISA");
  return out;
}

/* Writes the decode of an Authorization / WWW-Authenticate line, if it is
 * one carrying an NTLM token, as an annotation line. */
static void evidence__decode_line(FILE *out, const char *line, size_t len)
{
  static const char *names[] = {"Authorization", "WWW-Authenticate"};
  char desc[512];
  const char *value = NULL;
  size_t i, vlen = 0;

  for(i = 0; i < 2 && !value; i++)
    value = kb_wire_field_first(line, len, names[i], &vlen);
  if(!value || vlen >= NTLM_MAX_MESSAGE * 2)
    return;
  i--;
  if(vlen >= 5 && !strncasecmp(value, "Basic", 5)) {
    if(i == 0)
      fprintf(out,
              ";   %s: Basic credentials, replaced with x by kbsim: "
              "evidence never carries passwords\n",
              names[i]);
    return;
  }
  if(ntlm_header_describe(value, vlen, desc, sizeof(desc)))
    fprintf(out, ";   %s: %s%s\n", names[i], desc,
            evidence__redacting &&
                    kb_auth_classify(value, vlen) == KB_AUTH_NTLM_AUTHENTICATE
                ? " (proofs redacted)"
                : "");
}

/* Writes one message: its annotation line, its exact bytes, then the NTLM
 * decodes of its header block. */
static void evidence__write_msg(FILE *out, enum kb_hop hop, const char *client,
                                const struct evidence_msg *m)
{
  char when[64], dir[96];
  size_t i = 0;

  evidence__iso(m->at_us, when);
  fprintf(out, "; %s %s: %zu bytes\n", when,
          evidence__direction(hop, m->dir, client, dir, sizeof(dir)), m->len);
  fwrite(m->data, 1, m->len, out);
  if(m->len && m->data[m->len - 1] != '\n')
    fputs("\n; \\ no line end: the line feed above is not the message's\n",
          out);
  while(i < m->head) {
    size_t start = i, end;

    while(i < m->head && m->data[i] != '\n')
      i++;
    end = i;
    if(end > start && m->data[end - 1] == '\r')
      end--;
    evidence__decode_line(out, (const char *)m->data + start, end - start);
    i++;
  }
}

/* Writes why c closed, on its annotation line. */
static void evidence__write_close(FILE *out, const struct evidence_conn *c)
{
  char when[64];

  evidence__iso(c->close_us, when);
  if(c->why)
    fprintf(out, "; %s connection %s (%s)\n", when, c->why->reason,
            c->why_text ? c->why_text : "");
  else if(c->hop == KB_HOP_PROXY_BACKEND)
    fprintf(out, "; %s connection closed by ISA%s\n", when,
            c->parent_closed ? " when its client's connection closed" : "");
  else
    fprintf(out, "; %s connection closed by the client\n", when);
}

int evidence_write_transcript(struct sim_recorder *rec, FILE *out)
{
  struct evidence_conns conns;
  size_t i, j;

  pthread_mutex_lock(&rec->lock);
  if(evidence__group(rec, &conns)) {
    pthread_mutex_unlock(&rec->lock);
    errno = ENOMEM;
    return -1;
  }
  fprintf(out,
          "; kbsim transcript: %zu connections, in client order\n"
          "; Lines that begin with ';' are kbsim's. Each message follows its\n"
          "; '; <time> <direction>: <n> bytes' line as exactly those n bytes\n"
          "; (CRLF kept); times are ISO 8601 on the session's clock.\n",
          conns.count);
  if(evidence__redacting)
    fprintf(out, "; --redact: each NTLM type 3's LM and NT proofs, MIC and "
                 "session key are\n"
                 "; \"REDACTED\" repeated, with their lengths kept.\n");
  for(i = 0; i < conns.count; i++) {
    const struct evidence_conn *c = &conns.items[i];
    char when[64];

    if(c->hop == KB_HOP_CLIENT_PROXY)
      fprintf(out, ";\n; === %s: %s <-> ISA ===\n", c->name,
              rec->client ? rec->client->label : "client");
    else
      fprintf(out, ";\n; === %s: ISA <-> Exchange ===\n", c->name);
    if(c->opened) {
      evidence__iso(c->open_us, when);
      fprintf(out, "; %s connection opened\n", when);
    }
    if(c->tls)
      fprintf(out, "; TLS (%s's end): %s, %s, its certificate's SHA-256 %s\n",
              c->hop == KB_HOP_CLIENT_PROXY ? "ISA" : "Exchange",
              c->tls->version, c->tls->suite, c->tls->cert_sha256);
    for(j = 0; j < c->nmsgs; j++)
      evidence__write_msg(out, c->hop,
                          rec->client ? rec->client->label : "client",
                          &c->msgs[j]);
    if(c->closed)
      evidence__write_close(out, c);
  }
  pthread_mutex_unlock(&rec->lock);
  evidence__conns_free(&conns);
  if(ferror(out)) {
    errno = errno ? errno : EIO;
    return -1;
  }
  return 0;
}

int evidence_write_transcript_to(struct sim_recorder *rec, const char *path,
                                 char *err, size_t errlen)
{
  FILE *out = evidence_open("--transcript", path, err, errlen);
  int result;

  if(!out)
    return -1;
  result = evidence_write_transcript(rec, out);
  if(result)
    snprintf(err, errlen, "--transcript %s: cannot write: %s", path,
             strerror(errno));
  if(evidence_close(out, "--transcript", path, result ? NULL : err, errlen))
    result = -1;
  return result;
}
