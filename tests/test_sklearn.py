"""The estimators under scikit-learn's own tools: its check suite, metadata routing,
cross-validation on variable-length data, weights, warm starts and scaling."""

import warnings

import numpy as np
import pytest
import sklearn
import sklearn.exceptions
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_predict, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import rnnumba
import rnnumba.estimators
from rnnumba import RNNClassifier, RNNRegressor
from rnnumba.data import batch
from rnnumba.estimators.inputs import nan_lengths

# Where a sequence model must differ from scikit-learn's tabular conventions.
TWO_D_IS_SEQUENCES = (
    "2-D X is (N, T): N sequences of T steps with one feature each, so n_features_in_ is 1 and X with "
    "another number of columns is data of another length, which is valid"
)
EXPECTED = {
    "check_n_features_in": TWO_D_IS_SEQUENCES,
    "check_n_features_in_after_fitting": TWO_D_IS_SEQUENCES,
}
SGD_ONLY = {
    "check_estimators_partial_fit_n_features": TWO_D_IS_SEQUENCES + " (partial_fit exists for sgd and adam)",
    "check_sample_weight_equivalence_on_dense_data": (
        "minibatch SGD: repeating a row changes the minibatches, so weights equal repetition only for "
        "full-batch solvers (this check passes for the L-BFGS-B instance)"
    ),
}
SEED_DEFAULTS = {
    "check_regressors_train": (
        "the defaults are the seed's (SGD, lr 0.02, 20 epochs): on this task read as 10 steps, R^2 is 0.44 "
        "(100 epochs: 0.82, L-BFGS-B: 0.95, which passes this check below)"
    ),
}
CLASSIFIER_ONLY = {
    "check_classifiers_train": TWO_D_IS_SEQUENCES + " (the check predicts on X with fewer columns)",
}


def _expected(est):
    out = dict(EXPECTED)
    if est.solver == "sgd":
        out.update(SGD_ONLY)
        if isinstance(est, RNNRegressor):
            out.update(SEED_DEFAULTS)
    if isinstance(est, RNNClassifier):
        out.update(CLASSIFIER_ONLY)
    return out


@parametrize_with_checks(
    [
        RNNRegressor(random_state=0),
        RNNRegressor(solver="L-BFGS-B", epochs=100, random_state=0),
        RNNClassifier(random_state=0),
        RNNClassifier(solver="L-BFGS-B", epochs=100, random_state=0),
    ],
    expected_failed_checks=_expected,
)
def test_scikit_learn_check_suite(estimator, check):
    check(estimator)


