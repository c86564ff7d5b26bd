#!/usr/bin/env bash
# make bench: measure hoctl against pdsh, Ansible, btrbk and a raw ssh pipe on the lab and print
# Markdown for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./bench "$@"
