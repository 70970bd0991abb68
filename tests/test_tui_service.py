"""The terminal app's service layer and `shiren tui` entry point, without a UI."""

from __future__ import annotations

import pytest
from test_tui_support import JINGYESI, make_service

from core.script import to_traditional
from core.types import PoemRequest, RequestError, ShirenError
from tui.service import ShirenService, format_export, local_user_name


def test_write_records_and_rates_into_the_feedback_data(tmp_path):
    svc = make_service(tmp_path)
    [p] = svc.write(PoemRequest(form="五绝", title="山行"))
    assert p.id and p.poem.form == "五绝" and p.request.seed == 1  # the service's fixed seed
    svc.rate(p.id, 5)
    [row] = svc.store.rated_poems()
    assert (row.poem_id, row.stars, row.text) == (p.id, 5, p.poem.text)
    assert svc.history()[0].rating == 5
    assert svc.delete(p.id) and svc.store.rated_poems() == []


def test_same_seed_same_poem(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = make_service(tmp_path / "a"), make_service(tmp_path / "b")
    req = PoemRequest(form="七绝", title="春夜")
    assert a.write(req)[0].poem.text == b.write(req)[0].poem.text


def test_build_request_messages(tmp_path):
    svc = make_service(tmp_path)
    req = svc.build_request(form="七绝", title=" 春夜 ", keywords="月，江", n="2", temperature="0.7")
    assert req.title == "春夜" and req.keywords == ("月", "江") and req.n == 2
    with pytest.raises(RequestError, match="whole number"):
        svc.build_request(form="七绝", n="two")
    with pytest.raises(RequestError, match="longer than"):
        svc.build_request(form="五绝", acrostic="一二三四五")
    assert svc.build_request(form="七绝", cipai="浣溪沙").cipai == ""  # only a 词 takes a 词牌


def test_check_and_explain_without_a_model(tmp_path):
    svc = make_service(tmp_path, load=False)
    an = svc.check(JINGYESI)
    assert an.form == "五绝" and len(an.lines) == 4
    with pytest.raises(RequestError):
        svc.check("   ")
    with pytest.raises(RequestError):
        svc.check("abc")
    assert svc.explain(JINGYESI, "五绝").form == "五绝"


def test_export_formats(tmp_path):
    svc = make_service(tmp_path)
    [p] = svc.write(PoemRequest(form="五绝", title="山行"))
    svc.rate(p.id, 3)
    md = svc.export("markdown")
    assert md.startswith("# Shiren") and "## 山行" in md and "★★★☆☆" in md
    txt = svc.export("text")
    assert "山行" in txt and p.poem.text.split("\n")[0] in txt and not txt.startswith("#")
    assert svc.export_to(tmp_path / "x" / "poems.md") == 1
    assert (tmp_path / "x" / "poems.md").read_text("utf-8") == md
    with pytest.raises(RequestError):
        svc.export("pdf")
    assert format_export([], "text") == "\n"


def test_load_failure_and_retrain_absent(tmp_path):
    def broken():
        raise OSError("disk on fire")

    svc = make_service(tmp_path, poet_factory=broken, load=False)
    with pytest.raises(ShirenError, match="disk on fire"):
        svc.load_poet()
    assert "disk on fire" in svc.load_error and not svc.poet_ready
    assert not svc.can_retrain
    with pytest.raises(ShirenError, match="not available"):
        svc.run_retrain(lambda f, s: None)


def test_traditional_and_user():
    assert to_traditional("春风吹过万里山") == "春風吹過萬里山"
    assert local_user_name()


def test_cli_tui_wires_the_same_database(tmp_path, monkeypatch):
    """`shiren tui` opens the Store at --database-url as the OS user (source "tui"); a missing model is
    a ShirenError with a clear message (shown by the app), not a crash."""
    import tui.app
    from tui.cli import tui as tui_cmd

    seen: dict = {}

    def fake_run(self):
        seen["service"] = self.service
        with pytest.raises(ShirenError, match="no model at"):
            self.service.load_poet()

    monkeypatch.setattr(tui.app.ShirenApp, "run", fake_run)
    url = f"sqlite:///{tmp_path}/shiren.db"
    tui_cmd(database_url=url, model_dir=tmp_path / "no-model")
    svc: ShirenService = seen["service"]
    from db.store import Store

    with Store(url) as store:
        assert store.ensure_user("tui", local_user_name()) == svc.user_id
