"""The backend contract: one data path, one backend per network, one owner per table."""

import numpy as np
import pytest

import rnnumba
from rnnumba import data, losses
from rnnumba.backends.cpu import CPU
from rnnumba.backends.cuda import CUDA
from rnnumba.datasets import make_toy
from rnnumba.distributed import DaskBackend
from rnnumba.layout import GATES
from rnnumba.solvers import kernels

CONTRACT = (
    "loss_and_grad",
    "dense_loss_and_grad",
    "predict",
    "resident",
    "trainer",
    "name",
)


@pytest.mark.parametrize("backend", [CPU, CUDA, DaskBackend])
def test_every_backend_has_the_contract(backend):
    missing = [name for name in CONTRACT if not hasattr(backend, name)]
    assert not missing, f"{backend.__name__} lacks {missing}"


def test_the_gpu_reads_the_cpu_code_tables():
    from rnnumba.gpu import cells, engine, head, solvers

    assert head.MSE == losses.MSE
    assert {k: v for k, v in engine.LOSS_CODES.items() if isinstance(k, str)} == losses.LOSSES
    assert (solvers.SGD, solvers.ADAM) == (kernels.SGD, kernels.ADAM)
    assert all(cells.GATES[cell] == n for cell, n in GATES.items())


def test_a_network_holds_one_backend_chosen_once():
    net = rnnumba.RNN(1, 4, random_state=0)
    assert isinstance(net.backend, CPU) and net.device == "cpu"
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        net.to("tpu")
    other = DaskBackend(net.layout, net.dtype)
    assert net.to(other).backend is other and net.device == "dask"
    assert net.copy().backend is other  # a copy runs where its original does
    assert net.to("cpu").device == "cpu"


def test_inputs_are_validated_once_per_fit_and_predict(monkeypatch):
    calls = []
    real = data.check_sequences
    monkeypatch.setattr(data, "check_sequences", lambda *a, **k: calls.append(1) or real(*a, **k))
    X, z = make_toy(60, random_state=0)
    lengths = np.full(60, 3)
    for solver in ("sgd", "L-BFGS-B"):
        calls.clear()
        est = rnnumba.RNNRegressor(4, epochs=2, solver=solver, random_state=0).fit(X, z, lengths=lengths)
        assert len(calls) == 1, solver
    calls.clear()
    est.predict(X, lengths=lengths)
    assert len(calls) == 1
    calls.clear()
    est = rnnumba.RNNRegressor(4, epochs=2, early_stopping=True, random_state=0).fit(list(X), z)
    assert len(calls) == 1 and est.validation_scores_


def test_prepared_data_pass_through_unchanged():
    X, z = make_toy(40, random_state=1)
    net = rnnumba.RNN(1, 5, random_state=0)
    seqs, batch = net.prepare(X), net.prepare(X, z)
    assert isinstance(seqs, data.Sequences) and isinstance(batch, data.Batch)
    np.testing.assert_array_equal(net.predict(seqs), net.predict(X))
    value, grad = net.loss_and_grad(X, z)
    grad = grad.copy()
    value_b, grad_b = net.loss_and_grad(batch)
    assert value_b == value and np.array_equal(grad_b, grad)
    with pytest.raises(ValueError, match="carries its own targets"):
        net.loss_and_grad(batch, z)
    with pytest.raises(ValueError, match="y is required"):
        net.loss_and_grad(X)
