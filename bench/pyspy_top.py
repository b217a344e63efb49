"""Top functions of a `py-spy record --format raw` profile (collapsed stacks).

    .venv/bin/python bench/pyspy_top.py /tmp/pyspy/throughput-push-sse-1234.txt [N]

Prints the N (default 25) functions with the most samples on top of the stack (self)
and the most samples anywhere in the stack (inclusive), as % of all samples. Line
numbers are dropped so a function's lines add up.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def short(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match.group('name')} ({path})"


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [short(f) for f in stack.split(";") if f]
            if not frames:
                continue
            own[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
    print(f"{path}: {total} samples")
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\n-- top {top} by {title} time")
        for name, n in counter.most_common(top):
            print(f"{100 * n / max(1, total):5.1f}%  {name}")


if __name__ == "__main__":
    main()
