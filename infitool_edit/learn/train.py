"""``infitool-edit train``: a byte-level Mamba-2 (or a hybrid of it, ``--config hybrid``) learns
prose, then the editor's command streams.

Phase 1 ("prose") is plain language modelling on clean permissive prose: the loss is on every
byte, and it teaches spelling and phrasing fast. Phase 2 ("streams") reads the runtime's own
streams and learns only the model's command bytes (``dataset.command_mask``); a share of its
batches (``prose_mix``) stays prose so phase 1 is not forgotten. Each phase has its own byte
budget and learning-rate schedule (a short warm-up, then cosine to ``min_lr``); AdamW's moments
carry over. Phase 1 moves on to phase 2 by itself when its budget is spent and the data folder
has streams; ``--phase streams`` switches at once (resuming a phase-1 run with a new folder).

The output folder holds ``latest/``: a HuggingFace-format checkpoint (``config.json``,
``model.safetensors``, loadable with ``load_checkpoint``) with ``trainer.pt`` (optimizer, phase,
counters, random states) and ``training.json`` (what the model card needs) beside it, rewritten
every ``checkpoint_minutes``; ``metrics.jsonl`` gets one line per held-out evaluation.

Several processes (``torchrun --nproc-per-node N``): DistributedDataParallel over NCCL on
CUDA, gloo on the CPU; each process samples its own windows, process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from infitool_edit.errors import one_line
from infitool_edit.learn.dataset import DataError, DataFolder, Packed, pack_prose, sample_windows
from infitool_edit.learn.grow import grow_depth, hybrid_config, with_attention
from infitool_edit.model import Mamba2Config, Mamba2LM, load_checkpoint, save_checkpoint
from infitool_edit.model.granite import GraniteHybridConfig, GraniteHybridLM
from infitool_edit.model.hf_folder import save_folder
from infitool_edit.model.tokenizer import ByteTokenizer
from infitool_edit.model.training import TRAINING_CHUNK, TrainingLM

PHASES = ("prose", "streams")


class TrainError(ValueError):
    """Training cannot start or go on (one line)."""


@dataclass
class TrainConfig:
    name: str
    # The model: a byte-level Mamba-2 (vocab = 256 bytes + pad, bos, eos).
    hidden_size: int
    layers: int
    state_size: int
    head_dim: int
    # Windows: batch × seq_len bytes per step and process; phase 2 reads longer windows
    # (the same bytes per step) so a stream's commands see more of what came before.
    batch: int
    seq_len: int
    stream_batch: int
    stream_seq_len: int
    prose_mb: float  # phase 1 budget, MB of bytes read (all processes together)
    streams_mb: float  # phase 2 budget
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    prose_mix: float = 0.2  # share of phase 2 batches that are prose
    stream_starts: float = 0.5  # share of phase 2 windows that begin where a stream begins
    stream_decisions: float = 0.0  # share of phase 2 windows at a stream's first command (dataset.sample_windows)
    chunk: int = TRAINING_CHUNK
    checkpoint_minutes: float = 5.0
    eval_minutes: float = 10.0
    eval_windows: int = 32
    seed: int = 0
    # A hybrid (Granite-4.0-H's frame, learn/grow.py): an attention layer after each of these
    # Mamba-2 layers (0-based), of attention_heads heads, and a SwiGLU of mlp_size after every
    # layer. Empty: a plain Mamba-2.
    attention_after: tuple[int, ...] = ()
    attention_heads: int = 4
    mlp_size: int = 0

    def model_config(self) -> Mamba2Config | GraniteHybridConfig:
        if self.attention_after:
            return hybrid_config(self.mamba_config(), tuple(self.attention_after), self.attention_heads,
                                 self.attention_heads, self.mlp_size, self.longest_read)
        return self.mamba_config()

    @property
    def longest_read(self) -> int:
        return max(self.seq_len, self.stream_seq_len)

    def new_model(self) -> Mamba2LM | GraniteHybridLM:
        config = self.model_config()
        return GraniteHybridLM(config) if isinstance(config, GraniteHybridConfig) else Mamba2LM(config)

    def mamba_config(self) -> Mamba2Config:
        """The Mamba-2 layers' shape (the whole model's, unless it is a hybrid)."""
        d_in = 2 * self.hidden_size
        return Mamba2Config(
            vocab_size=ByteTokenizer().vocab_size,
            hidden_size=self.hidden_size,
            state_size=self.state_size,
            num_hidden_layers=self.layers,
            expand=2,
            num_heads=d_in // self.head_dim,
            head_dim=self.head_dim,
            n_groups=1,
            chunk_size=self.chunk,  # the scan's chunk at run time too (Mamba2LM.forward)
            tie_word_embeddings=True,
            initializer_range=0.02,
            bos_token_id=ByteTokenizer().bos_id,
            eos_token_id=ByteTokenizer().eos_id,
            pad_token_id=ByteTokenizer().pad_id,
        )

    def budget_bytes(self, phase: str) -> int:
        return int((self.prose_mb if phase == "prose" else self.streams_mb) * 1e6)

    def step_bytes(self, phase: str) -> int:
        return self.batch * self.seq_len if phase == "prose" else self.stream_batch * self.stream_seq_len


CONFIGS = {
    # About a minute on two CPU threads: a model small enough to see its loss fall that fast.
    "smoke": TrainConfig(
        name="smoke", hidden_size=64, layers=2, state_size=16, head_dim=32,
        batch=4, seq_len=128, stream_batch=2, stream_seq_len=256,
        prose_mb=0.1, streams_mb=0.1, lr=3e-3, warmup_steps=10,
        checkpoint_minutes=0.5, eval_minutes=0.25, eval_windows=4,
    ),
    # The built-in model: 1.55M parameters (6.2 MB as fp32 safetensors), sized for what two
    # shared CPU cores read in a few hours (measured: ~1,400 bytes per CPU-second on one
    # thread here, against ~900 for 256 × 8 layers); see model/weights/README.md.
    "default": TrainConfig(
        name="default", hidden_size=192, layers=6, state_size=64, head_dim=64,
        batch=8, seq_len=512, stream_batch=2, stream_seq_len=2048,
        prose_mb=4.0, streams_mb=8.0, warmup_steps=50,
    ),
    # The default's width at twice the depth (3.05M parameters, 12.2 MB as fp32): what
    # `--from model/weights --config deep` grows the shipped model into (learn/grow.py), to
    # see whether copying a goal's made-up name wants capacity rather than data.
    "deep": TrainConfig(
        name="deep", hidden_size=192, layers=12, state_size=64, head_dim=64,
        batch=8, seq_len=512, stream_batch=2, stream_seq_len=2048,
        prose_mb=4.0, streams_mb=8.0, warmup_steps=50,
    ),
    # The default's six Mamba-2 layers with one attention layer (4 heads) after the fourth and a
    # SwiGLU of 256 after every layer (2.73M parameters, 10.9 MB as fp32): what `--from
    # model/weights --config hybrid` turns the shipped model into (learn/grow.py), for copying a
    # goal's name exactly, which the recurrent layers alone have not learnt.
    "hybrid": TrainConfig(
        name="hybrid", hidden_size=192, layers=6, state_size=64, head_dim=64,
        batch=8, seq_len=512, stream_batch=2, stream_seq_len=2048,
        prose_mb=4.0, streams_mb=8.0, warmup_steps=50, attention_after=(3,), attention_heads=4, mlp_size=256,
    ),
}


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Linear warm-up, then cosine from lr down to lr · min_lr_ratio at the end of the phase."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * progress))


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); without it, bf16 autocast
    emulates and runs several times slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def training_dtype(device: torch.device) -> torch.dtype:
    """bf16 autocast where the hardware computes it natively, else fp32."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


