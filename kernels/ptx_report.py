"""Compile the kernels for an NVIDIA GPU without one, and report registers and spills.

The interpreter checks what the kernels compute, not whether Triton's real compiler accepts
them, nor how they fit a GPU's registers. Triton compiles for a named target without a device,
and ships ``ptxas``; this module compiles each kernel configuration to a cubin and reads
``ptxas -v``. It is how the default chunk and block sizes were chosen on a machine with no GPU.

Run: ``python -m infitool_edit.kernels.ptx_report [--arch 90] [--all-configs]``
(prints one JSON object). TRITON_INTERPRET must be unset: it replaces the compiler.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from . import selective_scan, state_update

STATE = 16  # d_state of every released Mamba-1 checkpoint


def _signature(kernel, constexprs: dict) -> dict:
    # Pointers as float32 (the tightest register case for the loads is the same for bf16) and
    # every other runtime argument an int32 size or stride.
    return {name: "constexpr" if name in constexprs else "*fp32" if name.endswith("_ptr") else "i32"
            for name in kernel.arg_names}


def _ptxas_usage(ptx: str, arch: int) -> dict:
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as source:
        source.write(ptx)
        source.flush()
        gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
        result = subprocess.run([get_ptxas(arch).path, "-v", f"--gpu-name={gpu}", source.name,
                                 "-o", "/dev/null"], capture_output=True, text=True, check=True)
    registers = re.search(r"Used (\d+) registers", result.stderr)
    spills = re.search(r"(\d+) bytes spill stores", result.stderr)
    return {"registers": int(registers.group(1)), "spill_bytes": int(spills.group(1))}


def compile_report(arch: int = 90, all_configs: bool = False) -> dict:
    """{kernel/config name: {"registers": .., "spill_bytes": ..}} for the given sm_ architecture."""
    target = GPUTarget("cuda", arch, 32)
    features = dict(HAS_D=True, HAS_Z=True, HAS_DELTA_BIAS=True, DELTA_SOFTPLUS=True,
                    N=STATE, BLOCK_N=STATE, CHUNK=selective_scan.DEFAULT_CHUNK)
    configs = selective_scan._BLOCK_D_CONFIGS if all_configs else selective_scan._BLOCK_D_CONFIGS[:1]
    jobs = []
    for config in configs:
        block = config.kwargs["BLOCK_D"]
        scan = dict(features, BLOCK_D=block)
        jobs.append((f"scan_fwd BLOCK_D={block} warps={config.num_warps}",
                     selective_scan._selective_scan_fwd_kernel.fn, dict(scan, SAVE_CHUNK_STATES=True),
                     config.num_warps))
        jobs.append((f"scan_bwd BLOCK_D={block} warps={config.num_warps}",
                     selective_scan._selective_scan_bwd_kernel.fn, scan, config.num_warps))
    block, warps = state_update._fixed_config(STATE)
    jobs.append((f"state_update BLOCK_D={block} warps={warps}", state_update._selective_state_update_kernel,
                 dict(N=STATE, BLOCK_N=STATE, BLOCK_D=block, HAS_DT_BIAS=True, DT_SOFTPLUS=True,
                      HAS_D=True, HAS_Z=True), warps))
    report = {}
    for name, kernel, constexprs, num_warps in jobs:
        source = ASTSource(fn=kernel, signature=_signature(kernel, constexprs), constexprs=constexprs)
        compiled = triton.compile(source, target=target, options={"num_warps": num_warps})
        report[name] = _ptxas_usage(compiled.asm["ptx"], arch)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80 or 90")
    parser.add_argument("--all-configs", action="store_true", help="every autotuning candidate")
    arguments = parser.parse_args()
    print(json.dumps(compile_report(arguments.arch, arguments.all_configs)))
