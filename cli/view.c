/*
 * view.c - what a user sees (notification, log line, presence,
 * scheduling), printed the same way by demo and client.
 */
#include <stdio.h>

#include "cli.h"

void kbsim_print_view(const char *indent, const struct client_view *v,
                      const struct client_kind_info *kind)
{
  if(kind && !kind->notifies) {
    /* Not Communicator's window: only whether a request failed. */
    printf("%sA failed request:   %s\n", indent,
           v->integration_error ? kind->symptom : "(none)");
    return;
  }
  printf("%sNotifications:      %s\n", indent,
         v->integration_error ? CLIENT_NOTIFICATION_TEXT : "(none)");
  if(v->autodiscovery_failed_logged)
    printf("%sLog:                %s\n", indent, CLIENT_LOG_TEXT);
  printf("%sPresence info:      %s\n", indent,
         v->presence_available ? "available" : "unavailable");
  printf("%sScheduling info:    %s\n", indent,
         v->scheduling_available ? "available" : "unavailable");
}
