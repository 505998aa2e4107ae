/*
 * response.c - the answers the listener writes itself (401s, 4xx, 5xx: a
 * one-line text body, its WWW-Authenticate offers, a Date from the
 * configured clock) and how a header value classifies for the trace.
 */
#include "proxy_int.h"

/* Adds a Date header from the configured clock: the daemon runs with
 * MHD_USE_SUPPRESS_DATE_NO_CLOCK so that a simulated clock shows. */
void proxy__add_date(const struct proxy__conn *conn, struct MHD_Response *r)
{
  char date[KB_HTTP_DATE_LEN];
  kb_http_date(proxy__conn_now(conn), date);
  MHD_add_response_header(r, MHD_HTTP_HEADER_DATE, date);
}

/* Fills ans with a response the proxy writes itself: status, a one-line
 * text/plain body from fmt, and one WWW-Authenticate header per value of
 * the NULL-terminated list www_auth, in its order, when www_auth is not
 * NULL (resp_auth classifies them for the trace). On allocation failure
 * ans->response stays NULL and the caller drops the connection. */
void proxy__answer_text(const struct proxy__conn *conn,
                        struct proxy__answer *ans, unsigned status,
                        const char *const *www_auth, enum kb_auth resp_auth,
                        const char *fmt, ...)
{
  char body[1024];
  va_list ap;
  int n;
  size_t len;
  struct MHD_Response *r;

  va_start(ap, fmt);
  n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
  va_end(ap);
  len = n < 0 ? 0 : (size_t)n;
  if(len > sizeof(body) - 2)
    len = sizeof(body) - 2;
  body[len++] = '\n';
  body[len] = '\0';

  r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
  if(r) {
    size_t i;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; charset=utf-8");
    for(i = 0; www_auth && www_auth[i]; i++)
      MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www_auth[i]);
    proxy__add_date(conn, r);
  }
  ans->status = status;
  ans->response = r;
  ans->resp_auth = www_auth ? resp_auth : KB_AUTH_NONE;
  ans->resp_body_len = len;
}

/* Classifies an Authorization or WWW-Authenticate value, NUL-terminated
 * (NULL: absent), for the trace. Never fails: unparseable values are
 * KB_AUTH_OTHER. */
enum kb_auth proxy__classify_auth(const char *value)
{
  return kb_auth_classify(value, value ? strlen(value) : 0);
}
