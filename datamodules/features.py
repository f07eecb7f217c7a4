"""Causal, unitless features of daily OHLCV, defined as data: `FEATURES` maps a name to its function.

Every function maps `Bars` (one series) to one float64 array whose value at t uses rows <= t only: TA-Lib
indicators (sequential from the first row), pandas rolling/ewm, or statistics over
`sliding_window_view` windows that end at t. Leading rows are NaN until a feature's lookback is full
(the warm-up); zero volume and flat days (High = Low) give finite values through guarded divisions.
EMA-based indicators (TA-Lib RSI, MACD, ADX, NATR, ...; `ewma_vol_94`) remember every earlier row, so
their values depend slightly on where the data starts, never on later rows.

Groups: `CORE` (a20), `EXTENDED` (a50 adds these), `ALPHA` (a200 adds these; qlib Alpha158 families).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property, partial

import numpy as np
import pandas as pd
import talib
from numpy.lib.stride_tricks import sliding_window_view

VERSION = "1"  # bump when any definition changes: it is part of the processed-feature cache key
YEAR = 252  # trading days, to annualise volatilities
WINDOWS = (5, 10, 20, 30, 60)  # Alpha158's rolling windows


@dataclass
class Bars:
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def from_frame(cls, ohlcv: pd.DataFrame) -> Bars:
        columns = ("Open", "High", "Low", "Close", "Volume")
        return cls(*(ohlcv[c].to_numpy(dtype=np.float64, copy=True) for c in columns))

    @cached_property
    def ret(self) -> np.ndarray:
        """Daily log return of Close (NaN on the first row)."""
        return log_return(self.close, 1)

    @cached_property
    def log_volume(self) -> np.ndarray:
        return np.log1p(self.volume)  # zero volume is valid


@dataclass(frozen=True)
class Feature:
    name: str
    compute: Callable[[Bars], np.ndarray]


# -- vectorised helpers ---------------------------------------------------------------------------------


def shift(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[k:] = x[: len(x) - k]
    return out


def log_return(x: np.ndarray, k: int) -> np.ndarray:
    return np.log(x) - shift(np.log(x), k)


def div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, 0 where b == 0 (flat prices, zero volume), NaN where either is NaN."""
    out = np.divide(a, b, out=np.full(np.broadcast(a, b).shape, np.nan), where=b != 0)
    out[(b == 0) & ~np.isnan(a)] = 0.0
    return out


