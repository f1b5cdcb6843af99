"""The ``rnnumba`` command: ``toy``, ``train``, ``predict`` and ``compile``.

``rnnumba toy`` reruns the seed experiment (``th model-1_layer.lua -hidden 26
-batch 20 -rate 0.02 -iter 30``) on the built-in toy data. ``train`` and
``predict`` read sequences from ``.npz``, ``.csv`` (headerless, or long format
with named columns) or ``.ts`` files through :mod:`rnnumba.formats` (see
``docs/training.md``). ``compile`` fills the kernel cache ahead of time
(:func:`rnnumba.precompile`). Every failure is one ``rnnumba: error:`` line
on stderr: exit status 2 for a bad flag, a missing file or an unknown format,
1 for a file whose content is wrong or data the model cannot take.
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np


class _UsageError(Exception):
    """A bad flag, a missing file or an unknown format: one line on stderr, exit status 2."""


class _DataError(Exception):
    """A file whose content is wrong for the command: one line on stderr, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (:class:`_UsageError`), not the usage text."""

    def error(self, message):  # argparse would print the whole usage text
        raise _UsageError(f"{message} (see {self.prog} --help)")


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


def _fraction(text):
    """Parse a float strictly between 0 and 1 (an argparse ``type=``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a float, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _model_flags(p, iters=20):
    """Add the model and training flags shared by ``toy`` and ``train`` to parser ``p``."""
    g = p.add_argument_group("model and training")
    g.add_argument("--hidden", type=_positive(int), default=26, help="hidden units (default 26)")
    g.add_argument(
        "--batch-size", "--batch", dest="batch_size", type=_positive(int), default=20,
        help="minibatch size (default 20)",
    )  # fmt: skip
    g.add_argument(
        "--lr", "--rate", dest="lr", type=_positive(float), default=0.02, help="learning rate (default 0.02)"
    )
    g.add_argument(
        "--epochs", "--iter", dest="epochs", type=_positive(int), default=iters,
        help=f"epochs, or scipy iterations (default {iters})",
    )  # fmt: skip
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


def _column_flags(p, target):
    """Add the flags naming the columns of a long-format CSV to parser ``p``."""
    g = p.add_argument_group("long-format .csv (a header row, one row per step)")
    g.add_argument("--id", metavar="COL", help="the column naming each row's sequence (selects this form)")
    g.add_argument("--time", metavar="COL", help="sort the steps of a sequence by this column")
    g.add_argument(
        "--features", type=_names, metavar="COL,...", help="input columns (default: all but id, time, target)"
    )
    if target:
        g.add_argument("--target", type=_names, metavar="COL,...", help="the target column(s)")
        g.add_argument(
            "--target-per", choices=("step", "sequence"), default=None,
            help="one target per row (default), or per sequence (constant within each id)",
        )  # fmt: skip


def _parser():
    """Build the ``rnnumba`` argument parser with its four subcommands."""
    from ._version import __version__

    p = _Parser(prog="rnnumba", description="Numba-accelerated recurrent networks.")
    p.add_argument("--version", action="version", version=f"rnnumba {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    toy = sub.add_parser("toy", help="train the seed's model on the built-in toy data")
    _model_flags(toy)
    toy.add_argument("--samples", type=_positive(int), default=200_000, help="toy sequences, 70%% train")
    toy.add_argument("--data-seed", type=int, default=0, help="seed of the toy data (default 0)")
    toy.add_argument("--save", metavar="MODEL", help="write the trained model (.npz)")
    toy.add_argument("--plot", metavar="PNG", help="plot predicted z against f(z) (needs matplotlib)")
    tr = sub.add_parser("train", help="train on sequences from a .npz, .csv or .ts file")
    tr.add_argument("data", help=f".npz (X, y, optional lengths), .csv or .ts ({_FORMS})")
    tr.add_argument("--out", required=True, metavar="MODEL", help="where to write the model (.npz)")
    tr.add_argument("--task", choices=("auto", "regress", "classify"), default="auto")
    tr.add_argument(
        "--standardize", choices=("feature", "global", "none"), default="feature",
        help="scale each input feature (default), all by one scalar (the seed's rule), or none",
    )  # fmt: skip
    tr.add_argument(
        "--no-standardize", dest="standardize", action="store_const", const="none", help="--standardize none"
    )
    tr.add_argument("--early-stopping", action="store_true", help="keep the best epoch on held-out data")
    tr.add_argument("--validation-fraction", type=_fraction, metavar="F", help="part held out (default 0.1)")
    tr.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    _model_flags(tr)
    _column_flags(tr, target=True)
    co = sub.add_parser("compile", help="compile the kernels into the disk cache ahead of time")
    co.add_argument("--cells", type=_names, default="elman,lstm,gru", help="comma-separated cell families: "
                    "elman, lstm, gru, gru_cho (default elman,lstm,gru)")  # fmt: skip
    co.add_argument("--dtypes", type=_names, default="float64,float32", help="comma-separated (default both)")
    co.add_argument(
        "--jobs", type=_positive(int), default=1, help="processes compiling side by side (default 1)"
    )
    co.add_argument(
        "--checkpoint", action="store_true", help="also the kernels of checkpointed BPTT (long sequences)"
    )
    pr = sub.add_parser("predict", help="predict with a saved model")
    pr.add_argument("model")
    pr.add_argument("data", help=f"as for train ({_FORMS}); targets in it are ignored")
    pr.add_argument(
        "--no-target", action="store_true", help="headerless .csv rows hold the values only, no target first"
    )
    pr.add_argument("--out", metavar="FILE", help=".npz (key y_pred) or .csv; default: stdout")
    _column_flags(pr, target=False)
    return p


_FORMS = "headerless .csv: the target, then the sequence; long .csv: name the columns with --id etc."


def _options(a):
    """Map parsed model flags ``a`` to the estimator's keywords (``cell=``, ``lr=``, ...)."""
    return dict(
        cell=a.cell,
        num_layers=a.layers,
        bidirectional=a.bidirectional,
        dropout=a.dropout,
        solver=a.solver,
        lr=a.lr,
        batch_size=a.batch_size,
        epochs=a.epochs,
        momentum=a.momentum,
        nesterov=a.nesterov,
        clip=a.clip,
        weight_decay=a.weight_decay,
        dtype=a.dtype,
        random_state=a.seed,
    )


def _check_flags(model):
    """Validate the estimator's hyper-parameters before any data is read: bad ones are flag errors."""
    from .solvers.options import check_options

    try:
        check_options(model)
    except ValueError as exc:
        raise _UsageError(exc) from None
    return model


def _need(path, what):
    """Raise a :class:`_UsageError` naming ``what`` unless ``path`` is an existing file."""
    if not os.path.isfile(path):
        raise _UsageError(f"{what} {path!r} does not exist")


def _read(a, need_y):
    """Read ``a.data`` with the column flags of ``a``: a :class:`rnnumba.formats.DataFile`."""
    from .formats import SUFFIXES, read_data

    _need(a.data, "data file")
    ext = os.path.splitext(a.data)[1].lower()
    if ext not in SUFFIXES:
        raise _UsageError(f"{a.data}: unknown data format {ext or '(no suffix)'!r}; use .npz, .csv or .ts")
    names = ("id", "time", "features", "target", "target_per")
    columns = {k: getattr(a, k) for k in names if getattr(a, k, None) is not None}
    flags = ", ".join("--" + k.replace("_", "-") for k in columns)
    if columns and ext != ".csv":
        raise _UsageError(f"the column flags ({flags}) are for a long-format .csv, not a {ext} file")
    if columns and a.id is None:
        raise _UsageError(f"the column flags ({flags}) need --id COL, the column naming the sequences")
    if a.id is not None and getattr(a, "no_target", False):
        raise _UsageError("--no-target applies to the headerless .csv; with --id, name the --features")
    if a.id is not None and need_y and getattr(a, "target", None) is None:
        raise _UsageError("training on a long-format .csv needs --target COL")
    try:
        return read_data(a.data, need_y, target_column=not getattr(a, "no_target", False), **columns)
    except ValueError as exc:
        raise _DataError(exc) from None


def _check_out(path, suffixes=None):
    """Raise a :class:`_UsageError` unless ``path`` can name an output file (with one of ``suffixes``)."""
    if path is None:
        return
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise _UsageError(f"--out {path!r}: use a {' or '.join(suffixes)} file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _UsageError(f"--out {path!r}: no folder {folder!r}")


def _write_predictions(pred, path, ids=None):
    """Write predictions to a .npz or .csv file, or as CSV lines to stdout when ``path`` is None.

    With ``ids`` (a long-format input), each CSV line starts with its sequence's id and the
    .npz file holds them as ``ids``.
    """
    rows = pred if isinstance(pred, list) else list(np.asarray(pred))
    lines = (",".join(([str(ids[k])] if ids is not None else []) + [_fmt(v) for v in np.ravel(r)])
             for k, r in enumerate(rows))  # fmt: skip
    if path is None:
        for line in lines:
            print(line)
        return
    if path.lower().endswith(".csv"):
        with open(path, "w", newline="") as fh:
            fh.writelines(line + "\n" for line in lines)
        return
    extra = {} if ids is None else {"ids": np.asarray(ids)}
    if isinstance(pred, list):
        lens = np.array([len(r) for r in pred])
        kind = np.result_type(*pred)
        arr = np.full((len(pred), lens.max()) + np.shape(pred[0])[1:], np.nan if kind.kind in "fc" else 0)
        arr = arr.astype(kind) if kind.kind not in "fc" else arr
        for k, r in enumerate(pred):
            arr[k, : len(r)] = r
        np.savez(path, y_pred=arr, lengths=lens, **extra)
    else:
        np.savez(path, y_pred=np.asarray(pred), **extra)


def _fmt(v):
    """Format a CSV cell: ``repr`` of a float (round-trips exactly), ``str`` of anything else."""
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


# -- commands --------------------------------------------------------------------


def _toy(a):
    """``rnnumba toy``: train on the built-in toy data, reporting train/test MSE per epoch."""
    from ._prefetch import training
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
    # the seed's rule: one scalar mean and std over all inputs
    model = _check_flags(RNNRegressor(a.hidden, **dict(_options(a), epochs=0), standardize="global"))
    model.fit(Xtr, ztr)
    say(
        f"toy data: {len(ztr):,} train / {len(zte):,} test sequences of length {X.shape[1]}; inputs "
        f"standardised by mean {model.scaler_.mean_:.4f}, std {model.scaler_.std_:.4f}"
    )
    say(
        f"model: {a.cell} RNN, hidden {a.hidden}, {model.n_params_} parameters; solver {a.solver}, "
        f"batch {a.batch_size}, rate {a.lr}, {a.epochs} epochs, seed {a.seed}"
    )
    # the test error below compiles prediction first: the training kernels start
    # compiling beside it, in a helper process (rnnumba._prefetch), on a cold cache
    training(model.net_.layout.kernel_family, model.net_.dtype)
    mse = lambda m: float(np.mean((m.predict(Xte) - zte) ** 2))  # noqa: E731
    say(f"{'epoch':>5}  {'train MSE':>10}  {'test MSE':>10}  {'seconds':>8}")
    say(f"{0:>5}  {'':>10}  {mse(model):>10.4f}")
    t0 = [time.perf_counter()]

    def report(m, epoch, loss):
        say(f"{epoch + 1:>5}  {loss:>10.4f}  {mse(m):>10.4f}  {time.perf_counter() - t0[0]:>8.2f}")
        t0[0] = time.perf_counter()

    model.set_params(epochs=a.epochs, callbacks=report).fit(Xtr, ztr)
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


def _kind(y):
    """Return the dtype kind of targets ``y``: an array, or a list of per-step arrays."""
    return np.asarray(y[0] if isinstance(y, list) else y).dtype.kind


def _train(a):
    """``rnnumba train``: fit an estimator on a data file and save it."""
    from .estimators import RNNClassifier, RNNRegressor

    if a.validation_fraction is not None and not a.early_stopping:
        raise _UsageError("--validation-fraction is what --early-stopping holds out: add --early-stopping")
    _check_out(a.out)
    task = a.task
    say = (lambda *s: None) if a.quiet else (lambda *s: print(*s, flush=True))

    def report(m, epoch, loss):
        say(f"epoch {epoch + 1:>4}  loss {loss:.6g}")

    extra = {} if a.validation_fraction is None else {"validation_fraction": a.validation_fraction}
    options = dict(
        _options(a),
        standardize={"feature": True, "global": "global", "none": False}[a.standardize],
        early_stopping=a.early_stopping,
        device=a.device,
    )
    _check_flags(RNNRegressor(a.hidden, **options, **extra))
    X, y, lengths, _ = _read(a, need_y=True)
    if task == "auto":
        task = "classify" if _kind(y) in "biuUSO" else "regress"
    if task == "classify" and _kind(y) == "f":
        values = np.concatenate([np.ravel(v) for v in y]) if isinstance(y, list) else np.ravel(y)
        if not np.all(values == np.round(values)):
            raise _DataError(
                f"{a.data}: --task classify needs class labels, but the targets are continuous "
                f"({np.unique(values).size} distinct values); use --task regress"
            )
        y = [v.astype(np.int64) for v in y] if isinstance(y, list) else y.astype(np.int64)
    cls = RNNClassifier if task == "classify" else RNNRegressor
    model = cls(a.hidden, **options, **extra, callbacks=report)
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
    _check_out(a.out, (".npz", ".csv"))
    try:
        model = load(a.model)
    except ValueError as exc:
        raise _DataError(exc) from None
    if not hasattr(model, "n_outputs_"):  # a bare RNN has no preprocessing or output shape
        raise _DataError(f"{a.model}: holds a bare network, not a trained estimator")
    X, _, lengths, ids = _read(a, need_y=False)
    if ids is not None and X[0].shape[1] != model.n_features_in_:
        raise _DataError(
            f"{a.data}: {X[0].shape[1]} feature column(s), but the model takes {model.n_features_in_}; "
            "name its inputs with --features"
        )
    _write_predictions(model.predict(X, lengths=lengths), a.out, ids)
    return 0


def _compile(a):
    """``rnnumba compile``: fill the kernel cache (:func:`rnnumba.precompile`) and report."""
    from ._precompile import CELLS, DTYPES, choices, precompile

    try:  # unknown names are flag errors
        choices(a.cells, CELLS, "cell")
        choices(a.dtypes, DTYPES, "dtype")
    except ValueError as exc:
        raise _UsageError(exc) from None
    for r in precompile(a.cells, a.dtypes, a.jobs, a.checkpoint):
        how = f"compiled {r['compiled']}, loaded {r['loaded']} from the cache" if r["compiled"] else "cached"
        what = f"{r['cell']:>8} {r['dtype']}" + {"full": "", "checkpoint": ", checkpointed"}.get(
            r["storage"], ", checkpointed, bidirectional lockstep"
        )
        print(f"{what}: {r['seconds']:6.1f} s ({how})", flush=True)
    print(f"kernel cache: {r['cache']}")
    return 0


def _warn(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` for the command line: one ``rnnumba: warning:`` line on stderr."""
    print(f"rnnumba: warning: {message}", file=sys.stderr, flush=True)


def _error(message, code):
    """Print ``message`` as one ``rnnumba: error:`` line on stderr; return ``code``."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"rnnumba: error: {text}", file=sys.stderr, flush=True)
    return code


def main(argv=None):
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        0 on success; 2 for a usage error (a bad flag, a missing file, an unknown
        format); 1 for a data error (a file whose content is wrong, data the model
        cannot take) or an unexpected failure; 130 when interrupted. Every failure
        is one ``rnnumba: error:`` line on stderr, never a traceback.
    """
    try:
        try:
            args = _parser().parse_args(argv)
        except _UsageError as exc:
            return _error(exc, 2)
        except SystemExit as exc:  # --help, --version
            return exc.code if isinstance(exc.code, int) else 0
        command = {"toy": _toy, "train": _train, "predict": _predict, "compile": _compile}[args.command]
        with warnings.catch_warnings():
            warnings.showwarning = _warn
            warnings.simplefilter("default")
            return command(args)
    except (_UsageError, FileNotFoundError) as exc:
        return _error(exc, 2)
    except (_DataError, ValueError, TypeError, RuntimeError) as exc:
        return _error(exc, 1)
    except OSError as exc:  # a file that cannot be read or written: the path is wrong
        return _error(exc, 2)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except Exception as exc:  # the last resort: still one line, never a traceback
        return _error(f"unexpected {type(exc).__name__}: {exc}", 1)
