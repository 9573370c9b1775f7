"""Input preprocessing shared by the float and the exact golden modes (and the RTL benches)."""

import torch
import torch.nn.functional as F


def downsample(x: torch.Tensor, side: int) -> torch.Tensor:
    """Area-average uint8 images ``[N, H, W]`` (or ``[N, C, H, W]``) to ``side x side``.

    The result is uint8, rounded half up: ``floor(mean + 0.5)``. Identity when already that size.
    Used for the small hardware networks (e.g. 8x8 MNIST for a 64-32-10 net).
    """
    if x.dtype != torch.uint8:
        raise TypeError(f"downsample expects uint8 images, got {x.dtype}")
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    squeeze = x.dim() == 3
    xf = x.float().unsqueeze(1) if squeeze else x.float()
    y = F.adaptive_avg_pool2d(xf, side)
    y = torch.floor(y + 0.5).clamp_(0, 255).to(torch.uint8)
    return y.squeeze(1) if squeeze else y


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Pixels / 255 as float32 in [0, 1] (paper, Methods "The input to the first layer")."""
    return x.float().div_(255.0)
