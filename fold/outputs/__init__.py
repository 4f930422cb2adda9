"""What a run writes for people and other tools to read: ``fold.outputs.junit`` (a zoo run as JUnit XML)."""
