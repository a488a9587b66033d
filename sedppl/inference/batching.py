"""What the exact engines (NUTS, SMC) share around a sampler of one star: stars in compiled chunks,
split over devices, and the angular diameter drawn exactly afterwards."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..model.forward import PARAMS
from ..model.generative import SEDModel, sample_log10_theta
from .coordinates import sampler_coordinates

STEPS_PER_REPORT = 50  # sampler steps between two reports of a running call (``report_steps``)
THETA_BATCH = 250  # draws whose angular diameters are drawn side by side (``exact_theta``): bounds the memory
_LISTENERS: list = []  # ``listen_to_steps``


def scale_marginal_potential(model: SEDModel, av_map: str = "logit"):
    """(the scale-marginalised model, that model in the sampler's coordinates, its NumPyro potential
    factory, its postprocess factory): the one log-density the exact engines sample, as functions of
    (err, mask, mag). ``av_map``: see ``coordinates.sampler_coordinates``.

    The steps of ``numpyro.infer.util.initialize_model`` that build these two functions, without its
    search for a valid starting point: the samplers choose their own starts, and that search ran the
    model's potential and gradient eagerly, 8-15 s for every sampler built (tests/inference/test_batching.py
    checks the functions against ``initialize_model``'s). Those steps are NumPyro internals; where a
    NumPyro version lacks them, ``initialize_model`` itself is used.
    """
    if not model.marginalize_scale:
        model = dataclasses.replace(model, marginalize_scale=True)
    sampled = sampler_coordinates(model, av_map)
    nb = len(model.bands)
    template = (jnp.full(nb, 0.05), jnp.ones(nb, bool), jnp.zeros(nb), None)
    return (model, sampled) + _potential_and_postprocess(sampled, template)


def _potential_and_postprocess(sampled, template):
    """NumPyro's (potential factory, postprocess factory) of ``sampled``, as ``initialize_model`` makes them."""
    from numpyro.handlers import seed
    from numpyro.infer import util

    try:
        inv_transforms, replay, enum, trace = util._get_model_transforms(seed(sampled, jax.random.key(0)), template)
        prepared = util._prepare_model_for_potential(sampled, trace, enum=enum)
    except (AttributeError, TypeError):  # internals of another NumPyro version (checked on 0.22)
        info = util.initialize_model(jax.random.key(0), sampled, model_args=template, dynamic_args=True)
        return info.potential_fn, info.postprocess_fn
    return util.get_potential_fn(prepared, inv_transforms, replay_model=replay, enum=enum, dynamic_args=True,
                                 model_args=template)


def row_keys(key, n: int):
    """One key per row: ``key`` itself when it already holds one per row (shape (n,)), else split from it.
    Callers that pass a key per star make each star's draws independent of the batch it lands in."""
    return key if jnp.shape(key) == (n,) else jax.random.split(key, n)


def fold_rows(keys, data: int):
    """Each row's key folded with ``data``: an independent stream per row for a second pass (a retry)."""
    return jax.vmap(lambda k: jax.random.fold_in(k, data))(keys)


def resolve_batch(batch: str = "auto") -> str:
    """"map" (stars one after another: CPU) or "vmap" (stars side by side: GPU) for "auto"."""
    if batch == "auto":
        return "map" if jax.default_backend() == "cpu" else "vmap"
    if batch not in ("map", "vmap"):
        raise ValueError(f"batch must be 'auto', 'map' or 'vmap', got {batch!r}")
    return batch


def over_stars(one, batch: str):
    """``one`` of one star's arguments -> a function of ``(valid, *block)`` over a block of stars.

    ``valid`` marks real rows; padding rows return zeros. "map" runs the stars one after another
    (``lax.map``) and skips padding with ``lax.cond``, so a block of fixed size -- one compiled program
    for every catalogue size -- costs only its real stars; "vmap" runs them side by side, padding included.
    """
    if batch == "vmap":
        side_by_side = jax.vmap(lambda valid, *x: one(*x))

        def call_of_stars(valid, *block):  # named: compile logs and timings say which program this is
            return side_by_side(valid, *block)

        return call_of_stars
    one = jax.jit(one)  # traced once: the shape of the padding branch comes from the same trace

    def star(x):
        valid, *args = x

        def skip():
            return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(one, *args))

        return jax.lax.cond(valid, lambda: one(*args), skip)

    def call_of_stars(valid, *block):
        return jax.lax.map(star, (valid, *block))

    return call_of_stars


