/*
 * kb_env.c - defaults and helpers for the clock, random source and trace
 * sink that sim/ hands to components.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include "common/kb_env.h"

#include <pthread.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t kb_clock_now(const struct kb_clock *clock, const char *who)
{
  struct timespec ts;

  if(clock && clock->now_ms)
    return clock->now_ms(clock->ctx, who);
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kb_clock_advance(const struct kb_clock *clock, const char *who, int64_t ms)
{
  struct timespec ts;

  if(ms <= 0)
    return;
  if(clock && clock->advance) {
    clock->advance(clock->ctx, who, ms);
    return;
  }
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000L;
  while(nanosleep(&ts, &ts))
    ;
}

void kb_http_date(int64_t ms, char out[KB_HTTP_DATE_LEN])
{
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                  "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  time_t secs = (time_t)(ms / 1000);
  char text[80];
  struct tm tm;

  /* gmtime_r, not strftime: %a and %b follow the locale, HTTP wants
   * English names whatever the user's LANG. */
  if(!gmtime_r(&secs, &tm)) {
    snprintf(out, KB_HTTP_DATE_LEN, "Thu, 01 Jan 1970 00:00:00 GMT");
    return;
  }
  /* Format wide, then cut: the compiler cannot see that struct tm's
   * fields are in range, and years past 9999 are not worth a longer type. */
  snprintf(text, sizeof(text), "%s, %02d %s %04d %02d:%02d:%02d GMT",
           days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
           tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  snprintf(out, KB_HTTP_DATE_LEN, "%.29s", text);
}

/* Reads len bytes of the kernel's randomness into buf: getrandom(),
 * retried when interrupted or short, then /dev/urandom where the system
 * call does not exist. Returns 0, or -1 with errno set when neither can
 * give any. */
static int kb_kernel_random(uint8_t *buf, size_t len)
{
  size_t got = 0;
  int fd;

  while(got < len) {
    ssize_t n = getrandom(buf + got, len - got, 0);
    if(n > 0)
      got += (size_t)n;
    else if(n < 0 && errno != EINTR && errno != EAGAIN)
      break;
  }
  if(got == len)
    return 0;
  if(errno != ENOSYS)
    return -1;
  fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if(fd < 0)
    return -1;
  while(got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if(n > 0)
      got += (size_t)n;
    else if(n == 0 || errno != EINTR)
      break;
  }
  close(fd);
  return got == len ? 0 : -1;
}

void kb_rng_fill(const struct kb_rng *rng, const char *label, uint8_t *buf,
                 size_t len)
{
  if(rng && rng->fill) {
    rng->fill(rng->ctx, label ? label : "", buf, len);
    return;
  }
  /* No seeded source configured: the kernel's, so that an unconfigured
   * component is secure, if not reproducible. */
  if(kb_kernel_random(buf, len)) {
    fprintf(stderr,
            "kbsim: the kernel gives no randomness (getrandom: %s); "
            "cannot draw NTLM challenges safely, stopping\n",
            strerror(errno));
    abort();
  }
}

const char *kb_auth_name(enum kb_auth auth)
{
  switch(auth) {
  case KB_AUTH_NONE:
    return "none";
  case KB_AUTH_NTLM_NEGOTIATE:
    return "NTLM type 1";
  case KB_AUTH_NTLM_CHALLENGE:
    return "NTLM type 2";
  case KB_AUTH_NTLM_AUTHENTICATE:
    return "NTLM type 3";
  case KB_AUTH_NTLM_BARE:
    return "NTLM";
  case KB_AUTH_OTHER:
    return "other";
  case KB_AUTH_NEGOTIATE_BARE:
    return "Negotiate";
  case KB_AUTH_SPNEGO:
    return "SPNEGO";
  }
  return "?";
}

