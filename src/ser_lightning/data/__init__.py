"""Data: corpus readers, splits, audio decoding, waveform cache and the DataModule."""
