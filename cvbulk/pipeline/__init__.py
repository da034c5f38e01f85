"""The jobs (upload, predict, export, migrate) on one engine; usable as a library, without the CLI.

Import names from the module that defines them (see docs/ARCHITECTURE.md): the jobs in ``upload``,
``predict``, ``export``, ``migrate``; their errors in ``errors``; their results in ``results``; ``Status`` and
``Outcome`` in ``status``; the stage runner and the ``ProgressSink`` protocol in ``engine``; the one
create-images sender in ``send``; where upload's images come from in ``sources``.
"""
