#!/usr/bin/env bash
# Build vLLM 0.26.0 (the last release for the H200 image's torch 2.11) and the pure-Python and manylinux
# dependencies its offline `vllm.LLM` path imports, for Python 3.12 on x86-64, packed as one xz archive split
# into pieces under 60 MiB (the device tool carries at most 64 MiB per call). What the machine's image already
# has (torch, triton, numpy, transformers, tokenizers, safetensors, huggingface_hub, tiktoken, sentencepiece,
# numba) is left out; so are the CUDA wheels. FlashAttention 2 kernels are dropped (Hopper runs FA3), as are
# the Blackwell FMHA headers and the Rust front end.
#
#   scripts/h200_pack.sh DIR      -> DIR/site.tar.xz.part-aa, -ab, ...
# On the machine: cat parts | xz -d | tar -x -C /tmp; xz -dc fi.tar.xz | tar -x -C /tmp;
#                 PYTHONPATH=/tmp/site python3 scripts/h200_measure.py OUT all
set -euo pipefail
dir=${1:?usage: h200_pack.sh DIR}
# An absolute path: a DIR such as `-rf` must never reach mkdir, rm or tar as an option.
dir=$(realpath -m -- "$dir")
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/whl"
platforms=()
for p in manylinux_2_34_x86_64 manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do platforms+=(--platform "$p"); done
target=(--only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}")
python3 -m pip download -q --no-deps "${target[@]}" -d "$dir" vllm==0.26.0
# Resolve the dependencies without downloading them, then fetch all but what the image has.
python3 -m pip install --dry-run -q --report "$dir/report.json" --ignore-installed "${target[@]}" --target "$dir/x" \
    -r "$here/h200_requirements.txt"
python3 - "$dir/report.json" > "$dir/deps.txt" <<'PY'
import json, re, sys
skip = re.compile(r"^(torch|triton|nvidia-.*|numpy|networkx|sympy|mpmath|transformers|tokenizers|safetensors|huggingface_hub|"
                  r"hf-xet|tiktoken|setuptools|cuda-bindings|cuda-pathfinder|fsspec)$", re.I)
for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]
    if not skip.match(meta["name"]):
        print(f"{meta['name']}=={meta['version']}")
PY
python3 -m pip download -q --no-deps "${target[@]}" -d "$dir/whl" -r "$dir/deps.txt"
rm -rf "$dir/site"
python3 -m pip install -q --no-deps --no-compile "${target[@]}" --target "$dir/site" "$dir"/whl/*.whl "$dir"/vllm-0.26.0-*.whl
rm -f "$dir/site/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" "$dir/site/vllm/vllm-rs" \
      "$dir"/site/vllm/third_party/deep_gemm/_C.cpython-3{10,11,13,14}-*.so
rm -rf "$dir/site/vllm/third_party/fmha_sm100"
(cd "$dir" && tar -cf - site | xz -T0 -6 > site.tar.xz && split -b 58m site.tar.xz site.tar.xz.part-)
# FlashInfer (0.26's default sampler; on Hopper vLLM also autotunes its kernels at start-up), a piece of its own
# (~6 MB) unpacked over /tmp/site for the `sampler: flashinfer` runs: its kernels compile at first use with the
# machine's nvcc (~90 s, once per machine). Its one compiled dependency, apache-tvm-ffi, is in the site already.
python3 -m pip download -q --no-deps "${target[@]}" -d "$dir/fiwhl" flashinfer-python==0.6.14
rm -rf "$dir/fi"
python3 -m pip install -q --no-deps --no-compile "${target[@]}" --target "$dir/fi/site" "$dir"/fiwhl/flashinfer_python-*.whl
(cd "$dir/fi" && tar -cf - site | xz -T0 -6 > ../fi.tar.xz)
ls -la "$dir"/site.tar.xz.part-* "$dir/fi.tar.xz"
