"""`shiren check` via typer's CliRunner, forms parsing, import hygiene, bench."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from core.forms import FORM_SPECS, form_spec, parse_form
from core.gelv.cli import check
from core.types import RequestError

POEMS = json.loads((Path(__file__).parent / "fixtures" / "gelv" / "poems.json").read_text(encoding="utf-8"))
ROOT = Path(__file__).resolve().parents[1]

app = typer.Typer()
app.command("check")(check)


@app.command("noop")
def _noop() -> None:  # a second command, so `check` is a subcommand as in the real app
    pass


runner = CliRunner()


def _all_output(res) -> str:
    out = res.output
    try:
        out += res.stderr or ""
    except (ValueError, AttributeError):
        pass
    return out


def test_check_text_argument():
    res = runner.invoke(app, ["check", POEMS["denggao"]["simplified"]])
    assert res.exit_code == 0, res.output
    assert "十灰" in res.output and "合律" in res.output and "七律" in res.output


def test_check_traditional_and_stdin():
    res = runner.invoke(app, ["check"], input=POEMS["denggao"]["traditional"])
    assert res.exit_code == 0, res.output
    assert "十灰" in res.output


def test_check_json():
    res = runner.invoke(app, ["check", "--json", POEMS["shanju"]["simplified"]])
    assert res.exit_code == 0
    d = json.loads(res.stdout)
    assert d["form"] == "五律" and d["rhyme_group"] == "十一尤" and d["scores"]["tone_strict"] is True
    assert len(d["lines"]) == 8 and d["lines"][1]["chars"][-1]["is_rhyme_pos"] is True


def test_check_violation_and_cipai_and_form():
    res = runner.invoke(app, ["check", POEMS["broken_rhyme"]["simplified"]])
    assert res.exit_code == 0 and "出韵" in res.output
    res = runner.invoke(app, ["check", "--cipai", "浣溪沙", POEMS["huanxisha"]["simplified"]])
    assert res.exit_code == 0 and "浣溪沙" in res.output
    res = runner.invoke(app, ["check", "--form", "qilv", "--json", POEMS["denggao"]["simplified"]])
    assert res.exit_code == 0 and json.loads(res.stdout)["form"] == "七律"


@pytest.mark.parametrize(
    "args,inp",
    [
        (["check", ""], None),
        (["check"], ""),
        (["check", "x" * 10000], None),
        (["check", "Hello, world."], None),
        (["check", "🌙🌙🌙"], None),
        (["check", "床前明月光"], None),
        (["check", "--cipai", "没有这个词牌", "明月几时有，把酒问青天。"], None),
        (["check", "--form", "haiku", "白日依山尽，黄河入海流。"], None),
    ],
)
def test_check_garbage_exit_2(args, inp):
    res = runner.invoke(app, args, input=inp)
    assert res.exit_code == 2, _all_output(res)
    out = _all_output(res)
    assert "error:" in out and "Traceback" not in out
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_parse_form():
    for name, want in [("五绝", "五绝"), ("五言绝句", "五绝"), ("七絕", "七绝"), ("七言绝句", "七绝"), ("五律", "五律"),
                       ("五言律诗", "五律"), ("七律", "七律"), ("七言律詩", "七律"), ("排律", "排律"), ("词", "词"),
                       ("WuJue", "五绝"), ("qijue", "七绝"), ("wulv", "五律"), ("wulü", "五律"), ("QILV", "七律"),
                       ("ci", "词"), (" qi-lv ", "七律")]:
        assert parse_form(name) == want, name
    with pytest.raises(RequestError, match="unknown form"):
        parse_form("sonnet")
    with pytest.raises(RequestError):
        parse_form("")
    assert FORM_SPECS["七律"].chars_per_line == 7 and FORM_SPECS["七律"].n_lines == 8
    assert form_spec("wujue").n_chars == 20
    with pytest.raises(RequestError):
        form_spec("词")


def test_import_does_not_pull_heavy_modules():
    code = ("import sys, core.gelv as g; g.analyze('白日依山尽，黄河入海流。欲穷千里目，更上一层楼。'); "
            "import core.gelv.cli; "
            "print(sorted(m for m in ('torch', 'transformers', 'opencc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bench_runs():
    from core.gelv.bench import bench_check

    t = bench_check(n=20)
    assert isinstance(t, float) and t > 0
