"""The sub-networks FlowNet2 is stacked from: FlowNetC, FlowNetS, FlowNetSD and the fusion network.

Layer names, shapes and order follow NVIDIA's flownet2-pytorch so that its released state_dicts load unchanged
(``conv1.0.weight`` is the convolution inside the ``conv1`` block, and so on). Each sub-network maps its stacked
input to flows at several scales and knows nothing of input normalisation or ``div_flow``; the complete models in
:mod:`tassn.nets.flownet2` add those.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import init

from tassn.nets.correlation import Correlation

__all__ = [
    "FlowNetC",
    "FlowNetFusion",
    "FlowNetS",
    "FlowNetSD",
    "conv",
    "deconv",
    "i_conv",
    "init_flownet_weights",
    "predict_flow",
]

_SLOPE = 0.1  # LeakyReLU slope of every FlowNet block


def conv(
    batch_norm: bool, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1
) -> nn.Sequential:
    """Convolution + (BatchNorm) + LeakyReLU(0.1), 'same' padding; without BatchNorm the convolution has a bias."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_planes,
            out_planes,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            bias=not batch_norm,
        )
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_planes))
    layers.append(nn.LeakyReLU(_SLOPE, inplace=True))
    return nn.Sequential(*layers)


def i_conv(
    batch_norm: bool, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1
) -> nn.Sequential:
    """Intermediate convolution of the SD and fusion decoders: convolution (+ BatchNorm), no activation."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_planes, out_planes, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=True
        )
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_planes))
    return nn.Sequential(*layers)


def predict_flow(in_planes: int) -> nn.Conv2d:
    """3×3 convolution to the two flow channels."""
    return nn.Conv2d(in_planes, 2, kernel_size=3, stride=1, padding=1, bias=True)


def deconv(in_planes: int, out_planes: int) -> nn.Sequential:
    """×2 transposed convolution + LeakyReLU(0.1)."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_planes, out_planes, kernel_size=4, stride=2, padding=1, bias=True),
        nn.LeakyReLU(_SLOPE, inplace=True),
    )


def _upsample_flow(bias: bool) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(2, 2, kernel_size=4, stride=2, padding=1, bias=bias)


