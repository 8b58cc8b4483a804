"""Full-batch L-BFGS on a linear autoencoder's squared error (``linear-ae``'s default solver).

The error of ``x_hat = W_d (W_e x_c + b_e) + b_d`` (``x_c = x - mu``) averaged over rows is

    E||(A - I) x_c + c||^2 = tr((A - I) S (A - I)^T) + 2 c^T (A - I) m + ||c||^2

with ``A = W_d W_e``, ``c = W_d b_e + b_d`` and the rows' moments ``S = E[x_c x_c^T]``,
``m = E[x_c]``. Where the input is no wider than the rows are many (and ``S`` fits in
:data:`MOMENT_ELEMENTS`), the moments are taken once per fit and every evaluation costs
``O(d^2 k)`` whatever the number of rows (60 000 MNIST rows cost what 784 do); otherwise the
rows themselves are used, in chunks that bound the activations' memory. Both are exact, in
float64, on a float64 copy of the weights: near the optimum, where PCA's eigenvalues k and
k+1 are close, float32 cannot tell the last fraction of a degree apart and the line search
stalls (measured on the 32x32 digits at k = 16: 0.55 degrees in float32).

Under DDP every rank's moments (or gradients) are summed, so all ranks take the same steps.
"""
from __future__ import annotations

import torch

#: the second-moment matrix ``S`` (d x d, float64) is used up to this many values (256 MiB)
MOMENT_ELEMENTS = 1 << 25
#: values per chunk when the rows themselves are used
CHUNK_ELEMENTS = 1 << 22


class LinearLBFGS:
    """L-BFGS for the weights ``(W_e, [b_e,] W_d, [b_d])``; :meth:`fit` runs ``iterations`` on a batch."""

    def __init__(self, weights: list[torch.Tensor], iterations: int):
        self.weights = weights
        self.master = [w.detach().double().clone().requires_grad_(True) for w in weights]
        self.optimizer = torch.optim.LBFGS(self.master, lr=1.0, max_iter=iterations, history_size=50,
                                           tolerance_grad=0.0, tolerance_change=1e-15,
                                           line_search_fn="strong_wolfe")

    def fit(self, rows: torch.Tensor, mean: torch.Tensor, world: int = 1) -> None:
        """Iterate on the squared error of ``rows`` ``(N, d)`` centred on ``mean``; the float32
        weights are updated in place."""
        rows, mean = rows.flatten(1), mean.double()
        d = rows.shape[1]
        moments = _moments(rows, mean, world) if d <= _total_rows(rows, world) and d * d <= MOMENT_ELEMENTS \
            else None
        master = self.master

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad()
            if moments is not None:
                loss = _moment_error(master, *moments)
                loss.backward()
                return loss.detach()
            loss = torch.zeros((), dtype=torch.float64, device=rows.device)
            step = max(1, CHUNK_ELEMENTS // d)
            for start in range(0, rows.shape[0], step):
                chunk = _row_error(master, rows[start:start + step], mean) / rows.shape[0]
                chunk.backward()
                loss += chunk.detach()
            if world > 1:          # every rank steps on the mean gradient, so the replicas stay equal
                import torch.distributed as dist
                for p in master:
                    dist.all_reduce(p.grad)
                    p.grad /= world
                dist.all_reduce(loss)
                loss /= world
            return loss

        # stop once an iteration moves the loss by under 1e-12 of itself (float64 still tells):
        # a converged epoch then costs a few evaluations instead of ``iterations``
        state = self.optimizer.state[master[0]]
        if "prev_loss" in state:
            self.optimizer.param_groups[0]["tolerance_change"] = 1e-12 * abs(float(state["prev_loss"]))
        with torch.enable_grad(), torch.autocast(rows.device.type, enabled=False):
            self.optimizer.step(closure)
        with torch.no_grad():
            for w, m in zip(self.weights, master):
                w.copy_(m)


def _split(weights: list[torch.Tensor]):
    """(W_e, b_e or None, W_d, b_d or None) from the weight list (biases are optional)."""
    if len(weights) == 4:
        return weights
    enc_w, dec_w = weights
    return enc_w, None, dec_w, None


def _total_rows(rows: torch.Tensor, world: int) -> int:
    return rows.shape[0] * world


@torch.no_grad()
def _moments(rows: torch.Tensor, mean: torch.Tensor, world: int):
    """``(S, m, tr S)`` of the rows (over every rank's rows under DDP), in float64."""
    centred = rows.double() - mean
    count = torch.tensor([float(rows.shape[0])], dtype=torch.float64, device=rows.device)
    s, m = centred.T @ centred, centred.sum(0)
    if world > 1:
        import torch.distributed as dist
        for t in (s, m, count):
            dist.all_reduce(t)
    s /= count
    m /= count
    return s, m, torch.trace(s)


def _moment_error(weights: list[torch.Tensor], s: torch.Tensor, m: torch.Tensor, trace: torch.Tensor
                  ) -> torch.Tensor:
    """E||(A - I) x_c + c||^2 from the moments (the module docstring's identity)."""
    enc_w, enc_b, dec_w, dec_b = _split(weights)
    p = enc_w @ s                                              # W_e S, (k, d)
    a_s = (p * dec_w.T).sum()                                  # tr(A S)
    a_s_a = ((dec_w.T @ dec_w) * (p @ enc_w.T)).sum()          # tr(A S A^T)
    loss = trace - 2 * a_s + a_s_a
    c = (dec_w @ enc_b if enc_b is not None else 0.0) + (dec_b if dec_b is not None else 0.0)
    if isinstance(c, torch.Tensor):
        loss = loss + 2 * (c @ (dec_w @ (enc_w @ m)) - c @ m) + c @ c
    return loss


def _row_error(weights: list[torch.Tensor], rows: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Squared error summed over ``rows`` and their elements."""
    enc_w, enc_b, dec_w, dec_b = _split(weights)
    centred = rows.double() - mean
    z = centred @ enc_w.T + (enc_b if enc_b is not None else 0.0)
    recon = z @ dec_w.T + (dec_b if dec_b is not None else 0.0)
    return (recon - centred).pow(2).sum()
