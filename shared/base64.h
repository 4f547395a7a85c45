/*
 * base64.h - base64 (RFC 4648 4) for SASL exchanges: smtpd's AUTH
 * (RFC 4954) and the auth/dovecot plugin's requests.  Pure functions, no
 * allocation.
 *
 * The decoder is strict, as a SASL peer must be: no white space, no line
 * breaks, the length a multiple of 4, '=' padding only at the end, and
 * the unused bits of the last group zero, so one byte string has exactly
 * one accepted encoding.
 */
#ifndef SL_BASE64_H
#define SL_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Characters that n bytes encode into, without a NUL. */
#define SL_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
/* Bytes that len characters of base64 decode into at most. */
#define SL_BASE64_DECODED_MAX(len) (((len) / 4) * 3)

/*
 * Encodes src[0..n) into dst, NUL-terminated.  size must be at least
 * SL_BASE64_ENCODED_LEN(n) + 1.  Returns the length without the NUL, or
 * -1 (dst untouched) when size is too small.
 */
long sl_base64_encode(const uint8_t *src, size_t n, char *dst, size_t size);

/*
 * Decodes src[0..len) into dst (size bytes; SL_BASE64_DECODED_MAX(len) is
 * always enough).  Returns the number of bytes, or -1 when src is not
 * strict base64 or dst is too small.  An empty src decodes to 0 bytes.
 */
long sl_base64_decode(const char *src, size_t len, uint8_t *dst, size_t size);

#endif
