# sluice - the one build entry.
#
#   make                 build libsluice, the daemons and every plugin
#   make deps            install the Debian packages (root; no-op when present)
#   make run             deps + build + sluice-smtpd -f -c conf/sluice.conf
#   make check           deps + build + every test under prove
#   make check SANITIZE=1  the same with ASan + UBSan (objects in build-san/)
#   make bench           benchmarks (not tests): see t/bench/
#   make install         PREFIX=/usr/local DESTDIR=
#
# BUILD=dir puts objects elsewhere (default build/, or build-san/).

PREFIX ?= /usr/local
DESTDIR ?=
ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
else
BUILD ?= build
SANFLAGS =
endif
B := $(abspath $(BUILD))

CC ?= cc
WERROR ?= -Werror
OPT ?= -O2 -g
WARN = -std=c11 -Wall -Wextra $(WERROR) -Wformat=2 -Wshadow \
	-Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wcast-qual \
	-Wwrite-strings -Wvla -Wimplicit-fallthrough -fno-common
ifneq ($(SANITIZE),1)
HARDEN = -D_FORTIFY_SOURCE=2 -fstack-protector-strong
endif
PKGS = libevent libevent_pthreads libevent_openssl openssl libpcre2-8 libcares \
	lmdb hiredis
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL = $(WARN) $(OPT) $(HARDEN) $(SANFLAGS) -D_GNU_SOURCE -fPIC \
	-Ishared $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SANFLAGS) $(LDFLAGS)
LIBS_ALL = $(PKG_LIBS) -lresolv -lpthread -ldl $(LIBS)
# Plugins resolve libsluice from the daemon; they link only what they use.
PLUGIN_LIBS = $(shell pkg-config --libs libpcre2-8 2>/dev/null)

