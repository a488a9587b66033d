"""Stan's window adaptation as a per-step update, so that warm-up and draws share one NUTS kernel.

BlackJAX's ``window_adaptation`` runs warm-up as its own scan, and drawing
afterwards needs a second scan with a second copy of the NUTS kernel: the
compiled program then holds the log-density's gradient and the tree builder
twice, and compiling it takes most of a first fit. Here the same schedule
(Stan's fast / doubling slow windows / fast), dual averaging of the step size
and Welford estimate of the mass matrix are exposed one step at a time, built
from BlackJAX's own parts, so that ``nuts`` can run warm-up and draws as one
scan whose body calls the kernel once. ``tests/inference/test_warmup.py`` checks
that the tuned step size and mass matrix equal ``blackjax.window_adaptation``'s.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from blackjax.adaptation.mass_matrix import mass_matrix_adaptation
from blackjax.adaptation.step_size import dual_averaging_adaptation
from blackjax.adaptation.window_adaptation import build_schedule


class AdaptationState(NamedTuple):
    """One chain's warm-up state and the kernel parameters in force."""

    step_size_state: tuple
    mass_matrix_state: tuple
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


class WindowAdaptation(NamedTuple):
    """``init(position)``, ``update(state, stage, window_end, position, acceptance)``, ``final(state)``."""

    init: Callable
    update: Callable
    final: Callable


def schedule(warmup: int, total: int) -> np.ndarray:
    """(total, 2) int: per step, Stan's stage (0 fast, 1 slow) and whether a slow window ends there;
    steps from ``warmup`` on (the draws) are marked fast and never read."""
    stages = np.zeros((total, 2), np.int32)
    if warmup:
        with jax.ensure_compile_time_eval():  # a constant of the program, also when called under jit
            stages[:warmup] = np.asarray(build_schedule(warmup), np.int32)
    return stages


def window_adaptation(target_accept: float, dense_mass: bool, initial_step_size: float = 1.0) -> WindowAdaptation:
    """Stan's warm-up for one chain, as ``blackjax.window_adaptation`` does it, one step at a time."""
    mm_init, mm_update, mm_final = mass_matrix_adaptation(is_diagonal_matrix=not dense_mass)
    da_init, da_update, da_final = dual_averaging_adaptation(target_accept)

    def init(position) -> AdaptationState:
        flat = ravel_pytree(position)[0]
        mm = mm_init(flat.size)
        return AdaptationState(da_init(initial_step_size), mm, jnp.asarray(initial_step_size, flat.dtype),
                               mm.inverse_mass_matrix)

    def update(state: AdaptationState, stage, window_end, position, acceptance) -> AdaptationState:
        da = da_update(state.step_size_state, acceptance)
        mm = jax.lax.cond(stage == 1, lambda m: mm_update(m, position), lambda m: m, state.mass_matrix_state)
        state = AdaptationState(da, mm, jnp.exp(da.log_step_size), state.inverse_mass_matrix)

        def end_of_slow_window(s: AdaptationState) -> AdaptationState:
            # the mass matrix from this window; the step size restarts from the window's average
            mm = mm_final(s.mass_matrix_state)
            da = da_init(da_final(s.step_size_state))
            return AdaptationState(da, mm, jnp.exp(da.log_step_size), mm.inverse_mass_matrix)

        return jax.lax.cond(window_end, end_of_slow_window, lambda s: s, state)

    def final(state: AdaptationState) -> tuple[jax.Array, jax.Array]:
        return jnp.exp(state.step_size_state.log_step_size_avg), state.mass_matrix_state.inverse_mass_matrix

    return WindowAdaptation(init, update, final)
