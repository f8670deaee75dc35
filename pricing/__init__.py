"""Pricing: cloud offers and edge devices as an `OfferTable` (see `pricing.table`)."""
