"""The batch size the Lightning adapter reads from whatever a DataLoader yields, and never a failed step."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from atlas_callback._lightning import _batch_size


class _Exotic:
    @property
    def shape(self) -> Any:
        raise RuntimeError("this batch type has no shape")


@pytest.mark.parametrize(("batch", "size"), [
    ((torch.zeros(32, 3), torch.zeros(32)), 32),
    ([torch.zeros(7, 3), torch.zeros(7)], 7),
    ({"input_ids": torch.zeros(5, 16, dtype=torch.long), "labels": torch.zeros(5)}, 5),
    ({"meta": "text", "x": [torch.zeros(4, 2)]}, 4),
    (torch.zeros(9, 2), 9),
    (torch.tensor(1.0), None),
    (["a", "b"], None),
    (_Exotic(), None),
    ((_Exotic(), torch.zeros(3)), None),
])
def test_batch_size_of_common_and_exotic_batches(batch: Any, size: int | None) -> None:
    assert _batch_size(batch) == size
