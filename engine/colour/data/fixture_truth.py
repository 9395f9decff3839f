#!/usr/bin/env python3
"""Ground truth for the med8k 7-band fixtures, re-derived from their spectra.

Run from the repository root (about 3 minutes):

    python3 engine/colour/data/fixture_truth.py

Needs samples/fixtures/requirements.txt (+ libopenslide0) installed, exactly
as derive.py does; it imports samples/fixtures/derive.py read-only and runs
its own code for every step, so the spectra are the ones the cubes were made
from.  Like derive.py it uses only data inside installed wheels and refuses to
open a network connection.

What it does:
  1. Re-solves derive.py's 33^3 lattice (derive.build_lut) while recording the
     non-negative weights w of the measured spectra at every node.
  2. Rebuilds the same measured dictionary on 380-780 nm at 5 nm (linear
     interpolation, end values held: the med8k-colour resampling rule) and
     checks that it equals derive.py's dictionary at 400, 410, ..., 700 nm.
     A node's full spectrum is D_full @ w.
  3. For each fixture: per source pixel, trilinear interpolation of the node
     spectra (derive.lookup), then derive.downscale, i.e. the exact chain
     of the cube.  It checks that the 7 bands of these spectra reproduce the
     committed .raw (to 1 LSB) before writing anything.
  4. Writes, next to each fixture, for the pixels at rows 8, 24, 40, ... and
     columns 8, 24, 40, ... (a 16-pixel grid):
       <name>.truth.csv      reflectance, 380-780 nm at 5 nm; first column
                             wavelength, one column per pixel named r<row>c<col>
                             (the format of Reflectances::from_csv);
       <name>.truth_xyz.csv  row, col and CIE XYZ (Y of the perfect white = 1)
                             under D65, D50 and A, CIE 1931 2 deg, computed by
                             colour-science's sd_to_XYZ(method="ASTM E308") from
                             the unrounded spectra.
"""

import hashlib
import importlib.util
import os
import socket
import sys
import warnings


def _no_network(*_args, **_kwargs):
    raise SystemExit("fixture_truth.py: network access attempted; refusing")


socket.socket.connect = _no_network  # type: ignore[method-assign]
socket.socket.connect_ex = _no_network  # type: ignore[method-assign]
socket.create_connection = _no_network  # type: ignore[assignment]
socket.getaddrinfo = _no_network  # type: ignore[assignment]
warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
FIXTURES = os.path.join(ROOT, "samples", "fixtures")

# derive.py pins BLAS threads itself on import.
_spec = importlib.util.spec_from_file_location("derive", os.path.join(FIXTURES, "derive.py"))
derive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(derive)

import numpy as np  # noqa: E402
import colour  # noqa: E402
from colour.quality.cfi2017 import load_TCS_CIE2017  # noqa: E402
from colour.quality.datasets import SDS_TCS, SDS_VS  # noqa: E402

PINS = {"colour": (colour, "0.4.7"), "numpy": (np, "2.4.6")}
GRID = np.arange(380, 781, 5, dtype=np.float64)   # med8k-colour's working grid
STRIDE, OFFSET = 16, 8
ILLUMINANTS = ["D65", "D50", "A"]


def check_pins():
    for name, (module, want) in PINS.items():
        if module.__version__ != want:
            raise SystemExit(f"{name} {module.__version__} installed, {want} required")


def full_dictionary(labels):
    """The dictionary columns named by derive's labels, on GRID."""
    full = {}

    def add(set_name, mapping):
        for key in mapping.keys():
            sd = mapping[key]
            full[f"{set_name}/{key}"] = np.interp(GRID, sd.wavelengths, sd.values)

    checkers = colour.SDS_COLOURCHECKERS
    add("BabelColor Average", checkers["BabelColor Average"])
    add("ColorChecker N Ohta", checkers["ColorChecker N Ohta"])
    add("PMC", checkers["PMC"])
    add("CIE 1995 TCS", SDS_TCS["CIE 1995"])
    add("NIST CQS 9.0 VS", SDS_VS["NIST CQS 9.0"])
    tcs17 = load_TCS_CIE2017(colour.SpectralShape(380, 780, 5))
    for i, lab in enumerate(tcs17.labels):
        full[f"CIE 2017 TCS/{lab}"] = np.interp(GRID, tcs17.wavelengths, tcs17.values[:, i])
    return np.clip(np.stack([full[lab] for lab in labels], axis=1), 0.0, None)


def xyz_astm_e308(S, illuminant):
    """XYZ (Y of white = 1) of the columns of S (spectra on GRID) by
    colour-science's sd_to_XYZ(method="ASTM E308"), CIE 1931 2 deg."""
    cmfs = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"]
    ill = colour.SDS_ILLUMINANTS[illuminant]
    return np.array([
        colour.sd_to_XYZ(colour.SpectralDistribution(S[:, k], GRID), cmfs, ill,
                         method="ASTM E308") / 100
        for k in range(S.shape[1])
    ])


