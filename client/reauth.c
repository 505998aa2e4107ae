/*
 * reauth.c - Communicator's re-authentication step; see reauth.h.
 */
#include "client/reauth.h"

enum client_reauth_step client_reauth_next(int status, bool has_type2)
{
  if(status == 401)
    return has_type2 ? CLIENT_REAUTH_TYPE3 : CLIENT_REAUTH_NO_CHALLENGE;
  if(status >= 200 && status <= 299)
    return CLIENT_REAUTH_ANSWERED;
  if(status >= 500 && status <= 599)
    return CLIENT_REAUTH_BODY_LOST;
  return CLIENT_REAUTH_UNEXPECTED;
}
