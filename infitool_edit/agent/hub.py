"""Finding and getting models the way the ecosystem does: the Hugging Face cache.

``--model`` takes a folder or a hub id (``org/name``). A hub id is looked up in
the local cache (``HF_HOME``, default ``~/.cache/huggingface/hub``) with
``huggingface_hub``'s offline lookup (``snapshot_download(...,
local_files_only=True)``): nothing is ever downloaded while a model runs. A
writer with a network gets a model once with ``infitool-edit pull ID``
(``huggingface_hub``'s own download, with its progress bars) and the same id
then works everywhere, offline.

``CATALOGUE`` is the list of models issue 10 names: the few instruct
state-space models a writer can run on their own machine. Their memory is
computed from a parameter count: the cached folder's tensor headers when the
model is in the cache (``model.inspect``, exact), else the nominal count of
the hub id and model card (said so in the table).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from infitool_edit.errors import InfitoolError

# org/name as the hub spells repository ids: no leading dot or slash, one slash.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class HubError(InfitoolError, ValueError):
    """A model that cannot be found or fetched (one line)."""


@dataclass(frozen=True)
class CatalogueModel:
    hub_id: str
    parameters: int  # nominal: the size in the hub id / model card (see the module doc)
    architecture: str
    licence: str
    machine: str  # for whom it is the model to get


CATALOGUE: tuple[CatalogueModel, ...] = (
    CatalogueModel("fla-hub/rwkv7-0.1B-g1", 191_000_000, "RWKV-7", "Apache-2.0", "any laptop (tries, tests)"),
    CatalogueModel("fla-hub/rwkv7-0.4B-g1", 450_000_000, "RWKV-7", "Apache-2.0", "a laptop CPU, 8 GB"),
    CatalogueModel("fla-hub/rwkv7-1.5B-g1", 1_530_000_000, "RWKV-7", "Apache-2.0", "a laptop CPU, 16 GB"),
    CatalogueModel("fla-hub/rwkv7-2.9B-g1", 2_950_000_000, "RWKV-7", "Apache-2.0", "a desktop CPU, 16-32 GB"),
    CatalogueModel("ibm-granite/granite-4.0-h-350m", 340_000_000, "Granite-4.0-H", "Apache-2.0", "a laptop CPU, 8 GB"),
    CatalogueModel("ibm-granite/granite-4.0-h-1b", 1_500_000_000, "Granite-4.0-H", "Apache-2.0", "a laptop CPU, 16 GB"),
    CatalogueModel("ibm-granite/granite-4.0-h-micro", 3_200_000_000, "Granite-4.0-H", "Apache-2.0", "a desktop CPU, 32 GB"),
    CatalogueModel("tiiuae/Falcon3-Mamba-7B-Instruct", 7_270_000_000, "Mamba-1", "Falcon-LLM (TII)", "a GPU, or a CPU with 64 GB"),
    CatalogueModel("tiiuae/falcon-mamba-7b-instruct", 7_270_000_000, "Mamba-1", "Falcon-LLM (TII)", "a GPU, or a CPU with 64 GB"),
    CatalogueModel("mistralai/Mamba-Codestral-7B-v0.1", 7_290_000_000, "Mamba-2", "Apache-2.0", "a GPU, or a CPU with 64 GB"),
)


def is_hub_id(spec: str) -> bool:
    return bool(_HUB_ID.match(spec))


def cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(hub_id: str) -> Path | None:
    """The folder of ``hub_id``'s cached snapshot (``refs/main``), or None; never downloads."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(hub_id, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, FileNotFoundError):
        return None


def resolve_model(spec: str | Path) -> tuple[Path, str]:
    """A ``--model`` value as (checkpoint folder, the model's name): an existing folder
    is itself; an ``org/name`` that is not a folder is looked up in the cache."""
    text = str(spec)
    folder = Path(text).expanduser()
    if folder.is_dir():
        return folder, folder.name
    if not is_hub_id(text):
        raise HubError(f"{text}: no such checkpoint folder (nor a hub id org/name)")
    snapshot = cached_snapshot(text)
    if snapshot is None:
        raise HubError(f"{text} is not in the Hugging Face cache ({cache_dir()}); get it with `infitool-edit pull {text}`")
    return snapshot, text


def pull(hub_id: str) -> Path:
    """Download ``hub_id``'s snapshot into the cache (huggingface_hub's progress bars on
    stderr) and return its folder. Without a network: one line."""
    if not is_hub_id(hub_id):
        raise HubError(f"{hub_id}: not a hub id (org/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(hub_id))
    except LocalEntryNotFoundError:  # what offline mode and a refused connection both end in
        raise HubError(f"cannot download {hub_id}: the hub cannot be reached (no network, or HF_HUB_OFFLINE is set)") from None
    except GatedRepoError:
        raise HubError(f"cannot download {hub_id}: it is gated; accept its licence on its page and log in (hf auth login)") from None
    except RepositoryNotFoundError:
        raise HubError(f"cannot download {hub_id}: no such model on the hub (or it is private)") from None
    except Exception as error:  # noqa: BLE001  a full disk, a cut connection: still one line
        reason = " ".join(str(error).split()) or type(error).__name__
        raise HubError(f"cannot download {hub_id}: {reason.split('. ')[0][:160]}") from None


# ---- the catalogue as a table ----------------------------------------------------------------

@dataclass(frozen=True)
class CatalogueRow:
    model: CatalogueModel
    folder: Path | None  # the cached snapshot, if any
    parameters: int
    parameters_from: str
    cpu_fp32: int  # bytes of weights
    cpu_int8: int
    gpu_bf16: int

    def to_dict(self) -> dict:
        return {
            "id": self.model.hub_id, "architecture": self.model.architecture, "licence": self.model.licence,
            "parameters": self.parameters, "parameters_from": self.parameters_from,
            "cpu_fp32_bytes": self.cpu_fp32, "cpu_int8_bytes": self.cpu_int8, "gpu_bf16_bytes": self.gpu_bf16,
            "cached": self.folder is not None, "use": self.use, "for": self.model.machine,
        }

    @property
    def use(self) -> str:
        return f"--model {self.model.hub_id}" if self.folder else f"infitool-edit pull {self.model.hub_id}"


def int8_bytes(parameters: int) -> int:
    """Weight-only int8 from a bare count: one byte a weight plus an fp16 scale per row
    (a row of 2,048 as a typical width)."""
    return parameters + 2 * math.ceil(parameters / 2048)


def catalogue_rows() -> list[CatalogueRow]:
    rows = []
    for entry in CATALOGUE:
        folder = cached_snapshot(entry.hub_id)
        count, source = entry.parameters, "nominal (hub id, model card)"
        fp32, int8 = 4 * count, int8_bytes(count)
        if folder is not None:
            measured = _inspected(folder)
            if measured is not None:
                count, source, fp32, int8 = measured
        rows.append(CatalogueRow(entry, folder, count, source, fp32, int8, 2 * count))
    return rows


def _inspected(folder: Path):
    from infitool_edit.model import CheckpointError
    from infitool_edit.model.inspect import inspect_folder

    try:
        report = inspect_folder(folder)
    except (CheckpointError, OSError):
        return None
    if report.parameters is None or not report.memory_bytes:
        return None
    return report.parameters, report.parameters_from, report.memory_bytes["fp32"], report.memory_bytes["int8"]


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB"
