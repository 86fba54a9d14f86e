"""Resilience helpers every process shares: exponential back-off and a circuit breaker.

A leaf: imports nothing of the project, so the worker agent and the read side can both use it.
"""
