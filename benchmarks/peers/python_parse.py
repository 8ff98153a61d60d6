#!/usr/bin/env python3
"""Peer for the front-end benchmark: CPython's own parser (ast.parse) on a Python file of
the same shape and size as bench_front_end's generated 10,000-line model. Prints the median
of REPEATS runs in milliseconds."""
import ast
import statistics
import sys
import time

lines = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 9
text = "import nn\n\ndef generated(x):\n    h0 = x\n"
i = 1
while i < lines - 6:
    text += f"    h{i} = relu(nn.dense(h{i - 1}, 32)) * 0.5 + h{i - 1}  # layer {i}\n"
    i += 1
text += f"    y = nn.dense(h{i - 1}, 10)\n    return y\n"
times = []
for _ in range(repeats):
    start = time.perf_counter()
    ast.parse(text)
    times.append((time.perf_counter() - start) * 1000)
print(f"{statistics.median(times):.3f}")
