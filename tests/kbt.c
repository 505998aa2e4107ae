/*
 * kbt.c - see kbt.h.
 */
#include "kbt.h"

const char *const kbt_oof_body =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
    "xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\" "
    "xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\">"
    "<soap:Body><m:GetUserOofSettingsRequest><t:Mailbox>"
    "<t:Address>alice@fabrikam.com</t:Address></t:Mailbox>"
    "</m:GetUserOofSettingsRequest></soap:Body></soap:Envelope>";

int64_t kbt_now(void *ctx, const char *who)
{
  (void)ctx;
  (void)who;
  return KBT_CASE_MS;
}

void kbt_fill(void *ctx, const char *label, uint8_t *buf, size_t len)
{
  uint64_t h = UINT64_C(1469598103934665603);
  size_t i;

  (void)ctx;
  for(i = 0; label[i]; i++) {
    h ^= (uint8_t)label[i];
    h *= UINT64_C(1099511628211);
  }
  for(i = 0; i < len; i++) {
    uint64_t z = (h += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    buf[i] = (uint8_t)(z ^ (z >> 31));
  }
}
