"""Checkpointed BPTT (#20): the gradient of full BPTT, bit for bit, in memory as sqrt(T).

Sequences here are 531 steps long: three segments of 256, 256 and 19 steps
(:func:`rnnumba.segments.steps_per_segment`), so every way a segment can end
(inside a sample, at its last step, past it) is met by the random lengths, in
both directions (the reverse one runs the segments last first). The odd
segment turns over prediction's ring of two state rows
(``segments.walkers``): in the middle of the reverse walk, at the end of the
forward one. One direction
walks its layers in lockstep (:mod:`rnnumba.lockstep`), two in bidirectional
lockstep (:mod:`rnnumba.bilockstep`).
"""

import sys
from unittest import mock

import numpy as np
import pytest
from reference import loss_and_grad as reference_loss_and_grad
from rss import peak_growth

import rnnumba
from rnnumba import engine, memory
from rnnumba.backends import cpu
from rnnumba.backends.cpu import checkpointed
from rnnumba.layout import CHECKPOINTS, FULL, LOCKSTEP
from rnnumba.segments import SEGMENT_MIN, last_step, n_segments, read_step, steps_per_segment
from rnnumba.solvers.first_order import FirstOrder

T = 531


def _case(cell, layers=1, bidirectional=False, many=False, N=6, dtype="float64", xent=False, seed=0, **kw):
    net = rnnumba.RNN(
        2,
        3,
        3 if xent else 2,
        cell=cell,
        num_layers=layers,
        bidirectional=bidirectional,
        dtype=dtype,
        random_state=seed,
        **kw,
    )
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, T, 2))
    lengths = rng.integers(1, T + 1, size=N)
    lengths[0] = T
    lengths[1] = 2 * SEGMENT_MIN  # ends where a segment ends
    if xent:
        y = rng.integers(0, 3, size=(N, T) if many else N)
    else:
        y = rng.normal(size=(N, T, 2) if many else (N, 2))
    return net, X, lengths, y


def _h0(net, N, seed=1):
    L = net.layout
    shape = (L.num_layers * L.directions, N, L.hidden)
    rng = np.random.default_rng(seed)
    if L.cell == "lstm":
        return rng.normal(size=shape), rng.normal(size=shape)
    return rng.normal(size=shape)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _all(net, X, y, lengths, **kw):
    """Loss, gradient and dL/dh0 with full storage, CHECKPOINTS and LOCKSTEP (rnnumba.layout).

    ``memory="checkpoint"`` is LOCKSTEP; CHECKPOINTS is what "auto" takes for
    a bidirectional network whose checkpoints fit (its layer outputs kept).
    """
    out = []
    for how in ("full", CHECKPOINTS, "checkpoint"):
        with mock.patch.object(cpu, "checkpointed", lambda *a: CHECKPOINTS):
            memory_ = "auto" if how == CHECKPOINTS else how
            value, grad = net.loss_and_grad(X, y, lengths=lengths, memory=memory_, **kw)
        out.append((value, grad.copy(), np.asarray(net.grad_h0) if "h0" in kw else None))
    return out


CELLS = [
    ("elman", {}),
    ("lstm", {}),
    ("lstm", {"peephole": True}),
    ("gru", {}),
    ("gru", {"reset_after": False}),
]


@pytest.mark.parametrize(("cell", "kw"), CELLS, ids=["elman", "lstm", "peephole", "gru", "cho"])
@pytest.mark.parametrize(
    ("layers", "bidirectional", "many", "states"),
    [
        (1, False, False, False),
        (1, True, True, True),
        (2, True, False, True),
        (2, True, True, False),
        (3, True, False, False),
        (2, False, True, False),
        (3, False, True, True),
        (2, False, False, True),
    ],
    ids=[
        "one",
        "bi-many-h0",
        "bi-2-h0",
        "bi-2-many",
        "bi-3",
        "stacked-many",
        "lockstep-3-many-h0",
        "lockstep-2-h0",
    ],
)
def test_checkpoints_give_the_full_gradient_bit_for_bit(cell, kw, layers, bidirectional, many, states):
    net, X, lengths, y = _case(cell, layers, bidirectional, many, **kw)
    extra = {"h0": _h0(net, X.shape[0])} if states else {}
    (v0, g0, d0), *kept = _all(net, X, y, lengths, **extra)
    for v1, g1, d1 in kept:
        assert v0 == v1
        np.testing.assert_array_equal(_bits(g1), _bits(g0))
        if states:
            np.testing.assert_array_equal(_bits(d1), _bits(d0))


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "lockstep"])
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_checkpoints_bit_for_bit_in_float32_across_chunks_with_dropout_and_xent(cell, bidirectional):
    net, X, lengths, y = _case(cell, 2, bidirectional, True, N=40, dtype="float32", xent=True, dropout=0.3)
    assert net.backend.plan(40, T).chunks > 1  # the parallel kernel, blocks summed in order
    (v0, g0, _), *kept = _all(net, X, y, lengths, dropout_seed=7)
    for v1, g1, _ in kept:
        assert v0 == v1
        np.testing.assert_array_equal(_bits(g1), _bits(g0))


