#!/usr/bin/env python3
"""PyTorch peer for Kiln's training throughput (issue 5): the models of
models/fashion_mlp.kiln and models/fashion_cnn.kiln trained on Fashion-MNIST with the same
math, timed as steady-state samples/s (forward + backward + Adam step, after a warm-up; the
median of several timed windows).

  fashion_mlp: dense 784->256 relu, dense 256->128 relu, dense 128->10.
  fashion_cnn: conv 5x5x32 ("same" padding, i.e. 2) relu, max-pool 2, conv 5x5x64 ("same")
               relu, max-pool 2, flatten (3136), dense 1024 relu, dense 10. Kiln runs it NHWC;
               PyTorch runs its natural NCHW: the same arithmetic.
  Both: softmax cross-entropy on the logits, Adam(lr 1e-3), inputs scaled by 1/255.

Data: the IDX files of Debian's dataset-fashion-mnist, read with gzip + numpy. The training
set is shuffled once and batches are contiguous slices of it (one epoch is 60000 // batch
steps). Initialisation is PyTorch's default (Kiln uses He-uniform); speed does not depend on it.

Every (model, batch, threads) config runs in its own subprocess with OMP_WAIT_POLICY set
before torch is imported: Debian's torch is an OpenMP (libgomp) build whose spinning workers
make it 3-4x slower with 2 threads on a small machine, and 20x slower when other work
shares the cores (measured on a loaded 2-core box), unless OMP_WAIT_POLICY=PASSIVE.
The subprocess calls torch.set_num_threads(threads).

Output: one JSON line per config ("kind": "config"), then one per (model, batch) naming the
fastest thread count ("kind": "best").

  torch_train.py --model mlp,cnn --batch 64,256 --threads 1,2 --seconds 10
"""
import argparse
import gzip
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MODEL_NAMES = {"mlp": "fashion_mlp", "cnn": "fashion_cnn"}


def read_idx(path):
    import numpy as np

    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def build_model(torch, model):
    nn = torch.nn
    if model == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(7 * 7 * 64, 1024),
        nn.ReLU(),
        nn.Linear(1024, 10),
    )


def worker(args):
    """One config, in this process (OMP_WAIT_POLICY already in the environment)."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images = read_idx(f"{DATA_DIR}/train-images-idx3-ubyte.gz")
    labels = read_idx(f"{DATA_DIR}/train-labels-idx1-ubyte.gz")
    order = np.random.default_rng(1).permutation(len(images))
    x = torch.from_numpy(images[order].astype(np.float32) * np.float32(1.0 / 255.0))
    x = x.reshape(-1, 1, 28, 28) if args.model == "cnn" else x.reshape(-1, 784)
    y = torch.from_numpy(labels[order].astype(np.int64))
    model = build_model(torch, args.model)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    steps_per_epoch = len(x) // args.batch
    state = {"step": 0}

    def step():
        offset = (state["step"] % steps_per_epoch) * args.batch
        state["step"] += 1
        xb, yb = x[offset : offset + args.batch], y[offset : offset + args.batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    warm_start = time.perf_counter()
    warm_steps = 0
    while warm_steps < 5 or time.perf_counter() - warm_start < 0.2 * args.seconds:
        step()
        warm_steps += 1
    rates = []
    losses = []
    window = args.seconds / args.windows
    for _ in range(args.windows):
        start = time.perf_counter()
        steps = 0
        while True:
            loss = step()
            steps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= window:
                break
        rates.append(steps * args.batch / elapsed)
        losses.append(float(loss.item()))
    print(
        json.dumps(
            {
                "kind": "config",
                "peer": "pytorch",
                "model": MODEL_NAMES[args.model],
                "batch": args.batch,
                "threads": args.threads,
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
                "samples_per_s": round(statistics.median(rates), 1),
                "windows": [round(r, 1) for r in rates],
                "steps": state["step"],
                "loss": round(losses[-1], 4),
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


def python_with_torch():
    """This interpreter if it can import torch, else Debian's /usr/bin/python3 (python3-torch
    installs there, and a pyenv or venv python3 earlier on PATH may not see it)."""
    if importlib.util.find_spec("torch") is not None:
        return sys.executable
    for candidate in ("/usr/bin/python3", "/bin/python3"):
        if os.path.exists(candidate) and candidate != sys.executable:
            probe = subprocess.run([candidate, "-c", "import torch"], capture_output=True)
            if probe.returncode == 0:
                return candidate
    sys.exit("torch_train.py: no python3 with torch; install python3-torch (benchmarks/setup_peers.sh)")


def int_list(text):
    return [int(v) for v in text.split(",") if v]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mlp", help="mlp, cnn or a comma list (default mlp)")
    parser.add_argument("--batch", default="64", help="batch size or a comma list (default 64)")
    parser.add_argument("--threads", default="1,2", help="torch.set_num_threads values (default 1,2)")
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per config (default 10)")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per config (default 5)")
    parser.add_argument(
        "--wait-policy",
        default="PASSIVE",
        help="OMP_WAIT_POLICY for the subprocesses (default PASSIVE; 'inherit' keeps the caller's)",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        args.threads = int(args.threads)
        args.batch = int(args.batch)
        worker(args)
        return

    python = python_with_torch()
    env = dict(os.environ)
    if args.wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.wait_policy
    for model in args.model.split(","):
        if model not in MODEL_NAMES:
            parser.error(f"unknown model {model!r} (mlp or cnn)")
        for batch in int_list(args.batch):
            results = []
            for threads in int_list(args.threads):
                cmd = [python, os.path.abspath(__file__), "--worker", "--model", model, "--batch", str(batch)]
                cmd += ["--threads", str(threads), "--seconds", str(args.seconds), "--windows", str(args.windows)]
                run = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
                if run.returncode != 0:
                    sys.exit(f"torch_train.py: config {model} batch {batch} threads {threads} failed")
                line = run.stdout.strip().splitlines()[-1]
                print(line, flush=True)
                results.append(json.loads(line))
            best = max(results, key=lambda r: r["samples_per_s"])
            print(
                json.dumps(
                    {
                        "kind": "best",
                        "peer": "pytorch",
                        "model": MODEL_NAMES[model],
                        "batch": batch,
                        "threads": best["threads"],
                        "samples_per_s": best["samples_per_s"],
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
