"""Read models: pure folds over event envelopes and the SQL that keeps them."""
