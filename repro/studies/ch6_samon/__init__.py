"""Chapter 6: SAM-ON (SAM on the normalization parameters only) and its ablations."""
