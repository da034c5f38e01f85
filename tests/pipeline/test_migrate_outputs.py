"""An unwritable --report or --state is refused before migrate asks anything of either side: no target project
created, nothing copied, one line naming the path (it was found after the whole copy, or after creating the
target, as "the state file is damaged")."""

from __future__ import annotations

import anyio
import pytest

from cvbulk.pipeline.errors import ConfigError
from cvbulk.pipeline.migrate import MigrateOptions, run_migrate

from .test_migrate import client_for, jpeg, two_emulators

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("which", ["report", "state"])
async def test_an_unwritable_output_is_refused_before_anything_happens(tmp_path, which):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    async with two_emulators(tmp_path) as (a, b), client_for(a) as src, client_for(b) as dst:
        project = await src.create_project("fruit")
        await src.create_images_from_data(project.id, [("1.jpg", jpeg(1))])
        options = MigrateOptions("fruit", "copy", create=True, **{which: blocker / f"{which}.out"})
        with anyio.fail_after(20), pytest.raises(ConfigError, match="a-file"):
            await run_migrate(src, dst, options)
        assert [p.name for p in await dst.get_projects()] == []
