"""hrformer_core: the High-Resolution Transformer library behind the `hrformer` CLI."""

__version__ = "0.1.0"
