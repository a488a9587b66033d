"""Every sampler against a brute-force reference, on simulated stars chosen to be hard.

    python validation/exact_reference.py [--per-kind 13] [--out validation/results/exact_reference]

The hard set (fixed seeds): stars with few bands (p_missing 0.8), faint stars
(errors 0.05-0.3 mag), cool dwarfs (Teff < 5200 K, logg > 4, where the giant
branch has the same colours) and reddened stars (A_V > 3), ``--per-kind`` of each.

The brute-force reference is importance sampling of the one log-joint
(``generative.log_joint``, theta integrated analytically) from a wide
defensive mixture: the prior itself (weight 0.2) and broad Student t's
(df 3, sd x 2) fitted to each NUTS chain, to the SMC particles and to the
NPE-IS draws, (weight 0.8 shared). It draws until the ESS of its weights
reaches ``--min-ess`` (4000). Its weakness is the one every such check has: a
mode that no method found is only reachable through the prior component.

Then nuts, smc, npe-is and npe (each as ``sedppl fit`` runs it, defaults)
are compared with it: each mode's weight (modes = the NUTS chains' components
merged by ``inference.modes.same_mode``; each draw goes to the mode of the
component that explains it best), the 16/50/84% quantiles in reference sds, and the
sliced Wasserstein distance. The report says, per method, how many stars meet
the targets of issue 20 (mode weights within 0.05, quantiles within 0.1 sd),
for all stars and for the stars the method itself trusts.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from sedppl.io.cli import use_cpu_cores

use_cpu_cores()  # every core a JAX device (NUTS and SMC split stars over them), before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np
import numpyro.distributions as dist
from astropy.table import Table, vstack
from numpyro.infer import Predictive

from sedppl.diagnostics.comparison import sliced_wasserstein
from sedppl.diagnostics.crosscheck import AGREE_Z, LABELS, cross_check, pooled
from sedppl.io.compare import REFERENCE_GRADE
from sedppl.inference.modes import same_mode
from sedppl.io.catalog import read_catalog
from sedppl.io.fit import fit_catalog
from sedppl.model.forward import PARAMS
from sedppl.model.generative import log_joint, log_prior, sed_model
from sedppl.model.priors import Prior
from sedppl.model.simulate import NoiseModel, simulate_catalog
from npe_accuracy import shown_path  # a sibling script (validation/ is on sys.path)
from simulated_fits import fingerprint  # noqa: E402  (likewise)

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("nuts", "nuts-long", "smc", "smc-long", "npe-is", "npe")
# the same samplers run for a reference: smc-long has twice the particles and 16 moves at the posterior (8x the
# draws); nuts-long 4x the draws per chain (`sedppl compare --draws 4000 --particles 1024 --final-moves 16`)
LONG_SMC = {k: REFERENCE_GRADE[k] for k in ("particles", "final_moves")}
LONG_NUTS = {"draws": REFERENCE_GRADE["draws"]}
IID_DRAWS = 1000  # the "exact, iid" row: what a perfect sampler with this many independent draws would score
PRIOR_WEIGHT = 0.2
DF, WIDEN = 3.0, 2.0
QUANTILES = (16, 50, 84)
# the cross-checked references (``diagnostics.crosscheck``): NUTS against SMC as `sedppl compare` runs them, and
# NUTS against smc-long, the same check with SMC run for a reference
# name -> (NUTS fit, SMC fit, the pooled ESS below which the reference is imprecise)
REFERENCES = {"reference": ("nuts", "smc", 0.0), "reference-long": ("nuts", "smc-long", 0.0),
              "reference-grade": ("nuts-long", "smc-long", REFERENCE_GRADE["min_reference_ess"])}
MODE_TOL, QUANTILE_TOL = 0.05, 0.1  # issue 20's targets
# the default prior when this study was run (0.02 mag floor): its stars and fits, whatever the defaults now
PRIOR = Prior.default(sys_floor=0.02)
BATCH = 8192


def hard_set(per_kind: int) -> Table:
    """``per_kind`` stars of each hard kind, from fixed-seed simulations under the default prior as it was
    when the set was drawn (0.02 mag floor) and the idealised noise: the same stars whatever the defaults."""
    model = sed_model(prior=PRIOR)
    kinds = {
        "few bands": (simulate_catalog(jax.random.key(101), 200, model, NoiseModel(p_missing=0.8)), None),
        "faint": (simulate_catalog(jax.random.key(102), 200, model, NoiseModel(err_min=0.05, err_max=0.3)), None),
        "cool dwarf": (simulate_catalog(jax.random.key(103), 2000, model, NoiseModel()),
                       lambda t: (t["true_teff"] < 5200) & (t["true_logg"] > 4.0)),
        "reddened": (simulate_catalog(jax.random.key(104), 2000, model, NoiseModel()), lambda t: t["true_av"] > 3.0),
    }
    parts = []
    for kind, (table, select) in kinds.items():
        rows = np.flatnonzero(select(table)) if select else np.arange(len(table))
        part = table[rows[:per_kind]]
        part["kind"] = kind
        part["id"] = [f"{kind.replace(' ', '_')}_{i}" for i in part["id"]]
        parts.append(part)
    return vstack(parts, metadata_conflicts="silent")


def _t_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    cov = np.cov(x, rowvar=False) + 1e-8 * np.diag(np.maximum(x.var(axis=0), 1e-6))
    return mean, np.linalg.cholesky(WIDEN**2 * cov)


def components(fits: dict, star: str) -> tuple[np.ndarray, np.ndarray]:
    """Student t locations and scales fitted to each NUTS chain, the SMC draws and the NPE-IS draws."""
    locs, trils = [], []
    chains = fits["nuts"].posterior["nuts_chains"].sel(star=star)
    for c in range(chains.sizes["chain"]):
        locs_trils = _t_fit(np.stack([chains[p].values[c] for p in PARAMS], -1))
        locs.append(locs_trils[0]), trils.append(locs_trils[1])
    for method in ("smc", "npe-is"):
        post = fits[method].posterior["posterior"].sel(star=star)
        m, t = _t_fit(np.stack([post[p].values.ravel() for p in PARAMS], -1))
        locs.append(m), trils.append(t)
    return np.stack(locs), np.stack(trils)


class BruteForce:
    """Importance sampling of one star's exact posterior from the defensive mixture; compiled once for
    every star (the star's photometry and the components are arguments)."""

    def __init__(self, model, n_components: int):
        self.model, self.k = model, n_components
        self._batch = jax.jit(self._draw_and_weigh)

    def _draw_and_weigh(self, key, err, mask, mag, locs, trils):
        model, k = self.model, self.k
        t = dist.MultivariateStudentT(DF, locs, trils)
        k_pick, k_prior, k_which, k_t = jax.random.split(key, 4)
        p = Predictive(model.sample_prior, num_samples=BATCH)(k_prior)
        from_prior = jax.random.uniform(k_pick, (BATCH,)) < PRIOR_WEIGHT
        which = jax.random.randint(k_which, (BATCH,), 0, k)
        t_x = t.sample(k_t, (BATCH,))[jnp.arange(BATCH), which]
        x = jnp.where(from_prior[:, None], jnp.stack([p[q] for q in PARAMS], -1), t_x)
        log_prior_x = jax.vmap(lambda v: log_prior(model, dict(zip(PARAMS, v))))(x)
        log_t = jax.nn.logsumexp(t.log_prob(x[:, None, :]), axis=1) - jnp.log(k)
        log_q = jnp.logaddexp(jnp.log(PRIOR_WEIGHT) + log_prior_x, jnp.log1p(-PRIOR_WEIGHT) + log_t)
        joint = jax.vmap(lambda v: log_joint(model, dict(zip(PARAMS, v)), err, mask, mag))(x)
        log_w = joint - log_q
        return x, jnp.where(jnp.isnan(log_w), -jnp.inf, log_w)

    def __call__(self, key, err, mask, mag, locs, trils, min_ess: float, max_draws: int):
        """Weighted draws of the exact posterior: (x, normalised weights, ESS, number drawn)."""
        xs, log_w, n = [], [], 0
        while n < max_draws:
            key, k = jax.random.split(key)
            x, lw = self._batch(k, err, mask, mag, jnp.asarray(locs), jnp.asarray(trils))
            xs.append(np.asarray(x)), log_w.append(np.asarray(lw, float))
            n += BATCH
            w = np.concatenate(log_w)
            w = np.exp(w - w.max())
            ess = w.sum() ** 2 / (w**2).sum()
            if ess >= min_ess and n >= 4 * BATCH:
                break
        return np.concatenate(xs), w / w.sum(), float(ess), n


def mode_of(x: np.ndarray, locs, trils, labels) -> np.ndarray:
    """Each draw's mode: the label of the component with the highest density there."""
    t = dist.MultivariateStudentT(DF, jnp.asarray(locs), jnp.asarray(trils))
    best = np.concatenate([np.asarray(jnp.argmax(t.log_prob(jnp.asarray(c)[:, None, :]), axis=1))
                           for c in np.array_split(x, max(1, len(x) // BATCH))])
    return labels[best]


def weighted_quantiles(x: np.ndarray, w: np.ndarray, qs) -> np.ndarray:
    order = np.argsort(x)
    cdf = np.cumsum(w[order])
    return np.interp(np.asarray(qs) / 100.0, cdf - 0.5 * w[order], x[order])


def run(per_kind: int, out: Path, min_ess: float, max_draws: int, particles: int, reuse_fits: bool = False) -> Path:
    import json

    from sedppl.inference.nuts import NUTSConfig
    from sedppl.inference.smc import SMCConfig
    from sedppl.io.fit import FitResult

    out.mkdir(parents=True, exist_ok=True)
    table = hard_set(per_kind)
    table.write(out / "hard_set.parquet", overwrite=True)
    catalog = read_catalog(table)
    model = sed_model(bands=catalog.bands, prior=PRIOR, marginalize_scale=True)
    fits, seconds, codes = {}, {}, {}
    for method in METHODS:  # a method's fit of the same stars and settings, written earlier, is reused
        stamp = {"per_kind": per_kind, "particles": particles, "method": method, **fingerprint(catalog)}
        done = out / method / "study.json"
        same = done.exists() and _same_fit(json.loads(done.read_text())["settings"], stamp, reuse_fits)
        if same:
            fits[method], seconds[method] = FitResult.read(out / method), json.loads(done.read_text())["seconds"]
            codes[method] = json.loads(done.read_text())["settings"]["code"]
            continue
        t0 = time.perf_counter()
        smc = SMCConfig(**LONG_SMC) if method == "smc-long" else SMCConfig(particles=particles)
        nuts = NUTSConfig(**LONG_NUTS) if method == "nuts-long" else NUTSConfig()
        fits[method] = fit_catalog(catalog, method.removesuffix("-long"), prior=PRIOR, seed=0, fallback=None, smc=smc,
                                   config=nuts)
        seconds[method] = time.perf_counter() - t0
        fits[method].write(out / method)
        done.write_text(json.dumps({"settings": stamp, "seconds": seconds[method]}))
        codes[method] = stamp["code"]
    brute_force = BruteForce(model, fits["nuts"].posterior["nuts_chains"].sizes["chain"] + 2)
    rows = []
    for i, star in enumerate(np.asarray(table["id"]).astype(str)):
        locs, trils = components(fits, star)
        # modes from the NUTS chains' components only: a t fitted to all of a multimodal SMC or NPE-IS set sits
        # between the modes and would merge them; those components only propose
        n_chain = len(locs) - 2
        chain_labels = np.asarray(same_mode(jnp.asarray(locs[:n_chain]),
                                            jnp.asarray(np.einsum("kij,klj->kil", trils, trils)[:n_chain])))
        x, w, ess, n = brute_force(jax.random.key(1000 + i), catalog.err[i], catalog.mask[i], catalog.mag[i],
                                   locs, trils, min_ess, max_draws)
        modes = np.unique(chain_labels)
        ref_mode = mode_of(x, locs[:n_chain], trils[:n_chain], chain_labels)
        ref_weight = np.array([w[ref_mode == m].sum() for m in modes])
        ref_q = np.stack([weighted_quantiles(x[:, j], w, QUANTILES) for j in range(5)])  # (param, q)
        ref_sd = np.sqrt(np.array([np.sum(w * (x[:, j] - np.sum(w * x[:, j])) ** 2) for j in range(5)]))
        keep = np.random.default_rng(i).choice(len(x), size=4000, p=w)
        row = {"id": star, "kind": str(table["kind"][i]), "ref_ess": ess, "ref_draws": n, "n_modes": len(modes),
               "ref_major_weight": float(ref_weight.max())}
        iid = x[np.random.default_rng(10_000 + i).choice(len(x), size=IID_DRAWS, p=w)]
        iid_q = np.stack([np.percentile(iid[:, j], QUANTILES) for j in range(5)])
        row["iid_q_err"] = float(np.max(np.abs(iid_q - ref_q) / ref_sd[:, None]))
        def score(name: str, y: np.ndarray) -> None:
            y_mode = mode_of(y, locs[:n_chain], trils[:n_chain], chain_labels)
            weight = np.array([np.mean(y_mode == m) for m in modes])
            q = np.stack([np.percentile(y[:, j], QUANTILES) for j in range(5)])
            row[f"{name}_mode_err"] = float(np.max(np.abs(weight - ref_weight)))
            row[f"{name}_q_err"] = float(np.max(np.abs(q - ref_q) / ref_sd[:, None]))
            row[f"{name}_swd"] = sliced_wasserstein(x[keep], y, ref_sd)

        draws = {}
        for method in METHODS:
            post = fits[method].posterior["posterior"].sel(star=star)
            draws[method] = np.stack([post[p].values.ravel() for p in PARAMS], -1)
            score(method, draws[method])
            row[f"{method}_trusted"] = bool(fits[method].summary["trusted"][i])
        for name, (nuts, smc, _) in REFERENCES.items():  # cross-checked references, as `sedppl compare` builds them
            check = reference_check(fits, i, draws, name)
            n_ref = min(len(draws[nuts]), len(draws[smc]))
            score(name, pooled({e: draws[m] for e, m in {"nuts": nuts, "smc": smc}.items()}, check.sources, n_ref))
            row |= check_columns(name, check)
        rows.append(row)
        print(star, {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items() if "err" in k})
    result = Table(rows)
    result.write(out / "exact_reference.parquet", overwrite=True)
    return write_report(result, seconds, out, per_kind, min_ess, particles, codes, max_draws)


def reference_check(fits: dict, i: int, draws: dict[str, np.ndarray], name: str):
    """Star ``i``'s cross-checked reference ``name`` (``REFERENCES``), as `sedppl compare` builds it."""
    nuts, smc, min_ess = REFERENCES[name]
    engines = {"nuts": nuts, "smc": smc}
    summary = {e: fits[m].summary[i] for e, m in engines.items()}
    return cross_check({e: draws[m] for e, m in engines.items()}, {e: bool(r["trusted"]) for e, r in summary.items()},
                       {e: min(r["ess_bulk_min"], r["ess_tail_min"]) for e, r in summary.items()}, min_ess=min_ess)


def check_columns(name: str, check) -> dict:
    return {f"{name}_label": check.label, f"{name}_gap": check.gap, f"{name}_gap_z": check.gap_z,
            f"{name}_ess": check.ess, f"{name}_trusted": check.trusted}


def rewrite_report(out: Path, per_kind: int, min_ess: float, max_draws: int, particles: int) -> Path:
    """The report again from the per-star table and the cached fits, without drawing the brute force
    again: each reference's label, trust and ESS are rebuilt from the fits (its sources, and so its
    scores against the brute force, do not depend on the ESS it is asked for)."""
    import json

    from sedppl.io.fit import FitResult

    studies = {m: json.loads((out / m / "study.json").read_text()) for m in METHODS}
    fits = {m: FitResult.read(out / m) for m in METHODS}
    r = Table.read(out / "exact_reference.parquet")
    columns: dict[str, list] = {}
    for i, star in enumerate(np.asarray(r["id"]).astype(str)):
        draws = {}
        for m in METHODS:
            post = fits[m].posterior["posterior"].sel(star=star)
            draws[m] = np.stack([post[p].values.ravel() for p in PARAMS], -1)
        for name in REFERENCES:
            for column, value in check_columns(name, reference_check(fits, i, draws, name)).items():
                columns.setdefault(column, []).append(value)
    for column, values in columns.items():  # whole columns: a longer label must not be cut to the old width
        r[column] = values
    r.write(out / "exact_reference.parquet", overwrite=True)
    return write_report(r, {m: v["seconds"] for m, v in studies.items()}, out, per_kind, min_ess, particles,
                        {m: v["settings"]["code"] for m, v in studies.items()}, max_draws)


def _same_fit(cached: dict, stamp: dict, reuse_fits: bool) -> bool:
    """Whether a cached fit is this one: same settings and stars, and same sedppl code unless ``reuse_fits``
    (then the report names the code each fit came from)."""
    if reuse_fits:
        cached, stamp = ({k: v for k, v in d.items() if k != "code"} for d in (cached, stamp))
    return cached == stamp


def write_report(r: Table, seconds: dict, out: Path, per_kind: int, min_ess: float, particles: int,
                 codes: dict, max_draws: int = 2**20) -> Path:
    n = len(r)
    options = (f" --per-kind {per_kind}" + (" --reuse-fits" if len(set(codes.values())) > 1 else "")
               + (f" --min-ess {min_ess:g}" if min_ess != 4000 else "")
               + (f" --max-draws {max_draws}" if max_draws != 2**20 else ""))
    lines = [f"# Every sampler against a brute-force reference ({date.today()})", "",
             f"`python validation/exact_reference.py{options}` "
             f"({n} hard stars; SMC {particles} "
             f"particles; reference ESS >= {min_ess:g}: {int(np.sum(r['ref_ess'] >= min_ess))}/{n} stars; "
             f"{int(np.sum(r['n_modes'] > 1))} stars with more than one mode, minor-mode mass "
             f"{np.median(1 - r['ref_major_weight'][r['n_modes'] > 1]) if np.any(r['n_modes'] > 1) else 0:.3f} median).", "",
             f"Targets: mode weights within {MODE_TOL}, 16/50/84% quantiles within {QUANTILE_TOL} reference sd.", "",
             "| method | s/star | trusted | mode weights ok | quantiles ok | both ok | both ok, trusted stars | "
             "median q err (sd) | 90% q err | median SWD |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in METHODS:
        mode_ok, q_ok, trusted = r[f"{m}_mode_err"] <= MODE_TOL, r[f"{m}_q_err"] <= QUANTILE_TOL, r[f"{m}_trusted"]
        both = mode_ok & q_ok
        lines.append(f"| {m} | {seconds[m] / n:.2f} | {int(trusted.sum())}/{n} | {int(mode_ok.sum())}/{n} | "
                     f"{int(q_ok.sum())}/{n} | {int(both.sum())}/{n} | {int((both & trusted).sum())}/{int(trusted.sum())} | "
                     f"{np.median(r[f'{m}_q_err']):.3f} | {np.percentile(r[f'{m}_q_err'], 90):.3f} | "
                     f"{np.median(r[f'{m}_swd']):.3f} |")
    lines += ["", "**The cross-checked reference** (`diagnostics.crosscheck`, as `sedppl compare` builds it): NUTS "
              "and SMC on every star; the engines whose diagnostics pass are pooled, provided their 16/50/84% "
              f"quantiles agree within {AGREE_Z:g} Monte Carlo standard errors (on the probability scale, from "
              "the engines' ESS); a disagreement makes the star *disputed* (untrusted) "
              "even when one engine passes. `reference` pairs NUTS with SMC as `compare` runs it, `reference-long` "
              "NUTS with smc-long, `reference-grade` nuts-long with smc-long (`sedppl compare --reference-grade`: "
              "--draws 4000 --particles 1024 --final-moves 16), where a reference of fewer than "
              f"{REFERENCE_GRADE['min_reference_ess']:g} effective draws is *imprecise*: its 16/84% quantiles carry a "
              "Monte Carlo error of 1.507/sqrt(ESS) sd, and all 15 stay within 0.1 sd with ~95% probability only "
              "from about 2000 (`crosscheck.PRECISE_ESS`).", "",
              "| reference | trusted | nuts+smc / nuts / smc | disputed | imprecise | none | mode weights ok, trusted | "
              "quantiles ok, trusted | median q err, trusted (sd) | largest q err, trusted |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in REFERENCES:
        t = np.asarray(r[f"{name}_trusted"], bool)
        label = np.asarray(r[f"{name}_label"])
        count = {k: int(np.sum(label == k)) for k in LABELS}
        q, mode = np.asarray(r[f"{name}_q_err"]), np.asarray(r[f"{name}_mode_err"])
        lines.append(f"| {name} | {int(t.sum())}/{n} | {count['nuts+smc']} / {count['nuts']} / {count['smc']} | "
                     f"{count['disputed']} | {count['imprecise']} | {count['none']} | "
                     f"{int((mode[t] <= MODE_TOL).sum())}/{int(t.sum())} | "
                     f"{int((q[t] <= QUANTILE_TOL).sum())}/{int(t.sum())} | {np.median(q[t]):.3f} | {q[t].max():.3f} |")
    disputed = np.asarray(r["reference_label"]) == "disputed"
    if disputed.any():
        lines += ["", "Disputed stars (reference): " + ", ".join(
            f"{s} (gap {g:.2f} sd, {z:.1f} standard errors; nuts q err {a:.2f}, smc {b:.2f})" for s, g, z, a, b in zip(
                r["id"][disputed], r["reference_gap"][disputed], r["reference_gap_z"][disputed],
                r["nuts_q_err"][disputed], r["smc_q_err"][disputed])) + "."]
    iid_ok = r["iid_q_err"] <= QUANTILE_TOL
    lines += ["",
              f"**Monte Carlo floor**: {IID_DRAWS} independent draws of the brute-force posterior itself meet the "
              f"quantile target on {int(iid_ok.sum())}/{n} stars (median error {np.median(r['iid_q_err']):.3f}, "
              f"90% {np.percentile(r['iid_q_err'], 90):.3f} sd): the error is the largest of 15 quantiles, so a "
              f"sampler with ~{IID_DRAWS} effective draws misses 0.1 sd on some stars by chance alone. smc-long "
              f"({LONG_SMC['particles']} particles, {LONG_SMC['final_moves']} moves at the posterior) is SMC run "
              "for a reference; its row shows what the error becomes with more draws.", ""]
    lines += ["", "Per kind, quantile error (median over stars, reference sds):", "",
              "| kind | " + " | ".join(METHODS) + " |", "|---|" + "---|" * len(METHODS)]
    for kind in np.unique(r["kind"]):
        sel = r["kind"] == kind
        lines.append(f"| {kind} | " + " | ".join(f"{np.median(r[f'{m}_q_err'][sel]):.3f}" for m in METHODS) + " |")
    lines += ["", "Seconds per star include compilation (one per method)."]
    if len(set(codes.values())) > 1:
        lines += ["", "Fits reused across code versions (`--reuse-fits`; sedppl code fingerprint per method): "
                  + ", ".join(f"{m} `{c}`" for m, c in codes.items()) + "."]
    lines += ["",
              f"Per star: `{shown_path(out / 'exact_reference.parquet')}`."]
    path = out / "exact_reference.md"
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=13)
    ap.add_argument("--min-ess", type=float, default=4000.0)  # issue 20 asks >= 2000; 4000 halves the reference's own noise
    ap.add_argument("--max-draws", type=int, default=2**20)
    ap.add_argument("--particles", type=int, default=512)
    ap.add_argument("--out", type=Path, default=ROOT / "validation" / "results" / "exact_reference")
    ap.add_argument("--reuse-fits", action="store_true",
                    help="reuse cached fits of the same stars and settings made by other sedppl code (the report "
                    "names each fit's code); for rescoring after a change that no sampler sees")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite the report from the per-star table of the last run (same options)")
    args = ap.parse_args(argv)
    if args.report_only:
        print(rewrite_report(args.out, args.per_kind, args.min_ess, args.max_draws, args.particles))
        return
    print(run(args.per_kind, args.out, args.min_ess, args.max_draws, args.particles, args.reuse_fits))


if __name__ == "__main__":
    main()
