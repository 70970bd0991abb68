"""`shiren train …`: pretraining, export of the shipped weights (SFT and feedback tuning join later)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Train Shiren's models.", no_args_is_help=True)


@app.command("pretrain")
def pretrain(
    size: str = typer.Option("base", help="Model size preset (training.model.SIZES); --n-layer/--n-embd override."),
    arch: str = typer.Option("gpt2", help="gpt2 or llama (RoPE/RMSNorm/SwiGLU)."),
    n_layer: int = typer.Option(0, help="Layers (0: the preset's)."),
    n_embd: int = typer.Option(0, help="Width (0: the preset's); heads = width / 64."),
    epochs: float = typer.Option(1.0, help="Passes over the train split (ignored when --max-steps/--tokens is set)."),
    max_steps: int = typer.Option(0, help="Optimizer steps; 0 = derive from --tokens or --epochs."),
    tokens: float = typer.Option(0, help="Total training tokens (e.g. 2e8); sets --max-steps."),
    batch: int = typer.Option(32, help="Sequences per optimizer step (each block-size tokens), all devices together."),
    micro_batch: int = typer.Option(0, help="Sequences per forward (gradient accumulation); 0 = by device."),
    block_size: int = typer.Option(256, help="Context length."),
    lr: float = typer.Option(2e-3, help="Peak learning rate."),
    warmup: int = typer.Option(200, help="LR warm-up steps."),
    eval_interval: int = typer.Option(250, help="Steps between valid-loss measurements."),
    out: Path | None = typer.Option(None, help="Run dir (default: SHIREN_HOME/runs/pretrain)."),
    ckpt_minutes: float = typer.Option(5.0, help="Minutes between checkpoints."),
    seed: int = typer.Option(1337),
    bf16: bool | None = typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast (default: where the hardware has fast bf16)."),
    compile: str = typer.Option("auto", help="torch.compile: auto (where a compiler is present), on, off."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda."),
    threads: int = typer.Option(0, help="CPU threads (0 = the usable cores)."),
    adaptive_threads: bool = typer.Option(False, "--adaptive-threads",
                                          help="Use only the cores other processes leave free (up to --threads)."),
    resume_from_weights: str = typer.Option(
        "auto", help="When OUT/ckpt is missing: restart from these weights (a `shiren train snapshot` dir) with a "
        "fresh optimizer; auto = models/base-snapshot if this same run made it; none = never."),
    rewarm_steps: int = typer.Option(100, help="LR re-warm-up steps after a restart from weights."),
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
    dims = dict(SIZES[size])
    if n_layer:
        dims["n_layer"] = n_layer
    if n_embd:
        dims.update(n_embd=n_embd, n_head=max(1, n_embd // 64))
    if tokens and not max_steps:
        max_steps = max(1, round(tokens / (batch * block_size)))
    mc = GPTConfig(arch=arch, vocab_size=len(tok), block_size=block_size, **dims)
    cfg = TrainConfig(out_dir=str(out), dataset_dir=str(ds), model=mc, batch_size=batch, lr=lr, warmup_steps=warmup,
                      epochs=epochs, max_steps=max_steps, eval_interval=eval_interval, ckpt_minutes=ckpt_minutes,
                      seed=seed, bf16=bf16, compile=compile, micro_batch=micro_batch, num_threads=threads,
                      adaptive_threads=adaptive_threads, device=device, init_from=resume_from_weights, rewarm_steps=rewarm_steps)
    tr = train(cfg, tok, token_stream(ds, "train", tok), token_stream(ds, "valid", tok))
    typer.echo(f"done: step {tr.step_no}/{cfg.max_steps}; valid loss {tr.valid_loss():.4f}; run dir {out}")


@app.command("critic")
def critic(
    stage: str = typer.Option("all", help="mlm, human, rating, export, or all (in that order)."),
    minutes: float = typer.Option(45.0, help="Wall-time cap of this session's masked-LM pretraining (it resumes)."),
    max_steps: int = typer.Option(3000, help="Length of the masked-LM schedule."),
    batch: int = typer.Option(128, help="Poems per masked-LM step."),
    mask_rate: float = typer.Option(0.25, help="Share of characters masked and predicted in training "
                                               "(validation always masks 15%)."),
    lr: float = typer.Option(2e-3, help="Peak learning rate of the masked LM."),
    buckets: int = typer.Option(16, help="Length buckets: each batch holds poems of similar length."),
    init_from: Path | None = typer.Option(None, "--init-from", help="A critic dir (e.g. models/critic) to restart the "
                                          "masked LM from when the run dir has no checkpoint (a new machine)."),
    per_form: int = typer.Option(300, help="Requests per form for the human-likeness head's samples."),
    out: Path | None = typer.Option(None, help="Run dir (default: SHIREN_HOME/runs/critic)."),
    export_to: Path = typer.Option(Path("models/critic"), "--export-to", help="Where the shipped critic goes."),
    threads: int = typer.Option(1, help="torch threads (leave the CPU to the generator's own training)."),
    database_url: str | None = typer.Option(None, "--database-url", envvar="SHIREN_DATABASE_URL"),
    score: str | None = typer.Option(None, help="What the critic chooses and mends by: human (the human-likeness "
                                               "head) or pll (the masked LM's pseudo-likelihood); default: keep its card's."),
) -> None:
    """Train the critic: masked-LM pretraining (resumable), the human-likeness and rating heads, the export."""
    import torch

    from core import paths
    from core.critic.critic import SCORES, Critic
    from core.types import ShirenError
    from training.critic_heads import train_human_head, train_rating_head
    from training.critic_mlm import MLMConfig, train_mlm
    from training.critic_train import MIN_RATINGS_TO_FIT, export, human_head_data

    stages = ("mlm", "human", "rating", "export")
    if score is not None and score not in SCORES:
        raise ShirenError(f"unknown critic score {score!r}; choose one of {', '.join(SCORES)}")
    if stage != "all" and stage not in stages:
        raise ShirenError(f"unknown stage {stage!r}; choose one of {', '.join(stages)} or all")
    todo = stages if stage == "all" else (stage,)
    torch.set_num_threads(threads)
    ds = paths.dataset_dir()
    if not (ds / "train.parquet").exists():
        raise ShirenError(f"no dataset in {ds}; run `shiren data prepare` first")
    out = out or paths.data_home() / "runs" / "critic"
    heads_dir = out / "heads"
    if "mlm" in todo:
        cfg = MLMConfig(out_dir=str(out), dataset_dir=str(ds), max_steps=max_steps, threads=threads, batch_size=batch,
                        mask_rate=mask_rate, lr=lr, length_buckets=buckets, init_from=str(init_from or ""))
        c = train_mlm(cfg, minutes=minutes, log=typer.echo)
        typer.echo(f"masked LM: {c.card.metrics}")
    src = heads_dir if (heads_dir / "config.json").exists() and "human" not in todo else out / "ckpt"
    if not (src / "config.json").exists():
        raise ShirenError(f"no critic checkpoint in {out}; run `shiren train critic --stage mlm` first")
    from core.device import resolve_device

    crit = Critic.load(src).to(resolve_device())  # the heads' features: one forward per poem, on CUDA when present
    from core.poet import Poet

    gen_version = ""
    if "human" in todo:
        poet = Poet.load(critic=None)
        gen_version = poet.version
        real, gen = human_head_data(poet, ds, per_form, seed=0, log=typer.echo)
        poet.close()
        typer.echo(f"human-likeness head: {train_human_head(crit, real, gen)}")
        crit.card.metrics["human_generator"] = gen_version
        crit.card.metrics["human_decoding"] = (f"contrastive β {poet.contrast.beta:g}, α {poet.contrast.alpha:g}"
                                               if poet.contrast is not None else "plain")
    if "rating" in todo:
        from db.store import Store

        with Store(database_url) as store:
            rated = store.rated_poems()
        if len(rated) >= MIN_RATINGS_TO_FIT:
            typer.echo(f"rating head: {train_rating_head(crit, rated)}")
        else:
            typer.echo(f"rating head skipped: {len(rated)} ratings (< {MIN_RATINGS_TO_FIT})")
    if score is not None:
        crit.card.score = score
    crit.save(heads_dir, dtype=torch.float32)
    crit = Critic.load(heads_dir)
    if "export" in todo:
        export(crit, export_to, crit.card.metrics.get("human_generator", gen_version))
        typer.echo(f"exported the critic to {export_to}")


@app.command("export")
def export(
    run: Path | None = typer.Option(None, help="Pretraining run dir (default: SHIREN_HOME/runs/pretrain)."),
    out: Path = typer.Option(Path("models/base"), help="Where to write the HF model dir."),
) -> None:
    """Export a run's final checkpoint as the shipped base model (bf16 safetensors + tokenizer)."""
    from core import paths
    from training.export import export_base

    run = run or paths.data_home() / "runs" / "pretrain"
    info = export_base(run / "ckpt", paths.tokenizer_dir(), out, paths.dataset_dir())
    typer.echo(f"exported step {info['step']} to {out} ({info.get('corpus_lines', 0):,} corpus clauses)")


