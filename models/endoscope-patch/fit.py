#!/usr/bin/env python3
"""Fit and export med8k-endoscope-patch: a PatchCore-style detector on the first
stages of a pretrained CNN that a PyPI wheel ships, with an image-quality alarm.

    python3 models/endoscope-patch/fit.py --train DIR --halves A B [--dev DIR] [--out DIR]

`--train` is a `med8k samples dataset --real N` directory: the normal frames of
the fitting seeds (anomalous frames and anomaly kinds are never used; the last
four seeds' frames set thresholds) and crops of the fixtures' fit rows. `A` and
`B` hold crops of the two halves of the fit rows (`--no-frames --real N
--real-region dev-fit`, `dev-check`): the model is fitted three times, on the
frames with A, with B, and with every crop (the one written); the first two
score the half they never saw, and the thresholds come from those scores, so
that tissue new to the model does not raise an alarm. `--dev` (optional) is a
`--kinds dev` set with `--real-region dev-check` crops: the development kinds,
never the held-out ones, scored with onnxruntime by the fit that never saw
those rows. See MODEL_CARD.md.

Backbone: the first three stages (stride 2, 4 and 8) of PP-OCRv4's text detector
(a PPLCNetV3), the file `models/ch_PP-OCRv4_det_infer.onnx` inside the
`rapidocr-onnxruntime` 1.4.4 wheel (Apache-2.0), found through Python's import
machinery (the package is never imported) or given with `--backbone`; its SHA-256
is checked. No network access, no deep-learning framework: numpy and onnxruntime.

The exported graph (opset 13, fixed shape [1,3,144,256], what tract runs):
  input Y'CbCr (code / 1023) -> 1x1 Conv to the backbone's normalised BGR ->
  backbone to stride 8 ->
  tissue: 3x3 mean of the stride-4 and stride-8 features, stride-4 pooled 2x2,
          concatenated with the luma-normalised whitened chroma (x CHROMA_W), at
          18x32; the 576 positions as rows, projected (PCA of normal patches) and
          multiplied with the M memory patches (the greedy k-centre coreset of
          normal patches, upside-down crops included), the maximum along the
          memory: distance to the nearest -> `map` [1,1,18,32], `score` [1] = its
          maximum;
  quality: eight statistics of how the picture was taken (detail ratios at three
          scales and of the backbone's first stages, luma mean and spread, chroma
          saturation, shares of near-white and near-black), each scaled by how far
          it moves on content a fit never saw, distance to the nearest normal
          input's vector -> `quality` [1].
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import Graph, auroc, sha256_file, write_metrics  # noqa: E402

BACKBONE_SHA256 = "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"
BACKBONE_WHEEL = "rapidocr-onnxruntime 1.4.4 (Apache-2.0)"
TAPS = {"s2": "p2o.Add.15", "s4": "p2o.Add.43", "s8": "p2o.Add.71"}
TAP_CHANNELS = {"s2": 32, "s4": 48, "s8": 96}
H, W = 144, 256
MH, MW = 18, 32
SEED = 20


def find_backbone(path):
    if path is None:
        spec = importlib.util.find_spec("rapidocr_onnxruntime")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("rapidocr-onnxruntime is not installed: pip install --no-deps "
                     "-r models/requirements-fit.txt, or pass --backbone FILE")
        path = os.path.join(list(spec.submodule_search_locations)[0], "models",
                            "ch_PP-OCRv4_det_infer.onnx")
    if sha256_file(path) != BACKBONE_SHA256:
        sys.exit(f"{path}: SHA-256 is not {BACKBONE_SHA256}")
    return path


def backbone_nodes(path):
    """The nodes and initialisers that compute the three taps from input `x`."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    producers = {o: n for n in m.graph.node for o in n.output}
    need, stack = set(), list(TAPS.values())
    while stack:
        t = stack.pop()
        n = producers.get(t)
        if n is None or id(n) in need:
            continue
        need.add(id(n))
        stack.extend(i for i in n.input if i)
    nodes = [n for n in m.graph.node if id(n) in need]
    inits = [i for i in m.graph.initializer]
    used = {i for n in nodes for i in n.input}
    inits = [i for i in inits if i.name in used]
    # Constant nodes become initialisers (tract and onnxruntime take both; fewer nodes).
    out_nodes = []
    for n in nodes:
        if n.op_type == "Constant":
            inits.append(numpy_helper.from_array(numpy_helper.to_array(n.attribute[0].t), n.output[0]))
        else:
            out_nodes.append(n)
    return out_nodes, inits


