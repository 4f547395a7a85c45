/*
 * spool.c - a message body: memory up to a threshold, then an unlinked
 * temporary file in the spool directory (O_TMPFILE where the file system
 * has it, else mkstemp + unlink), so a large message never sits in RAM
 * and nothing is left behind when the process dies.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "xmalloc.h"

struct sl_spool {
	char *dir;
	size_t mem_max;
	uint8_t *mem;
	size_t len, alloc;
	int fd; /* -1 while in memory */
};

struct sl_spool *
sl_spool_new(const char *dir, size_t mem_max)
{
	struct sl_spool *s;

	s = sl_xcalloc(1, sizeof(*s));
	s->dir = sl_xstrdup(dir != NULL ? dir : "/var/tmp");
	s->mem_max = mem_max;
	s->fd = -1;
	return s;
}

void
sl_spool_free(struct sl_spool **sp)
{
	struct sl_spool *s = *sp;

	if (s == NULL)
		return;
	if (s->fd != -1)
		close(s->fd);
	free(s->mem);
	free(s->dir);
	free(s);
	*sp = NULL;
}

static int
spool_open_file(struct sl_spool *s)
{
	char *path;
	int fd;

	fd = open(s->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd == -1) {
		path = sl_xasprintf("%s/spool.XXXXXX", s->dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd != -1)
			unlink(path);
		free(path);
	}
	if (fd == -1)
		return -1;
	s->fd = fd;
	return 0;
}

static int
write_all(int fd, off_t off, const uint8_t *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = pwrite(fd, p, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int
sl_spool_append(struct sl_spool *s, const uint8_t *p, size_t n)
{
	size_t want;

	if (n == 0)
		return 0;
	if (s->fd == -1 && s->len + n > s->mem_max) {
		if (spool_open_file(s) == -1)
			return -1;
		if (write_all(s->fd, 0, s->mem, s->len) == -1)
			return -1;
		free(s->mem);
		s->mem = NULL;
		s->alloc = 0;
	}
	if (s->fd != -1) {
		if (write_all(s->fd, (off_t)s->len, p, n) == -1)
			return -1;
		s->len += n;
		return 0;
	}
	if (s->len + n > s->alloc) {
		want = s->alloc == 0 ? 4096 : s->alloc;
		while (want < s->len + n)
			want *= 2;
		s->mem = sl_xrealloc(s->mem, want);
		s->alloc = want;
	}
	memcpy(s->mem + s->len, p, n);
	s->len += n;
	return 0;
}

size_t
sl_spool_size(const struct sl_spool *s)
{
	return s->len;
}

long
sl_spool_read(struct sl_spool *s, size_t off, void *buf, size_t len)
{
	ssize_t n;

	if (off >= s->len)
		return 0;
	if (len > s->len - off)
		len = s->len - off;
	if (len > (size_t)1 << 30)
		len = (size_t)1 << 30;
	if (s->fd == -1) {
		memcpy(buf, s->mem + off, len);
		return (long)len;
	}
	do
		n = pread(s->fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	return (long)n;
}

void
sl_spool_truncate(struct sl_spool *s)
{
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	free(s->mem);
	s->mem = NULL;
	s->alloc = 0;
	s->len = 0;
}
