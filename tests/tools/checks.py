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


def quick_artifact(kiln, model, tmp, env, steps):
    """Trains `model` for a few steps into TMP/run (a reader's test does not depend on the
    weights) and builds it with a maximum batch of 4, so that batches are flushed often;
    the artifact's folder, TMP/art."""
    run([kiln, "train", model, "--epochs", "1", "--max-steps", str(steps), "--out", str(tmp / "run"),
         "--no-checkpoints"], env)
    run([kiln, "build", model, "--run", str(tmp / "run"), "-o", str(tmp / "art"), "--max-batch", "4"], env)
    return tmp / "art"


def summary() -> int:
    """The closing line of a test script, and its exit status: 1 if any check failed."""
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0
