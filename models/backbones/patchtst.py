"""PatchTST encoder (Nie et al. 2023): channel-independent patches of every feature through one shared encoder.

Built from neuralforecast's `TSTiEncoder` (the `backbone` piece of `PatchTST_backbone`) with c_in = F. Each
feature's window is cut into patches that end at the window's last day (the first `(L - patch_len) % stride`
days are dropped, so the most recent days are never lost), encoded to [B, F, hidden, n_patches], averaged over
patches and flattened over features: out_dim = F * hidden_size (the pooling of Hugging Face's
PatchTSTForClassification). Neither RevIN nor the forecasting head is used: features are already z-scored.

Deviation from neuralforecast: LayerNorm instead of its default BatchNorm inside the encoder layers, so that a
sample's representation never depends on its batch neighbours, a batch of one works in training, and there
are no running statistics that differ between training and evaluation.
"""

from __future__ import annotations

import torch
from neuralforecast.models.patchtst import TSTiEncoder
from torch import nn

from models.backbones.spec import ENCODER_READS, ENCODER_SPACE, BackboneSpec, check_common, check_patch
from models.space import Categorical


class PatchTSTEncoder(nn.Module):
    def __init__(
        self, n_features: int, input_size: int, *, hidden_size: int, n_layers: int, n_heads: int,
        ff_mult: int, dropout: float, patch_len: int, stride: int,
    ):
        super().__init__()
        check_common("patchtst", n_features, input_size, hidden_size, n_layers, n_heads, ff_mult, dropout)
        check_patch("patchtst", input_size, patch_len, stride)
        n_patches = (input_size - patch_len) // stride + 1
        self.start = input_size - ((n_patches - 1) * stride + patch_len)
        self.patch_len, self.stride = patch_len, stride
        self.encoder = TSTiEncoder(
            n_features, patch_num=n_patches, patch_len=patch_len, n_layers=n_layers, hidden_size=hidden_size,
            n_heads=n_heads, linear_hidden_size=ff_mult * hidden_size, norm="LayerNorm", dropout=dropout,
            act="gelu", res_attention=True, pe="zeros", learn_pe=True,
        )
        self.out_dim = n_features * hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, F]
        x = x[:, self.start :, :].permute(0, 2, 1)
        patches = x.unfold(-1, self.patch_len, self.stride).permute(0, 1, 3, 2)  # [B, F, patch_len, n]
        z = self.encoder(patches)  # [B, F, hidden, n]
        return z.mean(-1).flatten(1)


SPEC = BackboneSpec(
    name="patchtst",
    build=PatchTSTEncoder,
    reads=(*ENCODER_READS, "patch_len", "stride"),
    defaults={"n_layers": 3, "dropout": 0.2},
    search_space={
        **ENCODER_SPACE,
        "patch_len": Categorical((8, 12, 16, 24)),
        "stride": Categorical((4, 8)),
    },
    tokens_per_feature=True,  # channel-independent: every feature's patches go through the encoder
    uses_patches=True,
)
