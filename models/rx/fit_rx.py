"""Fit the RX (Reed-Xiaoli) spectral anomaly detector for med8k's 7-band cubes
and write it as ONNX, with its sidecar, built directly with the onnx helper API.

Cluster-conditional RX: the NORMAL pixels (masks excluded) of the sample cubes of
the training seeds are split into K spectral classes, and each class k gets its
own mean mu_k and covariance Sigma_k. The map is the squared Mahalanobis distance
of each pixel's spectrum from the nearest class,

  map(p) = min_k (x_p - mu_k)^T Sigma_k^-1 (x_p - mu_k),

so tissue that is normal but spectrally unlike the bulk (the fundus' optic disc,
vessels, pigment) is measured against its own class, not against one Gaussian
for everything. The classes come from k-means (k-means++ seeding, fixed seed) on a
fixed random subsample of the normal pixels, run in the space whitened by the
global covariance so that every spectral direction counts by its spread; each
class's statistics are then accumulated over all normal pixels nearest to its
centre. K = 1 is the textbook global RX.

Graph (all 1x1 convolutions and elementwise ops, which tract runs fast): the
spectra are first whitened by the global normal statistics, z = W0 (x - mu0)
(Conv 7->7 with bias); every class distance is a quadratic in z,
d_k = z^T P_k z + q_k . z + r_k, so one Conv 56->K over the features
[z_i z_j (49 products: Reshape + broadcast Mul), z_i (7)] with bias r_k gives all
K distances at once; Split + Min takes the nearest class.

score = max over the tile of the 15x15 box mean of the map (AveragePool, then
ReduceMax): a few noisy pixels do not make a tile anomalous, a patch does.

Usage (from the repository root):
  med8k samples dataset --out /tmp/rx-train --seeds 100..104 --size 1024x576 --cubes --no-frames
  med8k samples dataset --out /tmp/rx-eval  --seeds 200..204 --size 1024x576 --cubes --no-frames
  python models/rx/fit_rx.py --train /tmp/rx-train --eval /tmp/rx-eval
"""

import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import auroc, load_dataset, write_metrics, write_sidecar  # noqa: E402

NAME = "med8k-rx-7band"
VERSION = "1.1.0"
TILE = 256
POOL = 15
OPSET = 13
K = 16  # spectral classes
SUBSAMPLE = 300_000  # normal pixels k-means runs on
KMEANS_ITERS = 25
SEED = 0  # subsample and k-means++ seeding
RIDGE = 1e-9  # keeps the inverses stable (sensor noise floor ~ (24/65535)^2)


def normal_pixels(tiles, masks):
    """Spectra of the normal pixels of all tiles, [B, N] float32 (tile order)."""
    b = tiles.shape[1]
    out = []
    for t, m in zip(tiles, masks):
        x = np.asarray(t, dtype=np.float32).reshape(b, -1)
        out.append(x[:, np.asarray(m).reshape(-1) < 0.5])
    return np.concatenate(out, 1)


def gaussian(x):
    """Mean and covariance (float64, ridge added) of spectra x [B, N]."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(1)
    cov = np.cov(x, bias=True) + np.eye(x.shape[0]) * RIDGE
    return mu, cov


def whitener(cov):
    """W = L^-1 with cov = L L^T, so (x-mu)^T cov^-1 (x-mu) = |W (x-mu)|^2."""
    return np.linalg.inv(np.linalg.cholesky(cov))


def nearest(z, centres):
    """Index of the nearest centre (columns of centres) for each column of z."""
    d = (centres * centres).sum(0)[None, :] - 2.0 * (z.T @ centres)
    return d.argmin(1)


def kmeans(z, k, iters, rng):
    """Lloyd's k-means with k-means++ seeding on the columns of z [B, N]."""
    n = z.shape[1]
    centres = [z[:, rng.integers(n)]]
    d = ((z - centres[0][:, None]) ** 2).sum(0)
    for _ in range(1, k):
        centres.append(z[:, rng.choice(n, p=d / d.sum())])
        d = np.minimum(d, ((z - centres[-1][:, None]) ** 2).sum(0))
    c = np.stack(centres, 1)
    for _ in range(iters):
        a = nearest(z, c)
        new = np.stack([z[:, a == j].mean(1) if (a == j).any() else c[:, j] for j in range(k)], 1)
        if np.allclose(new, c, rtol=0, atol=1e-9):
            break
        c = new
    return c


