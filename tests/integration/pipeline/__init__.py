"""The DVC pipeline: the stages, their outputs, experiments and reproduction."""