@app.command("snapshot")
def snapshot(
    run: Path | None = typer.Option(None, help="Pretraining run dir (default: SHIREN_HOME/runs/pretrain)."),
    out: Path | None = typer.Option(None, help="Snapshot dir (default: models/base-snapshot, replaced)."),
) -> None:
    """Export the run's latest checkpoint as the one mid-run snapshot to commit (bf16 weights + config, no
    optimizer state). On a new machine, `shiren train pretrain` with the same flags restarts from it."""
    from core import paths
    from training.export import export_snapshot
    from training.pretrain import default_snapshot_dir

    run = run or paths.data_home() / "runs" / "pretrain"
    out = out or default_snapshot_dir()
    info = export_snapshot(run / "ckpt", paths.tokenizer_dir(), out)
    typer.echo(f"snapshot of step {info['step']}/{info['train_config']['max_steps']} in {out}; commit it "
               f"(git add {out}) to carry the run to another machine")


@app.command("sweep")
def sweep(
    runs: list[Path] = typer.Argument(..., help="Sweep run dirs (each with metrics.jsonl)."),
    png: Path = typer.Option(Path("docs/scaling-sweep.png"), help="The plot."),
    md: Path = typer.Option(Path("docs/scaling-sweep.md"), help="The table and fit (Markdown)."),
    budget_flops: float = typer.Option(0.0, help="Compute to plan for (0: the default of training.sweep)."),
) -> None:
    """Table, plot and scaling-law fit of an equal-budget sweep, from its runs' logs."""
    from training.sweep import DEFAULT_BUDGET_FLOPS, report

    typer.echo(report(runs, png, md, budget_flops or DEFAULT_BUDGET_FLOPS))


