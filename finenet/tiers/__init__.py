"""What runs the pipeline at a scale other than the default: ``check`` (the CI metric check, profile
``ci``), ``bench`` (the bench tier), ``sweep`` (the learning-rate sweep), ``runs`` (their working
folders) and ``release`` (the bench tier's FineNet as ``finenet deblur``'s default)."""
