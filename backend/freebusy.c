/*
 * freebusy.c - GetUserAvailability: the request's free/busy options
 * checked against Exchange 2007's limits, and one FreeBusyResponse per
 * mailbox, derived only from its address and the request's time window.
 */
#include "soap_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Exchange 2007's GetUserAvailability limits. */
#define SOAP_MAX_MAILBOXES 100
#define SOAP_MAX_WINDOW_S ((int64_t)42 * 24 * 3600)
#define SOAP_DEFAULT_INTERVAL_MIN 30
#define SOAP_MIN_INTERVAL_MIN 5
#define SOAP_MAX_INTERVAL_MIN 1440

/* Parses an xs:dateTime "YYYY-MM-DDThh:mm:ss" (fraction and zone suffix
 * ignored: times are taken as UTC, the request's TimeZone is not applied).
 * Returns true and sets *out, or false when text is not a valid date. */
static bool soap_parse_time(const char *text, int64_t *out)
{
  struct tm tm;
  struct tm back;
  int year, mon, day, hour, min, sec;
  int used = 0;
  time_t t;

  if(sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min,
            &sec, &used) != 6 ||
     used != 19 || year < 1970 || year > 9999) {
    return false;
  }
  memset(&tm, 0, sizeof(tm));
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  t = timegm(&tm);
  /* timegm normalises 2009-02-30 to 2009-03-02; a round trip catches it. */
  if(t == (time_t)-1 || !gmtime_r(&t, &back) || back.tm_mday != day ||
     back.tm_mon != mon - 1 || back.tm_hour != hour || back.tm_min != min ||
     back.tm_sec != sec) {
    return false;
  }
  *out = (int64_t)t;
  return true;
}

/* Free/busy status codes of MergedFreeBusy, in increasing priority. */
enum soap_busy {
  SOAP_BUSY_FREE = 0,
  SOAP_BUSY_TENTATIVE = 1,
  SOAP_BUSY_BUSY = 2
};

#define SOAP_FNV_OFFSET UINT64_C(14695981039346656037)
#define SOAP_FNV_PRIME UINT64_C(1099511628211)

/* Returns the FNV-1a hash of the lower-cased address: the per-mailbox seed
 * of its free/busy pattern. */
static uint64_t soap_address_seed(const char *address)
{
  uint64_t h = SOAP_FNV_OFFSET;

  for(; *address; address++) {
    char c = *address;
    h = (h ^ (uint8_t)(c >= 'A' && c <= 'Z' ? c + 32 : c)) * SOAP_FNV_PRIME;
  }
  return h;
}

/* Returns the deterministic status of the hour starting at hour_start for
 * the mailbox whose seed is seed: working hours (09-17 UTC, Monday-Friday)
 * are busy or tentative by a hash of the seed and the hour, everything else
 * is free. Depends on nothing but its arguments. */
static enum soap_busy soap_hour_status(uint64_t seed, int64_t hour_start)
{
  uint64_t h = seed;
  int64_t days = hour_start / 86400;
  int hour_of_day = (int)(hour_start % 86400 / 3600);
  int weekday = (int)((days + 4) % 7); /* 1970-01-01 was a Thursday */
  uint64_t hour = (uint64_t)(hour_start / 3600);
  int i;

  if(weekday == 0 || weekday == 6 || hour_of_day < 9 || hour_of_day >= 17) {
    return SOAP_BUSY_FREE;
  }
  for(i = 0; i < 8; i++) {
    h = (h ^ (uint8_t)(hour >> (8 * i))) * SOAP_FNV_PRIME;
  }
  switch(h % 10) {
  case 0:
  case 1:
  case 2:
    return SOAP_BUSY_BUSY;
  case 3:
    return SOAP_BUSY_TENTATIVE;
  default:
    return SOAP_BUSY_FREE;
  }
}

/* The request's free/busy question, validated. */
struct soap_fb_query {
  int64_t start;
  int64_t end;
  int interval_s;
  char view[32];
  bool merged;
  bool events;
};

