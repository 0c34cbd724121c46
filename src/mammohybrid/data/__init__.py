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
