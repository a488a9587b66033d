"""What one compiled call of the exact engines asks of memory: XLA's own account of the program.

    python benchmarks/bench_memory.py [--stars 4] [--batch vmap]

Compiles (without running) NUTS's call of ``--stars`` simulated stars at the defaults and prints the
program's temporaries and outputs (``memory_analysis()``), per call and per star: a vmapped call on a GPU
needs about stars × the per-star figure.
"""

from __future__ import annotations

import argparse

import jax


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stars", type=int, default=4)
    parser.add_argument("--batch", default="vmap", choices=("map", "vmap"))
    args = parser.parse_args()
    from sedppl.inference.batching import _call, _prepared, chunks
    from sedppl.inference.nuts import NUTSConfig, NUTSSampler
    from sedppl.io.catalog import read_catalog
    from sedppl.model.generative import sed_model
    from sedppl.model.simulate import simulate_catalog

    model = sed_model()
    catalog = read_catalog(simulate_catalog(jax.random.key(3), args.stars, model))
    sampler = NUTSSampler(model, NUTSConfig(stars_per_call=args.stars, batch=args.batch, retry=False))
    prepared = _prepared(jax.random.key(0), catalog.err, catalog.mask, catalog.mag,
                         [None, sampler._init(args.stars, None)])
    _, slots, valid, _ = next(chunks(args.stars, args.stars))
    memory = sampler._compiled.lower(*_call(prepared, slots, valid)).compile().memory_analysis()
    for name in ("temp", "output"):
        size = getattr(memory, f"{name}_size_in_bytes")
        print(f"{name}: {size / 1e6:.1f} MB per call of {args.stars} stars, {size / args.stars / 1e6:.2f} MB per star")


if __name__ == "__main__":
    main()
