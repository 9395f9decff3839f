#!/usr/bin/env bash
# Install what med8k needs on Debian 12 beyond the Rust toolchain:
# GStreamer (development files and the plugins the engine uses), Mesa's
# software Vulkan driver (lavapipe) so GPU kernels run without a GPU, and
# SoftHSM2, which stands in for JPKI/HPKI cards; Chromium and its WebDriver
# (chromium-driver, the same Debian source and version) for the viewer's
# browser tests; OpenJPH's tools and FFmpeg,
# the peers `med8k bench codec` measures against; for DICOM, cmake (dicom-rs
# builds CharLS, its JPEG-LS codec, with it), and what the tests check
# against: Orthanc with its DICOMweb plugin (the PACS), dicom3tools
# (dciodvfy, the IOD validator) and DCMTK (dcmdump, dcmdjpls, dcmconv); Chromium, whose headless
# mode takes the README's screenshot of `med8k bench --html` (scripts/bench-screenshot.sh). Safe to run again. It ends
# by checking that every GStreamer element the project names
# (scripts/gst-elements.txt) is there, naming the package that provides a
# missing one.
set -euo pipefail

packages=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-libav gstreamer1.0-tools gstreamer1.0-gl
  mesa-vulkan-drivers libvulkan1
  softhsm2 openssl
  chromium chromium-driver
  openjph-tools ffmpeg
  cmake
  orthanc orthanc-dicomweb dicom3tools dcmtk
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

# Python packages the tests run as independent references (pinned):
# colour-science and Pillow/LittleCMS check the colour pipeline;
# cryptography makes the hostile certificates and CRLs of the auth tests;
# onnxruntime runs the reference models beside tract (engine/detect/tests/reference.rs).
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
if ! python3 -m pip --version >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-pip
fi
for req in "$root/engine/colour/data/requirements.txt" "$root/auth/tests/requirements.txt" \
  "$root/models/requirements.txt"; do
  if ! python3 -m pip install -q --disable-pip-version-check -r "$req" 2>/dev/null; then
    # Debian's own python3 is externally managed (PEP 668).
    python3 -m pip install -q --disable-pip-version-check --break-system-packages -r "$req"
  fi
done

if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

# Every element the configs, tests and commands name must be installed; a
# missing one names its package (and fails here, not halfway through CI).
missing=0
while read -r element package; do
  case "$element" in ''|'#'*) continue ;; esac
  if ! gst-inspect-1.0 --exists "$element" 2>/dev/null; then
    echo "setup-debian.sh: GStreamer element $element is missing: install the Debian package $package" >&2
    missing=1
  fi
done < "$here/gst-elements.txt"
if [ "$missing" -ne 0 ]; then
  exit 1
fi
