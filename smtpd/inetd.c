/*
 * inetd.c - sluice-smtpd -i: one session on the descriptors tcpserver or
 * inetd hand over, as a drop-in for qmail-smtpd (shared/daemon.c runs it).
 *
 * tcpserver and inetd pass the connection as fds 0 and 1, one socket: the
 * session takes it over (fds 0 and 1 then point at /dev/null).  Anything
 * else (pipes, a file, a terminal) is bridged: the session gets one end of
 * a socketpair, and a pump thread copies fd 0 into the other end and what
 * comes back to fd 1, through two bounded buffers.  EOF on fd 0 becomes a
 * half-close, which the session answers once everything before it is
 * answered; the pump ends when the session closed its end and fd 1 took
 * the rest (or did not within idle_timeout).
 *
 * The client is TCPREMOTEIP/TCPREMOTEPORT, our side TCPLOCALIP/
 * TCPLOCALPORT, the client's name TCPREMOTEHOST (ucspi-tcp's variables;
 * TCPREMOTEINFO is ignored); without them the socket's addresses, else
 * 127.0.0.1 port 0.  RELAYCLIENT set, even empty, makes the client a relay
 * client; a non-empty value is appended to every recipient address, as
 * qmail-smtpd does.  A malformed value gets 421 4.3.0 and exit 1.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/util.h>

#include "core.h"
#include "log.h"
#include "smtpparse.h"
#include "xmalloc.h"
#include "smtpd.h"

#define PUMP_BUF 16384

/* One direction's buffer: bytes [off, off + len) wait to be written. */
struct pump_buf {
	char data[PUMP_BUF];
	size_t off, len;
};

struct pump {
	int in, out; /* fds 0 and 1 */
	int sock;    /* our end of the socketpair */
	struct pump_buf up, down;
	bool in_eof, up_shut, sock_eof, out_dead;
	unsigned int linger_ms; /* for fd 1 to take the rest */
	pthread_t thread;
};

/* What prepare found, for start (main thread, then the loop thread). */
static struct {
	char remote_ip[INET6_ADDRSTRLEN];
	unsigned int remote_port;
	char local_ip[INET6_ADDRSTRLEN];
	unsigned int local_port;
	struct sockaddr_storage peer, local; /* fd 0's, when a socket */
	socklen_t peer_len, local_len;
	char *remote_host;
	bool relay;
	char *rcpt_suffix;
	int fd; /* the session's socket */
	struct pump *pump;
} io = { .fd = -1 };

/* --- the environment ------------------------------------------------------ */

/*
 * ipvar (+ portvar) into ip/port_r.  Returns 1, 0 if ipvar is not set, or
 * -1 with *error_r.  The address is written back canonical, a v4-mapped
 * one as IPv4.
 */
static int
env_addr(const char *ipvar, const char *portvar, char *ip, size_t ipsize,
    unsigned int *port_r, char **error_r)
{
	const char *v = getenv(ipvar), *p = getenv(portvar);
	static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0xff, 0xff };
	uint8_t a[16];
	unsigned long port = 0;
	char *end;

	if (v == NULL || v[0] == '\0')
		return 0;
	if (sl_addr_parse(v, a) == -1) {
		*error_r =
		    sl_xasprintf("%s=%s: not a numeric IP address", ipvar, v);
		return -1;
	}
	if (memcmp(a, v4mapped, 12) == 0)
		inet_ntop(AF_INET, a + 12, ip, (socklen_t)ipsize);
	else
		inet_ntop(AF_INET6, a, ip, (socklen_t)ipsize);
	if (p != NULL && p[0] != '\0') {
		errno = 0;
		port = strtoul(p, &end, 10);
		if (p[0] < '0' || p[0] > '9' || *end != '\0' || errno != 0 ||
		    port > 65535) {
			*error_r = sl_xasprintf("%s=%s: not a port number",
			    portvar, p);
			return -1;
		}
	}
	*port_r = (unsigned int)port;
	return 1;
}

/* RELAYCLIENT's value goes into addresses and the Received: header. */
static bool
suffix_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '<' ||
		    *s == '>')
			return false;
	return true;
}

static int
read_env(char **error_r)
{
	const char *v;

	if (env_addr("TCPREMOTEIP", "TCPREMOTEPORT", io.remote_ip,
	        sizeof(io.remote_ip), &io.remote_port, error_r) == -1 ||
	    env_addr("TCPLOCALIP", "TCPLOCALPORT", io.local_ip,
	        sizeof(io.local_ip), &io.local_port, error_r) == -1)
		return -1;
	v = getenv("TCPREMOTEHOST");
	if (v != NULL && v[0] != '\0') {
		if (sl_smtp_helo_valid(v))
			io.remote_host = sl_xstrdup(v);
		else
			sl_log(LOG_NOTICE, NULL,
			    "-i: TCPREMOTEHOST is not a host name; ignored");
	}
	v = getenv("RELAYCLIENT");
	if (v != NULL) {
		if (!suffix_ok(v)) {
			*error_r = sl_xasprintf("RELAYCLIENT holds a blank, "
			                        "a control character, '<' or "
			                        "'>'");
			return -1;
		}
		io.relay = true;
		if (v[0] != '\0')
			io.rcpt_suffix = sl_xstrdup(v);
	}
	return 0;
}

