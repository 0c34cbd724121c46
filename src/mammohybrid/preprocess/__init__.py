"""Pre-processing (the paper's section "Pre-processing"): small array transforms, the named
strategies that chain them, the crash-safe pool that decodes and prepares images
(``pool.py``), the batch command and QA figures.

Every chain: to 8 bits -> [shrink to the working size] -> strategy steps -> resize. The paper's
strategies ``median``, ``gaussian`` and ``wiener`` are NLM -> ROI (threshold 193) -> filter ->
CLAHE; ``none`` only converts and resizes; ``custom`` takes ``preprocess.steps``.
"""

from mammohybrid.preprocess.base import Record, Transform
from mammohybrid.preprocess.batch import BatchReport, output_name, run_batch
from mammohybrid.preprocess.cache import ensure_preprocessed
from mammohybrid.preprocess.chain import (
    STEPS,
    Chain,
    ProcessedImage,
    build_chain,
    preprocess_image,
    preprocess_steps,
    register_strategy,
    strategy_names,
    strategy_steps,
)
from mammohybrid.preprocess.contrast import CLAHE, adapthisteq
from mammohybrid.preprocess.denoise import NLMDenoise, estimate_noise_sigma
from mammohybrid.preprocess.filters import GaussianFilter, MedianFilter, WienerFilter, wiener2
from mammohybrid.preprocess.geometry import (
    FieldOfView,
    LimitSize,
    Resize,
    ToRGB,
    to_model_input,
)
from mammohybrid.preprocess.intensity import ToUint8
from mammohybrid.preprocess.pool import (
    DISPLAY_MAX_SIDE,
    ImageProcessor,
    ImageTask,
    Preparation,
    PreparedOutcome,
    PreprocessPool,
    SingleChain,
)
from mammohybrid.preprocess.qa import qa_figure, save_qa_figure, write_qa_figures
from mammohybrid.preprocess.roi import ROIThreshold
from mammohybrid.preprocess.settings import SETTINGS_FILE

__all__ = [
    "CLAHE",
    "DISPLAY_MAX_SIDE",
    "SETTINGS_FILE",
    "STEPS",
    "BatchReport",
    "Chain",
    "FieldOfView",
    "GaussianFilter",
    "ImageProcessor",
    "ImageTask",
    "LimitSize",
    "MedianFilter",
    "NLMDenoise",
    "Preparation",
    "PreparedOutcome",
    "PreprocessPool",
    "ProcessedImage",
    "ROIThreshold",
    "Record",
    "Resize",
    "SingleChain",
    "ToRGB",
    "ToUint8",
    "Transform",
    "WienerFilter",
    "adapthisteq",
    "build_chain",
    "ensure_preprocessed",
    "estimate_noise_sigma",
    "output_name",
    "preprocess_image",
    "preprocess_steps",
    "qa_figure",
    "register_strategy",
    "run_batch",
    "save_qa_figure",
    "strategy_names",
    "strategy_steps",
    "to_model_input",
    "wiener2",
    "write_qa_figures",
]
