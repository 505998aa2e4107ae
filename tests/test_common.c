/*
 * test_common.c - the shared pieces: capped buffer, user store, HTTP date,
 * random-source fallback, note codes, connection names, listening sockets,
 * the one classification of Authorization headers, the one reader of
 * recorded HTTP messages, the one grammar of A..B ranges, the
 * connection guard's wake-ups and a fiber woken by its worker's timer.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/kb_auth.h"
#include "common/kb_buf.h"
#include "common/kb_env.h"
#include "common/kb_fiber.h"
#include "common/kb_guard.h"
#include "common/kb_net.h"
#include "common/kb_range.h"
#include "common/kb_users.h"
#include "common/kb_wire.h"
#include "kbt.h"

START_TEST(buf_refuses_past_cap)
{
  struct kb_buf b;

  kb_buf_init(&b, 8);
  ck_assert_int_eq(kb_buf_add(&b, "12345", 5), KB_BUF_OK);
  ck_assert_int_eq(kb_buf_add(&b, "6789", 4), KB_BUF_TOO_BIG);
  /* A refused append leaves the buffer as it was. */
  ck_assert_uint_eq(b.len, 5);
  ck_assert_str_eq(b.data, "12345");
  ck_assert_int_eq(kb_buf_add(&b, "678", 3), KB_BUF_OK);
  ck_assert_str_eq(b.data, "12345678");
  ck_assert_int_eq(kb_buf_printf(&b, "%d", 9), KB_BUF_TOO_BIG);
  ck_assert_uint_eq(b.len, 8);
  kb_buf_free(&b);
}
END_TEST

START_TEST(buf_printf_and_steal)
{
  struct kb_buf b;
  size_t len = 99;
  char *s;

  kb_buf_init(&b, 1 << 20);
  s = kb_buf_steal(&b, &len);
  ck_assert_ptr_nonnull(s);
  ck_assert_str_eq(s, "");
  ck_assert_uint_eq(len, 0);
  free(s);
  ck_assert_int_eq(kb_buf_printf(&b, "%s=%d;", "a", 1), KB_BUF_OK);
  ck_assert_int_eq(kb_buf_printf(&b, "%0500d", 7), KB_BUF_OK);
  ck_assert_uint_eq(b.len, 504);
  ck_assert_int_eq(memcmp(b.data, "a=1;000", 7), 0);
  ck_assert_int_eq(b.data[503], '7');
  s = kb_buf_steal(&b, &len);
  ck_assert_uint_eq(len, 504);
  ck_assert_ptr_null(b.data);
  free(s);
  kb_buf_free(&b);
}
END_TEST

/* One growth rule: 0, 8, then powers of two; an array grown one item at a
 * time keeps its values; past SIZE_MAX it is refused and left as it was. */
START_TEST(array_grows_by_one_rule)
{
  size_t *a = NULL, *grown, i;

  ck_assert_uint_eq(kb_array_capacity(0), 0);
  ck_assert_uint_eq(kb_array_capacity(1), 8);
  ck_assert_uint_eq(kb_array_capacity(8), 8);
  ck_assert_uint_eq(kb_array_capacity(9), 16);
  ck_assert_uint_eq(kb_array_capacity(1000), 1024);
  for(i = 0; i < 1000; i++) {
    grown = kb_array_grow(a, sizeof(*a), i, 1);
    ck_assert_ptr_nonnull(grown);
    a = grown;
    a[i] = i * 3;
  }
  for(i = 0; i < 1000; i++)
    ck_assert_uint_eq(a[i], i * 3);
  /* Room already there: the same array back. */
  ck_assert_ptr_eq(kb_array_grow(a, sizeof(*a), 1000, 24), a);
  ck_assert_ptr_null(kb_array_grow(a, sizeof(*a), 1000, SIZE_MAX));
  ck_assert_ptr_null(kb_array_grow(a, SIZE_MAX / 4, 1000, 100));
  ck_assert_uint_eq(a[999], 2997);
  free(a);
}
END_TEST

START_TEST(users_spec_and_lookup)
{
  struct kb_users *u = kb_users_new();
  char err[256];

  ck_assert_ptr_nonnull(u);
  ck_assert_int_eq(kb_users_add_spec(u, "FABRIKAM\\alice:Pass:with:colons", err,
                                     sizeof(err)),
                   0);
  ck_assert_int_eq(kb_users_add(u, "FABRIKAM", "bob", "", err, sizeof(err)), 0);
  ck_assert_uint_eq(kb_users_count(u), 2);
  /* Windows matches names case-insensitively; passwords stay exact. */
  ck_assert_str_eq(kb_users_password(u, "fabrikam", "ALICE"),
                   "Pass:with:colons");
  ck_assert_str_eq(kb_users_password(u, "FABRIKAM", "bob"), "");
  ck_assert_ptr_null(kb_users_password(u, "CONTOSO", "alice"));
  ck_assert_ptr_null(kb_users_password(u, "FABRIKAM", "carol"));
  kb_users_free(u);
  kb_users_free(NULL);
}
END_TEST

