"""`shiren bench` command (imports the benchmark lazily)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def bench(
    json_output: bool = typer.Option(False, "--json"),
    quick: bool = typer.Option(False, "--quick", help="Fewer repetitions (a smoke run)."),
    n: int = typer.Option(50, "-n", help="Requests per latency measurement."),
    no_cold: bool = typer.Option(False, "--no-cold", help="Skip the cold-start and memory subprocesses."),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)."),
    out: Path | None = typer.Option(None, "--out", help="Also save the results as JSON here."),
    markdown: Path | None = typer.Option(None, "--markdown", help="Also write the table as Markdown here."),
    model_dir: Path | None = typer.Option(None, "--model-dir", envvar="SHIREN_MODEL_DIR"),
    compare: Path | None = typer.Option(None, "--compare-model-dir", help="Another base model (e.g. the previous "
                                        "one) measured in the same run, side by side."),
    contended: bool = typer.Option(False, "--contended", help="Also the latency with one core kept busy by "
                                                            "another process (adaptive vs all-core threads)."),
) -> None:
    """Measure generation speed, cold start and memory against baselines, in one run."""
    import torch

    from training.bench import print_bench, run_bench, save

    if threads:
        torch.set_num_threads(threads)
    res = run_bench(model_dir, n_latency=n, quick=quick, cold=not no_cold, contended=contended, compare_model_dir=compare,
                    progress=(lambda s: None) if json_output else (lambda s: typer.echo(s, err=True)))
    if out:
        save(res, out)
    if markdown:
        from core.atomic import write_text
        from training.bench import to_markdown

        write_text(markdown, to_markdown(res))
    if json_output:
        print(json.dumps(res, ensure_ascii=False))
    else:
        print_bench(res)
