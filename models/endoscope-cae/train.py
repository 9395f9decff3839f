"""Train and export med8k's convolutional endoscope anomaly detector (med8k-endoscope-cae).

A small convolutional autoencoder, trained from scratch with PyTorch (CPU) on the NORMAL frames
of the sample generator, then written as a fixed-shape ONNX graph with the onnx helper API (the
same operators in the same order as the PyTorch forward pass; the script checks that
onnxruntime reproduces the PyTorch outputs before it writes anything).

Graph (input [1,3,144,256] Y', Cb, Cr after the sidecar's (x - mean) / std):
  raw      x * std + mean (1x1 Convs), back to code / (2^bits - 1)
  r        (Cb - 0.5, Cr - 0.5) / (Y' + 0.1): chroma with the illumination divided out
  rn       wr r + br (1x1 Conv): r whitened with its mean/covariance over normal fitting frames
  encoder  2x2 mean -> Conv3x3/2 (2->C1) -> Conv3x3/2 (C1->C2) -> Conv3x3/2 (C2->C2)
           -> Conv1x1 (C2->Z), ReLU after every Conv but the last: a Z x 9 x 16 code
  decoder  ConvTranspose2x2/2 (Z->C2) -> ConvTranspose2x2/2 (C2->C1) -> Conv3x3 (C1->C1)
           -> ConvTranspose2x2/2 (C1->C1) -> ConvTranspose2x2/2 (C1->2), ReLU between
           (each ConvTranspose exported as a 1x1 Conv + DepthToSpace, the same numbers)
  d        rn - reconstruction, box-averaged over 7x7 (--resid-box)
  err      |wh d + bh|^2: d whitened with its mean/covariance over normal fitting frames
  map      err box-averaged over 5x5 (separable, padding excluded)
  score    max over the frame of the 9x9 box mean of map (ReduceMax, Reshape)
  Every mean is written as depthwise Convs (export.py, common.Graph.box): the function of the
  AveragePools with count_include_pad=0 that torch trains with; tract ran AveragePool slowly.

Training: mean squared reconstruction error of rn on the normal frames of the training seeds
(all but the last VAL_SEEDS of them), 1500 Adam steps of 8 frames (one-cycle learning rate, peak
2e-3), random flips, fixed seeds (torch, numpy), 2 CPU threads: about 5 minutes on a 2-core VM.
Denoising objective (default; --no-denoise turns it off): random soft discs of shifted chroma
are pasted onto the normal input and the target stays the clean frame, so the decoder learns to
put normal colour back. The discs are synthetic, not the generator's lesions: no anomalous frame
is ever used for training. The normal frames of the held-out training seeds give the
thresholds (99th percentile of scores, 99.9th of map pixels); the evaluation seeds are used only
for the reported metrics.

Usage (from the repository root, with a built med8k):
  cargo build -p med8k
  target/debug/med8k samples dataset --out /tmp/endo-train --seeds 1000..1030 --frames 48 --step 3 --size 1024x576
  target/debug/med8k samples dataset --out /tmp/endo-eval  --seeds 2000..2010 --frames 48 --step 3 --size 1024x576
  python3 -m pip install -r models/requirements.txt -r models/requirements-train.txt
  python3 models/endoscope-cae/train.py --train /tmp/endo-train --eval /tmp/endo-eval

export.py writes the graph; on its own it re-exports a written model without torch.
"""

import argparse
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import auroc, frame_sidecar, load_dataset, write_metrics, write_sidecar  # noqa: E402
from export import LAYERS, export  # noqa: E402

NAME = "med8k-endoscope-cae"
VERSION = "1.0.0"
H, W = 144, 256
DENOM = 0.1
SMOOTH = 5
SCORE_K = 9
OPSET = 13
SEED = 8
VAL_SEEDS = 4


# ----------------------------------------------------------------------------- model (PyTorch)

