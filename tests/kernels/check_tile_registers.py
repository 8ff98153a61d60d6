#!/usr/bin/env python3
"""The AVX-512 GEMM keeps its micro-tile in registers under every AVX-512 tuning clang-16
knows, not only the flags the build uses, and the in-place-A tile (offset_tile) is inlined
into the blocked product under every tuning, AVX2 included.

Compiles kernels/cpu/gemm.cpp to assembly with clang-16 -O2 for each CPU below (and for
the plain -mavx512f ... flags of the bitcode and the native library, and the AVX2 ones) and
fails if any zmm register is stored to or loaded from the stack, or if offset_tile is left
a function of its own. A tile in memory costs a store and a load per accumulator and step:
with -march=znver4, a loop that ended in a `break` was not unrolled and the tile went to the
stack (36 such moves; docs/performance.md, session 9). A call per 6x16 tile costs about a
sixth of a product whose k is short: the fix for those stack moves (26f373d) made offset_tile
too big for the inliner, and 50176x25x32 fell from 1.01 to 0.85 of oneDNN (session 12).

    check_tile_registers.py CLANGXX SOURCE_DIR
"""
import pathlib
import re
import subprocess
import sys
import tempfile

CPUS = ["znver4", "skylake-avx512", "cascadelake", "icelake-server", "sapphirerapids", "x86-64-v4"]
PLAIN = ["-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq"]
AVX2 = ["-mavx2", "-mfma"]
OUT_OF_LINE = re.compile(r"^\S*11offset_tile\S*:", re.M)  # the internal function's own label
STACK_MOVE = re.compile(r"vmov\w+\s+(%zmm\d+,\s*-?\w*\(%rsp\)|-?\w*\(%rsp\),\s*%zmm\d+)")


def main() -> int:
    clang, src = sys.argv[1], pathlib.Path(sys.argv[2]).resolve()
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in [("plain", PLAIN), ("avx2", AVX2)] + [(cpu, [f"-march={cpu}"]) for cpu in CPUS]:
            out = pathlib.Path(tmp) / f"gemm_{name}.s"
            p = subprocess.run([clang, "-std=c++20", "-O2", "-DNDEBUG", *flags, f"-I{src}", "-S", "-o", str(out),
                                str(src / "kernels" / "cpu" / "gemm.cpp")], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL {name}: clang failed\n{p.stderr[-2000:]}")
                failed.append(name)
                continue
            asm = out.read_text()
            if OUT_OF_LINE.search(asm):
                print(f"FAIL {name}: offset_tile is a function of its own (a call per micro-tile)")
                failed.append(name)
                continue
            if name == "avx2":
                print(f"ok   {name}: offset_tile inlined")
                continue
            if "zmm" not in asm:
                print(f"FAIL {name}: no AVX-512 code at all (the AVX-512 kernel was not compiled)")
                failed.append(name)
                continue
            moves = STACK_MOVE.findall(asm)
            print(("ok   " if not moves else "FAIL ") + f"{name}: {len(moves)} zmm moves to or from the stack")
            if moves:
                failed.append(name)
    if failed:
        print(f"the GEMM's tiles leave their registers or their caller under: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
