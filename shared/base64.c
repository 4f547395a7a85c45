/*
 * base64.c - strict base64 (RFC 4648 4); see base64.h.
 */
#include <stddef.h>
#include <stdint.h>

#include "base64.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

long
sl_base64_encode(const uint8_t *src, size_t n, char *dst, size_t size)
{
	size_t i, o = 0;
	uint32_t v;

	if (n / 3 + 1 > (SIZE_MAX - 1) / 4 ||
	    size < SL_BASE64_ENCODED_LEN(n) + 1)
		return -1;
	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 |
		    src[i + 2];
		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = b64_alphabet[(v >> 6) & 63];
		dst[o++] = b64_alphabet[v & 63];
	}
	if (i < n) {
		v = (uint32_t)src[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)src[i + 1] << 8;
		dst[o++] = b64_alphabet[v >> 18];
		dst[o++] = b64_alphabet[(v >> 12) & 63];
		dst[o++] = i + 1 < n ? b64_alphabet[(v >> 6) & 63] : '=';
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return (long)o;
}

/* The value of one alphabet character, or -1. */
static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
sl_base64_decode(const char *src, size_t len, uint8_t *dst, size_t size)
{
	size_t i, j, o = 0, pad = 0;
	uint32_t v;
	int d;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && src[len - 1] == '=')
		pad = src[len - 2] == '=' ? 2 : 1;
	if (SL_BASE64_DECODED_MAX(len) - pad > size)
		return -1;
	for (i = 0; i < len; i += 4) {
		v = 0;
		for (j = 0; j < 4; j++) {
			/* '=' only as the final padding */
			if (i + 4 == len && j >= 4 - pad) {
				v <<= 6;
				continue;
			}
			if ((d = b64_value(src[i + j])) < 0)
				return -1;
			v = v << 6 | (uint32_t)d;
		}
		dst[o++] = (uint8_t)(v >> 16);
		if (i + 4 < len || pad < 2)
			dst[o++] = (uint8_t)(v >> 8);
		if (i + 4 < len || pad < 1)
			dst[o++] = (uint8_t)v;
		/* The bits the padding leaves over must be zero. */
		if (i + 4 == len &&
		    ((pad == 1 && (v & 0xff) != 0) ||
		        (pad == 2 && (v & 0xffff) != 0)))
			return -1;
	}
	return (long)o;
}
