"""The tables a Workspace starts from: offers (cache over snapshot, or a CSV, at the team's
prices), profiles from a CSV, the profile store, and price refreshes.

Thin on purpose: fetching, caching and querying live in `pricing/` and `profiles/`; this is the
one place the shells reach them through.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from placement.problem import candidate_offers
from placement.spec import ApplicationSpec
from pricing import table as ot
from profiles import table as pt
from profiles.errors import UserError


class InputError(UserError):
    """A user-supplied file or value the tool cannot use; `str()` is the one line shown."""


def load_offers(offers_csv: str | Path | None = None) -> pd.DataFrame:
    """Refreshed prices from the catalog cache over the embedded snapshot, or a user's OfferTable
    CSV (DESIGN.md columns). Warnings (unreadable cache files) ride in `df.attrs["warnings"]`."""
    if offers_csv is None:
        from pricing.cache import load_offers as cached_offers

        offers, warnings = cached_offers()
        offers.attrs["warnings"] = warnings
        return offers
    text = [ot.OFFER, ot.TIER, ot.PROVIDER, ot.REGION, ot.INSTANCE_TYPE, ot.HARDWARE, ot.ACCELERATOR,
            ot.ARCH, ot.PRICE_SOURCE, ot.PRICE_DATE]
    return ot.validate_offer_table(read_csv(offers_csv, text_columns=text), origin=str(offers_csv))


def load_profiles(profiles_csv: str | Path) -> pd.DataFrame:
    text = [pt.PIECE, pt.HARDWARE, pt.RUNTIME, pt.SOURCE, pt.MEASURED_AT, pt.TVM_VERSION]
    table = pt.validate_profile_table(read_csv(profiles_csv, text_columns=text), origin=str(profiles_csv))
    if table.empty:
        raise InputError(f"{profiles_csv}: no profile rows")
    return table


def read_csv(path: str | Path, text_columns: list[str] | None = None) -> pd.DataFrame:
    """A CSV as a DataFrame; `text_columns` stay text (an offer named "inf" is not a number)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return pd.read_csv(path, dtype={c: str for c in text_columns or []})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def team_offers(spec: ApplicationSpec, base_dir: Path | None, offers: pd.DataFrame) -> pd.DataFrame:
    """The offers at the team's own prices: the spec's override CSV, then its discounts."""
    hw = spec.hardware
    if hw.price_overrides:
        from pricing.overrides import apply_overrides as apply_price_overrides

        path = Path(hw.price_overrides)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise InputError(f"hardware.price_overrides: {path}: no such file")
        offers = apply_price_overrides(offers, path)
    if hw.discount_percent:
        from pricing.overrides import apply_discounts

        offers = apply_discounts(offers, dict(hw.discount_percent))
    return offers


def select_offers_in(offers: pd.DataFrame, *, tiers=None, **filters) -> pd.DataFrame:
    from pricing.query import select_offers

    sel = select_offers(offers, **filters)
    return sel[sel[ot.TIER].isin(list(tiers))] if tiers else sel


def list_offers(offers_csv: str | Path | None = None, *, max_age_days: int | None = None,
                **filters) -> tuple[pd.DataFrame, list[str]]:
    """The offers the planner can buy (fetched prices over the snapshot, or a CSV), filtered,
    with warnings about prices older than `max_age_days`. No spec needed."""
    from pricing.cache import load_offers as cached_offers
    from pricing.cache import stale_price_warning

    if offers_csv is not None:
        offers = load_offers(offers_csv)
        warnings = [] if max_age_days is None else [
            w for d in sorted(set(offers[ot.PRICE_DATE].astype(str)))
            if (w := stale_price_warning(d, max_age_days))]
    else:
        offers, warnings = cached_offers(max_age_days=max_age_days)
    selected = select_offers_in(offers, **filters)
    if selected.empty:
        raise InputError("prices: no offers match these filters")
    return selected, warnings


def refresh_prices(provider: str, region: str, *, instance_types=None, max_age_days=None,
                   on_progress=None):
    """Fetch one provider region's current prices into the catalog cache; a failed fetch keeps
    the previous prices and says so in the result (`status`, `warnings`)."""
    from pricing.cache import refresh
    from pricing.fetch import PROVIDER_MODULES, PriceFetchError

    if provider not in PROVIDER_MODULES:
        raise PriceFetchError(f"prices refresh: --provider must be one of {', '.join(PROVIDER_MODULES)}")
    return refresh(provider, region, instance_types=instance_types, max_age_days=max_age_days,
                   on_progress=on_progress)


def profile_store():
    """The rows measured on this machine and imported (list, export, import)."""
    from profiles.cache import ProfileCache

    cache = ProfileCache()
    cache.sync_store()  # rows measured before the store existed
    return cache.store


def candidate_hardware(spec: ApplicationSpec, offers: pd.DataFrame) -> list[str]:
    """Hardware classes behind the offers the spec allows: what must be profiled."""
    return sorted(set(candidate_offers(spec, offers)[ot.HARDWARE]))


def tvm_version_of(profiles: pd.DataFrame) -> str | None:
    versions = sorted({str(v) for v in profiles[pt.TVM_VERSION].dropna() if str(v)})
    return ", ".join(versions) if versions else None


def demo_spec_path() -> Path:
    from importlib.resources import files

    return Path(str(files("placement") / "data" / "demo.yaml"))


def example_spec_paths() -> dict[str, Path]:
    """The bundled examples by name: the demo and every spec under examples/ in a source tree."""
    found = {"demo": demo_spec_path()}
    examples = Path(__file__).resolve().parents[1] / "examples"
    if examples.is_dir():
        for path in sorted(examples.glob("*.yaml")):
            found[path.stem] = path
    return found


def parse_assignments(items: list[str]) -> dict[str, str]:
    """`["piece=offer[/runtime][/rN]", ...]` -> {piece: offer}, as `evaluate` takes them."""
    wanted = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--assign {item!r}: expected piece=offer")
        piece, offer = item.split("=", 1)
        wanted[piece.strip()] = offer.strip()
    return wanted


def parse_batches(text: str | None) -> tuple[int, ...] | None:
    """'1,2,4,8' -> (1, 2, 4, 8); None stays None (profile the spec's shapes as given)."""
    if not text:
        return None
    try:
        values = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InputError(f"--batches: expected comma-separated positive integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise InputError(f"--batches: batch sizes must be positive, got {text!r}")
    return values
