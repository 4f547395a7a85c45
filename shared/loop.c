/*
 * loop.c - loop threads, the worker pool, timers and per-IP connection
 * accounting.
 *
 * Each loop thread owns an event_base.  Other threads hand it work with
 * sl_loop_post(): a mutex-protected queue and one persistent event made
 * active with event_active() (libevent is initialised for pthreads).  The
 * worker pool is a fixed set of threads taking jobs from one queue; each
 * job's completion is posted back to the loop that submitted it, so a
 * plugin's done callback always runs on its connection's thread.
 */
#include <sys/types.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core.h"
#include "log.h"
#include "resolver.h"
#include "xmalloc.h"

struct post {
	void (*fn)(void *);
	void *arg;
	struct post *next;
};

struct sl_loop {
	pthread_t thread;
	struct event_base *base;
	struct event *wake;
	pthread_mutex_t mu;
	struct post *head, **tail;
	struct event *log_flush; /* writes the log batch after an iteration */
	unsigned int nconn;      /* loop thread only */
	bool draining;           /* loop thread only */
	struct event *drain_timer;
	struct sl_resolver *dns;  /* loop thread only; made on first use */
	unsigned long dns_serial; /* the configuration it was set up from */
};

struct job {
	struct sl_loop *loop;
	sl_work_fn work, done;
	void *arg;
	struct job *next;
};

static struct sl_loop *loops;
static unsigned int nloops;
static void (*drain_cb)(struct sl_loop *, bool);
static void (*idle_cb)(struct sl_loop *);
static unsigned int drain_timeout_ms;

static pthread_t *workers;
static unsigned int nworkers;
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cv = PTHREAD_COND_INITIALIZER;
static struct job *job_head, **job_tail = &job_head;
static bool job_stop;

static void
loop_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_loop *l = arg;
	struct post *p, *next;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&l->mu);
	p = l->head;
	l->head = NULL;
	l->tail = &l->head;
	pthread_mutex_unlock(&l->mu);
	for (; p != NULL; p = next) {
		next = p->next;
		p->fn(p->arg);
		free(p);
	}
}

void
sl_loop_post(struct sl_loop *l, void (*fn)(void *), void *arg)
{
	struct post *p;

	p = sl_xmalloc(sizeof(*p));
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&l->mu);
	*l->tail = p;
	l->tail = &p->next;
	pthread_mutex_unlock(&l->mu);
	event_active(l->wake, EV_READ, 0);
}

static void
loop_maybe_exit(struct sl_loop *l)
{
	if (l->draining && l->nconn == 0)
		event_base_loopbreak(l->base);
}

static void
loop_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_loop *l = arg;

	(void)fd;
	(void)what;
	if (drain_cb != NULL)
		drain_cb(l, true);
	loop_maybe_exit(l);
}

static void
loop_drain(void *arg)
{
	struct sl_loop *l = arg;
	struct timeval tv = sl_timeval_ms(drain_timeout_ms);

	l->draining = true;
	if (drain_cb != NULL)
		drain_cb(l, false);
	l->drain_timer = evtimer_new(l->base, loop_deadline_cb, l);
	evtimer_add(l->drain_timer, &tv);
	loop_maybe_exit(l);
}

static void
log_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sl_log_flush();
}

/* A zero timeout runs after the callbacks of the current iteration. */
static void
log_arm(void *arg)
{
	struct sl_loop *l = arg;
	struct timeval zero = { 0, 0 };

	if (!evtimer_pending(l->log_flush, NULL))
		evtimer_add(l->log_flush, &zero);
}

static void *
loop_main(void *arg)
{
	struct sl_loop *l = arg;

	l->log_flush = evtimer_new(l->base, log_flush_cb, l);
	sl_log_thread_batch(log_arm, l);
	event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
	sl_resolver_free(&l->dns);
	sl_log_thread_batch(NULL, NULL);
	event_free(l->log_flush);
	return NULL;
}