START_TEST(users_bad_specs)
{
  static const char *bad[] = {"alice:pw", "FABRIKAM\\alice", "\\alice:pw",
                              "FABRIKAM\\:pw", ""};
  struct kb_users *u = kb_users_new();
  char err[256];
  size_t i;

  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    ck_assert_int_eq(kb_users_add_spec(u, bad[i], err, sizeof(err)), -1);
    ck_assert_msg(strlen(err) > 10, "no reason for '%s'", bad[i]);
    ck_assert_ptr_null(strchr(err, '\n'));
  }
  /* A spec without a domain still never shows what follows the ':'. */
  ck_assert_int_eq(kb_users_add_spec(u, "alice:S3cret-pw", err, sizeof(err)),
                   -1);
  ck_assert_ptr_null(strstr(err, "S3cret-pw"));
  /* Nor a blank typed for the colon (issue 13: the whole spec was
   * quoted, password and all). */
  ck_assert_int_eq(
      kb_users_add_spec(u, "FABRIKAM\\alice S3cr3t-Pw!", err, sizeof(err)), -1);
  ck_assert_ptr_null(strstr(err, "S3cr3t"));
  ck_assert_int_eq(kb_users_add_spec(u, "D\\u:secret", err, sizeof(err)), 0);
  ck_assert_int_eq(kb_users_add_spec(u, "d\\U:other", err, sizeof(err)), -1);
  ck_assert_ptr_nonnull(strstr(err, "twice"));
  /* The reason never repeats a password. */
  ck_assert_ptr_null(strstr(err, "other"));
  ck_assert_uint_eq(kb_users_count(u), 1);
  kb_users_free(u);
}
END_TEST

/* The resolver's table (kb_users.h) row by row: every spelling a domain
 * controller accepts for FABRIKAM\alice and FABRIKAM\jürgen, and the ones
 * it refuses, with the reason. */
START_TEST(users_resolve_like_a_dc)
{
  static const struct {
    const char *domain, *user;
    enum kb_resolve want;
    const char *user_as_stored;
  } rows[] = {
      {"FABRIKAM", "alice", KB_RESOLVE_OK, "alice"},
      {"fabrikam", "ALICE", KB_RESOLVE_OK, "alice"},
      {"fabrikam.com", "alice", KB_RESOLVE_OK, "alice"},
      {"FABRIKAM.COM", "Alice", KB_RESOLVE_OK, "alice"},
      {"", "alice", KB_RESOLVE_OK, "alice"},
      {"", "alice@fabrikam.com", KB_RESOLVE_OK, "alice"},
      {"", "ALICE@Fabrikam.Com", KB_RESOLVE_OK, "alice"},
      /* full case folding, beyond ASCII */
      {"FABRIKAM", "J\xc3\x9cRGEN", KB_RESOLVE_OK, "j\xc3\xbcrgen"},
      {"", "J\xc3\x9cRGEN@FABRIKAM.COM", KB_RESOLVE_OK, "j\xc3\xbcrgen"},
      {"FABRIKAM", "STRASSE", KB_RESOLVE_OK,
       "stra\xc3\x9f"
       "e"},
      /* refused */
      {"", "alice@FABRIKAM", KB_RESOLVE_NO_USER, NULL},
      {"", "alice@contoso.com", KB_RESOLVE_NO_USER, NULL},
      {"FABRIKAM", "alice@fabrikam.com", KB_RESOLVE_NO_USER, NULL},
      {"FABRIKAM", "mallory", KB_RESOLVE_NO_USER, NULL},
      {"FABRIKAM", "alic", KB_RESOLVE_NO_USER, NULL},
      {"CONTOSO", "alice", KB_RESOLVE_NO_DOMAIN, NULL},
      {"fabrikam.org", "alice", KB_RESOLVE_NO_DOMAIN, NULL},
      {"FABRIKAM", "", KB_RESOLVE_BAD_NAME, NULL},
      {"", "@fabrikam.com", KB_RESOLVE_BAD_NAME, NULL},
      {"FABRIKAM", "al\xffice", KB_RESOLVE_BAD_NAME, NULL},
      {"FABRI\xc3", "alice", KB_RESOLVE_BAD_NAME, NULL},
  };
  const struct kb_realm realm = {"FABRIKAM", "fabrikam.com"};
  struct kb_users *u = kb_users_new();
  struct kb_account a;
  char err[256];
  size_t i;

  ck_assert_int_eq(
      kb_users_add_spec(u, "FABRIKAM\\alice:Passw0rd!", err, sizeof(err)), 0);
  ck_assert_int_eq(kb_users_add_spec(u, "FABRIKAM\\j\xc3\xbcrgen:P\xc3\xa4ss",
                                     err, sizeof(err)),
                   0);
  ck_assert_int_eq(kb_users_add_spec(u,
                                     "FABRIKAM\\stra\xc3\x9f"
                                     "e:x",
                                     err, sizeof(err)),
                   0);
  /* Folded names collide: "ALICE" is alice. */
  ck_assert_int_eq(kb_users_add_spec(u, "fabrikam\\ALICE:y", err, sizeof(err)),
                   -1);
  for(i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
    enum kb_resolve r;
    memset(&a, 0, sizeof(a));
    r = kb_users_resolve(u, &realm, rows[i].domain, rows[i].user, &a);
    ck_assert_msg(r == rows[i].want, "%s\\%s: %s, want %s", rows[i].domain,
                  rows[i].user, kb_resolve_name(r),
                  kb_resolve_name(rows[i].want));
    if(rows[i].user_as_stored) {
      ck_assert_str_eq(a.domain, "FABRIKAM");
      ck_assert_str_eq(a.user, rows[i].user_as_stored);
      ck_assert_ptr_nonnull(a.password);
    }
  }
  /* Without a DNS name in the realm, only NetBIOS names and bare users. */
  {
    const struct kb_realm bare = {"FABRIKAM", NULL};
    ck_assert_int_eq(kb_users_resolve(u, &bare, "", "alice", &a),
                     KB_RESOLVE_OK);
    ck_assert_int_eq(kb_users_resolve(u, &bare, "fabrikam.com", "alice", &a),
                     KB_RESOLVE_NO_DOMAIN);
  }
  kb_users_free(u);
}
END_TEST

