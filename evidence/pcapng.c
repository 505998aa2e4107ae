/*
 * pcapng.c - the blocks of a pcapng file (draft-ietf-opsawg-pcapng, "PCAP
 * Next Generation (pcapng) Capture File Format"): a section header, one
 * raw-IPv4 interface, a Decryption Secrets Block and enhanced packets, for
 * the captures of TLS runs; libpcap writes only the classic format.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "evidence_int.h"

/* Block types and values (draft-ietf-opsawg-pcapng sections 4.1, 4.2,
 * 4.3, 4.7; LINKTYPE_RAW from the link-types registry). */
#define EV_NG_SHB 0x0A0D0D0Au
#define EV_NG_IDB 0x00000001u
#define EV_NG_EPB 0x00000006u
#define EV_NG_DSB 0x0000000Au
#define EV_NG_MAGIC 0x1A2B3C4Du
#define EV_NG_TLS_KEY_LOG 0x544C534Bu /* "TLSK": NSS key log lines */
#define EV_NG_LINKTYPE_RAW 101u

/* Writes one block: its type, total length, body (a fixed part then data
 * padded to 32 bits) and total length again, in the host's byte order,
 * which the section header's magic tells readers. Returns 0, or -1 when
 * out could not take it. */
static int evidence__ng_block(FILE *out, uint32_t type, const void *fixed,
                              size_t flen, const void *data, size_t dlen)
{
  static const uint8_t zero[4];
  size_t pad = (4 - dlen % 4) % 4;
  uint32_t total = (uint32_t)(12 + flen + dlen + pad);

  if(fwrite(&type, 4, 1, out) != 1 || fwrite(&total, 4, 1, out) != 1 ||
     (flen && fwrite(fixed, flen, 1, out) != 1) ||
     (dlen && fwrite(data, dlen, 1, out) != 1) ||
     (pad && fwrite(zero, pad, 1, out) != 1) || fwrite(&total, 4, 1, out) != 1)
    return -1;
  return 0;
}

int evidence__pcapng_start(FILE *out)
{
  /* Section header: magic, version 1.0, section length unknown (-1). */
  uint32_t magic = EV_NG_MAGIC;
  uint16_t version[2] = {1, 0};
  uint64_t length = UINT64_MAX;
  /* Interface: link type, reserved, snap length 0 (no limit); the
   * default time resolution, microseconds. */
  uint16_t link[2] = {(uint16_t)EV_NG_LINKTYPE_RAW, 0};
  uint32_t snaplen = 0;
  uint8_t shb[16], idb[8];

  memcpy(shb, &magic, 4);
  memcpy(shb + 4, version, 4);
  memcpy(shb + 8, &length, 8);
  memcpy(idb, link, 4);
  memcpy(idb + 4, &snaplen, 4);
  if(evidence__ng_block(out, EV_NG_SHB, shb, sizeof(shb), NULL, 0) ||
     evidence__ng_block(out, EV_NG_IDB, idb, sizeof(idb), NULL, 0))
    return -1;
  return 0;
}

int evidence__pcapng_secrets(FILE *out, const char *keylog, size_t len)
{
  uint32_t head[2] = {EV_NG_TLS_KEY_LOG, (uint32_t)len};

  return evidence__ng_block(out, EV_NG_DSB, head, sizeof(head), keylog, len);
}

int evidence__pcapng_packet(FILE *out, int64_t us, const uint8_t *pkt,
                            size_t len)
{
  /* Interface 0, timestamp (high, low 32 bits), captured and original
   * length. */
  uint32_t epb[5] = {0, (uint32_t)((uint64_t)us >> 32), (uint32_t)us,
                     (uint32_t)len, (uint32_t)len};

  return evidence__ng_block(out, EV_NG_EPB, epb, sizeof(epb), pkt, len);
}
