#!/usr/bin/env python3
"""Time onnxruntime on a model, as `med8k eval detect` times tract.

    python3 models/ort_bench.py --model M.onnx --shape 1,3,144,256 --threads 1 --iters 50

Feeds the same deterministic input every run (uniform noise from a fixed
seed, in [0, 1)), after `--warmup` untimed runs, on the CPU execution
provider with `--threads` intra-op threads and one inter-op thread, and
prints one JSON object on stdout:

    {"runtime": "onnxruntime", "version": "...", "threads": 1, "iterations": 50,
     "frames_per_s": ..., "latency_ms_p50": ..., "latency_ms_p99": ..., "input": "input",
     "shape": [1, 3, 144, 256]}

Exit status 2 on bad arguments, 1 when onnxruntime cannot load or run the model.
"""
import argparse
import json
import sys
import time


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--shape", required=True, help="comma-separated, e.g. 1,3,144,256")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args()
    try:
        shape = [int(v) for v in a.shape.split(",")]
    except ValueError:
        p.error(f"bad --shape {a.shape!r}")
    if a.iters < 1 or a.threads < 1 or any(v < 1 for v in shape):
        p.error("--iters, --threads and every dimension must be at least 1")
    try:
        import numpy as np
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = a.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(a.model, sess_options=opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        for _ in range(a.warmup):
            sess.run(None, {name: x})
        times = []
        began = time.perf_counter()
        for _ in range(a.iters):
            t0 = time.perf_counter()
            sess.run(None, {name: x})
            times.append((time.perf_counter() - t0) * 1000.0)
        total = time.perf_counter() - began
    except Exception as e:  # one line for the caller's error message
        print(f"ort_bench: {type(e).__name__}: {e}".replace("\n", " "), file=sys.stderr)
        return 1
    times.sort()
    print(json.dumps({
        "runtime": "onnxruntime",
        "version": ort.__version__,
        "threads": a.threads,
        "iterations": a.iters,
        "frames_per_s": a.iters / total if total > 0 else 0.0,
        "latency_ms_p50": percentile(times, 0.5),
        "latency_ms_p99": percentile(times, 0.99),
        "input": name,
        "shape": shape,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