def test_the_declared_failures_still_fail():
    """Each declared exception is real: the check fails today (else it is removed from the list)."""
    from sklearn.utils.estimator_checks import check_estimator

    for est in (RNNRegressor(random_state=0), RNNClassifier(random_state=0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = check_estimator(est, on_fail=None)
        failed = {r["check_name"] for r in results if r["status"] == "failed"}
        assert failed == set(_expected(est)), failed ^ set(_expected(est))


def test_errors_and_fitted_state_are_scikit_learns():
    assert rnnumba.estimators.NotFittedError is NotFittedError
    with pytest.raises(NotFittedError):
        RNNRegressor().predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="requires y to be passed"):
        RNNRegressor().fit(np.zeros((2, 3)), None)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        RNNClassifier(epochs=1).fit(np.random.default_rng(0).normal(size=(6, 3)), np.linspace(0, 1, 6))


# -- variable lengths through cross-validation ---------------------------------------


def _ragged(n=60, T=9, seed=0, garbage=1e3):
    """Padded sequences whose padding holds garbage that would change any score that read it."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, T + 1, size=n)
    X = rng.normal(size=(n, T))
    valid = np.arange(T)[None, :] < lengths[:, None]
    y = np.array([X[k, : lengths[k]].sum() for k in range(n)])  # the sum of the valid steps
    X[~valid] = garbage
    return X, y, lengths, valid


def _by_hand(est, X, y, lengths, cv):
    scores = []
    for tr, te in cv.split(X):
        m = clone(est).fit(X[tr], y[tr], lengths=lengths[tr])
        scores.append(m.score(X[te], y[te], lengths=lengths[te]))
    return np.array(scores)


def test_cross_val_score_routes_lengths_to_fit_and_score():
    X, y, lengths, _ = _ragged()
    est = RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=40, random_state=0)
    cv = KFold(3)
    expected = _by_hand(est, X, y, lengths, cv)
    assert expected.mean() > 0.5  # the model learns the task from the valid steps
    with sklearn.config_context(enable_metadata_routing=True):
        got = cross_val_score(est, X, y, cv=cv, params={"lengths": lengths})
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        # through a Pipeline and a grid search, and to predict
        pipe = cross_val_score(make_pipeline(est), X, y, cv=cv, params={"lengths": lengths})
        np.testing.assert_allclose(pipe, expected, rtol=0, atol=1e-12)
        grid = GridSearchCV(make_pipeline(est), {"rnnregressor__hidden": [8]}, cv=cv)
        grid.fit(X, y, lengths=lengths)
        np.testing.assert_allclose(grid.best_score_, expected.mean(), rtol=0, atol=1e-12)
        # cross_val_predict routes params to fit only (scikit-learn 1.9): its predict reads
        # the padding, and says so; NaN padding carries the lengths there
        with pytest.warns(UserWarning, match="no lengths came with it"):
            cross_val_predict(est, X, y, cv=cv, params={"lengths": lengths})
    by_hand = np.empty_like(y)
    for tr, te in cv.split(X):
        by_hand[te] = clone(est).fit(X[tr], y[tr], lengths=lengths[tr]).predict(X[te], lengths[te])
    Xn = np.where(np.arange(X.shape[1])[None, :] < lengths[:, None], X, np.nan)
    np.testing.assert_allclose(cross_val_predict(est, Xn, y, cv=cv), by_hand, rtol=0, atol=1e-12)


def test_sample_weight_is_routed_on_request():
    X, y, lengths, _ = _ragged()
    w = np.random.default_rng(1).uniform(0, 2, size=len(y))
    est = RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=30, random_state=0)
    cv = KFold(3)
    expected = []
    for tr, te in cv.split(X):
        m = clone(est).fit(X[tr], y[tr], lengths=lengths[tr], sample_weight=w[tr])
        expected.append(m.score(X[te], y[te], lengths=lengths[te], sample_weight=w[te]))
    with sklearn.config_context(enable_metadata_routing=True):
        params = {"lengths": lengths, "sample_weight": w}
        with pytest.raises(sklearn.exceptions.UnsetMetadataPassedError):  # not silently dropped
            cross_val_score(est, X, y, cv=cv, params=params)
        req = clone(est).set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        got = cross_val_score(req, X, y, cv=cv, params=params)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_nan_padding_carries_the_lengths_without_routing():
    X, y, lengths, valid = _ragged()
    Xn = np.where(valid, X, np.nan)
    np.testing.assert_array_equal(nan_lengths(Xn), lengths)
    est = RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=40, random_state=0)
    cv = KFold(3)
    expected = _by_hand(est, X, y, lengths, cv)
    np.testing.assert_allclose(cross_val_score(est, Xn, y, cv=cv), expected, rtol=0, atol=1e-12)
    # a list of sequences too, and inside a Pipeline and a grid search
    seqs = [X[k, : lengths[k]] for k in range(len(y))]
    np.testing.assert_allclose(cross_val_score(est, seqs, y, cv=cv), expected, rtol=0, atol=1e-12)
    grid = GridSearchCV(make_pipeline(est), {"rnnregressor__hidden": [8]}, cv=cv).fit(Xn, y)
    np.testing.assert_allclose(grid.best_score_, expected.mean(), rtol=0, atol=1e-12)


def test_padded_array_without_its_lengths_warns():
    X, y, lengths, _ = _ragged()
    m = RNNRegressor(hidden=4, epochs=1, random_state=0).fit(X, y, lengths=lengths)
    with pytest.warns(UserWarning, match="no lengths came with it"):
        m.score(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.score(X, y, lengths=lengths)


def test_nan_inside_a_sequence_or_a_whole_nan_sequence_is_an_error():
    X = np.ones((3, 5))
    X[1, 1] = np.nan  # not trailing: a hole in the data
    with pytest.raises(ValueError, match=r"NaN or inf .* sample 1, step 1"):
        RNNRegressor(epochs=1).fit(X, np.ones(3))
    X = np.ones((3, 5))
    X[2] = np.nan
    with pytest.raises(ValueError, match=r"X\[2\] is all NaN"):
        RNNRegressor(epochs=1).fit(X, np.ones(3))


def test_channels_first_reads_aeon_numpy3d():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 7, 3))  # (N, T, I)
    y = X[:, :, 0].sum(axis=1)
    a = RNNRegressor(hidden=5, epochs=2, random_state=0).fit(X, y)
    b = RNNRegressor(hidden=5, epochs=2, random_state=0, channels_first=True).fit(X.transpose(0, 2, 1), y)
    assert b.n_features_in_ == 3
    np.testing.assert_array_equal(a.theta_, b.theta_)
    np.testing.assert_array_equal(a.predict(X), b.predict(X.transpose(0, 2, 1)))
    with pytest.raises(ValueError, match=r"expecting 3 features per step .*\(N, C, T\)"):
        b.predict(X)  # (N, T=7, I=3) read channels first: 7 channels
    # an aeon array without the flag: read as (N, T, I), but not silently
    with pytest.warns(UserWarning, match=r"pass channels_first=True"):
        RNNRegressor(hidden=3, epochs=1).fit(X.transpose(0, 2, 1), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RNNRegressor(hidden=3, epochs=1, channels_first=False).fit(X.transpose(0, 2, 1), y)
    with pytest.raises(ValueError, match=r"Reshape your data: one sequence is X\[None\]"):
        RNNRegressor(epochs=1).fit(np.ones(5), np.ones(5))


# -- weights ------------------------------------------------------------------------


def test_zero_weights_on_half_the_data_give_the_fit_on_the_other_half():
    X, y, lengths, _ = _ragged(n=40)
    w = np.r_[np.ones(20), np.zeros(20)]
    for solver in ("L-BFGS-B", "BFGS"):
        est = RNNRegressor(hidden=6, solver=solver, epochs=25, random_state=0)
        a = clone(est).fit(X, y, lengths=lengths, sample_weight=w)
        b = clone(est).fit(X[:20], y[:20], lengths=lengths[:20])
        # the objective and its gradient agree to rounding; after 25 iterations the parameters too
        np.testing.assert_allclose(a.theta_, b.theta_, rtol=0, atol=1e-10)
        np.testing.assert_allclose(a.scaler_.mean_, b.scaler_.mean_, rtol=1e-14)
    # the loss and gradient at one point: weighted mean over the data = mean over the kept half
    net = b.net_
    Xs = b._check_X(X, lengths).X  # validated and scaled
    full = batch(Xs, y, lengths, "mse", weights=w)
    half = batch(Xs[:20], y[:20], lengths[:20], "mse")
    ga, gb = np.empty(net.n_params), np.empty(net.n_params)
    la = net.backend.loss_and_grad(net.theta, ga, full)
    lb = net.backend.loss_and_grad(net.theta, gb, half)
    np.testing.assert_allclose(la, lb, rtol=1e-12)
    np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-14)


def test_integer_weights_equal_repeated_sequences_for_full_batch_solvers():
    X, y, lengths, _ = _ragged(n=30)
    w = np.arange(30) % 3  # 0, 1 or 2 copies
    rows = np.repeat(np.arange(30), w)
    est = RNNRegressor(hidden=6, solver="L-BFGS-B", epochs=20, random_state=0)
    a = clone(est).fit(X, y, lengths=lengths, sample_weight=w)
    b = clone(est).fit(X[rows], y[rows], lengths=lengths[rows])
    np.testing.assert_allclose(a.predict(X, lengths), b.predict(X, lengths), rtol=1e-8)


def test_sample_weight_reaches_the_minibatch_solvers_and_the_score():
    X, y, lengths, _ = _ragged(n=40)
    w = np.r_[np.ones(20), np.zeros(20)]
    est = RNNRegressor(hidden=6, epochs=3, batch_size=20, shuffle=False, random_state=0)
    # blocks of 20 rows: the second block weighs nothing and takes no step
    a = clone(est).fit(X, y, lengths=lengths, sample_weight=w)
    b = clone(est).fit(X[:20], y[:20], lengths=lengths[:20])
    np.testing.assert_allclose(a.theta_, b.theta_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-12)
    assert a.score(X, y, lengths, sample_weight=w) == pytest.approx(a.score(X[:20], y[:20], lengths[:20]))
    with pytest.raises(ValueError, match="non-negative"):
        clone(est).fit(X, y, lengths=lengths, sample_weight=-w)
    with pytest.raises(ValueError, match="sums to zero"):
        clone(est).fit(X, y, lengths=lengths, sample_weight=0 * w)


def test_class_weight_is_a_sample_weight_per_class():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 6))
    labels = np.where(X.sum(axis=1) > 1.0, "rare", "common")
    counts = {c: np.sum(labels == c) for c in ("common", "rare")}
    balanced = np.array([len(labels) / (2 * counts[c]) for c in labels])
    # (without input scaling: sample weights weigh the scaler's statistics too, class weights do not)
    est = RNNClassifier(hidden=5, solver="L-BFGS-B", epochs=15, random_state=0, standardize=False)
    a = clone(est).set_params(class_weight="balanced").fit(X, labels)
    b = clone(est).fit(X, labels, sample_weight=balanced)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-10)
    c = clone(est).set_params(class_weight={"common": 1.0, "rare": 3.0}).fit(X, labels)
    d = clone(est).fit(X, labels, sample_weight=np.where(labels == "rare", 3.0, 1.0))
    np.testing.assert_allclose(c.theta_, d.theta_, rtol=1e-10)


def test_nan_targets_skip_their_steps():
    """Trailing NaN targets of a causal model = the sequences cut where the targets end."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 8, 2))
    Y = np.cumsum(X[:, :, :1], axis=1)
    cut = rng.integers(2, 9, size=12)
    Yn = Y.copy()
    for k in range(12):
        Yn[k, cut[k] :] = np.nan
    est = RNNRegressor(hidden=5, solver="L-BFGS-B", epochs=20, random_state=0, standardize=False)
    a = clone(est).fit(X, Yn)
    b = clone(est).fit([X[k, : cut[k]] for k in range(12)], [Y[k, : cut[k]] for k in range(12)])
    np.testing.assert_allclose(a.theta_, b.theta_, rtol=0, atol=1e-10)
    assert a.score(X, Yn) == pytest.approx(
        b.score([X[k, : cut[k]] for k in range(12)], [Y[k, : cut[k]] for k in range(12)])
    )
    with pytest.raises(ValueError, match="NaN may only mark missing per-step targets"):
        RNNRegressor(epochs=1).fit(X, np.r_[np.nan, np.ones(11)])


# -- warm starts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [dict(momentum=0.9), dict(solver="adam", lr=1e-3), dict(dropout=0.3, num_layers=2)]
)
def test_warm_start_k_then_m_epochs_is_one_fit_of_k_plus_m(options):
    X, y, lengths, _ = _ragged(n=50)
    kw = dict(hidden=6, random_state=0, n_iter_no_change=100, **options)
    one = RNNRegressor(epochs=5, **kw).fit(X, y, lengths=lengths)
    warm = RNNRegressor(epochs=2, warm_start=True, **kw).fit(X, y, lengths=lengths)
    warm.set_params(epochs=3).fit(X, y, lengths=lengths)
    np.testing.assert_array_equal(one.theta_, warm.theta_)  # bitwise
    assert warm.loss_curve_ == one.loss_curve_ and warm.n_iter_ == 5
    parts = RNNRegressor(**kw)
    for _ in range(5):
        parts.partial_fit(X, y, lengths=lengths)
    np.testing.assert_array_equal(one.theta_, parts.theta_)


