"""User input -> padded float arrays and lengths, or a clear error.

Everything the kernels receive passes through here: ``X`` becomes a
C-contiguous (N, T, I) array of the network's dtype, ``lengths`` an int64 (N,)
array in [1, T], and targets a (N, 1 or T, O) array. Values in the padding are
never read, so they are not checked either.

Every array handed to a kernel is C-contiguous, writeable and of one dtype
(:func:`kernel_array`): numba compiles a kernel once per array type, and a
read-only or strided input would otherwise compile (and cache) it again.
"""

import numbers

import numpy as np

from ._jit import jit


@jit
def first_nonfinite(A, lengths):
    """Flat index of the first NaN/inf of ``A`` (N, T, K) within each row's first ``lengths[n]`` steps, or -1.

    Compiled: NumPy's ``isfinite(A).all()`` has more call overhead than a small
    batch's whole check.
    """
    N, T, K = A.shape
    for n in range(N):
        for t in range(min(lengths[n], T)):
            for k in range(K):
                if not np.isfinite(A[n, t, k]):
                    return (n * T + t) * K + k
    return -1


@jit
def _all_finite(X, Y, lengths):
    """Tell whether neither ``X`` nor ``Y`` holds a NaN/inf within ``lengths``.

    A batch's inputs and targets in one compiled call.
    """
    return first_nonfinite(X, lengths) < 0 and first_nonfinite(Y, lengths) < 0


def dense_batch(X, y, dtype, input_size, output_size, plans, finite=True):
    """Prepare the common training batch in few steps, or return None.

    ``X`` (N, T, I) or (N, T) and regression targets ``y`` (N,) or (N, O), both
    C-contiguous NumPy arrays of ``dtype`` (a :class:`numpy.dtype`), every
    value finite (unchecked if not ``finite``: for a caller whose kernel checks
    them), no ``lengths``: returns ``(X, Y, plans(N, T))``, ``X``
    (N, T, I) and ``Y`` (N, 1, O) views of the originals as
    :func:`check_sequences` and :func:`check_targets` would give them, and
    ``plans(N, T)`` the caller's record for that shape, whose ``lengths`` are
    the all-``T`` lengths (one lookup serves the caller and the check).
    Anything else, bad input included, gives None and goes through those full
    checks (which say what is wrong). At the seed's size the full checks are
    a noticeable part of a training step; this path costs less than half as much.
    """
    if type(X) is not np.ndarray or type(y) is not np.ndarray:
        return None
    if X.dtype is not dtype or y.dtype is not dtype:
        return None
    fx, fy = X.flags, y.flags
    if not (fx.c_contiguous and fy.c_contiguous and fx.writeable and fy.writeable):
        return None
    shape = X.shape
    if len(shape) == 3 and shape[2] == input_size:
        N, T = shape[0], shape[1]
    elif len(shape) == 2 and input_size == 1:
        N, T = shape
        X = X.reshape(N, T, 1)
    else:
        return None
    if N == 0 or T == 0 or not (y.shape == (N, output_size) or output_size == 1 and y.shape == (N,)):
        return None
    Y, plan = y.reshape(N, 1, output_size), plans(N, T)
    return (X, Y, plan) if not finite or _all_finite(X, Y, plan.lengths) else None


def kernel_array(a, dtype):
    """Return ``a`` as the kernels take arrays: C-contiguous, writeable, of ``dtype``.

    A copy only where ``a`` is not that already.
    """
    out = np.ascontiguousarray(a, dtype=dtype)
    return out if out.flags.writeable else out.copy()


def _as_float_array(a, what, dtype):
    """Return ``a`` as an array of ``dtype``; a TypeError for non-numeric input."""
    arr = np.asarray(a)
    kind = arr.dtype.kind  # dtype.kind, not np.issubdtype: this runs on every call
    if kind == "c":
        raise TypeError(f"{what} must be real, got dtype {arr.dtype}")
    if kind not in "fiub":
        raise TypeError(f"{what} must be numeric, got dtype {arr.dtype}")
    return kernel_array(arr, dtype)


