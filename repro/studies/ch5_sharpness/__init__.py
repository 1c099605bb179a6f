"""Chapter 5: sharpness vs generalization (model zoos, Kendall tau against test error, pretrained zoos, theory checks)."""