@app.command("sft")
def sft(
    name: str = typer.Option("sft", help="Adapter name (its folder name)."),
    base: Path | None = typer.Option(None, help="Base model dir (default: SHIREN_MODEL_DIR or models/base)."),
    out: Path | None = typer.Option(None, help="Adapter dir (default: SHIREN_HOME/adapters/NAME)."),
    steps: int = typer.Option(600, help="Optimizer steps (ignored when --epochs is given)."),
    epochs: float = typer.Option(0.0, help="Passes over the whole instruction set (sets the steps)."),
    batch: int = typer.Option(32),
    lr: float = typer.Option(1e-3),
    rank: int = typer.Option(16, help="LoRA rank."),
    lora_dropout: float = typer.Option(0.05, help="Dropout on the LoRA inputs (0 skips it: ~22% faster a step)."),
    modules: str = typer.Option("all", help="LoRA targets: all (attention and MLP projections), attn or mlp."),
    n_cipai: int = typer.Option(60, help="Train 词 only of the most common N 词牌."),
    valid_examples: int = typer.Option(512),
    mix: str = typer.Option("default", help="Request mix: default (title alone most common) or db (measured "
                                             "from stored requests, when there are at least 200)."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, help="torch threads (0: all cores; 1 is faster beside another job)."),
    adaptive_threads: bool = typer.Option(False, help="Follow the cores other processes leave free, up to "
                                                      "--threads (CPU)."),
    group_by_length: bool = typer.Option(True, help="Batch examples of similar length (1.6x less padding)."),
    ckpt_minutes: float = typer.Option(10.0, help="Save the resumable state this often (SHIREN_HOME/runs/sft-NAME)."),
) -> None:
    """LoRA-fine-tune the base model to follow requests (title, keywords, acrostic, first line).
    Resumable: the same command again continues from the last checkpoint."""
    import math
    import platform

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core import paths
    from core.gelv import top_cipai
    from core.types import ShirenError
    from training.corpus import load_split
    from training.sft import SFTConfig, save_adapter, train_sft
    from training.sft_data import DEFAULT_MIX, SFT_FORMS, RequestMix, build_examples

    base = base or paths.model_dir()
    if not (base / "config.json").exists():
        raise ShirenError(f"no base model at {base}")
    out = out or paths.data_home() / "adapters" / name
    from core.device import describe, resolve_device

    device = resolve_device()  # SHIREN_DEVICE, else CUDA when present (train_sft follows the model's device)
    tok = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).to(device)
    ds = paths.dataset_dir()
    try:
        train_rows, valid_rows = load_split(ds, "train"), load_split(ds, "valid")
    except FileNotFoundError as e:
        raise ShirenError(str(e)) from e
    wl = set(top_cipai(n_cipai))
    request_mix = DEFAULT_MIX
    if mix == "db":
        from db.store import Store

        with Store(upgrade=False) as store:
            measured = RequestMix.from_requests(store.request_conditions())
        if measured is None:
            typer.echo("fewer than 200 stored requests: using the default request mix")
        else:
            request_mix = measured
    elif mix != "default":
        raise ShirenError(f"unknown request mix {mix!r}; use default or db")
    train_ex = build_examples(train_rows, seed, wl, request_mix)
    valid_ex = build_examples(valid_rows, seed + 1, wl, request_mix)[:valid_examples]
    if not train_ex or not valid_ex:
        raise ShirenError(f"no instruction examples to {'train' if not train_ex else 'validate'} on: is the "
                          f"dataset in {ds} complete? (shiren data prepare)")
    if epochs > 0:
        steps = max(1, math.ceil(epochs * len(train_ex) / batch))
    from training.sft import LORA_MODULE_SETS

    if modules not in LORA_MODULE_SETS:
        raise ShirenError(f"unknown --modules {modules!r}; use {', '.join(LORA_MODULE_SETS)}")
    cfg = SFTConfig(rank=rank, alpha=2 * rank, dropout=lora_dropout, lr=lr, batch_size=batch, max_steps=steps, seed=seed, threads=threads,
                    adaptive_threads=adaptive_threads, group_by_length=group_by_length, ckpt_minutes=ckpt_minutes,
                    targets=LORA_MODULE_SETS[modules])
    from core.adapters import base_ref

    ckpt = paths.data_home() / "runs" / f"sft-{name}" / "ckpt"
    typer.echo(f"{len(train_ex):,} train examples, {len(valid_ex):,} valid; training {steps} steps "
               f"(resumable: {ckpt})")
    ident = {"base": base_ref(base), "mix": dict(request_mix.shares), "n_cipai": n_cipai,
             "valid_examples": len(valid_ex)}
    peft_model, hist = train_sft(model, tok, train_ex, valid_ex, cfg, ckpt_dir=ckpt, run_identity=ident,
                                 log=lambda r: typer.echo(f"resumed at step {r['resumed_at']}")
                                 if "resumed_at" in r else None)
    info = {"train_examples": len(train_ex), "valid_examples": len(valid_ex), "forms": list(SFT_FORMS),
            "cipai": len(wl), "examples_seen": steps * batch, "epochs": round(steps * batch / len(train_ex), 3),
            "request_mix": dict(request_mix.shares),
            "hardware": describe(device) if device.type == "cuda"
            else f"{platform.machine()} CPU × {torch.get_num_threads()} threads"}
    info["resumed_at_steps"] = hist.get("resumes", [])
    save_adapter(peft_model, out, base_ref(base), cfg, hist, info)
    import shutil

    shutil.rmtree(ckpt.parent, ignore_errors=True)  # the adapter is the artefact now; a rerun starts afresh
    typer.echo(f"adapter saved to {out}: valid loss {hist['valid_loss_before']:.3f} → {hist['valid_loss_after']:.3f}")