@dataclass
class Progress:
    """What a checkpoint remembers besides the weights and the optimizer."""

    phase: str = "prose"
    phase_step: int = 0
    phase_bytes: int = 0
    step: int = 0
    bytes_seen: dict = field(default_factory=lambda: {"prose": 0, "streams": 0})
    seconds: float = 0.0
    evaluations: list = field(default_factory=list)


# --- the distributed frame ---------------------------------------------------------------


@dataclass
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def join_world() -> World:
    """The processes torchrun started (RANK, WORLD_SIZE, LOCAL_RANK), or this one alone."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(rank, size, local_rank, device)


def all_sum(world: World, value: torch.Tensor) -> torch.Tensor:
    if world.size > 1:
        dist.all_reduce(value)
    return value


# --- checkpoints ---------------------------------------------------------------------------


def save_training_checkpoint(
    out: Path, model: Mamba2LM, optimizer: torch.optim.Optimizer, config: TrainConfig, progress: Progress,
    data: DataFolder, rngs: dict,
) -> Path:
    """Write ``out/latest`` whole or not at all: into a temporary folder, then renamed."""
    temporary, latest, previous = out / "latest.partial", out / "latest", out / "previous"
    shutil.rmtree(temporary, ignore_errors=True)
    (save_folder if isinstance(model, GraniteHybridLM) else save_checkpoint)(model, temporary)
    torch.save(
        {"optimizer": optimizer.state_dict(), "config": asdict(config), "progress": asdict(progress), "rngs": rngs},
        temporary / "trainer.pt",
    )
    (temporary / "training.json").write_text(json.dumps(training_record(config, progress, data, model), indent=2) + "\n")
    if latest.exists():
        shutil.rmtree(previous, ignore_errors=True)
        latest.rename(previous)
    temporary.rename(latest)
    shutil.rmtree(previous, ignore_errors=True)
    return latest


def training_record(config: TrainConfig, progress: Progress, data: DataFolder, model: Mamba2LM) -> dict:
    """What the model card states: data, size, time, hardware, held-out losses."""
    return {
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "phase": progress.phase,
        "steps": progress.step,
        "bytes_seen": progress.bytes_seen,
        "training_seconds": round(progress.seconds, 1),
        "hardware": hardware(),
        "data_folder": str(data.path),
        "manifest": data.manifest,
        "evaluations": progress.evaluations[-20:],
    }


def hardware() -> str:
    """The machine and the precision it trained in: a CPU with native bf16 trains in bf16
    autocast, one without in fp32 (``training_dtype``), and the card should say which."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = "bf16 autocast" if training_dtype(device) == torch.bfloat16 else "fp32"
    if device.type == "cuda":
        return f"{torch.cuda.device_count()}× {torch.cuda.get_device_name(0)}, {precision}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model}, {torch.get_num_threads()} threads, {precision}"