@pytest.mark.parametrize(("cell", "gru"), [("elman", "pytorch"), ("lstm", "pytorch"), ("gru", "cho")])
@pytest.mark.parametrize(
    ("bidirectional", "many"), [(True, False), (True, True), (False, True)], ids=["bi", "bi-many", "lockstep"]
)
def test_checkpointed_gradient_matches_the_numpy_reference(cell, gru, bidirectional, many):
    kw = {"reset_after": False} if gru == "cho" else {}
    net, X, lengths, y = _case(cell, 2, bidirectional, many, N=4, **kw)
    h0 = _h0(net, 4)
    value, grad = net.loss_and_grad(X, y, lengths=lengths, h0=h0, memory="checkpoint")
    ref_value, ref_grad, ref_dh0 = reference_loss_and_grad(
        net.layout, net.theta, X, lengths, y, "mse", many, gru, h0=h0
    )
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(net.grad_h0), np.asarray(ref_dh0), rtol=1e-9, atol=1e-12)


def test_segments_are_a_rule_on_t_alone():
    assert [steps_per_segment(t) for t in (1, 3, 256)] == [1, 3, 256]
    assert steps_per_segment(257) == 256 and n_segments(257) == 2
    assert steps_per_segment(65_536) == 256 and steps_per_segment(66_000) == 257
    assert steps_per_segment(100_000) == 317 and n_segments(100_000) == 316
    assert n_segments(T) == 3


def test_auto_checkpoints_when_full_storage_is_big_and_checkpoints_are_smaller(monkeypatch):
    inf = float("inf")
    assert checkpointed("checkpoint", (1, 2, 3), inf) == LOCKSTEP
    assert checkpointed("full", (2**40, 1, 1), inf) == FULL
    big = memory.BLOCK_BYTES + 1
    assert checkpointed("auto", (big, 2, 1), 2) == CHECKPOINTS  # the faster checkpoints fit the room
    assert checkpointed("auto", (big, 2, 1), 1) == LOCKSTEP  # they do not: lockstep
    assert checkpointed("auto", (big, big, 1), inf) == LOCKSTEP  # they save nothing: lockstep
    assert checkpointed("auto", (big, big + 1, big + 1), inf) == FULL
    assert checkpointed("auto", (memory.BLOCK_BYTES, 1, 1), inf) == FULL
    with pytest.raises(ValueError, match="memory must be one of"):
        checkpointed("sometimes", (1, 1, 1), inf)
    net, X, lengths, y = _case("lstm", 2, True, True)
    with pytest.raises(ValueError, match="memory must be one of"):
        net.loss_and_grad(X, y, lengths=lengths, memory="sometimes")
    full = net.loss_and_grad(X, y, lengths=lengths, memory="full")[1].copy()
    one = memory.training_bytes(net.layout, 6, T, 8, True)
    monkeypatch.setattr(memory, "BLOCK_BYTES", one - 1)  # full storage "too big": auto checkpoints
    assert memory.training_bytes(net.layout, 6, T, 8, True, checkpoint=True) < one - 1
    net.to("cpu")
    auto = net.loss_and_grad(X, y, lengths=lengths)[1]
    np.testing.assert_array_equal(_bits(auto), _bits(full))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["one", "bi-2"])
