"""Is a model used outside what it was trained on? The new data's features against the train split's.

`Reference` is what a registered model keeps of its train split (`bundle.json`, written at promotion): per
feature the train deciles' inner edges, the train share in each of those ten bins, the train minimum and
maximum; and the train label rate. `compare` measures new feature rows against it:

- population stability index (PSI) per feature over the train deciles: sum (new - train) * ln(new / train)
  over the bins (shares floored at `FLOOR`); below 0.1 is read as stable, above `PSI_WARN` (0.25) as a
  shifted distribution;
- the share of each feature's values outside the train range [min, max];
- the label rate of the new rows where their labels are known, beside the train rate.

`Shift.warning` is one line naming the features past `PSI_WARN` or with more than `OUTSIDE_WARN` of their
values outside the train range, or None: the model is then used within what it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

BINS = 10  # train deciles
FLOOR = 1e-4  # a bin share of 0 would make the PSI infinite
PSI_WARN = 0.25
OUTSIDE_WARN = 0.05


@dataclass(frozen=True)
class Reference:
    features: list[str]
    edges: list[list[float]]  # per feature: the train deciles' inner edges (BINS - 1 values)
    shares: list[list[float]]  # per feature: the train share in each bin (BINS values)
    low: list[float]  # per feature: the train minimum
    high: list[float]  # per feature: the train maximum
    label_rate: float  # the train split's share of positive labels
    rows: int  # train rows

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Reference:
        return cls(**data)


def reference(features: np.ndarray, names: list[str], labels: np.ndarray) -> Reference:
    """The reference of train feature rows [N, F] (unscaled, past the warm-up) and their labels."""
    x = np.asarray(features, dtype=np.float64)
    edges = np.quantile(x, np.linspace(0, 1, BINS + 1)[1:-1], axis=0).T  # [F, BINS - 1]
    shares = [_shares(x[:, j], edges[j]) for j in range(x.shape[1])]
    return Reference(list(names), edges.tolist(), [s.tolist() for s in shares], x.min(0).tolist(),
                     x.max(0).tolist(), float(np.mean(labels)), len(x))


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The share of `values` in each bin: (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


@dataclass(frozen=True)
class Shift:
    rows: int
    psi: dict[str, float]  # per feature
    outside: dict[str, float]  # per feature: the share of values outside the train range
    label_rate: float | None  # of the rows whose labels are known (None: none known)
    labelled: int
    train_label_rate: float

    @property
    def flagged(self) -> list[str]:
        """Features past either threshold, the largest PSI first."""
        names = [n for n in self.psi if self.psi[n] > PSI_WARN or self.outside[n] > OUTSIDE_WARN]
        return sorted(names, key=lambda n: -self.psi[n])

    @property
    def warning(self) -> str | None:
        flagged = self.flagged
        if not flagged:
            return None
        shown = ", ".join(f"{n} (PSI {self.psi[n]:.2f}, {self.outside[n]:.0%} outside)" for n in flagged[:4])
        more = f" and {len(flagged) - 4} more" if len(flagged) > 4 else ""
        return (f"the data lie outside what the model was trained on: {len(flagged)} of {len(self.psi)} features "
                f"shifted from the train split (population stability index above {PSI_WARN} or over "
                f"{OUTSIDE_WARN:.0%} of values outside the train range): {shown}{more}; its probabilities may be "
                "off here")

    def summary(self) -> str:
        """One line of figures: the largest PSI, the largest share outside, the label rates."""
        worst = max(self.psi, key=self.psi.get)
        far = max(self.outside, key=self.outside.get)
        rate = (f"label rate {self.label_rate:.3f} on {self.labelled} labelled rows vs {self.train_label_rate:.3f} "
                "in train" if self.label_rate is not None else f"label rate in train {self.train_label_rate:.3f}")
        return (f"shift from the train split: largest population stability index {self.psi[worst]:.3f} ({worst}; "
                f"above {PSI_WARN} reads as shifted), largest share outside the train range {self.outside[far]:.1%} "
                f"({far}); {rate}")

    def to_dict(self) -> dict:
        return {**asdict(self), "flagged": self.flagged, "warning": self.warning}

    @classmethod
    def from_dict(cls, data: dict) -> Shift:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


def compare(ref: Reference, features: np.ndarray, labels: np.ndarray | None = None) -> Shift:
    """New feature rows [N, F] (the reference's features, unscaled) and the labels known for them (any
    length up to N) against the reference."""
    x = np.asarray(features, dtype=np.float64)
    psi, outside = {}, {}
    for j, name in enumerate(ref.features):
        new = np.maximum(_shares(x[:, j], np.asarray(ref.edges[j])), FLOOR)
        old = np.maximum(np.asarray(ref.shares[j]), FLOOR)
        psi[name] = float(np.sum((new - old) * np.log(new / old)))
        outside[name] = float(np.mean((x[:, j] < ref.low[j]) | (x[:, j] > ref.high[j])))
    known = 0 if labels is None else len(labels)
    rate = float(np.mean(labels)) if known else None
    return Shift(len(x), psi, outside, rate, known, ref.label_rate)
