"""The ``rnnumba`` command line: toy, train, predict, its file forms and its one-line errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import rnnumba
from rnnumba import cli
from rnnumba.datasets import make_toy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_TS = os.path.join(ROOT, "tests", "data", "tiny.ts")
TINY = ["--hidden", "4", "--iter", "2", "--batch", "10"]  # the old names, aliases since #16
SMALL = ["--hidden", "4", "--epochs", "2", "--batch-size", "10"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, err, expected=2):
    """Exit status ``expected`` (2: usage, 1: data) and one error line (compile warnings aside)."""
    assert code == expected, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("rnnumba: warning:")]
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
    _one_line_error(code, err, 1)  # a data error since #16 (was exit status 2)
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
    """Missing files and unknown formats are usage errors (2); files whose content is wrong
    are data errors (1; they were 2 before #16)."""
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
        ["train", tmp_path / "data.txt", "--out", model],
        ["train", data / "reg.npz", "--out", tmp_path / "no" / "such" / "dir.npz", *TINY],
        ["predict", tmp_path / "missing.npz", data / "reg.npz"],
    ):
        code, out, err = run(capsys, *argv)
        _one_line_error(code, err, 2)
    for argv in (
        ["train", tmp_path / "junk.npz", "--out", model],
        ["train", tmp_path / "junk.csv", "--out", model],
        ["train", tmp_path / "short.csv", "--out", model],
        ["train", tmp_path / "empty.csv", "--out", model],
        ["train", tmp_path / "noy.npz", "--out", model],
        ["train", tmp_path / "nox.npz", "--out", model],
        ["train", tmp_path / "mismatch.npz", "--out", model, *TINY],
        ["predict", tmp_path / "junk.npz", data / "reg.npz"],
        ["predict", data / "reg.npz", data / "reg.npz"],  # data, not a model
    ):
        code, out, err = run(capsys, *argv)
        _one_line_error(code, err, 1)
    assert not model.exists()


def test_predict_rejects_wrong_inputs(capsys, data, tmp_path):
    model = tmp_path / "m.npz"
    assert run(capsys, "train", data / "reg.npz", "--out", model, *TINY)[0] == 0
    np.savez(tmp_path / "wide.npz", X=np.zeros((3, 2, 5)))
    code, out, err = run(capsys, "predict", model, tmp_path / "wide.npz")
    _one_line_error(code, err, 1)  # was 2 before #16
    code, out, err = run(capsys, "predict", model, data / "reg.npz", "--out", tmp_path / "p.json")
    _one_line_error(code, err, 2)
    rnnumba.io.save(rnnumba.RNN(1, 3), tmp_path / "net.npz")
    code, out, err = run(capsys, "predict", tmp_path / "net.npz", data / "reg.npz")
    _one_line_error(code, err, 1)  # was 2 before #16


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


# -- the file forms of #16: long-format CSV and .ts ----------------------------------


def _long_csv(folder, n=40):
    """A long-format CSV of ``n`` sequences (2 features, shuffled rows) and the same data as
    lists in the order of first appearance: ``(path, ids, X, y)``."""
    rng = np.random.default_rng(1)
    rows, seqs = [], {}
    for k in range(n):
        T = 2 + k % 4
        x = rng.normal(size=(T, 2))
        t = np.sort(rng.choice(100, size=T, replace=False))
        seqs[f"s{k}"] = (x, float(np.tanh(x).sum()))
        rows += [(f"s{k}", int(t[j]), float(x[j, 0]), float(x[j, 1]), seqs[f"s{k}"][1]) for j in range(T)]
    rows = [rows[i] for i in rng.permutation(len(rows))]
    lines = ["seq,time,a,b,y"] + [f"{s},{t},{a!r},{b!r},{y!r}" for s, t, a, b, y in rows]
    path = folder / "long.csv"
    path.write_text("\n".join(lines) + "\n")
    ids = list(dict.fromkeys(r[0] for r in rows))
    return path, ids, [seqs[i][0] for i in ids], np.array([seqs[i][1] for i in ids])


COLUMNS = ["--id", "seq", "--time", "time", "--features", "a,b"]


