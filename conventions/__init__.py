"""The bottom layer: the user-error family and the command-line conventions every package shares."""
