/*
 * view.c - what a user sees (notification, log line, presence,
 * scheduling), printed the same way by demo and client.
 */
#include <stdio.h>

#include "cli.h"

void kbsim_print_view(const char *indent, const struct client_view *v)
{
  printf("%sNotifications:      %s\n", indent,
         v->integration_error ? CLIENT_NOTIFICATION_TEXT : "(none)");
  if(v->autodiscovery_failed_logged)
    printf("%sLog:                %s\n", indent, CLIENT_LOG_TEXT);
  printf("%sPresence info:      %s\n", indent,
         v->presence_available ? "available" : "unavailable");
  printf("%sScheduling info:    %s\n", indent,
         v->scheduling_available ? "available" : "unavailable");
}
