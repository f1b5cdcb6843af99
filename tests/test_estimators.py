"""RNNRegressor, RNNClassifier and rnnumba.fit: options, conventions, failures."""

import pickle
import sys
import warnings

import numpy as np
import pytest

import rnnumba
from rnnumba.datasets import make_toy
from rnnumba.estimators import NotFittedError, RNNClassifier, RNNRegressor

FAST = dict(hidden=5, epochs=2, batch_size=10, random_state=0)


@pytest.fixture(scope="module")
def toy():
    return make_toy(120, random_state=0)


def _labels(X):
    return np.where(np.asarray(X)[:, 0] > 2.8, "up", "down")


# -- the three-line use --------------------------------------------------------


def test_fit_picks_the_estimator(toy):
    X, z = toy
    reg = rnnumba.fit(X, z, **FAST)
    assert isinstance(reg, RNNRegressor) and reg.n_params_ == 5 * 5 + 5 + 2 * 5 + 1
    assert reg.predict(X).shape == (120,) and np.isfinite(reg.score(X, z))
    clf = rnnumba.fit(X, (z > 5).astype(int), **FAST)
    assert isinstance(clf, RNNClassifier) and list(clf.classes_) == [0, 1]
    assert isinstance(rnnumba.fit(X, _labels(X), **FAST), RNNClassifier)
    assert isinstance(rnnumba.fit(X, z > 5, **FAST), RNNClassifier)


def test_fitted_attributes(toy):
    X, z = toy
    m = RNNRegressor(**FAST).fit(X, z)
    assert m.theta_ is m.net_.theta and m.theta_.shape == (m.n_params_,)
    assert len(m.loss_curve_) == m.n_iter_ == 2 and m.stop_reason_ == "max_iter"
    assert m.best_loss_ == min(m.loss_curve_)
    assert not hasattr(m, "validation_scores_") and not hasattr(m, "optimize_result_")
    assert m.n_features_in_ == 1 and m.n_outputs_ == 1 and not m.many_to_many_
    assert m.loss_curve_[1] < m.loss_curve_[0]


def test_seed_defaults():
    m = RNNRegressor()
    assert (m.hidden, m.solver, m.lr, m.batch_size, m.epochs, m.standardize) == (
        26,
        "sgd",
        0.02,
        20,
        20,
        True,
    )


def test_determinism(toy):
    X, z = toy
    a = RNNRegressor(**FAST).fit(X, z)
    b = RNNRegressor(**FAST).fit(X, z)
    np.testing.assert_array_equal(a.theta_, b.theta_)
    assert a.loss_curve_ == b.loss_curve_
    c = RNNRegressor(**dict(FAST, random_state=1)).fit(X, z)
    assert not np.array_equal(a.theta_, c.theta_)


def test_standardize_is_stored_and_applied(toy):
    X, z = toy
    m = RNNRegressor(**FAST).fit(X, z)
    assert m.scaler_.mean_ == pytest.approx(np.mean(X)) and m.scaler_.std_ == pytest.approx(np.std(X, ddof=1))
    raw = m.net_.predict((X - m.scaler_.mean_) / m.scaler_.std_)[:, 0]
    np.testing.assert_allclose(m.predict(X), raw, rtol=1e-12)
    off = RNNRegressor(**dict(FAST, standardize=False)).fit(X, z)
    assert off.scaler_ is None
    np.testing.assert_array_equal(off.predict(X), off.net_.predict(X)[:, 0])


def test_epochs_zero_only_initialises(toy):
    X, z = toy
    m = RNNRegressor(**dict(FAST, epochs=0)).fit(X, z)
    n = rnnumba.RNN(1, 5, random_state=np.random.default_rng(0))
    np.testing.assert_array_equal(m.theta_, n.theta)
    assert m.loss_curve_ == [] and m.n_iter_ == 0


# -- shapes: outputs, sequences, classes ------------------------------------------


def test_multi_output_and_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4, 3))
    Y = np.stack([X.sum(axis=(1, 2)), X[:, -1, 0]], axis=1)
    m = RNNRegressor(**FAST).fit(X, Y)
    assert m.n_features_in_ == 3 and m.n_outputs_ == 2 and m.predict(X).shape == (40, 2)
    with pytest.raises(ValueError, match="feature"):
        m.predict(X[:, :, :2])


