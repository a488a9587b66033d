"""Corner plots of posterior draws, optionally with the true values marked."""

from __future__ import annotations

import numpy as np

LABELS = {"teff": "Teff [K]", "logg": "logg", "mh": "[M/H]", "av": "A_V", "rv": "R_V", "theta_mas": "theta [mas]"}


def corner(draws: dict[str, np.ndarray], path, truth: dict[str, float] | None = None, title: str = "") -> None:
    """Pairwise scatter and marginal histograms of ``draws`` (name -> any shape), truths as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(draws)
    flat = {n: np.asarray(v).reshape(-1) for n, v in draws.items()}
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(1.9 * k, 1.9 * k), squeeze=False)
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                ax.hist(flat[xj], bins=40, color="C0", histtype="stepfilled", alpha=0.6)
                ax.set_yticks([])
            else:
                ax.plot(flat[xj], flat[yi], ".", ms=1, alpha=0.2, color="C0", rasterized=True)
                if truth is not None:
                    ax.axhline(truth[yi], color="C3", lw=1)
            if truth is not None:
                ax.axvline(truth[xj], color="C3", lw=1)
            ax.tick_params(labelsize=6)
            if i == k - 1:
                ax.set_xlabel(LABELS.get(xj, xj), fontsize=8)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(LABELS.get(yi, yi), fontsize=8)
            elif j > 0:
                ax.set_yticklabels([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