START_TEST(http_date_is_imf_fixdate)
{
  char d[KB_HTTP_DATE_LEN];

  /* The support case's Date header. */
  kb_http_date(INT64_C(1237307184000), d);
  ck_assert_str_eq(d, "Tue, 17 Mar 2009 16:26:24 GMT");
  kb_http_date(0, d);
  ck_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 GMT");
}
END_TEST

static int64_t fixed_now(void *ctx, const char *who)
{
  (void)who;
  return *(int64_t *)ctx;
}

START_TEST(clock_and_rng_defaults)
{
  int64_t t = 42;
  struct kb_clock c = {fixed_now, NULL, &t};
  struct kb_rng none = {0};
  uint8_t a[32] = {0}, b[32] = {0}, zero[32] = {0};

  ck_assert_int_eq(kb_clock_now(&c, NULL), 42);
  ck_assert_int_gt(kb_clock_now(NULL, NULL), INT64_C(1600000000000));
  kb_rng_fill(&none, "x", a, sizeof(a));
  kb_rng_fill(NULL, "x", b, sizeof(b));
  /* The OS fallback: 32 random bytes are neither zero nor equal. */
  ck_assert_int_ne(memcmp(a, zero, sizeof(a)), 0);
  ck_assert_int_ne(memcmp(a, b, sizeof(a)), 0);
}
END_TEST

static int notes;
static char last_note[600];
static enum kb_note last_code;

static void count_note(void *ctx, const struct kb_trace_event *ev)
{
  (void)ctx;
  notes++;
  last_code = ev->note;
  snprintf(last_note, sizeof(last_note), "%s %s %llu", ev->origin, ev->text,
           (unsigned long long)ev->conn);
}

START_TEST(trace_note_formats)
{
  struct kb_trace t = {count_note, NULL};

  notes = 0;
  kb_trace_note(&t, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER, "proxy", 3,
                KB_NOTE_REAUTH_CHALLENGED, "policy %s", "per-request");
  kb_trace_note(NULL, KB_HOP_CLIENT_PROXY, KB_SIDE_SERVER, "proxy", 3,
                KB_NOTE_OFFER, "x");
  ck_assert_int_eq(notes, 1);
  ck_assert_str_eq(last_note, "proxy policy per-request 3");
  ck_assert_int_eq(last_code, KB_NOTE_REAUTH_CHALLENGED);
  ck_assert_str_eq(kb_auth_name(KB_AUTH_NTLM_NEGOTIATE), "NTLM type 1");
}
END_TEST

/* Every code has its own name, and the name parses back to the code. */
START_TEST(note_codes_have_names)
{
  unsigned i, j;
  enum kb_note back;

  for(i = 0; i < KB_NOTE_COUNT; i++) {
    const char *name = kb_note_name((enum kb_note)i);
    ck_assert_msg(strcmp(name, "?"), "note code %u has no name", i);
    ck_assert_int_eq(kb_note_parse(name, &back), 0);
    ck_assert_uint_eq(back, i);
    for(j = 0; j < i; j++)
      ck_assert_str_ne(name, kb_note_name((enum kb_note)j));
  }
  ck_assert_str_eq(kb_note_name(KB_NOTE_REAUTH_SKIPPED), "reauth-skipped");
  ck_assert_str_eq(kb_note_name(KB_NOTE_COUNT), "?");
  ck_assert_str_eq(kb_note_name((enum kb_note) - 1), "?");
  ck_assert_int_eq(kb_note_parse("not challenged", &back), -1);
  ck_assert_int_eq(kb_note_parse(NULL, &back), -1);
}
END_TEST

