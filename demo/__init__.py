"""What the app and the demos need beyond the library: the seed note's example, the model zoo,
the workbench (one model's fold as the page shows it), the converter comparison and the
"why it works" walkthrough. Nothing in ``fold`` imports this package."""
