"""Chapter 4: Mahalanobis++ (feature normalisation for the Mahalanobis detector)."""