def ycbcr_to_bgr_norm():
    """3x3 matrix and bias: tensor (Y', Cb, Cr as code/1023) -> (BGR - mean) / std
    as PaddleOCR normalises its (BGR, /255) input."""
    kr, kb = 0.2627, 0.0593
    kg = 1 - kr - kb
    # code/1023 -> y, cb, cr
    a = np.diag([1023 / 876, 1023 / 896, 1023 / 896])
    b = np.array([-64 / 876, -512 / 896, -512 / 896])
    # y, cb, cr -> R, G, B
    m = np.array([[1, 0, 2 * (1 - kr)],
                  [1, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
                  [1, 2 * (1 - kb), 0]])
    rgb_a, rgb_b = m @ a, m @ b
    bgr_a, bgr_b = rgb_a[::-1], rgb_b[::-1]
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    return bgr_a / std[:, None], (bgr_b - mean) / std


class Model:
    """Builds the exported graph; the fitting runs the same graph (onnxruntime)."""

    def __init__(self, backbone):
        self.nodes, self.inits = backbone_nodes(backbone)

    def graph(self, head):
        """A ModelProto: preprocessing + backbone + `head(g, taps, x)` nodes."""
        import onnx
        from onnx import helper

        g = Graph()
        a, b = ycbcr_to_bgr_norm()
        x = "input"
        pre = g.op("Conv", [x, g.const("pre_w", a.astype(np.float32)[:, :, None, None]),
                            g.const("pre_b", b.astype(np.float32))], "pre")
        nodes = []
        for n in self.nodes:
            n2 = onnx.NodeProto()
            n2.CopyFrom(n)
            for k, i in enumerate(n2.input):
                if i == "x":
                    n2.input[k] = pre
            nodes.append(n2)
        outputs = head(g, dict(TAPS), x)
        graph = helper.make_graph(
            g.nodes[:1] + nodes + g.nodes[1:], "med8k-endoscope-patch",
            [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, [1, 3, H, W])],
            [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, s) for n, s in outputs],
            initializer=self.inits + g.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                  producer_name="med8k models/endoscope-patch/fit.py")
        model.ir_version = 8
        return model


def session(model_bytes):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    o.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, o, providers=["CPUExecutionProvider"])


def run_batches(sess, x, names):
    outs = {n: [] for n in names}
    for i in range(len(x)):
        r = sess.run(names, {"input": np.ascontiguousarray(x[i:i + 1], dtype=np.float32)})
        for n, v in zip(names, r):
            outs[n].append(v[0])
    return {n: np.stack(v) for n, v in outs.items()}


def chroma(g, x, whiten=None):
    """Luma-normalised chroma (Cb-0.5, Cr-0.5)/(Y'+0.1), optionally whitened (1x1 Conv)."""
    y = g.op("Slice", [x, g.const("s0", np.array([0], np.int64)), g.const("s1", np.array([1], np.int64)),
                       g.const("sa", np.array([1], np.int64))])
    c = g.op("Slice", [x, g.const("c0", np.array([1], np.int64)), g.const("c1", np.array([3], np.int64)),
                       g.const("ca", np.array([1], np.int64))])
    num = g.op("Sub", [c, g.const("half", np.array(0.5, np.float32))])
    den = g.op("Add", [y, g.const("tenth", np.array(0.1, np.float32))])
    r = g.op("Div", [num, den])
    if whiten is not None:
        wm, wb = whiten
        r = g.op("Conv", [r, g.const("cw", wm[:, :, None, None].astype(np.float32)),
                          g.const("cb", wb.astype(np.float32))])
    return r


