"""iTransformer encoder (Liu et al. 2024): each feature's whole window is one variate token.

Built from neuralforecast's `DataEmbedding_inverted` (Linear L -> hidden per feature) and `TransEncoder` of
`TransEncoderLayer(AttentionLayer(FullAttention))`, as in its `iTransformer`; the encoder output [B, F, hidden]
is flattened: out_dim = F * hidden_size (the classification head of the reference Time-Series-Library).
`use_norm` (per-window normalisation that the forecasting head undoes) is not used: features are z-scored.
"""

from __future__ import annotations

import torch
from neuralforecast.common._modules import (
    AttentionLayer,
    DataEmbedding_inverted,
    FullAttention,
    TransEncoder,
    TransEncoderLayer,
)
from torch import nn

from models.backbones.spec import ENCODER_READS, ENCODER_SPACE, BackboneSpec, check_common


class ITransformerEncoder(nn.Module):
    def __init__(
        self, n_features: int, input_size: int, *, hidden_size: int, n_layers: int, n_heads: int,
        ff_mult: int, dropout: float,
    ):
        super().__init__()
        check_common("itransformer", n_features, input_size, hidden_size, n_layers, n_heads, ff_mult, dropout)
        self.embedding = DataEmbedding_inverted(input_size, hidden_size, dropout)
        self.encoder = TransEncoder(
            [
                TransEncoderLayer(
                    AttentionLayer(FullAttention(False, attention_dropout=dropout), hidden_size, n_heads),
                    hidden_size, ff_mult * hidden_size, dropout=dropout, activation="gelu",
                )
                for _ in range(n_layers)
            ],
            norm_layer=nn.LayerNorm(hidden_size),
        )
        self.out_dim = n_features * hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, F]
        tokens, _ = self.encoder(self.embedding(x, None))  # [B, F, hidden]
        return tokens.flatten(1)


SPEC = BackboneSpec(
    name="itransformer",
    build=ITransformerEncoder,
    reads=ENCODER_READS,
    search_space=ENCODER_SPACE,
    tokens_per_feature=True,  # each feature's window is a token
)
