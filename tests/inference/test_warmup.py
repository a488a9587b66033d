"""Our step-by-step warm-up against BlackJAX's own window adaptation."""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sedppl.inference.warmup import schedule, window_adaptation

COV = jnp.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 2.0]])


def logdensity(x):
    return -0.5 * x @ jnp.linalg.solve(COV, x)


def ours(key, x0, steps, target, dense):
    kernel, adaptation = blackjax.nuts.build_kernel(), window_adaptation(target, dense)
    stages = schedule(steps, steps)

    def step(carry, x):
        state, adapt = carry
        k, stage, end = x
        state, info = kernel(k, state, logdensity, adapt.step_size, adapt.inverse_mass_matrix)
        return (state, adaptation.update(adapt, stage, end, state.position, info.acceptance_rate)), None

    (state, adapt), _ = jax.lax.scan(step, (blackjax.nuts.init(x0, logdensity), adaptation.init(x0)),
                                     (jax.random.split(key, steps), stages[:, 0], stages[:, 1] == 1))
    return state, *adaptation.final(adapt)


@pytest.mark.parametrize("dense", [True, False])
def test_warmup_step_by_step_equals_blackjax_window_adaptation(dense):
    key, x0, steps, target = jax.random.key(4), jnp.array([2.0, -1.0, 0.5]), 300, 0.9
    (state, params), _ = blackjax.window_adaptation(blackjax.nuts, logdensity, is_mass_matrix_diagonal=not dense,
                                                    target_acceptance_rate=target).run(key, x0, num_steps=steps)
    our_state, step_size, imm = ours(key, x0, steps, target, dense)
    np.testing.assert_allclose(step_size, params["step_size"], rtol=1e-5)
    np.testing.assert_allclose(imm, params["inverse_mass_matrix"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(our_state.position, state.position, rtol=1e-5, atol=1e-6)
    # the tuning learned something: the dense estimate finds the correlation
    if dense:
        assert float(imm[0, 1]) > 0.3


def test_schedule_marks_only_the_warmup():
    stages = schedule(100, 150)
    assert stages.shape == (150, 2) and stages[:100, 0].any() and stages[:100, 1].any()
    assert not stages[100:].any()
    assert not schedule(0, 10).any()
