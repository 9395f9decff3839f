#!/usr/bin/env bash
# Install what med8k needs on Debian 12 beyond the Rust toolchain:
# GStreamer (development files and the plugins the engine uses), Mesa's
# software Vulkan driver (lavapipe) so GPU kernels run without a GPU, and
# SoftHSM2, which stands in for JPKI/HPKI cards; OpenJPH's tools and FFmpeg,
# the peers `med8k bench codec` measures against. Safe to run again.
set -euo pipefail

packages=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-libav gstreamer1.0-tools
  mesa-vulkan-drivers libvulkan1
  softhsm2
  openjph-tools ffmpeg
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi

if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