static void *
worker_main(void *arg)
{
	struct job *j;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&job_mu);
		while (job_head == NULL && !job_stop)
			pthread_cond_wait(&job_cv, &job_mu);
		if (job_head == NULL) {
			pthread_mutex_unlock(&job_mu);
			return NULL;
		}
		j = job_head;
		job_head = j->next;
		if (job_head == NULL)
			job_tail = &job_head;
		pthread_mutex_unlock(&job_mu);
		j->work(j->arg);
		sl_loop_post(j->loop, j->done, j->arg);
		free(j);
	}
}

struct timeval
sl_timeval_ms(unsigned int ms)
{
	struct timeval tv;

	tv.tv_sec = ms / 1000;
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	return tv;
}

unsigned int
sl_loops_count(unsigned int n)
{
	long ncpu;

	if (n != 0)
		return n;
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	return ncpu > 0 ? (unsigned int)ncpu : 1;
}

struct sl_loop *
sl_loop_at(unsigned int i)
{
	SL_ASSERT(i < nloops);
	return &loops[i];
}

void
sl_loops_start(unsigned int n, unsigned int nw)
{
	unsigned int i;

	if (evthread_use_pthreads() != 0)
		sl_fatal("libevent: cannot enable thread support");
	n = sl_loops_count(n);
	nloops = n;
	loops = sl_xcalloc(n, sizeof(*loops));
	for (i = 0; i < n; i++) {
		struct sl_loop *l = &loops[i];

		l->base = event_base_new();
		if (l->base == NULL)
			sl_fatal("libevent: cannot create an event base");
		pthread_mutex_init(&l->mu, NULL);
		l->tail = &l->head;
		l->wake = event_new(l->base, -1, EV_PERSIST, loop_wake_cb, l);
		event_add(l->wake, NULL);
		if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
			sl_fatal("cannot start loop thread: %s",
			    strerror(errno));
	}
	nworkers = nw == 0 ? 1 : nw;
	workers = sl_xcalloc(nworkers, sizeof(*workers));
	for (i = 0; i < nworkers; i++)
		if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0)
			sl_fatal("cannot start worker thread: %s",
			    strerror(errno));
}

void
sl_loops_drain_and_join(unsigned int timeout_ms)
{
	unsigned int i;

	drain_timeout_ms = timeout_ms;
	for (i = 0; i < nloops; i++)
		sl_loop_post(&loops[i], loop_drain, &loops[i]);
	for (i = 0; i < nloops; i++)
		pthread_join(loops[i].thread, NULL);
	/* Workers finish their queue; completions are dropped with the loops.
	 */
	pthread_mutex_lock(&job_mu);
	job_stop = true;
	pthread_cond_broadcast(&job_cv);
	pthread_mutex_unlock(&job_mu);
	for (i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	for (i = 0; i < nloops; i++) {
		struct sl_loop *l = &loops[i];
		struct post *p, *next;

		for (p = l->head; p != NULL; p = next) {
			next = p->next;
			free(p);
		}
		if (l->drain_timer != NULL)
			event_free(l->drain_timer);
		event_free(l->wake);
		event_base_free(l->base);
		pthread_mutex_destroy(&l->mu);
	}
	free(loops);
	free(workers);
	loops = NULL;
	nloops = 0;
}

void
sl_loops_set_drain_cb(void (*fn)(struct sl_loop *l, bool deadline))
{
	drain_cb = fn;
}

void
sl_loops_set_idle_cb(void (*fn)(struct sl_loop *l))
{
	idle_cb = fn;
}

struct sl_resolver *
sl_loop_resolver(struct sl_loop *l, const struct sl_config *cfg)
{
	char *error = NULL;

	if (l->dns != NULL && l->dns_serial == cfg->serial)
		return l->dns;
	if (l->dns == NULL)
		l->dns = sl_resolver_new(l->base, &cfg->settings, &error);
	else if (sl_resolver_configure(l->dns, &cfg->settings, &error) != 0)
		sl_log(LOG_ERR, NULL, "dns: %s (keeping the old servers)",
		    error);
	if (l->dns == NULL)
		sl_log(LOG_ERR, NULL, "dns: resolver not started: %s", error);
	else
		l->dns_serial = cfg->serial;
	free(error);
	return l->dns;
}

void
sl_loop_settle(struct sl_loop *l)
{
	if (l->dns != NULL)
		sl_resolver_settle(l->dns);
}

struct event_base *
sl_loop_base(struct sl_loop *l)
{
	return l->base;
}

void
sl_loop_conn_added(struct sl_loop *l)
{
	l->nconn++;
}

void
sl_loop_conn_removed(struct sl_loop *l)
{
	SL_ASSERT(l->nconn > 0);
	l->nconn--;
	if (l->nconn == 0 && idle_cb != NULL)
		idle_cb(l);
	loop_maybe_exit(l);
}

void
sl_worker_submit(struct sl_loop *l, sl_work_fn work, sl_work_fn done, void *arg)
{
	struct job *j;

	j = sl_xmalloc(sizeof(*j));
	j->loop = l;
	j->work = work;
	j->done = done;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&job_mu);
	*job_tail = j;
	job_tail = &j->next;
	pthread_cond_signal(&job_cv);
	pthread_mutex_unlock(&job_mu);
}

