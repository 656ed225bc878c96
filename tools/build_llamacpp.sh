#!/usr/bin/env bash
# Build llama.cpp's llama-server, llama-bench and llama-quantize once, from the source vendored in
# the llama-cpp-python sdist on PyPI (no PyPI package ships these binaries for Linux), into
#   ${XDG_CACHE_HOME:-~/.cache}/infitool-edit/llama.cpp/<version>/
# and print their bin/ folder as the last line. A second run finds the build and returns at once.
# The tests that need a real llama.cpp call this (tests/helpers/llamacpp.py); docs/kernels.md
# has the figures. CPU only, -march=native (GGML_NATIVE), no curl/OpenSSL, no tests or examples;
# llamacpp-light.cmake compiles the code no benchmark times (HTTP, JSON, the tools' mains) at -O0.
#
# Exit status: 0 built or found; 3 a prerequisite is missing (cmake, a C++ compiler, the sdist:
# no network to PyPI) and stderr's last line says which; 1 the build itself failed (log named).
# Environment: PYTHON (a python with pip; default python3), INFITOOL_LLAMA_JOBS (default: every
# core), INFITOOL_LLAMA_CPP_PYTHON (the sdist's version; default below), XDG_CACHE_HOME.
set -euo pipefail

version=${INFITOOL_LLAMA_CPP_PYTHON:-0.3.36}
python=${PYTHON:-python3}
jobs=${INFITOOL_LLAMA_JOBS:-$(nproc 2>/dev/null || echo 2)}
here=$(cd "$(dirname "$0")" && pwd)
light="$here/llamacpp-light.cmake"
targets=(llama-server llama-bench llama-quantize)
flags=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
       -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF
       -DLLAMA_BUILD_EXAMPLES=OFF "-DCMAKE_PROJECT_INCLUDE=$light")

missing() { echo "llama.cpp not built: $*" >&2; exit 3; }

root="${XDG_CACHE_HOME:-$HOME/.cache}/infitool-edit/llama.cpp/$version"
# -march=native: one build per CPU (a home shared by two machines never runs the other's
# instructions), and per set of flags, so a changed light file is a new build, not a stale one.
cpu=$( (grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || uname -m) | tr -s ' ')
# The light file by its content, not its path: every checkout of the project shares one build.
key=$( (echo "$cpu"; echo "${flags[*]/#-DCMAKE_PROJECT_INCLUDE=*/-DCMAKE_PROJECT_INCLUDE}" "${targets[*]}"; cat "$light") \
      | sha256sum | cut -c1-12)
source="$root/src/llama_cpp_python-$version/vendor/llama.cpp"
build="$root/build-$key"
mkdir -p "$root"

# One builder at a time (two pytest runs, CI and a user); the second waits, then finds the build.
exec 9>"$root/.lock"
if command -v flock >/dev/null; then flock 9; fi

if [ -f "$build/.complete" ] && [ -x "$build/bin/llama-server" ] && [ -x "$build/bin/llama-bench" ]; then
  echo "$build/bin"
  exit 0
fi

command -v cmake >/dev/null || missing "no cmake (apt-get install cmake, or pip install cmake)"
cxx=${CXX:-c++}
command -v "$cxx" >/dev/null || missing "no C++ compiler ($cxx; apt-get install g++)"
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

if [ ! -f "$source/convert_hf_to_gguf.py" ]; then
  download="$root/download"
  rm -rf "$download" "$root/src.partial"
  echo "downloading the llama-cpp-python $version sdist (76 MB) from PyPI" >&2
  if ! "$python" -m pip download -q --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$version" -d "$download" >"$root/download.log" 2>&1; then
    missing "could not download the llama-cpp-python $version sdist: $(tail -n 1 "$root/download.log")"
  fi
  mkdir -p "$root/src.partial"
  tar -xzf "$download/llama_cpp_python-$version.tar.gz" -C "$root/src.partial"
  rm -rf "$root/src" "$download"
  mv "$root/src.partial" "$root/src"   # the source appears whole or not at all
fi

echo "building llama.cpp ($version's vendored source) ${targets[*]} with $jobs jobs into $build" >&2
log="$build/build.log"
mkdir -p "$build"
start=$(date +%s)
if ! { cmake -S "$source" -B "$build" "${generator[@]}" "${flags[@]}" &&
       cmake --build "$build" -j "$jobs" --target "${targets[@]}"; } >"$log" 2>&1; then
  echo "llama.cpp build failed, see $log: $(grep -m1 -E 'error:|FAILED:' "$log" || tail -n 1 "$log")" >&2
  exit 1
fi
echo "built in $(( $(date +%s) - start )) s" >&2
touch "$build/.complete"
echo "$build/bin"
