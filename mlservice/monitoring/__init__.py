"""Monitoring: drift and performance of served models, computed from the prediction log and the reference sample of each version.

Imports no web framework; used by the API and by the Dagster drift-report asset.
"""
