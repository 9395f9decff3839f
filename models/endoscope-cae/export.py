#!/usr/bin/env python3
"""Write med8k-endoscope-cae's ONNX graph from its weights (numpy and onnx; no torch).

`train.py` calls `export` after training. Run on its own, this re-exports a written model:

    python3 models/endoscope-cae/export.py --from models/endoscope-cae/med8k-endoscope-cae.onnx \\
        --check /tmp/endo-eval [--out DIR]

reads the weights, whitening and normalisation of the `--from` file (and its sidecar), writes
the graph again with the operators this script uses now, and checks with onnxruntime that the
new file gives the same `score` and `map` as the old one on the frames of `--check` (a
`med8k samples dataset` directory) before it writes the sidecar (same thresholds, the new
SHA-256). Re-exporting the written file again gives the same bytes.

Graph (input [1,3,144,256] Y', Cb, Cr after the sidecar's (x - mean) / std):
  raw      x * std + mean (1x1 Convs), back to code / (2^bits - 1)
  r        (Cb - 0.5, Cr - 0.5) / (Y' + 0.1)
  rn       wr r + br (1x1 Conv)
  encoder  2x2 mean (a depthwise Conv, stride 2) -> Conv3x3/2 -> Conv3x3/2 -> Conv3x3/2 -> Conv1x1
  decoder  four ConvTranspose2x2/2 (each a 1x1 Conv + DepthToSpace) and a Conv3x3
  d        rn - reconstruction, box mean over k x k (padding excluded)
  map      |wh d + bh|^2, box mean over 5x5 (padding excluded)
  score    max over the frame of the 9x9 box mean of map
Every box mean is two depthwise Convs and a Mul by a constant edge correction (common.Graph.box):
the function of the AveragePools with count_include_pad=0 this model was trained with, which
tract ran several times slower.
"""

import argparse
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import Graph, sha256_file, write_sidecar  # noqa: E402

NAME = "med8k-endoscope-cae"
H, W = 144, 256
SMOOTH = 5
SCORE_K = 9
OPSET = 13
# The layers in graph order: (name, transposed, ReLU after).
LAYERS = [("e1", False, True), ("e2", False, True), ("e3", False, True), ("e4", False, False),
          ("d1", True, True), ("d2", True, True), ("d3", False, True), ("d4", True, True),
          ("d5", True, False)]


def conv(g, x, layer, relu, transpose):
    """One layer; `layer` = (weight in PyTorch's layout, bias, stride, padding)."""
    w, b, stride, pad = layer
    w, b = np.asarray(w, np.float32), np.asarray(b, np.float32)
    if transpose:
        # ConvTranspose 2x2 stride 2 written as a 1x1 Conv to 4 Cout channels + DepthToSpace
        # (CRD): the same numbers, and tract runs it faster than its ConvTranspose.
        assert w.shape[2:] == (2, 2) and stride == 2
        ci, co = w.shape[:2]
        wc = w.transpose(1, 2, 3, 0).reshape(co * 4, ci, 1, 1)
        y = g.op("Conv", [x, g.const("w", wc), g.const("b", np.repeat(b, 4))], kernel_shape=[1, 1])
        y = g.op("DepthToSpace", [y], blocksize=2, mode="CRD")
    else:
        k = list(w.shape[2:])
        y = g.op("Conv", [x, g.const("w", w), g.const("b", b)], kernel_shape=k,
                 strides=[stride, stride], pads=[pad] * 4)
    return g.op("Relu", [y]) if relu else y