def test_long_csv_trains_as_the_lists_of_arrays(capsys, tmp_path):
    """Sorting by time, grouping by id and the order of first appearance: the CLI fits and
    predicts exactly what RNNRegressor does on the equivalent list of arrays."""
    path, ids, X, y = _long_csv(tmp_path)
    model = tmp_path / "m.npz"
    code, out, err = run(
        capsys, "train", path, "--out", model, *SMALL, *COLUMNS, "--target", "y", "--target-per", "sequence"
    )
    assert code == 0, err
    assert "RNNRegressor" in out and "on 40 sequences" in out
    ref = rnnumba.RNNRegressor(4, epochs=2, batch_size=10, random_state=0).fit(X, y)
    np.testing.assert_array_equal(rnnumba.load(model).theta_, ref.theta_)
    code, out, err = run(capsys, "predict", model, path, *COLUMNS)
    assert code == 0, err
    cells = [line.split(",") for line in out.splitlines()]
    assert [c[0] for c in cells] == ids  # each line starts with its sequence's id
    np.testing.assert_array_equal([float(c[1]) for c in cells], ref.predict(X))
    code, out, err = run(capsys, "predict", model, path, *COLUMNS, "--out", tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz") as saved:
        assert saved["ids"].tolist() == ids and saved["y_pred"].shape == (40,)
    # without --features the target column y counts as an input: named, not guessed
    code, out, err = run(capsys, "predict", model, path, "--id", "seq", "--time", "time")
    _one_line_error(code, err, 1)
    assert "3 feature column(s), but the model takes 2" in err and "--features" in err


def test_long_csv_per_step_targets(capsys, tmp_path):
    path, ids, X, y = _long_csv(tmp_path)
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", path, "--out", model, *SMALL, *COLUMNS, "--target", "y", "--quiet")
    assert code == 0, err
    assert rnnumba.load(model).many_to_many_
    code, out, err = run(capsys, "predict", model, path, *COLUMNS)
    assert code == 0, err
    assert [len(line.split(",")) for line in out.splitlines()] == [1 + len(x) for x in X]


def test_long_csv_per_sequence_target_must_be_constant(capsys, tmp_path):
    path, ids, X, y = _long_csv(tmp_path)
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",123.0"  # one step of one sequence disagrees
    path.write_text("\n".join(lines) + "\n")
    argv = ["train", path, "--out", tmp_path / "m.npz", *SMALL, *COLUMNS, "--target", "y"]
    code, out, err = run(capsys, *argv, "--target-per", "sequence")
    _one_line_error(code, err, 1)
    assert "line 6" in err and "changes within the sequence" in err
    assert run(capsys, *argv, "--quiet")[0] == 0  # one target per step: fine


def test_ts_train_and_predict(capsys, tmp_path):
    from rnnumba.formats import read_ts

    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", TINY_TS, "--out", model, "--hidden", "4", "--epochs", "2",
                         "--batch-size", "3", "--quiet")  # fmt: skip
    assert code == 0, err
    assert "RNNClassifier" in out and "on 6 sequences" in out
    X, y, _ = read_ts(TINY_TS)
    ref = rnnumba.RNNClassifier(4, epochs=2, batch_size=3, random_state=0).fit(X, y)
    m = rnnumba.load(model)
    np.testing.assert_array_equal(m.theta_, ref.theta_)
    assert sorted(m.classes_) == ["down", "up"]
    code, out, err = run(capsys, "predict", model, TINY_TS)
    assert code == 0, err
    assert out.split() == [str(v) for v in ref.predict(X)]


# -- flags, version, exit codes --------------------------------------------------------


def test_aliases_parse_to_the_same_options(capsys):
    p = cli._parser()
    new = p.parse_args(
        ["train", "d.csv", "--out", "m.npz", "--lr", "0.1", "--epochs", "3", "--batch-size", "5"]
    )
    old = p.parse_args(["train", "d.csv", "--out", "m.npz", "--rate", "0.1", "--iter", "3", "--batch", "5"])
    assert vars(new) == vars(old)
    assert cli._options(new) == cli._options(old)
    assert (new.lr, new.epochs, new.batch_size) == (0.1, 3, 5)
    opts = cli._options(p.parse_args(["toy"]))
    assert (opts["lr"], opts["epochs"], opts["batch_size"]) == (0.02, 20, 20)
    old = ["--batch", "20", "--rate", "0.02", "--iter", "2"]
    new = ["--batch-size", "20", "--lr", "0.02", "--epochs", "2"]
    runs = [
        run(capsys, "toy", "--hidden", "4", *flags, "--samples", "100", "--quiet") for flags in (old, new)
    ]
    assert runs[0] == runs[1] and runs[0][0] == 0 and runs[0][1].startswith("final:")


def test_version(capsys):
    code, out, err = run(capsys, "--version")
    assert code == 0 and out == f"rnnumba {rnnumba.__version__}\n" and err == ""