def check_sequences(X, lengths=None, input_size=None, dtype=np.float64):
    """Validate sequences and pad them.

    Parameters
    ----------
    X : array_like or list of array_like
        (N, T) one feature per step, (N, T, I), or a list of N arrays of shape
        (T_i,) or (T_i, I) (lengths then come from the arrays).
    lengths : array_like of int, optional
        Valid steps of each row of a right-padded array; default all ``T``.
    input_size : int, optional
        The expected number of features per step.
    dtype : numpy dtype

    Returns
    -------
    X : ndarray (N, T, I), C-contiguous, ``dtype``
    lengths : ndarray (N,), int64
    from_list : bool
    """
    from_list = isinstance(X, (list, tuple))
    if from_list:
        if lengths is not None:
            raise ValueError("lengths= is for padded arrays; a list of sequences carries its own lengths")
        if len(X) == 0:
            raise ValueError("X is empty: no sequences")
        seqs = []
        for k, x in enumerate(X):
            x = _as_float_array(x, f"X[{k}]", dtype)
            if x.ndim == 1:
                x = x[:, None]
            if x.ndim != 2:
                raise ValueError(f"X[{k}] must have shape (T_i,) or (T_i, I), got {x.shape}")
            if x.shape[0] == 0:
                raise ValueError(f"X[{k}] is an empty sequence (length 0)")
            seqs.append(x)
        features = {x.shape[1] for x in seqs}
        if len(features) > 1:
            raise ValueError(f"the sequences in X have different numbers of features: {sorted(features)}")
        lengths = np.array([x.shape[0] for x in seqs], dtype=np.int64)
        Xp = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=dtype)
        for k, x in enumerate(seqs):
            Xp[k, : x.shape[0]] = x
    else:
        Xp = _as_float_array(X, "X", dtype)
        if Xp.ndim == 2:
            Xp = Xp[:, :, None]
        if Xp.ndim != 3:
            raise ValueError(
                f"X must have shape (N, T) or (N, T, I) or be a list of sequences, got shape {Xp.shape}"
            )
        if Xp.shape[0] == 0:
            raise ValueError("X is empty: no sequences (N = 0)")
        if Xp.shape[1] == 0:  # scikit-learn's wording, then ours
            raise ValueError(
                f"X has 0 feature(s) (shape={Xp.shape[:2]}) while a minimum of 1 is required: "
                "no time steps (T = 0) in X of shape (N, T) or (N, T, I)"
            )
        if Xp.shape[2] == 0:
            raise ValueError("X has no features (I = 0)")
        lengths = check_lengths(lengths, Xp.shape[0], Xp.shape[1])
    N, T, I = Xp.shape
    if input_size is not None and I != input_size:
        raise ValueError(f"X has {I} feature(s) per step but the network expects input_size={input_size}")
    bad = first_nonfinite(Xp, lengths)  # the padding may hold anything
    if bad >= 0:
        n, t, i = np.unravel_index(bad, Xp.shape)
        raise ValueError(
            f"X holds NaN or inf ({Xp[n, t, i]}) at sample {n}, step {t}, feature {i}, within the "
            "sequence's valid steps (only trailing all-NaN steps may pad a sequence)"
        )
    return Xp, lengths, from_list


def check_lengths(lengths, N, T):
    """``lengths`` as int64 (N,), each in [1, T] (default: all T)."""
    if lengths is None:
        full = np.empty(N, dtype=np.int64)
        full.fill(T)  # faster than np.full, which matters at a small batch
        return full
    raw = np.asarray(lengths)
    if raw.ndim != 1 or raw.shape[0] != N:
        raise ValueError(f"lengths must have shape ({N},), one per sequence, got {raw.shape}")
    if raw.dtype == bool or not np.issubdtype(raw.dtype, np.number):
        raise TypeError(f"lengths must be integers, got dtype {raw.dtype}")
    if not np.issubdtype(raw.dtype, np.integer):
        if not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw)):
            k = int(np.argmax(~np.isfinite(raw) | (raw != np.round(raw))))
            raise TypeError(f"lengths must be whole numbers, got {raw[k]} at sample {k}")
    out = raw.astype(np.int64)
    if out.min() < 1 or out.max() > T:
        k = int(np.argmax((out < 1) | (out > T)))
        raise ValueError(f"lengths must lie in [1, T={T}], got {out[k]} at sample {k}")
    return np.ascontiguousarray(out)


