"""mlp_lm: a character-level MLP language model (Bengio et al. 2003) in numpy, backward passes by hand."""
__version__ = "0.1.0"
