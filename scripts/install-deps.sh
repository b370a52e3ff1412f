#!/usr/bin/env bash
# Installs the Debian 12 packages Gloss needs to build, test and benchmark.
# Only what is missing is installed; when everything is there this is a quick no-op.
set -euo pipefail

PACKAGES=(
  g++ cmake make pkg-config
  libdnnl-dev ocl-icd-opencl-dev        # oneDNN 2.6; its CMake config needs OpenCL's
  libsentencepiece-dev                  # subword models
  libboost-program-options-dev libboost-serialization-dev
  libicu-dev                            # Unicode character classes and case mapping
  zlib1g-dev                            # .gz corpora
  libcairo2-dev fonts-dejavu-core       # PNG attention heat maps (text in DejaVu Sans)
  libopenmpi-dev openmpi-bin            # training across processes (mpirun), Open MPI's C API
  libcpp-httplib-dev                    # gloss serve: HTTP (a maintained server: limits, timeouts, thread pool)
  catch2 nlohmann-json3-dev             # tests
  time bc                               # benchmarks: /usr/bin/time for peak memory, bc for sums
  clang-format                          # tests: the tree stays formatted as .clang-format says
  clang libclang-rt-14-dev              # tests: libFuzzer harnesses (scripts/fuzz.sh)
  curl chromium                         # tests: gloss serve with curl, and its page in headless Chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
