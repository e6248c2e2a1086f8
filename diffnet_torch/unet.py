"""The U-Net baseline of the paper, after Jin et al. 2017 (FBPConvNet), with a residual connection.

Levels of 64-128-256-512-1024 channels; per level two conv3x3 (no bias) + BatchNorm + ReLU; 2x2 max-pool
down; up by a 3x3 transposed convolution with stride 2 (+ BN + ReLU, as in FBPConvNet) halving the
channels, concatenation with the skip, two conv3x3 + BN + ReLU; a final 1x1 conv to one channel, added to
the input (residual learning). Inputs whose sides are not multiples of 16 are reflect-padded and the
output cropped back.

Parameter count: ours is 34,519,041 (trainable; BN running statistics are buffers, not parameters). The
paper reports 34,512,705. The same architecture counted the TensorFlow way -- every convolution (and
transposed convolution) with a bias and batch norm with a learned shift only (``tf.contrib.layers.batch_norm``
default ``scale=False``, the shift replacing the bias) -- has 34,512,193, 512 fewer than the paper; those 512
we cannot attribute without the authors' U-Net code. Ours is the usual PyTorch form: bias-free convolutions
followed by BN with scale and shift, which adds one scale per channel of every conv3x3 (+5,888) and of
every transposed convolution (+960): 34,512,193 + 6,848 = 34,519,041 (0.02 % more than the paper).

The paper, cited in short as "Arridge and Hauptmann (2019)" below: S. Arridge and A. Hauptmann,
"Networks for nonlinear diffusion problems in imaging", J. Math. Imaging Vision, 2019.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "PAPER_UNET_PARAMETERS"]

PAPER_UNET_PARAMETERS = 34_512_705


def _block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    r"""FBPConvNet-style residual U-Net: ``forward(x) = x + net(x)`` for ``x`` of shape ``(N, 1, H, W)``.

    The paper's baseline (after Jin et al. 2017). Levels of ``channels``; per level two conv3x3 (no bias) +
    BatchNorm + ReLU; 2x2 max-pool down; up by a 3x3 transposed convolution with stride 2 (+ BN + ReLU)
    halving the channels, concatenation with the skip, two conv3x3 + BN + ReLU; a final 1x1 conv. Inputs
    whose sides are not multiples of :math:`2^{\text{levels} - 1}` are reflect-padded and the output cropped
    back. 2-D only.

    Parameters
    ----------
    channels : sequence of int, default (64, 128, 256, 512, 1024)
        The channels of each level.
    in_channels : int, default 1
        The input (and output) channels.
    residual : bool, default True
        Add the input to the output (residual learning).

    Raises
    ------
    IndexError
        If ``channels`` is empty.
    RuntimeError
        On a call, from PyTorch, for an input that is not ``(N, in_channels, H, W)``.

    See Also
    --------
    DiffNet : The model the paper compares it with.

    Notes
    -----
    .. math:: \mathrm{UNet}(x) = x + \mathrm{net}(x) \quad (\texttt{residual=True}).

    With the default channels it has 34,519,041 trainable parameters, the paper reports 34,512,705
    (:data:`PAPER_UNET_PARAMETERS`); the difference is explained in :mod:`diffnet_torch.unet`.

    References
    ----------
    .. [1] Arridge and Hauptmann (2019), section 5 (the U-Net baseline, 34,512,705 parameters).
    .. [2] K. H. Jin, M. T. McCann, E. Froustey and M. Unser, "Deep convolutional neural network for
           inverse problems in imaging", IEEE Trans. Image Process. 26(9), 4509-4522, 2017.

    Examples
    --------
    >>> import torch, diffnet_torch
    >>> net = diffnet_torch.UNet(channels=(4, 8))
    >>> net(torch.rand(1, 1, 6, 6)).shape
    torch.Size([1, 1, 6, 6])
    """

    def __init__(self, channels=(64, 128, 256, 512, 1024), in_channels=1, residual=True):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.in_channels, self.residual = int(in_channels), bool(residual)
        self.down = nn.ModuleList()
        c_in = in_channels
        for c in self.channels:
            self.down.append(_block(c_in, c))
            c_in = c
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c in reversed(self.channels[:-1]):
            self.up.append(nn.Sequential(
                nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1, bias=False),
                nn.BatchNorm2d(c), nn.ReLU(inplace=True)))
            self.dec.append(_block(2 * c, c))
        self.head = nn.Conv2d(self.channels[0], in_channels, 1)

    @property
    def config(self):
        return {"model": "unet", "channels": list(self.channels), "in_channels": self.in_channels,
                "residual": self.residual}

    def forward(self, x):
        h, w = x.shape[-2:]
        m = 2 ** (len(self.channels) - 1)
        ph, pw = (-h) % m, (-w) % m
        z = x
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            z = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for i, block in enumerate(self.down):
            z = block(z if i == 0 else F.max_pool2d(z, 2))
            skips.append(z)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            z = dec(torch.cat([skips.pop(), up(z)], dim=1))
        z = self.head(z)[..., :h, :w]
        return x + z if self.residual else z
