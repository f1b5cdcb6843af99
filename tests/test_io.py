"""Saving and loading models (rnnumba.io): exact round trips, atomic writes,
clear errors for anything that is not an rnnumba model."""

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import rnnumba
from rnnumba import io
from rnnumba.datasets import make_toy
from rnnumba.estimators import NotFittedError, RNNClassifier, RNNRegressor

FAST = dict(hidden=4, epochs=2, batch_size=10, random_state=0)


@pytest.fixture(scope="module")
def toy():
    return make_toy(60, random_state=1)


@pytest.fixture(scope="module")
def reg(toy):
    return RNNRegressor(**FAST).fit(*toy)


def test_regressor_round_trip_is_bitwise(reg, toy, tmp_path):
    X, z = toy
    path = tmp_path / "model.npz"
    reg.save(path)
    back = rnnumba.load(path)
    assert type(back) is RNNRegressor and back.get_params() == reg.get_params()
    np.testing.assert_array_equal(back.theta_, reg.theta_)
    assert back.theta_.dtype == reg.theta_.dtype
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    assert back.scaler_.mean_ == reg.scaler_.mean_ and back.scaler_.std_ == reg.scaler_.std_
    assert back.loss_curve_ == reg.loss_curve_ and back.n_iter_ == reg.n_iter_
    assert back.best_loss_ == reg.best_loss_ and back.stop_reason_ == reg.stop_reason_
    # the loaded model trains again like a fresh one
    np.testing.assert_array_equal(back.fit(X, z).theta_, reg.theta_)


def test_classifier_and_many_to_many_round_trip(toy, tmp_path):
    X, z = toy
    labels = np.where(z > 5, "high", "low")
    clf = RNNClassifier(**dict(FAST, dtype="float32", standardize=False)).fit(X, labels)
    clf.save(tmp_path / "c.npz")
    back = rnnumba.load(tmp_path / "c.npz")
    assert back.classes_.dtype == clf.classes_.dtype and list(back.classes_) == ["high", "low"]
    assert back.scaler_ is None and back.theta_.dtype == np.float32
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    seqs = [x[: 1 + k % 3] for k, x in enumerate(X)]
    m = RNNRegressor(**FAST).fit(seqs, [np.cumsum(s) for s in seqs])
    m.save(tmp_path / "m.npz")
    back = rnnumba.load(tmp_path / "m.npz")
    assert back.many_to_many_
    for a, b in zip(back.predict(seqs), m.predict(seqs), strict=True):
        np.testing.assert_array_equal(a, b)


def test_network_round_trip(tmp_path):
    net = rnnumba.RNN(2, 3, output_size=2, random_state=0)
    io.save(net, tmp_path / "net.npz")
    back = rnnumba.load(tmp_path / "net.npz")
    assert isinstance(back, rnnumba.RNN) and back.layout == net.layout
    np.testing.assert_array_equal(back.theta, net.theta)


def test_file_contents_are_plain(reg, tmp_path):
    reg.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as d:
        meta = json.loads(str(d["meta"][()]))
        assert set(d.files) == {"theta", "meta"}
    assert meta["format"] == "rnnumba" and meta["version"] == io.VERSION and meta["kind"] == "RNNRegressor"
    assert meta["layout"]["hidden"] == 4 and meta["fitted"]["scaler"]["std"] == reg.scaler_.std_


def test_unsaveable_things(toy, tmp_path):
    with pytest.raises(NotFittedError):
        RNNRegressor().save(tmp_path / "x.npz")
    with pytest.raises(TypeError, match="can only save"):
        io.save(object(), tmp_path / "x.npz")
    m = RNNRegressor(**dict(FAST, callbacks=lambda *a: None, random_state=np.random.default_rng(0))).fit(*toy)
    m.save(tmp_path / "cb.npz")  # callbacks and Generators are dropped, not pickled
    back = rnnumba.load(tmp_path / "cb.npz")
    assert back.callbacks is None and back.random_state is None


def test_save_is_atomic(reg, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    reg.save(path)
    good = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        reg.save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind


def _write(path, blob):
    path.write_bytes(blob)
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda good: good[: len(good) // 2],  # truncated
        lambda good: good[:100],
        lambda good: b"",
        lambda good: b"hello, I am a CSV file\n1,2,3\n",
        lambda good: bytes(range(256)) * 4,
        lambda good: good[:30] + bytes(len(good) - 30),  # corrupted after the header
    ],
    ids=["half", "head", "empty", "text", "binary", "zeroed"],
)
def test_corrupt_files(reg, tmp_path, make):
    reg.save(tmp_path / "good.npz")
    bad = _write(tmp_path / "bad.npz", make((tmp_path / "good.npz").read_bytes()))
    with pytest.raises(ValueError, match="not a valid rnnumba model"):
        rnnumba.load(bad)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _meta(reg, **changes):
    state = reg.to_state()
    kind, net, params, fitted = state["kind"], state["net"], state["params"], state["fitted"]
    meta = {
        "format": "rnnumba",
        "version": 1,
        "kind": kind,
        "layout": net.layout.to_dict(),
        "dtype": net.dtype.name,
        "params": params,
        "fitted": fitted,
    }
    meta.update(changes)
    return np.array(json.dumps(meta))


def test_foreign_and_inconsistent_files(reg, tmp_path):
    theta = reg.theta_
    cases = {
        "foreign": dict(a=np.zeros(3)),
        "npy": None,
        "pickled": dict(theta=theta, meta=np.array([{"a": 1}], dtype=object)),
        "no-json": dict(theta=theta, meta=np.array("{not json")),
        "other-format": dict(theta=theta, meta=_meta(reg, format="keras")),
        "newer": dict(theta=theta, meta=_meta(reg, version=99)),
        "short-theta": dict(theta=theta[:-1], meta=_meta(reg)),
        "nan-theta": dict(theta=np.full_like(theta, np.nan), meta=_meta(reg)),
        "dtype": dict(theta=theta.astype(np.float32), meta=_meta(reg)),
        "kind": dict(theta=theta, meta=_meta(reg, kind="Keras")),
        "layout": dict(theta=theta, meta=_meta(reg, layout={"cell": "tcn"})),
        "classifier-without-classes": dict(theta=theta, meta=_meta(reg, kind="RNNClassifier")),
    }
    for name, arrays in cases.items():
        if arrays is None:
            path = tmp_path / "x.npy"
            np.save(path, np.zeros(3))
        else:
            path = _npz(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(ValueError, match="not a valid rnnumba model"):
            rnnumba.load(path)
    with pytest.raises(FileNotFoundError):
        rnnumba.load(tmp_path / "missing.npz")


def test_object_classes_cannot_be_saved(toy, tmp_path):
    X, z = toy
    clf = RNNClassifier(**FAST).fit(X, (z > 5).astype(int))
    clf.classes_ = clf.classes_.astype(object)
    with pytest.raises(ValueError, match="object"):
        clf.save(tmp_path / "c.npz")


def test_pickle_of_loaded_model(reg, toy, tmp_path):
    reg.save(tmp_path / "m.npz")
    back = pickle.loads(pickle.dumps(rnnumba.load(tmp_path / "m.npz")))
    np.testing.assert_array_equal(back.predict(toy[0]), reg.predict(toy[0]))


def test_version_is_the_one_in_pyproject():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f'version = "{rnnumba.__version__}"' in text
