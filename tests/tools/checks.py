"""What the Python end-to-end tests in tests/tools share: named checks that are all run and
counted (a failure does not stop the script), and commands that must succeed."""
import subprocess
import sys

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(cmd, env, cwd=None, expect=0):
    """Runs cmd; unless expect is None, an exit status other than expect ends the script."""
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        print(f"command {cmd} exited {p.returncode}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}")
        sys.exit(1)
    return p


def summary() -> int:
    """The closing line of a test script, and its exit status: 1 if any check failed."""
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0
