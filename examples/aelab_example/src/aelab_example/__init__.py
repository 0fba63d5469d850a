"""An example package that extends aelab without editing it: a model, a callback and their configs."""

from aelab_example.callbacks import CodeNormMonitor
from aelab_example.models import SmoothAE

__all__ = ["CodeNormMonitor", "SmoothAE"]
