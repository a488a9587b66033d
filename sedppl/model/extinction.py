"""Fitzpatrick (1999) extinction at free R_V, in JAX.

The curve follows the `extinction` package's ``fitzpatrick99`` (itself the
Goddard IDL ``FM_UNRED``): the Fitzpatrick & Massa (1990) form for
lambda < 2700 A and a natural cubic spline through nine anchors in 1/lambda
elsewhere. The spline's first anchor sits at 1/lambda = 0 with zero
extinction, so the curve is defined at every wavelength redwards of 2.65 um:
that is how WISE W1 and W2 (2.6-5.6 um) are covered, exactly as in
``extinction.fitzpatrick99`` up to its 6 um limit.

On a fixed wavelength grid the whole curve is linear in six features of R_V:
the spline is linear in its anchors, the optical anchors are polynomials in
R_V up to R_V^4, and the FM90 coefficients are linear in 1/R_V. So
``Fitzpatrick99`` evaluates the curve once per feature at build time, and one
call per star is a (n_wave x 6) matrix times ``rv_features(rv)``.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float
from scipy.interpolate import CubicSpline

# Anchor wavenumbers [1/um]: IR (3), optical (4), UV (2), and the 2700 A switch.
_ANCHORS_INV_UM = np.array(
    [0.0, 1e4 / 26500, 1e4 / 12200, 1e4 / 6000, 1e4 / 5470, 1e4 / 4670, 1e4 / 4110, 1e4 / 2700, 1e4 / 2600]
)
_UV_SWITCH_INV_UM = 1e4 / 2700
_X0, _GAMMA, _C3, _C4 = 4.596, 0.99, 3.23, 0.41


def _fm90_k(x, rv):
    """E(lambda - V)/E(B - V) of Fitzpatrick & Massa (1990) with F99's R_V coefficients."""
    c2 = -0.824 + 4.717 / rv
    c1 = 2.030 - 3.007 * c2
    drude = x**2 / ((x**2 - _X0**2) ** 2 + (x * _GAMMA) ** 2)
    y = np.clip(x - 5.9, 0.0, None)
    far_uv = 0.5392 * y**2 + 0.05644 * y**3
    return c1 + c2 * x + _C3 * drude + _C4 * far_uv


def _anchor_values(rv: float) -> np.ndarray:
    """A(lambda)/E(B-V) at the nine spline anchors, as functions of R_V."""
    ir = np.array([0.0, 0.26469, 0.82925]) * rv / 3.1
    optical = np.stack(
        [
            -0.422809 + 1.00270 * rv + 2.13572e-04 * rv**2,
            -5.13540e-02 + 1.00216 * rv - 7.35778e-05 * rv**2,
            0.700127 + 1.00184 * rv - 3.32598e-05 * rv**2,
            1.19456 + 1.01707 * rv - 5.46959e-03 * rv**2 + 7.97809e-04 * rv**3 - 4.45636e-05 * rv**4,
        ]
    )
    uv = _fm90_k(_ANCHORS_INV_UM[7:], rv) + rv
    return np.concatenate([ir, optical, uv])


def _spline_basis(x: np.ndarray) -> np.ndarray:
    """Natural-cubic-spline basis through the anchors, evaluated at wavenumbers x: (len(x), 9)."""
    eye = np.eye(len(_ANCHORS_INV_UM))
    return np.stack([CubicSpline(_ANCHORS_INV_UM, e, bc_type="natural")(x) for e in eye], axis=1)


def a_over_av(x: np.ndarray, rv: float) -> np.ndarray:
    """A_lambda / A_V at wavenumbers x [1/um] (float64, build time)."""
    a_over_ebv = np.where(x >= _UV_SWITCH_INV_UM, _fm90_k(x, rv) + rv, _spline_basis(x) @ _anchor_values(rv))
    return a_over_ebv / rv


def rv_features(rv: ArrayLike) -> Float[Array, " 6"]:
    """The six functions of R_V that A_lambda / A_V is linear in."""
    rv = jnp.asarray(rv)
    return jnp.stack([1.0 / rv, jnp.ones_like(rv), rv, rv**2, rv**3, 1.0 / rv**2])


_FEATURE_NODES = np.array([2.0, 2.5, 3.1, 4.0, 5.0, 6.0])


class Fitzpatrick99(eqx.Module):
    """A_lambda / A_V on a fixed wavelength grid, as a function of R_V.

    Build once per wavelength grid; call with a scalar R_V (vmap over stars).
    """

    wavelength_aa: Float[Array, " n"]
    basis: Float[Array, "n 6"]

    def __init__(self, wavelength_aa: ArrayLike):
        wave = np.asarray(wavelength_aa, dtype=np.float64)
        if np.any(wave < 910.0):
            raise ValueError("Fitzpatrick (1999) is not defined bluewards of 910 A.")
        x = 1e4 / wave
        # Solve for the basis from the exact curve at six R_V values (the system is exactly linear).
        features = np.stack([[1 / rv, 1.0, rv, rv**2, rv**3, 1 / rv**2] for rv in _FEATURE_NODES])
        curves = np.stack([a_over_av(x, rv) for rv in _FEATURE_NODES])
        self.wavelength_aa = jnp.asarray(wave)
        self.basis = jnp.asarray(np.linalg.solve(features, curves).T)

    def __call__(self, rv: ArrayLike) -> Float[Array, " n"]:
        return self.basis @ rv_features(jnp.asarray(rv, dtype=self.basis.dtype))


def fitzpatrick99(wavelength_aa: ArrayLike, rv: ArrayLike) -> Float[Array, " n"]:
    """A_lambda / A_V at arbitrary wavelengths [A] (convenience; builds the basis each call)."""
    return Fitzpatrick99(wavelength_aa)(rv)
