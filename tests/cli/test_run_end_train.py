"""`cvbulk train --wait` says what it waits for: the training's status, every retry (a 429 waited out),
then the performance fetch; none of it is a silent pause."""

from __future__ import annotations

from cvbulk.emulator import Faults

from ._support import cli, emulator, env  # noqa: F401 (fixtures)
from .test_cmd_train import add_images, make_project


def test_train_wait_shows_retries_and_the_performance_phase(env, capsys):  # noqa: F811 (a fixture)
    project_id = make_project(capsys, "noisy", "Hemlock", "Japanese_Cherry")
    add_images(env, project_id, per_tag=5)
    env.set_faults(Faults(throttle_burst=2))  # the next two requests are answered 429
    try:
        code, out, err = cli(capsys, "train", "--project", "noisy", "--wait", "--poll-interval", "0.2",
                             "--progress", "plain")
    finally:
        env.set_faults(Faults())
    assert code == 0, err
    retries = [line for line in err.splitlines() if "throttled (HTTP 429)" in line]
    assert retries and "trying again in" in retries[0] and "(attempt 2)" in retries[0], err
    assert "fetching training performance" in err
    assert out.startswith("trained project 'noisy'")
