"""Vectorised card-transaction simulator with fraud, drift and bias scenarios.

The design follows the generator of the public *Fraud Detection Handbook* (customers and
terminals on a 100x100 map, customers buy at terminals near home) and adds what a monitoring
loop needs: sensitive customer attributes, merchant categories and channels, four fraud
scenarios, drift and bias scenarios switchable from ``params.yaml``, and a label delay.

Every day is generated from its own random stream ``default_rng([seed, day, ...])``, so any
window of days is reproducible on its own: ``simulate_transactions(p, start_day=70, n_days=7)``
returns exactly the rows that a run over days 0..76 returns for days 70..76. The production
simulation relies on this to generate "future" weeks that continue the training data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from inferloop.core import schema as s

__all__ = [
    "ID_DAY_STRIDE",
    "SECONDS_PER_DAY",
    "BiasParams",
    "CustomerMixDrift",
    "DriftParams",
    "FraudParams",
    "MerchantShiftDrift",
    "NewFraudPatternDrift",
    "Population",
    "SeasonalAmountDrift",
    "SimulateParams",
    "build_population",
    "iter_days",
    "scenario_summary",
    "simulate_day",
    "simulate_transactions",
]


SECONDS_PER_DAY = 86_400
#: Transaction ids are ``day * ID_DAY_STRIDE + position``: unique and stable per window.
ID_DAY_STRIDE = 10_000_000


@dataclass(frozen=True)
class FraudParams:
    """Rates and shapes of the four baseline fraud scenarios.

    Rates are expected events per day per 1,000 customers (compromised terminals: per 1,000
    terminals), so the fraud rate stays the same whatever the simulated population size.
    """

    high_amount_per_1k: float = 1.0
    high_amount_multiplier: tuple[float, float] = (5.0, 15.0)
    compromised_per_1k_terminals: float = 0.5
    compromised_days: int = 21
    compromised_fraud_probability: float = 0.5
    takeovers_per_1k: float = 0.67
    takeover_days: int = 10
    takeover_fraud_share: float = 0.4
    takeover_amount_multiplier: tuple[float, float] = (2.5, 6.0)
    card_testing_per_1k: float = 0.67
    card_testing_burst: tuple[int, int] = (5, 15)
    card_testing_amount: tuple[float, float] = (0.5, 3.0)
    card_testing_minutes: int = 45


@dataclass(frozen=True)
class SeasonalAmountDrift:
    """All amounts are multiplied by ``factor`` from ``start_day`` on."""

    enabled: bool = False
    start_day: int = 0
    factor: float = 1.35


@dataclass(frozen=True)
class NewFraudPatternDrift:
    """From ``start_day``: night-time, moderate-amount fraud at fuel stations (contactless)."""

    enabled: bool = False
    start_day: int = 0
    per_1k: float = 10.0


@dataclass(frozen=True)
class CustomerMixDrift:
    """From ``start_day``: ``n_customers`` new, mostly online customers of one age band join."""

    enabled: bool = False
    start_day: int = 0
    n_customers: int = 1500
    age_band: str = "18-25"
    online_share: float = 0.7


@dataclass(frozen=True)
class MerchantShiftDrift:
    """From ``start_day``: transactions at one merchant category become ``factor`` x as common."""

    enabled: bool = False
    start_day: int = 0
    category: str = "travel"
    factor: float = 4.0


@dataclass(frozen=True)
class DriftParams:
    """The four drift scenarios; each is off unless ``enabled``."""

    seasonal_amount: SeasonalAmountDrift = field(default_factory=SeasonalAmountDrift)
    new_fraud_pattern: NewFraudPatternDrift = field(default_factory=NewFraudPatternDrift)
    customer_mix: CustomerMixDrift = field(default_factory=CustomerMixDrift)
    merchant_shift: MerchantShiftDrift = field(default_factory=MerchantShiftDrift)


@dataclass(frozen=True)
class BiasParams:
    """A customer group whose fraud looks like its normal spending (hard for any model).

    Fraud against the group's customers is camouflaged: stolen cards and takeovers are used for
    ordinary amounts, card testers leave the group alone (no tell-tale bursts), and
    ``extra_per_1k`` (per 1,000 customers per day) additional frauds at the customer's usual terminals, usual amounts and
    usual hours are added.
    """

    enabled: bool = False
    start_day: int = 0
    attribute: str = s.AGE_BAND
    group: str = "61+"
    extra_per_1k: float = 2.0


@dataclass(frozen=True)
class SimulateParams:
    """The ``simulate`` section of params.yaml."""

    seed: int = 7
    start_date: str = "2026-01-05"
    n_days: int = 84
    n_customers: int = 3000
    n_terminals: int = 2000
    online_terminal_share: float = 0.1
    terminals_per_customer: int = 20
    tx_per_day: tuple[float, float] = (0.2, 4.0)
    amount_mean: tuple[float, float] = (5.0, 120.0)
    label_delay_days: int = 7
    fraud: FraudParams = field(default_factory=FraudParams)
    drift: DriftParams = field(default_factory=DriftParams)
    bias: BiasParams = field(default_factory=BiasParams)


@dataclass(frozen=True)
class Population:
    """Customers and terminals, fixed for a seed. Arrays are aligned by position."""

    customer_id: np.ndarray
    home: np.ndarray  # (n, 2) map coordinates
    mean_amount: np.ndarray
    tx_per_day: np.ndarray
    online_share: np.ndarray
    age_band: np.ndarray
    region: np.ndarray
    active_from: np.ndarray  # first day a customer transacts (customer-mix drift)
    candidates: np.ndarray  # (n, k) indices of nearby physical terminals
    terminal_id: np.ndarray
    terminal_category: np.ndarray
    terminal_online: np.ndarray

    @property
    def physical_terminals(self) -> np.ndarray:
        """Indices of physical (card-present) terminals."""
        return np.flatnonzero(~self.terminal_online)

    @property
    def online_terminals(self) -> np.ndarray:
        """Indices of online merchants."""
        return np.flatnonzero(self.terminal_online)

    def customers_table(self) -> pd.DataFrame:
        """One row per customer with its profile (for notebooks and tests)."""
        return pd.DataFrame(
            {
                s.CUSTOMER_ID: self.customer_id,
                "x": self.home[:, 0],
                "y": self.home[:, 1],
                "mean_amount": self.mean_amount,
                "tx_per_day": self.tx_per_day,
                "online_share": self.online_share,
                s.AGE_BAND: self.age_band,
                s.REGION: self.region,
                "active_from": self.active_from,
            }
        )


# --------------------------------------------------------------------------- population

_AGE_PROBS = np.array([0.15, 0.35, 0.32, 0.18])
_AGE_ONLINE = np.array([0.35, 0.25, 0.15, 0.08])  # younger customers buy online more
_AGE_AMOUNT = np.array([0.7, 1.0, 1.2, 0.9])
_CATEGORY_PROBS = np.array([0.26, 0.16, 0.12, 0.16, 0.08, 0.05, 0.09, 0.08])


def _draw_customers(
    rng: np.random.Generator, n: int, params: SimulateParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Home, age band index, mean amount, daily rate and online share of ``n`` customers."""
    home = rng.uniform(0, 100, size=(n, 2))
    age_idx = rng.choice(len(s.AGE_BANDS), size=n, p=_AGE_PROBS)
    mean_amount = rng.uniform(*params.amount_mean, size=n)
    tx_per_day = rng.uniform(*params.tx_per_day, size=n)
    online_share = rng.uniform(0.5, 1.5, size=n)
    return home, age_idx, mean_amount, tx_per_day, online_share


