"""Recurrent cells: one module each, each with its compiled ``_forward`` and
``_backward`` over a time-major chunk of a batch, sharing one call shape:

``_forward(W, b, extra, HX, S, lengths)`` and
``_backward(W, b, extra, HX, S, lengths, dHs, dW, db, dextra, dX)``.

``HX`` (T+1, n, H+I) holds ``[h_{t-1}; x_t]`` in row ``t`` (the forward pass
writes ``h_t`` into row ``t+1``); ``S`` (T+1, n, width) holds whatever else the
cell keeps for BPTT (gates, cell states). Steps at or past a sample's length
keep its state, so row ``T`` holds every sample's final state.
"""
