"""The coordinates the exact samplers move in, when NumPyro's default map is not the best one.

NumPyro maps a bounded parameter to the real line with a logit. A_V's posterior
often lies within a few tenths of a magnitude of its floor, where the logit is
a logarithm: the Teff-A_V ridge, straight in A_V, becomes an exponential curve
whose curvature one step size cannot follow. ``soft_floor`` maps A_V with a
softplus instead, linear from a few ``scale`` above the floor and logarithmic
only below, so the ridge stays straight where the posterior usually is.

Only the sampler's coordinates change: the density of the parameters is the
model's own (NumPyro adds the new map's Jacobian), so the posterior is the same.
Measured against the logit in ``validation/divergences.py``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import AffineTransform, ComposeTransform, SoftplusTransform, biject_to
from numpyro.primitives import Messenger

AV_SOFT_FLOOR = 0.05  # mag: the softplus is linear from ~3 x this above A_V's floor


class _SoftFloor(constraints._GreaterThan):
    """x > lower_bound, reached from the real line by lower_bound + scale * softplus(u / scale)."""

    def __init__(self, lower_bound, scale: float):
        super().__init__(lower_bound)
        self.scale = scale

    def tree_flatten(self):
        return (self.lower_bound,), (("lower_bound",), {"scale": self.scale})


@biject_to.register(_SoftFloor)
def _soft_floor_map(constraint: _SoftFloor):
    s = constraint.scale
    return ComposeTransform([AffineTransform(0.0, 1.0 / s), SoftplusTransform(), AffineTransform(constraint.lower_bound, s)])


class SoftFloored(dist.Distribution):
    """``base`` (support an interval [low, high]) with its support given as (low, inf), so that samplers
    reach it through a softplus; the density is ``base``'s, and zero above ``high``."""

    arg_constraints = {}
    pytree_data_fields = ("base",)
    pytree_aux_fields = ("scale",)

    def __init__(self, base: dist.Distribution, scale: float):
        self.base, self.scale = base, scale
        super().__init__(batch_shape=base.batch_shape, event_shape=base.event_shape)

    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return _SoftFloor(self.base.support.lower_bound, self.scale)

    def sample(self, key, sample_shape=()):
        return self.base.sample(key, sample_shape)

    def log_prob(self, value):
        inside = (value >= self.base.support.lower_bound) & (value <= self.base.support.upper_bound)
        return jnp.where(inside, self.base.log_prob(value), -jnp.inf)


class soft_floor(Messenger):
    """Handler: the named sample sites reached through a softplus (``SoftFloored``) instead of a logit."""

    def __init__(self, fn=None, sites: dict[str, float] | None = None):
        self.sites = dict(sites or {})
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.sites and not msg["is_observed"]:
            msg["fn"] = SoftFloored(msg["fn"], self.sites[msg["name"]])


def sampler_coordinates(model, av_map: str = "logit"):
    """``model`` as the samplers see it: NumPyro's logit maps (``"logit"``), or A_V through a softplus
    (``"softplus"``)."""
    if av_map == "logit":
        return model
    if av_map == "softplus":
        return soft_floor(model, {"av": AV_SOFT_FLOOR})
    raise ValueError(f"av_map must be 'logit' or 'softplus', got {av_map!r}")