def build_population(params: SimulateParams) -> Population:
    """Draw customers and terminals for ``params.seed`` (independent of the day window).

    Customers who join with the customer-mix drift come from their own random stream, so the
    base population (and every day before the drift) is identical with the drift on or off.
    """
    rng = np.random.default_rng([params.seed, 0xC0FFEE])
    home, age_idx, mean_amount, tx_per_day, online_share = _draw_customers(
        rng, params.n_customers, params
    )
    active_from = np.zeros(params.n_customers, dtype=np.int64)
    mix = params.drift.customer_mix
    if mix.enabled and mix.n_customers > 0:
        new = _draw_customers(
            np.random.default_rng([params.seed, 0xC0FFEE, 1]), mix.n_customers, params
        )
        home, age_idx, mean_amount, tx_per_day, online_share = (
            np.concatenate([a, b])
            for a, b in zip(
                (home, age_idx, mean_amount, tx_per_day, online_share), new, strict=True
            )
        )
        age_idx[params.n_customers :] = s.AGE_BANDS.index(mix.age_band)
        active_from = np.concatenate(
            [active_from, np.full(mix.n_customers, mix.start_day, np.int64)]
        )
    mean_amount = mean_amount * _AGE_AMOUNT[age_idx]
    online_share = np.clip(_AGE_ONLINE[age_idx] * online_share, 0, 0.9)
    if mix.enabled and mix.n_customers > 0:
        online_share[params.n_customers :] = mix.online_share
    n = len(home)

    trng = np.random.default_rng([params.seed, 0x7E57])
    n_term = params.n_terminals
    term_xy = trng.uniform(0, 100, size=(n_term, 2))
    term_online = trng.random(n_term) < params.online_terminal_share
    term_cat = trng.choice(len(s.MERCHANT_CATEGORIES), size=n_term, p=_CATEGORY_PROBS)
    # online terminals sell online services or retail/electronics/travel
    online_cats = np.array([7, 3, 4, 5])
    term_cat[term_online] = trng.choice(online_cats, size=int(term_online.sum()))

    physical = np.flatnonzero(~term_online)
    k = min(params.terminals_per_customer, len(physical))
    _, nearest = cKDTree(term_xy[physical]).query(home, k=k)
    candidates = physical[np.asarray(nearest).reshape(n, k)]

    return Population(
        customer_id=np.arange(n, dtype=np.int64),
        home=home,
        mean_amount=mean_amount,
        tx_per_day=tx_per_day,
        online_share=online_share,
        age_band=np.asarray(s.AGE_BANDS, dtype=object)[age_idx],
        region=_region_of(home),
        active_from=active_from,
        candidates=candidates,
        terminal_id=np.arange(n_term, dtype=np.int64),
        terminal_category=np.asarray(s.MERCHANT_CATEGORIES, dtype=object)[term_cat],
        terminal_online=term_online,
    )