def check_targets(y, N, T, lengths, output_size, loss, dtype=np.float64):
    """Targets as (N, 1 or T, O) plus the many-to-many flag and the count.

    Regression (``loss="mse"``): (N,) or (N, O) for one output per sequence,
    (N, T, O) or a list of (T_i,) / (T_i, O) arrays for an output per step.
    Classification (``loss="xent"``): integer classes (N,) or (N, T) or a list
    of (T_i,) arrays.
    """
    if isinstance(y, (list, tuple)) and len(y) and np.ndim(y[0]) >= 1:
        if len(y) != N:
            raise ValueError(f"y has {len(y)} sequences but X has {N}")
        rows = []
        for k, yk in enumerate(y):
            yk = np.asarray(yk)
            if yk.shape[0] != lengths[k]:
                raise ValueError(f"y[{k}] has {yk.shape[0]} steps but X[{k}] has {lengths[k]}")
            rows.append(yk)
        pad = np.zeros((N, T) + rows[0].shape[1:], dtype=np.result_type(*rows))
        for k, yk in enumerate(rows):
            if yk.shape[1:] != rows[0].shape[1:]:
                raise ValueError(f"y[{k}] has shape {yk.shape}, unlike y[0] {rows[0].shape}")
            pad[k, : yk.shape[0]] = yk
        y, many = pad, True
    else:
        y = np.asarray(y)
        many = None
    if y.dtype.kind not in "fiub":
        raise TypeError(f"y must be numeric, got dtype {y.dtype}")
    if y.shape[:1] != (N,):
        raise ValueError(f"y has {y.shape[0] if y.ndim else 0} samples but X has {N}")
    if loss == "xent":
        valid = np.arange(T)[None, :] < lengths[:, None] if (many or y.ndim > 1) else None
        if many is None:
            many = y.ndim == 2
        if y.ndim != (2 if many else 1):
            raise ValueError(f"class targets must have shape (N,) or (N, T), got {y.shape}")
        if many and y.shape[1] != T:
            raise ValueError(f"y has {y.shape[1]} steps but X has T={T}")
        if y.dtype.kind not in "iu":
            yv = y[valid] if many else y
            if not np.all(np.isfinite(yv)) or np.any(yv != np.round(yv)):
                raise TypeError("class targets must be integers")
        cls = y.reshape(N, -1)
        cv = cls[valid] if many else cls
        if cv.min() < 0 or cv.max() >= output_size:
            raise ValueError(
                f"class targets must lie in [0, {output_size - 1}] (output_size={output_size}), "
                f"got {int(cv.min()) if cv.min() < 0 else int(cv.max())}"
            )
        Y = np.zeros((N, T if many else 1, 1), dtype=dtype)
        Y[..., 0] = np.where(valid, cls, 0) if many else cls
        count = int(lengths.sum()) if many else N
        return Y, bool(many), count
    if loss != "mse":
        raise ValueError(f"loss must be 'mse' or 'xent', got {loss!r}")
    if many is None:
        many = y.ndim == 3
    Y = y.astype(dtype, copy=False)
    if many:
        if Y.ndim == 2:
            Y = Y[:, :, None]
        if Y.ndim != 3 or Y.shape[1] != T or Y.shape[2] != output_size:
            raise ValueError(f"per-step targets must have shape (N, T={T}, O={output_size}), got {y.shape}")
    else:
        if not (Y.ndim == 2 and Y.shape[1] == output_size or Y.ndim == 1 and output_size == 1):
            raise ValueError(f"targets must have shape (N,) or (N, O={output_size}), got {y.shape}")
        Y = Y.reshape(N, 1, output_size)  # one reshape: this runs on every call
    Y = kernel_array(Y, dtype)
    bad = first_nonfinite(Y, lengths)  # (N, 1, O): every row's one step
    if bad >= 0:
        where = tuple(int(k) for k in np.unravel_index(bad, Y.shape))
        raise ValueError(f"y holds NaN or inf at index {where[:2] if many else where[:1]}")
    count = (int(lengths.sum()) if many else N) * output_size
    return Y, bool(many), count


def check_state(h0, cell, n_states, N, hidden, dtype=np.float64):
    """Validate initial states and pack them as the kernels take them.

    (n_states, N, H), or for the LSTM a pair ``(h0, c0)`` packed as
    (n_states, N, 2H) ``[h; c]``.

    ``n_states`` is num_layers * directions, in PyTorch's order (layer-major,
    the reverse direction second), as ``torch.nn.RNN``'s ``h_0``.
    """
    if cell == "lstm":
        if not isinstance(h0, (tuple, list)) or len(h0) != 2:
            raise TypeError("an LSTM's initial state is a pair (h0, c0) of arrays")
        parts = (("h0", h0[0]), ("c0", h0[1]))
    else:
        parts = (("h0", h0),)
    want = (n_states, N, hidden)
    arrays = []
    for name, a in parts:
        a = _as_float_array(a, name, dtype)
        if a.shape != want:
            raise ValueError(
                f"{name} must have shape (num_layers * directions, N, hidden) = {want}, got {a.shape}"
            )
        bad = first_nonfinite(a, np.full(n_states, N, dtype=np.int64))
        if bad >= 0:
            where = tuple(int(k) for k in np.unravel_index(bad, want))
            raise ValueError(f"{name} holds a non-finite value at index {where}")
        arrays.append(a)
    return arrays[0] if len(arrays) == 1 else np.ascontiguousarray(np.concatenate(arrays, axis=2))


def split_state(S, cell):
    """Inverse of :func:`check_state`'s packing: ``S``, or ``(h, c)`` views for the LSTM."""
    if cell != "lstm":
        return S
    H = S.shape[2] // 2
    return S[:, :, :H], S[:, :, H:]


def check_int(value, name, low=1):
    """Return ``value`` as an int >= ``low`` (bools refused), or raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)
