"""Which hardware class each device of a TVM RPC tracker is: the remote config (YAML).

A tracker knows devices only by *key* (the `--key` each `rpc_server` registered with); the
profiles talk about hardware classes. The config says which class a key stands for, and how to
link a library for it:

```yaml
tracker: 192.168.1.10:9190          # optional; `--tracker` on the command line wins
devices:
  rpi5: arm-cortex-a76-4c           # key: hardware class
  jetson:                           # or key: {hardware, cc, session_timeout_s}
    hardware: arm-cortex-a72-4c
    cc: aarch64-linux-gnu-gcc       # the compiler that links the library (default: by arch)
    session_timeout_s: 900          # the server drops a session after this long
```

A file with no `devices:` section is read as `key: class` lines (`rpi5: arm-cortex-a76-4c`).
Without a config, a key that is itself a hardware class name (`arm-cortex-a76-4c`) stands for
that class. Nothing here talks to the network: `profiles.rpc` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from profiles.errors import UserError

DEFAULT_SESSION_TIMEOUT_S = 600.0


class RemoteConfigError(UserError):
    """A remote config (or `--tracker` address) that cannot be used; the message names the entry."""


class RemoteDevice(BaseModel):
    """One tracker key and the hardware class its devices are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    hardware: str
    cc: str | None = Field(
        default=None, description="compiler that links the library; default: by the class's arch")
    session_timeout_s: float = Field(default=DEFAULT_SESSION_TIMEOUT_S, gt=0)


class RemoteConfig(BaseModel):
    """Tracker keys -> hardware classes (and the tracker address, when the file names one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tracker: str | None = None
    devices: dict[str, RemoteDevice] = Field(default_factory=dict)

    def device(self, key: str) -> RemoteDevice | None:
        return self.devices.get(key)


def parse_tracker(address: str) -> tuple[str, int]:
    """"host:port" -> (host, port); RemoteConfigError names what is wrong."""
    host, sep, port = (address or "").strip().rpartition(":")
    if not sep or not host:
        raise RemoteConfigError(f"tracker {address!r}: expected HOST:PORT, e.g. 127.0.0.1:9190")
    try:
        number = int(port)
    except ValueError:
        raise RemoteConfigError(f"tracker {address!r}: port {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise RemoteConfigError(f"tracker {address!r}: port {number} out of range")
    return host, number


def _check_hardware(key: str, hardware: str, where: str) -> None:
    from profiles.hardware import hardware_catalog

    catalog = hardware_catalog()
    if hardware not in catalog:
        raise RemoteConfigError(
            f"{where}: device {key!r}: unknown hardware class {hardware!r}; "
            f"known: {', '.join(sorted(catalog))}")
    if catalog[hardware].tvm_target is None:
        raise RemoteConfigError(f"{where}: device {key!r}: {hardware} has no TVM target")


def remote_config_from_dict(data: Mapping | None, where: str = "remote config") -> RemoteConfig:
    """Validate a parsed config (either form of the module docstring)."""
    if data is None:
        return RemoteConfig()
    if not isinstance(data, Mapping):
        raise RemoteConfigError(f"{where}: expected a mapping of tracker keys to hardware classes")
    data = dict(data)
    tracker = data.pop("tracker", None)
    if "devices" in data:
        devices_raw = data.pop("devices") or {}
        if data:
            raise RemoteConfigError(f"{where}: unknown field(s) {', '.join(map(str, data))}; "
                                    "expected tracker and devices")
    else:
        devices_raw = data
    if not isinstance(devices_raw, Mapping):
        raise RemoteConfigError(f"{where}: devices: expected a mapping key -> hardware class")
    devices: dict[str, RemoteDevice] = {}
    for key, value in devices_raw.items():
        key = str(key)
        entry = {"hardware": value} if isinstance(value, str) else value
        if not isinstance(entry, Mapping):
            raise RemoteConfigError(f"{where}: device {key!r}: expected a hardware class name or "
                                    "a mapping with 'hardware'")
        try:
            device = RemoteDevice(key=key, **dict(entry))
        except (ValidationError, TypeError) as exc:
            raise RemoteConfigError(f"{where}: device {key!r}: {_first_error(exc)}") from None
        _check_hardware(key, device.hardware, where)
        devices[key] = device
    if tracker is not None:
        parse_tracker(str(tracker))
    return RemoteConfig(tracker=None if tracker is None else str(tracker), devices=devices)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        return f"{loc}: {err.get('msg')}" if loc else str(err.get("msg"))
    return str(exc)


def load_remote_config(path: str | Path) -> RemoteConfig:
    """Read a remote config YAML file; RemoteConfigError names the file and the bad entry."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RemoteConfigError(f"{path}: cannot read the remote config ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RemoteConfigError(f"{path}: not valid YAML: {exc}") from None
    return remote_config_from_dict(data, where=str(path))


def default_remote_config(keys: Iterable[str]) -> RemoteConfig:
    """Without a config: every key that is a hardware class name stands for that class."""
    from profiles.hardware import hardware_catalog

    catalog = hardware_catalog()
    return RemoteConfig(devices={
        k: RemoteDevice(key=k, hardware=k) for k in keys
        if k in catalog and catalog[k].tvm_target is not None})
