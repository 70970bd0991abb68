"""Which LoRA adapter the poet uses: an explicit one, else the database's active one, else the shipped default.

Shipped adapters live in `models/adapters/<name>/` (peft folders); `models/adapters/ACTIVE` names the
default. Adapters trained later (feedback rounds) live in `SHIREN_HOME/adapters/<name>/` and are
promoted through the database (`shiren model promote`).

An adapter is trained on one base model and names it, peft's way (`base_model_name_or_path` in
`adapter_config.json`): "shiren/base-<digest>", the digest of the base's weights (`base_id`). It is
never loaded on another base: an explicit one is refused with a clear message, and a database adapter
of another base (after a new base model shipped) is retired and the poet falls back to the default.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from core import paths

# peft's file names inside an adapter folder (PeftModel.save_pretrained writes them; from_pretrained reads them).
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"

log = logging.getLogger(__name__)
BASE_REF_PREFIX = "shiren/"
_BASE_REF = re.compile(r"^shiren/(base-[0-9a-f]{8})$")


def base_id(model_dir: Path) -> str:
    """The base model's identity: "base-" + a digest of its weights (first MiB and size)."""
    f = Path(model_dir) / "model.safetensors"
    if not f.exists():
        return "base-unknown"
    h = hashlib.sha256()
    with open(f, "rb") as fh:
        h.update(fh.read(1 << 20))
    h.update(str(f.stat().st_size).encode())
    return "base-" + h.hexdigest()[:8]


def base_ref(model_dir: Path) -> str:
    """What an adapter trained on `model_dir` records as its base (`base_model_name_or_path`)."""
    return BASE_REF_PREFIX + base_id(model_dir)


def adapter_base(adapter_dir: Path) -> str | None:
    """The base id an adapter names, or None where it names none we can check (an older adapter)."""
    try:
        cfg = json.loads((Path(adapter_dir) / "adapter_config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    m = _BASE_REF.match(str(cfg.get("base_model_name_or_path") or ""))
    return m.group(1) if m else None


def base_mismatch(adapter_dir: Path, model_dir: Path) -> str:
    """Why `adapter_dir` must not be loaded on `model_dir` ("" when it may)."""
    want, have = adapter_base(adapter_dir), base_id(model_dir)
    if want is None:
        return (f"the adapter {Path(adapter_dir).name} names no base model version (it predates them), so it "
                f"cannot be checked against {have}: retrain it on this base (shiren train sft)")
    if want != have:
        return (f"the adapter {Path(adapter_dir).name} was trained on {want}, not on this base model ({have}); "
                "an adapter only fits the base it was trained on: retrain it (shiren train sft)")
    return ""


def shipped_adapters_dir() -> Path:
    return paths.shipped_models_dir() / "adapters"


def user_adapters_dir() -> Path:
    return paths.data_home() / "adapters"


def is_adapter(path: Path) -> bool:
    return (Path(path) / ADAPTER_CONFIG).exists() and (Path(path) / ADAPTER_WEIGHTS).exists()


def shipped_default() -> Path | None:
    marker = shipped_adapters_dir() / "ACTIVE"
    if not marker.exists():
        return None
    p = shipped_adapters_dir() / marker.read_text("utf-8").strip()
    return p if is_adapter(p) else None


def resolve_adapter(explicit: Path | None = None, database_url: str | None = None,
                    model_dir: Path | None = None) -> Path | None:
    """The adapter dir to load, or None for the bare base model. The shipped default adapter belongs to
    the shipped base model: with another base (`model_dir`), only an explicit or database adapter applies."""
    if explicit is not None:
        return Path(explicit)
    try:
        url = database_url
        db_file = paths.data_home() / "shiren.db"
        if url is not None or db_file.exists():  # no database, no need to import one (~0.7 s)
            from db.store import Store

            base = Path(model_dir) if model_dir is not None else paths.shipped_models_dir() / "base"
            with Store(url, upgrade=False) as store:
                rec = store.active_adapter()
                if rec is not None and is_adapter(Path(rec.path)):
                    why = base_mismatch(Path(rec.path), base)
                    if not why:
                        return Path(rec.path)
                    store.retire_adapter(rec.name)  # it belongs to an earlier base model
                    log.warning("retired %s: %s", rec.name, why)
    except Exception:  # noqa: BLE001 - an unreadable/old database must not stop the poet; fall back
        pass
    shipped_base = paths.shipped_models_dir() / "base"
    if model_dir is not None and Path(model_dir).resolve() != shipped_base.resolve():
        return None
    return shipped_default()
