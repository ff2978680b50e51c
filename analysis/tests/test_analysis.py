import os

import numpy as np
import pytest

import figures
import report
import synthetic
from icaresults import load

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def verdicts(res):
    return {title.split(".")[0]: verdict for title, verdict, _ in report.checklist(res)}


def check_pngs(paths):
    pngs = [p for p in paths if p.endswith(".png")]
    assert pngs
    for p in pngs:
        with open(p, "rb") as f:
            assert f.read(8) == PNG_MAGIC, p
        assert os.path.getsize(p) > 5000, p


def test_loader_on_binary_file(smoke_file):
    res = load(smoke_file)
    assert len(res.runs) == 8
    assert set(res.runs["status"]) == {"done"}
    assert res.runs["attention"].dtype.kind == "U"
    assert res.tf_err.shape == (8, 3, 8) and np.isfinite(res.tf_err).all()
    assert list(res.select(attention="linear", layers=1)) == [2, 3]
    groups = res.groups()
    assert len(groups) == 4 and all(len(rows) == 2 for _, rows in groups)


def test_figures_and_report_on_binary_file(smoke_file, tmp_path):
    res = load(smoke_file)
    written = figures.draw_all(res, str(tmp_path))
    names = {os.path.basename(p) for p in written}
    assert {"tf_vs_gd.png", "tf_vs_gd.pdf", "reward_noise.png", "layers.png",
            "attention.png"} <= names
    check_pngs(written)
    path, items = report.write_report(res, str(tmp_path / "rep"))
    text = open(path).read()
    assert "## SPEC findings" in text and "![tf_vs_gd.png](tf_vs_gd.png)" in text
    v = verdicts(res)
    assert v["4"] == "NOT IN GRID" and v["5"] == "NOT IN GRID"   # smoke varies neither
    assert v["3"] in ("PASS", "FAIL") and v["6"] in ("PASS", "FAIL")


def test_checklist_passes_on_paper_like_data(tmp_path):
    configs = [dict(attention=a) for a in ("softmax", "linear")]
    configs += [dict(heads=h, embd=32 * h) for h in (1, 4)]
    configs += [dict(ffn=0), dict(layers=8)]
    res = load(synthetic.make(str(tmp_path / "good.h5"), configs, synthetic.paper_like))
    v = verdicts(res)
    assert v == {"1": "PASS", "2": "PASS", "3": "PASS", "4": "PASS", "5": "PASS", "6": "PASS"}, v


def test_checklist_fails_when_linear_wins(tmp_path):
    def linear_wins(c, seed, p, i):
        e = synthetic.paper_like(c, seed, p, i)
        return e - 0.3 if c["attention"] in (b"linear", "linear") else e
    configs = [dict(attention=a) for a in ("softmax", "linear")]
    res = load(synthetic.make(str(tmp_path / "bad.h5"), configs, linear_wins))
    v = verdicts(res)
    assert v["3"] == "FAIL" and v["4"] == "NOT IN GRID" and v["6"] == "NOT IN GRID"


def test_checklist_fails_when_noise_does_not_matter(tmp_path):
    res = load(synthetic.make(str(tmp_path / "flat.h5"), [{}],
                              lambda c, s, p, i: 0.9 - 0.3 * (1 - 1 / (1 + i))))
    assert verdicts(res)["2"] == "FAIL"


def test_loader_refuses_other_schema(tmp_path):
    import h5py
    path = synthetic.make(str(tmp_path / "v9.h5"), [{}], synthetic.paper_like)
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = np.int32(9)
    with pytest.raises(ValueError, match="schema version 9"):
        load(path)


def test_command_lines(smoke_file, tmp_path):
    assert figures.main([smoke_file, "--out", str(tmp_path / "f")]) == 0
    assert report.main([smoke_file, "--out", str(tmp_path / "r")]) == 0
    assert os.path.exists(tmp_path / "r" / "report.md")
