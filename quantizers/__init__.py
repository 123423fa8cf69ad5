"""One adapter per output format: each turns the FP16 source into a variant artifact plus a manifest."""
