"""Inference engines on the one model: NUTS (BlackJAX, NumPyro reference) and NPE (flowjax + Equinox).

Importance sampling and prior swapping are the next issue.
"""