/* Reads t:FreeBusyViewOptions from op into q. Returns NULL, or a one-line
 * reason (a static string) when the options are missing or out of
 * Exchange's limits. */
static const char *soap_fb_options(const xmlNode *op, struct soap_fb_query *q)
{
  static const char *const views[] = {
      "MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged"};
  const xmlNode *opts = soap__child(op, NS_TYPES, "FreeBusyViewOptions");
  const xmlNode *window = soap__child(opts, NS_TYPES, "TimeWindow");
  char text[SOAP_MAX_TEXT];
  char *end;
  long minutes = SOAP_DEFAULT_INTERVAL_MIN;

  if(!opts) {
    return "GetUserAvailabilityRequest has no t:FreeBusyViewOptions; "
           "send one with a t:TimeWindow.";
  }
  if(!soap__text(soap__child(window, NS_TYPES, "StartTime"), text,
                 sizeof(text)) ||
     !soap_parse_time(text, &q->start) ||
     !soap__text(soap__child(window, NS_TYPES, "EndTime"), text,
                 sizeof(text)) ||
     !soap_parse_time(text, &q->end)) {
    return "t:TimeWindow needs t:StartTime and t:EndTime as "
           "YYYY-MM-DDThh:mm:ss.";
  }
  if(q->end <= q->start || q->end - q->start > SOAP_MAX_WINDOW_S) {
    return "t:TimeWindow must end after it starts and span at most 42 days.";
  }
  if(soap__text(soap__child(opts, NS_TYPES, "MergedFreeBusyIntervalInMinutes"),
                text, sizeof(text))) {
    errno = 0;
    minutes = strtol(text, &end, 10);
    if(errno || *end || minutes < SOAP_MIN_INTERVAL_MIN ||
       minutes > SOAP_MAX_INTERVAL_MIN) {
      return "t:MergedFreeBusyIntervalInMinutes must be 5 to 1440.";
    }
  }
  q->interval_s = (int)minutes * 60;
  snprintf(q->view, sizeof(q->view), "FreeBusyMerged");
  if(soap__text(soap__child(opts, NS_TYPES, "RequestedView"), text,
                sizeof(text))) {
    size_t i;

    for(i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
      if(!strcmp(text, views[i])) {
        break;
      }
    }
    if(i == sizeof(views) / sizeof(views[0])) {
      return "t:RequestedView must be MergedOnly, FreeBusy, FreeBusyMerged, "
             "Detailed or DetailedMerged.";
    }
    snprintf(q->view, sizeof(q->view), "%s", views[i]);
  }
  q->merged = strstr(q->view, "Merged") != NULL;
  q->events = strcmp(q->view, "MergedOnly") != 0;
  return NULL;
}

/* Writes t:MergedFreeBusy: one digit per interval of q's window, each the
 * busiest hour the interval overlaps. Written in chunks so a 42-day window
 * at 5 minutes (12096 slots) needs no big buffer. */
static void soap_fb_merged(struct soap_xml *x, uint64_t seed,
                           const struct soap_fb_query *q)
{
  char slots[2048];
  size_t n = 0;

  soap__xml_start(x, NULL, "MergedFreeBusy", NS_TYPES);
  for(int64_t slot = q->start; slot < q->end; slot += q->interval_s) {
    enum soap_busy worst = SOAP_BUSY_FREE;

    for(int64_t hour = slot - slot % 3600; hour < slot + q->interval_s;
        hour += 3600) {
      enum soap_busy status = soap_hour_status(seed, hour);
      worst = status > worst ? status : worst;
    }
    slots[n++] = (char)('0' + worst);
    if(n == sizeof(slots) - 1 || slot + q->interval_s >= q->end) {
      slots[n] = '\0';
      soap__xml_text(x, slots);
      n = 0;
    }
  }
  soap__xml_end(x);
}

/* Writes t:CalendarEventArray: one event per non-free hour overlapping q's
 * window. */
