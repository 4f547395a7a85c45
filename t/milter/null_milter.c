/*
 * null_milter.c - the smallest useful libmilter milter: every event is
 * answered "continue", nothing is changed.  Benchmarks use it as "a null
 * milter built on libmilter".
 *
 *	null_milter -p SOCKET [-s]
 *
 * -s registers no callbacks at all, so libmilter asks the MTA to skip
 * every event but end of message.  SIGUSR1 exits at once (libmilter takes
 * up to 5 s to act on SIGTERM).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libmilter/mfapi.h>

static sfsistat
n_connect(SMFICTX *ctx, char *host, _SOCK_ADDR *sa)
{
	(void)ctx;
	(void)host;
	(void)sa;
	return SMFIS_CONTINUE;
}

static sfsistat
n_str(SMFICTX *ctx, char *s)
{
	(void)ctx;
	(void)s;
	return SMFIS_CONTINUE;
}

static sfsistat
n_argv(SMFICTX *ctx, char **argv)
{
	(void)ctx;
	(void)argv;
	return SMFIS_CONTINUE;
}

static sfsistat
n_header(SMFICTX *ctx, char *name, char *value)
{
	(void)ctx;
	(void)name;
	(void)value;
	return SMFIS_CONTINUE;
}

static sfsistat
n_event(SMFICTX *ctx)
{
	(void)ctx;
	return SMFIS_CONTINUE;
}

static sfsistat
n_body(SMFICTX *ctx, unsigned char *p, size_t len)
{
	(void)ctx;
	(void)p;
	(void)len;
	return SMFIS_CONTINUE;
}

static sfsistat
n_unknown(SMFICTX *ctx, const char *cmd)
{
	(void)ctx;
	(void)cmd;
	return SMFIS_CONTINUE;
}

static void
on_usr1(int sig)
{
	(void)sig;
	_exit(0);
}

int
main(int argc, char **argv)
{
	static char name[] = "sluice-null-milter";
	struct smfiDesc desc;
	struct sigaction sa;
	char *sock = NULL;
	bool bare = false;
	int c;

	while ((c = getopt(argc, argv, "p:s")) != -1) {
		switch (c) {
		case 'p':
			sock = optarg;
			break;
		case 's':
			bare = true;
			break;
		default:
			sock = NULL;
			optind = argc + 1;
			break;
		}
	}
	if (sock == NULL || optind != argc) {
		fprintf(stderr, "usage: null_milter -p SOCKET [-s]\n");
		return 2;
	}
	memset(&desc, 0, sizeof(desc));
	desc.xxfi_name = name;
	desc.xxfi_version = SMFI_VERSION;
	desc.xxfi_flags = SMFIF_NONE;
	if (!bare) {
		desc.xxfi_connect = n_connect;
		desc.xxfi_helo = n_str;
		desc.xxfi_envfrom = n_argv;
		desc.xxfi_envrcpt = n_argv;
		desc.xxfi_header = n_header;
		desc.xxfi_eoh = n_event;
		desc.xxfi_body = n_body;
		desc.xxfi_eom = n_event;
		desc.xxfi_unknown = n_unknown;
		desc.xxfi_data = n_event;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	if (smfi_setconn(sock) != MI_SUCCESS ||
	    smfi_register(desc) != MI_SUCCESS ||
	    smfi_opensocket(true) != MI_SUCCESS) {
		fprintf(stderr, "null_milter: cannot listen on %s\n", sock);
		return 1;
	}
	fprintf(stderr, "READY %s\n", sock);
	return smfi_main() == MI_SUCCESS ? 0 : 1;
}
