"""Informer encoder (Zhou et al. 2021): ProbSparse self-attention with convolutional distilling.

Built from neuralforecast's `DataEmbedding` (TokenEmbedding conv of the F inputs + sinusoidal positions),
`TransEncoder` of `TransEncoderLayer(AttentionLayer(ProbAttention))` and `ConvLayer` distilling between layers,
as in its `Informer` encoder (no decoder). Distilling maps a length l to floor((l + 1) / 2) + 1, which stays
>= 3; the encoder output [B, l_final, hidden] is flattened: out_dim = l_final * hidden_size.

Determinism: ProbAttention draws random key indices (`torch.randint`, CPU generator) on every forward, even
in eval mode. Here each attention layer is a `SeededProbAttention`: in training it samples from the global RNG
as usual (reproducible through the run's seed); in eval it samples under `torch.random.fork_rng` with the
CPU generator seeded by a fixed per-layer seed, so validating the same weights twice gives identical outputs
and the caller's RNG state is left untouched.

Constraints of neuralforecast's ProbAttention (it `squeeze()`s its score tensor): n_heads >= 2 and
input_size >= 3, checked here with a clear error instead of a wrong broadcast.
ConvLayer has BatchNorm over (batch, time): batch size 1 works in training as the length is >= 3.
"""

from __future__ import annotations

import torch
from neuralforecast.common._modules import AttentionLayer, DataEmbedding, TransEncoder, TransEncoderLayer
from neuralforecast.models.informer import ConvLayer, ProbAttention
from torch import nn

from conventions.errors import UserError
from models.backbones.spec import ENCODER_READS, ENCODER_SPACE, BackboneSpec, check_common, check_even
from models.space import Int

EVAL_SEED = 20210202  # layer i samples with EVAL_SEED + i in eval mode


class SeededProbAttention(ProbAttention):
    def __init__(self, factor: int, dropout: float, eval_seed: int):
        super().__init__(mask_flag=False, factor=factor, attention_dropout=dropout, output_attention=False)
        self.eval_seed = eval_seed

    def forward(self, *args, **kwargs):
        if self.training:
            return super().forward(*args, **kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.eval_seed)
            return super().forward(*args, **kwargs)


def distilled_length(length: int, n_layers: int) -> int:
    for _ in range(n_layers - 1):  # ConvLayer: conv k=3 circular pad 2 (+2), max-pool k=3 s=2 p=1
        length = (length + 1) // 2 + 1
    return length


class InformerEncoder(nn.Module):
    def __init__(
        self, n_features: int, input_size: int, *, hidden_size: int, n_layers: int, n_heads: int,
        ff_mult: int, dropout: float, factor: int,
    ):
        super().__init__()
        check_common("informer", n_features, input_size, hidden_size, n_layers, n_heads, ff_mult, dropout)
        check_even("informer", hidden_size)
        if n_heads < 2:
            raise UserError(f"informer: n_heads must be >= 2 (ProbAttention squeezes a head axis of 1), got {n_heads}")
        if input_size < 3:
            raise UserError(f"informer: input_size must be >= 3, got {input_size}")
        if factor < 1:
            raise UserError(f"informer: factor must be >= 1, got {factor}")
        self.embedding = DataEmbedding(n_features, exog_input_size=0, hidden_size=hidden_size, dropout=dropout)
        self.encoder = TransEncoder(
            [
                TransEncoderLayer(
                    AttentionLayer(SeededProbAttention(factor, dropout, EVAL_SEED + i), hidden_size, n_heads),
                    hidden_size, ff_mult * hidden_size, dropout=dropout, activation="gelu",
                )
                for i in range(n_layers)
            ],
            [ConvLayer(hidden_size) for _ in range(n_layers - 1)],
            norm_layer=nn.LayerNorm(hidden_size),
        )
        self.out_dim = distilled_length(input_size, n_layers) * hidden_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, L, F]
        z, _ = self.encoder(self.embedding(x))  # [B, l_final, hidden]
        return z.flatten(1)


SPEC = BackboneSpec(
    name="informer",
    build=InformerEncoder,
    reads=(*ENCODER_READS, "factor"),
    search_space={
        **ENCODER_SPACE,
        "factor": Int(1, 5),
    },
)
