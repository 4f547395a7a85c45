/*
 * runtime.c - a loaded configuration with its plugin instances.
 *
 * For each "plugin NAME ..." line: find NAME.so in plugin_dir (or next to
 * the executable: ./plugins, ../lib/sluice/plugins), dlopen it, check the
 * descriptor's ABI before touching anything else, split off the options
 * the core handles for every plugin (name, reject, timeout, skip), store
 * the rest through the plugin's own table, then call init.  A reload builds
 * a new runtime; sessions keep a reference to the one they began with.
 */
#include <sys/stat.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "tls.h"
#include "xmalloc.h"

static pthread_mutex_t current_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sl_runtime *current;

static const char *const common_opts[] = { "name", "reject", "timeout", "skip",
	NULL };
static const struct sl_conf_def no_opts[] = { SL_CONF_END };

struct sl_runtime *
sl_runtime_ref(struct sl_runtime *rt)
{
	__atomic_add_fetch(&rt->refs, 1, __ATOMIC_RELAXED);
	return rt;
}

static void
runtime_free(struct sl_runtime *rt)
{
	size_t i;

	for (i = rt->ninst; i-- > 0;) {
		struct sl_instance *in = &rt->inst[i];

		if (in->inited && in->plugin->fini != NULL)
			in->plugin->fini(in->state);
		if (in->opts != NULL && in->plugin->conf != NULL)
			sl_conf_table_free(in->plugin->conf, in->opts);
		free(in->opts);
		free(in->name);
		if (in->dl != NULL)
			dlclose(in->dl);
	}
	for (i = 0; i < SL_HOOK_MAX; i++)
		free(rt->chain[i]);
	free(rt->inst);
	sl_tls_server_free(&rt->tls);
	sl_config_free(&rt->cfg);
	free(rt);
}

void
sl_runtime_unref(struct sl_runtime **rtp)
{
	struct sl_runtime *rt = *rtp;

	if (rt == NULL)
		return;
	*rtp = NULL;
	if (__atomic_sub_fetch(&rt->refs, 1, __ATOMIC_ACQ_REL) == 0)
		runtime_free(rt);
}

struct sl_runtime *
sl_runtime_current(void)
{
	struct sl_runtime *rt;

	pthread_mutex_lock(&current_mu);
	rt = current != NULL ? sl_runtime_ref(current) : NULL;
	pthread_mutex_unlock(&current_mu);
	return rt;
}

void
sl_runtime_set_current(struct sl_runtime *rt)
{
	struct sl_runtime *old;

	pthread_mutex_lock(&current_mu);
	old = current;
	current = rt != NULL ? sl_runtime_ref(rt) : NULL;
	pthread_mutex_unlock(&current_mu);
	sl_runtime_unref(&old);
}

/*
 * Default plugin directories, relative to the running executable:
 * EXEDIR/plugins (the build tree), EXEDIR/../lib/sluice/plugins (installed).
 */
static char *
exe_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash == NULL)
		return NULL;
	*slash = '\0';
	return sl_xstrdup(exe);
}

static char *
try_path(const char *dir, const char *name)
{
	struct stat st;
	char *path;

	path = sl_xasprintf("%s/%s.so", dir, name);
	if (stat(path, &st) == 0)
		return path;
	free(path);
	return NULL;
}

static char *
find_plugin(const struct sl_settings *set, const char *name)
{
	char *path = NULL, *dir, *sub;
	size_t i;

	for (i = 0; i < set->plugin_dir.count && path == NULL; i++)
		path = try_path(set->plugin_dir.items[i], name);
	if (set->plugin_dir.count > 0 || (dir = exe_dir()) == NULL)
		return path;
	sub = sl_xasprintf("%s/plugins", dir);
	path = try_path(sub, name);
	free(sub);
	if (path == NULL) {
		sub = sl_xasprintf("%s/../lib/sluice/plugins", dir);
		path = try_path(sub, name);
		free(sub);
	}
	free(dir);
	return path;
}

