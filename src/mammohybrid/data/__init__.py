"""Datasets -> manifests: ingest sources (CBIS-DDSM DICOM and JPEG, mini-MIAS, folders), the
manifest contract, patient-level splits and the synthetic CBIS-DDSM.

- :mod:`~mammohybrid.data.manifest`: the manifest CSV contract (read, write, leak check);
- :mod:`~mammohybrid.data.ingest`: the source registry and ``run_ingest``;
- :mod:`~mammohybrid.data.cbis_ddsm`, :mod:`~mammohybrid.data.mias`,
  :mod:`~mammohybrid.data.folder`: the sources; CBIS-DDSM's case CSVs are read by
  :mod:`~mammohybrid.data.cbis_ddsm_csv`, its files found by
  :mod:`~mammohybrid.data.cbis_ddsm_tcia` (DICOM download) or
  :mod:`~mammohybrid.data.cbis_ddsm_jpeg` (JPEG re-export);
- :mod:`~mammohybrid.data.splits`: train/val/test and folds that never leak;
- :mod:`~mammohybrid.data.synth`: ``render_roi_crop``, ``generate_cbis_ddsm`` and
  ``sample_grid``, over :mod:`~mammohybrid.data.lesion_renderer` (the crops) and
  :mod:`~mammohybrid.data.cbis_ddsm_writer` (CBIS-DDSM's on-disk format).
"""

from mammohybrid.data.ingest import IngestOutputs, run_ingest
from mammohybrid.data.manifest import (
    SPLITS,
    check_no_patient_leak,
    read_manifest,
    require_manifest_file,
    split_summary,
    usable_rows,
    write_manifest,
)
from mammohybrid.data.splits import assign_folds, patient_strata, sample_patients
from mammohybrid.data.synth import generate_cbis_ddsm, sample_grid

__all__ = [
    "SPLITS",
    "IngestOutputs",
    "assign_folds",
    "check_no_patient_leak",
    "generate_cbis_ddsm",
    "patient_strata",
    "read_manifest",
    "require_manifest_file",
    "run_ingest",
    "sample_grid",
    "sample_patients",
    "split_summary",
    "usable_rows",
    "write_manifest",
]
