"""``mammohybrid grid``: a grid of trainings (by default the paper's Table 5), resumable, with a
result table in Table 5's layout where the best row is chosen on validation only.

- :mod:`~mammohybrid.workflows.grid.spec` -- the grid file and its cells
- :mod:`~mammohybrid.workflows.grid.run` -- datasets, trainings, evaluations, the best row
- :mod:`~mammohybrid.workflows.grid.result_table` -- the result table
"""

from mammohybrid.workflows.grid.result_table import result_table_frame, write_result_table
from mammohybrid.workflows.grid.run import (
    ERROR_FILE,
    GridResult,
    cell_metrics,
    prepare_datasets,
    run_grid,
    select_best,
)
from mammohybrid.workflows.grid.spec import (
    CellResult,
    GridCell,
    GridSpec,
    ReferenceRow,
    grid_names,
    load_grid,
)

__all__ = [
    "ERROR_FILE",
    "CellResult",
    "GridCell",
    "GridResult",
    "GridSpec",
    "ReferenceRow",
    "cell_metrics",
    "grid_names",
    "load_grid",
    "prepare_datasets",
    "result_table_frame",
    "run_grid",
    "select_best",
    "write_result_table",
]