class CAE(nn.Module):
    def __init__(self, c1=16, c2=32, z=4):
        super().__init__()
        self.e1 = nn.Conv2d(2, c1, 3, 2, 1)
        self.e2 = nn.Conv2d(c1, c2, 3, 2, 1)
        self.e3 = nn.Conv2d(c2, c2, 3, 2, 1)
        self.e4 = nn.Conv2d(c2, z, 1)
        self.d1 = nn.ConvTranspose2d(z, c2, 2, 2)
        self.d2 = nn.ConvTranspose2d(c2, c1, 2, 2)
        self.d3 = nn.Conv2d(c1, c1, 3, 1, 1)
        self.d4 = nn.ConvTranspose2d(c1, c1, 2, 2)
        self.d5 = nn.ConvTranspose2d(c1, 2, 2, 2)

    def forward(self, rn):
        h = F.avg_pool2d(rn, 2)
        h = F.relu(self.e1(h))
        h = F.relu(self.e2(h))
        h = F.relu(self.e3(h))
        h = self.e4(h)
        h = F.relu(self.d1(h))
        h = F.relu(self.d2(h))
        h = F.relu(self.d3(h))
        h = F.relu(self.d4(h))
        return self.d5(h)


def box(t, k):
    """k x k box mean, padding excluded (matches the ONNX AveragePool with count_include_pad=0)."""
    return F.avg_pool2d(t, k, 1, k // 2, count_include_pad=False)


def residual(model, rn, k):
    """rn - reconstruction, box-averaged over k x k (k = 0: not averaged)."""
    d = rn - model(rn)
    return box(d, k) if k else d


def error_map(model, rn, k, wh, bh):
    """Whitened squared residual (z = wh d + bh, sum z^2), box-averaged over SMOOTH x SMOOTH."""
    z = F.conv2d(residual(model, rn, k), torch.from_numpy(wh).reshape(2, 2, 1, 1), torch.from_numpy(bh))
    return box((z ** 2).sum(1, keepdim=True), SMOOTH)


# ----------------------------------------------------------------------------- data

def chroma(x):
    """r = (Cb - 0.5, Cr - 0.5) / (Y' + 0.1) of raw Y'CbCr frames [N,3,H,W] (numpy, float32)."""
    x = np.asarray(x, dtype=np.float32)
    return ((x[:, 1:3] - 0.5) / (x[:, 0:1] + DENOM)).astype(np.float32)


def to_rn(r, wr, br):
    """rn = wr r + br per pixel (the graph's 1x1 Conv)."""
    return (np.einsum("ij,njhw->nihw", wr, r) + br[None, :, None, None]).astype(np.float32)


def chroma_all(x, idx, bs=64):
    return np.concatenate([chroma(x[idx[i:i + bs]]) for i in range(0, len(idx), bs)])


def blobs(rng, b, n_max=3):
    """Random soft discs of shifted normalised chroma, [b,2,H,W] (denoising corruption)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = np.zeros((b, 2, H, W), dtype=np.float32)
    for i in range(b):
        for _ in range(rng.integers(0, n_max + 1)):
            cy, cx = rng.uniform(0, H), rng.uniform(0, W)
            rad = rng.uniform(4, 22)
            soft = np.clip((rad - np.hypot(yy - cy, xx - cx)) / 2.0, 0, 1)
            shift = rng.normal(0, 1, 2).astype(np.float32)
            shift *= rng.uniform(2, 8) / (np.linalg.norm(shift) + 1e-6)
            out[i] += shift[:, None, None] * soft
    return out


# ----------------------------------------------------------------------------- ONNX export

def params(model, mean, std, wr, br, k, wh, bh):
    """What export.export writes: the trained layers in PyTorch's layout, and the
    normalisation and whitening around them."""
    layers = {}
    for name, _, _ in LAYERS:
        m = getattr(model, name)
        layers[name] = (m.weight.detach().numpy(), m.bias.detach().numpy(), m.stride[0], m.padding[0])
    return {"mean": mean, "std": std, "wr": wr, "br": br, "k": k, "wh": wh, "bh": bh, "layers": layers}


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="dataset dir of the training seeds")
    ap.add_argument("--eval", required=True, help="dataset dir of held-out seeds")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--z", type=int, default=4, help="code channels")
    ap.add_argument("--c1", type=int, default=16)
    ap.add_argument("--c2", type=int, default=32)
    ap.add_argument("--no-denoise", dest="denoise", action="store_false")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--resid-box", type=int, default=7, help="box size for the residual (0: none)")
    ap.add_argument("--no-whiten", dest="whiten", action="store_false")
    ap.add_argument("--no-input-whiten", dest="input_whiten", action="store_false")
    ap.add_argument("--save-state", help="write the trained PyTorch weights here (optional)")
    ap.add_argument("--load-state", help="skip training, load these PyTorch weights (for re-export)")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(SEED)
    t0 = time.time()

    x, _, items = load_dataset(args.train, "endoscope")
    seeds = sorted({it["seed"] for it in items})
    val_seeds = set(seeds[-VAL_SEEDS:])
    fit = np.array([i for i, it in enumerate(items) if not it["anomalous"] and it["seed"] not in val_seeds])
    val = np.array([i for i, it in enumerate(items) if not it["anomalous"] and it["seed"] in val_seeds])
    print(f"train: {len(items)} frames; fit on {len(fit)} normal frames of seeds {seeds[0]}..={seeds[-VAL_SEEDS - 1]}, "
          f"thresholds from {len(val)} normal frames of seeds {sorted(val_seeds)}")

    # The sidecar's input normalisation: per channel over normal fitting frames.
    sample = np.asarray(x[fit[:: max(1, len(fit) // 64)]], dtype=np.float64)
    mean = sample.mean(axis=(0, 2, 3)).astype(np.float32)
    std = sample.std(axis=(0, 2, 3)).astype(np.float32)
    mean, std = np.round(mean, 6), np.round(std, 6)  # exactly the sidecar's values

    r = chroma_all(x, fit)
    # rn = wr r + br: r whitened with the mean and covariance of normal fitting frames (normal hue
    # varies almost along one line, Cb down as Cr goes up; lesions leave that line), or (with
    # --no-input-whiten) standardised per channel.
    rf = r.transpose(1, 0, 2, 3).reshape(2, -1)
    rmean = rf.mean(1, dtype=np.float64)
    rcov = np.cov(rf[:, ::7].astype(np.float64))
    del rf
    wr = np.linalg.inv(np.linalg.cholesky(rcov)) if args.input_whiten else np.diag(1 / np.sqrt(np.diag(rcov)))
    wr = wr.astype(np.float32)
    br = (-(wr.astype(np.float64) @ rmean)).astype(np.float32)
    print(f"r mean {rmean}, cov {rcov.ravel()}, corr {rcov[0, 1] / np.sqrt(rcov[0, 0] * rcov[1, 1]):.4f}")
    rn = torch.from_numpy(to_rn(r, wr, br))
    del r

    model = CAE(args.c1, args.c2, args.z)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params} parameters, denoise={args.denoise}")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=max(1, args.steps), pct_start=0.1)
    t_train = time.time()
    model.train()
    if args.load_state:
        model.load_state_dict(torch.load(args.load_state))
        args.steps = 0
    for step in range(args.steps):
        idx = torch.from_numpy(rng.choice(len(rn), args.batch, replace=False))
        target = rn[idx]
        # Random horizontal/vertical flips (the scene has no preferred orientation).
        if rng.random() < 0.5:
            target = target.flip(3)
        if rng.random() < 0.5:
            target = target.flip(2)
        inp = target + torch.from_numpy(blobs(rng, args.batch)) if args.denoise else target
        loss = F.mse_loss(model(inp), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"  step {step:5d}  loss {loss.item():.4f}  {time.time() - t_train:.0f} s", flush=True)
    train_s = time.time() - t_train
    if args.save_state:
        torch.save(model.state_dict(), args.save_state)
    model.eval()

    # Whitening of the (box-averaged) residual: mean and covariance over normal fitting frames.
    k = args.resid_box
    wh, bh = np.eye(2, dtype=np.float64), np.zeros(2)
    if args.whiten:
        n, s1, s2 = 0, np.zeros(2), np.zeros((2, 2))
        with torch.no_grad():
            for i in range(0, len(rn), 4 * args.batch):
                d = residual(model, rn[i:i + 4 * args.batch], k).numpy()
                d = d.transpose(1, 0, 2, 3).reshape(2, -1).astype(np.float64)
                n += d.shape[1]
                s1 += d.sum(1)
                s2 += d @ d.T
        mu = s1 / n
        cov = s2 / n - np.outer(mu, mu) + np.eye(2) * 1e-10
        wh = np.linalg.inv(np.linalg.cholesky(cov))
        bh = -(wh @ mu)
        print(f"residual mean {mu}, cov {cov.ravel()}")
    wh, bh = wh.astype(np.float32), bh.astype(np.float32)

    path = os.path.join(args.out, NAME + ".onnx")
    export(params(model, mean, std, wr, br, k, wh, bh), path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

    def norm(frames):
        return ((np.asarray(frames, dtype=np.float32) - mean[None, :, None, None]) / std[None, :, None, None])

    # onnxruntime must reproduce the PyTorch forward pass.
    with torch.no_grad():
        probe = norm(x[val[:2]])
        for i in range(2):
            rr = chroma(probe[i:i + 1] * std[None, :, None, None] + mean[None, :, None, None])
            tmap = error_map(model, torch.from_numpy(to_rn(rr, wr, br)), k, wh, bh)
            _, omap = sess.run(["score", "map"], {"input": probe[i:i + 1]})
            diff = float(np.abs(omap - tmap.numpy()).max())
            assert diff < 1e-3 * max(1.0, float(tmap.abs().max())), f"onnxruntime differs from torch by {diff}"

    def run_all(frames_x, idx):
        scores, maps = [], []
        for i in idx:
            sc, mp = sess.run(["score", "map"], {"input": norm(frames_x[i:i + 1])})
            scores.append(float(sc[0]))
            maps.append(mp[0, 0])
        return np.array(scores), np.stack(maps)

    vs, vm = run_all(x, val)
    thr_score = float(np.percentile(vs, 99))
    thr_map = float(np.percentile(vm, 99.9))
    del vm

    ex, emaps, eitems = load_dataset(args.eval, "endoscope")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s1 = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    b = norm(ex[0:1])
    for _ in range(5):
        s1.run(None, {"input": b})
    t1 = time.time()
    reps = 50
    for _ in range(reps):
        s1.run(None, {"input": b})
    per_frame_ms = 1000 * (time.time() - t1) / reps

    scores, pmaps = run_all(ex, range(len(eitems)))
    labels = np.array([it["anomalous"] for it in eitems])
    truth = np.asarray(emaps)[:, 0] >= 0.5
    img = auroc(scores, labels)
    pix = auroc(pmaps, truth)
    by_kind = {}
    for kind in ("raised_red_patch", "bleeding"):
        sel = np.array([(not it["anomalous"]) or kind in it["lesions"] for it in eitems])
        by_kind[kind] = round(auroc(scores[sel], labels[sel]), 4)
    # Operating point on the evaluation seeds at the held-out thresholds.
    tpr = float((scores[labels] > thr_score).mean())
    fpr = float((scores[~labels] > thr_score).mean())
    print(f"eval: {len(eitems)} frames ({int(labels.sum())} anomalous): image AUROC {img:.4f} {by_kind}, "
          f"pixel AUROC {pix:.4f}; at the score threshold TPR {tpr:.3f} FPR {fpr:.3f}; "
          f"onnxruntime 1 thread {per_frame_ms:.2f} ms/frame")

    fit_seeds = sorted({items[i]["seed"] for i in fit})
    eval_seeds = sorted({it["seed"] for it in eitems})
    sidecar = frame_sidecar(
        NAME, VERSION, [1, 3, H, W], mean, std, thr_score, thr_map,
        (
            "Reference endoscope anomaly detector for med8k's synthetic scenes: a small convolutional "
            "autoencoder of luma-normalised chroma trained from scratch on normal frames of sample seeds "
            f"{fit_seeds[0]}..={fit_seeds[-1]}; map = smoothed squared reconstruction error, "
            "score = its maximum 9x9 mean. Not a medical device."),
    )
    write_sidecar(path, sidecar)
    metrics = {
        "fit_seeds": fit_seeds, "threshold_seeds": sorted(val_seeds), "eval_seeds": eval_seeds,
        "fit_normal_frames": int(len(fit)), "threshold_normal_frames": int(len(val)),
        "eval_frames": len(eitems), "eval_anomalous_frames": int(labels.sum()),
        "image_auroc": round(img, 4), "image_auroc_by_kind": by_kind, "pixel_auroc": round(pix, 4),
        "eval_tpr_at_threshold": round(tpr, 4), "eval_fpr_at_threshold": round(fpr, 4),
        "threshold_score": thr_score, "threshold_map": thr_map,
        "params": params, "onnx_bytes": os.path.getsize(path),
        "hyper": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "z": args.z, "c1": args.c1,
                  "c2": args.c2, "denoise": args.denoise, "resid_box": k, "whiten": args.whiten,
                  "input_whiten": args.input_whiten,
                  "seed": SEED, "threads": args.threads},
        "train_seconds": round(train_s, 1), "total_seconds": round(time.time() - t0, 1),
        "onnxruntime_ms_per_frame_1thread": round(per_frame_ms, 2),
        "torch": torch.__version__,
    }
    write_metrics(args.out, metrics)


if __name__ == "__main__":
    main()
