"""Pre-activation WideResNet for 32x32 inputs (Zagoruyko & Komodakis), as in homura's ``wrn28_10``.

The SAM-ON paper's CIFAR WRN-28-10 (Table 1, Sec. 8.4 (Sec. 4.1); App. A.1) is the homura pre-activation WRN
(the the models implementation notes [repo]): a 3x3 stem conv, three stages of (depth-4)/6 pre-activation basic blocks with
widths 16k, 32k, 64k, a final BN-ReLU before pooling, and a linear head. Convolutions have no bias;
the 1x1 shortcut conv appears only where the width or stride changes. For CIFAR-100 this gives
36,536,884 parameters of which 17,952 are BatchNorm γ/β (99.95 % sparsity, Tables 5/12, Sec. 8.4 (Sec. 5.1)).

Stage modules are named ``layer1``..``layer3`` and the final BN ``norm``, so block-restricted
SAM-ON ("B3", "B2+B3"; Fig. 3) selects ``prefixes=["layer3", "norm"]`` etc.
The model follows timm's API (``forward_features``, ``forward_head``, ``get_classifier``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from repro.models import register_model

__all__ = ["WideResNet", "wrn28_10", "wrn16_4", "wrn10_1"]


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        # homura/WRN: the projection shortcut sees the pre-activated input.
        sc = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(F.relu(self.bn2(o)))
        return o + sc


class WideResNet(nn.Module):
    def __init__(self, depth: int = 28, widen_factor: int = 10, num_classes: int = 10, base_width: int = 16,
                 in_chans: int = 3):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WideResNet depth must be 6n + 4 (10, 16, 22, 28, ...), got {depth}")
        if widen_factor < 1:
            raise ValueError(f"widen_factor must be >= 1, got {widen_factor}")
        n = (depth - 4) // 6
        widths = [base_width * widen_factor * k for k in (1, 2, 4)]
        self.num_classes = num_classes
        self.num_features = widths[-1]
        self.conv1 = nn.Conv2d(in_chans, base_width, 3, 1, 1, bias=False)
        cin = base_width
        for i, (w, s) in enumerate(zip(widths, (1, 2, 2)), start=1):
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(cin, w, s if j == 0 else 1))
                cin = w
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.norm = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        return F.relu(self.norm(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean((2, 3))
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@register_model("wrn28_10")
def wrn28_10(num_classes: int, **kw) -> nn.Module:
    """WRN-28-10 of the SAM-ON CIFAR experiments (36.5M parameters for 100 classes)."""
    return WideResNet(28, 10, num_classes, **kw)


@register_model("wrn16_4")
def wrn16_4(num_classes: int, **kw) -> nn.Module:
    """WRN-16-4 (2.7M parameters): a GPU-friendly scaled-down WRN."""
    return WideResNet(16, 4, num_classes, **kw)


@register_model("wrn10_1")
def wrn10_1(num_classes: int, **kw) -> nn.Module:
    """WRN-10-1 (~77k parameters, 3 stages of one block, widths 16-32-64): the CPU stand-in."""
    return WideResNet(10, 1, num_classes, **kw)
