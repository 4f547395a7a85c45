/*
 * hosts_allow - accept or refuse clients by address, and cap connections
 * per address (sluice-plugins(7)); qpsmtpd's hosts_allow.
 *
 * Hook connect.  In order: an address in allow= is accepted at once (the
 * rest of the connect chain is skipped); one in deny= gets 554 5.7.1 and
 * is disconnected; above max_per_ip= open connections from the same
 * address the client gets 421 4.7.0 and is disconnected.  The lists are
 * read-only after start-up; the connection count comes from the core.
 *
 *	plugin hosts_allow allow=127.0.0.0/8,::1 deny=@deny.cidrs max_per_ip=5
 */
#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include <sluice/plugin.h>

struct hosts_allow {
	struct sl_cidrlist allow; /* allow= */
	struct sl_cidrlist deny;  /* deny= */
	unsigned int max_per_ip;  /* max_per_ip=; 0 = no limit */
};

static const struct sl_conf_def hosts_allow_conf[] = {
	{ .name = "allow",
	    .type = SL_CONF_CIDRS,
	    .def = NULL,
	    .offset = offsetof(struct hosts_allow, allow),
	    .help = "addresses and networks always accepted" },
	{ .name = "deny",
	    .type = SL_CONF_CIDRS,
	    .def = NULL,
	    .offset = offsetof(struct hosts_allow, deny),
	    .help = "addresses and networks refused with 554" },
	{ .name = "max_per_ip",
	    .type = SL_CONF_UINT,
	    .def = "0",
	    .min = 0,
	    .max = 100000,
	    .offset = offsetof(struct hosts_allow, max_per_ip),
	    .help = "open connections allowed per client address, 0 = any" },
	SL_CONF_END,
};

static enum sl_verdict
hosts_allow_connect(void *state, struct sl_hookctx *ctx)
{
	const struct hosts_allow *st = state;
	struct sl_conn *conn;
	const char *ip;
	uint8_t addr[16];
	unsigned int n;
	int family;

	conn = sl_hook_conn(ctx);
	ip = sl_conn_remote_ip(conn);
	/* Not an IP client (e.g. -i on a pipe): nothing to judge. */
	family = sl_conn_remote_addr(conn, addr);
	if (family != AF_INET && family != AF_INET6)
		return SL_DECLINED;
	if (sl_cidrlist_match(&st->allow, addr)) {
		sl_hook_log(ctx, LOG_INFO, "verdict=ok reason=allow ip=%s", ip);
		return SL_OK;
	}
	if (sl_cidrlist_match(&st->deny, addr)) {
		sl_hook_log(ctx, LOG_INFO,
		    "verdict=deny_disconnect reason=deny ip=%s", ip);
		sl_hook_reply(ctx, 554, "5.7.1", "Connection from [%s] refused",
		    ip);
		return SL_DENY_DISCONNECT;
	}
	if (st->max_per_ip > 0) {
		n = sl_conn_ip_connections(conn);
		if (n > st->max_per_ip) {
			sl_hook_log(ctx, LOG_INFO,
			    "verdict=denysoft_disconnect reason=max_per_ip "
			    "ip=%s connections=%u max=%u",
			    ip, n, st->max_per_ip);
			sl_hook_reply(ctx, 421, "4.7.0",
			    "Too many connections from [%s]", ip);
			return SL_DENYSOFT_DISCONNECT;
		}
	}
	return SL_DECLINED;
}

const struct sl_plugin sluice_plugin = {
	.abi = SL_PLUGIN_ABI,
	.name = "hosts_allow",
	.conf = hosts_allow_conf,
	.state_size = sizeof(struct hosts_allow),
	.hooks = { [SL_HOOK_CONNECT] = hosts_allow_connect },
};
