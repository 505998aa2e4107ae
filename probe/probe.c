/*
 * probe.c - the battery of probe.h: the checks' names and the defects
 * they find, the classes, and probe_run, which runs the checks in their
 * order (session.c, request.c, pinning.c) and derives the defects and the
 * class from the verdicts.
 */
#include "probe_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* The checks as data: name, and the defect a failure finds
 * (KB_DEFECT_COUNT: none). */
static const struct {
  const char *name;
  enum kb_defect defect;
} probe_checks[PROBE_CHECK_COUNT] = {
    [PROBE_CHECK_OFFER] = {"offer", KB_DEFECT_COUNT},
    [PROBE_CHECK_COMMUNICATOR] = {"communicator", KB_DEFECT_BODY_LESS_FORWARD},
    [PROBE_CHECK_OUTLOOK] = {"outlook", KB_DEFECT_COUNT},
    [PROBE_CHECK_ONE_SHOT] = {"one-shot", KB_DEFECT_BODY_LESS_FORWARD},
    [PROBE_CHECK_TWO_USERS] = {"two-users", KB_DEFECT_MIXES_IDENTITIES},
    [PROBE_CHECK_WRONG_PASSWORD] = {"wrong-password", KB_DEFECT_COUNT},
    [PROBE_CHECK_HANDSHAKE_SPLIT] = {"handshake-split",
                                     KB_DEFECT_HANDSHAKE_SPLIT},
    [PROBE_CHECK_PINNED_RECYCLED] = {"pinned-recycled",
                                     KB_DEFECT_PINNED_RECYCLED},
    [PROBE_CHECK_CHALLENGE_REWRITTEN] = {"challenge-rewritten",
                                         KB_DEFECT_CHALLENGE_REWRITTEN},
    [PROBE_CHECK_EXPECT_HANG] = {"expect-hang", KB_DEFECT_EXPECT_HANG},
    [PROBE_CHECK_BODY_ON_TYPE1] = {"body-on-type1", KB_DEFECT_BODY_ON_TYPE1},
    [PROBE_CHECK_SINGLE_LEG] = {"single-leg", KB_DEFECT_MIXES_AFTER_SINGLE_LEG},
    [PROBE_CHECK_HTTP2] = {"http2", KB_DEFECT_NTLM_OVER_HTTP2},
};

const char *probe_check_name(enum probe_check check)
{
  return check < PROBE_CHECK_COUNT ? probe_checks[check].name : "?";
}

enum kb_defect probe_check_defect(enum probe_check check)
{
  return check < PROBE_CHECK_COUNT ? probe_checks[check].defect
                                   : KB_DEFECT_COUNT;
}

const char *probe_verdict_name(enum probe_verdict verdict)
{
  switch(verdict) {
  case PROBE_PASS:
    return "pass";
  case PROBE_FAIL:
    return "fail";
  case PROBE_SKIP:
    return "skip";
  case PROBE_ERROR:
    break;
  }
  return "error";
}

/* The classes as data: name, words, exit code. */
static const struct {
  const char *name;
  const char *text;
  int exit_code;
} probe_classes[] = {
    [PROBE_CLASS_NOT_AFFECTED] = {"not-affected",
                                  "re-authenticates every POST (not affected)",
                                  0},
    [PROBE_CLASS_KB942638] = {"kb942638",
                              "keeps the connection's context and forwards "
                              "the body-less POST (KB 942638's bug)",
                              1},
    [PROBE_CLASS_BASIC_ANONYMOUS] = {"basic-or-anonymous", "Basic / anonymous",
                                     0},
    [PROBE_CLASS_MIXES] = {"mixes-identities",
                           "mixes identities across "
                           "clients",
                           1},
    [PROBE_CLASS_UNPROBED] = {"unprobed", "could not be probed", 3},
    [PROBE_CLASS_DEFECTIVE] = {"defective",
                               "breaks Communicator's pattern another way "
                               "(the defects listed)",
                               1}};

const char *probe_class_name(enum probe_class cls)
{
  return probe_classes[cls].name;
}

const char *probe_class_text(enum probe_class cls)
{
  return probe_classes[cls].text;
}

int probe_class_exit(enum probe_class cls)
{
  return probe_classes[cls].exit_code;
}

