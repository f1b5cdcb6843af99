"""Recurrent cells: one module each, with compiled ``forward`` and ``backward`` kernels.

Each works over a time-major chunk of a batch, and all share one call shape:

``forward(W, b, extra, HX, S, lengths)`` and
``backward(W, b, extra, HX, S, lengths, dHs, dhT, dW, db, dextra, dX, dh0)``
(the GRU's Cho form: ``forward_cho``, ``backward_cho``).

``HX`` (T+1, n, H+I) holds ``[h_{t-1}; x_t]`` in row ``t`` (the forward pass
writes ``h_t`` into row ``t+1``); ``S`` (T+1, n, width) holds whatever else the
cell keeps for BPTT (gates, cell states), or in prediction a ring of two such
rows (step ``t`` writes row ``(t+1) % 2``): nothing reads a past state there.
Steps at or past a sample's length keep its state, so row ``T`` holds every
sample's final state.

Every ``backward`` runs the same BPTT recursion (notation of ``docs/cells.md``;
``a_t`` the pre-activations ``W [h_{t-1}; x_t] + b``, ``r_t`` the part of
dL/dh_t that step ``t+1`` passes back; ``r_{T-1}`` is ``dhT``, the adjoint a
later segment of the sequence carried in, or 0)::

    dh_t             = dHs[t] + r_t                       (dL/dh_t)
    da_t             = the cell's local derivative of dh_t (and of the LSTM's dc_t)
    [r_{t-1}; dx_t]  = da_t W  (+ the cell's pointwise share of dh_{t-1})
    dW = sum_t da_t^T [h_{t-1}; x_t],   db = sum_t da_t   (summed over samples too)

On a step past a sample's length ``da_t = 0`` and ``r_{t-1} = dh_t`` (the
frozen state passes its gradient through); ``dh0`` receives ``r_{-1}``.
"""
