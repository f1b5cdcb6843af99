"""Arrays without a reference count, for the inside of one kernel call.

numba counts references to every array with an atomic increment and decrement
(a ``lock``-prefixed instruction, ~5 ns here) whenever a view is taken or an
array is handed to a function that it cannot prove harmless, and its pruning
pass keeps most of those around any call that may fail. A seed-sized chunk
(10 sequences of 3 steps, hidden 26) did ~360 of them, a fifth of its time;
with the helpers between the kernels inlined, ~280, most on views of
``theta``, its gradient, the data and the chunk's buffers, which the kernels
now borrow (~115 left). :func:`borrow` gives an array's numba value without
its memory-manager pointer, so that every view taken from it skips the count.

Under ``NUMBA_DISABLE_JIT=1`` the kernels run as plain Python, where there is
no reference count to skip: :func:`borrow` is then the identity.
"""

from numba.core import config, types
from numba.extending import intrinsic
from numba.np.arrayobj import populate_array


@intrinsic
def borrow(typingctx, arr):
    """``arr`` (same type, same memory) with no reference count of its own.

    Only for arrays that outlive the borrowing call, such as a kernel's
    arguments inside the kernel: nothing keeps the memory alive through the
    borrowed value or the views taken from it, so neither may be returned or
    stored.
    """
    if not isinstance(arr, types.Array):
        return None

    def codegen(context, builder, signature, args):
        src = context.make_array(arr)(context, builder, args[0])
        out = context.make_array(arr)(context, builder)
        populate_array(
            out, data=src.data, shape=src.shape, strides=src.strides, itemsize=src.itemsize, meminfo=None
        )
        return out._getvalue()

    return arr(arr), codegen


if config.DISABLE_JIT:  # kernels run as Python: an intrinsic cannot be called there

    def borrow(arr):  # noqa: F811
        """``arr`` itself (plain Python has no reference count to skip)."""
        return arr