def test_device_and_validation_fraction_reach_the_estimator(capsys, data, tmp_path, monkeypatch):
    seen = {}
    fit = rnnumba.RNNRegressor.fit

    def spy(self, X, y, lengths=None, client=None):
        seen.update(device=self.device, fraction=self.validation_fraction, early=self.early_stopping)
        self.device = "cpu"  # this machine may have no GPU
        return fit(self, X, y, lengths=lengths, client=client)

    monkeypatch.setattr(rnnumba.RNNRegressor, "fit", spy)
    model = tmp_path / "m.npz"
    code, out, err = run(capsys, "train", data / "reg.npz", "--out", model, *SMALL, "--device", "cuda",
                         "--early-stopping", "--validation-fraction", "0.25", "--quiet")  # fmt: skip
    assert code == 0, err
    assert seen == dict(device="cuda", fraction=0.25, early=True)
    m = rnnumba.load(model)
    assert m.validation_fraction == 0.25 and m.early_stopping and len(m.validation_scores_) == 2
    code, out, err = run(capsys, "train", data / "reg.npz", "--out", model, *SMALL, "--quiet")
    assert code == 0 and seen["device"] == "cpu" and seen["fraction"] == 0.1 and not seen["early"]


def test_usage_errors_exit_2_and_data_errors_exit_1(capsys, data, tmp_path):
    path, ids, X, y = _long_csv(tmp_path)
    model = tmp_path / "m.npz"
    assert run(capsys, "train", data / "reg.npz", "--out", model, *SMALL, "--quiet")[0] == 0
    (tmp_path / "x.parquet").write_text("1,2\n")
    out = tmp_path / "new.npz"
    for argv in (
        ["train", data / "reg.npz", "--out", out, "--id", "seq"],  # column flags for a .npz
        ["train", data / "reg.csv", "--out", out, "--target", "y"],  # column flags without --id
        ["train", path, "--out", out, "--id", "seq"],  # no --target to train on
        ["train", TINY_TS, "--out", out, "--target-per", "sequence"],
        ["predict", model, path, "--id", "seq", "--no-target"],
        ["predict", model, tmp_path / "x.parquet"],  # an unknown format
        ["predict", model, tmp_path / "missing.csv"],
        ["train", data / "reg.npz", "--out", out, "--validation-fraction", "0.2"],  # no --early-stopping
        ["train", data / "reg.npz", "--out", out, "--validation-fraction", "1.5", "--early-stopping"],
        ["train", data / "reg.npz", "--out", out, "--device", "tpu"],
        ["train", data / "reg.npz", "--out", out, "--seed", "-1"],  # refused by the estimator's checks
        ["train", data / "reg.npz", "--out", out, "--dropout", "0.5", "--solver", "L-BFGS-B"],
    ):
        code, _, err = run(capsys, *argv)
        _one_line_error(code, err, 2)
    (tmp_path / "stamped.ts").write_text("@timeStamps true\n@data\n(0,1)\n")
    for argv in (
        ["train", tmp_path / "stamped.ts", "--out", out],
        ["train", path, "--out", out, *COLUMNS, "--target", "nope"],  # no such column
        ["train", path, "--out", out, "--id", "seq", "--time", "time", "--features", "a,y", "--target", "y"],
        ["predict", model, TINY_TS],  # 2 dimensions, a 1-feature model
    ):
        code, _, err = run(capsys, *argv)
        _one_line_error(code, err, 1)
    assert not out.exists()


@pytest.mark.parametrize(
    "exc, code, message",
    [
        (KeyError("x"), 1, "rnnumba: error: unexpected KeyError: 'x'"),
        (ValueError("two\n  lines"), 1, "rnnumba: error: two lines"),
        (KeyboardInterrupt(), 130, "rnnumba: error: interrupted"),
    ],
)
def test_last_resort_one_line(capsys, monkeypatch, exc, code, message):
    def boom(a):
        raise exc

    monkeypatch.setattr(cli, "_train", boom)
    got, out, err = run(capsys, "train", "d.npz", "--out", "m.npz")
    assert got == code and err == message + "\n" and "Traceback" not in err


def test_standardize_flag(capsys, tmp_path):
    X = np.random.default_rng(0).normal(size=(30, 5, 2)) * [1.0, 1e3]
    np.savez(tmp_path / "mv.npz", X=X, y=X[:, :, 0].sum(axis=1))
    scalers = {}
    for how in ("feature", "global", "none"):
        model = tmp_path / f"{how}.npz"
        code, _, err = run(capsys, "train", tmp_path / "mv.npz", "--out", model, *SMALL, "--standardize", how)
        assert code == 0, err
        scalers[how] = rnnumba.load(model).scaler_
    assert np.shape(scalers["feature"].mean_) == (2,) and np.ndim(scalers["global"].mean_) == 0
    assert scalers["none"] is None
    out = tmp_path / "x.npz"
    code, _, err = run(capsys, "train", tmp_path / "mv.npz", "--out", out, "--standardize", "z")
    _one_line_error(code, err, 2)