def test_checkpointed_minibatch_epochs_take_the_same_steps(bidirectional):
    net, X, lengths, y = _case("gru", 2 if bidirectional else 1, bidirectional, True, N=20)
    batch = net.prepare(X, y, lengths=lengths)
    start, thetas = net.theta.copy(), []
    for ck in (FULL, CHECKPOINTS, LOCKSTEP):
        net.set_theta(start)
        opt = FirstOrder(net, "adam", lr=1e-2, batch_size=8, checkpoint=ck)
        value, finite = opt.epoch(batch, np.array([2, 0, 1]))
        assert finite
        thetas.append(net.theta.copy())
    for theta in thetas[1:]:
        np.testing.assert_array_equal(_bits(theta), _bits(thetas[0]))


def test_the_checkpoint_estimate_is_far_below_full_storage_for_long_sequences():
    net = rnnumba.RNN(1, 128, 1)
    full = memory.training_bytes(net.layout, 64, 100_000, 4, False)
    ck = memory.training_bytes(net.layout, 64, 100_000, 4, False, checkpoint=True)
    assert full > 3 * 2**30 and ck < 0.1 * 2**30  # ~3.5 GB of states against ~45 MB
    # a bidirectional stack with an output per step: nothing of it grows as T with checkpoints
    bi = rnnumba.RNN(1, 128, 1, cell="lstm", num_layers=2, bidirectional=True).layout
    full = memory.training_bytes(bi, 64, 20_000, 4, True)
    walks = memory.training_bytes(bi, 64, 20_000, 4, True, checkpoint=CHECKPOINTS)  # outputs kept
    ck = memory.training_bytes(bi, 64, 20_000, 4, True, checkpoint=LOCKSTEP)
    assert full > 20 * 2**30 and walks > 5 * 2**30 and ck < 2**30  # ~26 GB, ~6.5 GB, ~0.75 GB
    longer = memory.training_bytes(bi, 64, 80_000, 4, True, checkpoint=LOCKSTEP)
    assert longer < 2 * ck  # 4x the steps: at most sqrt(4) = 2x the memory


def test_both_directions_cut_original_time_at_the_same_places():
    """Each segment of the reverse direction holds the original steps of the
    forward one's, read from its last valid step down: every valid step once,
    frozen rows after them; one segment is the plain reversal."""
    for T_, length in [(530, 530), (530, 300), (530, 512), (530, 5), (200, 77)]:
        k = steps_per_segment(T_)
        forward = [read_step(p, length, 0, T_) for p in range(T_)]
        reverse = [read_step(p, length, 1, T_) for p in range(T_)]
        assert forward == [p if p < length else -1 for p in range(T_)]
        assert sorted(u for u in reverse if u >= 0) == list(range(length))
        p = 0
        for s in range(n_segments(T_) - 1, -1, -1):  # the reverse direction's order
            a, steps = s * k, min(k, T_ - s * k)
            rows = reverse[p : p + steps]
            valid = [u for u in rows if u >= 0]
            assert valid == list(range(min(a + steps, length) - 1, a - 1, -1))
            assert rows == valid + [-1] * (steps - len(valid))  # valid rows first, then frozen
            p += steps
        assert last_step(length, 1, T_) == reverse.index(0) and last_step(length, 0, T_) == length - 1
        if T_ <= SEGMENT_MIN:
            assert reverse[:length] == list(range(length - 1, -1, -1))


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
@pytest.mark.parametrize("many", [False, True])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "lockstep"])
def test_predictions_from_checkpoints_are_those_of_full_storage(cell, many, bidirectional):
    net, X, lengths, _ = _case(cell, 2, bidirectional, many, N=20)
    h0 = _h0(net, 20)
    h0 = np.concatenate(h0, axis=-1) if cell == "lstm" else h0  # packed, as the kernels take them
    outs = []
    for ck in (FULL, CHECKPOINTS, LOCKSTEP):
        out = np.full((20, T if many else 1, 2), np.nan)
        hn = np.empty_like(h0)
        engine.kernels(net.layout.kernel_family, bool(ck)).chunk_predict(
            net.theta, net.backend.specs[ck][many], net.backend.offsets, X, lengths, h0, 0, 20, out, hn
        )
        outs.append((out, hn))
    (o0, n0), *kept = outs
    for o1, n1 in kept:
        np.testing.assert_array_equal(o1, o0)
        np.testing.assert_array_equal(_bits(n1), _bits(n0))
    np.testing.assert_array_equal(
        net.predict(X, lengths=lengths, many_to_many=many, h0=_h0(net, 20)), o0[:, :, :] if many else o0[:, 0]
    )