static void soap_fb_events(struct soap_xml *x, uint64_t seed,
                           const struct soap_fb_query *q)
{
  soap__xml_start(x, NULL, "CalendarEventArray", NS_TYPES);
  for(int64_t hour = q->start - q->start % 3600; hour < q->end; hour += 3600) {
    enum soap_busy status = soap_hour_status(seed, hour);
    char start[32];
    char end[32];

    if(status == SOAP_BUSY_FREE) {
      continue;
    }
    soap__iso_time(hour, start);
    soap__iso_time(hour + 3600, end);
    soap__xml_start(x, NULL, "CalendarEvent", NULL);
    soap__xml_elem(x, "StartTime", start);
    soap__xml_elem(x, "EndTime", end);
    soap__xml_elem(x, "BusyType",
                   status == SOAP_BUSY_BUSY ? "Busy" : "Tentative");
    soap__xml_end(x);
  }
  soap__xml_end(x);
}

/* Writes one FreeBusyResponse for address over q's window. */
static void soap_fb_one(struct soap_xml *x, const char *address,
                        const struct soap_fb_query *q)
{
  uint64_t seed = soap_address_seed(address);

  soap__xml_start(x, NULL, "FreeBusyResponse", NULL);
  soap__xml_success(x);
  soap__xml_start(x, NULL, "FreeBusyView", NULL);
  soap__xml_start(x, NULL, "FreeBusyViewType", NS_TYPES);
  soap__xml_text(x, q->view);
  soap__xml_end(x);
  if(q->merged) {
    soap_fb_merged(x, seed, q);
  }
  if(q->events) {
    soap_fb_events(x, seed, q);
  }
  soap__xml_end(x); /* FreeBusyView */
  soap__xml_end(x); /* FreeBusyResponse */
}

/* Answers GetUserAvailability with one FreeBusyResponse per t:MailboxData,
 * in request order, derived only from each address and the request's
 * window. Fills reply with a fault when the request is incomplete or out of
 * Exchange's limits. Returns SOAP_OK or SOAP_NOMEM. */
enum soap_result soap__availability(const xmlNode *op, struct soap_reply *reply)
{
  const xmlNode *array = soap__child(op, NS_MESSAGES, "MailboxDataArray");
  const xmlNode *node;
  struct soap_fb_query q;
  struct soap_xml x;
  char address[SOAP_MAX_TEXT];
  const char *why;
  int count = 0;

  if(!array) {
    /* Some clients put MailboxDataArray in the types namespace. */
    array = soap__child(op, NS_TYPES, "MailboxDataArray");
  }
  for(node = array ? array->children : NULL; node; node = node->next) {
    if(!soap__is(node, NS_TYPES, "MailboxData")) {
      continue;
    }
    if(!soap__text(soap__child(soap__child(node, NS_TYPES, "Email"), NS_TYPES,
                               "Address"),
                   address, sizeof(address))) {
      return soap_fault(reply, SOAP_FAULT_SENDER,
                        "A t:MailboxData has no t:Email/t:Address; send "
                        "each mailbox's SMTP address.");
    }
    count++;
  }
  if(count == 0 || count > SOAP_MAX_MAILBOXES) {
    return soap_fault(reply, SOAP_FAULT_SENDER,
                      "GetUserAvailabilityRequest needs 1 to 100 "
                      "t:MailboxData in its MailboxDataArray.");
  }
  why = soap_fb_options(op, &q);
  if(why) {
    return soap_fault(reply, SOAP_FAULT_SENDER, why);
  }

  soap__xml_envelope(&x);
  soap__xml_start(&x, NULL, "GetUserAvailabilityResponse", NS_MESSAGES);
  soap__xml_start(&x, NULL, "FreeBusyResponseArray", NULL);
  for(node = array->children; node; node = node->next) {
    if(soap__is(node, NS_TYPES, "MailboxData") &&
       soap__text(soap__child(soap__child(node, NS_TYPES, "Email"), NS_TYPES,
                              "Address"),
                  address, sizeof(address))) {
      soap_fb_one(&x, address, &q);
    }
  }
  reply->status = SOAP_HTTP_OK;
  reply->content_type = SOAP_CT_XML;
  reply->outcome = SOAP_OUT_AVAILABILITY;
  return soap__xml_close(&x, &reply->body);
}
