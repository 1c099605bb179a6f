"""Chapter 7: JensUn unlearning, worst-case (LKF-style) evaluation and benign relearning."""
