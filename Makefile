# Builds and installs stud where a distribution expects it: the daemon, its manual page (section
# 8, like hitch's), libstud (shared library with its soname links, static library, header and
# pkg-config file), the systemd service and socket with the service's sysusers.d entry and
# options file, the license and the documentation.
#
#   make                                        # cargo build --release, stud with jemalloc
#   make install                                # under /usr/local
#   make install PREFIX=/usr DESTDIR=/tmp/stage # staged, for a package
#   make uninstall                              # the same variables as install
#
# `install` copies what `make` built and never runs cargo itself, so `make && sudo make install`
# builds as you and installs as root. BUILD_DIR names another build (`cargo build --profile …`).

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/stud
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
# Configuration stays in /etc whatever the prefix: that is where stud.service reads it.
SYSCONFDIR ?= /etc

CARGO ?= cargo
# jemalloc, which the bulk-transfer benchmarks favour (docs/PERFORMANCE.md). FEATURES= builds
# stud on the system allocator.
FEATURES ?= jemalloc
CARGO_TARGET_DIR ?= target
# cargo builds where install looks, whether the directory was set here or in the environment.
export CARGO_TARGET_DIR
BUILD_DIR ?= $(CARGO_TARGET_DIR)/release

INSTALL ?= install

.PHONY: all build install uninstall

all: build

build:
	$(CARGO) build --release -p stud-cli -p stud-ffi $(if $(FEATURES),--features "$(addprefix stud-cli/,$(FEATURES))")

install:
	@for f in stud libstud.so libstud.a; do \
	    [ -f "$(BUILD_DIR)/$$f" ] || { echo "make install: $(BUILD_DIR)/$$f is missing; run make first" >&2; exit 1; }; \
	done
	$(INSTALL) -d "$(DESTDIR)$(SBINDIR)" "$(DESTDIR)$(MANDIR)/man8" "$(DESTDIR)$(DOCDIR)" \
	    "$(DESTDIR)$(SYSTEMDUNITDIR)" "$(DESTDIR)$(SYSUSERSDIR)" "$(DESTDIR)$(SYSCONFDIR)/default"
	$(INSTALL) -m 0755 "$(BUILD_DIR)/stud" "$(DESTDIR)$(SBINDIR)/stud"
	@# docs/stud.1 is written as section 1; a daemon's page lives in section 8, as hitch's does.
	sed -e '1,/^\.TH/{s/^\.TH \([^ ]*\) 1 /.TH \1 8 /;s/"User Commands"/"System Administration"/;}' \
	    docs/stud.1 > "$(DESTDIR)$(MANDIR)/man8/stud.8"
	chmod 0644 "$(DESTDIR)$(MANDIR)/man8/stud.8"
	LIBDIR="$(LIBDIR)" INCLUDEDIR="$(INCLUDEDIR)" DESTDIR="$(DESTDIR)" \
	    sh stud-ffi/install.sh "$(PREFIX)" "$(BUILD_DIR)"
	sed -e 's|/usr/sbin/stud|$(SBINDIR)/stud|g' -e 's|/etc/default/stud|$(SYSCONFDIR)/default/stud|g' \
	    contrib/stud.service > "$(DESTDIR)$(SYSTEMDUNITDIR)/stud.service"
	chmod 0644 "$(DESTDIR)$(SYSTEMDUNITDIR)/stud.service"
	$(INSTALL) -m 0644 contrib/stud.socket "$(DESTDIR)$(SYSTEMDUNITDIR)/stud.socket"
	$(INSTALL) -m 0644 contrib/stud.sysusers "$(DESTDIR)$(SYSUSERSDIR)/stud.conf"
	@# The options file is the operator's: installed once, never overwritten.
	@if [ -e "$(DESTDIR)$(SYSCONFDIR)/default/stud" ]; then \
	    echo "keeping $(DESTDIR)$(SYSCONFDIR)/default/stud"; \
	else \
	    echo "$(INSTALL) -m 0644 contrib/stud.default $(DESTDIR)$(SYSCONFDIR)/default/stud"; \
	    $(INSTALL) -m 0644 contrib/stud.default "$(DESTDIR)$(SYSCONFDIR)/default/stud"; \
	fi
	$(INSTALL) -m 0644 LICENSE README.md docs/deployment.md docs/differences.md "$(DESTDIR)$(DOCDIR)/"

uninstall:
	rm -f "$(DESTDIR)$(SBINDIR)/stud" "$(DESTDIR)$(MANDIR)/man8/stud.8" \
	    "$(DESTDIR)$(LIBDIR)"/libstud.so* "$(DESTDIR)$(LIBDIR)/libstud.a" \
	    "$(DESTDIR)$(LIBDIR)/pkgconfig/stud.pc" "$(DESTDIR)$(INCLUDEDIR)/stud.h" \
	    "$(DESTDIR)$(SYSTEMDUNITDIR)/stud.service" "$(DESTDIR)$(SYSTEMDUNITDIR)/stud.socket" \
	    "$(DESTDIR)$(SYSUSERSDIR)/stud.conf"
	rm -rf "$(DESTDIR)$(DOCDIR)"
	@echo "kept $(DESTDIR)$(SYSCONFDIR)/default/stud (remove it by hand if you no longer want it)"
