"""Fit the RX (Reed-Xiaoli) spectral anomaly detector for med8k's 7-band cubes
and write it as ONNX, with its sidecar, built directly with the onnx helper API.

RX: map(p) = (x_p - mu)^T Sigma^-1 (x_p - mu), the squared Mahalanobis distance
of each pixel's spectrum from the mean and covariance of NORMAL pixels (mask
excluded) of the sample cubes of the training seeds. Sigma^-1 = W^T W with
W = L^-1 (Sigma = L L^T), so the graph is Sub -> MatMul(W) -> Mul -> ReduceSum.

score = max over the tile of the 15x15 box mean of the map (AveragePool, then
ReduceMax): a few noisy pixels do not make a tile anomalous, a patch does.

Usage (from the repository root):
  med8k samples dataset --out /tmp/rx-train --seeds 100..104 --size 1024x576 --cubes --no-frames
  med8k samples dataset --out /tmp/rx-eval  --seeds 200..204 --size 1024x576 --cubes --no-frames
  python models/rx/fit_rx.py --train /tmp/rx-train --eval /tmp/rx-eval
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import auroc, load_dataset, write_sidecar  # noqa: E402

NAME = "med8k-rx-7band"
VERSION = "1.0.0"
TILE = 256
POOL = 15
OPSET = 13


def fit(tiles, masks):
    """Mean and covariance of the normal pixels, accumulated tile by tile (float64)."""
    b = tiles.shape[1]
    n = 0
    s = np.zeros(b)
    ss = np.zeros((b, b))
    for t, m in zip(tiles, masks):
        x = np.asarray(t, dtype=np.float64).reshape(b, -1)
        keep = np.asarray(m).reshape(-1) < 0.5
        x = x[:, keep]
        n += x.shape[1]
        s += x.sum(1)
        ss += x @ x.T
    mu = s / n
    cov = ss / n - np.outer(mu, mu)
    # A small ridge keeps the inverse stable (sensor noise floor ~ (24/65535)^2).
    cov += np.eye(b) * 1e-9
    return mu, cov, n


def build(mu, w, bands):
    """The RX graph: input [1,B,T,T] -> map [1,1,T,T], score [1]."""
    hw = TILE * TILE
    inits = [
        numpy_helper.from_array(mu.reshape(1, bands, 1).astype(np.float32), "mu"),
        numpy_helper.from_array(w.astype(np.float32), "whiten"),
        numpy_helper.from_array(np.array([1, bands, hw], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([1, 1, TILE, TILE], dtype=np.int64), "map_shape"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "score_shape"),
    ]
    nodes = [
        helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
        helper.make_node("Sub", ["flat", "mu"], ["centred"]),
        # [B,B] x [1,B,HW] -> [1,B,HW]: whitened spectra.
        helper.make_node("MatMul", ["whiten", "centred"], ["white"]),
        helper.make_node("Mul", ["white", "white"], ["sq"]),
        helper.make_node("ReduceSum", ["sq", "axis1"], ["d2"], keepdims=1),
        helper.make_node("Reshape", ["d2", "map_shape"], ["map"]),
        # Separable box mean (exact with padding excluded): POOL ops a pixel, not POOL^2.
        helper.make_node(
            "AveragePool",
            ["map"],
            ["smooth_x"],
            kernel_shape=[1, POOL],
            strides=[1, 1],
            pads=[0, POOL // 2, 0, POOL // 2],
            count_include_pad=0,
        ),
        helper.make_node(
            "AveragePool",
            ["smooth_x"],
            ["smooth"],
            kernel_shape=[POOL, 1],
            strides=[1, 1],
            pads=[POOL // 2, 0, POOL // 2, 0],
            count_include_pad=0,
        ),
        helper.make_node("ReduceMax", ["smooth"], ["peak"], keepdims=0),
        helper.make_node("Reshape", ["peak", "score_shape"], ["score"]),
    ]
    graph = helper.make_graph(
        nodes,
        "rx",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, bands, TILE, TILE])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("map", TensorProto.FLOAT, [1, 1, TILE, TILE]),
        ],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="med8k models/rx/fit_rx.py",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def rx_numpy(tiles, mu, w):
    """Reference RX in numpy: maps [T,1,S,S] and scores [T] like the graph."""
    b = tiles.shape[1]
    maps = []
    scores = []
    for t in tiles:
        x = np.asarray(t, dtype=np.float64).reshape(b, -1) - mu[:, None]
        d2 = ((w @ x) ** 2).sum(0).reshape(TILE, TILE)
        maps.append(d2)
        scores.append(box_max(d2))
    return np.stack(maps)[:, None], np.array(scores)


def box_max(m):
    """Max of the POOLxPOOL box mean with excluded padding (AveragePool count_include_pad=0)."""
    r = POOL // 2
    p = np.pad(m, r)
    ones = np.pad(np.ones_like(m), r)
    c = np.cumsum(np.cumsum(p, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)))
    co = np.pad(np.cumsum(np.cumsum(ones, 0), 1), ((1, 0), (1, 0)))
    h, w = m.shape
    s = c[POOL:POOL + h, POOL:POOL + w] - c[:h, POOL:POOL + w] - c[POOL:POOL + h, :w] + c[:h, :w]
    n = co[POOL:POOL + h, POOL:POOL + w] - co[:h, POOL:POOL + w] - co[POOL:POOL + h, :w] + co[:h, :w]
    return float((s / n).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="dataset dir of the training seeds")
    ap.add_argument("--eval", required=True, help="dataset dir of held-out seeds")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    t0 = time.time()

    tiles, masks, items, bands_nm = load_dataset(args.train, "cubes")
    bands = tiles.shape[1]
    mu, cov, n = fit(tiles, masks)
    w = np.linalg.inv(np.linalg.cholesky(cov))
    print(f"fitted on {n} normal pixels of {len(items)} tiles ({time.time() - t0:.1f} s)")

    etiles, emasks, eitems, ebands = load_dataset(args.eval, "cubes")
    assert ebands == bands_nm, "band sets differ"
    maps, scores = rx_numpy(etiles, mu, w)
    truth = np.asarray(emasks) >= 0.5
    tile_anom = truth.reshape(len(eitems), -1).any(1)
    pix = auroc(maps, truth)
    til = auroc(scores, tile_anom)
    normal_pixels = maps[~truth]
    # Thresholds from the held-out NORMAL data: 99th percentile of the scores of
    # tiles without anomalous pixels; 99.9th percentile of normal pixels' map.
    thr_score = float(np.percentile(scores[~tile_anom], 99))
    thr_map = float(np.percentile(normal_pixels, 99.9))
    print(f"eval: {len(eitems)} tiles ({int(tile_anom.sum())} anomalous), "
          f"pixel AUROC {pix:.4f}, tile AUROC {til:.4f}, "
          f"thresholds score {thr_score:.2f} map {thr_map:.2f}")

    model = build(mu, w, bands)
    path = os.path.join(args.out, NAME + ".onnx")
    onnx.save(model, path)
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        s, m = sess.run(["score", "map"], {"input": np.ascontiguousarray(etiles[:1], dtype=np.float32)})
        err = float(np.abs(m - maps[:1]).max() / max(1.0, maps[:1].max()))
        print(f"onnxruntime vs numpy: map rel err {err:.2e}, score {s[0]:.3f} vs {scores[0]:.3f}")
    except ImportError:
        print("onnxruntime not installed; skipped the check")

    train_seeds = sorted({it["seed"] for it in items})
    eval_seeds = sorted({it["seed"] for it in eitems})
    sidecar = {
        "contract": 1,
        "name": NAME,
        "version": VERSION,
        "sha256": "",
        "input": {
            "name": "input",
            "shape": [1, bands, TILE, TILE],
            "layout": "NCHW",
            "source": "cube-bands",
            "mean": [0.0] * bands,
            "std": [1.0] * bands,
        },
        "outputs": {
            "score": {"name": "score", "shape": [1]},
            "map": {"name": "map", "shape": [1, 1, TILE, TILE]},
        },
        "threshold": {"score": round(thr_score, 4), "map": round(thr_map, 4)},
        "bands_nm": bands_nm,
        "description": (
            "RX spectral anomaly detector: squared Mahalanobis distance of each pixel's "
            f"{bands}-band spectrum (code/65535) from the mean and covariance of normal pixels "
            f"of the med8k sample cubes (seeds {train_seeds[0]}..={train_seeds[-1]}); score = max of "
            f"the {POOL}x{POOL} box mean of the map."
        ),
        "card": "MODEL_CARD.md",
    }
    write_sidecar(path, sidecar)
    metrics = {
        "train_seeds": train_seeds,
        "eval_seeds": eval_seeds,
        "normal_pixels": int(n),
        "eval_tiles": len(eitems),
        "eval_anomalous_tiles": int(tile_anom.sum()),
        "pixel_auroc": round(pix, 4),
        "tile_auroc": round(til, 4),
        "threshold_score": thr_score,
        "threshold_map": thr_map,
        "onnx_bytes": os.path.getsize(path),
    }
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
