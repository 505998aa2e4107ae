/*
 * reply.c - how the admin endpoint answers: every answer says no-store and
 * nosniff, JSON bodies end their line, and an error is {"error": "..."}.
 */
#include "admin_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queues text (len bytes, copied) with status and the given Content-Type,
 * plus the header pairs in extra (NULL-terminated name, value list; may
 * be NULL). Every answer says no-store and nosniff. Returns
 * libmicrohttpd's verdict. */
enum MHD_Result admin__send(struct MHD_Connection *conn, unsigned status,
                            const char *type, const char *text, size_t len,
                            const char *const *extra)
{
  struct MHD_Response *resp;
  enum MHD_Result ret = MHD_NO;
  bool ok;

  resp =
      MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
  if(!resp)
    return MHD_NO;
  ok = MHD_add_response_header(resp, "Content-Type", type) == MHD_YES &&
       MHD_add_response_header(resp, "Cache-Control", "no-store") == MHD_YES &&
       MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") ==
           MHD_YES;
  for(; ok && extra && extra[0]; extra += 2)
    ok = MHD_add_response_header(resp, extra[0], extra[1]) == MHD_YES;
  if(ok)
    ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* Sends body (taken over, may be NULL for out of memory) as JSON with
 * status, plus the header pairs in extra. Returns libmicrohttpd's
 * verdict. */
enum MHD_Result admin__reply_with(struct MHD_Connection *conn, unsigned status,
                                  json_t *body, const char *const *extra)
{
  enum MHD_Result ret = MHD_NO;
  char *dumped =
      body ? json_dumps(body, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  char *text = NULL;
  size_t len;

  json_decref(body);
  if(!dumped) {
    status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    dumped = strdup("{\"error\": \"out of memory in the admin endpoint\"}");
    if(!dumped)
      return MHD_NO;
  }
  /* A trailing newline, so `curl` output ends its line. */
  len = strlen(dumped);
  text = malloc(len + 2);
  if(!text)
    goto done;
  memcpy(text, dumped, len);
  text[len++] = '\n';
  text[len] = '\0';
  ret = admin__send(conn, status, "application/json", text, len, extra);

done:
  free(text);
  free(dumped);
  return ret;
}

/* Sends body as JSON with status, plus an Allow header when allow is
 * set. */
enum MHD_Result admin__reply(struct MHD_Connection *conn, unsigned status,
                             json_t *body, const char *allow)
{
  const char *extra[] = {"Allow", allow, NULL};

  return admin__reply_with(conn, status, body, allow ? extra : NULL);
}

/* Answers {"error": "<message>"} with status (and Allow when set). */
enum MHD_Result admin__error(struct MHD_Connection *conn, unsigned status,
                             const char *allow, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return admin__reply(conn, status, json_pack("{s:s}", "error", msg), allow);
}