LIB_SRC = $(wildcard shared/*.c)
LIB_OBJ = $(LIB_SRC:%.c=$(B)/%.o)
SMTPD_SRC = $(wildcard smtpd/*.c)
SMTPD_OBJ = $(SMTPD_SRC:%.c=$(B)/%.o)
MILTERD_SRC = $(filter-out milterd/client.c,$(wildcard milterd/*.c))
MILTERD_OBJ = $(MILTERD_SRC:%.c=$(B)/%.o)
CLIENT_OBJ = $(B)/milterd/client.o
# Test milters built on the real libmilter (peers for the MTA side).
TMILTER_SRC = $(wildcard t/milter/*.c)
TMILTER_BIN = $(TMILTER_SRC:t/milter/%.c=$(B)/t/milter/%)
PLUGIN_SRC = $(wildcard plugins/*.c plugins/queue/*.c plugins/auth/*.c)
PLUGIN_SO = $(PLUGIN_SRC:plugins/%.c=$(B)/plugins/%.so)
TPLUGIN_SRC = $(wildcard t/plugins/*.c)
TPLUGIN_SO = $(TPLUGIN_SRC:t/plugins/%.c=$(B)/t/plugins/%.so)
UNIT_SRC = $(wildcard t/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:t/unit/%.c=$(B)/t/unit/%)

PROGS = $(B)/sluice-smtpd $(B)/sluice-milterd $(B)/sluice-milter-client

all: $(PROGS) $(PLUGIN_SO)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

$(B)/libsluice.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# -rdynamic: plugins resolve the sl_* API from the executable.
$(B)/sluice-smtpd: $(SMTPD_OBJ) $(B)/libsluice.a
	$(CC) $(LDFLAGS_ALL) -rdynamic -o $@ $(SMTPD_OBJ) \
		-Wl,--whole-archive $(B)/libsluice.a -Wl,--no-whole-archive \
		$(LIBS_ALL)

$(B)/sluice-milterd: $(MILTERD_OBJ) $(B)/libsluice.a
	$(CC) $(LDFLAGS_ALL) -rdynamic -o $@ $(MILTERD_OBJ) \
		-Wl,--whole-archive $(B)/libsluice.a -Wl,--no-whole-archive \
		$(LIBS_ALL)

$(B)/sluice-milter-client: $(CLIENT_OBJ) $(B)/libsluice.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLIENT_OBJ) $(B)/libsluice.a $(LIBS_ALL)

$(B)/t/milter/%: t/milter/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Wno-strict-prototypes -o $@ $< $(LDFLAGS_ALL) \
		-lmilter -lpthread

PUBLIC_H = $(wildcard shared/sluice/*.h)

$(B)/plugins/%.so: plugins/%.c $(PUBLIC_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $(filter %.c,$^) $(LDFLAGS_ALL) \
		$(PLUGIN_LIBS)

# Helper files of a plugin live in plugins/NAME/ and are linked into
# NAME.so (and into the unit test that tests them).
URIBL_HELPERS = plugins/uribl/extract.c plugins/uribl/extract.h
$(B)/plugins/uribl.so $(B)/t/unit/test_uribl: $(URIBL_HELPERS)

# crypt_rn(3) from libxcrypt: yescrypt, SHA-crypt, bcrypt.
$(B)/plugins/auth/flat_file.so: PLUGIN_LIBS += -lcrypt

# The DNS-list plugins include the core's shared/dnslist.h.
$(B)/plugins/dnsbl.so $(B)/plugins/rhsbl.so: shared/dnslist.h
$(B)/plugins/dnsbl.so: shared/ttlmap.h shared/core.h

$(B)/t/plugins/%.so: t/plugins/%.c $(PUBLIC_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $< $(LDFLAGS_ALL)

$(B)/t/unit/%: t/unit/%.c $(B)/libsluice.a $(wildcard shared/*.h) $(PUBLIC_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $(filter %.c,$^) $(LDFLAGS_ALL) -rdynamic \
		-Wl,--whole-archive $(B)/libsluice.a -Wl,--no-whole-archive \
		$(LIBS_ALL) -lcmocka

deps:
	@sh scripts/deps.sh

run: deps all
	@mkdir -p var/Maildir
	$(B)/sluice-smtpd -f -c conf/sluice.conf

tests: all $(UNIT_BIN) $(TPLUGIN_SO) $(TMILTER_BIN)

# Every test prints TAP; prove names the one that fails.
check: deps
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory lint
	SLUICE_BUILD=$(B) SLUICE_SRC=$(CURDIR) CMOCKA_MESSAGE_OUTPUT=TAP \
		prove -j2 --exec '' $(UNIT_BIN) $(wildcard t/integration/*.t)

# What review must never have to ask about.
lint:
	@sh scripts/lint.sh

bench: deps all $(TMILTER_BIN)
	SLUICE_BUILD=$(B) SLUICE_SRC=$(CURDIR) sh t/bench/run.sh
	SLUICE_BUILD=$(B) SLUICE_SRC=$(CURDIR) sh t/bench/tls.sh
	SLUICE_BUILD=$(B) SLUICE_SRC=$(CURDIR) sh t/bench/dns.sh
	SLUICE_BUILD=$(B) SLUICE_SRC=$(CURDIR) BENCH_DNS_REUSE=1 \
	    BENCH_DNS_CONC=100 BENCH_DNS_ROWS="none dns" BENCH_DNS_MSGS=60000 \
	    BENCH_DNS_ROUNDS=5 sh t/bench/dns.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/lib/sluice/plugins/queue
	install -d $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7
	install -d $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)$(PREFIX)/include/sluice
	install -m 755 $(B)/sluice-smtpd $(B)/sluice-milterd $(DESTDIR)$(PREFIX)/sbin/
	install -d $(DESTDIR)$(PREFIX)/lib/sluice/plugins/auth
	cd $(B)/plugins && for f in *.so queue/*.so auth/*.so; do \
		install -m 644 $$f $(DESTDIR)$(PREFIX)/lib/sluice/plugins/$$f; done
	install -m 644 shared/sluice/*.h $(DESTDIR)$(PREFIX)/include/sluice/
	install -m 644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 man/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	install -m 644 man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/bin
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 755 $(B)/sluice-milter-client $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build build-san

.PHONY: all deps run tests check lint bench install clean

-include $(LIB_OBJ:.o=.d) $(SMTPD_OBJ:.o=.d) $(MILTERD_OBJ:.o=.d) \
	$(CLIENT_OBJ:.o=.d)