def export(p, path):
    """Write the graph of parameters `p` (dict: mean, std, wr, br, k, wh, bh, and layers:
    {name: (w, b, stride, pad)}) to `path`; returns the ModelProto."""
    mean, std = np.asarray(p["mean"], np.float32), np.asarray(p["std"], np.float32)
    g = Graph()
    wr, br = np.asarray(p["wr"], np.float32), np.asarray(p["br"], np.float32)
    # raw = x * std + mean (element-wise), back to code / 1023; then
    # rn = wr (Cb - 0.5, Cr - 0.5) / (Y' + 0.1) + br: the whitening folded into
    # the one 1x1 Conv that makes the numerator (tract packs the input of every
    # Conv; the denominator is element-wise).
    raw = g.op("Add", [g.op("Mul", ["input", g.const("std", std[None, :, None, None])]),
                       g.const("mean", mean[None, :, None, None])])
    wn = np.zeros((2, 3, 1, 1), dtype=np.float32)
    wn[:, 1:3, 0, 0] = wr
    num = g.op("Conv", [raw, g.const("chroma_w", wn), g.const("chroma_b", -0.5 * wr.sum(1))])
    y = g.op("Slice", [raw, g.const("y0", np.array([0], np.int64)), g.const("y1", np.array([1], np.int64)),
                       g.const("ya", np.array([1], np.int64))])
    den = g.op("Add", [y, g.const("luma_b", np.array(0.1, np.float32))])
    rn = g.op("Add", [g.op("Div", [num, den], base="hue"), g.const("r_bias", br[None, :, None, None])],
              base="rn")
    # The 2x2 mean before the first layer, folded into it: a 3x3 stride-2 Conv of
    # the means is a 6x6 stride-4 Conv of rn (each weight spread over its 2x2
    # block, / 4), padded 2 before and none after: the same sums.
    w1, b1, stride1, pad1 = p["layers"]["e1"]
    assert np.asarray(w1).shape[2:] == (3, 3) and stride1 == 2 and pad1 == 1
    w6 = np.repeat(np.repeat(np.asarray(w1, np.float32), 2, axis=2), 2, axis=3) / 4
    h = g.op("Relu", [g.op("Conv", [rn, g.const("w", w6), g.const("b", np.asarray(b1, np.float32))],
                           kernel_shape=[6, 6], strides=[4, 4], pads=[2, 2, 0, 0])])
    for name, transpose, relu in LAYERS[1:]:
        h = conv(g, h, p["layers"][name], relu, transpose)
    d = g.op("Sub", [rn, h])
    k = p["k"]
    if k:
        d = g.box(d, k, 2, H, W)
    z = g.op("Conv", [d, g.const("whiten", np.asarray(p["wh"], np.float32).reshape(2, 2, 1, 1)),
                      g.const("whiten_b", np.asarray(p["bh"], np.float32))], kernel_shape=[1, 1])
    err = g.op("ReduceSumSquare", [z], axes=[1], keepdims=1)
    g.box(err, SMOOTH, 1, H, W)
    g.nodes[-1].output[0] = "map"
    s = g.box("map", SCORE_K, 1, H, W)
    s = g.op("ReduceMax", [s], axes=[1, 2, 3], keepdims=0)
    g.nodes.append(helper.make_node("Reshape", [s, g.const("shape", np.array([1], dtype=np.int64))],
                                    ["score"]))
    graph = helper.make_graph(
        g.nodes, "med8k_endoscope_cae",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("map", TensorProto.FLOAT, [1, 1, H, W])],
        g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="med8k models/endoscope-cae/train.py")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    return m


