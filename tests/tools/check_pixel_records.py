#!/usr/bin/env python3
"""Image records through `kiln predict --input` and a `kiln build` artifact's predictor, side
by side (docs/deploy.md): fashion_mlp reads Fashion-MNIST from IDX files, but records that
reach a service are CSV rows with columns pixels_0 ... pixels_783, or JSON lines with
{"pixels": [...]}. Both readers must take both forms, predict the same images (within 1e-5,
same class) and skip the same records for the same reasons: a pixel missing, null, not a
number or beyond a float's range, an array one short, a label that is not a class. The records' predictions must also
match those of the same images read from the IDX file.

Then training from images in CSV files: fashion_mlp with both features blocks read from
gzipped CSVs (pixels_0 ... pixels_783 and the class) must train exactly as from IDX files of
the same images (the same metrics, epoch by epoch, and the same predictions), and its
artifact must read the CSV as kiln predict does.

    check_pixel_records.py KILN_BINARY SOURCE_DIR
"""
import gzip
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile

from checks import check, quick_artifact, run, summary

IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"  # fashion_mlp.kiln's training source
LABELS = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
TEST_LABELS = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"
COUNT = 24


def read_idx(images_path, labels_path, count):
    with gzip.open(images_path, "rb") as f:
        data = f.read(16 + count * 784)
    with gzip.open(labels_path, "rb") as f:
        labels = f.read(8 + count)[8:]
    return [list(data[16 + i * 784:16 + (i + 1) * 784]) for i in range(count)], list(labels)