def load_training_checkpoint(out: Path) -> tuple[Mamba2LM | GraniteHybridLM, dict]:
    folder = out / "latest"
    if not folder.exists() and (out / "previous" / "trainer.pt").is_file():
        folder = out / "previous"  # stopped between the two renames of a checkpoint write
    if not (folder / "trainer.pt").is_file():
        raise TrainError(f"{out}: no checkpoint to resume (latest/trainer.pt)")
    trainer = torch.load(folder / "trainer.pt", map_location="cpu", weights_only=False)
    config = TrainConfig(**trainer["config"])
    return load_checkpoint(folder, **_window_of(config)).train(), trainer


def _window_of(config: TrainConfig) -> dict:
    """A hybrid's attention window: the longest read it trains on. One saved before folders named
    their window gets it here (the same computation: no read is longer), so its folders say so."""
    return {"attention_window": config.longest_read} if config.attention_after else {}


def start_from(folder: Path, config: TrainConfig) -> tuple[Mamba2LM | GraniteHybridLM, Progress]:
    """The weights in ``folder`` (shaped as ``config``'s model) and the progress its
    ``training.json`` records (steps, time, bytes, held-out losses), or a fresh count without one.
    A Mamba-2 with fewer layers of the same width is grown to the config's depth, and one of the
    config's Mamba-2 shape made the config's hybrid (learn/grow.py)."""
    hybrid = isinstance(config.model_config(), GraniteHybridConfig)
    model = load_checkpoint(folder, **_window_of(config))
    if isinstance(model, GraniteHybridLM):
        shape = ("vocab_size", "hidden_size", "layer_types", "num_attention_heads", "num_key_value_heads",
                 "shared_intermediate_size", "num_local_experts", "mamba_n_heads", "mamba_d_state", "mamba_d_head")
        found = {name: getattr(model.config, name) for name in shape}
        if not hybrid or found != {name: getattr(config.model_config(), name) for name in shape}:
            raise TrainError(f"{folder}: its hybrid shape is not config {config.name!r}'s; give --config to match")
        return model.train(), _progress_of(folder)
    if not isinstance(model, Mamba2LM):
        raise TrainError(f"{folder}: --from takes a byte-level Mamba-2 checkpoint, not {type(model).__name__}")
    wanted = config.mamba_config()
    shape = ("hidden_size", "num_hidden_layers", "state_size", "head_dim", "num_heads", "vocab_size")
    found = {name: getattr(model.config, name) for name in shape}
    if found["num_hidden_layers"] < wanted.num_hidden_layers:
        model = grow_depth(model, wanted.num_hidden_layers)
        found["num_hidden_layers"] = wanted.num_hidden_layers
    if found != {name: getattr(wanted, name) for name in shape}:
        raise TrainError(f"{folder}: its shape ({', '.join(f'{k} {v}' for k, v in found.items())}) "
                         f"is not config {config.name!r}'s; give --config to match")
    if hybrid:
        model = with_attention(model, config.model_config())
    return model.train(), _progress_of(folder)


