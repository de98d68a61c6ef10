"""g09 (Accelerate, tabular MLP): a few rows of the table have a missing value read as NaN (0.3 % of rows);
the first batch holding one makes the loss NaN and every weight NaN after the step.
Fix: impute or drop the missing values (`torch.nan_to_num`, or filter rows with `isnan`)."""
import torch
from torch import nn
import hcommon as H

torch.manual_seed(0)
x, y = H.blobs(3000, seed=1)
xv, yv = H.blobs(800, seed=2)
g = torch.Generator().manual_seed(5)
rows = torch.randperm(3000, generator=g)[:9]
x[rows, 3] = float("nan")                         # BUG: missing values left in the inputs
tl, vl = H.loaders(x, y, xv, yv)
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
H.accelerate_loop(H.name_of(__file__), model, opt, tl, vl, epochs=6, loss_fn=nn.functional.cross_entropy,
                  config={"lr": 1e-3})
