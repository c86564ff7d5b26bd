#!/usr/bin/env bash
# hoctl history with 2,016 journaled runs (a week of 5-minute replication
# timers, 6 steps each, ~8 KB per journal): the full list, the default
# terminal page (20) and a filtered page. Usage: bench/history.sh [HOCTL]
set -euo pipefail
hoctl=${1:-bin/hoctl}
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
mkdir -p "$state/hoctl/runs"
python3 - "$state/hoctl/runs" <<'PY'
import json, datetime, random, sys
base = datetime.datetime(2026, 1, 1)
for i in range(2016):
    t = base + datetime.timedelta(minutes=5 * i)
    rid = t.strftime("%Y%m%dT%H%M%SZ") + "-%06x" % random.randrange(1 << 24)
    ts = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    recs = [{"type": "run_start", "time": ts, "run": rid, "command": "hoctl --yes replicate --name services",
             "name": "replicate services", "pid": 1234, "kind": "replicate", "steps": list("abcdef")}]
    for s in range(1, 7):
        recs += [{"type": "step_start", "time": ts, "step": s, "title": "t", "hosts": ["zippy"]},
                 {"type": "action", "time": ts, "step": s, "host": "zippy", "cmd": "btrfs " * 20, "ok": True,
                  "exit_code": 0, "duration_ms": 12.5, "output": "x" * 300},
                 {"type": "step_end", "time": ts, "step": s, "title": "t", "status": "ok"}]
    recs.append({"type": "run_end", "time": ts, "status": "ok" if i % 10 else "failed", "duration_ms": 100})
    open(f"{sys.argv[1]}/{rid}.jsonl", "w").write("\n".join(json.dumps(r) for r in recs) + "\n")
PY
XDG_STATE_HOME=$state hyperfine -N --runs 5 --warmup 1 \
	"$hoctl history --limit 0" "$hoctl history --limit 20" "$hoctl history --failed --kind replicate --limit 20"
