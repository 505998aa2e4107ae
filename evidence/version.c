/*
 * version.c - kbsim's version, commit and the run-time versions of its
 * libraries (see version.h). The libraries are asked, not their headers:
 * a package built against one version may run with a later one.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <microhttpd.h>
#include <nettle/version.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistring/version.h>

#include "evidence/version.h"
#include "version_git.h"

#ifndef KBSIM_VERSION
#error "KBSIM_VERSION must come from CMakeLists.txt's project version"
#endif

const char *version_kbsim(void)
{
  return KBSIM_VERSION;
}

const char *version_commit(void)
{
  return KBSIM_GIT_COMMIT;
}

/* libxml2 and libunistring report numbers: 21004 is 2.10.4, 0x010000 is
 * 1.0; libpcap a sentence, "libpcap version 1.10.3 (with TPACKET_V3)". */
size_t version_libs(struct version_lib *out, size_t max)
{
  const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
  const char *pcap = pcap_lib_version();
  const char *prefix = "libpcap version ";
  long xml = strtol(xmlParserVersion, NULL, 10);
  struct version_lib all[VERSION_MAX_LIBS];
  size_t n = 0, i;

  memset(all, 0, sizeof(all));
  all[n].name = "libmicrohttpd";
  snprintf(all[n++].version, sizeof(all[0].version), "%s", MHD_get_version());
  all[n].name = "libcurl";
  snprintf(all[n++].version, sizeof(all[0].version), "%s", curl->version);
  all[n].name = "nettle";
  snprintf(all[n++].version, sizeof(all[0].version), "%d.%d",
           nettle_version_major(), nettle_version_minor());
  all[n].name = "libxml2";
  snprintf(all[n++].version, sizeof(all[0].version), "%ld.%ld.%ld", xml / 10000,
           xml / 100 % 100, xml % 100);
  all[n].name = "jansson";
  snprintf(all[n++].version, sizeof(all[0].version), "%s",
           jansson_version_str());
  all[n].name = "libpcap";
  if(!strncmp(pcap, prefix, strlen(prefix)))
    pcap += strlen(prefix);
  snprintf(all[n++].version, sizeof(all[0].version), "%.*s",
           (int)strcspn(pcap, " "), pcap);
  all[n].name = "libunistring";
  if(_libunistring_version & 0xff)
    snprintf(all[n++].version, sizeof(all[0].version), "%d.%d.%d",
             _libunistring_version >> 16, (_libunistring_version >> 8) & 0xff,
             _libunistring_version & 0xff);
  else
    snprintf(all[n++].version, sizeof(all[0].version), "%d.%d",
             _libunistring_version >> 16, (_libunistring_version >> 8) & 0xff);
  for(i = 0; i < n && i < max; i++)
    out[i] = all[i];
  return i;
}

int version_line(char *out, size_t len)
{
  struct version_lib libs[VERSION_MAX_LIBS];
  size_t n = version_libs(libs, VERSION_MAX_LIBS), i;
  char buf[512];
  int pos;

  pos = snprintf(buf, sizeof(buf), "kbsim %s (commit %s", version_kbsim(),
                 version_commit());
  for(i = 0; i < n && pos > 0 && (size_t)pos < sizeof(buf); i++)
    pos += snprintf(buf + pos, sizeof(buf) - (size_t)pos, "%s %s %s",
                    i ? "," : ";", libs[i].name, libs[i].version);
  if(pos > 0 && (size_t)pos < sizeof(buf))
    snprintf(buf + pos, sizeof(buf) - (size_t)pos, ")");
  return snprintf(out, len, "%s", buf);
}
