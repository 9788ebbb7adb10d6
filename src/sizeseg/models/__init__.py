"""Segmentation networks: a U-Net with a ResNet encoder (MONAI FlexibleUNet) and a registry."""

from sizeseg.models.registry import MODELS, build_model
from sizeseg.models.unet import UNET_BACKBONES, PlainUNet, TinyUNet, UNet, pad_to_multiple

__all__ = ["MODELS", "PlainUNet", "TinyUNet", "UNET_BACKBONES", "UNet", "build_model", "pad_to_multiple"]