/* --- descriptors ------------------------------------------------------- */

static bool
is_same_socket(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	    S_ISSOCK(sa.st_mode) && sa.st_dev == sb.st_dev &&
	    sa.st_ino == sb.st_ino;
}

/*
 * The connection is fds 0 and 1: the session gets it as a descriptor of
 * its own, so that closing it ends the connection, and fds 0 and 1 point
 * at /dev/null (a program a plugin runs never sees the client).
 */
static int
take_socket(char **error_r)
{
	int null;

	io.fd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (io.fd == -1 || null == -1 ||
	    evutil_make_socket_nonblocking(io.fd) == -1 ||
	    dup2(null, STDIN_FILENO) == -1 || dup2(null, STDOUT_FILENO) == -1) {
		*error_r = sl_xasprintf("cannot take over the socket: %s",
		    strerror(errno));
		if (null != -1)
			close(null);
		return -1;
	}
	close(null);
	return 0;
}

/* --- the pump (pipes, files, terminals) ---------------------------------- */

/* Writes from b to fd; false on an error other than "not now". */
static bool
buf_write(struct pump_buf *b, int fd, bool sock)
{
	size_t n = b->len;
	ssize_t w;

	/* Writing at most PIPE_BUF after POLLOUT never blocks on a pipe. */
	if (!sock && n > PIPE_BUF)
		n = PIPE_BUF;
	w = sock ? send(fd, b->data + b->off, n, MSG_NOSIGNAL | MSG_DONTWAIT)
	         : write(fd, b->data + b->off, n);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR;
	b->off += (size_t)w;
	b->len -= (size_t)w;
	if (b->len == 0)
		b->off = 0;
	return true;
}

/* Reads into an empty b; returns 1, 0 at EOF (or an error), -1 "not now". */
static int
buf_read(struct pump_buf *b, int fd, bool sock)
{
	ssize_t r;

	r = sock ? recv(fd, b->data, sizeof(b->data), MSG_DONTWAIT)
	         : read(fd, b->data, sizeof(b->data));
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR
		    ? -1
		    : 0;
	b->off = 0;
	b->len = (size_t)r;
	return r > 0 ? 1 : 0;
}

/* One round: what each descriptor is ready for. */
static void
pump_step(struct pump *p, const struct pollfd *fds, int i_in, int i_sock,
    int i_out)
{
	short ev;

	if (i_in >= 0 && fds[i_in].revents != 0 &&
	    buf_read(&p->up, p->in, false) == 0)
		p->in_eof = true;
	ev = i_sock >= 0 ? fds[i_sock].revents : 0;
	if ((ev & (POLLOUT | POLLERR | POLLHUP)) != 0 && p->up.len > 0 &&
	    !buf_write(&p->up, p->sock, true)) {
		/* the session is gone: stop reading fd 0 */
		p->up.len = 0;
		p->in_eof = p->up_shut = true;
	}
	if ((ev & (POLLIN | POLLERR | POLLHUP)) != 0 && p->down.len == 0 &&
	    !p->sock_eof && buf_read(&p->down, p->sock, true) == 0)
		p->sock_eof = true;
	if (i_out >= 0 && fds[i_out].revents != 0 &&
	    !buf_write(&p->down, p->out, false)) {
		sl_log(LOG_NOTICE, NULL, "-i: writing to stdout: %s",
		    strerror(errno));
		p->out_dead = true;
	}
	/* nobody reads what the session says: keep draining it anyway */
	if (p->out_dead)
		p->down.len = 0;
	if (p->in_eof && p->up.len == 0 && !p->up_shut) {
		/* EOF on fd 0: the session reads EOF after what came before */
		(void)shutdown(p->sock, SHUT_WR);
		p->up_shut = true;
	}
}

static void *
pump_main(void *arg)
{
	struct pump *p = arg;
	struct pollfd fds[3];
	int n, i_in, i_sock, i_out, rc;

	while (!p->sock_eof || (p->down.len > 0 && !p->out_dead)) {
		n = 0;
		i_in = i_sock = i_out = -1;
		if (!p->in_eof && p->up.len == 0) {
			fds[n] =
			    (struct pollfd){ .fd = p->in, .events = POLLIN };
			i_in = n++;
		}
		fds[n] = (struct pollfd){ .fd = p->sock, .events = 0 };
		if (p->up.len > 0)
			fds[n].events |= POLLOUT;
		if (!p->sock_eof && p->down.len == 0)
			fds[n].events |= POLLIN;
		if (fds[n].events != 0)
			i_sock = n++;
		if (p->down.len > 0 && !p->out_dead) {
			fds[n] =
			    (struct pollfd){ .fd = p->out, .events = POLLOUT };
			i_out = n++;
		}
		rc = poll(fds, (nfds_t)n, p->sock_eof ? (int)p->linger_ms : -1);
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc <= 0) {
			sl_log(LOG_NOTICE, NULL,
			    "-i: stdout did not take the last %zu bytes: %s",
			    p->down.len, rc == 0 ? "timeout" : strerror(errno));
			break;
		}
		pump_step(p, fds, i_in, i_sock, i_out);
	}
	close(p->sock);
	p->sock = -1;
	return NULL;
}