def write_idx(images, labels, images_path, labels_path):
    """An IDX pair (gzip) of 28x28 images and their labels."""
    n = len(images)
    with gzip.open(images_path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + n.to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big"))
        f.write(bytes(p for img in images for p in img))
    with gzip.open(labels_path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + n.to_bytes(4, "big") + bytes(labels))


def write_csv(images, labels, path):
    """The same images as a gzipped CSV: the class first, then pixels_0 ... pixels_783."""
    header = "class," + ",".join(f"pixels_{i}" for i in range(784))
    with gzip.open(path, "wt") as f:
        f.write(header + "\n" + "".join(f"{lab}," + ",".join(map(str, img)) + "\n" for img, lab in zip(images, labels)))


def epochs(run_dir):
    """metrics.jsonl without its timings."""
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        out.append({k: v for k, v in m.items() if k not in ("seconds", "samples_per_second")})
    return out


def predictions(out):
    """line -> (logits, class) from CSV output."""
    lines = out.strip().splitlines()
    rows = {}
    for line in lines[1:]:
        cells = line.split(",")
        rows[int(cells[0])] = ([float(c) for c in cells[1:-1]], cells[-1])
    return rows


def skips(err):
    return sorted(re.findall(r":(\d+): skipped: (.*)", err))


def agree(a, b):
    if set(a) != set(b):
        return f"records predicted: {sorted(a)} against {sorted(b)}"
    for line in a:
        if a[line][1] != b[line][1] or any(abs(x - y) > 1e-5 * max(1.0, abs(x)) for x, y in zip(a[line][0], b[line][0])):
            return f"line {line}: {a[line]} against {b[line]}"
    return ""


def main() -> int:
    kiln = str(pathlib.Path(sys.argv[1]).resolve())
    src = pathlib.Path(sys.argv[2]).resolve()
    model = str(src / "models" / "fashion_mlp.kiln")
    if not pathlib.Path(IMAGES).exists():
        print(f"SKIP: {IMAGES} is missing (Debian package dataset-fashion-mnist; tools/setup/setup.sh installs it)")
        return 77  # ctest: skipped
    env = dict(os.environ, KILN_STDLIB=str(src / "stdlib"), NO_COLOR="1")
    images, labels = read_idx(IMAGES, LABELS, COUNT)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        predictor = str(quick_artifact(kiln, model, tmp, env, steps=3) / "fashion_mlp")

        # The first COUNT training images as CSV (with their label) and as JSON lines (without).
        header = ",".join(f"pixels_{i}" for i in range(784)) + ",class"
        rows = [",".join(map(str, img)) + f",{lab}" for img, lab in zip(images, labels)]
        (tmp / "images.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
        (tmp / "images.jsonl").write_text("".join(json.dumps({"pixels": img}) + "\n" for img in images))

        # What the same images give read from the IDX file: kiln predict without --input reads
        # the block's own source (item i is line i; a CSV's record i is line i + 1).
        idx = predictions(run([kiln, "predict", model, "--run", str(tmp / "run")], env).stdout)
        for form in ("images.csv", "images.jsonl"):
            a = run([kiln, "predict", model, "--run", str(tmp / "run"), "--input", str(tmp / form)], env, expect=None)
            b = subprocess.run([predictor, str(tmp / form)], env=env, capture_output=True, text=True)
            pa, pb = predictions(a.stdout), predictions(b.stdout)
            check(a.returncode == 0 and b.returncode == 0 and len(pa) == COUNT and not agree(pa, pb),
                  f"{form}: kiln predict and the artifact predict all {COUNT} images alike "
                  f"({a.stderr.strip()[-200:] if a.returncode else agree(pa, pb)})")
            if form == "images.csv":
                csv_rows = pa
        jsonl_rows = pa
        check(not agree({k: v for k, v in csv_rows.items()}, {k + 1: v for k, v in jsonl_rows.items()}),
              "the CSV rows and the JSON lines of the same images predict alike")
        check(len(idx) == 60000 and not agree({k - 1: v for k, v in csv_rows.items()},
                                              {k: v for k, v in idx.items() if k <= COUNT}),
              "the same images read from the IDX file predict alike")

        # Records that a feed gets wrong: each must be skipped by both, for the same reason.
        bad = [
            dict(enumerate(images[0])) | {5: ""},  # a pixel missing
            dict(enumerate(images[1])) | {9: "x"},  # not a number
            dict(enumerate(images[2])) | {0: "1e400"},  # not finite
            dict(enumerate(images[3])) | {1: "1e300"},  # finite, but not as a float
            dict(enumerate(images[4])) | {2: "3.5e38"},  # the same, by a little
        ]
        lines = [header]
        for cells in bad:
            lines.append(",".join(str(cells[i]) for i in range(784)) + ",3")
        lines.append(",".join(map(str, images[5])) + ",11")  # a label that is not a class
        lines.append(",".join(map(str, images[6])) + ",7")  # fine
        (tmp / "bad.csv").write_text("\n".join(lines) + "\n")
        json_bad = [
            {"pixels": images[0][:783]},  # one short
            {"pixels": images[1][:9] + [None] + images[1][10:]},  # a null
            {"pixels": images[2][:9] + ["abc"] + images[2][10:]},  # text
            {"pixels": images[3], "class": 10},  # not a class of category[10]
            {"pixels": images[4], "class": None},  # a label there but missing
            {"pixels": images[5] + [1, 2]},  # two more than the model reads: fine
            {"pixels": images[6], "class": 6},  # fine
        ]
        (tmp / "bad.jsonl").write_text("".join(json.dumps(r) + "\n" for r in json_bad))
        for form, want_predicted, want_skipped in (("bad.csv", {8}, 6), ("bad.jsonl", {6, 7}, 5)):
            a = run([kiln, "predict", model, "--run", str(tmp / "run"), "--input", str(tmp / form)], env, expect=None)
            b = subprocess.run([predictor, str(tmp / form)], env=env, capture_output=True, text=True)
            pa, pb = predictions(a.stdout), predictions(b.stdout)
            sa, sb = [s[0] for s in skips(a.stderr)], [s[0] for s in skips(b.stderr)]
            check(a.returncode == 0 and b.returncode == 0 and set(pa) == want_predicted and not agree(pa, pb) and
                  sa == sb and len(sa) == want_skipped,
                  f"{form}: both predict lines {sorted(want_predicted)} alike and skip the same records "
                  f"(kiln predict {skips(a.stderr)}; the artifact {skips(b.stderr)})")
            # Where the readers share their wording (a pixel cell), the same reason.
            ra = {s for s in skips(a.stderr) if "column 'pixels'" in s[1]}
            rb = {s for s in skips(b.stderr) if "column 'pixels'" in s[1]}
            check(ra == rb and len(ra) >= 2, f"{form}: the same reasons for the pixel cells ({ra} / {rb})")
            # Each names the pixel: its index, which is the CSV column pixels_i or the array's element i.
            want = ({"missing value in pixel 5 of pixels column 'pixels'",
                     "'x' in pixel 9 of pixels column 'pixels' is not a number"} if form == "bad.csv" else
                    {"missing value in pixel 9 of pixels column 'pixels'",
                     "'abc' in pixel 9 of pixels column 'pixels' is not a number"})
            check(want <= {s[1] for s in ra}, f"{form}: the reasons name the pixel ({sorted(s[1] for s in ra)})")
        # A CSV without one of the pixel columns is refused as a whole, naming it.
        (tmp / "short.csv").write_text(",".join(f"pixels_{i}" for i in range(783)) + "\n" +
                                       ",".join(map(str, images[0][:783])) + "\n")
        a = run([kiln, "predict", model, "--run", str(tmp / "run"), "--input", str(tmp / "short.csv")], env, expect=None)
        check(a.returncode == 1 and "pixels_783" in a.stderr and "pixels_0 ... pixels_783" in a.stderr,
              f"a CSV without pixels_783: refused, naming the column ({a.stderr.strip()[-200:]})")

        # Training from images in CSV files against training from IDX files of the same images.
        source = pathlib.Path(model).read_text()
        blocks = re.findall(r"idx\(\s*images: \"[^\"]*\",\s*labels: \"[^\"]*\"\s*\)", source)
        check(len(blocks) == 2, "fashion_mlp.kiln reads its two features blocks from idx(...) sources")
        tr_images, tr_labels = read_idx(IMAGES, LABELS, 512)
        te_images, te_labels = read_idx(TEST_IMAGES, TEST_LABELS, 128)
        write_idx(tr_images, tr_labels, tmp / "tr-images.gz", tmp / "tr-labels.gz")
        write_idx(te_images, te_labels, tmp / "te-images.gz", tmp / "te-labels.gz")
        write_csv(tr_images, tr_labels, tmp / "train.csv.gz")
        write_csv(te_images, te_labels, tmp / "test.csv.gz")
        (tmp / "from_idx.kiln").write_text(
            source.replace(blocks[0], 'idx(images: "tr-images.gz", labels: "tr-labels.gz")', 1)
                  .replace(blocks[1], 'idx(images: "te-images.gz", labels: "te-labels.gz")', 1))
        (tmp / "from_csv.kiln").write_text(
            source.replace(blocks[0], 'csv("train.csv.gz")', 1).replace(blocks[1], 'csv("test.csv.gz")', 1))
        runs = {}
        for name in ("from_idx", "from_csv"):
            r = run([kiln, "train", str(tmp / f"{name}.kiln"), "--epochs", "2", "--out", str(tmp / f"run_{name}"),
                     "--no-checkpoints"], env, expect=None)
            check(r.returncode == 0, f"kiln train {name}.kiln" + (f" ({r.stderr.strip()[-300:]})" if r.returncode else ""))
            runs[name] = r
        m_idx, m_csv = epochs(tmp / "run_from_idx"), epochs(tmp / "run_from_csv")
        check(len(m_csv) == 2 and m_csv == m_idx,
              "trained from CSV images: the metrics of training from IDX files, epoch by epoch" +
              ("" if m_csv == m_idx else f" ({m_csv} / {m_idx})"))
        # eval: the holdout and the test block (test.csv.gz against the test IDX pair).
        evals = []
        for name in ("from_idx", "from_csv"):
            out = run([kiln, "eval", str(tmp / f"{name}.kiln"), "--run", str(tmp / f"run_{name}")], env).stdout
            evals.append([line for line in out.splitlines() if "compiled" not in line])
        check(evals[0] == evals[1] and any("test_accuracy" in line for line in evals[1]),
              "kiln eval of the two runs: the same holdout and test metrics" +
              ("" if evals[0] == evals[1] else f" ({evals[1]} / {evals[0]})"))
        p_idx = predictions(run([kiln, "predict", str(tmp / "from_idx.kiln"), "--run", str(tmp / "run_from_idx")],
                                env).stdout)
        p_csv = predictions(run([kiln, "predict", str(tmp / "from_csv.kiln"), "--run", str(tmp / "run_from_csv")],
                                env).stdout)
        # IDX item i is line i; the CSV's record i is line i + 1.
        check(len(p_csv) == 512 and not agree({k - 1: v for k, v in p_csv.items()}, p_idx),
              "kiln predict of the two runs on their own sources: the same predictions")
        run([kiln, "build", str(tmp / "from_csv.kiln"), "--run", str(tmp / "run_from_csv"), "-o", str(tmp / "art_csv")],
            env)
        b = subprocess.run(["sh", "-c", 'gzip -dc "$0" | "$1" -', tmp / "train.csv.gz", tmp / "art_csv" / "fashion_mlp"],
                           env=env, capture_output=True, text=True)
        problem = b.stderr.strip()[-200:] if b.returncode else agree(p_csv, predictions(b.stdout))
        check(not problem, "the CSV-trained model's artifact, reading the CSV from a pipe, predicts as kiln predict does" +
              (f" ({problem})" if problem else ""))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