def _region_of(xy: np.ndarray) -> np.ndarray:
    """Region by the quadrant of the home location around the map centre."""
    dx, dy = xy[:, 0] - 50.0, xy[:, 1] - 50.0
    vertical = np.abs(dy) >= np.abs(dx)
    region = np.where(
        vertical, np.where(dy >= 0, "north", "south"), np.where(dx >= 0, "east", "west")
    )
    return region.astype(object)


# --------------------------------------------------------------------------- one day


@dataclass
class _Rows:
    """Columns of transactions under construction (positions into the population)."""

    customer: np.ndarray
    terminal: np.ndarray
    seconds: np.ndarray
    amount: np.ndarray
    online: np.ndarray
    fraud: np.ndarray
    scenario: np.ndarray

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        return _Rows(*(np.concatenate([getattr(p, f) for p in parts]) for f in _ROW_FIELDS))


_ROW_FIELDS = ("customer", "terminal", "seconds", "amount", "online", "fraud", "scenario")


def _day_rng(seed: int, day: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day, stream])


def _draw_terminals(
    pop: Population, customers: np.ndarray, online: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A terminal per transaction: a nearby physical one, or any online merchant."""
    k = pop.candidates.shape[1]
    terminal = pop.candidates[customers, rng.integers(0, k, size=len(customers))]
    online_pool = pop.online_terminals
    if len(online_pool):
        terminal = np.where(
            online, online_pool[rng.integers(0, len(online_pool), len(customers))], terminal
        )
    return terminal


def _genuine(pop: Population, params: SimulateParams, day: int) -> _Rows:
    rng = _day_rng(params.seed, day, 1)
    active = pop.active_from <= day
    weekend = (
        1.15 if (pd.Timestamp(params.start_date) + pd.Timedelta(days=day)).dayofweek >= 5 else 1.0
    )
    counts = rng.poisson(pop.tx_per_day * weekend * active)
    customers = np.repeat(np.arange(len(counts)), counts)
    n = len(customers)
    # Time of day ~ N(13h, 4.5h): quiet nights, as in the Handbook's generator.
    seconds = rng.normal(13 * 3600, 4.5 * 3600, size=n) % SECONDS_PER_DAY
    amount = pop.mean_amount[customers] * rng.lognormal(-0.18, 0.6, size=n)
    online = rng.random(n) < pop.online_share[customers]
    terminal = _draw_terminals(pop, customers, online, rng)
    shift = params.drift.merchant_shift
    if shift.enabled and day >= shift.start_day:
        terminal = _shift_merchants(pop, shift, customers, terminal, online, rng)
    return _Rows(
        customers, terminal, seconds, amount, online, np.zeros(n, np.int8), np.zeros(n, np.int8)
    )


def _shift_merchants(
    pop: Population,
    shift: MerchantShiftDrift,
    customers: np.ndarray,
    terminal: np.ndarray,
    online: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Re-route transactions so that ``shift.category`` becomes ``factor`` times as common."""
    in_cat = pop.terminal_category == shift.category
    base_share = float(np.mean(in_cat[terminal]))
    p = min(0.6, (shift.factor - 1.0) * base_share)
    pool_phys = np.flatnonzero(in_cat & ~pop.terminal_online)
    pool_online = np.flatnonzero(in_cat & pop.terminal_online)
    moved = rng.random(len(terminal)) < p
    terminal = terminal.copy()
    for pool, mask in ((pool_phys, moved & ~online), (pool_online, moved & online)):
        if len(pool):
            terminal[mask] = pool[rng.integers(0, len(pool), int(mask.sum()))]
    return terminal


def _per_1k(pop: Population) -> float:
    """Scenario rates are per 1,000 customers per day, so fraud rates do not depend on size."""
    return int((pop.active_from == 0).sum()) / 1000.0


def _pick_customers(pop: Population, day: int, n: int, rng: np.random.Generator) -> np.ndarray:
    active = np.flatnonzero(pop.active_from <= day)
    return active[rng.integers(0, len(active), size=n)]


def _high_amount(pop: Population, p: SimulateParams, day: int) -> _Rows:
    rng = _day_rng(p.seed, day, 2)
    n = rng.poisson(p.fraud.high_amount_per_1k * _per_1k(pop))
    customers = _pick_customers(pop, day, n, rng)
    online = rng.random(n) < 0.5
    # a stolen card is used anywhere: uniformly random terminal, not the customer's usual ones
    terminal = rng.integers(0, len(pop.terminal_id), size=n)
    terminal = np.where(online, _draw_terminals(pop, customers, np.ones(n, bool), rng), terminal)
    online = pop.terminal_online[terminal]
    multiplier = rng.uniform(*p.fraud.high_amount_multiplier, size=n)
    if _bias_active(p, day):  # the biased group's stolen cards are used for ordinary amounts
        multiplier = np.where(
            _in_bias_group(pop, p, customers), rng.lognormal(-0.18, 0.6, size=n), multiplier
        )
    amount = pop.mean_amount[customers] * multiplier
    seconds = rng.uniform(0, SECONDS_PER_DAY - 1, size=n)
    code = s.SCENARIO_CODES["high_amount"]
    return _Rows(
        customers, terminal, seconds, amount, online, np.ones(n, np.int8), np.full(n, code, np.int8)
    )


def _chosen_each_day(
    seed: int, day: int, stream: int, rate: float, size: int, span: int
) -> np.ndarray:
    """Indices chosen on each of the ``span`` days up to ``day`` (compromises, takeovers)."""
    chosen = [
        _day_rng(seed, d, stream).integers(
            0, size, size=_day_rng(seed, d, stream + 100).poisson(rate)
        )
        for d in range(max(0, day - span + 1), day + 1)
    ]
    return np.unique(np.concatenate(chosen)) if chosen else np.empty(0, np.int64)


def _apply_compromised_terminals(rows: _Rows, pop: Population, p: SimulateParams, day: int) -> None:
    bad = _chosen_each_day(
        p.seed,
        day,
        3,
        p.fraud.compromised_per_1k_terminals * len(pop.terminal_id) / 1000,
        len(pop.terminal_id),
        p.fraud.compromised_days,
    )
    rng = _day_rng(p.seed, day, 4)
    hit = np.isin(rows.terminal, bad) & (
        rng.random(len(rows.terminal)) < p.fraud.compromised_fraud_probability
    )
    rows.fraud[hit] = 1
    rows.scenario[hit] = s.SCENARIO_CODES["compromised_terminal"]


def _apply_takeovers(rows: _Rows, pop: Population, p: SimulateParams, day: int) -> None:
    victims = _chosen_each_day(
        p.seed,
        day,
        5,
        p.fraud.takeovers_per_1k * _per_1k(pop),
        p.n_customers,
        p.fraud.takeover_days,
    )
    rng = _day_rng(p.seed, day, 6)
    hit = np.isin(rows.customer, victims) & (
        rng.random(len(rows.customer)) < p.fraud.takeover_fraud_share
    )
    hit &= rows.fraud == 0
    multiplier = rng.uniform(*p.fraud.takeover_amount_multiplier, size=len(rows.customer))
    if _bias_active(p, day):  # the biased group's takeovers keep the usual amounts
        multiplier = np.where(_in_bias_group(pop, p, rows.customer), 1.0, multiplier)
    rows.amount[hit] *= multiplier[hit]
    rows.fraud[hit] = 1
    rows.scenario[hit] = s.SCENARIO_CODES["account_takeover"]


def _card_testing(pop: Population, p: SimulateParams, day: int) -> _Rows:
    rng = _day_rng(p.seed, day, 7)
    n_bursts = rng.poisson(p.fraud.card_testing_per_1k * _per_1k(pop))
    lo, hi = p.fraud.card_testing_burst
    sizes = rng.integers(lo, hi + 1, size=n_bursts)
    victims = _pick_customers(pop, day, n_bursts, rng)
    if _bias_active(p, day):  # card testers never pick the biased group: its fraud leaves no burst
        victims = _outside_bias_group(pop, p, victims)
    customers = np.repeat(victims, sizes)
    starts = np.repeat(
        rng.uniform(0, SECONDS_PER_DAY - p.fraud.card_testing_minutes * 60, n_bursts), sizes
    )
    seconds = starts + rng.uniform(0, p.fraud.card_testing_minutes * 60, size=len(customers))
    n = len(customers)
    online = np.ones(n, dtype=bool)
    terminal = _draw_terminals(pop, customers, online, rng)
    amount = rng.uniform(*p.fraud.card_testing_amount, size=n)
    code = s.SCENARIO_CODES["card_testing"]
    return _Rows(
        customers, terminal, seconds, amount, online, np.ones(n, np.int8), np.full(n, code, np.int8)
    )


def _new_pattern(pop: Population, p: SimulateParams, day: int) -> _Rows:
    """Night-time contactless fraud at fuel stations with ordinary amounts."""
    rng = _day_rng(p.seed, day, 8)
    n = rng.poisson(p.drift.new_fraud_pattern.per_1k * _per_1k(pop))
    customers = _pick_customers(pop, day, n, rng)
    fuel = np.flatnonzero((pop.terminal_category == "fuel") & ~pop.terminal_online)
    terminal = fuel[rng.integers(0, len(fuel), size=n)]
    seconds = rng.uniform(1 * 3600, 5 * 3600, size=n)
    amount = pop.mean_amount[customers] * rng.uniform(1.0, 2.5, size=n)
    code = s.SCENARIO_CODES["new_pattern"]
    return _Rows(
        customers,
        terminal,
        seconds,
        amount,
        np.zeros(n, bool),
        np.ones(n, np.int8),
        np.full(n, code, np.int8),
    )


def _bias_active(p: SimulateParams, day: int) -> bool:
    return p.bias.enabled and day >= p.bias.start_day


def _in_bias_group(pop: Population, p: SimulateParams, customers: np.ndarray) -> np.ndarray:
    attr = pop.age_band if p.bias.attribute == s.AGE_BAND else pop.region
    return np.asarray(attr[customers] == p.bias.group)


def _outside_bias_group(pop: Population, p: SimulateParams, customers: np.ndarray) -> np.ndarray:
    """Replace customers of the biased group by the next customer outside it (deterministic)."""
    inside = _in_bias_group(pop, p, pop.customer_id)
    outside = np.flatnonzero(~inside)
    if not len(outside):
        return customers
    nxt = np.minimum(np.searchsorted(outside, customers), len(outside) - 1)
    return np.where(inside[customers], outside[nxt], customers)


def _camouflaged(pop: Population, p: SimulateParams, day: int) -> _Rows:
    """Fraud on the biased group that mimics each customer's normal spending."""
    rng = _day_rng(p.seed, day, 9)
    group = np.flatnonzero(_in_bias_group(pop, p, pop.customer_id) & (pop.active_from <= day))
    n = rng.poisson(p.bias.extra_per_1k * _per_1k(pop)) if len(group) else 0
    customers = group[rng.integers(0, max(len(group), 1), size=n)]
    seconds = rng.normal(13 * 3600, 4.5 * 3600, size=n) % SECONDS_PER_DAY
    amount = pop.mean_amount[customers] * rng.lognormal(-0.18, 0.6, size=n)
    online = rng.random(n) < pop.online_share[customers]
    terminal = _draw_terminals(pop, customers, online, rng)
    code = s.SCENARIO_CODES["camouflaged"]
    return _Rows(
        customers, terminal, seconds, amount, online, np.ones(n, np.int8), np.full(n, code, np.int8)
    )


def simulate_day(pop: Population, params: SimulateParams, day: int) -> pd.DataFrame:
    """All transactions of one day, sorted by time, with fraud labels and scenario codes."""
    rows = _genuine(pop, params, day)
    _apply_compromised_terminals(rows, pop, params, day)
    _apply_takeovers(rows, pop, params, day)
    parts = [rows, _high_amount(pop, params, day), _card_testing(pop, params, day)]
    if params.drift.new_fraud_pattern.enabled and day >= params.drift.new_fraud_pattern.start_day:
        parts.append(_new_pattern(pop, params, day))
    if _bias_active(params, day):
        parts.append(_camouflaged(pop, params, day))
    return _to_frame(pop, params, day, _Rows.concat(parts))


def _to_frame(pop: Population, params: SimulateParams, day: int, rows: _Rows) -> pd.DataFrame:
    seasonal = params.drift.seasonal_amount
    amount = rows.amount * (
        seasonal.factor if seasonal.enabled and day >= seasonal.start_day else 1.0
    )
    order = np.lexsort((rows.customer, rows.seconds))
    rows = _Rows(*(getattr(rows, f)[order] for f in _ROW_FIELDS))
    amount = np.round(np.maximum(amount[order], 0.01), 2).astype(np.float64)
    day_start = pd.Timestamp(params.start_date) + pd.Timedelta(days=day)
    timestamp = day_start + pd.to_timedelta(rows.seconds.astype(np.int64), unit="s")
    n = len(rows.customer)
    channel = np.where(
        rows.online,
        "online",
        np.where((amount < 60) & ((rows.customer + rows.terminal) % 3 > 0), "contactless", "chip"),
    )
    return pd.DataFrame(
        {
            s.TRANSACTION_ID: day * ID_DAY_STRIDE + np.arange(n, dtype=np.int64),
            s.TIMESTAMP: timestamp,
            s.CUSTOMER_ID: pop.customer_id[rows.customer],
            s.TERMINAL_ID: pop.terminal_id[rows.terminal],
            s.AMOUNT: amount,
            s.CHANNEL: channel.astype(object),
            s.MERCHANT_CATEGORY: pop.terminal_category[rows.terminal],
            s.AGE_BAND: pop.age_band[rows.customer],
            s.REGION: pop.region[rows.customer],
            s.TARGET: rows.fraud.astype(np.int8),
            s.LABEL_AVAILABLE_AT: timestamp + pd.Timedelta(days=params.label_delay_days),
            s.FRAUD_SCENARIO: rows.scenario.astype(np.int8),
        }
    )


def iter_days(params: SimulateParams, start_day: int, n_days: int) -> Iterator[pd.DataFrame]:
    """Yield one frame per day of the window ``[start_day, start_day + n_days)``."""
    pop = build_population(params)
    for day in range(start_day, start_day + n_days):
        yield simulate_day(pop, params, day)


def simulate_transactions(
    params: SimulateParams, *, start_day: int = 0, n_days: int | None = None, progress: bool = False
) -> pd.DataFrame:
    """Simulate transactions for days ``[start_day, start_day + n_days)``.

    Parameters
    ----------
    params:
        The ``simulate`` section of params.yaml.
    start_day, n_days:
        The window, in days after ``params.start_date``; ``n_days`` defaults to ``params.n_days``.
    progress:
        Show a progress bar over days.

    Returns
    -------
    pandas.DataFrame
        One row per transaction in the raw contract's columns plus ``fraud_scenario``,
        sorted by time.
    """
    days = params.n_days if n_days is None else n_days
    if days <= 0:
        raise ValueError(f"n_days must be positive, got {days}")
    frames = list(
        tqdm(
            iter_days(params, start_day, days),
            total=days,
            disable=not progress,
            desc="simulate",
            unit="day",
        )
    )
    df = pd.concat(frames, ignore_index=True)
    for col in (s.CHANNEL, s.MERCHANT_CATEGORY, s.AGE_BAND, s.REGION):
        df[col] = df[col].astype(str)
    return df


def scenario_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Transactions and fraud counts per scenario (for notebooks and tests)."""
    names = {v: k for k, v in s.SCENARIO_CODES.items()}
    out = df.groupby(s.FRAUD_SCENARIO).size().rename("transactions").to_frame()
    out.index = out.index.map(names)
    out["share"] = out["transactions"] / len(df)
    return out