/* --- timers ------------------------------------------------------------ */

struct sl_timer {
	struct event *ev;
	sl_work_fn fn;
	void *arg;
};

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_timer *t = arg;
	sl_work_fn fn = t->fn;
	void *farg = t->arg;

	(void)fd;
	(void)what;
	event_free(t->ev);
	free(t);
	fn(farg);
}

struct sl_timer *
sl_timer_add(struct sl_loop *l, unsigned int ms, sl_work_fn fn, void *arg)
{
	struct sl_timer *t;
	struct timeval tv;

	t = sl_xmalloc(sizeof(*t));
	t->fn = fn;
	t->arg = arg;
	t->ev = evtimer_new(l->base, timer_cb, t);
	if (t->ev == NULL)
		sl_panic("evtimer_new failed");
	tv = sl_timeval_ms(ms);
	evtimer_add(t->ev, &tv);
	return t;
}

void
sl_timer_cancel(struct sl_timer **tp)
{
	if (*tp == NULL)
		return;
	event_free((*tp)->ev);
	free(*tp);
	*tp = NULL;
}

/* --- socket readiness for plugins ------------------------------------- */

struct sl_io {
	struct event *ev;
	sl_io_fn fn;
	void *arg;
	/* an input wait (sl_conn_input_wait): linked on conn->input_waits */
	struct sl_conn *conn;
	struct sl_io *next, *prev;
};

static void
io_unlink(struct sl_io *io)
{
	if (io->conn == NULL)
		return;
	if (io->next != NULL)
		io->next->prev = io->prev;
	if (io->prev != NULL)
		io->prev->next = io->next;
	else
		io->conn->input_waits = io->next;
	io->conn = NULL;
	io->next = io->prev = NULL;
}

static void
io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sl_io *io = arg;
	sl_io_fn fn = io->fn;
	void *farg = io->arg;
	unsigned int w = 0;

	(void)fd;
	if ((what & EV_READ) != 0)
		w |= SL_IO_READ;
	if ((what & EV_WRITE) != 0)
		w |= SL_IO_WRITE;
	if ((what & EV_TIMEOUT) != 0)
		w |= SL_IO_TIMEOUT;
	io_unlink(io);
	event_free(io->ev);
	free(io);
	fn(farg, w);
}

struct sl_io *
sl_conn_io_wait(struct sl_conn *c, int fd, unsigned int what,
    unsigned int timeout_ms, sl_io_fn fn, void *arg)
{
	struct sl_io *io;
	struct timeval tv;
	short ev = 0;

	if ((what & SL_IO_READ) != 0)
		ev |= EV_READ;
	if ((what & SL_IO_WRITE) != 0)
		ev |= EV_WRITE;
	io = sl_xcalloc(1, sizeof(*io));
	io->fn = fn;
	io->arg = arg;
	io->ev = event_new(c->loop->base, ev != 0 ? fd : -1, ev, io_cb, io);
	if (io->ev == NULL)
		sl_panic("event_new failed");
	tv = sl_timeval_ms(timeout_ms);
	event_add(io->ev, timeout_ms != 0 ? &tv : NULL);
	return io;
}

/*
 * A pure timer event (no descriptor) that the front end makes active with
 * EV_READ when client input arrives (sl_conn_input_arrived), or at once
 * if some already waits: fn always runs from the loop, never inside this
 * call.
 */
