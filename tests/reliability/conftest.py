"""Shared helpers of the reliability tests: the corpus checker is importable as a sibling module."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