static int
start_pump(const struct sl_settings *set, char **error_r)
{
	struct pump *p;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	        sv) == -1) {
		*error_r = sl_xasprintf("socketpair: %s", strerror(errno));
		return -1;
	}
	p = sl_xcalloc(1, sizeof(*p));
	p->in = STDIN_FILENO;
	p->out = STDOUT_FILENO;
	p->sock = sv[1];
	p->linger_ms = set->idle_timeout_ms;
	if (pthread_create(&p->thread, NULL, pump_main, p) != 0) {
		*error_r = sl_xasprintf("cannot start the stdio thread");
		close(sv[0]);
		close(sv[1]);
		free(p);
		return -1;
	}
	io.fd = sv[0];
	io.pump = p;
	return 0;
}

/* --- the daemon's -i callbacks -------------------------------------------- */

int
smtpd_stdio_prepare(const struct sl_settings *set, char **error_r)
{
	char buf[512];

	if (read_env(error_r) == -1) {
		/* RFC 5321 3.8: a 421 greeting, then close */
		snprintf(buf, sizeof(buf),
		    "421 4.3.0 %s Service not available: bad client "
		    "environment\r\n",
		    set->hostname);
		(void)!write(STDOUT_FILENO, buf, strlen(buf));
		return -1;
	}
	io.peer_len = sizeof(io.peer);
	if (getpeername(STDIN_FILENO, (struct sockaddr *)&io.peer,
	        &io.peer_len) == -1)
		io.peer_len = 0;
	io.local_len = sizeof(io.local);
	if (getsockname(STDIN_FILENO, (struct sockaddr *)&io.local,
	        &io.local_len) == -1)
		io.local_len = 0;
	if (io.remote_ip[0] == '\0' && io.peer_len == 0)
		sl_log(LOG_NOTICE, NULL,
		    "-i: no TCPREMOTEIP and stdin is not a socket: client "
		    "address 127.0.0.1");
	if (is_same_socket(STDIN_FILENO, STDOUT_FILENO))
		return take_socket(error_r);
	return start_pump(set, error_r);
}

void
smtpd_stdio_start(struct sl_loop *l)
{
	struct sl_conn *c;
	bool over;

	c = sl_conn_new(l, SL_FRONT_SMTPD);
	if (io.remote_ip[0] != '\0')
		(void)sl_conn_set_remote_text(c, io.remote_ip, io.remote_port);
	else if (io.peer_len > 0)
		sl_conn_set_remote(c, &io.peer, io.peer_len);
	else
		(void)sl_conn_set_remote_text(c, "127.0.0.1", 0);
	/* per-IP accounting (plugins ask) counts the real client */
	memcpy(c->peer_addr, c->remote_addr, sizeof(c->peer_addr));
	if (io.local_ip[0] != '\0') {
		snprintf(c->local_ip, sizeof(c->local_ip), "%s", io.local_ip);
		c->local_port = io.local_port;
	} else if (io.local_len > 0)
		sl_conn_set_local(c, &io.local, io.local_len);
	else
		snprintf(c->local_ip, sizeof(c->local_ip), "127.0.0.1");
	if (io.remote_host != NULL)
		c->remote_host = sl_xstrdup(io.remote_host);
	if (io.relay) {
		c->relay_always = true;
		if (io.rcpt_suffix != NULL)
			c->rcpt_suffix = sl_xstrdup(io.rcpt_suffix);
		sl_conn_update_relay(c);
	}
	/* tcpserver -c limits connections: ours only count */
	(void)sl_ipcount_acquire(c->peer_addr, 0, 0, &over);
	sl_log(LOG_INFO, c->id, "stdio session io=%s relayclient=%s%s%s",
	    io.pump != NULL ? "bridged" : "socket", io.relay ? "yes" : "no",
	    io.rcpt_suffix != NULL ? " suffix=" : "",
	    io.rcpt_suffix != NULL ? io.rcpt_suffix : "");
	smtpd_session_start(c, io.fd, io.pump != NULL ? SMTPD_HALF_CLOSE : 0);
	io.fd = -1;
}

void
smtpd_stdio_finish(void)
{
	if (io.pump != NULL) {
		pthread_join(io.pump->thread, NULL);
		free(io.pump);
		io.pump = NULL;
	}
	if (io.fd != -1)
		close(io.fd);
	io.fd = -1;
	free(io.remote_host);
	free(io.rcpt_suffix);
	io.remote_host = io.rcpt_suffix = NULL;
}
