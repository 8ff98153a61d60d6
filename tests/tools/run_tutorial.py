#!/usr/bin/env python3
"""Runs docs/tutorial.md: writes each ```kiln block that starts with `# file: NAME` into a
scratch folder, runs each ```sh command there with kiln on PATH, and checks that the text
of the ```text block after a command appears in its output. A command marked
`# exits N` must exit N; others must exit 0.

    run_tutorial.py KILN_BINARY TUTORIAL.md
Prints one line per command and the closing line 'N passed, N failed'.
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile


def main() -> int:
    kiln = pathlib.Path(sys.argv[1]).resolve()
    text = pathlib.Path(sys.argv[2]).read_text()
    root = pathlib.Path(sys.argv[2]).resolve().parent.parent
    blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ, PATH=f"{kiln.parent}:{os.environ['PATH']}",
                   KILN_STDLIB=str(root / "stdlib"), KILN_REPO=str(root), NO_COLOR="1")
        for i, (lang, body) in enumerate(blocks):
            if lang == "kiln":
                first = body.splitlines()[0]
                if first.startswith("# file: "):
                    (pathlib.Path(work) / first[len("# file: "):].strip()).write_text(body)
            if lang != "sh":
                continue
            for line in body.strip().splitlines():
                command, _, comment = line.partition("#")
                m = re.search(r"exits (\d+)", comment)
                expected_code = int(m.group(1)) if m else 0
                run = subprocess.run(command, shell=True, cwd=work, env=env, capture_output=True, text=True)
                output = run.stdout + run.stderr
                problems = []
                if run.returncode != expected_code:
                    problems.append(f"exit {run.returncode}, expected {expected_code}")
                if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
                    for want in blocks[i + 1][1].strip().splitlines():
                        if want.strip() and want.strip() not in output:
                            problems.append(f"output lacks: {want.strip()!r}")
                if problems:
                    failed += 1
                    print(f"FAIL {command.strip()}: {'; '.join(problems)}\n{output}")
                else:
                    passed += 1
                    print(f"ok   {command.strip()}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