def params_from_onnx(path):
    """The parameters of a written model (either export: AveragePool or Conv box means)."""
    m = onnx.load(path)
    with open(os.path.splitext(path)[0] + ".json") as f:
        sidecar = json.load(f)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    by_prefix = {}
    for name, v in inits.items():
        by_prefix.setdefault(name.rsplit("_", 1)[0], []).append(v)
    consumers = {}
    for n in m.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    layers = []
    for n in m.graph.node:
        if n.op_type != "Conv" or not n.input[1].startswith("w_"):
            continue
        w, b = inits[n.input[1]], inits[n.input[2]]
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if any(c.op_type == "DepthToSpace" for c in consumers.get(n.output[0], [])):
            co, ci = w.shape[0] // 4, w.shape[1]
            layers.append((w.reshape(co, 2, 2, ci).transpose(3, 0, 1, 2), b[::4], 2, 0))
        elif w.shape[2:] == (6, 6):
            # The first layer with the 2x2 mean folded in (see `export`).
            layers.append((w[:, :, ::2, ::2] * 4, b, 2, 1))
        else:
            layers.append((w, b, attrs.get("strides", [1])[0], attrs.get("pads", [0])[0]))
    if len(layers) != len(LAYERS):
        sys.exit(f"{path}: found {len(layers)} layers, the model has {len(LAYERS)}")
    # The residual box: the first mean after the Sub of rn and the reconstruction.
    sub = next(n for n in m.graph.node if n.op_type == "Sub" and n.input[0].startswith("rn_"))
    nxt = consumers[sub.output[0]][0]
    k = 0
    if nxt.op_type == "AveragePool" or (nxt.op_type == "Conv" and nxt.input[1].startswith("box_w")):
        k = max(next(helper.get_attribute_value(a) for a in nxt.attribute if a.name == "kernel_shape"))
    mean = np.array(sidecar["input"]["mean"], np.float32)
    std = np.array(sidecar["input"]["std"], np.float32)
    if "r_whiten" in by_prefix:
        wr, br = by_prefix["r_whiten"][0].reshape(2, 2), by_prefix["r_bias"][0]
    else:
        # The whitening folded into the numerator's Conv (see `export`).
        wr = by_prefix["chroma_w"][0].reshape(2, 3)[:, 1:3]
        br = by_prefix["r_bias"][0].reshape(2)
    return {
        "mean": mean, "std": std, "wr": wr, "br": br,
        "wh": by_prefix["whiten"][0].reshape(2, 2), "bh": by_prefix["whiten_b"][0],
        "k": int(k), "layers": {name: layer for (name, _, _), layer in zip(LAYERS, layers)},
    }, sidecar


def compare(old, new, frames, mean, std):
    """Largest |score| and |map| differences between two files over `frames` (onnxruntime)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    a = ort.InferenceSession(old, so, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(new, so, providers=["CPUExecutionProvider"])
    ds = dm = scale = 0.0
    for f in frames:
        x = ((np.asarray(f, np.float32) - mean[:, None, None]) / std[:, None, None])[None]
        sa, ma = a.run(["score", "map"], {"input": x})
        sb, mb = b.run(["score", "map"], {"input": x})
        ds = max(ds, float(np.abs(sa - sb).max()))
        dm = max(dm, float(np.abs(ma - mb).max()))
        scale = max(scale, float(np.abs(ma).max()))
    return ds, dm, scale


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", required=True, help="a written med8k-endoscope-cae .onnx")
    ap.add_argument("--check", required=True, help="a `med8k samples dataset` directory")
    ap.add_argument("--frames", type=int, default=64, help="frames of --check to compare on")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()
    p, sidecar = params_from_onnx(a.src)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, NAME + ".onnx")
    old = open(a.src, "rb").read()
    tmp = path + ".new"
    export(p, tmp)
    x = np.load(os.path.join(a.check, "endoscope_inputs.npy"), mmap_mode="r")
    step = max(1, len(x) // a.frames)
    ds, dm, scale = compare(old, tmp, x[::step][: a.frames], p["mean"], p["std"])
    print(f"new graph against {a.src} on {min(a.frames, len(x[::step]))} frames: "
          f"max |score diff| {ds:.3g}, max |map diff| {dm:.3g} (map up to {scale:.4g})")
    if dm > 1e-4 * max(1.0, scale) or ds > 1e-4 * max(1.0, scale):
        os.remove(tmp)
        sys.exit("the re-exported graph computes something else; nothing written")
    os.replace(tmp, path)
    write_sidecar(path, sidecar)
    print(f"wrote {path} ({os.path.getsize(path)} bytes, SHA-256 {sha256_file(path)})")


if __name__ == "__main__":
    main()
