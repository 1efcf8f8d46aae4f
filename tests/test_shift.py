"""repro.evaluate.shift.training_rows: the labelled pictures of a task."""

import numpy as np
import pytest

from repro.data.pack import PackedSplit
from repro.evaluate import shift


def _task(prefix: str) -> shift.ShiftTask:
    return shift.ShiftTask(prefix, "subcategory", ("music", "food"), ("music", "food"), ("a {}.",),
                           {"val": "in-distribution"})


def _packed() -> PackedSplit:
    ids = ["emoji:1f3b8", "clipart:guitar", "emoji:1f355", "icon:x"]
    subs = ["music", "music", "food", "other"]
    return PackedSplit(np.zeros((4, 2, 2, 3), np.uint8), [[]] * 4,
                       {"concept_id": ids, "subcategory": subs, "name": ids}, {})


@pytest.mark.parametrize("prefix, rows", [("emoji-subcategory/", [0, 2]), ("smoke-category/", [0, 1, 2])])
def test_an_emoji_task_keeps_emoji_pictures_only(monkeypatch, prefix, rows):
    monkeypatch.setattr(shift, "load_packed", lambda path: _packed())
    _, got, labels = shift.training_rows(_task(prefix), "unused", 32)
    assert got.tolist() == rows
    assert labels.tolist() == [{"music": 0, "food": 1}[_packed().fields["subcategory"][i]] for i in rows]
