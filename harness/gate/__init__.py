"""The release gate: decides, with paired statistics, whether each quantized variant may ship."""
