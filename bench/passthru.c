/*
 * passthru.c - starts the Exchange backend and one ISA listener in front of
 * it on loopback, prints their ports, and keeps them up until its standard
 * input closes (or reads a line). bench/run points wrk at the listener, at
 * nginx in front of the same backend, and at the backend itself.
 *
 * Usage: bench_passthru [none|integrated|basic] [backend-port] [loops]
 * (loops: the listener's event loop threads; 0 or absent = one, at most 4)
 * Prints "backend <port>" and "proxy <port>", one per line, then waits.
 * Nothing is traced and the clock is the real one, and glibc's trim
 * threshold is the one kbsim's main sets, as in `kbsim serve`.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "common/kb_users.h"
#include "proxy/proxy.h"

/* Parses an optional port argument; returns 0 on success. */
static int passthru_port(const char *text, uint16_t *out)
{
  char *end = NULL;
  long v = strtol(text, &end, 10);
  if(!*text || *end || v < 0 || v > 65535)
    return -1;
  *out = (uint16_t)v;
  return 0;
}

int main(int argc, char **argv)
{
  struct backend_config bc;
  struct proxy_config pc;
  struct backend *backend = NULL;
  struct proxy *proxy = NULL;
  struct kb_users *users = NULL;
  char url[64];
  char err[256];
  char line[64];
  int result = 1;

#ifdef M_TRIM_THRESHOLD
  /* The process-wide setting kbsim's main makes (cli/kbsim.c). */
  mallopt(M_TRIM_THRESHOLD, 4 * 1024 * 1024);
#endif
  memset(&bc, 0, sizeof(bc));
  memset(&pc, 0, sizeof(pc));
  pc.auth = PROXY_AUTH_NONE;
  if(argc > 1 && proxy_auth_parse(argv[1], &pc.auth)) {
    fprintf(stderr,
            "bench_passthru: unknown auth '%s'; use none, "
            "integrated or basic\n",
            argv[1]);
    return 2;
  }
  if(argc > 3) {
    char *end = NULL;
    unsigned long n = strtoul(argv[3], &end, 10);
    if(!*argv[3] || *end || n > 64) {
      fprintf(stderr,
              "bench_passthru: '%s' is not a number of loops; give "
              "0 (one per core) to 64\n",
              argv[3]);
      return 2;
    }
    pc.loops = (unsigned)n;
  }
  if(argc > 2 && passthru_port(argv[2], &bc.port)) {
    fprintf(stderr, "bench_passthru: '%s' is not a port; give 0-65535\n",
            argv[2]);
    return 2;
  }
  if(backend_start(&bc, &backend, err, sizeof(err))) {
    fprintf(stderr, "bench_passthru: %s\n", err);
    goto out;
  }
  snprintf(url, sizeof(url), "http://127.0.0.1:%u",
           (unsigned)backend_port(backend));
  pc.backend_url = url;
  /* The listener wants a store even when it checks nobody; one user makes
   * "integrated" and "basic" usable too. */
  users = kb_users_new();
  if(!users ||
     kb_users_add_spec(users, "FABRIKAM\\alice:Passw0rd!", err, sizeof(err))) {
    fprintf(stderr, "bench_passthru: cannot set up the user store\n");
    goto out;
  }
  pc.users = users;
  if(proxy_start(&pc, &proxy, err, sizeof(err))) {
    fprintf(stderr, "bench_passthru: %s\n", err);
    goto out;
  }
  printf("backend %u\nproxy %u\n", (unsigned)backend_port(backend),
         (unsigned)proxy_port(proxy));
  fflush(stdout);
  /* Any line or end of input stops both servers. */
  if(!fgets(line, sizeof(line), stdin))
    line[0] = '\0';
  result = 0;
out:
  proxy_stop(proxy);
  backend_stop(backend);
  kb_users_free(users);
  return result;
}
