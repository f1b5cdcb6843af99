"""The ``rnnumba`` command: ``toy``, ``train``, ``predict`` and ``compile``.

``rnnumba toy`` reruns the seed experiment (``th model-1_layer.lua -hidden 26
-batch 20 -rate 0.02 -iter 30``) on the built-in toy data. ``train`` and
``predict`` read sequences from ``.npz`` or ``.csv`` files (see
``docs/training.md``). ``compile`` fills the kernel cache ahead of time
(:func:`rnnumba.precompile`). Bad flags and files end with one line on
stderr and exit status 2.
"""

import argparse
import csv
import os
import sys
import time
import warnings

import numpy as np


class _UsageError(Exception):
    """A bad flag or file: one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (:class:`_UsageError`), not the usage text."""

    def error(self, message):  # argparse would print the whole usage text
        raise _UsageError(f"{message} (see rnnumba {self.prog.split()[-1]} --help)")


def _positive(kind):
    """Make an argparse ``type=``: text parsed by ``kind`` (int or float) and required to be > 0."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _names(text):
    """Split a comma-separated list of names (checked by the command itself)."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _model_flags(p, iters=20):
    """Add the model and training flags shared by ``toy`` and ``train`` to parser ``p``."""
    g = p.add_argument_group("model and training")
    g.add_argument("--hidden", type=_positive(int), default=26, help="hidden units (default 26)")
    g.add_argument("--batch", type=_positive(int), default=20, help="minibatch size (default 20)")
    g.add_argument("--rate", type=_positive(float), default=0.02, help="learning rate (default 0.02)")
    g.add_argument(
        "--iter", type=_positive(int), default=iters, help=f"epochs, or scipy iterations (default {iters})"
    )
    g.add_argument("--seed", type=int, default=0, help="seeds initialisation and shuffling (default 0)")
    g.add_argument("--cell", choices=("elman", "lstm", "gru"), default="elman")
    g.add_argument("--layers", type=_positive(int), default=1)
    g.add_argument("--bidirectional", action="store_true")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout between layers (default 0)")
    g.add_argument("--solver", default="sgd", help="sgd, adam, or a scipy method such as L-BFGS-B")
    g.add_argument("--momentum", type=float, default=0.0)
    g.add_argument("--nesterov", action="store_true")
    g.add_argument("--clip", type=_positive(float), default=None, help="global gradient-norm clipping")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    g.add_argument("--quiet", action="store_true", help="print only errors and the final summary")


