"""Storage backends behind one interface; the only place that knows SQL."""
