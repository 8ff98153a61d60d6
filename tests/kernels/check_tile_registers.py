#!/usr/bin/env python3
"""The AVX-512 GEMM keeps its micro-tile in registers under every AVX-512 tuning clang-16
knows, not only the flags the build uses.

Compiles kernels/cpu/gemm.cpp to assembly with clang-16 -O2 for each CPU below (and for
the plain -mavx512f ... flags of the bitcode and the native library) and fails if any zmm
register is stored to or loaded from the stack. A tile in memory costs a store and a load
per accumulator and step: with -march=znver4, a loop that ended in a `break` was not
unrolled and the tile went to the stack (36 such moves; docs/performance.md, session 9).

    check_tile_registers.py CLANGXX SOURCE_DIR
"""
import pathlib
import re
import subprocess
import sys
import tempfile

CPUS = ["znver4", "skylake-avx512", "cascadelake", "icelake-server", "sapphirerapids", "x86-64-v4"]
PLAIN = ["-mavx2", "-mfma", "-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq"]
STACK_MOVE = re.compile(r"vmov\w+\s+(%zmm\d+,\s*-?\w*\(%rsp\)|-?\w*\(%rsp\),\s*%zmm\d+)")


def main() -> int:
    clang, src = sys.argv[1], pathlib.Path(sys.argv[2]).resolve()
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in [("plain", PLAIN)] + [(cpu, [f"-march={cpu}"]) for cpu in CPUS]:
            out = pathlib.Path(tmp) / f"gemm_{name}.s"
            p = subprocess.run([clang, "-std=c++20", "-O2", "-DNDEBUG", *flags, f"-I{src}", "-S", "-o", str(out),
                                str(src / "kernels" / "cpu" / "gemm.cpp")], capture_output=True, text=True)
            if p.returncode != 0:
                print(f"FAIL {name}: clang failed\n{p.stderr[-2000:]}")
                failed.append(name)
                continue
            asm = out.read_text()
            if "zmm" not in asm:
                print(f"FAIL {name}: no AVX-512 code at all (the AVX-512 kernel was not compiled)")
                failed.append(name)
                continue
            moves = STACK_MOVE.findall(asm)
            print(("ok   " if not moves else "FAIL ") + f"{name}: {len(moves)} zmm moves to or from the stack")
            if moves:
                failed.append(name)
    if failed:
        print(f"the AVX-512 tile leaves its registers under: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
