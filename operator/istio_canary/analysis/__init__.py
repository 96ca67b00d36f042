"""Automatic analysis: the judge (pure), PromQL templates, and the Prometheus adapter.

Import the modules: ``analysis.judge.compare(...)``, ``analysis.counts.Counts``. Only
:mod:`istio_canary.analysis.prometheus` talks to Prometheus, and nothing here imports it,
so the pure modules stay importable without the Prometheus client.
"""
