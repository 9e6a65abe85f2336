"""The long-stay parking service ("voitures ventouses"): stays, long stays, sensor health, KPIs."""
