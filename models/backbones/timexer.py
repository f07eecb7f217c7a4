"""TimeXer encoder (Wang et al. 2024): a patched endogenous series whose global token cross-attends to
exogenous variate tokens.

Built from neuralforecast's `EnEmbedding`, `DataEmbedding_inverted`, `Encoder` and `EncoderLayer` (self- and
cross-`AttentionLayer(FullAttention)`), called exactly as its `TimeXer.forecast` calls them.

Choice of series: TimeXer forecasts one endogenous series given exogenous ones; a direction classifier has
no single target series among its inputs, so the endogenous series is the first feature channel (the
feature tiers are expected to put the series nearest the target, the daily return, first; with
`feature_proj` it is the first learned projection) and the other F - 1 features are the exogenous series.
As in neuralforecast, the variate tokens are the endogenous series followed by the exogenous ones, so
every feature is a token. The endogenous series is cut into non-overlapping patches of `patch_len` ending
at the window's last day (the first `L % patch_len` days are dropped from the patches only). The encoder
output [B, n_patches + 1, hidden] (patch tokens and the global token) is flattened as by neuralforecast's
FlattenHead: out_dim = (n_patches + 1) * hidden_size.
`use_norm` (de-normalised forecasts) is not used: features are z-scored.
"""

from __future__ import annotations

import torch
from neuralforecast.common._modules import AttentionLayer, DataEmbedding_inverted, FullAttention
from neuralforecast.models.timexer import Encoder, EncoderLayer, EnEmbedding
from torch import nn

from models.backbones.spec import (
    ENCODER_READS,
    ENCODER_SPACE,
    BackboneSpec,
    check_common,
    check_even,
    check_patch,
)
from models.space import Categorical


def _attention(hidden_size: int, n_heads: int, dropout: float) -> AttentionLayer:
    return AttentionLayer(FullAttention(False, attention_dropout=dropout), hidden_size, n_heads)


class TimeXerEncoder(nn.Module):
    def __init__(
        self, n_features: int, input_size: int, *, hidden_size: int, n_layers: int, n_heads: int,
        ff_mult: int, dropout: float, patch_len: int,
    ):
        super().__init__()
        check_common("timexer", n_features, input_size, hidden_size, n_layers, n_heads, ff_mult, dropout)
        check_even("timexer", hidden_size)
        check_patch("timexer", input_size, patch_len)
        n_patches = input_size // patch_len
        self.start = input_size - n_patches * patch_len
        self.en_embedding = EnEmbedding(1, hidden_size, patch_len, dropout)
        self.ex_embedding = DataEmbedding_inverted(input_size, hidden_size, dropout)
        self.encoder = Encoder(
            [
                EncoderLayer(
                    _attention(hidden_size, n_heads, dropout), _attention(hidden_size, n_heads, dropout),
                    hidden_size, ff_mult * hidden_size, dropout=dropout, activation="relu",
                )
                for _ in range(n_layers)
            ],
            norm_layer=nn.LayerNorm(hidden_size),
        )
        self.out_dim = (n_patches + 1) * hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, F]
        endogenous = x[:, :, :1]
        exogenous = x[:, :, 1:] if x.shape[-1] > 1 else None
        en_embed, _ = self.en_embedding(endogenous[:, self.start :, :].permute(0, 2, 1))  # [B, n+1, hidden]
        ex_embed = self.ex_embedding(endogenous, exogenous)  # [B, F, hidden]
        return self.encoder(en_embed, ex_embed).flatten(1)


SPEC = BackboneSpec(
    name="timexer",
    build=TimeXerEncoder,
    reads=(*ENCODER_READS, "patch_len"),
    search_space={
        **ENCODER_SPACE,
        "patch_len": Categorical((5, 10, 16, 20)),
    },
    tokens_per_feature=True,  # every feature is an exogenous variate token
    uses_patches=True,
)
