"""What users run: training, generation, encoding, evaluation, demos, and the CLI."""
