"""k05 (Lightning, MLP autoencoder on 16x16 pictures): healthy. on_critical="stop"."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, _ = H.pictures(2000, seed=1)
xv, _ = H.pictures(600, seed=2)
x, xv = x.flatten(1), xv.flatten(1)
tl, vl = H.loaders(x, x, xv, xv)
net = nn.Sequential(nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 16), nn.ReLU(),
                    nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 256))
model = H.LitClassifier.make(net, lr=1e-3, loss_fn=nn.functional.mse_loss, classify=False)
H.lightning_trainer(H.name_of(__file__), epochs=8, on_critical="stop").fit(model, tl, vl)
