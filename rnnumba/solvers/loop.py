"""The epoch loop around the solvers: shuffling, stopping rules, progress, Ctrl-C and divergence.

Python runs once per epoch, never per minibatch.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

from .first_order import FIRST_ORDER
from .progress import Progress
from .scipy_bridge import ScipyObjective, minimize


@dataclass
class Problem:
    """A network and its validated training data (:meth:`rnnumba.RNN.prepare`)."""

    net: object
    batch: object


@dataclass
class History:
    """What a training run leaves behind."""

    loss_curve: list = field(default_factory=list)
    validation_scores: list = field(default_factory=list)
    best_loss: float = np.inf
    best_validation_score: float = -np.inf
    n_iter: int = 0
    stop_reason: str = "max_iter"  # or "converged", "callback", "interrupted", "diverged"
    optimize_result: object = None
    optimizer_state: object = None  # first-order solvers: what ``resume`` takes to go on


class _Rules:
    """Per-epoch bookkeeping shared by both solver families.

    The loss curve, scikit-learn's ``tol``/``n_iter_no_change`` rule, early
    stopping on a validation score (keeping the best parameters), and user
    callbacks.
    """

    def __init__(self, net, history, tol, n_iter_no_change, validation_score, callbacks, progress):
        self.net, self.h, self.tol, self.patience = net, history, tol, n_iter_no_change
        self.validation_score, self.callbacks, self.progress = validation_score, callbacks, progress
        self.bad_epochs = 0
        self.best_theta = None
        self.loss_rule = True  # scipy methods have their own tolerances

    def __call__(self, loss):
        """Record one epoch; True to stop."""
        h = self.h
        h.loss_curve.append(float(loss))
        h.n_iter += 1
        if self.validation_score is not None:
            score = float(self.validation_score())
            h.validation_scores.append(score)
            improved = score > h.best_validation_score + self.tol
            if score > h.best_validation_score:
                h.best_validation_score = score
                self.best_theta = self.net.theta.copy()
            self.progress.update(loss, score)
        else:
            improved = loss < h.best_loss - self.tol
            h.best_loss = min(h.best_loss, loss)
            self.progress.update(loss)
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        stop = False
        for cb in self.callbacks:
            stop = bool(cb(h.n_iter - 1, float(loss))) or stop
        if stop:
            h.stop_reason = "callback"
            return True
        if self.bad_epochs >= self.patience and (self.loss_rule or self.validation_score is not None):
            h.stop_reason = "converged"
            return True
        return False

    def finish(self):
        if self.best_theta is not None:  # early stopping keeps the best epoch
            self.net.theta[:] = self.best_theta
        self.progress.close()


def train(
    problem,
    solver,
    epochs,
    rng,
    *,
    options,
    tol,
    n_iter_no_change,
    validation_score=None,
    callbacks=(),
    verbose=False,
    shuffle=True,
    solver_options=None,
    resume=None,
    bptt_steps=None,
):
    """Train ``problem.net`` in place.

    Parameters
    ----------
    problem : Problem
    solver : str
        "sgd", "adam" or a scipy method (see :data:`GRADIENT_METHODS`).
    epochs : int
        Passes over the data, or scipy's ``maxiter``.
    rng : numpy.random.Generator
        Shuffles the minibatch order every epoch.
    options : dict
        :class:`FirstOrder` keywords (lr, batch_size, momentum, ...); scipy
        methods read only ``weight_decay``.
    tol, n_iter_no_change : float, int
        Stop after ``n_iter_no_change`` epochs that do not improve the loss (or
        the validation score) by ``tol``.
    validation_score : callable() -> float, optional
        Early stopping: scores the current parameters on held-out data;
        the best epoch's parameters are kept.
    callbacks : sequence of callable(epoch, loss) -> bool
        True ends training.
    verbose : bool
        Show a progress bar.
    shuffle : bool
        Draw a new minibatch order every epoch.
    solver_options : dict, optional
        scipy's ``options``.
    resume : object, optional
        A previous run's ``History.optimizer_state``: first-order solvers go on
        with its momentum or moments, step count and dropout seed (warm starts).
    bptt_steps : int, optional
        First-order solvers: truncated BPTT over windows of this many steps
        (:class:`rnnumba.solvers.truncated.Truncated`).

    Returns
    -------
    History
    """
    net, h = problem.net, History()
    progress = Progress(epochs, verbose)
    rules = _Rules(net, h, tol, n_iter_no_change, validation_score, callbacks, progress)
    try:
        if epochs == 0:  # initialise (and standardise) only
            pass
        elif bptt_steps is not None and solver not in FIRST_ORDER:
            raise ValueError(f"bptt_steps (truncated BPTT) needs solver 'sgd' or 'adam', got {solver!r}")
        elif solver in FIRST_ORDER:
            h.optimizer_state = _first_order(
                problem, solver, epochs, rng, options, shuffle, rules, resume, bptt_steps
            )
        else:
            _scipy(problem, solver, epochs, options, solver_options, rules)
    finally:
        rules.finish()
    if h.stop_reason == "interrupted":
        warnings.warn(
            f"training interrupted after {h.n_iter} epoch(s); the model keeps the parameters trained so far",
            UserWarning,
            stacklevel=3,
        )
    return h


def _diverged(h, where, stacklevel=5):
    h.stop_reason = "diverged"
    warnings.warn(
        f"training diverged ({where}: non-finite loss or parameters); stopped and restored the last "
        "parameters with a finite loss. Try a smaller lr, clip=1.0, or standardised inputs.",
        RuntimeWarning,
        stacklevel=stacklevel,  # the caller of the estimator's fit
    )


def _first_order(problem, solver, epochs, rng, options, shuffle, rules, resume, bptt_steps):
    """Epochs of the network's backend trainer (:mod:`rnnumba.backends`); returns its state."""
    net = problem.net
    if resume is not None and resume.get("method") != solver:
        resume = None  # another solver: its state means nothing here
    if resume is not None:
        seed = resume["seed"]
    else:  # no draw without dropout: the same shuffles with and without this line
        seed = int(rng.integers(2**63)) if net.dropout else None
    trainer = net.backend.trainer(net, problem.batch, solver, options, seed, bptt_steps=bptt_steps)
    if resume is not None:
        trainer.load_state(resume)
    sync_each = rules.validation_score is not None or bool(rules.callbacks)

    def one():
        out = trainer.epoch(rng, shuffle)
        if sync_each:  # validation scores and callbacks see the current parameters
            trainer.sync()
        return out

    try:
        _epochs(one, epochs, rules, 6)
    finally:  # before rules.finish(), which may put back the best epoch's parameters
        trainer.finish()
    state = trainer.state()
    if state is not None:
        state.update(method=solver, seed=seed)
    return state