static bool
name_ok(const char *name)
{
	const char *p;

	if (*name == '\0' || *name == '/' || strstr(name, "..") != NULL)
		return false;
	for (p = name; *p != '\0'; p++)
		if (!(*p == '_' || *p == '-' || *p == '/' ||
		        (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		        (*p >= '0' && *p <= '9')))
			return false;
	return true;
}

/* The options every plugin gets; they are not in its own table. */
static int
common_options(struct sl_instance *in, const struct sl_plugin_line *pl,
    unsigned int def_timeout, char **error_r)
{
	size_t i;
	char *err = NULL;
	static const char *const reject_choices[] = { "yes", "no", "defer",
		NULL };
	static const struct sl_conf_def d_reject = { .name = "reject",
		.type = SL_CONF_ENUM,
		.choices = reject_choices };
	static const struct sl_conf_def d_timeout = { .name = "timeout",
		.type = SL_CONF_MSEC,
		.min = 1,
		.max = 3600000 };
	static const struct sl_conf_def d_skip = { .name = "skip",
		.type = SL_CONF_LIST };

	in->timeout_ms = def_timeout;
	in->reject = SL_REJECT_YES;
	for (i = 0; i < pl->nopts; i++) {
		const char *k = pl->keys[i], *v = pl->values[i];

		if (strcmp(k, "name") == 0) {
			free(in->name);
			in->name = sl_xstrdup(v);
		} else if (strcmp(k, "reject") == 0) {
			if (sl_conf_parse_value(&d_reject, v, &in->reject, NULL,
			        &err) == -1)
				goto fail;
		} else if (strcmp(k, "timeout") == 0) {
			if (sl_conf_parse_value(&d_timeout, v, &in->timeout_ms,
			        NULL, &err) == -1)
				goto fail;
			in->timeout_given = true;
		} else if (strcmp(k, "skip") == 0) {
			struct sl_strlist l = { NULL, 0 };
			size_t j;
			int bad = 0;

			if (sl_conf_parse_value(&d_skip, v, &l, NULL, &err) ==
			    -1)
				goto fail;
			for (j = 0; j < l.count; j++) {
				if (strcmp(l.items[j], "relay") == 0)
					in->skip |= SL_SKIP_RELAY;
				else if (strcmp(l.items[j], "auth") == 0)
					in->skip |= SL_SKIP_AUTH;
				else if (bad == 0) {
					err = sl_xasprintf("skip: unknown "
					                   "client kind '%s' "
					                   "(relay, auth)",
					    l.items[j]);
					bad = 1;
				}
				free(l.items[j]);
			}
			free(l.items);
			if (bad)
				goto fail;
		}
	}
	return 0;
fail:
	*error_r = err;
	return -1;
}

static int
instance_load(struct sl_runtime *rt, struct sl_instance *in,
    const struct sl_plugin_line *pl, enum sl_front_end fe, char **error_r)
{
	const struct sl_plugin *p;
	const char *ierr = NULL;
	char *path = NULL, *err = NULL, *base_dir, *slash;
	void *state;

	in->name = sl_xstrdup(pl->name);
	if (!name_ok(pl->name)) {
		err = sl_xasprintf("invalid plugin name");
		goto fail;
	}
	path = find_plugin(rt->set, pl->name);
	if (path == NULL) {
		err = sl_xasprintf("%s.so not found in plugin_dir", pl->name);
		goto fail;
	}
	in->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (in->dl == NULL) {
		err = sl_xasprintf("cannot load %s: %s", path, dlerror());
		goto fail;
	}
	p = dlsym(in->dl, "sluice_plugin");
	if (p == NULL) {
		err = sl_xasprintf("%s exports no sluice_plugin descriptor",
		    path);
		goto fail;
	}
	if (p->abi != SL_PLUGIN_ABI) {
		err = sl_xasprintf("%s has plugin ABI %u, this sluice needs %u "
		                   "(rebuild the plugin)",
		    path, p->abi, (unsigned int)SL_PLUGIN_ABI);
		goto fail;
	}
	if (p->front_ends != 0 && (p->front_ends & fe) == 0) {
		/* One file may serve both daemons: skip, and say so. */
		sl_log(LOG_WARNING, NULL,
		    "%s:%u: plugin %s: not available in %s; skipped", pl->file,
		    pl->line, pl->name,
		    fe == SL_FRONT_SMTPD ? "sluice-smtpd" : "sluice-milterd");
		dlclose(in->dl);
		free(in->name);
		free(path);
		memset(in, 0, sizeof(*in));
		return 1;
	}
	in->plugin = p;
	if (common_options(in, pl, rt->set->plugin_timeout_ms, &err) == -1)
		goto fail;
	in->opts = sl_xcalloc(1, p->state_size > 0 ? p->state_size : 1);
	base_dir = sl_xstrdup(pl->file);
	slash = strrchr(base_dir, '/');
	if (slash != NULL)
		*slash = '\0';
	else {
		free(base_dir);
		base_dir = sl_xstrdup(".");
	}
	if (sl_conf_table_apply(p->conf != NULL ? p->conf : no_opts, in->opts,
	        pl->keys, pl->values, pl->nopts, base_dir, common_opts,
	        &err) == -1) {
		free(base_dir);
		goto fail;
	}
	free(base_dir);
	state = in->opts;
	if (p->init != NULL && p->init(&state, &ierr) == -1) {
		err = sl_xasprintf("%s", ierr != NULL ? ierr : "init failed");
		goto fail;
	}
	in->state = state;
	in->inited = true;
	free(path);
	return 0;
fail:
	*error_r = sl_xasprintf("%s:%u: plugin %s: %s", pl->file, pl->line,
	    pl->name, err != NULL ? err : "failed");
	free(err);
	free(path);
	return -1;
}

struct sl_runtime *
sl_runtime_load(const char *path, enum sl_front_end fe, char **error_r)
{
	struct sl_runtime *rt;
	struct sl_config *cfg;
	size_t i, h;
	int rc;

	cfg = sl_config_load(path, error_r);
	if (cfg == NULL)
		return NULL;
	rt = sl_xcalloc(1, sizeof(*rt));
	rt->refs = 1;
	rt->cfg = cfg;
	rt->set = &cfg->settings;
	rt->inst = sl_xcalloc(cfg->nplugins, sizeof(*rt->inst));
	if (fe == SL_FRONT_SMTPD) {
		rt->tls = sl_tls_server_new(cfg, error_r);
		if (rt->tls == NULL && *error_r != NULL) {
			runtime_free(rt);
			return NULL;
		}
	}
	for (i = 0; i < cfg->nplugins; i++) {
		rt->ninst++;
		rc = instance_load(rt, &rt->inst[rt->ninst - 1],
		    &cfg->plugins[i], fe, error_r);
		if (rc == -1) {
			runtime_free(rt);
			return NULL;
		}
		if (rc == 1)
			rt->ninst--;
		else if (strcmp(rt->inst[rt->ninst - 1].plugin->name,
		             "naughty") == 0)
			rt->naughty = true;
	}
	for (h = 0; h < SL_HOOK_MAX; h++) {
		rt->chain[h] = sl_xcalloc(rt->ninst, sizeof(*rt->chain[h]));
		for (i = 0; i < rt->ninst; i++)
			if (rt->inst[i].plugin->hooks[h] != NULL)
				rt->chain[h][rt->nchain[h]++] = &rt->inst[i];
	}
	return rt;
}
