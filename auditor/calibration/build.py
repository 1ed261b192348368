"""Moved to :mod:`auditor.calibrate` (beside ``generate`` and ``teacher``); this name stays importable."""

from ..calibrate import (  # noqa: F401
    DECOY_NAMES,
    DECOY_SEED,
    DECOYS,
    FIRST_SEED,
    HERE,
    CalibrateConfig,
    calibrate,
    decoy_pair,
    null_pair,
    pair_record,
    scan_pair,
)

__all__ = ["CalibrateConfig", "calibrate", "decoy_pair", "null_pair"]
