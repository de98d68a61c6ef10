"""g01 (Lightning, CNN): a "freeze the backbone" block copied from a fine-tuning recipe, but no pretrained
weights are ever loaded, so the convolutions stay at their random initialisation and only the head learns.
Fix: drop the freezing loop (or load the pretrained weights it was meant for)."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.pictures(2000, seed=1)
xv, yv = H.pictures(600, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
net = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(),
    nn.Linear(32, 4),
)
for p in net.parameters():           # BUG: "backbone = pretrained, freeze it" -- but nothing was loaded
    p.requires_grad = False
for p in net[-1].parameters():
    p.requires_grad = True
model = H.LitClassifier.make(net, lr=1e-3)
H.lightning_trainer(H.name_of(__file__), epochs=8).fit(model, tl, vl)