/* Names of the note codes, indexed by code: decisions as data. */
static const char *const kb_note_names[KB_NOTE_COUNT] = {
    [KB_NOTE_NONE] = "none",
    [KB_NOTE_OFFER] = "offer",
    [KB_NOTE_FORWARD_AUTHENTICATED] = "forward-authenticated",
    [KB_NOTE_CHALLENGE] = "challenge",
    [KB_NOTE_REAUTH_SKIPPED] = "reauth-skipped",
    [KB_NOTE_REAUTH_CHALLENGED] = "reauth-challenged",
    [KB_NOTE_AUTH_OK] = "auth-ok",
    [KB_NOTE_AUTH_REFUSED] = "auth-refused",
    [KB_NOTE_AUTH_UNEXPECTED] = "auth-unexpected",
    [KB_NOTE_AUTH_UNUSABLE] = "auth-unusable",
    [KB_NOTE_KERBEROS] = "kerberos",
    [KB_NOTE_BASIC_OK] = "basic-ok",
    [KB_NOTE_BASIC_REFUSED] = "basic-refused",
    [KB_NOTE_ANONYMOUS] = "anonymous",
    [KB_NOTE_TYPE1_BODY_FORWARDED] = "type1-body-forwarded",
    [KB_NOTE_BODY_TOO_LARGE] = "body-too-large",
    [KB_NOTE_BAD_TARGET] = "bad-target",
    [KB_NOTE_BAD_FRAMING] = "bad-framing",
    [KB_NOTE_HEAD_TIMEOUT] = "head-timeout",
    [KB_NOTE_IDLE_CLOSED] = "idle-closed",
    [KB_NOTE_MAX_REQUESTS] = "max-requests",
    [KB_NOTE_CLIENT_LEFT] = "client-left",
    [KB_NOTE_UPSTREAM_STOPPING] = "upstream-stopping",
    [KB_NOTE_UPSTREAM_TOO_BIG] = "upstream-too-big",
    [KB_NOTE_UPSTREAM_TIMEOUT] = "upstream-timeout",
    [KB_NOTE_UPSTREAM_UNREACHABLE] = "upstream-unreachable",
    [KB_NOTE_LIBRARY] = "library",
    [KB_NOTE_EXPECT_HELD] = "expect-held",
    [KB_NOTE_UPSTREAM_UNPINNED] = "upstream-unpinned",
    [KB_NOTE_UPSTREAM_POOLED] = "upstream-pooled",
    [KB_NOTE_UPSTREAM_RECYCLED] = "upstream-recycled",
    [KB_NOTE_CHALLENGE_REWRITTEN] = "challenge-rewritten",
    [KB_NOTE_RESENT] = "resent",
    [KB_NOTE_CLIENT_MAX_REQUESTS] = "client-max-requests",
    [KB_NOTE_CLIENT_IDLE] = "client-idle",
    [KB_NOTE_NOTIFICATION] = "notification",
    [KB_NOTE_LOG] = "log",
    [KB_NOTE_SERVER_CLOSED_FIRST] = "server-closed-first",
    [KB_NOTE_CLIENT_RESET] = "client-reset",
    [KB_NOTE_MEMBER_RESET] = "member-reset",
    [KB_NOTE_BALANCER_STOPPED] = "balancer-stopped",
    [KB_NOTE_MEMBER_UNREACHABLE] = "member-unreachable",
    [KB_NOTE_CHANNEL_BINDING] = "channel-binding",
    [KB_NOTE_KERBEROS_OK] = "kerberos-ok",
    [KB_NOTE_KERBEROS_REFUSED] = "kerberos-refused",
};

const char *kb_note_name(enum kb_note code)
{
  if((unsigned)code >= KB_NOTE_COUNT || !kb_note_names[code])
    return "?";
  return kb_note_names[code];
}

int kb_note_parse(const char *name, enum kb_note *out)
{
  unsigned i;

  for(i = 0; name && i < KB_NOTE_COUNT; i++)
    if(kb_note_names[i] && !strcmp(kb_note_names[i], name)) {
      *out = (enum kb_note)i;
      return 0;
    }
  return -1;
}