def test_many_to_many_regression_padded_and_lists():
    rng = np.random.default_rng(1)
    lens = rng.integers(1, 6, size=30)
    seqs = [rng.normal(size=k) for k in lens]
    targets = [np.cumsum(s) for s in seqs]
    m = RNNRegressor(**FAST).fit(seqs, targets)
    assert m.many_to_many_
    out = m.predict(seqs)
    assert isinstance(out, list) and [len(o) for o in out] == list(lens) and out[0].ndim == 1
    assert np.isfinite(m.score(seqs, targets))
    Xp = np.zeros((30, 5))
    Y3 = np.zeros((30, 5, 1))
    for k, s in enumerate(seqs):
        Xp[k, : lens[k]], Y3[k, : lens[k], 0] = s, targets[k]
    m3 = RNNRegressor(**FAST).fit(Xp, Y3, lengths=lens)
    pred = m3.predict(Xp, lengths=lens)
    assert pred.shape == (30, 5, 1) and np.isnan(pred[lens < 5, -1]).all()
    # list and padded forms train the same network
    np.testing.assert_allclose(m3.theta_, m.theta_, rtol=1e-12)


def test_variable_lengths_many_to_one():
    X, lens, y = rnnumba.datasets.make_toy_varlen(80, random_state=0)
    m = RNNRegressor(**FAST).fit(X, y, lengths=lens)
    assert m.predict(X, lengths=lens).shape == (80,)
    with pytest.raises(ValueError, match="lengths"):
        m.fit([x for x in X], y, lengths=lens)


def test_classifier_labels_proba_score(toy):
    X, _ = toy
    labels = _labels(X)
    m = RNNClassifier(**dict(FAST, solver="adam", lr=0.05, epochs=5)).fit(X, labels)
    assert list(m.classes_) == ["down", "up"] and m.n_outputs_ == 2
    p = m.predict_proba(X)
    assert p.shape == (120, 2) and np.allclose(p.sum(axis=1), 1)
    pred = m.predict(X)
    assert set(pred) <= {"down", "up"}
    np.testing.assert_array_equal(pred, m.classes_[np.argmax(p, axis=1)])
    assert m.score(X, labels) == pytest.approx(np.mean(pred == labels))
    assert m.score(X, np.full(120, "never")) == 0.0
    assert m.score(X, np.zeros(120, dtype=int)) == 0.0  # labels of another kind


def test_classifier_many_to_many():
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=k) for k in rng.integers(2, 5, size=40)]
    labels = [np.where(s > 0, 7, 3) for s in seqs]
    m = RNNClassifier(**FAST).fit(seqs, labels)
    assert m.many_to_many_ and list(m.classes_) == [3, 7]
    pred, proba = m.predict(seqs), m.predict_proba(seqs)
    assert [len(p) for p in pred] == [len(s) for s in seqs]
    assert all(np.allclose(q.sum(axis=1), 1) for q in proba)
    assert 0.0 <= m.score(seqs, labels) <= 1.0


def test_classifier_needs_two_classes(toy):
    X, _ = toy
    with pytest.raises(ValueError, match="at least 2 classes"):
        RNNClassifier(**FAST).fit(X, np.zeros(120, dtype=int))


@pytest.mark.parametrize(
    "arch", [dict(cell="lstm"), dict(cell="gru"), dict(num_layers=2, bidirectional=True)], ids=str
)
def test_architectures(toy, arch):
    from rnnumba.layout import n_params

    X, z = toy
    m = RNNRegressor(**dict(FAST, **arch)).fit(X, z)
    assert m.n_params_ == n_params(
        arch.get("cell", "elman"), 1, 5, **{k: v for k, v in arch.items() if k != "cell"}
    )
    assert np.all(np.isfinite(m.loss_curve_)) and m.predict(X).shape == (120,)


def test_float32(toy):
    X, z = toy
    m = RNNRegressor(**dict(FAST, dtype="float32")).fit(X, z)
    assert m.theta_.dtype == np.float32 and m.predict(X).dtype == np.float32


# -- solvers and stopping -------------------------------------------------------


@pytest.mark.parametrize(
    "opts",
    [
        dict(momentum=0.9),
        dict(momentum=0.9, nesterov=True),
        dict(solver="adam", lr=0.01),
        dict(clip=0.5, weight_decay=0.01),
        dict(shuffle=False),
    ],
)
def test_first_order_options(toy, opts):
    X, z = toy
    m = RNNRegressor(**dict(FAST, epochs=3, **opts)).fit(X, z)
    assert m.loss_curve_[-1] < m.loss_curve_[0] and np.all(np.isfinite(m.theta_))


