"""Inference engines on the one model: NUTS (BlackJAX, NumPyro reference), NPE, importance sampling.

Not built yet: see the NUTS, NPE and importance-sampling issues.
"""
