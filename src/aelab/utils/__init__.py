"""Run plumbing shared by the entry points: config lookup, logging helpers, run output."""
