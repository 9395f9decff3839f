#!/usr/bin/env python3
"""Generate the colorimetric tables that med8k-colour embeds.

Run from the repository root, with engine/colour/data/requirements.txt
installed:

    python3 engine/colour/data/make_tables.py

Every table comes from data that ships INSIDE the colour-science 0.4.7 wheel.
The script refuses to touch the network (sockets are disabled before colour is
imported), refuses to run with other versions than the pinned ones, and checks
that every bundled file it reads exists.  It writes CSV files to
engine/colour/data/tables/ and prints their SHA-256 (copied into
PROVENANCE.md).

CSV layout of every table: a header line, first column ``wavelength`` in nm,
then one column per function or sample.  Numbers are written with Python's
shortest round-trip ``repr`` so the shipped values are kept exactly, except
the 1 nm illuminants, which are colour-science's own interpolation (see
PROVENANCE.md).
"""

import hashlib
import os
import socket
import sys
import warnings


def _no_network(*_args, **_kwargs):
    raise SystemExit("make_tables.py: network access attempted; refusing (tables must "
                     "come from data inside the colour-science wheel)")


# Disable networking before anything can import a downloader.
socket.socket.connect = _no_network  # type: ignore[method-assign]
socket.socket.connect_ex = _no_network  # type: ignore[method-assign]
socket.create_connection = _no_network  # type: ignore[assignment]
socket.getaddrinfo = _no_network  # type: ignore[assignment]

warnings.filterwarnings("ignore")  # colour warns about optional packages

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import colour  # noqa: E402
from colour.characterisation import MSDS_CAMERA_SENSITIVITIES  # noqa: E402
from colour.quality.cfi2017 import load_TCS_CIE2017  # noqa: E402

PINS = {"colour": (colour, "0.4.7"), "numpy": (np, "2.4.6"), "scipy": (scipy, "1.17.1")}

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tables")
COLOUR_DIR = os.path.dirname(colour.__file__)
RAWTOACES_DIR = os.path.join(COLOUR_DIR, "characterisation", "datasets", "rawtoaces")

# ASTM E308 practice range at 1 nm (colour's SPECTRAL_SHAPE_ASTME308).
PRACTICE = colour.SpectralShape(360, 780, 1)
ILLUMINANTS = ["D65", "D50", "A", "FL11"]


def check_pins():
    for name, (module, want) in PINS.items():
        if module.__version__ != want:
            raise SystemExit(f"{name} {module.__version__} installed, {want} required "
                             "(pip install -r engine/colour/data/requirements.txt)")


def bundled(path):
    if not os.path.isfile(path):
        raise SystemExit(f"bundled file missing from the colour-science wheel: {path}")
    return path


def fmt(v):
    v = float(v)
    if v == 0.0:
        return "0"
    return repr(v)


def write_table(name, wavelengths, columns, labels):
    """Write wavelength + columns (each a 1-D array over wavelengths)."""
    os.makedirs(OUT, exist_ok=True)
    for lab in labels:
        if "," in lab or "\n" in lab:
            raise SystemExit(f"label {lab!r} would break the CSV")
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write("wavelength," + ",".join(labels) + "\n")
        for i, wl in enumerate(wavelengths):
            row = [fmt(wl)] + [fmt(col[i]) for col in columns]
            fh.write(",".join(row) + "\n")
    return path


def msds_table(name, msds, labels=None):
    values = np.asarray(msds.values)
    labels = labels or [str(x) for x in msds.labels]
    return write_table(name, msds.wavelengths, [values[:, j] for j in range(values.shape[1])],
                       labels)


def sds_table(name, mapping):
    keys = list(mapping.keys())
    shapes = {mapping[k].shape for k in keys}
    if len(shapes) != 1:
        raise SystemExit(f"{name}: samples on different grids: {shapes}")
    wl = mapping[keys[0]].wavelengths
    cols = [np.asarray(mapping[k].values) for k in keys]
    return write_table(name, wl, cols, [k.replace(",", ";") for k in keys])


def read_plain_csv(path):
    """A shipped CSV with a header row: returns (wavelengths, columns, labels)."""
    with open(bundled(path), encoding="utf-8") as fh:
        header = fh.readline().strip().split(",")
        data = np.array([[float(x) for x in line.strip().split(",")]
                         for line in fh if line.strip()])
    return data[:, 0], [data[:, j] for j in range(1, data.shape[1])], header[1:]


def main():
    check_pins()
    outputs = []

    # Observers: CIE 1931 2 deg and CIE 1964 10 deg, 1 nm, ASTM E308 range.
    cmfs2 = colour.MSDS_CMFS["CIE 1931 2 Degree Standard Observer"].copy().trim(PRACTICE)
    cmfs10 = colour.MSDS_CMFS["CIE 1964 10 Degree Standard Observer"].copy().trim(PRACTICE)
    if cmfs2.shape != PRACTICE or cmfs10.shape != PRACTICE:
        raise SystemExit(f"unexpected CMF shapes {cmfs2.shape} {cmfs10.shape}")
    cols = [cmfs2.values[:, j] for j in range(3)] + [cmfs10.values[:, j] for j in range(3)]
    outputs.append(write_table("cmfs_1nm.csv", cmfs2.wavelengths, cols,
                               ["x2", "y2", "z2", "x10", "y10", "z10"]))

    # Illuminants on the 1 nm practice range exactly as colour-science's
    # sd_to_XYZ(method="ASTM E308") aligns them (reshape_sd: Sprague 1880
    # interpolation, constant extrapolation).
    cols = []
    for name in ILLUMINANTS:
        sd = colour.SDS_ILLUMINANTS[name]
        cols.append(colour.colorimetry.reshape_sd(sd, PRACTICE, copy=True).values)
    outputs.append(write_table("illuminants_1nm.csv", PRACTICE.wavelengths, cols, ILLUMINANTS))

    # Measured camera sensitivities, on their native grids.
    outputs.append(msds_table("camera_nikon_d5100_npl.csv",
                              MSDS_CAMERA_SENSITIVITIES["Nikon 5100 (NPL)"]))
    outputs.append(msds_table("camera_sigma_sd_merrill_npl.csv",
                              MSDS_CAMERA_SENSITIVITIES["Sigma SDMerill (NPL)"]))
    wl, cols, labels = read_plain_csv(
        os.path.join(RAWTOACES_DIR, "CANON_EOS_5DMark_II_RGB_Sensitivities.csv"))
    outputs.append(write_table("camera_canon_5d_mark_ii_rawtoaces.csv", wl, cols,
                               [x.lower() for x in labels]))

    # Reflectance sets, on their native grids.
    outputs.append(sds_table("reflectance_colorchecker_n_ohta.csv",
                             colour.SDS_COLOURCHECKERS["ColorChecker N Ohta"]))
    outputs.append(sds_table("reflectance_babelcolor_average.csv",
                             colour.SDS_COLOURCHECKERS["BabelColor Average"]))
    bundled(os.path.join(COLOUR_DIR, "quality", "datasets", "tcs_cfi2017_5_nm.csv.gz"))
    tcs = load_TCS_CIE2017(colour.SpectralShape(380, 780, 5))
    outputs.append(msds_table("reflectance_cie2017_tcs99.csv", tcs,
                              [f"TCS{i:02d}" for i in range(len(tcs.labels))]))
    wl, cols, labels = read_plain_csv(os.path.join(RAWTOACES_DIR, "190_Patches.csv"))
    outputs.append(write_table("reflectance_rawtoaces_190.csv", wl, cols, labels))

    for path in outputs:
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        print(f"{digest}  {os.path.relpath(path, HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
