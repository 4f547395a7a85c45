/*
 * proxy.c - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2), read before the banner on proxy_listen sockets from
 * trusted_proxies only.  A v1 line is at most 107 bytes with CRLF; a v2
 * header is 16 bytes plus a declared length, checked against what the
 * address family needs.
 */
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd.h"

static const unsigned char v2sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
	0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static int
parse_port(const char *s, unsigned int *port_r)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0' || errno != 0 || v > 65535)
		return -1;
	*port_r = (unsigned int)v;
	return 0;
}

static long
parse_v1(const unsigned char *buf, size_t len, struct proxy_info *pi)
{
	char line[108], *f[6], *save = NULL, *tok;
	const unsigned char *crlf;
	unsigned char tmp[16];
	size_t n, nf = 0;
	int fam;

	crlf = memmem(buf, len < 107 ? len : 107, "\r\n", 2);
	if (crlf == NULL)
		return len < 107 ? 0 : -1;
	n = (size_t)(crlf - buf);
	memcpy(line, buf, n);
	line[n] = '\0';
	for (tok = strtok_r(line, " ", &save); tok != NULL && nf < 6;
	     tok = strtok_r(NULL, " ", &save))
		f[nf++] = tok;
	if (nf >= 2 && strcmp(f[1], "UNKNOWN") == 0) {
		pi->local = true;
		return (long)n + 2;
	}
	if (nf != 6 || tok != NULL)
		return -1;
	if (strcmp(f[1], "TCP4") == 0)
		fam = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		fam = AF_INET6;
	else
		return -1;
	if (inet_pton(fam, f[2], tmp) != 1 || inet_pton(fam, f[3], tmp) != 1)
		return -1;
	if (parse_port(f[4], &pi->src_port) == -1 ||
	    parse_port(f[5], &pi->dst_port) == -1)
		return -1;
	snprintf(pi->src_ip, sizeof(pi->src_ip), "%s", f[2]);
	snprintf(pi->dst_ip, sizeof(pi->dst_ip), "%s", f[3]);
	pi->local = false;
	return (long)n + 2;
}

static long
parse_v2(const unsigned char *buf, size_t len, struct proxy_info *pi)
{
	size_t dlen;
	unsigned int ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
	unsigned int fam = buf[13];

	dlen = ((size_t)buf[14] << 8) | buf[15];
	if (ver != 2 || cmd > 1)
		return -1;
	if (dlen > 512)
		return -1;
	if (len < 16 + dlen)
		return 0;
	if (cmd == 0) { /* LOCAL: health check, keep the real peer */
		pi->local = true;
		return (long)(16 + dlen);
	}
	if (fam == 0x11) { /* TCP over IPv4 */
		if (dlen < 12)
			return -1;
		inet_ntop(AF_INET, buf + 16, pi->src_ip, sizeof(pi->src_ip));
		inet_ntop(AF_INET, buf + 20, pi->dst_ip, sizeof(pi->dst_ip));
		pi->src_port = ((unsigned int)buf[24] << 8) | buf[25];
		pi->dst_port = ((unsigned int)buf[26] << 8) | buf[27];
	} else if (fam == 0x21) { /* TCP over IPv6 */
		if (dlen < 36)
			return -1;
		inet_ntop(AF_INET6, buf + 16, pi->src_ip, sizeof(pi->src_ip));
		inet_ntop(AF_INET6, buf + 32, pi->dst_ip, sizeof(pi->dst_ip));
		pi->src_port = ((unsigned int)buf[48] << 8) | buf[49];
		pi->dst_port = ((unsigned int)buf[50] << 8) | buf[51];
	} else if (fam == 0x00) {
		pi->local = true;
		return (long)(16 + dlen);
	} else
		return -1;
	pi->local = false;
	return (long)(16 + dlen);
}

long
proxy_parse(const unsigned char *buf, size_t len, struct proxy_info *pi)
{
	size_t n;

	memset(pi, 0, sizeof(*pi));
	n = len < 12 ? len : 12;
	if (memcmp(buf, v2sig, n) == 0) {
		if (len < 16)
			return 0;
		return parse_v2(buf, len, pi);
	}
	n = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", n) != 0)
		return -1;
	if (len < 6)
		return 0;
	return parse_v1(buf, len, pi);
}
