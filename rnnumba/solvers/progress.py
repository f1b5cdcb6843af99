"""A per-epoch progress bar: tqdm when installed, plain lines otherwise."""

import sys


class Progress:
    """Report the running loss once per epoch (no-op unless ``verbose``).

    Parameters
    ----------
    total : int
        The number of epochs planned.
    verbose : bool or int
        Report only when true.
    """

    def __init__(self, total, verbose):
        self.verbose, self.total, self.k, self.bar = bool(verbose), total, 0, None
        if not self.verbose:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is optional
            return
        self.bar = tqdm(total=total, desc="rnnumba", unit="epoch", leave=True)

    def update(self, loss, score=None):
        """Report one finished epoch.

        Parameters
        ----------
        loss : float
            The epoch's running training loss.
        score : float, optional
            The validation score, when there is one.
        """
        if not self.verbose:
            return
        self.k += 1
        if self.bar is not None:
            post = {"loss": f"{loss:.5g}"}
            if score is not None:
                post["val_score"] = f"{score:.5g}"
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
        else:
            extra = "" if score is None else f"  validation score {score:.5g}"
            print(f"epoch {self.k}/{self.total}  loss {loss:.5g}{extra}", file=sys.stderr, flush=True)

    def close(self):
        """Close the tqdm bar, if any (idempotent)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