START_TEST(conn_names_format_and_parse)
{
  static const struct {
    const char *name;
    struct kb_conn_id id;
  } good[] = {
      {"client 3", {3, 0, 0}},
      {"client 3 conn 1", {3, 1, 0}},
      {"client 12 conn 10 upstream 2", {12, 10, 2}},
      {"client 4294967295 conn 1", {4294967295u, 1, 0}},
  };
  static const char *const bad[] = {"",
                                    "backend",
                                    "ISA01",
                                    "client",
                                    "client ",
                                    "client 0",
                                    "client 03",
                                    "client +3",
                                    "client 3 ",
                                    "client 3 conn",
                                    "client 3 conn 0",
                                    "client 3 upstream 1",
                                    "client 3 conn 1 upstream",
                                    "client 3 conn 1 x",
                                    "client 3  conn 1",
                                    "Client 3",
                                    "client 4294967296",
                                    "client -1"};
  char out[KB_CONN_NAME_LEN];
  struct kb_conn_id id;
  size_t i;

  for(i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    ck_assert_int_eq(kb_conn_name_parse(good[i].name, &id), 0);
    ck_assert_uint_eq(id.client, good[i].id.client);
    ck_assert_uint_eq(id.conn, good[i].id.conn);
    ck_assert_uint_eq(id.upstream, good[i].id.upstream);
    ck_assert_str_eq(kb_conn_name_format(&id, out, sizeof(out)), good[i].name);
  }
  for(i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    id.client = 7;
    ck_assert_msg(kb_conn_name_parse(bad[i], &id) == -1, "'%s' parsed", bad[i]);
    ck_assert_uint_eq(id.client, 0);
  }
  ck_assert_int_eq(kb_conn_name_parse(NULL, &id), -1);
}
END_TEST

START_TEST(net_listen_and_errors)
{
  char err[256];
  int fd, fd2;
  uint16_t port;

  fd = kb_net_listen("test", "127.0.0.1", 0, KB_NET_NONBLOCK, err, sizeof(err));
  ck_assert_int_ge(fd, 0);
  port = kb_net_local_port(fd);
  ck_assert_uint_ne(port, 0);
  /* The same port again: refused, with who, where and what to do. */
  fd2 = kb_net_listen("Exchange", "127.0.0.1", port, 0, err, sizeof(err));
  ck_assert_int_eq(fd2, -1);
  ck_assert_msg(!strncmp(err, "Exchange: cannot listen on 127.0.0.1:", 37) &&
                    strstr(err, "pick another port or 0"),
                "%s", err);
  close(fd);
  ck_assert_int_eq(kb_net_listen("admin", "localhost", 0, 0, err, sizeof(err)),
                   -1);
  ck_assert_msg(strstr(err, "'localhost' is not a numeric address"), "%s", err);
  ck_assert_uint_eq(kb_net_local_port(-1), 0);
  kb_net_where("::1", 8080, err, sizeof(err));
  ck_assert_str_eq(err, "[::1]:8080");
}
END_TEST

/* The one classification: the cases the three old classifiers answered
 * differently (bare schemes, a leading blank, Negotiate) get one answer. */
START_TEST(auth_classify_one_grammar)
{
  static const struct {
    const char *value;
    enum kb_auth want;
  } cases[] = {
      {"NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==",
       KB_AUTH_NTLM_NEGOTIATE},
      {" NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==",
       KB_AUTH_NTLM_NEGOTIATE},
      {"ntlm\tTlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw== ",
       KB_AUTH_NTLM_NEGOTIATE},
      {"Negotiate TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAFASgKAAAADw==",
       KB_AUTH_NTLM_NEGOTIATE},
      {"NTLM TlRMTVNTUAADAAAA", KB_AUTH_NTLM_AUTHENTICATE},
      {"NTLM TlRMTVNTUAACAAAA", KB_AUTH_NTLM_CHALLENGE},
      {"NTLM TlRMTVNTUAAEAAAA", KB_AUTH_OTHER}, /* type 4 */
      {"NTLM", KB_AUTH_NTLM_BARE},
      {" NTLM", KB_AUTH_NTLM_BARE},
      {"NTLM ", KB_AUTH_NTLM_BARE},
      {"Negotiate", KB_AUTH_NEGOTIATE_BARE},
      {"Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag", KB_AUTH_SPNEGO},
      {"Negotiate oYIGhgYGKwYBBQUCoIIGejCCBnag", KB_AUTH_SPNEGO},
      {"NTLM YIIGhgYGKwYBBQUCoIIGejCCBnag", KB_AUTH_OTHER},
      {"NTLMx TlRMTVNTUAABAAAA", KB_AUTH_OTHER},
      {"NTLM TlRMTVNTUAABAAA", KB_AUTH_OTHER},   /* not padded */
      {"NTLM TlRM TVNTUAABAAAA", KB_AUTH_OTHER}, /* blank inside */
      {"NTLM TlRMTVNTUAABAAA*", KB_AUTH_OTHER},
      {"Basic YWxpY2U6cHc=", KB_AUTH_OTHER},
      {"", KB_AUTH_OTHER},
      {"  ", KB_AUTH_OTHER},
  };
  size_t i;

  ck_assert_int_eq(kb_auth_classify(NULL, 0), KB_AUTH_NONE);
  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    ck_assert_msg(
        kb_auth_classify(cases[i].value, strlen(cases[i].value)) ==
            cases[i].want,
        "'%s': got %s, want %s", cases[i].value,
        kb_auth_name(kb_auth_classify(cases[i].value, strlen(cases[i].value))),
        kb_auth_name(cases[i].want));
  /* Not NUL-terminated: only len bytes count. */
  ck_assert_int_eq(kb_auth_classify("NTLMxyz", 4), KB_AUTH_NTLM_BARE);
}
END_TEST