def test_a_big_prediction_runs_from_checkpoints(monkeypatch):
    """Past PREDICT_FULL_BYTES of full storage, ``predict`` takes the kernels of
    checkpointed BPTT, in lockstep past BLOCK_BYTES of checkpoints, with the
    outputs of full storage."""
    net, X, lengths, _ = _case("gru", 2, True, True, N=20)
    full = net.predict(X, lengths=lengths, many_to_many=True)
    used, kernels = [], engine.kernels
    monkeypatch.setattr(engine, "kernels", lambda family, ck=False: used.append(ck) or kernels(family, ck))
    monkeypatch.setattr(cpu, "PREDICT_FULL_BYTES", 0)
    np.testing.assert_array_equal(net.predict(X, lengths=lengths, many_to_many=True), full)
    monkeypatch.setattr(memory, "BLOCK_BYTES", 0)
    np.testing.assert_array_equal(net.predict(X, lengths=lengths, many_to_many=True), full)
    assert used == [CHECKPOINTS, LOCKSTEP]
    with pytest.raises(ValueError, match="storage must be one of"):
        net.backend.predict(net.theta, net.prepare(X, lengths=lengths), True, storage="ck")


# a child that loads the checkpointed kernels, prepares a long batch and waits: the
# training call, or the prediction, then runs under peak_growth's sampling
_CHILD = """
import sys, numpy as np, rnnumba
net = rnnumba.RNN(1, {H}, 1, cell="{cell}", num_layers={L}, bidirectional={bi}, random_state=0)
rng = np.random.default_rng(0)
X, y = rng.normal(size=({N}, 20_000, 1)), rng.normal(size=({N}, {y}))
net.loss_and_grad(net.prepare(X[:, :300], y[:, :300] if {many} else y), memory="checkpoint")
net.backend.predict(net.theta, net.prepare(X[:, :300]), {many}, storage="checkpoint")
b = net.prepare(X, y)
print("ready", flush=True)
sys.stdin.readline()
"""
# (cell, layers, hidden, N, an output per step, bidirectional): float64, T = 20,000
_ONE = ("elman", 1, 128, 64, False, False)  # 1.4 GB with full storage, ~0.1 GB of checkpoints
_STACK = ("lstm", 2, 64, 32, True, False)  # 6.2 GB with full storage, ~0.12 GB in lockstep
_BI = ("gru", 2, 32, 32, True, True)  # 5.4 GB with full storage, ~0.16 GB in bidirectional lockstep


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("what", ["train", "predict"])
@pytest.mark.parametrize("case", [_ONE, _STACK, _BI], ids=["one-layer", "lockstep-many", "bi-lockstep-many"])
def test_long_sequences_train_and_predict_within_the_checkpoint_estimate(case, what):
    """T = 20,000, float64: the peak RSS growth of a training call, or of a
    prediction, stays within the checkpointed estimate (sampled from outside),
    a small fraction of full storage; a stack with an output per step walks in
    lockstep, keeping one segment of what passes between its layers, in one
    direction or two."""
    cell, L, H, N, many, bi = case
    child = _CHILD.format(cell=cell, L=L, H=H, N=N, many=many, bi=bi, y="20_000, 1" if many else "1")
    # "auto" would keep a bidirectional stack's layer outputs (55 MB a row here): ask for lockstep
    train = "net.loss_and_grad(b, memory='checkpoint')" if bi else "net.loss_and_grad(b)"
    call = train if what == "train" else f"net.predict(X, many_to_many={many})"
    grown = peak_growth(child + call)
    layout = rnnumba.RNN(1, H, 1, cell=cell, num_layers=L, bidirectional=bi).layout
    full = memory.training_bytes(layout, N, 20_000, 8, many)
    ck = memory.training_bytes(layout, N, 20_000, 8, many, checkpoint=LOCKSTEP)
    assert full > 1.3 * 2**30 and ck < 0.1 * full
    outputs = N * 20_000 * 8 if many and what == "predict" else 0  # predict's (N, T, 1) result
    assert grown <= 1.2 * ck + outputs, (grown, ck)
