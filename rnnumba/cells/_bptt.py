"""What the cells' BPTT loops share."""

from .._jit import jit


@jit(inline="always")
def _split_dhx(dHX, dh_next, dX, t, lengths):
    """Split a step's ``[dh_{t-1}; dx_t]`` product ``dHX`` (n, H+I): valid samples
    take ``dh_{t-1}`` into ``dh_next`` (a frozen sample keeps the ``dh`` it passes
    through) and, if ``dX`` is not empty, ``dx_t`` into ``dX[t]`` (0 past a
    sample's end)."""
    H = dh_next.shape[1]
    want_dx = dX.shape[0] > 0
    for i in range(dHX.shape[0]):
        if t < lengths[i]:
            for j in range(H):
                dh_next[i, j] = dHX[i, j]
            if want_dx:
                for j in range(dHX.shape[1] - H):
                    dX[t, i, j] = dHX[i, H + j]
        elif want_dx:
            for j in range(dHX.shape[1] - H):
                dX[t, i, j] = 0.0


@jit(inline="always")
def _copy_rows(dst, src):
    """``dst[:, :src.shape[1]] = src`` for the rows of ``dst`` (none if empty):
    dL/dh_{-1} out of a backward pass, when it was asked for."""
    for i in range(dst.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]
