"""The upload / predict pipeline: scan -> prepare -> batch -> send -> record.

Each stage is its own module (``scan``, ``labels``, ``prepare``, ``batch``, ``journal`` ...); import the
names from the module that defines them (see docs/ARCHITECTURE.md).
"""