def init_flownet_weights(module: nn.Module) -> None:
    """flownet2-pytorch's initialisation: Xavier-uniform weights, U(0, 1) biases for every (transposed) conv."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if m.bias is not None:
                init.uniform_(m.bias)
            init.xavier_uniform_(m.weight)


class _CoarseToFine(nn.Module):
    """Decoder shared by FlowNetS and FlowNetC: deconvolutions, flow predictions at 1/64 … 1/4 resolution."""

    def _build_decoder(self, upsample_bias: bool) -> None:
        self.deconv5 = deconv(1024, 512)
        self.deconv4 = deconv(1026, 256)
        self.deconv3 = deconv(770, 128)
        self.deconv2 = deconv(386, 64)
        self.predict_flow6 = predict_flow(1024)
        self.predict_flow5 = predict_flow(1026)
        self.predict_flow4 = predict_flow(770)
        self.predict_flow3 = predict_flow(386)
        self.predict_flow2 = predict_flow(194)
        self.upsampled_flow6_to_5 = _upsample_flow(upsample_bias)
        self.upsampled_flow5_to_4 = _upsample_flow(upsample_bias)
        self.upsampled_flow4_to_3 = _upsample_flow(upsample_bias)
        self.upsampled_flow3_to_2 = _upsample_flow(upsample_bias)

    def _decode(self, c2: Tensor, c3: Tensor, c4: Tensor, c5: Tensor, c6: Tensor) -> tuple[Tensor, ...]:
        flow6 = self.predict_flow6(c6)
        concat5 = torch.cat((c5, self.deconv5(c6), self.upsampled_flow6_to_5(flow6)), 1)
        flow5 = self.predict_flow5(concat5)
        concat4 = torch.cat((c4, self.deconv4(concat5), self.upsampled_flow5_to_4(flow5)), 1)
        flow4 = self.predict_flow4(concat4)
        concat3 = torch.cat((c3, self.deconv3(concat4), self.upsampled_flow4_to_3(flow4)), 1)
        flow3 = self.predict_flow3(concat3)
        concat2 = torch.cat((c2, self.deconv2(concat3), self.upsampled_flow3_to_2(flow3)), 1)
        flow2 = self.predict_flow2(concat2)
        return flow2, flow3, flow4, flow5, flow6


class FlowNetS(_CoarseToFine):
    """FlowNetS ("simple"): one encoder over the stacked input ``B×input_channels×H×W`` (H, W multiples of 64).

    ``forward`` returns ``(flow2, flow3, flow4, flow5, flow6)`` at 1/4 … 1/64 resolution, in pixels / div_flow.
    FlowNet2's refinement stages use ``input_channels=12`` (two frames, warped frame, flow, error magnitude).
    """

    def __init__(self, input_channels: int = 12, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.conv1 = conv(batch_norm, input_channels, 64, kernel_size=7, stride=2)
        self.conv2 = conv(batch_norm, 64, 128, kernel_size=5, stride=2)
        self.conv3 = conv(batch_norm, 128, 256, kernel_size=5, stride=2)
        self.conv3_1 = conv(batch_norm, 256, 256)
        self.conv4 = conv(batch_norm, 256, 512, stride=2)
        self.conv4_1 = conv(batch_norm, 512, 512)
        self.conv5 = conv(batch_norm, 512, 512, stride=2)
        self.conv5_1 = conv(batch_norm, 512, 512)
        self.conv6 = conv(batch_norm, 512, 1024, stride=2)
        self.conv6_1 = conv(batch_norm, 1024, 1024)
        self._build_decoder(upsample_bias=False)
        init_flownet_weights(self)

    def flows(self, x: Tensor) -> tuple[Tensor, ...]:
        """Stacked input → ``(flow2, …, flow6)``."""
        c2 = self.conv2(self.conv1(x))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode(c2, c3, c4, c5, c6)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.flows(x)


class FlowNetC(_CoarseToFine):
    """FlowNetC ("correlation"): a siamese encoder per frame, joined by the 441-channel correlation at 1/8.

    Input ``B×6×H×W`` (frame a in channels 0–2, frame b in 3–5); output as :class:`FlowNetS`.
    """

    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.conv1 = conv(batch_norm, 3, 64, kernel_size=7, stride=2)
        self.conv2 = conv(batch_norm, 64, 128, kernel_size=5, stride=2)
        self.conv3 = conv(batch_norm, 128, 256, kernel_size=5, stride=2)
        self.conv_redir = conv(batch_norm, 256, 32, kernel_size=1, stride=1)
        self.corr = Correlation(pad_size=20, kernel_size=1, max_displacement=20, stride1=1, stride2=2)
        self.corr_activation = nn.LeakyReLU(_SLOPE, inplace=True)
        self.conv3_1 = conv(batch_norm, 32 + self.corr.out_channels, 256)
        self.conv4 = conv(batch_norm, 256, 512, stride=2)
        self.conv4_1 = conv(batch_norm, 512, 512)
        self.conv5 = conv(batch_norm, 512, 512, stride=2)
        self.conv5_1 = conv(batch_norm, 512, 512)
        self.conv6 = conv(batch_norm, 512, 1024, stride=2)
        self.conv6_1 = conv(batch_norm, 1024, 1024)
        self._build_decoder(upsample_bias=True)
        init_flownet_weights(self)

    def flows(self, x: Tensor) -> tuple[Tensor, ...]:
        """Stacked pair ``B×6×H×W`` → ``(flow2, …, flow6)``."""
        if self.batch_norm:  # separate passes keep BatchNorm statistics per frame, as the reference does
            c2a = self.conv2(self.conv1(x[:, :3]))
            c3a = self.conv3(c2a)
            c3b = self.conv3(self.conv2(self.conv1(x[:, 3:6])))
        else:  # the frames share the encoder: one batched pass is the same computation, faster
            n = x.shape[0]
            c2_both = self.conv2(self.conv1(torch.cat((x[:, :3], x[:, 3:6]), 0)))
            c3_both = self.conv3(c2_both)
            c2a, c3a, c3b = c2_both[:n], c3_both[:n], c3_both[n:]
        corr = self.corr_activation(self.corr(c3a, c3b))
        c3 = self.conv3_1(torch.cat((self.conv_redir(c3a), corr), 1))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode(c2a, c3, c4, c5, c6)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.flows(x)


class FlowNetSD(nn.Module):
    """FlowNetSD ("small displacement"): 3×3 kernels, no stride in the first layer, intermediate convolutions.

    Input ``B×6×H×W``; output ``(flow2, …, flow6)`` as :class:`FlowNetS`.
    """

    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.conv0 = conv(batch_norm, 6, 64)
        self.conv1 = conv(batch_norm, 64, 64, stride=2)
        self.conv1_1 = conv(batch_norm, 64, 128)
        self.conv2 = conv(batch_norm, 128, 128, stride=2)
        self.conv2_1 = conv(batch_norm, 128, 128)
        self.conv3 = conv(batch_norm, 128, 256, stride=2)
        self.conv3_1 = conv(batch_norm, 256, 256)
        self.conv4 = conv(batch_norm, 256, 512, stride=2)
        self.conv4_1 = conv(batch_norm, 512, 512)
        self.conv5 = conv(batch_norm, 512, 512, stride=2)
        self.conv5_1 = conv(batch_norm, 512, 512)
        self.conv6 = conv(batch_norm, 512, 1024, stride=2)
        self.conv6_1 = conv(batch_norm, 1024, 1024)
        self.deconv5 = deconv(1024, 512)
        self.deconv4 = deconv(1026, 256)
        self.deconv3 = deconv(770, 128)
        self.deconv2 = deconv(386, 64)
        self.inter_conv5 = i_conv(batch_norm, 1026, 512)
        self.inter_conv4 = i_conv(batch_norm, 770, 256)
        self.inter_conv3 = i_conv(batch_norm, 386, 128)
        self.inter_conv2 = i_conv(batch_norm, 194, 64)
        self.predict_flow6 = predict_flow(1024)
        self.predict_flow5 = predict_flow(512)
        self.predict_flow4 = predict_flow(256)
        self.predict_flow3 = predict_flow(128)
        self.predict_flow2 = predict_flow(64)
        self.upsampled_flow6_to_5 = _upsample_flow(True)
        self.upsampled_flow5_to_4 = _upsample_flow(True)
        self.upsampled_flow4_to_3 = _upsample_flow(True)
        self.upsampled_flow3_to_2 = _upsample_flow(True)
        init_flownet_weights(self)

    def flows(self, x: Tensor) -> tuple[Tensor, ...]:
        """Stacked pair ``B×6×H×W`` → ``(flow2, …, flow6)``."""
        c0 = self.conv0(x)
        c1 = self.conv1_1(self.conv1(c0))
        c2 = self.conv2_1(self.conv2(c1))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        flow6 = self.predict_flow6(c6)
        concat5 = torch.cat((c5, self.deconv5(c6), self.upsampled_flow6_to_5(flow6)), 1)
        flow5 = self.predict_flow5(self.inter_conv5(concat5))
        concat4 = torch.cat((c4, self.deconv4(concat5), self.upsampled_flow5_to_4(flow5)), 1)
        flow4 = self.predict_flow4(self.inter_conv4(concat4))
        concat3 = torch.cat((c3, self.deconv3(concat4), self.upsampled_flow4_to_3(flow4)), 1)
        flow3 = self.predict_flow3(self.inter_conv3(concat3))
        concat2 = torch.cat((c2, self.deconv2(concat3), self.upsampled_flow3_to_2(flow3)), 1)
        flow2 = self.predict_flow2(self.inter_conv2(concat2))
        return flow2, flow3, flow4, flow5, flow6

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.flows(x)


class FlowNetFusion(nn.Module):
    """Fusion network of FlowNet2: merges the large- and small-displacement flows at full resolution.

    Input ``B×11×H×W`` (frame a, two flows, their magnitudes, two brightness errors); output ``B×2×H×W`` flow in
    pixels.
    """

    def __init__(self, batch_norm: bool = False) -> None:
        super().__init__()
        self.batch_norm = batch_norm
        self.conv0 = conv(batch_norm, 11, 64)
        self.conv1 = conv(batch_norm, 64, 64, stride=2)
        self.conv1_1 = conv(batch_norm, 64, 128)
        self.conv2 = conv(batch_norm, 128, 128, stride=2)
        self.conv2_1 = conv(batch_norm, 128, 128)
        self.deconv1 = deconv(128, 32)
        self.deconv0 = deconv(162, 16)
        self.inter_conv1 = i_conv(batch_norm, 162, 32)
        self.inter_conv0 = i_conv(batch_norm, 82, 16)
        self.predict_flow2 = predict_flow(128)
        self.predict_flow1 = predict_flow(32)
        self.predict_flow0 = predict_flow(16)
        self.upsampled_flow2_to_1 = _upsample_flow(True)
        self.upsampled_flow1_to_0 = _upsample_flow(True)
        init_flownet_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        c0 = self.conv0(x)
        c1 = self.conv1_1(self.conv1(c0))
        c2 = self.conv2_1(self.conv2(c1))
        flow2 = self.predict_flow2(c2)
        concat1 = torch.cat((c1, self.deconv1(c2), self.upsampled_flow2_to_1(flow2)), 1)
        flow1 = self.predict_flow1(self.inter_conv1(concat1))
        concat0 = torch.cat((c0, self.deconv0(concat1), self.upsampled_flow1_to_0(flow1)), 1)
        return self.predict_flow0(self.inter_conv0(concat0))