def pool(g, t, channels, k, s=1, kernel=None):
    """A k x k mean (zero padding at stride 1) as a depthwise Conv: tract runs
    AveragePool far slower than Conv (see the model card's op profile)."""
    p = k // 2 if s == 1 else 0
    kh, kw = (k, k) if kernel is None else kernel
    if kernel is not None:
        pads = [kh // 2, kw // 2, kh // 2, kw // 2]
    else:
        pads = [p, p, p, p]
    w = np.full((channels, 1, kh, kw), 1.0 / (kh * kw), np.float32)
    return g.op("Conv", [t, g.const("box", w)], group=channels, kernel_shape=[kh, kw],
                strides=[s, s], pads=pads)


def box(g, t, k):
    """Separable k x k mean of a one-channel map (zero padding), as two Convs."""
    return pool(g, pool(g, t, 1, k, kernel=(1, k)), 1, k, kernel=(k, 1))


def global_stats(g, taps, x):
    """[1, 8, 1, 1]: picture statistics that say how the picture was taken more
    than what it shows: detail ratios of luma at three scales (fine/mid, mid/coarse,
    from box means of 3, 9 and 27 px) and of the backbone's stride-2/stride-4
    feature magnitudes (blur lowers them), luma mean and log spread (exposure,
    veils), luma-normalised chroma magnitude (smoke and fog desaturate), and the
    soft shares of near-white and near-black pixels (glare, clipping)."""
    eps = g.const("eps", np.array(1e-4, np.float32))

    def gap(t):
        return g.op("GlobalAveragePool", [t])

    def log(t):
        return g.op("Log", [g.op("Add", [t, eps])])

    def absdiff(a, b):
        return g.op("Abs", [g.op("Sub", [a, b])])

    y = g.op("Slice", [x, g.const("y0", np.array([0], np.int64)), g.const("y1", np.array([1], np.int64)),
                       g.const("ya", np.array([1], np.int64))])
    b3, b9 = box(g, y, 3), box(g, y, 9)
    b27 = box(g, b9, 27)
    fine, mid, coarse = gap(absdiff(y, b3)), gap(absdiff(b3, b9)), gap(absdiff(b9, b27))
    parts = [g.op("Sub", [log(fine), log(mid)]), g.op("Sub", [log(mid), log(coarse)])]
    # Mean |feature| over the picture, then over channels (a 1x1 Conv of the
    # [1, C, 1, 1] means): tract's one reduction over channels and space at
    # once took a millisecond.
    m2, m4 = [g.op("Conv", [gap(g.op("Abs", [taps[k]])),
                            g.const("cm", np.full((1, n, 1, 1), 1.0 / n, np.float32))])
              for k, n in (("s2", TAP_CHANNELS["s2"]), ("s4", TAP_CHANNELS["s4"]))]
    parts.append(g.op("Sub", [log(m2), log(m4)]))
    mean = gap(y)
    dev = g.op("Sub", [y, mean])
    parts.append(mean)
    parts.append(g.op("Mul", [log(gap(g.op("Mul", [dev, dev]))), g.const("halfl", np.array(0.5, np.float32))]))
    c = g.op("Slice", [x, g.const("k0", np.array([1], np.int64)), g.const("k1", np.array([3], np.int64)),
                       g.const("ka", np.array([1], np.int64))])
    c = g.op("Abs", [g.op("Sub", [c, g.const("khalf", np.array(0.5, np.float32))])])
    c = g.op("ReduceSum", [c, g.const("kax", np.array([1], np.int64))], keepdims=1)
    parts.append(log(gap(g.op("Div", [c, g.op("Add", [y, g.const("kten", np.array(0.1, np.float32))])]))))
    hi = g.op("Relu", [g.op("Sub", [y, g.const("hi", np.array(0.85, np.float32))])])
    lo = g.op("Relu", [g.op("Sub", [g.const("lo", np.array(0.12, np.float32)), y])])
    parts.append(log(gap(hi)))
    parts.append(log(gap(lo)))
    return g.op("Concat", parts, axis=1)


def patch_features(g, taps, x, whiten, chroma_w):
    n4, n8 = TAP_CHANNELS["s4"], TAP_CHANNELS["s8"]
    f4 = pool(g, pool(g, taps["s4"], n4, 3), n4, 2, 2)
    f8 = pool(g, taps["s8"], n8, 3)
    c = pool(g, chroma(g, x, whiten), 2, 8, 8)
    c = g.op("Mul", [c, g.const("chw", np.array(chroma_w, np.float32))])
    return g.op("Concat", [f4, f8, c], axis=1)


def greedy_coreset(x, m, rng):
    """k-centre greedy: m rows of x, each the farthest from those picked so far."""
    picked = [int(rng.integers(len(x)))]
    d = ((x - x[picked[0]]) ** 2).sum(1)
    for _ in range(m - 1):
        i = int(np.argmax(d))
        picked.append(i)
        d = np.minimum(d, ((x - x[i]) ** 2).sum(1))
    return x[picked]


def nearest_head(g, v, memory, proj_w, proj_b, h, w):
    """Squared distance of each of the h x w positions of `v` [1, C, h, w],
    projected, to the nearest memory row: |p|^2 - max_j (2 p.m_j - |m_j|^2),
    clamped at 0, as [1, 1, h, w]. The positions are made rows first ([h*w, C]),
    so the projection and the products with the memory are matrix products and
    the maximum runs along contiguous memory: tract ran the same head as 1x1
    Convs and a ReduceMax across channels about twice as slowly."""
    c = proj_w.shape[1]
    rows = g.op("Transpose", [g.op("Reshape", [v, g.const("rs", np.array([c, h * w], np.int64))])],
                perm=[1, 0])
    p = g.op("Add", [g.op("MatMul", [rows, g.const("pw", proj_w.T.astype(np.float32))]),
                     g.const("pb", proj_b.astype(np.float32))])
    dots = g.op("Add", [g.op("MatMul", [p, g.const("mw", (2 * memory).T.astype(np.float32))]),
                        g.const("mb", (-(memory ** 2).sum(1)).astype(np.float32))])
    best = g.op("ReduceMax", [dots], axes=[1], keepdims=1)
    norm = g.op("ReduceSum", [g.op("Mul", [p, p]), g.const("ax1", np.array([1], np.int64))], keepdims=1)
    d2 = g.op("Relu", [g.op("Sub", [norm, best])])
    return g.op("Reshape", [d2, g.const("rs", np.array([1, 1, h, w], np.int64))])


def fit_tissue(P, rng, dims, memory_size):
    """PCA of the standardised normal patches of `P` [N, C+2, MH, MW] (the two
    whitened chroma values last, kept as they are) and the greedy coreset
    memory in that projection: (proj_w, proj_b, memory)."""
    C = P.shape[1] - 2
    flat = P.transpose(0, 2, 3, 1).reshape(-1, C + 2)
    sample = flat[np.sort(rng.choice(len(flat), size=min(len(flat), 120_000), replace=False))]
    sample = sample.astype(np.float64)
    fmu = sample.mean(0)
    fsd = sample[:, :C].std(0) + 1e-3
    z = (sample[:, :C] - fmu[:C]) / fsd
    _, _, vt = np.linalg.svd(z[rng.choice(len(z), 30_000, replace=False)], full_matrices=False)
    proj_w = np.zeros((dims + 2, C + 2))
    proj_w[:dims, :C] = vt[:dims] / fsd
    proj_w[dims, C] = proj_w[dims + 1, C + 1] = 1.0
    proj_b = -proj_w @ fmu
    zp = sample @ proj_w.T + proj_b
    memory = greedy_coreset(zp[rng.choice(len(zp), 60_000, replace=False)], memory_size, rng)
    return proj_w, proj_b, memory


# Scale floors of the eight quality statistics for the first pass (see
# `fit_quality`): what a picture of normal content can vary by (detail ratios
# 0.3, the backbone ratio and luma mean 0.1, log spread and saturation 0.4, log
# shares of near-white and near-black 3).
QUALITY_FLOOR = np.array([0.3, 0.3, 0.1, 0.1, 0.4, 0.4, 3.0, 3.0])


def fit_quality(S, domain, floor=QUALITY_FLOOR):
    """Standardisation and memory of the quality statistics `S` [N, 8]: each
    statistic scaled by its spread within each kind of content (`domain`: the
    generator's frames and each fixture weigh the same), never below `floor`
    (the generator's frames are so alike that their own spread would flag any
    new content): (qw, qb, qmemory)."""
    within = np.mean([S[domain == d].var(0) for d in sorted(set(domain))], axis=0)
    smu, ssd = S.mean(0), np.maximum(np.sqrt(within), floor)
    qw = np.diag(1.0 / ssd)
    qb = -smu / ssd
    return qw, qb, S @ qw.T + qb


def new_content_scale(pairs):
    """How far each quality statistic of normal content a fit never saw lies
    from the nearest fitted input's: the root mean square, per statistic, of
    (statistics - those of the nearest fitted input), over `pairs` of
    (quality fit, its fitted statistics, unseen statistics)."""
    diffs = []
    for (qw, qb, qmemory), fitted, unseen in pairs:
        z = unseen @ qw.T + qb
        nearest = ((z[:, None, :] - qmemory[None]) ** 2).sum(-1).argmin(1)
        diffs.append(unseen - fitted[nearest])
    return np.sqrt((np.concatenate(diffs) ** 2).mean(0))


def vflip(x):
    """Inputs upside down: tissue has no up, and the backbone's features are not
    symmetric, so the flipped crops are new normal patches."""
    return np.ascontiguousarray(np.asarray(x)[:, :, ::-1, :])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True,
                   help="frames of the fitting seeds and crops of the fixtures' fit rows")
    p.add_argument("--halves", nargs=2, required=True, metavar=("A", "B"),
                   help="crops of the two halves of the fit rows (--real-region dev-fit, dev-check)")
    p.add_argument("--dev")
    p.add_argument("--backbone")
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--memory", type=int, default=2048, help="tissue memory patches")
    p.add_argument("--dims", type=int, default=48, help="projected patch dimensions")
    p.add_argument("--chroma-weight", type=float, default=4.0)
    p.add_argument("--no-flip", dest="flip", action="store_false",
                   help="do not add the crops upside down to the tissue memory")
    p.add_argument("--percentile", type=float, default=100.0,
                   help="threshold = this percentile of the calibration inputs' values")
    a = p.parse_args()
    t_start = time.time()
    rng = np.random.default_rng(SEED)
    import onnx

    backbone = find_backbone(a.backbone)
    model = Model(backbone)

    with open(os.path.join(a.train, "dataset.json")) as f:
        index = json.load(f)
    frames = np.load(os.path.join(a.train, "endoscope_inputs.npy"), mmap_mode="r")
    items = index["frames"]
    normal = np.array([not it["anomalous"] for it in items])
    seeds = np.array([it["seed"] for it in items])
    thr_seeds = sorted(set(seeds))[-4:]
    fit_frames = np.flatnonzero(normal & ~np.isin(seeds, thr_seeds))
    thr_frames = np.flatnonzero(normal & np.isin(seeds, thr_seeds))

    def crops(path):
        with open(os.path.join(path, "dataset.json")) as f:
            fx = np.array([r["fixture"] for r in json.load(f)["real"]])
        return np.load(os.path.join(path, "real_inputs.npy"), mmap_mode="r"), fx
    real, real_fx = crops(a.train)
    (half_a, fx_a), (half_b, fx_b) = crops(a.halves[0]), crops(a.halves[1])
    print(f"fit: {len(fit_frames)} frames + {len(real)} + {len(half_a)} + {len(half_b)} crops "
          f"(fit rows, their two halves){' and each upside down' if a.flip else ''}; "
          f"thresholds: {len(thr_frames)} frames (seeds {[int(s) for s in thr_seeds]}) and each "
          f"half's crops scored by a model fitted without it", flush=True)

    # 1. Chroma whitening from the fitting frames (as models/endoscope does).
    def chroma_np(x):
        y = x[:, 0:1]
        return (x[:, 1:3] - 0.5) / (y + 0.1)
    xs = frames[fit_frames[::4]]
    r = chroma_np(xs).transpose(1, 0, 2, 3).reshape(2, -1).astype(np.float64)
    mu, cov = r.mean(1), np.cov(r)
    ev, evec = np.linalg.eigh(cov)
    wm = (evec / np.sqrt(ev)).T
    whiten = (wm, -wm @ mu)

    # 2. Raw features of every fitting and threshold input (one pass, onnxruntime).
    def raw_head(g, taps, x):
        v = patch_features(g, taps, x, whiten, a.chroma_weight)
        s = global_stats(g, taps, x)
        g.nodes.append(onnx.helper.make_node("Identity", [v], ["patches"]))
        g.nodes.append(onnx.helper.make_node("Identity", [s], ["stats"]))
        return [("patches", None), ("stats", None)]
    sess = session(model.graph(raw_head).SerializeToString())
    t0 = time.time()

    def features(x, flip=False):
        f = run_batches(sess, x, ["patches", "stats"])
        f["stats"] = f["stats"].reshape(len(x), -1).astype(np.float64)
        if flip:
            f["patches"] = np.concatenate([f["patches"], run_batches(sess, vflip(x), ["patches"])["patches"]])
        return f
    feats = {"frames": features(frames[fit_frames]),
             "real": features(real, a.flip), "a": features(half_a, a.flip), "b": features(half_b, a.flip)}
    print(f"features: {time.time() - t0:.1f} s", flush=True)

    # 3. Three fits of the same recipe: on the frames with the crops of half A only,
    #    with half B only, and with all the crops (the model written). The first two
    #    score the half they never saw: normal tissue new to the model, as the
    #    evaluation rows are to the written one; the thresholds come from those.
    def fit(parts, floor=QUALITY_FLOOR):
        P = np.concatenate([feats["frames"]["patches"]] + [feats[k]["patches"] for k, _ in parts])
        S = np.concatenate([feats["frames"]["stats"]] + [feats[k]["stats"] for k, _ in parts])
        domain = np.array(["frames"] * len(fit_frames) + [f for _, fx in parts for f in fx])
        t0 = time.time()
        tissue = fit_tissue(P, rng, a.dims, a.memory)
        quality = fit_quality(S, domain, floor)
        print(f"  fitted on {len(P)} inputs ({', '.join(k for k, _ in parts)}): "
              f"{time.time() - t0:.1f} s", flush=True)
        return tissue, quality, S

    def final_head(tissue, quality):
        proj_w, proj_b, memory = tissue
        qw, qb, qmemory = quality

        def head(g, taps, x):
            v = patch_features(g, taps, x, whiten, a.chroma_weight)
            d2 = nearest_head(g, v, memory, proj_w, proj_b, MH, MW)
            g.op("Sqrt", [d2])
            g.nodes[-1].output[0] = "map"
            peak = g.op("ReduceMax", ["map"], axes=[1, 2, 3], keepdims=0)
            g.nodes.append(onnx.helper.make_node("Identity", [peak], ["score"]))
            st = global_stats(g, taps, x)
            q = g.op("Sqrt", [nearest_head(g, st, qmemory, qw, qb, 1, 1)])
            g.nodes.append(onnx.helper.make_node("Reshape", [q, g.const("q1", np.array([1], np.int64))],
                                                 ["quality"]))
            return [("score", [1]), ("map", [1, 1, MH, MW]), ("quality", [1])]
        return model.graph(head)

    # The quality statistics' scales: how far those of each half's crops lie
    # from the nearest input of the fit without that half (first pass, floors),
    # so that a statistic that moves with the content (the luma spread, the
    # share of black corners) weighs less than one that moves with the optics.
    first = {"a": fit([("a", fx_a)]), "b": fit([("b", fx_b)])}
    scale = new_content_scale([(first["a"][1], first["a"][2], feats["b"]["stats"]),
                               (first["b"][1], first["b"][2], feats["a"]["stats"])])
    print(f"quality scales from new content: {scale.round(3)}", flush=True)
    fits = {"a": (first["a"][0], fit_quality(first["a"][2], np.array(
                ["frames"] * len(fit_frames) + list(fx_a)), scale)),
            "b": (first["b"][0], fit_quality(first["b"][2], np.array(
                ["frames"] * len(fit_frames) + list(fx_b)), scale)),
            "final": fit([("real", real_fx), ("a", fx_a), ("b", fx_b)], scale)[:2]}
    final = final_head(*fits["final"])
    onnx.checker.check_model(final)
    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, "med8k-endoscope-patch.onnx")
    onnx.save(final, onnx_path)
    sess = session(onnx_path)
    cross = {k: session(final_head(*fits[k]).SerializeToString()) for k in ("a", "b")}

    # 4. Thresholds (no anomaly among these inputs, none fitted on): the frames of
    #    the threshold seeds (written model) and each half's crops scored by the
    #    model fitted without that half.
    names = ["score", "quality", "map"]
    calib = [run_batches(sess, frames[thr_frames], names),
             run_batches(cross["a"], half_b, names), run_batches(cross["b"], half_a, names)]
    cal = {n: np.concatenate([c[n].ravel() for c in calib]) for n in names}
    for lab, c in zip(["frames", "B by A", "A by B"], calib):
        print(f"  {lab}: score {np.percentile(c['score'], [50, 90, 99, 100]).round(2)} "
              f"quality {np.percentile(c['quality'], [50, 90, 99, 100]).round(2)}", flush=True)
    thr_score = float(np.percentile(cal["score"], a.percentile))
    thr_quality = float(np.percentile(cal["quality"], a.percentile))
    thr_map = float(np.percentile(cal["map"], 99.9))
    print(f"thresholds: score {thr_score:.3f} quality {thr_quality:.3f} map {thr_map:.3f}", flush=True)

    sidecar = {
        "contract": 2,
        "name": "med8k-endoscope-patch",
        "version": "1.1.0",
        "sha256": sha256_file(onnx_path),
        "input": {"name": "input", "shape": [1, 3, H, W], "layout": "NCHW", "source": "frame-ycbcr",
                  "mean": None, "std": None},
        "outputs": {"score": {"name": "score", "shape": [1]},
                    "map": {"name": "map", "shape": [1, 1, MH, MW]},
                    "quality": {"name": "quality", "shape": [1]}},
        "threshold": {"score": round(thr_score, 4), "map": round(thr_map, 4),
                      "quality": round(thr_quality, 4)},
        "bands_nm": None,
        "description": "PatchCore-style tissue anomaly (nearest normal patch of PP-OCRv4 detector "
                       "features + whitened chroma) and an image-quality alarm (nearest normal "
                       "frame of global feature statistics); synthetic and fixture data only, "
                       "not a medical device",
        "card": "MODEL_CARD.md",
    }
    with open(os.path.join(a.out, "med8k-endoscope-patch.json"), "w") as f:
        json.dump(sidecar, f, indent=2)
        f.write("\n")

    metrics = {
        "backbone": {"file": "ch_PP-OCRv4_det_infer.onnx", "wheel": BACKBONE_WHEEL,
                     "sha256": BACKBONE_SHA256, "taps": TAPS},
        "fit": {"frames": int(len(fit_frames)), "real_crops": len(real) + len(half_a) + len(half_b),
                "upside_down": a.flip, "memory": a.memory, "dims": a.dims,
                "chroma_weight": a.chroma_weight, "qdims": int(fits["final"][1][0].shape[0])},
        "thresholds_from": {"frames": int(len(thr_frames)), "seeds": [int(s) for s in thr_seeds],
                            "cross_fitted_crops": len(half_a) + len(half_b),
                            "percentile": a.percentile},
        "threshold": sidecar["threshold"],
        "onnx_bytes": os.path.getsize(onnx_path),
    }
    if a.dev:
        # The development kinds on the dev set, scored by the model fitted on the
        # frames and half A only: the dev set's crops come from half B's rows
        # (--real-region dev-check), tissue that model never saw.
        print("dev (the model fitted without half B):", flush=True)
        metrics["dev"] = evaluate(cross["a"], a.dev, thr_score, thr_quality)
    metrics["seconds"] = round(time.time() - t_start, 1)
    write_metrics(a.out, metrics)


