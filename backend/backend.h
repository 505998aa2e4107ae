/*
 * backend.h - Exchange 2007 (IIS 7) as the published web server: EWS at
 * /EWS/Exchange.asmx and Outlook Autodiscover at
 * /autodiscover/autodiscover.xml, served by libmicrohttpd.
 *
 *  POST /EWS/Exchange.asmx, empty body      -> 500 SOAP fault (the symptom)
 *  POST /EWS/Exchange.asmx, GetUserOofSettings or GetUserAvailability
 *                                           -> 200 SOAP response
 *  POST /EWS/Exchange.asmx, malformed XML or an operation it does not know
 *                                           -> 500 SOAP fault naming why
 *  POST /autodiscover/autodiscover.xml      -> 200 Outlook autodiscover
 *                                              response carrying the EWS URL
 *  unknown path -> 404; a known path with another method -> 405 + Allow.
 *
 * Every response carries the IIS headers of the support case (Server,
 * Cache-Control: private, X-AspNet-Version, X-Powered-By) and a Date taken
 * from the configured clock. The backend does not authenticate: in the real
 * topology ISA forwards the client's Authorization header and Exchange would
 * check it; here what matters is what reached it, which it counts.
 */
#ifndef BACKEND_H
#define BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kb_env.h"

struct backend_config {
  const char *bind_host; /* numeric address, "127.0.0.1" when NULL */
  uint16_t port;         /* 0 picks a free port; read it with backend_port */
  /* Public URL written into autodiscover responses as ASUrl/OOFUrl; NULL
   * means "https://autodiscover.fabrikam.com/EWS/Exchange.asmx". */
  const char *ews_url;
  size_t max_body; /* request bodies above this get 413; 0 = 1 MiB */
  /* The door (kb_guard.h): heads within head_timeout_ms (0 = 10 s), at
   * most max_connections connections (0 = 1088: the listener's default
   * and room for direct clients). */
  unsigned head_timeout_ms;
  unsigned max_connections;
  struct kb_clock clock; /* for Date headers and response timestamps */
  struct kb_trace trace; /* EXCHANGE/OPEN/CLOSE events, hop PROXY_BACKEND */
  /* When set, each connection takes the name its peer claimed (the
   * proxy's "<client connection> upstream <n>") for its trace events. */
  struct kb_names names;
};

/* What the backend has received since it started. All counts are
 * consistent with each other at the moment of the call. */
struct backend_stats {
  uint64_t connections;     /* TCP connections accepted */
  uint64_t requests;        /* requests answered, all paths */
  uint64_t ews_posts;       /* POSTs to /EWS/Exchange.asmx */
  uint64_t empty_posts;     /* ... of which had an empty body: the bug */
  uint64_t oof_ok;          /* GetUserOofSettings answered 200 */
  uint64_t availability_ok; /* GetUserAvailability answered 200 */
  uint64_t soap_faults;     /* 500 SOAP faults, empty bodies included */
  uint64_t autodiscover_ok; /* autodiscover answered 200 */
  uint64_t not_found;       /* 404 */
  uint64_t bad_method;      /* 405 */
  uint64_t too_large;       /* 413 */
};

struct backend;

/* Starts the server on its own threads. On success *out owns it; release
 * with backend_stop. Returns 0, or -1 with a one-line reason in err (e.g.
 * "cannot listen on 127.0.0.1:80: Permission denied; pick another port or
 * 0"). */
int backend_start(const struct backend_config *config, struct backend **out,
                  char *err, size_t errlen);

/* The port actually listened on. */
uint16_t backend_port(const struct backend *backend);

/* How many connections Exchange holds at most. */
unsigned backend_capacity(const struct backend *backend);

/* Copies the counters into *stats. Safe from any thread. */
void backend_stats(const struct backend *backend, struct backend_stats *stats);

/* Stops the server, closing its connections, and frees it. Accepts NULL. */
void backend_stop(struct backend *backend);

#endif /* BACKEND_H */
