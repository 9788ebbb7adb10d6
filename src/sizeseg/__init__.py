"""sizeseg: train segmentation networks from object sizes and size bounds instead of pixel masks."""

__version__ = "0.1.0"