struct sl_io *
sl_conn_input_wait(struct sl_conn *c, unsigned int timeout_ms, sl_io_fn fn,
    void *arg)
{
	struct sl_io *io;

	io = sl_conn_io_wait(c, -1, 0, timeout_ms, fn, arg);
	io->conn = c;
	io->next = c->input_waits;
	if (io->next != NULL)
		io->next->prev = io;
	c->input_waits = io;
	if (sl_conn_input_pending(c) > 0)
		event_active(io->ev, EV_READ, 0);
	return io;
}

void
sl_conn_input_arrived(struct sl_conn *c)
{
	struct sl_io *io;

	for (io = c->input_waits; io != NULL; io = io->next)
		event_active(io->ev, EV_READ, 0);
}

void
sl_conn_input_waits_detach(struct sl_conn *c)
{
	while (c->input_waits != NULL)
		io_unlink(c->input_waits);
}

void
sl_io_cancel(struct sl_io **iop)
{
	if (*iop == NULL)
		return;
	io_unlink(*iop);
	event_free((*iop)->ev);
	free(*iop);
	*iop = NULL;
}

/* --- per-IP accounting ------------------------------------------------- */

#define IPC_BUCKETS 1024

struct ipc {
	uint8_t addr[16];
	unsigned int n;
	struct ipc *next;
};

static pthread_mutex_t ipc_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ipc *ipc_tab[IPC_BUCKETS];
static unsigned int ipc_total;

uint32_t
sl_fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

uint32_t
sl_addr_hash(const uint8_t a[16])
{
	return sl_fnv1a(a, 16);
}

static struct ipc **
ipc_find(const uint8_t a[16])
{
	struct ipc **pp;

	for (pp = &ipc_tab[sl_addr_hash(a) % IPC_BUCKETS]; *pp != NULL;
	     pp = &(*pp)->next)
		if (memcmp((*pp)->addr, a, 16) == 0)
			break;
	return pp;
}

unsigned int
sl_ipcount_acquire(const uint8_t addr[16], unsigned int max_total,
    unsigned int max_per_ip, bool *over_total_r)
{
	struct ipc **pp, *e;
	unsigned int n = 0;

	*over_total_r = false;
	pthread_mutex_lock(&ipc_mu);
	pp = ipc_find(addr);
	if (max_total != 0 && ipc_total >= max_total) {
		*over_total_r = true;
		goto out;
	}
	if (*pp != NULL && max_per_ip != 0 && (*pp)->n >= max_per_ip)
		goto out;
	if (*pp == NULL) {
		e = sl_xcalloc(1, sizeof(*e));
		memcpy(e->addr, addr, 16);
		*pp = e;
	}
	n = ++(*pp)->n;
	ipc_total++;
out:
	pthread_mutex_unlock(&ipc_mu);
	return n;
}

void
sl_ipcount_release(const uint8_t addr[16])
{
	struct ipc **pp, *e;

	pthread_mutex_lock(&ipc_mu);
	pp = ipc_find(addr);
	if (*pp != NULL) {
		ipc_total--;
		if (--(*pp)->n == 0) {
			e = *pp;
			*pp = e->next;
			free(e);
		}
	}
	pthread_mutex_unlock(&ipc_mu);
}

unsigned int
sl_ipcount_get(const uint8_t addr[16])
{
	struct ipc **pp;
	unsigned int n;

	pthread_mutex_lock(&ipc_mu);
	pp = ipc_find(addr);
	n = *pp != NULL ? (*pp)->n : 0;
	pthread_mutex_unlock(&ipc_mu);
	return n;
}

/* --- ids and dates ----------------------------------------------------- */

void
sl_make_id(char *buf, size_t size)
{
	static unsigned int counter;
	struct timespec ts;
	unsigned int c;

	clock_gettime(CLOCK_REALTIME, &ts);
	c = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
	snprintf(buf, size, "%08llX%04X", (unsigned long long)ts.tv_sec,
	    (c ^ ((unsigned int)getpid() << 4)) & 0xffffu);
}

void
sl_rfc5322_date(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	if (strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		buf[0] = '\0';
}
