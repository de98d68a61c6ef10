"""k01 (Lightning, CNN): healthy. on_critical="stop": a false critical would stop it."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.pictures(2000, seed=1)
xv, yv = H.pictures(600, seed=2)
tl, vl = H.loaders(x, y, xv, yv)
net = nn.Sequential(
    nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
    nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Dropout(0.1),
    nn.Linear(32, 4),
)
model = H.LitClassifier.make(net, lr=1e-3)
H.lightning_trainer(H.name_of(__file__), epochs=8, on_critical="stop").fit(model, tl, vl)
