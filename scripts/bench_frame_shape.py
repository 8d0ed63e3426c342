"""What an alert event's null fields cost a client: bytes on the wire and JSON.parse time in
Node, for the frame as Alertwire sends it and for the same frame with null fields left out.

    python scripts/bench_frame_shape.py [--parses 200000] [--rounds 7]

Prints one JSON line (median of interleaved rounds) and writes bench/results/frame-shape.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.events import alert_event, notification  # noqa: E402
from bench.output import save  # noqa: E402
from bench.publisher import alert_input  # noqa: E402

PARSE_TIMER = """
const { readFileSync } = require('node:fs');
const [full, lean] = [process.argv[2], process.argv[3]].map((p) => readFileSync(p, 'utf8'));
const parses = Number(process.argv[4]), rounds = Number(process.argv[5]);
function time(text) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < parses; i++) JSON.parse(text);
  return Number(process.hrtime.bigint() - start) / parses;
}
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const seen = { full: [], lean: [] };
for (let r = 0; r < rounds; r++) { seen.full.push(time(full)); seen.lean.push(time(lean)); }
console.log(JSON.stringify({ fullNs: median(seen.full), leanNs: median(seen.lean) }));
"""


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parses", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    node = shutil.which("node")
    if node is None:
        print("needs Node.js", file=sys.stderr)
        return 2
    full = notification(alert_event(1, alert_input("h1", 1)))
    lean = orjson.dumps(without_nulls(orjson.loads(full)))
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / "full.json", Path(tmp) / "lean.json", Path(tmp) / "timer.js"]
        for path, data in zip(paths, (full, lean, PARSE_TIMER.encode()), strict=True):
            path.write_bytes(data)
        out = subprocess.run(
            [node, str(paths[2]), str(paths[0]), str(paths[1]), str(args.parses), str(args.rounds)],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    timed = json.loads(out)
    result = {
        "full_bytes": len(full),
        "lean_bytes": len(lean),
        "full_parse_ns": round(timed["fullNs"]),
        "lean_parse_ns": round(timed["leanNs"]),
    }
    print(json.dumps(result))
    save("frame-shape", {"command": " ".join(["python", *sys.argv]), "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