def fit(tiles, masks):
    """The K classes' means and covariances, per-class pixel counts, the number of
    normal pixels, and the global mean and whitener (of the subsample) that
    k-means ran in and the graph's first step uses."""
    x = normal_pixels(tiles, masks)
    n = x.shape[1]
    rng = np.random.default_rng(SEED)
    sub = np.sort(rng.choice(n, min(SUBSAMPLE, n), replace=False))
    mu0, cov0 = gaussian(x[:, sub])
    w0 = whitener(cov0)
    centres = kmeans(w0 @ (x[:, sub].astype(np.float64) - mu0[:, None]), K, KMEANS_ITERS, rng)
    # Every normal pixel goes to its nearest centre (in the whitened space); the
    # classes' statistics are accumulated over all of them.
    b = x.shape[0]
    cnt = np.zeros(K)
    s = np.zeros((K, b))
    ss = np.zeros((K, b, b))
    for i in range(0, n, 1 << 20):
        xc = x[:, i:i + (1 << 20)].astype(np.float64)
        a = nearest(w0 @ (xc - mu0[:, None]), centres)
        for j in range(K):
            xj = xc[:, a == j]
            cnt[j] += xj.shape[1]
            s[j] += xj.sum(1)
            ss[j] += xj @ xj.T
    mus = s / cnt[:, None]
    covs = ss / cnt[:, None, None] - mus[:, :, None] * mus[:, None, :] + np.eye(b) * RIDGE
    return mus, covs, cnt.astype(int), n, mu0, w0


def quadratic(mus, ws, mu0, w0):
    """Each class distance as a quadratic in z = W0 (x - mu0):
    |W_k (x - mu_k)|^2 = |A_k z - a_k|^2 with A_k = W_k W0^-1, a_k = W_k (mu_k - mu0),
    = z^T P_k z + q_k . z + r_k. Returns P [K,B,B], q [K,B], r [K] (float64)."""
    w0_inv = np.linalg.inv(w0)
    ps, qs, rs = [], [], []
    for m, w in zip(mus, ws):
        a_mat = w @ w0_inv
        a_vec = w @ (m - mu0)
        ps.append(a_mat.T @ a_mat)
        qs.append(-2.0 * a_mat.T @ a_vec)
        rs.append(a_vec @ a_vec)
    return np.array(ps), np.array(qs), np.array(rs)


