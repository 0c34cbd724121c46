"""The one image-reading function of the project, and atomic PNG and DICOM writing.

``read_image`` returns a 2-D greyscale array:
- ``uint8`` for 8-bit files,
- ``uint16`` for 16-bit files and all DICOM pixel data wider than 8 bits, on the full 16-bit
  scale: a DICOM stored in fewer bits (``BitsStored`` = 12, say) is rescaled so that its
  largest representable value becomes 65535; MONOCHROME1 images are inverted so that bright
  always means dense tissue; signed pixel data is shifted to unsigned;
- ``float32`` for floating-point files (e.g. TIFF).
Colour files are converted to grey. A PGM/PPM whose header ``maxval`` is below its depth's full
scale (a 12-bit PGM with maxval 4095) is rescaled to that full scale, as DICOM ``BitsStored`` is:
OpenCV returns the stored values, which would put a 12-bit film far below the 193 threshold.
Every failure raises :class:`ImageReadError` naming the file; :func:`decode_image` is the
guarded read behind it (budgets checked before decoding, every decoder exception caught,
decoder chatter kept off the terminal).

``write_dicom`` is its inverse for DICOM (used by the synthetic CBIS-DDSM and the tests): it
encodes an image as ``read_image`` would return it, in a chosen ``BitsStored``, photometric
interpretation, signedness and transfer syntax (uncompressed, RLE or JPEG 2000 lossless).

The modules: ``decode`` (the guarded read), ``decoder_output`` (decoder chatter kept),
``header`` (what a header declares, checked against the budget), ``raster`` and ``dicom``
(format readers), ``formats`` (suffixes) and ``write`` (PNG and DICOM writing). Every read
takes its budgets as an argument (``limits``). Import from this package.
"""

from mammohybrid.imaging.decode import TINY_SIDE, DecodedImage, decode_image, read_image
from mammohybrid.imaging.decoder_output import SHOW_DECODER_OUTPUT_ENV
from mammohybrid.imaging.dicom import dicom_pixel_spacing
from mammohybrid.imaging.formats import DICOM_SUFFIXES, IMAGE_SUFFIXES, RASTER_SUFFIXES, is_dicom
from mammohybrid.imaging.header import declared_raster_size
from mammohybrid.imaging.write import DICOM_TRANSFER_SYNTAXES, png_decodes, write_dicom, write_png

__all__ = [
    "DICOM_SUFFIXES",
    "DICOM_TRANSFER_SYNTAXES",
    "IMAGE_SUFFIXES",
    "RASTER_SUFFIXES",
    "SHOW_DECODER_OUTPUT_ENV",
    "TINY_SIDE",
    "DecodedImage",
    "declared_raster_size",
    "decode_image",
    "dicom_pixel_spacing",
    "is_dicom",
    "png_decodes",
    "read_image",
    "write_dicom",
    "write_png",
]
