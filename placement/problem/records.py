"""The records a `Problem` is made of: `Option` (one way to run a piece, its numbers settled)
and the `SplitHead` a split option carries."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SplitHead:
    """Where and how the head of a split option runs (the tail is the option itself)."""

    offer: str  # the edge offer
    location: str  # the device key: the offer, or `offer@segment` in a mixed fleet
    device: str
    hardware: str
    runtime: str
    latency_ms: float
    utilisation: float  # share of one site's device
    memory_mb: float
    latency_source: str
    piece: str  # the head's profiled piece (`model@tensor:head`)
    tail_piece: str



@dataclass(frozen=True)
class Option:
    """One way to run a piece: an offer, a runtime, a batch size and a replica count."""

    id: str
    piece: str
    offer: str
    tier: str
    location: str
    provider: str
    region: str
    instance_type: str
    hardware: str
    runtime: str
    batch: int
    replicas: int  # cloud: replicas of the pool; edge: 1 device per site
    compute_ms_p95: float  # x calls_per_request, run one after another
    wait_ms: float  # batch fill + queueing, each at the SLO percentile
    utilisation: float  # cloud: per replica; edge: share of one site's device
    memory_mb: float
    monthly_usd: float  # cloud compute; edge devices are costed per device, not per piece
    hourly_usd: float
    hourly_usd_by_model: dict = field(hash=False, compare=False)
    latency_source: str = ""
    error_band: float | None = None
    price_source: str = ""
    price_date: str = ""
    tvm_target: dict | None = field(default=None, hash=False, compare=False)
    batch_fill_ms: float = 0.0
    # The queue this option waits in (placement/queueing.py): jobs per second into its server
    # (batches for a batched pool), mean service time (p50) and its cs² (from p50/p95), and how
    # the wait was computed (`wait_model`): alone, or a bound over the pieces sharing a device.
    arrival_rps: float = 0.0
    service_ms: float = 0.0
    service_scv: float = 0.0
    wait_model: str = ""
    runtime_alternatives: dict = field(default_factory=dict, hash=False, compare=False)
    # A split model (Neurosurgeon-style): the head runs on a site device, the cut tensor crosses
    # the uplink, the tail runs in this option's cloud pool. None for a whole model.
    cut: str | None = None
    cut_bytes: float = 0.0
    cut_transfer_ms: float = 0.0
    head: SplitHead | None = field(default=None, hash=False, compare=False)
    # A mixed fleet: a cloud pool serves the sites of several segments. Every segment in
    # `pool_segments` runs this piece in the pool named `pool`, sized for their traffic together,
    # and the pool is paid once. None: a uniform fleet, where an option is its own pool.
    pool: str | None = None
    pool_segments: tuple[str, ...] = ()
    # Co-located pieces (placement/problem/colocate.py): every piece in `pool_pieces` runs in the
    # pool named `pool` (one instance type in one region, one server process per replica), sized
    # for their loads together; `utilisation` and `wait_ms` are the pool's, `monthly_usd` the
    # whole pool's (paid once), `memory_mb` this piece's share of `pool_memory_mb`, the instance's.
    pool_pieces: tuple[str, ...] = ()
    pool_memory_mb: float = 0.0
    # Power drawn above idle by the site devices this option keeps busy (its utilisation there x
    # (busy - idle) W, at every site of the device; `EdgeDevice.busy_power_monthly_usd_per_site`).
    power_monthly_usd: float = 0.0

    @property
    def latency_ms(self) -> float:
        return self.compute_ms_p95 + self.wait_ms + self.cut_transfer_ms

    @property
    def pool_members(self) -> tuple[str, ...]:
        """Every piece that must run in this option's pool with it (itself included): the
        co-located pieces, or each fleet segment's copy of the model; () for a pool of its own."""
        if self.pool_pieces:
            return self.pool_pieces
        model = self.piece.split("/", 1)[-1]
        return tuple(f"{segment}/{model}" for segment in self.pool_segments)

    @property
    def entry(self) -> str:
        """Where this piece's input must arrive: the head's device for a split model."""
        return self.head.offer if self.head else self.location

    @property
    def device_offer(self) -> str | None:
        """The site device this option occupies, if any (a key of `Problem.devices`)."""
        if self.tier == "edge":
            return self.location
        return self.head.location if self.head else None

    @property
    def device_utilisation(self) -> float:
        if self.tier == "edge":
            return self.utilisation
        return self.head.utilisation if self.head else 0.0

    @property
    def device_memory_mb(self) -> float:
        if self.tier == "edge":
            return self.memory_mb
        return self.head.memory_mb if self.head else 0.0