/* Out of descriptors, kb_net_socket fails as socket(2) does and counts
 * it: what lets a run tell its own exhaustion from the listener's doing. */
START_TEST(net_socket_counts_exhaustion)
{
  struct rlimit old, low;
  unsigned long before = kb_net_fd_exhausted();
  int fds[64];
  int n = 0, fd;

  ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  fd = kb_net_socket(AF_INET, SOCK_STREAM, 0); /* the next free number */
  ck_assert_int_ge(fd, 0);
  close(fd);
  low = old;
  low.rlim_cur = (rlim_t)fd + 8;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  while(n < 64 && (fds[n] = kb_net_socket(AF_INET, SOCK_STREAM, 0)) >= 0)
    n++;
  ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  ck_assert_int_lt(n, 64);
  ck_assert_uint_eq(kb_net_fd_exhausted(), before + 1);
  while(n--)
    close(fds[n]);
}
END_TEST

/* One message of a run of bytes, as kb_wire_message cuts it. */
struct wire_case {
  const char *bytes;
  enum kb_wire_dir dir;
  size_t len, head, body; /* body: decoded */
  bool complete, chunked;
  int status; /* a response's, or -1: a request "POST /p" */
};

/* Where the four readers kbsim had disagreed, the answer is RFC 9112
 * section 6.3's: chunked bodies, 1xx/204/304 without a body, a response
 * without a length running to the end, a Content-Length that is no number
 * making the rest of the bytes one incomplete message. */
START_TEST(wire_frames_messages)
{
  static const struct wire_case cases[] = {
      {"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET", KB_WIRE_REQUEST,
       42, 39, 3, true, false, -1},
      /* A request without a length has no body. */
      {"POST /p HTTP/1.1\r\nHost: x\r\n\r\nGET", KB_WIRE_REQUEST, 29, 29, 0,
       true, false, -1},
      /* A response without one runs to the end. */
      {"HTTP/1.1 200 OK\r\n\r\nrest", KB_WIRE_RESPONSE, 23, 19, 4, true, false,
       200},
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", KB_WIRE_RESPONSE, 25,
       25, 0, true, false, 100},
      {"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\nx",
       KB_WIRE_RESPONSE, 48, 48, 0, true, false, 304},
      {"HTTP/1.1 204 No Content\r\n\r\nx", KB_WIRE_RESPONSE, 27, 27, 0, true,
       false, 204},
      /* Chunked, with a chunk extension and a trailer, then the next one. */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
       "3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\nHTTP",
       KB_WIRE_RESPONSE, 83, 53, 5, true, true, 200},
      /* "notchunked" is no chunked coding: the response runs to the end. */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: notchunked\r\n\r\n0\r\n\r\n",
       KB_WIRE_RESPONSE, 55, 50, 5, true, false, 200},
      /* Cut short: the rest is one incomplete message. */
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
       KB_WIRE_RESPONSE, 52, 47, 0, false, true, 200},
      {"POST /p HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", KB_WIRE_REQUEST, 42,
       39, 3, false, false, -1},
      {"POST /p HTTP/1.1\r\nContent-Length: 12abc\r\n\r\nabcdefghijklmnop",
       KB_WIRE_REQUEST, 59, 43, 16, false, false, -1},
      {"POST /p HTTP/1.1\r\nContent-Length: 3\r\n", KB_WIRE_REQUEST, 37, 37, 0,
       false, false, 0},
      /* A status line that is not HTTP/1.x NNN has no status. */
      {"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n", KB_WIRE_RESPONSE, 39,
       39, 0, true, false, 0},
  };
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const struct wire_case *c = &cases[i];
    struct kb_wire_msg m;
    size_t got = kb_wire_message((const uint8_t *)c->bytes, strlen(c->bytes),
                                 c->dir, &m);

    ck_assert_msg(got == c->len && m.len == c->len && m.head == c->head &&
                      m.body == c->body && m.complete == c->complete &&
                      m.chunked == c->chunked,
                  "case %zu: len %zu head %zu body %zu complete %d chunked %d",
                  i, m.len, m.head, m.body, m.complete, m.chunked);
    if(c->status > 0 || (c->dir == KB_WIRE_RESPONSE && m.whole_head))
      ck_assert_int_eq(m.status, c->status);
    else if(c->status < 0) {
      ck_assert_uint_eq(m.method_len, 4);
      ck_assert(!memcmp(m.method, "POST", 4));
      ck_assert_uint_eq(m.target_len, 2);
      ck_assert(!memcmp(m.target, "/p", 2));
    }
    else
      ck_assert(!m.whole_head && !m.method);
  }
  ck_assert_uint_eq(kb_wire_message((const uint8_t *)"", 0, KB_WIRE_REQUEST,
                                    &(struct kb_wire_msg){0}),
                    0);
}
END_TEST

