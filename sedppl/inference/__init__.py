"""Inference engines on the one model: NUTS with mode weights (``nuts``, ``modes``; NumPyro as the reference),
tempered SMC (``smc``), NPE (flowjax + Equinox, ``npe``) and importance sampling of NPE draws (``importance``)."""