def rolling(x: np.ndarray, w: int, stat: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """stat over the windows x[t-w+1 .. t] ([n-w+1, w] -> [n-w+1]), NaN for t < w-1."""
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        out[w - 1 :] = stat(sliding_window_view(x, w))
    return out


def mean(x: np.ndarray, w: int) -> np.ndarray:
    return rolling(x, w, lambda v: v.mean(axis=1))


def std(x: np.ndarray, w: int) -> np.ndarray:
    return rolling(x, w, _std)


def _std(v: np.ndarray) -> np.ndarray:
    # exactly 0 on a constant window, where the float mean can leave a residue
    return np.where(np.ptp(v, axis=1) == 0, 0.0, v.std(axis=1))


def _centered(v: np.ndarray) -> np.ndarray:
    return v - v.mean(axis=1, keepdims=True)


def zscore(x: np.ndarray, w: int) -> np.ndarray:
    return div(x - mean(x, w), std(x, w))


def rolling_max(x: np.ndarray, w: int) -> np.ndarray:
    return rolling(x, w, lambda v: v.max(axis=1))


def rolling_min(x: np.ndarray, w: int) -> np.ndarray:
    return rolling(x, w, lambda v: v.min(axis=1))


def correlation(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    """Pearson correlation over windows ending at t; 0 where either window is constant."""
    out = np.full(len(x), np.nan)
    if len(x) >= w:
        vx, vy = sliding_window_view(x, w), sliding_window_view(y, w)
        cx, cy = _centered(vx), _centered(vy)
        den = np.sqrt((cx * cx).sum(axis=1) * (cy * cy).sum(axis=1))
        flat = (np.ptp(vx, axis=1) == 0) | (np.ptp(vy, axis=1) == 0)
        out[w - 1 :] = np.where(flat, 0.0, np.clip(div((cx * cy).sum(axis=1), den), -1.0, 1.0))
    return out


def signed(x: np.ndarray, keep: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Indicator keep(x) as 0/1, NaN where x is NaN (so warm-up stays visible)."""
    return np.where(np.isnan(x), np.nan, keep(x).astype(np.float64))


def realized_vol(close: np.ndarray, w: int, min_periods: int | None = None) -> np.ndarray:
    """Annualised realized volatility: sqrt(252 * mean of squared daily log returns over w days)."""
    squared = pd.Series(log_return(close, 1) ** 2)
    return np.sqrt(YEAR * squared.rolling(w, min_periods=min_periods or w).mean().to_numpy())


# -- feature functions (Bars, window) -> array -------------------------------------------------------------


def ret(b: Bars, w: int) -> np.ndarray:
    return log_return(b.close, w)


def ret_lag(b: Bars, w: int) -> np.ndarray:
    return shift(b.ret, w)


def rv(b: Bars, w: int) -> np.ndarray:
    return realized_vol(b.close, w)


def semivol(b: Bars, w: int, side: int) -> np.ndarray:
    """Realized volatility of the down (side -1) or up (side +1) moves only."""
    part = np.where(np.isnan(b.ret), np.nan, np.maximum(side * b.ret, 0.0))
    return np.sqrt(YEAR * mean(part**2, w))


def parkinson(b: Bars, w: int) -> np.ndarray:
    return np.sqrt(YEAR * mean(np.log(b.high / b.low) ** 2, w) / (4 * np.log(2)))


def garman_klass(b: Bars, w: int) -> np.ndarray:
    daily = 0.5 * np.log(b.high / b.low) ** 2 - (2 * np.log(2) - 1) * np.log(b.close / b.open) ** 2
    return np.sqrt(YEAR * np.maximum(mean(daily, w), 0.0))


def rogers_satchell(b: Bars, w: int) -> np.ndarray:
    h, lo = np.log(b.high), np.log(b.low)
    c, o = np.log(b.close), np.log(b.open)
    return np.sqrt(YEAR * mean((h - c) * (h - o) + (lo - c) * (lo - o), w))


def ewma_vol(b: Bars, lam: float) -> np.ndarray:
    """RiskMetrics exponentially weighted volatility (decay `lam`), annualised."""
    squared = pd.Series(b.ret**2).ewm(alpha=1 - lam, min_periods=20, ignore_na=True).mean()
    return np.sqrt(YEAR * squared.to_numpy())


def vol_ratio(b: Bars, short: int, long: int) -> np.ndarray:
    return div(rv(b, short), rv(b, long))


def moment(b: Bars, w: int, power: int) -> np.ndarray:
    """Skewness (3) or kurtosis (4) of daily returns; 0 on constant windows."""
    def stat(v: np.ndarray) -> np.ndarray:
        c = _centered(v)
        sd = _std(v)[:, None]
        return (div(c, sd) ** power).mean(axis=1)

    return rolling(b.ret, w, stat)


def kbar(b: Bars, part: str) -> np.ndarray:
    """Candle shape as log ratios: range, body, shadows, overnight gap."""
    top, bottom = np.maximum(b.open, b.close), np.minimum(b.open, b.close)
    return {
        "range": lambda: np.log(b.high / b.low),
        "body": lambda: np.log(b.close / b.open),
        "gap": lambda: np.log(b.open) - shift(np.log(b.close), 1),
        "upper": lambda: np.log(b.high / top),
        "lower": lambda: np.log(bottom / b.low),
    }[part]()


def kbar_share(b: Bars, part: str) -> np.ndarray:
    """Candle parts as shares of the day's range (0 on flat days)."""
    top, bottom = np.maximum(b.open, b.close), np.minimum(b.open, b.close)
    numerator = {"body": b.close - b.open, "upper": b.high - top, "lower": bottom - b.low,
                 "close": b.close - b.low}[part]
    return div(numerator, b.high - b.low)


def sma_gap(b: Bars, w: int) -> np.ndarray:
    return np.log(b.close / mean(b.close, w))


def ta_gap(b: Bars, fn: Callable[..., np.ndarray], w: int) -> np.ndarray:
    """Close relative to a TA-Lib moving average (EMA, DEMA, TEMA, KAMA)."""
    return np.log(b.close / fn(b.close, timeperiod=w))


def high_gap(b: Bars, w: int) -> np.ndarray:
    return np.log(b.close / rolling_max(b.high, w))


def low_gap(b: Bars, w: int) -> np.ndarray:
    return np.log(b.close / rolling_min(b.low, w))


def price_std(b: Bars, w: int) -> np.ndarray:
    return std(b.close, w) / b.close


def regression(b: Bars, w: int, part: str) -> np.ndarray:
    """Least squares of Close on time over the window: slope / Close, R², or residual at t / Close."""
    t = np.arange(w) - (w - 1) / 2

    def stat(v: np.ndarray) -> np.ndarray:
        c = _centered(v)
        slope = (c * t).sum(axis=1) / (t @ t)  # not `c @ t`: BLAS blocking makes rows depend on n
        if part == "slope":
            return slope
        if part == "rsq":
            return np.where(np.ptp(v, axis=1) == 0, 0.0, div(slope**2 * (t @ t), (c * c).sum(axis=1)))
        return c[:, -1] - slope * t[-1]

    out = rolling(b.close, w, stat)
    return out if part == "rsq" else out / b.close


def quantile_gap(b: Bars, w: int, q: float) -> np.ndarray:
    return np.log(rolling(b.close, w, lambda v: np.quantile(v, q, axis=1)) / b.close)


def close_rank(b: Bars, w: int) -> np.ndarray:
    """Percentile rank of today's Close in its window (ties averaged, as pandas' rank(pct=True))."""
    def stat(v: np.ndarray) -> np.ndarray:
        last = v[:, -1:]
        return ((v < last).sum(axis=1) + ((v == last).sum(axis=1) + 1) / 2) / w

    return rolling(b.close, w, stat)


def rsv(b: Bars, w: int) -> np.ndarray:
    """Close's position between the window's lowest Low and highest High."""
    low = rolling_min(b.low, w)
    return div(b.close - low, rolling_max(b.high, w) - low)


def days_since(b: Bars, w: int, extreme: str) -> np.ndarray:
    """Days since the window's (most recent) highest High or lowest Low, as a share of w."""
    x = b.high if extreme == "high" else -b.low
    return rolling(x, w, lambda v: v[:, ::-1].argmax(axis=1).astype(np.float64)) / w


def high_low_order(b: Bars, w: int) -> np.ndarray:
    return days_since(b, w, "low") - days_since(b, w, "high")


def corr_close_volume(b: Bars, w: int) -> np.ndarray:
    return correlation(b.close, b.log_volume, w)


def corr_ret_volume_change(b: Bars, w: int) -> np.ndarray:
    return correlation(b.ret, b.log_volume - shift(b.log_volume, 1), w)


def move_share(b: Bars, w: int, up: bool) -> np.ndarray:
    """Share of days in the window with a rise (up) or a fall of Close."""
    return mean(signed(b.ret, (lambda r: r > 0) if up else (lambda r: r < 0)), w)


def gain_share(x: np.ndarray, w: int) -> np.ndarray:
    """Sum of rises over sum of absolute moves of x (RSI-like), 0 when x did not move."""
    change = x - shift(x, 1)
    return div(mean(np.where(np.isnan(change), np.nan, np.maximum(change, 0.0)), w), mean(np.abs(change), w))


def volume_z(b: Bars, w: int) -> np.ndarray:
    return zscore(b.log_volume, w)


def volume_gap(b: Bars, w: int) -> np.ndarray:
    return b.log_volume - mean(b.log_volume, w)


def volume_std(b: Bars, w: int) -> np.ndarray:
    return std(b.log_volume, w)


def volume_trend(b: Bars, short: int, long: int) -> np.ndarray:
    return mean(b.log_volume, short) - mean(b.log_volume, long)


def wvma(b: Bars, w: int) -> np.ndarray:
    """Coefficient of variation of volume-weighted absolute returns (Alpha158 WVMA)."""
    weighted = np.abs(b.ret) * b.volume
    return div(std(weighted, w), mean(weighted, w))


# TA-Lib: oscillators are unitless already; price-valued outputs are divided by Close.


def rsi(b: Bars, w: int) -> np.ndarray:
    return talib.RSI(b.close, timeperiod=w)


def cmo(b: Bars, w: int) -> np.ndarray:
    return talib.CMO(b.close, timeperiod=w)


def macd(b: Bars, output: int) -> np.ndarray:
    return talib.MACD(b.close, fastperiod=12, slowperiod=26, signalperiod=9)[output] / b.close


def ppo(b: Bars) -> np.ndarray:
    return talib.PPO(b.close, fastperiod=12, slowperiod=26, matype=1)


def trix(b: Bars, w: int) -> np.ndarray:
    return talib.TRIX(b.close, timeperiod=w)


def natr(b: Bars, w: int) -> np.ndarray:
    return talib.NATR(b.high, b.low, b.close, timeperiod=w)


def hlc(b: Bars, fn: Callable[..., np.ndarray], w: int) -> np.ndarray:
    """A TA-Lib (high, low, close, period) indicator: ADX, ADXR, DX, +DI, -DI, CCI, Williams %R."""
    return fn(b.high, b.low, b.close, timeperiod=w)


def mfi(b: Bars, w: int) -> np.ndarray:
    return talib.MFI(b.high, b.low, b.close, b.volume, timeperiod=w)


def aroon(b: Bars, w: int, output: str) -> np.ndarray:
    if output == "osc":
        return talib.AROONOSC(b.high, b.low, timeperiod=w)
    down, up = talib.AROON(b.high, b.low, timeperiod=w)
    return up if output == "up" else down


def bollinger(b: Bars, w: int, output: str) -> np.ndarray:
    upper, middle, lower = talib.BBANDS(b.close, timeperiod=w, nbdevup=2, nbdevdn=2, matype=0)
    if output == "pctb":
        return div(b.close - lower, upper - lower)
    return (upper - lower) / middle


def stoch(b: Bars, w: int, output: int) -> np.ndarray:
    return talib.STOCH(b.high, b.low, b.close, fastk_period=w, slowk_period=3, slowd_period=3)[output]


def stoch_rsi(b: Bars, w: int) -> np.ndarray:
    return talib.STOCHRSI(b.close, timeperiod=w, fastk_period=5, fastd_period=3)[0]


def ultosc(b: Bars) -> np.ndarray:
    return talib.ULTOSC(b.high, b.low, b.close, timeperiod1=7, timeperiod2=14, timeperiod3=28)


# -- the registry -------------------------------------------------------------------------------------


def each(template: str, compute: Callable[..., np.ndarray], windows: Iterable[int], /, **kwargs) -> list[Feature]:
    """One feature per window: `each("ret_{}d", ret, (5, 20))` -> ret_5d, ret_20d."""
    return [Feature(template.format(w), partial(compute, w=w, **kwargs)) for w in windows]


def one(name: str, compute: Callable[..., np.ndarray], /, **kwargs) -> Feature:
    return Feature(name, partial(compute, **kwargs))


CORE: tuple[Feature, ...] = (
    *each("ret_{}d", ret, (1, 5, 20)),
    *each("rv_{}d", rv, (5, 20)),
    one("range_1d", kbar, part="range"),
    one("body_1d", kbar, part="body"),
    one("gap_1d", kbar, part="gap"),
    *each("sma_gap_{}d", sma_gap, (5, 20, 60)),
    one("rsi_14", rsi, w=14),
    one("macd_12_26_9", macd, output=0),
    one("macd_hist_12_26_9", macd, output=2),
    one("natr_14", natr, w=14),
    one("adx_14", hlc, fn=talib.ADX, w=14),
    one("bb_pctb_20", bollinger, w=20, output="pctb"),
    one("bb_width_20", bollinger, w=20, output="width"),
    one("stoch_k_14", stoch, w=14, output=0),
    one("volume_z_20d", volume_z, w=20),
)

EXTENDED: tuple[Feature, ...] = (
    *each("ret_{}d", ret, (10, 60)),
    *each("rv_{}d", rv, (10, 60)),
    one("rv_ratio_5_20d", vol_ratio, short=5, long=20),
    one("parkinson_vol_20d", parkinson, w=20),
    one("garman_klass_vol_20d", garman_klass, w=20),
    one("ret_skew_20d", moment, w=20, power=3),
    one("ret_kurt_20d", moment, w=20, power=4),
    one("upper_shadow_1d", kbar, part="upper"),
    one("lower_shadow_1d", kbar, part="lower"),
    one("close_location_1d", kbar_share, part="close"),
    *each("sma_gap_{}d", sma_gap, (10, 120)),
    *each("ema_gap_{}d", ta_gap, (12, 26), fn=talib.EMA),
    one("high_gap_20d", high_gap, w=20),
    one("low_gap_20d", low_gap, w=20),
    *each("rsi_{}", rsi, (7, 28)),
    one("cci_20", hlc, fn=talib.CCI, w=20),
    one("willr_14", hlc, fn=talib.WILLR, w=14),
    one("mfi_14", mfi, w=14),
    one("plus_di_14", hlc, fn=talib.PLUS_DI, w=14),
    one("minus_di_14", hlc, fn=talib.MINUS_DI, w=14),
    one("aroon_osc_25", aroon, w=25, output="osc"),
    one("stoch_d_14", stoch, w=14, output=1),
    one("ultosc_7_14_28", ultosc),
    one("volume_z_60d", volume_z, w=60),
    one("volume_trend_5_20d", volume_trend, short=5, long=20),
)

ALPHA: tuple[Feature, ...] = (
    # price trend and level (Alpha158 ROC, MA, MAX, MIN, QTLU, QTLD, RANK, RSV) plus 52-week extremes
    *each("ret_{}d", ret, (30, 120, 250)),
    *each("ret_1d_lag{}", ret_lag, (1, 2, 3, 4)),
    *each("sma_gap_{}d", sma_gap, (30, 250)),
    *each("high_gap_{}d", high_gap, (5, 10, 30, 60, 250)),
    *each("low_gap_{}d", low_gap, (5, 10, 30, 60, 250)),
    *each("q80_gap_{}d", quantile_gap, WINDOWS, q=0.8),
    *each("q20_gap_{}d", quantile_gap, WINDOWS, q=0.2),
    *each("close_rank_{}d", close_rank, WINDOWS),
    *each("rsv_{}d", rsv, WINDOWS),
    # dispersion and linear trend (STD, BETA, RSQR, RESI)
    *each("price_std_{}d", price_std, WINDOWS),
    *each("slope_{}d", regression, WINDOWS, part="slope"),
    *each("rsq_{}d", regression, WINDOWS, part="rsq"),
    *each("resid_{}d", regression, WINDOWS, part="resid"),
    # timing of extremes (IMAX, IMIN, IMXD)
    *each("days_since_high_{}d", days_since, WINDOWS, extreme="high"),
    *each("days_since_low_{}d", days_since, WINDOWS, extreme="low"),
    *each("high_low_order_{}d", high_low_order, WINDOWS),
    # up/down counts and sums (CNTP, CNTN, SUMP)
    *each("up_days_{}d", move_share, WINDOWS, up=True),
    *each("down_days_{}d", move_share, WINDOWS, up=False),
    *each("gain_share_{}d", lambda b, w: gain_share(b.close, w), WINDOWS),
    # price-volume (CORR, CORD) and volume (VMA, VSTD, WVMA, VSUMP)
    *each("corr_close_volume_{}d", corr_close_volume, WINDOWS),
    *each("corr_ret_volume_change_{}d", corr_ret_volume_change, WINDOWS),
    *each("volume_gap_{}d", volume_gap, WINDOWS),
    *each("volume_std_{}d", volume_std, WINDOWS),
    *each("wvma_{}d", wvma, WINDOWS),
    *each("volume_gain_share_{}d", lambda b, w: gain_share(b.log_volume, w), WINDOWS),
    # candle shape as shares of the range (KMID2, KUP2, KLOW2)
    one("body_share_1d", kbar_share, part="body"),
    one("upper_shadow_share_1d", kbar_share, part="upper"),
    one("lower_shadow_share_1d", kbar_share, part="lower"),
    # volatility estimators
    *each("rv_{}d", rv, (120, 250)),
    one("rv_ratio_20_60d", vol_ratio, short=20, long=60),
    *each("parkinson_vol_{}d", parkinson, (5, 60)),
    *each("garman_klass_vol_{}d", garman_klass, (5, 60)),
    one("rogers_satchell_vol_20d", rogers_satchell, w=20),
    one("downside_vol_20d", semivol, w=20, side=-1),
    one("upside_vol_20d", semivol, w=20, side=1),
    one("ewma_vol_94", ewma_vol, lam=0.94),
    one("ret_skew_60d", moment, w=60, power=3),
    # more TA-Lib oscillators, trend strength and smoothed-price gaps
    one("cmo_14", cmo, w=14),
    one("ppo_12_26", ppo),
    one("trix_15", trix, w=15),
    one("dema_gap_20d", ta_gap, fn=talib.DEMA, w=20),
    one("tema_gap_20d", ta_gap, fn=talib.TEMA, w=20),
    one("kama_gap_30d", ta_gap, fn=talib.KAMA, w=30),
    *each("natr_{}", natr, (5, 28)),
    one("adx_28", hlc, fn=talib.ADX, w=28),
    one("adxr_14", hlc, fn=talib.ADXR, w=14),
    one("aroon_up_25", aroon, w=25, output="up"),
    one("aroon_down_25", aroon, w=25, output="down"),
    one("cci_14", hlc, fn=talib.CCI, w=14),
    one("willr_28", hlc, fn=talib.WILLR, w=28),
    one("mfi_28", mfi, w=28),
    one("stoch_rsi_14", stoch_rsi, w=14),
)

FEATURES: dict[str, Feature] = {f.name: f for f in (*CORE, *EXTENDED, *ALPHA)}


def compute_features(ohlcv: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """The named features of a validated OHLCV frame, one column each, NaN during each one's warm-up."""
    bars = Bars.from_frame(ohlcv)
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {name: FEATURES[name].compute(bars) for name in names}
    return pd.DataFrame(columns, index=ohlcv.index)