void kb_trace_emit(const struct kb_trace *trace,
                   const struct kb_trace_event *ev)
{
  if(trace && trace->emit)
    trace->emit(trace->ctx, ev);
}

void kb_trace_note(const struct kb_trace *trace, enum kb_hop hop,
                   enum kb_side side, const char *origin, uint64_t conn,
                   enum kb_note code, const char *fmt, ...)
{
  struct kb_trace_event ev = {0};
  char text[512];
  va_list ap;

  if(!trace || !trace->emit)
    return;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  ev.kind = KB_TRACE_NOTE;
  ev.hop = hop;
  ev.side = side;
  ev.origin = origin;
  ev.conn = conn;
  ev.note = code;
  ev.text = text;
  trace->emit(trace->ctx, &ev);
}

void kb_names_claim(const struct kb_names *names, uint16_t local_port,
                    uint16_t remote_port, const char *name)
{
  if(names && names->claim)
    names->claim(names->ctx, local_port, remote_port, name);
}

int kb_names_resolve(const struct kb_names *names, uint16_t peer_port,
                     uint16_t local_port, char *name, size_t len)
{
  if(len)
    name[0] = '\0';
  if(names && names->resolve)
    return names->resolve(names->ctx, peer_port, local_port, name, len);
  return -1;
}

uint16_t kb_sockaddr_port(const struct sockaddr *addr)
{
  if(addr && addr->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)addr)->sin_port);
  if(addr && addr->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  return 0;
}

int kb_names_resolve_addr(const struct kb_names *names,
                          const struct sockaddr *addr, uint16_t local_port,
                          char *name, size_t len)
{
  uint16_t port = kb_sockaddr_port(addr);

  if(len)
    name[0] = '\0';
  if(!port)
    return -1;
  return kb_names_resolve(names, port, local_port, name, len);
}

void kb_thread_name(pthread_t thread, const char *name)
{
  pthread_setname_np(thread, name);
}

char *kb_conn_name_format(const struct kb_conn_id *id, char *out, size_t len)
{
  if(!id->conn)
    snprintf(out, len, "client %u", id->client);
  else if(!id->upstream)
    snprintf(out, len, "client %u conn %u", id->client, id->conn);
  else
    snprintf(out, len, "client %u conn %u upstream %u", id->client, id->conn,
             id->upstream);
  return out;
}

/* Reads "<word> <number>" at *p: the word, one space, a number from 1
 * without leading zeros. Advances *p past it and returns 0, or -1. */
static int kb_conn_part(const char **p, const char *word, unsigned *out)
{
  size_t wlen = strlen(word);
  const char *s = *p;
  unsigned long v = 0;

  if(strncmp(s, word, wlen) || s[wlen] != ' ')
    return -1;
  s += wlen + 1;
  if(*s < '1' || *s > '9')
    return -1;
  while(*s >= '0' && *s <= '9') {
    v = v * 10 + (unsigned long)(*s - '0');
    if(v > UINT32_MAX)
      return -1;
    s++;
  }
  *out = (unsigned)v;
  *p = s;
  return 0;
}

int kb_conn_name_parse(const char *name, struct kb_conn_id *id)
{
  const char *p = name;
  struct kb_conn_id got = {0, 0, 0};

  memset(id, 0, sizeof(*id));
  if(!p || kb_conn_part(&p, "client", &got.client))
    return -1;
  if(*p == ' ') {
    p++;
    if(kb_conn_part(&p, "conn", &got.conn))
      return -1;
  }
  if(*p == ' ') {
    p++;
    if(kb_conn_part(&p, "upstream", &got.upstream))
      return -1;
  }
  if(*p)
    return -1;
  *id = got;
  return 0;
}

void kb_deadline(struct timespec *until, unsigned ms)
{
  clock_gettime(CLOCK_REALTIME, until);
  until->tv_sec += ms / 1000;
  until->tv_nsec += (long)(ms % 1000) * 1000000L;
  if(until->tv_nsec >= 1000000000L) {
    until->tv_sec++;
    until->tv_nsec -= 1000000000L;
  }
}