def test_scipy_solver(toy):
    X, z = toy
    m = RNNRegressor(**dict(FAST, solver="l-bfgs-b", epochs=20)).fit(X, z)
    r = m.optimize_result_
    assert r.nit <= 20 and m.n_iter_ == len(m.loss_curve_) == r.nit
    np.testing.assert_array_equal(m.theta_, r.x)
    assert m.loss_curve_[-1] < m.loss_curve_[0]
    m2 = RNNRegressor(**dict(FAST, solver="BFGS", epochs=50, solver_options={"maxiter": 3})).fit(X, z)
    assert m2.optimize_result_.nit <= 3
    m3 = RNNRegressor(**dict(FAST, solver="CG", epochs=3, subsample=30)).fit(X, z)
    assert m3.n_iter_ <= 3


def test_early_stopping(toy):
    X, z = toy
    m = RNNRegressor(
        **dict(FAST, epochs=6, early_stopping=True, validation_fraction=0.25, n_iter_no_change=2)
    ).fit(X, z)
    assert len(m.validation_scores_) == m.n_iter_ and not hasattr(m, "best_loss_")
    assert m.best_validation_score_ == max(m.validation_scores_)
    with pytest.raises(ValueError, match="validation_fraction"):
        RNNRegressor(**dict(FAST, early_stopping=True, validation_fraction=0.1)).fit(X[:3], z[:3])


def test_tol_stops_when_the_loss_stalls(toy):
    X, z = toy
    m = RNNRegressor(**dict(FAST, epochs=50, tol=1e9, n_iter_no_change=3)).fit(X, z)
    assert m.n_iter_ == 4 and m.stop_reason_ == "converged"  # the first epoch always improves


def test_callbacks_see_the_model_and_can_stop(toy):
    X, z = toy
    seen = []

    def cb(model, epoch, loss):
        seen.append((epoch, loss, model.predict(X[:3]).shape))
        return epoch == 1

    m = RNNRegressor(**dict(FAST, epochs=10, callbacks=cb)).fit(X, z)
    assert [s[0] for s in seen] == [0, 1] and m.stop_reason_ == "callback" and m.n_iter_ == 2
    assert [s[1] for s in seen] == m.loss_curve_ and seen[0][2] == (3,)


@pytest.mark.parametrize("solver", ["sgd", "L-BFGS-B"])
def test_ctrl_c_keeps_the_model(toy, solver):
    X, z = toy

    def interrupt(model, epoch, loss):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted"):
        m = RNNRegressor(**dict(FAST, epochs=10, solver=solver, callbacks=interrupt)).fit(X, z)
    assert m.stop_reason_ == "interrupted" and m.n_iter_ == 2
    assert np.all(np.isfinite(m.predict(X)))


def test_divergence_warns_and_keeps_finite_parameters(toy):
    X, z = toy
    with pytest.warns(RuntimeWarning, match="diverged"):
        m = RNNRegressor(**dict(FAST, lr=1e200, epochs=5)).fit(X, z)
    assert m.stop_reason_ == "diverged" and np.all(np.isfinite(m.theta_))
    assert np.all(np.isfinite(m.predict(X)))


def test_verbose_progress(toy, capsys, monkeypatch):
    X, z = toy
    RNNRegressor(**dict(FAST, verbose=True)).fit(X, z)
    assert "loss" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # tqdm is optional
    RNNRegressor(**dict(FAST, verbose=True)).fit(X, z)
    assert "epoch 2/2  loss" in capsys.readouterr().err


# -- scikit-learn conventions ------------------------------------------------------


def test_params_and_repr():
    m = RNNRegressor(hidden=8, lr=0.1)
    params = m.get_params()
    assert params["hidden"] == 8 and params["lr"] == 0.1 and "random_state" in params
    assert m.set_params(lr=0.2) is m and m.lr == 0.2
    with pytest.raises(ValueError, match="Invalid parameter 'learning_rate'"):
        m.set_params(learning_rate=1)
    assert repr(m) == "RNNRegressor(hidden=8, lr=0.2)"
    assert not hasattr(m, "theta_")
    with pytest.raises(NotFittedError):
        m.predict(np.zeros((2, 3)))


def test_sklearn_clone_grid_search_pipeline(toy):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone, is_classifier, is_regressor
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    assert sklearn
    X, z = toy
    m = RNNRegressor(**dict(FAST, callbacks=[print]))
    c = clone(m)
    assert c.get_params() == m.get_params() and c is not m
    assert is_regressor(m) and is_classifier(RNNClassifier())
    grid = GridSearchCV(RNNRegressor(**FAST), {"hidden": [3, 5]}, cv=2).fit(X, z)
    assert grid.best_params_["hidden"] in (3, 5) and np.isfinite(grid.best_score_)
    grid = GridSearchCV(RNNClassifier(**FAST), {"lr": [0.01, 0.1]}, cv=2).fit(X, _labels(X))
    assert set(grid.predict(X)) <= {"down", "up"}
    pipe = make_pipeline(FunctionTransformer(lambda a: a[:, ::-1].copy()), RNNRegressor(**FAST)).fit(X, z)
    assert pipe.predict(X).shape == (120,)


