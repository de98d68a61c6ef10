"""What describing the model costs at run start: `describe_model` (the architecture channel) on stacks of
Linear/ReLU/LayerNorm/Dropout blocks of 100, 1,000 and 4,000 layers; best and median of 5 calls.

    .venv/bin/python benchmarks/describe_model.py

(It was a timed unit test, `best < 50 ms for 100 layers`; timings live here, where a noisy machine shows as
spread rather than as a failed build.)"""
from __future__ import annotations

import statistics
import time

from torch import nn

from atlas_callback._architecture import describe_model


def main() -> None:
    for blocks in (25, 250, 1000):
        model = nn.Sequential(*[nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.LayerNorm(64), nn.Dropout(0.1))
                                for _ in range(blocks)])
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            info = describe_model(model)
            times.append(time.perf_counter() - t0)
        best, median = min(times) * 1e3, statistics.median(times) * 1e3
        print(f"{len(info.layers):>5} layers: best {best:7.1f} ms, median {median:7.1f} ms")


if __name__ == "__main__":
    main()
