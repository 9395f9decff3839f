"""Fit and export med8k's reference endoscope anomaly detector.

Model: a Gaussian over luma-normalised chroma features of normal frames
(a "global PaDiM" without a backbone), written directly as an ONNX graph with
the onnx helper API so that the fitting pass and the exported model run the
very same operators. No network weights are trained by gradient descent.

  x        [1,3,144,256]  Y', Cb, Cr after the sidecar's (x - mean) / std
  raw      x * std + mean (two 1x1 Convs), back to code / (2^bits - 1)
  r        (Cb - 0.5, Cr - 0.5) / (Y' + 0.1): colour with the illumination
           divided out (the light falls off toward the rim and glints are bright;
           hue is what tells lesions from mucosa)
  f (4)    r and its 7x7 box mean (separable AveragePools, padding excluded)
  d2       (f - mu)^T Sigma^-1 (f - mu) per pixel: a 1x1 Conv with W = L^-1
           (Sigma = L L^T) and bias -W mu, then Mul + ReduceSum; mu, Sigma over
           all pixels of normal training frames
  map      d2 box-averaged over 5x5
  score    max over the frame of the 9x9 box mean of map

Raised red patches and pooled blood are redder (and blood darker) than
mucosa for their brightness; the Gaussian of normal hue flags them. Luma and
texture features were tried and dropped: they track illumination, not tissue
(image AUROC fell to 0.68-0.83 with them; see MODEL_CARD.md).

Usage (from the repository root):
  med8k samples dataset --out /tmp/endo-train --seeds 1000..1030 --frames 48 --step 3 --size 1024x576
  med8k samples dataset --out /tmp/endo-eval  --seeds 2000..2010 --frames 48 --step 3 --size 1024x576
  python models/endoscope/train.py --train /tmp/endo-train --eval /tmp/endo-eval
"""

import argparse
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import Graph, auroc, frame_sidecar, load_dataset, write_metrics, write_sidecar  # noqa: E402

NAME = "med8k-endoscope-gauss"
VERSION = "1.0.0"
H, W = 144, 256
SCALES = (7,)
DENOM = 0.1
NF = 2 * (1 + len(SCALES))
SMOOTH = 5
SCORE_K = 9
OPSET = 13
EPS = 1e-6


def features(g, x, mean, std):
    """The feature channels of normalised input x (NCHW, 3 channels)."""
    # Chroma offsets from neutral and the luma denominator, from the normalised input.
    wn = np.zeros((2, 3, 1, 1), dtype=np.float32)
    wn[0, 1], wn[1, 2] = std[1], std[2]
    num = g.op("Conv", [x, g.const("chroma_w", wn),
                        g.const("chroma_b", np.array([mean[1] - 0.5, mean[2] - 0.5], dtype=np.float32))])
    wd = np.zeros((1, 3, 1, 1), dtype=np.float32)
    wd[0, 0] = std[0]
    den = g.op("Conv", [x, g.const("luma_w", wd), g.const("luma_b", np.array([mean[0] + DENOM], dtype=np.float32))])
    r = g.op("Div", [num, den], base="hue")
    return g.op("Concat", [r] + [g.box(r, k, 2, H, W) for k in SCALES], base="features", axis=1)


def finish(g, outputs, batch="N"):
    graph = helper.make_graph(
        g.nodes, "med8k_endoscope",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, H, W])],
        outputs, g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="med8k models/endoscope/train.py")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def feature_model(mean, std):
    g = Graph()
    features(g, "input", mean, std)
    g.nodes[-1].output[0] = "feat"
    return finish(g, [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["N", NF, H, W])])


def d2_graph(g, x, mu, w, mean, std):
    f = features(g, x, mean, std)
    # 1x1 conv: z = W f - W mu
    wc = g.const("whiten", w.astype(np.float32).reshape(NF, NF, 1, 1))
    bc = g.const("bias", (-(w @ mu)).astype(np.float32))
    z = g.op("Conv", [f, wc, bc])
    sq = g.op("Mul", [z, z])
    return g.op("ReduceSum", [sq, g.const("axis", np.array([1], dtype=np.int64))], keepdims=1)


def full_model(mu, w, mean, std, batch=1):
    g = Graph()
    d2_graph(g, "input", mu, w, mean, std)
    g.box(g.nodes[-1].output[0], SMOOTH, 1, H, W)
    g.nodes[-1].output[0] = "map"
    s = g.box("map", SCORE_K, 1, H, W)
    s = g.op("ReduceMax", [s], axes=[1, 2, 3], keepdims=0)
    g.nodes.append(helper.make_node("Reshape", [s, g.const("shape", np.array([batch], dtype=np.int64))],
                                    ["score"]))
    return finish(g, [helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch]),
                      helper.make_tensor_value_info("map", TensorProto.FLOAT, [batch, 1, H, W])],
                  batch=batch)


