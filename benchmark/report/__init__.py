"""What is rendered from rows: leaderboards, the static site, galleries, the comparison with reference numbers and
its agreement figures, perceptibility classes, calibration studies side by side."""