/* The defects the failed checks found, into rep->defects. Returns
 * whether there was one. */
static bool probe_find_defects(struct probe_report *rep)
{
  bool any = false;
  int i;

  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    enum kb_defect d = probe_check_defect((enum probe_check)i);
    if(rep->checks[i].verdict == PROBE_FAIL && d != KB_DEFECT_COUNT) {
      rep->defects[d] = true;
      any = true;
    }
  }
  return any;
}

/* The class from the verdicts, worst first. A communicator that could not
 * be judged leaves the listener unprobed only when no defect explains it
 * (a split handshake, a rewritten offer, ... make it fail to sign in). */
static enum probe_class probe_classify(struct probe_report *rep)
{
  const struct probe_result *c = rep->checks;
  bool defects = probe_find_defects(rep);

  if(c[PROBE_CHECK_OFFER].verdict == PROBE_ERROR)
    return PROBE_CLASS_UNPROBED;
  if(c[PROBE_CHECK_TWO_USERS].verdict == PROBE_FAIL ||
     c[PROBE_CHECK_SINGLE_LEG].verdict == PROBE_FAIL)
    return PROBE_CLASS_MIXES;
  if(c[PROBE_CHECK_COMMUNICATOR].verdict == PROBE_FAIL ||
     c[PROBE_CHECK_ONE_SHOT].verdict == PROBE_FAIL)
    return PROBE_CLASS_KB942638;
  if(defects)
    return PROBE_CLASS_DEFECTIVE;
  if(c[PROBE_CHECK_COMMUNICATOR].verdict == PROBE_ERROR)
    return PROBE_CLASS_UNPROBED;
  if(rep->offer != PROBE_OFFER_NTLM ||
     c[PROBE_CHECK_WRONG_PASSWORD].verdict == PROBE_FAIL)
    return PROBE_CLASS_BASIC_ANONYMOUS;
  return PROBE_CLASS_NOT_AFFECTED;
}

/* Starts timing a check: the monotonic clock into *start. */
static void probe_clock(struct timespec *start)
{
  clock_gettime(CLOCK_MONOTONIC, start);
}

