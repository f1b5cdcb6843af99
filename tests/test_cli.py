"""The ``rnnumba`` command line: toy, train, predict, and its one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import rnnumba
from rnnumba import cli
from rnnumba.datasets import make_toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--hidden", "4", "--iter", "2", "--batch", "10"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rnnumba: error: "), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    X, z = make_toy(60, random_state=0)
    np.savez(folder / "reg.npz", X=X, y=z)
    np.savez(folder / "cls.npz", X=X, y=(z > 5).astype(np.int64))
    lens = np.random.default_rng(0).integers(1, 4, size=60)
    np.savez(folder / "var.npz", X=X, y=z, lengths=lens)
    rows = ["# target, then the sequence", ""]
    rows += [
        ",".join([repr(float(t))] + [repr(float(v)) for v in x[: 1 + k % 3]])
        for k, (x, t) in enumerate(zip(X, z, strict=True))
    ]
    (folder / "reg.csv").write_text("\n".join(rows) + "\n")
    labels = "\n".join(
        ",".join(["up" if t > 5 else "down"] + [str(v) for v in x]) for x, t in zip(X, z, strict=True)
    )
    (folder / "cls.csv").write_text(labels + "\n")
    return folder


def test_toy(capsys, tmp_path):
    model = tmp_path / "toy.npz"
    code, out, err = run(capsys, "toy", *TINY, "--samples", "200", "--seed", "3", "--save", model)
    assert code == 0, err
    lines = out.splitlines()
    assert "140 train / 60 test" in lines[0]
    assert "29 parameters" in out and "train MSE" in out and "test MSE" in out
    table = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [row[0] for row in table] == ["0", "1", "2"] and len(table[0]) == 2 and len(table[2]) == 4
    assert "final: train MSE" in out
    m = rnnumba.load(model)
    assert m.hidden == 4 and m.random_state == 3 and m.n_iter_ == 2
    X, z = make_toy(200, random_state=0)
    ref = rnnumba.fit(X[:140], z[:140], hidden=4, epochs=2, batch_size=10, random_state=3)
    np.testing.assert_array_equal(m.theta_, ref.theta_)


def test_toy_plot(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "fig.png"
    code, out, err = run(capsys, "toy", *TINY, "--samples", "100", "--plot", png, "--quiet")
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.startswith("final:")


def test_toy_plot_without_matplotlib(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run(capsys, "toy", "--plot", tmp_path / "x.png")
    _one_line_error(code, err)
    assert "matplotlib" in err


def test_train_and_predict_npz(capsys, data, tmp_path):
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", data / "reg.npz", "--out", model, *TINY)
    assert code == 0, err
    assert "epoch    2" in out and "RNNRegressor" in out and "R^2" in out
    code, out, err = run(capsys, "predict", model, data / "reg.npz")
    assert code == 0, err
    values = np.array([float(v) for v in out.split()])
    X = np.load(data / "reg.npz")["X"]
    np.testing.assert_array_equal(values, rnnumba.load(model).predict(X))
    code, out, err = run(capsys, "predict", model, data / "reg.npz", "--out", tmp_path / "p.npz")
    assert code == 0 and np.load(tmp_path / "p.npz")["y_pred"].shape == (60,)
    code, out, err = run(capsys, "predict", model, data / "reg.npz", "--out", tmp_path / "p.csv")
    assert code == 0 and len((tmp_path / "p.csv").read_text().splitlines()) == 60


def test_train_variants(capsys, data, tmp_path):
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", data / "cls.npz", "--out", model, *TINY, "--quiet")
    assert code == 0 and "RNNClassifier" in out and "accuracy" in out
    assert set(rnnumba.load(model).classes_) == {0, 1}
    code, out, err = run(
        capsys,
        "train",
        data / "var.npz",
        "--out",
        model,
        *TINY,
        "--solver",
        "L-BFGS-B",
        "--no-standardize",
        "--dtype",
        "float32",
    )
    assert code == 0, err
    m = rnnumba.load(model)
    assert m.scaler_ is None and m.theta_.dtype == np.float32
    assert not hasattr(m, "optimize_result_")  # scipy's result is not saved
    code, out, err = run(
        capsys, "train", data / "cls.npz", "--out", model, *TINY, "--task", "classify", "--early-stopping"
    )
    assert code == 0, err  # (continuous targets with --task classify are an error: see below)


def test_csv(capsys, data, tmp_path):
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", data / "reg.csv", "--out", model, *TINY)
    assert code == 0, err
    code, out, err = run(capsys, "predict", model, data / "reg.csv")
    assert code == 0 and len(out.splitlines()) == 60
    code, out, err = run(capsys, "train", data / "cls.csv", "--out", model, *TINY)
    assert code == 0 and "RNNClassifier" in out
    code, out, err = run(capsys, "predict", model, data / "cls.csv")
    assert set(out.split()) <= {"up", "down"}


def test_predict_csv_without_targets_reads_every_value(capsys, data, tmp_path):
    """A CSV of values only, read with --no-target, predicts what the model predicts on
    the same sequences (without the flag, the first value would be taken for a target)."""
    model = tmp_path / "m.npz"
    assert run(capsys, "train", data / "reg.npz", "--out", model, *TINY)[0] == 0
    X = np.load(data / "reg.npz")["X"]
    (tmp_path / "x.csv").write_text("\n".join(",".join(repr(float(v)) for v in x) for x in X) + "\n")
    code, out, err = run(capsys, "predict", model, tmp_path / "x.csv", "--no-target")
    assert code == 0, err
    expected = rnnumba.load(model).predict(X)
    np.testing.assert_allclose(np.array(out.split(), dtype=float), expected, rtol=1e-12)


def test_classify_refuses_continuous_targets(capsys, data, tmp_path):
    code, out, err = run(
        capsys, "train", data / "reg.npz", "--out", tmp_path / "m.npz", "--task", "classify", *TINY
    )
    _one_line_error(code, err)
    assert "continuous" in err and not (tmp_path / "m.npz").exists()


def test_bad_flags(capsys, data, tmp_path):
    for argv in (
        [],
        ["fly"],
        ["toy", "--hidden", "0"],
        ["toy", "--hidden", "many"],
        ["toy", "--rate", "-1"],
        ["toy", "--cell", "tcn"],
        ["toy", "--bogus"],
        ["train", data / "reg.npz"],  # no --out
        ["predict", tmp_path / "m.npz"],
        ["toy", "--solver", "rmsprop", "--samples", "20"],
        ["toy", "--momentum", "2", "--samples", "20"],
        ["toy", "--samples", "1"],
    ):
        code, out, err = run(capsys, *argv)
        _one_line_error(code, err)


def test_bad_files(capsys, data, tmp_path):
    model = tmp_path / "m.npz"
    (tmp_path / "junk.npz").write_bytes(b"junk")
    (tmp_path / "junk.csv").write_text("1,2,x\n")
    (tmp_path / "short.csv").write_text("1\n")
    (tmp_path / "empty.csv").write_text("# nothing\n")
    np.savez(tmp_path / "noy.npz", X=np.zeros((3, 2)))
    np.savez(tmp_path / "nox.npz", y=np.zeros(3))
    np.savez(tmp_path / "mismatch.npz", X=np.ones((3, 2)) * [1, 2], y=np.zeros(4))
    (tmp_path / "data.txt").write_text("1,2\n")
    for argv in (
        ["train", tmp_path / "missing.npz", "--out", model],
        ["train", tmp_path / "junk.npz", "--out", model],
        ["train", tmp_path / "junk.csv", "--out", model],
        ["train", tmp_path / "short.csv", "--out", model],
        ["train", tmp_path / "empty.csv", "--out", model],
        ["train", tmp_path / "noy.npz", "--out", model],
        ["train", tmp_path / "nox.npz", "--out", model],
        ["train", tmp_path / "mismatch.npz", "--out", model, *TINY],
        ["train", tmp_path / "data.txt", "--out", model],
        ["train", data / "reg.npz", "--out", tmp_path / "no" / "such" / "dir.npz", *TINY],
        ["predict", tmp_path / "missing.npz", data / "reg.npz"],
        ["predict", tmp_path / "junk.npz", data / "reg.npz"],
        ["predict", data / "reg.npz", data / "reg.npz"],  # data, not a model
    ):
        code, out, err = run(capsys, *argv)
        _one_line_error(code, err)


def test_predict_rejects_wrong_inputs(capsys, data, tmp_path):
    model = tmp_path / "m.npz"
    assert run(capsys, "train", data / "reg.npz", "--out", model, *TINY)[0] == 0
    np.savez(tmp_path / "wide.npz", X=np.zeros((3, 2, 5)))
    code, out, err = run(capsys, "predict", model, tmp_path / "wide.npz")
    _one_line_error(code, err)
    code, out, err = run(capsys, "predict", model, data / "reg.npz", "--out", tmp_path / "p.json")
    _one_line_error(code, err)
    rnnumba.io.save(rnnumba.RNN(1, 3), tmp_path / "net.npz")
    code, out, err = run(capsys, "predict", tmp_path / "net.npz", data / "reg.npz")
    _one_line_error(code, err)


def test_python_dash_m_help():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, "-m", "rnnumba", "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0 and "toy" in r.stdout and "predict" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "rnnumba", "toy", "--iter", "x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--iter" in r.stderr
