"""g03 (Lightning, regression MLP): a ReLU left after the final Linear (copied from the hidden blocks),
so the prediction can never be negative while about half the standardised targets are.
Fix: no activation after the last layer of a regression head."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.housing(3000, seed=1)
xv, yv = H.housing(800, seed=2)
mu, sd = y.mean(), y.std()
y, yv = ((y - mu) / sd).unsqueeze(1), ((yv - mu) / sd).unsqueeze(1)
tl, vl = H.loaders(x, y, xv, yv)
block = lambda i, o: [nn.Linear(i, o), nn.ReLU()]
net = nn.Sequential(*block(10, 64), *block(64, 64), *block(64, 1))  # BUG: the last block's ReLU
model = H.LitClassifier.make(net, lr=1e-3, loss_fn=nn.functional.mse_loss, classify=False)
H.lightning_trainer(H.name_of(__file__), epochs=8).fit(model, tl, vl)
