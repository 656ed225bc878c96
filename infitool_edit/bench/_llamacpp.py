"""`infitool-edit bench model --llamacpp BIN`: our engine against llama.cpp's `llama-bench`, row by row.

The benchmark's random mamba-130m-shaped checkpoint (and mamba2-130m's) is written as GGUF
with the `gguf` package, the way llama.cpp's `convert_hf_to_gguf.py` writes Mamba (tensor names
from gguf's own name map; A = -exp(A_log); the conv weight squeezed to (d_inner, d_conv); a tied
head left out) and quantized to Q8_0 / Q4_0 by the `llama-quantize` beside BIN (or by gguf's
numpy quantizers when there is none). Each row then times ours and `llama-bench` in alternating
rounds with the same thread count, and prints ours ÷ theirs (below 1: we are faster).

The vocabulary is a synthetic GPT-2-style one (byte tokens, then fillers) with one merge:
llama-bench feeds random token ids and never detokenizes, so only the count matters.

Run against a real llama.cpp built from the llama-cpp-python 0.3.36 sdist (docs/kernels.md has
the table); the files load in llama-bench and llama-server, and where llama.cpp's source is on the
machine tests/bench/test_bench_llamacpp.py holds write_gguf to convert_hf_to_gguf.py itself
(`find_converter`, `convert_with_llama_cpp`).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from infitool_edit.model import Mamba2LM, MambaLM
from infitool_edit.model.checkpoint import hf_state_dict


class LlamaCppError(RuntimeError):
    """llama.cpp's tools could not run or convert; the message is one line."""


def _byte_tokens() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes (its `bytes_to_unicode`)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[byte] for byte in range(256)]


