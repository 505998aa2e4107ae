/*
 * describe.c - one line for people about a decoded message (ntlm_describe):
 * its type, flags by name, names and response kind, with control
 * characters a peer sent made harmless.
 */
#include "ntlm_int.h"

#include <stdarg.h>
#include <stdio.h>

/* A bounded string being appended to; writes stop silently at the end. */
struct ntlm__text {
  char *buf;
  size_t cap;
  size_t len;
};

static void ntlm__text_add(struct ntlm__text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void ntlm__text_add(struct ntlm__text *t, const char *fmt, ...)
{
  va_list ap;
  int n;

  if(t->len + 1 >= t->cap)
    return;
  va_start(ap, fmt);
  n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
  va_end(ap);
  if(n < 0)
    return;
  t->len += (size_t)n;
  if(t->len >= t->cap)
    t->len = t->cap - 1;
}

/* Appends a peer-supplied string with control characters replaced by '?',
 * so a hostile name can't break the one-line form of a log. */
static void ntlm__text_name(struct ntlm__text *t, const char *s)
{
  for(; s && *s && t->len + 1 < t->cap; s++) {
    unsigned char c = (unsigned char)*s;
    t->buf[t->len++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  t->buf[t->len] = '\0';
}

static const struct {
  uint32_t bit;
  const char *name;
} ntlm__flag_names[] = {
    {0x00000001u, "UNICODE"},
    {0x00000002u, "OEM"},
    {0x00000004u, "REQUEST_TARGET"},
    {0x00000010u, "SIGN"},
    {0x00000020u, "SEAL"},
    {0x00000040u, "DATAGRAM"},
    {0x00000080u, "LM_KEY"},
    {0x00000200u, "NTLM"},
    {0x00000800u, "ANONYMOUS"},
    {0x00001000u, "DOMAIN_SUPPLIED"},
    {0x00002000u, "WORKSTATION_SUPPLIED"},
    {0x00008000u, "ALWAYS_SIGN"},
    {0x00010000u, "TARGET_TYPE_DOMAIN"},
    {0x00020000u, "TARGET_TYPE_SERVER"},
    {0x00080000u, "EXTENDED_SESSIONSECURITY"},
    {0x00100000u, "IDENTIFY"},
    {0x00400000u, "NON_NT_SESSION_KEY"},
    {0x00800000u, "TARGET_INFO"},
    {0x02000000u, "VERSION"},
    {0x20000000u, "128"},
    {0x40000000u, "KEY_EXCH"},
    {0x80000000u, "56"},
};

/* Appends "flags 0x... (NAME NAME ...)"; unnamed bits appear in hex. */
static void ntlm__text_flags(struct ntlm__text *t, uint32_t flags)
{
  uint32_t rest = flags;
  const char *sep = "";
  size_t i;

  ntlm__text_add(t, "flags 0x%08x (", (unsigned)flags);
  for(i = 0; i < sizeof(ntlm__flag_names) / sizeof(ntlm__flag_names[0]); i++) {
    if(flags & ntlm__flag_names[i].bit) {
      ntlm__text_add(t, "%s%s", sep, ntlm__flag_names[i].name);
      sep = " ";
      rest &= ~ntlm__flag_names[i].bit;
    }
  }
  if(rest)
    ntlm__text_add(t, "%s0x%08x", sep, (unsigned)rest);
  ntlm__text_add(t, ")");
}

static void ntlm__text_version(struct ntlm__text *t,
                               const struct ntlm_message *m)
{
  if(m->has_version)
    ntlm__text_add(t, " version %u.%u.%u/%u", m->version.major,
                   m->version.minor, m->version.build, m->version.revision);
}

void ntlm_describe(const struct ntlm_message *msg, char *out, size_t outlen)
{
  struct ntlm__text t;
  enum ntlm__kind kind;
  size_t i;

  if(!out || !outlen)
    return;
  t.buf = out;
  t.cap = outlen;
  t.len = 0;
  out[0] = '\0';
  if(!msg) {
    ntlm__text_add(&t, "no NTLM message");
    return;
  }
  switch(msg->type) {
  case NTLM_TYPE_NEGOTIATE:
    ntlm__text_add(&t, "NTLM type 1 NEGOTIATE ");
    ntlm__text_flags(&t, msg->flags);
    if(msg->domain) {
      ntlm__text_add(&t, " domain ");
      ntlm__text_name(&t, msg->domain);
    }
    if(msg->workstation) {
      ntlm__text_add(&t, " workstation ");
      ntlm__text_name(&t, msg->workstation);
    }
    ntlm__text_version(&t, msg);
    break;
  case NTLM_TYPE_CHALLENGE:
    ntlm__text_add(&t, "NTLM type 2 CHALLENGE ");
    ntlm__text_flags(&t, msg->flags);
    if(msg->target_name) {
      ntlm__text_add(&t, " target ");
      ntlm__text_name(&t, msg->target_name);
    }
    ntlm__text_add(&t, " challenge ");
    for(i = 0; i < 8; i++)
      ntlm__text_add(&t, "%02x", msg->server_challenge[i]);
    if(msg->target_info_len)
      ntlm__text_add(&t, " target info %zu bytes", msg->target_info_len);
    ntlm__text_version(&t, msg);
    break;
  case NTLM_TYPE_AUTHENTICATE:
    ntlm__text_add(&t, "NTLM type 3 AUTHENTICATE ");
    kind = ntlm__kind_of(msg);
    if(kind == NTLM__KIND_ANONYMOUS) {
      ntlm__text_add(&t, "anonymous");
      break;
    }
    if(msg->domain) {
      ntlm__text_name(&t, msg->domain);
      ntlm__text_add(&t, "\\");
    }
    ntlm__text_name(&t, msg->user ? msg->user : "(no user)");
    if(msg->workstation) {
      ntlm__text_add(&t, " from ");
      ntlm__text_name(&t, msg->workstation);
    }
    if(kind == NTLM__KIND_V1)
      ntlm__text_add(&t, ", NTLMv1 response");
    else if(kind == NTLM__KIND_V1_ESS)
      ntlm__text_add(&t, ", NTLMv1-ESS response");
    else if(kind == NTLM__KIND_V2)
      ntlm__text_add(&t, ", NTLMv2 response");
    else
      ntlm__text_add(&t, ", malformed %zu-byte NT response",
                     msg->nt_response_len);
    break;
  case NTLM_TYPE_NONE:
  default:
    ntlm__text_add(&t, "no NTLM message");
    break;
  }
}
