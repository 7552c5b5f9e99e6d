"""Warm starts: choosing a zoo source for a target and mapping its supernet onto the target's."""