@app.command("card")
def card(
    run: Path | None = typer.Option(None, help="Pretraining run dir (default: SHIREN_HOME/runs/pretrain)."),
    model: Path = typer.Option(Path("models/base"), help="The exported model dir to describe."),
    samples: int = typer.Option(10),
    adapter: Path | None = typer.Option(None, help="An adapter trained on this base: adds one poem per request kind."),
    kinds_only: bool = typer.Option(False, "--kinds-only", help="Rewrite only the card's poem-per-request-kind "
                                                                "section (needs --adapter; no run dir)."),
) -> None:
    """Write the base model's card (README.md): data, size, tokens, compute, losses, the sweep, raw samples
    and, with --adapter, one poem per request kind."""
    from core import paths
    from training.model_card import refresh_kinds_section, write_base_card

    if kinds_only:
        if adapter is None:
            raise typer.BadParameter("--kinds-only needs --adapter")
        typer.echo(f"rewrote the request-kind section of {refresh_kinds_section(model, adapter)}")
        return

    run = run or paths.data_home() / "runs" / "pretrain"
    write_base_card(run, model, paths.dataset_dir(), samples, adapter=adapter)
    typer.echo(f"wrote {model / 'README.md'}")


@app.callback()
def _train() -> None:
    """Train Shiren's models: pretrain, export, card, sft, feedback."""


