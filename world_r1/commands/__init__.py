"""Tool commands beside Lightning's fit/validate: `tiny`, `sample`, `evaluate`; plain functions the CLI exposes."""