def test_pickle_round_trip(toy):
    X, z = toy
    m = RNNRegressor(**FAST).fit(X, z)
    p = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(p.predict(X), m.predict(X))
    assert p.theta_ is p.net_.theta


# -- bad input ----------------------------------------------------------------------

BAD = [
    ("hidden", 0),
    ("hidden", 2.5),
    ("num_layers", 0),
    ("solver", "rmsprop"),
    ("solver", "Nelder-Mead"),
    ("lr", 0),
    ("lr", -1),
    ("lr", float("nan")),
    ("batch_size", 0),
    ("epochs", -1),
    ("momentum", 1.0),
    ("momentum", -0.1),
    ("clip", 0),
    ("weight_decay", -1),
    ("validation_fraction", 0),
    ("validation_fraction", 1),
    ("n_iter_no_change", 0),
    ("tol", -1),
    ("dtype", "int32"),
    ("dtype", "float16"),
    ("callbacks", 3),
    ("solver_options", [1]),
    ("solver_options", {"maxiter": 2}),
    ("subsample", 5),
    ("random_state", -1),
    ("random_state", "seed"),
    ("bidirectional", "yes"),
    ("standardize", None),
    ("beta1", 1.0),
    ("epsilon", 0),
    ("cell", "tcn"),
    ("verbose", "loud"),
]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_bad_hyper_parameters(name, value):
    X, z = make_toy(10, random_state=0)
    with pytest.raises(ValueError):
        RNNRegressor(**{"hidden": 3, "epochs": 1, name: value}).fit(X, z)


def test_nesterov_needs_momentum():
    with pytest.raises(ValueError, match="nesterov"):
        RNNRegressor(nesterov=True).fit(np.zeros((4, 2)), np.zeros(4))


def test_subsample_fraction_with_scipy(toy):
    X, z = toy
    m = RNNRegressor(**dict(FAST, solver="L-BFGS-B", subsample=0.5, epochs=2)).fit(X, z)
    assert m.n_iter_ <= 2
    with pytest.raises(ValueError, match="subsample"):
        RNNRegressor(**dict(FAST, solver="L-BFGS-B", subsample=1.5)).fit(X, z)


@pytest.mark.parametrize(
    "X,y,match",
    [
        (np.zeros((5, 3)), np.zeros(4), "samples"),
        (np.zeros((5, 3)), np.array(["a"] * 5, dtype=object), "numeric"),
        (np.full((5, 3), np.nan), np.zeros(5), r"X\[0\] is all NaN"),
        (np.arange(15.0).reshape(5, 3), np.full(5, np.inf), "NaN or inf"),
        (np.zeros(5), np.zeros(5), "shape"),
        ([], np.zeros(0), "empty"),
        ([np.zeros(2), np.zeros(3)], [np.zeros(2), np.zeros(2)], "steps"),
        (np.zeros((5, 3)), np.zeros((5, 2, 2, 2)), "shape"),
    ],
)
def test_bad_data(X, y, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError), match=match):
            RNNRegressor(hidden=3, epochs=1).fit(X, y)


def test_bad_lengths_and_labels():
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="lengths"):
        RNNRegressor(hidden=3, epochs=1).fit(X, np.zeros(4), lengths=[1, 2, 3, 4])
    with pytest.raises(ValueError, match="NaN"):
        RNNClassifier(hidden=3, epochs=1).fit(X, np.array([0.0, 1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="one type"):
        RNNClassifier(hidden=3, epochs=1).fit(X, np.array([0, "a", 1, 2], dtype=object))


def test_random_state_takes_a_randomstate(toy):
    X, z = toy
    seed = int(np.random.RandomState(7).randint(np.iinfo(np.int64).max, dtype=np.int64))
    a = RNNRegressor(**dict(FAST, random_state=np.random.RandomState(7))).fit(X, z)
    b = RNNRegressor(**dict(FAST, random_state=np.random.default_rng(seed))).fit(X, z)
    np.testing.assert_array_equal(a.theta_, b.theta_)  # one seed drawn from the RandomState
    rs = np.random.RandomState(7)
    c = RNNRegressor(**dict(FAST, random_state=rs)).fit(X, z)
    d = RNNRegressor(**dict(FAST, random_state=rs)).fit(X, z)
    assert not np.array_equal(c.theta_, d.theta_)  # reused: another draw, as in scikit-learn
    with pytest.raises(ValueError, match="RandomState"):
        RNNRegressor(**dict(FAST, random_state="seven")).fit(X, z)