/* Seconds since start, for a check's time. */
static double probe_since(const struct timespec *start)
{
  struct timespec now;

  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - start->tv_sec) +
         (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Refuses a status URL that answers nothing usable, which would turn every
 * check that reads it into a guess: say so before anything runs. Returns
 * 0, or -1 with err. */
static int probe_status_usable(const struct probe_config *config,
                               long timeout_ms, char *err, size_t errlen)
{
  struct probe_status st;
  int result = 0;

  if(!config->status_url)
    return 0;
  probe__status_read(config->status_url, timeout_ms, &st);
  if(!st.ok) {
    snprintf(err, errlen,
             "--exchange-status %s: %s; give the status URL that kbsim "
             "exchange or kbsim serve prints (http://HOST:PORT/"
             "kbsim/status)",
             config->status_url, st.why);
    result = -1;
  }
  probe__status_free(&st);
  return result;
}

/* The checks after the offer, in the order they run: first those that
 * must meet the listener before any client has authenticated an upstream
 * connection a pooling listener could hand on (each on a new client
 * connection, one at a time), then the sessions; http2 last, since a
 * listener that lets NTLM through on HTTP/2 streams leaves the upstream
 * connection they authenticated to whoever comes next. */
static const enum probe_check probe_order[] = {PROBE_CHECK_CHALLENGE_REWRITTEN,
                                               PROBE_CHECK_HANDSHAKE_SPLIT,
                                               PROBE_CHECK_PINNED_RECYCLED,
                                               PROBE_CHECK_EXPECT_HANG,
                                               PROBE_CHECK_BODY_ON_TYPE1,
                                               PROBE_CHECK_COMMUNICATOR,
                                               PROBE_CHECK_OUTLOOK,
                                               PROBE_CHECK_ONE_SHOT,
                                               PROBE_CHECK_TWO_USERS,
                                               PROBE_CHECK_WRONG_PASSWORD,
                                               PROBE_CHECK_SINGLE_LEG,
                                               PROBE_CHECK_HTTP2};

/* Runs check (one of probe_order) into rep. */
static void probe_one(const struct probe_config *cfg, unsigned posts,
                      long timeout_ms, enum probe_check check,
                      struct probe_report *rep)
{
  struct probe_result *r = &rep->checks[check];

  switch(check) {
  case PROBE_CHECK_CHALLENGE_REWRITTEN:
    probe__challenge_rewritten(cfg, timeout_ms, rep);
    break;
  case PROBE_CHECK_HANDSHAKE_SPLIT:
    probe__handshake_split(cfg, timeout_ms, rep);
    break;
  case PROBE_CHECK_PINNED_RECYCLED:
    probe__pinned_recycled(cfg, posts, timeout_ms, rep);
    break;
  case PROBE_CHECK_EXPECT_HANG:
    probe__expect_hang(cfg, timeout_ms, rep);
    break;
  case PROBE_CHECK_BODY_ON_TYPE1:
    probe__body_on_type1(cfg, timeout_ms, rep);
    break;
  case PROBE_CHECK_COMMUNICATOR:
    probe__single(cfg, posts, timeout_ms, CLIENT_KIND_COMMUNICATOR, r,
                  "re-authenticating every POST");
    break;
  case PROBE_CHECK_OUTLOOK:
    if(rep->offer == PROBE_OFFER_BASIC) {
      /* Outlook's side of the client library speaks NTLM only. */
      r->verdict = PROBE_SKIP;
      snprintf(r->line, sizeof(r->line),
               "not run: the Outlook client here speaks NTLM only and the "
               "listener offers Basic");
    }
    else
      probe__single(cfg, posts, timeout_ms, CLIENT_KIND_OUTLOOK, r,
                    "authenticating the connection once");
    break;
  case PROBE_CHECK_ONE_SHOT:
    probe__single(cfg, posts, timeout_ms, CLIENT_KIND_ONE_SHOT, r,
                  "a new connection per POST");
    break;
  case PROBE_CHECK_TWO_USERS:
    probe__two_users(cfg, posts, timeout_ms, r);
    break;
  case PROBE_CHECK_WRONG_PASSWORD:
    probe__wrong_password(cfg, timeout_ms, rep);
    break;
  case PROBE_CHECK_SINGLE_LEG:
    probe__single_leg(cfg, posts, timeout_ms, rep);
    break;
  case PROBE_CHECK_HTTP2:
    probe__http2(cfg, timeout_ms, rep);
    break;
  case PROBE_CHECK_OFFER:
  case PROBE_CHECK_COUNT:
    break;
  }
}

enum probe_run_result probe_run(const struct probe_config *config,
                                struct probe_report *report, char *err,
                                size_t errlen)
{
  struct probe_result *c = report->checks;
  struct timespec t;
  unsigned posts;
  long timeout_ms;
  size_t i;

  memset(report, 0, sizeof(*report));
  if(!config || !config->url || !config->users || !config->nusers) {
    snprintf(err, errlen,
             "probe: give the listener's URL and at least one "
             "user");
    return PROBE_RUN_BAD_CONFIG;
  }
  posts = config->posts ? config->posts : PROBE_DEFAULT_POSTS;
  timeout_ms =
      config->timeout_ms ? config->timeout_ms : PROBE_DEFAULT_TIMEOUT_MS;
  if(probe_status_usable(config, timeout_ms, err, errlen))
    return PROBE_RUN_NO_STATUS;
  for(i = 0; i < PROBE_CHECK_COUNT; i++) {
    c[i].verdict = PROBE_SKIP;
    snprintf(c[i].line, sizeof(c[i].line),
             "not run: the offer check could not judge the listener");
  }
  probe_clock(&t);
  probe__offer(config, timeout_ms, report);
  c[PROBE_CHECK_OFFER].seconds = probe_since(&t);
  if(c[PROBE_CHECK_OFFER].verdict == PROBE_PASS)
    for(i = 0; i < sizeof(probe_order) / sizeof(probe_order[0]); i++) {
      struct probe_result *r = &c[probe_order[i]];
      memset(r, 0, sizeof(*r));
      r->verdict = PROBE_ERROR; /* until the check judges */
      probe_clock(&t);
      probe_one(config, posts, timeout_ms, probe_order[i], report);
      r->seconds = probe_since(&t);
    }
  report->cls = probe_classify(report);
  return PROBE_RUN_OK;
}
