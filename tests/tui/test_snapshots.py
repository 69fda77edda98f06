"""Each screen at 80x24 with fixed data, compared with the accepted picture.

After a deliberate change of the look: `pytest tests/tui/test_snapshots.py --snapshot-update`,
then look at the new pictures before committing them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .scenes import SCENES, Scene, staged


@pytest.mark.parametrize("scene", SCENES, ids=[scene.name for scene in SCENES])
def test_screen_looks_as_accepted(scene: Scene, snap_compare: Callable[..., bool]) -> None:
    with staged(scene) as (app, run):
        assert snap_compare(app, terminal_size=(80, 24), run_before=run)
