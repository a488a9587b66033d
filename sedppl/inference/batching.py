"""What the exact engines (NUTS, SMC) share around a sampler of one star: stars in compiled chunks,
split over devices, and the angular diameter drawn exactly afterwards."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec
from tqdm.auto import tqdm

from ..model.forward import PARAMS
from ..model.generative import SEDModel, sample_log10_theta


def scale_marginal_potential(model: SEDModel):
    """(the scale-marginalised model, its NumPyro potential factory, its postprocess factory): the one
    log-density the exact engines sample, as functions of (err, mask, mag)."""
    from numpyro.infer.util import initialize_model

    if not model.marginalize_scale:
        model = SEDModel(model.forward, model.prior, marginalize_scale=True)
    nb = len(model.bands)
    template = (jnp.full(nb, 0.05), jnp.ones(nb, bool), jnp.zeros(nb))
    info = initialize_model(jax.random.key(0), model, model_args=template, dynamic_args=True)
    return model, info.potential_fn, info.postprocess_fn


def compile_over_stars(run_one, batch: str = "auto"):
    """``run_one(key, err, mask, mag)`` of one star -> a jitted function of a block of stars.

    ``lax.map`` on CPU (a slow star does not hold back the others), ``vmap`` on
    GPU; with several local devices each gets an equal block (``shard_map``).
    """
    if batch == "auto":
        batch = "map" if jax.default_backend() == "cpu" else "vmap"
    if batch == "vmap":
        run = jax.vmap(run_one)
    else:
        run = lambda *a: jax.lax.map(lambda x: run_one(*x), a)  # noqa: E731
    devices = len(jax.local_devices())
    if devices > 1:
        mesh = jax.make_mesh((devices,), ("star",), axis_types=(jax.sharding.AxisType.Auto,))
        run = jax.shard_map(run, mesh=mesh, in_specs=PartitionSpec("star"), out_specs=PartitionSpec("star"),
                            check_vma=False)
    return jax.jit(run)


def sample_in_chunks(compiled, key, err, mask, mag, stars_per_call: int, desc: str, progress: bool = True,
                     *per_star):
    """Every row through ``compiled(keys, err, mask, mag, *per_star)`` in fixed-size chunks (one
    compilation): outputs stacked over rows, and each row's share of the wall time."""
    err, mask, mag = (np.asarray(a) for a in (err, mask, mag))
    per_star = [np.asarray(a) for a in per_star]
    mask = mask.astype(bool)
    err, mag = np.where(mask, err, 1.0), np.where(mask, mag, 0.0)
    n = len(mag)
    devices = len(jax.local_devices())
    size = min(stars_per_call, n)  # a short catalog is not padded to a full chunk
    size = -(-size // devices) * devices
    keys = jax.random.split(key, n)
    chunks, seconds = [], np.zeros(n)
    with tqdm(total=n, desc=desc, unit="star", disable=not progress) as bar:
        for start in range(0, n, size):
            rows = np.arange(start, min(start + size, n))
            padded = np.resize(rows, size)
            t0 = time.perf_counter()
            out = jax.block_until_ready(compiled(keys[padded], err[padded], mask[padded], mag[padded],
                                                 *(a[padded] for a in per_star)))
            seconds[rows] = (time.perf_counter() - t0) / len(rows)
            chunks.append(jax.tree.map(lambda a: np.asarray(a)[: len(rows)], out))
            bar.update(len(rows))
    return jax.tree.map(lambda *a: np.concatenate(a), *chunks), seconds


def exact_theta(key, model: SEDModel, params: dict, err, mask, mag):
    """theta_mas for every draw of the five parameters (any shape), from its exact conditional."""
    shape = params[PARAMS[0]].shape
    flat = jnp.stack([params[n].reshape(-1) for n in PARAMS], axis=-1)
    keys = jax.random.split(key, flat.shape[0])
    draw = lambda k, p: sample_log10_theta(k, model, p, err, mask, mag)  # noqa: E731
    return 10.0 ** jax.vmap(draw)(keys, flat).reshape(shape)