def evaluate(sess, path, thr_score, thr_quality):
    """AUROC per kind on a `--kinds` dataset: each kind's altered inputs against
    the untouched normal inputs; tissue, quality and either-alarm scores
    (each divided by its threshold, the larger taken)."""
    with open(os.path.join(path, "dataset.json")) as f:
        index = json.load(f)
    frames = np.load(os.path.join(path, "endoscope_inputs.npy"), mmap_mode="r")
    out = {}
    fr = run_batches(sess, frames, ["score", "quality"])
    labels = np.array([it["anomalous"] for it in index["frames"]])
    out["generator_lesions_image_auroc"] = round(auroc(fr["score"].ravel(), labels), 4)
    neg = {"frame": fr, "frame_normal": ~labels}
    parts_s, parts_q = [fr["score"].ravel()[~labels]], [fr["quality"].ravel()[~labels]]
    if index.get("real"):
        rr = run_batches(sess, np.load(os.path.join(path, "real_inputs.npy"), mmap_mode="r"),
                         ["score", "quality"])
        parts_s.append(rr["score"].ravel())
        parts_q.append(rr["quality"].ravel())
    ns, nq = np.concatenate(parts_s), np.concatenate(parts_q)
    n_gen = len(parts_s[0])
    alt = index.get("altered", [])
    if alt:
        ar = run_batches(sess, np.load(os.path.join(path, "altered_inputs.npy"), mmap_mode="r"),
                         ["score", "quality"])
        ks, kq = ar["score"].ravel(), ar["quality"].ravel()
        kinds = np.array([x["kind"] for x in alt])
        on_gen = np.array([x["base"] == "frame" for x in alt])
        both = lambda s, q: np.maximum(s / thr_score, q / thr_quality)  # noqa: E731
        ne, ke = both(ns, nq), both(ks, kq)

        def auc(neg, pos):
            return round(auroc(np.r_[neg, pos], np.r_[np.zeros(len(neg), bool), np.ones(len(pos), bool)]), 4)
        per = {}
        for k in dict.fromkeys(kinds):
            m = kinds == k
            per[k] = {
                "tissue": auc(ns, ks[m]),
                "quality": auc(nq, kq[m]),
                "either": auc(ne, ke[m]),
                "gen": auc(ne[:n_gen], ke[m & on_gen]),
                "real": auc(ne[n_gen:], ke[m & ~on_gen]) if len(ne) > n_gen else None,
                "caught": round(float(np.mean((ks[m] > thr_score) | (kq[m] > thr_quality))), 3),
            }
            print(f"  {k:14s} {per[k]}", flush=True)
        out["kinds"] = per
        out["either_auroc_all_dev"] = auc(ne, ke)
    out["false_alarm_rate_normal"] = round(float(np.mean((ns > thr_score) | (nq > thr_quality))), 4)
    print(f"  lesions {out['generator_lesions_image_auroc']}, overall {out.get('either_auroc_all_dev')}, "
          f"false alarms {out['false_alarm_rate_normal']}", flush=True)
    return out


if __name__ == "__main__":
    main()