def test_warm_start_off_refits_from_scratch_and_partial_fit_needs_a_minibatch_solver():
    X, y, lengths, _ = _ragged(n=30)
    m = RNNRegressor(hidden=4, epochs=2, random_state=0).fit(X, y, lengths=lengths)
    first = m.theta_.copy()
    np.testing.assert_array_equal(m.fit(X, y, lengths=lengths).theta_, first)
    assert not hasattr(RNNRegressor(solver="L-BFGS-B"), "partial_fit")
    clf = RNNClassifier(hidden=4, random_state=0)
    labels = np.where(y > 0, "a", "b")
    clf.partial_fit(X[:10], labels[:10], lengths=lengths[:10], classes=["a", "b", "c"])
    assert list(clf.classes_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:10], np.full(10, "d"), lengths=lengths[:10])


# -- scaling ------------------------------------------------------------------------


def _mixed_units(n=200, seed=4):
    """Three features in very different units; the target needs all three."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 10, 3))
    units = np.array([1e-3, 1.0, 1e4])
    y = (Z[:, :, 0] - Z[:, :, 1] + 0.5 * Z[:, :, 2]).mean(axis=1)
    return Z * units + np.array([5.0, -2.0, 3e4]), y, Z


def test_per_feature_standardisation_matches_prescaled_data():
    X, y, Z = _mixed_units()
    est = RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=60, random_state=0)
    mixed = clone(est).fit(X[:150], y[:150]).score(X[150:], y[150:])
    pre = (X - X[:150].reshape(-1, 3).mean(axis=0)) / X[:150].reshape(-1, 3).std(axis=0, ddof=1)
    prescaled = clone(est).fit(pre[:150], y[:150]).score(pre[150:], y[150:])
    glob = clone(est).set_params(standardize="global").fit(X[:150], y[:150]).score(X[150:], y[150:])
    assert mixed > 0.8
    assert mixed == pytest.approx(prescaled, abs=1e-6)
    assert glob < mixed - 0.3  # one scalar for all three units loses the small ones


def test_target_scaling():
    X, y, _ = _mixed_units()
    big = 1e4 * y + 5e4
    m = RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=60, random_state=0, scale_target=True).fit(X, big)
    np.testing.assert_allclose(m.target_mean_, [big.mean()])
    assert m.score(X, big) > 0.8
    assert abs(m.predict(X).mean() - big.mean()) < 0.05 * big.std()
    plain = RNNRegressor(hidden=8, solver="L-BFGS-B", epochs=60, random_state=0).fit(X, big)
    assert plain.score(X, big) < m.score(X, big)


@pytest.mark.parametrize(
    "state",
    [0, np.random.RandomState(0), np.random.default_rng(0), None],
    ids=["int", "RandomState", "Generator", "None"],
)
def test_random_state_kinds(state):
    X, y, lengths, _ = _ragged(n=20)
    m = RNNRegressor(hidden=4, epochs=1, random_state=state).fit(X, y, lengths=lengths)
    assert np.all(np.isfinite(m.theta_))


def test_feature_names_from_a_list_of_dataframes(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    frames = [pd.DataFrame(rng.normal(size=(t, 2)), columns=["temp", "pressure"]) for t in (4, 6, 5)]
    m = RNNRegressor(hidden=3, epochs=1, random_state=0).fit(frames, np.ones(3))
    assert list(m.feature_names_in_) == ["temp", "pressure"]
    with pytest.raises(ValueError, match="feature names should match"):
        m.predict([f.rename(columns={"temp": "t"}) for f in frames])
    m.save(tmp_path / "m.npz")
    again = rnnumba.load(tmp_path / "m.npz")
    assert list(again.feature_names_in_) == ["temp", "pressure"]
    np.testing.assert_array_equal(again.predict(frames), m.predict(frames))


# -- the worked example of docs/data.md ----------------------------------------------


def test_make_sensors():
    from rnnumba.datasets import make_sensors

    X, fault, load = make_sensors(50, random_state=0)
    assert len(X) == 50 and all(x.shape[1] == 3 and 20 <= x.shape[0] <= 60 for x in X)
    assert set(np.unique(fault)) <= {0, 1} and np.all((load >= 0.5) & (load <= 2))
    X2, _, _ = make_sensors(50, random_state=0)
    assert all(np.array_equal(a, b) for a, b in zip(X, X2, strict=True))
    with pytest.raises(ValueError, match="max_length"):
        make_sensors(5, min_length=10, max_length=5)


def test_worked_example():
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    from rnnumba.datasets import make_sensors

    X, fault, load = make_sensors(400, random_state=0)
    Xtr, Xte, ftr, fte, ltr, lte = train_test_split(X, fault, load, test_size=0.25, random_state=0)
    reg = RNNRegressor(hidden=16, solver="L-BFGS-B", epochs=150, random_state=0).fit(Xtr, ltr)
    assert reg.score(Xte, lte) > 0.97
    clf = RNNClassifier(hidden=16, solver="adam", lr=1e-2, epochs=40, class_weight="balanced", random_state=0)
    assert clf.fit(Xtr, ftr).score(Xte, fte) > 0.95
    glob = clone(clf).set_params(standardize="global").fit(Xtr, ftr)
    assert balanced_accuracy_score(fte, glob.predict(Xte)) < 0.6  # one scalar for three units fails


def test_the_data_docs_snippets_run():
    X = np.array([[0.1, 0.5, 0.9, np.nan], [0.2, 0.4, np.nan, np.nan]])
    m = RNNRegressor(epochs=1).fit(X, [1.0, 2.0])
    assert m.n_features_in_ == 1
    X3 = np.random.default_rng(0).normal(size=(8, 3, 50))
    c = RNNClassifier(channels_first=True, epochs=1).fit(X3, [0, 1] * 4)
    assert c.n_features_in_ == 3


def test_a_failed_refit_keeps_the_fitted_model():
    X, y, lengths, _ = _ragged(n=20)
    m = RNNRegressor(hidden=4, epochs=1, random_state=0).fit(X, y, lengths=lengths)
    state = {k: v for k, v in m.__dict__.items()}
    pred = m.predict(X, lengths)
    hole = np.ones((20, 4, 3))
    hole[3, 1, 0] = np.nan
    for bad in (dict(X=hole, y=y), dict(X=X, y=np.ones((20, 2, 2, 2))), dict(X=X, y=y[:5])):
        with pytest.raises(ValueError):
            m.fit(bad["X"], bad["y"])
        assert m.__dict__.keys() == state.keys() and all(m.__dict__[k] is state[k] for k in state)
        np.testing.assert_array_equal(m.predict(X, lengths), pred)
    m.set_params(warm_start=True, hidden=5)
    with pytest.raises(ValueError, match=r"hidden 4 -> 5"):
        m.fit(X, y, lengths=lengths)
    np.testing.assert_array_equal(m.predict(X, lengths), pred)


# -- review findings: each once a defect ----------------------------------------------


def test_refit_without_scale_target_forgets_the_target_scaling():
    X, y, lengths, _ = _ragged(n=30)
    big = 100 * y + 50
    m = RNNRegressor(hidden=4, epochs=2, random_state=0, scale_target=True).fit(X, big, lengths=lengths)
    m.set_params(scale_target=False).fit(X, big, lengths=lengths)
    fresh = RNNRegressor(hidden=4, epochs=2, random_state=0).fit(X, big, lengths=lengths)
    assert not hasattr(m, "target_mean_")
    np.testing.assert_array_equal(m.predict(X, lengths), fresh.predict(X, lengths))
    Y = np.full((30, 9, 2), 1.0)
    Y[:, :, 1] = np.nan
    with pytest.raises(ValueError, match=r"output\(s\) \[1\] have no target"):
        RNNRegressor(epochs=1, scale_target=True).fit(X, Y)


def test_unweighted_data_never_takes_the_weighted_path(monkeypatch):
    import rnnumba.estimators.base as base

    seen = []
    real = base.batch
    monkeypatch.setattr(base, "batch", lambda *a, **k: seen.append(k.get("weights")) or real(*a, **k))
    X, y, lengths, valid = _ragged(n=20)
    labels = [np.where(X[k, : lengths[k]] > 0, "up", "down") for k in range(20)]
    RNNClassifier(hidden=3, epochs=1).fit([X[k, : lengths[k]] for k in range(20)], labels)
    Xn = np.where(valid, X, np.nan)
    Yn = np.where(valid, X, np.nan)[:, :, None]  # per-step targets, NaN in the padding only
    RNNRegressor(hidden=3, epochs=1).fit(Xn, Yn)
    assert seen == [None, None]


def test_float32_per_feature_scaling_stays_float32():
    from rnnumba.preprocessing import Standardizer

    X = np.random.default_rng(0).normal(size=(10, 4, 1)).astype(np.float32)
    per, glob = Standardizer(True).fit(X), Standardizer().fit(X)
    assert per.transform(X).dtype == np.float32
    np.testing.assert_array_equal(per.transform(X), glob.transform(X))  # one feature: the same bits


def test_channels_first_dataframes_name_their_rows():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frames = [pd.DataFrame(rng.normal(size=(2, t)), index=["temp", "flow"]) for t in (4, 6, 5)]
    m = RNNRegressor(hidden=3, epochs=1, channels_first=True).fit(frames, np.ones(3))
    assert m.n_features_in_ == 2 and list(m.feature_names_in_) == ["temp", "flow"]


def test_partial_fit_refusals_are_clear():
    X, y, lengths, _ = _ragged(n=20)
    labels = np.where(y > 0, "a", "b")
    with pytest.raises(ValueError, match="balanced"):
        RNNClassifier(class_weight="balanced").partial_fit(X, labels, lengths=lengths)
    with pytest.raises(ValueError, match="early_stopping"):
        RNNClassifier(early_stopping=True).partial_fit(X, labels, lengths=lengths)
    clf = RNNClassifier(hidden=3).partial_fit(X, labels, lengths=lengths, classes=["a", "b"])
    with pytest.raises(ValueError, match="differ from classes_"):
        clf.partial_fit(X, labels, lengths=lengths, classes=["a", "b", "c"])


def test_validation_scores_use_sample_weights_not_class_weights():
    X, y, lengths, _ = _ragged(n=40)
    labels = np.where(y > 1, "a", "b")
    m = RNNClassifier(hidden=3, epochs=3, early_stopping=True, validation_fraction=0.25, n_iter_no_change=10)
    m.set_params(class_weight={"a": 5.0, "b": 1.0}, random_state=0).fit(X, labels, lengths=lengths)
    assert all(abs(s * 10 - round(s * 10)) < 1e-12 for s in m.validation_scores_)  # plain accuracy on 10 rows
    with pytest.raises(ValueError, match="non-negative"):
        m.score(X, labels, lengths, sample_weight=-np.ones(40))


def test_class_weights_follow_scikit_learns_rule():
    from sklearn.utils.class_weight import compute_class_weight

    from rnnumba.data import class_weights

    y = np.array(["a"] * 7 + ["b"] * 2 + ["c"])
    classes, counts = np.unique(y, return_counts=True)
    for cw in ("balanced", {"a": 0.5, "c": 3.0}, None):
        np.testing.assert_allclose(
            class_weights(cw, classes, counts), compute_class_weight(cw, classes=classes, y=y)
        )
    with pytest.raises(ValueError, match="not in y"):
        class_weights({"z": 1.0}, classes, counts)
    with pytest.raises(ValueError, match="missing"):
        class_weights("balanced", classes, np.array([3, 0, 1]))
