"""Helpers shared by the med8k model scripts: dataset loading, AUROC, sidecars."""

import hashlib
import json
import os

import numpy as np


def load_dataset(path, what="endoscope"):
    """Arrays and index written by `med8k samples dataset --out PATH`.

    what="endoscope": (inputs [N,3,144,256], maps [N,1,144,256], frame items)
    what="cubes":     (tiles [T,B,S,S], masks [T,1,S,S], tile items, bands_nm)
    Arrays are memory-mapped.
    """
    with open(os.path.join(path, "dataset.json")) as f:
        index = json.load(f)
    if what == "endoscope":
        x = np.load(os.path.join(path, "endoscope_inputs.npy"), mmap_mode="r")
        m = np.load(os.path.join(path, "endoscope_maps.npy"), mmap_mode="r")
        return x, m, index["frames"]
    x = np.load(os.path.join(path, "cube_tiles.npy"), mmap_mode="r")
    m = np.load(os.path.join(path, "cube_masks.npy"), mmap_mode="r")
    return x, m, index["tiles"], index["bands_nm"]


def auroc(scores, labels):
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels, dtype=bool).ravel()
    pos = int(labels.sum())
    neg = labels.size - pos
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(s.size, dtype=np.float64)
    # Average ranks over runs of equal scores.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], s.size]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_sidecar(onnx_path, sidecar):
    """Write NAME.json beside NAME.onnx with the .onnx bytes' SHA-256 filled in."""
    sidecar = dict(sidecar)
    sidecar["sha256"] = sha256_file(onnx_path)
    out = os.path.splitext(onnx_path)[0] + ".json"
    with open(out, "w") as f:
        json.dump(sidecar, f, indent=2)
        f.write("\n")
    return out


class Graph:
    """An ONNX graph built node by node: unique names, constants, ops, and box
    means written as depthwise Convs (tract runs AveragePool several times
    slower than a Conv computing the same numbers; see the model cards)."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, array):
        from onnx import numpy_helper

        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op, inputs, base=None, **attrs):
        from onnx import helper

        out = self.name(base or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def mean_pool(self, x, channels, k, stride):
        """ONNX AveragePool k x k, stride `stride`, no padding, on `channels`
        channels, as a depthwise Conv of constant weights 1/k^2 (the same
        function: every window lies inside the picture)."""
        w = np.full((channels, 1, k, k), 1.0 / (k * k), np.float32)
        return self.op("Conv", [x, self.const("mean_w", w)], group=channels, kernel_shape=[k, k],
                       strides=[stride, stride], pads=[0, 0, 0, 0])

    def box(self, x, k, channels, height, width):
        """Separable k x k box mean with the padding excluded (the function of
        two 1-D AveragePools with count_include_pad=0: near the edges the mean
        of the pixels inside) on a [1, channels, height, width] tensor: each
        1-D mean a depthwise Conv of weights 1/k over zero padding and a Mul by
        the constant k / (pixels inside the window), a row [1,1,1,width] then a
        column [1,1,height,1], which is 1 away from the edges."""
        r = k // 2

        def inside(n):
            i = np.arange(n)
            return k / (np.minimum(i + r, n - 1) - np.maximum(i - r, 0) + 1)

        w = np.full((channels, 1, 1, k), 1.0 / k, np.float32)
        h = self.op("Conv", [x, self.const("box_w", w)], group=channels, kernel_shape=[1, k],
                    strides=[1, 1], pads=[0, r, 0, r])
        h = self.op("Mul", [h, self.const("box_edge", inside(width).astype(np.float32)[None, None, None])])
        v = self.op("Conv", [h, self.const("box_w", w.reshape(channels, 1, k, 1))], group=channels,
                    kernel_shape=[k, 1], strides=[1, 1], pads=[r, 0, r, 0])
        return self.op("Mul", [v, self.const("box_edge", inside(height).astype(np.float32)[None, None, :, None])])


def frame_sidecar(name, version, shape, mean, std, thr_score, thr_map, description):
    """The contract of a frame model (`frame-ycbcr` input of `shape` [1,3,H,W],
    outputs score [1] and map [1,1,H,W]); `write_sidecar` fills in the SHA-256."""
    h, w = shape[2], shape[3]
    return {
        "contract": 1,
        "name": name,
        "version": version,
        "sha256": "",
        "input": {"name": "input", "shape": list(shape), "layout": "NCHW", "source": "frame-ycbcr",
                  "mean": [round(float(v), 6) for v in mean], "std": [round(float(v), 6) for v in std]},
        "outputs": {"score": {"name": "score", "shape": [1]}, "map": {"name": "map", "shape": [1, 1, h, w]}},
        "threshold": {"score": round(thr_score, 4), "map": round(thr_map, 4)},
        "bands_nm": None,
        "description": description,
        "card": "MODEL_CARD.md",
    }


def write_metrics(out_dir, metrics):
    """Write `metrics.json` in `out_dir` and print it on one line."""
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
    print(json.dumps(metrics))

