"""A migrate has two keys: a refused one is named (the source's or the target's) in one line, with the variable
and flag to fix, never the key itself (it said "check the key and the endpoint", not which)."""

from __future__ import annotations

import anyio

from ._support import assert_one_line_error, cli, emulator, env  # noqa: F401 (fixtures)

WRONG = "not-the-right-key-0123456789"


def _project(emu, name: str) -> None:
    from cvbulk.client import TrainingClient

    async def go() -> None:
        async with TrainingClient(emu.endpoint, emu.training_key) as client:
            await client.create_project(name)

    anyio.run(go)


def test_a_refused_target_key_is_named(env, capsys, monkeypatch):
    _project(env, "keys-src")
    monkeypatch.setenv("VISION_TARGET_TRAINING_ENDPOINT", env.endpoint)
    monkeypatch.setenv("VISION_TARGET_TRAINING_KEY", WRONG)
    code, out, err = cli(capsys, "migrate", "--from-project", "keys-src", "--to-project", "keys-dst", "--create",
                         "--tier", "unlimited", "--progress", "none")
    assert code == 3
    assert_one_line_error(err)
    assert "target" in err and "VISION_TARGET_TRAINING_KEY" in err and "--to-key" in err and WRONG not in err


def test_a_refused_source_key_is_named(env, capsys, monkeypatch):
    monkeypatch.setenv("VISION_TRAINING_KEY", WRONG)
    monkeypatch.setenv("VISION_TARGET_TRAINING_ENDPOINT", env.endpoint)
    monkeypatch.setenv("VISION_TARGET_TRAINING_KEY", env.training_key)
    code, out, err = cli(capsys, "migrate", "--from-project", "keys-src", "--to-project", "keys-dst", "--create",
                         "--tier", "unlimited", "--progress", "none")
    assert code == 3
    assert_one_line_error(err)
    assert "source" in err and "VISION_TRAINING_KEY" in err and WRONG not in err
