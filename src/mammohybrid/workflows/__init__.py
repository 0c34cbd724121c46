"""Workflows: what pre-processes, trains and evaluates in one go, above the library's layers.

- :mod:`~mammohybrid.workflows.grid` -- experiment grids (the paper's Table 5)
- :mod:`~mammohybrid.workflows.cv` -- patient-grouped, stratified K-fold cross-validation
- :mod:`~mammohybrid.workflows.training_runs` -- each run of a grid or a cross-validation trained
  or resumed
- :mod:`~mammohybrid.workflows.tracking` -- MLflow tracking of trainings and evaluations
- :mod:`~mammohybrid.workflows.demo` -- the end-to-end demo
"""

from mammohybrid.workflows.cv import run_cv, source_predictions
from mammohybrid.workflows.demo import DEMO_PRESET, print_headline, run_demo
from mammohybrid.workflows.executors import RayResources, open_executor
from mammohybrid.workflows.grid import load_grid, run_grid
from mammohybrid.workflows.select import SelectSettings, run_select
from mammohybrid.workflows.tracking import open_tracker, track_training

__all__ = [
    "DEMO_PRESET", "RayResources", "SelectSettings", "load_grid", "open_executor",
    "open_tracker", "print_headline", "run_cv", "run_demo", "run_grid", "run_select",
    "source_predictions", "track_training",
]
