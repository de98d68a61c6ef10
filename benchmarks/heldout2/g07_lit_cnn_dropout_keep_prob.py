"""g07 (Lightning, CNN): ported from TensorFlow 1, `dropout(keep_prob=0.9)` became `nn.Dropout(0.9)`, which
in PyTorch is the probability of DROPPING: 90 % of the activations are zeroed in training.
Fix: nn.Dropout(0.1)."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.pictures(2000, seed=1)
xv, yv = H.pictures(600, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
P = 0.9                                             # BUG: TF keep_prob used as PyTorch's drop probability
net = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(P),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(P),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Dropout(P),
    nn.Linear(32, 4),
)
model = H.LitClassifier.make(net, lr=1e-3)
H.lightning_trainer(H.name_of(__file__), epochs=8).fit(model, tl, vl)