/* Field values lose the blanks around them (RFC 9110 section 5.5) at both
 * ends, whoever asks: the evidence, the story, the live view and the
 * client each trimmed differently before. */
START_TEST(wire_finds_fields)
{
  static const char head[] = "GET /Authorization: x HTTP/1.1\r\n"
                             "authorization:\t NTLM TlRM \t\r\n"
                             "Authorizationx: no\r\n"
                             "WWW-Authenticate: Negotiate\n"
                             "WWW-Authenticate:NTLM\r\n"
                             "Empty:\r\n"
                             "\r\n";
  const char *v;
  size_t vlen, at = 0;

  v = kb_wire_field_first(head, strlen(head), "Authorization", &vlen);
  ck_assert_ptr_nonnull(v);
  ck_assert_uint_eq(vlen, 9);
  ck_assert(!memcmp(v, "NTLM TlRM", 9));
  v = kb_wire_field(head, strlen(head), "www-authenticate", &at, &vlen);
  ck_assert(v && vlen == 9 && !memcmp(v, "Negotiate", 9));
  v = kb_wire_field(head, strlen(head), "www-authenticate", &at, &vlen);
  ck_assert(v && vlen == 4 && !memcmp(v, "NTLM", 4));
  ck_assert_ptr_null(
      kb_wire_field(head, strlen(head), "WWW-Authenticate", &at, &vlen));
  v = kb_wire_field_first(head, strlen(head), "Empty", &vlen);
  ck_assert(v && vlen == 0);
  ck_assert_ptr_null(kb_wire_field_first(head, strlen(head), "GET /", &vlen));
  ck_assert_ptr_null(kb_wire_field_first(head, strlen(head), "Author", &vlen));
  /* Not NUL-terminated: the value ends where the block does. */
  v = kb_wire_field_first("X: abc", 5, "X", &vlen);
  ck_assert(v && vlen == 2 && !memcmp(v, "ab", 2));
}
END_TEST

/* The ranges kbsim reads in five places (--seeds, --expect-rate and
 * [expect] rate, think = and --think, --vary LOW..HIGH/STEP) split by one
 * rule: every edge on which the five copies used to disagree is decided
 * here once. */
