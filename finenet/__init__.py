"""FineNet: Frame Interpolation and Enhancement for face video deblurring (Tran et al.)."""

__version__ = "0.1.0"
