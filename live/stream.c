/*
 * stream.c - the live console: the page at / (console.html, built in) and
 * its Server-Sent Events at /events, the array's status, the legs of the
 * live view (live.h) as they happen, and a reset when the array was
 * restarted.
 *
 * Each stream waits for the next change on its connection's own thread
 * (libmicrohttpd runs one per connection), on live_wait(), so it holds up
 * no one else's request; admin_stop sets stopping and wakes every wait.
 */
#include "admin_int.h"
#include "common/kb_buf.h"
#include "live/live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A console's stream: a comment line this often keeps it open. */
#define ADMIN_KEEPALIVE_MS 10000
/* What one stream holds back at most while its browser reads. */
#define ADMIN_STREAM_MAX ((size_t)32 << 20)
#define ADMIN_CSP                                                              \
  "default-src 'none'; style-src 'unsafe-inline'; script-src "                 \
  "'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; "      \
  "form-action 'none'; frame-ancestors 'none'"

/* The console page (live/console.html), made into a C string at build
 * time (live/embed.cmake). */
extern const char admin_console_html[];

/* Serves the console page; when the token came in the URL, sets it as a
 * cookie that only this endpoint's own pages send (SameSite=Strict). */
enum MHD_Result admin__page(struct admin *a, struct MHD_Connection *conn,
                            bool from_query)
{
  char cookie[256];
  const char *extra[] = {"Content-Security-Policy",
                         ADMIN_CSP,
                         "X-Frame-Options",
                         "DENY",
                         "Referrer-Policy",
                         "no-referrer",
                         NULL,
                         NULL,
                         NULL};

  if(from_query) {
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict",
             a->cookie, a->token);
    extra[6] = "Set-Cookie";
    extra[7] = cookie;
  }
  return admin__send(conn, MHD_HTTP_OK, "text/html; charset=utf-8",
                     admin_console_html, strlen(admin_console_html), extra);
}

/* One console's stream of Server-Sent Events. */
struct admin__stream {
  struct admin *a;
  struct kb_buf out; /* written, not yet read by libmicrohttpd */
  size_t off;
  uint64_t last_leg;
  uint64_t version;
  uint64_t generation; /* the live view's, as this console last heard */
  bool started;
};

/* Appends a "reset" event to st->out when the live view was reset since
 * the console last heard (live_reset): it clears what it shows. */
static void admin__stream_reset(struct admin__stream *st)
{
  uint64_t g = live_generation(st->a->live);

  if(g == st->generation)
    return;
  st->generation = g;
  kb_buf_printf(&st->out, "event: reset\ndata: {\"generation\": %llu}\n\n",
                (unsigned long long)g);
}

/* Appends the status event to st->out. */
static void admin__stream_status(struct admin__stream *st)
{
  json_t *j = admin__status(st->a);
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

  json_decref(j);
  if(text)
    kb_buf_printf(&st->out, "event: status\ndata: %s\n\n", text);
  free(text);
}

/* libmicrohttpd's content reader, on the connection's own thread: hands
 * out what is written, else waits for the next change (or writes a
 * keep-alive comment after ADMIN_KEEPALIVE_MS). */
static ssize_t admin__stream_read(void *cls, uint64_t pos, char *buf,
                                  size_t max)
{
  struct admin__stream *st = cls;
  size_t n;
  (void)pos;

  if(st->off >= st->out.len) {
    kb_buf_reset(&st->out);
    st->off = 0;
    if(atomic_load(&st->a->stopping))
      return MHD_CONTENT_READER_END_OF_STREAM;
    if(!st->started) {
      /* The array first: the legs are drawn on its members' lanes. */
      st->started = true;
      kb_buf_printf(&st->out, "retry: 2000\n\n");
      st->version = live_version(st->a->live);
      st->generation = live_generation(st->a->live);
      admin__stream_status(st);
      st->last_leg = live_events_since(st->a->live, st->last_leg, &st->out);
      goto hand_out;
    }
    else {
      uint64_t v = live_wait(st->a->live, st->version, ADMIN_KEEPALIVE_MS);

      if(atomic_load(&st->a->stopping))
        return MHD_CONTENT_READER_END_OF_STREAM;
      if(v == st->version) {
        kb_buf_printf(&st->out, ": keep-alive\n\n");
        goto hand_out;
      }
      st->version = v;
    }
    admin__stream_reset(st);
    st->last_leg = live_events_since(st->a->live, st->last_leg, &st->out);
    admin__stream_status(st);
  }
hand_out:
  n = st->out.len - st->off;
  if(n > max)
    n = max;
  memcpy(buf, st->out.data + st->off, n);
  st->off += n;
  return (ssize_t)n;
}

/* libmicrohttpd's release of a stream, when its connection is done with
 * it. */
static void admin__stream_free(void *cls)
{
  struct admin__stream *st = cls;

  kb_buf_free(&st->out);
  free(st);
}

/* Starts a console's stream, resuming after Last-Event-ID when the
 * browser reconnects. */
enum MHD_Result admin__events(struct admin *a, struct MHD_Connection *conn)
{
  const char *last =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
  struct admin__stream *st;
  struct MHD_Response *resp;
  enum MHD_Result ret;

  if(!a->live)
    return admin__error(conn, MHD_HTTP_NOT_FOUND, NULL,
                        "this endpoint has no live view");
  st = calloc(1, sizeof(*st));
  if(!st)
    return MHD_NO;
  st->a = a;
  kb_buf_init(&st->out, ADMIN_STREAM_MAX);
  if(last && *last && strspn(last, "0123456789") == strlen(last) &&
     strlen(last) < 20)
    st->last_leg = strtoull(last, NULL, 10);
  resp = MHD_create_response_from_callback(
      MHD_SIZE_UNKNOWN, 16384, admin__stream_read, st, admin__stream_free);
  if(!resp) {
    admin__stream_free(st);
    return MHD_NO;
  }
  MHD_add_response_header(resp, "Content-Type", "text/event-stream");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
  MHD_destroy_response(resp);
  return ret;
}