def _epochs(run, epochs, rules, stacklevel):
    h = rules.h
    for epoch in range(epochs):
        try:
            mean, finite = run()
            if not finite:
                _diverged(h, f"epoch {epoch + 1}", stacklevel)
                return
            if rules(mean):
                return
        except KeyboardInterrupt:  # between compiled epochs: parameters are consistent
            h.stop_reason = "interrupted"
            return


def _scipy(problem, method, maxiter, options, solver_options, rules):
    p, h = problem, rules.h
    rules.loss_rule = False
    f = ScipyObjective(p.net, p.batch, options.get("weight_decay", 0.0))
    x0 = p.net.theta.astype(np.float64)
    state = {"interrupted": False}

    def each(xk, fk):
        p.net.theta[:] = xk  # callbacks and validation scores see the current iterate
        try:
            return rules(fk)
        except KeyboardInterrupt:
            state["interrupted"] = True
            return True

    result, interrupted = minimize(f, x0, method, maxiter, solver_options, each)
    h.optimize_result = result
    x = np.asarray(result.x, dtype=np.float64)
    if interrupted or state["interrupted"]:
        h.stop_reason = "interrupted"
        result.message = "interrupted"
    if np.all(np.isfinite(x)) and np.isfinite(f.value_at(x)):
        p.net.theta[:] = x
    else:
        if f.last_x is not None:
            p.net.theta[:] = f.last_x
        _diverged(h, method)
        return
    if h.stop_reason == "max_iter" and result.success:
        h.stop_reason = "converged"
