"""Workflows: what pre-processes, trains and evaluates in one go, above the library's layers.

- :mod:`~mammohybrid.workflows.grid` -- experiment grids (the paper's Table 5)
- :mod:`~mammohybrid.workflows.cv` -- patient-grouped, stratified K-fold cross-validation
- :mod:`~mammohybrid.workflows.training_runs` -- each run of a grid or a cross-validation trained
  or resumed
- :mod:`~mammohybrid.workflows.tracking` -- MLflow tracking of trainings and evaluations
- :mod:`~mammohybrid.workflows.demo` -- the end-to-end demo
"""
