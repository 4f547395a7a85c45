/*
 * conf_types.c - the value helpers of <sluice/conf.h>: numeric addresses,
 * networks and string lists, shared by the core and by plugins.
 *
 * Addresses use one 16-byte form: IPv6 as is, IPv4 mapped to
 * ::ffff:a.b.c.d, so an IPv4 network a.b.c.d/n has prefix 96 + n and a
 * client matches the same whether it arrived over IPv4 or as a mapped
 * address on an IPv6 socket.  Only numeric forms are accepted (no names,
 * no IPv6 zone ids).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <sluice/conf.h>

/* Longest text before '/': an IPv6 address with an embedded IPv4 part. */
#define ADDR_TEXT_MAX INET6_ADDRSTRLEN

static const uint8_t v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0xff, 0xff };

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int
sl_addr_parse(const char *s, uint8_t addr16_r[16])
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strchr(s, ':') != NULL) {
		if (inet_pton(AF_INET6, s, &a6) != 1)
			return -1;
		memcpy(addr16_r, a6.s6_addr, 16);
		return 0;
	}
	if (inet_pton(AF_INET, s, &a4) != 1)
		return -1;
	memcpy(addr16_r, v4_mapped_prefix, sizeof(v4_mapped_prefix));
	memcpy(addr16_r + 12, &a4.s_addr, 4);
	return 0;
}

bool
sl_addr_is_v4(const uint8_t addr16[16])
{
	return memcmp(addr16, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

/* Parses 1 to 3 decimal digits no greater than max. */
static int
parse_prefix(const char *s, unsigned int max, unsigned int *prefix_r)
{
	unsigned int v = 0;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (!is_digit(s[i]) || i == 3)
			return -1;
		v = v * 10 + (unsigned int)(s[i] - '0');
	}
	if (i == 0 || v > max)
		return -1;
	*prefix_r = v;
	return 0;
}

/* Clears the bits of addr beyond prefix. */
static void
mask_host_bits(uint8_t addr[16], unsigned int prefix)
{
	unsigned int i;

	for (i = 0; i < 16; i++) {
		if (prefix >= 8) {
			prefix -= 8;
			continue;
		}
		addr[i] &= (uint8_t)(0xff00u >> prefix);
		prefix = 0;
	}
}

int
sl_cidr_parse(const char *s, struct sl_cidr *c_r)
{
	char text[ADDR_TEXT_MAX + 1];
	const char *slash;
	size_t len;
	unsigned int prefix;
	bool v6;

	slash = strchr(s, '/');
	len = slash != NULL ? (size_t)(slash - s) : strlen(s);
	if (len == 0 || len > ADDR_TEXT_MAX)
		return -1;
	memcpy(text, s, len);
	text[len] = '\0';
	if (sl_addr_parse(text, c_r->addr) != 0)
		return -1;
	v6 = strchr(text, ':') != NULL;
	if (slash == NULL)
		prefix = v6 ? 128 : 32;
	else if (parse_prefix(slash + 1, v6 ? 128 : 32, &prefix) != 0)
		return -1;
	c_r->prefix = v6 ? prefix : 96 + prefix;
	mask_host_bits(c_r->addr, c_r->prefix);
	return 0;
}

static bool
cidr_match(const struct sl_cidr *c, const uint8_t addr16[16])
{
	unsigned int whole = c->prefix / 8, rest = c->prefix % 8;
	uint8_t mask;

	if (memcmp(c->addr, addr16, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff00u >> rest);
	return (addr16[whole] & mask) == c->addr[whole];
}

bool
sl_cidrlist_match(const struct sl_cidrlist *l, const uint8_t addr16[16])
{
	size_t i;

	if (l == NULL)
		return false;
	for (i = 0; i < l->count; i++) {
		if (cidr_match(&l->items[i], addr16))
			return true;
	}
	return false;
}

/* ASCII only: the result must not depend on the locale. */
static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool
ascii_equal_nocase(const char *a, const char *b)
{
	for (; *a != '\0' && *b != '\0'; a++, b++) {
		if (ascii_lower((unsigned char)*a) !=
		    ascii_lower((unsigned char)*b))
			return false;
	}
	return *a == *b;
}

bool
sl_strlist_has(const struct sl_strlist *l, const char *item)
{
	size_t i;

	if (l == NULL)
		return false;
	for (i = 0; i < l->count; i++) {
		if (ascii_equal_nocase(l->items[i], item))
			return true;
	}
	return false;
}