def write_gguf(model: MambaLM, path: Path) -> Path:
    """model as an F32 GGUF file llama.cpp loads as MAMBA or MAMBA2."""
    import gguf

    config = model.config
    mamba2 = isinstance(model, Mamba2LM)
    arch = gguf.MODEL_ARCH.MAMBA2 if mamba2 else gguf.MODEL_ARCH.MAMBA
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[arch])
    layers, d, d_in = config.num_hidden_layers, config.hidden_size, config.intermediate_size
    writer.add_context_length(2**20)
    writer.add_embedding_length(d)
    writer.add_feed_forward_length(0)
    writer.add_head_count(0)
    writer.add_block_count(layers)
    writer.add_ssm_conv_kernel(config.conv_kernel)
    writer.add_ssm_inner_size(d_in)
    writer.add_ssm_state_size(config.state_size)
    if mamba2:
        writer.add_ssm_time_step_rank(config.num_heads)
        writer.add_ssm_group_count(config.n_groups)
    else:
        writer.add_ssm_time_step_rank(config.time_step_rank)
        writer.add_ssm_dt_b_c_rms(bool(config.falcon))
    writer.add_layer_norm_rms_eps(config.layer_norm_epsilon)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    # The last id is the end of text, a control token: a server must never print it (an id that
    # is also byte 0x00 came out of llama-server as a NUL after a grammar-complete line).
    tokens = _byte_tokens() + ["Ġt"]
    tokens += [f"<|filler{i}|>" for i in range(config.vocab_size - len(tokens) - 1)] + ["<|endoftext|>"]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * (len(tokens) - 1) + [gguf.TokenType.CONTROL])
    writer.add_token_merges(["Ġ t"])
    writer.add_bos_token_id(len(tokens) - 1)
    writer.add_eos_token_id(len(tokens) - 1)

    names = gguf.get_tensor_name_map(arch, layers)
    for name, tensor in hf_state_dict(model).items():
        if mamba2 and name.endswith(".dt_bias"):
            name = name.removesuffix(".dt_bias") + ".dt_proj.bias"  # as convert_hf_to_gguf renames it
        new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise LlamaCppError(f"no GGUF name for {name}")
        data = tensor.float()
        if name.endswith(".A_log"):
            data = -torch.exp(data)
        if ".conv1d.weight" in name:
            data = data.squeeze()
        if mamba2 and (name.endswith(".A_log") or name.endswith(".D")):
            data = data.reshape(*data.shape, 1)
        if mamba2 and name.endswith(".mixer.norm.weight"):
            data = data.reshape(config.n_groups, d_in // config.n_groups)
        writer.add_tensor(new_name, np.ascontiguousarray(data.numpy()))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def llama_source(binary: Path) -> Path | None:
    """The llama.cpp source tree `binary` (a tool in a CMake build's bin/) was built from, read from
    CMakeCache.txt's CMAKE_HOME_DIRECTORY beside bin/; None when that cannot be found."""
    cache = Path(binary).resolve().parent.parent / "CMakeCache.txt"
    try:
        lines = cache.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("CMAKE_HOME_DIRECTORY:"):
            source = Path(line.split("=", 1)[1].strip())
            return source if (source / "convert_hf_to_gguf.py").is_file() else None
    return None


def find_converter(*binaries: Path | str | None) -> Path | None:
    """llama.cpp's convert_hf_to_gguf.py: INFITOOL_LLAMA_CONVERT if set, else the one in the
    source tree any of `binaries` was built from."""
    named = os.environ.get("INFITOOL_LLAMA_CONVERT")
    if named:
        return Path(named) if Path(named).is_file() else None
    for binary in binaries:
        source = llama_source(Path(binary)) if binary else None
        if source is not None:
            return source / "convert_hf_to_gguf.py"
    return None


def convert_with_llama_cpp(converter: Path, checkpoint: Path, target: Path, outtype: str = "f32") -> Path:
    """An HF checkpoint folder as GGUF by llama.cpp's own convert_hf_to_gguf.py (run by this Python,
    which has torch; the script imports the gguf-py vendored beside it). Without tokenizer files
    it writes llama.cpp's built-in GPT-NeoX vocabulary, as for state-spaces/mamba-*-hf."""
    result = subprocess.run([sys.executable, str(converter), str(checkpoint), "--outfile", str(target),
                             "--outtype", outtype], capture_output=True, text=True)
    if result.returncode != 0 or not target.is_file():
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise LlamaCppError(f"convert_hf_to_gguf.py failed: {last[0]}")
    return target


def quantize_gguf(source: Path, kind: str, llama_bin: Path) -> Path:
    """source (F32) as Q8_0 or Q4_0, by the llama-quantize beside llama-bench."""
    quantizer = llama_bin.with_name("llama-quantize")
    if not quantizer.exists():
        raise LlamaCppError(f"{quantizer} is missing: build llama.cpp's llama-quantize beside llama-bench")
    target = source.with_name(f"{source.stem}-{kind}.gguf")
    result = subprocess.run([str(quantizer), str(source), str(target), kind], capture_output=True, text=True)
    if result.returncode != 0:
        raise LlamaCppError(f"llama-quantize {kind} failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return target


def llama_bench_ms(llama_bin: Path, model_file: Path, threads: int, *, prompt: int = 0, generate: int = 32) -> float:
    """llama-bench's ms per token for one run: decode (`-n`) or prompt processing (`-p`)."""
    command = [str(llama_bin), "-m", str(model_file), "-t", str(threads), "-p", str(prompt), "-n", str(generate),
               "-r", "1", "-o", "json"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise LlamaCppError(f"llama-bench failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    rows = json.loads(result.stdout)
    return 1e3 / float(rows[-1]["avg_ts"])


def compare(llama_bin: Path, models: dict[str, MambaLM], ours: Callable[[str, str, int, int], float],
            rounds: int = 3) -> dict[str, float]:
    """The issue's table as ratios. `ours(model_name, kind, threads, prompt)` times our engine
    in ms per token (prompt > 0: prefill). Rows: each model × F32/Q8_0/Q4_0 × 1 and 2 threads,
    decode and then prefill of 512 tokens."""
    if not llama_bin.exists():
        raise LlamaCppError(f"{llama_bin} does not exist")
    figures: dict[str, float] = {}
    folder = Path(tempfile.mkdtemp(prefix="infitool-llamacpp-"))
    try:
        for name, model in models.items():
            f32 = write_gguf(model, folder / f"{name}.gguf")
            files = {"f32": f32, "q8_0": quantize_gguf(f32, "Q8_0", llama_bin), "q4_0": quantize_gguf(f32, "Q4_0", llama_bin)}
            rows = [(kind, threads, prompt) for prompt in (0, 512) for kind in files for threads in (1, 2)]
            for kind, threads, prompt in rows:
                ratios, mine, theirs = [], [], []
                for _ in range(rounds):
                    a = ours(name, kind, threads, prompt)
                    b = llama_bench_ms(llama_bin, files[kind], threads, prompt=prompt, generate=0 if prompt else 32)
                    mine.append(a)
                    theirs.append(b)
                    ratios.append(a / b)
                row = f"{name}_{kind}_{'prefill' if prompt else 'decode'}_t{threads}"
                figures[f"llamacpp_{row}_ms"] = statistics.median(theirs)
                figures[f"ours_{row}_ms"] = statistics.median(mine)
                figures[f"vs_llamacpp_{row}"] = statistics.median(ratios)
                print(f"| {row} | {statistics.median(mine):.1f} ms | {statistics.median(theirs):.1f} ms | "
                      f"{statistics.median(ratios):.2f} |", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return figures