def _parser():
    """Build the ``rnnumba`` argument parser with its four subcommands."""
    p = _Parser(prog="rnnumba", description="Numba-accelerated recurrent networks.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    toy = sub.add_parser("toy", help="train the seed's model on the built-in toy data")
    _model_flags(toy)
    toy.add_argument("--samples", type=_positive(int), default=200_000, help="toy sequences, 70%% train")
    toy.add_argument("--data-seed", type=int, default=0, help="seed of the toy data (default 0)")
    toy.add_argument("--save", metavar="MODEL", help="write the trained model (.npz)")
    toy.add_argument("--plot", metavar="PNG", help="plot predicted z against f(z) (needs matplotlib)")
    tr = sub.add_parser("train", help="train on sequences from a .npz or .csv file")
    tr.add_argument("data", help=".npz (keys X, y, optional lengths) or .csv (target, then the sequence)")
    tr.add_argument("--out", required=True, metavar="MODEL", help="where to write the model (.npz)")
    tr.add_argument("--task", choices=("auto", "regress", "classify"), default="auto")
    tr.add_argument("--no-standardize", action="store_true", help="feed the inputs unscaled")
    tr.add_argument("--early-stopping", action="store_true")
    _model_flags(tr)
    co = sub.add_parser("compile", help="compile the kernels into the disk cache ahead of time")
    co.add_argument("--cells", type=_names, default="elman,lstm,gru", help="comma-separated cell families: "
                    "elman, lstm, gru, gru_cho (default elman,lstm,gru)")  # fmt: skip
    co.add_argument("--dtypes", type=_names, default="float64,float32", help="comma-separated (default both)")
    co.add_argument(
        "--jobs", type=_positive(int), default=1, help="processes compiling side by side (default 1)"
    )
    pr = sub.add_parser("predict", help="predict with a saved model")
    pr.add_argument("model")
    pr.add_argument(
        "data",
        help=".npz (key X, optional lengths) or .csv (as for train: each row's first value is its "
        "target, ignored, unless --no-target)",
    )
    pr.add_argument(
        "--no-target", action="store_true", help=".csv rows hold the sequence's values only, no target first"
    )
    pr.add_argument("--out", metavar="FILE", help=".npz (key y_pred) or .csv; default: stdout")
    return p


def _options(a):
    """Map parsed model flags ``a`` to the estimator's keywords (``cell=``, ``lr=``, ...)."""
    return dict(
        cell=a.cell,
        num_layers=a.layers,
        bidirectional=a.bidirectional,
        dropout=a.dropout,
        solver=a.solver,
        lr=a.rate,
        batch_size=a.batch,
        epochs=a.iter,
        momentum=a.momentum,
        nesterov=a.nesterov,
        clip=a.clip,
        weight_decay=a.weight_decay,
        dtype=a.dtype,
        random_state=a.seed,
    )


def _need(path, what):
    """Raise a :class:`_UsageError` naming ``what`` unless ``path`` is an existing file."""
    if not os.path.isfile(path):
        raise _UsageError(f"{what} {path!r} does not exist")


# -- data files ------------------------------------------------------------------


def read_data(path, need_y=True, target_column=True):
    """Read sequences from ``path``: ``(X, y or None, lengths or None)``.

    ``.npz``: keys ``X`` ((N, T) or (N, T, I)), ``y`` and optionally ``lengths``.
    ``.csv``: one sequence per row, the target first (unless not
    ``target_column``), then the values of the steps (one feature per step;
    rows may differ in length). Lines starting with ``#`` are comments.
    Targets that are not numbers are class labels.
    """
    _need(path, "data file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as d:
                if "X" not in d.files:
                    raise _UsageError(f"{path}: no array 'X' (found {sorted(d.files)})")
                X = d["X"]
                y = d["y"] if "y" in d.files else None
                lengths = d["lengths"] if "lengths" in d.files else None
        except _UsageError:
            raise
        except Exception as exc:  # zip, pickle and format errors all mean a bad file
            raise _UsageError(f"{path}: not a readable .npz file ({exc})") from None
        if need_y and y is None:
            raise _UsageError(f"{path}: no array 'y' (the targets)")
        return X, y, lengths
    if ext != ".csv":
        raise _UsageError(f"{path}: unknown data format {ext or '(no suffix)'!r}; use .npz or .csv")
    targets, X = [], []
    try:
        with open(path, newline="") as fh:
            for lineno, row in enumerate(csv.reader(fh), 1):
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                cells = [c.strip() for c in row]
                while cells and cells[-1] == "":
                    cells.pop()
                first = 1 if target_column else 0
                if len(cells) < first + 1:
                    raise _UsageError(f"{path}, line {lineno}: expected a target and at least one value")
                try:
                    X.append(np.array([float(c) for c in cells[first:]]))
                except ValueError:
                    raise _UsageError(f"{path}, line {lineno}: sequence values must be numbers") from None
                targets.append(cells[0] if target_column else None)
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"{path}: cannot read ({exc})") from None
    if not X:
        raise _UsageError(f"{path}: no sequences")
    y = None
    if need_y:
        try:
            y = np.array([float(t) for t in targets])
        except ValueError:
            y = np.array(targets)  # labels
    return X, y, None


def _write_predictions(pred, path):
    """Write predictions to a .npz or .csv file, or as CSV lines to stdout when ``path`` is None."""
    rows = pred if isinstance(pred, list) else list(np.asarray(pred))
    if path is None:
        for r in rows:
            print(",".join(_fmt(v) for v in np.ravel(r)))
        return
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        if isinstance(pred, list):
            lens = np.array([len(r) for r in pred])
            arr = np.full((len(pred), lens.max()) + np.shape(pred[0])[1:], np.nan)
            for k, r in enumerate(pred):
                arr[k, : len(r)] = r
            np.savez(path, y_pred=arr, lengths=lens)
        else:
            np.savez(path, y_pred=np.asarray(pred))
    elif ext == ".csv":
        with open(path, "w", newline="") as fh:
            for r in rows:
                fh.write(",".join(_fmt(v) for v in np.ravel(r)) + "\n")
    else:
        raise _UsageError(f"--out {path!r}: use a .npz or .csv file name")


def _fmt(v):
    """Format a CSV cell: ``repr`` of a float (round-trips exactly), ``str`` of anything else."""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


# -- commands --------------------------------------------------------------------


def _toy(a):
    """``rnnumba toy``: train on the built-in toy data, reporting train/test MSE per epoch."""
    from .datasets import eval_grid, make_toy
    from .estimators import RNNRegressor

    if a.plot:
        try:
            import matplotlib
        except ImportError:
            raise _UsageError("--plot needs matplotlib (pip install matplotlib)") from None
        matplotlib.use("Agg")
    n_train = max(1, a.samples * 7 // 10)
    if n_train >= a.samples:
        raise _UsageError("--samples must be at least 2 (70% train, 30% test)")
    X, z = make_toy(a.samples, random_state=a.data_seed)
    Xtr, ztr, Xte, zte = X[:n_train], z[:n_train], X[n_train:], z[n_train:]
    say = (lambda *s: None) if a.quiet else (lambda *s: print(*s, flush=True))
    model = RNNRegressor(a.hidden, **dict(_options(a), epochs=0)).fit(Xtr, ztr)
    say(
        f"toy data: {len(ztr):,} train / {len(zte):,} test sequences of length {X.shape[1]}; inputs "
        f"standardised by mean {model.scaler_.mean_:.4f}, std {model.scaler_.std_:.4f}"
    )
    say(
        f"model: {a.cell} RNN, hidden {a.hidden}, {model.n_params_} parameters; solver {a.solver}, "
        f"batch {a.batch}, rate {a.rate}, {a.iter} epochs, seed {a.seed}"
    )
    mse = lambda m: float(np.mean((m.predict(Xte) - zte) ** 2))  # noqa: E731
    say(f"{'epoch':>5}  {'train MSE':>10}  {'test MSE':>10}  {'seconds':>8}")
    say(f"{0:>5}  {'':>10}  {mse(model):>10.4f}")
    t0 = [time.perf_counter()]

    def report(m, epoch, loss):
        say(f"{epoch + 1:>5}  {loss:>10.4f}  {mse(m):>10.4f}  {time.perf_counter() - t0[0]:>8.2f}")
        t0[0] = time.perf_counter()

    model.set_params(epochs=a.iter, callbacks=report).fit(Xtr, ztr)
    model.set_params(callbacks=None)
    train_mse = float(np.mean((model.predict(Xtr) - ztr) ** 2))
    print(
        f"final: train MSE {train_mse:.4f}, test MSE {mse(model):.4f} after {model.n_iter_} epoch(s) "
        f"({model.stop_reason_})"
    )
    if a.save:
        model.save(a.save)
        say(f"saved the model to {a.save}")
    if a.plot:
        _plot(model, eval_grid(), a.plot)
        say(f"saved the plot to {a.plot}")
    return 0


def _plot(model, grid, path):
    """Save a PNG of the model's predictions on the noise-free grid against the true inverse."""
    import matplotlib.pyplot as plt

    Xg, zg = grid
    fig, ax = plt.subplots(figsize=(6, 4.5))
    ax.plot(Xg[:, 0], zg, color="0.6", lw=2, label="true inverse: z against f(z)")
    ax.scatter(Xg[:, 0], model.predict(Xg), s=9, color="C3", label="predicted z (noise-free grid)")
    ax.set_xlabel("f(z), the first input")
    ax.set_ylabel("z")
    ax.set_title(f"rnnumba {model.cell} RNN, hidden {model.hidden}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _train(a):
    """``rnnumba train``: fit an estimator on a data file and save it."""
    from .estimators import RNNClassifier, RNNRegressor

    X, y, lengths = read_data(a.data)
    task = a.task
    if task == "auto":
        task = "classify" if np.asarray(y).dtype.kind in "biuUS" else "regress"
    if task == "classify" and y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise _UsageError(
                f"{a.data}: --task classify needs class labels, but the targets are continuous "
                f"({np.unique(y).size} distinct values); use --task regress"
            )
        y = y.astype(np.int64)
    cls = RNNClassifier if task == "classify" else RNNRegressor
    say = (lambda *s: None) if a.quiet else (lambda *s: print(*s, flush=True))

    def report(m, epoch, loss):
        say(f"epoch {epoch + 1:>4}  loss {loss:.6g}")

    model = cls(
        a.hidden,
        **_options(a),
        standardize=not a.no_standardize,
        early_stopping=a.early_stopping,
        callbacks=report,
    )
    model.fit(X, y, lengths=lengths)
    model.set_params(callbacks=None)
    model.save(a.out)
    score = model.score(X, y, lengths=lengths)
    name = "accuracy" if task == "classify" else "R^2"
    print(
        f"trained {cls.__name__} ({model.n_params_} parameters) on {len(y)} sequences: training {name} "
        f"{score:.4f}, {model.n_iter_} epoch(s) ({model.stop_reason_}); saved to {a.out}"
    )
    return 0


def _predict(a):
    """``rnnumba predict``: load a saved estimator and write its predictions."""
    from .estimators import load

    _need(a.model, "model file")
    model = load(a.model)
    if not hasattr(model, "n_outputs_"):  # a bare RNN has no preprocessing or output shape
        raise _UsageError(f"{a.model}: holds a bare network, not a trained estimator")
    X, _, lengths = read_data(a.data, need_y=False, target_column=not a.no_target)
    _write_predictions(model.predict(X, lengths=lengths), a.out)
    return 0


def _compile(a):
    """``rnnumba compile``: fill the kernel cache (:func:`rnnumba.precompile`) and report."""
    from ._precompile import precompile

    for r in precompile(a.cells, a.dtypes, a.jobs):
        how = f"compiled {r['compiled']}, loaded {r['loaded']} from the cache" if r["compiled"] else "cached"
        print(f"{r['cell']:>8} {r['dtype']}: {r['seconds']:6.1f} s ({how})", flush=True)
    print(f"kernel cache: {r['cache']}")
    return 0


def _warn(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the command line: one ``rnnumba: warning:`` line on stderr."""
    print(f"rnnumba: warning: {message}", file=sys.stderr, flush=True)


def main(argv=None):
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        0 on success, 2 for a bad flag or file (one line on stderr).
    """
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"rnnumba: error: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    command = {"toy": _toy, "train": _train, "predict": _predict, "compile": _compile}[args.command]
    with warnings.catch_warnings():
        warnings.showwarning = _warn
        warnings.simplefilter("default")
        try:
            return command(args)
        except (_UsageError, ValueError, TypeError, OSError) as exc:
            print(f"rnnumba: error: {exc}", file=sys.stderr)
            return 2
