"""cvbulk's benchmark suite: ``python -m benchmarks [--short] [--scenario NAME ...] [--runs N] [--out DIR]``.

It starts the emulator itself (a child process per run), generates seeded image trees (cached under the
temp folder), runs cvbulk and the official SDK against it, and writes JSON, Markdown and PNG charts.
See benchmarks/README.md.
"""