def batches(x, idx, mean, std, bs=16):
    for i in range(0, len(idx), bs):
        b = np.asarray(x[idx[i:i + bs]], dtype=np.float32)
        yield (b - mean[None, :, None, None]) / std[None, :, None, None]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="dataset dir of the training seeds")
    ap.add_argument("--eval", required=True, help="dataset dir of held-out seeds")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    t0 = time.time()

    x, maps, items = load_dataset(args.train, "endoscope")
    normal = np.array([i for i, it in enumerate(items) if not it["anomalous"]])
    print(f"train: {len(items)} frames, {len(normal)} normal")

    # Input normalisation (the sidecar's mean/std): per channel over normal frames.
    sample = np.asarray(x[normal[:: max(1, len(normal) // 64)]], dtype=np.float64)
    mean = sample.mean(axis=(0, 2, 3)).astype(np.float32)
    std = sample.std(axis=(0, 2, 3)).astype(np.float32)

    fs = session(feature_model(mean, std))
    n, s, ss = 0, np.zeros(NF), np.zeros((NF, NF))
    for b in batches(x, normal, mean, std):
        (f,) = fs.run(None, {"input": b})
        f = f.transpose(1, 0, 2, 3).reshape(NF, -1).astype(np.float64)
        n += f.shape[1]
        s += f.sum(1)
        ss += f @ f.T
    mu = s / n
    cov = ss / n - np.outer(mu, mu) + np.eye(NF) * 1e-8
    w = np.linalg.inv(np.linalg.cholesky(cov))
    fit_s = time.time() - t0
    print(f"gaussian fitted on {n} pixels of {len(normal)} normal frames ({fit_s:.1f} s)")

    model = full_model(mu, w, mean, std)
    path = os.path.join(args.out, NAME + ".onnx")
    onnx.save(model, path)
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)

    # Evaluate on held-out seeds with onnxruntime running the exported file.
    ex, emaps, eitems = load_dataset(args.eval, "endoscope")
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    scores, pmaps = [], []
    t1 = time.time()
    for b in batches(ex, np.arange(len(eitems)), mean, std, bs=1):
        sc, mp = sess.run(["score", "map"], {"input": b})
        scores.append(float(sc[0]))
        pmaps.append(mp[0, 0])
    per_frame_ms = 1000 * (time.time() - t1) / len(eitems)
    scores = np.array(scores)
    labels = np.array([it["anomalous"] for it in eitems])
    truth = np.asarray(emaps)[:, 0] >= 0.5
    pix = auroc(np.stack(pmaps), truth)
    img = auroc(scores, labels)
    by_kind = {}
    for kind in ("raised_red_patch", "bleeding"):
        sel = np.array([(not it["anomalous"]) or kind in it["lesions"] for it in eitems])
        by_kind[kind] = round(auroc(scores[sel], labels[sel]), 4)
    thr_score = float(np.percentile(scores[~labels], 99))
    normal_pix = np.stack(pmaps)[~labels]
    thr_map = float(np.percentile(normal_pix, 99.9))
    print(f"eval: {len(eitems)} frames ({int(labels.sum())} anomalous): image AUROC {img:.4f} "
          f"{by_kind}, pixel AUROC {pix:.4f}, onnxruntime {per_frame_ms:.1f} ms/frame")

    train_seeds = sorted({it["seed"] for it in items})
    eval_seeds = sorted({it["seed"] for it in eitems})
    sidecar = frame_sidecar(
        NAME, VERSION, [1, 3, H, W], mean, std, thr_score, thr_map,
        (
            "Reference endoscope anomaly detector for med8k's synthetic scenes: Mahalanobis distance "
            "of luma-normalised chroma (and its 7x7 mean) from a Gaussian of normal frames, "
            "smoothed; fitted on normal frames of sample seeds "
            f"{train_seeds[0]}..={train_seeds[-1]}. Not a medical device."),
    )
    write_sidecar(path, sidecar)
    metrics = {
        "train_seeds": train_seeds, "eval_seeds": eval_seeds,
        "train_frames": len(items), "train_normal_frames": int(len(normal)),
        "eval_frames": len(eitems), "eval_anomalous_frames": int(labels.sum()),
        "image_auroc": round(img, 4), "image_auroc_by_kind": by_kind, "pixel_auroc": round(pix, 4),
        "threshold_score": thr_score, "threshold_map": thr_map,
        "params": params, "onnx_bytes": os.path.getsize(path), "fit_seconds": round(fit_s, 1),
        "onnxruntime_ms_per_frame": round(per_frame_ms, 2),
    }
    write_metrics(args.out, metrics)


if __name__ == "__main__":
    main()
