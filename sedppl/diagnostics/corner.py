"""Corner plots of posterior draws, optionally with the true values marked."""

from __future__ import annotations

import numpy as np

LABELS = {"teff": "Teff [K]", "logg": "logg", "mh": "[M/H]", "av": "A_V", "rv": "R_V", "theta_mas": "theta [mas]"}


def corner(draws: dict[str, np.ndarray], path, truth: dict[str, float] | None = None, title: str = "",
           overlay: dict[str, np.ndarray] | list[dict[str, np.ndarray]] | None = None,
           labels: tuple[str, ...] = ("", "")) -> None:
    """Pairwise scatter and marginal histograms of ``draws`` (name -> any shape), truths as lines.

    ``overlay`` (same names; one set or a list) is drawn on top in other colours, e.g. NPE over
    NUTS; ``labels`` name the sets in a legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(draws)
    sets = [({n: np.asarray(v).reshape(-1) for n, v in draws.items()}, "C0")]
    overlays = [] if overlay is None else [overlay] if isinstance(overlay, dict) else list(overlay)
    for i, extra in enumerate(overlays):
        sets.append(({n: np.asarray(extra[n]).reshape(-1) for n in names}, f"C{i + 1}"))
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(1.9 * k, 1.9 * k), squeeze=False)
    for i, yi in enumerate(names):
        for j, xj in enumerate(names):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                edges = np.histogram_bin_edges(np.concatenate([f[xj] for f, _ in sets]), bins=40)
                for f, colour in sets:
                    ax.hist(f[xj], bins=edges, color=colour, histtype="stepfilled", alpha=0.45, density=True)
                ax.set_yticks([])
            else:
                for f, colour in sets:
                    ax.plot(f[xj], f[yi], ".", ms=1, alpha=0.2, color=colour, rasterized=True)
                if truth is not None:
                    ax.axhline(truth[yi], color="k", lw=1)
            if truth is not None:
                ax.axvline(truth[xj], color="k", lw=1)
            ax.tick_params(labelsize=6)
            if i == k - 1:
                ax.set_xlabel(LABELS.get(xj, xj), fontsize=8)
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(LABELS.get(yi, yi), fontsize=8)
            elif j > 0:
                ax.set_yticklabels([])
    if any(labels):
        handles = [plt.Line2D([], [], color=c, lw=4, alpha=0.6) for _, c in sets]
        fig.legend(handles, labels[: len(sets)], loc="upper right", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
