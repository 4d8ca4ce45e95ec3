"""GPU prices on demand and on spot, dated and sourced, from a file.

Chapter 12, "Cost optimization: spot and preemptible GPU instances".
The spot simulation prices a day from `gpu_prices.toml`: per provider
and GPU, USD per GPU-hour on demand and on spot, each entry with the
date it was read, its sources, and which figures are estimates; and
each provider's preemption notice. A file missing a field, or with a
price that cannot be one, is refused with the entry and field named.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

PRICES = Path(__file__).resolve().parent / "gpu_prices.toml"
FIGURES = ("on_demand", "spot")  # what `estimated` may name


class PriceFileError(ValueError):
    """The price file cannot be used: which entry, which field."""


@dataclass(frozen=True)
class GpuPrice:
    provider: str
    gpu: str
    instance: str
    region: str
    on_demand_per_gpu_hour: float
    spot_per_gpu_hour: float
    date_read: dt.date
    on_demand_source: str
    spot_source: str
    estimated: tuple[str, ...]
    note: str

    @property
    def spot_discount(self) -> float:
        """The share of the on-demand price spot saves."""
        return 1.0 - self.spot_per_gpu_hour / self.on_demand_per_gpu_hour


@dataclass(frozen=True)
class PriceBook:
    prices: tuple[GpuPrice, ...]
    notice_s: dict[str, float]  # provider: seconds of warning
    notice_sources: dict[str, str]

    def find(self, provider: str, gpu: str) -> GpuPrice:
        for price in self.prices:
            if price.provider == provider and price.gpu == gpu:
                return price
        raise KeyError(f"no price for {gpu} on {provider}")

    def gpus(self, provider: str) -> list[str]:
        return [p.gpu for p in self.prices if p.provider == provider]


def _text(entry: dict[str, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PriceFileError(f"{where}: {key} must be non-empty text")
    return value


def _price(entry: dict[str, object], key: str, where: str) -> float:
    value = entry.get(key)
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not math.isfinite(value) or value <= 0):
        raise PriceFileError(f"{where}: {key} must be a positive price")
    return float(value)


def _date(entry: dict[str, object], where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(_text(entry, "date_read", where))
    except ValueError:
        raise PriceFileError(f"{where}: date_read must be YYYY-MM-DD"
                             ) from None


def _source(entry: dict[str, object], key: str, where: str) -> str:
    url = _text(entry, key, where)
    if not url.startswith("https://"):
        raise PriceFileError(f"{where}: {key} must be an https:// URL")
    return url


def _entry(entry: dict[str, object], index: int) -> GpuPrice:
    where = f"price #{index + 1}"
    estimated = entry.get("estimated", [])
    if (not isinstance(estimated, list)
            or any(e not in FIGURES for e in estimated)):
        raise PriceFileError(f"{where}: estimated may only name"
                             f" {', '.join(FIGURES)}")
    price = GpuPrice(
        provider=_text(entry, "provider", where),
        gpu=_text(entry, "gpu", where),
        instance=_text(entry, "instance", where),
        region=_text(entry, "region", where),
        on_demand_per_gpu_hour=_price(entry, "on_demand_per_gpu_hour",
                                      where),
        spot_per_gpu_hour=_price(entry, "spot_per_gpu_hour", where),
        date_read=_date(entry, where),
        on_demand_source=_source(entry, "on_demand_source", where),
        spot_source=_source(entry, "spot_source", where),
        estimated=tuple(str(e) for e in estimated),
        note=str(entry.get("note", "")))
    if price.spot_per_gpu_hour >= price.on_demand_per_gpu_hour:
        raise PriceFileError(f"{where}: spot must cost less than on demand")
    return price


def load_prices(path: Path = PRICES) -> PriceBook:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PriceFileError(f"cannot read {path}: {error.strerror}"
                             ) from None
    except tomllib.TOMLDecodeError as error:
        raise PriceFileError(f"{path}: invalid TOML: {error}") from None
    entries = raw.get("price")
    if not isinstance(entries, list) or not entries:
        raise PriceFileError(f"{path}: no [[price]] entries")
    notice = raw.get("notice")
    if not isinstance(notice, dict):
        raise PriceFileError(f"{path}: no [notice] table")
    _date(notice, "notice")
    prices = tuple(_entry(entry, i) for i, entry in enumerate(entries))
    providers = sorted({p.provider for p in prices})
    return PriceBook(
        prices,
        {p: _price(notice, p, "notice") for p in providers},
        {p: _source(notice, f"{p}_source", "notice") for p in providers})
