"""Lightning callbacks: dashboards for every logger, and run bookkeeping.

Every dashboard callback writes only on global rank zero, skips the sanity check, uses a fixed batch of
images (so epochs compare) and does nothing for models it does not apply to.
"""

from aelab.callbacks.dashboards import (
    DenoisingLogger,
    GenerationLogger,
    LatentHistogramLogger,
    LatentProjectorLogger,
    LatentScatterLogger,
    ReconstructionLogger,
)
from aelab.callbacks.guards import DivergenceGuard, RNGState
from aelab.callbacks.optuna import OptunaTrialCallback
from aelab.callbacks.performance import ChannelsLast, Compile
from aelab.callbacks.preemption import ConfigInCheckpoint, LastCheckpointAtFitEnd, Preemption
from aelab.callbacks.throughput import ThroughputMonitor

__all__ = [
    "ChannelsLast",
    "Compile",
    "ConfigInCheckpoint",
    "LastCheckpointAtFitEnd",
    "DenoisingLogger",
    "DivergenceGuard",
    "GenerationLogger",
    "LatentHistogramLogger",
    "LatentProjectorLogger",
    "LatentScatterLogger",
    "OptunaTrialCallback",
    "Preemption",
    "RNGState",
    "ReconstructionLogger",
    "ThroughputMonitor",
]
