#!/usr/bin/env python3
"""Golden diagnostics: every tests/errors/*.kiln must make `kiln check` exit 1 and print
exactly the diagnostics in the .expected file beside it.

    run_golden.py KILN ERRORS_DIR            check all
    run_golden.py KILN ERRORS_DIR --update   rewrite the .expected files (review the diff!)

kiln runs from the repository root, so paths in messages read tests/errors/x.kiln and
stdlib/nn.kiln on every checkout. Files under lib/ are imported by the cases, not cases.
Prints one line per case and the closing line 'N passed, N failed'.
"""
import os
import pathlib
import subprocess
import sys


def main() -> int:
    kiln, errors_dir = pathlib.Path(sys.argv[1]).resolve(), pathlib.Path(sys.argv[2]).resolve()
    update = "--update" in sys.argv[3:]
    root = errors_dir.parent.parent
    env = dict(os.environ, KILN_STDLIB=str(root / "stdlib"), NO_COLOR="1")
    cases = sorted(errors_dir.glob("*.kiln"))
    passed = failed = 0
    for case in cases:
        rel = case.relative_to(root)
        expected_file = case.with_suffix(".expected")
        try:
            run = subprocess.run([str(kiln), "check", str(rel)], cwd=root, env=env,
                                 capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            print(f"FAIL {rel}: kiln check hung (over 30 s)")
            failed += 1
            continue
        problems = []
        if run.returncode != 1:
            problems.append(f"exit code {run.returncode}, expected 1 (a user error)")
        if update:
            expected_file.write_text(run.stderr)
        elif not expected_file.exists():
            problems.append(f"no {expected_file.name}; create it with --update and review it")
        elif run.stderr != expected_file.read_text():
            problems.append("diagnostics differ:\n--- expected\n" + expected_file.read_text() +
                            "--- actual\n" + run.stderr)
        if problems:
            failed += 1
            print(f"FAIL {rel}: " + "; ".join(problems))
        else:
            passed += 1
            print(f"ok   {rel}")
    if len(cases) < 40:
        print(f"FAIL: only {len(cases)} cases; the suite needs at least 40")
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
