"""`placement verify`: a plan run on this machine under load — each piece in its worker
process(es) with its runtime, real tensors along the dataflow, links across tiers delayed by
bandwidth and one-way delay, arrivals as the spec states — and its predicted latencies set
against what was measured (docs/verify.md)."""

from placement.verify.local import (
           CLOUD_OFFER,
           DEVICE,
           EDGE_OFFER,
           this_machine_offers,
           write_this_machine_offers,
)
from placement.verify.session import VerifyError, VerifyResult, verify

__all__ = ["CLOUD_OFFER", "DEVICE", "EDGE_OFFER", "VerifyError", "VerifyResult", "this_machine_offers",
           "verify", "write_this_machine_offers"]