def chunks(n: int, size: int, parts: int = 1):
    """(rows, slots, valid, positions) for each chunk of at most ``size`` rows out of ``n``.

    Every chunk fills ``size`` slots -- one shape, compiled once -- split into ``parts`` equal parts (one
    per device): ``slots`` says which row each slot holds (padding repeats a real row), ``valid`` which
    slots are real and ``positions`` the slot of each row (take outputs as ``out[positions]``). Real rows
    are dealt over the parts in turn, so that a short chunk keeps every device busy.
    """
    if size % parts:
        raise ValueError(f"{size} slots do not split evenly over {parts} devices")
    per_part = size // parts
    place = np.array([(j % parts) * per_part + j // parts for j in range(size)])
    for start in range(0, n, size):
        rows = np.arange(start, min(start + size, n))
        slots = np.full(size, rows[0])
        slots[place[: len(rows)]] = rows
        valid = np.zeros(size, bool)
        valid[place[: len(rows)]] = True
        yield rows, slots, valid, place[: len(rows)]


def compile_over_stars(run_one, batch: str = "auto"):
    """``run_one(key, err, mask, mag, ...)`` of one star -> a jitted function of ``(valid, *block)``.

    ``lax.map`` on CPU (a slow star does not hold back the others), ``vmap`` on
    GPU. With several local devices the block is split into equal parts and each
    device runs the same one-device program on its part, from its own thread so
    they run at once. (``shard_map`` compiled a different program per device
    count: the same star's NUTS medians came out up to 670 K apart on one CPU
    device and on two.)
    """
    run = jax.jit(over_stars(run_one, resolve_batch(batch)))
    devices = jax.local_devices()
    if len(devices) == 1:
        run.ahead = lambda *args: run.lower(*args).compile()
        return run

    def part_of(args, i: int, on) -> list:
        """Device ``i``'s equal part of a block's arguments, placed on it."""
        n = len(args[0])
        if n % len(on):
            raise ValueError(f"a block of {n} stars does not split evenly over {len(on)} devices")
        size = n // len(on)
        return jax.device_put(jax.tree.map(lambda a: a[i * size:(i + 1) * size], list(args)), on[i])

    def over_devices(*args, on=devices):
        """``on``: the device of each part (tests put every part on one device to compare)."""

        def part(i):  # one thread per device: a compiled call releases the GIL while it runs
            return jax.block_until_ready(run(*part_of(args, i, on)))

        with ThreadPoolExecutor(len(on)) as pool:
            parts = list(pool.map(part, range(len(on))))
        return jax.tree.map(lambda *x: np.concatenate([np.asarray(v) for v in x]), *parts)

    def ahead(*args):
        """Compile, without running, each device's program for these arguments (at once, as calls run)."""
        with ThreadPoolExecutor(len(devices)) as pool:
            list(pool.map(lambda i: run.lower(*part_of(args, i, devices)).compile(), range(len(devices))))

    over_devices.ahead = ahead
    return over_devices


def _prepared(key, err, mask, mag, per_star):
    """The rows as every call takes them: a key per row, absent bands filled in, NumPy arrays."""
    err, mask, mag = (np.asarray(a) for a in (err, mask, mag))
    mask = mask.astype(bool)
    per_star = [None if a is None else np.asarray(a) for a in per_star]
    return row_keys(key, len(mag)), np.where(mask, err, 1.0), mask, np.where(mask, mag, 0.0), per_star


def _call(prepared, slots, valid):
    """One call's arguments: the rows in ``slots``."""
    keys, err, mask, mag, per_star = prepared
    return (valid, keys[slots], err[slots], mask[slots], mag[slots],
            *(None if a is None else a[slots] for a in per_star))


def sample_in_chunks(compiled, key, err, mask, mag, stars_per_call: int, desc: str, progress: bool = True,
                     *per_star, batch: str = "auto", steps: int | None = None):
    """Every row through ``compiled(valid, keys, err, mask, mag, *per_star)`` in chunks of
    ``stars_per_call`` per device, every chunk padded to that size (``chunks``: one compilation for any
    catalogue; padding costs nothing under ``lax.map``): outputs stacked over rows, and each row's share
    of the wall time. A star's numbers do not depend on which stars or devices share its call.

    ``steps``: the length of the loop each star runs, when it calls ``report_steps``: the progress bar
    then moves during a call too (a call of thousands of stars on a GPU takes minutes), by the share of
    reports heard.
    """
    prepared = _prepared(key, err, mask, mag, per_star)
    n = len(prepared[3])
    devices = len(jax.local_devices())
    side_by_side = resolve_batch(batch) == "vmap"
    outputs, seconds = [], np.zeros(n)
    with tqdm(total=n, desc=desc, unit="star", disable=not progress) as bar:
        for rows, slots, valid, positions in chunks(n, stars_per_call * devices, devices):
            # reports per call: one per batch and device (vmap), one per real star (map: padding is skipped)
            reports = reports_in(steps or 0) * (devices if side_by_side else len(rows))
            t0 = time.perf_counter()
            with _moving(bar, len(rows), reports) if progress and reports else nullcontext():
                out = jax.block_until_ready(compiled(*_call(prepared, slots, valid)))
            seconds[rows] = (time.perf_counter() - t0) / len(rows)
            outputs.append(jax.tree.map(lambda a: np.asarray(a)[positions], out))
            bar.update(len(rows))
    return jax.tree.map(lambda *a: np.concatenate(a), *outputs), seconds


def compile_ahead(compiled, key, err, mask, mag, stars_per_call: int, *per_star) -> float:
    """Compile, without running, the program ``sample_in_chunks`` would run on these rows (its calls all
    share one shape); seconds taken. ``compiled``: from ``compile_over_stars``. A first call otherwise
    compiles and samples a whole padded call in one, which cannot be timed apart."""
    prepared = _prepared(key, err, mask, mag, per_star)
    if len(prepared[3]) == 0:
        raise ValueError("compiling a call needs at least one star (its rows give the call's shapes)")
    devices = len(jax.local_devices())
    _, slots, valid, _ = next(chunks(len(prepared[3]), stars_per_call * devices, devices))
    t0 = time.perf_counter()
    compiled.ahead(*_call(prepared, slots, valid))
    return time.perf_counter() - t0


def report_steps(step, every: int = STEPS_PER_REPORT) -> None:
    """Inside one star's loop over sampler steps, at the top of a step: when ``every`` more steps are done,
    tell the host (``listen_to_steps``). ``step`` must be the loop's own counter, the same for every star, so
    that under ``vmap`` one report stands for the whole batch (a counter that differs by star would make one
    report per star). A loop of ``n`` steps reports ``reports_in(n)`` times; nothing it computes changes."""
    jax.lax.cond((step > 0) & (step % every == 0), lambda: jax.debug.callback(partial(_heard, every)), lambda: None)


def reports_in(steps: int, every: int = STEPS_PER_REPORT) -> int:
    """How many reports a loop of ``steps`` steps makes (``report_steps``): the k-th says that k × ``every``
    steps are done (it comes at the top of the next step, so the loop's last block is never reported)."""
    return max(steps - 1, 0) // every


def _heard(steps: int) -> None:
    for listener in tuple(_LISTENERS):
        listener(steps)


@contextmanager
def listen_to_steps(listener):
    """Within the block, ``listener(steps)`` is called (from JAX's threads) each time a running call
    reports ``steps`` more steps done (``report_steps``). Calls running at once in one process are heard
    together."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


@contextmanager
def _moving(bar, stars: int, reports: int):
    """Moves ``bar`` through ``stars`` by the share of ``reports`` heard during the block (never past it)."""
    start, heard, lock = bar.n, [0], threading.Lock()

    def listener(_):
        with lock:
            heard[0] += 1
            bar.update(max(int(stars * min(heard[0] / reports, 1.0)) - (bar.n - start), 0))

    with listen_to_steps(listener):
        yield
    with lock:
        bar.update(start - bar.n)  # back to where the call began: the caller counts its stars


def exact_theta(key, model: SEDModel, params: dict, err, mask, mag, astrometry=None) -> dict:
    """{"theta_mas": ...} for every draw of the five parameters (any shape), from its exact conditional;
    with ``astrometry``, radius_rsun, distance_pc and mass_msun too (NaN for a star without a parallax).

    ``THETA_BATCH`` draws at a time: each holds ~10 kB of forward-model work, and all of a NUTS star's 4000
    at once made a vmapped call of 4096 stars ask for 46.5 GB (BENCHMARKS.md, "NUTS in lockstep")."""
    shape = params[PARAMS[0]].shape
    flat = jnp.stack([params[n].reshape(-1) for n in PARAMS], axis=-1)
    keys = jax.random.split(key, flat.shape[0])
    if astrometry is None:
        draw = lambda k, p: {"theta_mas": 10.0 ** sample_log10_theta(k, model, p, err, mask, mag)}  # noqa: E731
    else:
        draw = lambda k, p: model.sample_size_and_distance(k, p, err, mask, mag, astrometry)  # noqa: E731
    drawn = jax.lax.map(lambda a: draw(*a), (keys, flat), batch_size=min(THETA_BATCH, flat.shape[0]))
    return {name: v.reshape(shape) for name, v in drawn.items()}
