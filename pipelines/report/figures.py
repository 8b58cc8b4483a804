"""Matplotlib figures of a run (Agg backend, no display): loss curves, latent scatter,
cross-modal image grid, spectrograms. Each builder returns a Figure; :func:`save_figure`
writes it atomically and :func:`figure_png` gives the PNG bytes for embedding.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from polyvae.core.atomic import atomic_path

#: categorical colours (matplotlib's tab10, then tab20's light shades) shared with the HTML scatter
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
           "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display, safe in threads without a GUI)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def colour_of(value: str, values: Sequence[str]) -> str:
    ordered = sorted(set(values))
    return PALETTE[ordered.index(value) % len(PALETTE)] if value in ordered else "#444444"


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and close it."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
            tmp.chmod(0o644)            # mkstemp makes it private; plots are for looking at
    finally:
        plt.close(fig)
    return path


def figure_png(fig) -> bytes:
    plt = pyplot()
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def loss_terms(history: list[dict[str, float]]) -> list[tuple[str, list[str]]]:
    """Panels of the loss plot: (title, terms) with terms as named after ``train/``/``validation/``."""
    terms: list[str] = []
    for h in history:
        for key in h:
            split, _, term = key.partition("/")
            if split in ("train", "validation") and term not in terms + ["loss", "beta", "elbo"]:
                terms.append(term)
    nll = sorted(t for t in terms if t.startswith("nll/"))
    recon = nll + sorted(t for t in terms if t.startswith("recon"))
    kl = sorted(t for t in terms if t.startswith("kl"))
    other = sorted(t for t in terms if t not in recon + kl)
    elbo = any("train/elbo" in h for h in history)
    panels = [("total loss (negative ELBO)" if elbo else "total loss", ["loss"]),
              ("reconstruction NLL per modality" if nll else "reconstruction error", recon),
              ("KL divergence", kl), ("other terms", other)]
    return [(title, names) for title, names in panels if names]


def loss_curves(history: list[dict[str, float]]):
    """Total loss (train and validation), reconstruction per modality, KL and any other term per epoch."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator
    epochs = [h["epoch"] for h in history]
    panels = loss_terms(history)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=100, squeeze=False)
    for ax, (title, terms) in zip(axes[0], panels):
        for i, term in enumerate(terms):
            colour = PALETTE[i % len(PALETTE)]
            for split, style in (("train", "-"), ("validation", "--")):
                ys = [h.get(f"{split}/{term}") for h in history]
                if any(y is not None for y in ys):
                    xs = [e for e, y in zip(epochs, ys) if y is not None]
                    ax.plot(xs, [y for y in ys if y is not None], style, color=colour, marker=".",
                            label=f"{split} {term}")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def latent_scatter(xy: np.ndarray, labels: Sequence[str] | None, column: str | None,
                   title: str = "latent means, 2-D projection"):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.6), dpi=100)
    if labels:
        for value in sorted(set(labels)):
            sel = np.asarray([v == value for v in labels])
            ax.scatter(xy[sel, 0], xy[sel, 1], s=10, alpha=0.8, color=colour_of(value, labels),
                       label=value or "(none)")
        ax.legend(title=column, fontsize=7, markerscale=1.5, loc="best", ncol=2)
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=10, alpha=0.8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    fig.tight_layout()
    return fig


def image_grid(rows: list[tuple[str, list[np.ndarray]]], title: str, pad: int = 2):
    """One row per caption, its images side by side; images are ``(H, W)`` or ``(H, W, 3)`` in [0, 1].

    The grid is drawn as one montage (one ``imshow``), which stays fast for many images.
    """
    plt = pyplot()
    first = rows[0][1][0]
    h, w = first.shape[:2]
    cols = max(len(images) for _, images in rows)
    rgb = any(img.ndim == 3 for _, images in rows for img in images)
    canvas = np.ones(((h + pad) * len(rows) + pad, (w + pad) * cols + pad) + ((3,) if rgb else ()))
    for r, (_, images) in enumerate(rows):
        for c, img in enumerate(images):
            if rgb and img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            canvas[y:y + h, x:x + w] = img[:h, :w]
    scale = max(0.55, min(1.2, 48 / max(h, w)))
    fig, ax = plt.subplots(figsize=(0.75 * scale * cols + 1.6, 0.75 * scale * len(rows) + 0.6), dpi=100)
    ax.imshow(canvas, cmap=None if rgb else "gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(len(rows))])
    ax.set_yticklabels([caption for caption, _ in rows], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def spectrogram_panel(clips: list[tuple[str, np.ndarray, int]], title: str, columns: int = 5):
    """Log-power spectrograms of waveforms ``(caption, samples, rate)``, several per row."""
    plt = pyplot()
    columns = max(1, min(columns, len(clips)))
    rows = (len(clips) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 1.9 * rows + 0.4), dpi=100,
                             squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, (caption, wave, rate) in zip(axes.flat, clips):
        ax.set_visible(True)
        draw_spectrogram(ax, wave, rate)
        ax.set_title(caption, fontsize=8)
        ax.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def draw_spectrogram(ax, wave: np.ndarray, rate: int) -> None:
    wave = np.asarray(wave, dtype=np.float64)
    n_fft = int(min(512, max(64, 2 ** np.floor(np.log2(max(len(wave) // 8, 64))))))
    ax.specgram(wave + 1e-9, NFFT=n_fft, Fs=rate, noverlap=n_fft // 2, cmap="magma", scale="dB")
    ax.set_xlabel("s", fontsize=6)
    ax.set_ylabel("Hz", fontsize=6)


def spectrogram_image(wave: np.ndarray, rate: int, size: tuple[float, float] = (2.4, 1.2)) -> bytes:
    """A bare spectrogram (no axes) as PNG bytes: the picture beside an audio player."""
    plt = pyplot()
    fig = plt.figure(figsize=size, dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    draw_spectrogram(ax, wave, rate)
    ax.set_axis_off()
    return figure_png(fig)


def interpolation_strip(alphas: list[float], images: list[np.ndarray], clips: list[tuple[np.ndarray, int]],
                        title: str):
    """Steps of a latent path side by side: the decoded image above, the audio's spectrogram below."""
    plt = pyplot()
    lines = [kind for kind, items in (("image", images), ("audio", clips)) if items]
    n = len(alphas)
    fig, axes = plt.subplots(len(lines), n, figsize=(1.5 * n, 1.4 * len(lines) + 0.5), dpi=100, squeeze=False)
    for r, kind in enumerate(lines):
        for k in range(n):
            ax = axes[r][k]
            if kind == "image":
                ax.imshow(images[k], cmap="gray" if images[k].ndim == 2 else None, vmin=0, vmax=1,
                          interpolation="nearest")
            else:
                draw_spectrogram(ax, *clips[k])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
            ax.set_ylabel("")
            if r == 0:
                ax.set_title(f"\u03b1={alphas[k]:.2f}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
