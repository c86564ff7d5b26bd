# hoctl — build, test, lint, demo, bench. Lab targets need root.
# Go where the README says it is (/usr/local/go), when PATH has none before
# it: a fresh root shell's PATH does not name it.
export PATH := $(PATH):/usr/local/go/bin
GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
# The build date: SOURCE_DATE_EPOCH when set (reproducible builds), else now.
DATE    ?= $(shell date -u -d @$${SOURCE_DATE_EPOCH:-$$(date +%s)} +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
# make install: the binary, man pages and shell completions under
# $(DESTDIR)$(PREFIX).
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
MANDIR  := $(PREFIX)/share/man
GOLANGCI_LINT_VERSION := v2.15.0
GOBIN   ?= $(shell $(GO) env GOPATH)/bin
# The lab's Debian packages; bench adds the tools it compares against.
# Each program the lab, the demo, the tests and the bench run is in
# internal/lab/hosttools.go with its package, and a test holds that table
# to these lists (hoctl-lab tools prints it).
# gcc and libc6-dev: Nomad's cached build needs cgo; ca-certificates: the Go
# module proxy over HTTPS (a fresh minimal Debian has none of the three).
LAB_PKGS   := openssh-server openssh-client btrfs-progs util-linux mount procps iproute2 attr zstd curl sudo systemd-container debootstrap libnfs-utils gcc libc6-dev ca-certificates nix-bin nftables bash-completion zsh fish git lsof rsync
BENCH_PKGS := pdsh ansible ansible-core python3-minimal hyperfine btrbk mbuffer

.PHONY: all build lab-cache man install uninstall test test-unit test-e2e lint fmt demo demo-down bench fuzz deps bench-deps preflight fresh-check clean docs-golden

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/hoctl ./cmd/hoctl
	$(GO) build -o bin/hoctl-lab ./internal/lab/cmd/hoctl-lab

# Man pages, one per command, from the command tree (what --help says).
man:
	VERSION=$(VERSION) DATE=$(DATE) $(GO) run ./internal/genman bin/man

install: build man
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 bin/hoctl $(DESTDIR)$(BINDIR)/hoctl
	install -m 0644 bin/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	bin/hoctl completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/hoctl
	bin/hoctl completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_hoctl
	bin/hoctl completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/hoctl.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/hoctl $(DESTDIR)$(MANDIR)/man1/hoctl.1 $(DESTDIR)$(MANDIR)/man1/hoctl-*.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/hoctl \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_hoctl \
		$(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/hoctl.fish

# Everything: unit tests (with the race detector), the in-process SSH
# server tests, and the end-to-end tests of the binary against the lab.
# The guard's simulation (pkg/guard TestSimulation) runs on its own,
# verbose, so that its schedule count and invariants are printed. The
# end-to-end groups spend most of their time waiting (boots, leases,
# timers), so the unit tests run beside them, not before: internal/lab's
# own labs are on HOCTL_E2E_NET+3, a block no group uses. The groups'
# output comes after the unit tests' (kept in $(E2E_OUT)).
E2E_OUT := bin/e2e-output.txt
test: deps preflight lab-cache
	@mkdir -p bin; ( $(E2E) -timeout 30m ./e2e/... > $(E2E_OUT) 2>&1 ) & e2e=$$!; \
	$(GO) test -count=1 -race -timeout 10m -skip '^TestSimulation$$' ./pkg/... ./internal/... ./docs/...; u=$$?; \
	$(GO) test -count=1 -run '^TestSimulation$$' -v ./pkg/guard; g=$$?; \
	wait $$e2e; e=$$?; cat $(E2E_OUT) $(E2E_REPORT) 2>/dev/null; \
	[ $$u -eq 0 ] && [ $$g -eq 0 ] && [ $$e -eq 0 ]

# The end-to-end tests run in groups at once (e2e/groups_test.go), each
# in its own test process with its own labs on its own address block:
# HOCTL_E2E_NET (2 by default), +8, +16, ... Their table and the slowest
# tests are printed at the end (go test shows a passing package's output
# only with -v).
E2E_REPORT := bin/e2e-report.txt
E2E = mkdir -p bin && rm -f $(E2E_REPORT) && HOCTL_E2E_REPORT=$(CURDIR)/$(E2E_REPORT) $(GO) test -count=1

test-unit:
	$(GO) test -count=1 -race -skip '^TestSimulation$$' ./pkg/... ./internal/... ./docs/...
	$(GO) test -count=1 -run '^TestSimulation$$' -v ./pkg/guard

# The docs' transcripts ("$ hoctl ..." and what it prints) rewritten with
# what the binary prints now; `make test` fails while a page differs.
docs-golden:
	$(GO) test -count=1 ./docs -run TestDocExamples -update

test-e2e: deps preflight lab-cache
	$(E2E) -v -timeout 30m ./e2e/...; s=$$?; cat $(E2E_REPORT) 2>/dev/null; exit $$s

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@command -v golangci-lint >/dev/null 2>&1 || [ -x $(GOBIN)/golangci-lint ] || \
		$(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	PATH="$(GOBIN):$$PATH" golangci-lint run --allow-parallel-runners ./...

fmt:
	gofmt -w .

# The lab cluster (the seed's hosts) and hoctl's jobs on it.
demo: deps preflight build lab-cache
	bash internal/lab/demo.sh

demo-down:
	./bin/hoctl-lab -dir /tmp/hoctl-lab down

bench: deps bench-deps preflight build lab-cache
	bash bench/run.sh

# Each fuzz target starts from its testdata/fuzz corpus (the hostile
# inputs of issue 11 among them, and internal/hostile's names of issue 19) and runs FUZZTIME; `make fuzz FUZZTIME=30m`
# for a long soak.
FUZZTIME ?= 3m
# The guard's simulation: SIM_SCHEDULES seeded schedules (10,000 in make test).
SIM_SCHEDULES ?= 1000000
fuzz:
	HOCTL_SIM_SCHEDULES=$(SIM_SCHEDULES) $(GO) test -count=1 -timeout 60m -run '^TestSimulation$$' -v ./pkg/guard
	$(GO) test ./pkg/yamlerr -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/inventory -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/inventory -run '^$$' -fuzz FuzzSelect -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/tasks -run '^$$' -fuzz FuzzParseRunbook -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/btrfs -run '^$$' -fuzz FuzzParseList -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/btrfs -run '^$$' -fuzz FuzzNestedPaths -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/btrfs -run '^$$' -fuzz FuzzSnapshotName -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/replicate -run '^$$' -fuzz FuzzFilter -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/replicate -run '^$$' -fuzz FuzzCheckStream -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/replicate -run '^$$' -fuzz FuzzDfAvail -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/replicate -run '^$$' -fuzz FuzzParseEntries -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/replicate -run '^$$' -fuzz FuzzParseTargetInspection -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/replicate -run '^$$' -fuzz FuzzParseSourceInspection -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/replicate -run '^$$' -fuzz FuzzEntryName -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/jobs -run '^$$' -fuzz FuzzRewrite -fuzztime $(FUZZTIME)
	$(GO) test ./pkg/sshexec -run '^$$' -fuzz FuzzKnownHostsLine -fuzztime $(FUZZTIME)

# The real cluster's parts (Debian rootfs, Consul, Nomad), built once per
# machine into ${XDG_CACHE_HOME:-~/.cache}/hoctl-lab (see docs/lab.md).
lab-cache:
	$(GO) build -o bin/hoctl-lab ./internal/lab/cmd/hoctl-lab
	./bin/hoctl-lab cache >/dev/null

# Every program the lab, the demo and the tests run is here (the table in
# internal/lab/hosttools.go), before anything long: a missing one is named
# with its package and the apt-get command, exit 2.
preflight:
	$(GO) build -o bin/hoctl-lab ./internal/lab/cmd/hoctl-lab
	./bin/hoctl-lab preflight

# The README's first command on a pristine Debian root (.ci/fresh-check;
# docs/lab.md): proves make deps installs everything make demo needs.
fresh-check: build lab-cache
	bash .ci/fresh-check

# Install the lab's Debian packages when missing (root).
deps:
	@missing=""; for p in $(LAB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@# Every lab machine's systemd takes inotify instances; the test groups
	@# boot several clusters at once (internal/lab/limits.go, docs/lab.md).
	@if [ "$$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 8192 ]; then \
		echo "setting fs.inotify.max_user_instances=8192 (/etc/sysctl.d/60-hoctl-lab.conf)"; \
		echo fs.inotify.max_user_instances=8192 > /etc/sysctl.d/60-hoctl-lab.conf; \
		sysctl -q -w fs.inotify.max_user_instances=8192; fi

bench-deps:
	@missing=""; for p in $(BENCH_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

clean:
	rm -rf bin