START_TEST(range_splits_one_grammar)
{
  static const struct {
    const char *text;
    unsigned form;
    const char *lo, *hi, *step; /* NULL lo: refused, hi holds the reason */
  } cases[] = {
      {"1..5", KB_RANGE_PAIR, "1", "5", ""},
      {"5s..40s", KB_RANGE_SINGLE, "5s", "40s", ""},
      {"40%..70%", KB_RANGE_PAIR, "40%", "70%", ""},
      {"0.4..0.7", KB_RANGE_PAIR, "0.4", "0.7", ""},
      {"0..0.5", KB_RANGE_PAIR, "0", "0.5", ""},
      {"10s..60s/10s", KB_RANGE_STEP, "10s", "60s", "10s"},
      /* Units and quantities are the caller's: kept as written. */
      {"500ms..2s", KB_RANGE_SINGLE, "500ms", "2s", ""},
      {"0..60s/30s", KB_RANGE_STEP, "0", "60s", "30s"},
      {"-1..3", KB_RANGE_PAIR, "-1", "3", ""},
      {"x..y", KB_RANGE_PAIR, "x", "y", ""},
      /* HIGH < LOW is the caller's to refuse, once the values are read. */
      {"5..1", KB_RANGE_PAIR, "5", "1", ""},
      /* One value: A..A, where the caller takes it. */
      {"7", KB_RANGE_SINGLE, "7", "7", ""},
      {"7", KB_RANGE_PAIR, NULL, "no '..' between LOW and HIGH", NULL},
      {"7", KB_RANGE_STEP, NULL, "no '..' between LOW and HIGH", NULL},
      {"5/1", KB_RANGE_SINGLE, NULL, "one value takes no /STEP", NULL},
      /* Empty ends. */
      {"", KB_RANGE_SINGLE, NULL, "it is empty", NULL},
      {"..5", KB_RANGE_PAIR, NULL, "LOW is empty", NULL},
      {"5..", KB_RANGE_SINGLE, NULL, "HIGH is empty", NULL},
      {"..", KB_RANGE_PAIR, NULL, "LOW is empty", NULL},
      {"1../5", KB_RANGE_STEP, NULL, "HIGH is empty", NULL},
      {"1..5/", KB_RANGE_STEP, NULL, "STEP is empty", NULL},
      /* Dots: one separator, never three in a row (0. to 5, or 0 to .5?). */
      {"0...5", KB_RANGE_PAIR, NULL,
       "three dots in a row: write LOW..HIGH with two (0..0.5, not 0...5)",
       NULL},
      {"1....5", KB_RANGE_SINGLE, NULL,
       "three dots in a row: write LOW..HIGH with two (0..0.5, not 0...5)",
       NULL},
      {"10...60s/10s", KB_RANGE_STEP, NULL,
       "three dots in a row: write LOW..HIGH with two (0..0.5, not 0...5)",
       NULL},
      {"1..2..3", KB_RANGE_PAIR, NULL, "more than one '..'", NULL},
      /* Whitespace: nowhere, neither around a part nor inside one. */
      {" 1..5", KB_RANGE_PAIR, NULL, "LOW has a space in it", NULL},
      {"1 ..5", KB_RANGE_PAIR, NULL, "LOW has a space in it", NULL},
      {"1.. 5", KB_RANGE_PAIR, NULL, "HIGH has a space in it", NULL},
      {"1..5 ", KB_RANGE_PAIR, NULL, "HIGH has a space in it", NULL},
      {"1..5/\t1", KB_RANGE_STEP, NULL, "STEP has a space in it", NULL},
      {" 7", KB_RANGE_SINGLE, NULL, "the value has a space in it", NULL},
      {"1..5\n", KB_RANGE_PAIR, NULL, "HIGH has a control character in it",
       NULL},
      /* /STEP: exactly where the caller takes one, once, after HIGH. */
      {"1..5/1", KB_RANGE_PAIR, NULL, "a /STEP is not taken here", NULL},
      {"1..5/1", KB_RANGE_SINGLE, NULL, "a /STEP is not taken here", NULL},
      {"1..5", KB_RANGE_STEP, NULL, "no /STEP after HIGH", NULL},
      {"1/2..5/1", KB_RANGE_STEP, NULL, "LOW has a '/' in it", NULL},
      {"1..5/1/2", KB_RANGE_STEP, NULL, "STEP has a '/' in it", NULL},
  };
  struct kb_range r;
  char err[128], part[80];
  size_t i;

  for(i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int rc;

    memset(&r, 0x55, sizeof(r));
    err[0] = '\0';
    rc = kb_range_split(cases[i].text, cases[i].form, &r, err, sizeof(err));
    if(!cases[i].lo) {
      ck_assert_msg(rc == -1, "'%s': accepted", cases[i].text);
      ck_assert_msg(!strcmp(err, cases[i].hi), "'%s': '%s', want '%s'",
                    cases[i].text, err, cases[i].hi);
      ck_assert_int_eq(((unsigned char *)&r)[0], 0x55); /* untouched */
      continue;
    }
    ck_assert_msg(rc == 0, "'%s': %s", cases[i].text, err);
    ck_assert_str_eq(r.lo, cases[i].lo);
    ck_assert_str_eq(r.hi, cases[i].hi);
    ck_assert_str_eq(r.step, cases[i].step);
    ck_assert(r.single == !strstr(cases[i].text, ".."));
  }
  ck_assert_int_eq(kb_range_split(NULL, KB_RANGE_SINGLE, &r, err, sizeof(err)),
                   -1);
  ck_assert_str_eq(err, "it is empty");
  /* err may be NULL. */
  ck_assert_int_eq(kb_range_split("1..", KB_RANGE_PAIR, &r, NULL, 0), -1);

  /* Each part has room for KB_RANGE_PART - 1 bytes, and no more. */
  memset(part, '9', KB_RANGE_PART - 1);
  snprintf(part + KB_RANGE_PART - 1, sizeof(part) - (KB_RANGE_PART - 1), "..1");
  ck_assert_int_eq(kb_range_split(part, KB_RANGE_PAIR, &r, err, sizeof(err)),
                   0);
  ck_assert_uint_eq(strlen(r.lo), KB_RANGE_PART - 1);
  memset(part, '9', KB_RANGE_PART);
  snprintf(part + KB_RANGE_PART, sizeof(part) - KB_RANGE_PART, "..1");
  ck_assert_int_eq(kb_range_split(part, KB_RANGE_PAIR, &r, err, sizeof(err)),
                   -1);
  ck_assert_str_eq(err, "LOW is longer than 63 characters");
  snprintf(part, sizeof(part), "1..5/%0*d", KB_RANGE_PART, 1);
  ck_assert_int_eq(kb_range_split(part, KB_RANGE_STEP, &r, err, sizeof(err)),
                   -1);
  ck_assert_str_eq(err, "STEP is longer than 63 characters");
  /* A short err buffer gets what fits, terminated. */
  ck_assert_int_eq(kb_range_split("..5", KB_RANGE_PAIR, &r, err, 4), -1);
  ck_assert_str_eq(err, "LOW");
}
END_TEST

/* The guard's thread's looks at the slots (kb_guard_stats' scans) once
 * they reach want, or after ms milliseconds of the clock; returns them. */
