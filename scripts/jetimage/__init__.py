"""jetimage: jets to classified jet images.

The library behind the Snakemake workflow; it never imports snakemake. The public API for
notebooks is :class:`ImageSpec` and :func:`make_images`::

    import jetimage
    images = jetimage.make_images(constituents, jetimage.ImageSpec(npix=40, width=1.6))
"""

from __future__ import annotations

__version__ = "0.1.0"

from jetimage.pixelate import ImageSpec, make_images

__all__ = ["ImageSpec", "__version__", "make_images"]