def solve_lattice(D, A):
    """derive.build_lut, recording each node's NNLS weights."""
    recorded = []
    real_nnls = derive.nnls

    def recording_nnls(*args, **kwargs):
        x, rnorm = real_nnls(*args, **kwargs)
        recorded.append(np.array(x[:D.shape[1]]))
        return x, rnorm

    derive.nnls = recording_nnls
    try:
        lut, S, M = derive.build_lut(D, A)
    finally:
        derive.nnls = real_nnls
    n = derive.LATTICE_N
    weights = np.zeros((n, n, n, D.shape[1]))
    grid = derive.srgb_decode(np.linspace(0.0, 1.0, n))
    it = iter(recorded)
    for ir in range(n):
        for ig in range(n):
            for ib in range(n):
                xyz = S * (M @ np.array([grid[ir], grid[ig], grid[ib]]))
                if np.any(xyz > 0):
                    weights[ir, ig, ib] = next(it)
    if next(it, None) is not None:
        raise SystemExit("lattice replay out of step with derive.build_lut")
    if np.abs(weights @ D.T - lut).max() > 1e-12:
        raise SystemExit("recorded weights do not reproduce derive's lattice")
    return weights


def fixture_spectra(rgb8, lut_full):
    """Downscaled per-pixel spectra on GRID, computed a few wavelengths at a time."""
    chunks = []
    for start in range(0, len(GRID), 9):
        part = derive.lookup(lut_full[..., start:start + 9], rgb8)
        chunks.append(derive.downscale(part))
    return np.concatenate(chunks, axis=-1)


def read_raw(name, h, w):
    raw = np.fromfile(os.path.join(FIXTURES, name + ".raw"), dtype="<u2")
    return raw.reshape(7, h, w).transpose(1, 2, 0)


def main():
    check_pins()
    D, labels = derive.measured_dictionary()
    A = derive.colorimetry()
    G = derive.band_matrix()
    D_full = full_dictionary(labels)
    on_wl = np.searchsorted(GRID, derive.WL)
    if np.abs(D_full[on_wl] - D).max() > 1e-12:
        raise SystemExit("full dictionary differs from derive's at 400..700 nm")
    print(f"dictionary: {D.shape[1]} spectra; solving the {derive.LATTICE_N}^3 lattice ...")
    weights = solve_lattice(D, A)
    lut_full = weights @ D_full.T                       # (n, n, n, 81)

    outputs = []
    for name, _src, loader in derive.FIXTURES:
        rgb8, _crop = loader()
        spec = fixture_spectra(rgb8, lut_full)           # (h, w, 81)
        h, w = spec.shape[:2]
        bands = derive.to_u16(spec[..., on_wl] @ G.T)
        diff = np.abs(bands.astype(np.int64) - read_raw(name, h, w).astype(np.int64))
        print(f"{name}: {w}x{h}; bands vs committed .raw: max |diff| {diff.max()} LSB, "
              f"{np.count_nonzero(diff)} of {diff.size} samples differ")
        if diff.max() > 1:
            raise SystemExit(f"{name}: re-derived bands do not match the fixture")
        rows = np.arange(OFFSET, h, STRIDE)
        cols = np.arange(OFFSET, w, STRIDE)
        picks = [(r, c) for r in rows for c in cols]
        S = np.stack([spec[r, c] for r, c in picks], axis=1)   # (81, npix)

        path = os.path.join(FIXTURES, f"{name}.truth.csv")
        with open(path, "w", encoding="ascii", newline="\n") as fh:
            fh.write("wavelength," + ",".join(f"r{r}c{c}" for r, c in picks) + "\n")
            for i, wl in enumerate(GRID):
                fh.write(f"{wl:.0f}," + ",".join(f"{v:.5f}" for v in S[i]) + "\n")
        outputs.append(path)

        path = os.path.join(FIXTURES, f"{name}.truth_xyz.csv")
        xyz = {ill: xyz_astm_e308(S, ill) for ill in ILLUMINANTS}
        with open(path, "w", encoding="ascii", newline="\n") as fh:
            fh.write("row,col," + ",".join(f"{c}_{ill}" for ill in ILLUMINANTS for c in "XYZ")
                     + "\n")
            for k, (r, c) in enumerate(picks):
                vals = [f"{v:.6f}" for ill in ILLUMINANTS for v in xyz[ill][k]]
                fh.write(f"{r},{c}," + ",".join(vals) + "\n")
        outputs.append(path)


    for path in outputs:
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        print(f"{digest}  {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