def build(mus, ws, mu0, w0, bands):
    """The RX graph: input [1,B,T,T] -> map [1,1,T,T], score [1]."""
    k = len(mus)
    p, q, r = quadratic(mus, ws, mu0, w0)
    # Conv weights over the features [z_i z_j for i, j (B*B, row-major), z_i (B)].
    theta = np.concatenate([p.reshape(k, bands * bands), q], 1)
    parts = [f"class_{j}" for j in range(k)]
    inits = [
        numpy_helper.from_array(w0.reshape(bands, bands, 1, 1).astype(np.float32), "whiten"),
        numpy_helper.from_array((-w0 @ mu0).astype(np.float32), "whiten_bias"),
        numpy_helper.from_array(np.array([bands, 1, TILE * TILE], dtype=np.int64), "col_shape"),
        numpy_helper.from_array(np.array([1, bands, TILE * TILE], dtype=np.int64), "row_shape"),
        numpy_helper.from_array(np.array([1, bands * bands, TILE, TILE], dtype=np.int64), "outer_shape"),
        numpy_helper.from_array(theta.reshape(k, -1, 1, 1).astype(np.float32), "quadratic"),
        numpy_helper.from_array(r.astype(np.float32), "quadratic_bias"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "score_shape"),
    ]
    nodes = [
        # z = W0 (x - mu0): [1,B,T,T].
        helper.make_node("Conv", ["input", "whiten", "whiten_bias"], ["z"], kernel_shape=[1, 1]),
        # All products z_i z_j: [B,1,HW] * [1,B,HW] -> [B,B,HW] -> [1,B*B,T,T].
        helper.make_node("Reshape", ["z", "col_shape"], ["z_col"]),
        helper.make_node("Reshape", ["z", "row_shape"], ["z_row"]),
        helper.make_node("Mul", ["z_col", "z_row"], ["outer"]),
        helper.make_node("Reshape", ["outer", "outer_shape"], ["products"]),
        helper.make_node("Concat", ["products", "z"], ["features"], axis=1),
        # [1,K,T,T]: the squared Mahalanobis distance to every class.
        helper.make_node("Conv", ["features", "quadratic", "quadratic_bias"], ["d2_k"], kernel_shape=[1, 1]),
        # The nearest class (Split + Min: faster in tract than ReduceMin over the class axis).
        helper.make_node("Split", ["d2_k"], parts, axis=1),
        helper.make_node("Min", parts, ["map"]),
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


def rx_numpy(tiles, mus, ws):
    """Reference RX in numpy (float64, Sub then W_k): maps [T,1,S,S] and scores [T]."""
    b = tiles.shape[1]
    maps = []
    scores = []
    for t in tiles:
        x = np.asarray(t, dtype=np.float64).reshape(b, -1)
        d2 = np.min([((w @ (x - m[:, None])) ** 2).sum(0) for m, w in zip(mus, ws)], 0)
        d2 = d2.reshape(TILE, TILE)
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


def aurocs(maps, scores, truth, tile_anom, specimen):
    """Pixel and tile AUROC, overall and per specimen (cube kind)."""
    out = {"pixel_auroc": round(auroc(maps, truth), 4), "tile_auroc": round(auroc(scores, tile_anom), 4)}
    per = {}
    for c in sorted(set(specimen)):
        sel = specimen == c
        per[c] = {
            "tiles": int(sel.sum()),
            "anomalous_tiles": int(tile_anom[sel].sum()),
            "pixel_auroc": round(auroc(maps[sel], truth[sel]), 4),
            "tile_auroc": round(auroc(scores[sel], tile_anom[sel]), 4),
        }
    out["per_specimen"] = per
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="dataset dir of the training seeds")
    ap.add_argument("--eval", required=True, help="dataset dir of held-out seeds")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    t0 = time.time()

    tiles, masks, items, bands_nm = load_dataset(args.train, "cubes")
    bands = tiles.shape[1]
    mus, covs, counts, n, mu0, w0 = fit(tiles, masks)
    ws = [whitener(c) for c in covs]
    print(f"fitted {K} classes on {n} normal pixels of {len(items)} tiles ({time.time() - t0:.1f} s); "
          f"class sizes {counts.tolist()}")

    etiles, emasks, eitems, ebands = load_dataset(args.eval, "cubes")
    assert ebands == bands_nm, "band sets differ"
    maps, scores = rx_numpy(etiles, mus, ws)
    truth = np.asarray(emasks) >= 0.5
    tile_anom = truth.reshape(len(eitems), -1).any(1)
    specimen = np.array([it["cube"] for it in eitems])
    ev = aurocs(maps, scores, truth, tile_anom, specimen)
    normal_pixels_map = maps[~truth]
    # Thresholds from the held-out NORMAL data: 99th percentile of the scores of
    # tiles without anomalous pixels; 99.9th percentile of normal pixels' map.
    thr_score = float(np.percentile(scores[~tile_anom], 99))
    thr_map = float(np.percentile(normal_pixels_map, 99.9))
    print(f"eval (numpy): {len(eitems)} tiles ({int(tile_anom.sum())} anomalous), "
          f"pixel AUROC {ev['pixel_auroc']:.4f}, tile AUROC {ev['tile_auroc']:.4f}, "
          f"thresholds score {thr_score:.2f} map {thr_map:.2f}")
    for c, v in ev["per_specimen"].items():
        print(f"  {c}: {v}")

    model = build(mus, ws, mu0, w0, bands)
    path = os.path.join(args.out, NAME + ".onnx")
    onnx.save(model, path)
    ort_ev = None
    try:
        import onnxruntime as ort

        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        omaps, oscores = [], []
        for t in etiles:
            s, m = sess.run(["score", "map"], {"input": np.ascontiguousarray(t[None], dtype=np.float32)})
            omaps.append(m[0])
            oscores.append(float(s[0]))
        omaps = np.stack(omaps)
        oscores = np.array(oscores)
        err = float(np.abs(omaps - maps).max() / max(1.0, maps.max()))
        serr = float(np.abs(oscores - scores).max() / max(1.0, scores.max()))
        ort_ev = aurocs(omaps, oscores, truth, tile_anom, specimen)
        print(f"onnxruntime vs numpy on all {len(eitems)} tiles: map rel err {err:.2e}, "
              f"score rel err {serr:.2e}; pixel AUROC {ort_ev['pixel_auroc']:.4f}, "
              f"tile AUROC {ort_ev['tile_auroc']:.4f}")
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
            f"Cluster-conditional RX spectral anomaly detector: squared Mahalanobis distance of each "
            f"pixel's {bands}-band spectrum (code/65535) from the nearest of {K} classes of normal "
            f"pixels (k-means in whitened spectral space; mean and covariance per class) of the med8k "
            f"sample cubes (seeds {train_seeds[0]}..={train_seeds[-1]}); score = max of the "
            f"{POOL}x{POOL} box mean of the map."
        ),
        "card": "MODEL_CARD.md",
    }
    write_sidecar(path, sidecar)
    metrics = {
        "train_seeds": train_seeds,
        "eval_seeds": eval_seeds,
        "classes": K,
        "class_pixels": counts.tolist(),
        "normal_pixels": int(n),
        "eval_tiles": len(eitems),
        "eval_anomalous_tiles": int(tile_anom.sum()),
        "pixel_auroc": ev["pixel_auroc"],
        "tile_auroc": ev["tile_auroc"],
        "per_specimen": ev["per_specimen"],
        "onnxruntime": ort_ev,
        "threshold_score": thr_score,
        "threshold_map": thr_map,
        "onnx_bytes": os.path.getsize(path),
    }
    write_metrics(args.out, metrics)


if __name__ == "__main__":
    main()
