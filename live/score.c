/*
 * score.c - the live view's sessions and scores (live.h): each member
 * connection's user and whether it saw an error, and each member's score
 * since the last change of its policy - its sessions, those with an
 * error, one mark per session for the console's strip.
 *
 * A session belongs to the epoch of its member at its first leg: a change
 * (live_mark) starts a new epoch, so a session that started before it
 * stays out of the new score even when it goes on.
 */
#include "live_int.h"

#include <stdio.h>
#include <string.h>

/* The score of the member named name, made (counting from the view's
 * since) when there is none and room for one; NULL when there is no
 * room. Called with the lock held. */
static struct live__member *live__member(struct live *l, const char *name)
{
  struct live__member *m;
  size_t i;

  for(i = 0; i < l->nmembers; i++)
    if(!strcmp(l->members[i].name, name))
      return &l->members[i];
  if(l->nmembers == LIVE_MAX_MEMBERS)
    return NULL;
  m = &l->members[l->nmembers++];
  memset(m, 0, sizeof(*m));
  snprintf(m->name, sizeof(m->name), "%s", name);
  snprintf(m->since, sizeof(m->since), "%s", l->since);
  snprintf(m->at, sizeof(m->at), "%s", l->since_at);
  return m;
}

/* How many of nmarks marks a strip keeps: the newest LIVE_STRIP_MAX. */
static size_t live__kept(size_t nmarks)
{
  return nmarks < LIVE_STRIP_MAX ? nmarks : LIVE_STRIP_MAX;
}

/* The mark of session id on m's strip, or NULL when it is gone (an older
 * epoch, or pushed out by newer ones). */
static struct live_mark *live__mark_of(struct live__member *m, uint64_t id)
{
  size_t kept = live__kept(m->nmarks);
  size_t i;

  for(i = 0; i < kept; i++)
    if(m->ids[i] == id)
      return &m->marks[i];
  return NULL;
}

/* The session of (member, conn), made when create is set and there is
 * none (the least recently used one goes when all are taken); NULL when
 * there is none. */
static struct live__session *live__session(struct live *l, const char *member,
                                           uint64_t conn, bool create)
{
  struct live__session *oldest = NULL, *s;
  size_t i;

  for(i = 0; i < LIVE_MAX_SESSIONS; i++) {
    s = &l->sessions[i];
    if(s->used && s->conn == conn && !strcmp(s->member, member)) {
      s->stamp = ++l->stamp;
      return s;
    }
    if(!oldest || (oldest->used && (!s->used || s->stamp < oldest->stamp)))
      oldest = s;
  }
  if(!create)
    return NULL;
  s = oldest;
  memset(s, 0, sizeof(*s));
  s->used = true;
  snprintf(s->member, sizeof(s->member), "%s", member);
  s->conn = conn;
  s->stamp = ++l->stamp;
  s->id = ++l->session_ids;
  return s;
}

void live__score_leg(struct live *l, const char *member, uint64_t conn,
                     const char *user, bool failed, char *user_out, size_t len)
{
  struct live__session *s = live__session(l, member, conn, false);
  struct live__member *m = live__member(l, member);
  struct live_mark *mark = NULL;

  if(!s) {
    /* Its first leg: a session of the member's current epoch. */
    s = live__session(l, member, conn, true);
    if(m) {
      size_t slot = m->nmarks % LIVE_STRIP_MAX;

      s->epoch = m->epoch;
      m->sessions++;
      memset(&m->marks[slot], 0, sizeof(m->marks[slot]));
      m->marks[slot].conn = conn;
      m->ids[slot] = s->id;
      m->nmarks++;
    }
  }
  if(m && s->epoch == m->epoch)
    mark = live__mark_of(m, s->id);
  if(user)
    snprintf(s->user, sizeof(s->user), "%s", user);
  if(mark)
    snprintf(mark->user, sizeof(mark->user), "%s", s->user);
  if(failed && !s->failed) {
    s->failed = true;
    if(m && s->epoch == m->epoch)
      m->errors++;
    if(mark)
      mark->error = true;
  }
  snprintf(user_out, len, "%s", s->user);
}

void live__score_close(struct live *l, const char *member, uint64_t conn)
{
  struct live__session *s = live__session(l, member, conn, false);

  if(s)
    memset(s, 0, sizeof(*s));
}

void live__score_clear(struct live *l, const char *since)
{
  memset(l->sessions, 0, sizeof(l->sessions));
  l->nmembers = 0;
  snprintf(l->since, sizeof(l->since), "%s", since);
  live__clock(l->since_at, sizeof(l->since_at), false);
}

void live_mark(struct live *live, const char *member, const char *since)
{
  struct live__member *m;

  pthread_mutex_lock(&live->lock);
  m = live__member(live, member);
  if(m) {
    m->epoch++;
    m->sessions = 0;
    m->errors = 0;
    m->nmarks = 0;
    snprintf(m->since, sizeof(m->since), "%s", since);
    live__clock(m->at, sizeof(m->at), false);
  }
  live->version++;
  pthread_cond_broadcast(&live->changed);
  pthread_mutex_unlock(&live->lock);
}

void live_score(struct live *live, const char *member, struct live_score *out)
{
  struct live__member *m;
  size_t kept, first, i;

  memset(out, 0, sizeof(*out));
  pthread_mutex_lock(&live->lock);
  m = live__member(live, member);
  if(!m) {
    snprintf(out->since, sizeof(out->since), "%s", live->since);
    snprintf(out->at, sizeof(out->at), "%s", live->since_at);
    pthread_mutex_unlock(&live->lock);
    return;
  }
  snprintf(out->since, sizeof(out->since), "%s", m->since);
  snprintf(out->at, sizeof(out->at), "%s", m->at);
  out->sessions = m->sessions;
  out->errors = m->errors;
  kept = live__kept(m->nmarks);
  first = m->nmarks < LIVE_STRIP_MAX ? 0 : m->nmarks % LIVE_STRIP_MAX;
  for(i = 0; i < kept; i++)
    out->marks[i] = m->marks[(first + i) % LIVE_STRIP_MAX];
  out->nmarks = kept;
  pthread_mutex_unlock(&live->lock);
}
