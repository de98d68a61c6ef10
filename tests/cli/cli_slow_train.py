"""A real Lightning training, slowed down so a test can watch or stop it live: `python cli_slow_train.py ADDRESS NAME
EPOCHS SECONDS_PER_BATCH`. Prints `started` before fitting, then `done RUN_ID` when fit returns."""
from __future__ import annotations

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import lightning.pytorch as pl  # noqa: E402

from _lit import TinyClassifier, loaders, trainer  # noqa: E402
from atlas_callback import AtlasCallback  # noqa: E402


class Slow(pl.Callback):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_train_batch_end(self, *args: object) -> None:
        time.sleep(self.seconds)


def main() -> None:
    address, name, epochs, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    pl.seed_everything(0, verbose=False)
    callback = AtlasCallback(project="cli-live", run_name=name, collector=address)
    print("started", flush=True)
    t = trainer([callback, Slow(pause)], max_epochs=epochs)
    train_dl, val_dl = loaders()
    t.fit(TinyClassifier(), train_dl, val_dl)
    print(f"done {callback.run_id}", flush=True)


if __name__ == "__main__":
    main()