def _progress_of(folder: Path) -> Progress:
    """The counters a checkpoint's ``training.json`` records, or a fresh count without one."""
    progress = Progress()
    record_path = folder / "training.json"
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            progress = Progress(phase=record["phase"], step=int(record["steps"]),
                                bytes_seen=dict(record["bytes_seen"]), seconds=float(record["training_seconds"]),
                                evaluations=list(record.get("evaluations", [])))
        except (ValueError, KeyError, TypeError) as error:
            raise TrainError(f"{record_path}: not a training record ({one_line(error)})") from None
    return progress


# --- evaluation ----------------------------------------------------------------------------


def heldout_sets(data: DataFolder, config: TrainConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """Fixed held-out windows (the same at every evaluation): prose, and streams and copy drills
    (their copied names) if the folder has them."""
    sets: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    prose = data.heldout_prose
    if prose is None:
        from infitool_edit.learn.corpus import CorpusError, documents

        try:
            texts = [doc.text for doc, _ in zip(documents("heldout", sources=("rust-book", "python-docs")), range(200))]
        except CorpusError:
            texts = []
        prose = pack_prose(texts) if texts else None
    rng = np.random.default_rng(1234)
    if prose is not None:
        ids, _ = sample_windows(prose, config.eval_windows, config.seq_len, rng)
        sets["prose"] = (torch.from_numpy(ids), None)
    if data.heldout_streams is not None:
        ids, mask = sample_windows(data.heldout_streams, config.eval_windows, config.stream_seq_len, rng, at_starts=1.0)
        sets["streams"] = (torch.from_numpy(ids), torch.from_numpy(mask))
    if data.heldout_copy is not None:
        ids, mask = sample_windows(data.heldout_copy, config.eval_windows, config.seq_len, rng)  # a name in each
        sets["copy"] = (torch.from_numpy(ids), torch.from_numpy(mask))
    return sets


@torch.no_grad()
def evaluate(trainer: TrainingLM, sets, world: World, dtype: torch.dtype) -> dict[str, float]:
    """Bits per learnt byte on each held-out set."""
    trainer.eval()
    results = {}
    for name, (ids, mask) in sets.items():
        total, count = 0.0, 0.0
        for start in range(0, len(ids), 4):
            batch_mask = None if mask is None else mask[start : start + 4].to(world.device)
            with autocast(world.device, dtype):
                loss, n = trainer(ids[start : start + 4].to(world.device), batch_mask)
            total, count = total + float(loss), count + float(n)
        results[f"heldout_{name}_bpb"] = round(total / max(count, 1.0) / math.log(2), 4)
    trainer.train()
    return results


def autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


# --- the loop ------------------------------------------------------------------------------


@dataclass
class TrainOptions:
    data: Path
    out: Path
    config: str = "default"
    resume: bool = False
    phase: str = "auto"  # auto | prose | streams
    threads: int | None = None
    max_steps: int | None = None  # stop after this many steps in this call (tests, smoke runs)
    max_minutes: float | None = None
    prose_mb: float | None = None
    streams_mb: float | None = None
    lr: float | None = None  # peak learning rate; a lower one continues a finished run gently
    prose_mix: float | None = None  # share of phase 2 batches from prose.jsonl (a drill mixed in there)
    decisions: float | None = None  # share of phase 2 windows at a stream's first command
    # Start the phase's budget, warm-up and cosine afresh from the checkpoint (fine-tuning on a
    # new data folder): the budget then counts only what this call reads.
    new_schedule: bool = False
    # Start a new OUT from these weights (a checkpoint folder, e.g. the shipped model/weights)
    # with a fresh optimizer and schedule, carrying its training.json's counters when it has one:
    # how a run goes on when its own OUT/latest (with trainer.pt) is gone.
    start_from: Path | None = None
    quiet: bool = False


def train(options: TrainOptions, *, report=None) -> dict:
    """Train until the phases' budgets are spent (or max_steps / max_minutes); return a summary.

    ``report(line)`` receives progress lines when no terminal shows the live bar."""
    world = join_world()
    try:
        return _train(options, world, report)
    finally:
        if world.size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(options: TrainOptions, world: World, report) -> dict:
    if world.device.type == "cpu":
        torch.set_num_threads(options.threads or min(2, os.cpu_count() or 1))
    out = Path(options.out).expanduser()
    data = DataFolder.load(options.data)

    trainer_state = None
    if options.resume and options.start_from is not None:
        raise TrainError("--resume goes on from OUT/latest, --from starts OUT from other weights: give one")
    if options.resume:
        model, trainer_state = load_training_checkpoint(out)
        config = TrainConfig(**trainer_state["config"])
        progress = Progress(**trainer_state["progress"])
    else:
        if options.config not in CONFIGS:
            raise TrainError(f"unknown config {options.config!r} (one of {', '.join(CONFIGS)})")
        if (out / "latest").exists():
            raise TrainError(f"{out}: holds a checkpoint already (add --resume to go on from it)")
        config = CONFIGS[options.config]
        torch.manual_seed(config.seed)
        if options.start_from is not None:
            model, progress = start_from(Path(options.start_from).expanduser(), config)
        else:
            model, progress = config.new_model(), Progress()
    if options.prose_mb is not None:
        config = replace(config, prose_mb=options.prose_mb)
    if options.streams_mb is not None:
        config = replace(config, streams_mb=options.streams_mb)
    if options.lr is not None:
        if not 0 < options.lr < 1:
            raise TrainError(f"--lr {options.lr}: give a learning rate between 0 and 1")
        config = replace(config, lr=options.lr)
    if options.prose_mix is not None:
        if not 0 <= options.prose_mix < 1:
            raise TrainError(f"--prose-mix {options.prose_mix}: give a share from 0 up to (not including) 1")
        config = replace(config, prose_mix=options.prose_mix)
    if options.decisions is not None:
        if not 0 <= options.decisions <= 1 - config.stream_starts:
            raise TrainError(f"--decisions {options.decisions}: give a share from 0 to {1 - config.stream_starts:g} "
                             f"(the other {config.stream_starts:g} of windows begin at a stream's start)")
        config = replace(config, stream_decisions=options.decisions)

    if options.phase not in ("auto", *PHASES):
        raise TrainError(f"unknown phase {options.phase!r} (auto, prose or streams)")
    wanted = progress.phase if options.phase == "auto" else options.phase
    if wanted == "prose" and data.prose is None:
        wanted = "streams"
    if wanted != progress.phase or options.new_schedule:
        progress.phase, progress.phase_step, progress.phase_bytes = wanted, 0, 0
    if progress.phase == "streams" and data.streams is None:
        raise TrainError(f"{data.path}: phase 2 needs streams.jsonl")

    model.to(world.device).train()
    trainer = TrainingLM(model, config.chunk)
    if world.size > 1:
        trainer = torch.nn.parallel.DistributedDataParallel(
            trainer, device_ids=[world.device.index] if world.device.type == "cuda" else None
        )
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.95), fused=world.device.type == "cuda",
    )
    rng = np.random.default_rng(config.seed * 1000 + world.rank + progress.step)
    if trainer_state is not None:
        optimizer.load_state_dict(trainer_state["optimizer"])
        saved = trainer_state.get("rngs", {}).get(str(world.rank))
        if saved is not None:
            rng.bit_generator.state = saved
    dtype = training_dtype(world.device)
    heldout = heldout_sets(data, config) if world.main else {}
    core = trainer.module if world.size > 1 else trainer

    started = time.monotonic()
    seconds_before = progress.seconds
    last_checkpoint = last_eval = started
    steps_this_call = 0
    stop = {"signal": None}

    def on_signal(number, _frame):
        stop["signal"] = number

    previous_handlers = {}
    if world.main:
        for number in (signal.SIGTERM, signal.SIGINT):
            try:
                previous_handlers[number] = signal.signal(number, on_signal)
            except ValueError:  # not the main thread
                pass

    def rngs() -> dict:
        return {str(world.rank): rng.bit_generator.state}

    def checkpoint() -> None:
        progress.seconds = seconds_before + time.monotonic() - started
        if world.main:
            save_training_checkpoint(out, model, optimizer, config, progress, data, rngs())

    def run_eval() -> dict:
        if not world.main or not heldout:
            return {}
        figures = evaluate(core, heldout, world, dtype)
        figures |= {"step": progress.step, "phase": progress.phase, "bytes": sum(progress.bytes_seen.values())}
        progress.evaluations.append(figures)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as file:
            file.write(json.dumps(figures) + "\n")
        return figures

    if world.main:
        out.mkdir(parents=True, exist_ok=True)
    first_loss = recent_loss = None
    losses: list[float] = []
    bar = _Bar(options.quiet, report)
    bar.start(config, progress, model, world, dtype)
    try:
        while True:
            phase = progress.phase
            step_bytes = config.step_bytes(phase) * world.size
            total_steps = max(1, config.budget_bytes(phase) // step_bytes)
            if progress.phase_step >= total_steps:
                if phase == "prose" and data.streams is not None:
                    progress.phase, progress.phase_step, progress.phase_bytes = "streams", 0, 0
                    continue
                break
            if options.max_steps is not None and steps_this_call >= options.max_steps:
                break
            if options.max_minutes is not None and time.monotonic() - started > options.max_minutes * 60:
                break
            if _stop_requested(world, stop):
                break

            ids, mask = _batch(config, data, phase, rng)
            lr = learning_rate(config, progress.phase_step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(world.device, dtype):
                loss_sum, count = trainer(ids.to(world.device), None if mask is None else mask.to(world.device))
            # Each process's mean over its learnt bytes; DDP averages the gradients across processes.
            loss = loss_sum / count.clamp(min=1.0)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()

            value = float(all_sum(world, loss.detach().float().reshape(1)).item()) / world.size
            losses.append(value)
            first_loss = sum(losses[:5]) / len(losses[:5]) if len(losses) <= 5 else first_loss
            recent_loss = sum(losses[-20:]) / len(losses[-20:])
            progress.step += 1
            progress.phase_step += 1
            progress.phase_bytes += step_bytes
            progress.bytes_seen[phase] = progress.bytes_seen.get(phase, 0) + step_bytes
            steps_this_call += 1
            now = time.monotonic()
            bar.update(progress, total_steps, step_bytes, recent_loss, lr)
            if now - last_eval > config.eval_minutes * 60:
                figures = run_eval()
                if figures:
                    bar.note(", ".join(f"{k} {v}" for k, v in figures.items()))
                last_eval = time.monotonic()
            if now - last_checkpoint > config.checkpoint_minutes * 60:
                checkpoint()
                last_checkpoint = time.monotonic()
    finally:
        bar.stop()
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
    figures = run_eval()
    checkpoint()
    return {
        "config": config.name,
        "phase": progress.phase,
        "steps": progress.step,
        "steps_this_call": steps_this_call,
        "first_loss": first_loss,
        "last_loss": recent_loss,
        "bytes_seen": progress.bytes_seen,
        "seconds": round(progress.seconds, 1),
        "bytes_per_second": round(bar.rate(), 1),
        "checkpoint": str(out / "latest"),
        # The same on every process under DDP (its weights stay in step): a cheap check of that.
        "parameter_checksum": float(sum(p.detach().double().abs().sum() for p in model.parameters())),
        **figures,
    }


def _stop_requested(world: World, stop: dict) -> bool:
    """A signal on process 0 stops every process at the same step."""
    flag = torch.tensor([1.0 if stop["signal"] is not None else 0.0])
    if world.size > 1:
        flag = flag.to(world.device)
        dist.all_reduce(flag)
    return bool(flag.item() > 0)


def _batch(config: TrainConfig, data: DataFolder, phase: str, rng: np.random.Generator):
    if phase == "streams" and (data.prose is None or rng.random() >= config.prose_mix):
        ids, mask = sample_windows(
            data.streams, config.stream_batch, config.stream_seq_len, rng, at_starts=config.stream_starts,
            at_decisions=config.stream_decisions,
        )
        return torch.from_numpy(ids), torch.from_numpy(mask)
    if data.prose is None:
        raise DataError(f"{data.path}: phase 1 needs prose.jsonl")
    # Prose in phase 2 is read in phase 2's window shape, so every step costs the same.
    batch, length = (config.batch, config.seq_len) if phase == "prose" else (config.stream_batch, config.stream_seq_len)
    ids, _ = sample_windows(data.prose, batch, length, rng)
    return torch.from_numpy(ids), None


class _Bar:
    """A rich progress bar on a terminal (bytes/s, loss, ETA); plain lines every 30 s otherwise."""

    def __init__(self, quiet: bool, report) -> None:
        self.quiet, self.report = quiet, report
        self.progress = None
        self.started = time.monotonic()
        self.bytes = 0
        self.last_line = 0.0

    def rate(self) -> float:
        return self.bytes / max(1e-9, time.monotonic() - self.started)

    def start(self, config, progress: Progress, model, world: World, dtype) -> None:
        self.enabled = world.main and not self.quiet
        if not self.enabled:
            return
        from rich.console import Console

        console = Console(stderr=True)
        params = sum(p.numel() for p in model.parameters())
        self.say(
            f"config {config.name}: {params / 1e6:.2f}M parameters, {world.size} process(es) on {world.device.type}, "
            f"{str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} threads; phase {progress.phase}, "
            f"step {progress.step}"
        )
        if console.is_terminal and self.report is None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.fields[phase]}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                TextColumn("{task.fields[rate]} B/s"), TextColumn("loss {task.fields[loss]}"),
                TextColumn("lr {task.fields[lr]}"), TimeRemainingColumn(), console=console,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=1, phase=progress.phase, rate="-", loss="-", lr="-")

    def say(self, line: str) -> None:
        if self.report is not None:
            self.report(line)
        elif self.progress is not None:
            self.progress.console.print(line)
        else:
            print(line, flush=True)

    def note(self, line: str) -> None:
        if self.enabled:
            self.say(line)

    def update(self, progress: Progress, total_steps: int, step_bytes: int, loss: float, lr: float) -> None:
        self.bytes += step_bytes
        if not self.enabled:
            return
        rate = self.rate()
        if self.progress is not None:
            self.progress.update(
                self.task, total=total_steps, completed=progress.phase_step, phase=progress.phase,
                rate=f"{rate:,.0f}", loss=f"{loss:.3f}", lr=f"{lr:.1e}",
            )
        elif time.monotonic() - self.last_line > 30:
            self.last_line = time.monotonic()
            remaining = (total_steps - progress.phase_step) * step_bytes / max(rate, 1e-9)
            self.say(
                f"{time.strftime('%H:%M:%S')} phase {progress.phase} step {progress.phase_step}/{total_steps} "
                f"loss {loss:.3f} lr {lr:.1e} {rate:,.0f} B/s eta {remaining / 60:.0f} min"
            )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
