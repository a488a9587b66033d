"""Stars in fixed-size chunks: every row once, padding skipped, one compiled program for any catalogue."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.inference.batching import chunks, over_stars, sample_in_chunks


def test_chunks_hold_every_row_once_in_fixed_size_blocks_dealt_over_devices():
    seen = []
    for rows, slots, valid, positions in chunks(11, 8, parts=2):
        assert slots.shape == valid.shape == (8,)
        np.testing.assert_array_equal(slots[positions], rows)
        assert valid.sum() == len(rows) and np.all(valid[positions])
        seen.extend(rows)
    assert seen == list(range(11))
    # the 3 rows of the last chunk: two on the first device's half, one on the second's
    *_, (rows, slots, valid, positions) = chunks(11, 8, parts=2)
    assert list(valid[:4].nonzero()[0]) == [0, 1] and list(valid[4:].nonzero()[0]) == [0]
    with pytest.raises(ValueError, match="split evenly"):
        next(chunks(4, 5, parts=2))


@pytest.mark.parametrize("batch", ["map", "vmap"])
def test_padding_rows_are_zeros_and_real_rows_as_alone(batch):
    def one(x):
        return {"y": jnp.sin(x) * 2.0, "n": jnp.ones((), jnp.int32)}

    run = jax.jit(over_stars(one, batch))
    x = jnp.arange(4.0)
    out = run(jnp.array([True, False, True, False]), x)
    np.testing.assert_array_equal(out["y"][jnp.array([0, 2])], 2.0 * jnp.sin(x[jnp.array([0, 2])]))
    if batch == "map":  # skipped, not computed
        np.testing.assert_array_equal(out["n"], [1, 0, 1, 0])


def test_any_catalogue_size_runs_the_same_compiled_program():
    def one(key, err, mask, mag):
        return jnp.sum(jnp.where(mask, mag / err, 0.0)) + jax.random.normal(key)

    run = jax.jit(over_stars(one, "map"))
    rng = np.random.default_rng(0)
    mag, err = rng.normal(10, 1, (7, 3)), np.full((7, 3), 0.1)
    mask = np.ones((7, 3), bool)
    keys = jax.random.split(jax.random.key(0), 7)
    every, _ = sample_in_chunks(run, keys, err, mask, mag, 4, "t", False)
    first_three, _ = sample_in_chunks(run, keys[:3], err[:3], mask[:3], mag[:3], 4, "t", False)
    assert run._cache_size() == 1  # 7 stars (two chunks) and 3 stars: one shape, one compilation
    np.testing.assert_array_equal(every[:3], first_three)  # a star's number does not depend on its chunk
