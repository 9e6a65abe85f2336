"""Noise service: indicators, exceedances, maps and exposure from NoiseLevelObserved."""
