"""``mammohybrid grid``: a grid of trainings (by default the paper's Table 5), resumable, with a
summary table in Table 5's layout where the best row is chosen on validation only.

- :mod:`~mammohybrid.workflows.grid.spec` -- the grid file and its cells
- :mod:`~mammohybrid.workflows.grid.run` -- datasets, trainings, evaluations, the best row
- :mod:`~mammohybrid.workflows.grid.summary` -- the summary table
"""

from mammohybrid.workflows.grid.run import (
    ERROR_FILE,
    CellResult,
    GridResult,
    cell_metrics,
    prepare_datasets,
    run_grid,
    select_best,
)
from mammohybrid.workflows.grid.spec import GridCell, GridSpec, ReferenceRow, grid_names, load_grid
from mammohybrid.workflows.grid.summary import summary_frame, write_summary

__all__ = ["ERROR_FILE", "CellResult", "GridCell", "GridResult", "GridSpec", "ReferenceRow",
           "cell_metrics", "grid_names", "load_grid", "prepare_datasets", "run_grid",
           "select_best", "summary_frame", "write_summary"]
