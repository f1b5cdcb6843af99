"""Truncated BPTT (``bptt_steps``): full BPTT when the window holds every step, the
state carried across windows, and where the approximation fails, as it must (#20)."""

import numpy as np
import pytest

from rnnumba import RNNClassifier, RNNRegressor


def _data(N=60, T=24, seed=0, many=False):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(T // 2, T + 1, size=N)
    X = rng.normal(size=(N, T, 2))
    if many:  # y_t = x_{t-1} + x_{t-2}: a short memory
        y = np.zeros((N, T, 1))
        y[:, 2:, 0] = X[:, 1:-1, 0] + X[:, :-2, 1]
    else:
        y = np.array([X[k, lengths[k] - 3 : lengths[k], 0].sum() for k in range(N)])
    return X, y, lengths


@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("options", [dict(momentum=0.9), dict(solver="adam", lr=1e-2)])
def test_a_window_of_every_step_is_full_bptt(many, options):
    X, y, lengths = _data(many=many)
    kw = dict(hidden=5, epochs=3, random_state=0, n_iter_no_change=100, **options)
    full = RNNRegressor(**kw).fit(X, y, lengths=lengths)
    window = RNNRegressor(bptt_steps=X.shape[1], **kw).fit(X, y, lengths=lengths)
    np.testing.assert_array_equal(window.theta_, full.theta_)  # bitwise the same steps


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_short_memory_is_learnt_in_short_windows(cell):
    X, y, lengths = _data(N=200, T=60, many=True)
    kw = dict(hidden=12, cell=cell, solver="adam", lr=1e-2, epochs=15, random_state=0)
    full = RNNRegressor(**kw).fit(X, y, lengths=lengths)
    short = RNNRegressor(bptt_steps=10, **kw).fit(X, y, lengths=lengths)
    assert short.score(X, y, lengths) > 0.9 and full.score(X, y, lengths) > 0.9
    assert short.n_iter_ == 15 and np.isfinite(short.loss_curve_).all()


def test_a_dependency_longer_than_the_window_is_not_learnt():
    """The documented failure: the label is the sign of the first step, read 30 steps later."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 30, 1))
    labels = (X[:, 0, 0] > 0).astype(int)
    kw = dict(hidden=16, cell="lstm", solver="adam", lr=1e-2, epochs=20, random_state=0)
    full = RNNClassifier(**kw).fit(X, labels)
    short = RNNClassifier(bptt_steps=10, **kw).fit(X, labels)
    assert full.score(X, labels) > 0.9
    assert short.score(X, labels) < 0.65  # the gradient never reaches step 0: near chance


def test_the_state_is_carried_across_windows():
    """A many-to-one target read in the last window depends on the earlier windows' inputs."""
    X, y, lengths = _data(N=40, T=20)
    m = RNNRegressor(hidden=5, epochs=1, bptt_steps=4, random_state=0).fit(X, y, lengths=lengths)
    a = m.predict(X, lengths)
    X2 = X.copy()
    X2[:, 0] += 1.0  # the first window only
    assert np.abs(m.predict(X2, lengths) - a).max() > 1e-6  # predict reads the whole sequence


def test_bptt_steps_refusals():
    X, y, lengths = _data(N=10)
    with pytest.raises(ValueError, match="needs solver 'sgd' or 'adam'"):
        RNNRegressor(bptt_steps=4, solver="L-BFGS-B").fit(X, y, lengths=lengths)
    with pytest.raises(ValueError, match="dropout"):
        RNNRegressor(bptt_steps=4, num_layers=2, dropout=0.2).fit(X, y, lengths=lengths)
    with pytest.raises(ValueError, match="bptt_steps"):
        RNNRegressor(bptt_steps=0).fit(X, y, lengths=lengths)


def test_warm_start_goes_on_in_windows():
    X, y, lengths = _data(N=40, T=20)
    kw = dict(hidden=5, solver="adam", lr=1e-2, bptt_steps=6, random_state=0, n_iter_no_change=100)
    one = RNNRegressor(epochs=4, **kw).fit(X, y, lengths=lengths)
    warm = RNNRegressor(epochs=1, warm_start=True, **kw).fit(X, y, lengths=lengths)
    warm.set_params(epochs=3).fit(X, y, lengths=lengths)
    np.testing.assert_array_equal(one.theta_, warm.theta_)