def eval_command(
    per_form: int = typer.Option(40, "--per-form", help="Requests per form (5 forms)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Also score the base model sampling freely."),
    json_output: bool = typer.Option(False, "--json"),
    out: Path | None = typer.Option(None, "--out", help="Also write the full result (with samples) as JSON."),
    model_dir: Path | None = typer.Option(None, "--model-dir", envvar="SHIREN_MODEL_DIR"),
    adapter: Path | None = typer.Option(None, "--adapter"),
    form_eval: bool = typer.Option(True, "--form/--no-form", help="The form/rhyme/conditioning table."),
    heldout: bool = typer.Option(True, "--heldout/--no-heldout",
                                 help="Held-out loss of the base model and the adapter on the valid split."),
    heldout_poems: int = typer.Option(0, "--heldout-poems", help="Cap on valid poems for the held-out loss (0 = all)."),
    two_sample: bool = typer.Option(False, "--two-sample",
                                    help="Also the two-sample test: real test poems vs poems generated for the same requests."),
    two_sample_per_form: int = typer.Option(40, "--two-sample-per-form", help="Pairs per form for --two-sample."),
    two_sample_dir: Path | None = typer.Option(None, "--two-sample-dir",
                                               help="Where --two-sample writes real.jsonl, generated.jsonl and its result."),
    seed: int = typer.Option(0, "--seed", help="Seed of the two-sample requests, folds and classifiers."),
    threads: int = typer.Option(0, "--threads", help="torch threads (0 = torch's default)."),
    contrast: bool = typer.Option(True, "--contrast/--no-contrast",
                                  help="Sample as the poet does by default (contrastive decoding against the shipped "
                                       "amateur, when it fits) or plainly."),
) -> None:
    """Measure format, rhyme, tone, conditioning, copying and diversity on requests from the test split;
    the held-out loss; with --two-sample, whether classifiers can tell the poems from real ones."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core import paths
    from core.atomic import write_text
    from core.poet import Poet
    from core.types import ShirenError
    from training.corpus import load_split
    from training.evaluate import print_result, run_eval

    if threads:
        torch.set_num_threads(threads)
    poet = Poet.load(model_dir, adapter if adapter is not None else "auto", amateur="auto" if contrast else None)
    base_dir = model_dir or paths.model_dir()
    base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    try:
        rows = load_split(paths.dataset_dir(), "test")
        valid_rows = load_split(paths.dataset_dir(), "valid") if heldout else []
    except FileNotFoundError as e:
        raise ShirenError(str(e)) from e
    result: dict = {"model_version": poet.version,
                    "contrast": None if poet.contrast is None else {"beta": poet.contrast.beta,
                                                                    "alpha": poet.contrast.alpha}}
    if form_eval:
        result.update(run_eval(poet, base, tok, rows, per_form, baseline, progress=not json_output))
    if heldout:
        from training.heldout import heldout_losses

        result["heldout"] = heldout_losses(base, poet.model if poet.conditioned else None, tok, valid_rows,
                                           max_poems=heldout_poems)
    if two_sample:
        from training.two_sample import (
            generate_pairs,
            train_lm,
            two_sample_requests,
            two_sample_test,
            write_jsonl,
        )

        pairs = two_sample_requests(rows, two_sample_per_form, seed)
        real, gen = generate_pairs(poet, pairs, progress=not json_output)
        try:
            ts = two_sample_test(real, gen, groups_a=[p["group"] for p in real], groups_b=[p["group"] for p in gen],
                                 seed=seed, lm=train_lm(paths.dataset_dir()), base_model=base, tokenizer=tok,
                                 names=("real", "generated"))
        except ValueError as e:
            raise ShirenError(f"two-sample test: {e}") from e
        result["two_sample"] = ts
        if two_sample_dir:
            write_jsonl(two_sample_dir / "real.jsonl", real)
            write_jsonl(two_sample_dir / "generated.jsonl", gen)
    if out:
        write_text(out, json.dumps(result, ensure_ascii=False, indent=1, default=str))
    if two_sample and two_sample_dir:
        from training.two_sample import to_markdown

        write_text(two_sample_dir / "two_sample.md", to_markdown(result["two_sample"]))
    if json_output:
        from training.two_sample import slim as slim_ts

        slim = {k: v for k, v in result.items() if k != "samples"}
        if "two_sample" in slim:
            slim["two_sample"] = slim_ts(slim["two_sample"])
        print(json.dumps(slim, ensure_ascii=False, default=str))
    else:
        if form_eval:
            print_result(result)
        if heldout:
            from training.heldout import print_heldout

            print_heldout(result["heldout"])
        if two_sample:
            from rich.console import Console
            from rich.markdown import Markdown

            from training.two_sample import to_markdown

            Console().print(Markdown("## two-sample test\n\n" + to_markdown(result["two_sample"])))