static uint64_t guard_scans_reach(struct kb_guard *g, uint64_t want, int ms)
{
  struct kb_guard_stats st;
  struct timespec t0, t;

  clock_gettime(CLOCK_MONOTONIC, &t0);
  for(;;) {
    kb_guard_stats(g, &st);
    clock_gettime(CLOCK_MONOTONIC, &t);
    if(st.scans >= want ||
       (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= ms)
      return st.scans;
    sched_yield();
  }
}

/* The guard's thread looks at the slots when a deadline may have passed,
 * not on every request: a kept-alive connection's requests only push its
 * deadline later, so they do not wake it (issue 33: two wake-ups of the
 * thread per request were a third of the listener's CPU per request). */
START_TEST(guard_sleeps_through_requests)
{
  struct kb_guard_config gc;
  struct kb_guard *g = NULL;
  struct kb_guard_slot *slot;
  char err[128];
  int i;

  memset(&gc, 0, sizeof(gc));
  ck_assert_int_eq(kb_guard_start(&gc, &g, err, sizeof(err)), 0);
  /* Its first look (no slot: it sleeps a minute), then the one a new
   * connection's earlier deadline asks for. */
  ck_assert_uint_eq(guard_scans_reach(g, 1, 10000), 1);
  slot = kb_guard_open(g, -1, NULL);
  ck_assert_ptr_nonnull(slot);
  ck_assert_uint_eq(guard_scans_reach(g, 2, 10000), 2);
  for(i = 0; i < 100; i++) {
    ck_assert(kb_guard_head_done(slot));
    ck_assert(kb_guard_body_done(slot));
    kb_guard_next(slot);
  }
  /* No more looks, however long it is given to make one. */
  ck_assert_uint_eq(guard_scans_reach(g, 3, 200), 2);
  kb_guard_close(slot);
  kb_guard_stop(g);
}
END_TEST

/* ---- fibers: waking one from elsewhere on its worker ----------------------
 */

struct fiber_wake {
  struct kb_fiber *sleeper;
  int timer_ran; /* the worker's timer function, on the worker's loop */
  int woke_after_timer;
  int self_in_timer; /* kb_fiber_self() there: must be NULL */
};

/* kb_fiber_timer_fn: wakes the sleeping fiber from the worker's loop. */
static void fiber_wake_timer(void *arg)
{
  struct fiber_wake *fw = arg;
  fw->timer_ran++;
  fw->self_in_timer = kb_fiber_self() != NULL;
  kb_fiber_wake(fw->sleeper);
}

/* Task 0 sleeps with no watch and no limit; task 1 sets the worker's timer
 * to wake it, and ends. */
static void fiber_wake_task(void *arg, size_t i)
{
  struct fiber_wake *fw = arg;
  if(i == 0) {
    fw->sleeper = kb_fiber_self();
    kb_fiber_wait(fw->sleeper, -1);
    fw->woke_after_timer = fw->timer_ran;
  }
  else
    ck_assert_int_eq(kb_fiber_worker_timer(5, fiber_wake_timer, fw), 0);
}

START_TEST(fiber_woken_by_worker_timer)
{
  struct fiber_wake fw;
  char err[160];

  memset(&fw, 0, sizeof(fw));
  /* Off a worker there is no worker timer to set. */
  ck_assert_int_eq(kb_fiber_worker_timer(5, fiber_wake_timer, &fw), -1);
  ck_assert_int_eq(
      kb_fiber_run(2, fiber_wake_task, &fw, 1, NULL, err, sizeof(err)), 0);
  ck_assert_int_eq(fw.timer_ran, 1);
  ck_assert_int_eq(fw.woke_after_timer, 1);
  ck_assert_int_eq(fw.self_in_timer, 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("common");
  TCase *tc = tcase_create("common");
  int failed;

  tcase_add_test(tc, buf_refuses_past_cap);
  tcase_add_test(tc, buf_printf_and_steal);
  tcase_add_test(tc, array_grows_by_one_rule);
  tcase_add_test(tc, users_spec_and_lookup);
  tcase_add_test(tc, net_socket_counts_exhaustion);
  tcase_add_test(tc, users_bad_specs);
  tcase_add_test(tc, users_resolve_like_a_dc);
  tcase_add_test(tc, http_date_is_imf_fixdate);
  tcase_add_test(tc, clock_and_rng_defaults);
  tcase_add_test(tc, trace_note_formats);
  tcase_add_test(tc, note_codes_have_names);
  tcase_add_test(tc, conn_names_format_and_parse);
  tcase_add_test(tc, net_listen_and_errors);
  tcase_add_test(tc, auth_classify_one_grammar);
  tcase_add_test(tc, wire_frames_messages);
  tcase_add_test(tc, wire_finds_fields);
  tcase_add_test(tc, range_splits_one_grammar);
  tcase_add_test(tc, guard_sleeps_through_requests);
  tcase_add_test(tc, fiber_woken_by_worker_timer);
  suite_add_tcase(s, tc);
  failed = kbt_run(s);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
