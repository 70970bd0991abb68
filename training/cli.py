"""`shiren train …`: pretraining, export of the shipped weights (SFT and feedback tuning join later)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Train Shiren's models.", no_args_is_help=True)


@app.command("pretrain")
def pretrain(
    size: str = typer.Option("base", help="Model size preset: tiny, small, base, medium."),
    arch: str = typer.Option("gpt2", help="gpt2 or llama (RoPE/RMSNorm/SwiGLU)."),
    epochs: float = typer.Option(1.0, help="Passes over the train split (ignored when --max-steps is set)."),
    max_steps: int = typer.Option(0, help="Optimizer steps; 0 = derive from --epochs."),
    batch: int = typer.Option(32, help="Sequences per step (each block-size tokens)."),
    block_size: int = typer.Option(256, help="Context length."),
    lr: float = typer.Option(2e-3, help="Peak learning rate."),
    out: Path | None = typer.Option(None, help="Run dir (default: SHIREN_HOME/runs/pretrain)."),
    ckpt_minutes: float = typer.Option(5.0, help="Minutes between checkpoints."),
    seed: int = typer.Option(1337),
    no_bf16: bool = typer.Option(False, "--no-bf16", help="Train in fp32."),
) -> None:
    """Pretrain the base GPT on the prepared corpus (resumes automatically from OUT/ckpt)."""
    from core import paths
    from core.types import ShirenError
    from training.data import token_stream
    from training.model import SIZES, GPTConfig
    from training.pretrain import TrainConfig, train
    from training.tokenizer import load_tokenizer

    if size not in SIZES:
        raise ShirenError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    ds = paths.dataset_dir()
    if not (ds / "train.parquet").exists():
        raise ShirenError(f"no dataset in {ds}; run `shiren data prepare` first")
    tok = load_tokenizer(paths.tokenizer_dir())
    out = out or paths.data_home() / "runs" / "pretrain"
    mc = GPTConfig(arch=arch, vocab_size=len(tok), block_size=block_size, **SIZES[size])
    cfg = TrainConfig(out_dir=str(out), dataset_dir=str(ds), model=mc, batch_size=batch, lr=lr,
                      epochs=epochs, max_steps=max_steps, ckpt_minutes=ckpt_minutes, seed=seed, bf16=not no_bf16)
    tr = train(cfg, tok, token_stream(ds, "train", tok), token_stream(ds, "valid", tok))
    typer.echo(f"done: step {tr.step_no}/{cfg.max_steps}; valid loss {tr.valid_loss():.4f}; run dir {out}")


@app.command("export")
def export(
    run: Path | None = typer.Option(None, help="Pretraining run dir (default: SHIREN_HOME/runs/pretrain)."),
    out: Path = typer.Option(Path("models/base"), help="Where to write the HF model dir."),
) -> None:
    """Export a run's final checkpoint as the shipped base model (bf16 safetensors + tokenizer)."""
    from core import paths
    from training.export import export_base

    run = run or paths.data_home() / "runs" / "pretrain"
    info = export_base(run / "ckpt", paths.tokenizer_dir(), out)
    typer.echo(f"exported step {info['step']} to {out}")
