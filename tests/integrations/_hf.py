"""A tiny Hugging Face model and data for tests: built from a config (random weights, no downloads), CPU, seconds."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import torch  # noqa: E402
from torch.utils.data import Dataset  # noqa: E402


class Tokens(Dataset):
    """Sequences of random token ids whose label is whether token 7 occurs (learnable)."""

    def __init__(self, n: int = 128, seq_len: int = 16, vocab: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(8, vocab, (n, seq_len), generator=g)
        mark = torch.rand(n, generator=g) < 0.5
        self.ids[mark, 3] = 7
        self.labels = mark.long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


def accuracy(pred) -> dict[str, float]:
    import numpy as np

    return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}


def hf_trainer(callbacks: list, out: str, *, epochs: int = 2, grad_accum: int = 1, eval_strategy: str = "epoch",
               n: int = 128, **kwargs):
    from transformers import Trainer, TrainingArguments

    options = dict(output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=8,
                   per_device_eval_batch_size=32, gradient_accumulation_steps=grad_accum, learning_rate=5e-4,
                   logging_steps=1, eval_strategy=eval_strategy, save_strategy="no", report_to=[],
                   disable_tqdm=True, use_cpu=True, dataloader_num_workers=0, seed=0)
    options.update(kwargs)
    return Trainer(model=tiny_bert(), args=TrainingArguments(**options), train_dataset=Tokens(n),
                   eval_dataset=Tokens(64, seed=1), compute_metrics=accuracy, callbacks=callbacks)
