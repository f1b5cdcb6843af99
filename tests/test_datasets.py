"""Tests for rnnumba.datasets: the seed's toy data (docs/toy-data.md)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnumba import datasets
from rnnumba.datasets import (
    ToyData,
    eval_grid,
    f,
    load_toy,
    make_toy,
    make_toy_seq2seq,
    make_toy_varlen,
)
from rnnumba.preprocessing import Standardizer

# ---------------------------------------------------------------- f


def test_f_formula():
    x = np.linspace(-5, 15, 101)
    expected = np.array(
        [2 + 0.5 * math.sin(v / 2 - 1) + math.sin(v) + math.sin(2 * v + 2) + math.sin(v / 4 + 1) for v in x]
    )
    np.testing.assert_allclose(f(x), expected, rtol=0, atol=1e-14)
    assert f(0.0) == pytest.approx(2 + 0.5 * math.sin(-1) + math.sin(2) + math.sin(1))


def test_f_is_not_invertible_from_one_value():
    # the reason for the whole exercise: one level crosses the curve several times
    z = np.linspace(0, 10, 100_001)
    crossings = np.count_nonzero(np.diff(np.sign(f(z) - 3.0)))
    assert crossings >= 4


# ---------------------------------------------------------------- make_toy


def test_make_toy_shapes_dtypes_and_range():
    X, z = make_toy(1000, random_state=0)
    assert X.shape == (1000, 3) and z.shape == (1000,)
    assert X.dtype == np.float64 and z.dtype == np.float64
    assert z.min() >= 0 and z.max() < 10
    X32, z32 = make_toy(1000, random_state=0, dtype=np.float32)
    assert X32.dtype == np.float32 and z32.dtype == np.float32
    # float32 is the float64 draw, rounded
    np.testing.assert_array_equal(X32, X.astype(np.float32))
    np.testing.assert_array_equal(z32, z.astype(np.float32))
    assert make_toy(7, length=5, random_state=0)[0].shape == (7, 5)


def test_make_toy_defaults_match_the_seed():
    X, z = make_toy(random_state=0)
    assert X.shape == (200_000, 3) and z.shape == (200_000,)


def test_make_toy_deterministic_by_seed():
    a = make_toy(500, random_state=42)
    b = make_toy(500, random_state=42)
    c = make_toy(500, random_state=43)
    for u, v in zip(a, b, strict=True):
        assert u.tobytes() == v.tobytes()  # bitwise
    assert not np.array_equal(a[0], c[0])
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    np.testing.assert_array_equal(make_toy(50, random_state=g1)[0], make_toy(50, random_state=g2)[0])


def test_make_toy_columns_are_lagged_f_plus_noise():
    X, z = make_toy(100_000, length=4, random_state=1)
    residual = X - f(z[:, None] - np.arange(4))
    # first column is f(z); each column carries sd-0.1 noise
    assert abs(residual[:, 0].std() - 0.1) < 0.002
    np.testing.assert_allclose(residual.std(axis=0), 0.1, atol=0.002)
    np.testing.assert_allclose(residual.mean(axis=0), 0.0, atol=0.002)
    # independent across time steps
    corr = np.corrcoef(residual.T)
    assert np.abs(corr - np.eye(4)).max() < 0.02


def test_make_toy_noise_zero_is_exact():
    X, z = make_toy(1000, length=3, noise=0, random_state=3)
    np.testing.assert_array_equal(X[:, 0], f(z))
    np.testing.assert_array_equal(X, f(z[:, None] - np.arange(3)))
    # the noise level does not change z for a given seed
    np.testing.assert_array_equal(z, make_toy(1000, noise=0.1, random_state=3)[1])


def test_make_toy_noise_scales():
    X, z = make_toy(50_000, length=1, noise=0.5, random_state=2)
    assert abs((X[:, 0] - f(z)).std() - 0.5) < 0.01


# ---------------------------------------------------------------- varlen


def test_make_toy_varlen_shapes_padding_and_valid_cells():
    X, lengths, z = make_toy_varlen(20_000, random_state=0)
    assert X.shape == (20_000, 4) and lengths.shape == (20_000,) and z.shape == (20_000,)
    assert lengths.dtype == np.int64
    assert set(np.unique(lengths)) == {3, 4}
    # uniform over the set
    assert abs(np.mean(lengths == 3) - 0.5) < 0.02
    pad = np.arange(4) >= lengths[:, None]
    assert np.all(X[pad] == 0)
    # valid cells are exactly the fixed-length data drawn from the same seed
    Xf, zf = make_toy(20_000, length=4, random_state=0)
    np.testing.assert_array_equal(z, zf)
    np.testing.assert_array_equal(X[~pad], Xf[~pad])


def test_make_toy_varlen_length_set():
    X, lengths, _ = make_toy_varlen(3000, lengths=[2, 4, 3, 3], random_state=0)
    assert X.shape == (3000, 4)
    counts = np.bincount(lengths, minlength=5)[2:]
    # duplicates are ignored: each of {2, 3, 4} about a third
    np.testing.assert_allclose(counts / 3000, 1 / 3, atol=0.04)
    X1, lengths1, _ = make_toy_varlen(10, lengths=(5,), random_state=0)
    assert X1.shape == (10, 5) and np.all(lengths1 == 5)


def test_make_toy_varlen_deterministic():
    a = make_toy_varlen(300, random_state=9)
    b = make_toy_varlen(300, random_state=9)
    for u, v in zip(a, b, strict=True):
        assert u.tobytes() == v.tobytes()


def test_make_toy_seq2seq_targets():
    X, lengths, Y = make_toy_seq2seq(1000, random_state=5)
    Xv, lv, z = make_toy_varlen(1000, random_state=5)
    np.testing.assert_array_equal(X, Xv)
    np.testing.assert_array_equal(lengths, lv)
    assert Y.shape == X.shape == (1000, 4)
    np.testing.assert_array_equal(Y[:, 0], z)
    valid = np.arange(4) < lengths[:, None]
    expected = np.where(valid, z[:, None] - np.arange(4), 0.0)
    np.testing.assert_array_equal(Y, expected)
    # the input at step t is f of the target at step t
    Xc, lc, Yc = make_toy_seq2seq(100, noise=0, random_state=5)
    vc = np.arange(4) < lc[:, None]
    np.testing.assert_array_equal(Xc[vc], f(Yc[vc]))


# ---------------------------------------------------------------- eval grid


def test_eval_grid_noise_free():
    X, z = eval_grid()
    assert X.shape == (200, 3) and z.shape == (200,)
    np.testing.assert_array_equal(z, np.linspace(0, 10, 200))
    np.testing.assert_array_equal(X, f(z[:, None] - np.arange(3)))
    X1, z1 = eval_grid(1, length=2)
    assert X1.shape == (1, 2) and z1[0] == 0


# ---------------------------------------------------------------- Standardizer


def test_standardizer_statistics_of_the_seed():
    X, _ = make_toy(140_000, random_state=0)
    s = Standardizer().fit(X)
    # docs/toy-data.md: "near mean 2.87 and std 0.93"
    assert s.mean_ == pytest.approx(2.87, abs=0.01)
    assert s.std_ == pytest.approx(0.93, abs=0.01)
    assert s.mean_ == pytest.approx(X.mean(), rel=1e-12)
    assert s.std_ == pytest.approx(X.std(ddof=1), rel=1e-12)
    Xs = s.transform(X)
    assert Xs.mean() == pytest.approx(0, abs=1e-12)
    assert Xs.std(ddof=1) == pytest.approx(1, abs=1e-12)
    np.testing.assert_allclose(s.inverse_transform(Xs), X, rtol=1e-13, atol=1e-13)


def test_standardizer_uses_valid_cells_only():
    X, lengths, _ = make_toy_varlen(5000, random_state=0)
    valid = np.arange(4) < lengths[:, None]
    s = Standardizer().fit(X, lengths)
    assert s.mean_ == pytest.approx(X[valid].mean(), rel=1e-12)
    assert s.std_ == pytest.approx(X[valid].std(ddof=1), rel=1e-12)
    # garbage in the padding changes nothing
    Xg = X.copy()
    Xg[~valid] = 1e6
    s2 = Standardizer().fit(Xg, lengths)
    assert (s2.mean_, s2.std_) == (s.mean_, s.std_)
    Xs = s.transform(Xg, lengths)
    assert np.all(Xs[~valid] == 0)
    assert Xs[valid].mean() == pytest.approx(0, abs=1e-12)
    assert Xs[valid].std(ddof=1) == pytest.approx(1, abs=1e-12)
    np.testing.assert_array_equal(s.fit_transform(X, lengths), Xs)


def test_standardizer_three_dimensional_input():
    X, lengths, _ = make_toy_varlen(200, random_state=0)
    s2 = Standardizer().fit(X, lengths)
    s3 = Standardizer().fit(X[:, :, None], lengths)
    assert (s2.mean_, s2.std_) == (s3.mean_, s3.std_)
    np.testing.assert_array_equal(s3.transform(X[:, :, None], lengths)[:, :, 0], s2.transform(X, lengths))


def test_standardizer_keeps_float32_and_does_not_mutate():
    X, _ = make_toy(100, random_state=0, dtype=np.float32)
    before = X.copy()
    out = Standardizer().fit_transform(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(X, before)


def test_standardizer_dict_roundtrip_through_json():
    X, _ = make_toy(1000, random_state=0)
    s = Standardizer().fit(X)
    d = json.loads(json.dumps(s.to_dict()))
    assert set(d) == {"mean", "std"}
    assert all(type(v) is float for v in d.values())
    r = Standardizer.from_dict(d)
    assert (r.mean_, r.std_) == (s.mean_, s.std_)
    np.testing.assert_array_equal(r.transform(X), s.transform(X))


@pytest.mark.parametrize(
    "X",
    [
        np.array([[1.0, np.nan, 2.0]]),
        np.array([[1.0, np.inf, 2.0]]),
        np.array([[1.0]]),  # one cell: no unbiased std
    ],
)
def test_standardizer_fit_refuses(X):
    with pytest.raises(ValueError):
        Standardizer().fit(X)


def test_standardizer_per_feature_and_constant_features():
    X = np.stack([np.full((10, 4), 2.5), np.arange(40.0).reshape(10, 4)], axis=2)  # (N, T, 2)
    s = Standardizer(per_feature=True).fit(X)
    np.testing.assert_allclose(s.mean_, [2.5, 19.5])
    np.testing.assert_allclose(s.std_, [1.0, np.arange(40.0).std(ddof=1)])  # constant: centred only
    out = s.transform(X)
    np.testing.assert_array_equal(out[..., 0], 0.0)
    again = Standardizer.from_dict(s.to_dict())
    np.testing.assert_array_equal(again.transform(X), out)
    assert Standardizer().fit(np.full((10, 3), 2.5)).std_ == 1.0


def test_standardizer_refusals():
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().to_dict()
    s = Standardizer().fit(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ValueError, match="NaN"):
        s.transform(np.array([[np.nan, 1.0, 2.0]]))
    # NaN padding is ignored, not refused
    out = s.transform(np.array([[1.0, np.nan]]), lengths=[1])
    assert out[0, 1] == 0
    with pytest.raises(ValueError, match="lengths"):
        s.transform(np.ones((2, 3)), lengths=[1, 4])
    with pytest.raises(ValueError, match="lengths"):
        s.transform(np.ones((2, 3)), lengths=[1])
    with pytest.raises(ValueError, match="lengths"):
        s.transform(np.ones((2, 3)), lengths=[0, 2])
    for bad in (
        {"mean": 1.0},
        {"mean": 1.0, "std": 0.0},
        {"mean": np.nan, "std": 1.0},
        None,
    ):
        with pytest.raises(ValueError):
            Standardizer.from_dict(bad)


# ---------------------------------------------------------------- load_toy


def test_load_toy_fixed_default_split():
    d = load_toy()
    assert isinstance(d, ToyData) and d.kind == "fixed"
    assert d.X_train.shape == (140_000, 3) and d.X_test.shape == (60_000, 3)
    assert d.y_train.shape == (140_000,) and d.y_test.shape == (60_000,)
    assert d.lengths_train is None and d.lengths_test is None
    # statistics fitted on the training inputs only
    X, z = make_toy(random_state=0)
    assert d.scaler.mean_ == pytest.approx(X[:140_000].mean(), rel=1e-12)
    assert d.scaler.std_ == pytest.approx(X[:140_000].std(ddof=1), rel=1e-12)
    assert d.scaler.mean_ == pytest.approx(2.87, abs=0.01)
    assert d.scaler.std_ == pytest.approx(0.93, abs=0.01)
    assert d.X_train.mean() == pytest.approx(0, abs=1e-12)
    assert d.X_train.std(ddof=1) == pytest.approx(1, abs=1e-12)
    np.testing.assert_allclose(d.X_test, (X[140_000:] - d.scaler.mean_) / d.scaler.std_)
    # targets stay raw
    np.testing.assert_array_equal(d.y_train, z[:140_000])
    np.testing.assert_array_equal(d.y_test, z[140_000:])


def test_load_toy_deterministic():
    a, b = load_toy(n_samples=1000), load_toy(n_samples=1000)
    assert a.X_train.tobytes() == b.X_train.tobytes()
    assert a.y_test.tobytes() == b.y_test.tobytes()
    c = load_toy(n_samples=1000, random_state=1)
    assert not np.array_equal(a.X_train, c.X_train)


def test_load_toy_varlen_and_seq2seq():
    for kind in ("varlen", "seq2seq"):
        d = load_toy(kind, n_samples=10_000, n_train=6000, random_state=3)
        assert d.X_train.shape == (6000, 4) and d.X_test.shape == (4000, 4)
        assert d.lengths_train.shape == (6000,) and d.lengths_test.shape == (4000,)
        valid_tr = np.arange(4) < d.lengths_train[:, None]
        valid_te = np.arange(4) < d.lengths_test[:, None]
        assert np.all(d.X_train[~valid_tr] == 0) and np.all(d.X_test[~valid_te] == 0)
        assert d.X_train[valid_tr].mean() == pytest.approx(0, abs=1e-12)
        assert d.X_train[valid_tr].std(ddof=1) == pytest.approx(1, abs=1e-12)
    _X, lengths, Y = make_toy_seq2seq(10_000, random_state=3)
    assert d.y_train.shape == (6000, 4)
    np.testing.assert_array_equal(d.y_train, Y[:6000])
    np.testing.assert_array_equal(d.lengths_test, lengths[6000:])


def test_load_toy_small_and_odd_sizes():
    d = load_toy(n_samples=11)
    assert len(d.X_train) == 7 and len(d.X_test) == 4
    d = load_toy(n_samples=5, n_train=5)
    assert d.X_test.shape == (0, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "nope"},
        {"n_samples": 0},
        {"n_samples": 10, "n_train": 11},
        {"n_samples": 10, "n_train": 0},
        {"n_samples": 10, "noise": -1},
    ],
)
def test_load_toy_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        load_toy(**kwargs)


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "call",
    [
        lambda: make_toy(0),
        lambda: make_toy(-3),
        lambda: make_toy(2.5),
        lambda: make_toy(True),
        lambda: make_toy(10, length=0),
        lambda: make_toy(10, noise=-0.1),
        lambda: make_toy(10, noise=np.nan),
        lambda: make_toy(10, noise="0.1"),
        lambda: make_toy(10, dtype=np.int64),
        lambda: make_toy_varlen(10, lengths=()),
        lambda: make_toy_varlen(10, lengths=(0, 3)),
        lambda: make_toy_varlen(10, lengths=(3.0, 4)),
        lambda: make_toy_varlen(10, lengths=3),
        lambda: make_toy_varlen(10, lengths="34"),
        lambda: make_toy_varlen(0),
        lambda: make_toy_seq2seq(10, lengths=(-1,)),
        lambda: eval_grid(0),
        lambda: eval_grid(10, length=0),
    ],
)
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_numpy_integers_accepted():
    X, _ = make_toy(np.int64(5), length=np.int32(2), random_state=0)
    assert X.shape == (5, 2)
    X, _lengths, _ = make_toy_varlen(5, lengths=np.array([2, 3]), random_state=0)
    assert X.shape == (5, 3)


def test_import_is_light(tmp_path):
    # numpy only, no numba or scipy: the CLI and the docs import these modules.
    # Copied into a bare package so that rnnumba/__init__.py (which imports
    # numba) stays out. (No wall-clock bound: that fails on a busy machine.)
    pkg = tmp_path / "toypkg"
    (pkg / "datasets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    here = Path(datasets.__file__).parent  # rnnumba/datasets
    for name in ("__init__.py", "toy.py", "sensors.py"):
        (pkg / "datasets" / name).write_text((here / name).read_text())
    (pkg / "preprocessing.py").write_text((here.parent / "preprocessing.py").read_text())
    code = "import sys, toypkg.datasets\nprint('numba' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["False", "False"]
