/*
 * headers.c - the request headers the listener sends upstream: the
 * client's, in their order, minus hop-by-hop ones, with blanks that keep
 * libcurl from adding its own and our Via, built once per connection and
 * checked against the previous request's; and the hop-by-hop test the
 * relay of the response (upstream.c) shares.
 */
#include "proxy_int.h"

/* Returns true when name is a hop-by-hop header, or one a relay must not
 * copy because the next hop computes it (Content-Length), or one named by
 * the message's Connection header (connection_tokens, may be NULL). */
bool proxy__is_hop_header(const char *name, const char *connection_tokens)
{
#define PROXY_HOP(name)                                                        \
  {                                                                            \
    name, sizeof(name) - 1                                                     \
  }
  /* With their lengths: most names are told apart by length alone, and
   * this runs for every header in both directions. */
  static const struct {
    const char *name;
    size_t len;
  } hop[] = {PROXY_HOP("Connection"),
             PROXY_HOP("Keep-Alive"),
             PROXY_HOP("Proxy-Connection"),
             PROXY_HOP("Proxy-Authorization"),
             PROXY_HOP("Proxy-Authenticate"),
             PROXY_HOP("TE"),
             PROXY_HOP("Trailer"),
             PROXY_HOP("Transfer-Encoding"),
             PROXY_HOP("Upgrade"),
             PROXY_HOP("Content-Length")};
#undef PROXY_HOP
  size_t i;
  size_t n = strlen(name);
  const char *p = connection_tokens;

  for(i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
    if(n == hop[i].len && !strcasecmp(name, hop[i].name))
      return true;
  /* "Connection: Keep-Alive, X-Foo" also makes X-Foo hop-by-hop. */
  while(p && *p) {
    size_t len;
    while(*p == ' ' || *p == '\t' || *p == ',')
      p++;
    len = strcspn(p, ", \t");
    if(len == n && len && !strncasecmp(p, name, n))
      return true;
    p += len;
  }
  return false;
}

/* What proxy__upstream_headers builds, or checks against the list the
 * connection's previous request built. */
struct proxy_hdr_ctx {
  struct curl_slist *list;  /* building: the list so far */
  struct curl_slist *check; /* checking: the next entry to match */
  bool checking;
  const char *connection_tokens;
  bool has_accept;
  bool has_content_type;
  bool failed; /* building: out of memory; checking: an entry differs */
};

/* Lines up to this long are put together on the stack before libcurl
 * copies them; longer ones (a type 3 token) take a malloc. */
#define PROXY_HDR_LINE_STACK 512

/* Adds the entry a b c (concatenated; b and c may be "") to the list
 * being built, or, when checking, compares it with the next entry of the
 * previous list. Returns false once ctx->failed is set. */
static bool proxy_hdr_push(struct proxy_hdr_ctx *ctx, const char *a,
                           const char *b, const char *c)
{
  size_t la = strlen(a);
  size_t lb = strlen(b);
  size_t lc = strlen(c);
  char stack[PROXY_HDR_LINE_STACK];
  char *line = stack;
  struct curl_slist *next;

  if(ctx->checking) {
    const char *have = ctx->check ? ctx->check->data : NULL;
    if(!have || strncmp(have, a, la) || strncmp(have + la, b, lb) ||
       strcmp(have + la + lb, c)) {
      ctx->failed = true;
      return false;
    }
    ctx->check = ctx->check->next;
    return true;
  }
  if(la + lb + lc >= sizeof(stack)) {
    line = malloc(la + lb + lc + 1);
    if(!line) {
      ctx->failed = true;
      return false;
    }
  }
  memcpy(line, a, la);
  memcpy(line + la, b, lb);
  memcpy(line + la + lb, c, lc);
  line[la + lb + lc] = '\0';
  next = curl_slist_append(ctx->list, line);
  if(line != stack)
    free(line);
  if(!next) {
    ctx->failed = true;
    return false;
  }
  ctx->list = next;
  return true;
}

/* Appends (or checks) one client request header unless it is hop-by-hop;
 * libcurl drops a header given as "Name:" so an empty value is written
 * "Name;". */
static enum MHD_Result proxy_collect_header(void *cls, enum MHD_ValueKind kind,
                                            const char *key, const char *value)
{
  struct proxy_hdr_ctx *ctx = cls;
  bool ok;
  (void)kind;

  if(!key || proxy__is_hop_header(key, ctx->connection_tokens))
    return MHD_YES;
  if(!strcasecmp(key, "Accept"))
    ctx->has_accept = true;
  if(!strcasecmp(key, "Content-Type"))
    ctx->has_content_type = true;
  if(value && *value)
    ok = proxy_hdr_push(ctx, key, ": ", value);
  else
    ok = proxy_hdr_push(ctx, key, ";", "");
  return ok ? MHD_YES : MHD_NO;
}

/* Walks the request's headers into ctx: the client's headers in their
 * order minus hop-by-hop ones, blanks suppressing what libcurl would add
 * on its own (so the backend sees what the client sent), then our Via.
 * Returns false when ctx->failed. */
static bool proxy_hdr_walk(struct proxy__conn *conn, struct MHD_Connection *mc,
                           bool has_body, struct proxy_hdr_ctx *ctx)
{
  ctx->connection_tokens =
      MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Connection");
  /* libcurl writes a custom Host right after the request line, unless the
   * first Host entry is blank: then it drops its own and sends the
   * client's where the client put it, so the backend sees the client's
   * header order (the support case sends Host fourth). */
  if(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Host") &&
     !proxy_hdr_push(ctx, "Host:", "", ""))
    return false;
  MHD_get_connection_values(mc, MHD_HEADER_KIND, proxy_collect_header, ctx);
  if(ctx->failed)
    return false;
  /* Blank entries ("Name:") only remove libcurl's defaults; they are not
   * sent. */
  if(!proxy_hdr_push(ctx, "Expect:", "", ""))
    return false;
  if(!ctx->has_accept && !proxy_hdr_push(ctx, "Accept:", "", ""))
    return false;
  if(has_body && !ctx->has_content_type &&
     !proxy_hdr_push(ctx, "Content-Type:", "", ""))
    return false;
  if(!proxy_hdr_push(ctx, "Via: ", conn->proxy->via, ""))
    return false;
  /* Checking: the previous list must end here too. */
  if(ctx->checking && ctx->check) {
    ctx->failed = true;
    return false;
  }
  return true;
}

/* Makes conn->fwd_headers the upstream header list of the current request.
 * A client on a kept connection mostly sends the same headers request
 * after request, so the previous list is first checked entry by entry and
 * kept when it matches: building one costs two allocations per header.
 * conn owns the list (freed with the connection). Returns 0, or -1 when
 * out of memory (conn->fwd_headers is then NULL). */
int proxy__upstream_headers(struct proxy__conn *conn, struct MHD_Connection *mc,
                            bool has_body)
{
  struct proxy_hdr_ctx ctx;

  if(conn->fwd_headers) {
    memset(&ctx, 0, sizeof(ctx));
    ctx.checking = true;
    ctx.check = conn->fwd_headers;
    if(proxy_hdr_walk(conn, mc, has_body, &ctx))
      return 0;
    curl_slist_free_all(conn->fwd_headers);
    conn->fwd_headers = NULL;
  }
  memset(&ctx, 0, sizeof(ctx));
  if(!proxy_hdr_walk(conn, mc, has_body, &ctx)) {
    curl_slist_free_all(ctx.list);
    return -1;
  }
  conn->fwd_headers = ctx.list;
  return 0;
}
